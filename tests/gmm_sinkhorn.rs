//! The log-domain Sinkhorn E-step converges to the entropic optimal-transport plan.

use gmmseg::gmm::sinkhorn::sinkhorn;
use gmmseg::gmm::SinkhornConfig;
use ndarray::{Array2, Axis};
use proptest::prelude::*;

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
        let out = sinkhorn(s.view(), &SinkhornConfig { rescale_cost: rescale, ..SinkhornConfig::default() });
        prop_assert_eq!(out.iterations, 3);
        for row in out.responsibilities.axis_iter(Axis(0)) {
            prop_assert!(row.iter().all(|v| v.is_finite() && *v >= 0.0));
            prop_assert!((row.sum() - 1.0).abs() < 1e-5);
        }
    }
}
