//! The model IR of `streamml compile` (`docs/ir.md`), shared by the
//! evaluator (which runs it) and the core (whose `inspect` reads a compiled
//! binary's info without loading it): parse the document, validate it as a
//! forest, read the checksummed footer, and build the info document. One
//! crate, so both give the same info and refuse the same documents.

pub mod catboost;
pub mod footer;
pub mod info;
pub mod ir;
pub mod oblivious;
pub mod plan;
pub mod validate;

pub use footer::{footer_for, has_footer, read_payload, FOOTER_LEN, FOOTER_MAGIC, FOOTER_MAGIC_V1};
pub use info::build_info;
pub use ir::{
    Ir, LinearIr, ModelIr, OneHotColumn, Op, OrdinalColumn, Part, Preprocess, Step, TreeIr, TreesIr,
};
pub use plan::{InputType, Plan};
pub use oblivious::{IsolationIr, ObliviousIr, ObliviousTreeIr};
pub use validate::{validate, BinaryLabel, Checked, Classes, Link};

/// Parse and validate an IR document.
pub fn load(text: &str) -> Result<(Ir, Checked), String> {
    let ir = Ir::parse(text)?;
    let checked = validate(&ir)?;
    Ok((ir, checked))
}

/// The info document of a compiled binary (a whole file's bytes), read from
/// its footer and IR without running any of it.
pub fn info_of_binary(bytes: &[u8]) -> Result<streamml_abi::ModelInfo, String> {
    let (ir, checked) = load(read_payload(bytes)?)?;
    Ok(build_info(&ir, &checked))
}

#[cfg(test)]
mod tests;
