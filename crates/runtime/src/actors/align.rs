//! Barrier alignment for stages with several inputs (design.md §2): after barrier *n* arrives
//! on input *i*, data from *i* waits until barrier *n* has arrived on every input.

use std::collections::VecDeque;

use arrow_array::RecordBatch;
use tokio::sync::oneshot;
use weir_core::{Barrier, Epoch, Error, StreamMessage};

/// What a stage does next, in order.
pub(crate) enum Step {
    Data(RecordBatch),
    /// Input `port`'s watermark reached this many milliseconds.
    Watermark(usize, i64),
    Barrier(Barrier),
}

/// The answer to a message offered to the aligner.
pub(crate) enum Offer {
    /// Its input is blocked: the sender's reply waits for this signal, which holds the sender
    /// back, so at most one message per blocked input is ever held.
    Parked(oneshot::Receiver<()>),
    /// Steps to take now; `release` are held messages that these steps consumed, whose
    /// senders may be answered once the steps are done.
    Ready {
        steps: Vec<Step>,
        release: Vec<oneshot::Sender<()>>,
    },
}

pub(crate) struct Aligner {
    blocked: Vec<bool>,
    held: Vec<VecDeque<(StreamMessage, oneshot::Sender<()>)>>,
    /// The barrier the inputs are being aligned on: the first to arrive of this round.
    aligning: Option<Barrier>,
    /// The epoch of the last barrier aligned: the next must be later.
    last_epoch: Option<Epoch>,
}

impl Aligner {
    pub(crate) fn new(inputs: usize) -> Self {
        Aligner {
            blocked: vec![false; inputs],
            held: (0..inputs).map(|_| VecDeque::new()).collect(),
            aligning: None,
            last_epoch: None,
        }
    }

    /// Takes the next message of input `port`. A message on a port the stage does not
    /// have, barriers of different epochs or kinds on two inputs, or an epoch that does not
    /// come after the last one are the runtime's own mistakes: an internal error, never
    /// aligned silently.
    pub(crate) fn offer(&mut self, port: usize, message: StreamMessage) -> Result<Offer, Error> {
        if port >= self.blocked.len() {
            return Err(Error::Internal(format!(
                "barrier alignment: a message on input {port}, of {} input(s)",
                self.blocked.len()
            )));
        }
        if self.blocked[port] {
            let (tx, rx) = oneshot::channel();
            self.held[port].push_back((message, tx));
            return Ok(Offer::Parked(rx));
        }
        let mut steps = Vec::new();
        let mut release = Vec::new();
        self.feed(port, message, &mut steps)?;
        // An alignment that completed unblocks inputs whose held messages can now flow.
        loop {
            let mut progressed = false;
            for p in 0..self.blocked.len() {
                while !self.blocked[p] {
                    let Some((message, tx)) = self.held[p].pop_front() else {
                        break;
                    };
                    self.feed(p, message, &mut steps)?;
                    release.push(tx);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        Ok(Offer::Ready { steps, release })
    }

    fn feed(
        &mut self,
        port: usize,
        message: StreamMessage,
        steps: &mut Vec<Step>,
    ) -> Result<(), Error> {
        match message {
            StreamMessage::Batch(batch) => steps.push(Step::Data(batch)),
            StreamMessage::Watermark(ms) => steps.push(Step::Watermark(port, ms)),
            StreamMessage::Barrier(barrier) => {
                match self.aligning {
                    Some(first) if first != barrier => {
                        return Err(Error::Internal(format!(
                            "barrier alignment: input {port} sent the barrier of epoch {} ({:?}) while the inputs were aligning on epoch {} ({:?})",
                            barrier.epoch, barrier.kind, first.epoch, first.kind
                        )));
                    }
                    Some(_) => {}
                    None if self.last_epoch.is_some_and(|last| barrier.epoch <= last) => {
                        return Err(Error::Internal(format!(
                            "barrier alignment: input {port} sent the barrier of epoch {} after epoch {} was aligned",
                            barrier.epoch,
                            self.last_epoch.map_or(0, |e| e.0)
                        )));
                    }
                    None => self.aligning = Some(barrier),
                }
                self.blocked[port] = true;
                if self.blocked.iter().all(|b| *b) {
                    self.blocked.iter_mut().for_each(|b| *b = false);
                    self.aligning = None;
                    self.last_epoch = Some(barrier.epoch);
                    steps.push(Step::Barrier(barrier));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow_array::Int32Array;
    use weir_core::BarrierKind;

    fn batch(v: i32) -> StreamMessage {
        let array = Arc::new(Int32Array::from(vec![v]));
        StreamMessage::Batch(RecordBatch::try_from_iter(vec![("v", array as _)]).unwrap())
    }

    fn barrier(n: u64) -> StreamMessage {
        StreamMessage::Barrier(Barrier {
            epoch: Epoch(n),
            kind: BarrierKind::Checkpoint,
        })
    }

    fn describe(offer: Result<Offer, Error>) -> (Vec<String>, usize) {
        match offer.unwrap() {
            Offer::Parked(_) => (vec!["parked".into()], 0),
            Offer::Ready { steps, release } => (
                steps
                    .iter()
                    .map(|s| match s {
                        Step::Data(b) => {
                            let v = b
                                .column(0)
                                .as_any()
                                .downcast_ref::<Int32Array>()
                                .unwrap()
                                .value(0);
                            format!("data {v}")
                        }
                        Step::Barrier(b) => format!("barrier {}", b.epoch),
                        Step::Watermark(port, ms) => format!("watermark {port} {ms}"),
                    })
                    .collect(),
                release.len(),
            ),
        }
    }

    #[test]
    fn holds_an_input_that_is_ahead_until_the_others_catch_up() {
        let mut a = Aligner::new(2);
        assert_eq!(describe(a.offer(0, batch(1))), (vec!["data 1".into()], 0));
        assert_eq!(describe(a.offer(0, barrier(1))), (vec![], 0));
        // Input 0 is ahead: its next batch belongs to epoch 2 and must wait.
        assert_eq!(describe(a.offer(0, batch(2))).0, ["parked"]);
        // Input 1 still sends epoch-1 data, which flows.
        assert_eq!(describe(a.offer(1, batch(3))), (vec!["data 3".into()], 0));
        // Its barrier completes the alignment; the held batch follows the barrier.
        assert_eq!(
            describe(a.offer(1, barrier(1))),
            (vec!["barrier 1".into(), "data 2".into()], 1)
        );
    }

    #[test]
    fn barriers_of_different_epochs_or_kinds_are_an_internal_error() {
        let mut a = Aligner::new(2);
        describe(a.offer(0, barrier(1)));
        let error = a.offer(1, barrier(2)).err().unwrap();
        assert!(
            error
                .to_string()
                .contains("input 1 sent the barrier of epoch 2")
                && error.to_string().contains("aligning on epoch 1"),
            "{error}"
        );

        let mut a = Aligner::new(2);
        describe(a.offer(0, barrier(1)));
        let last = StreamMessage::Barrier(Barrier {
            epoch: Epoch(1),
            kind: BarrierKind::Final,
        });
        assert!(a.offer(1, last).is_err());

        // An epoch that does not come after the last one aligned.
        let mut a = Aligner::new(2);
        describe(a.offer(0, barrier(1)));
        describe(a.offer(1, barrier(1)));
        assert!(a.offer(0, barrier(1)).is_err());
        // A port the stage does not have.
        assert!(Aligner::new(1).offer(3, batch(1)).is_err());
    }

    #[test]
    fn a_single_input_never_waits() {
        let mut a = Aligner::new(1);
        assert_eq!(describe(a.offer(0, barrier(1))).0, ["barrier 1"]);
        assert_eq!(describe(a.offer(0, batch(1))).0, ["data 1"]);
    }
}
