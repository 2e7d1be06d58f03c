//! Build a batch of a model's inputs from rows (Python dicts, JSON objects).
//!
//! A host turns each value into a [`Cell`]; [`RowBuilder::append_row`]
//! checks a whole row before adding any of it, so a bad row is refused
//! whole with a reason naming the field, and the builder stays usable.
//! Values follow the same cast rules as columns ([`crate::input`]): numbers
//! into float fields, integers into integer fields, strings into string
//! fields, booleans into bool fields.
//!
//! [`MissingFields`] is the one rule every host follows for an input field
//! that an event lacks (a JSON message, a dict, an Arrow IPC message, a
//! Flink row by name): **absent is not null**. An absent field is an error
//! for that event, worded by [`absent_field`]; an explicit null is a missing
//! value where the input is nullable. A host may opt in to reading absent
//! fields as null ([`MissingFields::Null`]).

use std::sync::Arc;

use arrow_array::builder::{
    BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, UInt64Builder,
};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use crate::error::InputError;
use crate::input::{coerce, type_name};

/// What a host does with an input field absent from an event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MissingFields {
    /// The event is refused with [`absent_field`] (the default).
    #[default]
    Error,
    /// The field is read as null (then refused only where the input is not nullable).
    Null,
}

impl MissingFields {
    /// The cell of an absent field `name`: null, or the error naming it.
    pub fn absent<'a>(self, name: &str) -> Result<Cell<'a>, String> {
        match self {
            MissingFields::Null => Ok(Cell::Null),
            MissingFields::Error => Err(absent_field(name)),
        }
    }
}

impl std::str::FromStr for MissingFields {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "error" => Ok(MissingFields::Error),
            "null" => Ok(MissingFields::Null),
            _ => Err(format!(
                "missing_fields is '{s}', expected \"error\" (an absent input field refuses the event) \
                 or \"null\" (an absent input field is read as null)"
            )),
        }
    }
}

/// Why an event without the input field `name` is refused: the same words in every host.
pub fn absent_field(name: &str) -> String {
    format!(
        "field '{name}' is absent; send null for a missing value, or set missing_fields=\"null\" \
         to read absent fields as null"
    )
}

/// Why an event with a null (or, read as null, absent) non-nullable input is refused.
pub fn null_in_non_nullable(name: &str) -> String {
    format!("field '{name}' is null but the input is not nullable")
}

/// Why an event whose input `field` holds `what` (`"a list"`, `"a string"`) is refused.
pub fn wrong_kind(field: &Field, what: &str) -> String {
    format!(
        "field '{}' is {what}, expected {}",
        field.name(),
        type_name(field.data_type())
    )
}

/// Check a row (one cell per field of `schema`, in order) against the
/// declared inputs: the number of values, nulls in non-nullable inputs, the
/// kind of each value and the range of integers. The one set of row checks
/// of every host: [`RowBuilder`] and [`crate::one_row::OneRow`] both call it.
pub fn check_row(schema: &Schema, cells: &[Cell]) -> Result<(), String> {
    let fields = schema.fields();
    if cells.len() != fields.len() {
        return Err(format!(
            "expected {} values in the model's input order ({}), got {}",
            fields.len(),
            field_names(schema),
            cells.len()
        ));
    }
    for (field, cell) in fields.iter().zip(cells) {
        check_cell(field, cell)?;
    }
    Ok(())
}

/// Check one value for its declared input `field` (see [`check_row`]).
pub fn check_cell(field: &Field, cell: &Cell) -> Result<(), String> {
    use DataType::*;
    let t = field.data_type();
    let v: i128 = match (t, *cell) {
        (_, Cell::Null) if field.is_nullable() => return Ok(()),
        (_, Cell::Null) => return Err(null_in_non_nullable(field.name())),
        (Float32 | Float64, Cell::Float(_) | Cell::Int(_) | Cell::UInt(_)) => return Ok(()),
        (Boolean, Cell::Bool(_)) | (Utf8 | LargeUtf8, Cell::Str(_)) => return Ok(()),
        (t, Cell::Int(v)) if t.is_integer() => v.into(),
        (t, Cell::UInt(v)) if t.is_integer() => v.into(),
        _ => return Err(wrong_kind(field, cell.kind())),
    };
    if int_fits(t, v) {
        Ok(())
    } else {
        Err(format!(
            "field '{}' is {v}, out of range for {}; send a value that fits the input's type",
            field.name(),
            type_name(t)
        ))
    }
}

/// Whether the integer `v` fits the integer type `t`.
fn int_fits(t: &DataType, v: i128) -> bool {
    use DataType::*;
    let (lo, hi): (i128, i128) = match t {
        Int8 => (i8::MIN.into(), i8::MAX.into()),
        Int16 => (i16::MIN.into(), i16::MAX.into()),
        Int32 => (i32::MIN.into(), i32::MAX.into()),
        Int64 => (i64::MIN.into(), i64::MAX.into()),
        UInt8 => (0, u8::MAX.into()),
        UInt16 => (0, u16::MAX.into()),
        UInt32 => (0, u32::MAX.into()),
        UInt64 => (0, u64::MAX.into()),
        _ => return false,
    };
    (lo..=hi).contains(&v)
}

fn field_names(schema: &Schema) -> String {
    const SHOWN: usize = 8;
    let fields = schema.fields();
    let mut names: Vec<&str> = fields.iter().take(SHOWN).map(|f| f.name().as_str()).collect();
    let more = fields.len().saturating_sub(SHOWN);
    let more = format!("and {more} more");
    if fields.len() > SHOWN {
        names.push(&more);
    }
    names.join(", ")
}

/// One value of a row, as a host read it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(&'a str),
}

impl Cell<'_> {
    /// What the value is, as messages say it (`"a float"`).
    pub fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "null",
            Cell::Bool(_) => "a bool",
            Cell::Int(_) | Cell::UInt(_) => "an integer",
            Cell::Float(_) => "a float",
            Cell::Str(_) => "a string",
        }
    }
}

/// Columns are built in a wide type, then cast to the declared one.
enum Column {
    Float(Float64Builder),
    Int(Int64Builder),
    UInt(UInt64Builder),
    Bool(BooleanBuilder),
    Str(StringBuilder),
}

impl Column {
    fn for_type(t: &DataType) -> Option<Self> {
        use DataType::*;
        Some(match t {
            Float32 | Float64 => Column::Float(Float64Builder::new()),
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 => {
                Column::Int(Int64Builder::new())
            }
            UInt64 => Column::UInt(UInt64Builder::new()),
            Boolean => Column::Bool(BooleanBuilder::new()),
            Utf8 | LargeUtf8 => Column::Str(StringBuilder::new()),
            _ => return None,
        })
    }

    fn append(&mut self, cell: &Cell) {
        match (self, *cell) {
            (Column::Float(b), Cell::Null) => b.append_null(),
            (Column::Float(b), Cell::Float(v)) => b.append_value(v),
            (Column::Float(b), Cell::Int(v)) => b.append_value(v as f64),
            (Column::Float(b), Cell::UInt(v)) => b.append_value(v as f64),
            (Column::Int(b), Cell::Null) => b.append_null(),
            (Column::Int(b), Cell::Int(v)) => b.append_value(v),
            (Column::Int(b), Cell::UInt(v)) => b.append_value(v as i64),
            (Column::UInt(b), Cell::Null) => b.append_null(),
            (Column::UInt(b), Cell::UInt(v)) => b.append_value(v),
            (Column::UInt(b), Cell::Int(v)) => b.append_value(v as u64),
            (Column::Bool(b), Cell::Null) => b.append_null(),
            (Column::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Column::Str(b), Cell::Null) => b.append_null(),
            (Column::Str(b), Cell::Str(v)) => b.append_value(v),
            _ => unreachable!("check_row accepted the cell"),
        }
    }

    fn finish(&mut self) -> ArrayRef {
        match self {
            Column::Float(b) => Arc::new(b.finish()),
            Column::Int(b) => Arc::new(b.finish()),
            Column::UInt(b) => Arc::new(b.finish()),
            Column::Bool(b) => Arc::new(b.finish()),
            Column::Str(b) => Arc::new(b.finish()),
        }
    }
}

/// Builds a batch of a model's declared inputs, row by row.
pub struct RowBuilder {
    schema: SchemaRef,
    columns: Vec<Column>,
    rows: usize,
}

impl RowBuilder {
    /// A builder for `schema` (a model's input schema). Fails for a field
    /// type that rows cannot carry (lists).
    pub fn new(schema: SchemaRef) -> Result<Self, InputError> {
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                Column::for_type(f.data_type()).ok_or_else(|| {
                    InputError::Other(format!(
                        "input '{}' has type {}, which rows of scalars cannot fill; pass an Arrow batch",
                        f.name(),
                        f.data_type()
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            schema,
            columns,
            rows: 0,
        })
    }

    /// The declared fields, in the order `append_row` wants cells.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Rows appended so far.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Check a row (one cell per declared field, in order) and append it, or
    /// refuse it whole with the reason, naming the field.
    pub fn append_row(&mut self, cells: &[Cell]) -> Result<(), String> {
        check_row(&self.schema, cells)?;
        for (column, cell) in self.columns.iter_mut().zip(cells) {
            column.append(cell);
        }
        self.rows += 1;
        Ok(())
    }

    /// Take the rows appended so far as a batch of the declared schema.
    pub fn finish(&mut self) -> Result<RecordBatch, InputError> {
        let columns = self
            .columns
            .iter_mut()
            .zip(self.schema.fields())
            .map(|(c, f)| coerce(&c.finish(), f))
            .collect::<Result<Vec<_>, _>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(self.rows));
        self.rows = 0;
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| InputError::Other(format!("cannot assemble rows: {e}")))
    }
}

/// A batch of `schema`'s inputs from whole rows of float64 values, none
/// null, one row after the other in `values`: when every input is float64,
/// such rows pass every check ([`check_row`] of [`Cell::Float`]s), so the
/// columns are filled straight from `values`. `None` when an input is not
/// float64 or `values` is not whole rows (then append the rows as cells).
pub fn float64_rows(schema: &SchemaRef, values: &[f64]) -> Option<RecordBatch> {
    let width = schema.fields().len();
    if width == 0
        || !values.len().is_multiple_of(width)
        || schema.fields().iter().any(|f| f.data_type() != &DataType::Float64)
    {
        return None;
    }
    let rows = values.len() / width;
    let columns = (0..width)
        .map(|j| {
            let column = (0..rows).map(|r| values[r * width + j]);
            Arc::new(Float64Array::from_iter_values(column)) as ArrayRef
        })
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows));
    RecordBatch::try_new_with_options(schema.clone(), columns, &options).ok()
}

#[cfg(test)]
mod tests {
    use arrow_array::{Array, Float32Array, Int8Array, StringArray};
    use arrow_schema::{Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("f", DataType::Float32, false),
            Field::new("i", DataType::Int8, true),
            Field::new("s", DataType::Utf8, false),
        ]))
    }

    #[test]
    fn builds_declared_types() {
        let mut b = RowBuilder::new(schema()).unwrap();
        b.append_row(&[Cell::Int(2), Cell::Null, Cell::Str("a")])
            .unwrap();
        b.append_row(&[Cell::Float(0.5), Cell::Int(-3), Cell::Str("b")])
            .unwrap();
        let batch = b.finish().unwrap();
        assert_eq!(batch.schema(), schema());
        let f = batch
            .column(0)
            .as_any()
            .downcast_ref::<Float32Array>()
            .unwrap();
        assert_eq!(f.values().as_ref(), &[2.0, 0.5]);
        let i = batch
            .column(1)
            .as_any()
            .downcast_ref::<Int8Array>()
            .unwrap();
        assert!(i.is_null(0));
        assert_eq!(i.value(1), -3);
        let s = batch
            .column(2)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(s.value(1), "b");
        assert!(b.is_empty(), "finish resets the builder");
    }

    #[test]
    fn rows_of_doubles_make_the_batch_the_builder_makes() {
        let floats: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, false),
            Field::new("b", DataType::Float64, true),
        ]));
        let values = [1.5, -2.0, f64::NAN, 0.25, 7.0, 8.0];
        let mut b = RowBuilder::new(floats.clone()).unwrap();
        for row in values.chunks(2) {
            b.append_row(&[Cell::Float(row[0]), Cell::Float(row[1])]).unwrap();
        }
        let built = b.finish().unwrap();
        let direct = float64_rows(&floats, &values).unwrap();
        assert_eq!(direct.schema(), floats);
        assert_eq!(direct.num_rows(), 3);
        for j in 0..2 {
            // Bit for bit (NaN included): the same columns.
            assert_eq!(direct.column(j).to_data(), built.column(j).to_data());
        }
        // Not whole rows, or an input that is not float64: build them cell by cell.
        assert!(float64_rows(&floats, &values[..5]).is_none());
        assert!(float64_rows(&schema(), &[1.0, 2.0, 3.0]).is_none());
    }

    #[test]
    fn a_bad_row_is_refused_whole() {
        let mut b = RowBuilder::new(schema()).unwrap();
        b.append_row(&[Cell::Float(1.0), Cell::Int(1), Cell::Str("ok")])
            .unwrap();
        let err = b
            .append_row(&[Cell::Float(1.0), Cell::Int(1), Cell::Float(2.0)])
            .unwrap_err();
        assert_eq!(err, "field 's' is a float, expected utf8");
        let err = b
            .append_row(&[Cell::Null, Cell::Int(1), Cell::Str("x")])
            .unwrap_err();
        assert_eq!(err, "field 'f' is null but the input is not nullable");
        assert_eq!(b.len(), 1);
        assert_eq!(b.finish().unwrap().num_rows(), 1);
    }

    #[test]
    fn out_of_range_integers_are_refused_with_the_row() {
        let mut b = RowBuilder::new(schema()).unwrap();
        let err = b
            .append_row(&[Cell::Float(1.0), Cell::Int(1000), Cell::Str("x")])
            .unwrap_err();
        assert_eq!(
            err,
            "field 'i' is 1000, out of range for int8; send a value that fits the input's type"
        );
        let err = b.append_row(&[Cell::Float(1.0)]).unwrap_err();
        assert_eq!(err, "expected 3 values in the model's input order (f, i, s), got 1");
        b.append_row(&[Cell::Float(1.0), Cell::UInt(127), Cell::Str("x")])
            .unwrap();
        assert_eq!(b.finish().unwrap().num_rows(), 1);
    }
}
