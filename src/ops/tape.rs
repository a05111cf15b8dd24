//! The plumbing every custom op shares.
//!
//! The recipe (dfdx 0.13 has no public custom-op API on stable): split the tape off the input,
//! compute the output on host slices, build it with `try_tensor_from_vec`, register a backward
//! closure that reads the output gradient with `Gradients::get` and accumulates into the
//! input's gradient with `get_or_alloc_mut`, and put the tape back on the output. With a
//! `NoneTape` input the backward closure is never built.

use dfdx::prelude::*;

use super::tensor::{to_host, Param, Shape4};
use crate::error::{GmmSegError, Result};

/// Backward closure of a unary op: `(gy, gx)` where `gx` must be *accumulated* into.
pub(crate) type UnaryBackward = Box<dyn FnOnce(&[f32], &mut [f32])>;

/// Wraps an already computed output `out` of shape `out_shape` as the result of a unary op on
/// `x`, recording `backward` on `x`'s tape.
///
/// `make_backward` is only called when the tape records (training), so ops can skip saving
/// what backward needs in evaluation.
pub(crate) fn unary_op<S1: Shape, S2: Shape, T: Tape<f32, Cpu>>(
    x: Tensor<S1, f32, Cpu, T>,
    out_shape: S2,
    out: Vec<f32>,
    make_backward: impl FnOnce() -> UnaryBackward,
) -> Result<Tensor<S2, f32, Cpu, T>> {
    let (x, mut tape) = x.split_tape();
    let y = x.device().try_tensor_from_vec(out, out_shape)?;
    if T::OWNS_TAPE {
        let backward = make_backward();
        let y_id = y.clone();
        tape.add_backward_op(move |grads| {
            grads.try_alloc_for(&x)?;
            grads.try_alloc_for(&y_id)?;
            let gy = to_host(&grads.get(&y_id));
            let gx = grads.get_or_alloc_mut(&x)?;
            backward(&gy, gx);
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}

/// Accumulates `g` into the gradient of parameter `p` (inside a backward closure).
pub(crate) fn accumulate_param(
    grads: &mut Gradients<f32, Cpu>,
    p: &Tensor<(usize,), f32, Cpu>,
    g: &[f32],
) -> std::result::Result<(), CpuError> {
    let dst = grads.get_or_alloc_mut(p)?;
    for (d, s) in dst.iter_mut().zip(g) {
        *d += s;
    }
    Ok(())
}

/// Gradient of a tensor that `grads` may not hold yet (zeros then).
pub(crate) fn grad_of<S: Shape>(
    grads: &mut Gradients<f32, Cpu>,
    t: &Tensor<S, f32, Cpu>,
) -> std::result::Result<Vec<f32>, CpuError> {
    grads.try_alloc_for(t)?;
    Ok(to_host(&grads.get(t)))
}

/// Checks that `x` is 4-d with `c` channels.
pub(crate) fn expect_channels(what: &str, s: &Shape4, c: usize) -> Result<()> {
    if s.1 != c {
        return Err(GmmSegError::shape(
            what,
            format!("expected {c} input channels, got shape {s:?}"),
        ));
    }
    Ok(())
}

/// A reference to a parameter's storage for use inside backward closures.
pub(crate) fn param_handle(p: &Param) -> Tensor<(usize,), f32, Cpu> {
    p.value.clone()
}
