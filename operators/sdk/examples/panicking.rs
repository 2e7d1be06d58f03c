//! A test fixture, not a model: proves that a panic inside `predict` comes
//! back to the host as an error and never unwinds across the C ABI.
//!
//! Input `x` (float64), output `y = x`; panics when any `x` is negative.

use std::sync::Arc;

use streamml_sdk::arrow_array::{ArrayRef, Float64Array};
use streamml_sdk::{export_model, FieldSpec, Input, Model, ModelInfo, PredictError, Task};

struct Panicking;

impl Model for Panicking {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            abi_version: streamml_sdk::ABI_VERSION,
            name: "panicking".into(),
            version: "0.0.1".into(),
            task: Task::Regression,
            framework: "rust-sdk".into(),
            inputs: vec![FieldSpec::new("x", "float64", false)],
            outputs: vec![FieldSpec::new("y", "float64", false)],
            drift_reference: None,
            metadata: Default::default(),
        }
    }

    fn predict(&self, input: &Input<'_>) -> Result<Vec<ArrayRef>, PredictError> {
        let x = input.float64(0)?;
        if let Some(row) = x.iter().position(|v| *v < 0.0) {
            panic!("negative x at row {row}");
        }
        Ok(vec![Arc::new(Float64Array::from(x.to_vec()))])
    }
}

export_model!(Panicking);
