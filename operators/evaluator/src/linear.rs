//! Linear models: `raw[k] = intercept[k] + sum_j coef[k][j] * x[j]`.

use crate::ir::LinearIr;

#[derive(Debug)]
pub struct Linear {
    /// Row-major: `coef[k * n_features + j]`.
    coef: Vec<f64>,
    intercept: Vec<f64>,
    pub n_outputs: usize,
    n_features: usize,
    pub sigmoid_scale: f64,
}

impl Linear {
    pub fn build(ir: &LinearIr, n_features: usize) -> Result<Self, String> {
        if ir.n_outputs == 0 || ir.coef.len() != ir.n_outputs || ir.intercept.len() != ir.n_outputs
        {
            return Err(format!(
                "linear: {} coefficient rows and {} intercepts for {} outputs",
                ir.coef.len(),
                ir.intercept.len(),
                ir.n_outputs
            ));
        }
        if let Some(row) = ir.coef.iter().find(|r| r.len() != n_features) {
            return Err(format!(
                "linear: a coefficient row has {} values for {n_features} features",
                row.len()
            ));
        }
        Ok(Self {
            coef: ir.coef.concat(),
            intercept: ir.intercept.clone(),
            n_outputs: ir.n_outputs,
            n_features,
            sigmoid_scale: ir.sigmoid_scale,
        })
    }

    /// Raw scores for `rows` row-major rows of `xs` into `raw` (`rows * n_outputs`).
    pub fn raw_scores(&self, xs: &[f64], rows: usize, raw: &mut [f64]) {
        let nf = self.n_features;
        for r in 0..rows {
            let x = &xs[r * nf..(r + 1) * nf];
            for k in 0..self.n_outputs {
                let w = &self.coef[k * nf..(k + 1) * nf];
                let mut z = self.intercept[k];
                for j in 0..nf {
                    z += w[j] * x[j];
                }
                raw[r * self.n_outputs + k] = z;
            }
        }
    }
}
