//! Preprocessing steps (`docs/ir.md`, "Preprocessing") checked and flattened
//! into a plan: a straight list of operations on numbered registers that the
//! evaluator runs block by block, and a description of each step for
//! `inspect`. Checking and flattening are one walk, so the evaluator runs
//! exactly what was validated: column types (float64 / utf8) are followed
//! through every step, indices are in range, numbers finite, and the sizes
//! capped before anything is allocated.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use serde_json::Value;

use crate::ir::{OneHotColumn, Op, OrdinalColumn, Part, Step};

/// Numeric registers (each holds one column of a block of rows) in a plan.
pub const MAX_REGISTERS: usize = 1 << 17;
/// Categories over all encoders of a plan.
pub const MAX_CATEGORIES: usize = 1 << 22;
/// Outputs of one one-hot column.
pub const MAX_WIDTH: usize = 1 << 16;

/// An input's Arrow type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputType {
    Float64,
    Utf8,
}

impl InputType {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "float64" => Some(Self::Float64),
            "utf8" => Some(Self::Utf8),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Float64 => "float64",
            Self::Utf8 => "utf8",
        }
    }
}

/// A column while the plan is built: a numeric register, or a utf8 input
/// with the string that replaces its nulls (an imputer's fill).
#[derive(Clone, Debug, PartialEq)]
pub enum Col {
    Num(usize),
    Str { input: usize, fill: Option<String> },
}

/// What an encoder does with an unknown or missing value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fallback {
    /// One-hot: this output is 1 (ordinal: this code).
    Value(f64),
    /// One-hot: all outputs 0.
    Zeros,
    /// The batch fails, naming the column and value.
    Error,
}

/// A fast hasher for category lookups (FxHash's multiply-rotate); the keys
/// come from the IR, so a hostile document can only slow its own model.
#[derive(Default, Clone, Copy)]
pub struct FxHasher(u64);

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
}

pub type FxBuild = BuildHasherDefault<FxHasher>;

/// Categories of one encoded column, to the index of their entry.
#[derive(Clone, Debug)]
pub enum Lookup {
    /// Keyed by the value's bits (-0.0 is read as 0.0).
    Num(HashMap<u64, u32, FxBuild>),
    /// Keyed by the string's UTF-8 bytes (looked up without validating the input).
    Str(HashMap<Vec<u8>, u32, FxBuild>),
}

/// How an encoder reads one column.
#[derive(Clone, Debug)]
pub struct Encoding {
    pub src: Col,
    pub lookup: Lookup,
    /// Per category: one-hot position (or -1: all zeros) / ordinal code.
    pub values: Vec<f64>,
    pub unknown: Fallback,
    pub missing: Fallback,
    /// For error messages: the step's label.
    pub step: String,
}

#[derive(Clone, Debug)]
pub enum PlanOp {
    /// `dst = (((src - sub) * mul) / div) + add`, each part if present.
    Affine {
        src: usize,
        dst: usize,
        sub: Option<f64>,
        mul: Option<f64>,
        div: Option<f64>,
        add: Option<f64>,
    },
    CastF32 {
        src: usize,
        dst: usize,
    },
    /// Truncated toward zero as C's cast to int64 on x86-64; NaN and values of
    /// magnitude 2^63 or more (no int64) become NaN.
    TruncI64 {
        src: usize,
        dst: usize,
    },
    Fill {
        src: usize,
        dst: usize,
        fill: f64,
    },
    /// 1.0 where `src` is missing, else 0.0.
    Indicator {
        src: Col,
        dst: usize,
    },
    /// Registers `dst..dst + width` get the one-hot code.
    OneHot {
        enc: Encoding,
        dst: usize,
        width: usize,
    },
    Ordinal {
        enc: Encoding,
        dst: usize,
    },
    Normalize {
        src: Vec<usize>,
        dst: usize,
        norm: Norm,
    },
    /// `dst` = CatBoost's hash of the utf8 input `input` (nulls: `fill`, else an error).
    CatboostHash {
        input: usize,
        fill: Option<String>,
        dst: usize,
        step: String,
    },
    /// Each group's counters (`docs/ir.md`, `catboost_ctr`).
    CatboostCtr {
        groups: Vec<crate::catboost::CtrGroup>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Norm {
    L1,
    L2,
    Max,
}

/// A checked, flattened preprocessing plan.
#[derive(Clone, Debug)]
pub struct Plan {
    pub input_types: Vec<InputType>,
    /// Numeric registers; registers `0..inputs` hold the float64 inputs.
    pub n_registers: usize,
    pub ops: Vec<PlanOp>,
    /// The registers the model reads, in order (its features).
    pub outputs: Vec<usize>,
    /// One line per step, for `inspect`: `name: type (columns in -> out)`.
    pub steps: Vec<String>,
}

struct Builder {
    n_registers: usize,
    categories: usize,
    ops: Vec<PlanOp>,
    steps: Vec<String>,
}

/// Check `steps` over inputs of `types` and flatten them; `steps` None is
/// the identity (the model reads the inputs, which must all be float64).
pub fn plan(types: &[InputType], steps: Option<&[Step]>) -> Result<Plan, String> {
    let n = types.len();
    let mut b = Builder {
        n_registers: n,
        categories: 0,
        ops: Vec::new(),
        steps: Vec::new(),
    };
    let cols: Vec<Col> = types
        .iter()
        .enumerate()
        .map(|(j, t)| match t {
            InputType::Float64 => Col::Num(j),
            InputType::Utf8 => Col::Str {
                input: j,
                fill: None,
            },
        })
        .collect();
    let cols = b.steps(steps.unwrap_or(&[]), cols, "")?;
    let mut outputs = Vec::with_capacity(cols.len());
    for (k, c) in cols.iter().enumerate() {
        match c {
            Col::Num(r) => outputs.push(*r),
            Col::Str { input, .. } => {
                return Err(format!(
                    "the model's feature {k} is the utf8 input {input}; strings must be encoded (one_hot or ordinal) before the model"
                ))
            }
        }
    }
    Ok(Plan {
        input_types: types.to_vec(),
        n_registers: b.n_registers,
        ops: b.ops,
        outputs,
        steps: b.steps,
    })
}

fn op_name(op: &Op) -> &'static str {
    match op {
        Op::Affine { .. } => "affine",
        Op::Cast { .. } => "cast",
        Op::Impute { .. } => "impute",
        Op::Select { .. } => "select",
        Op::OneHot { .. } => "one_hot",
        Op::Ordinal { .. } => "ordinal",
        Op::Normalize { .. } => "normalize",
        Op::Columns { .. } => "columns",
        Op::CatboostHash { .. } => "catboost_hash",
        Op::CatboostCtr { .. } => "catboost_ctr",
    }
}

impl Builder {
    fn register(&mut self, what: &str) -> Result<usize, String> {
        self.alloc(1, what)
    }

    fn alloc(&mut self, count: usize, what: &str) -> Result<usize, String> {
        let r = self.n_registers;
        if count > MAX_REGISTERS || r + count > MAX_REGISTERS {
            return Err(format!(
                "{what}: the preprocessing needs more than {MAX_REGISTERS} columns"
            ));
        }
        self.n_registers += count;
        Ok(r)
    }

    fn steps(
        &mut self,
        steps: &[Step],
        mut cols: Vec<Col>,
        prefix: &str,
    ) -> Result<Vec<Col>, String> {
        for (i, step) in steps.iter().enumerate() {
            let path = format!(
                "{prefix}{}",
                step.name.clone().unwrap_or_else(|| i.to_string())
            );
            let what = format!("preprocess step '{path}' ({})", op_name(&step.op));
            let n_in = cols.len();
            cols = self.step(step, cols, &what, &path)?;
            self.steps.push(format!(
                "{path}: {} ({n_in} -> {} columns)",
                op_name(&step.op),
                cols.len()
            ));
        }
        Ok(cols)
    }

    fn numeric(cols: &[Col], what: &str) -> Result<Vec<usize>, String> {
        cols.iter()
            .enumerate()
            .map(|(j, c)| match c {
                Col::Num(r) => Ok(*r),
                Col::Str { .. } => Err(format!(
                    "{what}: column {j} is utf8; this step takes numeric columns only"
                )),
            })
            .collect()
    }

    fn step(
        &mut self,
        step: &Step,
        cols: Vec<Col>,
        what: &str,
        path: &str,
    ) -> Result<Vec<Col>, String> {
        let n = cols.len();
        match &step.op {
            Op::Affine { sub, mul, div, add } => {
                let regs = Self::numeric(&cols, what)?;
                for (part, values) in [("sub", sub), ("mul", mul), ("div", div), ("add", add)] {
                    let Some(values) = values else { continue };
                    if values.len() != n {
                        return Err(format!(
                            "{what}: {part} has {} values for {n} columns; expected one per column",
                            values.len()
                        ));
                    }
                    if let Some(j) = values
                        .iter()
                        .position(|v| !v.is_finite() || (part == "div" && *v == 0.0))
                    {
                        return Err(format!(
                            "{what}: {part}[{j}] is {}; expected a finite{} number",
                            values[j],
                            if part == "div" { ", non-zero" } else { "" }
                        ));
                    }
                }
                let at = |v: &Option<Vec<f64>>, j: usize| v.as_ref().map(|v| v[j]);
                let mut out = Vec::with_capacity(n);
                for (j, src) in regs.into_iter().enumerate() {
                    let dst = self.register(what)?;
                    self.ops.push(PlanOp::Affine {
                        src,
                        dst,
                        sub: at(sub, j),
                        mul: at(mul, j),
                        div: at(div, j),
                        add: at(add, j),
                    });
                    out.push(Col::Num(dst));
                }
                Ok(out)
            }
            Op::Cast { to } => {
                let int64 = match to.as_str() {
                    "float32" => false,
                    "int64" => true,
                    _ => return Err(format!("{what}: cast to '{to}'; expected float32 or int64")),
                };
                let regs = Self::numeric(&cols, what)?;
                let mut out = Vec::with_capacity(n);
                for src in regs {
                    let dst = self.register(what)?;
                    self.ops.push(if int64 {
                        PlanOp::TruncI64 { src, dst }
                    } else {
                        PlanOp::CastF32 { src, dst }
                    });
                    out.push(Col::Num(dst));
                }
                Ok(out)
            }
            Op::Impute { fill, indicator } => {
                if fill.len() != n {
                    return Err(format!(
                        "{what}: fill has {} values for {n} columns; expected one per column",
                        fill.len()
                    ));
                }
                let mut out = Vec::with_capacity(n + indicator.len());
                for (j, (col, value)) in cols.iter().zip(fill).enumerate() {
                    match (col, value) {
                        (Col::Num(src), v) if v.as_f64().is_some_and(f64::is_finite) => {
                            let dst = self.register(what)?;
                            self.ops.push(PlanOp::Fill {
                                src: *src,
                                dst,
                                fill: v.as_f64().unwrap_or_default(),
                            });
                            out.push(Col::Num(dst));
                        }
                        (Col::Str { input, fill: old }, Value::String(s)) => out.push(Col::Str {
                            input: *input,
                            fill: Some(old.clone().unwrap_or_else(|| s.clone())),
                        }),
                        (Col::Num(_), v) => {
                            return Err(format!(
                                "{what}: fill[{j}] is {v} for a numeric column; expected a finite number"
                            ))
                        }
                        (Col::Str { .. }, v) => {
                            return Err(format!(
                                "{what}: fill[{j}] is {v} for a utf8 column; expected a string"
                            ))
                        }
                    }
                }
                for &j in indicator {
                    let src = cols.get(j).cloned().ok_or_else(|| {
                        format!("{what}: indicator column {j} is out of range for {n} columns")
                    })?;
                    let dst = self.register(what)?;
                    self.ops.push(PlanOp::Indicator { src, dst });
                    out.push(Col::Num(dst));
                }
                Ok(out)
            }
            Op::Select { columns } => select(&cols, columns, what),
            Op::OneHot { columns } => {
                if columns.len() != n {
                    return Err(format!(
                        "{what}: {} encoded columns for {n} input columns; expected one per column",
                        columns.len()
                    ));
                }
                let mut out = Vec::new();
                for (j, (col, spec)) in cols.into_iter().zip(columns).enumerate() {
                    let width = spec.width;
                    if width > MAX_WIDTH {
                        return Err(format!(
                            "{what}: column {j} has width {width}; at most {MAX_WIDTH}"
                        ));
                    }
                    let enc = self.one_hot(col, spec, j, what)?;
                    let dst = self.alloc(width, what)?;
                    self.ops.push(PlanOp::OneHot { enc, dst, width });
                    out.extend((dst..dst + width).map(Col::Num));
                }
                Ok(out)
            }
            Op::Ordinal { columns } => {
                if columns.len() != n {
                    return Err(format!(
                        "{what}: {} encoded columns for {n} input columns; expected one per column",
                        columns.len()
                    ));
                }
                let mut out = Vec::with_capacity(n);
                for (j, (col, spec)) in cols.into_iter().zip(columns).enumerate() {
                    let enc = self.ordinal(col, spec, j, what)?;
                    let dst = self.register(what)?;
                    self.ops.push(PlanOp::Ordinal { enc, dst });
                    out.push(Col::Num(dst));
                }
                Ok(out)
            }
            Op::Normalize { norm } => {
                let norm = match norm.as_str() {
                    "l1" => Norm::L1,
                    "l2" => Norm::L2,
                    "max" => Norm::Max,
                    other => return Err(format!("{what}: norm '{other}'; expected l1, l2 or max")),
                };
                let src = Self::numeric(&cols, what)?;
                let dst = self.alloc(n, what)?;
                self.ops.push(PlanOp::Normalize { src, dst, norm });
                Ok((dst..dst + n).map(Col::Num).collect())
            }
            Op::CatboostHash {} => {
                let mut out = Vec::with_capacity(n);
                for col in cols {
                    match col {
                        Col::Num(r) => out.push(Col::Num(r)),
                        Col::Str { input, fill } => {
                            let dst = self.register(what)?;
                            self.ops.push(PlanOp::CatboostHash {
                                input,
                                fill,
                                dst,
                                step: what.to_string(),
                            });
                            out.push(Col::Num(dst));
                        }
                    }
                }
                Ok(out)
            }
            Op::CatboostCtr { tables, ctrs } => {
                let regs = Self::numeric(&cols, what)?;
                let base = self.alloc(ctrs.len(), what)?;
                let groups = crate::catboost::groups(tables, ctrs, &regs, base, what)?;
                self.ops.push(PlanOp::CatboostCtr { groups });
                let mut out = cols;
                out.extend((base..base + ctrs.len()).map(Col::Num));
                Ok(out)
            }
            Op::Columns { parts } => {
                let mut out = Vec::new();
                for (p, part) in parts.iter().enumerate() {
                    let Part {
                        name,
                        columns,
                        steps,
                    } = part;
                    let part_label = name.clone().unwrap_or_else(|| p.to_string());
                    let selected = select(&cols, columns, &format!("{what} part '{part_label}'"))?;
                    // Names inside a part are relative to the columns step.
                    let inner = format!("{path}/");
                    out.extend(self.steps(steps, selected, &inner)?);
                    if out.len() > MAX_REGISTERS {
                        return Err(format!(
                            "{what}: the preprocessing needs more than {MAX_REGISTERS} columns"
                        ));
                    }
                }
                Ok(out)
            }
        }
    }

    fn categories(
        &mut self,
        col: &Col,
        categories: &[Value],
        j: usize,
        what: &str,
    ) -> Result<Lookup, String> {
        self.categories += categories.len();
        if self.categories > MAX_CATEGORIES {
            return Err(format!(
                "{what}: the encoders hold more than {MAX_CATEGORIES} categories"
            ));
        }
        match col {
            Col::Num(_) => {
                let mut map =
                    HashMap::with_capacity_and_hasher(categories.len(), FxBuild::default());
                for (k, c) in categories.iter().enumerate() {
                    let v = c.as_f64().filter(|v| v.is_finite()).ok_or_else(|| {
                        format!("{what}: column {j} is numeric but category {k} is {c}; expected a finite number")
                    })?;
                    if map.insert(num_key(v), k as u32).is_some() {
                        return Err(format!("{what}: column {j} lists category {c} twice"));
                    }
                }
                Ok(Lookup::Num(map))
            }
            Col::Str { .. } => {
                let mut map =
                    HashMap::with_capacity_and_hasher(categories.len(), FxBuild::default());
                for (k, c) in categories.iter().enumerate() {
                    let s = c.as_str().ok_or_else(|| {
                        format!(
                            "{what}: column {j} is utf8 but category {k} is {c}; expected a string"
                        )
                    })?;
                    if map.insert(s.as_bytes().to_vec(), k as u32).is_some() {
                        return Err(format!("{what}: column {j} lists category {c} twice"));
                    }
                }
                Ok(Lookup::Str(map))
            }
        }
    }

    fn one_hot(
        &mut self,
        src: Col,
        spec: &OneHotColumn,
        j: usize,
        what: &str,
    ) -> Result<Encoding, String> {
        let lookup = self.categories(&src, &spec.categories, j, what)?;
        if spec.hot.len() != spec.categories.len() {
            return Err(format!(
                "{what}: column {j} has {} hot positions for {} categories",
                spec.hot.len(),
                spec.categories.len()
            ));
        }
        let w = spec.width as i64;
        if let Some(h) = spec.hot.iter().find(|h| !(-1..w).contains(*h)) {
            return Err(format!(
                "{what}: column {j} has the hot position {h}; expected -1 to {}",
                w - 1
            ));
        }
        let fallback = |v: &Value, role: &str| -> Result<Fallback, String> {
            match v {
                Value::String(s) if s == "error" => Ok(Fallback::Error),
                v => match v.as_i64() {
                    Some(-1) => Ok(Fallback::Zeros),
                    Some(h) if (0..w).contains(&h) => Ok(Fallback::Value(h as f64)),
                    _ => Err(format!(
                        "{what}: column {j}: {role} is {v}; expected a position -1 to {}, or \"error\"",
                        w - 1
                    )),
                },
            }
        };
        Ok(Encoding {
            unknown: fallback(&spec.unknown, "unknown")?,
            missing: fallback(&spec.missing, "missing")?,
            src,
            lookup,
            values: spec.hot.iter().map(|h| *h as f64).collect(),
            step: what.to_string(),
        })
    }

    fn ordinal(
        &mut self,
        src: Col,
        spec: &OrdinalColumn,
        j: usize,
        what: &str,
    ) -> Result<Encoding, String> {
        let lookup = self.categories(&src, &spec.categories, j, what)?;
        if spec.codes.len() != spec.categories.len() {
            return Err(format!(
                "{what}: column {j} has {} codes for {} categories",
                spec.codes.len(),
                spec.categories.len()
            ));
        }
        if let Some(c) = spec.codes.iter().flatten().find(|c| !c.is_finite()) {
            return Err(format!(
                "{what}: column {j} has the code {c}; expected finite numbers or null"
            ));
        }
        let fallback = |v: &Value, role: &str| -> Result<Fallback, String> {
            match v {
                Value::String(s) if s == "error" => Ok(Fallback::Error),
                Value::Null => Ok(Fallback::Value(f64::NAN)),
                v => match v.as_f64() {
                    Some(c) if c.is_finite() => Ok(Fallback::Value(c)),
                    _ => Err(format!(
                        "{what}: column {j}: {role} is {v}; expected a finite number, null or \"error\""
                    )),
                },
            }
        };
        Ok(Encoding {
            unknown: fallback(&spec.unknown, "unknown")?,
            missing: fallback(&spec.missing, "missing")?,
            src,
            lookup,
            values: spec.codes.iter().map(|c| c.unwrap_or(f64::NAN)).collect(),
            step: what.to_string(),
        })
    }
}

/// The key of a numeric category (0.0 and -0.0 are one category).
pub fn num_key(v: f64) -> u64 {
    if v == 0.0 {
        0
    } else {
        v.to_bits()
    }
}

fn select(cols: &[Col], columns: &[usize], what: &str) -> Result<Vec<Col>, String> {
    if columns.len() > MAX_REGISTERS {
        return Err(format!("{what}: selects more than {MAX_REGISTERS} columns"));
    }
    columns
        .iter()
        .map(|&j| {
            cols.get(j).cloned().ok_or_else(|| {
                format!(
                    "{what}: column {j} is out of range for {} columns",
                    cols.len()
                )
            })
        })
        .collect()
}
