//! The IR document (`docs/ir.md`) as Rust types.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
pub struct Ir {
    pub format: String,
    pub version: u32,
    pub name: String,
    pub model_version: String,
    pub framework: String,
    pub task: String,
    pub features: Vec<String>,
    #[serde(default)]
    pub classes: Option<Vec<Value>>,
    #[serde(default)]
    pub preprocess: Option<Preprocess>,
    pub model: ModelIr,
    #[serde(default = "identity")]
    pub link: String,
    #[serde(default = "probability_gt_half")]
    pub binary_label: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, Value>,
    #[serde(default)]
    pub drift_reference: Option<Value>,
    /// The `isolation` link's constants (`docs/ir.md`, outlier detection).
    #[serde(default)]
    pub isolation: Option<crate::oblivious::IsolationIr>,
}

fn identity() -> String {
    "identity".into()
}

fn probability_gt_half() -> String {
    "probability_gt_half".into()
}

fn trunc() -> String {
    "trunc".into()
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Preprocess {
    StandardScaler { mean: Vec<f64>, scale: Vec<f64> },
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ModelIr {
    Trees(TreesIr),
    Linear(LinearIr),
    Oblivious(crate::oblivious::ObliviousIr),
}

#[derive(Debug, Deserialize)]
pub struct TreesIr {
    pub n_outputs: usize,
    pub base_score: Vec<f64>,
    #[serde(default = "sum")]
    pub aggregate: String,
    #[serde(default = "float64")]
    pub feature_cast: String,
    #[serde(default = "le")]
    pub comparison: String,
    #[serde(default = "float64")]
    pub accumulate: String,
    #[serde(default = "one")]
    pub sigmoid_scale: f64,
    #[serde(default = "trunc")]
    pub category_match: String,
    pub trees: Vec<TreeIr>,
}

fn sum() -> String {
    "sum".into()
}
pub(crate) fn float64() -> String {
    "float64".into()
}
pub(crate) fn le() -> String {
    "le".into()
}
pub(crate) fn one() -> f64 {
    1.0
}

#[derive(Debug, Deserialize)]
pub struct TreeIr {
    pub output: Option<usize>,
    pub split_feature: Vec<usize>,
    pub threshold: Vec<f64>,
    pub left: Vec<i64>,
    pub right: Vec<i64>,
    pub default_left: Vec<bool>,
    pub missing: Vec<String>,
    #[serde(default)]
    pub categories: Option<Vec<Option<Vec<i64>>>>,
    pub leaf_value: Vec<Value>,
}

#[derive(Debug, Deserialize)]
pub struct LinearIr {
    pub n_outputs: usize,
    pub coef: Vec<Vec<f64>>,
    pub intercept: Vec<f64>,
    #[serde(default = "one")]
    pub sigmoid_scale: f64,
}

impl Ir {
    /// Parse the document and check its format and version; the rest is
    /// [`crate::validate`]'s. serde_json refuses nesting deeper than 128, so
    /// parsing itself has bounded recursion.
    pub fn parse(text: &str) -> Result<Self, String> {
        let ir: Ir =
            serde_json::from_str(text).map_err(|e| format!("the model IR is invalid: {e}"))?;
        if ir.format != "streamml-ir" || ir.version != 1 {
            return Err(format!(
                "the model IR is {} v{}; this evaluator reads streamml-ir v1",
                ir.format, ir.version
            ));
        }
        Ok(ir)
    }
}
