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
use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, SchemaRef};

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
    fn kind(&self) -> &'static str {
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

    /// Whether `cell` can go into this column (checked before appending).
    fn accepts(&self, cell: &Cell) -> bool {
        match (self, cell) {
            (_, Cell::Null) => true,
            (Column::Float(_), Cell::Float(_) | Cell::Int(_) | Cell::UInt(_)) => true,
            (Column::Int(_), Cell::Int(_)) => true,
            (Column::Int(_), Cell::UInt(u)) => i64::try_from(*u).is_ok(),
            (Column::UInt(_), Cell::UInt(_)) => true,
            (Column::UInt(_), Cell::Int(i)) => *i >= 0,
            (Column::Bool(_), Cell::Bool(_)) => true,
            (Column::Str(_), Cell::Str(_)) => true,
            _ => false,
        }
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
            _ => unreachable!("accepts() was checked"),
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
        if cells.len() != self.columns.len() {
            return Err(format!(
                "expected {} values, got {}",
                self.columns.len(),
                cells.len()
            ));
        }
        for ((column, cell), field) in self.columns.iter().zip(cells).zip(self.schema.fields()) {
            if matches!(cell, Cell::Null) && !field.is_nullable() {
                return Err(null_in_non_nullable(field.name()));
            }
            if !column.accepts(cell) {
                return Err(format!(
                    "field '{}' is {}, expected {}",
                    field.name(),
                    cell.kind(),
                    type_name(field.data_type())
                ));
            }
        }
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
    fn out_of_range_integers_fail_at_finish_naming_the_column() {
        let mut b = RowBuilder::new(schema()).unwrap();
        b.append_row(&[Cell::Float(1.0), Cell::Int(1000), Cell::Str("x")])
            .unwrap();
        let err = b.finish().unwrap_err();
        assert!(
            matches!(&err, InputError::Cast { column, .. } if column == "i"),
            "{err}"
        );
    }
}
