//! Run a preprocessing plan (`streamml_ir::plan`) on a block of rows: read
//! the float64 and utf8 inputs, run each operation on its registers (one
//! column of the block each), and write the model's features row-major.

use streamml_ir::catboost::CtrGroup;
use streamml_ir::plan::{Col, Encoding, Fallback, Lookup, Norm, PlanOp};
use streamml_ir::{InputType, Plan};
use streamml_sdk::{Input, PredictError, Utf8Column};

/// A batch's inputs, borrowed for the call.
pub struct Columns<'a> {
    pub num: Vec<Option<std::borrow::Cow<'a, [f64]>>>,
    pub str: Vec<Option<Utf8Column<'a>>>,
    pub nulls: Vec<bool>,
}

impl<'a> Columns<'a> {
    pub fn read(input: &Input<'a>, types: &[InputType]) -> Result<Self, PredictError> {
        let mut num = Vec::with_capacity(types.len());
        let mut str = Vec::with_capacity(types.len());
        for (j, t) in types.iter().enumerate() {
            match t {
                InputType::Float64 => {
                    num.push(Some(input.float64(j)?));
                    str.push(None);
                }
                InputType::Utf8 => {
                    num.push(None);
                    str.push(Some(input.utf8(j)?));
                }
            }
        }
        let nulls = (0..types.len()).map(|j| input.may_have_nulls(j)).collect();
        Ok(Self { num, str, nulls })
    }
}

/// The registers of one block: `n_registers` columns of `block` rows.
pub struct Registers {
    values: Vec<f64>,
    block: usize,
}

impl Registers {
    pub fn new(plan: &Plan, block: usize) -> Self {
        Self {
            values: vec![0.0; plan.n_registers * block],
            block,
        }
    }

    fn reg(&mut self, r: usize, len: usize) -> &mut [f64] {
        &mut self.values[r * self.block..r * self.block + len]
    }

    /// `dst` (write) and `src` (read), distinct registers.
    fn pair(&mut self, src: usize, dst: usize, len: usize) -> (&[f64], &mut [f64]) {
        debug_assert_ne!(src, dst);
        let b = self.block;
        if src < dst {
            let (lo, hi) = self.values.split_at_mut(dst * b);
            (&lo[src * b..src * b + len], &mut hi[..len])
        } else {
            let (lo, hi) = self.values.split_at_mut(src * b);
            (&hi[..len], &mut lo[dst * b..dst * b + len])
        }
    }
}

/// Run `plan` over rows `start..start + len` and write the features
/// row-major into `xs` (`len * outputs`), rounded to float32 if `cast_f32`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    plan: &Plan,
    names: &[String],
    input: &Input<'_>,
    cols: &Columns<'_>,
    regs: &mut Registers,
    start: usize,
    len: usize,
    cast_f32: bool,
    xs: &mut [f64],
) -> Result<(), PredictError> {
    for (j, t) in plan.input_types.iter().enumerate() {
        if *t != InputType::Float64 {
            continue;
        }
        let src = &cols.num[j].as_ref().expect("a float64 input")[start..start + len];
        let dst = regs.reg(j, len);
        dst.copy_from_slice(src);
        if cols.nulls[j] {
            for (r, v) in dst.iter_mut().enumerate() {
                if input.is_null(j, start + r) {
                    *v = f64::NAN;
                }
            }
        }
    }
    for op in &plan.ops {
        match op {
            PlanOp::Affine {
                src,
                dst,
                sub,
                mul,
                div,
                add,
            } => {
                let (s, d) = regs.pair(*src, *dst, len);
                d.copy_from_slice(s);
                if let Some(c) = sub {
                    d.iter_mut().for_each(|v| *v -= c);
                }
                if let Some(c) = mul {
                    d.iter_mut().for_each(|v| *v *= c);
                }
                if let Some(c) = div {
                    d.iter_mut().for_each(|v| *v /= c);
                }
                if let Some(c) = add {
                    d.iter_mut().for_each(|v| *v += c);
                }
            }
            PlanOp::CastF32 { src, dst } => {
                let (s, d) = regs.pair(*src, *dst, len);
                for (d, s) in d.iter_mut().zip(s) {
                    *d = *s as f32 as f64;
                }
            }
            PlanOp::TruncI64 { src, dst } => {
                // 2^63: the first magnitude with no int64.
                const LIMIT: f64 = 9_223_372_036_854_775_808.0;
                let (s, d) = regs.pair(*src, *dst, len);
                for (d, s) in d.iter_mut().zip(s) {
                    *d = if s.abs() < LIMIT { s.trunc() } else { f64::NAN };
                }
            }
            PlanOp::Fill { src, dst, fill } => {
                let (s, d) = regs.pair(*src, *dst, len);
                for (d, s) in d.iter_mut().zip(s) {
                    *d = if s.is_nan() { *fill } else { *s };
                }
            }
            PlanOp::Indicator { src, dst } => match src {
                Col::Num(src) => {
                    let (s, d) = regs.pair(*src, *dst, len);
                    for (d, s) in d.iter_mut().zip(s) {
                        *d = if s.is_nan() { 1.0 } else { 0.0 };
                    }
                }
                Col::Str { input: j, fill } => {
                    let missing = fill.is_none() && cols.nulls[*j];
                    for (r, d) in regs.reg(*dst, len).iter_mut().enumerate() {
                        *d = if missing && input.is_null(*j, start + r) {
                            1.0
                        } else {
                            0.0
                        };
                    }
                }
            },
            PlanOp::OneHot { enc, dst, width } => {
                let base = *dst;
                for k in 0..*width {
                    regs.reg(base + k, len).fill(0.0);
                }
                let block = regs.block;
                encode(
                    enc,
                    names,
                    input,
                    cols,
                    regs,
                    start,
                    len,
                    |values, r, code| {
                        if code >= 0.0 {
                            values[(base + code as usize) * block + r] = 1.0;
                        }
                    },
                )?;
            }
            PlanOp::Ordinal { enc, dst } => {
                let at = *dst * regs.block;
                encode(
                    enc,
                    names,
                    input,
                    cols,
                    regs,
                    start,
                    len,
                    |values, r, code| {
                        values[at + r] = code;
                    },
                )?;
            }
            PlanOp::CatboostHash {
                input: j,
                fill,
                dst,
                step,
            } => {
                let column = cols.str[*j].as_ref().expect("a utf8 input");
                let nulls = cols.nulls[*j];
                let filled = fill.as_ref().map(|f| catboost_hash(f.as_bytes()));
                let at = *dst * regs.block;
                for r in 0..len {
                    regs.values[at + r] = if nulls && input.is_null(*j, start + r) {
                        filled.ok_or_else(|| {
                            PredictError::InvalidInput(format!(
                                "{step}: input '{}' is null in row {}; CatBoost's categorical features have no missing value: send a string",
                                names[*j],
                                start + r
                            ))
                        })?
                    } else {
                        catboost_hash(column.bytes(start + r))
                    };
                }
            }
            PlanOp::CatboostCtr { groups } => {
                let b = regs.block;
                for group in groups {
                    let mut rows = [0usize; 64];
                    let mut hashes = [0u64; 64];
                    for (r0, chunk) in (0..len).step_by(64).map(|r0| (r0, 64.min(len - r0))) {
                        // All hashes first (element by element, over the rows), then the
                        // probes, which are independent loads the CPU overlaps.
                        projection_hashes(group, &regs.values, b, r0, &mut hashes[..chunk]);
                        for (row, h) in rows.iter_mut().zip(&hashes[..chunk]) {
                            *row = group.index.row(*h);
                        }
                        for (dst, values) in &group.ctrs {
                            let out = &mut regs.values[dst * b + r0..dst * b + r0 + chunk];
                            for (o, row) in out.iter_mut().zip(&rows) {
                                *o = f64::from(values[*row]);
                            }
                        }
                    }
                }
            }
            PlanOp::Normalize { src, dst, norm } => {
                let b = regs.block;
                for r in 0..len {
                    let v = &regs.values;
                    let n = match norm {
                        Norm::L1 => src.iter().map(|s| v[s * b + r].abs()).sum::<f64>(),
                        Norm::L2 => src
                            .iter()
                            .map(|s| v[s * b + r] * v[s * b + r])
                            .sum::<f64>()
                            .sqrt(),
                        Norm::Max => src.iter().map(|s| v[s * b + r].abs()).fold(0.0, f64::max),
                    };
                    let n = if n == 0.0 { 1.0 } else { n };
                    for (k, s) in src.iter().enumerate() {
                        let x = regs.values[s * b + r];
                        regs.values[(dst + k) * b + r] = x / n;
                    }
                }
            }
        }
    }
    let nf = plan.outputs.len();
    for (k, &reg) in plan.outputs.iter().enumerate() {
        let column = &regs.values[reg * regs.block..reg * regs.block + len];
        for (r, &v) in column.iter().enumerate() {
            xs[r * nf + k] = if cast_f32 { v as f32 as f64 } else { v };
        }
    }
    Ok(())
}

/// CatBoost's hash of a categorical value as the signed 32-bit integer its
/// model files and projection hashes use.
fn catboost_hash(bytes: &[u8]) -> f64 {
    f64::from(crate::cityhash::cat_feature_hash(bytes) as i32)
}

/// The projection hashes of rows `r0..r0 + out.len()` for `group`'s table
/// (CatBoost's combination of the hashed categorical values, then the float
/// and one-hot tests, in that order).
fn projection_hashes(group: &CtrGroup, values: &[f64], b: usize, r0: usize, out: &mut [u64]) {
    use crate::cityhash::combine;
    let n = out.len();
    out.fill(0);
    for &c in &group.cat {
        // A hash register holds an i32 (exact in f64); CatBoost widens it with its sign.
        for (h, v) in out.iter_mut().zip(&values[c * b + r0..c * b + r0 + n]) {
            *h = combine(*h, *v as i64 as u64);
        }
    }
    for e in &group.float {
        for (h, x) in out.iter_mut().zip(&values[e.column * b + r0..e.column * b + r0 + n]) {
            let bit = if x.is_nan() { e.nan_true } else { (*x as f32) > e.border };
            *h = combine(*h, u64::from(bit));
        }
    }
    for e in &group.exact {
        let value = f64::from(e.value);
        for (h, x) in out.iter_mut().zip(&values[e.column * b + r0..e.column * b + r0 + n]) {
            *h = combine(*h, u64::from(*x == value));
        }
    }
}

/// Look each row's value up in `enc` and pass its code (one-hot position,
/// -1 for none, or ordinal code) to `write(values, row, code)`.
#[allow(clippy::too_many_arguments)]
fn encode(
    enc: &Encoding,
    names: &[String],
    input: &Input<'_>,
    cols: &Columns<'_>,
    regs: &mut Registers,
    start: usize,
    len: usize,
    mut write: impl FnMut(&mut [f64], usize, f64),
) -> Result<(), PredictError> {
    let fallback = |f: Fallback, what: &str, shown: &dyn Fn() -> String| {
        match f {
        Fallback::Value(v) => Ok(v),
        Fallback::Zeros => Ok(-1.0),
        Fallback::Error => Err(PredictError::InvalidInput(format!(
            "{}: {what} {}; this encoder was fitted to refuse it (handle_unknown='error'): send a known category",
            enc.step,
            shown()
        ))),
    }
    };
    match (&enc.src, &enc.lookup) {
        (Col::Num(src), Lookup::Num(map)) => {
            let b = regs.block;
            // Registers below the inputs' count hold the float64 inputs themselves.
            let of = match names.get(*src) {
                Some(name) => format!(" of input '{name}'"),
                None => String::new(),
            };
            for r in 0..len {
                let v = regs.values[src * b + r];
                let code = if v.is_nan() {
                    fallback(enc.missing, "a missing value", &|| {
                        format!("{of} in row {}", start + r)
                    })?
                } else {
                    match map.get(&streamml_ir::plan::num_key(v)) {
                        Some(&k) => enc.values[k as usize],
                        None => fallback(enc.unknown, "the unknown category", &|| {
                            format!("{v}{of} in row {}", start + r)
                        })?,
                    }
                };
                write(&mut regs.values, r, code);
            }
        }
        (Col::Str { input: j, fill }, Lookup::Str(map)) => {
            let column = cols.str[*j].as_ref().expect("a utf8 input");
            let nulls = cols.nulls[*j];
            let filled = fill.as_ref().map(|f| map.get(f.as_bytes()).copied());
            for r in 0..len {
                let code = if nulls && input.is_null(*j, start + r) {
                    match filled {
                        Some(Some(k)) => enc.values[k as usize],
                        Some(None) => fallback(enc.unknown, "the unknown category", &|| {
                            format!(
                                "{:?} (the imputed value) of input '{}' in row {}",
                                fill.as_deref().unwrap_or(""),
                                names[*j],
                                start + r
                            )
                        })?,
                        None => fallback(enc.missing, "a missing value", &|| {
                            format!("of input '{}' in row {}", names[*j], start + r)
                        })?,
                    }
                } else {
                    let bytes = column.bytes(start + r);
                    match map.get(bytes) {
                        Some(&k) => enc.values[k as usize],
                        None => fallback(enc.unknown, "the unknown category", &|| {
                            format!(
                                "{:?} of input '{}' in row {}",
                                String::from_utf8_lossy(bytes),
                                names[*j],
                                start + r
                            )
                        })?,
                    }
                };
                write(&mut regs.values, r, code);
            }
        }
        _ => unreachable!("the plan pairs numeric columns with numeric categories"),
    }
    Ok(())
}
