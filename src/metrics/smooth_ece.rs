//! Smooth ECE (Błasiok & Nakkiran, "Smooth ECE: Principled Reliability Diagrams via Kernel
//! Smoothing", ICLR 2024), with the definition and discretisation of their `relplot` package
//! (`relplot.smECE`, version 1.0), so that numbers agree with it to 1e-6.
//!
//! For predictions f_i ∈ [0, 1] and outcomes y_i ∈ {0, 1} (here: top-label confidence and
//! correctness, as relplot reduces a multiclass problem), the residuals r_i = f_i − y_i are
//! smoothed with a Gaussian kernel of bandwidth σ, reflected at 0 and 1:
//! r̂(t) = Σ_i K_σ(t, f_i) r_i / δ̂(t) with δ̂(t) = Σ_i K_σ(t, f_i) + 10⁻⁴, and
//! smECE_σ = ∫ |r̂(t)| δ̂(t) dt / ∫ δ̂(t) dt. The bandwidth is chosen automatically as the
//! fixed point σ* = smECE_σ*, found by ten bisection steps on [0, 1] (σ < 10⁻³ counts as
//! reached), and smECE = smECE_σ*.
//!
//! Discretisation (relplot's, kept exactly): points are split linearly onto a grid of
//! ⌊max(2000, round(20/σ))/2⌋ + 1 nodes on [0, 1]; the grid is convolved with the kernel
//! sampled on that grid (reflected padding); the result is interpolated linearly onto
//! max(round(10/σ), 200) evaluation points, where the integrals become sums.
//!
//! The splat is linear in the points, so the splat of a union of images is the sum of their
//! splats: the image bootstrap ([`super::bootstrap`]) resamples per-image splats at the point
//! estimate's bandwidth instead of the pixels.

use std::sync::Arc;

use rayon::prelude::*;
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

/// Bandwidths below this count as a reached fixed point (relplot's `eps`).
const BANDWIDTH_FLOOR: f64 = 1e-3;
/// Bisection steps of the bandwidth search (relplot's `refine`).
const REFINE: usize = 10;
/// Minimum number of evaluation points (relplot's `config.smECE_mesh_pts`).
const MESH_POINTS: usize = 200;
/// Added to the smoothed density before dividing (relplot's `eps` in `smooth`).
const DENSITY_EPS: f64 = 1e-4;
/// Points per parallel chunk of a splat (fixed, so the sum order never depends on threads).
const CHUNK: usize = 1 << 18;

/// The smooth ECE and the bandwidth it was evaluated at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SmoothEce {
    /// smECE at the automatic bandwidth.
    pub value: f64,
    /// The bandwidth σ* (the fixed point of σ ↦ smECE_σ, to 2⁻¹⁰).
    pub bandwidth: f64,
}

/// Python's `round` (half to even) as relplot calls it.
fn py_round(x: f64) -> usize {
    x.round_ties_even() as usize
}

/// Number of grid nodes the kernel convolution runs on at bandwidth `sigma`.
pub(crate) fn grid_nodes(sigma: f64) -> usize {
    py_round(20.0 / sigma).max(2000) / 2 + 1
}

/// NumPy's `linspace(0, 1, n)`: `i * (1 / (n − 1))`, the last point exactly 1.
fn linspace01(n: usize) -> Vec<f64> {
    let step = 1.0 / (n - 1) as f64;
    let mut t: Vec<f64> = (0..n).map(|i| i as f64 * step).collect();
    t[n - 1] = 1.0;
    t
}

/// Residual and mass of a set of points split linearly onto `nodes` grid nodes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Splat {
    /// Σ of (f − y) split onto the nodes.
    pub residual: Vec<f64>,
    /// Σ of 1 split onto the nodes.
    pub mass: Vec<f64>,
}

impl Splat {
    /// An empty splat on `nodes` nodes.
    pub fn zeros(nodes: usize) -> Self {
        Self {
            residual: vec![0.0; nodes],
            mass: vec![0.0; nodes],
        }
    }

    /// Adds the point (f, y) (relplot's `smooth_round_to_grid`).
    #[inline]
    pub fn add(&mut self, f: f64, y: f64) {
        let n = self.mass.len();
        let x = f * (n - 1) as f64;
        let bin = (x as usize).min(n - 2);
        let frac = x - bin as f64;
        let r = f - y;
        self.residual[bin] += (1.0 - frac) * r;
        self.residual[bin + 1] += frac * r;
        self.mass[bin] += 1.0 - frac;
        self.mass[bin + 1] += frac;
    }

    fn merge(&mut self, other: &Splat) {
        for (a, b) in self.residual.iter_mut().zip(&other.residual) {
            *a += b;
        }
        for (a, b) in self.mass.iter_mut().zip(&other.mass) {
            *a += b;
        }
    }
}

/// The confidence and correctness packed in a calibration key (f32 bits << 1 | correct).
#[inline]
pub(crate) fn unpack_key(k: u32) -> (f64, f64) {
    (f32::from_bits(k >> 1) as f64, (k & 1) as f64)
}

/// The splat of packed calibration keys on `nodes` nodes, in parallel over fixed chunks
/// summed in order (the same result with any number of threads).
pub(crate) fn splat_keys(keys: &[u32], nodes: usize) -> Splat {
    let parts: Vec<Splat> = keys
        .par_chunks(CHUNK)
        .map(|chunk| {
            let mut s = Splat::zeros(nodes);
            for &k in chunk {
                let (f, y) = unpack_key(k);
                s.add(f, y);
            }
            s
        })
        .collect();
    let mut total = Splat::zeros(nodes);
    for p in &parts {
        total.merge(p);
    }
    total
}

/// Reflected Gaussian convolution on a grid of `n` nodes at bandwidth `sigma` (relplot's
/// `ReflectedGaussianKernel`): the kernel is sampled at `linspace(0, 1, n) − ½` and
/// normalised by √(2π)σ; the values are padded by their mirror images on both sides, and the
/// middle `n` values of the valid convolution are kept. relplot convolves directly; here one
/// FFT per call (the kernel's spectrum is made once per bandwidth), which agrees to ~1e-15
/// relative and makes a 1,000-replicate bootstrap cheap.
pub(crate) struct ReflectedConvolution {
    n: usize,
    len: usize,
    kernel: Vec<Complex<f64>>,
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
}

impl ReflectedConvolution {
    /// The convolution for `n` nodes at bandwidth `sigma`.
    pub fn new(n: usize, sigma: f64) -> Self {
        let t = linspace01(n);
        let var = sigma * sigma;
        let norm = (2.0 * std::f64::consts::PI).sqrt() * sigma;
        // full linear convolution of (3n − 2) padded values with n taps: 4n − 3 outputs
        let len = (4 * n - 3).next_power_of_two();
        let mut planner = FftPlanner::new();
        let forward = planner.plan_fft_forward(len);
        let inverse = planner.plan_fft_inverse(len);
        let mut kernel = vec![Complex::new(0.0, 0.0); len];
        for (k, &x) in kernel.iter_mut().zip(&t) {
            k.re = (-(x - 0.5) * (x - 0.5) / (2.0 * var)).exp() / norm;
        }
        forward.process(&mut kernel);
        Self {
            n,
            len,
            kernel,
            forward,
            inverse,
        }
    }

    /// The smoothed grid of `values` (length `n`).
    pub fn apply(&self, values: &[f64]) -> Vec<f64> {
        let n = self.n;
        debug_assert_eq!(values.len(), n);
        // ext = flip(values)[:-1] ++ values ++ flip(values)[1:], length 3n − 2
        let mut buf = vec![Complex::new(0.0, 0.0); self.len];
        let ext = values[1..]
            .iter()
            .rev()
            .chain(values)
            .chain(values[..n - 1].iter().rev());
        for (b, &v) in buf.iter_mut().zip(ext) {
            b.re = v;
        }
        self.forward.process(&mut buf);
        for (b, k) in buf.iter_mut().zip(&self.kernel) {
            *b *= k;
        }
        self.inverse.process(&mut buf);
        // np.convolve(ext, kernel, "valid")[n/2 .. n/2 + n] = full[n − 1 + n/2 + i]
        let scale = 1.0 / self.len as f64;
        let offset = n - 1 + n / 2;
        (0..n).map(|i| buf[offset + i].re * scale).collect()
    }
}

/// Linear interpolation of values on `linspace(0, 1, len)` at the points `t` (relplot's
/// `interpolate`).
fn interpolate(t: &[f64], y: &[f64]) -> Vec<f64> {
    let b = y.len();
    let bucket = 1.0 / (b - 1) as f64;
    t.iter()
        .map(|&x| {
            let i = ((x * (b - 1) as f64) as usize).min(b - 2);
            let r = (x - i as f64 * bucket) / bucket;
            y[i] * (1.0 - r) + y[i + 1] * r
        })
        .collect()
}

/// smECE_σ from a splat made on [`grid_nodes`]`(sigma)` nodes.
pub(crate) fn smooth_ece_of_splat(s: &Splat, sigma: f64) -> f64 {
    smooth_ece_with(&ReflectedConvolution::new(s.mass.len(), sigma), s, sigma)
}

/// [`smooth_ece_of_splat`] with a prepared convolution (the bootstrap reuses one).
pub(crate) fn smooth_ece_with(conv: &ReflectedConvolution, s: &Splat, sigma: f64) -> f64 {
    let t = linspace01(py_round(10.0 / sigma).max(MESH_POINTS));
    let residual = interpolate(&t, &conv.apply(&s.residual));
    let density = interpolate(&t, &conv.apply(&s.mass));
    let (mut num, mut den) = (0.0, 0.0);
    for (r, d) in residual.iter().zip(&density) {
        let d = d + DENSITY_EPS;
        num += (r / d).abs() * d;
        den += d;
    }
    num / den
}

/// The automatic-bandwidth search over a source of splats (`splat(nodes)` splats all points
/// on that many nodes): relplot's `search_param` with `check_smooth_ece`.
pub(crate) fn smooth_ece_search(mut splat: impl FnMut(usize) -> Splat) -> SmoothEce {
    let mut at = |sigma: f64| smooth_ece_of_splat(&splat(grid_nodes(sigma)), sigma);
    let first = at(1.0);
    if 1.0 < BANDWIDTH_FLOOR || 1.0 < first {
        return SmoothEce {
            value: first,
            bandwidth: 1.0,
        };
    }
    let (mut start, mut end) = (1.0f64, 0.0f64);
    let mut value_at_start = first;
    for _ in 0..REFINE {
        let mid = (start + end) / 2.0;
        let v = at(mid);
        if mid < BANDWIDTH_FLOOR || mid < v {
            end = mid;
        } else {
            start = mid;
            value_at_start = v;
        }
    }
    SmoothEce {
        value: value_at_start,
        bandwidth: start,
    }
}

/// Smooth ECE of packed calibration keys.
pub(crate) fn smooth_ece_of_keys(keys: &[u32]) -> SmoothEce {
    smooth_ece_search(|nodes| splat_keys(keys, nodes))
}

/// Smooth ECE of predictions `f` ∈ [0, 1] against outcomes `y` (true = 1), relplot's
/// `smECE(f, y)`. Both slices must have the same non-zero length (checked by callers; here a
/// mismatch truncates to the shorter one).
pub fn smooth_ece(f: &[f64], y: &[bool]) -> SmoothEce {
    smooth_ece_search(|nodes| {
        let mut s = Splat::zeros(nodes);
        for (&fi, &yi) in f.iter().zip(y) {
            s.add(fi.clamp(0.0, 1.0), yi as u8 as f64);
        }
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfectly_calibrated_points_have_a_small_smooth_ece() {
        // f = 0.25 with a quarter correct, f = 0.75 with three quarters: calibrated.
        let mut f = Vec::new();
        let mut y = Vec::new();
        for i in 0..400 {
            f.push(0.25);
            y.push(i % 4 == 0);
            f.push(0.75);
            y.push(i % 4 != 0);
        }
        let s = smooth_ece(&f, &y);
        assert!(s.value < 0.01, "{s:?}");
        // All wrong at confidence 0.9: the error is about 0.9.
        let s = smooth_ece(&[0.9; 100], &[false; 100]);
        assert!((s.value - 0.9).abs() < 0.05, "{s:?}");
    }

    /// relplot's direct convolution, written out.
    fn direct(values: &[f64], sigma: f64) -> Vec<f64> {
        let n = values.len();
        let t = linspace01(n);
        let norm = (2.0 * std::f64::consts::PI).sqrt() * sigma;
        let kernel: Vec<f64> = t
            .iter()
            .map(|&x| (-(x - 0.5) * (x - 0.5) / (2.0 * sigma * sigma)).exp() / norm)
            .collect();
        let ext: Vec<f64> = values[1..]
            .iter()
            .rev()
            .chain(values)
            .chain(values[..n - 1].iter().rev())
            .copied()
            .collect();
        (0..n)
            .map(|i| (0..n).map(|j| ext[n / 2 + i + n - 1 - j] * kernel[j]).sum())
            .collect()
    }

    #[test]
    fn fft_convolution_equals_the_direct_one() {
        for (n, sigma) in [(1001, 0.05), (1001, 1.0), (5121, 0.002), (7, 0.3)] {
            let v: Vec<f64> = (0..n).map(|i| ((i * 37 % 11) as f64).sin().abs()).collect();
            let (a, b) = (
                ReflectedConvolution::new(n, sigma).apply(&v),
                direct(&v, sigma),
            );
            let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-12 * scale,
                    "n {n} σ {sigma}: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn reflected_convolution_of_a_constant_is_nearly_constant_inside() {
        let v = vec![1.0; 1001];
        let out = ReflectedConvolution::new(1001, 0.05).apply(&v);
        // the reflected padding keeps the mass near the edges
        let mid = out[500];
        assert!((out[0] - mid).abs() / mid < 1e-6);
    }
}
