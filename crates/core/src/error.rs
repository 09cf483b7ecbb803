use std::io;
use std::path::PathBuf;

use arrow_schema::ArrowError;

/// A configuration problem, found before anything runs. The user must act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The key path in the pipeline file, for example `sources.sales.schema`.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl ConfigError {
    /// A new error at `key`.
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A failure while a pipeline runs, grouped by who must act.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input data: the message names the file and line.
    #[error("{0}")]
    Input(String),
    /// The file system or another part of the outside world failed.
    #[error("{action} {path}: {error}")]
    Io {
        /// What Weir was doing, for example "cannot write".
        action: &'static str,
        /// The file or folder concerned.
        path: PathBuf,
        /// The underlying error. Part of the message, and not a `source` as well, so that
        /// printing the error with its causes says it once.
        error: io::Error,
    },
    /// Arrow or parquet refused data; `context` says where.
    #[error("{context}: {error}")]
    Arrow {
        /// Where it happened (a file, a stage).
        context: String,
        /// The underlying error, part of the message (see [`Error::Io`]).
        error: ArrowError,
    },
    /// A stage or actor stopped before the pipeline finished.
    #[error("{0}")]
    Stopped(String),
    /// A stage failed: `stage` names it (`sources.sales`, `operators.by_shop`), and `error`
    /// is what it failed with, whose variant a program can match (`Input` for bad data,
    /// `Io` for the file system, ...).
    #[error("{stage}: {error}")]
    Stage {
        /// The stage, as the pipeline file names it.
        stage: String,
        /// Why it failed.
        error: Box<Error>,
    },
    /// The pipeline does not fit what it finds, such as an address it cannot listen on. The
    /// user must act; the CLI exits 2.
    #[error("{0}")]
    Config(String),
    /// The checkpoint was written by a different pipeline: a source or operator was added,
    /// removed or changed since. The message names each. The CLI exits 2.
    #[error("{0}")]
    DifferentPipeline(String),
    /// The checkpoint store failed; `kind` says how, for a program to act on, and
    /// `message` says it for a person.
    #[error("{message}")]
    Checkpoint {
        /// Which way it failed.
        kind: CheckpointFailure,
        /// What happened, naming the folder.
        message: String,
    },
    /// Something that should not happen: a bug in Weir.
    #[error("this is a bug in weir: {0}")]
    Internal(String),
}

/// Which way the checkpoint store failed ([`Error::Checkpoint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckpointFailure {
    /// Another process holds the store: stop it first.
    Locked,
    /// The store or a stage's state in it does not read back as written.
    Damaged,
    /// The store was written in another checkpoint format (another Weir version).
    Incompatible,
    /// RocksDB failed to open, read or write (permissions, a full disk).
    Store,
    /// A sink's output that the checkpoint names as pending is gone, and was not committed
    /// either: a power loss undid a write. The epoch must be read again from an earlier
    /// checkpoint, which `checkpoint.fall_back` (`weir run --fall-back`) does.
    LostOutput,
}

impl Error {
    /// A checkpoint error of `kind`.
    pub fn checkpoint(kind: CheckpointFailure, message: impl Into<String>) -> Self {
        Error::Checkpoint {
            kind,
            message: message.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, error: io::Error) -> Self {
        Error::Io {
            action,
            path: path.into(),
            error,
        }
    }

    /// An Arrow error with its context.
    pub fn arrow(context: impl Into<String>, error: ArrowError) -> Self {
        Error::Arrow {
            context: context.into(),
            error,
        }
    }
}

/// Result with Weir's runtime [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
