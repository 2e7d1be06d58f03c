//! The core's errors. Every message names the file or the column and says
//! what was expected, what was found and, where it helps, what to do.

use std::path::PathBuf;

use streamml_abi::InfoError;

/// A panic's payload as text, for the error that replaces it.
pub(crate) use streamml_abi::panic_message as panic_text;

/// Any error of the core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Input(#[from] InputError),
    #[error(transparent)]
    Predict(#[from] PredictError),
}

/// A model binary that could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load model binary '{}': {kind}", path.display())]
pub struct LoadError {
    pub path: PathBuf,
    pub kind: LoadErrorKind,
}

/// Why a model binary could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadErrorKind {
    #[error("cannot read the file: {0}")]
    Io(#[from] std::io::Error),
    #[error("sha256 is {got}, expected {expected}; the file is not the binary you meant to load")]
    ShaMismatch { expected: String, got: String },
    #[error("it is {0}; a model binary must be a regular file")]
    NotRegularFile(&'static str),
    #[error(
        "the file has {size} bytes, over the cap of {cap}; if this binary is meant to be that \
         large, raise the cap (STREAMML_MAX_MODEL_BYTES or the host's max_bytes option)"
    )]
    TooLarge { size: u64, cap: u64 },
    #[error("not a well-formed shared library for this machine: {0}")]
    BadElf(String),
    #[error(
        "its sha256 {sha256} is not in the {source_name} ({count} digest(s)); loading a binary runs \
         its code, so only listed binaries load: add the digest there if you trust this file"
    )]
    Untrusted {
        sha256: String,
        source_name: String,
        count: usize,
    },
    #[error("{0}")]
    BadOption(String),
    #[error(
        "the binary's drift_reference is invalid: {0}; re-compile it with a valid --reference"
    )]
    BadDriftReference(String),
    /// A compiled binary whose footer or IR is invalid (seen without loading it).
    #[error("{0}")]
    NotCompiled(String),
    #[error("not a loadable shared library ({0})")]
    NotALibrary(String),
    #[error(
        "the library does not export `streamml_model_init`; it is not a streamml model binary"
    )]
    NoEntryPoint,
    #[error("the binary does not speak streamml ABI v{host}: {message}")]
    UnsupportedAbi { host: u32, message: String },
    #[error("the binary's init failed with status {status}: {message}")]
    InitFailed { status: i32, message: String },
    #[error("the binary's function table is incomplete: {0} is null")]
    IncompleteTable(&'static str),
    #[error("the binary's info is invalid: {0}")]
    BadInfo(#[from] InfoError),
}

impl LoadError {
    pub(crate) fn new(path: impl Into<PathBuf>, kind: impl Into<LoadErrorKind>) -> Self {
        Self {
            path: path.into(),
            kind: kind.into(),
        }
    }
}

/// A batch that does not fit the model's declared inputs.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InputError {
    #[error("missing required column '{column}'; the batch has columns [{available}]")]
    MissingColumn { column: String, available: String },
    #[error("column '{column}' has type {got}, expected {expected}; {hint}")]
    WrongType {
        column: String,
        expected: String,
        got: String,
        hint: String,
    },
    #[error(
        "column '{column}' is not nullable but has {count} null(s), the first at row {first_row}; \
         fill or drop them before scoring"
    )]
    Nulls {
        column: String,
        count: usize,
        first_row: usize,
    },
    #[error("column '{column}' cannot be cast to {expected}: {reason}")]
    Cast {
        column: String,
        expected: String,
        reason: String,
    },
    #[error("row {row}: {reason}")]
    Row { row: usize, reason: String },
    #[error("{0}")]
    Other(String),
}

/// A model that failed to score a batch, or returned something unusable.
#[derive(Debug, thiserror::Error)]
#[error("{origin} failed on a batch of {rows} row(s): {reason}")]
pub struct PredictError {
    /// What ran: `model binary '/path/m.so'` or `python callable 'fn'`.
    pub origin: String,
    pub rows: usize,
    pub reason: String,
    /// The ABI status (`STATUS_*`), when the model returned one.
    pub status: Option<i32>,
}
