//! The streamml operator core.
//!
//! Loads and verifies model binaries ([`NativeModel`]), maps and casts input
//! columns to what a model declares ([`input`]), scores batches through any
//! [`Backend`] ([`Model`]), builds Arrow batches from rows ([`rows`]) and
//! scores single rows with no builders ([`one_row`]). The micro-batching rule
//! lives with the hosts, which own the clock and the rows
//! (`streamml.batching`, `dev.streamml.flink.MicroBatcher`), proven equal by
//! one table of cases (`tests/fixtures/batching.json`).
//!
//! This crate knows no host: the Python binding and the JNI shim are thin
//! leaves over it.

pub mod backend;
pub mod codec;
pub mod error;
pub mod input;
pub mod loader;
pub mod model;
pub mod one_row;
pub mod reference;
pub mod rows;
pub mod trust;
pub mod vet;

pub use error::{Error, InputError, LoadError, LoadErrorKind, PredictError};
pub use loader::{inspect_compiled, LoadOptions, NativeModel};
pub use trust::TrustList;
pub use reference::{ModelRef, ReferenceError, Resolved};
pub use backend::Backend;
pub use model::Model;
pub use streamml_abi::{FieldSpec, ModelInfo, Task};
pub mod drift;
pub mod feedback;
