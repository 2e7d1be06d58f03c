//! Tree ensembles: the IR's trees compiled into one flat node array, and
//! evaluated a block of rows at a time, tree by tree, so each tree's nodes
//! stay in cache while the block's rows (row-major scratch) walk it. On a
//! block without NaN, numeric trees take the compact walk (`compact.rs`).

use crate::bits::{Bits, Kernel, ROWS as BITS_ROWS};
use crate::compact::{CTree, Compact, Plain, Walk, LANES};
use crate::ir::TreesIr;
use crate::refill::{self, MAX_TASKS};

const DEFAULT_LEFT: u32 = 1;
const MISSING_ZERO: u32 = 2;
const MISSING_NONE: u32 = 4;
const CATEGORICAL: u32 = 8;
/// Numeric nodes (missing "nan" or "none"): where a NaN goes, precomputed.
const NAN_LEFT: u32 = 16;
/// Anything but a numeric split whose only missing value is NaN.
const SLOW: u32 = MISSING_ZERO | CATEGORICAL;
/// Rows walked through a tree together: their node chains are independent,
/// so the loads and compares of one overlap the others' latency.
const GROUP: usize = LANES;
/// LightGBM's `kZeroThreshold`: the float `1e-35f` widened to double.
const ZERO_THRESHOLD: f64 = 1e-35f32 as f64;

/// One node; children are node indices (global). While a tree is read,
/// a child `< 0` is the leaf `!child`; then every leaf becomes a node of its
/// own that steps to itself (see `add_tree`). Categorical nodes keep their
/// bitset's offset and length (in u64 words) in `threshold`'s bits.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Node {
    threshold: f64,
    feature: u32,
    flags: u32,
    left: i32,
    right: i32,
}

/// How a tree's leaves add up.
#[derive(Debug, Clone, Copy)]
enum Output {
    /// Each leaf adds one value to raw score `k`.
    Scalar(usize),
    /// Each leaf adds a vector of `n_outputs` values (its offset is `leaf * n_outputs`).
    Vector,
}

#[derive(Debug)]
pub struct Forest {
    nodes: Vec<Node>,
    /// Per tree: its root node, and how many steps reach every leaf (its depth).
    roots: Vec<(u32, u32, u32)>,
    /// Per node: the leaf (global index) a leaf node stands for.
    leaf_of: Vec<u32>,
    outputs: Vec<Output>,
    leaves: Vec<f64>,
    vector_leaves: Vec<f64>,
    categories: Vec<u64>,
    pub n_outputs: usize,
    n_features: usize,
    lt: bool,
    /// Categorical nodes match the value itself, not its truncation.
    exact_categories: bool,
    /// Categorical nodes read `trunc(v)` as LightGBM's `int` cast: -1 < v < 0 is 0.
    int_cast_categories: bool,
    pub cast_f32: bool,
    acc_f32: bool,
    base_score: Vec<f64>,
    /// `Some(tree count per output)` for `aggregate: mean`.
    mean_counts: Option<Vec<f64>>,
    pub sigmoid_scale: f64,
    /// The numeric trees again, for blocks without NaN (`compact.rs`).
    compact: Box<Compact>,
    /// The numeric trees of at most 64 leaves for the bit-vector walk
    /// (`bits.rs`), when that is the walk.
    bits: Option<Box<Bits>>,
}

impl Forest {
    /// Build from trees that `streamml_ir::validate` accepted; `depths` are
    /// the depths it found, one per tree.
    pub fn build(ir: &TreesIr, n_features: usize, depths: &[usize]) -> Result<Self, String> {
        Self::build_with(ir, n_features, depths, Compact::from_env(choose_walk(&ir.trees)))
    }

    fn build_with(ir: &TreesIr, n_features: usize, depths: &[usize], compact: Compact) -> Result<Self, String> {
        if depths.len() != ir.trees.len() {
            return Err(format!("{} depths for {} trees", depths.len(), ir.trees.len()));
        }
        let n_outputs = ir.n_outputs;
        if n_outputs == 0 || ir.base_score.len() != n_outputs {
            return Err(format!(
                "trees: base_score has {} values for {n_outputs} outputs",
                ir.base_score.len()
            ));
        }
        let check = |name: &str, value: &str, allowed: &[&str]| {
            if allowed.contains(&value) {
                Ok(())
            } else {
                Err(format!(
                    "trees: {name} is '{value}'; expected one of {allowed:?}"
                ))
            }
        };
        check("aggregate", &ir.aggregate, &["sum", "mean"])?;
        check("feature_cast", &ir.feature_cast, &["float64", "float32"])?;
        check("comparison", &ir.comparison, &["le", "lt"])?;
        check("accumulate", &ir.accumulate, &["float64", "float32"])?;
        check(
            "category_match",
            &ir.category_match,
            &["trunc", "exact", "int_cast"],
        )?;
        let mut f = Forest {
            nodes: Vec::new(),
            roots: Vec::new(),
            leaf_of: Vec::new(),
            outputs: Vec::new(),
            leaves: Vec::new(),
            vector_leaves: Vec::new(),
            categories: Vec::new(),
            n_outputs,
            n_features,
            lt: ir.comparison == "lt",
            exact_categories: ir.category_match == "exact",
            int_cast_categories: ir.category_match == "int_cast",
            cast_f32: ir.feature_cast == "float32",
            acc_f32: ir.accumulate == "float32",
            base_score: ir.base_score.clone(),
            mean_counts: None,
            sigmoid_scale: ir.sigmoid_scale,
            bits: (compact.walk == Walk::Bits).then(|| Box::new(Bits::new(n_features))),
            compact: Box::new(compact),
        };
        let mut counts = vec![0.0; n_outputs];
        for (t, tree) in ir.trees.iter().enumerate() {
            f.add_tree(tree, depths[t], &mut counts)
                .map_err(|e| format!("tree {t}: {e}"))?;
        }
        if ir.aggregate == "mean" {
            f.mean_counts = Some(counts.iter().map(|c| c.max(1.0)).collect());
        }
        f.add_sums();
        Ok(f)
    }

    /// Let the bit-vector walk add up the whole forest when it took every
    /// tree and each adds to one output.
    fn add_sums(&mut self) {
        let Some(bits) = self.bits.as_deref_mut() else { return };
        let outputs: Option<Vec<usize>> = self
            .outputs
            .iter()
            .map(|o| match o {
                Output::Scalar(k) => Some(*k),
                Output::Vector => None,
            })
            .collect();
        if let (true, Some(outputs)) = (bits.slots() == self.roots.len(), outputs) {
            bits.add_sums(&outputs, self.n_outputs, &self.leaves);
        }
    }

    fn add_tree(&mut self, tree: &crate::ir::TreeIr, d: usize, counts: &mut [f64]) -> Result<(), String> {
        let n = tree.split_feature.len();
        for (name, len) in [
            ("threshold", tree.threshold.len()),
            ("left", tree.left.len()),
            ("right", tree.right.len()),
            ("default_left", tree.default_left.len()),
            ("missing", tree.missing.len()),
        ] {
            if len != n {
                return Err(format!("{name} has {len} entries for {n} nodes"));
            }
        }
        let n_leaves = tree.leaf_value.len();
        if n_leaves == 0 {
            return Err("no leaves".into());
        }
        let output = match tree.output {
            Some(k) if k < self.n_outputs => Output::Scalar(k),
            Some(k) => {
                return Err(format!(
                    "output {k} is out of range for {} outputs",
                    self.n_outputs
                ))
            }
            None => Output::Vector,
        };
        match output {
            Output::Scalar(k) => counts[k] += 1.0,
            Output::Vector => counts.iter_mut().for_each(|c| *c += 1.0),
        }
        let node_base = self.nodes.len() as i64;
        let leaf_base = match output {
            Output::Scalar(_) => self.leaves.len(),
            Output::Vector => self.vector_leaves.len() / self.n_outputs,
        } as i64;
        for value in &tree.leaf_value {
            match output {
                Output::Scalar(_) => self
                    .leaves
                    .push(value.as_f64().ok_or("a leaf value is not a number")?),
                Output::Vector => {
                    let v = value.as_array().ok_or("vector leaves must be lists")?;
                    if v.len() != self.n_outputs {
                        return Err(format!(
                            "a vector leaf has {} values for {} outputs",
                            v.len(),
                            self.n_outputs
                        ));
                    }
                    for x in v {
                        self.vector_leaves
                            .push(x.as_f64().ok_or("a leaf value is not a number")?);
                    }
                }
            }
        }
        let child = |c: i64| -> Result<i32, String> {
            if c >= 0 {
                if c as usize >= n {
                    return Err(format!("child {c} is not a node (there are {n})"));
                }
                Ok((node_base + c) as i32)
            } else {
                let leaf = !c;
                if leaf as usize >= n_leaves {
                    return Err(format!("child {c} is not a leaf (there are {n_leaves})"));
                }
                Ok(!((leaf_base + leaf) as i32))
            }
        };
        for i in 0..n {
            if tree.split_feature[i] >= self.n_features {
                return Err(format!(
                    "node {i} splits on feature {} of {}",
                    tree.split_feature[i], self.n_features
                ));
            }
            let mut flags = if tree.default_left[i] {
                DEFAULT_LEFT
            } else {
                0
            };
            flags |= match tree.missing[i].as_str() {
                "nan" => 0,
                "zero" => MISSING_ZERO,
                "none" => MISSING_NONE,
                other => {
                    return Err(format!(
                        "node {i}: missing mode '{other}'; expected nan, zero or none"
                    ))
                }
            };
            let mut threshold = tree.threshold[i];
            // Where a NaN ends up at a numeric node: the default direction
            // ("nan"), or wherever 0.0 goes ("none").
            let nan_left = match tree.missing[i].as_str() {
                "none" => {
                    if self.lt {
                        0.0 < threshold
                    } else {
                        0.0 <= threshold
                    }
                }
                _ => tree.default_left[i],
            };
            if nan_left {
                flags |= NAN_LEFT;
            }
            if let Some(Some(cats)) = tree
                .categories
                .as_ref()
                .map(|c| c.get(i).cloned().flatten())
            {
                flags |= CATEGORICAL;
                let max = cats.iter().copied().max().unwrap_or(0).max(0) as usize;
                let words = max / 64 + 1;
                let offset = self.categories.len();
                self.categories.resize(offset + words, 0);
                for c in cats.iter().filter(|c| **c >= 0) {
                    self.categories[offset + *c as usize / 64] |= 1u64 << (*c as usize % 64);
                }
                threshold = f64::from_bits(((offset as u64) << 32) | words as u64);
            }
            self.nodes.push(Node {
                threshold,
                feature: tree.split_feature[i] as u32,
                flags,
                left: child(tree.left[i])?,
                right: child(tree.right[i])?,
            });
        }
        // Leaves become nodes that step to themselves whatever the value (a
        // +inf threshold: left is itself, and NaN goes right, to itself), so a
        // walk is a fixed number of steps with no test for "done".
        let leaf_nodes = self.nodes.len() as i64;
        for node in &mut self.nodes[node_base as usize..] {
            for child in [&mut node.left, &mut node.right] {
                if *child < 0 {
                    *child = (leaf_nodes + (!*child as i64 - leaf_base)) as i32;
                }
            }
        }
        for leaf in 0..n_leaves {
            let me = (leaf_nodes + leaf as i64) as i32;
            self.nodes.push(Node {
                threshold: f64::INFINITY,
                feature: 0,
                flags: 0,
                left: me,
                right: me,
            });
        }
        self.leaf_of.resize(self.nodes.len(), 0);
        for leaf in 0..n_leaves {
            self.leaf_of[leaf_nodes as usize + leaf] = (leaf_base + leaf as i64) as u32;
        }
        let root = if n == 0 {
            leaf_nodes as u32
        } else {
            node_base as u32
        };
        self.push_compact(node_base as usize, leaf_nodes as usize, n_leaves, d as u32);
        self.roots.push((root, d as u32, leaf_nodes as u32));
        self.outputs.push(output);
        Ok(())
    }

    /// Add the tree whose internal nodes are `base..leaf_nodes` (its
    /// `n_leaves` leaf nodes follow) to the compact form, if it is numeric.
    fn push_compact(&mut self, base: usize, leaf_nodes: usize, n_leaves: usize, depth: u32) {
        let internal = &self.nodes[base..leaf_nodes];
        let plain = internal.iter().all(|n| n.flags & SLOW == 0);
        let local = |c: i32| (c as usize - base) as u32;
        let threshold: Vec<f64> = internal.iter().map(|n| n.threshold).collect();
        let feature: Vec<u32> = internal.iter().map(|n| n.feature).collect();
        let left: Vec<u32> = internal.iter().map(|n| local(n.left)).collect();
        let right: Vec<u32> = internal.iter().map(|n| local(n.right)).collect();
        let leaf_base = if n_leaves > 0 {
            self.leaf_of[leaf_nodes]
        } else {
            0
        };
        let tree = plain.then_some(Plain {
            threshold: &threshold,
            feature: &feature,
            left: &left,
            right: &right,
            leaf_base,
            lt: self.lt,
        });
        self.compact.push(tree, depth);
        // The bit-vector walk takes the trees in compact form.
        let index = self.compact.trees.len() - 1;
        if let (Some(bits), Some(tree), Some(_)) = (self.bits.as_deref_mut(), tree, self.compact.trees[index]) {
            bits.push(index as u32, &tree);
        }
    }

    /// Raw scores for `rows` rows of row-major features `xs` (already
    /// preprocessed and cast), into `raw` (`rows * n_outputs`).
    pub fn raw_scores(&self, xs: &[f64], rows: usize, raw: &mut [f64]) {
        let no = self.n_outputs;
        if self.acc_f32 {
            let mut sums = vec![0f32; rows * no];
            self.leaf_sums(xs, rows, &mut sums);
            for (out, s) in raw.iter_mut().zip(&sums) {
                *out = f64::from(*s);
            }
        } else {
            raw[..rows * no].fill(0.0);
            self.leaf_sums(xs, rows, &mut raw[..rows * no]);
        }
        for r in 0..rows {
            for k in 0..no {
                let s = raw[r * no + k];
                let s = match &self.mean_counts {
                    Some(c) => s / c[k],
                    None => s,
                };
                raw[r * no + k] = self.base_score[k] + s;
            }
        }
    }

    /// Add every tree's leaf values of each row into `sums` (rows × outputs,
    /// zeroed by the caller), in the accumulator's precision.
    fn leaf_sums<A: Accumulator>(&self, xs: &[f64], rows: usize, sums: &mut [A]) {
        let nf = self.n_features;
        let no = self.n_outputs;
        let add = |sums: &mut [A], r: usize, tree: usize, leaf: usize| match self.outputs[tree] {
            Output::Scalar(k) => sums[r * no + k] += A::from_f64(self.leaves[leaf]),
            Output::Vector => {
                for k in 0..no {
                    sums[r * no + k] += A::from_f64(self.vector_leaves[leaf * no + k]);
                }
            }
        };
        // Blocks without NaN of a forest the bit-vector walk adds up whole.
        let mut r0 = 0;
        if let Some(bits) = self.bits.as_deref().filter(|b| b.sums_all()) {
            let mut acc = vec![A::default(); no * BITS_ROWS];
            while r0 + BITS_ROWS <= rows {
                let block = &xs[r0 * nf..(r0 + BITS_ROWS) * nf];
                let out = &mut sums[r0 * no..(r0 + BITS_ROWS) * no];
                if block.iter().any(|v| v.is_nan()) {
                    self.each_leaf(block, BITS_ROWS, nf, |r, tree, leaf| add(out, r, tree, leaf));
                } else {
                    acc.fill(A::default());
                    A::block_sums(bits, block, &mut acc);
                    for (r, row) in out.chunks_exact_mut(no).enumerate() {
                        for (k, o) in row.iter_mut().enumerate() {
                            *o = acc[k * BITS_ROWS + r];
                        }
                    }
                }
                r0 += BITS_ROWS;
            }
        }
        let out = &mut sums[r0 * no..rows * no];
        self.each_leaf(&xs[r0 * nf..rows * nf], rows - r0, nf, |r, tree, leaf| add(out, r, tree, leaf));
    }

    /// Call `add(row, tree, leaf)` for every row and tree, trees in order.
    #[inline(always)]
    fn each_leaf(
        &self,
        xs: &[f64],
        rows: usize,
        nf: usize,
        add: impl FnMut(usize, usize, usize),
    ) {
        let no_nan = !xs[..rows * nf].iter().any(|v| v.is_nan());
        // Fewer rows than a group walk GROUP trees at a time by lockstep
        // (below): 1.14x the refill walk for one row on R1 (bench_walks).
        if no_nan && self.compact.walk == Walk::Refill && rows >= GROUP {
            return self.each_leaf_refill(xs, rows, nf, add);
        }
        if let (true, Some(bits)) = (no_nan && rows >= BITS_ROWS, &self.bits) {
            return self.each_leaf_bits(bits, xs, rows, nf, add);
        }
        self.each_leaf_lockstep(xs, rows, nf, no_nan, add);
    }

    /// `each_leaf` for rows without NaN by the bit-vector walk (`bits.rs`)
    /// in blocks of `BITS_ROWS` rows, its other trees by the general walk;
    /// the last rows by lockstep.
    fn each_leaf_bits(
        &self,
        bits: &Bits,
        xs: &[f64],
        rows: usize,
        nf: usize,
        mut add: impl FnMut(usize, usize, usize),
    ) {
        let n_trees = self.roots.len();
        let whole = rows - rows % BITS_ROWS;
        let mut ends = vec![0u32; n_trees * BITS_ROWS];
        let mut others = vec![true; n_trees];
        bits.trees.iter().for_each(|&t| others[t as usize] = false);
        for r0 in (0..whole).step_by(BITS_ROWS) {
            let block = &xs[r0 * nf..(r0 + BITS_ROWS) * nf];
            bits.leaves(block, &mut ends);
            for t in (0..n_trees).filter(|&t| others[t]) {
                self.general_tree(t, block, BITS_ROWS, nf, |r, leaf| {
                    ends[t * BITS_ROWS + r] = leaf as u32;
                });
            }
            for (t, leaves) in ends.chunks_exact(BITS_ROWS).enumerate() {
                for (r, &leaf) in leaves.iter().enumerate() {
                    add(r0 + r, t, leaf as usize);
                }
            }
        }
        if whole < rows {
            let rest = &xs[whole * nf..rows * nf];
            self.each_leaf_lockstep(rest, rows - whole, nf, true, |r, t, leaf| add(whole + r, t, leaf));
        }
    }

    /// `each_leaf` by the lockstep walks: tree by tree over groups of rows,
    /// compact trees by the compact walk unless the rows hold NaN.
    fn each_leaf_lockstep(
        &self,
        xs: &[f64],
        rows: usize,
        nf: usize,
        no_nan: bool,
        mut add: impl FnMut(usize, usize, usize),
    ) {
        let whole = rows - rows % GROUP;
        for (t, &(root, depth, first_leaf)) in self.roots.iter().enumerate() {
            let compact = self.compact.trees[t].filter(|_| no_nan);
            let mut r = 0;
            while r < whole {
                let block = &xs[r * nf..(r + GROUP) * nf];
                let leaves = match compact {
                    Some(tree) => self.compact.walk_rows(tree, block, nf),
                    None if self.lt => self.walk_group::<true>(root, depth, first_leaf, block, nf),
                    None => self.walk_group::<false>(root, depth, first_leaf, block, nf),
                };
                for (i, leaf) in leaves.iter().enumerate() {
                    add(r + i, t, *leaf);
                }
                r += GROUP;
            }
        }
        // The last rows (all of them for a batch smaller than a group) walk
        // GROUP trees at a time instead: a single row's walks through
        // different trees are independent chains too.
        let mut compact = Vec::with_capacity(GROUP);
        for r in whole..rows {
            let row = &xs[r * nf..(r + 1) * nf];
            let mut t = 0;
            while t < self.roots.len() {
                let end = (t + GROUP).min(self.roots.len());
                let trees = &self.roots[t..end];
                compact.clear();
                if no_nan {
                    compact.extend(self.compact.trees[t..end].iter().map_while(|c| *c));
                }
                let leaves = if compact.len() == trees.len() {
                    self.compact.walk_trees(&compact, row)
                } else if self.lt {
                    self.walk_trees::<true>(trees, row)
                } else {
                    self.walk_trees::<false>(trees, row)
                };
                for (k, leaf) in leaves.iter().take(trees.len()).enumerate() {
                    add(r, t + k, *leaf);
                }
                t += trees.len();
            }
        }
    }

    /// `each_leaf` for rows without NaN by the refill walk (`refill.rs`):
    /// runs of compact trees at most `MAX_TASKS` tasks at a time, the other
    /// trees by the general walk.
    fn each_leaf_refill(
        &self,
        xs: &[f64],
        rows: usize,
        nf: usize,
        mut add: impl FnMut(usize, usize, usize),
    ) {
        const ROWS: usize = 64;
        let mut ends = [0u32; MAX_TASKS];
        let mut run: Vec<CTree> = Vec::with_capacity(MAX_TASKS);
        for r0 in (0..rows).step_by(ROWS) {
            let len = ROWS.min(rows - r0);
            let block = &xs[r0 * nf..(r0 + len) * nf];
            let mut t = 0;
            while t < self.roots.len() {
                if self.compact.trees[t].is_none() {
                    self.general_tree(t, block, len, nf, |r, leaf| add(r0 + r, t, leaf));
                    t += 1;
                    continue;
                }
                run.clear();
                run.extend(
                    self.compact.trees[t..]
                        .iter()
                        .take(MAX_TASKS / len)
                        .map_while(|c| *c),
                );
                self.compact.walk_refill(&run, block, len, nf, &mut ends);
                for j in 0..run.len() {
                    for (r, &end) in ends[j * len..(j + 1) * len].iter().enumerate() {
                        add(r0 + r, t + j, self.compact.leaf_of[end as usize] as usize);
                    }
                }
                t += run.len();
            }
        }
    }

    /// Rows `0..rows` of `xs` through tree `t` by the general walk.
    fn general_tree(
        &self,
        t: usize,
        xs: &[f64],
        rows: usize,
        nf: usize,
        mut add: impl FnMut(usize, usize),
    ) {
        let (root, depth, first_leaf) = self.roots[t];
        let whole = rows - rows % GROUP;
        for r in (0..whole).step_by(GROUP) {
            let block = &xs[r * nf..(r + GROUP) * nf];
            let leaves = if self.lt {
                self.walk_group::<true>(root, depth, first_leaf, block, nf)
            } else {
                self.walk_group::<false>(root, depth, first_leaf, block, nf)
            };
            leaves
                .iter()
                .enumerate()
                .for_each(|(i, leaf)| add(r + i, *leaf));
        }
        for r in whole..rows {
            let row = &xs[r * nf..(r + 1) * nf];
            let trees = &self.roots[t..t + 1];
            let leaf = if self.lt {
                self.walk_trees::<true>(trees, row)[0]
            } else {
                self.walk_trees::<false>(trees, row)[0]
            };
            add(r, leaf);
        }
    }

    /// Walk one row through up to `GROUP` trees in lockstep until each
    /// reached a leaf node (unused slots stay on the first tree's leaf).
    #[inline(always)]
    fn walk_trees<const LT: bool>(&self, trees: &[(u32, u32, u32)], row: &[f64]) -> [usize; GROUP] {
        let mut c = [0i32; GROUP];
        let mut first_leaf = [0u32; GROUP];
        let mut steps = 0;
        for k in 0..GROUP {
            let (root, depth, first) = trees[k.min(trees.len() - 1)];
            c[k] = root as i32;
            first_leaf[k] = first;
            steps = steps.max(depth);
        }
        for _ in 0..steps {
            let mut done = true;
            for k in 0..GROUP {
                c[k] = self.step::<LT>(c[k], row);
                done &= c[k] as u32 >= first_leaf[k];
            }
            if done {
                break;
            }
        }
        // SAFETY: every walk ends on a leaf node, which leaf_of covers.
        c.map(|n| unsafe { *self.leaf_of.get_unchecked(n as usize) } as usize)
    }

    /// Walk `GROUP` rows through one tree in lockstep, `depth` steps: the
    /// rows' node chains are independent, so their loads overlap, and a row
    /// that reached its leaf node stays there.
    #[inline(always)]
    fn walk_group<const LT: bool>(
        &self,
        root: u32,
        depth: u32,
        first_leaf: u32,
        rows: &[f64],
        nf: usize,
    ) -> [usize; GROUP] {
        let mut c = [root as i32; GROUP];
        for _ in 0..depth {
            let mut done = true;
            for (i, node) in c.iter_mut().enumerate() {
                *node = self.step::<LT>(*node, &rows[i * nf..(i + 1) * nf]);
                done &= *node as u32 >= first_leaf;
            }
            if done {
                break;
            }
        }
        // SAFETY: every walk ends on a leaf node, which leaf_of covers.
        c.map(|n| unsafe { *self.leaf_of.get_unchecked(n as usize) } as usize)
    }

    /// One step down from internal node `c`.
    #[inline(always)]
    fn step<const LT: bool>(&self, c: i32, row: &[f64]) -> i32 {
        // SAFETY: children and features were range-checked in build().
        let node = unsafe { self.nodes.get_unchecked(c as usize) };
        let v = unsafe { *row.get_unchecked(node.feature as usize) };
        let left = if node.flags & SLOW == 0 {
            let le = if LT {
                v < node.threshold
            } else {
                v <= node.threshold
            };
            le | (v.is_nan() & (node.flags & NAN_LEFT != 0))
        } else {
            self.slow_decision::<LT>(node, v)
        };
        if left {
            node.left
        } else {
            node.right
        }
    }

    #[cold]
    fn slow_decision<const LT: bool>(&self, node: &Node, v: f64) -> bool {
        let default_left = node.flags & DEFAULT_LEFT != 0;
        let v = if node.flags & MISSING_NONE != 0 && v.is_nan() {
            0.0
        } else {
            v
        };
        let missing = v.is_nan() || (node.flags & MISSING_ZERO != 0 && v.abs() <= ZERO_THRESHOLD);
        if missing {
            return default_left;
        }
        if node.flags & CATEGORICAL != 0 {
            let c = v.trunc();
            // "int_cast": -1 < v < 0 truncates to category 0; otherwise v < 0 matches nothing.
            let negative = if self.int_cast_categories {
                c < 0.0
            } else {
                v < 0.0
            };
            if v.is_nan() || negative {
                return false;
            }
            let bits = node.threshold.to_bits();
            let (offset, words) = ((bits >> 32) as usize, (bits & 0xffff_ffff) as usize);
            if (self.exact_categories && c != v) || c >= (words * 64) as f64 {
                return false;
            }
            let c = c as usize;
            return self.categories[offset + c / 64] >> (c % 64) & 1 == 1;
        }
        if LT {
            v < node.threshold
        } else {
            v <= node.threshold
        }
    }
}

/// The walk for these trees: the bit-vector walk where the CPU has a SIMD
/// kernel for it and nearly all nodes are in trees it takes (on R1 2.4x the
/// refill walk by AVX2 and 2.7x by AVX-512, and 1.5x lockstep on its
/// balanced XGBoost twin; its scalar kernel is 0.12x); else the refill walk
/// for lopsided trees and lockstep for balanced ones.
fn choose_walk(trees: &[crate::ir::TreeIr]) -> Walk {
    let nodes = |t: &crate::ir::TreeIr| t.split_feature.len();
    let fitting: usize = trees
        .iter()
        .filter(|t| Bits::fits(t.leaf_value.len()))
        .map(nodes)
        .sum();
    let all: usize = trees.iter().map(nodes).sum();
    if Kernel::detect() != Kernel::Portable && fitting as f64 >= 0.9 * all as f64 {
        Walk::Bits
    } else {
        refill::choose(trees)
    }
}

/// The precision a forest's leaf values are added up in: float64, or
/// float32 where the framework sums in float32 (`acc_f32`).
trait Accumulator: Copy + Default + std::ops::AddAssign {
    fn from_f64(v: f64) -> Self;
    /// A block of `BITS_ROWS` rows summed whole by the bit-vector walk.
    fn block_sums(bits: &Bits, block: &[f64], acc: &mut [Self]);
}

impl Accumulator for f64 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
    fn block_sums(bits: &Bits, block: &[f64], acc: &mut [Self]) {
        bits.sums(block, acc);
    }
}

impl Accumulator for f32 {
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
    fn block_sums(bits: &Bits, block: &[f64], acc: &mut [Self]) {
        bits.sums_f32(block, acc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::TreeIr;

    /// A random forest of `n_trees` trees over 4 features whose nodes mix
    /// what the IR allows; thresholds come from a small grid, so rows hit
    /// them exactly.
    fn random_ir(seed: u64, comparison: &str, n_trees: usize) -> TreesIr {
        let mut state = seed;
        let mut next = move |n: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % n
        };
        let mut trees = Vec::new();
        for t in 0..n_trees {
            let internal = next(12) as usize; // 0 is a single leaf
                                              // node i's children: nodes 2i+1, 2i+2 when they exist, else leaves
            let (mut left, mut right, mut leaves) = (vec![], vec![], 0i64);
            for i in 0..internal {
                for (side, c) in [(&mut left, 2 * i + 1), (&mut right, 2 * i + 2)] {
                    if c < internal {
                        side.push(c as i64);
                    } else {
                        side.push(!leaves);
                        leaves += 1;
                    }
                }
            }
            let leaves = leaves.max(1);
            // Some trees of the second half have zero-missing or categorical
            // nodes; the first groups of `LANES` trees are all numeric.
            let special = t >= n_trees / 2 && t % 3 == 0;
            let missing = (0..internal)
                .map(|_| match next(if special { 3 } else { 2 }) {
                    0 => "nan",
                    1 => "none",
                    _ => "zero",
                })
                .map(String::from)
                .collect::<Vec<String>>();
            let categories = (special && internal > 0).then(|| {
                (0..internal)
                    .map(|i| (i == 0).then(|| vec![0, 2, 3]))
                    .collect::<Vec<_>>()
            });
            let tree = serde_json::json!({
                "output": 0,
                "split_feature": (0..internal).map(|_| next(4)).collect::<Vec<_>>(),
                "threshold": (0..internal).map(|_| next(9) as f64 * 0.5 - 2.0).collect::<Vec<_>>(),
                "left": left, "right": right,
                "default_left": (0..internal).map(|_| next(2) == 1).collect::<Vec<_>>(),
                "missing": missing, "categories": categories,
                "leaf_value": (0..leaves).map(|l| (t as f64 + 1.0) / (l as f64 + 3.0)).collect::<Vec<_>>(),
            });
            trees.push(serde_json::from_value(tree).expect("a tree"));
        }
        TreesIr {
            n_outputs: 1,
            base_score: vec![0.25],
            aggregate: "sum".into(),
            feature_cast: "float64".into(),
            comparison: comparison.into(),
            accumulate: "float64".into(),
            sigmoid_scale: 1.0,
            category_match: "trunc".into(),
            trees,
        }
    }

    #[test]
    fn the_compact_walk_gives_the_general_walks_bits() {
        // Every threshold of the grid (-2.0..=2.0 by 0.5) is also a value;
        // -0.0 meets the 0.0 threshold, 1e-36 LightGBM's zero band.
        let grid = [
            -2.5,
            -2.0,
            -1.5,
            -0.5,
            0.0,
            0.5,
            1.0,
            1.5,
            2.0,
            3.0,
            1e-36,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
        ];
        for comparison in ["le", "lt"] {
            let ir = random_ir(0x9e37_79b9_7f4a_7c15, comparison, 40);
            let general = Forest::build_with(&ir, 4, &tree_depths(&ir), Compact::with_walk(false, Walk::Lockstep))
                .expect("builds");
            for (walk, kernel) in walks() {
                let compact = built(&ir, walk, kernel);
                assert!(compact.compact.trees.iter().any(Option::is_some));
                assert!(compact.compact.trees.iter().any(Option::is_none));
                for rows in [1, 7, 8, 21, 32, 64, 65, 200] {
                    // NaN nowhere, in every block, or in the first rows only.
                    for with_nan in [0, 1, 2] {
                        let xs: Vec<f64> = (0..rows * 4)
                            .map(|i| match i * 7 % 17 {
                                16 if with_nan == 1 || (with_nan == 2 && i < 40) => f64::NAN,
                                k => grid[(k + i / 17) % grid.len()],
                            })
                            .collect();
                        let case = format!("{walk:?} {kernel:?}, {comparison}, {rows} rows, NaN {with_nan}");
                        assert_same_bits(&general, &compact, &xs, rows, &case);
                    }
                }
            }
        }
    }

    #[test]
    fn the_refill_walk_serves_all_numeric_forests_and_single_leaves() {
        // Only numeric trees (the first half of random_ir's), some of them a
        // single leaf: every tree is compact, in runs longer than one pass.
        let mut ir = random_ir(0x2545_f491_4f6c_dd1d, "le", 120);
        ir.trees.truncate(60);
        assert!(ir.trees.iter().any(|t| t.split_feature.is_empty()));
        let general =
            Forest::build_with(&ir, 4, &tree_depths(&ir), Compact::with_walk(false, Walk::Lockstep)).expect("builds");
        for (walk, kernel) in walks().into_iter().filter(|(w, _)| *w != Walk::Lockstep) {
            let compact = built(&ir, walk, kernel);
            assert!(compact.compact.trees.iter().all(Option::is_some));
            if walk == Walk::Bits {
                // Every tree fits, so the bit-vector walk adds up the whole forest.
                assert!(compact.bits.as_ref().is_some_and(|b| b.sums_all()));
            }
            for rows in [1, 3, 64, 100] {
                let xs: Vec<f64> = (0..rows * 4)
                    .map(|i| (i * 5 % 11) as f64 * 0.5 - 2.5)
                    .collect();
                assert_same_bits(&general, &compact, &xs, rows, &format!("{walk:?} {kernel:?}, {rows} rows"));
            }
        }
    }

    #[test]
    fn float32_sums_of_the_bit_vector_walk_give_the_leaf_by_leaf_bits() {
        // ONNX's and XGBoost's forests sum in float32: the whole-block sums (`Bits::sums_f32`)
        // round each leaf and each running sum as the leaf-by-leaf walk does, in tree order.
        let mut ir = random_ir(0x9e37_79b9_7f4a_7c15, "le", 120);
        ir.trees.truncate(60);
        ir.accumulate = "float32".into();
        for tree in &mut ir.trees {
            for (i, v) in tree.leaf_value.iter_mut().enumerate() {
                *v = serde_json::json!(0.1 + i as f64 / 3.0); // not exact in float32
            }
        }
        let general =
            Forest::build_with(&ir, 4, &tree_depths(&ir), Compact::with_walk(false, Walk::Lockstep)).expect("builds");
        for kernel in Kernel::available() {
            let bits = built(&ir, Walk::Bits, kernel);
            assert!(bits.bits.as_ref().is_some_and(|b| b.sums_all()));
            for rows in [64, 100, 256] {
                let xs: Vec<f64> = (0..rows * 4).map(|i| (i * 5 % 11) as f64 * 0.5 - 2.5).collect();
                assert_same_bits(&general, &bits, &xs, rows, &format!("float32 sums, {kernel:?}, {rows} rows"));
            }
        }
    }

    /// Every compact walk, the bit-vector one once per kernel this CPU runs.
    fn walks() -> Vec<(Walk, Kernel)> {
        let mut walks = vec![(Walk::Lockstep, Kernel::Portable), (Walk::Refill, Kernel::Portable)];
        walks.extend(Kernel::available().into_iter().map(|k| (Walk::Bits, k)));
        walks
    }

    /// Assert that `other` gives `general`'s raw scores, bit for bit, on `rows` rows of `xs`.
    fn assert_same_bits(general: &Forest, other: &Forest, xs: &[f64], rows: usize, case: &str) {
        let (mut a, mut b) = (vec![0.0; rows], vec![0.0; rows]);
        general.raw_scores(xs, rows, &mut a);
        other.raw_scores(xs, rows, &mut b);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b), "{case}");
    }

    /// Each tree's depth, as validation finds it.
    fn tree_depths(ir: &TreesIr) -> Vec<usize> {
        ir.trees
            .iter()
            .map(|t| {
                let mut stack = vec![(0i64, 0usize)];
                let mut deepest = 0;
                while let Some((c, d)) = stack.pop() {
                    if c < 0 || t.left.is_empty() {
                        deepest = deepest.max(d);
                    } else {
                        stack.push((t.left[c as usize], d + 1));
                        stack.push((t.right[c as usize], d + 1));
                    }
                }
                deepest
            })
            .collect()
    }

    fn built(ir: &TreesIr, walk: Walk, kernel: Kernel) -> Forest {
        let mut f = Forest::build_with(ir, 4, &tree_depths(ir), Compact::with_walk(true, walk)).expect("builds");
        f.bits = f.bits.take().map(|b| Box::new(b.with_kernel(kernel)));
        f
    }

    #[test]
    fn the_bit_vector_walk_takes_trees_of_64_leaves_and_leaves_bigger_ones() {
        // Chains of 63 and 64 internal nodes (64 and 65 leaves), each node's
        // left child the next node: the first leaf sits 63 (64) levels down.
        let chain = |internal: i64, t: f64| -> TreeIr {
            serde_json::from_value(serde_json::json!({
                "output": 0,
                "split_feature": (0..internal).map(|i| i % 4).collect::<Vec<_>>(),
                "threshold": (0..internal).map(|i| t - i as f64 * 0.01).collect::<Vec<_>>(),
                "left": (1..=internal).map(|c| if c < internal { c } else { !internal }).collect::<Vec<_>>(),
                "right": (0..internal).map(|l| !l).collect::<Vec<_>>(),
                "default_left": vec![true; internal as usize], "missing": vec!["nan"; internal as usize],
                "leaf_value": (0..=internal).map(|l| 1.0 + l as f64 / 128.0).collect::<Vec<_>>(),
            }))
            .expect("a tree")
        };
        let mut ir = random_ir(7, "le", 2);
        ir.trees = vec![chain(63, 0.3), chain(64, 0.2), chain(63, -0.1)];
        let general =
            Forest::build_with(&ir, 4, &tree_depths(&ir), Compact::with_walk(false, Walk::Lockstep)).expect("builds");
        for (walk, kernel) in walks().into_iter().filter(|(w, _)| *w == Walk::Bits) {
            let bits = built(&ir, walk, kernel);
            let slots = bits.bits.as_ref().expect("the bit-vector walk").trees.clone();
            assert_eq!(slots, vec![0, 2], "the 65-leaf tree takes the general walk");
            let rows = 96;
            // Values from -0.5 to 0.45: every depth of every chain is reached.
            let xs: Vec<f64> = (0..rows * 4).map(|i| (i * 37 % 96) as f64 / 100.0 - 0.5).collect();
            assert_same_bits(&general, &bits, &xs, rows, &format!("{kernel:?}"));
        }
    }
}
