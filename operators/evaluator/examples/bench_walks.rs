//! Compare the evaluator's walks on one IR in one process, interleaved (on a
//! shared machine only same-process, interleaved A/B runs mean anything):
//! `cargo run --release -p streamml-evaluator --features bench-switches
//! --example bench_walks -- model.ir.json [ROWS] [ROUNDS] [WALKS]` (the
//! feature lets the evaluator read the walk from the environment), WALKS a comma list of
//! `STREAMML_EVALUATOR_WALK` values (default `lockstep,refill`; `general`
//! is the walk without compact trees, `auto` the one the evaluator chooses). Rows are N(0, 1) features (R1's
//! distribution). Each round times every walk, in a rotating order: one
//! `score_rows` call of ROWS rows or, under 64 rows, one call per ROWS rows
//! of a ~4,096-row pool (a small call repeated on the same row would find
//! its path's nodes in cache and its branches predicted). Prints min and
//! median rows/s per walk, and checks that every walk gives the same bits.

#[path = "common/normal_rows.rs"]
mod normal_rows;

use std::time::Instant;

use streamml_evaluator::Evaluator;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .get(1)
        .expect("usage: bench_walks MODEL.ir.json [ROWS] [ROUNDS] [WALKS]");
    let arg = |i: usize, default: usize| {
        args.get(i)
            .map_or(default, |a| a.parse().expect("a number"))
    };
    let (rows, rounds) = (arg(2, 100_000), arg(3, 15));
    let walks: Vec<String> = args
        .get(4)
        .map_or("lockstep,refill", String::as_str)
        .split(',')
        .map(String::from)
        .collect();
    let text = std::fs::read_to_string(path).expect("read the IR");
    let evaluators: Vec<Evaluator> = walks
        .iter()
        .map(|walk| {
            // The forest reads its walk when it is built, from the environment.
            if walk == "general" {
                std::env::set_var("STREAMML_EVALUATOR_COMPACT", "0");
            } else if walk == "auto" {
                std::env::remove_var("STREAMML_EVALUATOR_COMPACT");
                std::env::remove_var("STREAMML_EVALUATOR_WALK");
            } else {
                std::env::remove_var("STREAMML_EVALUATOR_COMPACT");
                std::env::set_var("STREAMML_EVALUATOR_WALK", walk);
            }
            Evaluator::from_ir_text(&text).expect("a valid IR")
        })
        .collect();
    let nf = evaluators[0].n_features();
    // Under 64 rows a round times the whole pool (see the module docs).
    let pool = if rows < 64 { 4096 / rows * rows } else { rows };
    let all = normal_rows::normal_values(pool * nf);
    let xs = &all[..rows * nf];
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let reference = bits(&evaluators[0].score_rows(xs, rows));
    for (walk, e) in walks.iter().zip(&evaluators) {
        assert_eq!(
            bits(&e.score_rows(xs, rows)),
            reference,
            "{walk} differs from {}",
            walks[0]
        );
    }
    let mut times = vec![Vec::new(); walks.len()];
    for round in 0..rounds {
        for k in 0..walks.len() {
            let w = (round + k) % walks.len();
            let started = Instant::now();
            for call in all.chunks_exact(rows * nf) {
                std::hint::black_box(evaluators[w].score_rows(call, rows));
            }
            times[w].push(started.elapsed().as_secs_f64() * (rows as f64 / pool as f64));
        }
    }
    println!("{rows} rows, {rounds} interleaved rounds (rows/s; every walk gave the same bits)");
    println!(
        "{:<10} {:>12} {:>12} {:>9}",
        "walk", "best", "median", "vs first"
    );
    let mut first = 0.0;
    for (walk, t) in walks.iter().zip(&mut times) {
        t.sort_by(f64::total_cmp);
        let (best, median) = (rows as f64 / t[0], rows as f64 / t[t.len() / 2]);
        if first == 0.0 {
            first = median;
        }
        println!(
            "{walk:<10} {best:>12.0} {median:>12.0} {:>8.3}x",
            median / first
        );
    }
}
