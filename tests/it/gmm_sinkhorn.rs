//! The log-domain Sinkhorn E-step converges to the entropic optimal-transport plan.

use gmmseg::gmm::sinkhorn::sinkhorn;
use gmmseg::gmm::{fit, ClassIndex, EStep, FitOptions, GmmConfig, GmmParams, SinkhornConfig};
use ndarray::{Array2, Axis};
use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Plain (exponentiated) Sinkhorn–Knopp in f64, many iterations: the textbook solver of
/// `max ⟨P,S⟩ + εH(P)` with uniform marginals, valid for moderate S/ε.
fn reference_plan(s: &Array2<f64>, eps: f64, iters: usize) -> Array2<f64> {
    let (n, m) = s.dim();
    let k = s.mapv(|v| (v / eps).exp());
    let mut u = vec![1.0; n];
    let mut v = vec![1.0; m];
    for _ in 0..iters {
        for j in 0..m {
            let col: f64 = (0..n).map(|i| k[[i, j]] * u[i]).sum();
            v[j] = (1.0 / m as f64) / col;
        }
        for i in 0..n {
            let row: f64 = (0..m).map(|j| k[[i, j]] * v[j]).sum();
            u[i] = (1.0 / n as f64) / row;
        }
    }
    Array2::from_shape_fn((n, m), |(i, j)| u[i] * k[[i, j]] * v[j] * n as f64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn converges_to_the_entropic_plan(
        n in 2usize..40,
        m in 1usize..6,
        eps in 0.2f32..1.0,
        seed in any::<u64>(),
    ) {
        let mut state = seed | 1;
        let mut next = || { state ^= state << 13; state ^= state >> 7; state ^= state << 17; (state % 10_000) as f32 / 10_000.0 };
        let s = Array2::from_shape_fn((n, m), |_| -3.0 * next());
        let cfg = SinkhornConfig { epsilon: eps, iterations: 100_000, rescale_cost: false, tolerance: Some(1e-10) };
        let out = sinkhorn(s.view(), &cfg);
        let r = &out.responsibilities;
        for row in r.axis_iter(Axis(0)) {
            prop_assert!((row.sum() - 1.0).abs() < 1e-6, "row sums to {}", row.sum());
        }
        let cols = r.mapv(|v| v as f64).sum_axis(Axis(0));
        for &c in cols.iter() {
            prop_assert!((c - n as f64 / m as f64).abs() < 1e-6 * n as f64, "component mass {c}, expected {}", n as f64 / m as f64);
        }
        let expected = reference_plan(&s.mapv(|v| v as f64), eps as f64, 20_000);
        for (a, b) in r.iter().zip(expected.iter()) {
            prop_assert!((*a as f64 - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn rows_always_sum_to_one_even_after_three_iterations(
        n in 1usize..30,
        m in 1usize..8,
        scale in 0.1f32..5000.0,
        rescale in any::<bool>(),
    ) {
        let s = Array2::from_shape_fn((n, m), |(i, j)| -scale * (((i * 31 + j * 17) % 13) as f32 / 13.0));
        let out = sinkhorn(s.view(), &SinkhornConfig { rescale_cost: rescale, ..SinkhornConfig::reference_code() });
        prop_assert_eq!(out.iterations, 3);
        for row in out.responsibilities.axis_iter(Axis(0)) {
            prop_assert!(row.iter().all(|v| v.is_finite() && *v >= 0.0));
            prop_assert!((row.sum() - 1.0).abs() < 1e-5);
        }
    }
}

/// Features shaped like a network's: D = 64, ReLU'd (many exact zeros), 3 classes each made
/// of 3 true modes of unequal size (60% / 30% / 10%) and split into M = 5 components.
fn network_like_features(rng: &mut ChaCha8Rng) -> (Array2<f32>, Vec<i64>) {
    let (d, per_class, classes) = (64, 3_000, 3);
    let shares = [0.6, 0.3, 0.1];
    let mut rows = Vec::new();
    let mut labels = Vec::new();
    for c in 0..classes {
        let modes: Vec<Vec<f32>> = (0..3)
            .map(|_| (0..d).map(|_| StandardNormal.sample(&mut *rng)).collect())
            .collect();
        for i in 0..per_class {
            let u = i as f64 / per_class as f64;
            let mode = if u < shares[0] {
                0
            } else if u < shares[0] + shares[1] {
                1
            } else {
                2
            };
            for &centre in &modes[mode] {
                let z: f32 = StandardNormal.sample(&mut *rng);
                rows.push((centre + 0.5 * z).max(0.0));
            }
            labels.push(c as i64);
        }
    }
    (
        Array2::from_shape_vec((labels.len(), d), rows).unwrap(),
        labels,
    )
}

/// Per-class component masses of the responsibilities, relative to N_c/M: the worst error.
fn worst_mass_error(resp: &Array2<f32>, labels: &[i64], classes: usize) -> f64 {
    let m = resp.ncols();
    let mut worst = 0f64;
    for c in 0..classes {
        let rows: Vec<usize> = (0..labels.len())
            .filter(|&i| labels[i] == c as i64)
            .collect();
        let target = rows.len() as f64 / m as f64;
        for j in 0..m {
            let mass: f64 = rows.iter().map(|&i| resp[[i, j]] as f64).sum();
            worst = worst.max(((mass - target) / target).abs());
        }
    }
    worst
}

/// What `gmmseg fit-gmm --em sinkhorn --iters 1` runs with its defaults: one E+M iteration
/// of batch EM with the default Sinkhorn E-step.
fn one_sinkhorn_iteration(
    x: &Array2<f32>,
    labels: &[i64],
    sinkhorn: SinkhornConfig,
    init: Option<GmmParams>,
) -> (Array2<f32>, f64) {
    let index = ClassIndex::new(labels.iter().copied(), 3, "labels").unwrap();
    let cfg = GmmConfig {
        e_step: EStep::Sinkhorn(sinkhorn),
        ..GmmConfig::batch_vanilla(3, 5, 64)
    }
    .check()
    .unwrap();
    let opts = FitOptions {
        iterations: 1,
        seed: 0,
        init,
    };
    let (_, report) = fit(x.view(), &index, &cfg, &opts).unwrap();
    (
        report.responsibilities,
        report.e_steps[0].max_marginal_error,
    )
}

#[test]
fn default_sinkhorn_reaches_equipartition_on_network_like_features() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (x, labels) = network_like_features(&mut rng);
    // from the data-driven start of `fit-gmm`, and from the online head's start (random
    // unit means, unit variances)
    let random = GmmParams::random_unit(3, 5, 64, &mut rng);
    for init in [None, Some(random)] {
        let (resp, reported) = one_sinkhorn_iteration(&x, &labels, SinkhornConfig::default(), init);
        let worst = worst_mass_error(&resp, &labels, 3);
        assert!(worst < 0.02, "component mass off N_c/M by {worst:.4}");
        assert!(
            (worst - reported).abs() < 1e-3,
            "reported {reported}, measured {worst}"
        );
        assert!(
            worst <= 1.01e-3,
            "the default tolerance is 1e-3, got {worst}"
        );
    }
}

#[test]
fn raw_costs_and_three_iterations_do_not_reach_it() {
    // The former default, measured: hard and unbalanced assignments.
    let (x, labels) = network_like_features(&mut ChaCha8Rng::seed_from_u64(7));
    let old = SinkhornConfig {
        rescale_cost: false,
        ..SinkhornConfig::reference_code()
    };
    let (resp, _) = one_sinkhorn_iteration(&x, &labels, old, None);
    let worst = worst_mass_error(&resp, &labels, 3);
    assert!(
        worst > 0.5,
        "expected a far-from-equipartition plan, got {worst}"
    );
}
