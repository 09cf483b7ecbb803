//! Malformed rows: the three modes, the corrupt-record column, and bad records committed
//! exactly once with the epoch's good rows.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use crate::common::*;

/// The notebook job with checkpoints in `state/`, one file an epoch, its source table
/// extended with `extra` (mode, bad_records_path, ...), and a CSV copy of the raw rows in
/// `rows/`.
fn pipeline(extra: &str) -> String {
    notebook_pipeline("available_now = true", 1)
        .replace(
            "interval = \"100ms\"",
            "interval = \"100ms\"\npath = \"state\"",
        )
        .replace("sep = \";\"\n", &format!("sep = \";\"\n{extra}\n"))
        + "\n[sinks.rows]\ntype = \"csv\"\ninput = \"sales\"\npath = \"rows\"\noutput_mode = \"append\"\n"
}

/// Every data row of the committed CSV files in `dir`, in file order, header dropped.
fn committed_csv(dir: &Path) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for name in visible_files(dir) {
        let mut reader = csv::Reader::from_path(dir.join(name)).unwrap();
        for record in reader.records() {
            rows.push(record.unwrap().iter().map(str::to_string).collect());
        }
    }
    rows
}

/// Two clean files and two with malformed rows, one file an epoch.
fn write_input(ws: &Workspace) {
    ws.write("in/a.csv", "File;Shop;Sale_Count\na;s1;1\na;s2;2\n");
    ws.write(
        "in/b.csv",
        "File;Shop;Sale_Count\nb;s1;10\nb;s2;12x\nb;s3\nb;s1;20\n",
    );
    ws.write("in/c.csv", "File;Shop;Sale_Count\nc;s1;100\n");
    ws.write(
        "in/d.csv",
        "File;Shop;Sale_Count\nd;s2;99999999999\nd;s2;1000\n",
    );
}

#[test]
fn failfast_names_path_and_line_and_resumes_once_the_file_is_fixed() {
    let ws = Workspace::new();
    write_input(&ws);
    ws.write("pipeline.toml", &pipeline("mode = \"failfast\""));
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in/b.csv:3: field Sale_Count: \"12x\" is not an INT"),
        "{stderr}"
    );
    // The epochs before the failure are finished first: a.csv's rows are committed, and
    // nothing of b.csv is visible.
    assert_eq!(
        committed_csv(&ws.path("rows")),
        [["a", "s1", "1"], ["a", "s2", "2"]]
    );

    ws.write(
        "in/b.csv",
        "File;Shop;Sale_Count\nb;s1;10\nb;s2;12\nb;s3;0\nb;s1;20\n",
    );
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "d.csv is next: {stderr}");
    assert!(
        stderr.contains("in/d.csv:2: field Sale_Count: 99999999999 is out of range for INT"),
        "{stderr}"
    );
    fs::remove_file(ws.path("in/d.csv")).unwrap();
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    assert_eq!(
        committed_csv(&ws.path("rows")).len(),
        2 + 4 + 1,
        "every row once"
    );
    let expected: BTreeMap<String, i64> = [("s1", 131), ("s2", 14), ("s3", 0)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    assert_eq!(sums_file(&ws), expected);
}

#[test]
fn permissive_keeps_malformed_rows_with_nulls_and_their_raw_line() {
    let ws = Workspace::new();
    write_input(&ws);
    ws.write(
        "pipeline.toml",
        &pipeline("corrupt_record_column = \"_corrupt_record\""),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    let rows: Vec<String> = committed_csv(&ws.path("rows"))
        .into_iter()
        .map(|r| r.join("|"))
        .collect();
    assert_eq!(
        rows,
        [
            "a|s1|1|",
            "a|s2|2|",
            "b|s1|10|",
            "b|s2||b;s2;12x",
            "b|s3||b;s3",
            "b|s1|20|",
            "c|s1|100|",
            "d|s2||d;s2;99999999999",
            "d|s2|1000|",
        ]
    );
}

#[test]
fn dropmalformed_counts_what_it_drops_in_progress_and_in_the_checkpoint() {
    let ws = Workspace::new();
    write_input(&ws);
    ws.write("pipeline.toml", &pipeline("mode = \"dropmalformed\""));
    let out = ws.run_ok(&["run", "pipeline.toml", "--json"]);
    let malformed: u64 = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .flat_map(|record| record["stages"].as_array().cloned().unwrap_or_default())
        .filter_map(|stage| stage["malformed_rows"].as_u64())
        .sum();
    assert_eq!(malformed, 3);
    assert_eq!(committed_csv(&ws.path("rows")).len(), 6);
    let text = String::from_utf8(ws.run_ok(&["checkpoints", "state"]).stdout).unwrap();
    assert!(text.contains("3 malformed row(s)"), "{text}");
}

/// The bad-records files, sorted: `path|line|reason|record`.
fn bad_records(ws: &Workspace) -> Vec<String> {
    let mut rows: Vec<String> = committed_csv(&ws.path("bad"))
        .into_iter()
        .map(|r| r.join("|"))
        .collect();
    rows.sort();
    rows
}

const EXPECTED_BAD: [&str; 3] = [
    "in/b.csv|3|field Sale_Count: \"12x\" is not an INT|b;s2;12x",
    "in/b.csv|4|expected 3 fields, found 2|b;s3",
    "in/d.csv|2|field Sale_Count: 99999999999 is out of range for INT|d;s2;99999999999",
];

#[test]
fn bad_records_are_committed_once_with_their_epoch_whatever_the_crash() {
    for point in weir::FAILURE_POINTS {
        let ws = Workspace::new();
        write_input(&ws);
        ws.write(
            "pipeline.toml",
            &pipeline("mode = \"dropmalformed\"\nbad_records_path = \"bad\""),
        );
        // The second time the point is reached: b.csv's epoch (the second) is in flight.
        let out = ws.run_failing_at(point);
        assert!(
            !out.status.success(),
            "{point}: the failure was not injected"
        );
        ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
        assert_eq!(bad_records(&ws), EXPECTED_BAD, "{point}");
        assert_eq!(committed_csv(&ws.path("rows")).len(), 6, "{point}");
    }
}

#[test]
fn bad_records_path_is_checked_like_a_sink_path() {
    let ws = Workspace::new();
    write_input(&ws);
    ws.write(
        "pipeline.toml",
        &pipeline("bad_records_path = \"in/bad\"").replace("path = \"rows\"", "path = \"out\""),
    );
    let out = ws.weir(&["validate", "pipeline.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "sources.sales.bad_records_path: is inside the folder source \"sales\" reads"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("sinks.rows.path: sink \"archive\" writes to the same folder"),
        "{stderr}"
    );
}

/// An input folder holding a good file and one the user running weir may not read.
fn unreadable_input(ws: &Workspace, mode: &str) {
    ws.write("in/a.csv", "File;Shop;Sale_Count\na;s1;1\n");
    set_mode(
        &ws.write("in/locked.csv", "File;Shop;Sale_Count\nx;s1;5\n"),
        0o000,
    );
    ws.write(
        "pipeline.toml",
        &pipeline(&format!("mode = \"{mode}\"\nbad_records_path = \"bad\"")),
    );
    open_up(&ws.path(""));
    set_mode(&ws.path("in/locked.csv"), 0o000);
}

#[test]
fn a_file_that_cannot_be_read_is_reported_and_the_run_goes_on_unless_failfast() {
    let ws = Workspace::new();
    unreadable_input(&ws, "permissive");
    let out = weir_unprivileged(&ws, &["run", "pipeline.toml", "--quiet"])
        .unwrap_or_else(|reason| panic!("{reason}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("in/locked.csv") && stderr.contains("Permission denied"),
        "{stderr}"
    );
    assert_eq!(committed_csv(&ws.path("rows")), [["a", "s1", "1"]]);
    let bad = bad_records(&ws);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("in/locked.csv|0|") && bad[0].contains("Permission denied"),
        "{bad:?}"
    );

    let ws = Workspace::new();
    unreadable_input(&ws, "failfast");
    let out = weir_unprivileged(&ws, &["run", "pipeline.toml", "--quiet"]).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in/locked.csv") && stderr.contains("Permission denied"),
        "{stderr}"
    );
}
