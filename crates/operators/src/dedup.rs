//! `type = "deduplicate"`: each key passes once (Spark's `dropDuplicatesWithinWatermark`).
//!
//! With a watermark upstream, a key is remembered until the watermark passes its first row's
//! event time plus the watermark's delay, and rows at or behind the watermark are dropped as
//! late; state stays as large as the keys of one delay. Without a watermark every key is
//! remembered for ever.

use arrow_array::{Array, ArrayRef, BooleanArray, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::SchemaRef;
use arrow_select::filter::filter_record_batch;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use weir_core::{
    event_times, find_column, ConfigError, Epoch, Error, EventTimeColumn, Operator, Result,
    StageSnapshot, StateEntries,
};

use crate::keys::{restored_i64, ReachedWatermark};

/// The tag of a remembered key in the checkpoint.
const KEY_TAG: u8 = b'k';

/// The `type = "deduplicate"` operator as written in the pipeline file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeduplicateConfig {
    /// The columns that make a row's identity, for example `["order_id"]`.
    pub columns: Vec<String>,
}

/// A validated [`DeduplicateConfig`], bound to its input schema.
#[derive(Debug, Clone)]
pub struct DeduplicateSettings {
    input: SchemaRef,
    keys: Vec<usize>,
    /// The watermarked column's index and the watermark's delay, when there is one.
    event_time: Option<(usize, i64)>,
    describe: String,
}

impl DeduplicateConfig {
    /// Checks the columns against the input schema. `event_time` is the watermarked column
    /// of the input, if an upstream stage set one.
    pub fn validate(
        &self,
        input: &SchemaRef,
        event_time: Option<&EventTimeColumn>,
    ) -> Result<DeduplicateSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.columns.is_empty() {
            errors.push(ConfigError::new(
                "columns",
                "needs at least one column, for example columns = [\"order_id\"]",
            ));
        }
        let names: Vec<&str> = input.fields().iter().map(|f| f.name().as_str()).collect();
        let mut keys = Vec::new();
        for (i, column) in self.columns.iter().enumerate() {
            match find_column(input, column) {
                Some(index) => keys.push(index),
                None => errors.push(ConfigError::new(
                    format!("columns[{i}]"),
                    format!(
                        "\"{column}\" is not a column of the input (it has {})",
                        names.join(", ")
                    ),
                )),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        if let Err(e) = RowConverter::new(
            keys.iter()
                .map(|&k| SortField::new(input.field(k).data_type().clone()))
                .collect(),
        ) {
            return Err(vec![ConfigError::new(
                "columns",
                format!("these columns cannot be compared: {e}"),
            )]);
        }
        let event_time = event_time.and_then(|e| {
            input
                .index_of(&e.column)
                .ok()
                .map(|index| (index, e.delay_us))
        });
        let columns: Vec<&str> = keys.iter().map(|&k| names[k]).collect();
        Ok(DeduplicateSettings {
            input: input.clone(),
            keys,
            event_time,
            describe: format!("drop duplicates of [{}]", columns.join(", ")),
        })
    }
}

impl DeduplicateSettings {
    /// `drop duplicates of [columns]`, for `weir graph` and the fingerprint.
    pub fn describe(&self) -> String {
        self.describe.clone()
    }

    /// The input's schema: deduplication passes rows as they are.
    pub fn output_schema(&self) -> SchemaRef {
        self.input.clone()
    }

    /// The running operator, with nothing seen.
    pub fn build(&self) -> Result<Deduplicate> {
        let converter = RowConverter::new(
            self.keys
                .iter()
                .map(|&k| SortField::new(self.input.field(k).data_type().clone()))
                .collect(),
        )
        .map_err(|e| Error::Internal(format!("deduplication keys cannot be row-encoded: {e}")))?;
        Ok(Deduplicate {
            settings: self.clone(),
            converter,
            seen: HashMap::default(),
            by_expiry: BTreeMap::new(),
            added: Vec::new(),
            watermark: ReachedWatermark::default(),
            late_rows: 0,
        })
    }
}

/// A running deduplication.
pub struct Deduplicate {
    settings: DeduplicateSettings,
    converter: RowConverter,
    /// Every remembered key and when it expires (microseconds; `i64::MAX` never).
    seen: HashMap<Box<[u8]>, i64, ahash::RandomState>,
    /// The same keys by expiry, so that eviction reads only what expires.
    by_expiry: BTreeMap<i64, Vec<Box<[u8]>>>,
    /// Keys first seen in this epoch.
    added: Vec<Box<[u8]>>,
    watermark: ReachedWatermark,
    late_rows: u64,
}

impl Deduplicate {
    fn remember(&mut self, key: Box<[u8]>, expiry: i64) {
        self.by_expiry.entry(expiry).or_default().push(key.clone());
        self.seen.insert(key.clone(), expiry);
        self.added.push(key);
    }
}

impl Operator for Deduplicate {
    fn output_schema(&self) -> SchemaRef {
        self.settings.input.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let columns: Vec<ArrayRef> = self
            .settings
            .keys
            .iter()
            .map(|&k| batch.column(k).clone())
            .collect();
        let rows = self
            .converter
            .convert_columns(&columns)
            .map_err(|e| Error::arrow("deduplicate", e))?;
        let times = match self.settings.event_time {
            Some((index, _)) => Some(event_times(batch.column(index)).ok_or_else(|| {
                Error::Internal("the watermarked column is not a timestamp".into())
            })?),
            None => None,
        };
        let mut keep = Vec::with_capacity(batch.num_rows());
        for (i, row) in rows.iter().enumerate() {
            let expiry = match (&times, self.settings.event_time) {
                (Some(times), Some((_, delay))) => {
                    // A row without an event time cannot be placed against the watermark.
                    let time = times.is_valid(i).then(|| times.value(i));
                    match time {
                        Some(t) if self.watermark.get().is_none_or(|w| t > w) => {
                            t.saturating_add(delay)
                        }
                        _ => {
                            self.late_rows += 1;
                            keep.push(false);
                            continue;
                        }
                    }
                }
                _ => i64::MAX,
            };
            let new = !self.seen.contains_key(row.as_ref());
            if new {
                self.remember(row.as_ref().into(), expiry);
            }
            keep.push(new);
        }
        if keep.iter().all(|k| *k) {
            return Ok(Some(batch));
        }
        if keep.iter().all(|k| !*k) {
            return Ok(None);
        }
        let mask = BooleanArray::from(keep);
        filter_record_batch(&batch, &mask)
            .map(Some)
            .map_err(|e| Error::arrow("deduplicate", e))
    }

    fn advance_watermark(&mut self, watermark_ms: i64) -> Result<()> {
        if self.settings.event_time.is_some() {
            self.watermark.advance(watermark_ms);
        }
        Ok(())
    }

    /// Keys first seen in the epoch, with their expiry; keys the watermark expired, deleted.
    fn snapshot(&mut self, _epoch: Epoch) -> Result<StageSnapshot> {
        let mut snapshot = StageSnapshot::default();
        for key in self.added.drain(..) {
            if let Some(expiry) = self.seen.get(&key) {
                let stored = [&[KEY_TAG][..], &key].concat();
                snapshot.delta.put(stored, expiry.to_le_bytes());
            }
        }
        if let Some(w) = self.watermark.get() {
            let live = self.by_expiry.split_off(&w.saturating_add(1));
            for key in std::mem::replace(&mut self.by_expiry, live)
                .into_values()
                .flatten()
            {
                self.seen.remove(&key);
                snapshot.delta.delete([&[KEY_TAG][..], &key].concat());
            }
        }
        self.watermark.snapshot(&mut snapshot.delta);
        snapshot.state_keys = self.seen.len() as u64;
        snapshot.state_bytes = self.seen.keys().map(|k| k.len() as u64 + 8).sum();
        snapshot.detail = format!("{} key(s) remembered", self.seen.len());
        Ok(snapshot)
    }

    fn end_epoch(&mut self, _epoch: Epoch) -> Result<()> {
        self.watermark.end_epoch();
        Ok(())
    }

    fn restore(&mut self, state: StateEntries) -> Result<()> {
        for (key, value) in state {
            if self.watermark.restore(&key, &value)? {
                continue;
            }
            let Some((&KEY_TAG, row)) = key.split_first() else {
                return Err(Error::Internal(
                    "the deduplication checkpoint holds a key it did not write".into(),
                ));
            };
            let expiry = restored_i64(&value, "key expiry")?;
            let row: Box<[u8]> = row.into();
            self.by_expiry.entry(expiry).or_default().push(row.clone());
            self.seen.insert(row, expiry);
        }
        Ok(())
    }

    fn take_late_rows(&mut self) -> u64 {
        std::mem::take(&mut self.late_rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int64Array, TimestampMicrosecondArray};
    use std::sync::Arc;
    use weir_core::{parse_ddl, UTC};

    const MIN: i64 = 60_000_000;

    fn batch(schema: &SchemaRef, rows: &[(i64, i64)]) -> RecordBatch {
        let ts = TimestampMicrosecondArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>())
            .with_timezone(UTC);
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(ts),
            ],
        )
        .unwrap()
    }

    #[test]
    fn a_key_passes_once_until_the_watermark_passes_its_time_plus_the_delay() {
        let schema = parse_ddl("id BIGINT, ts TIMESTAMP").unwrap();
        let event_time = EventTimeColumn {
            column: "ts".into(),
            delay_us: 10 * MIN,
        };
        let settings = DeduplicateConfig {
            columns: vec!["ID".into()],
        }
        .validate(&schema, Some(&event_time))
        .unwrap();
        let mut dedup = settings.build().unwrap();
        let out = dedup
            .process(batch(&schema, &[(1, 0), (1, MIN), (2, 5 * MIN)]))
            .unwrap()
            .unwrap();
        assert_eq!(
            out.num_rows(),
            2,
            "the second 1 is a duplicate within the batch"
        );
        // Watermark 9 minutes: key 1 (expires at 10) and key 2 (15) are remembered.
        dedup.advance_watermark(9 * MIN / 1000).unwrap();
        let state = dedup.snapshot(Epoch(1)).unwrap();
        assert_eq!(state.state_keys, 2);
        let entries = state.delta.into_entries();
        // Late rows (at or before the watermark) are dropped and counted.
        assert!(dedup
            .process(batch(&schema, &[(3, 9 * MIN)]))
            .unwrap()
            .is_none());
        assert_eq!(dedup.take_late_rows(), 1);
        dedup.advance_watermark(10 * MIN / 1000).unwrap();
        assert_eq!(
            dedup.snapshot(Epoch(2)).unwrap().state_keys,
            1,
            "key 1 expired"
        );
        // Restored, the remembered keys still hold back their duplicates.
        let mut restored = settings.build().unwrap();
        restored.restore(entries).unwrap();
        let out = restored
            .process(batch(&schema, &[(2, 12 * MIN), (4, 12 * MIN)]))
            .unwrap()
            .unwrap();
        assert_eq!(out.num_rows(), 1);
    }

    #[test]
    fn unknown_columns_are_named() {
        let schema = parse_ddl("id BIGINT").unwrap();
        let errors = DeduplicateConfig {
            columns: vec!["nope".into()],
        }
        .validate(&schema, None)
        .unwrap_err();
        assert_eq!(errors[0].key, "columns[0]");
        assert!(
            errors[0].message.contains("it has id"),
            "{}",
            errors[0].message
        );
    }
}
