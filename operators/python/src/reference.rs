//! Model references for Python: `resolve_reference` and `set_alias` over the
//! core's `reference` module (model directories and plain paths).

use std::path::PathBuf;

use pyo3::prelude::*;
use streamml_core::{ModelRef, ReferenceError};

use crate::errors::{load_err, new_err, Kind};

fn reference_err(e: ReferenceError) -> PyErr {
    match e {
        ReferenceError::Load(e) => load_err(e),
        ReferenceError::Layout(m) => new_err(Kind::Load, m),
    }
}

/// The binary a reference (a path, `DIR` or `DIR@ALIAS`) names now:
/// `(path, sha256, version or None)`. Raises `ModelLoadError`.
#[pyfunction]
#[pyo3(signature = (reference, max_bytes=None))]
fn resolve_reference(
    py: Python<'_>,
    reference: String,
    max_bytes: Option<u64>,
) -> PyResult<(PathBuf, String, Option<String>)> {
    let resolved = py
        .detach(|| ModelRef::parse(&reference).resolve(max_bytes))
        .map_err(reference_err)?;
    Ok((resolved.path, resolved.sha256, resolved.version))
}

/// What a reference is without resolving it: `("file", path, None)` or
/// `("directory", dir, alias)`.
#[pyfunction]
fn parse_reference(reference: &str) -> (&'static str, PathBuf, Option<String>) {
    match ModelRef::parse(reference) {
        ModelRef::File(path) => ("file", path, None),
        ModelRef::Directory { dir, alias } => ("directory", dir, Some(alias)),
    }
}

/// Point `alias` of model directory `dir` at `version`, atomically.
#[pyfunction]
fn set_alias(dir: PathBuf, alias: &str, version: &str) -> PyResult<()> {
    streamml_core::reference::set_alias(&dir, alias, version).map_err(reference_err)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(resolve_reference, m)?)?;
    m.add_function(wrap_pyfunction!(set_alias, m)?)?;
    m.add_function(wrap_pyfunction!(parse_reference, m)?)?;
    Ok(())
}
