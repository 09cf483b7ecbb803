//! The pipeline file: loading, layering (file, environment, `--set`), and validation that
//! reports every error at once before anything runs.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use arrow_schema::SchemaRef;
use config::{Config, Environment, FileFormat, Value, ValueKind};
use serde::Deserialize;
use weir_checkpoint::Trigger;
use weir_core::{
    bad_records_schema, ddl_type_name, find_column, is_event_time_type, parse_duration,
    parse_interval, ConfigError, EventTimeColumn, OutputMode,
};
use weir_sink::{FileFormat as SinkFormat, FileSinkConfig};

use crate::registry::{
    clean_serde_message, ComponentConfig, OperatorSpec, Registry, SinkSpec, SourceSpec,
};

mod topology;
mod validate;

use validate::Validator;

const TOP_LEVEL_KEYS: [&str; 7] = [
    "name",
    "checkpoint",
    "trigger",
    "http",
    "sources",
    "operators",
    "sinks",
];

/// Every problem found in a pipeline file; `weir validate` prints them all.
#[derive(Debug)]
pub struct ConfigErrors {
    /// The pipeline file, as the user named it.
    pub file: String,
    /// The problems, in the order of the file.
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if error.key.is_empty() {
                write!(f, "{}: {}", self.file, error.message)?;
            } else {
                write!(f, "{}: {}", self.file, error)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The `[checkpoint]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointConfig {
    /// Where checkpoint state lives.
    #[serde(default)]
    path: Option<String>,
    /// Time between checkpoints under the continuous trigger. Default `"1s"`.
    #[serde(default)]
    interval: Option<String>,
    /// Complete checkpoints kept. Default 3.
    #[serde(default)]
    retain: Option<i64>,
    /// Longest wait for every stage to answer a barrier. Default `"10m"`.
    #[serde(default)]
    timeout: Option<String>,
    /// Resume from the newest checkpoint that reads whole when the last one is damaged.
    /// Default false: damage stops the run.
    #[serde(default)]
    fall_back: Option<bool>,
}

/// The `[trigger]` table: at most one key.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerConfig {
    /// Start an epoch at this interval.
    #[serde(default)]
    processing_time: Option<String>,
    /// One epoch, then stop.
    #[serde(default)]
    once: Option<bool>,
    /// Everything available at start, in epochs, then stop.
    #[serde(default)]
    available_now: Option<bool>,
}

/// The `[http]` table: the metrics and dashboard server, off unless `bind` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HttpConfig {
    /// Address and port to listen on, such as `"127.0.0.1:9180"`, or a port alone for
    /// loopback (`"9180"`); port 0 takes a free one.
    #[serde(default)]
    bind: Option<String>,
}

/// HTTP server settings after validation.
#[derive(Debug, Clone, Default)]
pub struct HttpSettings {
    /// Where the server listens; `None` (the default) runs no server. It serves read-only
    /// GET endpoints: `/metrics`, `/api/...` and the dashboard at `/`.
    pub bind: Option<std::net::SocketAddr>,
}

/// Checkpoint settings after validation.
#[derive(Debug, Clone)]
pub struct CheckpointSettings {
    /// Where checkpoint state lives, if set.
    pub path: Option<PathBuf>,
    /// Time between checkpoints under the continuous trigger.
    pub interval: Duration,
    /// Complete checkpoints kept.
    pub retain: usize,
    /// Longest wait for every stage to answer a barrier before the run fails.
    pub timeout: Duration,
    /// Resume from the newest checkpoint that reads whole, after repairing what RocksDB can,
    /// instead of stopping at a damaged one (`checkpoint.fall_back`, `weir run --fall-back`).
    pub fall_back: bool,
}

/// Where a stage's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Upstream {
    Source(usize),
    Operator(usize),
    /// The rows source `i` rejected (its `bad_records_path`).
    BadRecords(usize),
}

pub(crate) struct SourceNode {
    pub(crate) name: String,
    pub(crate) type_name: String,
    pub(crate) spec: Box<dyn SourceSpec>,
    /// The watermark this source computes, if its table sets one.
    pub(crate) watermark: Option<WatermarkSpec>,
}

pub(crate) struct OperatorNode {
    pub(crate) name: String,
    pub(crate) type_name: String,
    pub(crate) inputs: Vec<Upstream>,
    pub(crate) spec: Box<dyn OperatorSpec>,
    /// The watermark this operator computes over its output, if its table sets one.
    pub(crate) watermark: Option<WatermarkSpec>,
    /// The watermarked event-time column of the operator's output: its own, or its
    /// input's while that column passes through.
    pub(crate) event_time: Option<EventTimeColumn>,
}

/// A stage's `watermark = { column = "ts", delay = "10 minutes" }`, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct WatermarkConfig {
    /// The event-time column (TIMESTAMP or DATE) of the stage's output.
    column: String,
    /// How late a row may arrive: a Spark interval (`"10 minutes"`) or a duration (`"10m"`).
    delay: String,
}

/// A validated watermark: the watermark is the largest value of the column seen, minus the
/// delay, advanced at every barrier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatermarkSpec {
    /// The column's name, as the schema spells it.
    pub(crate) column: String,
    /// The column's index in the stage's output.
    pub(crate) index: usize,
    /// The delay in microseconds.
    pub(crate) delay_us: i64,
}

impl WatermarkSpec {
    pub(crate) fn event_time(&self) -> EventTimeColumn {
        EventTimeColumn {
            column: self.column.clone(),
            delay_us: self.delay_us,
        }
    }

    /// `watermark(ts, 10 minutes)`, for `weir graph` and the fingerprint.
    pub(crate) fn describe(&self) -> String {
        format!(
            "watermark({}, {}s)",
            self.column,
            self.delay_us as f64 / 1e6
        )
    }
}

pub(crate) struct SinkNode {
    pub(crate) name: String,
    pub(crate) type_name: String,
    pub(crate) inputs: Vec<Upstream>,
    pub(crate) mode: OutputMode,
    pub(crate) spec: Box<dyn SinkSpec>,
    /// The key that sets the sink's folder, for errors about it.
    pub(crate) path_key: String,
}

/// A validated pipeline: every name resolves, every schema fits, every output mode is allowed.
/// Building its actors cannot fail on configuration.
pub struct PipelineSpec {
    /// The pipeline's name (`name`, or the file's stem).
    pub name: String,
    /// Checkpoint settings.
    pub checkpoint: CheckpointSettings,
    /// When epochs start and end.
    pub trigger: Trigger,
    /// The metrics and dashboard server.
    pub http: HttpSettings,
    pub(crate) sources: Vec<SourceNode>,
    /// In the file's order, so that `Upstream::Operator(i)` indexes them.
    pub(crate) operators: Vec<OperatorNode>,
    /// Indices into `operators` in an order where each comes after the operators it reads.
    pub(crate) operator_order: Vec<usize>,
    pub(crate) sinks: Vec<SinkNode>,
}

impl PipelineSpec {
    /// Reads and validates a pipeline file. `overrides` are `--set key=value` pairs; `WEIR_`
    /// environment variables with `__` between key parts (`WEIR_SINKS__ARCHIVE__PATH`) apply
    /// too, below the overrides.
    pub fn from_file(
        path: &Path,
        overrides: &[(String, String)],
        registry: &Registry,
    ) -> Result<PipelineSpec, ConfigErrors> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
            file: file.clone(),
            errors: vec![ConfigError::new(
                "",
                format!("cannot read the pipeline file: {e}"),
            )],
        })?;
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("pipeline");
        Self::from_toml(&text, &file, stem, overrides, registry)
    }

    /// Validates a pipeline given as TOML text; `file` names it in error messages and
    /// `default_name` is used when the text sets no `name`.
    pub fn from_toml(
        text: &str,
        file: &str,
        default_name: &str,
        overrides: &[(String, String)],
        registry: &Registry,
    ) -> Result<PipelineSpec, ConfigErrors> {
        let fail = |errors| ConfigErrors {
            file: file.to_string(),
            errors,
        };
        // toml first: it knows lines and columns, which the layered view no longer has.
        if let Err(e) = toml::from_str::<toml::Table>(text) {
            let at = e
                .span()
                .map(|span| line_column(text, span.start))
                .map(|(line, column)| format!("line {line}, column {column}: "))
                .unwrap_or_default();
            return Err(fail(vec![ConfigError::new(
                "",
                format!("{at}malformed TOML: {}", e.message().trim()),
            )]));
        }
        let root = layered(text, overrides).map_err(|e| fail(vec![e]))?;
        Validator::new(registry, default_name)
            .run(root)
            .map_err(fail)
    }
}

/// `http.bind`: `IP:port`, or a port alone (`9180`, `:9180`) or `localhost:port`, which are
/// loopback: only an explicit address listens beyond this machine.
fn bind_address(text: &str) -> Option<std::net::SocketAddr> {
    let text = text.trim();
    let loopback = |port: &str| {
        port.parse::<u16>()
            .ok()
            .map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    };
    if let Some(port) = text.strip_prefix("localhost:").or(text.strip_prefix(':')) {
        return loopback(port);
    }
    text.parse().ok().or_else(|| loopback(text))
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

/// The file, then `WEIR_…` environment variables, then `--set` overrides.
fn layered(
    text: &str,
    overrides: &[(String, String)],
) -> Result<BTreeMap<String, Value>, ConfigError> {
    // Only variables with a nested key are pipeline settings; WEIR_LOG and friends are not.
    let vars: config::Map<String, String> = std::env::vars()
        .filter(|(k, _)| {
            k.strip_prefix("WEIR_")
                .is_some_and(|rest| rest.contains("__"))
        })
        .collect();
    let mut builder = Config::builder()
        .add_source(config::File::from_str(text, FileFormat::Toml))
        .add_source(
            Environment::with_prefix("WEIR")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(vars)),
        );
    for (key, value) in overrides {
        builder = builder
            .set_override(key.as_str(), override_value(value))
            .map_err(|e| ConfigError::new(key.clone(), format!("bad --set: {e}")))?;
    }
    let config = builder
        .build()
        .map_err(|e| ConfigError::new("", clean_serde_message(&e.to_string())))?;
    config
        .try_deserialize::<BTreeMap<String, Value>>()
        .map_err(|e| ConfigError::new("", clean_serde_message(&e.to_string())))
}

/// A `--set` value is read as a TOML value when it is one (`true`, `3`, `["a", "b"]`), and as
/// a string otherwise (`./data/out`).
fn override_value(text: &str) -> Value {
    let parsed = toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .and_then(|v| v.try_into::<Value>().ok());
    parsed.unwrap_or_else(|| Value::new(None, ValueKind::String(text.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_alone_listens_on_loopback_and_anything_else_must_be_an_address() {
        let at = |text: &str| bind_address(text).map(|a| a.to_string());
        assert_eq!(at("127.0.0.1:9180").as_deref(), Some("127.0.0.1:9180"));
        assert_eq!(at("9180").as_deref(), Some("127.0.0.1:9180"));
        assert_eq!(at(":0").as_deref(), Some("127.0.0.1:0"));
        assert_eq!(at("localhost:9180").as_deref(), Some("127.0.0.1:9180"));
        assert_eq!(at("0.0.0.0:9180").as_deref(), Some("0.0.0.0:9180"));
        assert_eq!(at("[::1]:9180").as_deref(), Some("[::1]:9180"));
        for bad in ["localhost", "9180x", "70000", "example.com:80", ""] {
            assert_eq!(at(bad), None, "{bad}");
        }
    }
}
