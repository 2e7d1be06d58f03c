//! `_streamml.ItemScorer`: score dicts (or `(key, dict)` pairs, or Arrow
//! record batches) and get them back with the model's outputs added.
//!
//! A whole list of items is read into one Arrow batch in Rust, scored in one
//! call with the GIL released, and written back as Python dicts: no pyarrow
//! and no per-row Python code on the way. An item that cannot be read
//! (not a dict, a missing field, a wrong type) is refused alone, with the
//! reason, and the rest of its batch is scored; if a whole batch fails (a
//! cast at the end, the model refusing it), its rows are scored one by one so
//! that only the rows at fault are refused.

use std::sync::{Arc, Mutex};

use arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_schema::{Field, Schema};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};
use streamml_core::rows::{MissingFields, RowBuilder};

use crate::arrow_io::to_pyarrow;
use crate::errors::{core_err, input_err, new_err, Kind};
use crate::model::{field_keys, PyModel};
use crate::py_values::value;
use crate::one_row::{fill, read_output, OneRow};
use crate::rows::{append_dict, type_of};

/// Scores dicts with a model. Use `streamml.bytewax`, which wraps this.
#[pyclass(name = "ItemScorer", module = "streamml._streamml", frozen)]
pub struct ItemScorer {
    model: Py<PyModel>,
    /// Output field names as Python strings.
    out_keys: Vec<Py<PyString>>,
    /// Put the outputs in a dict under this key instead of merging them.
    nest: Option<Py<PyString>>,
    /// `failure(item, reason)` builds what `score_split` returns for a bad item.
    failure: Option<Py<PyAny>>,
    /// Builders ready for reuse (their columns are allocated once).
    builders: Mutex<Vec<RowBuilder>>,
    /// The one-row fast path (the core's), for binaries.
    one_row: Option<Mutex<OneRow>>,
    /// What an input field absent from a dict is.
    missing: MissingFields,
    /// A field set beside the outputs of every scored item (the version
    /// that scored it, for hosts that swap models).
    tag: Option<(Py<PyString>, Py<PyString>)>,
}

/// One dict of a batch: where it was, its key (if it came as a pair).
struct Row<'py> {
    index: usize,
    key: Option<Bound<'py, PyAny>>,
    dict: Bound<'py, PyDict>,
}

/// What an item is.
enum Item<'py> {
    Row(Row<'py>),
    Arrow(Option<Bound<'py, PyAny>>, Bound<'py, PyAny>),
}

const EXPECTED: &str = "expected a dict, a (key, dict) pair or an Arrow record batch";

fn classify<'py>(index: usize, item: &Bound<'py, PyAny>) -> Result<Item<'py>, String> {
    let py = item.py();
    let arrow = |v: &Bound<'py, PyAny>| v.hasattr(intern!(py, "__arrow_c_array__")).unwrap_or(false);
    if let Ok(dict) = item.cast::<PyDict>() {
        return Ok(Item::Row(Row {
            index,
            key: None,
            dict: dict.clone(),
        }));
    }
    if let Ok(pair) = item.cast::<PyTuple>() {
        if pair.len() == 2 {
            let key = pair.get_item(0).ok();
            let inner = pair.get_item(1).map_err(|e| e.to_string())?;
            if let Ok(dict) = inner.cast::<PyDict>() {
                let dict = dict.clone();
                return Ok(Item::Row(Row { index, key, dict }));
            }
            if arrow(&inner) {
                return Ok(Item::Arrow(key, inner));
            }
            return Err(format!("{EXPECTED}, got a (key, {}) pair", type_of(&inner)));
        }
    }
    if arrow(item) {
        return Ok(Item::Arrow(None, item.clone()));
    }
    Err(format!("{EXPECTED}, got a {}", type_of(item)))
}

/// A binary's output as a record batch (for outputs `read_output` does not read).
fn import(array: FFI_ArrowArray, schema: &FFI_ArrowSchema) -> PyResult<RecordBatch> {
    // SAFETY: the core checked the binary's output against its declared outputs.
    let data = unsafe { from_ffi(array, schema) }
        .map_err(|e| new_err(Kind::Predict, format!("cannot read the model's output: {e}")))?;
    Ok(RecordBatch::from(StructArray::from(data)))
}

#[derive(Clone, Copy)]
struct SendRefs<'a>(&'a FFI_ArrowSchema, &'a FFI_ArrowArray);
// SAFETY: plain C data, read by the one thread that scores with it.
unsafe impl Send for SendRefs<'_> {}

impl ItemScorer {
    fn take_builder(&self) -> PyResult<RowBuilder> {
        // try_lock: never wait for the lock while holding the GIL.
        if let Ok(mut pool) = self.builders.try_lock() {
            if let Some(b) = pool.pop() {
                return Ok(b);
            }
        }
        RowBuilder::new(self.model.get().model.input_schema().clone()).map_err(input_err)
    }

    fn put_builder(&self, builder: RowBuilder) {
        if let Ok(mut pool) = self.builders.try_lock() {
            if pool.len() < 4 {
                pool.push(builder);
            }
        }
    }

    /// Score `rows` in one batch; outputs go to `oks` in order, refusals
    /// (index, reason) to `errs`.
    fn score_rows<'py>(
        &self,
        py: Python<'py>,
        rows: Vec<Row<'py>>,
        oks: &mut Vec<(usize, Bound<'py, PyAny>)>,
        errs: &mut Vec<(usize, String)>,
    ) -> PyResult<()> {
        if let [row] = rows.as_slice() {
            if let Some(out) = self.score_one_fast(py, row)? {
                oks.push((row.index, out));
                return Ok(());
            }
        }
        let pymodel = self.model.get();
        let mut builder = self.take_builder()?;
        let mut values = Vec::with_capacity(pymodel.input_keys.len());
        let mut accepted = Vec::with_capacity(rows.len());
        for row in rows {
            match append_dict(&mut builder, &row.dict, &pymodel.input_keys, self.missing, &mut values) {
                Ok(()) => accepted.push(row),
                Err(reason) => errs.push((row.index, reason)),
            }
        }
        if accepted.is_empty() {
            self.put_builder(builder);
            return Ok(());
        }
        let scored = match builder.finish() {
            Ok(batch) => {
                // A builder whose finish failed may hold half-finished columns: drop it.
                self.put_builder(builder);
                let model = &pymodel.model;
                py.detach(|| model.score_prepared(&batch))
                    .map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        match scored {
            Ok(out) => {
                for (r, row) in accepted.iter().enumerate() {
                    oks.push((row.index, self.output(py, row, &out, r)?));
                }
            }
            Err(reason) if accepted.len() == 1 => errs.push((accepted[0].index, reason)),
            Err(_) => {
                for row in accepted {
                    self.score_rows(py, vec![row], oks, errs)?;
                }
            }
        }
        Ok(())
    }

    /// One row on the fast path (see `one_row`); `None` when it does not apply.
    fn score_one_fast<'py>(&self, py: Python<'py>, row: &Row<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(one_row) = &self.one_row else {
            return Ok(None);
        };
        // try_lock: another thread scoring (GIL released) sends this one the general way.
        let Ok(mut one) = one_row.try_lock() else {
            return Ok(None);
        };
        let pymodel = self.model.get();
        let Some(native) = pymodel.model.native() else {
            return Ok(None);
        };
        if !fill(&mut one, &row.dict, &pymodel.input_keys) {
            return Ok(None);
        }
        let input = SendRefs(native.input_schema_c(), one.array());
        let model = &pymodel.model;
        // SAFETY: the schema is the binary's own input layout and the array
        // one row of it (see `OneRow`); both are borrowed for the call.
        let scored = py.detach(move || {
            let input = input;
            unsafe { model.try_predict_c(input.0, input.1) }
        });
        drop(one);
        let Some(Ok((array, schema))) = scored else {
            // The general path scores it again and names what went wrong.
            return Ok(None);
        };
        let merged = row.dict.copy()?;
        let target = self.target(py, &merged)?;
        if !read_output(&target, &self.out_keys, &array, &schema)? {
            let out = import(array, &schema)?;
            for (k, column) in self.out_keys.iter().zip(out.columns()) {
                target.set_item(k.bind(py), value(py, column.as_ref(), 0)?)?;
            }
        }
        Ok(Some(self.with_key(py, row, merged)?))
    }

    /// Where outputs go in `merged`: itself, or a new dict under `nest`;
    /// the tag, if any, is set there first.
    fn target<'py>(&self, py: Python<'py>, merged: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
        let target = match &self.nest {
            Some(nest) => {
                let inner = PyDict::new(py);
                merged.set_item(nest.bind(py), &inner)?;
                inner
            }
            None => merged.clone(),
        };
        if let Some((k, v)) = &self.tag {
            target.set_item(k.bind(py), v.bind(py))?;
        }
        Ok(target)
    }

    fn with_key<'py>(&self, py: Python<'py>, row: &Row<'py>, merged: Bound<'py, PyDict>) -> PyResult<Bound<'py, PyAny>> {
        match &row.key {
            Some(key) => Ok(PyTuple::new(py, [key.clone(), merged.into_any()])?.into_any()),
            None => Ok(merged.into_any()),
        }
    }

    /// The item of `row` with the outputs of row `r` of `out` added.
    fn output<'py>(
        &self,
        py: Python<'py>,
        row: &Row<'py>,
        out: &RecordBatch,
        r: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let merged = row.dict.copy()?;
        let target = self.target(py, &merged)?;
        for (k, column) in self.out_keys.iter().zip(out.columns()) {
            target.set_item(k.bind(py), value(py, column.as_ref(), r)?)?;
        }
        self.with_key(py, row, merged)
    }

    /// An Arrow record batch with the outputs added as columns (or one
    /// struct column under `nest`); inputs of the same name are replaced.
    fn score_arrow<'py>(
        &self,
        py: Python<'py>,
        key: Option<Bound<'py, PyAny>>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let batch = crate::arrow_io::Capsules::export(data)?.into_batch()?;
        let model = &self.model.get().model;
        let out = py.detach(|| model.predict(&batch)).map_err(core_err)?;
        let mut added: Vec<(Arc<Field>, ArrayRef)> = match &self.nest {
            Some(nest) => {
                let name = nest.bind(py).to_str()?.to_string();
                let array = StructArray::from(out);
                let field = Field::new(name, array.data_type().clone(), false);
                vec![(Arc::new(field), Arc::new(array) as ArrayRef)]
            }
            None => out
                .schema()
                .fields()
                .iter()
                .cloned()
                .zip(out.columns().iter().cloned())
                .collect(),
        };
        if let Some((k, v)) = &self.tag {
            let value = v.bind(py).to_str()?;
            let column = arrow_array::StringArray::from(vec![value; batch.num_rows()]);
            let field = Field::new(k.bind(py).to_str()?, arrow_schema::DataType::Utf8, false);
            added.push((Arc::new(field), Arc::new(column) as ArrayRef));
        }
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
            if !added.iter().any(|(a, _)| a.name() == f.name()) {
                fields.push(f.clone());
                columns.push(c.clone());
            }
        }
        for (f, c) in added {
            fields.push(f);
            columns.push(c);
        }
        let merged = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| new_err(Kind::Predict, format!("cannot add the outputs to the batch: {e}")))?;
        let merged = to_pyarrow(py, merged)?;
        match key {
            Some(key) => Ok(PyTuple::new(py, [key, merged])?.into_any()),
            None => Ok(merged),
        }
    }
}

#[pymethods]
impl ItemScorer {
    /// A scorer for `model`; outputs are merged into each dict, or put in a
    /// dict under `nest`. `failure(item, reason)` makes `score_split`'s
    /// refusals (default: `(item, reason)` tuples). `missing_fields`:
    /// `"error"` (an absent input field refuses the item) or `"null"`.
    /// `tag`: a `(field, value)` set beside the outputs of every scored item.
    #[new]
    #[pyo3(signature = (model, nest=None, failure=None, missing_fields="error", tag=None))]
    fn new(
        py: Python<'_>,
        model: Py<PyModel>,
        nest: Option<String>,
        failure: Option<Py<PyAny>>,
        missing_fields: &str,
        tag: Option<(String, String)>,
    ) -> PyResult<Self> {
        let missing: MissingFields = missing_fields.parse().map_err(|m: String| new_err(Kind::Input, m))?;
        let inner = model.get();
        let builder = RowBuilder::new(inner.model.input_schema().clone()).map_err(input_err)?;
        let out_keys = field_keys(py, inner.model.output_schema());
        let one_row = inner
            .model
            .native()
            .and_then(|_| OneRow::new(inner.model.input_schema()))
            .map(Mutex::new);
        Ok(Self {
            model,
            out_keys,
            nest: nest.map(|n| PyString::intern(py, &n).unbind()),
            failure,
            builders: Mutex::new(vec![builder]),
            one_row,
            missing,
            tag: tag.map(|(k, v)| (PyString::intern(py, &k).unbind(), PyString::new(py, &v).unbind())),
        })
    }

    /// Score one item; a bad item raises `InputError` with the reason.
    fn __call__<'py>(&self, py: Python<'py>, item: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        match classify(0, item).map_err(|r| new_err(Kind::Input, r))? {
            Item::Arrow(key, data) => self.score_arrow(py, key, &data),
            Item::Row(row) => {
                let mut oks = Vec::with_capacity(1);
                let mut errs = Vec::new();
                self.score_rows(py, vec![row], &mut oks, &mut errs)?;
                if let Some((_, reason)) = errs.pop() {
                    return Err(new_err(Kind::Input, reason));
                }
                Ok(oks.pop().expect("a row is scored or refused").1)
            }
        }
    }

    /// Score a list of items in one native call. Returns `(oks, errs)`:
    /// the scored items in order, and `failure(item, reason)` for each item
    /// that could not be scored. Two lists, so that a flow splits them once
    /// per batch rather than with a Python call per item.
    fn score_split<'py>(
        &self,
        py: Python<'py>,
        items: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyList>, Bound<'py, PyList>)> {
        let items: Vec<Bound<'py, PyAny>> = items.try_iter()?.collect::<PyResult<_>>()?;
        let mut rows = Vec::with_capacity(items.len());
        let mut oks = Vec::with_capacity(items.len());
        let mut errs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match classify(i, item) {
                Ok(Item::Row(row)) => rows.push(row),
                Ok(Item::Arrow(key, data)) => match self.score_arrow(py, key, &data) {
                    Ok(out) => oks.push((i, out)),
                    Err(e) => errs.push((i, e.value(py).to_string())),
                },
                Err(reason) => errs.push((i, reason)),
            }
        }
        self.score_rows(py, rows, &mut oks, &mut errs)?;
        // Out of item order when record batches and dicts are mixed, or rows fell back one by one.
        if !oks.is_sorted_by_key(|(i, _)| *i) {
            oks.sort_by_key(|(i, _)| *i);
        }
        errs.sort_by_key(|(i, _)| *i);
        let ok_list = PyList::new(py, oks.into_iter().map(|(_, v)| v))?;
        let err_list = PyList::empty(py);
        for (i, reason) in errs {
            let item = &items[i];
            let f = match &self.failure {
                Some(f) => f.bind(py).call1((item, reason))?,
                None => PyTuple::new(py, [item.clone(), PyString::new(py, &reason).into_any()])?.into_any(),
            };
            err_list.append(f)?;
        }
        Ok((ok_list, err_list))
    }
}
