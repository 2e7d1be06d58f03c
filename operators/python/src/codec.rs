//! `_streamml.MessageScorer`: a batch of message values decoded, scored and
//! encoded in Rust with the GIL released (`streamml.kafka` drives it).

use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyList};
use streamml_core::codec::{Carry, Format, MessageScorer, Scored};
use streamml_core::rows::MissingFields;

use crate::drift::PyDriftCounters;
use crate::errors::{input_err, new_err, Kind};
use crate::model::PyModel;

/// What `score` returns: one `bytes | None` per value, `(index, reason)` per
/// refusal, and why the drift counters could not count (if they could not).
type ScoreResult<'py> = (Bound<'py, PyList>, Vec<(usize, String)>, Option<String>);

/// Decode → score → encode for one model and message format.
#[pyclass(name = "MessageScorer", module = "streamml._streamml", frozen)]
pub struct PyMessageScorer {
    inner: MessageScorer,
}

#[pymethods]
impl PyMessageScorer {
    /// A scorer of `model` for messages in `format` (`json` or `arrow`) that
    /// copies `id_field`, then `carry_fields`, from each input to its output;
    /// `missing_fields`: `"error"` (an input field absent from a message
    /// refuses it) or `"null"` (it is read as null).
    #[staticmethod]
    #[pyo3(signature = (model, format, id_field=None, carry_fields=Vec::new(), missing_fields="error"))]
    fn create(
        model: &PyModel,
        format: &str,
        id_field: Option<String>,
        carry_fields: Vec<String>,
        missing_fields: &str,
    ) -> PyResult<Self> {
        let missing: MissingFields = missing_fields.parse().map_err(|m: String| new_err(Kind::Input, m))?;
        let format: Format = format
            .parse()
            .map_err(|m: String| new_err(Kind::Input, m))?;
        let carry = Carry {
            id_field,
            fields: carry_fields,
        };
        let inner = MessageScorer::new(model.core().clone(), format, carry)
            .map_err(input_err)?
            .with_missing_fields(missing);
        Ok(Self { inner })
    }

    /// Score message values; returns `(outputs, errors, drift_error)`: one
    /// `bytes | None` per value, `(index, reason)` for each value without
    /// output, and `None` unless `drift` (counters the scored rows' inputs
    /// and outputs are added to) could not count.
    #[pyo3(signature = (values, drift=None))]
    fn score<'py>(
        &self,
        py: Python<'py>,
        values: Vec<PyBackedBytes>,
        mut drift: Option<PyRefMut<'py, PyDriftCounters>>,
    ) -> PyResult<ScoreResult<'py>> {
        let counters = drift.as_deref_mut().map(|d| &mut d.inner);
        let scored = py.detach(|| {
            let refs: Vec<&[u8]> = values.iter().map(|v| v.as_ref()).collect();
            self.inner.score_counted(&refs, counters)
        });
        to_python(py, scored)
    }

    /// Score message values with this scorer and each of `shadows`
    /// (`(scorer, drift)` pairs: challengers, each with its own counters or
    /// `None`); one `score` result per scorer, this one's first. The values
    /// are decoded once for all the scorers that read them alike.
    #[pyo3(signature = (values, drift=None, shadows=Vec::new()))]
    fn score_shadowed<'py>(
        &self,
        py: Python<'py>,
        values: Vec<PyBackedBytes>,
        mut drift: Option<PyRefMut<'py, PyDriftCounters>>,
        mut shadows: Vec<(PyRef<'py, PyMessageScorer>, Option<PyRefMut<'py, PyDriftCounters>>)>,
    ) -> PyResult<Vec<ScoreResult<'py>>> {
        let counters = drift.as_deref_mut().map(|d| &mut d.inner);
        let others: Vec<_> = shadows
            .iter_mut()
            .map(|(scorer, drift)| (&scorer.inner, drift.as_deref_mut().map(|d| &mut d.inner)))
            .collect();
        let all = py.detach(|| {
            let refs: Vec<&[u8]> = values.iter().map(|v| v.as_ref()).collect();
            self.inner.score_shadowed(&refs, counters, others)
        });
        all.into_iter().map(|scored| to_python(py, scored)).collect()
    }
}

fn to_python(py: Python<'_>, scored: Scored) -> PyResult<ScoreResult<'_>> {
    let outputs = PyList::empty(py);
    for out in scored.outputs {
        match out {
            Some(bytes) => outputs.append(PyBytes::new(py, &bytes))?,
            None => outputs.append(py.None())?,
        }
    }
    let errors = scored
        .errors
        .into_iter()
        .map(|e| (e.index, e.reason))
        .collect();
    Ok((outputs, errors, scored.drift_error))
}
