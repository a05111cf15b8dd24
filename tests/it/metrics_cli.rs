//! The `gmmseg metrics` command line: fixed flags and JSON keys, run on NumPy files.

use super::cli::{gmmseg, p};
use gmmseg::io::npy::write_npy;
use ndarray::{array, Array1};

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

/// Random calibration inputs: (probs (N, C), labels, image ids) for `images` images.
fn calibration_inputs(
    images: usize,
    px: usize,
    c: usize,
) -> (ndarray::Array2<f32>, Vec<u8>, Vec<i32>) {
    let n = images * px;
    let mut probs = ndarray::Array2::<f32>::zeros((n, c));
    let mut labels = vec![0u8; n];
    let mut groups = vec![0i32; n];
    for i in 0..n {
        let y = (i * 7 + i / 13) % c;
        let sharp = 1.0 + ((i / px) as f32) * 0.5;
        let mut s = 0.0;
        for k in 0..c {
            let v = if k == (i * 3) % c {
                sharp
            } else {
                0.3 + (k as f32) * 0.1
            };
            probs[[i, k]] = v;
            s += v;
        }
        for k in 0..c {
            probs[[i, k]] /= s;
        }
        labels[i] = y as u8;
        groups[i] = (i / px) as i32 * 10;
    }
    (probs, labels, groups)
}

#[test]
fn calibration_new_keys_and_image_bootstrap() {
    let dir = tempfile::tempdir().unwrap();
    let (probs, labels, groups) = calibration_inputs(8, 200, 4);
    write_npy(&dir.path().join("probs.npy"), &probs).unwrap();
    write_npy(&dir.path().join("labels.npy"), &Array1::from(labels)).unwrap();
    write_npy(
        &dir.path().join("groups.npy"),
        &Array1::from(groups.clone()),
    )
    .unwrap();
    let base = [
        "metrics",
        "calibration",
        "--probs",
        &p(dir.path(), "probs.npy"),
        "--labels",
        &p(dir.path(), "labels.npy"),
    ];
    let run = |extra: &[&str]| {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        gmmseg(&args)
    };
    let (ok, out, err) = run(&["--json"]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in [
        "ece",
        "mce",
        "adaptive_ece",
        "nll",
        "brier",
        "bins",
        "classwise_ece",
        "rmsce",
        "smooth_ece",
        "brier_reliability",
        "brier_resolution",
        "brier_uncertainty",
    ] {
        assert!(!v[k].is_null(), "key {k} missing: {out}");
    }
    assert!(v.get("ci95").is_none(), "no interval without image ids");
    // with image ids: ci95 for every metric, seeded (the same twice), default B = 1000
    let g = p(dir.path(), "groups.npy");
    let (ok, out, err) = run(&["--json", "--groups", &g]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ci = v["ci95"].as_object().unwrap();
    for k in [
        "ece",
        "classwise_ece",
        "smooth_ece",
        "nll",
        "brier_reliability",
    ] {
        let lo = ci[k][0].as_f64().unwrap();
        let hi = ci[k][1].as_f64().unwrap();
        assert!(lo <= hi, "{k}: [{lo}, {hi}]");
    }
    let point = v["ece"].as_f64().unwrap();
    assert!(ci["ece"][0].as_f64().unwrap() <= point + 1e-9);
    let (_, again, _) = run(&["--json", "--groups", &g]);
    assert_eq!(out, again, "seeded bootstrap is deterministic");
    let (_, other, _) = run(&[
        "--json",
        "--groups",
        &g,
        "--seed",
        "5",
        "--bootstrap",
        "200",
    ]);
    assert_ne!(out, other);
    // text output shows the intervals
    let (ok, text, _) = run(&["--groups", &g, "--bootstrap", "50"]);
    assert!(
        ok && text.contains("ci95") && text.contains("classwise_ece"),
        "{text}"
    );
}

#[test]
fn bootstrap_bad_input_is_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let (probs, labels, groups) = calibration_inputs(3, 50, 3);
    write_npy(&dir.path().join("probs.npy"), &probs).unwrap();
    write_npy(
        &dir.path().join("labels.npy"),
        &Array1::from(labels.clone()),
    )
    .unwrap();
    let short: Vec<i32> = groups[..10].to_vec();
    write_npy(&dir.path().join("short.npy"), &Array1::from(short)).unwrap();
    let mut neg = groups.clone();
    neg[7] = -2;
    write_npy(&dir.path().join("neg.npy"), &Array1::from(neg)).unwrap();
    write_npy(
        &dir.path().join("one.npy"),
        &Array1::from(vec![4i32; groups.len()]),
    )
    .unwrap();
    write_npy(&dir.path().join("groups.npy"), &Array1::from(groups)).unwrap();
    let run = |extra: &[&str]| {
        let probs = p(dir.path(), "probs.npy");
        let labels = p(dir.path(), "labels.npy");
        let mut args = vec![
            "metrics",
            "calibration",
            "--probs",
            &probs,
            "--labels",
            &labels,
        ];
        args.extend_from_slice(extra);
        let (ok, out, err) = gmmseg(&args);
        assert!(!ok, "{extra:?} should fail: {out}");
        assert!(!err.contains("panicked"), "{err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        err
    };
    let e = run(&["--groups", &p(dir.path(), "short.npy")]);
    assert!(e.contains("short.npy") && e.contains("10 image ids"), "{e}");
    let e = run(&["--groups", &p(dir.path(), "neg.npy")]);
    assert!(e.contains("negative"), "{e}");
    let e = run(&["--groups", &p(dir.path(), "groups.npy"), "--bootstrap", "0"]);
    assert!(e.contains("--bootstrap") && e.contains("got 0"), "{e}");
    let e = run(&["--bootstrap", "100"]);
    assert!(e.contains("--groups"), "{e}");
    let e = run(&["--groups", &p(dir.path(), "one.npy")]);
    assert!(e.contains("at least 2"), "{e}");
}

#[test]
fn anomaly_images_get_component_metrics_and_intervals() {
    let dir = tempfile::tempdir().unwrap();
    // 4 images 16×16, one anomalous square each, scores high on (most of) it
    let mut scores = ndarray::Array3::<f32>::zeros((4, 16, 16));
    let mut labels = ndarray::Array3::<u8>::zeros((4, 16, 16));
    for i in 0..4 {
        for y in 4..9 {
            for x in (2 + i)..(7 + i) {
                labels[[i, y, x]] = 1;
                scores[[i, y, x + usize::from(i == 3)]] = 0.9;
            }
        }
        labels[[i, 0, 0]] = 255;
        scores[[i, 15, 15]] = 0.5 + 0.1 * i as f32;
    }
    write_npy(&dir.path().join("s.npy"), &scores).unwrap();
    write_npy(&dir.path().join("l.npy"), &labels).unwrap();
    let s = p(dir.path(), "s.npy");
    let l = p(dir.path(), "l.npy");
    let (ok, out, err) = gmmseg(&[
        "metrics", "anomaly", "--scores", &s, "--labels", &l, "--json",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in ["auroc", "ap", "fpr95", "siou", "ppv", "mean_f1"] {
        assert!(v[k].is_number(), "{k}: {out}");
    }
    assert_eq!(v["gt_components"], 4);
    assert!(v["siou"].as_f64().unwrap() > 0.6);
    // the image index is the default image id for the bootstrap
    let (ok, out, err) = gmmseg(&[
        "metrics",
        "anomaly",
        "--scores",
        &s,
        "--labels",
        &l,
        "--json",
        "--bootstrap",
        "100",
    ]);
    assert!(ok, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for k in ["auroc", "ap", "fpr95", "siou", "ppv", "mean_f1"] {
        assert!(v["ci95"][k].is_array(), "{k}: {out}");
    }
    // flat inputs: no component metrics, and their flags are refused
    let flat_s: Array1<f32> = scores.iter().copied().collect();
    let flat_l: Array1<u8> = labels.iter().copied().collect();
    write_npy(&dir.path().join("fs.npy"), &flat_s).unwrap();
    write_npy(&dir.path().join("fl.npy"), &flat_l).unwrap();
    let (fs, fl) = (p(dir.path(), "fs.npy"), p(dir.path(), "fl.npy"));
    let (ok, out, _) = gmmseg(&[
        "metrics", "anomaly", "--scores", &fs, "--labels", &fl, "--json",
    ]);
    assert!(ok);
    assert!(!out.contains("siou"));
    let (ok, _, err) = gmmseg(&[
        "metrics",
        "anomaly",
        "--scores",
        &fs,
        "--labels",
        &fl,
        "--min-segment-size",
        "3",
    ]);
    assert!(!ok && err.contains("(N, H, W)"), "{err}");
}
