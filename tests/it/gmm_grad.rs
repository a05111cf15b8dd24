//! The differentiable log-likelihood: gradients with respect to the features, by finite
//! differences, and none with respect to the GMM parameters.

use std::sync::Arc;

use dfdx::prelude::*;
use gmmseg::gmm::{GmmParams, LogLikTable, Reduction};
use gmmseg::ops::layout::{from_pixels, to_pixels};
use gmmseg::ops::loglik::{class_log_likelihood_nchw, log_likelihood};
use ndarray::{Array2, Array3};

fn params() -> GmmParams {
    let (c, m, d) = (3, 2, 4);
    GmmParams {
        means: Array3::from_shape_fn((c, m, d), |(a, b, k)| {
            ((a * 7 + b * 3 + k) % 5) as f32 * 0.4 - 0.8
        }),
        variances: Array3::from_shape_fn((c, m, d), |(a, b, k)| {
            0.3 + ((a + 2 * b + k) % 4) as f32 * 0.25
        }),
        log_weights: Array2::from_elem((c, m), 0.5f32.ln()),
    }
}

/// Σ_{n,k} coef[n,k] · log π_k N(x_n; μ_k, σ_k), in f64 by the direct formula.
fn objective(x: &[f64], coef: &[f64], p: &GmmParams) -> f64 {
    let (c, m, d) = p.means.dim();
    let n = x.len() / d;
    let mut total = 0.0;
    for i in 0..n {
        for a in 0..c {
            for b in 0..m {
                let mut l = p.log_weights[[a, b]] as f64;
                for k in 0..d {
                    let var = p.variances[[a, b, k]] as f64;
                    l += -0.5 * (2.0 * std::f64::consts::PI * var).ln()
                        - 0.5 * (x[i * d + k] - p.means[[a, b, k]] as f64).powi(2) / var;
                }
                total += coef[i * c * m + a * m + b] * l;
            }
        }
    }
    total
}

#[test]
fn feature_gradient_matches_finite_differences() {
    let p = params();
    let (n, d, k) = (5, 4, 6);
    let xs: Vec<f32> = (0..n * d)
        .map(|i| ((i * 37) % 17) as f32 / 8.0 - 1.0)
        .collect();
    let coef: Vec<f32> = (0..n * k)
        .map(|i| ((i * 13) % 7) as f32 / 7.0 - 0.4)
        .collect();
    let dev: Cpu = Default::default();
    let x: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(xs.clone(), (n, d));
    let table = Arc::new(p.loglik_table());
    let out = log_likelihood(x.leaky_trace(), &table).unwrap();
    let c: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(coef.clone(), (n, k));
    let loss = (out * c).sum();
    let grads = loss.backward();
    let analytic = grads.get(&x).as_vec();
    let x64: Vec<f64> = xs.iter().map(|&v| v as f64).collect();
    let coef64: Vec<f64> = coef.iter().map(|&v| v as f64).collect();
    let h = 1e-5;
    for i in 0..n * d {
        let mut plus = x64.clone();
        plus[i] += h;
        let mut minus = x64.clone();
        minus[i] -= h;
        let fd = (objective(&plus, &coef64, &p) - objective(&minus, &coef64, &p)) / (2.0 * h);
        assert!(
            (analytic[i] as f64 - fd).abs() < 1e-3 * (1.0 + fd.abs()),
            "d/dx[{i}]: analytic {} vs finite difference {fd}",
            analytic[i]
        );
    }
}

#[test]
fn forward_on_a_tape_equals_the_plain_table_and_rejects_wrong_d() {
    let p = params();
    let dev: Cpu = Default::default();
    let xs: Vec<f32> = (0..8).map(|i| i as f32 * 0.1).collect();
    let x: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(xs.clone(), (2, 4));
    let table = Arc::new(p.loglik_table());
    let out = log_likelihood(x.clone(), &table).unwrap().as_vec();
    let plain = table.compute(ndarray::ArrayView2::from_shape((2, 4), &xs).unwrap());
    assert_eq!(out, plain.iter().copied().collect::<Vec<_>>());
    let wrong: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(vec![0.0; 6], (2, 3));
    assert!(log_likelihood(wrong, &table).is_err());
}

#[test]
fn winner_take_all_gradient_reaches_only_the_winning_component() {
    // Through dfdx's max over components: a feature next to component 0 of class 0.
    let p = params();
    let dev: Cpu = Default::default();
    let mu: Vec<f32> = (0..4).map(|k| p.means[[0, 0, k]]).collect();
    let x: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(mu, (1, 4));
    let table = Arc::new(p.loglik_table());
    let ll = log_likelihood(x.leaky_trace(), &table).unwrap();
    let ll3 = ll.reshape_like(&(1usize, 3usize, 2usize));
    let pick: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(vec![1.0, 0.0, 0.0], (1, 3));
    let class0 = (ll3.max::<(usize, usize), Axis<2>>() * pick).sum();
    let g = class0.backward().get(&x).as_vec();
    // The winning component's mean is x itself, so its gradient −(x−μ)/σ² is zero, and the
    // other classes and components receive none.
    assert!(g.iter().all(|v| v.abs() < 1e-4), "{g:?}");
}

/// The unfused path the fused op replaces: pixel rows, component log-likelihoods, a dfdx
/// reduction over components, back to a channel-major map.
fn unfused<T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize, usize, usize), f32, Cpu, T>,
    table: &Arc<LogLikTable>,
    reduction: Reduction,
) -> Tensor<(usize, usize, usize, usize), f32, Cpu, T> {
    let (b, _, h, w) = *x.shape();
    let rows = to_pixels(x).unwrap();
    let ll = log_likelihood(rows, table).unwrap();
    let n = ll.shape().0;
    let ll3 = ll.reshape_like(&(n, 3usize, 2usize));
    let scores = match reduction {
        Reduction::Max => ll3.max::<(usize, usize), Axis<2>>(),
        Reduction::LogSumExp => ll3.logsumexp::<(usize, usize), Axis<2>>(),
    };
    from_pixels(scores, b, h, w).unwrap()
}

/// A (2, 4, 3, 5) feature map spread over the mixture, and output weights (2, 3, 3, 5).
fn map_and_coef() -> (Vec<f32>, Vec<f32>, (usize, usize, usize, usize)) {
    let shape = (2, 4, 3, 5);
    let xs: Vec<f32> = (0..2 * 4 * 15)
        .map(|i| ((i * 37) % 23) as f32 / 10.0 - 1.1)
        .collect();
    let coef: Vec<f32> = (0..2 * 3 * 15)
        .map(|i| ((i * 13) % 7) as f32 / 7.0 - 0.4)
        .collect();
    (xs, coef, shape)
}

#[test]
fn fused_class_scores_equal_the_unfused_path_forward_and_backward() {
    let p = params();
    let table = Arc::new(p.loglik_table());
    let dev: Cpu = Default::default();
    let (xs, coef, shape) = map_and_coef();
    for reduction in [Reduction::Max, Reduction::LogSumExp] {
        let mut results = Vec::new();
        for fused in [true, false] {
            let x: Tensor<(usize, usize, usize, usize), f32, Cpu> =
                dev.tensor_from_vec(xs.clone(), shape);
            let out = if fused {
                class_log_likelihood_nchw(x.leaky_trace(), &table, reduction).unwrap()
            } else {
                unfused(x.leaky_trace(), &table, reduction)
            };
            let values = out.as_vec();
            let c: Tensor<(usize, usize, usize, usize), f32, Cpu> =
                dev.tensor_from_vec(coef.clone(), (2, 3, 3, 5));
            let grads = (out * c).sum().backward();
            results.push((values, grads.get(&x).as_vec()));
        }
        let (fused, plain) = (&results[0], &results[1]);
        for (what, a, b) in [
            ("value", &fused.0, &plain.0),
            ("gradient", &fused.1, &plain.1),
        ] {
            assert_eq!(a.len(), b.len());
            for (i, (u, v)) in a.iter().zip(b.iter()).enumerate() {
                assert!(
                    (u - v).abs() < 1e-4 * (1.0 + v.abs()),
                    "{reduction:?} {what}[{i}]: fused {u} vs unfused {v}"
                );
            }
        }
        assert!(
            fused.1.iter().any(|v| v.abs() > 1e-3),
            "gradient is not all zero"
        );
    }
}

#[test]
fn fused_logsumexp_gradient_matches_finite_differences() {
    // Σ coef · logsumexp_m log π N, in f64 by the direct formula.
    fn objective(
        x: &[f64],
        coef: &[f64],
        p: &GmmParams,
        (b, d, h, w): (usize, usize, usize, usize),
    ) -> f64 {
        let (c, m, _) = p.means.dim();
        let hw = h * w;
        let mut total = 0.0;
        for i in 0..b {
            for px in 0..hw {
                for a in 0..c {
                    let comps: Vec<f64> = (0..m)
                        .map(|j| {
                            let mut l = p.log_weights[[a, j]] as f64;
                            for k in 0..d {
                                let var = p.variances[[a, j, k]] as f64;
                                let v = x[(i * d + k) * hw + px];
                                l += -0.5 * (2.0 * std::f64::consts::PI * var).ln()
                                    - 0.5 * (v - p.means[[a, j, k]] as f64).powi(2) / var;
                            }
                            l
                        })
                        .collect();
                    let mx = comps.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let lse = mx + comps.iter().map(|v| (v - mx).exp()).sum::<f64>().ln();
                    total += coef[(i * c + a) * hw + px] * lse;
                }
            }
        }
        total
    }
    let p = params();
    let table = Arc::new(p.loglik_table());
    let dev: Cpu = Default::default();
    let (xs, coef, shape) = map_and_coef();
    let x: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.tensor_from_vec(xs.clone(), shape);
    let out = class_log_likelihood_nchw(x.leaky_trace(), &table, Reduction::LogSumExp).unwrap();
    let c: Tensor<(usize, usize, usize, usize), f32, Cpu> =
        dev.tensor_from_vec(coef.clone(), (2, 3, 3, 5));
    let analytic = (out * c).sum().backward().get(&x).as_vec();
    let x64: Vec<f64> = xs.iter().map(|&v| v as f64).collect();
    let coef64: Vec<f64> = coef.iter().map(|&v| v as f64).collect();
    let h = 1e-5;
    for i in 0..x64.len() {
        let mut plus = x64.clone();
        plus[i] += h;
        let mut minus = x64.clone();
        minus[i] -= h;
        let fd = (objective(&plus, &coef64, &p, shape) - objective(&minus, &coef64, &p, shape))
            / (2.0 * h);
        assert!(
            (analytic[i] as f64 - fd).abs() < 1e-3 * (1.0 + fd.abs()),
            "d/dx[{i}]: analytic {} vs finite difference {fd}",
            analytic[i]
        );
    }
}

#[test]
fn fused_op_rejects_a_feature_map_of_the_wrong_depth() {
    let table = Arc::new(params().loglik_table());
    let dev: Cpu = Default::default();
    let x: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.zeros_like(&(1, 3, 2, 2));
    let err = class_log_likelihood_nchw(x, &table, Reduction::Max).unwrap_err();
    assert!(err.to_string().contains("D = 3"), "{err}");
}
