//! A Python callable as a core `Backend`, so it runs through the same checks,
//! operators and counters as a model binary.

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use pyo3::prelude::*;
use pyo3::types::PyAnyMethods;
use pyo3_arrow::input::AnyRecordBatch;
use pyo3_arrow::PyRecordBatch;
use streamml_abi::info::format_type;
use streamml_abi::{FieldSpec, ModelInfo, Task, ABI_VERSION};
use streamml_core::{input, Backend, PredictError};

pub struct CallableBackend {
    func: Py<PyAny>,
    info: ModelInfo,
    origin: String,
    output_schema: SchemaRef,
}

fn specs(schema: &SchemaRef, kind: &str) -> Result<Vec<FieldSpec>, String> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let ty = format_type(f.data_type()).ok_or_else(|| {
                format!(
                    "{kind} field '{}' has type {}, which models cannot declare; \
                     use bool, integers, floats, utf8 or lists of them",
                    f.name(),
                    f.data_type()
                )
            })?;
            Ok(FieldSpec::new(f.name(), ty, f.is_nullable()))
        })
        .collect()
}

impl CallableBackend {
    pub fn new(
        func: Py<PyAny>,
        input_schema: SchemaRef,
        output_schema: SchemaRef,
        name: String,
        version: String,
        task: Task,
    ) -> Result<Self, String> {
        let info = ModelInfo {
            abi_version: ABI_VERSION,
            name: name.clone(),
            version,
            task,
            framework: "python".into(),
            inputs: specs(&input_schema, "input")?,
            outputs: specs(&output_schema, "output")?,
            drift_reference: None,
            metadata: Default::default(),
        };
        info.validate().map_err(|e| e.to_string())?;
        let output_schema = info.output_schema().map_err(|e| e.to_string())?;
        Ok(Self {
            func,
            info,
            origin: format!("python callable '{name}'"),
            output_schema,
        })
    }

    fn call(&self, py: Python<'_>, input: &RecordBatch) -> Result<RecordBatch, String> {
        let arg = PyRecordBatch::new(input.clone())
            .into_pyarrow(py)
            .map_err(|e| format!("cannot pass the batch to Python: {e}"))?;
        let result = self
            .func
            .bind(py)
            .call1((arg,))
            .map_err(|e| describe(py, &e))?;
        let batch = match result.extract::<AnyRecordBatch>() {
            Ok(AnyRecordBatch::RecordBatch(b)) => b.into_inner(),
            Ok(AnyRecordBatch::Stream(s)) => {
                let table = s.into_table().map_err(|e| PyErr::from(e).to_string())?;
                let (batches, schema) = table.into_inner();
                arrow_select_concat(&schema, &batches)?
            }
            Err(_) => {
                let type_name = result
                    .get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_else(|_| "?".into());
                return Err(format!(
                    "returned a {type_name}; return an Arrow batch (pyarrow.RecordBatch or Table, \
                     polars.DataFrame, anything with __arrow_c_array__ or __arrow_c_stream__)"
                ));
            }
        };
        // Outputs go through the same by-name mapping and casts as inputs.
        input::prepare(&batch, &self.output_schema)
            .map_err(|e| format!("returned bad outputs: {e}"))
    }
}

fn arrow_select_concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch, String> {
    arrow_select::concat::concat_batches(schema, batches).map_err(|e| e.to_string())
}

fn describe(py: Python<'_>, e: &PyErr) -> String {
    let type_name = e
        .get_type(py)
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".into());
    format!("raised {type_name}: {}", e.value(py))
}

impl Backend for CallableBackend {
    fn info(&self) -> &ModelInfo {
        &self.info
    }

    fn origin(&self) -> &str {
        &self.origin
    }

    fn sha256(&self) -> Option<&str> {
        None
    }

    fn score(&self, input: &RecordBatch) -> Result<RecordBatch, PredictError> {
        Python::attach(|py| self.call(py, input)).map_err(|reason| PredictError {
            origin: self.origin.clone(),
            rows: input.num_rows(),
            reason,
            status: None,
        })
    }
}
