//! The log-likelihood as a differentiable dfdx op (CPU): gradients flow into the features,
//! never into the GMM parameters, which EM owns (the paper's hybrid training).
//!
//! Forward: `ℓ = [x⊙x, x] · R + b` (see [`LogLikTable`]). Backward, with G = ∂L/∂ℓ (N, K):
//! `∂L/∂x = 2 x ⊙ (G Rᵀ)[:, :D] + (G Rᵀ)[:, D:]` — one more GEMM of the same size.
//!
//! A CUDA build would add the same two GEMMs on the device; the op is written against
//! `Cpu` because the stable dfdx API exposes raw buffers only there.

use std::sync::Arc;

use dfdx::prelude::*;

use super::likelihood::LogLikTable;
use crate::error::{GmmSegError, Result};

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
    let (x, mut tape) = x.split_tape();
    let x = x.contiguous();
    let xs: Vec<f32> = crate::nn::to_host(&x);
    let mut out = vec![0f32; n * k];
    table.compute_into(&xs, &mut out);
    let dev = x.device().clone();
    let out = dev.tensor_from_vec(out, (n, k));
    if T::OWNS_TAPE {
        let x_ghost = x.ghost();
        let out_ghost = out.ghost();
        let table = Arc::clone(table);
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&out_ghost)?;
            let g = crate::nn::to_host(&grads.get(&out_ghost));
            let gx = backward(&xs, &g, &table);
            let grad_x = grads.get_or_alloc_mut(&x_ghost)?;
            for (a, b) in grad_x.iter_mut().zip(gx) {
                *a += b;
            }
            Ok(())
        });
    }
    Ok(out.put_tape(tape))
}

/// ∂L/∂x from the output gradient `g` (N, K) and the features `x` (N, D).
fn backward(x: &[f32], g: &[f32], table: &LogLikTable) -> Vec<f32> {
    let d = table.dim();
    let k = table.num_classes() * table.components();
    let n = x.len() / d;
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
    let mut out = vec![0f32; n * d];
    for i in 0..n {
        for j in 0..d {
            out[i * d + j] = 2.0 * x[i * d + j] * gr[i * 2 * d + j] + gr[i * 2 * d + d + j];
        }
    }
    out
}
