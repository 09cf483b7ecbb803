//! Any split of the same input into batches and epochs, with restarts from the checkpointed
//! state at any epoch boundary, gives the same final aggregate as one pass over all rows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow_array::{Int32Array, RecordBatch, StringArray};
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use proptest::prelude::*;
use weir_core::{parse_ddl, Epoch, Operator, OutputMode};
use weir_operators::{Aggregate, AggregateConfig};

type Row = (Option<u8>, Option<i32>);

fn aggregate() -> Aggregate {
    let schema = parse_ddl("Shop STRING, Sale_Count INT").unwrap();
    AggregateConfig {
        group_by: vec!["Shop".into()],
        aggregates: [
            "sum(Sale_Count)",
            "count(*)",
            "count(Sale_Count)",
            "min(Sale_Count)",
            "max(Sale_Count)",
            "avg(Sale_Count)",
        ]
        .map(String::from)
        .to_vec(),
    }
    .validate(&schema)
    .unwrap()
    .build()
    .unwrap()
}

fn batch(rows: &[Row]) -> RecordBatch {
    let shops: StringArray = rows
        .iter()
        .map(|(s, _)| s.map(|s| format!("shop{s}")))
        .collect();
    let counts: Int32Array = rows.iter().map(|(_, c)| *c).collect();
    RecordBatch::try_new(
        parse_ddl("Shop STRING, Sale_Count INT").unwrap(),
        vec![Arc::new(shops), Arc::new(counts)],
    )
    .unwrap()
}

/// The complete result as sorted text rows, independent of group order.
fn table(agg: &Aggregate) -> Vec<String> {
    let out = agg.result().unwrap();
    let options = FormatOptions::default().with_null("null");
    let formatters: Vec<_> = out
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
        .collect();
    let mut rows: Vec<String> = (0..out.num_rows())
        .map(|r| {
            formatters
                .iter()
                .map(|f| f.value(r).to_string())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    rows.sort();
    rows
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn any_split_into_batches_epochs_and_restarts_gives_the_same_result(
        rows in prop::collection::vec((prop::option::weighted(0.9, 0u8..12), prop::option::weighted(0.9, -1000i32..1000)), 0..300),
        mut cuts in prop::collection::vec(0usize..300, 0..25),
        epoch_ends in prop::collection::vec(any::<bool>(), 26),
        restarts in prop::collection::vec(any::<bool>(), 26),
    ) {
        let mut whole = aggregate();
        if !rows.is_empty() {
            whole.process(batch(&rows)).unwrap();
        }
        let expected = table(&whole);

        cuts.push(0);
        cuts.push(rows.len());
        cuts.iter_mut().for_each(|c| *c = (*c).min(rows.len()));
        cuts.sort_unstable();
        cuts.dedup();

        // The checkpoint store, as a map: what RocksDB holds after applying every delta.
        let mut store: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let mut agg = aggregate();
        let mut epoch = Epoch(1);
        for (i, pair) in cuts.windows(2).enumerate() {
            agg.process(batch(&rows[pair[0]..pair[1]])).unwrap();
            if epoch_ends[i] {
                agg.emit(OutputMode::Update).unwrap();
                for (key, value) in agg.snapshot(epoch).unwrap().delta.changes {
                    match value {
                        Some(v) => store.insert(key, v),
                        None => store.remove(&key),
                    };
                }
                agg.end_epoch(epoch).unwrap();
                epoch = epoch.next();
                if restarts[i] {
                    // A crash right after the checkpoint: a new operator from the stored state.
                    agg = aggregate();
                    agg.restore(store.clone().into_iter().collect()).unwrap();
                }
            }
        }
        prop_assert_eq!(table(&agg), expected.clone());

        // When the last batch also ended an epoch, its checkpoint alone gives the same table.
        let segments = cuts.len().saturating_sub(1);
        if segments > 0 && epoch_ends[segments - 1] {
            let mut restored = aggregate();
            restored.restore(store.into_iter().collect()).unwrap();
            prop_assert_eq!(table(&restored), expected);
        }
    }
}
