//! `gmmseg metrics {seg, anomaly, calibration}`: evaluate predictions saved as NumPy arrays.
//!
//! Every subcommand prints a short human-readable summary, or with `--json` one JSON object
//! whose keys are a fixed interface (scripts and notebooks parse them):
//! - `seg` → `miou`, `per_class_iou` (null for a class with an empty union), `acc`, `macc`;
//! - `anomaly` → `auroc`, `ap`, `fpr95`, `best_f1`, `best_f1_threshold`; with image-shaped
//!   inputs ((N, H, W)) also SegmentMeIfYouCan's component metrics `siou`, `ppv`, `mean_f1`
//!   (and `component_threshold`, `gt_components`, `predicted_components`);
//! - `calibration` → `ece`, `mce`, `adaptive_ece`, `nll`, `brier`, `bins`, `classwise_ece`,
//!   `rmsce`, `smooth_ece`, `brier_reliability`, `brier_resolution`, `brier_uncertainty`.
//!
//! With `--groups G.npy` (an integer image id per pixel; for `anomaly` on (N, H, W) inputs the
//! image index is the default) and `--bootstrap B` (default 1000 when groups are given),
//! both add `ci95: {metric: [lower, upper]}`, an image-level bootstrap (seeded by `--seed`).
//!
//! Extra keys (pixel counts, per-class accuracy) may follow; the listed ones never change.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::error::{GmmSegError, Result};
use crate::io::npy::{read_float_array, read_int_array, read_labels_flat, read_matrix};
use crate::metrics::components::{ComponentAccumulator, ComponentConfig};
use crate::metrics::{
    AnomalyAccumulator, BootstrapConfig, CalibrationAccumulator, CalibrationConfig,
    ConfusionMatrix, ValidBootstrapConfig,
};

/// The `metrics` subcommands.
#[derive(Debug, Subcommand)]
pub enum MetricsCommand {
    /// Segmentation: mIoU, per-class IoU, pixel accuracy, mean class accuracy.
    Seg(SegArgs),
    /// Anomaly segmentation: AUROC, average precision, FPR at 95% TPR.
    Anomaly(AnomalyArgs),
    /// Calibration: ECE, MCE, adaptive ECE, NLL, Brier score, reliability bins.
    Calibration(CalibrationArgs),
}

/// Arguments of `gmmseg metrics seg`.
#[derive(Debug, Args)]
pub struct SegArgs {
    /// Predicted class ids, any integer dtype and shape (e.g. (B, H, W)).
    #[arg(long)]
    pub pred: PathBuf,
    /// Ground-truth class ids, same shape; 255 = ignore.
    #[arg(long)]
    pub gt: PathBuf,
    /// Number of classes C (labels 0..C).
    #[arg(long)]
    pub classes: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The image-bootstrap flags shared by `anomaly` and `calibration`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    /// An image id per pixel (any integer dtype, ids ≥ 0, one per label): the bootstrap
    /// resamples whole images.
    #[arg(long)]
    pub groups: Option<PathBuf>,
    /// Number of bootstrap replicates (default 1000 when image ids are known).
    #[arg(long)]
    pub bootstrap: Option<usize>,
    /// Seed of the bootstrap's resampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl BootstrapArgs {
    /// The checked bootstrap configuration, `None` when no interval was asked for.
    /// `images_known`: the inputs are image-shaped, so image ids need no file.
    fn config(&self, images_known: bool) -> Result<Option<ValidBootstrapConfig>> {
        let have_groups = self.groups.is_some() || images_known;
        match (self.bootstrap, have_groups) {
            (Some(_), false) => Err(GmmSegError::config(
                "--bootstrap",
                "needs --groups (an image id per pixel) to resample whole images",
            )),
            (None, false) => Ok(None),
            (None, true) if self.groups.is_none() => Ok(None),
            (b, true) => BootstrapConfig {
                samples: b.unwrap_or(1000),
                seed: self.seed,
            }
            .check()
            .map(Some)
            .map_err(|_| {
                GmmSegError::config(
                    "--bootstrap",
                    format!(
                        "the number of replicates must be in 1..=100000, got {}",
                        b.unwrap_or(0)
                    ),
                )
            }),
        }
    }

    /// The image ids of `n` pixels from `--groups`, checked against `labels_path`'s count.
    fn read(&self, n: usize, labels_path: &std::path::Path) -> Result<Option<Vec<i64>>> {
        let Some(path) = &self.groups else {
            return Ok(None);
        };
        let g = read_int_array(path)?;
        if g.len() != n {
            return Err(GmmSegError::shape(
                path.display().to_string(),
                format!(
                    "{} image ids but {} has {n} labels; give one id per label",
                    g.len(),
                    labels_path.display()
                ),
            ));
        }
        if let Some((i, v)) = g.iter().enumerate().find(|(_, v)| **v < 0) {
            return Err(GmmSegError::input(
                path.display().to_string(),
                format!("image id {v} at position {i} is negative; ids must be ≥ 0"),
            ));
        }
        Ok(Some(g.into_iter().collect()))
    }
}

/// Arguments of `gmmseg metrics anomaly`.
#[derive(Debug, Args)]
pub struct AnomalyArgs {
    /// Anomaly scores (higher = more anomalous), float32/64, any shape; (N, H, W) adds the
    /// component-level metrics.
    #[arg(long)]
    pub scores: PathBuf,
    /// Labels of the same shape: 1 = anomaly, 0 = in-distribution, 255 = ignore.
    #[arg(long)]
    pub labels: PathBuf,
    /// Component metrics: predicted components smaller than this are dropped (default:
    /// SegmentMeIfYouCan's 500 pixels at 2048×1024, scaled to the image area).
    #[arg(long)]
    pub min_segment_size: Option<usize>,
    /// Component metrics: ground-truth components smaller than this are ignored (default:
    /// SegmentMeIfYouCan's 100 pixels at 2048×1024, scaled to the image area).
    #[arg(long)]
    pub min_instance_size: Option<usize>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub boot: BootstrapArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `gmmseg metrics calibration`.
#[derive(Debug, Args)]
pub struct CalibrationArgs {
    /// Class probabilities, float32/64, shape (N, C), rows summing to 1.
    #[arg(long)]
    pub probs: PathBuf,
    /// Labels, any integer dtype, N of them; 255 = ignore.
    #[arg(long)]
    pub labels: PathBuf,
    /// Number of equal-width confidence bins.
    #[arg(long, default_value_t = 15)]
    pub bins: usize,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub boot: BootstrapArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs one `metrics` subcommand and prints its result.
pub fn run(cmd: MetricsCommand) -> Result<()> {
    let (value, text, order): (_, _, &[&str]) = match cmd {
        MetricsCommand::Seg(a) => (seg(&a)?, !a.json, &["miou", "acc", "macc"]),
        MetricsCommand::Anomaly(a) => (
            anomaly(&a)?,
            !a.json,
            &["auroc", "ap", "fpr95", "siou", "ppv", "mean_f1"],
        ),
        MetricsCommand::Calibration(a) => (
            calibration(&a)?,
            !a.json,
            &[
                "ece",
                "mce",
                "rmsce",
                "adaptive_ece",
                "classwise_ece",
                "smooth_ece",
                "nll",
                "brier",
                "brier_reliability",
                "brier_resolution",
                "brier_uncertainty",
                "accuracy",
            ],
        ),
    };
    if text {
        println!("{}", to_text(&value, order));
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(&value)
                .map_err(|e| GmmSegError::input("json", e.to_string()))?
        );
    }
    Ok(())
}

/// Two inputs that pair element by element must have the same shape — not merely the same
/// number of elements ((2, 25, 10) against (2, 10, 25) pairs the wrong pixels).
fn same_shape(a: &std::path::Path, sa: &[usize], b: &std::path::Path, sb: &[usize]) -> Result<()> {
    if sa != sb {
        return Err(GmmSegError::shape(
            b.display().to_string(),
            format!(
                "shape {sb:?} differs from {}'s {sa:?}; they must be equal",
                a.display()
            ),
        ));
    }
    Ok(())
}

/// An array of any shape as a flat, contiguous 1-D array.
fn flat<T: Clone>(a: ndarray::ArrayD<T>) -> ndarray::Array1<T> {
    let n = a.len();
    ndarray::Array1::from_shape_vec(n, a.into_iter().collect()).expect("length matches")
}

/// `gmmseg metrics seg` as a JSON value (the library call behind the command).
pub fn seg(a: &SegArgs) -> Result<serde_json::Value> {
    let pred = read_int_array(&a.pred)?;
    let gt = read_int_array(&a.gt)?;
    same_shape(&a.pred, pred.shape(), &a.gt, gt.shape())?;
    let (pred, gt) = (flat(pred), flat(gt));
    let mut cm = ConfusionMatrix::new(a.classes)?;
    let pred = pred.as_slice().expect("flat array is contiguous");
    let gt = gt.as_slice().expect("flat array is contiguous");
    cm.update(pred, gt)?;
    let m = cm.finish()?;
    Ok(json!({
        "miou": m.miou,
        "per_class_iou": m.per_class_iou,
        "acc": m.acc,
        "macc": m.macc,
        "per_class_acc": m.per_class_acc,
        "pixels": m.pixels,
    }))
}

/// `gmmseg metrics anomaly` as a JSON value.
pub fn anomaly(a: &AnomalyArgs) -> Result<serde_json::Value> {
    let scores = read_float_array(&a.scores)?;
    let labels = read_int_array(&a.labels)?;
    same_shape(&a.scores, scores.shape(), &a.labels, labels.shape())?;
    let images = (scores.ndim() == 3).then(|| {
        let s = scores.shape();
        (s[0], s[1], s[2])
    });
    if images.is_none() && (a.min_segment_size.is_some() || a.min_instance_size.is_some()) {
        return Err(GmmSegError::config(
            "--min-segment-size",
            "component metrics need image-shaped (N, H, W) scores and labels",
        ));
    }
    let boot = a.boot.config(images.is_some())?;
    let groups = match a.boot.read(labels.len(), &a.labels)? {
        Some(g) => Some(g),
        None if boot.is_some() => images.map(|(n, h, w)| {
            (0..n as i64)
                .flat_map(|i| std::iter::repeat_n(i, h * w))
                .collect()
        }),
        None => None,
    };
    let (scores3, labels3) = (scores.clone(), labels.clone());
    let (scores, labels) = (flat(scores), flat(labels));
    let (s, l) = (
        scores.as_slice().expect("contiguous"),
        labels.as_slice().expect("contiguous"),
    );
    let mut acc = AnomalyAccumulator::new();
    let (m, mut ci) = match (&groups, &boot) {
        (Some(g), Some(cfg)) => {
            acc.update_grouped(s, l, g)?;
            acc.finish_with_bootstrap(cfg)?
        }
        _ => {
            acc.update(s, l)?;
            (acc.finish()?, Default::default())
        }
    };
    let mut out = json!({
        "auroc": m.auroc,
        "ap": m.ap,
        "fpr95": m.fpr95,
        "best_f1": m.best_f1,
        "best_f1_threshold": m.best_f1_threshold,
        "positives": m.positives,
        "negatives": m.negatives,
    });
    if let Some((_, h, w)) = images {
        let d = ComponentConfig::for_image(h, w);
        let cfg = ComponentConfig {
            min_segment_size: a.min_segment_size.unwrap_or(d.min_segment_size),
            min_instance_size: a.min_instance_size.unwrap_or(d.min_instance_size),
        }
        .check()?;
        let mut comp = ComponentAccumulator::new(m.best_f1_threshold)?;
        let s3 = scores3
            .into_dimensionality::<ndarray::Ix3>()
            .expect("three axes");
        let l3 = labels3
            .into_dimensionality::<ndarray::Ix3>()
            .expect("three axes");
        for (si, li) in s3.outer_iter().zip(l3.outer_iter()) {
            comp.update_image(si, li, &cfg)?;
        }
        let c = match &boot {
            // components are per image: the bootstrap resamples images whatever --groups says
            Some(b) => comp.finish_with_bootstrap(b)?,
            None => comp.finish()?,
        };
        ci.extend(c.ci95.clone());
        let o = out.as_object_mut().expect("an object");
        o.insert("siou".into(), json!(c.siou));
        o.insert("ppv".into(), json!(c.ppv));
        o.insert("mean_f1".into(), json!(c.mean_f1));
        o.insert("component_threshold".into(), json!(c.threshold));
        o.insert("f1_by_siou_threshold".into(), json!(c.f1));
        o.insert("gt_components".into(), json!(c.gt_components));
        o.insert("predicted_components".into(), json!(c.predicted_components));
        o.insert("min_segment_size".into(), json!(cfg.get().min_segment_size));
        o.insert(
            "min_instance_size".into(),
            json!(cfg.get().min_instance_size),
        );
    }
    if boot.is_some() {
        out.as_object_mut()
            .expect("an object")
            .insert("ci95".into(), json!(ci));
    }
    Ok(out)
}

/// `gmmseg metrics calibration` as a JSON value.
pub fn calibration(a: &CalibrationArgs) -> Result<serde_json::Value> {
    let probs = read_matrix(&a.probs)?;
    let labels = read_labels_flat(&a.labels)?;
    let boot = a.boot.config(false)?;
    let groups = a.boot.read(labels.len(), &a.labels)?;
    let mut acc = CalibrationAccumulator::new(CalibrationConfig::with_bins(a.bins).check()?);
    let labels = labels.as_slice().expect("contiguous");
    let m = match (&groups, &boot) {
        (Some(g), Some(cfg)) => {
            acc.update_grouped(probs.view(), labels, g)?;
            acc.finish_with_bootstrap(cfg)?
        }
        _ => {
            acc.update(probs.view(), labels)?;
            acc.finish()?
        }
    };
    let mut out = json!({
        "ece": m.ece,
        "mce": m.mce,
        "adaptive_ece": m.adaptive_ece,
        "nll": m.nll,
        "brier": m.brier,
        "bins": m.bins,
        "accuracy": m.accuracy,
        "pixels": m.pixels,
        "classwise_ece": m.classwise_ece,
        "rmsce": m.rmsce,
        "smooth_ece": m.smooth_ece,
        "smooth_ece_bandwidth": m.smooth_ece_bandwidth,
        "brier_reliability": m.brier_reliability,
        "brier_resolution": m.brier_resolution,
        "brier_uncertainty": m.brier_uncertainty,
        "classwise_bins": m.classwise_bins,
    });
    if boot.is_some() {
        out.as_object_mut()
            .expect("an object")
            .insert("ci95".into(), json!(m.ci95));
    }
    Ok(out)
}

/// A compact `key value` rendering for the terminal: the headline keys in `first` order,
/// then the rest alphabetically; the bins as a small table.
fn to_text(v: &serde_json::Value, first: &[&str]) -> String {
    let mut out = String::new();
    let Some(obj) = v.as_object() else {
        return v.to_string();
    };
    let rest = obj.keys().filter(|k| !first.contains(&k.as_str()));
    let keys: Vec<&str> = first
        .iter()
        .copied()
        .filter(|k| obj.contains_key(*k))
        .chain(rest.map(|k| k.as_str()))
        .collect();
    for k in keys {
        let val = &obj[k];
        match val {
            serde_json::Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() => out.push_str(&format!("{k:<14} {f:.6}\n")),
                _ => out.push_str(&format!("{k:<14} {n}\n")),
            },
            serde_json::Value::Array(items) if k == "bins" => {
                out.push_str("bins           range           count  confidence  accuracy\n");
                for b in items {
                    let f = |key: &str| {
                        b[key]
                            .as_f64()
                            .map_or("-".to_string(), |x| format!("{x:.4}"))
                    };
                    let range = format!("[{}, {})", f("lower"), f("upper"));
                    out.push_str(&format!(
                        "               {range:<14} {:>6}  {:>10}  {:>8}\n",
                        b["count"].as_u64().unwrap_or(0),
                        f("confidence"),
                        f("accuracy")
                    ));
                }
            }
            serde_json::Value::Array(items) if k == "classwise_bins" => {
                out.push_str(&format!(
                    "{k:<14} {} classes × {} bins (see --json)\n",
                    items.len(),
                    items
                        .first()
                        .and_then(|b| b.as_array())
                        .map_or(0, |b| b.len())
                ));
            }
            serde_json::Value::Object(ci) if k == "ci95" => {
                out.push_str("ci95 (image bootstrap, 95%)\n");
                for (m, v) in ci {
                    let f = |i: usize| v[i].as_f64().map_or("-".into(), |x| format!("{x:.6}"));
                    out.push_str(&format!("  {m:<20} [{}, {}]\n", f(0), f(1)));
                }
            }
            serde_json::Value::Array(items) => {
                let s: Vec<String> = items
                    .iter()
                    .map(|x| x.as_f64().map_or("nan".into(), |f| format!("{f:.4}")))
                    .collect();
                out.push_str(&format!("{k:<14} [{}]\n", s.join(", ")));
            }
            serde_json::Value::Null => out.push_str(&format!("{k:<14} -\n")),
            other => out.push_str(&format!("{k:<14} {other}\n")),
        }
    }
    out.trim_end().to_string()
}
