use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::future::{join_all, BoxFuture};
use futures::FutureExt;
use weir_checkpoint::{
    Admission, Admit, BarrierEmitted, Coordinator, InjectBarrier, InputDrained, RunContinuous,
    StageFailed, StageStats, StartEpoch,
};
use weir_core::{failure_point, BarrierKind, Envelope, Error, Quota, Source, StreamMessage};

use super::{Edge, EventTimeTracker, StageMetrics};

/// Drives one [`Source`]: reads admitted input batch by batch and puts barriers between
/// epochs. Reading the next batch overlaps with downstream stages handling the previous one;
/// at most one message per edge is ever in flight.
pub(crate) struct SourceActor {
    name: String,
    index: usize,
    source: Box<dyn Source>,
    outputs: Vec<Edge>,
    /// The sinks of the rows the source rejects (its bad-records sink), if any.
    rejects: Vec<Edge>,
    /// Messages read but not yet sent: rows read in the same step as rejected rows.
    queued: VecDeque<(StreamMessage, Route)>,
    coordinator: Addr<Coordinator>,
    metrics: Arc<StageMetrics>,
    barriers: VecDeque<InjectBarrier>,
    /// `Some(poll)` under the continuous trigger: look for new input this often when idle.
    continuous: Option<Duration>,
    last_discover: Option<Instant>,
    /// Units (files) admitted into the epoch being read, against the per-trigger limit.
    admitted_in_epoch: usize,
    discover_scheduled: bool,
    in_flight: Option<BoxFuture<'static, Result<(), MailboxError>>>,
    pumping: bool,
    finished: bool,
    /// What the source read since its last barrier.
    stats: StageStats,
    /// The source's `watermark`, if its table sets one.
    tracker: Option<EventTimeTracker>,
    /// The coordinator was told, this epoch, that the rows read are all the input there is.
    drained_said: bool,
}

/// Which outputs a message goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The source's rows: every consumer but the bad-records sink.
    Rows,
    /// Rejected rows: the bad-records sink only.
    Rejects,
    /// Barriers: every output, so that every consumer aligns on them.
    All,
}

/// Read or emit the next message.
#[derive(Message)]
#[rtype(result = "()")]
struct Pump;

impl SourceActor {
    pub(crate) fn new(
        name: String,
        index: usize,
        source: Box<dyn Source>,
        outputs: Vec<Edge>,
        rejects: Vec<Edge>,
        coordinator: Addr<Coordinator>,
        metrics: Arc<StageMetrics>,
    ) -> Self {
        SourceActor {
            name,
            index,
            source,
            outputs,
            rejects,
            queued: VecDeque::new(),
            coordinator,
            metrics,
            barriers: VecDeque::new(),
            continuous: None,
            last_discover: None,
            drained_said: false,
            admitted_in_epoch: 0,
            discover_scheduled: false,
            in_flight: None,
            pumping: false,
            finished: false,
            stats: StageStats::default(),
            tracker: None,
        }
    }

    /// The source computes a watermark (`watermark = { column, delay }`) with `tracker`.
    pub(crate) fn with_watermark(mut self, tracker: Option<EventTimeTracker>) -> Self {
        // Resumed from a checkpoint: downstream learns at once where event time had got.
        if let Some(ms) = tracker.as_ref().and_then(EventTimeTracker::watermark) {
            self.queued
                .push_back((StreamMessage::Watermark(ms), Route::Rows));
        }
        self.tracker = tracker;
        self
    }

    /// The barrier as the next message, preceded by the watermark when it advanced.
    fn barrier(&mut self, barrier: InjectBarrier) -> (StreamMessage, Route) {
        // What follows the barrier belongs to the next epoch, with a quota of its own.
        self.admitted_in_epoch = 0;
        self.drained_said = false;
        let message = (StreamMessage::Barrier(barrier.barrier), Route::All);
        match self.tracker.as_mut().and_then(EventTimeTracker::advance) {
            Some(ms) => {
                self.queued.push_front(message);
                (StreamMessage::Watermark(ms), Route::Rows)
            }
            None => message,
        }
    }

    fn wake(&mut self, ctx: &mut Context<Self>) {
        if !self.pumping && !self.finished {
            self.pumping = true;
            ctx.notify(Pump);
        }
    }

    fn fail(&mut self, error: Error, ctx: &mut Context<Self>) {
        self.finished = true;
        self.coordinator.do_send(StageFailed {
            stage: format!("sources.{}", self.name),
            error,
        });
        // What was handed out before the failure still goes through: a barrier among it,
        // which the coordinator was told of, lets the epochs before the failure finish.
        self.stop_after_sends(ctx);
    }

    /// Stops once the message handed out last is delivered: a request to a full mailbox
    /// is only delivered while it is awaited, and stopping drops it.
    fn stop_after_sends(&mut self, ctx: &mut Context<Self>) {
        let last = self.in_flight.take();
        ctx.wait(
            async move {
                if let Some(sends) = last {
                    // A closed receiver changes nothing: the stage is stopping either way.
                    let _ = sends.await;
                }
            }
            .into_actor(self)
            .map(|(), _, ctx| ctx.stop()),
        );
    }

    /// The next message for downstream, or `None` when there is nothing to do until the
    /// coordinator or the discovery timer says otherwise.
    fn next_message(&mut self) -> Result<Option<(StreamMessage, Route)>, Error> {
        if let Some(queued) = self.queued.pop_front() {
            return Ok(Some(queued));
        }
        // Under the continuous trigger a barrier goes at the next batch boundary.
        if self.barriers.front().is_some_and(|b| !b.drain) {
            return Ok(self.barriers.pop_front().map(|b| self.barrier(b)));
        }
        loop {
            let reading = Instant::now();
            let batch = self.source.next_batch()?;
            // Rejected rows go out before the barrier that ends their epoch, like the rows.
            let rejected = self.source.take_bad_records()?;
            self.stats.busy += reading.elapsed();
            StageMetrics::add_time(&self.metrics.busy_ns, reading.elapsed());
            let rejected = rejected
                .filter(|_| !self.rejects.is_empty())
                .map(|b| (StreamMessage::Batch(b), Route::Rejects));
            let more = batch.is_some();
            if let Some(batch) = batch.filter(|b| b.num_rows() > 0) {
                failure_point("source-mid-batch");
                if let Some(tracker) = &mut self.tracker {
                    tracker.observe(&batch);
                }
                self.stats.rows_in += batch.num_rows() as u64;
                self.stats.rows_out += batch.num_rows() as u64;
                self.metrics.received(&batch);
                let rows = (StreamMessage::Batch(batch), Route::Rows);
                return Ok(Some(match rejected {
                    Some(rejected) => {
                        self.queued.push_back(rows);
                        rejected
                    }
                    None => rows,
                }));
            }
            if rejected.is_some() {
                return Ok(rejected);
            }
            if more {
                continue;
            }
            // Everything admitted has been read: a draining barrier may go now.
            if let Some(b) = self.barriers.pop_front() {
                return Ok(Some(self.barrier(b)));
            }
            let Some(poll) = self.continuous.map(|p| self.source.idle_poll(p)) else {
                return Ok(None);
            };
            if self.stats.rows_in > 0 && !self.drained_said {
                // All the input there is, read: after a quiet spell, a checkpoint now shows
                // it at once, where the interval's next tick may be most of an interval away.
                self.drained_said = true;
                self.coordinator.do_send(InputDrained);
            }
            if self.last_discover.is_some_and(|t| t.elapsed() < poll) {
                return Ok(None);
            }
            self.last_discover = Some(Instant::now());
            self.source.discover()?;
            let already = self.admitted_in_epoch;
            let admitted = self.source.admit(Quota::PerTrigger { already });
            if admitted == 0 {
                return Ok(None);
            }
            self.admitted_in_epoch += admitted;
        }
    }

    fn schedule_discovery(&mut self, ctx: &mut Context<Self>) {
        let (Some(poll), false) = (self.continuous, self.discover_scheduled) else {
            return;
        };
        let poll = self.source.idle_poll(poll);
        let wait = self
            .last_discover
            .map_or(Duration::ZERO, |t| poll.saturating_sub(t.elapsed()));
        self.discover_scheduled = true;
        ctx.run_later(wait, |act, ctx| {
            act.discover_scheduled = false;
            act.wake(ctx);
        });
    }

    /// Hands `message` to every output. The requests are made now, so that the message is
    /// queued at once; the caller awaits them before sending the next message.
    fn dispatch(&mut self, message: StreamMessage, route: Route) {
        let (rows, rejects) = match route {
            Route::Rows => (&self.outputs[..], &[][..]),
            Route::Rejects => (&[][..], &self.rejects[..]),
            Route::All => (&self.outputs[..], &self.rejects[..]),
        };
        let requests: Vec<_> = rows
            .iter()
            .chain(rejects)
            .map(|edge| {
                edge.recipient.send(Envelope {
                    port: edge.port,
                    message: message.clone(),
                })
            })
            .collect();
        self.in_flight = Some(
            join_all(requests)
                .map(|results| results.into_iter().collect::<Result<(), _>>())
                .boxed(),
        );
    }
}

impl Actor for SourceActor {
    type Context = Context<Self>;
}

impl Handler<Pump> for SourceActor {
    type Result = ();

    fn handle(&mut self, _: Pump, ctx: &mut Context<Self>) {
        self.pumping = false;
        if self.finished {
            return;
        }
        // Parse the next batch while downstream still handles the previous one.
        let (message, route) = match self.next_message() {
            Ok(Some(next)) => next,
            Ok(None) => return self.schedule_discovery(ctx),
            Err(error) => return self.fail(error, ctx),
        };
        let previous = self.in_flight.take();
        let blocked_since = Instant::now();
        let waited = async move {
            match previous {
                Some(sends) => sends.await,
                None => Ok(()),
            }
        };
        ctx.wait(waited.into_actor(self).map(move |result, act, ctx| {
            // Waiting for downstream to take the previous message: backpressure.
            let blocked = blocked_since.elapsed();
            StageMetrics::add_time(&act.metrics.backpressured_ns, blocked);
            act.stats.backpressured += blocked;
            if result.is_err() {
                // A downstream stage stopped; it reported why to the coordinator.
                act.finished = true;
                return ctx.stop();
            }
            let barrier = match &message {
                StreamMessage::Barrier(b) => Some(*b),
                _ => None,
            };
            // The position goes with the barrier: everything before it, nothing after.
            let snapshot = match barrier.map(|b| act.source.snapshot_at(b.epoch)).transpose() {
                Ok(snapshot) => snapshot,
                Err(error) => return act.fail(error, ctx),
            };
            let snapshot = snapshot.map(|mut snapshot| {
                if let Some(tracker) = &act.tracker {
                    tracker.snapshot(&mut snapshot);
                }
                snapshot
            });
            if let (StreamMessage::Batch(batch), Route::Rows) = (&message, route) {
                act.metrics.sent(batch);
            }
            act.dispatch(message, route);
            let (Some(barrier), Some(snapshot)) = (barrier, snapshot) else {
                return act.wake(ctx);
            };
            StageMetrics::add(&act.metrics.barriers, 1);
            let stats = StageStats {
                pending: Some(act.source.backlog() as u64),
                malformed_rows: act.source.take_malformed_rows(),
                watermark_ms: act.tracker.as_ref().and_then(EventTimeTracker::watermark),
                event_time: act.tracker.as_mut().and_then(EventTimeTracker::take_stats),
                ..std::mem::take(&mut act.stats)
            };
            act.coordinator.do_send(BarrierEmitted {
                source: act.index,
                epoch: barrier.epoch,
                stage: format!("sources.{}", act.name),
                snapshot,
                stats,
            });
            if barrier.kind == BarrierKind::Final {
                act.finished = true;
                act.stop_after_sends(ctx);
            } else {
                act.wake(ctx);
            }
        }));
    }
}

impl Handler<StartEpoch> for SourceActor {
    type Result = Result<Admission, Error>;

    fn handle(&mut self, msg: StartEpoch, ctx: &mut Context<Self>) -> Self::Result {
        if msg.bounded_start {
            self.source.check_bounded_input()?;
        }
        if msg.discover {
            self.source.discover()?;
        }
        let admitted = match msg.admit {
            Admit::Nothing => 0,
            Admit::Limited => self.source.admit(Quota::PerTrigger { already: 0 }),
            Admit::All => self.source.admit(Quota::All),
        };
        self.admitted_in_epoch = admitted;
        self.wake(ctx);
        Ok(Admission {
            admitted,
            backlog: self.source.backlog(),
        })
    }
}

impl Handler<InjectBarrier> for SourceActor {
    type Result = ();

    fn handle(&mut self, msg: InjectBarrier, ctx: &mut Context<Self>) {
        self.barriers.push_back(msg);
        self.wake(ctx);
    }
}

impl Handler<RunContinuous> for SourceActor {
    type Result = ();

    fn handle(&mut self, msg: RunContinuous, ctx: &mut Context<Self>) {
        self.continuous = Some(msg.poll);
        self.wake(ctx);
    }
}
