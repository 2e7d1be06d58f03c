//! The fast path for numeric trees: 16-byte nodes whose two children sit
//! side by side, so one step is `next = left + (v > threshold)`, with no
//! flags to test. It serves every tree whose nodes are all numeric with
//! missing "nan" or "none", on blocks of rows that hold no NaN (a NaN block
//! takes the general walk in `forest.rs`); both give the same leaves, hence
//! the same bits.
//!
//! Rows walk a tree in lockstep groups of `LANES`: their chains of loads
//! are independent, so they overlap. Measured slower on the target machine
//! (AMD EPYC, Zen 3, where an 8-lane `vpgatherdd` costs ~28 cycles) and not
//! kept, each against the refill walk in one process (`bench_walks`):
//! - an AVX2 walk, four rows per vector with gathers for thresholds,
//!   features and values;
//! - an AVX2 walk of eight rows per vector over u8 bins with 4-byte nodes
//!   (two gathers a step): 0.51-0.68x;
//! - a QuickScorer-style table walk over u8 bins (per tree and feature, a
//!   bin -> leaf-mask table; the masks ANDed, the lowest bit the leaf):
//!   bit-exact, 0.62x (binning alone 1.8 us a row, then 4,559 lookups a row
//!   on R1); kept on the local branch `table-walk`. (The bit-vector walk of
//!   `bits.rs`, which compares the doubles themselves, 32 rows per node, and
//!   needs no tables, is what the forest now takes where it can.)
//! - the lockstep walk over 64-row blocks in column order (one base register
//!   for all lanes): 0.89-0.96x with 8, 16 or 32 lanes.

/// Rows (or, for one row, trees) walked together.
pub const LANES: usize = 8;

/// In a node's `feature`: its left child is a leaf (set for the refill walk only).
pub const LEFT_LEAF: u32 = 1 << 30;
/// In a node's `feature`: its right child is a leaf (set for the refill walk only).
pub const RIGHT_LEAF: u32 = 1 << 31;
/// The feature itself, without the leaf bits.
pub const FEATURE: u32 = LEFT_LEAF - 1;
/// Node 0 steps to itself and has no leaf children: where a refill lane
/// with no task left waits.
pub const SINK: u32 = 0;

/// How blocks of rows go through the compact trees.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Walk {
    /// Tree by tree, groups of `LANES` rows in lockstep until the group's
    /// deepest row reached its leaf.
    #[default]
    Lockstep,
    /// `LANES` lanes over the (tree, row) tasks of a run of trees; a lane
    /// whose task reached a leaf takes the next task (`refill.rs`).
    Refill,
    /// Blocks of rows scan every node once, feature by feature, clearing
    /// leaves from per-row bit vectors (`bits.rs`); the compact trees are
    /// laid out as for `Lockstep`, which serves batches under a block.
    Bits,
}

/// One node. A leaf's left child is itself and its threshold +inf (no value
/// is greater), so a walk may take more steps than it needs.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
pub struct CNode {
    /// Go to the right child iff `v > threshold` (an "lt" threshold `t` is
    /// stored as the largest double below `t`: the same test for non-NaN `v`).
    pub threshold: f64,
    pub feature: u32,
    /// The left child's index; the right child is `left + 1`.
    pub left: u32,
}

/// A tree in compact form: where it starts and how many steps reach its
/// deepest leaf.
#[derive(Debug, Clone, Copy)]
pub struct CTree {
    pub root: u32,
    pub depth: u32,
}

#[derive(Debug, Default)]
pub struct Compact {
    pub nodes: Vec<CNode>,
    /// Per tree of the forest: `Some` when it is in compact form.
    pub trees: Vec<Option<CTree>>,
    /// Per node: the leaf (global index) a leaf node stands for.
    pub leaf_of: Vec<u32>,
    /// False: every tree stays on the general walk.
    enabled: bool,
    pub walk: Walk,
}

/// A numeric tree as the forest holds it, for `Compact::push`: per
/// internal node, the threshold, feature and children, where a child
/// `>= internal` (the node count) is the leaf `child - internal`.
#[derive(Clone, Copy)]
pub struct Plain<'a> {
    pub threshold: &'a [f64],
    pub feature: &'a [u32],
    pub left: &'a [u32],
    pub right: &'a [u32],
    /// The leaf (global index) of local leaf 0.
    pub leaf_base: u32,
    pub lt: bool,
}

impl Compact {
    /// `enabled: false` keeps every tree on the general walk (to compare).
    pub fn with_walk(enabled: bool, walk: Walk) -> Self {
        Self {
            nodes: vec![Self::leaf_node(SINK)],
            leaf_of: vec![0],
            enabled,
            walk,
            ..Self::default()
        }
    }

    /// The walk `auto`, unless the environment says otherwise (to compare
    /// walks in one process, as `examples/bench_walks.rs` does):
    /// `STREAMML_EVALUATOR_COMPACT=0` is the general walk only,
    /// `STREAMML_EVALUATOR_WALK=lockstep|refill|bits` a compact walk.
    pub fn from_env(auto: Walk) -> Self {
        let enabled = std::env::var_os("STREAMML_EVALUATOR_COMPACT").is_none_or(|v| v != "0");
        let walk = match std::env::var("STREAMML_EVALUATOR_WALK").as_deref() {
            Ok("refill") => Walk::Refill,
            Ok("lockstep") => Walk::Lockstep,
            Ok("bits") => Walk::Bits,
            _ => auto,
        };
        Self::with_walk(enabled, walk)
    }

    /// Add the forest's next tree: in compact form if it is numeric (`Some`)
    /// and has no NaN threshold, else as `None`.
    pub fn push(&mut self, tree: Option<Plain<'_>>, depth: u32) {
        let entry = tree
            .filter(|_| self.enabled)
            .and_then(|t| self.add(&t).map(|root| CTree { root, depth }))
            // A one-leaf tree of the refill layout has a root that steps to
            // its leaf, so it takes a step in the lockstep walks too.
            .map(|t| CTree { depth: t.depth.max(u32::from(self.walk == Walk::Refill)), ..t });
        self.trees.push(entry);
    }

    fn add(&mut self, t: &Plain<'_>) -> Option<u32> {
        let internal = t.threshold.len();
        if t.threshold.iter().any(|th| th.is_nan()) {
            return None;
        }
        // Breadth first, children side by side; `order` holds local ids
        // (`>= internal` for leaves).
        let base = self.nodes.len() as u32;
        if internal == 0 && self.walk == Walk::Refill {
            // The refill walk never stands on a leaf: a root that always goes
            // left (no value is greater than +inf) to the tree's one leaf.
            self.nodes.push(CNode {
                threshold: f64::INFINITY,
                feature: LEFT_LEAF | RIGHT_LEAF,
                left: base + 1,
            });
            self.leaf_of.extend([0, t.leaf_base, t.leaf_base]);
            self.nodes
                .extend([Self::leaf_node(base + 1), Self::leaf_node(base + 2)]);
            return Some(base);
        }
        let mut order = vec![if internal == 0 { internal as u32 } else { 0 }];
        let mut at = 0;
        while at < order.len() {
            let id = order[at] as usize;
            if id < internal {
                order.push(t.left[id]);
                order.push(t.right[id]);
            }
            at += 1;
        }
        let mut children = vec![0u32; order.len()];
        let mut next = 1u32;
        for (pos, &id) in order.iter().enumerate() {
            if (id as usize) < internal {
                children[pos] = next;
                next += 2;
            }
        }
        for (pos, &id) in order.iter().enumerate() {
            let me = base + pos as u32;
            let id = id as usize;
            let node = if id < internal {
                let th = t.threshold[id];
                let mut feature = t.feature[id];
                if self.walk == Walk::Refill {
                    let leaf = |c: u32| c as usize >= internal;
                    feature |= if leaf(t.left[id]) { LEFT_LEAF } else { 0 };
                    feature |= if leaf(t.right[id]) { RIGHT_LEAF } else { 0 };
                }
                CNode {
                    threshold: if t.lt { next_below(th) } else { th },
                    feature,
                    left: base + children[pos],
                }
            } else {
                Self::leaf_node(me)
            };
            self.nodes.push(node);
            let leaf = if id < internal {
                0
            } else {
                t.leaf_base + (id - internal) as u32
            };
            self.leaf_of.push(leaf);
        }
        Some(base)
    }

    /// A leaf at `me`: it steps to itself.
    fn leaf_node(me: u32) -> CNode {
        CNode {
            threshold: f64::INFINITY,
            feature: 0,
            left: me,
        }
    }

    /// Walk `LANES` rows of `rows` (row-major, `nf` values each, no NaN)
    /// through tree `tree`; their leaves (global indices) in order.
    #[inline(always)]
    pub fn walk_rows(&self, tree: CTree, rows: &[f64], nf: usize) -> [usize; LANES] {
        debug_assert!(rows.len() >= LANES * nf);
        let offsets = std::array::from_fn(|i| i * nf);
        let ends = walk(&self.nodes, [tree.root; LANES], offsets, rows, tree.depth);
        // SAFETY: every walk ends on a node of the tree, which leaf_of covers.
        ends.map(|c| unsafe { *self.leaf_of.get_unchecked(c as usize) } as usize)
    }

    /// Walk one row (no NaN) through up to `LANES` trees at once; unused
    /// lanes repeat the last tree.
    #[inline(always)]
    pub fn walk_trees(&self, trees: &[CTree], row: &[f64]) -> [usize; LANES] {
        let mut starts = [0u32; LANES];
        let mut depth = 0;
        for (k, start) in starts.iter_mut().enumerate() {
            let t = trees[k.min(trees.len() - 1)];
            *start = t.root;
            depth = depth.max(t.depth);
        }
        let ends = walk(&self.nodes, starts, [0; LANES], row, depth);
        // SAFETY: as in walk_rows.
        ends.map(|c| unsafe { *self.leaf_of.get_unchecked(c as usize) } as usize)
    }
}

/// The walk: lane `i` starts at node `starts[i]` and reads its
/// values at `xs[offsets[i]..]`; at most `depth` steps, fewer when every
/// lane stood still.
#[inline(always)]
fn walk(
    nodes: &[CNode],
    starts: [u32; LANES],
    offsets: [usize; LANES],
    xs: &[f64],
    depth: u32,
) -> [u32; LANES] {
    let mut c = starts;
    for _ in 0..depth {
        let mut moved = false;
        for i in 0..LANES {
            // SAFETY: children and features were range-checked when the
            // forest was built; offsets leave room for a row.
            let n = unsafe { nodes.get_unchecked(c[i] as usize) };
            // The refill layout's leaf bits are masked off: small batches
            // of a refill forest walk by lockstep (`Forest::each_leaf`).
            let v = unsafe { *xs.get_unchecked(offsets[i] + (n.feature & FEATURE) as usize) };
            let next = n.left + u32::from(v > n.threshold);
            moved |= next != c[i];
            c[i] = next;
        }
        if !moved {
            break;
        }
    }
    c
}

/// The largest double below `x` (finite `x`).
pub fn next_below(x: f64) -> f64 {
    if x == 0.0 {
        -f64::from_bits(1)
    } else if x > 0.0 {
        f64::from_bits(x.to_bits() - 1)
    } else {
        f64::from_bits(x.to_bits() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::next_below;

    #[test]
    fn next_below_is_the_neighbour() {
        assert_eq!(next_below(1.0), 1.0 - f64::EPSILON / 2.0);
        assert_eq!(next_below(-1.0), -1.0 - f64::EPSILON);
        assert_eq!(next_below(0.0), -5e-324);
        assert_eq!(next_below(-0.0), -5e-324);
        assert_eq!(next_below(f64::MIN), f64::NEG_INFINITY);
    }
}
