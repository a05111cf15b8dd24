//! Class scores, posterior and anomaly score from component log-likelihoods, and the exact
//! own-class log-likelihood the EM steps use.
//!
//! The (N, C·M) component table itself is one GEMM ([`LogLikTable`], in
//! [`crate::ops::loglik`], where its differentiable twins live too). That form loses
//! precision when |μ| ≫ σ and x ≈ μ (catastrophic cancellation between its three terms): for
//! features of norm ~1, as in the paper, this is ~1e-6 relative. The EM steps therefore use
//! the direct form `Σ_d (x_d − μ_d)² w_d` for a class's own components
//! ([`own_class_log_likelihood`]), which is exact and costs only N·M·D.

use ndarray::parallel::prelude::*;
use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use super::config::Reduction;
use super::params::GmmParams;
use crate::ops::gemm::PAR_MIN_ROWS;
pub use crate::ops::loglik::LogLikTable;
use crate::ops::loglik::LN_2PI;

/// Reduces (N, C·M) component log-likelihoods to (N, C) class log-likelihoods log p(x|c).
pub fn class_scores(
    component_ll: ArrayView2<'_, f32>,
    components: usize,
    reduction: Reduction,
) -> Array2<f32> {
    let n = component_ll.nrows();
    let k = component_ll.ncols();
    let c = k / components;
    let input = component_ll.as_standard_layout();
    let flat = input.as_slice().expect("standard layout");
    let mut out = vec![0f32; n * c];
    out.par_chunks_mut(c * 256)
        .zip(flat.par_chunks(k * 256))
        .with_min_len(PAR_MIN_ROWS / 256)
        .for_each(|(o, rows)| {
            for (orow, row) in o.chunks_mut(c).zip(rows.chunks(k)) {
                for (slot, chunk) in orow.iter_mut().zip(row.chunks(components)) {
                    *slot = reduce(chunk, reduction);
                }
            }
        });
    Array2::from_shape_vec((n, c), out).expect("shape matches")
}

fn reduce(values: &[f32], reduction: Reduction) -> f32 {
    let max = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    match reduction {
        Reduction::Max => max,
        Reduction::LogSumExp => {
            if max == f32::NEG_INFINITY {
                return max;
            }
            max + values.iter().map(|v| (v - max).exp()).sum::<f32>().ln()
        }
    }
}

/// Posterior p(c|x) under a uniform class prior: a softmax of the class scores, row-wise.
pub fn posterior(class_ll: ArrayView2<'_, f32>) -> Array2<f32> {
    let mut out = class_ll.to_owned();
    out.axis_iter_mut(Axis(0))
        .into_par_iter()
        .for_each(|mut row| {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            row.mapv_inplace(|v| (v - max).exp());
            let total: f32 = row.sum();
            row.mapv_inplace(|v| v / total);
        });
    out
}

/// Anomaly score −max_c log p(x|c): high where no class explains the feature.
pub fn anomaly_scores(class_ll: ArrayView2<'_, f32>) -> ndarray::Array1<f32> {
    class_ll.map_axis(Axis(1), |row| {
        -row.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    })
}

/// What a fitted GMM says about feature rows: class log-likelihoods, posterior, arg-max
/// class and anomaly score (what `gmmseg score` writes).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureScores {
    /// log p(x|c) with the components reduced, (N, C).
    pub class_loglik: Array2<f32>,
    /// p(c|x) under a uniform prior, (N, C).
    pub posterior: Array2<f32>,
    /// arg max_c log p(x|c), (N,).
    pub predicted: Vec<usize>,
    /// −max_c log p(x|c), (N,).
    pub anomaly: ndarray::Array1<f32>,
}

/// Scores feature rows `x` (N, D) under `params`; `what` names the features in errors.
///
/// # Errors
/// [`crate::GmmSegError::Shape`] when D differs from the GMM's; [`crate::GmmSegError::NonFinite`] for a
/// NaN or infinite feature.
pub fn score_features(
    params: &GmmParams,
    x: ArrayView2<'_, f32>,
    reduction: Reduction,
    what: &str,
) -> crate::Result<FeatureScores> {
    if x.ncols() != params.dim() {
        return Err(crate::GmmSegError::shape(
            what,
            format!(
                "features have D = {} but the GMM has D = {}",
                x.ncols(),
                params.dim()
            ),
        ));
    }
    crate::error::check_finite(what, x.iter())?;
    let ll = params.loglik_table().compute(x);
    let class_loglik = class_scores(ll.view(), params.components(), reduction);
    let predicted = class_loglik
        .axis_iter(Axis(0))
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |b, (i, &v)| if v > row[b] { i } else { b })
        })
        .collect();
    Ok(FeatureScores {
        posterior: posterior(class_loglik.view()),
        anomaly: anomaly_scores(class_loglik.view()),
        predicted,
        class_loglik,
    })
}

/// Exact log π_m N(x_n; μ_cm, σ_cm) for the M components of one class, shape (n, M), by the
/// direct form `Σ_d (x_d − μ_d)² / σ²_d` (no cancellation; used by the E-steps).
pub fn own_class_log_likelihood(
    x: ArrayView2<'_, f32>,
    params: &GmmParams,
    class: usize,
) -> Array2<f32> {
    let (means, vars, log_w) = params.class(class);
    let m = means.nrows();
    let d = means.ncols();
    // Contiguous copies so that the inner loop runs over plain slices and vectorises.
    let mu: Vec<f32> = means.iter().copied().collect();
    let inv: Vec<f32> = vars.iter().map(|v| 1.0 / v).collect();
    let consts: Vec<f32> = (0..m)
        .map(|j| {
            log_w[j] - 0.5 * (d as f32 * LN_2PI + vars.row(j).iter().map(|v| v.ln()).sum::<f32>())
        })
        .collect();
    let x = x.as_standard_layout();
    let xs = x.as_slice().expect("standard layout");
    let n = x.nrows();
    let mut out = vec![0f32; n * m];
    out.par_chunks_mut(m * 256)
        .zip(xs.par_chunks(d * 256))
        .with_min_len(PAR_MIN_ROWS / 256)
        .for_each(|(o, rows)| own_class_rows(o, rows, &mu, &inv, &consts));
    Array2::from_shape_vec((n, m), out).expect("shape matches")
}

/// `Σ_d (x_d − μ_d)² w_d` over eight independent partial sums: a single running f32 sum is a
/// serial chain the compiler may not reorder, eight lanes vectorise (one AVX register).
#[inline(always)]
fn weighted_squared_distance(x: &[f32], mu: &[f32], w: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut acc = [0f32; LANES];
    let (xc, mc, wc) = (
        x.chunks_exact(LANES),
        mu.chunks_exact(LANES),
        w.chunks_exact(LANES),
    );
    let tail: f32 = xc
        .remainder()
        .iter()
        .zip(mc.remainder())
        .zip(wc.remainder())
        .map(|((&xv, &mv), &wv)| (xv - mv) * (xv - mv) * wv)
        .sum();
    for ((xs, ms), ws) in xc.zip(mc).zip(wc) {
        for l in 0..LANES {
            let diff = xs[l] - ms[l];
            acc[l] += diff * diff * ws[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Rows of [`own_class_log_likelihood`]: `out[n, m] = c_m − ½ Σ_d (x_nd − μ_md)² w_md`, on
/// AVX2 when the processor has it ([`own_class_rows_avx2`]), else one row at a time. (An
/// AVX-512 copy — two components per register, the eight lanes of eight rows reduced by a
/// register transpose, bit for bit the same — measured no faster on an AVX-512 Zen 5, 6
/// December: 42.2–42.9 ms per EM iteration against 42.4–43.2.)
fn own_class_rows(out: &mut [f32], xs: &[f32], mu: &[f32], inv: &[f32], consts: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the processor supports AVX2, checked just above.
            return unsafe { own_class_rows_avx2(out, xs, mu, inv, consts) };
        }
    }
    own_class_rows_scalar(out, xs, mu, inv, consts)
}

/// [`own_class_rows`] one row at a time, the reference of [`own_class_rows_avx2`].
fn own_class_rows_scalar(out: &mut [f32], xs: &[f32], mu: &[f32], inv: &[f32], consts: &[f32]) {
    let m = consts.len();
    let d = mu.len() / m.max(1);
    for (orow, xr) in out.chunks_mut(m).zip(xs.chunks(d.max(1))) {
        for j in 0..m {
            let (mj, wj) = (&mu[j * d..(j + 1) * d], &inv[j * d..(j + 1) * d]);
            orow[j] = consts[j] - 0.5 * weighted_squared_distance(xr, mj, wj);
        }
    }
}

/// Rows interleaved in [`own_class_rows_avx2`]: one row's eight-lane sum is a serial chain of
/// adds (latency-bound: each add waits on the previous one), four rows are four independent
/// chains that keep the add unit busy. (Left to itself the compiler vectorised the
/// interleaved loop across rows instead, with shuffles: slower than one row at a time.)
#[cfg(target_arch = "x86_64")]
const INTERLEAVED_ROWS: usize = 4;

/// [`own_class_rows_scalar`] in AVX2 registers, [`INTERLEAVED_ROWS`] rows per component at
/// a time. Each lane runs the same IEEE operations in the same order as a lane of
/// [`weighted_squared_distance`] (no fused multiply-add), and the lanes and the tail are
/// added as it adds them, so the two agree bit for bit (test).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn own_class_rows_avx2(
    out: &mut [f32],
    xs: &[f32],
    mu: &[f32],
    inv: &[f32],
    consts: &[f32],
) {
    use std::arch::x86_64::*;
    const LANES: usize = 8;
    let m = consts.len();
    let d = mu.len() / m.max(1);
    if m == 0 || d == 0 {
        // no rows to pair with (D = 0 leaves `xs` empty), as the scalar loop does
        return;
    }
    let rows = (out.len() / m).min(xs.len() / d);
    let grouped = rows / INTERLEAVED_ROWS * INTERLEAVED_ROWS;
    let full = d / LANES * LANES;
    let mut lanes = [0f32; LANES];
    for first in (0..grouped).step_by(INTERLEAVED_ROWS) {
        for j in 0..m {
            let (mj, wj) = (&mu[j * d..(j + 1) * d], &inv[j * d..(j + 1) * d]);
            let mut acc = [_mm256_setzero_ps(); INTERLEAVED_ROWS];
            for k in (0..full).step_by(LANES) {
                // in bounds: k + LANES ≤ full ≤ d, and row first + r < rows
                let mv = _mm256_loadu_ps(mj.as_ptr().add(k));
                let wv = _mm256_loadu_ps(wj.as_ptr().add(k));
                for (r, a) in acc.iter_mut().enumerate() {
                    let xv = _mm256_loadu_ps(xs.as_ptr().add((first + r) * d + k));
                    let diff = _mm256_sub_ps(xv, mv);
                    *a = _mm256_add_ps(*a, _mm256_mul_ps(_mm256_mul_ps(diff, diff), wv));
                }
            }
            for (r, a) in acc.iter().enumerate() {
                let xr = &xs[(first + r) * d..(first + r + 1) * d];
                let tail: f32 = xr[full..]
                    .iter()
                    .zip(&mj[full..])
                    .zip(&wj[full..])
                    .map(|((&xv, &mv), &wv)| (xv - mv) * (xv - mv) * wv)
                    .sum();
                _mm256_storeu_ps(lanes.as_mut_ptr(), *a);
                let sum = lanes.iter().sum::<f32>() + tail;
                out[(first + r) * m + j] = consts[j] - 0.5 * sum;
            }
        }
    }
    own_class_rows_scalar(&mut out[grouped * m..], &xs[grouped * d..], mu, inv, consts);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::loglik::ROW_CHUNK;
    use ndarray::{array, Array3};

    fn params_2x2() -> GmmParams {
        GmmParams {
            means: Array3::from_shape_vec((2, 2, 2), vec![0., 0., 1., 2., -1., 0.5, 3., -3.])
                .unwrap(),
            variances: Array3::from_shape_vec((2, 2, 2), vec![1., 1., 0.5, 2., 0.25, 1., 4., 0.1])
                .unwrap(),
            log_weights: array![[0.3f32.ln(), 0.7f32.ln()], [0.5f32.ln(), 0.5f32.ln()]],
        }
    }

    #[test]
    fn interleaved_avx2_rows_equal_one_row_at_a_time_bit_for_bit() {
        // Row counts around the interleaving (4), D with and without a tail past 8 lanes,
        // values far apart in scale so that the order of additions shows in the last bits.
        for (rows, d, m) in [
            (0, 8, 3),
            (1, 8, 1),
            (3, 13, 5),
            (9, 64, 5),
            (11, 7, 2),
            (17, 70, 4),
            (16, 64, 5),
            (29, 24, 3),
        ] {
            let wave =
                |i: usize, k: u32| ((i * 2654435761 % 1000) as f32 / 97.0).powi(k as i32) - 3.0;
            let xs: Vec<f32> = (0..rows * d).map(|i| wave(i, 2)).collect();
            let mu: Vec<f32> = (0..m * d).map(|i| wave(i + 7, 1)).collect();
            let inv: Vec<f32> = (0..m * d).map(|i| 0.01 + wave(i + 3, 1).abs()).collect();
            let consts: Vec<f32> = (0..m).map(|j| -(j as f32) * 1.5).collect();
            let mut want = vec![0f32; rows * m];
            own_class_rows_scalar(&mut want, &xs, &mu, &inv, &consts);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let mut got = vec![0f32; rows * m];
            own_class_rows(&mut got, &xs, &mu, &inv, &consts);
            assert_eq!(
                bits(&got),
                bits(&want),
                "dispatched: rows {rows}, D {d}, M {m}"
            );
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the processor supports AVX2, checked just above.
                    unsafe { own_class_rows_avx2(&mut got, &xs, &mu, &inv, &consts) };
                    assert_eq!(bits(&got), bits(&want), "AVX2: rows {rows}, D {d}, M {m}");
                }
            }
        }
    }

    #[test]
    fn channel_major_entry_point_equals_pixel_rows() {
        // (B, D, H, W) = (2, 2, 3, 5): pixels of both images, several per parallel block.
        let (b, d, h, w) = (2, 2, 3, 5);
        let values: Vec<f32> = (0..b * d * h * w)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
            .collect();
        let table = params_2x2().loglik_table();
        let rows = crate::ops::layout::nchw_to_rows(&values, (b, d, h, w));
        let want = table.compute(ArrayView2::from_shape((b * h * w, d), &rows).unwrap());
        let got = table.compute_nchw(&values, (b, d, h, w));
        assert_eq!(got.dim(), want.dim());
        for (x, y) in got.iter().zip(want.iter()) {
            assert!((x - y).abs() <= 1e-5 * y.abs().max(1.0), "{x} vs {y}");
        }
    }

    #[test]
    fn gemm_form_matches_the_density_by_hand() {
        let p = params_2x2();
        let x = array![[0.5f32, -1.0], [2.0, 2.0], [0.0, 0.0]];
        let ll = p.loglik_table().compute(x.view());
        for n in 0..3 {
            for c in 0..2 {
                for m in 0..2 {
                    let mut expected = p.log_weights[[c, m]] as f64;
                    for d in 0..2 {
                        let (xv, mu, var) = (
                            x[[n, d]] as f64,
                            p.means[[c, m, d]] as f64,
                            p.variances[[c, m, d]] as f64,
                        );
                        expected += -0.5 * (2.0 * std::f64::consts::PI * var).ln()
                            - 0.5 * (xv - mu).powi(2) / var;
                    }
                    let got = ll[[n, c * 2 + m]] as f64;
                    assert!(
                        (got - expected).abs() < 1e-5,
                        "n={n} c={c} m={m}: {got} vs {expected}"
                    );
                    let direct = own_class_log_likelihood(x.view(), &p, c)[[n, m]] as f64;
                    assert!((direct - expected).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn hand_computed_standard_normal() {
        // log N(0; 0, 1) in 2-D = −log(2π) = −1.8378771
        let p = GmmParams::standard(1, 1, 2);
        let ll = p.loglik_table().compute(array![[0f32, 0.]].view());
        assert!((ll[[0, 0]] + 1.837_877_1).abs() < 1e-6);
    }

    #[test]
    fn reductions_posterior_and_anomaly() {
        let ll = array![[-1f32, -2., -10., -3.]];
        let max = class_scores(ll.view(), 2, Reduction::Max);
        assert_eq!(max, array![[-1f32, -3.]]);
        let lse = class_scores(ll.view(), 2, Reduction::LogSumExp);
        assert!((lse[[0, 0]] - (-1f32 + (1.0 + (-1f32).exp()).ln())).abs() < 1e-6);
        let post = posterior(max.view());
        assert!((post[[0, 0]] - 1.0 / (1.0 + (-2f32).exp())).abs() < 1e-6);
        assert!((post.sum() - 1.0).abs() < 1e-6);
        assert_eq!(anomaly_scores(max.view())[0], 1.0);
    }

    #[test]
    fn chunking_does_not_change_results() {
        let p = params_2x2();
        let n = ROW_CHUNK + 37;
        let x = Array2::from_shape_fn((n, 2), |(i, j)| ((i * 7 + j * 3) % 11) as f32 * 0.3 - 1.5);
        let ll = p.loglik_table().compute(x.view());
        let single = p.loglik_table().compute(x.slice(ndarray::s![n - 1.., ..]));
        for k in 0..4 {
            assert!((ll[[n - 1, k]] - single[[0, k]]).abs() < 1e-5);
        }
    }

    #[test]
    fn score_features_agrees_with_its_parts_and_rejects_bad_input() {
        let p = params_2x2();
        let x = array![[0.1f32, -0.2], [3.0, 2.5], [-1.0, 4.0]];
        let s = score_features(&p, x.view(), Reduction::Max, "x").unwrap();
        let ll = p.loglik_table().compute(x.view());
        let cls = class_scores(ll.view(), p.components(), Reduction::Max);
        assert_eq!(s.class_loglik, cls);
        for (n, row) in cls.axis_iter(Axis(0)).enumerate() {
            let best = (0..row.len()).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            assert_eq!(s.predicted[n], best);
            assert!((s.anomaly[n] + row[best]).abs() < 1e-6);
            assert!((s.posterior.row(n).sum() - 1.0).abs() < 1e-5);
        }
        let e = score_features(
            &p,
            array![[0.0f32, 1.0, 2.0]].view(),
            Reduction::Max,
            "feats.npy",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("feats.npy") && e.to_string().contains("D = 3"),
            "{e}"
        );
        let e = score_features(
            &p,
            array![[f32::NAN, 1.0]].view(),
            Reduction::Max,
            "feats.npy",
        )
        .unwrap_err();
        assert!(matches!(e, crate::GmmSegError::NonFinite { .. }), "{e}");
    }
}
