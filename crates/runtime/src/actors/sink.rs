use std::sync::Arc;

use actix::prelude::*;
use std::time::Instant;

use weir_checkpoint::{Ack, Commit, Coordinator, StageFailed, StageStats};
use weir_core::{failure_point, BarrierKind, Envelope, Error, Sink};

use super::align::{Aligner, Offer, Step};
use super::StageMetrics;

/// Runs one [`Sink`]: writes batches, pre-commits at every aligned barrier and acks, commits
/// when the coordinator says the epoch's checkpoint is complete.
pub(crate) struct SinkActor {
    name: String,
    sink: Box<dyn Sink>,
    aligner: Aligner,
    coordinator: Addr<Coordinator>,
    metrics: Arc<StageMetrics>,
    failed: bool,
    /// What the sink wrote since its last barrier.
    stats: StageStats,
}

impl SinkActor {
    pub(crate) fn new(
        name: String,
        sink: Box<dyn Sink>,
        inputs: usize,
        coordinator: Addr<Coordinator>,
        metrics: Arc<StageMetrics>,
    ) -> Self {
        SinkActor {
            name,
            sink,
            aligner: Aligner::new(inputs),
            coordinator,
            metrics,
            failed: false,
            stats: StageStats::default(),
        }
    }

    fn run(&mut self, steps: Vec<Step>) -> Result<(), Error> {
        for step in steps {
            let busy_since = Instant::now();
            match step {
                Step::Data(batch) => {
                    self.metrics.received(&batch);
                    self.sink.write(&batch)?;
                    self.metrics.sent(&batch);
                    self.stats.rows_in += batch.num_rows() as u64;
                    self.stats.rows_out += batch.num_rows() as u64;
                    self.stats.busy += busy_since.elapsed();
                    StageMetrics::add_time(&self.metrics.busy_ns, busy_since.elapsed());
                }
                // Sinks write what they are given; event time matters to operators.
                Step::Watermark(..) => {}
                Step::Barrier(barrier) => {
                    if barrier.kind == BarrierKind::Final {
                        self.sink.last_epoch()?;
                    }
                    self.sink.pre_commit(barrier.epoch)?;
                    failure_point("after-barrier-before-state");
                    let snapshot = self.sink.snapshot(barrier.epoch)?;
                    failure_point("after-state-before-ack");
                    StageMetrics::add(&self.metrics.barriers, 1);
                    let stage = format!("sinks.{}", self.name);
                    self.stats.busy += busy_since.elapsed();
                    StageMetrics::add_time(&self.metrics.busy_ns, busy_since.elapsed());
                    let stats = std::mem::take(&mut self.stats);
                    self.coordinator.do_send(Ack {
                        epoch: barrier.epoch,
                        stage,
                        snapshot,
                        stats,
                    });
                }
            }
        }
        Ok(())
    }

    fn fail(&mut self, error: Error, ctx: &mut Context<Self>) {
        self.failed = true;
        self.coordinator.do_send(StageFailed {
            stage: format!("sinks.{}", self.name),
            error,
        });
        ctx.stop();
    }
}

impl Actor for SinkActor {
    type Context = Context<Self>;
}

impl Handler<Envelope> for SinkActor {
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
        match offer {
            Offer::Parked(signal) => Box::pin(async move {
                let _ = signal.await;
            }),
            Offer::Ready { steps, release } => {
                if let Err(error) = self.run(steps) {
                    self.fail(error, ctx);
                }
                release.into_iter().for_each(|tx| {
                    let _ = tx.send(());
                });
                Box::pin(async {})
            }
        }
    }
}

impl Handler<Commit> for SinkActor {
    type Result = Result<(), Error>;

    fn handle(&mut self, msg: Commit, ctx: &mut Context<Self>) -> Self::Result {
        let committing = Instant::now();
        self.sink.commit(msg.epoch)?;
        StageMetrics::add_time(&self.metrics.busy_ns, committing.elapsed());
        if msg.last {
            self.sink.close()?;
            ctx.stop();
        }
        Ok(())
    }
}
