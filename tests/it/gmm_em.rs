//! Batch EM against an independent implementation, closed-form GDA, and numerical extremes.
// The reference EM is written as textbook index loops on purpose.
#![allow(clippy::needless_range_loop)]

use gmmseg::gmm::{
    fit, ClassIndex, EStep, FitOptions, GmmConfig, GmmParams, Reduction, SinkhornConfig,
};
use ndarray::{array, Array2, Array3, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A textbook diagonal-covariance EM for one mixture, in f64, written independently of the
/// library (plain loops, direct density): the "standard implementation" we compare against.
struct RefGmm {
    w: Vec<f64>,
    mu: Vec<Vec<f64>>,
    var: Vec<Vec<f64>>,
}

impl RefGmm {
    fn step(&mut self, x: &[Vec<f64>], reg: f64) {
        let (m, d) = (self.w.len(), x[0].len());
        let mut resp = vec![vec![0.0; m]; x.len()];
        for (n, xn) in x.iter().enumerate() {
            let logp: Vec<f64> = (0..m)
                .map(|j| {
                    let mut l = self.w[j].ln();
                    for k in 0..d {
                        l += -0.5 * (2.0 * std::f64::consts::PI * self.var[j][k]).ln()
                            - 0.5 * (xn[k] - self.mu[j][k]).powi(2) / self.var[j][k];
                    }
                    l
                })
                .collect();
            let max = logp.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let s: f64 = logp.iter().map(|l| (l - max).exp()).sum();
            for j in 0..m {
                resp[n][j] = (logp[j] - max).exp() / s;
            }
        }
        for j in 0..m {
            let nj: f64 = resp.iter().map(|r| r[j]).sum();
            self.w[j] = nj / x.len() as f64;
            for k in 0..d {
                let mean = resp.iter().zip(x).map(|(r, xn)| r[j] * xn[k]).sum::<f64>() / nj;
                let var = resp
                    .iter()
                    .zip(x)
                    .map(|(r, xn)| r[j] * (xn[k] - mean).powi(2))
                    .sum::<f64>()
                    / nj;
                self.mu[j][k] = mean;
                self.var[j][k] = var + reg;
            }
        }
    }
}

fn mixture_data(n_per: usize, seed: u64) -> (Array2<f32>, Vec<i64>) {
    // Two classes, each a mixture of 3 well-separated blobs in 4-D, plus ignored pixels.
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for class in 0..2 {
        for blob in 0..3 {
            for _ in 0..n_per {
                let centre = (class * 3 + blob) as f32 * 2.5;
                rows.extend((0..4).map(|k| {
                    centre
                        + (k as f32) * 0.3 * blob as f32
                        + rng.gen_range(-1.0f32..1.0) * (0.5 + 0.2 * k as f32)
                }));
                labels.push(class as i64);
            }
        }
    }
    for _ in 0..7 {
        rows.extend((0..4).map(|_| rng.gen_range(-50.0f32..50.0)));
    }
    labels.extend([255; 7]);
    let n = labels.len();
    (Array2::from_shape_vec((n, 4), rows).unwrap(), labels)
}

#[test]
fn vanilla_em_matches_a_textbook_implementation_over_20_iterations() {
    let (x, labels) = mixture_data(60, 1);
    let index = ClassIndex::new(labels.iter().copied(), 2, "labels").unwrap();
    let cfg = GmmConfig::batch_vanilla(2, 3, 4).check().unwrap();
    // A deliberately poor shared starting point, so that EM has work to do.
    let mut init = GmmParams::standard(2, 3, 4);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for c in 0..2 {
        for j in 0..3 {
            let pick = index.per_class[c][rng.gen_range(0..index.per_class[c].len())];
            init.means
                .index_axis_mut(Axis(0), c)
                .row_mut(j)
                .assign(&x.row(pick));
        }
    }
    init.variances.fill(2.0);
    let (ours, report) = fit(
        x.view(),
        &index,
        &cfg,
        &FitOptions {
            iterations: 20,
            seed: 0,
            init: Some(init.clone()),
        },
    )
    .unwrap();
    assert_eq!(report.mean_log_likelihood.len(), 20);
    for c in 0..2 {
        let xc: Vec<Vec<f64>> = index.per_class[c]
            .iter()
            .map(|&i| x.row(i).iter().map(|&v| v as f64).collect())
            .collect();
        let mut r = RefGmm {
            w: vec![1.0 / 3.0; 3],
            mu: (0..3)
                .map(|j| {
                    init.means
                        .index_axis(Axis(0), c)
                        .row(j)
                        .iter()
                        .map(|&v| v as f64)
                        .collect()
                })
                .collect(),
            var: vec![vec![2.0; 4]; 3],
        };
        for _ in 0..20 {
            r.step(&xc, 0.01);
        }
        for j in 0..3 {
            let rel = |a: f32, b: f64| ((a as f64 - b) / b.abs().max(1e-3)).abs();
            assert!(
                rel(ours.log_weights[[c, j]].exp(), r.w[j]) < 1e-4,
                "weight c{c} m{j}: {} vs {}",
                ours.log_weights[[c, j]].exp(),
                r.w[j]
            );
            for k in 0..4 {
                assert!(
                    rel(ours.means[[c, j, k]], r.mu[j][k]) < 1e-4,
                    "mean c{c} m{j} d{k}: {} vs {}",
                    ours.means[[c, j, k]],
                    r.mu[j][k]
                );
                assert!(
                    rel(ours.variances[[c, j, k]], r.var[j][k]) < 1e-4,
                    "var c{c} m{j} d{k}"
                );
            }
        }
    }
    // Responsibilities: rows of valid pixels sum to 1, ignored rows are zero.
    for (i, &l) in labels.iter().enumerate() {
        let s: f32 = report.responsibilities.row(i).sum();
        if l == 255 {
            assert_eq!(s, 0.0);
        } else {
            assert!((s - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn vanilla_em_objective_increases_on_well_posed_data() {
    let (x, labels) = mixture_data(80, 2);
    let index = ClassIndex::new(labels.iter().copied(), 2, "labels").unwrap();
    let cfg = GmmConfig {
        var_reg: 1e-6,
        ..GmmConfig::batch_vanilla(2, 3, 4)
    }
    .check()
    .unwrap();
    let (_, report) = fit(
        x.view(),
        &index,
        &cfg,
        &FitOptions {
            iterations: 15,
            seed: 3,
            init: None,
        },
    )
    .unwrap();
    for w in report.mean_log_likelihood.windows(2) {
        assert!(w[1] >= w[0] - 1e-4, "EM objective decreased: {w:?}");
    }
}

#[test]
fn one_component_is_closed_form_gaussian_discriminant_analysis() {
    let (x, labels) = mixture_data(30, 4);
    let index = ClassIndex::new(labels.iter().copied(), 2, "labels").unwrap();
    let reg = 0.01f32;
    for e_step in [EStep::Vanilla, EStep::Sinkhorn(SinkhornConfig::default())] {
        let cfg = GmmConfig {
            e_step,
            ..GmmConfig::batch_vanilla(2, 1, 4)
        }
        .check()
        .unwrap();
        let (p, _) = fit(
            x.view(),
            &index,
            &cfg,
            &FitOptions {
                iterations: 1,
                seed: 0,
                init: None,
            },
        )
        .unwrap();
        for c in 0..2 {
            let xc = x.select(Axis(0), &index.per_class[c]).mapv(|v| v as f64);
            let mean = xc.mean_axis(Axis(0)).unwrap();
            let var = xc.var_axis(Axis(0), 0.0);
            for k in 0..4 {
                assert!((p.means[[c, 0, k]] as f64 - mean[k]).abs() < 1e-5);
                assert!((p.variances[[c, 0, k]] as f64 - var[k] - reg as f64).abs() < 1e-5);
            }
            assert_eq!(p.log_weights[[c, 0]], 0.0);
        }
    }
}

#[test]
fn log_likelihoods_stay_finite_far_from_every_mean_and_at_the_regulariser() {
    let p = GmmParams {
        means: Array3::zeros((3, 2, 8)),
        variances: Array3::from_elem((3, 2, 8), 0.01),
        log_weights: Array2::from_elem((3, 2), 0.5f32.ln()),
    };
    let x = Array2::from_elem((4, 8), 1000.0f32);
    let ll = p.loglik_table().compute(x.view());
    assert!(ll.iter().all(|v| v.is_finite()), "{ll}");
    // −½ · 8 · 1e6 / 0.01 = −4e8, to f32 precision
    assert!((ll[[0, 0]] as f64 + 4e8).abs() / 4e8 < 1e-5);
    let scores = gmmseg::gmm::class_scores(ll.view(), 2, Reduction::LogSumExp);
    let post = gmmseg::gmm::posterior(scores.view());
    assert!(post.iter().all(|v| v.is_finite()));
    assert!((post.row(0).sum() - 1.0).abs() < 1e-6);
    let sink = gmmseg::gmm::sinkhorn::sinkhorn(
        ll.slice(ndarray::s![.., 0..2]),
        &SinkhornConfig::default(),
    );
    assert!(sink.responsibilities.iter().all(|v| v.is_finite()));
}

#[test]
fn sinkhorn_batch_em_keeps_equipartition_weights() {
    let (x, labels) = mixture_data(40, 5);
    let index = ClassIndex::new(labels.iter().copied(), 2, "labels").unwrap();
    let cfg = GmmConfig {
        e_step: EStep::Sinkhorn(SinkhornConfig {
            epsilon: 0.05,
            iterations: 50,
            rescale_cost: true,
            tolerance: None,
        }),
        ..GmmConfig::batch_vanilla(2, 3, 4)
    }
    .check()
    .unwrap();
    let (p, report) = fit(
        x.view(),
        &index,
        &cfg,
        &FitOptions {
            iterations: 5,
            seed: 1,
            init: None,
        },
    )
    .unwrap();
    assert!(p
        .log_weights
        .iter()
        .all(|&w| (w - (1.0f32 / 3.0).ln()).abs() < 1e-6));
    // Each component receives a third of each class's mass.
    for c in 0..2 {
        let rows = report.responsibilities.select(Axis(0), &index.per_class[c]);
        let mass = rows.sum_axis(Axis(0));
        for j in 0..3 {
            assert!((mass[j] - 40.0).abs() < 0.05, "class {c}: {mass}");
        }
    }
}

#[test]
fn bad_inputs_are_typed_errors() {
    let (x, labels) = mixture_data(10, 6);
    let index = ClassIndex::new(labels.iter().copied(), 2, "labels").unwrap();
    let cfg = GmmConfig::batch_vanilla(2, 2, 4).check().unwrap();
    let opts = FitOptions {
        iterations: 1,
        seed: 0,
        init: None,
    };
    let mut bad = x.clone();
    bad[[3, 2]] = f32::NAN;
    assert!(matches!(
        fit(bad.view(), &index, &cfg, &opts),
        Err(gmmseg::GmmSegError::NonFinite { index: 14, .. })
    ));
    let wrong_d = GmmConfig::batch_vanilla(2, 2, 5).check().unwrap();
    assert!(matches!(
        fit(x.view(), &index, &wrong_d, &opts),
        Err(gmmseg::GmmSegError::Shape { .. })
    ));
    let single = ClassIndex::new([0i64, 0, 1], 2, "labels").unwrap();
    let err = fit(
        array![[0f32, 0., 0., 0.], [1., 1., 1., 1.], [2., 2., 2., 2.]].view(),
        &single,
        &cfg,
        &opts,
    )
    .unwrap_err();
    assert!(err.to_string().contains("class 1 has 1 pixel"), "{err}");
}

/// The batch fit runs its classes in parallel; any thread count must give the parameters,
/// log-likelihoods and responsibilities of one thread, bit for bit.
#[test]
fn batch_fit_is_the_same_for_any_thread_count() {
    let (x, y) = mixture_data(400, 11);
    let labels = ClassIndex::new(y.iter().copied(), 2, "labels").unwrap();
    let cfg = GmmConfig {
        e_step: EStep::Sinkhorn(SinkhornConfig {
            epsilon: 0.05,
            iterations: 50,
            rescale_cost: true,
            tolerance: Some(1e-3),
        }),
        ..GmmConfig::batch_vanilla(2, 3, 4)
    }
    .check()
    .unwrap();
    let opts = FitOptions {
        iterations: 4,
        seed: 5,
        init: None,
    };
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| fit(x.view(), &labels, &cfg, &opts).unwrap())
    };
    let (p1, r1) = run(1);
    for threads in [2, 3] {
        let (p, r) = run(threads);
        assert_eq!(p, p1, "{threads} threads: parameters");
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&r.mean_log_likelihood), bits(&r1.mean_log_likelihood));
        assert_eq!(r.responsibilities, r1.responsibilities, "{threads} threads");
    }
}
