//! Map a batch's columns onto a model's declared inputs.
//!
//! Columns are found by name; extra columns are ignored; their order does
//! not matter. A column whose type differs from the declared one is cast
//! only where [`cast_allowed`] says so (docs/abi.md, "Input mapping"):
//!
//! | declared            | accepted                                                |
//! |---------------------|---------------------------------------------------------|
//! | float32, float64    | any integer or floating-point column                    |
//! | int8..int64, uint*  | any integer column (a value that does not fit is an error) |
//! | utf8, large_utf8    | utf8, large_utf8, utf8_view, dictionary of strings      |
//! | bool                | bool only                                               |
//! | list types          | the same type only                                      |
//!
//! Nulls in a column declared non-nullable are an error naming the column
//! and the first null row. NaN is a value, not a null: models decide.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::{new_null_array, Array, ArrayRef, RecordBatch, RecordBatchOptions, StructArray};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_schema::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};

use crate::error::InputError;
use crate::rows::MissingFields;

/// Return the batch of exactly the declared input columns, in declared
/// order, with declared types. Zero-copy where no cast is needed.
pub fn prepare(batch: &RecordBatch, inputs: &SchemaRef) -> Result<RecordBatch, InputError> {
    let schema = batch.schema_ref();
    let declared = inputs.fields();
    // Fast path: the batch starts with the inputs in declared order.
    let positional = schema.fields().len() >= declared.len()
        && declared
            .iter()
            .zip(schema.fields().iter())
            .all(|(d, f)| d.name() == f.name());
    let by_name: HashMap<&str, usize> = if positional {
        HashMap::new()
    } else {
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name().as_str(), i))
            .collect()
    };
    let mut columns = Vec::with_capacity(declared.len());
    for (i, field) in declared.iter().enumerate() {
        let index = if positional {
            i
        } else {
            *by_name
                .get(field.name().as_str())
                .ok_or_else(|| InputError::MissingColumn {
                    column: field.name().clone(),
                    available: column_list(batch),
                })?
        };
        columns.push(coerce(batch.column(index), field)?);
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(inputs.clone(), columns, &options)
        .map_err(|e| InputError::Other(format!("cannot assemble the model input: {e}")))
}

/// [`prepare`] for one event of a message host (an Arrow IPC message): an
/// input column the batch lacks is an error for every row, worded as for
/// rows ([`crate::rows::absent_field`]), unless `missing` reads it as a
/// column of nulls. Errors are the message's reason.
pub fn prepare_event(
    batch: &RecordBatch,
    inputs: &SchemaRef,
    missing: MissingFields,
) -> Result<RecordBatch, String> {
    match prepare(batch, inputs) {
        Err(InputError::MissingColumn { .. }) => {}
        prepared => return prepared.map_err(|e| e.to_string()),
    }
    let schema = batch.schema_ref();
    let absent = inputs
        .fields()
        .iter()
        .filter(|f| schema.column_with_name(f.name()).is_none());
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    let mut columns = batch.columns().to_vec();
    for field in absent {
        missing.absent(field.name())?;
        if !field.is_nullable() {
            return Err(crate::rows::null_in_non_nullable(field.name()));
        }
        fields.push(field.clone());
        columns.push(new_null_array(field.data_type(), batch.num_rows()));
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    let filled = RecordBatch::try_new_with_options(Arc::new(Schema::new(fields)), columns, &options)
        .map_err(|e| format!("cannot add the absent inputs as nulls: {e}"))?;
    prepare(&filled, inputs).map_err(|e| e.to_string())
}

/// Check what a foreign C struct array (a batch imported from a host, not
/// yet read) says about itself, before anything reads it: lengths and
/// offsets not negative and not overflowing, each child long enough for its
/// parent's rows, the children the schema names, and the buffers a
/// fixed-width or struct array needs present. The C Data Interface carries
/// no buffer sizes, so this is what can be checked without trusting the
/// lengths; [`import_c_batch`] validates the imported arrays in full after.
pub fn check_c_array(array: &FFI_ArrowArray, schema: &FFI_ArrowSchema) -> Result<(), InputError> {
    catch_unwind(AssertUnwindSafe(|| check_c_node(array, schema, "the input", None)))
        .unwrap_or_else(|p| Err(format!("it could not be read ({})", crate::model::panic_text(&*p))))
        .map_err(|reason| InputError::Other(format!("the input is not a valid Arrow array: {reason}; fix its producer")))
}

fn check_c_node(array: &FFI_ArrowArray, schema: &FFI_ArrowSchema, name: &str, needed: Option<usize>) -> Result<(), String> {
    if array.is_released() {
        return Err(format!("{name} is released"));
    }
    let (len, offset) = (array.len(), array.offset());
    if i64::try_from(len).is_err() || i64::try_from(offset).is_err() {
        return Err(format!("{name} has a negative length or offset"));
    }
    let end = len
        .checked_add(offset)
        .filter(|e| i64::try_from(*e).is_ok())
        .ok_or_else(|| format!("{name}: offset {offset} plus length {len} overflows"))?;
    if let Some(needed) = needed {
        if len < needed {
            return Err(format!(
                "{name} has {len} value(s) (from offset {offset}) but its parent needs {needed}"
            ));
        }
    }
    if array.num_children() != usize::try_from(schema.n_children).unwrap_or(usize::MAX) {
        return Err(format!(
            "{name} has {} child array(s), its schema {}",
            array.num_children(),
            schema.n_children
        ));
    }
    let nulls = array.null_count_opt() != Some(0);
    let needs_buffer = |i: usize, what: &str| -> Result<(), String> {
        if array.num_buffers() <= i || array.buffer(i).is_null() {
            return Err(format!("{name} has no {what} buffer"));
        }
        Ok(())
    };
    let format = schema.format();
    let fixed = matches!(format, "b" | "c" | "C" | "s" | "S" | "i" | "I" | "l" | "L" | "e" | "f" | "g");
    if fixed || format == "+s" {
        if array.num_buffers() != if fixed { 2 } else { 1 } {
            return Err(format!("{name} has {} buffer(s), its type {format} has {}", array.num_buffers(), if fixed { 2 } else { 1 }));
        }
        if end > 0 && nulls {
            needs_buffer(0, "validity")?;
        }
        if end > 0 && fixed {
            needs_buffer(1, "values")?;
        }
    }
    if format == "+s" {
        for i in 0..array.num_children() {
            let child = schema.child(i);
            let child_name = format!("child '{}'", child.name().unwrap_or(""));
            check_c_node(array.child(i), child, &child_name, Some(end))?;
        }
    }
    Ok(())
}

/// A foreign C struct array as a record batch: [`check_c_array`] first,
/// then imported (moved) and validated in full (`ArrayData::validate_full`),
/// so that lying lengths or offsets are an [`InputError`], never a crash.
///
/// # Safety
/// `array` and `schema` must be C Data Interface structs that a producer
/// filled in (their pointers are followed); what they claim is checked.
pub unsafe fn import_c_batch(array: FFI_ArrowArray, schema: &FFI_ArrowSchema) -> Result<RecordBatch, InputError> {
    check_c_array(&array, schema)?;
    let bad = |reason: String| InputError::Other(format!("the input is not a valid Arrow array: {reason}; fix its producer"));
    // SAFETY: as the caller promises; the structure was checked above.
    let data = catch_unwind(AssertUnwindSafe(|| unsafe { from_ffi(array, schema) }))
        .map_err(|p| bad(format!("it could not be imported ({})", crate::model::panic_text(&*p))))?
        .map_err(|e| bad(e.to_string()))?;
    let DataType::Struct(fields) = data.data_type() else {
        return Err(InputError::Other(format!(
            "the input is a {}, expected a struct array (a record batch)",
            data.data_type()
        )));
    };
    // Nulls in a column its producer called non-nullable are not a lie about
    // memory: [`prepare`] names them against the declared inputs.
    let relaxed: Fields = fields.iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    let data = data
        .into_builder()
        .data_type(DataType::Struct(relaxed))
        .build() // validates in full
        .map_err(|e| bad(e.to_string()))?;
    Ok(RecordBatch::from(StructArray::from(data)))
}

/// Validate a record batch imported from a host by someone else's importer
/// (a stream's batches): every column in full.
pub fn validate_imported(batch: &RecordBatch) -> Result<(), InputError> {
    for (field, column) in batch.schema_ref().fields().iter().zip(batch.columns()) {
        let checked = catch_unwind(AssertUnwindSafe(|| column.to_data().validate_full()))
            .unwrap_or_else(|p| Err(arrow_schema::ArrowError::InvalidArgumentError(crate::model::panic_text(&*p))));
        if let Err(e) = checked {
            return Err(InputError::Other(format!(
                "the input is not a valid Arrow array: column '{}': {e}; fix its producer",
                field.name()
            )));
        }
    }
    Ok(())
}

/// Cast one column to its declared field, check its nulls.
pub fn coerce(column: &ArrayRef, field: &Field) -> Result<ArrayRef, InputError> {
    let expected = field.data_type();
    let column = if column.data_type() == expected {
        column.clone()
    } else if cast_allowed(column.data_type(), expected) {
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        cast_with_options(column, expected, &options).map_err(|e| InputError::Cast {
            column: field.name().clone(),
            expected: type_name(expected),
            reason: e.to_string(),
        })?
    } else {
        return Err(InputError::WrongType {
            column: field.name().clone(),
            expected: type_name(expected),
            got: type_name(column.data_type()),
            hint: hint(expected).to_string(),
        });
    };
    if !field.is_nullable() && column.null_count() > 0 {
        let first_row = column
            .logical_nulls()
            .and_then(|n| n.iter().position(|valid| !valid))
            .unwrap_or(0);
        return Err(InputError::Nulls {
            column: field.name().clone(),
            count: column.null_count(),
            first_row,
        });
    }
    Ok(column)
}

/// Whether a column of type `from` may be cast to a declared `to`.
pub fn cast_allowed(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let is_int = |t: &DataType| t.is_integer();
    let is_str = |t: &DataType| match t {
        Utf8 | LargeUtf8 | Utf8View => true,
        Dictionary(_, v) => matches!(v.as_ref(), Utf8 | LargeUtf8 | Utf8View),
        _ => false,
    };
    match to {
        Float32 | Float64 => is_int(from) || from.is_floating(),
        t if t.is_integer() => is_int(from),
        Utf8 | LargeUtf8 => is_str(from),
        _ => from == to,
    }
}

/// A type as the info document spells it (`float64`), else as Arrow does.
pub fn type_name(t: &DataType) -> String {
    streamml_abi::info::format_type(t).unwrap_or_else(|| t.to_string())
}

fn hint(expected: &DataType) -> &'static str {
    match expected {
        DataType::Float32 | DataType::Float64 => "integer and floating-point columns are cast",
        t if t.is_integer() => "integer columns are cast; floats and strings are not",
        DataType::Utf8 | DataType::LargeUtf8 => "string and dictionary-of-string columns are cast",
        _ => "only this exact type is accepted",
    }
}

fn column_list(batch: &RecordBatch) -> String {
    const SHOWN: usize = 40;
    let names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .take(SHOWN)
        .map(|f| f.name().as_str())
        .collect();
    let more = batch.num_columns().saturating_sub(SHOWN);
    if more > 0 {
        format!("{} and {more} more", names.join(", "))
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Float32Array, Float64Array, Int64Array, Int8Array, StringArray};
    use arrow_schema::Schema;

    use super::*;

    fn inputs() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, false),
            Field::new("b", DataType::Int8, true),
        ]))
    }

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(cols).unwrap()
    }

    #[test]
    fn maps_by_name_ignores_extras_and_casts() {
        let b = batch(vec![
            (
                "extra",
                Arc::new(StringArray::from(vec!["u", "v"])) as ArrayRef,
            ),
            ("b", Arc::new(Int64Array::from(vec![Some(1), None]))),
            ("a", Arc::new(Float32Array::from(vec![0.5, 1.5]))),
        ]);
        let out = prepare(&b, &inputs()).unwrap();
        assert_eq!(out.schema(), inputs());
        let a = out
            .column(0)
            .as_any()
            .downcast_ref::<Float64Array>()
            .unwrap();
        assert_eq!(a.values().as_ref(), &[0.5, 1.5]);
        let bcol = out.column(1).as_any().downcast_ref::<Int8Array>().unwrap();
        assert_eq!(bcol.value(0), 1);
        assert!(bcol.is_null(1));
    }

    #[test]
    fn positional_batch_is_zero_copy() {
        let a: ArrayRef = Arc::new(Float64Array::from(vec![1.0]));
        let b = batch(vec![
            ("a", a.clone()),
            ("b", Arc::new(Int8Array::from(vec![1])) as ArrayRef),
        ]);
        let out = prepare(&b, &inputs()).unwrap();
        assert!(Arc::ptr_eq(out.column(0), &a));
    }

    #[test]
    fn missing_column_is_named() {
        let b = batch(vec![(
            "a",
            Arc::new(Float64Array::from(vec![1.0])) as ArrayRef,
        )]);
        assert_eq!(
            prepare(&b, &inputs()).unwrap_err(),
            InputError::MissingColumn {
                column: "b".into(),
                available: "a".into()
            }
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let b = batch(vec![
            ("a", Arc::new(StringArray::from(vec!["1.0"])) as ArrayRef),
            ("b", Arc::new(Int8Array::from(vec![1]))),
        ]);
        let err = prepare(&b, &inputs()).unwrap_err();
        assert!(
            matches!(&err, InputError::WrongType { column, got, .. } if column == "a" && got == "utf8"),
            "{err}"
        );
        let b = batch(vec![
            ("a", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
            ("b", Arc::new(Float64Array::from(vec![1.0]))),
        ]);
        assert!(
            matches!(prepare(&b, &inputs()).unwrap_err(), InputError::WrongType { column, .. } if column == "b")
        );
    }

    #[test]
    fn overflowing_cast_is_an_error() {
        let b = batch(vec![
            ("a", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef),
            ("b", Arc::new(Int64Array::from(vec![300]))),
        ]);
        let err = prepare(&b, &inputs()).unwrap_err();
        assert!(
            matches!(&err, InputError::Cast { column, .. } if column == "b"),
            "{err}"
        );
    }

    #[test]
    fn nulls_in_non_nullable_column_name_the_first_row() {
        let b = batch(vec![
            (
                "a",
                Arc::new(Float64Array::from(vec![Some(1.0), Some(2.0), None, None])) as ArrayRef,
            ),
            ("b", Arc::new(Int8Array::from(vec![1, 2, 3, 4]))),
        ]);
        assert_eq!(
            prepare(&b, &inputs()).unwrap_err(),
            InputError::Nulls {
                column: "a".into(),
                count: 2,
                first_row: 2
            }
        );
    }

    #[test]
    fn cast_table() {
        use DataType::*;
        assert!(cast_allowed(&UInt64, &Float64));
        assert!(cast_allowed(&Float64, &Float32));
        assert!(!cast_allowed(&Boolean, &Float64));
        assert!(!cast_allowed(&Utf8, &Float64));
        assert!(!cast_allowed(&Float64, &Int64));
        assert!(cast_allowed(
            &Dictionary(Box::new(Int32), Box::new(Utf8)),
            &Utf8
        ));
        assert!(!cast_allowed(&Int64, &Boolean));
    }
}
