//! Arrow across the Python boundary, tuned for small batches.
//!
//! pyo3-arrow's general import parses the schema capsule into Rust types on
//! every call; for a 32-column model that costs more than scoring one row.
//! When the schema has exactly the model's declared layout (formats and
//! names compared in place, no allocation) the array is imported with the
//! known type instead; anything else takes the general path. Outputs go to
//! pyarrow through `RecordBatch._import_from_c_capsule` directly.

use std::ffi::CStr;
use std::sync::Arc;

use arrow_array::ffi::{from_ffi_and_data_type, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{RecordBatch, RecordBatchOptions, StructArray};
use arrow_schema::{DataType, Field, SchemaRef};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyCapsule, PyTuple};
use pyo3::intern;
use pyo3_arrow::ffi::to_array_pycapsules;
use pyo3_arrow::PyRecordBatch;
use streamml_abi::ffi::schema_matches;

use crate::errors::{new_err, Kind};

const SCHEMA_CAPSULE: &CStr = c"arrow_schema";
const ARRAY_CAPSULE: &CStr = c"arrow_array";

/// A schema's C form, made once and only read afterwards.
pub struct Layout {
    ffi: FFI_ArrowSchema,
    data_type: DataType,
    schema: SchemaRef,
}

// SAFETY: `ffi` is never mutated or released before drop; reads are shared.
unsafe impl Send for Layout {}
unsafe impl Sync for Layout {}

impl Layout {
    pub fn new(schema: SchemaRef) -> Option<Self> {
        let data_type = DataType::Struct(schema.fields().clone());
        let ffi = FFI_ArrowSchema::try_from(&data_type).ok()?;
        Some(Self { ffi, data_type, schema })
    }
}

/// Import an object with `__arrow_c_array__` as a record batch.
pub fn import_batch(obj: &Bound<'_, PyAny>, layout: Option<&Layout>) -> PyResult<RecordBatch> {
    let py = obj.py();
    let capsules = obj.call_method0(intern!(py, "__arrow_c_array__"))?;
    let capsules = capsules.cast::<PyTuple>()?;
    if capsules.len() != 2 {
        return Err(new_err(Kind::Input, "__arrow_c_array__ must return (schema, array) capsules"));
    }
    let schema_capsule = capsules.get_item(0)?.cast_into::<PyCapsule>()?;
    let array_capsule = capsules.get_item(1)?.cast_into::<PyCapsule>()?;
    if let Some(layout) = layout {
        let schema_ptr = schema_capsule.pointer_checked(Some(SCHEMA_CAPSULE))?.cast::<FFI_ArrowSchema>();
        // SAFETY: a capsule named arrow_schema holds an ArrowSchema.
        let schema = unsafe { schema_ptr.as_ref() };
        if schema_matches(schema, &layout.ffi) {
            let array_ptr = array_capsule.pointer_checked(Some(ARRAY_CAPSULE))?.cast::<FFI_ArrowArray>();
            // SAFETY: moves the array out; the capsule is left released.
            let array = unsafe { FFI_ArrowArray::from_raw(array_ptr.as_ptr()) };
            let data = unsafe { from_ffi_and_data_type(array, layout.data_type.clone()) }
                .map_err(|e| new_err(Kind::Input, format!("cannot import the batch: {e}")))?;
            if data.null_count() > 0 {
                return Err(new_err(Kind::Input, "the struct array has null rows; pass a record batch"));
            }
            let rows = data.len();
            let (_, columns, _) = StructArray::from(data).into_parts();
            let options = RecordBatchOptions::new().with_row_count(Some(rows));
            return RecordBatch::try_new_with_options(layout.schema.clone(), columns, &options)
                .map_err(|e| new_err(Kind::Input, format!("cannot import the batch: {e}")));
        }
    }
    Ok(PyRecordBatch::from_arrow_pycapsule(&schema_capsule, &array_capsule)?.into_inner())
}

static IMPORT_BATCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// A record batch as a `pyarrow.RecordBatch`.
pub fn to_pyarrow(py: Python<'_>, batch: RecordBatch) -> PyResult<Bound<'_, PyAny>> {
    let import = IMPORT_BATCH.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        let pa = py.import("pyarrow")?;
        Ok(pa.getattr("RecordBatch")?.getattr("_import_from_c_capsule")?.unbind())
    });
    let Ok(import) = import else {
        // A pyarrow without the private fast path: the public one.
        return PyRecordBatch::new(batch).into_pyarrow(py);
    };
    let field = Arc::new(Field::new_struct("", batch.schema_ref().fields().clone(), false));
    let array = StructArray::from(batch);
    let capsules = to_array_pycapsules(py, field, &array, None)?;
    import.bind(py).call1(capsules)
}
