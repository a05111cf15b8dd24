//! Semantic-segmentation metrics from a confusion matrix accumulated over batches.
//!
//! With `K[g][p]` the number of valid pixels of ground-truth class g predicted as p:
//! - IoU_c = K\[c\]\[c\] / (Σ_p K\[c\]\[p\] + Σ_g K\[g\]\[c\] − K\[c\]\[c\]); **NaN when the
//!   union is empty** (the class is neither present nor predicted), and mIoU is the mean
//!   over the other classes — MMSegmentation's `nanmean` semantics.
//! - pixel accuracy (MMSeg's `aAcc`) = Σ_c K\[c\]\[c\] / Σ K.
//! - class accuracy Acc_c = K\[c\]\[c\] / Σ_p K\[c\]\[p\] (NaN when the class is absent from the
//!   ground truth), mean class accuracy (`mAcc`) = the mean over present classes.
//!
//! Pixels whose ground truth is 255 are skipped whatever the prediction. Any other ground
//! truth or prediction outside `0..C` is an error ([`GmmSegError::LabelOutOfRange`]).
//!
//! Memory: C² counters. Speed: one pass over the labels, parallel over chunks with rayon.

use ndarray::{Array2, ArrayView, Dimension};
use rayon::prelude::*;
use serde::Serialize;

use super::{Label, IGNORE};
use crate::error::{GmmSegError, Result};

/// A C×C confusion matrix (rows: ground truth, columns: prediction), fed batch by batch so
/// that a validation set never has to be held in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfusionMatrix {
    classes: usize,
    counts: Vec<u64>,
}

/// Summary of a confusion matrix, as reported by MMSegmentation.
///
/// `per_class_iou[c]` and `per_class_acc[c]` are `None` where the value is undefined
/// (empty union / class absent from the ground truth), which is how MMSeg's NaN is written
/// in JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SegmentationMetrics {
    /// Mean IoU over the classes whose IoU is defined.
    pub miou: f64,
    /// IoU per class; `None` for a class with an empty union.
    pub per_class_iou: Vec<Option<f64>>,
    /// Pixel accuracy over all valid pixels.
    pub acc: f64,
    /// Mean class accuracy over the classes present in the ground truth.
    pub macc: f64,
    /// Accuracy (recall) per class; `None` for a class absent from the ground truth.
    pub per_class_acc: Vec<Option<f64>>,
    /// Number of valid (non-ignored) pixels counted.
    pub pixels: u64,
}

/// Pixels per rayon task: large enough to amortise a C² local histogram, small enough to
/// balance across cores.
const CHUNK: usize = 1 << 20;

/// Pixels per rayon task on the `u8` path (u32 counters cannot overflow).
const CHUNK_U8: usize = 1 << 22;

/// Branch-free histogram of (gt, pred) byte pairs into four interleaved 256×256 tables (four,
/// so that runs of equal labels, the common case in label maps, do not serialise on one
/// counter's store-to-load latency), then folded into C×C. `Err(())` when some pixel is
/// invalid (the caller finds which).
fn histogram_u8(pred: &[u8], gt: &[u8], c: usize) -> std::result::Result<Vec<u64>, ()> {
    const WAYS: usize = 4;
    let mut h = vec![[0u32; 65536]; WAYS];
    let [h0, h1, h2, h3] = &mut h[..] else {
        unreachable!("WAYS tables")
    };
    let key = |g: u8, p: u8| ((g as usize) << 8 | p as usize) & 0xffff;
    let mut pc = pred.chunks_exact(WAYS);
    let mut gc = gt.chunks_exact(WAYS);
    for (p, g) in (&mut pc).zip(&mut gc) {
        h0[key(g[0], p[0])] += 1;
        h1[key(g[1], p[1])] += 1;
        h2[key(g[2], p[2])] += 1;
        h3[key(g[3], p[3])] += 1;
    }
    for (p, g) in pc.remainder().iter().zip(gc.remainder()) {
        h0[key(*g, *p)] += 1;
    }
    let mut local = vec![0u64; c * c];
    for g in 0..256usize {
        for p in 0..256usize {
            let k = g << 8 | p;
            let n = h.iter().map(|t| t[k] as u64).sum::<u64>();
            if n == 0 || g == IGNORE as usize {
                continue;
            }
            if g < c && p < c {
                local[g * c + p] += n;
            } else {
                return Err(());
            }
        }
    }
    Ok(local)
}

/// Index of the first pixel that is neither valid nor ignored.
fn first_bad(pred: &[u8], gt: &[u8], cc: i64) -> Option<usize> {
    pred.iter().zip(gt).position(|(&p, &g)| {
        let (p, g) = (p as i64, g as i64);
        g != IGNORE && !(g < cc && p < cc)
    })
}

impl ConfusionMatrix {
    /// An empty matrix for `classes` classes (1..=255, since 255 is the ignore label).
    pub fn new(classes: usize) -> Result<Self> {
        if classes == 0 || classes > 255 {
            return Err(GmmSegError::config(
                "classes",
                format!("must be in 1..=255 (255 is the ignore label), got {classes}"),
            ));
        }
        Ok(Self {
            classes,
            counts: vec![0; classes * classes],
        })
    }

    /// Number of classes C.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The counts as a (C, C) array, rows = ground truth, columns = prediction.
    pub fn matrix(&self) -> Array2<u64> {
        Array2::from_shape_vec((self.classes, self.classes), self.counts.clone())
            .expect("C*C counts by construction")
    }

    /// Adds one batch of flat predictions and ground truths (any integer types, equal
    /// lengths). On error the matrix is unchanged.
    pub fn update<P: Label, G: Label>(&mut self, pred: &[P], gt: &[G]) -> Result<()> {
        if pred.len() != gt.len() {
            return Err(GmmSegError::shape(
                "pred/gt",
                format!(
                    "prediction has {} pixels but ground truth has {}",
                    pred.len(),
                    gt.len()
                ),
            ));
        }
        let c = self.classes;
        let cc = c as i64;
        // Per chunk: a local histogram, or the first bad index.
        let partial: Vec<std::result::Result<Vec<u64>, usize>> =
            match (P::as_u8_slice(pred), G::as_u8_slice(gt)) {
                (Some(p8), Some(g8)) => p8
                    .par_chunks(CHUNK_U8)
                    .zip(g8.par_chunks(CHUNK_U8))
                    .enumerate()
                    .map(|(ci, (p, g))| {
                        histogram_u8(p, g, c).map_err(|()| {
                            ci * CHUNK_U8 + first_bad(p, g, cc).expect("a bad pixel exists")
                        })
                    })
                    .collect(),
                _ => pred
                    .par_chunks(CHUNK)
                    .zip(gt.par_chunks(CHUNK))
                    .enumerate()
                    .map(|(ci, (p, g))| {
                        let mut local = vec![0u64; c * c];
                        for (i, (&p, &g)) in p.iter().zip(g).enumerate() {
                            let (p, g) = (p.to_i64(), g.to_i64());
                            if (g as u64) < cc as u64 && (p as u64) < cc as u64 {
                                local[g as usize * c + p as usize] += 1;
                            } else if g != IGNORE {
                                return Err(ci * CHUNK + i);
                            }
                        }
                        Ok(local)
                    })
                    .collect(),
            };
        if let Some(index) = partial.iter().filter_map(|r| r.as_ref().err()).min() {
            let (p, g) = (pred[*index].to_i64(), gt[*index].to_i64());
            let (what, label) = if (0..cc).contains(&g) || g == IGNORE {
                ("pred", p)
            } else {
                ("gt", g)
            };
            return Err(GmmSegError::LabelOutOfRange {
                what: what.into(),
                label,
                index: *index,
                classes: c,
            });
        }
        for local in partial.into_iter().flatten() {
            for (a, b) in self.counts.iter_mut().zip(local) {
                *a += b;
            }
        }
        Ok(())
    }

    /// Adds one batch given as ndarray label maps of equal shape (e.g. (B, H, W) `u8`).
    pub fn update_arrays<P: Label, G: Label, D: Dimension>(
        &mut self,
        pred: ArrayView<P, D>,
        gt: ArrayView<G, D>,
    ) -> Result<()> {
        if pred.shape() != gt.shape() {
            return Err(GmmSegError::shape(
                "pred/gt",
                format!(
                    "prediction {:?} vs ground truth {:?}",
                    pred.shape(),
                    gt.shape()
                ),
            ));
        }
        match (pred.as_slice(), gt.as_slice()) {
            (Some(p), Some(g)) => self.update(p, g),
            _ => {
                let p: Vec<P> = pred.iter().copied().collect();
                let g: Vec<G> = gt.iter().copied().collect();
                self.update(&p, &g)
            }
        }
    }

    /// Adds another matrix of the same size (e.g. from another worker).
    pub fn merge(&mut self, other: &ConfusionMatrix) -> Result<()> {
        if other.classes != self.classes {
            return Err(GmmSegError::shape(
                "confusion matrix",
                format!("{} vs {} classes", self.classes, other.classes),
            ));
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        Ok(())
    }

    /// IoU, mIoU, pixel and class accuracy. Errors when no valid pixel was counted.
    pub fn finish(&self) -> Result<SegmentationMetrics> {
        let c = self.classes;
        let total: u64 = self.counts.iter().sum();
        if total == 0 {
            return Err(GmmSegError::empty(
                "segmentation labels",
                "no valid (non-255) pixel was seen; mIoU is undefined",
            ));
        }
        let k = |g: usize, p: usize| self.counts[g * c + p];
        let mut per_class_iou = Vec::with_capacity(c);
        let mut per_class_acc = Vec::with_capacity(c);
        let mut diag = 0u64;
        for cls in 0..c {
            let tp = k(cls, cls);
            let gt_area: u64 = (0..c).map(|p| k(cls, p)).sum();
            let pred_area: u64 = (0..c).map(|g| k(g, cls)).sum();
            let union = gt_area + pred_area - tp;
            diag += tp;
            per_class_iou.push((union > 0).then(|| tp as f64 / union as f64));
            per_class_acc.push((gt_area > 0).then(|| tp as f64 / gt_area as f64));
        }
        let nanmean = |v: &[Option<f64>]| {
            let d: Vec<f64> = v.iter().flatten().copied().collect();
            d.iter().sum::<f64>() / d.len() as f64
        };
        // total > 0 means some class has a non-empty union and a non-empty ground truth.
        Ok(SegmentationMetrics {
            miou: nanmean(&per_class_iou),
            acc: diag as f64 / total as f64,
            macc: nanmean(&per_class_acc),
            per_class_iou,
            per_class_acc,
            pixels: total,
        })
    }
}

/// One-shot convenience: the metrics of flat predictions against flat ground truths.
pub fn segmentation_metrics<P: Label, G: Label>(
    pred: &[P],
    gt: &[G],
    classes: usize,
) -> Result<SegmentationMetrics> {
    let mut cm = ConfusionMatrix::new(classes)?;
    cm.update(pred, gt)?;
    cm.finish()
}
