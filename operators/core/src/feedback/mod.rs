//! The feedback join: labels that arrive later, joined onto the predictions
//! they belong to by event id, with the quality of each prediction window.
//!
//! Host-free state and per-batch logic behind `streamml.feedback.FeedbackJoin`
//! (whose module docstring states the event-time rules). In short, with `ttl`,
//! `window`, `bucket` and `late_horizon` in the unit of the time columns:
//!
//! - a label within `ttl` of its prediction is **joined** (a feedback row; the
//!   prediction's window is revised); one after the `ttl` while its prediction
//!   is still pending is **late** and the prediction **expired**;
//! - the watermark is the largest label time seen; the predictions of a whole
//!   expiry bucket `b` expire once `(b + 1) * bucket + ttl <= watermark`
//!   ([`FeedbackJoin`] keeps the buckets in time order, so expiry never scans
//!   the pending table); their ids are kept as tombstones for `late_horizon`
//!   more, so a label for them is late, not an **orphan**;
//! - a prediction id seen again while pending replaces the earlier row
//!   (counted as `duplicates` in the window of the batch's first row).
//!
//! Ids are `int64` (any integer column is cast) or strings, each kind in its
//! own table; an integer id never matches a string id. Quality sums are
//! accumulated with numpy's pairwise summation order ([`pairwise_sum`]), so
//! the numbers equal the former numpy implementation's bit for bit.

mod ids;
mod persist;
mod quality;
mod state;
#[cfg(test)]
mod tests;

pub use ids::IdColumn;
pub use quality::{metric_names, pairwise_sum, Window};
pub use state::{Feedback, FeedbackJoin, INITIAL_WATERMARK};

/// What the scores and labels are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    /// Score: the probability of class 1; label 0/1.
    Binary,
    /// Score: the predicted value; label the true value.
    Regression,
}

/// The join's settings (all times in the unit of the time columns).
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub ttl: i64,
    pub window: i64,
    pub task: Task,
    pub threshold: f64,
    pub hist_bins: usize,
    pub late_horizon: i64,
    pub bucket: i64,
}

impl Config {
    /// The defaults for `ttl` and `window`: threshold 0.5, 200 histogram bins,
    /// `late_horizon = ttl`, `bucket = max(1, ttl / 8)`.
    pub fn new(ttl: i64, window: i64, task: Task) -> Result<Self, FeedbackError> {
        let config = Self {
            ttl,
            window,
            task,
            threshold: 0.5,
            hist_bins: 200,
            late_horizon: ttl,
            bucket: (ttl / 8).max(1),
        };
        config.validate()?;
        Ok(config)
    }

    /// Refuse settings the join cannot work with.
    pub fn validate(&self) -> Result<(), FeedbackError> {
        let bad = |msg: String| Err(FeedbackError::Config(msg));
        if self.ttl <= 0 || self.window <= 0 {
            return bad(format!("ttl ({}) and window ({}) must be positive", self.ttl, self.window));
        }
        if self.bucket <= 0 {
            return bad(format!("bucket ({}) must be positive", self.bucket));
        }
        if self.late_horizon < 0 {
            return bad(format!("late_horizon ({}) must not be negative", self.late_horizon));
        }
        if self.hist_bins == 0 || self.hist_bins > 1 << 20 {
            return bad(format!("hist_bins ({}) must be between 1 and 1048576", self.hist_bins));
        }
        Ok(())
    }
}

/// Why a batch or a saved state was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FeedbackError {
    #[error("feedback join: {what} field '{field}' is {got}; expected an integer or a string id")]
    IdType { what: &'static str, field: String, got: String },
    #[error("feedback join: {what} field '{field}' has {count} null id(s); every row needs one")]
    NullIds { what: &'static str, field: String, count: usize },
    #[error("feedback join: {what} have {ids} id(s) but {values} {column} value(s); the columns must have one value per row")]
    Length { what: &'static str, column: &'static str, ids: usize, values: usize },
    #[error("feedback join: {0}")]
    Config(String),
    #[error("feedback join: the saved state cannot be read: {0}; it must come from FeedbackJoin state bytes of this version")]
    State(String),
}
