//! Weir inside a caller's actix system: pipelines built in code, run on the caller's
//! arbiters, output delivered to the caller's actor, exactly once across restarts when the
//! caller skips epochs it has seen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use actix::prelude::*;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use weir::{
    Component, EpochOutput, EpochProgress, OutputMode, PipelineBuilder, PipelineSpec, Registry,
};

/// The caller's actor: every delivery, as (epoch, redelivery, rows of Sale_Count).
struct Collector {
    deliveries: Vec<(u64, bool, Vec<i32>)>,
    records: Vec<EpochProgress>,
    /// The last part of the last epoch came.
    parts_done: bool,
    /// Keep the rows' values in `deliveries`; without, only count them.
    keep_rows: bool,
    rows: usize,
}

impl Default for Collector {
    fn default() -> Self {
        Collector {
            deliveries: Vec::new(),
            records: Vec::new(),
            parts_done: true,
            keep_rows: true,
            rows: 0,
        }
    }
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<EpochOutput> for Collector {
    type Result = ();
    fn handle(&mut self, output: EpochOutput, _: &mut Context<Self>) {
        assert_eq!(output.sink, "mine");
        assert_eq!(output.mode, OutputMode::Append);
        let counts = output
            .batches
            .iter()
            .flat_map(|b| b.column(2).as_primitive::<Int32Type>().values().to_vec());
        // Parts of one epoch make one delivery; part 0 starts it.
        if output.part == 0 {
            assert!(
                self.parts_done,
                "epoch {} began before the last one ended",
                output.epoch.0
            );
            self.deliveries
                .push((output.epoch.0, output.redelivery, Vec::new()));
        }
        let Some(delivery) = self.deliveries.last_mut() else {
            panic!(
                "part {} of epoch {} came first",
                output.part, output.epoch.0
            );
        };
        assert_eq!(delivery.0, output.epoch.0, "parts of two epochs interleave");
        self.rows += output.batches.iter().map(|b| b.num_rows()).sum::<usize>();
        if self.keep_rows {
            delivery.2.extend(counts);
        }
        self.parts_done = output.last;
    }
}

impl Handler<EpochProgress> for Collector {
    type Result = ();
    fn handle(&mut self, record: EpochProgress, _: &mut Context<Self>) {
        self.records.push(record);
    }
}

#[derive(Message)]
#[rtype(result = "(Vec<(u64, bool, Vec<i32>)>, Vec<EpochProgress>, usize)")]
struct Take;

impl Handler<Take> for Collector {
    type Result = MessageResult<Take>;
    fn handle(&mut self, _: Take, _: &mut Context<Self>) -> Self::Result {
        MessageResult((
            std::mem::take(&mut self.deliveries),
            std::mem::take(&mut self.records),
            std::mem::take(&mut self.rows),
        ))
    }
}

fn write_file(dir: &Path, name: &str, counts: &[i32]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut text = String::from("File;Shop;Sale_Count\n");
    for c in counts {
        text.push_str(&format!("{name};s;{c}\n"));
    }
    std::fs::write(dir.join(name), text).unwrap();
}

fn pipeline(dir: &Path, collector: &Addr<Collector>) -> PipelineSpec {
    pipeline_with(dir, collector, "trigger.available_now", 1)
}

/// The notebook's rows from `dir/in` into the channel `mine`, under `trigger` (a key set to
/// true), at most `max_files` files an epoch.
fn pipeline_with(
    dir: &Path,
    collector: &Addr<Collector>,
    trigger: &str,
    max_files: usize,
) -> PipelineSpec {
    PipelineBuilder::new("embedded")
        .set("checkpoint.path", dir.join("state").display().to_string())
        .set(trigger, true)
        .source(
            "sales",
            Component::new("csv")
                .set("path", dir.join("in").display().to_string())
                .set("schema", "File STRING, Shop STRING, Sale_Count INT")
                .set("header", true)
                .set("sep", ";")
                .set("max_files_per_trigger", max_files as i64),
        )
        .channel_sink(
            "mine",
            "sales",
            OutputMode::Append,
            collector.clone().recipient(),
        )
        .build()
        .unwrap()
}

#[test]
fn runs_on_the_callers_arbiters_and_delivers_each_epoch_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("in"), "a.csv", &[1, 2]);
    write_file(&dir.path().join("in"), "b.csv", &[3]);
    let system = System::new();
    system.block_on(async {
        let collector = Collector::default().start();
        let arbiters = [Arbiter::new(), Arbiter::new()];
        let handles: Vec<ArbiterHandle> = arbiters.iter().map(Arbiter::handle).collect();
        let handle = pipeline(dir.path(), &collector).start_on(&handles).unwrap();
        let progress = handle.progress_to(collector.clone().recipient());
        assert_eq!(handle.wait().await.unwrap(), weir::Epoch(2));
        progress.await.unwrap();
        let (deliveries, records, _) = collector.send(Take).await.unwrap();
        assert_eq!(deliveries, [(1, false, vec![1, 2]), (2, false, vec![3])]);
        assert_eq!(records.len(), 2);
        assert_eq!(records[1].input_rows, 1);
        // The caller's arbiters are the caller's: still running after the pipeline.
        assert!(arbiters[0].spawn(async {}));
        assert!(arbiters[1].spawn(async {}));
    });
}

#[test]
fn after_a_restart_the_last_checkpoints_epochs_come_again_with_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("in"), "a.csv", &[1, 2]);
    let system = System::new();
    system.block_on(async {
        let collector = Collector::default().start();
        let first = pipeline(dir.path(), &collector).start().unwrap();
        assert_eq!(first.wait().await.unwrap(), weir::Epoch(1));
        let (deliveries, _, _) = collector.send(Take).await.unwrap();
        assert_eq!(deliveries, [(1, false, vec![1, 2])]);

        // The second run resumes from checkpoint 1. Whether or not the first run lived to
        // deliver epoch 1, it comes again, marked, before anything new.
        write_file(&dir.path().join("in"), "b.csv", &[3, 4]);
        let second = pipeline(dir.path(), &collector).start().unwrap();
        assert_eq!(second.wait().await.unwrap(), weir::Epoch(2));
        let (deliveries, _, _) = collector.send(Take).await.unwrap();
        assert_eq!(deliveries, [(1, true, vec![1, 2]), (2, false, vec![3, 4])]);
    });
}

#[test]
fn code_built_pipelines_are_validated_like_files() {
    let source = || {
        Component::new("csv")
            .set("path", "in")
            .set("schema", "File STRING, Sale_Count INT")
    };
    let errors = PipelineBuilder::new("broken")
        .source("sales", source().set("heder", true))
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(
        errors.contains(
            "pipeline \"broken\" (built in code): sources.sales.heder: unknown key \"heder\""
        ),
        "{errors}"
    );
    let errors = PipelineBuilder::new("broken")
        .source("sales", source())
        .sink(
            "out",
            Component::new("parquet").input("sales").set("paht", "out"),
        )
        .build()
        .err()
        .unwrap()
        .to_string();
    assert!(
        errors.contains("sinks.out.paht: unknown key \"paht\""),
        "{errors}"
    );
}

#[test]
fn a_channel_nobody_registered_is_an_error_that_says_what_is_registered() {
    let toml = r#"
        [sources.sales]
        type = "csv"
        path = "in"
        schema = "File STRING, Shop STRING, Sale_Count INT"

        [sinks.mine]
        type = "channel"
        input = "sales"
        channel = "dashbaord"
    "#;
    let errors = PipelineSpec::from_toml(toml, "p.toml", "p", &[], &Registry::default())
        .err()
        .unwrap()
        .to_string();
    assert!(
        errors.contains(
            "sinks.mine.channel: unknown channel \"dashbaord\" (no channel is registered"
        ),
        "{errors}"
    );

    let system = System::new();
    system.block_on(async {
        let mut registry = Registry::default();
        registry.add_channel("dashboard", Collector::default().start().recipient());
        let errors = PipelineSpec::from_toml(toml, "p.toml", "p", &[], &registry)
            .err()
            .unwrap()
            .to_string();
        assert!(errors.contains("expected one of \"dashboard\""), "{errors}");
    });
}

#[test]
fn code_built_pipelines_filter_and_derive_columns() {
    let dir = tempfile::tempdir().unwrap();
    write_file(&dir.path().join("in"), "a.csv", &[1, 2, 3]);
    write_file(&dir.path().join("in"), "b.csv", &[4]);
    let system = System::new();
    system.block_on(async {
        let collector = Collector::default().start();
        let spec = PipelineBuilder::new("derived")
            .set("trigger.available_now", true)
            .source(
                "sales",
                Component::new("csv")
                    .set("path", dir.path().join("in").display().to_string())
                    .set("schema", "File STRING, Shop STRING, Sale_Count INT")
                    .set("header", true)
                    .set("sep", ";")
                    .set("max_files_per_trigger", 1),
            )
            .operator("odd", Component::filter("sales", "sale_count % 2 = 1"))
            .operator(
                "tens",
                Component::select("odd", &["File", "upper(Shop) AS Shop", "Sale_Count * 10"]),
            )
            .channel_sink(
                "mine",
                "tens",
                OutputMode::Append,
                collector.clone().recipient(),
            )
            .build()
            .unwrap();
        let handle = spec.start().unwrap();
        assert_eq!(handle.wait().await.unwrap(), weir::Epoch(2));
        let (deliveries, _, _) = collector.send(Take).await.unwrap();
        // The second file has no odd count: its epoch delivers nothing.
        assert_eq!(deliveries, [(1, false, vec![10, 30])]);
    });
}

#[test]
fn a_builder_pipeline_appends_each_window_once_the_watermark_passes_it() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::write(
        input.join("a.csv"),
        "2026-01-01 10:01:00;s;1\n2026-01-01 10:05:00;s;2\n2026-01-01 10:12:00;s;3\n",
    )
    .unwrap();
    std::fs::write(input.join("b.csv"), "2026-01-01 10:30:00;s;4\n").unwrap();
    let system = System::new();
    system.block_on(async {
        let collector = Collector::default().start();
        let spec = PipelineBuilder::new("windows")
            .set("trigger.available_now", true)
            .source(
                "sales",
                Component::new("csv")
                    .set("path", input.display().to_string())
                    .set("schema", "ts TIMESTAMP, Shop STRING, Sale_Count INT")
                    .set("sep", ";")
                    .set("max_files_per_trigger", 1)
                    .watermark("ts", "0 seconds"),
            )
            .operator(
                "per_window",
                Component::aggregate(
                    "sales",
                    &["window(ts, '10 minutes')", "Shop"],
                    &["sum(Sale_Count) AS total"],
                ),
            )
            .operator(
                "ints",
                Component::select("per_window", &["window", "Shop", "CAST(total AS INT)"]),
            )
            .channel_sink(
                "mine",
                "ints",
                OutputMode::Append,
                collector.clone().recipient(),
            )
            .build()
            .unwrap();
        let handle = spec.start().unwrap();
        assert_eq!(handle.wait().await.unwrap(), weir::Epoch(2));
        let (deliveries, _, _) = collector.send(Take).await.unwrap();
        // Epoch 1 closes 10:00-10:10 (the watermark is 10:12); epoch 2 closes 10:10-10:20.
        // 10:30-10:40 is still open when the input ends.
        assert_eq!(deliveries, [(1, false, vec![3]), (2, false, vec![3])]);
    });
}

// A channel sink holds one batch, not its epoch: a run over ten times the rows, all in one
// epoch, peaks at about the same resident memory. Each run is a child process (this test
// binary again, running the same test with `WEIR_CHANNEL_DIR` set), measured by GNU time.

/// `files` CSV files of 100,000 notebook rows each in `dir/in`.
fn rows_in(dir: &Path, files: usize) {
    std::fs::create_dir_all(dir.join("in")).unwrap();
    for f in 0..files {
        let mut text = String::from("File;Shop;Sale_Count\n");
        for i in 0..100_000 {
            let _ = writeln!(text, "part{f};Shop_{:04};{}", i % 997, i % 1000);
        }
        std::fs::write(dir.join("in").join(format!("part{f:03}.csv")), text).unwrap();
    }
}

/// The child: one `once` epoch of every row in `dir/in` into a channel sink, with a
/// checkpoint, so that the epoch waits for its checkpoint before it is delivered.
fn child_run(dir: &Path) {
    let expected: usize = std::env::var("WEIR_CHANNEL_ROWS").unwrap().parse().unwrap();
    System::new().block_on(async {
        let collector = Collector {
            keep_rows: false,
            ..Collector::default()
        }
        .start();
        // `once` ignores the file limit: one epoch holds every row.
        let pipeline = pipeline_with(dir, &collector, "trigger.once", 1);
        pipeline.start().unwrap().wait().await.unwrap();
        let (deliveries, _, rows) = collector.send(Take).await.unwrap();
        assert_eq!((deliveries, rows), (vec![(1, false, vec![])], expected));
    });
}

/// The child's peak resident memory in KiB, over `files` files.
fn peak_rss_kib(dir: &Path, files: usize) -> u64 {
    rows_in(dir, files);
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(dir.join("rss.txt"))
        .arg(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--quiet"])
        .env("WEIR_CHANNEL_DIR", dir)
        .env("WEIR_CHANNEL_ROWS", (files * 100_000).to_string())
        .output()
        .expect("GNU time (make setup installs it) measures peak memory");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(dir.join("rss.txt")).unwrap();
    text.lines().last().unwrap().trim().parse().unwrap()
}

/// 12 MiB: 1.8 M more rows are about 45 MiB of Arrow batches (and as much again as Arrow IPC,
/// where the sink used to keep them); a sink that holds one batch adds noise.
const SLACK_KIB: u64 = 12 * 1024;

const TEST: &str = "a_channel_sink_over_ten_times_the_rows_peaks_at_the_same_memory";

#[test]
fn a_channel_sink_over_ten_times_the_rows_peaks_at_the_same_memory() {
    if let Some(dir) = std::env::var_os("WEIR_CHANNEL_DIR") {
        return child_run(Path::new(&dir));
    }
    let small = tempfile::tempdir().unwrap();
    let big = tempfile::tempdir().unwrap();
    let peaks = [peak_rss_kib(small.path(), 2), peak_rss_kib(big.path(), 20)];
    assert!(
        peaks[1] < peaks[0] + SLACK_KIB,
        "200,000 rows peaked at {} KiB, 2,000,000 at {} KiB",
        peaks[0],
        peaks[1]
    );
    // The one epoch waits beside the checkpoint, which still names it: a restart delivers
    // it again (marked), as the last checkpoint's epochs are.
    let spill = big.path().join("state/channel-spill/mine");
    let names: Vec<_> = std::fs::read_dir(spill)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["epoch-00000000000000000001.arrows"]);
}
