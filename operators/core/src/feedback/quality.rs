//! Quality sums per prediction window, in numpy's summation order.

use super::{Config, Task};

/// Counts every window has, in output order.
pub const COUNTS: [&str; 11] = [
    "predictions",
    "labeled",
    "expired",
    "late_labels",
    "orphan_labels",
    "duplicates",
    "duplicate_labels",
    "non_finite_scores",
    "non_finite_labels",
    "future_labels",
    "future_predictions",
];
const BINARY: [&str; 8] = ["tp", "fp", "tn", "fn", "pos", "neg", "logloss_sum", "brier_sum"];
const REGRESSION: [&str; 3] = ["abs_err_sum", "sq_err_sum", "label_sum"];
const LOG_EPS: f64 = 1e-15;

// Indexes into `Window::sums`.
pub(crate) const PREDICTIONS: usize = 0;
pub(crate) const LABELED: usize = 1;
pub(crate) const EXPIRED: usize = 2;
pub(crate) const LATE: usize = 3;
pub(crate) const ORPHANS: usize = 4;
pub(crate) const DUPLICATES: usize = 5;
pub(crate) const DUPLICATE_LABELS: usize = 6;
const NON_FINITE_SCORES: usize = 7;
const NON_FINITE_LABELS: usize = 8;
pub(crate) const FUTURE_LABELS: usize = 9;
pub(crate) const FUTURE_PREDICTIONS: usize = 10;
const TP: usize = 11;
const FP: usize = 12;
const TN: usize = 13;
const FN: usize = 14;
const POS: usize = 15;
const NEG: usize = 16;
const LOGLOSS: usize = 17;
const BRIER: usize = 18;
const ABS_ERR: usize = 11;
const SQ_ERR: usize = 12;
const LABEL_SUM: usize = 13;

/// The metric names of a task's windows, in the order of [`Window::sums`].
pub fn metric_names(task: Task) -> Vec<&'static str> {
    let extra: &[&str] = match task {
        Task::Binary => &BINARY,
        Task::Regression => &REGRESSION,
    };
    COUNTS.iter().chain(extra).copied().collect()
}

/// The sum of `values` as numpy's `ndarray.sum()` computes it for a contiguous
/// float64 array: pairwise over blocks of at most 128, eight accumulators
/// inside a block. The same order gives the same bits.
pub fn pairwise_sum(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 8 {
        let mut res = 0.0;
        for v in values {
            res += v;
        }
        res
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&values[..8]);
        let whole = n - n % 8;
        let mut i = 8;
        while i < whole {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += values[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for v in &values[whole..] {
            res += v;
        }
        res
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        pairwise_sum(&values[..n2]) + pairwise_sum(&values[n2..])
    }
}

/// One window's sums (counts as floats, like every metric) and, for binary
/// tasks, its per-class score histograms.
#[derive(Clone, Debug, PartialEq)]
pub struct Window {
    /// In the order of [`metric_names`].
    pub sums: Vec<f64>,
    /// `hist_bins` counts of negatives, then `hist_bins` of positives (empty for regression).
    pub hist: Vec<i64>,
}

impl Window {
    pub(crate) fn new(config: &Config) -> Self {
        let (metrics, hist) = match config.task {
            Task::Binary => (COUNTS.len() + BINARY.len(), 2 * config.hist_bins),
            Task::Regression => (COUNTS.len() + REGRESSION.len(), 0),
        };
        Self { sums: vec![0.0; metrics], hist: vec![0; hist] }
    }

    /// `(metric, value)` rows: every sum, then the non-zero histogram bins
    /// (`hist_neg_000`…, then `hist_pos_000`…).
    pub fn rows(&self, task: Task) -> Vec<(String, f64)> {
        let mut out: Vec<(String, f64)> =
            self.sums.iter().zip(metric_names(task)).map(|(v, k)| (k.to_owned(), *v)).collect();
        let bins = self.hist.len() / 2;
        for (class, counts) in [("neg", &self.hist[..bins]), ("pos", &self.hist[bins..])] {
            for (i, n) in counts.iter().enumerate().filter(|(_, n)| **n != 0) {
                out.push((format!("hist_{class}_{i:03}"), *n as f64));
            }
        }
        out
    }

    /// Revise the window with joined pairs (`score`, `label`), in row order:
    /// every pair is `labeled`; a pair with a NaN or infinite score (else
    /// label) is counted as `non_finite_scores` (`non_finite_labels`) and left
    /// out of the sums and histograms.
    pub(crate) fn add_pairs(&mut self, config: &Config, score: &[f64], label: &[f64]) {
        self.sums[LABELED] += score.len() as f64;
        if score.iter().chain(label).all(|v| v.is_finite()) {
            return self.add_finite(config, score, label);
        }
        let (mut s_ok, mut y_ok) = (Vec::with_capacity(score.len()), Vec::with_capacity(score.len()));
        for (&p, &y) in score.iter().zip(label) {
            if !p.is_finite() {
                self.sums[NON_FINITE_SCORES] += 1.0;
            } else if !y.is_finite() {
                self.sums[NON_FINITE_LABELS] += 1.0;
            } else {
                s_ok.push(p);
                y_ok.push(y);
            }
        }
        self.add_finite(config, &s_ok, &y_ok);
    }

    /// The sums of finite pairs.
    fn add_finite(&mut self, config: &Config, score: &[f64], label: &[f64]) {
        let s = &mut self.sums;
        match config.task {
            Task::Regression => {
                let err: Vec<f64> = score.iter().zip(label).map(|(p, y)| p - y).collect();
                let abs: Vec<f64> = err.iter().map(|e| e.abs()).collect();
                let sq: Vec<f64> = err.iter().map(|e| e * e).collect();
                s[ABS_ERR] += 0.0 + pairwise_sum(&abs);
                s[SQ_ERR] += 0.0 + pairwise_sum(&sq);
                s[LABEL_SUM] += 0.0 + pairwise_sum(label);
            }
            Task::Binary => {
                let bins = config.hist_bins;
                let mut counts = [0u64; 4]; // tp, fp, tn, fn
                let mut logloss = Vec::with_capacity(score.len());
                let mut brier = Vec::with_capacity(score.len());
                for (&p, &y) in score.iter().zip(label) {
                    let pos = y > 0.5;
                    let hat = p >= config.threshold;
                    counts[match (pos, hat) {
                        (true, true) => 0,
                        (false, true) => 1,
                        (false, false) => 2,
                        (true, false) => 3,
                    }] += 1;
                    // numpy's clip, written out as numpy does it.
                    #[allow(clippy::manual_clamp)]
                    let pc = if p < LOG_EPS {
                        LOG_EPS
                    } else if p > 1.0 - LOG_EPS {
                        1.0 - LOG_EPS
                    } else {
                        p
                    };
                    logloss.push(-(if pos { pc.ln() } else { (-pc).ln_1p() }));
                    let d = p - if pos { 1.0 } else { 0.0 };
                    brier.push(d * d);
                    self.hist[usize::from(pos) * bins + hist_bin(p, bins)] += 1;
                }
                let n_pos = counts[0] + counts[3];
                s[TP] += counts[0] as f64;
                s[FP] += counts[1] as f64;
                s[FN] += counts[3] as f64;
                s[TN] += counts[2] as f64;
                s[POS] += n_pos as f64;
                s[NEG] += (score.len() as u64 - n_pos) as f64;
                s[LOGLOSS] += 0.0 + pairwise_sum(&logloss);
                s[BRIER] += 0.0 + pairwise_sum(&brier);
            }
        }
    }
}

/// numpy's `clip((p * bins).astype(int64), 0, bins - 1)` on x86-64, where a
/// NaN or out-of-range float converts to `i64::MIN`.
fn hist_bin(p: f64, bins: usize) -> usize {
    let v = p * bins as f64;
    let i = if v.is_nan() || !(-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&v) {
        i64::MIN
    } else {
        v as i64
    };
    i.clamp(0, bins as i64 - 1) as usize
}

/// Counts per window start, gathered a batch at a time (rows of a batch are
/// mostly in a few windows, so the last start is checked first).
#[derive(Default)]
pub(crate) struct Tally {
    counts: Vec<(i64, u64)>,
}

impl Tally {
    pub(crate) fn add(&mut self, start: i64) {
        match self.counts.last_mut() {
            Some((s, n)) if *s == start => *n += 1,
            _ => match self.counts.iter_mut().find(|(s, _)| *s == start) {
                Some((_, n)) => *n += 1,
                None => self.counts.push((start, 1)),
            },
        }
    }

    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (i64, u64)> + '_ {
        self.counts.drain(..)
    }
}
