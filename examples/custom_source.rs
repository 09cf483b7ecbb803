//! A custom source type, registered by the application and used from TOML by its `type`.
//!
//! ```sh
//! cargo run --example custom_source
//! ```
//!
//! `type = "sequence"` produces the numbers `0..count` in `chunk`-sized units, one unit per
//! admitted "file". Its position goes into every checkpoint, so a pipeline restarted from a
//! checkpoint goes on after the last number the checkpoint covers: the example runs the
//! pipeline twice on one checkpoint folder, with a larger `count` the second time, and the
//! sum of what was archived is every number exactly once.

use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use serde::Deserialize;
use weir::{
    ComponentConfig, ConfigError, PipelineSpec, Quota, Registry, Source, SourceSpec, StageSnapshot,
    StateEntries,
};

/// The `[sources.NAME]` table of a `sequence` source.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct SequenceConfig {
    /// Numbers to produce: `0..count`.
    count: i64,
    /// Numbers per unit; `max_files_per_trigger` units go into an epoch.
    chunk: i64,
    /// Units per epoch at most under a limited trigger.
    #[serde(default = "one")]
    max_files_per_trigger: usize,
}

fn one() -> usize {
    1
}

fn validate(table: &ComponentConfig) -> Result<Box<dyn SourceSpec>, Vec<ConfigError>> {
    table.validate(|config: SequenceConfig| {
        let mut errors = Vec::new();
        if config.count < 0 {
            errors.push(ConfigError::new("count", "must be 0 or more"));
        }
        if config.chunk < 1 {
            errors.push(ConfigError::new("chunk", "must be 1 or more"));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Box::new(config) as Box<dyn SourceSpec>)
    })
}

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
}

impl SourceSpec for SequenceConfig {
    fn schema(&self) -> SchemaRef {
        schema()
    }
    fn describe(&self) -> String {
        // Also the source's identity in checkpoints: `count` may grow between runs (like
        // files arriving), the unit size may not.
        format!("numbers in units of {}", self.chunk)
    }
    fn build(&self) -> weir::Result<Box<dyn Source>> {
        Ok(Box::new(Sequence {
            config: self.clone(),
            next: 0,
            admitted_to: 0,
            discovered_to: 0,
        }))
    }
}

/// The running source. Numbers below `next` have been emitted; those below `admitted_to`
/// may be read in this epoch; those below `discovered_to` are known to exist.
struct Sequence {
    config: SequenceConfig,
    next: i64,
    admitted_to: i64,
    discovered_to: i64,
}

impl Source for Sequence {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    fn discover(&mut self) -> weir::Result<()> {
        self.discovered_to = self.config.count;
        Ok(())
    }

    fn admit(&mut self, quota: Quota) -> usize {
        let units = quota
            .allows(Some(self.config.max_files_per_trigger))
            .min(self.backlog());
        self.admitted_to =
            (self.admitted_to + units as i64 * self.config.chunk).min(self.discovered_to);
        units
    }

    fn backlog(&self) -> usize {
        let left = (self.discovered_to - self.admitted_to).max(0);
        ((left + self.config.chunk - 1) / self.config.chunk) as usize
    }

    fn next_batch(&mut self) -> weir::Result<Option<RecordBatch>> {
        if self.next >= self.admitted_to {
            return Ok(None);
        }
        let end = (self.next + self.config.chunk).min(self.admitted_to);
        let numbers = Int64Array::from_iter_values(self.next..end);
        self.next = end;
        let batch = RecordBatch::try_new(schema(), vec![Arc::new(numbers)])
            .map_err(|e| weir::Error::arrow("sequence", e))?;
        Ok(Some(batch))
    }

    fn snapshot(&mut self) -> weir::Result<StageSnapshot> {
        // One key: the position. Everything before the barrier is below `next`.
        let mut snapshot = StageSnapshot::default();
        snapshot
            .delta
            .put(b"next".to_vec(), self.next.to_be_bytes().to_vec());
        snapshot.state_keys = 1;
        snapshot.state_bytes = 8;
        snapshot.detail = format!("next number {}", self.next);
        Ok(snapshot)
    }

    fn restore(&mut self, state: StateEntries) -> weir::Result<()> {
        for (key, value) in state {
            if key == b"next" {
                let bytes: [u8; 8] = value.as_slice().try_into().map_err(|_| {
                    weir::Error::checkpoint(
                        weir::CheckpointFailure::Damaged,
                        "sequence: the position is not 8 bytes",
                    )
                })?;
                self.next = i64::from_be_bytes(bytes);
                self.admitted_to = self.next;
                self.discovered_to = self.next;
            }
        }
        Ok(())
    }
}

const PIPELINE: &str = r#"
[checkpoint]
path = "{WORK}/state"

[trigger]
available_now = true

[sources.numbers]
type = "sequence"
count = {COUNT}
chunk = 1000
max_files_per_trigger = 3

[operators.total]
type = "aggregate"
input = "numbers"
aggregates = ["sum(n)", "count(*)"]

[sinks.result]
type = "csv"
input = "total"
path = "{WORK}/total"
output_mode = "complete"
"#;

fn run(toml: &str, registry: &Registry) -> Result<weir::Epoch, Box<dyn std::error::Error>> {
    let spec = PipelineSpec::from_toml(toml, "pipeline.toml", "numbers", &[], registry)?;
    let system = actix::System::new();
    Ok(system.block_on(async move { spec.start()?.wait().await })?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut registry = Registry::default();
    registry.register_source("sequence", validate);
    let work = tempfile::tempdir()?;
    let toml = |count: i64| {
        PIPELINE
            .replace("{WORK}", &work.path().display().to_string())
            .replace("{COUNT}", &count.to_string())
    };

    let first = run(&toml(10_000), &registry)?;
    // The second run resumes at 10,000 from the checkpoint and reads only what is new.
    let second = run(&toml(25_000), &registry)?;
    let total = std::fs::read_to_string(work.path().join("total/result.csv"))?;
    print!("after epochs {first} and {second}, total/result.csv:\n{total}");
    let expected: i64 = (0..25_000).sum();
    if total != format!("sum(n),count(1)\n{expected},25000\n") {
        return Err("every number once was expected".into());
    }
    Ok(())
}

#[test]
fn a_custom_source_runs_from_toml_and_resumes_from_its_checkpoint() {
    main().unwrap();
}
