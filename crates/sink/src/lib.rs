//! `weir-sink`: Weir's sinks.
//!
//! - [`ConsoleSinkConfig`] (`type = "console"`) prints each epoch's rows as a table, like
//!   Spark's console sink. [`format_table`] is the same rendering, for `weir show`.
//! - [`FileSinkConfig`] (`type = "parquet"`, `"csv"` and `"json"`) writes files in two phases: an
//!   epoch's rows go to a hidden in-progress file under `_tmp/`, which becomes *pending* at the
//!   epoch's barrier and is renamed to its final, visible name when the epoch commits. Readers
//!   of the folder (DuckDB, pyarrow, Spark, `weir show`) never see a partial file.
//!
//! ```no_run
//! use weir_core::{parse_ddl, Epoch, OutputMode, Sink};
//! use weir_sink::{FileFormat, FileSinkConfig};
//!
//! let schema = parse_ddl("Shop STRING, Sale_Count INT").unwrap();
//! let config = FileSinkConfig { path: "out".into(), ..FileSinkConfig::default() };
//! let settings = config.validate(FileFormat::Parquet, &schema, OutputMode::Append).unwrap();
//! let mut sink = settings.build().unwrap();
//! sink.pre_commit(Epoch(1)).unwrap();
//! sink.commit(Epoch(1)).unwrap();
//! ```

mod console;
mod file;
mod partition;

pub use console::{format_table, ConsoleSink, ConsoleSinkConfig, Table};
pub use file::{FileFormat, FileSink, FileSinkConfig, FileSinkSettings, EPOCH_COLUMN, TMP_DIR};
