//! What a person or a program sees of a run: JSON progress records, plain lines off a
//! terminal, and the live view on one.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// The notebook job with checkpoints: 3 files of 100 rows over 10 shops, one file an epoch.
fn known_run(ws: &Workspace, files: usize) -> Vec<Row> {
    let input = ws.csv_files("in", 0, files, 100, 10, 31);
    let pipeline = notebook_pipeline("available_now = true", 1)
        .replace("[checkpoint]\n", "[checkpoint]\npath = \"state\"\n");
    ws.write("pipeline.toml", &pipeline);
    input
}

fn stage<'a>(record: &'a Value, name: &str) -> &'a Value {
    record["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {record}"))
}

#[test]
fn json_records_count_what_each_stage_did_in_each_epoch() {
    let ws = Workspace::new();
    let input = known_run(&ws, 3);
    let out = ws.run_ok(&["run", "pipeline.toml", "--json"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    // Standard output holds the records and nothing else: the console table went to stderr.
    let records: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(records.len(), 3, "{stdout}");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("Epoch: 3"), "the console table: {stderr}");
    assert!(stderr.contains("weir: done: 300 rows"), "{stderr}");

    let mut shops_so_far = BTreeSet::new();
    for (i, record) in records.iter().enumerate() {
        let epoch = i as u64 + 1;
        assert_eq!(record["epoch"], epoch);
        assert_eq!(record["final"], epoch == 3);
        assert_eq!(record["trigger"], "available_now");
        assert_eq!(record["admitted_files"], 1);
        assert_eq!(record["input_rows"], 100);
        assert!(record["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(record["checkpoint_bytes"].as_u64().unwrap() > 0);
        assert!(record["processed_rows_per_second"].as_f64().unwrap() > 0.0);
        let durations = &record["durations_ms"];
        for phase in ["read", "process", "write", "checkpoint", "commit", "total"] {
            assert!(durations[phase].as_f64().unwrap() >= 0.0, "{phase}");
        }

        let source = stage(record, "sources.sales");
        assert_eq!(source["rows_in"], 100);
        assert_eq!(source["files_pending"], 3 - epoch);
        assert_eq!(source["malformed_rows"], 0);
        assert_eq!(source["state_keys"], epoch, "files done");

        shops_so_far.extend(input[(i * 100)..(i + 1) * 100].iter().map(|r| r.1.clone()));
        let aggregate = stage(record, "operators.by_shop");
        assert_eq!(aggregate["rows_in"], 100);
        assert_eq!(aggregate["state_keys"], shops_so_far.len() as u64);
        assert!(aggregate["state_bytes"].as_u64().unwrap() > 0);
        // Two output modes are not asked for; complete mode emits every group once.
        assert_eq!(aggregate["rows_out"], shops_so_far.len() as u64);

        let archive = stage(record, "sinks.archive");
        assert_eq!(archive["rows_in"], 100);
        assert_eq!(archive["rows_out"], 100);
        let sums = stage(record, "sinks.sums");
        assert_eq!(sums["rows_in"], shops_so_far.len() as u64);
    }
    let names: Vec<&str> = records[0]["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "sources.sales",
            "operators.by_shop",
            "sinks.archive",
            "sinks.display",
            "sinks.sums"
        ]
    );
}

#[test]
fn the_progress_log_gets_the_same_records_and_plain_lines_have_no_escape_codes() {
    let ws = Workspace::new();
    known_run(&ws, 3);
    let out = ws.run_ok(&["run", "pipeline.toml", "--progress-log", "progress.jsonl"]);
    let log = std::fs::read_to_string(ws.path("progress.jsonl")).unwrap();
    let epochs: Vec<u64> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(epochs, [1, 2, 3]);
    // Not a terminal: one plain line per epoch and a summary, no escape codes.
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains('\x1b'), "{stderr:?}");
    assert_eq!(stderr.matches("weir: epoch ").count(), 3, "{stderr}");
    assert!(
        stderr.contains("weir: epoch 3 committed (final)"),
        "{stderr}"
    );
    assert!(stderr.contains("weir: done: 300 rows"), "{stderr}");
}

#[test]
fn a_progress_log_that_cannot_be_created_is_an_error_before_the_run() {
    let ws = Workspace::new();
    known_run(&ws, 1);
    let out = ws.weir(&[
        "run",
        "pipeline.toml",
        "--progress-log",
        "no/such/dir/p.jsonl",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.contains("cannot create --progress-log no/such/dir/p.jsonl"),
        "{stderr}"
    );
    assert!(!ws.path("out").join("part-000001-0000.parquet").exists());
}

/// Runs `weir ARGS` under a pseudo-terminal (`script`), as a person at a terminal would.
fn under_a_terminal(ws: &Workspace, args: &str) -> String {
    on_a_terminal(ws, &format!("{} {args}", env!("CARGO_BIN_EXE_weir")))
}

/// Runs a shell `command` under a pseudo-terminal; what the terminal received.
fn on_a_terminal(ws: &Workspace, command: &str) -> String {
    let out = Command::new("script")
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .current_dir(ws.path(""))
        .env("TERM", "xterm")
        .output()
        .expect("script(1) from util-linux runs commands under a pseudo-terminal");
    let screen = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{screen}");
    screen
}

#[test]
fn on_a_terminal_a_bounded_run_shows_a_bar_over_its_files_and_a_summary() {
    let ws = Workspace::new();
    known_run(&ws, 30);
    let screen = under_a_terminal(&ws, "run pipeline.toml");
    // The bar is redrawn in place (carriage returns, escape codes) with the files done
    // out of the files known.
    assert!(screen.contains('\x1b'), "no live view: {screen:?}");
    assert!(
        screen.contains("/30 files"),
        "no bar over the files: {screen:?}"
    );
    assert!(
        !screen.contains("weir: epoch "),
        "plain lines on a terminal: {screen:?}"
    );
    assert!(screen.contains("weir: done: 3000 rows"), "{screen:?}");
    assert!(screen.contains("30 epoch(s) committed"), "{screen:?}");
}

#[test]
fn on_a_terminal_quiet_shows_no_progress_at_all() {
    let ws = Workspace::new();
    known_run(&ws, 3);
    let screen = under_a_terminal(&ws, "run pipeline.toml --quiet");
    assert!(!screen.contains("files"), "{screen:?}");
    assert!(!screen.contains("weir: done"), "{screen:?}");
    // The console sink's tables still print.
    assert!(screen.contains("Epoch: 3"), "{screen:?}");
}

#[test]
fn on_a_terminal_a_continuous_run_shows_a_status_line_until_stopped() {
    let ws = Workspace::new();
    ws.csv_files("in", 0, 3, 100, 10, 32);
    let pipeline = notebook_pipeline("", 1).replace("[trigger]\n", "");
    ws.write("pipeline.toml", &pipeline);
    // Ctrl-C after a second and a half: weir finishes the epoch and exits 0. --foreground:
    // otherwise timeout signals the child and then its whole process group, and a second
    // SIGINT that lands after the first was handled means "abort" (it did, now and then).
    let screen = on_a_terminal(
        &ws,
        &format!(
            "timeout --foreground --preserve-status -s INT 1.5 {} run pipeline.toml --set sinks.display.num_rows=1",
            env!("CARGO_BIN_EXE_weir")
        ),
    );
    assert!(screen.contains('\x1b'), "no live view: {screen:?}");
    assert!(
        screen.contains("file(s) pending"),
        "no status line: {screen:?}"
    );
    assert!(
        !screen.contains(" files "),
        "a bar under a continuous trigger: {screen:?}"
    );
    assert!(screen.contains("weir: done: 300 rows"), "{screen:?}");
}

/// Every committed epoch gives one progress record, in epoch order, and the summary counts
/// what was committed. At many groups, epochs' commits take uneven times: once, records came
/// out of order and one went missing (issue 18).
#[test]
fn at_many_groups_every_epoch_has_one_record_in_order_under_each_trigger() {
    for trigger in ["available_now = true", r#"processing_time = "100ms""#] {
        let ws = Workspace::new();
        // 10 files of 10,000 rows over a million shop names: nearly every row a new group.
        let input = ws.csv_files("in", 0, 10, 10_000, 1_000_000, 47);
        let pipeline = notebook_pipeline(trigger, 1)
            .replace("[checkpoint]\n", "[checkpoint]\npath = \"state\"\n");
        ws.write("pipeline.toml", &pipeline);
        let args = ["run", "pipeline.toml", "--progress-log", "progress.jsonl"];
        let log = || std::fs::read_to_string(ws.path("progress.jsonl")).unwrap_or_default();
        let records = || -> Vec<Value> {
            log()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        };
        let stderr = if trigger.starts_with("available_now") {
            String::from_utf8(ws.run_ok(&args).stderr).unwrap()
        } else {
            let mut child = ws.spawn(&args);
            let read = |r: &Vec<Value>| {
                r.iter()
                    .map(|r| r["input_rows"].as_u64().unwrap())
                    .sum::<u64>()
            };
            let all = wait_for(Duration::from_secs(60), || {
                read(&records()) == input.len() as u64
            });
            let status = signal_and_wait(&mut child, "INT");
            assert!(all && status.success(), "{trigger}: {}", ws.stderr());
            ws.stderr()
        };
        let records = records();
        let epochs: Vec<u64> = records
            .iter()
            .map(|r| r["epoch"].as_u64().unwrap())
            .collect();
        let expected: Vec<u64> = (1..=epochs.len() as u64).collect();
        assert_eq!(
            epochs, expected,
            "{trigger}: records out of order or missing"
        );
        assert!(
            epochs.len() >= 10,
            "{trigger}: one file an epoch, {epochs:?}"
        );
        let rows: u64 = records
            .iter()
            .map(|r| r["input_rows"].as_u64().unwrap())
            .sum();
        assert_eq!(rows, input.len() as u64, "{trigger}");
        let summary = format!("{rows} rows in");
        assert!(stderr.contains(&summary), "{trigger}: {stderr}");
        let committed = format!(
            "{} epoch(s) committed, last epoch {}",
            epochs.len(),
            epochs.len()
        );
        assert!(stderr.contains(&committed), "{trigger}: {stderr}");
    }
}
