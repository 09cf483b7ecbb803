//! The `type = "nats"` sink: each committed epoch's rows published to a NATS JetStream
//! subject, one JSON object per message.
//!
//! It is a [`SpilledSink`]: an epoch's rows are spilled beside the checkpoint as they come
//! and published only once the epoch's checkpoint is complete, so nothing of an epoch that a
//! crash undoes is ever published. Every message carries a `Nats-Msg-Id` made of the sink's
//! prefix, the epoch, the part and the row, the same each time an epoch is published again:
//! an epoch published again after a crash, or a part retried after the server went away, is
//! dropped by JetStream's duplicate window. A restart within that window (2 minutes unless
//! the stream says otherwise) therefore publishes every row once.

use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_nats::jetstream::{self, message::PublishMessage};
use serde::Deserialize;
use weir_core::{duration_key, ConfigError, Error, OutputMode, Result, Sink};
use weir_source::{nats_connect, NatsRuntime};

use crate::channel::{Delivery, EpochPart, SpilledSink};
use crate::registry::{SinkPlace, SinkSpec};

/// The `type = "nats"` sink as written in the pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NatsSinkConfig {
    /// The server to connect to, or several, comma-separated. Default
    /// `"nats://127.0.0.1:4222"`.
    #[serde(default = "default_servers")]
    servers: String,
    /// The subject every row is published to. A JetStream stream must take it.
    subject: String,
    /// How a row is written: only `"json"` (one object per row, nulls left out), the default.
    #[serde(default)]
    format: Option<String>,
    /// What every `Nats-Msg-Id` starts with. Default: `weir-<sink name>`; two pipelines that
    /// publish to one stream with sinks of the same name must set it apart.
    #[serde(default)]
    msg_id_prefix: Option<String>,
    /// How long connecting may take. Default `"5s"`.
    #[serde(default)]
    connect_timeout: Option<String>,
    /// How long publishing one part of an epoch may take, retries included (the server gone
    /// away, say), before the run stops with an error; a restart publishes the epoch again.
    /// Default `"60s"`.
    #[serde(default)]
    publish_timeout: Option<String>,
}

fn default_servers() -> String {
    "nats://127.0.0.1:4222".into()
}

/// A validated `type = "nats"` sink, for one stage.
pub(crate) struct NatsSinkSpec {
    name: String,
    servers: String,
    subject: String,
    prefix: String,
    schema: SchemaRef,
    connect_timeout: Duration,
    publish_timeout: Duration,
}

impl NatsSinkConfig {
    pub(crate) fn validate(
        self,
        name: &str,
        schema: &SchemaRef,
        _mode: OutputMode,
    ) -> std::result::Result<NatsSinkSpec, Vec<ConfigError>> {
        let mut errors = Vec::new();
        if self.subject.trim().is_empty() || self.subject.contains(['*', '>', ' ']) {
            errors.push(ConfigError::new(
                "subject",
                format!(
                    "\"{}\": expected a subject to publish to, without wildcards or spaces",
                    self.subject
                ),
            ));
        }
        if let Some(other) = self.format.as_deref().filter(|f| *f != "json") {
            errors.push(ConfigError::new(
                "format",
                format!("\"{other}\" is not a format this sink writes (expected \"json\")"),
            ));
        }
        let connect_timeout = duration_key(
            "connect_timeout",
            self.connect_timeout.as_deref(),
            Duration::from_secs(5),
            &mut errors,
        );
        let publish_timeout = duration_key(
            "publish_timeout",
            self.publish_timeout.as_deref(),
            Duration::from_secs(60),
            &mut errors,
        );
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(NatsSinkSpec {
            name: name.to_string(),
            servers: self.servers.trim().to_string(),
            subject: self.subject.trim().to_string(),
            prefix: self.msg_id_prefix.unwrap_or_else(|| format!("weir-{name}")),
            schema: schema.clone(),
            connect_timeout,
            publish_timeout,
        })
    }
}

impl SinkSpec for NatsSinkSpec {
    fn describe(&self) -> String {
        format!("nats subject {}", self.subject)
    }

    fn build(&self) -> Result<Box<dyn Sink>> {
        self.build_in(&SinkPlace::default())
    }

    fn build_in(&self, place: &SinkPlace) -> Result<Box<dyn Sink>> {
        let runtime = NatsRuntime::new()?;
        let client = nats_connect(&runtime, &self.servers, self.connect_timeout)?;
        let jetstream = jetstream::new(client);
        let (context, subject) = (jetstream.clone(), self.subject.clone());
        let what = format!(
            "sinks.{}: cannot find the stream for {}",
            self.name, self.subject
        );
        let window = runtime.call(&what, self.connect_timeout * 2, async move {
            let name = context.stream_by_subject(subject).await?;
            let mut stream = context.get_stream(&name).await?;
            let window = stream.info().await?.config.duplicate_window;
            Ok::<_, async_nats::Error>((name, window))
        })?;
        let (stream, window) = window.map_err(|e| {
            Error::Stopped(format!(
                "sinks.{}: no JetStream stream takes subject {} ({e}); create one first, for example with `nats stream add`",
                self.name, self.subject
            ))
        })?;
        tracing::info!(
            "sinks.{}: publishing to {} (stream {stream}); a restart within its duplicate window ({}) publishes every row once",
            self.name,
            self.subject,
            humantime::format_duration(window)
        );
        let delivery = ToNats {
            name: self.name.clone(),
            subject: self.subject.clone(),
            prefix: self.prefix.clone(),
            timeout: self.publish_timeout,
            jetstream,
            runtime,
        };
        let sink = SpilledSink::new(&self.name, "nats", &self.schema, place, delivery)?;
        Ok(Box::new(sink))
    }
}

/// Publishes parts of committed epochs.
struct ToNats {
    name: String,
    subject: String,
    prefix: String,
    timeout: Duration,
    jetstream: jetstream::Context,
    runtime: NatsRuntime,
}

/// Acknowledgements awaited at once: enough to keep the connection busy, few enough that a
/// failure retries little.
const IN_FLIGHT: usize = 4096;

impl ToNats {
    /// Each row of `batches` as one JSON object.
    fn rows(&self, batches: &[RecordBatch]) -> Result<Vec<bytes::Bytes>> {
        let mut text = Vec::new();
        {
            let mut writer = arrow_json::LineDelimitedWriter::new(&mut text);
            for batch in batches {
                writer
                    .write(batch)
                    .map_err(|e| Error::arrow(format!("sinks.{}", self.name), e))?;
            }
            writer
                .finish()
                .map_err(|e| Error::arrow(format!("sinks.{}", self.name), e))?;
        }
        let text = bytes::Bytes::from(text);
        let mut rows = Vec::new();
        let mut start = 0;
        for (i, &b) in text.iter().enumerate() {
            if b == b'\n' {
                rows.push(text.slice(start..i));
                start = i + 1;
            }
        }
        Ok(rows)
    }
}

impl Delivery for ToNats {
    fn deliver(&mut self, part: EpochPart) -> Result<()> {
        let rows = self.rows(&part.batches)?;
        let started = Instant::now();
        let mut attempt = 0u32;
        loop {
            let (jetstream, subject) = (self.jetstream.clone(), self.subject.clone());
            let ids = format!("{}:{}:{}", self.prefix, part.epoch.0, part.part);
            let rows = rows.clone();
            let left = self.timeout.saturating_sub(started.elapsed());
            let what = format!("sinks.{}: publishing epoch {}", self.name, part.epoch);
            let published =
                self.runtime
                    .call(&what, left.max(Duration::from_secs(1)), async move {
                        let mut acks = Vec::with_capacity(IN_FLIGHT);
                        for (i, row) in rows.into_iter().enumerate() {
                            let message = PublishMessage::build()
                                .payload(row)
                                .message_id(format!("{ids}:{i}"));
                            acks.push(jetstream.send_publish(subject.clone(), message).await?);
                            if acks.len() == IN_FLIGHT {
                                for ack in acks.drain(..) {
                                    ack.await?;
                                }
                            }
                        }
                        for ack in acks {
                            ack.await?;
                        }
                        Ok::<_, async_nats::Error>(())
                    });
            let error = match published {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => e.to_string(),
                Err(e) => e.to_string(),
            };
            attempt += 1;
            if started.elapsed() >= self.timeout {
                return Err(Error::Stopped(format!(
                    "sinks.{}: cannot publish epoch {} to {} within {} (publish_timeout): {error}; the next run publishes it again",
                    self.name,
                    part.epoch,
                    self.subject,
                    humantime::format_duration(self.timeout)
                )));
            }
            // Messages of the part that did get through are dropped as duplicates when the
            // part is published again.
            tracing::warn!(
                "sinks.{}: publishing epoch {} to {} failed ({error}); retrying (attempt {attempt})",
                self.name,
                part.epoch,
                self.subject
            );
            std::thread::sleep(Duration::from_millis(200 * u64::from(attempt.min(10))));
        }
    }
}
