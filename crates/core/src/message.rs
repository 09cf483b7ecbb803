use std::fmt;

use actix::Message;
use arrow_array::RecordBatch;
use serde::{Deserialize, Serialize};

/// The unit of output and of checkpointing: the data between barrier *n-1* and barrier *n*.
///
/// Epochs start at 1; epoch 0 means "nothing has been processed yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch after this one.
    pub fn next(self) -> Epoch {
        Epoch(self.0 + 1)
    }

    /// A state key for something of this epoch: `tag`, then the epoch in big-endian bytes,
    /// so that a stage's keys of one tag sort by epoch.
    pub fn key(self, tag: u8) -> Vec<u8> {
        let mut key = vec![tag];
        key.extend_from_slice(&self.0.to_be_bytes());
        key
    }

    /// The epoch of a key made by [`Epoch::key`] with `tag`; `None` for any other key.
    pub fn from_key(tag: u8, key: &[u8]) -> Option<Epoch> {
        match key.split_first() {
            Some((first, rest)) if *first == tag => {
                rest.try_into().ok().map(u64::from_be_bytes).map(Epoch)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a barrier was injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BarrierKind {
    /// An ordinary checkpoint: the stream goes on after it.
    Checkpoint,
    /// The last barrier of a bounded run or of a graceful stop: every stage shuts down after it.
    Final,
}

/// A checkpoint barrier. Every row sent before it on an edge belongs to `epoch` or an earlier
/// one; every row after it to a later one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Barrier {
    /// The epoch this barrier closes.
    pub epoch: Epoch,
    /// Whether the stream ends after this barrier.
    pub kind: BarrierKind,
}

/// Everything that travels on a data edge, in order: an edge is FIFO.
#[derive(Debug, Clone)]
pub enum StreamMessage {
    /// Rows, in Arrow's columnar form.
    Batch(RecordBatch),
    /// The end of an epoch.
    Barrier(Barrier),
    /// Event time has reached this many milliseconds since the Unix epoch: rows at or
    /// before it are late. A stage sends it after the last batch of an epoch, just before
    /// the barrier, and it takes effect at that barrier.
    Watermark(i64),
}

/// A [`StreamMessage`] as delivered to a stage, tagged with the input port it arrived on, so
/// that a stage with several inputs can align barriers per input.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Envelope {
    /// Index of the input this message arrived on, in the order the stage's inputs are listed.
    pub port: usize,
    /// The message itself.
    pub message: StreamMessage,
}

/// What a sink receives from an aggregate at every epoch, after Spark's output modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputMode {
    /// Only new rows, never changed later: plain streams, and windows once the watermark
    /// has passed their end.
    Append,
    /// The whole result table at every epoch. Aggregates only.
    Complete,
    /// The rows that changed in this epoch.
    Update,
}

impl OutputMode {
    /// The TOML spelling of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            OutputMode::Append => "append",
            OutputMode::Complete => "complete",
            OutputMode::Update => "update",
        }
    }
}

impl fmt::Display for OutputMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
