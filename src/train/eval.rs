//! Evaluation of a [`SegModel`] on a dataset: segmentation (mIoU, pixel accuracy),
//! calibration (ECE, NLL, Brier) and, on splits with anomaly masks, anomaly detection (AUROC,
//! AP, FPR at 95% TPR) for MSP, entropy and max-logit plus any head-specific score.
//!
//! **Stop-gap:** the metric computations here are small private helpers written for this
//! branch; the crate's `metrics` module (written in parallel) is meant to replace them at
//! merge. Definitions used:
//! - mIoU: mean over classes with a non-empty union of TP/(TP+FP+FN), from the confusion
//!   matrix of valid pixels (label ≠ 255), predictions at label resolution (logits
//!   bilinearly up-sampled, as mmseg does).
//! - ECE: 15 equal-width confidence bins, Σ_b (n_b/N)|acc_b − conf_b|.
//! - NLL: mean −log p(y|x); Brier: mean Σ_c (p_c − 1[c = y])².
//! - Anomaly scores (higher = more anomalous): MSP −max_c p, entropy −Σ p log p, max-logit
//!   −max_c z. Pixels with mask 255 are skipped; positives are mask 1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::batch::make_batch;
use crate::data::{Dataset, IGNORE_LABEL};
use crate::error::{GmmSegError, Result};
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
    /// Expected calibration error (15 bins).
    pub ece: f64,
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
    let mut conf = vec![0u64; c * c];
    const BINS: usize = 15;
    let mut bin_n = [0u64; BINS];
    let mut bin_conf = [0f64; BINS];
    let mut bin_acc = [0f64; BINS];
    let (mut nll, mut brier, mut valid) = (0f64, 0f64, 0u64);
    let mut scores: BTreeMap<String, Vec<f32>> = BTreeMap::new();
    let mut is_anomaly: Vec<bool> = Vec::new();
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
        let mask = b.anomaly.as_ref();
        with_anomaly |= mask.is_some();
        let mut p = vec![0f32; c];
        for n in 0..bn {
            for px in 0..hw {
                let z = |k: usize| logits[(n * c + k) * hw + px];
                let m = (0..c).map(z).fold(f32::NEG_INFINITY, f32::max);
                let s: f32 = (0..c).map(|k| (z(k) - m).exp()).sum();
                for (k, pk) in p.iter_mut().enumerate() {
                    *pk = (z(k) - m).exp() / s;
                }
                let (pred, pmax) =
                    p.iter()
                        .enumerate()
                        .fold((0, f32::MIN), |a, (k, &v)| if v > a.1 { (k, v) } else { a });
                let label = b.labels.as_slice().expect("standard layout")[n * hw + px];
                if label != IGNORE_LABEL {
                    let y = label as usize;
                    conf[y * c + pred] += 1;
                    let bin = ((pmax as f64 * BINS as f64) as usize).min(BINS - 1);
                    bin_n[bin] += 1;
                    bin_conf[bin] += pmax as f64;
                    bin_acc[bin] += (pred == y) as u8 as f64;
                    nll -= (p[y].max(1e-12) as f64).ln();
                    brier += p
                        .iter()
                        .enumerate()
                        .map(|(k, &v)| ((v - (k == y) as u8 as f32) as f64).powi(2))
                        .sum::<f64>();
                    valid += 1;
                }
                if let Some(mask) = mask {
                    let a = mask.as_slice().expect("standard layout")[n * hw + px];
                    if a != IGNORE_LABEL {
                        is_anomaly.push(a == 1);
                        let ent: f32 = p
                            .iter()
                            .map(|&v| if v > 0.0 { -v * v.ln() } else { 0.0 })
                            .sum();
                        scores.entry("msp".into()).or_default().push(-pmax);
                        scores.entry("entropy".into()).or_default().push(ent);
                        scores.entry("maxlogit".into()).or_default().push(-m);
                        for (k, v) in &extra {
                            scores.entry(k.clone()).or_default().push(v[n * hw + px]);
                        }
                    }
                }
            }
        }
    }
    if valid == 0 {
        return Err(GmmSegError::empty(
            "evaluation labels",
            format!("no valid pixel in {} images of {}", n_img, ds.name()),
        ));
    }
    let mut ious = Vec::with_capacity(c);
    let mut correct = 0u64;
    for k in 0..c {
        let tp = conf[k * c + k];
        correct += tp;
        let fn_: u64 = (0..c).map(|j| conf[k * c + j]).sum::<u64>() - tp;
        let fp: u64 = (0..c).map(|j| conf[j * c + k]).sum::<u64>() - tp;
        let union = tp + fn_ + fp;
        ious.push((union > 0).then(|| tp as f64 / union as f64));
    }
    let present: Vec<f64> = ious.iter().flatten().copied().collect();
    let miou = present.iter().sum::<f64>() / present.len().max(1) as f64;
    let ece = (0..BINS)
        .filter(|&i| bin_n[i] > 0)
        .map(|i| {
            (bin_n[i] as f64 / valid as f64) * ((bin_acc[i] - bin_conf[i]) / bin_n[i] as f64).abs()
        })
        .sum();
    let anomaly = if with_anomaly {
        let mut out = BTreeMap::new();
        for (k, s) in &scores {
            out.insert(k.clone(), anomaly_metrics(s, &is_anomaly)?);
        }
        Some(out)
    } else {
        None
    };
    Ok(EvalReport {
        miou,
        acc: correct as f64 / valid as f64,
        ece,
        nll: nll / valid as f64,
        brier: brier / valid as f64,
        iou_per_class: ious,
        anomaly,
        images: n_img,
    })
}

/// AUROC, AP and FPR95 of `scores` (higher = positive) against `positive`.
///
/// # Errors
/// [`GmmSegError::Undefined`] when either class is absent.
pub(crate) fn anomaly_metrics(scores: &[f32], positive: &[bool]) -> Result<AnomalyMetrics> {
    let n_pos = positive.iter().filter(|&&p| p).count();
    let n_neg = positive.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return Err(GmmSegError::Undefined {
            what: "anomaly AUROC/AP/FPR95".into(),
            reason: format!("needs both anomalous and normal pixels, got {n_pos} and {n_neg}"),
        });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let (mut auc, mut ap) = (0f64, 0f64);
    let mut fpr95 = None;
    let mut i = 0;
    while i < order.len() {
        // one threshold per distinct score (ties move together)
        let s = scores[order[i]];
        let (tp0, fp0) = (tp, fp);
        while i < order.len() && scores[order[i]] == s {
            if positive[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let (tpr0, tpr) = (tp0 as f64 / n_pos as f64, tp as f64 / n_pos as f64);
        let (fpr0, fpr) = (fp0 as f64 / n_neg as f64, fp as f64 / n_neg as f64);
        auc += (fpr - fpr0) * (tpr + tpr0) / 2.0;
        ap += (tpr - tpr0) * tp as f64 / (tp + fp) as f64;
        if fpr95.is_none() && tpr >= 0.95 {
            fpr95 = Some(fpr);
        }
    }
    Ok(AnomalyMetrics {
        auroc: auc,
        ap,
        fpr95: fpr95.unwrap_or(1.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anomaly_metrics_on_known_cases() {
        let m = anomaly_metrics(&[0.9, 0.8, 0.1, 0.2], &[true, true, false, false]).unwrap();
        assert_eq!((m.auroc, m.ap, m.fpr95), (1.0, 1.0, 0.0));
        let m = anomaly_metrics(&[0.1, 0.2, 0.9, 0.8], &[true, true, false, false]).unwrap();
        assert_eq!((m.auroc, m.fpr95), (0.0, 1.0));
        // all tied: AUROC 0.5, AP = prevalence
        let m = anomaly_metrics(&[0.5; 4], &[true, false, false, false]).unwrap();
        assert!((m.auroc - 0.5).abs() < 1e-12 && (m.ap - 0.25).abs() < 1e-12);
        assert!(anomaly_metrics(&[0.5], &[true]).is_err());
    }

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
