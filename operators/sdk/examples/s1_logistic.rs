//! S1 from the design as a model binary: a logistic regression over the 32
//! R1 features, coefficients compiled in from `s1_logistic.json`
//! (regenerate with `benchmarks/s1_coefficients.py`).
//!
//! Outputs: `probability` (P(label = 1), float64) and `label` (int64, 1 when
//! the decision value is positive, as scikit-learn's `predict`).

use std::sync::Arc;

use streamml_sdk::arrow_array::{ArrayRef, Float64Array, Int64Array};
use streamml_sdk::{export_model, FieldSpec, Input, Model, ModelInfo, PredictError, Task};

/// `[intercept, w0, ..., w31]`.
const PARAMS: [f64; 33] = include!("s1_logistic.json");
/// Rows scored together so the accumulators stay in L1 while each column streams by.
const BLOCK: usize = 512;

struct S1Logistic;

impl Model for S1Logistic {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            abi_version: streamml_sdk::ABI_VERSION,
            name: "s1_logistic".into(),
            version: "1.0.0".into(),
            task: Task::Binary,
            framework: "rust-sdk".into(),
            inputs: (0..32)
                .map(|i| FieldSpec::new(format!("x{i}"), "float64", false))
                .collect(),
            outputs: vec![
                FieldSpec::new("probability", "float64", false),
                FieldSpec::new("label", "int64", false),
            ],
            drift_reference: None,
            metadata: serde_json::Map::from_iter([(
                "description".to_string(),
                serde_json::Value::from("S1: logistic regression on the R1 features"),
            )]),
        }
    }

    fn predict(&self, input: &Input<'_>) -> Result<Vec<ArrayRef>, PredictError> {
        let columns = input.float64_columns()?;
        let rows = input.num_rows();
        let (intercept, weights) = (PARAMS[0], &PARAMS[1..]);
        let mut probability = Vec::with_capacity(rows);
        let mut label = Vec::with_capacity(rows);
        let mut acc = [0.0f64; BLOCK];
        let mut start = 0;
        while start < rows {
            let len = BLOCK.min(rows - start);
            let acc = &mut acc[..len];
            acc.fill(intercept);
            for (column, &w) in columns.iter().zip(weights) {
                for (a, &x) in acc.iter_mut().zip(&column[start..start + len]) {
                    *a += w * x;
                }
            }
            for &z in acc.iter() {
                probability.push(1.0 / (1.0 + (-z).exp()));
                label.push(i64::from(z > 0.0));
            }
            start += len;
        }
        Ok(vec![
            Arc::new(Float64Array::from(probability)),
            Arc::new(Int64Array::from(label)),
        ])
    }
}

export_model!(S1Logistic);
