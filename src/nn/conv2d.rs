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
//! The GEMMs use the `gemm` crate (the one dfdx's own matmul uses). Images are processed in
//! parallel with rayon; per-image weight gradients are summed in a fixed order afterwards, so the
//! result does not depend on thread scheduling (reproducible training). A 1×1 / stride-1 /
//! no-padding convolution skips im2col: `col_b` is the image itself.
//!
//! The backward pass recomputes `col_b` from the saved input instead of keeping it, trading a
//! cheap memory-bound pass for k² times less saved memory.

use dfdx::prelude::*;
use gemm::Parallelism;
use rand::Rng;
use rayon::prelude::*;
use std::sync::Arc;

use super::ops::{accumulate_param, expect_channels, grad_of, param_handle};
use super::{to_host, Act, Dev, Param, ParamKind, Params};
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

    fn k_len(&self) -> usize {
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

/// Row-major GEMM with general strides: `dst (m×n) = [dst +] a (m×k) · b (k×n)`.
/// `a_t`/`b_t` say the operand is stored transposed ((k×m) / (n×k) row-major).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    par: Parallelism,
) {
    assert!(
        dst.len() >= m * n && a.len() >= m * k && b.len() >= k * n,
        "matmul operand sizes"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].iter_mut().for_each(|v| *v = 0.0);
        }
        return;
    }
    let (a_cs, a_rs) = if a_t {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let (b_cs, b_rs) = if b_t {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    // SAFETY: the assert above bounds every index the strides can reach; the slices do not
    // alias (dst is &mut).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
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
    // im2col scratch, one per rayon job (im2col overwrites all of it, so no zeroing per image)
    let scratch = if s.is_pointwise() { 0 } else { kl * p };
    out.par_chunks_mut(s.cout * p).enumerate().for_each_init(
        || vec![0.0f32; scratch],
        |col_buf, (n, yb)| {
            let xb = &xv[n * img..(n + 1) * img];
            let col: &[f32] = if s.is_pointwise() {
                xb
            } else {
                im2col(xb, h, w, &s, ho, wo, col_buf);
                col_buf
            };
            matmul(s.cout, p, kl, yb, false, &wv, false, col, false, par);
            if let Some(bv) = &bv {
                for (co, bias) in bv.iter().enumerate() {
                    yb[co * p..(co + 1) * p].iter_mut().for_each(|v| *v += bias);
                }
            }
        },
    );
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
                    || (vec![0.0f32; scratch], vec![0.0f32; scratch]),
                    |(col_buf, dcol), (n, (gxb, gwb))| {
                        let xb = &xv[n * img..(n + 1) * img];
                        let gyb = &gy[n * s.cout * p..(n + 1) * s.cout * p];
                        let col: &[f32] = if s.is_pointwise() {
                            xb
                        } else {
                            im2col(xb, h, w, &s, ho, wo, col_buf);
                            col_buf
                        };
                        // dW_b = gy_b (Cout×P) · col_bᵀ (P×K)
                        matmul(s.cout, kl, p, gwb, false, gyb, false, col, true, par);
                        // dcol_b = Wᵀ (K×Cout) · gy_b (Cout×P)
                        if s.is_pointwise() {
                            matmul(kl, p, s.cout, gxb, true, &wv, true, gyb, false, par);
                        } else {
                            // overwritten (accumulate = false), so the scratch needs no zeroing
                            matmul(kl, p, s.cout, dcol, false, &wv, true, gyb, false, par);
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

/// A convolution layer: weight (Cout, Cin, k, k), optional bias (Cout).
///
/// Layers followed by batch norm are built without bias (the norm's shift makes it redundant).
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Geometry.
    pub spec: ConvSpec,
    /// Kernel, Kaiming-normal initialised.
    pub weight: Param,
    /// Optional bias, zero initialised.
    pub bias: Option<Param>,
}

impl Conv2d {
    /// A new layer named `name` (its parameters are `name.weight`, `name.bias`).
    pub fn new(dev: &Dev, name: &str, spec: ConvSpec, bias: bool, rng: &mut impl Rng) -> Self {
        let k = spec.kernel;
        let weight = Param::kaiming(
            dev,
            format!("{name}.weight"),
            &[spec.cout, spec.cin, k, k],
            spec.k_len(),
            rng,
        );
        let bias = bias.then(|| {
            Param::constant(
                dev,
                format!("{name}.bias"),
                &[spec.cout],
                0.0,
                ParamKind::NoDecay,
            )
        });
        Conv2d { spec, weight, bias }
    }

    /// Applies the convolution.
    ///
    /// # Shapes
    /// (B, Cin, H, W) → (B, Cout, Ho, Wo); see [`conv2d`].
    pub fn forward<T: Tape<f32, Cpu>>(&self, x: Act<T>) -> Result<Act<T>> {
        conv2d(x, &self.weight, self.bias.as_ref(), &self.spec)
    }
}

impl Params for Conv2d {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        f(&self.weight);
        if let Some(b) = &self.bias {
            f(b);
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.weight);
        if let Some(b) = &mut self.bias {
            f(b);
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rand_vec(n: usize, rng: &mut impl Rng) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    fn specs() -> Vec<(ConvSpec, (usize, usize, usize, usize))> {
        vec![
            (ConvSpec::same(3, 4, 3, 1, 1), (2, 3, 7, 6)),
            (ConvSpec::same(3, 5, 3, 2, 1), (2, 3, 9, 8)),
            (ConvSpec::same(2, 3, 3, 1, 2), (1, 2, 8, 9)),
            (
                ConvSpec {
                    cin: 4,
                    cout: 2,
                    kernel: 1,
                    stride: 1,
                    padding: 0,
                    dilation: 1,
                },
                (3, 4, 5, 5),
            ),
            (
                ConvSpec {
                    cin: 2,
                    cout: 3,
                    kernel: 1,
                    stride: 2,
                    padding: 0,
                    dilation: 1,
                },
                (2, 2, 6, 5),
            ),
            (
                ConvSpec {
                    cin: 2,
                    cout: 2,
                    kernel: 3,
                    stride: 2,
                    padding: 0,
                    dilation: 1,
                },
                (2, 2, 7, 8),
            ),
            (
                ConvSpec {
                    cin: 3,
                    cout: 2,
                    kernel: 2,
                    stride: 1,
                    padding: 1,
                    dilation: 3,
                },
                (1, 3, 6, 7),
            ),
        ]
    }

    #[test]
    fn forward_matches_direct_convolution() {
        let dev = Dev::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (spec, shape) in specs() {
            let conv = Conv2d::new(&dev, "c", spec, true, &mut rng);
            let mut conv = conv;
            let bvals = rand_vec(spec.cout, &mut rng);
            conv.bias.as_mut().unwrap().set(&bvals).unwrap();
            let n = shape.0 * shape.1 * shape.2 * shape.3;
            let xv = rand_vec(n, &mut rng);
            let x: Act = dev.tensor_from_vec(xv.clone(), shape);
            let y = conv.forward(x).unwrap().as_vec();
            let to64 = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
            let r = conv2d_direct(
                &to64(&xv),
                shape,
                &to64(&conv.weight.to_vec()),
                Some(&to64(&bvals)),
                &spec,
            );
            assert_eq!(y.len(), r.len(), "{spec:?}");
            for (a, b) in y.iter().zip(&r) {
                assert!((*a as f64 - b).abs() < 1e-4, "{spec:?}: {a} vs {b}");
            }
        }
    }

    /// Gradients of L = Σ y ⊙ R (R random) against central finite differences of the direct
    /// f64 convolution (the analytic dL/dθ is exact in f64, so only the f32 op is tested).
    #[test]
    fn gradients_match_finite_differences() {
        let dev = Dev::default();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for (spec, shape) in specs() {
            let mut conv = Conv2d::new(&dev, "c", spec, true, &mut rng);
            conv.bias
                .as_mut()
                .unwrap()
                .set(&rand_vec(spec.cout, &mut rng))
                .unwrap();
            let n = shape.0 * shape.1 * shape.2 * shape.3;
            let xv = rand_vec(n, &mut rng);
            let x: Act = dev.tensor_from_vec(xv.clone(), shape);
            let x_in = x.clone();
            let y = conv.forward(x.leaky_trace()).unwrap();
            let (b, c, ho, wo) = *y.shape();
            let rv = rand_vec(b * c * ho * wo, &mut rng);
            let r: Act = dev.tensor_from_vec(rv.clone(), (b, c, ho, wo));
            let loss = (y * r).sum();
            let grads = loss.backward();
            let gx = grads.get(&x_in).as_vec();
            let gw = grads.get(&conv.weight.value).as_vec();
            let gb = grads.get(&conv.bias.as_ref().unwrap().value).as_vec();

            let to64 = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
            let (x64, w64, b64, r64) = (
                to64(&xv),
                to64(&conv.weight.to_vec()),
                to64(&conv.bias.as_ref().unwrap().to_vec()),
                to64(&rv),
            );
            let f = |x: &[f64], w: &[f64], bb: &[f64]| -> f64 {
                conv2d_direct(x, shape, w, Some(bb), &spec)
                    .iter()
                    .zip(&r64)
                    .map(|(a, b)| a * b)
                    .sum()
            };
            let eps = 1e-3;
            let check = |analytic: &[f32], which: usize| {
                let len = analytic.len();
                for i in (0..len).step_by((len / 17).max(1)) {
                    let (mut xp, mut wp, mut bp) = (x64.clone(), w64.clone(), b64.clone());
                    let (mut xm, mut wm, mut bm) = (x64.clone(), w64.clone(), b64.clone());
                    match which {
                        0 => {
                            xp[i] += eps;
                            xm[i] -= eps;
                        }
                        1 => {
                            wp[i] += eps;
                            wm[i] -= eps;
                        }
                        _ => {
                            bp[i] += eps;
                            bm[i] -= eps;
                        }
                    }
                    let num = (f(&xp, &wp, &bp) - f(&xm, &wm, &bm)) / (2.0 * eps);
                    assert!(
                        (num - analytic[i] as f64).abs() < 1e-3 * (1.0 + num.abs()),
                        "{spec:?} grad {which}[{i}]: numeric {num} vs analytic {}",
                        analytic[i]
                    );
                }
            };
            check(&gx, 0);
            check(&gw, 1);
            check(&gb, 2);
        }
    }

    #[test]
    fn rejects_wrong_channels_and_tiny_inputs() {
        let dev = Dev::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let conv = Conv2d::new(
            &dev,
            "c",
            ConvSpec {
                cin: 3,
                cout: 2,
                kernel: 3,
                stride: 1,
                padding: 0,
                dilation: 1,
            },
            false,
            &mut rng,
        );
        let x: Act = dev.zeros_like(&(1, 2, 5, 5));
        assert!(matches!(conv.forward(x), Err(GmmSegError::Shape { .. })));
        let x: Act = dev.zeros_like(&(1, 3, 2, 5));
        assert!(matches!(conv.forward(x), Err(GmmSegError::Shape { .. })));
    }
}
