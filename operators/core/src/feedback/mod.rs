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
//! - the watermark is the largest accepted label time; the predictions of a whole
//!   expiry bucket `b` expire once `(b + 1) * bucket + ttl <= watermark`
//!   ([`FeedbackJoin`] keeps the buckets in time order, so expiry never scans
//!   the pending table); their ids are kept as tombstones for `late_horizon`
//!   more, so a label for them is late, not an **orphan**;
//! - a prediction id seen again while pending replaces the earlier row
//!   (counted as `duplicates` in the window of the batch's first row);
//! - the first label of an event wins: ids that got a label (joined or late)
//!   are remembered as long as tombstones, and a second label for one is a
//!   **duplicate label** (counted in the prediction's window, not joined);
//! - a label beyond `max_future_skew` ahead of the wall clock (or beyond
//!   `max_watermark_jump` ahead of the watermark) is **future**: refused (the
//!   host dead-letters it), counted, and it moves nothing; a prediction beyond
//!   `max_future_skew` likewise (see [`FeedbackJoin::add_labels`]);
//! - a joined pair whose score (or label) is NaN or infinite is counted as
//!   `non_finite_scores` (`non_finite_labels`) and left out of every quality
//!   sum, so one bad score cannot turn a window's log loss into NaN.
//!
//! Ids are `int64` (any integer column is cast) or strings, each kind in its
//! own table; an integer id never matches a string id. Quality sums are
//! accumulated with numpy's pairwise summation order ([`pairwise_sum`]), so
//! the numbers equal the former numpy implementation's bit for bit.

mod ids;
pub(crate) mod persist;
mod quality;
mod state;
#[cfg(test)]
mod tests;

pub use ids::IdColumn;
pub use quality::{metric_names, pairwise_sum, Window};
pub use state::{wall_clock_ms, Feedback, FeedbackJoin, INITIAL_WATERMARK};

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
    /// How far ahead of the wall clock (ms since the Unix epoch) an event
    /// time may be; `None`: no wall-clock cap (time columns in other units).
    pub max_future_skew: Option<i64>,
    /// How far ahead of the watermark one label may move it; `None`: no cap.
    pub max_watermark_jump: Option<i64>,
}

/// The default `max_future_skew`: one hour (in ms). Clocks of producers are
/// seconds apart, not hours; a label stamped further ahead is a bad clock or
/// bad data, and letting it through would expire every pending prediction.
pub const DEFAULT_MAX_FUTURE_SKEW: i64 = 3_600_000;

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
            max_future_skew: Some(DEFAULT_MAX_FUTURE_SKEW),
            max_watermark_jump: None,
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
        for (name, cap) in [("max_future_skew", self.max_future_skew), ("max_watermark_jump", self.max_watermark_jump)] {
            if cap.is_some_and(|c| c < 0) {
                return bad(format!("{name} ({}) must not be negative", cap.unwrap_or(0)));
            }
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
