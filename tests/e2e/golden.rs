//! The notebook job, straight through, checked against sums computed here and against an
//! independent parquet reader.

use crate::common::*;

#[test]
fn the_notebook_job_gives_the_sums_and_the_rows() {
    let ws = Workspace::new();
    let input = ws.csv_files("in", 0, 8, 1500, 60, 1);
    ws.write(
        "pipeline.toml",
        &notebook_pipeline("available_now = true", 3),
    );

    let out = ws.run_ok(&["run", "pipeline.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);

    // available_now with 3 files per trigger: 8 files make 3 epochs.
    let tables = console_tables(&stdout);
    assert_eq!(
        tables.keys().copied().collect::<Vec<_>>(),
        [1, 2, 3],
        "{stdout}"
    );
    let expected = sums(&input);
    assert!(expected.len() >= 50);
    assert_eq!(
        tables[&3], expected,
        "the console's last table is the running total"
    );
    assert_eq!(
        sums_file(&ws),
        expected,
        "the complete-mode file holds the final table"
    );

    // The archive holds exactly the input rows, once each, by either reader.
    assert_eq!(parquet_rows(&ws.path("out")), sorted(input.clone()));
    let (rows, types) = pyarrow_rows(&ws.path("out"));
    assert_eq!(rows, sorted(input));
    assert_eq!(types, ["string", "string", "int32"]);
    assert_eq!(
        duckdb_sums(&ws.path("out")),
        expected,
        "DuckDB reads the same rows"
    );
    assert_eq!(
        visible_files(&ws.path("out")).len(),
        3,
        "one file per epoch"
    );
}

#[test]
fn show_prints_the_committed_rows() {
    let ws = Workspace::new();
    let input = ws.csv_files("in", 0, 2, 50, 5, 2);
    ws.write("pipeline.toml", &notebook_pipeline("once = true", 1));
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);

    let out = ws.run_ok(&["show", "out", "--num-rows", "1000"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("|          File|    Shop|Sale_Count|"),
        "{text}"
    );
    assert!(text.ends_with("100 row(s) in 1 file(s)\n"), "{text}");
    let (file, shop, count) = &input[17];
    assert!(
        text.contains(&format!("|{file}|{shop}|{count:>10}|")),
        "{text}"
    );
}

#[test]
fn two_sources_into_one_aggregate_align_their_barriers() {
    let ws = Workspace::new();
    let north = ws.csv_files("north", 0, 5, 400, 20, 3);
    let south = ws.csv_files("south", 100, 2, 300, 20, 4);
    let sources = csv_source("north", "north", 1) + &csv_source("south", "south", 1);
    ws.write(
        "pipeline.toml",
        &format!(
            r#"
[trigger]
available_now = true
{sources}
[operators.by_shop]
type = "aggregate"
input = ["north", "south"]
group_by = ["Shop"]
aggregates = ["sum(Sale_Count)"]

[sinks.sums]
type = "csv"
input = "by_shop"
path = "sums"
output_mode = "complete"
"#
        ),
    );
    ws.run_ok(&["run", "pipeline.toml"]);
    let all: Vec<Row> = north.into_iter().chain(south).collect();
    assert_eq!(sums_file(&ws), sums(&all));
}
