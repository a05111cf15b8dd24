//! Summaries over seeds and the paper's claims, decided on paired per-seed differences.
//!
//! Each (study, dataset, variant, group, param, metric) cell is summarised by
//! [`crate::metrics::summarize`]: mean, sample standard deviation (ddof = 1) and the
//! half-width of the Student-t 95% CI of the mean, t_{0.975, n−1}·s/√n (none for one seed).
//!
//! # How a claim is decided
//! A claim compares variant A with variant B on one metric (group and parameter fixed).
//! Both sides of every claim are trained with the same seeds (same data order and
//! initialisation), so the claim is decided on the **paired** differences
//! `d_s = metric_s(A) − metric_s(B)` over the seeds `s` where both were run (raw sign;
//! [`ClaimKind::AtLeast`] has no B: `d_s = metric_s(A) − threshold`). Let `d̄` be their mean,
//! `h = t_{0.975, n−1}·sd(d)/√n` the half-width of its Student-t 95% CI, and `s = +1` when
//! higher is better, `−1` when lower is better (`ece`, `mce`, `rmsce`, `classwise_ece`,
//! `smooth_ece`, `nll`, `brier`, `brier_reliability`, `fpr95`,
//! `step_ms`, `train_s`), so that `s·d` > 0 means "A better". The interval `[L, U]` of `s·d̄`
//! is `s·d̄ ∓ h`. Then, per kind:
//!
//! | kind | reproduced | contradicted | a seed agrees when |
//! |---|---|---|---|
//! | [`ClaimKind::Better`] (A beats B) | L > 0 | U < 0 | s·d_s > 0 |
//! | [`ClaimKind::NotWorse`]`(m)` (A ≥ B − m) | L > −m | U < −m | s·d_s ≥ −m |
//! | [`ClaimKind::Within`]`(t)` (\|A − B\| ≤ t) | −t ≤ L and U ≤ t | L > t or U < −t | \|d_s\| ≤ t |
//! | [`ClaimKind::AtLeast`]`(v)` (A ≥ v) | L > 0 | U < 0 | s·d_s ≥ 0 |
//!
//! and `inconclusive` otherwise — in particular with one seed, which has no interval. "Not
//! worse" claims use the fixed margin [`NOT_WORSE_MARGIN`] (0.01 mIoU, the size of the
//! paper's gains), never the CI: a difference of −0.119 that the seeds cannot resolve is not
//! "not worse". A claim whose variants were not both run has no verdict (`None`).
//!
//! `claims.csv` ([`claims_csv_frame`]) holds these numbers for every claim, recomputable
//! from the per-seed rows of `<study>.csv`.

use std::collections::{BTreeMap, BTreeSet};

use polars::prelude::*;

use super::cache::RunRow;
use super::{
    Study, COL_AGREE, COL_CI95, COL_CLAIM, COL_DATASET, COL_GROUP, COL_LOWER, COL_MEAN, COL_METRIC,
    COL_N, COL_PARAM, COL_STD, COL_STUDY, COL_UPPER, COL_VARIANT, COL_VERDICT,
};
use crate::error::{GmmSegError, Result};
use crate::metrics::{student_t_975, summarize, Summary};

/// The margin of every "not worse" claim: 0.01 (mIoU), the size of the paper's gains.
pub const NOT_WORSE_MARGIN: f64 = 0.01;

/// The paper's own inference throughput ratio, GMMSeg over softmax (§4.3: 13.37 / 14.16 fps).
pub const PAPER_THROUGHPUT_RATIO: f64 = 0.944;

/// Whether lower values of `metric` are better.
pub fn lower_is_better(metric: &str) -> bool {
    matches!(
        metric,
        "ece"
            | "mce"
            | "rmsce"
            | "classwise_ece"
            | "smooth_ece"
            | "nll"
            | "brier"
            | "brier_reliability"
            | "fpr95"
            | "step_ms"
            | "train_s"
    )
}

/// One summarised cell.
#[derive(Clone, Debug, PartialEq)]
pub struct SummaryRow {
    /// Study name.
    pub study: String,
    /// Dataset spec.
    pub dataset: String,
    /// Variant.
    pub variant: String,
    /// Group.
    pub group: String,
    /// Parameter.
    pub param: Option<f64>,
    /// Metric.
    pub metric: String,
    /// Mean, std and CI over seeds.
    pub stats: Summary,
}

/// How a claim is decided (module docs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ClaimKind {
    /// A is better than B.
    Better,
    /// A is not worse than B by more than the margin.
    NotWorse(f64),
    /// |A − B| is within the tolerance.
    Within(f64),
    /// A reaches the threshold (B is not used).
    AtLeast(f64),
}

/// The outcome of a claim on the paired seeds (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The CI lies on the claim's side of its margin.
    Reproduced,
    /// The CI lies on the other side.
    Contradicted,
    /// The CI straddles the margin (or there is one seed only).
    Inconclusive,
}

impl Verdict {
    /// `reproduced`, `contradicted` or `inconclusive` (the `claims.csv` spelling).
    pub fn name(&self) -> &'static str {
        match self {
            Verdict::Reproduced => "reproduced",
            Verdict::Contradicted => "contradicted",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One of the paper's claims, evaluated on our numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Claim {
    /// Study name.
    pub study: String,
    /// Dataset spec of the rows.
    pub dataset: String,
    /// The claim, with the paper's numbers.
    pub statement: String,
    /// Metric compared.
    pub metric: String,
    /// Group of both cells.
    pub group: String,
    /// Variant A and its parameter.
    pub a: (String, Option<f64>),
    /// Variant B and its parameter (for [`ClaimKind::AtLeast`]: `threshold` and the value).
    pub b: (String, Option<f64>),
    /// Decision rule.
    pub kind: ClaimKind,
    /// Seeds where both A and B were run (the pairs).
    pub n: usize,
    /// Mean over the pairs of metric(A) − metric(B), raw sign; `None` with no pair.
    pub mean_diff: Option<f64>,
    /// Half-width of the Student-t 95% CI of `mean_diff`; `None` with fewer than two pairs.
    pub ci95: Option<f64>,
    /// Pairs whose difference is on the claim's side (module docs).
    pub agree: usize,
    /// The verdict; `None` when no pair exists (a variant was not run).
    pub verdict: Option<Verdict>,
}

impl Claim {
    /// `mean_diff − ci95` (the mean itself with one pair).
    pub fn lower(&self) -> Option<f64> {
        self.mean_diff.map(|d| d - self.ci95.unwrap_or(0.0))
    }

    /// `mean_diff + ci95` (the mean itself with one pair).
    pub fn upper(&self) -> Option<f64> {
        self.mean_diff.map(|d| d + self.ci95.unwrap_or(0.0))
    }
}

/// `REPRODUCED <statement> (A − B = …, CI ±…, n=…, k/n agree)`: one line, as the command line
/// and the notebooks print it.
impl std::fmt::Display for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = match self.verdict {
            Some(Verdict::Reproduced) => "REPRODUCED  ",
            Some(Verdict::Contradicted) => "CONTRADICTED",
            Some(Verdict::Inconclusive) => "INCONCLUSIVE",
            None => "NOT RUN     ",
        };
        write!(f, "{verdict} {}", self.statement)?;
        if let Some(d) = self.mean_diff {
            let ci = self
                .ci95
                .map(|h| format!("±{h:.4}"))
                .unwrap_or_else(|| "none".into());
            write!(
                f,
                " (A − B = {d:+.4}, CI {ci}, n={}, {}/{} agree)",
                self.n, self.agree, self.n
            )?;
        }
        Ok(())
    }
}

/// The paired decision of a claim from its per-seed differences `d_s` = A − B (raw sign):
/// (mean, CI half-width, seeds that agree, verdict); `None` for no difference. See the
/// module docs for the rule.
pub fn decide_paired(
    kind: ClaimKind,
    metric: &str,
    diffs: &[f64],
) -> Option<(f64, Option<f64>, usize, Verdict)> {
    if diffs.is_empty() {
        return None;
    }
    let n = diffs.len();
    let mean = diffs.iter().sum::<f64>() / n as f64;
    let ci = student_t_975(n - 1).map(|t| {
        let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        t * var.sqrt() / (n as f64).sqrt()
    });
    let s = if lower_is_better(metric) { -1.0 } else { 1.0 };
    let agree = diffs
        .iter()
        .filter(|&&d| match kind {
            ClaimKind::Better => s * d > 0.0,
            ClaimKind::NotWorse(m) => s * d >= -m,
            ClaimKind::Within(t) => d.abs() <= t,
            ClaimKind::AtLeast(_) => s * d >= 0.0,
        })
        .count();
    let verdict = match ci {
        None => Verdict::Inconclusive,
        Some(h) => {
            let (lo, hi) = (s * mean - h, s * mean + h);
            let (reproduced, contradicted) = match kind {
                ClaimKind::Better | ClaimKind::AtLeast(_) => (lo > 0.0, hi < 0.0),
                ClaimKind::NotWorse(m) => (lo > -m, hi < -m),
                ClaimKind::Within(t) => (lo >= -t && hi <= t, lo > t || hi < -t),
            };
            if reproduced {
                Verdict::Reproduced
            } else if contradicted {
                Verdict::Contradicted
            } else {
                Verdict::Inconclusive
            }
        }
    };
    Some((mean, ci, agree, verdict))
}

type Key = (String, String, String, String, Option<u64>, String);

fn param_bits(p: Option<f64>) -> Option<u64> {
    p.map(f64::to_bits)
}

/// Groups rows by (study, dataset, variant, group, param, metric) and summarises each cell
/// over seeds, in first-appearance order.
///
/// # Errors
/// [`GmmSegError::NonFinite`] if a cell holds a NaN or infinite value.
pub fn summarize_rows(rows: &[RunRow]) -> Result<Vec<SummaryRow>> {
    let mut order: Vec<Key> = Vec::new();
    let mut cells: BTreeMap<Key, Vec<f64>> = BTreeMap::new();
    for r in rows {
        let k = (
            r.study.clone(),
            r.dataset.clone(),
            r.variant.clone(),
            r.group.clone(),
            param_bits(r.param),
            r.metric.clone(),
        );
        let v = cells.entry(k.clone()).or_default();
        if v.is_empty() {
            order.push(k);
        }
        v.push(r.value);
    }
    order
        .into_iter()
        .filter_map(|k| {
            // a metric undefined on some run (e.g. AUROC of a split without anomalies in a
            // tiny evaluation set) is summarised over the runs where it is finite
            let values: Vec<f64> = cells[&k]
                .iter()
                .copied()
                .filter(|v| v.is_finite())
                .collect();
            if values.is_empty() {
                return None;
            }
            Some(summarize(&values).map(|stats| SummaryRow {
                study: k.0.clone(),
                dataset: k.1.clone(),
                variant: k.2.clone(),
                group: k.3.clone(),
                param: k.4.map(f64::from_bits),
                metric: k.5.clone(),
                stats,
            }))
        })
        .collect()
}

/// A claim template: (statement, metric, group, A, B, kind).
struct Template {
    statement: String,
    metric: &'static str,
    group: String,
    a: (String, Option<f64>),
    b: (String, Option<f64>),
    kind: ClaimKind,
}

fn t(
    statement: impl Into<String>,
    metric: &'static str,
    group: &str,
    a: (&str, Option<f64>),
    b: (&str, Option<f64>),
    kind: ClaimKind,
) -> Template {
    Template {
        statement: statement.into(),
        metric,
        group: group.into(),
        a: (a.0.into(), a.1),
        b: (b.0.into(), b.1),
        kind,
    }
}

/// The paper's claims for `study` (README, "Which of the paper's claims reproduce"),
/// instantiated for the groups and parameters present in `rows`.
fn templates(study: Study, rows: &[SummaryRow]) -> Vec<Template> {
    use ClaimKind::*;
    let groups: BTreeSet<&str> = rows.iter().map(|r| r.group.as_str()).collect();
    let params = |variant: &str| -> Vec<f64> {
        let mut p: Vec<f64> = rows
            .iter()
            .filter(|r| r.variant == variant)
            .filter_map(|r| r.param)
            .collect();
        p.sort_by(f64::total_cmp);
        p.dedup();
        p
    };
    let mut out = Vec::new();
    match study {
        Study::MainResults => {
            for d in ["fcn", "deeplab"] {
                out.push(t(
                    format!("{d}: GMMSeg mIoU ≥ softmax mIoU − 0.01 (Table 1: +0.5 to +1.7 mIoU, e.g. 80.6 → 81.1 on Cityscapes)"),
                    "miou", d, ("gmmseg", None), ("softmax", None), NotWorse(NOT_WORSE_MARGIN),
                ));
            }
        }
        Study::Anomaly => {
            for g in groups.iter().filter(|g| g.starts_with("anomaly")) {
                let lik = ("gmmseg/likelihood", None);
                out.push(t(
                    format!("{g}: likelihood AUROC > MSP AUROC (Table 2: 97.34 vs 86.99)"),
                    "auroc",
                    g,
                    lik,
                    ("softmax/msp", None),
                    Better,
                ));
                out.push(t(
                    format!("{g}: likelihood AP > MSP AP (Table 2: 43.47 vs 6.02)"),
                    "ap",
                    g,
                    lik,
                    ("softmax/msp", None),
                    Better,
                ));
                out.push(t(
                    format!("{g}: likelihood FPR95 < MSP FPR95 (Table 2: 13.11 vs 45.63)"),
                    "fpr95",
                    g,
                    lik,
                    ("softmax/msp", None),
                    Better,
                ));
                out.push(t(
                    format!("{g}: likelihood AUROC > entropy AUROC (Table 2: 97.34 vs 88.32)"),
                    "auroc",
                    g,
                    lik,
                    ("softmax/entropy", None),
                    Better,
                ));
                out.push(t(
                    format!("{g}: likelihood AUROC > Mahalanobis AUROC (Table 2: 97.34 vs 92.51)"),
                    "auroc",
                    g,
                    lik,
                    ("softmax/mahalanobis", None),
                    Better,
                ));
            }
        }
        Study::OnlineVsPosthoc => out.push(t(
            "online GMMSeg mIoU > post-hoc GMM on softmax features (Table 3: 46.0 vs 31.6)",
            "miou",
            "val",
            ("online gmmseg", None),
            ("post-hoc gmm", None),
            Better,
        )),
        Study::GenVsDisc => {
            out.push(t(
                "generative mIoU ≥ discriminative mIoU − 0.01 (Table 4: 81.1 vs 81.0)",
                "miou",
                "val",
                ("generative", None),
                ("discriminative", None),
                NotWorse(NOT_WORSE_MARGIN),
            ));
            for g in groups.iter().filter(|g| g.starts_with("anomaly")) {
                out.push(t(format!("{g}: generative likelihood AUROC > discriminative (Table 4: 97.34 vs 89.77)"), "auroc", g, ("generative", None), ("discriminative", None), Better));
                out.push(t(format!("{g}: generative likelihood FPR95 < discriminative (Table 4: 13.11 vs 51.81)"), "fpr95", g, ("generative", None), ("discriminative", None), Better));
            }
        }
        Study::Em => {
            let (v, s) = (params("vanilla"), params("sinkhorn"));
            let lo = v.first().or(s.first()).copied();
            let hi = v.last().or(s.last()).copied();
            out.push(t(
                format!(
                    "Sinkhorn EM mIoU > vanilla EM at {} loop(s) (Table 5a: 46.0 vs 42.7 at 1)",
                    lo.unwrap_or(1.0)
                ),
                "miou",
                "val",
                ("sinkhorn", lo),
                ("vanilla", lo),
                Better,
            ));
            out.push(t(
                format!(
                    "vanilla EM improves with loops: {} > {} (Table 5a: 44.8 at 10 vs 42.7 at 1)",
                    hi.unwrap_or(10.0),
                    lo.unwrap_or(1.0)
                ),
                "miou",
                "val",
                ("vanilla", hi),
                ("vanilla", lo),
                Better,
            ));
            out.push(t(
                "Sinkhorn EM is insensitive to loops: |mIoU(max) − mIoU(1)| ≤ 0.01 (Table 5a: 46.0 at 1, 5, 10)",
                "miou", "val", ("sinkhorn", hi), ("sinkhorn", lo), Within(0.01),
            ));
        }
        Study::Components => {
            out.push(t(
                "M = 5 mIoU > M = 1 (Table 5b: 46.0 vs 44.2)",
                "miou",
                "val",
                ("gmmseg", Some(5.0)),
                ("gmmseg", Some(1.0)),
                Better,
            ));
            out.push(t(
                "M = 5 mIoU > M = 3 (Table 5b: 46.0 vs 45.3)",
                "miou",
                "val",
                ("gmmseg", Some(5.0)),
                ("gmmseg", Some(3.0)),
                Better,
            ));
            out.push(t(
                "M = 5 mIoU ≥ M = 15 − 0.01 (Table 5b: 46.0 vs 45.7)",
                "miou",
                "val",
                ("gmmseg", Some(5.0)),
                ("gmmseg", Some(15.0)),
                NotWorse(NOT_WORSE_MARGIN),
            ));
        }
        Study::Calibration => {
            out.push(t(
                "GMMSeg ECE < softmax ECE (Fig. 5: GMMSeg is better calibrated)",
                "ece",
                "val",
                ("gmmseg", None),
                ("softmax", None),
                Better,
            ));
            // The fair baseline the paper leaves out: a softmax model after temperature
            // scaling (one scalar fitted on the tune split).
            out.push(t(
                "GMMSeg ECE < temperature-scaled softmax ECE (not in the paper: the fair baseline)",
                "ece",
                "val",
                ("gmmseg", None),
                ("softmax+ts", None),
                Better,
            ));
            out.push(t(
                "temperature-scaled GMMSeg ECE < temperature-scaled softmax ECE (not in the paper)",
                "ece",
                "val",
                ("gmmseg+ts", None),
                ("softmax+ts", None),
                Better,
            ));
            for (metric, name) in [("smooth_ece", "smooth ECE"), ("classwise_ece", "classwise ECE")] {
                out.push(t(
                    format!("GMMSeg {name} < softmax {name} (Fig. 5's claim, another calibration measure)"),
                    metric,
                    "val",
                    ("gmmseg", None),
                    ("softmax", None),
                    Better,
                ));
            }
        }
        // The paper reports no numbers for its released code: nothing to claim.
        Study::Flavours => {}
        Study::Gap => {
            let variants: BTreeSet<&str> = rows.iter().map(|r| r.variant.as_str()).collect();
            let anomaly: Vec<&str> = groups
                .iter()
                .copied()
                .filter(|g| g.starts_with("anomaly"))
                .collect();
            for &v in &variants {
                let a = (v, None);
                if v.starts_with("softmax") {
                    if v != "softmax" {
                        out.push(t(
                            format!("{v}: val mIoU > softmax's"),
                            "miou",
                            "val",
                            a,
                            ("softmax", None),
                            Better,
                        ));
                    }
                    continue;
                }
                if v != "gmmseg" {
                    out.push(t(
                        format!("{v}: tune mIoU > tuned GMMSeg's (a factor is kept when the mean difference is > 0)"),
                        "miou", "tune", a, ("gmmseg", None), Better,
                    ));
                    out.push(t(
                        format!("{v}: val mIoU > tuned GMMSeg's"),
                        "miou",
                        "val",
                        a,
                        ("gmmseg", None),
                        Better,
                    ));
                }
                out.push(t(
                    format!("{v}: val mIoU ≥ softmax mIoU − 0.01 (Table 1)"),
                    "miou",
                    "val",
                    a,
                    ("softmax", None),
                    NotWorse(NOT_WORSE_MARGIN),
                ));
                for &g in &anomaly {
                    out.push(t(
                        format!("{v}: {g} likelihood AUROC > softmax MSP AUROC (Table 2)"),
                        "auroc",
                        g,
                        a,
                        ("softmax", None),
                        Better,
                    ));
                }
                out.push(t(
                    format!("{v}: ECE < softmax ECE (Fig. 5)"),
                    "ece",
                    "val",
                    a,
                    ("softmax", None),
                    Better,
                ));
            }
        }
        // Decided on the paired ratio: two throughputs timed minutes apart, after two
        // trainings, differ by more than the head's cost on a shared machine.
        Study::Runtime => out.push(t(
            format!("GMMSeg inference ≥ {PAPER_THROUGHPUT_RATIO} × softmax throughput, paired timing; A − B = ratio − {PAPER_THROUGHPUT_RATIO} (§4.3: 13.37 vs 14.16 fps)"),
            "throughput_vs_softmax",
            "",
            ("gmmseg", None),
            ("threshold", Some(PAPER_THROUGHPUT_RATIO)),
            AtLeast(PAPER_THROUGHPUT_RATIO),
        )),
    }
    out
}

/// Evaluates the paper's claims of `study`: the templates are instantiated from the summary
/// cells, and each claim is decided on the per-seed rows (module docs).
pub fn evaluate_claims(study: Study, cells: &[SummaryRow], rows: &[RunRow]) -> Vec<Claim> {
    let dataset = cells.first().map(|r| r.dataset.clone()).unwrap_or_default();
    // (variant, param, group, metric) → seed → value (finite values only)
    let per_seed = |v: &(String, Option<f64>), group: &str, metric: &str| -> BTreeMap<u64, f64> {
        rows.iter()
            .filter(|r| {
                r.variant == v.0
                    && r.param == v.1
                    && r.group == group
                    && r.metric == metric
                    && r.value.is_finite()
            })
            .map(|r| (r.seed, r.value))
            .collect()
    };
    templates(study, cells)
        .into_iter()
        .map(|tp| {
            let a = per_seed(&tp.a, &tp.group, tp.metric);
            let diffs: Vec<f64> = match tp.kind {
                ClaimKind::AtLeast(v) => a.values().map(|x| x - v).collect(),
                _ => {
                    let b = per_seed(&tp.b, &tp.group, tp.metric);
                    a.iter()
                        .filter_map(|(s, x)| b.get(s).map(|y| x - y))
                        .collect()
                }
            };
            let decided = decide_paired(tp.kind, tp.metric, &diffs);
            Claim {
                study: study.name().into(),
                dataset: dataset.clone(),
                statement: tp.statement,
                metric: tp.metric.into(),
                group: tp.group,
                a: tp.a,
                b: tp.b,
                kind: tp.kind,
                n: diffs.len(),
                mean_diff: decided.map(|d| d.0),
                ci95: decided.and_then(|d| d.1),
                agree: decided.map_or(0, |d| d.2),
                verdict: decided.map(|d| d.3),
            }
        })
        .collect()
}

/// Summary rows and evaluated claims of one study's rows.
pub(crate) fn summarize_study(
    study: Study,
    rows: &[RunRow],
) -> Result<(Vec<SummaryRow>, Vec<Claim>)> {
    let s = summarize_rows(rows)?;
    let c = evaluate_claims(study, &s, rows);
    Ok((s, c))
}

fn label(v: &(String, Option<f64>)) -> String {
    match v.1 {
        Some(p) => format!("{}@{p}", v.0),
        None => v.0.clone(),
    }
}

/// The summary table: one row per cell, then one row per claim (variant `A vs B`; `mean` =
/// the paired mean difference A − B, `ci95` its half-width, `lower`/`upper`, `n` the pairs,
/// and `claim`, `agree`, `verdict` set; those three are null on plain rows).
///
/// # Errors
/// Only if polars refuses the columns.
pub fn summary_frame(rows: &[SummaryRow], claims: &[Claim]) -> Result<DataFrame> {
    let dataset = rows.first().map(|r| r.dataset.clone()).unwrap_or_default();
    let mut study = Vec::new();
    let mut ds = Vec::new();
    let mut variant = Vec::new();
    let mut group = Vec::new();
    let mut param = Vec::new();
    let mut metric = Vec::new();
    let mut n = Vec::new();
    let mut mean: Vec<Option<f64>> = Vec::new();
    let mut std = Vec::new();
    let mut ci = Vec::new();
    let mut lower = Vec::new();
    let mut upper = Vec::new();
    let mut claim: Vec<Option<String>> = Vec::new();
    let mut agree: Vec<Option<u64>> = Vec::new();
    let mut verdict: Vec<Option<&str>> = Vec::new();
    for r in rows {
        study.push(r.study.clone());
        ds.push(r.dataset.clone());
        variant.push(r.variant.clone());
        group.push(r.group.clone());
        param.push(r.param);
        metric.push(r.metric.clone());
        n.push(r.stats.n as u64);
        mean.push(Some(r.stats.mean));
        std.push(r.stats.std);
        ci.push(r.stats.ci95);
        lower.push(Some(r.stats.lower()));
        upper.push(Some(r.stats.upper()));
        claim.push(None);
        agree.push(None);
        verdict.push(None);
    }
    for c in claims {
        study.push(c.study.clone());
        ds.push(dataset.clone());
        variant.push(format!("{} vs {}", label(&c.a), label(&c.b)));
        group.push(c.group.clone());
        param.push(None);
        metric.push(c.metric.clone());
        n.push(c.n as u64);
        mean.push(c.mean_diff);
        std.push(None);
        ci.push(c.ci95);
        lower.push(c.lower());
        upper.push(c.upper());
        claim.push(Some(c.statement.clone()));
        agree.push(Some(c.agree as u64));
        verdict.push(c.verdict.map(|v| v.name()));
    }
    df!(
        COL_STUDY => study,
        COL_DATASET => ds,
        COL_VARIANT => variant,
        COL_GROUP => group,
        COL_PARAM => param,
        COL_METRIC => metric,
        COL_N => n,
        COL_MEAN => mean,
        COL_STD => std,
        COL_CI95 => ci,
        COL_LOWER => lower,
        COL_UPPER => upper,
        COL_CLAIM => claim,
        COL_AGREE => agree,
        COL_VERDICT => verdict,
    )
    .map_err(|e| GmmSegError::shape("summary table", e.to_string()))
}

/// The columns of `claims.csv`, in order (a contract other tools read).
pub const CLAIMS_CSV_COLUMNS: [&str; 15] = [
    "study",
    "claim",
    "metric",
    "group",
    "a_variant",
    "a_param",
    "b_variant",
    "b_param",
    "n",
    "mean_diff",
    "ci95",
    "lower",
    "upper",
    "agree",
    "verdict",
];

/// The claims as `claims.csv` holds them ([`CLAIMS_CSV_COLUMNS`]): one row per claim that was
/// run (claims whose variants are missing are left out). `mean_diff` = mean over the `n`
/// paired seeds of metric(A) − metric(B), raw sign; `lower`/`upper` = `mean_diff ∓ ci95`
/// (null `ci95` with one seed, and then `lower` = `upper` = `mean_diff`); `agree` = seeds
/// on the claim's side; `verdict` ∈ reproduced / contradicted / inconclusive; `a_param` /
/// `b_param` empty where a variant has none. The threshold claim ([`ClaimKind::AtLeast`])
/// names `threshold` as `b_variant` with the threshold as `b_param`.
///
/// # Errors
/// Only if polars refuses the columns.
pub fn claims_csv_frame(claims: &[Claim]) -> Result<DataFrame> {
    let run: Vec<&Claim> = claims.iter().filter(|c| c.verdict.is_some()).collect();
    let s = |f: fn(&Claim) -> String| run.iter().map(|c| f(c)).collect::<Vec<_>>();
    let [study, claim, metric, group, a_variant, a_param, b_variant, b_param, n, mean_diff, ci95, lower, upper, agree, verdict] =
        CLAIMS_CSV_COLUMNS;
    df!(
        study => s(|c| c.study.clone()),
        claim => s(|c| c.statement.clone()),
        metric => s(|c| c.metric.clone()),
        group => s(|c| c.group.clone()),
        a_variant => s(|c| c.a.0.clone()),
        a_param => run.iter().map(|c| c.a.1).collect::<Vec<_>>(),
        b_variant => s(|c| c.b.0.clone()),
        b_param => run.iter().map(|c| c.b.1).collect::<Vec<_>>(),
        n => run.iter().map(|c| c.n as u64).collect::<Vec<_>>(),
        mean_diff => run.iter().map(|c| c.mean_diff).collect::<Vec<_>>(),
        ci95 => run.iter().map(|c| c.ci95).collect::<Vec<_>>(),
        lower => run.iter().map(|c| c.lower()).collect::<Vec<_>>(),
        upper => run.iter().map(|c| c.upper()).collect::<Vec<_>>(),
        agree => run.iter().map(|c| c.agree as u64).collect::<Vec<_>>(),
        verdict => s(|c| c.verdict.map(|v| v.name()).unwrap_or_default().to_string()),
    )
    .map_err(|e| GmmSegError::shape("claims table", e.to_string()))
}

/// Summarises a runs table (as returned by a study, or read back from its CSV) and appends
/// the claims of `study`.
///
/// # Errors
/// [`GmmSegError::InvalidInput`] if `runs` lacks a column of the runs schema.
pub fn summarize_runs(study: Study, runs: &DataFrame) -> Result<DataFrame> {
    let rows =
        super::cache::frame_rows(runs).map_err(|e| GmmSegError::input("runs", e.to_string()))?;
    let (s, c) = summarize_study(study, &rows)?;
    summary_frame(&s, &c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_verdicts_follow_the_rule_on_hand_computed_cases() {
        // d = 0.02, 0.03, 0.04: mean 0.03, sd 0.01, h = 4.3027·0.01/√3 = 0.024841
        let d = [0.02, 0.03, 0.04];
        let (mean, ci, agree, v) = decide_paired(ClaimKind::Better, "miou", &d).unwrap();
        assert!((mean - 0.03).abs() < 1e-12);
        assert!((ci.unwrap() - 4.302652729749462 * 0.01 / 3f64.sqrt()).abs() < 1e-12);
        assert_eq!((agree, v), (3, Verdict::Reproduced));
        // lower is better: the same differences contradict "A has the lower ECE"
        let (_, _, agree, v) = decide_paired(ClaimKind::Better, "ece", &d).unwrap();
        assert_eq!((agree, v), (0, Verdict::Contradicted));
        // straddling zero
        let (_, _, agree, v) = decide_paired(ClaimKind::Better, "miou", &[0.05, -0.01]).unwrap();
        assert_eq!((agree, v), (1, Verdict::Inconclusive));
        // one seed: no interval, inconclusive whatever the size
        let (_, ci, _, v) = decide_paired(ClaimKind::Better, "miou", &[0.5]).unwrap();
        assert_eq!((ci, v), (None, Verdict::Inconclusive));
        assert!(decide_paired(ClaimKind::Better, "miou", &[]).is_none());
    }

    #[test]
    fn not_worse_uses_the_fixed_margin_not_the_interval() {
        let m = ClaimKind::NotWorse(NOT_WORSE_MARGIN);
        // −0.119 ± a wide interval used to "hold" (within the CI); it is contradicted here
        let (_, _, agree, v) = decide_paired(m, "miou", &[-0.10, -0.12, -0.137]).unwrap();
        assert_eq!((agree, v), (0, Verdict::Contradicted));
        // −0.005 with a tight interval: reproduced (the whole CI lies above −0.01)
        let (_, _, _, v) = decide_paired(m, "miou", &[-0.005, -0.004, -0.006]).unwrap();
        assert_eq!(v, Verdict::Reproduced);
        // straddles −0.01: inconclusive
        let (_, _, _, v) = decide_paired(m, "miou", &[-0.03, 0.01, -0.01]).unwrap();
        assert_eq!(v, Verdict::Inconclusive);
    }

    #[test]
    fn within_and_threshold_claims() {
        let w = ClaimKind::Within(0.01);
        let (_, _, _, v) = decide_paired(w, "miou", &[0.001, -0.001, 0.0]).unwrap();
        assert_eq!(v, Verdict::Reproduced);
        let (_, _, _, v) = decide_paired(w, "miou", &[-0.20, -0.22, -0.21]).unwrap();
        assert_eq!(v, Verdict::Contradicted);
        let a = ClaimKind::AtLeast(PAPER_THROUGHPUT_RATIO);
        let ratios = [0.960, 0.962, 0.958];
        let diffs: Vec<f64> = ratios.iter().map(|r| r - PAPER_THROUGHPUT_RATIO).collect();
        let (mean, _, agree, v) = decide_paired(a, "throughput_vs_softmax", &diffs).unwrap();
        assert!((mean - (0.96 - PAPER_THROUGHPUT_RATIO)).abs() < 1e-9);
        assert_eq!((agree, v), (3, Verdict::Reproduced));
    }

    fn row(variant: &str, seed: u64, value: f64) -> RunRow {
        RunRow {
            study: "calibration".into(),
            dataset: "synthscapes".into(),
            variant: variant.into(),
            group: "val".into(),
            param: None,
            seed,
            metric: "ece".into(),
            value,
            hash: format!("{variant}{seed}"),
            model: String::new(),
            code: String::new(),
        }
    }

    #[test]
    fn claims_pair_by_seed_and_skip_unpaired_seeds() {
        // seed 2 has GMMSeg only: it takes no part in the comparison
        let rows = vec![
            row("gmmseg", 0, 0.01),
            row("gmmseg", 1, 0.02),
            row("gmmseg", 2, 0.50),
            row("softmax", 0, 0.03),
            row("softmax", 1, 0.05),
        ];
        let (_, claims) = summarize_study(Study::Calibration, &rows).unwrap();
        let c = &claims[0];
        assert_eq!(c.n, 2);
        assert!((c.mean_diff.unwrap() - (-0.025)).abs() < 1e-12);
        assert_eq!(c.agree, 2);
        let frame = claims_csv_frame(&claims).unwrap();
        let names: Vec<String> = frame
            .get_column_names()
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(names, CLAIMS_CSV_COLUMNS.map(String::from).to_vec());
    }
}
