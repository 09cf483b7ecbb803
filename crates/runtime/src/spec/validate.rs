//! Validation of a pipeline file: every key of every table checked, and every error
//! reported at once, before anything runs.

use super::topology::Graph;
use super::*;

pub(super) struct Validator<'a> {
    registry: &'a Registry,
    default_name: &'a str,
    errors: Vec<ConfigError>,
}

/// A component's table split into the keys the runtime reads and the rest.
pub(super) struct RawComponent {
    key: String,
    type_name: Option<String>,
    /// The names in `input`.
    pub(super) inputs: Vec<String>,
    output_mode: Option<String>,
    /// `watermark = {...}` of a source or operator, validated once its schema is known.
    watermark: Option<Value>,
    rest: ComponentConfig,
}

impl<'a> Validator<'a> {
    pub(super) fn new(registry: &'a Registry, default_name: &'a str) -> Self {
        Validator {
            registry,
            default_name,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError::new(key, message));
    }

    fn nested(&mut self, prefix: &str, errors: Vec<ConfigError>) {
        for e in errors {
            let key = if e.key.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{}", e.key)
            };
            self.errors.push(ConfigError::new(key, e.message));
        }
    }

    pub(super) fn run(
        mut self,
        mut root: BTreeMap<String, Value>,
    ) -> Result<PipelineSpec, Vec<ConfigError>> {
        for key in root.keys() {
            if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
                let message = format!(
                    "unknown key (expected one of {})",
                    quoted(TOP_LEVEL_KEYS.iter())
                );
                self.errors.push(ConfigError::new(key.clone(), message));
            }
        }
        let name = match root.remove("name").map(Value::into_string) {
            None => self.default_name.to_string(),
            Some(Ok(name)) => name,
            Some(Err(e)) => {
                self.error("name", clean_serde_message(&e.to_string()));
                String::new()
            }
        };
        let checkpoint = self.checkpoint(root.remove("checkpoint"));
        let trigger = self.trigger(root.remove("trigger"), checkpoint.interval);
        let http = self.http(root.remove("http"));

        let sources = self.components("sources", root.remove("sources"), false);
        let operators = self.components("operators", root.remove("operators"), true);
        let sinks = self.components("sinks", root.remove("sinks"), true);
        if sources.is_empty() {
            self.error("sources", "a pipeline needs at least one source, for example [sources.sales] with type = \"csv\"");
        }
        if sinks.is_empty() {
            self.error("sinks", "a pipeline needs at least one sink, for example [sinks.display] with type = \"console\"");
        }
        self.unique_names(&sources, &operators, &sinks);

        let source_nodes = self.sources(&sources);
        let graph = Graph::new(&sources, &operators);
        let (operator_nodes, operator_order) = self.operators(&operators, &source_nodes, &graph);
        let mut sink_nodes = self.sinks(&sinks, &source_nodes, &operator_nodes, &graph);
        self.bad_record_sinks(&source_nodes, &mut sink_nodes);
        self.unused(&sources, &operators, &sinks);
        self.paths(&source_nodes, &sink_nodes, &checkpoint);

        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        // Every operator was validated, so none is missing.
        let operators = operator_nodes.into_iter().flatten().collect();
        Ok(PipelineSpec {
            name,
            checkpoint,
            trigger,
            http,
            sources: source_nodes.into_iter().flatten().collect(),
            operators,
            operator_order,
            sinks: sink_nodes,
        })
    }

    fn checkpoint(&mut self, value: Option<Value>) -> CheckpointSettings {
        let mut settings = CheckpointSettings {
            path: None,
            interval: Duration::from_secs(1),
            retain: 3,
            timeout: Duration::from_secs(600),
            fall_back: false,
        };
        let Some(value) = value else { return settings };
        let config: CheckpointConfig = match value.try_deserialize() {
            Ok(c) => c,
            Err(e) => {
                self.error("checkpoint", clean_serde_message(&e.to_string()));
                return settings;
            }
        };
        settings.path = config.path.map(PathBuf::from);
        settings.fall_back = config.fall_back.unwrap_or(false);
        for (key, text, slot) in [
            (
                "checkpoint.interval",
                config.interval,
                &mut settings.interval,
            ),
            ("checkpoint.timeout", config.timeout, &mut settings.timeout),
        ] {
            if let Some(text) = text {
                match parse_duration(&text) {
                    Ok(d) => *slot = d,
                    Err(e) => self.errors.push(ConfigError::new(key, e)),
                }
            }
        }
        match config.retain {
            Some(n) if n < 1 => self.error(
                "checkpoint.retain",
                format!("{n} is not allowed (expected at least 1)"),
            ),
            Some(n) => settings.retain = n as usize,
            None => {}
        }
        settings
    }

    fn http(&mut self, value: Option<Value>) -> HttpSettings {
        let Some(value) = value else {
            return HttpSettings::default();
        };
        let config: HttpConfig = match value.try_deserialize() {
            Ok(c) => c,
            Err(e) => {
                self.error("http", clean_serde_message(&e.to_string()));
                return HttpSettings::default();
            }
        };
        let bind = config.bind.and_then(|text| match bind_address(&text) {
            Some(address) => Some(address),
            None => {
                let message = format!("\"{text}\" is not an address and port (expected for example \"127.0.0.1:9180\", or \"9180\" for that port on loopback, or \"0.0.0.0:9180\" to listen on every interface)");
                self.error("http.bind", message);
                None
            }
        });
        if bind.is_some() && !cfg!(feature = "http") {
            self.error(
                "http.bind",
                "this build of weir has no HTTP server (the `http` feature of the weir crate is off)",
            );
        }
        HttpSettings { bind }
    }

    fn trigger(&mut self, value: Option<Value>, interval: Duration) -> Trigger {
        let continuous = Trigger::Continuous { interval };
        let Some(value) = value else {
            return continuous;
        };
        let config: TriggerConfig = match value.try_deserialize() {
            Ok(c) => c,
            Err(e) => {
                self.error("trigger", clean_serde_message(&e.to_string()));
                return continuous;
            }
        };
        let mut chosen = Vec::new();
        if let Some(text) = &config.processing_time {
            match parse_duration(text) {
                Ok(interval) => {
                    chosen.push(("processing_time", Trigger::ProcessingTime { interval }))
                }
                Err(e) => self.error("trigger.processing_time", e),
            }
        }
        if config.once == Some(true) {
            chosen.push(("once", Trigger::Once));
        }
        if config.available_now == Some(true) {
            chosen.push(("available_now", Trigger::AvailableNow));
        }
        match chosen.as_slice() {
            [] => continuous,
            [(_, trigger)] => *trigger,
            several => {
                let names: Vec<_> = several.iter().map(|(n, _)| *n).collect();
                self.error(
                    "trigger",
                    format!(
                        "set one of processing_time, once, available_now, not {}",
                        names.join(" and ")
                    ),
                );
                continuous
            }
        }
    }

    fn components(
        &mut self,
        section: &str,
        value: Option<Value>,
        has_input: bool,
    ) -> Vec<(String, RawComponent)> {
        let Some(value) = value else {
            return Vec::new();
        };
        let table = match value.into_table() {
            Ok(t) => t,
            Err(_) => {
                self.error(
                    section,
                    format!("must be a table of named components, like [{section}.name]"),
                );
                return Vec::new();
            }
        };
        let mut out = Vec::new();
        let mut names: Vec<_> = table.into_iter().collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, value) in names {
            let key = format!("{section}.{name}");
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                self.error(
                    key.clone(),
                    "a component name may hold only letters, digits, `_` and `-`",
                );
                continue;
            }
            let mut table = match value.into_table() {
                Ok(t) => t,
                Err(_) => {
                    self.error(key, "must be a table");
                    continue;
                }
            };
            let type_name = match table.remove("type").map(Value::into_string) {
                Some(Ok(t)) => Some(t),
                Some(Err(_)) => {
                    self.error(format!("{key}.type"), "must be a string");
                    None
                }
                None => {
                    self.error(
                        format!("{key}.type"),
                        "missing (every component names its type)",
                    );
                    None
                }
            };
            let from_query = sql_input(type_name.as_deref(), &table, &key, &mut self.errors);
            let inputs = if let Some(inputs) = from_query {
                inputs
            } else if has_input {
                match table.remove("input") {
                    None => {
                        self.error(
                            format!("{key}.input"),
                            "missing (name the source or operator this reads)",
                        );
                        Vec::new()
                    }
                    Some(v) => match input_names(v) {
                        Ok(names) => names,
                        Err(message) => {
                            self.error(format!("{key}.input"), message);
                            Vec::new()
                        }
                    },
                }
            } else {
                Vec::new()
            };
            let output_mode = if section == "sinks" {
                match table.remove("output_mode").map(Value::into_string) {
                    Some(Ok(m)) => Some(m),
                    Some(Err(_)) => {
                        self.error(format!("{key}.output_mode"), "must be a string");
                        None
                    }
                    None => None,
                }
            } else {
                None
            };
            let watermark = match section {
                "sinks" => None,
                _ => table.remove("watermark"),
            };
            let rest = ComponentConfig {
                name: name.clone(),
                value: Value::new(None, ValueKind::Table(table)),
                event_time: None,
            };
            out.push((
                name,
                RawComponent {
                    key,
                    type_name,
                    inputs,
                    output_mode,
                    watermark,
                    rest,
                },
            ));
        }
        out
    }

    /// Validates a component's `watermark` against the schema of what it outputs.
    fn watermark(&mut self, c: &RawComponent, schema: &SchemaRef) -> Option<WatermarkSpec> {
        let value = c.watermark.clone()?;
        let key = format!("{}.watermark", c.key);
        let config = match value.try_deserialize::<WatermarkConfig>() {
            Ok(config) => config,
            Err(e) => {
                let message = clean_serde_message(&e.to_string());
                self.error(key, format!("{message} (expected watermark = {{ column = \"ts\", delay = \"10 minutes\" }})"));
                return None;
            }
        };
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let Some(index) = find_column(schema, &config.column) else {
            self.error(
                format!("{key}.column"),
                format!(
                    "\"{}\" is not a column here (the columns are {})",
                    config.column,
                    names.join(", ")
                ),
            );
            return None;
        };
        let field = schema.field(index);
        if !is_event_time_type(field.data_type()) {
            self.error(
                format!("{key}.column"),
                format!(
                    "\"{}\" is {}, but a watermark needs a TIMESTAMP or DATE column",
                    field.name(),
                    ddl_type_name(field.data_type())
                ),
            );
            return None;
        }
        match parse_interval(&config.delay) {
            Ok(delay_us) => Some(WatermarkSpec {
                column: field.name().clone(),
                index,
                delay_us,
            }),
            Err(message) => {
                self.error(format!("{key}.delay"), message);
                None
            }
        }
    }

    fn unique_names(
        &mut self,
        sources: &[(String, RawComponent)],
        operators: &[(String, RawComponent)],
        sinks: &[(String, RawComponent)],
    ) {
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (section, list) in [
            ("sources", sources),
            ("operators", operators),
            ("sinks", sinks),
        ] {
            for (name, _) in list {
                if let Some(first) = seen.insert(name, section) {
                    self.error(
                        format!("{section}.{name}"),
                        format!("the name \"{name}\" is also used in [{first}]; inputs refer to components by name, so names must be unique"),
                    );
                }
            }
        }
    }

    fn sources(&mut self, sources: &[(String, RawComponent)]) -> Vec<Option<SourceNode>> {
        sources
            .iter()
            .map(|(name, c)| {
                let type_name = c.type_name.as_ref()?;
                let built = match self.registry.source(type_name) {
                    Ok(factory) => factory(&c.rest),
                    Err(message) => {
                        self.error(format!("{}.type", c.key), message);
                        return None;
                    }
                };
                match built {
                    Ok(spec) => Some(SourceNode {
                        name: name.clone(),
                        type_name: type_name.clone(),
                        watermark: self.watermark(c, &spec.schema()),
                        spec,
                    }),
                    Err(errors) => {
                        self.nested(&c.key, errors);
                        None
                    }
                }
            })
            .collect()
    }

    /// Resolves the input names of a component; `None` if any is unknown or not yet valid.
    fn resolve(
        &mut self,
        c: &RawComponent,
        graph: &Graph,
        schema_of: impl Fn(Upstream) -> Option<SchemaRef>,
    ) -> Option<(Vec<Upstream>, SchemaRef)> {
        let mut upstream = Vec::new();
        let mut schemas = Vec::new();
        let mut complete = true;
        for input in &c.inputs {
            match graph.lookup(input) {
                Some(up) => {
                    upstream.push(up);
                    match schema_of(up) {
                        Some(s) => schemas.push((input, s)),
                        None => complete = false,
                    }
                }
                None => {
                    self.error(
                        format!("{}.input", c.key),
                        format!(
                            "\"{input}\" names no source or operator (known: {})",
                            graph.known()
                        ),
                    );
                    complete = false;
                }
            }
        }
        if !complete || schemas.is_empty() {
            return None;
        }
        let (first_name, first) = schemas[0].clone();
        for (name, schema) in &schemas[1..] {
            if schema.fields() != first.fields() {
                self.error(
                    format!("{}.input", c.key),
                    format!("\"{name}\" and \"{first_name}\" have different columns; inputs read together must have the same schema"),
                );
                return None;
            }
        }
        Some((upstream, first))
    }

    fn operators(
        &mut self,
        operators: &[(String, RawComponent)],
        sources: &[Option<SourceNode>],
        graph: &Graph,
    ) -> (Vec<Option<OperatorNode>>, Vec<usize>) {
        let order = match graph.topological_order() {
            Ok(order) => order,
            Err(cycle) => {
                self.error(
                    format!("operators.{}.input", cycle[0]),
                    format!("the operators form a cycle: {}", cycle.join(" -> ")),
                );
                return (Vec::new(), Vec::new());
            }
        };
        // Built in dependency order, stored by index so that Upstream::Operator(i) stays valid.
        let mut nodes: Vec<Option<OperatorNode>> = (0..operators.len()).map(|_| None).collect();
        for &index in &order {
            let (name, c) = &operators[index];
            let Some(type_name) = &c.type_name else {
                continue;
            };
            let resolved = self.resolve(c, graph, |up| match up {
                Upstream::Source(i) => sources.get(i)?.as_ref().map(|s| s.spec.schema()),
                Upstream::Operator(i) => nodes.get(i)?.as_ref().map(|o| o.spec.output_schema()),
                Upstream::BadRecords(_) => Some(bad_records_schema()),
            });
            let factory = match self.registry.operator(type_name) {
                Ok(f) => f.clone(),
                Err(message) => {
                    self.error(format!("{}.type", c.key), message);
                    continue;
                }
            };
            let Some((inputs, schema)) = resolved else {
                continue;
            };
            let input_event_time = inputs.iter().find_map(|up| match up {
                Upstream::Source(i) => sources
                    .get(*i)?
                    .as_ref()?
                    .watermark
                    .as_ref()
                    .map(WatermarkSpec::event_time),
                Upstream::Operator(i) => nodes.get(*i)?.as_ref()?.event_time.clone(),
                Upstream::BadRecords(_) => None,
            });
            let config = ComponentConfig {
                name: c.rest.name.clone(),
                value: c.rest.value.clone(),
                event_time: input_event_time.clone(),
            };
            match factory(&config, &schema) {
                Ok(spec) => {
                    let output = spec.output_schema();
                    let watermark = self.watermark(c, &output);
                    // The input's event time flows on while its column does.
                    let event_time =
                        watermark
                            .as_ref()
                            .map(WatermarkSpec::event_time)
                            .or_else(|| {
                                input_event_time
                                    .filter(|e| output.column_with_name(&e.column).is_some())
                            });
                    if spec.is_aggregate() && aggregated(&inputs, &nodes) {
                        self.error(
                            c.key.clone(),
                            "reads the output of another aggregate; like Spark, Weir supports one streaming aggregation per path",
                        );
                        continue;
                    }
                    nodes[index] = Some(OperatorNode {
                        name: name.clone(),
                        type_name: type_name.clone(),
                        inputs,
                        spec,
                        watermark,
                        event_time,
                    });
                }
                Err(errors) => self.nested(&c.key, errors),
            }
        }
        (nodes, order)
    }

    fn sinks(
        &mut self,
        sinks: &[(String, RawComponent)],
        sources: &[Option<SourceNode>],
        operators: &[Option<OperatorNode>],
        graph: &Graph,
    ) -> Vec<SinkNode> {
        let mut nodes = Vec::new();
        for (name, c) in sinks {
            let mode = match c.output_mode.as_deref().unwrap_or("append") {
                "append" => Some(OutputMode::Append),
                "complete" => Some(OutputMode::Complete),
                "update" => Some(OutputMode::Update),
                other => {
                    self.error(
                        format!("{}.output_mode", c.key),
                        format!("unknown output mode \"{other}\" (expected \"append\", \"complete\" or \"update\")"),
                    );
                    None
                }
            };
            let factory = match c.type_name.as_deref().map(|t| self.registry.sink(t)) {
                Some(Ok(f)) => Some(f.clone()),
                Some(Err(message)) => {
                    self.error(format!("{}.type", c.key), message);
                    None
                }
                None => None,
            };
            let resolved = self.resolve(c, graph, |up| match up {
                Upstream::Source(i) => sources.get(i)?.as_ref().map(|s| s.spec.schema()),
                Upstream::Operator(i) => operators.get(i)?.as_ref().map(|o| o.spec.output_schema()),
                Upstream::BadRecords(_) => Some(bad_records_schema()),
            });
            let (Some(mode), Some(factory), Some((inputs, schema))) = (mode, factory, resolved)
            else {
                continue;
            };
            // Spark's rules (design.md §3): aggregates have no append unless they are windows
            // with a watermark, and only aggregates have a "whole result table" to complete.
            let aggregate = aggregate_of(&inputs, operators);
            let refusal = aggregate.and_then(|op| op.spec.append_refusal());
            let allowed: &[OutputMode] = match (aggregate, &refusal) {
                (Some(_), Some(_)) => &[OutputMode::Complete, OutputMode::Update],
                (Some(_), None) => &[OutputMode::Append, OutputMode::Complete, OutputMode::Update],
                (None, _) => &[OutputMode::Append, OutputMode::Update],
            };
            if !allowed.contains(&mode) {
                let what = match refusal {
                    Some(why) => why,
                    None => {
                        "reads a stream without aggregation, which has no result table to complete"
                            .into()
                    }
                };
                let allowed: Vec<_> = allowed.iter().map(|m| format!("\"{m}\"")).collect();
                self.error(
                    format!("{}.output_mode", c.key),
                    format!(
                        "\"{mode}\" is not allowed: sink \"{name}\" {what} (allowed: {})",
                        allowed.join(", ")
                    ),
                );
                continue;
            }
            match factory(&c.rest, &schema, mode) {
                Ok(spec) => nodes.push(SinkNode {
                    name: name.clone(),
                    type_name: c.type_name.clone().unwrap_or_default(),
                    inputs,
                    mode,
                    spec,
                    path_key: format!("{}.path", c.key),
                }),
                Err(errors) => self.nested(&c.key, errors),
            }
        }
        nodes
    }

    /// A CSV file sink for every source with a `bad_records_path`, fed by the rows it
    /// rejects. It is a sink like any other, so its files commit with the epoch's checkpoint.
    fn bad_record_sinks(&mut self, sources: &[Option<SourceNode>], sinks: &mut Vec<SinkNode>) {
        for (i, source) in sources.iter().enumerate() {
            let Some(source) = source else { continue };
            let Some(path) = source.spec.bad_records_path() else {
                continue;
            };
            let key = format!("sources.{}.bad_records_path", source.name);
            let config = FileSinkConfig {
                path: path.display().to_string(),
                header: Some(true),
                ..FileSinkConfig::default()
            };
            match config.validate(SinkFormat::Csv, &bad_records_schema(), OutputMode::Append) {
                Ok(spec) => sinks.push(SinkNode {
                    name: format!("{}.bad_records", source.name),
                    type_name: "csv".into(),
                    inputs: vec![Upstream::BadRecords(i)],
                    mode: OutputMode::Append,
                    spec: Box::new(spec),
                    path_key: key,
                }),
                Err(errors) => {
                    for e in errors {
                        self.error(key.clone(), e.message);
                    }
                }
            }
        }
    }

    fn unused(
        &mut self,
        sources: &[(String, RawComponent)],
        operators: &[(String, RawComponent)],
        sinks: &[(String, RawComponent)],
    ) {
        let known: BTreeSet<&str> = sources
            .iter()
            .chain(operators)
            .map(|(n, _)| n.as_str())
            .collect();
        let inputs = || {
            operators
                .iter()
                .chain(sinks)
                .flat_map(|(_, c)| c.inputs.iter())
        };
        // A misspelt input is the likely reason; that error is already there.
        if inputs().any(|i| !known.contains(i.as_str())) {
            return;
        }
        let read: BTreeSet<&str> = operators
            .iter()
            .chain(sinks)
            .flat_map(|(_, c)| c.inputs.iter().map(String::as_str))
            .collect();
        for (name, c) in sources.iter().chain(operators) {
            if !read.contains(name.as_str()) {
                self.error(c.key.clone(), "nothing reads this component's output (name it in some sink's or operator's input)");
            }
        }
    }

    fn paths(
        &mut self,
        sources: &[Option<SourceNode>],
        sinks: &[SinkNode],
        checkpoint: &CheckpointSettings,
    ) {
        let mut claimed: Vec<(PathBuf, &str)> = Vec::new();
        for sink in sinks {
            let Some(folder) = sink.spec.output_folder() else {
                continue;
            };
            let folder = normalize(&folder);
            let key = sink.path_key.clone();
            if let Some((_, other)) = claimed.iter().find(|(p, _)| p == &folder) {
                self.error(key.clone(), format!("sink \"{other}\" writes to the same folder; two sinks on one path would mix their files"));
            }
            for source in sources.iter().flatten() {
                if let Some(watched) = source.spec.watched_folder() {
                    if folder.starts_with(normalize(&watched)) {
                        self.error(
                            key.clone(),
                            format!("is inside the folder source \"{}\" reads, which would read this sink's output again", source.name),
                        );
                    }
                }
            }
            if let Some(state) = &checkpoint.path {
                let state = normalize(state);
                if folder.starts_with(&state) || state.starts_with(&folder) {
                    self.error(
                        key.clone(),
                        "overlaps checkpoint.path; output and checkpoint state must live apart",
                    );
                }
            }
            claimed.push((folder, &sink.name));
        }
    }
}

/// Whether any of `inputs` is, or reads from, an aggregate.
fn aggregated(inputs: &[Upstream], operators: &[Option<OperatorNode>]) -> bool {
    aggregate_of(inputs, operators).is_some()
}

/// The aggregate that any of `inputs` is or reads from (a path has at most one).
fn aggregate_of<'a>(
    inputs: &[Upstream],
    operators: &'a [Option<OperatorNode>],
) -> Option<&'a OperatorNode> {
    inputs.iter().find_map(|up| match up {
        Upstream::Source(_) | Upstream::BadRecords(_) => None,
        Upstream::Operator(i) => {
            let op = operators.get(*i)?.as_ref()?;
            match op.spec.is_aggregate() {
                true => Some(op),
                false => aggregate_of(&op.inputs, operators),
            }
        }
    })
}

/// Lexical normalisation, so that `./out` and `out/` compare equal; no file system access,
/// because output folders need not exist yet.
fn normalize(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn input_names(value: Value) -> Result<Vec<String>, String> {
    let expected = "expected a component name or a list of names";
    match value.kind {
        ValueKind::String(s) => Ok(vec![s]),
        ValueKind::Array(items) if !items.is_empty() => items
            .into_iter()
            .map(|v| v.into_string().map_err(|_| expected.to_string()))
            .collect(),
        _ => Err(expected.into()),
    }
}

fn quoted<'a>(items: impl Iterator<Item = &'a &'a str>) -> String {
    items
        .map(|k| format!("\"{k}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A sql operator names its input in its query's FROM; `input` may say it too. `None` for
/// every other component, or when `input` is given.
#[cfg(feature = "expressions")]
fn sql_input(
    type_name: Option<&str>,
    table: &config::Map<String, Value>,
    key: &str,
    errors: &mut Vec<ConfigError>,
) -> Option<Vec<String>> {
    if type_name != Some("sql") || table.contains_key("input") {
        return None;
    }
    let query = table.get("query")?.clone().into_string().ok()?;
    match weir_operators::SqlConfig::input_of(&query) {
        Ok(input) => Some(vec![input]),
        Err(message) => {
            errors.push(ConfigError::new(format!("{key}.query"), message));
            Some(Vec::new())
        }
    }
}

#[cfg(not(feature = "expressions"))]
fn sql_input(
    _type_name: Option<&str>,
    _table: &config::Map<String, Value>,
    _key: &str,
    _errors: &mut Vec<ConfigError>,
) -> Option<Vec<String>> {
    None
}
