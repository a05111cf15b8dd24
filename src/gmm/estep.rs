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
