//! Starting a validated pipeline as actors, and the handle the caller keeps.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::{broadcast, oneshot};
use weir_checkpoint::{
    CheckpointStore, Commit, Coordinator, EpochProgress, RequestStop, RunResult, SourceControl,
    StoreError, Wire,
};
use weir_core::{
    CheckpointFailure, Epoch, Error, Operator, OutputMode, Result, Sink, Source, EVENT_TIME_KEY,
};

use crate::actors::{
    CleanerActor, Edge, EventTimeTracker, OperatorActor, SinkActor, SourceActor, StageMetrics,
    MAILBOX_CAPACITY,
};
#[cfg(feature = "http")]
use crate::http::HttpServer;
use crate::metrics::{self, PipelineMetrics};
use crate::registry::SinkPlace;
use crate::spec::{PipelineSpec, Upstream, WatermarkSpec};

/// What resuming a pipeline from a checkpoint would do: [`PipelineSpec::resume_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResumePlan {
    /// The checkpoint a run would resume from; `None` when the folder has none yet (a run
    /// starts fresh, and any pipeline may).
    pub epoch: Option<u64>,
    /// Every difference between the pipeline and what wrote the checkpoint that matters to
    /// resuming. Changes to sink settings and to the trigger keep the state and are not
    /// recorded in a checkpoint, so they are not listed.
    pub changes: Vec<PlanChange>,
}

impl ResumePlan {
    /// Whether a run of the pipeline would resume from the checkpoint (rather than be
    /// refused).
    pub fn resumes(&self) -> bool {
        self.changes.iter().all(|c| c.keeps_state)
    }
}

/// One difference in a [`ResumePlan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChange {
    /// The stage it concerns (`operators.by_shop`).
    pub stage: String,
    /// Whether the checkpoint's state still serves: a sink added or removed keeps it; a
    /// source or operator added, removed or changed does not.
    pub keeps_state: bool,
    /// What changed and what it means.
    pub what: String,
}

/// A running pipeline. Dropping it does not stop the pipeline; [`PipelineHandle::wait`] does
/// once the run ends.
pub struct PipelineHandle {
    coordinator: Addr<Coordinator>,
    finished: oneshot::Receiver<RunResult>,
    /// The threads the pipeline created; empty when it runs on the caller's arbiters.
    arbiters: Vec<Arbiter>,
    metrics: Vec<(String, Arc<StageMetrics>)>,
    progress: broadcast::Sender<EpochProgress>,
    observed: Arc<PipelineMetrics>,
    #[cfg(feature = "http")]
    http: Option<HttpServer>,
}

/// Where stage actors run: threads of the pipeline's own, or arbiters the caller passed.
enum Threads {
    Own(Vec<Arbiter>),
    Given {
        handles: Vec<ArbiterHandle>,
        next: usize,
    },
}

impl Threads {
    /// The arbiter for the next actor: a new one, or the caller's in turn.
    fn next(&mut self) -> ArbiterHandle {
        match self {
            Threads::Own(arbiters) => {
                let arbiter = Arbiter::new();
                let handle = arbiter.handle();
                arbiters.push(arbiter);
                handle
            }
            Threads::Given { handles, next } => {
                let handle = handles[*next % handles.len()].clone();
                *next += 1;
                handle
            }
        }
    }
}

/// Asks a running pipeline to stop gracefully; cheap to clone, for signal handlers.
#[derive(Clone)]
pub struct Stopper(Addr<Coordinator>);

impl Stopper {
    /// Finish the current epoch, take a final checkpoint and commit, then end the run.
    pub fn stop(&self) {
        self.0.do_send(RequestStop);
    }
}

impl PipelineHandle {
    /// Finish the current epoch, take a final checkpoint and commit, then end the run.
    pub fn stop(&self) {
        self.coordinator.do_send(RequestStop);
    }

    /// A handle that can only stop the pipeline.
    pub fn stopper(&self) -> Stopper {
        Stopper(self.coordinator.clone())
    }

    /// A record for every committed epoch from now on. A receiver that falls more than 256
    /// records behind loses the oldest ones (`RecvError::Lagged`), never the pipeline's pace.
    pub fn progress(&self) -> broadcast::Receiver<EpochProgress> {
        self.progress.subscribe()
    }

    /// Sends every record from now on to `recipient`, an actor of the caller's, in order.
    /// Runs on the current actix arbiter; records the recipient cannot keep up with are
    /// skipped rather than slowing the pipeline. The returned task ends once the run has
    /// ended and the last record has been delivered.
    pub fn progress_to(
        &self,
        recipient: Recipient<EpochProgress>,
    ) -> actix_rt::task::JoinHandle<()> {
        let mut records = self.progress.subscribe();
        actix_rt::spawn(async move {
            loop {
                match records.recv().await {
                    Ok(record) => {
                        if recipient.send(record).await.is_err() {
                            // The caller's actor stopped: nobody to tell any more.
                            return;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "progress records skipped for a slow recipient");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    /// Every stage's counters, named as in the pipeline file (`sources.sales`).
    pub fn metrics(&self) -> &[(String, Arc<StageMetrics>)] {
        &self.metrics
    }

    /// The pipeline's metrics registry: what `/metrics` and the dashboard show, for an
    /// application that serves or logs them its own way.
    pub fn pipeline_metrics(&self) -> Arc<PipelineMetrics> {
        self.observed.clone()
    }

    /// Where the HTTP server listens, when `http.bind` is set (with the port the system
    /// chose, for port 0).
    pub fn http_address(&self) -> Option<std::net::SocketAddr> {
        #[cfg(feature = "http")]
        return self.http.as_ref().map(HttpServer::address);
        #[cfg(not(feature = "http"))]
        None
    }

    /// Waits for the run to end: the last committed epoch, or the first failure. Stops the
    /// pipeline's arbiters either way.
    pub async fn wait(self) -> RunResult {
        let result = match self.finished.await {
            Ok(result) => result,
            Err(_) => Err(Error::Internal(
                "the coordinator stopped without a result".into(),
            )),
        };
        self.observed.ended(&result);
        // The server stops as it is dropped.
        #[cfg(feature = "http")]
        drop(self.http);
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        // The coordinator closed the RocksDB store before it answered. Its thread is joined
        // as well, so that nothing of the run is left on it when the caller exits. The stage
        // threads are not joined: a stage stuck in a blocking call (the reason a checkpoint
        // timed out, say) must not hang the caller.
        let mut arbiters = self.arbiters;
        if arbiters.is_empty() {
            return result;
        }
        let coordinator_thread = arbiters.remove(0);
        drop(arbiters);
        let joined = tokio::task::spawn_blocking(move || coordinator_thread.join().is_ok()).await;
        match (result, joined) {
            (Ok(_), Ok(false)) | (Ok(_), Err(_)) => Err(Error::Internal(
                "the coordinator's thread panicked while stopping".into(),
            )),
            (result, _) => result,
        }
    }
}

impl PipelineSpec {
    /// Starts the pipeline inside the running actix `System`: one arbiter (thread) per stage
    /// and one for the coordinator. Fails, with nothing started, if a component cannot be
    /// built (an output folder that cannot be created, say).
    pub fn start(&self) -> Result<PipelineHandle> {
        self.start_with(Threads::Own(Vec::new()))
    }

    /// Starts the pipeline on the caller's arbiters: the coordinator on the first, then each
    /// stage on the next in turn. Stages read and write files synchronously on their arbiter,
    /// so give them arbiters that nothing latency-sensitive shares; and an actor that
    /// receives a `channel` sink's output must not share an arbiter with that sink.
    /// [`PipelineHandle::wait`] leaves these arbiters running.
    pub fn start_on(&self, arbiters: &[ArbiterHandle]) -> Result<PipelineHandle> {
        if arbiters.is_empty() {
            return Err(Error::Internal(
                "start_on needs at least one arbiter".into(),
            ));
        }
        self.start_with(Threads::Given {
            handles: arbiters.to_vec(),
            next: 0,
        })
    }

    fn start_with(&self, mut threads: Threads) -> Result<PipelineHandle> {
        let mut sources = self
            .sources
            .iter()
            .map(|s| s.spec.build())
            .collect::<Result<Vec<_>>>()?;
        let mut operators = self
            .operators
            .iter()
            .map(|o| o.spec.build())
            .collect::<Result<Vec<_>>>()?;
        let place = self.sink_place();
        let mut sinks = self
            .sinks
            .iter()
            .map(|s| s.spec.build_in(&place))
            .collect::<Result<Vec<_>>>()?;
        // Every stage's counters exist before its actor, so that the registry (and the HTTP
        // server, which may refuse its address) comes before anything runs.
        let graph = self.graph();
        let metrics: Vec<(String, Arc<StageMetrics>)> = graph
            .nodes
            .iter()
            .map(|node| (node.id.clone(), Arc::new(StageMetrics::default())))
            .collect();
        let observed = Arc::new(PipelineMetrics::new(
            graph.clone(),
            self.checkpoint.path.clone(),
            &metrics,
        ));
        #[cfg(feature = "http")]
        let http = self
            .http
            .bind
            .map(|bind| HttpServer::start(bind, observed.clone()))
            .transpose()?;
        let open = match self.checkpoint.fall_back {
            true => CheckpointStore::open_falling_back,
            false => CheckpointStore::open,
        };
        let store = match &self.checkpoint.path {
            Some(path) => Some(Arc::new(
                open(path, self.checkpoint.retain).map_err(store_error)?,
            )),
            None => None,
        };
        let mut event_times = BTreeMap::new();
        let resumed = self.recover(
            store.as_deref(),
            &mut sources,
            &mut operators,
            &mut sinks,
            &mut event_times,
        )?;
        let first_epoch = resumed.map_or(Epoch(1), Epoch::next);

        let (progress, _) = broadcast::channel(256);
        let (coordinator, finished) = Coordinator::new(
            self.trigger,
            store,
            first_epoch,
            self.checkpoint.timeout,
            progress.clone(),
        );
        let coordinator = Coordinator::start_in_arbiter(&threads.next(), |_| coordinator);
        let new_metrics = |name: String| {
            metrics
                .iter()
                .find(|(n, _)| *n == name)
                .map_or_else(Arc::default, |(_, m)| m.clone())
        };

        let mut sink_addrs = Vec::new();
        for (node, sink) in self.sinks.iter().zip(sinks) {
            let actor = SinkActor::new(
                node.name.clone(),
                sink,
                node.inputs.len(),
                coordinator.clone(),
                new_metrics(format!("sinks.{}", node.name)),
            );
            sink_addrs.push(SinkActor::start_in_arbiter(&threads.next(), move |ctx| {
                ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
                actor
            }));
        }

        // Consumers start before their producers, so that every edge has an address.
        let mut operator_addrs: Vec<Option<Addr<OperatorActor>>> = vec![None; self.operators.len()];
        let mut built: Vec<Option<Box<dyn weir_core::Operator>>> =
            operators.into_iter().map(Some).collect();
        for &index in self.operator_order.iter().rev() {
            let node = &self.operators[index];
            let outputs =
                self.consumers(Upstream::Operator(index), &operator_addrs, &sink_addrs)?;
            let operator = built[index]
                .take()
                .ok_or_else(|| Error::Internal(format!("operator {} built twice", node.name)))?;
            let stage = format!("operators.{}", node.name);
            let tracker = tracker(node.watermark.as_ref(), &stage, &event_times)?;
            let watermarked = node
                .inputs
                .iter()
                .map(|&up| self.carries_watermark(up))
                .collect();
            let actor = OperatorActor::new(
                node.name.clone(),
                operator,
                watermarked,
                outputs,
                coordinator.clone(),
                new_metrics(stage),
                tracker,
            );
            operator_addrs[index] = Some(OperatorActor::start_in_arbiter(
                &threads.next(),
                move |ctx| {
                    ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
                    actor
                },
            ));
        }

        let mut controls = Vec::new();
        // Cleaners commit after every sink: see `actors/clean.rs`.
        let mut cleaners = Vec::new();
        for (index, (node, mut source)) in self.sources.iter().zip(sources).enumerate() {
            if let Some(cleaner) = source.input_cleaner() {
                let actor = CleanerActor::new(cleaner);
                cleaners.push(CleanerActor::start_in_arbiter(&threads.next(), |_| actor));
            }
            let edges = |upstream| -> Result<Vec<Edge>> {
                Ok(self
                    .consumers(upstream, &operator_addrs, &sink_addrs)?
                    .into_iter()
                    .map(|(edge, _)| edge)
                    .collect())
            };
            let stage = format!("sources.{}", node.name);
            let tracker = tracker(node.watermark.as_ref(), &stage, &event_times)?;
            let actor = SourceActor::new(
                node.name.clone(),
                index,
                source,
                edges(Upstream::Source(index))?,
                edges(Upstream::BadRecords(index))?,
                coordinator.clone(),
                new_metrics(stage),
            )
            .with_watermark(tracker);
            let addr = SourceActor::start_in_arbiter(&threads.next(), move |ctx| {
                ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
                actor
            });
            controls.push(SourceControl {
                name: format!("sources.{}", node.name),
                start: addr.clone().recipient(),
                inject: addr.clone().recipient(),
                run: addr.recipient(),
            });
        }

        coordinator.do_send(Wire {
            sources: controls,
            sinks: sink_addrs
                .iter()
                .map(|a| a.clone().recipient::<Commit>())
                .chain(cleaners.iter().map(|c| c.clone().recipient::<Commit>()))
                .collect(),
            ackers: self
                .operators
                .iter()
                .map(|o| format!("operators.{}", o.name))
                .chain(self.sinks.iter().map(|s| format!("sinks.{}", s.name)))
                .collect(),
            upstreams: graph
                .nodes
                .iter()
                .map(|node| {
                    let inputs = graph
                        .edges
                        .iter()
                        .filter(|e| e.to == node.id)
                        .map(|e| e.from.clone());
                    (node.id.clone(), inputs.collect())
                })
                .collect(),
        });
        metrics::feed(observed.clone(), progress.subscribe());
        let arbiters = match threads {
            Threads::Own(arbiters) => arbiters,
            Threads::Given { .. } => Vec::new(),
        };
        Ok(PipelineHandle {
            coordinator,
            finished,
            arbiters,
            metrics,
            progress,
            observed,
            #[cfg(feature = "http")]
            http,
        })
    }

    /// Whether a watermark flows out of `upstream`: a stage that computes one, or reads one.
    fn carries_watermark(&self, upstream: Upstream) -> bool {
        match upstream {
            Upstream::Source(i) => self.sources.get(i).is_some_and(|s| s.watermark.is_some()),
            Upstream::Operator(i) => self.operators.get(i).is_some_and(|o| {
                o.watermark.is_some() || o.inputs.iter().any(|&up| self.carries_watermark(up))
            }),
            Upstream::BadRecords(_) => false,
        }
    }

    /// Brings every stage to the last complete checkpoint, if there is one, and returns its
    /// epoch. A checkpoint written by a different pipeline is refused. The event-time
    /// positions of stages that compute watermarks go to `event_times`, by stage name.
    fn recover(
        &self,
        store: Option<&CheckpointStore>,
        sources: &mut [Box<dyn Source>],
        operators: &mut [Box<dyn Operator>],
        sinks: &mut [Box<dyn Sink>],
        event_times: &mut BTreeMap<String, Vec<u8>>,
    ) -> Result<Option<Epoch>> {
        let latest = match store {
            Some(store) => store
                .recovery_point(self.checkpoint.fall_back)
                .map_err(store_error)?,
            None => None,
        };
        let (Some(store), Some(manifest)) = (store, latest) else {
            if let Some(store) = store {
                store
                    .set_fingerprint(&self.fingerprint())
                    .map_err(store_error)?;
            }
            for sink in sinks.iter_mut() {
                sink.start(None)?;
            }
            return Ok(None);
        };
        if let Some(old) = store.fingerprint().map_err(store_error)? {
            self.check_fingerprint(&old, store)?;
        }
        let mut manifest = manifest;
        loop {
            let epoch = Epoch(manifest.epoch);
            let lost = match self.resume_at(store, epoch, sources, operators, sinks, event_times) {
                Err(Error::Checkpoint {
                    kind: CheckpointFailure::LostOutput,
                    message,
                }) if self.checkpoint.fall_back => message,
                resumed => return resumed.map(|()| Some(epoch)),
            };
            // A sink lost an epoch's output to a power loss: read that epoch again from the
            // checkpoint before it, with every component fresh.
            tracing::warn!(%epoch, "{lost}");
            let Some(earlier) = store.fall_back_before(epoch.0).map_err(store_error)? else {
                return Err(Error::checkpoint(
                    CheckpointFailure::LostOutput,
                    format!("{lost}; no earlier checkpoint is left to read it again from"),
                ));
            };
            manifest = earlier;
            let place = self.sink_place();
            for (node, source) in self.sources.iter().zip(sources.iter_mut()) {
                *source = node.spec.build()?;
            }
            for (node, operator) in self.operators.iter().zip(operators.iter_mut()) {
                *operator = node.spec.build()?;
            }
            for (node, sink) in self.sinks.iter().zip(sinks.iter_mut()) {
                *sink = node.spec.build_in(&place)?;
            }
            event_times.clear();
        }
    }

    /// Where the sinks run: beside this pipeline's checkpoint, if it has one.
    fn sink_place(&self) -> SinkPlace {
        SinkPlace {
            checkpoint: self.checkpoint.path.clone(),
        }
    }

    /// Restores every stage from the checkpoint of `epoch` and lets each sink commit what it
    /// left pending.
    fn resume_at(
        &self,
        store: &CheckpointStore,
        epoch: Epoch,
        sources: &mut [Box<dyn Source>],
        operators: &mut [Box<dyn Operator>],
        sinks: &mut [Box<dyn Sink>],
        event_times: &mut BTreeMap<String, Vec<u8>>,
    ) -> Result<()> {
        let started = std::time::Instant::now();
        // The stage actor keeps its watermark's position; the component gets the rest.
        let mut load = |stage: String| {
            let mut entries = store.load(&stage, epoch).map_err(store_error)?;
            if let Some(at) = entries.iter().position(|(k, _)| k == EVENT_TIME_KEY) {
                event_times.insert(stage, entries.remove(at).1);
            }
            Ok::<_, Error>(entries)
        };
        for (node, source) in self.sources.iter().zip(sources.iter_mut()) {
            source.restore(load(format!("sources.{}", node.name))?)?;
        }
        for (node, operator) in self.operators.iter().zip(operators.iter_mut()) {
            operator.restore(load(format!("operators.{}", node.name))?)?;
        }
        for (node, sink) in self.sinks.iter().zip(sinks.iter_mut()) {
            sink.start(Some((epoch, load(format!("sinks.{}", node.name))?)))?;
        }
        let took_ms = started.elapsed().as_secs_f64() * 1e3;
        tracing::info!(%epoch, path = %store.path().display(), took_ms, "resuming from checkpoint");
        Ok(())
    }

    /// What each source and operator reads and computes: a checkpoint's state only makes
    /// sense for the same ones. Sinks may change freely.
    fn fingerprint(&self) -> BTreeMap<String, String> {
        let columns = |schema: &arrow_schema::SchemaRef| {
            let fields: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), f.data_type()))
                .collect();
            fields.join(", ")
        };
        let mut out = BTreeMap::new();
        for s in &self.sources {
            let text = format!(
                "{} {} [{}]",
                s.type_name,
                s.spec.describe(),
                columns(&s.spec.schema())
            );
            out.insert(format!("sources.{}", s.name), text);
        }
        for o in &self.operators {
            let inputs: Vec<String> = o
                .inputs
                .iter()
                .map(|up| match up {
                    Upstream::Source(i) => self.sources[*i].name.clone(),
                    Upstream::Operator(i) => self.operators[*i].name.clone(),
                    Upstream::BadRecords(i) => format!("{}.bad_records", self.sources[*i].name),
                })
                .collect();
            let text = format!(
                "{} reading {} {} [{}]",
                o.type_name,
                inputs.join(", "),
                o.spec.describe(),
                columns(&o.spec.output_schema())
            );
            out.insert(format!("operators.{}", o.name), text);
        }
        out
    }

    fn check_fingerprint(
        &self,
        old: &BTreeMap<String, String>,
        store: &CheckpointStore,
    ) -> Result<()> {
        let refused: Vec<String> = self
            .fingerprint_changes(old)
            .into_iter()
            .filter(|c| !c.keeps_state)
            .map(|c| c.what)
            .collect();
        if refused.is_empty() {
            return Ok(());
        }
        Err(Error::DifferentPipeline(format!(
            "checkpoint.path: the checkpoint in {} was written by a different pipeline: {}. Sinks and the trigger may change; sources and operators may not. Use a new checkpoint.path to start over",
            store.path().display(),
            refused.join("; ")
        )))
    }

    /// The sources and operators that differ from `old`, the fingerprint a checkpoint was
    /// written with: each would make the checkpoint's state wrong for this pipeline.
    fn fingerprint_changes(&self, old: &BTreeMap<String, String>) -> Vec<PlanChange> {
        let new = self.fingerprint();
        let mut changes = Vec::new();
        let refused = |stage: &str, what: String| PlanChange {
            stage: stage.to_string(),
            keeps_state: false,
            what,
        };
        for (stage, before) in old {
            match new.get(stage) {
                None => changes.push(refused(
                    stage,
                    format!("{stage} was removed (it was: {before})"),
                )),
                Some(now) if now != before => changes.push(refused(
                    stage,
                    format!("{stage} changed from \"{before}\" to \"{now}\""),
                )),
                Some(_) => {}
            }
        }
        for stage in new.keys().filter(|s| !old.contains_key(*s)) {
            changes.push(refused(
                stage,
                format!("{stage} is new, and its state would miss what was already read"),
            ));
        }
        changes
    }

    /// Whether this pipeline, perhaps edited, can resume from the checkpoint in `store`,
    /// change by change: `weir validate --checkpoint`. Reads the store only.
    pub fn resume_plan(&self, store: &CheckpointStore) -> Result<ResumePlan> {
        let latest = store.latest().map_err(store_error)?;
        let Some(manifest) = latest else {
            return Ok(ResumePlan {
                epoch: None,
                changes: Vec::new(),
            });
        };
        let mut changes = match store.fingerprint().map_err(store_error)? {
            Some(old) => self.fingerprint_changes(&old),
            None => Vec::new(),
        };
        // Sinks are not in the fingerprint: the checkpoint's manifest names those it had.
        let sinks: Vec<String> = self
            .sinks
            .iter()
            .map(|s| format!("sinks.{}", s.name))
            .collect();
        for stage in manifest.stages.keys().filter(|s| s.starts_with("sinks.")) {
            if !sinks.contains(stage) {
                changes.push(PlanChange {
                    stage: stage.clone(),
                    keeps_state: true,
                    what: format!("{stage} was removed: what it committed stays, and files it had pending for epochs after {} are never committed", manifest.epoch),
                });
            }
        }
        for stage in sinks.iter().filter(|s| !manifest.stages.contains_key(*s)) {
            changes.push(PlanChange {
                stage: stage.clone(),
                keeps_state: true,
                what: format!("{stage} is new: it gets the rows of the epochs after {}, not those already read", manifest.epoch),
            });
        }
        Ok(ResumePlan {
            epoch: Some(manifest.epoch),
            changes,
        })
    }
    /// The edges out of `upstream`, each with the output mode its consumer needs.
    fn consumers(
        &self,
        upstream: Upstream,
        operators: &[Option<Addr<OperatorActor>>],
        sinks: &[Addr<SinkActor>],
    ) -> Result<Vec<(Edge, OutputMode)>> {
        let mut edges = Vec::new();
        for (j, node) in self.operators.iter().enumerate() {
            for (port, _) in node
                .inputs
                .iter()
                .enumerate()
                .filter(|(_, up)| **up == upstream)
            {
                let addr = operators[j].clone().ok_or_else(|| {
                    Error::Internal(format!("operator {} started after its input", node.name))
                })?;
                let edge = Edge {
                    recipient: addr.recipient(),
                    port,
                };
                edges.push((edge, self.mode_below(Upstream::Operator(j))));
            }
        }
        for (k, node) in self.sinks.iter().enumerate() {
            for (port, _) in node
                .inputs
                .iter()
                .enumerate()
                .filter(|(_, up)| **up == upstream)
            {
                let edge = Edge {
                    recipient: sinks[k].clone().recipient(),
                    port,
                };
                edges.push((edge, node.mode));
            }
        }
        Ok(edges)
    }

    /// The output mode of the first sink fed, directly or not, by `upstream`.
    fn mode_below(&self, upstream: Upstream) -> OutputMode {
        if let Some(sink) = self.sinks.iter().find(|s| s.inputs.contains(&upstream)) {
            return sink.mode;
        }
        self.operators
            .iter()
            .enumerate()
            .find(|(_, o)| o.inputs.contains(&upstream))
            .map_or(OutputMode::Append, |(j, _)| {
                self.mode_below(Upstream::Operator(j))
            })
    }
}

fn store_error(e: StoreError) -> Error {
    let kind = match &e {
        StoreError::Locked { .. } => CheckpointFailure::Locked,
        StoreError::Damaged { .. } => CheckpointFailure::Damaged,
        StoreError::Incompatible { .. } => CheckpointFailure::Incompatible,
        _ => CheckpointFailure::Store,
    };
    Error::checkpoint(kind, e.to_string())
}

/// The event-time tracker of a stage that computes a watermark, resumed where the
/// checkpoint's `event_times` say it had got.
fn tracker(
    watermark: Option<&WatermarkSpec>,
    stage: &str,
    event_times: &BTreeMap<String, Vec<u8>>,
) -> Result<Option<EventTimeTracker>> {
    watermark
        .map(|w| EventTimeTracker::new(w, event_times.get(stage).map(Vec::as_slice)))
        .transpose()
}
