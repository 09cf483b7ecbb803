//! `weir`: exactly-once streaming pipelines on actix actors and Apache Arrow.
//!
//! A pipeline is described in TOML (or built from a TOML string), validated once into a
//! [`PipelineSpec`] — every error at once, each naming its key — and started inside a running
//! actix `System` with [`PipelineSpec::start`], which returns a [`PipelineHandle`]: wait for
//! the run, stop it gracefully, watch per-epoch progress.
//!
//! ```no_run
//! use weir::{PipelineSpec, Registry};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let toml = r#"
//!     [trigger]
//!     available_now = true
//!
//!     [sources.sales]
//!     type = "csv"
//!     path = "data/stream_read"
//!     schema = "File STRING, Shop STRING, Sale_Count INT"
//!     header = true
//!     sep = ";"
//!
//!     [operators.by_shop]
//!     type = "aggregate"
//!     input = "sales"
//!     group_by = ["Shop"]
//!     aggregates = ["sum(Sale_Count)"]
//!
//!     [sinks.display]
//!     type = "console"
//!     input = "by_shop"
//!     output_mode = "complete"
//! "#;
//! let spec = PipelineSpec::from_toml(toml, "inline.toml", "shop_sales", &[], &Registry::default())?;
//! let system = actix::System::new();
//! let last_epoch = system.block_on(async move { spec.start()?.wait().await })?;
//! println!("committed up to epoch {last_epoch}");
//! # Ok(())
//! # }
//! ```
//!
//! Custom sources, operators and sinks plug in through the [`Registry`], keyed by the TOML
//! `type`.

mod actors;
mod graph;
mod pipeline;
mod registry;
mod spec;

pub use actors::StageMetrics;
pub use pipeline::{PipelineHandle, Stopper};
pub use registry::{ComponentConfig, OperatorSpec, Registry, SinkSpec, SourceSpec};
pub use spec::{CheckpointSettings, ConfigErrors, PipelineSpec};
pub use weir_checkpoint::{
    CheckpointStore, EpochCompleted, Manifest, StageSummary, StoreError, Trigger,
};
pub use weir_core::{
    failure_point, Barrier, BarrierKind, ConfigError, Epoch, Error, Operator, OutputMode, Result,
    Sink, Source, StageSnapshot, StateDelta, StateEntries, StreamMessage, FAILURE_POINTS,
};
pub use weir_sink::format_table;
