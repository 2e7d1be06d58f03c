//! Typed access to input columns, for model authors.

use arrow_array::{Array, Float64Array, RecordBatch};

use crate::PredictError;

/// Column `i` of `batch` as a float64 slice (nulls read as whatever the buffer
/// holds: declare the field non-nullable, or check `is_null` yourself).
pub fn float64_column(batch: &RecordBatch, i: usize) -> Result<&[f64], PredictError> {
    let col = batch.column(i);
    col.as_any()
        .downcast_ref::<Float64Array>()
        .map(|a| a.values().as_ref())
        .ok_or_else(|| {
            PredictError::InvalidInput(format!(
                "column '{}' is {}, expected float64",
                batch.schema().field(i).name(),
                col.data_type()
            ))
        })
}

/// Every column of `batch` as float64 slices, in order.
pub fn float64_columns(batch: &RecordBatch) -> Result<Vec<&[f64]>, PredictError> {
    (0..batch.num_columns()).map(|i| float64_column(batch, i)).collect()
}
