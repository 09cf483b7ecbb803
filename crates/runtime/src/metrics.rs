//! The pipeline's metrics registry (design.md §9). The stage actors feed it through their
//! [`StageMetrics`] atomics and the coordinator through its progress records; the HTTP server
//! and the embedding application read it. Reading takes a lock that only the sampling task
//! and readers share, so a scrape never blocks a stage.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry as PromRegistry;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::broadcast;
use weir_checkpoint::{
    find_bottleneck, Bottleneck, CheckpointStore, EpochProgress, RunResult, StageLoad,
};

use crate::actors::StageMetrics;
use crate::graph::GraphView;

/// How often the sampling task reads every stage's counters.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// The busy, backpressured and idle shares are averaged over this much time, so that one
/// slow batch does not flip the bottleneck back and forth.
pub const RATIO_WINDOW: Duration = Duration::from_secs(5);
/// Samples kept for the dashboard's charts: five minutes at one a second.
const SAMPLES_KEPT: usize = 300;
/// Progress records kept for `/api/progress`.
const RECORDS_KEPT: usize = 100;

/// What one stage did over the last [`RATIO_WINDOW`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct StageRates {
    /// Rows received per second.
    pub rows_in_per_second: f64,
    /// Rows handed on (for a sink: written) per second.
    pub rows_out_per_second: f64,
    /// Share of the time spent working, 0 to 1.
    pub busy: f64,
    /// Share of the time spent waiting for downstream stages, 0 to 1.
    pub backpressured: f64,
    /// The rest: share of the time with nothing to do, 0 to 1.
    pub idle: f64,
}

/// Every stage's rates at one moment.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    /// Milliseconds since the Unix epoch.
    time_ms: u64,
    /// In the order of [`PipelineMetrics::stage_names`].
    stages: Vec<StageRates>,
}

/// One stage: its name, what it reads, and its live counters.
struct StageEntry {
    name: String,
    kind: &'static str,
    upstreams: Vec<String>,
    counters: Arc<StageMetrics>,
}

/// What committed epochs said about one stage, summed or latest.
#[derive(Debug, Clone, Copy, Default)]
struct StageTotals {
    malformed_rows: u64,
    rows_dropped_by_watermark: u64,
    state_keys: u64,
    state_bytes: u64,
}

/// The counters a rate is computed from.
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    rows_in: u64,
    rows_out: u64,
    busy_ns: u64,
    backpressured_ns: u64,
}

/// What the sampling task and the progress records keep.
#[derive(Default)]
struct Live {
    records: VecDeque<EpochProgress>,
    epochs_completed: u64,
    epochs_failed: u64,
    input_rows: u64,
    last_epoch: Option<u64>,
    last_commit: Option<Instant>,
    files_pending: u64,
    lag_seconds: f64,
    totals: BTreeMap<String, StageTotals>,
    /// Counter readings over the last [`RATIO_WINDOW`], oldest first.
    window: VecDeque<(Instant, Vec<Reading>)>,
    /// The last of them holds the current rates.
    samples: VecDeque<Sample>,
    bottleneck: Option<Bottleneck>,
    /// The idle seconds last reported per stage: the counter never goes back.
    idle_reported: Vec<f64>,
}

impl Live {
    /// Stage `i`'s rates in the last sample; zero before the first.
    fn rate(&self, i: usize) -> StageRates {
        self.samples
            .back()
            .and_then(|s| s.stages.get(i))
            .copied()
            .unwrap_or_default()
    }
}

/// Histograms of the epochs' phases, for `/metrics`.
struct Histograms {
    epoch: Histogram,
    checkpoint: Histogram,
    checkpoint_bytes: Histogram,
    commit: Histogram,
}

/// The metrics of one running pipeline: per stage and per pipeline, as Prometheus text
/// ([`PipelineMetrics::prometheus`]) and as the JSON the dashboard reads.
pub struct PipelineMetrics {
    graph: GraphView,
    checkpoint_path: Option<PathBuf>,
    started: Instant,
    stages: Vec<StageEntry>,
    histograms: Histograms,
    live: Mutex<Live>,
}

impl fmt::Debug for PipelineMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PipelineMetrics")
            .field("pipeline", &self.graph.pipeline)
            .field("stages", &self.stage_names())
            .finish_non_exhaustive()
    }
}

impl PipelineMetrics {
    /// A registry over `stages` (name and counters), whose inputs the graph gives.
    pub(crate) fn new(
        graph: GraphView,
        checkpoint_path: Option<PathBuf>,
        stages: &[(String, Arc<StageMetrics>)],
    ) -> Self {
        let entries: Vec<StageEntry> = graph
            .nodes
            .iter()
            .filter_map(|node| {
                let counters = stages.iter().find(|(name, _)| *name == node.id)?.1.clone();
                let mut upstreams: Vec<String> = graph
                    .edges
                    .iter()
                    .filter(|e| e.to == node.id)
                    .map(|e| e.from.clone())
                    .collect();
                upstreams.dedup();
                Some(StageEntry {
                    name: node.id.clone(),
                    kind: node.kind,
                    upstreams,
                    counters,
                })
            })
            .collect();
        let stage_count = entries.len();
        PipelineMetrics {
            graph,
            checkpoint_path,
            started: Instant::now(),
            stages: entries,
            histograms: Histograms {
                // 1 ms to about 65 s.
                epoch: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
                checkpoint: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
                commit: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
                // 1 KiB to 1 GiB.
                checkpoint_bytes: Histogram::new(exponential_buckets(1024.0, 4.0, 11)),
            },
            live: Mutex::new(Live {
                idle_reported: vec![0.0; stage_count],
                ..Live::default()
            }),
        }
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        &self.graph.pipeline
    }

    /// Every stage's name (`sources.sales`), sources first, then operators, then sinks.
    pub fn stage_names(&self) -> Vec<&str> {
        self.stages.iter().map(|s| s.name.as_str()).collect()
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        // A reader that panicked left nothing half-written that matters: counters only.
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes in a committed epoch's progress record.
    pub(crate) fn record(&self, record: &EpochProgress) {
        let seconds = |ms: f64| ms / 1e3;
        self.histograms
            .epoch
            .observe(seconds(record.durations_ms.total));
        self.histograms
            .commit
            .observe(seconds(record.durations_ms.commit));
        if let Some(bytes) = record.checkpoint_bytes {
            self.histograms
                .checkpoint
                .observe(seconds(record.durations_ms.checkpoint));
            self.histograms.checkpoint_bytes.observe(bytes as f64);
        }
        let mut live = self.live();
        live.epochs_completed += 1;
        live.input_rows += record.input_rows;
        live.last_epoch = Some(record.epoch);
        live.last_commit = Some(Instant::now());
        live.lag_seconds = seconds(record.durations_ms.total);
        live.files_pending = record.stages.iter().filter_map(|s| s.files_pending).sum();
        for stage in &record.stages {
            let totals = live.totals.entry(stage.name.clone()).or_default();
            totals.malformed_rows += stage.malformed_rows;
            totals.rows_dropped_by_watermark += stage.rows_dropped_by_watermark;
            totals.state_keys = stage.state_keys;
            totals.state_bytes = stage.state_bytes;
        }
        if live.records.len() == RECORDS_KEPT {
            live.records.pop_front();
        }
        live.records.push_back(record.clone());
    }

    /// Counts the run's end: a failed run is a failed epoch.
    pub(crate) fn ended(&self, result: &RunResult) {
        if result.is_err() {
            self.live().epochs_failed += 1;
        }
    }

    /// Reads every stage's counters and updates the rates, the shares and the bottleneck.
    pub(crate) fn sample(&self) {
        let now = Instant::now();
        let readings: Vec<Reading> = self
            .stages
            .iter()
            .map(|s| Reading {
                rows_in: StageMetrics::get(&s.counters.rows_in),
                rows_out: StageMetrics::get(&s.counters.rows_out),
                busy_ns: StageMetrics::get(&s.counters.busy_ns),
                backpressured_ns: StageMetrics::get(&s.counters.backpressured_ns),
            })
            .collect();
        let mut live = self.live();
        // Keep one reading at least RATIO_WINDOW old, so that the window is full.
        while live.window.len() > 1
            && live
                .window
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= RATIO_WINDOW)
        {
            live.window.pop_front();
        }
        let (since, before) = match live.window.front() {
            Some((t, r)) => (*t, r.clone()),
            None => (self.started, vec![Reading::default(); readings.len()]),
        };
        let elapsed = now.duration_since(since).as_secs_f64();
        let rates: Vec<StageRates> = readings
            .iter()
            .zip(&before)
            .map(|(now, then)| rates_between(then, now, elapsed))
            .collect();
        live.window.push_back((now, readings));
        let loads: Vec<StageLoad> = self
            .stages
            .iter()
            .zip(&rates)
            .map(|(stage, rate)| StageLoad {
                name: stage.name.clone(),
                busy: rate.busy,
                backpressured: rate.backpressured,
                upstreams: stage.upstreams.clone(),
            })
            .collect();
        live.bottleneck = find_bottleneck(&loads);
        if live.samples.len() == SAMPLES_KEPT {
            live.samples.pop_front();
        }
        live.samples.push_back(Sample {
            time_ms: unix_ms(),
            stages: rates,
        });
    }

    /// The stage that holds the pipeline back now, if one does.
    pub fn bottleneck(&self) -> Option<Bottleneck> {
        self.live().bottleneck.clone()
    }

    /// Every stage's rates over the last [`RATIO_WINDOW`], by name.
    pub fn rates(&self) -> Vec<(String, StageRates)> {
        let live = self.live();
        self.stages
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), live.rate(i)))
            .collect()
    }

    /// Everything, in Prometheus' text format (OpenMetrics 1.0).
    pub fn prometheus(self: &Arc<Self>) -> String {
        let mut registry = PromRegistry::default();
        registry.register_collector(Box::new(Exposition(self.clone())));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }

    /// Everything, in Prometheus' classic text format (0.0.4): what `promtool`, older
    /// Prometheus servers and clients that do not ask for OpenMetrics read. The same series
    /// as [`PipelineMetrics::prometheus`]: counters' `HELP` and `TYPE` lines name the
    /// `_total` series, as that format wants, and there is no `# EOF`.
    pub fn prometheus_classic(self: &Arc<Self>) -> String {
        classic_text(&self.prometheus())
    }

    /// The graph with every stage's live figures, for `/api/graph`.
    pub fn graph_json(&self) -> Value {
        let live = self.live();
        let rate_of = |id: &str| {
            self.stages
                .iter()
                .position(|s| s.name == id)
                .map(|i| live.rate(i))
        };
        let nodes: Vec<Value> = self
            .graph
            .nodes
            .iter()
            .map(|node| {
                let mut value = serde_json::to_value(node).unwrap_or(Value::Null);
                let stage = self.stages.iter().find(|s| s.name == node.id);
                let totals = live.totals.get(&node.id).copied().unwrap_or_default();
                if let (Value::Object(map), Some(stage)) = (&mut value, stage) {
                    let c = &stage.counters;
                    map.insert("rows_in".into(), StageMetrics::get(&c.rows_in).into());
                    map.insert("rows_out".into(), StageMetrics::get(&c.rows_out).into());
                    map.insert("state_keys".into(), totals.state_keys.into());
                    map.insert("state_bytes".into(), totals.state_bytes.into());
                    map.insert("malformed_rows".into(), totals.malformed_rows.into());
                    let rates = rate_of(&node.id).unwrap_or_default();
                    map.insert("rates".into(), json!(rates));
                }
                value
            })
            .collect();
        let edges: Vec<Value> = self
            .graph
            .edges
            .iter()
            .map(|edge| {
                // Rows flow over an edge at the rate its producer hands them on; the rejected
                // rows of a source are not counted apart.
                let rate = (!edge.bad_records)
                    .then(|| rate_of(&edge.from).map(|r| r.rows_out_per_second))
                    .flatten();
                json!({
                    "from": edge.from,
                    "to": edge.to,
                    "bad_records": edge.bad_records,
                    "rows_per_second": rate,
                })
            })
            .collect();
        json!({
            "pipeline": self.graph.pipeline,
            "trigger": self.graph.trigger,
            "uptime_seconds": self.started.elapsed().as_secs_f64(),
            "last_committed_epoch": live.last_epoch,
            "epochs_completed": live.epochs_completed,
            "bottleneck": live.bottleneck,
            "nodes": nodes,
            "edges": edges,
        })
    }

    /// The samples of the last minutes, for the dashboard's charts (`/api/samples`).
    pub fn samples_json(&self) -> Value {
        let live = self.live();
        json!({
            "stages": self.stage_names(),
            "every_ms": SAMPLE_EVERY.as_millis() as u64,
            "samples": live.samples,
        })
    }

    /// The last progress records, oldest first (`/api/progress`).
    pub fn progress_json(&self) -> Value {
        let live = self.live();
        Value::Array(
            live.records
                .iter()
                .map(|r| serde_json::to_value(r).unwrap_or(Value::Null))
                .collect(),
        )
    }

    /// The complete checkpoints kept, as `weir checkpoints` lists them (`/api/checkpoints`).
    /// Opens the store read-only, which is safe while the run writes it; call it off the
    /// stages' threads.
    pub fn checkpoints_json(&self) -> Value {
        let Some(path) = &self.checkpoint_path else {
            return json!({ "path": null, "checkpoints": [] });
        };
        let survey = CheckpointStore::open_read_only(path).and_then(|store| store.survey());
        match survey {
            Ok(survey) => {
                let list: Vec<Value> = survey
                    .into_iter()
                    .map(|(epoch, manifest)| match manifest {
                        Ok(manifest) => serde_json::to_value(manifest).unwrap_or(Value::Null),
                        Err(damage) => json!({ "epoch": epoch, "damaged": damage }),
                    })
                    .collect();
                json!({ "path": path.display().to_string(), "checkpoints": list })
            }
            Err(e) => json!({
                "path": path.display().to_string(),
                "checkpoints": [],
                "error": e.to_string(),
            }),
        }
    }

    /// The idle seconds of each stage: the time neither busy nor backpressured, never less
    /// than last reported.
    fn idle_seconds(&self, live: &mut Live) -> Vec<f64> {
        let uptime = self.started.elapsed().as_secs_f64();
        self.stages
            .iter()
            .zip(live.idle_reported.iter_mut())
            .map(|(s, reported)| {
                let busy = StageMetrics::get(&s.counters.busy_ns) as f64 / 1e9;
                let blocked = StageMetrics::get(&s.counters.backpressured_ns) as f64 / 1e9;
                *reported = reported.max(uptime - busy - blocked);
                *reported
            })
            .collect()
    }
}

/// OpenMetrics text turned into Prometheus' classic text format. OpenMetrics names a counter
/// family without its `_total` suffix and ends with `# EOF`; the classic format names the
/// family as its series are named, and has no end marker.
fn classic_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        let comment = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match comment {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}\n"));
            }
            None if line == "# EOF" || line.starts_with("# UNIT ") => {}
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

/// The shares and rates between two readings `elapsed` seconds apart.
fn rates_between(then: &Reading, now: &Reading, elapsed: f64) -> StageRates {
    if elapsed <= 0.0 {
        return StageRates::default();
    }
    let per_second = |a: u64, b: u64| (b.saturating_sub(a) as f64 / elapsed * 10.0).round() / 10.0;
    let share = |a: u64, b: u64| (b.saturating_sub(a) as f64 / 1e9 / elapsed).clamp(0.0, 1.0);
    let busy = share(then.busy_ns, now.busy_ns);
    let backpressured = share(then.backpressured_ns, now.backpressured_ns).min(1.0 - busy);
    StageRates {
        rows_in_per_second: per_second(then.rows_in, now.rows_in),
        rows_out_per_second: per_second(then.rows_out, now.rows_out),
        busy: round3(busy),
        backpressured: round3(backpressured),
        idle: round3((1.0 - busy - backpressured).max(0.0)),
    }
}

fn round3(share: f64) -> f64 {
    (share * 1000.0).round() / 1000.0
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Keeps `metrics` fed: a progress record for every committed epoch, and a sample of every
/// stage's counters each [`SAMPLE_EVERY`]. Runs on the current arbiter until the run's
/// progress channel closes.
pub(crate) fn feed(
    metrics: Arc<PipelineMetrics>,
    mut records: broadcast::Receiver<EpochProgress>,
) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                record = records.recv() => match record {
                    Ok(record) => metrics.record(&record),
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => metrics.sample(),
            }
        }
    })
}

/// The registry as a prometheus-client collector: values are read at every scrape.
#[derive(Debug)]
struct Exposition(Arc<PipelineMetrics>);

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let m = &self.0;
        let mut live = m.live();
        let idle = m.idle_seconds(&mut live);
        let e = &mut encoder;
        let counter = |v: u64| ConstCounter::new(v);
        let seconds = |ns: &std::sync::atomic::AtomicU64| {
            ConstCounter::new(StageMetrics::get(ns) as f64 / 1e9)
        };
        let get = StageMetrics::get;

        m.per_stage(
            e,
            "weir_stage_rows_in",
            "Rows received (for a source: rows read).",
            |_, s| counter(get(&s.counters.rows_in)),
        )?;
        m.per_stage(
            e,
            "weir_stage_rows_out",
            "Rows handed on (for a sink: rows written).",
            |_, s| counter(get(&s.counters.rows_out)),
        )?;
        m.per_stage(
            e,
            "weir_stage_batches_in",
            "Record batches received (for a source: read).",
            |_, s| counter(get(&s.counters.batches_in)),
        )?;
        m.per_stage(
            e,
            "weir_stage_batches_out",
            "Record batches handed on (for a sink: written).",
            |_, s| counter(get(&s.counters.batches_out)),
        )?;
        m.per_stage(
            e,
            "weir_stage_bytes_in",
            "Arrow memory of the batches received, in bytes.",
            |_, s| counter(get(&s.counters.bytes_in)),
        )?;
        m.per_stage(
            e,
            "weir_stage_bytes_out",
            "Arrow memory of the batches handed on, in bytes.",
            |_, s| counter(get(&s.counters.bytes_out)),
        )?;
        m.per_stage(
            e,
            "weir_stage_barriers",
            "Checkpoint barriers handled.",
            |_, s| counter(get(&s.counters.barriers)),
        )?;
        m.per_stage(
            e,
            "weir_stage_busy_seconds",
            "Time spent working: reading, processing, writing, committing.",
            |_, s| seconds(&s.counters.busy_ns),
        )?;
        m.per_stage(
            e,
            "weir_stage_backpressured_seconds",
            "Time spent waiting for downstream stages to take this stage's output.",
            |_, s| seconds(&s.counters.backpressured_ns),
        )?;
        m.per_stage(
            e,
            "weir_stage_idle_seconds",
            "Time neither busy nor backpressured: waiting for input.",
            |i, _| ConstCounter::new(idle.get(i).copied().unwrap_or(0.0)),
        )?;

        let rate = |i: usize| live.rate(i);
        m.per_stage(
            e,
            "weir_stage_busy_ratio",
            "Share of the last 5 s spent working.",
            |i, _| ConstGauge::new(rate(i).busy),
        )?;
        m.per_stage(
            e,
            "weir_stage_backpressured_ratio",
            "Share of the last 5 s spent waiting for downstream stages.",
            |i, _| ConstGauge::new(rate(i).backpressured),
        )?;
        m.per_stage(
            e,
            "weir_stage_idle_ratio",
            "Share of the last 5 s spent waiting for input.",
            |i, _| ConstGauge::new(rate(i).idle),
        )?;
        let bottleneck = live.bottleneck.as_ref().map(|b| b.stage.as_str());
        m.per_stage(e, "weir_stage_bottleneck", "1 for the stage holding the pipeline back (the busiest stage whose upstream is backpressured), else 0.", |_, s| ConstGauge::new(i64::from(bottleneck == Some(s.name.as_str()))))?;

        let totals = |s: &StageEntry| live.totals.get(&s.name).copied().unwrap_or_default();
        m.per_stage(
            e,
            "weir_stage_malformed_rows",
            "Malformed input rows met, as of the last committed epoch.",
            |_, s| counter(totals(s).malformed_rows),
        )?;
        m.per_stage(e, "weir_stage_rows_dropped_by_watermark", "Rows dropped because they arrived behind the watermark, as of the last committed epoch.", |_, s| counter(totals(s).rows_dropped_by_watermark))?;
        m.per_stage(
            e,
            "weir_stage_state_keys",
            "Keys in the stage's state after the last committed epoch.",
            |_, s| ConstGauge::new(totals(s).state_keys as i64),
        )?;
        m.per_stage(
            e,
            "weir_stage_state_bytes",
            "Approximate bytes of the stage's state after the last committed epoch.",
            |_, s| ConstGauge::new(totals(s).state_bytes as i64),
        )?;

        m.one(
            e,
            "weir_pipeline_epochs_completed",
            "Epochs committed.",
            &counter(live.epochs_completed),
        )?;
        m.one(
            e,
            "weir_pipeline_epochs_failed",
            "Epochs that failed, ending the run.",
            &counter(live.epochs_failed),
        )?;
        m.one(
            e,
            "weir_pipeline_input_rows",
            "Rows read by every source in committed epochs.",
            &counter(live.input_rows),
        )?;
        let since_commit = live
            .last_commit
            .map_or(m.started.elapsed(), |t| t.elapsed());
        m.one(
            e,
            "weir_pipeline_last_committed_epoch",
            "The last epoch committed in this run (0 before the first).",
            &ConstGauge::new(live.last_epoch.unwrap_or(0) as i64),
        )?;
        m.one(
            e,
            "weir_pipeline_files_pending",
            "Input files discovered and not read yet, after the last committed epoch.",
            &ConstGauge::new(live.files_pending as i64),
        )?;
        m.one(e, "weir_pipeline_end_to_end_lag_seconds", "From the start of the last committed epoch (when its first row could be read) to its commit: the longest a row of it waited to become visible.", &ConstGauge::new(live.lag_seconds))?;
        m.one(
            e,
            "weir_pipeline_seconds_since_last_commit",
            "Time since the last commit (since the start, before the first).",
            &ConstGauge::new(since_commit.as_secs_f64()),
        )?;
        m.one(
            e,
            "weir_pipeline_uptime_seconds",
            "Time since the pipeline started.",
            &ConstGauge::new(m.started.elapsed().as_secs_f64()),
        )?;
        let h = &m.histograms;
        m.one(
            e,
            "weir_pipeline_epoch_duration_seconds",
            "Epoch durations, from the start of reading to the end of the commit.",
            &h.epoch,
        )?;
        m.one(
            e,
            "weir_pipeline_checkpoint_duration_seconds",
            "Durations of the checkpoints' synced writes.",
            &h.checkpoint,
        )?;
        m.one(
            e,
            "weir_pipeline_checkpoint_size_bytes",
            "Bytes each checkpoint wrote.",
            &h.checkpoint_bytes,
        )?;
        m.one(
            e,
            "weir_pipeline_commit_duration_seconds",
            "Durations of the sinks' commits, after the checkpoint.",
            &h.commit,
        )?;
        Ok(())
    }
}

impl PipelineMetrics {
    /// One family with a series per stage, labelled `pipeline`, `stage` and `kind`.
    fn per_stage<M: EncodeMetric>(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        metric: impl Fn(usize, &StageEntry) -> M,
    ) -> Result<(), fmt::Error> {
        let metrics: Vec<M> = self
            .stages
            .iter()
            .enumerate()
            .map(|(i, s)| metric(i, s))
            .collect();
        let Some(kind) = metrics.first().map(EncodeMetric::metric_type) else {
            return Ok(());
        };
        let mut family = encoder.encode_descriptor(name, help, None, kind)?;
        for (stage, metric) in self.stages.iter().zip(&metrics) {
            metric.encode(family.encode_family(&stage_labels(&self.graph.pipeline, stage))?)?;
        }
        Ok(())
    }

    /// One family with the pipeline's one series, labelled `pipeline`.
    fn one(
        &self,
        encoder: &mut DescriptorEncoder<'_>,
        name: &str,
        help: &str,
        metric: &dyn EncodeMetric,
    ) -> Result<(), fmt::Error> {
        let mut family = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
        metric.encode(family.encode_family(&[("pipeline", self.graph.pipeline.as_str())])?)
    }
}

/// The labels of one stage's series.
fn stage_labels<'a>(pipeline: &'a str, stage: &'a StageEntry) -> [(&'static str, &'a str); 3] {
    [
        ("pipeline", pipeline),
        ("stage", stage.name.as_str()),
        ("kind", stage.kind),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counter_families_by_their_series() {
        let open = "# HELP a_rows Rows.\n# TYPE a_rows counter\na_rows_total{s=\"x\"} 3\n# HELP b Share.\n# TYPE b gauge\nb 0.5\n# EOF\n";
        assert_eq!(
            classic_text(open),
            "# HELP a_rows_total Rows.\n# TYPE a_rows_total counter\na_rows_total{s=\"x\"} 3\n# HELP b Share.\n# TYPE b gauge\nb 0.5\n"
        );
    }

    #[test]
    fn shares_add_up_to_one_and_busy_comes_first() {
        let then = Reading::default();
        let now = Reading {
            rows_in: 3_000,
            rows_out: 1_500,
            busy_ns: 1_500_000_000,
            backpressured_ns: 1_000_000_000,
        };
        let r = rates_between(&then, &now, 5.0);
        assert_eq!(
            (r.rows_in_per_second, r.rows_out_per_second),
            (600.0, 300.0)
        );
        assert_eq!((r.busy, r.backpressured, r.idle), (0.3, 0.2, 0.5));
        // Counters read a moment apart can overshoot the window: never more than all of it.
        let over = Reading {
            busy_ns: 4_000_000_000,
            backpressured_ns: 3_000_000_000,
            ..now
        };
        let r = rates_between(&then, &over, 5.0);
        assert_eq!((r.busy, r.backpressured, r.idle), (0.8, 0.2, 0.0));
        assert_eq!(rates_between(&then, &now, 0.0), StageRates::default());
    }
}
