//! The IR types, from the shared `streamml-ir` crate.

pub use streamml_ir::ir::*;
