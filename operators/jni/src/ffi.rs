//! Arrow through the C Data Interface at memory addresses Java allocated.
//!
//! Java (`org.apache.arrow.c`) allocates an `ArrowArray` and an
//! `ArrowSchema`, exports into them (input) or leaves them empty (output),
//! and passes their addresses. The shim moves an exported input out of its
//! struct (leaving a released one behind, which Java only frees) and writes
//! outputs into the empty structs, moving ownership to Java.

use arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{Array, RecordBatch, StructArray};
use arrow_data::transform::MutableArrayData;
use arrow_data::ArrayData;
use arrow_schema::{Schema, SchemaRef};

use crate::guard::{ShimError, ShimResult};

fn non_null<T>(address: i64, what: &str) -> ShimResult<*mut T> {
    if address == 0 {
        return Err(ShimError(format!("the {what} address is 0 (null)")));
    }
    Ok(address as *mut T)
}

/// Take ownership of the array and schema Java exported at these addresses.
///
/// # Safety
/// Both addresses must point at valid C Data Interface structs that Java
/// allocated and filled, and nobody else may take them.
pub unsafe fn take_input(array: i64, schema: i64) -> ShimResult<(FFI_ArrowArray, FFI_ArrowSchema)> {
    let array = std::ptr::replace(
        non_null::<FFI_ArrowArray>(array, "input ArrowArray")?,
        FFI_ArrowArray::empty(),
    );
    let schema = std::ptr::replace(
        non_null::<FFI_ArrowSchema>(schema, "input ArrowSchema")?,
        FFI_ArrowSchema::empty(),
    );
    if array.is_released() {
        return Err(ShimError(
            "the input ArrowArray is released; export a batch into it first".into(),
        ));
    }
    Ok((array, schema))
}

/// Import an input struct array (the batch Java exported) as a record batch,
/// checked and validated in full (lying lengths or offsets are an error).
pub fn import_batch(array: FFI_ArrowArray, schema: &FFI_ArrowSchema) -> ShimResult<RecordBatch> {
    // SAFETY: the array and schema come from `take_input`, which owns them.
    unsafe { streamml_core::input::import_c_batch(array, schema) }.map_err(|e| ShimError(e.to_string()))
}

/// Whether an exported array and all its children start at offset 0.
fn offsets_are_zero(array: &FFI_ArrowArray) -> bool {
    array.offset() == 0 && (0..array.num_children()).all(|i| offsets_are_zero(array.child(i)))
}

/// Write an output (a struct array and its schema) into the structs at the
/// given addresses, at offset 0, moving ownership to Java.
///
/// # Safety
/// Both addresses must point at writable, empty (released) structs.
pub unsafe fn give_output(
    (array, schema): (FFI_ArrowArray, FFI_ArrowSchema),
    out_array: i64,
    out_schema: i64,
) -> ShimResult<()> {
    let out_array = non_null::<FFI_ArrowArray>(out_array, "output ArrowArray")?;
    let out_schema = non_null::<FFI_ArrowSchema>(out_schema, "output ArrowSchema")?;
    let array = if offsets_are_zero(&array) {
        array
    } else {
        let data = from_ffi(array, &schema)
            .map_err(|e| ShimError(format!("the model's output is not valid Arrow: {e}")))?;
        FFI_ArrowArray::new(&at_offset_zero(&data)?)
    };
    std::ptr::write(out_array, array);
    std::ptr::write(out_schema, schema);
    Ok(())
}

/// Export a record batch as a struct array at offset 0.
pub fn export_batch(batch: RecordBatch) -> ShimResult<(FFI_ArrowArray, FFI_ArrowSchema)> {
    let data = at_offset_zero(&StructArray::from(batch).into_data())?;
    let schema = FFI_ArrowSchema::try_from(data.data_type())?;
    Ok((FFI_ArrowArray::new(&data), schema))
}

/// Export a schema as the C schema of a struct of its fields.
///
/// # Safety
/// `address` must point at a writable, empty (released) `ArrowSchema`.
pub unsafe fn give_schema(schema: &SchemaRef, address: i64) -> ShimResult<()> {
    let out = non_null::<FFI_ArrowSchema>(address, "output ArrowSchema")?;
    let exported = FFI_ArrowSchema::try_from(Schema::new(schema.fields().clone()))?;
    std::ptr::write(out, exported);
    Ok(())
}

/// The same data, copied only when it (or a child) does not start at 0:
/// Arrow Java's importer assumes offset 0.
fn at_offset_zero(data: &ArrayData) -> ShimResult<ArrayData> {
    if data_offsets_are_zero(data) {
        return Ok(data.clone());
    }
    let mut copy = MutableArrayData::new(vec![data], false, data.len());
    copy.try_extend(0, 0, data.len())
        .map_err(|e| ShimError(format!("cannot copy the output to offset 0: {e}")))?;
    Ok(copy.freeze())
}

fn data_offsets_are_zero(data: &ArrayData) -> bool {
    data.offset() == 0 && data.child_data().iter().all(data_offsets_are_zero)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Float64Array, Int64Array};
    use arrow_schema::DataType;

    use super::*;

    fn batch() -> RecordBatch {
        let x: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 2.0, 3.0, 4.0]));
        let y: ArrayRef = Arc::new(Int64Array::from(vec![10, 20, 30, 40]));
        RecordBatch::try_from_iter([("x", x), ("y", y)]).unwrap()
    }

    #[test]
    fn a_child_at_an_offset_is_copied_to_offset_zero() {
        // What another producer may hand over: a struct whose child starts at element 1.
        let child = ArrayData::builder(DataType::Float64)
            .len(2)
            .offset(1)
            .add_buffer(arrow_buffer::Buffer::from_slice_ref([1.0f64, 2.0, 3.0]))
            .build()
            .unwrap();
        let fields = vec![arrow_schema::Field::new("x", DataType::Float64, false)];
        let data = ArrayData::builder(DataType::Struct(fields.into()))
            .len(2)
            .add_child_data(child)
            .build()
            .unwrap();
        assert!(!data_offsets_are_zero(&data));
        let copied = at_offset_zero(&data).unwrap();
        assert!(data_offsets_are_zero(&copied));
        let array = FFI_ArrowArray::new(&copied);
        assert!(offsets_are_zero(&array));
        let back = StructArray::from(copied);
        let x = back
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(x.values(), &[2.0, 3.0]);
    }

    #[test]
    fn an_input_moved_out_of_its_struct_leaves_a_released_one() {
        let (array, schema) = export_batch(batch()).unwrap();
        let mut array = Box::new(array);
        let mut schema = Box::new(schema);
        let (a, s) = unsafe {
            take_input(
                &mut *array as *mut FFI_ArrowArray as i64,
                &mut *schema as *mut FFI_ArrowSchema as i64,
            )
        }
        .unwrap();
        assert!(array.is_released());
        assert_eq!(import_batch(a, &s).unwrap().num_rows(), 4);
        let again = unsafe {
            take_input(
                &mut *array as *mut FFI_ArrowArray as i64,
                &mut *schema as *mut FFI_ArrowSchema as i64,
            )
        };
        assert!(again.unwrap_err().0.contains("released"));
    }

    #[test]
    fn a_null_address_is_an_error_naming_the_struct() {
        let err = unsafe { take_input(0, 0) }.unwrap_err();
        assert_eq!(err.0, "the input ArrowArray address is 0 (null)");
    }
}
