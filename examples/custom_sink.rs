//! A custom sink type, registered by the application and used from TOML by its `type`.
//!
//! ```sh
//! cargo run --example custom_sink
//! ```
//!
//! `type = "jsonl"` writes each epoch's rows as JSON lines (keys in name order, values as
//! text) to one file per epoch, with the
//! same two phases as the built-in file sinks: rows go to a hidden file during the epoch,
//! `pre_commit` closes it at the barrier, and `commit` (after the checkpoint is durable)
//! renames it into place. Its checkpoint state is the list of files waiting for their commit,
//! so that after a crash `start` can finish the job.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use arrow_array::RecordBatch;
use arrow_cast::display::{ArrayFormatter, FormatOptions};
use arrow_schema::SchemaRef;
use serde::Deserialize;
use weir::{
    ComponentConfig, ConfigError, Epoch, OutputMode, PipelineSpec, Registry, Sink, SinkSpec,
    StageSnapshot, StateEntries,
};

/// The `[sinks.NAME]` table of a `jsonl` sink.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonlConfig {
    /// The folder that receives `epoch-N.jsonl` files.
    path: PathBuf,
}

struct JsonlSpec {
    config: JsonlConfig,
    schema: SchemaRef,
}

fn validate(
    table: &ComponentConfig,
    input: &SchemaRef,
    mode: OutputMode,
) -> Result<Box<dyn SinkSpec>, Vec<ConfigError>> {
    table.validate(|config: JsonlConfig| {
        if mode != OutputMode::Append {
            return Err(vec![ConfigError::new(
                "output_mode",
                "jsonl writes new rows only (expected \"append\")",
            )]);
        }
        Ok(Box::new(JsonlSpec {
            config,
            schema: input.clone(),
        }) as Box<dyn SinkSpec>)
    })
}

impl SinkSpec for JsonlSpec {
    fn output_folder(&self) -> Option<PathBuf> {
        Some(self.config.path.clone())
    }
    fn describe(&self) -> String {
        format!("JSON lines in {}", self.config.path.display())
    }
    fn build(&self) -> weir::Result<Box<dyn Sink>> {
        fs::create_dir_all(&self.config.path)
            .map_err(|e| weir::Error::io("cannot create", &self.config.path, e))?;
        Ok(Box::new(Jsonl {
            dir: self.config.path.clone(),
            schema: self.schema.clone(),
            current: None,
            pending: Vec::new(),
        }))
    }
}

struct Jsonl {
    dir: PathBuf,
    schema: SchemaRef,
    current: Option<BufWriter<File>>,
    /// Epochs closed at their barrier and not yet renamed into place.
    pending: Vec<Epoch>,
}

impl Jsonl {
    fn hidden(&self, epoch: Epoch) -> PathBuf {
        self.dir.join(format!(".epoch-{}.jsonl", epoch.0))
    }
    fn visible(&self, epoch: Epoch) -> PathBuf {
        self.dir.join(format!("epoch-{}.jsonl", epoch.0))
    }
    fn open(&mut self) -> weir::Result<&mut BufWriter<File>> {
        // The epoch is not known until its barrier: write under a scratch name.
        let scratch = self.dir.join(".current.jsonl");
        if self.current.is_none() {
            let file = File::create(&scratch)
                .map_err(|e| weir::Error::io("cannot create", &scratch, e))?;
            self.current = Some(BufWriter::new(file));
        }
        self.current
            .as_mut()
            .ok_or_else(|| weir::Error::Internal("no current file".into()))
    }
}

impl Sink for Jsonl {
    fn write(&mut self, batch: &RecordBatch) -> weir::Result<()> {
        let options = FormatOptions::default();
        let columns: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<_, _>>()
            .map_err(|e| weir::Error::arrow("jsonl", e))?;
        let names: Vec<String> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let out = self.open()?;
        for row in 0..batch.num_rows() {
            let object: serde_json::Map<String, serde_json::Value> = names
                .iter()
                .zip(&columns)
                .map(|(name, column)| (name.clone(), column.value(row).to_string().into()))
                .collect();
            writeln!(out, "{}", serde_json::Value::Object(object))
                .map_err(|e| weir::Error::io("cannot write", ".current.jsonl", e))?;
        }
        Ok(())
    }

    fn pre_commit(&mut self, epoch: Epoch) -> weir::Result<()> {
        if let Some(mut out) = self.current.take() {
            let hidden = self.hidden(epoch);
            out.flush()
                .map_err(|e| weir::Error::io("cannot write", &hidden, e))?;
            out.get_ref()
                .sync_all()
                .map_err(|e| weir::Error::io("cannot sync", &hidden, e))?;
            fs::rename(self.dir.join(".current.jsonl"), &hidden)
                .map_err(|e| weir::Error::io("cannot rename to", &hidden, e))?;
            self.pending.push(epoch);
        }
        Ok(())
    }

    fn snapshot(&mut self, epoch: Epoch) -> weir::Result<StageSnapshot> {
        let mut snapshot = StageSnapshot::default();
        if self.pending.contains(&epoch) {
            snapshot.delta.put(epoch.0.to_be_bytes(), Vec::new());
        }
        snapshot.state_keys = self.pending.len() as u64;
        Ok(snapshot)
    }

    fn start(&mut self, resume: Option<(Epoch, StateEntries)>) -> weir::Result<()> {
        // Files of epochs the checkpoint recorded are finished; anything else is dropped.
        if let Some((last, state)) = resume {
            for (key, _) in state {
                if let Ok(bytes) = <[u8; 8]>::try_from(key.as_slice()) {
                    let epoch = Epoch(u64::from_be_bytes(bytes));
                    if epoch <= last {
                        self.pending.push(epoch);
                    }
                }
            }
            self.commit(last)?;
        }
        Ok(())
    }

    fn commit(&mut self, epoch: Epoch) -> weir::Result<()> {
        for done in self.pending.clone().into_iter().filter(|e| *e <= epoch) {
            let (hidden, visible) = (self.hidden(done), self.visible(done));
            // Idempotent: a file already renamed is committed.
            if hidden.exists() {
                fs::rename(&hidden, &visible)
                    .map_err(|e| weir::Error::io("cannot rename to", &visible, e))?;
            }
            self.pending.retain(|e| *e != done);
        }
        Ok(())
    }
}

const PIPELINE: &str = r#"
[trigger]
available_now = true

[sources.sales]
type = "csv"
path = "WORK/in"
schema = "File STRING, Shop STRING, Sale_Count INT"
header = true
sep = ";"
max_files_per_trigger = 1

[sinks.lines]
type = "jsonl"
input = "sales"
path = "WORK/out"
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = Registry::default();
    registry.register_sink("jsonl", validate);

    let work = tempfile::tempdir()?;
    fs::create_dir_all(work.path().join("in"))?;
    for f in 0..2 {
        fs::write(
            work.path().join(format!("in/part-{f}.csv")),
            format!("File;Shop;Sale_Count\npart-{f};a;{f}\npart-{f};b;7\n"),
        )?;
    }
    let toml = PIPELINE.replace("WORK", &work.path().display().to_string());
    let spec = PipelineSpec::from_toml(&toml, "pipeline.toml", "jsonl", &[], &registry)?;
    let system = actix::System::new();
    let last = system.block_on(async move { spec.start()?.wait().await })?;

    let mut names: Vec<String> = fs::read_dir(work.path().join("out"))?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let first = fs::read_to_string(work.path().join("out/epoch-1.jsonl"))?;
    print!("epoch-1.jsonl:\n{first}");
    println!("done at epoch {last}; files: {names:?}");
    if names != ["epoch-1.jsonl", "epoch-2.jsonl"]
        || first != "{\"File\":\"part-0\",\"Sale_Count\":\"0\",\"Shop\":\"a\"}\n{\"File\":\"part-0\",\"Sale_Count\":\"7\",\"Shop\":\"b\"}\n"
    {
        return Err("the jsonl sink wrote something else".into());
    }
    Ok(())
}

#[test]
fn a_custom_sink_runs_from_toml_with_two_phases() {
    main().unwrap();
}
