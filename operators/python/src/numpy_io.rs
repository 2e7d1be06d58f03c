//! `Model.predict_numpy`: a NumPy array of rows in, one NumPy array per
//! output out, with no pyarrow on the way.
//!
//! The array's columns are the model's inputs in declared order, so every
//! input must be float64 (float32 arrays are widened, exactly). One row of a
//! binary goes through the binary's reusable one-row C array (see
//! `one_row`): the values are written into it and the binary reads them in
//! place, so the call allocates nothing but its outputs. More rows are
//! copied into float64 columns, the layout the ABI prescribes, and go to the
//! binary through the same C Data Interface call; a Python callable gets
//! them as a record batch (the core's general path). NaN cells go through
//! as NaN, which tree models read as missing, as they do NaN in a
//! RecordBatch.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use arrow_array::ffi::FFI_ArrowArray;
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch, RecordBatchOptions, StructArray};
use arrow_buffer::{Buffer, ScalarBuffer};
use arrow_schema::DataType;
use numpy::ndarray::{ArrayView2, ArrayViewD, Axis, Ix2};
use numpy::{Element, PyArrayDyn, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};
use streamml_core::Model;

use crate::errors::{core_err, new_err, predict_err, Kind};
use crate::numpy_out::{c_to_dict, to_dict};
use crate::one_row::OneRow;
use crate::py_values::field_keys;

/// From this many rows on, the GIL is released while the model scores.
/// Below, releasing and re-taking it costs more than it frees (`docs/performance.md`).
const DETACH_ROWS: usize = 64;

/// What a model keeps for `predict_numpy`.
pub struct NumpyPath {
    /// Why this model cannot take a NumPy array, if it cannot.
    refusal: Option<String>,
    /// The one-row array of a binary whose inputs are all float64.
    one_row: Option<Mutex<OneRow>>,
    /// Output field names as Python strings, the keys of the result.
    out_keys: Vec<Py<PyString>>,
}

impl NumpyPath {
    pub fn new(py: Python<'_>, model: &Model) -> Self {
        let refusal = model
            .input_schema()
            .fields()
            .iter()
            .find(|f| f.data_type() != &DataType::Float64)
            .map(|f| {
                format!(
                    "{} cannot score a NumPy array: its input '{}' is {}, and predict_numpy \
                     needs every input to be float64; use predict with an Arrow batch or dicts",
                    model.origin(),
                    f.name(),
                    f.data_type()
                )
            });
        let one_row = match (&refusal, model.native()) {
            (None, Some(_)) => OneRow::new(model.input_schema()).map(Mutex::new),
            _ => None,
        };
        let out_keys = field_keys(py, model.output_schema());
        Self {
            refusal,
            one_row,
            out_keys,
        }
    }
}

/// Score the rows of `x` with `model`, the model `path` was made for (see
/// the module docs): `{output name: array}`.
pub fn predict_numpy<'py>(
    path: &NumpyPath,
    model: &Model,
    x: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyDict>> {
    let py = x.py();
    if let Some(refusal) = &path.refusal {
        return Err(new_err(Kind::Input, refusal.clone()));
    }
    let Ok(array) = x.cast::<PyUntypedArray>() else {
        return Err(PyTypeError::new_err(format!(
            "predict_numpy expects a numpy.ndarray, got {}",
            x.get_type().name()?
        )));
    };
    let inputs = model.input_schema().fields().len();
    let shape = array.shape();
    let (rows, columns) =
        match *shape {
            [columns] => (1, columns),
            [rows, columns] => (rows, columns),
            _ => {
                return Err(new_err(
                    Kind::Input,
                    format!(
                    "predict_numpy expects a 2-D array (rows, inputs) or a 1-D array (one row); \
                     got a {}-D array of shape ({})",
                    shape.len(),
                    shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
                ),
                ))
            }
        };
    if columns != inputs {
        return Err(new_err(
            Kind::Input,
            format!(
                "{} has {inputs} input(s) ({}); the array has {columns} column(s)",
                model.origin(),
                span(model)
            ),
        ));
    }
    if let Ok(a) = array.cast::<PyArrayDyn<f64>>() {
        score_view(py, path, model, &a.try_readonly()?.as_array(), rows)
    } else if let Ok(a) = array.cast::<PyArrayDyn<f32>>() {
        score_view(py, path, model, &a.try_readonly()?.as_array(), rows)
    } else {
        Err(PyTypeError::new_err(format!(
            "predict_numpy expects a float64 or float32 array, got {}; convert it with \
             x.astype(numpy.float64)",
            array.dtype()
        )))
    }
}

/// The first and last input names, for error messages.
fn span(model: &Model) -> String {
    let fields = model.input_schema().fields();
    match (fields.first(), fields.last()) {
        (Some(a), Some(b)) if fields.len() > 2 => format!("'{}' .. '{}'", a.name(), b.name()),
        (Some(a), Some(b)) if fields.len() == 2 => format!("'{}', '{}'", a.name(), b.name()),
        (Some(a), _) => format!("'{}'", a.name()),
        _ => String::new(),
    }
}

/// A C array borrowed across `py.detach`.
#[derive(Clone, Copy)]
struct SendArray<'a>(&'a FFI_ArrowArray);
// SAFETY: plain C data, read by the one thread that scores with it.
unsafe impl Send for SendArray<'_> {}

/// Score the rows of `view` (2-D, or 1-D for one row).
fn score_view<'py, T: Element + Copy + Into<f64>>(
    py: Python<'py>,
    path: &NumpyPath,
    model: &Model,
    view: &ArrayViewD<'_, T>,
    rows: usize,
) -> PyResult<Bound<'py, PyDict>> {
    let view: ArrayView2<'_, T> = if view.ndim() == 1 {
        view.view()
            .insert_axis(Axis(0))
            .into_dimensionality::<Ix2>()
    } else {
        view.view().into_dimensionality::<Ix2>()
    }
    .expect("the shape was checked");
    if rows == 1 {
        if let Some(out) = score_one(py, path, model, &view)? {
            return Ok(out);
        }
    }
    let batch = columns(&view, model)?;
    if let (Some(native), true) = (model.native(), rows > 0) {
        // The batch is exactly the binary's input layout, without nulls:
        // the C path, whose output is read in place like one row's.
        let input = FFI_ArrowArray::new(&StructArray::from(batch).to_data());
        let input = SendArray(&input);
        // SAFETY: `input` is `rows` rows of the binary's declared inputs.
        let score = move || {
            let input = input;
            catch_unwind(AssertUnwindSafe(|| unsafe { native.predict_c(input.0) }))
        };
        let scored = if rows >= DETACH_ROWS {
            py.detach(score)
        } else {
            score()
        };
        let (array, schema) = scored
            .map_err(|_| new_err(Kind::Predict, format!("{} panicked", model.origin())))?
            .map_err(predict_err)?;
        let keys = &path.out_keys;
        return c_to_dict(py, keys, model.output_schema().fields(), array, schema);
    }
    let out = if rows >= DETACH_ROWS {
        py.detach(|| model.score_prepared(&batch))
    } else {
        model.score_prepared(&batch)
    }
    .map_err(|e| core_err(e.into()))?;
    to_dict(
        py,
        &path.out_keys,
        out.columns(),
        out.schema_ref().fields(),
    )
}

/// One row of a binary through its reusable one-row array; `None` when
/// that array is busy (another thread) or absent (a callable).
fn score_one<'py, T: Copy + Into<f64>>(
    py: Python<'py>,
    path: &NumpyPath,
    model: &Model,
    view: &ArrayView2<'_, T>,
) -> PyResult<Option<Bound<'py, PyDict>>> {
    let (Some(one_row), Some(native)) = (&path.one_row, model.native()) else {
        return Ok(None);
    };
    // try_lock: never wait for the lock while holding the GIL.
    let Ok(mut one) = one_row.try_lock() else {
        return Ok(None);
    };
    one.fill_f64(view.iter().map(|v| (*v).into()));
    // SAFETY: the array is one row of the binary's own input layout, with
    // no nulls (see `OneRow`), borrowed for the call.
    let scored = catch_unwind(AssertUnwindSafe(|| unsafe {
        native.predict_c(one.array())
    }));
    drop(one);
    let (array, schema) = scored
        .map_err(|_| new_err(Kind::Predict, format!("{} panicked", model.origin())))?
        .map_err(predict_err)?;
    let keys = &path.out_keys;
    c_to_dict(py, keys, model.output_schema().fields(), array, schema).map(Some)
}

/// The rows of `view` as a batch of the model's float64 inputs, one column
/// per input (the ABI's column-major layout).
fn columns<T: Copy + Into<f64>>(view: &ArrayView2<'_, T>, model: &Model) -> PyResult<RecordBatch> {
    let (rows, width) = view.dim();
    let mut values = vec![0f64; rows * width];
    if view.stride_of(Axis(0)) == 1 {
        // Each column is contiguous (Fortran order): copy column by column.
        for (j, column) in view.axis_iter(Axis(1)).enumerate() {
            for (slot, v) in values[j * rows..(j + 1) * rows].iter_mut().zip(column) {
                *slot = (*v).into();
            }
        }
    } else {
        // Row by row (C order): one sequential read, `width` sequential writes.
        for (i, row) in view.axis_iter(Axis(0)).enumerate() {
            for (j, v) in row.iter().enumerate() {
                values[j * rows + i] = (*v).into();
            }
        }
    }
    let buffer = Buffer::from_vec(values);
    let columns = (0..width)
        .map(|j| {
            let values = ScalarBuffer::new(buffer.clone(), j * rows, rows);
            Arc::new(Float64Array::new(values, None)) as ArrayRef
        })
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(model.input_schema().clone(), columns, &options)
        .map_err(|e| new_err(Kind::Input, format!("cannot build the input batch: {e}")))
}
