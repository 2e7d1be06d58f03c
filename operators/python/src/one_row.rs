//! The one-row fast path: a dict straight into a C struct array the binary
//! reads, the binary's output straight into Python values.
//!
//! For a binary whose inputs are all float64, a scorer keeps one C struct
//! array of one row whose children point into a buffer it owns; a call
//! writes the dict's numbers into that buffer and hands the array to the
//! binary (input is borrowed by the ABI), with no Arrow builders and no
//! pyarrow. Anything unusual (a missing field, a null, a value that is not a
//! float or an int) returns `None` and takes the general path, which names
//! the reason.

use std::ptr::NonNull;
use std::sync::Arc;

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_buffer::alloc::Allocation;
use arrow_buffer::Buffer;
use arrow_data::ArrayData;
use arrow_schema::{DataType, SchemaRef};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFloat, PyInt, PyString};
use pyo3::IntoPyObjectExt;

/// A reusable one-row input array; see the module docs.
pub struct OneRow {
    // Declared before `values`: released (dropped) before the memory it points into.
    array: FFI_ArrowArray,
    values: Box<[f64]>,
}

// SAFETY: the array only points into `values`, which moves with it.
unsafe impl Send for OneRow {}

impl OneRow {
    /// A one-row array for `schema`, if every input is float64.
    pub fn new(schema: &SchemaRef) -> Option<Self> {
        let fields = schema.fields();
        if fields.is_empty() || fields.iter().any(|f| f.data_type() != &DataType::Float64) {
            return None;
        }
        let mut values = vec![0f64; fields.len()].into_boxed_slice();
        let base = values.as_mut_ptr();
        let owner: Arc<dyn Allocation> = Arc::new(());
        let children = (0..fields.len())
            .map(|i| {
                // SAFETY: `base.add(i)` is an aligned f64 inside `values`, which
                // outlives the array (field order above).
                unsafe {
                    let ptr = NonNull::new_unchecked(base.add(i).cast::<u8>());
                    let buffer = Buffer::from_custom_allocation(ptr, 8, owner.clone());
                    ArrayData::builder(DataType::Float64)
                        .len(1)
                        .add_buffer(buffer)
                        .build_unchecked()
                }
            })
            .collect();
        // SAFETY: one row, children of the declared types and length.
        let data = unsafe {
            ArrayData::builder(DataType::Struct(fields.clone()))
                .len(1)
                .child_data(children)
                .build_unchecked()
        };
        Some(Self {
            array: FFI_ArrowArray::new(&data),
            values,
        })
    }

    /// Write the dict's values (by `keys`, the input names) into the row;
    /// `false` if one is missing or not a plain float / int.
    pub fn fill(&mut self, dict: &Bound<'_, PyDict>, keys: &[Py<PyString>]) -> bool {
        let py = dict.py();
        for (slot, key) in self.values.iter_mut().zip(keys) {
            let Ok(Some(v)) = dict.get_item(key.bind(py)) else {
                return false;
            };
            if let Ok(f) = v.cast::<PyFloat>() {
                *slot = f.value();
            } else if v.is_exact_instance_of::<PyInt>() {
                match v.extract::<i64>() {
                    Ok(i) => *slot = i as f64,
                    Err(_) => return false,
                }
            } else {
                return false;
            }
        }
        true
    }

    /// The row's values, in input order, to write directly.
    pub fn values_mut(&mut self) -> &mut [f64] {
        &mut self.values
    }

    /// The filled row as a C array (borrowed by the binary).
    pub fn array(&self) -> &FFI_ArrowArray {
        &self.array
    }
}

/// Set `target[keys[i]]` to row 0 of the output's child `i`, reading the C
/// buffers directly; `Ok(false)` if a column's type needs the general
/// import (nothing is set then).
pub fn read_output(
    target: &Bound<'_, PyDict>,
    keys: &[Py<PyString>],
    array: &FFI_ArrowArray,
    schema: &FFI_ArrowSchema,
) -> PyResult<bool> {
    let py = target.py();
    let n = array.num_children();
    if n != keys.len()
        || (0..n).any(|i| !matches!(schema.child(i).format(), "g" | "f" | "l" | "i" | "b"))
    {
        return Ok(false);
    }
    for (i, key) in keys.iter().enumerate() {
        let child = array.child(i);
        let row = array.offset() + child.offset();
        let validity = child.buffer(0);
        // SAFETY: the core checked the output against the declared fixed-width
        // outputs (one row); buffer 0 is the validity bitmap, 1 the values.
        let value = unsafe {
            if child.null_count_opt() != Some(0)
                && !validity.is_null()
                && (*validity.add(row / 8) >> (row % 8)) & 1 == 0
            {
                py.None()
            } else {
                let data = child.buffer(1);
                match schema.child(i).format() {
                    "g" => (*data.cast::<f64>().add(row)).into_py_any(py)?,
                    "f" => f64::from(*data.cast::<f32>().add(row)).into_py_any(py)?,
                    "l" => (*data.cast::<i64>().add(row)).into_py_any(py)?,
                    "i" => (*data.cast::<i32>().add(row)).into_py_any(py)?,
                    _ => ((*data.add(row / 8) >> (row % 8)) & 1 == 1).into_py_any(py)?,
                }
            }
        };
        target.set_item(key.bind(py), value)?;
    }
    Ok(true)
}
