//! Oblivious trees (`"model": {"type": "oblivious"}`, CatBoost's trees: one
//! split per level, shared by every node of the level) and the constants of
//! the `isolation` link (scikit-learn's IsolationForest), with their checks.

use serde::Deserialize;

use crate::ir::{float64, le, one};

/// Deepest oblivious tree accepted: a tree of depth `d` has `2^d` leaves
/// (CatBoost's own limit is 16).
pub const MAX_OBLIVIOUS_DEPTH: usize = 20;

#[derive(Debug, Deserialize)]
pub struct ObliviousIr {
    pub n_outputs: usize,
    pub base_score: Vec<f64>,
    /// `raw[k] = base_score[k] + scale * sum_k`.
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default = "float64")]
    pub feature_cast: String,
    #[serde(default = "le")]
    pub comparison: String,
    #[serde(default = "one")]
    pub sigmoid_scale: f64,
    pub trees: Vec<ObliviousTreeIr>,
}

/// One oblivious tree: level `d` tests `split_feature[d]` against
/// `threshold[d]`; going right sets bit `d` of the leaf index.
#[derive(Debug, Deserialize)]
pub struct ObliviousTreeIr {
    pub split_feature: Vec<usize>,
    pub threshold: Vec<f64>,
    /// Where a NaN goes at each level.
    pub default_left: Vec<bool>,
    /// `2^depth * n_outputs` values, leaf-major: leaf `i`, output `k` at `i * n_outputs + k`.
    pub leaf_value: Vec<f64>,
}

/// `score = -2^(-raw / denominator)` (scikit-learn's `score_samples`; a zero
/// denominator makes the exponent -1), `decision = score - offset`.
#[derive(Debug, Deserialize)]
pub struct IsolationIr {
    pub denominator: f64,
    pub offset: f64,
}

/// Check oblivious trees over `nf` features; returns each tree's depth.
pub fn check_oblivious(o: &ObliviousIr, nf: usize, max_nodes: usize) -> Result<Vec<usize>, String> {
    if o.base_score.len() != o.n_outputs {
        return Err(format!(
            "oblivious: base_score has {} values for {} outputs",
            o.base_score.len(),
            o.n_outputs
        ));
    }
    let finite = o.base_score.iter().all(|v| v.is_finite());
    if !finite || !o.scale.is_finite() || !o.sigmoid_scale.is_finite() {
        return Err("oblivious: base_score, scale and sigmoid_scale must be finite".into());
    }
    for (name, value, allowed) in [
        ("feature_cast", &o.feature_cast, ["float64", "float32"]),
        ("comparison", &o.comparison, ["le", "lt"]),
    ] {
        if !allowed.contains(&value.as_str()) {
            return Err(format!("oblivious: {name} is '{value}'; expected one of {allowed:?}"));
        }
    }
    let mut leaves = 0usize;
    let mut depths = Vec::with_capacity(o.trees.len());
    for (t, tree) in o.trees.iter().enumerate() {
        let d = tree.split_feature.len();
        let fail = |e: String| format!("oblivious tree {t}: {e}");
        if tree.threshold.len() != d || tree.default_left.len() != d {
            return Err(fail(format!(
                "{} thresholds and {} default_left for {d} levels; expected one of each per level",
                tree.threshold.len(),
                tree.default_left.len()
            )));
        }
        if d > MAX_OBLIVIOUS_DEPTH {
            return Err(fail(format!(
                "depth {d}; oblivious trees deeper than {MAX_OBLIVIOUS_DEPTH} are refused"
            )));
        }
        let want = (1usize << d) * o.n_outputs;
        if tree.leaf_value.len() != want {
            return Err(fail(format!(
                "{} leaf values; expected 2^{d} leaves x {} outputs = {want}",
                tree.leaf_value.len(),
                o.n_outputs
            )));
        }
        leaves += want;
        if leaves > max_nodes {
            return Err(format!("the oblivious trees have more than {max_nodes} leaf values"));
        }
        if let Some(f) = tree.split_feature.iter().find(|f| **f >= nf) {
            return Err(fail(format!("a level splits on feature {f} of {nf}")));
        }
        if let Some(v) = tree.threshold.iter().find(|v| !v.is_finite()) {
            return Err(fail(format!("threshold {v} is not finite")));
        }
        if let Some(v) = tree.leaf_value.iter().find(|v| !v.is_finite()) {
            return Err(fail(format!("leaf value {v} is not finite")));
        }
        depths.push(d);
    }
    Ok(depths)
}

/// Check the isolation link's constants.
pub fn check_isolation(i: Option<&IsolationIr>) -> Result<(), String> {
    let Some(i) = i else {
        return Err("link isolation without \"isolation\": {\"denominator\", \"offset\"}".into());
    };
    if !(i.denominator.is_finite() && i.denominator >= 0.0 && i.offset.is_finite()) {
        return Err(format!(
            "isolation: denominator {} and offset {}; expected a finite denominator >= 0 and a finite offset",
            i.denominator, i.offset
        ));
    }
    Ok(())
}
