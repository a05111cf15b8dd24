//! The study runner: plans a study's runs over seeds (and a [`Shard`] of them), reuses the
//! cached rows of the current code, trains and evaluates what is missing (each model once,
//! `--jobs N` at a time), merges the rows into the study's CSV and decides its claims; plus
//! one convenience function per study.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use polars::prelude::DataFrame;

use super::cache::{self, runs_frame};
use super::identity::{code_fingerprint, model_key, RunIdentity};
use super::model::{self, ModelRecord};
use super::profile::{ExperimentProfile, ValidProfile};
use super::studies::{self, specs_for, Measurement, RunSpec, Study};
use super::summary::{self, Claim, SummaryRow};
use crate::error::{GmmSegError, Result};
use crate::train::config::{HeadConfig, HeadKind, TrainConfig};

/// Warm-up and timed rounds of the runtime study's paired timing
/// (`model::paired_throughput_ratio`), as in `cargo bench --bench gmmseg`: one batch per
/// model per round (a few milliseconds each at the default network), so the median of 160
/// round ratios costs seconds. Not part of the cache key: to retime, rerun the study with
/// `--force` (the models are kept and nothing is retrained).
pub const PAIRED_TIMING_ROUNDS: (usize, usize) = (30, 160);

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
    /// Long-format runs (columns [`COL_STUDY`](super::COL_STUDY) …
    /// [`COL_MODEL`](super::COL_MODEL)).
    pub runs: DataFrame,
    /// Summary over seeds plus claim rows (columns [`COL_STUDY`](super::COL_STUDY) …
    /// [`COL_VERDICT`](super::COL_VERDICT)).
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
    pub(super) fn of_rows(
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
pub(super) struct PlannedRun<'a> {
    pub(super) spec: &'a RunSpec,
    pub(super) seed: u64,
    pub(super) train: TrainConfig,
    pub(super) id: RunIdentity,
    pub(super) hash: String,
    pub(super) hit: bool,
}

/// Runs studies for one profile and dataset, with the caches described in the module docs.
pub struct ExperimentRunner {
    pub(super) profile: ValidProfile,
    pub(super) dataset: String,
    pub(super) seeds: Vec<u64>,
    pub(super) results_dir: PathBuf,
    pub(super) force: bool,
    pub(super) cache_only: bool,
    pub(super) shard: Option<Shard>,
    pub(super) jobs: usize,
    pub(super) models: HashMap<String, ModelRecord>,
    pub(super) fresh: HashSet<String>,
    pub(super) trained: usize,
    pub(super) data: Option<model::Splits>,
    pub(super) progress: Option<ProgressFn>,
    pub(super) code: String,
    pub(super) rows_of_code: Option<String>,
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

    pub(super) fn assemble_rows_of_code(
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

    pub(super) fn splits(&mut self) -> Result<&model::Splits> {
        if self.data.is_none() {
            self.data = Some(model::Splits::open(&self.profile, &self.dataset)?);
        }
        Ok(self.data.as_ref().expect("just opened"))
    }

    /// The record of the model trained with `train` (from memory, disk or by training it).
    pub(super) fn record(&mut self, train: &TrainConfig) -> Result<ModelRecord> {
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
    pub(super) fn cached_record(&mut self, key: &str) -> Result<Option<ModelRecord>> {
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
    pub(super) fn keep_trained(&mut self, record: ModelRecord) -> Result<ModelRecord> {
        self.trained += 1;
        cache::write_model(&self.model_path(&record.key), &record)?;
        self.models.insert(record.key.clone(), record.clone());
        self.fresh.insert(record.key.clone());
        Ok(record)
    }

    pub(super) fn model_path(&self, key: &str) -> PathBuf {
        self.results_dir.join("models").join(format!("{key}.json"))
    }

    /// The runtime study's paired measurement for a non-softmax spec: its inference
    /// throughput relative to the same network with a softmax head, timed in alternating
    /// rounds on the validation split (`throughput_vs_softmax`; 0.944 in the paper's §4.3).
    pub(super) fn paired_throughput(
        &mut self,
        spec: &RunSpec,
        train: &TrainConfig,
    ) -> Result<Measurement> {
        let mut softmax = train.clone();
        softmax.head = HeadConfig::Softmax;
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
                let train = spec.train_config(&self.profile, &self.dataset, *seed)?;
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
                Ok(PlannedRun {
                    spec,
                    seed: *seed,
                    train,
                    id,
                    hash,
                    hit,
                })
            })
            .collect::<Result<_>>()?;
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
                let train = spec.train_config(&self.profile, &self.dataset, seed)?;
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
    /// Why the generative head trails softmax: one factor at a time over the tuned GMMSeg.
    gap => Study::Gap;
}
