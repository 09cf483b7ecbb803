//! The `type = "kafka"` sink: each committed epoch's rows produced to a Kafka topic, one
//! message per row.
//!
//! It is a [`SpilledSink`]: an epoch's rows are spilled beside the checkpoint as they come and
//! produced only once the epoch's checkpoint is complete, so nothing of an epoch that a crash
//! undoes ever reaches the topic. By default the producer is idempotent (no duplicates from
//! its own retries) and a restart produces the epochs its checkpoint left undelivered again:
//! at least once. With `exactly_once`, each epoch is one Kafka transaction, which also
//! commits the epoch's number as the offset of a consumer group named for the sink (on
//! partition 0 of the topic). A restart first fences the crashed run's producer (aborting a
//! transaction it left open) and reads that offset: an epoch whose transaction committed is
//! not produced again, one whose transaction did not is produced again, whole. A
//! `read_committed` consumer therefore sees every row once.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use arrow_array::{Array, BinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, SchemaRef};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;
use weir_core::{duration_key, ConfigError, Epoch, Error, OutputMode, Result, Sink};

use crate::channel::{Delivery, EpochPart, SpilledSink};
use crate::registry::{SinkPlace, SinkSpec};

/// The `type = "kafka"` sink as written in the pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KafkaSinkConfig {
    /// The brokers to bootstrap from, comma-separated `host:port`.
    bootstrap_servers: String,
    /// The topic every row is produced to. It must exist.
    topic: String,
    /// A column whose value is each message's key (its text; a BINARY column's bytes).
    /// Default: no key (the client spreads messages over the partitions).
    #[serde(default)]
    key: Option<String>,
    /// A STRING or BINARY column holding each message's whole value. Default: the row as
    /// one JSON object (`format = "json"`, nulls left out).
    #[serde(default)]
    value: Option<String>,
    /// How a row is written when `value` is not given: only `"json"`, the default.
    #[serde(default)]
    format: Option<String>,
    /// Each epoch in one Kafka transaction, committed once the epoch's checkpoint is
    /// complete: exactly once for `read_committed` consumers. Default `false`: the
    /// idempotent producer, at least once.
    #[serde(default)]
    exactly_once: bool,
    /// With `exactly_once`: the producer's `transactional.id`, and the name of the consumer
    /// group that records the epochs committed. Default `weir-<sink name>`; two pipelines
    /// must not share one.
    #[serde(default)]
    transactional_id: Option<String>,
    /// With `exactly_once`: how long a transaction may stay open before the brokers abort it
    /// (Kafka's `transaction.timeout.ms`), which bounds how long a crash can hold
    /// `read_committed` consumers back. Default `"60s"`.
    #[serde(default)]
    transaction_timeout: Option<String>,
    /// How long a request for metadata, or for the transaction's state, may take. Default
    /// `"10s"`.
    #[serde(default)]
    connect_timeout: Option<String>,
    /// How long producing one epoch may take, the client's retries included (the brokers
    /// gone away, say), before the run stops with an error; a restart produces the epoch
    /// again. Default `"60s"`.
    #[serde(default)]
    publish_timeout: Option<String>,
    /// librdkafka producer properties passed on as they are (`"compression.type"`,
    /// `"security.protocol"`, …).
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

/// A validated `type = "kafka"` sink, for one stage.
pub(crate) struct KafkaSinkSpec {
    name: String,
    servers: String,
    topic: String,
    key: Option<usize>,
    value: Option<usize>,
    transactional_id: Option<String>,
    transaction_timeout: Duration,
    connect_timeout: Duration,
    publish_timeout: Duration,
    properties: BTreeMap<String, String>,
    schema: SchemaRef,
}

impl KafkaSinkConfig {
    pub(crate) fn validate(
        self,
        name: &str,
        schema: &SchemaRef,
        _mode: OutputMode,
    ) -> std::result::Result<KafkaSinkSpec, Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.bootstrap_servers.trim().is_empty() {
            errors.push(ConfigError::new(
                "bootstrap_servers",
                "must name a broker, such as \"127.0.0.1:9092\"",
            ));
        }
        if self.topic.trim().is_empty() {
            errors.push(ConfigError::new(
                "topic",
                "must name the topic to produce to",
            ));
        }
        let column = |key: &str, name: &Option<String>, errors: &mut Vec<ConfigError>| {
            let name = name.as_ref()?;
            match schema.index_of(name) {
                Ok(i) => Some(i),
                Err(_) => {
                    let known: Vec<&str> =
                        schema.fields().iter().map(|f| f.name().as_str()).collect();
                    errors.push(ConfigError::new(
                        key,
                        format!(
                            "\"{name}\" is not a column of the sink's input (its columns: {})",
                            known.join(", ")
                        ),
                    ));
                    None
                }
            }
        };
        let key = column("key", &self.key, &mut errors);
        let value = column("value", &self.value, &mut errors);
        if let Some(i) = value {
            let field = schema.field(i);
            if !matches!(field.data_type(), DataType::Utf8 | DataType::Binary) {
                errors.push(ConfigError::new(
                    "value",
                    format!(
                        "\"{}\" is {}: a message's value must be a STRING or BINARY column (select a JSON or text column first)",
                        field.name(),
                        weir_core::ddl_type_name(field.data_type())
                    ),
                ));
            }
        }
        if let Some(other) = self.format.as_deref().filter(|f| *f != "json") {
            errors.push(ConfigError::new(
                "format",
                format!("\"{other}\" is not a format this sink writes (expected \"json\")"),
            ));
        }
        let transaction_timeout = duration_key(
            "transaction_timeout",
            self.transaction_timeout.as_deref(),
            Duration::from_secs(60),
            &mut errors,
        );
        let connect_timeout = duration_key(
            "connect_timeout",
            self.connect_timeout.as_deref(),
            Duration::from_secs(10),
            &mut errors,
        );
        let publish_timeout = duration_key(
            "publish_timeout",
            self.publish_timeout.as_deref(),
            Duration::from_secs(60),
            &mut errors,
        );
        if !self.exactly_once && self.transactional_id.is_some() {
            errors.push(ConfigError::new(
                "transactional_id",
                "is for exactly_once = true",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(KafkaSinkSpec {
            name: name.to_string(),
            servers: self.bootstrap_servers.trim().to_string(),
            topic: self.topic.trim().to_string(),
            key,
            value,
            transactional_id: self.exactly_once.then(|| {
                self.transactional_id
                    .unwrap_or_else(|| format!("weir-{name}"))
            }),
            transaction_timeout,
            connect_timeout,
            publish_timeout,
            properties: self.properties,
            schema: schema.clone(),
        })
    }
}

impl SinkSpec for KafkaSinkSpec {
    fn describe(&self) -> String {
        match self.transactional_id {
            Some(_) => format!("kafka topic {}, exactly once", self.topic),
            None => format!("kafka topic {}", self.topic),
        }
    }

    fn build(&self) -> Result<Box<dyn Sink>> {
        self.build_in(&SinkPlace::default())
    }

    fn build_in(&self, place: &SinkPlace) -> Result<Box<dyn Sink>> {
        let delivery = ToKafka::connect(self)?;
        let sink = SpilledSink::new(&self.name, "kafka", &self.schema, place, delivery)?;
        Ok(Box::new(sink))
    }
}

/// Counts the messages the brokers did not take, for the part being produced.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<(u64, Option<String>)>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            if let Ok(mut failed) = self.failed.lock() {
                failed.0 += 1;
                failed.1.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// Produces parts of committed epochs.
struct ToKafka {
    name: String,
    topic: String,
    key: Option<usize>,
    value: Option<usize>,
    producer: BaseProducer<Deliveries>,
    /// With `exactly_once`: the consumer whose group records the epochs committed.
    marker: Option<Marker>,
    connect_timeout: Duration,
    publish_timeout: Duration,
}

/// The record of committed epochs: the offset of the sink's consumer group on partition 0 of
/// the topic is the last committed epoch plus one.
struct Marker {
    consumer: BaseConsumer,
    /// The last epoch the brokers say was committed, read at the start.
    committed: Option<u64>,
    /// The epoch whose transaction is open, if one is.
    open: Option<Epoch>,
}

/// Messages the client may hold unsent: it applies backpressure (a full queue) beyond this.
const QUEUED: &str = "100000";

impl ToKafka {
    fn connect(spec: &KafkaSinkSpec) -> Result<Self> {
        let name = &spec.name;
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &spec.servers)
            .set("client.id", format!("weir-{name}"))
            .set("enable.idempotence", "true")
            .set(
                "message.timeout.ms",
                spec.publish_timeout.as_millis().to_string(),
            )
            .set("queue.buffering.max.messages", QUEUED)
            .set("linger.ms", "5");
        if let Some(id) = &spec.transactional_id {
            config.set("transactional.id", id).set(
                "transaction.timeout.ms",
                spec.transaction_timeout.as_millis().to_string(),
            );
        }
        for (key, value) in &spec.properties {
            config.set(key, value);
        }
        let producer: BaseProducer<Deliveries> = config
            .create_with_context(Deliveries::default())
            .map_err(|e| {
                Error::Stopped(format!(
                    "sinks.{name}: cannot create the Kafka producer for {}: {e}",
                    spec.servers
                ))
            })?;
        // Metadata through a consumer that may not create topics: a producer's request
        // would create a missing topic on brokers that allow it, with default settings.
        let mut probe = ClientConfig::new();
        probe
            .set("bootstrap.servers", &spec.servers)
            .set(
                "group.id",
                spec.transactional_id.as_deref().unwrap_or("weir"),
            )
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false")
            .set("isolation.level", "read_committed");
        for (key, value) in spec.properties.iter().filter(|(k, _)| {
            k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.")
        }) {
            probe.set(key, value);
        }
        let consumer: BaseConsumer = probe.create().map_err(|e| {
            Error::Stopped(format!(
                "sinks.{name}: cannot create a Kafka client for {}: {e}",
                spec.servers
            ))
        })?;
        let metadata = consumer
            .fetch_metadata(Some(&spec.topic), spec.connect_timeout)
            .map_err(|e| {
                Error::Stopped(format!(
                    "sinks.{name}: cannot reach the brokers {} within {} (connect_timeout): {e}",
                    spec.servers,
                    humantime::format_duration(spec.connect_timeout)
                ))
            })?;
        if let Some(t) = metadata.topics().iter().find(|t| t.name() == spec.topic) {
            if let Some(e) = t.error() {
                return Err(Error::Stopped(format!(
                    "sinks.{name}: topic \"{}\" cannot be written: {} (create it first, for example with kafka-topics.sh --create)",
                    spec.topic,
                    RDKafkaErrorCode::from(e)
                )));
            }
        }
        let mut sink = ToKafka {
            name: name.clone(),
            topic: spec.topic.clone(),
            key: spec.key,
            value: spec.value,
            producer,
            marker: None,
            connect_timeout: spec.connect_timeout,
            publish_timeout: spec.publish_timeout,
        };
        if let Some(id) = &spec.transactional_id {
            // Fences the producer of a run that crashed and aborts the transaction it left
            // open, so that the committed offset read next is final.
            sink.producer
                .init_transactions(spec.transaction_timeout.max(spec.connect_timeout))
                .map_err(|e| {
                    Error::Stopped(format!(
                        "sinks.{name}: cannot start transactions as \"{id}\" on {}: {e}",
                        spec.servers
                    ))
                })?;
            let committed = sink.committed_epoch(&consumer)?;
            tracing::info!(
                "sinks.{name}: producing to {} in one transaction per epoch as \"{id}\" ({})",
                spec.topic,
                match committed {
                    Some(e) => format!("epochs up to {e} committed before"),
                    None => "no epoch committed before".into(),
                }
            );
            sink.marker = Some(Marker {
                consumer,
                committed,
                open: None,
            });
        }
        Ok(sink)
    }

    /// The last epoch whose transaction committed, as the sink's consumer group says.
    fn committed_epoch(&self, consumer: &BaseConsumer) -> Result<Option<u64>> {
        let mut partition = TopicPartitionList::new();
        partition.add_partition(&self.topic, 0);
        let committed = consumer
            .committed_offsets(partition, self.connect_timeout)
            .map_err(|e| {
                Error::Stopped(format!(
                    "sinks.{}: cannot read which epochs were committed to {}: {e}",
                    self.name, self.topic
                ))
            })?;
        let offset = committed.find_partition(&self.topic, 0).map(|p| p.offset());
        Ok(match offset {
            Some(Offset::Offset(n)) if n > 0 => Some(n as u64 - 1),
            _ => None,
        })
    }

    /// Queues every row of `batches`, waiting for room when the client's queue is full.
    fn produce(&self, epoch: Epoch, batches: &[RecordBatch]) -> Result<usize> {
        let mut produced = 0;
        for batch in batches {
            let values = self.values(batch)?;
            let keys = self.keys(batch)?;
            for (i, value) in values.iter().enumerate() {
                let key = keys.as_ref().and_then(|k| k[i].as_deref());
                let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic);
                if let Some(value) = value {
                    record = record.payload(value.as_slice());
                }
                if let Some(key) = key {
                    record = record.key(key);
                }
                let started = Instant::now();
                let mut record = record;
                loop {
                    match self.producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            if started.elapsed() >= self.publish_timeout {
                                return Err(self.stopped(
                                    epoch,
                                    "the client's queue stayed full (the brokers are not taking messages)",
                                ));
                            }
                            record = r;
                            self.producer.poll(Duration::from_millis(50));
                        }
                        Err((e, _)) => return Err(self.stopped(epoch, &e.to_string())),
                    }
                }
                produced += 1;
            }
            self.producer.poll(Duration::ZERO);
        }
        Ok(produced)
    }

    fn stopped(&self, epoch: Epoch, why: &str) -> Error {
        Error::Stopped(format!(
            "sinks.{}: cannot produce epoch {epoch} to {}: {why}; the next run produces it again",
            self.name, self.topic
        ))
    }

    /// Each row's value: the `value` column's, or the row as JSON.
    fn values(&self, batch: &RecordBatch) -> Result<Vec<Option<Vec<u8>>>> {
        let what = || format!("sinks.{}", self.name);
        if let Some(i) = self.value {
            return Ok(bytes_of(batch.column(i).as_ref()));
        }
        let mut text = Vec::new();
        {
            let mut writer = arrow_json::LineDelimitedWriter::new(&mut text);
            writer.write(batch).map_err(|e| Error::arrow(what(), e))?;
            writer.finish().map_err(|e| Error::arrow(what(), e))?;
        }
        Ok(text
            .split(|&b| b == b'\n')
            .take(batch.num_rows())
            .map(|row| Some(row.to_vec()))
            .collect())
    }

    /// Each row's key, if there is a key column.
    fn keys(&self, batch: &RecordBatch) -> Result<Option<Vec<Option<Vec<u8>>>>> {
        let Some(i) = self.key else {
            return Ok(None);
        };
        let column = batch.column(i);
        if matches!(column.data_type(), DataType::Utf8 | DataType::Binary) {
            return Ok(Some(bytes_of(column.as_ref())));
        }
        let text = arrow_cast::cast(column, &DataType::Utf8)
            .map_err(|e| Error::arrow(format!("sinks.{}: the key", self.name), e))?;
        Ok(Some(bytes_of(text.as_ref())))
    }

    /// Waits until every queued message is acknowledged; the failures among them.
    fn flush(&self, epoch: Epoch) -> Result<Option<(u64, String)>> {
        let started = Instant::now();
        // rdkafka's own flush serves the client's events in steps of 100 ms, whatever
        // comes: a part would cost 100 ms at least. Steps of a millisecond instead.
        loop {
            match self.producer.flush(Duration::ZERO) {
                Ok(()) => break,
                Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut)) => {}
                Err(e) => return Err(self.stopped(epoch, &e.to_string())),
            }
            if started.elapsed() >= self.publish_timeout {
                return Err(self.stopped(
                    epoch,
                    &format!(
                        "messages not acknowledged within {} (publish_timeout)",
                        humantime::format_duration(self.publish_timeout)
                    ),
                ));
            }
            self.producer.poll(Duration::from_millis(1));
        }
        let failed = match self.producer.context().failed.lock() {
            Ok(mut failed) => std::mem::take(&mut *failed),
            Err(_) => (0, None),
        };
        Ok(match failed {
            (0, _) => None,
            (n, e) => Some((n, e.unwrap_or_default())),
        })
    }

    fn deliver_transactional(&mut self, part: EpochPart) -> Result<()> {
        let epoch = part.epoch;
        let Some(marker) = &self.marker else {
            return Ok(());
        };
        if marker.committed.is_some_and(|c| c >= epoch.0) {
            if part.part == 0 {
                tracing::info!(
                    "sinks.{}: epoch {epoch} was committed to {} before the restart; not producing it again",
                    self.name,
                    self.topic
                );
            }
            return Ok(());
        }
        let transaction = |e: KafkaError| {
            Error::Stopped(format!(
                "sinks.{}: the transaction of epoch {epoch} on {} failed: {e}; the next run aborts it and produces the epoch again",
                self.name, self.topic
            ))
        };
        if marker.open != Some(epoch) {
            self.producer.begin_transaction().map_err(transaction)?;
            if let Some(marker) = &mut self.marker {
                marker.open = Some(epoch);
            }
        }
        self.produce(epoch, &part.batches)?;
        if !part.last {
            return Ok(());
        }
        let Some(marker) = &self.marker else {
            return Ok(());
        };
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(&self.topic, 0, Offset::Offset(epoch.0 as i64 + 1))
            .map_err(transaction)?;
        let group = marker.consumer.group_metadata().ok_or_else(|| {
            Error::Internal(format!("sinks.{}: no consumer group metadata", self.name))
        })?;
        // Everything acknowledged first, so that the commit's own flush (in steps of 100 ms)
        // finds nothing left; a refused message fails the transaction.
        if let Some((failed, error)) = self.flush(epoch)? {
            return Err(Error::Stopped(format!(
                "sinks.{}: {failed} messages of epoch {epoch} were refused by {} ({error}); the next run aborts the transaction and produces the epoch again",
                self.name, self.topic
            )));
        }
        let timeout = self.publish_timeout;
        self.producer
            .send_offsets_to_transaction(&offsets, &group, timeout)
            .map_err(transaction)?;
        self.producer
            .commit_transaction(timeout)
            .map_err(transaction)?;
        if let Some(marker) = &mut self.marker {
            marker.open = None;
            marker.committed = Some(epoch.0);
        }
        Ok(())
    }
}

/// A STRING or BINARY column's values as bytes.
fn bytes_of(column: &dyn Array) -> Vec<Option<Vec<u8>>> {
    if let Some(strings) = column.as_any().downcast_ref::<StringArray>() {
        return strings
            .iter()
            .map(|s| s.map(|s| s.as_bytes().to_vec()))
            .collect();
    }
    if let Some(bytes) = column.as_any().downcast_ref::<BinaryArray>() {
        return bytes.iter().map(|b| b.map(<[u8]>::to_vec)).collect();
    }
    vec![None; column.len()]
}

impl Delivery for ToKafka {
    fn deliver(&mut self, part: EpochPart) -> Result<()> {
        if self.marker.is_some() {
            return self.deliver_transactional(part);
        }
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let produced = self.produce(part.epoch, &part.batches)?;
            let Some((failed, error)) = self.flush(part.epoch)? else {
                return Ok(());
            };
            attempt += 1;
            if started.elapsed() >= self.publish_timeout {
                return Err(self.stopped(
                    part.epoch,
                    &format!("{failed} of {produced} messages were refused ({error})"),
                ));
            }
            // At least once: the whole part again, those that did get through included.
            tracing::warn!(
                "sinks.{}: {failed} of {produced} messages of epoch {} were refused by {} ({error}); producing the part again (attempt {attempt})",
                self.name,
                part.epoch,
                self.topic
            );
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt.min(10))));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{Field, Schema};

    use super::*;

    fn config() -> KafkaSinkConfig {
        KafkaSinkConfig {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic: "totals".into(),
            key: None,
            value: None,
            format: None,
            exactly_once: false,
            transactional_id: None,
            transaction_timeout: None,
            connect_timeout: None,
            publish_timeout: None,
            properties: BTreeMap::new(),
        }
    }

    fn errors(config: KafkaSinkConfig) -> Vec<String> {
        let schema = Arc::new(Schema::new(vec![
            Field::new("Shop", DataType::Utf8, true),
            Field::new("total", DataType::Int64, true),
        ]));
        match config.validate("totals", &schema, OutputMode::Update) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn key_and_value_name_columns_of_the_input_and_the_value_is_text_or_bytes() {
        assert!(errors(KafkaSinkConfig {
            key: Some("total".into()),
            value: Some("Shop".into()),
            ..config()
        })
        .is_empty());
        let e = errors(KafkaSinkConfig {
            key: Some("shop".into()),
            value: Some("total".into()),
            ..config()
        });
        assert!(
            e.iter()
                .any(|e| e.contains("key") && e.contains("its columns: Shop, total")),
            "{e:?}"
        );
        assert!(
            e.iter()
                .any(|e| e.contains("value") && e.contains("BIGINT")),
            "{e:?}"
        );
    }

    #[test]
    fn every_bad_key_is_named_at_once() {
        let e = errors(KafkaSinkConfig {
            bootstrap_servers: "".into(),
            topic: " ".into(),
            format: Some("avro".into()),
            transactional_id: Some("t".into()),
            transaction_timeout: Some("soon".into()),
            ..config()
        });
        for key in [
            "bootstrap_servers",
            "topic",
            "format",
            "transactional_id",
            "transaction_timeout",
        ] {
            assert!(e.iter().any(|e| e.contains(key)), "{key} in {e:?}");
        }
    }

    #[test]
    fn exactly_once_names_its_transactions_after_the_sink() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Utf8, true)]));
        let spec = KafkaSinkConfig {
            exactly_once: true,
            ..config()
        }
        .validate("totals", &schema, OutputMode::Append)
        .ok();
        assert_eq!(
            spec.and_then(|s| s.transactional_id).as_deref(),
            Some("weir-totals")
        );
    }
}
