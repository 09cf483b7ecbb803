//! Splitting JSON lines into records and values, by the rules of Spark's JSON source.
//!
//! Spark's default (`multiLine = false`) reads one JSON object per line, and so does this:
//!
//! - each line that is not blank is one record; a JSON string cannot hold a raw line break,
//!   so a record never spans lines;
//! - a key names a column of the schema, exactly (case matters); keys the schema does not
//!   name are skipped, and a key given twice keeps its last value, as Jackson reads it;
//! - a column whose key is missing, or whose value is `null`, is null;
//! - a line that is not one JSON object (broken syntax, an array, a bare value, text after
//!   the object) is malformed as a whole: in permissive mode its columns are all null and the
//!   corrupt-record column holds the line.
//!
//! Each value is noted with what it was written as ([`Kind`]): which types a column admits
//! is decided when the column is read (`decode.rs`), so that a line with one value of the
//! wrong type keeps its other values, as in Spark. Objects and arrays are kept as written,
//! for STRING columns. Jackson's leniencies that Spark turns on by default are kept where
//! they are cheap and unambiguous (bare `NaN` and `Infinity`); single-quoted strings and
//! unquoted keys are not read.

use std::collections::HashMap;

use arrow_schema::Schema;

use crate::split::{Kind, Records, Split};

/// The schema's column names, to find a key's column.
#[derive(Debug, Clone)]
pub(crate) struct JsonColumns {
    names: Vec<Box<[u8]>>,
    index: HashMap<Box<[u8]>, usize>,
    /// Each name can be written as a key without escapes: the bytes of a key that equal it
    /// and end at a quote are that key.
    plain: Vec<bool>,
    /// Each plain name of up to 15 bytes with the quote after it, as two little-endian words
    /// and the masks of their bytes, so that a key is compared in two loads.
    words: Vec<Option<[(u64, u64); 2]>>,
}

impl JsonColumns {
    pub(crate) fn new(schema: &Schema) -> Self {
        let names: Vec<Box<[u8]>> = (schema.fields().iter())
            .map(|f| f.name().as_bytes().into())
            .collect();
        let index = names.iter().cloned().zip(0..).collect();
        let plain: Vec<bool> = (names.iter()).map(|n| string_end(n).is_none()).collect();
        let words = (names.iter().zip(&plain))
            .map(|(name, &plain)| {
                let mut key = name.to_vec();
                key.push(b'"');
                (plain && key.len() <= 16).then(|| {
                    let mut bytes = [0u8; 16];
                    let mut mask = [0u8; 16];
                    bytes[..key.len()].copy_from_slice(&key);
                    mask[..key.len()].fill(0xff);
                    let word = |b: &[u8; 16], half: usize| {
                        let mut w = [0u8; 8];
                        w.copy_from_slice(&b[half * 8..half * 8 + 8]);
                        u64::from_le_bytes(w)
                    };
                    [0, 1].map(|half| (word(&bytes, half), word(&mask, half)))
                })
            })
            .collect();
        JsonColumns {
            names,
            index,
            plain,
            words,
        }
    }

    /// Whether the key whose text starts at `input[from]` is column `c`'s name, closed by
    /// its quote.
    #[inline]
    fn is_key(&self, input: &[u8], from: usize, c: usize) -> bool {
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&input[at..at + 8]);
            u64::from_le_bytes(w)
        };
        match self.words.get(c) {
            Some(Some([(low, low_mask), (high, high_mask)])) if from + 16 <= input.len() => {
                word(from) & low_mask == *low && word(from + 8) & high_mask == *high
            }
            Some(_) => {
                let name = &self.names[c];
                self.plain[c]
                    && input.get(from..from + name.len()) == Some(&name[..])
                    && input.get(from + name.len()) == Some(&b'"')
            }
            None => false,
        }
    }

    /// The column named `key`; `guess`, the one after the key before, is tried first, since
    /// writers mostly put keys in one order.
    #[inline]
    fn find(&self, key: &[u8], guess: usize) -> Option<usize> {
        match self.names.get(guess) {
            // Keys are short: compared byte by byte here, where a call to memcmp costs
            // more than the comparison.
            Some(name) if name.len() == key.len() && name.iter().zip(key).all(|(a, b)| a == b) => {
                Some(guess)
            }
            _ => self.index.get(key).copied(),
        }
    }
}

/// Objects and arrays nested deeper than this are refused rather than followed, so that a
/// hostile line cannot exhaust the stack.
const MAX_DEPTH: usize = 512;

/// Splits JSON lines from `input[from..]` into `out`, at most `max` records, `line` being the
/// line `from` is on. Unless `eof` says that nothing follows `input`, a line cut by the end of
/// `input` is left for the next call, with more bytes.
pub(crate) fn split_json(
    columns: &JsonColumns,
    input: &[u8],
    from: usize,
    mut line: u64,
    eof: bool,
    max: usize,
    out: &mut Records,
) -> Split {
    let mut at = from;
    let mut taken = 0;
    let width = columns.names.len();
    while at < input.len() {
        // Most lines are plain (no escapes, no nesting, no text after the object): read at
        // once, finding their end on the way; any other line, from its start again, by
        // the whole grammar after a search for its end.
        if taken < max {
            out.begin(line, at, at, width);
            if let Some((end, next)) = plain_line(columns, input, at, eof, out) {
                out.end_last(end);
                taken += 1;
                line += u64::from(next > end);
                at = next;
                continue;
            }
            out.drop_last();
        }
        let (end, next) = match memchr::memchr(b'\n', &input[at..]) {
            Some(n) => (at + n, at + n + 1),
            None if eof => (input.len(), input.len()),
            None => break,
        };
        let text = &input[at..end];
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        // Blank unless something other than whitespace comes; a line of data says so at
        // its first byte, so this is no second pass.
        if text.iter().any(|b| !b.is_ascii_whitespace()) {
            if taken == max {
                break;
            }
            read_by_grammar(columns, input, line, at, at + text.len(), out);
            taken += 1;
        }
        line += u64::from(next > end);
        at = next;
    }
    Split { consumed: at, line }
}

/// Reads `input[at..end]`, line `line`, as one record by the whole grammar: its values, or
/// what is wrong with it.
fn read_by_grammar(
    columns: &JsonColumns,
    input: &[u8],
    line: u64,
    at: usize,
    end: usize,
    out: &mut Records,
) {
    out.begin(line, at, end, columns.names.len());
    let mut parser = Parser {
        input,
        at,
        end,
        start: at,
        scratch: Vec::new(),
    };
    if let Err(reason) = parser.object(columns, out) {
        out.spoil(reason);
    }
}

/// Reads the line at `input[at..]` if it is plain: one object whose keys have no escapes
/// and whose values are plain strings, numbers, `true`, `false` or `null`, then the line's
/// end. Its values go to the record begun last, as [`Parser::object`] would put them; the
/// line's end and where the next line starts are returned. `None` at anything else (some
/// values may have been noted), for the whole grammar to read the line.
#[inline]
fn plain_line(
    columns: &JsonColumns,
    input: &[u8],
    mut at: usize,
    eof: bool,
    out: &mut Records,
) -> Option<(usize, usize)> {
    // Spaces and tabs are what writers put between tokens (`{"a": 1, "b": 2}`).
    let blanks = |mut at: usize| {
        while matches!(input.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        at
    };
    if input.get(at) != Some(&b'{') {
        return None;
    }
    at = blanks(at + 1);
    let mut guess = 0;
    if input.get(at) != Some(&b'}') {
        loop {
            if input.get(at) != Some(&b'"') {
                return None;
            }
            let from = at + 1;
            // The key the keys before suggest, compared where it would be; else the key as
            // written, looked up.
            let column = match columns.is_key(input, from, guess) {
                true => {
                    at = from + columns.names[guess].len() + 1;
                    Some(guess)
                }
                false => {
                    let n = string_end(&input[from..])?;
                    if input[from + n] != b'"' {
                        return None;
                    }
                    at = from + n + 1;
                    columns.index.get(&input[from..from + n]).copied()
                }
            };
            at = blanks(at);
            if input.get(at) != Some(&b':') {
                return None;
            }
            at = blanks(at + 1);
            let value = at;
            let kind = match *input.get(at)? {
                b'"' => {
                    let n = string_end(&input[at + 1..])?;
                    if input[at + 1 + n] != b'"' {
                        return None;
                    }
                    at += n + 2;
                    if let Some(c) = column {
                        out.set(c, value + 1, at - 1, Kind::String);
                    }
                    None
                }
                b'-' | b'0'..=b'9' => {
                    let (kind, end) = plain_number(input, at)?;
                    at = end;
                    Some(kind)
                }
                b't' if input.get(at..at + 4) == Some(b"true") => {
                    at += 4;
                    Some(Kind::Bool)
                }
                b'f' if input.get(at..at + 5) == Some(b"false") => {
                    at += 5;
                    Some(Kind::Bool)
                }
                b'n' if input.get(at..at + 4) == Some(b"null") => {
                    at += 4;
                    if let Some(c) = column {
                        out.set_null(c);
                    }
                    None
                }
                _ => return None,
            };
            if let Some(c) = column {
                if let Some(kind) = kind {
                    out.set(c, value, at, kind);
                }
                guess = c + 1;
            }
            at = blanks(at);
            match input.get(at) {
                Some(b',') => at = blanks(at + 1),
                Some(b'}') => break,
                _ => return None,
            }
        }
    }
    // Past the '}': blanks, then the line's end.
    at = blanks(at + 1);
    match input.get(at) {
        Some(b'\n') => Some((at, at + 1)),
        Some(b'\r') if input.get(at + 1) == Some(&b'\n') => Some((at, at + 2)),
        None if eof => Some((at, at)),
        _ => None,
    }
}

/// The number at `input[at..]` by JSON's grammar, what it was written as and where it ends;
/// `None` if it breaks the grammar, for [`Parser::number`] to say how.
#[inline]
fn plain_number(input: &[u8], mut at: usize) -> Option<(Kind, usize)> {
    let digits = |mut at: usize| {
        while input.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        at
    };
    if input.get(at) == Some(&b'-') {
        at += 1;
    }
    let end = digits(at);
    if end == at || (end - at > 1 && input[at] == b'0') {
        return None;
    }
    at = end;
    let mut kind = Kind::Int;
    if input.get(at) == Some(&b'.') {
        let end = digits(at + 1);
        if end == at + 1 {
            return None;
        }
        (at, kind) = (end, Kind::Float);
    }
    if matches!(input.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(input.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let end = digits(at);
        if end == at {
            return None;
        }
        (at, kind) = (end, Kind::Float);
    }
    Some((kind, at))
}

/// Reads one line's object.
struct Parser<'a> {
    input: &'a [u8],
    at: usize,
    /// The end of the line, before its line break.
    end: usize,
    /// The line's first byte, for columns in messages.
    start: usize,
    /// A key or string with escapes, unescaped.
    scratch: Vec<u8>,
}

impl Parser<'_> {
    /// The line as one object, each value of a schema column noted in `out`.
    fn object(&mut self, columns: &JsonColumns, out: &mut Records) -> Result<(), String> {
        self.space();
        if self.peek() != Some(b'{') {
            return Err(match self.peek() {
                Some(b'[') => {
                    "malformed JSON: a line must hold one object ({...}), not an array".into()
                }
                _ => self.expected("an object ({...})"),
            });
        }
        self.at += 1;
        self.space();
        let mut guess = 0;
        if self.peek() == Some(b'}') {
            self.at += 1;
        } else {
            loop {
                self.space();
                if self.peek() != Some(b'"') {
                    return Err(self.expected("a key in double quotes"));
                }
                let column = match self.string()? {
                    Text::Input(from, to) => columns.find(&self.input[from..to], guess),
                    Text::Scratch => columns.find(&self.scratch, guess),
                };
                self.space();
                if self.peek() != Some(b':') {
                    return Err(self.expected("':' after the key"));
                }
                self.at += 1;
                self.space();
                match column {
                    Some(c) => {
                        self.value(c, out)?;
                        guess = c + 1;
                    }
                    None => self.skip(0)?,
                }
                self.space();
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b'}') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(self.expected("',' or '}' after a value")),
                }
            }
        }
        self.space();
        match self.at < self.end {
            true => Err(self.expected("the end of the line after the object")),
            false => Ok(()),
        }
    }

    /// Reads the value at `at` as column `c`'s.
    fn value(&mut self, c: usize, out: &mut Records) -> Result<(), String> {
        let from = self.at;
        let kind = match self.peek() {
            Some(b'"') => {
                match self.string()? {
                    Text::Input(from, to) => out.set(c, from, to, Kind::String),
                    Text::Scratch => out.set_data(c, &self.scratch, Kind::String),
                }
                return Ok(());
            }
            Some(b'n') => {
                self.word(b"null")?;
                out.set_null(c);
                return Ok(());
            }
            Some(b'{' | b'[') => {
                self.skip(0)?;
                Kind::Nested
            }
            _ => self.scalar()?,
        };
        out.set(c, from, self.at, kind);
        Ok(())
    }

    /// Passes over the value at `at`, checking it, `depth` levels down.
    fn skip(&mut self, depth: usize) -> Result<(), String> {
        let close = match self.peek() {
            Some(b'"') => return self.string().map(drop),
            Some(b'n') => return self.word(b"null"),
            Some(b'{') => b'}',
            Some(b'[') => b']',
            _ => return self.scalar().map(drop),
        };
        if depth == MAX_DEPTH {
            return Err(format!(
                "malformed JSON: nested deeper than {MAX_DEPTH} levels at column {}",
                self.column()
            ));
        }
        self.at += 1;
        self.space();
        if self.peek() == Some(close) {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.space();
            if close == b'}' {
                if self.peek() != Some(b'"') {
                    return Err(self.expected("a key in double quotes"));
                }
                self.string()?;
                self.space();
                if self.peek() != Some(b':') {
                    return Err(self.expected("':' after the key"));
                }
                self.at += 1;
                self.space();
            }
            self.skip(depth + 1)?;
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b) if b == close => {
                    self.at += 1;
                    return Ok(());
                }
                _ => {
                    return Err(self.expected(match close {
                        b'}' => "',' or '}' after a value",
                        _ => "',' or ']' after a value",
                    }))
                }
            }
        }
    }

    /// A number, `true`, `false`, or a bare `NaN` or `Infinity`: what it was written as.
    fn scalar(&mut self) -> Result<Kind, String> {
        match self.peek() {
            Some(b't') => self.word(b"true").map(|()| Kind::Bool),
            Some(b'f') => self.word(b"false").map(|()| Kind::Bool),
            Some(b'N') => self.word(b"NaN").map(|()| Kind::NonNumeric),
            Some(b'I') => self.word(b"Infinity").map(|()| Kind::NonNumeric),
            Some(b'+') => self.word(b"+Infinity").map(|()| Kind::NonNumeric),
            Some(b'-') if self.input.get(self.at + 1) == Some(&b'I') => {
                self.word(b"-Infinity").map(|()| Kind::NonNumeric)
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.expected("a value")),
        }
    }

    /// A number by JSON's grammar (no leading zeros, digits after `.` and `e`).
    fn number(&mut self) -> Result<Kind, String> {
        let from = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let digits = self.digits();
        if digits == 0 {
            return Err(self.expected("a digit"));
        }
        if digits > 1 && self.input[self.at - digits] == b'0' {
            self.at = from;
            return Err(self.expected("a number without leading zeros"));
        }
        let mut kind = Kind::Int;
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return Err(self.expected("a digit after '.'"));
            }
            kind = Kind::Float;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return Err(self.expected("a digit in the exponent"));
            }
            kind = Kind::Float;
        }
        Ok(kind)
    }

    fn digits(&mut self) -> usize {
        let from = self.at;
        while self.at < self.end && self.input[self.at].is_ascii_digit() {
            self.at += 1;
        }
        self.at - from
    }

    /// The string whose opening quote is at `at`: where its text is, or that it had escapes
    /// and is unescaped into `scratch`.
    fn string(&mut self) -> Result<Text, String> {
        self.at += 1;
        let from = self.at;
        let rest = &self.input[from..self.end];
        let Some(n) = string_end(rest) else {
            self.at = self.end;
            return Err(self.unterminated(from));
        };
        self.at = from + n;
        match rest[n] {
            b'"' => {
                self.at += 1;
                Ok(Text::Input(from, from + n))
            }
            b'\\' => {
                self.scratch.clear();
                self.scratch.extend_from_slice(&self.input[from..self.at]);
                self.escaped().map(|()| Text::Scratch)
            }
            _ => Err(self.control()),
        }
    }

    /// The rest of a string from its first escape, into `scratch`.
    fn escaped(&mut self) -> Result<(), String> {
        let from = self.at;
        while self.at < self.end {
            let b = self.input[self.at];
            self.at += 1;
            match b {
                b'"' => return Ok(()),
                b'\\' => {
                    let Some(&e) = self.input[..self.end].get(self.at) else {
                        break;
                    };
                    self.at += 1;
                    let plain = match e {
                        b'"' => b'"',
                        b'\\' => b'\\',
                        b'/' => b'/',
                        b'b' => 0x08,
                        b'f' => 0x0c,
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'u' => {
                            let c = self.unicode()?;
                            let mut utf8 = [0; 4];
                            let bytes = c.encode_utf8(&mut utf8).as_bytes();
                            self.scratch.extend_from_slice(bytes);
                            continue;
                        }
                        _ => {
                            self.at -= 2;
                            return Err(
                                self.expected("an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)")
                            );
                        }
                    };
                    self.scratch.push(plain);
                }
                b if b < 0x20 => {
                    self.at -= 1;
                    return Err(self.control());
                }
                b => self.scratch.push(b),
            }
        }
        Err(self.unterminated(from))
    }

    /// The character of a `\u` escape whose hex digits are at `at`, with the low half of a
    /// surrogate pair if it is a high half.
    fn unicode(&mut self) -> Result<char, String> {
        let high = self.hex4()?;
        let code = match high {
            0xD800..=0xDBFF => {
                if self.input[..self.end].get(self.at..self.at + 2) != Some(b"\\u") {
                    return Err(self.expected("the low half of a \\u surrogate pair"));
                }
                self.at += 2;
                let low = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&low) {
                    self.at -= 6;
                    return Err(self.expected("the low half of a \\u surrogate pair"));
                }
                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
            }
            code => code,
        };
        char::from_u32(code).ok_or_else(|| {
            self.at -= 6;
            self.expected("a \\u escape of a character (this is half a surrogate pair)")
        })
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.input[..self.end].get(self.at..self.at + 4);
        let value = digits
            .and_then(|d| std::str::from_utf8(d).ok())
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|d| u32::from_str_radix(d, 16).ok());
        match value {
            Some(v) => {
                self.at += 4;
                Ok(v)
            }
            None => Err(self.expected("four hex digits after \\u")),
        }
    }

    /// `word` exactly, at `at`.
    fn word(&mut self, word: &[u8]) -> Result<(), String> {
        match self.input[..self.end].get(self.at..self.at + word.len()) {
            Some(w) if w == word => {
                self.at += word.len();
                Ok(())
            }
            _ => Err(self.expected("a value")),
        }
    }

    fn space(&mut self) {
        while self.at < self.end && matches!(self.input[self.at], b' ' | b'\t' | b'\r') {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        (self.at < self.end).then(|| self.input[self.at])
    }

    /// The 1-based column (in bytes) of `at` in the line.
    fn column(&self) -> usize {
        self.at - self.start + 1
    }

    fn expected(&self, what: &str) -> String {
        match self.peek() {
            None => format!("malformed JSON: the line ends where {what} was expected"),
            Some(b) => {
                let found = match b {
                    b' '..=b'~' => format!("'{}'", b as char),
                    _ => format!("byte 0x{b:02x}"),
                };
                format!(
                    "malformed JSON at column {}: expected {what}, found {found}",
                    self.column()
                )
            }
        }
    }

    fn control(&self) -> String {
        format!(
            "malformed JSON at column {}: a control character inside a string (write it as an escape such as \\t)",
            self.column()
        )
    }

    fn unterminated(&self, from: usize) -> String {
        format!(
            "malformed JSON: the string that starts at column {} is not closed on its line",
            from - self.start
        )
    }
}

/// The first byte of `bytes` that ends a string's plain text: a quote, a backslash or a
/// control character. Eight bytes are looked at at once (the "has a zero byte" word trick,
/// for each of the three), which is most of a short value or key.
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(word) = bytes.get(at..at + 8) {
        let Ok(word) = <[u8; 8]>::try_from(word) else {
            break;
        };
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        // A byte's high bit in each term is set where it is zero (or, for the control test,
        // below 0x20); only the lowest such byte is exact, and it is the one wanted.
        let found = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let found = found & HIGH;
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = &bytes[at..];
    let n = tail
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    Some(at + n)
}

/// Where a string's text is.
enum Text {
    /// In the input, between these offsets: it had no escapes.
    Input(usize, usize),
    /// In the parser's scratch buffer, unescaped.
    Scratch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_string_ends_at_its_first_quote_backslash_or_control_byte_wherever_it_falls() {
        let plain = "ab\u{e9} ~!#zZ09\u{7f}".as_bytes();
        for len in 0..20 {
            for stop in [b'"', b'\\', 0x1f, b'\n', 0] {
                let mut text: Vec<u8> = (0..len).map(|i| plain[i % plain.len()]).collect();
                assert_eq!(string_end(&text), None, "{text:?}");
                text.push(stop);
                text.extend_from_slice(b"\"x\\");
                assert_eq!(string_end(&text), Some(len), "{text:?}");
            }
        }
    }
    use weir_core::parse_ddl;

    /// One record's values (`None` for null), or its problem.
    type Record = Result<Vec<Option<(String, Kind)>>, String>;

    /// Each record of `text`.
    fn read(schema: &str, text: &str) -> Vec<Record> {
        let schema = parse_ddl(schema).unwrap();
        let columns = JsonColumns::new(&schema);
        let mut out = Records::default();
        let done = split_json(&columns, text.as_bytes(), 0, 1, true, usize::MAX, &mut out);
        assert_eq!(done.consumed, text.len());
        records(&out, text.as_bytes(), schema.fields().len())
    }

    /// The values (or the problem) of each record of `out`, split from `input`.
    fn records(out: &Records, input: &[u8], width: usize) -> Vec<Record> {
        (out.rows.iter().enumerate())
            .map(|(i, row)| {
                if let Some((_, why)) = out.problems().iter().find(|(r, _)| *r == i) {
                    return Err(why.clone());
                }
                Ok((0..width)
                    .map(|c| {
                        out.field(input, row, c)
                            .map(|v| (String::from_utf8(v.to_vec()).unwrap(), out.kind(row, c)))
                    })
                    .collect())
            })
            .collect()
    }

    /// Each line of `text` read by the whole grammar only, without the plain lines' path.
    fn read_all_by_grammar(schema: &str, text: &str) -> Vec<Record> {
        let schema = parse_ddl(schema).unwrap();
        let columns = JsonColumns::new(&schema);
        let input = text.as_bytes();
        let mut out = Records::default();
        let mut at = 0;
        for (i, line) in text.split('\n').enumerate() {
            let next = at + line.len() + 1;
            let line = line.strip_suffix('\r').unwrap_or(line);
            let end = at + line.len();
            if line.bytes().any(|b| !b.is_ascii_whitespace()) {
                read_by_grammar(&columns, input, i as u64 + 1, at, end, &mut out);
            }
            at = next;
        }
        records(&out, input, schema.fields().len())
    }

    proptest::proptest! {
        /// Lines built from keys, values and separators, plain and not, valid and not: the
        /// plain lines' path reads each as the whole grammar does.
        #[test]
        fn plain_lines_read_as_the_whole_grammar_reads_them(
            lines in proptest::collection::vec(
                (
                    proptest::collection::vec((0..7usize, 0..4usize, 0..19usize, 0..4usize), 0..5),
                    0..4usize,
                    0..30usize,
                ),
                1..20,
            )
        ) {
            const KEYS: [&str; 7] = ["a", "b", "c", "zz", "a\\u0062", "b\\\"", ""];
            const GAPS: [&str; 4] = ["", " ", "\t ", " \r"];
            const VALUES: [&str; 19] = [
                "1", "-0", "01", "2.5e3", "-", "\"x\"", "\"x\\ny\"", "true", "false", "null",
                "nul", "NaN", "-Infinity", "[1, \"]\"]", "{\"q\": 1}", "\"\"", "tru", "1.", "\"\u{e9}\"",
            ];
            const ENDS: [&str; 4] = ["}", "} ", "}x", ""];
            let mut text = String::new();
            for (pairs, end, cut) in &lines {
                let mut line = String::from("{");
                for (i, (key, gap, value, sep)) in pairs.iter().enumerate() {
                    if i > 0 {
                        line.push_str([",", ", ", " ,", ",,"][*sep]);
                    }
                    let gap = GAPS[*gap];
                    line.push_str(&format!("{gap}\"{}\"{gap}:{gap}{}", KEYS[*key], VALUES[*value]));
                }
                line.push_str(ENDS[*end]);
                // Now and then a line cut short, mid-token.
                if *cut < line.len() && *cut % 3 == 0 && line.is_char_boundary(*cut) {
                    line.truncate(*cut);
                }
                text.push_str(&line);
                text.push('\n');
            }
            let schema = "a STRING, b STRING, zz STRING";
            proptest::prop_assert_eq!(read(schema, &text), read_all_by_grammar(schema, &text));
        }
    }

    fn value(v: &str, kind: Kind) -> Option<(String, Kind)> {
        Some((v.to_string(), kind))
    }

    #[test]
    fn keys_find_their_columns_in_any_order_and_missing_ones_are_null() {
        let rows = read(
            "Shop STRING, Sale_Count INT, Price DOUBLE",
            "{\"Sale_Count\": 3, \"Shop\": \"a\", \"other\": [1, {\"x\": null}]}\n\n  \r\n{\"Shop\":\"b\",\"Price\":1.5e2}\r\n{}",
        );
        assert_eq!(
            rows,
            vec![
                Ok(vec![value("a", Kind::String), value("3", Kind::Int), None]),
                Ok(vec![
                    value("b", Kind::String),
                    None,
                    value("1.5e2", Kind::Float)
                ]),
                Ok(vec![None, None, None]),
            ]
        );
    }

    #[test]
    fn escapes_are_undone_and_nested_values_kept_as_written() {
        let rows = read(
            "s STRING, n STRING, b BOOLEAN",
            r#"{"s": "a\"b\\c\/\n\u00e9\ud83d\ude00", "n": {"k": [1, "]"]}, "b": true, "s2": "\u0041"}"#,
        );
        assert_eq!(
            rows,
            vec![Ok(vec![
                value("a\"b\\c/\né😀", Kind::String),
                value(r#"{"k": [1, "]"]}"#, Kind::Nested),
                value("true", Kind::Bool),
            ])]
        );
    }

    #[test]
    fn a_key_given_twice_keeps_its_last_value_even_null() {
        let rows = read("a INT, b INT", r#"{"a": 1, "b": 2, "a": 3, "b": null}"#);
        assert_eq!(rows, vec![Ok(vec![value("3", Kind::Int), None])]);
    }

    #[test]
    fn bare_non_numbers_are_read_and_leading_zeros_are_not() {
        let rows = read(
            "x DOUBLE",
            "{\"x\": NaN}\n{\"x\": -Infinity}\n{\"x\": 01}\n{\"x\": -0.5}",
        );
        assert_eq!(rows[0], Ok(vec![value("NaN", Kind::NonNumeric)]));
        assert_eq!(rows[1], Ok(vec![value("-Infinity", Kind::NonNumeric)]));
        assert!(
            rows[2].as_ref().unwrap_err().contains("leading zeros"),
            "{:?}",
            rows[2]
        );
        assert_eq!(rows[3], Ok(vec![value("-0.5", Kind::Float)]));
    }

    #[test]
    fn a_line_that_is_not_one_object_is_malformed_with_where_and_why() {
        let cases = [
            ("[1, 2]", "not an array"),
            (
                "{\"a\": 1",
                "the line ends where ',' or '}' after a value was expected",
            ),
            ("{\"a\": 1} x", "column 10: expected the end of the line"),
            (
                "{'a': 1}",
                "column 2: expected a key in double quotes, found '''",
            ),
            (
                "{\"a\": \"x}",
                "string that starts at column 7 is not closed",
            ),
            ("{\"a\": tru}", "column 7: expected a value"),
            ("{\"a\": \"\\x\"}", "column 8: expected an escape"),
            ("{\"a\": \"\\ud800\"}", "low half of a \\u surrogate pair"),
            ("{\"a\": \"\t\"}", "control character"),
            ("42", "expected an object"),
        ];
        for (line, why) in cases {
            let rows = read("a INT", line);
            let Err(reason) = &rows[0] else {
                panic!("{line} was read: {rows:?}");
            };
            assert!(reason.contains(why), "{line}: {reason}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_rather_than_followed() {
        let deep = format!("{{\"a\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let rows = read("a STRING", &deep);
        assert!(rows[0].as_ref().unwrap_err().contains("nested deeper"));
    }

    #[test]
    fn a_line_cut_by_the_end_of_the_input_waits_for_more_bytes() {
        let columns = JsonColumns::new(&parse_ddl("a INT").unwrap());
        let mut out = Records::default();
        let text = b"{\"a\": 1}\n{\"a\": 2";
        let done = split_json(&columns, text, 0, 1, false, usize::MAX, &mut out);
        assert_eq!((done.consumed, done.line, out.rows.len()), (9, 2, 1));
        let done = split_json(&columns, text, 9, 2, true, usize::MAX, &mut out);
        assert_eq!(
            (done.consumed, done.line, out.rows.len()),
            (text.len(), 2, 2)
        );
        assert_eq!(out.rows[1].line, 2);
    }
}
