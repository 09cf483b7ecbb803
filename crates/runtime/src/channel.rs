//! The `channel` sink: each committed epoch's batches, delivered to an actor of the caller's.
//!
//! Delivery follows the same two phases as a file sink. At the barrier the epoch's batches
//! become pending and go into the checkpoint (as Arrow IPC); after the checkpoint is
//! complete they are sent to the caller's [`Recipient`], and the sink waits for the reply,
//! so a slow recipient holds the pipeline back like a slow disk would. After a crash, the
//! epochs the last checkpoint left pending are delivered again, with the same epoch numbers
//! and the same rows, before anything new: a recipient that ignores epochs it has already
//! handled sees every row exactly once.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix::{Message, Recipient};
use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::SchemaRef;
use serde::Deserialize;
use weir_core::{
    CheckpointFailure, ConfigError, Epoch, Error, OutputMode, Result, Sink, StageSnapshot,
    StateEntries,
};

use crate::registry::SinkSpec;

/// One epoch of a `channel` sink's output, sent to the caller's actor once the epoch's
/// checkpoint is complete.
///
/// Epochs arrive in increasing order. After a restart from a checkpoint, epochs up to that
/// checkpoint may arrive a second time (`redelivery` is then `true`) with exactly the same
/// rows: skip an epoch at or below the last one you have handled. Epochs in which the sink
/// received no rows are not sent.
#[derive(Debug, Clone, Message)]
#[rtype(result = "()")]
pub struct EpochOutput {
    /// The sink's name in the pipeline (`results` for `[sinks.results]`).
    pub sink: String,
    /// The epoch the rows belong to.
    pub epoch: Epoch,
    /// How to read the rows: `append` (new rows), `complete` (the whole result table,
    /// replacing the previous one) or `update` (the groups that changed).
    pub mode: OutputMode,
    /// The rows, in the order the sink received them.
    pub batches: Vec<RecordBatch>,
    /// This epoch may have been delivered before, by a run that crashed after its
    /// checkpoint.
    pub redelivery: bool,
}

/// The `channel` sink's table: `channel` names a recipient registered with
/// [`crate::Registry::add_channel`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelSinkConfig {
    /// The name the recipient was registered under.
    channel: String,
}

pub(crate) type Channels = BTreeMap<String, Recipient<EpochOutput>>;

pub(crate) fn validate(
    config: ChannelSinkConfig,
    channels: &Channels,
    schema: &SchemaRef,
    mode: OutputMode,
) -> std::result::Result<ChannelSpec, Vec<ConfigError>> {
    match channels.get(&config.channel) {
        Some(recipient) => Ok(ChannelSpec {
            recipient: recipient.clone(),
            schema: schema.clone(),
            mode,
        }),
        None => {
            let known: Vec<String> = channels.keys().map(|k| format!("\"{k}\"")).collect();
            let expected = if known.is_empty() {
                "no channel is registered; embed the pipeline and call Registry::add_channel"
                    .to_string()
            } else {
                format!("expected one of {}", known.join(", "))
            };
            Err(vec![ConfigError::new(
                "channel",
                format!("unknown channel \"{}\" ({expected})", config.channel),
            )])
        }
    }
}

pub(crate) struct ChannelSpec {
    recipient: Recipient<EpochOutput>,
    schema: SchemaRef,
    mode: OutputMode,
}

impl ChannelSpec {
    /// The sink for the pipeline stage `name`.
    pub(crate) fn with_name(self, name: &str) -> NamedChannelSpec {
        NamedChannelSpec {
            name: name.to_string(),
            spec: Arc::new(self),
        }
    }
}

/// A [`ChannelSpec`] that knows its stage's name, which every [`EpochOutput`] carries.
pub(crate) struct NamedChannelSpec {
    name: String,
    spec: Arc<ChannelSpec>,
}

impl SinkSpec for NamedChannelSpec {
    fn describe(&self) -> String {
        "an actor of the embedding application".into()
    }

    fn build(&self) -> Result<Box<dyn Sink>> {
        Ok(Box::new(ChannelSink {
            name: self.name.clone(),
            spec: self.spec.clone(),
            current: Vec::new(),
            pending: BTreeMap::new(),
            delivered: Vec::new(),
        }))
    }
}

struct Pending {
    batches: Vec<RecordBatch>,
    redelivery: bool,
    /// Already in a checkpoint: a snapshot need not write it again.
    recorded: bool,
}

struct ChannelSink {
    name: String,
    spec: Arc<ChannelSpec>,
    current: Vec<RecordBatch>,
    pending: BTreeMap<Epoch, Pending>,
    /// Epochs sent since the last snapshot, whose checkpoint entries can go.
    delivered: Vec<Epoch>,
}

/// The state key tag of an epoch's undelivered batches.
const PENDING: u8 = b'p';

fn pending_key(epoch: Epoch) -> Vec<u8> {
    epoch.key(PENDING)
}

impl ChannelSink {
    fn encode(&self, batches: &[RecordBatch]) -> Result<Vec<u8>> {
        let context = || format!("sinks.{}: encoding the epoch's output", self.name);
        let mut bytes = Vec::new();
        let mut writer = StreamWriter::try_new(&mut bytes, &self.spec.schema)
            .map_err(|e| Error::arrow(context(), e))?;
        for batch in batches {
            writer
                .write(batch)
                .map_err(|e| Error::arrow(context(), e))?;
        }
        writer.finish().map_err(|e| Error::arrow(context(), e))?;
        drop(writer);
        Ok(bytes)
    }

    fn decode(&self, epoch: Epoch, bytes: &[u8]) -> Result<Vec<RecordBatch>> {
        let damaged = |e: arrow_schema::ArrowError| {
            Error::checkpoint(
                CheckpointFailure::Damaged,
                format!(
                    "sinks.{}: the pending output of epoch {epoch} in the checkpoint is damaged: {e}",
                    self.name
                ),
            )
        };
        StreamReader::try_new(bytes, None)
            .map_err(damaged)?
            .map(|batch| batch.map_err(damaged))
            .collect()
    }
}

impl Sink for ChannelSink {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.current.push(batch.clone());
        Ok(())
    }

    fn pre_commit(&mut self, epoch: Epoch) -> Result<()> {
        let batches = std::mem::take(&mut self.current);
        if !batches.is_empty() {
            self.pending.insert(
                epoch,
                Pending {
                    batches,
                    redelivery: false,
                    recorded: false,
                },
            );
        }
        Ok(())
    }

    fn start(&mut self, resume: Option<(Epoch, StateEntries)>) -> Result<()> {
        let Some((last, state)) = resume else {
            return Ok(());
        };
        for (key, value) in state {
            let Some(epoch) = Epoch::from_key(PENDING, &key) else {
                continue;
            };
            if epoch > last {
                continue;
            }
            let batches = self.decode(epoch, &value)?;
            self.pending.insert(
                epoch,
                Pending {
                    batches,
                    redelivery: true,
                    recorded: true,
                },
            );
        }
        Ok(())
    }

    fn snapshot(&mut self, _epoch: Epoch) -> Result<StageSnapshot> {
        let mut snapshot = StageSnapshot::default();
        for epoch in self.delivered.drain(..) {
            snapshot.delta.delete(pending_key(epoch));
        }
        let mut bytes = 0u64;
        let mut unrecorded = Vec::new();
        for (epoch, pending) in &self.pending {
            bytes += pending
                .batches
                .iter()
                .map(|b| b.get_array_memory_size() as u64)
                .sum::<u64>();
            if !pending.recorded {
                unrecorded.push(*epoch);
            }
        }
        for epoch in unrecorded {
            if let Some(pending) = self.pending.get(&epoch) {
                let encoded = self.encode(&pending.batches)?;
                snapshot.delta.put(pending_key(epoch), encoded);
            }
            if let Some(pending) = self.pending.get_mut(&epoch) {
                pending.recorded = true;
            }
        }
        snapshot.state_keys = self.pending.len() as u64;
        snapshot.state_bytes = bytes;
        snapshot.detail = format!("{} epoch(s) waiting for delivery", self.pending.len());
        Ok(snapshot)
    }

    fn commit(&mut self, epoch: Epoch) -> Result<()> {
        let due: Vec<Epoch> = self.pending.range(..=epoch).map(|(e, _)| *e).collect();
        for e in due {
            let Some(pending) = self.pending.remove(&e) else {
                continue;
            };
            let output = EpochOutput {
                sink: self.name.clone(),
                epoch: e,
                mode: self.spec.mode,
                batches: pending.batches,
                redelivery: pending.redelivery,
            };
            // This runs on the sink's own thread, so waiting here blocks nothing but this
            // sink: the caller's reply is the backpressure.
            futures::executor::block_on(self.spec.recipient.send(output)).map_err(|e| {
                Error::Stopped(format!(
                    "sinks.{}: the channel's recipient is gone: {e}",
                    self.name
                ))
            })?;
            self.delivered.push(e);
        }
        Ok(())
    }
}
