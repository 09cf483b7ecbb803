//! The CSV source's configuration: the table as written ([`CsvSourceConfig`]), and its
//! validation into [`CsvSourceSettings`], which the running source (`csv.rs`) reads.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::Deserialize;
use weir_core::{parse_ddl, parse_duration, ConfigError, Result};

use crate::times::{TimeOptions, TimeParsing};

/// The `type = "csv"` and `type = "json"` file sources as written in the pipeline file. Names
/// follow Spark's CSV and JSON options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvSourceConfig {
    /// How the files are written: set by the source's `type`, not by a key of its own.
    #[serde(skip)]
    pub format: Format,
    /// Folder watched for new files, or a glob such as `data/in/*.csv`.
    pub path: String,
    /// The columns, as a Spark DDL string: `"File STRING, Shop STRING, Sale_Count INT"`.
    pub schema: String,
    /// csv only: whether the first line of every file is a header to skip. Default `false`,
    /// as in Spark.
    #[serde(default)]
    pub header: Option<bool>,
    /// csv only: field separator, one character. Default `","`.
    #[serde(default)]
    pub sep: Option<String>,
    /// csv only: quote character, one character. Default `"`.
    #[serde(default)]
    pub quote: Option<String>,
    /// csv only: escape character inside quoted fields, one character. Default `\`, as in
    /// Spark.
    #[serde(default)]
    pub escape: Option<String>,
    /// At most this many new files per epoch (not for `once`). Default: no limit.
    #[serde(default)]
    pub max_files_per_trigger: Option<usize>,
    /// At most about this many bytes of new files per epoch (not for `once`; Spark's
    /// `maxBytesPerTrigger`): a number of bytes or a size such as `"64MiB"` or `"1GB"`. An
    /// epoch takes at least one file, however large. Default: no limit.
    #[serde(default)]
    pub max_bytes_per_trigger: Option<bytesize::ByteSize>,
    /// Files modified more than this long before the newest file read so far are ignored,
    /// and finished files that old are forgotten, so that memory and the checkpoint do not
    /// grow with every file ever read (Spark's `maxFileAge`). Default `"7d"`. Not applied
    /// when `latest_first` comes with a per-trigger limit, as in Spark.
    #[serde(default)]
    pub max_file_age: Option<String>,
    /// Learn of new files from file-system notifications (inotify) rather than by listing
    /// the folder at every poll of the continuous and `processing_time` triggers. Default
    /// `true`; `false` lists every time (for file systems that send no notifications).
    #[serde(default = "default_true")]
    pub watch: bool,
    /// With `watch`: the folder is still listed in full this often, in case notifications
    /// were lost. Default `"30s"`.
    #[serde(default)]
    pub full_listing_interval: Option<String>,
    /// Read the newest files first when there is a backlog. Default `false`.
    #[serde(default)]
    pub latest_first: bool,
    /// Rows per Arrow batch. Default 32768.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Files over 64 KiB decoded at once (the one being read and those after it), each on a
    /// thread of the source's pool. Default 2.
    #[serde(default)]
    pub decode_threads: Option<usize>,
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
    /// What happens to a file once the epoch that finished reading it has committed (Spark's
    /// `cleanSource`): `"off"` (default) leaves it, `"delete"` deletes it, `"archive"` moves
    /// it into `source_archive_dir`. Never before every sink has committed its rows.
    #[serde(default)]
    pub clean_source: Option<String>,
    /// With `clean_source = "archive"`: where finished files move, each at its path below the
    /// source's folder (or the fixed part of its glob). Must be outside that folder.
    #[serde(default)]
    pub source_archive_dir: Option<String>,
}

/// How a file source's files are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Delimited text, read by Spark's CSV rules (`type = "csv"`).
    #[default]
    Csv,
    /// JSON lines: one object per line, read by Spark's JSON rules (`type = "json"`).
    Json,
}

impl Format {
    /// The source `type` that reads it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// What the CSV source does with a file once the epoch that finished it has committed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CleanSource {
    /// Leave it (Spark's default).
    #[default]
    Off,
    /// Delete it.
    Delete,
    /// Move it into this folder.
    Archive(PathBuf),
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

fn default_true() -> bool {
    true
}

fn default_batch_size() -> usize {
    32768
}

impl Default for CsvSourceConfig {
    fn default() -> Self {
        CsvSourceConfig {
            format: Format::Csv,
            path: String::new(),
            schema: String::new(),
            header: None,
            sep: None,
            quote: None,
            escape: None,
            max_files_per_trigger: None,
            latest_first: false,
            max_bytes_per_trigger: None,
            max_file_age: None,
            watch: true,
            full_listing_interval: None,
            batch_size: default_batch_size(),
            decode_threads: None,
            mode: None,
            corrupt_record_column: None,
            bad_records_path: None,
            timestamp_format: None,
            date_format: None,
            time_zone: None,
            clean_source: None,
            source_archive_dir: None,
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
    pub(crate) format: Format,
    pub(crate) header: bool,
    pub(crate) sep: u8,
    pub(crate) quote: u8,
    pub(crate) escape: u8,
    pub(crate) max_files_per_trigger: Option<usize>,
    pub(crate) max_bytes_per_trigger: Option<u64>,
    /// `None` when files never age out.
    pub(crate) max_file_age: Option<Duration>,
    pub(crate) watch: bool,
    pub(crate) full_listing_interval: Duration,
    pub(crate) latest_first: bool,
    pub(crate) batch_size: usize,
    pub(crate) decode_threads: usize,
    pub(crate) clean_source: CleanSource,
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
            Location::Glob(pattern) => match glob_head(pattern) {
                "" => PathBuf::from("."),
                head => PathBuf::from(head),
            },
        }
    }
}

/// A glob's fixed part: the pattern up to the last `/` before its first wildcard, with that
/// `/`, or nothing. Every path the glob matches starts with it, as text.
pub(crate) fn glob_head(pattern: &str) -> &str {
    let wild = pattern.find(['*', '?', '[']).unwrap_or(pattern.len());
    pattern[..wild]
        .rfind('/')
        .map_or("", |slash| &pattern[..=slash])
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
        let format = self.format;
        let mut byte = |key: &str, value: &Option<String>, default: u8| match value.as_deref() {
            None => default,
            Some(_) if format != Format::Csv => {
                errors.push(csv_only(key, format));
                default
            }
            Some(value) => match value.as_bytes() {
                [b] if b.is_ascii() => *b,
                _ => {
                    errors.push(ConfigError::new(
                        key,
                        format!("\"{value}\" must be exactly one ASCII character"),
                    ));
                    0
                }
            },
        };
        let (sep, quote, escape) = (
            byte("sep", &self.sep, b','),
            byte("quote", &self.quote, b'"'),
            byte("escape", &self.escape, b'\\'),
        );
        if self.header.is_some() && format != Format::Csv {
            errors.push(csv_only("header", format));
        }
        if self.path.trim().is_empty() {
            errors.push(ConfigError::new("path", "must name a folder or a glob"));
        }
        if self.max_files_per_trigger == Some(0) {
            errors.push(ConfigError::new(
                "max_files_per_trigger",
                "must be at least 1",
            ));
        }
        if self.decode_threads == Some(0) {
            errors.push(ConfigError::new("decode_threads", "must be at least 1"));
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
        let clean_source = self.clean_source(&location, &mut errors);
        let (max_bytes_per_trigger, max_file_age) = self.limits(&mut errors);
        let full_listing_interval = match self.full_listing_interval.as_deref().map(parse_duration)
        {
            None => DEFAULT_FULL_LISTING_INTERVAL,
            Some(Ok(interval)) => interval,
            Some(Err(e)) => {
                errors.push(ConfigError::new("full_listing_interval", e));
                DEFAULT_FULL_LISTING_INTERVAL
            }
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
                format,
                header: self.header.unwrap_or(false),
                sep,
                quote,
                escape,
                max_files_per_trigger: self.max_files_per_trigger,
                max_bytes_per_trigger,
                max_file_age,
                watch: self.watch,
                full_listing_interval,
                latest_first: self.latest_first,
                batch_size: self.batch_size,
                decode_threads: self.decode_threads.unwrap_or(DEFAULT_DECODE_THREADS),
                clean_source,
            }),
            _ => Err(errors),
        }
    }
}

/// A CSV option set on a source of another format.
fn csv_only(key: &str, format: Format) -> ConfigError {
    ConfigError::new(
        key,
        format!(
            "applies to csv sources only (this source is type = \"{}\")",
            format.name()
        ),
    )
}

/// Spark's `maxFileAge` default.
const DEFAULT_MAX_FILE_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Two files decoding at once keep two cores busy on large files, as the machines Weir is
/// measured on have; more buffers more rows ahead (a few MB per file).
const DEFAULT_DECODE_THREADS: usize = 2;

/// How often a watched folder is listed in full anyway.
const DEFAULT_FULL_LISTING_INTERVAL: Duration = Duration::from_secs(30);

impl CsvSourceConfig {
    /// `max_bytes_per_trigger`, and `max_file_age` as it applies (`None`: never).
    fn limits(&self, errors: &mut Vec<ConfigError>) -> (Option<u64>, Option<Duration>) {
        let bytes = self.max_bytes_per_trigger.map(|b| b.as_u64());
        if bytes == Some(0) {
            errors.push(ConfigError::new(
                "max_bytes_per_trigger",
                "must be at least 1 byte (leave it out for no limit)",
            ));
        }
        let age = match self.max_file_age.as_deref().map(parse_duration) {
            None => DEFAULT_MAX_FILE_AGE,
            Some(Ok(age)) => age,
            Some(Err(e)) => {
                errors.push(ConfigError::new("max_file_age", e));
                DEFAULT_MAX_FILE_AGE
            }
        };
        // With the newest files first, what is left for later is older than what was read:
        // ageing it out would drop a backlog the limit only postponed (Spark's rule too).
        let limited = self.max_files_per_trigger.is_some() || bytes.is_some();
        let age = (!(self.latest_first && limited)).then_some(age);
        (bytes, age)
    }

    /// `clean_source` and `source_archive_dir`, checked against each other and the folder.
    fn clean_source(&self, location: &Location, errors: &mut Vec<ConfigError>) -> CleanSource {
        let how = self.clean_source.as_deref().map(str::to_ascii_lowercase);
        let archive = self.source_archive_dir.as_deref();
        match (how.as_deref(), archive) {
            (None | Some("off") | Some("delete"), Some(_)) => {
                errors.push(ConfigError::new(
                    "source_archive_dir",
                    "only applies with clean_source = \"archive\"",
                ));
                CleanSource::Off
            }
            (None | Some("off"), None) => CleanSource::Off,
            (Some("delete"), None) => CleanSource::Delete,
            (Some("archive"), None) => {
                errors.push(ConfigError::new(
                    "source_archive_dir",
                    "is required with clean_source = \"archive\" (the folder finished files move to)",
                ));
                CleanSource::Off
            }
            (Some("archive"), Some(dir)) => {
                let absolute =
                    |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
                let (dir, root) = (PathBuf::from(dir), location.root());
                if dir.as_os_str().is_empty() {
                    errors.push(ConfigError::new("source_archive_dir", "must name a folder"));
                } else if absolute(&dir).starts_with(absolute(&root)) {
                    errors.push(ConfigError::new(
                        "source_archive_dir",
                        format!(
                            "\"{}\" is inside the source's folder \"{}\": archived files would be read again (choose a folder outside it)",
                            dir.display(),
                            root.display()
                        ),
                    ));
                }
                CleanSource::Archive(dir)
            }
            (Some(other), _) => {
                errors.push(ConfigError::new(
                    "clean_source",
                    format!(
                        "unknown value \"{other}\" (expected \"off\", \"delete\" or \"archive\")"
                    ),
                ));
                CleanSource::Off
            }
        }
    }

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
