//! `_streamml.FeedbackJoinState`: the core's feedback join for Python. Use
//! `streamml.feedback.FeedbackJoin`, which wraps this.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use pyo3::exceptions::PyKeyError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};
use pyo3_arrow::PyArray;
use std::sync::Arc;
use streamml_core::feedback::{metric_names, wall_clock_ms, Config, FeedbackError, FeedbackJoin, IdColumn, Task};

use crate::arrow_io::to_pyarrow;
use crate::errors::{new_err, Kind};

fn fb_err(e: FeedbackError) -> PyErr {
    new_err(Kind::Input, e.to_string())
}

fn int64s(a: &PyArray, what: &str) -> PyResult<Int64Array> {
    match a.array().data_type() {
        DataType::Int64 if a.array().null_count() == 0 => Ok(a.array().as_primitive::<Int64Type>().clone()),
        t => Err(new_err(Kind::Input, format!("feedback join: {what} must be int64 without nulls, got {t}"))),
    }
}

fn float64s(a: &PyArray, what: &str) -> PyResult<Float64Array> {
    match a.array().data_type() {
        DataType::Float64 => Ok(a.array().as_primitive::<Float64Type>().clone()),
        t => Err(new_err(Kind::Input, format!("feedback join: {what} must be float64, got {t}"))),
    }
}

/// Pending predictions, tombstones and quality windows of one shard.
#[pyclass(name = "FeedbackJoinState", module = "streamml._streamml")]
pub struct PyFeedbackJoinState {
    inner: FeedbackJoin,
}

#[pymethods]
impl PyFeedbackJoinState {
    #[new]
    #[pyo3(signature = (*, ttl, window, task, threshold, hist_bins, late_horizon, bucket, max_future_skew, max_watermark_jump))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        ttl: i64,
        window: i64,
        task: &str,
        threshold: f64,
        hist_bins: usize,
        late_horizon: i64,
        bucket: i64,
        max_future_skew: Option<i64>,
        max_watermark_jump: Option<i64>,
    ) -> PyResult<Self> {
        let task = match task {
            "binary" => Task::Binary,
            "regression" => Task::Regression,
            other => {
                return Err(new_err(Kind::Input, format!("feedback join: task '{other}' is not one of binary, regression")))
            }
        };
        let config =
            Config { ttl, window, task, threshold, hist_bins, late_horizon, bucket, max_future_skew, max_watermark_jump };
        Ok(Self { inner: FeedbackJoin::new(config).map_err(fb_err)? })
    }

    /// A join from `state()` bytes.
    #[staticmethod]
    fn from_state(state: &[u8]) -> PyResult<Self> {
        Ok(Self { inner: FeedbackJoin::from_bytes(state).map_err(fb_err)? })
    }

    /// The whole state as bytes (compact; `from_state` reads them).
    fn state<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.to_bytes())
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let from_state = slf.get_type().getattr("from_state")?;
        let state = slf.borrow().state(py);
        PyTuple::new(py, [from_state.into_any(), PyTuple::new(py, [state])?.into_any()])
    }

    /// `(ttl, window, task, threshold, hist_bins, late_horizon, bucket, max_future_skew, max_watermark_jump)`.
    #[allow(clippy::type_complexity)]
    fn config(&self) -> (i64, i64, &'static str, f64, usize, i64, i64, Option<i64>, Option<i64>) {
        let c = self.inner.config();
        let task = if c.task == Task::Binary { "binary" } else { "regression" };
        (c.ttl, c.window, task, c.threshold, c.hist_bins, c.late_horizon, c.bucket, c.max_future_skew, c.max_watermark_jump)
    }

    /// The rows of `ids` whose prediction the join does not hold and that no
    /// earlier row repeats (`FeedbackJoin::unseen` of the core).
    fn unseen(&self, py: Python<'_>, id_field: &str, ids: PyArray) -> PyResult<Vec<usize>> {
        let ids = IdColumn::new(ids.array(), "predictions", id_field).map_err(fb_err)?;
        let inner = &self.inner;
        Ok(py.detach(|| inner.unseen(&ids)))
    }

    /// Add predictions at wall-clock `now` (ms; default the clock) with the GIL
    /// released; returns the rows refused as future. `ids`: integers or
    /// strings; `times`: int64; `scores`: float64.
    #[pyo3(signature = (id_field, ids, times, scores, now=None))]
    fn add_predictions(
        &mut self,
        py: Python<'_>,
        id_field: &str,
        ids: PyArray,
        times: PyArray,
        scores: PyArray,
        now: Option<i64>,
    ) -> PyResult<Vec<usize>> {
        let ids = IdColumn::new(ids.array(), "predictions", id_field).map_err(fb_err)?;
        let (times, scores) = (int64s(&times, "event times")?, float64s(&scores, "scores")?);
        let inner = &mut self.inner;
        let now = now.unwrap_or_else(wall_clock_ms);
        py.detach(|| inner.add_predictions(&ids, times.values(), scores.values(), now)).map_err(fb_err)
    }

    /// Join labels at wall-clock `now` (ms; default the clock) with the GIL
    /// released; returns the feedback rows as a `pyarrow.RecordBatch` and the
    /// rows refused as future.
    #[pyo3(signature = (id_field, ids, times, labels, now=None))]
    fn add_labels<'py>(
        &mut self,
        py: Python<'py>,
        id_field: &str,
        ids: PyArray,
        times: PyArray,
        labels: PyArray,
        now: Option<i64>,
    ) -> PyResult<(Bound<'py, PyAny>, Vec<usize>)> {
        let ids = IdColumn::new(ids.array(), "labels", id_field).map_err(fb_err)?;
        let (times, labels) = (int64s(&times, "label times")?, float64s(&labels, "labels")?);
        let inner = &mut self.inner;
        let now = now.unwrap_or_else(wall_clock_ms);
        let out = py.detach(|| {
            inner.add_labels(&ids, times.values(), labels.values(), now).map(|mut fb| {
                let refused = std::mem::take(&mut fb.refused);
                (fb.into_batch(&ids), refused)
            })
        });
        let (batch, refused) = out.map_err(fb_err)?;
        Ok((to_pyarrow(py, batch)?, refused))
    }

    /// The latest label time accepted at wall-clock `now` (ms; default the clock).
    #[pyo3(signature = (now=None))]
    fn label_limit(&self, now: Option<i64>) -> i64 {
        self.inner.label_limit(now.unwrap_or_else(wall_clock_ms))
    }

    /// The latest prediction event time accepted at wall-clock `now` (ms; default the clock).
    #[pyo3(signature = (now=None))]
    fn prediction_limit(&self, now: Option<i64>) -> i64 {
        self.inner.prediction_limit(now.unwrap_or_else(wall_clock_ms))
    }

    /// The windows revised since the last call (sorted), and forget that they were.
    fn take_touched(&mut self) -> Vec<i64> {
        self.inner.take_touched()
    }

    /// `(window_start, metric, value)` for `windows` (default all), histograms included.
    #[pyo3(signature = (windows=None))]
    fn quality_rows(&self, windows: Option<Vec<i64>>) -> PyResult<Vec<(i64, String, f64)>> {
        self.inner.quality_rows(windows.as_deref()).map_err(PyKeyError::new_err)
    }

    /// The same rows as a `pyarrow.RecordBatch` (`window_start`, `metric`, `value`).
    #[pyo3(signature = (windows=None))]
    fn quality_batch<'py>(&self, py: Python<'py>, windows: Option<Vec<i64>>) -> PyResult<Bound<'py, PyAny>> {
        let rows = self.inner.quality_rows(windows.as_deref()).map_err(PyKeyError::new_err)?;
        let starts: Int64Array = rows.iter().map(|r| Some(r.0)).collect();
        let metrics: StringArray = rows.iter().map(|r| Some(r.1.as_str())).collect();
        let values: Float64Array = rows.iter().map(|r| Some(r.2)).collect();
        let schema = Schema::new(vec![
            Field::new("window_start", DataType::Int64, true),
            Field::new("metric", DataType::Utf8, true),
            Field::new("value", DataType::Float64, true),
        ]);
        let columns: Vec<ArrayRef> = vec![Arc::new(starts), Arc::new(metrics), Arc::new(values)];
        let batch = RecordBatch::try_new(Arc::new(schema), columns)
            .map_err(|e| new_err(Kind::Input, format!("feedback join: quality rows: {e}")))?;
        to_pyarrow(py, batch)
    }

    /// The metric names of every window, in the order of `window_sums`.
    fn metric_names(&self) -> Vec<&'static str> {
        metric_names(self.inner.config().task)
    }

    /// `(window_start, sums)` per window, ascending.
    fn window_sums(&self) -> Vec<(i64, Vec<f64>)> {
        self.inner.windows().iter().map(|(s, w)| (*s, w.sums.clone())).collect()
    }

    /// `(window_start, hist)` per window: `hist_bins` negatives then `hist_bins` positives.
    fn window_hists(&self) -> Vec<(i64, Vec<i64>)> {
        self.inner.windows().iter().map(|(s, w)| (*s, w.hist.clone())).collect()
    }

    /// Pending `(id, event time, score)`: integer ids, then string ids.
    #[allow(clippy::type_complexity)]
    fn pending(&self) -> (Vec<(i64, i64, f64)>, Vec<(String, i64, f64)>) {
        let (ints, strs) = self.inner.pending();
        (ints, strs.into_iter().map(|(k, t, s)| (k.to_owned(), t, s)).collect())
    }

    /// Remembered expired `(id, event time)`: integer ids, then string ids.
    #[allow(clippy::type_complexity)]
    fn tombstones(&self) -> (Vec<(i64, i64)>, Vec<(String, i64)>) {
        let (ints, strs) = self.inner.tombstones();
        (ints, strs.into_iter().map(|(k, t)| (k.to_owned(), t)).collect())
    }

    /// Remembered labelled `(id, event time)`: integer ids, then string ids.
    #[allow(clippy::type_complexity)]
    fn labelled(&self) -> (Vec<(i64, i64)>, Vec<(String, i64)>) {
        let (ints, strs) = self.inner.labelled();
        (ints, strs.into_iter().map(|(k, t)| (k.to_owned(), t)).collect())
    }

    /// How many labelled ids are remembered.
    fn labelled_len(&self) -> usize {
        self.inner.labelled_len()
    }

    /// How many predictions are pending.
    fn pending_len(&self) -> usize {
        self.inner.pending_len()
    }

    /// How many expired ids are remembered.
    fn tombstones_len(&self) -> usize {
        self.inner.tombstones_len()
    }

    /// The largest accepted label time.
    #[getter]
    fn watermark(&self) -> i64 {
        self.inner.watermark()
    }
}
