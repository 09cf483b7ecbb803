//! Splitting CSV bytes into records and fields by the rules of Spark's CSV parser.
//!
//! Spark reads CSV with univocity's parser, whose rules differ from RFC 4180 where a file
//! bends them, and Spark users' files do. With Spark's defaults (`escape = '\'`, unescaped
//! quotes handled as `STOP_AT_DELIMITER`):
//!
//! - an unquoted field is taken as written, quotes included (`a"b`);
//! - in a quoted field, the escape character before a quote gives the quote (`\"`), a
//!   doubled escape gives one (`\\`), and before anything else it stays (`\b`); a doubled
//!   quote gives one quote only when the quote is its own escape (`escape = '"'`);
//! - a quote that ends a quoted field but is followed by text other than spaces and a
//!   delimiter was not a closing quote: the field is then everything from its opening quote
//!   to the next delimiter, as written (`"a"b` and, under `\`, `"a""b"`);
//! - spaces between a closing quote and the delimiter are dropped;
//! - a line of only spaces and tabs (or nothing) is not a record.
//!
//! One difference is kept on purpose: a line break inside quotes belongs to the value, as in
//! Spark's `multiLine = true`. Spark's default splits the row there into two broken rows;
//! reading the value whole loses nothing and is what RFC 4180 writers mean.
//!
//! An unquoted field's value is where it is in the input; a quoted one's is unescaped into a
//! buffer of its own. Each record's place in the input is noted too, so that a malformed row
//! can be reported as it was written.

/// The three characters that shape a CSV file.
#[derive(Debug, Clone)]
pub(crate) struct Dialect {
    sep: u8,
    quote: u8,
    escape: u8,
    /// Bytes that end an unquoted value: the separator and the line breaks.
    stops: [bool; 256],
}

impl Dialect {
    pub(crate) fn new(sep: u8, quote: u8, escape: u8) -> Self {
        let mut stops = [false; 256];
        for b in [sep, b'\n', b'\r'] {
            stops[usize::from(b)] = true;
        }
        Dialect {
            sep,
            quote,
            escape,
            stops,
        }
    }
}

/// Where one record is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record {
    /// The line of the file it starts on, 1-based.
    pub(crate) line: u64,
    /// Its first byte in the input.
    pub(crate) start: usize,
    /// The byte after its last, before the line break that ends it.
    pub(crate) end: usize,
    /// Its first field, as an index into the fields of [`Records`].
    first: usize,
    /// How many fields it has.
    pub(crate) fields: usize,
}

/// What a value was written as. Every CSV value is [`Kind::Text`]; a JSON value is one of
/// the others, and a column's type admits only some of them (Spark's JSON rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Text whose type only its column says: CSV.
    Text,
    /// A JSON string, unescaped.
    String,
    /// A JSON number without a fraction or an exponent.
    Int,
    /// A JSON number with a fraction or an exponent.
    Float,
    /// `NaN`, `Infinity`, `+Infinity` or `-Infinity` written bare, as Jackson allows.
    NonNumeric,
    /// `true` or `false`.
    Bool,
    /// An object or an array, as written.
    Nested,
}

/// Records split so far, and where their fields' values are.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// The values of quoted fields, unescaped, one after the other.
    data: Vec<u8>,
    /// Each field's value: a range of the input, or of `data` when the start has
    /// [`IN_DATA`] set, or [`NULL`].
    spans: Vec<(usize, usize)>,
    /// JSON only: what each value in `spans` was written as.
    kinds: Vec<Kind>,
    /// JSON only: the records that could not be read at all, by index into `rows`, with why.
    problems: Vec<(usize, String)>,
    /// The records, in order.
    pub(crate) rows: Vec<Record>,
}

/// Marks a span's start as one in [`Records::data`] rather than in the input.
const IN_DATA: usize = 1 << (usize::BITS - 1);

/// The span of a value that is null or missing (JSON's `null`, or a key not in the object).
const NULL: (usize, usize) = (usize::MAX, 0);

impl Records {
    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.spans.clear();
        self.kinds.clear();
        self.problems.clear();
        self.rows.clear();
    }

    /// What field `c` of `record` was written as.
    pub(crate) fn kind(&self, record: &Record, c: usize) -> Kind {
        self.kinds
            .get(record.first + c)
            .copied()
            .unwrap_or(Kind::Text)
    }

    /// The records that could not be read at all, by index into `rows`, with why.
    pub(crate) fn problems(&self) -> &[(usize, String)] {
        &self.problems
    }

    /// Starts a record of `width` fields, all null until [`set`](Self::set).
    #[inline]
    pub(crate) fn begin(&mut self, line: u64, start: usize, end: usize, width: usize) {
        self.rows.push(Record {
            line,
            start,
            end,
            first: self.spans.len(),
            fields: width,
        });
        // Extended from an iterator of known length: one reservation, then plain writes.
        self.spans.extend(std::iter::repeat_n(NULL, width));
        self.kinds.extend(std::iter::repeat_n(Kind::Text, width));
    }

    /// Field `c` of the record begun last is `input[start..end]`, written as `kind`.
    #[inline(always)]
    pub(crate) fn set(&mut self, c: usize, start: usize, end: usize, kind: Kind) {
        let at = self.last_first() + c;
        self.spans[at] = (start, end);
        self.kinds[at] = kind;
    }

    /// Field `c` of the record begun last is `value`, unescaped, written as `kind`.
    pub(crate) fn set_data(&mut self, c: usize, value: &[u8], kind: Kind) {
        let from = self.data.len();
        self.data.extend_from_slice(value);
        let at = self.last_first() + c;
        self.spans[at] = (from | IN_DATA, self.data.len());
        self.kinds[at] = kind;
    }

    /// The record begun last ends at `end` (found while it was read).
    pub(crate) fn end_last(&mut self, end: usize) {
        if let Some(record) = self.rows.last_mut() {
            record.end = end;
        }
    }

    /// Forgets the record begun last, with the values noted in it, for it to be read again.
    pub(crate) fn drop_last(&mut self) {
        if let Some(record) = self.rows.pop() {
            self.spans.truncate(record.first);
            self.kinds.truncate(record.first);
        }
    }

    /// Field `c` of the record begun last is null (a later duplicate key said so).
    #[inline(always)]
    pub(crate) fn set_null(&mut self, c: usize) {
        let at = self.last_first() + c;
        self.spans[at] = NULL;
    }

    /// The record begun last cannot be read: it keeps no values, and `reason` says why.
    pub(crate) fn spoil(&mut self, reason: String) {
        let Some(record) = self.rows.last_mut() else {
            return;
        };
        let first = record.first;
        record.fields = 0;
        self.spans.truncate(first);
        self.kinds.truncate(first);
        self.problems.push((self.rows.len() - 1, reason));
    }

    #[inline(always)]
    fn last_first(&self) -> usize {
        self.rows.last().map_or(0, |r| r.first)
    }

    /// Field `c` of `record`, split from `input`, or `None` if the record has fewer fields.
    #[inline]
    pub(crate) fn field<'a>(
        &'a self,
        input: &'a [u8],
        record: &Record,
        c: usize,
    ) -> Option<&'a [u8]> {
        if c >= record.fields {
            return None;
        }
        let (start, end) = self.spans[record.first + c];
        if (start, end) == NULL {
            return None;
        }
        Some(match start & IN_DATA {
            0 => &input[start..end],
            _ => &self.data[start ^ IN_DATA..end],
        })
    }

    /// Drops the records from `keep` on, with their values.
    fn truncate(&mut self, keep: usize, fields: usize, data: usize) {
        self.rows.truncate(keep);
        self.spans.truncate(fields);
        self.kinds.truncate(fields.min(self.kinds.len()));
        self.data.truncate(data);
    }
}

/// The input ended inside a record, and more may follow.
struct Cut;

/// How far [`split`] got.
pub(crate) struct Split {
    /// The byte after the last whole record (and the blank lines after it) taken.
    pub(crate) consumed: usize,
    /// The line `consumed` is on.
    pub(crate) line: u64,
}

/// Splits records from `input[from..]` into `out`, at most `max` of them, `line` being the
/// line `from` is on. Unless `eof` says that nothing follows `input`, a record cut by the end
/// of `input` is left for the next call, with more bytes.
pub(crate) fn split(
    dialect: &Dialect,
    input: &[u8],
    from: usize,
    mut line: u64,
    eof: bool,
    max: usize,
    out: &mut Records,
) -> Split {
    let mut at = from;
    let mut taken = 0;
    loop {
        // Lines of nothing but spaces are not records (Spark drops lines that trim to
        // nothing before parsing).
        let mut blank = at;
        while blank < input.len() && input[blank] <= b' ' && !matches!(input[blank], b'\n' | b'\r')
        {
            blank += 1;
        }
        match input.get(blank) {
            Some(b'\n') => {
                (at, line) = (blank + 1, line + 1);
                continue;
            }
            Some(b'\r') if blank + 1 < input.len() || eof => {
                at = blank + 1 + usize::from(input.get(blank + 1) == Some(&b'\n'));
                line += 1;
                continue;
            }
            Some(b'\r') => break,
            None if eof => {
                at = input.len();
                break;
            }
            None => break,
            Some(_) => {}
        }
        if taken == max {
            break;
        }
        let (rows, fields, data) = (out.rows.len(), out.spans.len(), out.data.len());
        match record(dialect, input, at, eof, out) {
            Ok((end, next, breaks)) => {
                out.rows.push(Record {
                    line,
                    start: at,
                    end,
                    first: fields,
                    fields: out.spans.len() - fields,
                });
                line += breaks + u64::from(next > end);
                at = next;
                taken += 1;
            }
            Err(Cut) => {
                out.truncate(rows, fields, data);
                break;
            }
        }
    }
    Split { consumed: at, line }
}

/// Reads the record that starts at `at`: where it ends, where the next one starts, and how
/// many line breaks are inside its quoted values.
fn record(
    d: &Dialect,
    input: &[u8],
    mut at: usize,
    eof: bool,
    out: &mut Records,
) -> Result<(usize, usize, u64), Cut> {
    let start = at;
    let mut quoted = false;
    loop {
        if input.get(at) == Some(&d.quote) {
            quoted = true;
            let from = out.data.len();
            at = quoted_value(d, input, at, eof, &mut out.data)?;
            out.spans.push((from | IN_DATA, out.data.len()));
        } else {
            let from = at;
            while at < input.len() && !d.stops[usize::from(input[at])] {
                at += 1;
            }
            out.spans.push((from, at));
        }
        let breaks = || match quoted {
            true => line_breaks(&input[start..at]),
            false => 0,
        };
        match input.get(at) {
            Some(&b) if b == d.sep => at += 1,
            Some(b'\n') => return Ok((at, at + 1, breaks())),
            Some(b'\r') => match input.get(at + 1) {
                Some(b'\n') => return Ok((at, at + 2, breaks())),
                Some(_) => return Ok((at, at + 1, breaks())),
                None if eof => return Ok((at, at + 1, breaks())),
                None => return Err(Cut),
            },
            Some(_) => unreachable!("a value ends at a separator or a line break"),
            None if eof => return Ok((at, at, breaks())),
            None => return Err(Cut),
        }
    }
}

/// Reads the quoted value whose opening quote is at `at`, as univocity does, into `data`;
/// returns where it ends (at a separator, a line break or the end of the input).
fn quoted_value(
    d: &Dialect,
    input: &[u8],
    at: usize,
    eof: bool,
    data: &mut Vec<u8>,
) -> Result<usize, Cut> {
    let (q, e) = (d.quote, d.escape);
    // univocity's escape of the escape: the escape itself, unless it is the quote.
    let ee = if q == e { 0 } else { e };
    let value_start = data.len();
    // A quote still open at the end of the file: the value is the rest of the file, without
    // the line break that ends it.
    let end_of_input = |end: usize, data: &mut Vec<u8>| {
        if !eof {
            return Err(Cut);
        }
        let value = &data[value_start..];
        let cut = value.strip_suffix(b"\n").unwrap_or(value);
        let cut = cut.strip_suffix(b"\r").unwrap_or(cut).len();
        let line_break = data.len() - value_start - cut;
        data.truncate(value_start + cut);
        // An escape that the line break was to follow escapes nothing: Spark, reading the
        // line alone, drops it. Escapes pair up, so an odd run of them ends with that one.
        let before = &input[at + 1..end - line_break];
        let run = before.iter().rev().take_while(|&&b| b == e).count();
        if line_break > 0 && q != e && run % 2 == 1 && data.last() == Some(&e) {
            data.pop();
        }
        // A quote alone on the last line is the value `"`, as univocity reads it.
        if matches!(&input[at + 1..end], b"" | b"\n" | b"\r" | b"\r\n") {
            data.push(q);
        }
        Ok(end)
    };
    let space = |b: u8| b <= b' ' && b != 0 && b != b'\n' && b != b'\r' && b != d.sep;
    // The character before the one looked at, as univocity keeps it: 0 at the start, and
    // after an escape that was used up.
    let mut prev = 0u8;
    let mut i = at + 1;
    loop {
        let Some(&ch) = input.get(i) else {
            return match prev == q {
                // The value was closed by the file's last byte.
                true if eof => Ok(i),
                _ => end_of_input(i, data),
            };
        };
        if prev == q && (space(ch) || ch == d.sep || ch == b'\n' || ch == b'\r') {
            break;
        }
        if ch != q && ch != e {
            if prev == q {
                // A quote followed by text: it was not a closing quote after all.
                return as_written(d, input, i, value_start, &[], eof, data);
            }
            if prev == e {
                data.push(e);
            }
            let from = i;
            while i < input.len() && input[i] != q && input[i] != e {
                i += 1;
            }
            data.extend_from_slice(&input[from..i]);
            let Some(&stop) = input.get(i) else {
                return end_of_input(i, data);
            };
            prev = stop;
            i += 1;
            continue;
        }
        let Some(seen) = quote_or_escape(d, ee, ch, prev, data) else {
            // A closing quote followed by the escape: univocity keeps the quote and reads on
            // as an unquoted value that still processes escapes.
            data.push(q);
            i = escaped_rest(d, input, i, ch, ee, eof, data)?;
            // At a separator, univocity goes on reading the quoted value after it: the next
            // field joins this one.
            match input.get(i) {
                Some(&b) if b == d.sep => {
                    prev = b;
                    i += 1;
                    continue;
                }
                _ => return Ok(i),
            }
        };
        prev = seen;
        i += 1;
    }
    // After the closing quote: spaces up to the separator or the line's end are dropped;
    // anything else means the quote did not close the value.
    let spaces_from = i;
    while i < input.len() && space(input[i]) {
        i += 1;
    }
    match input.get(i) {
        None if eof => Ok(i),
        None => Err(Cut),
        Some(&b) if b == d.sep || b == b'\n' || b == b'\r' => Ok(i),
        Some(_) => as_written(d, input, i, value_start, &input[spaces_from..i], eof, data),
    }
}

/// The value of a quoted field whose quote turned out not to close it: the opening quote, the
/// value so far, the quote, then `spaces` and the input from `at` to the next separator or
/// line break, as written (univocity's `STOP_AT_DELIMITER`).
fn as_written(
    d: &Dialect,
    input: &[u8],
    mut at: usize,
    value_start: usize,
    spaces: &[u8],
    eof: bool,
    data: &mut Vec<u8>,
) -> Result<usize, Cut> {
    data.insert(value_start, d.quote);
    data.push(d.quote);
    data.extend_from_slice(spaces);
    let from = at;
    while at < input.len() && !d.stops[usize::from(input[at])] {
        at += 1;
    }
    data.extend_from_slice(&input[from..at]);
    match at < input.len() || eof {
        true => Ok(at),
        false => Err(Cut),
    }
}

/// univocity's `parseValueProcessingEscape`, which reads the rest of a value after a quote
/// that closed nothing was followed by the escape: up to the separator or the line's end, an
/// escape before a quote or another escape gives that character, and a quote followed by
/// text keeps the quote.
fn escaped_rest(
    d: &Dialect,
    input: &[u8],
    mut i: usize,
    mut prev: u8,
    ee: u8,
    eof: bool,
    data: &mut Vec<u8>,
) -> Result<usize, Cut> {
    let (q, e) = (d.quote, d.escape);
    loop {
        let Some(&ch) = input.get(i) else {
            return if eof { Ok(i) } else { Err(Cut) };
        };
        if d.stops[usize::from(ch)] {
            return Ok(i);
        }
        let seen = match ch != q && ch != e {
            true if prev != q => {
                data.push(ch);
                Some(ch)
            }
            true => None,
            false => quote_or_escape(d, ee, ch, prev, data),
        };
        match seen {
            Some(seen) => {
                prev = seen;
                i += 1;
            }
            // A quote followed by more: the quote is kept, and `ch` read again after it.
            None => {
                data.push(q);
                prev = ch;
            }
        }
    }
}

/// univocity's `processQuoteEscape`: `ch`, a quote or the escape, after `prev`. Returns what
/// counts as the character before the next one (0 once an escape is used up), or `None`
/// when `ch` follows a quote that closed nothing (the caller decides what that means).
fn quote_or_escape(d: &Dialect, ee: u8, ch: u8, prev: u8, data: &mut Vec<u8>) -> Option<u8> {
    let (q, e) = (d.quote, d.escape);
    if ch == e && prev == ee && ee != 0 {
        data.push(e);
        Some(0)
    } else if prev == e {
        if ch == q {
            data.push(q);
            return Some(0);
        }
        data.push(prev);
        Some(ch)
    } else if ch == q && prev == q {
        data.push(q);
        Some(ch)
    } else if prev == q {
        None
    } else {
        Some(ch)
    }
}

/// Line breaks in `bytes`: `\n`, `\r\n` and a lone `\r` count one each.
pub(crate) fn line_breaks(bytes: &[u8]) -> u64 {
    let mut n = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' || (b == b'\r' && bytes.get(i + 1) != Some(&b'\n')) {
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str, escape: u8) -> Vec<Vec<String>> {
        let dialect = Dialect::new(b',', b'"', escape);
        let mut out = Records::default();
        let split = split(&dialect, text.as_bytes(), 0, 1, true, usize::MAX, &mut out);
        assert_eq!(split.consumed, text.len());
        out.rows
            .iter()
            .map(|r| {
                (0..r.fields)
                    .map(|c| {
                        let value = out.field(text.as_bytes(), r, c).unwrap();
                        String::from_utf8_lossy(value).into_owned()
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn quotes_follow_univocity_under_both_escapes() {
        let cases: &[(&str, u8, &[&str])] = &[
            ("a\"b,1", b'\\', &["a\"b", "1"]),
            ("\"a\"b,1", b'\\', &["\"a\"b", "1"]),
            ("\"a\"\"b\",1", b'\\', &["\"a\"\"b\"", "1"]),
            ("\"a\"\"b\",1", b'"', &["a\"b", "1"]),
            ("\"a\" ,1", b'\\', &["a", "1"]),
            ("\"a\"  b,1", b'\\', &["\"a\"  b", "1"]),
            ("\"a\\b\",1", b'"', &["a\\b", "1"]),
            ("\"a\\\"b\",1", b'\\', &["a\"b", "1"]),
            ("\"a\\b\",1", b'\\', &["a\\b", "1"]),
            ("\"a\\\\b\",1", b'\\', &["a\\b", "1"]),
            ("\"a\"\"\",1", b'\\', &["a\"\"", "1"]),
            ("\"\"\"a\",1", b'\\', &["\"\"\"a\"", "1"]),
            ("\"b,2\n", b'\\', &["b,2"]),
            ("a,\"\n", b'\\', &["a", "\""]),
            ("\"\\\n", b'\\', &[""]),
            ("\"\\\"\\\n", b'\\', &["\""]),
            ("\"\\\\\n", b'\\', &["\\"]),
            ("\"\"\"\\x\n", b'\\', &["\"\"\\x"]),
            ("\" \"\\-2,345\n", b'\\', &[" \"\\-2345"]),
            ("\"a,b\",1", b'\\', &["a,b", "1"]),
            ("\"\",1", b'\\', &["", "1"]),
            ("a,1,", b'\\', &["a", "1", ""]),
        ];
        for (text, escape, want) in cases {
            assert_eq!(fields(text, *escape), [want.to_vec()], "{text}");
        }
    }

    #[test]
    fn blank_lines_are_skipped_and_line_numbers_count_every_break() {
        let dialect = Dialect::new(b',', b'"', b'\\');
        let text = b"a,1\r\n  \n\nb,\"x\ny\"\rc,3";
        let mut out = Records::default();
        split(&dialect, text, 0, 1, true, usize::MAX, &mut out);
        let lines: Vec<u64> = out.rows.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 4, 6]);
        let raw = &text[out.rows[1].start..out.rows[1].end];
        assert_eq!(raw, b"b,\"x\ny\"");
    }

    #[test]
    fn a_record_cut_by_the_end_of_the_input_waits_for_more() {
        let dialect = Dialect::new(b',', b'"', b'\\');
        let text = b"a,1\nb,\"x";
        let mut out = Records::default();
        let first = split(&dialect, text, 0, 1, false, usize::MAX, &mut out);
        assert_eq!((first.consumed, first.line, out.rows.len()), (4, 2, 1));
        let whole = b"a,1\nb,\"x\"\n";
        let next = split(
            &dialect,
            whole,
            first.consumed,
            first.line,
            false,
            9,
            &mut out,
        );
        assert_eq!((next.consumed, out.rows.len()), (whole.len(), 2));
        assert_eq!(out.field(whole, &out.rows[1], 1), Some(&b"x"[..]));
        // A CR at the end may be the first half of a CRLF.
        out.clear();
        let cr = split(&dialect, b"a,1\r", 0, 1, false, 9, &mut out);
        assert_eq!((cr.consumed, out.rows.len()), (0, 0));
    }
}
