//! The calibration, temperature and component metrics of issue 20 against their reference
//! implementations — relplot's smooth ECE, netcal's classwise ECE, NumPy's Brier
//! decomposition (torchmetrics-checked ECE / RMSCE), scipy's minimiser for the temperature,
//! and the SegmentMeIfYouCan definition on scipy's connected components — on random and
//! adversarial inputs (ties, one class, all correct, confidences at bin edges). The golden
//! values come from `scripts/golden/make_calibration_golden.py` (committed with its output,
//! `tests/golden/calibration.json`); Python is not needed to run these tests.

use gmmseg::metrics::components::{ComponentAccumulator, ComponentConfig};
use gmmseg::metrics::temperature::fit_temperature;
use gmmseg::metrics::{AnomalyAccumulator, CalibrationAccumulator, CalibrationConfig};
use ndarray::{Array2, Array3, Axis};
use serde_json::Value;

const TOL: f64 = 1e-6;

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/calibration.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("golden file")).expect("json")
}

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn i64s(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

fn close(name: &str, case: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOL,
        "{case}: {name} = {got}, reference {want} (|diff| {:.3e})",
        (got - want).abs()
    );
}

#[test]
fn calibration_metrics_match_relplot_netcal_and_numpy() {
    let g = golden();
    let cases = g["calibration"].as_array().unwrap();
    assert!(cases.len() >= 8);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let c = case["classes"].as_u64().unwrap() as usize;
        let probs = f32s(&case["probs"]);
        let labels = i64s(&case["labels"]);
        let probs = Array2::from_shape_vec((labels.len(), c), probs).unwrap();
        let cfg = CalibrationConfig::with_bins(case["bins"].as_u64().unwrap() as usize);
        let mut acc = CalibrationAccumulator::new(cfg.check().unwrap());
        acc.update(probs.view(), &labels).unwrap();
        let m = acc.finish().unwrap();
        let e = &case["expected"];
        let want = |k: &str| e[k].as_f64().unwrap();
        close("ece", name, m.ece, want("ece"));
        close("rmsce", name, m.rmsce, want("rmsce"));
        close(
            "classwise_ece",
            name,
            m.classwise_ece,
            want("classwise_ece"),
        );
        close(
            "smooth_ece",
            name,
            m.smooth_ece.unwrap(),
            want("smooth_ece"),
        );
        close(
            "smooth_ece_bandwidth",
            name,
            m.smooth_ece_bandwidth.unwrap(),
            want("smooth_ece_bandwidth"),
        );
        close("brier", name, m.brier, want("brier"));
        close("nll", name, m.nll, want("nll"));
        close("accuracy", name, m.accuracy, want("accuracy"));
        for k in ["brier_reliability", "brier_resolution", "brier_uncertainty"] {
            let got = match k {
                "brier_reliability" => m.brier_reliability,
                "brier_resolution" => m.brier_resolution,
                _ => m.brier_uncertainty,
            };
            close(k, name, got, want(k));
        }
    }
}

#[test]
fn temperature_matches_scipy() {
    let g = golden();
    for case in g["temperature"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let c = case["classes"].as_u64().unwrap() as usize;
        let labels = i64s(&case["labels"]);
        let logits = Array2::from_shape_vec((labels.len(), c), f32s(&case["logits"])).unwrap();
        let t = fit_temperature(logits.view(), &labels).unwrap();
        close("t", name, t.t, case["t"].as_f64().unwrap());
        close(
            "nll_after",
            name,
            t.nll_after,
            case["nll_after"].as_f64().unwrap(),
        );
        close(
            "nll_before",
            name,
            t.nll_before,
            case["nll_before"].as_f64().unwrap(),
        );
    }
}

#[test]
fn component_metrics_match_the_segment_me_if_you_can_definition() {
    let g = golden();
    for case in g["components"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let shape = i64s(&case["shape"]);
        let (n, h, w) = (shape[0] as usize, shape[1] as usize, shape[2] as usize);
        let scores = Array3::from_shape_vec((n, h, w), f32s(&case["scores"])).unwrap();
        let labels = Array3::from_shape_vec((n, h, w), i64s(&case["labels"])).unwrap();
        let e = &case["expected"];
        // the threshold: best pixel F1 over the pooled images
        let mut pixels = AnomalyAccumulator::new();
        pixels
            .update(scores.as_slice().unwrap(), labels.as_slice().unwrap())
            .unwrap();
        let px = pixels.finish().unwrap();
        close(
            "threshold",
            name,
            px.best_f1_threshold as f64,
            e["threshold"].as_f64().unwrap(),
        );
        close("best_f1", name, px.best_f1, e["best_f1"].as_f64().unwrap());
        let cfg = ComponentConfig {
            min_segment_size: case["min_segment_size"].as_u64().unwrap() as usize,
            min_instance_size: case["min_instance_size"].as_u64().unwrap() as usize,
        }
        .check()
        .unwrap();
        let mut acc = ComponentAccumulator::new(px.best_f1_threshold).unwrap();
        for (s, l) in scores.axis_iter(Axis(0)).zip(labels.axis_iter(Axis(0))) {
            acc.update_image(s, l, &cfg).unwrap();
        }
        let m = acc.finish().unwrap();
        close("siou", name, m.siou, e["siou"].as_f64().unwrap());
        close("ppv", name, m.ppv, e["ppv"].as_f64().unwrap());
        close("mean_f1", name, m.mean_f1, e["mean_f1"].as_f64().unwrap());
        assert_eq!(
            m.gt_components,
            e["gt_components"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            m.predicted_components,
            e["predicted_components"].as_u64().unwrap(),
            "{name}"
        );
    }
}
