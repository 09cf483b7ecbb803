use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix::prelude::*;
use futures::future::join_all;
use tokio::sync::{broadcast, oneshot};
use weir_core::{failure_point, Barrier, BarrierKind, Epoch, Error, StageSnapshot};

use crate::messages::{
    Ack, Admission, Admit, BarrierEmitted, Commit, InjectBarrier, InputDrained, RequestStop,
    RunContinuous, StageFailed, StartEpoch, Trigger, Wire,
};
use crate::progress::{
    find_bottleneck, millis, rate, utc_timestamp, EventTimeProgress, EventTimeStats, StageLoad,
};
use crate::store::CheckpointStore;
use crate::{EpochProgress, PhaseDurations, StageProgress, StageStats};

/// After a stage fails, how long the epochs before the failure have to finish.
const DRAIN_GRACE: Duration = Duration::from_secs(10);

/// How a run ended: `Ok` with the last committed epoch, or the first stage failure.
pub type RunResult = Result<Epoch, Error>;

struct InFlight {
    kind: BarrierKind,
    acks: usize,
    emitted: usize,
    admitted: Option<usize>,
    /// When the epoch's reading began: its admission round, or the previous barrier under
    /// the continuous trigger.
    started: Instant,
    /// When its barrier was injected.
    injected: Instant,
    /// Every answer so far: the stage, its snapshot for the checkpoint ...
    snapshots: Vec<(String, StageSnapshot)>,
    /// ... and, at the same index, what it did in the epoch, for the progress record.
    stats: Vec<StageStats>,
}

/// Owns epochs: starts them as the trigger says, injects barriers, collects acks, commits.
pub struct Coordinator {
    trigger: Trigger,
    store: Option<Arc<CheckpointStore>>,
    timeout: Duration,
    wire: Option<Wire>,
    next_epoch: Epoch,
    in_flight: BTreeMap<Epoch, InFlight>,
    /// A `StartEpoch` round is under way.
    planning: bool,
    /// A processing-time tick came while an epoch was still running.
    tick_due: bool,
    /// When the barrier of the latest epoch a source read rows in was injected: under the
    /// continuous trigger, input after an interval without any is checkpointed at once.
    rows_barrier_at: Option<Instant>,
    /// A source said it had read all there is while an epoch was in flight: once that
    /// epoch's acks are in, the early barrier may go.
    drained_waiting: bool,
    stopping: bool,
    final_injected: bool,
    /// available_now lists the input once, at the first epoch of this run.
    listed: bool,
    done: Option<oneshot::Sender<RunResult>>,
    progress: broadcast::Sender<EpochProgress>,
    /// When the next epoch's reading began (see [`InFlight::started`]).
    next_start: Instant,
    /// When the last committed epoch's reading began, for the input rate.
    previous_start: Option<Instant>,
    /// The first stage failure. No epoch starts after it; the epochs every failed stage
    /// had already answered for are finished (checkpointed and committed) first, so that
    /// the work before the failure is kept: a failfast run keeps the files before the bad
    /// one.
    failure: Option<Error>,
    /// Epochs whose commits are under way (they have left `in_flight`).
    committing: usize,
    /// Signalled when the latest epoch's commits are done: the next epoch's wait for it, so
    /// that every sink sees its epochs' commits in order and the last one last.
    commits_done: Option<oneshot::Receiver<()>>,
}

impl Coordinator {
    /// A coordinator for `trigger`, whose first epoch is `first_epoch` (1, or one past the
    /// checkpoint a run resumes from). With a `store`, every epoch is checkpointed into it
    /// before its output is committed. An epoch not complete within `timeout` of its barrier
    /// ends the run with an error naming the stages that did not answer. The returned receiver resolves when the run ends;
    /// progress records go to `progress`.
    pub fn new(
        trigger: Trigger,
        store: Option<Arc<CheckpointStore>>,
        first_epoch: Epoch,
        timeout: Duration,
        progress: broadcast::Sender<EpochProgress>,
    ) -> (Self, oneshot::Receiver<RunResult>) {
        let (done, finished) = oneshot::channel();
        let coordinator = Coordinator {
            trigger,
            store,
            timeout,
            wire: None,
            next_epoch: first_epoch,
            in_flight: BTreeMap::new(),
            planning: false,
            tick_due: false,
            rows_barrier_at: None,
            drained_waiting: false,
            stopping: false,
            final_injected: false,
            listed: false,
            done: Some(done),
            progress,
            next_start: Instant::now(),
            previous_start: None,
            failure: None,
            committing: 0,
            commits_done: None,
        };
        (coordinator, finished)
    }

    fn finish(&mut self, result: RunResult, ctx: &mut Context<Self>) {
        // Close RocksDB before anyone hears the run is over: a process that exits while
        // RocksDB is open on another thread dies in its static destructors ("pthread lock:
        // Invalid argument"), and an embedding caller may reopen the folder at once.
        self.store = None;
        if let Some(done) = self.done.take() {
            if let Err(e) = &result {
                // The caller gets the error from the run's result (weir run prints it);
                // logging it as an error too would say it twice.
                tracing::debug!(error = %e, "pipeline failed");
            }
            // The receiver may be gone if the caller stopped waiting; nothing else to tell.
            let _ = done.send(result);
        }
        ctx.stop();
    }

    fn sources(&self) -> usize {
        self.wire.as_ref().map_or(0, |w| w.sources.len())
    }

    /// Plans the next epoch of a triggered run: every source discovers and admits input, then
    /// the barrier goes in behind that input.
    fn start_epoch(&mut self, ctx: &mut Context<Self>) {
        let Some(wire) = &self.wire else { return };
        if self.planning || self.final_injected {
            return;
        }
        if let Trigger::Continuous { .. } = self.trigger {
            if self.stopping {
                self.inject(BarrierKind::Final, false, None, ctx);
            }
            return;
        }
        let epoch = self.next_epoch;
        let first = !self.listed;
        let (discover, admit) = match (self.stopping, self.trigger) {
            (true, _) => (false, Admit::Nothing),
            (false, Trigger::Once) => (true, Admit::All),
            // Everything available *at start*: list once, then work through that backlog.
            (false, Trigger::AvailableNow) => (first, Admit::Limited),
            (false, _) => (true, Admit::Limited),
        };
        let requests: Vec<_> = wire
            .sources
            .iter()
            .map(|s| {
                s.start.send(StartEpoch {
                    epoch,
                    discover,
                    admit,
                    bounded_start: first
                        && matches!(self.trigger, Trigger::Once | Trigger::AvailableNow),
                })
            })
            .collect();
        let names: Vec<String> = wire.sources.iter().map(|s| s.name.clone()).collect();
        self.planning = true;
        self.listed = true;
        self.next_start = Instant::now();
        ctx.wait(
            join_all(requests)
                .into_actor(self)
                .map(move |replies, act, ctx| {
                    act.planning = false;
                    let mut total = Admission::default();
                    for (reply, name) in replies.into_iter().zip(&names) {
                        match reply {
                            Ok(Ok(a)) => {
                                total.admitted += a.admitted;
                                total.backlog += a.backlog;
                            }
                            Ok(Err(error)) => {
                                return act.finish(Err(stage_error(name, error)), ctx)
                            }
                            Err(e) => {
                                return act.finish(
                                    Err(Error::Stopped(format!("a source stopped: {e}"))),
                                    ctx,
                                )
                            }
                        }
                    }
                    let kind = match act.trigger {
                        _ if act.stopping => BarrierKind::Final,
                        Trigger::Once => BarrierKind::Final,
                        Trigger::AvailableNow if total.backlog == 0 => BarrierKind::Final,
                        _ => BarrierKind::Checkpoint,
                    };
                    if kind == BarrierKind::Checkpoint && total.admitted == 0 {
                        // Nothing new: like Spark, a processing-time trigger runs no empty epoch.
                        return;
                    }
                    act.inject(kind, true, Some(total.admitted), ctx);
                }),
        );
    }

    fn inject(
        &mut self,
        kind: BarrierKind,
        drain: bool,
        admitted: Option<usize>,
        ctx: &mut Context<Self>,
    ) {
        let Some(wire) = &self.wire else { return };
        if self.failure.is_some() {
            return;
        }
        let epoch = self.next_epoch;
        self.next_epoch = epoch.next();
        self.final_injected = kind == BarrierKind::Final;
        self.drained_waiting = false;
        let barrier = Barrier { epoch, kind };
        tracing::debug!(%epoch, ?kind, "injecting barrier");
        for source in &wire.sources {
            source.inject.do_send(InjectBarrier { barrier, drain });
        }
        self.in_flight.insert(
            epoch,
            InFlight {
                kind,
                acks: 0,
                emitted: 0,
                admitted,
                started: self.next_start,
                injected: Instant::now(),
                snapshots: Vec::new(),
                stats: Vec::new(),
            },
        );
        // Under the continuous trigger the next epoch's rows are read from now on.
        self.next_start = Instant::now();
        ctx.run_later(self.timeout, move |act, ctx| act.check_timeout(epoch, ctx));
    }

    fn check_timeout(&mut self, epoch: Epoch, ctx: &mut Context<Self>) {
        let (Some(state), Some(wire)) = (self.in_flight.get(&epoch), &self.wire) else {
            return;
        };
        let answered: Vec<&str> = state
            .snapshots
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        let silent: Vec<&str> = wire
            .sources
            .iter()
            .map(|s| s.name.as_str())
            .chain(wire.ackers.iter().map(String::as_str))
            .filter(|name| !answered.contains(name))
            .collect();
        let message = format!(
            "checkpoint {epoch} timed out after {:?} (checkpoint.timeout): no answer from {}",
            self.timeout,
            silent.join(", ")
        );
        let error = self.failure.take().unwrap_or(Error::Stopped(message));
        self.finish(Err(error), ctx);
    }

    /// Completes `epoch` once every source has emitted its barrier and every stage has acked.
    fn try_complete(&mut self, epoch: Epoch, ctx: &mut Context<Self>) {
        let (sources, ackers) = self
            .wire
            .as_ref()
            .map_or((0, 0), |w| (w.sources.len(), w.ackers.len()));
        let ready = self
            .in_flight
            .get(&epoch)
            .is_some_and(|s| s.emitted >= sources && s.acks >= ackers);
        if ready {
            self.complete(epoch, ctx);
        }
    }

    fn complete(&mut self, epoch: Epoch, ctx: &mut Context<Self>) {
        let Some(state) = self.in_flight.remove(&epoch) else {
            return;
        };
        if std::mem::take(&mut self.drained_waiting) {
            self.early_barrier(ctx);
        }
        let Some(wire) = &self.wire else { return };
        let last = state.kind == BarrierKind::Final;
        failure_point("after-acks-before-manifest");
        // The checkpoint is complete when this write returns, and not before: only then may
        // any of the epoch's output become visible.
        let checkpoint = match &self.store {
            Some(store) => match store.write_checkpoint(epoch, &state.snapshots) {
                Ok(m) => Some((m.bytes_written, Duration::from_micros(m.write_micros))),
                Err(e) => {
                    let error = Error::Stopped(format!("cannot write checkpoint {epoch}: {e}"));
                    return self.finish(Err(error), ctx);
                }
            },
            None => None,
        };
        failure_point("after-manifest-before-commit");
        let sinks = wire.sinks.clone();
        self.committing += 1;
        let committing = Instant::now();
        let previous = self.commits_done.take();
        let (done, done_rx) = oneshot::channel();
        self.commits_done = Some(done_rx);
        let commits = async move {
            // The epoch before commits first: otherwise a sink could take the last epoch's
            // commit, close, and refuse the earlier one still on its way.
            if let Some(previous) = previous {
                // Dropped unsignalled when that epoch failed; the run is ending either way.
                let _ = previous.await;
            }
            let _done = done;
            // One sink after another: a crash between two leaves some committed and some
            // pending, which recovery finishes.
            for (i, sink) in sinks.iter().enumerate() {
                if i > 0 {
                    failure_point("mid-commit");
                }
                match sink.send(Commit { epoch, last }).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => return Err(error),
                    Err(e) => return Err(Error::Stopped(format!("a sink stopped: {e}"))),
                }
            }
            Ok(())
        };
        ctx.spawn(commits.into_actor(self).map(move |result, act, ctx| {
            act.committing -= 1;
            if let Err(error) = result {
                let error = act.failure.take().unwrap_or(error);
                return act.finish(Err(error), ctx);
            }
            let record = act.record(epoch, &state, checkpoint, committing.elapsed());
            // Nobody listening is fine: progress is for whoever subscribes.
            let _ = act.progress.send(record);
            if act.failure.is_some() {
                return act.finish_failed_when_drained(ctx);
            }
            if last {
                return act.finish(Ok(epoch), ctx);
            }
            let idle = act.in_flight.is_empty() && !act.planning;
            if act.stopping && idle {
                act.start_epoch(ctx);
            } else if act.tick_due && idle {
                act.tick_due = false;
                act.start_epoch(ctx);
            }
        }));
    }
}

impl Coordinator {
    /// The progress record of `epoch`, which has just committed.
    fn record(
        &mut self,
        epoch: Epoch,
        state: &InFlight,
        checkpoint: Option<(u64, Duration)>,
        commit: Duration,
    ) -> EpochProgress {
        let total = state.started.elapsed();
        let since_previous = self
            .previous_start
            .map_or(total, |p| state.started.saturating_duration_since(p));
        self.previous_start = Some(state.started);
        // [read, process, write], summed over the stages of each kind.
        let mut busy = [Duration::ZERO; 3];
        let mut input_rows = 0;
        let mut event_time: Option<EventTimeStats> = None;
        let mut watermark: Option<i64> = None;
        let mut stages: Vec<StageProgress> = state
            .snapshots
            .iter()
            .zip(&state.stats)
            .map(|((name, snapshot), stats)| {
                let kind = stage_kind(name);
                if kind == 0 {
                    input_rows += stats.rows_in;
                }
                busy[kind] += stats.busy;
                if let Some(seen) = stats.event_time {
                    event_time = Some(event_time.map_or(seen, |e| e.merge(seen)));
                    // Several stages computing watermarks: the smallest holds everything back.
                    if let Some(w) = stats.watermark_ms {
                        watermark = Some(watermark.map_or(w, |m: i64| m.min(w)));
                    }
                }
                StageProgress {
                    name: name.clone(),
                    rows_in: stats.rows_in,
                    rows_out: stats.rows_out,
                    busy_ms: millis(stats.busy),
                    backpressured_ms: millis(stats.backpressured),
                    processed_rows_per_second: rate(stats.rows_in, stats.busy),
                    state_keys: snapshot.state_keys,
                    state_bytes: snapshot.state_bytes,
                    files_pending: stats.pending,
                    malformed_rows: stats.malformed_rows,
                    rows_dropped_by_watermark: stats.rows_dropped_by_watermark,
                    watermark: stats.watermark_ms.map(utc_timestamp),
                }
            })
            .collect();
        let event_time = event_time
            .filter(|e| e.count > 0)
            .map(|e| EventTimeProgress {
                min: utc_timestamp(e.min_us.div_euclid(1000)),
                max: utc_timestamp(e.max_us.div_euclid(1000)),
                avg: utc_timestamp((e.sum_us / e.count as i128).div_euclid(1000) as i64),
                watermark: watermark.map(utc_timestamp),
            });
        // Sources, operators, sinks, each by name: the order of the pipeline file's tables.
        stages.sort_by(|a, b| (stage_kind(&a.name), &a.name).cmp(&(stage_kind(&b.name), &b.name)));
        let durations = PhaseDurations {
            read: millis(busy[0]),
            process: millis(busy[1]),
            write: millis(busy[2]),
            checkpoint: checkpoint.map_or(0.0, |(_, took)| millis(took)),
            commit: millis(commit),
            total: millis(total),
        };
        let share = |ms: f64| match durations.total > 0.0 {
            true => ms / durations.total,
            false => 0.0,
        };
        let upstreams = self.wire.as_ref().map(|w| &w.upstreams);
        let loads: Vec<StageLoad> = stages
            .iter()
            .map(|s| StageLoad {
                name: s.name.clone(),
                busy: share(s.busy_ms),
                backpressured: share(s.backpressured_ms),
                upstreams: upstreams
                    .and_then(|u| u.get(&s.name))
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        EpochProgress {
            epoch: epoch.0,
            last: state.kind == BarrierKind::Final,
            trigger: self.trigger.name(),
            timestamp: utc_timestamp(now_ms as i64),
            admitted_files: state.admitted,
            input_rows,
            input_rows_per_second: rate(input_rows, since_previous),
            processed_rows_per_second: rate(input_rows, total),
            durations_ms: durations,
            checkpoint_bytes: checkpoint.map(|(bytes, _)| bytes),
            event_time,
            bottleneck: find_bottleneck(&loads),
            stages,
        }
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;
}

impl Handler<Wire> for Coordinator {
    type Result = ();

    fn handle(&mut self, wire: Wire, ctx: &mut Context<Self>) {
        self.wire = Some(wire);
        match self.trigger {
            Trigger::Continuous { interval } => {
                if let Some(wire) = &self.wire {
                    // Looking for files more often than barriers keeps latency below the interval.
                    let poll = interval.min(Duration::from_millis(100));
                    for source in &wire.sources {
                        source.run.do_send(RunContinuous { poll });
                    }
                }
                ctx.run_interval(interval, |act, ctx| {
                    if act.in_flight.is_empty() && !act.final_injected {
                        act.inject(BarrierKind::Checkpoint, false, None, ctx);
                    }
                });
            }
            Trigger::ProcessingTime { interval } => {
                self.start_epoch(ctx);
                ctx.run_interval(interval, |act, ctx| {
                    if act.in_flight.is_empty() && !act.planning {
                        act.start_epoch(ctx);
                    } else {
                        act.tick_due = true;
                    }
                });
            }
            Trigger::Once | Trigger::AvailableNow => self.start_epoch(ctx),
        }
    }
}

impl Handler<InputDrained> for Coordinator {
    type Result = ();

    fn handle(&mut self, _: InputDrained, ctx: &mut Context<Self>) {
        match self.in_flight.is_empty() {
            true => self.early_barrier(ctx),
            // Its acks first: at most one epoch is in flight.
            false => self.drained_waiting = true,
        }
    }
}

impl Coordinator {
    /// Under the continuous trigger, the barrier for input read after a quiet spell, now
    /// rather than at the interval's next tick. Input that keeps coming keeps to the
    /// interval: one epoch with rows per interval.
    fn early_barrier(&mut self, ctx: &mut Context<Self>) {
        let Trigger::Continuous { interval } = self.trigger else {
            return;
        };
        let due = self
            .rows_barrier_at
            .is_none_or(|at| at.elapsed() >= interval);
        if due && self.in_flight.is_empty() && !self.final_injected && !self.stopping {
            self.inject(BarrierKind::Checkpoint, false, None, ctx);
        }
    }
}

impl Handler<BarrierEmitted> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: BarrierEmitted, ctx: &mut Context<Self>) {
        let sources = self.sources();
        let Some(state) = self.in_flight.get_mut(&msg.epoch) else {
            return;
        };
        state.emitted += 1;
        if msg.stats.rows_in > 0 {
            self.rows_barrier_at = Some(state.injected);
        }
        state.stats.push(msg.stats);
        state.snapshots.push((msg.stage, msg.snapshot));
        // available_now reads ahead: the next epoch's input is admitted as soon as every
        // source has let this epoch's barrier go, while downstream stages still work on it.
        if state.emitted == sources
            && state.kind == BarrierKind::Checkpoint
            && self.trigger == Trigger::AvailableNow
            && !self.stopping
        {
            self.start_epoch(ctx);
        }
        self.try_complete(msg.epoch, ctx);
    }
}

impl Handler<Ack> for Coordinator {
    type Result = ();

    fn handle(&mut self, ack: Ack, ctx: &mut Context<Self>) {
        let Some(state) = self.in_flight.get_mut(&ack.epoch) else {
            tracing::warn!(epoch = %ack.epoch, "ack for an epoch that is not in flight");
            return;
        };
        state.acks += 1;
        state.stats.push(ack.stats);
        state.snapshots.push((ack.stage, ack.snapshot));
        // Epochs complete in order: every stage handles barriers in order.
        self.try_complete(ack.epoch, ctx);
    }
}

impl Handler<StageFailed> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: StageFailed, ctx: &mut Context<Self>) {
        let error = stage_error(&msg.stage, msg.error);
        tracing::debug!(%error, "stage failed; finishing the epochs it had answered for");
        // An epoch the failed stage has answered for can still complete: the others are
        // working, and answer in epoch order. One it has not answered for never will.
        self.in_flight
            .retain(|_, epoch| epoch.snapshots.iter().any(|(stage, _)| *stage == msg.stage));
        if self.failure.is_none() {
            self.failure = Some(error);
            // A stage that dies without a word would hold the drain until checkpoint.timeout.
            ctx.run_later(DRAIN_GRACE, |act, ctx| {
                if let Some(error) = act.failure.take() {
                    tracing::warn!(
                        "epochs before the failure did not finish within {DRAIN_GRACE:?}; stopping"
                    );
                    act.finish(Err(error), ctx);
                }
            });
        }
        self.finish_failed_when_drained(ctx);
    }
}

impl Handler<RequestStop> for Coordinator {
    type Result = ();

    fn handle(&mut self, _: RequestStop, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        tracing::info!("stopping after the current epoch");
        self.stopping = true;
        if self.in_flight.is_empty() && !self.planning {
            self.start_epoch(ctx);
        }
    }
}

impl Coordinator {
    /// Ends a failed run once no epoch is left to finish, with the first failure.
    fn finish_failed_when_drained(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_empty() && self.committing == 0 {
            if let Some(error) = self.failure.take() {
                self.finish(Err(error), ctx);
            }
        }
    }
}

/// A stage's error, named after the stage (`sources.sales: ...`), its variant kept inside
/// [`Error::Stage`] for a program to match.
fn stage_error(stage: &str, error: Error) -> Error {
    match error {
        // Already said where (a stage that stopped because another did).
        Error::Stage { .. } => error,
        other => Error::Stage {
            stage: stage.to_string(),
            error: Box::new(other),
        },
    }
}

/// 0 for a source, 1 for an operator, 2 for a sink, from the stage's name (`sources.sales`):
/// the order of the pipeline file's tables, and the index of the stage's phase (read,
/// process, write).
fn stage_kind(stage: &str) -> usize {
    match stage.split('.').next() {
        Some("sources") => 0,
        Some("operators") => 1,
        _ => 2,
    }
}
