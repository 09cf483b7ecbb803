//! Measures what a checkpoint costs when few keys changed, with 1,000 and with 1,000,000
//! groups in an aggregate's state, and how long recovering that state takes.
//!
//! ```sh
//! cargo run --release -p weir --example checkpoint_cost
//! ```
//!
//! For each size: fill the state in one epoch and checkpoint it (the first, full write), then
//! change 100 groups and checkpoint again (the steady-state cost), then load the state back
//! from RocksDB into a fresh aggregate (the recovery cost). Prints a table.

use std::sync::Arc;
use std::time::Instant;

use arrow_array::{Int32Array, RecordBatch, StringArray};
use weir::{CheckpointStore, Epoch, Operator, StageSnapshot};
use weir_core::parse_ddl;
use weir_operators::AggregateConfig;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("| groups | checkpoint | changed keys | bytes written | snapshot + write | recovery (load + restore) |");
    println!("|---:|---|---:|---:|---:|---:|");
    for groups in [1_000usize, 1_000_000] {
        let dir = tempfile::tempdir()?;
        let store = CheckpointStore::open(dir.path(), 3)?;
        let schema = parse_ddl("Shop STRING, Sale_Count INT")?;
        let config = AggregateConfig {
            group_by: vec!["Shop".into()],
            aggregates: vec!["sum(Sale_Count)".into()],
        };
        let settings = config.validate(&schema).map_err(|e| format!("{e:?}"))?;
        let mut aggregate = settings.build()?;
        let batch =
            |range: std::ops::Range<usize>| -> Result<RecordBatch, Box<dyn std::error::Error>> {
                let shops: StringArray = range
                    .clone()
                    .map(|i| Some(format!("shop_{i:07}")))
                    .collect();
                let counts: Int32Array = range.map(|i| Some((i % 1000) as i32)).collect();
                Ok(RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(shops), Arc::new(counts)],
                )?)
            };
        for start in (0..groups).step_by(65_536) {
            aggregate.process(batch(start..(start + 65_536).min(groups))?)?;
        }
        for (epoch, label) in [(1, "first (all keys)"), (2, "next (100 changed)")] {
            if epoch == 2 {
                aggregate.process(batch(0..100)?)?;
            }
            let started = Instant::now();
            let snapshot: StageSnapshot = aggregate.snapshot(Epoch(epoch))?;
            aggregate.end_epoch(Epoch(epoch))?;
            let changed = snapshot.delta.changes.len();
            let manifest =
                store.write_checkpoint(Epoch(epoch), &[("operators.agg".into(), snapshot)])?;
            let took = started.elapsed();
            let recovery = if epoch == 2 {
                let started = Instant::now();
                let state = store.load("operators.agg", Epoch(2))?;
                let mut fresh = settings.build()?;
                fresh.restore(state)?;
                assert_eq!(fresh.group_count(), groups);
                format!("{:.1} ms", started.elapsed().as_secs_f64() * 1e3)
            } else {
                String::new()
            };
            println!(
                "| {groups} | {label} | {changed} | {} | {:.2} ms | {recovery} |",
                manifest.bytes_written,
                took.as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
