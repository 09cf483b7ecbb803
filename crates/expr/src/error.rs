use std::fmt;

/// An expression that cannot be planned: malformed, naming an unknown column or function, or
/// mixing types that do not go together. The user must act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ExprError {
    /// What is wrong and what was expected, quoting the expression.
    pub message: String,
    /// The character (1-based) where a malformed expression stops making sense, if known.
    pub position: Option<usize>,
}

impl ExprError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        ExprError {
            message: message.into(),
            position: None,
        }
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// A failure while evaluating an expression on a batch: a cast that fails, a division by zero,
/// an overflow. The message quotes the expression and DataFusion's account of the value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot evaluate \"{expression}\": {reason}")]
pub struct EvalError {
    /// The expression as the user wrote it.
    pub expression: String,
    /// Why it failed, with the offending value where DataFusion names it.
    pub reason: String,
}
