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

use arrow_array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_cast::{cast_with_options, CastOptions};
use arrow_schema::{DataType, Field, SchemaRef};

use crate::error::InputError;

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
