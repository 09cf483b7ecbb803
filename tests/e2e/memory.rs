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

/// Runs `weir ARGS` under GNU time: what it printed, and its peak resident memory in KiB.
fn peak_rss_kib(ws: &Workspace, args: &[&str]) -> (String, u64) {
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o", "rss.txt", env!("CARGO_BIN_EXE_weir")])
        .args(args)
        .current_dir(ws.path(""))
        .output()
        .expect("GNU time (make setup installs it) measures peak memory");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(ws.path("rss.txt")).unwrap();
    let kib = text.lines().last().unwrap().trim().parse().unwrap();
    (String::from_utf8(out.stdout).unwrap(), kib)
}

/// 12 MiB: 1.8 M more rows are about 45 MiB of Arrow batches; what a stage that keeps only
/// the rows it prints may add is noise.
const SLACK_KIB: u64 = 12 * 1024;

#[test]
fn a_console_sink_over_ten_times_the_rows_peaks_at_the_same_memory() {
    let ws = Workspace::new();
    let mut peaks = Vec::new();
    for (name, files) in [("small", 2), ("big", 20)] {
        rows_in(&ws, name, files);
        // One epoch holds every row: a sink that kept its epoch's batches would hold them all.
        let source = csv_source("sales", name, files);
        let sink = "[sinks.display]\ntype = \"console\"\ninput = \"sales\"\nnum_rows = 5\n";
        ws.write(
            &format!("{name}.toml"),
            &format!("[trigger]\nonce = true\n{source}\n{sink}"),
        );
        let toml = format!("{name}.toml");
        peaks.push(peak_rss_kib(&ws, &["run", &toml, "--quiet"]).1);
    }
    assert!(
        peaks[1] < peaks[0] + SLACK_KIB,
        "200,000 rows peaked at {} KiB, 2,000,000 at {} KiB",
        peaks[0],
        peaks[1]
    );
}

#[test]
fn weir_show_over_ten_times_the_rows_peaks_at_the_same_memory_and_counts_them_all() {
    let ws = Workspace::new();
    let mut peaks = Vec::new();
    for (name, files) in [("small", 2), ("big", 20)] {
        rows_in(&ws, name, files);
        let source = csv_source("sales", name, 1);
        let sink = format!(
            "[sinks.archive]\ntype = \"parquet\"\ninput = \"sales\"\npath = \"out_{name}\"\n"
        );
        ws.write(
            &format!("{name}.toml"),
            &format!("[trigger]\navailable_now = true\n{source}\n{sink}"),
        );
        ws.run_ok(&["run", &format!("{name}.toml"), "--quiet"]);
        let out = format!("out_{name}");
        let (printed, peak) = peak_rss_kib(&ws, &["show", &out, "-n", "5"]);
        let rows = files * 100_000;
        assert!(
            printed.contains(&format!("{rows} row(s) in {files} file(s)")),
            "{printed}"
        );
        assert!(printed.contains("only showing top 5 rows"), "{printed}");
        peaks.push(peak);
    }
    assert!(
        peaks[1] < peaks[0] + SLACK_KIB,
        "weir show peaked at {} KiB over 200,000 rows, {} KiB over 2,000,000",
        peaks[0],
        peaks[1]
    );
}
