//! Oblivious trees (`docs/ir.md`, "oblivious"), walked without branches: a
//! tree's leaf index is the bits of its level comparisons, so a block of rows
//! is scored level by level over feature columns (a loop the compiler turns
//! into SIMD compares), then each row adds its leaf.

use streamml_ir::ObliviousIr;

/// Rows per block: the column-major scratch (features x ROWS) stays in L1/L2.
pub const ROWS: usize = 64;

/// One level of one tree, flattened; `T` is the type compared in (f64, or
/// f32 where the features are cast to float32 and every threshold is a float32).
#[derive(Debug, Clone, Copy)]
struct Level<T> {
    threshold: T,
    feature: u32,
    /// A NaN sets the level's bit (goes right).
    nan_right: bool,
}

#[derive(Debug)]
pub struct Oblivious {
    levels: Vec<Level<f64>>,
    /// The levels in float32, when comparing in float32 gives the same bits.
    levels_f32: Option<Vec<Level<f32>>>,
    /// The CPU runs AVX2: the block loop is compiled for it too.
    avx2: bool,
    /// The CPU runs AVX-512F: one output in float32 takes `block_f32_avx512`.
    avx512: bool,
    /// Per tree: its first level, its depth, its first leaf value.
    trees: Vec<(u32, u32, u32)>,
    leaves: Vec<f64>,
    pub n_outputs: usize,
    n_features: usize,
    lt: bool,
    pub cast_f32: bool,
    scale: f64,
    base_score: Vec<f64>,
    pub sigmoid_scale: f64,
}

impl Oblivious {
    /// Build from oblivious trees that `streamml_ir::validate` accepted.
    pub fn build(ir: &ObliviousIr, n_features: usize) -> Result<Self, String> {
        let mut f = Oblivious {
            levels: Vec::new(),
            levels_f32: None,
            avx2: avx2(),
            avx512: avx512(),
            trees: Vec::with_capacity(ir.trees.len()),
            leaves: Vec::new(),
            n_outputs: ir.n_outputs,
            n_features,
            lt: ir.comparison == "lt",
            cast_f32: ir.feature_cast == "float32",
            scale: ir.scale,
            base_score: ir.base_score.clone(),
            sigmoid_scale: ir.sigmoid_scale,
        };
        for (t, tree) in ir.trees.iter().enumerate() {
            let d = tree.split_feature.len();
            if tree.leaf_value.len() != (1 << d) * ir.n_outputs || tree.split_feature.iter().any(|j| *j >= n_features) {
                return Err(format!("oblivious tree {t} does not fit {n_features} features and its depth {d}"));
            }
            f.trees.push((f.levels.len() as u32, d as u32, f.leaves.len() as u32));
            for l in 0..d {
                f.levels.push(Level {
                    threshold: tree.threshold[l],
                    feature: tree.split_feature[l] as u32,
                    nan_right: !tree.default_left[l],
                });
            }
            f.leaves.extend_from_slice(&tree.leaf_value);
        }
        // Features cast to float32 compare with float32 thresholds exactly as in float64.
        let exact = f.levels.iter().all(|l| (l.threshold as f32) as f64 == l.threshold);
        if f.cast_f32 && exact {
            let levels = f.levels.iter().map(|l| Level { threshold: l.threshold as f32, feature: l.feature, nan_right: l.nan_right });
            f.levels_f32 = Some(levels.collect());
        }
        Ok(f)
    }

    /// Raw scores for `rows` rows of row-major features `xs` (already
    /// cast), into `raw` (`rows * n_outputs`).
    pub fn raw_scores(&self, xs: &[f64], rows: usize, raw: &mut [f64]) {
        let nf = self.n_features;
        self.raw_scores_with(rows, raw, |r0, len, cols| transpose(xs, r0, len, nf, cols));
    }

    /// Raw scores for `rows` rows into `raw` (`rows * n_outputs`), a block
    /// of `ROWS` rows at a time: `fill(r0, len, cols)` writes rows
    /// `r0..r0 + len` column-major (feature `j` of row `r` at `j * ROWS + r`),
    /// already cast.
    pub fn raw_scores_with(&self, rows: usize, raw: &mut [f64], mut fill: impl FnMut(usize, usize, &mut [f64])) {
        let nf = self.n_features;
        let no = self.n_outputs;
        let mut cols = vec![0.0; nf * ROWS];
        let mut cols_f32 = vec![0f32; if self.levels_f32.is_some() { nf * ROWS } else { 0 }];
        let mut sums = vec![0.0; ROWS * no];
        for r0 in (0..rows).step_by(ROWS) {
            let len = ROWS.min(rows - r0);
            sums.fill(0.0);
            fill(r0, len, &mut cols);
            match &self.levels_f32 {
                Some(levels) => {
                    cols_f32.iter_mut().zip(&cols).for_each(|(c, v)| *c = *v as f32);
                    #[cfg(target_arch = "x86_64")]
                    if self.avx512 && no == 1 {
                        // SAFETY: the CPU has AVX-512F (checked in build); cols_f32 holds nf * ROWS values.
                        unsafe { self.block_f32_avx512(levels, &cols_f32, &mut sums) };
                    } else {
                        self.block(levels, &cols_f32, len, &mut sums);
                    }
                    #[cfg(not(target_arch = "x86_64"))]
                    self.block(levels, &cols_f32, len, &mut sums);
                }
                None => self.block(&self.levels, &cols, len, &mut sums),
            }
            for r in 0..len {
                for k in 0..no {
                    raw[(r0 + r) * no + k] = self.base_score[k] + self.scale * sums[r * no + k];
                }
            }
        }
    }

    /// One output, float32 levels, by AVX-512: each level is four 16-lane
    /// compares into masks, each mask sets the level's bit in the rows' leaf
    /// indices (a masked OR), then eight 8-lane gathers add the leaves. The
    /// additions are the scalar loop's, tree by tree, lane by lane.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn block_f32_avx512(&self, levels: &[Level<f32>], cols: &[f32], sums: &mut [f64]) {
        use std::arch::x86_64::*;
        const LANES: usize = 16;
        const QUARTERS: usize = ROWS / LANES;
        debug_assert!(cols.len() >= self.n_features * ROWS && sums.len() >= ROWS);
        let mut acc = [_mm512_setzero_pd(); ROWS / 8];
        let lt = self.lt;
        for &(first, depth, leaf0) in &self.trees {
            let mut index = [_mm512_setzero_si512(); QUARTERS];
            for d in 0..depth as usize {
                let level = levels.get_unchecked(first as usize + d);
                let t = _mm512_set1_ps(level.threshold);
                let bit = _mm512_set1_epi32(1 << d);
                let col = cols.as_ptr().add(level.feature as usize * ROWS);
                // Right: `x > t` ("le") or `x >= t` ("lt"); where NaN goes right, the
                // unordered negation of the opposite comparison (true for NaN).
                macro_rules! level {
                    ($pred:expr) => {
                        for (q, index) in index.iter_mut().enumerate() {
                            let m = _mm512_cmp_ps_mask::<{ $pred }>(_mm512_loadu_ps(col.add(q * LANES)), t);
                            *index = _mm512_mask_or_epi32(*index, m, *index, bit);
                        }
                    };
                }
                match (lt, level.nan_right) {
                    (false, false) => level!(_CMP_GT_OQ),
                    (false, true) => level!(_CMP_NLE_UQ),
                    (true, false) => level!(_CMP_GE_OQ),
                    (true, true) => level!(_CMP_NLT_UQ),
                }
            }
            // Indices are below 2^depth: the tree's leaves.
            let leaves = self.leaves.as_ptr().add(leaf0 as usize);
            for (q, index) in index.iter().enumerate() {
                let lo = _mm512_castsi512_si256(*index);
                let hi = _mm512_extracti64x4_epi64::<1>(*index);
                acc[2 * q] = _mm512_add_pd(acc[2 * q], _mm512_i32gather_pd::<8>(lo, leaves));
                acc[2 * q + 1] = _mm512_add_pd(acc[2 * q + 1], _mm512_i32gather_pd::<8>(hi, leaves));
            }
        }
        for (h, a) in acc.iter().enumerate() {
            _mm512_storeu_pd(sums.as_mut_ptr().add(h * 8), *a);
        }
    }

    /// `block_portable`, compiled for AVX2 where the CPU has it.
    fn block<T: Compare>(&self, levels: &[Level<T>], cols: &[T], len: usize, sums: &mut [f64]) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: the CPU has AVX2 (checked in build).
            return unsafe { self.block_avx2(levels, cols, len, sums) };
        }
        self.block_portable::<T, false>(levels, cols, len, sums)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn block_avx2<T: Compare>(&self, levels: &[Level<T>], cols: &[T], len: usize, sums: &mut [f64]) {
        self.block_portable::<T, true>(levels, cols, len, sums)
    }

    /// Add every tree's leaf to `sums` for the first `len` rows of the
    /// column-major block `cols` (rows past `len` are scored and ignored).
    #[inline(always)]
    fn block_portable<T: Compare, const AVX2: bool>(&self, levels: &[Level<T>], cols: &[T], len: usize, sums: &mut [f64]) {
        let no = self.n_outputs;
        let mut index = [0u32; ROWS];
        // One output: the sums live in a local array, every row of the block
        // adds its leaf (rows past `len` too: no test per row).
        let mut acc = [0f64; ROWS];
        for &(first, depth, leaf0) in &self.trees {
            index.fill(0);
            for (d, level) in levels[first as usize..(first + depth) as usize].iter().enumerate() {
                let col: &[T; ROWS] = cols[level.feature as usize * ROWS..][..ROWS].try_into().expect("a column");
                bits(&mut index, col, level, d as u32, self.lt);
            }
            let leaves = &self.leaves[leaf0 as usize..leaf0 as usize + (no << depth)];
            #[cfg(target_arch = "x86_64")]
            if no == 1 && AVX2 {
                // SAFETY: AVX2 was detected (block_avx2); indices are below leaves.len() (below).
                unsafe { add_leaves_avx2(&mut acc, leaves, &index) };
                continue;
            }
            if no == 1 {
                for (s, i) in acc.iter_mut().zip(&index) {
                    // SAFETY: `bits` sets bits below `depth` only, so i < 2^depth = leaves.len().
                    *s += unsafe { *leaves.get_unchecked(*i as usize) };
                }
            } else {
                for (r, i) in index.iter().enumerate().take(len) {
                    let leaf = &leaves[*i as usize * no..][..no];
                    for (s, v) in sums[r * no..(r + 1) * no].iter_mut().zip(leaf) {
                        *s += v;
                    }
                }
            }
        }
        if no == 1 {
            sums[..len].copy_from_slice(&acc[..len]);
        }
    }
}

/// `acc[r] += leaves[index[r]]` for every row of the block, four rows per
/// AVX2 gather (the same additions as the scalar loop, lane by lane).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_leaves_avx2(acc: &mut [f64; ROWS], leaves: &[f64], index: &[u32; ROWS]) {
    use std::arch::x86_64::{
        __m128i, _mm256_add_pd, _mm256_i32gather_pd, _mm256_loadu_pd, _mm256_storeu_pd, _mm_loadu_si128,
    };
    debug_assert!(index.iter().all(|i| (*i as usize) < leaves.len()));
    for r in (0..ROWS).step_by(4) {
        let i = _mm_loadu_si128(index.as_ptr().add(r).cast::<__m128i>());
        let v = _mm256_i32gather_pd::<8>(leaves.as_ptr(), i);
        let a = _mm256_loadu_pd(acc.as_ptr().add(r));
        _mm256_storeu_pd(acc.as_mut_ptr().add(r), _mm256_add_pd(a, v));
    }
}

/// What the levels compare in: f64 or f32.
trait Compare: Copy + PartialOrd {}
impl Compare for f64 {}
impl Compare for f32 {}

fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        return true;
    }
    false
}

fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        return true;
    }
    false
}

/// Rows `r0..r0 + len` of the row-major `xs` into the column-major block `cols`.
#[inline(always)]
fn transpose(xs: &[f64], r0: usize, len: usize, nf: usize, cols: &mut [f64]) {
    for r in 0..len {
        for (j, v) in xs[(r0 + r) * nf..(r0 + r + 1) * nf].iter().enumerate() {
            cols[j * ROWS + r] = *v;
        }
    }
}

/// Set bit `d` of each row's leaf index where the row goes right at `level`.
/// One branch per level (its comparison and NaN side), none per row.
#[inline(always)]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(x <= t)` is true for NaN, on purpose
fn bits<T: Compare>(index: &mut [u32; ROWS], col: &[T; ROWS], level: &Level<T>, d: u32, lt: bool) {
    let t = level.threshold;
    let bit = 1u32 << d;
    // Right: `x > t` ("le") or `x >= t` ("lt"); a NaN fails both comparisons,
    // so where NaN goes right the negated opposite comparison is used. The
    // select (a mask and the bit) vectorises to a compare and an AND.
    let set = |right: bool| if right { bit } else { 0 };
    match (lt, level.nan_right) {
        (false, false) => index.iter_mut().zip(col).for_each(|(i, x)| *i |= set(*x > t)),
        (false, true) => index.iter_mut().zip(col).for_each(|(i, x)| *i |= set(!(*x <= t))),
        (true, false) => index.iter_mut().zip(col).for_each(|(i, x)| *i |= set(*x >= t)),
        (true, true) => index.iter_mut().zip(col).for_each(|(i, x)| *i |= set(!(*x < t))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaf each row reaches, by following the IR's rule literally.
    fn literal(ir: &ObliviousIr, row: &[f64]) -> Vec<f64> {
        let no = ir.n_outputs;
        let mut sums = vec![0.0; no];
        for tree in &ir.trees {
            let mut leaf = 0;
            for d in 0..tree.split_feature.len() {
                let x = row[tree.split_feature[d]];
                let t = tree.threshold[d];
                let right = if x.is_nan() {
                    !tree.default_left[d]
                } else if ir.comparison == "lt" {
                    x >= t
                } else {
                    x > t
                };
                leaf |= usize::from(right) << d;
            }
            for (s, v) in sums.iter_mut().zip(&tree.leaf_value[leaf * no..]) {
                *s += v;
            }
        }
        (0..no).map(|k| ir.base_score[k] + ir.scale * sums[k]).collect()
    }

    #[test]
    fn the_branch_free_walk_follows_the_rule_at_thresholds_and_nan() {
        let cases = [("le", 1, "float64"), ("lt", 1, "float64"), ("le", 3, "float64"), ("le", 1, "float32"), ("lt", 3, "float32")];
        for (comparison, no, cast) in cases {
            let trees: Vec<serde_json::Value> = (0..7)
                .map(|t| {
                    let d = t % 5; // depth 0 (one leaf) to 4
                    serde_json::json!({
                        "split_feature": (0..d).map(|l| (t + l) % 3).collect::<Vec<_>>(),
                        "threshold": (0..d).map(|l| (l as f64 - 1.5) * 0.5).collect::<Vec<_>>(),
                        "default_left": (0..d).map(|l| (t + l) % 2 == 0).collect::<Vec<_>>(),
                        "leaf_value": (0..(1 << d) * no).map(|i| (i as f64 + 1.0) / (t as f64 + 3.0)).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let ir: ObliviousIr = serde_json::from_value(serde_json::json!({
                "n_outputs": no, "base_score": vec![0.125; no], "scale": 0.75, "comparison": comparison,
                "feature_cast": cast,
                "trees": trees,
            }))
            .expect("an oblivious model");
            let mut model = Oblivious::build(&ir, 3).expect("builds");
            assert_eq!(model.levels_f32.is_some(), cast == "float32");
            // Thresholds, values around them (exact in float32) and NaN.
            let grid = [-0.75, -0.25, 0.25, -1.0, 0.0, f64::NAN, 2.0, -0.5, f64::INFINITY, 0.2500001, -0.7500001];
            let kernels = [(model.avx512, model.avx2), (false, model.avx2), (false, false)];
            for (rows, (avx512, avx2)) in [1, 5, 64, 130].into_iter().flat_map(|r| kernels.map(|k| (r, k))) {
                model.avx512 = avx512;
                model.avx2 = avx2;
                let xs: Vec<f64> = (0..rows * 3)
                    .map(|i| grid[(i * 7 + i / 5) % grid.len()])
                    .map(|v| if cast == "float32" { v as f32 as f64 } else { v })
                    .collect();
                let mut raw = vec![0.0; rows * no];
                model.raw_scores(&xs, rows, &mut raw);
                for r in 0..rows {
                    let want = literal(&ir, &xs[r * 3..(r + 1) * 3]);
                    let got = &raw[r * no..(r + 1) * no];
                    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(got), bits(&want), "{comparison} {cast}, {no} outputs, AVX-512 {avx512}, AVX2 {avx2}, row {r} of {rows}");
                }
            }
        }
    }
}
