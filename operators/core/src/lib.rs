//! The streamml operator core.
//!
//! Loads and verifies model binaries ([`NativeModel`]), maps and casts input
//! columns to what a model declares ([`input`]), scores batches through any
//! [`Scorer`] ([`Model`]), builds Arrow batches from rows ([`rows`]), scores
//! single rows with no builders ([`one_row`]) and
//! groups rows into micro-batches by the design's rule ([`batcher`]).
//!
//! This crate knows no host: the Python binding and the JNI shim are thin
//! leaves over it.

pub mod batcher;
pub mod codec;
pub mod error;
pub mod input;
pub mod loader;
pub mod model;
pub mod one_row;
pub mod rows;
pub mod trust;
pub mod vet;

pub use batcher::{Batch, BatchPolicy, FlushReason, MicroBatcher};
pub use error::{Error, InputError, LoadError, LoadErrorKind, PredictError};
pub use loader::{inspect_compiled, LoadOptions, NativeModel};
pub use trust::TrustList;
pub use model::{Model, Scorer};
pub use streamml_abi::{FieldSpec, ModelInfo, Task};
pub mod drift;
pub mod feedback;
