//! Hand-worked trees: small data sets whose FFTs were worked out on paper
//! (the reasoning is in the comments).

use crate::*;

fn params(max_levels: usize, algorithm: Algorithm, goal: Goal, n_cues: usize) -> Params {
    Params {
        max_levels,
        algorithm,
        goal,
        goal_chase: goal,
        goal_threshold: goal,
        sens_w: 0.5,
        costs: OutcomeCosts::default(),
        cue_costs: vec![0.0; n_cues],
        stopping_par: 0.1,
    }
}

fn num(values: &[f64]) -> Cue<'_> {
    Cue { values, kind: CueKind::Numeric }
}

/// (cue, test, exit) of each level.
fn shape(t: &Fft) -> Vec<(usize, Test, Exit)> {
    t.levels.iter().map(|l| (l.cue, l.test.clone(), l.exit)).collect()
}

// y = (a > 3) or (b > 0); c is constant.
// Alone (bacc): a > 3 is .8 (hi 3, mi 2, cr 3), b > 0 is .7 (hi 2, mi 3, cr 3),
// c: every candidate is .5. ppv/npv: a 1/.6, b 1/.5, c undefined(0)/.375.
const A: [f64; 8] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0, 2.0];
const B: [f64; 8] = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0];
const C: [f64; 8] = [0.0; 8];
const Y: [bool; 8] = [false, false, false, true, true, true, true, true];

fn gt(t: f64) -> Test {
    Test::Greater { threshold: t }
}

#[test]
fn ifan_takes_the_signal_first_structure() {
    // Noise first: a <= 3 decides noise (2 misses), then b > 0 decides the
    // rest (3 more misses): bacc .5. Signal first: a > 3 decides signal, then
    // b > 0 splits the rest perfectly: bacc 1.
    let cues = [num(&A), num(&B), num(&C)];
    let t = fit(&cues, &Y, &params(2, Algorithm::Ifan, Goal::Bacc, 3)).unwrap();
    assert_eq!(shape(&t), vec![(0, gt(3.0), Exit::Signal), (1, gt(0.0), Exit::Both)]);
    assert_eq!(t.p_signal, vec![1.0, 1.0]);
    assert_eq!(t.p_noise, vec![0.0, 0.0]);
    let l2 = &t.levels[1].stats;
    assert_eq!((l2.reached, l2.signal_pos, l2.signal_neg, l2.noise_pos, l2.noise_neg), (5, 2, 0, 0, 3));
    assert_eq!(l2.cumulative, Counts { hi: 5, fa: 0, mi: 0, cr: 3 });
    // Three levels: the tree is perfect after two and stops there.
    let t3 = fit(&cues, &Y, &params(3, Algorithm::Ifan, Goal::Bacc, 3)).unwrap();
    assert_eq!(shape(&t3), shape(&t));
}

#[test]
fn dfan_reranks_the_rows_left_and_stops_on_one_class() {
    // Signal first leaves rows {0,1,2,6,7}: there b > 0 is perfect (1.0)
    // and a <= 2 is .667: b is chosen. Noise first leaves {3,4,5}, all
    // positive: growth stops and level 1 exits both ways (bacc .8).
    let cues = [num(&A), num(&B), num(&C)];
    let t = fit(&cues, &Y, &params(2, Algorithm::Dfan, Goal::Bacc, 3)).unwrap();
    assert_eq!(shape(&t), vec![(0, gt(3.0), Exit::Signal), (1, gt(0.0), Exit::Both)]);
}

#[test]
fn max_orders_by_the_larger_predictive_value() {
    // a and b tie at ppv 1 (column order), both exit to signal; c last.
    let cues = [num(&A), num(&B), num(&C)];
    let t = fit(&cues, &Y, &params(3, Algorithm::Max, Goal::Bacc, 3)).unwrap();
    assert_eq!(shape(&t), vec![(0, gt(3.0), Exit::Signal), (1, gt(0.0), Exit::Signal), (2, gt(0.0), Exit::Both)]);
}

#[test]
fn zigzag_alternates_exits() {
    // a first (ppv 1 >= npv .6: signal), then the best npv (b .5 > c .375)
    // exits to noise, then c (the last) both ways.
    let cues = [num(&A), num(&B), num(&C)];
    let t = fit(&cues, &Y, &params(3, Algorithm::Zigzag, Goal::Bacc, 3)).unwrap();
    assert_eq!(shape(&t), vec![(0, gt(3.0), Exit::Signal), (1, gt(0.0), Exit::Noise), (2, gt(0.0), Exit::Both)]);
}

// x = 1..10, positives at 5, 9, 10 (P 3, N 7).
// x > 8: hi 2, fa 0 (bacc .833, acc .9, cost 1 miss);
// x > 4: hi 3, fa 3 (bacc .786, acc .7, wacc(.9) .957, cost 3 false alarms).
const X: [f64; 10] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
const YX: [bool; 10] = [false, false, false, false, true, false, false, false, true, true];

#[test]
fn each_goal_gives_its_threshold() {
    let one = |p: Params| fit(&[num(&X)], &YX, &p).unwrap().levels[0].test.clone();
    assert_eq!(one(params(1, Algorithm::Ifan, Goal::Acc, 1)), gt(8.0));
    assert_eq!(one(params(1, Algorithm::Ifan, Goal::Bacc, 1)), gt(8.0));
    assert_eq!(one(Params { sens_w: 0.9, ..params(1, Algorithm::Ifan, Goal::Wacc, 1) }), gt(4.0));
    assert_eq!(one(params(1, Algorithm::Ifan, Goal::Cost, 1)), gt(8.0));
    let misses_cost_ten = OutcomeCosts { hi: 0.0, fa: 1.0, mi: 10.0, cr: 0.0 };
    assert_eq!(one(Params { costs: misses_cost_ten, ..params(1, Algorithm::Ifan, Goal::Cost, 1) }), gt(4.0));
}

#[test]
fn cue_costs_steer_the_cost_goal() {
    // Alone (cost): a > 3 costs 2/8 per case, b > 0 3/8. With a priced at
    // 0.5 per look-up, a's cost is .75 and b is taken first.
    let cues = [num(&A), num(&B)];
    let mut p = params(1, Algorithm::Ifan, Goal::Cost, 2);
    assert_eq!(fit(&cues, &Y, &p).unwrap().levels[0].cue, 0);
    p.cue_costs = vec![0.5, 0.0];
    assert_eq!(fit(&cues, &Y, &p).unwrap().levels[0].cue, 1);
}

#[test]
fn missing_values_are_left_out_of_ranking_and_take_the_majority_at_the_end() {
    // The NaN rows are negatives; positives (5 of 8) are the majority, so a
    // NaN reaching the last level decides signal.
    let a = [1.0, 2.0, f64::NAN, 4.0, 5.0, 6.0, 1.0, f64::NAN];
    let y = [false, false, false, true, true, true, true, true];
    let t = fit(&[num(&a)], &y, &params(1, Algorithm::Ifan, Goal::Bacc, 1)).unwrap();
    assert!(t.missing_decision);
    assert_eq!(t.levels[0].test, gt(2.0));
    // Signal exit: 4, 5, 6 and both NaN rows (one positive, one negative).
    assert_eq!(t.p_signal, vec![4.0 / 5.0]);
}

#[test]
fn one_class_and_bad_shapes_are_errors() {
    let e = fit(&[num(&A)], &[true; 8], &params(2, Algorithm::Ifan, Goal::Bacc, 1)).unwrap_err();
    assert_eq!(e.0, "y has a single class (8 rows, all signal); a fast-and-frugal tree needs both classes");
    let e = fit(&[num(&A[..3])], &Y, &params(2, Algorithm::Ifan, Goal::Bacc, 1)).unwrap_err();
    assert_eq!(e.0, "cue 0 has 3 rows but y has 8; pass columns of equal length");
    let e = fit(&[num(&A)], &Y, &params(21, Algorithm::Ifan, Goal::Bacc, 1)).unwrap_err();
    assert_eq!(e.0, "max_levels must be between 1 and 20 (the fan algorithms grow 2^(max_levels - 1) trees); got 21");
    let e = fit(&[num(&[f64::NAN; 8])], &Y, &params(2, Algorithm::Ifan, Goal::Bacc, 1)).unwrap_err();
    assert_eq!(e.0, "every value of every cue is missing; fit needs at least one cue with values");
}

#[test]
fn categorical_cues_split_by_sets_of_levels() {
    // Codes 0..3: y is true for codes 1 and 3. Alone (bacc) 1 and 3 rank
    // first (tie: code 1 first); {1, 3} is perfect.
    let x = [0.0, 1.0, 2.0, 3.0, 0.0, 1.0, 2.0, 3.0];
    let y = [false, true, false, true, false, true, false, true];
    let cue = Cue { values: &x, kind: CueKind::Categorical { n_levels: 4 } };
    let t = fit(&[cue], &y, &params(3, Algorithm::Ifan, Goal::Bacc, 1)).unwrap();
    assert_eq!(shape(&t), vec![(0, Test::In { codes: vec![1, 3] }, Exit::Both)]);
}

// Seven positives with a > 5 (all with b = 1); below, positives have a <= 2
// and b > 2. On all rows a > 5 ranks first (bacc .889) and b's best test is
// b <= 1 (.639, over b > 2 at .611).
const DA: [f64; 13] = [6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 4.0, 5.0, 1.0, 2.0, 3.0, 4.0];
const DB: [f64; 13] = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 3.0, 4.0, 1.0, 2.0];
const DY: [bool; 13] = [true, true, true, true, true, true, true, false, false, true, true, false, false];

fn le(t: f64) -> Test {
    Test::LessEqual { threshold: t }
}

#[test]
fn ifan_keeps_the_full_data_tests() {
    // Noise first: a <= 5 decides noise, then b <= 1 signals the seven: .889.
    // Signal first: the rows left get b <= 1 (2 false alarms, 2 misses): .639.
    let t = fit(&[num(&DA), num(&DB)], &DY, &params(2, Algorithm::Ifan, Goal::Bacc, 2)).unwrap();
    assert_eq!(shape(&t), vec![(0, gt(5.0), Exit::Noise), (1, le(1.0), Exit::Both)]);
}

#[test]
fn dfan_retests_the_rows_left_and_may_repeat_a_cue() {
    // Noise first leaves seven positives: growth stops (one class), .889.
    // Signal first leaves six rows where a <= 2 and b > 2 are both perfect:
    // the first column wins, so a is used twice; the tree is perfect.
    let t = fit(&[num(&DA), num(&DB)], &DY, &params(2, Algorithm::Dfan, Goal::Bacc, 2)).unwrap();
    assert_eq!(shape(&t), vec![(0, gt(5.0), Exit::Signal), (0, le(2.0), Exit::Both)]);
    assert_eq!(t.levels[1].stats.cumulative, Counts { hi: 9, fa: 0, mi: 0, cr: 4 });
}
