//! One aggregate as written in an aggregate stage: `sum(price * qty) AS revenue`.

use arrow_schema::SchemaRef;
use sqlparser::ast::{self, DuplicateTreatment, FunctionArg, FunctionArgExpr, FunctionArguments};

use crate::planner::{parse_item, plan_ast};
use crate::{ExprError, Expression};

/// The aggregate functions Weir computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFunction {
    /// `sum(x)`
    Sum,
    /// `try_sum(x)`: as `sum`, but NULL for a group whose sum overflows
    TrySum,
    /// `count(*)`, `count(1)` or `count(x)` (rows where `x` is not null)
    Count,
    /// `min(x)`
    Min,
    /// `max(x)`
    Max,
    /// `avg(x)`, also spelled `mean(x)`
    Avg,
}

const EXPECTED: &str = "sum(x), try_sum(x), count(*), count(x), min(x), max(x), avg(x), where x is an expression, optionally followed by `AS name`";

/// A planned aggregate: the function, its argument planned against the input schema, and the
/// output column's name.
#[derive(Debug, Clone)]
pub struct AggregateCall {
    /// Which function.
    pub function: AggregateFunction,
    /// The argument; `None` for `count(*)`.
    pub argument: Option<Expression>,
    /// The output column's name: the alias, or Spark's (`sum(Sale_Count)`, `count(1)`,
    /// `sum((price * qty))`).
    pub name: String,
}

impl AggregateCall {
    /// Plans `text` against the aggregate's input schema.
    pub fn plan(text: &str, schema: &SchemaRef) -> Result<AggregateCall, ExprError> {
        let (expr, alias) = parse_item(text)?;
        let not_aggregate = || {
            ExprError::new(format!(
                "\"{text}\" is not an aggregate (expected one of {EXPECTED})"
            ))
        };
        let Some(ast::Expr::Function(call)) = expr else {
            return Err(not_aggregate());
        };
        let written = call.name.to_string();
        let function = match written.to_lowercase().as_str() {
            "sum" => AggregateFunction::Sum,
            "try_sum" => AggregateFunction::TrySum,
            "count" => AggregateFunction::Count,
            "min" => AggregateFunction::Min,
            "max" => AggregateFunction::Max,
            "avg" | "mean" => AggregateFunction::Avg,
            other => {
                return Err(ExprError::new(format!(
                "unknown aggregate function \"{other}\" in \"{text}\" (expected one of {EXPECTED})"
            )))
            }
        };
        if call.over.is_some() {
            return Err(ExprError::new(format!(
                "\"{text}\": OVER (...) window functions are not supported on a stream"
            )));
        }
        if call.filter.is_some() {
            return Err(ExprError::new(format!(
                "\"{text}\": FILTER (WHERE ...) is not supported; filter the rows in a filter stage first"
            )));
        }
        let FunctionArguments::List(list) = &call.args else {
            return Err(not_aggregate());
        };
        if list.duplicate_treatment == Some(DuplicateTreatment::Distinct) {
            return Err(ExprError::new(format!(
                "\"{text}\": DISTINCT aggregates are not supported on a stream (they would keep every distinct value forever)"
            )));
        }
        let function_name = written.to_lowercase();
        let argument = match list.args.as_slice() {
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)]
                if function == AggregateFunction::Count =>
            {
                None
            }
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(ast::Expr::Value(v)))]
                if function == AggregateFunction::Count
                    && matches!(&v.value, ast::Value::Number(n, _) if n == "1") =>
            {
                None
            }
            [FunctionArg::Unnamed(FunctionArgExpr::Wildcard)] => {
                return Err(ExprError::new(format!("\"{text}\": only count takes `*`")))
            }
            [FunctionArg::Unnamed(FunctionArgExpr::Expr(arg))] => {
                let arg_text = arg.to_string();
                Some(plan_ast(arg.clone(), None, &arg_text, schema, None)?)
            }
            _ => {
                return Err(ExprError::new(format!(
                    "\"{text}\": {function_name} takes one argument"
                )))
            }
        };
        let name = alias.unwrap_or_else(|| match &argument {
            None => "count(1)".into(),
            Some(arg) => format!("{function_name}({})", arg.name()),
        });
        Ok(AggregateCall {
            function,
            argument,
            name,
        })
    }
}
