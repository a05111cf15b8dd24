//! 2-d convolution (cross-correlation, as in PyTorch) on stable dfdx: forward and backward for
//! input, weight and bias, with stride, zero padding and dilation.
//!
//! # Algorithm
//! Per image, im2col unrolls the receptive fields into a matrix `col` of shape
//! (Cin·k·k, Ho·Wo); then
//! - forward: `y_b = W · col_b + b` with W viewed as (Cout, Cin·k·k);
//! - backward: `dW += gy_b · col_bᵀ`, `db += Σ_p gy_b`, `dcol_b = Wᵀ · gy_b`, and col2im
//!   scatters `dcol_b` back into `dx_b`.
//!
//! The GEMMs go through [`super::gemm`] (the `gemm` crate, the one dfdx's own matmul uses).
//! Images are processed in parallel with rayon; per-image weight gradients are summed in a
//! fixed order afterwards, so the result does not depend on thread scheduling (reproducible
//! training). A 1×1 / stride-1 / no-padding convolution skips im2col: `col_b` is the image
//! itself.
//!
//! When gradients are recorded, the forward pass keeps every `col_b` for the backward pass
//! instead of unrolling the input a second time: k² times the input's memory for one step
//! (6 MB for the largest layer of the default network at batch 8, 64×64), against an
//! im2col pass that was 4–5% of a training step (perf, one thread). Inference keeps nothing.

use dfdx::prelude::*;
use rayon::prelude::*;
use std::sync::Arc;

use super::gemm::{matmul, MatMut, MatRef, Parallelism};
use super::tape::{accumulate_param, expect_channels, grad_of, param_handle};
use super::tensor::{to_host, Act, Param};
use crate::error::{GmmSegError, Result};

/// Cumulative wall time spent inside convolution forward and backward passes, for the
/// benchmarks' "share of time in convolution" (two relaxed atomic adds per call).
pub mod profile {
    use std::sync::atomic::{AtomicU64, Ordering};

    static FORWARD_NS: AtomicU64 = AtomicU64::new(0);
    static BACKWARD_NS: AtomicU64 = AtomicU64::new(0);

    pub(super) fn add_forward(ns: u64) {
        FORWARD_NS.fetch_add(ns, Ordering::Relaxed);
    }
    pub(super) fn add_backward(ns: u64) {
        BACKWARD_NS.fetch_add(ns, Ordering::Relaxed);
    }

    /// Seconds spent in convolution (forward, backward) since the last call, and resets.
    pub fn take() -> (f64, f64) {
        let f = FORWARD_NS.swap(0, Ordering::Relaxed);
        let b = BACKWARD_NS.swap(0, Ordering::Relaxed);
        (f as f64 * 1e-9, b as f64 * 1e-9)
    }
}

/// Geometry of a convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConvSpec {
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Square kernel size k.
    pub kernel: usize,
    /// Stride (same in both directions).
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Dilation (spacing of kernel taps).
    pub dilation: usize,
}

impl ConvSpec {
    /// A k×k convolution with "same" padding for stride 1 (`padding = dilation·(k−1)/2`).
    pub fn same(cin: usize, cout: usize, kernel: usize, stride: usize, dilation: usize) -> Self {
        ConvSpec {
            cin,
            cout,
            kernel,
            stride,
            padding: dilation * (kernel - 1) / 2,
            dilation,
        }
    }

    /// A 1×1, stride-1, unpadded convolution (a per-pixel linear map, e.g. a projection).
    pub fn pointwise(cin: usize, cout: usize) -> Self {
        ConvSpec {
            cin,
            cout,
            kernel: 1,
            stride: 1,
            padding: 0,
            dilation: 1,
        }
    }

    /// Output size along one axis, or `None` when the kernel does not fit.
    pub fn out_len(&self, n: usize) -> Option<usize> {
        let span = self.dilation * (self.kernel - 1) + 1;
        let padded = n + 2 * self.padding;
        if padded < span || self.stride == 0 {
            None
        } else {
            Some((padded - span) / self.stride + 1)
        }
    }

    /// Length of one unrolled receptive field, Cin·k·k: the kernel's fan-in.
    pub fn k_len(&self) -> usize {
        self.cin * self.kernel * self.kernel
    }

    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    fn check(&self) -> Result<()> {
        if self.cin == 0
            || self.cout == 0
            || self.kernel == 0
            || self.stride == 0
            || self.dilation == 0
        {
            return Err(GmmSegError::input(
                "ConvSpec",
                format!("channels, kernel, stride and dilation must be ≥ 1, got {self:?}"),
            ));
        }
        Ok(())
    }
}

/// Unrolls image `x` (Cin, H, W) into `col` (Cin·k·k, Ho·Wo), zero outside the image.
fn im2col(x: &[f32], h: usize, w: usize, s: &ConvSpec, ho: usize, wo: usize, col: &mut [f32]) {
    let k = s.kernel;
    let p = ho * wo;
    for ci in 0..s.cin {
        let plane = &x[ci * h * w..(ci + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let row = (ci * k + ky) * k + kx;
                let dst = &mut col[row * p..(row + 1) * p];
                let dy = (ky * s.dilation) as isize - s.padding as isize;
                let dx = (kx * s.dilation) as isize - s.padding as isize;
                for oy in 0..ho {
                    let iy = (oy * s.stride) as isize + dy;
                    let drow = &mut dst[oy * wo..(oy + 1) * wo];
                    if iy < 0 || iy >= h as isize {
                        drow.iter_mut().for_each(|v| *v = 0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * w..(iy as usize + 1) * w];
                    if s.stride == 1 {
                        // contiguous run: valid ox are those with 0 ≤ ox + dx < w
                        let lo = (-dx).clamp(0, wo as isize) as usize;
                        let hi = (w as isize - dx).clamp(0, wo as isize) as usize;
                        drow[..lo].iter_mut().for_each(|v| *v = 0.0);
                        if hi > lo {
                            let a = (lo as isize + dx) as usize;
                            drow[lo..hi].copy_from_slice(&src[a..a + (hi - lo)]);
                        }
                        drow[hi.max(lo)..].iter_mut().for_each(|v| *v = 0.0);
                    } else {
                        for (ox, v) in drow.iter_mut().enumerate() {
                            let ix = (ox * s.stride) as isize + dx;
                            *v = if ix < 0 || ix >= w as isize {
                                0.0
                            } else {
                                src[ix as usize]
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Adjoint of [`im2col`]: accumulates `col` (Cin·k·k, Ho·Wo) into `gx` (Cin, H, W).
fn col2im(col: &[f32], h: usize, w: usize, s: &ConvSpec, ho: usize, wo: usize, gx: &mut [f32]) {
    let k = s.kernel;
    let p = ho * wo;
    for ci in 0..s.cin {
        let plane = &mut gx[ci * h * w..(ci + 1) * h * w];
        for ky in 0..k {
            for kx in 0..k {
                let row = (ci * k + ky) * k + kx;
                let src = &col[row * p..(row + 1) * p];
                let dy = (ky * s.dilation) as isize - s.padding as isize;
                let dx = (kx * s.dilation) as isize - s.padding as isize;
                for oy in 0..ho {
                    let iy = (oy * s.stride) as isize + dy;
                    if iy < 0 || iy >= h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * w..(iy as usize + 1) * w];
                    let srow = &src[oy * wo..(oy + 1) * wo];
                    if s.stride == 1 {
                        // contiguous run, the same bounds as im2col's (vectorises)
                        let lo = (-dx).clamp(0, wo as isize) as usize;
                        let hi = (w as isize - dx).clamp(0, wo as isize) as usize;
                        if hi > lo {
                            let a = (lo as isize + dx) as usize;
                            for (d, v) in dst[a..a + (hi - lo)].iter_mut().zip(&srow[lo..hi]) {
                                *d += v;
                            }
                        }
                        continue;
                    }
                    for (ox, v) in srow.iter().enumerate() {
                        let ix = (ox * s.stride) as isize + dx;
                        if ix >= 0 && ix < w as isize {
                            dst[ix as usize] += v;
                        }
                    }
                }
            }
        }
    }
}

/// How to spread a batch of `b` independent GEMMs over the thread pool: one image per task
/// when there are enough images, otherwise let gemm split each product.
fn inner_parallelism(b: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if b >= threads {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    }
}

/// Convolution of `x` with `weight` (and `bias`).
///
/// # Shapes
/// - `x`: (B, Cin, H, W)
/// - `weight`: (Cout, Cin, k, k) stored flat
/// - `bias`: (Cout)
/// - output: (B, Cout, Ho, Wo) with `Ho = (H + 2p − d(k−1) − 1)/s + 1`.
///
/// # Errors
/// [`GmmSegError::Shape`] when the channels or parameter sizes disagree with `spec`, or the
/// (padded) input is smaller than the kernel span.
pub fn conv2d<T: Tape<f32, Cpu>>(
    x: Act<T>,
    weight: &Param,
    bias: Option<&Param>,
    spec: &ConvSpec,
) -> Result<Act<T>> {
    spec.check()?;
    let (b, cin, h, w) = *x.shape();
    expect_channels("conv2d input", x.shape(), spec.cin)?;
    if weight.numel() != spec.cout * spec.k_len() {
        return Err(GmmSegError::shape(
            &weight.name,
            format!("{:?} does not fit {spec:?}", weight.shape),
        ));
    }
    if let Some(bp) = bias {
        if bp.numel() != spec.cout {
            return Err(GmmSegError::shape(
                &bp.name,
                format!("{:?} does not fit {spec:?}", bp.shape),
            ));
        }
    }
    let (ho, wo) = match (spec.out_len(h), spec.out_len(w)) {
        (Some(a), Some(b)) => (a, b),
        _ => {
            return Err(GmmSegError::shape(
                "conv2d input",
                format!("{h}×{w} is smaller than the kernel span of {spec:?}"),
            ))
        }
    };
    let started = std::time::Instant::now();
    let s = *spec;
    let kl = s.k_len();
    let p = ho * wo;
    let (xin, mut tape) = x.split_tape();
    let xv: Arc<Vec<f32>> = Arc::new(to_host(&xin));
    let wv: Arc<Vec<f32>> = Arc::new(weight.to_vec());
    let bv: Option<Vec<f32>> = bias.map(|p| p.to_vec());

    let mut out = vec![0.0f32; b * s.cout * p];
    let par = inner_parallelism(b);
    let img = cin * h * w;
    // the unrolled images: all of them when the backward pass will read them again, else one
    // scratch per rayon job (im2col overwrites all of it, so no zeroing per image)
    let scratch = if s.is_pointwise() { 0 } else { kl * p };
    let mut saved_cols = vec![0.0f32; if T::OWNS_TAPE { b * scratch } else { 0 }];
    let mut saved_slots: Vec<&mut [f32]> = if T::OWNS_TAPE && scratch > 0 {
        saved_cols.chunks_mut(scratch).collect()
    } else {
        (0..b).map(|_| Default::default()).collect()
    };
    out.par_chunks_mut(s.cout * p)
        .zip(saved_slots.par_iter_mut())
        .enumerate()
        .for_each_init(
            || vec![0.0f32; if T::OWNS_TAPE { 0 } else { scratch }],
            |col_buf, (n, (yb, saved))| {
                let xb = &xv[n * img..(n + 1) * img];
                let col: &[f32] = if s.is_pointwise() {
                    xb
                } else if T::OWNS_TAPE {
                    im2col(xb, h, w, &s, ho, wo, saved);
                    saved
                } else {
                    im2col(xb, h, w, &s, ho, wo, col_buf);
                    col_buf
                };
                matmul(
                    MatMut::row_major(yb, s.cout, p),
                    false,
                    MatRef::row_major(&wv, s.cout, kl),
                    MatRef::row_major(col, kl, p),
                    par,
                );
                if let Some(bv) = &bv {
                    for (co, bias) in bv.iter().enumerate() {
                        yb[co * p..(co + 1) * p].iter_mut().for_each(|v| *v += bias);
                    }
                }
            },
        );
    drop(saved_slots);
    let y = xin.device().try_tensor_from_vec(out, (b, s.cout, ho, wo))?;
    profile::add_forward(started.elapsed().as_nanos() as u64);

    if T::OWNS_TAPE {
        let y_id = y.clone();
        let w_id = param_handle(weight);
        let b_id = bias.map(param_handle);
        tape.add_backward_op(move |grads| {
            let started = std::time::Instant::now();
            let gy = grad_of(grads, &y_id)?;
            let mut gx = vec![0.0f32; b * img];
            // per-image weight gradients, summed in a fixed order afterwards
            let mut gw_parts = vec![0.0f32; b * s.cout * kl];
            gx.par_chunks_mut(img)
                .zip(gw_parts.par_chunks_mut(s.cout * kl))
                .enumerate()
                .for_each_init(
                    || vec![0.0f32; scratch],
                    |dcol, (n, (gxb, gwb))| {
                        let xb = &xv[n * img..(n + 1) * img];
                        let gyb = &gy[n * s.cout * p..(n + 1) * s.cout * p];
                        let col: &[f32] = if s.is_pointwise() {
                            xb
                        } else {
                            &saved_cols[n * scratch..(n + 1) * scratch]
                        };
                        // dW_b = gy_b (Cout×P) · col_bᵀ (P×K)
                        matmul(
                            MatMut::row_major(gwb, s.cout, kl),
                            false,
                            MatRef::row_major(gyb, s.cout, p),
                            MatRef::transposed(col, p, kl),
                            par,
                        );
                        // dcol_b = Wᵀ (K×Cout) · gy_b (Cout×P)
                        if s.is_pointwise() {
                            matmul(
                                MatMut::row_major(gxb, kl, p),
                                true,
                                MatRef::transposed(&wv, kl, s.cout),
                                MatRef::row_major(gyb, s.cout, p),
                                par,
                            );
                        } else {
                            // overwritten (accumulate = false), so the scratch needs no zeroing
                            matmul(
                                MatMut::row_major(dcol, kl, p),
                                false,
                                MatRef::transposed(&wv, kl, s.cout),
                                MatRef::row_major(gyb, s.cout, p),
                                par,
                            );
                            col2im(dcol, h, w, &s, ho, wo, gxb);
                        }
                    },
                );
            let mut gw = vec![0.0f32; s.cout * kl];
            for part in gw_parts.chunks(s.cout * kl) {
                for (d, v) in gw.iter_mut().zip(part) {
                    *d += v;
                }
            }
            accumulate_param(grads, &w_id, &gw)?;
            if let Some(b_id) = &b_id {
                let mut gb = vec![0.0f32; s.cout];
                for n in 0..b {
                    for (co, g) in gb.iter_mut().enumerate() {
                        let off = (n * s.cout + co) * p;
                        *g += gy[off..off + p].iter().sum::<f32>();
                    }
                }
                accumulate_param(grads, b_id, &gb)?;
            }
            let gxin = grads.get_or_alloc_mut(&xin)?;
            for (d, v) in gxin.iter_mut().zip(&gx) {
                *d += v;
            }
            profile::add_backward(started.elapsed().as_nanos() as u64);
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}

/// Direct (seven nested loops) convolution in f64, the reference for tests.
///
/// # Shapes
/// `x` (B, Cin, H, W), `w` (Cout, Cin, k, k), `b` (Cout) → (B, Cout, Ho, Wo) flat.
///
/// # Panics
/// When the kernel does not fit the padded input (a test helper: callers pass valid specs).
pub fn conv2d_direct(
    x: &[f64],
    shape: (usize, usize, usize, usize),
    w: &[f64],
    b: Option<&[f64]>,
    s: &ConvSpec,
) -> Vec<f64> {
    let (bn, cin, h, wd) = shape;
    let ho = s.out_len(h).expect("kernel fits");
    let wo = s.out_len(wd).expect("kernel fits");
    let k = s.kernel;
    let mut y = vec![0.0f64; bn * s.cout * ho * wo];
    for n in 0..bn {
        for co in 0..s.cout {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = b.map_or(0.0, |b| b[co]);
                    for ci in 0..cin {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy =
                                    (oy * s.stride + ky * s.dilation) as isize - s.padding as isize;
                                let ix =
                                    (ox * s.stride + kx * s.dilation) as isize - s.padding as isize;
                                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < wd {
                                    acc += x[((n * cin + ci) * h + iy as usize) * wd + ix as usize]
                                        * w[((co * cin + ci) * k + ky) * k + kx];
                                }
                            }
                        }
                    }
                    y[((n * s.cout + co) * ho + oy) * wo + ox] = acc;
                }
            }
        }
    }
    y
}
