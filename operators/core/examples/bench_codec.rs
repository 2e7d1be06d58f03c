//! The JSON codec's cost per message: `cargo run --release -p streamml-core
//! --example bench_codec -- MODEL.so [MESSAGES] [ROUNDS]` scores MESSAGES JSON
//! messages of 32 float64 features and an id (as `benchmarks/kafka_score.py`
//! writes them) in chunks of 250 through `MessageScorer`, ROUNDS times, and
//! prints the best and median messages/s. With a cheap model (the SDK's
//! `s1_logistic`) that is the codec's own cost.

use std::time::Instant;

use streamml_core::codec::{Carry, Format, MessageScorer};
use streamml_core::{LoadOptions, Model};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: bench_codec MODEL.so [MESSAGES] [ROUNDS]");
    let arg = |i: usize, default: usize| args.get(i).map_or(default, |a| a.parse().expect("a number"));
    let (n, rounds) = (arg(2, 50_000), arg(3, 9));
    let model = Model::load(path, &LoadOptions::default()).expect("a model binary");
    let scorer = MessageScorer::new(model, Format::Json, Carry::id(Some("id".into()))).expect("a scorer");
    // Deterministic values with six decimals, like the benchmark's rounded N(0, 1) rows.
    let mut state = 42u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64 - 0.5) * 6.0
    };
    let messages: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let fields: Vec<String> = (0..32).map(|f| format!("\"x{f}\":{:.6}", next())).collect();
            format!("{{\"id\":{i},{}}}", fields.join(",")).into_bytes()
        })
        .collect();
    let refs: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
    let mut times = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        for chunk in refs.chunks(250) {
            let scored = scorer.score(chunk);
            assert!(scored.errors.is_empty(), "{:?}", scored.errors.first());
            std::hint::black_box(scored);
        }
        times.push(started.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let rate = |t: f64| n as f64 / t;
    println!("{n} messages, {rounds} rounds: best {:.0}/s, median {:.0}/s", rate(times[0]), rate(times[rounds / 2]));
}
