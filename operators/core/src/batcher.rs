//! The micro-batcher, by the design's rule.
//!
//! A batch is flushed when it holds `max_batch_rows` rows, or when its
//! oldest row has waited `max_wait` — measured from that row's arrival, not
//! from the last arrival (so a steady trickle cannot hold a row forever), or
//! when the host asks (shutdown, rebalance, checkpoint). Rows keep their
//! arrival order. Time is passed in, never read, so hosts decide the clock
//! and tests are exact.

use std::time::{Duration, Instant};

/// When to flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Flush as soon as a batch holds this many rows (at least 1).
    pub max_batch_rows: usize,
    /// Flush once the oldest row has waited this long; `None`: never by time.
    pub max_wait: Option<Duration>,
}

impl BatchPolicy {
    /// A policy; `max_batch_rows` must be at least 1.
    pub fn new(max_batch_rows: usize, max_wait: Option<Duration>) -> Result<Self, String> {
        if max_batch_rows == 0 {
            return Err("max_batch_rows must be at least 1".into());
        }
        Ok(Self {
            max_batch_rows,
            max_wait,
        })
    }
}

/// Why a batch was flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushReason {
    /// It reached `max_batch_rows`.
    Full,
    /// Its oldest row waited `max_wait`.
    Timeout,
    /// The host asked ([`MicroBatcher::flush`]).
    Demand,
}

/// A flushed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<T> {
    pub items: Vec<T>,
    pub reason: FlushReason,
    /// When its first row arrived.
    pub first_arrival: Instant,
}

/// Groups items into batches; see the module docs for the rule.
#[derive(Debug)]
pub struct MicroBatcher<T> {
    policy: BatchPolicy,
    items: Vec<T>,
    first_arrival: Option<Instant>,
}

impl<T> MicroBatcher<T> {
    pub fn new(policy: BatchPolicy) -> Self {
        Self {
            policy,
            items: Vec::new(),
            first_arrival: None,
        }
    }

    pub fn policy(&self) -> BatchPolicy {
        self.policy
    }

    /// Rows waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// When the pending batch is due by time, if anything is pending and a
    /// `max_wait` is set. Hosts sleep until then (or until more rows come).
    pub fn deadline(&self) -> Option<Instant> {
        let first = self.first_arrival?;
        first.checked_add(self.policy.max_wait?)
    }

    /// Add a row that arrived at `now`. Every batch that becomes due is passed
    /// to `emit` in order: a pending batch already past its deadline first,
    /// then this row's batch if it is full (or `max_wait` is zero).
    pub fn push(&mut self, item: T, now: Instant, mut emit: impl FnMut(Batch<T>)) {
        self.poll(now, &mut emit);
        if self.items.is_empty() {
            self.first_arrival = Some(now);
            if self.items.capacity() == 0 {
                self.items.reserve(self.policy.max_batch_rows.min(4096));
            }
        }
        self.items.push(item);
        if self.items.len() >= self.policy.max_batch_rows {
            emit(self.take(FlushReason::Full));
        } else {
            self.poll(now, emit);
        }
    }

    /// Add rows that all arrived at `now`, as [`push`](Self::push) each.
    pub fn push_all(
        &mut self,
        items: impl IntoIterator<Item = T>,
        now: Instant,
        mut emit: impl FnMut(Batch<T>),
    ) {
        for item in items {
            self.push(item, now, &mut emit);
        }
    }

    /// Emit the pending batch if its oldest row has waited `max_wait` by `now`.
    pub fn poll(&mut self, now: Instant, mut emit: impl FnMut(Batch<T>)) {
        if let Some(deadline) = self.deadline() {
            if now >= deadline {
                emit(self.take(FlushReason::Timeout));
            }
        }
    }

    /// Take whatever is pending (shutdown, rebalance, checkpoint).
    pub fn flush(&mut self) -> Option<Batch<T>> {
        if self.items.is_empty() {
            None
        } else {
            Some(self.take(FlushReason::Demand))
        }
    }

    fn take(&mut self, reason: FlushReason) -> Batch<T> {
        let first_arrival = self
            .first_arrival
            .take()
            .expect("a pending batch has an arrival");
        let capacity = self.policy.max_batch_rows.min(4096);
        let items = std::mem::replace(&mut self.items, Vec::with_capacity(capacity));
        Batch {
            items,
            reason,
            first_arrival,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn batcher(rows: usize, wait_ms: Option<u64>) -> MicroBatcher<u32> {
        MicroBatcher::new(BatchPolicy::new(rows, wait_ms.map(ms)).unwrap())
    }

    /// Push `items` at offsets (ms from t0) and collect what is emitted.
    fn run(b: &mut MicroBatcher<u32>, t0: Instant, pushes: &[(u64, u32)]) -> Vec<Batch<u32>> {
        let mut out = Vec::new();
        for &(at, item) in pushes {
            b.push(item, t0 + ms(at), |batch| out.push(batch));
        }
        out
    }

    #[test]
    fn flushes_when_full() {
        let t0 = Instant::now();
        let mut b = batcher(3, Some(1000));
        let out = run(&mut b, t0, &[(0, 1), (1, 2), (2, 3), (3, 4)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].items, vec![1, 2, 3]);
        assert_eq!(out[0].reason, FlushReason::Full);
        assert_eq!(out[0].first_arrival, t0);
        assert_eq!(b.len(), 1);
        assert_eq!(b.deadline(), Some(t0 + ms(3) + ms(1000)));
    }

    #[test]
    fn max_wait_is_measured_from_the_oldest_row_not_the_last() {
        // Rows every 4 ms with max_wait 10 ms: an inactivity timeout would
        // never fire; ours fires 10 ms after the first row.
        let t0 = Instant::now();
        let mut b = batcher(1000, Some(10));
        let out = run(&mut b, t0, &[(0, 1), (4, 2), (8, 3), (12, 4), (16, 5)]);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].items,
            vec![1, 2, 3],
            "the row at 12 ms starts a new batch"
        );
        assert_eq!(out[0].reason, FlushReason::Timeout);
        assert_eq!(b.deadline(), Some(t0 + ms(22)));
    }

    #[test]
    fn poll_fires_exactly_at_the_deadline() {
        let t0 = Instant::now();
        let mut b = batcher(100, Some(5));
        run(&mut b, t0, &[(0, 1), (2, 2)]);
        let mut out = Vec::new();
        b.poll(t0 + ms(5) - Duration::from_nanos(1), |x| out.push(x));
        assert!(out.is_empty(), "not due 1 ns before the deadline");
        b.poll(t0 + ms(5), |x| out.push(x));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].items, vec![1, 2]);
        assert!(b.is_empty());
        assert_eq!(b.deadline(), None, "nothing pending, nothing due");
    }

    #[test]
    fn a_late_push_flushes_the_overdue_batch_first() {
        let t0 = Instant::now();
        let mut b = batcher(100, Some(5));
        let out = run(&mut b, t0, &[(0, 1), (20, 2)]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].items, vec![1]);
        assert_eq!(b.len(), 1);
        assert_eq!(b.deadline(), Some(t0 + ms(25)));
    }

    #[test]
    fn zero_wait_flushes_every_row() {
        let t0 = Instant::now();
        let mut b = batcher(100, Some(0));
        let out = run(&mut b, t0, &[(0, 1), (0, 2)]);
        assert_eq!(
            out.iter().map(|x| x.items.clone()).collect::<Vec<_>>(),
            vec![vec![1], vec![2]]
        );
    }

    #[test]
    fn without_max_wait_only_size_and_demand_flush() {
        let t0 = Instant::now();
        let mut b = batcher(3, None);
        let out = run(&mut b, t0, &[(0, 1), (10_000, 2)]);
        assert!(out.is_empty());
        assert_eq!(b.deadline(), None);
        let flushed = b.flush().unwrap();
        assert_eq!(
            (flushed.items, flushed.reason),
            (vec![1, 2], FlushReason::Demand)
        );
        assert!(b.flush().is_none());
    }

    #[test]
    fn push_all_splits_into_full_batches_in_order() {
        let t0 = Instant::now();
        let mut b = batcher(4, Some(50));
        let mut out = Vec::new();
        b.push_all(0..10, t0, |x| out.push(x));
        let sizes: Vec<Vec<u32>> = out.into_iter().map(|x| x.items).collect();
        assert_eq!(sizes, vec![vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
        assert_eq!(b.flush().unwrap().items, vec![8, 9]);
    }

    #[test]
    fn zero_rows_is_refused() {
        assert!(BatchPolicy::new(0, None).is_err());
    }
}
