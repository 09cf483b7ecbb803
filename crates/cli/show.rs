//! `weir show` (committed output as a table) and `weir checkpoints` (complete checkpoints).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Prints the committed files of `path` (a folder, or one file) as one table. Only the rows
/// it prints are decoded; parquet files after them are counted from their metadata, and CSV
/// and JSON lines files are read through without being kept.
pub(crate) fn show(path: &Path, num_rows: usize, truncate: bool, sep: char) -> anyhow::Result<()> {
    let files = committed_files(path)?;
    if files.is_empty() {
        println!("{}: no committed output yet", path.display());
        return Ok(());
    }
    let json = json_schema(&files)?;
    let mut table = weir::Table::new(num_rows, truncate);
    for file in &files {
        read_into(file, sep, &json, &mut table)
            .with_context(|| format!("cannot read {}", file.display()))?;
    }
    print!("{}", table.render());
    println!("{} row(s) in {} file(s)", table.total(), files.len());
    Ok(())
}

/// Files a reader should see: no hidden (`.`) or in-progress (`_`) names, in partition
/// folders too (`Shop=A/…`, whose column the files do not hold), sorted by path so that
/// epochs come in order within a folder.
fn committed_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    let mut folders = vec![path.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .with_context(|| format!("cannot list {}", folder.display()))?;
        for entry in entries {
            let path = entry
                .with_context(|| format!("cannot list {}", folder.display()))?
                .path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if path.is_dir() {
                folders.push(path);
            } else if [".parquet", ".csv", ".json"]
                .iter()
                .any(|e| name.ends_with(e))
            {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Adds `file`'s rows to `table`: decoded while the table has room, counted after that.
fn read_into(
    file: &Path,
    sep: char,
    json: &arrow_schema::SchemaRef,
    table: &mut weir::Table,
) -> anyhow::Result<()> {
    let name = file.to_string_lossy();
    if name.ends_with(".parquet") {
        let builder = ParquetRecordBatchReaderBuilder::try_new(File::open(file)?)?;
        if table.is_full() {
            table.count(builder.metadata().file_metadata().num_rows().max(0) as usize);
            return Ok(());
        }
        let mut reader = builder.build()?;
        for batch in reader.by_ref() {
            let batch = batch?;
            if table.is_full() {
                table.count(batch.num_rows());
            } else {
                table.push(&batch)?;
            }
        }
        return Ok(());
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
        for batch in reader {
            table.push(&batch?)?;
        }
        return Ok(());
    }
    if name.ends_with(".json") {
        let reader = arrow_json::ReaderBuilder::new(json.clone())
            .build(std::io::BufReader::new(File::open(file)?))?;
        for batch in reader {
            table.push(&batch?)?;
        }
        return Ok(());
    }
    bail!("not a parquet, CSV or JSON lines file")
}

/// The columns of the JSON lines files among `files`, from all of them: null values are left
/// out of the lines, so one file may lack a column that another has.
fn json_schema(files: &[PathBuf]) -> anyhow::Result<arrow_schema::SchemaRef> {
    let mut schemas = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".json"))
    {
        let (schema, _) = arrow_json::reader::infer_json_schema_from_seekable(
            std::io::BufReader::new(File::open(file)?),
            None,
        )
        .with_context(|| format!("cannot read {}", file.display()))?;
        schemas.push(schema);
    }
    Ok(std::sync::Arc::new(arrow_schema::Schema::try_merge(
        schemas,
    )?))
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
