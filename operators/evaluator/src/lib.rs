//! The evaluator behind `streamml compile`.
//!
//! Built once (`cargo build -p streamml-evaluator`) and shipped with the
//! Python package. Compiling a model copies this library and appends the
//! model's IR (`docs/ir.md`) and a footer; at init the library reads its own
//! file, checks the footer's checksum, validates the IR (`streamml-ir`) and
//! builds compact evaluation structures. So compiling
//! needs no toolchain, and the binary's SHA-256 covers the model.

mod bits;
mod cityhash;
mod compact;
mod forest;
mod ir;
mod linear;
mod model;
mod oblivious;
mod payload;
mod prep;
mod refill;

pub use ir::Ir;
pub use model::Evaluator;
pub use streamml_ir::{read_payload, FOOTER_MAGIC};

streamml_sdk::export_model!(try Evaluator::from_own_file());
