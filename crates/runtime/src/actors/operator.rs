use std::sync::Arc;

use actix::prelude::*;
use std::time::Instant;
use tokio::sync::oneshot;

use weir_checkpoint::{Ack, Coordinator, StageFailed, StageStats};
use weir_core::{
    failure_point, BarrierKind, Envelope, Epoch, Error, Operator, OutputMode, StageSnapshot,
    StreamMessage,
};

use super::align::{Aligner, Offer, Step};
use super::{send_all, Edge, EventTimeTracker, StageMetrics};

/// Runs one [`Operator`]: aligns barriers across its inputs, forwards what `process` returns,
/// and at every barrier emits the epoch's output once per output mode its consumers need.
pub(crate) struct OperatorActor {
    name: String,
    operator: Box<dyn Operator>,
    aligner: Aligner,
    outputs: Vec<(Edge, OutputMode)>,
    modes: Vec<OutputMode>,
    coordinator: Addr<Coordinator>,
    metrics: Arc<StageMetrics>,
    failed: bool,
    /// What the operator did since its last barrier.
    stats: StageStats,
    /// For each input: whether a watermark flows on it, and the latest it carried.
    inputs_watermark: Vec<(bool, Option<i64>)>,
    /// The input watermark last given to the operator.
    applied_ms: Option<i64>,
    /// The watermark last sent downstream.
    sent_ms: Option<i64>,
    /// The operator's own `watermark`, over its output.
    tracker: Option<EventTimeTracker>,
}

impl OperatorActor {
    /// `watermarked` says, per input, whether a watermark flows on it: the operator's input
    /// watermark is the smallest of theirs (Spark's default policy), once each has sent one.
    pub(crate) fn new(
        name: String,
        operator: Box<dyn Operator>,
        watermarked: Vec<bool>,
        outputs: Vec<(Edge, OutputMode)>,
        coordinator: Addr<Coordinator>,
        metrics: Arc<StageMetrics>,
        tracker: Option<EventTimeTracker>,
    ) -> Self {
        let mut modes: Vec<OutputMode> = outputs.iter().map(|(_, m)| *m).collect();
        modes.sort_by_key(|m| m.as_str());
        modes.dedup();
        OperatorActor {
            name,
            operator,
            aligner: Aligner::new(watermarked.len()),
            outputs,
            modes,
            coordinator,
            metrics,
            failed: false,
            stats: StageStats::default(),
            inputs_watermark: watermarked.into_iter().map(|w| (w, None)).collect(),
            applied_ms: None,
            sent_ms: tracker.as_ref().and_then(EventTimeTracker::watermark),
            tracker,
        }
    }

    /// The smallest watermark of the inputs that carry one, once all of them have.
    fn input_watermark(&self) -> Option<i64> {
        let mut carried = self.inputs_watermark.iter().filter(|(w, _)| *w).peekable();
        carried.peek()?;
        carried.map(|(_, ms)| *ms).min().flatten()
    }

    /// The watermark of the operator's output: its input's, held back by its own.
    fn output_watermark(&mut self) -> Option<i64> {
        let own = self.tracker.as_mut().map(|t| {
            t.advance();
            t.watermark()
        });
        match own {
            None => self.applied_ms,
            Some(None) => None,
            Some(Some(own)) => Some(self.applied_ms.map_or(own, |input| input.min(own))),
        }
    }

    /// Runs the steps; returns what each output edge must be sent, and the epochs to ack.
    #[allow(clippy::type_complexity)]
    fn run(
        &mut self,
        steps: Vec<Step>,
    ) -> Result<
        (
            Vec<Vec<StreamMessage>>,
            Vec<(Epoch, BarrierKind, StageSnapshot, StageStats)>,
        ),
        Error,
    > {
        let mut busy_since = Instant::now();
        let mut outgoing: Vec<Vec<StreamMessage>> = vec![Vec::new(); self.outputs.len()];
        let mut acks = Vec::new();
        for step in steps {
            match step {
                Step::Data(batch) => {
                    self.metrics.received(&batch);
                    self.stats.rows_in += batch.num_rows() as u64;
                    if let Some(out) = self.operator.process(batch)? {
                        if let Some(tracker) = &mut self.tracker {
                            tracker.observe(&out);
                        }
                        self.metrics.sent(&out);
                        self.stats.rows_out += out.num_rows() as u64;
                        outgoing
                            .iter_mut()
                            .for_each(|o| o.push(StreamMessage::Batch(out.clone())));
                    }
                }
                Step::Watermark(port, ms) => {
                    if let Some((_, latest)) = self.inputs_watermark.get_mut(port) {
                        *latest = Some(latest.map_or(ms, |l| l.max(ms)));
                    }
                }
                Step::Barrier(barrier) => {
                    failure_point("after-barrier-before-state");
                    if let Some(input) = self.input_watermark() {
                        if self.applied_ms.is_none_or(|applied| applied < input) {
                            self.operator.advance_watermark(input)?;
                            self.applied_ms = Some(input);
                        }
                    }
                    for mode in self.modes.clone() {
                        if let Some(out) = self.operator.emit(mode)? {
                            if let Some(tracker) = &mut self.tracker {
                                tracker.observe(&out);
                            }
                            self.metrics.sent(&out);
                            self.stats.rows_out += out.num_rows() as u64;
                            for (i, (_, m)) in self.outputs.iter().enumerate() {
                                if *m == mode {
                                    outgoing[i].push(StreamMessage::Batch(out.clone()));
                                }
                            }
                        }
                    }
                    let mut snapshot = self.operator.snapshot(barrier.epoch)?;
                    self.operator.end_epoch(barrier.epoch)?;
                    StageMetrics::add(&self.metrics.barriers, 1);
                    // The watermark goes after the epoch's rows, just before its barrier.
                    let watermark = self.output_watermark();
                    if let Some(ms) = watermark.filter(|&w| self.sent_ms.is_none_or(|s| s < w)) {
                        self.sent_ms = Some(ms);
                        outgoing
                            .iter_mut()
                            .for_each(|o| o.push(StreamMessage::Watermark(ms)));
                    }
                    outgoing
                        .iter_mut()
                        .for_each(|o| o.push(StreamMessage::Barrier(barrier)));
                    if let Some(tracker) = &mut self.tracker {
                        tracker.snapshot(&mut snapshot);
                        self.stats.event_time = tracker.take_stats();
                    }
                    self.stats.watermark_ms = self.applied_ms.or(watermark);
                    self.stats.rows_dropped_by_watermark = self.operator.take_late_rows();
                    let busy = busy_since.elapsed();
                    self.stats.busy += busy;
                    StageMetrics::add_time(&self.metrics.busy_ns, busy);
                    busy_since = Instant::now();
                    let stats = std::mem::take(&mut self.stats);
                    acks.push((barrier.epoch, barrier.kind, snapshot, stats));
                }
            }
        }
        let busy = busy_since.elapsed();
        self.stats.busy += busy;
        StageMetrics::add_time(&self.metrics.busy_ns, busy);
        Ok((outgoing, acks))
    }

    fn fail(&mut self, error: Error, ctx: &mut Context<Self>) {
        self.failed = true;
        self.coordinator.do_send(StageFailed {
            stage: format!("operators.{}", self.name),
            error,
        });
        ctx.stop();
    }
}

impl Actor for OperatorActor {
    type Context = Context<Self>;
}

impl Handler<Envelope> for OperatorActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, envelope: Envelope, ctx: &mut Context<Self>) -> Self::Result {
        if self.failed {
            return Box::pin(async {});
        }
        let offer = match self.aligner.offer(envelope.port, envelope.message) {
            Ok(offer) => offer,
            Err(error) => {
                self.fail(error, ctx);
                return Box::pin(async {});
            }
        };
        let (steps, release) = match offer {
            Offer::Parked(signal) => {
                return Box::pin(async move {
                    // Dropped without a signal only when the stage stops; the sender stops too.
                    let _ = signal.await;
                });
            }
            Offer::Ready { steps, release } => (steps, release),
        };
        let (outgoing, acks) = match self.run(steps) {
            Ok(result) => result,
            Err(error) => {
                self.fail(error, ctx);
                return Box::pin(async {});
            }
        };
        let sends = send_all(
            self.outputs
                .iter()
                .map(|(e, _)| e.clone())
                .zip(outgoing)
                .collect(),
        );
        let (done, replied) = oneshot::channel();
        let blocked_since = Instant::now();
        // The actor takes no other message until its output is handed on: order and
        // backpressure both follow from that.
        ctx.wait(sends.into_actor(self).map(move |result, act, ctx| {
            release.into_iter().for_each(|tx| {
                let _ = tx.send(());
            });
            let _ = done.send(());
            if result.is_err() {
                act.failed = true;
                return ctx.stop();
            }
            // Waiting for downstream to take the output is this stage's backpressure; it
            // belongs to the epoch whose barrier went out last, or else to the current one.
            let blocked = blocked_since.elapsed();
            StageMetrics::add_time(&act.metrics.backpressured_ns, blocked);
            let mut acks = acks;
            match acks.last_mut() {
                Some((_, _, _, stats)) => stats.backpressured += blocked,
                None => act.stats.backpressured += blocked,
            }
            for (epoch, kind, snapshot, stats) in acks {
                failure_point("after-state-before-ack");
                let stage = format!("operators.{}", act.name);
                act.coordinator.do_send(Ack {
                    epoch,
                    stage,
                    snapshot,
                    stats,
                });
                if kind == BarrierKind::Final {
                    ctx.stop();
                }
            }
        }));
        Box::pin(async move {
            let _ = replied.await;
        })
    }
}
