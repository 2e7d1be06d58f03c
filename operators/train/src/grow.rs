//! Building a tree: FFTrees' fan algorithms (`ifan`, `dfan`) and Martignon's
//! `max` and `zigzag`.
//!
//! Fan algorithms grow one tree per exit structure (each of the first
//! `max_levels - 1` levels exits to noise or to signal; the last to both),
//! then keep the tree with the best training `goal`; ties go to the tree
//! whose exit structure comes first, counting level 1's exit as the lowest
//! bit (noise 0, signal 1): all-noise first. Growing a tree, each level takes
//! the cue whose own best test (see `cuerank`) has the best `goal_chase`
//! (cue cost included); cues within 1.5e-8 of the best are tied and the
//! first column wins.
//! - `ifan` ranks the cues once on all training rows and never repeats a cue.
//! - `dfan` ranks them again on the rows no level has decided yet, and may
//!   repeat a cue (with a new test).
//!
//! A tree stops growing (and its last level then exits both ways) when the
//! tree as it stands, with the current level exiting both ways, reaches the
//! perfect `goal_chase` (1, or cost 0); when no row is left; when every cue
//! is used (a level per cue); when fewer than `stopping_par` of the training
//! rows are left (FFTrees' "exemplars" rule); and, for `dfan`, when the rows
//! left are all of one class.
//!
//! `max` and `zigzag` take each cue's best test on all rows, with its
//! positive and negative predictive values (ppv, npv; undefined counts as 0).
//! `max` orders cues by `max(ppv, npv)` (ties: column order) and exits to
//! signal where `ppv >= npv`, else to noise. `zigzag` starts with the cue of
//! highest `max(ppv, npv)` (exit as in `max`), then alternates: after a noise
//! exit the unused cue with the highest ppv exits to signal, after a signal
//! exit the one with the highest npv exits to noise (ties: column order).
//! FFTrees split numeric cues at the median for these two; here they use the
//! same optimised tests as the fan algorithms.

use crate::cuerank::{rank_cue, CueStat, Scratch};
use crate::goal::{first_near_max, Counts, Goal, OutcomeCosts, Scoring, NEAR};
use crate::tree::{Cue, Exit, Fft, Level, Test};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    Ifan,
    Dfan,
    Max,
    Zigzag,
}

impl Algorithm {
    pub fn parse(s: &str) -> Option<Algorithm> {
        match s {
            "ifan" => Some(Algorithm::Ifan),
            "dfan" => Some(Algorithm::Dfan),
            "max" => Some(Algorithm::Max),
            "zigzag" => Some(Algorithm::Zigzag),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Params {
    pub max_levels: usize,
    pub algorithm: Algorithm,
    /// Chooses among the grown trees.
    pub goal: Goal,
    /// Chooses each level's cue, and stops growth at its perfect value.
    pub goal_chase: Goal,
    /// Chooses each cue's threshold (or set of levels).
    pub goal_threshold: Goal,
    pub sens_w: f64,
    pub costs: OutcomeCosts,
    /// One per cue (0 where none).
    pub cue_costs: Vec<f64>,
    pub stopping_par: f64,
}

/// The most levels a tree may have.
pub const MAX_LEVELS: usize = 20;

/// Why a tree could not be fitted (messages for users: what was expected, what was received).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FitError(pub String);

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FitError {}

fn err<T>(msg: String) -> Result<T, FitError> {
    Err(FitError(msg))
}

/// Fit a tree to cues and a binary criterion (`true` = signal).
pub fn fit(cues: &[Cue], y: &[bool], p: &Params) -> Result<Fft, FitError> {
    check(cues, y, p)?;
    let scoring = Scoring { sens_w: p.sens_w, costs: p.costs };
    let mut scratch = Scratch::default();
    let full: Vec<Option<CueStat>> =
        cues.iter().map(|c| rank_cue(c, None, y, p.goal_threshold, &scoring, &mut scratch)).collect();
    if full.iter().all(Option::is_none) {
        return err("every value of every cue is missing; fit needs at least one cue with values".into());
    }
    let positives = y.iter().filter(|&&v| v).count();
    let missing_decision = 2 * positives > y.len();
    let mut grower = Grower { cues, y, p, scoring, scratch, full, missing_decision };
    let levels = match p.algorithm {
        Algorithm::Ifan | Algorithm::Dfan => grower.best_fan_tree(),
        Algorithm::Max => grower.max(),
        Algorithm::Zigzag => grower.zigzag(),
    };
    let mut tree = Fft { levels, missing_decision, p_signal: vec![], p_noise: vec![] };
    tree.finish(cues, y);
    Ok(tree)
}

fn check(cues: &[Cue], y: &[bool], p: &Params) -> Result<(), FitError> {
    if p.max_levels == 0 || p.max_levels > MAX_LEVELS {
        return err(format!(
            "max_levels must be between 1 and {MAX_LEVELS} (the fan algorithms grow 2^(max_levels - 1) trees); got {}",
            p.max_levels
        ));
    }
    if cues.is_empty() {
        return err("fit needs at least one cue (column); got none".into());
    }
    if let Some((j, c)) = cues.iter().enumerate().find(|(_, c)| c.values.len() != y.len()) {
        return err(format!("cue {j} has {} rows but y has {}; pass columns of equal length", c.values.len(), y.len()));
    }
    if p.cue_costs.len() != cues.len() {
        return err(format!("{} cue costs for {} cues; pass one per cue", p.cue_costs.len(), cues.len()));
    }
    let positives = y.iter().filter(|&&v| v).count();
    if positives == 0 || positives == y.len() {
        return err(format!(
            "y has a single class ({} rows, all {}); a fast-and-frugal tree needs both classes",
            y.len(),
            if positives == 0 { "noise" } else { "signal" }
        ));
    }
    Ok(())
}

struct Grower<'a> {
    cues: &'a [Cue<'a>],
    y: &'a [bool],
    p: &'a Params,
    scoring: Scoring,
    scratch: Scratch,
    full: Vec<Option<CueStat>>,
    missing_decision: bool,
}

/// A tree grown up to some level, and what is left to decide.
struct Branch {
    rows: Vec<u32>,
    decided: Counts,
    /// Total cost of the cue look-ups so far.
    cue_cost: f64,
    used: Vec<bool>,
    levels: Vec<Level>,
    /// The exits so far as bits (level 1 lowest, signal 1): the exit
    /// structures that continue with noise exits have the smallest number.
    structure: usize,
    /// Counts and cue cost of the tree if it ended at its last level (both ways).
    if_stopped: Option<(Counts, f64)>,
}

struct Grown {
    value: f64,
    structure: usize,
    levels: Vec<Level>,
}

impl Grower<'_> {
    fn chase_value(&self, cue: usize, s: &CueStat) -> f64 {
        let n = s.counts.n() as f64;
        self.scoring.value(self.p.goal_chase, &s.counts, self.p.cue_costs[cue] * n)
    }

    /// Grow the trees of every exit structure and keep the best. Structures
    /// that share their first exits share those levels, so the levels are
    /// grown depth-first, once per exit prefix.
    fn best_fan_tree(&mut self) -> Vec<Level> {
        let n = self.y.len();
        let root = Branch {
            rows: (0..n as u32).collect(),
            decided: Counts::default(),
            cue_cost: 0.0,
            used: vec![false; self.cues.len()],
            levels: Vec::new(),
            structure: 0,
            if_stopped: None,
        };
        let mut best: Option<Grown> = None;
        self.explore(root, &mut best);
        best.expect("the first level always has a cue").levels
    }

    /// Add the next level to a partly grown tree, for each exit it may take.
    fn explore(&mut self, b: Branch, best: &mut Option<Grown>) {
        let k = b.levels.len();
        let ranking = if self.p.algorithm == Algorithm::Dfan && k > 0 {
            let (y, goal, scoring) = (self.y, self.p.goal_threshold, self.scoring);
            self.cues.iter().map(|c| rank_cue(c, Some(&b.rows), y, goal, &scoring, &mut self.scratch)).collect()
        } else {
            self.full.clone()
        };
        let repeat = self.p.algorithm == Algorithm::Dfan;
        let chase: Vec<Option<f64>> = ranking
            .iter()
            .enumerate()
            .map(|(c, s)| match s {
                Some(s) if repeat || !b.used[c] => Some(self.chase_value(c, s)),
                _ => None,
            })
            .collect();
        let Some(cue) = pick(&chase) else {
            // No cue left: the tree ends at its previous level.
            let (counts, cost) = b.if_stopped.expect("the first level always has a cue");
            return self.offer(best, b.levels, b.structure, counts, cost);
        };
        let test = ranking[cue].as_ref().expect("picked cues are ranked").test.clone();
        let values = self.cues[cue].values;
        let outcomes: Vec<Option<bool>> = b.rows.iter().map(|&r| test.eval(values[r as usize])).collect();
        // The tree as it stands if this level exited both ways.
        let mut both = b.decided;
        for (&r, t) in b.rows.iter().zip(&outcomes) {
            add(&mut both, t.unwrap_or(self.missing_decision), self.y[r as usize]);
        }
        let cue_cost = b.cue_cost + self.p.cue_costs[cue] * b.rows.len() as f64;
        let perfect = (self.scoring.value(self.p.goal_chase, &both, cue_cost) - self.p.goal_chase.perfect()).abs() <= NEAR;
        let last = k + 1 == self.p.max_levels;
        let exits: &[Exit] = if last { &[Exit::Both] } else { &[Exit::Noise, Exit::Signal] };
        for &exit in exits {
            let mut decided = b.decided;
            let mut rows = Vec::new();
            for (&r, &t) in b.rows.iter().zip(&outcomes) {
                let pos = self.y[r as usize];
                match (exit, t) {
                    (Exit::Signal, Some(true)) => add(&mut decided, true, pos),
                    (Exit::Noise, Some(false)) => add(&mut decided, false, pos),
                    (Exit::Both, t) => add(&mut decided, t.unwrap_or(self.missing_decision), pos),
                    _ => rows.push(r),
                }
            }
            let mut levels = b.levels.clone();
            levels.push(Level { cue, test: test.clone(), exit, stats: Default::default() });
            let structure = b.structure | (usize::from(exit == Exit::Signal) << k);
            let one_class = rows.iter().all(|&r| self.y[r as usize]) || rows.iter().all(|&r| !self.y[r as usize]);
            let stop = last
                || perfect
                || rows.is_empty()
                || k + 1 == self.cues.len()
                || (rows.len() as f64) < self.p.stopping_par * self.y.len() as f64
                || (self.p.algorithm == Algorithm::Dfan && one_class);
            if stop {
                // The last level exits both ways: the tree is `both`.
                self.offer(best, levels, structure, both, cue_cost);
            } else {
                let mut used = b.used.clone();
                used[cue] = true;
                let next = Branch { rows, decided, cue_cost, used, levels, structure, if_stopped: Some((both, cue_cost)) };
                self.explore(next, best);
            }
        }
    }

    /// Keep a finished tree if its `goal` beats the best so far (ties: the
    /// smaller exit structure).
    fn offer(&self, best: &mut Option<Grown>, mut levels: Vec<Level>, structure: usize, counts: Counts, cost: f64) {
        if let Some(l) = levels.last_mut() {
            l.exit = Exit::Both;
        }
        let v = self.scoring.value(self.p.goal, &counts, cost);
        let value = if v.is_nan() { f64::NEG_INFINITY } else { v };
        let better = match best {
            None => true,
            Some(g) => value > g.value || (value == g.value && structure < g.structure),
        };
        if better {
            *best = Some(Grown { value, structure, levels });
        }
    }

    /// (cue, test, ppv, npv) of every cue with values, in column order.
    fn predictive_values(&self) -> Vec<(usize, Test, f64, f64)> {
        let zero_nan = |v: f64| if v.is_nan() { 0.0 } else { v };
        self.full
            .iter()
            .enumerate()
            .filter_map(|(c, s)| s.as_ref().map(|s| (c, s.test.clone(), zero_nan(s.counts.ppv()), zero_nan(s.counts.npv()))))
            .collect()
    }

    fn max(&self) -> Vec<Level> {
        let mut cues = self.predictive_values();
        cues.sort_by(|a, b| a.2.max(a.3).total_cmp(&b.2.max(b.3)).reverse());
        let mut levels: Vec<Level> = cues
            .into_iter()
            .take(self.p.max_levels)
            .map(|(cue, test, ppv, npv)| Level {
                cue,
                test,
                exit: if ppv >= npv { Exit::Signal } else { Exit::Noise },
                stats: Default::default(),
            })
            .collect();
        levels.last_mut().expect("a ranked cue").exit = Exit::Both;
        levels
    }

    fn zigzag(&self) -> Vec<Level> {
        let mut cues = self.predictive_values();
        let mut levels: Vec<Level> = Vec::new();
        while levels.len() < self.p.max_levels && !cues.is_empty() {
            let score = |c: &(usize, Test, f64, f64)| match levels.last().map(|l| l.exit) {
                None => c.2.max(c.3),
                Some(Exit::Noise) => c.2,
                _ => c.3,
            };
            let best = (0..cues.len()).fold(0, |b, i| if score(&cues[i]) > score(&cues[b]) { i } else { b });
            let exit = match levels.last().map(|l| l.exit) {
                None if cues[best].2 >= cues[best].3 => Exit::Signal,
                None => Exit::Noise,
                Some(Exit::Noise) => Exit::Signal,
                _ => Exit::Noise,
            };
            let (cue, test, _, _) = cues.remove(best);
            levels.push(Level { cue, test, exit, stats: Default::default() });
        }
        levels.last_mut().expect("a ranked cue").exit = Exit::Both;
        levels
    }
}

/// The first available cue whose value is within [`NEAR`] of the best (an
/// undefined value loses to any number).
fn pick(chase: &[Option<f64>]) -> Option<usize> {
    let available: Vec<(usize, f64)> = chase
        .iter()
        .enumerate()
        .filter_map(|(c, v)| v.map(|v| (c, if v.is_nan() { f64::NEG_INFINITY } else { v })))
        .collect();
    first_near_max(available.iter().map(|&(_, v)| v)).map(|i| available[i].0)
}

#[inline]
fn add(c: &mut Counts, signal: bool, pos: bool) {
    match (signal, pos) {
        (true, true) => c.hi += 1,
        (true, false) => c.fa += 1,
        (false, true) => c.mi += 1,
        (false, false) => c.cr += 1,
    }
}
