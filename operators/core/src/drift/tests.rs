use std::sync::Arc;

use arrow_array::{ArrayRef, FixedSizeListArray, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field};
use serde_json::json;

use super::*;

fn reference() -> Value {
    json!({"version": 1, "rows": 5, "bins": 2,
        "features": [
            {"name": "x", "kind": "numeric", "edges": [0.0, 1.5, 3.0], "counts": [0, 2, 2, 0, 1]},
            {"name": "c", "kind": "categorical", "categories": [1.0, 2.0], "counts": [3, 1, 1, 0]}],
        "scores": [{"name": "probabilities[1]", "kind": "numeric", "edges": [0.0, 0.5, 1.0], "counts": [0, 3, 2, 0, 0]}]})
}

fn inputs(x: Vec<Option<f64>>, c: Vec<Option<i64>>) -> RecordBatch {
    RecordBatch::try_from_iter([
        ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
        ("c", Arc::new(Int64Array::from(c)) as ArrayRef),
    ])
    .unwrap()
}

fn outputs(p1: &[f64]) -> RecordBatch {
    let flat: Vec<f64> = p1.iter().flat_map(|p| [1.0 - p, *p]).collect();
    let field = Arc::new(Field::new("item", DataType::Float64, false));
    let list = FixedSizeListArray::new(field, 2, Arc::new(Float64Array::from(flat)), None);
    RecordBatch::try_from_iter([("probabilities", Arc::new(list) as ArrayRef)]).unwrap()
}

#[test]
fn counts_features_and_list_scores() {
    let mut d = DriftCounters::from_reference(&reference()).unwrap();
    d.observe(&inputs(vec![Some(-1.0), Some(2.0), None, Some(9.0)], vec![Some(1), Some(5), None, Some(2)])).unwrap();
    d.observe_outputs(&outputs(&[0.2, 0.7, 0.5])).unwrap();
    assert_eq!(d.counters[0].counts, vec![1, 0, 1, 1, 1]);
    assert_eq!(d.counters[1].counts, vec![1, 1, 1, 1]);
    assert_eq!(d.counters[2].counts, vec![0, 1, 2, 0, 0]);
    let s = d.counters[0].stats();
    assert_eq!(s.rows, 4);
    assert_eq!((s.missing_rate, s.out_of_range_rate), (0.25, 0.5));
    assert!(s.new_category_rate.is_nan());
    assert_eq!(d.counters[1].stats().new_category_rate, 0.25);
}

#[test]
fn psi_of_a_counter_is_hand_computed() {
    let mut d = DriftCounters::from_reference(&reference()).unwrap();
    // score reference q = (0, .6, .4, 0, 0); observe p = (0, .2, .8, 0, 0)
    d.observe_outputs(&outputs(&[0.1, 0.6, 0.7, 0.8, 0.9])).unwrap();
    let psi = (0.2f64 - 0.6) * (0.2f64 / 0.6).ln() + (0.8f64 - 0.4) * 2f64.ln();
    let got = d.counters[2].stats().divergence.psi;
    assert!((got - psi).abs() < 1e-12, "{got} vs {psi}");
}

#[test]
fn two_workers_merged_equal_one() {
    let x: Vec<Option<f64>> = (0..100).map(|i| if i % 7 == 0 { None } else { Some(i as f64 / 25.0 - 0.5) }).collect();
    let c: Vec<Option<i64>> = (0..100).map(|i| Some(i % 4)).collect();
    let mut one = DriftCounters::from_reference(&reference()).unwrap();
    one.observe(&inputs(x.clone(), c.clone())).unwrap();
    let mut a = DriftCounters::from_reference(&reference()).unwrap();
    let mut b = a.clone();
    a.observe(&inputs(x[..37].to_vec(), c[..37].to_vec())).unwrap();
    b.observe(&inputs(x[37..].to_vec(), c[37..].to_vec())).unwrap();
    a.merge(&b).unwrap();
    assert_eq!(a, one);
}

#[test]
fn a_batch_without_a_feature_is_refused_and_counts_nothing() {
    let mut d = DriftCounters::from_reference(&reference()).unwrap();
    let batch = RecordBatch::try_from_iter([("x", Arc::new(Float64Array::from(vec![1.0])) as ArrayRef)]).unwrap();
    let e = d.observe(&batch).unwrap_err();
    assert_eq!(e.to_string(), "drift: batch lacks column 'c' of counter 'c'; it has [\"x\"]");
    assert!(d.counters.iter().all(|c| c.counts.iter().all(|&n| n == 0)));
}

#[test]
fn bad_references_name_the_entry() {
    let mut r = reference();
    r["features"][0]["counts"] = json!([1, 2]);
    let e = DriftCounters::from_reference(&r).unwrap_err();
    assert_eq!(e.to_string(), "drift: reference of 'x' has 2 counts; its bins need 5");
    r["features"][0]["edges"] = json!([1.0, 1.0]);
    assert!(DriftCounters::from_reference(&r).unwrap_err().to_string().contains("strictly increasing"));
    assert!(DriftCounters::from_reference(&json!({"version": 2})).is_err());
}

#[test]
fn merging_different_layouts_is_refused() {
    let mut a = DriftCounters::from_reference(&reference()).unwrap();
    let mut r = reference();
    r["features"][0]["edges"] = json!([0.0, 1.0, 3.0]);
    let b = DriftCounters::from_reference(&r).unwrap();
    assert!(a.merge(&b).unwrap_err().to_string().contains("their bins differ"));
}

#[test]
fn string_categories_count_a_utf8_column() {
    use arrow_array::StringArray;
    use arrow_schema::Schema;
    let r = json!({"version": 1, "rows": 4, "bins": 10, "scores": [], "features": [
        {"name": "city", "kind": "categorical", "values": "utf8", "categories": ["paris", ""], "counts": [2, 1, 1, 0]}]});
    let mut d = DriftCounters::from_reference(&r).unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("city", DataType::Utf8, true)]));
    d.check_columns(&schema, &Schema::empty()).unwrap();
    let batch = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec![Some("paris"), Some(""), None, Some("oslo")]))]).unwrap();
    d.observe(&batch).unwrap();
    assert_eq!(d.counters[0].counts, vec![1, 1, 1, 1]); // "", paris, other, missing
    assert_eq!(d.counters[0].stats().new_category_rate, 0.25);
    let numbers = Schema::new(vec![Field::new("city", DataType::Float64, true)]);
    assert_eq!(
        d.check_columns(&numbers, &Schema::empty()).unwrap_err().to_string(),
        "drift: counter 'city': column 'city' is Float64, not a string column"
    );
}
