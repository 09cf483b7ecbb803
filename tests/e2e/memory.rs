//! Memory that does not follow the input: a sink keeps only what it needs, so a run over ten
//! times the rows peaks at about the same resident size (GNU time's maximum RSS).

use std::fmt::Write as _;
use std::process::Command;

use crate::common::*;

/// `files` CSV files of 100,000 notebook rows each in `folder`.
fn rows_in(ws: &Workspace, folder: &str, files: usize) {
    for f in 0..files {
        let mut text = String::from("File;Shop;Sale_Count\n");
        for i in 0..100_000 {
            let _ = writeln!(text, "part{f};Shop_{:04};{}", i % 997, i % 1000);
        }
        ws.write(&format!("{folder}/part{f:03}.csv"), &text);
    }
}

/// Peak resident memory, in KiB, of `weir run PIPELINE --quiet`.
fn peak_rss_kib(ws: &Workspace, pipeline: &str) -> u64 {
    let out = Command::new("/usr/bin/time")
        .args([
            "-f",
            "%M",
            "-o",
            "rss.txt",
            env!("CARGO_BIN_EXE_weir"),
            "run",
            pipeline,
            "--quiet",
        ])
        .current_dir(ws.path(""))
        .output()
        .expect("GNU time (make setup installs it) measures peak memory");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(ws.path("rss.txt")).unwrap();
    text.lines().last().unwrap().trim().parse().unwrap()
}

#[test]
fn a_console_sink_over_ten_times_the_rows_peaks_at_the_same_memory() {
    let ws = Workspace::new();
    for (name, files) in [("small", 2), ("big", 20)] {
        rows_in(&ws, name, files);
        // One epoch holds every row: a sink that kept its epoch's batches would hold them all.
        ws.write(
            &format!("{name}.toml"),
            &format!(
                r#"
[trigger]
once = true

[sources.sales]
type = "csv"
path = "{name}"
schema = "File STRING, Shop STRING, Sale_Count INT"
header = true
sep = ";"

[sinks.display]
type = "console"
input = "sales"
num_rows = 5
"#
            ),
        );
    }
    let small = peak_rss_kib(&ws, "small.toml");
    let big = peak_rss_kib(&ws, "big.toml");
    // 1.8 M more rows are about 45 MiB of Arrow batches; what a sink that keeps only its
    // five rows may add is noise.
    assert!(
        big < small + 12 * 1024,
        "200,000 rows peaked at {small} KiB, 2,000,000 at {big} KiB"
    );
}

#[test]
fn weir_show_over_ten_times_the_rows_peaks_at_the_same_memory_and_counts_them_all() {
    let ws = Workspace::new();
    let mut peaks = Vec::new();
    for (name, files) in [("small", 2), ("big", 20)] {
        rows_in(&ws, name, files);
        ws.write(
            &format!("{name}.toml"),
            &format!(
                r#"
[trigger]
available_now = true

[sources.sales]
type = "csv"
path = "{name}"
schema = "File STRING, Shop STRING, Sale_Count INT"
header = true
sep = ";"
max_files_per_trigger = 1

[sinks.archive]
type = "parquet"
input = "sales"
path = "out_{name}"
"#
            ),
        );
        ws.run_ok(&["run", &format!("{name}.toml"), "--quiet"]);
        let out = Command::new("/usr/bin/time")
            .args([
                "-f",
                "%M",
                "-o",
                "rss.txt",
                env!("CARGO_BIN_EXE_weir"),
                "show",
            ])
            .args([format!("out_{name}"), "-n".into(), "5".into()])
            .current_dir(ws.path(""))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed = String::from_utf8(out.stdout).unwrap();
        let rows = files * 100_000;
        assert!(
            printed.contains(&format!("{rows} row(s) in {files} file(s)")),
            "{printed}"
        );
        assert!(printed.contains("only showing top 5 rows"), "{printed}");
        let text = std::fs::read_to_string(ws.path("rss.txt")).unwrap();
        peaks.push(text.lines().last().unwrap().trim().parse::<u64>().unwrap());
    }
    assert!(
        peaks[1] < peaks[0] + 12 * 1024,
        "weir show peaked at {} KiB over 200,000 rows, {} KiB over 2,000,000",
        peaks[0],
        peaks[1]
    );
}
