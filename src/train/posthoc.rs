//! Fitting density models *after* training on a frozen network's penultimate features: the
//! post-hoc GMM of the paper's Table 3 and the Mahalanobis anomaly baseline of Table 2 (the
//! heads themselves live in [`crate::nn::head::posthoc`]).
//!
//! Both read the projected features (B, D, h, w) of training images in evaluation mode, with
//! labels nearest-down-sampled to feature resolution, keeping at most
//! [`PosthocConfig::max_pixels_per_class`] evenly spaced pixels per class (so memory stays
//! bounded on large datasets). Both plug into evaluation as head adapters that add an anomaly
//! map to the wrapped head's output, so the evaluator needs no special case.

use dfdx::shapes::HasShape;
use ndarray::{Array2, Axis};

use crate::data::batch::make_batch;
use crate::data::{Dataset, IGNORE_LABEL};
use crate::error::{GmmSegError, Result};
use crate::gmm::{fit, ClassIndex, FitOptions, GmmConfig, GmmParams, Reduction};
use crate::nn::head::density::act_to_rows;
use crate::nn::head::{ClassFeatures, Head, Mahalanobis, PosthocGmmHead, WithMahalanobis};
use crate::nn::resample::resize_labels_nearest;
use crate::nn::segnet::SegModel;

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
