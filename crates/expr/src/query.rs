//! A `sql` operator's query, planned into the stages Weir runs: WHERE becomes a filter, GROUP
//! BY and the aggregates an aggregate, HAVING a filter of the aggregate's output, and the
//! SELECT list a select. Each stage is given as the text its TOML form takes, so that a `sql`
//! operator and the same stages written out in TOML are validated and run by the same code.

use std::collections::HashSet;
use std::ops::ControlFlow;

use arrow_schema::SchemaRef;
use sqlparser::ast::{
    self, Expr, GroupByExpr, Ident, SelectItem, SetExpr, Statement, TableFactor, VisitMut,
    VisitorMut,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::parser::Parser;

use crate::planner::parse_error;
use crate::{AggregateCall, ExprError, Expression, AGGREGATE_FUNCTIONS};

/// A `SELECT ... FROM input [WHERE ...] [GROUP BY ...] [HAVING ...]` as Weir's stages, in the
/// order they run. Every expression is text in the stage's TOML form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryPlan {
    /// The one input the query reads (its `FROM`).
    pub input: String,
    /// The WHERE condition: a filter stage before anything else.
    pub filter: Option<String>,
    /// GROUP BY keys and aggregates: an aggregate stage, if the query aggregates.
    pub aggregate: Option<(Vec<String>, Vec<String>)>,
    /// The HAVING condition: a filter of the aggregate's output.
    pub having: Option<String>,
    /// The SELECT list, when it is not simply what the stage before outputs.
    pub select: Option<Vec<String>>,
}

/// The parsed query: the one SELECT and its input, with every construct a stream cannot run
/// refused.
struct Parsed {
    select: ast::Select,
    input: String,
}

fn refuse(construct: &str, why: &str) -> ExprError {
    ExprError::new(format!("{construct} is not supported on a stream: {why}"))
}

fn parse(sql: &str) -> Result<Parsed, ExprError> {
    let mut statements =
        Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| parse_error(sql, &e.to_string()))?;
    let statement = match statements.len() {
        1 => statements.remove(0),
        0 => {
            return Err(ExprError::new(
                "the query is empty (expected SELECT ... FROM input)",
            ))
        }
        n => {
            return Err(ExprError::new(format!(
                "the query holds {n} statements; a sql operator runs one SELECT"
            )))
        }
    };
    let Statement::Query(query) = statement else {
        return Err(ExprError::new(format!(
            "\"{statement}\" is not a query (expected SELECT ... FROM input)"
        )));
    };
    let query = *query;
    if query.with.is_some() {
        return Err(refuse(
            "WITH (a common table expression)",
            "name the stage as an operator of its own and read it with FROM",
        ));
    }
    if query.order_by.is_some() {
        return Err(refuse(
            "ORDER BY",
            "a stream has no end to sort by; sort the output where it is read (weir show, DuckDB)",
        ));
    }
    if query.limit_clause.is_some() || query.fetch.is_some() {
        return Err(refuse(
            "LIMIT",
            "a stream has no end to count from; a console sink's num_rows limits what is shown",
        ));
    }
    let select = match *query.body {
        SetExpr::Select(select) => *select,
        SetExpr::SetOperation { op, .. } => {
            return Err(refuse(
                &op.to_string(),
                "it combines several queries; feed one operator from several inputs instead",
            ))
        }
        SetExpr::Query(_) => {
            return Err(refuse("a subquery", "each stage reads one input by name"))
        }
        other => {
            return Err(ExprError::new(format!(
                "\"{other}\" is not a SELECT (expected SELECT ... FROM input)"
            )))
        }
    };
    if select.distinct.is_some() {
        return Err(refuse(
            "SELECT DISTINCT",
            "it would keep every distinct row forever; use GROUP BY over the columns instead",
        ));
    }
    if select.top.is_some() {
        return Err(refuse("TOP", "a stream has no end to count from"));
    }
    if !select.named_window.is_empty() || select.qualify.is_some() {
        return Err(refuse(
            "a window clause (WINDOW, QUALIFY)",
            "OVER (...) needs the whole input",
        ));
    }
    if !select.sort_by.is_empty()
        || !select.cluster_by.is_empty()
        || !select.distribute_by.is_empty()
    {
        return Err(refuse(
            "SORT BY, CLUSTER BY or DISTRIBUTE BY",
            "Weir decides how rows are spread",
        ));
    }
    if !select.lateral_views.is_empty() {
        return Err(refuse("LATERAL VIEW", "rows are not exploded"));
    }
    let input = match select.from.as_slice() {
        [] => {
            return Err(ExprError::new(
                "the query has no FROM (expected FROM and the name of a source or operator)",
            ))
        }
        [one] => {
            if !one.joins.is_empty() {
                return Err(refuse(
                    "JOIN",
                    "Weir has no streaming join yet; each sql operator reads one input",
                ));
            }
            match &one.relation {
                TableFactor::Table {
                    name, args: None, ..
                } => name.to_string(),
                TableFactor::Derived { .. } => {
                    return Err(refuse(
                        "a subquery in FROM",
                        "write it as an operator of its own and read it by name",
                    ))
                }
                other => {
                    return Err(ExprError::new(format!(
                        "FROM \"{other}\" is not a source or operator name"
                    )))
                }
            }
        }
        _ => {
            return Err(refuse(
                "FROM with several inputs (an implicit join)",
                "Weir has no streaming join yet",
            ))
        }
    };
    let input = input.trim_matches('"').trim_matches('`').to_string();
    let alias = match select.from.first().map(|f| &f.relation) {
        Some(TableFactor::Table {
            alias: Some(alias), ..
        }) => Some(alias.name.value.clone()),
        _ => None,
    };
    // `sales.Shop` (or `s.Shop` after `FROM sales s`) is the column Shop of the one input.
    let mut select = select;
    let _ = ast::visit_expressions_mut(&mut select, |e| {
        if let Expr::CompoundIdentifier(parts) = e {
            if let [table, column] = parts.as_slice() {
                let names_input = table.value.eq_ignore_ascii_case(&input)
                    || alias
                        .as_deref()
                        .is_some_and(|a| a.eq_ignore_ascii_case(&table.value));
                if names_input {
                    *e = Expr::Identifier(column.clone());
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(Parsed { select, input })
}

impl QueryPlan {
    /// The name the query reads (its `FROM`), so that the pipeline can find the input's
    /// schema before planning the rest.
    pub fn input_of(sql: &str) -> Result<String, ExprError> {
        parse(sql).map(|p| p.input)
    }

    /// Plans `sql` against the schema of its input.
    pub fn plan(sql: &str, input: &SchemaRef) -> Result<QueryPlan, ExprError> {
        let Parsed {
            select,
            input: from,
        } = parse(sql)?;
        let filter = select.selection.as_ref().map(|e| e.to_string());
        let items = select_items(&select.projection)?;
        let mut keys: Vec<Expr> = match &select.group_by {
            GroupByExpr::Expressions(keys, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(refuse(
                        "GROUP BY ROLLUP/CUBE/GROUPING SETS",
                        "group by plain expressions",
                    ));
                }
                keys.clone()
            }
            GroupByExpr::All(_) => return Err(refuse("GROUP BY ALL", "name the keys")),
        };
        // GROUP BY 2 and GROUP BY an alias of the SELECT list, as Spark allows.
        for key in &mut keys {
            let replacement = match key {
                Expr::Value(v) => match &v.value {
                    ast::Value::Number(n, _) => {
                        let at: usize = n.parse().unwrap_or(0);
                        match items.get(at.wrapping_sub(1)) {
                            Some(Some((expr, _))) => Some(expr.clone()),
                            _ => {
                                return Err(ExprError::new(format!(
                                    "GROUP BY {n}: the SELECT list has no item {n}"
                                )))
                            }
                        }
                    }
                    _ => None,
                },
                Expr::Identifier(ident)
                    if input
                        .fields()
                        .iter()
                        .all(|f| !f.name().eq_ignore_ascii_case(&ident.value)) =>
                {
                    items.iter().flatten().find_map(|(expr, alias)| {
                        alias
                            .as_deref()
                            .filter(|a| a.eq_ignore_ascii_case(&ident.value))
                            .map(|_| expr.clone())
                    })
                }
                _ => None,
            };
            if let Some(replacement) = replacement {
                *key = replacement;
            }
        }
        let aggregates_in_items = items
            .iter()
            .flatten()
            .any(|(expr, _)| !aggregate_calls(expr).is_empty());
        if keys.is_empty() && !aggregates_in_items {
            if select.having.is_some() {
                return Err(ExprError::new(
                    "HAVING needs GROUP BY or an aggregate in the SELECT list",
                ));
            }
            let select_list = match items.as_slice() {
                [None] => None,
                _ => Some(item_texts(&items)),
            };
            return Ok(QueryPlan {
                input: from,
                filter,
                aggregate: None,
                having: None,
                select: select_list,
            });
        }
        self::aggregated(from, filter, keys, items, select.having, input)
    }
}

/// The SELECT list as (expression, alias) pairs; `None` for `*`.
type Items = Vec<Option<(Expr, Option<String>)>>;

fn select_items(projection: &[SelectItem]) -> Result<Items, ExprError> {
    projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Ok(Some((e.clone(), None))),
            SelectItem::ExprWithAlias { expr, alias } => {
                Ok(Some((expr.clone(), Some(alias.value.clone()))))
            }
            SelectItem::Wildcard(_) => Ok(None),
            other => Err(ExprError::new(format!(
                "\"{other}\" is not supported in the SELECT list"
            ))),
        })
        .collect()
}

fn item_texts(items: &Items) -> Vec<String> {
    items
        .iter()
        .map(|item| match item {
            None => "*".to_string(),
            Some((expr, None)) => expr.to_string(),
            Some((expr, Some(alias))) => format!("{expr} AS {}", quote(alias)),
        })
        .collect()
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The aggregate calls inside `expr`, outermost first.
fn aggregate_calls(expr: &Expr) -> Vec<Expr> {
    let mut found = Vec::new();
    let _ = ast::visit_expressions(expr, |e| {
        if is_aggregate_call(e) && !found.iter().any(|f: &Expr| f.to_string() == e.to_string()) {
            found.push(e.clone());
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

fn is_aggregate_call(e: &Expr) -> bool {
    matches!(e, Expr::Function(f) if AGGREGATE_FUNCTIONS.contains(&f.name.to_string().to_lowercase().as_str()))
}

fn same(a: &Expr, b: &Expr) -> bool {
    a.to_string().eq_ignore_ascii_case(&b.to_string())
}

fn aggregated(
    input: String,
    filter: Option<String>,
    keys: Vec<Expr>,
    items: Items,
    having: Option<Expr>,
    schema: &SchemaRef,
) -> Result<QueryPlan, ExprError> {
    if items.iter().any(Option::is_none) {
        return Err(ExprError::new(
            "SELECT * cannot be aggregated: list the GROUP BY keys and the aggregates",
        ));
    }
    let items: Vec<(Expr, Option<String>)> = items.into_iter().flatten().collect();
    // Keys: named by the SELECT item that is exactly the key, if it has an alias.
    let mut key_texts = Vec::new();
    let mut key_names = Vec::new();
    for key in &keys {
        let alias = items
            .iter()
            .find(|(e, _)| same(e, key))
            .and_then(|(_, a)| a.clone());
        let text = match &alias {
            Some(alias) => format!("{key} AS {}", quote(alias)),
            None => key.to_string(),
        };
        // A window key (`window(ts, '10 minutes')`) is the aggregate's to plan; its name is
        // Spark's, `window` or `session_window`, unless aliased.
        let name = match crate::WindowCall::plan(&text, schema) {
            Some(window) => {
                window
                    .map_err(|e| ExprError::new(format!("GROUP BY {}", e.message)))?
                    .name
            }
            None => Expression::plan(&text, schema)
                .map_err(|e| ExprError::new(format!("GROUP BY {}", e.message)))?
                .name()
                .to_string(),
        };
        key_names.push(name);
        key_texts.push(text);
    }
    // Aggregates: each distinct call in the SELECT list and HAVING, named by its SELECT item
    // when the item is exactly the call, otherwise by a hidden name the select drops.
    let mut calls: Vec<Expr> = Vec::new();
    for (expr, _) in &items {
        for call in aggregate_calls(expr) {
            if !calls.iter().any(|c| same(c, &call)) {
                calls.push(call);
            }
        }
    }
    if let Some(having) = &having {
        for call in aggregate_calls(having) {
            if !calls.iter().any(|c| same(c, &call)) {
                calls.push(call);
            }
        }
    }
    let mut aggregate_texts = Vec::new();
    let mut aggregate_names = Vec::new();
    for (i, call) in calls.iter().enumerate() {
        let named_item = items.iter().find(|(e, _)| same(e, call));
        let text = match named_item {
            Some((_, Some(alias))) => format!("{call} AS {}", quote(alias)),
            Some((_, None)) => call.to_string(),
            None => format!("{call} AS {}", quote(&format!("__weir_aggregate_{i}"))),
        };
        let planned = AggregateCall::plan(&text, schema)?;
        aggregate_names.push(planned.name);
        aggregate_texts.push(text);
    }
    let columns: Vec<(Expr, String)> = keys
        .iter()
        .cloned()
        .zip(key_names.iter().cloned())
        .chain(calls.iter().cloned().zip(aggregate_names.iter().cloned()))
        .collect();
    let known: HashSet<String> = columns.iter().map(|(_, n)| n.clone()).collect();
    let mut select = Vec::new();
    let mut identity = items.len() == columns.len();
    for (i, (expr, alias)) in items.iter().enumerate() {
        let rewritten = over_columns(expr, &columns, &known).map_err(|column| {
            ExprError::new(format!(
                "\"{expr}\" in the SELECT list uses \"{column}\", which is neither a GROUP BY key nor inside an aggregate"
            ))
        })?;
        let name = match alias {
            Some(alias) => alias.clone(),
            None => match columns.iter().find(|(e, _)| same(e, expr)) {
                Some((_, n)) => n.clone(),
                None => crate::ast::spark_name(expr),
            },
        };
        let same_column = matches!(&rewritten, Expr::Identifier(id)
            if columns.get(i).is_some_and(|(_, n)| *n == id.value && *n == name));
        identity &= same_column;
        select.push(format!("{rewritten} AS {}", quote(&name)));
    }
    let having = having
        .map(|h| {
            over_columns(&h, &columns, &known)
                .map(|e| e.to_string())
                .map_err(|column| {
                    ExprError::new(format!(
                        "HAVING \"{h}\" uses \"{column}\", which is neither a GROUP BY key nor inside an aggregate"
                    ))
                })
        })
        .transpose()?;
    Ok(QueryPlan {
        input,
        filter,
        aggregate: Some((key_texts, aggregate_texts)),
        having,
        select: (!identity).then_some(select),
    })
}

/// `expr` rewritten over the aggregate's output: every GROUP BY key and aggregate call in it
/// becomes a reference to its column. Errors with the first input column left over.
fn over_columns(
    expr: &Expr,
    columns: &[(Expr, String)],
    known: &HashSet<String>,
) -> Result<Expr, String> {
    struct Rewrite<'a> {
        columns: &'a [(Expr, String)],
    }
    impl VisitorMut for Rewrite<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
            if let Some((_, name)) = self.columns.iter().find(|(e, _)| same(e, expr)) {
                *expr = Expr::Identifier(Ident::with_quote('"', name.as_str()));
            }
            ControlFlow::Continue(())
        }
    }
    let mut rewritten = expr.clone();
    let _ = rewritten.visit(&mut Rewrite { columns });
    let mut stray = None;
    let _ = ast::visit_expressions(&rewritten, |e| {
        let name = match e {
            Expr::Identifier(id) => Some(id.value.clone()),
            Expr::CompoundIdentifier(parts) => Some(
                parts
                    .iter()
                    .map(|p| p.value.as_str())
                    .collect::<Vec<_>>()
                    .join("."),
            ),
            _ => None,
        };
        match name {
            Some(name) if !known.contains(&name) => {
                stray = Some(name);
                ControlFlow::Break(())
            }
            _ => ControlFlow::Continue(()),
        }
    });
    match stray {
        Some(name) => Err(name),
        None => Ok(rewritten),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("Shop", DataType::Utf8, true),
            Field::new("Sale_Count", DataType::Int32, true),
        ]))
    }

    #[test]
    fn where_group_by_and_select_become_stages() {
        let plan = QueryPlan::plan(
            "SELECT lower(Shop) AS shop, sum(Sale_Count) AS total FROM sales WHERE Sale_Count > 0 GROUP BY lower(Shop)",
            &schema(),
        )
        .unwrap();
        assert_eq!(plan.input, "sales");
        assert_eq!(plan.filter.as_deref(), Some("Sale_Count > 0"));
        let (keys, aggregates) = plan.aggregate.unwrap();
        assert_eq!(keys, ["lower(Shop) AS \"shop\""]);
        assert_eq!(aggregates, ["sum(Sale_Count) AS \"total\""]);
        assert_eq!(
            plan.select, None,
            "the aggregate's output is already the SELECT list"
        );
    }

    #[test]
    fn compound_items_and_having_read_the_aggregate_output() {
        let plan = QueryPlan::plan(
            "SELECT sum(Sale_Count) / count(*) AS mean, Shop FROM sales GROUP BY Shop HAVING count(*) > 1",
            &schema(),
        )
        .unwrap();
        let (_, aggregates) = plan.aggregate.unwrap();
        assert_eq!(aggregates.len(), 2);
        assert_eq!(plan.having.as_deref(), Some("\"__weir_aggregate_1\" > 1"));
        assert_eq!(
            plan.select.unwrap(),
            [
                "\"__weir_aggregate_0\" / \"__weir_aggregate_1\" AS \"mean\"",
                "\"Shop\" AS \"Shop\""
            ]
        );
    }

    #[test]
    fn streams_refuse_what_needs_the_whole_input() {
        for (sql, construct) in [
            ("SELECT * FROM a JOIN b ON a.x = b.x", "JOIN"),
            ("SELECT * FROM a ORDER BY Shop", "ORDER BY"),
            ("SELECT * FROM a LIMIT 3", "LIMIT"),
            ("SELECT DISTINCT Shop FROM a", "SELECT DISTINCT"),
            ("SELECT * FROM (SELECT * FROM a)", "a subquery in FROM"),
            ("SELECT Shop FROM a UNION SELECT Shop FROM b", "UNION"),
        ] {
            let error = QueryPlan::plan(sql, &schema()).unwrap_err();
            assert!(error.message.starts_with(construct), "{sql}: {error}");
        }
        let error =
            QueryPlan::plan("SELECT Shop, Sale_Count FROM a GROUP BY Shop", &schema()).unwrap_err();
        assert!(
            error
                .message
                .contains("neither a GROUP BY key nor inside an aggregate"),
            "{error}"
        );
    }
}
