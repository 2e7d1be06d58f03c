//! Reproducible N(0, 1) rows for the evaluator's examples, without dependencies.

/// `n` values from a fixed xorshift generator through Box-Muller.
pub fn normal_values(n: usize) -> Vec<f64> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut uniform = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            (-2.0 * (uniform().max(1e-300)).ln()).sqrt() * (std::f64::consts::TAU * uniform()).cos()
        })
        .collect()
}
