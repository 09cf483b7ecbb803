//! Decoding one CSV or JSON lines file into Arrow batches, with Spark's rules for records,
//! values and malformed rows.
//!
//! One pass: the file's bytes are split into records by Spark's quoting rules
//! ([`crate::split`]) or one JSON object per line ([`crate::json`]), and each column's
//! values are read by Spark's value rules ([`crate::values`]) straight into its Arrow array.
//! A value that does not read (or, in JSON, is written as a kind its type does not admit,
//! such as `"12"` for an INT) is null in the array and makes its row malformed; a CSV row
//! with the wrong number of fields, or a line that is not one JSON object, is malformed
//! too. What happens to a malformed row is the source's `mode`.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::builder::{BooleanBuilder, PrimitiveBuilder, StringBuilder};
use arrow_array::types::{
    Date32Type, Decimal128Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{
    new_null_array, ArrayRef, ArrowPrimitiveType, BooleanArray, RecordBatch, StringArray,
    UInt64Array,
};
use arrow_buffer::{Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};
use arrow_schema::{DataType, Field};
use weir_core::{ddl_type_name, Error, Result};

use crate::config::{CsvSourceSettings, Format, MalformedMode};
use crate::json::{split_json, JsonColumns};
use crate::split::{split, Dialect, Kind, Record, Records};
use crate::values::{self, Bad};

/// A row the source did not take as it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    /// The line of the file the row starts on, 1-based (the header is line 1); 0 when the
    /// whole file was refused.
    pub line: u64,
    /// What is wrong, in the pipeline file's vocabulary.
    pub reason: String,
    /// The row as it is in the file, without its line ending.
    pub raw: Vec<u8>,
}

/// `bad` as a batch of [`weir_core::bad_records_schema`], each with the file (or stream) it
/// came from, for the source's bad-records sink.
pub(crate) fn bad_records_batch<'a>(
    bad: impl Iterator<Item = (&'a str, &'a BadRecord)> + Clone,
) -> Result<RecordBatch> {
    let paths: StringArray = bad.clone().map(|(p, _)| Some(p)).collect();
    let lines: UInt64Array = bad.clone().map(|(_, b)| Some(b.line)).collect();
    let reasons: StringArray = bad.clone().map(|(_, b)| Some(b.reason.as_str())).collect();
    let raws: StringArray = bad
        .map(|(_, b)| Some(String::from_utf8_lossy(&b.raw)))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(paths),
        Arc::new(lines),
        Arc::new(reasons),
        Arc::new(raws),
    ];
    RecordBatch::try_new(weir_core::bad_records_schema(), columns)
        .map_err(|e| Error::arrow("bad records", e))
}

/// What one step of decoding produced.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// The rows kept, in the source's output schema; `None` if every row was dropped.
    pub(crate) batch: Option<RecordBatch>,
    /// Input records consumed, kept or not: the position a checkpoint records.
    pub(crate) records: u64,
    /// The malformed rows among them.
    pub(crate) bad: Vec<BadRecord>,
    /// The lines of the rows left out of `batch` (dropped as malformed), in order: a source
    /// that adds columns of its own per message lines them up with the rows kept.
    pub(crate) dropped: Vec<u64>,
}

impl Decoded {
    /// A file that cannot be read at all, refused as one bad record.
    pub(crate) fn refused(reason: String) -> Self {
        Decoded {
            batch: None,
            records: 0,
            bad: vec![BadRecord {
                line: 0,
                reason,
                raw: Vec::new(),
            }],
            dropped: Vec::new(),
        }
    }
}

/// Reads one file from its start (or from a checkpoint's position in it), one batch at a time;
/// or a run of messages, one per line ([`FileDecoder::messages`]).
pub(crate) struct FileDecoder {
    /// The file, or what the messages are from (`nats stream ORDERS`), for messages.
    path: PathBuf,
    /// For messages: each line's sequence number in its stream, by line (line 1 first), so
    /// that a message names the message rather than a line of a buffer.
    sequences: Option<Vec<u64>>,
    /// What a message's number is called in its stream: `sequence` (NATS), `offset` (Kafka).
    numbered_by: &'static str,
    settings: CsvSourceSettings,
    dialect: Dialect,
    /// JSON only: the columns keys are looked up in.
    json: Option<JsonColumns>,
    file: Box<dyn Read + Send>,
    /// The file's size when opened.
    size: u64,
    /// Bytes read from the file; those from `pos` on are not yet taken into a batch.
    buf: Vec<u8>,
    pos: usize,
    /// Nothing follows `buf` in the file.
    eof: bool,
    /// The line `buf[pos..]` starts on.
    line: u64,
    /// The header line is still ahead.
    header_pending: bool,
    /// Records a checkpoint had already read: consumed without being emitted or judged.
    skip: u64,
    /// The records of the batch being decoded (kept to reuse its buffers).
    records: Records,
}

/// A UTF-8 byte-order mark: text editors put one before the first line; it is not data.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes read from the file at a time.
const READ_SIZE: usize = 1 << 20;

/// The buffer's usual size: bytes taken are dropped (and the rest moved to the front) only
/// when fewer than [`READ_SIZE`] are free at the end, so each byte moves rarely.
const BUFFER_SIZE: usize = 4 * READ_SIZE;

/// What is wrong with one row, and whether permissive mode can keep it.
struct Verdict {
    /// The first thing found wrong.
    reason: String,
    /// No NOT NULL column lacks its value (a null cannot stand in for it there).
    fillable: bool,
}

impl FileDecoder {
    /// Opens `path`; the first `skip` records are passed over.
    pub(crate) fn open(path: &Path, settings: CsvSourceSettings, skip: u64) -> io::Result<Self> {
        let file = File::open(path)?;
        // A small file gets a buffer its size (and some, for the read that finds the end):
        // a million 10-row files need not each map and unmap 4 MiB.
        let size = file.metadata().map_or(u64::MAX, |m| m.len());
        let capacity =
            usize::try_from(size.saturating_add(64)).map_or(BUFFER_SIZE, |s| s.min(BUFFER_SIZE));
        Self::over(path, Box::new(file), size, capacity, settings, skip)
    }

    /// Reads `bytes`, one message's value per line, the message on line `i` (1-based) having
    /// number `sequences[i - 1]` in the stream `from` names (a number `numbered_by` calls
    /// `sequence` or `offset`, in messages). Line breaks inside a JSON message must have been
    /// replaced (they can only be whitespace there).
    pub(crate) fn messages(
        from: &str,
        bytes: Vec<u8>,
        sequences: Vec<u64>,
        numbered_by: &'static str,
        settings: CsvSourceSettings,
    ) -> io::Result<Self> {
        let size = bytes.len() as u64;
        let capacity = bytes.len() + 64;
        let mut decoder = Self::over(
            Path::new(from),
            Box::new(io::Cursor::new(bytes)),
            size,
            capacity,
            settings,
            0,
        )?;
        decoder.sequences = Some(sequences);
        decoder.numbered_by = numbered_by;
        Ok(decoder)
    }

    fn over(
        path: &Path,
        file: Box<dyn Read + Send>,
        size: u64,
        capacity: usize,
        settings: CsvSourceSettings,
        skip: u64,
    ) -> io::Result<Self> {
        let mut decoder = FileDecoder {
            path: path.to_path_buf(),
            sequences: None,
            numbered_by: "sequence",
            dialect: Dialect::new(settings.sep, settings.quote, settings.escape),
            json: (settings.format == Format::Json).then(|| JsonColumns::new(&settings.parsed)),
            header_pending: settings.header,
            settings,
            file,
            size,
            buf: Vec::with_capacity(capacity),
            pos: 0,
            eof: false,
            line: 1,
            skip,
            records: Records::default(),
        };
        while decoder.buf.len() < BOM.len() && !decoder.eof {
            decoder.fill()?;
        }
        if decoder.buf.starts_with(BOM) {
            decoder.pos = BOM.len();
        }
        Ok(decoder)
    }

    /// The file's size when it was opened.
    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    /// Reads more of the file after `buf` (which grows if a batch needs it).
    fn fill(&mut self) -> io::Result<()> {
        let n = (&mut self.file)
            .take(READ_SIZE as u64)
            .read_to_end(&mut self.buf)?;
        self.eof = n == 0;
        Ok(())
    }

    /// The next batch of records, or `None` at the end of the file.
    pub(crate) fn next(&mut self) -> Result<Option<Decoded>> {
        let header = usize::from(self.header_pending);
        let wanted = self.settings.batch_size + header;
        if self.buf.capacity() - self.buf.len() < READ_SIZE {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let mut records = std::mem::take(&mut self.records);
        records.clear();
        let (mut consumed, mut line) = (self.pos, self.line);
        loop {
            let left = wanted - records.rows.len();
            let (input, eof) = (&self.buf[..], self.eof);
            let done = match &self.json {
                None => split(
                    &self.dialect,
                    input,
                    consumed,
                    line,
                    eof,
                    left,
                    &mut records,
                ),
                Some(columns) => {
                    split_json(columns, input, consumed, line, eof, left, &mut records)
                }
            };
            (consumed, line) = (done.consumed, done.line);
            if records.rows.len() == wanted || self.eof {
                break;
            }
            if let Err(e) = self.fill() {
                return Err(Error::io("cannot read", &self.path, e));
            }
        }
        let decoded = match records.rows.len() > header {
            true => {
                self.header_pending = false;
                let count = (records.rows.len() - header) as u64;
                let skipped = self.skip.min(count);
                self.skip -= skipped;
                let from = header + skipped as usize;
                self.decode(&records, from, count).map(Some)
            }
            false => Ok(None),
        };
        self.pos = consumed;
        self.line = line;
        self.records = records;
        decoded
    }

    /// Reads the records from `from` on into the source's schema, judging each row; `count`
    /// is the number of records the step consumed.
    fn decode(&self, records: &Records, from: usize, count: u64) -> Result<Decoded> {
        let rows = &records.rows[from..];
        let schema = &self.settings.parsed;
        let width = schema.fields().len();
        // The malformed rows, in order, with what is wrong with each.
        let mut verdicts: BTreeMap<usize, Verdict> = BTreeMap::new();
        let json = self.json.is_some();
        for (i, row) in rows.iter().enumerate() {
            if !json && row.fields != width {
                verdicts.insert(
                    i,
                    Verdict {
                        reason: format!("expected {width} fields, found {}", row.fields),
                        fillable: true,
                    },
                );
            }
        }
        for (row, reason) in records.problems() {
            if let Some(i) = row.checked_sub(from) {
                let reason = reason.clone();
                verdicts.insert(
                    i,
                    Verdict {
                        reason,
                        fillable: true,
                    },
                );
            }
        }
        let mut columns = Vec::with_capacity(width + 1);
        for (c, field) in schema.fields().iter().enumerate() {
            let mut column = Column {
                c,
                field,
                records,
                input: &self.buf,
                path: &self.path,
                rows,
                verdicts: &mut verdicts,
                pattern: self.settings.times.pattern(c),
                json,
            };
            let times = &self.settings.times;
            let array: ArrayRef = match field.data_type() {
                DataType::Utf8 => Arc::new(column.strings()?),
                DataType::Boolean => Arc::new(column.booleans()),
                DataType::Int32 => Arc::new(column.primitive::<Int32Type>(values::int32)),
                DataType::Int64 => Arc::new(column.primitive::<Int64Type>(values::int64)),
                DataType::Float64 => Arc::new(column.primitive::<Float64Type>(values::double)),
                DataType::Date32 => Arc::new(column.primitive::<Date32Type>(|t| times.date(c, t))),
                // A JSON number for a timestamp is seconds since the epoch, as in Spark.
                DataType::Timestamp(..) => Arc::new(
                    column
                        .primitive_by_kind::<TimestampMicrosecondType>(|t, kind| match kind {
                            Kind::Int => values::int64(t)?
                                .checked_mul(1_000_000)
                                .ok_or(Bad::OutOfRange),
                            _ => times.timestamp(c, t),
                        })
                        .with_data_type(field.data_type().clone()),
                ),
                &DataType::Decimal128(precision, scale) => Arc::new(
                    column
                        .primitive::<Decimal128Type>(|t| values::decimal(t, precision, scale))
                        .with_data_type(field.data_type().clone()),
                ),
                other => {
                    return Err(Error::Internal(format!(
                        "the CSV source cannot read {other} columns"
                    )))
                }
            };
            columns.push(array);
        }

        let mode = self.settings.mode;
        if let (MalformedMode::FailFast, Some((&i, verdict))) = (mode, verdicts.first_key_value()) {
            return Err(Error::Input(format!(
                "{}: {}",
                self.locate(rows[i].line),
                verdict.reason
            )));
        }
        let mut bad = Vec::with_capacity(verdicts.len());
        let sequences = self.sequences.as_deref();
        let mut keep = vec![true; rows.len()];
        let mut corrupt: Vec<Option<String>> = Vec::new();
        for (i, verdict) in verdicts {
            let row = &rows[i];
            let raw = trim_line_end(&self.buf[row.start..row.end]);
            if mode == MalformedMode::Permissive && verdict.fillable {
                if self.settings.corrupt_at.is_some() {
                    corrupt.resize(rows.len(), None);
                    corrupt[i] = Some(String::from_utf8_lossy(raw).into_owned());
                }
            } else {
                keep[i] = false;
            }
            bad.push(BadRecord {
                line: match sequences {
                    Some(s) => Self::sequence(s, row.line),
                    None => row.line,
                },
                reason: verdict.reason,
                raw: raw.to_vec(),
            });
        }
        if let Some(at) = self.settings.corrupt_at {
            let column: ArrayRef = match corrupt.is_empty() {
                true => new_null_array(&DataType::Utf8, rows.len()),
                false => Arc::new(StringArray::from(corrupt)),
            };
            columns.insert(at, column);
        }
        let kept = keep.iter().filter(|&&k| k).count();
        let dropped: Vec<u64> = (rows.iter().zip(&keep))
            .filter(|(_, &k)| !k)
            .map(|(row, _)| row.line)
            .collect();
        if kept < rows.len() {
            let keep = BooleanArray::from(keep);
            for column in &mut columns {
                *column = arrow_select::filter::filter(column, &keep)
                    .map_err(|e| Error::arrow(self.path.display().to_string(), e))?;
            }
        }
        let batch = match kept {
            0 => None,
            _ => Some(
                RecordBatch::try_new(self.settings.schema.clone(), columns)
                    .map_err(|e| Error::arrow(self.path.display().to_string(), e))?,
            ),
        };
        Ok(Decoded {
            batch,
            records: count,
            bad,
            dropped,
        })
    }
}

impl FileDecoder {
    /// Where line `line` is, for a message: `path:line`, or for messages, the stream and the
    /// message's sequence.
    fn locate(&self, line: u64) -> String {
        match &self.sequences {
            None => format!("{}:{line}", self.path.display()),
            Some(s) => format!(
                "{}, {} {}",
                self.path.display(),
                self.numbered_by,
                Self::sequence(s, line)
            ),
        }
    }

    fn sequence(sequences: &[u64], line: u64) -> u64 {
        let at = usize::try_from(line)
            .unwrap_or(usize::MAX)
            .saturating_sub(1);
        sequences.get(at).copied().unwrap_or(0)
    }
}

/// One column of a batch being read, and the verdicts its values add to.
struct Column<'a> {
    c: usize,
    field: &'a Field,
    records: &'a Records,
    /// The bytes the records were split from.
    input: &'a [u8],
    /// The file, for messages.
    path: &'a Path,
    rows: &'a [Record],
    verdicts: &'a mut BTreeMap<usize, Verdict>,
    /// The column's time pattern as written, for messages.
    pattern: Option<&'a str>,
    /// The values are JSON's: each admits only some types, and an empty string is a value.
    json: bool,
}

impl<'a> Column<'a> {
    /// Row `i`'s value for the column, `None` where it is empty or missing: null, which a
    /// NOT NULL column cannot hold.
    #[inline(always)]
    fn value(&mut self, i: usize) -> Option<&'a [u8]> {
        let (records, input) = (self.records, self.input);
        // Spark's CSV reads an empty field as null; JSON's `""` is the empty string (and not
        // an INT or a DATE: a malformed value there).
        let value = records
            .field(input, &self.rows[i], self.c)
            .filter(|v| self.json || !v.is_empty());
        if value.is_none() && !self.field.is_nullable() {
            let name = self.field.name();
            let verdict = self.verdicts.entry(i).or_insert_with(|| Verdict {
                reason: format!("field {name}: empty, but the column is NOT NULL"),
                fillable: false,
            });
            verdict.fillable = false;
        }
        value
    }

    /// Marks row `i` malformed because its value `value` is not of the column's type.
    fn refuse(&mut self, i: usize, value: &[u8], why: Bad) {
        let field = self.field;
        let pattern = self.pattern;
        let verdict = self.verdicts.entry(i).or_insert_with(|| Verdict {
            reason: refusal(field, value, why, pattern),
            fillable: true,
        });
        verdict.fillable &= field.is_nullable();
    }

    /// Reads every row's value with `read` (given what the value was written as), giving
    /// `put` the value or a null.
    fn each<T>(
        &mut self,
        read: impl Fn(&'a [u8], Kind) -> Result<T, Bad>,
        mut put: impl FnMut(Option<T>),
    ) {
        // Whether the column's type takes each kind whatever its text, worked out once for
        // the column rather than once a value: only a string for a DOUBLE needs the text.
        let t = self.field.data_type();
        let takes = KINDS.map(|kind| kind == Kind::String || admits(kind, t, b""));
        for i in 0..self.rows.len() {
            let Some(v) = self.value(i) else {
                put(None);
                continue;
            };
            let kind = match self.json {
                true => self.records.kind(&self.rows[i], self.c),
                false => Kind::Text,
            };
            let taken = match kind {
                Kind::String => admits(kind, t, v),
                _ => takes[kind as usize],
            };
            if !taken {
                put(None);
                self.refuse_kind(i, v, kind);
                continue;
            }
            match read(v, kind) {
                Ok(x) => put(Some(x)),
                Err(why) => {
                    put(None);
                    self.refuse(i, v, why);
                }
            }
        }
    }

    /// Marks row `i` malformed because its JSON value `value` is written as `kind`, which
    /// the column's type does not admit.
    fn refuse_kind(&mut self, i: usize, value: &[u8], kind: Kind) {
        let field = self.field;
        let verdict = self.verdicts.entry(i).or_insert_with(|| Verdict {
            reason: kind_refusal(field, value, kind),
            fillable: true,
        });
        verdict.fillable &= field.is_nullable();
    }

    fn primitive<T: ArrowPrimitiveType>(
        &mut self,
        read: impl Fn(&[u8]) -> Result<T::Native, Bad>,
    ) -> arrow_array::PrimitiveArray<T> {
        self.primitive_by_kind(|v, _| read(v))
    }

    fn primitive_by_kind<T: ArrowPrimitiveType>(
        &mut self,
        read: impl Fn(&[u8], Kind) -> Result<T::Native, Bad>,
    ) -> arrow_array::PrimitiveArray<T> {
        let mut builder = PrimitiveBuilder::<T>::with_capacity(self.rows.len());
        self.each(read, |v| builder.append_option(v));
        builder.finish()
    }

    fn booleans(&mut self) -> arrow_array::BooleanArray {
        let mut builder = BooleanBuilder::with_capacity(self.rows.len());
        self.each(|v, _| values::boolean(v), |v| builder.append_option(v));
        builder.finish()
    }

    fn strings(&mut self) -> Result<StringArray> {
        let rows = self.rows.len();
        let (records, input, c) = (self.records, self.input, self.c);
        let bytes = (self.rows.iter())
            .filter_map(|row| records.field(input, row, c))
            .map(<[u8]>::len)
            .sum();
        let mut text = Vec::with_capacity(bytes);
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0i32);
        // Built only once a value is null, which most columns never are.
        let mut valid = NullBufferBuilder::new(rows);
        for i in 0..rows {
            let value = self.value(i);
            if let Some(v) = value {
                text.extend_from_slice(v);
            }
            valid.append(value.is_some());
            let end = i32::try_from(text.len()).map_err(|_| {
                Error::Input(format!(
                    "{}: column {} holds more than 2 GiB of text in one batch of {rows} rows (make batch_size smaller)",
                    self.path.display(),
                    self.field.name()
                ))
            })?;
            offsets.push(end);
        }
        // One check of the column's text, rather than one per value; only a column with
        // bytes that are not UTF-8 is looked at value by value.
        let nulls = valid.finish();
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        if let Ok(array) = StringArray::try_new(offsets, Buffer::from_vec(text), nulls) {
            return Ok(array);
        }
        let mut builder = StringBuilder::with_capacity(rows, bytes);
        let utf8 = |v, _| std::str::from_utf8(v).map_err(|_| Bad::Malformed);
        self.each(utf8, |v| builder.append_option(v));
        Ok(builder.finish())
    }
}

/// Why `value` is not a `field`: `field Sale_Count: "12x" is not an INT`.
fn refusal(field: &Field, value: &[u8], why: Bad, pattern: Option<&str>) -> String {
    let name = field.name();
    let Ok(text) = std::str::from_utf8(value) else {
        return format!("field {name}: the bytes are not valid UTF-8");
    };
    let type_name = ddl_type_name(field.data_type());
    let shown: String = match text.chars().count() > 40 {
        true => text.chars().take(40).chain("…".chars()).collect(),
        false => text.to_string(),
    };
    if why == Bad::OutOfRange {
        return format!("field {name}: {shown} is out of range for {type_name}");
    }
    let article = match type_name.starts_with(['A', 'E', 'I', 'O', 'U']) {
        true => "an",
        false => "a",
    };
    match pattern {
        Some(pattern) => format!(
            "field {name}: \"{shown}\" is not {article} {type_name} (the pattern is \"{pattern}\")"
        ),
        None => format!("field {name}: \"{shown}\" is not {article} {type_name}"),
    }
}

/// Every [`Kind`], in the order of its values.
const KINDS: [Kind; 7] = [
    Kind::Text,
    Kind::String,
    Kind::Int,
    Kind::Float,
    Kind::NonNumeric,
    Kind::Bool,
    Kind::Nested,
];

/// Whether a column of type `t` takes a value written as `kind` (`text`), by Spark's JSON
/// rules: numbers only for numbers, booleans only for BOOLEAN, strings for STRING, DATE,
/// TIMESTAMP and DECIMAL (and DOUBLE's "NaN" and "Infinity"), anything for STRING. Every
/// CSV value is text, which every type takes.
#[inline]
fn admits(kind: Kind, t: &DataType, text: &[u8]) -> bool {
    use DataType::*;
    match (kind, t) {
        (Kind::Text, _) | (_, Utf8) => true,
        (Kind::Bool, Boolean) => true,
        (Kind::Int, Int32 | Int64 | Float64 | Decimal128(..) | Timestamp(..)) => true,
        (Kind::Float, Float64 | Decimal128(..)) => true,
        (Kind::NonNumeric, Float64) => true,
        (Kind::String, Float64) => matches!(
            text,
            b"NaN" | b"Infinity" | b"+Infinity" | b"-Infinity" | b"INF" | b"+INF" | b"-INF"
        ),
        (Kind::String, Date32 | Timestamp(..) | Decimal128(..)) => true,
        _ => false,
    }
}

/// Why a JSON value written as `kind` is not a `field`: `field Sale_Count: "12" is a JSON
/// string, not an INT`.
fn kind_refusal(field: &Field, value: &[u8], kind: Kind) -> String {
    let written = match kind {
        Kind::String => "a JSON string",
        Kind::Int | Kind::Float | Kind::NonNumeric => "a JSON number",
        Kind::Bool => "a JSON boolean",
        Kind::Nested if value.first() == Some(&b'[') => "a JSON array",
        Kind::Nested => "a JSON object",
        Kind::Text => "text",
    };
    let text = String::from_utf8_lossy(value);
    let shown: String = match text.chars().count() > 40 {
        true => text.chars().take(40).chain("…".chars()).collect(),
        false => text.into_owned(),
    };
    let shown = match kind {
        Kind::String => format!("\"{shown}\""),
        _ => shown,
    };
    let type_name = ddl_type_name(field.data_type());
    let article = match type_name.starts_with(['A', 'E', 'I', 'O', 'U']) {
        true => "an",
        false => "a",
    };
    format!(
        "field {}: {shown} is {written}, not {article} {type_name}",
        field.name()
    )
}

fn trim_line_end(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw.strip_suffix(b"\r").unwrap_or(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_lists_every_kind_at_its_own_index() {
        for (i, kind) in KINDS.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind:?}");
        }
    }
}
