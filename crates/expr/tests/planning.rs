//! Planning and evaluating expressions as a Spark user writes them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int32Array, RecordBatch, StringArray};
use arrow_cast::display::array_value_to_string;
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use weir_expr::{check_condition, AggregateCall, AggregateFunction, Expression, QueryPlan};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("Shop", DataType::Utf8, true),
        Field::new("Sale_Count", DataType::Int32, true),
        Field::new("price", DataType::Float64, true),
    ]))
}

fn batch() -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(StringArray::from(vec![Some("Shop_01"), None, Some("b")])),
            Arc::new(Int32Array::from(vec![Some(7), Some(0), None])),
            Arc::new(Float64Array::from(vec![Some(1.5), None, Some(-2.0)])),
        ],
    )
    .unwrap()
}

fn values(array: &ArrayRef) -> Vec<String> {
    (0..array.len())
        .map(|i| match array.is_null(i) {
            true => "null".to_string(),
            false => array_value_to_string(array, i).unwrap(),
        })
        .collect()
}

fn eval(text: &str) -> Vec<String> {
    let expr = Expression::plan(text, &schema()).unwrap_or_else(|e| panic!("{text}: {e}"));
    values(
        &expr
            .evaluate(&batch())
            .unwrap_or_else(|e| panic!("{text}: {e}")),
    )
}

#[test]
fn names_follow_spark_and_keep_the_schema_spelling() {
    for (text, name) in [
        ("Sale_Count * 2", "(Sale_Count * 2)"),
        ("sale_count * 2", "(Sale_Count * 2)"),
        ("UPPER(shop)", "upper(Shop)"),
        ("shop", "Shop"),
        ("Sale_Count * 2 AS doubled", "doubled"),
        ("(Sale_Count + 1) * 2", "((Sale_Count + 1) * 2)"),
        ("CAST(Sale_Count AS DOUBLE)", "CAST(Sale_Count AS DOUBLE)"),
        ("upper(Shop) shop_upper", "shop_upper"),
    ] {
        let expr = Expression::plan(text, &schema()).unwrap();
        assert_eq!(expr.name(), name, "{text}");
    }
}

#[test]
fn evaluates_with_sql_null_rules() {
    assert_eq!(eval("Sale_Count * 2"), ["14", "0", "null"]);
    assert_eq!(
        eval("Sale_Count > 0 AND price > 0"),
        ["true", "false", "false"]
    );
    assert_eq!(
        eval("Sale_Count > 0 OR price > 0"),
        ["true", "null", "null"]
    );
    assert_eq!(eval("NOT (Sale_Count > 0)"), ["false", "true", "null"]);
    assert_eq!(eval("coalesce(Shop, 'none')"), ["Shop_01", "none", "b"]);
    assert_eq!(eval("Shop LIKE 'Shop_0%'"), ["true", "null", "false"]);
    assert_eq!(eval("Sale_Count IN (0, 7)"), ["true", "true", "null"]);
    assert_eq!(
        eval("Sale_Count BETWEEN 1 AND 10"),
        ["true", "false", "null"]
    );
    assert_eq!(
        eval("CASE WHEN Sale_Count > 5 THEN 'big' ELSE 'small' END"),
        ["big", "small", "small"]
    );
    assert_eq!(
        eval("if(Sale_Count > 5, 'big', 'small')"),
        ["big", "small", "small"]
    );
    assert_eq!(eval("lcase(Shop)"), ["shop_01", "null", "b"]);
    assert_eq!(eval("substring(Shop, 1, 4)"), ["Shop", "null", "b"]);
}

#[test]
fn division_is_fractional_and_a_zero_divisor_is_an_error() {
    let half = Expression::plan("Sale_Count / 2", &schema()).unwrap();
    assert_eq!(half.field().data_type(), &DataType::Float64);
    assert_eq!(
        values(&half.evaluate(&batch()).unwrap()),
        ["3.5", "0.0", "null"]
    );
    let by_zero = Expression::plan("price / (Sale_Count - 7)", &schema()).unwrap();
    let error = by_zero.evaluate(&batch()).unwrap_err();
    assert_eq!(error.expression, "price / (Sale_Count - 7)");
    assert!(error.to_string().contains("division by zero"), "{error}");
    assert_eq!(
        eval("price / nullif(Sale_Count, 0)"),
        ["0.21428571428571427", "null", "null"]
    );
}

#[test]
fn a_failing_cast_names_the_expression_and_the_value() {
    let cast = Expression::plan("CAST(Shop AS INT)", &schema()).unwrap();
    let error = cast.evaluate(&batch()).unwrap_err().to_string();
    assert!(
        error.starts_with("cannot evaluate \"CAST(Shop AS INT)\""),
        "{error}"
    );
    assert!(error.contains("Shop_01"), "{error}");
}

#[test]
fn strings_stay_plain_utf8() {
    for text in [
        "upper(Shop)",
        "CAST(Sale_Count AS STRING)",
        "concat_ws('-', Shop, Shop)",
    ] {
        let expr = Expression::plan(text, &schema()).unwrap();
        assert_eq!(expr.field().data_type(), &DataType::Utf8, "{text}");
        assert_eq!(
            expr.evaluate(&batch()).unwrap().data_type(),
            &DataType::Utf8,
            "{text}"
        );
    }
}

#[test]
fn errors_name_the_column_the_types_and_the_position() {
    let unknown = Expression::plan("Sale_Cont > 0", &schema()).unwrap_err();
    assert_eq!(
        unknown.message,
        "unknown column \"Sale_Cont\" in \"Sale_Cont > 0\" (the input has Shop, Sale_Count, price; did you mean \"Sale_Count\"?)"
    );
    let quoted = Expression::plan("Shop = \"b\"", &schema()).unwrap_err();
    assert!(
        quoted
            .message
            .contains("a string is written in single quotes"),
        "{quoted}"
    );
    let malformed = Expression::plan("Sale_Count >", &schema()).unwrap_err();
    assert_eq!(malformed.position, Some(13), "{malformed}");
    assert!(
        malformed
            .message
            .starts_with("cannot parse \"Sale_Count >\" at character 13"),
        "{malformed}"
    );
    let trailing = Expression::plan("Sale_Count > 0 0", &schema()).unwrap_err();
    assert_eq!(trailing.position, Some(16), "{trailing}");
    let types = Expression::plan("Shop * 2 > true", &schema()).unwrap_err();
    assert!(
        types.message.contains("STRING") || types.message.contains("BOOLEAN"),
        "{types}"
    );
    let function = Expression::plan("nosuch(Shop)", &schema()).unwrap_err();
    assert!(function.message.contains("nosuch"), "{function}");
    let aggregate = Expression::plan("sum(Sale_Count) > 1", &schema()).unwrap_err();
    assert!(aggregate.message.contains("is an aggregate"), "{aggregate}");
    let not_bool = Expression::plan("Sale_Count + 1", &schema()).unwrap();
    let error = check_condition(&not_bool).unwrap_err();
    assert!(error.message.contains("is INT, not BOOLEAN"), "{error}");
}

#[test]
fn aggregate_calls_take_expressions() {
    let call = AggregateCall::plan("sum(Sale_Count * price) AS revenue", &schema()).unwrap();
    assert_eq!(call.function, AggregateFunction::Sum);
    assert_eq!(call.name, "revenue");
    assert_eq!(
        call.argument.unwrap().field().data_type(),
        &DataType::Float64
    );
    let count = AggregateCall::plan("COUNT(*)", &schema()).unwrap();
    assert_eq!(
        (count.function, count.name.as_str()),
        (AggregateFunction::Count, "count(1)")
    );
    assert!(count.argument.is_none());
    let named = AggregateCall::plan("max(upper(shop))", &schema()).unwrap();
    assert_eq!(named.name, "max(upper(Shop))");
    let distinct = AggregateCall::plan("count(DISTINCT Shop)", &schema()).unwrap_err();
    assert!(
        distinct
            .message
            .contains("DISTINCT aggregates are not supported"),
        "{distinct}"
    );
}

#[test]
fn sql_names_its_input_and_refuses_joins() {
    assert_eq!(
        QueryPlan::input_of("SELECT * FROM sales WHERE Sale_Count > 0").unwrap(),
        "sales"
    );
    let plan = QueryPlan::plan(
        "SELECT Shop, Sale_Count * 2 AS d FROM sales WHERE sales.Sale_Count > 0",
        &schema(),
    )
    .unwrap();
    assert_eq!(plan.filter.as_deref(), Some("Sale_Count > 0"));
    assert!(plan.aggregate.is_none());
    assert_eq!(plan.select.unwrap(), ["Shop", "Sale_Count * 2 AS \"d\""]);
    let join = QueryPlan::input_of("SELECT * FROM a, b").unwrap_err();
    assert!(join.message.contains("implicit join"), "{join}");
}

#[test]
fn integer_literals_are_int_and_an_overflow_is_an_error() {
    let doubled = Expression::plan("Sale_Count * 2", &schema()).unwrap();
    assert_eq!(doubled.field().data_type(), &DataType::Int32);
    let big = Expression::plan("Sale_Count * 1000000000", &schema()).unwrap();
    let error = big.evaluate(&batch()).unwrap_err().to_string();
    assert!(error.contains("overflow"), "{error}");
    let wide = Expression::plan("CAST(Sale_Count AS BIGINT) * 1000000000", &schema()).unwrap();
    assert_eq!(wide.field().data_type(), &DataType::Int64);
    assert_eq!(
        values(&wide.evaluate(&batch()).unwrap()),
        ["7000000000", "0", "null"]
    );
    assert_eq!(
        eval("Sale_Count * 3000000000"),
        ["21000000000", "0", "null"]
    );
}

#[test]
fn a_column_named_like_a_niladic_function_is_the_column() {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("user", DataType::Utf8, true),
        Field::new("window", DataType::Int32, true),
    ]));
    let user = Expression::plan("USER", &schema).unwrap();
    assert_eq!(user.name(), "user");
    assert_eq!(user.column(), Some(0));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["ann"])),
            Arc::new(Int32Array::from(vec![1])),
        ],
    )
    .unwrap();
    assert_eq!(values(&user.evaluate(&batch).unwrap()), ["ann"]);
}
