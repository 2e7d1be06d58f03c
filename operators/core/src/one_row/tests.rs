//! The one-row array against the batch builder: the same checks, the same
//! values, the same messages.

use std::sync::Arc;

use arrow_array::ffi::FFI_ArrowSchema;
use arrow_array::{Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use streamml_abi::{FieldSpec, ModelInfo, Task};

use super::*;
use crate::backend::Backend;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("x", DataType::Float64, false),
        Field::new("f", DataType::Float32, true),
        Field::new("n", DataType::Int8, true),
        Field::new("u", DataType::UInt16, true),
        Field::new("b", DataType::Boolean, true),
        Field::new("s", DataType::Utf8, true),
    ]))
}

/// The values the array holds, read back as a host reads an output.
fn values(row: &OneRow) -> Vec<String> {
    let schema = FFI_ArrowSchema::try_from(DataType::Struct(row.schema().fields().clone())).unwrap();
    let mut out = Vec::new();
    let read = unsafe {
        read_row(row.array(), &schema, 0, |_, v| {
            out.push(format!("{v:?}"));
            Ok::<(), ()>(())
        })
    };
    assert_eq!(read, Ok(true));
    out
}

#[test]
fn every_kind_is_written_in_place_and_read_back() {
    let mut row = OneRow::new(&schema()).unwrap();
    assert!(!row.all_float64());
    row.fill(&[
        Cell::Int(2),
        Cell::Float(0.5),
        Cell::Int(-3),
        Cell::UInt(65535),
        Cell::Bool(true),
        Cell::Str("héllo"),
    ])
    .unwrap();
    assert_eq!(
        values(&row),
        ["F64(2.0)", "F32(0.5)", "I8(-3)", "U16(65535)", "Bool(true)", "Str(\"héllo\")"]
    );
    // Nulls, then values again: the validity bits and null counts follow.
    row.fill(&[Cell::Float(1.0), Cell::Null, Cell::Null, Cell::Null, Cell::Null, Cell::Null])
        .unwrap();
    assert_eq!(values(&row), ["F64(1.0)", "Null", "Null", "Null", "Null", "Null"]);
    let long = "x".repeat(1000); // past the string buffer's first capacity
    row.fill(&[
        Cell::Float(-1.0),
        Cell::Int(7),
        Cell::UInt(8),
        Cell::Int(9),
        Cell::Bool(false),
        Cell::Str(&long),
    ])
    .unwrap();
    assert_eq!(values(&row)[..5], ["F64(-1.0)", "F32(7.0)", "I8(8)", "U16(9)", "Bool(false)"]);
    assert_eq!(values(&row)[5], format!("Str({long:?})"));
}

#[test]
fn refusals_are_the_batch_builders_word_for_word() {
    let bad: Vec<Vec<Cell>> = vec![
        vec![Cell::Null, Cell::Null, Cell::Null, Cell::Null, Cell::Null, Cell::Null],
        vec![Cell::Str("1"), Cell::Null, Cell::Null, Cell::Null, Cell::Null, Cell::Null],
        vec![Cell::Float(1.0), Cell::Bool(true), Cell::Null, Cell::Null, Cell::Null, Cell::Null],
        vec![Cell::Float(1.0), Cell::Null, Cell::Int(128), Cell::Null, Cell::Null, Cell::Null],
        vec![Cell::Float(1.0), Cell::Null, Cell::Null, Cell::Int(-1), Cell::Null, Cell::Null],
        vec![Cell::Float(1.0), Cell::Null, Cell::Float(1.5), Cell::Null, Cell::Null, Cell::Null],
        vec![Cell::Float(1.0), Cell::Null, Cell::Null, Cell::Null, Cell::Int(1), Cell::Null],
        vec![Cell::Float(1.0), Cell::Null, Cell::Null, Cell::Null, Cell::Null, Cell::Float(2.0)],
        vec![Cell::Float(1.0)],
    ];
    let expected = [
        "field 'x' is null but the input is not nullable",
        "field 'x' is a string, expected float64",
        "field 'f' is a bool, expected float32",
        "field 'n' is 128, out of range for int8; send a value that fits the input's type",
        "field 'u' is -1, out of range for uint16; send a value that fits the input's type",
        "field 'n' is a float, expected int8",
        "field 'b' is an integer, expected bool",
        "field 's' is a float, expected utf8",
        "expected 6 values in the model's input order (x, f, n, u, b, s), got 1",
    ];
    let mut row = OneRow::new(&schema()).unwrap();
    let mut builder = RowBuilder::new(schema()).unwrap();
    for (cells, want) in bad.iter().zip(expected) {
        assert_eq!(row.fill(cells).unwrap_err(), want);
        assert_eq!(builder.append_row(cells).unwrap_err(), want);
    }
    assert!(builder.is_empty());
}

#[test]
fn fill_f64_writes_a_float_row() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("a", DataType::Float64, true),
        Field::new("b", DataType::Float64, false),
    ]));
    let mut row = OneRow::new(&schema).unwrap();
    assert!(row.all_float64());
    row.fill(&[Cell::Null, Cell::Float(1.0)]).unwrap();
    row.fill_f64([3.0, f64::NAN]);
    let v = values(&row);
    assert_eq!(v, ["F64(3.0)", "F64(NaN)"]);
}

#[test]
fn types_the_array_does_not_carry_take_the_batch_path() {
    let list = DataType::List(Arc::new(Field::new("item", DataType::Float64, true)));
    let schema = Arc::new(Schema::new(vec![Field::new("l", list, true)]));
    assert!(OneRow::new(&schema).is_none());
    let large = Arc::new(Schema::new(vec![Field::new("s", DataType::LargeUtf8, true)]));
    assert!(OneRow::new(&large).is_none());
}

/// y = x + 1, a host's own scorer (not a binary): rows take the one-row batch.
struct PlusOne(ModelInfo);

impl Backend for PlusOne {
    fn info(&self) -> &ModelInfo {
        &self.0
    }
    fn origin(&self) -> &str {
        "test model 'plus_one'"
    }
    fn sha256(&self) -> Option<&str> {
        None
    }
    fn score(&self, input: &RecordBatch) -> Result<RecordBatch, PredictError> {
        let x = input.column(0).as_primitive::<Float64Type>();
        let y: Float64Array = x.iter().map(|v| v.map(|v| v + 1.0)).collect();
        let schema = Arc::new(Schema::new(vec![Field::new("y", DataType::Float64, true)]));
        Ok(RecordBatch::try_new(schema, vec![Arc::new(y)]).unwrap())
    }
}

#[test]
fn a_scorer_that_is_not_a_binary_scores_rows_through_a_batch() {
    let info = ModelInfo {
        abi_version: 1,
        name: "plus_one".into(),
        version: "1".into(),
        task: Task::Regression,
        framework: "test".into(),
        inputs: vec![FieldSpec::new("x", "float64", true)],
        outputs: vec![FieldSpec::new("y", "float64", true)],
        drift_reference: None,
        metadata: Default::default(),
    };
    let model = Model::from_backend(Arc::new(PlusOne(info))).unwrap();
    let mut scorer = OneRowScorer::new(model, MissingFields::Error).unwrap();
    assert!(!scorer.is_one_row());
    let read = |s: &ScoredRow| {
        let mut out = Vec::new();
        let read = s.read(|_, v| {
            out.push(format!("{v:?}"));
            Ok::<_, ()>(())
        });
        assert_eq!(read, Ok(true));
        out
    };
    assert_eq!(read(&scorer.score(&[Cell::Int(2)]).unwrap()), ["F64(3.0)"]);
    assert_eq!(read(&scorer.score(&[Cell::Null]).unwrap()), ["Null"]);
    match scorer.score(&[Cell::Str("a")]) {
        Err(RowFailure::Refused(r)) => assert_eq!(r, "field 'x' is a string, expected float64"),
        _ => panic!("a string for a float64 input is refused"),
    }
    assert_eq!(read(&scorer.score(&[Cell::Float(0.5)]).unwrap()), ["F64(1.5)"]);
    // Rows of doubles: the outcome of the same values as cells.
    assert_eq!(read(&scorer.score_f64(&[0.25]).unwrap()), ["F64(1.25)"]);
    match scorer.score_f64(&[1.0, 2.0]) {
        Err(RowFailure::Refused(r)) => assert_eq!(r, "expected 1 values in the model's input order (x), got 2"),
        _ => panic!("a row of two values for one input is refused"),
    }
    assert_eq!(read(&scorer.score_f64(&[f64::NAN]).unwrap()), ["F64(NaN)"]);
}
