//! Component types by their TOML `type`, and the validated specs they produce.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use actix::Recipient;
use arrow_schema::SchemaRef;
use serde::de::DeserializeOwned;
use weir_core::{ConfigError, EventTimeColumn, Operator, OutputMode, Result, Sink, Source};
use weir_operators::{AggregateConfig, DeduplicateConfig, AGGREGATE_APPEND_REFUSAL};
#[cfg(feature = "expressions")]
use weir_operators::{FilterConfig, SelectConfig, SqlConfig};
use weir_sink::{ConsoleSinkConfig, FileFormat, FileSinkConfig, FileSinkSettings};
use weir_source::{
    CsvSourceConfig, CsvSourceSettings, Format, KafkaSourceConfig, KafkaSourceSettings,
    NatsSourceConfig, NatsSourceSettings,
};

use crate::channel::{self, ChannelSinkConfig, Channels, EpochOutput};
use crate::kafka::KafkaSinkConfig;
use crate::nats::NatsSinkConfig;

/// A source whose configuration has been validated: building it cannot fail on configuration.
pub trait SourceSpec: Send + Sync {
    /// The schema of every batch the source emits.
    fn schema(&self) -> SchemaRef;
    /// The folder the source reads, so that validation can keep sinks out of it.
    fn watched_folder(&self) -> Option<PathBuf> {
        None
    }
    /// The folder the source's rejected rows go to (its `bad_records_path`), if any. The
    /// runtime adds a CSV file sink there, fed by the source's rejected rows, so that they
    /// commit with the epoch's good rows.
    fn bad_records_path(&self) -> Option<PathBuf> {
        None
    }
    /// One line for `weir graph`. It is also the component's identity in the checkpoint's
    /// pipeline fingerprint: a checkpoint written when it said something else is refused,
    /// so it should name what the state depends on (a folder, group keys), not settings
    /// that may change between runs.
    fn describe(&self) -> String;
    /// The running source.
    fn build(&self) -> Result<Box<dyn Source>>;
}

/// An operator whose configuration has been validated against its input schema.
pub trait OperatorSpec: Send + Sync {
    /// The schema of every batch the operator emits.
    fn output_schema(&self) -> SchemaRef;
    /// Whether the operator aggregates: Spark's output-mode rules depend on it.
    fn is_aggregate(&self) -> bool;
    /// For an aggregate: why a sink reading it may not use `append` mode, or `None` when it
    /// may (a windowed aggregate with a watermark emits each window once, when it is final).
    fn append_refusal(&self) -> Option<String> {
        Some(AGGREGATE_APPEND_REFUSAL.into())
    }
    /// One line for `weir graph`. It is also the component's identity in the checkpoint's
    /// pipeline fingerprint: a checkpoint written when it said something else is refused,
    /// so it should name what the state depends on (a folder, group keys), not settings
    /// that may change between runs.
    fn describe(&self) -> String;
    /// The running operator.
    fn build(&self) -> Result<Box<dyn Operator>>;
}

/// A sink whose configuration has been validated against its input schema and output mode.
pub trait SinkSpec: Send + Sync {
    /// The folder the sink writes, so that validation can refuse two sinks on one path.
    fn output_folder(&self) -> Option<PathBuf> {
        None
    }
    /// One line for `weir graph`.
    fn describe(&self) -> String;
    /// The running sink. May fail on the outside world (a folder that cannot be created).
    fn build(&self) -> Result<Box<dyn Sink>>;
    /// The running sink, told where the pipeline keeps its checkpoint: a sink that keeps
    /// files of its own until they are committed (the `channel` sink's spilled epochs) keeps
    /// them there. The default ignores it.
    fn build_in(&self, place: &SinkPlace) -> Result<Box<dyn Sink>> {
        let _ = place;
        self.build()
    }
}

/// Where a sink runs, for [`SinkSpec::build_in`].
#[derive(Debug, Clone, Default)]
pub struct SinkPlace {
    /// The pipeline's `checkpoint.path`, if it has one.
    pub checkpoint: Option<PathBuf>,
}

/// One component's table from the pipeline file, without the keys the runtime itself reads
/// (`type`, `input`, `output_mode`).
pub struct ComponentConfig {
    pub(crate) name: String,
    pub(crate) value: config::Value,
    /// For an operator: the watermarked event-time column of its input, if any.
    pub(crate) event_time: Option<EventTimeColumn>,
}

impl ComponentConfig {
    /// The component's name in the pipeline (`archive` for `[sinks.archive]`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// For an operator: the event-time column an upstream stage set a watermark on
    /// (`watermark = { column = "ts", delay = "10 minutes" }`), if it reaches this operator.
    /// Windows and `deduplicate` evict state by it.
    pub fn event_time(&self) -> Option<&EventTimeColumn> {
        self.event_time.as_ref()
    }

    /// Deserializes the table into the component's config type. Every unknown key is
    /// reported, not just the first; use `#[serde(deny_unknown_fields)]` on `T`.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, Vec<ConfigError>> {
        self.validate(Ok)
    }

    /// Deserializes the table and runs `validate` on it. Unknown keys do not stop validation,
    /// so a typo in one key does not hide a wrong value in another.
    pub fn validate<T: DeserializeOwned, S>(
        &self,
        validate: impl FnOnce(T) -> Result<S, Vec<ConfigError>>,
    ) -> Result<S, Vec<ConfigError>> {
        let (config, mut errors) = self.lenient::<T>();
        let Some(config) = config else {
            return Err(errors);
        };
        match validate(config) {
            Ok(spec) if errors.is_empty() => Ok(spec),
            Ok(_) => Err(errors),
            Err(more) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// The config with unknown keys left out, and an error for each of them (or for the
    /// first other problem, after which there is no config).
    fn lenient<T: DeserializeOwned>(&self) -> (Option<T>, Vec<ConfigError>) {
        // serde stops at the first unknown key; take each out and try again.
        let mut value = self.value.clone();
        let mut errors = Vec::new();
        loop {
            let message = match value.clone().try_deserialize::<T>() {
                Ok(config) => return (Some(config), errors),
                Err(e) => e.to_string(),
            };
            let unknown = message
                .strip_prefix("unknown field `")
                .and_then(|rest| rest.split_once('`'))
                .map(|(key, _)| key.to_string());
            let removed = match (&unknown, &mut value.kind) {
                (Some(key), config::ValueKind::Table(table)) => table.remove(key).is_some(),
                _ => false,
            };
            // config says where a type error is as a suffix; make it the key instead.
            let (text, key) = match message.rsplit_once(" for key `") {
                Some((text, key)) => (text.to_string(), key.trim_end_matches('`').to_string()),
                None => (message.clone(), unknown.unwrap_or_default()),
            };
            errors.push(ConfigError::new(key, clean_serde_message(&text)));
            if !removed {
                return (None, errors);
            }
        }
    }
}

/// serde and config quote keys with backticks and say "field"; Weir's messages say "key" and
/// use double quotes, as elsewhere.
pub(crate) fn clean_serde_message(message: &str) -> String {
    message
        .replace("unknown field", "unknown key")
        .replace('`', "\"")
}

type SourceFactory =
    Arc<dyn Fn(&ComponentConfig) -> Result<Box<dyn SourceSpec>, Vec<ConfigError>> + Send + Sync>;
type OperatorFactory = Arc<
    dyn Fn(&ComponentConfig, &SchemaRef) -> Result<Box<dyn OperatorSpec>, Vec<ConfigError>>
        + Send
        + Sync,
>;
type SinkFactory = Arc<
    dyn Fn(&ComponentConfig, &SchemaRef, OutputMode) -> Result<Box<dyn SinkSpec>, Vec<ConfigError>>
        + Send
        + Sync,
>;

/// Component types by their TOML `type`. [`Registry::default`] has the built-in ones; a user
/// crate adds its own with the `register_*` methods before loading a pipeline.
#[derive(Clone)]
pub struct Registry {
    sources: BTreeMap<String, SourceFactory>,
    operators: BTreeMap<String, OperatorFactory>,
    sinks: BTreeMap<String, SinkFactory>,
    channels: Channels,
}

impl Registry {
    /// A registry with no types at all.
    pub fn empty() -> Self {
        Registry {
            sources: BTreeMap::new(),
            operators: BTreeMap::new(),
            sinks: BTreeMap::new(),
            channels: Channels::new(),
        }
    }

    /// Adds a source type: `factory` validates a component's table into a [`SourceSpec`].
    pub fn register_source(
        &mut self,
        type_name: &str,
        factory: impl Fn(&ComponentConfig) -> Result<Box<dyn SourceSpec>, Vec<ConfigError>>
            + Send
            + Sync
            + 'static,
    ) {
        self.sources
            .insert(type_name.to_string(), Arc::new(factory));
    }

    /// Adds an operator type: `factory` validates a table against the input schema.
    pub fn register_operator(
        &mut self,
        type_name: &str,
        factory: impl Fn(&ComponentConfig, &SchemaRef) -> Result<Box<dyn OperatorSpec>, Vec<ConfigError>>
            + Send
            + Sync
            + 'static,
    ) {
        self.operators
            .insert(type_name.to_string(), Arc::new(factory));
    }

    /// Adds a sink type: `factory` validates a table against the input schema and output mode.
    pub fn register_sink(
        &mut self,
        type_name: &str,
        factory: impl Fn(
                &ComponentConfig,
                &SchemaRef,
                OutputMode,
            ) -> Result<Box<dyn SinkSpec>, Vec<ConfigError>>
            + Send
            + Sync
            + 'static,
    ) {
        self.sinks.insert(type_name.to_string(), Arc::new(factory));
    }

    /// Where `console` sinks print their tables: standard output unless changed. `weir run
    /// --json` sends them to standard error, so that standard output holds only JSON.
    pub fn set_console_output(
        &mut self,
        output: impl Fn() -> Box<dyn std::io::Write + Send> + Send + Sync + 'static,
    ) {
        let output = Arc::new(output);
        self.register_sink("console", move |table, _, _| {
            let output = output.clone();
            table.validate(|config: ConsoleSinkConfig| {
                Ok(Box::new(ConsoleSpec { config, output }) as Box<dyn SinkSpec>)
            })
        });
    }

    /// Makes `recipient` available to sinks of `type = "channel"` as `channel = "NAME"`:
    /// each committed epoch's rows are sent to it as an [`EpochOutput`]. See
    /// [`EpochOutput`] for what exactly-once means for such a sink.
    pub fn add_channel(&mut self, name: &str, recipient: Recipient<EpochOutput>) {
        self.channels.insert(name.to_string(), recipient);
        let channels = self.channels.clone();
        self.register_sink("channel", move |table, input, mode| {
            let name = table.name().to_string();
            table.validate(|config: ChannelSinkConfig| {
                let spec = channel::validate(config, &channels, input, mode)?;
                Ok(Box::new(spec.with_name(&name)) as Box<dyn SinkSpec>)
            })
        });
    }

    pub(crate) fn source(&self, type_name: &str) -> Result<&SourceFactory, String> {
        self.sources
            .get(type_name)
            .ok_or_else(|| unknown(type_name, self.sources.keys()))
    }

    pub(crate) fn operator(&self, type_name: &str) -> Result<&OperatorFactory, String> {
        self.operators
            .get(type_name)
            .ok_or_else(|| unknown(type_name, self.operators.keys()))
    }

    pub(crate) fn sink(&self, type_name: &str) -> Result<&SinkFactory, String> {
        self.sinks
            .get(type_name)
            .ok_or_else(|| unknown(type_name, self.sinks.keys()))
    }
}

fn unknown<'a>(type_name: &str, known: impl Iterator<Item = &'a String>) -> String {
    let known: Vec<_> = known.map(|k| format!("\"{k}\"")).collect();
    format!(
        "unknown type \"{type_name}\" (expected one of {})",
        known.join(", ")
    )
}

impl Default for Registry {
    fn default() -> Self {
        let mut registry = Registry::empty();
        for format in [Format::Csv, Format::Json] {
            registry.register_source(format.name(), move |table| {
                table.validate(|config: CsvSourceConfig| {
                    let config = CsvSourceConfig { format, ..config };
                    Ok(Box::new(config.validate()?) as Box<dyn SourceSpec>)
                })
            });
        }
        registry.register_source("kafka", |table| {
            table.validate(|config: KafkaSourceConfig| {
                Ok(Box::new(config.validate()?) as Box<dyn SourceSpec>)
            })
        });
        registry.register_source("nats", |table| {
            table.validate(|config: NatsSourceConfig| {
                Ok(Box::new(config.validate()?) as Box<dyn SourceSpec>)
            })
        });
        registry.register_operator("aggregate", |table, input| {
            let event_time = table.event_time().cloned();
            table.validate(|config: AggregateConfig| {
                #[cfg(feature = "expressions")]
                if let Some(windowed) = config.validate_windowed(input, event_time.as_ref())? {
                    return Ok(Box::new(BuiltIn {
                        describe: windowed.describe(),
                        aggregate: true,
                        append_refusal: windowed.append_refusal(),
                        schema: windowed.output_schema(),
                        settings: windowed,
                        build: |s| s.build(),
                    }) as Box<dyn OperatorSpec>);
                }
                let _ = &event_time;
                let settings = config.validate(input)?;
                Ok(BuiltIn::boxed(
                    settings.describe(),
                    true,
                    settings.output_schema(),
                    settings,
                    |s| Ok(Box::new(s.build()?)),
                ))
            })
        });
        registry.register_operator("deduplicate", |table, input| {
            let event_time = table.event_time().cloned();
            table.validate(|config: DeduplicateConfig| {
                let settings = config.validate(input, event_time.as_ref())?;
                Ok(BuiltIn::boxed(
                    settings.describe(),
                    false,
                    settings.output_schema(),
                    settings,
                    |s| Ok(Box::new(s.build()?)),
                ))
            })
        });
        #[cfg(feature = "expressions")]
        registry.register_operator("filter", |table, input| {
            table.validate(|config: FilterConfig| {
                let settings = config.validate(input)?;
                Ok(BuiltIn::boxed(
                    format!("where {}", settings.condition()),
                    false,
                    settings.output_schema(),
                    settings,
                    |s| Ok(Box::new(s.build())),
                ))
            })
        });
        #[cfg(feature = "expressions")]
        registry.register_operator("select", |table, input| {
            table.validate(|config: SelectConfig| {
                let settings = config.validate(input)?;
                Ok(BuiltIn::boxed(
                    format!("[{}]", settings.columns().join(", ")),
                    false,
                    settings.output_schema(),
                    settings,
                    |s| Ok(Box::new(s.build())),
                ))
            })
        });
        #[cfg(feature = "expressions")]
        registry.register_operator("sql", |table, input| {
            let event_time = table.event_time().cloned();
            table.validate(|config: SqlConfig| {
                let settings = config.validate(input, event_time.as_ref())?;
                Ok(Box::new(BuiltIn {
                    describe: settings.describe(),
                    aggregate: settings.is_aggregate(),
                    append_refusal: settings.append_refusal(),
                    schema: settings.output_schema(),
                    settings,
                    build: |s| Ok(Box::new(s.build()?)),
                }) as Box<dyn OperatorSpec>)
            })
        });
        registry.set_console_output(|| Box::new(std::io::stdout()));
        // Known without a recipient, so that a pipeline file using it says what is missing.
        let none = Channels::new();
        registry.register_sink("channel", move |table, input, mode| {
            table.validate(|config: ChannelSinkConfig| {
                let spec = channel::validate(config, &none, input, mode)?;
                Ok(Box::new(spec.with_name(table.name())) as Box<dyn SinkSpec>)
            })
        });
        registry.register_sink("kafka", |table, input, mode| {
            table.validate(|config: KafkaSinkConfig| {
                Ok(Box::new(config.validate(table.name(), input, mode)?) as Box<dyn SinkSpec>)
            })
        });
        registry.register_sink("nats", |table, input, mode| {
            table.validate(|config: NatsSinkConfig| {
                Ok(Box::new(config.validate(table.name(), input, mode)?) as Box<dyn SinkSpec>)
            })
        });
        for format in [FileFormat::Parquet, FileFormat::Csv, FileFormat::Json] {
            registry.register_sink(format.extension(), move |table, input, mode| {
                table.validate(|config: FileSinkConfig| {
                    Ok(Box::new(config.validate(format, input, mode)?) as Box<dyn SinkSpec>)
                })
            });
        }
        registry
    }
}

impl SourceSpec for CsvSourceSettings {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn watched_folder(&self) -> Option<PathBuf> {
        Some(self.location.root())
    }
    fn bad_records_path(&self) -> Option<PathBuf> {
        self.bad_records_path.clone()
    }
    fn describe(&self) -> String {
        format!("{}", self.location.root().display())
    }
    fn build(&self) -> Result<Box<dyn Source>> {
        Ok(Box::new(CsvSourceSettings::build(self)))
    }
}

impl SourceSpec for KafkaSourceSettings {
    fn schema(&self) -> SchemaRef {
        KafkaSourceSettings::schema(self)
    }
    fn bad_records_path(&self) -> Option<PathBuf> {
        KafkaSourceSettings::bad_records_path(self)
    }
    fn describe(&self) -> String {
        // The topics decide what the offsets mean; the brokers' addresses do not.
        KafkaSourceSettings::describe(self)
    }
    fn build(&self) -> Result<Box<dyn Source>> {
        Ok(Box::new(KafkaSourceSettings::build(self)?))
    }
}

impl SourceSpec for NatsSourceSettings {
    fn schema(&self) -> SchemaRef {
        NatsSourceSettings::schema(self)
    }
    fn bad_records_path(&self) -> Option<PathBuf> {
        NatsSourceSettings::bad_records_path(self)
    }
    fn describe(&self) -> String {
        // The stream and the filter decide what the position means; the servers do not.
        match &self.subject {
            Some(subject) => format!("nats stream {} subject {subject}", self.stream),
            None => format!("nats stream {}", self.stream),
        }
    }
    fn build(&self) -> Result<Box<dyn Source>> {
        Ok(Box::new(NatsSourceSettings::build(self)?))
    }
}

/// A built-in operator's validated settings, with what `weir graph` and the fingerprint say
/// of it.
struct BuiltIn<S> {
    describe: String,
    aggregate: bool,
    /// For aggregates: why `append` is refused; `None` for windows with a watermark.
    append_refusal: Option<String>,
    schema: SchemaRef,
    settings: S,
    build: fn(&S) -> Result<Box<dyn Operator>>,
}

impl<S: Send + Sync + 'static> BuiltIn<S> {
    fn boxed(
        describe: String,
        aggregate: bool,
        schema: SchemaRef,
        settings: S,
        build: fn(&S) -> Result<Box<dyn Operator>>,
    ) -> Box<dyn OperatorSpec> {
        Box::new(BuiltIn {
            describe,
            aggregate,
            append_refusal: Some(AGGREGATE_APPEND_REFUSAL.into()),
            schema,
            settings,
            build,
        })
    }
}

impl<S: Send + Sync> OperatorSpec for BuiltIn<S> {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn is_aggregate(&self) -> bool {
        self.aggregate
    }
    fn append_refusal(&self) -> Option<String> {
        self.append_refusal.clone()
    }
    fn describe(&self) -> String {
        self.describe.clone()
    }
    fn build(&self) -> Result<Box<dyn Operator>> {
        (self.build)(&self.settings)
    }
}

type ConsoleOutput = Arc<dyn Fn() -> Box<dyn std::io::Write + Send> + Send + Sync>;

struct ConsoleSpec {
    config: ConsoleSinkConfig,
    output: ConsoleOutput,
}

impl SinkSpec for ConsoleSpec {
    fn describe(&self) -> String {
        format!("standard output, {} rows per epoch", self.config.num_rows)
    }
    fn build(&self) -> Result<Box<dyn Sink>> {
        Ok(Box::new(self.config.build((self.output)())))
    }
}

impl SinkSpec for FileSinkSettings {
    fn output_folder(&self) -> Option<PathBuf> {
        Some(self.dir.clone())
    }
    fn describe(&self) -> String {
        format!("{}", self.dir.display())
    }
    fn build(&self) -> Result<Box<dyn Sink>> {
        Ok(Box::new(FileSinkSettings::build(self)?))
    }
}
