//! Component-level anomaly-segmentation metrics of the SegmentMeIfYouCan benchmark (Chan et
//! al., "SegmentMeIfYouCan: A Benchmark for Anomaly Segmentation", NeurIPS Datasets and
//! Benchmarks 2021): the adjusted component IoU (sIoU), the component precision (PPV) and
//! the F1 score averaged over sIoU thresholds.
//!
//! Per image, with labels 1 = anomaly, 0 = in-distribution, 255 = void:
//! 1. the prediction is `score ≥ δ` outside void, where δ is one threshold for the whole
//!    dataset: the score at the best-F1 point of the pooled pixel precision–recall curve
//!    ([`AnomalyMetrics::best_f1_threshold`](super::AnomalyMetrics::best_f1_threshold)), so
//!    that the prediction is exactly that point's. (The benchmark's code predicts
//!    `score > δ`, but its δ is the lower edge of a histogram bin, below the bin's scores;
//!    with an exact curve, `>` would drop the best point's own pixels);
//! 2. ground-truth components K and predicted components P̂ are the 8-connected components of
//!    the anomaly mask and of the prediction;
//! 3. predicted components smaller than `min_segment_size` pixels are dropped, and
//!    ground-truth components smaller than `min_instance_size` become void (as the
//!    benchmark: 500 and 100 pixels at its 2048×1024 resolution, scaled to the image area by
//!    [`ComponentConfig::for_image`]); void pixels are then left out of every count;
//! 4. for a ground-truth component k, with P̂(k) the predicted components that touch it and
//!    A(k) the pixels of P̂(k) that lie on *other* ground-truth components:
//!    sIoU(k) = |k ∩ P̂(k)| / |(k ∪ P̂(k)) \ A(k)|;
//! 5. for a predicted component p: PPV(p) = |p ∩ anomaly| / |p|.
//!
//! Over the dataset (components pooled over images): sIoU = mean of sIoU(k), PPV = mean of
//! PPV(p); at an sIoU threshold τ, a ground-truth component with sIoU ≥ τ is a true
//! positive, one below a false negative, and a predicted component with PPV < τ a false
//! positive; F1(τ) = 2TP / (2TP + FN + FP), and mean F1 averages τ ∈ {0.25, 0.30, …, 0.75}.
//!
//! Every quantity is a sum over images, so [`ComponentAccumulator`] keeps one statistics
//! row per image and the image bootstrap resamples those rows.

use serde::Serialize;

use ndarray::{Array2, ArrayView2};

use super::bootstrap::{self, Intervals, ValidBootstrapConfig};
use super::{Label, IGNORE};
use crate::error::{GmmSegError, Result};

/// The benchmark's image area (2048 × 1024 pixels), the reference for the size thresholds.
pub const REFERENCE_AREA: usize = 2048 * 1024;
/// The sIoU thresholds of the mean F1: 0.25, 0.30, …, 0.75 (`np.linspace(0.25, 0.75, 11)`).
pub const SIOU_THRESHOLDS: usize = 11;

fn siou_threshold(i: usize) -> f64 {
    0.25 + i as f64 * (0.5 / (SIOU_THRESHOLDS - 1) as f64)
}

/// Knobs of the component metrics. Build one, then [`check`](Self::check) it.
#[derive(Clone, Debug, PartialEq)]
pub struct ComponentConfig {
    /// Predicted components with fewer pixels are dropped. SMIYC's anomaly track: 500 at
    /// 2048×1024.
    pub min_segment_size: usize,
    /// Ground-truth components with fewer pixels are made void. SMIYC's anomaly track: 100
    /// at 2048×1024.
    pub min_instance_size: usize,
}

impl Default for ComponentConfig {
    /// The benchmark's anomaly-track sizes, for 2048×1024 images.
    fn default() -> Self {
        Self {
            min_segment_size: 500,
            min_instance_size: 100,
        }
    }
}

/// A checked [`ComponentConfig`].
#[derive(Clone, Debug, PartialEq)]
pub struct ValidComponentConfig(ComponentConfig);

impl ValidComponentConfig {
    /// The checked configuration.
    pub fn get(&self) -> &ComponentConfig {
        &self.0
    }
}

impl ComponentConfig {
    /// The benchmark's sizes scaled to images of `height × width` pixels (rounded, at
    /// least 1), so that a component covers the same fraction of the image.
    pub fn for_image(height: usize, width: usize) -> Self {
        let scale = |s: usize| {
            ((s as f64 * (height * width) as f64 / REFERENCE_AREA as f64).round() as usize).max(1)
        };
        let d = Self::default();
        Self {
            min_segment_size: scale(d.min_segment_size),
            min_instance_size: scale(d.min_instance_size),
        }
    }

    /// Validates the fields (sizes ≤ 10⁹).
    pub fn check(self) -> Result<ValidComponentConfig> {
        for (name, v) in [
            ("min_segment_size", self.min_segment_size),
            ("min_instance_size", self.min_instance_size),
        ] {
            if v > 1_000_000_000 {
                return Err(GmmSegError::config(name, format!("must be ≤ 1e9, got {v}")));
            }
        }
        Ok(ValidComponentConfig(self))
    }
}

/// The component-level metrics of one score on one dataset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ComponentMetrics {
    /// Mean adjusted IoU of the ground-truth components (NaN without any).
    pub siou: f64,
    /// Mean precision of the predicted components (NaN without any).
    pub ppv: f64,
    /// F1 averaged over the sIoU thresholds 0.25..0.75.
    pub mean_f1: f64,
    /// F1 at each threshold, `(τ, F1)`.
    pub f1: Vec<(f64, f64)>,
    /// The score threshold δ (prediction = score ≥ δ).
    pub threshold: f32,
    /// Ground-truth components counted.
    pub gt_components: u64,
    /// Predicted components counted.
    pub predicted_components: u64,
    /// Image-bootstrap 95% intervals of `siou`, `ppv`, `mean_f1` (empty unless asked for).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub ci95: Intervals,
}

// Layout of a per-image statistics row.
const SIOU_SUM: usize = 0;
const GT_COUNT: usize = 1;
const PPV_SUM: usize = 2;
const PRED_COUNT: usize = 3;
const TP: usize = 4;
const FN: usize = TP + SIOU_THRESHOLDS;
const FP: usize = FN + SIOU_THRESHOLDS;
const ROW: usize = FP + SIOU_THRESHOLDS;

/// 8-connected components of `mask` (row-major, `h × w`): a label 1.. per pixel, 0 off the
/// mask, and the number of components (scipy.ndimage.label with a 3×3 structure).
fn label_components(mask: &[bool], h: usize, w: usize) -> (Vec<u32>, usize) {
    let mut labels = vec![0u32; h * w];
    let mut n = 0u32;
    let mut stack = Vec::new();
    for start in 0..h * w {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        n += 1;
        labels[start] = n;
        stack.push(start);
        while let Some(i) = stack.pop() {
            let (y, x) = (i / w, i % w);
            for dy in [-1isize, 0, 1] {
                for dx in [-1isize, 0, 1] {
                    let (ny, nx) = (y as isize + dy, x as isize + dx);
                    if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                        continue;
                    }
                    let j = ny as usize * w + nx as usize;
                    if mask[j] && labels[j] == 0 {
                        labels[j] = n;
                        stack.push(j);
                    }
                }
            }
        }
    }
    (labels, n as usize)
}

/// The per-image statistics row of one score map.
fn image_row<L: Label>(
    scores: ArrayView2<f32>,
    labels: ArrayView2<L>,
    threshold: f32,
    cfg: &ComponentConfig,
) -> Result<[f64; ROW]> {
    let (h, w) = scores.dim();
    let mut label: Vec<i64> = labels.iter().map(|l| l.to_i64()).collect();
    if let Some((i, &l)) = label
        .iter()
        .enumerate()
        .find(|(_, &l)| l != 0 && l != 1 && l != IGNORE)
    {
        return Err(GmmSegError::LabelOutOfRange {
            what: "anomaly labels (1 = anomaly, 0 = in-distribution)".into(),
            label: l,
            index: i,
            classes: 2,
        });
    }
    let score: Vec<f32> = scores.iter().copied().collect();
    if let Some(i) = score.iter().position(|s| s.is_nan()) {
        return Err(GmmSegError::NonFinite {
            what: "scores (NaN)".into(),
            index: i,
        });
    }
    let gt_mask: Vec<bool> = label.iter().map(|&l| l == 1).collect();
    let pred_mask: Vec<bool> = score
        .iter()
        .zip(&label)
        .map(|(&s, &l)| s >= threshold && l != IGNORE)
        .collect();
    let (gt, n_gt) = label_components(&gt_mask, h, w);
    let (mut pred, n_pred) = label_components(&pred_mask, h, w);
    // drop small predicted components
    let mut pred_size = vec![0usize; n_pred + 1];
    for &p in &pred {
        pred_size[p as usize] += 1;
    }
    for p in pred.iter_mut() {
        if *p != 0 && pred_size[*p as usize] < cfg.min_segment_size {
            *p = 0;
        }
    }
    // void small ground-truth components
    let mut gt_size = vec![0usize; n_gt + 1];
    for &g in &gt {
        gt_size[g as usize] += 1;
    }
    for (l, &g) in label.iter_mut().zip(&gt) {
        if g != 0 && gt_size[g as usize] < cfg.min_instance_size {
            *l = IGNORE;
        }
    }
    // counts inside the region of interest (non-void)
    let mut gt_area = vec![0u64; n_gt + 1];
    let mut pred_area = vec![0u64; n_pred + 1];
    let mut pair: std::collections::BTreeMap<(u32, u32), u64> = Default::default();
    for i in 0..h * w {
        if label[i] == IGNORE {
            continue;
        }
        let (g, p) = (gt[i], pred[i]);
        gt_area[g as usize] += 1;
        pred_area[p as usize] += 1;
        if g != 0 && p != 0 {
            *pair.entry((g, p)).or_default() += 1;
        }
    }
    let mut row = [0.0; ROW];
    // ground-truth components
    for k in 1..=n_gt as u32 {
        if gt_area[k as usize] == 0 {
            continue; // made void, or entirely void
        }
        let touching: Vec<u32> = pair
            .range((k, 0)..(k + 1, 0))
            .map(|(&(_, p), _)| p)
            .collect();
        let intersection: u64 = pair.range((k, 0)..(k + 1, 0)).map(|(_, &c)| c).sum();
        let touched_area: u64 = touching.iter().map(|&p| pred_area[p as usize]).sum();
        // pixels of P̂(k) on other ground-truth components
        let adjustment: u64 = pair
            .iter()
            .filter(|(&(g, p), _)| g != k && touching.contains(&p))
            .map(|(_, &c)| c)
            .sum();
        let union = touched_area + gt_area[k as usize] - intersection - adjustment;
        let siou = intersection as f64 / union as f64;
        row[SIOU_SUM] += siou;
        row[GT_COUNT] += 1.0;
        for t in 0..SIOU_THRESHOLDS {
            if siou >= siou_threshold(t) {
                row[TP + t] += 1.0;
            } else {
                row[FN + t] += 1.0;
            }
        }
    }
    // predicted components
    for p in 1..=n_pred as u32 {
        let area = pred_area[p as usize];
        if area == 0 {
            continue; // dropped as too small
        }
        let on_anomaly: u64 = pair
            .iter()
            .filter(|(&(_, q), _)| q == p)
            .map(|(_, &c)| c)
            .sum();
        let precision = on_anomaly as f64 / area as f64;
        row[PPV_SUM] += precision;
        row[PRED_COUNT] += 1.0;
        for t in 0..SIOU_THRESHOLDS {
            if precision < siou_threshold(t) {
                row[FP + t] += 1.0;
            }
        }
    }
    Ok(row)
}

/// The metrics of summed statistics.
fn summarise(s: &[f64]) -> (f64, f64, f64, Vec<(f64, f64)>) {
    let f1: Vec<(f64, f64)> = (0..SIOU_THRESHOLDS)
        .map(|t| {
            let (tp, fn_, fp) = (s[TP + t], s[FN + t], s[FP + t]);
            let den = 2.0 * tp + fn_ + fp;
            (
                siou_threshold(t),
                if den > 0.0 { 2.0 * tp / den } else { f64::NAN },
            )
        })
        .collect();
    let mean_f1 = f1.iter().map(|x| x.1).sum::<f64>() / SIOU_THRESHOLDS as f64;
    (
        s[SIOU_SUM] / s[GT_COUNT],
        s[PPV_SUM] / s[PRED_COUNT],
        mean_f1,
        f1,
    )
}

/// Component metrics accumulated image by image at one score threshold.
#[derive(Clone, Debug)]
pub struct ComponentAccumulator {
    threshold: f32,
    rows: Vec<[f64; ROW]>,
}

impl ComponentAccumulator {
    /// An empty accumulator predicting `score ≥ threshold`.
    pub fn new(threshold: f32) -> Result<Self> {
        if threshold.is_nan() {
            return Err(GmmSegError::input("threshold", "is NaN"));
        }
        Ok(Self {
            threshold,
            rows: Vec::new(),
        })
    }

    /// Adds one image: scores (H, W), labels (H, W) in {0, 1, 255}; `cfg` holds the size
    /// thresholds for this image (see [`ComponentConfig::for_image`]).
    pub fn update_image<L: Label>(
        &mut self,
        scores: ArrayView2<f32>,
        labels: ArrayView2<L>,
        cfg: &ValidComponentConfig,
    ) -> Result<()> {
        if scores.dim() != labels.dim() {
            return Err(GmmSegError::shape(
                "scores/labels",
                format!("scores {:?} vs labels {:?}", scores.dim(), labels.dim()),
            ));
        }
        let row = image_row(scores, labels, self.threshold, cfg.get())?;
        self.rows.push(row);
        Ok(())
    }

    /// The metrics over every image so far. Errors when no image was added.
    pub fn finish(self) -> Result<ComponentMetrics> {
        self.finish_impl(None)
    }

    /// The metrics plus image-bootstrap 95% intervals of `siou`, `ppv` and `mean_f1`.
    pub fn finish_with_bootstrap(self, cfg: &ValidBootstrapConfig) -> Result<ComponentMetrics> {
        self.finish_impl(Some(cfg))
    }

    fn finish_impl(self, boot: Option<&ValidBootstrapConfig>) -> Result<ComponentMetrics> {
        if self.rows.is_empty() {
            return Err(GmmSegError::empty(
                "anomaly images",
                "component metrics need at least one image",
            ));
        }
        let mut total = [0.0; ROW];
        for r in &self.rows {
            for (a, b) in total.iter_mut().zip(r) {
                *a += b;
            }
        }
        let (siou, ppv, mean_f1, f1) = summarise(&total);
        let mut ci95 = Intervals::new();
        if let Some(cfg) = boot {
            let w = bootstrap::draw_weights(self.rows.len(), cfg)?;
            let m = Array2::from_shape_fn((self.rows.len(), ROW), |(i, j)| self.rows[i][j]);
            let reps = bootstrap::resample(w.view(), m.view());
            ci95 = bootstrap::intervals(reps.view(), |r| {
                let (s, p, f, _) = summarise(r);
                vec![("siou", s), ("ppv", p), ("mean_f1", f)]
            });
        }
        Ok(ComponentMetrics {
            siou,
            ppv,
            mean_f1,
            f1,
            threshold: self.threshold,
            gt_components: total[GT_COUNT] as u64,
            predicted_components: total[PRED_COUNT] as u64,
            ci95,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn eight_connectivity_joins_diagonal_neighbours() {
        let m = [true, false, false, false, true, false, false, false, true];
        let (l, n) = label_components(&m, 3, 3);
        assert_eq!(n, 1);
        assert_eq!(l[8], 1);
    }

    #[test]
    fn hand_computed_siou_with_adjustment() {
        // Two ground-truth blobs (columns 0–1 and 4–5 of row 0..2), one prediction
        // covering columns 1..=4: it touches both, so for each blob the other blob's
        // covered pixels are not counted in the union.
        let labels = array![[1u8, 1, 0, 0, 1, 1], [1, 1, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0],];
        let scores = array![
            [0.0f32, 1.0, 1.0, 1.0, 1.0, 0.0],
            [0.0, 1.0, 1.0, 1.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        ];
        let cfg = ComponentConfig {
            min_segment_size: 1,
            min_instance_size: 1,
        }
        .check()
        .unwrap();
        let mut acc = ComponentAccumulator::new(0.5).unwrap();
        acc.update_image(scores.view(), labels.view(), &cfg)
            .unwrap();
        let m = acc.finish().unwrap();
        // blob k: |k ∩ P| = 2, |P| = 8, |k| = 4, A(k) = 2 → union 8 + 4 − 2 − 2 = 8 → 0.25
        assert!((m.siou - 0.25).abs() < 1e-12);
        // the prediction: 4 of its 8 pixels are anomalies
        assert!((m.ppv - 0.5).abs() < 1e-12);
        assert_eq!((m.gt_components, m.predicted_components), (2, 1));
        // τ = 0.25: both blobs TP, the prediction (PPV 0.5) no FP → F1 = 1
        assert!((m.f1[0].1 - 1.0).abs() < 1e-12);
    }
}
