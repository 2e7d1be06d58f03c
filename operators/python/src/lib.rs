//! `streamml._streamml`: the Python binding of the operator core.
//!
//! A thin leaf: it converts Python objects to Arrow (through the Arrow
//! PyCapsule interface, via pyo3-arrow), calls `streamml-core` with the GIL
//! released, and turns core errors into the exceptions of `streamml.errors`.
//! Everything users import lives in `python/streamml/`.

use pyo3::prelude::*;

mod arrow_io;
mod callable;
mod codec;
mod drift;
mod item_scorer;
mod errors;
mod feedback;
mod fft;
mod model;
mod numpy_io;
mod numpy_out;
mod one_row;
mod py_values;
mod reference;
mod rows;

#[pymodule]
fn _streamml(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("ABI_VERSION", streamml_abi::ABI_VERSION)?;
    m.add("ABI_HEADER", streamml_abi::HEADER)?;
    m.add_class::<model::PyModel>()?;
    m.add_class::<codec::PyMessageScorer>()?;
    m.add_class::<drift::PyDriftCounters>()?;
    m.add_class::<item_scorer::ItemScorer>()?;
    m.add_class::<feedback::PyFeedbackJoinState>()?;
    fft::register(m)?;
    reference::register(m)?;
    Ok(())
}
