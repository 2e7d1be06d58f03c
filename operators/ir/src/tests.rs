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
