//! A Python sequence of dicts into a batch of a model's inputs.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyString};
use streamml_core::rows::{wrong_kind, Cell, MissingFields, RowBuilder};
use streamml_core::InputError;

use crate::errors::input_err;

/// Read `rows` (any iterable of dicts) by the input schema. The first bad
/// row raises `InputError` naming the row and the field.
pub fn rows_to_batch(
    rows: &Bound<'_, PyAny>,
    schema: &SchemaRef,
    keys: &[Py<PyString>],
    missing: MissingFields,
) -> PyResult<RecordBatch> {
    let mut builder = RowBuilder::new(schema.clone()).map_err(input_err)?;
    let mut values: Vec<Option<Bound<'_, PyAny>>> = Vec::with_capacity(keys.len());
    for (row, item) in rows.try_iter()?.enumerate() {
        let item = item?;
        let bad = |reason: String| input_err(InputError::Row { row, reason });
        let dict = item
            .cast::<PyDict>()
            .map_err(|_| bad(format!("expected a dict, got a {}", type_of(&item))))?;
        append_dict(&mut builder, dict, keys, missing, &mut values).map_err(bad)?;
    }
    builder.finish().map_err(input_err)
}

/// Read one dict by the builder's schema (`keys` are its field names as
/// Python strings) and append it, or refuse it whole with the reason. An
/// absent key is as `missing` says (the core's rule, [`MissingFields`]).
/// `values` is scratch space, reused across rows (`None`: absent).
pub fn append_dict<'py>(
    builder: &mut RowBuilder,
    dict: &Bound<'py, PyDict>,
    keys: &[Py<PyString>],
    missing: MissingFields,
    values: &mut Vec<Option<Bound<'py, PyAny>>>,
) -> Result<(), String> {
    let schema = builder.schema().clone();
    values.clear();
    for (key, field) in keys.iter().zip(schema.fields()) {
        match dict.get_item(key.bind(dict.py())) {
            Ok(v) => values.push(v),
            Err(e) => return Err(format!("cannot read field '{}': {e}", field.name())),
        }
    }
    let mut cells = Vec::with_capacity(values.len());
    for (v, field) in values.iter().zip(schema.fields()) {
        let Some(v) = v else {
            cells.push(missing.absent(field.name())?);
            continue;
        };
        cells.push(cell(v).map_err(|what| wrong_kind(field, &what))?);
    }
    builder.append_row(&cells)
}

/// The name of a Python object's type, for error messages.
pub fn type_of(v: &Bound<'_, PyAny>) -> String {
    v.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// One Python value as a cell; on failure, what the value is.
pub fn cell<'a>(v: &'a Bound<'_, PyAny>) -> Result<Cell<'a>, String> {
    if v.is_none() {
        return Ok(Cell::Null);
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Cell::Float(f.value()));
    }
    if let Ok(b) = v.cast::<PyBool>() {
        return Ok(Cell::Bool(b.is_true()));
    }
    if v.is_instance_of::<PyInt>() {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Cell::Int(i));
        }
        return v
            .extract::<u64>()
            .map(Cell::UInt)
            .map_err(|_| "an integer out of range".into());
    }
    if let Ok(s) = v.cast::<PyString>() {
        return s
            .to_str()
            .map(Cell::Str)
            .map_err(|_| "a string that is not UTF-8".into());
    }
    // numpy scalars and other numbers: integers first, then floats.
    if v.hasattr("__index__").unwrap_or(false) {
        if let Ok(i) = v.extract::<i64>() {
            return Ok(Cell::Int(i));
        }
    }
    if v.hasattr("__float__").unwrap_or(false) {
        if let Ok(f) = v.extract::<f64>() {
            return Ok(Cell::Float(f));
        }
    }
    Err(format!("a {}", type_of(v)))
}
