//! The best test of one cue on a set of rows (FFTrees' cue ranking).
//!
//! Numeric cues: every distinct value `t` is a candidate threshold, in both
//! directions `x > t` and `x <= t`. The values are sorted once per cue
//! (order-preserving u64 keys, positives and negatives apart) and one merged
//! scan gives the counts of every candidate. The best candidate maximises the
//! threshold goal, compared without division (`acc` as `hi + cr`, `bacc` as
//! `hi * N + cr * P` exactly; `wacc` and `cost` in float64); ties go to `>`
//! before `<=`, then to the smaller threshold (FFTrees' stable ordering of its
//! candidate table).
//!
//! Categorical cues: each level present is scored alone (`x = level`), the
//! levels are ordered by that score (ties: smaller code first), and the best
//! prefix of that order is the set (ties: the smaller set).
//!
//! Rows whose value is missing are left out of a cue's counts.

use crate::goal::{Counts, Goal, Scoring};
use crate::tree::{Cue, CueKind, Test};

/// The best test of a cue, with its counts on the rows it was ranked on.
#[derive(Clone, Debug, PartialEq)]
pub struct CueStat {
    pub test: Test,
    pub counts: Counts,
}

/// Buffers reused across cues.
#[derive(Default)]
pub struct Scratch {
    pos: Vec<u64>,
    neg: Vec<u64>,
}

/// Rank one cue on `rows` (all rows when `None`); `None` when every value is missing.
pub fn rank_cue(
    cue: &Cue,
    rows: Option<&[u32]>,
    y: &[bool],
    goal: Goal,
    scoring: &Scoring,
    scratch: &mut Scratch,
) -> Option<CueStat> {
    match cue.kind {
        CueKind::Numeric => rank_numeric(cue.values, rows, y, goal, scoring, scratch),
        CueKind::Categorical { n_levels } => rank_categorical(cue.values, n_levels, rows, y, goal, scoring),
    }
}

/// A goal value to compare: NaN (an undefined rate) loses to any number.
fn cmp_key(v: f64) -> f64 {
    if v.is_nan() {
        f64::NEG_INFINITY
    } else {
        v
    }
}

fn for_rows(n: usize, rows: Option<&[u32]>, mut f: impl FnMut(usize)) {
    match rows {
        Some(rows) => rows.iter().for_each(|&r| f(r as usize)),
        None => (0..n).for_each(f),
    }
}

/// Order-preserving key of a non-NaN float (`-0.0` is keyed as `0.0`).
#[inline]
fn key(v: f64) -> u64 {
    let bits = (v + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

#[inline]
fn unkey(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// A value ordered as the goal is on counts with `p` positives and `n`
/// negatives, without division (the scan's hot loop).
#[inline]
fn scan_score(goal: Goal, scoring: &Scoring, c: &Counts, p: u64, n: u64) -> f64 {
    match goal {
        Goal::Acc => (c.hi + c.cr) as f64,
        Goal::Bacc => (c.hi * n + c.cr * p) as f64,
        Goal::Wacc => scoring.sens_w * (c.hi * n) as f64 + (1.0 - scoring.sens_w) * (c.cr * p) as f64,
        Goal::Cost => -scoring.costs.total(c),
    }
}

fn rank_numeric(
    values: &[f64],
    rows: Option<&[u32]>,
    y: &[bool],
    goal: Goal,
    scoring: &Scoring,
    s: &mut Scratch,
) -> Option<CueStat> {
    // Branch-free split by label: each key is written to both buffers and
    // only its own buffer's length moves on (labels are unpredictable).
    let len = rows.map_or(values.len(), <[u32]>::len);
    s.pos.resize(len, 0);
    s.neg.resize(len, 0);
    let (mut np, mut nn) = (0, 0);
    for_rows(values.len(), rows, |r| {
        let v = values[r];
        if !v.is_nan() {
            let (k, pos) = (key(v), y[r]);
            s.pos[np] = k;
            s.neg[nn] = k;
            np += usize::from(pos);
            nn += usize::from(!pos);
        }
    });
    s.pos.truncate(np);
    s.neg.truncate(nn);
    // Measured on 500k normal keys: the standard library's unstable sort beat
    // 8-, 11- and 16-bit LSD radix sorts (docs/performance.md).
    s.pos.sort_unstable();
    s.neg.sort_unstable();
    let (pos, neg) = (&s.pos, &s.neg);
    let (np, nn) = (pos.len(), neg.len());
    if np + nn == 0 {
        return None;
    }
    // (goal, threshold key, counts) of the best `>` and `<=` candidates.
    let mut best: [Option<(f64, u64, Counts)>; 2] = [None, None];
    let (mut i, mut j) = (0, 0);
    while i < np || j < nn {
        let t = match (pos.get(i), neg.get(j)) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) => a,
            (None, Some(&b)) => b,
            (None, None) => unreachable!(),
        };
        while i < np && pos[i] == t {
            i += 1;
        }
        while j < nn && neg[j] == t {
            j += 1;
        }
        let (pl, nl) = (i as u64, j as u64);
        let (pt, nt) = (np as u64, nn as u64);
        let candidates = [
            Counts { hi: pt - pl, fa: nt - nl, mi: pl, cr: nl },
            Counts { hi: pl, fa: nl, mi: pt - pl, cr: nt - nl },
        ];
        for (b, c) in best.iter_mut().zip(candidates) {
            let v = scan_score(goal, scoring, &c, pt, nt);
            if b.as_ref().is_none_or(|(bv, _, _)| v > *bv) {
                *b = Some((v, t, c));
            }
        }
    }
    let [gt, le] = best;
    let ((gv, gt_key, gc), (lv, le_key, lc)) = (gt?, le?);
    Some(if gv >= lv {
        CueStat { test: Test::Greater { threshold: unkey(gt_key) }, counts: gc }
    } else {
        CueStat { test: Test::LessEqual { threshold: unkey(le_key) }, counts: lc }
    })
}

fn rank_categorical(
    values: &[f64],
    n_levels: u32,
    rows: Option<&[u32]>,
    y: &[bool],
    goal: Goal,
    scoring: &Scoring,
) -> Option<CueStat> {
    let k = n_levels as usize;
    let (mut pos, mut neg) = (vec![0u64; k], vec![0u64; k]);
    for_rows(values.len(), rows, |r| {
        let v = values[r];
        // Codes come from the binding: 0..n_levels, or NaN for missing.
        if v >= 0.0 && (v as usize) < k {
            if y[r] {
                pos[v as usize] += 1;
            } else {
                neg[v as usize] += 1;
            }
        }
    });
    let (pt, nt) = (pos.iter().sum::<u64>(), neg.iter().sum::<u64>());
    if pt + nt == 0 {
        return None;
    }
    let alone = |p: u64, n: u64| Counts { hi: p, fa: n, mi: pt - p, cr: nt - n };
    let mut order: Vec<(usize, f64)> = (0..k)
        .filter(|&c| pos[c] + neg[c] > 0)
        .map(|c| (c, cmp_key(scoring.value(goal, &alone(pos[c], neg[c]), 0.0))))
        .collect();
    // Stable: equal scores keep the smaller code first.
    order.sort_by(|a, b| b.1.total_cmp(&a.1));
    let (mut hi, mut fa) = (0, 0);
    let mut best: Option<(f64, usize, Counts)> = None;
    for (m, &(c, _)) in order.iter().enumerate() {
        hi += pos[c];
        fa += neg[c];
        let counts = Counts { hi, fa, mi: pt - hi, cr: nt - fa };
        let v = cmp_key(scoring.value(goal, &counts, 0.0));
        if best.as_ref().is_none_or(|(bv, _, _)| v > *bv) {
            best = Some((v, m + 1, counts));
        }
    }
    let (_, m, counts) = best?;
    Some(CueStat { test: Test::In { codes: order[..m].iter().map(|&(c, _)| c as u32).collect() }, counts })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::goal::OutcomeCosts;

    const S: Scoring = Scoring { sens_w: 0.5, costs: OutcomeCosts { hi: 0.0, fa: 1.0, mi: 1.0, cr: 0.0 } };

    fn numeric(values: &[f64], y: &[bool], goal: Goal) -> Option<CueStat> {
        rank_numeric(values, None, y, goal, &S, &mut Scratch::default())
    }

    #[test]
    fn keys_order_floats_by_value() {
        let mut vals = vec![1.5, -2.0, 0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, 1e-300, -1e-300, 3.0];
        let mut keys: Vec<u64> = vals.iter().map(|&v| key(v)).collect();
        keys.sort_unstable();
        let got: Vec<f64> = keys.iter().map(|&k| unkey(k)).collect();
        vals.sort_by(|a, b| a.partial_cmp(b).unwrap());
        assert_eq!(got, vals);
        assert_eq!(key(0.0), key(-0.0));
        assert_eq!(unkey(key(-0.0)).to_bits(), 0.0f64.to_bits());
    }

    #[test]
    fn numeric_threshold_is_the_first_best_distinct_value() {
        // Positives are large: x > 2 separates perfectly.
        let x = [1.0, 2.0, 2.0, 3.0, 4.0, f64::NAN];
        let y = [false, false, false, true, true, true];
        let s = numeric(&x, &y, Goal::Bacc).unwrap();
        assert_eq!(s.test, Test::Greater { threshold: 2.0 });
        assert_eq!(s.counts, Counts { hi: 2, fa: 0, mi: 0, cr: 3 });
    }

    #[test]
    fn numeric_ties_go_to_greater_then_to_the_smaller_threshold() {
        // x > 1 and x <= 1 ... every candidate has bacc 0.5.
        let x = [1.0, 1.0, 2.0, 2.0];
        let y = [true, false, true, false];
        assert_eq!(numeric(&x, &y, Goal::Bacc).unwrap().test, Test::Greater { threshold: 1.0 });
        // Small values are positives: only `<=` separates.
        let y = [true, true, false, false];
        assert_eq!(numeric(&x, &y, Goal::Bacc).unwrap().test, Test::LessEqual { threshold: 1.0 });
    }

    #[test]
    fn all_missing_gives_none() {
        assert_eq!(numeric(&[f64::NAN, f64::NAN], &[true, false], Goal::Acc), None);
    }

    #[test]
    fn categorical_set_is_the_best_prefix_by_single_level_score() {
        // Alone (bacc): code 2 .875, code 0 .458, codes 1 and 3 .333; prefixes
        // {2} .875, {2, 0} .833, {2, 0, 1} .667: the set is {2}.
        let x = [0.0, 0.0, 2.0, 2.0, 2.0, 1.0, 1.0, 3.0, 3.0, 0.0, f64::NAN];
        let y = [true, false, true, true, true, false, false, false, false, false, true];
        let s = rank_categorical(&x, 4, None, &y, Goal::Bacc, &S).unwrap();
        assert_eq!(s.test, Test::In { codes: vec![2] });
        assert_eq!(s.counts, Counts { hi: 3, fa: 0, mi: 1, cr: 6 });
        // Accuracy: {2} .8, {2, 0} .7: still {2}; with sens_w 1 (wacc) the
        // best prefix is the first reaching sens 1: {2, 0}.
        let w = Scoring { sens_w: 1.0, ..S };
        let s = rank_categorical(&x, 4, None, &y, Goal::Wacc, &w).unwrap();
        assert_eq!(s.test, Test::In { codes: vec![2, 0] });
    }
}
