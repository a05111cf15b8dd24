//! The M-step: weighted moments of a class's features, blended into the old parameters.
//!
//! For class c and component m with responsibilities r_nm:
//! `N_m = Σ r`, `μ̂_m = Σ r x / N_m`, `σ̂²_m = Σ r (x − μ̂_m)² / N_m + reg`, and, for vanilla
//! EM, `π̂_m = N_m / Σ N`. Then `φ ← τ φ + (1 − τ) φ̂` (τ = 0.999 in the paper; 0 in batch EM).
//!
//! Sums are reported around the old mean (a shift), so that the variance
//! `E[(x − s)²] − (E[x − s])²` does not suffer cancellation: taken in f32 over blocks of 64
//! rows around one of the block's rows, moved to the shift in f64, then added in f64 over
//! fixed-size chunks reduced in a fixed order (deterministic for any thread count).

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::config::{MeanEstimator, VarFloor, VarianceFloor, MIN_RELATIVE_FLOOR};

const CHUNK: usize = 4096;

/// A component whose total responsibility is below this keeps its old parameters: there is
/// nothing to estimate it from.
pub const MIN_MASS: f64 = 1e-6;

/// Floor of re-estimated mixture weights (before renormalisation), so that a starved
/// component keeps a finite log-weight and can recover.
pub const MIN_WEIGHT: f64 = 1e-6;

/// Per-chunk (mass, first, second) sums: see [`Moments::accumulate`].
type Partial = (Vec<f64>, Vec<f64>, Vec<f64>);

/// Rows whose sums are taken in f32 before they join the chunk's f64 totals: short enough
/// that an f32 sum of this many terms stays within about 10⁻⁷ of the exact one (the test
/// below checks 10⁻⁵ against a plain f64 loop), long enough that the f64 additions are a
/// small part of the work.
const BLOCK: usize = 64;

/// Channels handled at once: four AVX vectors each of Σ r(x−s) and Σ r(x−s)² stay in
/// registers while the block's rows stream past.
const TILE: usize = 32;

/// Sums of one chunk, block by block ([`BLOCK`] rows). Within a block the sums are taken in
/// f32 ([`tile_sums`], [`TILE`] channels at a time) around a **pivot**, the block's first
/// row, rather than around the shift: an f32 sum of squares loses about 10⁻⁷ of its size,
/// and around a shift far from the data (a poor start) that size is the squared distance,
/// which the variance would then lose to cancellation; around a data row it is the data's
/// own spread. Each block's sums are then moved to the shift exactly, in f64:
/// `Σ r(x−s) = F + (p−s)·N` and `Σ r(x−s)² = Q + 2(p−s)·F + (p−s)²·N` with F, Q the
/// pivot-centred sums and N the block's mass. Measured on 1M rows, M = 5, D = 64 (2
/// threads): 27 ms, against 73 ms for the former loop in f64 with its accumulators in
/// memory.
fn accumulate_chunk(xc: &[f32], rc: &[f32], shift: &[f32], m: usize, d: usize) -> Partial {
    let mut mass = vec![0f64; m];
    let mut first = vec![0f64; m * d];
    let mut second = vec![0f64; m * d];
    let d = d.max(1);
    let rows = xc.len() / d;
    let mut block_mass = vec![0f64; m];
    let mut sums = vec![([0f32; TILE], [0f32; TILE]); m];
    for start in (0..rows).step_by(BLOCK) {
        let end = (start + BLOCK).min(rows);
        let xb = &xc[start * d..end * d];
        let rb = &rc[start * m..end * m];
        let pivot = &xb[..d];
        for (j, bm) in block_mass.iter_mut().enumerate() {
            *bm = 0.0;
            for r in rb.iter().skip(j).step_by(m) {
                *bm += *r as f64;
            }
            mass[j] += *bm;
        }
        // one channel's block sums moved to the shift and added to the chunk's totals
        let mut add = |j: usize, at: usize, f: f32, q: f32| {
            let (f, q) = (f as f64, q as f64);
            let delta = pivot[at - j * d] as f64 - shift[at] as f64;
            first[at] += f + delta * block_mass[j];
            second[at] += q + delta * (2.0 * f + delta * block_mass[j]);
        };
        for k in (0..d).step_by(TILE) {
            if k + TILE <= d {
                let p: &[f32; TILE] = pivot[k..k + TILE].try_into().expect("tile");
                tile_sums_all(xb, rb, d, m, k, p, &mut sums);
                for (j, (f, q)) in sums.iter().enumerate() {
                    for l in 0..TILE {
                        add(j, j * d + k + l, f[l], q[l]);
                    }
                }
            } else {
                // the last channels when D is not a multiple of the tile
                for j in 0..m {
                    for kk in k..d {
                        let (mut f, mut q) = (0f32, 0f32);
                        for (xr, rr) in xb.chunks_exact(d).zip(rb.chunks_exact(m)) {
                            let diff = xr[kk] - pivot[kk];
                            let rd = rr[j] * diff;
                            f += rd;
                            q += rd * diff;
                        }
                        add(j, j * d + kk, f, q);
                    }
                }
            }
        }
    }
    (mass, first, second)
}

/// [`tile_sums`] of every component (`out[j]`), on AVX-512 a few components per pass over
/// the block ([`tile_sums_group_avx512`]): the rows' distances to the pivot are then loaded
/// and taken once for all of them.
fn tile_sums_all(
    xb: &[f32],
    rb: &[f32],
    d: usize,
    m: usize,
    k: usize,
    s: &[f32; TILE],
    out: &mut [([f32; TILE], [f32; TILE])],
) {
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::has_avx512() {
            let mut j0 = 0;
            while j0 < m {
                let group = &mut out[j0..(j0 + COMPONENT_GROUP).min(m)];
                // SAFETY: the processor supports AVX-512 F and DQ, checked just above.
                unsafe {
                    match group.len() {
                        5 => tile_sums_group_avx512::<5>(xb, rb, d, m, j0, k, s, group),
                        4 => tile_sums_group_avx512::<4>(xb, rb, d, m, j0, k, s, group),
                        3 => tile_sums_group_avx512::<3>(xb, rb, d, m, j0, k, s, group),
                        2 => tile_sums_group_avx512::<2>(xb, rb, d, m, j0, k, s, group),
                        _ => tile_sums_group_avx512::<1>(xb, rb, d, m, j0, k, s, group),
                    }
                }
                j0 += group.len();
            }
            return;
        }
    }
    for (j, o) in out.iter_mut().enumerate().take(m) {
        *o = tile_sums(xb, rb, d, m, j, k, s);
    }
}

/// Components per pass of [`tile_sums_group_avx512`]: two 512-bit sums of each of F and Q
/// per component, twenty registers for five, beside the pivot and the two distances (of the
/// thirty-two AVX-512 has; AVX2's sixteen hold one component's, hence its per-component
/// [`tile_sums_avx2`]).
#[cfg(target_arch = "x86_64")]
const COMPONENT_GROUP: usize = 5;

/// `Σ r(x−p)` and `Σ r(x−p)²` over a block's rows (`xb`: rows of D, `rb`: rows of M) for
/// component `j` and the [`TILE`] channels from `k` around the pivot tile `s`, in f32.
/// Every row is added, zeros included: a branch on r = 0 mispredicts on Sinkhorn's
/// scattered zeros and measured slower than the arithmetic it saves.
fn tile_sums(
    xb: &[f32],
    rb: &[f32],
    d: usize,
    m: usize,
    j: usize,
    k: usize,
    s: &[f32; TILE],
) -> ([f32; TILE], [f32; TILE]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor supports AVX2, checked just above.
            return unsafe { tile_sums_avx2(xb, rb, d, m, j, k, s) };
        }
    }
    tile_sums_scalar(xb, rb, d, m, j, k, s)
}

/// [`tile_sums`] as plain loops: each lane (channel) runs the same IEEE operations in the
/// same order as a lane of [`tile_sums_avx2`], so the two agree bit for bit (test).
fn tile_sums_scalar(
    xb: &[f32],
    rb: &[f32],
    d: usize,
    m: usize,
    j: usize,
    k: usize,
    s: &[f32; TILE],
) -> ([f32; TILE], [f32; TILE]) {
    let mut f = [0f32; TILE];
    let mut s2 = [0f32; TILE];
    for (xr, rr) in xb.chunks_exact(d).zip(rb.chunks_exact(m)) {
        let r = rr[j];
        for l in 0..TILE {
            let diff = xr[k + l] - s[l];
            let rd = r * diff;
            f[l] += rd;
            s2[l] += rd * diff;
        }
    }
    (f, s2)
}

/// [`tile_sums`] in AVX2 registers (the compiler's vectoriser kept these accumulators on
/// the stack, one lane at a time: measured 1.5× slower than the f64 loop it replaced).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_sums_avx2(
    xb: &[f32],
    rb: &[f32],
    d: usize,
    m: usize,
    j: usize,
    k: usize,
    s: &[f32; TILE],
) -> ([f32; TILE], [f32; TILE]) {
    use std::arch::x86_64::*;
    const V: usize = TILE / 8;
    let rows = rb.len() / m;
    assert!(j < m && k + TILE <= d && xb.len() >= rows * d);
    let mut sv = [_mm256_setzero_ps(); V];
    for (v, slot) in sv.iter_mut().enumerate() {
        *slot = _mm256_loadu_ps(s.as_ptr().add(8 * v));
    }
    let mut f = [_mm256_setzero_ps(); V];
    let mut q = [_mm256_setzero_ps(); V];
    for i in 0..rows {
        // in bounds: i·M + j < rows·M = rb.len(), i·D + k + TILE ≤ rows·D ≤ xb.len()
        let rv = _mm256_set1_ps(*rb.get_unchecked(i * m + j));
        let p = xb.as_ptr().add(i * d + k);
        for v in 0..V {
            let diff = _mm256_sub_ps(_mm256_loadu_ps(p.add(8 * v)), sv[v]);
            let rd = _mm256_mul_ps(rv, diff);
            f[v] = _mm256_add_ps(f[v], rd);
            q[v] = _mm256_add_ps(q[v], _mm256_mul_ps(rd, diff));
        }
    }
    let mut first = [0f32; TILE];
    let mut second = [0f32; TILE];
    for v in 0..V {
        _mm256_storeu_ps(first.as_mut_ptr().add(8 * v), f[v]);
        _mm256_storeu_ps(second.as_mut_ptr().add(8 * v), q[v]);
    }
    (first, second)
}

/// [`tile_sums_avx2`] on 512-bit registers (the tile in two vectors), for components
/// `j0 .. j0 + G` in one pass over the block: each row's `x − p` is loaded and subtracted
/// once and weighted by each component's responsibility. A lane of each component's sums
/// sees the same operations in the same order as in [`tile_sums_scalar`], so the results
/// agree bit for bit (test).
///
/// # Safety
/// The processor must support AVX-512 F and DQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_sums_group_avx512<const G: usize>(
    xb: &[f32],
    rb: &[f32],
    d: usize,
    m: usize,
    j0: usize,
    k: usize,
    s: &[f32; TILE],
    out: &mut [([f32; TILE], [f32; TILE])],
) {
    use std::arch::x86_64::*;
    const V: usize = TILE / 16;
    let rows = rb.len() / m;
    assert!(j0 + G <= m && out.len() >= G && k + TILE <= d && xb.len() >= rows * d);
    let mut sv = [_mm512_setzero_ps(); V];
    for (v, slot) in sv.iter_mut().enumerate() {
        *slot = _mm512_loadu_ps(s.as_ptr().add(16 * v));
    }
    let mut f = [[_mm512_setzero_ps(); V]; G];
    let mut q = [[_mm512_setzero_ps(); V]; G];
    for i in 0..rows {
        // in bounds: i·M + j0 + g < rows·M = rb.len(), i·D + k + TILE ≤ rows·D ≤ xb.len()
        let p = xb.as_ptr().add(i * d + k);
        let mut diff = [_mm512_setzero_ps(); V];
        for (v, dv) in diff.iter_mut().enumerate() {
            *dv = _mm512_sub_ps(_mm512_loadu_ps(p.add(16 * v)), sv[v]);
        }
        for g in 0..G {
            let rv = _mm512_set1_ps(*rb.get_unchecked(i * m + j0 + g));
            for v in 0..V {
                let rd = _mm512_mul_ps(rv, diff[v]);
                f[g][v] = _mm512_add_ps(f[g][v], rd);
                q[g][v] = _mm512_add_ps(q[g][v], _mm512_mul_ps(rd, diff[v]));
            }
        }
    }
    for g in 0..G {
        for v in 0..V {
            _mm512_storeu_ps(out[g].0.as_mut_ptr().add(16 * v), f[g][v]);
            _mm512_storeu_ps(out[g].1.as_mut_ptr().add(16 * v), q[g][v]);
        }
    }
}

/// Weighted sufficient statistics of one class, centred on a shift per component.
#[derive(Clone, Debug)]
pub struct Moments {
    /// Σ_n r_nm, shape (M,).
    pub mass: Array1<f64>,
    /// Σ_n r_nm (x_n − s_m), shape (M, D).
    pub first: Array2<f64>,
    /// Σ_n r_nm (x_n − s_m)², shape (M, D).
    pub second: Array2<f64>,
    /// The shift s_m, shape (M, D).
    pub shift: Array2<f64>,
}

impl Moments {
    /// Accumulates the statistics of features `x` (n, D) with responsibilities `resp` (n, M),
    /// centred on `shift` (M, D) — usually the current means.
    ///
    /// # Panics
    /// If the shapes disagree (callers check).
    pub fn accumulate(
        x: ArrayView2<'_, f32>,
        resp: ArrayView2<'_, f32>,
        shift: ArrayView2<'_, f32>,
    ) -> Self {
        let (n, d) = x.dim();
        let m = resp.ncols();
        assert_eq!(resp.nrows(), n);
        assert_eq!(shift.dim(), (m, d));
        let shift32: Vec<f32> = shift.iter().copied().collect();
        let shift64: Vec<f64> = shift32.iter().map(|&v| v as f64).collect();
        let x = x.as_standard_layout();
        let resp = resp.as_standard_layout();
        let xs = x.as_slice().expect("standard layout");
        let rs = resp.as_slice().expect("standard layout");
        let partials: Vec<Partial> = xs
            .par_chunks(CHUNK * d.max(1))
            .zip(rs.par_chunks(CHUNK * m))
            .map(|(xc, rc)| accumulate_chunk(xc, rc, &shift32, m, d))
            .collect();
        let mut mass = Array1::zeros(m);
        let mut first = Array2::zeros((m, d));
        let mut second = Array2::zeros((m, d));
        for (pm, pf, ps) in partials {
            mass += &Array1::from(pm);
            first += &Array2::from_shape_vec((m, d), pf).expect("shape");
            second += &Array2::from_shape_vec((m, d), ps).expect("shape");
        }
        Self {
            mass,
            first,
            second,
            shift: Array2::from_shape_vec((m, d), shift64).expect("shape"),
        }
    }

    /// Adds another set of statistics with the same shift (e.g. batch + memory).
    pub fn merge(&mut self, other: &Moments) {
        debug_assert_eq!(self.shift, other.shift);
        self.mass += &other.mass;
        self.first += &other.first;
        self.second += &other.second;
    }
}

/// New parameter estimates of one class, before momentum.
#[derive(Clone, Debug)]
pub struct Estimate {
    /// μ̂, shape (M, D).
    pub means: Array2<f64>,
    /// σ̂² + reg, shape (M, D).
    pub variances: Array2<f64>,
    /// Whether each component had enough mass to be estimated.
    pub estimated: Vec<bool>,
    /// Responsibility mass per component.
    pub mass: Array1<f64>,
    /// How much of the estimated variances the floor is: the mean over estimated
    /// components and channels of `floor / (σ̂² + floor)` (1: every variance is floor, the
    /// mixture a nearest-mean classifier; `None` when no component was estimated).
    pub floor_share: Option<f64>,
}

/// Turns moments into estimates, each variance raised by `floor` (an `f32` is an absolute
/// floor). Components with mass below [`MIN_MASS`] are marked not estimated (their
/// estimates are the shift and are not used).
pub fn estimate(
    moments: &Moments,
    floor: impl Into<VarianceFloor>,
    estimator: MeanEstimator,
) -> Estimate {
    let floor = floor.into();
    let (m, d) = moments.first.dim();
    let reg = floor_per_channel(moments, floor);
    let mut means = moments.shift.clone();
    let mut variances = Array2::from_shape_fn((m, d), |(_, k)| reg[k]);
    let mut estimated = vec![false; m];
    for j in 0..m {
        let nm = moments.mass[j];
        if nm < MIN_MASS {
            continue;
        }
        estimated[j] = true;
        let e1 = moments.first.row(j).mapv(|v| v / nm);
        let e2 = moments.second.row(j).mapv(|v| v / nm);
        let shift = moments.shift.row(j);
        let mut centre: Array1<f64> = &shift + &e1;
        if estimator == MeanEstimator::Direction {
            let norm = centre.dot(&centre).sqrt().max(1e-12);
            centre.mapv_inplace(|v| v / norm);
        }
        // Variance around `centre`: E[(x−s)²] − 2(c−s)E[x−s] + (c−s)².
        for k in 0..d {
            let delta = centre[k] - shift[k];
            let var = e2[k] - 2.0 * delta * e1[k] + delta * delta;
            variances[[j, k]] = var.max(0.0) + reg[k];
        }
        means.row_mut(j).assign(&centre);
    }
    let (mut share, mut n) = (0.0f64, 0usize);
    for j in (0..m).filter(|&j| estimated[j]) {
        for k in 0..d {
            share += reg[k] / variances[[j, k]];
            n += 1;
        }
    }
    Estimate {
        means,
        variances,
        estimated,
        mass: moments.mass.clone(),
        floor_share: (n > 0).then(|| share / n as f64),
    }
}

/// The floor added to each channel's variance (see [`VarFloor`]).
fn floor_per_channel(moments: &Moments, floor: VarianceFloor) -> Vec<f64> {
    let d = moments.first.ncols();
    let reg = floor.reg as f64;
    if floor.kind == VarFloor::Absolute {
        return vec![reg; d];
    }
    let pooled = pooled_variance(moments);
    let mean = pooled.iter().sum::<f64>() / d.max(1) as f64;
    pooled
        .iter()
        .map(|&v| (reg * v.max(1e-3 * mean)).max(MIN_RELATIVE_FLOOR))
        .collect()
}

/// Each channel's variance over all the weighted features behind `moments`, every
/// component pooled (zero without mass): from `E[x] = s + E[x−s]` and
/// `E[x²] = E[(x−s)²] + 2s E[x−s] + s²` per component.
pub fn pooled_variance(moments: &Moments) -> Vec<f64> {
    let (m, d) = moments.first.dim();
    let total: f64 = moments.mass.sum();
    if total < MIN_MASS {
        return vec![0.0; d];
    }
    (0..d)
        .map(|k| {
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for j in 0..m {
                let s = moments.shift[[j, k]];
                let (w, f1, f2) = (
                    moments.mass[j],
                    moments.first[[j, k]],
                    moments.second[[j, k]],
                );
                s1 += f1 + w * s;
                s2 += f2 + 2.0 * s * f1 + w * s * s;
            }
            let mean = s1 / total;
            (s2 / total - mean * mean).max(0.0)
        })
        .collect()
}

/// Blends estimates of class `class` into `params` with momentum:
/// `φ ← τ φ + (1 − τ) φ̂`. Unestimated components keep their parameters. With
/// `update_weights` (vanilla EM) the mixture weights are re-estimated as N_m / Σ N (floored
/// at [`MIN_WEIGHT`]) and blended with the mean momentum; otherwise they stay fixed.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    params: &mut super::GmmParams,
    class: usize,
    est: &Estimate,
    mean_momentum: f32,
    var_momentum: f32,
    update_weights: bool,
    estimator: MeanEstimator,
) {
    let tm = mean_momentum as f64;
    let tv = var_momentum as f64;
    let m = est.means.nrows();
    for j in 0..m {
        if !est.estimated[j] {
            continue;
        }
        let mut mean_row = params.means.index_axis_mut(Axis(0), class);
        let mut mu = mean_row.row_mut(j);
        for (old, new) in mu.iter_mut().zip(est.means.row(j)) {
            *old = (tm * *old as f64 + (1.0 - tm) * new) as f32;
        }
        if estimator == MeanEstimator::Direction {
            let norm = mu.dot(&mu).sqrt().max(1e-12);
            mu.mapv_inplace(|v| v / norm);
        }
        let mut var_row = params.variances.index_axis_mut(Axis(0), class);
        for (old, new) in var_row.row_mut(j).iter_mut().zip(est.variances.row(j)) {
            *old = (tv * *old as f64 + (1.0 - tv) * new) as f32;
        }
    }
    if update_weights {
        let total: f64 = est.mass.sum();
        if total >= MIN_MASS {
            let new_w: Vec<f64> = est
                .mass
                .iter()
                .map(|&v| (v / total).max(MIN_WEIGHT))
                .collect();
            let norm: f64 = new_w.iter().sum();
            let mut logw = params.log_weights.index_axis_mut(Axis(0), class);
            let blended: Vec<f64> = logw
                .iter()
                .zip(&new_w)
                .map(|(&old, &new)| tm * (old as f64).exp() + (1.0 - tm) * new / norm)
                .collect();
            let bnorm: f64 = blended.iter().sum();
            for (lw, b) in logw.iter_mut().zip(blended) {
                *lw = (b / bnorm).ln() as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn weighted_moments_by_hand() {
        let x = array![[1f32, 2.], [3., 6.], [5., 10.]];
        let r = array![[1f32, 0.], [1., 0.5], [0., 0.5]];
        let shift = array![[100f32, -100.], [0., 0.]];
        let mo = Moments::accumulate(x.view(), r.view(), shift.view());
        let est = estimate(&mo, 0.01, MeanEstimator::Euclidean);
        // comp 0: mean (2, 4), var ((1+1)/2, (4+4)/2) = (1, 4)
        assert!((est.means[[0, 0]] - 2.0).abs() < 1e-12 && (est.means[[0, 1]] - 4.0).abs() < 1e-12);
        assert!(
            (est.variances[[0, 0]] - 1.01).abs() < 1e-9
                && (est.variances[[0, 1]] - 4.01).abs() < 1e-9
        );
        // comp 1: weights 0.5, 0.5 on rows 1, 2: mean (4, 8), var (1, 4)
        assert!((est.means[[1, 1]] - 8.0).abs() < 1e-12);
        assert!((est.variances[[1, 0]] - 1.01).abs() < 1e-9);
        assert_eq!(est.mass, array![2.0, 1.0]);
    }

    /// The relative floor by hand: the same data as above, pooled over both components
    /// with masses 2 and 1 — weights (1, 1.5, 0.5) on rows x = (1, 3, 5) and (2, 6, 10):
    /// mean 8/3, E[x²] = (1 + 13.5 + 12.5)/3 = 9, variance 9 − 64/9 = 17/9 (and 4 × that).
    #[test]
    fn relative_floor_is_a_multiple_of_the_pooled_class_variance() {
        let x = array![[1f32, 2.], [3., 6.], [5., 10.]];
        let r = array![[1f32, 0.], [1., 0.5], [0., 0.5]];
        let shift = array![[100f32, -100.], [0., 0.]];
        let mo = Moments::accumulate(x.view(), r.view(), shift.view());
        let pooled = pooled_variance(&mo);
        assert!(
            (pooled[0] - 17.0 / 9.0).abs() < 1e-9 && (pooled[1] - 68.0 / 9.0).abs() < 1e-9,
            "{pooled:?}"
        );
        let floor = VarianceFloor {
            reg: 0.5,
            kind: VarFloor::Relative,
        };
        let est = estimate(&mo, floor, MeanEstimator::Euclidean);
        // component 0: variances (1, 4) plus 0.5 × (17/9, 68/9)
        assert!((est.variances[[0, 0]] - (1.0 + 8.5 / 9.0)).abs() < 1e-9);
        assert!((est.variances[[0, 1]] - (4.0 + 34.0 / 9.0)).abs() < 1e-9);
        // an absolute floor of the same value adds 0.5 everywhere
        let abs = estimate(&mo, 0.5, MeanEstimator::Euclidean);
        assert!((abs.variances[[0, 1]] - 4.5).abs() < 1e-9);
    }

    /// A channel that is 0 for every pixel (a dead ReLU) still gets a positive variance.
    #[test]
    fn relative_floor_keeps_a_dead_channel_positive() {
        let x = array![[1f32, 0.], [3., 0.], [5., 0.]];
        let r = array![[1f32], [1.], [1.]];
        let shift = array![[0f32, 0.]];
        let mo = Moments::accumulate(x.view(), r.view(), shift.view());
        let floor = VarianceFloor {
            reg: 0.1,
            kind: VarFloor::Relative,
        };
        let est = estimate(&mo, floor, MeanEstimator::Euclidean);
        // channel 0: var 8/3, floor 0.1 × 8/3; channel 1: floor 0.1 × 1e-3 × mean(8/3, 0)
        // (0.1 is an f32: 1e-6 of slack)
        assert!((est.variances[[0, 0]] - 1.1 * 8.0 / 3.0).abs() < 1e-6);
        let dead = 0.1 * 1e-3 * (8.0 / 3.0) / 2.0;
        assert!((est.variances[[0, 1]] - dead).abs() < 1e-9);
        assert!(est.variances.iter().all(|&v| v > 0.0));
    }

    #[test]
    fn empty_component_keeps_old_parameters() {
        let x = array![[1f32], [2.]];
        let r = array![[1f32, 0.], [1., 0.]];
        let mut p = super::super::GmmParams::standard(1, 2, 1);
        p.means[[0, 1, 0]] = 7.0;
        let shift = p.means.index_axis(Axis(0), 0).to_owned();
        let est = estimate(
            &Moments::accumulate(x.view(), r.view(), shift.view()),
            0.1,
            MeanEstimator::Euclidean,
        );
        apply(&mut p, 0, &est, 0.0, 0.0, true, MeanEstimator::Euclidean);
        assert_eq!(p.means[[0, 1, 0]], 7.0);
        assert!((p.means[[0, 0, 0]] - 1.5).abs() < 1e-6);
        assert!((p.variances[[0, 0, 0]] - 0.35).abs() < 1e-6);
        assert!(p.log_weights[[0, 1]].is_finite() && p.log_weights[[0, 1]] < -10.0);
    }

    #[test]
    fn momentum_blends_old_and_new() {
        let x = array![[10f32]];
        let r = array![[1f32]];
        let mut p = super::super::GmmParams::standard(1, 1, 1);
        let est = estimate(
            &Moments::accumulate(x.view(), r.view(), array![[0f32]].view()),
            1.0,
            MeanEstimator::Euclidean,
        );
        apply(&mut p, 0, &est, 0.9, 0.5, false, MeanEstimator::Euclidean);
        assert!((p.means[[0, 0, 0]] - 1.0).abs() < 1e-6);
        assert!((p.variances[[0, 0, 0]] - 1.0).abs() < 1e-6); // 0.5·1 + 0.5·(0 + 1)
    }

    /// The AVX2 and the scalar tile sums agree bit for bit (same operations per lane), on
    /// rows with zeros among the responsibilities.
    #[test]
    fn vector_tile_sums_equal_scalar_bit_for_bit() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // M = 11: two groups of five components and one of one on AVX-512
        for m in [1, 3, 5, 7, 11] {
            let (rows, d) = (BLOCK, 2 * TILE + 5);
            let x: Vec<f32> = (0..rows * d)
                .map(|_| rng.gen_range(-2.0f32..5.0).max(0.0))
                .collect();
            let r: Vec<f32> = (0..rows * m)
                .map(|_| if rng.gen_bool(0.3) { 0.0 } else { rng.gen() })
                .collect();
            let s: Vec<f32> = (0..TILE).map(|l| 0.1 * l as f32).collect();
            let s: &[f32; TILE] = s.as_slice().try_into().unwrap();
            for j in 0..m {
                for k in [0, TILE, d - TILE] {
                    let want = tile_sums_scalar(&x, &r, d, m, j, k, s);
                    let bits = |a: &[f32; TILE]| a.map(f32::to_bits);
                    let mut variants = vec![("dispatched", tile_sums(&x, &r, d, m, j, k, s))];
                    #[cfg(target_arch = "x86_64")]
                    {
                        if std::arch::is_x86_feature_detected!("avx2") {
                            // SAFETY: the processor supports AVX2, checked just above.
                            variants
                                .push(("AVX2", unsafe { tile_sums_avx2(&x, &r, d, m, j, k, s) }));
                        }
                    }
                    let mut all = vec![([0f32; TILE], [0f32; TILE]); m];
                    tile_sums_all(&x, &r, d, m, k, s, &mut all);
                    variants.push(("all components at once", all[j]));
                    for (name, got) in variants {
                        assert_eq!(bits(&got.0), bits(&want.0), "{name}");
                        assert_eq!(bits(&got.1), bits(&want.1), "{name}");
                    }
                }
            }
        }
    }

    /// The chunked, vectorised sums equal a plain f64 loop to 10⁻⁵ (relative) on
    /// network-like data: 20,000 rows of ReLU features, offset from the shift in some
    /// channels, soft responsibilities with exact zeros.
    #[test]
    fn chunked_moments_match_a_plain_f64_loop_on_realistic_data() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (n, m, d) = (20_000, 5, 64);
        let x = Array2::from_shape_fn((n, d), |(_, k)| {
            let v: f32 = rng.gen_range(-1.0..3.0) + (k % 4) as f32 * 2.0;
            v.max(0.0)
        });
        let r = Array2::from_shape_fn((n, m), |_| {
            let v: f32 = rng.gen();
            if v < 0.2 {
                0.0
            } else {
                v
            }
        });
        let shift = Array2::from_shape_fn((m, d), |(j, k)| 0.3 * j as f32 + (k % 3) as f32);
        let got = Moments::accumulate(x.view(), r.view(), shift.view());
        for j in 0..m {
            let mass: f64 = (0..n).map(|i| r[[i, j]] as f64).sum();
            assert!((got.mass[j] - mass).abs() <= 1e-5 * mass);
            for k in 0..d {
                let s = shift[[j, k]] as f64;
                let (mut f, mut s2) = (0f64, 0f64);
                for i in 0..n {
                    let diff = x[[i, k]] as f64 - s;
                    f += r[[i, j]] as f64 * diff;
                    s2 += r[[i, j]] as f64 * diff * diff;
                }
                let scale = s2.max(f.abs()).max(1.0);
                assert!((got.first[[j, k]] - f).abs() <= 1e-5 * scale, "{j} {k}");
                assert!((got.second[[j, k]] - s2).abs() <= 1e-5 * s2, "{j} {k}");
            }
        }
    }
}
