//! AdamW and SGD over any [`Params`], with state kept by parameter name so that it can be
//! saved in checkpoints and restored exactly (dfdx 0.13's own `Adam` keeps its moments in
//! private fields, which would make resume inexact).
//!
//! - AdamW (Loshchilov & Hutter; PyTorch's `AdamW`): `p ← p − lr·wd·p`, then Adam with bias
//!   correction: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
//!   `p ← p − lr·m̂/(√v̂ + ε)`.
//! - SGD (PyTorch's `SGD` with momentum, L2 decay): `g ← g + wd·p`, `b ← μb + g` (b = g at the
//!   first step), `p ← p − lr·b`.
//!
//! Weight decay applies to [`ParamKind::Weight`] only; [`ParamKind::Buffer`]s are skipped.
//! Parameters named `head.*` use `lr × head_lr_mult`.

use std::collections::BTreeMap;

use dfdx::prelude::*;

use super::config::{OptimConfig, OptimizerKind};
use crate::error::{GmmSegError, Result};
use crate::nn::{to_host, ParamKind, Params};

/// Optimiser state: step count and per-parameter slots (`m`, `v` for AdamW; `b` for SGD).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Optimizer {
    /// Optimiser steps taken (Adam's bias-correction t).
    pub t: u64,
    /// Slot name (`m.<param>`, `v.<param>`, `b.<param>`) → values.
    pub state: BTreeMap<String, Vec<f32>>,
}

impl Optimizer {
    /// Fresh state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Allocates a gradient buffer for every trainable parameter, so that `Gradients::get`
    /// never panics on a parameter that a forward pass happened not to use.
    ///
    /// # Errors
    /// [`GmmSegError::Device`] on allocation failure.
    pub fn alloc_grads(model: &dyn Params) -> Result<Gradients<f32, Cpu>> {
        let mut grads = Gradients::leaky();
        let mut err = None;
        model.visit(&mut |p| {
            if p.kind != ParamKind::Buffer {
                if let Err(e) = grads.try_alloc_for(&p.value) {
                    err = Some(e);
                }
            }
        });
        match err {
            Some(e) => Err(e.into()),
            None => Ok(grads),
        }
    }

    /// One update of every trainable parameter of `model` with learning rate `lr`.
    ///
    /// # Errors
    /// [`GmmSegError::NonFinite`] naming the parameter whose gradient holds NaN/inf (nothing
    /// is updated then).
    pub fn step(
        &mut self,
        cfg: &OptimConfig,
        model: &mut dyn Params,
        grads: &Gradients<f32, Cpu>,
        lr: f64,
    ) -> Result<()> {
        // check first, so that a bad gradient leaves the model untouched
        let mut bad = None;
        model.visit(&mut |p| {
            if bad.is_none() && p.kind != ParamKind::Buffer {
                let g = to_host(&grads.get(&p.value));
                if let Some(i) = g.iter().position(|v| !v.is_finite()) {
                    bad = Some((p.name.clone(), i));
                }
            }
        });
        if let Some((what, index)) = bad {
            return Err(GmmSegError::NonFinite {
                what: format!("gradient of {what}"),
                index,
            });
        }
        self.t += 1;
        let t = self.t as f64;
        let state = &mut self.state;
        let mut err = None;
        model.visit_mut(&mut |p| {
            if p.kind == ParamKind::Buffer || err.is_some() {
                return;
            }
            let g = to_host(&grads.get(&p.value));
            let mut w = p.to_vec();
            let lr = if p.name.starts_with("head.") {
                lr * cfg.head_lr_mult
            } else {
                lr
            };
            let wd = if p.kind == ParamKind::Weight {
                cfg.weight_decay
            } else {
                0.0
            };
            match cfg.kind {
                OptimizerKind::Adamw => {
                    let [b1, b2] = cfg.betas;
                    let (c1, c2) = (1.0 - b1.powf(t), 1.0 - b2.powf(t));
                    let m = state
                        .entry(format!("m.{}", p.name))
                        .or_insert_with(|| vec![0.0; g.len()]);
                    for (mi, gi) in m.iter_mut().zip(&g) {
                        *mi = (b1 * *mi as f64 + (1.0 - b1) * *gi as f64) as f32;
                    }
                    let m = m.clone();
                    let v = state
                        .entry(format!("v.{}", p.name))
                        .or_insert_with(|| vec![0.0; g.len()]);
                    for (vi, gi) in v.iter_mut().zip(&g) {
                        *vi = (b2 * *vi as f64 + (1.0 - b2) * (*gi as f64).powi(2)) as f32;
                    }
                    for ((wi, mi), vi) in w.iter_mut().zip(&m).zip(v.iter()) {
                        let mut x = *wi as f64 * (1.0 - lr * wd);
                        x -= lr * (*mi as f64 / c1) / ((*vi as f64 / c2).sqrt() + cfg.eps);
                        *wi = x as f32;
                    }
                }
                OptimizerKind::Sgd => {
                    let first = !state.contains_key(&format!("b.{}", p.name));
                    let b = state
                        .entry(format!("b.{}", p.name))
                        .or_insert_with(|| vec![0.0; g.len()]);
                    for ((bi, gi), wi) in b.iter_mut().zip(&g).zip(w.iter_mut()) {
                        let gd = *gi as f64 + wd * *wi as f64;
                        let nb = if first {
                            gd
                        } else {
                            cfg.momentum * *bi as f64 + gd
                        };
                        *bi = nb as f32;
                        *wi = (*wi as f64 - lr * nb) as f32;
                    }
                }
            }
            if let Err(e) = p.set(&w) {
                err = Some(e);
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::{Dev, Param};

    struct One(Param);
    impl Params for One {
        fn visit(&self, f: &mut dyn FnMut(&crate::nn::Param)) {
            f(&self.0)
        }
        fn visit_mut(&mut self, f: &mut dyn FnMut(&mut crate::nn::Param)) {
            f(&mut self.0)
        }
    }

    fn grads_of(m: &One, k: f32) -> Gradients<f32, Cpu> {
        // L = k · Σ p²/2  ⇒ ∂L/∂p = k·p
        let g = Optimizer::alloc_grads(m).unwrap();
        let x = m.0.value.clone().traced(g);
        (x.square() * (k * 0.5)).sum().backward()
    }

    #[test]
    fn adamw_first_step_matches_closed_form() {
        // step 1: m̂ = g, v̂ = g² ⇒ p ← p(1 − lr·wd) − lr·g/(|g| + ε)
        let dev = Dev::default();
        let mut m = One(Param::new(
            &dev,
            "w",
            &[2],
            vec![1.0, -2.0],
            ParamKind::Weight,
        ));
        let cfg = OptimConfig {
            weight_decay: 0.1,
            ..OptimConfig::default()
        };
        let mut opt = Optimizer::new();
        let g = grads_of(&m, 1.0);
        opt.step(&cfg, &mut m, &g, 0.01).unwrap();
        let w = m.0.to_vec();
        assert!((w[0] - (1.0 * (1.0 - 0.001) - 0.01)).abs() < 1e-6, "{w:?}");
        assert!((w[1] - (-2.0 * (1.0 - 0.001) + 0.01)).abs() < 1e-6, "{w:?}");
        assert_eq!(opt.t, 1);
        assert!(opt.state.contains_key("m.w") && opt.state.contains_key("v.w"));
    }

    #[test]
    fn sgd_momentum_matches_pytorch_recurrence() {
        let dev = Dev::default();
        let mut m = One(Param::new(&dev, "w", &[1], vec![1.0], ParamKind::NoDecay));
        let cfg = OptimConfig {
            kind: OptimizerKind::Sgd,
            weight_decay: 0.5,
            ..OptimConfig::default()
        };
        let mut opt = Optimizer::new();
        // NoDecay: no weight decay. g = p. Step 1: b = 1, p = 1 − 0.1 = 0.9.
        // Step 2: g = 0.9, b = 0.9·1 + 0.9 = 1.8, p = 0.9 − 0.18 = 0.72.
        for _ in 0..2 {
            let g = grads_of(&m, 1.0);
            opt.step(&cfg, &mut m, &g, 0.1).unwrap();
        }
        assert!((m.0.to_vec()[0] - 0.72).abs() < 1e-6);
    }

    #[test]
    fn head_parameters_use_the_head_learning_rate_multiplier() {
        let dev = Dev::default();
        for (name, expect) in [("w", 0.9f32), ("head.w", 0.0)] {
            let mut m = One(Param::new(&dev, name, &[1], vec![1.0], ParamKind::NoDecay));
            let cfg = OptimConfig {
                kind: OptimizerKind::Sgd,
                head_lr_mult: 10.0,
                ..OptimConfig::default()
            };
            let g = grads_of(&m, 1.0);
            Optimizer::new().step(&cfg, &mut m, &g, 0.1).unwrap();
            assert!((m.0.to_vec()[0] - expect).abs() < 1e-6, "{name}");
        }
    }

    #[test]
    fn non_finite_gradient_is_refused_without_update() {
        let dev = Dev::default();
        let mut m = One(Param::new(&dev, "w", &[1], vec![1.0], ParamKind::Weight));
        let mut opt = Optimizer::new();
        let g = grads_of(&m, f32::NAN);
        let r = opt.step(&OptimConfig::default(), &mut m, &g, 0.1);
        assert!(matches!(r, Err(GmmSegError::NonFinite { .. })));
        assert_eq!(m.0.to_vec(), vec![1.0]);
        assert_eq!(opt.t, 0);
    }
}
