use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{Int64Array, RecordBatch};
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use serde::Deserialize;
use weir_core::{
    duration_key, CheckpointFailure, ConfigError, Epoch, Error, OutputMode, Result, Sink,
    StageSnapshot, StateEntries,
};

use crate::partition::Partitioning;

/// The hidden folder, inside a file sink's folder, that holds in-progress and pending files.
/// Readers skip names that start with `_` or `.`, as Spark, pyarrow and DuckDB globs do.
pub const TMP_DIR: &str = "_tmp";
/// What a pre-committed file's name ends with in [`TMP_DIR`], after the format's extension.
const PENDING_EXTENSION: &str = "pending";

/// The column that `update` mode adds to file output: the epoch that changed the row.
pub const EPOCH_COLUMN: &str = "epoch";

/// The file formats a file sink writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// Apache Parquet (`type = "parquet"`).
    Parquet,
    /// Delimited text with a header line (`type = "csv"`).
    Csv,
    /// JSON lines: one object per row, null values left out, as Spark writes JSON
    /// (`type = "json"`).
    Json,
}

impl FileFormat {
    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Parquet => "parquet",
            FileFormat::Csv => "csv",
            FileFormat::Json => "json",
        }
    }
}

/// A `type = "parquet"`, `"csv"` or `"json"` sink as written in the pipeline file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Folder the committed files appear in. Created if missing.
    pub path: String,
    /// csv only: write a header line. Default `true`.
    #[serde(default)]
    pub header: Option<bool>,
    /// csv only: field separator, one character. Default `","`.
    #[serde(default)]
    pub sep: Option<String>,
    /// parquet only: `"snappy"` (default, as in Spark) or `"none"`.
    #[serde(default)]
    pub compression: Option<String>,
    /// append and update modes: a file holds at most this many rows, and the epoch goes on
    /// in a new one (Spark's `maxRecordsPerFile`). Default: no limit.
    #[serde(default)]
    pub max_rows_per_file: Option<u64>,
    /// append and update modes: a file that reaches about this size (`"128MiB"`, `"1GB"` or
    /// bytes) is closed and the epoch goes on in a new one. Default: no limit.
    #[serde(default)]
    pub max_file_size: Option<bytesize::ByteSize>,
    /// append and update modes: files are written to about this size (`"64MiB"` or bytes),
    /// holding a file open over as many epochs as it takes. The rows it holds are kept
    /// durable in `_tmp` at every checkpoint, so they commit exactly once; a file commits
    /// with the epoch that fills it, or at the end of the run. Default: none (a file per
    /// epoch and writer).
    #[serde(default)]
    pub target_file_size: Option<bytesize::ByteSize>,
    /// With `target_file_size`: a file held open this long (`"1m"`, `"30s"`) commits at the
    /// next epoch's end even under the target, so that slow input still shows up (Flink's
    /// rollover interval). Default `"1m"`.
    #[serde(default)]
    pub rollover_interval: Option<String>,
    /// append and update modes: Hive-style folders by these columns' values
    /// (`["Shop"]` writes `Shop=Shop_001/part-….parquet`); the columns leave the files.
    #[serde(default)]
    pub partition_by: Vec<String>,
}

/// A validated file sink config, bound to its format, input schema and output mode.
#[derive(Debug, Clone)]
pub struct FileSinkSettings {
    /// The folder committed files appear in.
    pub dir: PathBuf,
    format: FileFormat,
    mode: OutputMode,
    /// The schema of the rows written: the input's, plus [`EPOCH_COLUMN`] in update mode.
    rows: SchemaRef,
    /// The schema of the files: the rows', less the `partition_by` columns.
    schema: SchemaRef,
    header: bool,
    sep: u8,
    compression: Compression,
    max_rows_per_file: Option<u64>,
    max_file_size: Option<u64>,
    target_file_size: Option<u64>,
    rollover_interval: Duration,
    partitioning: Option<Partitioning>,
}

/// How long a file is held open toward `target_file_size` at most, unless configured.
const DEFAULT_ROLLOVER_INTERVAL: Duration = Duration::from_secs(60);

impl FileSinkConfig {
    /// Checks the config for `format`, `input` and `mode`; reports every problem with keys
    /// relative to the sink.
    pub fn validate(
        &self,
        format: FileFormat,
        input: &Schema,
        mode: OutputMode,
    ) -> Result<FileSinkSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.path.trim().is_empty() {
            errors.push(ConfigError::new("path", "must name the output folder"));
        }
        let only = |key: &str, set: bool, wanted: FileFormat, errors: &mut Vec<ConfigError>| {
            if set && format != wanted {
                errors.push(ConfigError::new(
                    key,
                    format!("applies to {} sinks only", wanted.extension()),
                ));
            }
        };
        only(
            "header",
            self.header.is_some(),
            FileFormat::Csv,
            &mut errors,
        );
        only("sep", self.sep.is_some(), FileFormat::Csv, &mut errors);
        only(
            "compression",
            self.compression.is_some(),
            FileFormat::Parquet,
            &mut errors,
        );
        if format == FileFormat::Csv {
            // CSV holds flat values only, as in Spark ("CSV data source does not support
            // struct"): a window column, for one, needs a parquet sink.
            for field in input.fields() {
                if field.data_type().is_nested() {
                    errors.push(ConfigError::new(
                        "input",
                        format!(
                            "column \"{}\" is {}, which a CSV file cannot hold; write it to a parquet sink, or select flat columns first (for a window: \"window.start\")",
                            field.name(),
                            weir_core::ddl_type_name(field.data_type())
                        ),
                    ));
                }
            }
        }
        let sep = match self.sep.as_deref().unwrap_or(",").as_bytes() {
            [b] if b.is_ascii() => *b,
            _ => {
                errors.push(ConfigError::new(
                    "sep",
                    "must be exactly one ASCII character",
                ));
                b','
            }
        };
        let compression = match self.compression.as_deref().unwrap_or("snappy") {
            "snappy" => Compression::SNAPPY,
            "none" | "uncompressed" => Compression::UNCOMPRESSED,
            other => {
                errors.push(ConfigError::new(
                    "compression",
                    format!("unknown compression \"{other}\" (expected \"snappy\" or \"none\")"),
                ));
                Compression::UNCOMPRESSED
            }
        };
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        if mode == OutputMode::Update {
            if input.index_of(EPOCH_COLUMN).is_ok() {
                errors.push(ConfigError::new(
                    "output_mode",
                    format!("update mode adds a column \"{EPOCH_COLUMN}\", but the input already has one (rename it with `as`)"),
                ));
            }
            fields.push(Field::new(EPOCH_COLUMN, DataType::Int64, false));
        }
        let schema = Arc::new(Schema::new(fields));
        let partitioning = self.files(mode, &schema, &mut errors);
        let rollover_interval = match self.rollover_interval.as_deref() {
            None => DEFAULT_ROLLOVER_INTERVAL,
            Some(_) if self.target_file_size.is_none() => {
                errors.push(ConfigError::new(
                    "rollover_interval",
                    "applies with target_file_size only: without it no file is held open past its epoch",
                ));
                DEFAULT_ROLLOVER_INTERVAL
            }
            text => duration_key(
                "rollover_interval",
                text,
                DEFAULT_ROLLOVER_INTERVAL,
                &mut errors,
            ),
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(FileSinkSettings {
            dir: PathBuf::from(&self.path),
            format,
            mode,
            rows: schema.clone(),
            schema: partitioning
                .as_ref()
                .map_or(schema, Partitioning::file_schema),
            header: self.header.unwrap_or(true),
            sep,
            compression,
            max_rows_per_file: self.max_rows_per_file,
            max_file_size: self.max_file_size.map(|b| b.as_u64()),
            target_file_size: self.target_file_size.map(|b| b.as_u64()),
            rollover_interval,
            partitioning,
        })
    }

    /// `max_rows_per_file`, `max_file_size`, `target_file_size` and `partition_by`: only for
    /// the modes that add files (complete mode replaces one `result.*`).
    fn files(
        &self,
        mode: OutputMode,
        schema: &Schema,
        errors: &mut Vec<ConfigError>,
    ) -> Option<Partitioning> {
        let set = [
            ("max_rows_per_file", self.max_rows_per_file.is_some()),
            ("max_file_size", self.max_file_size.is_some()),
            ("target_file_size", self.target_file_size.is_some()),
            ("partition_by", !self.partition_by.is_empty()),
        ];
        if mode == OutputMode::Complete {
            for (key, _) in set.iter().filter(|(_, set)| *set) {
                errors.push(ConfigError::new(
                    *key,
                    "applies to the append and update modes: complete mode writes the whole result as one result file",
                ));
            }
            return None;
        }
        if self.max_rows_per_file == Some(0) {
            errors.push(ConfigError::new("max_rows_per_file", "must be at least 1"));
        }
        if self.max_file_size.is_some_and(|b| b.as_u64() == 0) {
            errors.push(ConfigError::new("max_file_size", "must be at least 1 byte"));
        }
        match (self.target_file_size, self.max_file_size) {
            (Some(target), _) if target.as_u64() == 0 => errors.push(ConfigError::new(
                "target_file_size",
                "must be at least 1 byte",
            )),
            (Some(target), Some(max)) if target > max => errors.push(ConfigError::new(
                "target_file_size",
                format!("{target} is over max_file_size ({max}): a file cannot reach it"),
            )),
            _ => {}
        }
        if self.partition_by.is_empty() {
            return None;
        }
        match Partitioning::new(schema, &self.partition_by) {
            Ok(partitioning) => Some(partitioning),
            Err(message) => {
                errors.push(ConfigError::new("partition_by", message));
                None
            }
        }
    }
}

impl FileSinkSettings {
    /// Creates the folders and the running sink; [`Sink::start`] then checks what a previous
    /// run left behind.
    pub fn build(&self) -> Result<FileSink> {
        let tmp = self.dir.join(TMP_DIR);
        let created = !tmp.exists();
        fs::create_dir_all(&tmp).map_err(|e| Error::io("cannot create", &tmp, e))?;
        if created {
            // The folders' own entries are durable before a checkpoint names a file in them.
            sync_dir(&self.dir)?;
            if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        Ok(FileSink {
            settings: self.clone(),
            tmp,
            epoch: Epoch(1),
            writers: BTreeMap::new(),
            next_open: 0,
            next_part: 0,
            next_segment: 0,
            pending: Vec::new(),
            committed: Vec::new(),
            superseded: Vec::new(),
            held_recorded: false,
            last_epoch: false,
            ratio: 1.0,
        })
    }
}

/// Writes an epoch's rows to a hidden file and renames it into place when the epoch commits.
pub struct FileSink {
    settings: FileSinkSettings,
    tmp: PathBuf,
    /// The epoch whose rows are being written.
    epoch: Epoch,
    /// The files being written, by partition folder (`""` without `partition_by`): this
    /// epoch's, and with `target_file_size` those held open from earlier epochs.
    writers: BTreeMap<String, OpenFile>,
    /// The number in the name of the epoch's next file in `_tmp`.
    next_open: u32,
    /// The part number the epoch's next finished file takes.
    next_part: u32,
    /// The number in the name of the epoch's next segment (see [`Segment`]).
    next_segment: u32,
    /// Closed files waiting for their epoch to commit.
    pending: Vec<PendingFile>,
    /// Epochs committed since the last snapshot, whose records the next one deletes.
    committed: Vec<Epoch>,
    /// Segments of files finished in an epoch, removed once that epoch commits: until then
    /// the checkpoint before it may be the one a restart resumes, and it names them.
    superseded: Vec<(Epoch, String)>,
    /// Whether the checkpoint holds a record of held files, which goes when none is held.
    held_recorded: bool,
    /// The epoch being written is the stream's last: nothing is held past it.
    last_epoch: bool,
    /// Bytes on disk per byte of parquet's estimate of a row group in memory, as the last
    /// finished file showed (1 until one has).
    ratio: f64,
}

/// The epoch in the name of an epoch's file, `part-EPOCH-PART.ext` (see `file_name`).
fn part_epoch(name: &str) -> Option<u64> {
    name.strip_prefix("part-")?.split('-').next()?.parse().ok()
}

/// The state key tag of an epoch's pending files: `p` and the epoch, big-endian. The value
/// is one line per file: the hidden name in `_tmp`, a tab, the final name, a tab, the pending
/// file's inode and its modification time in nanoseconds (older Weirs wrote neither).
const PENDING: u8 = b'p';

/// A closed file waiting for its epoch to commit.
struct PendingFile {
    epoch: Epoch,
    /// In `_tmp`, `….pending`.
    hidden: PathBuf,
    /// Where the commit renames it.
    visible: PathBuf,
    /// The file's inode, which the rename keeps: how recovery tells "committed" (the final
    /// name has it) from "lost" (a power loss undid the pending file, and the final name,
    /// if any, is an older epoch's `result.*`).
    inode: Option<u64>,
    /// When the file was written (ns since 1970), which the rename keeps too: a final file of
    /// the same name written later is a later epoch's, which replaced this one.
    modified: Option<i128>,
}

fn pending_key(epoch: Epoch) -> Vec<u8> {
    epoch.key(PENDING)
}

/// The state key of the files held open over epochs (`target_file_size`). The value is one
/// line per segment, in the order its rows were written: the segment's name in `_tmp`, a
/// tab, and the partition folder of the file it belongs to (`""` without `partition_by`;
/// Hive escaping leaves no tab or line break in it).
const HELD: &[u8] = b"h";

/// One epoch's rows of a file held open over epochs, in `_tmp` as an Arrow IPC stream. The
/// file itself cannot be resumed after a crash (parquet's footer comes last), so a restart
/// writes its segments into a new file; they go once the file commits.
struct Segment {
    name: String,
    path: PathBuf,
    writer: StreamWriter<BufWriter<File>>,
}

impl Segment {
    fn create(tmp: &Path, name: String, schema: &Schema) -> Result<Segment> {
        let path = tmp.join(&name);
        let file = File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
        let writer = StreamWriter::try_new_buffered(file, schema)
            .map_err(|e| Error::io("cannot write", &path, std::io::Error::other(e)))?;
        Ok(Segment { name, path, writer })
    }

    /// Ends and syncs the segment; the caller syncs `_tmp` before a checkpoint names it.
    fn close(mut self) -> Result<String> {
        let failed = |e: String| Error::io("cannot finish", &self.path, std::io::Error::other(e));
        self.writer.finish().map_err(|e| failed(e.to_string()))?;
        let file = self
            .writer
            .into_inner()
            .map_err(|e| failed(e.to_string()))?
            .into_inner()
            .map_err(|e| failed(e.error().to_string()))?;
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", &self.path, e))?;
        Ok(self.name)
    }
}

enum Writer {
    Parquet(Box<ArrowWriter<Counted>>),
    Csv(Box<arrow_csv::Writer<Counted>>),
    Json(Box<arrow_json::LineDelimitedWriter<Counted>>),
}

/// A file being written, in `_tmp`.
struct OpenFile {
    path: PathBuf,
    /// The partition folder it commits into (`""` without `partition_by`).
    folder: String,
    writer: Writer,
    rows: u64,
    /// Bytes handed to the file so far (see [`Counted`]).
    bytes: Arc<AtomicU64>,
    /// With `target_file_size`: the current epoch's rows, again, for a restart.
    segment: Option<Segment>,
    /// With `target_file_size`: the closed segments of earlier epochs, oldest first.
    segments: Vec<String>,
    /// When this process opened it, for `rollover_interval`.
    opened: Instant,
}

/// A file's buffered writer that counts what goes through it, for `max_file_size`.
struct Counted {
    out: BufWriter<File>,
    bytes: Arc<AtomicU64>,
}

impl Write for Counted {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl OpenFile {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        let failed = |e: String| Error::Io {
            action: "cannot write",
            path: self.path.clone(),
            error: std::io::Error::other(e),
        };
        match &mut self.writer {
            Writer::Parquet(w) => w.write(batch).map_err(|e| failed(e.to_string()))?,
            Writer::Csv(w) => w.write(batch).map_err(|e| failed(e.to_string()))?,
            Writer::Json(w) => w.write(batch).map_err(|e| failed(e.to_string()))?,
        }
        if let Some(segment) = &mut self.segment {
            segment.writer.write(batch).map_err(|e| Error::Io {
                action: "cannot write",
                path: segment.path.clone(),
                error: std::io::Error::other(e),
            })?;
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// What reached the file so far, and for parquet the estimated size of the row group
    /// still held in memory, before compression.
    fn size_parts(&self) -> (u64, u64) {
        let held = match &self.writer {
            Writer::Parquet(w) => w.in_progress_size() as u64,
            Writer::Csv(_) | Writer::Json(_) => 0,
        };
        (self.bytes.load(Ordering::Relaxed), held)
    }

    /// About the size the file would have if closed now, with `ratio` the bytes a row
    /// group took on disk per byte of its estimate, in the files finished so far.
    fn size(&self, ratio: f64) -> u64 {
        let (written, held) = self.size_parts();
        written + (held as f64 * ratio) as u64
    }

    fn is_full(&self, settings: &FileSinkSettings, ratio: f64) -> bool {
        let size = [settings.max_file_size, settings.target_file_size];
        settings
            .max_rows_per_file
            .is_some_and(|max| self.rows >= max)
            || size
                .into_iter()
                .flatten()
                .any(|max| self.size(ratio) >= max)
    }

    /// Ends the file, syncs it and renames it to its pending name, to be committed as
    /// `visible`. The caller syncs `_tmp` before a checkpoint names it. Also gives the names
    /// of the file's segments, which its commit makes unneeded.
    fn finish(self, epoch: Epoch, visible: PathBuf) -> Result<(PendingFile, Vec<String>)> {
        let mut segments = self.segments;
        // The current epoch's segment, unfinished: the file now holds its rows.
        segments.extend(self.segment.map(|s| s.name));
        let path = self.path;
        let failed = |e: String| Error::Io {
            action: "cannot finish",
            path: path.clone(),
            error: std::io::Error::other(e),
        };
        let out = match self.writer {
            Writer::Parquet(w) => w.into_inner().map_err(|e| failed(e.to_string()))?,
            Writer::Csv(w) => w.into_inner(),
            Writer::Json(mut w) => {
                w.finish().map_err(|e| failed(e.to_string()))?;
                w.into_inner()
            }
        };
        let file = out
            .out
            .into_inner()
            .map_err(|e| failed(e.error().to_string()))?;
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", &path, e))?;
        // `part-….parquet.pending`: no reader's glob for the format (`out/**/*.parquet`,
        // which DuckDB does not stop at `_tmp`) matches a file not yet committed.
        let pending = path.with_extension(PENDING_EXTENSION);
        fs::rename(&path, &pending).map_err(|e| Error::io("cannot rename", &path, e))?;
        let meta = fs::metadata(&pending).map_err(|e| Error::io("cannot inspect", &pending, e))?;
        let file = PendingFile {
            epoch,
            hidden: pending,
            visible,
            inode: Some(meta.ino()),
            modified: Some(modified_ns(&meta)),
        };
        Ok((file, segments))
    }
}

impl FileSink {
    /// A fresh start: a folder holding committed output of an earlier run is refused, since
    /// without its checkpoint that run's rows would be written again.
    fn check_fresh(&self) -> Result<()> {
        let dir = &self.settings.dir;
        let ext = format!(".{}", self.settings.format.extension());
        for path in output_files(dir)? {
            let name = file_name(&path);
            if (name.starts_with("part-") || name.starts_with("result.")) && name.ends_with(&ext) {
                return Err(Error::Input(format!(
                    "{} already holds output of an earlier run ({name}) but there is no checkpoint to resume it from; empty the folder, choose another path, or point checkpoint.path at that run's checkpoint",
                    dir.display()
                )));
            }
        }
        Ok(())
    }

    /// Commits the files the checkpoint of `epoch` left pending, oldest epoch first.
    fn recommit(&mut self, state: StateEntries) -> Result<()> {
        for (key, value) in state {
            let epoch = Epoch::from_key(PENDING, &key)
                .ok_or_else(|| Error::Internal(format!("unknown file sink state key {key:?}")))?;
            for line in String::from_utf8_lossy(&value).lines() {
                let mut fields = line.split('\t');
                let (Some(hidden), Some(visible)) = (fields.next(), fields.next()) else {
                    return Err(Error::Internal(format!(
                        "bad pending record for epoch {epoch}: {line}"
                    )));
                };
                self.pending.push(PendingFile {
                    epoch,
                    hidden: self.tmp.join(hidden),
                    visible: self.settings.dir.join(visible),
                    inode: fields.next().and_then(|i| i.parse().ok()),
                    modified: fields.next().and_then(|m| m.parse().ok()),
                });
            }
        }
        let last = self.pending.iter().map(|p| p.epoch).max();
        match last {
            Some(epoch) => self.commit(epoch),
            None => Ok(()),
        }
    }

    /// A pending file of a resumed checkpoint is gone: fine if a run before this one
    /// committed it or a later epoch's file of the same name (`result.*`, replaced whole)
    /// did, as the final name's inode says (without an inode, as older Weirs recorded it: the
    /// final name of an epoch's own part file); else its rows are lost.
    fn committed_before(&self, file: &PendingFile, batch: &[PendingFile]) -> Result<()> {
        let found = fs::metadata(&file.visible).ok();
        let committed = match (file.inode, &found) {
            (_, None) => false,
            (Some(_), Some(meta)) => {
                batch.iter().any(|other| {
                    other.visible == file.visible
                        && other.epoch >= file.epoch
                        && other.inode == Some(meta.ino())
                })
                // Written after this file: a later epoch's, committed by a run whose
                // checkpoint was since given up (a fall-back past damage), which replaced
                // this one whole.
                || file.modified.is_some_and(|m| modified_ns(meta) > m)
            }
            (None, Some(_)) => self.settings.mode != OutputMode::Complete,
        };
        if committed {
            return Ok(());
        }
        let seen = match found {
            Some(_) => format!(
                "and {} is another epoch's, not this one's",
                file.visible.display()
            ),
            None => format!("and {} was never written", file.visible.display()),
        };
        Err(Error::checkpoint(
            CheckpointFailure::LostOutput,
            format!(
                "{}: the checkpoint names {} as epoch {}'s output waiting to commit, but it is gone {seen}: a power loss undid it. Epoch {} must be read again from an earlier checkpoint: run with --fall-back (checkpoint.fall_back = true)",
                self.settings.dir.display(),
                file.hidden.display(),
                file.epoch,
                file.epoch
            ),
        ))
    }

    /// Removes committed files of epochs after `epoch`. A run resuming from its last
    /// checkpoint finds none (files commit only after their checkpoint); one that fell back
    /// to an earlier checkpoint finds those of the epochs it will read again.
    fn remove_later(&self, epoch: Epoch) -> Result<()> {
        for path in output_files(&self.settings.dir)? {
            let later = part_epoch(&file_name(&path)).is_some_and(|e| e > epoch.0);
            if later {
                tracing::warn!(file = %path.display(), "removing output of an epoch after the checkpoint");
                fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
            }
        }
        Ok(())
    }

    /// The committed name of the epoch's file number `part` in `folder`, relative to the
    /// sink's folder.
    fn visible_name(&self, part: u32, folder: &str) -> String {
        let ext = self.settings.format.extension();
        match self.settings.mode {
            // One table, replaced whole at every epoch.
            OutputMode::Complete => format!("result.{ext}"),
            // Deterministic per (epoch, part): a re-run of an epoch reads the same rows in
            // the same order, so it writes the same names.
            OutputMode::Append | OutputMode::Update => {
                let name = format!("part-{:06}-{part:04}.{ext}", self.epoch.0);
                match folder.is_empty() {
                    true => name,
                    false => format!("{folder}/{name}"),
                }
            }
        }
    }

    /// Opens the epoch's next file, to be committed in `folder`.
    fn open(&mut self, folder: &str) -> Result<OpenFile> {
        let number = self.next_open;
        self.next_open += 1;
        let name = format!(
            "part-{:06}-{number:04}.{}.inprogress",
            self.epoch.0,
            self.settings.format.extension()
        );
        let path = self.tmp.join(name);
        let file = File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
        let bytes = Arc::new(AtomicU64::new(0));
        let out = Counted {
            out: BufWriter::with_capacity(1 << 20, file),
            bytes: bytes.clone(),
        };
        let schema = self.settings.schema.clone();
        let writer = match self.settings.format {
            FileFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(self.settings.compression)
                    .build();
                Writer::Parquet(Box::new(
                    ArrowWriter::try_new(out, schema, Some(props)).map_err(|e| {
                        Error::Internal(format!("parquet writer for {}: {e}", path.display()))
                    })?,
                ))
            }
            FileFormat::Csv => Writer::Csv(Box::new(
                arrow_csv::WriterBuilder::new()
                    .with_header(self.settings.header)
                    .with_delimiter(self.settings.sep)
                    .build(out),
            )),
            FileFormat::Json => Writer::Json(Box::new(arrow_json::LineDelimitedWriter::new(out))),
        };
        Ok(OpenFile {
            path,
            folder: folder.to_string(),
            writer,
            rows: 0,
            bytes,
            segment: None,
            segments: Vec::new(),
            opened: Instant::now(),
        })
    }

    /// Removes the segments of files finished in `epoch` or before, which a restart from
    /// `epoch`'s checkpoint (complete now) no longer needs.
    fn remove_superseded(&mut self, epoch: Epoch) -> Result<()> {
        let (done, kept) = std::mem::take(&mut self.superseded)
            .into_iter()
            .partition(|(finished, _)| *finished <= epoch);
        self.superseded = kept;
        for (_, name) in done {
            let path = self.tmp.join(name);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("cannot remove", &path, e)),
            }
        }
        Ok(())
    }

    /// Finishes `file` as one of the current epoch's, named with the epoch's next part.
    fn finish_file(&mut self, file: OpenFile) -> Result<()> {
        let part = self.next_part;
        self.next_part += 1;
        let visible = self
            .settings
            .dir
            .join(self.visible_name(part, &file.folder));
        let (written, held) = file.size_parts();
        let (pending, segments) = file.finish(self.epoch, visible)?;
        // Learn what parquet's estimate comes to once compressed and closed, so that files
        // land near the limits rather than short of them by what compression saved.
        if held >= 4096 {
            if let Ok(meta) = fs::metadata(&pending.hidden) {
                let closed = meta.len().saturating_sub(written) as f64 / held as f64;
                self.ratio = closed.clamp(0.05, 1.5);
            }
        }
        self.pending.push(pending);
        let epoch = self.epoch;
        self.superseded
            .extend(segments.into_iter().map(|name| (epoch, name)));
        Ok(())
    }

    /// A restart: writes the rows of the files the checkpoint held open (their segments,
    /// oldest first) into new files, which go on being held.
    fn reopen_held(&mut self, held: Vec<(String, String)>) -> Result<()> {
        for (name, folder) in held {
            let path = self.tmp.join(&name);
            let file = File::open(&path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Error::checkpoint(
                    CheckpointFailure::LostOutput,
                    format!(
                        "{}: the checkpoint names {} as rows held for a file not yet committed, but it is gone: a power loss undid it, or a --fall-back passed the epoch that committed its file. Those rows must be read again from an earlier checkpoint",
                        self.settings.dir.display(),
                        path.display()
                    ),
                ),
                _ => Error::io("cannot open", &path, e),
            })?;
            let reader = StreamReader::try_new_buffered(file, None)
                .map_err(|e| Error::io("cannot read", &path, std::io::Error::other(e)))?;
            if !self.writers.contains_key(&folder) {
                let file = self.open(&folder)?;
                self.writers.insert(folder.clone(), file);
            }
            let Some(file) = self.writers.get_mut(&folder) else {
                return Err(Error::Internal("a file sink lost its open file".into()));
            };
            for batch in reader {
                let batch =
                    batch.map_err(|e| Error::io("cannot read", &path, std::io::Error::other(e)))?;
                file.write(&batch)?;
            }
            file.segments.push(name);
        }
        self.held_recorded = !self.writers.is_empty();
        Ok(())
    }

    /// Writes `batch` into `folder`'s file, rolling to a new file where a limit says.
    fn write_into(&mut self, folder: String, batch: &RecordBatch) -> Result<()> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            if !self.writers.contains_key(&folder) {
                let file = self.open(&folder)?;
                self.writers.insert(folder.clone(), file);
            }
            let Some(file) = self.writers.get_mut(&folder) else {
                return Err(Error::Internal("a file sink lost its open file".into()));
            };
            if self.settings.target_file_size.is_some() && file.segment.is_none() {
                let name = format!("held-{:06}-{:04}.arrow", self.epoch.0, self.next_segment);
                self.next_segment += 1;
                file.segment = Some(Segment::create(&self.tmp, name, &self.settings.schema)?);
            }
            let room = self
                .settings
                .max_rows_per_file
                .map_or(u64::MAX, |max| max.saturating_sub(file.rows));
            let take = usize::try_from(room)
                .unwrap_or(usize::MAX)
                .min(batch.num_rows() - offset);
            file.write(&batch.slice(offset, take))?;
            offset += take;
            if file.is_full(&self.settings, self.ratio) {
                if let Some(full) = self.writers.remove(&folder) {
                    self.finish_file(full)?;
                }
            }
        }
        Ok(())
    }

    fn with_epoch(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        if self.settings.mode != OutputMode::Update {
            return Ok(batch.clone());
        }
        let mut columns = batch.columns().to_vec();
        columns.push(Arc::new(Int64Array::from_value(
            self.epoch.0 as i64,
            batch.num_rows(),
        )));
        // The partition columns are still there: they leave the rows when split by folder.
        RecordBatch::try_new(self.settings.rows.clone(), columns)
            .map_err(|e| Error::arrow("file sink", e))
    }
}

/// Every file below a sink's folder, partition folders included, but not `_tmp` nor any
/// other name a reader skips (`_…`, `.…`).
fn output_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in fs::read_dir(&folder).map_err(|e| Error::io("cannot list", &folder, e))? {
            let entry = entry.map_err(|e| Error::io("cannot list", &folder, e))?;
            let path = entry.path();
            if file_name(&path).starts_with(['_', '.']) {
                continue;
            }
            match entry.file_type() {
                Ok(t) if t.is_dir() => folders.push(path),
                _ => files.push(path),
            }
        }
    }
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A file's modification time in nanoseconds since 1970.
fn modified_ns(meta: &fs::Metadata) -> i128 {
    i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec())
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("cannot sync", dir, e))
}

impl Sink for FileSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = self.with_epoch(batch)?;
        let parts = match &self.settings.partitioning {
            Some(partitioning) => partitioning.split(&batch)?,
            None => vec![(String::new(), batch)],
        };
        for (folder, rows) in parts {
            self.write_into(folder, &rows)?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, epoch: Epoch) -> Result<()> {
        self.epoch = epoch;
        let hold = self.settings.target_file_size.is_some() && !self.last_epoch;
        let mut segments_closed = false;
        for (folder, mut file) in std::mem::take(&mut self.writers) {
            if hold {
                if let Some(segment) = file.segment.take() {
                    file.segments.push(segment.close()?);
                    segments_closed = true;
                }
                // Under the target: held for the epochs to come (a file that reached it
                // while written was finished then), unless held long enough already.
                let waited = file.opened.elapsed() >= self.settings.rollover_interval;
                if !file.is_full(&self.settings, self.ratio) && !waited {
                    self.writers.insert(folder, file);
                    continue;
                }
            }
            self.finish_file(file)?;
        }
        if segments_closed || self.pending.iter().any(|p| p.epoch == epoch) {
            // The renames and new segments are durable before the checkpoint names them.
            sync_dir(&self.tmp)?;
        }
        self.epoch = epoch.next();
        self.next_open = 0;
        self.next_part = 0;
        self.next_segment = 0;
        Ok(())
    }

    fn last_epoch(&mut self) -> Result<()> {
        self.last_epoch = true;
        Ok(())
    }

    fn commit(&mut self, epoch: Epoch) -> Result<()> {
        self.remove_superseded(epoch)?;
        let (ready, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|p| p.epoch <= epoch);
        self.pending = later;
        if ready.is_empty() {
            return Ok(());
        }
        let mut ready = ready;
        ready.sort_by_key(|p| p.epoch);
        // The folders whose entries change, synced once each after the renames: the sink's
        // own, and every partition folder with the folders above it that had to be made.
        let mut touched = BTreeSet::from([self.settings.dir.clone()]);
        for file in &ready {
            if let Some(parent) = file.visible.parent().filter(|p| *p != self.settings.dir) {
                if !parent.exists() {
                    fs::create_dir_all(parent)
                        .map_err(|e| Error::io("cannot create", parent, e))?;
                }
                let below = parent.ancestors().take_while(|a| *a != self.settings.dir);
                touched.extend(below.map(Path::to_path_buf));
            }
            match fs::rename(&file.hidden, &file.visible) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    self.committed_before(file, &ready)?
                }
                Err(e) => return Err(Error::io("cannot commit", &file.hidden, e)),
            }
            if !self.committed.contains(&file.epoch) {
                self.committed.push(file.epoch);
            }
        }
        // Deepest first, so that a folder's entry is synced after what it holds.
        for dir in touched.iter().rev() {
            sync_dir(dir)?;
        }
        Ok(())
    }

    fn start(&mut self, resume: Option<(Epoch, StateEntries)>) -> Result<()> {
        let mut held = Vec::new();
        match resume {
            None => self.check_fresh()?,
            Some((epoch, state)) => {
                let (record, pending): (StateEntries, StateEntries) =
                    state.into_iter().partition(|(key, _)| key == HELD);
                for (_, value) in record {
                    for line in String::from_utf8_lossy(&value).lines() {
                        let Some((name, folder)) = line.split_once('\t') else {
                            return Err(Error::Internal(format!("bad held-file record: {line}")));
                        };
                        held.push((name.to_string(), folder.to_string()));
                    }
                }
                self.recommit(pending)?;
                self.remove_later(epoch)?;
                self.epoch = epoch.next();
            }
        }
        // Whatever else is in _tmp is in-progress or pending output of epochs after the
        // checkpoint: it was never committed and never will be.
        let keep: BTreeSet<&str> = held.iter().map(|(name, _)| name.as_str()).collect();
        for entry in fs::read_dir(&self.tmp).map_err(|e| Error::io("cannot list", &self.tmp, e))? {
            let path = entry
                .map_err(|e| Error::io("cannot list", &self.tmp, e))?
                .path();
            if !keep.contains(file_name(&path).as_str()) {
                fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
            }
        }
        self.reopen_held(held)
    }

    fn snapshot(&mut self, epoch: Epoch) -> Result<StageSnapshot> {
        let mut snapshot = StageSnapshot::default();
        for done in self.committed.drain(..) {
            snapshot.delta.delete(pending_key(done));
        }
        let dir = &self.settings.dir;
        // The final name relative to the sink's folder: a partition folder is part of it.
        let relative = |p: &Path| {
            p.strip_prefix(dir)
                .map_or_else(|_| file_name(p), |r| r.display().to_string())
        };
        let lines: Vec<String> = self
            .pending
            .iter()
            .filter(|p| p.epoch == epoch)
            .map(|p| {
                let identity = match (p.inode, p.modified) {
                    (Some(inode), Some(modified)) => format!("\t{inode}\t{modified}"),
                    (Some(inode), None) => format!("\t{inode}"),
                    _ => String::new(),
                };
                format!(
                    "{}\t{}{identity}",
                    file_name(&p.hidden),
                    relative(&p.visible)
                )
            })
            .collect();
        if !lines.is_empty() {
            snapshot.delta.put(pending_key(epoch), lines.join("\n"));
        }
        // The files held open: after pre-commit, every one of their segments is closed.
        let held: Vec<String> = self
            .writers
            .values()
            .flat_map(|file| {
                file.segments
                    .iter()
                    .map(|s| format!("{s}\t{}", file.folder))
            })
            .collect();
        if !held.is_empty() {
            snapshot.delta.put(HELD.to_vec(), held.join("\n"));
            self.held_recorded = true;
        } else if self.held_recorded {
            snapshot.delta.delete(HELD.to_vec());
            self.held_recorded = false;
        }
        let files: Vec<String> = self.pending.iter().map(|p| relative(&p.visible)).collect();
        snapshot.state_keys = self.pending.len() as u64 + u64::from(self.held_recorded);
        let mut detail = match files.is_empty() {
            true => "no pending files".to_string(),
            false => format!("pending: {}", files.join(", ")),
        };
        if !self.writers.is_empty() {
            let rows: u64 = self.writers.values().map(|f| f.rows).sum();
            detail.push_str(&format!(
                "; held toward target_file_size: {} file(s), {rows} row(s)",
                self.writers.len()
            ));
        }
        snapshot.detail = detail;
        Ok(snapshot)
    }

    fn close(&mut self) -> Result<()> {
        // An epoch that never reached its barrier leaves nothing visible. Segments stay:
        // a checkpoint may name them.
        for (_, file) in std::mem::take(&mut self.writers) {
            let path = file.path;
            drop(file.writer);
            fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Int32Array, StringArray};
    use weir_core::{parse_ddl, StateDelta};

    fn batch(schema: &SchemaRef, shops: &[&str], counts: &[i32]) -> RecordBatch {
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(shops.to_vec())),
                Arc::new(Int32Array::from(counts.to_vec())),
            ],
        )
        .unwrap()
    }

    fn visible(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('_') && !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }

    fn sink(dir: &Path, format: FileFormat, mode: OutputMode) -> (SchemaRef, FileSink) {
        let schema = parse_ddl("Shop STRING, Sale_Count INT").unwrap();
        let config = FileSinkConfig {
            path: dir.display().to_string(),
            ..FileSinkConfig::default()
        };
        let mut sink = config
            .validate(format, &schema, mode)
            .unwrap()
            .build()
            .unwrap();
        sink.start(None).unwrap();
        (schema, sink)
    }

    #[test]
    fn files_appear_only_when_their_epoch_commits() {
        let dir = tempfile::tempdir().unwrap();
        let (schema, mut sink) = sink(dir.path(), FileFormat::Csv, OutputMode::Append);
        sink.write(&batch(&schema, &["a"], &[1])).unwrap();
        assert!(visible(dir.path()).is_empty());
        sink.pre_commit(Epoch(1)).unwrap();
        assert!(visible(dir.path()).is_empty(), "pending files stay hidden");
        sink.pre_commit(Epoch(2)).unwrap(); // an empty epoch writes no file
        sink.commit(Epoch(2)).unwrap();
        sink.commit(Epoch(2)).unwrap(); // commit is idempotent
        assert_eq!(visible(dir.path()), ["part-000001-0000.csv"]);
        let text = fs::read_to_string(dir.path().join("part-000001-0000.csv")).unwrap();
        assert_eq!(text, "Shop,Sale_Count\na,1\n");
    }

    #[test]
    fn a_json_sink_writes_one_object_per_row_and_leaves_nulls_out() {
        let dir = tempfile::tempdir().unwrap();
        let (schema, mut sink) = sink(dir.path(), FileFormat::Json, OutputMode::Append);
        let shops = StringArray::from(vec![Some("a \"b\""), None]);
        let counts = Int32Array::from(vec![Some(1), Some(2)]);
        let rows =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(shops), Arc::new(counts)]).unwrap();
        sink.write(&rows).unwrap();
        sink.pre_commit(Epoch(1)).unwrap();
        sink.commit(Epoch(1)).unwrap();
        assert_eq!(visible(dir.path()), ["part-000001-0000.json"]);
        let text = fs::read_to_string(dir.path().join("part-000001-0000.json")).unwrap();
        assert_eq!(
            text,
            "{\"Shop\":\"a \\\"b\\\"\",\"Sale_Count\":1}\n{\"Sale_Count\":2}\n"
        );
    }

    /// A fresh start of `settings` is refused: the folder holds an earlier run's output.
    fn assert_refused_as_earlier_output(settings: &FileSinkSettings) {
        let err = settings.build().unwrap().start(None).err().unwrap();
        let err = err.to_string();
        assert!(
            err.contains("already holds output of an earlier run"),
            "{err}"
        );
    }

    fn sink_with(dir: &Path, config: FileSinkConfig) -> (SchemaRef, FileSinkSettings) {
        let schema = parse_ddl("Shop STRING, Sale_Count INT").unwrap();
        let config = FileSinkConfig {
            path: dir.display().to_string(),
            ..config
        };
        let settings = config
            .validate(FileFormat::Csv, &schema, OutputMode::Append)
            .unwrap();
        (schema, settings)
    }

    #[test]
    fn files_roll_at_max_rows_per_file_and_at_max_file_size() {
        let dir = tempfile::tempdir().unwrap();
        let by_rows = FileSinkConfig {
            max_rows_per_file: Some(4),
            ..FileSinkConfig::default()
        };
        let (schema, settings) = sink_with(dir.path(), by_rows);
        let mut sink = settings.build().unwrap();
        sink.start(None).unwrap();
        let shops = ["a"; 7];
        sink.write(&batch(&schema, &shops, &[1, 2, 3, 4, 5, 6, 7]))
            .unwrap();
        sink.write(&batch(&schema, &["a", "a", "a"], &[8, 9, 10]))
            .unwrap();
        sink.pre_commit(Epoch(1)).unwrap();
        sink.commit(Epoch(1)).unwrap();
        let files = visible(dir.path());
        assert_eq!(
            files,
            [
                "part-000001-0000.csv",
                "part-000001-0001.csv",
                "part-000001-0002.csv"
            ]
        );
        let lines: Vec<usize> = files
            .iter()
            .map(|f| {
                fs::read_to_string(dir.path().join(f))
                    .unwrap()
                    .lines()
                    .count()
                    - 1
            })
            .collect();
        assert_eq!(lines, [4, 4, 2]);

        let dir = tempfile::tempdir().unwrap();
        let by_size = FileSinkConfig {
            max_file_size: Some(bytesize::ByteSize(40)),
            ..FileSinkConfig::default()
        };
        let (schema, settings) = sink_with(dir.path(), by_size);
        let mut sink = settings.build().unwrap();
        sink.start(None).unwrap();
        for n in 0..10 {
            sink.write(&batch(&schema, &["shop_with_a_long_name"], &[n]))
                .unwrap();
        }
        sink.pre_commit(Epoch(1)).unwrap();
        sink.commit(Epoch(1)).unwrap();
        let files = visible(dir.path());
        assert!(files.len() >= 4, "{files:?}");
        let mut rows = 0;
        for f in &files {
            let text = fs::read_to_string(dir.path().join(f)).unwrap();
            // A file closes at the first write that takes it to the size, not before.
            assert!(text.len() < 40 + 30, "{f}: {} bytes", text.len());
            rows += text.lines().count() - 1;
        }
        assert_eq!(rows, 10);
    }

    /// Data rows in the committed CSV files of `dir`, file by file.
    fn csv_rows(dir: &Path) -> Vec<Vec<String>> {
        visible(dir)
            .iter()
            .map(|f| {
                let text = fs::read_to_string(dir.join(f)).unwrap();
                text.lines().skip(1).map(str::to_string).collect()
            })
            .collect()
    }

    #[test]
    fn held_files_reach_the_target_over_epochs_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = FileSinkConfig {
            target_file_size: Some(bytesize::ByteSize(60)),
            ..FileSinkConfig::default()
        };
        let (schema, settings) = sink_with(dir.path(), config);
        let mut sink = settings.build().unwrap();
        sink.start(None).unwrap();
        // The checkpoint as the store keeps it: every epoch's delta applied in turn.
        let mut store = StateDelta::default();
        let mut epoch_of = |sink: &mut FileSink, n: u64, values: &[i32]| {
            for v in values {
                sink.write(&batch(&schema, &["shop_a"], &[*v])).unwrap();
            }
            sink.pre_commit(Epoch(n)).unwrap();
            let snapshot = sink.snapshot(Epoch(n)).unwrap();
            store.changes.extend(snapshot.delta.changes);
            sink.commit(Epoch(n)).unwrap();
        };
        // "shop_a,N\n" is 9 bytes after the 16-byte header: a file fills at its 5th row.
        epoch_of(&mut sink, 1, &[1, 2]);
        epoch_of(&mut sink, 2, &[3]);
        assert!(visible(dir.path()).is_empty(), "held under the target");
        epoch_of(&mut sink, 3, &[4, 5, 6]);
        assert_eq!(csv_rows(dir.path()).len(), 1, "the fifth row fills a file");
        epoch_of(&mut sink, 4, &[7]);
        // Epoch 5 is written and pre-committed, but its checkpoint never completes.
        sink.write(&batch(&schema, &["shop_a"], &[8])).unwrap();
        sink.pre_commit(Epoch(5)).unwrap();
        drop(sink);

        let mut restarted = settings.build().unwrap();
        let state = store.clone().into_entries();
        restarted.start(Some((Epoch(4), state))).unwrap();
        // Rows 6 and 7, held at epoch 4's checkpoint, are back in the held file; 8 is read
        // again by the source.
        for v in [8, 9, 10] {
            restarted.write(&batch(&schema, &["shop_a"], &[v])).unwrap();
        }
        restarted.pre_commit(Epoch(5)).unwrap();
        restarted.commit(Epoch(5)).unwrap();
        assert_eq!(csv_rows(dir.path()).len(), 2);
        restarted
            .write(&batch(&schema, &["shop_a"], &[11]))
            .unwrap();
        // The end of the stream commits what is held, under the target or not.
        restarted.last_epoch().unwrap();
        restarted.pre_commit(Epoch(6)).unwrap();
        restarted.commit(Epoch(6)).unwrap();
        let rows: Vec<Vec<String>> = csv_rows(dir.path());
        let want = |r: std::ops::RangeInclusive<i32>| -> Vec<String> {
            r.map(|v| format!("shop_a,{v}")).collect()
        };
        assert_eq!(rows, [want(1..=5), want(6..=10), want(11..=11)]);
        assert!(
            fs::read_dir(dir.path().join(TMP_DIR))
                .unwrap()
                .next()
                .is_none(),
            "every segment is gone once its file commits"
        );
    }

    #[test]
    fn a_held_file_commits_after_the_rollover_interval() {
        let dir = tempfile::tempdir().unwrap();
        let config = FileSinkConfig {
            target_file_size: Some(bytesize::ByteSize::mib(1)),
            rollover_interval: Some("1ms".into()),
            ..FileSinkConfig::default()
        };
        let (schema, settings) = sink_with(dir.path(), config);
        let mut sink = settings.build().unwrap();
        sink.start(None).unwrap();
        sink.write(&batch(&schema, &["a"], &[1])).unwrap();
        std::thread::sleep(Duration::from_millis(5));
        sink.pre_commit(Epoch(1)).unwrap();
        sink.commit(Epoch(1)).unwrap();
        assert_eq!(visible(dir.path()), ["part-000001-0000.csv"]);
    }

    #[test]
    fn partitions_are_folders_committed_with_their_epoch_and_recovered_from_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let config = FileSinkConfig {
            partition_by: vec!["Shop".into()],
            ..FileSinkConfig::default()
        };
        let (schema, settings) = sink_with(dir.path(), config);
        let mut sink = settings.build().unwrap();
        sink.start(None).unwrap();
        sink.write(&batch(&schema, &["a", "b/c", "a"], &[1, 2, 3]))
            .unwrap();
        sink.pre_commit(Epoch(1)).unwrap();
        let state = sink.snapshot(Epoch(1)).unwrap();
        assert!(visible(dir.path()).is_empty());
        drop(sink); // a crash after the checkpoint, before the commit
        let mut restarted = settings.build().unwrap();
        restarted
            .start(Some((Epoch(1), state.delta.into_entries())))
            .unwrap();
        assert_eq!(visible(dir.path()), ["Shop=a", "Shop=b%2Fc"]);
        let a = fs::read_to_string(dir.path().join("Shop=a/part-000001-0000.csv")).unwrap();
        assert_eq!(a, "Sale_Count\n1\n3\n");
        let b = fs::read_to_string(dir.path().join("Shop=b%2Fc/part-000001-0001.csv")).unwrap();
        assert_eq!(b, "Sale_Count\n2\n");
        // A later run without that checkpoint finds the partition folders' output.
        assert_refused_as_earlier_output(&settings);
    }

    #[test]
    fn update_mode_partitions_rows_with_their_epoch_column() {
        let dir = tempfile::tempdir().unwrap();
        let schema = parse_ddl("Shop STRING, Sale_Count INT").unwrap();
        let config = FileSinkConfig {
            path: dir.path().display().to_string(),
            partition_by: vec!["Shop".into()],
            ..FileSinkConfig::default()
        };
        let settings = config
            .validate(FileFormat::Csv, &schema, OutputMode::Update)
            .unwrap();
        let mut sink = settings.build().unwrap();
        sink.start(None).unwrap();
        sink.write(&batch(&schema, &["a", "b", "a"], &[1, 2, 3]))
            .unwrap();
        sink.pre_commit(Epoch(1)).unwrap();
        sink.commit(Epoch(1)).unwrap();
        let a = fs::read_to_string(dir.path().join("Shop=a/part-000001-0000.csv")).unwrap();
        assert_eq!(a, "Sale_Count,epoch\n1,1\n3,1\n");
    }

    #[test]
    fn file_limits_and_partitions_are_checked() {
        let schema = parse_ddl("Shop STRING, Sale_Count INT").unwrap();
        let errors = |config: FileSinkConfig, mode| {
            let config = FileSinkConfig {
                path: "out".into(),
                ..config
            };
            let errors = config
                .validate(FileFormat::Parquet, &schema, mode)
                .err()
                .unwrap();
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        };
        let all = FileSinkConfig {
            max_rows_per_file: Some(10),
            max_file_size: Some(bytesize::ByteSize(1000)),
            target_file_size: Some(bytesize::ByteSize(100)),
            partition_by: vec!["Shop".into()],
            ..FileSinkConfig::default()
        };
        let text = errors(all, OutputMode::Complete);
        for key in [
            "max_rows_per_file",
            "max_file_size",
            "target_file_size",
            "partition_by",
        ] {
            assert!(
                text.contains(&format!("{key}: applies to the append and update modes")),
                "{text}"
            );
        }
        let bad = FileSinkConfig {
            max_rows_per_file: Some(0),
            partition_by: vec!["Nope".into()],
            max_file_size: Some(bytesize::ByteSize::mib(1)),
            target_file_size: Some(bytesize::ByteSize::mib(2)),
            ..FileSinkConfig::default()
        };
        let text = errors(bad, OutputMode::Append);
        assert!(
            text.contains("target_file_size: 2.0 MiB is over max_file_size (1.0 MiB)"),
            "{text}"
        );
        let early = FileSinkConfig {
            rollover_interval: Some("1m".into()),
            ..FileSinkConfig::default()
        };
        assert!(errors(early, OutputMode::Append)
            .contains("rollover_interval: applies with target_file_size only"),);
        assert!(
            text.contains("max_rows_per_file: must be at least 1"),
            "{text}"
        );
        assert!(
            text.contains("partition_by: no column \"Nope\" to partition by"),
            "{text}"
        );
    }

    #[test]
    fn complete_mode_replaces_one_result_file() {
        let dir = tempfile::tempdir().unwrap();
        let (schema, mut sink) = sink(dir.path(), FileFormat::Csv, OutputMode::Complete);
        for (epoch, count) in [(1, 5), (2, 9)] {
            sink.write(&batch(&schema, &["a"], &[count])).unwrap();
            sink.pre_commit(Epoch(epoch)).unwrap();
            sink.commit(Epoch(epoch)).unwrap();
        }
        assert_eq!(visible(dir.path()), ["result.csv"]);
        assert_eq!(
            fs::read_to_string(dir.path().join("result.csv")).unwrap(),
            "Shop,Sale_Count\na,9\n"
        );
    }

    #[test]
    fn update_mode_adds_the_epoch_column() {
        let dir = tempfile::tempdir().unwrap();
        let (schema, mut sink) = sink(dir.path(), FileFormat::Csv, OutputMode::Update);
        sink.write(&batch(&schema, &["a"], &[3])).unwrap();
        sink.pre_commit(Epoch(1)).unwrap();
        sink.commit(Epoch(1)).unwrap();
        let text = fs::read_to_string(dir.path().join("part-000001-0000.csv")).unwrap();
        assert_eq!(text, "Shop,Sale_Count,epoch\na,3,1\n");
    }

    #[test]
    fn refuses_a_folder_with_output_of_an_earlier_run() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("part-000001-0000.parquet"), b"x").unwrap();
        let schema = parse_ddl("Shop STRING").unwrap();
        let config = FileSinkConfig {
            path: dir.path().display().to_string(),
            ..FileSinkConfig::default()
        };
        let settings = config
            .validate(FileFormat::Parquet, &schema, OutputMode::Append)
            .unwrap();
        assert_refused_as_earlier_output(&settings);
    }

    #[test]
    fn a_restart_commits_what_the_checkpoint_left_pending_and_drops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (schema, mut sink) = sink(dir.path(), FileFormat::Csv, OutputMode::Append);
        sink.write(&batch(&schema, &["a"], &[1])).unwrap();
        sink.pre_commit(Epoch(1)).unwrap();
        let state = sink.snapshot(Epoch(1)).unwrap();
        // Epoch 2 is written and pre-committed, but its checkpoint never completes.
        sink.write(&batch(&schema, &["b"], &[2])).unwrap();
        sink.pre_commit(Epoch(2)).unwrap();
        sink.write(&batch(&schema, &["c"], &[3])).unwrap();
        drop(sink); // the crash: nothing was committed

        let state = state.delta.into_entries();
        let settings = FileSinkConfig {
            path: dir.path().display().to_string(),
            ..FileSinkConfig::default()
        }
        .validate(FileFormat::Csv, &schema, OutputMode::Append)
        .unwrap();
        let mut restarted = settings.build().unwrap();
        restarted.start(Some((Epoch(1), state.clone()))).unwrap();
        assert_eq!(visible(dir.path()), ["part-000001-0000.csv"]);
        assert!(
            fs::read_dir(dir.path().join(TMP_DIR))
                .unwrap()
                .next()
                .is_none(),
            "epoch 2's files are gone"
        );
        // Recovering twice from the same checkpoint is harmless.
        settings
            .build()
            .unwrap()
            .start(Some((Epoch(1), state)))
            .unwrap();
        assert_eq!(visible(dir.path()), ["part-000001-0000.csv"]);
    }

    #[test]
    fn options_of_the_other_format_are_refused() {
        let schema = parse_ddl("Shop STRING").unwrap();
        let config = FileSinkConfig {
            path: "x".into(),
            sep: Some(";".into()),
            ..FileSinkConfig::default()
        };
        let errors = config
            .validate(FileFormat::Parquet, &schema, OutputMode::Append)
            .unwrap_err();
        assert_eq!(errors[0].to_string(), "sep: applies to csv sinks only");
    }
}
