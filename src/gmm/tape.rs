//! The log-likelihood as a differentiable dfdx op (CPU): gradients flow into the features,
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
use rayon::prelude::*;

use super::config::Reduction;
use super::likelihood::LogLikTable;
use crate::error::{GmmSegError, Result};
use crate::nn::ops::unary_op;
use crate::nn::Act;

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
    let xs: Vec<f32> = crate::nn::to_host(&x);
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
    // SAFETY: (n × K) · (K × 2D) → (n × 2D), all row-major; Rᵀ is read through strides
    // (R is stored (2D, K) row-major, so Rᵀ[k, j] = R[j, k] at j·K + k).
    unsafe {
        gemm::gemm(
            n,
            2 * d,
            k,
            gr.as_mut_ptr(),
            1,
            (2 * d) as isize,
            false,
            g.as_ptr(),
            1,
            k as isize,
            table.rhs().as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            super::likelihood::gemm_parallelism(n, k, 2 * d),
        );
    }
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
    let xs: Vec<f32> = crate::nn::to_host(&x);
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
