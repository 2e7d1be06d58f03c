//! Check an IR document before anything is built from it: the trees form a
//! forest (every internal node and leaf reached exactly once from the root,
//! so no cycles and no shared children), within caps on depth, nodes and
//! categories; indices in range; outputs that fit the task and link; finite
//! numbers. Every walk is iterative and visits each node once, so checking
//! is linear in the nodes and needs no stack proportional to depth.

use std::collections::HashSet;

use serde_json::Value;
use streamml_abi::Task;

use crate::ir::{Ir, LinearIr, ModelIr, Op, Preprocess, Step, TreeIr, TreesIr};
use crate::plan::{plan, InputType, Plan};

/// Deepest tree accepted (edges from the root to its deepest leaf).
pub const MAX_DEPTH: usize = 4096;
/// Internal nodes plus leaves over the whole forest (node ids are `i32`).
pub const MAX_NODES: usize = 1 << 26;
/// Largest category value of a categorical split (its bitset has
/// `value / 64 + 1` words).
pub const MAX_CATEGORY: i64 = (1 << 24) - 1;
/// Bitset words (u64) for all categorical splits together: 64 MiB.
pub const MAX_CATEGORY_WORDS: usize = 1 << 23;
/// Raw scores per row.
pub const MAX_OUTPUTS: usize = 1 << 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Identity,
    Sigmoid,
    Softmax,
    Exp,
}

/// When a binary model says `classes[1]` (`docs/ir.md`, outputs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryLabel {
    ProbabilityGtHalf,
    RawGtZero,
    RawGeZero,
    Argmax,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Classes {
    None,
    Int(Vec<i64>),
    Str(Vec<String>),
}

impl Classes {
    pub fn len(&self) -> usize {
        match self {
            Classes::None => 0,
            Classes::Int(c) => c.len(),
            Classes::Str(c) => c.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What validation learnt about a valid IR.
#[derive(Clone, Debug)]
pub struct Checked {
    pub task: Task,
    pub link: Link,
    pub binary_label: BinaryLabel,
    pub classes: Classes,
    pub n_outputs: usize,
    /// Trees only: each tree's depth (edges from its root to its deepest leaf).
    pub tree_depths: Vec<usize>,
    /// The preprocessing, checked and flattened; its outputs are the
    /// features the model reads.
    pub plan: Plan,
}

impl Checked {
    pub fn max_depth(&self) -> usize {
        self.tree_depths.iter().copied().max().unwrap_or(0)
    }
}

/// Validate a parsed IR; the error says which part is wrong and how. The
/// preprocessing is checked (and flattened) by [`crate::plan`].
pub fn validate(ir: &Ir) -> Result<Checked, String> {
    let nf = ir.features.len();
    if nf == 0 {
        return Err("the model IR declares no features".into());
    }
    let mut seen = HashSet::with_capacity(nf);
    for f in &ir.features {
        if f.is_empty() || !seen.insert(f.as_str()) {
            return Err(format!(
                "feature names must be non-empty and unique; '{f}' is not"
            ));
        }
    }
    let types = input_types(ir)?;
    let legacy;
    let steps: Option<&[Step]> = match &ir.preprocess {
        None => None,
        Some(Preprocess::Steps(steps)) => Some(steps),
        Some(Preprocess::StandardScaler { mean, scale }) => {
            legacy = [legacy_scaler(ir, mean, scale)?];
            Some(&legacy)
        }
    };
    let plan = plan(&types, steps)?;
    let width = plan.outputs.len();
    if width == 0 {
        return Err("the preprocessing leaves the model no features".into());
    }
    let link = match ir.link.as_str() {
        "identity" => Link::Identity,
        "sigmoid" => Link::Sigmoid,
        "softmax" => Link::Softmax,
        "exp" => Link::Exp,
        other => {
            return Err(format!(
                "link '{other}'; expected identity, sigmoid, softmax or exp"
            ))
        }
    };
    let task = match ir.task.as_str() {
        "regression" => Task::Regression,
        "binary" => Task::Binary,
        "multiclass" => Task::Multiclass,
        other => {
            return Err(format!(
                "task '{other}'; expected regression, binary or multiclass"
            ))
        }
    };
    let binary_label = match ir.binary_label.as_str() {
        "probability_gt_half" => BinaryLabel::ProbabilityGtHalf,
        "raw_gt_zero" => BinaryLabel::RawGtZero,
        "raw_ge_zero" => BinaryLabel::RawGeZero,
        "argmax" => BinaryLabel::Argmax,
        other => {
            return Err(format!(
                "binary_label '{other}'; expected probability_gt_half, raw_gt_zero, raw_ge_zero or argmax"
            ))
        }
    };
    let classes = parse_classes(ir.classes.as_deref())?;
    let (n_outputs, tree_depths) = match &ir.model {
        ModelIr::Trees(t) => {
            let n = t.n_outputs;
            check_outputs(n)?;
            (n, check_trees(t, width)?)
        }
        ModelIr::Linear(l) => {
            check_outputs(l.n_outputs)?;
            check_linear(l, width)?;
            (l.n_outputs, Vec::new())
        }
    };
    let n_classes = classes.len();
    match task {
        Task::Regression if n_outputs != 1 => {
            return Err(format!("regression with {n_outputs} outputs; expected 1"))
        }
        Task::Regression if ir.classes.is_some() => {
            return Err("regression with classes; expected classes null".into())
        }
        Task::Binary if n_classes != 2 || n_outputs > 2 => {
            return Err(format!(
                "binary with {n_classes} classes and {n_outputs} outputs; expected 2 classes and 1 or 2 outputs"
            ))
        }
        Task::Binary if binary_label == BinaryLabel::Argmax && n_outputs != 2 => {
            return Err(format!("binary_label argmax with {n_outputs} output(s); expected 2"))
        }
        Task::Multiclass if n_classes != n_outputs || n_classes < 2 => {
            return Err(format!(
                "multiclass with {n_classes} classes and {n_outputs} outputs; expected as many classes as outputs, at least 2"
            ))
        }
        _ => {}
    }
    if link == Link::Softmax && n_outputs < 2 {
        return Err(format!(
            "link softmax with {n_outputs} output(s); expected at least 2"
        ));
    }
    Ok(Checked {
        task,
        link,
        binary_label,
        classes,
        n_outputs,
        tree_depths,
        plan,
    })
}

/// Each input's type: `input_types`, or float64 for all.
fn input_types(ir: &Ir) -> Result<Vec<InputType>, String> {
    let nf = ir.features.len();
    let Some(types) = &ir.input_types else {
        return Ok(vec![InputType::Float64; nf]);
    };
    if types.len() != nf {
        return Err(format!(
            "input_types has {} entries for {nf} features; expected one per feature",
            types.len()
        ));
    }
    types
        .iter()
        .zip(&ir.features)
        .map(|(t, f)| {
            InputType::parse(t)
                .ok_or_else(|| format!("input '{f}' has the type '{t}'; expected float64 or utf8"))
        })
        .collect()
}

/// The legacy `{"type": "standard_scaler"}` preprocess as an affine step.
fn legacy_scaler(ir: &Ir, mean: &[f64], scale: &[f64]) -> Result<Step, String> {
    let nf = ir.features.len();
    if mean.len() != nf || scale.len() != nf {
        return Err(format!(
            "standard_scaler has {} means and {} scales for {nf} features; expected one of each per feature",
            mean.len(),
            scale.len()
        ));
    }
    if let Some(j) =
        (0..nf).find(|&j| !mean[j].is_finite() || !scale[j].is_finite() || scale[j] == 0.0)
    {
        return Err(format!(
            "standard_scaler for feature '{}': mean {} and scale {}; expected finite values and a non-zero scale",
            ir.features[j], mean[j], scale[j]
        ));
    }
    Ok(Step {
        name: Some("standard_scaler".into()),
        op: Op::Affine {
            sub: Some(mean.to_vec()),
            mul: None,
            div: Some(scale.to_vec()),
            add: None,
        },
    })
}

fn check_outputs(n: usize) -> Result<(), String> {
    if n == 0 || n > MAX_OUTPUTS {
        return Err(format!(
            "the model has {n} outputs; expected 1 to {MAX_OUTPUTS}"
        ));
    }
    Ok(())
}

fn parse_classes(classes: Option<&[Value]>) -> Result<Classes, String> {
    let Some(classes) = classes else {
        return Ok(Classes::None);
    };
    if classes.iter().all(Value::is_i64) {
        Ok(Classes::Int(
            classes.iter().filter_map(Value::as_i64).collect(),
        ))
    } else if classes.iter().all(Value::is_string) {
        Ok(Classes::Str(
            classes
                .iter()
                .filter_map(|c| c.as_str().map(str::to_string))
                .collect(),
        ))
    } else {
        Err("classes must be all integers or all strings".into())
    }
}

fn check_linear(l: &LinearIr, nf: usize) -> Result<(), String> {
    if l.coef.len() != l.n_outputs || l.intercept.len() != l.n_outputs {
        return Err(format!(
            "linear: {} coefficient rows and {} intercepts for {} outputs",
            l.coef.len(),
            l.intercept.len(),
            l.n_outputs
        ));
    }
    if let Some(row) = l.coef.iter().find(|r| r.len() != nf) {
        return Err(format!(
            "linear: a coefficient row has {} values for {nf} features",
            row.len()
        ));
    }
    let finite = l
        .coef
        .iter()
        .flatten()
        .chain(&l.intercept)
        .all(|v| v.is_finite());
    if !finite || !l.sigmoid_scale.is_finite() {
        return Err("linear: coefficients, intercepts and sigmoid_scale must be finite".into());
    }
    Ok(())
}

fn check_trees(t: &TreesIr, nf: usize) -> Result<Vec<usize>, String> {
    if t.base_score.len() != t.n_outputs {
        return Err(format!(
            "trees: base_score has {} values for {} outputs",
            t.base_score.len(),
            t.n_outputs
        ));
    }
    if !t.base_score.iter().all(|v| v.is_finite()) || !t.sigmoid_scale.is_finite() {
        return Err("trees: base_score and sigmoid_scale must be finite".into());
    }
    let mut budget = Budget { nodes: 0, words: 0 };
    let mut depths = Vec::with_capacity(t.trees.len());
    for (i, tree) in t.trees.iter().enumerate() {
        depths.push(
            check_tree(tree, nf, t.n_outputs, &mut budget).map_err(|e| format!("tree {i}: {e}"))?,
        );
    }
    Ok(depths)
}

struct Budget {
    nodes: usize,
    words: usize,
}

/// One tree: columns, indices, shape (a tree, reached from node 0), leaves.
fn check_tree(
    tree: &TreeIr,
    nf: usize,
    n_outputs: usize,
    budget: &mut Budget,
) -> Result<usize, String> {
    let n = tree.split_feature.len();
    for (name, len) in [
        ("threshold", tree.threshold.len()),
        ("left", tree.left.len()),
        ("right", tree.right.len()),
        ("default_left", tree.default_left.len()),
        ("missing", tree.missing.len()),
        ("categories", tree.categories.as_ref().map_or(n, Vec::len)),
    ] {
        if len != n {
            return Err(format!("{name} has {len} entries for {n} nodes"));
        }
    }
    let n_leaves = tree.leaf_value.len();
    budget.nodes += n + n_leaves;
    if budget.nodes > MAX_NODES {
        return Err(format!(
            "the forest has more than {MAX_NODES} nodes and leaves"
        ));
    }
    if n_leaves != n + 1 {
        return Err(format!("{n_leaves} leaves for {n} internal nodes; a binary tree has one more leaf than internal nodes"));
    }
    match tree.output {
        Some(k) if k >= n_outputs => {
            return Err(format!(
                "output {k} is out of range for {n_outputs} outputs"
            ))
        }
        Some(_) => {
            if let Some(v) = tree
                .leaf_value
                .iter()
                .find(|v| !v.as_f64().is_some_and(f64::is_finite))
            {
                return Err(format!("leaf value {v} is not a finite number"));
            }
        }
        None => {
            for v in &tree.leaf_value {
                let ok = v.as_array().is_some_and(|a| {
                    a.len() == n_outputs && a.iter().all(|x| x.as_f64().is_some_and(f64::is_finite))
                });
                if !ok {
                    return Err(format!(
                        "vector leaf {v} is not a list of {n_outputs} finite numbers"
                    ));
                }
            }
        }
    }
    for i in 0..n {
        if tree.split_feature[i] >= nf {
            return Err(format!(
                "node {i} splits on feature {} of {nf}",
                tree.split_feature[i]
            ));
        }
        if !matches!(tree.missing[i].as_str(), "nan" | "zero" | "none") {
            return Err(format!(
                "node {i}: missing mode '{}'; expected nan, zero or none",
                tree.missing[i]
            ));
        }
        if let Some(Some(cats)) = tree.categories.as_ref().map(|c| &c[i]) {
            if let Some(c) = cats.iter().find(|c| !(0..=MAX_CATEGORY).contains(*c)) {
                return Err(format!(
                    "node {i}: category {c} is outside 0..={MAX_CATEGORY}"
                ));
            }
            let max = cats.iter().copied().max().unwrap_or(0) as usize;
            budget.words += max / 64 + 1;
            if budget.words > MAX_CATEGORY_WORDS {
                return Err(format!(
                    "the categorical splits need more than {MAX_CATEGORY_WORDS} bitset words ({} MiB)",
                    (MAX_CATEGORY_WORDS * 8) >> 20
                ));
            }
        } else if !tree.threshold[i].is_finite() {
            return Err(format!(
                "node {i}: threshold {} is not finite",
                tree.threshold[i]
            ));
        }
    }
    if n == 0 {
        return Ok(0);
    }
    // Walk from the root: each internal node and leaf must be reached once.
    let mut node_seen = vec![false; n];
    let mut leaf_seen = vec![false; n_leaves];
    node_seen[0] = true;
    let mut stack = vec![(0usize, 0usize)];
    let mut deepest = 0;
    let (mut nodes, mut leaves) = (1, 0);
    while let Some((node, depth)) = stack.pop() {
        let d = depth + 1;
        if d > MAX_DEPTH {
            return Err(format!(
                "node {node} is at depth {depth}; trees deeper than {MAX_DEPTH} are refused"
            ));
        }
        for c in [tree.left[node], tree.right[node]] {
            if c >= 0 {
                let c = usize::try_from(c).ok().filter(|&c| c < n).ok_or_else(|| {
                    format!("node {node}: child {c} is not a node (there are {n})")
                })?;
                if std::mem::replace(&mut node_seen[c], true) {
                    return Err(format!(
                        "node {c} is reached twice (from node {node}); a tree has no cycles or shared children"
                    ));
                }
                nodes += 1;
                stack.push((c, d));
            } else {
                let leaf = usize::try_from(!c)
                    .ok()
                    .filter(|&l| l < n_leaves)
                    .ok_or_else(|| {
                        format!("node {node}: child {c} is not a leaf (there are {n_leaves})")
                    })?;
                if std::mem::replace(&mut leaf_seen[leaf], true) {
                    return Err(format!(
                        "leaf {leaf} is reached twice (from node {node}); a tree has no shared leaves"
                    ));
                }
                leaves += 1;
                deepest = deepest.max(d);
            }
        }
    }
    if nodes != n || leaves != n_leaves {
        let lost = node_seen
            .iter()
            .position(|s| !s)
            .map(|i| format!("node {i}"));
        let lost = lost.or_else(|| {
            leaf_seen
                .iter()
                .position(|s| !s)
                .map(|i| format!("leaf {i}"))
        });
        return Err(format!(
            "{} is not reachable from the root",
            lost.unwrap_or_default()
        ));
    }
    Ok(deepest)
}
