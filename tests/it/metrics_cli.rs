//! The `gmmseg metrics` command line: fixed flags and JSON keys, run on NumPy files.

use std::path::Path;
use std::process::Command;

use gmmseg::io::npy::write_npy;
use ndarray::{array, Array1};

fn gmmseg(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gmmseg"))
        .args(args)
        .output()
        .expect("runs the binary");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn p(dir: &Path, name: &str) -> String {
    dir.join(name).to_string_lossy().into_owned()
}

#[test]
fn seg_json_keys_and_values() {
    let dir = tempfile::tempdir().unwrap();
    // (2, 5) label maps, int64 predictions and uint8 ground truth: dtypes need not match.
    let pred = array![[0i64, 0, 1, 1, 2], [2, 2, 0, 3, 0]];
    let gt = array![[0u8, 0, 0, 1, 1], [2, 2, 2, 255, 255]];
    write_npy(&dir.path().join("pred.npy"), &pred).unwrap();
    write_npy(&dir.path().join("gt.npy"), &gt).unwrap();
    let (ok, out, err) = gmmseg(&[
        "metrics",
        "seg",
        "--pred",
        &p(dir.path(), "pred.npy"),
        "--gt",
        &p(dir.path(), "gt.npy"),
        "--classes",
        "4",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((v["miou"].as_f64().unwrap() - 4.0 / 9.0).abs() < 1e-12);
    assert!((v["acc"].as_f64().unwrap() - 5.0 / 8.0).abs() < 1e-12);
    assert!((v["macc"].as_f64().unwrap() - 11.0 / 18.0).abs() < 1e-12);
    let iou = v["per_class_iou"].as_array().unwrap();
    assert_eq!(iou.len(), 4);
    assert!(iou[3].is_null(), "empty union is null (NaN): {iou:?}");

    // Text output mentions mIoU.
    let (ok, out, _) = gmmseg(&[
        "metrics",
        "seg",
        "--pred",
        &p(dir.path(), "pred.npy"),
        "--gt",
        &p(dir.path(), "gt.npy"),
        "--classes",
        "4",
    ]);
    assert!(ok && out.contains("miou"), "{out}");

    // Too few classes → a one-line error naming the label, non-zero exit.
    let (ok, _, err) = gmmseg(&[
        "metrics",
        "seg",
        "--pred",
        &p(dir.path(), "pred.npy"),
        "--gt",
        &p(dir.path(), "gt.npy"),
        "--classes",
        "2",
    ]);
    assert!(!ok);
    assert!(
        err.starts_with("error:") && err.contains("label 2"),
        "{err}"
    );
}

#[test]
fn anomaly_json_keys_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let s = array![0.9f64, 0.8, 0.8, 0.7, 0.5, 0.5, 0.3, 0.1];
    let l: Array1<i32> = array![1, 1, 0, 0, 1, 0, 0, 255];
    write_npy(&dir.path().join("s.npy"), &s).unwrap();
    write_npy(&dir.path().join("l.npy"), &l).unwrap();
    let (ok, out, err) = gmmseg(&[
        "metrics",
        "anomaly",
        "--scores",
        &p(dir.path(), "s.npy"),
        "--labels",
        &p(dir.path(), "l.npy"),
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((v["auroc"].as_f64().unwrap() - 0.75).abs() < 1e-12);
    assert!((v["ap"].as_f64().unwrap() - 13.0 / 18.0).abs() < 1e-12);
    assert!((v["fpr95"].as_f64().unwrap() - 0.75).abs() < 1e-12);

    // One class only → undefined; length mismatch → shape error; missing file → io error.
    let one = array![0u8, 0, 0, 0, 0, 0, 0, 0];
    write_npy(&dir.path().join("one.npy"), &one).unwrap();
    let (ok, _, err) = gmmseg(&[
        "metrics",
        "anomaly",
        "--scores",
        &p(dir.path(), "s.npy"),
        "--labels",
        &p(dir.path(), "one.npy"),
    ]);
    assert!(!ok && err.contains("undefined"), "{err}");
    let short = array![0u8, 1];
    write_npy(&dir.path().join("short.npy"), &short).unwrap();
    let (ok, _, err) = gmmseg(&[
        "metrics",
        "anomaly",
        "--scores",
        &p(dir.path(), "s.npy"),
        "--labels",
        &p(dir.path(), "short.npy"),
    ]);
    assert!(!ok && err.contains("shape"), "{err}");
    let (ok, _, err) = gmmseg(&[
        "metrics",
        "anomaly",
        "--scores",
        &p(dir.path(), "missing.npy"),
        "--labels",
        &p(dir.path(), "l.npy"),
    ]);
    assert!(!ok && err.contains("missing.npy"), "{err}");
}

#[test]
fn calibration_json_keys_and_bad_probabilities() {
    let dir = tempfile::tempdir().unwrap();
    let probs = array![
        [0.7f32, 0.2, 0.1],
        [0.5, 0.3, 0.2],
        [0.1, 0.1, 0.8],
        [0.3, 0.4, 0.3],
        [0.2, 0.5, 0.3],
        [1.0, 0.0, 0.0],
        [0.05, 0.9, 0.05]
    ];
    let labels = array![0i64, 1, 2, 255, 1, 0, 2];
    write_npy(&dir.path().join("p.npy"), &probs).unwrap();
    write_npy(&dir.path().join("y.npy"), &labels).unwrap();
    let (ok, out, err) = gmmseg(&[
        "metrics",
        "calibration",
        "--probs",
        &p(dir.path(), "p.npy"),
        "--labels",
        &p(dir.path(), "y.npy"),
        "--bins",
        "5",
        "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for key in ["ece", "mce", "adaptive_ece", "nll", "brier"] {
        assert!(v[key].as_f64().is_some(), "missing {key}: {out}");
    }
    assert!((v["ece"].as_f64().unwrap() - (0.05 + 0.5 * (0.9 - 2.0 / 3.0))).abs() < 1e-6);
    let bins = v["bins"].as_array().unwrap();
    assert_eq!(bins.len(), 5);
    assert_eq!(bins[4]["count"], 3);
    assert!(bins[0]["accuracy"].is_null());

    // Text mode prints the bins table.
    let (ok, out, _) = gmmseg(&[
        "metrics",
        "calibration",
        "--probs",
        &p(dir.path(), "p.npy"),
        "--labels",
        &p(dir.path(), "y.npy"),
    ]);
    assert!(ok && out.contains("ece") && out.contains("count"), "{out}");

    // Logits instead of probabilities → a clear error.
    let logits = array![[2.0f32, -1.0, 0.5]];
    write_npy(&dir.path().join("logits.npy"), &logits).unwrap();
    let y1 = array![0u8];
    write_npy(&dir.path().join("y1.npy"), &y1).unwrap();
    let (ok, _, err) = gmmseg(&[
        "metrics",
        "calibration",
        "--probs",
        &p(dir.path(), "logits.npy"),
        "--labels",
        &p(dir.path(), "y1.npy"),
    ]);
    assert!(!ok && err.contains("outside [0, 1]"), "{err}");
    let (ok, _, err) = gmmseg(&[
        "metrics",
        "calibration",
        "--probs",
        &p(dir.path(), "p.npy"),
        "--labels",
        &p(dir.path(), "y.npy"),
        "--bins",
        "0",
    ]);
    assert!(!ok && err.contains("bins"), "{err}");
}
