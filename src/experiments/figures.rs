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
use crate::plot::reliability::{
    classwise_reliability_grid, reliability_diagram, ReliabilityOptions,
};
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
    /// Reliability diagrams side by side (two columns from four models on).
    Reliability {
        /// (model name, its calibration metrics with the bins).
        models: Vec<(String, CalibrationMetrics)>,
    },
    /// Classwise reliability: one small panel per class, one line per model.
    ClassReliability {
        /// Panel titles, one per class.
        classes: Vec<String>,
        /// (model name, per class its bins).
        models: Vec<(String, Vec<Vec<ReliabilityBin>>)>,
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
                let options = ReliabilityOptions {
                    columns: Some(if pairs.len() >= 4 { 2 } else { pairs.len() }),
                    ..ReliabilityOptions::default()
                };
                reliability_diagram(area, &pairs, &options)
            }
            FigureKind::ClassReliability { classes, models } => {
                let names: Vec<&str> = classes.iter().map(String::as_str).collect();
                let pairs: Vec<(&str, &[Vec<ReliabilityBin>])> = models
                    .iter()
                    .map(|(n, b)| (n.as_str(), b.as_slice()))
                    .collect();
                classwise_reliability_grid(area, &names, &pairs)
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
        "miou"
            | "acc"
            | "macc"
            | "auroc"
            | "ap"
            | "fpr95"
            | "ece"
            | "mce"
            | "siou"
            | "ppv"
            | "mean_f1"
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

/// The calibration study's variants: both heads, plain and temperature-scaled.
const CALIBRATION_VARIANTS: [&str; 4] = ["softmax", "gmmseg", "softmax+ts", "gmmseg+ts"];

/// A variant's name for a figure (`+ts` spelled out).
fn display_name(v: &str) -> String {
    match v.strip_suffix("+ts") {
        Some(head) => format!("{head} + temperature"),
        None => v.to_string(),
    }
}

/// Bars of one metric per variant, two series: the 95% CI over seeds, and the image
/// bootstrap's interval of one model (its half-width, averaged over the seeds' models,
/// around the same mean), so that a reader sees which uncertainty dominates.
fn uncertainty_bars(
    name: &str,
    rows: &[SummaryRow],
    group: &str,
    metric: &str,
    variants: &[&str],
    title: &str,
) -> Option<StudyFigure> {
    let seeds: Vec<Option<Summary>> = variants
        .iter()
        .map(|v| cell(rows, v, group, metric).map(|r| r.stats))
        .collect();
    let images: Vec<Option<Summary>> = variants
        .iter()
        .map(|v| {
            let mean = cell(rows, v, group, metric)?.stats;
            let lo = cell(rows, v, group, &format!("{metric}_boot_lo"))?
                .stats
                .mean;
            let hi = cell(rows, v, group, &format!("{metric}_boot_hi"))?
                .stats
                .mean;
            Some(Summary {
                n: mean.n,
                mean: mean.mean,
                std: None,
                ci95: Some(0.5 * (hi - lo)),
            })
        })
        .collect();
    if images.iter().all(Option::is_none) {
        return None;
    }
    Some(StudyFigure {
        name: name.into(),
        size: SIZE,
        kind: FigureKind::Bars {
            categories: variants.iter().map(|v| display_name(v)).collect(),
            series: vec![
                ("95% CI over seeds".into(), seeds),
                ("image bootstrap, one model".into(), images),
            ],
            labels: ChartLabels {
                title: title.into(),
                x: String::new(),
                y: metric.into(),
                y_bounds: None,
            },
        },
    })
}

/// The classwise reliability grid of both heads (bins averaged over seeds).
fn class_reliability(rows: &[SummaryRow]) -> Option<StudyFigure> {
    let mut classes: Vec<usize> = rows
        .iter()
        .filter_map(|r| r.group.strip_prefix("val/class/")?.parse().ok())
        .collect();
    classes.sort_unstable();
    classes.dedup();
    if classes.is_empty() {
        return None;
    }
    let models: Vec<(String, Vec<Vec<ReliabilityBin>>)> = ["softmax", "gmmseg"]
        .iter()
        .map(|v| {
            let per_class = classes
                .iter()
                .map(|c| {
                    let group = format!("val/class/{c}");
                    let mut centres: Vec<f64> = rows
                        .iter()
                        .filter(|r| r.variant == *v && r.group == group && r.metric == "bin_count")
                        .filter_map(|r| r.param)
                        .collect();
                    centres.sort_by(f64::total_cmp);
                    let half = 0.5 / centres.len().max(1) as f64;
                    let get = |c: f64, m: &str| {
                        rows.iter()
                            .find(|r| {
                                r.variant == *v
                                    && r.group == group
                                    && r.metric == m
                                    && r.param == Some(c)
                            })
                            .map(|r| r.stats.mean)
                    };
                    centres
                        .iter()
                        .map(|&c| ReliabilityBin {
                            lower: c - half,
                            upper: c + half,
                            count: get(c, "bin_count").unwrap_or(0.0).round() as u64,
                            confidence: get(c, "bin_confidence"),
                            accuracy: get(c, "bin_accuracy"),
                        })
                        .collect()
                })
                .collect();
            (v.to_string(), per_class)
        })
        .collect();
    let cols = (classes.len() as f64).sqrt().ceil() as u32;
    let rows_n = (classes.len() as u32).div_ceil(cols);
    Some(StudyFigure {
        name: "calibration_classwise_reliability".into(),
        size: (280 * cols + 40, 260 * rows_n + 80),
        kind: FigureKind::ClassReliability {
            classes: classes.iter().map(|c| format!("class {c}")).collect(),
            models,
        },
    })
}

/// Reliability metrics of `variant` rebuilt from the summary (bin means over seeds; the
/// pixel counts are per-seed means).
pub(in crate::experiments) fn reliability(
    rows: &[SummaryRow],
    variant: &str,
) -> Option<CalibrationMetrics> {
    let get = |m: &str| cell(rows, variant, "val", m).map(|r| r.stats.mean);
    let centres = {
        let mut c: Vec<f64> = rows
            .iter()
            .filter(|r| r.variant == variant && r.group == "val" && r.metric == "bin_count")
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
            .find(|r| {
                r.variant == variant && r.group == "val" && r.metric == m && r.param == Some(c)
            })
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
    // the image-bootstrap band of each bin's accuracy (per-seed intervals, averaged)
    let band: Vec<Option<[f64; 2]>> = centres
        .iter()
        .map(|&c| {
            Some([
                bin_metric(c, "bin_accuracy_boot_lo")?,
                bin_metric(c, "bin_accuracy_boot_hi")?,
            ])
        })
        .collect();
    let band = if band.iter().any(Option::is_some) {
        band
    } else {
        Vec::new()
    };
    let mut ci95 = crate::metrics::Intervals::new();
    for k in ["ece", "smooth_ece", "classwise_ece"] {
        if let (Some(lo), Some(hi)) = (get(&format!("{k}_boot_lo")), get(&format!("{k}_boot_hi"))) {
            ci95.insert(k.to_string(), [lo, hi]);
        }
    }
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
        ci95,
        bin_accuracy_ci95: band,
    })
}

/// Bar categories: the mIoU of each of `miou_splits`, then the AUROC of every anomaly split
/// (the studies that set segmentation beside the density's anomaly score).
fn miou_then_auroc<'a>(
    miou_splits: &[&'a str],
    anomaly_splits: &[&'a str],
) -> Vec<(&'a str, &'static str, String)> {
    let miou = miou_splits
        .iter()
        .map(|s| (*s, "miou", format!("{s} mIoU")));
    let auroc = anomaly_splits
        .iter()
        .map(|s| (*s, "auroc", format!("{s} AUROC")));
    miou.chain(auroc).collect()
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
            for split in &splits {
                out.extend(uncertainty_bars(
                    &format!("anomaly_auroc_uncertainty_{split}"),
                    rows,
                    split,
                    "auroc",
                    &variants,
                    &format!("{split}: AUROC, spread over seeds vs within one model"),
                ));
            }
            for (metric, title) in [
                ("auroc", "Table 2: anomaly AUROC"),
                ("fpr95", "Table 2: FPR at 95% TPR (lower is better)"),
                ("siou", "SegmentMeIfYouCan: component sIoU"),
                ("mean_f1", "SegmentMeIfYouCan: component mean F1"),
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
            let cats = miou_then_auroc(&["val"], &splits);
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
        Study::Gap => {
            let cats = miou_then_auroc(&["tune", "val"], &splits);
            let variants = distinct(rows, |r| Some(r.variant.as_str()));
            out.extend(bars(
                study.name(),
                rows,
                &cats,
                &variants,
                "The segmentation gap, one factor at a time (AUROC: likelihood; softmax: MSP)",
                "mIoU / AUROC",
            ));
        }
        Study::Flavours => {
            let cats = miou_then_auroc(&["val"], &splits);
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
            let models: Vec<(String, CalibrationMetrics)> = CALIBRATION_VARIANTS
                .iter()
                .filter_map(|v| reliability(rows, v).map(|m| (display_name(v), m)))
                .collect();
            if !models.is_empty() {
                let size = if models.len() >= 4 {
                    (1000, 1040)
                } else {
                    (1000, 560)
                };
                out.push(StudyFigure {
                    name: "calibration_reliability".into(),
                    size,
                    kind: FigureKind::Reliability { models },
                });
            }
            out.extend(class_reliability(rows));
            for (metric, title) in [
                ("ece", "ECE: spread over seeds vs within one model"),
                (
                    "smooth_ece",
                    "Smooth ECE: spread over seeds vs within one model",
                ),
            ] {
                out.extend(uncertainty_bars(
                    &format!("calibration_{metric}_uncertainty"),
                    rows,
                    "val",
                    metric,
                    &CALIBRATION_VARIANTS,
                    title,
                ));
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
