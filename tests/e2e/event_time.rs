//! Event time: watermarks, windows and deduplication against an independent answer.
//! `event_time.py` writes out-of-order data with rows later than the watermark's delay, and
//! checks Weir's append output against DuckDB's windows (and its own sessions and
//! deduplication) over the rows that were not late, epoch by epoch as Spark judges them.

use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::*;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/event_time.py");

fn generate(ws: &Workspace, folder: &str, files: usize, rows: usize, seed: u64) {
    let out = Command::new("python3")
        .args([SCRIPT, "generate"])
        .arg(ws.path(folder))
        .args(["--files", &files.to_string(), "--rows", &rows.to_string()])
        .args(["--seed", &seed.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every event-time operator, each into its own parquet folder in append mode.
fn pipeline(trigger: &str) -> String {
    format!(
        r#"
[checkpoint]
path = "state"
interval = "30ms"

[trigger]
{trigger}

[sources.orders]
type = "csv"
path = "in"
schema = "order_id BIGINT, ts TIMESTAMP, shop STRING, amount INT"
max_files_per_trigger = 1
watermark = {{ column = "ts", delay = "5 minutes" }}

[operators.tumbling]
type = "aggregate"
input = "orders"
group_by = ["window(ts, '10 minutes')", "shop"]
aggregates = ["sum(amount) AS total", "count(*) AS n"]

[operators.sliding]
type = "aggregate"
input = "orders"
group_by = ["shop", "window(ts, '10 minutes', '5 minutes')"]
aggregates = ["sum(amount) AS total", "count(*) AS n"]

[operators.sessions]
type = "aggregate"
input = "orders"
group_by = ["session_window(ts, '40 seconds')", "shop"]
aggregates = ["sum(amount) AS total", "count(*) AS n"]

[operators.unique]
type = "deduplicate"
input = "orders"
columns = ["order_id"]

[sinks.tumbling_out]
type = "parquet"
input = "tumbling"
path = "out/tumbling"
output_mode = "append"

[sinks.sliding_out]
type = "parquet"
input = "sliding"
path = "out/sliding"
output_mode = "append"

[sinks.sessions_out]
type = "parquet"
input = "sessions"
path = "out/sessions"
output_mode = "append"

[sinks.unique_out]
type = "parquet"
input = "unique"
path = "out/unique"
output_mode = "append"
"#
    )
}

/// Runs the independent check; returns its output, failing the test on disagreement.
fn check(ws: &Workspace, progress: bool) -> String {
    let checks: Vec<String> = [
        ("tumbling", r#""size_s": 600"#),
        ("sliding", r#""size_s": 600, "slide_s": 300"#),
        ("session", r#""gap_s": 40"#),
        ("dedup", r#""size_s": 0"#),
    ]
    .iter()
    .map(|(kind, extra)| {
        let (folder, stage) = match *kind {
            "session" => ("sessions", "sessions"),
            "dedup" => ("unique", "unique"),
            other => (other, other),
        };
        let progress = match progress {
            true => format!(
                r#", "progress": "{}", "stage": "operators.{stage}""#,
                ws.path("progress.jsonl").display()
            ),
            false => String::new(),
        };
        format!(
            r#"{{"kind": "{kind}", "output": "{}", {extra}{progress}}}"#,
            ws.path(&format!("out/{folder}")).display()
        )
    })
    .collect();
    let spec = format!(
        r#"{{"input": "{}", "delay_s": 300, "checks": [{}]}}"#,
        ws.path("in").display(),
        checks.join(", ")
    );
    let spec_path = ws.write("spec.json", &spec);
    let out = Command::new("python3")
        .arg(SCRIPT)
        .arg("check")
        .arg(spec_path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "Weir and the independent answer disagree:\n{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("4 checks agree"), "{text}");
    text
}

/// The window starts `check` lists as not final yet, for one kind.
fn open_windows(report: &str, kind: &str) -> Vec<String> {
    report
        .lines()
        .find_map(|l| l.strip_prefix(&format!("open {kind}:")))
        .map(|rest| rest.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

#[test]
fn windows_sessions_and_deduplication_equal_the_independent_answer_over_rows_not_late() {
    let ws = Workspace::new();
    generate(&ws, "in", 8, 60, 7);
    ws.write("pipeline.toml", &pipeline("available_now = true"));
    ws.run_ok(&[
        "run",
        "pipeline.toml",
        "--quiet",
        "--progress-log",
        "progress.jsonl",
    ]);
    // Late rows were dropped and counted per operator: the check compares the counts.
    check(&ws, true);
}

#[test]
fn a_window_is_appended_once_and_only_after_the_watermark_passes_its_end() {
    let ws = Workspace::new();
    generate(&ws, "all", 6, 60, 3);
    // The first four files now, the rest later: the run in between ends with windows open.
    std::fs::create_dir_all(ws.path("in")).unwrap();
    for f in 0..4 {
        let name = format!("part-{f:03}.csv");
        std::fs::copy(
            ws.path(&format!("all/{name}")),
            ws.path(&format!("in/{name}")),
        )
        .unwrap();
    }
    ws.write("pipeline.toml", &pipeline("available_now = true"));
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    let first = check(&ws, false);
    let open = open_windows(&first, "tumbling");
    assert!(!open.is_empty(), "the last windows are still open: {first}");
    for f in 4..6 {
        let name = format!("part-{f:03}.csv");
        std::fs::copy(
            ws.path(&format!("all/{name}")),
            ws.path(&format!("in/{name}")),
        )
        .unwrap();
    }
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    // The same check over all six files: each window once, the earlier ones unchanged.
    let second = check(&ws, false);
    let still_open = open_windows(&second, "tumbling");
    let closed_now: Vec<_> = open.iter().filter(|w| !still_open.contains(w)).collect();
    assert!(
        !closed_now.is_empty(),
        "a window open after the first run is final after the second: {open:?} vs {still_open:?}"
    );
}

#[test]
fn killed_at_random_moments_windows_and_deduplication_are_exactly_once() {
    let ws = Workspace::new();
    let files = 12;
    generate(&ws, "in", files, 60, 11);
    ws.write("pipeline.toml", &pipeline("available_now = true"));
    let mut rng = 29u64;
    let mut next = move |bound: u64| {
        rng = rng
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (rng >> 33) % bound
    };
    let committed = |ws: &Workspace| visible_files(&ws.path("out/unique")).len();
    let (mut kills, mut runs) = (0, 0);
    loop {
        runs += 1;
        assert!(runs < 200, "no progress after {runs} runs");
        let before = committed(&ws);
        let mut child = ws.spawn(&["run", "pipeline.toml", "--quiet"]);
        if kills >= 8 {
            let status = child.wait().unwrap();
            assert!(status.success(), "the last run failed: {}", ws.stderr());
            break;
        }
        if runs % 2 == 0 {
            std::thread::sleep(Duration::from_millis(5 + next(60)));
        } else {
            // Just after a commit, so that every other run makes progress.
            let deadline = Instant::now() + Duration::from_secs(30);
            while committed(&ws) <= before
                && child.try_wait().unwrap().is_none()
                && Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(next(15)));
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "run {runs} failed: {}", ws.stderr());
            break;
        }
        signal_and_wait(&mut child, "KILL");
        kills += 1;
    }
    assert!(kills >= 3, "only {kills} kills landed before the run ended");
    // Every window and every order exactly once, late rows still late after restarts.
    check(&ws, false);
}

#[test]
fn a_long_continuous_run_keeps_window_state_flat() {
    let ws = Workspace::new();
    ws.write(
        "pipeline.toml",
        &pipeline("").replace("max_files_per_trigger = 1\n", ""),
    );
    std::fs::create_dir_all(ws.path("in")).unwrap();
    let mut child = ws.spawn(&[
        "run",
        "pipeline.toml",
        "--quiet",
        "--progress-log",
        "progress.jsonl",
    ]);
    // 220 files of ten minutes each: 220 tumbling windows pass, one file at a time.
    generate(&ws, "all", 220, 20, 5);
    for f in 0..220 {
        let name = format!("part-{f:03}.csv");
        std::fs::rename(
            ws.path(&format!("all/{name}")),
            ws.path(&format!("in/{name}")),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(15));
    }
    // Until every row has been read and committed.
    let read_all = wait_for(Duration::from_secs(90), || {
        let log = std::fs::read_to_string(ws.path("progress.jsonl")).unwrap_or_default();
        let rows: u64 = log
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|r| r["input_rows"].as_u64())
            .sum();
        rows >= 220 * 20
    });
    signal_and_wait(&mut child, "INT");
    let log = std::fs::read_to_string(ws.path("progress.jsonl")).unwrap();
    let mut keys = Vec::new();
    let mut checkpoint_bytes = Vec::new();
    for line in log.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        checkpoint_bytes.push(record["checkpoint_bytes"].as_u64().unwrap_or(0));
        let stage = record["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "operators.tumbling")
            .unwrap()
            .clone();
        keys.push((
            stage["state_keys"].as_u64().unwrap(),
            stage["state_bytes"].as_u64().unwrap(),
        ));
    }
    assert!(read_all, "not every row was read: {log}");
    assert!(keys.len() >= 10, "too few epochs: {}", keys.len());
    // Open windows: those within the delay of the newest row, five shops each. However many
    // windows have passed, the state never holds more than a few of them.
    let most = keys.iter().map(|k| k.0).max().unwrap();
    let most_bytes = keys.iter().map(|k| k.1).max().unwrap();
    let late = &keys[keys.len() / 2..];
    assert!(most <= 5 * 6, "state grew to {most} keys: {keys:?}");
    assert!(
        most_bytes < 8 * 1024,
        "state grew to {most_bytes} bytes: {keys:?}"
    );
    assert!(
        late.iter().any(|k| k.0 > 0),
        "the state was empty late in the run"
    );
    // What each checkpoint writes follows what changed, not how many windows went by. The
    // 90th percentile of each half, not its largest: an epoch that a loaded machine stalls
    // gathers more files and windows than the others, in either half.
    let half = checkpoint_bytes.len() / 2;
    let p90 = |part: &[u64]| {
        let mut sorted = part.to_vec();
        sorted.sort_unstable();
        sorted.get(sorted.len() * 9 / 10).copied().unwrap_or(0)
    };
    let first = p90(&checkpoint_bytes[..half]);
    let second = p90(&checkpoint_bytes[half..]);
    assert!(
        second <= 2 * first + 4096,
        "checkpoints grew from {first} to {second} bytes: {checkpoint_bytes:?}"
    );
    let script = "import sys, duckdb\n\
        print(duckdb.sql(f\"SELECT count(DISTINCT \\\"window\\\".start) FROM read_parquet('{sys.argv[1]}/*.parquet')\").fetchall()[0][0])";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(ws.path("out/tumbling"))
        .output()
        .unwrap();
    let windows: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    assert!(
        windows >= 200,
        "only {windows} windows were appended: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn csv_timestamps_and_dates_read_with_spark_patterns_and_a_time_zone() {
    let ws = Workspace::new();
    ws.write(
        "in/a.csv",
        "1,05/01/2024 10:30,02.01.2024\n2,2024-01-05 10:30,03.01.2024\n3,06/07/2024 23:59,xx\n",
    );
    let pipeline = |mode: &str| {
        format!(
            r#"
[trigger]
once = true
[sources.times]
type = "csv"
path = "in"
schema = "id INT, ts TIMESTAMP, day DATE"
timestamp_format = "dd/MM/yyyy HH:mm"
date_format = "dd.MM.yyyy"
time_zone = "Europe/Paris"
{mode}
[sinks.out]
type = "parquet"
input = "times"
path = "out"
"#
        )
    };
    ws.write("pipeline.toml", &pipeline("mode = \"failfast\""));
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("in/a.csv:2: field ts: \"2024-01-05 10:30\" is not a TIMESTAMP (the pattern is \"dd/MM/yyyy HH:mm\")"),
        "{stderr}"
    );
    ws.write(
        "pipeline.toml",
        &pipeline("corrupt_record_column = \"bad\""),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    let script = "import sys, duckdb\n\
        for r in duckdb.sql(f\"SELECT id, strftime(ts AT TIME ZONE 'UTC', '%Y-%m-%d %H:%M'), day, bad FROM read_parquet('{sys.argv[1]}/*.parquet') ORDER BY id\").fetchall(): print(r)";
    let read = Command::new("python3")
        .args(["-c", script])
        .arg(ws.path("out"))
        .output()
        .unwrap();
    let rows = String::from_utf8_lossy(&read.stdout);
    // Paris is UTC+1 in January and UTC+2 in July; a value that does not fit its pattern
    // is a malformed row, kept with a null in permissive mode.
    assert_eq!(
        rows.lines().collect::<Vec<_>>(),
        [
            "(1, '2024-01-05 09:30', datetime.date(2024, 1, 2), None)",
            "(2, None, datetime.date(2024, 1, 3), '2,2024-01-05 10:30,03.01.2024')",
            "(3, '2024-07-06 21:59', None, '3,06/07/2024 23:59,xx')",
        ],
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    ws.write(
        "pipeline.toml",
        &pipeline("").replace("Europe/Paris", "Mars/Olympus"),
    );
    let out = ws.weir(&["validate", "pipeline.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        stderr.contains("sources.times.time_zone: unknown time zone \"Mars/Olympus\""),
        "{stderr}"
    );
}

#[test]
fn append_of_a_window_without_a_watermark_is_refused_with_the_reason() {
    let ws = Workspace::new();
    ws.write("in/a.csv", "1,2024-01-01 00:00:00,a,1\n");
    let text = pipeline("available_now = true").replace(
        "watermark = { column = \"ts\", delay = \"5 minutes\" }\n",
        "",
    );
    ws.write("pipeline.toml", &text);
    let out = ws.weir(&["validate", "pipeline.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("sinks.tumbling_out.output_mode: \"append\" is not allowed: sink \"tumbling_out\" reads a windowed aggregate without a watermark"),
        "{stderr}"
    );
    let bad = pipeline("available_now = true").replace("column = \"ts\"", "column = \"shop\"");
    ws.write("pipeline.toml", &bad);
    let stderr =
        String::from_utf8_lossy(&ws.weir(&["validate", "pipeline.toml"]).stderr).to_string();
    assert!(
        stderr.contains("sources.orders.watermark.column: \"shop\" is STRING, but a watermark needs a TIMESTAMP or DATE column"),
        "{stderr}"
    );
    let bad =
        pipeline("available_now = true").replace("delay = \"5 minutes\"", "delay = \"5 parsecs\"");
    ws.write("pipeline.toml", &bad);
    let stderr =
        String::from_utf8_lossy(&ws.weir(&["validate", "pipeline.toml"]).stderr).to_string();
    assert!(
        stderr.contains("sources.orders.watermark.delay: \"5 parsecs\" is not an interval"),
        "{stderr}"
    );
    // A window is a struct, which CSV cannot hold (as in Spark).
    let csv = pipeline("available_now = true").replacen(
        "type = \"parquet\"\ninput = \"tumbling\"",
        "type = \"csv\"\ninput = \"tumbling\"",
        1,
    );
    ws.write("pipeline.toml", &csv);
    let stderr =
        String::from_utf8_lossy(&ws.weir(&["validate", "pipeline.toml"]).stderr).to_string();
    assert!(
        stderr.contains("sinks.tumbling_out.input: column \"window\" is STRUCT<start: TIMESTAMP, end: TIMESTAMP>, which a CSV file cannot hold"),
        "{stderr}"
    );
}

#[test]
fn a_window_over_two_sources_is_final_only_when_both_watermarks_pass_it() {
    let ws = Workspace::new();
    ws.write("a/1.csv", "2026-01-01 10:30:00,x,1\n");
    ws.write("b/1.csv", "2026-01-01 10:05:00,x,2\n");
    let source = |name: &str| {
        format!(
            r#"
[sources.{name}]
type = "csv"
path = "{name}"
schema = "ts TIMESTAMP, shop STRING, amount INT"
watermark = {{ column = "ts", delay = "0 seconds" }}
"#
        )
    };
    let text = format!(
        r#"
[checkpoint]
path = "state"
[trigger]
available_now = true
{}{}
[operators.per_window]
type = "aggregate"
input = ["a", "b"]
group_by = ["window(ts, '10 minutes')"]
aggregates = ["sum(amount) AS total"]
[operators.flat]
type = "select"
input = "per_window"
columns = ["window.start AS start", "total"]
[sinks.out]
type = "csv"
input = "flat"
path = "out"
output_mode = "append"
"#,
        source("a"),
        source("b")
    );
    ws.write("pipeline.toml", &text);
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    let rows = |ws: &Workspace| {
        let mut all = Vec::new();
        for file in visible_files(&ws.path("out")) {
            let text = std::fs::read_to_string(ws.path("out").join(file)).unwrap();
            all.extend(text.lines().skip(1).map(String::from));
        }
        all
    };
    // a is at 10:30, b at 10:05: the smaller watermark, 10:05, closes nothing.
    assert!(rows(&ws).is_empty(), "{:?}", rows(&ws));
    ws.write("b/2.csv", "2026-01-01 10:20:00,x,4\n");
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    // Now b is at 10:20: 10:00-10:10 (b's first row) is final; a's 10:30 is still open.
    let out = rows(&ws);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(
        out[0].contains("10:00:00") && out[0].ends_with(",2"),
        "{out:?}"
    );
}
