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
use super::simd::avx2_dispatch;
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

avx2_dispatch! {
    /// Rows of [`own_class_log_likelihood`]: `out[n, m] = c_m − ½ Σ_d (x_nd − μ_md)² w_md`.
    fn own_class_rows(out: &mut [f32], xs: &[f32], mu: &[f32], inv: &[f32], consts: &[f32])
        => own_class_rows_generic
}

#[inline(always)]
fn own_class_rows_generic(out: &mut [f32], xs: &[f32], mu: &[f32], inv: &[f32], consts: &[f32]) {
    let m = consts.len();
    let d = mu.len() / m.max(1);
    for (orow, xr) in out.chunks_mut(m).zip(xs.chunks(d.max(1))) {
        for j in 0..m {
            let (mj, wj) = (&mu[j * d..(j + 1) * d], &inv[j * d..(j + 1) * d]);
            orow[j] = consts[j] - 0.5 * weighted_squared_distance(xr, mj, wj);
        }
    }
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
