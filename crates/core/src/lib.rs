//! `weir-core`: the vocabulary every Weir crate shares.
//!
//! Sources, operators and sinks never depend on each other, only on this crate. It holds the
//! message that travels on every data edge ([`StreamMessage`], wrapped in an [`Envelope`] that
//! names the input port), the checkpoint [`Barrier`] and its [`Epoch`], the Spark-style
//! [`OutputMode`], the DDL schema parser, the component traits ([`Source`], [`Operator`],
//! [`Sink`]) and the error types.
//!
//! ```
//! use weir_core::{parse_ddl, Barrier, BarrierKind, Epoch};
//!
//! let schema = parse_ddl("File STRING, Shop STRING, Sale_Count INT").unwrap();
//! assert_eq!(schema.fields().len(), 3);
//! let barrier = Barrier { epoch: Epoch(1), kind: BarrierKind::Checkpoint };
//! assert_eq!(barrier.epoch.next(), Epoch(2));
//! ```

mod component;
mod duration;
mod error;
mod event_time;
mod message;
mod schema;
mod state;
mod time_format;

pub use component::{InputCleaner, Operator, Quota, Sink, Source};
pub use duration::{duration_key, parse_duration, parse_interval};
pub use error::{CheckpointFailure, ConfigError, Error, Result};
pub use event_time::{
    event_times, is_event_time_type, time_range, EventTimeColumn, EVENT_TIME_KEY,
};
pub use message::{Barrier, BarrierKind, Envelope, Epoch, OutputMode, StreamMessage};
pub use schema::{
    bad_records_schema, ddl_type_name, find_column, parse_ddl, DdlError, SUPPORTED_TYPES, UTC,
};
pub use state::{failure_point, StageSnapshot, StateDelta, StateEntries, FAILURE_POINTS};
pub use time_format::java_to_chrono;
