//! The Sinkhorn E-step: responsibilities under the equipartition constraint.
//!
//! Among a class's n pixels and its M components, find the transport plan P (n × M) that
//! maximises `⟨P, S⟩ + ε H(P)` subject to every pixel having mass 1/n and every component
//! mass 1/M, where `S_jm = log π_m N(x_j; μ_m, σ_m)` (the negative cost). Its solution is
//! `P = diag(e^u) exp(S/ε) diag(e^v)`, found by Sinkhorn–Knopp iterations on the potentials
//! u, v. We iterate **in the log domain** (log-sum-exp updates in f64), so that S/ε, which
//! reaches 10⁴ for raw costs and ε = 0.05, never overflows — the reference code exponentiates
//! directly, which overflows in f16 and divides by zero when max|S| = 0.
//!
//! Each iteration first normalises the components, then the pixels, as the reference code
//! does, so every returned row sums to exactly 1 (responsibilities are `n·P`); the component
//! masses approach n/M as iterations grow.

use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

use super::config::SinkhornConfig;

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
        let max_abs = own_ll
            .iter()
            .filter(|v| v.is_finite())
            .fold(0f64, |a, &v| a.max((v as f64).abs()));
        if max_abs > 0.0 {
            scale /= max_abs;
        }
    }
    let log_k: Vec<f64> = own_ll
        .iter()
        .map(|&v| {
            if v.is_finite() {
                v as f64 * scale
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let log_a = -(n as f64).ln();
    let log_b = -(m as f64).ln();
    let mut u = vec![0f64; n];
    let mut v = vec![0f64; m];
    let mut iterations = 0;
    let mut err = f64::INFINITY;
    for _ in 0..cfg.iterations {
        // Components: v_m = log b − LSE_j (logK_jm + u_j).
        let col_lse = column_logsumexp(&log_k, &u, None, m);
        for j in 0..m {
            v[j] = if col_lse[j] == f64::NEG_INFINITY {
                0.0
            } else {
                log_b - col_lse[j]
            };
        }
        // Pixels: u_j = log a − LSE_m (logK_jm + v_m).
        u.par_chunks_mut(CHUNK)
            .zip(log_k.par_chunks(CHUNK * m))
            .for_each(|(uc, kc)| {
                for (uj, row) in uc.iter_mut().zip(kc.chunks(m)) {
                    let lse = lse_iter(row.iter().zip(&v).map(|(k, vv)| k + vv));
                    *uj = if lse == f64::NEG_INFINITY {
                        log_a
                    } else {
                        log_a - lse
                    };
                }
            });
        iterations += 1;
        // The marginal check costs a pass over the plan: only when it can stop the loop.
        if let Some(tol) = cfg.tolerance {
            err = marginal_error(&log_k, &u, &v, m);
            if err <= tol {
                break;
            }
        }
    }
    if cfg.tolerance.is_none() {
        err = marginal_error(&log_k, &u, &v, m);
    }
    let nf = n as f64;
    let resp: Vec<f32> = log_k
        .par_chunks(m)
        .zip(u.par_iter())
        .flat_map_iter(|(row, uj)| {
            let v = &v;
            row.iter()
                .zip(v)
                .map(move |(k, vv)| ((k + uj + vv).exp() * nf) as f32)
        })
        .collect();
    SinkhornOutput {
        responsibilities: Array2::from_shape_vec((n, m), resp).expect("shape matches"),
        iterations,
        max_marginal_error: err,
    }
}

/// Relative deviation of each component's mass `Σ_j P_jm` from 1/M, maximised over m.
fn marginal_error(log_k: &[f64], u: &[f64], v: &[f64], m: usize) -> f64 {
    let lse = column_logsumexp(log_k, u, Some(v), m);
    let target = 1.0 / m as f64;
    lse.iter()
        .map(|&l| ((l.exp() - target) / target).abs())
        .fold(0.0, f64::max)
}

/// `LSE_j (logK_jm + u_j [+ v_m])` for every m, with a deterministic chunked reduction.
fn column_logsumexp(log_k: &[f64], u: &[f64], v: Option<&[f64]>, m: usize) -> Vec<f64> {
    let partials: Vec<Vec<(f64, f64)>> = log_k
        .par_chunks(CHUNK * m)
        .zip(u.par_chunks(CHUNK))
        .map(|(kc, uc)| {
            let mut acc = vec![(f64::NEG_INFINITY, 0f64); m];
            for (row, &uj) in kc.chunks(m).zip(uc) {
                for (j, &k) in row.iter().enumerate() {
                    let x = k + uj + v.map_or(0.0, |v| v[j]);
                    acc[j] = lse_push(acc[j], x);
                }
            }
            acc
        })
        .collect();
    let mut total = vec![(f64::NEG_INFINITY, 0f64); m];
    for p in partials {
        for j in 0..m {
            total[j] = lse_merge(total[j], p[j]);
        }
    }
    total
        .iter()
        .map(|&(max, sum)| {
            if max == f64::NEG_INFINITY {
                max
            } else {
                max + sum.ln()
            }
        })
        .collect()
}

/// Streaming log-sum-exp state (running max, Σ exp(x − max)).
fn lse_push((max, sum): (f64, f64), x: f64) -> (f64, f64) {
    if x == f64::NEG_INFINITY {
        (max, sum)
    } else if x <= max {
        (max, sum + (x - max).exp())
    } else {
        (x, sum * (max - x).exp() + 1.0)
    }
}

fn lse_merge(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    if b.0 == f64::NEG_INFINITY {
        a
    } else if a.0 == f64::NEG_INFINITY {
        b
    } else if a.0 >= b.0 {
        (a.0, a.1 + b.1 * (b.0 - a.0).exp())
    } else {
        (b.0, b.1 + a.1 * (a.0 - b.0).exp())
    }
}

fn lse_iter(values: impl Iterator<Item = f64>) -> f64 {
    let (max, sum) = values.fold((f64::NEG_INFINITY, 0.0), lse_push);
    if max == f64::NEG_INFINITY {
        max
    } else {
        max + sum.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

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
}
