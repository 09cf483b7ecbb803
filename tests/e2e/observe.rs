//! `weir run --http`: Prometheus metrics that a real Prometheus parser accepts and whose
//! counters equal the rows read and written, the JSON API, the dashboard in headless
//! Chromium, and `weir graph --format dot|svg`.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common::*;

/// Status and body of `method path` on `address`, over plain HTTP/1.1.
fn request(address: &str, method: &str, path: &str) -> (u16, String) {
    request_with(address, method, path, "")
}

/// [`request`] with more header lines (each ending in `\r\n`).
fn request_with(address: &str, method: &str, path: &str, headers: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn get_json(address: &str, path: &str) -> Value {
    let (status, body) = request(address, "GET", path);
    assert_eq!(status, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// The address `weir run --http 127.0.0.1:0` printed on standard error.
fn served_address(ws: &Workspace) -> String {
    let mut address = None;
    let found = wait_for(Duration::from_secs(30), || {
        address = ws.stderr().lines().find_map(|l| {
            l.strip_prefix("weir: dashboard at http://")
                .and_then(|rest| rest.split('/').next())
                .map(str::to_string)
        });
        address.is_some()
    });
    assert!(found, "no address printed: {}", ws.stderr());
    address.unwrap()
}

/// `program args` with `input` on its standard input: what it printed, and how it ended.
fn pipe_through(program: &str, args: &[&str], input: &str) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (make setup installs it): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// What Prometheus asks for.
const OPEN_METRICS: &str = "Accept: application/openmetrics-text; version=1.0.0\r\n";

/// Every sample of a scrape, parsed by the Prometheus project's Python parser (`format`:
/// `openmetrics`, strict, or `classic`), keyed by `name{stage}` (or `name` for pipeline
/// series).
fn parse_metrics(text: &str, format: &str) -> BTreeMap<String, f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/metrics_check.py");
    let out = pipe_through("python3", &[script, format], text);
    assert!(
        out.status.success(),
        "the Prometheus parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut samples = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let sample: Value = serde_json::from_str(line).unwrap();
        let name = sample["name"].as_str().unwrap();
        let key = match (
            sample["labels"]["stage"].as_str(),
            sample["labels"]["le"].as_str(),
        ) {
            (Some(stage), _) => format!("{name}{{{stage}}}"),
            (None, Some(le)) => format!("{name}{{le={le}}}"),
            (None, None) => name.to_string(),
        };
        samples.insert(key, sample["value"].as_f64().unwrap());
    }
    samples
}

#[test]
fn metrics_parse_as_openmetrics_and_count_every_row_read_and_written() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", &exactly_once_pipeline("", 2));
    let mut input = ws.csv_files("in", 0, 5, 1_500, 40, 71);
    let mut child = ws.spawn(&[
        "run",
        "pipeline.toml",
        "--http",
        "127.0.0.1:0",
        "--progress-log",
        "progress.jsonl",
    ]);
    let address = served_address(&ws);
    // More files while it runs, of another size, so that the totals are not the first
    // epoch's.
    input.extend(ws.csv_files("in", 5, 3, 2_345, 40, 72));
    let total = input.len() as f64;
    let mut samples = BTreeMap::new();
    let committed = wait_for(Duration::from_secs(60), || {
        let (_, text) = request_with(&address, "GET", "/metrics", OPEN_METRICS);
        samples = parse_metrics(&text, "openmetrics");
        samples.get("weir_pipeline_input_rows_total") == Some(&total)
            && samples.get("weir_stage_rows_out_total{sinks.archive}") == Some(&total)
    });
    assert!(committed, "not every row committed: {samples:?}");

    for (series, expected) in [
        ("weir_stage_rows_in_total{sources.sales}", total),
        ("weir_stage_rows_out_total{sources.sales}", total),
        ("weir_stage_rows_in_total{operators.by_shop}", total),
        ("weir_stage_rows_in_total{sinks.archive}", total),
        ("weir_stage_rows_out_total{sinks.archive}", total),
        ("weir_stage_malformed_rows_total{sources.sales}", 0.0),
        ("weir_stage_state_keys{operators.by_shop}", 40.0),
        ("weir_pipeline_epochs_failed_total", 0.0),
    ] {
        assert_eq!(
            samples.get(series),
            Some(&expected),
            "{series}: {samples:?}"
        );
    }
    let epochs = samples["weir_pipeline_epochs_completed_total"];
    assert!(epochs >= 2.0, "{epochs} epochs for 8 files at 2 per epoch");
    assert_eq!(
        samples["weir_pipeline_epoch_duration_seconds_count"],
        epochs
    );
    assert_eq!(samples["weir_pipeline_checkpoint_size_bytes_count"], epochs);
    for stage in [
        "sources.sales",
        "operators.by_shop",
        "sinks.sums",
        "sinks.archive",
    ] {
        let shares: f64 = ["busy", "backpressured", "idle"]
            .iter()
            .map(|s| samples[&format!("weir_stage_{s}_ratio{{{stage}}}")])
            .sum();
        assert!(
            (shares - 1.0).abs() < 0.01,
            "{stage}'s shares add up to {shares}"
        );
        assert!(samples[&format!("weir_stage_busy_seconds_total{{{stage}}}")] > 0.0);
    }

    // Without asking for OpenMetrics, the classic text format: the same series, and what
    // Debian's promtool (the Prometheus project's linter) accepts without a complaint.
    let (status, classic) = request(&address, "GET", "/metrics");
    assert_eq!(status, 200);
    let classic_samples = parse_metrics(&classic, "classic");
    assert_eq!(
        classic_samples.keys().collect::<Vec<_>>(),
        samples.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        classic_samples["weir_stage_rows_out_total{sinks.archive}"],
        total
    );
    // promtool is Debian's prometheus package: make setup installs it.
    let checked = pipe_through("promtool", &["check", "metrics"], &classic);
    assert!(
        checked.status.success() && checked.stdout.is_empty() && checked.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    // The JSON API: the graph with every stage and edge, records in epoch order, the
    // checkpoints of `weir checkpoints`.
    let graph = get_json(&address, "/api/graph");
    let ids: Vec<&str> = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "sources.sales",
            "operators.by_shop",
            "sinks.archive",
            "sinks.sums"
        ]
    );
    assert_eq!(graph["edges"].as_array().unwrap().len(), 3);
    let progress = get_json(&address, "/api/progress");
    let epochs_seen: Vec<u64> = progress
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["epoch"].as_u64().unwrap())
        .collect();
    assert!(
        epochs_seen.windows(2).all(|w| w[0] < w[1]),
        "{epochs_seen:?}"
    );
    let rows: u64 = progress
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["input_rows"].as_u64().unwrap())
        .sum();
    assert_eq!(rows as f64, total);
    let checkpoints = get_json(&address, "/api/checkpoints");
    let kept = checkpoints["checkpoints"].as_array().unwrap();
    assert!(
        !kept.is_empty() && kept.iter().all(|c| c["damaged"].is_null()),
        "{checkpoints}"
    );
    let samples_json = get_json(&address, "/api/samples");
    assert!(!samples_json["samples"].as_array().unwrap().is_empty());
    let (status, page) = request(&address, "GET", "/");
    assert_eq!(status, 200);
    assert!(page.contains("<svg id=\"graph\""));
    // Read-only: nothing but GET.
    assert_eq!(request(&address, "POST", "/metrics").0, 405);
    assert_eq!(request(&address, "GET", "/nothing").0, 404);

    assert!(
        signal_and_wait(&mut child, "INT").success(),
        "{}",
        ws.stderr()
    );
    assert_exactly_once(&ws, &input);
}

#[test]
fn the_dashboard_draws_every_stage_and_charts_that_move_in_chromium() {
    let ws = Workspace::new();
    // A stream that keeps arriving: a chart that updates needs new figures.
    ws.write("pipeline.toml", &exactly_once_pipeline("", 1));
    let input = ws.csv_files("in", 0, 2, 500, 30, 5);
    let mut child = ws.spawn(&["run", "pipeline.toml", "--http", "127.0.0.1:0"]);
    let address = served_address(&ws);
    let feeder = {
        let dir = ws.path("in");
        std::thread::spawn(move || {
            let mut rows = Vec::new();
            for i in 0..12 {
                std::thread::sleep(Duration::from_millis(700));
                rows.extend(csv_files(&dir, 2 + i, 1, 300 + 37 * i, 30, 100 + i as u64));
            }
            rows
        })
    };
    let artifacts = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("dashboard.png");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/dashboard.mjs");
    let out = Command::new("node")
        .arg(script)
        .arg(format!("http://{address}/"))
        .arg(&screenshot)
        .arg("sources.sales,operators.by_shop,sinks.sums,sinks.archive")
        .output()
        .expect("node (Node.js) runs the browser test: make setup installs it");
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "the browser test failed: {report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = input;
    all.extend(feeder.join().unwrap());
    assert!(report.contains("stages found: 4"), "{report}");
    assert!(std::fs::metadata(&screenshot).unwrap().len() > 10_000);
    println!("{report}screenshot kept at {}", screenshot.display());
    // Files written just before a stop are read by the next run: wait for them here.
    let out = ws.path("out");
    wait_for(Duration::from_secs(30), || {
        parquet_rows(&out).len() == all.len()
    });
    assert!(
        signal_and_wait(&mut child, "INT").success(),
        "{}",
        ws.stderr()
    );
    assert_exactly_once(&ws, &all);
}

#[test]
fn graph_prints_dot_and_svg() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        &exactly_once_pipeline("available_now = true", 1),
    );
    let out = ws.run_ok(&["graph", "pipeline.toml", "--format", "dot"]);
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(
        dot.starts_with("digraph \"shop_sales\"") || dot.starts_with("digraph \"pipeline\""),
        "{dot}"
    );
    for edge in [
        "\"sources.sales\" -> \"operators.by_shop\"",
        "\"operators.by_shop\" -> \"sinks.sums\"",
        "\"sources.sales\" -> \"sinks.archive\"",
    ] {
        assert!(dot.contains(edge), "{edge} missing from {dot}");
    }
    // Graphviz reads it: make setup installs it, and `--format svg` draws with it.
    let out = ws.run_ok(&["graph", "pipeline.toml", "--format", "svg"]);
    let svg = String::from_utf8(out.stdout).unwrap();
    assert!(
        svg.contains("<svg") && svg.contains("operators.by_shop"),
        "{svg}"
    );
}

#[test]
fn a_bad_or_busy_http_address_is_a_config_error_naming_the_key() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        &exactly_once_pipeline("available_now = true", 1),
    );
    ws.csv_files("in", 0, 1, 10, 3, 1);
    let out = ws.weir(&["run", "pipeline.toml", "--http", "localhost"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("http.bind") && stderr.contains("127.0.0.1:9180"),
        "{stderr}"
    );
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let out = ws.weir(&["run", "pipeline.toml", "--http", &address]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("http.bind") && stderr.contains("cannot listen"),
        "{stderr}"
    );
    // Nothing ran: no output was committed.
    assert!(visible_files(&ws.path("out")).is_empty());
}
