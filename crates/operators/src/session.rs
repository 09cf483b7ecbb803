//! Session windows: `group_by = ["session_window(ts, '30 minutes')", "user"]`.
//!
//! Per key of the other group columns, a session runs from its first row's time to its last
//! row's time plus the gap. A row within the gap of a session joins it (and stretches it); a
//! row that reaches two sessions merges them into one, as Spark's `session_window` does.
//! Each session holds its own [`Aggregate`] (of exactly one group), so merging is folding
//! one into the other, and a session closed by the watermark goes as a whole.

use std::collections::{HashMap, HashSet};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::SchemaRef;
use weir_core::{
    Epoch, Error, Operator, OutputMode, Result, StageSnapshot, StateDelta, StateEntries,
};
use weir_expr::WindowKind;

use crate::aggregate::Aggregate;
use crate::keys::{from_ordered_bytes, ordered_bytes, restored_i64, ReachedWatermark};
use crate::window::{take_rows, WindowedSettings};

const SESSION_TAG: u8 = b's';

struct Session {
    start: i64,
    end: i64,
    id: u64,
    aggregate: Aggregate,
    /// The start it is stored under in the checkpoint, if it is stored.
    stored: Option<i64>,
}

/// A running aggregate over session windows.
pub struct SessionAggregate {
    settings: WindowedSettings,
    gap_us: i64,
    /// Row-encodes the other group keys, to find a row's sessions.
    converter: Option<RowConverter>,
    /// Open sessions of each key (row-encoded other keys), disjoint and by start (so by end
    /// too), so that a row's sessions are found by binary search.
    sessions: HashMap<Box<[u8]>, Vec<Session>>,
    next_id: u64,
    /// Sessions (by id) that changed in this epoch.
    touched: HashSet<u64>,
    /// Checkpoint keys of sessions that merged away or moved their start.
    deleted: Vec<Vec<u8>>,
    watermark: ReachedWatermark,
    late_rows: u64,
}

impl SessionAggregate {
    pub(crate) fn new(settings: WindowedSettings) -> Result<Self> {
        let WindowKind::Session { gap_us } = settings.kind else {
            return Err(Error::Internal(
                "a session aggregate needs a session window".into(),
            ));
        };
        let converter = match settings.other_keys.is_empty() {
            true => None,
            false => Some(
                RowConverter::new(
                    settings
                        .other_keys
                        .iter()
                        .map(|k| SortField::new(k.field().data_type().clone()))
                        .collect(),
                )
                .map_err(|e| Error::Internal(format!("session keys cannot be row-encoded: {e}")))?,
            ),
        };
        Ok(SessionAggregate {
            settings,
            gap_us,
            converter,
            sessions: HashMap::new(),
            next_id: 0,
            touched: HashSet::new(),
            deleted: Vec::new(),
            watermark: ReachedWatermark::default(),
            late_rows: 0,
        })
    }

    fn closed(&self, end: i64) -> bool {
        self.settings.watermarked && self.watermark.get().is_some_and(|w| end <= w)
    }

    fn state_key(key: &[u8], start: i64) -> Vec<u8> {
        [&[SESSION_TAG][..], &ordered_bytes(start), key].concat()
    }

    /// The row-encoded other keys of the batch; `None` without other keys (every row then
    /// has the empty key).
    fn keys(&self, batch: &RecordBatch) -> Result<Option<Rows>> {
        let Some(converter) = &self.converter else {
            return Ok(None);
        };
        let columns = self
            .settings
            .other_keys
            .iter()
            .map(|k| k.evaluate(batch).map_err(|e| Error::Input(e.to_string())))
            .collect::<Result<Vec<ArrayRef>>>()?;
        converter
            .convert_columns(&columns)
            .map(Some)
            .map_err(|e| Error::arrow("session keys", e))
    }

    /// The session of `key` that a row at `time` belongs to, made or merged as needed;
    /// returns its id. `redirect` learns which ids merged into which.
    fn place(&mut self, key: &[u8], time: i64, redirect: &mut HashMap<u64, u64>) -> Result<u64> {
        let end = time.saturating_add(self.gap_us);
        if !self.sessions.contains_key(key) {
            self.sessions.insert(key.into(), Vec::new());
        }
        let list = self
            .sessions
            .get_mut(key)
            .ok_or_else(|| Error::Internal("a session list vanished".into()))?;
        // The sessions the row reaches: those ending at or after it and starting at or
        // before its own end, a run of the sorted list (Spark merges sessions that touch).
        let lo = list.partition_point(|s| s.end < time);
        let hi = lo + list[lo..].iter().take_while(|s| s.start <= end).count();
        if lo == hi {
            let aggregate = self.settings.inner.build()?;
            let id = self.next_id;
            self.next_id += 1;
            list.insert(
                lo,
                Session {
                    start: time,
                    end,
                    id,
                    aggregate,
                    stored: None,
                },
            );
            self.touched.insert(id);
            return Ok(id);
        }
        let merged: Vec<Session> = list.drain(lo + 1..hi).collect();
        let session = &mut list[lo];
        for gone in merged {
            session.aggregate.merge(&gone.aggregate)?;
            session.end = session.end.max(gone.end);
            redirect.insert(gone.id, session.id);
            self.touched.remove(&gone.id);
            if let Some(stored) = gone.stored {
                self.deleted.push(Self::state_key(key, stored));
            }
        }
        session.start = session.start.min(time);
        session.end = session.end.max(end);
        self.touched.insert(session.id);
        Ok(session.id)
    }
}

impl Operator for SessionAggregate {
    fn output_schema(&self) -> SchemaRef {
        self.settings.output_schema()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let times = self.settings.times(&batch)?;
        let keys = self.keys(&batch)?;
        let key_of = |i: usize| -> &[u8] {
            match &keys {
                Some(rows) => rows.row(i).data(),
                None => &[],
            }
        };
        let mut redirect = HashMap::new();
        let mut rows: HashMap<u64, (usize, Vec<u32>)> = HashMap::new();
        for (i, time) in times.iter().enumerate() {
            let Some(time) = time else { continue };
            // Spark judges a row by its own session, [time, time + gap).
            if self.closed(time.saturating_add(self.gap_us)) {
                self.late_rows += 1;
                continue;
            }
            let id = self.place(key_of(i), time, &mut redirect)?;
            rows.entry(id)
                .or_insert_with(|| (i, Vec::new()))
                .1
                .push(i as u32);
        }
        // Rows placed in a session that later merged into another go to the survivor.
        let mut merged: HashMap<u64, (usize, Vec<u32>)> = HashMap::new();
        for (mut id, (first, indices)) in rows {
            while let Some(&into) = redirect.get(&id) {
                id = into;
            }
            let entry = merged.entry(id).or_insert_with(|| (first, Vec::new()));
            entry.1.extend(indices);
        }
        for (id, (first, mut indices)) in merged {
            indices.sort_unstable();
            let part = take_rows(&batch, &indices)?;
            let session = self
                .sessions
                .get_mut(key_of(first))
                .and_then(|list| list.iter_mut().find(|s| s.id == id))
                .ok_or_else(|| Error::Internal("a session vanished".into()))?;
            session.aggregate.process(part)?;
        }
        Ok(None)
    }

    fn advance_watermark(&mut self, watermark_ms: i64) -> Result<()> {
        self.watermark.advance(watermark_ms);
        Ok(())
    }

    fn emit(&mut self, mode: OutputMode) -> Result<Option<RecordBatch>> {
        let mut found: Vec<(i64, i64, RecordBatch)> = Vec::new();
        for list in self.sessions.values() {
            for session in list {
                let wanted = match mode {
                    OutputMode::Update => self.touched.contains(&session.id),
                    OutputMode::Complete => true,
                    OutputMode::Append => self.closed(session.end),
                };
                if wanted {
                    found.push((session.start, session.end, session.aggregate.result()?));
                }
            }
        }
        // In the order of time, then of the other keys' output: stable between runs.
        found.sort_by_key(|(start, end, _)| (*start, *end));
        let parts = found
            .into_iter()
            .filter(|(_, _, b)| b.num_rows() > 0)
            .map(|(start, end, batch)| self.settings.with_window(batch, start, end))
            .collect::<Result<Vec<_>>>()?;
        self.settings.concat(parts)
    }

    fn snapshot(&mut self, _epoch: Epoch) -> Result<StageSnapshot> {
        let mut delta = StateDelta::default();
        for key in self.deleted.drain(..) {
            delta.delete(key);
        }
        let watermark = self.watermark.get().filter(|_| self.settings.watermarked);
        for (key, list) in self.sessions.iter_mut() {
            list.retain(|session| {
                let closed = watermark.is_some_and(|w| session.end <= w);
                if closed {
                    if let Some(stored) = session.stored {
                        delta.delete(Self::state_key(key, stored));
                    }
                    self.touched.remove(&session.id);
                }
                !closed
            });
            for session in list.iter_mut().filter(|s| self.touched.contains(&s.id)) {
                if let Some(stored) = session.stored.filter(|&s| s != session.start) {
                    delta.delete(Self::state_key(key, stored));
                }
                for (_, value) in session.aggregate.export() {
                    let mut stored = session.end.to_le_bytes().to_vec();
                    stored.extend_from_slice(&value);
                    delta.put(Self::state_key(key, session.start), stored);
                }
                session.stored = Some(session.start);
            }
        }
        self.sessions.retain(|_, list| !list.is_empty());
        self.watermark.snapshot(&mut delta);
        let count: usize = self.sessions.values().map(Vec::len).sum();
        let bytes: u64 = self
            .sessions
            .iter()
            .flat_map(|(k, list)| {
                list.iter()
                    .map(move |s| s.aggregate.state_bytes() + k.len() as u64 + 16)
            })
            .sum();
        Ok(StageSnapshot {
            delta,
            state_keys: count as u64,
            state_bytes: bytes,
            detail: format!("{count} open session(s)"),
        })
    }

    fn end_epoch(&mut self, epoch: Epoch) -> Result<()> {
        for list in self.sessions.values_mut() {
            for session in list.iter_mut().filter(|s| self.touched.contains(&s.id)) {
                session.aggregate.end_epoch(epoch)?;
            }
        }
        self.touched.clear();
        self.watermark.end_epoch();
        Ok(())
    }

    fn restore(&mut self, state: StateEntries) -> Result<()> {
        let damaged = || {
            Error::Internal("a session aggregate's checkpoint holds a key it did not write".into())
        };
        for (key, value) in state {
            if self.watermark.restore(&key, &value)? {
                continue;
            }
            let (Some((&SESSION_TAG, rest)), true) = (key.split_first(), key.len() >= 9) else {
                return Err(damaged());
            };
            let start = from_ordered_bytes(&rest[..8]).ok_or_else(damaged)?;
            let group_key = rest[8..].to_vec();
            if value.len() < 8 {
                return Err(damaged());
            }
            let end = restored_i64(&value[..8], "session end")?;
            let mut aggregate = self.settings.inner.build()?;
            aggregate.restore(vec![(group_key.clone(), value[8..].to_vec())])?;
            let id = self.next_id;
            self.next_id += 1;
            self.sessions
                .entry(group_key.into_boxed_slice())
                .or_default()
                .push(Session {
                    start,
                    end,
                    id,
                    aggregate,
                    stored: Some(start),
                });
        }
        for list in self.sessions.values_mut() {
            list.sort_by_key(|s| s.start);
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
    use crate::AggregateConfig;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};
    use arrow_array::{Int32Array, StringArray, TimestampMicrosecondArray};
    use std::sync::Arc;
    use weir_core::{parse_ddl, EventTimeColumn, UTC};

    const MIN: i64 = 60_000_000;

    fn batch(schema: &SchemaRef, rows: &[(i64, &str)]) -> RecordBatch {
        let ts = TimestampMicrosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
            .with_timezone(UTC);
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(ts),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int32Array::from(vec![1; rows.len()])),
            ],
        )
        .unwrap()
    }

    /// `user start end count` per session, sorted, in minutes.
    fn sessions(batch: &RecordBatch) -> Vec<String> {
        let window = batch.column(1).as_struct();
        let start = window.column(0).as_primitive::<TimestampMicrosecondType>();
        let end = window.column(1).as_primitive::<TimestampMicrosecondType>();
        let mut out: Vec<String> = (0..batch.num_rows())
            .map(|r| {
                format!(
                    "{} {}-{} {}",
                    batch.column(0).as_string::<i32>().value(r),
                    start.value(r) / MIN,
                    end.value(r) / MIN,
                    batch.column(2).as_primitive::<Int64Type>().value(r)
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn rows_within_the_gap_share_a_session_and_a_bridging_row_merges_two() {
        let schema = parse_ddl("ts TIMESTAMP, user STRING, n INT").unwrap();
        let event_time = EventTimeColumn {
            column: "ts".into(),
            delay_us: 0,
        };
        let settings = AggregateConfig {
            group_by: vec!["user".into(), "session_window(ts, '10 minutes')".into()],
            aggregates: vec!["count(*) AS n".into()],
        }
        .validate_windowed(&schema, Some(&event_time))
        .unwrap()
        .unwrap();
        let mut agg = settings.build().unwrap();
        agg.process(batch(
            &schema,
            &[(0, "u"), (5 * MIN, "u"), (22 * MIN, "u"), (0, "v")],
        ))
        .unwrap();
        assert_eq!(
            sessions(&agg.emit(OutputMode::Complete).unwrap().unwrap()),
            ["u 0-15 2", "u 22-32 1", "v 0-10 1"]
        );
        let state = agg.snapshot(Epoch(1)).unwrap().delta.into_entries();
        agg.end_epoch(Epoch(1)).unwrap();
        // 14 minutes reaches both of u's sessions: it is before the first one's end (15) and
        // its own [14, 24) reaches the second one's start (22).
        let mut restored = settings.build().unwrap();
        restored.restore(state).unwrap();
        for agg in [&mut agg, &mut restored] {
            agg.process(batch(&schema, &[(14 * MIN, "u")])).unwrap();
            assert_eq!(
                sessions(&agg.emit(OutputMode::Update).unwrap().unwrap()),
                ["u 0-32 4"]
            );
        }
        // The watermark closes v's session, and u's merged one only once it reaches 32.
        agg.advance_watermark(31 * MIN / 1000).unwrap();
        assert_eq!(
            sessions(&agg.emit(OutputMode::Append).unwrap().unwrap()),
            ["v 0-10 1"]
        );
        let snapshot = agg.snapshot(Epoch(2)).unwrap();
        assert_eq!(snapshot.state_keys, 1);
    }
}
