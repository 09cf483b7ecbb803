//! `weir-source`: Weir's sources.
//!
//! [`CsvSourceConfig`] is the `type = "csv"` source: it watches a folder (or a glob), reads each
//! new file once, by Spark's CSV rules (malformed rows are kept, dropped or stop the run, as
//! the `mode` says), and returns Arrow batches in the schema given as a Spark DDL string. Validating the config gives a [`CsvSourceSettings`], whose `build()` gives
//! the running [`CsvSource`], an implementation of [`weir_core::Source`].
//!
//! ```no_run
//! use weir_core::{Quota, Source};
//! use weir_source::CsvSourceConfig;
//!
//! let config = CsvSourceConfig {
//!     path: "data/stream_read".into(),
//!     schema: "File STRING, Shop STRING, Sale_Count INT".into(),
//!     header: Some(true),
//!     sep: Some(";".into()),
//!     ..CsvSourceConfig::default()
//! };
//! let mut source = config.validate().unwrap().build();
//! source.discover().unwrap();
//! source.admit(Quota::All);
//! while let Some(batch) = source.next_batch().unwrap() {
//!     println!("{} rows", batch.num_rows());
//! }
//! ```

mod clean;
mod config;
mod csv;
mod decode;
mod json;
mod kafka;
mod last;
mod nats;
mod pool;
mod seen;
mod split;
mod times;
mod values;
mod watch;

pub use crate::config::{
    CleanSource, CsvSourceConfig, CsvSourceSettings, Format, Location, MalformedMode,
};
pub use crate::csv::CsvSource;
pub use crate::decode::BadRecord;
pub use crate::kafka::{
    KafkaSource, KafkaSourceConfig, KafkaSourceSettings, Topics as KafkaTopics,
};
pub use crate::nats::{
    connect as nats_connect, NatsRuntime, NatsSource, NatsSourceConfig, NatsSourceSettings,
    StartingSequence,
};
