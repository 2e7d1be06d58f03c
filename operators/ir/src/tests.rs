//! Validation of hostile IR documents: each is refused with its reason, in
//! time linear in its nodes and without recursion.

use serde_json::{json, Value};

use crate::validate::{MAX_CATEGORY, MAX_DEPTH};
use crate::{load, validate, Ir};

/// A binary model of one tree over two features.
fn doc(tree: Value) -> Value {
    json!({
        "format": "streamml-ir", "version": 1, "name": "t", "model_version": "1",
        "framework": "test", "task": "binary", "features": ["a", "b"], "classes": [0, 1],
        "link": "sigmoid",
        "model": {"type": "trees", "n_outputs": 1, "base_score": [0.0], "trees": [tree]}
    })
}

/// A tree with the given children (leaves numbered by `!child`).
fn tree(left: Vec<i64>, right: Vec<i64>, n_leaves: usize) -> Value {
    let n = left.len();
    json!({
        "output": 0, "split_feature": vec![0; n], "threshold": vec![0.5; n],
        "left": left, "right": right, "default_left": vec![true; n],
        "missing": vec!["nan"; n], "leaf_value": vec![0.25; n_leaves]
    })
}

fn error(v: Value) -> String {
    load(&v.to_string()).expect_err("refused")
}

#[test]
fn a_balanced_tree_is_valid_and_its_depth_counted() {
    let (_, checked) = load(&doc(tree(vec![1, -1, -3], vec![2, -2, -4], 4)).to_string()).unwrap();
    assert_eq!(checked.tree_depths, vec![2]);
    let (_, leaf) = load(&doc(tree(vec![], vec![], 1)).to_string()).unwrap();
    assert_eq!(leaf.tree_depths, vec![0]);
}

#[test]
fn a_cycle_is_refused() {
    // 0 -> 1 -> 0
    let e = error(doc(tree(vec![1, 0], vec![-1, -2], 3)));
    assert_eq!(
        e,
        "tree 0: node 0 is reached twice (from node 1); a tree has no cycles or shared children"
    );
}

#[test]
fn shared_children_are_refused_before_any_exponential_walk() {
    // 48 nodes, each pointing twice at the next: 2^48 paths, 48 nodes.
    let n = 48;
    let left: Vec<i64> = (1..=n as i64)
        .map(|i| if i < n as i64 { i } else { -1 })
        .collect();
    let right: Vec<i64> = (1..=n as i64)
        .map(|i| if i < n as i64 { i } else { -2 })
        .collect();
    let e = error(doc(tree(left, right, n + 1)));
    assert_eq!(
        e,
        "tree 0: node 1 is reached twice (from node 0); a tree has no cycles or shared children"
    );
}

#[test]
fn a_200k_node_chain_is_refused_by_depth_without_recursion() {
    let n = 200_000i64;
    let left: Vec<i64> = (0..n).map(|i| if i + 1 < n { i + 1 } else { -1 }).collect();
    let right: Vec<i64> = (0..n).map(|i| -(i + 2)).collect();
    let mut right = right;
    right[(n - 1) as usize] = -(n + 1);
    let e = error(doc(tree(left, right, n as usize + 1)));
    assert_eq!(e, format!("tree 0: node {MAX_DEPTH} is at depth {MAX_DEPTH}; trees deeper than {MAX_DEPTH} are refused"));
}

#[test]
fn a_huge_category_is_refused_before_any_allocation() {
    let mut t = tree(vec![-1], vec![-2], 2);
    t["categories"] = json!([[1, 4611686018427387904i64]]);
    assert_eq!(
        error(doc(t)),
        format!("tree 0: node 0: category 4611686018427387904 is outside 0..={MAX_CATEGORY}")
    );
    let mut neg = tree(vec![-1], vec![-2], 2);
    neg["categories"] = json!([[-3]]);
    assert_eq!(
        error(doc(neg)),
        format!("tree 0: node 0: category -3 is outside 0..={MAX_CATEGORY}")
    );
}

#[test]
fn indices_out_of_range_and_unreachable_nodes_are_refused() {
    assert_eq!(
        error(doc(tree(vec![7], vec![-2], 2))),
        "tree 0: node 0: child 7 is not a node (there are 1)"
    );
    assert_eq!(
        error(doc(tree(vec![-9], vec![-2], 2))),
        "tree 0: node 0: child -9 is not a leaf (there are 2)"
    );
    assert_eq!(
        error(doc(tree(vec![-1, -2], vec![-3, -1], 3))),
        "tree 0: node 1 is not reachable from the root"
    );
    let mut f = tree(vec![-1], vec![-2], 2);
    f["split_feature"] = json!([2]);
    assert_eq!(error(doc(f)), "tree 0: node 0 splits on feature 2 of 2");
    assert_eq!(
        error(doc(tree(vec![-1], vec![-2], 3))),
        "tree 0: 3 leaves for 1 internal nodes; a binary tree has one more leaf than internal nodes"
    );
}

#[test]
fn outputs_must_fit_the_task_and_link() {
    let mut d = doc(tree(vec![-1], vec![-2], 2));
    d["link"] = json!("softmax");
    d["task"] = json!("regression");
    d["classes"] = Value::Null;
    assert_eq!(
        error(d),
        "link softmax with 1 output(s); expected at least 2"
    );
    let mut m = doc(tree(vec![-1], vec![-2], 2));
    m["task"] = json!("multiclass");
    m["classes"] = json!([0, 1, 2]);
    assert_eq!(
        error(m),
        "multiclass with 3 classes and 1 outputs; expected as many classes as outputs, at least 2"
    );
    let mut o = doc(tree(vec![-1], vec![-2], 2));
    o["model"]["trees"][0]["output"] = json!(1);
    assert_eq!(error(o), "tree 0: output 1 is out of range for 1 outputs");
}

#[test]
fn a_zero_or_non_finite_scale_is_refused() {
    let mut d = doc(tree(vec![-1], vec![-2], 2));
    d["preprocess"] = json!({"type": "standard_scaler", "mean": [0.0, 1.0], "scale": [1.0, 0.0]});
    assert_eq!(
        error(d),
        "standard_scaler for feature 'b': mean 1 and scale 0; expected finite values and a non-zero scale"
    );
}

#[test]
fn validation_is_linear_in_nodes() {
    // A complete tree of 2^17 - 1 internal nodes validates quickly.
    let n = (1usize << 17) - 1;
    let left: Vec<i64> = (0..n)
        .map(|i| {
            if 2 * i + 1 < n {
                (2 * i + 1) as i64
            } else {
                !((2 * i + 1 - n) as i64)
            }
        })
        .collect();
    let right: Vec<i64> = (0..n)
        .map(|i| {
            if 2 * i + 2 < n {
                (2 * i + 2) as i64
            } else {
                !((2 * i + 2 - n) as i64)
            }
        })
        .collect();
    let text = doc(tree(left, right, n + 1)).to_string();
    let ir = Ir::parse(&text).unwrap();
    let start = std::time::Instant::now();
    let checked = validate(&ir).unwrap();
    assert_eq!(checked.tree_depths, vec![17]);
    assert!(start.elapsed().as_millis() < 500, "{:?}", start.elapsed());
}

/// A linear regression over `width` features, behind `steps`, on inputs
/// `a` (float64) and `s` (utf8).
fn with_steps(steps: Value, width: usize) -> Value {
    json!({
        "format": "streamml-ir", "version": 1, "name": "t", "model_version": "1",
        "framework": "test", "task": "regression", "features": ["a", "s"],
        "input_types": ["float64", "utf8"], "preprocess": steps,
        "model": {"type": "linear", "n_outputs": 1, "coef": [vec![1.0; width]], "intercept": [0.0]}
    })
}

fn column_transformer() -> Value {
    json!([{"name": "ct", "type": "columns", "parts": [
        {"name": "num", "columns": [0], "steps": [
            {"name": "num/imputer", "type": "impute", "fill": [1.5], "indicator": [0]},
            {"name": "num/scaler", "type": "affine", "sub": [1.0, 0.0], "div": [2.0, 1.0]}]},
        {"name": "cat", "columns": [1], "steps": [
            {"name": "cat/imputer", "type": "impute", "fill": ["missing"]},
            {"name": "cat/onehot", "type": "one_hot", "columns": [
                {"categories": ["x", "y", "missing"], "hot": [0, 1, -1], "width": 2,
                 "unknown": -1, "missing": "error"}]}]},
        {"name": "ord", "columns": [1], "steps": [
            {"type": "ordinal", "columns": [
                {"categories": ["x", ""], "codes": [0, 1], "unknown": null, "missing": -1}]}]}]},
        {"type": "normalize", "norm": "l2"}])
}

#[test]
fn a_column_transformer_plan_is_flattened_with_types_and_widths() {
    let (ir, checked) = load(&with_steps(column_transformer(), 5).to_string()).unwrap();
    let plan = &checked.plan;
    assert_eq!(plan.outputs.len(), 5);
    assert_eq!(
        plan.steps,
        vec![
            "ct/num/imputer: impute (1 -> 2 columns)",
            "ct/num/scaler: affine (2 -> 2 columns)",
            "ct/cat/imputer: impute (1 -> 1 columns)",
            "ct/cat/onehot: one_hot (1 -> 2 columns)",
            "ct/0: ordinal (1 -> 1 columns)",
            "ct: columns (2 -> 5 columns)",
            "1: normalize (5 -> 5 columns)",
        ]
    );
    let info = crate::build_info(&ir, &checked);
    assert_eq!(info.inputs[1].ty, "utf8");
    assert_eq!(
        info.metadata["preprocess"][0],
        "ct/num/imputer: impute (1 -> 2 columns)"
    );
}

#[test]
fn preprocessing_refusals_name_the_step() {
    let e = |steps: Value, width: usize| error(with_steps(steps, width));
    assert_eq!(
        e(
            json!([{"name": "sc", "type": "affine", "div": [1.0, 2.0]}]),
            2
        ),
        "preprocess step 'sc' (affine): column 1 is utf8; this step takes numeric columns only"
    );
    assert_eq!(
        e(
            json!([{"type": "select", "columns": [0]}, {"name": "sc", "type": "affine", "div": [0.0]}]),
            1
        ),
        "preprocess step 'sc' (affine): div[0] is 0; expected a finite, non-zero number"
    );
    assert_eq!(
        e(json!([{"type": "select", "columns": [0, 2]}]), 2),
        "preprocess step '0' (select): column 2 is out of range for 2 columns"
    );
    assert_eq!(
        e(json!([{"type": "select", "columns": [1]}]), 1),
        "the model's feature 0 is the utf8 input 1; strings must be encoded (one_hot or ordinal) before the model"
    );
    assert_eq!(
        e(
            json!([{"type": "select", "columns": [1]}, {"name": "oh", "type": "one_hot", "columns": [
            {"categories": [1.0], "hot": [0], "width": 1, "unknown": -1, "missing": -1}]}]),
            1
        ),
        "preprocess step 'oh' (one_hot): column 0 is utf8 but category 0 is 1.0; expected a string"
    );
    assert_eq!(
        e(
            json!([{"type": "select", "columns": [0]}, {"name": "oh", "type": "one_hot", "columns": [
            {"categories": [1.0, 1.0], "hot": [0, 1], "width": 2, "unknown": -1, "missing": -1}]}]),
            2
        ),
        "preprocess step 'oh' (one_hot): column 0 lists category 1.0 twice"
    );
    assert_eq!(
        e(
            json!([{"type": "select", "columns": [0]}, {"name": "oh", "type": "one_hot", "columns": [
            {"categories": [1.0], "hot": [3], "width": 2, "unknown": -1, "missing": -1}]}]),
            2
        ),
        "preprocess step 'oh' (one_hot): column 0 has the hot position 3; expected -1 to 1"
    );
    assert_eq!(
        e(json!([{"type": "select", "columns": [0]}, {"name": "oh", "type": "one_hot", "columns": [
            {"categories": [1.0], "hot": [0], "width": 2, "unknown": "ignore", "missing": -1}]}]), 2),
        "preprocess step 'oh' (one_hot): column 0: unknown is \"ignore\"; expected a position -1 to 1, or \"error\""
    );
    assert_eq!(
        e(
            json!([{"name": "imp", "type": "impute", "fill": [0.0, 1.0]}]),
            2
        ),
        "preprocess step 'imp' (impute): fill[1] is 1.0 for a utf8 column; expected a string"
    );
    assert_eq!(
        e(
            json!([{"type": "select", "columns": [0]}, {"type": "normalize", "norm": "l3"}]),
            1
        ),
        "preprocess step '1' (normalize): norm 'l3'; expected l1, l2 or max"
    );
    let mut t = with_steps(json!([{"type": "select", "columns": [0]}]), 1);
    t["input_types"] = json!(["float64", "int64"]);
    assert_eq!(
        error(t),
        "input 's' has the type 'int64'; expected float64 or utf8"
    );
    let mut wide = with_steps(json!([{"type": "select", "columns": [0]}]), 1);
    wide["model"]["coef"] = json!([[1.0, 1.0]]);
    assert_eq!(
        error(wide),
        "linear: a coefficient row has 2 values for 1 features"
    );
    let huge = json!([{"type": "select", "columns": [0]}, {"type": "one_hot", "columns": [
        {"categories": [], "hot": [], "width": 1usize << 20, "unknown": -1, "missing": -1}]}]);
    assert_eq!(
        e(huge, 1),
        "preprocess step '1' (one_hot): column 0 has width 1048576; at most 65536"
    );
}

#[test]
fn catboost_steps_are_checked_naming_the_step() {
    let e = |steps: Value, width: usize| error(with_steps(steps, width));
    let table = json!({"kind": "Borders", "stride": 2, "hashes": [1, 2], "values": [3.0, 4.0, 5.0, 6.0]});
    let ctr = json!({"table": 0, "cat": [1], "prior_num": 0.0, "prior_denom": 1.0, "shift": 0.0, "scale": 15.0});
    // a valid plan: hash the utf8 input, one ctr over it; the model reads a, s's hash, the ctr
    let ok = json!([{"name": "hash", "type": "catboost_hash"}, {"name": "ctr", "type": "catboost_ctr", "tables": [table], "ctrs": [ctr]}]);
    load(&with_steps(ok, 3).to_string()).expect("valid");
    let mut bad_kind = table.clone();
    bad_kind["kind"] = json!("Mystery");
    assert_eq!(
        e(json!([{"type": "catboost_hash"}, {"name": "ctr", "type": "catboost_ctr", "tables": [bad_kind], "ctrs": []}]), 2),
        "preprocess step 'ctr' (catboost_ctr): table 0 has the kind 'Mystery'; expected one of Borders, Buckets, BinarizedTargetMeanValue, FloatTargetMeanValue, Counter, FeatureFreq"
    );
    let mut short = table.clone();
    short["values"] = json!([3.0]);
    assert_eq!(
        e(json!([{"type": "catboost_hash"}, {"name": "ctr", "type": "catboost_ctr", "tables": [short], "ctrs": []}]), 2),
        "preprocess step 'ctr' (catboost_ctr): table 0 has 1 values for 2 hashes of stride 2"
    );
    let mut far = ctr.clone();
    far["cat"] = json!([5]);
    assert_eq!(
        e(json!([{"type": "catboost_hash"}, {"name": "ctr", "type": "catboost_ctr", "tables": [table], "ctrs": [far]}]), 3),
        "preprocess step 'ctr' (catboost_ctr): ctr 0 reads column 5; there are 2"
    );
    assert_eq!(
        e(json!([{"name": "ctr", "type": "catboost_ctr", "tables": [table], "ctrs": [ctr]}]), 3),
        "preprocess step 'ctr' (catboost_ctr): column 1 is utf8; this step takes numeric columns only"
    );
    assert_eq!(
        e(json!([{"type": "select", "columns": [0]}, {"name": "c", "type": "cast", "to": "int8"}]), 1),
        "preprocess step 'c' (cast): cast to 'int8'; expected float32 or int64"
    );
}
