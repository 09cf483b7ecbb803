//! JSON lines files: the `json` source by Spark's JSON rules, the `json` sink, and both read
//! back by DuckDB as an independent reader.

use std::collections::BTreeMap;

use crate::common::*;

/// The notebook job over JSON lines in `in/`: per-shop sums to `sums/` as JSON (complete
/// mode), the raw rows to `out/` as parquet and to `rows/` as JSON (append).
fn pipeline(source_extra: &str) -> String {
    format!(
        r#"
[checkpoint]
path = "state"
interval = "50ms"

[trigger]
available_now = true
{source}{source_extra}
[operators.by_shop]
type = "aggregate"
input = "sales"
group_by = ["Shop"]
aggregates = ["sum(Sale_Count)"]

[sinks.sums]
type = "json"
input = "by_shop"
path = "sums"
output_mode = "complete"

[sinks.archive]
type = "parquet"
input = "sales"
path = "out"
output_mode = "append"

[sinks.rows]
type = "json"
input = "sales"
path = "rows"
output_mode = "append"
"#,
        source = json_source("sales", "in", 2),
    )
}

fn as_sums(lines: Vec<String>) -> BTreeMap<String, i64> {
    (lines.iter())
        .map(|l| {
            let (shop, sum) = l.split_once(';').unwrap();
            (shop.to_string(), sum.parse().unwrap())
        })
        .collect()
}

#[test]
fn json_lines_in_and_out_hold_every_row_once_as_duckdb_reads_them() {
    let ws = Workspace::new();
    let input = ws.json_files("in", 0, 7, 300, 40, 5);
    ws.write("pipeline.toml", &pipeline(""));
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);

    assert_eq!(parquet_rows(&ws.path("out")), sorted(input.clone()));
    let rows = duckdb_lines(
        "SELECT File, Shop, Sale_Count FROM read_json('$dir/rows/*.json', format = 'newline_delimited')",
        &ws.path("."),
    );
    let rows: Vec<Row> = rows
        .iter()
        .map(|l| {
            let v: Vec<&str> = l.split(';').collect();
            (v[0].into(), v[1].into(), v[2].parse().unwrap())
        })
        .collect();
    assert_eq!(sorted(rows), sorted(input.clone()), "the json sink's rows");
    let sums_read = duckdb_lines(
        "SELECT Shop, \"sum(Sale_Count)\" FROM read_json('$dir/sums/result.json', format = 'newline_delimited')",
        &ws.path("."),
    );
    assert_eq!(as_sums(sums_read), sums(&input), "the json sink's sums");

    // A second run reads only files that are new.
    let more = ws.json_files("in", 7, 2, 50, 40, 6);
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    let all: Vec<Row> = input.into_iter().chain(more).collect();
    assert_eq!(parquet_rows(&ws.path("out")), sorted(all.clone()));
    let sums_read = duckdb_lines(
        "SELECT Shop, \"sum(Sale_Count)\" FROM read_json('$dir/sums/result.json', format = 'newline_delimited')",
        &ws.path("."),
    );
    assert_eq!(as_sums(sums_read), sums(&all));
    let shown = ws.run_ok(&["show", "rows", "-n", "5"]);
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert!(shown.contains(&format!("{} row(s)", all.len())), "{shown}");
}

/// Good lines, a value of the wrong JSON kind, a broken line and a bare array.
fn write_malformed(ws: &Workspace) {
    ws.write(
        "in/a.json",
        "{\"File\":\"a\",\"Shop\":\"s1\",\"Sale_Count\":1}\n{\"File\":\"a\",\"Shop\":\"s2\",\"Sale_Count\":2}\n",
    );
    ws.write(
        "in/b.json",
        concat!(
            "{\"File\":\"b\",\"Shop\":\"s1\",\"Sale_Count\":10}\n",
            "\n",
            "{\"File\":\"b\",\"Shop\":\"s2\",\"Sale_Count\":\"12\"}\n",
            "{\"File\":\"b\",\"Shop\":\"s3\",\"Sale_Count\":3\n",
            "[1, 2]\n",
            "{\"File\":\"b\",\"Shop\":\"s1\",\"Sale_Count\":20}\n",
        ),
    );
}

#[test]
fn failfast_names_the_file_the_line_and_the_json_kind() {
    let ws = Workspace::new();
    write_malformed(&ws);
    ws.write("pipeline.toml", &pipeline("mode = \"failfast\"\n"));
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("in/b.json:3: field Sale_Count: \"12\" is a JSON string, not an INT"),
        "{stderr}"
    );
}

#[test]
fn permissive_keeps_good_values_and_the_line_and_bad_records_are_committed() {
    let ws = Workspace::new();
    write_malformed(&ws);
    ws.write(
        "pipeline.toml",
        &pipeline("corrupt_record_column = \"_corrupt_record\"\nbad_records_path = \"bad\"\n"),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    let rows = duckdb_lines(
        "SELECT File, Shop, Sale_Count, _corrupt_record FROM read_json('$dir/rows/*.json', format = 'newline_delimited', columns = {File: 'VARCHAR', Shop: 'VARCHAR', Sale_Count: 'INTEGER', _corrupt_record: 'VARCHAR'}) ORDER BY ALL NULLS LAST",
        &ws.path("."),
    );
    assert_eq!(
        rows,
        [
            "a;s1;1;None",
            "a;s2;2;None",
            "b;s1;10;None",
            "b;s1;20;None",
            "b;s2;None;{\"File\":\"b\",\"Shop\":\"s2\",\"Sale_Count\":\"12\"}",
            "None;None;None;[1, 2]",
            "None;None;None;{\"File\":\"b\",\"Shop\":\"s3\",\"Sale_Count\":3",
        ]
    );
    let bad = duckdb_lines(
        "SELECT path, line, reason FROM read_csv('$dir/bad/*.csv', header = true) ORDER BY line",
        &ws.path("."),
    );
    assert_eq!(
        bad,
        [
            "in/b.json;3;field Sale_Count: \"12\" is a JSON string, not an INT",
            "in/b.json;4;malformed JSON: the line ends where ',' or '}' after a value was expected",
            "in/b.json;5;malformed JSON: a line must hold one object ({...}), not an array",
        ]
    );
}

#[test]
fn dropmalformed_drops_the_lines_that_do_not_read() {
    let ws = Workspace::new();
    write_malformed(&ws);
    ws.write("pipeline.toml", &pipeline("mode = \"dropmalformed\"\n"));
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    let sums_read = duckdb_lines(
        "SELECT Shop, \"sum(Sale_Count)\" FROM read_json('$dir/sums/result.json', format = 'newline_delimited')",
        &ws.path("."),
    );
    let expected: BTreeMap<String, i64> = [("s1".into(), 31), ("s2".into(), 2)].into();
    assert_eq!(as_sums(sums_read), expected);
}

#[test]
fn csv_options_on_a_json_source_are_refused_by_key() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", &pipeline("header = true\nsep = \";\"\n"));
    let out = ws.weir(&["validate", "pipeline.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for key in ["sources.sales.header", "sources.sales.sep"] {
        assert!(
            stderr.contains(&format!(
                "{key}: applies to csv sources only (this source is type = \"json\")"
            )),
            "{stderr}"
        );
    }
}
