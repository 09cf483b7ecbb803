//! The `type = "nats"` source: one NATS JetStream stream, read in order, JSON values decoded
//! by the same rules as the `json` file source.
//!
//! Weir keeps its own position: the stream sequence read through is the source's checkpoint
//! state, and a restart creates a new ordered consumer just after it. No durable consumer
//! and no acknowledgements are needed, so a crash can neither lose messages nor read one
//! twice into committed output. An epoch admits a range of sequences that exist when it
//! starts (at most `max_messages_per_trigger` of them); it has been read when a message past
//! the range arrives, or when the server says no message matching the subject is left.
//!
//! The client is async (`async-nats`) and the source is not: the source owns a small tokio
//! runtime on a thread of its own, and a task there pulls messages into a bounded queue the
//! source reads from. The queue's credits hold the task back when the pipeline is slower
//! than the stream.

use std::collections::VecDeque;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, sync_channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_nats::jetstream::consumer::{pull, DeliverPolicy};
use async_nats::jetstream::{self, stream};
use futures::{FutureExt, StreamExt};
use serde::Deserialize;
use tokio::sync::Semaphore;
use weir_core::{
    duration_key, ConfigError, Error, Quota, Result, Source, StageSnapshot, StateEntries,
};

use crate::config::{CsvSourceConfig, CsvSourceSettings, Format};
use crate::decode::{bad_records_batch, BadRecord, FileDecoder};

/// The `type = "nats"` source as written in the pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceConfig {
    /// The server to connect to, or several, comma-separated. Default
    /// `"nats://127.0.0.1:4222"`.
    #[serde(default = "default_servers")]
    pub servers: String,
    /// The JetStream stream to read. It must exist.
    pub stream: String,
    /// Only messages whose subject matches this (wildcards allowed). Default: every
    /// message of the stream.
    #[serde(default)]
    pub subject: Option<String>,
    /// Where a pipeline with no checkpoint yet starts: `"earliest"` (default), `"latest"`
    /// (only messages published after the start), or a stream sequence number. A
    /// checkpoint's position always wins.
    #[serde(default)]
    pub starting_sequence: Option<String>,
    /// At most this many stream sequences per epoch (Spark's `maxOffsetsPerTrigger`). Default:
    /// no limit.
    #[serde(default)]
    pub max_messages_per_trigger: Option<u64>,
    /// Stop with an error when messages the checkpoint has not read were removed from the
    /// stream (by its limits) before a restart read them, as Spark's `failOnDataLoss`.
    /// Default `true`; `false` logs the gap and goes on.
    #[serde(default = "default_true")]
    pub fail_on_data_loss: bool,
    /// How a message's value is written. Only `"json"` (one JSON object per message), the
    /// default.
    #[serde(default)]
    pub format: Option<String>,
    /// The value's columns, as a Spark DDL string.
    pub schema: String,
    /// What a malformed message does, as for the file sources: `"permissive"` (default),
    /// `"dropmalformed"` or `"failfast"`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Permissive mode only: a STRING column holding the value of every malformed message.
    #[serde(default)]
    pub corrupt_record_column: Option<String>,
    /// A folder where every malformed message is written (the stream in `path`, the
    /// sequence in `line`, the reason, the value), committed with the epoch.
    #[serde(default)]
    pub bad_records_path: Option<String>,
    /// How TIMESTAMP values written as strings are read (Spark's `timestampFormat`).
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// How DATE values are read (Spark's `dateFormat`).
    #[serde(default)]
    pub date_format: Option<String>,
    /// The zone of timestamps written without an offset. Default UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Messages per Arrow batch. Default 32768.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long connecting, or a request to the server, may take. Default `"5s"`.
    #[serde(default)]
    pub connect_timeout: Option<String>,
    /// How long reading may wait for messages the stream holds (the server gone away, say)
    /// before the run stops with an error. A restart resumes at the last checkpoint.
    /// Default `"60s"`.
    #[serde(default)]
    pub read_timeout: Option<String>,
}

fn default_servers() -> String {
    "nats://127.0.0.1:4222".into()
}

fn default_true() -> bool {
    true
}

fn default_batch_size() -> usize {
    32768
}

/// Where a stream is first read from, before any checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingSequence {
    /// The oldest message the stream holds.
    Earliest,
    /// The first message published after the source starts.
    Latest,
    /// This stream sequence.
    At(u64),
}

/// A validated [`NatsSourceConfig`].
#[derive(Debug, Clone)]
pub struct NatsSourceSettings {
    /// The servers, as given.
    pub servers: String,
    /// The stream read.
    pub stream: String,
    /// The subject filter, if any.
    pub subject: Option<String>,
    starting: StartingSequence,
    max_per_trigger: Option<u64>,
    fail_on_data_loss: bool,
    connect_timeout: Duration,
    read_timeout: Duration,
    /// How values are decoded: the `json` file source's settings.
    decode: CsvSourceSettings,
}

impl NatsSourceConfig {
    /// Checks every key, and returns every problem found.
    pub fn validate(&self) -> Result<NatsSourceSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.stream.trim().is_empty() {
            errors.push(ConfigError::new("stream", "must name a JetStream stream"));
        }
        if self.servers.trim().is_empty() {
            errors.push(ConfigError::new(
                "servers",
                "must name a server, such as \"nats://127.0.0.1:4222\"",
            ));
        }
        match self.format.as_deref() {
            None | Some("json") => {}
            Some(other) => errors.push(ConfigError::new(
                "format",
                format!("\"{other}\" is not a format this source reads (expected \"json\")"),
            )),
        }
        let starting = match self.starting_sequence.as_deref().map(str::trim) {
            None | Some("earliest") => StartingSequence::Earliest,
            Some("latest") => StartingSequence::Latest,
            Some(n) => match n.parse::<u64>() {
                Ok(n) if n > 0 => StartingSequence::At(n),
                _ => {
                    errors.push(ConfigError::new(
                        "starting_sequence",
                        format!("\"{n}\": expected \"earliest\", \"latest\" or a sequence number from 1"),
                    ));
                    StartingSequence::Earliest
                }
            },
        };
        if self.max_messages_per_trigger == Some(0) {
            errors.push(ConfigError::new(
                "max_messages_per_trigger",
                "must be at least 1",
            ));
        }
        let connect_timeout = duration_key(
            "connect_timeout",
            self.connect_timeout.as_deref(),
            Duration::from_secs(5),
            &mut errors,
        );
        let read_timeout = duration_key(
            "read_timeout",
            self.read_timeout.as_deref(),
            Duration::from_secs(60),
            &mut errors,
        );
        let values = CsvSourceConfig {
            format: Format::Json,
            path: format!("nats:{}", self.stream),
            schema: self.schema.clone(),
            mode: self.mode.clone(),
            corrupt_record_column: self.corrupt_record_column.clone(),
            bad_records_path: self.bad_records_path.clone(),
            timestamp_format: self.timestamp_format.clone(),
            date_format: self.date_format.clone(),
            time_zone: self.time_zone.clone(),
            batch_size: self.batch_size,
            ..CsvSourceConfig::default()
        };
        let decode = values.validate().map_err(|e| errors.extend(e)).ok();
        match decode {
            Some(decode) if errors.is_empty() => Ok(NatsSourceSettings {
                servers: self.servers.trim().to_string(),
                stream: self.stream.trim().to_string(),
                subject: self.subject.clone().filter(|s| !s.trim().is_empty()),
                starting,
                max_per_trigger: self.max_messages_per_trigger,
                fail_on_data_loss: self.fail_on_data_loss,
                connect_timeout,
                read_timeout,
                decode,
            }),
            _ => Err(errors),
        }
    }
}

/// A tokio runtime on a thread of its own, for the async NATS client, and a way to wait for
/// its futures from synchronous code (a stage's actor thread, which is inside actix's own
/// runtime and so may not `block_on`).
pub struct NatsRuntime {
    runtime: Option<tokio::runtime::Runtime>,
}

impl NatsRuntime {
    /// Starts the runtime's thread.
    pub fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("weir-nats")
            .enable_all()
            .build()
            .map_err(|e| Error::Stopped(format!("cannot start the NATS client's runtime: {e}")))?;
        Ok(NatsRuntime {
            runtime: Some(runtime),
        })
    }

    /// Runs `future` on the runtime and waits for it, at most `timeout`; `what` says what it
    /// was doing in the error.
    pub fn call<T: Send + 'static>(
        &self,
        what: &str,
        timeout: Duration,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = sync_channel(1);
        self.spawn(async move {
            let _ = tx.send(future.await);
        });
        rx.recv_timeout(timeout).map_err(|_| {
            Error::Stopped(format!(
                "{what}: no answer within {} (is the server up?)",
                humantime::format_duration(timeout)
            ))
        })
    }

    /// Runs `future` on the runtime, without waiting for it.
    pub fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        if let Some(runtime) = &self.runtime {
            runtime.spawn(future);
        }
    }
}

impl Drop for NatsRuntime {
    fn drop(&mut self) {
        // The source is dropped on an actor's thread, where waiting for the runtime's tasks
        // is not allowed; they hold nothing that needs a clean end.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Connects to `servers` (comma-separated), failing within `timeout` with a message that
/// names them.
pub fn connect(
    runtime: &NatsRuntime,
    servers: &str,
    timeout: Duration,
) -> Result<async_nats::Client> {
    let addresses: Vec<String> = servers.split(',').map(|s| s.trim().to_string()).collect();
    let name = servers.to_string();
    let connected = runtime.call(
        &format!("cannot connect to NATS at {servers}"),
        timeout + Duration::from_secs(1),
        async move {
            let options = async_nats::ConnectOptions::new()
                .name("weir")
                .connection_timeout(timeout)
                .request_timeout(Some(timeout))
                .event_callback(move |event| {
                    let name = name.clone();
                    async move {
                        match event {
                            async_nats::Event::Disconnected => {
                                tracing::warn!("NATS at {name}: disconnected; reconnecting")
                            }
                            async_nats::Event::Connected => {
                                tracing::info!("NATS at {name}: connected")
                            }
                            other => tracing::debug!("NATS at {name}: {other}"),
                        }
                    }
                });
            options.connect(addresses).await
        },
    )?;
    connected.map_err(|e| Error::Stopped(format!("cannot connect to NATS at {servers}: {e}")))
}

impl NatsSourceSettings {
    /// The schema of the batches the source emits: the value's columns, and the
    /// corrupt-record column if there is one.
    pub fn schema(&self) -> SchemaRef {
        self.decode.schema.clone()
    }

    /// Where malformed messages are written, if anywhere.
    pub fn bad_records_path(&self) -> Option<PathBuf> {
        self.decode.bad_records_path.clone()
    }

    /// The running source, connected, its stream found.
    pub fn build(&self) -> Result<NatsSource> {
        let runtime = NatsRuntime::new()?;
        let client = connect(&runtime, &self.servers, self.connect_timeout)?;
        let source = NatsSource {
            settings: self.clone(),
            origin: format!("nats stream {}", self.stream),
            jetstream: jetstream::new(client),
            runtime,
            queue: None,
            read_through: None,
            known: 0,
            admitted: 0,
            peeked: None,
            last_wait_note: None,
            info_failing_since: None,
            malformed: 0,
            malformed_total: 0,
            bad: Vec::new(),
        };
        source.stream_info()?;
        Ok(source)
    }
}

/// One message, as the pulling task hands it over.
struct Message {
    sequence: u64,
    payload: bytes::Bytes,
}

/// The queue from the pulling task, and the credits that bound it.
struct Queue {
    messages: Receiver<Vec<Message>>,
    /// The rest of the last chunk received.
    inbox: VecDeque<Message>,
    credits: Arc<Semaphore>,
    /// The current consumer's name, to ask the server about it.
    consumer: Arc<Mutex<String>>,
    /// The consumer sequence of the last message the task received and put in the queue.
    delivered: Arc<AtomicU64>,
}

/// Messages the pulling task may have handed over and the source not yet read: enough to
/// fill a batch while the next is on its way, bounded so that memory does not follow the
/// stream's size.
const QUEUED: usize = 64 * 1024;

/// At most this many messages go over to the source at once.
const CHUNK: usize = 1024;

/// Reads one JetStream stream in order; see the module's documentation.
pub struct NatsSource {
    settings: NatsSourceSettings,
    /// `nats stream NAME`, for messages and bad records.
    origin: String,
    jetstream: jetstream::Context,
    runtime: NatsRuntime,
    /// `None` until the first discovery creates the consumer.
    queue: Option<Queue>,
    /// Every message up to this sequence has been read into an epoch (or does not match the
    /// subject); `None` before a checkpoint or the starting position says where to begin.
    read_through: Option<u64>,
    /// The stream's last sequence when it was last looked at.
    known: u64,
    /// The epoch being read takes the messages up to this sequence.
    admitted: u64,
    /// A message past the admitted range, kept for the next epoch.
    peeked: Option<Message>,
    /// When a wait for messages was last logged.
    last_wait_note: Option<Instant>,
    /// Since when the stream's state could not be read, while running.
    info_failing_since: Option<Instant>,
    malformed: u64,
    malformed_total: u64,
    bad: Vec<BadRecord>,
}

/// State keys: the sequence read through (8 bytes, big-endian), and malformed messages, ever.
const READ_THROUGH: &[u8] = b"s";
const MALFORMED: &[u8] = b"m";

/// What the source needs of a stream's state.
struct StreamState {
    first: u64,
    last: u64,
}

impl NatsSource {
    fn stream_info(&self) -> Result<StreamState> {
        let (jetstream, name) = (self.jetstream.clone(), self.settings.stream.clone());
        let what = format!("{}: cannot read the stream's state", self.origin);
        let info = self
            .runtime
            .call(&what, self.settings.connect_timeout * 2, async move {
                let mut stream = jetstream.get_stream(&name).await?;
                let info = stream.info().await?;
                Ok::<_, async_nats::Error>(StreamState {
                    first: info.state.first_sequence,
                    last: info.state.last_sequence,
                })
            })?;
        info.map_err(|e| {
            let e = e.to_string();
            let hint = match e.contains("not found") {
                true => " (create it first, for example with `nats stream add`)",
                false => "",
            };
            Error::Stopped(format!("{}: {e}{hint}", self.origin))
        })
    }

    /// Creates the ordered consumer that reads from just after `read_through`, and the task
    /// that pulls its messages into the queue.
    fn open(&mut self, read_through: u64) -> Result<()> {
        let opener = Opener {
            jetstream: self.jetstream.clone(),
            stream: self.settings.stream.clone(),
            subject: self.settings.subject.clone().unwrap_or_default(),
            name: Arc::new(Mutex::new(String::new())),
        };
        let what = format!("{}: cannot create a consumer", self.origin);
        let first = opener.clone();
        let created = self
            .runtime
            .call(&what, self.settings.connect_timeout * 2, async move {
                first.open(read_through).await
            })?;
        let messages = created.map_err(|e| Error::Stopped(format!("{what}: {e}")))?;
        let (tx, rx) = channel();
        let credits = Arc::new(Semaphore::new(QUEUED));
        let delivered = Arc::new(AtomicU64::new(0));
        self.runtime.spawn(pull_messages(
            messages,
            opener.clone(),
            Pulled {
                queue: tx,
                credits: credits.clone(),
                delivered: delivered.clone(),
                read_through,
            },
            self.origin.clone(),
        ));
        self.queue = Some(Queue {
            messages: rx,
            inbox: VecDeque::new(),
            credits,
            consumer: opener.name,
            delivered,
        });
        Ok(())
    }

    /// The next message from the queue, waiting up to `wait`.
    fn receive(&mut self, wait: Duration) -> Result<Option<Message>> {
        let Some(queue) = &mut self.queue else {
            return Ok(None);
        };
        if let Some(message) = queue.inbox.pop_front() {
            return Ok(Some(message));
        }
        let chunk = match wait.is_zero() {
            true => queue.messages.try_recv().ok(),
            false => match queue.messages.recv_timeout(wait) {
                Ok(chunk) => Some(chunk),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(Error::Stopped(format!(
                        "{}: the consumer stopped",
                        self.origin
                    )))
                }
            },
        };
        let Some(chunk) = chunk else {
            return Ok(None);
        };
        queue.credits.add_permits(chunk.len());
        queue.inbox.extend(chunk);
        Ok(queue.inbox.pop_front())
    }

    /// Whether the server has nothing more for the consumer (no message matching its subject
    /// that it has not delivered) and everything it delivered is in the queue.
    fn drained(&mut self) -> Result<bool> {
        let Some(queue) = &self.queue else {
            return Ok(true);
        };
        let name = match queue.consumer.lock() {
            Ok(name) => name.clone(),
            Err(_) => return Ok(false),
        };
        let (jetstream, stream) = (self.jetstream.clone(), self.settings.stream.clone());
        let what = format!("{}: cannot read the consumer's state", self.origin);
        let info = self
            .runtime
            .call(&what, self.settings.connect_timeout * 2, async move {
                let stream = jetstream.get_stream(&stream).await?;
                let info = stream.consumer_info(&name).await?;
                Ok::<_, async_nats::Error>((info.num_pending, info.delivered.consumer_sequence))
            })?;
        match info {
            // The consumer being recreated (after a reconnection) is not an answer yet.
            Err(e) => {
                tracing::debug!("{what}: {e}");
                Ok(false)
            }
            // Counted in the consumer's own sequence: the stream sequence it reports delivered
            // runs on past the last message it found matching its subject.
            Ok((pending, delivered)) => {
                Ok(pending == 0 && delivered <= queue.delivered.load(Ordering::Acquire))
            }
        }
    }

    /// Messages of the admitted range, up to a batch: those already here, or, if none are,
    /// the next to arrive. Empty once the range has been read.
    fn take_messages(&mut self) -> Result<Vec<Message>> {
        let max = self.settings.decode.batch_size;
        let mut taken = Vec::new();
        let started = Instant::now();
        let mut asked = false;
        while taken.len() < max {
            if self.read_through.unwrap_or(0) >= self.admitted {
                break;
            }
            let message = match self.peeked.take() {
                Some(message) => message,
                None => {
                    let wait = match taken.is_empty() {
                        true => Duration::from_millis(20),
                        false => Duration::ZERO,
                    };
                    match self.receive(wait)? {
                        Some(message) => message,
                        None if !taken.is_empty() => break,
                        // Nothing here: either nothing matching is left in the range (a
                        // subject filter skips sequences), or it is on its way.
                        None if !asked && self.drained()? => {
                            asked = true;
                            // One more short wait: a consumer recreated after a reconnection
                            // counts its deliveries afresh, and its first may be on the way.
                            match self.receive(Duration::from_millis(50))? {
                                Some(message) => message,
                                None => {
                                    self.read_through = Some(self.admitted);
                                    break;
                                }
                            }
                        }
                        None => {
                            asked = false;
                            self.note_wait(started)?;
                            continue;
                        }
                    }
                }
            };
            if message.sequence > self.admitted {
                // Past the range: nothing matching is left in it.
                self.peeked = Some(message);
                self.read_through = Some(self.admitted);
                break;
            }
            // Never backwards: a message that comes late is still read, but what the
            // checkpoint says was read stays read.
            self.read_through = Some(self.read_through.unwrap_or(0).max(message.sequence));
            taken.push(message);
        }
        Ok(taken)
    }

    /// A wait for messages the stream holds goes on: log it now and then, and give up after
    /// `read_timeout`.
    fn note_wait(&mut self, started: Instant) -> Result<()> {
        let waited = started.elapsed();
        if waited >= self.settings.read_timeout {
            return Err(Error::Stopped(format!(
                "{}: no message for {} while the stream holds more up to sequence {} (read_timeout); the next run resumes at the last checkpoint",
                self.origin,
                humantime::format_duration(Duration::from_secs(waited.as_secs())),
                self.admitted
            )));
        }
        let due = match self.last_wait_note {
            None => waited >= Duration::from_secs(5),
            Some(t) => t.elapsed() >= Duration::from_secs(5),
        };
        if due {
            self.last_wait_note = Some(Instant::now());
            tracing::warn!(
                "{}: waiting for messages up to sequence {} (none received for {}s)",
                self.origin,
                self.admitted,
                waited.as_secs()
            );
        }
        Ok(())
    }

    /// Decodes `messages`' values into a batch, by the `json` source's rules.
    fn decode(&mut self, messages: Vec<Message>) -> Result<Option<RecordBatch>> {
        let mut bytes = Vec::with_capacity(messages.iter().map(|m| m.payload.len() + 1).sum());
        let mut sequences = Vec::with_capacity(messages.len());
        for message in &messages {
            match message.payload.is_empty() {
                // An empty value is malformed, rather than a blank line passed over.
                true => bytes.extend_from_slice(b"\"\""),
                // A line break in a JSON value can only be whitespace between tokens.
                false => bytes.extend(message.payload.iter().map(|&b| match b {
                    b'\n' | b'\r' => b' ',
                    b => b,
                })),
            }
            bytes.push(b'\n');
            sequences.push(message.sequence);
        }
        let mut decoder = FileDecoder::messages(
            &self.origin,
            bytes,
            sequences,
            "sequence",
            self.settings.decode.clone(),
        )
        .map_err(|e| Error::Stopped(format!("{}: {e}", self.origin)))?;
        let mut batches = Vec::new();
        while let Some(decoded) = decoder.next()? {
            self.malformed += decoded.bad.len() as u64;
            self.malformed_total += decoded.bad.len() as u64;
            if self.settings.decode.bad_records_path.is_some() {
                self.bad.extend(decoded.bad);
            }
            batches.extend(decoded.batch);
        }
        match batches.len() {
            0 => Ok(None),
            1 => Ok(batches.pop()),
            _ => arrow_select::concat::concat_batches(&self.settings.decode.schema, &batches)
                .map(Some)
                .map_err(|e| Error::arrow(self.origin.clone(), e)),
        }
    }
}

/// The pulling task's end of the queue.
struct Pulled {
    queue: Sender<Vec<Message>>,
    credits: Arc<Semaphore>,
    /// The consumer sequence of the last message handed over (or passed over).
    delivered: Arc<AtomicU64>,
    /// Messages up to this stream sequence are not handed over.
    read_through: u64,
}

/// Creates ordered consumers on the stream, each under a new name (kept where the source
/// can ask about it).
#[derive(Clone)]
struct Opener {
    jetstream: jetstream::Context,
    stream: String,
    subject: String,
    name: Arc<Mutex<String>>,
}

impl Opener {
    /// A new consumer's messages, from just after `read_through`.
    async fn open(&self, read_through: u64) -> Result<pull::Ordered, async_nats::Error> {
        let name = format!(
            "weir-{}-{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let config = pull::OrderedConfig {
            name: Some(name.clone()),
            filter_subject: self.subject.clone(),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: read_through + 1,
            },
            ..Default::default()
        };
        let stream: stream::Stream = self.jetstream.get_stream(&self.stream).await?;
        let messages = stream.create_consumer(config).await?.messages().await?;
        if let Ok(mut current) = self.name.lock() {
            *current = name;
        }
        Ok(messages)
    }
}

/// Pulls the consumer's messages into the queue until the source goes away. The ordered
/// consumer recreates itself after missed heartbeats; any other failure (a server that
/// came back without the consumer, say) ends it, and a new one is created here from the
/// last message handed over, until the server takes it. A message that comes again (a
/// consumer recreated before its first message starts over from the stream's start) is
/// passed over.
async fn pull_messages(mut messages: pull::Ordered, opener: Opener, to: Pulled, origin: String) {
    let mut last = to.read_through;
    loop {
        let why = loop {
            // The messages already here go over in one chunk: one send and one wake-up of
            // the source for many messages, rather than one for each.
            let mut chunk = Vec::new();
            let mut delivered = None;
            let mut first = true;
            let broken = loop {
                let next = match std::mem::take(&mut first) {
                    true => Some(messages.next().await),
                    false => messages.next().now_or_never(),
                };
                let message = match next {
                    None => break None,
                    Some(Some(Ok(message))) => message,
                    Some(Some(Err(e))) => break Some(e.to_string()),
                    Some(None) => break Some("the consumer's messages ended".to_string()),
                };
                let (sequence, consumer_sequence) = match message.info() {
                    Ok(info) => (info.stream_sequence, info.consumer_sequence),
                    Err(e) => break Some(format!("a message without its sequence: {e}")),
                };
                delivered = Some(consumer_sequence);
                if sequence <= last {
                    continue;
                }
                last = sequence;
                chunk.push(Message {
                    sequence,
                    payload: message.message.payload,
                });
                if chunk.len() == CHUNK {
                    break None;
                }
            };
            if !chunk.is_empty() {
                let Ok(credits) = to.credits.acquire_many(chunk.len() as u32).await else {
                    return;
                };
                credits.forget();
                if to.queue.send(chunk).is_err() {
                    return;
                }
            }
            // After the send: a source that reads `delivered` finds every message up to it
            // queued.
            if let Some(delivered) = delivered {
                to.delivered.store(delivered, Ordering::Release);
            }
            if let Some(why) = broken {
                break why;
            }
        };
        tracing::warn!("{origin}: {why}; reading again from sequence {}", last + 1);
        let mut attempt = 0u64;
        messages = loop {
            to.delivered.store(0, Ordering::Release);
            match opener.open(last).await {
                Ok(messages) => break messages,
                Err(e) => {
                    attempt += 1;
                    if attempt % 10 == 1 {
                        tracing::warn!("{origin}: cannot create a consumer yet: {e}; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(200 * attempt.min(10))).await;
                }
            }
        };
        tracing::info!("{origin}: reading again from sequence {}", last + 1);
    }
}

impl Source for NatsSource {
    fn schema(&self) -> SchemaRef {
        self.settings.schema()
    }

    fn discover(&mut self) -> Result<()> {
        let state = match self.stream_info() {
            Ok(state) => {
                self.info_failing_since = None;
                state
            }
            // While running, a request can time out as the client reconnects to a server
            // that went away: the epoch goes on with what is known, and only a failure
            // that lasts read_timeout stops the run.
            Err(e) if self.queue.is_some() => {
                let since = *self.info_failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.settings.read_timeout {
                    return Err(e);
                }
                tracing::warn!("{e}; trying again at the next epoch (read_timeout)");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if self.queue.is_none() {
            let start = match (self.read_through, self.settings.starting) {
                (Some(read), _) => {
                    let lost = state.first.saturating_sub(1).saturating_sub(read);
                    if lost > 0 && state.last > 0 {
                        let gap = format!(
                            "{}: sequences {} to {} were removed from the stream before they were read",
                            self.origin,
                            read + 1,
                            state.first - 1
                        );
                        if self.settings.fail_on_data_loss {
                            return Err(Error::Input(format!(
                                "{gap} (fail_on_data_loss = false reads on from {})",
                                state.first
                            )));
                        }
                        tracing::warn!("{gap}; reading on (fail_on_data_loss = false)");
                    }
                    read.max(state.first.saturating_sub(1))
                }
                (None, StartingSequence::Earliest) => state.first.saturating_sub(1),
                (None, StartingSequence::Latest) => state.last,
                (None, StartingSequence::At(n)) => n - 1,
            };
            self.read_through = Some(start);
            self.admitted = start;
            self.open(start)?;
        }
        self.known = self.known.max(state.last);
        Ok(())
    }

    fn admit(&mut self, quota: Quota) -> usize {
        let limit = self.settings.max_per_trigger.map(|n| n as usize);
        let allowed = quota.allows(limit) as u64;
        let admitted = self.backlog().min(allowed as usize) as u64;
        self.admitted += admitted;
        admitted as usize
    }

    fn backlog(&self) -> usize {
        let from = self.admitted.max(self.read_through.unwrap_or(0));
        usize::try_from(self.known.saturating_sub(from)).unwrap_or(usize::MAX)
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            let messages = self.take_messages()?;
            if messages.is_empty() {
                return Ok(None);
            }
            let batch = self.decode(messages)?;
            // A batch whose every message was dropped still moved the position: go on.
            if batch.is_some() || !self.bad.is_empty() {
                return Ok(batch.or_else(|| Some(RecordBatch::new_empty(self.schema()))));
            }
        }
    }

    fn snapshot(&mut self) -> Result<StageSnapshot> {
        let mut snapshot = StageSnapshot::default();
        if let Some(read) = self.read_through {
            snapshot
                .delta
                .put(READ_THROUGH.to_vec(), read.to_be_bytes().to_vec());
        }
        snapshot.delta.put(
            MALFORMED.to_vec(),
            self.malformed_total.to_be_bytes().to_vec(),
        );
        snapshot.state_keys = 2;
        snapshot.detail = match self.read_through {
            Some(read) => format!("{} read through sequence {read}", self.origin),
            None => format!("{}: nothing read yet", self.origin),
        };
        Ok(snapshot)
    }

    fn restore(&mut self, state: StateEntries) -> Result<()> {
        for (key, value) in state {
            let number = <[u8; 8]>::try_from(value.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    Error::checkpoint(
                        weir_core::CheckpointFailure::Damaged,
                        format!("{}: a damaged position in the checkpoint", self.origin),
                    )
                })?;
            match key.as_slice() {
                READ_THROUGH => self.read_through = Some(number),
                MALFORMED => self.malformed_total = number,
                _ => {}
            }
        }
        Ok(())
    }

    fn take_malformed_rows(&mut self) -> u64 {
        std::mem::take(&mut self.malformed)
    }

    fn take_bad_records(&mut self) -> Result<Option<RecordBatch>> {
        if self.bad.is_empty() {
            return Ok(None);
        }
        let bad = std::mem::take(&mut self.bad);
        let origin = self.origin.as_str();
        bad_records_batch(bad.iter().map(|b| (origin, b))).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NatsSourceConfig {
        NatsSourceConfig {
            servers: default_servers(),
            stream: "SALES".into(),
            subject: None,
            starting_sequence: None,
            max_messages_per_trigger: None,
            fail_on_data_loss: true,
            format: None,
            schema: "Shop STRING, Sale_Count INT".into(),
            mode: None,
            corrupt_record_column: None,
            bad_records_path: None,
            timestamp_format: None,
            date_format: None,
            time_zone: None,
            batch_size: default_batch_size(),
            connect_timeout: None,
            read_timeout: None,
        }
    }

    fn errors(config: NatsSourceConfig) -> Vec<String> {
        match config.validate() {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn the_starting_sequence_is_earliest_latest_or_a_number_from_one() {
        for (given, expected) in [
            (None, StartingSequence::Earliest),
            (Some("latest"), StartingSequence::Latest),
            (Some("42"), StartingSequence::At(42)),
        ] {
            let settings = NatsSourceConfig {
                starting_sequence: given.map(String::from),
                ..config()
            }
            .validate()
            .unwrap();
            assert_eq!(settings.starting, expected);
        }
        for bad in ["0", "-3", "first"] {
            let found = errors(NatsSourceConfig {
                starting_sequence: Some(bad.into()),
                ..config()
            });
            assert_eq!(
                found,
                [format!("starting_sequence: \"{bad}\": expected \"earliest\", \"latest\" or a sequence number from 1")]
            );
        }
    }

    #[test]
    fn every_bad_key_is_named_at_once_value_keys_included() {
        let found = errors(NatsSourceConfig {
            stream: " ".into(),
            format: Some("avro".into()),
            max_messages_per_trigger: Some(0),
            read_timeout: Some("soon".into()),
            schema: "Shop STRNG".into(),
            mode: Some("lenient".into()),
            ..config()
        });
        let keys: Vec<&str> = found.iter().map(|e| e.split(':').next().unwrap()).collect();
        assert_eq!(
            keys,
            [
                "stream",
                "format",
                "max_messages_per_trigger",
                "read_timeout",
                "schema",
                "mode"
            ],
            "{found:?}"
        );
    }

    #[test]
    fn the_schema_and_the_corrupt_record_column_are_the_json_sources() {
        let settings = NatsSourceConfig {
            corrupt_record_column: Some("_corrupt".into()),
            bad_records_path: Some("bad".into()),
            ..config()
        }
        .validate()
        .unwrap();
        let schema = settings.schema();
        let names: Vec<&str> = (schema.fields().iter())
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["Shop", "Sale_Count", "_corrupt"]);
        assert_eq!(settings.bad_records_path(), Some(PathBuf::from("bad")));
    }
}
