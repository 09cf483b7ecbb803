//! `weir show` (committed output as a table) and `weir checkpoints` (complete checkpoints).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Prints the committed files of `path` (a folder, or one file) as one table.
pub(crate) fn show(path: &Path, num_rows: usize, truncate: bool, sep: char) -> anyhow::Result<()> {
    let files = committed_files(path)?;
    if files.is_empty() {
        println!("{}: no committed output yet", path.display());
        return Ok(());
    }
    let mut batches = Vec::new();
    for file in &files {
        batches.extend(read(file, sep).with_context(|| format!("cannot read {}", file.display()))?);
    }
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    print!("{}", weir::format_table(&batches, num_rows, truncate)?);
    println!("{rows} row(s) in {} file(s)", files.len());
    Ok(())
}

/// Files a reader should see: no hidden (`.`) or in-progress (`_`) names, sorted by name so
/// that epochs come in order.
fn committed_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let entries =
        std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", path.display()))?
            .path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let visible = !name.starts_with('.') && !name.starts_with('_');
        if visible && path.is_file() && (name.ends_with(".parquet") || name.ends_with(".csv")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

fn read(file: &Path, sep: char) -> anyhow::Result<Vec<RecordBatch>> {
    let name = file.to_string_lossy();
    if name.ends_with(".parquet") {
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(file)?)?.build()?;
        return Ok(reader.collect::<Result<Vec<_>, _>>()?);
    }
    if name.ends_with(".csv") {
        if !sep.is_ascii() {
            bail!("--sep must be one ASCII character");
        }
        let format = arrow_csv::reader::Format::default()
            .with_header(true)
            .with_delimiter(sep as u8);
        let (schema, _) = format.infer_schema(File::open(file)?, None)?;
        let reader = arrow_csv::ReaderBuilder::new(std::sync::Arc::new(schema))
            .with_format(format)
            .build(File::open(file)?)?;
        return Ok(reader.collect::<Result<Vec<_>, _>>()?);
    }
    bail!("not a parquet or CSV file")
}

/// Prints every complete checkpoint kept in the checkpoint folder `path`, oldest first, and
/// what is wrong with any that does not read whole. Damage is a failure (exit 1), so that a
/// script can tell.
pub(crate) fn checkpoints(path: &Path) -> anyhow::Result<()> {
    let store = weir::CheckpointStore::open_read_only(path)?;
    let survey = store.survey()?;
    if survey.is_empty() {
        println!("{}: no complete checkpoint yet", path.display());
        return Ok(());
    }
    let mut damaged = Vec::new();
    for (epoch, manifest) in &survey {
        let manifest = match manifest {
            Ok(manifest) => manifest,
            Err(what) => {
                println!("epoch {epoch}  DAMAGED: {what}");
                damaged.push(*epoch);
                continue;
            }
        };
        println!(
            "epoch {}  {}  {} B written",
            manifest.epoch,
            weir::utc_timestamp(manifest.written_at_ms as i64),
            manifest.bytes_written,
        );
        let width = manifest.stages.keys().map(String::len).max().unwrap_or(0);
        for (stage, summary) in &manifest.stages {
            println!(
                "  {stage:width$}  {} key(s), {} B of state, {} changed  {}",
                summary.state_keys, summary.state_bytes, summary.changed_keys, summary.detail
            );
        }
    }
    if damaged.is_empty() {
        return Ok(());
    }
    match weir::CheckpointStore::newest_whole(&survey).map(|m| m.epoch) {
        Some(epoch) => bail!(
            "{}: checkpoint(s) {damaged:?} are damaged; `weir run --fall-back` resumes from checkpoint {epoch}, re-reading the input after it",
            path.display()
        ),
        None => bail!(
            "{}: every checkpoint is damaged; to start over, remove the folder and the sinks' output",
            path.display()
        ),
    }
}
