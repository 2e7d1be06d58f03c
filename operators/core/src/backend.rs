//! [`Backend`]: what runs under a [`crate::Model`] — a model binary
//! ([`crate::NativeModel`]) or a host's own code (the Python binding's
//! callables). `Model` puts the same checks around every backend.

use std::any::Any;

use arrow_array::RecordBatch;
use streamml_abi::ModelInfo;

use crate::error::PredictError;

/// Something that scores batches of a model's declared inputs.
///
/// `Any`, so a [`crate::Model`] can tell whether a model binary runs
/// underneath ([`crate::Model::native`]) without this trait naming one.
pub trait Backend: Any + Send + Sync {
    /// The model's description.
    fn info(&self) -> &ModelInfo;
    /// What runs, for error messages: `model binary '/m.so'`.
    fn origin(&self) -> &str;
    /// The SHA-256 of the binary, when there is one.
    fn sha256(&self) -> Option<&str>;
    /// Score a non-empty batch holding exactly the declared inputs.
    fn score(&self, input: &RecordBatch) -> Result<RecordBatch, PredictError>;
}
