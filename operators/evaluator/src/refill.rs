//! The refill walk over compact trees: `LANES` lanes share the (tree, row)
//! tasks of a run of trees, tree by tree and row by row within a tree, and a
//! lane whose task reached a leaf takes the next task in the same step, so no
//! lane stands on a leaf while the others walk on (which the lockstep walk of
//! `compact.rs` does: a group of 8 rows walks until its deepest row is done).
//! Each task's leaf is kept per (tree, row) and the caller adds them up per
//! row in tree order, so the sums have the lockstep walk's bits.
//!
//! A node knows whether its children are leaves (`LEFT_LEAF`, `RIGHT_LEAF` in
//! `feature`), so a lane never loads a leaf node. Everything is branch-free:
//! a lane writes its next node to its task's entry in the task table at
//! every step (the last write is the leaf), and selects between its task and
//! the next one (a branch there would mispredict once per task).
//!
//! A refill step costs more than a lockstep step, so it pays only where the
//! lockstep walk wastes steps: trees whose leaves lie at very different
//! depths (LightGBM's leaf-wise trees), not balanced ones (XGBoost's
//! depth-wise trees). `choose` tells them apart by the trees' shapes
//! (figures: `docs/performance.md`).

use crate::compact::{CTree, Compact, Walk, FEATURE, LANES, SINK};
use crate::ir::TreeIr;

/// Tasks of one pass: the pass's task table and leaves stay in L1.
pub const MAX_TASKS: usize = 1024;

/// Refill when the trees' depths (the lockstep walk's steps, at most) are
/// this many times their mean leaf depths (about the refill walk's steps):
/// a refill step costs about 1.37 lockstep steps on R1 and its twin.
const LOPSIDED: f64 = 1.35;

/// The walk for these trees: `Refill` when they are lopsided enough.
pub fn choose(trees: &[TreeIr]) -> Walk {
    let (mut deepest, mut mean) = (0.0, 0.0);
    for tree in trees {
        let mut depths = Vec::new();
        let mut stack = vec![(0usize, 0u32)];
        while let Some((node, d)) = stack.pop() {
            // A tree with no nodes is one leaf; bad children are the
            // forest's to report, so they count as leaves here.
            if node >= tree.left.len().min(tree.right.len()) {
                continue;
            }
            for child in [tree.left[node], tree.right[node]] {
                match usize::try_from(child) {
                    Ok(c) if c > node => stack.push((c, d + 1)),
                    _ => depths.push(d + 1),
                }
            }
        }
        if !depths.is_empty() {
            deepest += f64::from(*depths.iter().max().expect("not empty"));
            mean += depths.iter().map(|&d| f64::from(d)).sum::<f64>() / depths.len() as f64;
        }
    }
    if deepest > LOPSIDED * mean {
        Walk::Refill
    } else {
        Walk::Lockstep
    }
}

impl Compact {
    /// Walk rows `0..rows` of `xs` (row-major, `nf` values each, no NaN)
    /// through each tree of `trees`; `ends[j * rows + r]` becomes the node
    /// row `r` ends on in `trees[j]` (a leaf: see `leaf_of`).
    /// `trees.len() * rows` must be at most `MAX_TASKS`.
    #[inline(never)]
    pub fn walk_refill(
        &self,
        trees: &[CTree],
        xs: &[f64],
        rows: usize,
        nf: usize,
        ends: &mut [u32],
    ) {
        let n = trees.len() * rows;
        assert!(n <= MAX_TASKS && ends.len() >= n && xs.len() >= rows * nf);
        // Task k is tree k / rows, row k % rows: its current node and its
        // row's offset. The LANES entries past the end send a lane to the
        // sink, a node that steps to itself and is never a leaf.
        let mut table = [(SINK, 0u32); MAX_TASKS + LANES];
        for (j, tree) in trees.iter().enumerate() {
            for r in 0..rows {
                table[j * rows + r] = (tree.root, (r * nf) as u32);
            }
        }
        // A lane holds only its task (eight lanes' nodes, offsets and tasks
        // would not fit in registers). Lanes start on tasks 0..LANES; each
        // task done takes the next, so all are done once n more were taken.
        let mut task: [usize; LANES] = std::array::from_fn(|i| i.min(n));
        let mut k = LANES.min(n);
        while k < n + LANES.min(n) {
            for t in task.iter_mut() {
                // SAFETY: children, features and row offsets were range-checked
                // when the forest was built and above; the sink reads row 0;
                // task indices stay below n + LANES (a lane takes at most one
                // sink entry and never leaves it).
                let (c, off) = unsafe { *table.get_unchecked(*t) };
                let node = unsafe { self.nodes.get_unchecked(c as usize) };
                let v =
                    unsafe { *xs.get_unchecked(off as usize + (node.feature & FEATURE) as usize) };
                let right = u32::from(v > node.threshold);
                unsafe { table.get_unchecked_mut(*t).0 = node.left + right };
                let leaf = (node.feature >> 30 >> right) & 1 != 0;
                // A cmov with rustc 1.95 (checked in the disassembly; a
                // branch here would cost the gain, and so did a mask).
                *t = if leaf { k } else { *t };
                k += usize::from(leaf);
            }
        }
        for (end, (c, _)) in ends[..n].iter_mut().zip(&table) {
            *end = *c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tree of `left`/`right` lists (a child `< 0` is a leaf).
    fn tree(left: Vec<i64>, right: Vec<i64>) -> TreeIr {
        let n = left.len();
        serde_json::from_value(serde_json::json!({
            "output": 0, "split_feature": vec![0; n], "threshold": vec![0.0; n],
            "left": left, "right": right, "default_left": vec![false; n],
            "missing": vec!["nan"; n], "leaf_value": vec![0.0; n + 1],
        }))
        .expect("a tree")
    }

    #[test]
    fn lopsided_trees_refill_and_balanced_ones_do_not() {
        // A chain of 10 nodes: leaves at depths 1..=10 and 10 (mean 5.9).
        let chain = tree(
            (1..=10).map(|c| if c < 10 { c } else { -10 }).collect(),
            (0..10).map(|l| !l).collect(),
        );
        // Depth 2, all leaves at depth 2.
        let balanced = tree(vec![1, !0, !2], vec![2, !1, !3]);
        assert_eq!(choose(&[chain, tree(vec![], vec![])]), Walk::Refill);
        assert_eq!(choose(&[balanced]), Walk::Lockstep);
        assert_eq!(choose(&[]), Walk::Lockstep);
    }
}
