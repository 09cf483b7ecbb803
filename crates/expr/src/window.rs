//! Event-time windows in an aggregate's `group_by`, as Spark writes them:
//! `window(ts, '10 minutes')`, `window(ts, '10 minutes', '5 minutes')` and
//! `session_window(ts, '30 minutes')`.

use arrow_schema::SchemaRef;
use sqlparser::ast::{self, Value};
use weir_core::{ddl_type_name, is_event_time_type, parse_interval};

use crate::ast::list_args;
use crate::planner::{parse_item, plan_ast};
use crate::{ExprError, Expression};

/// How rows are assigned to windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// `window(time, size[, slide[, start]])`: windows `size_us` long, one starting every
    /// `slide_us` (equal to the size for tumbling windows), offset from the Unix epoch by
    /// `start_us`. A row belongs to every window that covers it.
    Fixed {
        /// Window length in microseconds.
        size_us: i64,
        /// Time between window starts in microseconds.
        slide_us: i64,
        /// Offset of window starts from the Unix epoch in microseconds.
        start_us: i64,
    },
    /// `session_window(time, gap)`: per group key, rows closer than `gap_us` to each other
    /// form one session, from the first row's time to the last row's time plus the gap.
    Session {
        /// Inactivity that closes a session, in microseconds.
        gap_us: i64,
    },
}

/// A planned window call.
#[derive(Debug, Clone)]
pub struct WindowCall {
    /// The event-time argument, planned against the aggregate's input.
    pub time: Expression,
    /// Fixed windows or sessions, and their lengths.
    pub kind: WindowKind,
    /// The output column's name: the alias, else Spark's (`window`, `session_window`).
    pub name: String,
}

const EXPECTED: &str = "window(time, '10 minutes'), window(time, '10 minutes', '5 minutes'), window(time, '10 minutes', '5 minutes', '1 minute') or session_window(time, '30 minutes')";

impl WindowCall {
    /// Plans `text` if it is a window call; `None` when it is some other expression.
    pub fn plan(text: &str, schema: &SchemaRef) -> Option<Result<WindowCall, ExprError>> {
        let (Some(ast::Expr::Function(call)), alias) = parse_item(text).ok()? else {
            return None;
        };
        let function = call.name.to_string().to_lowercase();
        if function != "window" && function != "session_window" {
            return None;
        }
        Some(Self::plan_call(text, &function, &call, alias, schema))
    }

    fn plan_call(
        text: &str,
        function: &str,
        call: &ast::Function,
        alias: Option<String>,
        schema: &SchemaRef,
    ) -> Result<WindowCall, ExprError> {
        let args = list_args(call);
        let shape_ok = match function {
            "window" => (2..=4).contains(&args.len()),
            _ => args.len() == 2,
        };
        if !shape_ok {
            return Err(ExprError::new(format!(
                "\"{text}\": {function} takes {} (expected {EXPECTED})",
                match function {
                    "window" => "a time column and one to three intervals",
                    _ => "a time column and a gap",
                }
            )));
        }
        let time_text = args[0].to_string();
        let time = plan_ast(args[0].clone(), None, &time_text, schema, None)?;
        if !is_event_time_type(time.field().data_type()) {
            return Err(ExprError::new(format!(
                "\"{text}\": the time of a window must be a TIMESTAMP or DATE, but \"{time_text}\" is {}",
                ddl_type_name(time.field().data_type())
            )));
        }
        let mut intervals = Vec::new();
        for arg in &args[1..] {
            intervals.push(interval(text, arg)?);
        }
        let kind = match function {
            "window" => {
                let size_us = intervals[0];
                let slide_us = intervals.get(1).copied().unwrap_or(size_us);
                let start_us = intervals.get(2).copied().unwrap_or(0);
                if size_us <= 0 || slide_us <= 0 {
                    return Err(ExprError::new(format!(
                        "\"{text}\": a window's length and slide must be positive"
                    )));
                }
                if slide_us > size_us {
                    return Err(ExprError::new(format!(
                        "\"{text}\": the slide must not be longer than the window (rows between windows would belong to none)"
                    )));
                }
                if start_us >= slide_us {
                    return Err(ExprError::new(format!(
                        "\"{text}\": the start offset must be shorter than the slide"
                    )));
                }
                WindowKind::Fixed {
                    size_us,
                    slide_us,
                    start_us,
                }
            }
            _ => {
                if intervals[0] <= 0 {
                    return Err(ExprError::new(format!(
                        "\"{text}\": a session's gap must be positive"
                    )));
                }
                WindowKind::Session {
                    gap_us: intervals[0],
                }
            }
        };
        Ok(WindowCall {
            time,
            kind,
            name: alias.unwrap_or_else(|| function.to_string()),
        })
    }
}

/// An interval argument: a string literal such as `'10 minutes'`.
fn interval(text: &str, arg: &ast::Expr) -> Result<i64, ExprError> {
    match arg {
        ast::Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => {
                parse_interval(s).map_err(|e| ExprError::new(format!("\"{text}\": {e}")))
            }
            _ => Err(ExprError::new(format!(
                "\"{text}\": \"{arg}\" is not an interval; write it as a string, such as '10 minutes'"
            ))),
        },
        _ => Err(ExprError::new(format!(
            "\"{text}\": \"{arg}\" is not an interval; write it as a string, such as '10 minutes'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_core::parse_ddl;

    #[test]
    fn plans_windows_with_aliases_and_refuses_bad_ones() {
        let schema = parse_ddl("ts TIMESTAMP, shop STRING, n INT").unwrap();
        let call = WindowCall::plan("window(ts, '10 minutes') AS \"w\"", &schema)
            .unwrap()
            .unwrap();
        assert_eq!(call.name, "w");
        assert_eq!(
            call.kind,
            WindowKind::Fixed {
                size_us: 600_000_000,
                slide_us: 600_000_000,
                start_us: 0
            }
        );
        let session = WindowCall::plan("SESSION_WINDOW(ts, '30 minutes')", &schema)
            .unwrap()
            .unwrap();
        assert_eq!(session.name, "session_window");
        assert!(WindowCall::plan("upper(shop)", &schema).is_none());
        let bad = |text: &str| {
            WindowCall::plan(text, &schema)
                .unwrap()
                .unwrap_err()
                .message
        };
        assert!(bad("window(shop, '1 minute')").contains("must be a TIMESTAMP or DATE"));
        assert!(bad("window(ts, '1 minute', '2 minutes')").contains("must not be longer"));
        assert!(bad("window(ts, 10)").contains("write it as a string"));
        assert!(bad("window(ts, '1 fortnight')").contains("unknown unit"));
    }
}
