//! [`Input`]: a model's view of the host's borrowed batch.
//!
//! Fixed-width columns are read in place as slices of the host's buffers: no
//! import, no allocation, no copy (a copy only if a buffer is misaligned).
//! [`Input::record_batch`] gives the full arrow-rs view for everything else.

use std::borrow::Cow;

use arrow_array::ffi::{from_ffi_and_data_type, FFI_ArrowArray};
use arrow_array::types::ArrowPrimitiveType;
use arrow_array::{RecordBatch, RecordBatchOptions, StructArray};
use arrow_schema::{DataType, SchemaRef};
use streamml_abi::ffi::RawArrowArray;

use crate::PredictError;

/// The batch a host passed to `predict`: the declared inputs, in declared
/// order, with the declared types. Valid for the duration of the call.
pub struct Input<'a> {
    array: &'a RawArrowArray,
    schema: &'a SchemaRef,
}

impl<'a> Input<'a> {
    pub(crate) fn new(array: &'a RawArrowArray, schema: &'a SchemaRef) -> Self {
        Self { array, schema }
    }

    /// Rows in the batch.
    pub fn num_rows(&self) -> usize {
        self.array.length as usize
    }

    /// Declared input columns.
    pub fn num_columns(&self) -> usize {
        self.schema.fields().len()
    }

    /// The declared input schema.
    pub fn schema(&self) -> &SchemaRef {
        self.schema
    }

    fn child(&self, i: usize) -> Result<&'a RawArrowArray, PredictError> {
        if i >= self.num_columns() || i >= self.array.n_children as usize {
            return Err(PredictError::Internal(format!(
                "column {i} does not exist; the model has {} inputs",
                self.num_columns()
            )));
        }
        // SAFETY: the host passes a struct array with one child per input.
        Ok(unsafe { &**self.array.children.add(i) })
    }

    /// Column `i`'s values as a slice, for a fixed-width declared type `T`.
    /// Null slots hold unspecified values: check [`Input::is_null`] for
    /// nullable inputs.
    pub fn values<T: ArrowPrimitiveType>(
        &self,
        i: usize,
    ) -> Result<Cow<'a, [T::Native]>, PredictError> {
        let child = self.child(i)?;
        let field = &self.schema.fields()[i];
        if field.data_type() != &T::DATA_TYPE {
            return Err(PredictError::Internal(format!(
                "column '{}' is declared {}, not {}",
                field.name(),
                field.data_type(),
                T::DATA_TYPE
            )));
        }
        let rows = self.num_rows();
        if rows == 0 {
            return Ok(Cow::Borrowed(&[]));
        }
        let start = (self.array.offset + child.offset) as usize;
        // Struct row r is child element `parent.offset + r` (at buffer index
        // `child.offset + parent.offset + r`).
        if child.n_buffers < 2 || child.length < self.array.offset + rows as i64 {
            return Err(PredictError::InvalidInput(format!(
                "column '{}' is shorter than the batch",
                field.name()
            )));
        }
        // SAFETY: buffer 1 of a fixed-width array holds `length + offset` values.
        let ptr = unsafe { *child.buffers.add(1) } as *const T::Native;
        if ptr.is_null() {
            return Err(PredictError::InvalidInput(format!(
                "column '{}' has no data buffer",
                field.name()
            )));
        }
        let ptr = unsafe { ptr.add(start) };
        if (ptr as usize).is_multiple_of(std::mem::align_of::<T::Native>()) {
            Ok(Cow::Borrowed(unsafe {
                std::slice::from_raw_parts(ptr, rows)
            }))
        } else {
            let mut copy = Vec::with_capacity(rows);
            for r in 0..rows {
                copy.push(unsafe { std::ptr::read_unaligned(ptr.add(r)) });
            }
            Ok(Cow::Owned(copy))
        }
    }

    /// Column `i` as float64 values (the column must be declared `float64`).
    pub fn float64(&self, i: usize) -> Result<Cow<'a, [f64]>, PredictError> {
        self.values::<arrow_array::types::Float64Type>(i)
    }

    /// Every column as float64 values, in order.
    pub fn float64_columns(&self) -> Result<Vec<Cow<'a, [f64]>>, PredictError> {
        (0..self.num_columns()).map(|i| self.float64(i)).collect()
    }

    /// Column `i` (declared `utf8`) as offsets and bytes, read in place.
    /// The offsets are checked to be non-decreasing and to start at or
    /// after 0 before any string is read; strings that are not UTF-8 are
    /// compared as bytes.
    pub fn utf8(&self, i: usize) -> Result<Utf8Column<'a>, PredictError> {
        let child = self.child(i)?;
        let field = &self.schema.fields()[i];
        if field.data_type() != &DataType::Utf8 {
            return Err(PredictError::Internal(format!(
                "column '{}' is declared {}, not Utf8",
                field.name(),
                field.data_type()
            )));
        }
        let rows = self.num_rows();
        if rows == 0 {
            return Ok(Utf8Column {
                offsets: &[0],
                data: &[],
            });
        }
        let start = (self.array.offset + child.offset) as usize;
        if child.n_buffers < 3 || child.length < self.array.offset + rows as i64 {
            return Err(PredictError::InvalidInput(format!(
                "column '{}' is shorter than the batch",
                field.name()
            )));
        }
        // SAFETY: buffer 1 of a utf8 array holds `length + offset + 1` i32
        // offsets, buffer 2 the bytes up to the last offset.
        let offsets = unsafe { *child.buffers.add(1) } as *const i32;
        let data = unsafe { *child.buffers.add(2) } as *const u8;
        if offsets.is_null() || !(offsets as usize).is_multiple_of(4) {
            return Err(PredictError::InvalidInput(format!(
                "column '{}' has no aligned offsets buffer",
                field.name()
            )));
        }
        let offsets = unsafe { std::slice::from_raw_parts(offsets.add(start), rows + 1) };
        if offsets[0] < 0 || offsets.windows(2).any(|w| w[1] < w[0]) {
            return Err(PredictError::InvalidInput(format!(
                "column '{}' has decreasing or negative offsets",
                field.name()
            )));
        }
        let end = offsets[rows] as usize;
        let data: &'a [u8] = if end == 0 {
            &[]
        } else if data.is_null() {
            return Err(PredictError::InvalidInput(format!(
                "column '{}' has no data buffer",
                field.name()
            )));
        } else {
            unsafe { std::slice::from_raw_parts(data, end) }
        };
        Ok(Utf8Column { offsets, data })
    }

    /// Whether column `i` may hold nulls (its null count is not 0 and it has
    /// a validity bitmap). When false, [`Input::is_null`] is always false.
    pub fn may_have_nulls(&self, i: usize) -> bool {
        let Ok(child) = self.child(i) else {
            return false;
        };
        // SAFETY: buffer 0 of a child with buffers is its validity bitmap.
        child.null_count != 0 && child.n_buffers > 0 && !unsafe { *child.buffers }.is_null()
    }

    /// Whether row `row` of column `i` is null.
    pub fn is_null(&self, i: usize, row: usize) -> bool {
        let Ok(child) = self.child(i) else {
            return false;
        };
        if child.null_count == 0 || child.n_buffers == 0 {
            return false;
        }
        // SAFETY: buffer 0 is the validity bitmap (or null: all valid).
        let bitmap = unsafe { *child.buffers } as *const u8;
        if bitmap.is_null() {
            return false;
        }
        let bit = (self.array.offset + child.offset) as usize + row;
        unsafe { (*bitmap.add(bit / 8) >> (bit % 8)) & 1 == 0 }
    }

    /// The whole batch as an arrow-rs `RecordBatch` (imports every column;
    /// costs an allocation or two per column, so prefer [`Input::values`] for
    /// small batches of fixed-width columns).
    pub fn record_batch(&self) -> Result<RecordBatch, PredictError> {
        // arrow-rs imports by move and releases through the array's
        // `release`; a bitwise copy with a no-op release keeps the host the
        // owner. Buffers are only read during this call.
        let mut copy: RawArrowArray = unsafe { std::ptr::read(self.array) };
        copy.release = Some(noop_release);
        // SAFETY: RawArrowArray and FFI_ArrowArray are both the C struct.
        let ffi: FFI_ArrowArray = unsafe { std::mem::transmute(copy) };
        let data_type = DataType::Struct(self.schema.fields().clone());
        let data = unsafe { from_ffi_and_data_type(ffi, data_type) }
            .map_err(|e| PredictError::InvalidInput(format!("cannot import the input: {e}")))?;
        let rows = data.len();
        let (_, columns, _) = StructArray::from(data).into_parts();
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options).map_err(|e| {
            PredictError::InvalidInput(format!("the input does not match the info: {e}"))
        })
    }
}

/// A utf8 column's strings, row by row (null slots hold unspecified bytes:
/// check [`Input::is_null`]).
#[derive(Clone, Copy, Debug)]
pub struct Utf8Column<'a> {
    offsets: &'a [i32],
    data: &'a [u8],
}

impl<'a> Utf8Column<'a> {
    /// Row `row`'s bytes.
    #[inline]
    pub fn bytes(&self, row: usize) -> &'a [u8] {
        &self.data[self.offsets[row] as usize..self.offsets[row + 1] as usize]
    }
}

unsafe extern "C" fn noop_release(array: *mut RawArrowArray) {
    if !array.is_null() {
        (*array).release = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Array, Float64Array};
    use arrow_data::ArrayData;
    use arrow_schema::{Field, Fields, Schema};

    use super::*;

    /// A struct<x: float64> of `rows` rows at `parent_offset`, whose child is
    /// `values` sliced at `child_offset`, exported as the host would.
    fn exported(
        values: Vec<Option<f64>>,
        child_offset: usize,
        parent_offset: usize,
        rows: usize,
    ) -> FFI_ArrowArray {
        let n = values.len();
        let child = Float64Array::from(values)
            .slice(child_offset, n - child_offset)
            .to_data();
        let fields = Fields::from(vec![Field::new("x", DataType::Float64, true)]);
        let data = ArrayData::builder(DataType::Struct(fields))
            .len(rows)
            .offset(parent_offset)
            .child_data(vec![child])
            .build()
            .unwrap();
        FFI_ArrowArray::new(&data)
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("x", DataType::Float64, true)]))
    }

    fn view<'a>(array: &'a FFI_ArrowArray, schema: &'a SchemaRef) -> Input<'a> {
        // SAFETY: FFI_ArrowArray is the C struct the mirror describes.
        let raw = unsafe { &*(array as *const FFI_ArrowArray as *const RawArrowArray) };
        Input::new(raw, schema)
    }

    #[test]
    fn values_honour_the_parent_offset_and_nulls() {
        let values = vec![Some(0.0), Some(1.0), None, Some(3.0), Some(4.0)];
        // Child sliced at 1 (holds 1.0, null, 3.0, 4.0); the struct starts at 1.
        let array = exported(values, 1, 1, 3);
        let schema = schema();
        let input = view(&array, &schema);
        assert_eq!(input.num_rows(), 3);
        assert_eq!(&input.float64(0).unwrap()[1..], &[3.0, 4.0]);
        assert!(input.is_null(0, 0));
        assert!(!input.is_null(0, 1));
        let batch = input.record_batch().unwrap();
        let x = batch
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert!(x.is_null(0));
        assert_eq!(x.value(2), 4.0);
    }

    #[test]
    fn a_wrong_declared_type_is_an_error_not_a_misread() {
        let array = exported(vec![Some(1.0)], 0, 0, 1);
        let schema = schema();
        let input = view(&array, &schema);
        let err = input
            .values::<arrow_array::types::Int64Type>(0)
            .unwrap_err();
        assert_eq!(
            err,
            PredictError::Internal("column 'x' is declared Float64, not Int64".into())
        );
        assert!(matches!(input.float64(1), Err(PredictError::Internal(_))));
    }

    #[test]
    fn utf8_columns_are_read_in_place_with_offsets() {
        use arrow_array::StringArray;
        let child = StringArray::from(vec![Some("ab"), None, Some(""), Some("z\u{e9}")])
            .slice(1, 3)
            .to_data();
        let fields = Fields::from(vec![Field::new("s", DataType::Utf8, true)]);
        let data = ArrayData::builder(DataType::Struct(fields.clone()))
            .len(2)
            .offset(1)
            .child_data(vec![child])
            .build()
            .unwrap();
        let array = FFI_ArrowArray::new(&data);
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let input = view(&array, &schema);
        let s = input.utf8(0).unwrap();
        assert_eq!(s.bytes(0), b"");
        assert_eq!(s.bytes(1), "z\u{e9}".as_bytes());
        assert!(!input.is_null(0, 0));
        assert!(input.float64(0).is_err());
    }
}
