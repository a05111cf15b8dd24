//! Custom ops on pixel rows (N, K) used by the GMM heads: layer normalisation with a learnable
//! affine, L2 normalisation, and a cross-entropy with per-row optional targets.
//!
//! Same recipe as [`crate::ops::tape`]: compute on host slices, record a backward closure.

use dfdx::prelude::*;

use super::{Param, Scalar};
use crate::error::{GmmSegError, Result};
use crate::ops::tape::{accumulate_param, unary_op};

/// Rows of features, (N, K).
pub type Rows<T = NoneTape> = Tensor<(usize, usize), f32, Cpu, T>;

/// Layer normalisation of every row over its K entries, then `γ ⊙ x̂ + β` with learnable
/// γ, β of length K (the reference code's `feat_norm` over D and `mask_norm` over classes).
///
/// # Shapes
/// (N, K) → (N, K); `gamma`, `beta`: (K).
///
/// # Errors
/// [`GmmSegError::Shape`] when γ or β do not have K entries.
pub fn layer_norm_rows<T: Tape<f32, Cpu>>(
    x: Rows<T>,
    gamma: &Param,
    beta: &Param,
    eps: f32,
) -> Result<Rows<T>> {
    let (n, k) = *x.shape();
    if gamma.numel() != k || beta.numel() != k {
        return Err(GmmSegError::shape(
            "layer norm",
            format!(
                "rows have {k} entries, γ {} and β {}",
                gamma.numel(),
                beta.numel()
            ),
        ));
    }
    let xv = crate::nn::to_host(&x);
    let g = gamma.to_vec();
    let b = beta.to_vec();
    let mut xhat = vec![0f32; n * k];
    let mut inv = vec![0f32; n];
    let mut out = vec![0f32; n * k];
    for r in 0..n {
        let row = &xv[r * k..(r + 1) * k];
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / k as f64;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / k as f64;
        let is = 1.0 / (var + eps as f64).sqrt();
        inv[r] = is as f32;
        for j in 0..k {
            let h = ((row[j] as f64 - mean) * is) as f32;
            xhat[r * k + j] = h;
            out[r * k + j] = g[j] * h + b[j];
        }
    }
    let (gamma_t, beta_t) = (gamma.value.clone(), beta.value.clone());
    let (x, mut tape) = x.split_tape();
    let y = x.device().try_tensor_from_vec(out, (n, k))?;
    if T::OWNS_TAPE {
        let y_id = y.clone();
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&x)?;
            grads.try_alloc_for(&y_id)?;
            let gy = crate::nn::to_host(&grads.get(&y_id));
            let mut dg = vec![0f32; k];
            let mut db = vec![0f32; k];
            let mut dx = vec![0f32; n * k];
            for r in 0..n {
                let gyr = &gy[r * k..(r + 1) * k];
                let hr = &xhat[r * k..(r + 1) * k];
                let mut sum_g = 0f64;
                let mut sum_gh = 0f64;
                for j in 0..k {
                    dg[j] += gyr[j] * hr[j];
                    db[j] += gyr[j];
                    let gp = (gyr[j] * g[j]) as f64;
                    sum_g += gp;
                    sum_gh += gp * hr[j] as f64;
                }
                for j in 0..k {
                    let gp = (gyr[j] * g[j]) as f64;
                    dx[r * k + j] = (inv[r] as f64 / k as f64
                        * (k as f64 * gp - sum_g - hr[j] as f64 * sum_gh))
                        as f32;
                }
            }
            let gx = grads.get_or_alloc_mut(&x)?;
            for (a, v) in gx.iter_mut().zip(dx) {
                *a += v;
            }
            accumulate_param(grads, &gamma_t, &dg)?;
            accumulate_param(grads, &beta_t, &db)?;
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}

/// Divides every row by its L2 norm (floored at 1e-12), putting features on the unit sphere.
///
/// # Shapes
/// (N, K) → (N, K).
pub fn l2_normalize_rows<T: Tape<f32, Cpu>>(x: Rows<T>) -> Result<Rows<T>> {
    let (n, k) = *x.shape();
    let xv = crate::nn::to_host(&x);
    let norms: Vec<f32> = xv
        .chunks(k.max(1))
        .map(|r| r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12))
        .collect();
    let out: Vec<f32> = xv
        .chunks(k.max(1))
        .zip(&norms)
        .flat_map(|(r, &nrm)| r.iter().map(move |v| v / nrm))
        .collect();
    let y = out.clone();
    unary_op(x, (n, k), out, move || {
        Box::new(move |gy, gx| {
            for r in 0..n {
                let yr = &y[r * k..(r + 1) * k];
                let gr = &gy[r * k..(r + 1) * k];
                let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
                for j in 0..k {
                    gx[r * k + j] += (gr[j] - yr[j] * dot) / norms[r];
                }
            }
        })
    })
}

/// Mean cross-entropy over the rows that have a target: `−log softmax(z_r)[t_r]`.
/// With no target at all the loss is 0 with zero gradient.
///
/// # Shapes
/// (N, K), `targets` (N) → scalar.
///
/// # Errors
/// [`GmmSegError::Shape`] for a length mismatch or a target ≥ K.
pub fn cross_entropy_rows<T: Tape<f32, Cpu>>(
    logits: Rows<T>,
    targets: &[Option<usize>],
) -> Result<Scalar<T>> {
    let (n, k) = *logits.shape();
    if targets.len() != n {
        return Err(GmmSegError::shape(
            "cross_entropy_rows",
            format!("{} targets for {n} rows", targets.len()),
        ));
    }
    if let Some(t) = targets.iter().flatten().find(|&&t| t >= k) {
        return Err(GmmSegError::shape(
            "cross_entropy_rows",
            format!("target {t} for {k} columns"),
        ));
    }
    let z = crate::nn::to_host(&logits);
    let valid = targets.iter().filter(|t| t.is_some()).count();
    let mut prob = vec![0f32; n * k];
    let mut total = 0f64;
    for r in 0..n {
        let row = &z[r * k..(r + 1) * k];
        let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let s: f32 = row.iter().map(|v| (v - m).exp()).sum();
        for j in 0..k {
            prob[r * k + j] = (row[j] - m).exp() / s;
        }
        if let Some(t) = targets[r] {
            total += (s.ln() + m - row[t]) as f64;
        }
    }
    let loss = if valid == 0 {
        0.0
    } else {
        (total / valid as f64) as f32
    };
    let targets = targets.to_vec();
    unary_op(logits, (), vec![loss], move || {
        Box::new(move |gy, gx| {
            if valid == 0 {
                return;
            }
            let g = gy[0] / valid as f32;
            for r in 0..n {
                if let Some(t) = targets[r] {
                    for j in 0..k {
                        let onehot = if j == t { 1.0 } else { 0.0 };
                        gx[r * k + j] += g * (prob[r * k + j] - onehot);
                    }
                }
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Dev, ParamKind};

    /// Central finite differences of `f` at `x` against the tape gradient.
    fn check_grad(
        x0: Vec<f32>,
        shape: (usize, usize),
        f: impl Fn(Rows<OwnedTape<f32, Cpu>>) -> Scalar<OwnedTape<f32, Cpu>>,
        g: impl Fn(Rows) -> f32,
    ) {
        let dev = Dev::default();
        let x: Rows = dev.tensor_from_vec(x0.clone(), shape);
        let grads = f(x.leaky_trace()).backward();
        let analytic = grads.get(&x).as_vec();
        let h = 1e-2;
        for i in 0..x0.len() {
            let mut p = x0.clone();
            p[i] += h;
            let mut m = x0.clone();
            m[i] -= h;
            let fd =
                (g(dev.tensor_from_vec(p, shape)) - g(dev.tensor_from_vec(m, shape))) / (2.0 * h);
            assert!(
                (fd - analytic[i]).abs() < 2e-2 * (1.0 + fd.abs()),
                "entry {i}: fd {fd} vs analytic {}",
                analytic[i]
            );
        }
    }

    fn weights() -> Rows {
        Dev::default().tensor_from_vec(
            (0..12).map(|i| ((i * 5) % 7) as f32 * 0.3 - 0.8).collect(),
            (3, 4),
        )
    }

    #[test]
    fn layer_norm_gradient_and_values() {
        let dev = Dev::default();
        let gamma = Param::new(
            &dev,
            "g",
            &[4],
            vec![1.0, 2.0, 0.5, -1.0],
            ParamKind::NoDecay,
        );
        let beta = Param::new(
            &dev,
            "b",
            &[4],
            vec![0.1, 0.0, -0.2, 0.3],
            ParamKind::NoDecay,
        );
        let x0: Vec<f32> = (0..12).map(|i| ((i * 7) % 5) as f32 * 0.4 - 0.6).collect();
        let w = weights();
        check_grad(
            x0.clone(),
            (3, 4),
            |x| (layer_norm_rows(x, &gamma, &beta, 1e-5).unwrap() * w.clone()).sum::<(), _>(),
            |x| {
                (layer_norm_rows(x, &gamma, &beta, 1e-5).unwrap() * w.clone())
                    .sum::<(), _>()
                    .array()
            },
        );
        let y = layer_norm_rows(
            dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0], (1, 4)),
            &gamma,
            &gamma_zero(&dev),
            0.0,
        )
        .unwrap()
        .as_vec();
        let s = (1.25f32).sqrt();
        assert!((y[0] - (-1.5 / s)).abs() < 1e-5 && (y[3] - (-1.5 / s)).abs() < 1e-5);
    }

    fn gamma_zero(dev: &Dev) -> Param {
        Param::new(dev, "z", &[4], vec![0.0; 4], ParamKind::NoDecay)
    }

    #[test]
    fn l2_gradient_and_unit_norm() {
        let x0: Vec<f32> = (0..12).map(|i| ((i * 3) % 5) as f32 * 0.5 + 0.1).collect();
        let w = weights();
        check_grad(
            x0.clone(),
            (3, 4),
            |x| (l2_normalize_rows(x).unwrap() * w.clone()).sum::<(), _>(),
            |x| {
                (l2_normalize_rows(x).unwrap() * w.clone())
                    .sum::<(), _>()
                    .array()
            },
        );
        let y = l2_normalize_rows(Dev::default().tensor_from_vec(x0, (3, 4)))
            .unwrap()
            .as_vec();
        for r in y.chunks(4) {
            assert!((r.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn cross_entropy_rows_gradient_and_value() {
        let targets = [Some(1), None, Some(3)];
        let x0: Vec<f32> = (0..12).map(|i| ((i * 3) % 5) as f32 * 0.5).collect();
        check_grad(
            x0.clone(),
            (3, 4),
            |x| cross_entropy_rows(x, &targets).unwrap(),
            |x| cross_entropy_rows(x, &targets).unwrap().array(),
        );
        let l = cross_entropy_rows(
            Dev::default().tensor_from_vec(vec![0.0; 4], (1, 4)),
            &[Some(2)],
        )
        .unwrap()
        .array();
        assert!((l - 4f32.ln()).abs() < 1e-6);
        assert!(cross_entropy_rows(
            Dev::default().tensor_from_vec(vec![0.0; 4], (1, 4)),
            &[Some(4)]
        )
        .is_err());
    }
}
