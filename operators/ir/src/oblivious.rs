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

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use crate::load;

    /// A document of one oblivious tree over two features, `task`/`link` as given.
    fn doc(tree: Value, task: &str, link: &str) -> Value {
        let classes = if task == "binary" { json!([0, 1]) } else { Value::Null };
        json!({
            "format": "streamml-ir", "version": 1, "name": "t", "model_version": "1",
            "framework": "test", "task": task, "features": ["a", "b"], "classes": classes,
            "link": link, "isolation": {"denominator": 2.0, "offset": -0.5},
            "model": {"type": "oblivious", "n_outputs": 1, "base_score": [0.0], "trees": [tree]}
        })
    }

    fn tree(levels: usize, leaves: usize) -> Value {
        json!({
            "split_feature": vec![1; levels], "threshold": vec![0.5; levels],
            "default_left": vec![true; levels], "leaf_value": vec![0.25; leaves]
        })
    }

    fn error(v: Value) -> String {
        load(&v.to_string()).expect_err("refused")
    }

    #[test]
    fn a_valid_oblivious_tree_has_its_depth() {
        let (_, checked) = load(&doc(tree(3, 8), "binary", "sigmoid").to_string()).unwrap();
        assert_eq!(checked.tree_depths, vec![3]);
        let (_, outlier) = load(&doc(tree(0, 1), "outlier", "isolation").to_string()).unwrap();
        assert_eq!(outlier.task, streamml_abi::Task::Other);
    }

    #[test]
    fn hostile_oblivious_trees_are_refused_with_their_reason() {
        assert_eq!(
            error(doc(tree(3, 7), "binary", "sigmoid")),
            "oblivious tree 0: 7 leaf values; expected 2^3 leaves x 1 outputs = 8"
        );
        // 2^60 leaves would be claimed by the depth alone: refused before any allocation.
        assert_eq!(
            error(doc(tree(60, 1), "binary", "sigmoid")),
            "oblivious tree 0: depth 60; oblivious trees deeper than 20 are refused"
        );
        let mut far = tree(1, 2);
        far["split_feature"] = json!([2]);
        assert_eq!(
            error(doc(far, "binary", "sigmoid")),
            "oblivious tree 0: a level splits on feature 2 of 2"
        );
        let mut short = tree(2, 4);
        short["default_left"] = json!([true]);
        assert_eq!(
            error(doc(short, "binary", "sigmoid")),
            "oblivious tree 0: 2 thresholds and 1 default_left for 2 levels; expected one of each per level"
        );
        let mut bias = doc(tree(1, 2), "binary", "sigmoid");
        bias["model"]["base_score"] = json!([0.0, 1.0]);
        assert_eq!(error(bias), "oblivious: base_score has 2 values for 1 outputs");
    }

    #[test]
    fn the_outlier_task_and_the_isolation_link_come_together() {
        assert_eq!(
            error(doc(tree(1, 2), "outlier", "identity")),
            "task 'outlier' with link 'identity'; the outlier task goes with the isolation link, and only it"
        );
        assert_eq!(
            error(doc(tree(1, 2), "binary", "isolation")),
            "task 'binary' with link 'isolation'; the outlier task goes with the isolation link, and only it"
        );
        let mut missing = doc(tree(1, 2), "outlier", "isolation");
        missing["isolation"] = Value::Null;
        assert_eq!(
            error(missing),
            "link isolation without \"isolation\": {\"denominator\", \"offset\"}"
        );
        let mut negative = doc(tree(1, 2), "outlier", "isolation");
        negative["isolation"]["denominator"] = json!(-1.0);
        assert_eq!(
            error(negative),
            "isolation: denominator -1 and offset -0.5; expected a finite denominator >= 0 and a finite offset"
        );
    }
}
