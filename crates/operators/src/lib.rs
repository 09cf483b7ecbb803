//! `weir-operators`: Weir's operators.
//!
//! [`AggregateConfig`] is the `type = "aggregate"` operator: `groupBy(...).agg(...)` with
//! `sum`, `count`, `min`, `max` and `avg`, named as Spark names them. Validating it against its
//! input schema gives an [`AggregateSettings`], whose `build()` gives the running [`Aggregate`],
//! an implementation of [`weir_core::Operator`].
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

mod aggregate;

pub use aggregate::{Aggregate, AggregateConfig, AggregateSettings};
