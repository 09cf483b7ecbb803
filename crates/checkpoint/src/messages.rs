use std::time::Duration;

use actix::{Message, Recipient};
use weir_core::{Barrier, Epoch, Error, StageSnapshot};

use crate::StageStats;

/// When epochs start and end (design.md §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// Sources read new input as soon as it appears; a barrier every `interval`.
    Continuous {
        /// Time between checkpoint barriers.
        interval: Duration,
    },
    /// Every `interval`: discover new input, read it, end the epoch with a barrier.
    ProcessingTime {
        /// Time between epoch starts.
        interval: Duration,
    },
    /// One epoch holding everything available at start, then stop.
    Once,
    /// Everything available at start, in as many epochs as the sources' limits need, then stop.
    AvailableNow,
}

impl Trigger {
    /// The trigger's name in the pipeline file and in progress records.
    pub fn name(&self) -> &'static str {
        match self {
            Trigger::Continuous { .. } => "continuous",
            Trigger::ProcessingTime { .. } => "processing_time",
            Trigger::Once => "once",
            Trigger::AvailableNow => "available_now",
        }
    }
}

/// Which discovered input a source admits into an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Nothing: the epoch only carries a barrier (a stop).
    Nothing,
    /// Up to the source's per-trigger limit.
    Limited,
    /// Everything discovered.
    All,
}

/// Coordinator → source: look for input (if `discover`) and admit some of it into `epoch`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<Admission, Error>")]
pub struct StartEpoch {
    /// The epoch being planned.
    pub epoch: Epoch,
    /// List the input again before admitting.
    pub discover: bool,
    /// What to admit.
    pub admit: Admit,
    /// The first listing of a bounded run (`once`, `available_now`): missing input is an
    /// error, not something to wait for.
    pub bounded_start: bool,
}

/// A source's answer to [`StartEpoch`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Admission {
    /// Units (files) admitted into the epoch.
    pub admitted: usize,
    /// Units discovered and still waiting.
    pub backlog: usize,
}

/// Coordinator → source: emit `barrier` — after all admitted input when `drain`, else at the
/// next batch boundary (continuous trigger).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct InjectBarrier {
    /// The barrier to emit.
    pub barrier: Barrier,
    /// Read everything admitted before emitting it.
    pub drain: bool,
}

/// Coordinator → source: read continuously, looking for new input every `poll`.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct RunContinuous {
    /// Time between listings of the input when there is nothing to read.
    pub poll: Duration,
}

/// Source → coordinator, under the continuous trigger: the source has read rows in this
/// epoch and has nothing more to read for now. If no epoch with rows began its checkpoint
/// within the last interval, the coordinator checkpoints at once rather than at the
/// interval's next tick, so input after a quiet spell is committed without waiting.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct InputDrained;

/// Source → coordinator: the barrier of `epoch` has left the source, which was at the
/// position in `snapshot` when it did.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct BarrierEmitted {
    /// Index of the source in [`Wire::sources`].
    pub source: usize,
    /// The epoch whose barrier was emitted.
    pub epoch: Epoch,
    /// The source's name in the pipeline file (`sources.sales`).
    pub stage: String,
    /// The source's position at the barrier.
    pub snapshot: StageSnapshot,
    /// What the source read in the epoch.
    pub stats: StageStats,
}

/// Operator or sink → coordinator: barrier `epoch` is aligned, handled, its output
/// pre-committed and its state captured in `snapshot`.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct Ack {
    /// The epoch acknowledged.
    pub epoch: Epoch,
    /// The stage's name in the pipeline file (`operators.by_shop`).
    pub stage: String,
    /// What the stage's state became in the epoch.
    pub snapshot: StageSnapshot,
    /// What the stage did in the epoch.
    pub stats: StageStats,
}

/// Coordinator → sink: the checkpoint of `epoch` is complete; make its output visible.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<(), Error>")]
pub struct Commit {
    /// The epoch to commit (and every earlier one still pending).
    pub epoch: Epoch,
    /// No epoch follows: close and stop after committing.
    pub last: bool,
}

/// Any stage → coordinator: the stage cannot go on.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct StageFailed {
    /// The stage's name, as in the pipeline file (`sources.sales`).
    pub stage: String,
    /// What went wrong.
    pub error: Error,
}

/// Anyone → coordinator: finish the current epoch, take a final checkpoint, stop.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "()")]
pub struct RequestStop;

/// The control endpoints of one source.
#[derive(Clone)]
pub struct SourceControl {
    /// The source's name (`sources.sales`).
    pub name: String,
    /// Where [`StartEpoch`] goes.
    pub start: Recipient<StartEpoch>,
    /// Where [`InjectBarrier`] goes.
    pub inject: Recipient<InjectBarrier>,
    /// Where [`RunContinuous`] goes.
    pub run: Recipient<RunContinuous>,
}

/// Runtime → coordinator, once every stage has started: who to talk to. Starts the trigger.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Wire {
    /// Every source instance.
    pub sources: Vec<SourceControl>,
    /// Every sink instance.
    pub sinks: Vec<Recipient<Commit>>,
    /// Every operator and sink instance, by name (`sinks.archive`): each acks every barrier.
    pub ackers: Vec<String>,
    /// Every stage's inputs, by name, for naming the bottleneck in progress records.
    pub upstreams: std::collections::BTreeMap<String, Vec<String>>,
}
