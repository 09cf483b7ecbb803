//! The `type = "kafka"` source: the partitions of one or more Kafka topics, their values
//! decoded as JSON, CSV or left as bytes, with Spark's Kafka columns when asked for.
//!
//! Weir assigns the partitions itself (no consumer group, no offset commits) and keeps each
//! partition's next offset in its checkpoint, so a restart reads on from exactly where the
//! last checkpoint left off: a crash can neither lose a message nor read one twice into
//! committed output. An epoch admits, per partition, the offsets up to the high watermark
//! when it starts (at most `max_offsets_per_trigger` in all, shared by lag, as in Spark). A
//! partition's range has been read when the client's position reaches its end (a message
//! at or past the end arrives, or transaction markers move the position there). Under
//! `read_committed` (librdkafka's default) the high watermark asked for is the last stable
//! offset, so a range never waits on a transaction still open.
//!
//! Every partition has its own queue in the client (librdkafka), so that a partition whose
//! range is read can wait while the others go on, its prefetched messages left for the next
//! epoch; the client bounds how much it prefetches.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::builder::{BinaryBuilder, Int32Builder, Int64Builder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, Consumer, DefaultConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};
use serde::Deserialize;
use weir_core::{
    duration_key, CheckpointFailure, ConfigError, Error, Quota, Result, Source, StageSnapshot,
    StateEntries,
};

use crate::config::{CsvSourceConfig, CsvSourceSettings, Format};
use crate::decode::{bad_records_batch, BadRecord, FileDecoder};

/// The `type = "kafka"` source as written in the pipeline file. Names follow Spark's Kafka
/// source options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// The brokers to bootstrap from, comma-separated `host:port` (Spark's
    /// `kafka.bootstrap.servers`).
    pub bootstrap_servers: String,
    /// The topics to read, comma-separated. One of `subscribe` and `subscribe_pattern`.
    #[serde(default)]
    pub subscribe: Option<String>,
    /// A regular expression: every topic whose whole name matches it is read, topics
    /// created while the pipeline runs included.
    #[serde(default)]
    pub subscribe_pattern: Option<String>,
    /// Where a pipeline with no checkpoint yet starts: `"earliest"`, `"latest"` (default, as
    /// in Spark), or per partition as Spark's JSON, `{"orders": {"0": 23, "1": -2}}`, where
    /// -2 is earliest and -1 latest (partitions left out start at latest). Partitions that
    /// appear while the pipeline runs start at earliest. A checkpoint's offsets always win.
    #[serde(default)]
    pub starting_offsets: Option<String>,
    /// At most this many offsets per epoch, over all partitions, shared in proportion to
    /// each partition's lag. Default: no limit.
    #[serde(default)]
    pub max_offsets_per_trigger: Option<u64>,
    /// Stop with an error when offsets the checkpoint has not read were deleted (by
    /// retention) before a restart read them, as Spark's `failOnDataLoss`. Default `true`;
    /// `false` logs the gap and reads on from the oldest offset kept.
    #[serde(default = "default_true")]
    pub fail_on_data_loss: bool,
    /// How a message's value is written: `"json"` (default; one object per message),
    /// `"csv"` (one record per message) or `"raw"` (the bytes, in a BINARY column `value`).
    #[serde(default)]
    pub format: Option<String>,
    /// json and csv: the value's columns, as a Spark DDL string.
    #[serde(default)]
    pub schema: Option<String>,
    /// Spark's Kafka columns to add after the value's: any of `"key"` (BINARY), `"topic"`
    /// (STRING), `"partition"` (INT), `"offset"` (BIGINT) and `"timestamp"` (TIMESTAMP).
    #[serde(default)]
    pub metadata_columns: Vec<String>,
    /// csv only: field separator, one character. Default `","`.
    #[serde(default)]
    pub sep: Option<String>,
    /// What a malformed value does, as for the file sources: `"permissive"` (default),
    /// `"dropmalformed"` or `"failfast"`.
    #[serde(default)]
    pub mode: Option<String>,
    /// Permissive mode only: a STRING column holding the value of every malformed message.
    #[serde(default)]
    pub corrupt_record_column: Option<String>,
    /// A folder where every malformed message is written (`kafka topic T partition P` in
    /// `path`, the offset in `line`, the reason, the value), committed with the epoch.
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
    /// Messages per Arrow batch, at most. Default 32768.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How long a request for the topics' metadata or offsets may take. Default `"10s"`.
    #[serde(default)]
    pub connect_timeout: Option<String>,
    /// How long reading may wait for messages an epoch admitted (the broker gone away, say)
    /// before the run stops with an error; the client reconnects meanwhile, and a restart
    /// resumes at the last checkpoint. Default `"60s"`.
    #[serde(default)]
    pub read_timeout: Option<String>,
    /// librdkafka properties passed on as they are (`"security.protocol"`,
    /// `"isolation.level"`, …), as Spark's `kafka.`-prefixed options.
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_true() -> bool {
    true
}

fn default_batch_size() -> usize {
    32768
}

/// Which topics a Kafka source reads.
#[derive(Debug, Clone)]
pub enum Topics {
    /// These topics, each of which must exist.
    Named(Vec<String>),
    /// Every topic whose whole name matches.
    Pattern(regex::Regex),
}

/// Where a partition is first read from, before any checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Starting {
    Earliest,
    Latest,
    /// Per topic and partition: an offset, or -2 (earliest) or -1 (latest).
    At(BTreeMap<String, BTreeMap<i32, i64>>),
}

/// How values are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ValueFormat {
    Json,
    Csv,
    Raw,
}

/// One of Spark's Kafka columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Meta {
    Key,
    Topic,
    Partition,
    Offset,
    Timestamp,
}

impl Meta {
    const ALL: [(&'static str, Meta); 5] = [
        ("key", Meta::Key),
        ("topic", Meta::Topic),
        ("partition", Meta::Partition),
        ("offset", Meta::Offset),
        ("timestamp", Meta::Timestamp),
    ];

    fn field(self) -> Field {
        match self {
            Meta::Key => Field::new("key", DataType::Binary, true),
            Meta::Topic => Field::new("topic", DataType::Utf8, false),
            Meta::Partition => Field::new("partition", DataType::Int32, false),
            Meta::Offset => Field::new("offset", DataType::Int64, false),
            Meta::Timestamp => Field::new(
                "timestamp",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        }
    }
}

/// A validated [`KafkaSourceConfig`].
#[derive(Debug, Clone)]
pub struct KafkaSourceSettings {
    /// The brokers, as given.
    pub bootstrap_servers: String,
    /// The topics read.
    pub topics: Topics,
    starting: Starting,
    max_per_trigger: Option<u64>,
    fail_on_data_loss: bool,
    format: ValueFormat,
    meta: Vec<Meta>,
    schema: SchemaRef,
    connect_timeout: Duration,
    read_timeout: Duration,
    properties: BTreeMap<String, String>,
    /// How values are decoded (json and csv): the file sources' settings.
    decode: CsvSourceSettings,
}

impl KafkaSourceConfig {
    /// Checks every key, and returns every problem found.
    pub fn validate(&self) -> Result<KafkaSourceSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.bootstrap_servers.trim().is_empty() {
            errors.push(ConfigError::new(
                "bootstrap_servers",
                "must name a broker, such as \"127.0.0.1:9092\"",
            ));
        }
        let named: Vec<String> = (self.subscribe.iter())
            .flat_map(|s| s.split(','))
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        let topics = match (&self.subscribe, &self.subscribe_pattern) {
            (Some(_), None) if !named.is_empty() => Some(Topics::Named(named)),
            (None, Some(pattern)) => match regex::Regex::new(&format!("^(?:{pattern})$")) {
                Ok(re) => Some(Topics::Pattern(re)),
                Err(e) => {
                    errors.push(ConfigError::new(
                        "subscribe_pattern",
                        format!("\"{pattern}\" is not a regular expression: {e}"),
                    ));
                    None
                }
            },
            (Some(_), Some(_)) => {
                errors.push(ConfigError::new(
                    "subscribe",
                    "give either subscribe or subscribe_pattern, not both",
                ));
                None
            }
            _ => {
                errors.push(ConfigError::new(
                    "subscribe",
                    "must name the topics to read (comma-separated), or give subscribe_pattern",
                ));
                None
            }
        };
        let starting = match self.starting_offsets.as_deref().map(str::trim) {
            None | Some("latest") => Starting::Latest,
            Some("earliest") => Starting::Earliest,
            Some(json) => {
                match serde_json::from_str::<BTreeMap<String, BTreeMap<String, i64>>>(json)
                    .map_err(|e| e.to_string())
                    .and_then(|map| {
                        map.into_iter()
                            .map(|(topic, parts)| {
                                let parts = parts
                                    .into_iter()
                                    .map(|(p, offset)| match (p.parse::<i32>(), offset) {
                                        (Ok(p), o) if p >= 0 && o >= -2 => Ok((p, o)),
                                        _ => Err(format!("partition \"{p}\": offset {offset}")),
                                    })
                                    .collect::<std::result::Result<_, String>>()?;
                                Ok((topic, parts))
                            })
                            .collect::<std::result::Result<_, String>>()
                    }) {
                    Ok(map) => Starting::At(map),
                    Err(e) => {
                        errors.push(ConfigError::new(
                        "starting_offsets",
                        format!("expected \"earliest\", \"latest\" or JSON such as {{\"orders\": {{\"0\": 23, \"1\": -2}}}} (an offset, -2 for earliest, -1 for latest): {e}"),
                    ));
                        Starting::Latest
                    }
                }
            }
        };
        if self.max_offsets_per_trigger == Some(0) {
            errors.push(ConfigError::new(
                "max_offsets_per_trigger",
                "must be at least 1",
            ));
        }
        let format = match self.format.as_deref() {
            None | Some("json") => ValueFormat::Json,
            Some("csv") => ValueFormat::Csv,
            Some("raw") => ValueFormat::Raw,
            Some(other) => {
                errors.push(ConfigError::new(
                    "format",
                    format!("\"{other}\" is not a format this source reads (expected \"json\", \"csv\" or \"raw\")"),
                ));
                ValueFormat::Json
            }
        };
        let mut meta = Vec::new();
        for name in &self.metadata_columns {
            match Meta::ALL.iter().find(|(n, _)| n == name) {
                Some((_, m)) if !meta.contains(m) => meta.push(*m),
                Some(_) => errors.push(ConfigError::new(
                    "metadata_columns",
                    format!("\"{name}\" is named twice"),
                )),
                None => errors.push(ConfigError::new(
                    "metadata_columns",
                    format!("\"{name}\" is not a Kafka column (expected \"key\", \"topic\", \"partition\", \"offset\" or \"timestamp\")"),
                )),
            }
        }
        let schema = match (format, self.schema.as_deref()) {
            (ValueFormat::Raw, Some(_)) => {
                errors.push(ConfigError::new(
                    "schema",
                    "format = \"raw\" has one column, `value` (BINARY): leave schema out",
                ));
                String::new()
            }
            (ValueFormat::Raw, None) => String::new(),
            (_, Some(schema)) => schema.to_string(),
            (_, None) => {
                errors.push(ConfigError::new(
                    "schema",
                    "must give the value's columns as a Spark DDL string, such as \"Shop STRING, Sale_Count INT\"",
                ));
                String::new()
            }
        };
        let connect_timeout = duration_key(
            "connect_timeout",
            self.connect_timeout.as_deref(),
            Duration::from_secs(10),
            &mut errors,
        );
        let read_timeout = duration_key(
            "read_timeout",
            self.read_timeout.as_deref(),
            Duration::from_secs(60),
            &mut errors,
        );
        // Raw values need no decoder; a one-column schema stands in so that the decoder's
        // settings (mode, bad records) are still checked once.
        let values = CsvSourceConfig {
            format: match format {
                ValueFormat::Csv => Format::Csv,
                _ => Format::Json,
            },
            path: "kafka".into(),
            schema: match format {
                ValueFormat::Raw => "value STRING".into(),
                _ => schema,
            },
            sep: self.sep.clone(),
            mode: self.mode.clone(),
            corrupt_record_column: self.corrupt_record_column.clone(),
            bad_records_path: self.bad_records_path.clone(),
            timestamp_format: self.timestamp_format.clone(),
            date_format: self.date_format.clone(),
            time_zone: self.time_zone.clone(),
            batch_size: self.batch_size,
            ..CsvSourceConfig::default()
        };
        if format == ValueFormat::Raw && self.corrupt_record_column.is_some() {
            errors.push(ConfigError::new(
                "corrupt_record_column",
                "format = \"raw\" has no malformed values",
            ));
        }
        let decode = values.validate().map_err(|e| errors.extend(e)).ok();
        let (Some(decode), Some(topics), true) = (decode, topics, errors.is_empty()) else {
            return Err(errors);
        };
        let mut fields: Vec<Field> = match format {
            ValueFormat::Raw => vec![Field::new("value", DataType::Binary, true)],
            _ => decode
                .schema
                .fields()
                .iter()
                .map(|f| f.as_ref().clone())
                .collect(),
        };
        for m in &meta {
            let field = m.field();
            if fields.iter().any(|f| f.name() == field.name()) {
                errors.push(ConfigError::new(
                    "metadata_columns",
                    format!(
                        "\"{}\" is also a column of the value: rename one",
                        field.name()
                    ),
                ));
            }
            fields.push(field);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(KafkaSourceSettings {
            bootstrap_servers: self.bootstrap_servers.trim().to_string(),
            topics,
            starting,
            max_per_trigger: self.max_offsets_per_trigger,
            fail_on_data_loss: self.fail_on_data_loss,
            format,
            meta,
            schema: Arc::new(Schema::new(fields)),
            connect_timeout,
            read_timeout,
            properties: self.properties.clone(),
            decode,
        })
    }
}

impl KafkaSourceSettings {
    /// The schema of the batches the source emits: the value's columns, the corrupt-record
    /// column if there is one, then the Kafka columns asked for.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Where malformed messages are written, if anywhere.
    pub fn bad_records_path(&self) -> Option<PathBuf> {
        self.decode.bad_records_path.clone()
    }

    /// What the topics are, for the pipeline's fingerprint and `weir graph`.
    pub fn describe(&self) -> String {
        match &self.topics {
            Topics::Named(topics) => format!("kafka topics {}", topics.join(",")),
            Topics::Pattern(re) => format!("kafka topics matching {}", re.as_str()),
        }
    }

    /// The running source, its client created (it connects on first use).
    pub fn build(&self) -> Result<KafkaSource> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            // Weir keeps the offsets: the group is only a name in the brokers' logs.
            .set("group.id", "weir")
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set("allow.auto.create.topics", "false")
            // The prefetch per partition: enough to keep reading while a batch decodes, and
            // a bound on memory whatever the lag.
            .set("queued.max.messages.kbytes", "16384")
            .set("client.id", "weir");
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        let create = |config: &ClientConfig| -> Result<BaseConsumer> {
            config.create().map_err(|e| {
                Error::Stopped(format!(
                    "kafka {}: cannot create the client: {e}",
                    self.bootstrap_servers
                ))
            })
        };
        let consumer = create(&config)?;
        // Metadata and watermarks through a client of their own: a broker answers a
        // connection's requests in order, so on the reading client's connection they would
        // wait behind its fetches, each held up to fetch.wait.max.ms when no message is new
        // (2 s a discovery, seen with three partitions).
        let lookups = create(config.set("client.id", "weir-lookups"))?;
        Ok(KafkaSource {
            settings: self.clone(),
            consumer: Arc::new(consumer),
            lookups,
            partitions: BTreeMap::new(),
            positions: BTreeMap::new(),
            started: false,
            last_wait_note: None,
            last_discovery_failure: None,
            malformed: 0,
            malformed_total: 0,
            bad: Vec::new(),
        })
    }
}

/// One assigned partition.
struct Partition {
    /// The next offset to read.
    next: i64,
    /// The epoch being read takes offsets up to, not including, this.
    end: i64,
    /// The high watermark when last asked (under `read_committed`, the default, the last
    /// stable offset: a range never waits for a transaction still open).
    high: i64,
    /// The epoch's range has been read.
    done: bool,
    queue: PartitionQueue<DefaultConsumerContext>,
    /// A message at or past `end`, taken from the queue, kept for the next epoch.
    peeked: Option<Held>,
    /// `kafka topic T partition P`, for messages and bad records.
    origin: String,
}

/// A message kept over from one epoch to the next.
struct Held {
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    timestamp: Option<i64>,
}

/// The messages of one partition being put into a batch.
#[derive(Default)]
struct Taken {
    /// Keys are kept only for a `key` column: copying each would cost for nothing.
    want_keys: bool,
    offsets: Vec<i64>,
    keys: Vec<Option<Vec<u8>>>,
    timestamps: Vec<Option<i64>>,
    /// json and csv: the values, one per line.
    text: Vec<u8>,
    /// raw: the values.
    raw: Vec<Option<Vec<u8>>>,
}

/// Reads the partitions of Kafka topics; see the module's documentation.
pub struct KafkaSource {
    settings: KafkaSourceSettings,
    consumer: Arc<BaseConsumer>,
    /// Asks for metadata and watermarks; never assigned a partition.
    lookups: BaseConsumer,
    /// By topic and partition.
    partitions: BTreeMap<(String, i32), Partition>,
    /// The checkpoint's next offsets, until their partitions are assigned.
    positions: BTreeMap<(String, i32), i64>,
    /// The first discovery has assigned what existed then.
    started: bool,
    last_wait_note: Option<Instant>,
    last_discovery_failure: Option<Instant>,
    malformed: u64,
    malformed_total: u64,
    /// Bad records, with the partition they came from.
    bad: Vec<(String, BadRecord)>,
}

/// State keys: `o` + topic + NUL + partition (4 bytes, big-endian) holds the partition's next
/// offset (8 bytes, big-endian); `m` holds the malformed messages, ever.
const OFFSET: u8 = b'o';
const MALFORMED: &[u8] = b"m";

fn offset_key(topic: &str, partition: i32) -> Vec<u8> {
    let mut key = Vec::with_capacity(topic.len() + 6);
    key.push(OFFSET);
    key.extend_from_slice(topic.as_bytes());
    key.push(0);
    key.extend_from_slice(&partition.to_be_bytes());
    key
}

fn parse_offset_key(key: &[u8]) -> Option<(String, i32)> {
    let rest = key.strip_prefix(&[OFFSET])?;
    let (topic, partition) = rest.split_at(rest.len().checked_sub(5)?);
    let (nul, partition) = partition.split_first()?;
    let partition = <[u8; 4]>::try_from(partition).ok()?;
    (*nul == 0).then(|| {
        (
            String::from_utf8_lossy(topic).into_owned(),
            i32::from_be_bytes(partition),
        )
    })
}

impl KafkaSource {
    fn origin(&self) -> String {
        format!("kafka {}", self.settings.bootstrap_servers)
    }

    /// The partitions of the topics read, as the brokers know them now.
    fn topic_partitions(&self) -> Result<Vec<(String, i32)>> {
        let timeout = self.settings.connect_timeout;
        let what = |e: KafkaError| {
            Error::Stopped(format!(
                "{}: cannot read the topics' metadata within {} (connect_timeout): {e}",
                self.origin(),
                humantime::format_duration(timeout)
            ))
        };
        let mut found = Vec::new();
        match &self.settings.topics {
            Topics::Named(topics) => {
                for topic in topics {
                    let metadata = self
                        .lookups
                        .fetch_metadata(Some(topic), timeout)
                        .map_err(what)?;
                    for t in metadata.topics() {
                        if let Some(e) = t.error() {
                            return Err(Error::Input(format!(
                                "{}: topic \"{topic}\" cannot be read: {} (create it first, for example with kafka-topics.sh --create)",
                                self.origin(),
                                rdkafka::types::RDKafkaErrorCode::from(e)
                            )));
                        }
                        found.extend(
                            t.partitions()
                                .iter()
                                .map(|p| (t.name().to_string(), p.id())),
                        );
                    }
                }
            }
            Topics::Pattern(re) => {
                let metadata = self.lookups.fetch_metadata(None, timeout).map_err(what)?;
                for t in metadata.topics() {
                    if re.is_match(t.name()) && t.error().is_none() {
                        found.extend(
                            t.partitions()
                                .iter()
                                .map(|p| (t.name().to_string(), p.id())),
                        );
                    }
                }
            }
        }
        Ok(found)
    }

    /// Where a partition first seen now starts: from the checkpoint, from
    /// `starting_offsets` at the first discovery, or at earliest for a partition that
    /// appeared while running.
    fn start_offset(&self, topic: &str, partition: i32, low: i64, high: i64) -> Result<i64> {
        if let Some(&next) = self.positions.get(&(topic.to_string(), partition)) {
            if next < low {
                let gap = format!(
                    "{}: offsets {next} to {} of topic {topic} partition {partition} were deleted before they were read",
                    self.origin(),
                    low - 1
                );
                if self.settings.fail_on_data_loss {
                    return Err(Error::Input(format!(
                        "{gap} (fail_on_data_loss = false reads on from offset {low})"
                    )));
                }
                tracing::warn!("{gap}; reading on (fail_on_data_loss = false)");
                return Ok(low);
            }
            if next > high {
                let gap = format!(
                    "{}: the checkpoint reads topic {topic} partition {partition} from offset {next}, past its end {high} (was the topic deleted and made again?)",
                    self.origin()
                );
                if self.settings.fail_on_data_loss {
                    return Err(Error::Input(format!(
                        "{gap} (fail_on_data_loss = false reads it from offset {low})"
                    )));
                }
                tracing::warn!("{gap}; reading from offset {low} (fail_on_data_loss = false)");
                return Ok(low);
            }
            return Ok(next);
        }
        if self.started {
            return Ok(low);
        }
        Ok(match &self.settings.starting {
            Starting::Earliest => low,
            Starting::Latest => high,
            Starting::At(map) => match map.get(topic).and_then(|p| p.get(&partition)) {
                Some(-2) => low,
                Some(-1) | None => high,
                Some(&n) => n.clamp(low, high),
            },
        })
    }

    /// Asks for every partition's watermarks, and assigns the partitions not seen before.
    fn refresh(&mut self) -> Result<()> {
        let found = self.topic_partitions()?;
        let timeout = self.settings.connect_timeout;
        let mut new = TopicPartitionList::new();
        let mut added = Vec::new();
        for (topic, partition) in found {
            let (low, high) = self
                .lookups
                .fetch_watermarks(&topic, partition, timeout)
                .map_err(|e| {
                    Error::Stopped(format!(
                        "{}: cannot read the offsets of topic {topic} partition {partition}: {e}",
                        self.origin()
                    ))
                })?;
            let key = (topic.clone(), partition);
            if let Some(p) = self.partitions.get_mut(&key) {
                p.high = p.high.max(high);
                continue;
            }
            let next = self.start_offset(&topic, partition, low, high)?;
            new.add_partition_offset(&topic, partition, Offset::Offset(next))
                .map_err(|e| Error::Internal(format!("kafka: {e}")))?;
            added.push((key, next, high));
        }
        if added.is_empty() {
            return Ok(());
        }
        self.consumer.incremental_assign(&new).map_err(|e| {
            Error::Stopped(format!("{}: cannot assign partitions: {e}", self.origin()))
        })?;
        for ((topic, partition), next, high) in added {
            let queue = self
                .consumer
                .split_partition_queue(&topic, partition)
                .ok_or_else(|| {
                    Error::Internal(format!(
                        "kafka: no queue for topic {topic} partition {partition}"
                    ))
                })?;
            if self.started {
                tracing::info!(
                    "{}: reading new partition {partition} of topic {topic} from offset {next}",
                    self.origin()
                );
            }
            self.positions.remove(&(topic.clone(), partition));
            self.partitions.insert(
                (topic.clone(), partition),
                Partition {
                    next,
                    end: next,
                    high,
                    done: true,
                    queue,
                    peeked: None,
                    origin: format!("kafka topic {topic} partition {partition}"),
                },
            );
        }
        Ok(())
    }

    /// Takes messages of the partition at `key`'s range, up to a batch, without waiting.
    /// Returns whether anything happened (a message or the partition's end).
    fn take(&mut self, key: &(String, i32), taken: &mut Taken) -> bool {
        let max = self.settings.decode.batch_size;
        let raw = self.settings.format == ValueFormat::Raw;
        let consumer = self.consumer.clone();
        let Some(p) = self.partitions.get_mut(key) else {
            return false;
        };
        let mut moved = false;
        if let Some(held) = p.peeked.take() {
            if held.offset >= p.end {
                p.peeked = Some(held);
                p.done = true;
                return true;
            }
            p.next = held.offset + 1;
            push(
                taken,
                raw,
                held.offset,
                held.key,
                held.payload.as_deref(),
                held.timestamp,
            );
            p.done = p.next >= p.end;
            moved = true;
        }
        while !p.done && taken.offsets.len() < max {
            let Some(polled) = p.queue.poll(Duration::ZERO) else {
                // Transaction markers are not messages, but reading them moves the client's
                // position on: a range that ends with one has been read.
                let at = consumer.position().ok().and_then(|positions| {
                    match positions.find_partition(&key.0, key.1)?.offset() {
                        Offset::Offset(at) => Some(at),
                        _ => None,
                    }
                });
                if at.is_some_and(|at| at >= p.end) {
                    p.next = p.next.max(p.end);
                    p.done = true;
                    moved = true;
                }
                break;
            };
            moved = true;
            match polled {
                Ok(message) => {
                    if message.offset() < p.next {
                        // Fetched again after a reconnection: read already.
                        continue;
                    }
                    if message.offset() >= p.end {
                        p.peeked = Some(hold(&message));
                        p.done = true;
                        break;
                    }
                    p.next = message.offset() + 1;
                    let key = match taken.want_keys {
                        true => message.key().map(<[u8]>::to_vec),
                        false => None,
                    };
                    let timestamp = message.timestamp().to_millis();
                    push(
                        taken,
                        raw,
                        message.offset(),
                        key,
                        message.payload(),
                        timestamp,
                    );
                    if p.next >= p.end {
                        p.done = true;
                    }
                }
                Err(e) => {
                    tracing::warn!("{}: {e}; the client retries", p.origin);
                }
            }
        }
        moved
    }

    /// A wait for admitted messages goes on: log it now and then, and give up after
    /// `read_timeout`.
    fn note_wait(&mut self, started: Instant) -> Result<()> {
        let waited = started.elapsed();
        let waiting: Vec<String> = (self.partitions.iter())
            .filter(|(_, p)| !p.done)
            .map(|((t, n), p)| format!("{t}/{n} at {} of {}", p.next, p.end))
            .take(5)
            .collect();
        if waited >= self.settings.read_timeout {
            return Err(Error::Stopped(format!(
                "{}: no message for {} while partitions hold more ({}) (read_timeout); the next run resumes at the last checkpoint",
                self.origin(),
                humantime::format_duration(Duration::from_secs(waited.as_secs())),
                waiting.join(", ")
            )));
        }
        let due = match self.last_wait_note {
            None => waited >= Duration::from_secs(5),
            Some(t) => t.elapsed() >= Duration::from_secs(5),
        };
        if due {
            self.last_wait_note = Some(Instant::now());
            tracing::warn!(
                "{}: waiting for messages ({}; none received for {}s)",
                self.origin(),
                waiting.join(", "),
                waited.as_secs()
            );
        }
        Ok(())
    }

    /// The batch of one partition's messages.
    fn decode(&mut self, key: &(String, i32), taken: Taken) -> Result<Option<RecordBatch>> {
        let origin = match self.partitions.get(key) {
            Some(p) => p.origin.clone(),
            None => format!("kafka topic {} partition {}", key.0, key.1),
        };
        let (mut columns, kept): (Vec<ArrayRef>, Vec<usize>) = match self.settings.format {
            ValueFormat::Raw => {
                let mut values = BinaryBuilder::new();
                for value in &taken.raw {
                    values.append_option(value.as_deref());
                }
                (
                    vec![Arc::new(values.finish())],
                    (0..taken.offsets.len()).collect(),
                )
            }
            _ => {
                let offsets = taken.offsets.iter().map(|&o| o as u64).collect();
                let mut decoder = FileDecoder::messages(
                    &origin,
                    taken.text,
                    offsets,
                    "offset",
                    self.settings.decode.clone(),
                )
                .map_err(|e| Error::Stopped(format!("{origin}: {e}")))?;
                let mut batches = Vec::new();
                let mut dropped = Vec::new();
                while let Some(decoded) = decoder.next()? {
                    self.malformed += decoded.bad.len() as u64;
                    self.malformed_total += decoded.bad.len() as u64;
                    if self.settings.decode.bad_records_path.is_some() {
                        self.bad
                            .extend(decoded.bad.into_iter().map(|b| (origin.clone(), b)));
                    }
                    dropped.extend(decoded.dropped);
                    batches.extend(decoded.batch);
                }
                let values = match batches.len() {
                    0 => return Ok(None),
                    1 => batches.remove(0),
                    _ => {
                        arrow_select::concat::concat_batches(&self.settings.decode.schema, &batches)
                            .map_err(|e| Error::arrow(origin.clone(), e))?
                    }
                };
                // Lines are 1-based, one message each.
                let mut dropped = dropped.into_iter().peekable();
                let kept = (0..taken.offsets.len())
                    .filter(|&i| match dropped.peek() {
                        Some(&line) if line == i as u64 + 1 => {
                            dropped.next();
                            false
                        }
                        _ => true,
                    })
                    .collect();
                (values.columns().to_vec(), kept)
            }
        };
        for m in &self.settings.meta {
            let column: ArrayRef = match m {
                Meta::Key => {
                    let mut keys = BinaryBuilder::new();
                    for &i in &kept {
                        keys.append_option(taken.keys[i].as_deref());
                    }
                    Arc::new(keys.finish())
                }
                Meta::Topic => {
                    let mut topics = StringBuilder::new();
                    for _ in &kept {
                        topics.append_value(&key.0);
                    }
                    Arc::new(topics.finish())
                }
                Meta::Partition => {
                    let mut partitions = Int32Builder::new();
                    partitions.append_slice(&vec![key.1; kept.len()]);
                    Arc::new(partitions.finish())
                }
                Meta::Offset => {
                    let mut offsets = Int64Builder::new();
                    for &i in &kept {
                        offsets.append_value(taken.offsets[i]);
                    }
                    Arc::new(offsets.finish())
                }
                Meta::Timestamp => Arc::new(
                    kept.iter()
                        .map(|&i| taken.timestamps[i].and_then(|ms| ms.checked_mul(1000)))
                        .collect::<TimestampMicrosecondArray>()
                        .with_timezone("UTC"),
                ),
            };
            columns.push(column);
        }
        RecordBatch::try_new(self.settings.schema.clone(), columns)
            .map(Some)
            .map_err(|e| Error::arrow(origin, e))
    }
}

/// Adds one message to `taken`.
fn push(
    taken: &mut Taken,
    raw: bool,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Option<&[u8]>,
    timestamp: Option<i64>,
) {
    taken.offsets.push(offset);
    if taken.want_keys {
        taken.keys.push(key);
    }
    taken.timestamps.push(timestamp);
    if raw {
        taken.raw.push(payload.map(<[u8]>::to_vec));
        return;
    }
    match payload {
        // An empty value (or a tombstone) is malformed, rather than a blank line passed
        // over.
        None | Some([]) => taken.text.extend_from_slice(b"\"\""),
        // One message is one line: a line break in a JSON value can only be whitespace
        // between tokens, and a CSV value is one record.
        Some(value) if memchr::memchr2(b'\n', b'\r', value).is_none() => {
            taken.text.extend_from_slice(value)
        }
        Some(value) => taken.text.extend(value.iter().map(|&b| match b {
            b'\n' | b'\r' => b' ',
            b => b,
        })),
    }
    taken.text.push(b'\n');
}

fn hold(message: &BorrowedMessage<'_>) -> Held {
    Held {
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        timestamp: message.timestamp().to_millis(),
    }
}

impl Source for KafkaSource {
    fn schema(&self) -> SchemaRef {
        self.settings.schema()
    }

    fn discover(&mut self) -> Result<()> {
        match self.refresh() {
            Ok(()) => {
                if self.last_discovery_failure.take().is_some() {
                    tracing::info!("{}: the brokers answer again", self.origin());
                }
            }
            // Before the first assignment there is nothing to read on with; after it, a
            // broker gone away is waited for (the epoch admits nothing new meanwhile),
            // within read_timeout.
            Err(e) if !self.started => return Err(e),
            Err(Error::Stopped(e)) => {
                let since = *self.last_discovery_failure.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.settings.read_timeout {
                    return Err(Error::Stopped(format!(
                        "{e}; the brokers have not answered for {} (read_timeout)",
                        humantime::format_duration(Duration::from_secs(since.elapsed().as_secs()))
                    )));
                }
                tracing::warn!("{e}; retrying at the next trigger");
            }
            Err(e) => return Err(e),
        }
        self.started = true;
        Ok(())
    }

    fn admit(&mut self, quota: Quota) -> usize {
        let limit = self.settings.max_per_trigger.map(|n| n as usize);
        let allowed = quota.allows(limit) as u64;
        let lag = |p: &Partition| (p.high - p.end.max(p.next)).max(0) as u64;
        let total: u64 = self.partitions.values().map(lag).sum();
        if total == 0 || allowed == 0 {
            return 0;
        }
        let mut admitted = 0u64;
        for p in self.partitions.values_mut() {
            let behind = lag(p);
            let left = allowed.saturating_sub(admitted);
            if behind == 0 || left == 0 {
                continue;
            }
            // In proportion to lag, at least one offset each, as Spark shares its limit.
            let share = match allowed >= total {
                true => behind,
                false => ((u128::from(allowed) * u128::from(behind) / u128::from(total)) as u64)
                    .clamp(1, behind)
                    .min(left),
            };
            p.end = p.end.max(p.next) + share as i64;
            p.done = false;
            admitted += share;
        }
        usize::try_from(admitted).unwrap_or(usize::MAX)
    }

    fn backlog(&self) -> usize {
        let lag: i64 = (self.partitions.values())
            .map(|p| (p.high - p.end.max(p.next)).max(0))
            .sum();
        usize::try_from(lag).unwrap_or(usize::MAX)
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let started = Instant::now();
        loop {
            let open: Vec<(String, i32)> = (self.partitions.iter())
                .filter(|(_, p)| !p.done || p.peeked.as_ref().is_some_and(|h| h.offset < p.end))
                .map(|(k, _)| k.clone())
                .collect();
            if open.is_empty() {
                return Ok(None);
            }
            let mut any = false;
            let want_keys = self.settings.meta.contains(&Meta::Key);
            for key in &open {
                let mut taken = Taken {
                    want_keys,
                    ..Taken::default()
                };
                any |= self.take(key, &mut taken);
                if taken.offsets.is_empty() {
                    continue;
                }
                let batch = self.decode(key, taken)?;
                // A batch whose every message was dropped still moved the position.
                return Ok(Some(
                    batch.unwrap_or_else(|| RecordBatch::new_empty(self.schema())),
                ));
            }
            if !any {
                // Nothing in any queue: serve the client's events (errors, reconnections)
                // while waiting a little.
                if let Some(Err(e)) = self.consumer.poll(Duration::from_millis(10)) {
                    tracing::warn!("{}: {e}; the client retries", self.origin());
                }
                self.note_wait(started)?;
            }
        }
    }

    fn snapshot(&mut self) -> Result<StageSnapshot> {
        let mut snapshot = StageSnapshot::default();
        let mut detail = Vec::new();
        for ((topic, partition), p) in &self.partitions {
            snapshot
                .delta
                .put(offset_key(topic, *partition), p.next.to_be_bytes().to_vec());
            if detail.len() < 8 {
                detail.push(format!("{topic}/{partition} at {}", p.next));
            }
        }
        // Partitions of the checkpoint not (yet) assigned keep their offsets.
        for ((topic, partition), next) in &self.positions {
            snapshot
                .delta
                .put(offset_key(topic, *partition), next.to_be_bytes().to_vec());
        }
        snapshot.delta.put(
            MALFORMED.to_vec(),
            self.malformed_total.to_be_bytes().to_vec(),
        );
        snapshot.state_keys = (self.partitions.len() + self.positions.len() + 1) as u64;
        snapshot.detail = match detail.is_empty() {
            true => format!("{}: no partition yet", self.settings.describe()),
            false => format!("{} read to {}", self.settings.describe(), detail.join(", ")),
        };
        Ok(snapshot)
    }

    fn restore(&mut self, state: StateEntries) -> Result<()> {
        for (key, value) in state {
            let number = <[u8; 8]>::try_from(value.as_slice())
                .map(u64::from_be_bytes)
                .map_err(|_| {
                    Error::checkpoint(
                        CheckpointFailure::Damaged,
                        format!("{}: a damaged offset in the checkpoint", self.origin()),
                    )
                })?;
            if key == MALFORMED {
                self.malformed_total = number;
            } else if let Some(partition) = parse_offset_key(&key) {
                self.positions.insert(partition, number as i64);
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
        bad_records_batch(bad.iter().map(|(origin, b)| (origin.as_str(), b))).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> KafkaSourceConfig {
        KafkaSourceConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            subscribe: Some("orders".into()),
            subscribe_pattern: None,
            starting_offsets: None,
            max_offsets_per_trigger: None,
            fail_on_data_loss: true,
            format: None,
            schema: Some("Shop STRING, Sale_Count INT".into()),
            metadata_columns: Vec::new(),
            sep: None,
            mode: None,
            corrupt_record_column: None,
            bad_records_path: None,
            timestamp_format: None,
            date_format: None,
            time_zone: None,
            batch_size: 1024,
            connect_timeout: None,
            read_timeout: None,
            properties: BTreeMap::new(),
        }
    }

    fn errors(config: KafkaSourceConfig) -> Vec<String> {
        match config.validate() {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn starting_offsets_are_earliest_latest_or_sparks_json() {
        let at = |s: &str| {
            KafkaSourceConfig {
                starting_offsets: Some(s.into()),
                ..config()
            }
            .validate()
            .map(|s| s.starting)
        };
        assert_eq!(at("earliest").ok(), Some(Starting::Earliest));
        assert_eq!(at("latest").ok(), Some(Starting::Latest));
        let map = at(r#"{"orders": {"0": 23, "1": -2}}"#).ok();
        let Some(Starting::At(map)) = map else {
            panic!("{map:?}")
        };
        assert_eq!(map["orders"][&0], 23);
        assert_eq!(map["orders"][&1], -2);
        for bad in [
            "soon",
            r#"{"orders": {"x": 1}}"#,
            r#"{"orders": {"0": -3}}"#,
        ] {
            let e = errors(KafkaSourceConfig {
                starting_offsets: Some(bad.into()),
                ..config()
            });
            assert!(
                e.iter().any(|e| e.contains("starting_offsets")),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn every_bad_key_is_named_at_once() {
        let e = errors(KafkaSourceConfig {
            bootstrap_servers: " ".into(),
            subscribe: None,
            format: Some("avro".into()),
            metadata_columns: vec!["headers".into()],
            max_offsets_per_trigger: Some(0),
            mode: Some("lenient".into()),
            ..config()
        });
        for key in [
            "bootstrap_servers",
            "subscribe",
            "format",
            "metadata_columns",
            "max_offsets_per_trigger",
            "mode",
        ] {
            assert!(e.iter().any(|e| e.contains(key)), "{key} in {e:?}");
        }
        let e = errors(KafkaSourceConfig {
            subscribe_pattern: Some("orders-.*".into()),
            ..config()
        });
        assert!(e.iter().any(|e| e.contains("not both")), "{e:?}");
        let e = errors(KafkaSourceConfig {
            subscribe: None,
            subscribe_pattern: Some("orders-(".into()),
            ..config()
        });
        assert!(e.iter().any(|e| e.contains("subscribe_pattern")), "{e:?}");
    }

    #[test]
    fn the_schema_is_the_values_then_the_kafka_columns() {
        let settings = KafkaSourceConfig {
            metadata_columns: vec!["topic".into(), "offset".into(), "key".into()],
            ..config()
        }
        .validate()
        .ok();
        let names: Vec<String> = settings
            .map(|s| {
                s.schema()
                    .fields()
                    .iter()
                    .map(|f| f.name().clone())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(names, ["Shop", "Sale_Count", "topic", "offset", "key"]);
        let raw = KafkaSourceConfig {
            format: Some("raw".into()),
            schema: None,
            ..config()
        }
        .validate()
        .ok();
        let fields = raw.map(|s| s.schema().fields().len());
        assert_eq!(fields, Some(1));
        let e = errors(KafkaSourceConfig {
            schema: Some("offset BIGINT".into()),
            metadata_columns: vec!["offset".into()],
            ..config()
        });
        assert!(e.iter().any(|e| e.contains("rename")), "{e:?}");
        let e = errors(KafkaSourceConfig {
            schema: None,
            ..config()
        });
        assert!(e.iter().any(|e| e.contains("schema")), "{e:?}");
    }

    #[test]
    fn offset_keys_round_trip() {
        for (topic, partition) in [("orders", 0), ("a.b-c_d", 41), ("", 7)] {
            let key = offset_key(topic, partition);
            assert_eq!(parse_offset_key(&key), Some((topic.to_string(), partition)));
        }
        assert_eq!(parse_offset_key(b"m"), None);
    }
}
