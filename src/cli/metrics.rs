//! `gmmseg metrics {seg, anomaly, calibration}`: evaluate predictions saved as NumPy arrays.
//!
//! Every subcommand prints a short human-readable summary, or with `--json` one JSON object
//! whose keys are a fixed interface (scripts and notebooks parse them):
//! - `seg` → `miou`, `per_class_iou` (null for a class with an empty union), `acc`, `macc`;
//! - `anomaly` → `auroc`, `ap`, `fpr95`;
//! - `calibration` → `ece`, `mce`, `adaptive_ece`, `nll`, `brier`, `bins`.
//!
//! Extra keys (pixel counts, per-class accuracy) may follow; the listed ones never change.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::error::{GmmSegError, Result};
use crate::io::npy::{read_float_array, read_int_array, read_labels_flat, read_matrix};
use crate::metrics::{
    AnomalyAccumulator, CalibrationAccumulator, CalibrationConfig, ConfusionMatrix,
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

/// Arguments of `gmmseg metrics anomaly`.
#[derive(Debug, Args)]
pub struct AnomalyArgs {
    /// Anomaly scores (higher = more anomalous), float32/64, any shape.
    #[arg(long)]
    pub scores: PathBuf,
    /// Labels of the same size: 1 = anomaly, 0 = in-distribution, 255 = ignore.
    #[arg(long)]
    pub labels: PathBuf,
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
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Runs one `metrics` subcommand and prints its result.
pub fn run(cmd: MetricsCommand) -> Result<()> {
    let (value, text, order): (_, _, &[&str]) = match cmd {
        MetricsCommand::Seg(a) => (seg(&a)?, !a.json, &["miou", "acc", "macc"]),
        MetricsCommand::Anomaly(a) => (anomaly(&a)?, !a.json, &["auroc", "ap", "fpr95"]),
        MetricsCommand::Calibration(a) => (
            calibration(&a)?,
            !a.json,
            &["ece", "mce", "adaptive_ece", "nll", "brier", "accuracy"],
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
    let (scores, labels) = (flat(scores), flat(labels));
    let mut acc = AnomalyAccumulator::new();
    acc.update(
        scores.as_slice().expect("contiguous"),
        labels.as_slice().expect("contiguous"),
    )?;
    let m = acc.finish()?;
    Ok(json!({
        "auroc": m.auroc,
        "ap": m.ap,
        "fpr95": m.fpr95,
        "positives": m.positives,
        "negatives": m.negatives,
    }))
}

/// `gmmseg metrics calibration` as a JSON value.
pub fn calibration(a: &CalibrationArgs) -> Result<serde_json::Value> {
    let probs = read_matrix(&a.probs)?;
    let labels = read_labels_flat(&a.labels)?;
    let mut acc = CalibrationAccumulator::new(CalibrationConfig::with_bins(a.bins).check()?);
    acc.update(probs.view(), labels.as_slice().expect("contiguous"))?;
    let m = acc.finish()?;
    Ok(json!({
        "ece": m.ece,
        "mce": m.mce,
        "adaptive_ece": m.adaptive_ece,
        "nll": m.nll,
        "brier": m.brier,
        "bins": m.bins,
        "accuracy": m.accuracy,
        "pixels": m.pixels,
    }))
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
