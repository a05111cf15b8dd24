//! Invariants of the E- and M-steps on random inputs (proptest).

use gmmseg::gmm::estep::vanilla_responsibilities;
use gmmseg::gmm::mstep::{estimate, Moments};
use gmmseg::gmm::{GmmParams, MeanEstimator};
use ndarray::{Array2, Array3, Axis};
use proptest::prelude::*;

fn matrix(rows: usize, cols: usize, values: &[f32]) -> Array2<f32> {
    Array2::from_shape_fn((rows, cols), |(i, j)| values[(i * cols + j) % values.len()])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn vanilla_rows_are_distributions(n in 1usize..50, m in 1usize..8, vals in prop::collection::vec(-1e4f32..1e4, 1..64)) {
        let r = vanilla_responsibilities(matrix(n, m, &vals).view());
        for row in r.axis_iter(Axis(0)) {
            prop_assert!(row.iter().all(|v| v.is_finite() && *v >= 0.0));
            prop_assert!((row.sum() - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn m_step_variances_never_fall_below_the_regulariser(
        n in 1usize..60, m in 1usize..5, d in 1usize..6,
        xs in prop::collection::vec(-100f32..100.0, 1..64),
        rs in prop::collection::vec(0f32..1.0, 1..64),
        reg in 1e-6f32..1.0,
    ) {
        let x = matrix(n, d, &xs);
        let r = matrix(n, m, &rs);
        let shift = Array2::zeros((m, d));
        let est = estimate(&Moments::accumulate(x.view(), r.view(), shift.view()), reg, MeanEstimator::Euclidean);
        for (j, ok) in est.estimated.iter().enumerate() {
            if *ok {
                prop_assert!(est.variances.row(j).iter().all(|&v| v >= reg as f64 * (1.0 - 1e-9)));
            }
        }
    }

    #[test]
    fn shift_does_not_change_the_moments(
        n in 2usize..40, d in 1usize..5, xs in prop::collection::vec(-10f32..10.0, 1..64), s in -1e3f32..1e3,
    ) {
        let x = matrix(n, d, &xs);
        let r = Array2::ones((n, 1));
        let a = estimate(&Moments::accumulate(x.view(), r.view(), Array2::zeros((1, d)).view()), 0.01, MeanEstimator::Euclidean);
        let b = estimate(&Moments::accumulate(x.view(), r.view(), Array2::from_elem((1, d), s).view()), 0.01, MeanEstimator::Euclidean);
        for (u, v) in a.means.iter().zip(b.means.iter()) {
            prop_assert!((u - v).abs() < 1e-9 * (1.0 + s.abs() as f64));
        }
        for (u, v) in a.variances.iter().zip(b.variances.iter()) {
            prop_assert!((u - v).abs() < 1e-6 * (1.0 + (s as f64).powi(2) * 1e-6));
        }
    }

    #[test]
    fn gemm_form_equals_the_direct_form(c in 1usize..4, m in 1usize..4, d in 1usize..9, n in 1usize..20, seed in any::<u32>()) {
        let f = |i: usize| (((i as u64 * 2654435761 + seed as u64) % 1000) as f32) / 500.0 - 1.0;
        let p = GmmParams {
            means: Array3::from_shape_fn((c, m, d), |(a, b, k)| f(a * 100 + b * 10 + k)),
            variances: Array3::from_shape_fn((c, m, d), |(a, b, k)| 0.1 + f(a * 7 + b * 3 + k + 500).abs()),
            log_weights: Array2::from_elem((c, m), -(m as f32).ln()),
        };
        let x = Array2::from_shape_fn((n, d), |(i, k)| 2.0 * f(i * 13 + k + 999));
        let ll = p.loglik_table().compute(x.view());
        for class in 0..c {
            let direct = gmmseg::gmm::likelihood::own_class_log_likelihood(x.view(), &p, class);
            for i in 0..n {
                for j in 0..m {
                    let (a, b) = (ll[[i, class * m + j]], direct[[i, j]]);
                    prop_assert!((a - b).abs() < 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
                }
            }
        }
    }
}
