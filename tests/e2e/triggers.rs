//! Every trigger: bounded ones end by themselves, unbounded ones pick up new files and stop
//! cleanly on a signal.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::*;

#[test]
fn once_reads_everything_in_one_epoch_and_exits() {
    let ws = Workspace::new();
    let input = ws.csv_files("in", 0, 5, 200, 10, 5);
    // max_files_per_trigger does not apply to once, as in Spark.
    ws.write("pipeline.toml", &notebook_pipeline("once = true", 1));
    let out = ws.run_ok(&["run", "pipeline.toml"]);
    let tables = console_tables(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(tables.keys().copied().collect::<Vec<_>>(), [1]);
    assert_eq!(tables[&1], sums(&input));
    assert_eq!(visible_files(&ws.path("out")), ["part-000001-0000.parquet"]);
}

#[test]
fn available_now_on_an_empty_folder_exits_cleanly() {
    let ws = Workspace::new();
    std::fs::create_dir_all(ws.path("in")).unwrap();
    ws.write(
        "pipeline.toml",
        &notebook_pipeline("available_now = true", 2),
    );
    ws.run_ok(&["run", "pipeline.toml"]);
    assert!(visible_files(&ws.path("out")).is_empty());
}

#[test]
fn available_now_with_a_limit_runs_one_epoch_per_batch_of_files() {
    let ws = Workspace::new();
    let input = ws.csv_files("in", 0, 3, 100, 10, 6);
    ws.write(
        "pipeline.toml",
        &notebook_pipeline("available_now = true", 1),
    );
    ws.run_ok(&["run", "pipeline.toml"]);
    assert_eq!(sums_file(&ws), sums(&input));
    assert_eq!(
        visible_files(&ws.path("out")).len(),
        3,
        "one epoch per file"
    );
}

#[test]
fn processing_time_picks_up_new_files_each_interval_and_stops_on_sigterm() {
    let ws = Workspace::new();
    let mut input = ws.csv_files("in", 0, 2, 300, 15, 7);
    ws.write(
        "pipeline.toml",
        &notebook_pipeline(r#"processing_time = "200ms""#, 10),
    );
    let mut child = ws.spawn(&["run", "pipeline.toml"]);

    assert!(
        wait_for(Duration::from_secs(10), || console_tables(&ws.stdout())
            .contains_key(&1)),
        "no first epoch: {}",
        ws.stderr()
    );
    // Intervals with no new files run no epoch, like Spark's.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        console_tables(&ws.stdout()).len(),
        1,
        "empty intervals printed tables: {}",
        ws.stdout()
    );

    input.extend(ws.csv_files("in", 2, 2, 300, 15, 8));
    assert!(
        wait_for(Duration::from_secs(10), || console_tables(&ws.stdout())
            .contains_key(&2)),
        "no second epoch: {}",
        ws.stderr()
    );

    let status = signal_and_wait(&mut child, "TERM");
    assert!(status.success(), "exit {status:?}: {}", ws.stderr());
    assert_eq!(console_tables(&ws.stdout())[&2], sums(&input));
    assert_eq!(parquet_rows(&ws.path("out")), sorted(input));
}

#[test]
fn continuous_reads_files_as_they_arrive_and_sigint_commits_what_was_read() {
    continuous_reads_files_as_they_arrive(true);
}

#[test]
fn continuous_without_notifications_lists_the_folder_and_reads_files_as_they_arrive() {
    continuous_reads_files_as_they_arrive(false);
}

/// The continuous trigger over files dropped one by one into a folder made after the start,
/// learning of them from notifications (`watch`) or from listings only.
fn continuous_reads_files_as_they_arrive(watch: bool) {
    let ws = Workspace::new();
    let pipeline = notebook_pipeline("", 1).replace(
        "max_files_per_trigger = 1\n",
        &format!("max_files_per_trigger = 1\nwatch = {watch}\n"),
    );
    assert!(pipeline.contains("watch = "), "{pipeline}");
    ws.write("pipeline.toml", &pipeline);
    // The folder does not exist yet: a continuous run waits for it.
    let mut child = ws.spawn(&["run", "pipeline.toml"]);
    let mut input = Vec::new();
    for f in 0..4 {
        input.extend(ws.csv_files("in", f, 1, 250, 12, 10 + f as u64));
        let expected = sums(&input);
        let seen = console_shows(&ws, &expected, Duration::from_secs(10));
        assert!(
            seen,
            "file {f} was not processed: {}\n{}",
            ws.stdout(),
            ws.stderr()
        );
    }
    let epochs = console_tables(&ws.stdout()).len();
    assert!(
        epochs >= 4,
        "each file lands in a later epoch ({epochs} tables)"
    );

    let status = signal_and_wait(&mut child, "INT");
    assert!(status.success(), "exit {status:?}: {}", ws.stderr());
    // Every committed file is complete and nothing in progress is visible.
    assert_eq!(parquet_rows(&ws.path("out")), sorted(input.clone()));
    assert_eq!(pyarrow_rows(&ws.path("out")).0, sorted(input));
    assert!(visible_files(&ws.path("out"))
        .iter()
        .all(|n| n.ends_with(".parquet")));
    assert!(
        ws.stderr().contains("stopping after the current epoch"),
        "{}",
        ws.stderr()
    );
}

/// Input after a quiet spell is checkpointed once it is read, not at the interval's next
/// tick: with an interval of an hour, a file dropped into a quiet folder still shows up.
#[test]
fn continuous_commits_input_after_a_quiet_spell_without_waiting_for_the_interval() {
    let ws = Workspace::new();
    let pipeline = notebook_pipeline("", 1).replace(r#"interval = "100ms""#, r#"interval = "1h""#);
    ws.write("pipeline.toml", &pipeline);
    std::fs::create_dir_all(ws.path("in")).unwrap();
    let mut child = ws.spawn(&["run", "pipeline.toml"]);
    std::thread::sleep(Duration::from_millis(300));
    let input = ws.csv_files("in", 0, 1, 250, 12, 31);
    let expected = sums(&input);
    let seen = console_shows(&ws, &expected, Duration::from_secs(20));
    assert!(
        seen,
        "the file waits for the hourly checkpoint: {}",
        ws.stderr()
    );
    assert_eq!(parquet_rows(&ws.path("out")), sorted(input));
    let status = signal_and_wait(&mut child, "INT");
    assert!(status.success(), "exit {status:?}: {}", ws.stderr());
}

#[test]
fn continuous_admits_at_most_max_files_per_trigger_new_files_per_epoch() {
    let ws = Workspace::new();
    // Four files wait at start; the limit is one file per epoch. Epochs of 1 s are far longer
    // than a file takes to read and than the source's 100 ms poll, which used to admit the
    // next file whenever the last one was read.
    let input = ws.csv_files("in", 0, 4, 250, 12, 21);
    let pipeline = notebook_pipeline("", 1).replace(r#"interval = "100ms""#, r#"interval = "1s""#);
    ws.write("pipeline.toml", &pipeline);
    let mut child = ws.spawn(&["run", "pipeline.toml"]);
    let expected = sums(&input);
    let done = console_shows(&ws, &expected, Duration::from_secs(20));
    assert!(done, "not every file was read: {}", ws.stderr());
    let status = signal_and_wait(&mut child, "INT");
    assert!(status.success(), "exit {status:?}: {}", ws.stderr());

    // One parquet file per epoch, in epoch order: each starts at most one new input file (a
    // file begun in one epoch may end in the next, as a barrier can fall inside it).
    let mut started = std::collections::BTreeSet::new();
    for name in visible_files(&ws.path("out")) {
        let files: std::collections::BTreeSet<String> =
            parquet_file_rows(&ws.path("out").join(&name))
                .into_iter()
                .map(|(file, _, _)| file)
                .collect();
        let new: Vec<&String> = files.iter().filter(|f| !started.contains(*f)).collect();
        assert!(new.len() <= 1, "{name} starts {new:?}");
        started.extend(files);
    }
    assert_eq!(started.len(), 4);
    assert_eq!(parquet_rows(&ws.path("out")), sorted(input));
}

/// Whether the console's last table is `expected` within `timeout`.
fn console_shows(ws: &Workspace, expected: &BTreeMap<String, i64>, timeout: Duration) -> bool {
    wait_for(timeout, || {
        console_tables(&ws.stdout())
            .values()
            .last()
            .is_some_and(|t| t == expected)
    })
}
