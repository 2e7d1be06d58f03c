//! Statistics of a count vector against its reference, computed when read.
//!
//! Both vectors are turned into proportions over all their bins (underflow,
//! bins, overflow, missing / categories, other, missing). PSI and KL need a
//! floor for empty bins: proportions below [`EPSILON`] are raised to it (and
//! not renormalised), the usual convention of PSI tables. Jensen–Shannon
//! (base 2, in 0..=1) and Hellinger (in 0..=1) need no floor: `0·log 0 = 0`.

/// The floor for empty bins in PSI and KL (a proportion, not a count).
pub const EPSILON: f64 = 1e-4;

/// How far an observed distribution is from its reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Divergence {
    /// Population stability index, `Σ (p - q) ln(p / q)` with floored proportions.
    pub psi: f64,
    /// Jensen–Shannon divergence in bits (0 = same, 1 = disjoint).
    pub js: f64,
    /// Hellinger distance, `sqrt(1 - Σ sqrt(p q))` (0 = same, 1 = disjoint).
    pub hellinger: f64,
    /// Kullback–Leibler divergence of the observed from the reference, nats, floored.
    pub kl: f64,
}

impl Divergence {
    /// Every statistic NaN: nothing was observed (or the reference is empty).
    pub const UNDEFINED: Divergence = Divergence {
        psi: f64::NAN,
        js: f64::NAN,
        hellinger: f64::NAN,
        kl: f64::NAN,
    };
}

/// The divergence of `observed` from `reference` (same length).
///
/// # Panics
/// If the lengths differ (callers build both from one layout).
pub fn divergence(reference: &[u64], observed: &[u64]) -> Divergence {
    assert_eq!(reference.len(), observed.len(), "count vectors differ in length");
    let q_total: u64 = reference.iter().sum();
    let p_total: u64 = observed.iter().sum();
    if q_total == 0 || p_total == 0 {
        return Divergence::UNDEFINED;
    }
    let (mut psi, mut js, mut bc, mut kl) = (0.0, 0.0, 0.0, 0.0);
    for (&q, &p) in reference.iter().zip(observed) {
        let q = q as f64 / q_total as f64;
        let p = p as f64 / p_total as f64;
        let (qf, pf) = (q.max(EPSILON), p.max(EPSILON));
        psi += (pf - qf) * (pf / qf).ln();
        kl += pf * (pf / qf).ln();
        let m = 0.5 * (p + q);
        if p > 0.0 {
            js += 0.5 * p * (p / m).log2();
        }
        if q > 0.0 {
            js += 0.5 * q * (q / m).log2();
        }
        bc += (p * q).sqrt();
    }
    Divergence {
        psi,
        js: js.clamp(0.0, 1.0),
        hellinger: (1.0 - bc).max(0.0).sqrt(),
        kl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn same_distribution_is_zero() {
        let d = divergence(&[10, 20, 30, 0], &[1, 2, 3, 0]);
        close(d.psi, 0.0);
        close(d.js, 0.0);
        close(d.hellinger, 0.0);
        close(d.kl, 0.0);
    }

    #[test]
    fn hand_computed_values() {
        // q = (0.5, 0.5), p = (0.25, 0.75)
        let d = divergence(&[50, 50], &[25, 75]);
        let psi = (0.25 - 0.5) * (0.5f64).ln() + (0.75 - 0.5) * (1.5f64).ln();
        close(d.psi, psi); // 0.274653...
        close(d.psi, 0.25 * 3f64.ln());
        let kl = 0.25 * 0.5f64.ln() + 0.75 * 1.5f64.ln();
        close(d.kl, kl);
        // m = (0.375, 0.625)
        let js = 0.5 * (0.25 * (0.25f64 / 0.375).log2() + 0.75 * (0.75f64 / 0.625).log2())
            + 0.5 * (0.5 * (0.5f64 / 0.375).log2() + 0.5 * (0.5f64 / 0.625).log2());
        close(d.js, js);
        let h = (1.0 - (0.125f64.sqrt() + 0.375f64.sqrt())).sqrt();
        close(d.hellinger, h);
    }

    #[test]
    fn disjoint_is_one_and_psi_uses_the_floor() {
        let d = divergence(&[10, 0], &[0, 10]);
        close(d.js, 1.0);
        close(d.hellinger, 1.0);
        let psi = 2.0 * (1.0 - EPSILON) * ((1.0 / EPSILON).ln());
        close(d.psi, psi);
    }

    #[test]
    fn nothing_observed_is_undefined() {
        assert!(divergence(&[1, 2], &[0, 0]).psi.is_nan());
        assert!(divergence(&[0, 0], &[1, 2]).js.is_nan());
    }
}
