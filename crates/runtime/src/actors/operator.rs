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
use super::{send_all, Edge, StageMetrics};

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
}

impl OperatorActor {
    pub(crate) fn new(
        name: String,
        operator: Box<dyn Operator>,
        inputs: usize,
        outputs: Vec<(Edge, OutputMode)>,
        coordinator: Addr<Coordinator>,
        metrics: Arc<StageMetrics>,
    ) -> Self {
        let mut modes: Vec<OutputMode> = outputs.iter().map(|(_, m)| *m).collect();
        modes.sort_by_key(|m| m.as_str());
        modes.dedup();
        OperatorActor {
            name,
            operator,
            aligner: Aligner::new(inputs),
            outputs,
            modes,
            coordinator,
            metrics,
            failed: false,
            stats: StageStats::default(),
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
                    StageMetrics::add(&self.metrics.rows_in, batch.num_rows());
                    StageMetrics::add(&self.metrics.batches_in, 1);
                    self.stats.rows_in += batch.num_rows() as u64;
                    if let Some(out) = self.operator.process(batch)? {
                        StageMetrics::add(&self.metrics.rows_out, out.num_rows());
                        self.stats.rows_out += out.num_rows() as u64;
                        outgoing
                            .iter_mut()
                            .for_each(|o| o.push(StreamMessage::Batch(out.clone())));
                    }
                }
                Step::Barrier(barrier) => {
                    failure_point("after-barrier-before-state");
                    for mode in self.modes.clone() {
                        if let Some(out) = self.operator.emit(mode)? {
                            StageMetrics::add(&self.metrics.rows_out, out.num_rows());
                            self.stats.rows_out += out.num_rows() as u64;
                            for (i, (_, m)) in self.outputs.iter().enumerate() {
                                if *m == mode {
                                    outgoing[i].push(StreamMessage::Batch(out.clone()));
                                }
                            }
                        }
                    }
                    let snapshot = self.operator.snapshot(barrier.epoch)?;
                    self.operator.end_epoch(barrier.epoch)?;
                    StageMetrics::add(&self.metrics.barriers, 1);
                    outgoing
                        .iter_mut()
                        .for_each(|o| o.push(StreamMessage::Barrier(barrier)));
                    self.stats.busy += busy_since.elapsed();
                    busy_since = Instant::now();
                    let stats = std::mem::take(&mut self.stats);
                    acks.push((barrier.epoch, barrier.kind, snapshot, stats));
                }
            }
        }
        self.stats.busy += busy_since.elapsed();
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
        let (steps, release) = match self.aligner.offer(envelope.port, envelope.message) {
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
