//! Arrow to Python values: one cell of an array (for output dicts), and
//! field names as the dicts' keys.

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::Array;
use arrow_schema::{DataType, Schema};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyString};
use pyo3::IntoPyObjectExt;

use crate::errors::{new_err, Kind};

/// The names of `schema`'s fields as interned Python strings: dict keys
/// for inputs read and outputs written, made once per model.
pub(crate) fn field_keys(py: Python<'_>, schema: &Schema) -> Vec<Py<PyString>> {
    schema
        .fields()
        .iter()
        .map(|f| PyString::intern(py, f.name()).unbind())
        .collect()
}

/// The value at `row` of `array`: floats, ints, bools, strings, lists of
/// them; `None` for a null.
pub fn value(py: Python<'_>, array: &dyn Array, row: usize) -> PyResult<Py<PyAny>> {
    if array.is_null(row) {
        return Ok(py.None());
    }
    use DataType::*;
    match array.data_type() {
        Float64 => array.as_primitive::<Float64Type>().value(row).into_py_any(py),
        Float32 => f64::from(array.as_primitive::<Float32Type>().value(row)).into_py_any(py),
        Int64 => array.as_primitive::<Int64Type>().value(row).into_py_any(py),
        Int32 => array.as_primitive::<Int32Type>().value(row).into_py_any(py),
        Int16 => array.as_primitive::<Int16Type>().value(row).into_py_any(py),
        Int8 => array.as_primitive::<Int8Type>().value(row).into_py_any(py),
        UInt64 => array.as_primitive::<UInt64Type>().value(row).into_py_any(py),
        UInt32 => array.as_primitive::<UInt32Type>().value(row).into_py_any(py),
        UInt16 => array.as_primitive::<UInt16Type>().value(row).into_py_any(py),
        UInt8 => array.as_primitive::<UInt8Type>().value(row).into_py_any(py),
        Boolean => array.as_boolean().value(row).into_py_any(py),
        Utf8 => array.as_string::<i32>().value(row).into_py_any(py),
        LargeUtf8 => array.as_string::<i64>().value(row).into_py_any(py),
        List(_) => list(py, array.as_list::<i32>().value(row).as_ref()),
        LargeList(_) => list(py, array.as_list::<i64>().value(row).as_ref()),
        FixedSizeList(_, _) => list(py, array.as_fixed_size_list().value(row).as_ref()),
        other => Err(new_err(
            Kind::Predict,
            format!("an output of type {other} cannot become a Python value; score Arrow batches instead"),
        )),
    }
}

fn list(py: Python<'_>, values: &dyn Array) -> PyResult<Py<PyAny>> {
    let items = (0..values.len())
        .map(|i| value(py, values, i))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, items)?.into_any().unbind())
}
