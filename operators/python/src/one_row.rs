//! The Python side of the core's one-row path ([`streamml_core::one_row`]):
//! a dict's values into the reusable one-row array, the binary's output
//! into Python values. The checks and the array are the core's; this module
//! only converts Python values.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyString};
use pyo3::IntoPyObjectExt;
use streamml_core::one_row::{read_row, OutValue};
pub use streamml_core::one_row::OneRow;

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};

use crate::rows::cell;

/// Write the dict's values (by `keys`, the input names) into the row;
/// `false` if one is absent or breaks a row check (the general path then
/// names the reason).
pub fn fill(one: &mut OneRow, dict: &Bound<'_, PyDict>, keys: &[Py<PyString>]) -> bool {
    let py = dict.py();
    if one.all_float64() {
        if let Some(filled) = fill_floats(one, dict, keys) {
            return filled;
        }
    }
    let mut values = Vec::with_capacity(keys.len());
    for key in keys {
        match dict.get_item(key.bind(py)) {
            Ok(Some(v)) => values.push(v),
            _ => return false,
        }
    }
    let mut cells = Vec::with_capacity(values.len());
    for v in &values {
        match cell(v) {
            Ok(c) => cells.push(c),
            Err(_) => return false,
        }
    }
    one.fill(&cells).is_ok()
}

/// The float fast path (no cells): Python floats and ints straight into an
/// all-float64 row. `Some(false)` if a key is absent, `None` if a value is
/// of another type (the cell path then checks and writes the whole row).
fn fill_floats(one: &mut OneRow, dict: &Bound<'_, PyDict>, keys: &[Py<PyString>]) -> Option<bool> {
    let py = dict.py();
    for (i, key) in keys.iter().enumerate() {
        let Ok(Some(v)) = dict.get_item(key.bind(py)) else {
            return Some(false);
        };
        if let Ok(f) = v.cast::<PyFloat>() {
            one.set_f64(i, f.value());
        } else if v.is_exact_instance_of::<PyInt>() {
            // Beyond i64 (or another failure) the cell path decides.
            one.set_f64(i, v.extract::<i64>().ok()? as f64);
        } else {
            return None;
        }
    }
    Some(true)
}

/// An output value as a Python object.
pub fn to_py(py: Python<'_>, value: OutValue<'_>) -> PyResult<Py<PyAny>> {
    match value {
        OutValue::Null => Ok(py.None()),
        OutValue::F64(v) => v.into_py_any(py),
        OutValue::F32(v) => f64::from(v).into_py_any(py),
        OutValue::I64(v) => v.into_py_any(py),
        OutValue::I32(v) => v.into_py_any(py),
        OutValue::I16(v) => v.into_py_any(py),
        OutValue::I8(v) => v.into_py_any(py),
        OutValue::U64(v) => v.into_py_any(py),
        OutValue::U32(v) => v.into_py_any(py),
        OutValue::U16(v) => v.into_py_any(py),
        OutValue::U8(v) => v.into_py_any(py),
        OutValue::Bool(v) => v.into_py_any(py),
        OutValue::Str(v) => v.into_py_any(py),
    }
}

/// Set `target[keys[i]]` to row 0 of the output's child `i`, read in place
/// by the core; `Ok(false)` if a column's type needs the general import
/// (nothing is set then).
pub fn read_output(
    target: &Bound<'_, PyDict>,
    keys: &[Py<PyString>],
    array: &FFI_ArrowArray,
    schema: &FFI_ArrowSchema,
) -> PyResult<bool> {
    let py = target.py();
    if array.num_children() != keys.len() {
        return Ok(false);
    }
    // SAFETY: the core checked the output against the declared outputs (one row).
    unsafe {
        read_row(array, schema, 0, |i, v| {
            target.set_item(keys[i].bind(py), to_py(py, v)?)
        })
    }
}
