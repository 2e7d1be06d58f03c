//! The join on scripted streams: exact counts, the scripted case of the
//! Python tests, numpy's summation order, the state round trip.

use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Int64Array, StringArray};

use super::*;

fn ints(v: &[i64]) -> IdColumn {
    let a: ArrayRef = Arc::new(Int64Array::from(v.to_vec()));
    IdColumn::new(&a, "predictions", "event_id").unwrap()
}

fn strs(v: &[&str]) -> IdColumn {
    let a: ArrayRef = Arc::new(StringArray::from(v.to_vec()));
    IdColumn::new(&a, "labels", "event_id").unwrap()
}

fn sums(join: &FeedbackJoin, start: i64) -> Vec<f64> {
    join.windows()[&start].sums[..6].to_vec()
}

#[test]
fn scripted_stream_counts_late_orphan_and_expired_exactly() {
    let mut config = Config::new(100, 1000, Task::Binary).unwrap();
    config.bucket = 10;
    let mut join = FeedbackJoin::new(config).unwrap();
    join.add_predictions(&ints(&[1, 2, 3, 4]), &[0, 10, 20, 30], &[0.9, 0.8, 0.1, 0.4]).unwrap();
    let fb = join.add_labels(&ints(&[1, 2, 99]), &[50, 200, 60], &[1.0, 1.0, 0.0]).unwrap();
    assert_eq!((fb.rows.clone(), fb.delay.clone()), (vec![0], vec![50]));
    assert_eq!(join.pending_len(), 0);
    let mut tombs: Vec<_> = join.tombstones().0.into_iter().map(|(k, _)| k).collect();
    tombs.sort_unstable();
    assert_eq!(tombs, vec![3, 4]);
    assert!(join.add_labels(&ints(&[3, 4]), &[210, 210], &[0.0, 0.0]).unwrap().rows.is_empty());
    join.add_predictions(&ints(&[5]), &[1500], &[0.7]).unwrap();
    assert_eq!(join.add_labels(&ints(&[5]), &[1600], &[1.0]).unwrap().rows, vec![0]);
    assert!(join.add_labels(&ints(&[3, 1]), &[1700, 1700], &[0.0, 1.0]).unwrap().rows.is_empty());
    assert_eq!(sums(&join, 0), vec![4.0, 1.0, 3.0, 3.0, 1.0, 0.0]);
    assert_eq!(sums(&join, 1000), vec![1.0, 1.0, 0.0, 0.0, 2.0, 0.0]);
    assert_eq!(join.tombstones_len(), 0);
    assert_eq!(join.take_touched(), vec![0, 1000]);
    assert!(join.take_touched().is_empty());
}

#[test]
fn string_ids_never_match_integer_ids_and_duplicates_are_counted() {
    let mut join = FeedbackJoin::new(Config::new(100, 1000, Task::Binary).unwrap()).unwrap();
    join.add_predictions(&ints(&[7, 7, 8]), &[0, 1, 2], &[0.2, 0.9, 0.5]).unwrap();
    join.add_predictions(&strs(&["7"]), &[3], &[0.1]).unwrap();
    let fb = join.add_labels(&strs(&["7", "7"]), &[10, 10], &[1.0, 1.0]).unwrap();
    assert_eq!(fb.score, vec![0.1]);
    let fb = join.add_labels(&ints(&[7]), &[11], &[1.0]).unwrap();
    assert_eq!((fb.score.clone(), fb.prediction.clone()), (vec![0.9], vec![1.0]));
    assert_eq!(sums(&join, 0), vec![4.0, 2.0, 0.0, 0.0, 1.0, 1.0]);
}

#[test]
fn pairwise_sum_follows_numpys_blocks() {
    // 1e16 + 1 + ... loses the ones when summed in a row; numpy's blocks keep the same losses.
    let mut v = vec![1.0; 300];
    v[0] = 1e16;
    let sequential: f64 = v.iter().sum();
    assert_eq!(sequential, 1e16);
    assert_eq!(pairwise_sum(&v), 1e16 + 290.0); // numpy 2.4.6: float(v.sum()) == 1e16 + 290
    assert_eq!(pairwise_sum(&[]), 0.0);
    assert_eq!(pairwise_sum(&[0.5; 9]), 4.5);
}

#[test]
fn the_state_round_trips_and_bad_bytes_are_refused() {
    let mut join = FeedbackJoin::new(Config::new(50, 100, Task::Binary).unwrap()).unwrap();
    join.add_predictions(&ints(&[1, 2, 3]), &[0, 10, 20], &[0.9, 0.1, 0.6]).unwrap();
    join.add_predictions(&strs(&["a", "b"]), &[5, 15], &[0.3, 0.7]).unwrap();
    join.add_labels(&ints(&[1]), &[200], &[1.0]).unwrap();
    let bytes = join.to_bytes();
    let mut back = FeedbackJoin::from_bytes(&bytes).unwrap();
    back.touched = join.touched.clone();
    assert_eq!(back, join);
    let err = FeedbackJoin::from_bytes(&bytes[..bytes.len() - 3]).unwrap_err();
    assert!(err.to_string().starts_with("feedback join: the saved state cannot be read: "), "{err}");
    assert!(FeedbackJoin::from_bytes(b"nope").is_err());
}

#[test]
fn bad_ids_name_the_field() {
    let floats: ArrayRef = Arc::new(arrow_array::Float64Array::from(vec![1.0]));
    let err = IdColumn::new(&floats, "labels", "eid").unwrap_err();
    assert_eq!(err.to_string(), "feedback join: labels field 'eid' is Float64; expected an integer or a string id");
    let nulls: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), None]));
    let err = IdColumn::new(&nulls, "predictions", "eid").unwrap_err();
    assert_eq!(err.to_string(), "feedback join: predictions field 'eid' has 1 null id(s); every row needs one");
}

#[test]
fn integer_ids_are_written_in_decimal() {
    let ids = ints(&[0, 7, -12, i64::MAX, i64::MIN, 1_000_000]);
    let out = ids.strings(&[0, 1, 2, 3, 4, 5]);
    let out = out.as_any().downcast_ref::<StringArray>().unwrap();
    let want = ["0", "7", "-12", "9223372036854775807", "-9223372036854775808", "1000000"];
    assert_eq!(out.iter().map(Option::unwrap).collect::<Vec<_>>(), want);
}

#[test]
#[ignore = "timing, run by hand in release"]
fn timing() {
    use std::time::Instant;
    for task in [Task::Binary, Task::Regression] {
        let mut config = Config::new(1 << 40, 60_000, task).unwrap();
        config.bucket = 1 << 36;
        let n = 50_000i64;
        let ids: Vec<i64> = (0..n).collect();
        let times: Vec<i64> = ids.iter().map(|i| i * 2).collect();
        let scores: Vec<f64> = ids.iter().map(|i| (i % 997) as f64 / 997.0).collect();
        let lid: Vec<i64> = (20_000..30_000).collect();
        let lt: Vec<i64> = lid.iter().map(|i| i * 2 + 100).collect();
        let y = vec![1.0; 10_000];
        let (mut t_join, mut t_batch, mut t_pred) = (f64::MAX, f64::MAX, f64::MAX);
        for _ in 0..5 {
            let mut join = FeedbackJoin::new(config.clone()).unwrap();
            let t0 = Instant::now();
            join.add_predictions(&ints(&ids), &times, &scores).unwrap();
            t_pred = t_pred.min(t0.elapsed().as_secs_f64() / 5.0);
            let col = ints(&lid);
            let t0 = Instant::now();
            let fb = join.add_labels(&col, &lt, &y).unwrap();
            t_join = t_join.min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            let b = fb.into_batch(&col);
            t_batch = t_batch.min(t0.elapsed().as_secs_f64());
            assert_eq!(b.num_rows(), 10_000);
        }
        println!("{task:?}: add_labels {:.3} ms, into_batch {:.3} ms, add_predictions {:.3} ms per 10k", t_join * 1e3, t_batch * 1e3, t_pred * 1e3);
    }
}
