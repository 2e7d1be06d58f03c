//! Time `fit` on R1-shaped data (n rows of 32 normal cues): `cargo run --release --example fit_timing -- [rows] [levels] [ifan|dfan]`.

use std::time::Instant;

use streamml_train::{fit, Algorithm, Cue, CueKind, Goal, OutcomeCosts, Params};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map_or(1_000_000, |s| s.parse().unwrap());
    let levels: usize = args.get(2).map_or(5, |s| s.parse().unwrap());
    let algorithm = Algorithm::parse(args.get(3).map_or("ifan", |s| s.as_str())).unwrap();
    let mut state = 42u64;
    let mut normal = move || {
        // Box-Muller on a 64-bit LCG: enough for timing.
        let mut u = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (a, b) = (u(), u());
        (-2.0 * a.ln()).sqrt() * (2.0 * std::f64::consts::PI * b).cos()
    };
    let cols: Vec<Vec<f64>> = (0..32).map(|_| (0..n).map(|_| normal()).collect()).collect();
    let y: Vec<bool> = (0..n).map(|i| cols[0][i] * 1.5 - cols[1][i] + cols[2][i] * cols[3][i] > 0.0).collect();
    let cues: Vec<Cue> = cols.iter().map(|c| Cue { values: c, kind: CueKind::Numeric }).collect();
    let params = Params {
        max_levels: levels,
        algorithm,
        goal: Goal::Bacc,
        goal_chase: Goal::Bacc,
        goal_threshold: Goal::Bacc,
        sens_w: 0.5,
        costs: OutcomeCosts::default(),
        cue_costs: vec![0.0; 32],
        stopping_par: 0.1,
    };
    for _ in 0..3 {
        let t = Instant::now();
        let tree = fit(&cues, &y, &params).unwrap();
        println!("{n} rows, {levels} levels: {:.3} s, {} levels fitted", t.elapsed().as_secs_f64(), tree.levels.len());
    }
}
