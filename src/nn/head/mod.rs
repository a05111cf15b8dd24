//! Dense classification heads behind one interface, [`Head`].
//!
//! A head reads the projected features (B, D, h, w) — D = 64 after the network's 1×1
//! projection — and turns them into per-class scores. The trainer's loop only ever talks to
//! this trait, so the GMM heads (issue 5) plug in without touching it:
//!
//! 1. `loss(feats, target)` — training forward: features *with tape*, labels at label
//!    resolution and at feature resolution; returns the scalar loss on the same tape. The
//!    default is cross-entropy on [`Head::logits_train`] up-sampled to label resolution; a GMM
//!    head can override it (e.g. add the reference code's component-level loss, computed on
//!    `feats` flattened with [`crate::ops::layout::to_pixels`]).
//! 2. `after_step(step)` — called after the optimiser step, without gradient, with the
//!    detached features of that step as (N, D) rows and their labels at feature resolution:
//!    where EM (E-step, M-step, memory update) runs. A head that declares
//!    `update_is_parameter_free` has it run during the backward pass instead (same result).
//! 3. `infer(feats)` — evaluation: class scores at feature resolution plus any head-specific
//!    anomaly scores (e.g. `likelihood` = −max_c log p(x|c)). MSP, entropy and max-logit are
//!    computed by the evaluator from the scores, for every head.
//! 4. `fitted_state` / `load_fitted_state` — state fitted outside SGD (means, variances,
//!    memory, counters), stored in checkpoints next to the trainable parameters. Trainable
//!    parameters go through [`Params`] like every other layer.
//!
//! The heads: [`softmax`] (the baseline), [`gmm`] (GMMSeg's generative head, both
//! flavours), [`disc_gmm`] (the discriminative GMM of Table 4) and [`posthoc`] (the
//! evaluation-only post-hoc GMM and Mahalanobis heads).

use std::collections::BTreeMap;

use ndarray::{Array2, Array3};

use crate::error::{GmmSegError, Result};
use crate::nn::loss::cross_entropy;
use crate::nn::resample::resize_bilinear;
use crate::nn::{Act, Params, Scalar, Tp};

pub mod adjust;
pub(crate) mod density;
pub mod disc_gmm;
pub mod gmm;
pub mod posthoc;
pub mod softmax;

pub use disc_gmm::{DiscGmmConfig, DiscGmmHead};
pub use gmm::{GmmHead, GmmHeadConfig};
pub use posthoc::{ClassFeatures, Mahalanobis, PosthocGmmHead, WithMahalanobis};
pub use softmax::SoftmaxHead;

/// Labels for a training step.
#[derive(Clone, Debug)]
pub struct HeadTarget<'a> {
    /// (B, H, W) at label (image) resolution, 255 = ignore.
    pub labels: &'a Array3<u8>,
    /// (B, h, w) at feature resolution (nearest down-sampling), 255 = ignore.
    pub labels_feat: &'a Array3<u8>,
}

/// What the trainer hands to [`Head::after_step`].
#[derive(Clone, Debug)]
pub struct StepFeatures<'a> {
    /// Training step that just finished (1-based: the number of optimiser steps taken).
    pub step: usize,
    /// Detached features of this step's batch, one row per pixel, row `(b·h + y)·w + x`.
    pub feats: &'a Array2<f32>,
    /// Labels at feature resolution, same row order, 255 = ignore.
    pub labels: &'a [u8],
    /// Rows per image (h·w), so that a head can sample per image.
    pub pixels_per_image: usize,
}

/// A head's evaluation output.
#[derive(Clone, Debug)]
pub struct HeadOutput {
    /// Class scores (B, C, h, w) whose softmax is p(c|x).
    pub logits: Act,
    /// Head-specific anomaly scores, each (B, 1, h, w), higher = more anomalous.
    pub anomaly: Vec<(String, Act)>,
}

/// Fitted (non-SGD) state: name → (shape, values).
pub type FittedState = BTreeMap<String, (Vec<usize>, Vec<f32>)>;

/// A dense classifier on projected features. See the module docs for the call order.
pub trait Head: Params + Send {
    /// Short name used in configs and on the command line (`softmax`, `gmmseg`, ...).
    fn kind(&self) -> &'static str;
    /// Number of classes C.
    fn num_classes(&self) -> usize;
    /// Feature dimension D it expects.
    fn feature_dim(&self) -> usize;

    /// Class scores with tape.
    ///
    /// # Shapes
    /// (B, D, h, w) → (B, C, h, w).
    fn logits_train(&mut self, feats: Act<Tp>) -> Result<Act<Tp>>;

    /// Training loss. Default: cross-entropy (ignore 255, mean over valid pixels) of
    /// [`Head::logits_train`] bilinearly up-sampled to label resolution.
    ///
    /// # Shapes
    /// feats (B, D, h, w); labels (B, H, W) → scalar.
    fn loss(&mut self, feats: Act<Tp>, target: &HeadTarget<'_>) -> Result<Scalar<Tp>> {
        let (_, h, w) = target.labels.dim();
        let logits = resize_bilinear(self.logits_train(feats)?, h, w)?;
        cross_entropy(logits, target.labels)
    }

    /// Hook after the optimiser step, without gradient (EM for GMM heads). Default: nothing.
    fn after_step(&mut self, _step: &StepFeatures<'_>) -> Result<()> {
        Ok(())
    }

    /// Batches the trainer passes to [`Head::prefill`] before the first step (the GMM heads'
    /// `online.prefill_batches`). Default 0.
    fn prefill_batches(&self) -> usize {
        0
    }

    /// Hook before the first step, without gradient, once per prefill batch (features of
    /// the initial network in evaluation mode, `step.step` = 0): fills the GMM heads'
    /// memory without fitting. Default: nothing.
    fn prefill(&mut self, _step: &StepFeatures<'_>) -> Result<()> {
        Ok(())
    }

    /// True when [`Head::after_step`] reads no trainable parameter (only the step's detached
    /// features and the head's fitted state), so that the trainer may run it during the
    /// backward pass with the same result. Default false: it runs after the optimiser step.
    fn update_is_parameter_free(&self) -> bool {
        false
    }

    /// True when [`Head::after_step`] wants the batch's features in *evaluation* mode
    /// (running batch-norm statistics, no dropout) — what inference will see — instead of
    /// the training forward's; the trainer then runs one more forward without tape.
    /// Default false.
    fn update_reads_eval_features(&self) -> bool {
        false
    }

    /// Evaluation forward.
    ///
    /// # Shapes
    /// (B, D, h, w) → logits (B, C, h, w), anomaly scores (B, 1, h, w).
    fn infer(&self, feats: Act) -> Result<HeadOutput>;

    /// E-step statistics of every EM update so far (GMM heads fitted by EM; `None` for
    /// heads without EM).
    fn em_trace(&self) -> Option<crate::gmm::EmTrace> {
        None
    }

    /// The class-conditional mixture this head classifies with, for figures and analysis
    /// (the GMM heads and the post-hoc GMM). Default: none.
    fn mixture(&self) -> Option<&crate::gmm::GmmParams> {
        None
    }

    /// Maps projected feature rows (N, D) into the space of [`Head::mixture`] (the
    /// reference flavour's LayerNorm + L2). Default: unchanged.
    fn to_mixture_space(&self, rows: ndarray::Array2<f32>) -> ndarray::Array2<f32> {
        rows
    }

    /// State fitted outside SGD, for checkpoints. Default: none.
    fn fitted_state(&self) -> FittedState {
        FittedState::new()
    }

    /// Restores [`Head::fitted_state`]. Default: accepts only an empty state.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] when the state does not belong to this head.
    fn load_fitted_state(&mut self, state: &FittedState) -> Result<()> {
        if let Some(k) = state.keys().next() {
            return Err(GmmSegError::input(
                "fitted head state",
                format!("unexpected entry `{k}` for a {} head", self.kind()),
            ));
        }
        Ok(())
    }
}
