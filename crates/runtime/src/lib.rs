//! `weir`: exactly-once streaming pipelines on actix actors and Apache Arrow.
//!
//! A pipeline reads sources (folders of CSV files), transforms them with operators (a
//! group-by aggregate) and writes sinks (parquet, CSV, the console, or an actor of yours),
//! epoch by epoch. Each epoch ends with a checkpoint barrier; with `checkpoint.path` set,
//! state goes into RocksDB and output becomes visible only once its checkpoint is durable,
//! so a run killed at any moment and started again writes every row exactly once.
//!
//! The `weir` command runs pipeline files. This crate runs the same pipelines inside your
//! own actix application.
//!
//! # Embedding a pipeline
//!
//! 1. **Describe it**: from a file ([`PipelineSpec::from_file`]), a TOML string
//!    ([`PipelineSpec::from_toml`]), or in code with [`PipelineBuilder`], which uses the
//!    file's vocabulary: the same types, keys and error messages. Validation reports every
//!    error at once and nothing runs until it passes.
//! 2. **Take its output** into one of your actors with a channel sink
//!    ([`PipelineBuilder::channel_sink`], or `type = "channel"` in TOML with
//!    [`Registry::add_channel`]): each committed epoch arrives as [`EpochOutput`] parts (a
//!    batch each, the last one marked) with its epoch number and output mode, and the
//!    pipeline waits for your actor's reply to each, so a slow actor slows the pipeline
//!    instead of filling memory. Until delivered, an epoch waits on disk beside the
//!    checkpoint, never in memory.
//! 3. **Start it** inside your running actix `System`: [`PipelineSpec::start`] gives every
//!    stage a thread (`Arbiter`) of its own; [`PipelineSpec::start_on`] uses arbiters you pass.
//! 4. **Watch and control it** with the [`PipelineHandle`]: [`PipelineHandle::wait`] for the
//!    result, [`PipelineHandle::stop`] for a graceful stop (a final checkpoint, commit, then
//!    the end), [`PipelineHandle::progress`] or [`PipelineHandle::progress_to`] for an
//!    [`EpochProgress`] record per epoch, [`PipelineHandle::pipeline_metrics`] for the live
//!    metrics (Prometheus text, busy / backpressured / idle shares, the bottleneck). Set
//!    `http.bind` (for example `.set("http.bind", "127.0.0.1:0")` on the builder) to have the
//!    pipeline serve them, with its dashboard, itself: [`PipelineHandle::http_address`] says
//!    where.
//!
//! ```
//! use actix::prelude::*;
//! use weir::{Component, EpochOutput, OutputMode, PipelineBuilder};
//!
//! /// Your actor: keeps the latest per-shop table.
//! #[derive(Default)]
//! struct Dashboard {
//!     last_epoch: u64,
//!     rows: usize,
//!     incoming: usize,
//! }
//!
//! impl Actor for Dashboard {
//!     type Context = Context<Self>;
//! }
//!
//! impl Handler<EpochOutput> for Dashboard {
//!     type Result = ();
//!     fn handle(&mut self, output: EpochOutput, _: &mut Context<Self>) {
//!         // After a restart, epochs up to the checkpoint may come again: skip them.
//!         if output.epoch.0 <= self.last_epoch {
//!             return;
//!         }
//!         // An epoch comes in parts, the last one marked; in complete mode together
//!         // they are the whole table.
//!         if output.part == 0 {
//!             self.incoming = 0;
//!         }
//!         self.incoming += output.batches.iter().map(|b| b.num_rows()).sum::<usize>();
//!         if output.last {
//!             self.last_epoch = output.epoch.0;
//!             self.rows = self.incoming;
//!         }
//!     }
//! }
//!
//! #[derive(Message)]
//! #[rtype(result = "usize")]
//! struct Rows;
//!
//! impl Handler<Rows> for Dashboard {
//!     type Result = usize;
//!     fn handle(&mut self, _: Rows, _: &mut Context<Self>) -> usize {
//!         self.rows
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let work = tempfile::tempdir()?;
//! std::fs::create_dir(work.path().join("in"))?;
//! std::fs::write(
//!     work.path().join("in/part-0.csv"),
//!     "File;Shop;Sale_Count\npart-0;north;3\npart-0;south;4\npart-0;north;5\n",
//! )?;
//!
//! let system = System::new();
//! let shops = system.block_on(async {
//!     let dashboard = Dashboard::default().start();
//!     let spec = PipelineBuilder::new("shop_sales")
//!         .set("checkpoint.path", work.path().join("state").display().to_string())
//!         .set("trigger.available_now", true)
//!         .source(
//!             "sales",
//!             Component::new("csv")
//!                 .set("path", work.path().join("in").display().to_string())
//!                 .set("schema", "File STRING, Shop STRING, Sale_Count INT")
//!                 .set("header", true)
//!                 .set("sep", ";"),
//!         )
//!         .operator(
//!             "by_shop",
//!             Component::new("aggregate")
//!                 .input("sales")
//!                 .set("group_by", vec!["Shop"])
//!                 .set("aggregates", vec!["sum(Sale_Count)"]),
//!         )
//!         .channel_sink("dashboard", "by_shop", OutputMode::Complete, dashboard.clone().recipient())
//!         .build()?;
//!     let handle = spec.start()?;
//!     let mut progress = handle.progress();
//!     let last_epoch = handle.wait().await?;
//!     let record = progress.recv().await?;
//!     assert_eq!((record.epoch, record.input_rows), (last_epoch.0, 3));
//!     Ok::<_, Box<dyn std::error::Error>>(dashboard.send(Rows).await?)
//! })?;
//! assert_eq!(shops, 2);
//! # Ok(())
//! # }
//! ```
//!
//! # Custom components
//!
//! A source, operator or sink type of your own is a config type (serde), a spec that
//! validates it against the input schema ([`SourceSpec`], [`OperatorSpec`], [`SinkSpec`]),
//! and the running component ([`Source`], [`Operator`], [`Sink`]). Register its factory in a
//! [`Registry`] under a `type` name and pipeline files can use it. The repository's
//! `examples/custom_source.rs`, `examples/custom_sink.rs` and `examples/custom_operator.rs`
//! show one of each.

mod actors;
mod builder;
mod channel;
mod graph;
#[cfg(feature = "http")]
mod http;
mod kafka;
mod metrics;
mod nats;
mod pipeline;
mod registry;
mod spec;

pub use actors::StageMetrics;
pub use builder::{Component, PipelineBuilder};
pub use channel::EpochOutput;
pub use graph::{GraphEdge, GraphNode, GraphView};
pub use metrics::{PipelineMetrics, StageRates, RATIO_WINDOW, SAMPLE_EVERY};
pub use pipeline::{PipelineHandle, PlanChange, ResumePlan, Stopper};
pub use registry::{ComponentConfig, OperatorSpec, Registry, SinkPlace, SinkSpec, SourceSpec};
pub use spec::{CheckpointSettings, ConfigErrors, HttpSettings, PipelineSpec};
pub use weir_checkpoint::{
    find_bottleneck, utc_timestamp, Bottleneck, CheckpointStore, EpochProgress, Manifest,
    PhaseDurations, StageLoad, StageProgress, StageSummary, StoreError, Surveyed, Trigger,
};
pub use weir_core::{
    failure_point, Barrier, BarrierKind, CheckpointFailure, ConfigError, Epoch, Error, Operator,
    OutputMode, Quota, Result, Sink, Source, StageSnapshot, StateDelta, StateEntries,
    StreamMessage, FAILURE_POINTS,
};
pub use weir_sink::{format_table, Table};
