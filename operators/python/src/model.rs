//! `_streamml.Model`: a core `Model` (a binary or a Python callable) for Python.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::Schema;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyString;
use pyo3_arrow::{PyRecordBatch, PyRecordBatchReader, PySchema, PyTable};
use streamml_abi::Task;
use streamml_core::{LoadOptions, Model, TrustList};

use crate::arrow_io::{c_to_pyarrow, to_pyarrow, Capsules};
use crate::callable::CallableScorer;
use crate::errors::{core_err, input_err, load_err, new_err, predict_err, Kind};
use crate::numpy_io::NumpyPath;
use crate::rows::rows_to_batch;

/// Load options from the binding's arguments; a bad trust list is a load
/// error naming the model file.
fn load_options(
    path: &std::path::Path,
    sha256: Option<String>,
    trusted: Option<Vec<String>>,
    trusted_file: Option<PathBuf>,
    max_bytes: Option<u64>,
) -> PyResult<LoadOptions> {
    let bad = |e: String| {
        new_err(
            Kind::Load,
            format!("cannot load model binary '{}': {e}", path.display()),
        )
    };
    let trusted = match (trusted, trusted_file) {
        (Some(_), Some(_)) => return Err(bad("give trusted digests or a trust file, not both".into())),
        (Some(d), None) => Some(TrustList::from_digests(d, "trusted_sha256 list").map_err(bad)?),
        (None, Some(f)) => Some(TrustList::from_file(&f).map_err(bad)?),
        (None, None) => None,
    };
    Ok(LoadOptions {
        expected_sha256: sha256,
        trusted,
        max_bytes,
    })
}

/// The names of `schema`'s fields as interned Python strings: dict keys
/// for inputs read and outputs written, made once per model.
pub(crate) fn field_keys(py: Python<'_>, schema: &Schema) -> Vec<Py<PyString>> {
    schema
        .fields()
        .iter()
        .map(|f| PyString::intern(py, f.name()).unbind())
        .collect()
}

/// A loaded model. Use `streamml.Model`, which wraps this.
#[pyclass(name = "Model", module = "streamml._streamml", frozen)]
pub struct PyModel {
    pub(crate) model: Model,
    /// Input field names as Python strings, for reading dicts without
    /// building a key per row.
    pub(crate) input_keys: Vec<Py<PyString>>,
    /// What `predict_numpy` keeps (see `numpy_io`).
    pub(crate) numpy: NumpyPath,
}

impl PyModel {
    fn new(py: Python<'_>, model: Model) -> Self {
        let input_keys = field_keys(py, model.input_schema());
        let numpy = NumpyPath::new(py, &model);
        Self {
            model,
            input_keys,
            numpy,
        }
    }

    /// The core model, for other classes of the binding.
    pub(crate) fn core(&self) -> &Model {
        &self.model
    }

    fn score(&self, py: Python<'_>, batch: &RecordBatch) -> PyResult<RecordBatch> {
        let model = &self.model;
        py.detach(|| model.predict(batch)).map_err(core_err)
    }
}

#[pymethods]
impl PyModel {
    /// Load and verify a model binary. `trusted` (digests) or `trusted_file`
    /// (a trust file) restrict it to listed SHA-256s; else
    /// `$STREAMML_TRUSTED_MODELS` does, if set.
    #[staticmethod]
    #[pyo3(signature = (path, sha256=None, trusted=None, trusted_file=None, max_bytes=None))]
    fn load(
        py: Python<'_>,
        path: PathBuf,
        sha256: Option<String>,
        trusted: Option<Vec<String>>,
        trusted_file: Option<PathBuf>,
        max_bytes: Option<u64>,
    ) -> PyResult<Self> {
        let options = load_options(&path, sha256, trusted, trusted_file, max_bytes)?;
        let model = py
            .detach(|| Model::load(&path, &options))
            .map_err(load_err)?;
        Ok(Self::new(py, model))
    }

    /// A compiled binary's info (JSON) and SHA-256, read from its footer
    /// without loading it; `None` for a binary that is not compiled.
    #[staticmethod]
    #[pyo3(signature = (path, sha256=None, max_bytes=None))]
    fn inspect_compiled(
        py: Python<'_>,
        path: PathBuf,
        sha256: Option<String>,
        max_bytes: Option<u64>,
    ) -> PyResult<Option<(String, String)>> {
        let options = load_options(&path, sha256, None, None, max_bytes)?;
        let found = py
            .detach(|| streamml_core::inspect_compiled(&path, &options))
            .map_err(load_err)?;
        Ok(found.map(|(info, sha)| (info.to_json(), sha)))
    }

    /// Wrap a Python callable `fn(pyarrow.RecordBatch) -> Arrow batch`.
    #[staticmethod]
    #[pyo3(signature = (func, input_schema, output_schema, name, version, task))]
    fn from_callable(
        py: Python<'_>,
        func: Py<PyAny>,
        input_schema: PySchema,
        output_schema: PySchema,
        name: String,
        version: String,
        task: &str,
    ) -> PyResult<Self> {
        let task: Task = serde_json::from_value(serde_json::Value::from(task)).map_err(|_| {
            new_err(
                Kind::Load,
                format!("task '{task}' is not one of regression, binary, multiclass, other"),
            )
        })?;
        let scorer = CallableScorer::new(
            func,
            input_schema.into_inner(),
            output_schema.into_inner(),
            name,
            version,
            task,
        )
        .map_err(|m| new_err(Kind::Load, m))?;
        let model =
            Model::from_scorer(Arc::new(scorer)).map_err(|e| new_err(Kind::Load, e.to_string()))?;
        Ok(Self::new(py, model))
    }

    /// The info document as JSON.
    fn info_json(&self) -> String {
        self.model.info().to_json()
    }

    /// The declared inputs as a pyarrow.Schema.
    fn input_schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PySchema::new(self.model.input_schema().clone()).into_pyarrow(py)
    }

    /// The declared outputs as a pyarrow.Schema.
    fn output_schema<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        PySchema::new(self.model.output_schema().clone()).into_pyarrow(py)
    }

    /// SHA-256 of the binary (None for a callable).
    #[getter]
    fn sha256(&self) -> Option<String> {
        self.model.sha256().map(str::to_string)
    }

    /// What runs, as error messages name it.
    #[getter]
    fn origin(&self) -> String {
        self.model.origin().to_string()
    }

    /// Score an object with `__arrow_c_array__` (-> pyarrow.RecordBatch) or
    /// `__arrow_c_stream__` (-> pyarrow.Table).
    fn predict_arrow<'py>(
        &self,
        py: Python<'py>,
        data: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        if data.hasattr(intern!(py, "__arrow_c_array__"))? {
            let capsules = Capsules::export(data)?;
            if let Some(result) = capsules.try_predict_c(&self.model)? {
                let (array, schema) = result.map_err(predict_err)?;
                return c_to_pyarrow(py, array, schema);
            }
            let out = self.score(py, &capsules.into_batch()?)?;
            return to_pyarrow(py, out);
        }
        let mut reader = data.extract::<PyRecordBatchReader>()?.into_reader()?;
        let mut outputs = Vec::new();
        // A foreign stream's batches are validated in full before use.
        while let Some(batch) = crate::arrow_io::next_checked(&mut reader)? {
            outputs.push(self.score(py, &batch)?);
            py.check_signals()?;
        }
        PyTable::try_new(outputs, self.model.output_schema().clone())?.into_pyarrow(py)
    }

    /// Score a sequence of dicts (-> pyarrow.RecordBatch); `missing_fields`:
    /// `"error"` (an absent input field refuses the rows) or `"null"`.
    #[pyo3(signature = (rows, missing_fields="error"))]
    fn predict_rows<'py>(
        &self,
        py: Python<'py>,
        rows: &Bound<'py, PyAny>,
        missing_fields: &str,
    ) -> PyResult<Bound<'py, PyAny>> {
        let missing = missing_fields.parse().map_err(|m: String| new_err(Kind::Input, m))?;
        let batch = rows_to_batch(rows, self.model.input_schema(), &self.input_keys, missing)?;
        let out = {
            let model = &self.model;
            py.detach(|| model.score_prepared(&batch))
                .map_err(|e| core_err(e.into()))?
        };
        to_pyarrow(py, out)
    }

    /// Score a float64 (or float32) NumPy array of rows whose columns are the
    /// inputs in order (-> dict of NumPy arrays, one per output).
    fn predict_numpy<'py>(
        &self,
        x: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, pyo3::types::PyDict>> {
        crate::numpy_io::predict_numpy(self, x)
    }

    /// Check a batch against the inputs and return what the model would get
    /// (columns mapped by name, cast), without scoring.
    fn prepare<'py>(&self, py: Python<'py>, data: PyRecordBatch) -> PyResult<Bound<'py, PyAny>> {
        let prepared = streamml_core::input::prepare(data.as_ref(), self.model.input_schema())
            .map_err(input_err)?;
        PyRecordBatch::new(prepared).into_pyarrow(py)
    }
}
