//! `type = "sql"`: a `SELECT` over one input, planned into Weir's own filter, aggregate and
//! select (never run by DataFusion: Weir owns state, barriers and checkpoints).

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use serde::Deserialize;
use weir_core::{
    ConfigError, Epoch, EventTimeColumn, Operator, OutputMode, Result, StageSnapshot, StateEntries,
};
use weir_expr::QueryPlan;

use crate::{
    AggregateConfig, AggregateSettings, Filter, FilterConfig, FilterSettings, Select, SelectConfig,
    SelectSettings, WindowedSettings,
};

/// The `type = "sql"` operator as written in the pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlConfig {
    /// One `SELECT ... FROM input [WHERE ...] [GROUP BY ...] [HAVING ...]`, where `input`
    /// names a source or operator of the pipeline (then the operator needs no `input` key).
    pub query: String,
}

impl SqlConfig {
    /// The source or operator the query reads (its `FROM`).
    pub fn input_of(query: &str) -> Result<String, String> {
        QueryPlan::input_of(query).map_err(|e| e.message)
    }

    /// Plans the query into stages, each validated as its TOML form would be. `event_time`
    /// is the watermarked column of the input, for a `GROUP BY window(...)`.
    pub fn validate(
        &self,
        input: &SchemaRef,
        event_time: Option<&EventTimeColumn>,
    ) -> Result<SqlSettings, Vec<ConfigError>> {
        let error = |message: String| vec![ConfigError::new("query", message)];
        let plan = QueryPlan::plan(&self.query, input).map_err(|e| error(e.message))?;
        let in_stage = |stage: &str, errors: Vec<ConfigError>| -> Vec<ConfigError> {
            errors
                .into_iter()
                .map(|e| ConfigError::new("query", format!("{stage}: {}", e.message)))
                .collect()
        };
        let mut stages = Vec::new();
        let mut schema = input.clone();
        if let Some(condition) = &plan.filter {
            let filter = FilterConfig {
                condition: condition.clone(),
            }
            .validate(&schema)
            .map_err(|e| in_stage("WHERE", e))?;
            stages.push(Stage::Filter(filter));
        }
        if let Some((group_by, aggregates)) = &plan.aggregate {
            let config = AggregateConfig {
                group_by: group_by.clone(),
                aggregates: aggregates.clone(),
            };
            let windowed = config
                .validate_windowed(&schema, event_time)
                .map_err(|e| in_stage("GROUP BY", e))?;
            let aggregate = match windowed {
                Some(windowed) => AggregateStage::Windowed(Box::new(windowed)),
                None => AggregateStage::Plain(Box::new(
                    config
                        .validate(&schema)
                        .map_err(|e| in_stage("GROUP BY", e))?,
                )),
            };
            schema = match &aggregate {
                AggregateStage::Plain(a) => a.output_schema(),
                AggregateStage::Windowed(w) => w.output_schema(),
            };
            stages.push(Stage::Aggregate(aggregate));
        }
        if let Some(condition) = &plan.having {
            let filter = FilterConfig {
                condition: condition.clone(),
            }
            .validate(&schema)
            .map_err(|e| in_stage("HAVING", e))?;
            stages.push(Stage::Filter(filter));
        }
        if let Some(columns) = &plan.select {
            let select = SelectConfig {
                columns: columns.clone(),
            }
            .validate(&schema)
            .map_err(|e| in_stage("SELECT", e))?;
            schema = select.output_schema();
            stages.push(Stage::Select(select));
        }
        Ok(SqlSettings { stages, schema })
    }
}

#[derive(Debug, Clone)]
enum Stage {
    Filter(FilterSettings),
    Aggregate(AggregateStage),
    Select(SelectSettings),
}

/// The query's aggregate: over windows when a GROUP BY key is one. Boxed: the settings are
/// several times a filter's.
#[derive(Debug, Clone)]
enum AggregateStage {
    Plain(Box<AggregateSettings>),
    Windowed(Box<WindowedSettings>),
}

/// A validated [`SqlConfig`]: the stages it was planned into.
#[derive(Debug, Clone)]
pub struct SqlSettings {
    stages: Vec<Stage>,
    schema: SchemaRef,
}

impl SqlSettings {
    /// The schema of the query's result.
    pub fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Whether the query aggregates (Spark's output-mode rules depend on it).
    pub fn is_aggregate(&self) -> bool {
        self.stages.iter().any(|s| matches!(s, Stage::Aggregate(_)))
    }

    /// For an aggregating query: why a sink reading it may not use `append` mode; `None`
    /// for a window over the watermarked column.
    pub fn append_refusal(&self) -> Option<String> {
        self.stages.iter().find_map(|s| match s {
            Stage::Aggregate(AggregateStage::Windowed(w)) => Some(w.append_refusal()),
            Stage::Aggregate(AggregateStage::Plain(_)) => {
                Some(Some(crate::AGGREGATE_APPEND_REFUSAL.into()))
            }
            _ => None,
        })?
    }

    /// The stages, one line each, as `weir graph` shows them.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .stages
            .iter()
            .map(|stage| match stage {
                Stage::Filter(f) => format!("filter {}", f.condition()),
                Stage::Aggregate(AggregateStage::Plain(a)) => format!("aggregate {}", a.describe()),
                Stage::Aggregate(AggregateStage::Windowed(w)) => {
                    format!("aggregate {}", w.describe())
                }
                Stage::Select(s) => format!("select [{}]", s.columns().join(", ")),
            })
            .collect();
        parts.join(" -> ")
    }

    /// The running query: its stages chained in one operator.
    pub fn build(&self) -> Result<SqlOperator> {
        let mut operator = SqlOperator {
            before: Vec::new(),
            aggregate: None,
            after: Vec::new(),
            schema: self.schema.clone(),
        };
        for stage in &self.stages {
            let row_stage = match stage {
                Stage::Aggregate(AggregateStage::Plain(a)) => {
                    operator.aggregate = Some(Box::new(a.build()?));
                    continue;
                }
                Stage::Aggregate(AggregateStage::Windowed(w)) => {
                    operator.aggregate = Some(w.build()?);
                    continue;
                }
                Stage::Filter(f) => RowStage::Filter(f.build()),
                Stage::Select(s) => RowStage::Select(s.build()),
            };
            match operator.aggregate {
                None => operator.before.push(row_stage),
                Some(_) => operator.after.push(row_stage),
            }
        }
        Ok(operator)
    }
}

enum RowStage {
    Filter(Filter),
    Select(Select),
}

impl RowStage {
    fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        match self {
            RowStage::Filter(f) => f.apply(batch),
            RowStage::Select(s) => s.apply(batch),
        }
    }
}

fn run(stages: &[RowStage], mut batch: RecordBatch) -> Result<Option<RecordBatch>> {
    for stage in stages {
        batch = stage.apply(&batch)?;
        if batch.num_rows() == 0 {
            return Ok(None);
        }
    }
    Ok(Some(batch))
}

/// A `sql` operator running: the row stages before its aggregate, the aggregate (whose state
/// is the operator's checkpoint state), and the row stages applied to what it emits.
pub struct SqlOperator {
    before: Vec<RowStage>,
    aggregate: Option<Box<dyn Operator>>,
    after: Vec<RowStage>,
    schema: SchemaRef,
}

impl Operator for SqlOperator {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let Some(batch) = run(&self.before, batch)? else {
            return Ok(None);
        };
        match &mut self.aggregate {
            Some(aggregate) => aggregate.process(batch),
            None => Ok(Some(batch)),
        }
    }

    fn emit(&mut self, mode: OutputMode) -> Result<Option<RecordBatch>> {
        let Some(aggregate) = &mut self.aggregate else {
            return Ok(None);
        };
        match aggregate.emit(mode)? {
            Some(batch) => run(&self.after, batch),
            None => Ok(None),
        }
    }

    fn snapshot(&mut self, epoch: Epoch) -> Result<StageSnapshot> {
        match &mut self.aggregate {
            Some(aggregate) => aggregate.snapshot(epoch),
            None => Ok(StageSnapshot::default()),
        }
    }

    fn end_epoch(&mut self, epoch: Epoch) -> Result<()> {
        match &mut self.aggregate {
            Some(aggregate) => aggregate.end_epoch(epoch),
            None => Ok(()),
        }
    }

    fn restore(&mut self, state: StateEntries) -> Result<()> {
        match &mut self.aggregate {
            Some(aggregate) => aggregate.restore(state),
            None => Ok(()),
        }
    }

    fn advance_watermark(&mut self, watermark_ms: i64) -> Result<()> {
        match &mut self.aggregate {
            Some(aggregate) => aggregate.advance_watermark(watermark_ms),
            None => Ok(()),
        }
    }

    fn take_late_rows(&mut self) -> u64 {
        self.aggregate.as_mut().map_or(0, |a| a.take_late_rows())
    }
}
