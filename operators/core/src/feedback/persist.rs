//! The join state as compact bytes (what hosts checkpoint) and back.
//!
//! Layout (little-endian): a header — the magic `SMFJ`, the format version
//! byte, the payload's length (u64) and its CRC-32C (u32) — then the payload:
//! the task, the config, the watermark, the live counts, each id table
//! (integer ids, then string ids as length-prefixed UTF-8: pending,
//! tombstones, the pending and tombstone bucket lists, the labelled ids per
//! bucket), then the windows with their sums and their non-zero histogram
//! bins. (A checksum, not a signature: it catches changed and cut bytes; the
//! reader's own checks below hold for bytes someone re-checksummed.) Which windows were
//! touched is not state (hosts take them after every batch).
//!
//! Reading checks the checksum before anything else, then every count
//! against the bytes left (so a declared size cannot make a huge
//! allocation), every key for uniqueness and every histogram bin for range;
//! any failure is a [`FeedbackError::State`] naming what and where.

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use super::quality::Window;
use super::state::{FeedbackJoin, Keyed};
use super::{Config, FeedbackError, Task};

const MAGIC: &[u8; 4] = b"SMFJ";
const VERSION: u8 = 2;
/// Magic, version, payload length, CRC-32C.
pub(crate) const HEADER: usize = 4 + 1 + 8 + 4;
/// The histogram cells a restored state may hold without matching bytes
/// (zero bins are not stored): 2^27 (1 GiB), or 8 per byte of the state.
const MAX_HIST_CELLS: usize = 1 << 27;

fn state_err(msg: String) -> FeedbackError {
    FeedbackError::State(msg)
}

trait Key: Sized + Hash + Eq + Clone {
    /// The fewest bytes one key takes.
    const MIN: usize = 8;
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
        let n = r.len(1)?;
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
    /// A count of items of at least `min` bytes each, checked against the bytes left.
    fn len(&mut self, min: usize) -> Result<usize, FeedbackError> {
        let at = self.at;
        let n = self.i64()?;
        let left = self.bytes.len() - self.at;
        match usize::try_from(n) {
            Ok(n) if n.checked_mul(min.max(1)).is_some_and(|b| b <= left) => Ok(n),
            _ => Err(state_err(format!(
                "a count of {n} items of {min}+ bytes at byte {at} does not fit in the {left} bytes left"
            ))),
        }
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
    put_len(out, k.labelled.len());
    for (&b, ids) in &k.labelled {
        put_i64(out, b);
        put_len(out, ids.len());
        for (id, &t) in ids {
            id.put(out);
            put_i64(out, t);
        }
    }
}

fn unique<K: Key, V>(map: &mut FxHashMap<K, V>, key: K, value: V, what: &str) -> Result<(), FeedbackError> {
    match map.insert(key, value) {
        None => Ok(()),
        Some(_) => Err(state_err(format!("{what} lists an id twice"))),
    }
}

fn get_times<K: Key>(r: &mut Reader<'_>, what: &str) -> Result<FxHashMap<K, i64>, FeedbackError> {
    let mut out = FxHashMap::default();
    for _ in 0..r.len(K::MIN + 8)? {
        let id = K::get(r)?;
        unique(&mut out, id, r.i64()?, what)?;
    }
    Ok(out)
}

fn get_keyed<K: Key>(r: &mut Reader<'_>) -> Result<Keyed<K>, FeedbackError> {
    let mut k = Keyed::<K>::default();
    for _ in 0..r.len(K::MIN + 16)? {
        let id = K::get(r)?;
        let entry = (r.i64()?, r.f64()?);
        unique(&mut k.pending, id, entry, "the pending table")?;
    }
    k.tombstones = get_times(r, "the tombstones")?;
    for buckets in [&mut k.pending_buckets, &mut k.tomb_buckets] {
        *buckets = get_buckets(r)?;
    }
    for _ in 0..r.len(16)? {
        let b = r.i64()?;
        if k.labelled.insert(b, get_times(r, "a bucket of labelled ids")?).is_some() {
            return Err(state_err(format!("labelled bucket {b} is listed twice")));
        }
    }
    Ok(k)
}

fn get_buckets<K: Key>(r: &mut Reader<'_>) -> Result<BTreeMap<i64, Vec<K>>, FeedbackError> {
    let mut out = BTreeMap::new();
    for _ in 0..r.len(16)? {
        let b = r.i64()?;
        let n = r.len(K::MIN)?;
        let ids = (0..n).map(|_| K::get(r)).collect::<Result<Vec<_>, _>>()?;
        if out.insert(b, ids).is_some() {
            return Err(state_err(format!("bucket {b} is listed twice")));
        }
    }
    Ok(out)
}

fn put_opt(out: &mut Vec<u8>, v: Option<i64>) {
    out.push(u8::from(v.is_some()));
    put_i64(out, v.unwrap_or(0));
}

fn get_opt(r: &mut Reader<'_>, what: &str) -> Result<Option<i64>, FeedbackError> {
    let (flag, v) = (r.u8()?, r.i64()?);
    match flag {
        0 => Ok(None),
        1 => Ok(Some(v)),
        other => Err(state_err(format!("{what} flag {other} is not 0 or 1"))),
    }
}

impl FeedbackJoin {
    /// The whole state as bytes ([`FeedbackJoin::from_bytes`] reads them back).
    pub fn to_bytes(&self) -> Vec<u8> {
        let c = &self.config;
        let mut body = Vec::with_capacity(HEADER + 64 + 24 * self.pending_len());
        body.extend_from_slice(&[0; HEADER]); // filled in below
        body.push(match c.task {
            Task::Binary => 0,
            Task::Regression => 1,
        });
        for v in [c.ttl, c.window, c.hist_bins as i64, c.late_horizon, c.bucket, self.watermark] {
            put_i64(&mut body, v);
        }
        put_f64(&mut body, c.threshold);
        put_opt(&mut body, c.max_future_skew);
        put_opt(&mut body, c.max_watermark_jump);
        let mut live: Vec<_> = self.live.iter().collect();
        live.sort_unstable();
        put_len(&mut body, live.len());
        for (&b, &n) in live {
            put_i64(&mut body, b);
            put_i64(&mut body, n);
        }
        put_keyed(&mut body, &self.ints);
        put_keyed(&mut body, &self.strs);
        put_len(&mut body, self.windows.len());
        for (&start, w) in &self.windows {
            put_i64(&mut body, start);
            w.sums.iter().for_each(|&v| put_f64(&mut body, v));
            let bins: Vec<_> = w.hist.iter().enumerate().filter(|(_, &n)| n != 0).collect();
            put_len(&mut body, bins.len());
            for (i, &n) in bins {
                put_i64(&mut body, i as i64);
                put_i64(&mut body, n);
            }
        }
        let len = (body.len() - HEADER) as u64;
        let crc = crc32c(&body[HEADER..]);
        body[..4].copy_from_slice(MAGIC);
        body[4] = VERSION;
        body[5..13].copy_from_slice(&len.to_le_bytes());
        body[13..HEADER].copy_from_slice(&crc.to_le_bytes());
        body
    }

    /// A join from [`FeedbackJoin::to_bytes`]; anything else (a flipped
    /// byte, a cut, a count that does not fit) is refused with the reason.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FeedbackError> {
        let body = check_header(bytes)?;
        let r = &mut Reader { bytes: body, at: 0 };
        let join = read_body(r)?;
        if r.at != body.len() {
            return Err(state_err(format!("{} trailing byte(s) after the windows", body.len() - r.at)));
        }
        Ok(join)
    }
}

/// The payload after a header whose magic, version, length and checksum match.
fn check_header(bytes: &[u8]) -> Result<&[u8], FeedbackError> {
    if bytes.get(..4) != Some(MAGIC.as_slice()) {
        return Err(state_err("it does not start with SMFJ".into()));
    }
    match bytes.get(4) {
        Some(&VERSION) => {}
        Some(&1) => {
            return Err(state_err(format!(
                "format version 1 (without a checksum), this build reads {VERSION}; start the join afresh"
            )))
        }
        Some(v) => return Err(state_err(format!("format version {v}, this build reads {VERSION}"))),
        None => return Err(state_err("it ends inside the header".into())),
    }
    if bytes.len() < HEADER {
        return Err(state_err(format!("it is {} bytes, shorter than the {HEADER}-byte header", bytes.len())));
    }
    let declared = u64::from_le_bytes(bytes[5..13].try_into().expect("8 bytes"));
    let body = &bytes[HEADER..];
    if declared != body.len() as u64 {
        return Err(state_err(format!("the header declares {declared} payload bytes but {} follow", body.len())));
    }
    let declared_crc = u32::from_le_bytes(bytes[13..HEADER].try_into().expect("4 bytes"));
    let crc = crc32c(body);
    if crc != declared_crc {
        return Err(state_err(format!(
            "the payload's CRC-32C is {crc:08x}, the header says {declared_crc:08x} (the bytes were changed)"
        )));
    }
    Ok(body)
}

fn read_body(r: &mut Reader<'_>) -> Result<FeedbackJoin, FeedbackError> {
    let task = match r.u8()? {
        0 => Task::Binary,
        1 => Task::Regression,
        other => return Err(state_err(format!("task code {other} is not 0 or 1"))),
    };
    let (ttl, window, hist_bins, late_horizon, bucket) = (r.i64()?, r.i64()?, r.i64()?, r.i64()?, r.i64()?);
    let watermark = r.i64()?;
    let threshold = r.f64()?;
    let hist_bins = usize::try_from(hist_bins).map_err(|_| state_err(format!("hist_bins {hist_bins}")))?;
    let (max_future_skew, max_watermark_jump) = (get_opt(r, "max_future_skew")?, get_opt(r, "max_watermark_jump")?);
    let config =
        Config { ttl, window, task, threshold, hist_bins, late_horizon, bucket, max_future_skew, max_watermark_jump };
    let mut join = FeedbackJoin::new(config).map_err(|e| state_err(format!("its config is refused ({e})")))?;
    join.watermark = watermark;
    for _ in 0..r.len(16)? {
        let b = r.i64()?;
        if join.live.insert(b, r.i64()?).is_some() {
            return Err(state_err(format!("the live count of bucket {b} is listed twice")));
        }
    }
    join.ints = get_keyed(r)?;
    join.strs = get_keyed(r)?;
    let sums = Window::new(&join.config).sums.len();
    let windows = r.len(8 + 8 * sums + 8)?;
    let cells = windows.saturating_mul(Window::new(&join.config).hist.len());
    if cells > MAX_HIST_CELLS.max(8 * r.bytes.len()) {
        return Err(state_err(format!(
            "{windows} windows of {hist_bins} histogram bins exceed the {MAX_HIST_CELLS} cells a state may hold"
        )));
    }
    for _ in 0..windows {
        let start = r.i64()?;
        let mut w = Window::new(&join.config);
        for v in w.sums.iter_mut() {
            *v = r.f64()?;
        }
        for _ in 0..r.len(16)? {
            let (i, n) = (r.i64()?, r.i64()?);
            let slot = usize::try_from(i).ok().and_then(|i| w.hist.get_mut(i)).filter(|_| n > 0);
            *slot.ok_or_else(|| state_err(format!("histogram bin {i} = {n} of window {start} is out of range")))? = n;
        }
        if join.windows.insert(start, w).is_some() {
            return Err(state_err(format!("window {start} is listed twice")));
        }
    }
    Ok(join)
}

/// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial and final
/// inversion), with the SSE 4.2 instruction where the CPU has it.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("sse4.2") {
        // SAFETY: the CPU has SSE 4.2 (checked just above).
        return unsafe { crc32c_sse42(bytes) };
    }
    crc32c_table(bytes)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.2")]
fn crc32c_sse42(bytes: &[u8]) -> u32 {
    use std::arch::x86_64::{_mm_crc32_u64, _mm_crc32_u8};
    let mut words = bytes.chunks_exact(8);
    let mut crc = u64::from(u32::MAX);
    for w in &mut words {
        crc = _mm_crc32_u64(crc, u64::from_le_bytes(w.try_into().expect("8 bytes")));
    }
    let mut crc = crc as u32;
    for &b in words.remainder() {
        crc = _mm_crc32_u8(crc, b);
    }
    !crc
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

pub(crate) fn crc32c_table(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(u32::MAX, |crc, &b| CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8))
}
