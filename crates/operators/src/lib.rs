//! `weir-operators`: Weir's operators.
//!
//! [`AggregateConfig`] is the `type = "aggregate"` operator: `groupBy(...).agg(...)` with
//! `sum`, `count`, `min`, `max` and `avg` over columns or expressions, named as Spark names
//! them. Validating it against its input schema gives an [`AggregateSettings`], whose
//! `build()` gives the running [`Aggregate`], an implementation of [`weir_core::Operator`].
//! [`FilterConfig`] (`type = "filter"`), [`SelectConfig`] (`type = "select"`) and
//! [`SqlConfig`] (`type = "sql"`, planned into those three) follow the same pattern. Every
//! expression is planned and evaluated by `weir-expr`. The `expressions` feature (on by
//! default) brings those three and expressions in aggregates; without it, aggregates take
//! plain column names and nothing links DataFusion.
//!
//! ```
//! use weir_core::{parse_ddl, OutputMode, Operator};
//! use weir_operators::AggregateConfig;
//!
//! let input = parse_ddl("Shop STRING, Sale_Count INT").unwrap();
//! let config = AggregateConfig {
//!     group_by: vec!["Shop".into()],
//!     aggregates: vec!["sum(Sale_Count)".into(), "count(*) as sales".into()],
//! };
//! let settings = config.validate(&input).unwrap();
//! let names: Vec<_> = settings.output_schema().fields().iter().map(|f| f.name().clone()).collect();
//! assert_eq!(names, ["Shop", "sum(Sale_Count)", "sales"]);
//! let mut aggregate = settings.build().unwrap();
//! assert!(aggregate.emit(OutputMode::Complete).unwrap().is_none());
//! ```

mod accumulator;
mod aggregate;
#[cfg(not(feature = "expressions"))]
mod columns;
mod dedup;
#[cfg(feature = "expressions")]
mod filter;
mod keys;
#[cfg(feature = "expressions")]
mod select;
#[cfg(feature = "expressions")]
mod session;
#[cfg(feature = "expressions")]
mod sql;
#[cfg(feature = "expressions")]
mod window;

/// What the aggregate plans its keys and arguments with: DataFusion's expressions, or plain
/// columns in a build without the `expressions` feature.
mod expr {
    #[cfg(not(feature = "expressions"))]
    pub(crate) use crate::columns::{AggregateCall, AggregateFunction, Expression};
    #[cfg(feature = "expressions")]
    pub(crate) use weir_expr::{AggregateCall, AggregateFunction, Expression};
}

pub use aggregate::{Aggregate, AggregateConfig, AggregateSettings};

/// Why a sink reading a plain aggregate may not use `append` mode (Spark's rule).
pub const AGGREGATE_APPEND_REFUSAL: &str = "reads an aggregate, whose rows change as data arrives";
pub use dedup::{Deduplicate, DeduplicateConfig, DeduplicateSettings};
#[cfg(feature = "expressions")]
pub use filter::{Filter, FilterConfig, FilterSettings};
#[cfg(feature = "expressions")]
pub use select::{Select, SelectConfig, SelectSettings};
#[cfg(feature = "expressions")]
pub use session::SessionAggregate;
#[cfg(feature = "expressions")]
pub use sql::{SqlConfig, SqlOperator, SqlSettings};
#[cfg(feature = "expressions")]
pub use window::{WindowedAggregate, WindowedSettings};
