//! `weir-expr`: Weir's expressions, as Spark users write them, planned and evaluated by
//! DataFusion. This is the only crate that links DataFusion (design.md §9).
//!
//! [`Expression::plan`] parses a Spark-style expression (`"upper(Shop) AS shop"`), resolves
//! its columns as Spark does (case-insensitively, keeping the schema's spelling), plans it
//! with DataFusion's SQL front end and type coercion, and gives something that
//! [`Expression::evaluate`]s a batch. [`AggregateCall::plan`] does the same for an aggregate
//! (`"sum(price * qty) AS revenue"`), and [`QueryPlan::plan`] turns a `SELECT` over one
//! input into the filter, aggregate and select stages Weir runs.
//!
//! ```
//! use std::sync::Arc;
//! use arrow_array::{Int32Array, RecordBatch, StringArray};
//! use arrow_schema::{DataType, Field, Schema};
//! use weir_expr::Expression;
//!
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("Shop", DataType::Utf8, true),
//!     Field::new("Sale_Count", DataType::Int32, true),
//! ]));
//! let batch = RecordBatch::try_new(schema.clone(), vec![
//!     Arc::new(StringArray::from(vec!["a", "b"])),
//!     Arc::new(Int32Array::from(vec![1, 700])),
//! ]).unwrap();
//! let size = Expression::plan(
//!     "CASE WHEN sale_count > 500 THEN 'big' ELSE 'small' END AS size",
//!     &schema,
//! ).unwrap();
//! let sizes = size.evaluate(&batch).unwrap();
//! assert_eq!(size.name(), "size");
//! assert_eq!(arrow_cast::display::array_value_to_string(&sizes, 1).unwrap(), "big");
//! ```

mod aggregate;
mod ast;
mod error;
mod planner;
mod query;
mod spark;
mod window;

pub use aggregate::{AggregateCall, AggregateFunction};
pub use error::{EvalError, ExprError};
pub use planner::{check_condition, output_schema, Expression, AGGREGATE_FUNCTIONS};
pub use query::QueryPlan;
pub use window::{WindowCall, WindowKind};
