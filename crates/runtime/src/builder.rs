//! Pipelines built in code, with the vocabulary of the pipeline file.

use actix::Recipient;
use weir_core::OutputMode;

use crate::channel::EpochOutput;
use crate::{ConfigErrors, PipelineSpec, Registry};

/// One component's table: its `type` and its keys, exactly as in a pipeline file.
///
/// ```
/// use weir::Component;
///
/// let sales = Component::new("csv")
///     .set("path", "data/stream_read")
///     .set("schema", "File STRING, Shop STRING, Sale_Count INT")
///     .set("header", true)
///     .set("sep", ";");
/// # let _ = sales;
/// ```
#[derive(Debug, Clone)]
pub struct Component {
    table: toml::Table,
}

impl Component {
    /// A component of the registered type `type_name` (`csv`, `aggregate`, `parquet`, ...).
    pub fn new(type_name: &str) -> Self {
        let mut table = toml::Table::new();
        table.insert("type".into(), type_name.into());
        Component { table }
    }

    /// Sets a key, as `key = value` in the component's table would.
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.table.insert(key.to_string(), value.into());
        self
    }

    /// `input = "NAME"`: the source or operator this operator or sink reads.
    pub fn input(self, name: &str) -> Self {
        self.set("input", name)
    }

    /// `output_mode = "..."` of a sink.
    pub fn output_mode(self, mode: OutputMode) -> Self {
        self.set("output_mode", mode.as_str())
    }

    /// A `filter` operator reading `input`: the rows where `condition` is true.
    pub fn filter(input: &str, condition: &str) -> Self {
        Component::new("filter")
            .input(input)
            .set("condition", condition)
    }

    /// A `select` operator reading `input`: one output column per expression
    /// (`"upper(Shop) AS shop"`), `"*"` for every input column.
    pub fn select(input: &str, columns: &[&str]) -> Self {
        Component::new("select")
            .input(input)
            .set("columns", columns.to_vec())
    }

    /// An `aggregate` operator reading `input`, grouped by `group_by` (columns or
    /// expressions) and computing `aggregates` (`"sum(price * qty) AS revenue"`).
    pub fn aggregate(input: &str, group_by: &[&str], aggregates: &[&str]) -> Self {
        Component::new("aggregate")
            .input(input)
            .set("group_by", group_by.to_vec())
            .set("aggregates", aggregates.to_vec())
    }

    /// A `sql` operator: `query` reads the source or operator its `FROM` names.
    pub fn sql(query: &str) -> Self {
        Component::new("sql").set("query", query)
    }

    /// `watermark = { column, delay }` on a source or operator: Spark's
    /// `withWatermark(column, delay)`, with `delay` an interval such as `"10 minutes"`.
    pub fn watermark(self, column: &str, delay: &str) -> Self {
        let mut table = toml::Table::new();
        table.insert("column".into(), column.into());
        table.insert("delay".into(), delay.into());
        self.set("watermark", table)
    }

    /// A `deduplicate` operator reading `input`: each value of `columns` passes once.
    pub fn deduplicate(input: &str, columns: &[&str]) -> Self {
        Component::new("deduplicate")
            .input(input)
            .set("columns", columns.to_vec())
    }
}

/// Builds a pipeline in code. Everything goes through the same validation as a pipeline
/// file, so errors name the same keys (`sources.sales.schema`) and say the same things.
/// As with a file, `WEIR_…__…` environment variables (`WEIR_SINKS__ARCHIVE__PATH`) override
/// keys, so an operator can redirect an embedded pipeline without a rebuild.
///
/// ```
/// use weir::{Component, OutputMode, PipelineBuilder};
///
/// let spec = PipelineBuilder::new("shop_sales")
///     .set("trigger.available_now", true)
///     .source(
///         "sales",
///         Component::new("csv")
///             .set("path", "data/stream_read")
///             .set("schema", "File STRING, Shop STRING, Sale_Count INT"),
///     )
///     .operator(
///         "by_shop",
///         Component::new("aggregate")
///             .input("sales")
///             .set("group_by", vec!["Shop"])
///             .set("aggregates", vec!["sum(Sale_Count)"]),
///     )
///     .sink(
///         "display",
///         Component::new("console").input("by_shop").output_mode(OutputMode::Complete),
///     )
///     .build()
///     .unwrap();
/// assert_eq!(spec.name, "shop_sales");
/// ```
pub struct PipelineBuilder {
    name: String,
    root: toml::Table,
    registry: Registry,
}

impl PipelineBuilder {
    /// An empty pipeline called `name`, with the built-in component types.
    pub fn new(name: &str) -> Self {
        PipelineBuilder {
            name: name.to_string(),
            root: toml::Table::new(),
            registry: Registry::default(),
        }
    }

    /// Uses `registry` for component types, custom ones included. Channels added with
    /// [`PipelineBuilder::channel_sink`] are added to it.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// Sets a top-level key by its dotted path, as in the pipeline file:
    /// `checkpoint.path`, `checkpoint.interval`, `trigger.available_now`, ...
    pub fn set(mut self, path: &str, value: impl Into<toml::Value>) -> Self {
        let mut table = &mut self.root;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                table.insert(part.to_string(), value.into());
                break;
            }
            let entry = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            match entry {
                toml::Value::Table(inner) => table = inner,
                // Just made a table above.
                _ => break,
            }
        }
        self
    }

    /// Adds `[sources.NAME]`.
    pub fn source(self, name: &str, component: Component) -> Self {
        self.component("sources", name, component)
    }

    /// Adds `[operators.NAME]`.
    pub fn operator(self, name: &str, component: Component) -> Self {
        self.component("operators", name, component)
    }

    /// Adds `[sinks.NAME]`.
    pub fn sink(self, name: &str, component: Component) -> Self {
        self.component("sinks", name, component)
    }

    /// Adds a sink that delivers each committed epoch's rows of `input` to `recipient`, an
    /// actor of the caller's, as [`EpochOutput`] messages.
    pub fn channel_sink(
        mut self,
        name: &str,
        input: &str,
        mode: OutputMode,
        recipient: Recipient<EpochOutput>,
    ) -> Self {
        let channel = format!("builder.{name}");
        self.registry.add_channel(&channel, recipient);
        self.sink(
            name,
            Component::new("channel")
                .input(input)
                .output_mode(mode)
                .set("channel", channel),
        )
    }

    fn component(mut self, section: &str, name: &str, component: Component) -> Self {
        let entry = self
            .root
            .entry(section.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if let toml::Value::Table(components) = entry {
            components.insert(name.to_string(), toml::Value::Table(component.table));
        }
        self
    }

    /// The pipeline as TOML: what a pipeline file for it would say.
    pub fn to_toml(&self) -> String {
        let mut root = self.root.clone();
        root.entry("name")
            .or_insert_with(|| self.name.clone().into());
        // A table of strings, numbers, booleans and arrays always serializes.
        toml::to_string(&root).unwrap_or_default()
    }

    /// Validates the pipeline: every error at once, each with its key.
    pub fn build(self) -> Result<PipelineSpec, ConfigErrors> {
        let file = format!("pipeline {:?} (built in code)", self.name);
        PipelineSpec::from_toml(&self.to_toml(), &file, &self.name, &[], &self.registry)
    }
}
