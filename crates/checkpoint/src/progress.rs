//! Per-epoch progress records, like Spark's `StreamingQueryProgress`.

use std::time::Duration;

use actix::Message;
use serde::Serialize;

/// What one stage did in one epoch, measured by its actor and sent with its barrier answer
/// ([`crate::BarrierEmitted`] or [`crate::Ack`]).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageStats {
    /// Rows received in the epoch (for a source: rows read).
    pub rows_in: u64,
    /// Rows handed on in the epoch (for a sink: rows written).
    pub rows_out: u64,
    /// Time the stage spent on the epoch's work: reading, processing or writing.
    pub busy: Duration,
    /// Time the stage waited for downstream stages to take what it handed on.
    pub backpressured: Duration,
    /// Input units (files) a source has discovered but not read yet, after the barrier.
    pub pending: Option<u64>,
    /// Malformed input rows a source met in the epoch.
    pub malformed_rows: u64,
    /// Rows a stateful operator dropped in the epoch because they were late.
    pub rows_dropped_by_watermark: u64,
    /// The watermark the stage has reached after the epoch, in milliseconds since the Unix
    /// epoch; `None` where no watermark flows.
    pub watermark_ms: Option<i64>,
    /// The event times a stage that computes a watermark saw in the epoch.
    pub event_time: Option<EventTimeStats>,
}

/// The event times of one epoch's rows at the stage that computes a watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventTimeStats {
    /// Smallest event time, microseconds since the Unix epoch.
    pub min_us: i64,
    /// Largest event time, microseconds since the Unix epoch.
    pub max_us: i64,
    /// Sum of the event times, for the average.
    pub sum_us: i128,
    /// Rows with an event time.
    pub count: u64,
}

impl EventTimeStats {
    /// The stats of both `self` and `other`.
    pub fn merge(self, other: EventTimeStats) -> EventTimeStats {
        EventTimeStats {
            min_us: self.min_us.min(other.min_us),
            max_us: self.max_us.max(other.max_us),
            sum_us: self.sum_us + other.sum_us,
            count: self.count + other.count,
        }
    }
}

/// Spark's `eventTime` block of a progress record: ISO 8601 UTC timestamps.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventTimeProgress {
    /// Smallest event time of the epoch's rows.
    pub min: String,
    /// Largest event time of the epoch's rows.
    pub max: String,
    /// Average event time of the epoch's rows.
    pub avg: String,
    /// The watermark after the epoch (the smallest, when several stages compute one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

/// One stage in an [`EpochProgress`] record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageProgress {
    /// The stage's name in the pipeline file (`sources.sales`).
    pub name: String,
    /// Rows received in the epoch (for a source: rows read).
    pub rows_in: u64,
    /// Rows handed on in the epoch (for a sink: rows written).
    pub rows_out: u64,
    /// Milliseconds the stage spent on the epoch's work.
    pub busy_ms: f64,
    /// Milliseconds the stage waited for downstream stages to take its output (its
    /// backpressure; 0 for sinks).
    pub backpressured_ms: f64,
    /// `rows_in` per second of `busy_ms`: how fast the stage works when it has work.
    pub processed_rows_per_second: f64,
    /// Keys in the stage's state after the epoch (groups, finished files, pending files).
    pub state_keys: u64,
    /// Approximate bytes of the stage's state after the epoch.
    pub state_bytes: u64,
    /// For a source: files discovered and not read yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files_pending: Option<u64>,
    /// For a source: malformed rows met in the epoch.
    pub malformed_rows: u64,
    /// For a stateful operator: rows dropped in the epoch because they were late (Spark's
    /// `numRowsDroppedByWatermark`).
    pub rows_dropped_by_watermark: u64,
    /// The watermark the stage has reached after the epoch, UTC; absent where no watermark
    /// flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watermark: Option<String>,
}

/// Milliseconds spent in each phase of an epoch. Stage times add up over stages, and stages
/// run in parallel, so `read + process + write` may exceed `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PhaseDurations {
    /// Sources reading and parsing input.
    pub read: f64,
    /// Operators processing batches and emitting at the barrier.
    pub process: f64,
    /// Sinks writing and pre-committing.
    pub write: f64,
    /// The checkpoint's synced RocksDB write.
    pub checkpoint: f64,
    /// Sinks making the epoch's output visible, after the checkpoint.
    pub commit: f64,
    /// From the epoch's start to the end of its commit.
    pub total: f64,
}

/// Published after every committed epoch: what happened in it, per stage.
#[derive(Debug, Clone, PartialEq, Serialize, Message)]
#[rtype(result = "()")]
pub struct EpochProgress {
    /// The epoch that committed.
    pub epoch: u64,
    /// Whether it was the run's last epoch.
    #[serde(rename = "final")]
    pub last: bool,
    /// The trigger: `continuous`, `processing_time`, `once` or `available_now`.
    pub trigger: &'static str,
    /// When the epoch committed, UTC, ISO 8601 with milliseconds.
    pub timestamp: String,
    /// Files admitted into the epoch; absent under the continuous trigger, where sources
    /// take files as they come.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admitted_files: Option<usize>,
    /// Rows all sources read in the epoch.
    pub input_rows: u64,
    /// `input_rows` per second of time since the previous epoch started: how fast data came.
    pub input_rows_per_second: f64,
    /// `input_rows` per second of this epoch's total duration: how fast it was handled.
    pub processed_rows_per_second: f64,
    /// Where the epoch's time went, in milliseconds.
    pub durations_ms: PhaseDurations,
    /// Bytes the checkpoint wrote; absent without `checkpoint.path`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_bytes: Option<u64>,
    /// Event times of the epoch's rows where a watermark is computed (Spark's `eventTime`);
    /// absent without a watermark or without rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_time: Option<EventTimeProgress>,
    /// The stage that held the epoch back, when one did (see [`find_bottleneck`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bottleneck: Option<Bottleneck>,
    /// Every stage, sources first.
    pub stages: Vec<StageProgress>,
}

/// A stage is backpressured, and a candidate bottleneck busy, above this share of the time
/// (Flink calls backpressure above 50 % high).
pub const BOTTLENECK_THRESHOLD: f64 = 0.5;

/// How one stage spent a stretch of time, for [`find_bottleneck`].
#[derive(Debug, Clone, PartialEq)]
pub struct StageLoad {
    /// The stage's name (`sinks.archive`).
    pub name: String,
    /// Share of the time spent working, 0 to 1.
    pub busy: f64,
    /// Share of the time spent waiting for downstream, 0 to 1.
    pub backpressured: f64,
    /// The stages it reads, by name.
    pub upstreams: Vec<String>,
}

/// The stage that holds a pipeline back: the busiest stage whose upstream is backpressured,
/// or a source busy reading while nothing waits on anything.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bottleneck {
    /// The stage's name (`sinks.archive`).
    pub stage: String,
    /// Its share of the time spent working, 0 to 1.
    pub busy: f64,
    /// Its most backpressured upstream stage, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// That upstream's share of the time spent waiting for downstream, 0 to 1.
    pub upstream_backpressured: f64,
}

/// Finds the bottleneck: among the stages that are either sources or read an upstream
/// backpressured at least [`BOTTLENECK_THRESHOLD`] of the time, the busiest, if it is busy
/// at least that share too. `None` when nothing is (an idle pipeline waiting for input).
pub fn find_bottleneck(loads: &[StageLoad]) -> Option<Bottleneck> {
    let backpressured = |name: &str| {
        loads
            .iter()
            .find(|l| l.name == name)
            .map_or(0.0, |l| l.backpressured)
    };
    loads
        .iter()
        .filter_map(|load| {
            let upstream = load
                .upstreams
                .iter()
                .map(|u| (u, backpressured(u)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let held_back = upstream.is_none_or(|(_, bp)| bp >= BOTTLENECK_THRESHOLD);
            (held_back && load.busy >= BOTTLENECK_THRESHOLD).then(|| Bottleneck {
                stage: load.name.clone(),
                busy: round2(load.busy),
                upstream: upstream.map(|(u, _)| u.clone()),
                upstream_backpressured: round2(upstream.map_or(0.0, |(_, bp)| bp)),
            })
        })
        .max_by(|a, b| a.busy.total_cmp(&b.busy))
}

/// A share to two decimals, for records.
fn round2(share: f64) -> f64 {
    (share.clamp(0.0, 1.0) * 100.0).round() / 100.0
}

impl EpochProgress {
    /// The record as one line of JSON, for `--progress-log` and `--json`.
    pub fn to_json(&self) -> String {
        // Only numbers, strings and options of them: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Rows per second to a tenth, 0 when no time passed.
pub(crate) fn rate(rows: u64, time: Duration) -> f64 {
    let seconds = time.as_secs_f64();
    if seconds > 0.0 {
        (rows as f64 / seconds * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// Milliseconds to the microsecond, for records: more digits would be noise.
pub(crate) fn millis(time: Duration) -> f64 {
    time.as_micros() as f64 / 1e3
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` from milliseconds since the Unix epoch (before 1970 too).
pub fn utc_timestamp(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(time) => time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        // Beyond chrono's range (±262,000 years): no clock gives such a time.
        None => format!("{ms} ms since 1970"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(name: &str, busy: f64, backpressured: f64, upstreams: &[&str]) -> StageLoad {
        StageLoad {
            name: name.into(),
            busy,
            backpressured,
            upstreams: upstreams.iter().map(|u| u.to_string()).collect(),
        }
    }

    #[test]
    fn the_bottleneck_is_the_busiest_stage_whose_upstream_waits_on_it() {
        // source -> filter -> {slow, fast}: the slow sink holds everything back.
        let loads = [
            load("sources.s", 0.05, 0.9, &[]),
            load("operators.f", 0.04, 0.92, &["sources.s"]),
            load("sinks.slow", 0.95, 0.0, &["operators.f"]),
            load("sinks.fast", 0.02, 0.0, &["sources.s"]),
        ];
        let b = find_bottleneck(&loads).unwrap();
        assert_eq!(b.stage, "sinks.slow");
        assert_eq!(b.upstream.as_deref(), Some("operators.f"));
        assert_eq!((b.busy, b.upstream_backpressured), (0.95, 0.92));
    }

    #[test]
    fn a_busy_source_that_nothing_waits_on_is_the_bottleneck() {
        let loads = [
            load("sources.s", 0.9, 0.05, &[]),
            load("operators.a", 0.3, 0.0, &["sources.s"]),
        ];
        let b = find_bottleneck(&loads).unwrap();
        assert_eq!((b.stage.as_str(), b.upstream), ("sources.s", None));
    }

    #[test]
    fn a_busy_stage_whose_upstream_does_not_wait_is_not_the_bottleneck() {
        // The operator is busy, but its source is not held back by it: no stage is both.
        let loads = [
            load("sources.s", 0.1, 0.2, &[]),
            load("operators.a", 0.7, 0.0, &["sources.s"]),
        ];
        assert_eq!(find_bottleneck(&loads), None);
        // An idle pipeline has none either.
        assert_eq!(find_bottleneck(&[load("sources.s", 0.0, 0.0, &[])]), None);
    }

    #[test]
    fn with_two_inputs_the_most_backpressured_one_is_named() {
        let loads = [
            load("sources.a", 0.1, 0.6, &[]),
            load("sources.b", 0.1, 0.8, &[]),
            load("operators.join", 0.9, 0.0, &["sources.a", "sources.b"]),
        ];
        let b = find_bottleneck(&loads).unwrap();
        assert_eq!(
            (b.stage.as_str(), b.upstream.as_deref()),
            ("operators.join", Some("sources.b"))
        );
    }

    #[test]
    fn timestamps_are_iso_8601_utc() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_timestamp(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
        assert_eq!(utc_timestamp(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn rates_of_no_time_are_zero() {
        assert_eq!(rate(10, Duration::ZERO), 0.0);
        assert_eq!(rate(10, Duration::from_millis(500)), 20.0);
    }
}
