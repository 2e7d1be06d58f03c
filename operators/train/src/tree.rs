//! A fitted fast-and-frugal tree: its levels, how a row is routed through
//! them, and the counts each level sees on the training data.
//!
//! Every level tests one cue; the test is phrased so that "true" points to
//! signal (`x > t`, `x <= t`, `x in {levels}`), as FFTrees phrases it. A level
//! whose exit is `Signal` decides signal for rows whose test is true and
//! passes the others on; a `Noise` exit decides noise for rows whose test is
//! false; the last level (`Both`) decides every row that reaches it.
//!
//! Missing values (NaN): a row whose cue value is missing never leaves at a
//! level that is not the last; at the last level it takes the decision of the
//! training majority (`missing_decision`: signal when positives outnumber
//! negatives in the training data, else noise), FFTrees' default
//! `fin_NA_pred = "majority"`.

use serde::{Deserialize, Serialize};

use crate::goal::Counts;

/// One data column: numbers, or codes `0..n_levels` of a categorical cue
/// (NaN is missing in both; a code outside the fitted sets never matches).
#[derive(Clone, Copy, Debug)]
pub struct Cue<'a> {
    pub values: &'a [f64],
    pub kind: CueKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CueKind {
    Numeric,
    Categorical { n_levels: u32 },
}

/// The test of a level; true points to signal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Test {
    /// `x > threshold`.
    Greater { threshold: f64 },
    /// `x <= threshold`.
    LessEqual { threshold: f64 },
    /// The value's code is one of `codes` (in the order they were added).
    In { codes: Vec<u32> },
}

impl Test {
    /// `None` for a missing value.
    #[inline]
    pub fn eval(&self, v: f64) -> Option<bool> {
        if v.is_nan() {
            return None;
        }
        Some(match self {
            Test::Greater { threshold } => v > *threshold,
            Test::LessEqual { threshold } => v <= *threshold,
            Test::In { codes } => codes.iter().any(|&c| c as f64 == v),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Exit {
    Noise,
    Signal,
    Both,
}

/// What happened to the training rows at one level.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LevelStats {
    /// Rows that reached the level.
    pub reached: u64,
    /// Positives and negatives that left at the level deciding signal.
    pub signal_pos: u64,
    pub signal_neg: u64,
    /// Positives and negatives that left at the level deciding noise.
    pub noise_pos: u64,
    pub noise_neg: u64,
    /// Outcomes of every row decided at this level or before (FFTrees' level stats).
    pub cumulative: Counts,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Level {
    pub cue: usize,
    pub test: Test,
    pub exit: Exit,
    /// Filled by [`Fft::finish`].
    #[serde(default)]
    pub stats: LevelStats,
}

/// A fitted tree. `p_signal` / `p_noise` are each level's exits' training
/// frequencies of the positive class (the probability `predict_proba`
/// reports); an exit no training row took has 1.0 (signal) or 0.0 (noise).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Fft {
    pub levels: Vec<Level>,
    pub missing_decision: bool,
    #[serde(default)]
    pub p_signal: Vec<f64>,
    #[serde(default)]
    pub p_noise: Vec<f64>,
}

/// Where a row left the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub level: usize,
    pub signal: bool,
}

impl Fft {
    /// Route one row (`value(cue)` reads its cue values).
    #[inline]
    pub fn route(&self, value: impl Fn(usize) -> f64) -> Outcome {
        let last = self.levels.len() - 1;
        for (k, level) in self.levels.iter().enumerate() {
            let t = level.test.eval(value(level.cue));
            let decided = match (level.exit, t) {
                (Exit::Both, Some(t)) => Some(t),
                (Exit::Both, None) => Some(self.missing_decision),
                (Exit::Signal, Some(true)) => Some(true),
                (Exit::Noise, Some(false)) => Some(false),
                _ => None,
            };
            if let Some(signal) = decided {
                return Outcome { level: k, signal };
            }
            debug_assert!(k < last, "the last level decides every row");
        }
        Outcome { level: last, signal: self.missing_decision }
    }

    /// Decisions (1 = signal) and probabilities of signal for every row.
    pub fn predict(&self, cues: &[&[f64]], label: &mut [u8], proba: &mut [f64]) {
        for (i, (l, p)) in label.iter_mut().zip(proba.iter_mut()).enumerate() {
            let o = self.route(|c| cues[c][i]);
            *l = o.signal as u8;
            *p = if o.signal { self.p_signal[o.level] } else { self.p_noise[o.level] };
        }
    }

    /// Fill each level's training stats and the exits' frequencies.
    pub fn finish(&mut self, cues: &[Cue], y: &[bool]) {
        let n_levels = self.levels.len();
        let mut stats = vec![LevelStats::default(); n_levels];
        for (i, &pos) in y.iter().enumerate() {
            let o = self.route(|c| cues[c].values[i]);
            for s in &mut stats[..=o.level] {
                s.reached += 1;
            }
            let s = &mut stats[o.level];
            match (o.signal, pos) {
                (true, true) => s.signal_pos += 1,
                (true, false) => s.signal_neg += 1,
                (false, true) => s.noise_pos += 1,
                (false, false) => s.noise_neg += 1,
            }
        }
        let mut cum = Counts::default();
        self.p_signal.clear();
        self.p_noise.clear();
        for (level, s) in self.levels.iter_mut().zip(&mut stats) {
            cum.hi += s.signal_pos;
            cum.fa += s.signal_neg;
            cum.mi += s.noise_pos;
            cum.cr += s.noise_neg;
            s.cumulative = cum;
            self.p_signal.push(frequency(s.signal_pos, s.signal_neg, 1.0));
            self.p_noise.push(frequency(s.noise_pos, s.noise_neg, 0.0));
            level.stats = s.clone();
        }
    }
}

fn frequency(pos: u64, neg: u64, empty: f64) -> f64 {
    if pos + neg == 0 {
        empty
    } else {
        pos as f64 / (pos + neg) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two_levels() -> Fft {
        Fft {
            levels: vec![
                Level { cue: 0, test: Test::Greater { threshold: 2.0 }, exit: Exit::Signal, stats: Default::default() },
                Level { cue: 1, test: Test::In { codes: vec![1] }, exit: Exit::Both, stats: Default::default() },
            ],
            missing_decision: false,
            p_signal: vec![],
            p_noise: vec![],
        }
    }

    #[test]
    fn missing_values_pass_on_and_take_the_majority_at_the_last_level() {
        let t = two_levels();
        assert_eq!(t.route(|c| [3.0, 0.0][c]), Outcome { level: 0, signal: true });
        assert_eq!(t.route(|c| [f64::NAN, 1.0][c]), Outcome { level: 1, signal: true });
        assert_eq!(t.route(|c| [1.0, f64::NAN][c]), Outcome { level: 1, signal: false });
        assert_eq!(t.route(|c| [1.0, 7.0][c]), Outcome { level: 1, signal: false });
    }

    #[test]
    fn finish_counts_exits_and_frequencies() {
        let mut t = two_levels();
        let x0 = [3.0, 3.0, 1.0, 1.0, 1.0];
        let x1 = [0.0, 0.0, 1.0, 1.0, 0.0];
        let y = [true, false, true, false, false];
        let cues = [Cue { values: &x0, kind: CueKind::Numeric }, Cue { values: &x1, kind: CueKind::Categorical { n_levels: 2 } }];
        t.finish(&cues, &y);
        assert_eq!(t.p_signal, vec![0.5, 0.5]);
        assert_eq!(t.p_noise, vec![0.0, 0.0]);
        assert_eq!(t.levels[0].stats.reached, 5);
        assert_eq!(t.levels[1].stats.reached, 3);
        assert_eq!(t.levels[1].stats.cumulative, Counts { hi: 2, fa: 2, mi: 0, cr: 1 });
    }
}
