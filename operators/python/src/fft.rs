//! Fast-and-frugal trees from Python: `fft_fit` and `fft_predict` hand Arrow
//! columns to `streamml-train` with the GIL released. The tree crosses back
//! as JSON (plain data the Python estimator keeps, pickles and compiles).

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, RecordBatch};
use numpy::PyArray1;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3_arrow::{PyArray, PyRecordBatch};
use streamml_train::{Algorithm, Cue, CueKind, Fft, Goal, OutcomeCosts, Params};

/// The batch's columns as float64 slices (nulls copied to NaN).
fn columns(batch: &RecordBatch) -> PyResult<Vec<std::borrow::Cow<'_, [f64]>>> {
    batch
        .columns()
        .iter()
        .zip(batch.schema().fields())
        .map(|(c, f)| {
            let a = c.as_primitive_opt::<Float64Type>().ok_or_else(|| {
                PyValueError::new_err(format!("column '{}' is {}; expected float64", f.name(), f.data_type()))
            })?;
            Ok(if a.null_count() == 0 {
                std::borrow::Cow::Borrowed(a.values().as_ref())
            } else {
                std::borrow::Cow::Owned(a.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
            })
        })
        .collect()
}

fn goal(name: &str, what: &str) -> PyResult<Goal> {
    Goal::parse(name).ok_or_else(|| {
        PyValueError::new_err(format!("{what} '{name}' is not a goal; expected one of acc, bacc, wacc, cost"))
    })
}

/// Fit a tree; `levels[j]` is 0 for a numeric cue, else its number of levels
/// (the column then holds codes). Returns the tree as JSON.
#[pyfunction]
#[pyo3(signature = (batch, levels, y, max_levels, algorithm, goal_tree, goal_chase, goal_threshold, sens_w, costs, cue_costs, stopping_par))]
#[allow(clippy::too_many_arguments)]
pub fn fft_fit(
    py: Python<'_>,
    batch: PyRecordBatch,
    levels: Vec<u32>,
    y: PyArray,
    max_levels: usize,
    algorithm: &str,
    goal_tree: &str,
    goal_chase: &str,
    goal_threshold: &str,
    sens_w: f64,
    costs: (f64, f64, f64, f64),
    cue_costs: Vec<f64>,
    stopping_par: f64,
) -> PyResult<String> {
    let algorithm = Algorithm::parse(algorithm).ok_or_else(|| {
        PyValueError::new_err(format!("algorithm '{algorithm}' is unknown; expected one of ifan, dfan, max, zigzag"))
    })?;
    let params = Params {
        max_levels,
        algorithm,
        goal: goal(goal_tree, "goal")?,
        goal_chase: goal(goal_chase, "goal_chase")?,
        goal_threshold: goal(goal_threshold, "goal_threshold")?,
        sens_w,
        costs: OutcomeCosts { hi: costs.0, fa: costs.1, mi: costs.2, cr: costs.3 },
        cue_costs,
        stopping_par,
    };
    let batch = batch.into_inner();
    let cols = columns(&batch)?;
    if levels.len() != cols.len() {
        return Err(PyValueError::new_err(format!("{} level counts for {} columns", levels.len(), cols.len())));
    }
    let y = y.as_ref().as_boolean_opt().ok_or_else(|| PyValueError::new_err("y must be a boolean array"))?;
    if y.null_count() > 0 {
        return Err(PyValueError::new_err("y has missing values; pass a label for every row"));
    }
    let y: Vec<bool> = y.values().iter().collect();
    let cues: Vec<Cue> = cols
        .iter()
        .zip(&levels)
        .map(|(c, &k)| Cue {
            values: c,
            kind: if k == 0 { CueKind::Numeric } else { CueKind::Categorical { n_levels: k } },
        })
        .collect();
    let tree = py
        .detach(|| streamml_train::fit(&cues, &y, &params))
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    serde_json::to_string(&tree).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Decisions (1 = signal) and probabilities of signal, as NumPy arrays.
type Predictions<'py> = (Bound<'py, PyArray1<u8>>, Bound<'py, PyArray1<f64>>);

/// Decisions (1 = signal) and probabilities of signal; column `j` of the
/// batch is the tree's cue `j`.
#[pyfunction]
pub fn fft_predict<'py>(
    py: Python<'py>,
    tree: &str,
    batch: PyRecordBatch,
) -> PyResult<Predictions<'py>> {
    let tree: Fft = serde_json::from_str(tree)
        .map_err(|e| PyValueError::new_err(format!("the fitted tree does not parse ({e}); fit the estimator again")))?;
    let batch = batch.into_inner();
    let cols = columns(&batch)?;
    let n_cues = tree.levels.iter().map(|l| l.cue + 1).max().unwrap_or(0);
    if tree.levels.is_empty() || tree.p_signal.len() != tree.levels.len() || tree.p_noise.len() != tree.levels.len() {
        return Err(PyValueError::new_err(
            "the fitted tree has no levels or no exit frequencies per level; fit the estimator again",
        ));
    }
    if cols.len() < n_cues {
        return Err(PyValueError::new_err(format!(
            "the tree reads {n_cues} cues but the batch has {} columns; pass the columns it was fitted on",
            cols.len()
        )));
    }
    let n = batch.num_rows();
    let (mut label, mut proba) = (vec![0u8; n], vec![0f64; n]);
    py.detach(|| {
        let slices: Vec<&[f64]> = cols.iter().map(|c| c.as_ref()).collect();
        tree.predict(&slices, &mut label, &mut proba)
    });
    Ok((PyArray1::from_vec(py, label), PyArray1::from_vec(py, proba)))
}

/// Add `fft_fit` and `fft_predict` to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fft_fit, m)?)?;
    m.add_function(wrap_pyfunction!(fft_predict, m)?)?;
    Ok(())
}
