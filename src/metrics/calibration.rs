//! Calibration of class posteriors: top-label ECE, MCE, RMS calibration error, adaptive ECE,
//! classwise ECE, smooth ECE, NLL, the Brier score and its decomposition, and the
//! reliability-diagram bins (the paper's Fig. 5), with optional image-bootstrap intervals.
//!
//! For a pixel with probabilities p (C classes) and label y: confidence c = max_k p_k,
//! prediction ŷ = argmax_k p_k (the first maximum on ties, as NumPy), correct = [ŷ = y].
//! A value v falls in bin b = min(⌊v·B⌋, B−1) of B equal-width bins.
//! - **ECE** (Guo et al. 2017) = Σ_b (n_b/N) · |acc_b − conf_b| over the top-label bins.
//! - **MCE** = max over non-empty bins of |acc_b − conf_b|.
//! - **RMSCE** (l2 calibration error, Hendrycks et al. 2019; torchmetrics' `norm="l2"`)
//!   = √(Σ_b (n_b/N) · (acc_b − conf_b)²).
//! - **Adaptive ECE** (equal mass, Nixon et al. 2019): sort pixels by confidence and cut them
//!   into B bins of ⌊N/B⌋ or ⌈N/B⌉ pixels (bin b holds sorted positions ⌊bN/B⌋ ..
//!   ⌊(b+1)N/B⌋); the same sum.
//! - **Classwise ECE** (Kull et al. 2019, netcal's binary ECE per class): for every class c,
//!   bin p_c and compare each bin's mean p_c with the frequency of y = c there;
//!   classwise-ECE = (1/C) Σ_c Σ_b (n_{c,b}/N) · |freq_{c,b} − mean p_{c,b}|, over all C
//!   classes (a class absent from the labels contributes its mean probability).
//! - **Smooth ECE** (Błasiok & Nakkiran 2024): relplot's `smECE` on (c, correct); see
//!   [`super::smooth_ece`].
//! - **NLL** = mean of −ln max(p_y, 1e-12).
//! - **Brier** = mean over pixels of Σ_c (p_c − [c = y])².
//! - **Brier decomposition** (Murphy 1973), partitioned by the predicted class as
//!   `tfp.stats.brier_decomposition`: with ȳ the label frequencies and, for each predicted
//!   class k, its share n_k/N, mean probability vector p̄_k and label frequencies ȳ_k:
//!   uncertainty = Σ_c ȳ_c(1 − ȳ_c), resolution = Σ_k (n_k/N)‖ȳ_k − ȳ‖²,
//!   reliability = Σ_k (n_k/N)‖p̄_k − ȳ_k‖². Brier = reliability − resolution + uncertainty
//!   when the probability vector is constant within each predicted class; otherwise the
//!   within-class spread makes up the difference.
//!
//! Pixels labelled 255 are skipped. Probabilities must lie in [0, 1] and each row must sum
//! to 1 within [`CalibrationConfig::sum_tolerance`]; both are checked, with a typed error.
//!
//! # Image bootstrap
//! With image ids ([`CalibrationAccumulator::update_grouped`]) the statistics are kept per
//! image and [`CalibrationAccumulator::finish_with_bootstrap`] adds 95% intervals that
//! resample whole images ([`super::bootstrap`]).
//!
//! # Memory
//! Everything but the adaptive and smooth ECE is O(B·C + C²) per image. Those two need every
//! confidence: 4 bytes per valid pixel (the correctness bit is packed into the key), plus 4
//! for the image index when bootstrapping the smooth ECE.
//!
//! # References
//! - Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.
//! - Kull et al., "Beyond temperature scaling: Obtaining well-calibrated multi-class
//!   probabilities with Dirichlet calibration", NeurIPS 2019 (classwise ECE).
//! - Nixon et al., "Measuring Calibration in Deep Learning", CVPRW 2019.
//! - Błasiok & Nakkiran, "Smooth ECE: Principled Reliability Diagrams via Kernel
//!   Smoothing", ICLR 2024.
//! - Murphy, "A New Vector Partition of the Probability Score", J. Appl. Meteor. 1973.

use std::collections::BTreeMap;

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayView3, ArrayView4};
use rayon::prelude::*;
use serde::Serialize;

use super::bootstrap::{self, check_groups, GroupIndex, Intervals, ValidBootstrapConfig};
use super::smooth_ece;
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
    /// Whether to compute the smooth ECE (the same 4 bytes per pixel, shared with the
    /// adaptive ECE). Default true.
    pub smooth: bool,
}

impl Default for CalibrationConfig {
    fn default() -> Self {
        Self {
            bins: 15,
            sum_tolerance: 1e-3,
            adaptive: true,
            smooth: true,
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
    /// RMS calibration error: the ECE's bins with an l2 norm.
    pub rmsce: f64,
    /// Classwise ECE (Kull et al. 2019): the ECE of every class's probability against the
    /// frequency of that class, averaged over the C classes.
    pub classwise_ece: f64,
    /// Smooth ECE (relplot's `smECE` on top-label confidence and correctness); `None` when
    /// the config disabled it.
    pub smooth_ece: Option<f64>,
    /// The automatic bandwidth the smooth ECE was evaluated at.
    pub smooth_ece_bandwidth: Option<f64>,
    /// Brier decomposition by predicted class: reliability (lower is better).
    pub brier_reliability: f64,
    /// Brier decomposition: resolution (higher is better).
    pub brier_resolution: f64,
    /// Brier decomposition: uncertainty of the labels (a property of the data).
    pub brier_uncertainty: f64,
    /// Per class c, the reliability bins of p_c against the frequency of y = c (the bins
    /// behind `classwise_ece`; `confidence` is the mean p_c, `accuracy` the frequency).
    pub classwise_bins: Vec<Vec<ReliabilityBin>>,
    /// Image-bootstrap 95% intervals by metric name (empty unless
    /// [`CalibrationAccumulator::finish_with_bootstrap`] made them).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ci95: Intervals,
    /// Image-bootstrap 95% interval of each top-label bin's accuracy (the band of a
    /// reliability diagram; `None` for a bin no replicate fills; empty without bootstrap).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub bin_accuracy_ci95: Vec<Option<[f64; 2]>>,
}

/// Where each additive statistic sits in a flat statistics vector (so that per-image
/// vectors can be summed, and weighted-summed by the bootstrap, as rows of one matrix).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Layout {
    bins: usize,
    classes: usize,
}

impl Layout {
    fn len(&self) -> usize {
        let (b, c) = (self.bins, self.classes);
        3 * b + 2 + 3 * c * b + c + 2 * c * c
    }
    // top-label bins: count, correct, confidence sum
    fn top_correct(&self) -> usize {
        self.bins
    }
    fn top_conf(&self) -> usize {
        2 * self.bins
    }
    fn nll(&self) -> usize {
        3 * self.bins
    }
    fn brier(&self) -> usize {
        3 * self.bins + 1
    }
    // per class c and bin of p_c: count, hits (y = c), probability sum
    fn cls_count(&self) -> usize {
        3 * self.bins + 2
    }
    fn cls_hits(&self) -> usize {
        self.cls_count() + self.classes * self.bins
    }
    fn cls_prob(&self) -> usize {
        self.cls_hits() + self.classes * self.bins
    }
    // per predicted class k: count, probability-vector sum (C), label counts (C)
    fn pred_count(&self) -> usize {
        self.cls_prob() + self.classes * self.bins
    }
    fn pred_prob(&self) -> usize {
        self.pred_count() + self.classes
    }
    fn pred_label(&self) -> usize {
        self.pred_prob() + self.classes * self.classes
    }

    /// The bin of a probability: min(⌊p·B⌋, B − 1).
    #[inline(always)]
    fn bin(&self, p: f64) -> usize {
        ((p * self.bins as f64) as usize).min(self.bins - 1)
    }

    /// Adds one valid pixel to a statistics vector.
    #[inline]
    fn add(&self, s: &mut [f64], row: &[f32], px: &Pixel) {
        let (b, c) = (self.bins, self.classes);
        let bin = self.bin(px.conf);
        s[bin] += 1.0;
        s[self.top_correct() + bin] += (px.best == px.label) as u8 as f64;
        s[self.top_conf() + bin] += px.conf;
        s[self.nll()] += px.nll;
        s[self.brier()] += px.brier;
        let (cc, cp) = (self.cls_count(), self.cls_prob());
        let pp = self.pred_prob() + px.best * c;
        for (k, &p) in row.iter().enumerate() {
            let raw = p as f64;
            let p = raw.clamp(0.0, 1.0);
            let kb = k * b + self.bin(p);
            s[cc + kb] += 1.0;
            s[cp + kb] += p;
            s[pp + k] += raw;
        }
        let py = (row[px.label] as f64).clamp(0.0, 1.0);
        s[self.cls_hits() + px.label * b + self.bin(py)] += 1.0;
        s[self.pred_count() + px.best] += 1.0;
        s[self.pred_label() + px.best * c + px.label] += 1.0;
    }

    /// Every metric that is a function of the additive statistics.
    fn summarise(&self, s: &[f64]) -> Additive {
        let (b, c) = (self.bins, self.classes);
        let total: f64 = s[..b].iter().sum();
        let (mut ece, mut mce, mut sq) = (0.0, 0.0f64, 0.0);
        for k in 0..b {
            let n = s[k];
            if n > 0.0 {
                let gap = (s[self.top_correct() + k] - s[self.top_conf() + k]).abs() / n;
                ece += n / total * gap;
                sq += n / total * gap * gap;
                mce = mce.max(gap);
            }
        }
        let (ch, cp) = (self.cls_hits(), self.cls_prob());
        let classwise = (0..c * b)
            .map(|i| (s[ch + i] - s[cp + i]).abs())
            .sum::<f64>()
            / (c as f64 * total);
        let (pc, pp, pl) = (self.pred_count(), self.pred_prob(), self.pred_label());
        let ybar: Vec<f64> = (0..c)
            .map(|j| (0..c).map(|k| s[pl + k * c + j]).sum::<f64>() / total)
            .collect();
        let uncertainty = ybar.iter().map(|y| y * (1.0 - y)).sum();
        let (mut resolution, mut reliability) = (0.0, 0.0);
        for k in 0..c {
            let n = s[pc + k];
            if n == 0.0 {
                continue;
            }
            let (mut res, mut rel) = (0.0, 0.0);
            for j in 0..c {
                let yk = s[pl + k * c + j] / n;
                let pk = s[pp + k * c + j] / n;
                res += (yk - ybar[j]) * (yk - ybar[j]);
                rel += (pk - yk) * (pk - yk);
            }
            resolution += n / total * res;
            reliability += n / total * rel;
        }
        let correct: f64 = s[self.top_correct()..self.top_correct() + b].iter().sum();
        Additive {
            ece,
            mce,
            rmsce: sq.sqrt(),
            classwise_ece: classwise,
            nll: s[self.nll()] / total,
            brier: s[self.brier()] / total,
            accuracy: correct / total,
            brier_reliability: reliability,
            brier_resolution: resolution,
            brier_uncertainty: uncertainty,
            pixels: total,
        }
    }

    /// The reliability bins of a statistics vector: top-label, then per class.
    fn reliability_bins(&self, s: &[f64]) -> (Vec<ReliabilityBin>, Vec<Vec<ReliabilityBin>>) {
        let (b, c) = (self.bins, self.classes);
        let make = |k: usize, n: f64, hits: f64, prob: f64| ReliabilityBin {
            lower: k as f64 / b as f64,
            upper: (k + 1) as f64 / b as f64,
            count: n as u64,
            confidence: (n > 0.0).then(|| prob / n),
            accuracy: (n > 0.0).then(|| hits / n),
        };
        let top = (0..b)
            .map(|k| make(k, s[k], s[self.top_correct() + k], s[self.top_conf() + k]))
            .collect();
        let classes = (0..c)
            .map(|cl| {
                (0..b)
                    .map(|k| {
                        let i = cl * b + k;
                        make(
                            k,
                            s[self.cls_count() + i],
                            s[self.cls_hits() + i],
                            s[self.cls_prob() + i],
                        )
                    })
                    .collect()
            })
            .collect();
        (top, classes)
    }
}

/// The metrics computed from additive statistics (one image set or one bootstrap replicate).
#[derive(Clone, Copy, Debug)]
struct Additive {
    ece: f64,
    mce: f64,
    rmsce: f64,
    classwise_ece: f64,
    nll: f64,
    brier: f64,
    accuracy: f64,
    brier_reliability: f64,
    brier_resolution: f64,
    brier_uncertainty: f64,
    pixels: f64,
}

impl Additive {
    fn named(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("ece", self.ece),
            ("mce", self.mce),
            ("rmsce", self.rmsce),
            ("classwise_ece", self.classwise_ece),
            ("nll", self.nll),
            ("brier", self.brier),
            ("accuracy", self.accuracy),
            ("brier_reliability", self.brier_reliability),
            ("brier_resolution", self.brier_resolution),
            ("brier_uncertainty", self.brier_uncertainty),
        ]
    }
}

/// What one valid pixel contributes, after its row was checked.
struct Pixel {
    label: usize,
    best: usize,
    conf: f64,
    nll: f64,
    brier: f64,
}

/// NLL floor, as in most calibration code (keeps −ln p finite for p = 0).
const P_FLOOR: f64 = 1e-12;
/// Rows per parallel chunk of an update (fixed, so sums never depend on the thread count).
const CHUNK: usize = 1 << 15;

/// Checks one row; `None` for an ignored pixel.
#[inline]
fn check_row(row: &[f32], y: i64, i: usize, tol: f64) -> Result<Option<Pixel>> {
    let c = row.len();
    if y == IGNORE {
        return Ok(None);
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
    let py = (row[y as usize] as f64).clamp(P_FLOOR, 1.0);
    Ok(Some(Pixel {
        label: y as usize,
        best,
        conf: (best_p as f64).clamp(0.0, 1.0),
        nll: -py.ln(),
        brier,
    }))
}

/// Streaming accumulator for the calibration metrics, optionally per image (group) for the
/// image bootstrap.
#[derive(Clone, Debug)]
pub struct CalibrationAccumulator {
    config: CalibrationConfig,
    layout: Option<Layout>,
    /// Additive statistics per image (one entry when no groups are given).
    stats: Vec<Vec<f64>>,
    groups: GroupIndex,
    /// Whether the updates carry image ids (fixed by the first update).
    grouped: Option<bool>,
    /// Adaptive / smooth ECE keys: f32 confidence bits << 1 | correct.
    keys: Vec<u32>,
    /// The image index of every key (grouped updates with the smooth ECE only).
    key_groups: Vec<u32>,
}

impl CalibrationAccumulator {
    /// An empty accumulator.
    pub fn new(config: ValidCalibrationConfig) -> Self {
        Self {
            config: config.0,
            layout: None,
            stats: Vec::new(),
            groups: GroupIndex::default(),
            grouped: None,
            keys: Vec::new(),
            key_groups: Vec::new(),
        }
    }

    fn keeps_keys(&self) -> bool {
        self.config.adaptive || self.config.smooth
    }

    /// Adds one batch.
    ///
    /// # Shapes
    /// - `probs`: (N, C) class probabilities, rows summing to 1; C fixed across batches.
    /// - `labels`: (N,) class ids in `0..C` or 255.
    ///
    /// On error the accumulator is unchanged.
    pub fn update<L: Label>(&mut self, probs: ArrayView2<f32>, labels: &[L]) -> Result<()> {
        self.update_impl::<L, i64>(probs, labels, None)
    }

    /// Adds one batch whose pixels carry an image id each (`groups`, (N,), ids ≥ 0), so that
    /// [`finish_with_bootstrap`](Self::finish_with_bootstrap) can resample whole images.
    /// Either every update of an accumulator carries ids or none does.
    pub fn update_grouped<L: Label, G: Label>(
        &mut self,
        probs: ArrayView2<f32>,
        labels: &[L],
        groups: &[G],
    ) -> Result<()> {
        self.update_impl(probs, labels, Some(groups))
    }

    fn update_impl<L: Label, G: Label>(
        &mut self,
        probs: ArrayView2<f32>,
        labels: &[L],
        groups: Option<&[G]>,
    ) -> Result<()> {
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
        if let Some(l) = self.layout {
            if l.classes != c {
                return Err(GmmSegError::shape(
                    "probs",
                    format!(
                        "{c} classes in this batch but {} in earlier ones",
                        l.classes
                    ),
                ));
            }
        }
        if let Some(g) = groups {
            check_groups(g, n)?;
        }
        if self.grouped.is_some_and(|was| was != groups.is_some()) {
            return Err(GmmSegError::input(
                "groups",
                "give image ids with every batch of an accumulator or with none",
            ));
        }
        let probs = probs.as_standard_layout();
        let flat = probs.as_slice().expect("standard layout");
        let tol = self.config.sum_tolerance;
        let layout = Layout {
            bins: self.config.bins,
            classes: c,
        };
        // Image indices in order of first appearance (valid pixels only), on a copy of the
        // index so that a failed update leaves it unchanged.
        let mut group_index = self.groups.clone();
        let index: Option<Vec<u32>> = groups.map(|g| {
            labels
                .iter()
                .zip(g)
                .map(|(y, id)| {
                    if y.to_i64() == IGNORE {
                        u32::MAX
                    } else {
                        group_index.index(id.to_i64())
                    }
                })
                .collect()
        });
        // Check and accumulate chunk by chunk in parallel (runs of one image share a
        // vector); nothing is merged unless every row passed, so a bad one changes nothing.
        let keys = self.keeps_keys();
        let with_key_groups = groups.is_some() && self.config.smooth;
        type Part = (Vec<(u32, Vec<f64>)>, Vec<u32>, Vec<u32>);
        let parts: Vec<Result<Part>> = flat
            .par_chunks(CHUNK * c)
            .enumerate()
            .map(|(ci, chunk)| {
                let mut runs: Vec<(u32, Vec<f64>)> = Vec::new();
                let (mut ks, mut kg) = (Vec::new(), Vec::new());
                for (j, row) in chunk.chunks_exact(c).enumerate() {
                    let i = ci * CHUNK + j;
                    let Some(px) = check_row(row, labels[i].to_i64(), i, tol)? else {
                        continue;
                    };
                    let g = index.as_ref().map_or(0, |ix| ix[i]);
                    if runs.last().is_none_or(|(last, _)| *last != g) {
                        runs.push((g, vec![0.0; layout.len()]));
                    }
                    let s = &mut runs.last_mut().expect("just pushed").1;
                    layout.add(s, row, &px);
                    if keys {
                        ks.push(((px.conf as f32).to_bits() << 1) | (px.best == px.label) as u32);
                        if with_key_groups {
                            kg.push(g);
                        }
                    }
                }
                Ok((runs, ks, kg))
            })
            .collect();
        // the first error in row order wins
        let parts: Vec<Part> = parts.into_iter().collect::<Result<_>>()?;
        self.layout = Some(layout);
        self.grouped = Some(groups.is_some());
        self.groups = group_index;
        for (runs, ks, kg) in parts {
            for (g, s) in runs {
                let g = g as usize;
                if self.stats.len() <= g {
                    self.stats.resize_with(g + 1, || vec![0.0; layout.len()]);
                }
                for (a, b) in self.stats[g].iter_mut().zip(&s) {
                    *a += b;
                }
            }
            self.keys.extend(ks);
            self.key_groups.extend(kg);
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
        let (rows, labels) = dense_rows(probs, labels)?;
        self.update(rows.view(), &labels)
    }

    /// [`update_dense`](Self::update_dense) with image ids: image `b` of the batch gets id
    /// `first_image + b`, so that the bootstrap resamples whole images.
    pub fn update_dense_images<L: Label>(
        &mut self,
        probs: ArrayView4<f32>,
        labels: ArrayView3<L>,
        first_image: usize,
    ) -> Result<()> {
        let (b, _, h, w) = probs.dim();
        let (rows, labels) = dense_rows(probs, labels)?;
        let ids: Vec<i64> = (0..b)
            .flat_map(|i| std::iter::repeat_n((first_image + i) as i64, h * w))
            .collect();
        self.update_grouped(rows.view(), &labels, &ids)
    }

    /// The sum of every image's statistics.
    fn total(&self, layout: &Layout) -> Vec<f64> {
        let mut t = vec![0.0; layout.len()];
        for s in &self.stats {
            for (a, b) in t.iter_mut().zip(s) {
                *a += b;
            }
        }
        t
    }

    /// Every metric and the reliability bins. Errors when no valid pixel was seen.
    pub fn finish(self) -> Result<CalibrationMetrics> {
        self.finish_impl(None)
    }

    /// The metrics plus image-bootstrap 95% intervals (`ci95`) of every metric but the
    /// adaptive ECE (its equal-mass bins would have to be re-cut per replicate). The smooth
    /// ECE of a replicate is evaluated at the point estimate's bandwidth. Errors unless the
    /// updates carried image ids and at least two images had valid pixels.
    pub fn finish_with_bootstrap(self, cfg: &ValidBootstrapConfig) -> Result<CalibrationMetrics> {
        if self.grouped != Some(true) {
            return Err(GmmSegError::input(
                "groups",
                "the image bootstrap needs an image id per pixel (update_grouped)",
            ));
        }
        self.finish_impl(Some(cfg))
    }

    fn finish_impl(mut self, boot: Option<&ValidBootstrapConfig>) -> Result<CalibrationMetrics> {
        let empty =
            || GmmSegError::empty("calibration labels", "no valid (non-255) pixel was seen");
        let layout = self.layout.ok_or_else(empty)?;
        let total = self.total(&layout);
        let point = layout.summarise(&total);
        if point.pixels == 0.0 {
            return Err(empty());
        }
        let smooth = self
            .config
            .smooth
            .then(|| smooth_ece::smooth_ece_of_keys(&self.keys));
        let mut ci95 = Intervals::new();
        let mut bin_accuracy_ci95 = Vec::new();
        if let Some(cfg) = boot {
            let g = self.stats.len();
            let weights = bootstrap::draw_weights(g, cfg)?;
            let k = layout.len();
            let nodes = smooth.map_or(0, |s| smooth_ece::grid_nodes(s.bandwidth));
            let mut m = Array2::<f64>::zeros((g, k + 2 * nodes));
            for (i, s) in self.stats.iter().enumerate() {
                m.row_mut(i)
                    .slice_mut(ndarray::s![..k])
                    .assign(&ArrayView1::from(s));
            }
            if smooth.is_some() {
                let mut splats = vec![smooth_ece::Splat::zeros(nodes); g];
                for (&key, &gi) in self.keys.iter().zip(&self.key_groups) {
                    let (f, y) = smooth_ece::unpack_key(key);
                    splats[gi as usize].add(f, y);
                }
                for (i, sp) in splats.iter().enumerate() {
                    let mut row = m.row_mut(i);
                    row.slice_mut(ndarray::s![k..k + nodes])
                        .assign(&ArrayView1::from(&sp.residual));
                    row.slice_mut(ndarray::s![k + nodes..])
                        .assign(&ArrayView1::from(&sp.mass));
                }
            }
            let replicates = bootstrap::resample(weights.view(), m.view());
            let sigma = smooth.map(|s| s.bandwidth);
            let conv = sigma.map(|s| smooth_ece::ReflectedConvolution::new(nodes, s));
            ci95 = bootstrap::intervals(replicates.view(), |row| {
                let mut v = layout.summarise(&row[..k]).named();
                if let (Some(sigma), Some(conv)) = (sigma, &conv) {
                    let sp = smooth_ece::Splat {
                        residual: row[k..k + nodes].to_vec(),
                        mass: row[k + nodes..].to_vec(),
                    };
                    v.push(("smooth_ece", smooth_ece::smooth_ece_with(conv, &sp, sigma)));
                }
                v
            });
            bin_accuracy_ci95 = (0..layout.bins)
                .map(|b| {
                    let acc: Vec<f64> = replicates
                        .rows()
                        .into_iter()
                        .map(|r| r[layout.top_correct() + b] / r[b])
                        .collect();
                    bootstrap::percentile_interval(&acc)
                })
                .collect();
        }
        let b = layout.bins;
        let adaptive_ece = self.config.adaptive.then(|| {
            let mut keys = std::mem::take(&mut self.keys);
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
        let (bins, classwise_bins) = layout.reliability_bins(&total);
        Ok(CalibrationMetrics {
            ece: point.ece,
            mce: point.mce,
            adaptive_ece,
            nll: point.nll,
            brier: point.brier,
            accuracy: point.accuracy,
            pixels: point.pixels as u64,
            bins,
            rmsce: point.rmsce,
            classwise_ece: point.classwise_ece,
            smooth_ece: smooth.map(|s| s.value),
            smooth_ece_bandwidth: smooth.map(|s| s.bandwidth),
            brier_reliability: point.brier_reliability,
            brier_resolution: point.brier_resolution,
            brier_uncertainty: point.brier_uncertainty,
            classwise_bins,
            ci95,
            bin_accuracy_ci95,
        })
    }
}

/// (B, C, H, W) probabilities and (B, H, W) labels as (N, C) rows and N labels.
fn dense_rows<L: Label>(
    probs: ArrayView4<f32>,
    labels: ArrayView3<L>,
) -> Result<(ndarray::Array2<f32>, Vec<L>)> {
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
    Ok((rows, labels.iter().copied().collect()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::bootstrap::{draw_weights, percentile_interval, BootstrapConfig};
    use rand::{Rng, SeedableRng};

    /// `images` random images of `px` pixels: (probs, labels) each.
    fn images(images: usize, px: usize, c: usize, seed: u64) -> Vec<(Array2<f32>, Vec<u8>)> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..images)
            .map(|i| {
                let skill = 0.5 + 0.4 * (i as f64 / images as f64);
                let mut p = Array2::<f32>::zeros((px, c));
                let mut y = vec![0u8; px];
                for r in 0..px {
                    let label = rng.gen_range(0..c);
                    y[r] = if rng.gen_bool(0.05) { 255 } else { label as u8 };
                    let mut row: Vec<f64> = (0..c).map(|_| rng.gen::<f64>()).collect();
                    if rng.gen_bool(skill) {
                        row[label] += 2.0;
                    }
                    let s: f64 = row.iter().sum();
                    for k in 0..c {
                        p[[r, k]] = (row[k] / s) as f32;
                    }
                }
                (p, y)
            })
            .collect()
    }

    #[test]
    fn bootstrap_equals_recomputing_the_metrics_on_resampled_images() {
        let data = images(6, 300, 4, 1);
        let cfg = BootstrapConfig {
            samples: 40,
            seed: 9,
        }
        .check()
        .unwrap();
        let mut acc = CalibrationAccumulator::new(CalibrationConfig::default().check().unwrap());
        for (i, (p, y)) in data.iter().enumerate() {
            acc.update_grouped(p.view(), y, &vec![100 + 3 * i as i64; y.len()])
                .unwrap();
        }
        let fast = acc.finish_with_bootstrap(&cfg).unwrap();
        // brute force: the same draws, every replicate's pixels concatenated
        let w = draw_weights(6, &cfg).unwrap();
        let mut by_metric: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for r in w.outer_iter() {
            let mut a = CalibrationAccumulator::new(CalibrationConfig::default().check().unwrap());
            for (g, &times) in r.iter().enumerate() {
                for _ in 0..times as usize {
                    a.update(data[g].0.view(), &data[g].1).unwrap();
                }
            }
            let m = a.finish().unwrap();
            for (k, v) in [
                ("ece", m.ece),
                ("classwise_ece", m.classwise_ece),
                ("rmsce", m.rmsce),
                ("nll", m.nll),
                ("brier_reliability", m.brier_reliability),
                ("smooth_ece_fixed", f64::NAN),
            ] {
                by_metric.entry(k).or_default().push(v);
            }
        }
        for k in ["ece", "classwise_ece", "rmsce", "nll", "brier_reliability"] {
            let want = percentile_interval(&by_metric[k]).unwrap();
            let got = fast.ci95[k];
            assert!(
                (got[0] - want[0]).abs() < 1e-9 && (got[1] - want[1]).abs() < 1e-9,
                "{k}: {got:?} vs {want:?}"
            );
        }
        let s = fast.ci95["smooth_ece"];
        assert!(s[0] <= s[1] && s[0] > 0.0);
        assert!(!fast.ci95.contains_key("adaptive_ece"));
    }

    #[test]
    fn grouped_updates_give_the_same_point_metrics_with_any_chunking() {
        let data = images(3, 20_000, 3, 2);
        let mut one = CalibrationAccumulator::new(CalibrationConfig::default().check().unwrap());
        let mut grouped =
            CalibrationAccumulator::new(CalibrationConfig::default().check().unwrap());
        for (i, (p, y)) in data.iter().enumerate() {
            one.update(p.view(), y).unwrap();
            grouped
                .update_grouped(p.view(), y, &vec![i as u32; y.len()])
                .unwrap();
        }
        let (a, b) = (one.finish().unwrap(), grouped.finish().unwrap());
        assert!((a.ece - b.ece).abs() < 1e-12 && (a.classwise_ece - b.classwise_ece).abs() < 1e-12);
        assert_eq!(a.smooth_ece, b.smooth_ece);
    }

    #[test]
    fn bad_groups_are_errors_and_change_nothing() {
        let data = images(2, 10, 3, 3);
        let mut acc = CalibrationAccumulator::new(CalibrationConfig::default().check().unwrap());
        let (p, y) = &data[0];
        assert!(acc.update_grouped(p.view(), y, &[0i64; 3]).is_err());
        assert!(acc.update_grouped(p.view(), y, &[-1i64; 10]).is_err());
        acc.update_grouped(p.view(), y, &[0i64; 10]).unwrap();
        assert!(
            acc.update(p.view(), y).is_err(),
            "mixing grouped and plain updates"
        );
        let cfg = BootstrapConfig::default().check().unwrap();
        // a single image cannot be resampled
        let e = acc.clone().finish_with_bootstrap(&cfg).unwrap_err();
        assert!(e.to_string().contains("at least 2"), "{e}");
        let mut plain = CalibrationAccumulator::new(CalibrationConfig::default().check().unwrap());
        plain.update(p.view(), y).unwrap();
        assert!(plain.finish_with_bootstrap(&cfg).is_err());
    }
}
