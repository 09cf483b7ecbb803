//! Built without the `expressions` feature: group keys and aggregate arguments are plain
//! column names, resolved as Spark resolves them, and nothing links DataFusion. The API is
//! the part of `weir-expr`'s that the aggregate uses.

use std::fmt;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{FieldRef, SchemaRef};

const NEEDS_FEATURE: &str =
    "expressions need weir's `expressions` cargo feature (this build has only plain column names)";

/// Why a column or aggregate cannot be planned.
#[derive(Debug, Clone)]
pub(crate) struct ExprError {
    pub(crate) message: String,
}

/// Never produced: a column is always there. Kept for the aggregate's one code path.
#[derive(Debug)]
pub(crate) struct EvalError(String);

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A plain column reference, with an optional alias.
#[derive(Debug, Clone)]
pub(crate) struct Expression {
    field: FieldRef,
    column: usize,
}

fn error(message: String) -> ExprError {
    ExprError { message }
}

/// `text AS alias` (or `text alias`-less): the text and the alias.
fn split_alias(text: &str) -> (&str, Option<String>) {
    let lower = text.to_ascii_lowercase();
    match lower.rfind(" as ") {
        Some(at) => (
            text[..at].trim(),
            Some(
                text[at + 4..]
                    .trim()
                    .trim_matches('`')
                    .trim_matches('"')
                    .to_string(),
            ),
        ),
        None => (text.trim(), None),
    }
}

impl Expression {
    pub(crate) fn plan(text: &str, schema: &SchemaRef) -> Result<Expression, ExprError> {
        let (column, alias) = split_alias(text);
        let name = column.trim_matches('`').trim_matches('"');
        let fields = schema.fields();
        let index = fields.iter().position(|f| f.name() == name).or_else(|| {
            let matches: Vec<usize> = (0..fields.len())
                .filter(|&i| fields[i].name().eq_ignore_ascii_case(name))
                .collect();
            (matches.len() == 1).then(|| matches[0])
        });
        let Some(index) = index else {
            let names: Vec<&str> = fields.iter().map(|f| f.name().as_str()).collect();
            let what = match name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                true => format!(
                    "unknown column \"{name}\" (the input has {})",
                    names.join(", ")
                ),
                false => format!("\"{text}\" is not a column name: {NEEDS_FEATURE}"),
            };
            return Err(error(what));
        };
        let field = fields[index].as_ref().clone();
        let field = match alias {
            Some(alias) => field.with_name(alias),
            None => field,
        };
        Ok(Expression {
            field: Arc::new(field),
            column: index,
        })
    }

    pub(crate) fn name(&self) -> &str {
        self.field.name()
    }

    pub(crate) fn field(&self) -> &FieldRef {
        &self.field
    }

    pub(crate) fn column(&self) -> Option<usize> {
        Some(self.column)
    }

    pub(crate) fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, EvalError> {
        Ok(batch.column(self.column).clone())
    }
}

/// The aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggregateFunction {
    Sum,
    TrySum,
    Count,
    Min,
    Max,
    Avg,
}

/// `func(column) [AS alias]`.
pub(crate) struct AggregateCall {
    pub(crate) function: AggregateFunction,
    pub(crate) argument: Option<Expression>,
    pub(crate) name: String,
}

impl AggregateCall {
    pub(crate) fn plan(text: &str, schema: &SchemaRef) -> Result<AggregateCall, ExprError> {
        let expected = || {
            error(format!(
                "\"{text}\" is not an aggregate (expected one of sum(c), try_sum(c), count(*), count(c), min(c), max(c), avg(c), optionally followed by `AS name`)"
            ))
        };
        let (call, alias) = match split_alias(text) {
            (call, alias) if call.ends_with(')') => (call, alias),
            _ => (text.trim(), None),
        };
        let open = call.find('(').ok_or_else(expected)?;
        let inner = call[open + 1..]
            .strip_suffix(')')
            .ok_or_else(expected)?
            .trim();
        let written = call[..open].trim().to_ascii_lowercase();
        let function = match written.as_str() {
            "sum" => AggregateFunction::Sum,
            "try_sum" => AggregateFunction::TrySum,
            "count" => AggregateFunction::Count,
            "min" => AggregateFunction::Min,
            "max" => AggregateFunction::Max,
            "avg" | "mean" => AggregateFunction::Avg,
            other => {
                return Err(error(format!(
                    "unknown aggregate function \"{other}\" in \"{text}\""
                )))
            }
        };
        if function == AggregateFunction::Count && (inner == "*" || inner == "1") {
            return Ok(AggregateCall {
                function,
                argument: None,
                name: alias.unwrap_or_else(|| "count(1)".into()),
            });
        }
        let argument = Expression::plan(inner, schema)?;
        let name = alias.unwrap_or_else(|| format!("{written}({})", argument.name()));
        Ok(AggregateCall {
            function,
            argument: Some(argument),
            name,
        })
    }
}
