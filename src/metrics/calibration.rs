//! Calibration of class posteriors: top-label ECE, MCE, adaptive ECE, NLL, Brier score and
//! the reliability-diagram bins (the paper's Fig. 5).
//!
//! For a pixel with probabilities p (C classes) and label y: confidence c = max_k p_k,
//! prediction ŷ = argmax_k p_k (the first maximum on ties, as NumPy), correct = [ŷ = y].
//! - **ECE** with B equal-width bins: c falls in bin b = min(⌊c·B⌋, B−1);
//!   ECE = Σ_b (n_b/N) · |acc_b − conf_b|.
//! - **MCE** = max over non-empty bins of |acc_b − conf_b|.
//! - **Adaptive ECE** (equal mass): sort pixels by confidence and cut them into B bins of
//!   ⌊N/B⌋ or ⌈N/B⌉ pixels (bin b holds sorted positions ⌊bN/B⌋ .. ⌊(b+1)N/B⌋); the same sum.
//! - **NLL** = mean of −ln max(p_y, 1e-12).
//! - **Brier** = mean over pixels of Σ_c (p_c − [c = y])².
//!
//! Pixels labelled 255 are skipped. Probabilities must lie in [0, 1] and each row must sum
//! to 1 within [`CalibrationConfig::sum_tolerance`]; both are checked, with a typed error.
//!
//! # Memory
//! Equal-width bins, NLL and Brier are O(B). Adaptive ECE needs every confidence: 4 bytes
//! per valid pixel (the correctness bit is packed into the key).

use ndarray::{ArrayView2, ArrayView3, ArrayView4};
use serde::Serialize;

use super::sort::radix_sort_u32;
use super::{Label, IGNORE};
use crate::error::{GmmSegError, Result};

/// Knobs of the calibration metrics. Build one, then [`check`](Self::check) it once.
#[derive(Clone, Debug, PartialEq)]
pub struct CalibrationConfig {
    /// Number of confidence bins B. Default 15 (Guo et al. 2017, and the paper's Fig. 5).
    pub bins: usize,
    /// Largest accepted |Σ_c p_c − 1| per row, and how far outside [0, 1] a probability may
    /// stray (rounding in f32 softmax). Default 1e-3 (enough for float32 softmax over ~200
    /// classes; a row summing to 0.9 is a bug upstream and is rejected).
    pub sum_tolerance: f64,
    /// Whether to keep confidences for the adaptive ECE (4 bytes per pixel). Default true.
    pub adaptive: bool,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self {
            bins: 15,
            sum_tolerance: 1e-3,
            adaptive: true,
        }
    }
}

/// A [`CalibrationConfig`] whose fields were checked; the only kind the accumulator accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidCalibrationConfig(CalibrationConfig);

impl ValidCalibrationConfig {
    /// The checked configuration.
    pub fn get(&self) -> &CalibrationConfig {
        &self.0
    }
}

impl CalibrationConfig {
    /// The default with `bins` bins.
    pub fn with_bins(bins: usize) -> Self {
        Self {
            bins,
            ..Self::default()
        }
    }

    /// Validates every field once.
    pub fn check(self) -> Result<ValidCalibrationConfig> {
        if self.bins == 0 || self.bins > 100_000 {
            return Err(GmmSegError::config(
                "bins",
                format!("must be in 1..=100000, got {}", self.bins),
            ));
        }
        if !(self.sum_tolerance.is_finite()
            && self.sum_tolerance >= 0.0
            && self.sum_tolerance < 1.0)
        {
            return Err(GmmSegError::config(
                "sum_tolerance",
                format!("must be in [0, 1), got {}", self.sum_tolerance),
            ));
        }
        Ok(ValidCalibrationConfig(self))
    }
}

/// One bin of a reliability diagram.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ReliabilityBin {
    /// Lower edge of the bin's confidence range.
    pub lower: f64,
    /// Upper edge of the bin's confidence range.
    pub upper: f64,
    /// Number of pixels whose confidence fell in the bin.
    pub count: u64,
    /// Mean confidence of those pixels (`None` for an empty bin).
    pub confidence: Option<f64>,
    /// Fraction of them predicted correctly (`None` for an empty bin).
    pub accuracy: Option<f64>,
}

/// The calibration metrics of one model on one dataset.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CalibrationMetrics {
    /// Expected calibration error (equal-width bins).
    pub ece: f64,
    /// Maximum calibration error over non-empty bins.
    pub mce: f64,
    /// Equal-mass ECE; `None` when the config disabled it.
    pub adaptive_ece: Option<f64>,
    /// Mean negative log-likelihood of the label (p clipped at 1e-12).
    pub nll: f64,
    /// Mean multi-class Brier score.
    pub brier: f64,
    /// Top-label accuracy over all valid pixels.
    pub accuracy: f64,
    /// Number of valid pixels.
    pub pixels: u64,
    /// The reliability-diagram bins (equal width).
    pub bins: Vec<ReliabilityBin>,
}

/// Streaming accumulator for the calibration metrics.
#[derive(Clone, Debug)]
pub struct CalibrationAccumulator {
    config: CalibrationConfig,
    classes: Option<usize>,
    count: Vec<u64>,
    correct: Vec<u64>,
    conf_sum: Vec<f64>,
    nll_sum: f64,
    brier_sum: f64,
    /// Adaptive-ECE keys: f32 confidence bits << 1 | correct.
    keys: Vec<u32>,
}

/// NLL floor, as in most calibration code (keeps −ln p finite for p = 0).
const P_FLOOR: f64 = 1e-12;

impl CalibrationAccumulator {
    /// An empty accumulator.
    pub fn new(config: ValidCalibrationConfig) -> Self {
        let b = config.0.bins;
        Self {
            config: config.0,
            classes: None,
            count: vec![0; b],
            correct: vec![0; b],
            conf_sum: vec![0.0; b],
            nll_sum: 0.0,
            brier_sum: 0.0,
            keys: Vec::new(),
        }
    }

    /// Adds one batch.
    ///
    /// # Shapes
    /// - `probs`: (N, C) class probabilities, rows summing to 1; C fixed across batches.
    /// - `labels`: (N,) class ids in `0..C` or 255.
    ///
    /// On error the accumulator is unchanged.
    pub fn update<L: Label>(&mut self, probs: ArrayView2<f32>, labels: &[L]) -> Result<()> {
        let (n, c) = probs.dim();
        if n != labels.len() {
            return Err(GmmSegError::shape(
                "probs/labels",
                format!("probs has {n} rows but there are {} labels", labels.len()),
            ));
        }
        if c == 0 {
            return Err(GmmSegError::shape("probs", "has zero columns (classes)"));
        }
        if let Some(prev) = self.classes {
            if prev != c {
                return Err(GmmSegError::shape(
                    "probs",
                    format!("{c} classes in this batch but {prev} in earlier ones"),
                ));
            }
        }
        let tol = self.config.sum_tolerance;
        let b = self.config.bins;
        // Validate and compute per-pixel quantities first, so a bad row changes nothing.
        let mut rows = Vec::with_capacity(n);
        for (i, (row, &y)) in probs.outer_iter().zip(labels).enumerate() {
            let y = y.to_i64();
            if y == IGNORE {
                continue;
            }
            if y < 0 || y >= c as i64 {
                return Err(GmmSegError::LabelOutOfRange {
                    what: "labels".into(),
                    label: y,
                    index: i,
                    classes: c,
                });
            }
            let mut sum = 0.0f64;
            let mut best = 0usize;
            let mut best_p = f32::NEG_INFINITY;
            let mut brier = 0.0f64;
            for (k, &p) in row.iter().enumerate() {
                if !p.is_finite() {
                    return Err(GmmSegError::NonFinite {
                        what: "probs".into(),
                        index: i * c + k,
                    });
                }
                let pd = p as f64;
                if pd < -tol || pd > 1.0 + tol {
                    return Err(GmmSegError::input(
                        "probs",
                        format!("probability {p} at row {i}, class {k} is outside [0, 1]"),
                    ));
                }
                if p > best_p {
                    best_p = p;
                    best = k;
                }
                sum += pd;
                let t = if k as i64 == y { 1.0 } else { 0.0 };
                brier += (pd - t) * (pd - t);
            }
            if (sum - 1.0).abs() > tol {
                return Err(GmmSegError::input(
                    "probs",
                    format!(
                        "row {i} sums to {sum:.6}, not 1 (tolerance {tol}); pass probabilities \
                         (softmax output), not logits"
                    ),
                ));
            }
            let conf = (best_p as f64).clamp(0.0, 1.0);
            let py = (row[y as usize] as f64).clamp(P_FLOOR, 1.0);
            rows.push((conf, best as i64 == y, -py.ln(), brier));
        }
        self.classes = Some(c);
        for (conf, ok, nll, brier) in rows {
            let bin = ((conf * b as f64).floor() as usize).min(b - 1);
            self.count[bin] += 1;
            self.correct[bin] += ok as u64;
            self.conf_sum[bin] += conf;
            self.nll_sum += nll;
            self.brier_sum += brier;
            if self.config.adaptive {
                self.keys.push(((conf as f32).to_bits() << 1) | ok as u32);
            }
        }
        Ok(())
    }

    /// Adds one batch of dense network outputs.
    ///
    /// # Shapes
    /// - `probs`: (B, C, H, W) class probabilities (softmax over axis 1);
    /// - `labels`: (B, H, W) class ids or 255.
    pub fn update_dense<L: Label>(
        &mut self,
        probs: ArrayView4<f32>,
        labels: ArrayView3<L>,
    ) -> Result<()> {
        let (b, c, h, w) = probs.dim();
        if labels.dim() != (b, h, w) {
            return Err(GmmSegError::shape(
                "probs/labels",
                format!(
                    "probs (B, C, H, W) = {:?} but labels are {:?}, expected ({b}, {h}, {w})",
                    probs.dim(),
                    labels.dim()
                ),
            ));
        }
        // (B, C, H, W) → (B, H, W, C) → (N, C); one copy, rows contiguous.
        let rows = probs
            .permuted_axes([0, 2, 3, 1])
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((b * h * w, c))
            .map_err(|e| GmmSegError::shape("probs", e.to_string()))?;
        let labels: Vec<L> = labels.iter().copied().collect();
        self.update(rows.view(), &labels)
    }

    /// ECE, MCE, adaptive ECE, NLL, Brier and the reliability bins. Errors when no valid
    /// pixel was seen.
    pub fn finish(self) -> Result<CalibrationMetrics> {
        let total: u64 = self.count.iter().sum();
        if total == 0 {
            return Err(GmmSegError::empty(
                "calibration labels",
                "no valid (non-255) pixel was seen",
            ));
        }
        let b = self.config.bins;
        let nf = total as f64;
        let mut ece = 0.0;
        let mut mce = 0.0f64;
        let mut bins = Vec::with_capacity(b);
        for k in 0..b {
            let cnt = self.count[k];
            let (confidence, accuracy) = if cnt > 0 {
                let conf = self.conf_sum[k] / cnt as f64;
                let acc = self.correct[k] as f64 / cnt as f64;
                let gap = (acc - conf).abs();
                ece += cnt as f64 / nf * gap;
                mce = mce.max(gap);
                (Some(conf), Some(acc))
            } else {
                (None, None)
            };
            bins.push(ReliabilityBin {
                lower: k as f64 / b as f64,
                upper: (k + 1) as f64 / b as f64,
                count: cnt,
                confidence,
                accuracy,
            });
        }
        let adaptive_ece = self.config.adaptive.then(|| {
            let mut keys = self.keys;
            radix_sort_u32(&mut keys);
            let n = keys.len();
            let mut sum = 0.0;
            for k in 0..b {
                let (lo, hi) = (k * n / b, (k + 1) * n / b);
                if hi == lo {
                    continue;
                }
                let slice = &keys[lo..hi];
                let conf: f64 = slice.iter().map(|&x| f32::from_bits(x >> 1) as f64).sum();
                let ok = slice.iter().filter(|&&x| x & 1 == 1).count() as f64;
                sum += (ok - conf).abs();
            }
            sum / n as f64
        });
        let correct: u64 = self.correct.iter().sum();
        Ok(CalibrationMetrics {
            ece,
            mce,
            adaptive_ece,
            nll: self.nll_sum / nf,
            brier: self.brier_sum / nf,
            accuracy: correct as f64 / nf,
            pixels: total,
            bins,
        })
    }
}

/// One-shot convenience: the calibration metrics of (N, C) probabilities with `bins` bins.
pub fn calibration_metrics<L: Label>(
    probs: ArrayView2<f32>,
    labels: &[L],
    bins: usize,
) -> Result<CalibrationMetrics> {
    let mut acc = CalibrationAccumulator::new(CalibrationConfig::with_bins(bins).check()?);
    acc.update(probs, labels)?;
    acc.finish()
}
