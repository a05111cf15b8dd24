//! Small custom ops and the plumbing every custom op shares.
//!
//! The recipe (see CONVENTIONS.md, "Custom ops on dfdx 0.13"): split the tape off the input,
//! compute the output on host slices, build it with `try_tensor_from_vec`, register a backward
//! closure that reads the output gradient with `Gradients::get` and accumulates into the
//! input's gradient with `get_or_alloc_mut`, and put the tape back on the output. With a
//! `NoneTape` input the backward closure is never built.

use dfdx::prelude::*;
use rand::Rng;

use super::{to_host, Act, Dev, Param, Shape4};
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

/// Element-wise ReLU (dfdx's own, it is shape-generic).
///
/// # Shapes
/// (B, C, H, W) → (B, C, H, W).
pub fn relu<T: Tape<f32, Cpu>>(x: Act<T>) -> Act<T> {
    x.relu()
}

/// Element-wise sum of two maps of the same shape (residual connections).
///
/// # Shapes
/// (B, C, H, W) + (B, C, H, W) → (B, C, H, W).
///
/// # Errors
/// [`GmmSegError::Shape`] when the shapes differ.
pub fn add<T: Tape<f32, Cpu> + Merge<T>>(a: Act<T>, b: Act<T>) -> Result<Act<T>> {
    if a.shape() != b.shape() {
        return Err(GmmSegError::shape(
            "add",
            format!("{:?} vs {:?}", a.shape(), b.shape()),
        ));
    }
    Ok(a.try_add(b)?)
}

/// Concatenates maps along channels.
///
/// # Shapes
/// (B, C1, H, W) ‖ (B, C2, H, W) → (B, C1 + C2, H, W).
///
/// # Errors
/// [`GmmSegError::Shape`] when batch or spatial sizes differ.
pub fn concat_channels<T: Tape<f32, Cpu> + Merge<T>>(a: Act<T>, b: Act<T>) -> Result<Act<T>> {
    let (ba, ca, ha, wa) = *a.shape();
    let (bb, cb, hb, wb) = *b.shape();
    if (ba, ha, wa) != (bb, hb, wb) {
        return Err(GmmSegError::shape(
            "concat_channels",
            format!("{:?} vs {:?}", a.shape(), b.shape()),
        ));
    }
    let (a, ta) = a.split_tape();
    let (b, tb) = b.split_tape();
    let mut tape = ta.merge(tb);
    let av = to_host(&a);
    let bv = to_host(&b);
    let hw = ha * wa;
    let c = ca + cb;
    let mut out = vec![0.0f32; ba * c * hw];
    for n in 0..ba {
        out[n * c * hw..n * c * hw + ca * hw].copy_from_slice(&av[n * ca * hw..(n + 1) * ca * hw]);
        out[n * c * hw + ca * hw..(n + 1) * c * hw]
            .copy_from_slice(&bv[n * cb * hw..(n + 1) * cb * hw]);
    }
    let y = a.device().try_tensor_from_vec(out, (ba, c, ha, wa))?;
    if T::OWNS_TAPE {
        let y_id = y.clone();
        tape.add_backward_op(move |grads| {
            let gy = grad_of(grads, &y_id)?;
            {
                let ga = grads.get_or_alloc_mut(&a)?;
                for n in 0..ba {
                    for (d, s) in ga[n * ca * hw..(n + 1) * ca * hw]
                        .iter_mut()
                        .zip(&gy[n * c * hw..n * c * hw + ca * hw])
                    {
                        *d += s;
                    }
                }
            }
            let gb = grads.get_or_alloc_mut(&b)?;
            for n in 0..ba {
                for (d, s) in gb[n * cb * hw..(n + 1) * cb * hw]
                    .iter_mut()
                    .zip(&gy[n * c * hw + ca * hw..(n + 1) * c * hw])
                {
                    *d += s;
                }
            }
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}

/// Channel dropout (PyTorch `Dropout2d`, the reference code's choice before the projection):
/// in training each (image, channel) map is zeroed with probability `p` and the survivors are
/// scaled by 1/(1−p); in evaluation it is the identity. Uses `rng` so runs are reproducible.
///
/// # Shapes
/// (B, C, H, W) → (B, C, H, W).
pub fn dropout2d<T: Tape<f32, Cpu>>(
    x: Act<T>,
    p: f32,
    train: bool,
    rng: &mut impl Rng,
) -> Result<Act<T>> {
    if !train || p <= 0.0 {
        return Ok(x);
    }
    let (b, c, h, w) = *x.shape();
    let hw = h * w;
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..b * c)
        .map(|_| if rng.gen::<f32>() < p { 0.0 } else { keep })
        .collect();
    let xv = to_host(&x);
    let mut out = xv;
    for (i, m) in mask.iter().enumerate() {
        out[i * hw..(i + 1) * hw].iter_mut().for_each(|v| *v *= m);
    }
    unary_op(x, (b, c, h, w), out, move || {
        Box::new(move |gy, gx| {
            for (i, m) in mask.iter().enumerate() {
                for (d, s) in gx[i * hw..(i + 1) * hw]
                    .iter_mut()
                    .zip(&gy[i * hw..(i + 1) * hw])
                {
                    *d += s * m;
                }
            }
        })
    })
}

/// (B, D, H, W) channel-major values → (B·H·W, D) pixel rows, row index `(b·H + y)·W + x`.
/// Loops run image by channel by pixel, so there is no division per element.
pub fn nchw_to_rows(values: &[f32], (b, d, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
    let hw = h * w;
    assert_eq!(values.len(), b * d * hw, "buffer is not (B, D, H, W)");
    let mut out = vec![0.0f32; b * hw * d];
    for n in 0..b {
        let rows = &mut out[n * hw * d..(n + 1) * hw * d];
        for c in 0..d {
            let src = &values[(n * d + c) * hw..(n * d + c + 1) * hw];
            for (row, v) in rows.chunks_exact_mut(d.max(1)).zip(src) {
                row[c] = *v;
            }
        }
    }
    out
}

/// Inverse of [`nchw_to_rows`]: (B·H·W, D) pixel rows → (B, D, H, W) channel-major values.
pub fn rows_to_nchw(rows: &[f32], (b, d, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
    let hw = h * w;
    assert_eq!(rows.len(), b * d * hw, "buffer is not (B·H·W, D)");
    let mut out = vec![0.0f32; b * d * hw];
    for n in 0..b {
        let src = &rows[n * hw * d..(n + 1) * hw * d];
        for c in 0..d {
            let dst = &mut out[(n * d + c) * hw..(n * d + c + 1) * hw];
            for (v, row) in dst.iter_mut().zip(src.chunks_exact(d.max(1))) {
                *v = row[c];
            }
        }
    }
    out
}

/// Flattens a feature map into one row per pixel, the layout GMM heads want.
///
/// # Shapes
/// (B, D, H, W) → (B·H·W, D), row index `(b·H + y)·W + x`.
pub fn to_pixels<T: Tape<f32, Cpu>>(x: Act<T>) -> Result<Tensor<(usize, usize), f32, Cpu, T>> {
    let (b, d, h, w) = *x.shape();
    let hw = h * w;
    let out = nchw_to_rows(&to_host(&x), (b, d, h, w));
    unary_op(x, (b * hw, d), out, move || {
        Box::new(move |gy, gx| {
            for n in 0..b {
                for c in 0..d {
                    let dst = &mut gx[(n * d + c) * hw..(n * d + c + 1) * hw];
                    for (p, v) in dst.iter_mut().enumerate() {
                        *v += gy[(n * hw + p) * d + c];
                    }
                }
            }
        })
    })
}

/// Inverse of [`to_pixels`].
///
/// # Shapes
/// (B·H·W, D) → (B, D, H, W).
///
/// # Errors
/// [`GmmSegError::Shape`] when the row count is not B·H·W.
pub fn from_pixels<T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize), f32, Cpu, T>,
    b: usize,
    h: usize,
    w: usize,
) -> Result<Act<T>> {
    let (n, d) = *x.shape();
    if n != b * h * w {
        return Err(GmmSegError::shape(
            "from_pixels",
            format!("{n} rows, expected {b}·{h}·{w}"),
        ));
    }
    let hw = h * w;
    let out = rows_to_nchw(&to_host(&x), (b, d, h, w));
    unary_op(x, (b, d, h, w), out, move || {
        Box::new(move |gy, gx| {
            for i in 0..b {
                for c in 0..d {
                    for p in 0..hw {
                        gx[(i * hw + p) * d + c] += gy[(i * d + c) * hw + p];
                    }
                }
            }
        })
    })
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

/// The device of a parameter (all live on one [`Dev`]).
#[allow(dead_code)]
pub(crate) fn dev_of(p: &Param) -> Dev {
    p.value.device().clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn pixel_rows_by_hand_and_back() {
        // (B, D, H, W) = (2, 2, 1, 2): image 0 channels [1 2] [3 4], image 1 [5 6] [7 8].
        let nchw = [1., 2., 3., 4., 5., 6., 7., 8.];
        let rows = nchw_to_rows(&nchw, (2, 2, 1, 2));
        assert_eq!(rows, vec![1., 3., 2., 4., 5., 7., 6., 8.]);
        assert_eq!(rows_to_nchw(&rows, (2, 2, 1, 2)), nchw.to_vec());
    }

    #[test]
    fn dropout2d_drops_whole_channels_scales_survivors_and_is_identity_in_eval() {
        let dev = Dev::default();
        let x: Act = dev.ones_like(&(2, 8, 3, 3));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let x_in = x.clone();
        let y = dropout2d(x.leaky_trace(), 0.5, true, &mut rng).unwrap();
        let yv = y.as_vec();
        let mut dropped = 0;
        for ch in yv.chunks(9) {
            assert!(ch.iter().all(|&v| v == ch[0]) && (ch[0] == 0.0 || ch[0] == 2.0));
            dropped += (ch[0] == 0.0) as usize;
        }
        assert!(dropped > 0 && dropped < 16);
        let g = y.sum().backward().get(&x_in).as_vec();
        assert_eq!(g, yv, "gradient of Σ y is the mask");
        let e = dropout2d(x_in.clone(), 0.5, false, &mut rng).unwrap();
        assert_eq!(e.as_vec(), x_in.as_vec());
    }

    #[test]
    fn concat_and_pixel_layouts_round_trip_with_gradients() {
        let dev = Dev::default();
        let a: Act = dev.tensor_from_vec((0..12).map(|v| v as f32).collect(), (2, 1, 2, 3));
        let b: Act = dev.tensor_from_vec((0..24).map(|v| 100.0 + v as f32).collect(), (2, 2, 2, 3));
        let (a_in, b_in) = (a.clone(), b.clone());
        let c = concat_channels(a.leaky_trace(), b.leaky_trace()).unwrap();
        assert_eq!(*c.shape(), (2, 3, 2, 3));
        let cv = c.as_vec();
        assert_eq!(&cv[..6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(cv[6], 100.0);
        assert_eq!(cv[18], 6.0);
        let p = to_pixels(c).unwrap();
        assert_eq!(*p.shape(), (12, 3));
        let pv = p.as_vec();
        assert_eq!(&pv[..3], &[0.0, 100.0, 106.0]);
        let back = from_pixels(p, 2, 2, 3).unwrap();
        assert_eq!(back.as_vec(), cv);
        let w: Act = dev.tensor_from_vec((0..36).map(|v| v as f32).collect(), (2, 3, 2, 3));
        let grads = (back * w).sum().backward();
        let ga = grads.get(&a_in).as_vec();
        let gb = grads.get(&b_in).as_vec();
        assert_eq!(&ga[..6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(&ga[6..], &[18.0, 19.0, 20.0, 21.0, 22.0, 23.0]);
        assert_eq!(gb[0], 6.0);
        assert!(concat_channels(a_in, dev.zeros_like(&(2, 1, 2, 2))).is_err());
    }
}
