//! Evaluation of a [`SegModel`] on a dataset: segmentation (mIoU, pixel accuracy),
//! calibration (ECE, NLL, Brier) and, on splits with anomaly masks, anomaly detection (AUROC,
//! AP, FPR at 95% TPR) for MSP, entropy and max-logit plus any head-specific score.
//!
//! Metrics come from [`crate::metrics`] (streaming): a confusion matrix for mIoU and accuracy
//! (predictions at label resolution: logits bilinearly up-sampled, as mmseg does), a
//! calibration accumulator (15 equal-width bins) for ECE, MCE, NLL and Brier, and one anomaly
//! accumulator per score (exact AUROC, AP, FPR95). Anomaly scores, higher = more anomalous:
//! MSP −max_c p, entropy −Σ p log p, max-logit −max_c z, plus every head-specific map
//! (`likelihood`, `mahalanobis`). Pixels with anomaly mask 255 are skipped; positives are 1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use ndarray::ArrayView4;

use super::batch::make_batch;
use crate::data::Dataset;
use crate::error::{GmmSegError, Result};
use crate::metrics::{
    AnomalyAccumulator, CalibrationAccumulator, CalibrationConfig, ConfusionMatrix,
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
    /// IoU per class (NaN-free: absent classes are `None`).
    pub iou_per_class: Vec<Option<f64>>,
    /// Per score name (`msp`, `entropy`, `maxlogit`, head-specific ones); only on splits with
    /// anomaly masks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<BTreeMap<String, AnomalyMetrics>>,
    /// Images evaluated.
    pub images: usize,
}

/// Evaluates `model` on the first `max_images` images of `ds` (0 = all), `batch` at a time.
///
/// # Errors
/// Dataset and shape errors; [`GmmSegError::Empty`] when no pixel has a valid label.
pub fn evaluate(
    model: &mut SegModel,
    ds: &dyn Dataset,
    batch: usize,
    max_images: usize,
) -> Result<EvalReport> {
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
    let n_img = if max_images == 0 {
        ds.len()
    } else {
        max_images.min(ds.len())
    };
    let mut confusion = ConfusionMatrix::new(c)?;
    let mut calibration = CalibrationAccumulator::new(CalibrationConfig::with_bins(15).check()?);
    let mut anomaly_acc: BTreeMap<String, AnomalyAccumulator> = BTreeMap::new();
    let mut with_anomaly = false;
    let mut start = 0;
    while start < n_img {
        let mut end = (start + batch.max(1)).min(n_img);
        let plan: Vec<(usize, bool)> = (start..end).map(|i| (i, false)).collect();
        // images of different sizes (folder datasets) cannot share a batch: fall back to one
        let b = match make_batch(ds, &plan) {
            Ok(b) => b,
            Err(GmmSegError::Shape { .. }) if plan.len() > 1 => {
                end = start + 1;
                make_batch(ds, &plan[..1])?
            }
            Err(e) => return Err(e),
        };
        start = end;
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
                let s: f32 = (0..c).map(|k| (logits[at(k)] - m).exp()).sum();
                let (mut best, mut pmax, mut ent) = (0, f32::MIN, 0f32);
                for k in 0..c {
                    let p = (logits[at(k)] - m).exp() / s;
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
        let labels = b.labels.as_slice().expect("standard layout");
        confusion.update(&pred, labels)?;
        let probs = ArrayView4::from_shape((bn, c, h, w), &probs).expect("shape matches");
        calibration.update_dense(probs, b.labels.view())?;
        if let Some(mask) = b.anomaly.as_ref() {
            with_anomaly = true;
            let mask = mask.as_slice().expect("standard layout");
            let named = [
                ("msp", &msp),
                ("entropy", &entropy),
                ("maxlogit", &maxlogit),
            ];
            for (k, v) in named
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .chain(extra.iter().map(|(k, v)| (k.clone(), v)))
            {
                anomaly_acc.entry(k).or_default().update(v, mask)?;
            }
        }
    }
    let seg = confusion.finish().map_err(|e| match e {
        GmmSegError::Empty { .. } => GmmSegError::empty(
            "evaluation labels",
            format!("no valid pixel in {} images of {}", n_img, ds.name()),
        ),
        e => e,
    })?;
    let cal = calibration.finish()?;
    let anomaly = if with_anomaly {
        let mut out = BTreeMap::new();
        for (k, acc) in anomaly_acc {
            let m = acc.finish()?;
            out.insert(
                k,
                AnomalyMetrics {
                    auroc: m.auroc,
                    ap: m.ap,
                    fpr95: m.fpr95,
                },
            );
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
        iou_per_class: seg.per_class_iou,
        anomaly,
        images: n_img,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two toy sets of different image sizes behind one `Dataset`.
    struct Mixed(crate::train::toy::ToyShapes, crate::train::toy::ToyShapes);
    impl Dataset for Mixed {
        fn len(&self) -> usize {
            4
        }
        fn get(&self, i: usize) -> Result<crate::data::Sample> {
            if i % 2 == 0 {
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
        use crate::train::config::TrainConfig;
        use crate::train::toy::{ToyShapes, ToySplit};
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
}
