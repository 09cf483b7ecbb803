//! `type = "filter"`: Spark's `df.filter("...")` / `where`.

use arrow_array::cast::AsArray;
use arrow_array::RecordBatch;
use arrow_schema::{DataType, SchemaRef};
use arrow_select::filter::filter_record_batch;
use serde::Deserialize;
use weir_core::{ConfigError, Error, Operator, Result};
use weir_expr::{check_condition, Expression};

/// The `type = "filter"` operator as written in the pipeline file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The condition a row must meet to pass, as Spark writes it:
    /// `"Sale_Count > 0 AND Shop LIKE 'Shop_0%'"`. Rows where it is NULL are dropped.
    pub condition: String,
}

impl FilterConfig {
    /// Plans the condition against the input schema.
    pub fn validate(&self, input: &SchemaRef) -> Result<FilterSettings, Vec<ConfigError>> {
        let condition = Expression::plan(&self.condition, input)
            .and_then(|c| check_condition(&c).map(|()| c))
            .map_err(|e| vec![ConfigError::new("condition", e.message)])?;
        Ok(FilterSettings {
            condition,
            schema: input.clone(),
        })
    }
}

/// A validated [`FilterConfig`], bound to its input schema.
#[derive(Debug, Clone)]
pub struct FilterSettings {
    condition: Expression,
    schema: SchemaRef,
}

impl FilterSettings {
    /// A filter passes its input's columns through unchanged.
    pub fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The condition as written.
    pub fn condition(&self) -> &str {
        self.condition.text()
    }

    /// The running filter.
    pub fn build(&self) -> Filter {
        Filter {
            condition: self.condition.clone(),
            schema: self.schema.clone(),
        }
    }
}

/// Keeps the rows whose condition is true.
pub struct Filter {
    condition: Expression,
    schema: SchemaRef,
}

impl Filter {
    /// The rows of `batch` whose condition is true (not false, not NULL).
    pub fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch> {
        let mask = self
            .condition
            .evaluate(batch)
            .map_err(|e| Error::Input(e.to_string()))?;
        if mask.data_type() == &DataType::Null {
            // A condition that is NULL for every row (`WHERE NULL`) passes nothing.
            return Ok(batch.slice(0, 0));
        }
        let Some(mask) = mask.as_boolean_opt() else {
            return Err(Error::Internal(format!(
                "the filter condition \"{}\" gave {} values",
                self.condition.text(),
                mask.data_type()
            )));
        };
        // Arrow's filter drops rows where the mask is NULL, as Spark does.
        filter_record_batch(batch, mask).map_err(|e| Error::arrow("filter", e))
    }
}

impl Operator for Filter {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn process(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let out = self.apply(&batch)?;
        Ok((out.num_rows() > 0).then_some(out))
    }
}
