//! The discriminative GMM head of the paper's Table 4: the same mixture as the generative
//! head, but μ and log σ are trainable parameters updated by SGD together with the network
//! from the cross-entropy alone; no EM, no memory.

use dfdx::prelude::*;
use ndarray::Array2;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use super::density::{density_output, reduce_components};
use super::{Head, HeadOutput};
use crate::error::{GmmSegError, Result};
use crate::gmm::{class_scores, GmmParams, Reduction};
use crate::nn::rowops::Rows;
use crate::nn::{Act, Dev, Param, ParamKind, Params, Tp};
use crate::ops::layout::{from_pixels, to_pixels};
use crate::ops::tape::accumulate_param;

/// Configuration of the discriminative GMM head: its only choice is M (C and D come from the
/// dataset and the network, as for the generative head).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiscGmmConfig {
    /// Components per class M. Default 5, the generative head's, so that Table 4 compares
    /// the same mixture trained two ways.
    pub components: usize,
}

impl Default for DiscGmmConfig {
    fn default() -> Self {
        DiscGmmConfig { components: 5 }
    }
}

/// The discriminative GMM head (Table 4): the same mixture, μ and log σ learned by SGD from
/// the cross-entropy together with the network; uniform weights, no EM.
pub struct DiscGmmHead {
    means: Param,
    log_std: Param,
    classes: usize,
    components: usize,
    dim: usize,
    reduction: Reduction,
    dev: Dev,
}

impl DiscGmmHead {
    /// Means N(0, 1)/√D-scaled, σ = 1 (so initial scores are ~ −½‖x − μ‖²).
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] for zero sizes.
    pub fn new(
        dev: &Dev,
        classes: usize,
        components: usize,
        dim: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        if classes == 0 || components == 0 || dim == 0 {
            return Err(GmmSegError::config(
                "head",
                format!("needs C, M, D ≥ 1, got {classes}, {components}, {dim}"),
            ));
        }
        let k = classes * components;
        let means: Vec<f32> = (0..k * dim).map(|_| StandardNormal.sample(rng)).collect();
        Ok(DiscGmmHead {
            means: Param::new(dev, "head.means", &[k, dim], means, ParamKind::NoDecay),
            log_std: Param::new(
                dev,
                "head.log_std",
                &[k, dim],
                vec![0.0; k * dim],
                ParamKind::NoDecay,
            ),
            classes,
            components,
            dim,
            reduction: Reduction::Max,
            dev: dev.clone(),
        })
    }

    fn params(&self) -> GmmParams {
        let (c, m, d) = (self.classes, self.components, self.dim);
        GmmParams {
            means: ndarray::Array3::from_shape_vec((c, m, d), self.means.to_vec()).expect("shape"),
            variances: ndarray::Array3::from_shape_vec(
                (c, m, d),
                self.log_std
                    .to_vec()
                    .iter()
                    .map(|s| (2.0 * s).exp())
                    .collect(),
            )
            .expect("shape"),
            log_weights: Array2::from_elem((c, m), -(m as f32).ln()),
        }
    }

    /// log π_k N(x; μ_k, σ_k) on the tape, with gradients to x, μ and log σ.
    fn log_likelihood<T: Tape<f32, Cpu>>(&self, x: Rows<T>) -> Result<Rows<T>> {
        let table = self.params().loglik_table();
        let (n, d) = *x.shape();
        if d != self.dim {
            return Err(GmmSegError::shape(
                "features",
                format!("D = {d}, head has D = {}", self.dim),
            ));
        }
        let k = self.classes * self.components;
        let (x, mut tape) = x.split_tape();
        let xs = crate::nn::to_host(&x);
        let mut out = vec![0f32; n * k];
        table.compute_into(&xs, &mut out);
        let y = x.device().try_tensor_from_vec(out, (n, k))?;
        if T::OWNS_TAPE {
            let y_id = y.clone();
            let mu = self.means.to_vec();
            let logs = self.log_std.to_vec();
            let (mu_t, logs_t) = (self.means.value.clone(), self.log_std.value.clone());
            tape.add_backward_op(move |grads| {
                grads.try_alloc_for(&x)?;
                grads.try_alloc_for(&y_id)?;
                let g = crate::nn::to_host(&grads.get(&y_id));
                let mut dx = vec![0f32; n * d];
                let mut gx = vec![0f64; k * d];
                let mut gx2 = vec![0f64; k * d];
                let mut gsum = vec![0f64; k];
                for r in 0..n {
                    let xr = &xs[r * d..(r + 1) * d];
                    for j in 0..k {
                        let gj = g[r * k + j];
                        if gj == 0.0 {
                            continue;
                        }
                        gsum[j] += gj as f64;
                        for t in 0..d {
                            let w = (-2.0 * logs[j * d + t]).exp();
                            dx[r * d + t] += gj * (mu[j * d + t] - xr[t]) * w;
                            gx[j * d + t] += (gj * xr[t]) as f64;
                            gx2[j * d + t] += (gj * xr[t] * xr[t]) as f64;
                        }
                    }
                }
                let mut dmu = vec![0f32; k * d];
                let mut dlogs = vec![0f32; k * d];
                for (j, &gs) in gsum.iter().enumerate() {
                    for t in 0..d {
                        let i = j * d + t;
                        let w = (-2.0 * logs[i] as f64).exp();
                        let m = mu[i] as f64;
                        dmu[i] = (w * (gx[i] - m * gs)) as f32;
                        dlogs[i] = (w * (gx2[i] - 2.0 * m * gx[i] + m * m * gs) - gs) as f32;
                    }
                }
                let gxs = grads.get_or_alloc_mut(&x)?;
                for (a, v) in gxs.iter_mut().zip(dx) {
                    *a += v;
                }
                accumulate_param(grads, &mu_t, &dmu)?;
                accumulate_param(grads, &logs_t, &dlogs)?;
                Ok(())
            });
        }
        Ok(y.put_tape(tape))
    }
}

impl Params for DiscGmmHead {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        f(&self.means);
        f(&self.log_std);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.means);
        f(&mut self.log_std);
    }
}

impl Head for DiscGmmHead {
    fn kind(&self) -> &'static str {
        "disc-gmm"
    }
    fn num_classes(&self) -> usize {
        self.classes
    }
    fn feature_dim(&self) -> usize {
        self.dim
    }
    fn logits_train(&mut self, feats: Act<Tp>) -> Result<Act<Tp>> {
        let (b, _, h, w) = *feats.shape();
        let ll = self.log_likelihood(to_pixels(feats)?)?;
        from_pixels(
            reduce_components(ll, self.classes, self.components, self.reduction),
            b,
            h,
            w,
        )
    }
    fn infer(&self, feats: Act) -> Result<HeadOutput> {
        let (b, d, h, w) = *feats.shape();
        let ll = self
            .params()
            .loglik_table()
            .compute_nchw(&crate::nn::to_host(&feats), (b, d, h, w));
        let class_ll = class_scores(ll.view(), self.components, self.reduction);
        Ok(density_output(&self.dev, &class_ll, &class_ll, (b, h, w)))
    }
}
