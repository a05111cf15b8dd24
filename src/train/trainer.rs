//! The training loop.
//!
//! # One iteration, in order (the only place this order is written down)
//! 1. Batch of step t: a pure function of (seed, t) ([`crate::data::batch::Sampler`]).
//! 2. Forward with tape: `feats = net.features(images)` (dropout seeded by (seed, t)); the
//!    detached copy of `feats` and the labels down-sampled to feature resolution (nearest)
//!    are kept for step 6.
//! 3. `loss = head.loss(feats, labels)` — for the softmax head, cross-entropy of the logits
//!    bilinearly **up-sampled to label resolution** (as mmseg does: every labelled pixel counts
//!    once and thin structures are not lost to label down-sampling).
//! 4. A non-finite loss stops training with [`GmmSegError::Diverged`] *before* any update or
//!    checkpoint, so the last checkpoint on disk stays the last good one.
//! 5. Backward, then the optimiser step with the scheduled learning rate (trainable state).
//! 6. `head.after_step(feats, labels_feat)` without gradient (fitted state: EM for GMM heads);
//!    a head that [reads evaluation-mode features](Head::update_reads_eval_features) gets
//!    the batch's features from a second forward in evaluation mode, taken before step 5.
//!    A head whose update reads no trainable parameter ([`Head::update_is_parameter_free`]:
//!    the paper-flavour GMMSeg head) runs it on a second thread *during* step 5's backward:
//!    the update reads only the detached features and the head's fitted state, the backward
//!    only the tape's snapshot of that state taken at the forward, so the result is the
//!    same bit for bit (tested) and the EM's wall time hides behind the backward's serial
//!    parts. [`Trainer::overlap_head_update`] switches this off.
//! 7. t ← t + 1; periodic evaluation and checkpoint.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dfdx::prelude::*;
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::checkpoint;
use super::config::{learning_rate, HeadConfig, TrainConfig, ValidTrainConfig};
use super::eval::{evaluate, evaluate_with, EvalOptions, EvalReport};
use super::optim::Optimizer;
use crate::data::batch::{make_batch, Sampler};
use crate::data::{Batch, Dataset};
use crate::error::{GmmSegError, Result};
use crate::nn::head::{DiscGmmHead, GmmHead, Head, HeadTarget, SoftmaxHead, StepFeatures};
use crate::nn::resample::resize_labels_nearest;
use crate::nn::segnet::{SegModel, SegNet};
use crate::nn::{act_from_array, to_host, Ctx, Dev};

/// What one step reports.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Step index (0-based) that was just taken.
    pub step: usize,
    /// Training loss of the batch.
    pub loss: f32,
    /// Learning rate used.
    pub lr: f64,
    /// Seconds spent in the head's no-gradient update (EM for GMM heads; ~0 for softmax).
    pub head_update_s: f64,
}

/// Progress passed to the callback of [`Trainer::fit`] after every step.
#[derive(Clone, Debug)]
pub struct Progress<'a> {
    /// Steps taken so far.
    pub step: usize,
    /// Total steps of the run.
    pub steps: usize,
    /// Loss of the last step.
    pub loss: f32,
    /// Learning rate of the last step.
    pub lr: f64,
    /// Seconds since `fit` started.
    pub elapsed_s: f64,
    /// An evaluation, on the steps where one ran.
    pub eval: Option<&'a EvalReport>,
    /// E-step statistics of the head's EM so far (GMM heads fitted by EM).
    pub em: Option<crate::gmm::EmTrace>,
}

/// A progress callback printing one compact line every `n` steps (and at every evaluation),
/// for notebooks where a progress bar does not render.
pub fn print_every(n: usize) -> impl FnMut(&Progress<'_>) {
    let n = n.max(1);
    move |p| {
        if p.step % n == 0 || p.step == p.steps || p.eval.is_some() {
            let eval = p
                .eval
                .map(|e| format!("  val mIoU {:.3} acc {:.3}", e.miou, e.acc))
                .unwrap_or_default();
            let em = p.em.as_ref().map(em_line).unwrap_or_default();
            println!(
                "step {:>5}/{}  loss {:.4}  lr {:.2e}  {:.1}s{em}{eval}",
                p.step, p.steps, p.loss, p.lr, p.elapsed_s
            );
        }
    }
}

/// `  EM marg.err 0.0008 (max 0.0100) max-resp 0.62`: the last EM update's marginal error
/// (the most over training) and its mean max responsibility, for the training log.
pub fn em_line(t: &crate::gmm::EmTrace) -> String {
    if t.updates == 0 {
        return String::new();
    }
    format!(
        "  EM marg.err {:.4} (max {:.4}) max-resp {:.2}",
        t.last.max_marginal_error, t.marginal_error_max, t.last.mean_max_responsibility
    )
}

/// Whether any image of `ds` has a pixel whose label is not the ignore label (stops at the
/// first one, so an ordinary dataset costs one image).
/// Detached (B, D, H, W) features as one row per pixel, row `(b·h + y)·w + x`: what a
/// head's no-gradient update reads.
fn feature_rows(feats: &crate::ops::tensor::Act) -> Array2<f32> {
    let (b, d, h, w) = *feats.shape();
    Array2::from_shape_vec(
        (b * h * w, d),
        crate::ops::layout::nchw_to_rows(&to_host(feats), (b, d, h, w)),
    )
    .expect("shape matches")
}

fn has_labelled_pixel(ds: &dyn Dataset) -> Result<bool> {
    for i in 0..ds.len() {
        if ds
            .get(i)?
            .label
            .iter()
            .any(|&l| l != crate::data::IGNORE_LABEL)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Builds the head the config describes, bound to the dataset's C and the network's D.
fn build_head(
    cfg: &TrainConfig,
    dev: &Dev,
    classes: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Box<dyn Head>> {
    let dim = cfg.net.feature_dim;
    Ok(match &cfg.head {
        HeadConfig::Softmax => Box::new(SoftmaxHead::new(dev, "head", dim, classes, rng)?),
        HeadConfig::Gmmseg(g) => Box::new(GmmHead::new(
            dev,
            "gmmseg",
            g.clone().bind(classes, dim),
            rng,
        )?),
        HeadConfig::GmmsegRef(g) => Box::new(GmmHead::new(
            dev,
            "gmmseg-ref",
            g.clone().bind(classes, dim),
            rng,
        )?),
        HeadConfig::DiscGmm(d) => Box::new(DiscGmmHead::new(dev, classes, d.components, dim, rng)?),
    })
}

/// Owns the model (trainable network + head), the optimiser state and the step counter.
pub struct Trainer {
    /// The checked configuration.
    pub config: ValidTrainConfig,
    /// Network and head.
    pub model: SegModel,
    /// Optimiser state.
    pub optimizer: Optimizer,
    /// Optimiser steps taken.
    pub step: usize,
    /// Run directory for checkpoints (none: no checkpoints).
    pub out_dir: Option<PathBuf>,
    /// Last evaluation.
    pub last_eval: Option<EvalReport>,
    /// Run a parameter-free head update concurrently with the backward pass (default true;
    /// see the module docs, step 6). Results do not depend on it.
    pub overlap_head_update: bool,
    dev: Dev,
}

impl Trainer {
    /// A fresh trainer for `num_classes` classes, weights drawn from the config's seed.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] for zero classes or a bad network config.
    pub fn new(config: ValidTrainConfig, num_classes: usize) -> Result<Self> {
        let cfg = config.get();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let dev = Dev::default();
        let net = SegNet::new(&dev, &cfg.net, &mut rng)?;
        let head = build_head(cfg, &dev, num_classes, &mut rng)?;
        Self::assemble(config, net, head, dev)
    }

    /// A fresh trainer with a caller-built head (a head type that [`super::config::HeadKind`] does not list
    /// yet, e.g. while developing one). The network is drawn from the config's seed exactly as
    /// in [`Trainer::new`]. Note that the config hash only knows `config.head`, so checkpoints
    /// cannot tell two custom heads apart beyond their parameter names and shapes.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] for a bad network config or a head whose feature
    /// dimension differs from `net.feature_dim`.
    pub fn with_head(config: ValidTrainConfig, head: Box<dyn Head>) -> Result<Self> {
        let cfg = config.get();
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let dev = Dev::default();
        let net = SegNet::new(&dev, &cfg.net, &mut rng)?;
        Self::assemble(config, net, head, dev)
    }

    fn assemble(
        config: ValidTrainConfig,
        net: SegNet,
        head: Box<dyn Head>,
        dev: Dev,
    ) -> Result<Self> {
        if head.feature_dim() != config.get().net.feature_dim {
            return Err(GmmSegError::config(
                "net.feature_dim",
                format!(
                    "is {}, but the {} head expects {}",
                    config.get().net.feature_dim,
                    head.kind(),
                    head.feature_dim()
                ),
            ));
        }
        Ok(Trainer {
            config,
            model: SegModel { net, head },
            optimizer: Optimizer::new(),
            step: 0,
            out_dir: None,
            last_eval: None,
            overlap_head_update: true,
            dev,
        })
    }

    /// Writes checkpoints into `dir`; if `dir` already holds one, resumes from it (refusing a
    /// checkpoint of another configuration with [`GmmSegError::Mismatch`]).
    ///
    /// # Errors
    /// I/O errors, [`GmmSegError::Mismatch`], [`GmmSegError::File`] for a corrupt checkpoint.
    pub fn with_out_dir(mut self, dir: &Path) -> Result<Self> {
        if dir.join(checkpoint::TENSORS_FILE).exists() {
            let loaded = checkpoint::read(dir)?;
            self.step =
                checkpoint::restore(&loaded, &self.config, &mut self.model, &mut self.optimizer)?;
            self.last_eval = checkpoint::read_meta(dir)
                .ok()
                .filter(|m| m.step == self.step)
                .and_then(|m| m.last_eval);
            if loaded.config_hash != self.config.hash() {
                // an extension of the finished run: its configuration is the new one
                checkpoint::write_atomic(
                    &dir.join(checkpoint::CONFIG_FILE),
                    self.config.to_json().as_bytes(),
                )?;
            }
        } else {
            std::fs::create_dir_all(dir).map_err(|e| GmmSegError::io(dir, e))?;
            checkpoint::write_atomic(
                &dir.join(checkpoint::CONFIG_FILE),
                self.config.to_json().as_bytes(),
            )?;
        }
        self.out_dir = Some(dir.to_path_buf());
        Ok(self)
    }

    /// Loads a trained model from a run directory for evaluation, using the config stored in
    /// the checkpoint.
    ///
    /// # Errors
    /// As [`checkpoint::read`] and [`checkpoint::load_params`]; config errors.
    pub fn from_checkpoint(dir: &Path, num_classes: usize) -> Result<Self> {
        let loaded = checkpoint::read(dir)?;
        let config = loaded.config.clone().check()?;
        let mut t = Trainer::new(config, num_classes)?;
        t.step = checkpoint::restore(&loaded, &t.config.clone(), &mut t.model, &mut t.optimizer)?;
        Ok(t)
    }

    /// As [`Trainer::from_checkpoint`], for a head built by the caller (see
    /// [`Trainer::with_head`]).
    ///
    /// # Errors
    /// As [`Trainer::from_checkpoint`].
    pub fn from_checkpoint_with_head(dir: &Path, head: Box<dyn Head>) -> Result<Self> {
        let loaded = checkpoint::read(dir)?;
        let config = loaded.config.clone().check()?;
        let mut t = Trainer::with_head(config, head)?;
        t.step = checkpoint::restore(&loaded, &t.config.clone(), &mut t.model, &mut t.optimizer)?;
        Ok(t)
    }

    /// One training iteration on `batch` (see the module docs for the order of events).
    ///
    /// # Errors
    /// [`GmmSegError::Diverged`] for a non-finite loss or gradient; shape/label errors.
    pub fn train_step(&mut self, batch: &Batch) -> Result<StepStats> {
        let cfg = self.config.get();
        let step = self.step;
        let lr = learning_rate(&cfg.optim, step, cfg.steps);
        let x = act_from_array(&self.dev, &batch.images);
        let grads = Optimizer::alloc_grads(&self.model)?;
        let mut ctx = Ctx::train(cfg.seed.wrapping_mul(1_000_003).wrapping_add(step as u64));
        let feats = self.model.net.features(x.traced(grads), &mut ctx)?;
        let (feats, twin) = crate::nn::fork(feats);
        let (_, _, h, w) = *twin.shape();
        let labels_feat = resize_labels_nearest(&batch.labels, h, w);
        let loss = self.model.head.loss(
            feats,
            &HeadTarget {
                labels: &batch.labels,
                labels_feat: &labels_feat,
            },
        )?;
        let loss_value = loss.array();
        if !loss_value.is_finite() {
            return Err(GmmSegError::Diverged {
                step,
                detail: format!("loss is {loss_value} (lr {lr:.3e}); the last checkpoint was kept"),
            });
        }
        // detached features as (N, D) rows for the head's no-gradient update: the training
        // forward's, or the same batch again in evaluation mode when the head asks for it
        // (before the optimiser step, so with the weights that made the loss)
        let update_feats = if self.model.head.update_reads_eval_features() {
            let x = act_from_array(&self.dev, &batch.images);
            self.model.net.features(x, &mut Ctx::eval())?
        } else {
            twin
        };
        let hw = h * w;
        let rows = feature_rows(&update_feats);
        let labels_rows: Vec<u8> = labels_feat.iter().copied().collect();
        let step_features = StepFeatures {
            step: step + 1,
            feats: &rows,
            labels: &labels_rows,
            pixels_per_image: hw,
        };
        let timed_update = |head: &mut Box<dyn Head>| {
            let started = Instant::now();
            head.after_step(&step_features)
                .map(|()| started.elapsed().as_secs_f64())
        };
        let overlap = self.overlap_head_update && self.model.head.update_is_parameter_free();
        let (grads, early_update) = if overlap {
            let head = &mut self.model.head;
            std::thread::scope(|scope| {
                let update = scope.spawn(|| timed_update(head));
                let grads = loss.backward();
                let update = update
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (grads, Some(update))
            })
        } else {
            (loss.backward(), None)
        };
        self.optimizer
            .step(&cfg.optim, &mut self.model, &grads, lr)
            .map_err(|e| match e {
                GmmSegError::NonFinite { what, .. } => GmmSegError::Diverged {
                    step,
                    detail: format!("{what} is not finite; the last checkpoint was kept"),
                },
                other => other,
            })?;
        drop(grads);
        let head_update_s = match early_update {
            Some(update) => update?,
            None => timed_update(&mut self.model.head)?,
        };
        self.step += 1;
        Ok(StepStats {
            step,
            loss: loss_value,
            lr,
            head_update_s,
        })
    }

    /// Fills the head's memory before the first step ([`Head::prefill`]) from the head's
    /// `prefill_batches()` batches: the batches of steps 0, 1, … of the schedule, seen by
    /// the initial network in evaluation mode (a training-mode forward would move the
    /// batch-norm statistics before the first step). Nothing is trained or fitted.
    fn prefill(&mut self, train: &dyn Dataset, sampler: &Sampler) -> Result<()> {
        for k in 0..self.model.head.prefill_batches() {
            let batch = make_batch(train, &sampler.plan(k)?)?;
            let x = act_from_array(&self.dev, &batch.images);
            let feats = self.model.net.features(x, &mut Ctx::eval())?;
            let (_, _, h, w) = *feats.shape();
            let labels: Vec<u8> = resize_labels_nearest(&batch.labels, h, w)
                .iter()
                .copied()
                .collect();
            self.model.head.prefill(&StepFeatures {
                step: 0,
                feats: &feature_rows(&feats),
                labels: &labels,
                pixels_per_image: h * w,
            })?;
        }
        Ok(())
    }

    /// Trains until `config.steps`, evaluating on `val` and checkpointing as configured, and
    /// calling `progress` after every step.
    ///
    /// # Errors
    /// As [`Trainer::train_step`], dataset errors, I/O errors of checkpoints.
    pub fn fit(
        &mut self,
        train: &dyn Dataset,
        val: Option<&dyn Dataset>,
        progress: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<Option<EvalReport>> {
        let cfg = self.config.get().clone();
        if train.is_empty() {
            return Err(GmmSegError::empty("training set", train.name()));
        }
        if train.num_classes() != self.model.head.num_classes() {
            return Err(GmmSegError::input(
                "training set",
                format!(
                    "{} classes, model has {}",
                    train.num_classes(),
                    self.model.head.num_classes()
                ),
            ));
        }
        let start = Instant::now();
        let mut first_batch = true;
        let sampler = Sampler::new(train, cfg.sampler, cfg.batch_size, cfg.seed, cfg.flip)?;
        if self.step == 0 {
            self.prefill(train, &sampler)?;
        }
        while self.step < cfg.steps {
            let batch = make_batch(train, &sampler.plan(self.step)?)?;
            // a first batch without a labelled pixel: is there one anywhere? (scanned only
            // then, so an ordinary run reads nothing extra)
            if std::mem::take(&mut first_batch)
                && batch.labels.iter().all(|&l| l == crate::data::IGNORE_LABEL)
                && !has_labelled_pixel(train)?
            {
                return Err(GmmSegError::empty(
                    format!("training set {}", train.name()),
                    "no labelled pixel: every label is 255 (ignore), so there is nothing to train on",
                ));
            }
            let stats = self.train_step(&batch)?;
            let last = self.step == cfg.steps;
            let mut eval = None;
            if let Some(val) = val {
                if last || (cfg.eval_every > 0 && self.step.is_multiple_of(cfg.eval_every)) {
                    // progress evaluations need no intervals
                    eval = Some(evaluate_with(
                        &mut self.model,
                        val,
                        cfg.batch_size,
                        cfg.eval_images,
                        &EvalOptions::without_intervals(),
                    )?);
                    self.last_eval = eval.clone();
                }
            }
            if last || (cfg.checkpoint_every > 0 && self.step.is_multiple_of(cfg.checkpoint_every))
            {
                self.save()?;
            }
            progress(&Progress {
                step: self.step,
                steps: cfg.steps,
                loss: stats.loss,
                lr: stats.lr,
                elapsed_s: start.elapsed().as_secs_f64(),
                eval: eval.as_ref(),
                em: self.model.head.em_trace(),
            });
        }
        Ok(self.last_eval.clone())
    }

    /// Writes a checkpoint to the run directory (no-op without one).
    ///
    /// # Errors
    /// I/O errors.
    pub fn save(&self) -> Result<()> {
        match &self.out_dir {
            Some(dir) => checkpoint::save(
                dir,
                &self.config,
                &self.model,
                &self.optimizer,
                self.step,
                self.last_eval.as_ref(),
            ),
            None => Ok(()),
        }
    }

    /// Evaluates the current model on `ds` (all images when `max_images` is 0).
    ///
    /// # Errors
    /// As [`evaluate`].
    pub fn evaluate(&mut self, ds: &dyn Dataset, max_images: usize) -> Result<EvalReport> {
        let b = self.config.get().batch_size;
        evaluate(&mut self.model, ds, b, max_images)
    }
}
