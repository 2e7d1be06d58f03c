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

/// The wall clock of these tests: 2026-01-01T00:00:00Z.
const NOW: i64 = 1_767_225_600_000;

fn sums(join: &FeedbackJoin, start: i64) -> Vec<f64> {
    join.windows()[&start].sums[..7].to_vec()
}

#[test]
fn scripted_stream_counts_late_orphan_and_expired_exactly() {
    let mut config = Config::new(100, 1000, Task::Binary).unwrap();
    config.bucket = 10;
    let mut join = FeedbackJoin::new(config).unwrap();
    join.add_predictions(&ints(&[1, 2, 3, 4]), &[0, 10, 20, 30], &[0.9, 0.8, 0.1, 0.4], NOW).unwrap();
    let fb = join.add_labels(&ints(&[1, 2, 99]), &[50, 200, 60], &[1.0, 1.0, 0.0], NOW).unwrap();
    assert_eq!((fb.rows.clone(), fb.delay.clone()), (vec![0], vec![50]));
    assert_eq!(join.pending_len(), 0);
    let mut tombs: Vec<_> = join.tombstones().0.into_iter().map(|(k, _)| k).collect();
    tombs.sort_unstable();
    assert_eq!(tombs, vec![3, 4]);
    assert!(join.add_labels(&ints(&[3, 4]), &[210, 210], &[0.0, 0.0], NOW).unwrap().rows.is_empty());
    join.add_predictions(&ints(&[5]), &[1500], &[0.7], NOW).unwrap();
    assert_eq!(join.add_labels(&ints(&[5]), &[1600], &[1.0], NOW).unwrap().rows, vec![0]);
    assert!(join.add_labels(&ints(&[3, 1]), &[1700, 1700], &[0.0, 1.0], NOW).unwrap().rows.is_empty());
    assert_eq!(sums(&join, 0), vec![4.0, 1.0, 3.0, 3.0, 1.0, 0.0, 0.0]);
    assert_eq!(sums(&join, 1000), vec![1.0, 1.0, 0.0, 0.0, 2.0, 0.0, 0.0]);
    assert_eq!(join.tombstones_len(), 0);
    assert_eq!(join.take_touched(), vec![0, 1000]);
    assert!(join.take_touched().is_empty());
}

#[test]
fn string_ids_never_match_integer_ids_and_duplicates_are_counted() {
    // The second label of "7" is a duplicate label (the first won), not an orphan.
    let mut join = FeedbackJoin::new(Config::new(100, 1000, Task::Binary).unwrap()).unwrap();
    join.add_predictions(&ints(&[7, 7, 8]), &[0, 1, 2], &[0.2, 0.9, 0.5], NOW).unwrap();
    join.add_predictions(&strs(&["7"]), &[3], &[0.1], NOW).unwrap();
    let fb = join.add_labels(&strs(&["7", "7"]), &[10, 10], &[1.0, 1.0], NOW).unwrap();
    assert_eq!(fb.score, vec![0.1]);
    let fb = join.add_labels(&ints(&[7]), &[11], &[1.0], NOW).unwrap();
    assert_eq!((fb.score.clone(), fb.prediction.clone()), (vec![0.9], vec![1.0]));
    assert_eq!(sums(&join, 0), vec![4.0, 2.0, 0.0, 0.0, 0.0, 1.0, 1.0]);
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

fn metric(join: &FeedbackJoin, start: i64, name: &str) -> f64 {
    let i = metric_names(join.config().task).iter().position(|m| *m == name).unwrap();
    join.windows()[&start].sums[i]
}

#[test]
fn a_label_31_years_ahead_is_refused_and_expires_nothing() {
    let mut join = FeedbackJoin::new(Config::new(60_000, 300_000, Task::Binary).unwrap()).unwrap();
    let ids: Vec<i64> = (0..1000).collect();
    let times: Vec<i64> = ids.iter().map(|i| NOW - 100_000 + i).collect();
    join.add_predictions(&ints(&ids), &times, &vec![0.7; 1000], NOW).unwrap();
    join.add_labels(&ints(&[0]), &[NOW - 99_000], &[1.0], NOW).unwrap();
    let year = 365 * 24 * 3_600_000i64;
    let fb = join.add_labels(&ints(&[5, 6]), &[NOW + 31 * year, NOW - 98_990], &[1.0, 1.0], NOW).unwrap();
    assert_eq!((fb.refused.clone(), fb.rows.clone()), (vec![0], vec![1]));
    assert_eq!(join.watermark(), NOW - 98_990);
    assert_eq!(join.pending_len(), 998, "the skewed label expired none of the pending predictions");
    let w = join.start_of(NOW - 99_000);
    assert_eq!(metric(&join, w, "future_labels"), 1.0);
    assert_eq!(metric(&join, w, "expired"), 0.0);
    assert_eq!(metric(&join, w, "orphan_labels"), 0.0);
    // 5 is still pending: its real label joins.
    assert_eq!(join.add_labels(&ints(&[5]), &[NOW - 98_000], &[1.0], NOW).unwrap().rows, vec![0]);
    // Exactly at the cap is accepted; one ms more is not.
    let edge = NOW + DEFAULT_MAX_FUTURE_SKEW;
    assert_eq!(join.add_labels(&ints(&[-1, -2]), &[edge + 1, edge], &[0.0, 0.0], NOW).unwrap().refused, vec![0]);
}

#[test]
fn the_watermark_jump_cap_and_future_predictions() {
    let mut config = Config::new(100, 1000, Task::Binary).unwrap();
    (config.max_future_skew, config.max_watermark_jump) = (None, Some(5000));
    let mut join = FeedbackJoin::new(config).unwrap();
    join.add_predictions(&ints(&[1, 2]), &[0, 10], &[0.5, 0.5], NOW).unwrap();
    // Before any label there is no watermark to measure a jump from.
    assert!(join.add_labels(&ints(&[1]), &[50], &[1.0], NOW).unwrap().refused.is_empty());
    let fb = join.add_labels(&ints(&[2, 3]), &[5051, 5050], &[1.0, 0.0], NOW).unwrap();
    assert_eq!(fb.refused, vec![0]);
    assert_eq!((join.watermark(), join.pending_len()), (5050, 0));
    assert_eq!(metric(&join, 0, "future_labels"), 1.0);
    // Predictions: only the wall-clock cap (here none) applies.
    assert!(join.add_predictions(&ints(&[9]), &[i64::MAX], &[0.5], NOW).unwrap().is_empty());
    let mut join = FeedbackJoin::new(Config::new(100, 1000, Task::Binary).unwrap()).unwrap();
    let refused = join.add_predictions(&ints(&[1, 2, 3]), &[NOW, NOW + 2 * DEFAULT_MAX_FUTURE_SKEW, 7], &[0.1; 3], NOW);
    assert_eq!(refused.unwrap(), vec![1]);
    assert_eq!(join.pending_len(), 2);
    assert_eq!(metric(&join, join.start_of(NOW), "future_predictions"), 1.0);
    assert_eq!(metric(&join, join.start_of(NOW), "predictions") + metric(&join, 0, "predictions"), 2.0);
}

#[test]
fn non_finite_scores_stay_out_of_the_sums() {
    let mut join = FeedbackJoin::new(Config::new(100, 1000, Task::Binary).unwrap()).unwrap();
    let scores = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.9, 0.2, 0.6];
    join.add_predictions(&ints(&[1, 2, 3, 4, 5, 6]), &[1, 2, 3, 4, 5, 6], &scores, NOW).unwrap();
    let fb = join.add_labels(&ints(&[1, 2, 3, 4, 5, 6]), &[9; 6], &[1.0, 0.0, 1.0, 1.0, 0.0, f64::NAN], NOW).unwrap();
    assert_eq!(fb.rows.len(), 6, "every pair is joined (a feedback row)");
    let get = |m: &str| metric(&join, 0, m);
    assert_eq!((get("labeled"), get("non_finite_scores"), get("non_finite_labels")), (6.0, 3.0, 1.0));
    assert_eq!((get("tp"), get("tn"), get("pos"), get("neg")), (1.0, 1.0, 1.0, 1.0));
    let want = -(0.9f64.ln()) - (0.8f64).ln();
    assert!((get("logloss_sum") - want).abs() < 1e-12, "{}", get("logloss_sum"));
    let d = 0.9f64 - 1.0;
    assert_eq!(get("brier_sum"), d * d + 0.2 * 0.2);
    assert_eq!(join.windows()[&0].hist.iter().sum::<i64>(), 2);
    let mut join = FeedbackJoin::new(Config::new(100, 1000, Task::Regression).unwrap()).unwrap();
    join.add_predictions(&ints(&[1, 2, 3]), &[1, 2, 3], &[f64::NAN, 3.0, 5.0], NOW).unwrap();
    join.add_labels(&ints(&[1, 2, 3]), &[9; 3], &[1.0, 1.0, f64::INFINITY], NOW).unwrap();
    let get = |m: &str| metric(&join, 0, m);
    assert_eq!((get("abs_err_sum"), get("sq_err_sum"), get("label_sum")), (2.0, 4.0, 1.0));
    assert_eq!((get("non_finite_scores"), get("non_finite_labels")), (1.0, 1.0));
}

#[test]
fn the_first_label_wins_and_later_ones_are_duplicates() {
    let mut config = Config::new(100, 1000, Task::Binary).unwrap();
    config.bucket = 10;
    let mut join = FeedbackJoin::new(config).unwrap();
    join.add_predictions(&ints(&[1, 2, 3]), &[0, 10, 20], &[0.9, 0.8, 0.1], NOW).unwrap();
    // 1 twice in one batch, then again; 2 late (after the ttl), then again; 3 expires, late, again.
    let fb = join.add_labels(&ints(&[1, 1]), &[30, 31], &[1.0, 0.0], NOW).unwrap();
    assert_eq!((fb.rows.clone(), fb.label.clone()), (vec![0], vec![1.0]));
    join.add_labels(&ints(&[1, 2]), &[40, 150], &[0.0, 1.0], NOW).unwrap();
    join.add_labels(&ints(&[2, 3, 3]), &[160, 160, 161], &[1.0, 0.0, 0.0], NOW).unwrap();
    assert_eq!(sums(&join, 0), vec![3.0, 1.0, 2.0, 2.0, 0.0, 0.0, 4.0]);
    assert_eq!(join.labelled_len(), 3);
    // Past the late horizon they are forgotten: a label then is an orphan.
    join.add_labels(&ints(&[7]), &[1000], &[1.0], NOW).unwrap();
    assert_eq!(join.labelled_len(), 0);
    join.add_labels(&ints(&[1]), &[1001], &[1.0], NOW).unwrap();
    assert_eq!(metric(&join, 1000, "orphan_labels"), 2.0);
}

/// A state with every table filled, for the snapshot tests.
fn busy_join() -> FeedbackJoin {
    let mut config = Config::new(50, 100, Task::Binary).unwrap();
    (config.max_watermark_jump, config.late_horizon) = (Some(10_000), 1000);
    let mut join = FeedbackJoin::new(config).unwrap();
    join.add_predictions(&ints(&[1, 2, 3, 4]), &[0, 10, 20, 300], &[0.9, 0.1, 0.6, f64::NAN], NOW).unwrap();
    join.add_predictions(&strs(&["a", "b", "c"]), &[5, 15, 290], &[0.3, 0.7, 0.2], NOW).unwrap();
    join.add_labels(&ints(&[1, 1, 4]), &[20, 21, 305], &[1.0, 1.0, 0.0], NOW).unwrap();
    join.add_labels(&strs(&["c"]), &[295], &[1.0], NOW).unwrap();
    join.add_predictions(&ints(&[5]), &[310], &[0.4], NOW).unwrap();
    join
}

#[test]
fn the_state_round_trips_and_bad_bytes_are_refused() {
    let join = busy_join();
    assert!(join.tombstones_len() > 0 && join.labelled_len() > 0 && join.pending_len() > 0);
    let bytes = join.to_bytes();
    let mut back = FeedbackJoin::from_bytes(&bytes).unwrap();
    back.touched = join.touched.clone();
    assert_eq!(back, join);
    let err = FeedbackJoin::from_bytes(&bytes[..bytes.len() - 3]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "feedback join: the saved state cannot be read: the header declares {} payload bytes but {} follow; \
             it must come from FeedbackJoin state bytes of this version",
            bytes.len() - persist::HEADER,
            bytes.len() - persist::HEADER - 3
        )
    );
    assert!(FeedbackJoin::from_bytes(b"nope").is_err());
    let mut v1 = bytes.clone();
    v1[4] = 1;
    assert!(FeedbackJoin::from_bytes(&v1).unwrap_err().to_string().contains("format version 1 (without a checksum)"));
}

/// `body` behind a header that matches it (what a forger who knows the format writes).
fn sealed(body: &[u8]) -> Vec<u8> {
    let mut out = b"SMFJ\x02".to_vec();
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&persist::crc32c(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn crc32c_is_castagnolis() {
    // The check value of CRC-32C, and the hardware path equals the table on every length.
    assert_eq!(persist::crc32c(b"123456789"), 0xE306_9283);
    assert_eq!(persist::crc32c_table(b"123456789"), 0xE306_9283);
    let data: Vec<u8> = (0..1000u32).map(|i| (i * 7919 % 251) as u8).collect();
    for n in 0..40 {
        assert_eq!(persist::crc32c(&data[..n * 25]), persist::crc32c_table(&data[..n * 25]));
    }
}

#[test]
fn tampered_snapshots_are_refused_without_a_panic() {
    let bytes = busy_join().to_bytes();
    let body = &bytes[persist::HEADER..];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n as u64) as usize
    };
    let mut variants: Vec<(String, Vec<u8>, bool)> = Vec::new(); // (what, bytes, checksum matches)
    for _ in 0..120 {
        let (at, bit) = (next(bytes.len()), next(8));
        let mut v = bytes.clone();
        v[at] ^= 1 << bit;
        variants.push((format!("bit {bit} of byte {at} flipped"), v, false));
    }
    for cut in (0..bytes.len()).step_by(bytes.len() / 40 + 1) {
        variants.push((format!("cut at {cut}"), bytes[..cut].to_vec(), false));
    }
    for extra in [1usize, 7, 1 << 20] {
        let mut v = bytes.clone();
        v.extend(std::iter::repeat_n(0u8, extra));
        variants.push((format!("{extra} bytes appended"), v, false));
        let mut v = bytes.clone();
        v[5..13].copy_from_slice(&((body.len() + extra) as u64).to_le_bytes());
        variants.push((format!("length inflated by {extra}"), v, false));
    }
    // Resealed payloads: the checksum matches, so the reader's own checks must hold.
    for _ in 0..60 {
        let (at, bit) = (next(body.len()), next(8));
        let mut b = body.to_vec();
        b[at] ^= 1 << bit;
        variants.push((format!("resealed, bit {bit} of payload byte {at} flipped"), sealed(&b), true));
    }
    for at in (0..body.len().saturating_sub(8)).step_by(7) {
        let mut b = body.to_vec();
        b[at..at + 8].copy_from_slice(&(u64::MAX / 3).to_le_bytes());
        variants.push((format!("resealed, a huge count at payload byte {at}"), sealed(&b), true));
    }
    for cut in (0..body.len()).step_by(body.len() / 30 + 1) {
        variants.push((format!("resealed, payload cut at {cut}"), sealed(&body[..cut]), true));
    }
    assert!(variants.len() >= 200, "{}", variants.len());
    let (mut refused, mut valid) = (0, 0);
    for (what, v, resealed) in &variants {
        let got = std::panic::catch_unwind(|| FeedbackJoin::from_bytes(v)).unwrap_or_else(|_| panic!("{what}: panic"));
        match got {
            Err(e) => {
                assert!(e.to_string().starts_with("feedback join: the saved state cannot be read: "), "{what}: {e}");
                refused += 1;
            }
            Ok(join) => {
                // Only a resealed change the format cannot tell from a real state (a flipped
                // time or sum) is read; the state it gives works and round-trips.
                assert!(resealed, "{what} was accepted");
                assert_eq!(FeedbackJoin::from_bytes(&join.to_bytes()).unwrap().to_bytes(), join.to_bytes());
                let mut join = join;
                join.add_labels(&ints(&[2, 3]), &[400, 401], &[1.0, 0.0], NOW).unwrap();
                valid += 1;
            }
        }
    }
    let unsealed = variants.iter().filter(|v| !v.2).count();
    println!("{} variants: {refused} refused, {valid} read as a valid state (all resealed)", variants.len());
    assert!(refused >= unsealed);
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
            join.add_predictions(&ints(&ids), &times, &scores, NOW).unwrap();
            t_pred = t_pred.min(t0.elapsed().as_secs_f64() / 5.0);
            let col = ints(&lid);
            let t0 = Instant::now();
            let fb = join.add_labels(&col, &lt, &y, NOW).unwrap();
            t_join = t_join.min(t0.elapsed().as_secs_f64());
            let t0 = Instant::now();
            let b = fb.into_batch(&col);
            t_batch = t_batch.min(t0.elapsed().as_secs_f64());
            assert_eq!(b.num_rows(), 10_000);
        }
        println!("{task:?}: add_labels {:.3} ms, into_batch {:.3} ms, add_predictions {:.3} ms per 10k", t_join * 1e3, t_batch * 1e3, t_pred * 1e3);
    }
}

#[test]
fn unseen_rows_are_those_the_join_does_not_hold_until_its_horizon() {
    // ttl 100, late horizon 100, buckets of 10: an id is held pending, then
    // expired or labelled, and forgotten 200 behind the watermark.
    let mut config = Config::new(100, 1000, Task::Binary).unwrap();
    config.bucket = 10;
    let mut join = FeedbackJoin::new(config).unwrap();
    join.add_predictions(&ints(&[1, 2, 3]), &[0, 0, 0], &[0.9, 0.8, 0.1], NOW).unwrap();
    // Pending ids, and a repeat within the batch: only the first row of 4 and of 5.
    assert_eq!(join.unseen(&ints(&[4, 1, 4, 5, 2])), vec![0, 3]);
    // The string id "1" is another id than the integer 1.
    assert_eq!(join.unseen(&strs(&["1", "1"])), vec![0]);
    join.add_labels(&ints(&[1]), &[50], &[1.0], NOW).unwrap(); // 1 labelled
    join.add_labels(&ints(&[9]), &[150], &[1.0], NOW).unwrap(); // 2 and 3 expired
    assert_eq!((join.pending_len(), join.tombstones_len(), join.labelled_len()), (0, 2, 1));
    assert_eq!(join.unseen(&ints(&[1, 2, 3, 6])), vec![3]);
    join.add_labels(&ints(&[9]), &[400], &[1.0], NOW).unwrap(); // past ttl + late horizon
    assert_eq!((join.tombstones_len(), join.labelled_len()), (0, 0));
    assert_eq!(join.unseen(&ints(&[1, 2, 3])), vec![0, 1, 2]);
}
