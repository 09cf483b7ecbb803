//! Text to a planned, evaluable [`Expression`]: sqlparser parses, Weir resolves names as Spark
//! does, DataFusion's `SqlToRel` plans, its type coercion casts, and its physical planner
//! builds what evaluates a batch.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, FieldRef, Schema, SchemaRef, TimeUnit};
use datafusion_common::config::ConfigOptions;
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{plan_err, DFSchema, DataFusionError, ScalarValue, TableReference};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::planner::{ContextProvider, ExprPlanner, TypePlanner};
use datafusion_expr::simplify::SimplifyContext;
use datafusion_expr::{
    AggregateUDF, BinaryExpr, Expr, ExprSchemable, HigherOrderUDF, Operator, ScalarUDF,
    TableSource, WindowUDF,
};
use datafusion_optimizer::analyzer::type_coercion::TypeCoercionRewriter;
use datafusion_optimizer::simplify_expressions::ExprSimplifier;
use datafusion_physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion_sql::planner::{ParserOptions, PlannerContext, SqlToRel};
use sqlparser::ast::{self, SelectItem};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::Token;

use crate::ast::{prepare, spark_name};
use crate::spark::{ArithmeticOp, SparkArithmetic, SparkDivide};
use weir_core::{ddl_type_name as type_name, UTC};

use crate::{EvalError, ExprError};

/// The aggregate functions Weir computes itself (in its aggregate stage), by their SQL names.
pub const AGGREGATE_FUNCTIONS: &[&str] = &["sum", "count", "min", "max", "avg", "mean"];

/// A planned expression, bound to the schema it was planned against: a name, a type and
/// what evaluates it on a batch of that schema.
#[derive(Debug, Clone)]
pub struct Expression {
    text: String,
    field: FieldRef,
    physical: Arc<dyn PhysicalExpr>,
    column: Option<usize>,
}

impl Expression {
    /// Plans `text`, an expression with an optional alias (`"Sale_Count * 2 AS doubled"`,
    /// Spark's `selectExpr` form), against `schema`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow_schema::{DataType, Field, Schema};
    /// use weir_expr::Expression;
    ///
    /// let schema = Arc::new(Schema::new(vec![Field::new("Sale_Count", DataType::Int32, true)]));
    /// let doubled = Expression::plan("sale_count * 2", &schema).unwrap();
    /// assert_eq!(doubled.name(), "(Sale_Count * 2)");
    /// assert_eq!(doubled.field().data_type(), &DataType::Int32);
    /// ```
    pub fn plan(text: &str, schema: &SchemaRef) -> Result<Expression, ExprError> {
        Self::plan_in(text, schema, None)
    }

    /// [`Expression::plan`], where columns may also be qualified by `table` (`sales.Shop`).
    pub fn plan_in(
        text: &str,
        schema: &SchemaRef,
        table: Option<&str>,
    ) -> Result<Expression, ExprError> {
        let (expr, alias) = parse_item(text)?;
        let Some(expr) = expr else {
            return Err(ExprError::new(format!(
                "\"{text}\": `*` stands for every column only in a select's column list"
            )));
        };
        plan_ast(expr, alias, text, schema, table)
    }

    /// The output column's name: the alias, or the name Spark gives the expression.
    pub fn name(&self) -> &str {
        self.field.name()
    }

    /// The expression as written, alias included.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The output column: name, type and whether it may be null.
    pub fn field(&self) -> &FieldRef {
        &self.field
    }

    /// The input column this expression is, when it is a bare column reference: such an
    /// expression costs nothing to evaluate.
    pub fn column(&self) -> Option<usize> {
        self.column
    }

    /// The same expression under another output name.
    pub fn renamed(mut self, name: &str) -> Expression {
        self.field = Arc::new(self.field.as_ref().clone().with_name(name));
        self
    }

    /// Evaluates the expression on `batch`, which must have the schema it was planned
    /// against: one value per row.
    pub fn evaluate(&self, batch: &RecordBatch) -> Result<ArrayRef, EvalError> {
        if let Some(column) = self.column {
            return Ok(batch.column(column).clone());
        }
        let fail = |reason: String| EvalError {
            expression: self.text.clone(),
            reason,
        };
        let array = self
            .physical
            .evaluate(batch)
            .and_then(|value| value.into_array(batch.num_rows()))
            .map_err(|e| fail(clean_message(&e)))?;
        if array.data_type() == self.field.data_type() {
            return Ok(array);
        }
        // DataFusion may answer in a view or large type; Weir's columns are the plain ones.
        arrow_cast::cast(&array, self.field.data_type()).map_err(|e| fail(e.to_string()))
    }
}

/// Parses a select item: an expression with an optional alias, or `*` (then `None`).
pub(crate) fn parse_item(text: &str) -> Result<(Option<ast::Expr>, Option<String>), ExprError> {
    let dialect = GenericDialect {};
    let mut parser = Parser::new(&dialect)
        .try_with_sql(text)
        .map_err(|e| parse_error(text, &e.to_string()))?;
    let item = parser
        .parse_select_item()
        .map_err(|e| parse_error(text, &e.to_string()))?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        let column = next.span.start.column as usize;
        return Err(ExprError {
            message: format!(
                "cannot parse \"{text}\" at character {column}: expected the end of the expression, found \"{}\"",
                next.token
            ),
            position: Some(column),
        });
    }
    match item {
        SelectItem::UnnamedExpr(expr) => Ok((Some(expr), None)),
        SelectItem::ExprWithAlias { expr, alias } => Ok((Some(expr), Some(alias.value))),
        SelectItem::Wildcard(_) => Ok((None, None)),
        other => Err(ExprError::new(format!(
            "\"{text}\": \"{other}\" is not supported (expected an expression, optionally with `AS name`)"
        ))),
    }
}

/// sqlparser says where it stopped as "at Line: 1, Column: 7"; Weir says "at character 7".
pub(crate) fn parse_error(text: &str, error: &str) -> ExprError {
    let error = error
        .trim_start_matches("sql parser error: ")
        .trim_start_matches("sql tokenizer error: ");
    let (reason, position) = match error.rsplit_once(" at Line: ") {
        Some((reason, place)) => {
            let column = place
                .split_once("Column: ")
                .and_then(|(_, c)| c.trim().parse::<usize>().ok());
            (reason, column)
        }
        // At the end of the input sqlparser names no place: it is just past the last
        // character.
        None if error.contains("found: EOF") => (error, Some(text.chars().count() + 1)),
        None => (error, None),
    };
    let reason = reason.replace("found: EOF", "found the end of the expression");
    let message = match position {
        Some(column) => format!("cannot parse \"{text}\" at character {column}: {reason}"),
        None => format!("cannot parse \"{text}\": {reason}"),
    };
    ExprError { message, position }
}

/// Plans a parsed expression; `text` is what the user wrote, for messages.
pub(crate) fn plan_ast(
    mut expr: ast::Expr,
    alias: Option<String>,
    text: &str,
    schema: &SchemaRef,
    table: Option<&str>,
) -> Result<Expression, ExprError> {
    refuse_unstreamable(&expr, text)?;
    prepare(&mut expr, schema, table, text)?;
    let name = alias.unwrap_or_else(|| spark_name(&expr));
    let column = match &expr {
        ast::Expr::Identifier(ident) => schema.index_of(&ident.value).ok(),
        _ => None,
    };
    let context = context();
    let df_schema = DFSchema::try_from(schema.as_ref().clone())
        .map_err(|e| ExprError::new(format!("\"{text}\": {}", clean_message(&e))))?;
    let options = ParserOptions::new()
        .with_enable_ident_normalization(false)
        .with_map_string_types_to_utf8view(false);
    let planner = SqlToRel::new_with_options(context, options);
    let planned = planner
        .sql_to_expr(expr, &df_schema, &mut PlannerContext::new())
        .and_then(spark_literals)
        .and_then(|e| spark_division(e, &df_schema))
        .and_then(|e| e.rewrite(&mut TypeCoercionRewriter::new(&df_schema)))
        .map(|t| t.data)
        .and_then(|e| checked_arithmetic(e, &df_schema))
        // Some of DataFusion's functions (coalesce, nvl) exist only in simplified form.
        .and_then(|e| {
            let context = SimplifyContext::builder()
                .with_schema(Arc::new(df_schema.clone()))
                .build();
            ExprSimplifier::new(context).simplify(e)
        })
        .map_err(|e| ExprError::new(format!("\"{text}\": {}", clean_message(&e))))?;
    let (_, field) = planned
        .to_field(&df_schema)
        .map_err(|e| ExprError::new(format!("\"{text}\": {}", clean_message(&e))))?;
    let physical = create_physical_expr(
        &planned,
        &df_schema,
        &ExecutionProps::new(),
        &PhysicalPlanningContext::default(),
    )
    .map_err(|e| ExprError::new(format!("\"{text}\": {}", clean_message(&e))))?;
    let data_type = plain_type(field.data_type());
    let nullable = field.is_nullable();
    Ok(Expression {
        text: text.to_string(),
        field: Arc::new(Field::new(name, data_type, nullable)),
        physical,
        column,
    })
}

/// What a stream stage cannot compute row by row: aggregates (they belong in an aggregate
/// stage), window functions and subqueries.
fn refuse_unstreamable(expr: &ast::Expr, text: &str) -> Result<(), ExprError> {
    use std::ops::ControlFlow;
    let mut problem = None;
    let _ = ast::visit_expressions(expr, |e| {
        let found = match e {
            ast::Expr::Function(f) if f.over.is_some() => Some(format!(
                "the window function \"{e}\" is not supported on a stream (OVER needs the whole input; group by window(...) instead)"
            )),
            ast::Expr::Function(f) => {
                let name = f.name.to_string().to_lowercase();
                AGGREGATE_FUNCTIONS.contains(&name.as_str()).then(|| {
                    format!("\"{e}\" is an aggregate; it belongs in an aggregate's `aggregates` (or a sql query's GROUP BY)")
                })
            }
            ast::Expr::Subquery(_) | ast::Expr::Exists { .. } | ast::Expr::InSubquery { .. } => {
                Some(format!(
                    "the subquery \"{e}\" is not supported on a stream (each row is computed on its own)"
                ))
            }
            _ => None,
        };
        match found {
            Some(message) => {
                problem = Some(message);
                ControlFlow::Break(())
            }
            None => ControlFlow::Continue(()),
        }
    });
    match problem {
        Some(message) => Err(ExprError::new(format!("\"{text}\": {message}"))),
        None => Ok(()),
    }
}

/// Spark's `/` is fractional: `7 / 2` is 3.5, and a zero divisor is an error (ANSI mode, Spark
/// 4's default). Integer and floating-point divisions become [`SparkDivide`]; DECIMAL
/// divisions stay DataFusion's, which already refuse a zero divisor.
fn spark_division(expr: Expr, schema: &DFSchema) -> datafusion_common::Result<Expr> {
    let divide = Arc::new(ScalarUDF::new_from_impl(SparkDivide::new()));
    expr.transform_up(|e| {
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Divide,
            right,
        }) = &e
        else {
            return Ok(Transformed::no(e));
        };
        let decimal = |side: &Expr| {
            side.get_type(schema)
                .map(|t| matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)))
        };
        if decimal(left)? || decimal(right)? {
            return Ok(Transformed::no(e));
        }
        let call = divide.call(vec![left.as_ref().clone(), right.as_ref().clone()]);
        Ok(Transformed::yes(call))
    })
    .map(|t| t.data)
}

/// Spark's integer literals are INT when they fit, BIGINT otherwise; DataFusion's are all
/// BIGINT, which would make `Sale_Count * 2` a BIGINT where Spark keeps INT.
fn spark_literals(expr: Expr) -> datafusion_common::Result<Expr> {
    expr.transform_up(|e| match e {
        Expr::Literal(ScalarValue::Int64(Some(v)), metadata) if i32::try_from(v).is_ok() => {
            let v = v as i32;
            Ok(Transformed::yes(Expr::Literal(
                ScalarValue::Int32(Some(v)),
                metadata,
            )))
        }
        other => Ok(Transformed::no(other)),
    })
    .map(|t| t.data)
}

/// Integer `+`, `-` and `*` become [`SparkArithmetic`], which refuses an overflow. After
/// coercion both sides have the one integer type.
fn checked_arithmetic(expr: Expr, schema: &DFSchema) -> datafusion_common::Result<Expr> {
    expr.transform_up(|e| {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = &e else {
            return Ok(Transformed::no(e));
        };
        let op = match op {
            Operator::Plus => ArithmeticOp::Add,
            Operator::Minus => ArithmeticOp::Subtract,
            Operator::Multiply => ArithmeticOp::Multiply,
            _ => return Ok(Transformed::no(e)),
        };
        let integer = |side: &Expr| side.get_type(schema).map(|t| t.is_integer());
        if !(integer(left)? && integer(right)?) {
            return Ok(Transformed::no(e));
        }
        let udf = ScalarUDF::new_from_impl(SparkArithmetic::new(op));
        Ok(Transformed::yes(
            udf.call(vec![left.as_ref().clone(), right.as_ref().clone()]),
        ))
    })
    .map(|t| t.data)
}

/// The type Weir declares for a column DataFusion computes as a view or large type.
fn plain_type(data_type: &DataType) -> DataType {
    match data_type {
        DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
        DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
        other => other.clone(),
    }
}

/// DataFusion's messages carry a prefix per layer ("Error during planning: ", "Arrow error:
/// ") and Arrow's type names; Weir's say what is wrong, with Spark's type names.
pub(crate) fn clean_message(error: &DataFusionError) -> String {
    let mut text = error.strip_backtrace();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "Execution error: ",
        "Arrow error: ",
        "Invalid argument error: ",
        "Compute error: ",
        "Cast error: ",
        "This feature is not implemented: ",
        "Optimizer rule 'type_coercion' failed\ncaused by\n",
    ] {
        while let Some(rest) = text.strip_prefix(prefix) {
            text = rest.to_string();
        }
    }
    for (arrow, spark) in [
        ("Utf8View", "STRING"),
        ("LargeUtf8", "STRING"),
        ("Utf8", "STRING"),
        ("Int8", "TINYINT"),
        ("Int16", "SMALLINT"),
        ("Int32", "INT"),
        ("Int64", "BIGINT"),
        ("Float32", "FLOAT"),
        ("Float64", "DOUBLE"),
        ("Boolean", "BOOLEAN"),
        ("Date32", "DATE"),
    ] {
        text = replace_word(&text, arrow, spark);
    }
    text
}

fn replace_word(text: &str, word: &str, with: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(word) {
        let before = rest[..at].chars().next_back();
        let after = rest[at + word.len()..].chars().next();
        let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
        out.push_str(&rest[..at]);
        out.push_str(if boundary(before) && boundary(after) {
            with
        } else {
            word
        });
        rest = &rest[at + word.len()..];
    }
    out.push_str(rest);
    out
}

/// Checks that `expr` is a condition (BOOLEAN), as a filter needs.
pub fn check_condition(expr: &Expression) -> Result<(), ExprError> {
    match expr.field().data_type() {
        DataType::Boolean | DataType::Null => Ok(()),
        other => Err(ExprError::new(format!(
            "the condition \"{}\" is {}, not BOOLEAN (compare it with something, e.g. `{} > 0`)",
            expr.text(),
            type_name(other),
            expr.name()
        ))),
    }
}

struct Context {
    functions: HashMap<String, Arc<ScalarUDF>>,
    options: ConfigOptions,
    types: Arc<dyn TypePlanner>,
    /// DataFusion's planners for syntax that is not a plain call: `SUBSTRING(s FROM 1 FOR
    /// 2)`, `POSITION(a IN b)`, `EXTRACT(...)`, `OVERLAY`, and the like.
    planners: Vec<Arc<dyn ExprPlanner>>,
}

/// DataFusion's function set and options, built once per process.
fn context() -> &'static Context {
    static CONTEXT: OnceLock<Context> = OnceLock::new();
    CONTEXT.get_or_init(|| {
        let mut functions = HashMap::new();
        for function in datafusion_functions::all_default_functions() {
            for alias in function.aliases() {
                functions.insert(alias.to_lowercase(), function.clone());
            }
            functions.insert(function.name().to_lowercase(), function);
        }
        Context {
            functions,
            options: ConfigOptions::default(),
            types: Arc::new(SparkTypes),
            planners: vec![
                Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
                Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
                Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
            ],
        }
    })
}

impl ContextProvider for Context {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion_common::Result<Arc<dyn TableSource>> {
        plan_err!("a row expression cannot read the table \"{name}\"")
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }

    fn get_type_planner(&self) -> Option<Arc<dyn TypePlanner>> {
        Some(self.types.clone())
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.functions.get(&name.to_lowercase()).cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, _name: &str) -> Option<Arc<AggregateUDF>> {
        None
    }

    fn get_window_meta(&self, _name: &str) -> Option<Arc<WindowUDF>> {
        None
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.functions.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udwf_names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Spark's SQL type names where DataFusion reads them otherwise: `TIMESTAMP` is Weir's UTC
/// microsecond timestamp (the DDL schema's), `STRING` is Utf8.
#[derive(Debug)]
struct SparkTypes;

impl TypePlanner for SparkTypes {
    fn plan_type_field(
        &self,
        sql_type: &ast::DataType,
    ) -> datafusion_common::Result<Option<FieldRef>> {
        let data_type = match sql_type {
            ast::DataType::Timestamp(None, ast::TimezoneInfo::None)
            | ast::DataType::Timestamp(None, ast::TimezoneInfo::WithTimeZone) => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(UTC.into()))
            }
            ast::DataType::String(_) => DataType::Utf8,
            _ => return Ok(None),
        };
        Ok(Some(Arc::new(Field::new("", data_type, true))))
    }
}

/// The schema a list of expressions produces.
pub fn output_schema(expressions: &[Expression]) -> Schema {
    Schema::new(
        expressions
            .iter()
            .map(|e| e.field().clone())
            .collect::<Vec<_>>(),
    )
}
