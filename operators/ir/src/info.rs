//! The info document of a compiled binary, from its IR: what the evaluator
//! returns from `info()` and what `streamml inspect` shows without loading.

use serde_json::Value;
use streamml_abi::{FieldSpec, ModelInfo, Task, ABI_VERSION};

use crate::ir::{Ir, ModelIr};
use crate::validate::{Checked, Classes};

/// The info document of a validated IR.
pub fn build_info(ir: &Ir, checked: &Checked) -> ModelInfo {
    let label_type = match checked.classes {
        Classes::Str(_) => "utf8",
        _ => "int64",
    };
    let outputs = match checked.task {
        Task::Regression | Task::Other => vec![FieldSpec::new("prediction", "float64", false)],
        Task::Binary => vec![
            FieldSpec::new("probability", "float64", false),
            FieldSpec::new("label", label_type, false),
        ],
        Task::Multiclass => vec![
            FieldSpec::new(
                "probabilities",
                format!("fixed_size_list<float64, {}>", checked.n_outputs),
                false,
            ),
            FieldSpec::new("label", label_type, false),
        ],
    };
    let mut metadata = ir.metadata.clone();
    match &ir.model {
        ModelIr::Trees(t) => {
            metadata.insert("trees".into(), Value::from(t.trees.len()));
            metadata.insert("max_depth".into(), Value::from(checked.max_depth()));
        }
        ModelIr::Linear(_) => {
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
        // One line per step: `path: type (columns in -> out)`.
        metadata.insert("preprocess".into(), Value::from(checked.plan.steps.clone()));
    }
    ModelInfo {
        abi_version: ABI_VERSION,
        name: ir.name.clone(),
        version: ir.model_version.clone(),
        task: checked.task,
        framework: ir.framework.clone(),
        inputs: ir
            .features
            .iter()
            .zip(&checked.plan.input_types)
            .map(|(f, t)| FieldSpec::new(f, t.name(), true))
            .collect(),
        outputs,
        drift_reference: ir.drift_reference.clone(),
        metadata,
    }
}
