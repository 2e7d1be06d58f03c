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
    /// One per feature: `"float64"` (the default) or `"utf8"`.
    #[serde(default)]
    pub input_types: Option<Vec<String>>,
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

/// `preprocess`: the legacy single scaler object, or a list of steps.
#[derive(Debug)]
pub enum Preprocess {
    StandardScaler { mean: Vec<f64>, scale: Vec<f64> },
    Steps(Vec<Step>),
}

impl<'de> Deserialize<'de> for Preprocess {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        enum Legacy {
            StandardScaler { mean: Vec<f64>, scale: Vec<f64> },
        }
        // The document's nesting is already bounded by the parser (128 levels).
        let value = Value::deserialize(d)?;
        if value.is_array() {
            return serde_json::from_value(value)
                .map(Preprocess::Steps)
                .map_err(|e| D::Error::custom(format!("preprocess steps: {e}")));
        }
        match serde_json::from_value(value).map_err(|e| {
            D::Error::custom(format!(
                "preprocess: {e}; expected a list of steps or a standard_scaler object"
            ))
        })? {
            Legacy::StandardScaler { mean, scale } => {
                Ok(Preprocess::StandardScaler { mean, scale })
            }
        }
    }
}

/// One preprocessing step (`docs/ir.md`, "Preprocessing"): an operation on
/// the current list of columns, with an optional name that errors and
/// `inspect` show (e.g. the scikit-learn step's path).
#[derive(Debug, Deserialize)]
pub struct Step {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(flatten)]
    pub op: Op,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Op {
    /// Per column j, in this order, each if present: `x - sub[j]`,
    /// `* mul[j]`, `/ div[j]`, `+ add[j]` (float64).
    Affine {
        #[serde(default)]
        sub: Option<Vec<f64>>,
        #[serde(default)]
        mul: Option<Vec<f64>>,
        #[serde(default)]
        div: Option<Vec<f64>>,
        #[serde(default)]
        add: Option<Vec<f64>>,
    },
    /// Round every (numeric) column to `to` (`"float32"`) and back.
    Cast { to: String },
    /// Replace missing values (NaN / null) by `fill[j]`, a number for a
    /// numeric column and a string for a utf8 column; then append one 0/1
    /// column per `indicator` entry (1 where that input column was missing).
    Impute {
        fill: Vec<Value>,
        #[serde(default)]
        indicator: Vec<usize>,
    },
    /// Keep these columns, in this order (repeats allowed).
    Select { columns: Vec<usize> },
    /// Each column becomes `width` 0/1 columns.
    OneHot { columns: Vec<OneHotColumn> },
    /// Each column becomes one numeric code.
    Ordinal { columns: Vec<OrdinalColumn> },
    /// Divide each row by its `l1`, `l2` or `max` norm (a zero norm leaves the row).
    Normalize { norm: String },
    /// Each part takes the listed columns through its steps; the parts'
    /// outputs are concatenated in order (scikit-learn's ColumnTransformer).
    Columns { parts: Vec<Part> },
    /// Each utf8 column becomes CatBoost's hash of its value, as a signed
    /// 32-bit integer; numeric columns pass.
    CatboostHash {},
    /// Appends one column per counter (CatBoost's ctr) over hashed columns.
    CatboostCtr {
        tables: Vec<crate::catboost::CtrTableIr>,
        ctrs: Vec<crate::catboost::CtrIr>,
    },
}

#[derive(Debug, Deserialize)]
pub struct Part {
    #[serde(default)]
    pub name: Option<String>,
    pub columns: Vec<usize>,
    #[serde(default)]
    pub steps: Vec<Step>,
}

/// `categories[k]` (numbers for a float64 column, strings for utf8) turns on
/// output `hot[k]` (`-1`: none, all zeros); `unknown` and `missing` are a
/// position, `-1`, or `"error"`.
#[derive(Debug, Deserialize)]
pub struct OneHotColumn {
    pub categories: Vec<Value>,
    pub hot: Vec<i64>,
    pub width: usize,
    pub unknown: Value,
    pub missing: Value,
}

/// `categories[k]` becomes `codes[k]` (null: NaN); `unknown` and `missing`
/// are a number, null (NaN) or `"error"`.
#[derive(Debug, Deserialize)]
pub struct OrdinalColumn {
    pub categories: Vec<Value>,
    pub codes: Vec<Option<f64>>,
    pub unknown: Value,
    pub missing: Value,
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
