//! The CSV source's decoding path, run on arbitrary file contents in all three modes, which
//! must agree: permissive keeps every row dropmalformed keeps or rejects, both reject the
//! same rows, and failfast stops exactly when there is something to reject.
//!
//! The first byte chooses the options (header, separator, batch size, corrupt-record
//! column); the rest is the file.

#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_core::Source;
use weir_source::CsvSourceConfig;

/// Every type the DDL parser knows, so that every column decoder is exercised.
const SCHEMA: &str =
    "s STRING, i INT, l BIGINT, d DOUBLE, b BOOLEAN, t DATE, ts TIMESTAMP, m DECIMAL(10,2)";

#[derive(Debug, Default)]
struct Outcome {
    rows: usize,
    bad: usize,
    failed: Option<String>,
}

fn run(dir: &std::path::Path, options: u8, mode: &str) -> Outcome {
    let config = CsvSourceConfig {
        path: dir.join("in").display().to_string(),
        schema: SCHEMA.into(),
        header: options & 1 == 1,
        sep: if options & 2 == 2 {
            ";".into()
        } else {
            ",".into()
        },
        batch_size: 1 + usize::from((options >> 2) & 3),
        mode: Some(mode.into()),
        corrupt_record_column: (mode == "permissive" && options & 16 == 16)
            .then(|| "_corrupt_record".into()),
        bad_records_path: Some(dir.join("bad").display().to_string()),
        ..CsvSourceConfig::default()
    };
    let settings = match config.validate() {
        Ok(settings) => settings,
        Err(errors) => panic!("a valid config was refused: {errors:?}"),
    };
    let mut source = settings.build();
    let mut outcome = Outcome::default();
    if let Err(e) = source.discover() {
        panic!("discover failed: {e}");
    }
    source.admit(false);
    loop {
        match source.next_batch() {
            Ok(Some(batch)) => outcome.rows += batch.num_rows(),
            Ok(None) => break,
            Err(e) => {
                outcome.failed = Some(e.to_string());
                break;
            }
        }
        if let Ok(Some(bad)) = source.take_bad_records() {
            outcome.bad += bad.num_rows();
        }
    }
    if let Ok(Some(bad)) = source.take_bad_records() {
        outcome.bad += bad.num_rows();
    }
    outcome
}

fuzz_target!(|data: &[u8]| {
    let Some((&options, file)) = data.split_first() else {
        return;
    };
    let Ok(dir) = tempfile::tempdir() else { return };
    if std::fs::create_dir(dir.path().join("in")).is_err()
        || std::fs::write(dir.path().join("in/data.csv"), file).is_err()
    {
        return;
    }
    let permissive = run(dir.path(), options, "permissive");
    let drop = run(dir.path(), options, "dropmalformed");
    let failfast = run(dir.path(), options, "failfast");

    assert!(
        permissive.failed.is_none(),
        "permissive failed: {permissive:?}"
    );
    assert!(drop.failed.is_none(), "dropmalformed failed: {drop:?}");
    assert_eq!(permissive.bad, drop.bad, "{permissive:?} {drop:?}");
    assert_eq!(
        permissive.rows,
        drop.rows + drop.bad,
        "{permissive:?} {drop:?}"
    );
    match &failfast.failed {
        Some(message) => {
            assert!(drop.bad > 0, "failfast failed on a clean file: {message}");
            assert!(message.contains("data.csv:"), "no path:line in {message}");
        }
        None => {
            assert_eq!(drop.bad, 0, "failfast let a malformed row through");
            assert_eq!(failfast.rows, drop.rows);
        }
    }
});
