//! Golden values from scikit-learn's `GaussianMixture(covariance_type="diag")`, the standard
//! diagonal-covariance EM implementation, from the same initial parameters.
//!
//! Generated once (scikit-learn 1.x, numpy 2.x) with:
//! ```python
//! rng = np.random.default_rng(0)
//! X = np.concatenate([rng.normal([0, 0], [1.0, 0.5], (12, 2)), rng.normal([4, 1], [0.5, 1.5], (10, 2)),
//!                     rng.normal([1, 5], [0.8, 0.8], (8, 2))]).round(3).astype(np.float32).astype(np.float64)
//! g = GaussianMixture(3, covariance_type="diag", reg_covar=0.01, max_iter=20, tol=0, n_init=1,
//!                     weights_init=np.ones(3) / 3, means_init=[[1, 1], [2, 2], [0, 3]],
//!                     precisions_init=np.ones((3, 2))).fit(X)
//! # g.n_iter_ == 20: twenty full E+M iterations
//! ```

use gmmseg::gmm::{fit, ClassIndex, FitOptions, GmmConfig, GmmParams};
use ndarray::{array, Array2};

#[test]
fn twenty_vanilla_iterations_match_scikit_learn() {
    let x: Vec<[f32; 2]> = vec![
        [0.126, -0.066],
        [0.64, 0.052],
        [-0.536, 0.181],
        [1.304, 0.474],
        [-0.704, -0.633],
        [-0.623, 0.021],
        [-2.325, -0.109],
        [-1.246, -0.366],
        [-0.544, -0.158],
        [0.412, 0.521],
        [-0.129, 0.683],
        [-0.665, 0.176],
        [4.452, 1.141],
        [3.628, -0.383],
        [3.771, 1.33],
        [3.495, 0.686],
        [3.92, 1.811],
        [4.107, 1.533],
        [3.673, 0.806],
        [4.392, 3.24],
        [3.37, 3.271],
        [4.673, 2.172],
        [1.212, 4.749],
        [2.166, 6.568],
        [2.441, 6.052],
        [1.286, 4.033],
        [0.996, 5.525],
        [-0.031, 5.316],
        [1.344, 5.557],
        [0.053, 4.471],
    ];
    let x = Array2::from_shape_vec((30, 2), x.into_iter().flatten().collect()).unwrap();
    let labels = ClassIndex::new(std::iter::repeat_n(0i64, 30), 1, "labels").unwrap();
    let init = GmmParams {
        means: array![[[1f32, 1.], [2., 2.], [0., 3.]]],
        variances: ndarray::Array3::ones((1, 3, 2)),
        log_weights: Array2::from_elem((1, 3), (1f32 / 3.0).ln()),
    };
    let cfg = GmmConfig::batch_vanilla(1, 3, 2).check().unwrap();
    let (p, _) = fit(
        x.view(),
        &labels,
        &cfg,
        &FitOptions {
            iterations: 20,
            seed: 0,
            init: Some(init),
        },
    )
    .unwrap();
    let weights = [0.4000147246465554, 0.3331211730084399, 0.26686410234500474];
    let means = [
        [-0.35735444783729436, 0.06466174479845833],
        [3.948451403956312, 1.5597595434639493],
        [1.1850011423145301, 5.282384378930576],
    ];
    let vars = [
        [0.814374895206351, 0.13960089543374984],
        [0.1850581736422099, 1.1613069072131312],
        [0.6845686305718262, 0.6230850392420584],
    ];
    let rel = |a: f32, b: f64| ((a as f64 - b) / b.abs()).abs();
    for j in 0..3 {
        assert!(
            rel(p.log_weights[[0, j]].exp(), weights[j]) < 1e-4,
            "weight {j}"
        );
        for k in 0..2 {
            assert!(
                rel(p.means[[0, j, k]], means[j][k]) < 1e-4,
                "mean {j},{k}: {} vs {}",
                p.means[[0, j, k]],
                means[j][k]
            );
            assert!(
                rel(p.variances[[0, j, k]], vars[j][k]) < 1e-4,
                "var {j},{k}: {} vs {}",
                p.variances[[0, j, k]],
                vars[j][k]
            );
        }
    }
}
