//! Arrow across the Python boundary, tuned for small batches.
//!
//! A batch whose schema is exactly a binary's declared input layout goes to
//! the binary as the very `ArrowArray` its producer exported (no import into
//! arrow-rs, no copy), and the binary's output goes to pyarrow as it came.
//! Anything else is imported and takes the core's general path: mapping by
//! name, casts, errors naming the column.
//!
//! A foreign array is someone else's bytes: its structure is checked before
//! the binary reads it (`input::check_c_array`), and an imported one is
//! validated in full (`input::import_c_batch`, `input::validate_imported`),
//! so lying lengths or offsets raise `InputError` instead of crashing.

use std::ffi::CStr;
use std::ptr::NonNull;
use std::sync::Arc;

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{RecordBatch, StructArray};
use arrow_schema::Field;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCapsule, PyTuple};
use pyo3_arrow::ffi::to_array_pycapsules;
use pyo3_arrow::PyRecordBatch;
use streamml_core::input::{check_c_array, import_c_batch, validate_imported};
use streamml_core::{Model, PredictError};

use crate::errors::{input_err, new_err, Kind};

const SCHEMA_CAPSULE: &CStr = c"arrow_schema";
const ARRAY_CAPSULE: &CStr = c"arrow_array";

/// What `__arrow_c_array__` gave.
pub struct Capsules<'py> {
    schema: Bound<'py, PyCapsule>,
    array: Bound<'py, PyCapsule>,
}

impl<'py> Capsules<'py> {
    /// Call `obj.__arrow_c_array__()`.
    pub fn export(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        let tuple = obj.call_method0(intern!(obj.py(), "__arrow_c_array__"))?;
        let tuple = tuple.cast_into::<PyTuple>()?;
        if tuple.len() != 2 {
            return Err(new_err(
                Kind::Input,
                "__arrow_c_array__ must return (schema, array) capsules",
            ));
        }
        Ok(Self {
            schema: tuple.get_item(0)?.cast_into::<PyCapsule>()?,
            array: tuple.get_item(1)?.cast_into::<PyCapsule>()?,
        })
    }

    /// The capsules' schema and array, each checked to be the capsule it should be.
    fn pointers(&self) -> PyResult<(NonNull<FFI_ArrowSchema>, NonNull<FFI_ArrowArray>)> {
        let schema = self.schema.pointer_checked(Some(SCHEMA_CAPSULE))?;
        let array = self.array.pointer_checked(Some(ARRAY_CAPSULE))?;
        Ok((schema.cast(), array.cast()))
    }

    /// Score on the zero-copy path if the model and batch allow it (see
    /// `Model::try_predict_c`), with the GIL released.
    pub fn try_predict_c(
        &self,
        model: &Model,
    ) -> PyResult<Option<Result<(FFI_ArrowArray, FFI_ArrowSchema), PredictError>>> {
        let (schema, array) = self.pointers()?;
        // SAFETY: the capsules hold a schema and an array their producer filled in.
        unsafe { check_c_array(&*array.as_ptr(), &*schema.as_ptr()) }.map_err(input_err)?;
        let pointers = SendPtrs(schema.as_ptr(), array.as_ptr());
        // SAFETY: the capsules own both structs and outlive this call; they
        // are only read (borrowed), never moved or released here.
        Ok(self.schema.py().detach(move || {
            let p = pointers;
            unsafe { model.try_predict_c(&*p.0, &*p.1) }
        }))
    }

    /// Import as an arrow-rs record batch (moves the array out of its
    /// capsule), checked and validated in full.
    pub fn into_batch(self) -> PyResult<RecordBatch> {
        let (schema, array) = self.pointers()?;
        // SAFETY: the capsule owns the array; it is moved out and a released
        // one left behind (the capsule's destructor then does nothing), as
        // the PyCapsule interface prescribes for a consumer.
        let array = unsafe { std::ptr::replace(array.as_ptr(), FFI_ArrowArray::empty()) };
        // SAFETY: a schema and an array their producer filled in; checked there.
        unsafe { import_c_batch(array, &*schema.as_ptr()) }.map_err(input_err)
    }
}

#[derive(Clone, Copy)]
struct SendPtrs(*const FFI_ArrowSchema, *const FFI_ArrowArray);
// SAFETY: the pointees are plain C data read by one thread at a time here.
unsafe impl Send for SendPtrs {}

static IMPORT_BATCH: PyOnceLock<Option<Py<PyAny>>> = PyOnceLock::new();

/// pyarrow's capsule import, when this pyarrow has it.
fn capsule_import(py: Python<'_>) -> PyResult<Option<&Py<PyAny>>> {
    let f = IMPORT_BATCH.get_or_try_init(py, || -> PyResult<Option<Py<PyAny>>> {
        let pa = py.import("pyarrow")?;
        Ok(pa
            .getattr("RecordBatch")?
            .getattr("_import_from_c_capsule")
            .ok()
            .map(Bound::unbind))
    })?;
    Ok(f.as_ref())
}

/// An owned C struct array (and its schema) as a `pyarrow.RecordBatch`.
pub fn c_to_pyarrow(
    py: Python<'_>,
    array: FFI_ArrowArray,
    schema: FFI_ArrowSchema,
) -> PyResult<Bound<'_, PyAny>> {
    let schema = PyCapsule::new_with_value(py, schema, SCHEMA_CAPSULE)?;
    let array = PyCapsule::new_with_value(py, array, ARRAY_CAPSULE)?;
    match capsule_import(py)? {
        Some(import) => import.bind(py).call1((schema, array)),
        None => PyRecordBatch::from_arrow_pycapsule(&schema, &array)?.into_pyarrow(py),
    }
}

/// A record batch as a `pyarrow.RecordBatch`.
pub fn to_pyarrow(py: Python<'_>, batch: RecordBatch) -> PyResult<Bound<'_, PyAny>> {
    let Some(import) = capsule_import(py)? else {
        return PyRecordBatch::new(batch).into_pyarrow(py);
    };
    let field = Arc::new(Field::new_struct(
        "",
        batch.schema_ref().fields().clone(),
        false,
    ));
    let array = StructArray::from(batch);
    let capsules = to_array_pycapsules(py, field, &array, None)?;
    import.bind(py).call1(capsules)
}

/// The next batch of a foreign stream, validated in full; a panic of the
/// importer on lying bytes is an `InputError` too.
pub fn next_checked(
    reader: &mut Box<dyn arrow_array::RecordBatchReader + Send>,
) -> PyResult<Option<RecordBatch>> {
    let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| reader.next()))
        .map_err(|p| {
            new_err(
                Kind::Input,
                format!(
                    "cannot read the input stream: the input is not a valid Arrow array ({}); fix its producer",
                    streamml_abi::panic_message(&*p)
                ),
            )
        })?;
    match next {
        None => Ok(None),
        Some(Err(e)) => Err(new_err(Kind::Input, format!("cannot read the input stream: {e}"))),
        Some(Ok(batch)) => {
            validate_imported(&batch).map_err(input_err)?;
            Ok(Some(batch))
        }
    }
}
