//! A test fixture, not a model: one input of each kind a row carries, for
//! the row checks every host shares (`tests/fixtures/row_checks.json`).
//!
//! Inputs: `x` float64 (not nullable), `f` float32, `n` int8, `u` uint16,
//! `b` bool, `s` utf8 (nullable). Outputs: `y` (float64) the sum of the
//! numbers, 1 for a true `b` and the length in bytes of `s`, nulls counting
//! 0; `nulls` (int32) how many inputs are null; `echo` (utf8) `s` as given.

use std::sync::Arc;

use streamml_sdk::arrow_array::cast::AsArray;
use streamml_sdk::arrow_array::types::{Float32Type, Float64Type, Int8Type, UInt16Type};
use streamml_sdk::arrow_array::{Array, ArrayRef, Float64Array, Int32Array, StringArray};
use streamml_sdk::{export_model, FieldSpec, Input, Model, ModelInfo, PredictError, Task};

struct TypedInputs;

impl Model for TypedInputs {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            abi_version: streamml_sdk::ABI_VERSION,
            name: "typed_inputs".into(),
            version: "0.0.1".into(),
            task: Task::Regression,
            framework: "rust-sdk".into(),
            inputs: vec![
                FieldSpec::new("x", "float64", false),
                FieldSpec::new("f", "float32", true),
                FieldSpec::new("n", "int8", true),
                FieldSpec::new("u", "uint16", true),
                FieldSpec::new("b", "bool", true),
                FieldSpec::new("s", "utf8", true),
            ],
            outputs: vec![
                FieldSpec::new("y", "float64", false),
                FieldSpec::new("nulls", "int32", false),
                FieldSpec::new("echo", "utf8", true),
            ],
            drift_reference: None,
            metadata: Default::default(),
        }
    }

    fn predict(&self, input: &Input<'_>) -> Result<Vec<ArrayRef>, PredictError> {
        let batch = input.record_batch()?;
        let c = batch.columns();
        let (x, f) = (c[0].as_primitive::<Float64Type>(), c[1].as_primitive::<Float32Type>());
        let (n, u) = (c[2].as_primitive::<Int8Type>(), c[3].as_primitive::<UInt16Type>());
        let (b, s) = (c[4].as_boolean(), c[5].as_string::<i32>());
        let rows = batch.num_rows();
        let y: Float64Array = (0..rows)
            .map(|r| {
                let value = |valid: bool, v: f64| if valid { v } else { 0.0 };
                Some(
                    x.value(r)
                        + value(f.is_valid(r), f64::from(f.value(r)))
                        + value(n.is_valid(r), f64::from(n.value(r)))
                        + value(u.is_valid(r), f64::from(u.value(r)))
                        + value(b.is_valid(r) && b.value(r), 1.0)
                        + value(s.is_valid(r), s.value(r).len() as f64),
                )
            })
            .collect();
        let nulls: Int32Array = (0..rows)
            .map(|r| Some(c.iter().filter(|col| col.is_null(r)).count() as i32))
            .collect();
        // A copy: the input's buffers are the host's, borrowed for this call only.
        let echo: StringArray = s.iter().collect();
        Ok(vec![Arc::new(y), Arc::new(nulls), Arc::new(echo)])
    }
}

export_model!(TypedInputs);
