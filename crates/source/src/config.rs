//! The CSV source's configuration: the table as written ([`CsvSourceConfig`]), and its
//! validation into [`CsvSourceSettings`], which the running source (`csv.rs`) reads.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::Deserialize;
use weir_core::{parse_ddl, ConfigError, Result};

use crate::times::{TimeOptions, TimeParsing};

/// The `type = "csv"` source as written in the pipeline file. Names follow Spark's CSV options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSourceConfig {
    /// Folder watched for new files, or a glob such as `data/in/*.csv`.
    pub path: String,
    /// The columns, as a Spark DDL string: `"File STRING, Shop STRING, Sale_Count INT"`.
    pub schema: String,
    /// Whether the first line of every file is a header to skip. Default `false`, as in Spark.
    #[serde(default)]
    pub header: bool,
    /// Field separator, one character. Default `","`.
    #[serde(default = "default_sep")]
    pub sep: String,
    /// Quote character, one character. Default `"`.
    #[serde(default = "default_quote")]
    pub quote: String,
    /// Escape character inside quoted fields, one character. Default `\`, as in Spark.
    #[serde(default = "default_escape")]
    pub escape: String,
    /// At most this many new files per epoch (not for `once`). Default: no limit.
    #[serde(default)]
    pub max_files_per_trigger: Option<usize>,
    /// Read the newest files first when there is a backlog. Default `false`.
    #[serde(default)]
    pub latest_first: bool,
    /// Rows per Arrow batch. Default 32768.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// What a malformed row (a value that does not parse as its column's type, too few or
    /// too many fields) does, as Spark's `mode`: `"permissive"` (default) keeps the row with
    /// nulls where values are bad, `"dropmalformed"` drops it, `"failfast"` stops the run
    /// with `path:line: reason`. Case does not matter.
    #[serde(default)]
    pub mode: Option<String>,
    /// Permissive mode only: a STRING column that holds the raw line of every malformed row
    /// and is null otherwise (Spark's `columnNameOfCorruptRecord`). Added after the schema's
    /// columns unless the schema names it.
    #[serde(default)]
    pub corrupt_record_column: Option<String>,
    /// A folder where every malformed row is written (file, line, reason, the row as read),
    /// committed with the same epoch as the good rows (Databricks' `badRecordsPath`).
    #[serde(default)]
    pub bad_records_path: Option<String>,
    /// How TIMESTAMP columns are written, as a Spark pattern (`"dd/MM/yyyy HH:mm"`; Spark's
    /// `timestampFormat`). Default: ISO 8601 or `yyyy-MM-dd HH:mm:ss[.SSSSSS]`.
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// How DATE columns are written, as a Spark pattern (`"dd.MM.yyyy"`; Spark's
    /// `dateFormat`). Default: `yyyy-MM-dd`.
    #[serde(default)]
    pub date_format: Option<String>,
    /// The zone of timestamps written without an offset (Spark's `timeZone`): `"UTC"`, an
    /// offset such as `"+02:00"`, or a region such as `"Europe/Paris"`. Default UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
}

/// What the CSV source does with a malformed row (Spark's `mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MalformedMode {
    /// Keep the row, with nulls for the values that are bad or missing.
    #[default]
    Permissive,
    /// Drop the row and count it.
    DropMalformed,
    /// Stop the run at the row.
    FailFast,
}

impl MalformedMode {
    /// The name used in the pipeline file.
    pub fn name(self) -> &'static str {
        match self {
            MalformedMode::Permissive => "permissive",
            MalformedMode::DropMalformed => "dropmalformed",
            MalformedMode::FailFast => "failfast",
        }
    }
}

fn default_sep() -> String {
    ",".into()
}
fn default_quote() -> String {
    "\"".into()
}
fn default_escape() -> String {
    "\\".into()
}
fn default_batch_size() -> usize {
    32768
}

impl Default for CsvSourceConfig {
    fn default() -> Self {
        CsvSourceConfig {
            path: String::new(),
            schema: String::new(),
            header: false,
            sep: default_sep(),
            quote: default_quote(),
            escape: default_escape(),
            max_files_per_trigger: None,
            latest_first: false,
            batch_size: default_batch_size(),
            mode: None,
            corrupt_record_column: None,
            bad_records_path: None,
            timestamp_format: None,
            date_format: None,
            time_zone: None,
        }
    }
}

/// A validated [`CsvSourceConfig`]: nothing about it can be wrong any more.
#[derive(Debug, Clone)]
pub struct CsvSourceSettings {
    /// Where files are found.
    pub location: Location,
    /// The schema of the batches the source emits: the columns read, and the corrupt-record
    /// column if there is one.
    pub schema: SchemaRef,
    /// Where malformed rows are written, if anywhere.
    pub bad_records_path: Option<PathBuf>,
    /// The columns read from the files.
    pub(crate) parsed: SchemaRef,
    /// Where the corrupt-record column is in [`Self::schema`].
    pub(crate) corrupt_at: Option<usize>,
    /// How each time column's values are read.
    pub(crate) times: TimeParsing,
    pub(crate) mode: MalformedMode,
    pub(crate) header: bool,
    pub(crate) sep: u8,
    pub(crate) quote: u8,
    pub(crate) escape: u8,
    pub(crate) max_files_per_trigger: Option<usize>,
    pub(crate) latest_first: bool,
    pub(crate) batch_size: usize,
}

/// Where a file source finds its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Every file directly inside this folder.
    Folder(PathBuf),
    /// Every file matching this glob pattern.
    Glob(String),
}

impl Location {
    /// The folder that holds the files: the folder itself, or the part of a glob before its
    /// first wildcard.
    pub fn root(&self) -> PathBuf {
        match self {
            Location::Folder(dir) => dir.clone(),
            Location::Glob(pattern) => {
                let wild = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
                let head = &pattern[..wild];
                match head.rfind('/') {
                    Some(slash) => PathBuf::from(&head[..=slash]),
                    None => PathBuf::from("."),
                }
            }
        }
    }
}

impl CsvSourceConfig {
    /// Checks every option and reports every problem, with keys relative to the source.
    pub fn validate(&self) -> Result<CsvSourceSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let schema = parse_ddl(&self.schema)
            .map_err(|e| {
                errors.push(ConfigError::new(
                    "schema",
                    format!("\"{}\" {e}", self.schema),
                ))
            })
            .ok();
        let mut byte = |key: &str, value: &str| match value.as_bytes() {
            [b] if b.is_ascii() => *b,
            _ => {
                errors.push(ConfigError::new(
                    key,
                    format!("\"{value}\" must be exactly one ASCII character"),
                ));
                0
            }
        };
        let (sep, quote, escape) = (
            byte("sep", &self.sep),
            byte("quote", &self.quote),
            byte("escape", &self.escape),
        );
        if self.path.trim().is_empty() {
            errors.push(ConfigError::new("path", "must name a folder or a glob"));
        }
        if self.max_files_per_trigger == Some(0) {
            errors.push(ConfigError::new(
                "max_files_per_trigger",
                "must be at least 1",
            ));
        }
        if self.batch_size == 0 {
            errors.push(ConfigError::new("batch_size", "must be at least 1"));
        }
        let mode = match self.mode.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("permissive") => MalformedMode::Permissive,
            Some("dropmalformed") => MalformedMode::DropMalformed,
            Some("failfast") => MalformedMode::FailFast,
            Some(_) => {
                errors.push(ConfigError::new(
                    "mode",
                    format!(
                        "unknown mode \"{}\" (expected \"permissive\", \"dropmalformed\" or \"failfast\")",
                        self.mode.as_deref().unwrap_or_default()
                    ),
                ));
                MalformedMode::Permissive
            }
        };
        let columns = schema.as_ref().map(|s| self.columns(s, mode, &mut errors));
        let times = columns.as_ref().map(|(parsed, _, _)| {
            TimeOptions {
                timestamp_format: self.timestamp_format.as_deref(),
                date_format: self.date_format.as_deref(),
                time_zone: self.time_zone.as_deref(),
            }
            .validate(parsed, &mut errors)
        });
        if self
            .bad_records_path
            .as_deref()
            .is_some_and(|p| p.trim().is_empty())
        {
            errors.push(ConfigError::new("bad_records_path", "must name a folder"));
        }
        let location = if self.path.contains(['*', '?', '[']) {
            if let Err(e) = glob::Pattern::new(&self.path) {
                errors.push(ConfigError::new(
                    "path",
                    format!("\"{}\" is not a valid glob: {e}", self.path),
                ));
            }
            Location::Glob(self.path.clone())
        } else {
            Location::Folder(PathBuf::from(&self.path))
        };
        match (columns, times, errors.is_empty()) {
            (Some((parsed, schema, corrupt_at)), Some(times), true) => Ok(CsvSourceSettings {
                location,
                schema,
                bad_records_path: self.bad_records_path.as_ref().map(PathBuf::from),
                parsed,
                corrupt_at,
                times,
                mode,
                header: self.header,
                sep,
                quote,
                escape,
                max_files_per_trigger: self.max_files_per_trigger,
                latest_first: self.latest_first,
                batch_size: self.batch_size,
            }),
            _ => Err(errors),
        }
    }
}

impl CsvSourceConfig {
    /// The columns read from the files, the columns emitted, and where the corrupt-record
    /// column is among the latter.
    fn columns(
        &self,
        schema: &SchemaRef,
        mode: MalformedMode,
        errors: &mut Vec<ConfigError>,
    ) -> (SchemaRef, SchemaRef, Option<usize>) {
        let Some(name) = &self.corrupt_record_column else {
            return (schema.clone(), schema.clone(), None);
        };
        if mode != MalformedMode::Permissive {
            errors.push(ConfigError::new(
                "corrupt_record_column",
                format!(
                    "only applies with mode = \"permissive\" (mode is \"{}\"): other modes keep no malformed row",
                    mode.name()
                ),
            ));
        }
        if name.trim().is_empty() {
            errors.push(ConfigError::new(
                "corrupt_record_column",
                "must name a column",
            ));
        }
        match schema.index_of(name) {
            Ok(at) => {
                let field = schema.field(at);
                if field.data_type() != &DataType::Utf8 || !field.is_nullable() {
                    errors.push(ConfigError::new(
                        "corrupt_record_column",
                        format!(
                            "column `{name}` is in the schema, so it must be a nullable STRING"
                        ),
                    ));
                }
                let mut parsed: Vec<_> = schema.fields().iter().cloned().collect();
                parsed.remove(at);
                (Arc::new(Schema::new(parsed)), schema.clone(), Some(at))
            }
            Err(_) => {
                let mut output: Vec<_> = schema.fields().iter().cloned().collect();
                output.push(Arc::new(Field::new(name, DataType::Utf8, true)));
                let at = output.len() - 1;
                (schema.clone(), Arc::new(Schema::new(output)), Some(at))
            }
        }
    }
}
