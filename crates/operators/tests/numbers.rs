//! Aggregates compute what Spark 4 computes in ANSI mode, its default. Every expected value
//! here is Spark 4.3's answer to the same query, recorded by `tests/spark/record_numbers.py`
//! (which also records DuckDB's, for the table in docs/numbers.md).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, StringArray};
use arrow_array::{ArrayRef, Decimal128Array, Float64Array, Int32Array, Int64Array, RecordBatch};
use arrow_schema::DataType;
use weir_core::{parse_ddl, Epoch, Operator, OutputMode};
use weir_operators::{Aggregate, AggregateConfig};

/// An aggregate over `ddl` grouped by `group_by` (`k` or nothing).
fn aggregate(ddl: &str, group_by: &[&str], aggregates: &[&str]) -> Aggregate {
    let schema = parse_ddl(ddl).unwrap();
    let config = AggregateConfig {
        group_by: group_by.iter().map(|s| s.to_string()).collect(),
        aggregates: aggregates.iter().map(|s| s.to_string()).collect(),
    };
    config.validate(&schema).unwrap().build().unwrap()
}

/// One batch of column `x` alone.
fn only(x: ArrayRef) -> RecordBatch {
    RecordBatch::try_from_iter([("x", x)]).unwrap()
}

/// A value as Spark's `collect()` prints it: `None`, `nan`, `-0.0`, `1.5000`.
fn show(column: &ArrayRef, row: usize) -> String {
    if column.is_null(row) {
        return "None".into();
    }
    match column.data_type() {
        DataType::Float64 => {
            let v = column.as_primitive::<Float64Type>().value(row);
            match v.is_nan() {
                true => "nan".into(),
                false => format!("{v:?}"),
            }
        }
        _ => arrow_cast::display::array_value_to_string(column, row).unwrap(),
    }
}

/// Every row of the complete result, values joined by `|`, sorted.
fn result(aggregate: &mut Aggregate) -> Vec<String> {
    let batch = aggregate.emit(OutputMode::Complete).unwrap().unwrap();
    let mut rows: Vec<String> = (0..batch.num_rows())
        .map(|r| {
            batch
                .columns()
                .iter()
                .map(|c| show(c, r))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    rows.sort();
    rows
}

fn types(aggregate: &Aggregate) -> Vec<String> {
    aggregate
        .output_schema()
        .fields()
        .iter()
        .map(|f| weir_core::ddl_type_name(f.data_type()))
        .collect()
}

fn decimals(values: &[i128], precision: u8, scale: i8) -> ArrayRef {
    Arc::new(
        Decimal128Array::from(values.to_vec())
            .with_precision_and_scale(precision, scale)
            .unwrap(),
    )
}

fn longs(values: &[i64]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

fn doubles(values: &[f64]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

#[test]
fn bigint_sums_reach_the_boundary_and_fail_past_it_naming_the_group() {
    let mut sum = aggregate("x BIGINT", &[], &["sum(x)"]);
    sum.process(only(longs(&[i64::MAX - 1, 1]))).unwrap();
    assert_eq!(result(&mut sum), ["9223372036854775807"]);

    let mut sum = aggregate("k STRING, x BIGINT", &["k"], &["sum(x)"]);
    let batch = RecordBatch::try_from_iter([
        (
            "k",
            Arc::new(StringArray::from(vec!["a", "b", "a"])) as ArrayRef,
        ),
        ("x", longs(&[i64::MAX, 1, 1])),
    ])
    .unwrap();
    let error = sum.process(batch).unwrap_err().to_string();
    for part in ["sum(x)", "overflows BIGINT", "k = \"a\"", "try_sum(x)"] {
        assert!(error.contains(part), "{part:?} not in: {error}");
    }

    let mut sum = aggregate("x BIGINT", &[], &["sum(x)"]);
    let error = sum.process(only(longs(&[-i64::MAX, -2]))).unwrap_err();
    assert!(error.to_string().contains("overflows BIGINT"), "{error}");
}

#[test]
fn int_sums_are_bigint_and_do_not_overflow_at_the_int_boundary() {
    let mut sum = aggregate("x INT", &[], &["sum(x)"]);
    let ints: ArrayRef = Arc::new(Int32Array::from(vec![i32::MAX, i32::MAX]));
    sum.process(only(ints)).unwrap();
    assert_eq!(types(&sum), ["BIGINT"]);
    assert_eq!(result(&mut sum), ["4294967294"]);
}

#[test]
fn try_sum_is_null_for_the_group_that_overflows_and_stays_null_after_a_restore() {
    let ddl = "k STRING, x BIGINT";
    let mut sum = aggregate(ddl, &["k"], &["try_sum(x)"]);
    let batch = |keys: Vec<&str>, values: &[i64]| {
        RecordBatch::try_from_iter([
            ("k", Arc::new(StringArray::from(keys)) as ArrayRef),
            ("x", longs(values)),
        ])
        .unwrap()
    };
    sum.process(batch(vec!["a", "b", "a"], &[i64::MAX, 1, 1]))
        .unwrap();
    assert_eq!(result(&mut sum), ["a|None", "b|1"]);
    let state = sum.snapshot(Epoch(1)).unwrap().delta.into_entries();
    let mut restored = aggregate(ddl, &["k"], &["try_sum(x)"]);
    restored.restore(state).unwrap();
    restored.process(batch(vec!["a", "b"], &[-5, 2])).unwrap();
    assert_eq!(result(&mut restored), ["a|None", "b|3"]);
}

#[test]
fn decimal_sums_widen_by_ten_digits_and_fail_beyond_38() {
    let mut sum = aggregate("x DECIMAL(10,2)", &[], &["sum(x)"]);
    sum.process(only(decimals(&[9_999_999_999], 10, 2)))
        .unwrap();
    assert_eq!(types(&sum), ["DECIMAL(20,2)"]);
    assert_eq!(result(&mut sum), ["99999999.99"]);

    let big = 60_000_000_000_000_000_000_000_000_000_000_000_000i128;
    let mut sum = aggregate("x DECIMAL(38,0)", &[], &["sum(x)"]);
    sum.process(only(decimals(&[big, big], 38, 0))).unwrap();
    let error = sum.emit(OutputMode::Complete).unwrap_err().to_string();
    assert!(error.contains("does not fit DECIMAL(38,0)"), "{error}");

    let mut sum = aggregate("x DECIMAL(38,0)", &[], &["try_sum(x)"]);
    sum.process(only(decimals(&[big, big], 38, 0))).unwrap();
    assert_eq!(result(&mut sum), ["None"]);
}

#[test]
fn decimal_averages_round_half_up_at_four_more_digits() {
    let avg = |values: &[i128], precision: u8, scale: i8| {
        let ddl = format!("x DECIMAL({precision},{scale})");
        let mut avg = aggregate(&ddl, &[], &["avg(x)"]);
        avg.process(only(decimals(values, precision, scale)))
            .unwrap();
        let shown = result(&mut avg).remove(0);
        (types(&avg).remove(0), shown)
    };
    let one_in_32: Vec<i128> = (0..32).map(|i| i128::from(i == 0)).collect();
    let minus_one_in_32: Vec<i128> = one_in_32.iter().map(|v| -v).collect();
    assert_eq!(
        avg(&[1, 1, 0], 5, 0),
        ("DECIMAL(9,4)".into(), "0.6667".into())
    );
    assert_eq!(avg(&[-1, -1, 0], 5, 0).1, "-0.6667");
    assert_eq!(avg(&one_in_32, 5, 0).1, "0.0313");
    assert_eq!(avg(&minus_one_in_32, 5, 0).1, "-0.0313");
    assert_eq!(
        avg(&[125, 250], 10, 2),
        ("DECIMAL(14,6)".into(), "1.875000".into())
    );
    assert_eq!(
        avg(&[100, 201], 36, 2),
        ("DECIMAL(38,6)".into(), "1.505000".into())
    );
    assert_eq!(
        avg(&[1, 2], 38, 0),
        ("DECIMAL(38,4)".into(), "1.5000".into())
    );

    // Past 38 digits but within 128 bits, so that it is the emitted sum that is refused.
    let big = 8 * 10i128.pow(37);
    let mut avg = aggregate("x DECIMAL(38,0)", &[], &["avg(x)"]);
    avg.process(only(decimals(&[big, big], 38, 0))).unwrap();
    let error = avg.emit(OutputMode::Complete).unwrap_err().to_string();
    assert!(
        error.contains("for avg does not fit DECIMAL(38,0)"),
        "{error}"
    );
}

#[test]
fn doubles_propagate_nan_and_order_it_above_every_number() {
    let all = ["sum(x)", "min(x)", "max(x)", "avg(x)"];
    let run = |values: &[f64], aggregates: &[&str]| {
        let mut agg = aggregate("x DOUBLE", &[], aggregates);
        agg.process(only(doubles(values))).unwrap();
        result(&mut agg).remove(0)
    };
    assert_eq!(run(&[1.0, f64::NAN], &all), "nan|1.0|nan|nan");
    assert_eq!(
        run(&[f64::NAN, f64::INFINITY, -1.0], &["min(x)", "max(x)"]),
        "-1.0|nan"
    );
    // A NaN with its sign bit set (what 0.0/0.0 gives on x86) is still above every number.
    assert_eq!(run(&[-f64::NAN, 1.0], &["min(x)", "max(x)"]), "1.0|nan");
    assert_eq!(
        run(&[f64::INFINITY, f64::NEG_INFINITY], &["sum(x)", "avg(x)"]),
        "nan|nan"
    );
    assert_eq!(
        run(&[i64::MAX as f64; 2], &["avg(x)"]),
        "9.223372036854776e18"
    );
}

#[test]
fn negative_zero_equals_zero_the_first_one_met_stays_and_sums_are_positive_zero() {
    let run = |values: &[f64], aggregates: &[&str]| {
        let mut agg = aggregate("x DOUBLE", &[], aggregates);
        agg.process(only(doubles(values))).unwrap();
        result(&mut agg).remove(0)
    };
    assert_eq!(run(&[-0.0, 0.0], &["min(x)", "max(x)"]), "-0.0|-0.0");
    assert_eq!(run(&[0.0, -0.0], &["min(x)", "max(x)"]), "0.0|0.0");
    assert_eq!(run(&[-0.0], &["sum(x)"]), "0.0");
    assert_eq!(run(&[-0.0, -0.0], &["sum(x)"]), "0.0");
}

#[test]
fn grouping_makes_one_group_of_zeros_and_one_of_nans() {
    let mut agg = aggregate("k DOUBLE", &["k"], &["count(*)"]);
    let keys = doubles(&[-0.0, 0.0, f64::NAN, -f64::NAN]);
    agg.process(RecordBatch::try_from_iter([("k", keys)]).unwrap())
        .unwrap();
    assert_eq!(result(&mut agg), ["0.0|2", "nan|2"]);
}

#[test]
fn a_group_of_nulls_sums_to_null_and_counts_zero() {
    let mut agg = aggregate(
        "x INT",
        &[],
        &[
            "sum(x)", "count(x)", "avg(x)", "min(x)", "max(x)", "count(*)",
        ],
    );
    let nulls: ArrayRef = Arc::new(Int32Array::from(vec![None, None]));
    agg.process(only(nulls)).unwrap();
    assert_eq!(
        types(&agg),
        ["BIGINT", "BIGINT", "DOUBLE", "INT", "INT", "BIGINT"]
    );
    assert_eq!(result(&mut agg), ["None|0|None|None|None|2"]);
}
