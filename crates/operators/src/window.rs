//! Aggregates over event-time windows: `group_by = ["window(ts, '10 minutes')", "Shop"]`.
//!
//! Each window holds an ordinary [`Aggregate`] over the other keys, so that a window's state
//! goes as a whole when the watermark passes its end: in memory, and in the checkpoint as
//! deletes of its keys. Fixed windows (tumbling and sliding) live here; sessions, whose
//! bounds move as rows arrive, in `session.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, RecordBatch, StructArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow_schema::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow_select::concat::concat_batches;
use arrow_select::take::take_record_batch;
use weir_core::{
    event_times, ConfigError, Epoch, Error, EventTimeColumn, Operator, OutputMode, Result,
    StageSnapshot, StateDelta, StateEntries, UTC,
};
use weir_expr::{Expression, WindowCall, WindowKind};

use crate::aggregate::{Aggregate, AggregateConfig, AggregateSettings};
use crate::keys::{from_ordered_bytes, ordered_bytes, ReachedWatermark};
use crate::session::SessionAggregate;

/// The state key tag of a window's groups.
const WINDOW_TAG: u8 = b'w';

/// A validated windowed aggregate, bound to its input schema.
#[derive(Debug, Clone)]
pub struct WindowedSettings {
    pub(crate) time: Expression,
    pub(crate) kind: WindowKind,
    /// Where the window column goes among the group keys.
    position: usize,
    /// The aggregate over the other keys, run once per window.
    pub(crate) inner: AggregateSettings,
    /// The inner aggregate's key expressions, for sessions, which group rows by them.
    pub(crate) other_keys: Vec<Expression>,
    output: SchemaRef,
    /// Whether the window's time is the watermarked column: then windows become final and
    /// are evicted as the watermark passes them.
    pub(crate) watermarked: bool,
    /// Why `append` is refused, when it is.
    append_refusal: Option<String>,
    describe: String,
}

impl AggregateConfig {
    /// The windowed aggregate this config describes, or `None` when no group key is a window
    /// call (then [`AggregateConfig::validate`] applies). `event_time` is the watermarked
    /// column of the input, if an upstream stage set one.
    pub fn validate_windowed(
        &self,
        input: &SchemaRef,
        event_time: Option<&EventTimeColumn>,
    ) -> Result<Option<WindowedSettings>, Vec<ConfigError>> {
        let mut windows = Vec::new();
        for (i, text) in self.group_by.iter().enumerate() {
            if let Some(call) = WindowCall::plan(text, input) {
                windows.push((i, call));
            }
        }
        let Some((position, call)) = windows.pop() else {
            return Ok(None);
        };
        if let Some((first, _)) = windows.first() {
            return Err(vec![ConfigError::new(
                format!("group_by[{first}]"),
                "an aggregate groups by at most one window",
            )]);
        }
        let call =
            call.map_err(|e| vec![ConfigError::new(format!("group_by[{position}]"), e.message)])?;
        let mut others = self.group_by.clone();
        others.remove(position);
        let inner_config = AggregateConfig {
            group_by: others.clone(),
            aggregates: self.aggregates.clone(),
        };
        // Keys of the inner aggregate are numbered without the window; say them as written.
        let inner = inner_config.validate(input).map_err(|errors| {
            errors
                .into_iter()
                .map(|e| match e.key.strip_prefix("group_by[") {
                    Some(rest) => {
                        let index: usize = rest.trim_end_matches(']').parse().unwrap_or(0);
                        let index = if index >= position { index + 1 } else { index };
                        ConfigError::new(format!("group_by[{index}]"), e.message)
                    }
                    None => e,
                })
                .collect::<Vec<_>>()
        })?;
        let other_keys = others
            .iter()
            .map(|text| Expression::plan(text, input))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| vec![ConfigError::new("group_by", e.message)])?;
        let time_column = call.time.column().map(|i| input.field(i).name().clone());
        let watermarked = match (event_time, &time_column) {
            (Some(e), Some(column)) => e.column == *column,
            _ => false,
        };
        let append_refusal = match (event_time, watermarked) {
            (_, true) => None,
            (None, false) => Some(format!(
                "reads a windowed aggregate without a watermark: nothing says when a window is final, so append could never emit one (set watermark = {{ column = \"{}\", delay = \"10 minutes\" }} on the source, or use \"update\" or \"complete\")",
                time_column.as_deref().unwrap_or("ts")
            )),
            (Some(e), false) => Some(format!(
                "reads a window over \"{}\", but the watermark is on \"{}\": only a window over the watermarked column knows when it is final",
                call.time.name(),
                e.column
            )),
        };
        let mut fields: Vec<Field> = inner
            .output_schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.insert(position, Field::new(&call.name, window_type(), false));
        let mut names = std::collections::HashSet::new();
        for field in &fields {
            if !names.insert(field.name().to_lowercase()) {
                return Err(vec![ConfigError::new(
                    "group_by",
                    format!(
                        "two output columns are named \"{}\" (rename one with `as`)",
                        field.name()
                    ),
                )]);
            }
        }
        Ok(Some(WindowedSettings {
            time: call.time,
            kind: call.kind,
            position,
            inner,
            other_keys,
            output: Arc::new(Schema::new(fields)),
            watermarked,
            append_refusal,
            describe: format!(
                "group_by [{}]: {}",
                self.group_by.join(", "),
                self.aggregates.join(", ")
            ),
        }))
    }
}

/// Spark's window column: `struct<start: timestamp, end: timestamp>`.
fn window_fields() -> Fields {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()));
    Fields::from(vec![
        Field::new("start", ts.clone(), false),
        Field::new("end", ts, false),
    ])
}

fn window_type() -> DataType {
    DataType::Struct(window_fields())
}

impl WindowedSettings {
    /// `group_by [window(...), keys]: aggregates`, for `weir graph` and the fingerprint.
    pub fn describe(&self) -> String {
        self.describe.clone()
    }

    /// The schema of what the aggregate emits: the window and the other keys in the order
    /// of `group_by`, then the aggregates.
    pub fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    /// Why a sink reading this aggregate may not use `append` mode; `None` when it may.
    pub fn append_refusal(&self) -> Option<String> {
        self.append_refusal.clone()
    }

    /// The running aggregate, with empty state.
    pub fn build(&self) -> Result<Box<dyn Operator>> {
        Ok(match self.kind {
            WindowKind::Fixed {
                size_us,
                slide_us,
                start_us,
            } => Box::new(WindowedAggregate {
                settings: self.clone(),
                size_us,
                slide_us,
                start_us,
                windows: BTreeMap::new(),
                watermark: ReachedWatermark::default(),
                touched: BTreeSet::new(),
                late_rows: 0,
            }),
            WindowKind::Session { .. } => Box::new(SessionAggregate::new(self.clone())?),
        })
    }

    /// The inner aggregate's output for one window, with the window column put in place.
    pub(crate) fn with_window(
        &self,
        inner: RecordBatch,
        start: i64,
        end: i64,
    ) -> Result<RecordBatch> {
        let rows = inner.num_rows();
        let window = windows_column(&vec![start; rows], &vec![end; rows]);
        let mut columns = inner.columns().to_vec();
        columns.insert(self.position, window);
        RecordBatch::try_new(self.output.clone(), columns)
            .map_err(|e| Error::arrow("window output", e))
    }

    /// Joins the per-window outputs of one emit.
    pub(crate) fn concat(&self, parts: Vec<RecordBatch>) -> Result<Option<RecordBatch>> {
        if parts.is_empty() {
            return Ok(None);
        }
        concat_batches(&self.output, &parts)
            .map(Some)
            .map_err(|e| Error::arrow("window output", e))
    }

    /// The event time of every row, in microseconds.
    pub(crate) fn times(&self, batch: &RecordBatch) -> Result<TimestampMicrosecondArray> {
        let array = self
            .time
            .evaluate(batch)
            .map_err(|e| Error::Input(e.to_string()))?;
        event_times(&array).ok_or_else(|| {
            Error::Internal(format!(
                "window time \"{}\" is {}, not a timestamp",
                self.time.name(),
                array.data_type()
            ))
        })
    }
}

/// A window column of `start`/`end` pairs.
pub(crate) fn windows_column(starts: &[i64], ends: &[i64]) -> ArrayRef {
    let start = TimestampMicrosecondArray::from(starts.to_vec()).with_timezone(UTC);
    let end = TimestampMicrosecondArray::from(ends.to_vec()).with_timezone(UTC);
    Arc::new(StructArray::new(
        window_fields(),
        vec![Arc::new(start), Arc::new(end)],
        None,
    ))
}

/// The rows of `batch` at `rows`.
pub(crate) fn take_rows(batch: &RecordBatch, rows: &[u32]) -> Result<RecordBatch> {
    if rows.len() == batch.num_rows() {
        return Ok(batch.clone());
    }
    take_record_batch(batch, &UInt32Array::from(rows.to_vec()))
        .map_err(|e| Error::arrow("window", e))
}

/// A running aggregate over tumbling or sliding windows.
pub struct WindowedAggregate {
    settings: WindowedSettings,
    size_us: i64,
    slide_us: i64,
    start_us: i64,
    /// Open windows by start.
    windows: BTreeMap<i64, Aggregate>,
    /// Windows that ended at or before it are final.
    watermark: ReachedWatermark,
    /// Windows that rows changed in this epoch.
    touched: BTreeSet<i64>,
    late_rows: u64,
}

impl WindowedAggregate {
    /// Whether the window starting at `start` is final.
    fn closed(&self, start: i64) -> bool {
        self.settings.watermarked
            && self
                .watermark
                .get()
                .is_some_and(|w| start.saturating_add(self.size_us) <= w)
    }

    fn window(&mut self, start: i64) -> Result<&mut Aggregate> {
        if !self.windows.contains_key(&start) {
            let aggregate = self.settings.inner.build()?;
            self.windows.insert(start, aggregate);
        }
        self.windows
            .get_mut(&start)
            .ok_or_else(|| Error::Internal("a window vanished".into()))
    }

    fn state_prefix(&self, start: i64) -> Vec<u8> {
        let mut key = vec![WINDOW_TAG];
        key.extend_from_slice(&ordered_bytes(start));
        key.extend_from_slice(&ordered_bytes(start.saturating_add(self.size_us)));
        key
    }
}

impl Operator for WindowedAggregate {
    fn output_schema(&self) -> SchemaRef {
        self.settings.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let times = self.settings.times(&batch)?;
        // Rows of each window, in row order. Spark's assignment: the last window starting at
        // or before the row, and the earlier ones that still cover it.
        let mut rows: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        let overlapping = (self.size_us + self.slide_us - 1) / self.slide_us;
        for (i, time) in times.iter().enumerate() {
            // Spark drops rows without an event time: they belong to no window.
            let Some(time) = time else { continue };
            let last =
                (time - self.start_us).div_euclid(self.slide_us) * self.slide_us + self.start_us;
            for k in 0..overlapping {
                let start = last - k * self.slide_us;
                if start.saturating_add(self.size_us) <= time {
                    break;
                }
                if self.closed(start) {
                    self.late_rows += 1;
                    continue;
                }
                rows.entry(start).or_default().push(i as u32);
            }
        }
        for (start, indices) in rows {
            let part = take_rows(&batch, &indices)?;
            self.window(start)?.process(part)?;
            self.touched.insert(start);
        }
        Ok(None)
    }

    fn advance_watermark(&mut self, watermark_ms: i64) -> Result<()> {
        self.watermark.advance(watermark_ms);
        Ok(())
    }

    fn emit(&mut self, mode: OutputMode) -> Result<Option<RecordBatch>> {
        let mut parts = Vec::new();
        let closed: BTreeSet<i64> = match mode {
            OutputMode::Append => self
                .windows
                .keys()
                .copied()
                .filter(|&s| self.closed(s))
                .collect(),
            _ => BTreeSet::new(),
        };
        for (&start, aggregate) in &mut self.windows {
            let end = start.saturating_add(self.size_us);
            let out = match mode {
                OutputMode::Update if self.touched.contains(&start) => {
                    aggregate.emit(OutputMode::Update)?
                }
                OutputMode::Update => None,
                OutputMode::Complete => Some(aggregate.result()?),
                OutputMode::Append if closed.contains(&start) => Some(aggregate.result()?),
                OutputMode::Append => None,
            };
            if let Some(out) = out.filter(|b| b.num_rows() > 0) {
                parts.push(self.settings.with_window(out, start, end)?);
            }
        }
        self.settings.concat(parts)
    }

    /// Changed windows' changed groups, under the window's key prefix; every key of the
    /// windows the watermark closed, deleted; and the watermark reached.
    fn snapshot(&mut self, epoch: Epoch) -> Result<StageSnapshot> {
        let mut delta = StateDelta::default();
        let closed: Vec<i64> = self
            .windows
            .keys()
            .copied()
            .filter(|&s| self.closed(s))
            .collect();
        for start in closed {
            let prefix = self.state_prefix(start);
            if let Some(aggregate) = self.windows.remove(&start) {
                for key in aggregate.state_keys() {
                    delta.delete([prefix.as_slice(), &key].concat());
                }
            }
            self.touched.remove(&start);
        }
        for &start in &self.touched {
            let prefix = self.state_prefix(start);
            if let Some(aggregate) = self.windows.get_mut(&start) {
                for (key, value) in aggregate.snapshot(epoch)?.delta.changes {
                    delta
                        .changes
                        .push(([prefix.as_slice(), &key].concat(), value));
                }
            }
        }
        self.watermark.snapshot(&mut delta);
        let groups: usize = self.windows.values().map(Aggregate::group_count).sum();
        let bytes: u64 = self.windows.values().map(Aggregate::state_bytes).sum();
        Ok(StageSnapshot {
            delta,
            state_keys: groups as u64,
            state_bytes: bytes,
            detail: format!("{} window(s), {groups} group(s)", self.windows.len()),
        })
    }

    fn end_epoch(&mut self, epoch: Epoch) -> Result<()> {
        for start in std::mem::take(&mut self.touched) {
            if let Some(aggregate) = self.windows.get_mut(&start) {
                aggregate.end_epoch(epoch)?;
            }
        }
        self.watermark.end_epoch();
        Ok(())
    }

    fn restore(&mut self, state: StateEntries) -> Result<()> {
        let mut by_window: BTreeMap<i64, StateEntries> = BTreeMap::new();
        for (key, value) in state {
            if self.watermark.restore(&key, &value)? {
                continue;
            }
            let start = match key.split_first() {
                Some((&WINDOW_TAG, rest)) if rest.len() >= 16 => from_ordered_bytes(&rest[..8]),
                _ => None,
            };
            let Some(start) = start else {
                return Err(Error::Internal(
                    "the windowed aggregate's checkpoint holds a key it did not write".into(),
                ));
            };
            by_window
                .entry(start)
                .or_default()
                .push((key[17..].to_vec(), value));
        }
        for (start, entries) in by_window {
            self.window(start)?.restore(entries)?;
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
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int64Type, TimestampMicrosecondType};
    use arrow_array::{Int32Array, StringArray};
    use weir_core::parse_ddl;

    const MIN: i64 = 60_000_000;

    fn settings(group_by: &[&str], watermarked: bool) -> (SchemaRef, WindowedSettings) {
        let schema = parse_ddl("ts TIMESTAMP, shop STRING, n INT").unwrap();
        let event_time = EventTimeColumn {
            column: "ts".into(),
            delay_us: 0,
        };
        let config = AggregateConfig {
            group_by: group_by.iter().map(|s| s.to_string()).collect(),
            aggregates: vec!["sum(n) AS total".into()],
        };
        let settings = config
            .validate_windowed(&schema, watermarked.then_some(&event_time))
            .unwrap()
            .unwrap();
        (schema, settings)
    }

    fn batch(schema: &SchemaRef, rows: &[(i64, &str, i32)]) -> RecordBatch {
        let ts = TimestampMicrosecondArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())
            .with_timezone(UTC);
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(ts),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int32Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    /// `start_minute shop total` per output row, sorted.
    fn rows(batch: &RecordBatch) -> Vec<String> {
        let window = batch.column(0).as_struct();
        let starts = window.column(0).as_primitive::<TimestampMicrosecondType>();
        let mut out: Vec<String> = (0..batch.num_rows())
            .map(|r| {
                format!(
                    "{} {} {}",
                    starts.value(r) / MIN,
                    batch.column(1).as_string::<i32>().value(r),
                    batch.column(2).as_primitive::<Int64Type>().value(r)
                )
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn a_row_belongs_to_every_sliding_window_that_covers_it() {
        let (schema, settings) =
            settings(&["window(ts, '10 minutes', '5 minutes')", "shop"], false);
        let mut agg = settings.build().unwrap();
        // 7 minutes is in [0, 10) and [5, 15); 10 minutes in [5, 15) and [10, 20) (ends are
        // exclusive); -1 minute in [-10, 0) and [-5, 5).
        agg.process(batch(
            &schema,
            &[(7 * MIN, "a", 1), (10 * MIN, "a", 10), (-MIN, "a", 100)],
        ))
        .unwrap();
        let out = agg.emit(OutputMode::Complete).unwrap().unwrap();
        assert_eq!(
            rows(&out),
            ["-10 a 100", "-5 a 100", "0 a 1", "10 a 10", "5 a 11"]
        );
        assert_eq!(
            settings.output_schema().field(0).name(),
            "window",
            "Spark's name for the window column"
        );
    }

    #[test]
    fn final_windows_are_appended_once_evicted_and_later_rows_for_them_dropped() {
        let (schema, settings) = settings(&["window(ts, '10 minutes')", "shop"], true);
        let mut agg = settings.build().unwrap();
        agg.process(batch(&schema, &[(MIN, "a", 1), (12 * MIN, "b", 2)]))
            .unwrap();
        agg.advance_watermark(10 * MIN / 1000).unwrap();
        assert_eq!(
            rows(&agg.emit(OutputMode::Append).unwrap().unwrap()),
            ["0 a 1"]
        );
        let snapshot = agg.snapshot(Epoch(1)).unwrap();
        agg.end_epoch(Epoch(1)).unwrap();
        assert_eq!(snapshot.state_keys, 1, "the closed window is gone");
        let state = snapshot.delta.clone().into_entries();
        // A late row for the closed window is dropped and counted; the open one takes rows.
        agg.process(batch(&schema, &[(2 * MIN, "a", 5), (13 * MIN, "b", 3)]))
            .unwrap();
        assert_eq!(agg.take_late_rows(), 1);
        assert!(agg.emit(OutputMode::Append).unwrap().is_none());
        assert_eq!(
            rows(&agg.emit(OutputMode::Update).unwrap().unwrap()),
            ["10 b 5"]
        );
        // Restored from the checkpoint: the watermark and the open window come back.
        let mut restored = settings.build().unwrap();
        restored.restore(state).unwrap();
        restored
            .process(batch(&schema, &[(3 * MIN, "a", 7)]))
            .unwrap();
        assert_eq!(restored.take_late_rows(), 1);
        assert_eq!(
            rows(&restored.emit(OutputMode::Complete).unwrap().unwrap()),
            ["10 b 2"]
        );
    }

    #[test]
    fn a_window_over_another_column_than_the_watermark_is_not_appendable() {
        let (_, plain) = settings(&["window(ts, '1 hour')"], false);
        assert!(plain
            .append_refusal()
            .unwrap()
            .contains("without a watermark"));
        let (_, watermarked) = settings(&["window(ts, '1 hour')"], true);
        assert!(watermarked.append_refusal().is_none());
    }
}
