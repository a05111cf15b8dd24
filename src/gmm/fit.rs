//! Batch EM on a fixed set of labelled features: what `gmmseg fit-gmm` runs, what the post-hoc
//! GMM baseline uses, and the closed-form Gaussian discriminant analysis when M = 1.
//!
//! Each class is an independent mixture fitted on its own pixels. One iteration is a full
//! E-step (vanilla or Sinkhorn, soft or hard, per the config) followed by an M-step blended
//! with the configured momentum (0 for plain EM).

use ndarray::{Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::config::{Assignment, EStep, ValidGmmConfig};
use super::estep::{harden, vanilla_responsibilities, EStepStats};
use super::labels::ClassIndex;
use super::likelihood::own_class_log_likelihood;
use super::mstep::{apply, estimate, Moments};
use super::params::GmmParams;
use super::simd::simd_dispatch;
use super::sinkhorn::sinkhorn;
use super::vexp::exp_nonpositive;
use crate::error::{check_finite, GmmSegError, Result};

/// Options of a batch fit.
#[derive(Clone, Debug)]
pub struct FitOptions {
    /// Full E+M iterations. With M = 1 one iteration already gives the closed form.
    pub iterations: usize,
    /// Seed of the k-means++ initialisation (unused with `init`).
    pub seed: u64,
    /// Start exactly from these parameters instead of the data-driven initialisation.
    pub init: Option<GmmParams>,
}

/// What a batch fit reports besides the parameters.
#[derive(Clone, Debug)]
pub struct FitReport {
    /// Mean over valid pixels of log p(x|y) (log-sum-exp over the own class's components),
    /// evaluated at each E-step: the EM objective, non-decreasing for vanilla EM.
    pub mean_log_likelihood: Vec<f64>,
    /// Responsibilities of the last E-step, (N, M), over the components of each pixel's own
    /// class; rows of ignored pixels are zero.
    pub responsibilities: Array2<f32>,
    /// Balance and hardness of each iteration's E-step, all classes merged.
    pub e_steps: Vec<EStepStats>,
}

/// Gathers the rows `idx` of `x` into a contiguous array.
pub fn gather_rows(x: ArrayView2<'_, f32>, idx: &[usize]) -> Array2<f32> {
    x.select(Axis(0), idx)
}

/// Fits a class-conditional GMM to `x` (N, D) with labels grouped in `labels`; see
/// [`fit_with_progress`], which this calls without a progress callback.
///
/// # Errors
/// As [`fit_with_progress`].
pub fn fit(
    x: ArrayView2<'_, f32>,
    labels: &ClassIndex,
    cfg: &ValidGmmConfig,
    opts: &FitOptions,
) -> Result<(GmmParams, FitReport)> {
    fit_with_progress(x, labels, cfg, opts, &mut |_, _| {})
}

/// Fits a class-conditional GMM to `x` (N, D) with labels grouped in `labels`, calling
/// `on_iteration(k, mean log p(x|y))` after each of the `opts.iterations` E+M iterations
/// (k from 1), so that a caller can show progress without splitting the fit.
///
/// Errors: D mismatch with the config, non-finite features, a class with fewer than two
/// pixels (its variance is undefined), `init` of the wrong shape.
pub fn fit_with_progress(
    x: ArrayView2<'_, f32>,
    labels: &ClassIndex,
    cfg: &ValidGmmConfig,
    opts: &FitOptions,
    on_iteration: &mut dyn FnMut(usize, f64),
) -> Result<(GmmParams, FitReport)> {
    let (n, d) = x.dim();
    if n == 0 {
        return Err(GmmSegError::empty("features", "no rows"));
    }
    if d != cfg.dim {
        return Err(GmmSegError::shape(
            "features",
            format!(
                "features have D = {d} columns but the GMM is configured for D = {}",
                cfg.dim
            ),
        ));
    }
    if labels.num_pixels != n {
        return Err(GmmSegError::shape(
            "labels",
            format!("{} labels for {n} feature rows", labels.num_pixels),
        ));
    }
    if labels.num_classes() != cfg.num_classes {
        return Err(GmmSegError::shape(
            "labels",
            format!(
                "labels index {} classes, config has {}",
                labels.num_classes(),
                cfg.num_classes
            ),
        ));
    }
    check_finite("features", x.iter())?;
    let top = labels.num_classes().saturating_sub(1);
    for (c, idx) in labels.per_class.iter().enumerate() {
        if idx.is_empty() && c < top {
            let empty: Vec<String> = labels
                .per_class
                .iter()
                .enumerate()
                .filter(|(_, v)| v.is_empty())
                .map(|(k, _)| k.to_string())
                .collect();
            return Err(GmmSegError::input(
                "labels",
                format!(
                    "classes {} have no pixel although labels go up to {top} (C = largest label + 1, \
                     at flat index {}); relabel stray labels 255 to skip them, or pass parameters \
                     with --init for the intended number of classes",
                    empty.join(", "),
                    labels.per_class[top].first().copied().unwrap_or(0)
                ),
            ));
        }
        if idx.len() < 2 {
            return Err(GmmSegError::input(
                "labels",
                format!("class {c} has {} pixel(s); a Gaussian needs at least 2 (relabel it 255 to skip it)", idx.len()),
            ));
        }
    }
    let per_class: Vec<Array2<f32>> = labels
        .per_class
        .iter()
        .map(|idx| gather_rows(x, idx))
        .collect();
    let mut params = match &opts.init {
        Some(p) => {
            p.validate("init")?;
            let (pc, pm, pd) = p.means.dim();
            if (pc, pm, pd) != (cfg.num_classes, cfg.components, cfg.dim) {
                return Err(GmmSegError::shape(
                    "init",
                    format!(
                        "parameters are (C, M, D) = ({pc}, {pm}, {pd}), expected ({}, {}, {})",
                        cfg.num_classes, cfg.components, cfg.dim
                    ),
                ));
            }
            p.clone()
        }
        None => init_from_data(&per_class, cfg, &mut ChaCha8Rng::seed_from_u64(opts.seed)),
    };
    let m = cfg.components;
    let mut resp_all = Array2::zeros((n, m));
    // grown as iterations run (a huge iteration count must not allocate up front)
    let mut history = Vec::new();
    let mut e_steps = Vec::new();
    for _ in 0..opts.iterations {
        let mut total_ll = 0f64;
        let mut stats = EStepStats::default();
        // Classes are independent (class c's E- and M-step read and write only class c's
        // parameters), so they run in parallel and are applied in class order: the same
        // parameters as one class at a time. One task per class keeps its pixels in one
        // core's cache and spares the hundreds of short fork-joins of its inner loops.
        let outcomes: Vec<_> = per_class
            .par_iter()
            .enumerate()
            .map(|(c, xc)| {
                let (resp, ll_sum, class_stats) = e_step(xc.view(), &params, c, cfg);
                let est = estimate(
                    &Moments::accumulate(
                        xc.view(),
                        resp.view(),
                        params.means.index_axis(Axis(0), c),
                    ),
                    cfg.variance_floor(),
                    cfg.mean_estimator,
                );
                (resp, ll_sum, class_stats, est)
            })
            .collect();
        for (c, (resp, ll_sum, class_stats, est)) in outcomes.into_iter().enumerate() {
            total_ll += ll_sum;
            stats = stats.merge(&class_stats);
            apply(
                &mut params,
                c,
                &est,
                cfg.mean_momentum,
                cfg.var_momentum,
                matches!(cfg.e_step, EStep::Vanilla),
                cfg.mean_estimator,
            );
            // only the last E-step's responsibilities are reported
            if history.len() + 1 == opts.iterations {
                for (row, &i) in resp.axis_iter(Axis(0)).zip(&labels.per_class[c]) {
                    resp_all.row_mut(i).assign(&row);
                }
            }
        }
        if !(params.variances.iter().all(|v| v.is_finite())
            && params.means.iter().all(|v| v.is_finite())
            && total_ll.is_finite())
        {
            return Err(GmmSegError::input(
                "features",
                format!(
                    "EM iteration {} gave non-finite parameters or log-likelihood: the features are too large for float32 moments (largest |x| = {:e}); rescale them",
                    history.len() + 1,
                    x.iter().fold(0f32, |a, v| a.max(v.abs()))
                ),
            ));
        }
        history.push(total_ll / labels.num_valid() as f64);
        e_steps.push(stats);
        on_iteration(history.len(), total_ll / labels.num_valid() as f64);
    }
    Ok((
        params,
        FitReport {
            mean_log_likelihood: history,
            responsibilities: resp_all,
            e_steps,
        },
    ))
}

/// One E-step for class `c`: responsibilities (n, M), Σ_n log p(x_n | c) and the E-step's
/// balance statistics.
pub fn e_step(
    xc: ArrayView2<'_, f32>,
    params: &GmmParams,
    c: usize,
    cfg: &ValidGmmConfig,
) -> (Array2<f32>, f64, EStepStats) {
    e_step_blocks(&[xc], params, c, cfg)
}

/// [`e_step`] on the rows of several blocks taken as one set (e.g. a batch and a memory),
/// without copying the features together: responsibilities are (Σ rows, M), block by block.
pub fn e_step_blocks(
    blocks: &[ArrayView2<'_, f32>],
    params: &GmmParams,
    c: usize,
    cfg: &ValidGmmConfig,
) -> (Array2<f32>, f64, EStepStats) {
    let ll = own_class_ll_blocks(blocks, params, c);
    let ll_sum = sum_of_row_logsumexps(ll.view());
    let (resp, stats) = responsibilities(ll.view(), cfg);
    (resp, ll_sum, stats)
}

/// `Σ_n log Σ_m exp(ll_nm)` over fixed chunks of rows in parallel, the chunks' f64 sums
/// added in order (the same total for any thread count). Each row's `Σ_m exp(ll − max)` lies
/// in [1, M], so the logarithm is taken once per [`LN_GROUP`] rows, of their product, and the
/// exponentials run vectorised ([`exp_nonpositive_in_place`]): the per-row libm `exp`/`ln`
/// calls this replaces were a tenth of a batch EM iteration.
fn sum_of_row_logsumexps(ll: ArrayView2<'_, f32>) -> f64 {
    use rayon::prelude::*;
    const ROWS: usize = 4096;
    let m = ll.ncols();
    if m == 0 || ll.nrows() == 0 {
        return if m == 0 && ll.nrows() > 0 {
            f64::NEG_INFINITY
        } else {
            0.0
        };
    }
    let ll = ll.as_standard_layout();
    let flat = ll.as_slice().expect("standard layout");
    let partials: Vec<f64> = flat
        .par_chunks(ROWS * m)
        .map(|rows| chunk_row_logsumexp_sum(rows, m))
        .collect();
    partials.iter().sum()
}

simd_dispatch! {
    /// One chunk's `Σ_n log Σ_m exp(ll_nm)` of [`sum_of_row_logsumexps`], on the widest
    /// vector unit the processor has.
    fn chunk_row_logsumexp_sum(rows: &[f32], m: usize) -> f64 => chunk_row_logsumexp_sum_generic
}

#[inline(always)]
fn chunk_row_logsumexp_sum_generic(rows: &[f32], m: usize) -> f64 {
    let mut e = Vec::with_capacity(rows.len());
    let mut max_sum = 0f64;
    for row in rows.chunks_exact(m) {
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        if max == f32::NEG_INFINITY || max.is_nan() {
            // log Σ exp(−∞) = −∞; NaN stays NaN (the caller checks the total)
            return max as f64;
        }
        max_sum += max as f64;
        e.extend(row.iter().map(|&v| v as f64 - max as f64));
    }
    for v in e.iter_mut() {
        *v = exp_nonpositive(*v);
    }
    let mut log_sum = 0f64;
    for group in e.chunks(LN_GROUP * m) {
        let product: f64 = group
            .chunks_exact(m)
            .map(|r| r.iter().sum::<f64>())
            .product();
        log_sum += product.ln();
    }
    max_sum + log_sum
}

/// Rows whose `Σ_m exp(ll − max)` (each in [1, M]) are multiplied before one logarithm:
/// at most M^64, far inside f64's range for any M up to 10⁴.
const LN_GROUP: usize = 64;

/// The responsibilities of [`e_step_blocks`] alone, without the log-likelihood total (a
/// log-sum-exp per row) that only batch EM reports.
pub fn responsibilities_blocks(
    blocks: &[ArrayView2<'_, f32>],
    params: &GmmParams,
    c: usize,
    cfg: &ValidGmmConfig,
) -> (Array2<f32>, EStepStats) {
    responsibilities(own_class_ll_blocks(blocks, params, c).view(), cfg)
}

/// Own-class log π_m N(x; μ_m, σ_m) of the blocks' rows, stacked, shape (Σ rows, M).
fn own_class_ll_blocks(
    blocks: &[ArrayView2<'_, f32>],
    params: &GmmParams,
    c: usize,
) -> Array2<f32> {
    if let [single] = blocks {
        return own_class_log_likelihood(*single, params, c);
    }
    let parts: Vec<Array2<f32>> = blocks
        .iter()
        .map(|b| own_class_log_likelihood(*b, params, c))
        .collect();
    let views: Vec<ArrayView2<'_, f32>> = parts.iter().map(|p| p.view()).collect();
    ndarray::concatenate(Axis(0), &views).expect("every block has M columns")
}

/// Responsibilities (n, M) from own-class log-likelihoods under the configured E-step, with
/// their statistics (taken before a hard assignment).
fn responsibilities(ll: ArrayView2<'_, f32>, cfg: &ValidGmmConfig) -> (Array2<f32>, EStepStats) {
    let (mut resp, iterations) = if cfg.components == 1 {
        (Array2::ones((ll.nrows(), 1)), 0)
    } else {
        match &cfg.e_step {
            EStep::Vanilla => (vanilla_responsibilities(ll), 0),
            EStep::Sinkhorn(s) => {
                let out = sinkhorn(ll, s);
                (out.responsibilities, out.iterations)
            }
        }
    };
    let stats = EStepStats::of(resp.view(), iterations);
    if cfg.assignment == Assignment::Hard {
        harden(&mut resp);
    }
    (resp, stats)
}

/// Data-driven initialisation per class: k-means++ seeding and a few Lloyd iterations on a
/// subsample, then one hard M-step on all the class's pixels. Weights are the cluster
/// proportions for vanilla EM and uniform for Sinkhorn EM (whose weights are fixed at 1/M).
pub fn init_from_data<R: Rng>(
    per_class: &[Array2<f32>],
    cfg: &ValidGmmConfig,
    rng: &mut R,
) -> GmmParams {
    let (c, m, d) = (cfg.num_classes, cfg.components, cfg.dim);
    let mut params = GmmParams::standard(c, m, d);
    for (ci, xc) in per_class.iter().enumerate() {
        if xc.nrows() > 0 {
            init_class_from_data(&mut params, ci, xc.view(), cfg, rng);
        }
    }
    params
}

/// Re-initialises class `ci` of `params` from its features `xc` (n ≥ 1 rows), as
/// [`init_from_data`] does for every class.
pub fn init_class_from_data<R: Rng>(
    params: &mut GmmParams,
    ci: usize,
    xc: ArrayView2<'_, f32>,
    cfg: &ValidGmmConfig,
    rng: &mut R,
) {
    const SUBSAMPLE: usize = 20_000;
    const LLOYD_ITERS: usize = 10;
    let (m, d) = (cfg.components, cfg.dim);
    let n = xc.nrows();
    let sub: Vec<usize> = if n > SUBSAMPLE {
        rand::seq::index::sample(rng, n, SUBSAMPLE).into_vec()
    } else {
        (0..n).collect()
    };
    let xs = xc.select(Axis(0), &sub);
    let mut centres = kmeans_pp(xs.view(), m, rng);
    for _ in 0..LLOYD_ITERS {
        let assign = nearest(xs.view(), centres.view());
        let mut sums = Array2::<f64>::zeros((m, d));
        let mut counts = vec![0usize; m];
        for (row, &a) in xs.axis_iter(Axis(0)).zip(&assign) {
            counts[a] += 1;
            sums.row_mut(a).zip_mut_with(&row, |s, &v| *s += v as f64);
        }
        for (j, &count) in counts.iter().enumerate().filter(|(_, &n)| n > 0) {
            let mean = sums.row(j).mapv(|v| (v / count as f64) as f32);
            centres.row_mut(j).assign(&mean);
        }
    }
    params.means.index_axis_mut(Axis(0), ci).assign(&centres);
    params.variances.index_axis_mut(Axis(0), ci).fill(1.0);
    params
        .log_weights
        .index_axis_mut(Axis(0), ci)
        .fill(-(m as f32).ln());
    let assign = nearest(xc, centres.view());
    let mut resp = Array2::<f32>::zeros((n, m));
    for (i, &a) in assign.iter().enumerate() {
        resp[[i, a]] = 1.0;
    }
    let est = estimate(
        &Moments::accumulate(xc, resp.view(), centres.view()),
        cfg.variance_floor(),
        cfg.mean_estimator,
    );
    let vanilla = matches!(cfg.e_step, EStep::Vanilla);
    apply(params, ci, &est, 0.0, 0.0, vanilla, cfg.mean_estimator);
    // A component that got no pixel keeps mean = seed and gets the class variance.
    let class_var = xc.var_axis(Axis(0), 0.0).mapv(|v| v + cfg.var_reg);
    for j in 0..m {
        if !est.estimated[j] {
            params
                .variances
                .index_axis_mut(Axis(0), ci)
                .row_mut(j)
                .assign(&class_var);
        }
    }
}

/// k-means++ seeds: the first uniformly, each next with probability ∝ squared distance.
fn kmeans_pp<R: Rng>(x: ArrayView2<'_, f32>, k: usize, rng: &mut R) -> Array2<f32> {
    let n = x.nrows();
    let mut centres = Array2::zeros((k, x.ncols()));
    let first = rng.gen_range(0..n);
    centres.row_mut(0).assign(&x.row(first));
    let mut dist: Vec<f64> = x
        .axis_iter(Axis(0))
        .map(|r| sq_dist(r, centres.row(0)))
        .collect();
    for j in 1..k {
        let total: f64 = dist.iter().sum();
        let pick = if total > 0.0 {
            let mut t = rng.gen::<f64>() * total;
            let mut chosen = n - 1;
            for (i, &dv) in dist.iter().enumerate() {
                if t < dv {
                    chosen = i;
                    break;
                }
                t -= dv;
            }
            chosen
        } else {
            rng.gen_range(0..n)
        };
        centres.row_mut(j).assign(&x.row(pick));
        for (i, r) in x.axis_iter(Axis(0)).enumerate() {
            dist[i] = dist[i].min(sq_dist(r, centres.row(j)));
        }
    }
    centres
}

fn nearest(x: ArrayView2<'_, f32>, centres: ArrayView2<'_, f32>) -> Vec<usize> {
    x.axis_iter(Axis(0))
        .map(|r| {
            let mut best = (0, f64::INFINITY);
            for (j, c) in centres.axis_iter(Axis(0)).enumerate() {
                let dj = sq_dist(r, c);
                if dj < best.1 {
                    best = (j, dj);
                }
            }
            best.0
        })
        .collect()
}

fn sq_dist(a: ndarray::ArrayView1<'_, f32>, b: ndarray::ArrayView1<'_, f32>) -> f64 {
    a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum()
}
