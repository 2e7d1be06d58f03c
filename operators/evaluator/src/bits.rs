//! The bit-vector walk: QuickScorer's leaf masks (Lucchese et al., SIGIR
//! 2015) turned across rows. A block of `ROWS` rows is held as columns.
//! Each tree keeps one `u64` per row, all ones at first, a bit per leaf
//! (leaves numbered left to right). Every node of the tree is visited once
//! per block: it compares its feature's column with its threshold, and the
//! rows above it (they go right) lose the node's left-subtree leaves. A
//! row's leaf is then the lowest bit left set.
//!
//! So a node costs, for a block of rows, one load, one compare and one
//! masked AND, with no chain of dependent loads and no branch, where a walk
//! costs three dependent loads per level per row: visiting every node is
//! cheaper than walking down (figures: `docs/performance.md`).
//!
//! It serves numeric trees of at most 64 leaves on blocks without NaN. It
//! uses the compact walk's comparison (`v > threshold`, an "lt" threshold
//! stored as the largest double below it), so it finds the same leaves,
//! and the sums, in tree order, keep their bits. The forest's other trees
//! take the general walk.
//!
//! Kernels: AVX-512 (F and CD: positions by `lzcnt`, leaf values by
//! gathers), AVX2, or a scalar loop. The compiler turns the scalar loop
//! into branches, so the forest never chooses it (`forest.rs`,
//! `choose_walk`).

/// Rows of one block: one 512-bit vector of doubles.
pub const ROWS: usize = 32;
/// Doubles in a 512-bit vector: a block is `ROWS / VECTOR` of them.
#[cfg(target_arch = "x86_64")]
const VECTOR: usize = 8;
use crate::compact::{next_below, Plain};

/// Most leaves a tree may have: one bit each.
pub const MAX_LEAVES: usize = 64;

/// One node of the scan: rows whose `feature` is above `threshold` AND
/// their vector with `mask` (the node's left-subtree leaves cleared).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct BNode {
    threshold: f64,
    mask: u64,
    feature: u32,
}

/// A block's values of one feature (or bit vectors of one tree), one per row.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Lanes<T>([T; ROWS]);

/// Which code scans: AVX-512 (F and CD) where the CPU has it, else the
/// portable loop (AVX2 where the CPU has that).
/// Declared slowest first (`detect` takes the greatest available).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kernel {
    #[default]
    Portable,
    Avx2,
    Avx512,
}

impl Kernel {
    /// The kernels this CPU runs, slowest first.
    pub fn available() -> Vec<Self> {
        let mut kernels = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") {
                kernels.push(Kernel::Avx2);
            }
            if has!("avx512f") && has!("avx512cd") {
                kernels.push(Kernel::Avx512);
            }
        }
        kernels
    }

    /// The best this CPU runs. Built with the `bench-switches` feature
    /// (benchmarks only), `STREAMML_EVALUATOR_SIMD=portable` (or `avx2`) asks
    /// for less, to compare kernels in one process.
    pub fn detect() -> Self {
        #[cfg(feature = "bench-switches")]
        let most = match std::env::var("STREAMML_EVALUATOR_SIMD").as_deref() {
            Ok("portable") => Kernel::Portable,
            Ok("avx2") => Kernel::Avx2,
            _ => Kernel::Avx512,
        };
        #[cfg(not(feature = "bench-switches"))]
        let most = Kernel::Avx512;
        let best = Self::available().into_iter().filter(|&k| k <= most).max();
        best.unwrap_or(Kernel::Portable)
    }
}

#[derive(Debug, Default)]
pub struct Bits {
    /// The kernel `new` chose (`with_kernel` for tests).
    kernel: Kernel,
    /// Slot `s`'s nodes are `nodes[start[s]..start[s + 1]]`.
    start: Vec<u32>,
    nodes: Vec<BNode>,
    /// Per slot: the forest's tree it stands for.
    pub trees: Vec<u32>,
    /// Per slot, `MAX_LEAVES` entries: the global leaf at each position, left to right.
    leaf_at: Vec<u32>,
    nf: usize,
    /// When every tree of the forest is a slot with one output: per slot its
    /// output, and `MAX_LEAVES` leaf values (by position) for `sums`.
    sums: Option<(Vec<usize>, Vec<f64>, usize)>,
}

impl Bits {
    /// Whether a tree of `n_leaves` leaves fits.
    pub fn fits(n_leaves: usize) -> bool {
        n_leaves <= MAX_LEAVES
    }

    /// An empty scan for rows of `nf` features; `push` adds the trees.
    pub fn new(nf: usize) -> Self {
        Bits { start: vec![0], nf, kernel: Kernel::detect(), ..Bits::default() }
    }

    /// Add tree `index` of the forest, if it has at most `MAX_LEAVES`
    /// leaves (a binary tree has one more than its internal nodes).
    pub fn push(&mut self, index: u32, tree: &Plain<'_>) {
        let internal = tree.threshold.len();
        if !Self::fits(internal + 1) {
            return;
        }
        self.trees.push(index);
        // Leaves left to right, and each internal node's span of leaf positions.
        let mut order = Vec::with_capacity(internal + 1);
        let mut span = vec![(0usize, 0usize); internal];
        if internal == 0 {
            order.push(tree.leaf_base);
        } else {
            positions(tree, 0, &mut order, &mut span);
        }
        let first = order[0];
        self.leaf_at.extend(&order);
        self.leaf_at.resize(self.trees.len() * MAX_LEAVES, first);
        for n in 0..internal {
            // The kernels index columns by feature unchecked.
            assert!((tree.feature[n] as usize) < self.nf, "feature out of range");
            // Going right, the row leaves every leaf of the left subtree behind.
            let (lo, _) = span[n];
            let left = tree.left[n] as usize;
            let hi = if left >= internal { lo + 1 } else { span[left].1 };
            // The right subtree holds a leaf too, so hi - lo < 64.
            let cleared = ((1u64 << (hi - lo)) - 1) << lo;
            let t = tree.threshold[n];
            self.nodes.push(BNode {
                threshold: if tree.lt { next_below(t) } else { t },
                mask: !cleared,
                feature: tree.feature[n],
            });
        }
        self.start.push(self.nodes.len() as u32);
    }

    /// The same scan by another kernel (one this CPU runs: `Kernel::detect`).
    #[cfg(test)]
    pub fn with_kernel(mut self, kernel: Kernel) -> Self {
        self.kernel = kernel;
        self
    }

    pub fn slots(&self) -> usize {
        self.trees.len()
    }

    /// Let `sums` add up the forest: slot `s` (tree `s`) adds
    /// `leaves[leaf]` to output `outputs[s]` of `n_outputs`.
    pub fn add_sums(&mut self, outputs: &[usize], n_outputs: usize, leaves: &[f64]) {
        assert!(outputs.len() == self.slots() && outputs.iter().all(|&k| k < n_outputs));
        let values = self.leaf_at.iter().map(|&l| leaves[l as usize]).collect();
        self.sums = Some((outputs.to_vec(), values, n_outputs));
    }

    /// Whether `sums` adds up the whole forest.
    pub fn sums_all(&self) -> bool {
        self.sums.is_some()
    }

    /// Add every tree's leaf values, in tree order, to `acc[k * ROWS + r]`
    /// for the `ROWS` rows of `block` (no NaN; see `add_sums`).
    pub fn sums(&self, block: &[f64], acc: &mut [f64]) {
        let (outputs, values, no) = self.sums.as_ref().expect("add_sums was called");
        assert!(acc.len() >= no * ROWS);
        let columns = self.columns(block);
        #[cfg(target_arch = "x86_64")]
        if self.kernel == Kernel::Avx512 {
            // SAFETY: the CPU has AVX-512F and CD; features are below nf
            // (new), outputs below no (add_sums), values hold MAX_LEAVES
            // entries per slot and positions are below 64.
            return unsafe { self.sums_avx512(&columns, outputs, values, acc) };
        }
        self.scan_sums(&columns, outputs, values, acc, |v| v);
    }

    /// `sums` for a forest summed in float32 (`"accumulate": "float32"`): each
    /// tree's leaf value rounded to float32 and added in tree order, the sum
    /// rounded to float32 after each tree, as the leaf-by-leaf walk does.
    pub fn sums_f32(&self, block: &[f64], acc: &mut [f32]) {
        let (outputs, values, no) = self.sums.as_ref().expect("add_sums was called");
        assert!(acc.len() >= no * ROWS);
        let columns = self.columns(block);
        #[cfg(target_arch = "x86_64")]
        if self.kernel == Kernel::Avx512 {
            // SAFETY: as in `sums`.
            return unsafe { self.sums_f32_avx512(&columns, outputs, values, acc) };
        }
        self.scan_sums(&columns, outputs, values, acc, |v| v as f32);
    }

    /// The portable `sums`/`sums_f32`: each tree's leaf value, converted by
    /// `leaf` into the accumulator's type, added to its output's sums.
    fn scan_sums<A: Copy + std::ops::AddAssign>(
        &self,
        columns: &[Lanes<f64>],
        outputs: &[usize],
        values: &[f64],
        acc: &mut [A],
        leaf: impl Fn(f64) -> A,
    ) {
        self.scan_columns(columns, |slot, bits| {
            let at = &values[slot * MAX_LEAVES..(slot + 1) * MAX_LEAVES];
            let acc = &mut acc[outputs[slot] * ROWS..(outputs[slot] + 1) * ROWS];
            for (a, bits) in acc.iter_mut().zip(bits) {
                *a += leaf(at[bits.trailing_zeros() as usize & 63]);
            }
        });
    }

    /// `sums` by AVX-512: a tree's 8 positions by `lzcnt` of the lowest
    /// set bits, its 8 leaf values by one gather.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512cd")]
    unsafe fn sums_avx512(&self, columns: &[Lanes<f64>], outputs: &[usize], values: &[f64], acc: &mut [f64]) {
        use std::arch::x86_64::*;
        const HALVES: usize = ROWS / VECTOR;
        let index = self.leaf_indices_avx512(columns);
        let single = outputs.iter().all(|&k| k == 0);
        let mut sum = [_mm512_setzero_pd(); HALVES];
        for (slot, index) in index.iter().enumerate() {
            for (h, sum) in sum.iter_mut().enumerate() {
                let at = _mm256_load_si256(index.0.as_ptr().add(h * VECTOR) as *const __m256i);
                let leaf = _mm512_i32gather_pd::<8>(at, values.as_ptr());
                if single {
                    *sum = _mm512_add_pd(*sum, leaf);
                } else {
                    let k = acc.as_mut_ptr().add(outputs[slot] * ROWS + h * VECTOR);
                    _mm512_storeu_pd(k, _mm512_add_pd(_mm512_loadu_pd(k), leaf));
                }
            }
        }
        if single {
            for (h, sum) in sum.iter().enumerate() {
                let k = acc.as_mut_ptr().add(h * VECTOR);
                _mm512_storeu_pd(k, _mm512_add_pd(_mm512_loadu_pd(k), *sum));
            }
        }
    }

    /// `sums_f32` by AVX-512: the gathered leaf values rounded to float32
    /// (`vcvtpd2ps`, to nearest as `as f32`) and added in float32, tree by tree.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512cd")]
    unsafe fn sums_f32_avx512(&self, columns: &[Lanes<f64>], outputs: &[usize], values: &[f64], acc: &mut [f32]) {
        use std::arch::x86_64::*;
        const HALVES: usize = ROWS / VECTOR;
        let index = self.leaf_indices_avx512(columns);
        let single = outputs.iter().all(|&k| k == 0);
        // The running sums of output 0 from 0.0 (acc starts at 0.0 there, so adding them at the
        // end changes nothing); several outputs add into acc tree by tree.
        let mut sum = [_mm256_setzero_ps(); HALVES];
        for (slot, index) in index.iter().enumerate() {
            for (h, sum) in sum.iter_mut().enumerate() {
                let at = _mm256_load_si256(index.0.as_ptr().add(h * VECTOR) as *const __m256i);
                let leaf = _mm512_cvtpd_ps(_mm512_i32gather_pd::<8>(at, values.as_ptr()));
                if single {
                    *sum = _mm256_add_ps(*sum, leaf);
                } else {
                    let k = acc.as_mut_ptr().add(outputs[slot] * ROWS + h * VECTOR);
                    _mm256_storeu_ps(k, _mm256_add_ps(_mm256_loadu_ps(k), leaf));
                }
            }
        }
        if single {
            for (h, sum) in sum.iter().enumerate() {
                let k = acc.as_mut_ptr().add(h * VECTOR);
                _mm256_storeu_ps(k, _mm256_add_ps(_mm256_loadu_ps(k), *sum));
            }
        }
    }

    /// Every tree's leaf positions for the block's rows, as indices into the
    /// leaf values (AVX-512). First all trees, then the callers' gathers: a
    /// gather right after its tree would wait for the tree's chain of ANDs
    /// with the next tree's scan stuck behind it.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512cd")]
    unsafe fn leaf_indices_avx512(&self, columns: &[Lanes<f64>]) -> Vec<Lanes<i32>> {
        use std::arch::x86_64::*;
        let last = _mm512_set1_epi64(63);
        let mut index = vec![Lanes([0i32; ROWS]); self.trees.len()];
        for (slot, index) in index.iter_mut().enumerate() {
            let v = self.tree_avx512(slot, columns);
            let base = _mm512_set1_epi64((slot * MAX_LEAVES) as i64);
            for (h, v) in v.iter().enumerate() {
                let lowest = _mm512_and_si512(*v, _mm512_sub_epi64(_mm512_setzero_si512(), *v));
                let position = _mm512_sub_epi64(last, _mm512_lzcnt_epi64(lowest));
                let at = _mm512_cvtepi64_epi32(_mm512_add_epi64(position, base));
                _mm256_store_si256(index.0.as_mut_ptr().add(h * VECTOR) as *mut __m256i, at);
            }
        }
        index
    }

    /// Slot `slot`'s bit vectors (AVX-512), `VECTOR` rows a vector.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn tree_avx512(&self, slot: usize, columns: &[Lanes<f64>]) -> [std::arch::x86_64::__m512i; ROWS / VECTOR] {
        use std::arch::x86_64::*;
        let (a, b) = (self.start[slot] as usize, self.start[slot + 1] as usize);
        let mut v = [_mm512_set1_epi64(-1); ROWS / VECTOR];
        for node in self.nodes.get_unchecked(a..b) {
            let column = columns.get_unchecked(node.feature as usize).0.as_ptr();
            let threshold = _mm512_set1_pd(node.threshold);
            let mask = _mm512_set1_epi64(node.mask as i64);
            for (h, v) in v.iter_mut().enumerate() {
                let x = _mm512_load_pd(column.add(h * VECTOR));
                let above = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(x, threshold);
                *v = _mm512_mask_and_epi64(*v, above, *v, mask);
            }
        }
        v
    }

    /// A block's rows as columns.
    fn columns(&self, block: &[f64]) -> Vec<Lanes<f64>> {
        let nf = self.nf;
        assert!(block.len() >= ROWS * nf);
        let mut columns = vec![Lanes([0.0; ROWS]); nf];
        for (r, row) in block.chunks_exact(nf).take(ROWS).enumerate() {
            for (f, &x) in row.iter().enumerate() {
                columns[f].0[r] = x;
            }
        }
        columns
    }

    /// The leaves of `ROWS` rows (`block`, row-major, `nf` values each, no
    /// NaN) in every slot's tree: `ends[tree * ROWS + r]` for each slot's
    /// forest index `tree`.
    pub fn leaves(&self, block: &[f64], ends: &mut [u32]) {
        self.scan_block(block, |slot, bits| {
            let at = &self.leaf_at[slot * MAX_LEAVES..(slot + 1) * MAX_LEAVES];
            let tree = self.trees[slot] as usize;
            for (r, bits) in bits.iter().enumerate() {
                // The exit leaf's bit is never cleared, so bits != 0.
                ends[tree * ROWS + r] = at[bits.trailing_zeros() as usize & 63];
            }
        });
    }

    /// Each slot's bit vectors for the `ROWS` rows of `block`, to `each(slot, bits)`.
    #[inline(always)]
    fn scan_block(&self, block: &[f64], each: impl FnMut(usize, [u64; ROWS])) {
        self.scan_columns(&self.columns(block), each);
    }

    #[inline(always)]
    fn scan_columns(&self, columns: &[Lanes<f64>], each: impl FnMut(usize, [u64; ROWS])) {
        #[cfg(target_arch = "x86_64")]
        {
            if self.kernel == Kernel::Avx512 {
                // SAFETY: the CPU has AVX-512F; every node's feature is below nf (new).
                return unsafe { self.scan_avx512(columns, each) };
            }
            if self.kernel == Kernel::Avx2 {
                // SAFETY: the CPU has AVX2.
                return unsafe { self.scan_avx2(columns, each) };
            }
        }
        self.scan(columns, each);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn scan_avx512(&self, columns: &[Lanes<f64>], mut each: impl FnMut(usize, [u64; ROWS])) {
        use std::arch::x86_64::*;
        let mut out = Lanes([0u64; ROWS]);
        for slot in 0..self.trees.len() {
            for (h, v) in self.tree_avx512(slot, columns).iter().enumerate() {
                _mm512_store_si512(out.0.as_mut_ptr().add(h * VECTOR) as *mut __m512i, *v);
            }
            each(slot, out.0);
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn scan_avx2(&self, columns: &[Lanes<f64>], mut each: impl FnMut(usize, [u64; ROWS])) {
        use std::arch::x86_64::*;
        const QUARTER: usize = 4;
        let mut out = Lanes([0u64; ROWS]);
        for slot in 0..self.trees.len() {
            let (a, b) = (self.start[slot] as usize, self.start[slot + 1] as usize);
            let mut v = [_mm256_set1_epi64x(-1); ROWS / QUARTER];
            for node in self.nodes.get_unchecked(a..b) {
                let column = columns.get_unchecked(node.feature as usize).0.as_ptr();
                let threshold = _mm256_set1_pd(node.threshold);
                let cleared = _mm256_set1_epi64x(!node.mask as i64);
                for (q, v) in v.iter_mut().enumerate() {
                    let x = _mm256_load_pd(column.add(q * QUARTER));
                    let above = _mm256_castpd_si256(_mm256_cmp_pd::<_CMP_GT_OQ>(x, threshold));
                    // Rows above the threshold lose the cleared bits.
                    *v = _mm256_andnot_si256(_mm256_and_si256(above, cleared), *v);
                }
            }
            for (q, v) in v.iter().enumerate() {
                _mm256_store_si256(out.0.as_mut_ptr().add(q * QUARTER) as *mut __m256i, *v);
            }
            each(slot, out.0);
        }
    }

    #[inline(always)]
    fn scan(&self, columns: &[Lanes<f64>], mut each: impl FnMut(usize, [u64; ROWS])) {
        for slot in 0..self.trees.len() {
            let nodes = &self.nodes[self.start[slot] as usize..self.start[slot + 1] as usize];
            let mut v = [!0u64; ROWS];
            for node in nodes {
                let x = &columns[node.feature as usize].0;
                let cleared = !node.mask;
                for (bits, &x) in v.iter_mut().zip(x) {
                    // No branch: all ones where the row is above the threshold.
                    *bits &= !(cleared & u64::from(x > node.threshold).wrapping_neg());
                }
            }
            each(slot, v);
        }
    }
}

/// Number the leaves under `n` left to right into `order`; `span[n]` becomes
/// the range of positions under `n`.
fn positions(tree: &Plain<'_>, n: usize, order: &mut Vec<u32>, span: &mut [(usize, usize)]) {
    let internal = tree.threshold.len();
    let lo = order.len();
    for child in [tree.left[n] as usize, tree.right[n] as usize] {
        if child >= internal {
            order.push(tree.leaf_base + (child - internal) as u32);
        } else {
            positions(tree, child, order, span);
        }
    }
    span[n] = (lo, order.len());
}
