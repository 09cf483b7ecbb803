//! Spark's semantics where DataFusion's differ, as scalar functions the planner substitutes.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, Float64Array};
use arrow_schema::DataType;
use datafusion_common::{exec_err, Result};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, TypeSignature, Volatility,
};

/// Spark's `/` on numbers that are not DECIMAL: both sides as DOUBLE, and a zero divisor is
/// an error (`DIVIDE_BY_ZERO` in Spark 4's ANSI mode) rather than DataFusion's infinity.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct SparkDivide {
    signature: Signature,
}

impl SparkDivide {
    pub(crate) fn new() -> Self {
        SparkDivide {
            signature: Signature::new(
                TypeSignature::Uniform(2, vec![DataType::Float64]),
                Volatility::Immutable,
            ),
        }
    }
}

impl ScalarUDFImpl for SparkDivide {
    fn name(&self) -> &str {
        "spark_divide"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn display_name(&self, args: &[datafusion_expr::Expr]) -> Result<String> {
        match args {
            [left, right] => Ok(format!("({left} / {right})")),
            _ => Ok("/".into()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [left, right] = args.args.as_slice() else {
            return exec_err!("/ takes two operands");
        };
        let left = left.to_array(rows)?;
        let right = right.to_array(rows)?;
        let (Some(left), Some(right)) = (
            left.as_primitive_opt::<Float64Type>(),
            right.as_primitive_opt::<Float64Type>(),
        ) else {
            return exec_err!("/ expects DOUBLE operands after coercion");
        };
        let mut out = Vec::with_capacity(rows);
        for i in 0..rows {
            if left.is_null(i) || right.is_null(i) {
                out.push(None);
                continue;
            }
            let divisor = right.value(i);
            if divisor == 0.0 {
                return exec_err!(
                    "division by zero: {} / {divisor} (Spark's ANSI mode refuses it; use try_divide or NULLIF(divisor, 0) to get NULL)",
                    left.value(i)
                );
            }
            out.push(Some(left.value(i) / divisor));
        }
        Ok(ColumnarValue::Array(Arc::new(Float64Array::from(out))))
    }
}
