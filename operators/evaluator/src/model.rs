//! The evaluator as a streamml `Model`: inputs, preprocessing, link, outputs.

use std::sync::Arc;

use serde_json::Value;
use streamml_sdk::arrow_array::builder::{Float64Builder, Int64Builder, StringBuilder};
use streamml_sdk::arrow_array::{ArrayRef, FixedSizeListArray, Float64Array};
use streamml_sdk::arrow_schema::{DataType, Field};
use streamml_sdk::{FieldSpec, Input, Model, ModelInfo, PredictError, Task, ABI_VERSION};

use crate::forest::Forest;
use crate::ir::{Ir, ModelIr, Preprocess};
use crate::linear::Linear;
use crate::payload::{own_path, read_payload};

/// Rows scored together: the row-major scratch (BLOCK x features) and the
/// raw scores stay in L1/L2 while every tree is walked once per block.
const BLOCK: usize = 64;

enum Kind {
    Trees(Box<Forest>),
    Linear(Linear),
}

#[derive(Clone, Copy, PartialEq)]
enum Link {
    Identity,
    Sigmoid,
    Softmax,
    Exp,
}

/// When a binary model says `classes[1]` (`docs/ir.md`, outputs).
#[derive(Clone, Copy, PartialEq)]
enum BinaryLabel {
    ProbabilityGtHalf,
    RawGtZero,
    RawGeZero,
    Argmax,
}

enum Classes {
    None,
    Int(Vec<i64>),
    Str(Vec<String>),
}

pub struct Evaluator {
    info: ModelInfo,
    n_features: usize,
    scaler: Option<(Vec<f64>, Vec<f64>)>,
    kind: Kind,
    link: Link,
    task: Task,
    binary_label: BinaryLabel,
    classes: Classes,
}

impl Evaluator {
    /// Build from the IR appended to this library's own file.
    pub fn from_own_file() -> Result<Self, String> {
        let path = own_path()?;
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Self::from_ir_text(read_payload(&bytes)?)
    }

    /// Build from an IR document.
    pub fn from_ir_text(text: &str) -> Result<Self, String> {
        let ir = Ir::parse(text)?;
        let n_features = ir.features.len();
        let (kind, n_outputs) = match &ir.model {
            ModelIr::Trees(t) => {
                let f = Forest::build(t, n_features)?;
                let n = f.n_outputs;
                (Kind::Trees(Box::new(f)), n)
            }
            ModelIr::Linear(l) => {
                let m = Linear::build(l, n_features)?;
                let n = m.n_outputs;
                (Kind::Linear(m), n)
            }
        };
        let link = match ir.link.as_str() {
            "identity" => Link::Identity,
            "sigmoid" => Link::Sigmoid,
            "softmax" => Link::Softmax,
            "exp" => Link::Exp,
            other => {
                return Err(format!(
                    "link '{other}'; expected identity, sigmoid, softmax or exp"
                ))
            }
        };
        let task = match ir.task.as_str() {
            "regression" => Task::Regression,
            "binary" => Task::Binary,
            "multiclass" => Task::Multiclass,
            other => {
                return Err(format!(
                    "task '{other}'; expected regression, binary or multiclass"
                ))
            }
        };
        let binary_label = match ir.binary_label.as_str() {
            "probability_gt_half" => BinaryLabel::ProbabilityGtHalf,
            "raw_gt_zero" => BinaryLabel::RawGtZero,
            "raw_ge_zero" => BinaryLabel::RawGeZero,
            "argmax" => BinaryLabel::Argmax,
            other => {
                return Err(format!(
                    "binary_label '{other}'; expected probability_gt_half, raw_gt_zero, raw_ge_zero or argmax"
                ))
            }
        };
        let classes = parse_classes(ir.classes.as_deref())?;
        let n_classes = match &classes {
            Classes::None => 0,
            Classes::Int(c) => c.len(),
            Classes::Str(c) => c.len(),
        };
        match task {
            Task::Regression if n_outputs != 1 => {
                return Err(format!("regression with {n_outputs} outputs"))
            }
            Task::Binary if n_classes != 2 || n_outputs > 2 => {
                return Err(format!(
                    "binary with {n_classes} classes and {n_outputs} outputs"
                ))
            }
            Task::Multiclass if n_classes != n_outputs || n_classes < 2 => {
                return Err(format!(
                    "multiclass with {n_classes} classes and {n_outputs} outputs"
                ))
            }
            _ => {}
        }
        let scaler = ir
            .preprocess
            .as_ref()
            .map(|Preprocess::StandardScaler { mean, scale }| (mean.clone(), scale.clone()));
        let info = build_info(&ir, task, &classes, n_outputs, &kind);
        Ok(Self {
            info,
            n_features,
            scaler,
            kind,
            link,
            task,
            binary_label,
            classes,
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
            match &self.kind {
                Kind::Trees(f) => f.raw_scores(block, len, out),
                Kind::Linear(l) => l.raw_scores(block, len, out),
            }
            self.apply_link(out);
        }
        scores
    }

    fn sigmoid_scale(&self) -> f64 {
        match &self.kind {
            Kind::Trees(f) => f.sigmoid_scale,
            Kind::Linear(l) => l.sigmoid_scale,
        }
    }

    fn n_outputs(&self) -> usize {
        match &self.kind {
            Kind::Trees(f) => f.n_outputs,
            Kind::Linear(l) => l.n_outputs,
        }
    }

    /// Fill `xs` (row-major) with rows `start..start + len`: nulls as NaN,
    /// then preprocessing, then the trees' float32 rounding.
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
        let cast_f32 = matches!(&self.kind, Kind::Trees(f) if f.cast_f32);
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
            if let Some((mean, scale)) = &self.scaler {
                for r in 0..len {
                    xs[r * nf + j] = (xs[r * nf + j] - mean[j]) / scale[j];
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
        let columns = input.float64_columns()?;
        let nulls: Vec<bool> = (0..nf).map(|j| input.may_have_nulls(j)).collect();
        let mut scores = vec![0.0; rows * no];
        let mut positive = Vec::with_capacity(if self.task == Task::Binary { rows } else { 0 });
        let mut xs = vec![0.0; BLOCK.min(rows.max(1)) * nf];
        let mut start = 0;
        while start < rows {
            let len = BLOCK.min(rows - start);
            self.gather(input, &columns, &nulls, start, len, &mut xs);
            let raw = &mut scores[start * no..(start + len) * no];
            match &self.kind {
                Kind::Trees(f) => f.raw_scores(&xs, len, raw),
                Kind::Linear(l) => l.raw_scores(&xs, len, raw),
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

fn parse_classes(classes: Option<&[Value]>) -> Result<Classes, String> {
    let Some(classes) = classes else {
        return Ok(Classes::None);
    };
    if classes.iter().all(|c| c.is_i64()) {
        Ok(Classes::Int(
            classes
                .iter()
                .map(|c| c.as_i64().expect("checked"))
                .collect(),
        ))
    } else if classes.iter().all(|c| c.is_string()) {
        Ok(Classes::Str(
            classes
                .iter()
                .map(|c| c.as_str().expect("checked").to_string())
                .collect(),
        ))
    } else {
        Err("classes must be all integers or all strings".into())
    }
}

fn build_info(ir: &Ir, task: Task, classes: &Classes, n_outputs: usize, kind: &Kind) -> ModelInfo {
    let label_type = match classes {
        Classes::Str(_) => "utf8",
        _ => "int64",
    };
    let outputs = match task {
        Task::Regression | Task::Other => vec![FieldSpec::new("prediction", "float64", false)],
        Task::Binary => vec![
            FieldSpec::new("probability", "float64", false),
            FieldSpec::new("label", label_type, false),
        ],
        Task::Multiclass => vec![
            FieldSpec::new(
                "probabilities",
                format!("fixed_size_list<float64, {n_outputs}>"),
                false,
            ),
            FieldSpec::new("label", label_type, false),
        ],
    };
    let mut metadata = ir.metadata.clone();
    match kind {
        Kind::Trees(f) => {
            metadata.insert("trees".into(), Value::from(f.n_trees));
            metadata.insert("max_depth".into(), Value::from(f.max_depth));
        }
        Kind::Linear(_) => {
            metadata.insert("model_type".into(), Value::from("linear"));
        }
    }
    metadata.insert(
        "evaluator".into(),
        Value::from(concat!("streamml-evaluator ", env!("CARGO_PKG_VERSION"))),
    );
    if let Some(c) = &ir.classes {
        metadata.insert("classes".into(), Value::from(c.clone()));
    }
    if ir.preprocess.is_some() {
        metadata.insert("preprocess".into(), Value::from("standard_scaler"));
    }
    ModelInfo {
        abi_version: ABI_VERSION,
        name: ir.name.clone(),
        version: ir.model_version.clone(),
        task,
        framework: ir.framework.clone(),
        inputs: ir
            .features
            .iter()
            .map(|f| FieldSpec::new(f, "float64", true))
            .collect(),
        outputs,
        drift_reference: ir.drift_reference.clone(),
        metadata,
    }
}
