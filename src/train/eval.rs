//! Evaluation of a [`SegModel`] on a dataset ([`evaluate`]): segmentation (mIoU, pixel
//! accuracy), calibration (ECE, NLL, Brier) and, on splits with anomaly masks, anomaly
//! detection (AUROC, AP, FPR at 95% TPR) for MSP, entropy and max-logit plus any
//! head-specific score. The per-pixel views that figures need — [`predict`] (predictions and
//! anomaly maps of chosen images) and [`anomaly_curves`] (ROC / PR curves) — come from the
//! same dense-output path.
//!
//! Metrics come from [`crate::metrics`] (streaming): a confusion matrix for mIoU and accuracy
//! (predictions at label resolution: logits bilinearly up-sampled, as mmseg does), a
//! calibration accumulator (15 equal-width bins) for ECE, MCE, NLL and Brier, and one anomaly
//! accumulator per score (exact AUROC, AP, FPR95). Anomaly scores, higher = more anomalous:
//! MSP −max_c p, entropy −Σ p log p, max-logit −max_c z, plus every head-specific map
//! (`likelihood`, `mahalanobis`). Pixels with anomaly mask 255 are skipped; positives are 1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use ndarray::{Array2, Array3, ArrayView4};

use crate::data::batch::{denormalise, make_batch};
use crate::data::Batch;
use crate::data::Dataset;
use crate::error::{GmmSegError, Result};
use crate::metrics::components::{ComponentAccumulator, ComponentConfig};
use crate::metrics::{
    AnomalyAccumulator, AnomalyCurves, BootstrapConfig, CalibrationAccumulator, CalibrationConfig,
    ConfusionMatrix, ValidBootstrapConfig,
};
use crate::nn::resample::resize_bilinear;
use crate::nn::segnet::SegModel;
use crate::nn::to_host;

/// Anomaly-detection metrics of one score.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnomalyMetrics {
    /// Area under the ROC curve.
    pub auroc: f64,
    /// Average precision (area under the precision–recall curve, step-wise).
    pub ap: f64,
    /// False-positive rate at the first threshold reaching 95% true-positive rate.
    pub fpr95: f64,
    /// SegmentMeIfYouCan's mean adjusted component IoU (at the best-F1 threshold).
    #[serde(default)]
    pub siou: Option<f64>,
    /// SegmentMeIfYouCan's mean component precision.
    #[serde(default)]
    pub ppv: Option<f64>,
    /// SegmentMeIfYouCan's F1 averaged over sIoU thresholds 0.25..0.75.
    #[serde(default)]
    pub mean_f1: Option<f64>,
    /// Image-bootstrap 95% intervals (`auroc`, `ap`, `fpr95`, `siou`, `ppv`, `mean_f1`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci95: BTreeMap<String, [f64; 2]>,
}

/// Metrics of one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Mean intersection over union.
    pub miou: f64,
    /// Pixel accuracy.
    pub acc: f64,
    /// Mean class accuracy.
    #[serde(default)]
    pub macc: f64,
    /// Expected calibration error (15 bins).
    pub ece: f64,
    /// Maximum calibration error over non-empty bins.
    #[serde(default)]
    pub mce: f64,
    /// Mean negative log-likelihood of the true class.
    pub nll: f64,
    /// Mean Brier score.
    pub brier: f64,
    /// RMS calibration error (15 bins).
    #[serde(default)]
    pub rmsce: f64,
    /// Classwise ECE (15 bins, averaged over classes).
    #[serde(default)]
    pub classwise_ece: f64,
    /// Smooth ECE (relplot's automatic bandwidth).
    #[serde(default)]
    pub smooth_ece: Option<f64>,
    /// Brier decomposition: reliability.
    #[serde(default)]
    pub brier_reliability: f64,
    /// Brier decomposition: resolution.
    #[serde(default)]
    pub brier_resolution: f64,
    /// Brier decomposition: uncertainty.
    #[serde(default)]
    pub brier_uncertainty: f64,
    /// Image-bootstrap 95% intervals of the calibration metrics (empty when the evaluation
    /// ran without the bootstrap).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ci95: BTreeMap<String, [f64; 2]>,
    /// IoU per class (NaN-free: absent classes are `None`).
    pub iou_per_class: Vec<Option<f64>>,
    /// Per score name (`msp`, `entropy`, `maxlogit`, head-specific ones); only on splits with
    /// anomaly masks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<BTreeMap<String, AnomalyMetrics>>,
    /// Images evaluated.
    pub images: usize,
    /// The 15 equal-width reliability bins behind `ece` (for reliability diagrams). Not
    /// serialised: `eval --json` stays small, and the experiments' model records keep
    /// their own copy.
    #[serde(skip)]
    pub bins: Vec<crate::metrics::calibration::ReliabilityBin>,
    /// Image-bootstrap 95% interval of each bin's accuracy (empty without the bootstrap).
    #[serde(skip)]
    pub bin_accuracy_ci95: Vec<Option<[f64; 2]>>,
    /// Per class, the reliability bins of p_c against the frequency of the class.
    #[serde(skip)]
    pub classwise_bins: Vec<Vec<crate::metrics::calibration::ReliabilityBin>>,
}

/// How an evaluation runs beyond the model and the images.
#[derive(Clone, Debug, PartialEq)]
pub struct EvalOptions {
    /// Divide the logits by this temperature before the softmax (temperature scaling,
    /// [`crate::metrics::temperature`]); `None` = 1.
    pub temperature: Option<f64>,
    /// Image-bootstrap intervals of the calibration and anomaly metrics (images resampled
    /// whole); `None` = no intervals.
    pub bootstrap: Option<ValidBootstrapConfig>,
}

impl EvalOptions {
    /// No temperature and no bootstrap (progress evaluations during training).
    pub fn without_intervals() -> Self {
        Self {
            temperature: None,
            bootstrap: None,
        }
    }
}

impl Default for EvalOptions {
    /// No temperature; 1,000 bootstrap replicates, seed 0 (so that every model's record
    /// carries its image-level intervals).
    fn default() -> Self {
        Self {
            temperature: None,
            bootstrap: Some(
                BootstrapConfig::default()
                    .check()
                    .expect("the default bootstrap configuration is valid"),
            ),
        }
    }
}

/// Evaluates `model` on the first `max_images` images of `ds` (0 = all), `batch` at a time,
/// with the default [`EvalOptions`] (no temperature, image-bootstrap intervals).
///
/// # Errors
/// Dataset and shape errors; [`GmmSegError::Empty`] when no pixel has a valid label.
pub fn evaluate(
    model: &mut SegModel,
    ds: &dyn Dataset,
    batch: usize,
    max_images: usize,
) -> Result<EvalReport> {
    evaluate_with(model, ds, batch, max_images, &EvalOptions::default())
}

/// One anomaly score's maps, image by image, for the component metrics.
struct ScoreImages {
    acc: AnomalyAccumulator,
    maps: Vec<Array2<f32>>,
}

/// [`evaluate`] with explicit [`EvalOptions`].
///
/// # Errors
/// As [`evaluate`]; an invalid temperature (not finite and positive).
pub fn evaluate_with(
    model: &mut SegModel,
    ds: &dyn Dataset,
    batch: usize,
    max_images: usize,
    opts: &EvalOptions,
) -> Result<EvalReport> {
    check_classes(model, ds)?;
    if let Some(t) = opts.temperature {
        if !(t.is_finite() && t > 0.0) {
            return Err(GmmSegError::config(
                "temperature",
                format!("must be finite and > 0, got {t}"),
            ));
        }
    }
    let c = model.head.num_classes();
    let n_img = if max_images == 0 {
        ds.len()
    } else {
        max_images.min(ds.len())
    };
    let boot = opts.bootstrap.as_ref();
    let mut confusion = ConfusionMatrix::new(c)?;
    let mut calibration = CalibrationAccumulator::new(CalibrationConfig::with_bins(15).check()?);
    let mut anomaly_acc: BTreeMap<String, ScoreImages> = BTreeMap::new();
    let mut masks: Vec<Array2<u8>> = Vec::new();
    let mut with_anomaly = false;
    let mut start = 0;
    while start < n_img {
        let first = start;
        let (b, end) = batch_at(ds, start, n_img, batch)?;
        start = end;
        let out = dense_outputs(model, &b, opts.temperature)?;
        let labels = b.labels.as_slice().expect("standard layout");
        confusion.update(&out.pred, labels)?;
        let probs =
            ArrayView4::from_shape(out.dims, &out.probs).expect("dense_outputs keeps its shape");
        if boot.is_some() {
            calibration.update_dense_images(probs, b.labels.view(), first)?;
        } else {
            calibration.update_dense(probs, b.labels.view())?;
        }
        if let Some(mask) = b.anomaly.as_ref() {
            with_anomaly = true;
            let (bn, h, w) = mask.dim();
            let flat = mask.as_slice().expect("standard layout");
            let ids: Vec<u32> = (0..bn)
                .flat_map(|i| std::iter::repeat_n((first + i) as u32, h * w))
                .collect();
            for (k, v) in &out.scores {
                let e = anomaly_acc.entry(k.clone()).or_insert_with(|| ScoreImages {
                    acc: AnomalyAccumulator::new(),
                    maps: Vec::new(),
                });
                if boot.is_some() {
                    e.acc.update_grouped(v, flat, &ids)?;
                } else {
                    e.acc.update(v, flat)?;
                }
                e.maps.extend(
                    v.chunks_exact(h * w)
                        .map(|m| Array2::from_shape_vec((h, w), m.to_vec()).expect("(H, W)")),
                );
            }
            masks.extend(mask.outer_iter().map(|m| m.to_owned()));
        }
    }
    let seg = confusion.finish().map_err(|e| match e {
        GmmSegError::Empty { .. } => GmmSegError::empty(
            "evaluation labels",
            format!("no valid pixel in {} images of {}", n_img, ds.name()),
        ),
        e => e,
    })?;
    let cal = match boot {
        Some(cfg) if n_img >= 2 => calibration.finish_with_bootstrap(cfg)?,
        _ => calibration.finish()?,
    };
    let anomaly = if with_anomaly {
        let mut out = BTreeMap::new();
        for (k, s) in anomaly_acc {
            out.insert(k, score_metrics(s, &masks, boot)?);
        }
        Some(out)
    } else {
        None
    };
    Ok(EvalReport {
        miou: seg.miou,
        acc: seg.acc,
        macc: seg.macc,
        ece: cal.ece,
        mce: cal.mce,
        nll: cal.nll,
        brier: cal.brier,
        rmsce: cal.rmsce,
        classwise_ece: cal.classwise_ece,
        smooth_ece: cal.smooth_ece,
        brier_reliability: cal.brier_reliability,
        brier_resolution: cal.brier_resolution,
        brier_uncertainty: cal.brier_uncertainty,
        ci95: cal.ci95,
        iou_per_class: seg.per_class_iou,
        anomaly,
        images: n_img,
        bins: cal.bins,
        bin_accuracy_ci95: cal.bin_accuracy_ci95,
        classwise_bins: cal.classwise_bins,
    })
}

/// Pixel and component metrics of one anomaly score (components at its best-F1 threshold,
/// SegmentMeIfYouCan's sizes scaled to the image area), with intervals when `boot` is set.
fn score_metrics(
    s: ScoreImages,
    masks: &[Array2<u8>],
    boot: Option<&ValidBootstrapConfig>,
) -> Result<AnomalyMetrics> {
    let images = s.maps.len();
    let (m, mut ci95) = match boot {
        Some(cfg) if images >= 2 => s.acc.finish_with_bootstrap(cfg)?,
        _ => (s.acc.finish()?, BTreeMap::new()),
    };
    let mut comp = ComponentAccumulator::new(m.best_f1_threshold)?;
    for (map, mask) in s.maps.iter().zip(masks) {
        let (h, w) = map.dim();
        let cfg = ComponentConfig::for_image(h, w).check()?;
        comp.update_image(map.view(), mask.view(), &cfg)?;
    }
    let c = match boot {
        Some(cfg) if images >= 2 => comp.finish_with_bootstrap(cfg)?,
        _ => comp.finish()?,
    };
    ci95.extend(c.ci95);
    let finite = |x: f64| x.is_finite().then_some(x);
    Ok(AnomalyMetrics {
        auroc: m.auroc,
        ap: m.ap,
        fpr95: m.fpr95,
        siou: finite(c.siou),
        ppv: finite(c.ppv),
        mean_f1: finite(c.mean_f1),
        ci95,
    })
}

/// The batch of images `start..` (up to `batch` of them, fewer at the end of `n_img`) and
/// the index after it. Images of different sizes (folder datasets) cannot share a batch:
/// then the batch falls back to one image.
fn batch_at(ds: &dyn Dataset, start: usize, n_img: usize, batch: usize) -> Result<(Batch, usize)> {
    let end = (start + batch.max(1)).min(n_img);
    let plan: Vec<(usize, bool)> = (start..end).map(|i| (i, false)).collect();
    match make_batch(ds, &plan) {
        Ok(b) => Ok((b, end)),
        Err(GmmSegError::Shape { .. }) if plan.len() > 1 => {
            Ok((make_batch(ds, &plan[..1])?, start + 1))
        }
        Err(e) => Err(e),
    }
}

/// A model's dense outputs on one batch, at label resolution, as flat row-major buffers.
struct DenseOutputs {
    /// (N, C, H, W).
    dims: (usize, usize, usize, usize),
    /// Class probabilities, (N, C, H, W).
    probs: Vec<f32>,
    /// Arg-max class, (N, H, W).
    pred: Vec<u8>,
    /// Anomaly scores (higher = more anomalous), each (N, H, W): `msp`, `entropy`,
    /// `maxlogit`, then the head's own maps.
    scores: Vec<(String, Vec<f32>)>,
}

/// Runs the model on `b` and derives probabilities (of the logits divided by `temperature`,
/// when given), predictions and every anomaly score (the one place both [`evaluate`] and
/// [`predict`] get them from).
fn dense_outputs(
    model: &mut SegModel,
    b: &Batch,
    temperature: Option<f64>,
) -> Result<DenseOutputs> {
    let inv_t = temperature.map_or(1.0, |t| (1.0 / t) as f32);
    let c = model.head.num_classes();
    let (bn, h, w) = b.labels.dim();
    let out = model.infer(&b.images)?;
    let logits = to_host(&resize_bilinear(out.logits, h, w)?);
    let extra: Vec<(String, Vec<f32>)> = out
        .anomaly
        .into_iter()
        .map(|(k, a)| resize_bilinear(a, h, w).map(|t| (k, to_host(&t))))
        .collect::<Result<_>>()?;
    let hw = h * w;
    let mut probs = vec![0f32; bn * c * hw];
    let mut pred = vec![0u8; bn * hw];
    let (mut msp, mut entropy, mut maxlogit) = (
        vec![0f32; bn * hw],
        vec![0f32; bn * hw],
        vec![0f32; bn * hw],
    );
    for n in 0..bn {
        for px in 0..hw {
            let at = |k: usize| (n * c + k) * hw + px;
            let m = (0..c)
                .map(|k| logits[at(k)])
                .fold(f32::NEG_INFINITY, f32::max);
            let s: f32 = (0..c).map(|k| ((logits[at(k)] - m) * inv_t).exp()).sum();
            let (mut best, mut pmax, mut ent) = (0, f32::MIN, 0f32);
            for k in 0..c {
                let p = ((logits[at(k)] - m) * inv_t).exp() / s;
                probs[at(k)] = p;
                if p > pmax {
                    (best, pmax) = (k, p);
                }
                if p > 0.0 {
                    ent -= p * p.ln();
                }
            }
            let i = n * hw + px;
            pred[i] = best as u8;
            msp[i] = -pmax;
            entropy[i] = ent;
            maxlogit[i] = -m;
        }
    }
    let mut scores = vec![
        ("msp".to_string(), msp),
        ("entropy".to_string(), entropy),
        ("maxlogit".to_string(), maxlogit),
    ];
    scores.extend(extra);
    Ok(DenseOutputs {
        dims: (bn, c, h, w),
        probs,
        pred,
        scores,
    })
}

/// The logits at label resolution, (N, C) rows of every valid pixel, and their labels, of
/// the first `max_images` images of `ds` (0 = all); at most `max_pixels` rows, taken evenly
/// spaced over the valid pixels. What a temperature is fitted on
/// ([`crate::metrics::temperature::fit_temperature`]).
///
/// # Errors
/// Dataset and shape errors; [`GmmSegError::Empty`] when no pixel has a valid label.
pub fn collect_logits(
    model: &mut SegModel,
    ds: &dyn Dataset,
    batch: usize,
    max_images: usize,
    max_pixels: usize,
) -> Result<(Array2<f32>, Vec<u8>)> {
    check_classes(model, ds)?;
    let c = model.head.num_classes();
    let n_img = if max_images == 0 {
        ds.len()
    } else {
        max_images.min(ds.len())
    };
    let (mut rows, mut labels) = (Vec::new(), Vec::new());
    let mut start = 0;
    while start < n_img {
        let (b, end) = batch_at(ds, start, n_img, batch)?;
        start = end;
        let (bn, h, w) = b.labels.dim();
        let logits = to_host(&resize_bilinear(model.infer(&b.images)?.logits, h, w)?);
        let hw = h * w;
        for n in 0..bn {
            for px in 0..hw {
                let y = b.labels.as_slice().expect("standard layout")[n * hw + px];
                if y == crate::data::IGNORE_LABEL {
                    continue;
                }
                rows.extend((0..c).map(|k| logits[(n * c + k) * hw + px]));
                labels.push(y);
            }
        }
    }
    if labels.is_empty() {
        return Err(GmmSegError::empty(
            "temperature labels",
            format!("no valid pixel in {n_img} images of {}", ds.name()),
        ));
    }
    let n = labels.len();
    let keep = max_pixels.max(1).min(n);
    let pick: Vec<usize> = (0..keep).map(|i| i * n / keep).collect();
    let z = Array2::from_shape_fn((keep, c), |(i, k)| rows[pick[i] * c + k]);
    let y = pick.iter().map(|&i| labels[i]).collect();
    Ok((z, y))
}

/// One image with what the model makes of it, for figures (predictions, heat maps).
#[derive(Clone, Debug)]
pub struct DensePrediction {
    /// Index of the image in its dataset.
    pub index: usize,
    /// The image, (3, H, W) in [0, 1].
    pub image: Array3<f32>,
    /// Ground-truth labels (255 = ignore).
    pub label: Array2<u8>,
    /// Anomaly mask (1 anomalous, 0 not, 255 ignore) on anomaly splits.
    pub anomaly: Option<Array2<u8>>,
    /// Predicted class per pixel.
    pub pred: Array2<u8>,
    /// Probability of the predicted class per pixel.
    pub confidence: Array2<f32>,
    /// Anomaly scores per pixel (higher = more anomalous), by name as in [`EvalReport`].
    pub scores: BTreeMap<String, Array2<f32>>,
}

impl DensePrediction {
    /// A row of [`crate::plot::images::sample_grid`]: image, ground truth, prediction and
    /// the anomaly map `score` (none if the model has no such score).
    pub fn grid_row(&self, score: &str) -> crate::plot::images::GridRow<'_> {
        crate::plot::images::GridRow {
            image: &self.image,
            label: &self.label,
            prediction: &self.pred,
            anomaly: self.scores.get(score),
        }
    }
}

/// The model's predictions and anomaly maps on the images `indices` of `ds`.
///
/// # Errors
/// [`GmmSegError::InvalidInput`] naming `indices` for an index out of range or a dataset
/// whose class count differs from the model's; dataset and shape errors.
pub fn predict(
    model: &mut SegModel,
    ds: &dyn Dataset,
    indices: &[usize],
) -> Result<Vec<DensePrediction>> {
    check_classes(model, ds)?;
    if let Some(&bad) = indices.iter().find(|&&i| i >= ds.len()) {
        return Err(GmmSegError::input(
            "indices",
            format!(
                "image {bad} is out of range: {} has {} images",
                ds.name(),
                ds.len()
            ),
        ));
    }
    let mut out = Vec::with_capacity(indices.len());
    for &i in indices {
        let b = make_batch(ds, &[(i, false)])?;
        let d = dense_outputs(model, &b, None)?;
        let (_, _, h, w) = d.dims;
        let image = b.images.index_axis(ndarray::Axis(0), 0).to_owned();
        // undo the batcher's normalisation so that figures show the picture as it is
        let image =
            Array3::from_shape_fn(image.dim(), |(ch, y, x)| denormalise(image[[ch, y, x]], ch));
        let grid = |v: &[f32]| Array2::from_shape_vec((h, w), v.to_vec()).expect("(H, W)");
        let pred = Array2::from_shape_vec((h, w), d.pred.clone()).expect("(H, W)");
        let confidence = Array2::from_shape_fn((h, w), |(y, x)| {
            d.probs[(pred[[y, x]] as usize) * h * w + y * w + x]
        });
        out.push(DensePrediction {
            index: i,
            image,
            label: b.labels.index_axis(ndarray::Axis(0), 0).to_owned(),
            anomaly: b
                .anomaly
                .as_ref()
                .map(|a| a.index_axis(ndarray::Axis(0), 0).to_owned()),
            pred,
            confidence,
            scores: d.scores.iter().map(|(k, v)| (k.clone(), grid(v))).collect(),
        });
    }
    Ok(out)
}

/// Every anomaly score's metrics and ROC / PR curves (thinned to about `max_points` points)
/// on the first `max_images` images of an anomaly split (0 = all).
///
/// # Errors
/// [`GmmSegError::InvalidInput`] naming `dataset` when it has no anomaly masks or another
/// class count than the model; dataset and metric errors.
pub fn anomaly_curves(
    model: &mut SegModel,
    ds: &dyn Dataset,
    max_images: usize,
    max_points: usize,
) -> Result<BTreeMap<String, (crate::metrics::AnomalyMetrics, AnomalyCurves)>> {
    check_classes(model, ds)?;
    let n_img = if max_images == 0 {
        ds.len()
    } else {
        max_images.min(ds.len())
    };
    let batch = 8;
    let mut acc: BTreeMap<String, AnomalyAccumulator> = BTreeMap::new();
    let mut start = 0;
    while start < n_img {
        let (b, end) = batch_at(ds, start, n_img, batch)?;
        start = end;
        let Some(mask) = b.anomaly.as_ref() else {
            return Err(GmmSegError::input(
                "dataset",
                format!("{} has no anomaly masks (use an anomaly split)", ds.name()),
            ));
        };
        let mask = mask.as_slice().expect("standard layout");
        for (k, v) in dense_outputs(model, &b, None)?.scores {
            acc.entry(k).or_default().update(&v, mask)?;
        }
    }
    acc.into_iter()
        .map(|(k, a)| Ok((k, a.finish_with_curves(max_points)?)))
        .collect()
}

fn check_classes(model: &SegModel, ds: &dyn Dataset) -> Result<()> {
    let c = model.head.num_classes();
    if ds.num_classes() != c {
        return Err(GmmSegError::input(
            "dataset",
            format!(
                "{} has {} classes, the model {c}",
                ds.name(),
                ds.num_classes()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two toy sets of different image sizes behind one `Dataset`.
    struct Mixed(crate::data::toy::ToyShapes, crate::data::toy::ToyShapes);
    impl Dataset for Mixed {
        fn len(&self) -> usize {
            4
        }
        fn get(&self, i: usize) -> Result<crate::data::Sample> {
            if i.is_multiple_of(2) {
                self.0.get(i / 2)
            } else {
                self.1.get(i / 2)
            }
        }
        fn num_classes(&self) -> usize {
            4
        }
        fn class_names(&self) -> Vec<String> {
            self.0.class_names()
        }
        fn name(&self) -> String {
            "mixed".into()
        }
    }

    #[test]
    fn evaluates_mixed_image_sizes_and_reports_anomaly_metrics() {
        use crate::data::toy::{ToyShapes, ToySplit};
        use crate::train::config::TrainConfig;
        use crate::train::trainer::Trainer;
        let ds = Mixed(
            ToyShapes::new(ToySplit::Anomaly, 2, 32, 0).unwrap(),
            ToyShapes::new(ToySplit::Anomaly, 2, 40, 0).unwrap(),
        );
        let mut t = Trainer::new(TrainConfig::quick().check().unwrap(), 4).unwrap();
        let r = evaluate(&mut t.model, &ds, 4, 0).unwrap();
        assert_eq!(r.images, 4);
        for v in [r.miou, r.acc, r.ece, r.brier] {
            assert!((0.0..=2.0).contains(&v), "{r:?}");
        }
        let a = r.anomaly.unwrap();
        assert_eq!(
            a.keys().cloned().collect::<Vec<_>>(),
            vec!["entropy", "maxlogit", "msp"]
        );
    }

    #[test]
    fn predictions_and_curves_match_the_evaluation() {
        use crate::data::toy::{ToyShapes, ToySplit};
        use crate::train::config::{HeadKind, TrainConfig};
        use crate::train::posthoc::{mixture_sample, PosthocConfig};
        use crate::train::trainer::Trainer;
        let ds = ToyShapes::new(ToySplit::Anomaly, 4, 32, 0).unwrap();
        let mut t = Trainer::new(TrainConfig::quick().check().unwrap(), 4).unwrap();
        let p = predict(&mut t.model, &ds, &[0, 2]).unwrap();
        assert_eq!(p.len(), 2);
        let truth = ds.get(2).unwrap();
        assert_eq!(p[1].index, 2);
        assert_eq!(p[1].label, truth.label);
        assert_eq!(p[1].anomaly, truth.anomaly);
        // the picture comes back un-normalised
        let err = (&p[1].image - &truth.image)
            .mapv(f32::abs)
            .fold(0f32, |a, &b| a.max(b));
        assert!(err < 1e-5, "{err}");
        assert_eq!(p[0].pred.dim(), (32, 32));
        assert!(p[0]
            .confidence
            .iter()
            .all(|&c| (0.25 - 1e-6..=1.0 + 1e-6).contains(&c)));
        assert_eq!(
            p[0].scores.keys().cloned().collect::<Vec<_>>(),
            vec!["entropy", "maxlogit", "msp"]
        );
        // MSP score is minus the confidence
        assert!(p[0].scores["msp"]
            .iter()
            .zip(p[0].confidence.iter())
            .all(|(s, c)| (s + c).abs() < 1e-6));
        let e = predict(&mut t.model, &ds, &[4]).unwrap_err();
        assert!(e.to_string().contains("indices"), "{e}");

        let curves = anomaly_curves(&mut t.model, &ds, 0, 64).unwrap();
        let report = evaluate(&mut t.model, &ds, 4, 0).unwrap();
        // the reliability bins are the ones behind the ECE
        assert_eq!(report.bins.len(), 15);
        let n: u64 = report.bins.iter().map(|b| b.count).sum();
        let ece: f64 = report
            .bins
            .iter()
            .filter_map(|b| Some(b.count as f64 / n as f64 * (b.accuracy? - b.confidence?).abs()))
            .sum();
        assert!((ece - report.ece).abs() < 1e-9, "{ece} vs {}", report.ece);
        let a = report.anomaly.unwrap();
        assert_eq!(curves.len(), a.len());
        for (k, (m, c)) in &curves {
            assert!((m.auroc - a[k].auroc).abs() < 1e-12 && (m.fpr95 - a[k].fpr95).abs() < 1e-12);
            assert_eq!(c.fpr.len(), c.tpr.len());
        }
        let val = ToyShapes::new(ToySplit::Val, 2, 32, 0).unwrap();
        assert!(anomaly_curves(&mut t.model, &val, 0, 64).is_err());

        // a softmax head has no mixture to show; a GMM head does
        let cfg = PosthocConfig::new(4, 16);
        assert!(mixture_sample(&mut t.model, &ds, &cfg).is_err());
        let mut c = TrainConfig::quick();
        c.head = crate::train::config::HeadConfig::preset(HeadKind::Gmmseg);
        let mut g = Trainer::new(c.check().unwrap(), 4).unwrap();
        let m = mixture_sample(&mut g.model, &val, &cfg).unwrap();
        assert_eq!(m.data.features.ncols(), m.params.dim());
        assert_eq!(m.data.features.nrows(), m.data.labels.len());
    }
}
