//! The Sinkhorn E-step: responsibilities under the equipartition constraint.
//!
//! Among a class's n pixels and its M components, find the transport plan P (n × M) that
//! maximises `⟨P, S⟩ + ε H(P)` subject to every pixel having mass 1/n and every component
//! mass 1/M, where `S_jm = log π_m N(x_j; μ_m, σ_m)` (the negative cost). Its solution is
//! `P = diag(e^u) exp(S/ε) diag(e^v)`, found by Sinkhorn–Knopp iterations on the potentials
//! u, v. The potentials stay **in the log domain** (f64), so that S/ε, which reaches 10⁴ for
//! raw costs and ε = 0.05, never overflows — the reference code exponentiates directly,
//! which overflows in f16 and divides by zero when max|S| = 0.
//!
//! The first component step is a log-sum-exp over each column (taken from K below, when it
//! is used, with one exponential per row rather than per entry). After it, one row-softmax
//! pass `Q = softmax_m(S/ε + v)` serves both the pixel step of an iteration and the component
//! step of the next (`P = Q/n`, and the column log-sum-exp is `−v_m − ln n + ln Σ_j Q_jm`).
//! Because Q does not change when a row of S/ε is shifted, the passes run on
//! `K = exp(S/ε − row max)`, computed once, whenever every row's spread is small enough for K
//! to stay far from underflow (always with rescaled costs, where it is at most 2/ε): a pass
//! is then two multiply-adds per entry instead of an exponential, and only the last pass
//! writes Q. Raw costs with larger spreads run the passes on S/ε itself, one exponential
//! per entry; both give the same plan to rounding (a test compares them).
//!
//! Each iteration first normalises the components, then the pixels, as the reference code
//! does, so every returned row sums to 1 (responsibilities are `n·P`); the component
//! masses approach n/M as iterations grow.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::config::SinkhornConfig;
use super::simd::simd_dispatch;
use super::vexp::{exp_nonpositive, exp_nonpositive_in_place};

/// Rows per parallel chunk; fixed so that results do not depend on the thread count.
const CHUNK: usize = 4096;

/// Outcome of a Sinkhorn solve.
#[derive(Clone, Debug)]
pub struct SinkhornOutput {
    /// Responsibilities `n·P`, shape (n, M): rows sum to 1, columns approach n/M.
    pub responsibilities: Array2<f32>,
    /// Iterations actually run (fewer than configured when the tolerance was met).
    pub iterations: usize,
    /// Largest relative deviation of a component's mass from n/M after the last iteration.
    pub max_marginal_error: f64,
}

/// Solves the entropic equipartition problem for one class.
///
/// `own_ll`: (n, M) own-class log-likelihoods including log π_m. An empty input gives an
/// empty output. Non-finite entries are treated as −∞ (impossible assignments).
pub fn sinkhorn(own_ll: ArrayView2<'_, f32>, cfg: &SinkhornConfig) -> SinkhornOutput {
    let (n, m) = own_ll.dim();
    if n == 0 || m == 0 {
        return SinkhornOutput {
            responsibilities: Array2::zeros((n, m)),
            iterations: 0,
            max_marginal_error: 0.0,
        };
    }
    let mut scale = 1.0 / cfg.epsilon as f64;
    if cfg.rescale_cost {
        // The reference code divides S by max|S| (one scalar per class); guard the zero case
        // its NaN check misses.
        let own = own_ll.as_standard_layout();
        let max_abs = own
            .as_slice()
            .expect("standard layout")
            .par_chunks(CHUNK * m)
            .map(largest_finite_magnitude)
            .reduce(|| 0.0, f64::max);
        if max_abs > 0.0 {
            scale /= max_abs;
        }
    }
    let own = own_ll.as_standard_layout();
    let mut log_k = vec![0f64; n * m];
    log_k
        .par_chunks_mut(CHUNK * m)
        .zip(
            own.as_slice()
                .expect("standard layout")
                .par_chunks(CHUNK * m),
        )
        .for_each(|(k, s)| scale_costs(k, s, scale));
    let log_b = -(m as f64).ln();
    // Iteration 1's component step, from u = 0: v_m = log b − LSE_j log K_jm.
    let first_step = |col_lse: Vec<f64>| -> Vec<f64> {
        col_lse
            .iter()
            .map(|&l| {
                if l == f64::NEG_INFINITY {
                    0.0
                } else {
                    log_b - l
                }
            })
            .collect()
    };
    // Rescaled costs lie in [−1/ε, 1/ε], so their rows spread at most 2/ε: within the
    // exponential domain's bound whenever ε ≥ 0.01 (1e-9 of margin for the rounding of the
    // scale), which spares the pass that measures it.
    let spread_bounded =
        cfg.rescale_cost && 2.0 / cfg.epsilon as f64 <= EXP_DOMAIN_MAX_ROW_SPREAD * (1.0 - 1e-9);
    if spread_bounded || max_row_spread(&log_k, m) <= EXP_DOMAIN_MAX_ROW_SPREAD {
        let (k, row_max) = row_scaled_kernel(&log_k, n, m);
        let col_lse = column_logsumexp_from_kernel(&k, &row_max, m)
            .unwrap_or_else(|| column_logsumexp(&log_k, m));
        exp_domain(&log_k, k, first_step(col_lse), n, m, cfg)
    } else {
        let v = first_step(column_logsumexp(&log_k, m));
        log_domain(&log_k, v, 0, n, m, cfg)
    }
}

simd_dispatch! {
    /// The largest finite |S| of a chunk, as f64 (f32 → f64 is exact and monotone, so the
    /// max is taken in f32, branch-free), on the widest vector unit the processor has.
    fn largest_finite_magnitude(s: &[f32]) -> f64 => largest_finite_magnitude_generic
}

#[inline(always)]
fn largest_finite_magnitude_generic(s: &[f32]) -> f64 {
    s.iter().fold(0f32, |a, &v| {
        let abs = v.abs();
        a.max(if abs.is_finite() { abs } else { 0.0 })
    }) as f64
}

simd_dispatch! {
    /// `log K = S · scale` of one chunk in f64, −∞ for a non-finite S (an impossible
    /// assignment), on the widest vector unit the processor has.
    fn scale_costs(k: &mut [f64], s: &[f32], scale: f64) => scale_costs_generic
}

#[inline(always)]
fn scale_costs_generic(k: &mut [f64], s: &[f32], scale: f64) {
    for (kv, &sv) in k.iter_mut().zip(s) {
        *kv = if sv.is_finite() {
            sv as f64 * scale
        } else {
            f64::NEG_INFINITY
        };
    }
}

/// `K = exp(log K − row max)`, stored chunk by chunk ([`CHUNK`] rows), each chunk column by
/// column (see [`exp_domain`]), with each row's max (−∞ for a row with no finite entry,
/// whose K stays 0).
fn row_scaled_kernel(log_k: &[f64], n: usize, m: usize) -> (Vec<f64>, Vec<f64>) {
    let mut k = vec![0f64; n * m];
    let mut row_max = vec![0f64; n];
    k.par_chunks_mut(CHUNK * m)
        .zip(row_max.par_chunks_mut(CHUNK))
        .zip(log_k.par_chunks(CHUNK * m))
        .for_each(|((kc, mc), lc)| chunk_row_scaled_kernel(kc, mc, lc, m));
    (k, row_max)
}

simd_dispatch! {
    /// One chunk of [`row_scaled_kernel`], on the widest vector unit the processor has.
    fn chunk_row_scaled_kernel(kc: &mut [f64], mc: &mut [f64], lc: &[f64], m: usize)
        => chunk_row_scaled_kernel_generic
}

#[inline(always)]
fn chunk_row_scaled_kernel_generic(kc: &mut [f64], mc: &mut [f64], lc: &[f64], m: usize) {
    let rows = lc.len() / m;
    for (j, (row, mx)) in lc.chunks_exact(m).zip(mc.iter_mut()).enumerate() {
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        *mx = max;
        for (c, &x) in row.iter().enumerate() {
            // a row with no finite entry stays −∞: K = 0, Q = 0
            kc[c * rows + j] = if max > f64::NEG_INFINITY {
                x - max
            } else {
                f64::NEG_INFINITY
            };
        }
    }
    for v in kc.iter_mut() {
        *v = exp_nonpositive(*v);
    }
}

/// Spread of the finite row maxima within which [`column_logsumexp_from_kernel`] holds:
/// every row's weight `e^(row max − G)` is then at least e^−400 and every entry of K at
/// least e^−200 ([`EXP_DOMAIN_MAX_ROW_SPREAD`]), so each term `e^(log K_jm − G)` of a column
/// sum is at least e^−600 ≈ 10^−261, a normal f64 (a wider window let a column whose
/// entries all lie far below G sum to subnormals or 0).
const KERNEL_LSE_MAX_ROW_MAX_SPREAD: f64 = 400.0;

/// `LSE_j log K_jm` from the row-scaled kernel: `G + ln Σ_j K_jm e^(rowmax_j − G)` with `G`
/// the largest row max, which takes n exponentials instead of the n·M of
/// [`column_logsumexp`]. `None` when the row maxima spread beyond
/// [`KERNEL_LSE_MAX_ROW_MAX_SPREAD`] (a row's weight could underflow), or no row is finite.
fn column_logsumexp_from_kernel(k: &[f64], row_max: &[f64], m: usize) -> Option<Vec<f64>> {
    let finite = || row_max.iter().copied().filter(|v| v.is_finite());
    let g = finite().fold(f64::NEG_INFINITY, f64::max);
    let lo = finite().fold(f64::INFINITY, f64::min);
    if !(g.is_finite() && g - lo <= KERNEL_LSE_MAX_ROW_MAX_SPREAD) {
        return None;
    }
    let partials: Vec<Vec<f64>> = k
        .par_chunks(CHUNK * m)
        .zip(row_max.par_chunks(CHUNK))
        .map(|(kc, mc)| chunk_weighted_column_sums(kc, mc, g))
        .collect();
    let mut sums = vec![0f64; m];
    for p in partials {
        for (s, x) in sums.iter_mut().zip(p) {
            *s += x;
        }
    }
    Some(
        sums.iter()
            .map(|&s| {
                if s > 0.0 {
                    g + s.ln()
                } else {
                    f64::NEG_INFINITY
                }
            })
            .collect(),
    )
}

simd_dispatch! {
    /// One chunk's `Σ_j K_jm e^(rowmax_j − g)` of [`column_logsumexp_from_kernel`], on the
    /// widest vector unit the processor has.
    fn chunk_weighted_column_sums(kc: &[f64], mc: &[f64], g: f64) -> Vec<f64>
        => chunk_weighted_column_sums_generic
}

#[inline(always)]
fn chunk_weighted_column_sums_generic(kc: &[f64], mc: &[f64], g: f64) -> Vec<f64> {
    // rows with no finite entry have K = 0; their weight is set to 0 as well
    let mut w: Vec<f64> = mc
        .iter()
        .map(|&r| {
            if r.is_finite() {
                r - g
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    for v in w.iter_mut() {
        *v = exp_nonpositive(*v);
    }
    kc.chunks_exact(w.len()).map(|col| dot(col, &w)).collect()
}

/// Largest spread of a row of log K (over its finite entries) for which the iterations run
/// on K itself: every entry of a row, divided by the row's largest, is then at least
/// e^−200 ≈ 10^−87, far above f64's smallest normal number (10^−308). With rescaled costs
/// the spread is at most 2/ε (40 at the default ε = 0.05), so the default always qualifies.
const EXP_DOMAIN_MAX_ROW_SPREAD: f64 = 200.0;

/// Largest spread of the component potentials v for which the exponential domain goes on:
/// with entries ≥ e^−200 and column scales ≥ e^−400, a row's sum stays above 10^−260.
const EXP_DOMAIN_MAX_V_SPREAD: f64 = 400.0;

/// Sinkhorn–Knopp in the log domain from component potentials `v` after `done` iterations:
/// one row-softmax pass per iteration. Exact for any costs; each pass takes n·M
/// exponentials.
fn log_domain(
    log_k: &[f64],
    mut v: Vec<f64>,
    done: usize,
    n: usize,
    m: usize,
    cfg: &SinkhornConfig,
) -> SinkhornOutput {
    let log_a = -(n as f64).ln();
    let log_b = -(m as f64).ln();
    let mut iterations = done;
    loop {
        // Iteration t's pixel step and iteration t+1's component step share one pass:
        // Q = rowsoftmax(logK + v) gives u_j = log a − LSE_m(logK_jm + v_m), the plan
        // P = a·Q, and LSE_j(logK_jm + u_j) = log a − v_m + ln Σ_j Q_jm.
        let pass = row_softmax(log_k, &v, m);
        iterations += 1;
        let err = marginal_error(&pass.column_sums, n);
        let stop = cfg.tolerance.is_some_and(|tol| err <= tol);
        if iterations >= cfg.iterations.max(1) || stop {
            let responsibilities = Array2::from_shape_vec((n, m), pass.q).expect("shape matches");
            return SinkhornOutput {
                responsibilities,
                iterations,
                max_marginal_error: err,
            };
        }
        // No underflow to guard against here: after a component step every column of the
        // plan holds mass 1/M and the pixel step scales each row by at least 1/n (row masses
        // sum to 1), so Σ_j Q_jm ≥ 1/M. Only an all-impossible column sums to 0.
        for (vj, &sum) in v.iter_mut().zip(&pass.column_sums) {
            *vj = if sum > 0.0 {
                log_b - (log_a - *vj + sum.ln())
            } else {
                0.0
            };
        }
    }
}

/// The same iterations on `K = exp(log K − row max)` (the row scale cancels in Q): an
/// iteration is then two multiply-adds per entry and one division per row instead of an
/// exponential per entry, and only the last one writes Q. K comes from
/// [`row_scaled_kernel`], chunk by chunk ([`CHUNK`] rows), each chunk column by column, so
/// that both passes of an iteration run over contiguous columns and vectorise. The
/// potentials stay in the log domain (M numbers); if their spread ever leaves
/// [`EXP_DOMAIN_MAX_V_SPREAD`], the solve continues in [`log_domain`] from the same
/// potentials.
fn exp_domain(
    log_k: &[f64],
    k: Vec<f64>,
    mut v: Vec<f64>,
    n: usize,
    m: usize,
    cfg: &SinkhornConfig,
) -> SinkhornOutput {
    let target = n as f64 / m as f64;
    let mut iterations = 0;
    loop {
        let v_max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if v.iter().any(|&x| x - v_max < -EXP_DOMAIN_MAX_V_SPREAD) {
            return log_domain(log_k, v, iterations, n, m, cfg);
        }
        let b: Vec<f64> = v.iter().map(|&x| (x - v_max).exp()).collect();
        let column_sums = scaled_column_sums(&k, &b, m);
        iterations += 1;
        let err = marginal_error(&column_sums, n);
        let stop = cfg.tolerance.is_some_and(|tol| err <= tol);
        if iterations >= cfg.iterations.max(1) || stop {
            return SinkhornOutput {
                responsibilities: scaled_plan(&k, &b, n, m),
                iterations,
                max_marginal_error: err,
            };
        }
        // v_m ← log b − (log a − v_m + ln Σ_j Q_jm), as in the log domain
        for (vj, &sum) in v.iter_mut().zip(&column_sums) {
            *vj = if sum > 0.0 {
                *vj + (target / sum).ln()
            } else {
                0.0
            };
        }
    }
}

/// `1 / Σ_m K_jm b_m` for each row j of one column-major chunk of K (0 for a row of zeros).
#[inline(always)]
fn inverse_row_sums(kc: &[f64], b: &[f64], inv: &mut Vec<f64>) {
    let rows = kc.len() / b.len();
    inv.clear();
    inv.resize(rows, 0.0);
    for (col, &bm) in kc.chunks_exact(rows).zip(b) {
        for (r, &kv) in inv.iter_mut().zip(col) {
            *r += kv * bm;
        }
    }
    for r in inv.iter_mut() {
        *r = if *r > 0.0 { 1.0 / *r } else { 0.0 };
    }
}

simd_dispatch! {
    /// One chunk's part of [`scaled_column_sums`] (before the scale `b`), on the widest
    /// vector unit the processor has: the iterations' only pass over K.
    fn chunk_scaled_column_sums(kc: &[f64], b: &[f64], inv: &mut Vec<f64>) -> Vec<f64>
        => chunk_scaled_column_sums_generic
}

#[inline(always)]
fn chunk_scaled_column_sums_generic(kc: &[f64], b: &[f64], inv: &mut Vec<f64>) -> Vec<f64> {
    inverse_row_sums(kc, b, inv);
    kc.chunks_exact(inv.len())
        .map(|col| dot(col, inv))
        .collect()
}

simd_dispatch! {
    /// One chunk of [`scaled_plan`], on the widest vector unit the processor has.
    fn chunk_scaled_plan(qc: &mut [f32], kc: &[f64], b: &[f64], inv: &mut Vec<f64>)
        => chunk_scaled_plan_generic
}

#[inline(always)]
fn chunk_scaled_plan_generic(qc: &mut [f32], kc: &[f64], b: &[f64], inv: &mut Vec<f64>) {
    let m = b.len();
    inverse_row_sums(kc, b, inv);
    for (c, (col, &bm)) in kc.chunks_exact(inv.len()).zip(b).enumerate() {
        for (j, (&kv, &iv)) in col.iter().zip(inv.iter()).enumerate() {
            qc[j * m + c] = (kv * bm * iv) as f32;
        }
    }
}

/// `Σ_j x_j y_j` over eight partial sums (a single running sum would not vectorise).
#[inline(always)]
fn dot(x: &[f64], y: &[f64]) -> f64 {
    const LANES: usize = 8;
    let mut acc = [0f64; LANES];
    let (xc, yc) = (x.chunks_exact(LANES), y.chunks_exact(LANES));
    let tail: f64 = xc
        .remainder()
        .iter()
        .zip(yc.remainder())
        .map(|(a, b)| a * b)
        .sum();
    for (xs, ys) in xc.zip(yc) {
        for l in 0..LANES {
            acc[l] += xs[l] * ys[l];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// `Σ_j Q_jm` for `Q_jm = K_jm b_m / Σ_m' K_jm' b_m'` (K chunked column-major, see
/// [`exp_domain`]), the chunks' sums added in order (the same for any thread count).
fn scaled_column_sums(k: &[f64], b: &[f64], m: usize) -> Vec<f64> {
    let partials: Vec<Vec<f64>> = k
        .par_chunks(CHUNK * m)
        .map_init(Vec::new, |inv, kc| chunk_scaled_column_sums(kc, b, inv))
        .collect();
    let mut sums = vec![0f64; m];
    for p in partials {
        for (s, x) in sums.iter_mut().zip(p) {
            *s += x;
        }
    }
    sums.iter_mut().zip(b).for_each(|(s, bv)| *s *= bv);
    sums
}

/// The responsibilities `Q_jm = K_jm b_m / Σ_m' K_jm' b_m'` as f32, row-major (rows of
/// zeros stay 0).
fn scaled_plan(k: &[f64], b: &[f64], n: usize, m: usize) -> Array2<f32> {
    let mut q = vec![0f32; n * m];
    q.par_chunks_mut(CHUNK * m)
        .zip(k.par_chunks(CHUNK * m))
        .for_each_init(Vec::new, |inv, (qc, kc)| chunk_scaled_plan(qc, kc, b, inv));
    Array2::from_shape_vec((n, m), q).expect("shape matches")
}

/// The largest spread `max − min` of a row's finite entries (0 for rows with fewer than
/// two).
fn max_row_spread(log_k: &[f64], m: usize) -> f64 {
    log_k
        .par_chunks(CHUNK * m)
        .map(|kc| {
            kc.chunks(m)
                .map(|row| {
                    let (lo, hi) = row
                        .iter()
                        .filter(|x| x.is_finite())
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                            (lo.min(x), hi.max(x))
                        });
                    if hi >= lo {
                        hi - lo
                    } else {
                        0.0
                    }
                })
                .fold(0.0, f64::max)
        })
        .reduce(|| 0.0, f64::max)
}

/// One row-softmax pass: Q (n, M) as f32 responsibilities and Σ_j Q_jm in f64.
struct RowPass {
    q: Vec<f32>,
    column_sums: Vec<f64>,
}

/// `Q_jm = exp(logK_jm + v_m − LSE_m'(logK_jm' + v_m'))`, with deterministic chunked column
/// sums. A row with no finite entry gets Q = 0 (it takes no part in the transport).
fn row_softmax(log_k: &[f64], v: &[f64], m: usize) -> RowPass {
    let n = log_k.len() / m;
    let mut q = vec![0f32; n * m];
    let partials: Vec<Vec<f64>> = q
        .par_chunks_mut(CHUNK * m)
        .zip(log_k.par_chunks(CHUNK * m))
        .map(|(qc, kc)| {
            // Arguments of the whole chunk first, so that the exponentials run vectorised.
            let mut e = vec![0f64; kc.len()];
            for (er, kr) in e.chunks_mut(m).zip(kc.chunks(m)) {
                let max = kr
                    .iter()
                    .zip(v)
                    .fold(f64::NEG_INFINITY, |a, (k, vv)| a.max(k + vv));
                for ((ej, k), vv) in er.iter_mut().zip(kr).zip(v) {
                    // A row with no finite entry: every argument −∞, so Q = 0.
                    *ej = if max == f64::NEG_INFINITY {
                        f64::NEG_INFINITY
                    } else {
                        k + vv - max
                    };
                }
            }
            exp_nonpositive_in_place(&mut e);
            let mut cols = vec![0f64; m];
            for (qr, er) in qc.chunks_mut(m).zip(e.chunks(m)) {
                let total: f64 = er.iter().sum();
                if total == 0.0 {
                    continue;
                }
                let inv = 1.0 / total;
                for ((qj, ej), cj) in qr.iter_mut().zip(er).zip(cols.iter_mut()) {
                    let r = ej * inv;
                    *qj = r as f32;
                    *cj += r;
                }
            }
            cols
        })
        .collect();
    let mut column_sums = vec![0f64; m];
    for p in partials {
        for (c, x) in column_sums.iter_mut().zip(p) {
            *c += x;
        }
    }
    RowPass { q, column_sums }
}

/// Relative deviation of each component's mass `Σ_j P_jm = Σ_j Q_jm / n` from 1/M,
/// maximised over m.
fn marginal_error(column_sums: &[f64], n: usize) -> f64 {
    let target = 1.0 / column_sums.len() as f64;
    column_sums
        .iter()
        .map(|&c| ((c / n as f64 - target) / target).abs())
        .fold(0.0, f64::max)
}

/// `LSE_j logK_jm` for every m: a max pass, then one exponential per entry, with a
/// deterministic chunked reduction.
fn column_logsumexp(log_k: &[f64], m: usize) -> Vec<f64> {
    let maxes: Vec<Vec<f64>> = log_k
        .par_chunks(CHUNK * m)
        .map(|kc| {
            let mut acc = vec![f64::NEG_INFINITY; m];
            for row in kc.chunks(m) {
                for (a, &k) in acc.iter_mut().zip(row) {
                    *a = a.max(k);
                }
            }
            acc
        })
        .collect();
    let mut max = vec![f64::NEG_INFINITY; m];
    for p in maxes {
        for (a, x) in max.iter_mut().zip(p) {
            *a = a.max(x);
        }
    }
    let sums: Vec<Vec<f64>> =
        log_k
            .par_chunks(CHUNK * m)
            .map(|kc| {
                // An all-impossible column (max −∞) contributes e^−∞ = 0, not e^NaN.
                let mut e: Vec<f64> =
                    kc.chunks(m)
                        .flat_map(|row| {
                            row.iter().zip(&max).map(|(&k, &mx)| {
                                if mx == f64::NEG_INFINITY {
                                    mx
                                } else {
                                    k - mx
                                }
                            })
                        })
                        .collect();
                exp_nonpositive_in_place(&mut e);
                let mut acc = vec![0f64; m];
                for row in e.chunks(m) {
                    for (a, x) in acc.iter_mut().zip(row) {
                        *a += x;
                    }
                }
                acc
            })
            .collect();
    let mut total = vec![0f64; m];
    for p in sums {
        for (a, x) in total.iter_mut().zip(p) {
            *a += x;
        }
    }
    max.iter()
        .zip(&total)
        .map(|(&mx, &s)| {
            if mx == f64::NEG_INFINITY {
                mx
            } else {
                mx + s.ln()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// The straightforward log-domain solver (two log-sum-exps per iteration, the plan
    /// exponentiated at the end): what the fused passes of [`sinkhorn`] must reproduce.
    fn log_domain_reference(s: &Array2<f32>, cfg: &SinkhornConfig) -> Array2<f64> {
        let (n, m) = s.dim();
        let mut scale = 1.0 / cfg.epsilon as f64;
        if cfg.rescale_cost {
            let max_abs = s.iter().fold(0f64, |a, &v| a.max((v as f64).abs()));
            if max_abs > 0.0 {
                scale /= max_abs;
            }
        }
        let k = s.mapv(|v| v as f64 * scale);
        let lse = |xs: Vec<f64>| {
            let mx = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            mx + xs.iter().map(|x| (x - mx).exp()).sum::<f64>().ln()
        };
        let (log_a, log_b) = (-(n as f64).ln(), -(m as f64).ln());
        let mut u = vec![0f64; n];
        let mut v = vec![0f64; m];
        for _ in 0..cfg.iterations {
            for j in 0..m {
                v[j] = log_b - lse((0..n).map(|i| k[[i, j]] + u[i]).collect());
            }
            for i in 0..n {
                u[i] = log_a - lse((0..m).map(|j| k[[i, j]] + v[j]).collect());
            }
        }
        Array2::from_shape_fn((n, m), |(i, j)| (k[[i, j]] + u[i] + v[j]).exp() * n as f64)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(128))]
        /// The shortcut of [`sinkhorn`]: rescaled costs, scaled as it scales them, never
        /// spread a row by more than 2/ε, whatever their magnitude or impossible entries —
        /// so skipping the measurement at ε ≥ 0.01 takes the branch the measurement would.
        #[test]
        fn rescaled_costs_spread_a_row_by_at_most_two_over_epsilon(
            values in proptest::collection::vec(
                proptest::prop_oneof![
                    -1e30f32..1e30,
                    -1.0f32..1.0,
                    proptest::prelude::Just(f32::NEG_INFINITY),
                    proptest::prelude::Just(f32::NAN),
                ],
                2..200,
            ),
            m in 1usize..6,
            epsilon in 0.01f32..1.0,
        ) {
            let n = values.len() / m;
            let own = &values[..n * m];
            let max_abs = largest_finite_magnitude(own);
            let mut scale = 1.0 / epsilon as f64;
            if max_abs > 0.0 {
                scale /= max_abs;
            }
            let mut log_k = vec![0f64; n * m];
            scale_costs(&mut log_k, own, scale);
            let spread = max_row_spread(&log_k, m);
            proptest::prop_assert!(spread <= 2.0 / epsilon as f64 * (1.0 + 1e-12), "{spread}");
            proptest::prop_assert!(spread <= EXP_DOMAIN_MAX_ROW_SPREAD);
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Raw costs at ε = 0.05 put far components thousands of nats below a pixel's best;
        /// the fused passes' plain column sums must still agree with the log domain.
        #[test]
        fn fused_passes_match_the_log_domain_solver(
            n in 1usize..300,
            m in 2usize..8,
            spread in 0.01f32..2000.0,
            far in 0usize..3,
            rescale in proptest::prelude::any::<bool>(),
            iterations in 1usize..6,
            seed in proptest::prelude::any::<u64>(),
        ) {
            let mut state = seed | 1;
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state % 100_000) as f32 / 100_000.0
            };
            let s = Array2::from_shape_fn((n, m), |(_, j)| {
                // Components below `far` sit far from every pixel.
                let offset = if j < far { -50.0 * spread } else { 0.0 };
                offset - spread * next()
            });
            let cfg = SinkhornConfig { epsilon: 0.05, iterations, rescale_cost: rescale, tolerance: None };
            let got = sinkhorn(s.view(), &cfg);
            let want = log_domain_reference(&s, &cfg);
            proptest::prop_assert_eq!(got.iterations, iterations);
            for (a, b) in got.responsibilities.iter().zip(want.iter()) {
                proptest::prop_assert!((*a as f64 - b).abs() < 1e-5, "{} vs {}", a, b);
            }
        }
    }

    #[test]
    fn two_by_two_closed_form() {
        // With S = [[a, 0], [0, a]]/ε-scaled and uniform marginals the plan is symmetric:
        // P = [[p, q], [q, p]]/2 with p/q = e^{a/ε}, so row responsibilities are
        // [σ(a/ε), 1 − σ(a/ε)].
        let eps = 0.5f32;
        let a = 0.3f32;
        let s = array![[a, 0.0], [0.0, a]];
        let cfg = SinkhornConfig {
            epsilon: eps,
            iterations: 50,
            rescale_cost: false,
            tolerance: None,
        };
        let out = sinkhorn(s.view(), &cfg);
        let p = 1.0 / (1.0 + (-(a / eps) as f64).exp());
        assert!((out.responsibilities[[0, 0]] as f64 - p).abs() < 1e-6);
        assert!((out.responsibilities[[1, 1]] as f64 - p).abs() < 1e-6);
    }

    #[test]
    fn equipartition_overrides_a_dominant_component() {
        // Every pixel prefers component 0, but each component must take half the mass.
        let s = array![[0f32, -1.], [0., -2.], [0., -3.], [0., -4.]];
        let cfg = SinkhornConfig {
            epsilon: 0.25,
            iterations: 5000,
            rescale_cost: false,
            tolerance: Some(1e-9),
        };
        let out = sinkhorn(s.view(), &cfg);
        assert!(out.iterations < 5000, "tolerance reached");
        let cols = out.responsibilities.sum_axis(ndarray::Axis(0));
        assert!(
            (cols[0] - 2.0).abs() < 1e-5 && (cols[1] - 2.0).abs() < 1e-5,
            "{cols}"
        );
        // The pixels that lose least by moving (costs −1, −2) go to component 1.
        let r = &out.responsibilities;
        assert!(r[[0, 1]] > 0.9 && r[[1, 1]] > 0.5 && r[[3, 1]] < 0.1, "{r}");
    }

    #[test]
    fn huge_costs_do_not_overflow_and_zero_costs_do_not_nan() {
        let s = array![[-5000f32, -20000.], [-30000., -100.]];
        let cfg = SinkhornConfig {
            epsilon: 0.05,
            iterations: 3,
            rescale_cost: false,
            tolerance: None,
        };
        let out = sinkhorn(s.view(), &cfg);
        assert!(out.responsibilities.iter().all(|v| v.is_finite()));
        let zero = Array2::<f32>::zeros((3, 2));
        let out = sinkhorn(
            zero.view(),
            &SinkhornConfig {
                rescale_cost: true,
                ..cfg
            },
        );
        assert!(out.responsibilities.iter().all(|v| (v - 0.5).abs() < 1e-6));
    }

    /// log K and the first component potentials of `s`, as [`sinkhorn`] builds them.
    fn start(s: &Array2<f32>, cfg: &SinkhornConfig) -> (Vec<f64>, Vec<f64>) {
        let m = s.ncols() as f64;
        let scale = if cfg.rescale_cost {
            let max_abs = s.iter().fold(0f64, |a, &v| a.max((v as f64).abs()));
            1.0 / cfg.epsilon as f64 / max_abs
        } else {
            1.0 / cfg.epsilon as f64
        };
        let log_k: Vec<f64> = s.iter().map(|&v| v as f64 * scale).collect();
        let v = column_logsumexp(&log_k, s.ncols())
            .iter()
            .map(|&l| {
                if l == f64::NEG_INFINITY {
                    0.0
                } else {
                    -m.ln() - l
                }
            })
            .collect();
        (log_k, v)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Both domains run the same iterations: the same count to the tolerance and the same
        /// plan to rounding, on rescaled costs of network-like spread.
        #[test]
        fn exp_and_log_domains_agree(
            n in 1usize..2000,
            m in 2usize..8,
            spread in 0.1f32..300.0,
            seed in proptest::prelude::any::<u64>(),
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let s = Array2::from_shape_fn((n, m), |_| -spread * rng.gen::<f32>() - 10.0);
            let cfg = SinkhornConfig::default();
            let (log_k, v) = start(&s, &cfg);
            let (n, m) = s.dim();
            let e = exp_domain(&log_k, row_scaled_kernel(&log_k, n, m).0, v.clone(), n, m, &cfg);
            let l = log_domain(&log_k, v, 0, n, m, &cfg);
            proptest::prop_assert_eq!(e.iterations, l.iterations);
            proptest::prop_assert!((e.max_marginal_error - l.max_marginal_error).abs() < 1e-9);
            for (a, b) in e.responsibilities.iter().zip(l.responsibilities.iter()) {
                proptest::prop_assert!((a - b).abs() < 1e-6, "{} vs {}", a, b);
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// The first component step taken from the row-scaled kernel equals the direct
        /// column log-sum-exp, with rows and columns of impossible assignments among them.
        #[test]
        fn kernel_column_logsumexp_equals_the_direct_one(
            n in 1usize..3000,
            m in 1usize..8,
            spread in 0.1f64..150.0,
            offset in -500.0f64..500.0,
            seed in proptest::prelude::any::<u64>(),
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let log_k: Vec<f64> = (0..n * m)
                .map(|i| {
                    if i % 97 == 5 || (m > 1 && i % m == m - 1 && n > 3) {
                        f64::NEG_INFINITY
                    } else {
                        offset - spread * rng.gen::<f64>()
                    }
                })
                .collect();
            let (k, row_max) = row_scaled_kernel(&log_k, n, m);
            let direct = column_logsumexp(&log_k, m);
            let via_k = column_logsumexp_from_kernel(&k, &row_max, m);
            if let Some(via_k) = via_k {
                for (a, b) in via_k.iter().zip(&direct) {
                    if b.is_finite() {
                        proptest::prop_assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{} vs {}", a, b);
                    } else {
                        proptest::prop_assert_eq!(a, b);
                    }
                }
            } else {
                proptest::prop_assert!(row_max.iter().all(|r| !r.is_finite()));
            }
        }
    }

    /// At the edges of the window — row maxima 399 apart, each row's entries 199 below its
    /// max, a column living only on the lowest rows — the kernel's column log-sum-exp still
    /// equals the direct one; one step wider, it declines.
    #[test]
    fn kernel_column_logsumexp_at_the_edge_of_its_window() {
        let (n, m) = (64, 3);
        let mut log_k = vec![0f64; n * m];
        for j in 0..n {
            let top = if j < n / 2 { 0.0 } else { -399.0 };
            log_k[j * m] = top;
            log_k[j * m + 1] = top - 0.5 * (j % 5) as f64;
            // column 2: far below G on the upper rows, at the bottom of the lower rows
            log_k[j * m + 2] = top - 199.0;
        }
        let (k, row_max) = row_scaled_kernel(&log_k, n, m);
        let direct = column_logsumexp(&log_k, m);
        let via_k = column_logsumexp_from_kernel(&k, &row_max, m).expect("inside the window");
        for (a, b) in via_k.iter().zip(&direct) {
            assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{a} vs {b}");
        }
        for j in n / 2..n {
            for c in 0..m {
                log_k[j * m + c] -= 2.0;
            }
        }
        let (k, row_max) = row_scaled_kernel(&log_k, n, m);
        assert!(column_logsumexp_from_kernel(&k, &row_max, m).is_none());
    }

    #[test]
    fn exp_domain_hands_over_to_the_log_domain_when_potentials_spread() {
        // Raw costs near −50 at ε = 0.05 put log K near −1000 (a small row spread), so the
        // first potentials are near +1000 — except the impossible column's, which is 0.
        let s = Array2::from_shape_fn((40, 3), |(i, j)| {
            if j == 2 {
                f32::NEG_INFINITY
            } else {
                -50.0 - (i % 7) as f32 * 0.01 * (j + 1) as f32
            }
        });
        let cfg = SinkhornConfig {
            epsilon: 0.05,
            iterations: 20,
            rescale_cost: false,
            tolerance: None,
        };
        let (log_k, v) = start(&s, &cfg);
        assert!(max_row_spread(&log_k, 3) < EXP_DOMAIN_MAX_ROW_SPREAD);
        let spread = v.iter().fold(0f64, |a, &x| a.max(x)) - v.iter().fold(0f64, |a, &x| a.min(x));
        assert!(spread > EXP_DOMAIN_MAX_V_SPREAD, "{v:?}");
        let got = sinkhorn(s.view(), &cfg);
        let want = log_domain(&log_k, v, 0, 40, 3, &cfg);
        assert_eq!(got.iterations, 20);
        assert_eq!(got.responsibilities, want.responsibilities);
        assert!(got.responsibilities.iter().all(|q| q.is_finite()));
    }
}
