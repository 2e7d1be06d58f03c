//! Time the evaluator on an IR file without any host: `cargo run --release
//! -p streamml-evaluator --example bench_ir -- model.ir.json [rows]`.
//! Rows are N(0, 1) features (R1's distribution); prints rows/s.
//! `STREAMML_EVALUATOR_COMPACT=0` (with `--features bench-switches`) times
//! the general walk instead of the compact one (`src/compact.rs`). R1.ir.json: `streamml.compile.to_ir` of
//! the LightGBM model `benchmarks/r1_models.py` trains, dumped as JSON.

#[path = "common/normal_rows.rs"]
mod normal_rows;

use std::time::Instant;

use streamml_evaluator::Evaluator;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: bench_ir MODEL.ir.json [ROWS]");
    let rows: usize = args
        .get(2)
        .map(|r| r.parse().expect("rows"))
        .unwrap_or(100_000);
    let text = std::fs::read_to_string(path).expect("read the IR");
    let evaluator = Evaluator::from_ir_text(&text).expect("a valid IR");
    let nf = evaluator.n_features();
    let xs = normal_rows::normal_values(rows * nf);
    // At least 5 calls and 0.5 s: a 1-row call is timed thousands of times.
    let mut best = f64::INFINITY;
    let mut check = 0.0;
    let (mut calls, begun) = (0, Instant::now());
    while calls < 5 || begun.elapsed().as_secs_f64() < 0.5 {
        let started = Instant::now();
        check = evaluator.score_rows(&xs, rows).iter().sum::<f64>();
        best = best.min(started.elapsed().as_secs_f64());
        calls += 1;
    }
    println!(
        "{rows} rows: best of {calls} calls {:.2} µs, {:.3} M rows/s (checksum {check:.6})",
        best * 1e6,
        rows as f64 / best / 1e6
    );
}
