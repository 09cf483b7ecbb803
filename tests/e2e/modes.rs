//! Output modes, with Spark's rules checked before anything runs.

use std::collections::BTreeMap;

use crate::common::*;

fn pipeline(sink_input: &str, mode: &str, sink_type: &str) -> String {
    format!(
        r#"
[trigger]
available_now = true

{source}
{aggregate}
[sinks.archive]
type = "parquet"
input = "sales"
path = "out"

[sinks.result]
type = "{sink_type}"
input = "{sink_input}"
output_mode = "{mode}"
{path}
"#,
        source = csv_source("sales", "in", 1),
        path = if sink_type == "console" {
            ""
        } else {
            "path = \"result\""
        },
        // An operator nothing reads is a configuration error, so it is there only when read.
        aggregate = if sink_input == "sales" {
            ""
        } else {
            "[operators.by_shop]\ntype = \"aggregate\"\ninput = \"sales\"\ngroup_by = [\"Shop\"]\naggregates = [\"sum(Sale_Count)\"]\n"
        }
    )
}

fn two_epochs(ws: &Workspace) {
    ws.write("in/a.csv", "File;Shop;Sale_Count\na;A;1\na;B;2\n");
    ws.write("in/b.csv", "File;Shop;Sale_Count\nb;B;10\n");
    // Files are admitted oldest first; make the order certain.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(ws.path("in/a.csv"))
        .unwrap()
        .set_modified(old)
        .unwrap();
}

#[test]
fn update_mode_shows_only_the_rows_that_changed() {
    let ws = Workspace::new();
    two_epochs(&ws);
    ws.write("pipeline.toml", &pipeline("by_shop", "update", "console"));
    let out = ws.run_ok(&["run", "pipeline.toml"]);
    let tables = console_tables(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        tables[&1],
        BTreeMap::from([("A".into(), 1), ("B".into(), 2)])
    );
    assert_eq!(
        tables[&2],
        BTreeMap::from([("B".into(), 12)]),
        "A did not change in epoch 2"
    );
}

#[test]
fn complete_mode_shows_the_whole_table_every_epoch() {
    let ws = Workspace::new();
    two_epochs(&ws);
    ws.write("pipeline.toml", &pipeline("by_shop", "complete", "console"));
    let out = ws.run_ok(&["run", "pipeline.toml"]);
    let tables = console_tables(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(
        tables[&2],
        BTreeMap::from([("A".into(), 1), ("B".into(), 12)])
    );
}

#[test]
fn update_mode_to_a_file_sink_appends_changed_rows_with_their_epoch() {
    let ws = Workspace::new();
    two_epochs(&ws);
    ws.write("pipeline.toml", &pipeline("by_shop", "update", "csv"));
    ws.run_ok(&["run", "pipeline.toml"]);
    assert_eq!(
        visible_files(&ws.path("result")),
        ["part-000001-0000.csv", "part-000002-0000.csv"]
    );
    let second = std::fs::read_to_string(ws.path("result/part-000002-0000.csv")).unwrap();
    assert_eq!(second, "Shop,sum(Sale_Count),epoch\nB,12,2\n");
}

#[test]
fn append_mode_writes_raw_rows_and_update_passes_them_through() {
    let ws = Workspace::new();
    two_epochs(&ws);
    ws.write("pipeline.toml", &pipeline("sales", "update", "console"));
    let out = ws.run_ok(&["run", "pipeline.toml"]);
    assert_eq!(parquet_rows(&ws.path("out")).len(), 3);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("|   b|   B|        10|"), "{stdout}");
}

fn refused(sink_input: &str, mode: &str) -> String {
    let ws = Workspace::new();
    ws.write("pipeline.toml", &pipeline(sink_input, mode, "console"));
    let out = ws.weir(&["validate", "pipeline.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let run = ws.weir(&["run", "pipeline.toml"]);
    assert_eq!(run.status.code(), Some(2), "run refuses before starting");
    assert!(!ws.path("out").exists(), "nothing was started");
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn append_of_an_aggregate_is_refused() {
    let err = refused("by_shop", "append");
    assert!(
        err.contains("pipeline.toml: sinks.result.output_mode: \"append\" is not allowed: sink \"result\" reads an aggregate, whose rows change as data arrives (allowed: \"complete\", \"update\")"),
        "{err}"
    );
}

#[test]
fn complete_without_an_aggregate_is_refused() {
    let err = refused("sales", "complete");
    assert!(
        err.contains("sinks.result.output_mode: \"complete\" is not allowed: sink \"result\" reads a stream without aggregation, which has no result table to complete (allowed: \"append\", \"update\")"),
        "{err}"
    );
}

#[test]
fn an_unknown_output_mode_is_refused() {
    let err = refused("sales", "upsert");
    assert!(err.contains("sinks.result.output_mode: unknown output mode \"upsert\" (expected \"append\", \"complete\" or \"update\")"), "{err}");
}

#[test]
fn an_aggregate_of_an_aggregate_is_refused() {
    let ws = Workspace::new();
    let text = pipeline("again", "complete", "console").replace(
        "[sinks.archive]",
        "[operators.again]\ntype = \"aggregate\"\ninput = \"by_shop\"\naggregates = [\"count(*)\"]\n\n[sinks.archive]",
    );
    ws.write("pipeline.toml", &text);
    let out = ws.weir(&["validate", "pipeline.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("operators.again: reads the output of another aggregate"),
        "{err}"
    );
}
