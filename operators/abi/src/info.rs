//! The info document: the JSON a model binary describes itself with.
//!
//! ```json
//! {"abi_version": 1, "name": "s1_logistic", "version": "1.0.0", "task": "binary",
//!  "framework": "rust-sdk",
//!  "inputs":  [{"name": "x0", "type": "float64", "nullable": false}],
//!  "outputs": [{"name": "probability", "type": "float64", "nullable": false}],
//!  "drift_reference": null, "metadata": {}}
//! ```
//!
//! Types are written in a small grammar (see [`parse_type`]) rather than
//! Arrow format strings, so that the document reads well to people.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};

use crate::ffi::ABI_VERSION;

/// Why an info document was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InfoError {
    #[error("info is not valid JSON for ABI v1: {0}")]
    Json(String),
    #[error("info declares abi_version {got}; this host speaks {expected}")]
    AbiVersion { got: u32, expected: u32 },
    #[error("info declares no {0} fields; a model needs at least one")]
    NoFields(&'static str),
    #[error("info declares the {kind} field '{name}' twice; field names must be unique")]
    DuplicateField { kind: &'static str, name: String },
    #[error("info field '{name}' has type '{ty}', which is not a supported type ({reason})")]
    BadType {
        name: String,
        ty: String,
        reason: String,
    },
}

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Regression,
    Binary,
    Multiclass,
    /// Anything else (ranking, embedding, a rule engine...).
    Other,
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Task::Regression => "regression",
            Task::Binary => "binary",
            Task::Multiclass => "multiclass",
            Task::Other => "other",
        };
        f.write_str(s)
    }
}

/// One input or output field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldSpec {
    pub name: String,
    /// A type in the grammar of [`parse_type`], e.g. `float64`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Whether the field may hold nulls. Inputs: the host refuses a batch with
    /// nulls in a non-nullable field. Defaults to false.
    #[serde(default)]
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl FieldSpec {
    /// A field of type `ty` (grammar of [`parse_type`]).
    pub fn new(name: impl Into<String>, ty: impl Into<String>, nullable: bool) -> Self {
        Self {
            name: name.into(),
            ty: ty.into(),
            nullable,
            description: None,
        }
    }

    /// The Arrow type of this field.
    pub fn data_type(&self) -> Result<DataType, InfoError> {
        parse_type(&self.ty).map_err(|reason| InfoError::BadType {
            name: self.name.clone(),
            ty: self.ty.clone(),
            reason,
        })
    }

    /// The Arrow field.
    pub fn arrow_field(&self) -> Result<Field, InfoError> {
        Ok(Field::new(&self.name, self.data_type()?, self.nullable))
    }
}

/// The whole info document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub abi_version: u32,
    pub name: String,
    pub version: String,
    pub task: Task,
    /// Where the model came from: `lightgbm`, `xgboost`, `scikit-learn`,
    /// `rust-sdk`, `c`, `python`...
    pub framework: String,
    pub inputs: Vec<FieldSpec>,
    pub outputs: Vec<FieldSpec>,
    /// The drift reference distribution (bin edges and counts), when the
    /// model was compiled with one. Its layout is owned by the drift module.
    #[serde(default)]
    pub drift_reference: Option<serde_json::Value>,
    /// Free-form facts about the model (trees, depth, training date...).
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

impl ModelInfo {
    /// Parse and validate a document.
    pub fn parse(json: &str) -> Result<Self, InfoError> {
        let info: ModelInfo =
            serde_json::from_str(json).map_err(|e| InfoError::Json(e.to_string()))?;
        info.validate()?;
        Ok(info)
    }

    /// Check the version, that names are unique and that every type parses.
    pub fn validate(&self) -> Result<(), InfoError> {
        if self.abi_version != ABI_VERSION {
            return Err(InfoError::AbiVersion {
                got: self.abi_version,
                expected: ABI_VERSION,
            });
        }
        for (kind, fields) in [("input", &self.inputs), ("output", &self.outputs)] {
            if fields.is_empty() {
                return Err(InfoError::NoFields(kind));
            }
            let mut seen = HashSet::new();
            for f in fields {
                if !seen.insert(f.name.as_str()) {
                    return Err(InfoError::DuplicateField {
                        kind,
                        name: f.name.clone(),
                    });
                }
                f.data_type()?;
            }
        }
        Ok(())
    }

    /// The document as compact JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ModelInfo always serialises")
    }

    /// The Arrow schema of the inputs, in declared order.
    pub fn input_schema(&self) -> Result<Arc<Schema>, InfoError> {
        schema_of(&self.inputs)
    }

    /// The Arrow schema of the outputs, in declared order.
    pub fn output_schema(&self) -> Result<Arc<Schema>, InfoError> {
        schema_of(&self.outputs)
    }
}

fn schema_of(fields: &[FieldSpec]) -> Result<Arc<Schema>, InfoError> {
    let fields = fields
        .iter()
        .map(FieldSpec::arrow_field)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Arc::new(Schema::new(fields)))
}

/// Parse a type of the info grammar into an Arrow type.
///
/// ```text
/// type := bool | int8 | int16 | int32 | int64 | uint8 | uint16 | uint32 | uint64
///       | float32 | float64 | utf8 | large_utf8
///       | list<type> | fixed_size_list<type, N>
/// ```
pub fn parse_type(s: &str) -> Result<DataType, String> {
    let s = s.trim();
    let primitive = match s {
        "bool" => Some(DataType::Boolean),
        "int8" => Some(DataType::Int8),
        "int16" => Some(DataType::Int16),
        "int32" => Some(DataType::Int32),
        "int64" => Some(DataType::Int64),
        "uint8" => Some(DataType::UInt8),
        "uint16" => Some(DataType::UInt16),
        "uint32" => Some(DataType::UInt32),
        "uint64" => Some(DataType::UInt64),
        "float32" => Some(DataType::Float32),
        "float64" => Some(DataType::Float64),
        "utf8" => Some(DataType::Utf8),
        "large_utf8" => Some(DataType::LargeUtf8),
        _ => None,
    };
    if let Some(t) = primitive {
        return Ok(t);
    }
    if let Some(inner) = s.strip_prefix("list<").and_then(|r| r.strip_suffix('>')) {
        let item = parse_type(inner)?;
        return Ok(DataType::List(Arc::new(Field::new("item", item, true))));
    }
    if let Some(inner) = s
        .strip_prefix("fixed_size_list<")
        .and_then(|r| r.strip_suffix('>'))
    {
        let (item, n) = inner
            .rsplit_once(',')
            .ok_or_else(|| "fixed_size_list needs <type, N>".to_string())?;
        let n: i32 = n
            .trim()
            .parse()
            .map_err(|_| format!("fixed_size_list size '{}' is not an integer", n.trim()))?;
        if n <= 0 {
            return Err("fixed_size_list size must be positive".into());
        }
        let item = parse_type(item)?;
        return Ok(DataType::FixedSizeList(
            Arc::new(Field::new("item", item, true)),
            n,
        ));
    }
    Err(
        "expected bool, int8..int64, uint8..uint64, float32, float64, utf8, large_utf8, \
         list<T> or fixed_size_list<T, N>"
            .into(),
    )
}

/// Write an Arrow type in the info grammar, if it has a spelling there.
pub fn format_type(t: &DataType) -> Option<String> {
    Some(match t {
        DataType::Boolean => "bool".into(),
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Utf8 => "utf8".into(),
        DataType::LargeUtf8 => "large_utf8".into(),
        DataType::List(f) => format!("list<{}>", format_type(f.data_type())?),
        DataType::FixedSizeList(f, n) => {
            format!("fixed_size_list<{}, {n}>", format_type(f.data_type())?)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(inputs: &str) -> String {
        format!(
            r#"{{"abi_version":1,"name":"m","version":"1","task":"binary","framework":"c",
               "inputs":{inputs},"outputs":[{{"name":"p","type":"float64"}}]}}"#
        )
    }

    #[test]
    fn types_round_trip() {
        for t in [
            "bool",
            "int64",
            "uint8",
            "float32",
            "float64",
            "utf8",
            "list<float64>",
            "fixed_size_list<float32, 3>",
            "list<fixed_size_list<int8, 2>>",
        ] {
            assert_eq!(format_type(&parse_type(t).unwrap()).unwrap(), t);
        }
    }

    #[test]
    fn bad_types_are_named() {
        let err = ModelInfo::parse(&doc(r#"[{"name":"x","type":"float128"}]"#)).unwrap_err();
        assert!(
            err.to_string().contains("'x'") && err.to_string().contains("float128"),
            "{err}"
        );
        assert!(parse_type("fixed_size_list<float64, 0>").is_err());
        assert!(parse_type("fixed_size_list<float64>").is_err());
    }

    #[test]
    fn duplicates_and_empty_are_refused() {
        let dup = r#"[{"name":"x","type":"float64"},{"name":"x","type":"int64"}]"#;
        assert_eq!(
            ModelInfo::parse(&doc(dup)).unwrap_err(),
            InfoError::DuplicateField {
                kind: "input",
                name: "x".into()
            }
        );
        assert_eq!(
            ModelInfo::parse(&doc("[]")).unwrap_err(),
            InfoError::NoFields("input")
        );
    }

    #[test]
    fn nullable_defaults_to_false_and_schema_follows_order() {
        let info = ModelInfo::parse(&doc(
            r#"[{"name":"b","type":"float64"},{"name":"a","type":"int32","nullable":true}]"#,
        ))
        .unwrap();
        let schema = info.input_schema().unwrap();
        assert_eq!(schema.field(0).name(), "b");
        assert!(!schema.field(0).is_nullable());
        assert!(schema.field(1).is_nullable());
        assert_eq!(ModelInfo::parse(&info.to_json()).unwrap(), info);
    }

    #[test]
    fn wrong_version_is_refused() {
        let json = doc(r#"[{"name":"x","type":"float64"}]"#)
            .replace("\"abi_version\":1", "\"abi_version\":2");
        assert_eq!(
            ModelInfo::parse(&json).unwrap_err(),
            InfoError::AbiVersion {
                got: 2,
                expected: 1
            }
        );
    }
}
