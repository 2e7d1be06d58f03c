//! CatBoost's categorical features as preprocessing steps (`docs/ir.md`,
//! `catboost_hash` and `catboost_ctr`): the IR types and their checked,
//! ready-to-run form. The arithmetic itself (the hash, the projection hash,
//! the counters) runs in the evaluator (`prep.rs`).

use std::sync::Arc;

use serde::Deserialize;

/// Values over all counter tables of a plan.
pub const MAX_CTR_VALUES: usize = 1 << 24;

/// The counter kinds CatBoost computes at prediction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CtrKind {
    Borders,
    Buckets,
    BinarizedTargetMeanValue,
    FloatTargetMeanValue,
    Counter,
    FeatureFreq,
}

impl CtrKind {
    pub const NAMES: &'static str =
        "Borders, Buckets, BinarizedTargetMeanValue, FloatTargetMeanValue, Counter, FeatureFreq";

    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "Borders" => Self::Borders,
            "Buckets" => Self::Buckets,
            "BinarizedTargetMeanValue" => Self::BinarizedTargetMeanValue,
            "FloatTargetMeanValue" => Self::FloatTargetMeanValue,
            "Counter" => Self::Counter,
            "FeatureFreq" => Self::FeatureFreq,
            _ => return None,
        })
    }

    /// Values per hash in the table: a mean's (sum, count), a counter's count,
    /// or one count per target class.
    fn stride_ok(self, stride: usize) -> bool {
        match self {
            Self::BinarizedTargetMeanValue | Self::FloatTargetMeanValue => stride == 2,
            Self::Counter | Self::FeatureFreq => stride == 1,
            Self::Borders | Self::Buckets => stride >= 2,
        }
    }
}

/// A counter table as the IR carries it: per hash, `stride` values.
#[derive(Debug, Deserialize)]
pub struct CtrTableIr {
    pub kind: String,
    pub stride: usize,
    pub hashes: Vec<u64>,
    pub values: Vec<f64>,
    #[serde(default)]
    pub counter_denominator: i64,
}

/// A float feature's test in a projection: `x > border` in float32 (a NaN: `nan_true`).
#[derive(Debug, Deserialize, Clone)]
pub struct FloatElement {
    pub column: usize,
    pub border: f32,
    #[serde(default)]
    pub nan_true: bool,
}

/// A one-hot test in a projection: the hash column equals `value`.
#[derive(Debug, Deserialize, Clone)]
pub struct ExactElement {
    pub column: usize,
    pub value: i32,
}

/// One counter as the IR carries it.
#[derive(Debug, Deserialize)]
pub struct CtrIr {
    pub table: usize,
    #[serde(default)]
    pub cat: Vec<usize>,
    #[serde(default)]
    pub float: Vec<FloatElement>,
    #[serde(default)]
    pub exact: Vec<ExactElement>,
    #[serde(default)]
    pub target_border_idx: usize,
    pub prior_num: f32,
    pub prior_denom: f32,
    pub shift: f32,
    pub scale: f32,
}

/// A checked table: hash to the row of its values.
#[derive(Debug)]
struct CtrTable {
    kind: CtrKind,
    stride: usize,
    index: Arc<DenseIndex>,
    values: Vec<f64>,
    counter_denominator: i64,
}

/// Counters over one projection and one table, ready to run: the row's
/// projection hash is looked up once, then each counter reads its value.
#[derive(Clone, Debug)]
pub struct CtrGroup {
    pub index: Arc<DenseIndex>,
    /// Registers holding the projection's hashed categorical values, in order.
    pub cat: Vec<usize>,
    pub float: Vec<FloatElement>,
    pub exact: Vec<ExactElement>,
    /// Per counter: its register and its value per table row, then for a hash not in the table.
    pub ctrs: Vec<(usize, Arc<Vec<f32>>)>,
}

/// Check a `catboost_ctr` step over the numeric registers `regs` and group
/// its counters; counter `k` writes register `base + k`.
pub fn groups(
    tables: &[CtrTableIr],
    ctrs: &[CtrIr],
    regs: &[usize],
    base: usize,
    what: &str,
) -> Result<Vec<CtrGroup>, String> {
    let tables = check_tables(tables, what)?;
    let mut groups: Vec<(usize, CtrGroup)> = Vec::new();
    let mut total = 0usize;
    for (k, spec) in ctrs.iter().enumerate() {
        let table = tables
            .get(spec.table)
            .ok_or_else(|| format!("{what}: ctr {k} names table {}; there are {}", spec.table, tables.len()))?;
        let reg = |j: usize| {
            regs.get(j)
                .copied()
                .ok_or_else(|| format!("{what}: ctr {k} reads column {j}; there are {}", regs.len()))
        };
        let cat = spec.cat.iter().map(|&j| reg(j)).collect::<Result<Vec<_>, _>>()?;
        let mut float = spec.float.clone();
        for e in &mut float {
            e.column = reg(e.column)?;
        }
        let mut exact = spec.exact.clone();
        for e in &mut exact {
            e.column = reg(e.column)?;
        }
        if matches!(table.kind, CtrKind::Borders | CtrKind::Buckets) && spec.target_border_idx >= table.stride {
            return Err(format!(
                "{what}: ctr {k} has target_border_idx {} for {} target classes",
                spec.target_border_idx, table.stride
            ));
        }
        for (name, v) in [("prior_num", spec.prior_num), ("prior_denom", spec.prior_denom), ("shift", spec.shift), ("scale", spec.scale)] {
            if !v.is_finite() {
                return Err(format!("{what}: ctr {k} has {name} {v}; expected a finite number"));
            }
        }
        total = total.saturating_add(table.index.len);
        if total > MAX_CTR_VALUES {
            return Err(format!("{what}: the counters' values exceed {MAX_CTR_VALUES}"));
        }
        let (mut values, empty) = values(table, spec);
        values.push(empty);
        let ctr = (base + k, Arc::new(values));
        let same = |g: &CtrGroup| g.cat == cat && same_floats(&g.float, &float) && same_exact(&g.exact, &exact);
        match groups.iter_mut().find(|(t, g)| *t == spec.table && same(g)) {
            Some((_, g)) => g.ctrs.push(ctr),
            None => groups.push((
                spec.table,
                CtrGroup { index: table.index.clone(), cat, float, exact, ctrs: vec![ctr] },
            )),
        }
    }
    Ok(groups.into_iter().map(|(_, g)| g).collect())
}

fn same_floats(a: &[FloatElement], b: &[FloatElement]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| x.column == y.column && x.border.to_bits() == y.border.to_bits() && x.nan_true == y.nan_true)
}

fn same_exact(a: &[ExactElement], b: &[ExactElement]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.column == y.column && x.value == y.value)
}

/// The counter's value for each row of its table, and for a hash not in it:
/// CatBoost's static counter provider, in float32 as CatBoost computes it.
fn values(t: &CtrTable, ctr: &CtrIr) -> (Vec<f32>, f32) {
    let calc = |count: f32, total: f32| {
        let v = (count + ctr.prior_num) / (total + ctr.prior_denom);
        (v + ctr.shift) * ctr.scale
    };
    // Counts are integers in CatBoost's tables (the checks keep them below 1e15); sums wrap
    // rather than panic on a hostile table's many columns.
    let int = |v: f64| v as i64;
    let sum = |h: &[f64]| h.iter().fold(0i64, |a, v| a.wrapping_add(int(*v)));
    let rows = t.values.chunks_exact(t.stride);
    match t.kind {
        CtrKind::BinarizedTargetMeanValue | CtrKind::FloatTargetMeanValue => {
            (rows.map(|h| calc(h[0] as f32, int(h[1]) as f32)).collect(), calc(0.0, 0.0))
        }
        CtrKind::Counter | CtrKind::FeatureFreq => {
            let denominator = t.counter_denominator as f32;
            (rows.map(|h| calc(int(h[0]) as f32, denominator)).collect(), calc(0.0, denominator))
        }
        CtrKind::Buckets => {
            let k = ctr.target_border_idx;
            (rows.map(|h| calc(int(h[k]) as f32, sum(h) as f32)).collect(), calc(0.0, 0.0))
        }
        CtrKind::Borders if t.stride > 2 => {
            let k = ctr.target_border_idx + 1;
            let value = |h: &[f64]| {
                let good = sum(&h[k..]);
                calc(good as f32, sum(&h[..k]).wrapping_add(good) as f32)
            };
            (rows.map(value).collect(), calc(0.0, 0.0))
        }
        CtrKind::Borders => (rows.map(|h| calc(int(h[1]) as f32, (int(h[0]) + int(h[1])) as f32)).collect(), calc(0.0, 0.0)),
    }
}

/// Check the tables of a `catboost_ctr` step.
fn check_tables(tables: &[CtrTableIr], what: &str) -> Result<Vec<CtrTable>, String> {
    let mut total = 0usize;
    let mut out = Vec::with_capacity(tables.len());
    for (t, table) in tables.iter().enumerate() {
        let kind = CtrKind::parse(&table.kind).ok_or_else(|| {
            format!("{what}: table {t} has the kind '{}'; expected one of {}", table.kind, CtrKind::NAMES)
        })?;
        if !kind.stride_ok(table.stride) {
            return Err(format!("{what}: table {t} ({}) has stride {}", table.kind, table.stride));
        }
        total = total.saturating_add(table.values.len());
        if total > MAX_CTR_VALUES {
            return Err(format!("{what}: the counter tables hold more than {MAX_CTR_VALUES} values"));
        }
        if table.values.len() != table.hashes.len().saturating_mul(table.stride) {
            return Err(format!(
                "{what}: table {t} has {} values for {} hashes of stride {}",
                table.values.len(),
                table.hashes.len(),
                table.stride
            ));
        }
        if let Some(v) = table.values.iter().find(|v| !v.is_finite() || v.abs() > 1e15) {
            return Err(format!("{what}: table {t} holds the value {v}; expected finite counts and sums"));
        }
        out.push(CtrTable {
            kind,
            stride: table.stride,
            index: Arc::new(DenseIndex::new(&table.hashes)),
            values: table.values.clone(),
            counter_denominator: table.counter_denominator,
        });
    }
    Ok(out)
}

/// Hash to table row by open addressing, as CatBoost's own tables: a
/// projection hash is already mixed, so its low bits pick the first bucket,
/// then buckets are probed in order; at most half the buckets are used.
#[derive(Debug)]
pub struct DenseIndex {
    /// (hash, row); row `u32::MAX`: an empty bucket (every hash, `u64::MAX` too, may be a key).
    buckets: Vec<(u64, u32)>,
    mask: usize,
    /// Rows.
    len: usize,
}

impl DenseIndex {
    fn new(hashes: &[u64]) -> Self {
        let size = (hashes.len() * 2).next_power_of_two().max(2);
        let mut index = Self { buckets: vec![(0, u32::MAX); size], mask: size - 1, len: hashes.len() };
        for (row, &h) in hashes.iter().enumerate() {
            let mut z = h as usize & index.mask;
            // A repeated hash: the first row counts.
            while index.buckets[z].1 != u32::MAX && index.buckets[z].0 != h {
                z = (z + 1) & index.mask;
            }
            if index.buckets[z].1 == u32::MAX {
                index.buckets[z] = (h, row as u32);
            }
        }
        index
    }

    /// The row of `hash`, or the number of rows if the table lacks it (the
    /// counters' value lists end with their value for a missing hash). One
    /// branch per probed bucket, taken only on a collision, so found and
    /// missing hashes cost the same.
    #[inline]
    pub fn row(&self, hash: u64) -> usize {
        let mut z = hash as usize & self.mask;
        loop {
            let (h, row) = self.buckets[z];
            if h == hash || row == u32::MAX {
                return (row as usize).min(self.len);
            }
            z = (z + 1) & self.mask;
        }
    }
}
