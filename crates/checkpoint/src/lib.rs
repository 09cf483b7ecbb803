//! `weir-checkpoint`: the [`Coordinator`] actor and the control messages of the checkpoint
//! protocol.
//!
//! The coordinator owns epochs. Following the pipeline's [`Trigger`] it asks every source to
//! admit input into an epoch ([`StartEpoch`]), injects the epoch's barrier ([`InjectBarrier`]),
//! counts the [`Ack`] of every operator and sink, writes the checkpoint (every stage's state
//! delta and the [`Manifest`]) into the [`CheckpointStore`] in one atomic RocksDB write, and
//! only then tells the sinks to [`Commit`] the epoch. A stage that fails reports
//! [`StageFailed`] and the run ends with that error.
//!
//! A pipeline is wired by the `weir` runtime crate: it starts a coordinator, the stage actors,
//! then sends [`Wire`] with their addresses, and waits on the completion channel.

mod coordinator;
mod messages;
mod progress;
mod store;

pub use coordinator::{Coordinator, RunResult};
pub use messages::{
    Ack, Admission, Admit, BarrierEmitted, Commit, InjectBarrier, InputDrained, RequestStop,
    RunContinuous, SourceControl, StageFailed, StartEpoch, Trigger, Wire,
};
pub use progress::{
    find_bottleneck, utc_timestamp, Bottleneck, EpochProgress, EventTimeProgress, EventTimeStats,
    PhaseDurations, StageLoad, StageProgress, StageStats, BOTTLENECK_THRESHOLD,
};
pub use store::{
    CheckpointStore, Manifest, StageSummary, StoreError, Surveyed, CHECKPOINT_FORMAT_VERSION,
};
