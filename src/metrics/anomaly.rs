//! Pixel-level anomaly-detection metrics: AUROC, average precision and FPR at 95% TPR.
//!
//! Labels: 1 = anomaly (positive), 0 = in-distribution (negative), 255 = ignored; a higher
//! score means more anomalous. With P positives, N negatives, and for a threshold t,
//! TP(t) = #{positives with score ≥ t}, FP(t) likewise, the ROC has **one point per distinct
//! score** (thresholds scanned from high to low, so tied scores enter together):
//! - AUROC = trapezoidal area under (FP/N, TP/P), starting at (0, 0) — scikit-learn's
//!   `roc_auc_score` (ties get the diagonal, i.e. half credit).
//! - AP = Σ_k (R_k − R_{k−1}) · P_k with R = TP/P and precision P = TP/(TP+FP), R_0 = 0 —
//!   scikit-learn's `average_precision_score` (step-wise, no interpolation).
//! - FPR95 = FP/N at the first ROC point whose TPR ≥ 0.95 (no interpolation; the point set
//!   is the full one, as `roc_curve(..., drop_intermediate=False)`).
//!
//! AUROC is computed with exact integer arithmetic, FPR95's 0.95 test too (20·TP ≥ 19·P).
//! The sweep also gives the best pixel F1 = max 2PR/(P + R) over the curve and its score
//! (the lowest one on ties, as `np.nanargmax` over scikit-learn's ascending thresholds),
//! which the component metrics of [`super::components`] threshold at.
//!
//! # Image bootstrap
//! With image ids ([`AnomalyAccumulator::update_grouped`]),
//! [`AnomalyAccumulator::finish_with_bootstrap`] adds 95% intervals resampling whole images.
//! The point estimates stay exact; each replicate is computed on a histogram of the scores
//! over 4096 bins cut at quantiles of the pooled scores (scores in one bin count as tied), an
//! approximation of at most a bin's share of the ranking — far below the interval widths.
//!
//! # Memory
//! The accumulator keeps every valid score as a 4-byte order-preserving key, split into a
//! positive and a negative list: **4 bytes per valid pixel** (200 MB for 50M pixels), plus a
//! transient scratch buffer of the same size of the larger list while sorting in `finish`.
//! In exchange the metrics are exact, not binned.
//!
//! # Speed
//! `finish` radix-sorts both lists (O(N)) in parallel and merges them in one pass.

use ndarray::{ArrayView, Dimension};
use serde::Serialize;

use ndarray::Array2;

use super::bootstrap::{self, check_groups, GroupIndex, Intervals, ValidBootstrapConfig};
use super::sort::{f32_key, key_f32, radix_sort_u32};
use super::{Label, IGNORE};
use crate::error::{GmmSegError, Result};

/// Histogram bins of a bootstrap replicate.
const BOOTSTRAP_BINS: usize = 4096;

/// Streaming accumulator for AUROC / AP / FPR95: feed `update` per batch, then `finish`.
#[derive(Clone, Debug, Default)]
pub struct AnomalyAccumulator {
    positives: Vec<u32>,
    negatives: Vec<u32>,
    /// Image index of every positive / negative (grouped updates only).
    positive_groups: Vec<u32>,
    negative_groups: Vec<u32>,
    groups: GroupIndex,
    grouped: Option<bool>,
}

/// The three anomaly metrics, as fractions in [0, 1] (the paper prints them ×100).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct AnomalyMetrics {
    /// Area under the ROC curve.
    pub auroc: f64,
    /// Average precision (area under the step-wise precision-recall curve).
    pub ap: f64,
    /// False-positive rate at the first threshold reaching 95% true-positive rate.
    pub fpr95: f64,
    /// Number of anomaly pixels counted.
    pub positives: u64,
    /// Number of in-distribution pixels counted.
    pub negatives: u64,
    /// The best pixel F1 over all thresholds.
    pub best_f1: f64,
    /// The score of the best-F1 point: predicting `score ≥` it gives `best_f1` (the
    /// component metrics threshold there).
    pub best_f1_threshold: f32,
}

/// ROC and precision-recall curves, thinned for plotting (see
/// [`AnomalyAccumulator::finish_with_curves`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct AnomalyCurves {
    /// False-positive rates, from 0 (highest threshold) to 1.
    pub fpr: Vec<f64>,
    /// True-positive rates (= recall), aligned with `fpr`.
    pub tpr: Vec<f64>,
    /// Precision at each point, aligned with `fpr` (the first point, before any detection,
    /// is written with precision 1 as scikit-learn does).
    pub precision: Vec<f64>,
}

impl AnomalyAccumulator {
    /// An empty accumulator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of valid (non-ignored) pixels seen so far.
    pub fn len(&self) -> usize {
        self.positives.len() + self.negatives.len()
    }

    /// Whether no valid pixel was seen yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds one batch of flat scores and labels (0, 1 or 255). NaN scores and other labels
    /// are errors; ±inf scores are accepted (only their order matters). On error the
    /// accumulator is unchanged.
    pub fn update<L: Label>(&mut self, scores: &[f32], labels: &[L]) -> Result<()> {
        self.update_impl::<L, i64>(scores, labels, None)
    }

    /// [`update`](Self::update) with an image id per pixel (ids ≥ 0), for
    /// [`finish_with_bootstrap`](Self::finish_with_bootstrap). Either every update carries
    /// ids or none does.
    pub fn update_grouped<L: Label, G: Label>(
        &mut self,
        scores: &[f32],
        labels: &[L],
        groups: &[G],
    ) -> Result<()> {
        self.update_impl(scores, labels, Some(groups))
    }

    fn update_impl<L: Label, G: Label>(
        &mut self,
        scores: &[f32],
        labels: &[L],
        groups: Option<&[G]>,
    ) -> Result<()> {
        if let Some(g) = groups {
            check_groups(g, scores.len())?;
        }
        if self.grouped.is_some_and(|was| was != groups.is_some()) {
            return Err(GmmSegError::input(
                "groups",
                "give image ids with every batch of an accumulator or with none",
            ));
        }
        if scores.len() != labels.len() {
            return Err(GmmSegError::shape(
                "scores/labels",
                format!("{} scores but {} labels", scores.len(), labels.len()),
            ));
        }
        let (np, nn) = (self.positives.len(), self.negatives.len());
        let groups_before = self.groups.clone();
        let mut failure = None;
        for (i, (&s, &l)) in scores.iter().zip(labels).enumerate() {
            let l = l.to_i64();
            if l == IGNORE {
                continue;
            }
            if s.is_nan() {
                failure = Some(GmmSegError::NonFinite {
                    what: "scores (NaN)".into(),
                    index: i,
                });
                break;
            }
            let g = groups.map(|g| self.groups.index(g[i].to_i64()));
            match l {
                1 => {
                    self.positives.push(f32_key(s));
                    self.positive_groups.extend(g);
                }
                0 => {
                    self.negatives.push(f32_key(s));
                    self.negative_groups.extend(g);
                }
                _ => {
                    failure = Some(GmmSegError::LabelOutOfRange {
                        what: "anomaly labels (1 = anomaly, 0 = in-distribution)".into(),
                        label: l,
                        index: i,
                        classes: 2,
                    });
                    break;
                }
            }
        }
        if let Some(e) = failure {
            self.positives.truncate(np);
            self.negatives.truncate(nn);
            self.positive_groups
                .truncate(np.min(self.positive_groups.len()));
            self.negative_groups
                .truncate(nn.min(self.negative_groups.len()));
            self.groups = groups_before;
            return Err(e);
        }
        self.grouped = Some(groups.is_some());
        Ok(())
    }

    /// Adds one batch given as ndarray maps of equal shape, e.g. scores (B, H, W) `f32` and
    /// labels (B, H, W) `u8` as in [`Batch::anomaly`](crate::data::Batch).
    pub fn update_arrays<L: Label, D: Dimension>(
        &mut self,
        scores: ArrayView<f32, D>,
        labels: ArrayView<L, D>,
    ) -> Result<()> {
        if scores.shape() != labels.shape() {
            return Err(GmmSegError::shape(
                "scores/labels",
                format!("scores {:?} vs labels {:?}", scores.shape(), labels.shape()),
            ));
        }
        match (scores.as_slice(), labels.as_slice()) {
            (Some(s), Some(l)) => self.update(s, l),
            _ => {
                let s: Vec<f32> = scores.iter().copied().collect();
                let l: Vec<L> = labels.iter().copied().collect();
                self.update(&s, &l)
            }
        }
    }

    /// AUROC, AP and FPR95 over everything seen. Errors when no pixel was seen, or when only
    /// one of the two classes is present (the metrics are undefined).
    pub fn finish(self) -> Result<AnomalyMetrics> {
        Ok(self.sweep(0)?.0)
    }

    /// The metrics plus ROC / PR curves thinned to about `max_points` points (a point is
    /// kept when TPR or FPR moved by ≥ 1/`max_points` since the last kept one; the first and
    /// last points are always kept).
    pub fn finish_with_curves(self, max_points: usize) -> Result<(AnomalyMetrics, AnomalyCurves)> {
        if max_points < 2 {
            return Err(GmmSegError::config(
                "max_points",
                format!("must be ≥ 2, got {max_points}"),
            ));
        }
        self.sweep(max_points)
    }

    /// The metrics plus image-bootstrap 95% intervals of `auroc`, `ap` and `fpr95` (see the
    /// module docs). Errors unless the updates carried image ids and two images were seen.
    pub fn finish_with_bootstrap(
        self,
        cfg: &ValidBootstrapConfig,
    ) -> Result<(AnomalyMetrics, Intervals)> {
        if self.grouped != Some(true) {
            return Err(GmmSegError::input(
                "groups",
                "the image bootstrap needs an image id per pixel (update_grouped)",
            ));
        }
        let groups = self.groups.len();
        let weights = bootstrap::draw_weights(groups, cfg)?;
        let mut all: Vec<u32> = self
            .positives
            .iter()
            .chain(&self.negatives)
            .copied()
            .collect();
        radix_sort_u32(&mut all);
        let n = all.len();
        let mut edges: Vec<u32> = (1..BOOTSTRAP_BINS)
            .map(|i| all[i * n / BOOTSTRAP_BINS])
            .collect();
        drop(all);
        edges.dedup();
        let nb = edges.len() + 1;
        let mut hist = Array2::<f64>::zeros((groups, 2 * nb));
        let bin = |k: u32| edges.partition_point(|&e| e <= k);
        for (&k, &g) in self.positives.iter().zip(&self.positive_groups) {
            hist[[g as usize, bin(k)]] += 1.0;
        }
        for (&k, &g) in self.negatives.iter().zip(&self.negative_groups) {
            hist[[g as usize, nb + bin(k)]] += 1.0;
        }
        let reps = bootstrap::resample(weights.view(), hist.view());
        let ci = bootstrap::intervals(reps.view(), |r| {
            let (auroc, ap, fpr95) = binned_metrics(&r[..nb], &r[nb..]);
            vec![("auroc", auroc), ("ap", ap), ("fpr95", fpr95)]
        });
        Ok((self.finish()?, ci))
    }

    fn sweep(self, max_points: usize) -> Result<(AnomalyMetrics, AnomalyCurves)> {
        let Self {
            mut positives,
            mut negatives,
            ..
        } = self;
        let (p, n) = (positives.len() as u64, negatives.len() as u64);
        if p + n == 0 {
            return Err(GmmSegError::empty(
                "anomaly labels",
                "no valid (0 or 1) pixel was seen",
            ));
        }
        if p == 0 || n == 0 {
            return Err(GmmSegError::Undefined {
                what: "AUROC/AP/FPR95".into(),
                reason: format!(
                    "only one class is present ({p} anomaly and {n} in-distribution pixels); \
                     both are needed"
                ),
            });
        }
        rayon::join(
            || radix_sort_u32(&mut positives),
            || radix_sort_u32(&mut negatives),
        );
        let (pf, nf) = (p as f64, n as f64);
        let step = if max_points > 0 {
            1.0 / max_points as f64
        } else {
            f64::INFINITY
        };
        let mut curves = AnomalyCurves::default();
        if max_points > 0 {
            curves.fpr.push(0.0);
            curves.tpr.push(0.0);
            curves.precision.push(1.0);
        }
        let (mut last_fpr, mut last_tpr) = (0.0f64, 0.0f64);

        // Walk both sorted lists from the top, one distinct key at a time.
        let (mut i, mut j) = (positives.len(), negatives.len());
        let (mut tp, mut fp) = (0u64, 0u64);
        let mut area2: u128 = 0; // 2 · P · N · AUROC, exactly
        let mut ap = 0.0f64;
        let mut fpr95 = None;
        let (mut best_f1, mut best_key) = (0.0f64, u32::MAX);
        while i > 0 || j > 0 {
            let t = match (i > 0, j > 0) {
                (true, true) => positives[i - 1].max(negatives[j - 1]),
                (true, false) => positives[i - 1],
                _ => negatives[j - 1],
            };
            let (tp0, fp0) = (tp, fp);
            while i > 0 && positives[i - 1] == t {
                i -= 1;
                tp += 1;
            }
            while j > 0 && negatives[j - 1] == t {
                j -= 1;
                fp += 1;
            }
            area2 += (fp - fp0) as u128 * (tp + tp0) as u128;
            if tp > tp0 {
                ap += (tp - tp0) as f64 * (tp as f64 / (tp + fp) as f64);
            }
            let f1 = 2.0 * tp as f64 / (tp + fp + p) as f64;
            if f1 >= best_f1 {
                (best_f1, best_key) = (f1, t);
            }
            if fpr95.is_none() && 20 * tp >= 19 * p {
                fpr95 = Some(fp as f64 / nf);
            }
            if max_points > 0 {
                let (fpr, tpr) = (fp as f64 / nf, tp as f64 / pf);
                let last = i == 0 && j == 0;
                if last || fpr - last_fpr >= step || tpr - last_tpr >= step {
                    curves.fpr.push(fpr);
                    curves.tpr.push(tpr);
                    curves.precision.push(tp as f64 / (tp + fp) as f64);
                    (last_fpr, last_tpr) = (fpr, tpr);
                }
            }
        }
        let metrics = AnomalyMetrics {
            auroc: area2 as f64 / (2.0 * pf * nf),
            ap: ap / pf,
            fpr95: fpr95.expect("the last ROC point has TPR 1"),
            positives: p,
            negatives: n,
            best_f1,
            best_f1_threshold: key_f32(best_key),
        };
        Ok((metrics, curves))
    }
}

/// AUROC, AP and FPR95 of weighted score histograms (bins ascending in score; scores in one
/// bin tie); NaN when one class has no weight.
fn binned_metrics(pos: &[f64], neg: &[f64]) -> (f64, f64, f64) {
    let (p, n): (f64, f64) = (pos.iter().sum(), neg.iter().sum());
    if p == 0.0 || n == 0.0 {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let (mut tp, mut fp, mut area2, mut ap) = (0.0, 0.0, 0.0, 0.0);
    let mut fpr95 = f64::NAN;
    for b in (0..pos.len()).rev() {
        let (tp0, fp0) = (tp, fp);
        tp += pos[b];
        fp += neg[b];
        area2 += (fp - fp0) * (tp + tp0);
        if tp > tp0 {
            ap += (tp - tp0) * tp / (tp + fp);
        }
        if fpr95.is_nan() && 20.0 * tp >= 19.0 * p {
            fpr95 = fp / n;
        }
    }
    (area2 / (2.0 * p * n), ap / p, fpr95)
}

/// One-shot convenience: AUROC / AP / FPR95 of flat scores against flat 0/1/255 labels.
pub fn anomaly_metrics<L: Label>(scores: &[f32], labels: &[L]) -> Result<AnomalyMetrics> {
    let mut acc = AnomalyAccumulator::new();
    acc.update(scores, labels)?;
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::bootstrap::{draw_weights, percentile_interval, BootstrapConfig};

    #[test]
    fn bootstrap_is_exact_when_every_score_has_its_own_bin() {
        // 5 images × 60 pixels, distinct scores: the histogram bins hold one key each.
        let mut scores = Vec::new();
        let mut labels = Vec::new();
        let mut groups = Vec::new();
        for g in 0..5u32 {
            for i in 0..60u32 {
                let x = (g * 60 + i) as f32;
                let lab = u8::from((i * 7 + g) % 5 == 0);
                scores.push(x * 0.001 + lab as f32 * (0.05 + 0.02 * g as f32));
                labels.push(lab);
                groups.push(g);
            }
        }
        let cfg = BootstrapConfig {
            samples: 30,
            seed: 4,
        }
        .check()
        .unwrap();
        let mut acc = AnomalyAccumulator::new();
        acc.update_grouped(&scores, &labels, &groups).unwrap();
        let (_, ci) = acc.finish_with_bootstrap(&cfg).unwrap();
        let w = draw_weights(5, &cfg).unwrap();
        let mut auroc = Vec::new();
        let mut fpr = Vec::new();
        for r in w.outer_iter() {
            let mut a = AnomalyAccumulator::new();
            for (g, &t) in r.iter().enumerate() {
                for _ in 0..t as usize {
                    a.update(&scores[g * 60..(g + 1) * 60], &labels[g * 60..(g + 1) * 60])
                        .unwrap();
                }
            }
            let m = a.finish().unwrap();
            auroc.push(m.auroc);
            fpr.push(m.fpr95);
        }
        let want = percentile_interval(&auroc).unwrap();
        assert!(
            (ci["auroc"][0] - want[0]).abs() < 1e-12,
            "{ci:?} vs {want:?}"
        );
        assert!((ci["auroc"][1] - want[1]).abs() < 1e-12);
        let want = percentile_interval(&fpr).unwrap();
        assert!((ci["fpr95"][0] - want[0]).abs() < 1e-12);
    }

    #[test]
    fn best_f1_threshold_is_the_score_of_the_best_point() {
        // scores 0.9 (anomaly), 0.8 (anomaly), 0.7 (not), 0.1 (anomaly)
        let m = anomaly_metrics(&[0.9f32, 0.8, 0.7, 0.1], &[1u8, 1, 0, 1]).unwrap();
        // F1 at 0.8: P = 1, R = 2/3 → 0.8; at 0.1: P = 3/4, R = 1 → 6/7 ≈ 0.857
        assert_eq!(m.best_f1_threshold, 0.1);
        assert!((m.best_f1 - 6.0 / 7.0).abs() < 1e-12);
    }
}
