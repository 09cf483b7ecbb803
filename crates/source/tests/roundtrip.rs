//! CSV round trips: arbitrary rows written by the `csv` crate (quotes, separators and line
//! breaks inside fields, any Unicode, CRLF or LF, with or without a header or a byte-order
//! mark) read back through the CSV source, batch size and all, give the same rows (but for
//! rows written as blank lines, which Spark skips).

#![allow(clippy::unwrap_used)]

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int32Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use proptest::prelude::*;
use weir_core::{Quota, Source};
use weir_source::CsvSourceConfig;

type Row = (
    Option<String>,
    Option<i32>,
    Option<i64>,
    Option<f64>,
    Option<bool>,
);

const SCHEMA: &str = "s STRING, i INT, l BIGINT, d DOUBLE, b BOOLEAN";

/// How the file is written, and the source options that read it.
#[derive(Debug, Clone)]
struct Layout {
    sep: u8,
    header: bool,
    crlf: bool,
    bom: bool,
    /// `"`: quotes inside quoted fields are doubled, as RFC 4180 and the csv crate write
    /// them. `\`: Spark's default; the csv crate then escapes quotes with a backslash.
    escape: u8,
    batch_size: usize,
}

fn layout() -> impl Strategy<Value = Layout> {
    (
        prop::sample::select(vec![b',', b';', b'\t', b'|']),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(vec![b'"', b'\\']),
        1usize..6,
    )
        .prop_map(|(sep, header, crlf, bom, escape, batch_size)| Layout {
            sep,
            header,
            crlf,
            bom,
            escape,
            batch_size,
        })
}

/// A string value. Empty strings are excluded: an empty field is null, as in Spark. A
/// byte-order mark at the start would be taken for the file's own.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ,;|\t\"\r\n]{1,12}",
        any::<String>(),
        Just("\"quoted\"".to_string()),
        Just("a,b;c|d\te".to_string()),
        Just("line one\r\nline two\nthree".to_string()),
    ]
    .prop_filter("not empty, no leading BOM", |s| {
        !s.is_empty() && !s.starts_with('\u{feff}')
    })
}

fn row(escape: u8) -> impl Strategy<Value = Row> {
    (
        prop::option::of(text()).prop_map(move |s| {
            // With `\` as the escape, a backslash in data is an escape: Spark reads it so too.
            s.map(|s| {
                if escape == b'\\' {
                    s.replace('\\', "/")
                } else {
                    s
                }
            })
        }),
        prop::option::of(any::<i32>()),
        prop::option::of(any::<i64>()),
        prop::option::of(any::<f64>().prop_filter("finite", |d| d.is_finite())),
        prop::option::of(any::<bool>()),
    )
}

fn case() -> impl Strategy<Value = (Layout, Vec<Row>)> {
    layout().prop_flat_map(|layout| {
        let rows = prop::collection::vec(row(layout.escape), 0..40);
        (Just(layout), rows)
    })
}

fn write(layout: &Layout, rows: &[Row]) -> Vec<u8> {
    let mut builder = csv::WriterBuilder::new();
    builder.delimiter(layout.sep).terminator(if layout.crlf {
        csv::Terminator::CRLF
    } else {
        csv::Terminator::Any(b'\n')
    });
    if layout.escape == b'\\' {
        builder.double_quote(false).escape(b'\\');
    }
    let mut out = if layout.bom {
        b"\xEF\xBB\xBF".to_vec()
    } else {
        Vec::new()
    };
    let mut writer = builder.from_writer(&mut out);
    if layout.header {
        writer.write_record(["s", "i", "l", "d", "b"]).unwrap();
    }
    let field = |v: Option<String>| v.unwrap_or_default();
    for (s, i, l, d, b) in rows {
        writer
            .write_record([
                field(s.clone()),
                field(i.map(|v| v.to_string())),
                field(l.map(|v| v.to_string())),
                field(d.map(|v| v.to_string())),
                field(b.map(|v| v.to_string())),
            ])
            .unwrap();
    }
    writer.flush().unwrap();
    drop(writer);
    out
}

fn read(layout: &Layout, file: &[u8]) -> Vec<Row> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rows.csv"), file).unwrap();
    let config = CsvSourceConfig {
        path: dir.path().display().to_string(),
        schema: SCHEMA.into(),
        header: Some(layout.header),
        sep: Some((layout.sep as char).to_string()),
        escape: Some((layout.escape as char).to_string()),
        batch_size: layout.batch_size,
        mode: Some("failfast".into()),
        ..CsvSourceConfig::default()
    };
    let mut source = config.validate().unwrap().build();
    source.discover().unwrap();
    source.admit(Quota::All);
    let mut rows = Vec::new();
    while let Some(batch) = source.next_batch().unwrap() {
        rows.extend(rows_of(&batch));
    }
    rows
}

fn rows_of(batch: &RecordBatch) -> Vec<Row> {
    let s = batch.column(0).as_string::<i32>();
    let i = batch.column(1).as_primitive::<Int32Type>();
    let l = batch.column(2).as_primitive::<Int64Type>();
    let d = batch.column(3).as_primitive::<Float64Type>();
    let b = batch.column(4).as_boolean();
    (0..batch.num_rows())
        .map(|r| {
            (
                s.is_valid(r).then(|| s.value(r).to_string()),
                i.is_valid(r).then(|| i.value(r)),
                l.is_valid(r).then(|| l.value(r)),
                d.is_valid(r).then(|| d.value(r)),
                b.is_valid(r).then(|| b.value(r)),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn rows_written_by_the_csv_crate_read_back_the_same((layout, rows) in case()) {
        let file = write(&layout, &rows);
        let read = read(&layout, &file);
        // A row written as a line of only spaces and tabs (all null under `sep = "\t"`) is
        // not a record, for Spark as for Weir.
        let plain = Layout { header: false, bom: false, ..layout.clone() };
        let blank = |row: &Row| write(&plain, std::slice::from_ref(row)).iter().all(|&b| b <= b' ');
        let expected: Vec<Row> = rows.iter().filter(|row| !blank(row)).cloned().collect();
        prop_assert_eq!(read, expected, "{:?}\n{}", layout, String::from_utf8_lossy(&file));
    }
}
