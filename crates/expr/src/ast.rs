//! What Weir does to a parsed expression before DataFusion plans it: Spark's name resolution
//! (case-insensitive, never lower-cased), Spark's spellings of functions DataFusion names
//! otherwise, and Spark's names for unaliased expressions.

use std::ops::ControlFlow;
use weir_core::java_to_chrono;

use arrow_schema::{DataType, Schema};
use sqlparser::ast::helpers::attached_token::AttachedToken;
use sqlparser::ast::{
    CaseWhen, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, ObjectName,
    ObjectNamePart, UnaryOperator, Value, VisitMut, VisitorMut,
};
use sqlparser::tokenizer::Span;

use crate::ExprError;

/// Rewrites `expr` in place for DataFusion: column names resolved against `schema` as Spark
/// resolves them, and Spark-only function spellings replaced. `text` is the whole expression,
/// for messages. `table` is a name that may qualify columns (`sales.Shop`).
pub(crate) fn prepare(
    expr: &mut Expr,
    schema: &Schema,
    table: Option<&str>,
    text: &str,
) -> Result<(), ExprError> {
    let mut visitor = Prepare {
        schema,
        table,
        text,
        error: None,
    };
    let _ = expr.visit(&mut visitor);
    match visitor.error {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

struct Prepare<'a> {
    schema: &'a Schema,
    table: Option<&'a str>,
    text: &'a str,
    error: Option<ExprError>,
}

impl VisitorMut for Prepare<'_> {
    type Break = ();

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        let result = match expr {
            Expr::Identifier(ident) => self.resolve(std::slice::from_ref(ident)).map(Some),
            Expr::CompoundIdentifier(parts) => self.resolve(parts).map(Some),
            // `user`, `current_date` and the like without parentheses parse as calls; a column
            // of that name wins, as in Spark (a `user` column is common).
            Expr::Function(function) if matches!(function.args, FunctionArguments::None) => {
                match function.name.0.as_slice() {
                    [ObjectNamePart::Identifier(name)] if self.has_column(&name.value) => {
                        self.resolve(std::slice::from_ref(name)).map(Some)
                    }
                    _ => rewrite_function(function).map(|e| e.map(Box::new)),
                }
            }
            Expr::Function(function) => rewrite_function(function).map(|e| e.map(Box::new)),
            _ => Ok(None),
        };
        match result {
            Ok(Some(replacement)) => *expr = *replacement,
            Ok(None) => {}
            Err(error) => {
                self.error = Some(error);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

impl Prepare<'_> {
    /// A column reference as Spark resolves it: an exact match first, then the one column
    /// whose name differs only in case. The result names the column as the schema spells it.
    fn resolve(&self, parts: &[Ident]) -> Result<Box<Expr>, ExprError> {
        // `window.start`: a field of a struct column, as Spark reads it.
        if let [column, field] = parts {
            if let Some(access) = self.struct_field(column, field) {
                return Ok(access);
            }
        }
        let name = match parts {
            [column] => column,
            [table, column]
                if self
                    .table
                    .is_some_and(|t| t.eq_ignore_ascii_case(&table.value)) =>
            {
                column
            }
            _ => {
                let written: Vec<&str> = parts.iter().map(|p| p.value.as_str()).collect();
                return Err(ExprError::new(format!(
                    "unknown column \"{}\" in \"{}\" ({})",
                    written.join("."),
                    self.text,
                    self.columns()
                )));
            }
        };
        let fields = self.schema.fields();
        let found = fields.iter().find(|f| f.name() == &name.value).or_else(|| {
            let mut matches = fields
                .iter()
                .filter(|f| f.name().eq_ignore_ascii_case(&name.value));
            match (matches.next(), matches.next()) {
                (Some(only), None) => Some(only),
                _ => None,
            }
        });
        match found {
            Some(field) => Ok(Box::new(Expr::Identifier(Ident::with_quote(
                '"',
                field.name().as_str(),
            )))),
            None => {
                let mut message = format!(
                    "unknown column \"{}\" in \"{}\" ({}",
                    name.value,
                    self.text,
                    self.columns()
                );
                if let Some(close) = closest(&name.value, fields.iter().map(|f| f.name().as_str()))
                {
                    message.push_str(&format!("; did you mean \"{close}\"?"));
                }
                if name.quote_style == Some('"') {
                    message.push_str("; a string is written in single quotes");
                }
                message.push(')');
                Err(ExprError::new(message))
            }
        }
    }

    /// Whether the input has a column of this name, ignoring case.
    fn has_column(&self, name: &str) -> bool {
        self.schema
            .fields()
            .iter()
            .any(|f| f.name().eq_ignore_ascii_case(name))
    }

    /// `column.field` as `get_field(column, 'field')`, when `column` is a struct column
    /// (ignoring case, as columns resolve) with such a field.
    fn struct_field(&self, column: &Ident, field: &Ident) -> Option<Box<Expr>> {
        let fields = self.schema.fields();
        let found = fields
            .iter()
            .find(|f| f.name() == &column.value)
            .or_else(|| {
                fields
                    .iter()
                    .find(|f| f.name().eq_ignore_ascii_case(&column.value))
            })?;
        let DataType::Struct(inner) = found.data_type() else {
            return None;
        };
        let inner = inner
            .iter()
            .find(|f| f.name().eq_ignore_ascii_case(&field.value))?;
        let column = Expr::Identifier(Ident::with_quote('"', found.name().as_str()));
        Some(Box::new(call(
            "get_field",
            vec![column, string(inner.name())],
        )))
    }

    fn columns(&self) -> String {
        let names: Vec<&str> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        format!("the input has {}", names.join(", "))
    }
}

/// The name in `candidates` nearest to `name` by edit distance, ignoring case, if it is near
/// enough to be a likely typo.
pub(crate) fn closest<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = name.to_lowercase();
    candidates
        .map(|c| (edit_distance(&lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count().max(name.chars().count()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Spark's spellings that DataFusion names otherwise, or lacks:
/// `lcase`/`ucase`, `year(ts)` and the other date parts, `if(c, a, b)`, `nvl`,
/// `date_format`'s and `to_timestamp`'s Java-style patterns.
fn rewrite_function(function: &mut Function) -> Result<Option<Expr>, ExprError> {
    let name = function_name(&function.name).to_lowercase();
    let renamed = match name.as_str() {
        "lcase" => Some("lower"),
        "ucase" => Some("upper"),
        "char_length" | "character_length" | "len" => Some("length"),
        "power" => Some("pow"),
        "ceiling" => Some("ceil"),
        "signum" => Some("sign"),
        "startswith" => Some("starts_with"),
        "endswith" => Some("ends_with"),
        _ => None,
    };
    if let Some(renamed) = renamed {
        function.name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(renamed))]);
    }
    let part = match name.as_str() {
        "year" => Some("year"),
        "quarter" => Some("quarter"),
        "month" => Some("month"),
        "day" | "dayofmonth" => Some("day"),
        "dayofweek" => {
            // Spark counts 1 = Sunday .. 7 = Saturday; DataFusion's dow 0 = Sunday .. 6.
            let args = list_args(function);
            if let [arg] = args.as_slice() {
                return Ok(Some(Expr::BinaryOp {
                    left: Box::new(call("date_part", vec![string("dow"), arg.clone()])),
                    op: sqlparser::ast::BinaryOperator::Plus,
                    right: Box::new(Expr::Value(
                        Value::Number("1".into(), false).with_span(Span::empty()),
                    )),
                }));
            }
            None
        }
        "dayofyear" => Some("doy"),
        "hour" => Some("hour"),
        "minute" => Some("minute"),
        "second" => Some("second"),
        "weekofyear" => Some("week"),
        _ => None,
    };
    let args = list_args(function);
    if let (Some(part), [arg]) = (part, args.as_slice()) {
        // Spark's date parts are INT; DataFusion's date_part already returns Int32.
        return Ok(Some(call("date_part", vec![string(part), arg.clone()])));
    }
    match (name.as_str(), args.as_slice()) {
        ("if" | "iff", [condition, then, otherwise]) => Ok(Some(Expr::Case {
            case_token: AttachedToken::empty(),
            end_token: AttachedToken::empty(),
            operand: None,
            conditions: vec![CaseWhen {
                condition: condition.clone(),
                result: then.clone(),
            }],
            else_result: Some(Box::new(otherwise.clone())),
        })),
        ("date_format" | "to_timestamp" | "to_date", [value, Expr::Value(pattern)]) => {
            let Value::SingleQuotedString(java) = &pattern.value else {
                return Ok(None);
            };
            let target = match name.as_str() {
                "date_format" => "to_char",
                other => other,
            };
            Ok(Some(call(
                target,
                vec![value.clone(), string(&java_to_chrono(java))],
            )))
        }
        _ => Ok(None),
    }
}

fn function_name(name: &ObjectName) -> String {
    name.0
        .iter()
        .filter_map(|part| match part {
            ObjectNamePart::Identifier(ident) => Some(ident.value.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// The plain positional arguments of a call; empty if it has any other kind.
pub(crate) fn list_args(function: &Function) -> Vec<Expr> {
    let FunctionArguments::List(list) = &function.args else {
        return Vec::new();
    };
    list.args
        .iter()
        .map_while(|arg| match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName(vec![ObjectNamePart::Identifier(Ident::new(name))]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(sqlparser::ast::FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

fn string(text: &str) -> Expr {
    Expr::Value(Value::SingleQuotedString(text.to_string()).with_span(Span::empty()))
}

/// The name Spark gives an unaliased expression: `(Sale_Count * 2)`, `upper(Shop)`,
/// `CAST(x AS DOUBLE)`, `count(1)`. Column references are named as the schema spells them
/// (call this after [`prepare`]).
pub(crate) fn spark_name(expr: &Expr) -> String {
    match expr {
        Expr::Identifier(ident) => ident.value.clone(),
        Expr::CompoundIdentifier(parts) => {
            parts.last().map(|p| p.value.clone()).unwrap_or_default()
        }
        Expr::Nested(inner) => spark_name(inner),
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            Value::Null => "NULL".into(),
            Value::Boolean(b) => b.to_string(),
            other => other.to_string(),
        },
        Expr::BinaryOp { left, op, right } => {
            format!("({} {} {})", spark_name(left), op, spark_name(right))
        }
        Expr::UnaryOp { op, expr } => match op {
            UnaryOperator::Not => format!("(NOT {})", spark_name(expr)),
            UnaryOperator::Minus => format!("(- {})", spark_name(expr)),
            other => format!("{other}{}", spark_name(expr)),
        },
        Expr::IsNull(inner) => format!("({} IS NULL)", spark_name(inner)),
        Expr::IsNotNull(inner) => format!("({} IS NOT NULL)", spark_name(inner)),
        Expr::Cast {
            expr, data_type, ..
        } => format!(
            "CAST({} AS {})",
            spark_name(expr),
            data_type.to_string().to_uppercase()
        ),
        Expr::Function(function) => {
            let name = function_name(&function.name).to_lowercase();
            let args: Vec<String> = match &function.args {
                FunctionArguments::List(list) => list
                    .args
                    .iter()
                    .map(|arg| match arg {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => spark_name(e),
                        FunctionArg::Unnamed(FunctionArgExpr::Wildcard) if name == "count" => {
                            "1".into()
                        }
                        other => other.to_string(),
                    })
                    .collect(),
                _ => Vec::new(),
            };
            format!("{name}({})", args.join(", "))
        }
        Expr::Case {
            operand,
            conditions,
            else_result,
            ..
        } => {
            let mut out = String::from("CASE");
            if let Some(operand) = operand {
                out.push_str(&format!(" {}", spark_name(operand)));
            }
            for when in conditions {
                out.push_str(&format!(
                    " WHEN {} THEN {}",
                    spark_name(&when.condition),
                    spark_name(&when.result)
                ));
            }
            if let Some(other) = else_result {
                out.push_str(&format!(" ELSE {}", spark_name(other)));
            }
            out.push_str(" END");
            out
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_only() {
        let names = ["File", "Shop", "Sale_Count"];
        assert_eq!(closest("sale_cont", names.into_iter()), Some("Sale_Count"));
        assert_eq!(closest("Shopp", names.into_iter()), Some("Shop"));
        assert_eq!(closest("price", names.into_iter()), None);
    }
}
