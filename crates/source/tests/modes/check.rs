//! The check that the three modes agree, shared by the proptest (`tests/modes.rs`) and the
//! fuzz target (`fuzz/fuzz_targets/csv_source.rs`): permissive keeps every row dropmalformed
//! keeps or refuses, both refuse the same rows, and failfast stops, naming the file and
//! line, exactly when there is something to refuse.

use std::path::Path;

use weir_core::{Quota, Source};
use weir_source::CsvSourceConfig;

/// Every type the DDL parser knows, so that every value reader is exercised.
const SCHEMA: &str =
    "s STRING, i INT, l BIGINT, d DOUBLE, b BOOLEAN, t DATE, ts TIMESTAMP, m DECIMAL(10,2)";

#[derive(Debug, Default)]
struct Outcome {
    rows: usize,
    bad: usize,
    failed: Option<String>,
}

/// Reads `in/data.csv` under `dir` in `mode`; the bits of `options` choose the header, the
/// separator, the batch size and a corrupt-record column.
fn run(dir: &Path, options: u8, mode: &str) -> Result<Outcome, String> {
    let config = CsvSourceConfig {
        path: dir.join("in").display().to_string(),
        schema: SCHEMA.into(),
        header: Some(options & 1 == 1),
        sep: Some(if options & 2 == 2 { ";" } else { "," }.into()),
        batch_size: 1 + usize::from((options >> 2) & 3),
        mode: Some(mode.into()),
        corrupt_record_column: (mode == "permissive" && options & 16 == 16)
            .then(|| "_corrupt_record".into()),
        // Malformed rows are counted where they are written.
        bad_records_path: Some(dir.join("bad").display().to_string()),
        ..CsvSourceConfig::default()
    };
    let settings = config
        .validate()
        .map_err(|errors| format!("a valid config was refused: {errors:?}"))?;
    let mut source = settings.build();
    source.discover().map_err(|e| format!("discover: {e}"))?;
    source.admit(Quota::All);
    let mut outcome = Outcome::default();
    let take_bad = |source: &mut weir_source::CsvSource, outcome: &mut Outcome| {
        let bad = source.take_bad_records().map_err(|e| e.to_string())?;
        outcome.bad += bad.map_or(0, |b| b.num_rows());
        Ok::<_, String>(())
    };
    loop {
        match source.next_batch() {
            Ok(Some(batch)) => outcome.rows += batch.num_rows(),
            Ok(None) => break,
            Err(e) => {
                outcome.failed = Some(e.to_string());
                break;
            }
        }
        take_bad(&mut source, &mut outcome)?;
    }
    take_bad(&mut source, &mut outcome)?;
    Ok(outcome)
}

/// Reads `file` in the three modes and says what disagrees, if anything.
pub(crate) fn three_modes_agree(options: u8, file: &[u8]) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    std::fs::create_dir(dir.path().join("in")).map_err(|e| e.to_string())?;
    std::fs::write(dir.path().join("in/data.csv"), file).map_err(|e| e.to_string())?;
    let permissive = run(dir.path(), options, "permissive")?;
    let drop = run(dir.path(), options, "dropmalformed")?;
    let failfast = run(dir.path(), options, "failfast")?;
    let all = format!("{permissive:?} {drop:?} {failfast:?}");
    if permissive.failed.is_some() || drop.failed.is_some() {
        return Err(format!("permissive or dropmalformed failed: {all}"));
    }
    if permissive.bad != drop.bad || permissive.rows != drop.rows + drop.bad {
        return Err(format!("permissive and dropmalformed disagree: {all}"));
    }
    match &failfast.failed {
        Some(_) if drop.bad == 0 => Err(format!("failfast failed on a clean file: {all}")),
        Some(message) if !message.contains("data.csv:") => {
            Err(format!("no path:line in {message}"))
        }
        None if drop.bad > 0 => Err(format!("failfast let a malformed row through: {all}")),
        None if failfast.rows != drop.rows => Err(format!("failfast lost rows: {all}")),
        _ => Ok(()),
    }
}
