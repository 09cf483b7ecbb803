//! Weir inside a caller's actix system: pipelines built in code, run on the caller's
//! arbiters, output delivered to the caller's actor, exactly once across restarts when the
//! caller skips epochs it has seen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use actix::prelude::*;
use arrow_array::cast::AsArray;
use arrow_array::types::Int32Type;
use weir::{
    Component, EpochOutput, EpochProgress, OutputMode, PipelineBuilder, PipelineSpec, Registry,
};

/// The caller's actor: every delivery, as (epoch, redelivery, rows of Sale_Count).
#[derive(Default)]
struct Collector {
    deliveries: Vec<(u64, bool, Vec<i32>)>,
    records: Vec<EpochProgress>,
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
            .flat_map(|b| b.column(2).as_primitive::<Int32Type>().values().to_vec())
            .collect();
        self.deliveries
            .push((output.epoch.0, output.redelivery, counts));
    }
}

impl Handler<EpochProgress> for Collector {
    type Result = ();
    fn handle(&mut self, record: EpochProgress, _: &mut Context<Self>) {
        self.records.push(record);
    }
}

#[derive(Message)]
#[rtype(result = "(Vec<(u64, bool, Vec<i32>)>, Vec<EpochProgress>)")]
struct Take;

impl Handler<Take> for Collector {
    type Result = MessageResult<Take>;
    fn handle(&mut self, _: Take, _: &mut Context<Self>) -> Self::Result {
        MessageResult((
            std::mem::take(&mut self.deliveries),
            std::mem::take(&mut self.records),
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
    PipelineBuilder::new("embedded")
        .set("checkpoint.path", dir.join("state").display().to_string())
        .set("trigger.available_now", true)
        .source(
            "sales",
            Component::new("csv")
                .set("path", dir.join("in").display().to_string())
                .set("schema", "File STRING, Shop STRING, Sale_Count INT")
                .set("header", true)
                .set("sep", ";")
                .set("max_files_per_trigger", 1),
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
        let (deliveries, records) = collector.send(Take).await.unwrap();
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
        let (deliveries, _) = collector.send(Take).await.unwrap();
        assert_eq!(deliveries, [(1, false, vec![1, 2])]);

        // The second run resumes from checkpoint 1. Whether or not the first run lived to
        // deliver epoch 1, it comes again, marked, before anything new.
        write_file(&dir.path().join("in"), "b.csv", &[3, 4]);
        let second = pipeline(dir.path(), &collector).start().unwrap();
        assert_eq!(second.wait().await.unwrap(), weir::Epoch(2));
        let (deliveries, _) = collector.send(Take).await.unwrap();
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
        let (deliveries, _) = collector.send(Take).await.unwrap();
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
        let (deliveries, _) = collector.send(Take).await.unwrap();
        // Epoch 1 closes 10:00-10:10 (the watermark is 10:12); epoch 2 closes 10:10-10:20.
        // 10:30-10:40 is still open when the input ends.
        assert_eq!(deliveries, [(1, false, vec![3]), (2, false, vec![3])]);
    });
}
