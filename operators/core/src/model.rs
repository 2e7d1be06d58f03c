//! [`Model`]: one way to score batches, whatever runs underneath.
//!
//! A [`Backend`] is what runs: a model binary ([`crate::NativeModel`]) or a
//! host's own callable (the Python binding wraps a Python function). `Model`
//! puts the same checks around every backend: inputs mapped and cast by name
//! ([`crate::input::prepare`]), outputs checked against the declared schema,
//! empty batches answered without a call, panics turned into errors.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use streamml_abi::ffi::schema_matches;
use streamml_abi::{InfoError, ModelInfo};

use crate::backend::Backend;
use crate::error::{panic_text, Error, LoadError, PredictError};
use crate::input;
use crate::loader::{LoadOptions, NativeModel};

/// A model, ready to score.
#[derive(Clone)]
pub struct Model {
    backend: Arc<dyn Backend>,
    input_schema: SchemaRef,
    output_schema: SchemaRef,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("origin", &self.backend.origin())
            .finish()
    }
}

impl Model {
    /// Load and verify a model binary.
    pub fn load(path: impl AsRef<Path>, options: &LoadOptions) -> Result<Self, LoadError> {
        let path = path.as_ref();
        let native = NativeModel::load(path, options)?;
        Self::from_backend(Arc::new(native)).map_err(|e| LoadError::new(path, e))
    }

    /// Wrap any backend.
    pub fn from_backend(backend: Arc<dyn Backend>) -> Result<Self, InfoError> {
        let info = backend.info();
        info.validate()?;
        Ok(Self {
            input_schema: info.input_schema()?,
            output_schema: info.output_schema()?,
            backend,
        })
    }

    pub fn info(&self) -> &ModelInfo {
        self.backend.info()
    }

    pub fn origin(&self) -> &str {
        self.backend.origin()
    }

    pub fn sha256(&self) -> Option<&str> {
        self.backend.sha256()
    }

    /// The model binary, when this model is one.
    pub fn native(&self) -> Option<&NativeModel> {
        let backend: &dyn Any = &*self.backend;
        backend.downcast_ref::<NativeModel>()
    }

    /// The declared inputs, in order.
    pub fn input_schema(&self) -> &SchemaRef {
        &self.input_schema
    }

    /// The declared outputs, in order.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// Score a batch: map its columns to the inputs, run, check the outputs.
    pub fn predict(&self, batch: &RecordBatch) -> Result<RecordBatch, Error> {
        let prepared = input::prepare(batch, &self.input_schema)?;
        Ok(self.score_prepared(&prepared)?)
    }

    /// The zero-copy path for a batch already in the C Data Interface (a
    /// struct array and its schema, both borrowed): when this model is a
    /// binary, the schema is exactly its declared input layout and
    /// [`NativeModel::accepts_c`] holds, the array goes to the binary as it
    /// is and the checked output comes back owned. `None` when the batch
    /// needs the general path ([`Model::predict`]: mapping, casts, errors
    /// naming columns).
    ///
    /// # Safety
    /// `schema` and `array` must be a valid, unreleased Arrow C schema and
    /// array that describe each other.
    pub unsafe fn try_predict_c(
        &self,
        schema: &FFI_ArrowSchema,
        array: &FFI_ArrowArray,
    ) -> Option<Result<(FFI_ArrowArray, FFI_ArrowSchema), PredictError>> {
        let native = self.native()?;
        if !schema_matches(schema, native.input_schema_c()) || !native.accepts_c(array) {
            return None;
        }
        let rows = array.len();
        Some(
            catch_unwind(AssertUnwindSafe(|| native.predict_c(array))).unwrap_or_else(|p| {
                Err(PredictError {
                    origin: self.origin().to_string(),
                    rows,
                    reason: format!("panicked: {}", panic_text(&*p)),
                    status: None,
                })
            }),
        )
    }

    /// Score a batch that [`input::prepare`] already produced.
    pub fn score_prepared(&self, prepared: &RecordBatch) -> Result<RecordBatch, PredictError> {
        let rows = prepared.num_rows();
        if rows == 0 {
            return Ok(RecordBatch::new_empty(self.output_schema.clone()));
        }
        let fail = |reason: String| PredictError {
            origin: self.origin().to_string(),
            rows,
            reason,
            status: None,
        };
        let out = catch_unwind(AssertUnwindSafe(|| self.backend.score(prepared)))
            .map_err(|p| fail(format!("panicked: {}", panic_text(&*p))))??;
        if out.num_rows() != rows {
            return Err(fail(format!(
                "returned {} row(s) for {rows}",
                out.num_rows()
            )));
        }
        if out.schema_ref().fields() != self.output_schema.fields() {
            return Err(fail(format!(
                "returned columns {:?}, the info declares {:?}",
                field_list(&out.schema()),
                field_list(&self.output_schema)
            )));
        }
        Ok(out)
    }
}

fn field_list(schema: &arrow_schema::Schema) -> Vec<String> {
    schema
        .fields()
        .iter()
        .map(|f| format!("{}: {}", f.name(), f.data_type()))
        .collect()
}
