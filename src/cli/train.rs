//! `gmmseg train` and `gmmseg eval`.
//!
//! ```text
//! gmmseg train --dataset synthscapes|digitscenes|folder:PATH|toy --head softmax
//!              [--decoder fcn|deeplab] [--profile quick|full] [--steps N] [--seed S] --out DIR
//! gmmseg eval  --checkpoint DIR --dataset NAME [--split val|tune|anomaly|anomaly-context] [--json]
//! ```
//! `eval --json` prints `{"miou","acc","ece","nll","brier","anomaly":{"msp":{"auroc","ap",
//! "fpr95"},"entropy":{…},"maxlogit":{…}}}` (plus `iou_per_class` and `images`); `anomaly`
//! only on anomaly splits.
//!
//! Datasets: on this branch only the built-in `toy` set exists; [`resolve_dataset`] is the one
//! place where the real datasets get wired in.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::data::toy::{ToyShapes, ToySplit};
use crate::data::{open_dataset, Dataset, DatasetOptions};
use crate::error::{GmmSegError, Result};
use crate::nn::decoder::DecoderKind;
use crate::train::config::{
    EmKind, FlavourOverrides, GapFactors, HeadConfig, HeadEdits, HeadKind, SamplerKind, TrainConfig,
};
use crate::train::posthoc::{prepare_for_eval, PosthocConfig};
use crate::train::trainer::Trainer;

/// Arguments of `gmmseg train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Dataset: synthscapes, digitscenes, folder:PATH, or toy (built-in shapes).
    #[arg(long)]
    pub dataset: String,
    /// Classification head.
    #[arg(long, value_enum, default_value_t = HeadKind::Softmax)]
    pub head: HeadKind,
    /// Components per class M of the GMM heads.
    #[arg(long)]
    pub components: Option<usize>,
    /// E-step of the GMM heads.
    #[arg(long, value_enum)]
    pub em: Option<EmKind>,
    /// EM loops per training iteration of the GMM heads.
    #[arg(long)]
    pub em_loops: Option<usize>,
    /// Momentum τ of the GMM's EM updates (default: the flavour's).
    #[arg(long, value_parser = super::f32_value)]
    pub gmm_momentum: Option<f32>,
    /// Variance regularisation of the GMM (default: the flavour's; paper 1.0, reference 0.01).
    #[arg(long, value_parser = super::f32_value)]
    pub var_reg: Option<f32>,
    /// GMM heads: LayerNorm + L2-normalise the features (reference code: on; paper: off).
    #[arg(long)]
    pub feature_norm: Option<bool>,
    /// GMM heads: LayerNorm the class scores (reference code: on; paper: off).
    #[arg(long)]
    pub class_norm: Option<bool>,
    /// GMM heads: weight of the component-level loss (reference code 0.01; paper 0).
    #[arg(long, value_parser = super::f32_value)]
    pub component_loss: Option<f32>,
    /// GMM heads: hard (arg-max) Sinkhorn assignments (reference code: on).
    #[arg(long)]
    pub hard_sinkhorn: Option<bool>,
    /// GMM heads: the reference code's fixed 3 Sinkhorn iterations instead of iterating to
    /// the 1e-3 marginal tolerance (reference code: on).
    #[arg(long)]
    pub fixed_sinkhorn_iterations: Option<bool>,
    /// GMM heads: the reference code's EM schedule (queues of correctly classified pixels,
    /// EM from memory only every 5 iterations, variances replaced; its random-unit queue
    /// start only on L2-normalised features).
    #[arg(long)]
    pub reference_em_schedule: Option<bool>,
    /// GMM heads: initialise each class from its first batch (default: off, a random start).
    #[arg(long)]
    pub warm_start: Option<bool>,
    /// GMM heads: a variance floor of this multiple of each channel's variance in the class,
    /// replacing the absolute floor of --var-reg (a factor of the `gap` study), e.g. 0.1.
    #[arg(long, value_parser = super::f32_value)]
    pub relative_var_floor: Option<f32>,
    /// GMM heads: a learnable temperature on the class log-likelihoods (default: off).
    #[arg(long)]
    pub learn_temperature: Option<bool>,
    /// GMM heads: add the log class prior counted over training to the logits (default: off).
    #[arg(long)]
    pub log_prior: Option<bool>,
    /// GMM heads: run EM on evaluation-mode features (running batch-norm statistics, no
    /// dropout) instead of the training forward's (default: off; one more forward per step).
    #[arg(long)]
    pub em_on_eval_features: Option<bool>,
    /// GMM heads: momentum warm-up τ_t = min(τ, (1 + t)/(10 + t)) (default: off).
    #[arg(long)]
    pub momentum_warmup: Option<bool>,
    /// GMM heads: batches whose features fill the memory before the first EM update
    /// (default: 0, none).
    #[arg(long)]
    pub prefill_batches: Option<usize>,
    /// The ReLU after the network's projection to D (default: on).
    #[arg(long)]
    pub projection_relu: Option<bool>,
    /// Image sampling: shuffle (default) or class-balanced (the reference code's sampler).
    #[arg(long, value_enum)]
    pub sampler: Option<SamplerKind>,
    /// Decoder (default: the profile's, DeepLabV3+-lite).
    #[arg(long, value_enum)]
    pub decoder: Option<DecoderKind>,
    /// Profile: quick (about a minute on two cores) or full.
    #[arg(long, default_value = "quick")]
    pub profile: String,
    /// Override the number of optimiser steps.
    #[arg(long)]
    pub steps: Option<usize>,
    /// Override the seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Save a checkpoint every this many steps (default: the profile's; 0 = only at the end).
    #[arg(long)]
    pub checkpoint_every: Option<usize>,
    /// Train the finished run in --out further, to N steps in all: the same command (same
    /// flags and --steps) plus --extend-to N. The extension's learning-rate schedule restarts
    /// the poly decay over N steps from where the run stopped, so it is not a fresh N-step
    /// run; its config records the steps it extended (`extended_from`).
    #[arg(long)]
    pub extend_to: Option<usize>,
    /// Run directory (checkpoints, config); an existing checkpoint there is resumed.
    #[arg(long)]
    pub out: PathBuf,
    /// Print the final evaluation as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `gmmseg eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Run directory holding `checkpoint.safetensors`.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Dataset name, as for `train`.
    #[arg(long)]
    pub dataset: String,
    /// Split: val, anomaly or anomaly-context.
    #[arg(long, default_value = "val")]
    pub split: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Classify with a GMM fitted after training on the frozen network's penultimate
    /// features of the training split (the paper's Table 3), instead of the trained head.
    #[arg(long)]
    pub post_hoc_gmm: bool,
}

/// Size of the toy images and splits.
const TOY_SIZE: usize = 64;

/// Opens split `split` (`train`, `val`, `anomaly`, `anomaly-context`) of dataset `name`.
///
/// # Errors
/// [`GmmSegError::InvalidInput`] for a dataset or split not available (yet).
pub fn resolve_dataset(name: &str, split: &str, seed: u64) -> Result<Box<dyn Dataset>> {
    match name {
        "toy" => {
            let (s, len) = match split {
                "train" => (ToySplit::Train, 512),
                "val" => (ToySplit::Val, 64),
                "anomaly" => (ToySplit::Anomaly, 64),
                other => {
                    return Err(GmmSegError::input(
                        "--split",
                        format!("the toy set has train, val and anomaly splits, not `{other}`"),
                    ))
                }
            };
            Ok(Box::new(ToyShapes::new(s, len, TOY_SIZE, seed)?))
        }
        other => open_dataset(
            other,
            split,
            &DatasetOptions {
                seed,
                ..DatasetOptions::default()
            },
        ),
    }
}

/// The `gmmseg train` flag that sets a [`TrainConfig`] field, for error messages.
fn train_flag(field: &str) -> Option<&'static str> {
    Some(match field {
        "steps" => "--steps",
        "checkpoint_every" => "--checkpoint-every",
        "extended_from" => "--extend-to",
        "head.online.gmm.components" | "head.components" => "--components",
        "head.online.gmm.em_loops" => "--em-loops",
        "head.online.gmm.mean_momentum" | "head.online.gmm.var_momentum" => "--gmm-momentum",
        "head.online.gmm.var_reg" => "--var-reg",
        "head.component_loss_weight" => "--component-loss",
        _ => return None,
    })
}

/// The head of `gmmseg train`: the preset of `--head` with the head flags written over it
/// ([`HeadConfig::edit`], the one place that writes them). A flag the head has no setting
/// for is refused by name, not stored unused.
fn head_config(args: &TrainArgs) -> Result<HeadConfig> {
    let knobs = [
        ("--feature-norm", args.feature_norm.is_some()),
        ("--class-norm", args.class_norm.is_some()),
        ("--component-loss", args.component_loss.is_some()),
        ("--hard-sinkhorn", args.hard_sinkhorn.is_some()),
        (
            "--fixed-sinkhorn-iterations",
            args.fixed_sinkhorn_iterations.is_some(),
        ),
        (
            "--reference-em-schedule",
            args.reference_em_schedule.is_some(),
        ),
        ("--warm-start", args.warm_start.is_some()),
    ];
    let edits = HeadEdits {
        components: args.components,
        em: args.em,
        em_loops: args.em_loops,
        momentum: args.gmm_momentum,
        var_reg: args.var_reg,
        knobs: FlavourOverrides {
            feature_norm: args.feature_norm,
            class_norm: args.class_norm,
            component_loss_weight: args.component_loss,
            hard_assignment: args.hard_sinkhorn,
            fixed_sinkhorn_iterations: args.fixed_sinkhorn_iterations,
            reference_memory: args.reference_em_schedule,
            warm_start: args.warm_start,
        },
    };
    let mut head = HeadConfig::preset(args.head);
    head.edit(&edits).map_err(|e| match e {
        GmmSegError::InvalidConfig { field, .. } => {
            let flag = match field.as_str() {
                "components" => "--components",
                "em" => "--em",
                "em_loops" => "--em-loops",
                "momentum" => "--gmm-momentum",
                "var_reg" => "--var-reg",
                _ => knobs
                    .iter()
                    .find(|(_, set)| *set)
                    .map_or("--head", |(f, _)| f),
            };
            let heads = if flag == "--components" {
                "--head gmmseg, gmmseg-ref or disc-gmm"
            } else {
                "--head gmmseg or gmmseg-ref"
            };
            GmmSegError::input(
                flag,
                format!("applies to {heads} only, not to --head {}", args.head),
            )
        }
        e => e,
    })?;
    Ok(head)
}

/// Runs `gmmseg train`.
///
/// # Errors
/// Config, dataset, training and I/O errors.
pub fn train(args: TrainArgs) -> Result<()> {
    let mut cfg = TrainConfig::profile(&args.profile)?;
    cfg.dataset = args.dataset.clone();
    cfg.head = head_config(&args)?;
    if let Some(s) = args.sampler {
        cfg.sampler = s;
    }
    GapFactors {
        relative_var_floor: args.relative_var_floor,
        learn_temperature: args.learn_temperature,
        log_prior: args.log_prior,
        em_on_eval_features: args.em_on_eval_features,
        momentum_warmup: args.momentum_warmup,
        prefill_batches: args.prefill_batches,
        projection_relu: args.projection_relu,
        class_balanced: None,
    }
    .apply(&mut cfg)
    .map_err(|e| match e {
        GmmSegError::InvalidConfig { field, .. } => GmmSegError::input(
            format!("--{}", field.replace('_', "-")),
            format!(
                "applies to --head gmmseg or gmmseg-ref only, not to --head {}",
                args.head
            ),
        ),
        e => e,
    })?;
    if let Some(d) = args.decoder {
        cfg.net.decoder.kind = d;
    }
    if let Some(s) = args.steps {
        cfg.steps = s;
    }
    if let Some(s) = args.seed {
        cfg.seed = s;
    }
    if let Some(c) = args.checkpoint_every {
        cfg.checkpoint_every = c;
    }
    if let Some(n) = args.extend_to {
        if n <= cfg.steps {
            return Err(GmmSegError::input(
                "--extend-to",
                format!(
                    "must exceed the run's {} steps (--steps), got {n}",
                    cfg.steps
                ),
            ));
        }
        if !args
            .out
            .join(crate::train::checkpoint::TENSORS_FILE)
            .exists()
        {
            return Err(GmmSegError::input(
                "--extend-to",
                format!(
                    "{} holds no checkpoint to extend; train it first without --extend-to",
                    args.out.display()
                ),
            ));
        }
        let loaded = crate::train::checkpoint::read(&args.out)?;
        let finished = loaded.step == cfg.steps;
        let base_hash = crate::train::config::identity_hash(&cfg);
        if loaded.config_hash == base_hash && !finished {
            return Err(GmmSegError::input(
                "--extend-to",
                format!(
                    "the run in {} stopped at step {} of {}: finish it first (the same command without --extend-to)",
                    args.out.display(),
                    loaded.step,
                    cfg.steps
                ),
            ));
        }
        cfg.extended_from.push(cfg.steps);
        cfg.steps = n;
    }
    // checked before any dataset is opened; a bad value names the flag the user typed
    let cfg = cfg.check().map_err(|e| match e {
        GmmSegError::InvalidConfig { field, reason } => match train_flag(&field) {
            Some(flag) => GmmSegError::input(flag, reason),
            None => GmmSegError::InvalidConfig { field, reason },
        },
        e => e,
    })?;
    let train = resolve_dataset(&args.dataset, "train", 0)?;
    let val = resolve_dataset(&args.dataset, "val", 0)?;
    let mut trainer = Trainer::new(cfg.clone(), train.num_classes())?.with_out_dir(&args.out)?;
    let total = cfg.get().steps;
    if trainer.step > 0 {
        eprintln!("resuming {} at step {}", args.out.display(), trainer.step);
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed_precise} eta {eta} {msg}")
            .expect("valid template"),
    );
    bar.set_position(trainer.step as u64);
    let report = trainer.fit(train.as_ref(), Some(val.as_ref()), &mut |p| {
        bar.set_position(p.step as u64);
        let eval = p
            .eval
            .map(|e| format!(" val mIoU {:.3}", e.miou))
            .unwrap_or_default();
        let em =
            p.em.as_ref()
                .map(crate::train::trainer::em_line)
                .unwrap_or_default();
        bar.set_message(format!("loss {:.4} lr {:.1e}{em}{eval}", p.loss, p.lr));
    });
    bar.finish();
    if let Some(t) = trainer.model.head.em_trace().filter(|t| t.updates > 0) {
        eprintln!(
            "EM over {} updates: component-mass error mean {:.4}, max {:.4}; mean max responsibility {:.3} (max {:.3})",
            t.updates,
            t.marginal_error_mean(),
            t.marginal_error_max,
            t.max_responsibility_mean(),
            t.max_responsibility_max
        );
    }
    let report = report?;
    if let Some(r) = report {
        if args.json {
            println!("{}", serde_json::to_string(&r).expect("report serialises"));
        } else {
            println!(
                "trained {total} steps into {}: val mIoU {:.4}, acc {:.4}, ECE {:.4}",
                args.out.display(),
                r.miou,
                r.acc,
                r.ece
            );
        }
    }
    Ok(())
}

/// Runs `gmmseg eval`.
///
/// # Errors
/// Checkpoint, dataset and evaluation errors.
pub fn eval(args: EvalArgs) -> Result<()> {
    if !["val", "tune", "anomaly", "anomaly-context"].contains(&args.split.as_str()) {
        return Err(GmmSegError::input(
            "--split",
            format!(
                "must be val, tune, anomaly or anomaly-context, got `{}`",
                args.split
            ),
        ));
    }
    let ds = resolve_dataset(&args.dataset, &args.split, 0)?;
    let mut t = Trainer::from_checkpoint(&args.checkpoint, ds.num_classes())?;
    // Density baselines on the frozen features: Mahalanobis for the softmax head on anomaly
    // splits, and the post-hoc GMM when asked for.
    let mahalanobis = args.split != "val" && t.model.head.kind() == "softmax";
    if args.post_hoc_gmm || mahalanobis {
        let train = resolve_dataset(&args.dataset, "train", 0)?;
        let cfg = PosthocConfig::new(ds.num_classes(), t.model.head.feature_dim());
        prepare_for_eval(
            &mut t.model,
            train.as_ref(),
            &cfg,
            args.post_hoc_gmm,
            mahalanobis,
        )?;
    }
    let r = t.evaluate(ds.as_ref(), 0)?;
    if args.json {
        println!("{}", serde_json::to_string(&r).expect("report serialises"));
    } else {
        println!(
            "{} ({} images): mIoU {:.4}  acc {:.4}  ECE {:.4}  NLL {:.4}  Brier {:.4}",
            ds.name(),
            r.images,
            r.miou,
            r.acc,
            r.ece,
            r.nll,
            r.brier
        );
        if let Some(a) = &r.anomaly {
            for (k, m) in a {
                println!(
                    "  {k:>10}: AUROC {:.4}  AP {:.4}  FPR95 {:.4}",
                    m.auroc, m.ap, m.fpr95
                );
            }
        }
    }
    Ok(())
}
