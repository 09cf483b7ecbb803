//! Exactly-once across crashes: kill the real binary at any moment, run it again, and the
//! output holds every input row once.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// A small deterministic generator for kill delays.
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

fn kill9(child: &mut std::process::Child) {
    Command::new("kill")
        .arg("-KILL")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
}

#[test]
fn killed_at_random_moments_the_output_has_every_row_once() {
    let ws = Workspace::new();
    let files = 60;
    let input = ws.csv_files("in", 0, files, 2000, 60, 21);
    ws.write(
        "pipeline.toml",
        &exactly_once_pipeline("available_now = true", 1),
    );
    let committed = |ws: &Workspace| visible_files(&ws.path("out")).len();
    kill_until_done(&ws, (committed, files), 30, 42, |_| {});
    assert_exactly_once(&ws, &input);
    let out = ws.run_ok(&["checkpoints", "state"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("sources.sales") && text.contains("60 file(s) done"),
        "{text}"
    );
}

#[test]
fn a_json_source_killed_at_random_moments_reads_every_line_once() {
    let ws = Workspace::new();
    let files = 40;
    let input = ws.json_files("in", 0, files, 1500, 60, 23);
    let pipeline = exactly_once_pipeline("available_now = true", 1).replace(
        &csv_source("sales", "in", 1),
        &json_source("sales", "in", 1),
    );
    assert!(pipeline.contains("type = \"json\""), "{pipeline}");
    ws.write("pipeline.toml", &pipeline);
    let committed = |ws: &Workspace| visible_files(&ws.path("out")).len();
    kill_until_done(&ws, (committed, files), 16, 44, |_| {});
    assert_exactly_once(&ws, &input);
}

/// Runs `ws`'s pipeline, killing it `kills_wanted` times (half at any moment, half just
/// after a commit), then lets the last run finish. `progress` says how much output is
/// committed (a count that grows at each commit) and what it ends at; `after_kill` looks at
/// the workspace after each kill, while nothing runs.
pub(crate) fn kill_until_done(
    ws: &Workspace,
    progress: (impl Fn(&Workspace) -> usize, usize),
    kills_wanted: usize,
    seed: u64,
    mut after_kill: impl FnMut(&Workspace),
) {
    let (committed_now, total) = progress;
    let mut rng = Lcg(seed);
    let mut kills = 0;
    let mut mid_run = 0;
    let mut runs = 0;
    loop {
        runs += 1;
        assert!(runs < 400, "no progress after {runs} runs");
        let committed = committed_now(ws);
        let mut child = ws.spawn(&["run", "pipeline.toml", "--quiet"]);
        if kills >= kills_wanted {
            let status = child.wait().unwrap();
            assert!(status.success(), "the last run failed: {}", ws.stderr());
            break;
        }
        if runs % 2 == 0 {
            // A moment anywhere, start-up included.
            std::thread::sleep(Duration::from_millis(5 + rng.below(60)));
        } else {
            // A moment just after the next commit, wherever the protocol is then, so that
            // every run makes some progress however slow the machine is.
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while committed_now(ws) <= committed
                && child.try_wait().unwrap().is_none()
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::thread::sleep(Duration::from_millis(rng.below(20)));
        }
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "run {runs} failed: {}", ws.stderr());
            break;
        }
        kill9(&mut child);
        kills += 1;
        after_kill(ws);
        let committed = committed_now(ws);
        if committed > 0 && committed < total {
            mid_run += 1;
        }
    }
    assert!(
        kills >= kills_wanted * 5 / 6,
        "only {kills} kills happened before the input ran out"
    );
    // Kills before the first commit or after the last one prove little.
    assert!(
        mid_run >= kills_wanted * 2 / 3,
        "only {mid_run} of {kills} kills came with part of the output committed"
    );
}

#[test]
fn killed_at_random_moments_with_clean_source_archive_no_file_moves_before_its_rows_commit() {
    killed_while_cleaning("archive", 43);
}

#[test]
fn killed_at_random_moments_with_clean_source_delete_no_file_goes_before_its_rows_commit() {
    killed_while_cleaning("delete", 44);
}

/// The random-kill test with `clean_source = how`: after every kill, each input file no
/// longer in `in/` has every one of its rows in the committed output (and, archived, is in
/// `done/` as it was); at the end every file is cleaned and every row is there once.
fn killed_while_cleaning(how: &str, seed: u64) {
    let ws = Workspace::new();
    let files = 40;
    let input = ws.csv_files("in", 0, files, 1000, 40, seed);
    let originals: std::collections::BTreeMap<String, Vec<u8>> = visible_files(&ws.path("in"))
        .into_iter()
        .map(|name| {
            let bytes = std::fs::read(ws.path("in").join(&name)).unwrap();
            (name, bytes)
        })
        .collect();
    let archive = if how == "archive" {
        "source_archive_dir = \"done\"\n"
    } else {
        ""
    };
    let pipeline = exactly_once_pipeline("available_now = true", 1).replace(
        "max_files_per_trigger = 1\n",
        &format!("max_files_per_trigger = 1\nclean_source = \"{how}\"\n{archive}"),
    );
    ws.write("pipeline.toml", &pipeline);
    let mut cleaned_mid_run = 0;
    let check = |ws: &Workspace| -> usize {
        let present: std::collections::BTreeSet<String> =
            visible_files(&ws.path("in")).into_iter().collect();
        let committed = parquet_rows(&ws.path("out"));
        let mut cleaned = 0;
        for (name, bytes) in &originals {
            if present.contains(name) {
                continue;
            }
            cleaned += 1;
            let rows: Vec<&Row> = input.iter().filter(|r| &r.0 == name).collect();
            let out = committed.iter().filter(|r| &r.0 == name).count();
            assert_eq!(
                out,
                rows.len(),
                "{name} was cleaned ({how}) with {out} of its {} rows committed",
                rows.len()
            );
            if how == "archive" {
                let archived = std::fs::read(ws.path("done").join(name))
                    .unwrap_or_else(|e| panic!("{name} left in/ but is not in done/: {e}"));
                assert!(
                    &archived == bytes,
                    "done/{name} differs from what was in in/"
                );
            }
        }
        cleaned
    };
    let committed = |ws: &Workspace| visible_files(&ws.path("out")).len();
    kill_until_done(&ws, (committed, files), 18, seed, |ws| {
        let cleaned = check(ws);
        if cleaned > 0 && cleaned < files {
            cleaned_mid_run += 1;
        }
    });
    assert_eq!(check(&ws), files, "every file is cleaned at the end");
    assert!(
        cleaned_mid_run >= 6,
        "only {cleaned_mid_run} kills came with some files cleaned and some not"
    );
    assert_exactly_once(&ws, &input);
    if how == "archive" {
        assert_eq!(
            visible_files(&ws.path("done")).len(),
            files,
            "one archived copy each"
        );
    }
}

#[test]
fn every_failure_point_recovers_exactly_once() {
    for point in weir::FAILURE_POINTS {
        let ws = Workspace::new();
        let input = ws.csv_files("in", 0, 6, 500, 20, 22);
        ws.write(
            "pipeline.toml",
            &exactly_once_pipeline("available_now = true", 1),
        );
        // The second time the point is reached, so that a checkpoint already exists.
        let out = ws.run_failing_at(point);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{point}: the failure was not injected"
        );
        assert!(
            stderr.contains(&format!("WEIR_FAIL_AT={point}")),
            "{point}: {stderr}"
        );
        ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
        assert_exactly_once(&ws, &input);
    }
}

#[test]
fn continuous_runs_killed_while_files_arrive_lose_and_duplicate_nothing() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", &exactly_once_pipeline("", 2));
    let arrivals = Arrivals {
        files: 24,
        rows: 400,
        every_ms: 40,
        seed: 100,
    };
    let (input, mut child) = killed_while_files_arrive(&ws, arrivals, 12, (20, 100), 7);
    let status = signal_and_wait(&mut child, "TERM");
    assert!(status.success(), "{}", ws.stderr());
    assert_exactly_once(&ws, &input);
}

/// Files of notebook rows dropped into `in/` one at a time.
struct Arrivals {
    files: usize,
    rows: usize,
    every_ms: u64,
    /// The first file's seed; file `f` takes `seed + f`.
    seed: u64,
}

/// Runs `ws`'s continuous pipeline while `arrivals` come, killing it `kills` times, each
/// after a random `wait` (least and spread, in ms); then starts a last run and waits until
/// its per-shop sums hold every file. Gives the input and that last run, still running.
fn killed_while_files_arrive(
    ws: &Workspace,
    arrivals: Arrivals,
    kills: usize,
    wait: (u64, u64),
    seed: u64,
) -> (Vec<Row>, std::process::Child) {
    let writer = {
        let dir = ws.path("in");
        std::thread::spawn(move || {
            let mut all = Vec::new();
            for f in 0..arrivals.files {
                let seed = arrivals.seed + f as u64;
                all.extend(csv_files(&dir, f, 1, arrivals.rows, 30, seed));
                std::thread::sleep(Duration::from_millis(arrivals.every_ms));
            }
            all
        })
    };
    let mut rng = Lcg(seed);
    for _ in 0..kills {
        let mut child = ws.spawn(&["run", "pipeline.toml", "--quiet"]);
        std::thread::sleep(Duration::from_millis(wait.0 + rng.below(wait.1)));
        kill9(&mut child);
    }
    let input = writer.join().unwrap();
    // A last run takes in whatever is left.
    let child = ws.spawn(&["run", "pipeline.toml", "--quiet"]);
    let expected = sums(&input);
    let caught_up = wait_for(Duration::from_secs(30), || {
        std::fs::read_to_string(ws.path("sums/result.csv")).is_ok() && sums_file(ws) == expected
    });
    assert!(caught_up, "the last run never caught up: {}", ws.stderr());
    (input, child)
}

#[test]
fn a_checkpoint_of_another_pipeline_is_refused_and_a_compatible_change_accepted() {
    let ws = Workspace::new();
    ws.csv_files("in", 0, 2, 100, 10, 23);
    let original = exactly_once_pipeline("once = true", 1);
    ws.write("pipeline.toml", &original);
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);

    ws.write(
        "pipeline.toml",
        &original.replace(r#"group_by = ["Shop"]"#, r#"group_by = ["File"]"#),
    );
    let out = ws.weir(&["run", "pipeline.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("was written by a different pipeline: operators.by_shop changed from"),
        "{stderr}"
    );
    assert!(
        stderr.contains("group_by [Shop]") && stderr.contains("group_by [File]"),
        "{stderr}"
    );

    let more_sinks = format!("{original}\n[sinks.display]\ntype = \"console\"\ninput = \"by_shop\"\noutput_mode = \"update\"\n");
    ws.write(
        "pipeline.toml",
        &more_sinks.replace("once = true", "available_now = true"),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
}

#[test]
fn a_second_run_on_the_same_checkpoint_is_refused() {
    let ws = Workspace::new();
    ws.write("pipeline.toml", &exactly_once_pipeline("", 1));
    let mut first = ws.spawn(&["run", "pipeline.toml"]);
    assert!(wait_for(Duration::from_secs(10), || ws
        .path("state/CURRENT")
        .exists()));
    let out = ws.weir(&["run", "pipeline.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("is in use by another weir process"),
        "{stderr}"
    );
    assert!(signal_and_wait(&mut first, "TERM").success());
}

#[test]
fn checkpoints_lists_positions_state_and_pending_files() {
    let ws = Workspace::new();
    ws.csv_files("in", 0, 3, 100, 10, 24);
    ws.write(
        "pipeline.toml",
        &exactly_once_pipeline("available_now = true", 1),
    );
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    let text = String::from_utf8(ws.run_ok(&["checkpoints", "state"]).stdout).unwrap();
    let epochs: Vec<&str> = text.lines().filter(|l| l.starts_with("epoch ")).collect();
    assert_eq!(epochs.len(), 3, "retain = 3 by default:\n{text}");
    assert!(text.contains("epoch 3  "), "{text}");
    assert!(text.contains("3 file(s) done"), "{text}");
    assert!(
        text.contains("operators.by_shop") && text.contains("10 group(s)"),
        "{text}"
    );
}

#[test]
fn a_recursive_glob_never_reads_a_file_that_is_not_committed() {
    let ws = Workspace::new();
    let input = ws.csv_files("in", 0, 4, 300, 10, 25);
    ws.write(
        "pipeline.toml",
        &exactly_once_pipeline("available_now = true", 1),
    );
    // Stopped, as by kill -9, with epoch 2 checkpointed and its files pre-committed in
    // out/_tmp, not yet renamed into place. Epoch 1's commit may or may not have run by
    // then (it is under way while epoch 2 completes): either state is one a crash leaves.
    let out = ws.run_failing_at("after-manifest-before-commit");
    assert!(!out.status.success());
    let tmp = visible_or_not(&ws.path("out/_tmp"));
    assert!(
        tmp.iter().any(|n| n.ends_with(".parquet.pending")),
        "no pending file to hide: {tmp:?}"
    );
    // DuckDB's recursive glob, common for partitioned output, descends into `_tmp`.
    let script = r#"
import sys, duckdb
try:
    print(duckdb.sql(f"SELECT count(*) FROM read_parquet('{sys.argv[1]}/**/*.parquet')").fetchall()[0][0])
except duckdb.IOException as e:
    # Nothing committed yet, and the pending files not taken for output either.
    if "No files found" not in str(e):
        raise
    print(0)
"#;
    let counted = Command::new("python3")
        .args(["-c", script])
        .arg(ws.path("out"))
        .output()
        .unwrap();
    assert!(
        counted.status.success(),
        "{}",
        String::from_utf8_lossy(&counted.stderr)
    );
    let counted: usize = String::from_utf8(counted.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        counted,
        parquet_rows(&ws.path("out")).len(),
        "rows of committed files only"
    );
    assert!(counted == 0 || counted == 300, "epoch 1 at most: {counted}");
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    assert_exactly_once(&ws, &input);
}

/// Every name in `dir`, hidden or not.
fn visible_or_not(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn validate_with_a_checkpoint_says_which_edits_keep_the_state() {
    let ws = Workspace::new();
    ws.csv_files("in", 0, 2, 100, 10, 26);
    let original = exactly_once_pipeline("available_now = true", 1);
    ws.write("pipeline.toml", &original);
    // Before any run: nothing to resume, any pipeline may start.
    let fresh = ws.weir(&["validate", "pipeline.toml", "--checkpoint", "state"]);
    assert!(!fresh.status.success(), "no store there yet is an error");
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);

    // A sink added, the archive sink removed, the trigger changed: the state is kept.
    let kept = original
        .replace("available_now = true", "processing_time = \"5s\"")
        .replace("[sinks.archive]\ntype = \"parquet\"\ninput = \"sales\"\npath = \"out\"\noutput_mode = \"append\"\n", "")
        + "\n[sinks.display]\ntype = \"console\"\ninput = \"by_shop\"\noutput_mode = \"complete\"\n";
    ws.write("edited.toml", &kept);
    let out = ws.weir(&["validate", "edited.toml", "--checkpoint", "state"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("a run resumes from epoch 2"), "{stdout}");
    assert!(
        stdout.contains("keeps state: sinks.display is new"),
        "{stdout}"
    );
    assert!(
        stdout.contains("keeps state: sinks.archive was removed"),
        "{stdout}"
    );

    // An operator changed and a source added: refused, each named, exit 2.
    let refused = original.replace(r#"group_by = ["Shop"]"#, r#"group_by = ["File"]"#)
        + &csv_source("more", "in2", 1)
        + "\n[sinks.more_out]\ntype = \"parquet\"\ninput = \"more\"\npath = \"out2\"\n";
    ws.write("refused.toml", &refused);
    let out = ws.weir(&["validate", "refused.toml", "--checkpoint", "state"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stdout}{stderr}");
    assert!(stdout.contains("a run would be refused"), "{stdout}");
    assert!(
        stdout.contains("refused: operators.by_shop changed from")
            && stdout.contains("refused: sources.more is new"),
        "{stdout}"
    );
    assert!(
        stderr.contains("refused.toml: checkpoint.path: operators.by_shop changed"),
        "{stderr}"
    );
    // What validate said is what a run does.
    let run = ws.weir(&["run", "refused.toml", "--quiet"]);
    assert_eq!(run.status.code(), Some(2));
}

/// Removes every pending file in `dir/_tmp`, as a power loss would undo renames that were
/// not yet durable on a file system without the folder syncs.
fn lose_pending_files(ws: &Workspace, dir: &str) -> usize {
    let tmp = ws.path(dir).join("_tmp");
    let mut lost = 0;
    for name in visible_or_not(&tmp) {
        if name.ends_with(".pending") {
            std::fs::remove_file(tmp.join(name)).unwrap();
            lost += 1;
        }
    }
    lost
}

#[test]
fn pending_files_lost_to_a_power_loss_are_never_taken_as_committed_and_fall_back_reads_them_again()
{
    let ws = Workspace::new();
    let mut input = ws.csv_files("in", 0, 1, 300, 10, 26);
    ws.write(
        "pipeline.toml",
        &exactly_once_pipeline("available_now = true", 1),
    );
    // Epoch 1 commits: `sums/result.csv` holds its table.
    ws.run_ok(&["run", "pipeline.toml", "--quiet"]);
    // Then a run stops, as by kill -9, with epoch 2 checkpointed and its files pending.
    input.extend(ws.csv_files("in", 1, 1, 300, 10, 28));
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "pipeline.toml", "--quiet"])
        .current_dir(ws.path(""))
        .env("WEIR_FAIL_AT", "after-manifest-before-commit")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let epoch_one = sums_file(&ws);
    assert_ne!(epoch_one, sums(&input));
    // The complete-mode sink loses its pending file; the archive's survives and commits.
    assert_eq!(lose_pending_files(&ws, "sums"), 1);

    // An old result.csv beside a lost pending file is not epoch 2's: the run stops, naming
    // the file and the way out, and leaves the output as it was.
    let out = ws.weir(&["run", "pipeline.toml", "--quiet"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    for part in [
        "sums/_tmp/part-000002-0000.csv.pending",
        "power loss",
        "--fall-back",
    ] {
        assert!(stderr.contains(part), "{part:?} not in: {stderr}");
    }
    assert_eq!(sums_file(&ws), epoch_one);

    // With --fall-back, epoch 2 is read again from checkpoint 1: every row once, the sums of
    // every row.
    ws.run_ok(&["run", "pipeline.toml", "--quiet", "--fall-back"]);
    assert_exactly_once(&ws, &input);
}

/// The order of the file system calls that make a pending file survive a power loss: its
/// rename into `_tmp` is followed by a sync of `_tmp` before the checkpoint that names it is
/// synced (RocksDB's write-ahead log), and the commit's rename by a sync of the output folder.
#[test]
fn every_rename_is_synced_before_the_checkpoint_that_depends_on_it() {
    let ws = Workspace::new();
    ws.csv_files("in", 0, 3, 100, 10, 27);
    ws.write(
        "pipeline.toml",
        &exactly_once_pipeline("available_now = true", 1),
    );
    let traced = Command::new("strace")
        .args(["-f", "-y", "-qq", "-o", "trace.txt"])
        .args([
            "-e",
            "trace=mkdir,mkdirat,rename,renameat,renameat2,fsync,fdatasync",
        ])
        .arg(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "pipeline.toml", "--quiet"])
        .current_dir(ws.path(""))
        .output()
        .expect("strace (make setup installs it) traces the run");
    assert!(
        traced.status.success(),
        "{}",
        String::from_utf8_lossy(&traced.stderr)
    );
    let trace = std::fs::read_to_string(ws.path("trace.txt")).unwrap();
    // One call per line, without the pid; calls that strace split (`<unfinished ...>`) are
    // taken where they began.
    let calls: Vec<&str> = trace
        .lines()
        .filter(|l| !l.contains("resumed>"))
        .map(|l| l.split_once(' ').map_or(l, |(_, call)| call.trim_start()))
        .collect();
    let synced = |from: usize, folder: &str| {
        calls[from..]
            .iter()
            .position(|c| c.starts_with("fsync(") && c.contains(&format!("<{folder}>")))
            .map(|i| i + from)
    };
    let wal_sync = |from: usize| {
        calls[from..]
            .iter()
            .position(|c| {
                c.starts_with("fdatasync(") && c.contains("/state/") && c.contains(".log>")
            })
            .map(|i| i + from)
    };
    let root = ws.path("").canonicalize().unwrap();
    let mut pending = 0;
    let mut committed = 0;
    for (i, call) in calls.iter().enumerate() {
        if !call.starts_with("rename") {
            continue;
        }
        for sink in ["out", "sums"] {
            let folder = root.join(sink);
            let tmp = folder.join("_tmp");
            // Paths as weir passed them (relative here); synced folders as strace resolves them.
            let in_tmp = format!("{sink}/_tmp/");
            let to_pending = call.contains(".pending\"") && call.matches(&in_tmp).count() == 2;
            let into_place = call.contains(".pending\"") && call.matches(&in_tmp).count() == 1;
            if to_pending {
                pending += 1;
                let sync = synced(i, &tmp.display().to_string());
                let wal = wal_sync(i);
                assert!(
                    sync.is_some() && (wal.is_none() || sync < wal),
                    "{call}: _tmp synced at {sync:?}, checkpoint synced at {wal:?}"
                );
            } else if into_place {
                committed += 1;
                let sync = synced(i, &folder.display().to_string());
                assert!(
                    sync.is_some(),
                    "{call}: the output folder is never synced after"
                );
            }
        }
    }
    assert_eq!(
        (pending, committed),
        (6, 6),
        "two sinks, three epochs:\n{trace}"
    );
    // The folders themselves: `_tmp`'s entry is synced into its folder before any checkpoint.
    let made = calls
        .iter()
        .position(|c| c.starts_with("mkdir") && c.contains("out/_tmp\""))
        .expect("out/_tmp is created");
    let sync = synced(made, &root.join("out").display().to_string());
    assert!(
        sync.is_some() && sync < wal_sync(made),
        "out/_tmp is not durable before the first checkpoint"
    );
}

#[test]
fn partitioned_and_rolled_parquet_killed_at_random_moments_reads_back_once_with_hive_partitioning()
{
    let ws = Workspace::new();
    let input = ws.csv_files("in", 0, 30, 1000, 7, 45);
    let pipeline = format!(
        r#"
[checkpoint]
path = "state"
interval = "50ms"

[trigger]
available_now = true
{source}
[sinks.archive]
type = "parquet"
input = "sales"
path = "out"
partition_by = ["Shop"]
max_rows_per_file = 60
"#,
        source = csv_source("sales", "in", 1)
    );
    ws.write("pipeline.toml", &pipeline);
    // Committed files, below the partition folders; every epoch adds some.
    let committed = |ws: &Workspace| {
        visible_files(&ws.path("out"))
            .iter()
            .map(|folder| visible_files(&ws.path("out").join(folder)).len())
            .sum::<usize>()
    };
    kill_until_done(&ws, (committed, usize::MAX), 12, 46, |_| {});
    let folders = visible_files(&ws.path("out"));
    assert_eq!(folders.len(), 7, "{folders:?}");
    for folder in &folders {
        assert!(folder.starts_with("Shop=Shop_"), "{folder}");
        for file in visible_files(&ws.path("out").join(folder)) {
            let rows = parquet_file_rows_without_shop(&ws.path("out").join(folder).join(&file));
            assert!(rows <= 60, "{folder}/{file} holds {rows} rows");
        }
    }
    let expected = sorted(input);
    assert_eq!(
        hive_rows(&ws.path("out"), "duckdb"),
        expected,
        "DuckDB, hive_partitioning"
    );
    assert_eq!(
        hive_rows(&ws.path("out"), "pyarrow"),
        expected,
        "pyarrow, partitioning=hive"
    );
}

/// Rows in one parquet file of a partition folder, from its metadata.
fn parquet_file_rows_without_shop(path: &std::path::Path) -> i64 {
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .num_rows()
}

/// The file-size test: a 100 ms interval over slow input, with the archive sink holding
/// files open toward `target_file_size`, killed at random moments while files arrive. Every
/// row is committed once, and every file but those the last run's end committed is near
/// the target, where a file per epoch would be a tenth of it or less.
#[test]
fn held_files_reach_target_file_size_at_a_100ms_interval_and_survive_kills() {
    let ws = Workspace::new();
    let target: u64 = 8 * 1024;
    let pipeline = exactly_once_pipeline("", 1)
        .replace("interval = \"50ms\"", "interval = \"100ms\"")
        .replace(
            "path = \"out\"\n",
            &format!("path = \"out\"\ntarget_file_size = {target}\n"),
        );
    ws.write("pipeline.toml", &pipeline);
    let arrivals = Arrivals {
        files: 60,
        rows: 200,
        every_ms: 50,
        seed: 300,
    };
    let (input, mut child) = killed_while_files_arrive(&ws, arrivals, 12, (80, 320), 47);
    // Before the stop, the rows of the file being filled are held, not visible.
    let held = parquet_rows(&ws.path("out")).len();
    assert!(held < input.len(), "nothing was held back");
    let status = signal_and_wait(&mut child, "TERM");
    assert!(status.success(), "{}", ws.stderr());
    assert_exactly_once(&ws, &input);

    let names = visible_files(&ws.path("out"));
    let epoch = |name: &str| -> u64 { name[5..11].parse().unwrap() };
    let last = names.iter().map(|n| epoch(n)).max().unwrap();
    let sizes: Vec<(String, u64)> = names
        .iter()
        .map(|n| (n.clone(), ws.path("out").join(n).metadata().unwrap().len()))
        .collect();
    let filled: Vec<&(String, u64)> = sizes.iter().filter(|(n, _)| epoch(n) < last).collect();
    assert!(filled.len() >= 3, "too few files to judge: {sizes:?}");
    for (name, size) in &filled {
        assert!(
            *size >= target * 3 / 4 && *size <= target * 3 / 2,
            "{name} is {size} bytes, far from the {target}-byte target: {sizes:?}"
        );
    }
}
