//! The playground: a researcher's own idea — one edited, validated training configuration —
//! trained over the profile's seeds and compared with the cached baseline by the library's
//! paired rule, the loop a researcher runs all day.
//!
//! The baseline of seed s is exactly the model the studies trained for seed s (its record
//! comes from `data/results/<profile>/models/`, so it costs nothing); the idea is the same
//! configuration with the user's edits, trained once per seed and cached by its
//! configuration under `data/results/playground/<profile>/` (not committed), so that
//! rerunning the notebook with the same idea is instant and a new edit trains only itself.
//! Each metric is decided on the per-seed differences idea − baseline: their mean, a
//! Student-t 95% CI, and a verdict — `idea better` when the whole interval lies on the
//! better side of zero, `idea worse` on the other, `inconclusive` when it straddles zero.
//!
//! ```no_run
//! use gmmseg::experiments::report::NotebookSettings;
//! # fn main() -> gmmseg::Result<()> {
//! let settings = NotebookSettings::from_env()?;
//! let mut idea = settings.idea("M = 3")?;
//! if let Some(gmm) = idea.config.head.gmm_mut() {
//!     gmm.online.gmm.components = 3;
//! }
//! let comparison = settings.try_idea(&idea)?;
//! print!("{}", comparison.text());
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use polars::prelude::{Column, DataFrame};

use super::{escape_html, Html, NotebookSettings};
use crate::error::{GmmSegError, Result};
use crate::experiments::summary::{decide_paired, lower_is_better, summarize_rows, ClaimKind};
use crate::experiments::{
    default_results_dir, figures, studies, ExperimentRunner, ModelRecord, RunRow, RunSpec, Study,
    Verdict,
};
use crate::metrics::{summarize, Summary};
use crate::plot::ablation::{paired_differences, DifferencePanel};
use crate::plot::reliability::{reliability_diagram, ReliabilityOptions};
use crate::train::config::{HeadKind, TrainConfig};

/// A user's idea: a name, the baseline it is compared with, and the training configuration
/// to try — the baseline's configuration as it starts, edited field by field.
#[derive(Clone, Debug, PartialEq)]
pub struct Idea {
    /// What the idea is, in a few words (the figures' and tables' label).
    pub name: String,
    /// The head of the cached baseline (`gmmseg` unless changed): the studies' model of
    /// that head, same profile, dataset and seeds.
    pub baseline: HeadKind,
    /// The configuration trained for the idea. Its `seed` is replaced by each seed in turn;
    /// every other field is the user's. Its `dataset` is the dataset of both sides.
    pub config: TrainConfig,
}

impl Idea {
    /// The fields of [`Idea::config`] that differ from the baseline's configuration, as
    /// `(path, baseline value, idea value)` with dotted paths (`head.online.gmm.components`), so that a
    /// notebook shows what is being tried. The seed is not listed (it is set per seed).
    ///
    /// # Errors
    /// As [`NotebookSettings::train_config`].
    pub fn changes(&self, settings: &NotebookSettings) -> Result<Vec<(String, String, String)>> {
        let base = settings.train_config(&self.config.dataset, self.baseline)?;
        let a = serde_json::to_value(&base)
            .map_err(|e| GmmSegError::input("baseline", e.to_string()))?;
        let b = serde_json::to_value(&self.config)
            .map_err(|e| GmmSegError::input("idea", e.to_string()))?;
        let mut out = Vec::new();
        json_diff("", &a, &b, &mut out);
        out.retain(|(path, _, _)| path != "seed");
        Ok(out)
    }
}

fn json_diff(
    path: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    out: &mut Vec<(String, String, String)>,
) {
    use serde_json::Value;
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                json_diff(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        _ if a != b => out.push((path.to_string(), a.to_string(), b.to_string())),
        _ => {}
    }
}

/// One compared metric: both sides summarised over seeds and the paired decision.
#[derive(Clone, Debug, PartialEq)]
pub struct PairedMetric {
    /// Where it is measured: `val`, `val+ts` (after temperature scaling fitted on tune),
    /// `anomaly` (each side's own anomaly score: `likelihood` for GMM heads, `msp` for
    /// softmax), `train` or `inference`.
    pub group: String,
    /// Metric name (as in the studies' rows).
    pub metric: String,
    /// The baseline over seeds.
    pub baseline: Summary,
    /// The idea over seeds.
    pub idea: Summary,
    /// Per seed, idea − baseline.
    pub diffs: Vec<f64>,
    /// Their mean.
    pub mean_diff: f64,
    /// Half-width of the Student-t 95% CI of the mean (`None`: one seed).
    pub ci95: Option<f64>,
    /// Seeds on which the idea is better.
    pub agree: usize,
    /// `Reproduced` = idea better, `Contradicted` = idea worse, `Inconclusive`; always
    /// `Inconclusive` for a timing (see [`PairedMetric::timed_apart`]).
    pub verdict: Verdict,
    /// A wall-clock metric (`step_ms`, `images_per_s`) of two models timed at different
    /// times — the baseline when the studies trained it, the idea now — so that the machine's
    /// load differs between the sides: shown, never decided (the runtime study times its
    /// pairs back to back for that reason).
    pub timed_apart: bool,
}

impl PairedMetric {
    /// The verdict in the playground's words.
    pub fn verdict_text(&self) -> &'static str {
        if self.timed_apart {
            return "not decided: timed apart";
        }
        match self.verdict {
            Verdict::Reproduced => "idea better",
            Verdict::Contradicted => "idea worse",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// What [`NotebookSettings::try_idea`] found; as a cell's value it shows itself (the
/// configuration changes, the paired table, the differences and the reliability diagrams).
#[derive(Clone, Debug)]
pub struct IdeaComparison {
    /// The idea's name.
    pub idea: String,
    /// The baseline's name (its head).
    pub baseline: String,
    /// Dataset spec.
    pub dataset: String,
    /// Profile name.
    pub profile: String,
    /// The configuration changes ([`Idea::changes`]).
    pub changes: Vec<(String, String, String)>,
    /// Per seed: (seed, baseline record, idea record).
    pub records: Vec<(u64, ModelRecord, ModelRecord)>,
    /// The compared metrics, in a fixed order.
    pub metrics: Vec<PairedMetric>,
}

/// The metrics compared, (group, metric), in the order shown.
pub const COMPARED_METRICS: [(&str, &str); 13] = [
    ("val", "miou"),
    ("val", "acc"),
    ("val", "macc"),
    ("val", "ece"),
    ("val", "smooth_ece"),
    ("val", "nll"),
    ("val", "brier"),
    ("val+ts", "ece"),
    ("anomaly", "auroc"),
    ("anomaly", "ap"),
    ("anomaly", "fpr95"),
    ("train", "step_ms"),
    ("inference", "images_per_s"),
];

/// The anomaly score a model is judged by: its likelihood if its head has one, else MSP.
fn own_score(r: &ModelRecord) -> &'static str {
    match r.config.head.kind() {
        HeadKind::Softmax => "msp",
        _ => "likelihood",
    }
}

fn value_of(r: &ModelRecord, group: &str, metric: &str) -> Option<f64> {
    let seg = |e: &crate::train::eval::EvalReport| match metric {
        "miou" => Some(e.miou),
        "acc" => Some(e.acc),
        "macc" => Some(e.macc),
        "ece" => Some(e.ece),
        "smooth_ece" => e.smooth_ece,
        "nll" => Some(e.nll),
        "brier" => Some(e.brier),
        _ => None,
    };
    match group {
        "val" => seg(&r.val),
        "val+ts" => r.val_ts.as_ref().and_then(seg),
        "anomaly" => {
            let a = r
                .anomaly
                .get("anomaly")?
                .anomaly
                .as_ref()?
                .get(own_score(r))?;
            match metric {
                "auroc" => Some(a.auroc),
                "ap" => Some(a.ap),
                "fpr95" => Some(a.fpr95),
                _ => None,
            }
        }
        "train" if metric == "step_ms" => Some(r.step_ms),
        "inference" if metric == "images_per_s" => Some(r.images_per_s),
        _ => None,
    }
}

/// The paired comparison of every [`COMPARED_METRICS`] entry both sides have on every seed.
///
/// # Errors
/// [`GmmSegError::NonFinite`] for a NaN or infinite metric.
pub fn compare_records(records: &[(u64, ModelRecord, ModelRecord)]) -> Result<Vec<PairedMetric>> {
    let mut out = Vec::new();
    for (group, metric) in COMPARED_METRICS {
        let pairs: Option<Vec<(f64, f64)>> = records
            .iter()
            .map(|(_, b, i)| Some((value_of(b, group, metric)?, value_of(i, group, metric)?)))
            .collect();
        let Some(pairs) = pairs.filter(|p| !p.is_empty()) else {
            continue;
        };
        let base: Vec<f64> = pairs.iter().map(|p| p.0).collect();
        let idea: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        let diffs: Vec<f64> = pairs.iter().map(|(b, i)| i - b).collect();
        // images_per_s and everything not named lower-is-better: higher is better
        let (mean_diff, ci95, agree, verdict) = decide_paired(ClaimKind::Better, metric, &diffs)
            .expect("at least one seed, checked above");
        let timed_apart = matches!(group, "train" | "inference");
        let verdict = if timed_apart {
            Verdict::Inconclusive
        } else {
            verdict
        };
        out.push(PairedMetric {
            group: group.into(),
            metric: metric.into(),
            baseline: summarize(&base)?,
            idea: summarize(&idea)?,
            diffs,
            mean_diff,
            ci95,
            agree,
            verdict,
            timed_apart,
        });
    }
    Ok(out)
}

impl NotebookSettings {
    /// An idea to edit: the configuration of the studies' GMMSeg model on the first dataset
    /// of these settings ([`NotebookSettings::train_config`]), compared with that model.
    /// Change `idea.baseline` (and `idea.config.head`) to start from another head.
    ///
    /// # Errors
    /// As [`NotebookSettings::train_config`]; no dataset selected.
    pub fn idea(&self, name: &str) -> Result<Idea> {
        let dataset = self
            .datasets
            .first()
            .ok_or_else(|| GmmSegError::input(super::DATASETS_ENV, "lists no dataset"))?;
        Ok(Idea {
            name: name.to_string(),
            baseline: HeadKind::Gmmseg,
            config: self.train_config(dataset, HeadKind::Gmmseg)?,
        })
    }

    /// Trains `idea` over the profile's seeds (or [`NotebookSettings::seeds`]), reads or
    /// trains the baseline of each seed, and compares them metric by metric. The idea's
    /// configuration is checked before anything is opened or trained, so that a bad field
    /// is named at once.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] naming the bad field of `idea.config`; an empty name;
    /// dataset, training and I/O errors.
    pub fn try_idea(&self, idea: &Idea) -> Result<IdeaComparison> {
        self.try_idea_in(idea, None)
    }

    /// [`NotebookSettings::try_idea`] with the results folder given (`None`: the default;
    /// the baseline is read from `<dir>/<profile>/`, the idea cached under
    /// `<dir>/playground/<profile>/`).
    ///
    /// # Errors
    /// As [`NotebookSettings::try_idea`].
    pub fn try_idea_in(&self, idea: &Idea, results_dir: Option<&Path>) -> Result<IdeaComparison> {
        if idea.name.trim().is_empty() {
            return Err(GmmSegError::input("idea.name", "must not be empty"));
        }
        idea.config.clone().check()?;
        let profile = self.valid_profile()?;
        let dataset = idea.config.dataset.clone();
        let changes = idea.changes(self)?;
        let (study_dir, idea_dir): (PathBuf, PathBuf) = match results_dir {
            Some(d) => (
                d.join(&self.profile),
                d.join("playground").join(&self.profile),
            ),
            None => (
                default_results_dir(&self.profile),
                default_results_dir("playground").join(&self.profile),
            ),
        };
        // a baseline of other steps is not the studies' model: keep it out of their cache
        let base_dir = if self.train_steps.is_some() {
            idea_dir.clone()
        } else {
            study_dir
        };
        let mut base_runner =
            ExperimentRunner::new(profile.clone(), &dataset)?.with_results_dir(&base_dir);
        let mut idea_runner = ExperimentRunner::new(profile, &dataset)?.with_results_dir(&idea_dir);
        if let Some(n) = self.seeds {
            base_runner = base_runner.with_seeds(n)?;
            idea_runner = idea_runner.with_seeds(n)?;
        }
        let seeds = base_runner.seeds.clone();
        let started = std::time::Instant::now();
        let mut records = Vec::with_capacity(seeds.len());
        for &seed in &seeds {
            let mut base = self.train_config(&dataset, idea.baseline)?;
            base.seed = seed;
            let mut cfg = idea.config.clone();
            cfg.seed = seed;
            let side = |runner: &mut ExperimentRunner, c: &TrainConfig, who: &str| {
                let before = runner.trained_models();
                let r = runner.record(c)?;
                println!(
                    "[playground {dataset}] seed {seed}: {who}{} ({:.0} s)",
                    if runner.trained_models() > before {
                        " trained"
                    } else {
                        ", cached"
                    },
                    started.elapsed().as_secs_f64()
                );
                Ok::<_, GmmSegError>(r)
            };
            let b = side(
                &mut base_runner,
                &base,
                &format!("baseline {}", idea.baseline),
            )?;
            let i = side(&mut idea_runner, &cfg, &format!("idea `{}`", idea.name))?;
            records.push((seed, b, i));
        }
        let metrics = compare_records(&records)?;
        Ok(IdeaComparison {
            idea: idea.name.clone(),
            baseline: idea.baseline.to_string(),
            dataset,
            profile: self.profile.clone(),
            changes,
            records,
            metrics,
        })
    }
}

impl IdeaComparison {
    /// The comparison as a polars DataFrame: one row per metric with both sides' means and
    /// CIs, the paired mean difference, its CI, the seeds agreeing and the verdict.
    ///
    /// # Errors
    /// Polars errors.
    pub fn frame(&self) -> Result<DataFrame> {
        let col = |f: &dyn Fn(&PairedMetric) -> String| -> Vec<String> {
            self.metrics.iter().map(f).collect()
        };
        let num = |f: &dyn Fn(&PairedMetric) -> Option<f64>| -> Vec<Option<f64>> {
            self.metrics.iter().map(f).collect()
        };
        let n = self.metrics.len();
        DataFrame::new(
            n,
            vec![
                Column::new("group".into(), col(&|m| m.group.clone())),
                Column::new("metric".into(), col(&|m| m.metric.clone())),
                Column::new("baseline".into(), num(&|m| Some(m.baseline.mean))),
                Column::new("baseline_ci95".into(), num(&|m| m.baseline.ci95)),
                Column::new("idea".into(), num(&|m| Some(m.idea.mean))),
                Column::new("idea_ci95".into(), num(&|m| m.idea.ci95)),
                Column::new("mean_diff".into(), num(&|m| Some(m.mean_diff))),
                Column::new("ci95".into(), num(&|m| m.ci95)),
                Column::new(
                    "agree".into(),
                    self.metrics
                        .iter()
                        .map(|m| m.agree as u32)
                        .collect::<Vec<_>>(),
                ),
                Column::new(
                    "n".into(),
                    self.metrics
                        .iter()
                        .map(|m| m.diffs.len() as u32)
                        .collect::<Vec<_>>(),
                ),
                Column::new("verdict".into(), col(&|m| m.verdict_text().to_string())),
            ],
        )
        .map_err(|e| GmmSegError::input("playground", format!("cannot build the table: {e}")))
    }

    /// The comparison as aligned text (what a terminal or a log shows).
    pub fn text(&self) -> String {
        let mut s = format!(
            "idea `{}` vs {} on {} ({} profile, {} seeds)\n",
            self.idea,
            self.baseline,
            self.dataset,
            self.profile,
            self.records.len()
        );
        for (path, a, b) in &self.changes {
            s.push_str(&format!("  changed {path}: {a} -> {b}\n"));
        }
        for m in &self.metrics {
            s.push_str(&format!(
                "  {:<10} {:<13} baseline {:>9.4}  idea {:>9.4}  diff {:>+9.4} ± {:<8} {}/{} seeds  {}\n",
                m.group,
                m.metric,
                m.baseline.mean,
                m.idea.mean,
                m.mean_diff,
                m.ci95.map(|c| format!("{c:.4}")).unwrap_or_else(|| "—".into()),
                m.agree,
                m.diffs.len(),
                m.verdict_text()
            ));
        }
        s
    }

    /// Changes, table and figures as one HTML page.
    ///
    /// # Errors
    /// Drawing errors.
    pub fn html(&self) -> Result<Html> {
        let mut h = Html::default();
        h.push(&format!(
            "<h3>idea “{}” vs the {} baseline</h3><p>{} · {} profile · seeds {} · baseline: the profile's recipe of each seed, as the studies train it</p>",
            escape_html(&self.idea),
            escape_html(&self.baseline),
            escape_html(&self.dataset),
            escape_html(&self.profile),
            self.records
                .iter()
                .map(|(s, _, _)| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        if self.changes.is_empty() {
            h.push("<p><b>No field differs from the baseline</b>: edit <code>idea.config</code> to try something.</p>");
        } else {
            let mut t = String::from(
                "<table><thead><tr><th>field</th><th>baseline</th><th>idea</th></tr></thead><tbody>",
            );
            for (path, a, b) in &self.changes {
                t.push_str(&format!(
                    "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                    escape_html(path),
                    escape_html(a),
                    escape_html(b)
                ));
            }
            t.push_str("</tbody></table>");
            h.push(&t);
        }
        h.push(&self.table_html());
        let panels: Vec<DifferencePanel> = self
            .metrics
            .iter()
            .map(|m| DifferencePanel {
                name: format!("{} ({})", m.metric, m.group),
                diffs: m.diffs.clone(),
                ci95: m.ci95,
                lower_is_better: lower_is_better(&m.metric),
            })
            .collect();
        if !panels.is_empty() {
            let rows = panels.len().div_ceil(4) as u32;
            let svg = crate::plot::inline((1100, 40 + 170 * rows), |area| {
                paired_differences(
                    area,
                    &format!(
                        "Paired differences, idea “{}” − {} (dots: seeds; bar: mean ± 95% CI)",
                        self.idea, self.baseline
                    ),
                    &panels,
                    4,
                )
            })?;
            h.push(&svg.0);
        }
        if let Some(svg) = self.reliability()? {
            h.push(&svg.0);
        }
        Ok(h)
    }

    /// Reliability diagrams of the baseline and the idea (bins averaged over seeds), or
    /// `None` when the records hold no bins.
    fn reliability(&self) -> Result<Option<crate::plot::InlineSvg>> {
        let mut rows = Vec::new();
        for (seed, b, i) in &self.records {
            for (variant, r) in [("baseline", b), ("idea", i)] {
                let spec = RunSpec {
                    name: variant.into(),
                    head: r.config.head.kind(),
                    decoder: None,
                    components: None,
                    em: None,
                    em_loops: None,
                    momentum: None,
                    overrides: Default::default(),
                    factors: Default::default(),
                };
                for m in studies::measure(Study::Calibration, &spec, r) {
                    // the trained head's rows only (not the temperature-scaled twin)
                    if m.variant != r.config.head.kind().to_string() {
                        continue;
                    }
                    rows.push(RunRow {
                        study: Study::Calibration.name().into(),
                        dataset: self.dataset.clone(),
                        variant: variant.into(),
                        group: m.group,
                        param: m.param,
                        seed: *seed,
                        metric: m.metric,
                        value: m.value,
                        hash: String::new(),
                        model: r.key.clone(),
                        code: String::new(),
                    });
                }
            }
        }
        let summary = summarize_rows(&rows)?;
        let (Some(b), Some(i)) = (
            figures::reliability(&summary, "baseline"),
            figures::reliability(&summary, "idea"),
        ) else {
            return Ok(None);
        };
        let base_name = format!("baseline {}", self.baseline);
        let idea_name = format!("idea “{}”", self.idea);
        let models = [(base_name.as_str(), &b), (idea_name.as_str(), &i)];
        crate::plot::inline((1000, 470), |area| {
            reliability_diagram(area, &models, &ReliabilityOptions::default())
        })
        .map(Some)
    }

    fn table_html(&self) -> String {
        let mut s = String::from(
            "<table><thead><tr><th>group</th><th>metric</th><th>baseline</th><th>idea</th><th>idea − baseline (paired)</th><th>95% CI ±</th><th>seeds idea better</th><th>verdict</th></tr></thead><tbody>",
        );
        let ms = |x: &Summary| match x.ci95 {
            Some(c) => format!("{:.4} ± {c:.4}", x.mean),
            None => format!("{:.4}", x.mean),
        };
        for m in &self.metrics {
            let colour = match m.verdict {
                Verdict::Reproduced => "#1a7f37",
                Verdict::Contradicted => "#cf222e",
                Verdict::Inconclusive => "#6e7781",
            };
            s.push_str(&format!(
                "<tr><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td><td>{:+.4}</td><td>{}</td><td>{}/{}</td><td style=\"color:{colour};font-weight:bold\">{}</td></tr>",
                escape_html(&m.group),
                escape_html(&m.metric),
                if lower_is_better(&m.metric) { " ↓" } else { " ↑" },
                ms(&m.baseline),
                ms(&m.idea),
                m.mean_diff,
                m.ci95.map(|c| format!("{c:.4}")).unwrap_or_else(|| "—".into()),
                m.agree,
                m.diffs.len(),
                m.verdict_text(),
            ));
        }
        s.push_str("</tbody></table>");
        s
    }

    /// Shows [`IdeaComparison::html`] in an evcxr cell (a drawing error is shown as text).
    pub fn evcxr_display(&self) {
        match self.html() {
            Ok(h) => h.evcxr_display(),
            Err(e) => println!("error: {e}\n{}", self.text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_diff_lists_changed_leaves_with_dotted_paths() {
        let a = serde_json::json!({"gmm": {"components": 5, "em": "sinkhorn"}, "steps": 150});
        let b = serde_json::json!({"gmm": {"components": 3, "em": "sinkhorn"}, "steps": 150});
        let mut out = Vec::new();
        json_diff("", &a, &b, &mut out);
        assert_eq!(out, vec![("gmm.components".into(), "5".into(), "3".into())]);
    }
}
