//! Temperature scaling (Guo et al., ICML 2017): one scalar T > 0 dividing the logits,
//! fitted by minimising the mean negative log-likelihood of the labels on held-out data
//! (here the `tune` split; never the split it is evaluated on).
//!
//! With β = 1/T the NLL, mean_i [logsumexp(β z_i) − β z_{i,y_i}], is convex in β (its second
//! derivative is the mean variance of z under softmax(β z)), so a safeguarded Newton
//! iteration on β finds the global minimum to machine precision: each step is clipped to a
//! bracket that always contains the minimum, and the bracket shrinks by bisection whenever a
//! Newton step would leave it. Applied to GMMSeg, z are the class log-likelihoods (the head's
//! logits), so the temperature-scaled posterior is softmax(log p(x|c) / T).

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use super::{Label, IGNORE};
use crate::error::{GmmSegError, Result};

/// The smallest and largest temperature searched (β in [1/100, 100]).
pub const T_RANGE: (f64, f64) = (0.01, 100.0);

/// A fitted temperature.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Temperature {
    /// The temperature T (logits are divided by it).
    pub t: f64,
    /// Mean NLL of the fitting data at T = 1.
    pub nll_before: f64,
    /// Mean NLL of the fitting data at T.
    pub nll_after: f64,
    /// Valid pixels it was fitted on.
    pub pixels: u64,
}

/// NLL, its first and second derivative in β, over the valid rows.
fn nll_and_derivatives(rows: &[(&[f32], usize)], beta: f64) -> (f64, f64, f64) {
    let (mut f, mut g, mut h) = (0.0, 0.0, 0.0);
    for (z, y) in rows {
        let m = z.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v as f64));
        let (mut s, mut ez, mut ez2) = (0.0, 0.0, 0.0);
        for &v in z.iter() {
            let v = v as f64;
            let e = (beta * (v - m)).exp();
            s += e;
            ez += e * v;
            ez2 += e * v * v;
        }
        let (mean, second) = (ez / s, ez2 / s);
        let zy = z[*y] as f64;
        f += beta * m + s.ln() - beta * zy;
        g += mean - zy;
        h += (second - mean * mean).max(0.0);
    }
    let n = rows.len() as f64;
    (f / n, g / n, h / n)
}

/// Fits T on (N, C) logits and N labels (255 = ignore).
///
/// # Errors
/// Shape mismatch, labels out of range, non-finite logits, no valid pixel.
pub fn fit_temperature<L: Label>(logits: ArrayView2<f32>, labels: &[L]) -> Result<Temperature> {
    let (n, c) = logits.dim();
    if n != labels.len() {
        return Err(GmmSegError::shape(
            "logits/labels",
            format!("{n} rows of logits but {} labels", labels.len()),
        ));
    }
    let logits = logits.as_standard_layout();
    let flat = logits.as_slice().expect("standard layout");
    if let Some(i) = flat.iter().position(|v| !v.is_finite()) {
        return Err(GmmSegError::NonFinite {
            what: "logits".into(),
            index: i,
        });
    }
    let mut rows = Vec::with_capacity(n);
    for (i, (z, y)) in flat.chunks_exact(c.max(1)).zip(labels).enumerate() {
        let y = y.to_i64();
        if y == IGNORE {
            continue;
        }
        if y < 0 || y >= c as i64 {
            return Err(GmmSegError::LabelOutOfRange {
                what: "labels".into(),
                label: y,
                index: i,
                classes: c,
            });
        }
        rows.push((z, y as usize));
    }
    if rows.is_empty() {
        return Err(GmmSegError::empty(
            "temperature labels",
            "no valid (non-255) pixel to fit the temperature on",
        ));
    }
    let (mut lo, mut hi) = (1.0 / T_RANGE.1, 1.0 / T_RANGE.0);
    let nll_before = nll_and_derivatives(&rows, 1.0).0;
    let mut beta = 1.0;
    for _ in 0..200 {
        let (_, g, h) = nll_and_derivatives(&rows, beta);
        // the minimum lies where g changes sign: shrink the bracket on the known side
        if g > 0.0 {
            hi = beta;
        } else {
            lo = beta;
        }
        let newton = if h > 0.0 { beta - g / h } else { f64::NAN };
        let next = if newton.is_finite() && newton > lo && newton < hi {
            newton
        } else {
            0.5 * (lo + hi)
        };
        if (next - beta).abs() <= 1e-13 * beta.max(1.0) || g == 0.0 {
            beta = next;
            break;
        }
        beta = next;
    }
    let beta = beta.clamp(1.0 / T_RANGE.1, 1.0 / T_RANGE.0);
    Ok(Temperature {
        t: 1.0 / beta,
        nll_before,
        nll_after: nll_and_derivatives(&rows, beta).0,
        pixels: rows.len() as u64,
    })
}

/// Softmax of `z / t` over one row of logits, written into `out`.
pub fn scaled_softmax(z: &[f32], t: f64, out: &mut [f32]) {
    let m = z.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v)) as f64;
    let mut s = 0.0;
    for (o, &v) in out.iter_mut().zip(z) {
        let e = ((v as f64 - m) / t).exp();
        *o = e as f32;
        s += e;
    }
    for o in out.iter_mut() {
        *o = (*o as f64 / s) as f32;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn overconfident_logits_get_a_temperature_above_one() {
        // logits ±5 but only 70% correct: the fitted T softens them.
        let n = 1000;
        let mut z = Array2::<f32>::zeros((n, 2));
        let mut y = vec![0u8; n];
        for i in 0..n {
            z[[i, 0]] = 5.0;
            z[[i, 1]] = -5.0;
            y[i] = u8::from(i % 10 >= 7);
        }
        let t = fit_temperature(z.view(), &y).unwrap();
        // optimum: sigmoid(10/T) = 0.7 → T = 10 / ln(7/3)
        let expected = 10.0 / (7.0f64 / 3.0).ln();
        assert!((t.t - expected).abs() < 1e-9, "{t:?} vs {expected}");
        assert!(t.nll_after < t.nll_before);
    }

    #[test]
    fn bad_input_is_an_error() {
        let z = Array2::<f32>::zeros((2, 2));
        assert!(fit_temperature(z.view(), &[255u8, 255]).is_err());
        assert!(fit_temperature(z.view(), &[3u8, 0]).is_err());
        assert!(fit_temperature(z.view(), &[0u8]).is_err());
    }
}
