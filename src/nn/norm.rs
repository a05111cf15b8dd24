//! Batch normalisation over (B, H, W) per channel, as a fused custom op.
//!
//! dfdx's `BatchNorm2D` is stable but wants a const channel count; our channel counts are
//! runtime config values, and a fused op with the closed-form backward is also faster than
//! the composition of broadcasts dfdx records.
//!
//! Training: `x̂ = (x − μ_B)/√(σ²_B + ε)`, `y = γ x̂ + β`, running statistics updated as
//! `r ← (1 − m) r + m s` with the *unbiased* batch variance (PyTorch's convention, m = 0.1).
//! Backward: `∂β = Σ g`, `∂γ = Σ g x̂`, `∂x = γ/σ (g − mean(g) − x̂ mean(g x̂))`.
//! Evaluation: running statistics, `y = γ (x − r_μ)/√(r_σ² + ε) + β`.

use dfdx::prelude::*;

use super::{to_host, Act, Ctx, Dev, Param, ParamKind, Params};
use crate::error::Result;
use crate::ops::tape::{accumulate_param, expect_channels, grad_of, param_handle};

/// Batch norm over channels of an NCHW map.
#[derive(Clone, Debug)]
pub struct BatchNorm2d {
    /// γ, initialised to 1.
    pub scale: Param,
    /// β, initialised to 0.
    pub shift: Param,
    /// Running mean (buffer), initialised to 0.
    pub running_mean: Param,
    /// Running variance (buffer), initialised to 1.
    pub running_var: Param,
    /// ε added to the variance, 1e-5 (PyTorch default).
    pub eps: f32,
    /// Weight of the new batch statistic in the running average, 0.1 (PyTorch default).
    pub momentum: f32,
}

impl BatchNorm2d {
    /// A batch norm for `c` channels, parameters named `name.{scale,shift,running_mean,running_var}`.
    pub fn new(dev: &Dev, name: &str, c: usize) -> Self {
        BatchNorm2d {
            scale: Param::constant(dev, format!("{name}.scale"), &[c], 1.0, ParamKind::NoDecay),
            shift: Param::constant(dev, format!("{name}.shift"), &[c], 0.0, ParamKind::NoDecay),
            running_mean: Param::constant(
                dev,
                format!("{name}.running_mean"),
                &[c],
                0.0,
                ParamKind::Buffer,
            ),
            running_var: Param::constant(
                dev,
                format!("{name}.running_var"),
                &[c],
                1.0,
                ParamKind::Buffer,
            ),
            eps: 1e-5,
            momentum: 0.1,
        }
    }

    /// Number of channels.
    pub fn channels(&self) -> usize {
        self.scale.numel()
    }

    /// Normalises `x`; in training mode (`ctx.train`) with batch statistics and a running-stat
    /// update, otherwise with the running statistics.
    ///
    /// # Shapes
    /// (B, C, H, W) → (B, C, H, W).
    ///
    /// # Errors
    /// [`crate::GmmSegError::Shape`] when x does not have C channels.
    pub fn forward<T: Tape<f32, Cpu>>(&mut self, x: Act<T>, ctx: &Ctx) -> Result<Act<T>> {
        let c = self.channels();
        expect_channels("batch norm input", x.shape(), c)?;
        let (b, _, h, w) = *x.shape();
        let hw = h * w;
        let n = (b * hw) as f64;
        let xv = to_host(&x);
        let gamma = self.scale.to_vec();
        let beta = self.shift.to_vec();
        let (mean, var): (Vec<f32>, Vec<f32>) = if ctx.train {
            let mut mean = vec![0.0f32; c];
            let mut var = vec![0.0f32; c];
            for ch in 0..c {
                let mut s = 0.0f64;
                for i in 0..b {
                    s += xv[(i * c + ch) * hw..(i * c + ch + 1) * hw]
                        .iter()
                        .map(|&v| v as f64)
                        .sum::<f64>();
                }
                let m = s / n;
                let mut q = 0.0f64;
                for i in 0..b {
                    q += xv[(i * c + ch) * hw..(i * c + ch + 1) * hw]
                        .iter()
                        .map(|&v| (v as f64 - m).powi(2))
                        .sum::<f64>();
                }
                mean[ch] = m as f32;
                var[ch] = (q / n) as f32;
            }
            let mom = self.momentum;
            let unbias = if n > 1.0 { n / (n - 1.0) } else { 1.0 } as f32;
            let rm: Vec<f32> = self
                .running_mean
                .to_vec()
                .iter()
                .zip(&mean)
                .map(|(r, s)| (1.0 - mom) * r + mom * s)
                .collect();
            let rv: Vec<f32> = self
                .running_var
                .to_vec()
                .iter()
                .zip(&var)
                .map(|(r, s)| (1.0 - mom) * r + mom * s * unbias)
                .collect();
            self.running_mean.set(&rm)?;
            self.running_var.set(&rv)?;
            (mean, var)
        } else {
            (self.running_mean.to_vec(), self.running_var.to_vec())
        };
        let inv_std: Vec<f32> = var.iter().map(|v| 1.0 / (v + self.eps).sqrt()).collect();
        let mut out = vec![0.0f32; xv.len()];
        for i in 0..b {
            for ch in 0..c {
                let off = (i * c + ch) * hw;
                let (m, s, g, bt) = (mean[ch], inv_std[ch], gamma[ch], beta[ch]);
                for (o, v) in out[off..off + hw].iter_mut().zip(&xv[off..off + hw]) {
                    *o = (v - m) * s * g + bt;
                }
            }
        }
        let train = ctx.train;
        let (xin, mut tape) = x.split_tape();
        let y = xin.device().try_tensor_from_vec(out, (b, c, h, w))?;
        if T::OWNS_TAPE {
            let y_id = y.clone();
            let (g_id, b_id) = (param_handle(&self.scale), param_handle(&self.shift));
            tape.add_backward_op(move |grads| {
                let gy = grad_of(grads, &y_id)?;
                let mut gx = vec![0.0f32; gy.len()];
                let mut ggamma = vec![0.0f32; c];
                let mut gbeta = vec![0.0f32; c];
                for ch in 0..c {
                    let (m, s, g) = (mean[ch], inv_std[ch], gamma[ch]);
                    let (mut sg, mut sgx) = (0.0f64, 0.0f64);
                    for i in 0..b {
                        let off = (i * c + ch) * hw;
                        for (gv, xv) in gy[off..off + hw].iter().zip(&xv[off..off + hw]) {
                            sg += *gv as f64;
                            sgx += (*gv * (xv - m) * s) as f64;
                        }
                    }
                    gbeta[ch] = sg as f32;
                    ggamma[ch] = sgx as f32;
                    let (mg, mgx) = ((sg / n) as f32, (sgx / n) as f32);
                    for i in 0..b {
                        let off = (i * c + ch) * hw;
                        for ((d, gv), xv) in gx[off..off + hw]
                            .iter_mut()
                            .zip(&gy[off..off + hw])
                            .zip(&xv[off..off + hw])
                        {
                            *d = if train {
                                g * s * (gv - mg - (xv - m) * s * mgx)
                            } else {
                                g * s * gv
                            };
                        }
                    }
                }
                accumulate_param(grads, &g_id, &ggamma)?;
                accumulate_param(grads, &b_id, &gbeta)?;
                let gxin = grads.get_or_alloc_mut(&xin)?;
                for (d, v) in gxin.iter_mut().zip(&gx) {
                    *d += v;
                }
                Ok(())
            });
        }
        Ok(y.put_tape(tape))
    }
}

impl Params for BatchNorm2d {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        f(&self.scale);
        f(&self.shift);
        f(&self.running_mean);
        f(&self.running_var);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.scale);
        f(&mut self.shift);
        f(&mut self.running_mean);
        f(&mut self.running_var);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn train_mode_normalises_and_gradients_match_finite_differences() {
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let shape = (3, 2, 3, 4);
        let n = 3 * 2 * 3 * 4;
        let xv: Vec<f32> = (0..n).map(|_| rng.gen_range(-2.0f32..2.0)).collect();
        let rv: Vec<f32> = (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
        let mut bn = BatchNorm2d::new(&dev, "bn", 2);
        bn.scale.set(&[1.5, -0.5]).unwrap();
        bn.shift.set(&[0.2, 0.1]).unwrap();
        let loss = |bn: &mut BatchNorm2d, xv: &[f32]| -> f64 {
            let x: Act = dev.tensor_from_vec(xv.to_vec(), shape);
            let y = bn.forward(x, &Ctx::train(0)).unwrap().as_vec();
            y.iter()
                .zip(&rv)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum()
        };
        let x: Act = dev.tensor_from_vec(xv.clone(), shape);
        let x_in = x.clone();
        let y = bn.forward(x.leaky_trace(), &Ctx::train(0)).unwrap();
        // channel 0 has mean β₀ = 0.2 after the affine map
        let yv = y.as_vec();
        let mean0: f32 = (0..3)
            .map(|i| yv[(i * 2) * 12..(i * 2 + 1) * 12].iter().sum::<f32>())
            .sum::<f32>()
            / 36.0;
        assert!((mean0 - 0.2).abs() < 1e-4, "{mean0}");
        let r: Act = dev.tensor_from_vec(rv.clone(), shape);
        let grads = (y * r).sum().backward();
        let gx = grads.get(&x_in).as_vec();
        let gg = grads.get(&bn.scale.value).as_vec();
        let gb = grads.get(&bn.shift.value).as_vec();
        let eps = 1e-2f32;
        for i in (0..n).step_by(5) {
            let (mut xp, mut xm) = (xv.clone(), xv.clone());
            xp[i] += eps;
            xm[i] -= eps;
            let num = (loss(&mut bn, &xp) - loss(&mut bn, &xm)) / (2.0 * eps as f64);
            assert!(
                (num - gx[i] as f64).abs() < 2e-2 * (1.0 + num.abs()),
                "dx[{i}] {num} vs {}",
                gx[i]
            );
        }
        for ch in 0..2 {
            let base = bn.scale.to_vec();
            let mut p = base.clone();
            p[ch] += eps;
            bn.scale.set(&p).unwrap();
            let lp = loss(&mut bn, &xv);
            p[ch] -= 2.0 * eps;
            bn.scale.set(&p).unwrap();
            let lm = loss(&mut bn, &xv);
            bn.scale.set(&base).unwrap();
            let num = (lp - lm) / (2.0 * eps as f64);
            assert!(
                (num - gg[ch] as f64).abs() < 2e-2 * (1.0 + num.abs()),
                "dγ {num} vs {}",
                gg[ch]
            );
            let expect_gb: f32 = (0..3)
                .map(|i| {
                    rv[(i * 2 + ch) * 12..(i * 2 + ch + 1) * 12]
                        .iter()
                        .sum::<f32>()
                })
                .sum();
            assert!((expect_gb - gb[ch]).abs() < 1e-4);
        }
    }

    #[test]
    fn running_statistics_follow_pytorch_momentum_and_eval_uses_them() {
        let dev = Dev::default();
        let mut bn = BatchNorm2d::new(&dev, "bn", 1);
        // one channel, values 1..=4: mean 2.5, biased var 1.25, unbiased 5/3
        let x: Act = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0], (1, 1, 2, 2));
        bn.forward(x.clone(), &Ctx::train(0)).unwrap();
        assert!((bn.running_mean.to_vec()[0] - 0.25).abs() < 1e-6);
        assert!((bn.running_var.to_vec()[0] - (0.9 + 0.1 * 5.0 / 3.0)).abs() < 1e-6);
        let y = bn.forward(x, &Ctx::eval()).unwrap().as_vec();
        let s = 1.0 / (bn.running_var.to_vec()[0] + 1e-5).sqrt();
        assert!((y[0] - (1.0 - 0.25) * s).abs() < 1e-5);
    }
}
