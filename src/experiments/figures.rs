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
//! | runtime | `runtime_images_per_s`, `runtime_step_ms` |

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::summary::SummaryRow;
use super::Study;
use crate::error::Result;
use crate::metrics::{CalibrationMetrics, ReliabilityBin, Summary};
use crate::plot::ablation::{grouped_bars, metric_vs_parameter, ChartLabels, CiSeries};
use crate::plot::reliability::{reliability_diagram, ReliabilityOptions};
use crate::plot::save_svg_and_png;

const SIZE: (u32, u32) = (900, 560);

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

/// Grouped bars of `metric`: categories are (group, metric) pairs, series the variants.
fn bars(
    dir: &Path,
    stem: &str,
    rows: &[SummaryRow],
    categories: &[(&str, &str, String)],
    variants: &[&str],
    title: &str,
    y: &str,
) -> Result<Option<PathBuf>> {
    let series: Vec<(&str, Vec<Option<Summary>>)> = variants
        .iter()
        .map(|v| {
            (
                *v,
                categories
                    .iter()
                    .map(|(g, m, _)| cell(rows, v, g, m).map(|r| r.stats))
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, s)| s.iter().any(Option::is_some))
        .collect();
    if series.is_empty() {
        return Ok(None);
    }
    let names: Vec<&str> = categories.iter().map(|c| c.2.as_str()).collect();
    let labels = ChartLabels {
        title: title.into(),
        x: String::new(),
        y: y.into(),
    };
    let stem = dir.join(stem);
    save_svg_and_png(&stem, SIZE, |area| {
        grouped_bars(area, &names, &series, &labels)
    })?;
    Ok(Some(stem))
}

fn lines(
    dir: &Path,
    stem: &str,
    rows: &[SummaryRow],
    metric: &str,
    labels: ChartLabels,
) -> Result<Option<PathBuf>> {
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
    if series.iter().all(|s| s.points.is_empty()) {
        return Ok(None);
    }
    let stem = dir.join(stem);
    save_svg_and_png(&stem, SIZE, |area| {
        metric_vs_parameter(area, &series, &labels)
    })?;
    Ok(Some(stem))
}

/// Reliability metrics of `variant` rebuilt from the summary (bin means over seeds).
fn reliability(rows: &[SummaryRow], variant: &str) -> Option<CalibrationMetrics> {
    let get = |m: &str| cell(rows, variant, "val", m).map(|r| r.stats.mean);
    let centres = {
        let mut c: Vec<f64> = rows
            .iter()
            .filter(|r| r.variant == variant && r.metric == "bin_share")
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
    let bins = centres
        .iter()
        .map(|&c| ReliabilityBin {
            lower: c - half,
            upper: c + half,
            count: (bin_metric(c, "bin_share").unwrap_or(0.0) * 1e6).round() as u64,
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
        pixels: 1_000_000,
        bins,
    })
}

/// Draws the figures of `study` from its summary cells into `dir` (`<stem>.svg` and
/// `<stem>.png`); returns the stems written. A figure whose cells are all missing (e.g. a
/// shard that ran none of them) is skipped.
///
/// # Errors
/// Plotting and I/O errors.
pub fn write_figures(study: Study, rows: &[SummaryRow], dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let splits = distinct(rows, |r| {
        r.group.starts_with("anomaly").then_some(r.group.as_str())
    });
    let name = study.name();
    match study {
        Study::MainResults => {
            let cats: Vec<_> = ["fcn", "deeplab"]
                .iter()
                .map(|d| (*d, "miou", d.to_string()))
                .collect();
            out.extend(bars(
                dir,
                "main_results_miou",
                rows,
                &cats,
                &["softmax", "gmmseg"],
                "Table 1: validation mIoU",
                "mIoU",
            )?);
        }
        Study::Anomaly => {
            let variants = distinct(rows, |r| Some(r.variant.as_str()));
            for (metric, title) in [
                ("auroc", "Table 2: anomaly AUROC"),
                ("fpr95", "Table 2: FPR at 95% TPR (lower is better)"),
            ] {
                let cats: Vec<_> = splits.iter().map(|s| (*s, metric, s.to_string())).collect();
                out.extend(bars(
                    dir,
                    &format!("anomaly_{metric}"),
                    rows,
                    &cats,
                    &variants,
                    title,
                    metric,
                )?);
            }
        }
        Study::OnlineVsPosthoc => {
            let cats = [("val", "miou", "validation mIoU".to_string())];
            out.extend(bars(
                dir,
                "online_vs_posthoc_miou",
                rows,
                &cats,
                &["softmax", "post-hoc gmm", "online gmmseg"],
                "Table 3: online vs post-hoc GMM",
                "mIoU",
            )?);
        }
        Study::GenVsDisc | Study::Flavours => {
            let mut cats = vec![("val", "miou", "val mIoU".to_string())];
            cats.extend(splits.iter().map(|s| (*s, "auroc", format!("{s} AUROC"))));
            let variants = distinct(rows, |r| Some(r.variant.as_str()));
            let title = if study == Study::GenVsDisc {
                "Table 4: generative vs discriminative GMM head"
            } else {
                "Paper flavour vs reference-code flavour"
            };
            out.extend(bars(dir, name, rows, &cats, &variants, title, "value")?);
        }
        Study::Em => out.extend(lines(
            dir,
            "em_miou",
            rows,
            "miou",
            ChartLabels {
                title: "Table 5a: EM algorithm and loops per iteration".into(),
                x: "EM loops per iteration".into(),
                y: "mIoU".into(),
            },
        )?),
        Study::Components => out.extend(lines(
            dir,
            "components_miou",
            rows,
            "miou",
            ChartLabels {
                title: "Table 5b: components per class".into(),
                x: "M".into(),
                y: "mIoU".into(),
            },
        )?),
        Study::Calibration => {
            let models: Vec<(&str, CalibrationMetrics)> = ["softmax", "gmmseg"]
                .iter()
                .filter_map(|v| reliability(rows, v).map(|m| (*v, m)))
                .collect();
            if !models.is_empty() {
                let pairs: Vec<(&str, &CalibrationMetrics)> =
                    models.iter().map(|(n, m)| (*n, m)).collect();
                let stem = dir.join("calibration_reliability");
                save_svg_and_png(&stem, (1000, 560), |area| {
                    reliability_diagram(area, &pairs, &ReliabilityOptions::default())
                })?;
                out.push(stem);
            }
        }
        Study::Runtime => {
            for (metric, title, y) in [
                ("images_per_s", "§4.3: inference throughput", "images/s"),
                ("step_ms", "Training step time", "ms per step"),
            ] {
                let cats = [("", metric, y.to_string())];
                out.extend(bars(
                    dir,
                    &format!("runtime_{metric}"),
                    rows,
                    &cats,
                    &["softmax", "gmmseg"],
                    title,
                    y,
                )?);
            }
        }
    }
    Ok(out)
}
