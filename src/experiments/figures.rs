//! The figures of each study, drawn from its summary cells with the plot module's ablation
//! charts (95% CI error bars over seeds) and reliability diagrams, written as SVG + PNG.
//!
//! | study | figure(s) |
//! |---|---|
//! | main_results | `main_results_miou`: grouped bars, decoders × heads |
//! | anomaly | `anomaly_auroc`, `anomaly_fpr95`: grouped bars, splits × scores |
//! | online_vs_posthoc | `online_vs_posthoc_miou` |
//! | gen_vs_disc | `gen_vs_disc`: mIoU and per-split likelihood AUROC |
//! | em | `em_miou`: mIoU vs EM loops, vanilla and Sinkhorn |
//! | components | `components_miou`: mIoU vs M |
//! | calibration | `calibration_reliability`: reliability diagrams (bins averaged over seeds) |
//! | flavours | `flavours`: mIoU and per-split likelihood AUROC per flavour |
//! | runtime | `runtime_images_per_s`, `runtime_step_ms`, `runtime_throughput_vs_softmax` |

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::{DrawingArea, DrawingBackend};

use super::summary::SummaryRow;
use super::Study;
use crate::error::Result;
use crate::metrics::{CalibrationMetrics, ReliabilityBin, Summary};
use crate::plot::ablation::{grouped_bars, metric_vs_parameter, ChartLabels, CiSeries};
use crate::plot::reliability::{reliability_diagram, ReliabilityOptions};
use crate::plot::{inline, save_svg_and_png, InlineSvg};

const SIZE: (u32, u32) = (900, 560);

/// What a study figure draws.
#[derive(Clone, Debug, PartialEq)]
pub enum FigureKind {
    /// Grouped bars with CIs: category names and (series name, one summary per category).
    Bars {
        /// Category names along x.
        categories: Vec<String>,
        /// Series (legend name, a summary or a gap per category).
        series: Vec<(String, Vec<Option<Summary>>)>,
        /// Title and axes.
        labels: ChartLabels,
    },
    /// A metric against a parameter, one line per series, with CI error bars.
    Lines {
        /// The lines.
        series: Vec<CiSeries>,
        /// Title and axes.
        labels: ChartLabels,
    },
    /// Reliability diagrams side by side.
    Reliability {
        /// (model name, its calibration metrics with the bins).
        models: Vec<(String, CalibrationMetrics)>,
    },
}

/// One figure of a study, drawable onto any plotters area (file, notebook cell).
#[derive(Clone, Debug, PartialEq)]
pub struct StudyFigure {
    /// File stem (`<stem>.svg`, `<stem>.png`).
    pub name: String,
    /// Size in pixels.
    pub size: (u32, u32),
    /// The chart.
    pub kind: FigureKind,
}

impl StudyFigure {
    /// Draws the figure onto `area`.
    ///
    /// # Errors
    /// Plotting errors.
    pub fn draw<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> Result<()> {
        match &self.kind {
            FigureKind::Bars {
                categories,
                series,
                labels,
            } => {
                let cats: Vec<&str> = categories.iter().map(String::as_str).collect();
                let ser: Vec<(&str, Vec<Option<Summary>>)> = series
                    .iter()
                    .map(|(n, v)| (n.as_str(), v.clone()))
                    .collect();
                grouped_bars(area, &cats, &ser, labels)
            }
            FigureKind::Lines { series, labels } => metric_vs_parameter(area, series, labels),
            FigureKind::Reliability { models } => {
                let pairs: Vec<(&str, &CalibrationMetrics)> =
                    models.iter().map(|(n, m)| (n.as_str(), m)).collect();
                reliability_diagram(area, &pairs, &ReliabilityOptions::default())
            }
        }
    }

    /// The figure as an inline SVG for an evcxr notebook cell.
    ///
    /// # Errors
    /// Plotting errors.
    pub fn inline(&self) -> Result<InlineSvg> {
        inline(self.size, |a| self.draw(a))
    }
}

fn cell<'a>(
    rows: &'a [SummaryRow],
    variant: &str,
    group: &str,
    metric: &str,
) -> Option<&'a SummaryRow> {
    rows.iter().find(|r| {
        r.variant == variant && r.group == group && r.metric == metric && r.param.is_none()
    })
}

fn distinct<'a>(
    rows: &'a [SummaryRow],
    f: impl Fn(&'a SummaryRow) -> Option<&'a str>,
) -> Vec<&'a str> {
    let mut seen = BTreeSet::new();
    rows.iter()
        .filter_map(f)
        .filter(|v| seen.insert(*v))
        .collect()
}

/// Grouped bars: categories are (group, metric, label) triples, series the variants; `None`
/// if no variant has any of the cells.
/// Whether a metric lives in [0, 1] (its chart axis is clipped there).
fn is_fraction(metric: &str) -> bool {
    matches!(
        metric,
        "miou" | "acc" | "macc" | "auroc" | "ap" | "fpr95" | "ece" | "mce"
    )
}

fn bars(
    name: &str,
    rows: &[SummaryRow],
    categories: &[(&str, &str, String)],
    variants: &[&str],
    title: &str,
    y: &str,
) -> Option<StudyFigure> {
    let series: Vec<(String, Vec<Option<Summary>>)> = variants
        .iter()
        .map(|v| {
            (
                v.to_string(),
                categories
                    .iter()
                    .map(|(g, m, _)| cell(rows, v, g, m).map(|r| r.stats))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, s)| s.iter().any(Option::is_some))
        .collect();
    (!series.is_empty()).then(|| StudyFigure {
        name: name.into(),
        size: SIZE,
        kind: FigureKind::Bars {
            categories: categories.iter().map(|c| c.2.clone()).collect(),
            series,
            labels: ChartLabels {
                title: title.into(),
                x: String::new(),
                y: y.into(),
                y_bounds: categories
                    .iter()
                    .all(|(_, m, _)| is_fraction(m))
                    .then_some((0.0, 1.0)),
            },
        },
    })
}

fn lines(
    name: &str,
    rows: &[SummaryRow],
    metric: &str,
    labels: ChartLabels,
) -> Option<StudyFigure> {
    let variants = distinct(rows, |r| {
        (r.metric == metric && r.param.is_some()).then_some(r.variant.as_str())
    });
    let series: Vec<CiSeries> = variants
        .iter()
        .map(|v| CiSeries {
            name: v.to_string(),
            points: rows
                .iter()
                .filter(|r| r.variant == *v && r.metric == metric)
                .filter_map(|r| r.param.map(|p| (p, r.stats)))
                .collect(),
        })
        .collect();
    (!series.iter().all(|s| s.points.is_empty())).then(|| StudyFigure {
        name: name.into(),
        size: SIZE,
        kind: FigureKind::Lines { series, labels },
    })
}

/// Reliability metrics of `variant` rebuilt from the summary (bin means over seeds; the
/// pixel counts are per-seed means).
fn reliability(rows: &[SummaryRow], variant: &str) -> Option<CalibrationMetrics> {
    let get = |m: &str| cell(rows, variant, "val", m).map(|r| r.stats.mean);
    let centres = {
        let mut c: Vec<f64> = rows
            .iter()
            .filter(|r| r.variant == variant && r.metric == "bin_count")
            .filter_map(|r| r.param)
            .collect();
        c.sort_by(f64::total_cmp);
        c
    };
    if centres.is_empty() {
        return None;
    }
    let half = 0.5 / centres.len() as f64;
    let bin_metric = |c: f64, m: &str| {
        rows.iter()
            .find(|r| r.variant == variant && r.metric == m && r.param == Some(c))
            .map(|r| r.stats.mean)
    };
    let bins: Vec<ReliabilityBin> = centres
        .iter()
        .map(|&c| ReliabilityBin {
            lower: c - half,
            upper: c + half,
            count: bin_metric(c, "bin_count").unwrap_or(0.0).round() as u64,
            confidence: bin_metric(c, "bin_confidence"),
            accuracy: bin_metric(c, "bin_accuracy"),
        })
        .collect();
    Some(CalibrationMetrics {
        ece: get("ece")?,
        mce: get("mce").unwrap_or(f64::NAN),
        adaptive_ece: None,
        nll: get("nll").unwrap_or(f64::NAN),
        brier: get("brier").unwrap_or(f64::NAN),
        accuracy: get("acc").unwrap_or(f64::NAN),
        pixels: bins.iter().map(|b| b.count).sum(),
        bins,
        rmsce: get("rmsce").unwrap_or(f64::NAN),
        classwise_ece: get("classwise_ece").unwrap_or(f64::NAN),
        smooth_ece: get("smooth_ece"),
        smooth_ece_bandwidth: None,
        brier_reliability: get("brier_reliability").unwrap_or(f64::NAN),
        brier_resolution: get("brier_resolution").unwrap_or(f64::NAN),
        brier_uncertainty: get("brier_uncertainty").unwrap_or(f64::NAN),
        classwise_bins: Vec::new(),
        ci95: Default::default(),
    })
}

/// The figures of `study`, built from its summary cells (bins averaged over seeds for the
/// reliability diagrams). Figures whose cells are all missing (e.g. after a shard that ran
/// none of them) are left out.
pub fn study_figures(study: Study, rows: &[SummaryRow]) -> Vec<StudyFigure> {
    let mut out = Vec::new();
    let splits = distinct(rows, |r| {
        r.group.starts_with("anomaly").then_some(r.group.as_str())
    });
    match study {
        Study::MainResults => {
            let cats: Vec<_> = ["fcn", "deeplab"]
                .iter()
                .map(|d| (*d, "miou", d.to_string()))
                .collect();
            out.extend(bars(
                "main_results_miou",
                rows,
                &cats,
                &["softmax", "gmmseg"],
                "Table 1: validation mIoU",
                "mIoU",
            ));
        }
        Study::Anomaly => {
            let variants = distinct(rows, |r| Some(r.variant.as_str()));
            for (metric, title) in [
                ("auroc", "Table 2: anomaly AUROC"),
                ("fpr95", "Table 2: FPR at 95% TPR (lower is better)"),
            ] {
                let cats: Vec<_> = splits.iter().map(|s| (*s, metric, s.to_string())).collect();
                out.extend(bars(
                    &format!("anomaly_{metric}"),
                    rows,
                    &cats,
                    &variants,
                    title,
                    metric,
                ));
            }
        }
        Study::OnlineVsPosthoc => {
            let cats = [("val", "miou", "validation mIoU".to_string())];
            out.extend(bars(
                "online_vs_posthoc_miou",
                rows,
                &cats,
                &["softmax", "post-hoc gmm", "online gmmseg"],
                "Table 3: online vs post-hoc GMM",
                "mIoU",
            ));
        }
        Study::GenVsDisc => {
            let mut cats = vec![("val", "miou", "val mIoU".to_string())];
            cats.extend(splits.iter().map(|s| (*s, "auroc", format!("{s} AUROC"))));
            let variants = distinct(rows, |r| Some(r.variant.as_str()));
            out.extend(bars(
                study.name(),
                rows,
                &cats,
                &variants,
                "Table 4: generative vs discriminative GMM head",
                "mIoU / AUROC",
            ));
        }
        Study::Flavours => {
            let mut cats = vec![("val", "miou", "val mIoU".to_string())];
            cats.extend(splits.iter().map(|s| (*s, "auroc", format!("{s} AUROC"))));
            let variants = distinct(rows, |r| Some(r.variant.as_str()));
            let on_path = |v: &&str| v.starts_with(super::CUMULATIVE_PREFIX);
            // one difference at a time
            let single: Vec<&str> = variants.iter().copied().filter(|v| !on_path(v)).collect();
            out.extend(bars(
                study.name(),
                rows,
                &cats,
                &single,
                "Paper flavour vs reference-code flavour: one difference at a time",
                "mIoU / AUROC",
            ));
            // the cumulative path, from the paper flavour to the reference code
            let mut path: Vec<&str> = Vec::new();
            path.extend(variants.iter().copied().filter(|v| *v == "paper"));
            path.extend(
                variants
                    .iter()
                    .copied()
                    .filter(|v| *v == "paper + feature LN+L2"),
            );
            path.extend(variants.iter().copied().filter(on_path));
            path.extend(variants.iter().copied().filter(|v| *v == "reference-code"));
            if path.iter().any(on_path) {
                out.extend(bars(
                    "flavours_path",
                    rows,
                    &cats,
                    &path,
                    "From the paper flavour to the reference code, one difference added at a time",
                    "mIoU / AUROC",
                ));
            }
        }
        Study::Em => out.extend(lines(
            "em_miou",
            rows,
            "miou",
            ChartLabels {
                title: "Table 5a: EM algorithm and loops per iteration".into(),
                x: "EM loops per iteration".into(),
                y: "mIoU".into(),
                y_bounds: Some((0.0, 1.0)),
            },
        )),
        Study::Components => out.extend(lines(
            "components_miou",
            rows,
            "miou",
            ChartLabels {
                title: "Table 5b: components per class".into(),
                x: "M".into(),
                y: "mIoU".into(),
                y_bounds: Some((0.0, 1.0)),
            },
        )),
        Study::Calibration => {
            let models: Vec<(String, CalibrationMetrics)> = ["softmax", "gmmseg"]
                .iter()
                .filter_map(|v| reliability(rows, v).map(|m| (v.to_string(), m)))
                .collect();
            if !models.is_empty() {
                out.push(StudyFigure {
                    name: "calibration_reliability".into(),
                    size: (1000, 560),
                    kind: FigureKind::Reliability { models },
                });
            }
        }
        Study::Runtime => {
            for (metric, title, y) in [
                ("images_per_s", "§4.3: inference throughput", "images/s"),
                ("step_ms", "Training step time", "ms per step"),
            ] {
                let cats = [("", metric, y.to_string())];
                out.extend(bars(
                    &format!("runtime_{metric}"),
                    rows,
                    &cats,
                    &["softmax", "gmmseg"],
                    title,
                    y,
                ));
            }
            out.extend(bars(
                "runtime_throughput_vs_softmax",
                rows,
                &[("", "throughput_vs_softmax", "GMMSeg / softmax".into())],
                &["gmmseg"],
                "§4.3: inference throughput relative to softmax, paired timing (paper: 0.944)",
                "throughput ratio",
            ));
        }
    }
    out
}

/// Writes the figures of `study` ([`study_figures`]) into `dir` as `<name>.svg` and
/// `<name>.png`; returns the stems written.
///
/// # Errors
/// Plotting and I/O errors.
pub fn write_figures(study: Study, rows: &[SummaryRow], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for f in study_figures(study, rows) {
        let stem = dir.join(&f.name);
        save_svg_and_png(&stem, f.size, |a| f.draw(a))?;
        out.push(stem);
    }
    Ok(out)
}
