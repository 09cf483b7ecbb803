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

/// Spark's integer `+`, `-` and `*`: an overflow is an error (`ARITHMETIC_OVERFLOW` in Spark
/// 4's ANSI mode), where DataFusion wraps. Substituted after type coercion, so both operands
/// already have the same integer type, which is also the result's.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct SparkArithmetic {
    op: ArithmeticOp,
    signature: Signature,
}

/// The checked operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum ArithmeticOp {
    Add,
    Subtract,
    Multiply,
}

impl SparkArithmetic {
    pub(crate) fn new(op: ArithmeticOp) -> Self {
        SparkArithmetic {
            op,
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for SparkArithmetic {
    fn name(&self) -> &str {
        match self.op {
            ArithmeticOp::Add => "spark_add",
            ArithmeticOp::Subtract => "spark_subtract",
            ArithmeticOp::Multiply => "spark_multiply",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types.first() {
            Some(t) => Ok(t.clone()),
            None => exec_err!("{} takes two operands", self.name()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [left, right] = args.args.as_slice() else {
            return exec_err!("{} takes two operands", self.name());
        };
        if let (ColumnarValue::Scalar(_), ColumnarValue::Scalar(_)) = (left, right) {
            // Both constant (the simplifier folds these): compute once, as arrays of one.
            let (l, r) = (left.to_array(1)?, right.to_array(1)?);
            let array = self.apply(&l, &r)?;
            let scalar = datafusion_common::ScalarValue::try_from_array(&array, 0)?;
            return Ok(ColumnarValue::Scalar(scalar));
        }
        // A literal operand (`Sale_Count * 3`) goes to the kernel as a scalar, not as an
        // array of `rows` copies.
        let datum = |v: &ColumnarValue| -> Result<Box<dyn arrow_array::Datum>> {
            Ok(match v {
                ColumnarValue::Array(a) => Box::new(a.clone()),
                ColumnarValue::Scalar(s) => Box::new(s.to_scalar()?),
            })
        };
        let array = self.apply(datum(left)?.as_ref(), datum(right)?.as_ref())?;
        Ok(ColumnarValue::Array(array))
    }
}

impl SparkArithmetic {
    fn apply(
        &self,
        left: &dyn arrow_array::Datum,
        right: &dyn arrow_array::Datum,
    ) -> Result<arrow_array::ArrayRef> {
        // arrow's add, sub and mul are the checked kernels: they refuse an overflow.
        let result = match self.op {
            ArithmeticOp::Add => arrow_arith::numeric::add(left, right),
            ArithmeticOp::Subtract => arrow_arith::numeric::sub(left, right),
            ArithmeticOp::Multiply => arrow_arith::numeric::mul(left, right),
        };
        match result {
            Ok(array) => Ok(array),
            Err(e) => exec_err!(
                "{e} (Spark's ANSI mode refuses an integer overflow; CAST an operand to BIGINT or DOUBLE first)"
            ),
        }
    }
}
