//! The join state as compact bytes (what hosts checkpoint) and back.
//!
//! Layout (little-endian): the magic `SMFJ`, a format version byte, the
//! config, the watermark, the live counts, then each id table (integer ids,
//! then string ids as length-prefixed UTF-8): pending, tombstones, pending
//! buckets, tomb buckets; then the windows with their sums and their non-zero
//! histogram bins. Which windows were touched is not state (hosts take them
//! after every batch).

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;

use super::quality::Window;
use super::state::{FeedbackJoin, Keyed};
use super::{Config, FeedbackError, Task};

const MAGIC: &[u8; 4] = b"SMFJ";
const VERSION: u8 = 1;

trait Key: Sized + Hash + Eq + Clone {
    fn put(&self, out: &mut Vec<u8>);
    fn get(r: &mut Reader<'_>) -> Result<Self, FeedbackError>;
}

impl Key for i64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, FeedbackError> {
        r.i64()
    }
}

impl Key for Arc<str> {
    fn put(&self, out: &mut Vec<u8>) {
        put_len(out, self.len());
        out.extend_from_slice(self.as_bytes());
    }
    fn get(r: &mut Reader<'_>) -> Result<Self, FeedbackError> {
        let n = r.len()?;
        let bytes = r.take(n)?;
        std::str::from_utf8(bytes)
            .map(Arc::from)
            .map_err(|_| FeedbackError::State(format!("a string id at byte {} is not UTF-8", r.at - n)))
    }
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u64).to_le_bytes());
}

fn put_i64(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_f64(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FeedbackError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| {
            FeedbackError::State(format!("it ends at byte {} but {} more are needed", self.bytes.len(), n))
        })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, FeedbackError> {
        Ok(self.take(1)?[0])
    }
    fn i64(&mut self) -> Result<i64, FeedbackError> {
        Ok(i64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    fn f64(&mut self) -> Result<f64, FeedbackError> {
        Ok(f64::from_le_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
    /// A count, checked against the bytes left (each item takes at least one).
    fn len(&mut self) -> Result<usize, FeedbackError> {
        let n = self.i64()? as u64;
        if n > (self.bytes.len() - self.at) as u64 {
            return Err(FeedbackError::State(format!("a count of {n} at byte {} exceeds the bytes left", self.at - 8)));
        }
        Ok(n as usize)
    }
}

fn put_keyed<K: Key>(out: &mut Vec<u8>, k: &Keyed<K>) {
    put_len(out, k.pending.len());
    for (id, &(t, s)) in &k.pending {
        id.put(out);
        put_i64(out, t);
        put_f64(out, s);
    }
    put_len(out, k.tombstones.len());
    for (id, &t) in &k.tombstones {
        id.put(out);
        put_i64(out, t);
    }
    for buckets in [&k.pending_buckets, &k.tomb_buckets] {
        put_len(out, buckets.len());
        for (&b, ids) in buckets {
            put_i64(out, b);
            put_len(out, ids.len());
            ids.iter().for_each(|id| id.put(out));
        }
    }
}

fn get_keyed<K: Key>(r: &mut Reader<'_>) -> Result<Keyed<K>, FeedbackError> {
    let mut k = Keyed::<K>::default();
    for _ in 0..r.len()? {
        let id = K::get(r)?;
        k.pending.insert(id, (r.i64()?, r.f64()?));
    }
    for _ in 0..r.len()? {
        let id = K::get(r)?;
        k.tombstones.insert(id, r.i64()?);
    }
    for buckets in [&mut k.pending_buckets, &mut k.tomb_buckets] {
        *buckets = get_buckets(r)?;
    }
    Ok(k)
}

fn get_buckets<K: Key>(r: &mut Reader<'_>) -> Result<BTreeMap<i64, Vec<K>>, FeedbackError> {
    let mut out = BTreeMap::new();
    for _ in 0..r.len()? {
        let b = r.i64()?;
        let n = r.len()?;
        let ids = (0..n).map(|_| K::get(r)).collect::<Result<Vec<_>, _>>()?;
        out.insert(b, ids);
    }
    Ok(out)
}

impl FeedbackJoin {
    /// The whole state as bytes ([`FeedbackJoin::from_bytes`] reads them back).
    pub fn to_bytes(&self) -> Vec<u8> {
        let c = &self.config;
        let mut out = Vec::with_capacity(64 + 24 * self.pending_len());
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(match c.task {
            Task::Binary => 0,
            Task::Regression => 1,
        });
        for v in [c.ttl, c.window, c.hist_bins as i64, c.late_horizon, c.bucket, self.watermark] {
            put_i64(&mut out, v);
        }
        put_f64(&mut out, c.threshold);
        let mut live: Vec<_> = self.live.iter().collect();
        live.sort_unstable();
        put_len(&mut out, live.len());
        for (&b, &n) in live {
            put_i64(&mut out, b);
            put_i64(&mut out, n);
        }
        put_keyed(&mut out, &self.ints);
        put_keyed(&mut out, &self.strs);
        put_len(&mut out, self.windows.len());
        for (&start, w) in &self.windows {
            put_i64(&mut out, start);
            w.sums.iter().for_each(|&v| put_f64(&mut out, v));
            let bins: Vec<_> = w.hist.iter().enumerate().filter(|(_, &n)| n != 0).collect();
            put_len(&mut out, bins.len());
            for (i, &n) in bins {
                put_i64(&mut out, i as i64);
                put_i64(&mut out, n);
            }
        }
        out
    }

    /// A join from [`FeedbackJoin::to_bytes`]; anything else is refused with the reason.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FeedbackError> {
        let r = &mut Reader { bytes, at: 0 };
        if r.take(4).ok() != Some(MAGIC.as_slice()) {
            return Err(FeedbackError::State("it does not start with SMFJ".into()));
        }
        let version = r.u8()?;
        if version != VERSION {
            return Err(FeedbackError::State(format!("format version {version}, this build reads {VERSION}")));
        }
        let task = match r.u8()? {
            0 => Task::Binary,
            1 => Task::Regression,
            other => return Err(FeedbackError::State(format!("task code {other} is not 0 or 1"))),
        };
        let (ttl, window, hist_bins, late_horizon, bucket) = (r.i64()?, r.i64()?, r.i64()?, r.i64()?, r.i64()?);
        let watermark = r.i64()?;
        let threshold = r.f64()?;
        let hist_bins = usize::try_from(hist_bins).map_err(|_| FeedbackError::State(format!("hist_bins {hist_bins}")))?;
        let config = Config { ttl, window, task, threshold, hist_bins, late_horizon, bucket };
        let mut join = FeedbackJoin::new(config)?;
        join.watermark = watermark;
        for _ in 0..r.len()? {
            join.live.insert(r.i64()?, r.i64()?);
        }
        join.ints = get_keyed(r)?;
        join.strs = get_keyed(r)?;
        for _ in 0..r.len()? {
            let start = r.i64()?;
            let mut w = Window::new(&join.config);
            for v in w.sums.iter_mut() {
                *v = r.f64()?;
            }
            for _ in 0..r.len()? {
                let (i, n) = (r.i64()?, r.i64()?);
                let slot = usize::try_from(i).ok().and_then(|i| w.hist.get_mut(i));
                *slot.ok_or_else(|| FeedbackError::State(format!("histogram bin {i} of window {start}")))? = n;
            }
            join.windows.insert(start, w);
        }
        if r.at != bytes.len() {
            return Err(FeedbackError::State(format!("{} trailing byte(s)", bytes.len() - r.at)));
        }
        Ok(join)
    }
}
