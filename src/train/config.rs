//! Training configuration: every hyper-parameter with its default and where it comes from,
//! checked once by [`TrainConfig::check`] into a [`ValidTrainConfig`] that the trainer
//! trusts afterwards, plus the `quick` and `full` profiles.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::data::batch::SamplerKind;
use crate::error::{GmmSegError, Result};
use crate::gmm::{EStep, SinkhornConfig};
use crate::nn::decoder::DecoderKind;
use crate::nn::head::{DiscGmmConfig, GmmHeadConfig};
use crate::nn::segnet::NetConfig;

/// Most components per class a training run accepts: C · M · D parameters and a memory of
/// C · M queues must fit a laptop (the paper ablates M = 1..15).
pub const MAX_COMPONENTS: usize = 1024;

/// Which head to train.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum HeadKind {
    /// Linear 1×1 classifier + softmax (the baseline).
    Softmax,
    /// GMMSeg, paper flavour: generative GMM head fitted by EM, network by cross-entropy.
    Gmmseg,
    /// GMMSeg, reference-code flavour (LayerNorm + L2 features, class LayerNorm, hard
    /// Sinkhorn, per-component queues, component loss).
    GmmsegRef,
    /// The same mixture trained discriminatively by SGD, no EM (the paper's Table 4).
    DiscGmm,
}

impl std::fmt::Display for HeadKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeadKind::Softmax => "softmax",
            HeadKind::Gmmseg => "gmmseg",
            HeadKind::GmmsegRef => "gmmseg-ref",
            HeadKind::DiscGmm => "disc-gmm",
        })
    }
}

/// E-step of the GMM heads (command-line `--em`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EmKind {
    /// Soft responsibilities, weights re-estimated.
    Vanilla,
    /// Equipartition (entropic optimal transport), weights fixed at 1/M.
    Sinkhorn,
}

impl EmKind {
    /// The kind of an E-step configuration.
    pub fn of(e: &EStep) -> Self {
        match e {
            EStep::Vanilla => EmKind::Vanilla,
            EStep::Sinkhorn(_) => EmKind::Sinkhorn,
        }
    }
}

/// Components per class M of the GMM heads' presets: the paper's 5 (ablated over 1..15).
pub const DEFAULT_COMPONENTS: usize = 5;

/// The head and its whole configuration — the `model` half of the training tree, as
/// burn's `TrainingConfig { model, optimizer }`. For the GMM heads it holds every value of
/// the mixture, its EM and its memory, so that a run's `config.json` (and its cache key)
/// states what was trained; C and D are left unbound (the dataset and `net.feature_dim`
/// fix them, [`GmmHeadConfig::bind`]).
///
/// Presets: [`HeadConfig::preset`], one per flavour ([`GmmHeadConfig::paper`],
/// [`GmmHeadConfig::reference_code`]); edits: [`HeadConfig::edit`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HeadConfig {
    /// Linear 1×1 classifier + softmax (the baseline).
    Softmax,
    /// GMMSeg, paper flavour.
    Gmmseg(GmmHeadConfig),
    /// GMMSeg, reference-code flavour.
    GmmsegRef(GmmHeadConfig),
    /// The same mixture trained discriminatively by SGD, no EM.
    DiscGmm(DiscGmmConfig),
}

impl HeadConfig {
    /// The preset of `kind`, with [`DEFAULT_COMPONENTS`] components for the GMM heads.
    pub fn preset(kind: HeadKind) -> Self {
        match kind {
            HeadKind::Softmax => HeadConfig::Softmax,
            HeadKind::Gmmseg => HeadConfig::Gmmseg(GmmHeadConfig::paper(DEFAULT_COMPONENTS)),
            HeadKind::GmmsegRef => {
                HeadConfig::GmmsegRef(GmmHeadConfig::reference_code(DEFAULT_COMPONENTS))
            }
            HeadKind::DiscGmm => HeadConfig::DiscGmm(DiscGmmConfig {
                components: DEFAULT_COMPONENTS,
            }),
        }
    }

    /// Which head this is.
    pub fn kind(&self) -> HeadKind {
        match self {
            HeadConfig::Softmax => HeadKind::Softmax,
            HeadConfig::Gmmseg(_) => HeadKind::Gmmseg,
            HeadConfig::GmmsegRef(_) => HeadKind::GmmsegRef,
            HeadConfig::DiscGmm(_) => HeadKind::DiscGmm,
        }
    }

    /// The generative head's configuration (`gmmseg`, `gmmseg-ref`), else `None`.
    pub fn gmm(&self) -> Option<&GmmHeadConfig> {
        match self {
            HeadConfig::Gmmseg(g) | HeadConfig::GmmsegRef(g) => Some(g),
            _ => None,
        }
    }

    /// The generative head's configuration, to edit (`gmmseg`, `gmmseg-ref`), else `None`.
    pub fn gmm_mut(&mut self) -> Option<&mut GmmHeadConfig> {
        match self {
            HeadConfig::Gmmseg(g) | HeadConfig::GmmsegRef(g) => Some(g),
            _ => None,
        }
    }

    /// Components per class M of a GMM head, `None` for softmax.
    pub fn components(&self) -> Option<usize> {
        match self {
            HeadConfig::Softmax => None,
            HeadConfig::Gmmseg(g) | HeadConfig::GmmsegRef(g) => Some(g.online.gmm.components),
            HeadConfig::DiscGmm(d) => Some(d.components),
        }
    }

    /// Applies `edits` to this head, in the one order in which an explicit value wins over
    /// a flavour knob's companion settings: the knobs first, then M, the E-step, the EM
    /// loops, the variance floor and τ. Each value is written once, here.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] naming the edit (`components`, `em`, …) when this head
    /// has no such setting: the softmax head has none, the discriminative GMM only M. An
    /// edit is refused rather than stored unused.
    pub fn edit(&mut self, edits: &HeadEdits) -> Result<()> {
        let kind = self.kind();
        if let Some(name) = edits.first_set(kind) {
            return Err(GmmSegError::config(
                name,
                format!("does not apply to the {kind} head"),
            ));
        }
        match self {
            HeadConfig::Softmax => {}
            HeadConfig::DiscGmm(d) => {
                if let Some(m) = edits.components {
                    d.components = m;
                }
            }
            HeadConfig::Gmmseg(g) | HeadConfig::GmmsegRef(g) => {
                edits.knobs.apply(g);
                let gmm = &mut g.online.gmm;
                if let Some(m) = edits.components {
                    gmm.components = m;
                }
                match edits.em {
                    Some(EmKind::Vanilla) => gmm.e_step = EStep::Vanilla,
                    Some(EmKind::Sinkhorn) if gmm.e_step == EStep::Vanilla => {
                        gmm.e_step = EStep::Sinkhorn(SinkhornConfig::default())
                    }
                    _ => {}
                }
                if let Some(l) = edits.em_loops {
                    gmm.em_loops = l;
                }
                if let Some(r) = edits.var_reg {
                    gmm.var_reg = r;
                }
                if let Some(tau) = edits.momentum {
                    g.set_momentum(tau);
                }
            }
        }
        Ok(())
    }

    /// Checks every field of the head for a network of `feature_dim` features; an error
    /// names the field by its path in the head (`online.gmm.mean_momentum`).
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] naming the first bad field.
    pub fn check(&self, feature_dim: usize) -> Result<()> {
        let components = |m: usize, field: &str| {
            if m == 0 || m > MAX_COMPONENTS {
                return Err(GmmSegError::config(
                    field,
                    format!("must be in 1..={MAX_COMPONENTS} (the paper ablates 1..15), got {m}"),
                ));
            }
            Ok(())
        };
        match self {
            HeadConfig::Softmax => Ok(()),
            HeadConfig::DiscGmm(d) => components(d.components, "components"),
            HeadConfig::Gmmseg(g) | HeadConfig::GmmsegRef(g) => {
                let shape = &g.online.gmm;
                for (field, n) in [("num_classes", shape.num_classes), ("dim", shape.dim)] {
                    if n != 0 {
                        return Err(GmmSegError::config(
                            format!("online.gmm.{field}"),
                            format!(
                                "must be left unbound (0) in a training config: the dataset \
                                 and net.feature_dim set it, got {n}"
                            ),
                        ));
                    }
                }
                components(shape.components, "online.gmm.components")?;
                // any class count checks the hyper-parameters; the trainer binds the real one
                g.clone().bind(1, feature_dim).check()
            }
        }
    }
}

/// The edits a command line or a study makes to a head preset ([`HeadConfig::edit`]);
/// `None` keeps the preset's value. A working set, not part of the saved configuration.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeadEdits {
    /// Components per class M (`--components`).
    pub components: Option<usize>,
    /// E-step (`--em`): `vanilla` replaces the preset's Sinkhorn, `sinkhorn` keeps it.
    pub em: Option<EmKind>,
    /// EM loops per training iteration (`--em-loops`).
    pub em_loops: Option<usize>,
    /// Momentum τ of means and variances (`--gmm-momentum`).
    pub momentum: Option<f32>,
    /// Variance regularisation (`--var-reg`).
    pub var_reg: Option<f32>,
    /// Reference-code differences switched on or off one at a time.
    pub knobs: FlavourOverrides,
}

impl HeadEdits {
    /// The first edit set that `kind` has no setting for, by its field name.
    fn first_set(&self, kind: HeadKind) -> Option<&'static str> {
        let components = [("components", self.components.is_some())];
        let em = [
            ("em", self.em.is_some()),
            ("em_loops", self.em_loops.is_some()),
            ("momentum", self.momentum.is_some()),
            ("var_reg", self.var_reg.is_some()),
            ("knobs", !self.knobs.is_empty()),
        ];
        let refused: Vec<(&'static str, bool)> = match kind {
            HeadKind::Softmax => components.into_iter().chain(em).collect(),
            HeadKind::DiscGmm => em.into_iter().collect(),
            HeadKind::Gmmseg | HeadKind::GmmsegRef => Vec::new(),
        };
        refused.into_iter().find(|(_, set)| *set).map(|(n, _)| n)
    }
}

/// The reference code's departures from the paper (README, "Paper flavour vs reference-code
/// flavour"), each settable on its own;
/// `None` keeps the flavour's value. Unset fields are left out of the serialised config.
///
/// Each knob switches on one difference **with the companion settings without which it
/// means nothing** (named in its doc), so that a row of the `flavours` study measures the
/// difference, not a broken combination. All knobs together, plus the reference code's
/// momentum τ = 0.999, give exactly the reference-code head (a test checks it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FlavourOverrides {
    /// LayerNorm + L2 normalisation of the features, with mean directions (reference: on).
    /// Companion: the reference code's variance floor 0.01 — features on the unit sphere in
    /// D = 64 have per-channel variances near 1/D, so the paper preset's floor of 1.0 would
    /// make every density flat (measured: ECE 0.57 on SynthScapes, mIoU 0.002 on
    /// DigitScenes). An explicit `--var-reg` still wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feature_norm: Option<bool>,
    /// LayerNorm with a per-class affine on the class scores (reference: on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_norm: Option<bool>,
    /// Weight of the component-level cross-entropy with the E-step's targets (reference:
    /// 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component_loss_weight: Option<f32>,
    /// Hard (arg-max) Sinkhorn assignments (reference: on). Costs are rescaled in both
    /// flavours, so this changes the assignment only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hard_assignment: Option<bool>,
    /// The reference code's fixed 3 Sinkhorn iterations instead of iterating to the 1e-3
    /// marginal tolerance (reference: on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_sinkhorn_iterations: Option<bool>,
    /// The reference code's EM schedule: per-component queues of ≤ 20 correctly classified
    /// pixels per batch, EM from the memory only, every 5 iterations, variances replaced
    /// (momentum 0) (reference: on). Companion: the queues start full of random unit
    /// vectors only when the features are L2-normalised too (`feature_norm`); on
    /// unnormalised features such vectors are no sample of anything, so the queues start
    /// empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_memory: Option<bool>,
    /// Initialise a class from its first batch instead of a random start (off in both
    /// flavours; see `OnlineConfig::warm_start`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start: Option<bool>,
}

impl FlavourOverrides {
    /// Whether no knob is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Every reference-code difference switched on (with the warm start left alone).
    pub fn all_reference() -> Self {
        FlavourOverrides {
            feature_norm: Some(true),
            class_norm: Some(true),
            component_loss_weight: Some(0.01),
            hard_assignment: Some(true),
            fixed_sinkhorn_iterations: Some(true),
            reference_memory: Some(true),
            warm_start: None,
        }
    }

    /// Applies the set knobs, with their companions, to a head configuration.
    pub fn apply(&self, g: &mut GmmHeadConfig) {
        use crate::gmm::{Assignment, EmSource, MeanEstimator, MemoryInit};
        let m = g.online.gmm.components;
        let reference = GmmHeadConfig::reference_code(m);
        let paper = GmmHeadConfig::paper(m);
        if let Some(on) = self.feature_norm {
            g.feature_norm = on;
            g.online.gmm.mean_estimator = if on {
                MeanEstimator::Direction
            } else {
                MeanEstimator::Euclidean
            };
            g.online.gmm.var_reg = if on {
                reference.online.gmm.var_reg
            } else {
                paper.online.gmm.var_reg
            };
        }
        if let Some(on) = self.class_norm {
            g.class_norm = on;
        }
        if let Some(w) = self.component_loss_weight {
            g.component_loss_weight = w;
        }
        if let Some(on) = self.hard_assignment {
            g.online.gmm.assignment = if on {
                Assignment::Hard
            } else {
                Assignment::Soft
            };
        }
        if let Some(on) = self.fixed_sinkhorn_iterations {
            if let EStep::Sinkhorn(s) = &mut g.online.gmm.e_step {
                let src = if on {
                    SinkhornConfig::reference_code()
                } else {
                    SinkhornConfig::default()
                };
                s.iterations = src.iterations;
                s.tolerance = src.tolerance;
            }
        }
        if let Some(on) = self.reference_memory {
            let src = if on { &reference } else { &paper };
            g.online.memory = src.online.memory;
            g.online.em_source = if on {
                EmSource::MemoryOnly
            } else {
                EmSource::BatchAndMemory
            };
            g.online.update_interval = src.online.update_interval;
            if on {
                g.online.gmm.var_momentum = 0.0;
            }
        }
        // the random-unit queue start means something on unit-sphere features only
        if g.online.memory.init == MemoryInit::RandomUnit && !g.feature_norm {
            g.online.memory.init = MemoryInit::Empty;
        }
        if let Some(on) = self.warm_start {
            g.online.warm_start = on;
        }
    }
}

/// The factors of the `gap` study (issue 19, item 2), each a validated setting that one
/// spec switches on over the tuned preset; `None` keeps the preset's value. Unset fields are
/// left out of the serialised spec. Factors on the mixture are refused for the softmax head;
/// the network's and the sampler's apply to every head, so the softmax baseline can take
/// them too.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GapFactors {
    /// Variance floor relative to each channel's variance in the class, with this multiple
    /// (`GmmConfig::var_floor`), replacing the absolute floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_var_floor: Option<f32>,
    /// A learnable temperature on the class log-likelihoods (`GmmHeadConfig::learn_temperature`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub learn_temperature: Option<bool>,
    /// The log class prior added to the logits (`GmmHeadConfig::log_prior`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_prior: Option<bool>,
    /// EM on evaluation-mode features (`GmmHeadConfig::em_on_eval_features`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub em_on_eval_features: Option<bool>,
    /// The bias-corrected momentum warm-up (`OnlineConfig::momentum_warmup`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum_warmup: Option<bool>,
    /// Batches that fill the memory before the first update (`OnlineConfig::prefill_batches`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_batches: Option<usize>,
    /// The ReLU after the projection (`NetConfig::projection_relu`); any head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_relu: Option<bool>,
    /// Class-balanced image sampling (`SamplerKind::ClassBalanced`); any head.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_balanced: Option<bool>,
}

impl GapFactors {
    /// Whether no factor is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Sets the factors on a training configuration.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] naming the factor when it is a mixture setting and
    /// the head is not a generative GMM head.
    pub fn apply(&self, c: &mut TrainConfig) -> Result<()> {
        if let Some(on) = self.projection_relu {
            c.net.projection_relu = on;
        }
        if let Some(on) = self.class_balanced {
            c.sampler = if on {
                SamplerKind::ClassBalanced
            } else {
                SamplerKind::Shuffle
            };
        }
        let mixture = [
            ("relative_var_floor", self.relative_var_floor.is_some()),
            ("learn_temperature", self.learn_temperature.is_some()),
            ("log_prior", self.log_prior.is_some()),
            ("em_on_eval_features", self.em_on_eval_features.is_some()),
            ("momentum_warmup", self.momentum_warmup.is_some()),
            ("prefill_batches", self.prefill_batches.is_some()),
        ];
        let kind = c.head.kind();
        let Some(g) = c.head.gmm_mut() else {
            return match mixture.iter().find(|(_, set)| *set) {
                Some((name, _)) => Err(GmmSegError::config(
                    *name,
                    format!("does not apply to the {kind} head"),
                )),
                None => Ok(()),
            };
        };
        if let Some(r) = self.relative_var_floor {
            g.online.gmm.var_floor = crate::gmm::VarFloor::Relative;
            g.online.gmm.var_reg = r;
        }
        if let Some(on) = self.learn_temperature {
            g.learn_temperature = on;
        }
        if let Some(on) = self.log_prior {
            g.log_prior = on;
        }
        if let Some(on) = self.em_on_eval_features {
            g.em_on_eval_features = on;
        }
        if let Some(on) = self.momentum_warmup {
            g.online.momentum_warmup = on;
        }
        if let Some(n) = self.prefill_batches {
            g.online.prefill_batches = n;
        }
        Ok(())
    }
}

/// Optimiser family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW (decoupled weight decay; the reference code's SegFormer setting).
    Adamw,
    /// SGD with momentum and L2 weight decay (mmseg's DeepLab setting).
    Sgd,
}

/// Optimiser and learning-rate schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptimConfig {
    /// AdamW or SGD (default AdamW: converges in few steps, which the CPU budget needs).
    pub kind: OptimizerKind,
    /// Peak learning rate (default 2e-3 for AdamW; mmseg SGD uses 0.01).
    pub lr: f64,
    /// Weight decay (default 0.01, the reference code's AdamW value; SGD in mmseg: 5e-4).
    /// Not applied to biases and norm parameters.
    pub weight_decay: f64,
    /// Adam β₁, β₂ (default 0.9, 0.999).
    pub betas: [f64; 2],
    /// Adam ε (default 1e-8).
    pub eps: f64,
    /// SGD momentum (default 0.9).
    pub momentum: f64,
    /// Linear warm-up steps (default 20; reference code 1500 of 160k).
    pub warmup_steps: usize,
    /// Learning-rate factor at step 0 of the warm-up (default 1e-6, the reference code's).
    pub warmup_ratio: f64,
    /// Poly decay power: `lr·(1 − t/T)^power` (default 1.0, the reference code's; mmseg
    /// DeepLab uses 0.9).
    pub poly_power: f64,
    /// Floor of the decayed learning rate (default 0).
    pub min_lr: f64,
    /// Learning-rate multiplier for head parameters (names starting with `head.`): default
    /// 1; the reference code uses 10 (mmseg `paramwise_cfg` key `head`).
    pub head_lr_mult: f64,
}

impl Default for OptimConfig {
    fn default() -> Self {
        OptimConfig {
            kind: OptimizerKind::Adamw,
            lr: 2e-3,
            weight_decay: 0.01,
            betas: [0.9, 0.999],
            eps: 1e-8,
            momentum: 0.9,
            warmup_steps: 20,
            warmup_ratio: 1e-6,
            poly_power: 1.0,
            min_lr: 0.0,
            head_lr_mult: 1.0,
        }
    }
}

/// Everything a training run depends on. Saved next to every checkpoint; its hash names the
/// run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Dataset name as on the command line (`synthscapes`, `digitscenes`, `folder:PATH`,
    /// `toy`). Recorded for provenance.
    pub dataset: String,
    /// The network.
    pub net: NetConfig,
    /// The head and its whole configuration (default softmax; [`HeadConfig::preset`]).
    pub head: HeadConfig,
    /// Optimiser and schedule.
    pub optim: OptimConfig,
    /// Optimiser steps (quick 300, full 3000).
    pub steps: usize,
    /// Images per batch (default 8).
    pub batch_size: usize,
    /// Random horizontal flips in training (default true).
    pub flip: bool,
    /// Image sampling (default shuffle; class-balanced is optional, as in the issue).
    pub sampler: SamplerKind,
    /// Seed of initialisation, data order, flips and dropout (default 0).
    pub seed: u64,
    /// Evaluate every this many steps, 0 = only at the end (quick 100, full 500).
    pub eval_every: usize,
    /// Validation images used by periodic evaluation, 0 = all (default 64).
    pub eval_images: usize,
    /// Checkpoint every this many steps, 0 = only at the end (quick 100, full 500).
    pub checkpoint_every: usize,
    /// The `steps` of each finished run this one extends (`gmmseg train --extend-to`), in
    /// order; empty for a run trained under one schedule from the start. Part of the run's
    /// identity: an extended run's learning-rate schedule is not a fresh run's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extended_from: Vec<usize>,
}

impl TrainConfig {
    /// The `quick` profile: about a minute on two cores at 64×64 with the default network.
    pub fn quick() -> Self {
        TrainConfig {
            dataset: "toy".into(),
            net: NetConfig::default(),
            head: HeadConfig::Softmax,
            optim: OptimConfig::default(),
            steps: 300,
            batch_size: 8,
            flip: true,
            sampler: SamplerKind::Shuffle,
            seed: 0,
            eval_every: 100,
            eval_images: 64,
            checkpoint_every: 100,
            extended_from: Vec::new(),
        }
    }

    /// The `full` profile: ten times the steps of `quick`, a wider network.
    pub fn full() -> Self {
        let mut c = Self::quick();
        c.steps = 3000;
        c.optim.warmup_steps = 150;
        c.net.backbone.widths = vec![24, 48, 96];
        c.net.backbone.blocks = vec![1, 2, 2];
        c.eval_every = 500;
        c.eval_images = 0;
        c.checkpoint_every = 500;
        c
    }

    /// A profile by name.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] for an unknown name.
    pub fn profile(name: &str) -> Result<Self> {
        match name {
            "quick" => Ok(Self::quick()),
            "full" => Ok(Self::full()),
            other => Err(GmmSegError::config(
                "profile",
                format!("must be `quick` or `full`, got `{other}`"),
            )),
        }
    }

    /// Switches the decoder.
    pub fn with_decoder(mut self, kind: DecoderKind) -> Self {
        self.net.decoder.kind = kind;
        self
    }

    /// Checks every field once.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] naming the first bad field and its bound.
    pub fn check(self) -> Result<ValidTrainConfig> {
        self.net.check()?;
        let o = &self.optim;
        if self.steps == 0 {
            return Err(GmmSegError::config("steps", "must be ≥ 1, got 0"));
        }
        let mut prev = 0;
        for &e in self
            .extended_from
            .iter()
            .chain(std::iter::once(&self.steps))
        {
            if e <= prev {
                return Err(GmmSegError::config(
                    "extended_from",
                    format!(
                        "the steps of the extended runs must increase up to steps = {}, got {:?}",
                        self.steps, self.extended_from
                    ),
                ));
            }
            prev = e;
        }
        self.head
            .check(self.net.feature_dim)
            .map_err(|e| e.within("head"))?;
        if self.batch_size == 0 {
            return Err(GmmSegError::config("batch_size", "must be ≥ 1, got 0"));
        }
        if !(o.lr.is_finite() && o.lr > 0.0) {
            return Err(GmmSegError::config(
                "optim.lr",
                format!("must be > 0, got {}", o.lr),
            ));
        }
        if !(o.weight_decay.is_finite() && o.weight_decay >= 0.0) {
            return Err(GmmSegError::config(
                "optim.weight_decay",
                format!("must be ≥ 0, got {}", o.weight_decay),
            ));
        }
        if o.betas.iter().any(|b| !(0.0..1.0).contains(b)) {
            return Err(GmmSegError::config(
                "optim.betas",
                format!("must be in [0, 1), got {:?}", o.betas),
            ));
        }
        if o.eps.is_nan() || o.eps <= 0.0 {
            return Err(GmmSegError::config(
                "optim.eps",
                format!("must be > 0, got {}", o.eps),
            ));
        }
        if !(0.0..1.0).contains(&o.momentum) {
            return Err(GmmSegError::config(
                "optim.momentum",
                format!("must be in [0, 1), got {}", o.momentum),
            ));
        }
        if !(o.warmup_ratio > 0.0 && o.warmup_ratio <= 1.0) {
            return Err(GmmSegError::config(
                "optim.warmup_ratio",
                format!("must be in (0, 1], got {}", o.warmup_ratio),
            ));
        }
        if !(o.poly_power >= 0.0 && o.poly_power.is_finite()) {
            return Err(GmmSegError::config(
                "optim.poly_power",
                format!("must be ≥ 0, got {}", o.poly_power),
            ));
        }
        if !(o.head_lr_mult.is_finite() && o.head_lr_mult > 0.0) {
            return Err(GmmSegError::config(
                "optim.head_lr_mult",
                format!("must be > 0, got {}", o.head_lr_mult),
            ));
        }
        if !(o.min_lr >= 0.0 && o.min_lr <= o.lr) {
            return Err(GmmSegError::config(
                "optim.min_lr",
                format!("must be in [0, lr], got {}", o.min_lr),
            ));
        }
        Ok(ValidTrainConfig(self))
    }
}

impl TrainConfig {
    /// Reads a configuration from JSON, including one written before the configuration tree
    /// (up to 3 December 2026: `"head"` a name and the GMM heads' settings as `"gmm"`
    /// overrides of the flavour's preset). Such a configuration is converted by the same
    /// [`HeadConfig::edit`] that built its head then, so it describes the same model (every
    /// study's heads were compared with the former code's: `scripts/checks/config-tree/`). The flag says whether it was converted: its
    /// [`identity_hash`] is then the tree's, not the one its checkpoint recorded.
    ///
    /// # Errors
    /// The JSON error of the current format when neither format parses.
    pub fn from_json(json: &str) -> std::result::Result<(Self, bool), serde_json::Error> {
        let value: serde_json::Value = serde_json::from_str(json)?;
        Self::from_json_value(value)
    }

    /// [`TrainConfig::from_json`] of a parsed value.
    ///
    /// # Errors
    /// As [`TrainConfig::from_json`].
    pub fn from_json_value(
        mut value: serde_json::Value,
    ) -> std::result::Result<(Self, bool), serde_json::Error> {
        let current = serde_json::from_value::<Self>(value.clone());
        if let Ok(c) = current {
            return Ok((c, false));
        }
        match upgrade_pre_tree(&mut value) {
            Some(()) => serde_json::from_value(value)
                .map(|c| (c, true))
                .or(current.map(|c| (c, false))),
            None => current.map(|c| (c, false)),
        }
    }
}

/// Deserialises a [`TrainConfig`] field of either format ([`TrainConfig::from_json`]), for
/// records that embed one (`checkpoint.json`).
///
/// # Errors
/// The current format's error when neither parses.
pub fn deserialize_any_format<'de, D>(d: D) -> std::result::Result<TrainConfig, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let value = serde_json::Value::deserialize(d)?;
    TrainConfig::from_json_value(value)
        .map(|(c, _)| c)
        .map_err(serde::de::Error::custom)
}

/// The GMM heads' settings of a configuration written before the tree.
#[derive(Deserialize)]
struct PreTreeGmmSettings {
    components: usize,
    em: EmKind,
    em_loops: usize,
    #[serde(default)]
    momentum: Option<f32>,
    #[serde(default)]
    var_reg: Option<f32>,
    #[serde(default)]
    overrides: FlavourOverrides,
}

/// Rewrites a pre-tree configuration's `head` and `gmm` into the tree's `head`; `None` when
/// `value` is not such a configuration.
fn upgrade_pre_tree(value: &mut serde_json::Value) -> Option<()> {
    let obj = value.as_object_mut()?;
    let kind: HeadKind = serde_json::from_value(obj.get("head")?.clone()).ok()?;
    let settings: PreTreeGmmSettings = serde_json::from_value(obj.remove("gmm")?).ok()?;
    let mut head = HeadConfig::preset(kind);
    // the pre-tree trainer read M for every GMM head and the EM settings for the
    // generative ones, ignoring the rest: the same subset is carried over
    let generative = head.gmm().is_some();
    let edits = HeadEdits {
        components: (kind != HeadKind::Softmax).then_some(settings.components),
        em: generative.then_some(settings.em),
        em_loops: generative.then_some(settings.em_loops),
        momentum: settings.momentum.filter(|_| generative),
        var_reg: settings.var_reg.filter(|_| generative),
        knobs: if generative {
            settings.overrides
        } else {
            FlavourOverrides::default()
        },
    };
    head.edit(&edits).ok()?;
    obj.insert("head".into(), serde_json::to_value(head).ok()?);
    Some(())
}

/// A [`TrainConfig`] that passed [`TrainConfig::check`].
#[derive(Clone, Debug, PartialEq)]
pub struct ValidTrainConfig(TrainConfig);

impl ValidTrainConfig {
    /// The checked configuration.
    pub fn get(&self) -> &TrainConfig {
        &self.0
    }

    /// Canonical JSON (serde field order).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.0).expect("config serialises")
    }

    /// SHA-256 of the canonical JSON *without* `eval_every`, `eval_images` and
    /// `checkpoint_every`: a run may be evaluated and checkpointed differently and still
    /// resume, but any change to what the weights mean (network, head, optimiser, data,
    /// seed, and the number of steps, which sets the learning-rate schedule) refuses.
    pub fn hash(&self) -> String {
        identity_hash(&self.0)
    }

    /// For an extension (`extended_from` not empty), the configuration of the finished run it
    /// continues: the same with the previous `steps` and one extension fewer.
    pub fn extended_base(&self) -> Option<TrainConfig> {
        let mut base = self.0.clone();
        base.steps = base.extended_from.pop()?;
        Some(base)
    }
}

/// [`ValidTrainConfig::hash`] of any configuration.
pub fn identity_hash(c: &TrainConfig) -> String {
    let mut c = c.clone();
    c.eval_every = 0;
    c.eval_images = 0;
    c.checkpoint_every = 0;
    let json = serde_json::to_string(&c).expect("config serialises");
    let digest = Sha256::digest(json.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fields in which two configurations differ that matter to a run's identity, as
/// `path: a → b` (e.g. `steps: 4 → 8`), for refusal messages.
pub fn identity_differences(a: &TrainConfig, b: &TrainConfig) -> Vec<String> {
    fn walk(path: &str, a: &serde_json::Value, b: &serde_json::Value, out: &mut Vec<String>) {
        use serde_json::Value::Object;
        match (a, b) {
            (Object(x), Object(y)) => {
                let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in keys {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    let null = serde_json::Value::Null;
                    walk(
                        &p,
                        x.get(k).unwrap_or(&null),
                        y.get(k).unwrap_or(&null),
                        out,
                    );
                }
            }
            (x, y) if x != y => out.push(format!("{path}: {x} → {y}")),
            _ => {}
        }
    }
    let strip = |c: &TrainConfig| {
        let mut c = c.clone();
        c.eval_every = 0;
        c.eval_images = 0;
        c.checkpoint_every = 0;
        serde_json::to_value(c).expect("config serialises")
    };
    let mut out = Vec::new();
    walk("", &strip(a), &strip(b), &mut out);
    out
}

/// Learning rate at `step` (0-based) of `total`: linear warm-up from `lr·warmup_ratio` to the
/// poly-decayed value over `warmup_steps` (mmseg's `warmup='linear'` applied to poly), then
/// `max(min_lr, (lr − min_lr)(1 − step/total)^power + min_lr)`.
pub fn learning_rate(o: &OptimConfig, step: usize, total: usize) -> f64 {
    let progress = (step as f64 / total.max(1) as f64).min(1.0);
    let decayed = (o.lr - o.min_lr) * (1.0 - progress).powf(o.poly_power) + o.min_lr;
    if step < o.warmup_steps {
        let k = (1.0 - step as f64 / o.warmup_steps as f64) * (1.0 - o.warmup_ratio);
        decayed * (1.0 - k)
    } else {
        decayed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profiles_are_valid_and_hash_covers_the_schedule_not_the_bookkeeping() {
        let q = TrainConfig::quick().check().unwrap();
        let mut longer = TrainConfig::quick();
        longer.steps = 999;
        assert_ne!(q.hash(), longer.clone().check().unwrap().hash());
        assert_eq!(
            identity_differences(q.get(), &longer),
            vec!["steps: 300 → 999".to_string()]
        );
        let mut bookkeeping = TrainConfig::quick();
        bookkeeping.checkpoint_every = 7;
        bookkeeping.eval_every = 3;
        assert_eq!(q.hash(), bookkeeping.check().unwrap().hash());
        // an extension's base is the finished run it continues
        let mut ext = TrainConfig::quick();
        ext.steps = 600;
        ext.extended_from = vec![300];
        let ext = ext.check().unwrap();
        assert_eq!(identity_hash(&ext.extended_base().unwrap()), q.hash());
        assert!(q.extended_base().is_none());
        let mut other = TrainConfig::quick();
        other.seed = 1;
        assert_ne!(q.hash(), other.check().unwrap().hash());
        TrainConfig::full().check().unwrap();
        assert!(TrainConfig::profile("medium").is_err());
    }

    /// The presets as the layered code built them before the configuration tree (session
    /// 14: `GmmConfig::paper` → `OnlineConfig::paper` → τ 0.99 and var_reg 1.0 written over
    /// it; the reference code's GMM from the paper's with four fields changed), written out
    /// here so that the flat presets are checked to mean the same heads.
    #[test]
    fn flat_presets_equal_the_former_layered_ones() {
        use crate::gmm::{
            Assignment, EmSource, GmmConfig, MeanEstimator, MemoryConfig, OnlineConfig,
        };
        let (c, m, d) = (19, 5, 64);
        let layered_paper = GmmHeadConfig {
            online: OnlineConfig {
                gmm: GmmConfig {
                    components: m,
                    dim: d,
                    mean_momentum: 0.99,
                    var_momentum: 0.99,
                    var_reg: 1.0,
                    ..GmmConfig::paper(c)
                },
                memory: MemoryConfig::paper(),
                em_source: EmSource::BatchAndMemory,
                update_interval: 1,
                warm_start: false,
                momentum_warmup: false,
                prefill_batches: 0,
            },
            feature_norm: false,
            class_norm: false,
            component_loss_weight: 0.0,
            learn_temperature: false,
            log_prior: false,
            em_on_eval_features: false,
        };
        assert_eq!(GmmHeadConfig::paper(m).bind(c, d), layered_paper);
        let layered_reference = GmmHeadConfig {
            online: OnlineConfig {
                gmm: GmmConfig {
                    components: m,
                    dim: d,
                    e_step: EStep::Sinkhorn(SinkhornConfig::reference_code()),
                    assignment: Assignment::Hard,
                    var_momentum: 0.0,
                    mean_estimator: MeanEstimator::Direction,
                    ..GmmConfig::paper(c)
                },
                memory: MemoryConfig::reference_code(),
                em_source: EmSource::MemoryOnly,
                update_interval: 5,
                warm_start: false,
                momentum_warmup: false,
                prefill_batches: 0,
            },
            feature_norm: true,
            class_norm: true,
            component_loss_weight: 0.01,
            learn_temperature: false,
            log_prior: false,
            em_on_eval_features: false,
        };
        assert_eq!(
            GmmHeadConfig::reference_code(m).bind(c, d),
            layered_reference
        );
    }

    #[test]
    fn head_tree_round_trips_leaves_shapes_unbound_and_edits_in_one_order() {
        let mut c = TrainConfig::quick();
        c.head = HeadConfig::preset(HeadKind::Gmmseg);
        let json = serde_json::to_string(&c).unwrap();
        assert!(
            json.contains(r#""head":{"kind":"gmmseg","online""#),
            "{json}"
        );
        assert!(!json.contains("num_classes"), "{json}");
        assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), c);
        let v = c.clone().check().unwrap();
        // a bound head in a training config is refused: C and D have one source each
        let mut bound = c.clone();
        bound.head = HeadConfig::Gmmseg(GmmHeadConfig::paper(5).bind(3, 64));
        assert!(matches!(bound.check(),
            Err(GmmSegError::InvalidConfig { field, .. }) if field == "head.online.gmm.num_classes"));

        // an explicit variance floor wins over the feature-norm knob's companion floor
        let mut head = HeadConfig::preset(HeadKind::Gmmseg);
        head.edit(&HeadEdits {
            var_reg: Some(0.5),
            momentum: Some(0.9),
            em: Some(EmKind::Vanilla),
            knobs: FlavourOverrides {
                feature_norm: Some(true),
                ..Default::default()
            },
            ..Default::default()
        })
        .unwrap();
        let g = head.gmm().unwrap();
        assert_eq!(g.online.gmm.var_reg, 0.5);
        assert_eq!(
            (g.online.gmm.mean_momentum, g.online.gmm.var_momentum),
            (0.9, 0.9)
        );
        assert_eq!(g.online.gmm.e_step, EStep::Vanilla);
        assert_ne!(identity_hash(&c), {
            let mut e = c.clone();
            e.head = head;
            identity_hash(&e)
        });
        assert_eq!(v.get().head.components(), Some(DEFAULT_COMPONENTS));

        // edits a head has no setting for are refused, not stored
        let tau = HeadEdits {
            momentum: Some(0.9),
            ..Default::default()
        };
        for kind in [HeadKind::Softmax, HeadKind::DiscGmm] {
            let err = HeadConfig::preset(kind).edit(&tau).unwrap_err();
            assert!(
                matches!(err, GmmSegError::InvalidConfig { ref field, .. } if field == "momentum")
            );
        }
        let mut disc = HeadConfig::preset(HeadKind::DiscGmm);
        disc.edit(&HeadEdits {
            components: Some(3),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(disc.components(), Some(3));
        assert!(HeadConfig::Softmax
            .edit(&HeadEdits {
                components: Some(3),
                ..Default::default()
            })
            .is_err());
    }

    #[test]
    fn a_pre_tree_config_reads_as_the_same_head() {
        // a model record's config as written on 3 December 2026 (abridged to the head part)
        let mut c = TrainConfig::quick();
        c.head = HeadConfig::preset(HeadKind::Gmmseg);
        let mut old = serde_json::to_value(&c).unwrap();
        old["head"] = serde_json::json!("gmmseg");
        old["gmm"] = serde_json::json!({
            "components": 3, "em": "sinkhorn", "em_loops": 10, "momentum": null,
            "var_reg": 0.5, "overrides": {"hard_assignment": true}
        });
        let (read, upgraded) = TrainConfig::from_json(&old.to_string()).unwrap();
        assert!(upgraded);
        let g = read.head.gmm().unwrap();
        assert_eq!(g.online.gmm.components, 3);
        assert_eq!(g.online.gmm.em_loops, 10);
        assert_eq!(g.online.gmm.var_reg, 0.5);
        assert_eq!(g.online.gmm.assignment, crate::gmm::Assignment::Hard);
        assert_eq!(g.online.gmm.mean_momentum, 0.99);
        // the softmax head ignored the GMM settings then, and is plain softmax now
        old["head"] = serde_json::json!("softmax");
        let (read, _) = TrainConfig::from_json(&old.to_string()).unwrap();
        assert_eq!(read.head, HeadConfig::Softmax);
        // the current format reads as itself; garbage is the current format's error
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(TrainConfig::from_json(&json).unwrap(), (c, false));
        assert!(TrainConfig::from_json(r#"{"head": 3}"#).is_err());
    }

    #[test]
    fn test_invalid_fields() {
        type Edit = Box<dyn Fn(&mut TrainConfig)>;
        let bad: Vec<(&str, Edit)> = vec![
            ("steps", Box::new(|c| c.steps = 0)),
            ("batch_size", Box::new(|c| c.batch_size = 0)),
            ("optim.lr", Box::new(|c| c.optim.lr = 0.0)),
            (
                "optim.weight_decay",
                Box::new(|c| c.optim.weight_decay = -1.0),
            ),
            ("optim.betas", Box::new(|c| c.optim.betas = [0.9, 1.0])),
            ("optim.eps", Box::new(|c| c.optim.eps = 0.0)),
            ("optim.momentum", Box::new(|c| c.optim.momentum = 1.0)),
            (
                "optim.warmup_ratio",
                Box::new(|c| c.optim.warmup_ratio = 0.0),
            ),
            ("optim.poly_power", Box::new(|c| c.optim.poly_power = -1.0)),
            ("optim.min_lr", Box::new(|c| c.optim.min_lr = 1.0)),
            (
                "optim.head_lr_mult",
                Box::new(|c| c.optim.head_lr_mult = 0.0),
            ),
            ("net.feature_dim", Box::new(|c| c.net.feature_dim = 0)),
            ("net.dropout", Box::new(|c| c.net.dropout = 1.0)),
            (
                "backbone.blocks",
                Box::new(|c| c.net.backbone.blocks = vec![1]),
            ),
            ("decoder.channels", Box::new(|c| c.net.decoder.channels = 0)),
            (
                "head.online.gmm.mean_momentum",
                Box::new(|c| {
                    c.head = HeadConfig::preset(HeadKind::Gmmseg);
                    c.head.gmm_mut().unwrap().set_momentum(1.0)
                }),
            ),
            (
                "head.online.gmm.components",
                Box::new(|c| c.head = HeadConfig::Gmmseg(GmmHeadConfig::paper(MAX_COMPONENTS + 1))),
            ),
            (
                "head.online.gmm.var_reg",
                Box::new(|c| {
                    c.head = HeadConfig::preset(HeadKind::GmmsegRef);
                    c.head.gmm_mut().unwrap().online.gmm.var_reg = f32::NAN
                }),
            ),
            (
                "head.online.memory.capacity",
                Box::new(|c| {
                    c.head = HeadConfig::preset(HeadKind::Gmmseg);
                    c.head.gmm_mut().unwrap().online.memory.capacity = 0
                }),
            ),
            (
                "head.component_loss_weight",
                Box::new(|c| {
                    c.head = HeadConfig::preset(HeadKind::Gmmseg);
                    c.head.gmm_mut().unwrap().component_loss_weight = -1.0
                }),
            ),
            (
                "head.components",
                Box::new(|c| c.head = HeadConfig::DiscGmm(DiscGmmConfig { components: 0 })),
            ),
        ];
        for (field, f) in bad {
            let mut c = TrainConfig::quick();
            f(&mut c);
            match c.check() {
                Err(GmmSegError::InvalidConfig { field: got, .. }) => {
                    assert!(got.contains(field), "{field} vs {got}")
                }
                other => panic!("{field}: expected InvalidConfig, got {other:?}"),
            }
        }
    }

    #[test]
    fn schedule_warms_up_then_decays_to_min() {
        let o = OptimConfig {
            warmup_steps: 10,
            ..OptimConfig::default()
        };
        let lr0 = learning_rate(&o, 0, 100);
        assert!((lr0 - o.lr * 1e-6).abs() < 1e-12);
        assert!(learning_rate(&o, 5, 100) < learning_rate(&o, 10, 100));
        assert!((learning_rate(&o, 10, 100) - o.lr * 0.9).abs() < 1e-12);
        assert!(learning_rate(&o, 100, 100).abs() < 1e-12);
    }

    #[test]
    fn flavour_overrides_switch_one_knob_each() {
        use crate::gmm::{Assignment, EStep, EmSource, MeanEstimator};
        let paper = GmmHeadConfig::paper(3).bind(4, 8);
        let reference = GmmHeadConfig::reference_code(3).bind(4, 8);
        let with = |o: FlavourOverrides| {
            let mut g = paper.clone();
            o.apply(&mut g);
            g
        };
        assert_eq!(with(FlavourOverrides::default()), paper);
        let g = with(FlavourOverrides {
            feature_norm: Some(true),
            ..Default::default()
        });
        assert!(g.feature_norm && !g.class_norm);
        assert_eq!(g.online.gmm.mean_estimator, MeanEstimator::Direction);
        let g = with(FlavourOverrides {
            hard_assignment: Some(true),
            ..Default::default()
        });
        assert_eq!(g.online.gmm.assignment, Assignment::Hard);
        assert!(matches!(g.online.gmm.e_step, EStep::Sinkhorn(s) if s.rescale_cost));
        let g = with(FlavourOverrides {
            fixed_sinkhorn_iterations: Some(true),
            ..Default::default()
        });
        assert!(
            matches!(g.online.gmm.e_step, EStep::Sinkhorn(s) if s.iterations == 3 && s.tolerance.is_none())
        );
        // the reference EM schedule alone: its queues start empty on unnormalised features
        let g = with(FlavourOverrides {
            reference_memory: Some(true),
            ..Default::default()
        });
        let mut empty_start = reference.online.memory;
        empty_start.init = crate::gmm::MemoryInit::Empty;
        assert_eq!(g.online.memory, empty_start);
        assert_eq!(g.online.em_source, EmSource::MemoryOnly);
        assert_eq!(g.online.update_interval, reference.online.update_interval);
        assert_eq!(g.online.gmm.var_momentum, 0.0);
        // feature normalisation brings the reference code's variance floor with it
        let g = with(FlavourOverrides {
            feature_norm: Some(true),
            ..Default::default()
        });
        assert_eq!(g.online.gmm.var_reg, reference.online.gmm.var_reg);
        // every knob at the reference value, plus the reference momentum τ = 0.999, turns
        // the paper head into the reference head: the end of the flavours study's path
        let mut all = with(FlavourOverrides::all_reference());
        all.online.gmm.mean_momentum = reference.online.gmm.mean_momentum;
        assert_eq!(all, reference);
    }
}
