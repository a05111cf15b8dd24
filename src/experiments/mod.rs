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
//! | `flavours` | released code | paper flavour vs reference-code flavour (and the paper's τ) |
//! | `runtime` | §4.3 | train-step time and inference images/s, softmax vs GMMSeg |
//! | `gap` | issue 19 | the tuned GMMSeg with one factor changed at a time (variance floor, projection ReLU, temperature, class prior, sampler, EM features, momentum warm-up) |
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
//! writing drops the rows of superseded runs and, of the dataset it writes, those of other
//! code (another dataset's stay until that dataset is retrained). For `folder:PATH` datasets
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
//! softmax baseline needs that long to tell the digits apart). Measured at five seeds on two
//! cores, the full profile takes 56 minutes for SynthScapes and about four to five hours for
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
//! # Where things live
//! This file only re-exports. `studies` (the [`Study`] enum, what each trains and measures),
//! `profile` (profiles and evaluation settings), `identity` (run identity, model keys, the
//! code fingerprint), `runner` (the [`ExperimentRunner`] and one function per study),
//! `jobs` (models in parallel), `model` (training and evaluating one model into its
//! [`ModelRecord`]), `cache` (the CSV cache and its lock), `schema` (column names),
//! [`summary`] (seed statistics and claims), `figures`, [`report`] (notebook display),
//! [`tuning`] (the search on the `tune` split that chooses the presets; `tuned` holds its
//! choices) and [`fingerprint`].
//!
//! # References
//! Liang, Wang, Zhu, Yang, *GMMSeg*, NeurIPS 2022: Tables 1–5, Fig. 5, §4.3.

mod cache;
mod figures;
pub mod fingerprint;
mod identity;
mod jobs;
mod model;
mod profile;
pub mod report;
mod runner;
mod schema;
mod studies;
pub mod summary;
mod tuned;
pub mod tuning;

pub use cache::{read_rows, runs_frame, write_csv_atomic as write_csv, write_rows_merged, RunRow};
pub use figures::{study_figures, write_figures, FigureKind, StudyFigure};
pub use identity::{code_fingerprint, dataset_slug, fingerprint_of_crate, model_key, RunIdentity};
pub use jobs::default_jobs;
pub use model::{BinRecord, ModelRecord};
pub use profile::{open_split, EvalSettings, ExperimentProfile, ValidProfile};
pub use runner::{
    anomaly, calibration, components, default_results_dir, em, flavours, gap, gen_vs_disc,
    main_results, online_vs_posthoc, run_study, runtime, ExperimentRunner, RunProgress, Shard,
    StudyResult, PAIRED_TIMING_ROUNDS,
};
pub use schema::*;
pub use studies::{
    specs_for, Measurement, RunSpec, Study, CUMULATIVE_PREFIX, FLAVOUR_STEPS, GAP_FACTORS,
    GAP_PREFILL_BATCHES, GAP_SHARED_FACTORS, SOFTMAX_PREFIX,
};
pub use summary::{
    claims_csv_frame, decide_paired, evaluate_claims, summarize_rows, summarize_runs,
    summary_frame, Claim, ClaimKind, SummaryRow, Verdict, CLAIMS_CSV_COLUMNS, NOT_WORSE_MARGIN,
    PAPER_THROUGHPUT_RATIO,
};
