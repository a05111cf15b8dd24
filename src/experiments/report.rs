//! What a notebook shows of a study: its settings read from the environment (so that the
//! set-up script can execute every notebook in the quick or full profile without editing
//! them), a run over datasets that prints one compact line per run, a wide table of the
//! headline metrics that renders as HTML in Jupyter and as text elsewhere, and the claims.
//!
//! ```no_run
//! use gmmseg::experiments::{report::NotebookSettings, Study};
//! # fn main() -> gmmseg::Result<()> {
//! let settings = NotebookSettings::from_env()?; // GMMSEG_PROFILE, _DATASETS, _RERUN, _TRAIN_MISSING
//! for r in settings.run(Study::Em)? {
//!     println!("{}", r.table(&["miou", "step_ms"])?);
//!     print!("{}", r.claims_text());
//! }
//! # Ok(())
//! # }
//! ```

use std::fmt;

use polars::prelude::{Column, DataFrame};

use super::{ExperimentProfile, ExperimentRunner, Study, StudyResult, ValidProfile};
use crate::error::{GmmSegError, Result};
use crate::train::config::{HeadKind, TrainConfig};

/// Environment variable naming the profile (`quick` unless set).
pub const PROFILE_ENV: &str = "GMMSEG_PROFILE";
/// Environment variable listing datasets, comma-separated (unless set: `synthscapes`, and
/// `digitscenes` too in the full profile).
pub const DATASETS_ENV: &str = "GMMSEG_DATASETS";
/// Environment variable: `1` recomputes every run instead of reading the cache.
pub const RERUN_ENV: &str = "GMMSEG_RERUN";
/// Environment variable: `0` shows only cached runs instead of training missing ones.
pub const TRAIN_MISSING_ENV: &str = "GMMSEG_TRAIN_MISSING";
/// Environment variable: the optimiser steps of every training a notebook runs itself (the
/// quickstart's, the heat maps', the playground's), unless unset. The test command sets a
/// few dozen so that those trainings take seconds through the same code; cached studies
/// are not affected.
pub const TRAIN_STEPS_ENV: &str = "GMMSEG_TRAIN_STEPS";

mod gap;
mod playground;
pub use gap::gap_tables;
pub use playground::{Idea, IdeaComparison, PairedMetric};

/// What a notebook runs: profile, datasets, whether to recompute, how many seeds.
#[derive(Clone, Debug, PartialEq)]
pub struct NotebookSettings {
    /// `tiny`, `quick` or `full`. Default `quick`.
    pub profile: String,
    /// Dataset specs. Default SynthScapes, plus DigitScenes in the `full` profile: the
    /// quick profile's 150 steps do not train DigitScenes (see
    /// [`ExperimentProfile::dataset_steps`]), so its quick numbers would mislead.
    pub datasets: Vec<String>,
    /// Recompute every run (`force`) instead of reusing cached rows. Default false: the
    /// committed results under `data/results/<profile>/` load in well under a second.
    pub rerun: bool,
    /// Seeds `0..n`; `None` = the profile's.
    pub seeds: Option<usize>,
    /// Train runs missing from the cache (default true). `false` shows what is cached and
    /// says how many runs are missing: `scripts/run-notebooks.sh --profile full` sets it, so
    /// that showing the committed full results never starts hours of training.
    pub train_missing: bool,
    /// Steps of the trainings a notebook runs itself ([`NotebookSettings::train_config`]);
    /// `None` (default) = the profile's. Never applied to a study's cached runs.
    pub train_steps: Option<usize>,
    /// Models a study trains at once ([`ExperimentRunner::with_jobs`]); `None` (default) =
    /// [`super::default_jobs`], one per thread. The rows do not depend on it.
    pub jobs: Option<usize>,
}

impl Default for NotebookSettings {
    fn default() -> Self {
        Self {
            profile: "quick".into(),
            datasets: vec!["synthscapes".into()],
            rerun: false,
            seeds: None,
            train_missing: true,
            train_steps: None,
            jobs: None,
        }
    }
}

impl NotebookSettings {
    /// The defaults, overridden by [`PROFILE_ENV`], [`DATASETS_ENV`], [`RERUN_ENV`],
    /// [`TRAIN_MISSING_ENV`] and [`TRAIN_STEPS_ENV`].
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming the variable for an unknown profile, an empty
    /// dataset list, a flag other than 0/1/true/false or a step count that is not a
    /// positive integer.
    pub fn from_env() -> Result<Self> {
        let var = |k: &str| std::env::var(k).ok();
        let mut s = Self::from_vars(var(PROFILE_ENV), var(DATASETS_ENV), var(RERUN_ENV))?;
        if let Some(v) = var(TRAIN_MISSING_ENV) {
            s.train_missing = parse_flag(TRAIN_MISSING_ENV, &v)?.unwrap_or(true);
        }
        if let Some(v) = var(TRAIN_STEPS_ENV) {
            s.train_steps = parse_steps(&v)?;
        }
        Ok(s)
    }

    /// The checked experiment profile these settings name.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming [`PROFILE_ENV`] for an unknown profile.
    pub fn valid_profile(&self) -> Result<ValidProfile> {
        ExperimentProfile::by_name(&self.profile)
            .map_err(|_| {
                GmmSegError::input(
                    PROFILE_ENV,
                    format!("must be tiny, quick or full, got `{}`", self.profile),
                )
            })?
            .check()
    }

    /// The training configuration a notebook trains with on `dataset` with `head`: the
    /// profile's, exactly as its studies train (so seed 0 of a study's `gmmseg` run is this
    /// model), with [`NotebookSettings::train_steps`] if set. Check it with
    /// [`TrainConfig::check`] before training.
    ///
    /// # Errors
    /// As [`NotebookSettings::valid_profile`].
    pub fn train_config(&self, dataset: &str, head: HeadKind) -> Result<TrainConfig> {
        let mut c = self.valid_profile()?.head_config(dataset, head)?;
        if let Some(steps) = self.train_steps {
            c.steps = steps;
        }
        Ok(c)
    }

    /// [`NotebookSettings::from_env`] with the variables' values given.
    ///
    /// # Errors
    /// As [`NotebookSettings::from_env`].
    pub fn from_vars(
        profile: Option<String>,
        datasets: Option<String>,
        rerun: Option<String>,
    ) -> Result<Self> {
        let mut s = Self::default();
        if let Some(p) = profile {
            if !p.is_empty() {
                ExperimentProfile::by_name(&p).map_err(|_| {
                    GmmSegError::input(
                        PROFILE_ENV,
                        format!("must be tiny, quick or full, got `{p}`"),
                    )
                })?;
                if p == "full" {
                    s.datasets.push("digitscenes".into());
                }
                s.profile = p;
            }
        }
        if let Some(d) = datasets {
            let list: Vec<String> = d
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect();
            if list.is_empty() {
                return Err(GmmSegError::input(DATASETS_ENV, "lists no dataset"));
            }
            s.datasets = list;
        }
        if let Some(r) = rerun {
            s.rerun = parse_flag(RERUN_ENV, &r)?.unwrap_or(false);
        }
        Ok(s)
    }

    /// Runs `study` on every dataset (cached rows are reused unless `rerun`), printing one
    /// line per run, and returns one result per dataset in order.
    ///
    /// # Errors
    /// As [`ExperimentRunner::run`].
    pub fn run(&self, study: Study) -> Result<StudyResults> {
        self.run_in(study, None)
    }

    /// [`NotebookSettings::run`] with the results folder given (`None`: the default).
    ///
    /// # Errors
    /// As [`ExperimentRunner::run`].
    pub fn run_in(
        &self,
        study: Study,
        results_dir: Option<&std::path::Path>,
    ) -> Result<StudyResults> {
        let profile = self.valid_profile()?;
        let mut out = Vec::with_capacity(self.datasets.len());
        for dataset in &self.datasets {
            let mut runner = ExperimentRunner::new(profile.clone(), dataset)?
                .with_force(self.rerun)
                .with_cache_only(!self.train_missing && !self.rerun)
                .with_jobs(self.jobs.unwrap_or_else(super::default_jobs))?;
            if let Some(n) = self.seeds {
                runner = runner.with_seeds(n)?;
            }
            if let Some(dir) = results_dir {
                runner = runner.with_results_dir(dir.join(&self.profile));
            }
            let total = runner.planned_runs(study)?.len();
            let started = std::time::Instant::now();
            let mut done = 0usize;
            let name = dataset.clone();
            runner = runner.with_progress(move |p| {
                done += 1;
                // cached runs arrive in bulk: one line for them, one per trained run
                if !p.cached || done == total {
                    println!(
                        "[{} {name}] {done}/{total} runs, {} seed {}{} ({:.0} s)",
                        p.study.name(),
                        p.spec,
                        p.seed,
                        if p.cached { ", cached" } else { "" },
                        started.elapsed().as_secs_f64()
                    );
                }
            });
            let r = runner.run(study)?;
            println!(
                "{} on {dataset} ({} profile): {} runs from the cache, {} computed{}",
                study.name(),
                self.profile,
                r.cached_runs,
                r.computed_runs,
                if r.missing_runs > 0 {
                    format!(
                        ", {} not cached and not trained ({TRAIN_MISSING_ENV}=0)",
                        r.missing_runs
                    )
                } else {
                    String::new()
                }
            );
            out.push(r);
        }
        Ok(StudyResults(out))
    }
}

impl NotebookSettings {
    /// How this profile's presets were chosen ([`tuning_view`] of
    /// `<results>/<profile>/tuning/`).
    ///
    /// # Errors
    /// As [`tuning_view`].
    pub fn tuning(&self) -> Result<Html> {
        tuning_view(
            &super::default_results_dir(&self.profile).join("tuning"),
            &self.profile,
        )
    }
}

/// The tuning study's files in `dir` (`gmmseg ablate tuning`) for a notebook: the choice per
/// head beside its untuned default, and every trial's tune mIoU against its learning rate,
/// one colour per head and dataset, the chosen trials circled. A profile never tuned (no
/// `chosen.json`) gets a sentence saying so, not an error.
///
/// # Errors
/// [`GmmSegError::File`] naming `chosen.json` or `trials.csv` when one does not parse;
/// drawing errors.
pub fn tuning_view(dir: &std::path::Path, profile: &str) -> Result<Html> {
    use super::tuning::Chosen;
    use crate::plot::ablation::{scatter_log_x, ChartLabels, ScatterSeries};
    use polars::prelude::{CsvReadOptions, DataType, PolarsError, SerReader};
    let mut h = Html::default();
    let chosen_path = dir.join("chosen.json");
    let text = match std::fs::read_to_string(&chosen_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            h.push(&format!(
                "<p>The {} profile has not been tuned: its runs take the untuned defaults \
                 (<code>gmmseg ablate tuning --profile {} --dataset D</code> searches them on \
                 the tune split).</p>",
                escape_html(profile),
                escape_html(profile)
            ));
            return Ok(h);
        }
        Err(e) => return Err(GmmSegError::io(&chosen_path, e)),
    };
    let chosen: Chosen =
        serde_json::from_str(&text).map_err(|e| GmmSegError::file(&chosen_path, e.to_string()))?;
    let opt = |v: Option<String>| v.unwrap_or_else(|| "—".into());
    let col = |f: &dyn Fn(&super::tuning::HeadChoice) -> String| -> Vec<String> {
        chosen.heads.iter().map(f).collect()
    };
    let frame = DataFrame::new(
        chosen.heads.len(),
        vec![
            Column::new("head".into(), col(&|c| c.head.to_string())),
            Column::new("trial".into(), col(&|c| c.trial.to_string())),
            Column::new("lr".into(), col(&|c| c.values.lr.to_string())),
            Column::new(
                "weight decay".into(),
                col(&|c| c.values.weight_decay.to_string()),
            ),
            Column::new(
                "τ".into(),
                col(&|c| opt(c.values.momentum.map(|v| v.to_string()))),
            ),
            Column::new(
                "variance floor".into(),
                col(&|c| opt(c.values.var_reg.map(|v| v.to_string()))),
            ),
            Column::new(
                "start".into(),
                col(&|c| {
                    opt(c
                        .values
                        .warm_start
                        .map(|w| if w { "warm" } else { "random" }.to_string()))
                }),
            ),
            Column::new(
                "mean tune mIoU".into(),
                col(&|c| format!("{:.4}", c.tune_miou)),
            ),
            Column::new(
                "untuned default".into(),
                col(&|c| format!("{:.4}", c.default_tune_miou)),
            ),
        ],
    )
    .map_err(|e| GmmSegError::file(&chosen_path, e.to_string()))?;
    h.push(
        &Table {
            title: format!(
                "Presets of the {} profile, chosen on the tune split of {} ({} trials per head)",
                chosen.profile,
                chosen.datasets.join(", "),
                chosen.heads.first().map_or(0, |c| c.trials_compared)
            ),
            frame,
        }
        .to_html(),
    );
    let csv = dir.join("trials.csv");
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(csv.clone()))
        .and_then(|r| r.finish())
        .map_err(|e| GmmSegError::file(&csv, e.to_string()))?;
    let bad = |e: PolarsError| GmmSegError::file(&csv, e.to_string());
    let column = |name: &str, dtype: DataType| df.column(name).and_then(|c| c.cast(&dtype));
    let strings = |name: &str| -> Result<Vec<String>> {
        let c = column(name, DataType::String).map_err(bad)?;
        let values = c.str().map_err(bad)?.iter();
        Ok(values.map(|v| v.unwrap_or_default().to_string()).collect())
    };
    let numbers = |name: &str| -> Result<Vec<f64>> {
        let c = column(name, DataType::Float64).map_err(bad)?;
        let values = c.f64().map_err(bad)?.iter();
        Ok(values.map(|v| v.unwrap_or(f64::NAN)).collect())
    };
    let (datasets, heads, trials) = (strings("dataset")?, strings("head")?, numbers("trial")?);
    let (lr, miou) = (numbers("lr")?, numbers("tune_miou")?);
    let mut series: Vec<ScatterSeries> = Vec::new();
    let mut highlight = Vec::new();
    for i in 0..df.height() {
        let name = format!("{} on {}", heads[i], datasets[i]);
        match series.iter_mut().find(|s| s.name == name) {
            Some(s) => s.points.push((lr[i], miou[i])),
            None => series.push(ScatterSeries {
                name,
                points: vec![(lr[i], miou[i])],
            }),
        }
        if chosen
            .heads
            .iter()
            .any(|c| c.head.to_string() == heads[i] && c.trial as f64 == trials[i])
        {
            highlight.push((lr[i], miou[i]));
        }
    }
    let labels = ChartLabels {
        title: format!(
            "Tuning trials ({} profile): score against learning rate",
            chosen.profile
        ),
        x: "peak learning rate (log scale)".into(),
        y: "tune mIoU (one seed)".into(),
        y_bounds: Some((0.0, 1.0)),
    };
    let figure = crate::plot::inline((820, 520), |a| {
        scatter_log_x(a, &series, &highlight, &labels)
    })?;
    h.push(&figure.0);
    h.push(&format!(
        "<p>Rule: {}. Every trial: <code>{}</code>.</p>",
        escape_html(&chosen.rule),
        escape_html(&csv.display().to_string())
    ));
    Ok(h)
}

/// The results of one study on every dataset of a notebook's settings. As a cell's value it
/// shows itself — the table of the study's headline metrics, its figures and its claims
/// with verdicts — so that a notebook cell is `settings.run(Study::Em)?` and nothing else.
/// It dereferences to the `Vec` of per-dataset results for everything else.
#[derive(Clone, Debug)]
pub struct StudyResults(pub Vec<StudyResult>);

impl std::ops::Deref for StudyResults {
    type Target = Vec<StudyResult>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<'a> IntoIterator for &'a StudyResults {
    type Item = &'a StudyResult;
    type IntoIter = std::slice::Iter<'a, StudyResult>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl IntoIterator for StudyResults {
    type Item = StudyResult;
    type IntoIter = std::vec::IntoIter<StudyResult>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// The headline metrics a study's table shows by default.
pub fn headline_metrics(study: Study) -> &'static [&'static str] {
    match study {
        Study::MainResults => &["miou", "acc", "ece", "train_s"],
        Study::Anomaly => &["auroc", "ap", "fpr95", "siou", "ppv", "mean_f1"],
        Study::OnlineVsPosthoc => &["miou", "acc", "ece"],
        Study::GenVsDisc => &["miou", "ece", "auroc", "ap", "fpr95"],
        Study::Em => &["miou", "ece", "step_ms", "em_marginal_error_max"],
        Study::Components => &["miou", "ece", "auroc", "step_ms"],
        Study::Calibration => &[
            "acc",
            "ece",
            "classwise_ece",
            "smooth_ece",
            "nll",
            "brier",
            "temperature",
        ],
        Study::Flavours => &["miou", "ece", "auroc", "step_ms"],
        Study::Runtime => &["step_ms", "images_per_s", "throughput_vs_softmax"],
        Study::Gap => &["miou", "ece", "auroc", "em_floor_share_mean"],
    }
}

impl StudyResults {
    /// Tables (the [`headline_metrics`]), figures and claims as one HTML page.
    ///
    /// # Errors
    /// Drawing errors; a study without any of its headline metrics.
    pub fn html(&self) -> Result<Html> {
        let mut h = Html::default();
        let Some(first) = self.0.first() else {
            h.push("<p>no dataset selected</p>");
            return Ok(h);
        };
        let study = first.study;
        h.push(&format!("<h3>{}</h3>", escape_html(study.name())));
        h.0.push_str(&tables(&self.0, headline_metrics(study))?.0);
        h.0.push_str(&figures(&self.0)?.0);
        h.push(&claims_html(&self.0));
        Ok(h)
    }

    /// Shows [`StudyResults::html`] in an evcxr cell (a drawing error is shown as text).
    pub fn evcxr_display(&self) {
        match self.html() {
            Ok(h) => h.evcxr_display(),
            Err(e) => println!("error: {e}"),
        }
    }
}

/// The claims of several results as an HTML table: dataset, claim, paired A − B with its
/// 95% CI, seeds agreeing, verdict (coloured).
pub fn claims_html(results: &[StudyResult]) -> String {
    let mut s = String::from(
        "<table><thead><tr><th>dataset</th><th>claim (paper's numbers)</th><th>A − B (paired mean)</th><th>95% CI ±</th><th>seeds agreeing</th><th>verdict</th></tr></thead><tbody>",
    );
    for r in results {
        for c in &r.claims {
            let num = |x: Option<f64>, sign: bool| match x {
                Some(v) if sign => format!("{v:+.3}"),
                Some(v) => format!("{v:.3}"),
                None => "—".into(),
            };
            let (verdict, colour) = match c.verdict {
                Some(super::Verdict::Reproduced) => ("reproduced", "#1a7f37"),
                Some(super::Verdict::Contradicted) => ("contradicted", "#cf222e"),
                Some(super::Verdict::Inconclusive) => ("inconclusive", "#6e7781"),
                None => ("not run", "#6e7781"),
            };
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td style=\"color:{colour};font-weight:bold\">{verdict}</td></tr>",
                escape_html(r.dataset()),
                escape_html(&c.statement),
                num(c.mean_diff, true),
                num(c.ci95, false),
                c.agree,
                c.n,
            ));
        }
    }
    s.push_str("</tbody></table>");
    s
}

/// A positive step count for [`TRAIN_STEPS_ENV`]; empty → `None`.
fn parse_steps(value: &str) -> Result<Option<usize>> {
    match value.trim() {
        "" => Ok(None),
        v => match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(GmmSegError::input(
                TRAIN_STEPS_ENV,
                format!("must be a positive integer, got `{v}`"),
            )),
        },
    }
}

/// `0`/`false` → false, `1`/`true` → true, empty → `None`; anything else names `var`.
fn parse_flag(var: &str, value: &str) -> Result<Option<bool>> {
    match value.trim() {
        "" => Ok(None),
        "0" | "false" => Ok(Some(false)),
        "1" | "true" => Ok(Some(true)),
        other => Err(GmmSegError::input(
            var,
            format!("must be 0, 1, true or false, got `{other}`"),
        )),
    }
}

impl StudyResult {
    /// The dataset of this result (empty when it holds no rows).
    pub fn dataset(&self) -> &str {
        self.cells.first().map(|c| c.dataset.as_str()).unwrap_or("")
    }

    /// One row per (variant, group, parameter), one column per metric in `metrics` holding
    /// "mean ± 95% CI (n)", in the order the study lists its variants.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming `metrics` when it is empty or names no metric of
    /// this study.
    pub fn table(&self, metrics: &[&str]) -> Result<Table> {
        if metrics.is_empty() {
            return Err(GmmSegError::input("metrics", "name at least one metric"));
        }
        let known: Vec<&str> = metrics
            .iter()
            .copied()
            .filter(|m| self.cells.iter().any(|c| c.metric == *m))
            .collect();
        if known.is_empty() {
            let mut have: Vec<&str> = self.cells.iter().map(|c| c.metric.as_str()).collect();
            have.sort_unstable();
            have.dedup();
            return Err(GmmSegError::input(
                "metrics",
                format!(
                    "none of {metrics:?} is a metric of {}; it has {have:?}",
                    self.study.name()
                ),
            ));
        }
        type RowKey = (String, String, Option<u64>);
        let mut keys: Vec<(RowKey, Option<f64>)> = Vec::new();
        for c in &self.cells {
            let k = (
                c.variant.clone(),
                c.group.clone(),
                c.param.map(f64::to_bits),
            );
            if known.contains(&c.metric.as_str()) && !keys.iter().any(|(x, _)| *x == k) {
                keys.push((k, c.param));
            }
        }
        let cell = |k: &RowKey, m: &str| -> String {
            self.cells
                .iter()
                .find(|c| {
                    c.metric == m
                        && c.variant == k.0
                        && c.group == k.1
                        && c.param.map(f64::to_bits) == k.2
                })
                .map(|c| match c.stats.ci95 {
                    Some(ci) => format!("{:.3} ± {:.3} ({})", c.stats.mean, ci, c.stats.n),
                    None => format!("{:.3} ({})", c.stats.mean, c.stats.n),
                })
                .unwrap_or_default()
        };
        let mut columns = vec![
            Column::new(
                "variant".into(),
                keys.iter().map(|(k, _)| k.0.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                "group".into(),
                keys.iter().map(|(k, _)| k.1.clone()).collect::<Vec<_>>(),
            ),
        ];
        if keys.iter().any(|(_, p)| p.is_some()) {
            columns.push(Column::new(
                "param".into(),
                keys.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
            ));
        }
        for m in &known {
            columns.push(Column::new(
                (*m).into(),
                keys.iter().map(|(k, _)| cell(k, m)).collect::<Vec<_>>(),
            ));
        }
        let frame = DataFrame::new(keys.len(), columns)
            .map_err(|e| GmmSegError::input("metrics", format!("cannot build the table: {e}")))?;
        Ok(Table {
            title: format!(
                "{} — {} (mean ± 95% CI (seeds))",
                self.study.name(),
                self.dataset()
            ),
            frame,
        })
    }

    /// The claims, one line each, prefixed by the dataset.
    pub fn claims_text(&self) -> String {
        let mut s = String::new();
        for c in &self.claims {
            s.push_str(&format!("[{}] {c}\n", self.dataset()));
        }
        s
    }

    /// The study's figures drawn from this result's summary.
    pub fn figures(&self) -> Vec<super::StudyFigure> {
        super::study_figures(self.study, &self.cells)
    }
}

/// Escapes text for an HTML element's content.
fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Several HTML fragments (tables, figures, headings) shown as **one** cell output: evcxr
/// keeps only the last rich output of a cell, so a loop calling `evcxr_display` on each
/// table would show just the last one.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Html(pub String);

impl Html {
    /// Appends a fragment.
    pub fn push(&mut self, fragment: &str) -> &mut Self {
        self.0.push_str("<div style=\"margin-bottom:1em\">");
        self.0.push_str(fragment);
        self.0.push_str("</div>\n");
        self
    }

    /// Appends a small heading (escaped).
    pub fn heading(&mut self, text: &str) -> &mut Self {
        self.push(&format!("<h4>{}</h4>", escape_html(text)))
    }

    /// Prints the fragments in evcxr's rich-output protocol.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT",
            self.0
        );
    }
}

/// The notebooks' "fitted mixtures" figure: up to 400 evaluation-mode features per class
/// from the first 32 images of `ds`, mapped into the head's mixture space, with the fitted
/// components (means, 1σ and 2σ ellipses) of `classes`, projected on the features' first two
/// principal directions.
///
/// # Errors
/// As [`crate::train::posthoc::mixture_sample`] (a head without a mixture names `model`);
/// drawing errors.
pub fn mixture_figure(
    model: &mut crate::nn::segnet::SegModel,
    ds: &dyn crate::data::Dataset,
    classes: &[usize],
) -> Result<crate::plot::InlineSvg> {
    use crate::plot::gmm_view::{gmm_pca_view, GmmViewData, GmmViewOptions};
    use crate::train::posthoc::{mixture_sample, PosthocConfig};
    let mut pc = PosthocConfig::new(ds.num_classes(), model.head.feature_dim());
    pc.max_images = 32;
    pc.max_pixels_per_class = 400;
    let s = mixture_sample(model, ds, &pc)?;
    let names = ds.class_names();
    let data = GmmViewData {
        features: s.data.features.view(),
        labels: &s.data.labels,
        means: s.params.means.view(),
        variances: s.params.variances.view(),
        classes,
        class_names: &names,
    };
    crate::plot::inline((760, 600), |a| {
        gmm_pca_view(a, &data, &GmmViewOptions::default())
    })
}

/// The [`StudyResult::table`] of every result, one after the other.
///
/// # Errors
/// As [`StudyResult::table`].
pub fn tables(results: &[StudyResult], metrics: &[&str]) -> Result<Html> {
    let mut h = Html::default();
    for r in results {
        h.push(&r.table(metrics)?.to_html());
    }
    Ok(h)
}

/// Every figure of every result, each under a heading naming its dataset.
///
/// # Errors
/// Drawing errors.
pub fn figures(results: &[StudyResult]) -> Result<Html> {
    let mut h = Html::default();
    for r in results {
        for f in r.figures() {
            h.heading(&format!("{} — {}", r.dataset(), f.name));
            h.push(&f.inline()?.0);
        }
    }
    Ok(h)
}

/// The claims of several studies as a Markdown table (what README and
/// `data/results/<profile>/<dataset>/claims.md` show): study, claim with the paper's
/// numbers, the paired mean difference A − B with its 95% CI half-width, the seeds that
/// agree in sign out of the pairs, and the verdict (see [`super::summary`]).
pub fn claims_markdown(results: &[StudyResult]) -> String {
    let mut s = String::from(CLAIMS_MARKDOWN_HEADER);
    for r in results {
        for c in &r.claims {
            s.push_str(&claims_markdown_row(
                r.study.name(),
                &c.statement,
                c.mean_diff,
                c.ci95,
                (c.agree, c.n),
                c.verdict,
            ));
        }
    }
    s
}

const CLAIMS_MARKDOWN_HEADER: &str = "| study | claim (paper's numbers) | A − B (paired mean) | 95% CI ± | seeds agreeing | verdict |\n|---|---|---|---|---|---|\n";

/// One line of a Markdown claims table; the one format of `claims.md` and README.
fn claims_markdown_row(
    study: &str,
    statement: &str,
    mean_diff: Option<f64>,
    ci95: Option<f64>,
    (agree, n): (usize, usize),
    verdict: Option<super::Verdict>,
) -> String {
    let mean = mean_diff
        .map(|x| format!("{x:+.3}"))
        .unwrap_or_else(|| "—".into());
    // one seed has no interval: show a dash, not a misleading ±0
    let ci = ci95
        .map(|x| format!("{x:.3}"))
        .unwrap_or_else(|| "—".into());
    let verdict = match verdict {
        Some(super::Verdict::Reproduced) => "**reproduced**",
        Some(super::Verdict::Contradicted) => "**contradicted**",
        Some(super::Verdict::Inconclusive) => "inconclusive",
        None => "not run",
    };
    format!(
        "| {study} | {} | {mean} | {ci} | {agree}/{n} | {verdict} |\n",
        statement.replace('|', "\\|"),
    )
}

/// The Markdown claims table of a committed `claims.csv` (the columns of
/// [`super::CLAIMS_CSV_COLUMNS`]), row for row in [`claims_markdown`]'s format, so that
/// README's tables are generated from the results rather than typed.
///
/// # Errors
/// [`GmmSegError::File`] naming `path` for a missing, unreadable or malformed file.
pub fn claims_markdown_from_csv(path: &std::path::Path) -> Result<String> {
    claims_markdown_of_studies(path, &StudyFilter::All)
}

/// Which studies' claims a generated block shows: the marker's optional second word,
/// `only=gap` or `except=gap` (comma-separated study names). The `gap` study's claims are
/// per factor and many, so README gives them a block of their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StudyFilter {
    /// Every study.
    All,
    /// These studies only.
    Only(Vec<String>),
    /// Every study but these.
    Except(Vec<String>),
}

impl StudyFilter {
    /// Parses `only=a,b` or `except=a,b` (`None`: every study).
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming the claims block for another word.
    pub fn parse(word: Option<&str>) -> Result<Self> {
        let list = |v: &str| v.split(',').map(|s| s.trim().to_string()).collect();
        match word {
            None => Ok(StudyFilter::All),
            Some(w) => match w.split_once('=') {
                Some(("only", v)) => Ok(StudyFilter::Only(list(v))),
                Some(("except", v)) => Ok(StudyFilter::Except(list(v))),
                _ => Err(GmmSegError::input(
                    "claims block",
                    format!(
                        "expected `only=STUDIES` or `except=STUDIES` after the path, got `{w}`"
                    ),
                )),
            },
        }
    }

    fn keeps(&self, study: &str) -> bool {
        match self {
            StudyFilter::All => true,
            StudyFilter::Only(v) => v.iter().any(|s| s == study),
            StudyFilter::Except(v) => !v.iter().any(|s| s == study),
        }
    }
}

/// [`claims_markdown_from_csv`] with the claims of the studies `filter` keeps.
///
/// # Errors
/// As [`claims_markdown_from_csv`].
pub fn claims_markdown_of_studies(path: &std::path::Path, filter: &StudyFilter) -> Result<String> {
    use polars::prelude::{CsvReadOptions, DataType, SerReader};
    let bad = |e: String| GmmSegError::file(path, e);
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| bad(e.to_string()))?;
    let text = |name: &str| -> Result<Vec<String>> {
        let c = df
            .column(name)
            .and_then(|c| c.cast(&DataType::String))
            .map_err(|e| bad(format!("column `{name}`: {e}")))?;
        let v = c.str().map_err(|e| bad(e.to_string()))?;
        Ok(v.iter().map(|x| x.unwrap_or("").to_string()).collect())
    };
    let number = |name: &str| -> Result<Vec<Option<f64>>> {
        let c = df
            .column(name)
            .and_then(|c| c.cast(&DataType::Float64))
            .map_err(|e| bad(format!("column `{name}`: {e}")))?;
        let v = c.f64().map_err(|e| bad(e.to_string()))?;
        Ok(v.iter().collect())
    };
    let (study, claim, verdict) = (text("study")?, text("claim")?, text("verdict")?);
    let (mean, ci, agree, n) = (
        number("mean_diff")?,
        number("ci95")?,
        number("agree")?,
        number("n")?,
    );
    let mut s = String::from(CLAIMS_MARKDOWN_HEADER);
    for i in 0..df.height() {
        if !filter.keeps(&study[i]) {
            continue;
        }
        let verdict = match verdict[i].as_str() {
            "reproduced" => Some(super::Verdict::Reproduced),
            "contradicted" => Some(super::Verdict::Contradicted),
            "inconclusive" => Some(super::Verdict::Inconclusive),
            "" | "not run" => None,
            other => return Err(bad(format!("row {}: unknown verdict `{other}`", i + 2))),
        };
        let count = |x: Option<f64>| x.map_or(0, |v| v as usize);
        s.push_str(&claims_markdown_row(
            &study[i],
            &claim[i],
            mean[i],
            ci[i],
            (count(agree[i]), count(n[i])),
            verdict,
        ));
    }
    Ok(s)
}

/// The opening marker of a generated claims block in a Markdown file:
/// `<!-- claims: PATH -->` or `<!-- claims: PATH only=gap -->` ([`StudyFilter`]), PATH
/// relative to the file's folder; the block ends at [`CLAIMS_BLOCK_END`].
pub const CLAIMS_BLOCK_START: &str = "<!-- claims: ";
/// The closing marker of a generated claims block.
pub const CLAIMS_BLOCK_END: &str = "<!-- /claims -->";

/// `text` (a Markdown file in `base`) with every generated claims block rewritten from the
/// `claims.csv` its marker names ([`claims_markdown_from_csv`]); everything else unchanged.
/// Returns the new text and the number of blocks.
///
/// # Errors
/// [`GmmSegError::InvalidInput`] for a marker without its end; as
/// [`claims_markdown_from_csv`] for each named file.
pub fn update_claims_blocks(text: &str, base: &std::path::Path) -> Result<(String, usize)> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut blocks = 0;
    while let Some(at) = rest.find(CLAIMS_BLOCK_START) {
        let after = &rest[at + CLAIMS_BLOCK_START.len()..];
        let close = after
            .find("-->")
            .ok_or_else(|| GmmSegError::input("claims block", "a marker without `-->`"))?;
        let spec = after[..close].trim();
        let mut words = spec.split_whitespace();
        let csv = words.next().unwrap_or("");
        let filter = StudyFilter::parse(words.next())?;
        let marker_end = at + CLAIMS_BLOCK_START.len() + close + 3;
        let end = rest[marker_end..].find(CLAIMS_BLOCK_END).ok_or_else(|| {
            GmmSegError::input(
                "claims block",
                format!("`{CLAIMS_BLOCK_START}{spec} -->` has no `{CLAIMS_BLOCK_END}`"),
            )
        })?;
        out.push_str(&rest[..marker_end]);
        out.push('\n');
        out.push_str(&claims_markdown_of_studies(&base.join(csv), &filter)?);
        rest = &rest[marker_end + end..];
        blocks += 1;
    }
    out.push_str(rest);
    Ok((out, blocks))
}

/// A small table for people: a title and a polars DataFrame of strings and numbers, shown
/// as an HTML table by evcxr (Jupyter) and as aligned text by `Display`.
#[derive(Clone, Debug)]
pub struct Table {
    /// Caption.
    pub title: String,
    /// The data.
    pub frame: DataFrame,
}

impl Table {
    fn cells(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let names: Vec<String> = self
            .frame
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        let rows = (0..self.frame.height())
            .map(|i| {
                self.frame
                    .columns()
                    .iter()
                    .map(|c| match c.get(i) {
                        Ok(v) if v.is_null() => String::new(),
                        Ok(v) => v.str_value().to_string(),
                        Err(_) => String::new(),
                    })
                    .collect()
            })
            .collect();
        (names, rows)
    }

    /// Prints the table as HTML in evcxr's rich-output protocol (evcxr calls this when the
    /// table is a cell's value).
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT",
            self.to_html()
        );
    }

    /// The table as an HTML fragment (a `<table>` with a caption).
    pub fn to_html(&self) -> String {
        let esc = escape_html;
        let (names, rows) = self.cells();
        let mut h = format!(
            "<table><caption style=\"text-align:left;font-weight:bold\">{}</caption><thead><tr>",
            esc(&self.title)
        );
        for n in &names {
            h.push_str(&format!("<th>{}</th>", esc(n)));
        }
        h.push_str("</tr></thead><tbody>");
        for r in rows {
            h.push_str("<tr>");
            for v in r {
                h.push_str(&format!("<td>{}</td>", esc(&v)));
            }
            h.push_str("</tr>");
        }
        h.push_str("</tbody></table>");
        h
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (names, rows) = self.cells();
        let width = |j: usize| {
            rows.iter()
                .map(|r| r[j].chars().count())
                .chain([names[j].chars().count()])
                .max()
                .unwrap_or(0)
        };
        let widths: Vec<usize> = (0..names.len()).map(width).collect();
        writeln!(f, "{}", self.title)?;
        let line = |cells: &[String]| {
            cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
        };
        writeln!(f, "{}", line(&names).trim_end())?;
        for r in &rows {
            writeln!(f, "{}", line(r).trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiments::summary::SummaryRow;
    use crate::metrics::Summary;

    fn cell(
        variant: &str,
        param: Option<f64>,
        metric: &str,
        mean: f64,
        ci: Option<f64>,
    ) -> SummaryRow {
        SummaryRow {
            study: "em".into(),
            dataset: "synthscapes".into(),
            variant: variant.into(),
            group: "val".into(),
            param,
            metric: metric.into(),
            stats: Summary {
                n: if ci.is_some() { 2 } else { 1 },
                mean,
                std: ci.map(|c| c / 12.706),
                ci95: ci,
            },
        }
    }

    fn result(cells: Vec<SummaryRow>) -> StudyResult {
        StudyResult {
            study: Study::Em,
            runs: DataFrame::empty(),
            summary: DataFrame::empty(),
            cells,
            claims: Vec::new(),
            cached_runs: 0,
            computed_runs: 0,
            missing_runs: 0,
        }
    }

    #[test]
    fn table_pivots_metrics_into_columns_in_study_order() {
        let r = result(vec![
            cell("vanilla", Some(1.0), "miou", 0.5, Some(0.1)),
            cell("vanilla", Some(1.0), "ece", 0.02, Some(0.01)),
            cell("sinkhorn", Some(1.0), "miou", 0.6, None),
        ]);
        let t = r.table(&["miou", "ece", "nope"]).unwrap();
        assert_eq!(t.frame.height(), 2);
        let text = t.to_string();
        assert!(text.contains("0.500 ± 0.100 (2)"), "{text}");
        assert!(text.contains("0.600 (1)"), "{text}");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("variant"), "{text}");
        assert!(lines[2].starts_with("vanilla") && lines[3].starts_with("sinkhorn"));
        // the missing ECE of sinkhorn is an empty cell, not a panic
        assert!(t.to_html().contains("<td></td>"));
        assert!(r.table(&["nope"]).is_err());
        assert!(r.table(&[]).is_err());
    }

    #[test]
    fn settings_parse_the_environment_and_reject_bad_values() {
        let d = NotebookSettings::from_vars(None, None, None).unwrap();
        assert_eq!(d, NotebookSettings::default());
        let f = NotebookSettings::from_vars(Some("full".into()), None, None).unwrap();
        assert_eq!(f.datasets, vec!["synthscapes", "digitscenes"]);
        let s = NotebookSettings::from_vars(
            Some("full".into()),
            Some(" digitscenes , folder:/x ".into()),
            Some("1".into()),
        )
        .unwrap();
        assert_eq!(s.profile, "full");
        assert_eq!(s.datasets, vec!["digitscenes", "folder:/x"]);
        assert!(s.rerun);
        let e = NotebookSettings::from_vars(Some("huge".into()), None, None).unwrap_err();
        assert!(e.to_string().contains(PROFILE_ENV), "{e}");
        assert!(NotebookSettings::from_vars(None, Some(" , ".into()), None).is_err());
        let e = NotebookSettings::from_vars(None, None, Some("yes".into())).unwrap_err();
        assert!(e.to_string().contains(RERUN_ENV), "{e}");
        assert_eq!(parse_steps(" 24 ").unwrap(), Some(24));
        assert_eq!(parse_steps("").unwrap(), None);
        for bad in ["0", "-3", "ten", "2.5"] {
            let e = parse_steps(bad).unwrap_err();
            assert!(e.to_string().contains(TRAIN_STEPS_ENV), "{e}");
        }
    }

    #[test]
    fn tables_of_several_results_make_one_output() {
        let a = result(vec![cell("vanilla", None, "miou", 0.5, None)]);
        let mut b = a.clone();
        b.cells[0].dataset = "digitscenes".into();
        let h = tables(&[a, b], &["miou"]).unwrap();
        assert_eq!(h.0.matches("<table>").count(), 2);
        assert!(h.0.contains("synthscapes") && h.0.contains("digitscenes"));
        let mut g = Html::default();
        g.heading("a<b").push("<svg/>");
        assert!(g.0.contains("a&lt;b") && g.0.contains("<svg/>"));
    }

    #[test]
    fn without_train_missing_nothing_is_trained() {
        let dir = tempfile::tempdir().unwrap();
        let settings = NotebookSettings {
            profile: "tiny".into(),
            datasets: vec!["synthscapes".into()],
            rerun: false,
            seeds: Some(1),
            train_missing: false,
            train_steps: None,
            jobs: None,
        };
        let out = settings.run_in(Study::Runtime, Some(dir.path())).unwrap();
        assert_eq!(out[0].computed_runs, 0);
        assert!(out[0].missing_runs > 0);
    }

    #[test]
    fn claims_markdown_has_one_row_per_claim_and_no_interval_for_one_seed() {
        use crate::experiments::summary::{Claim, ClaimKind, Verdict};
        let claim = |n: usize, ci: Option<f64>, verdict| Claim {
            study: "em".into(),
            dataset: "synthscapes".into(),
            statement: "a | b".into(),
            metric: "miou".into(),
            group: "val".into(),
            a: ("sinkhorn".into(), Some(1.0)),
            b: ("vanilla".into(), Some(1.0)),
            kind: ClaimKind::Better,
            n,
            mean_diff: Some(0.0123),
            ci95: ci,
            agree: n,
            verdict: Some(verdict),
        };
        let mut r = result(vec![]);
        r.claims = vec![
            claim(1, None, Verdict::Inconclusive),
            claim(3, Some(0.005), Verdict::Reproduced),
        ];
        let md = claims_markdown(&[r]);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 4, "{md}");
        assert!(
            lines[2].contains("a \\| b")
                && lines[2].contains("| +0.012 | — | 1/1 | inconclusive |"),
            "{md}"
        );
        assert!(
            lines[3].contains("| +0.012 | 0.005 | 3/3 | **reproduced** |"),
            "{md}"
        );
    }

    #[test]
    fn html_escapes_names() {
        let r = result(vec![cell("a<b>", None, "miou", 0.5, None)]);
        let h = r.table(&["miou"]).unwrap().to_html();
        assert!(h.contains("a&lt;b&gt;") && !h.contains("<b>"), "{h}");
    }
}
