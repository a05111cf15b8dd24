//! The vanilla E-step: soft responsibilities among a pixel's own-class components.
//!
//! `q_n[m] = π_m N(x_n; μ_m, σ_m) / Σ_m' π_m' N(x_n; μ_m', σ_m')`, computed from the
//! log-likelihoods (which already include log π_m) by a row-wise softmax.

use ndarray::parallel::prelude::*;
use ndarray::{Array2, ArrayView2, Axis};

/// Soft responsibilities from own-class log π_m N(x_n; ·), shape (n, M) → (n, M).
/// Rows sum to 1.
pub fn vanilla_responsibilities(own_ll: ArrayView2<'_, f32>) -> Array2<f32> {
    let mut out = own_ll.to_owned();
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .for_each(|mut row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            if max == f32::NEG_INFINITY {
                let m = row.len() as f32;
                row.fill(1.0 / m);
                return;
            }
            row.mapv_inplace(|v| (v - max).exp());
            let total: f32 = row.sum();
            row.mapv_inplace(|v| v / total);
        });
    out
}

/// How balanced and how hard one E-step's responsibilities were, measured on the soft
/// responsibilities (before a hard assignment replaces them): what every EM update reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EStepStats {
    /// Pixels assigned.
    pub pixels: usize,
    /// Largest relative deviation of a component's mass `Σ_n q_n[m]` from `n/M`, over the
    /// components (and, merged, over the classes): 0 at equipartition.
    pub max_marginal_error: f64,
    /// Mean over pixels of `max_m q_n[m]`: 1/M for uniform responsibilities, 1 for hard ones.
    pub mean_max_responsibility: f64,
    /// Sinkhorn iterations run (the most over the merged classes; 0 for vanilla EM).
    pub sinkhorn_iterations: usize,
}

impl EStepStats {
    /// The statistics of soft responsibilities `resp` (n, M).
    pub fn of(resp: ArrayView2<'_, f32>, sinkhorn_iterations: usize) -> Self {
        const ROWS: usize = 4096;
        let (n, m) = resp.dim();
        if n == 0 || m == 0 {
            return Self::default();
        }
        // per chunk of rows: the column masses and the sum of row maxima, in f64, added in
        // chunk order (the same for any thread count)
        let partials: Vec<(Vec<f64>, f64)> = resp
            .axis_chunks_iter(Axis(0), ROWS)
            .into_par_iter()
            .map(|rows| {
                let mut masses = vec![0f64; m];
                let mut max_sum = 0f64;
                for row in rows.axis_iter(Axis(0)) {
                    let mut max = f32::NEG_INFINITY;
                    for (a, &v) in masses.iter_mut().zip(row.iter()) {
                        *a += v as f64;
                        max = max.max(v);
                    }
                    max_sum += max as f64;
                }
                (masses, max_sum)
            })
            .collect();
        let mut masses = vec![0f64; m];
        let mut max_sum = 0f64;
        for (pm, ps) in partials {
            masses.iter_mut().zip(pm).for_each(|(a, b)| *a += b);
            max_sum += ps;
        }
        let target = n as f64 / m as f64;
        let max_marginal_error = masses
            .iter()
            .map(|&c| ((c - target) / target).abs())
            .fold(0.0, f64::max);
        EStepStats {
            pixels: n,
            max_marginal_error,
            mean_max_responsibility: max_sum / n as f64,
            sinkhorn_iterations,
        }
    }

    /// Both E-steps taken together (e.g. two classes): the worse marginal error, the
    /// pixel-weighted mean of the max responsibility, the most iterations.
    pub fn merge(&self, other: &Self) -> Self {
        let pixels = self.pixels + other.pixels;
        if pixels == 0 {
            return Self::default();
        }
        EStepStats {
            pixels,
            max_marginal_error: self.max_marginal_error.max(other.max_marginal_error),
            mean_max_responsibility: (self.mean_max_responsibility * self.pixels as f64
                + other.mean_max_responsibility * other.pixels as f64)
                / pixels as f64,
            sinkhorn_iterations: self.sinkhorn_iterations.max(other.sinkhorn_iterations),
        }
    }
}

/// Replaces each row by the one-hot vector of its argmax (first maximum on ties).
pub fn harden(resp: &mut Array2<f32>) {
    resp.axis_iter_mut(Axis(0))
        .into_par_iter()
        .for_each(|mut row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            row.fill(0.0);
            row[best] = 1.0;
        });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn stats_of_uniform_and_unbalanced_responsibilities() {
        let r = array![[0.5f32, 0.5], [0.5, 0.5]];
        let s = EStepStats::of(r.view(), 3);
        assert_eq!(s.pixels, 2);
        assert!(s.max_marginal_error.abs() < 1e-12);
        assert!((s.mean_max_responsibility - 0.5).abs() < 1e-12);
        // both pixels on component 0: its mass is 2 = 2 × n/M, so the error is 1
        let r = array![[1f32, 0.], [1., 0.]];
        let h = EStepStats::of(r.view(), 0);
        assert!((h.max_marginal_error - 1.0).abs() < 1e-12);
        assert!((h.mean_max_responsibility - 1.0).abs() < 1e-12);
        let m = s.merge(&h);
        assert_eq!((m.pixels, m.sinkhorn_iterations), (4, 3));
        assert!((m.max_marginal_error - 1.0).abs() < 1e-12);
        assert!((m.mean_max_responsibility - 0.75).abs() < 1e-12);
    }

    #[test]
    fn responsibilities_by_hand() {
        let ll = array![[0f32, 2f32.ln()], [-1000., -1000.]];
        let r = vanilla_responsibilities(ll.view());
        assert!((r[[0, 0]] - 1.0 / 3.0).abs() < 1e-6);
        assert!((r[[0, 1]] - 2.0 / 3.0).abs() < 1e-6);
        assert!(
            (r[[1, 0]] - 0.5).abs() < 1e-6,
            "no underflow far from every mean"
        );
        let mut h = r.clone();
        harden(&mut h);
        assert_eq!(h, array![[0f32, 1.], [1., 0.]]);
    }
}
