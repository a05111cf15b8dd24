//! Density models fitted *after* training on a frozen network's penultimate features: the
//! post-hoc GMM of the paper's Table 3 and the Mahalanobis anomaly baseline of Table 2.
//!
//! Both read the projected features (B, D, h, w) of training images in evaluation mode, with
//! labels nearest-down-sampled to feature resolution, keeping at most
//! [`PosthocConfig::max_pixels_per_class`] evenly spaced pixels per class (so memory stays
//! bounded on large datasets). Both plug into evaluation as head adapters that add an anomaly
//! map to the wrapped head's output, so the evaluator needs no special case.

use dfdx::shapes::HasShape;
use ndarray::{Array1, Array2, Axis};

use crate::data::batch::make_batch;
use crate::data::{Dataset, IGNORE_LABEL};
use crate::error::{GmmSegError, Result};
use crate::gmm::{
    class_scores, fit, ClassIndex, FitOptions, GmmConfig, GmmParams, LogLikTable, Reduction,
};
use crate::nn::gmm_head::{act_to_rows, density_output, rows_to_act};
use crate::nn::head::{Head, HeadOutput};
use crate::nn::resample::resize_labels_nearest;
use crate::nn::segnet::SegModel;
use crate::nn::{Act, Dev, Param, Params, Tp};

/// How the penultimate features are collected and the post-hoc GMM fitted.
#[derive(Clone, Debug, PartialEq)]
pub struct PosthocConfig {
    /// Training images read (0 = all). Default 256.
    pub max_images: usize,
    /// Pixels kept per class, evenly spaced. Default 20,000.
    pub max_pixels_per_class: usize,
    /// Images per forward pass. Default 8.
    pub batch_size: usize,
    /// The mixture: default the paper's (M = 5, Sinkhorn ε = 0.05) as batch EM (no momentum).
    pub gmm: GmmConfig,
    /// EM iterations. Default 20.
    pub iterations: usize,
    /// Seed of the k-means++ initialisation. Default 0.
    pub seed: u64,
    /// Added to the diagonal of the Mahalanobis covariance. Default 1e-4.
    pub covariance_reg: f64,
}

impl PosthocConfig {
    /// Defaults for `num_classes` classes and feature dimension `dim`.
    pub fn new(num_classes: usize, dim: usize) -> Self {
        PosthocConfig {
            max_images: 256,
            max_pixels_per_class: 20_000,
            batch_size: 8,
            gmm: GmmConfig {
                dim,
                mean_momentum: 0.0,
                var_momentum: 0.0,
                ..GmmConfig::paper(num_classes)
            },
            iterations: 20,
            seed: 0,
            covariance_reg: 1e-4,
        }
    }
}

/// Penultimate features of a dataset with their labels, grouped by class.
#[derive(Clone, Debug)]
pub struct ClassFeatures {
    /// Features (N, D).
    pub features: Array2<f32>,
    /// Labels (N,), all valid.
    pub labels: Vec<u8>,
}

/// Reads the evaluation-mode features of the first `cfg.max_images` images of `ds`.
///
/// # Errors
/// Dataset errors; [`GmmSegError::Empty`] when no labelled pixel was found.
pub fn collect_features(
    model: &mut SegModel,
    ds: &dyn Dataset,
    cfg: &PosthocConfig,
) -> Result<ClassFeatures> {
    let n_images = if cfg.max_images == 0 {
        ds.len()
    } else {
        cfg.max_images.min(ds.len())
    };
    let classes = ds.num_classes();
    // Per class, its pixels' features back to back (one flat buffer, not one Vec per pixel).
    let mut per_class: Vec<Vec<f32>> = vec![Vec::new(); classes];
    let mut dim = 0;
    let mut start = 0;
    while start < n_images {
        let end = (start + cfg.batch_size.max(1)).min(n_images);
        let plan: Vec<(usize, bool)> = (start..end).map(|i| (i, false)).collect();
        let batch = make_batch(ds, &plan)?;
        let feats = model.features_eval(&batch.images)?;
        let (_, _, h, w) = *feats.shape();
        let labels = resize_labels_nearest(&batch.labels, h, w);
        let rows = act_to_rows(&feats);
        dim = rows.ncols();
        for (row, &l) in rows.axis_iter(Axis(0)).zip(labels.iter()) {
            if l != IGNORE_LABEL && (l as usize) < classes {
                per_class[l as usize].extend(row.iter());
            }
        }
        start = end;
    }
    let mut features = Vec::new();
    let mut labels = Vec::new();
    for (c, rows) in per_class.iter().enumerate() {
        let n = rows.len().checked_div(dim).unwrap_or(0);
        let keep = crate::gmm::memory::sample_evenly_spaced(
            &(0..n).collect::<Vec<_>>(),
            cfg.max_pixels_per_class,
        );
        for i in keep {
            features.extend_from_slice(&rows[i * dim..(i + 1) * dim]);
            labels.push(c as u8);
        }
    }
    if labels.is_empty() {
        return Err(GmmSegError::empty(
            ds.name(),
            "no labelled pixel in the images read",
        ));
    }
    Ok(ClassFeatures {
        features: Array2::from_shape_vec((labels.len(), dim), features).expect("whole rows"),
        labels,
    })
}

/// Features of a model in the space of its head's mixture, with the mixture: what a 2-D
/// view of the fitted components ([`crate::plot::gmm_view`]) draws.
#[derive(Clone, Debug)]
pub struct MixtureSample {
    /// Feature rows in mixture space (N, D) and their labels.
    pub data: ClassFeatures,
    /// The head's class-conditional mixture.
    pub params: GmmParams,
}

/// Reads up to `cfg.max_pixels_per_class` features per class from the first
/// `cfg.max_images` images of `ds`, maps them into the head's mixture space, and returns
/// them with the mixture.
///
/// # Errors
/// [`GmmSegError::InvalidInput`] naming `model` when its head holds no mixture (softmax,
/// discriminative GMM); as [`collect_features`].
pub fn mixture_sample(
    model: &mut SegModel,
    ds: &dyn Dataset,
    cfg: &PosthocConfig,
) -> Result<MixtureSample> {
    let Some(params) = model.head.mixture().cloned() else {
        return Err(GmmSegError::input(
            "model",
            format!(
                "the {} head holds no Gaussian mixture to show",
                model.head.kind()
            ),
        ));
    };
    let mut data = collect_features(model, ds, cfg)?;
    data.features = model.head.to_mixture_space(data.features);
    Ok(MixtureSample { data, params })
}

/// Fits the post-hoc class-conditional GMM (batch EM) on collected features.
///
/// # Errors
/// As [`crate::gmm::fit()`] (e.g. a class with fewer than two pixels).
pub fn fit_posthoc_gmm(data: &ClassFeatures, cfg: &PosthocConfig) -> Result<GmmParams> {
    let valid = cfg.gmm.clone().check()?;
    let index = ClassIndex::new(
        data.labels.iter().map(|&l| l as i64),
        valid.num_classes,
        "post-hoc labels",
    )?;
    let (params, _) = fit(
        data.features.view(),
        &index,
        &valid,
        &FitOptions {
            iterations: cfg.iterations,
            seed: cfg.seed,
            init: None,
        },
    )?;
    Ok(params)
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

/// Replaces the model's head for evaluation, fitting on `train`'s penultimate features:
/// with `post_hoc_gmm` the head becomes a [`PosthocGmmHead`] (Table 3); with `mahalanobis`
/// the Mahalanobis score is added to the anomaly scores (Table 2). Does nothing if both are
/// false. Returns the number of training pixels used.
///
/// # Errors
/// As [`collect_features`], [`fit_posthoc_gmm`] and [`Mahalanobis::fit`].
pub fn prepare_for_eval(
    model: &mut SegModel,
    train: &dyn Dataset,
    cfg: &PosthocConfig,
    post_hoc_gmm: bool,
    mahalanobis: bool,
) -> Result<usize> {
    if !post_hoc_gmm && !mahalanobis {
        return Ok(0);
    }
    let data = collect_features(model, train, cfg)?;
    if post_hoc_gmm {
        let params = fit_posthoc_gmm(&data, cfg)?;
        model.head = Box::new(PosthocGmmHead::new(params, cfg.gmm.reduction));
    }
    if mahalanobis {
        let scorer = Mahalanobis::fit(&data, train.num_classes(), cfg.covariance_reg)?;
        let placeholder: Box<dyn Head> = Box::new(PosthocGmmHead::new(
            GmmParams::standard(1, 1, 1),
            Reduction::Max,
        ));
        let inner = std::mem::replace(&mut model.head, placeholder);
        model.head = Box::new(WithMahalanobis { inner, scorer });
    }
    Ok(data.labels.len())
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
