//! `_streamml.DriftCounters`: the core's drift counters for Python. Use
//! `streamml.drift.DriftMonitor`, which wraps this.

use pyo3::prelude::*;
use pyo3_arrow::PyRecordBatch;
use streamml_core::drift::{DriftCounters, DriftError, Role};

use crate::errors::{new_err, Kind};

fn drift_err(e: DriftError) -> PyErr {
    new_err(Kind::Input, e.to_string())
}

/// Per-feature and per-score count vectors over a frozen reference.
#[pyclass(name = "DriftCounters", module = "streamml._streamml")]
#[derive(Clone)]
pub struct PyDriftCounters {
    pub(crate) inner: DriftCounters,
}

#[pymethods]
impl PyDriftCounters {
    /// Counters (all zero) for a `drift_reference` document given as JSON.
    #[staticmethod]
    fn from_json(reference_json: &str) -> PyResult<Self> {
        let value: serde_json::Value = serde_json::from_str(reference_json)
            .map_err(|e| new_err(Kind::Input, format!("drift: reference is not JSON: {e}")))?;
        let inner = DriftCounters::from_reference(&value).map_err(drift_err)?;
        Ok(Self { inner })
    }

    /// Count the feature columns of an input batch, GIL released.
    fn observe(&mut self, py: Python<'_>, batch: PyRecordBatch) -> PyResult<()> {
        let inner = &mut self.inner;
        py.detach(|| inner.observe(batch.as_ref())).map_err(drift_err)
    }

    /// Count the score columns of an output batch, GIL released.
    fn observe_outputs(&mut self, py: Python<'_>, batch: PyRecordBatch) -> PyResult<()> {
        let inner = &mut self.inner;
        py.detach(|| inner.observe_outputs(batch.as_ref())).map_err(drift_err)
    }

    /// Add another set of counters of the same layout.
    fn merge(&mut self, other: &PyDriftCounters) -> PyResult<()> {
        self.inner.merge(&other.inner).map_err(drift_err)
    }

    /// A copy of these counters.
    fn copy(&self) -> Self {
        self.clone()
    }

    /// Zero every count.
    fn reset(&mut self) {
        self.inner.reset();
    }

    /// Replace one counter's counts (restoring a snapshot).
    fn set_counts(&mut self, name: &str, counts: Vec<u64>) -> PyResult<()> {
        self.inner.set_counts(name, &counts).map_err(drift_err)
    }

    /// `(name, "feature" | "score", "numeric" | "categorical")` per counter.
    fn layout(&self) -> Vec<(String, &'static str, &'static str)> {
        use streamml_core::drift::Binning;
        self.inner
            .counters
            .iter()
            .map(|c| {
                let role = if c.role == Role::Feature { "feature" } else { "score" };
                let kind = match c.binning {
                    Binning::Numeric { .. } => "numeric",
                    Binning::Categorical { .. } | Binning::Strings { .. } => "categorical",
                };
                (c.name.clone(), role, kind)
            })
            .collect()
    }

    /// The counts of every counter, in layout order.
    fn counts(&self) -> Vec<Vec<u64>> {
        self.inner.counters.iter().map(|c| c.counts.clone()).collect()
    }

    /// The reference counts of every counter, in layout order.
    fn reference_counts(&self) -> Vec<Vec<u64>> {
        self.inner.counters.iter().map(|c| c.reference.clone()).collect()
    }

    /// `(rows, psi, js, hellinger, kl, missing_rate, out_of_range_rate,
    /// new_category_rate)` per counter.
    #[allow(clippy::type_complexity)]
    fn stats(&self) -> Vec<(u64, f64, f64, f64, f64, f64, f64, f64)> {
        self.inner
            .stats()
            .into_iter()
            .map(|s| {
                let d = s.divergence;
                (s.rows, d.psi, d.js, d.hellinger, d.kl, s.missing_rate, s.out_of_range_rate, s.new_category_rate)
            })
            .collect()
    }
}
