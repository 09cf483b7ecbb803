//! `type = "select"`: Spark's `selectExpr(...)`.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_schema::SchemaRef;
use serde::Deserialize;
use weir_core::{ConfigError, Error, Operator, Result};
use weir_expr::{output_schema, Expression};

/// The `type = "select"` operator as written in the pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelectConfig {
    /// The output columns, each an expression with an optional alias, as in Spark's
    /// `selectExpr`: `["Shop", "Sale_Count * 2 AS doubled", "upper(Shop) AS shop"]`.
    /// `"*"` stands for every input column, in order.
    pub columns: Vec<String>,
}

impl SelectConfig {
    /// Plans every column against the input schema, reporting each problem.
    pub fn validate(&self, input: &SchemaRef) -> Result<SelectSettings, Vec<ConfigError>> {
        let mut errors = Vec::new();
        let mut columns = Vec::new();
        if self.columns.is_empty() {
            errors.push(ConfigError::new(
                "columns",
                "needs at least one column (\"*\" keeps every input column)",
            ));
        }
        for (i, text) in self.columns.iter().enumerate() {
            if text.trim() == "*" {
                for field in input.fields() {
                    let quoted = format!("\"{}\"", field.name().replace('"', "\"\""));
                    match Expression::plan(&quoted, input) {
                        Ok(e) => columns.push(e),
                        Err(e) => errors.push(ConfigError::new(format!("columns[{i}]"), e.message)),
                    }
                }
                continue;
            }
            match Expression::plan(text, input) {
                Ok(e) => columns.push(e),
                Err(e) => errors.push(ConfigError::new(format!("columns[{i}]"), e.message)),
            }
        }
        let mut names = HashSet::new();
        for column in &columns {
            if !names.insert(column.name().to_lowercase()) {
                errors.push(ConfigError::new(
                    "columns",
                    format!(
                        "two output columns are named \"{}\" (names are compared ignoring case, as Spark does; rename one with `AS`)",
                        column.name()
                    ),
                ));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SelectSettings {
            output: Arc::new(output_schema(&columns)),
            columns,
        })
    }
}

/// A validated [`SelectConfig`], bound to its input schema.
#[derive(Debug, Clone)]
pub struct SelectSettings {
    columns: Vec<Expression>,
    output: SchemaRef,
}

impl SelectSettings {
    /// The output columns: names as written or as Spark names them, types as computed.
    pub fn output_schema(&self) -> SchemaRef {
        self.output.clone()
    }

    /// The columns as written (with `*` expanded).
    pub fn columns(&self) -> Vec<&str> {
        self.columns.iter().map(|c| c.text()).collect()
    }

    /// The running select.
    pub fn build(&self) -> Select {
        Select {
            settings: self.clone(),
        }
    }
}

/// Computes each output column of every row.
pub struct Select {
    settings: SelectSettings,
}

impl Select {
    /// `batch` with the select's columns.
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let columns = self
            .settings
            .columns
            .iter()
            .map(|c| c.evaluate(batch).map_err(|e| Error::Input(e.to_string())))
            .collect::<Result<Vec<_>>>()?;
        // The row count is explicit so that a select of only literals keeps every row.
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(self.settings.output.clone(), columns, &options)
            .map_err(|e| Error::arrow("select", e))
    }
}

impl Operator for Select {
    fn output_schema(&self) -> SchemaRef {
        self.settings.output.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        self.apply(&batch).map(Some)
    }
}
