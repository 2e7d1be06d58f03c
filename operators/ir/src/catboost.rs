//! CatBoost's categorical features as preprocessing steps (`docs/ir.md`,
//! `catboost_hash` and `catboost_ctr`): the IR types and their checked,
//! ready-to-run form. The arithmetic itself (the hash, the projection hash,
//! the counters) runs in the evaluator (`prep.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use serde::Deserialize;

use crate::plan::FxBuild;

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
pub struct CtrTable {
    pub kind: CtrKind,
    pub stride: usize,
    pub index: HashMap<u64, u32, FxBuild>,
    pub values: Vec<f64>,
    pub counter_denominator: i64,
}

/// A checked counter over registers.
#[derive(Clone, Debug)]
pub struct Ctr {
    pub table: Arc<CtrTable>,
    /// Registers holding the projection's hashed categorical values, in order.
    pub cat: Vec<usize>,
    pub float: Vec<FloatElement>,
    pub exact: Vec<ExactElement>,
    pub target_border_idx: usize,
    pub prior_num: f32,
    pub prior_denom: f32,
    pub shift: f32,
    pub scale: f32,
}

/// Check the tables of a `catboost_ctr` step.
pub fn tables(tables: &[CtrTableIr], what: &str) -> Result<Vec<Arc<CtrTable>>, String> {
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
        if let Some(v) = table.values.iter().find(|v| !v.is_finite()) {
            return Err(format!("{what}: table {t} holds the value {v}; expected finite numbers"));
        }
        let mut index = HashMap::with_capacity_and_hasher(table.hashes.len(), FxBuild::default());
        for (i, h) in table.hashes.iter().enumerate() {
            // CatBoost's own tables keep the first entry of a hash.
            index.entry(*h).or_insert(i as u32);
        }
        out.push(Arc::new(CtrTable {
            kind,
            stride: table.stride,
            index,
            values: table.values.clone(),
            counter_denominator: table.counter_denominator,
        }));
    }
    Ok(out)
}

/// Check one counter against the tables and the step's numeric registers.
pub fn ctr(spec: &CtrIr, k: usize, tables: &[Arc<CtrTable>], regs: &[usize], what: &str) -> Result<Ctr, String> {
    let table = tables
        .get(spec.table)
        .cloned()
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
    Ok(Ctr {
        table,
        cat,
        float,
        exact,
        target_border_idx: spec.target_border_idx,
        prior_num: spec.prior_num,
        prior_denom: spec.prior_denom,
        shift: spec.shift,
        scale: spec.scale,
    })
}
