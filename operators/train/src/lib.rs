//! Model classes streamml trains itself. Today: fast-and-frugal trees (FFTs),
//! the construction algorithms of the R package FFTrees (Phillips, Neth,
//! Woike & Gaissmaier, 2017) reimplemented from their description.
//!
//! A host-free crate: the Python binding (`operators/python/src/fft.rs`)
//! hands it columns and labels and gets a [`Fft`] back; the fitted tree is
//! plain data (serde) that `streamml.compile` turns into the tree IR.
//!
//! ```
//! use streamml_train::{fit, Algorithm, Cue, CueKind, Goal, OutcomeCosts, Params};
//! let x = [1.0, 2.0, 3.0, 4.0];
//! let y = [false, false, true, true];
//! let params = Params {
//!     max_levels: 2, algorithm: Algorithm::Ifan, goal: Goal::Bacc, goal_chase: Goal::Bacc,
//!     goal_threshold: Goal::Bacc, sens_w: 0.5, costs: OutcomeCosts::default(),
//!     cue_costs: vec![0.0], stopping_par: 0.1,
//! };
//! let tree = fit(&[Cue { values: &x, kind: CueKind::Numeric }], &y, &params).unwrap();
//! assert_eq!(tree.levels.len(), 1); // perfect after one level
//! ```

mod cuerank;
mod goal;
mod grow;
mod tree;

pub use cuerank::{rank_cue, CueStat, Scratch};
pub use goal::{Counts, Goal, OutcomeCosts, Scoring};
pub use grow::{fit, Algorithm, FitError, Params, MAX_LEVELS};
pub use tree::{Cue, CueKind, Exit, Fft, Level, LevelStats, Outcome, Test};

#[cfg(test)]
mod tests;
