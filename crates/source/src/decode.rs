//! Decoding one CSV file into Arrow batches, with Spark's treatment of malformed rows.
//!
//! The fast path is arrow-csv's decoder over the file's bytes, batch by batch. A batch that
//! decoder refuses (a value that does not parse as its type, a row with the wrong number of
//! fields, bytes that are not UTF-8) is read again from its first byte, record by record,
//! and every malformed row is handled as the source's `mode` says. Clean files never pay
//! for the careful path.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{new_null_array, ArrayRef, RecordBatch, StringArray};
use arrow_csv::reader::{Decoder, ReaderBuilder};
use arrow_schema::{DataType, Field, Schema};
use weir_core::{ddl_type_name, Error, Result};

use crate::config::{CsvSourceSettings, MalformedMode};

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

/// What one step of decoding produced.
#[derive(Debug)]
pub(crate) struct Decoded {
    /// The rows kept, in the source's output schema; `None` if every row was dropped.
    pub(crate) batch: Option<RecordBatch>,
    /// Input records consumed, kept or not: the position a checkpoint records.
    pub(crate) records: u64,
    /// The malformed rows among them.
    pub(crate) bad: Vec<BadRecord>,
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
        }
    }
}

/// Reads one file from its start (or from a checkpoint's position in it), one batch at a time.
pub(crate) struct FileDecoder {
    path: PathBuf,
    settings: CsvSourceSettings,
    reader: BufReader<File>,
    decoder: Decoder,
    /// Bytes of the file consumed so far.
    offset: u64,
    /// An offset at the start of a line and that line's number, so that line numbers are
    /// counted from the last one known rather than from the start of the file.
    known_line: (u64, u64),
    /// The header line is still ahead.
    header_pending: bool,
    /// Records a checkpoint had already read: consumed without being emitted or judged.
    skip: u64,
}

/// A UTF-8 byte-order mark: text editors put one before the first line; it is not data.
const BOM: &[u8] = b"\xEF\xBB\xBF";

impl FileDecoder {
    /// Opens `path`; the first `skip` records are passed over.
    pub(crate) fn open(path: &Path, settings: CsvSourceSettings, skip: u64) -> io::Result<Self> {
        let mut reader = BufReader::with_capacity(1 << 20, File::open(path)?);
        let offset = if reader.fill_buf()?.starts_with(BOM) {
            reader.consume(BOM.len());
            BOM.len() as u64
        } else {
            0
        };
        let decoder = fast_decoder(&settings, settings.header);
        Ok(FileDecoder {
            path: path.to_path_buf(),
            header_pending: settings.header,
            settings,
            reader,
            decoder,
            offset,
            known_line: (0, 1),
            skip,
        })
    }

    /// The next batch of records, or `None` at the end of the file.
    pub(crate) fn next(&mut self) -> Result<Option<Decoded>> {
        let start = self.offset;
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) => return Err(Error::io("cannot read", &self.path, e)),
            };
            let used = match self.decoder.decode(buf) {
                Ok(used) => used,
                Err(_) => return self.careful(start),
            };
            self.reader.consume(used);
            self.offset += used as u64;
            if used == 0 || self.decoder.capacity() == 0 {
                break;
            }
        }
        let batch = match self.decoder.flush() {
            Ok(Some(batch)) => batch,
            Ok(None) => return Ok(None),
            Err(_) => return self.careful(start),
        };
        // A time that does not parse with the source's pattern: judge the batch row by row.
        let Some(batch) = self.settings.times.finish(batch, &self.settings.parsed) else {
            return self.careful(start);
        };
        self.header_pending = false;
        let records = batch.num_rows() as u64;
        let skipped = self.skip.min(records);
        self.skip -= skipped;
        let batch = match skipped < records {
            true => {
                let kept = batch.slice(skipped as usize, (records - skipped) as usize);
                let nulls = new_null_array(&DataType::Utf8, kept.num_rows());
                Some(self.output(kept, nulls)?)
            }
            false => None,
        };
        Ok(Some(Decoded {
            batch,
            records,
            bad: Vec::new(),
        }))
    }

    /// Reads the batch that starts at byte `start` again, record by record, and judges each
    /// row. Ends with the fast path ready to go on after the batch.
    fn careful(&mut self, start: u64) -> Result<Option<Decoded>> {
        let first_line = self.line_at(start)?;
        let s = &self.settings;
        self.reader
            .seek(SeekFrom::Start(start))
            .map_err(|e| self.io(e))?;
        let mut csv = ::csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(s.sep)
            .quote(s.quote)
            .escape(Some(s.escape))
            .from_reader(Tee {
                inner: &mut self.reader,
                seen: Vec::new(),
            });
        let wanted = s.batch_size + usize::from(self.header_pending);
        let mut rows: Vec<Row> = Vec::new();
        let (mut line, mut counted) = (first_line, 0);
        let mut record = ::csv::ByteRecord::new();
        while rows.len() < wanted {
            let more = csv
                .read_byte_record(&mut record)
                .map_err(|e| Error::Input(format!("{}: cannot read: {e}", self.path.display())))?;
            if !more {
                break;
            }
            let mut begin = record.position().map_or(0, |p| p.byte()) as usize;
            let end = csv.position().byte() as usize;
            // After a CRLF or an empty line the record's position is at the line break before
            // it: the row's own text (and line) starts after the breaks, as Spark reports it.
            let seen = &csv.get_ref().seen;
            while begin < end && matches!(seen.get(begin), Some(b'\r' | b'\n')) {
                begin += 1;
            }
            line += newlines(&seen[counted..begin]);
            counted = begin;
            rows.push(Row {
                line,
                span: (begin, end),
                fields: record.clone(),
            });
        }
        let consumed = csv.position().byte();
        let seen = csv.into_inner().seen;
        let end = start + consumed;
        self.known_line = (end, first_line + newlines(&seen[..consumed as usize]));
        self.reader
            .seek(SeekFrom::Start(end))
            .map_err(|e| self.io(e))?;
        self.offset = end;
        if self.header_pending && !rows.is_empty() {
            rows.remove(0);
        }
        self.header_pending = false;
        self.decoder = fast_decoder(&self.settings, false);
        if rows.is_empty() {
            return Ok(None);
        }
        let records = rows.len() as u64;
        let skipped = self.skip.min(records);
        self.skip -= skipped;
        rows.drain(..skipped as usize);
        self.judge(rows, &seen, records).map(Some)
    }

    /// Decides, row by row, what is kept and what is refused, and decodes what is kept.
    fn judge(&self, rows: Vec<Row>, seen: &[u8], records: u64) -> Result<Decoded> {
        let schema = &self.settings.parsed;
        let width = schema.fields().len();
        // The first thing wrong with each row, and which of its fields are usable.
        let mut reasons: Vec<Option<String>> = vec![None; rows.len()];
        let mut usable = vec![true; rows.len() * width];
        for (i, row) in rows.iter().enumerate() {
            if row.fields.len() != width {
                reasons[i] = Some(format!(
                    "expected {width} fields, found {}",
                    row.fields.len()
                ));
            }
        }
        for (c, field) in schema.fields().iter().enumerate() {
            let mut values = Vec::with_capacity(rows.len());
            for (i, row) in rows.iter().enumerate() {
                match row.fields.get(c) {
                    Some(value) if !value.is_empty() => values.push((i, value)),
                    // Missing or empty: null, which a NOT NULL column cannot hold.
                    _ if !field.is_nullable() => {
                        usable[i * width + c] = false;
                        reasons[i].get_or_insert_with(|| {
                            format!("field {}: empty, but the column is NOT NULL", field.name())
                        });
                    }
                    _ => {}
                }
            }
            let mut refused = Vec::new();
            let times = &self.settings.times;
            match times.pattern(c) {
                Some(pattern) => {
                    for (i, value) in &values {
                        if times.parses(c, value) == Some(false) {
                            refused.push(*i);
                        }
                    }
                    for &i in &refused {
                        let value = rows[i].fields.get(c).unwrap_or_default();
                        reasons[i].get_or_insert_with(|| {
                            format!("{} (the pattern is \"{pattern}\")", refusal(field, value))
                        });
                    }
                }
                None => {
                    find_refused(times.read.field(c), &values, &mut refused);
                    for &i in &refused {
                        let value = rows[i].fields.get(c).unwrap_or_default();
                        reasons[i].get_or_insert_with(|| refusal(field, value));
                    }
                }
            }
            for i in refused {
                usable[i * width + c] = false;
            }
        }

        let mode = self.settings.mode;
        let mut bad = Vec::new();
        let mut kept = Vec::new();
        for (i, (row, reason)) in rows.iter().zip(reasons).enumerate() {
            let Some(reason) = reason else {
                kept.push((i, None));
                continue;
            };
            let raw = trim_line_end(&seen[row.span.0..row.span.1]);
            if mode == MalformedMode::FailFast {
                return Err(Error::Input(format!(
                    "{}:{}: {reason}",
                    self.path.display(),
                    row.line
                )));
            }
            // A NOT NULL column cannot take the null that stands for a bad value.
            let fillable =
                (0..width).all(|c| usable[i * width + c] || schema.field(c).is_nullable());
            if mode == MalformedMode::Permissive && fillable {
                kept.push((i, Some(String::from_utf8_lossy(raw).into_owned())));
            }
            bad.push(BadRecord {
                line: row.line,
                reason,
                raw: raw.to_vec(),
            });
        }
        let batch = match kept.is_empty() {
            true => None,
            false => Some(self.decode_kept(&rows, &usable, &kept)?),
        };
        Ok(Decoded {
            batch,
            records,
            bad,
        })
    }

    /// Decodes the kept rows, with a null for every unusable field.
    fn decode_kept(
        &self,
        rows: &[Row],
        usable: &[bool],
        kept: &[(usize, Option<String>)],
    ) -> Result<RecordBatch> {
        let width = self.settings.parsed.fields().len();
        let internal = |e: &dyn std::fmt::Display| {
            Error::Internal(format!(
                "{}: rows judged sound did not decode: {e}",
                self.path.display()
            ))
        };
        let mut writer = ::csv::WriterBuilder::new()
            .quote_style(::csv::QuoteStyle::Always)
            .from_writer(Vec::new());
        for (i, _) in kept {
            let row = &rows[*i];
            let fields = (0..width).map(|c| match usable[i * width + c] {
                true => row.fields.get(c).unwrap_or_default(),
                false => &[][..],
            });
            writer.write_record(fields).map_err(|e| internal(&e))?;
        }
        let text = writer.into_inner().map_err(|e| internal(&e))?;
        let mut decoder = ReaderBuilder::new(self.settings.times.read.clone())
            .with_batch_size(kept.len())
            .build_decoder();
        let read = decode_all(&mut decoder, &text)
            .map_err(|e| internal(&e))?
            .ok_or_else(|| internal(&"no rows"))?;
        let parsed = self
            .settings
            .times
            .finish(read, &self.settings.parsed)
            .ok_or_else(|| internal(&"a time judged sound did not parse"))?;
        let corrupt: StringArray = kept.iter().map(|(_, raw)| raw.as_deref()).collect();
        self.output(parsed, Arc::new(corrupt))
    }

    /// The parsed columns plus, where the source has one, the corrupt-record column.
    fn output(&self, parsed: RecordBatch, corrupt: ArrayRef) -> Result<RecordBatch> {
        let Some(at) = self.settings.corrupt_at else {
            return Ok(parsed);
        };
        let mut columns = parsed.columns().to_vec();
        columns.insert(at, corrupt);
        RecordBatch::try_new(self.settings.schema.clone(), columns)
            .map_err(|e| Error::arrow(self.path.display().to_string(), e))
    }

    /// The number of the line that starts at byte `offset`, counted from the last line known.
    fn line_at(&mut self, offset: u64) -> Result<u64> {
        let (mut from, mut line) = self.known_line;
        if offset < from {
            (from, line) = (0, 1);
        }
        let mut file = File::open(&self.path).map_err(|e| self.io(e))?;
        file.seek(SeekFrom::Start(from)).map_err(|e| self.io(e))?;
        let mut chunk = vec![0; 1 << 16];
        let mut left = offset - from;
        while left > 0 {
            let want = chunk.len().min(left as usize);
            let n = file.read(&mut chunk[..want]).map_err(|e| self.io(e))?;
            if n == 0 {
                break;
            }
            line += newlines(&chunk[..n]);
            left -= n as u64;
        }
        self.known_line = (offset, line);
        Ok(line)
    }

    fn io(&self, e: io::Error) -> Error {
        Error::io("cannot read", &self.path, e)
    }
}

/// One record read on the careful path.
struct Row {
    /// The line it starts on.
    line: u64,
    /// Where it is in the bytes read since the batch started.
    span: (usize, usize),
    fields: ::csv::ByteRecord,
}

/// Keeps a copy of every byte read, so that a malformed row can be reported as written.
struct Tee<'a, R> {
    inner: &'a mut R,
    seen: Vec<u8>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

fn fast_decoder(settings: &CsvSourceSettings, header: bool) -> Decoder {
    ReaderBuilder::new(settings.times.read.clone())
        .with_header(header)
        .with_delimiter(settings.sep)
        .with_quote(settings.quote)
        .with_escape(settings.escape)
        .with_batch_size(settings.batch_size)
        .build_decoder()
}

/// Decodes all of `text`, which holds whole records, into one batch.
fn decode_all(
    decoder: &mut Decoder,
    mut text: &[u8],
) -> Result<Option<RecordBatch>, arrow_schema::ArrowError> {
    loop {
        let used = decoder.decode(text)?;
        text = &text[used..];
        if used == 0 {
            break;
        }
    }
    decoder.flush()
}

/// Adds to `refused` the rows (of `values`, pairs of row and value) whose value arrow-csv
/// does not parse as `field`'s type. Judging with arrow-csv itself keeps the careful path's
/// verdict the same as the fast path's; halving finds k bad values in about k·log n tries.
fn find_refused(field: &Field, values: &[(usize, &[u8])], refused: &mut Vec<usize>) {
    if values.is_empty() || parses(field, values) {
        return;
    }
    if let [(row, _)] = values {
        refused.push(*row);
        return;
    }
    let (left, right) = values.split_at(values.len() / 2);
    find_refused(field, left, refused);
    find_refused(field, right, refused);
}

fn parses(field: &Field, values: &[(usize, &[u8])]) -> bool {
    let mut text = Vec::new();
    for (_, value) in values {
        text.push(b'"');
        for &b in *value {
            if b == b'"' {
                text.push(b'"');
            }
            text.push(b);
        }
        text.extend_from_slice(b"\"\n");
    }
    let schema = Schema::new(vec![field.clone().with_nullable(true)]);
    let mut decoder = ReaderBuilder::new(Arc::new(schema))
        .with_batch_size(values.len())
        .build_decoder();
    decode_all(&mut decoder, &text).is_ok()
}

/// Why `value` is not a `field`: `field Sale_Count: "12x" is not an INT`.
fn refusal(field: &Field, value: &[u8]) -> String {
    let name = field.name();
    let Ok(text) = std::str::from_utf8(value) else {
        return format!("field {name}: the bytes are not valid UTF-8");
    };
    let type_name = ddl_type_name(field.data_type());
    let shown: String = match text.chars().count() > 40 {
        true => text.chars().take(40).chain("…".chars()).collect(),
        false => text.to_string(),
    };
    let integer = matches!(field.data_type(), DataType::Int32 | DataType::Int64);
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if integer && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return format!("field {name}: {shown} is out of range for {type_name}");
    }
    let article = match type_name.starts_with(['A', 'E', 'I', 'O', 'U']) {
        true => "an",
        false => "a",
    };
    format!("field {name}: \"{shown}\" is not {article} {type_name}")
}

fn newlines(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n').count() as u64
}

fn trim_line_end(raw: &[u8]) -> &[u8] {
    let raw = raw.strip_suffix(b"\n").unwrap_or(raw);
    raw.strip_suffix(b"\r").unwrap_or(raw)
}
