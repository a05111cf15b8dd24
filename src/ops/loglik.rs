//! The log-likelihood of N features under all C·M components in GEMM form, and its two
//! differentiable ops (CPU).
//!
//! With w = 1/σ² (per component and dimension),
//!
//! ```text
//! log π_k N(x; μ_k, σ_k) = b_k + Σ_d x_d² (−½ w_kd) + Σ_d x_d (μ_kd w_kd)
//! b_k = log π_k − ½ Σ_d [log(2π σ²_kd) + μ_kd² w_kd]
//! ```
//!
//! so the whole (N, C·M) table is one matrix product `[x⊙x, x] · R` with R of shape
//! (2D, C·M), plus a per-component bias. The product goes through [`super::gemm`],
//! row-chunked to bound the temporary `[x⊙x, x]` and run in parallel.
//!
//! (The GEMM form trades precision for speed when |μ| ≫ σ; `gmm::likelihood` keeps the
//! exact per-pixel form for the one class a pixel is scored against.)
//!
//! # Differentiable ops
//! [`log_likelihood`] records the table on a dfdx tape: gradients flow into the features,
//! never into the GMM parameters, which EM owns (the paper's hybrid training).
//!
//! Forward: `ℓ = [x⊙x, x] · R + b` (see [`LogLikTable`]). Backward, with G = ∂L/∂ℓ (N, K):
//! `∂L/∂x = 2 x ⊙ (G Rᵀ)[:, :D] + (G Rᵀ)[:, D:]` — one more GEMM of the same size.
//!
//! [`class_log_likelihood_nchw`] fuses the whole paper-flavour head into one op: the
//! channel-major feature map goes in, class scores `max_m` (or `logsumexp_m`) come out in
//! the same layout. It skips the pixel-row copies on the tape and the (N, C·M) component
//! tensor, and under `max` its backward is a gather of the winning components' columns of R
//! (C rows per pixel instead of a GEMM over all C·M).
//!
//! A CUDA build would add the same two GEMMs on the device; the ops are written against
//! `Cpu` because the stable dfdx API exposes raw buffers only there.

use std::sync::Arc;

use dfdx::prelude::*;
use ndarray::{Array2, ArrayView2, ArrayView3};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::gemm::{matmul, parallelism_for, MatMut, MatRef, PAR_MIN_ROWS};
use super::tape::unary_op;
use super::tensor::{to_host, Act};
use crate::error::{GmmSegError, Result};

/// ln(2π), in the Gaussian's normalising constant.
pub(crate) const LN_2PI: f32 = 1.837_877_1;

/// Rows per GEMM chunk: bounds the `[x⊙x, x]` temporary to `ROW_CHUNK · 2D` floats.
pub(crate) const ROW_CHUNK: usize = 16_384;

/// How a class score is reduced from its M component log-likelihoods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reduction {
    /// Winner-take-all: `max_m (log π_cm + log N(x; μ_cm, σ_cm))` (the paper and its code).
    Max,
    /// The exact mixture: `logsumexp_m (log π_cm + log N(x; μ_cm, σ_cm))`.
    LogSumExp,
}

/// Precomputed GEMM operands for evaluating log π_k N(x; μ_k, σ_k) for all k = (c, m).
#[derive(Clone, Debug)]
pub struct LogLikTable {
    /// (2D, K) row-major: rows `0..D` hold −½w, rows `D..2D` hold μ⊙w.
    rhs: Vec<f32>,
    /// (K,) the constant b_k.
    bias: Vec<f32>,
    dim: usize,
    num_classes: usize,
    components: usize,
}

impl LogLikTable {
    /// Precomputes the operands of the GEMM form from the (C, M, D) means and variances and
    /// the (C, M) log mixture weights.
    ///
    /// # Panics
    /// If the shapes disagree (the GMM state keeps them consistent).
    pub fn new(
        means: ArrayView3<'_, f32>,
        variances: ArrayView3<'_, f32>,
        log_weights: ArrayView2<'_, f32>,
    ) -> Self {
        let (c, m, d) = means.dim();
        assert_eq!(
            variances.dim(),
            (c, m, d),
            "variances do not match the means"
        );
        assert_eq!(
            log_weights.dim(),
            (c, m),
            "log weights do not match the means"
        );
        let k = c * m;
        let mut rhs = vec![0f32; 2 * d * k];
        let mut bias = vec![0f32; k];
        for ci in 0..c {
            for mi in 0..m {
                let col = ci * m + mi;
                let mut b = log_weights[[ci, mi]];
                for di in 0..d {
                    let var = variances[[ci, mi, di]];
                    let mu = means[[ci, mi, di]];
                    let w = 1.0 / var;
                    rhs[di * k + col] = -0.5 * w;
                    rhs[(d + di) * k + col] = mu * w;
                    b -= 0.5 * (LN_2PI + var.ln() + mu * mu * w);
                }
                bias[col] = b;
            }
        }
        Self {
            rhs,
            bias,
            dim: d,
            num_classes: c,
            components: m,
        }
    }

    /// Feature dimension D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of classes C.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Components per class M.
    pub fn components(&self) -> usize {
        self.components
    }

    /// The (2D, C·M) row-major right-hand operand (−½w rows, then μ⊙w rows).
    pub(crate) fn rhs(&self) -> &[f32] {
        &self.rhs
    }

    /// `out[n, k] = log π_k N(x_n; μ_k, σ_k)` for `x` row-major (N, D) and `out` (N, C·M).
    ///
    /// # Panics
    /// If `x.len() != n·D` or `out.len() != n·C·M` (callers check shapes first).
    pub fn compute_into(&self, x: &[f32], out: &mut [f32]) {
        let d = self.dim;
        let k = self.bias.len();
        assert_eq!(x.len() % d, 0, "feature buffer is not a multiple of D");
        let n = x.len() / d;
        assert_eq!(out.len(), n * k, "output buffer has the wrong length");
        let mut lhs = vec![0f32; ROW_CHUNK.min(n.max(1)) * 2 * d];
        for (x_chunk, out_chunk) in x.chunks(ROW_CHUNK * d).zip(out.chunks_mut(ROW_CHUNK * k)) {
            let rows = x_chunk.len() / d;
            let lhs = &mut lhs[..rows * 2 * d];
            lhs.par_chunks_mut(2 * d)
                .zip(x_chunk.par_chunks(d))
                .with_min_len(PAR_MIN_ROWS)
                .for_each(|(l, xr)| {
                    for (i, &v) in xr.iter().enumerate() {
                        l[i] = v * v;
                        l[d + i] = v;
                    }
                });
            self.gemm_into(lhs, out_chunk);
        }
    }

    /// [`LogLikTable::compute`] on a channel-major (B, D, H, W) feature map, as a network
    /// produces it: the GEMM operand is built straight from it, skipping the (B·H·W, D) copy.
    /// Rows of the (B·H·W, C·M) result are pixels in the order `(b·H + y)·W + x`.
    ///
    /// # Panics
    /// If `values.len() != B·D·H·W` or D is not the table's.
    pub fn compute_nchw(
        &self,
        values: &[f32],
        (b, d, h, w): (usize, usize, usize, usize),
    ) -> Array2<f32> {
        assert_eq!(
            d, self.dim,
            "feature map has D = {d}, the GMM has D = {}",
            self.dim
        );
        assert_eq!(values.len(), b * d * h * w, "buffer is not (B, D, H, W)");
        const PIXEL_BLOCK: usize = 64;
        let hw = h * w;
        let k = self.bias.len();
        let mut out = vec![0f32; b * hw * k];
        let mut lhs = vec![0f32; ROW_CHUNK.min(hw.max(1)) * 2 * d];
        for (image, out_image) in values.chunks(d * hw.max(1)).zip(out.chunks_mut(hw * k)) {
            for (start, out_chunk) in (0..hw)
                .step_by(ROW_CHUNK)
                .zip(out_image.chunks_mut(ROW_CHUNK * k))
            {
                let rows = out_chunk.len() / k.max(1);
                let lhs = &mut lhs[..rows * 2 * d];
                // Blocks of pixels in parallel; within one, channel by channel so that the
                // reads of the channel-major map are contiguous.
                lhs.par_chunks_mut(2 * d * PIXEL_BLOCK)
                    .enumerate()
                    .with_min_len(PAR_MIN_ROWS / PIXEL_BLOCK)
                    .for_each(|(blk, l)| {
                        let first = start + blk * PIXEL_BLOCK;
                        for c in 0..d {
                            let src = &image[c * hw + first..c * hw + first + l.len() / (2 * d)];
                            for (row, &v) in l.chunks_exact_mut(2 * d).zip(src) {
                                row[c] = v * v;
                                row[d + c] = v;
                            }
                        }
                    });
                self.gemm_into(lhs, out_chunk);
            }
        }
        Array2::from_shape_vec((b * hw, k), out).expect("shape matches")
    }

    /// `out = bias + lhs · rhs` for `lhs` (rows, 2D) = `[x⊙x, x]` and `out` (rows, K).
    fn gemm_into(&self, lhs: &[f32], out_chunk: &mut [f32]) {
        let d = self.dim;
        let k = self.bias.len();
        let rows = lhs.len() / (2 * d);
        out_chunk
            .par_chunks_mut(k)
            .with_min_len(PAR_MIN_ROWS)
            .for_each(|row| row.copy_from_slice(&self.bias));
        matmul(
            MatMut::row_major(out_chunk, rows, k),
            true,
            MatRef::row_major(lhs, rows, 2 * d),
            MatRef::row_major(&self.rhs, 2 * d, k),
            parallelism_for(rows, 2 * d, k),
        );
    }

    /// `log π_k N(x_n; μ_k, σ_k)` for all n and k = c·M + m, shape (N, C·M).
    ///
    /// # Panics
    /// If `x` has not D columns.
    pub fn compute(&self, x: ArrayView2<'_, f32>) -> Array2<f32> {
        assert_eq!(
            x.ncols(),
            self.dim,
            "features have {} columns, the GMM has D = {}",
            x.ncols(),
            self.dim
        );
        let x = x.as_standard_layout();
        let n = x.nrows();
        let mut out = vec![0f32; n * self.bias.len()];
        self.compute_into(x.as_slice().expect("standard layout"), &mut out);
        Array2::from_shape_vec((n, self.bias.len()), out).expect("shape matches")
    }
}

/// log π_k N(x_n; μ_k, σ_k) for all n and k = c·M + m, shape (N, C·M), recorded on `x`'s tape.
///
/// # Shapes
/// `x`: (N, D) → (N, C·M).
pub fn log_likelihood<T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize), f32, Cpu, T>,
    table: &Arc<LogLikTable>,
) -> Result<Tensor<(usize, usize), f32, Cpu, T>> {
    let (n, d) = *x.shape();
    if d != table.dim() {
        return Err(GmmSegError::shape(
            "features",
            format!("tensor has D = {d}, the GMM has D = {}", table.dim()),
        ));
    }
    let k = table.num_classes() * table.components();
    let x = x.contiguous();
    let xs: Vec<f32> = to_host(&x);
    let mut out = vec![0f32; n * k];
    table.compute_into(&xs, &mut out);
    let table = Arc::clone(table);
    unary_op(x, (n, k), out, move || {
        Box::new(move |g, grad_x| accumulate(grad_x, backward(&xs, g, &table)))
    })
}

/// `dst += src`, element-wise.
fn accumulate(dst: &mut [f32], src: Vec<f32>) {
    for (a, b) in dst.iter_mut().zip(src) {
        *a += b;
    }
}

/// ∂L/∂x from the output gradient `g` (N, K) and the features `x` (N, D).
fn backward(x: &[f32], g: &[f32], table: &LogLikTable) -> Vec<f32> {
    let d = table.dim();
    let n = x.len() / d;
    let gr = gradient_rows(g, table);
    let mut out = vec![0f32; n * d];
    for i in 0..n {
        for j in 0..d {
            out[i * d + j] = 2.0 * x[i * d + j] * gr[i * 2 * d + j] + gr[i * 2 * d + d + j];
        }
    }
    out
}

/// `G Rᵀ` (N, 2D) for a component-level output gradient `G` (N, K): the gradient with
/// respect to the GEMM operand `[x⊙x, x]`.
fn gradient_rows(g: &[f32], table: &LogLikTable) -> Vec<f32> {
    let d = table.dim();
    let k = table.num_classes() * table.components();
    let n = g.len() / k.max(1);
    let mut gr = vec![0f32; n * 2 * d];
    // Rᵀ is R (stored (2D, K) row-major) read column-major.
    matmul(
        MatMut::row_major(&mut gr, n, 2 * d),
        false,
        MatRef::row_major(g, n, k),
        MatRef::transposed(table.rhs(), k, 2 * d),
        parallelism_for(n, k, 2 * d),
    );
    gr
}

/// What the fused op's backward needs besides the features.
enum Saved {
    /// Winning component index per (pixel, class), pixel-major.
    Winners(Vec<u32>),
    /// Within-class softmax weights `exp(ℓ_k − logsumexp_class)` per (pixel, component).
    Weights(Vec<f32>),
}

/// Class scores `reduce_m log π_cm N(x; μ_cm, σ_cm)` of a channel-major feature map,
/// recorded on `x`'s tape: the paper flavour's logits in one op. Gradients flow into the
/// features only; under [`Reduction::Max`] each class sends its gradient to its winning
/// component (the first of equal ones), under [`Reduction::LogSumExp`] to every component by
/// its within-class responsibility.
///
/// # Shapes
/// `x`: (B, D, H, W) → (B, C, H, W).
///
/// # Errors
/// [`GmmSegError::Shape`] when D is not the table's.
pub fn class_log_likelihood_nchw<T: Tape<f32, Cpu>>(
    x: Act<T>,
    table: &Arc<LogLikTable>,
    reduction: Reduction,
) -> Result<Act<T>> {
    let (b, d, h, w) = *x.shape();
    if d != table.dim() {
        return Err(GmmSegError::shape(
            "features",
            format!("feature map has D = {d}, the GMM has D = {}", table.dim()),
        ));
    }
    let (c, m) = (table.num_classes(), table.components());
    let hw = h * w;
    let xs: Vec<f32> = to_host(&x);
    let mut comp = table
        .compute_nchw(&xs, (b, d, h, w))
        .into_raw_vec_and_offset()
        .0;
    let mut out = vec![0f32; b * c * hw];
    let mut winners = vec![0u32; b * hw * c];
    // One image per task: class scores written channel-major; the winners (max) or the
    // within-class weights (logsumexp, in place of the component scores) kept pixel-major.
    out.par_chunks_mut(c * hw)
        .zip(comp.par_chunks_mut(hw * c * m))
        .zip(winners.par_chunks_mut(hw * c))
        .for_each(|((out_img, comp_img), win_img)| {
            for (p, (row, win)) in comp_img
                .chunks_mut(c * m)
                .zip(win_img.chunks_mut(c))
                .enumerate()
            {
                for (ci, (chunk, slot)) in row.chunks_mut(m).zip(win.iter_mut()).enumerate() {
                    let (best, max) = chunk.iter().enumerate().fold(
                        (0usize, f32::NEG_INFINITY),
                        |(bi, bv), (i, &v)| if v > bv { (i, v) } else { (bi, bv) },
                    );
                    *slot = best as u32;
                    out_img[ci * hw + p] = match reduction {
                        Reduction::Max => max,
                        Reduction::LogSumExp if max == f32::NEG_INFINITY => {
                            chunk.fill(0.0);
                            max
                        }
                        Reduction::LogSumExp => {
                            let mut sum = 0f32;
                            for v in chunk.iter_mut() {
                                *v = (*v - max).exp();
                                sum += *v;
                            }
                            for v in chunk.iter_mut() {
                                *v /= sum;
                            }
                            max + sum.ln()
                        }
                    };
                }
            }
        });
    let saved = match reduction {
        Reduction::Max => {
            drop(comp);
            Saved::Winners(winners)
        }
        Reduction::LogSumExp => Saved::Weights(comp),
    };
    let table = Arc::clone(table);
    unary_op(x, (b, c, h, w), out, move || {
        Box::new(move |gy, grad_x| {
            accumulate(grad_x, fused_backward(&xs, gy, saved, &table, (b, d, h, w)))
        })
    })
}

/// ∂L/∂x (B, D, H, W) of [`class_log_likelihood_nchw`] from its output gradient `gy`
/// (B, C, H, W). Takes `saved` by value: the backward runs once, so the logsumexp weights
/// become the component gradient in place.
fn fused_backward(
    xs: &[f32],
    gy: &[f32],
    saved: Saved,
    table: &LogLikTable,
    (b, d, h, w): (usize, usize, usize, usize),
) -> Vec<f32> {
    let (c, m) = (table.num_classes(), table.components());
    let k = c * m;
    let hw = h * w;
    let gr = match saved {
        Saved::Winners(winners) => {
            // Rᵀ as (K, 2D) rows, so that each winner's column is one contiguous axpy.
            let rhs = table.rhs();
            let mut rt = vec![0f32; k * 2 * d];
            for j in 0..2 * d {
                for kk in 0..k {
                    rt[kk * 2 * d + j] = rhs[j * k + kk];
                }
            }
            let mut gr = vec![0f32; b * hw * 2 * d];
            gr.par_chunks_mut(hw * 2 * d)
                .zip(winners.par_chunks(hw * c))
                .zip(gy.par_chunks(c * hw))
                .for_each(|((gr_img, win_img), gy_img)| {
                    for (p, (g_row, win)) in
                        gr_img.chunks_mut(2 * d).zip(win_img.chunks(c)).enumerate()
                    {
                        for (ci, &wi) in win.iter().enumerate() {
                            let g = gy_img[ci * hw + p];
                            if g == 0.0 {
                                continue;
                            }
                            let col = &rt[(ci * m + wi as usize) * 2 * d..][..2 * d];
                            for (a, &r) in g_row.iter_mut().zip(col) {
                                *a += g * r;
                            }
                        }
                    }
                });
            gr
        }
        Saved::Weights(mut g) => {
            g.par_chunks_mut(hw * k)
                .zip(gy.par_chunks(c * hw))
                .for_each(|(g_img, gy_img)| {
                    for (p, row) in g_img.chunks_mut(k).enumerate() {
                        for (ci, chunk) in row.chunks_mut(m).enumerate() {
                            let go = gy_img[ci * hw + p];
                            for v in chunk {
                                *v *= go;
                            }
                        }
                    }
                });
            gradient_rows(&g, table)
        }
    };
    let mut gx = vec![0f32; b * d * hw];
    gx.par_chunks_mut(d * hw)
        .zip(xs.par_chunks(d * hw))
        .zip(gr.par_chunks(hw * 2 * d))
        .for_each(|((gx_img, x_img), gr_img)| {
            for j in 0..d {
                let gx_ch = &mut gx_img[j * hw..(j + 1) * hw];
                let x_ch = &x_img[j * hw..(j + 1) * hw];
                for (p, (o, &xv)) in gx_ch.iter_mut().zip(x_ch).enumerate() {
                    let r = &gr_img[p * 2 * d..];
                    *o = 2.0 * xv * r[j] + r[d + j];
                }
            }
        });
    gx
}
