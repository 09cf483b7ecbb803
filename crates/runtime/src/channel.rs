//! The `channel` sink: each committed epoch's batches, delivered to an actor of the caller's.
//!
//! Delivery follows the same two phases as a file sink. Batches are spilled to a file as they
//! arrive (Arrow IPC, in `<checkpoint.path>/channel-spill/<sink>/`, or a temporary folder
//! without a checkpoint), so the sink holds one batch in memory whatever the epoch's size. At
//! the barrier the epoch's file is synced and its name goes into the checkpoint; after the
//! checkpoint is complete the file is read back and sent batch by batch to the caller's
//! [`Recipient`], each part awaited, so a slow recipient holds the pipeline back like a slow
//! disk would. After a crash, the epochs the last checkpoint left pending are delivered again,
//! with the same epoch numbers and the same rows, before anything new: a recipient that
//! ignores epochs it has already handled sees every row exactly once.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
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

use crate::registry::{SinkPlace, SinkSpec};

/// One part of one epoch of a `channel` sink's output, sent to the caller's actor once the
/// epoch's checkpoint is complete.
///
/// An epoch comes as one or more parts, in order, numbered from 0; `last` marks its final
/// part (in `complete` mode, part 0 starts the new result table). Epochs arrive in
/// increasing order. After a restart from a checkpoint, epochs up to that checkpoint may
/// arrive a second time (`redelivery` is then `true`), every part again, with exactly the
/// same rows: skip an epoch at or below the last one whose `last` part you have handled, and
/// drop the parts of an epoch whose `last` part never came. Epochs in which the sink received
/// no rows are not sent.
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
    /// This part's rows, in the order the sink received them.
    pub batches: Vec<RecordBatch>,
    /// Which part of the epoch this is, from 0.
    pub part: u32,
    /// This is the epoch's last part: the epoch is complete.
    pub last: bool,
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
        self.build_in(&SinkPlace::default())
    }

    fn build_in(&self, place: &SinkPlace) -> Result<Box<dyn Sink>> {
        let delivery = ToRecipient {
            name: self.name.clone(),
            spec: self.spec.clone(),
        };
        let sink = SpilledSink::new(&self.name, "channel", &self.spec.schema, place, delivery)?;
        Ok(Box::new(sink))
    }
}

/// One part of a committed epoch, for a [`Delivery`].
pub(crate) struct EpochPart {
    /// The epoch the rows belong to.
    pub(crate) epoch: Epoch,
    /// The part's rows.
    pub(crate) batches: Vec<RecordBatch>,
    /// Which part of the epoch this is, from 0.
    pub(crate) part: u32,
    /// The epoch's last part.
    pub(crate) last: bool,
    /// A run that crashed after the epoch's checkpoint may have delivered it already.
    pub(crate) redelivery: bool,
}

/// Where a [`SpilledSink`] delivers each committed epoch: the parts of an epoch come in
/// order, exactly the same rows in the same parts each time an epoch is delivered again.
pub(crate) trait Delivery: Send + 'static {
    /// Delivers one part, returning once it is safely delivered.
    fn deliver(&mut self, part: EpochPart) -> Result<()>;
}

/// The `channel` sink's delivery: to the caller's actor.
struct ToRecipient {
    name: String,
    spec: Arc<ChannelSpec>,
}

impl Delivery for ToRecipient {
    fn deliver(&mut self, part: EpochPart) -> Result<()> {
        let output = EpochOutput {
            sink: self.name.clone(),
            epoch: part.epoch,
            mode: self.spec.mode,
            batches: part.batches,
            part: part.part,
            last: part.last,
            redelivery: part.redelivery,
        };
        // This runs on the sink's own thread, so waiting here blocks nothing but this
        // sink: the caller's reply is the backpressure.
        futures::executor::block_on(self.spec.recipient.send(output)).map_err(|e| {
            Error::Stopped(format!(
                "sinks.{}: the channel's recipient is gone: {e}",
                self.name
            ))
        })
    }
}

/// Where a sink's epochs wait for delivery.
enum Spill {
    /// Beside the checkpoint, which names the files: they outlive a crash.
    Kept(PathBuf),
    /// No checkpoint: nothing outlives the run, and the folder goes with the sink.
    Temporary(PathBuf),
}

impl Spill {
    fn folder(&self) -> &Path {
        match self {
            Spill::Kept(path) | Spill::Temporary(path) => path,
        }
    }

    fn epoch_file(&self, epoch: Epoch) -> PathBuf {
        self.folder().join(format!("epoch-{:020}.arrows", epoch.0))
    }

    /// The file the epoch being read is spilled to, named for its epoch at the barrier.
    fn current_file(&self) -> PathBuf {
        self.folder().join("current.arrows.pending")
    }
}

impl<D> Drop for SpilledSink<D> {
    fn drop(&mut self) {
        if let Spill::Temporary(folder) = &self.spill {
            // Best effort: a temporary folder left behind is only disk space.
            let _ = std::fs::remove_dir_all(folder);
        }
    }
}

/// An epoch's rows waiting for delivery.
enum Rows {
    /// Spilled to this file.
    Spilled(PathBuf),
    /// Read from a checkpoint of an older Weir, which kept the rows themselves in it.
    Held(Vec<RecordBatch>),
}

struct Pending {
    rows: Rows,
    redelivery: bool,
    /// Already in a checkpoint: a snapshot need not write it again.
    recorded: bool,
}

/// A sink that delivers each epoch somewhere else once its checkpoint is complete: the
/// epoch's batches are spilled to a file as they come, synced at the barrier and named in the
/// checkpoint, and read back for the [`Delivery`] at the commit; a restart delivers the
/// epochs its checkpoint left pending again.
pub(crate) struct SpilledSink<D> {
    name: String,
    schema: SchemaRef,
    delivery: D,
    spill: Spill,
    /// The epoch being read, spilled as it comes; `None` until its first batch.
    current: Option<StreamWriter<BufWriter<File>>>,
    pending: BTreeMap<Epoch, Pending>,
    /// Epochs sent since the last snapshot, whose checkpoint entries can go.
    delivered: Vec<(Epoch, Option<PathBuf>)>,
    /// Files of epochs whose checkpoint entries the last snapshot deleted: once that
    /// checkpoint is complete (the next commit), nothing names them and they go.
    forgotten: Vec<PathBuf>,
}

/// The state key tag of an epoch's undelivered batches.
const PENDING: u8 = b'p';

/// How a checkpoint entry names a spilled file, as opposed to the Arrow IPC stream (which
/// starts with 0xFFFFFFFF) that older Weirs kept there.
const SPILLED: &[u8] = b"spilled:";

fn pending_key(epoch: Epoch) -> Vec<u8> {
    epoch.key(PENDING)
}

impl<D: Delivery> SpilledSink<D> {
    /// The sink for stage `name`, spilling to `<checkpoint>/<kind>-spill/<name>/` (or a
    /// temporary folder when the pipeline has no checkpoint).
    pub(crate) fn new(
        name: &str,
        kind: &str,
        schema: &SchemaRef,
        place: &SinkPlace,
        delivery: D,
    ) -> Result<Self> {
        let spill = match &place.checkpoint {
            Some(checkpoint) => Spill::Kept(checkpoint.join(format!("{kind}-spill")).join(name)),
            None => Spill::Temporary(std::env::temp_dir().join(format!(
                "weir-{kind}-{}-{name}-{}",
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos())
            ))),
        };
        std::fs::create_dir_all(spill.folder())
            .map_err(|e| Error::io("cannot create", spill.folder(), e))?;
        Ok(SpilledSink {
            name: name.to_string(),
            schema: schema.clone(),
            delivery,
            spill,
            current: None,
            pending: BTreeMap::new(),
            delivered: Vec::new(),
            forgotten: Vec::new(),
        })
    }

    fn arrow_error(&self, what: &str, path: &Path, e: arrow_schema::ArrowError) -> Error {
        Error::arrow(format!("sinks.{}: {what} {}", self.name, path.display()), e)
    }

    /// The batches of an older Weir's checkpoint entry.
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

    /// Ends the current epoch's spill file and names it for `epoch`, durably: synced, renamed,
    /// and the folder synced, so that the checkpoint never names a file a power loss undid.
    fn seal(&mut self, epoch: Epoch) -> Result<Option<PathBuf>> {
        let Some(mut writer) = self.current.take() else {
            return Ok(None);
        };
        let current = self.spill.current_file();
        writer
            .finish()
            .map_err(|e| self.arrow_error("cannot finish", &current, e))?;
        let file = writer
            .into_inner()
            .map_err(|e| self.arrow_error("cannot finish", &current, e))?
            .into_inner()
            .map_err(|e| Error::io("cannot write", &current, e.into_error()))?;
        file.sync_all()
            .map_err(|e| Error::io("cannot sync", &current, e))?;
        let sealed = self.spill.epoch_file(epoch);
        std::fs::rename(&current, &sealed).map_err(|e| Error::io("cannot rename", &current, e))?;
        sync_dir(self.spill.folder())?;
        Ok(Some(sealed))
    }

    /// Delivers one epoch, part by part, each awaited.
    fn deliver(&mut self, epoch: Epoch, pending: Pending) -> Result<()> {
        let redelivery = pending.redelivery;
        let mut send = |batches: Vec<RecordBatch>, part: u32, last: bool| {
            self.delivery.deliver(EpochPart {
                epoch,
                batches,
                part,
                last,
                redelivery,
            })
        };
        match &pending.rows {
            Rows::Held(batches) => send(batches.clone(), 0, true),
            Rows::Spilled(path) => {
                let file = File::open(path).map_err(|e| Error::io("cannot open", path, e))?;
                let arrow_error = |e| {
                    Error::arrow(
                        format!("sinks.{}: cannot read {}", self.name, path.display()),
                        e,
                    )
                };
                let mut reader =
                    StreamReader::try_new(BufReader::new(file), None).map_err(arrow_error)?;
                // One batch ahead, so that the last part says it is the last.
                let mut next = reader.next().transpose();
                let mut part = 0;
                loop {
                    let batch = next.map_err(arrow_error)?;
                    let Some(batch) = batch else {
                        return Ok(());
                    };
                    next = reader.next().transpose();
                    let last = matches!(next, Ok(None));
                    send(vec![batch], part, last)?;
                    part += 1;
                }
            }
        }
    }
}

/// Syncs a folder, so that a rename or a new file in it survives a power loss.
fn sync_dir(folder: &Path) -> Result<()> {
    File::open(folder)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| Error::io("cannot sync", folder, e))
}

impl<D: Delivery> Sink for SpilledSink<D> {
    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.current.is_none() {
            let path = self.spill.current_file();
            let file = File::create(&path).map_err(|e| Error::io("cannot create", &path, e))?;
            let writer = StreamWriter::try_new(BufWriter::new(file), &self.schema)
                .map_err(|e| self.arrow_error("cannot write", &path, e))?;
            self.current = Some(writer);
        }
        if let Some(writer) = self.current.as_mut() {
            if let Err(e) = writer.write(batch) {
                let path = self.spill.current_file();
                return Err(self.arrow_error("cannot write", &path, e));
            }
        }
        Ok(())
    }

    fn pre_commit(&mut self, epoch: Epoch) -> Result<()> {
        if let Some(path) = self.seal(epoch)? {
            self.pending.insert(
                epoch,
                Pending {
                    rows: Rows::Spilled(path),
                    redelivery: false,
                    recorded: false,
                },
            );
        }
        Ok(())
    }

    fn start(&mut self, resume: Option<(Epoch, StateEntries)>) -> Result<()> {
        let mut named = Vec::new();
        if let Some((last, state)) = resume {
            for (key, value) in state {
                let Some(epoch) = Epoch::from_key(PENDING, &key) else {
                    continue;
                };
                if epoch > last {
                    continue;
                }
                let rows = match value.strip_prefix(SPILLED) {
                    Some(name) => {
                        let path = self
                            .spill
                            .folder()
                            .join(String::from_utf8_lossy(name).as_ref());
                        if !path.is_file() {
                            return Err(Error::checkpoint(
                                CheckpointFailure::Damaged,
                                format!(
                                    "sinks.{}: the checkpoint's epoch {epoch} waits for delivery in {}, which is missing (the file is synced before the checkpoint names it, so something removed it)",
                                    self.name,
                                    path.display()
                                ),
                            ));
                        }
                        named.push(path.clone());
                        Rows::Spilled(path)
                    }
                    None => Rows::Held(self.decode(epoch, &value)?),
                };
                self.pending.insert(
                    epoch,
                    Pending {
                        rows,
                        redelivery: true,
                        recorded: true,
                    },
                );
            }
        }
        // Everything else in the folder is from epochs after the checkpoint, which are read
        // again, or delivered ones a crash kept from being removed.
        let folder = self.spill.folder();
        let entries = std::fs::read_dir(folder).map_err(|e| Error::io("cannot list", folder, e))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if !named.contains(&path) {
                std::fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
            }
        }
        Ok(())
    }

    fn snapshot(&mut self, _epoch: Epoch) -> Result<StageSnapshot> {
        let mut snapshot = StageSnapshot::default();
        for (epoch, file) in self.delivered.drain(..) {
            snapshot.delta.delete(pending_key(epoch));
            self.forgotten.extend(file);
        }
        let mut bytes = 0u64;
        for (epoch, pending) in &mut self.pending {
            bytes += match &pending.rows {
                Rows::Spilled(path) => std::fs::metadata(path).map_or(0, |m| m.len()),
                Rows::Held(batches) => batches
                    .iter()
                    .map(|b| b.get_array_memory_size() as u64)
                    .sum(),
            };
            if pending.recorded {
                continue;
            }
            if let Rows::Spilled(path) = &pending.rows {
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                let mut value = SPILLED.to_vec();
                value.extend_from_slice(name.unwrap_or_default().as_bytes());
                snapshot.delta.put(pending_key(*epoch), value);
            }
            pending.recorded = true;
        }
        snapshot.state_keys = self.pending.len() as u64;
        snapshot.state_bytes = bytes;
        snapshot.detail = format!("{} epoch(s) waiting for delivery", self.pending.len());
        Ok(snapshot)
    }

    fn commit(&mut self, epoch: Epoch) -> Result<()> {
        // The checkpoint that no longer names these is complete now.
        for path in self.forgotten.drain(..) {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    return Err(Error::io("cannot remove", &path, e));
                }
            }
        }
        let due: Vec<Epoch> = self.pending.range(..=epoch).map(|(e, _)| *e).collect();
        for e in due {
            let Some(pending) = self.pending.remove(&e) else {
                continue;
            };
            let file = match &pending.rows {
                Rows::Spilled(path) => Some(path.clone()),
                Rows::Held(_) => None,
            };
            self.deliver(e, pending)?;
            self.delivered.push((e, file));
        }
        Ok(())
    }
}
