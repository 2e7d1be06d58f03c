//! A model's outputs as NumPy arrays: `{output name: numpy.ndarray}`.
//!
//! Numbers and bools become 1-D arrays of their type, a fixed-size list of
//! numbers (per-class probabilities) a 2-D `(rows, size)` array, anything
//! else (strings, columns with nulls) what pyarrow's `to_numpy` makes of it.
//! A binary's output in the C Data Interface is read in place when every
//! column is a null-free number, bool or list of numbers (no import into
//! arrow-rs: this is the one-row path); otherwise it is imported first.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::types::{
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, UInt16Type, UInt32Type,
    UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, StructArray};
use arrow_schema::{Field, Fields};
use numpy::PyArray1;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::{new_err, Kind};

/// The outputs of a batch: `keys[i]` -> column `i`.
pub fn to_dict<'py>(
    py: Python<'py>,
    keys: &[Py<PyString>],
    columns: &[ArrayRef],
    fields: &Fields,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for ((key, column), field) in keys.iter().zip(columns).zip(fields) {
        dict.set_item(key.bind(py), to_numpy(py, column, field)?)?;
    }
    Ok(dict)
}

/// The outputs of a binary, as it returned them (checked by the core
/// against its declared outputs, see `NativeModel::predict_c`).
pub fn c_to_dict<'py>(
    py: Python<'py>,
    keys: &[Py<PyString>],
    fields: &Fields,
    array: FFI_ArrowArray,
    schema: FFI_ArrowSchema,
) -> PyResult<Bound<'py, PyDict>> {
    let n = array.num_children();
    let readable = n == keys.len()
        && array.null_count_opt() == Some(0)
        && (0..n).all(|i| in_place(array.child(i), schema.child(i)).is_some());
    if readable {
        let dict = PyDict::new(py);
        for (i, key) in keys.iter().enumerate() {
            let (kind, size) = in_place(array.child(i), schema.child(i)).expect("checked above");
            // SAFETY: the core checked the output against the declared
            // outputs: `rows` values of the child's type after its offsets.
            let value =
                unsafe { read_c(py, array.child(i), kind, size, array.offset(), array.len()) };
            dict.set_item(key.bind(py), value?)?;
        }
        return Ok(dict);
    }
    // SAFETY: as above; arrow-rs imports the array by move.
    let data = unsafe { from_ffi(array, &schema) }.map_err(|e| {
        new_err(
            Kind::Predict,
            format!("cannot read the model's output: {e}"),
        )
    })?;
    let out = StructArray::from(data);
    to_dict(py, keys, out.columns(), fields)
}

/// A column's values as NumPy reads them in place.
#[derive(Clone, Copy)]
enum Values {
    F64,
    F32,
    I64,
    I32,
    Bool,
}

/// How to read `child` (and a list's width) in place; `None`: import it.
fn in_place(child: &FFI_ArrowArray, schema: &FFI_ArrowSchema) -> Option<(Values, usize)> {
    if child.null_count_opt() != Some(0) {
        return None;
    }
    let kind = |format: &str| match format {
        "g" => Some(Values::F64),
        "f" => Some(Values::F32),
        "l" => Some(Values::I64),
        "i" => Some(Values::I32),
        "b" => Some(Values::Bool),
        _ => None,
    };
    let format = schema.format();
    if let Some(size) = format.strip_prefix("+w:") {
        let size = size.parse().ok()?;
        let values = child.child(0);
        return match kind(schema.child(0).format())? {
            Values::Bool => None,
            _ if values.null_count_opt() != Some(0) || child.num_children() != 1 => None,
            k => Some((k, size)),
        };
    }
    Some((kind(format)?, 0))
}

/// Rows `offset..offset + rows` of `child` (of a struct at `offset`) as a
/// 1-D array, or a 2-D `(rows, size)` array for a fixed-size list.
///
/// # Safety
/// `child` must hold those rows of the type `kind` (and width `size`).
unsafe fn read_c<'py>(
    py: Python<'py>,
    child: &FFI_ArrowArray,
    kind: Values,
    size: usize,
    offset: usize,
    rows: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let (values, start, count) = if size == 0 {
        (child, child.offset() + offset, rows)
    } else {
        let values = child.child(0);
        let start = values.offset() + (child.offset() + offset) * size;
        (values, start, rows * size)
    };
    let data = values.buffer(1);
    let flat = match kind {
        Values::F64 => PyArray1::from_slice(py, slice::<f64>(data, start, count)).into_any(),
        Values::F32 => PyArray1::from_slice(py, slice::<f32>(data, start, count)).into_any(),
        Values::I64 => PyArray1::from_slice(py, slice::<i64>(data, start, count)).into_any(),
        Values::I32 => PyArray1::from_slice(py, slice::<i32>(data, start, count)).into_any(),
        Values::Bool => {
            let bit = |i: usize| (*data.add((start + i) / 8) >> ((start + i) % 8)) & 1 == 1;
            PyArray1::from_iter(py, (0..count).map(bit)).into_any()
        }
    };
    if size == 0 {
        Ok(flat)
    } else {
        flat.call_method1(intern!(py, "reshape"), ((rows, size),))
    }
}

/// `count` values of `T` from `start` of a values buffer (an empty slice
/// for no values, whatever the pointer).
unsafe fn slice<'a, T>(data: *const u8, start: usize, count: usize) -> &'a [T] {
    if count == 0 || data.is_null() {
        return &[];
    }
    std::slice::from_raw_parts(data.cast::<T>().add(start), count)
}

/// An output column as a NumPy array (see the module docs).
fn to_numpy<'py>(
    py: Python<'py>,
    column: &ArrayRef,
    field: &Arc<Field>,
) -> PyResult<Bound<'py, PyAny>> {
    if column.null_count() == 0 {
        if let Some(array) = flat(py, column.as_ref()) {
            return Ok(array);
        }
        if let Some(list) = column.as_fixed_size_list_opt() {
            let size = list.value_length() as usize;
            if list.values().null_count() == 0 {
                if let Some(flat) = flat(py, list.values().as_ref()) {
                    return flat.call_method1(intern!(py, "reshape"), ((list.len(), size),));
                }
            }
        }
    }
    let kwargs = PyDict::new(py);
    kwargs.set_item(intern!(py, "zero_copy_only"), false)?;
    let array = pyo3_arrow::PyArray::new(column.clone(), field.clone());
    let array = array.to_pyarrow(py)?.unbind();
    array
        .bind(py)
        .call_method(intern!(py, "to_numpy"), (), Some(&kwargs))
}

/// A null-free primitive or boolean array as a 1-D NumPy array (copied).
fn flat<'py>(py: Python<'py>, array: &dyn Array) -> Option<Bound<'py, PyAny>> {
    macro_rules! primitive {
        ($($t:ty),*) => {$(
            if let Some(a) = array.as_primitive_opt::<$t>() {
                return Some(PyArray1::from_slice(py, a.values()).into_any());
            }
        )*};
    }
    primitive!(
        Float64Type,
        Float32Type,
        Int64Type,
        Int32Type,
        Int16Type,
        Int8Type,
        UInt64Type,
        UInt32Type,
        UInt16Type,
        UInt8Type
    );
    let bools = array.as_boolean_opt()?;
    Some(PyArray1::from_iter(py, bools.values().iter()).into_any())
}
