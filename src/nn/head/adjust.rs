//! The generative head's logit adjustments, two factors of the `gap` study:
//! `logits[b, c, ·] = e^s · log p(x|c) + log p̂(c)`.
//!
//! - A learnable temperature `e^s` (one scalar `s`, initialised to 0, trained by the
//!   cross-entropy like any weight but without decay). Why: the class log-likelihoods are in
//!   nats of a D = 64 density, so their differences — and with them the softmax's confidence
//!   and the loss's gradient scale — are set by the variances, not learned; the softmax head
//!   learns its scale through its weights.
//! - A log class prior `log p̂(c)`, the Laplace-smoothed pixel frequency of each class in the
//!   training batches seen so far: Bayes' rule with the class prior instead of the uniform
//!   one the paper's posterior assumes (DigitScenes is 92% background).
//!
//! The likelihood score (`−max_c log p(x|c)`) is left unadjusted: it is the density.

use dfdx::prelude::*;
use ndarray::Array2;

use crate::error::Result;
use crate::nn::{Act, Dev, Param, ParamKind};
use crate::ops::tape::{accumulate_param, expect_channels, grad_of, param_handle};

/// Pixels of each class seen in training: the log prior's counts.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassPrior {
    counts: Vec<f64>,
}

impl ClassPrior {
    /// No pixel seen yet: the prior is uniform.
    pub fn new(num_classes: usize) -> Self {
        ClassPrior {
            counts: vec![0.0; num_classes],
        }
    }

    /// Counts the labelled pixels of a batch (255 and out-of-range labels are ignored).
    pub fn observe(&mut self, labels: &[u8]) {
        for &l in labels {
            if let Some(n) = self.counts.get_mut(l as usize) {
                *n += 1.0;
            }
        }
    }

    /// `log((n_c + 1) / (N + C))`: add-one smoothing, so an unseen class is unlikely but
    /// possible.
    pub fn log_prior(&self) -> Vec<f32> {
        let total: f64 = self.counts.iter().sum::<f64>() + self.counts.len() as f64;
        self.counts
            .iter()
            .map(|&n| ((n + 1.0) / total).ln() as f32)
            .collect()
    }

    /// The counts, each as two `f32`s (high part, remainder), exact for a checkpoint.
    pub fn to_pieces(&self) -> Vec<f32> {
        self.counts
            .iter()
            .flat_map(|&n| {
                let hi = n as f32;
                [hi, (n - hi as f64) as f32]
            })
            .collect()
    }

    /// The inverse of [`ClassPrior::to_pieces`].
    pub fn from_pieces(pieces: &[f32]) -> Self {
        ClassPrior {
            counts: pieces
                .chunks_exact(2)
                .map(|p| p[0] as f64 + p[1] as f64)
                .collect(),
        }
    }
}

/// The learnable log-temperature `s`, named `<name>.log_temperature`.
pub fn log_temperature(dev: &Dev, name: &str) -> Param {
    Param::new(
        dev,
        format!("{name}.log_temperature"),
        &[1],
        vec![0.0],
        ParamKind::NoDecay,
    )
}

/// `y[b, c, h, w] = e^s · x[b, c, h, w] + shift[c]` on the tape, `s` from `log_t` (none:
/// `s = 0`, not trained) and `shift` none or one value per channel.
/// Backward: `∂x = e^s ∂y`, `∂s = e^s Σ ∂y · x`; the shift is a constant.
///
/// # Errors
/// [`crate::GmmSegError::Shape`] when `shift` does not have one value per channel.
pub fn adjust_nchw<T: Tape<f32, Cpu>>(
    x: Act<T>,
    log_t: Option<&Param>,
    shift: Option<&[f32]>,
) -> Result<Act<T>> {
    let (b, c, h, w) = *x.shape();
    if let Some(s) = shift {
        expect_channels("log prior", &(b, s.len(), h, w), c)?;
    }
    let scale = log_t.map_or(1.0, |p| p.to_vec()[0].exp());
    let xv = crate::nn::to_host(&x);
    let hw = h * w;
    let mut out = xv.clone();
    for (i, plane) in out.chunks_exact_mut(hw).enumerate() {
        let add = shift.map_or(0.0, |s| s[i % c]);
        for v in plane {
            *v = scale * *v + add;
        }
    }
    let (xin, mut tape) = x.split_tape();
    let y = xin.device().try_tensor_from_vec(out, (b, c, h, w))?;
    if T::OWNS_TAPE {
        let y_id = y.clone();
        let t_id = log_t.map(param_handle);
        tape.add_backward_op(move |grads| {
            let gy = grad_of(grads, &y_id)?;
            if let Some(t_id) = &t_id {
                let dot: f64 = gy
                    .iter()
                    .zip(&xv)
                    .map(|(g, v)| (*g as f64) * (*v as f64))
                    .sum();
                accumulate_param(grads, t_id, &[(scale as f64 * dot) as f32])?;
            }
            let gx = grads.get_or_alloc_mut(&xin)?;
            for (d, g) in gx.iter_mut().zip(&gy) {
                *d += scale * g;
            }
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}

/// [`adjust_nchw`] on pixel rows (N, C) without a tape (evaluation).
pub fn adjust_rows(x: &mut Array2<f32>, log_t: Option<&Param>, shift: Option<&[f32]>) {
    let scale = log_t.map_or(1.0, |p| p.to_vec()[0].exp());
    for mut row in x.rows_mut() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = scale * *v + shift.map_or(0.0, |s| s[j]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The loss `Σ w · adjust(x)` against central finite differences in x and s.
    #[test]
    fn gradients_match_finite_differences() {
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let shape = (2, 3, 2, 2);
        let n = 24;
        let xv: Vec<f32> = (0..n).map(|_| rng.gen_range(-3.0..3.0)).collect();
        let wv: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let shift = [0.3f32, -1.2, 0.5];
        let mut t = log_temperature(&dev, "head");
        t.set(&[0.4]).unwrap();
        let loss = |x: &[f32], t: &Param| -> f64 {
            let a: Act = dev.tensor_from_vec(x.to_vec(), shape);
            let y = adjust_nchw(a, Some(t), Some(&shift)).unwrap();
            crate::nn::to_host(&y)
                .iter()
                .zip(&wv)
                .map(|(y, w)| (*y as f64) * (*w as f64))
                .sum()
        };
        // analytic
        let x: Act = dev.tensor_from_vec(xv.clone(), shape);
        let x_id = x.clone();
        let y = adjust_nchw(x.leaky_trace(), Some(&t), Some(&shift)).unwrap();
        let wt: Act = dev.tensor_from_vec(wv.clone(), shape);
        let g = (y * wt).sum().backward();
        let gx = g.get(&x_id).as_vec();
        let gs = g.get(&t.value).as_vec()[0];
        let h = 1e-2f32;
        for i in [0, 7, 23] {
            let (mut up, mut down) = (xv.clone(), xv.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (loss(&up, &t) - loss(&down, &t)) / (2.0 * h as f64);
            assert!(
                (fd - gx[i] as f64).abs() < 1e-3,
                "x[{i}]: {fd} vs {}",
                gx[i]
            );
        }
        let (mut up, mut down) = (t.clone(), t.clone());
        up.set(&[0.4 + h]).unwrap();
        down.set(&[0.4 - h]).unwrap();
        let fd = (loss(&xv, &up) - loss(&xv, &down)) / (2.0 * h as f64);
        assert!(
            (fd - gs as f64).abs() < 1e-2 * fd.abs().max(1.0),
            "s: {fd} vs {gs}"
        );
    }

    #[test]
    fn rows_and_maps_agree_and_the_prior_is_smoothed() {
        let dev = Dev::default();
        let mut prior = ClassPrior::new(3);
        prior.observe(&[0, 0, 0, 1, 255, 9]);
        let lp = prior.log_prior();
        // (3 + 1)/(4 + 3), (1 + 1)/7, (0 + 1)/7
        for (got, want) in lp.iter().zip([4.0f64 / 7.0, 2.0 / 7.0, 1.0 / 7.0]) {
            assert!((*got as f64 - want.ln()).abs() < 1e-6);
        }
        assert_eq!(ClassPrior::from_pieces(&prior.to_pieces()), prior);
        let mut t = log_temperature(&dev, "h");
        t.set(&[-0.7]).unwrap();
        // one image, 3 classes, 1×2 pixels: map (c, p) and rows (p, c)
        let map = [1.0f32, 2.0, -1.0, 0.5, 3.0, -2.0];
        let a: Act = dev.tensor_from_vec(map.to_vec(), (1, 3, 1, 2));
        let y = crate::nn::to_host(&adjust_nchw(a, Some(&t), Some(&lp)).unwrap());
        let mut rows = Array2::from_shape_fn((2, 3), |(p, c)| map[c * 2 + p]);
        adjust_rows(&mut rows, Some(&t), Some(&lp));
        for p in 0..2 {
            for c in 0..3 {
                assert!((rows[[p, c]] - y[c * 2 + p]).abs() < 1e-6);
            }
        }
        let want = (-0.7f32).exp() * 1.0 + lp[0];
        assert!((rows[[0, 0]] - want).abs() < 1e-6);
    }
}
