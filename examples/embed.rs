//! A Weir pipeline inside an application's own actix system, its output going to one of the
//! application's actors.
//!
//! ```sh
//! cargo run --example embed
//! ```
//!
//! The pipeline is the notebook's job, built in code: a folder of CSV files, a per-shop sum,
//! checkpoints. Its `complete`-mode result goes to a `channel` sink whose recipient is the
//! application's `Dashboard` actor, which also receives every epoch's progress record. The
//! dashboard de-duplicates by epoch number, which is what exactly-once means for a channel.

use std::collections::BTreeMap;

use actix::prelude::*;
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use weir::{Component, EpochOutput, EpochProgress, OutputMode, PipelineBuilder};

/// The application's actor: keeps the latest per-shop table and counts epochs.
#[derive(Default)]
struct Dashboard {
    /// Shop → running sum, as of `last_epoch`.
    table: BTreeMap<String, i64>,
    /// The epoch coming in, until its last part.
    incoming: BTreeMap<String, i64>,
    last_epoch: u64,
    records: usize,
}

impl Actor for Dashboard {
    type Context = Context<Self>;
}

impl Handler<EpochOutput> for Dashboard {
    type Result = ();

    fn handle(&mut self, output: EpochOutput, _: &mut Context<Self>) {
        // After a restart, epochs up to the checkpoint may come again: skip what we have.
        if output.epoch.0 <= self.last_epoch {
            return;
        }
        // An epoch comes in parts; complete mode's part 0 starts the new table. It replaces
        // ours when its last part is in (a crash may cut an epoch short: it comes again).
        if output.part == 0 {
            self.incoming.clear();
        }
        for batch in &output.batches {
            let shops = batch.column(0).as_string::<i32>();
            let sums = batch.column(1).as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                self.incoming
                    .insert(shops.value(row).to_string(), sums.value(row));
            }
        }
        if output.last {
            self.last_epoch = output.epoch.0;
            self.table = std::mem::take(&mut self.incoming);
        }
    }
}

impl Handler<EpochProgress> for Dashboard {
    type Result = ();

    fn handle(&mut self, record: EpochProgress, _: &mut Context<Self>) {
        self.records += 1;
        println!(
            "progress: epoch {} read {} rows in {:.1} ms",
            record.epoch, record.input_rows, record.durations_ms.total
        );
    }
}

/// What the dashboard knows.
#[derive(Message)]
#[rtype(result = "(BTreeMap<String, i64>, u64, usize)")]
struct Snapshot;

impl Handler<Snapshot> for Dashboard {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.table.clone(), self.last_epoch, self.records))
    }
}

/// Writes `files` notebook-shaped CSV files; returns the per-shop sums they hold.
fn write_input(dir: &std::path::Path, files: usize) -> std::io::Result<BTreeMap<String, i64>> {
    std::fs::create_dir_all(dir)?;
    let mut sums = BTreeMap::new();
    for f in 0..files {
        let mut text = String::from("File;Shop;Sale_Count\n");
        for row in 0..500 {
            let shop = format!("shop_{:02}", (row * 7 + f) % 25);
            let count = (row * 13 + f * 5) % 100;
            text.push_str(&format!("part-{f}.csv;{shop};{count}\n"));
            *sums.entry(shop).or_insert(0) += count as i64;
        }
        std::fs::write(dir.join(format!("part-{f}.csv")), text)?;
    }
    Ok(sums)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let work = tempfile::tempdir()?;
    let expected = write_input(&work.path().join("in"), 4)?;
    let input = work.path().join("in").display().to_string();
    let state = work.path().join("state").display().to_string();

    // The application's own system; the pipeline joins it.
    let system = System::new();
    let (table, last_epoch, records) = system.block_on(async move {
        let dashboard = Dashboard::default().start();
        let spec = PipelineBuilder::new("shop_sales")
            .set("checkpoint.path", state)
            .set("trigger.available_now", true)
            .source(
                "sales",
                Component::new("csv")
                    .set("path", input)
                    .set("schema", "File STRING, Shop STRING, Sale_Count INT")
                    .set("header", true)
                    .set("sep", ";")
                    .set("max_files_per_trigger", 1),
            )
            .operator(
                "by_shop",
                Component::new("aggregate")
                    .input("sales")
                    .set("group_by", vec!["Shop"])
                    .set("aggregates", vec!["sum(Sale_Count)"]),
            )
            .channel_sink(
                "dashboard",
                "by_shop",
                OutputMode::Complete,
                dashboard.clone().recipient(),
            )
            .build()?;
        let handle = spec.start()?;
        let progress = handle.progress_to(dashboard.clone().recipient());
        let last = handle.wait().await?;
        println!("pipeline finished at epoch {last}");
        // Every progress record has reached the dashboard once this returns.
        progress.await?;
        Ok::<_, Box<dyn std::error::Error>>(dashboard.send(Snapshot).await?)
    })?;

    println!(
        "the dashboard holds {} shops as of epoch {last_epoch}",
        table.len()
    );
    for (shop, sum) in table.iter().take(5) {
        println!("  {shop}: {sum}");
    }
    if table != expected || last_epoch != 4 || records != 4 {
        return Err(format!(
            "the dashboard is wrong: epoch {last_epoch}, {records} progress records, {} shops",
            table.len()
        )
        .into());
    }
    println!("the sums match the input");
    Ok(())
}

#[test]
fn embedding_delivers_the_right_table_to_the_callers_actor() {
    main().unwrap();
}
