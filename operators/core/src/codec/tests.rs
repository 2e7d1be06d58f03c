//! The codecs against a small in-process model: y = a + 2 b, failing on a = 13.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{Array, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use streamml_abi::{FieldSpec, ModelInfo, Task};

use super::*;
use crate::error::PredictError;
use crate::backend::Backend;

/// y = k (a + 2 b); fails where a = 13.
struct Affine(ModelInfo, f64);

impl Backend for Affine {
    fn info(&self) -> &ModelInfo {
        &self.0
    }
    fn origin(&self) -> &str {
        "test model 'affine'"
    }
    fn sha256(&self) -> Option<&str> {
        None
    }
    fn score(&self, input: &RecordBatch) -> Result<RecordBatch, PredictError> {
        let a = input.column(0).as_primitive::<Float64Type>();
        let b = input.column(1).as_primitive::<Int64Type>();
        if a.values().contains(&13.0) {
            return Err(PredictError {
                origin: self.origin().into(),
                rows: input.num_rows(),
                reason: "a is 13".into(),
                status: None,
            });
        }
        let y: Float64Array = a
            .iter()
            .zip(b.iter())
            .map(|(a, b)| Some(self.1 * (a? + 2.0 * b? as f64)))
            .collect();
        let schema = Arc::new(Schema::new(vec![Field::new("y", DataType::Float64, true)]));
        Ok(RecordBatch::try_new(schema, vec![Arc::new(y)]).unwrap())
    }
}

use arrow_array::types::Int64Type;

fn model() -> Model {
    scaled(1.0)
}

fn scaled(k: f64) -> Model {
    let info = ModelInfo {
        abi_version: streamml_abi::ABI_VERSION,
        name: "affine".into(),
        version: "1".into(),
        task: Task::Regression,
        framework: "test".into(),
        inputs: vec![
            FieldSpec::new("a", "float64", false),
            FieldSpec::new("b", "int64", true),
        ],
        outputs: vec![FieldSpec::new("y", "float64", true)],
        drift_reference: None,
        metadata: Default::default(),
    };
    Model::from_backend(Arc::new(Affine(info, k))).unwrap()
}

fn json_scorer() -> MessageScorer {
    MessageScorer::new(model(), Format::Json, Carry::id(Some("id".into()))).unwrap()
}

fn text(scored: &Scored, i: usize) -> &str {
    std::str::from_utf8(scored.outputs[i].as_deref().expect("an output")).unwrap()
}

#[test]
fn json_messages_are_scored_and_carry_their_id() {
    let values: Vec<&[u8]> = vec![
        br#"{"id": "e1", "a": 1.5, "b": 2, "extra": [1, {"x": 2}]}"#,
        br#"{"b": null, "a": 3, "id": {"k": [1, 2]}}"#,
        br#"{"a": 0.1, "b": null}"#,
    ];
    let scored = json_scorer().score(&values);
    assert!(scored.errors.is_empty(), "{:?}", scored.errors);
    assert_eq!(text(&scored, 0), r#"{"id":"e1","y":5.5}"#);
    assert_eq!(text(&scored, 1), r#"{"id":{"k": [1, 2]},"y":null}"#);
    assert_eq!(text(&scored, 2), r#"{"y":null}"#);
}

#[test]
fn an_absent_input_is_the_message_error_unless_read_as_null() {
    let values: Vec<&[u8]> = vec![br#"{"a": 0.1}"#, br#"{"b": 1}"#, br#"{"a": 0.1, "b": null}"#];
    let strict = json_scorer().score(&values);
    let reasons: Vec<_> = strict.errors.iter().map(|e| (e.index, e.reason.as_str())).collect();
    assert_eq!(
        reasons,
        [
            (0, r#"field 'b' is absent; send null for a missing value, or set missing_fields="null" to read absent fields as null"#),
            (1, r#"field 'a' is absent; send null for a missing value, or set missing_fields="null" to read absent fields as null"#),
        ]
    );
    assert_eq!(text(&strict, 2), r#"{"y":null}"#);
    let lenient = json_scorer().with_missing_fields(MissingFields::Null).score(&values);
    let reasons: Vec<_> = lenient.errors.iter().map(|e| (e.index, e.reason.as_str())).collect();
    // Read as null, `a` is still not nullable.
    assert_eq!(reasons, [(1, "field 'a' is null but the input is not nullable")]);
    assert_eq!(text(&lenient, 0), r#"{"y":null}"#);
    assert_eq!(text(&lenient, 2), r#"{"y":null}"#);
}

#[test]
fn each_bad_json_message_gets_its_own_reason() {
    let values: Vec<&[u8]> = vec![
        br#"{"a": 1, "b": 1}"#,
        b"{not json",
        b"[1, 2]",
        br#""a string""#,
        br#"{"b": 1}"#,
        br#"{"a": "1.5", "b": 1}"#,
        br#"{"a": 1, "b": 1.5}"#,
        br#"{"a": [1], "b": 1}"#,
        br#"{"a": null, "b": 1}"#,
        b"\xff\xfe",
        br#"{"a": 1, "b": 1} trailing"#,
        br#"{"a": 2, "b": 2}"#,
    ];
    let scored = json_scorer().score(&values);
    let reasons: Vec<(usize, &str)> = scored
        .errors
        .iter()
        .map(|e| (e.index, e.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 10, "{reasons:?}");
    assert!(
        reasons[0]
            .1
            .starts_with("invalid JSON: key must be a string"),
        "{}",
        reasons[0].1
    );
    assert_eq!(reasons[1], (2, "expected a JSON object, got an array"));
    assert_eq!(reasons[2], (3, "expected a JSON object, got a string"));
    assert_eq!(reasons[3], (4, "field 'a' is absent; send null for a missing value, or set missing_fields=\"null\" to read absent fields as null"));
    assert_eq!(reasons[4], (5, "field 'a' is a string, expected float64"));
    assert_eq!(reasons[5], (6, "field 'b' is a float, expected int64"));
    assert_eq!(reasons[6], (7, "field 'a' is an array, expected float64"));
    assert_eq!(
        reasons[7],
        (8, "field 'a' is null but the input is not nullable")
    );
    assert!(reasons[8].1.starts_with("invalid JSON"), "{}", reasons[8].1);
    assert!(
        reasons[9]
            .1
            .starts_with("invalid JSON: trailing characters"),
        "{}",
        reasons[9].1
    );
    assert_eq!(text(&scored, 0), r#"{"y":3.0}"#);
    assert_eq!(text(&scored, 11), r#"{"y":6.0}"#);
}

#[test]
fn a_message_the_model_fails_on_is_refused_alone() {
    let values: Vec<&[u8]> = vec![
        br#"{"a": 1, "b": 0}"#,
        br#"{"a": 13, "b": 0}"#,
        br#"{"a": 2, "b": 0}"#,
    ];
    let scored = json_scorer().score(&values);
    assert_eq!(scored.errors.len(), 1);
    assert_eq!(scored.errors[0].index, 1);
    assert!(
        scored.errors[0].reason.contains("a is 13"),
        "{}",
        scored.errors[0].reason
    );
    assert_eq!(text(&scored, 2), r#"{"y":2.0}"#);
}

fn ipc(batch: &RecordBatch) -> Vec<u8> {
    ipc::encode(batch, &[]).unwrap()
}

#[test]
fn arrow_messages_round_trip_with_their_id_column() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("b", DataType::Int32, true),
        Field::new("a", DataType::Float32, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(StringArray::from(vec!["p", "q"])),
            Arc::new(arrow_array::Int32Array::from(vec![Some(1), None])),
            Arc::new(arrow_array::Float32Array::from(vec![0.5, 2.0])),
        ],
    )
    .unwrap();
    let missing = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("b", DataType::Int64, true)])),
        vec![Arc::new(Int64Array::from(vec![1]))],
    )
    .unwrap();
    let values: Vec<Vec<u8>> = vec![
        ipc(&batch),
        b"not arrow".to_vec(),
        ipc(&missing),
        ipc(&batch.slice(0, 1)),
    ];
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let scorer = MessageScorer::new(model(), Format::Arrow, Carry::id(Some("id".into()))).unwrap();
    let scored = scorer.score(&refs);
    assert_eq!(scored.errors.len(), 2);
    assert!(
        scored.errors[0]
            .reason
            .starts_with("not an Arrow IPC stream"),
        "{}",
        scored.errors[0].reason
    );
    assert!(
        scored.errors[1]
            .reason
            .starts_with("field 'a' is absent; send null for a missing value"),
        "{}",
        scored.errors[1].reason
    );
    let read = |bytes: &[u8]| {
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        reader.map(Result::unwrap).collect::<Vec<_>>().remove(0)
    };
    let out = read(scored.outputs[0].as_deref().unwrap());
    assert_eq!(out.schema().field(0).name(), "id");
    assert_eq!(out.column(0).as_string::<i32>().value(1), "q");
    let y = out.column(1).as_primitive::<Float64Type>();
    assert_eq!((y.value(0), y.is_null(1)), (2.5, true));
    assert_eq!(read(scored.outputs[3].as_deref().unwrap()).num_rows(), 1);
}

#[test]
fn drift_counts_only_the_rows_that_were_scored() {
    let reference = serde_json::json!({"version": 1, "rows": 4, "bins": 2,
        "features": [{"name": "a", "kind": "numeric", "edges": [0.0, 2.0, 4.0], "counts": [0, 2, 2, 0, 0]}],
        "scores": [{"name": "y", "kind": "numeric", "edges": [0.0, 10.0], "counts": [0, 4, 0, 0]}]});
    let mut drift = DriftCounters::from_reference(&reference).unwrap();
    let values: Vec<&[u8]> = vec![
        br#"{"a": 1, "b": 1}"#,
        b"{not json",
        br#"{"a": 13, "b": 1}"#,
        br#"{"a": 3, "b": 0}"#,
        br#"{"a": 5, "b": null}"#,
    ];
    let scored = json_scorer().score_counted(&values, Some(&mut drift));
    assert_eq!(scored.errors.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(scored.drift_error, None);
    // a = 1, 3, 5 (13 failed to score, the bad JSON never decoded): [0, 2), [2, 4], above.
    assert_eq!(drift.counters[0].counts, vec![0, 1, 1, 1, 0]);
    // y = 3, 3 and one null (b was null): two in [0, 10], one missing.
    assert_eq!(drift.counters[1].counts, vec![0, 2, 0, 1]);

    // Counters over a column the model does not have: predictions still go out.
    let other = serde_json::json!({"version": 1, "rows": 1, "bins": 1,
        "features": [{"name": "z", "kind": "numeric", "edges": [0.0, 1.0], "counts": [0, 1, 0, 0]}], "scores": []});
    let mut wrong = DriftCounters::from_reference(&other).unwrap();
    let scored = json_scorer().score_counted(&values[..1], Some(&mut wrong));
    assert_eq!(text(&scored, 0), r#"{"y":3.0}"#);
    let reason = scored.drift_error.expect("the counters could not count");
    assert!(reason.contains("lacks column 'z'"), "{reason}");
}

fn carrying(format: Format, fields: &[&str]) -> MessageScorer {
    let carry = Carry {
        id_field: Some("id".into()),
        fields: fields.iter().map(|f| f.to_string()).collect(),
    };
    MessageScorer::new(model(), format, carry).unwrap()
}

#[test]
fn json_outputs_carry_the_named_fields_as_written() {
    let values: Vec<&[u8]> = vec![
        br#"{"t": 1767225600000, "id": "e1", "a": 1.5, "b": 2, "tag": {"k": [1, 2.50]}}"#,
        br#"{"a": 3, "b": 1, "id": 7, "t": "2026-01-01T00:00:00Z", "tag": "x\u00e9"}"#,
        // A carried field that is also an input is copied as written, and scored.
        br#"{"a": 2, "b": 0, "t": 1e3, "tag": null}"#,
    ];
    let scored = carrying(Format::Json, &["t", "tag", "a"]).score(&values);
    assert!(scored.errors.is_empty(), "{:?}", scored.errors);
    assert_eq!(
        text(&scored, 0),
        r#"{"id":"e1","t":1767225600000,"tag":{"k": [1, 2.50]},"a":1.5,"y":5.5}"#
    );
    assert_eq!(
        text(&scored, 1),
        r#"{"id":7,"t":"2026-01-01T00:00:00Z","tag":"x\u00e9","a":3,"y":5.0}"#
    );
    // No id: left out (as always); the carried fields are all there.
    assert_eq!(text(&scored, 2), r#"{"t":1e3,"tag":null,"a":2,"y":2.0}"#);
}

#[test]
fn a_missing_carried_field_is_null_and_a_bad_message_still_a_dead_letter() {
    let values: Vec<&[u8]> = vec![
        br#"{"id": 1, "a": 1, "b": 1}"#,
        br#"{"id": 2, "b": 1, "t": 5}"#,
        br#"{"id": 3, "a": 13, "b": 1, "t": 6}"#,
        br#"{"id": 4, "a": 2, "b": 1, "t": 7}"#,
    ];
    let scored = carrying(Format::Json, &["t"]).score(&values);
    let reasons: Vec<(usize, &str)> = scored
        .errors
        .iter()
        .map(|e| (e.index, e.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0], (1, "field 'a' is absent; send null for a missing value, or set missing_fields=\"null\" to read absent fields as null"));
    assert!(reasons[1].0 == 2 && reasons[1].1.contains("a is 13"), "{reasons:?}");
    assert_eq!(text(&scored, 0), r#"{"id":1,"t":null,"y":3.0}"#);
    // The batch failed (a = 13) and was scored message by message: the
    // carried values still belong to their own messages.
    assert_eq!(text(&scored, 3), r#"{"id":4,"t":7,"y":4.0}"#);
}

#[test]
fn carried_fields_that_clash_are_refused_at_start() {
    let refuse = |id: Option<&str>, fields: &[&str]| {
        let carry = Carry {
            id_field: id.map(String::from),
            fields: fields.iter().map(|f| f.to_string()).collect(),
        };
        match MessageScorer::new(model(), Format::Json, carry) {
            Ok(_) => panic!("{id:?} {fields:?} was accepted"),
            Err(e) => e.to_string(),
        }
    };
    assert_eq!(
        refuse(Some("id"), &["t", "y"]),
        "carried field 'y' has the name of an output of test model 'affine'; the outputs are [y]; \
         rename the field in the input, or do not carry it"
    );
    assert!(refuse(Some("y"), &[]).starts_with("id field 'y' has the name of an output"));
    assert_eq!(
        refuse(Some("id"), &["t", "id"]),
        "carried field 'id' is named twice among the id field and the carried fields; name each field once"
    );
    assert!(refuse(None, &["t", "t"]).starts_with("carried field 't' is named twice"));
}

#[test]
fn arrow_outputs_carry_the_named_columns() {
    let schema = Arc::new(Schema::new(vec![
        Field::new("t", DataType::Int64, false),
        Field::new("a", DataType::Float64, false),
        Field::new("b", DataType::Int64, true),
        Field::new("id", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![100, 200])),
            Arc::new(Float64Array::from(vec![1.0, 2.0])),
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec!["p", "q"])),
        ],
    )
    .unwrap();
    // The second message has no "t" and no id: a null column, and no id column.
    let bare = batch.project(&[1, 2]).unwrap();
    let values = [ipc(&batch), ipc(&bare)];
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let scored = carrying(Format::Arrow, &["t"]).score(&refs);
    assert!(scored.errors.is_empty(), "{:?}", scored.errors);
    let read = |bytes: &[u8]| {
        let reader =
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        reader.map(Result::unwrap).collect::<Vec<_>>().remove(0)
    };
    let out = read(scored.outputs[0].as_deref().unwrap());
    let names: Vec<&str> = out.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["id", "t", "y"]);
    assert_eq!(out.column(0).as_ref(), batch.column(3).as_ref());
    assert_eq!(out.column(1).as_ref(), batch.column(0).as_ref());
    let y = out.column(2).as_primitive::<Float64Type>();
    assert_eq!(y.values().as_ref(), [3.0, 6.0]);

    let out = read(scored.outputs[1].as_deref().unwrap());
    let names: Vec<&str> = out.schema_ref().fields().iter().map(|f| f.name().as_str()).collect();
    assert_eq!(names, ["t", "y"]);
    assert_eq!(out.column(0).data_type(), &DataType::Null);
    assert_eq!(out.column(0).logical_null_count(), 2);
}

#[test]
fn an_ipc_message_without_an_input_is_refused_for_all_its_rows_unless_read_as_null() {
    let only_a = RecordBatch::try_from_iter(vec![(
        "a",
        Arc::new(Float64Array::from(vec![1.0, 2.0])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let only_b = RecordBatch::try_from_iter(vec![(
        "b",
        Arc::new(Int64Array::from(vec![1])) as arrow_array::ArrayRef,
    )])
    .unwrap();
    let values = [ipc(&only_a), ipc(&only_b)];
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let strict = MessageScorer::new(model(), Format::Arrow, Carry::default()).unwrap().score(&refs);
    let reasons: Vec<_> = strict.errors.iter().map(|e| (e.index, e.reason.as_str())).collect();
    assert_eq!(
        reasons,
        [
            (0, r#"field 'b' is absent; send null for a missing value, or set missing_fields="null" to read absent fields as null"#),
            (1, r#"field 'a' is absent; send null for a missing value, or set missing_fields="null" to read absent fields as null"#),
        ]
    );
    let lenient = MessageScorer::new(model(), Format::Arrow, Carry::default())
        .unwrap()
        .with_missing_fields(MissingFields::Null)
        .score(&refs);
    let reasons: Vec<_> = lenient.errors.iter().map(|e| (e.index, e.reason.as_str())).collect();
    assert_eq!(reasons, [(1, "field 'a' is null but the input is not nullable")]);
    let out = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(lenient.outputs[0].clone().unwrap()), None)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(out.num_rows(), 2);
    assert_eq!(out.column(0).null_count(), 2);
}

fn decodes() -> usize {
    DECODES.with(|n| n.get())
}

#[test]
fn challengers_of_the_same_inputs_share_one_decoding_and_count_their_own_drift() {
    let reference = serde_json::json!({"version": 1, "rows": 4, "bins": 2,
        "features": [{"name": "a", "kind": "numeric", "edges": [0.0, 2.0, 4.0], "counts": [0, 2, 2, 0, 0]}],
        "scores": [{"name": "y", "kind": "numeric", "edges": [0.0, 10.0], "counts": [0, 4, 0, 0]}]});
    let values: Vec<&[u8]> = vec![
        br#"{"id": "e1", "a": 1, "b": 1}"#,
        b"{not json",
        br#"{"id": "e3", "a": 13, "b": 1}"#,
        br#"{"id": "e4", "a": 3, "b": 0}"#,
        br#"{"b": 2}"#,
    ];
    let carry = || Carry::id(Some("id".into()));
    let champion = MessageScorer::new(model(), Format::Json, carry()).unwrap();
    let challenger = MessageScorer::new(scaled(10.0), Format::Json, carry()).unwrap();
    assert!(champion.reads_like(&challenger));
    let counters = || DriftCounters::from_reference(&reference).unwrap();
    let (mut mine, mut theirs) = (counters(), counters());

    let before = decodes();
    let all = champion.score_shadowed(&values, Some(&mut mine), vec![(&challenger, Some(&mut theirs))]);
    assert_eq!(decodes() - before, 1, "one decoding for both versions");

    assert_eq!(all.len(), 2);
    assert_eq!(text(&all[0], 0), r#"{"id":"e1","y":3.0}"#);
    assert_eq!(text(&all[1], 0), r#"{"id":"e1","y":30.0}"#);
    assert_eq!(text(&all[1], 3), r#"{"id":"e4","y":30.0}"#);
    // Each version's result is what it gets alone, failures and reasons included.
    let (mut alone_mine, mut alone_theirs) = (counters(), counters());
    for (shared, alone) in all.iter().zip([
        champion.score_counted(&values, Some(&mut alone_mine)),
        challenger.score_counted(&values, Some(&mut alone_theirs)),
    ]) {
        assert_eq!(shared.outputs, alone.outputs);
        assert_eq!(shared.errors, alone.errors);
        assert_eq!(shared.errors.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1, 2, 4]);
    }
    // Each version counted its own rows: the inputs alike, the scores its own (y = 3, 3 against 30, 30).
    assert_eq!(mine.counters[0].counts, alone_mine.counters[0].counts);
    assert_eq!(theirs.counters[0].counts, vec![0, 1, 1, 0, 0]);
    assert_eq!(mine.counters[1].counts, vec![0, 2, 0, 0]);
    assert_eq!(theirs.counters[1].counts, vec![0, 0, 2, 0]);
}

#[test]
fn a_challenger_that_reads_differently_decodes_on_its_own() {
    let values: Vec<&[u8]> = vec![br#"{"id": "e1", "a": 1, "b": 1}"#, br#"{"id": "e2", "a": 2}"#];
    let champion = MessageScorer::new(model(), Format::Json, Carry::id(Some("id".into()))).unwrap();
    let others = [
        MessageScorer::new(scaled(2.0), Format::Json, Carry::default()).unwrap(),
        MessageScorer::new(scaled(2.0), Format::Json, Carry::id(Some("id".into())))
            .unwrap()
            .with_missing_fields(MissingFields::Null),
    ];
    for other in &others {
        assert!(!champion.reads_like(other));
        let before = decodes();
        let all = champion.score_shadowed(&values, None, vec![(other, None)]);
        assert_eq!(decodes() - before, 2);
        let alone = other.score(&values);
        assert_eq!(all[1].outputs, alone.outputs);
        assert_eq!(all[1].errors, alone.errors);
    }
    assert_eq!(text(&champion.score_shadowed(&values, None, vec![(&others[0], None)])[1], 0), r#"{"y":6.0}"#);
    // Read as null, e2's absent b is a missing value: scored (y null); the champion refuses it.
    let all = champion.score_shadowed(&values, None, vec![(&others[1], None)]);
    assert_eq!(all[0].errors.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1]);
    assert_eq!(text(&all[1], 1), r#"{"id":"e2","y":null}"#);
    // Arrow messages against JSON: never one decoding.
    let arrow = MessageScorer::new(model(), Format::Arrow, Carry::default()).unwrap();
    assert!(!arrow.reads_like(&others[0]));
}

#[test]
fn arrow_challengers_share_one_decoding() {
    let batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("a", DataType::Float64, false),
            Field::new("b", DataType::Int64, true),
        ])),
        vec![
            Arc::new(Float64Array::from(vec![1.0, 2.0])),
            Arc::new(Int64Array::from(vec![Some(1), None])),
        ],
    )
    .unwrap();
    let bytes = [ipc(&batch), b"junk".to_vec()];
    let refs: Vec<&[u8]> = bytes.iter().map(Vec::as_slice).collect();
    let champion = MessageScorer::new(model(), Format::Arrow, Carry::default()).unwrap();
    let challenger = MessageScorer::new(scaled(10.0), Format::Arrow, Carry::default()).unwrap();
    let before = decodes();
    let all = champion.score_shadowed(&refs, None, vec![(&challenger, None)]);
    assert_eq!(decodes() - before, 1);
    for (shared, alone) in all.iter().zip([champion.score(&refs), challenger.score(&refs)]) {
        assert_eq!(shared.outputs, alone.outputs);
        assert_eq!(shared.errors, alone.errors);
        assert_eq!(shared.errors.iter().map(|e| e.index).collect::<Vec<_>>(), vec![1]);
    }
    assert_ne!(all[0].outputs[0], all[1].outputs[0]);
}
