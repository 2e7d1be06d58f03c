//! The evaluator as a streamml `Model`: inputs, preprocessing, link, outputs.

use std::sync::Arc;

use streamml_sdk::arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use streamml_sdk::arrow_array::{ArrayRef, FixedSizeListArray, Float64Array, Int64Array};
use streamml_sdk::arrow_schema::{DataType, Field};
use streamml_sdk::{Input, Model, ModelInfo, PredictError, Task};

use crate::forest::Forest;
use crate::ir::ModelIr;
use crate::linear::Linear;
use crate::oblivious::Oblivious;
use crate::payload::own_path;
use crate::prep::{self, Columns, Registers};
use streamml_ir::{build_info, read_payload, BinaryLabel, Classes, Link, Plan};

/// Rows scored together: the row-major scratch (BLOCK x features) and the
/// raw scores stay in L1/L2 while every tree is walked once per block.
const BLOCK: usize = 64;

enum Kind {
    Trees(Box<Forest>),
    Linear(Linear),
    Oblivious(Box<Oblivious>),
}

pub struct Evaluator {
    info: ModelInfo,
    /// Features the model reads (after preprocessing).
    n_features: usize,
    /// The preprocessing; None when the model reads its float64 inputs as they are.
    plan: Option<Plan>,
    names: Vec<String>,
    kind: Kind,
    link: Link,
    task: Task,
    binary_label: BinaryLabel,
    classes: Classes,
    /// The isolation link's denominator and offset (the outlier task).
    isolation: Option<(f64, f64)>,
}

impl Evaluator {
    /// Build from the IR appended to this library's own file.
    pub fn from_own_file() -> Result<Self, String> {
        let path = own_path()?;
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_ir_text(read_payload(&bytes)?)
    }

    /// Build from an IR document, after validating it (`streamml-ir`).
    pub fn from_ir_text(text: &str) -> Result<Self, String> {
        let (ir, checked) = streamml_ir::load(text)?;
        let n_features = checked.plan.outputs.len();
        let kind = match &ir.model {
            ModelIr::Trees(t) => Kind::Trees(Box::new(Forest::build(
                t,
                n_features,
                &checked.tree_depths,
            )?)),
            ModelIr::Linear(l) => Kind::Linear(Linear::build(l, n_features)?),
            ModelIr::Oblivious(o) => Kind::Oblivious(Box::new(Oblivious::build(o, n_features)?)),
        };
        let info = build_info(&ir, &checked);
        let identity = checked.plan.ops.is_empty()
            && checked
                .plan
                .outputs
                .iter()
                .copied()
                .eq(0..ir.features.len());
        Ok(Self {
            info,
            n_features,
            plan: (!identity).then(|| checked.plan.clone()),
            names: ir.features.clone(),
            kind,
            link: checked.link,
            task: checked.task,
            binary_label: checked.binary_label,
            classes: checked.classes,
            isolation: ir.isolation.as_ref().map(|i| (i.denominator, i.offset)),
        })
    }

    /// Inputs of the model, in order.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    /// Scores (after the link) of row-major, already preprocessed rows: the
    /// evaluator's core without a host, for benchmarks and tests.
    pub fn score_rows(&self, xs: &[f64], rows: usize) -> Vec<f64> {
        let no = self.n_outputs();
        let mut scores = vec![0.0; rows * no];
        for (block, out) in xs
            .chunks(BLOCK * self.n_features)
            .zip(scores.chunks_mut(BLOCK * no))
        {
            let len = block.len() / self.n_features;
            self.raw_scores(block, len, out);
            self.apply_link(out);
        }
        scores
    }

    fn raw_scores(&self, xs: &[f64], rows: usize, raw: &mut [f64]) {
        match &self.kind {
            Kind::Trees(f) => f.raw_scores(xs, rows, raw),
            Kind::Linear(l) => l.raw_scores(xs, rows, raw),
            Kind::Oblivious(o) => o.raw_scores(xs, rows, raw),
        }
    }

    /// The trees compare features rounded to float32.
    fn cast_f32(&self) -> bool {
        match &self.kind {
            Kind::Trees(f) => f.cast_f32,
            Kind::Oblivious(o) => o.cast_f32,
            Kind::Linear(_) => false,
        }
    }

    fn sigmoid_scale(&self) -> f64 {
        match &self.kind {
            Kind::Trees(f) => f.sigmoid_scale,
            Kind::Linear(l) => l.sigmoid_scale,
            Kind::Oblivious(o) => o.sigmoid_scale,
        }
    }

    fn n_outputs(&self) -> usize {
        match &self.kind {
            Kind::Trees(f) => f.n_outputs,
            Kind::Linear(l) => l.n_outputs,
            Kind::Oblivious(o) => o.n_outputs,
        }
    }

    /// Fill `xs` (row-major) with rows `start..start + len` of float64
    /// inputs read as they are: nulls as NaN, then the trees' float32 rounding.
    fn gather(
        &self,
        input: &Input<'_>,
        columns: &[std::borrow::Cow<'_, [f64]>],
        nulls: &[bool],
        start: usize,
        len: usize,
        xs: &mut [f64],
    ) {
        let nf = self.n_features;
        let cast_f32 = self.cast_f32();
        for (j, column) in columns.iter().enumerate() {
            let column = &column[start..start + len];
            for (r, &v) in column.iter().enumerate() {
                xs[r * nf + j] = v;
            }
            if nulls[j] {
                for r in 0..len {
                    if input.is_null(j, start + r) {
                        xs[r * nf + j] = f64::NAN;
                    }
                }
            }
            if cast_f32 {
                for r in 0..len {
                    xs[r * nf + j] = xs[r * nf + j] as f32 as f64;
                }
            }
        }
    }

    fn apply_link(&self, raw: &mut [f64]) {
        let no = self.n_outputs();
        match self.link {
            Link::Identity => {}
            Link::Sigmoid => {
                let s = self.sigmoid_scale();
                raw.iter_mut()
                    .for_each(|z| *z = 1.0 / (1.0 + (-s * *z).exp()));
            }
            Link::Exp => raw.iter_mut().for_each(|z| *z = z.exp()),
            Link::Isolation => {
                // scikit-learn: 2 ** -(depths / denominator), where a zero denominator gives 2 ** -1.
                let denominator = self.isolation.map_or(0.0, |(d, _)| d);
                raw.iter_mut().for_each(|z| {
                    let q = if denominator != 0.0 { *z / denominator } else { 1.0 };
                    *z = -(2f64.powf(-q));
                });
            }
            Link::Softmax => {
                for row in raw.chunks_mut(no) {
                    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let mut sum = 0.0;
                    for z in row.iter_mut() {
                        *z = (*z - max).exp();
                        sum += *z;
                    }
                    row.iter_mut().for_each(|z| *z /= sum);
                }
            }
        }
    }
}

impl Model for Evaluator {
    fn info(&self) -> ModelInfo {
        self.info.clone()
    }

    fn predict(&self, input: &Input<'_>) -> Result<Vec<ArrayRef>, PredictError> {
        let rows = input.num_rows();
        let nf = self.n_features;
        let no = self.n_outputs();
        let cast_f32 = self.cast_f32();
        let (columns, nulls, prepared) = match &self.plan {
            None => {
                let columns = input.float64_columns()?;
                let nulls: Vec<bool> = (0..nf).map(|j| input.may_have_nulls(j)).collect();
                (columns, nulls, None)
            }
            Some(plan) => {
                let cols = Columns::read(input, &plan.input_types)?;
                let regs = Registers::new(plan, BLOCK.min(rows.max(1)));
                (Vec::new(), Vec::new(), Some((plan, cols, regs)))
            }
        };
        let mut prepared = prepared;
        let mut scores = vec![0.0; rows * no];
        let mut positive = Vec::with_capacity(if self.task == Task::Binary { rows } else { 0 });
        // Oblivious trees on float64 inputs read the Arrow columns straight into their column blocks.
        let direct = match (&prepared, &self.kind) {
            (None, Kind::Oblivious(o)) => Some(o),
            _ => None,
        };
        if let Some(o) = direct {
            o.raw_scores_with(rows, &mut scores, |r0, len, cols| {
                gather_columns(input, &columns, &nulls, r0, len, cast_f32, cols)
            });
        }
        let mut xs = vec![0.0; if direct.is_some() { 0 } else { BLOCK.min(rows.max(1)) * nf }];
        let mut start = 0;
        while start < rows {
            let len = BLOCK.min(rows - start);
            match &mut prepared {
                None if direct.is_some() => {}
                None => self.gather(input, &columns, &nulls, start, len, &mut xs),
                Some((plan, cols, regs)) => prep::run(
                    plan,
                    &self.names,
                    input,
                    cols,
                    regs,
                    start,
                    len,
                    cast_f32,
                    &mut xs,
                )?,
            }
            let raw = &mut scores[start * no..(start + len) * no];
            if direct.is_none() {
                self.raw_scores(&xs, len, raw);
            }
            let raw_rule = matches!(
                self.binary_label,
                BinaryLabel::RawGtZero | BinaryLabel::RawGeZero
            );
            if self.task == Task::Binary && raw_rule {
                self.binary_positive(raw, no, &mut positive);
            }
            self.apply_link(raw);
            if self.task == Task::Binary && !raw_rule {
                self.binary_positive(raw, no, &mut positive);
            }
            start += len;
        }
        Ok(self.outputs(scores, positive, no))
    }
}

/// Rows `start..start + len` of float64 inputs into the column-major block
/// `cols` (feature `j` of row `r` at `j * oblivious::ROWS + r`): nulls as NaN,
/// then the trees' float32 rounding.
fn gather_columns(
    input: &Input<'_>,
    columns: &[std::borrow::Cow<'_, [f64]>],
    nulls: &[bool],
    start: usize,
    len: usize,
    cast_f32: bool,
    cols: &mut [f64],
) {
    use crate::oblivious::ROWS;
    for (j, column) in columns.iter().enumerate() {
        let col = &mut cols[j * ROWS..j * ROWS + len];
        col.copy_from_slice(&column[start..start + len]);
        if nulls[j] {
            for (r, v) in col.iter_mut().enumerate() {
                if input.is_null(j, start + r) {
                    *v = f64::NAN;
                }
            }
        }
        if cast_f32 {
            col.iter_mut().for_each(|v| *v = *v as f32 as f64);
        }
    }
}

impl Evaluator {
    /// Append, per row of `values` (raw scores for the raw rules, scores
    /// after the link for the others), whether the label is `classes[1]`.
    fn binary_positive(&self, values: &[f64], no: usize, positive: &mut Vec<bool>) {
        for row in values.chunks(no) {
            positive.push(match self.binary_label {
                BinaryLabel::ProbabilityGtHalf => row[no - 1] > 0.5,
                BinaryLabel::RawGtZero => row[no - 1] > 0.0,
                BinaryLabel::RawGeZero => row[no - 1] >= 0.0,
                BinaryLabel::Argmax => row[no - 1] > row[0],
            });
        }
    }

    fn outputs(&self, scores: Vec<f64>, positive: Vec<bool>, no: usize) -> Vec<ArrayRef> {
        match self.task {
            Task::Other if self.link == Link::Isolation => {
                // score_samples, decision_function = score - offset_, predict = -1 where decision < 0.
                let offset = self.isolation.map_or(0.0, |(_, o)| o);
                let decision: Vec<f64> = scores.iter().map(|s| s - offset).collect();
                let predict: Vec<i64> = decision.iter().map(|d| if *d < 0.0 { -1 } else { 1 }).collect();
                vec![
                    Arc::new(Float64Array::from(scores)),
                    Arc::new(Float64Array::from(decision)),
                    Arc::new(Int64Array::from(predict)),
                ]
            }
            Task::Regression | Task::Other => vec![Arc::new(Float64Array::from(scores))],
            Task::Binary => {
                let prob: Vec<f64> = if no == 1 {
                    scores
                } else {
                    scores.chunks(no).map(|s| s[1]).collect()
                };
                let label: Vec<usize> = positive.iter().map(|p| usize::from(*p)).collect();
                let label = self.labels(&label);
                vec![Arc::new(Float64Array::from(prob)), label]
            }
            Task::Multiclass => {
                let label: Vec<usize> = scores
                    .chunks(no)
                    .map(|s| {
                        let mut best = 0;
                        for (k, v) in s.iter().enumerate() {
                            if *v > s[best] {
                                best = k;
                            }
                        }
                        best
                    })
                    .collect();
                let label = self.labels(&label);
                let item = Arc::new(Field::new("item", DataType::Float64, true));
                let values = Arc::new(Float64Array::from(scores));
                let probs = FixedSizeListArray::new(item, no as i32, values, None);
                vec![Arc::new(probs), label]
            }
        }
    }

    fn labels(&self, index: &[usize]) -> ArrayRef {
        match &self.classes {
            Classes::Int(c) => {
                let mut b = Int64Builder::with_capacity(index.len());
                index.iter().for_each(|i| b.append_value(c[*i]));
                Arc::new(b.finish())
            }
            Classes::Str(c) => {
                let mut b = StringBuilder::new();
                index.iter().for_each(|i| b.append_value(&c[*i]));
                Arc::new(b.finish())
            }
            Classes::None => {
                let mut b = Float64Builder::new();
                index.iter().for_each(|i| b.append_value(*i as f64));
                Arc::new(b.finish())
            }
        }
    }
}
