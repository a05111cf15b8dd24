//! Online EM with an external memory: the GMM state that the hybrid trainer owns next to the
//! network, updated once per training iteration without gradient.
//!
//! # Order of operations in [`OnlineGmm::update`] (stated once, here)
//! 1. **E-step on the batch** with the parameters as they were before this iteration:
//!    responsibilities of each valid pixel among its own class's components.
//! 2. With [`EmSource::BatchAndMemory`] (paper): EM on batch ∪ memory (memory as it was
//!    before this batch). `em_loops` = L loops refine one estimate from the same batch and
//!    memory — loop 1's E-step uses the current parameters φ, loop l > 1's the estimate φ̂ of
//!    loop l − 1 — and only the last estimate is blended into φ, **once**:
//!    φ ← τ φ + (1 − τ) φ̂_L. (Applying the momentum in every loop would make the effective
//!    momentum τ^L — 0.90 at τ = 0.99, L = 10 — so that "more loops" would also mean "a
//!    faster-moving mixture".) Loop 1's responsibilities of the batch's pixels also choose
//!    each pixel's component queue in step 3.
//! 3. **Enqueue** the sampled batch pixels into the memory.
//! 4. With [`EmSource::MemoryOnly`] (reference code): every `update_interval` iterations, one
//!    M-step from the memory alone, each queued feature assigned to its queue's component.
//!
//! Classes absent from the batch keep their parameters (and, in `MemoryOnly`, are not
//! updated even if queued, as in the reference code). A class never seen keeps its
//! initialisation; [`OnlineGmm::unseen_classes`] reports them.

use ndarray::{Array2, ArrayView2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::config::{EStep, GmmConfig, ValidGmmConfig};
use super::estep::EStepStats;
use super::fit::{e_step, gather_rows, init_class_from_data, responsibilities_blocks};
use super::labels::ClassIndex;
use super::memory::{
    sample_evenly_spaced, sample_random, FeatureMemory, MemoryConfig, MemoryInit, MemoryLayout,
    Sampling,
};
use super::mstep::{apply, estimate, Estimate, Moments};
use super::params::GmmParams;
use crate::error::{check_finite, GmmSegError, Result};

/// Which features the M-step is estimated from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmSource {
    /// All of the batch's pixels of the class plus the class's memory (paper).
    BatchAndMemory,
    /// The memory alone, after enqueueing (reference code).
    MemoryOnly,
}

/// Configuration of online EM: the GMM, its memory, and when and from what it updates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OnlineConfig {
    /// The mixture and its E/M steps.
    pub gmm: GmmConfig,
    /// The external memory.
    pub memory: MemoryConfig,
    /// Source of the M-step. Default batch + memory (paper).
    pub em_source: EmSource,
    /// Update every this many iterations. Default 1 (paper); the reference code uses 5.
    pub update_interval: usize,
    /// Initialise a class from data (k-means++ and one hard M-step) the first time it appears
    /// in a batch with at least 2·M pixels, instead of drifting there from a random start at
    /// momentum τ. Default `false` in both flavours (the reference code's random start): it
    /// looks like a help for short CPU runs, but measured over four seeds of the quick
    /// SynthScapes run it costs mIoU (0.617 vs 0.626) and calibration (ECE 0.044 vs 0.014)
    /// for the same likelihood AUROC — means fitted to a random network's features are a
    /// worse target than random means that the features learn to separate.
    #[serde(default)]
    pub warm_start: bool,
    /// Bias-corrected momentum warm-up: a class's t-th update (t = 0, 1, …) blends with
    /// `τ_t = min(τ, (1 + t)/(10 + t))` on means and variances instead of τ, so the mixture
    /// catches up with the fast-moving features of early training (τ_0 = 0.1: mostly the
    /// estimate) and then slows to τ (reached at t ≈ 9τ/(1 − τ) − … ≈ 890 for τ = 0.99).
    /// Default `false` (paper and code); a factor of the `gap` study. Left out of the JSON
    /// when off.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub momentum_warmup: bool,
    /// Batches whose features fill the memory before the first update (0: none, the
    /// default of both flavours). The trainer passes them through [`OnlineGmm::prefill`],
    /// which enqueues as an update would and fits nothing, so that the first EM update
    /// sees a memory of real features instead of one batch (paper flavour: empty queues) or
    /// random unit vectors (reference code). The authors' code has a runner for this that no
    /// config uses; a factor of the `gap` study. Left out of the JSON when 0.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prefill_batches: usize,
}

/// Whether a count is 0 (serde: leave the field out).
fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The momentum of a class's `t`-th update (0-based) under the warm-up of
/// [`OnlineConfig::momentum_warmup`]: `min(τ, (1 + t)/(10 + t))`.
pub fn warmup_momentum(tau: f32, t: u64) -> f32 {
    let t = t as f64;
    (tau as f64).min((1.0 + t) / (10.0 + t)) as f32
}

impl OnlineConfig {
    /// Validates every field; an error names the field by its path in this config
    /// (`gmm.mean_momentum`, `memory.capacity`, `update_interval`).
    ///
    /// The flavours' values are written once, in the head presets
    /// (`nn::head::GmmHeadConfig::paper` and `::reference_code`).
    pub fn check(&self) -> Result<ValidGmmConfig> {
        self.memory.check()?;
        if self.update_interval == 0 {
            return Err(GmmSegError::config("update_interval", "must be ≥ 1, got 0"));
        }
        self.gmm.clone().check().map_err(|e| e.within("gmm"))
    }
}

/// One batch of per-pixel features for an online update.
#[derive(Clone, Copy, Debug)]
pub struct OnlineBatch<'a> {
    /// Features (N, D), N = images × pixels per image.
    pub features: ArrayView2<'a, f32>,
    /// Labels (N,), class ids or 255.
    pub labels: &'a [u8],
    /// Pixels per image (to sample per image); N must be a multiple of it.
    pub pixels_per_image: usize,
    /// Which pixels the network currently classifies correctly (reference-code sampling);
    /// `None` treats every pixel as correct.
    pub correct: Option<&'a [bool]>,
}

/// The E-step's answer for the pixels of one class.
#[derive(Clone, Debug, PartialEq)]
pub struct ClassAssignment {
    /// The class c.
    pub class: usize,
    /// Indices (rows of the batch) of the pixels labelled c.
    pub pixels: Vec<usize>,
    /// Responsibilities over class c's components, shape (pixels, M).
    pub responsibilities: Array2<f32>,
}

/// What an update did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UpdateReport {
    /// Classes whose parameters changed.
    pub updated_classes: Vec<usize>,
    /// Features written to the memory.
    pub enqueued: usize,
    /// Balance and hardness of the update's E-step (the last EM loop's, all classes merged;
    /// the batch E-step's for the memory-only schedule); `None` when no E-step ran.
    pub e_step: Option<EStepStats>,
}

/// The E-step statistics of every update of a training run: means and maxima over updates,
/// what a run reports (training log, study rows).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EmTrace {
    /// Updates whose E-step was recorded.
    pub updates: u64,
    /// Sum over updates of the maximal marginal error (for the mean).
    pub marginal_error_sum: f64,
    /// Largest marginal error of any update.
    pub marginal_error_max: f64,
    /// Sum over updates of the mean max responsibility.
    pub max_responsibility_sum: f64,
    /// Largest mean max responsibility of any update.
    pub max_responsibility_max: f64,
    /// The last update's statistics.
    pub last: EStepStats,
    /// Sum over M-step estimates (one per class and update) of the variance floor's share
    /// of the estimated variances ([`super::mstep::Estimate::floor_share`]), for the mean.
    #[serde(default)]
    pub floor_share_sum: f64,
    /// M-step estimates in `floor_share_sum`.
    #[serde(default)]
    pub floor_share_count: u64,
}

impl EmTrace {
    /// Adds one update's statistics.
    pub fn record(&mut self, s: &EStepStats) {
        self.updates += 1;
        self.marginal_error_sum += s.max_marginal_error;
        self.marginal_error_max = self.marginal_error_max.max(s.max_marginal_error);
        self.max_responsibility_sum += s.mean_max_responsibility;
        self.max_responsibility_max = self.max_responsibility_max.max(s.mean_max_responsibility);
        self.last = *s;
    }

    /// Adds one M-step estimate's floor share (nothing for `None`).
    pub fn record_floor_share(&mut self, share: Option<f64>) {
        if let Some(s) = share {
            self.floor_share_sum += s;
            self.floor_share_count += 1;
        }
    }

    /// Mean over M-step estimates of the floor's share of the variances, `None` without one.
    pub fn floor_share_mean(&self) -> Option<f64> {
        (self.floor_share_count > 0).then(|| self.floor_share_sum / self.floor_share_count as f64)
    }

    /// Mean over updates of the maximal marginal error (0 with no update).
    pub fn marginal_error_mean(&self) -> f64 {
        if self.updates == 0 {
            0.0
        } else {
            self.marginal_error_sum / self.updates as f64
        }
    }

    /// Mean over updates of the mean max responsibility (0 with no update).
    pub fn max_responsibility_mean(&self) -> f64 {
        if self.updates == 0 {
            0.0
        } else {
            self.max_responsibility_sum / self.updates as f64
        }
    }
}

/// The momenta (means, variances) of one update.
type Momenta = (f32, f32);

/// One M-step of class `c` with momenta `taus`.
fn m_step(
    params: &mut GmmParams,
    cfg: &ValidGmmConfig,
    c: usize,
    x: ArrayView2<'_, f32>,
    resp: ArrayView2<'_, f32>,
    taus: Momenta,
) -> Option<f64> {
    m_step_blocks(params, cfg, c, &[x], resp, taus)
}

/// [`m_step`] on several row blocks taken as one set; `resp` holds their rows in order.
fn m_step_blocks(
    params: &mut GmmParams,
    cfg: &ValidGmmConfig,
    c: usize,
    blocks: &[ArrayView2<'_, f32>],
    resp: ArrayView2<'_, f32>,
    taus: Momenta,
) -> Option<f64> {
    let est = estimate_blocks(params, cfg, c, blocks, resp)?;
    blend(params, cfg, c, &est, taus.0, taus.1);
    est.floor_share
}

/// The M-step estimate φ̂ of class `c` from the weighted moments of the blocks (moments
/// shifted by the current means, for precision); `None` without rows.
fn estimate_blocks(
    params: &GmmParams,
    cfg: &ValidGmmConfig,
    c: usize,
    blocks: &[ArrayView2<'_, f32>],
    resp: ArrayView2<'_, f32>,
) -> Option<Estimate> {
    let shift = params.means.index_axis(Axis(0), c).to_owned();
    let mut start = 0;
    let mut moments: Option<Moments> = None;
    for block in blocks {
        let rows = ndarray::s![start..start + block.nrows(), ..];
        let part = Moments::accumulate(*block, resp.slice(rows), shift.view());
        start += block.nrows();
        match moments.as_mut() {
            Some(total) => total.merge(&part),
            None => moments = Some(part),
        }
    }
    moments.map(|m| estimate(&m, cfg.variance_floor(), cfg.mean_estimator))
}

/// φ ← τ φ + (1 − τ) φ̂ for class `c` (weights re-estimated under vanilla EM).
fn blend(
    params: &mut GmmParams,
    cfg: &ValidGmmConfig,
    c: usize,
    est: &Estimate,
    mean_momentum: f32,
    var_momentum: f32,
) {
    let vanilla = matches!(cfg.e_step, EStep::Vanilla);
    apply(
        params,
        c,
        est,
        mean_momentum,
        var_momentum,
        vanilla,
        cfg.mean_estimator,
    );
}

/// L EM loops of class `c` on the blocks, refining one estimate, blended into `params` once
/// (module docs, step 2). Returns the new parameters of the class, loop 1's
/// responsibilities (all rows), the last loop's E-step statistics and its estimate's floor
/// share.
fn em_loops_once_blended(
    params: &GmmParams,
    cfg: &ValidGmmConfig,
    c: usize,
    blocks: &[ArrayView2<'_, f32>],
    taus: Momenta,
) -> (GmmParams, Array2<f32>, EStepStats, Option<f64>) {
    let mut work = params.clone();
    let mut first = None;
    let mut stats = EStepStats::default();
    let mut last_estimate = None;
    for l in 0..cfg.em_loops {
        let (resp, s) = responsibilities_blocks(blocks, &work, c, cfg);
        stats = s;
        let est = estimate_blocks(&work, cfg, c, blocks, resp.view());
        if let Some(e) = &est {
            if l + 1 < cfg.em_loops {
                // refine: the next E-step sees the un-blended estimate
                blend(&mut work, cfg, c, e, 0.0, 0.0);
            }
        }
        if first.is_none() {
            first = Some(resp);
        }
        last_estimate = est;
    }
    let mut out = params.clone();
    if let Some(e) = &last_estimate {
        blend(&mut out, cfg, c, e, taus.0, taus.1);
    }
    let share = last_estimate.and_then(|e| e.floor_share);
    (out, first.expect("em_loops ≥ 1"), stats, share)
}

/// The component of a responsibility row with the largest value (first on ties).
fn argmax(row: ndarray::ArrayView1<'_, f32>) -> usize {
    (0..row.len()).fold(0, |best, j| if row[j] > row[best] { j } else { best })
}

/// A class-conditional GMM fitted online, with its memory and counters.
#[derive(Clone, Debug)]
pub struct OnlineGmm {
    config: OnlineConfig,
    valid: ValidGmmConfig,
    /// Current parameters φ.
    pub params: GmmParams,
    /// The external memory.
    pub memory: FeatureMemory,
    /// How many updates each class has taken part in.
    pub class_updates: Vec<u64>,
    /// Iterations seen (incremented by every [`OnlineGmm::update`]).
    pub iteration: u64,
    /// E-step statistics of every update so far (since construction or resume).
    pub trace: EmTrace,
    rng: ChaCha8Rng,
}

impl OnlineGmm {
    /// A new online GMM starting from `params` (e.g. [`GmmParams::random_unit`]).
    pub fn new(config: OnlineConfig, params: GmmParams, seed: u64) -> Result<Self> {
        let valid = config.check()?;
        params.validate("initial GMM parameters")?;
        if params.means.dim() != (valid.num_classes, valid.components, valid.dim) {
            return Err(GmmSegError::shape(
                "initial GMM parameters",
                format!(
                    "shape {:?} does not match (C, M, D) = ({}, {}, {})",
                    params.means.shape(),
                    valid.num_classes,
                    valid.components,
                    valid.dim
                ),
            ));
        }
        let slots = match config.memory.layout {
            MemoryLayout::PerClass => 1,
            MemoryLayout::PerComponent => valid.components,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut memory =
            FeatureMemory::new(valid.num_classes, slots, config.memory.capacity, valid.dim);
        if config.memory.init == MemoryInit::RandomUnit {
            memory.fill_random_unit(&mut rng);
        }
        let c = valid.num_classes;
        Ok(Self {
            config,
            valid,
            params,
            memory,
            class_updates: vec![0; c],
            iteration: 0,
            trace: EmTrace::default(),
            rng,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OnlineConfig {
        &self.config
    }

    /// Classes that no update has touched yet (they keep their initialisation).
    pub fn unseen_classes(&self) -> Vec<usize> {
        self.class_updates
            .iter()
            .enumerate()
            .filter(|(_, &n)| n == 0)
            .map(|(c, _)| c)
            .collect()
    }

    /// Fills the memory from `batch` as [`OnlineGmm::update`] would enqueue it (the same
    /// sampling, each pixel in its E-step component's queue under the current parameters),
    /// without fitting anything: parameters, update counts, the iteration and the trace stay
    /// as they are ([`OnlineConfig::prefill_batches`]). Returns the features enqueued.
    ///
    /// # Errors
    /// As [`OnlineGmm::update`]: shapes, labels, non-finite features.
    pub fn prefill(&mut self, batch: &OnlineBatch<'_>) -> Result<usize> {
        self.check_online_batch(batch)?;
        let index = self.check_batch(batch.features, batch.labels)?;
        let need_resp = self.config.memory.layout == MemoryLayout::PerComponent
            || matches!(
                self.config.memory.sampling,
                Sampling::CorrectEvenlySpaced { .. }
            );
        let mut enqueued = 0;
        for c in 0..index.per_class.len() {
            let idx = &index.per_class[c];
            if idx.is_empty() {
                continue;
            }
            let resp = need_resp.then(|| {
                let xc = gather_rows(batch.features, idx);
                e_step(xc.view(), &self.params, c, &self.valid).0
            });
            enqueued += self.enqueue(c, idx, resp.as_ref(), batch);
        }
        Ok(enqueued)
    }

    /// The checks of a batch's shape that [`OnlineGmm::update`] and [`OnlineGmm::prefill`]
    /// share: whole images, one correctness flag per pixel.
    fn check_online_batch(&self, batch: &OnlineBatch<'_>) -> Result<()> {
        let n = batch.features.nrows();
        if batch.pixels_per_image == 0 || !n.is_multiple_of(batch.pixels_per_image) {
            return Err(GmmSegError::shape(
                "pixels_per_image",
                format!(
                    "{n} pixels are not a whole number of images of {} pixels",
                    batch.pixels_per_image
                ),
            ));
        }
        if let Some(c) = batch.correct {
            if c.len() != n {
                return Err(GmmSegError::shape(
                    "correct",
                    format!("{} flags for {n} pixels", c.len()),
                ));
            }
        }
        Ok(())
    }

    /// Responsibilities of the valid pixels of each class present, under the current
    /// parameters and the configured E-step. The reference flavour's component-level loss
    /// takes its targets from here.
    pub fn assign(
        &self,
        features: ArrayView2<'_, f32>,
        labels: &[u8],
    ) -> Result<Vec<ClassAssignment>> {
        let index = self.check_batch(features, labels)?;
        Ok(index
            .per_class
            .into_iter()
            .enumerate()
            .filter(|(_, idx)| !idx.is_empty())
            .map(|(c, idx)| {
                let xc = gather_rows(features, &idx);
                let (responsibilities, _, _) = e_step(xc.view(), &self.params, c, &self.valid);
                ClassAssignment {
                    class: c,
                    pixels: idx,
                    responsibilities,
                }
            })
            .collect())
    }

    fn check_batch(&self, features: ArrayView2<'_, f32>, labels: &[u8]) -> Result<ClassIndex> {
        if features.ncols() != self.valid.dim {
            return Err(GmmSegError::shape(
                "features",
                format!(
                    "D = {} but the GMM has D = {}",
                    features.ncols(),
                    self.valid.dim
                ),
            ));
        }
        if labels.len() != features.nrows() {
            return Err(GmmSegError::shape(
                "labels",
                format!(
                    "{} labels for {} feature rows",
                    labels.len(),
                    features.nrows()
                ),
            ));
        }
        check_finite("features", features.iter())?;
        ClassIndex::new(
            labels.iter().map(|&l| l as i64),
            self.valid.num_classes,
            "labels",
        )
    }

    /// One online update from a batch (see the module docs for the order of operations).
    pub fn update(&mut self, batch: &OnlineBatch<'_>) -> Result<UpdateReport> {
        self.check_online_batch(batch)?;
        let index = self.check_batch(batch.features, batch.labels)?;
        let mut report = UpdateReport::default();
        let due = self
            .iteration
            .is_multiple_of(self.config.update_interval as u64);

        // 0. Warm start of classes seen for the first time.
        if self.config.warm_start {
            let min_pixels = 2 * self.valid.components;
            for (c, idx) in index.per_class.iter().enumerate() {
                if self.class_updates[c] == 0 && idx.len() >= min_pixels {
                    let xc = gather_rows(batch.features, idx);
                    init_class_from_data(
                        &mut self.params,
                        c,
                        xc.view(),
                        &self.valid,
                        &mut self.rng,
                    );
                }
            }
        }

        // 1. E-step on the batch (pre-update parameters), where the memory needs it: to pick
        //    a pixel's component queue, or to sample per component. The paper's EM (step 2)
        //    computes these responsibilities in its first loop, so it is skipped then.
        let need_batch_resp = self.config.memory.layout == MemoryLayout::PerComponent
            || matches!(
                self.config.memory.sampling,
                Sampling::CorrectEvenlySpaced { .. }
            );
        let paper_em = self.config.em_source == EmSource::BatchAndMemory && due;
        let present: Vec<usize> = (0..index.per_class.len())
            .filter(|&c| !index.per_class[c].is_empty())
            .collect();
        type BatchEStep = (usize, Array2<f32>, Option<(Array2<f32>, EStepStats)>);
        let batch_e_steps: Vec<BatchEStep> = present
            .par_iter()
            .map(|&c| {
                let xc = gather_rows(batch.features, &index.per_class[c]);
                let resp = (need_batch_resp && !paper_em).then(|| {
                    let (r, _, stats) = e_step(xc.view(), &self.params, c, &self.valid);
                    (r, stats)
                });
                (c, xc, resp)
            })
            .collect();
        let mut batch_classes = Vec::with_capacity(batch_e_steps.len());
        for (c, xc, resp) in batch_e_steps {
            let resp = resp.map(|(r, stats)| {
                report.e_step = Some(report.e_step.unwrap_or_default().merge(&stats));
                r
            });
            batch_classes.push((c, xc, resp));
        }

        // 2. Paper: EM on batch ∪ memory (memory before this batch), the momentum applied once
        //    however many loops. Classes are independent, so they run in parallel, each on
        //    its own copy of the parameters.
        if paper_em {
            type Updated = (usize, GmmParams, Array2<f32>, EStepStats, Option<f64>);
            let updated: Vec<Updated> = batch_classes
                .par_iter()
                .map(|(c, xc, _)| {
                    // The batch's rows and each memory queue as blocks of one set: no copy
                    // of the features into one array.
                    let blocks: Vec<ArrayView2<'_, f32>> = std::iter::once(xc.view())
                        .chain((0..self.memory.slots()).map(|s| self.memory.queue(*c, s)))
                        .filter(|b| b.nrows() > 0)
                        .collect();
                    let (params, first, stats, share) = em_loops_once_blended(
                        &self.params,
                        &self.valid,
                        *c,
                        &blocks,
                        self.momenta(*c),
                    );
                    // the batch's rows come first
                    let batch_resp = first.slice(ndarray::s![..xc.nrows(), ..]).to_owned();
                    (*c, params, batch_resp, stats, share)
                })
                .collect();
            for ((c, params, batch_resp, stats, share), entry) in
                updated.into_iter().zip(batch_classes.iter_mut())
            {
                debug_assert_eq!(c, entry.0);
                if need_batch_resp {
                    entry.2 = Some(batch_resp);
                }
                report.e_step = Some(report.e_step.unwrap_or_default().merge(&stats));
                self.trace.record_floor_share(share);
                self.params
                    .means
                    .index_axis_mut(Axis(0), c)
                    .assign(&params.means.index_axis(Axis(0), c));
                self.params
                    .variances
                    .index_axis_mut(Axis(0), c)
                    .assign(&params.variances.index_axis(Axis(0), c));
                self.params
                    .log_weights
                    .index_axis_mut(Axis(0), c)
                    .assign(&params.log_weights.index_axis(Axis(0), c));
                report.updated_classes.push(c);
            }
        }

        // 3. Enqueue sampled pixels.
        for (c, _, resp) in &batch_classes {
            let idx = &index.per_class[*c];
            report.enqueued += self.enqueue(*c, idx, resp.as_ref(), batch);
        }

        // 4. Reference code: M-step from the memory alone.
        if self.config.em_source == EmSource::MemoryOnly && due {
            for (c, _, _) in &batch_classes {
                self.memory_only_m_step(*c);
                report.updated_classes.push(*c);
            }
        }
        for &c in &report.updated_classes {
            self.class_updates[c] += 1;
        }
        if let Some(st) = &report.e_step {
            self.trace.record(st);
        }
        self.iteration += 1;
        Ok(report)
    }

    /// All memory features of class `c` (every slot), shape (n, D).
    fn class_memory(&self, c: usize) -> Array2<f32> {
        let views: Vec<ArrayView2<'_, f32>> = (0..self.memory.slots())
            .map(|s| self.memory.queue(c, s))
            .collect();
        ndarray::concatenate(Axis(0), &views).expect("same D")
    }

    fn m_step(&mut self, c: usize, x: ArrayView2<'_, f32>, resp: ArrayView2<'_, f32>) {
        let taus = self.momenta(c);
        let share = m_step(&mut self.params, &self.valid, c, x, resp, taus);
        self.trace.record_floor_share(share);
    }

    /// The momenta of class `c`'s next update: τ, or its warm-up value
    /// ([`OnlineConfig::momentum_warmup`]) at the class's update count.
    fn momenta(&self, c: usize) -> Momenta {
        let (tm, tv) = (self.valid.mean_momentum, self.valid.var_momentum);
        if !self.config.momentum_warmup {
            return (tm, tv);
        }
        let t = self.class_updates[c];
        (warmup_momentum(tm, t), warmup_momentum(tv, t))
    }

    fn memory_only_m_step(&mut self, c: usize) {
        let m = self.valid.components;
        match self.config.memory.layout {
            MemoryLayout::PerComponent => {
                for slot in 0..m {
                    let q = self.memory.queue(c, slot).to_owned();
                    if q.nrows() == 0 {
                        continue;
                    }
                    let mut resp = Array2::zeros((q.nrows(), m));
                    resp.column_mut(slot).fill(1.0);
                    self.m_step(c, q.view(), resp.view());
                }
            }
            MemoryLayout::PerClass => {
                let q = self.class_memory(c);
                if q.nrows() > 0 {
                    for _ in 0..self.valid.em_loops {
                        let (resp, _, _) = e_step(q.view(), &self.params, c, &self.valid);
                        self.m_step(c, q.view(), resp.view());
                    }
                }
            }
        }
    }

    fn enqueue(
        &mut self,
        c: usize,
        idx: &[usize],
        resp: Option<&Array2<f32>>,
        batch: &OnlineBatch<'_>,
    ) -> usize {
        let m = self.valid.components;
        // The batch responsibilities exist whenever the layout or the sampling needs them
        // (see step 1 of `update`).
        let component =
            |row: usize| -> usize { argmax(resp.expect("responsibilities computed").row(row)) };
        let slot_of = |row: usize| -> usize {
            match self.config.memory.layout {
                MemoryLayout::PerClass => 0,
                MemoryLayout::PerComponent => component(row),
            }
        };
        // Rows (into idx/resp) grouped by destination slot.
        let mut picked: Vec<Vec<usize>> = vec![Vec::new(); self.memory.slots()];
        match self.config.memory.sampling {
            Sampling::RandomPerImage { per_image } => {
                let ppi = batch.pixels_per_image;
                let mut start = 0;
                while start < idx.len() {
                    let image = idx[start] / ppi;
                    let end = start
                        + idx[start..]
                            .iter()
                            .take_while(|&&p| p / ppi == image)
                            .count();
                    let rows: Vec<usize> = (start..end).collect();
                    for r in sample_random(&rows, per_image, &mut self.rng) {
                        picked[slot_of(r)].push(r);
                    }
                    start = end;
                }
            }
            Sampling::CorrectEvenlySpaced { max_per_slot } => {
                let mut by_comp: Vec<Vec<usize>> = vec![Vec::new(); m];
                for (r, &p) in idx.iter().enumerate() {
                    if batch.correct.is_none_or(|cf| cf[p]) {
                        by_comp[component(r)].push(r);
                    }
                }
                for rows in by_comp {
                    for r in sample_evenly_spaced(&rows, max_per_slot) {
                        picked[slot_of(r)].push(r);
                    }
                }
            }
        }
        let mut count = 0;
        for (slot, rows) in picked.into_iter().enumerate() {
            if rows.is_empty() {
                continue;
            }
            let pixels: Vec<usize> = rows.iter().map(|&r| idx[r]).collect();
            let feats = gather_rows(batch.features, &pixels);
            self.memory.push(c, slot, feats.view());
            count += rows.len();
        }
        count
    }

    /// Position of the sampling random stream (for exact checkpoint resume).
    pub fn rng_position(&self) -> u128 {
        self.rng.get_word_pos()
    }

    /// Restores [`Self::rng_position`].
    pub fn set_rng_position(&mut self, position: u128) {
        self.rng.set_word_pos(position);
    }

    /// The validated mixture configuration.
    pub fn gmm_config(&self) -> &ValidGmmConfig {
        &self.valid
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gmm::fit::e_step_blocks;
    use rand::Rng;

    #[test]
    fn warmup_momentum_follows_its_formula_and_stops_at_tau() {
        assert!((warmup_momentum(0.99, 0) - 0.1).abs() < 1e-7);
        assert!((warmup_momentum(0.99, 10) - 11.0 / 20.0).abs() < 1e-7);
        assert_eq!(warmup_momentum(0.99, 100_000), 0.99);
        assert_eq!(warmup_momentum(0.0, 3), 0.0);
        let mut last = 0.0;
        for t in 0..2000 {
            let tau = warmup_momentum(0.99, t);
            assert!(tau >= last && tau <= 0.99);
            last = tau;
        }
    }

    /// One class, one component, D = 2, τ = 0.99, floor 1, a memory of 8 (the paper's EM).
    fn one_class_config() -> OnlineConfig {
        let mut memory = crate::gmm::MemoryConfig::paper();
        memory.capacity = 8;
        OnlineConfig {
            gmm: GmmConfig {
                components: 1,
                dim: 2,
                mean_momentum: 0.99,
                var_momentum: 0.99,
                var_reg: 1.0,
                ..GmmConfig::paper(1)
            },
            memory,
            em_source: EmSource::BatchAndMemory,
            update_interval: 1,
            warm_start: false,
            momentum_warmup: false,
            prefill_batches: 0,
        }
    }

    /// The rows of `x` as one image whose every pixel is of class 0.
    fn one_image_of_class_0(x: &Array2<f32>) -> OnlineBatch<'_> {
        const CLASS_0: [u8; 64] = [0; 64];
        OnlineBatch {
            features: x.view(),
            labels: &CLASS_0[..x.nrows()],
            pixels_per_image: x.nrows(),
            correct: None,
        }
    }

    /// The pre-fill enqueues what an update would and fits nothing; the update after it
    /// reads the pre-filled memory.
    #[test]
    fn prefill_enqueues_and_fits_nothing() {
        let x = Array2::from_shape_vec((4, 2), vec![4.0f32, 4.0, 3.0, 5.0, 5.0, 3.0, 4.0, 4.0])
            .unwrap();
        let batch = one_image_of_class_0(&x);
        let fresh = || OnlineGmm::new(one_class_config(), GmmParams::standard(1, 1, 2), 0).unwrap();
        let mut gmm = fresh();
        assert_eq!(gmm.prefill(&batch).unwrap(), 4);
        let untouched = fresh();
        assert_eq!(gmm.params, untouched.params);
        assert_eq!((gmm.iteration, gmm.class_updates.clone()), (0, vec![0]));
        assert_eq!(gmm.memory.len(0, 0), 4);
        let y = Array2::from_shape_vec((4, 2), vec![0.0f32, 0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
            .unwrap();
        let next = OnlineBatch {
            features: y.view(),
            ..batch
        };
        let mut plain = fresh();
        plain.update(&next).unwrap();
        gmm.update(&next).unwrap();
        assert_eq!(gmm.iteration, 1);
        // the estimate averages the batch with the pre-filled features (mean 4, 4)
        assert!(gmm.params.means[[0, 0, 0]] > plain.params.means[[0, 0, 0]]);
        // a batch of another shape is refused as by `update`
        let odd = OnlineBatch {
            pixels_per_image: 3,
            ..batch
        };
        assert!(fresh().prefill(&odd).is_err());
    }

    /// With the warm-up, the first update moves a class 90% of the way to its estimate
    /// (τ_0 = 0.1) instead of 1% (τ = 0.99).
    #[test]
    fn warmup_makes_the_first_update_nearly_a_replacement() {
        let cfg = one_class_config();
        let x = Array2::from_shape_vec((4, 2), vec![4.0f32, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0])
            .unwrap();
        let batch = one_image_of_class_0(&x);
        let moved = |warmup: bool| {
            let mut c = cfg.clone();
            c.momentum_warmup = warmup;
            let mut gmm = OnlineGmm::new(c, GmmParams::standard(1, 1, 2), 0).unwrap();
            gmm.update(&batch).unwrap();
            gmm.params.means[[0, 0, 0]]
        };
        assert!((moved(false) - 0.01 * 4.0).abs() < 1e-5);
        assert!((moved(true) - 0.9 * 4.0).abs() < 1e-5);
    }

    /// Identical features have no variance: every estimated variance is the floor, a
    /// share of 1.
    #[test]
    fn the_trace_records_the_floor_share() {
        let cfg = one_class_config();
        let x = Array2::from_elem((4, 2), 4.0f32);
        let labels = [0u8; 4];
        let mut gmm = OnlineGmm::new(cfg, GmmParams::standard(1, 1, 2), 0).unwrap();
        assert_eq!(gmm.trace.floor_share_mean(), None);
        gmm.update(&OnlineBatch {
            features: x.view(),
            labels: &labels,
            pixels_per_image: 4,
            correct: None,
        })
        .unwrap();
        let share = gmm.trace.floor_share_mean().unwrap();
        assert!((share - 1.0).abs() < 1e-9, "{share}");
    }

    /// EM on batch ∪ memory as separate blocks equals EM on the rows copied together.
    #[test]
    fn em_on_blocks_equals_em_on_the_concatenation() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let cfg = GmmConfig {
            components: 3,
            dim: 4,
            mean_momentum: 0.5,
            var_momentum: 0.5,
            ..GmmConfig::paper(2)
        }
        .check()
        .unwrap();
        let params = GmmParams::random_unit(2, 3, 4, &mut rng);
        let a = Array2::from_shape_fn((37, 4), |_| rng.gen_range(-2.0f32..2.0));
        let b = Array2::from_shape_fn((150, 4), |_| rng.gen_range(-1.0f32..3.0));
        let joined = ndarray::concatenate(Axis(0), &[a.view(), b.view()]).unwrap();

        let (r_blocks, ll_blocks, _) = e_step_blocks(&[a.view(), b.view()], &params, 1, &cfg);
        assert_eq!(
            r_blocks,
            responsibilities_blocks(&[a.view(), b.view()], &params, 1, &cfg).0
        );
        let (r_joined, ll_joined, _) = e_step(joined.view(), &params, 1, &cfg);
        assert_eq!(r_blocks, r_joined);
        assert_eq!(ll_blocks, ll_joined);

        let mut p_blocks = params.clone();
        m_step_blocks(
            &mut p_blocks,
            &cfg,
            1,
            &[a.view(), b.view()],
            r_blocks.view(),
            (0.5, 0.5),
        );
        let mut p_joined = params.clone();
        m_step(
            &mut p_joined,
            &cfg,
            1,
            joined.view(),
            r_joined.view(),
            (0.5, 0.5),
        );
        for (x, y) in p_blocks.means.iter().zip(p_joined.means.iter()) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
        for (x, y) in p_blocks.variances.iter().zip(p_joined.variances.iter()) {
            assert!((x - y).abs() < 1e-6, "{x} vs {y}");
        }
        assert_ne!(p_blocks.means, params.means, "the class moved");
    }
}
