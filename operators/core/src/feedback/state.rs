//! The join state: pending predictions, tombstones, expiry buckets, windows.

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hash;
use std::sync::Arc;

use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use rustc_hash::FxHashMap;

use super::ids::IdColumn;
use super::quality::{
    Tally, Window, DUPLICATES, DUPLICATE_LABELS, EXPIRED, FUTURE_LABELS, FUTURE_PREDICTIONS, LATE, ORPHANS, PREDICTIONS,
};
use super::{Config, FeedbackError, Task};

/// The watermark before any label arrived.
pub const INITIAL_WATERMARK: i64 = -(1 << 62);

/// The wall clock in ms since the Unix epoch (what `max_future_skew` is measured from).
pub fn wall_clock_ms() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

/// The state of one kind of id (`int64` or string).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Keyed<K: Hash + Eq> {
    /// id -> (event time, score).
    pub(crate) pending: FxHashMap<K, (i64, f64)>,
    /// Expired ids -> their prediction's event time, kept for `late_horizon`.
    pub(crate) tombstones: FxHashMap<K, i64>,
    /// Expiry bucket -> the ids added in it (an id may be listed where it no
    /// longer is: joined, or replaced by a later row; those are skipped).
    pub(crate) pending_buckets: BTreeMap<i64, Vec<K>>,
    /// Expiry bucket -> the ids that expired from it.
    pub(crate) tomb_buckets: BTreeMap<i64, Vec<K>>,
    /// Expiry bucket of the prediction -> ids that got their label -> the
    /// prediction's event time: kept as long as tombstones, so that a second
    /// label is a duplicate, not an orphan; a bucket is forgotten whole.
    pub(crate) labelled: BTreeMap<i64, FxHashMap<K, i64>>,
}

impl<K: Hash + Eq> Default for Keyed<K> {
    fn default() -> Self {
        Self {
            pending: FxHashMap::default(),
            tombstones: FxHashMap::default(),
            pending_buckets: BTreeMap::new(),
            tomb_buckets: BTreeMap::new(),
            labelled: BTreeMap::new(),
        }
    }
}

/// What became of a label's id.
enum Hit {
    Pending(i64, f64),
    Expired(i64),
    Labelled(i64),
    Unknown,
}

impl<K: Hash + Eq + Clone> Keyed<K> {
    /// Add predictions; returns how many replaced a pending row.
    fn add(
        &mut self,
        keys: impl Iterator<Item = K>,
        times: &[i64],
        scores: &[f64],
        bucket: i64,
        live: &mut FxHashMap<i64, i64>,
    ) -> u64 {
        let mut duplicates = 0;
        let mut run: Vec<K> = Vec::new();
        let mut run_bucket = 0;
        for ((key, &t), &s) in keys.zip(times).zip(scores) {
            if self.pending.insert(key.clone(), (t, s)).is_some() {
                duplicates += 1;
            }
            let b = t.div_euclid(bucket);
            if b != run_bucket && !run.is_empty() {
                self.flush_run(run_bucket, &mut run, live);
            }
            run_bucket = b;
            run.push(key);
        }
        self.flush_run(run_bucket, &mut run, live);
        duplicates
    }

    fn flush_run(&mut self, b: i64, run: &mut Vec<K>, live: &mut FxHashMap<i64, i64>) {
        if !run.is_empty() {
            *live.entry(b).or_default() += run.len() as i64;
            self.pending_buckets.entry(b).or_default().append(run);
        }
    }

    /// What a label for `key` finds; a pending or expired id is now labelled.
    fn take<Q: Hash + Eq + ?Sized>(&mut self, key: &Q, bucket: i64, live: &FxHashMap<i64, i64>) -> Hit
    where
        K: Borrow<Q>,
    {
        let (k, t, hit) = if let Some((k, (t, s))) = self.pending.remove_entry(key) {
            (k, t, Hit::Pending(t, s))
        } else if let Some((k, t)) = self.tombstones.remove_entry(key) {
            (k, t, Hit::Expired(t))
        } else if let Some(&t) = self.labelled.values().rev().find_map(|ids| ids.get(key)) {
            return Hit::Labelled(t); // the newest bucket's, if the id was labelled again since
        } else {
            return Hit::Unknown;
        };
        let b = t.div_euclid(bucket);
        let ids = match self.labelled.last_entry() {
            Some(newest) if *newest.key() == b => newest.into_mut(), // labels come mostly in time order
            _ => self.labelled.entry(b).or_insert_with(|| {
                // Sized for the bucket's pending predictions (an upper bound), so it never rehashes.
                let n = live.get(&b).map_or(0, |&n| n.clamp(0, 1 << 16) as usize);
                FxHashMap::with_capacity_and_hasher(n, Default::default())
            }),
        };
        ids.insert(k, t);
        hit
    }

    /// Whether a prediction with `key` is pending, expired or labelled here.
    fn holds<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.pending.contains_key(key)
            || self.tombstones.contains_key(key)
            || self.labelled.values().any(|ids| ids.contains_key(key))
    }

    /// Remembered labelled ids (an id labelled again under a later bucket: the later one).
    fn labelled_ids(&self) -> impl Iterator<Item = (&K, i64)> {
        let mut seen: FxHashMap<&K, i64> = FxHashMap::default();
        for ids in self.labelled.values() {
            seen.extend(ids.iter().map(|(k, &t)| (k, t)));
        }
        seen.into_iter()
    }

    /// Expire the pending ids listed in bucket `b` that are still there and
    /// still in `b`; their event times go to `expired`.
    fn expire(&mut self, b: i64, ids: Vec<K>, bucket: i64, expired: &mut Vec<i64>) {
        let mut tombs = Vec::new();
        for id in ids {
            if let Some(&(t, _)) = self.pending.get(&id) {
                if t.div_euclid(bucket) == b {
                    self.pending.remove(&id);
                    self.tombstones.insert(id.clone(), t);
                    tombs.push(id);
                    expired.push(t);
                }
            }
        }
        if !tombs.is_empty() {
            self.tomb_buckets.entry(b).or_default().append(&mut tombs);
        }
    }

    /// Forget the tombstones and labelled ids of buckets before `forget`.
    fn forget(&mut self, forget: i64) {
        while let Some(entry) = self.tomb_buckets.first_entry() {
            if *entry.key() >= forget {
                break;
            }
            for id in entry.remove() {
                self.tombstones.remove(&id);
            }
        }
        while let Some(entry) = self.labelled.first_entry() {
            if *entry.key() >= forget {
                break;
            }
            entry.remove();
        }
    }
}

/// The join state and quality accounting of one shard.
#[derive(Clone, Debug, PartialEq)]
pub struct FeedbackJoin {
    pub(crate) config: Config,
    pub(crate) watermark: i64,
    pub(crate) ints: Keyed<i64>,
    pub(crate) strs: Keyed<Arc<str>>,
    /// Predictions still pending per expiry bucket (an upper bound: replaced
    /// rows are not subtracted); a bucket with none left expires unread.
    pub(crate) live: FxHashMap<i64, i64>,
    pub(crate) windows: BTreeMap<i64, Window>,
    pub(crate) touched: BTreeSet<i64>,
}

/// The joined rows of one label batch (`rows` index the label batch), and
/// the rows refused as future (`refused`, for the host's dead letters).
#[derive(Debug, Default, PartialEq)]
pub struct Feedback {
    pub rows: Vec<usize>,
    pub refused: Vec<usize>,
    pub event_time: Vec<i64>,
    pub label_time: Vec<i64>,
    pub delay: Vec<i64>,
    pub window_start: Vec<i64>,
    pub score: Vec<f64>,
    pub prediction: Vec<f64>,
    pub label: Vec<f64>,
}

impl Feedback {
    /// The rows as the store's feedback columns (`event_id` as a string).
    pub fn into_batch(self, ids: &IdColumn) -> RecordBatch {
        let int = |v: Vec<i64>| Arc::new(Int64Array::from(v)) as ArrayRef;
        let float = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
        let columns = vec![
            ids.strings(&self.rows),
            int(self.event_time),
            int(self.label_time),
            int(self.delay),
            int(self.window_start),
            float(self.score),
            float(self.prediction),
            float(self.label),
        ];
        RecordBatch::try_new(feedback_schema(), columns).expect("the columns match the schema")
    }
}

fn feedback_schema() -> Arc<Schema> {
    let f = |name: &str, t: DataType| Field::new(name, t, true);
    Arc::new(Schema::new(vec![
        f("event_id", DataType::Utf8),
        f("event_time", DataType::Int64),
        f("label_time", DataType::Int64),
        f("delay_ms", DataType::Int64),
        f("window_start", DataType::Int64),
        f("score", DataType::Float64),
        f("prediction", DataType::Float64),
        f("label", DataType::Float64),
    ]))
}

fn check_len(what: &'static str, column: &'static str, ids: usize, values: usize) -> Result<(), FeedbackError> {
    if ids == values {
        Ok(())
    } else {
        Err(FeedbackError::Length { what, column, ids, values })
    }
}

impl FeedbackJoin {
    /// An empty join.
    pub fn new(config: Config) -> Result<Self, FeedbackError> {
        config.validate()?;
        Ok(Self {
            config,
            watermark: INITIAL_WATERMARK,
            ints: Keyed::default(),
            strs: Keyed::default(),
            live: FxHashMap::default(),
            windows: BTreeMap::new(),
            touched: BTreeSet::new(),
        })
    }

    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The largest accepted label time.
    pub fn watermark(&self) -> i64 {
        self.watermark
    }

    /// The latest event time accepted at wall-clock time `now` (ms): a label
    /// after it is refused as future; a prediction is checked against the
    /// wall-clock cap only (predictions run ahead of the label stream).
    pub fn label_limit(&self, now: i64) -> i64 {
        let wall = self.prediction_limit(now);
        let jump = match self.config.max_watermark_jump {
            Some(j) if self.watermark != INITIAL_WATERMARK => self.watermark.saturating_add(j),
            _ => i64::MAX,
        };
        wall.min(jump)
    }

    /// The latest prediction event time accepted at wall-clock time `now` (ms).
    pub fn prediction_limit(&self, now: i64) -> i64 {
        self.config.max_future_skew.map_or(i64::MAX, |s| now.saturating_add(s))
    }

    /// Where refused events are counted: the window of the watermark (the
    /// label stream's time), or of `now` before the first label.
    fn arrival_window(&self, now: i64) -> i64 {
        self.start(if self.watermark == INITIAL_WATERMARK { now } else { self.watermark })
    }

    /// The quality windows by start.
    pub fn windows(&self) -> &BTreeMap<i64, Window> {
        &self.windows
    }

    /// Pending predictions: `(id, event time, score)` of the integer ids, then of the string ids.
    #[allow(clippy::type_complexity)]
    pub fn pending(&self) -> (Vec<(i64, i64, f64)>, Vec<(&str, i64, f64)>) {
        let ints = self.ints.pending.iter().map(|(k, &(t, s))| (*k, t, s)).collect();
        let strs = self.strs.pending.iter().map(|(k, &(t, s))| (&**k, t, s)).collect();
        (ints, strs)
    }

    /// Remembered labelled ids: `(id, event time)`, integer ids then string ids.
    #[allow(clippy::type_complexity)]
    pub fn labelled(&self) -> (Vec<(i64, i64)>, Vec<(&str, i64)>) {
        let ints = self.ints.labelled_ids().map(|(k, t)| (*k, t)).collect();
        let strs = self.strs.labelled_ids().map(|(k, t)| (&**k, t)).collect();
        (ints, strs)
    }

    /// How many labelled ids are remembered (an id labelled under two buckets counts twice).
    pub fn labelled_len(&self) -> usize {
        let ints: usize = self.ints.labelled.values().map(FxHashMap::len).sum();
        let strs: usize = self.strs.labelled.values().map(FxHashMap::len).sum();
        ints + strs
    }

    /// Remembered expired ids: `(id, event time)`, integer ids then string ids.
    #[allow(clippy::type_complexity)]
    pub fn tombstones(&self) -> (Vec<(i64, i64)>, Vec<(&str, i64)>) {
        let ints = self.ints.tombstones.iter().map(|(k, &t)| (*k, t)).collect();
        let strs = self.strs.tombstones.iter().map(|(k, &t)| (&**k, t)).collect();
        (ints, strs)
    }

    /// How many predictions are pending.
    pub fn pending_len(&self) -> usize {
        self.ints.pending.len() + self.strs.pending.len()
    }

    /// How many expired ids are remembered.
    pub fn tombstones_len(&self) -> usize {
        self.ints.tombstones.len() + self.strs.tombstones.len()
    }

    /// The start of the quality window of event time `t`.
    pub fn start_of(&self, t: i64) -> i64 {
        t.saturating_sub(t.rem_euclid(self.config.window))
    }

    fn start(&self, t: i64) -> i64 {
        self.start_of(t)
    }

    fn window(&mut self, start: i64) -> &mut Window {
        self.touched.insert(start);
        let config = &self.config;
        self.windows.entry(start).or_insert_with(|| Window::new(config))
    }

    fn apply(&mut self, metric: usize, tally: &mut Tally) {
        let counts: Vec<_> = tally.drain().collect();
        for (start, n) in counts {
            self.window(start).sums[metric] += n as f64;
        }
    }

    fn count_times(&mut self, metric: usize, times: &[i64]) {
        let mut tally = Tally::default();
        for &t in times {
            tally.add(self.start(t));
        }
        self.apply(metric, &mut tally);
    }

    /// The rows of `ids` whose prediction this join does not hold (pending,
    /// expired or labelled: remembered until `ttl + late_horizon` behind the
    /// watermark) and that no earlier row of `ids` repeats. A host that may
    /// read a prediction twice (a replayed topic, a champion's output on two
    /// topics) adds only these rows: the first copy wins, where
    /// [`FeedbackJoin::add_predictions`] would let a later copy replace it.
    pub fn unseen(&self, ids: &IdColumn) -> Vec<usize> {
        fn fresh<'a, K: Hash + Eq + Clone + Borrow<Q>, Q: Hash + Eq + ?Sized + 'a>(
            keyed: &Keyed<K>,
            ids: impl Iterator<Item = &'a Q>,
        ) -> Vec<usize> {
            let mut batch = rustc_hash::FxHashSet::default();
            ids.enumerate().filter(|&(_, id)| !keyed.holds(id) && batch.insert(id)).map(|(r, _)| r).collect()
        }
        match ids {
            IdColumn::Int(a) => fresh(&self.ints, a.values().iter()),
            IdColumn::Str(a) => fresh(&self.strs, a.iter().map(|s| s.unwrap_or(""))),
            IdColumn::LargeStr(a) => fresh(&self.strs, a.iter().map(|s| s.unwrap_or(""))),
        }
    }

    /// Add a batch of predictions (ids, event times, scores) to the pending
    /// state, at wall-clock time `now` (ms); returns the rows refused as
    /// future (after [`FeedbackJoin::prediction_limit`]), which are not added.
    pub fn add_predictions(
        &mut self,
        ids: &IdColumn,
        times: &[i64],
        scores: &[f64],
        now: i64,
    ) -> Result<Vec<usize>, FeedbackError> {
        check_len("predictions", "event time", ids.len(), times.len())?;
        check_len("predictions", "score", ids.len(), scores.len())?;
        let limit = self.prediction_limit(now);
        if times.iter().all(|&t| t <= limit) {
            self.add_accepted(ids, times, scores);
            return Ok(Vec::new());
        }
        let refused: Vec<usize> = (0..times.len()).filter(|&r| times[r] > limit).collect();
        let keep: Vec<usize> = (0..times.len()).filter(|&r| times[r] <= limit).collect();
        let kept_times: Vec<i64> = keep.iter().map(|&r| times[r]).collect();
        let kept_scores: Vec<f64> = keep.iter().map(|&r| scores[r]).collect();
        self.add_accepted(&ids.take(&keep), &kept_times, &kept_scores);
        let start = self.arrival_window(now);
        self.window(start).sums[FUTURE_PREDICTIONS] += refused.len() as f64;
        Ok(refused)
    }

    fn add_accepted(&mut self, ids: &IdColumn, times: &[i64], scores: &[f64]) {
        if ids.is_empty() {
            return;
        }
        let bucket = self.config.bucket;
        let live = &mut self.live;
        let duplicates = match ids {
            IdColumn::Int(a) => self.ints.add(a.values().iter().copied(), times, scores, bucket, live),
            IdColumn::Str(a) => self.strs.add(a.iter().map(|s| Arc::from(s.unwrap_or(""))), times, scores, bucket, live),
            IdColumn::LargeStr(a) => {
                self.strs.add(a.iter().map(|s| Arc::from(s.unwrap_or(""))), times, scores, bucket, live)
            }
        };
        self.count_times(PREDICTIONS, times);
        if duplicates > 0 {
            let start = self.start(times[0]);
            self.window(start).sums[DUPLICATES] += duplicates as f64;
        }
    }

    /// Join a batch of labels (ids, label times, labels) at wall-clock time
    /// `now` (ms); returns the joined rows and the rows refused as future
    /// (after [`FeedbackJoin::label_limit`]: not joined, not moving the watermark).
    pub fn add_labels(
        &mut self,
        ids: &IdColumn,
        label_times: &[i64],
        labels: &[f64],
        now: i64,
    ) -> Result<Feedback, FeedbackError> {
        check_len("labels", "label time", ids.len(), label_times.len())?;
        check_len("labels", "label", ids.len(), labels.len())?;
        let (ttl, bucket) = (self.config.ttl, self.config.bucket);
        let limit = self.label_limit(now);
        let arrival = self.arrival_window(now);
        let mut out = Feedback::default();
        let (mut expired, mut late, mut orphans) = (Tally::default(), Tally::default(), Tally::default());
        let (mut joined_buckets, mut duplicates) = (Tally::default(), Tally::default());
        let mut max_time = None;
        for (r, &lt) in label_times.iter().enumerate() {
            if lt > limit {
                out.refused.push(r);
                continue;
            }
            max_time = max_time.max(Some(lt));
            let hit = match ids {
                IdColumn::Int(a) => self.ints.take(&a.value(r), bucket, &self.live),
                IdColumn::Str(a) => self.strs.take(a.value(r), bucket, &self.live),
                IdColumn::LargeStr(a) => self.strs.take(a.value(r), bucket, &self.live),
            };
            match hit {
                Hit::Pending(t, s) => {
                    joined_buckets.add(t.div_euclid(bucket));
                    let delay = lt.saturating_sub(t);
                    if delay <= ttl {
                        out.rows.push(r);
                        out.event_time.push(t);
                        out.label_time.push(lt);
                        out.delay.push(delay);
                        out.score.push(s);
                        out.label.push(labels[r]);
                    } else {
                        // After the ttl: the prediction expires now, the label is late.
                        expired.add(self.start(t));
                        late.add(self.start(t));
                    }
                }
                Hit::Expired(t) => late.add(self.start(t)),
                Hit::Labelled(t) => duplicates.add(self.start(t)),
                Hit::Unknown => orphans.add(self.start(lt)),
            }
        }
        if !out.refused.is_empty() {
            self.window(arrival).sums[FUTURE_LABELS] += out.refused.len() as f64;
        }
        for (b, n) in joined_buckets.drain() {
            *self.live.entry(b).or_default() -= n as i64;
        }
        self.apply(EXPIRED, &mut expired);
        self.apply(LATE, &mut late);
        self.apply(ORPHANS, &mut orphans);
        self.apply(DUPLICATE_LABELS, &mut duplicates);
        out.window_start = out.event_time.iter().map(|&t| self.start(t)).collect();
        self.quality(&out);
        if let Some(t) = max_time {
            self.advance(t);
        }
        let threshold = self.config.threshold;
        out.prediction = match self.config.task {
            Task::Binary => out.score.iter().map(|&s| if s >= threshold { 1.0 } else { 0.0 }).collect(),
            Task::Regression => out.score.clone(),
        };
        Ok(out)
    }

    /// Revise the windows of the joined rows, each window's rows in row order.
    fn quality(&mut self, fb: &Feedback) {
        let starts = &fb.window_start;
        let mut distinct = Tally::default();
        starts.iter().for_each(|&s| distinct.add(s));
        let mut windows: Vec<i64> = distinct.drain().map(|(s, _)| s).collect();
        windows.sort_unstable();
        let config = self.config.clone();
        if let [only] = windows[..] {
            self.window(only).add_pairs(&config, &fb.score, &fb.label);
            return;
        }
        let groups: Vec<Vec<usize>> = if windows.len() <= 8 {
            // A batch spans a few windows: one pass per window, like numpy's masks.
            windows.iter().map(|&w| (0..starts.len()).filter(|&i| starts[i] == w).collect()).collect()
        } else {
            let mut order: Vec<usize> = (0..starts.len()).collect();
            order.sort_by_key(|&i| starts[i]); // stable: row order within a window
            order.chunk_by(|&a, &b| starts[a] == starts[b]).map(<[usize]>::to_vec).collect()
        };
        for group in groups {
            let score: Vec<f64> = group.iter().map(|&i| fb.score[i]).collect();
            let label: Vec<f64> = group.iter().map(|&i| fb.label[i]).collect();
            self.window(starts[group[0]]).add_pairs(&config, &score, &label);
        }
    }

    /// Move the watermark to `t` and expire the buckets it passed.
    fn advance(&mut self, t: i64) {
        if t <= self.watermark {
            return;
        }
        self.watermark = t;
        let (ttl, bucket) = (self.config.ttl, self.config.bucket);
        // A whole bucket b is past when (b + 1) * bucket + ttl <= watermark.
        let limit = t.saturating_sub(ttl).div_euclid(bucket);
        let mut expired = Vec::new();
        loop {
            let next = [self.ints.pending_buckets.keys().next(), self.strs.pending_buckets.keys().next()]
                .into_iter()
                .flatten()
                .min()
                .copied();
            let Some(b) = next.filter(|&b| b < limit) else { break };
            let ints = self.ints.pending_buckets.remove(&b).unwrap_or_default();
            let strs = self.strs.pending_buckets.remove(&b).unwrap_or_default();
            if self.live.remove(&b).unwrap_or(0) <= 0 {
                continue; // every prediction of the bucket was joined
            }
            self.ints.expire(b, ints, bucket, &mut expired);
            self.strs.expire(b, strs, bucket, &mut expired);
        }
        self.count_times(EXPIRED, &expired);
        let forget = t.saturating_sub(ttl).saturating_sub(self.config.late_horizon).div_euclid(bucket);
        self.ints.forget(forget);
        self.strs.forget(forget);
    }

    /// The windows revised since the last call (ascending), and forget that they were.
    pub fn take_touched(&mut self) -> Vec<i64> {
        std::mem::take(&mut self.touched).into_iter().collect()
    }

    /// `(window_start, metric, value)` rows of `windows` (all when `None`), in
    /// the given order; an unknown window is an error naming it.
    pub fn quality_rows(&self, windows: Option<&[i64]>) -> Result<Vec<(i64, String, f64)>, i64> {
        let starts: Vec<i64> = match windows {
            Some(w) => w.to_vec(),
            None => self.windows.keys().copied().collect(),
        };
        let mut out = Vec::new();
        for s in starts {
            let w = self.windows.get(&s).ok_or(s)?;
            out.extend(w.rows(self.config.task).into_iter().map(|(k, v)| (s, k, v)));
        }
        Ok(out)
    }
}
