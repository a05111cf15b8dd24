//! Experiment profiles (`tiny`, `quick`, `full`): the sizes of every study's trainings and
//! evaluations, checked once ([`ExperimentProfile::check`]), and the evaluation settings
//! they imply, which are part of every cache key.

use serde::{Deserialize, Serialize};

use super::tuning::{TunedPresets, TUNED_HEADS};
use crate::data::{open_dataset, Dataset, DatasetOptions};
use crate::error::{GmmSegError, Result};
use crate::train::config::{HeadConfig, HeadKind, TrainConfig, ValidTrainConfig};

/// Sizes of one experiment profile. Check with [`ExperimentProfile::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentProfile {
    /// Name, also the results sub-folder (`tiny`, `quick`, `full`).
    pub name: String,
    /// Base training configuration of every run (network, optimiser, steps, batch); each
    /// study changes only the head and the knob it ablates.
    pub train: TrainConfig,
    /// Square image size of the generated datasets (SynthScapes, DigitScenes).
    pub image_size: usize,
    /// Length of every split of generated datasets (`None`: each split's default length,
    /// e.g. SynthScapes 2000 train / 500 val / 300 anomaly). Only `tiny` sets it.
    pub split_len: Option<usize>,
    /// Validation images evaluated (0 = all).
    pub val_images: usize,
    /// Images of each anomaly split evaluated (0 = all).
    pub anomaly_images: usize,
    /// Default number of seeds (seeds are 0..n).
    pub seeds: usize,
    /// Training images whose features fit the post-hoc GMM and the Mahalanobis model.
    pub posthoc_images: usize,
    /// Pixels per class kept for those fits.
    pub posthoc_pixels_per_class: usize,
    /// EM iterations of the post-hoc GMM.
    pub posthoc_iterations: usize,
    /// Values of M in the `components` study.
    pub components: Vec<usize>,
    /// EM loops per iteration in the `em` study.
    pub em_loops: Vec<usize>,
    /// Batches timed for the inference throughput (after one warm-up batch).
    pub runtime_batches: usize,
    /// Optimiser steps for datasets that the base schedule (`train.steps`) cannot train:
    /// (dataset spec, steps). Empty in `tiny` and `quick`; `full` gives DigitScenes 3,000,
    /// because its softmax baseline separates digits from background within 100 steps but
    /// learns *which* digit only after about 1,200 (measured with `gmmseg train`, 3,000-step
    /// schedule: validation mIoU 0.086 — background only — up to step 700, 0.37 at 1,500,
    /// 0.65 at 3,000). A 2,000-step schedule (its learning rate decays sooner) was tried and
    /// left the softmax baseline at mIoU 0.16.
    pub dataset_steps: Vec<(String, usize)>,
    /// Trials per tuned head of the tuning study (`gmmseg ablate tuning`), the same for the
    /// softmax baseline and GMMSeg.
    #[serde(default)]
    pub tuning_trials: usize,
    /// The values that study chose, applied to every softmax and GMMSeg run of this profile
    /// (`None`: not tuned, the untuned defaults); see `experiments/tuned.rs`.
    #[serde(default)]
    pub tuned: Option<TunedPresets>,
}

impl ExperimentProfile {
    /// The test profile: 4 steps of a narrow network on 32×32 images, 4-image evaluation sets
    /// — seconds per study, numbers meaningless; it exists to run every code path.
    pub fn tiny() -> Self {
        let mut train = TrainConfig::quick();
        train.steps = 4;
        train.batch_size = 2;
        train.optim.warmup_steps = 1;
        train.net.backbone.stem = 8;
        train.net.backbone.widths = vec![8, 8, 16];
        train.net.decoder.channels = 16;
        train.net.decoder.aspp_channels = 8;
        train.net.decoder.low_channels = 8;
        train.net.feature_dim = 16;
        train.eval_every = 0;
        train.checkpoint_every = 0;
        ExperimentProfile {
            name: "tiny".into(),
            train,
            image_size: 32,
            split_len: Some(16),
            val_images: 4,
            anomaly_images: 4,
            seeds: 1,
            posthoc_images: 16,
            posthoc_pixels_per_class: 200,
            posthoc_iterations: 2,
            components: vec![1, 3],
            em_loops: vec![1, 2],
            runtime_batches: 1,
            dataset_steps: Vec::new(),
            tuning_trials: 2,
            tuned: super::tuned::presets("tiny"),
        }
    }

    /// The quick profile: 150 AdamW steps (half the `train` command's quick run, which the
    /// ten-minute budget for all studies needs; on SynthScapes the softmax baseline reaches
    /// 0.56 mIoU by then), 64×64 images, 64 validation and 64 images per anomaly split,
    /// 2 seeds, the paper's M ∈ {1, 3, 5, 10, 15} and 1/5/10 EM loops. Measured: `ablate all`
    /// trains 32 models in 396 s on SynthScapes (two cores shared with other jobs).
    ///
    /// Softmax and GMMSeg runs take the values the tuning study chose on the `tune` split
    /// with 24 trials per head (`data/results/quick/tuning/chosen.json`, `chosen.md`): softmax
    /// lr 0.031, weight decay 0.035; GMMSeg lr 0.027, weight decay 0.053, τ 0.9903, variance
    /// floor 2.46, warm start — both rates about 15× the untuned 2e-3, which 150 steps need.
    pub fn quick() -> Self {
        let mut train = TrainConfig::quick();
        train.steps = 150;
        train.eval_every = 0;
        train.checkpoint_every = 0;
        ExperimentProfile {
            name: "quick".into(),
            train,
            image_size: 64,
            split_len: None,
            val_images: 64,
            anomaly_images: 64,
            seeds: 2,
            posthoc_images: 64,
            posthoc_pixels_per_class: 5000,
            posthoc_iterations: 10,
            components: vec![1, 3, 5, 10, 15],
            em_loops: vec![1, 5, 10],
            runtime_batches: 8,
            dataset_steps: Vec::new(),
            tuning_trials: 24,
            tuned: super::tuned::presets("quick"),
        }
    }

    /// The full profile: 500 steps (3,000 on DigitScenes, see
    /// [`ExperimentProfile::dataset_steps`]), 200 validation and 300 images per anomaly
    /// split, 5 seeds (paired claims: two seeds decide nothing, t_{0.975,4} = 2.78), every M
    /// in 1..=15, post-hoc fits on 256 images with 20 EM iterations. DigitScenes keeps 3,000
    /// steps: with the tuned learning rates both heads still gain 0.08–0.14 tune mIoU from
    /// 1,500 to 3,000 (`data/results/full/tuning/step_budget.md`).
    ///
    /// Softmax and GMMSeg runs take the values the tuning study chose on the `tune` split of
    /// both datasets with 24 trials per head (`data/results/full/tuning/chosen.json`,
    /// `chosen.md`): softmax lr 0.026, weight decay 0.034; GMMSeg lr 0.048, weight decay
    /// 0.025, τ 0.9984, variance floor 0.32, warm start. Measured wall times per study are in
    /// `data/results/full/README.md`.
    pub fn full() -> Self {
        let mut train = TrainConfig::quick();
        train.steps = 500;
        train.optim.warmup_steps = 40;
        train.eval_every = 0;
        train.checkpoint_every = 0;
        ExperimentProfile {
            name: "full".into(),
            train,
            image_size: 64,
            split_len: None,
            val_images: 200,
            anomaly_images: 300,
            seeds: 5,
            posthoc_images: 256,
            posthoc_pixels_per_class: 20_000,
            posthoc_iterations: 20,
            components: (1..=15).collect(),
            em_loops: vec![1, 5, 10],
            runtime_batches: 16,
            dataset_steps: vec![("digitscenes".into(), 3000)],
            tuning_trials: 24,
            tuned: super::tuned::presets("full"),
        }
    }

    /// A profile by name.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming `--profile` for an unknown name.
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "tiny" => Ok(Self::tiny()),
            "quick" => Ok(Self::quick()),
            "full" => Ok(Self::full()),
            other => Err(GmmSegError::input(
                "--profile",
                format!("must be tiny, quick or full, got `{other}`"),
            )),
        }
    }

    /// Checks every field once.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] naming the first bad field.
    pub fn check(self) -> Result<ValidProfile> {
        let train = self.train.clone().check()?;
        if self.name.is_empty() || self.name.contains(['/', '\\']) || self.name.starts_with('.') {
            return Err(GmmSegError::config(
                "name",
                format!("must be a plain folder name, got `{}`", self.name),
            ));
        }
        if self.image_size < 16 {
            return Err(GmmSegError::config(
                "image_size",
                format!("must be ≥ 16, got {}", self.image_size),
            ));
        }
        if self.split_len == Some(0) {
            return Err(GmmSegError::config(
                "split_len",
                "must be ≥ 1 when set, got 0",
            ));
        }
        if self.seeds == 0 {
            return Err(GmmSegError::config("seeds", "must be ≥ 1, got 0"));
        }
        if self.posthoc_images == 0 || self.posthoc_pixels_per_class < 2 {
            return Err(GmmSegError::config(
                "posthoc_images/posthoc_pixels_per_class",
                "must be ≥ 1 image and ≥ 2 pixels per class",
            ));
        }
        if self.posthoc_iterations == 0 {
            return Err(GmmSegError::config(
                "posthoc_iterations",
                "must be ≥ 1, got 0",
            ));
        }
        if self.components.is_empty() || self.components.contains(&0) {
            return Err(GmmSegError::config(
                "components",
                format!("must be non-empty values ≥ 1, got {:?}", self.components),
            ));
        }
        if self.em_loops.is_empty() || self.em_loops.contains(&0) {
            return Err(GmmSegError::config(
                "em_loops",
                format!("must be non-empty values ≥ 1, got {:?}", self.em_loops),
            ));
        }
        if self.runtime_batches == 0 {
            return Err(GmmSegError::config("runtime_batches", "must be ≥ 1, got 0"));
        }
        for (dataset, steps) in &self.dataset_steps {
            let mut t = self.train.clone();
            t.steps = *steps;
            t.check().map_err(|e| {
                GmmSegError::config(
                    "dataset_steps",
                    format!("{steps} steps for `{dataset}`: {e}"),
                )
            })?;
        }
        if self.tuning_trials == 0 {
            return Err(GmmSegError::config("tuning_trials", "must be ≥ 1, got 0"));
        }
        if let Some(tuned) = &self.tuned {
            for head in TUNED_HEADS {
                let mut c = self.train.clone();
                c.head = HeadConfig::preset(head);
                tuned
                    .apply(&mut c)
                    .and_then(|()| c.check().map(|_| ()))
                    .map_err(|e| GmmSegError::config("tuned", format!("the {head} values: {e}")))?;
            }
        }
        Ok(ValidProfile {
            profile: self,
            train,
        })
    }
}

/// An [`ExperimentProfile`] that passed [`ExperimentProfile::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct ValidProfile {
    profile: ExperimentProfile,
    train: ValidTrainConfig,
}

impl ValidProfile {
    /// The checked profile.
    pub fn get(&self) -> &ExperimentProfile {
        &self.profile
    }

    /// The base training configuration for `dataset`: the profile's, with its
    /// [`ExperimentProfile::dataset_steps`] override if any.
    pub fn train_for(&self, dataset: &str) -> TrainConfig {
        let mut t = self.train.get().clone();
        if let Some((_, steps)) = self
            .profile
            .dataset_steps
            .iter()
            .find(|(d, _)| d == dataset)
        {
            t.steps = *steps;
        }
        t
    }
}

impl ValidProfile {
    /// The training configuration of a `head` run on `dataset` before any study's edit: the
    /// base of [`ValidProfile::train_for`], the head's preset and the profile's tuned values
    /// for that head ([`ExperimentProfile::tuned`]).
    ///
    /// # Errors
    /// As [`TunedPresets::apply`] (checked by [`ExperimentProfile::check`], so not expected).
    pub fn head_config(&self, dataset: &str, head: HeadKind) -> Result<TrainConfig> {
        let mut c = self.train_for(dataset);
        c.dataset = dataset.to_string();
        c.head = HeadConfig::preset(head);
        if let Some(t) = &self.profile.tuned {
            t.apply(&mut c)?;
        }
        Ok(c)
    }
}

/// The evaluation settings that, with the training config and the dataset, determine a
/// model's record (part of every cache key).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    /// Generated image size.
    pub image_size: usize,
    /// Split length override of generated datasets.
    pub split_len: Option<usize>,
    /// Validation images (0 = all).
    pub val_images: usize,
    /// Images per anomaly split (0 = all).
    pub anomaly_images: usize,
    /// Post-hoc / Mahalanobis fit: images, pixels per class, EM iterations.
    pub posthoc: (usize, usize, usize),
    /// Timed inference batches.
    pub runtime_batches: usize,
    /// Version of the evaluation code; bump when what a record holds changes.
    pub version: u32,
}

impl ValidProfile {
    /// The evaluation settings of this profile.
    pub fn eval_settings(&self) -> EvalSettings {
        let p = &self.profile;
        EvalSettings {
            image_size: p.image_size,
            split_len: p.split_len,
            val_images: p.val_images,
            anomaly_images: p.anomaly_images,
            posthoc: (
                p.posthoc_images,
                p.posthoc_pixels_per_class,
                p.posthoc_iterations,
            ),
            runtime_batches: p.runtime_batches,
            version: 1,
        }
    }
}

/// Opens split `split` of `dataset` with the profile's generated-image size and split length
/// (as the profile's runs do; also for checking a dataset spec before a run).
///
/// # Errors
/// Dataset errors naming the file or the spec.
pub fn open_split(
    profile: &ExperimentProfile,
    dataset: &str,
    split: &str,
) -> Result<Box<dyn Dataset>> {
    open_dataset(
        dataset,
        split,
        &DatasetOptions {
            size: Some(profile.image_size),
            len: profile.split_len,
            ..DatasetOptions::default()
        },
    )
}
