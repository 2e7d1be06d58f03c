//! The 2×2 outcome counts of a binary decision rule and the goals an FFT is
//! built to maximise (FFTrees' `acc`, `bacc`, `wacc` and `cost`).

use serde::{Deserialize, Serialize};

/// Outcome counts: hits, false alarms, misses, correct rejections.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub hi: u64,
    pub fa: u64,
    pub mi: u64,
    pub cr: u64,
}

impl Counts {
    pub fn n(&self) -> u64 {
        self.hi + self.fa + self.mi + self.cr
    }
    /// Sensitivity `hi / (hi + mi)` (NaN without positives).
    pub fn sens(&self) -> f64 {
        ratio(self.hi, self.hi + self.mi)
    }
    /// Specificity `cr / (cr + fa)` (NaN without negatives).
    pub fn spec(&self) -> f64 {
        ratio(self.cr, self.cr + self.fa)
    }
    /// Positive predictive value `hi / (hi + fa)`.
    pub fn ppv(&self) -> f64 {
        ratio(self.hi, self.hi + self.fa)
    }
    /// Negative predictive value `cr / (cr + mi)`.
    pub fn npv(&self) -> f64 {
        ratio(self.cr, self.cr + self.mi)
    }
    pub fn acc(&self) -> f64 {
        ratio(self.hi + self.cr, self.n())
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / b as f64
}

/// What a threshold, a cue or a tree is chosen to maximise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Goal {
    /// Accuracy.
    Acc,
    /// Balanced accuracy `(sens + spec) / 2`.
    Bacc,
    /// Weighted accuracy `sens_w * sens + (1 - sens_w) * spec`.
    Wacc,
    /// Minus the mean cost per case (outcome costs plus the costs of the cues looked up).
    Cost,
}

impl Goal {
    pub fn parse(s: &str) -> Option<Goal> {
        match s {
            "acc" => Some(Goal::Acc),
            "bacc" => Some(Goal::Bacc),
            "wacc" => Some(Goal::Wacc),
            "cost" => Some(Goal::Cost),
            _ => None,
        }
    }

    /// The best value the goal can reach: a tree that reaches it stops growing.
    pub fn perfect(self) -> f64 {
        match self {
            Goal::Cost => 0.0,
            _ => 1.0,
        }
    }
}

/// Costs of the four outcomes, in one currency (FFTrees' `cost.outcomes`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct OutcomeCosts {
    pub hi: f64,
    pub fa: f64,
    pub mi: f64,
    pub cr: f64,
}

impl Default for OutcomeCosts {
    fn default() -> Self {
        OutcomeCosts { hi: 0.0, fa: 1.0, mi: 1.0, cr: 0.0 }
    }
}

impl OutcomeCosts {
    pub fn total(&self, c: &Counts) -> f64 {
        c.hi as f64 * self.hi + c.fa as f64 * self.fa + c.mi as f64 * self.mi + c.cr as f64 * self.cr
    }
}

/// Everything a goal's value depends on besides the counts.
#[derive(Clone, Copy, Debug)]
pub struct Scoring {
    pub sens_w: f64,
    pub costs: OutcomeCosts,
}

impl Scoring {
    /// The goal's value, higher is better. `cue_cost` is the total cost of
    /// cue look-ups over the counted cases (`Cost` only). NaN when a rate is
    /// undefined (no positives or no negatives).
    pub fn value(&self, goal: Goal, c: &Counts, cue_cost: f64) -> f64 {
        match goal {
            Goal::Acc => c.acc(),
            Goal::Bacc => (c.sens() + c.spec()) / 2.0,
            Goal::Wacc => c.sens() * self.sens_w + c.spec() * (1.0 - self.sens_w),
            Goal::Cost => -(self.costs.total(c) + cue_cost) / c.n() as f64,
        }
    }
}

/// Two goal values are tied when they are this close (FFTrees compares cue
/// goals with R's `dplyr::near`, whose tolerance is the square root of the
/// double epsilon).
pub const NEAR: f64 = 1.4901161193847656e-8;

/// Index of the best value: the first whose value is within [`NEAR`] of the
/// maximum (NaN counts as no value; all NaN gives the first). `None` when empty.
pub fn first_near_max(values: impl Iterator<Item = f64> + Clone) -> Option<usize> {
    let max = values.clone().filter(|v| !v.is_nan()).fold(f64::NEG_INFINITY, f64::max);
    let mut any = false;
    for (i, v) in values.enumerate() {
        any = true;
        if !v.is_nan() && (max - v).abs() <= NEAR || max == f64::NEG_INFINITY {
            return Some(i);
        }
    }
    if any {
        Some(0)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goals_on_counts() {
        let c = Counts { hi: 3, fa: 1, mi: 1, cr: 5 };
        let s = Scoring { sens_w: 0.8, costs: OutcomeCosts { hi: 0.0, fa: 2.0, mi: 10.0, cr: 0.0 } };
        assert_eq!(s.value(Goal::Acc, &c, 0.0), 0.8);
        assert_eq!(s.value(Goal::Bacc, &c, 0.0), (0.75 + 5.0 / 6.0) / 2.0);
        assert_eq!(s.value(Goal::Wacc, &c, 0.0), 0.75 * 0.8 + 5.0 / 6.0 * (1.0 - 0.8));
        assert_eq!(s.value(Goal::Cost, &c, 3.0), -(2.0 + 10.0 + 3.0) / 10.0);
    }

    #[test]
    fn first_near_max_takes_the_first_of_ties_and_skips_nan() {
        assert_eq!(first_near_max([0.5, f64::NAN, 0.7, 0.7 + 1e-12].into_iter()), Some(2));
        assert_eq!(first_near_max([f64::NAN, f64::NAN].into_iter()), Some(0));
        assert_eq!(first_near_max(std::iter::empty()), None);
    }
}
