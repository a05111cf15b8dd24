//! The evaluation-only heads fitted after training on a frozen network's features
//! ([`crate::train::posthoc`] collects them): the post-hoc GMM of the paper's Table 3 and
//! the Mahalanobis anomaly baseline of Table 2 (Lee et al., 2018), the latter wrapping any
//! other head so that the evaluator needs no special case.

use dfdx::shapes::HasShape;
use ndarray::{Array1, Array2, Axis};

use super::density::{act_to_rows, density_output, rows_to_act};
use super::{Head, HeadOutput};
use crate::error::{GmmSegError, Result};
use crate::gmm::{class_scores, GmmParams, LogLikTable, Reduction};
use crate::nn::{Act, Dev, Param, Params, Tp};

/// Penultimate features of a dataset with their labels, grouped by class.
#[derive(Clone, Debug)]
pub struct ClassFeatures {
    /// Features (N, D).
    pub features: Array2<f32>,
    /// Labels (N,), all valid.
    pub labels: Vec<u8>,
}

/// One Gaussian per class with a shared (pooled within-class) covariance, scoring
/// `min_c (x − μ_c)ᵀ Σ⁻¹ (x − μ_c)`: the Mahalanobis anomaly baseline (Lee et al., 2018).
#[derive(Clone, Debug)]
pub struct Mahalanobis {
    /// Whitened class means L⁻¹ μ_c, (C, D).
    white_means: Array2<f64>,
    /// Cholesky factor L of Σ (lower triangular), (D, D).
    chol: Array2<f64>,
    /// Classes with no pixel (excluded from the minimum).
    present: Vec<bool>,
}

impl Mahalanobis {
    /// Fits the class means and the shared covariance (+ `reg`·I).
    ///
    /// # Errors
    /// [`GmmSegError::Empty`] without data; [`GmmSegError::Undefined`] if the covariance is
    /// not positive definite even after regularisation.
    pub fn fit(data: &ClassFeatures, num_classes: usize, reg: f64) -> Result<Self> {
        let (n, d) = data.features.dim();
        if n == 0 {
            return Err(GmmSegError::empty("Mahalanobis features", "no pixels"));
        }
        let x = data.features.mapv(|v| v as f64);
        let mut means = Array2::<f64>::zeros((num_classes, d));
        let mut counts = vec![0usize; num_classes];
        for (row, &l) in x.axis_iter(Axis(0)).zip(&data.labels) {
            means.row_mut(l as usize).scaled_add(1.0, &row);
            counts[l as usize] += 1;
        }
        for (c, &k) in counts.iter().enumerate() {
            if k > 0 {
                means.row_mut(c).mapv_inplace(|v| v / k as f64);
            }
        }
        let mut centred = x.clone();
        for (mut row, &l) in centred.axis_iter_mut(Axis(0)).zip(&data.labels) {
            row -= &means.row(l as usize);
        }
        let mut cov = centred.t().dot(&centred) / n as f64;
        for i in 0..d {
            cov[[i, i]] += reg;
        }
        let chol = cholesky(&cov).ok_or_else(|| GmmSegError::Undefined {
            what: "Mahalanobis covariance".into(),
            reason: "not positive definite; increase the regularisation".into(),
        })?;
        let mut white_means = Array2::zeros((num_classes, d));
        for c in 0..num_classes {
            white_means
                .row_mut(c)
                .assign(&forward_substitute(&chol, means.row(c).to_owned()));
        }
        Ok(Mahalanobis {
            white_means,
            chol,
            present: counts.iter().map(|&k| k > 0).collect(),
        })
    }

    /// Minimum squared Mahalanobis distance to a class mean, per row of `x` (N, D).
    pub fn score(&self, x: &Array2<f32>) -> Array1<f32> {
        x.axis_iter(Axis(0))
            .map(|row| {
                let z = forward_substitute(&self.chol, row.mapv(|v| v as f64));
                self.white_means
                    .axis_iter(Axis(0))
                    .zip(&self.present)
                    .filter(|(_, &p)| p)
                    .map(|(m, _)| (&z - &m).mapv(|v| v * v).sum())
                    .fold(f64::INFINITY, f64::min) as f32
            })
            .collect()
    }
}

/// Cholesky factor of a symmetric positive-definite matrix, or `None`.
fn cholesky(a: &Array2<f64>) -> Option<Array2<f64>> {
    let n = a.nrows();
    let mut l = Array2::<f64>::zeros((n, n));
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[[i, k]] * l[[j, k]]).sum();
            if i == j {
                let v = a[[i, i]] - s;
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[[i, j]] = v.sqrt();
            } else {
                l[[i, j]] = (a[[i, j]] - s) / l[[j, j]];
            }
        }
    }
    Some(l)
}

/// Solves L z = b for lower-triangular L.
fn forward_substitute(l: &Array2<f64>, b: Array1<f64>) -> Array1<f64> {
    let n = b.len();
    let mut z = Array1::zeros(n);
    for i in 0..n {
        let s: f64 = (0..i).map(|k| l[[i, k]] * z[k]).sum();
        z[i] = (b[i] - s) / l[[i, i]];
    }
    z
}

/// A softmax (or any) head with the Mahalanobis score added to its evaluation output.
pub struct WithMahalanobis {
    /// The wrapped head.
    pub inner: Box<dyn Head>,
    /// The fitted scorer.
    pub scorer: Mahalanobis,
}

/// A frozen network's features classified by a post-hoc GMM: logits are log p(x|c), the
/// anomaly score is `likelihood` = −max_c log p(x|c). Evaluation only.
pub struct PosthocGmmHead {
    params: GmmParams,
    table: LogLikTable,
    reduction: Reduction,
    dev: Dev,
}

impl PosthocGmmHead {
    /// Wraps fitted parameters.
    pub fn new(params: GmmParams, reduction: Reduction) -> Self {
        let table = params.loglik_table();
        PosthocGmmHead {
            params,
            table,
            reduction,
            dev: Dev::default(),
        }
    }
}

fn training_not_supported<T>(kind: &str) -> Result<T> {
    Err(GmmSegError::input(
        "head",
        format!("the {kind} head is for evaluation only; it has no training forward"),
    ))
}

impl Params for PosthocGmmHead {
    fn visit(&self, _f: &mut dyn FnMut(&Param)) {}
    fn visit_mut(&mut self, _f: &mut dyn FnMut(&mut Param)) {}
}

impl Head for PosthocGmmHead {
    fn kind(&self) -> &'static str {
        "post-hoc-gmm"
    }
    fn num_classes(&self) -> usize {
        self.params.num_classes()
    }
    fn feature_dim(&self) -> usize {
        self.params.dim()
    }
    fn logits_train(&mut self, _feats: Act<Tp>) -> Result<Act<Tp>> {
        training_not_supported(self.kind())
    }
    fn mixture(&self) -> Option<&GmmParams> {
        Some(&self.params)
    }
    fn infer(&self, feats: Act) -> Result<HeadOutput> {
        let (b, _, h, w) = *feats.shape();
        let rows = act_to_rows(&feats);
        let ll = self.table.compute(rows.view());
        let class_ll = class_scores(ll.view(), self.params.components(), self.reduction);
        Ok(density_output(&self.dev, &class_ll, &class_ll, (b, h, w)))
    }
}

impl Params for WithMahalanobis {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        self.inner.visit(f)
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.inner.visit_mut(f)
    }
}

impl Head for WithMahalanobis {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn num_classes(&self) -> usize {
        self.inner.num_classes()
    }
    fn feature_dim(&self) -> usize {
        self.inner.feature_dim()
    }
    fn logits_train(&mut self, _feats: Act<Tp>) -> Result<Act<Tp>> {
        training_not_supported("Mahalanobis-scored")
    }
    fn mixture(&self) -> Option<&GmmParams> {
        self.inner.mixture()
    }
    fn to_mixture_space(&self, rows: Array2<f32>) -> Array2<f32> {
        self.inner.to_mixture_space(rows)
    }
    fn infer(&self, feats: Act) -> Result<HeadOutput> {
        let (b, _, h, w) = *feats.shape();
        let scores = self.scorer.score(&act_to_rows(&feats));
        let map = scores
            .into_shape_with_order((b * h * w, 1))
            .expect("one score per pixel");
        let mut out = self.inner.infer(feats)?;
        out.anomaly.push((
            "mahalanobis".into(),
            rows_to_act(&Dev::default(), &map, b, h, w),
        ));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mahalanobis_by_hand() {
        // Two classes in 2-D with a shared diagonal covariance diag(1, 4) (+ tiny reg).
        let features = ndarray::array![
            [1f32, 2.],
            [-1., -2.],
            [1., -2.],
            [-1., 2.],
            [11., 12.],
            [9., 8.],
            [11., 8.],
            [9., 12.]
        ];
        let labels = vec![0, 0, 0, 0, 1, 1, 1, 1];
        let m = Mahalanobis::fit(&ClassFeatures { features, labels }, 2, 1e-9).unwrap();
        let s = m.score(&ndarray::array![[2f32, 0.], [0., 4.], [10., 10.]]);
        assert!((s[0] - 4.0).abs() < 1e-5, "{s}");
        assert!((s[1] - 4.0).abs() < 1e-5, "{s}");
        assert!(s[2].abs() < 1e-5);
        assert!(cholesky(&ndarray::array![[1.0, 2.0], [2.0, 1.0]]).is_none());
    }
}
