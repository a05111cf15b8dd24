//! Every ablation of the paper as a function that returns polars DataFrames: the runs (one
//! row per trained model, evaluation and metric, long format) and their summary over seeds
//! (mean, standard deviation, Student-t 95% confidence interval), plus one row per claim of
//! the paper saying, from the numbers, whether it holds on our data.
//!
//! # Studies ([`Study`])
//! | study | paper | what is trained |
//! |---|---|---|
//! | `main_results` | Table 1 | softmax vs GMMSeg, FCN and DeepLabV3+-lite |
//! | `anomaly` | Table 2 | softmax (MSP, entropy, max-logit, Mahalanobis) vs GMMSeg likelihood, every anomaly split |
//! | `online_vs_posthoc` | Table 3 | GMMSeg vs a GMM fitted after training on the softmax model's features |
//! | `gen_vs_disc` | Table 4 | GMM head fitted by EM (generative) vs trained by SGD (discriminative) |
//! | `em` | Table 5a | vanilla vs Sinkhorn EM at 1, 5, 10 EM loops per iteration |
//! | `components` | Table 5b | M components per class |
//! | `calibration` | Fig. 5 | reliability bins and ECE, softmax vs GMMSeg |
//! | `flavours` | DESIGN §1 | paper flavour vs reference-code flavour (and the paper's τ) |
//! | `runtime` | §4.3 | train-step time and inference images/s, softmax vs GMMSeg |
//!
//! # How a study runs
//! A study is a list of [`RunSpec`]s (a training configuration plus the study's name for it)
//! over seeds. Each spec needs one trained model; a model is identified by a hash of the code
//! fingerprint, its full training configuration, the evaluation settings and the dataset
//! ([`model_key`]), so the
//! softmax baseline and the default GMMSeg, which half the studies use, are trained once per
//! seed and evaluated once, everything any study reads being recorded in a [`ModelRecord`]
//! (`data/results/<profile>/models/<key>.json`, with its configuration). A study then turns
//! each spec's record into rows (its [`Measurement`]s).
//!
//! The command line writes each study's summary and figures per dataset, under
//! `data/results/<profile>/<dataset>/` ([`dataset_slug`]).
//!
//! Rows are cached in `data/results/<profile>/<study>.csv` with a hash of the run's full
//! identity ([`RunIdentity`]: study, spec name, training config, evaluation settings,
//! dataset, seed, and the [`code_fingerprint`] — computed at build time over the sources that
//! can change a model or its evaluation, see [`fingerprint`]); `<study>.configs.json` maps
//! each hash to that identity. A cached run of other code is therefore never reused: after
//! any edit of the model or EM code, the next `ablate` retrains what depends on it, and
//! `--cache-only` reports those runs as missing. Each CSV holds exactly one row per
//! (dataset, variant, group, param, seed, metric) cell, the current one, with its `code`:
//! writing drops the rows of other code and of superseded runs. For `folder:PATH` datasets
//! the key covers the path, not the files: after changing them, use `force`. A rerun reuses
//! matching rows and trains only what is missing or changed; `force` recomputes (each model
//! once per session). With a [`Shard`] only the specs whose index `i` satisfies
//! `i % N == K − 1` run; shards merge their rows into the same CSV under a lock file, through
//! a temporary file and a rename, re-reading the CSV just before writing.
//!
//! # Profiles ([`ExperimentProfile`])
//! `tiny` (tests: a few steps on 32×32 images, seconds), `quick` (`ablate all` on one dataset
//! within ten minutes on two cores) and `full` (5 seeds — paired claims need them —, longer
//! training, larger evaluation sets: 500 steps on SynthScapes, 3,000 on DigitScenes, whose
//! softmax baseline needs that long to tell the digits apart). Measured at three seeds with
//! the former code, the full profile took about one hour for SynthScapes and five for
//! DigitScenes (`data/results/full/README.md`), which `--shard K/N` spreads over machines.
//!
//! # Claims
//! Decided on the paired per-seed differences with a Student-t CI and a verdict —
//! reproduced, contradicted or inconclusive — see [`summary`]; `ablate all` writes them to
//! `<dataset>/claims.md` and `<dataset>/claims.csv`.
//!
//! # Example (what a notebook does)
//! ```no_run
//! use gmmseg::experiments::{study_figures, ExperimentProfile, ExperimentRunner, Study};
//! # fn main() -> gmmseg::Result<()> {
//! // (runs, summary) in one call, cached under data/results/quick/:
//! let (runs, summary) = gmmseg::experiments::components("quick", "synthscapes", 2)?;
//! println!("{summary}");
//! // or with a runner: claims, cells and figures
//! let profile = ExperimentProfile::quick().check()?;
//! let mut runner = ExperimentRunner::new(profile, "synthscapes")?.with_seeds(2)?;
//! let em = runner.run(Study::Em)?;
//! for c in &em.claims {
//!     println!("{c}"); // REPRODUCED / CONTRADICTED / INCONCLUSIVE, the paired CI
//! }
//! let figure = study_figures(Study::Em, &em.cells).remove(0).inline()?; // shows in evcxr
//! # let _ = (runs, figure);
//! # Ok(())
//! # }
//! ```
//!
//! # References
//! Liang, Wang, Zhu, Yang, *GMMSeg*, NeurIPS 2022: Tables 1–5, Fig. 5, §4.3.

mod cache;
mod figures;
pub mod fingerprint;
mod jobs;
mod model;
pub mod report;
mod studies;
pub mod summary;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::data::{open_dataset, Dataset, DatasetOptions};
use crate::error::{GmmSegError, Result};
use crate::train::config::{HeadKind, TrainConfig, ValidTrainConfig};

pub use cache::{read_rows, runs_frame, write_csv_atomic as write_csv, write_rows_merged, RunRow};
pub use figures::{study_figures, write_figures, FigureKind, StudyFigure};
pub use jobs::default_jobs;
pub use model::{BinRecord, ModelRecord};
pub use studies::{specs_for, Measurement, RunSpec, CUMULATIVE_PREFIX, FLAVOUR_STEPS};
pub use summary::{
    claims_csv_frame, decide_paired, evaluate_claims, summarize_rows, summarize_runs,
    summary_frame, Claim, ClaimKind, SummaryRow, Verdict, CLAIMS_CSV_COLUMNS, NOT_WORSE_MARGIN,
    PAPER_THROUGHPUT_RATIO,
};

/// Column of the runs and summary tables: study name.
pub const COL_STUDY: &str = "study";
/// Column: dataset spec (`synthscapes`, `digitscenes`, `folder:PATH`).
pub const COL_DATASET: &str = "dataset";
/// Column: the variant compared (e.g. `softmax`, `gmmseg`, `vanilla`, `mahalanobis`).
pub const COL_VARIANT: &str = "variant";
/// Column: a grouping within the study (decoder, anomaly split, `val`); `""` when none.
pub const COL_GROUP: &str = "group";
/// Column: a numeric parameter of the variant (EM loops, M, reliability-bin centre); null when
/// none.
pub const COL_PARAM: &str = "param";
/// Column: seed of the run.
pub const COL_SEED: &str = "seed";
/// Column: metric name (`miou`, `acc`, `macc`, `ece`, `mce`, `nll`, `brier`, `auroc`, `ap`,
/// `fpr95`, `train_s`, `step_ms`, `images_per_s`, `throughput_vs_softmax`, `bin_accuracy`,
/// `bin_confidence`, `bin_count`).
pub const COL_METRIC: &str = "metric";
/// Column: the metric's value.
pub const COL_VALUE: &str = "value";
/// Column: hash of the run's full identity (the cache key).
pub const COL_HASH: &str = "hash";
/// Column: key of the trained model (`models/<key>.json` holds its config and evaluations).
pub const COL_MODEL: &str = "model";
/// Column: [`code_fingerprint`] of the code that produced the row.
pub const COL_CODE: &str = "code";
/// Summary column: number of seeds.
pub const COL_N: &str = "n";
/// Summary column: mean over seeds.
pub const COL_MEAN: &str = "mean";
/// Summary column: sample standard deviation (null for one seed).
pub const COL_STD: &str = "std";
/// Summary column: half-width of the 95% Student-t CI of the mean (null for one seed).
pub const COL_CI95: &str = "ci95";
/// Summary column: lower end of the CI (the mean for one seed).
pub const COL_LOWER: &str = "lower";
/// Summary column: upper end of the CI (the mean for one seed).
pub const COL_UPPER: &str = "upper";
/// Summary column: the claim stated on a comparison row (null on plain rows).
pub const COL_CLAIM: &str = "claim";
/// Summary column: on a claim row, how many paired seeds are on the claim's side (null on
/// plain rows).
pub const COL_AGREE: &str = "agree";
/// Summary column: on a claim row, `reproduced`, `contradicted` or `inconclusive` (null on
/// plain rows and on a claim whose variants were not run).
pub const COL_VERDICT: &str = "verdict";

/// One ablation study of the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Study {
    /// Table 1: softmax vs GMMSeg mIoU with FCN and DeepLabV3+-lite.
    MainResults,
    /// Table 2: anomaly scores (MSP, entropy, max-logit, Mahalanobis vs GMMSeg likelihood).
    Anomaly,
    /// Table 3: GMMSeg vs a post-hoc GMM on the softmax model's features.
    OnlineVsPosthoc,
    /// Table 4: generative (EM) vs discriminative (SGD) GMM head.
    GenVsDisc,
    /// Table 5a: vanilla vs Sinkhorn EM, 1/5/10 EM loops per iteration.
    Em,
    /// Table 5b: components per class M.
    Components,
    /// Fig. 5: reliability diagrams and ECE.
    Calibration,
    /// Paper flavour vs reference-code flavour (DESIGN §1).
    Flavours,
    /// §4.3: train-step time and inference throughput.
    Runtime,
}

impl Study {
    /// Every study, in the order `ablate all` runs them (cheapest shared models first).
    pub const ALL: [Study; 9] = [
        Study::MainResults,
        Study::Anomaly,
        Study::OnlineVsPosthoc,
        Study::GenVsDisc,
        Study::Calibration,
        Study::Runtime,
        Study::Flavours,
        Study::Em,
        Study::Components,
    ];

    /// The name used on the command line and for the CSV file.
    pub fn name(&self) -> &'static str {
        match self {
            Study::MainResults => "main_results",
            Study::Anomaly => "anomaly",
            Study::OnlineVsPosthoc => "online_vs_posthoc",
            Study::GenVsDisc => "gen_vs_disc",
            Study::Em => "em",
            Study::Components => "components",
            Study::Calibration => "calibration",
            Study::Flavours => "flavours",
            Study::Runtime => "runtime",
        }
    }

    /// Parses a study name (`main_results`, … or with dashes).
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming `study` and listing the valid names.
    pub fn parse(name: &str) -> Result<Study> {
        let n = name.replace('-', "_");
        Study::ALL
            .into_iter()
            .find(|s| s.name() == n)
            .ok_or_else(|| {
                GmmSegError::input(
                    "study",
                    format!(
                        "unknown study `{name}`; expected all or one of {}",
                        Study::ALL.map(|s| s.name()).join(", ")
                    ),
                )
            })
    }
}

impl std::fmt::Display for Study {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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
        }
    }

    /// The quick profile: 150 AdamW steps (half the `train` command's quick run, which the
    /// ten-minute budget for all studies needs; on SynthScapes the softmax baseline reaches
    /// 0.56 mIoU by then), 64×64 images, 64 validation and 64 images per anomaly split,
    /// 2 seeds, the paper's M ∈ {1, 3, 5, 10, 15} and 1/5/10 EM loops. Measured: `ablate all`
    /// trains 32 models in 396 s on SynthScapes (two cores shared with other jobs).
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
        }
    }

    /// The full profile: 500 steps (3,000 on DigitScenes, see
    /// [`ExperimentProfile::dataset_steps`]), 200 validation and 300 images per anomaly
    /// split, 5 seeds (paired claims: two seeds decide nothing, t_{0.975,4} = 2.78), every M
    /// in 1..=15, post-hoc fits on 256 images with 20 EM iterations. Measured on two cores
    /// with the former code at 3 seeds: SynthScapes ≈ 1 hour; DigitScenes, at six times the
    /// steps, about 1.5 hours per seed.
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

/// Everything that identifies one run of a study: the hash of its JSON is the cache key of
/// its rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunIdentity {
    /// Study name.
    pub study: String,
    /// The spec's name within the study.
    pub spec: String,
    /// Dataset spec.
    pub dataset: String,
    /// Seed.
    pub seed: u64,
    /// Full training configuration (seed and dataset included).
    pub train: TrainConfig,
    /// Evaluation settings.
    pub eval: EvalSettings,
    /// [`code_fingerprint`] of the code that trained and measured the run.
    pub code: String,
}

/// Warm-up and timed rounds of the runtime study's paired timing
/// (`model::paired_throughput_ratio`), as in `cargo bench --bench gmmseg`: one batch per
/// model per round (a few milliseconds each at the default network), so the median of 160
/// round ratios costs seconds. Not part of the cache key: to retime, rerun the study with
/// `--force` (the models are kept and nothing is retrained).
pub const PAIRED_TIMING_ROUNDS: (usize, usize) = (30, 160);

/// SHA-256 (hex) of a serialisable value's JSON.
pub(crate) fn sha256_json<T: Serialize>(v: &T) -> String {
    let json = serde_json::to_string(v).expect("serialisable");
    Sha256::digest(json.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The fingerprint of this build's model and evaluation code (16 hex digits), computed by
/// `build.rs` over the sources that [`fingerprint`] covers. Every run key and model key
/// includes it: rows and models of other code are retrained, never reused.
pub fn code_fingerprint() -> &'static str {
    env!("GMMSEG_CODE_FINGERPRINT")
}

/// The fingerprint [`code_fingerprint`] would have for the sources under `src_dir` (the same
/// computation as `build.rs`).
///
/// # Errors
/// [`GmmSegError::Io`] when the tree cannot be read.
pub fn fingerprint_of_tree(src_dir: &Path) -> Result<String> {
    let files = fingerprint::covered_sources(src_dir).map_err(|e| GmmSegError::io(src_dir, e))?;
    Ok(fingerprint::fingerprint(&files))
}

impl RunIdentity {
    /// The identity of a run of the code with fingerprint `code`.
    pub fn new(
        study: Study,
        spec: &str,
        dataset: &str,
        seed: u64,
        train: TrainConfig,
        eval: EvalSettings,
        code: &str,
    ) -> Self {
        RunIdentity {
            study: study.name().into(),
            spec: spec.into(),
            dataset: dataset.into(),
            seed,
            train,
            eval,
            code: code.into(),
        }
    }

    /// The cache key of the run's rows.
    pub fn hash(&self) -> String {
        sha256_json(self)
    }
}

/// The key of a trained model: hash of the code fingerprint, the full training config, the
/// evaluation settings and the dataset (first 16 hex digits).
pub fn model_key(code: &str, train: &TrainConfig, eval: &EvalSettings, dataset: &str) -> String {
    sha256_json(&(code, train, eval, dataset))[..16].to_string()
}

/// `--shard K/N`: run only the specs whose index `i` satisfies `i % N == K − 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 1-based shard index K.
    pub index: usize,
    /// Number of shards N.
    pub count: usize,
}

impl Shard {
    /// Parses `K/N` with 1 ≤ K ≤ N.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming `--shard`.
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || {
            GmmSegError::input(
                "--shard",
                format!("must be K/N with 1 ≤ K ≤ N (e.g. 2/4), got `{s}`"),
            )
        };
        let (k, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = k.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }

    /// Whether the run with this index belongs to the shard.
    pub fn contains(&self, i: usize) -> bool {
        i % self.count == self.index - 1
    }
}

/// What one study returns.
#[derive(Clone, Debug)]
pub struct StudyResult {
    /// The study.
    pub study: Study,
    /// Long-format runs (columns [`COL_STUDY`] … [`COL_MODEL`]).
    pub runs: DataFrame,
    /// Summary over seeds plus claim rows (columns [`COL_STUDY`] … [`COL_VERDICT`]).
    pub summary: DataFrame,
    /// The summary cells (what the figures are drawn from).
    pub cells: Vec<SummaryRow>,
    /// The claims, evaluated.
    pub claims: Vec<Claim>,
    /// Runs whose rows came from the CSV cache.
    pub cached_runs: usize,
    /// Runs computed in this call.
    pub computed_runs: usize,
    /// Runs skipped because they are not cached (cache-only runners).
    pub missing_runs: usize,
}

impl StudyResult {
    /// The runs table, summary, cells and claims of `rows`, with the (cached, computed,
    /// missing) run counts.
    fn of_rows(
        study: Study,
        rows: &[cache::RunRow],
        counts: (usize, usize, usize),
    ) -> Result<Self> {
        let runs = runs_frame(rows)?;
        let (cells, claims) = summary::summarize_study(study, rows)?;
        let summary = summary::summary_frame(&cells, &claims)?;
        Ok(StudyResult {
            study,
            runs,
            summary,
            cells,
            claims,
            cached_runs: counts.0,
            computed_runs: counts.1,
            missing_runs: counts.2,
        })
    }
}

/// A progress event: one run of a study finished (cached or computed).
#[derive(Clone, Debug)]
pub struct RunProgress<'a> {
    /// The study.
    pub study: Study,
    /// The run's spec name and seed.
    pub spec: &'a str,
    /// Seed.
    pub seed: u64,
    /// Whether the rows came from the cache.
    pub cached: bool,
}

/// A progress callback of [`ExperimentRunner`].
type ProgressFn = Box<dyn FnMut(&RunProgress<'_>)>;

/// One run of a study's plan: its spec and seed, the model's training configuration, the
/// run's identity and hash, and whether its rows are cached.
struct PlannedRun<'a> {
    spec: &'a RunSpec,
    seed: u64,
    train: TrainConfig,
    id: RunIdentity,
    hash: String,
    hit: bool,
}

/// Runs studies for one profile and dataset, with the caches described in the module docs.
pub struct ExperimentRunner {
    profile: ValidProfile,
    dataset: String,
    seeds: Vec<u64>,
    results_dir: PathBuf,
    force: bool,
    cache_only: bool,
    shard: Option<Shard>,
    jobs: usize,
    models: HashMap<String, ModelRecord>,
    fresh: HashSet<String>,
    trained: usize,
    data: Option<model::Splits>,
    progress: Option<ProgressFn>,
    code: String,
    rows_of_code: Option<String>,
}

/// The default results folder: `data/results/<profile>/` under the crate's `data/` folder
/// (see [`crate::data::data_dir`]), or `$GMMSEG_RESULTS_DIR/<profile>/` when set.
pub fn default_results_dir(profile: &str) -> PathBuf {
    match std::env::var_os("GMMSEG_RESULTS_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join(profile),
        _ => crate::data::data_dir().join("results").join(profile),
    }
}

impl ExperimentRunner {
    /// A runner for `profile` on `dataset` with the profile's default seeds and results
    /// folder ([`default_results_dir`]).
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming `dataset` for an empty spec.
    pub fn new(profile: ValidProfile, dataset: &str) -> Result<Self> {
        if dataset.trim().is_empty() {
            return Err(GmmSegError::input("dataset", "must not be empty"));
        }
        let seeds = (0..profile.get().seeds as u64).collect();
        let results_dir = default_results_dir(&profile.get().name);
        Ok(ExperimentRunner {
            profile,
            dataset: dataset.to_string(),
            seeds,
            results_dir,
            force: false,
            cache_only: false,
            shard: None,
            jobs: 1,
            models: HashMap::new(),
            fresh: HashSet::new(),
            trained: 0,
            data: None,
            progress: None,
            code: code_fingerprint().to_string(),
            rows_of_code: None,
        })
    }

    /// Uses seeds `0..n`.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming `seeds` for 0.
    pub fn with_seeds(mut self, n: usize) -> Result<Self> {
        if n == 0 {
            return Err(GmmSegError::input("seeds", "must be ≥ 1, got 0"));
        }
        self.seeds = (0..n as u64).collect();
        Ok(self)
    }

    /// Writes and reads the caches under `dir` instead of the default folder.
    pub fn with_results_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.results_dir = dir.as_ref().to_path_buf();
        self
    }

    /// Recomputes every run (each model is still trained only once in this runner's life).
    pub fn with_force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// Reads cached rows only: runs missing from the cache are skipped (counted in
    /// [`StudyResult::missing_runs`]) instead of trained. For notebooks that show the
    /// committed results of a long profile without starting hours of training.
    pub fn with_cache_only(mut self, cache_only: bool) -> Self {
        self.cache_only = cache_only;
        self
    }

    /// Runs only one shard of each study's runs.
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Keys the caches by `code` instead of this build's [`code_fingerprint`]: what a build of
    /// other code would see (tests use it to show that another fingerprint retrains).
    pub fn with_code_fingerprint(mut self, code: &str) -> Self {
        self.code = code.to_string();
        self
    }

    /// The code fingerprint that keys this runner's caches.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// Trains and keys nothing: reports the rows of the CSVs whose `code` column is `code`
    /// (this runner's dataset and seeds), matched by cell rather than by run hash — to
    /// re-read the committed results of other code (e.g. the `legacy-…` rows of the full
    /// profile, computed before the fingerprint existed) with today's summaries and claim
    /// rules. The output says whose rows they are; nothing is written to the CSVs.
    pub fn with_rows_of_code(mut self, code: Option<&str>) -> Self {
        self.rows_of_code = code.map(str::to_string);
        self
    }

    fn assemble_rows_of_code(
        &self,
        study: Study,
        rows: Vec<cache::RunRow>,
        code: &str,
        planned: usize,
    ) -> Result<StudyResult> {
        let rows: Vec<cache::RunRow> = rows
            .into_iter()
            .filter(|r| r.code == code && r.dataset == self.dataset && self.seeds.contains(&r.seed))
            .collect();
        let runs_found = rows
            .iter()
            .map(|r| r.hash.as_str())
            .collect::<HashSet<_>>()
            .len();
        StudyResult::of_rows(
            study,
            &rows,
            (runs_found, 0, planned.saturating_sub(runs_found)),
        )
    }

    /// Calls `f` after every run (for progress bars).
    pub fn with_progress(mut self, f: impl FnMut(&RunProgress<'_>) + 'static) -> Self {
        self.progress = Some(Box::new(f));
        self
    }

    /// Where this runner's CSVs, model records and figures go.
    pub fn results_dir(&self) -> &Path {
        &self.results_dir
    }

    /// The profile.
    pub fn profile(&self) -> &ValidProfile {
        &self.profile
    }

    /// The dataset spec.
    pub fn dataset(&self) -> &str {
        &self.dataset
    }

    /// Models trained by this runner so far (cache misses of the model cache).
    pub fn trained_models(&self) -> usize {
        self.trained
    }

    /// The specs of `study` for this runner's profile and dataset, crossed with its seeds,
    /// in run order, with the shard applied.
    ///
    /// # Errors
    /// Dataset errors (the anomaly study needs to know which anomaly splits exist).
    pub fn planned_runs(&self, study: Study) -> Result<Vec<(RunSpec, u64)>> {
        let specs = specs_for(study, &self.profile, &self.dataset)?;
        let mut out = Vec::new();
        for &seed in &self.seeds {
            for s in &specs {
                out.push((s.clone(), seed));
            }
        }
        Ok(out
            .into_iter()
            .enumerate()
            .filter(|(i, _)| self.shard.is_none_or(|sh| sh.contains(*i)))
            .map(|(_, r)| r)
            .collect())
    }

    fn splits(&mut self) -> Result<&model::Splits> {
        if self.data.is_none() {
            self.data = Some(model::Splits::open(&self.profile, &self.dataset)?);
        }
        Ok(self.data.as_ref().expect("just opened"))
    }

    /// The record of the model trained with `train` (from memory, disk or by training it).
    fn record(&mut self, train: &TrainConfig) -> Result<ModelRecord> {
        let eval = self.profile.eval_settings();
        let key = model_key(&self.code, train, &eval, &self.dataset);
        if let Some(r) = self.cached_record(&key)? {
            return Ok(r);
        }
        let profile = self.profile.clone();
        let splits = self.splits()?;
        let record = model::train_and_evaluate(&profile, splits, train, &eval, &key)?;
        self.keep_trained(record)
    }

    /// The record of model `key` if this runner has it in memory or on disk (and may reuse
    /// it: under `force`, only a model trained in this runner's life).
    fn cached_record(&mut self, key: &str) -> Result<Option<ModelRecord>> {
        if let Some(r) = self.models.get(key) {
            if !self.force || self.fresh.contains(key) {
                return Ok(Some(r.clone()));
            }
        }
        if !self.force {
            if let Some(r) = cache::read_model(&self.model_path(key), key)? {
                self.models.insert(key.to_string(), r.clone());
                return Ok(Some(r));
            }
        }
        Ok(None)
    }

    /// Writes a freshly trained model's record to the model cache and keeps it in memory.
    fn keep_trained(&mut self, record: ModelRecord) -> Result<ModelRecord> {
        self.trained += 1;
        cache::write_model(&self.model_path(&record.key), &record)?;
        self.models.insert(record.key.clone(), record.clone());
        self.fresh.insert(record.key.clone());
        Ok(record)
    }

    fn model_path(&self, key: &str) -> PathBuf {
        self.results_dir.join("models").join(format!("{key}.json"))
    }

    /// The runtime study's paired measurement for a non-softmax spec: its inference
    /// throughput relative to the same network with a softmax head, timed in alternating
    /// rounds on the validation split (`throughput_vs_softmax`; 0.944 in the paper's §4.3).
    fn paired_throughput(&mut self, spec: &RunSpec, train: &TrainConfig) -> Result<Measurement> {
        let mut softmax = train.clone();
        softmax.head = HeadKind::Softmax;
        let batches = self.profile.get().runtime_batches;
        let splits = self.splits()?;
        let ratio =
            model::paired_throughput_ratio(train, &softmax, splits, batches, PAIRED_TIMING_ROUNDS)?;
        Ok(Measurement {
            variant: spec.head.to_string(),
            group: String::new(),
            param: None,
            metric: "throughput_vs_softmax".into(),
            value: ratio,
        })
    }

    /// Runs one study: reuses cached rows, computes the missing ones (training only the
    /// models not yet recorded), merges them into `<study>.csv`, and returns the runs of this
    /// runner's seeds (all shards' rows present in the cache, not only this shard's), their
    /// summary and the claims.
    ///
    /// # Errors
    /// Dataset, training, evaluation and I/O errors; [`GmmSegError::File`] for a corrupt CSV.
    pub fn run(&mut self, study: Study) -> Result<StudyResult> {
        let plan = self.planned_runs(study)?;
        let csv = self.results_dir.join(format!("{}.csv", study.name()));
        let cached_rows = cache::read_rows(&csv)?;
        if let Some(code) = self.rows_of_code.clone() {
            return self.assemble_rows_of_code(study, cached_rows, &code, plan.len());
        }
        let cached_hashes: HashSet<&str> = cached_rows.iter().map(|r| r.hash.as_str()).collect();
        let eval = self.profile.eval_settings();
        let mut new_rows = Vec::new();
        let mut identities = Vec::new();
        let (mut cached, mut computed, mut missing) = (0, 0, 0);
        let runs: Vec<PlannedRun<'_>> = plan
            .iter()
            .map(|(spec, seed)| {
                let train =
                    spec.train_config(&self.profile.train_for(&self.dataset), &self.dataset, *seed);
                let id = RunIdentity::new(
                    study,
                    &spec.name,
                    &self.dataset,
                    *seed,
                    train.clone(),
                    eval.clone(),
                    &self.code,
                );
                let hash = id.hash();
                let hit = !self.force && cached_hashes.contains(hash.as_str());
                PlannedRun {
                    spec,
                    seed: *seed,
                    train,
                    id,
                    hash,
                    hit,
                }
            })
            .collect();
        // the models the missing runs need, `jobs` at a time (a no-op for one job: the loop
        // below then trains them in turn); the runs whose progress it reported are marked
        let reported = self.train_ahead(study, &runs)?;
        for (run, reported) in runs.into_iter().zip(reported) {
            let PlannedRun {
                spec,
                seed,
                train,
                id,
                hash,
                hit,
            } = run;
            if hit {
                cached += 1;
            } else if self.cache_only {
                missing += 1;
                continue;
            } else {
                let record = self.record(&train)?;
                let mut measured = studies::measure(study, spec, &record);
                if study == Study::Runtime && spec.head != HeadKind::Softmax {
                    measured.push(self.paired_throughput(spec, &train)?);
                }
                for m in measured {
                    new_rows.push(cache::RunRow {
                        study: study.name().into(),
                        dataset: self.dataset.clone(),
                        variant: m.variant,
                        group: m.group,
                        param: m.param,
                        seed,
                        metric: m.metric,
                        value: m.value,
                        hash: hash.clone(),
                        model: record.key.clone(),
                        code: self.code.clone(),
                    });
                }
                identities.push((hash.clone(), id));
                computed += 1;
            }
            if let (Some(p), false) = (self.progress.as_mut(), reported) {
                p(&RunProgress {
                    study,
                    spec: &spec.name,
                    seed,
                    cached: hit,
                });
            }
        }
        let stale = cached_rows.iter().any(|r| r.code != self.code);
        let all_rows = if (new_rows.is_empty() && !self.force) && (!stale || self.cache_only) {
            cached_rows
        } else {
            std::fs::create_dir_all(&self.results_dir)
                .map_err(|e| GmmSegError::io(&self.results_dir, e))?;
            cache::write_rows_merged(&csv, &new_rows, &identities, &self.code)?
        };
        // Keep the rows of every spec (any shard) of this runner's seeds whose hash is the
        // current one (a cache-only runner of other code may still see stale rows in the
        // file: they are not reported).
        // hash → position of its spec in the study's list, so that tables and figures follow
        // the study's order, not the order in which runs happened to be cached
        let mut wanted: HashMap<String, usize> = HashMap::new();
        for &seed in &self.seeds {
            for (position, spec) in specs_for(study, &self.profile, &self.dataset)?
                .into_iter()
                .enumerate()
            {
                let train =
                    spec.train_config(&self.profile.train_for(&self.dataset), &self.dataset, seed);
                wanted.insert(
                    RunIdentity::new(
                        study,
                        &spec.name,
                        &self.dataset,
                        seed,
                        train,
                        eval.clone(),
                        &self.code,
                    )
                    .hash(),
                    position,
                );
            }
        }
        let mut rows: Vec<cache::RunRow> = all_rows
            .into_iter()
            .filter(|r| wanted.contains_key(&r.hash))
            .collect();
        rows.sort_by_key(|r| wanted[&r.hash]);
        StudyResult::of_rows(study, &rows, (cached, computed, missing))
    }
}

/// Runs `study` with `profile` (`tiny`, `quick`, `full`) on `dataset` over seeds `0..seeds`,
/// caching under [`default_results_dir`]; returns (runs, summary).
///
/// # Errors
/// As [`ExperimentRunner::run`]; an unknown profile names `--profile`.
pub fn run_study(
    study: Study,
    profile: &str,
    dataset: &str,
    seeds: usize,
) -> Result<(DataFrame, DataFrame)> {
    let p = ExperimentProfile::by_name(profile)?.check()?;
    let mut r = ExperimentRunner::new(p, dataset)?.with_seeds(seeds)?;
    let out = r.run(study)?;
    Ok((out.runs, out.summary))
}

macro_rules! study_fn {
    ($($(#[$doc:meta])* $name:ident => $study:expr;)*) => {$(
        $(#[$doc])*
        ///
        /// Returns (runs, summary) as [`run_study`] does.
        ///
        /// # Errors
        /// As [`run_study`].
        pub fn $name(profile: &str, dataset: &str, seeds: usize) -> Result<(DataFrame, DataFrame)> {
            run_study($study, profile, dataset, seeds)
        }
    )*};
}

study_fn! {
    /// Table 1: softmax vs GMMSeg, FCN and DeepLabV3+-lite.
    main_results => Study::MainResults;
    /// Table 2: MSP, entropy, max-logit, Mahalanobis vs GMMSeg likelihood on every anomaly split.
    anomaly => Study::Anomaly;
    /// Table 3: GMMSeg vs a post-hoc GMM on the softmax model's features.
    online_vs_posthoc => Study::OnlineVsPosthoc;
    /// Table 4: generative vs discriminative GMM head.
    gen_vs_disc => Study::GenVsDisc;
    /// Table 5a: vanilla vs Sinkhorn EM at several EM loops per iteration.
    em => Study::Em;
    /// Table 5b: components per class M.
    components => Study::Components;
    /// Fig. 5: reliability bins and ECE of softmax vs GMMSeg.
    calibration => Study::Calibration;
    /// Paper flavour vs reference-code flavour.
    flavours => Study::Flavours;
    /// §4.3: train-step time and inference images/s, softmax vs GMMSeg.
    runtime => Study::Runtime;
}

/// A file-name-safe name of a dataset spec, for the per-dataset folder of summaries and
/// figures: `synthscapes`, `digitscenes`, `folder:/a/b` → `folder_a_b` (at most 64
/// characters, a hash suffix keeping long specs apart).
pub fn dataset_slug(dataset: &str) -> String {
    let mut s: String = dataset
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    while s.contains("__") {
        s = s.replace("__", "_");
    }
    let s = s.trim_matches('_').to_string();
    if s.len() > 64 {
        format!("{}_{}", &s[..48], &sha256_json(&dataset)[..8])
    } else {
        s
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

#[cfg(test)]
mod tests {
    use super::*;

    fn eval() -> EvalSettings {
        ExperimentProfile::by_name("tiny")
            .unwrap()
            .check()
            .unwrap()
            .eval_settings()
    }

    #[test]
    fn keys_change_with_the_code_fingerprint() {
        let eval = eval();
        let t = TrainConfig::quick();
        assert_ne!(
            model_key("aaaa", &t, &eval, "synthscapes"),
            model_key("bbbb", &t, &eval, "synthscapes")
        );
        let id = |code: &str| {
            RunIdentity::new(
                Study::Em,
                "s",
                "synthscapes",
                0,
                t.clone(),
                eval.clone(),
                code,
            )
            .hash()
        };
        assert_ne!(id("aaaa"), id("bbbb"));
        assert_eq!(code_fingerprint().len(), 16);
    }

    /// The build's fingerprint is the one computed over this checkout's `src/`, and editing
    /// one line of the EM code changes it, while comments, formatting, unit tests and the
    /// presentation code do not.
    #[test]
    fn one_changed_line_of_the_em_code_changes_the_fingerprint() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        assert_eq!(fingerprint_of_tree(&src).unwrap(), code_fingerprint());
        let dir = tempfile::tempdir().unwrap();
        copy_tree(&src, dir.path());
        let base = fingerprint_of_tree(dir.path()).unwrap();
        let online = dir.path().join("gmm/online.rs");
        let text = std::fs::read_to_string(&online).unwrap();
        let edit = |from: &str, to: &str| {
            assert!(text.contains(from), "{from}");
            std::fs::write(&online, text.replacen(from, to, 1)).unwrap();
            fingerprint_of_tree(dir.path()).unwrap()
        };
        assert_ne!(edit("self.iteration += 1;", "self.iteration += 2;"), base);
        assert_eq!(edit("//! Online EM", "//! Online EM, edited"), base);
        assert_eq!(edit("self.iteration += 1;", "self.iteration  +=  1;"), base);
        assert_eq!(
            edit("self.iteration += 1;", "self.iteration\n            += 1;"),
            base
        );
        std::fs::write(&online, &text).unwrap();
        let plot = dir.path().join("plot/mod.rs");
        let p = std::fs::read_to_string(&plot).unwrap();
        std::fs::write(&plot, format!("{p}\nfn extra() {{}}\n")).unwrap();
        assert_eq!(fingerprint_of_tree(dir.path()).unwrap(), base);
    }

    fn copy_tree(from: &Path, to: &Path) {
        for e in std::fs::read_dir(from).unwrap() {
            let p = e.unwrap().path();
            let dest = to.join(p.file_name().unwrap());
            if p.is_dir() {
                std::fs::create_dir_all(&dest).unwrap();
                copy_tree(&p, &dest);
            } else {
                std::fs::copy(&p, &dest).unwrap();
            }
        }
    }
}
