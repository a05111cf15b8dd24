//! Golden values for the metrics: small cases computed by hand, and larger deterministic
//! cases whose expected numbers come from scikit-learn / NumPy (the snippet that produced
//! them is quoted above each test; Python is not needed to run these tests).

use approx::assert_abs_diff_eq;
use gmmseg::metrics::anomaly::anomaly_metrics;
use gmmseg::metrics::calibration::calibration_metrics;
use gmmseg::metrics::segmentation::segmentation_metrics;
use gmmseg::metrics::{
    summarize, AnomalyAccumulator, CalibrationAccumulator, CalibrationConfig, ConfusionMatrix,
};
use gmmseg::GmmSegError;
use ndarray::{array, Array2};

const TOL: f64 = 1e-9;

// ---------------------------------------------------------------- segmentation

#[test]
fn segmentation_hand_computed() {
    // Confusion over 8 valid pixels (two ignored; the prediction 3 at an ignored pixel does
    // not count). IoU: c0 2/4, c1 1/3, c2 2/4, c3 empty union → NaN (None).
    let gt: [u8; 10] = [0, 0, 0, 1, 1, 2, 2, 2, 255, 255];
    let pred: [u8; 10] = [0, 0, 1, 1, 2, 2, 2, 0, 3, 0];
    let m = segmentation_metrics(&pred, &gt, 4).unwrap();
    assert_eq!(
        m.per_class_iou,
        vec![Some(0.5), Some(1.0 / 3.0), Some(0.5), None]
    );
    assert_abs_diff_eq!(m.miou, 4.0 / 9.0, epsilon = TOL);
    assert_abs_diff_eq!(m.acc, 5.0 / 8.0, epsilon = TOL);
    assert_abs_diff_eq!(m.macc, 11.0 / 18.0, epsilon = TOL);
    assert_eq!(m.pixels, 8);
}

/// ```python
/// n, C = 2000, 6
/// i = np.arange(n)
/// gt = (i * 7 + i // 13) % 7
/// gt = np.where(gt == 6, 255, gt)
/// gt = np.where(gt == 5, 4, gt)       # class 5 absent from gt
/// pred = np.where((i * 11) % 5 == 0, (i * 3) % 5, gt)
/// pred = np.where(gt == 255, (i % 6), pred)
/// m = gt != 255
/// hist = np.bincount(C * gt[m] + pred[m], minlength=C*C).reshape(C, C)
/// inter = np.diag(hist); union = hist.sum(0) + hist.sum(1) - inter
/// iou = inter / union; acc = inter / hist.sum(1)   # MMSeg: NaN stays NaN
/// np.nanmean(iou), inter.sum() / hist.sum(), np.nanmean(acc)
/// ```
#[test]
fn segmentation_matches_mmseg_reference() {
    let n = 2000i64;
    let mut gt = Vec::new();
    let mut pred = Vec::new();
    for i in 0..n {
        let mut g = (i * 7 + i / 13) % 7;
        if g == 6 {
            g = 255;
        }
        if g == 5 {
            g = 4;
        }
        let mut p = if (i * 11) % 5 == 0 { (i * 3) % 5 } else { g };
        if g == 255 {
            p = i % 6;
        }
        gt.push(g);
        pred.push(p);
    }
    // Stream in uneven chunks: same result as one shot.
    let mut cm = ConfusionMatrix::new(6).unwrap();
    for (p, g) in pred.chunks(333).zip(gt.chunks(333)) {
        cm.update(p, g).unwrap();
    }
    let m = cm.finish().unwrap();
    let expected = [
        0.5,
        0.7972027972027972,
        0.8041958041958042,
        0.7972027972027972,
        0.8006993006993007,
    ];
    for (got, want) in m.per_class_iou.iter().zip(expected) {
        assert_abs_diff_eq!(got.unwrap(), want, epsilon = TOL);
    }
    assert_eq!(m.per_class_iou[5], None);
    assert_abs_diff_eq!(m.miou, 0.7398601398601399, epsilon = TOL);
    assert_abs_diff_eq!(m.acc, 0.8333333333333334, epsilon = TOL);
    assert_abs_diff_eq!(m.macc, 0.8398601398601399, epsilon = TOL);
}

#[test]
fn segmentation_bad_input_is_a_typed_error() {
    let mut cm = ConfusionMatrix::new(3).unwrap();
    assert!(matches!(
        cm.update(&[0u8, 1], &[0u8]),
        Err(GmmSegError::Shape { .. })
    ));
    match cm.update(&[0u8, 1, 2], &[0u8, 7, 1]) {
        Err(GmmSegError::LabelOutOfRange {
            label, index, what, ..
        }) => {
            assert_eq!((label, index, what.as_str()), (7, 1, "gt"))
        }
        other => panic!("expected LabelOutOfRange, got {other:?}"),
    }
    match cm.update(&[0i64, -1], &[0i64, 1]) {
        Err(GmmSegError::LabelOutOfRange { label, what, .. }) => {
            assert_eq!((label, what.as_str()), (-1, "pred"))
        }
        other => panic!("expected LabelOutOfRange, got {other:?}"),
    }
    // A failed update changed nothing, and nothing valid was seen yet.
    assert!(matches!(cm.finish(), Err(GmmSegError::Empty { .. })));
    cm.update(&[0u8, 1], &[255u8, 255]).unwrap();
    assert!(matches!(cm.finish(), Err(GmmSegError::Empty { .. })));
    assert!(matches!(
        ConfusionMatrix::new(0),
        Err(GmmSegError::InvalidConfig { .. })
    ));
    assert!(ConfusionMatrix::new(256).is_err());
}

// ---------------------------------------------------------------- anomaly

/// ```python
/// y = [1, 1, 0, 0, 1, 0, 0]; s = [0.9, 0.8, 0.8, 0.7, 0.5, 0.5, 0.3]
/// roc_auc_score(y, s)            # 0.75
/// average_precision_score(y, s)  # 0.7222222222222222 (= 13/18)
/// fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False); fpr[np.argmax(tpr >= 0.95)]  # 0.75
/// ```
#[test]
fn anomaly_hand_computed_with_ties() {
    let s = [0.9f32, 0.8, 0.8, 0.7, 0.5, 0.5, 0.3, 0.1];
    let y = [1u8, 1, 0, 0, 1, 0, 0, 255];
    let m = anomaly_metrics(&s, &y).unwrap();
    assert_abs_diff_eq!(m.auroc, 0.75, epsilon = TOL);
    assert_abs_diff_eq!(m.ap, 13.0 / 18.0, epsilon = TOL);
    assert_abs_diff_eq!(m.fpr95, 0.75, epsilon = TOL);
    assert_eq!((m.positives, m.negatives), (3, 4));
}

fn anomaly_case() -> (Vec<f32>, Vec<i64>) {
    let mut scores = Vec::new();
    let mut labels = Vec::new();
    for i in 0..1000i64 {
        let mut l = if (i * 31 + 7) % 11 < 3 { 1 } else { 0 };
        if (i * 13) % 17 == 0 {
            l = 255;
        }
        let base = (((i * 7919) % 101) as f64 / 100.0) as f32;
        scores.push(base + if l == 1 { 0.25f32 } else { 0.0 });
        labels.push(l);
    }
    (scores, labels)
}

/// ```python
/// n = 1000; i = np.arange(n)
/// scores = (((i * 7919) % 101) / 100.0).astype(np.float32)     # 101 distinct values: ties
/// lab = np.where((i * 31 + 7) % 11 < 3, 1, 0)
/// lab = np.where((i * 13) % 17 == 0, 255, lab)
/// scores = (scores + np.where(lab == 1, 0.25, 0.0).astype(np.float32)).astype(np.float32)
/// m = lab != 255; y, s = lab[m], scores[m].astype(np.float64)
/// fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
/// roc_auc_score(y, s), average_precision_score(y, s), fpr[np.argmax(tpr >= 0.95)]
/// # 0.7251750712202208 0.5800941970943122 0.6998535871156661  (P = 258, N = 683)
/// ```
#[test]
fn anomaly_matches_sklearn() {
    let (scores, labels) = anomaly_case();
    let mut acc = AnomalyAccumulator::new();
    for (s, l) in scores.chunks(97).zip(labels.chunks(97)) {
        acc.update(s, l).unwrap();
    }
    let m = acc.finish().unwrap();
    assert_eq!((m.positives, m.negatives), (258, 683));
    assert_abs_diff_eq!(m.auroc, 0.7251750712202208, epsilon = TOL);
    assert_abs_diff_eq!(m.ap, 0.5800941970943122, epsilon = TOL);
    assert_abs_diff_eq!(m.fpr95, 0.6998535871156661, epsilon = TOL);
}

#[test]
fn anomaly_curves_are_monotone_and_end_at_one() {
    let (scores, labels) = anomaly_case();
    let mut acc = AnomalyAccumulator::new();
    acc.update(&scores, &labels).unwrap();
    let (m, c) = acc.finish_with_curves(50).unwrap();
    assert_eq!((c.fpr[0], c.tpr[0]), (0.0, 0.0));
    assert_eq!((*c.fpr.last().unwrap(), *c.tpr.last().unwrap()), (1.0, 1.0));
    assert!(
        c.fpr.len() <= 2 * 50 + 2,
        "thinned to ~max_points: {}",
        c.fpr.len()
    );
    assert!(c.fpr.windows(2).all(|w| w[0] <= w[1]));
    assert!(c.tpr.windows(2).all(|w| w[0] <= w[1]));
    // The final precision is the positive rate.
    assert_abs_diff_eq!(
        *c.precision.last().unwrap(),
        m.positives as f64 / (m.positives + m.negatives) as f64,
        epsilon = TOL
    );
}

#[test]
fn anomaly_bad_input_is_a_typed_error() {
    let mut acc = AnomalyAccumulator::new();
    assert!(matches!(
        acc.update(&[0.1, 0.2], &[0u8]),
        Err(GmmSegError::Shape { .. })
    ));
    assert!(matches!(
        acc.update(&[0.1, f32::NAN], &[0u8, 1]),
        Err(GmmSegError::NonFinite { index: 1, .. })
    ));
    // NaN at an ignored pixel is fine.
    acc.update(&[0.1, f32::NAN], &[0u8, 255]).unwrap();
    assert!(matches!(
        acc.update(&[0.1, 0.2], &[1u8, 2]),
        Err(GmmSegError::LabelOutOfRange { label: 2, .. })
    ));
    // The failed updates left only the one valid negative pixel: one class → undefined.
    assert_eq!(acc.len(), 1);
    assert!(matches!(acc.finish(), Err(GmmSegError::Undefined { .. })));
    assert!(matches!(
        anomaly_metrics::<u8>(&[], &[]),
        Err(GmmSegError::Empty { .. })
    ));
    assert!(matches!(
        anomaly_metrics(&[0.3, 0.4], &[1u8, 1]),
        Err(GmmSegError::Undefined { .. })
    ));
}

#[test]
fn anomaly_perfect_and_constant_scores() {
    let m = anomaly_metrics(&[0.1, 0.2, 0.8, 0.9], &[0u8, 0, 1, 1]).unwrap();
    assert_eq!((m.auroc, m.ap, m.fpr95), (1.0, 1.0, 0.0));
    // All scores tied: one ROC point (1, 1): AUROC 0.5, AP = positive rate, FPR95 = 1.
    let m = anomaly_metrics(&[0.5; 4], &[0u8, 0, 0, 1]).unwrap();
    assert_eq!((m.auroc, m.ap, m.fpr95), (0.5, 0.25, 1.0));
    // Infinite scores are ordered, not rejected.
    let m = anomaly_metrics(&[f32::NEG_INFINITY, f32::INFINITY], &[0u8, 1]).unwrap();
    assert_eq!(m.auroc, 1.0);
}

// ---------------------------------------------------------------- calibration

#[test]
fn calibration_hand_computed() {
    let probs = array![
        [0.7f32, 0.2, 0.1],
        [0.5, 0.3, 0.2],
        [0.1, 0.1, 0.8],
        [0.3, 0.4, 0.3],
        [0.2, 0.5, 0.3],
        [1.0, 0.0, 0.0],
        [0.05, 0.9, 0.05]
    ];
    let labels = [0u8, 1, 2, 255, 1, 0, 2];
    let m = calibration_metrics(probs.view(), &labels, 5).unwrap();
    // Bins (B = 5): bin 2 {.5 ✗, .5 ✓} gap 0; bin 3 {.7 ✓} gap .3; bin 4 {.8 ✓, 1 ✓, .9 ✗}
    // gap |2/3 − .9|. ECE = 1/6·.3 + 3/6·(.9 − 2/3).
    let eps = 1e-6; // the inputs are f32
    assert_abs_diff_eq!(m.ece, 0.3 / 6.0 + 0.5 * (0.9 - 2.0 / 3.0), epsilon = eps);
    assert_abs_diff_eq!(m.mce, 0.3, epsilon = eps);
    let nll = -[0.7f64, 0.3, 0.8, 0.5, 1.0, 0.05]
        .iter()
        .map(|p| p.ln())
        .sum::<f64>()
        / 6.0;
    assert_abs_diff_eq!(m.nll, nll, epsilon = eps);
    assert_abs_diff_eq!(m.brier, 3.075 / 6.0, epsilon = eps);
    assert_eq!(m.pixels, 6);
    let counts: Vec<u64> = m.bins.iter().map(|b| b.count).collect();
    assert_eq!(counts, vec![0, 0, 2, 1, 3]);
    assert_eq!(m.bins[0].accuracy, None);
    assert_abs_diff_eq!(m.bins[4].accuracy.unwrap(), 2.0 / 3.0, epsilon = eps);
    // Adaptive, B = 3 over 6 pixels sorted by confidence: {.5,.5} gap 0, {.7,.8} gap .25,
    // {.9,1} gap .45 → (2·.25 + 2·.45)/6.
    let m3 = calibration_metrics(probs.view(), &labels, 3).unwrap();
    assert_abs_diff_eq!(m3.adaptive_ece.unwrap(), 1.4 / 6.0, epsilon = eps);
}

/// ```python
/// n, C, B = 500, 4, 15
/// i = np.arange(n)[:, None]; k = np.arange(C)[None, :]
/// raw = (((i * 17 + k * 29 + (i * i) % 7 * k) % 23) + 1).astype(np.float32) ** 3
/// probs = (raw / raw.sum(axis=1, keepdims=True, dtype=np.float32)).astype(np.float32)
/// y = (np.arange(n) * 7) % 5
/// y = np.where(np.arange(n) % 2 == 0, probs.argmax(1), y)
/// y = np.where(y == 4, 255, y)
/// v = y != 255; P = probs[v].astype(np.float64); Y = y[v]
/// conf = P.max(1); ok = (P.argmax(1) == Y).astype(np.float64)
/// b = np.minimum(np.floor(conf * B).astype(int), B - 1)
/// ece = Σ_j (|b==j|/N)·|mean(ok[b==j]) − mean(conf[b==j])|; mce = max_j |…|
/// order = np.lexsort((ok, conf)); cs, oks = conf[order], ok[order]
/// aece = Σ_j |Σ oks[jN//B:(j+1)N//B] − Σ cs[…]| / N
/// nll = np.mean(-np.log(np.clip(P[np.arange(N), Y], 1e-12, 1)))
/// brier = np.mean(((P - np.eye(C)[Y]) ** 2).sum(1))
/// # ece 0.08222082118193305 mce 0.1904046519236131 aece 0.09545545664098527
/// # nll 1.440940917991896 brier 0.5847836076272996 N 450 acc 0.6577777777777778
/// ```
#[test]
fn calibration_matches_numpy_reference() {
    let (n, c) = (500usize, 4usize);
    let mut probs = Array2::<f32>::zeros((n, c));
    let mut labels = Vec::new();
    for i in 0..n {
        let raw: Vec<f32> = (0..c)
            .map(|k| {
                let r = ((i * 17 + k * 29 + (i * i) % 7 * k) % 23 + 1) as f32;
                r * r * r
            })
            .collect();
        let sum: f32 = raw.iter().sum();
        for k in 0..c {
            probs[[i, k]] = raw[k] / sum;
        }
        let row = probs.row(i);
        let argmax = (0..c).fold(0, |b, k| if row[k] > row[b] { k } else { b });
        let mut y = (i * 7) % 5;
        if i % 2 == 0 {
            y = argmax;
        }
        labels.push(if y == 4 { 255u16 } else { y as u16 });
    }
    let mut acc = CalibrationAccumulator::new(CalibrationConfig::default().check().unwrap());
    for start in (0..n).step_by(64) {
        let end = (start + 64).min(n);
        acc.update(
            probs.slice(ndarray::s![start..end, ..]),
            &labels[start..end],
        )
        .unwrap();
    }
    let m = acc.finish().unwrap();
    assert_eq!(m.pixels, 450);
    assert_abs_diff_eq!(m.accuracy, 0.6577777777777778, epsilon = TOL);
    assert_abs_diff_eq!(m.ece, 0.08222082118193305, epsilon = TOL);
    assert_abs_diff_eq!(m.mce, 0.1904046519236131, epsilon = TOL);
    assert_abs_diff_eq!(m.adaptive_ece.unwrap(), 0.09545545664098527, epsilon = TOL);
    assert_abs_diff_eq!(m.nll, 1.440940917991896, epsilon = TOL);
    assert_abs_diff_eq!(m.brier, 0.5847836076272996, epsilon = TOL);
}

#[test]
fn calibration_bad_input_is_a_typed_error() {
    let cfg = || CalibrationConfig::default().check().unwrap();
    let mut acc = CalibrationAccumulator::new(cfg());
    // Outside [0, 1].
    let p = array![[1.2f32, -0.2], [0.5, 0.5]];
    assert!(matches!(
        acc.update(p.view(), &[0u8, 1]),
        Err(GmmSegError::InvalidInput { .. })
    ));
    // Rows not summing to 1 (logits passed by mistake).
    let p = array![[0.5f32, 0.4]];
    assert!(matches!(
        acc.update(p.view(), &[0u8]),
        Err(GmmSegError::InvalidInput { .. })
    ));
    // NaN.
    let p = array![[f32::NAN, 0.5]];
    assert!(matches!(
        acc.update(p.view(), &[0u8]),
        Err(GmmSegError::NonFinite { .. })
    ));
    // Length mismatch, label out of range.
    let p = array![[0.5f32, 0.5]];
    assert!(matches!(
        acc.update(p.view(), &[0u8, 1]),
        Err(GmmSegError::Shape { .. })
    ));
    assert!(matches!(
        acc.update(p.view(), &[2u8]),
        Err(GmmSegError::LabelOutOfRange { label: 2, .. })
    ));
    // Nothing valid seen.
    assert!(matches!(acc.finish(), Err(GmmSegError::Empty { .. })));
    // Class count changing between batches.
    let mut acc = CalibrationAccumulator::new(cfg());
    acc.update(array![[0.5f32, 0.5]].view(), &[0u8]).unwrap();
    assert!(matches!(
        acc.update(array![[0.2f32, 0.3, 0.5]].view(), &[0u8]),
        Err(GmmSegError::Shape { .. })
    ));
    // Bad configuration.
    assert!(matches!(
        CalibrationConfig::with_bins(0).check(),
        Err(GmmSegError::InvalidConfig { .. })
    ));
    let bad_tol = CalibrationConfig {
        sum_tolerance: f64::NAN,
        ..CalibrationConfig::default()
    };
    assert!(bad_tol.check().is_err());
}

#[test]
fn calibration_without_adaptive_ece() {
    let cfg = CalibrationConfig {
        adaptive: false,
        ..CalibrationConfig::default()
    };
    let mut acc = CalibrationAccumulator::new(cfg.check().unwrap());
    acc.update(array![[0.9f32, 0.1], [0.2, 0.8]].view(), &[0u8, 0])
        .unwrap();
    let m = acc.finish().unwrap();
    assert_eq!(m.adaptive_ece, None);
    // Bins 13 (0.9 ✓) and 12 (0.8 ✗): ECE = ½·0.1 + ½·0.8.
    assert_abs_diff_eq!(m.ece, 0.45, epsilon = 1e-6);
    assert_abs_diff_eq!(m.mce, 0.8, epsilon = 1e-6);
}

#[test]
fn test_invalid_bins() {
    for bins in [0, 100_001] {
        match CalibrationConfig::with_bins(bins).check() {
            Err(GmmSegError::InvalidConfig { field, .. }) => assert_eq!(field, "bins"),
            other => panic!("bins = {bins}: expected InvalidConfig, got {other:?}"),
        }
    }
    assert!(CalibrationConfig::with_bins(1).check().is_ok());
}

#[test]
fn test_invalid_sum_tolerance() {
    for tol in [-1e-3, 1.0, f64::INFINITY, f64::NAN] {
        let cfg = CalibrationConfig {
            sum_tolerance: tol,
            ..CalibrationConfig::default()
        };
        match cfg.check() {
            Err(GmmSegError::InvalidConfig { field, .. }) => assert_eq!(field, "sum_tolerance"),
            other => panic!("sum_tolerance = {tol}: expected InvalidConfig, got {other:?}"),
        }
    }
}

#[test]
fn test_invalid_classes() {
    for classes in [0, 256] {
        match ConfusionMatrix::new(classes) {
            Err(GmmSegError::InvalidConfig { field, .. }) => assert_eq!(field, "classes"),
            other => panic!("classes = {classes}: expected InvalidConfig, got {other:?}"),
        }
    }
    assert_eq!(ConfusionMatrix::new(255).unwrap().classes(), 255);
}

#[test]
fn ndarray_entry_points_agree_with_flat_ones() {
    use ndarray::{Array3, Array4};
    // Segmentation on (B, H, W) maps, including a non-contiguous (transposed) view.
    let gt = Array3::from_shape_fn((2, 3, 4), |(b, y, x)| ((b + y * x) % 4) as u8);
    let pred = Array3::from_shape_fn((2, 3, 4), |(b, y, x)| ((b + y + x) % 4) as u8);
    let mut a = ConfusionMatrix::new(4).unwrap();
    a.update_arrays(pred.view(), gt.view()).unwrap();
    let mut b = ConfusionMatrix::new(4).unwrap();
    b.update_arrays(pred.view().reversed_axes(), gt.view().reversed_axes())
        .unwrap();
    let mut c = ConfusionMatrix::new(4).unwrap();
    c.update(pred.as_slice().unwrap(), gt.as_slice().unwrap())
        .unwrap();
    assert_eq!(a, c);
    assert_eq!(b, c);
    assert!(matches!(
        a.update_arrays(pred.view(), gt.view().reversed_axes()),
        Err(GmmSegError::Shape { .. })
    ));

    // Anomaly on (B, H, W) maps.
    let scores = Array3::from_shape_fn((2, 3, 4), |(b, y, x)| (b * 12 + y * 4 + x) as f32);
    let labels = Array3::from_shape_fn((2, 3, 4), |(b, y, _)| u8::from(b == 1 && y > 0));
    let mut acc = AnomalyAccumulator::new();
    acc.update_arrays(scores.view(), labels.view()).unwrap();
    let m = acc.finish().unwrap();
    assert_eq!((m.auroc, m.fpr95), (1.0, 0.0));

    // Calibration on (B, C, H, W) probabilities equals the (N, C) rows in (b, y, x) order.
    let (bn, cn, h, w) = (2, 3, 2, 2);
    let probs = Array4::from_shape_fn((bn, cn, h, w), |(b, c, y, x)| {
        let raw = [1.0f32 + (b + y) as f32, 2.0 + x as f32, 3.0];
        raw[c] / raw.iter().sum::<f32>()
    });
    let labels = Array3::from_shape_fn((bn, h, w), |(b, y, x)| ((b + y + x) % 3) as u8);
    let mut dense = CalibrationAccumulator::new(CalibrationConfig::default().check().unwrap());
    dense.update_dense(probs.view(), labels.view()).unwrap();
    let mut rows = Array2::<f32>::zeros((bn * h * w, cn));
    let mut flat = Vec::new();
    for b in 0..bn {
        for y in 0..h {
            for x in 0..w {
                let n = (b * h + y) * w + x;
                for c in 0..cn {
                    rows[[n, c]] = probs[[b, c, y, x]];
                }
                flat.push(labels[[b, y, x]]);
            }
        }
    }
    let one = calibration_metrics(rows.view(), &flat, 15).unwrap();
    assert_eq!(dense.finish().unwrap(), one);
    let mut dense = CalibrationAccumulator::new(CalibrationConfig::default().check().unwrap());
    assert!(matches!(
        dense.update_dense(probs.view(), labels.slice(ndarray::s![.., .., ..1])),
        Err(GmmSegError::Shape { .. })
    ));
}

// ---------------------------------------------------------------- summary

/// ```python
/// x = np.array([40.0, 42.0, 44.0]); m = x.mean(); s = x.std(ddof=1)   # 42, 2
/// scipy.stats.t.ppf(0.975, 2) * s / np.sqrt(3)                        # 4.968275654...
/// ```
#[test]
fn summary_hand_computed() {
    let s = summarize(&[40.0, 42.0, 44.0]).unwrap();
    assert_eq!(s.n, 3);
    assert_abs_diff_eq!(s.mean, 42.0, epsilon = TOL);
    assert_abs_diff_eq!(s.std.unwrap(), 2.0, epsilon = TOL);
    assert_abs_diff_eq!(
        s.ci95.unwrap(),
        4.302652729749462 * 2.0 / 3f64.sqrt(),
        epsilon = TOL
    );
    assert_abs_diff_eq!(s.upper() - s.lower(), 2.0 * s.ci95.unwrap(), epsilon = TOL);
    // One run: no spread, no interval.
    let one = summarize(&[3.5]).unwrap();
    assert_eq!(
        (one.std, one.ci95, one.lower(), one.upper()),
        (None, None, 3.5, 3.5)
    );
    // Beyond df = 30 the normal quantile is used.
    let many: Vec<f64> = (0..41).map(|i| (i % 2) as f64).collect();
    let s = summarize(&many).unwrap();
    let sd = s.std.unwrap();
    assert_abs_diff_eq!(
        s.ci95.unwrap(),
        1.959963984540054 * sd / 41f64.sqrt(),
        epsilon = TOL
    );
    assert!(matches!(summarize(&[]), Err(GmmSegError::Empty { .. })));
    assert!(matches!(
        summarize(&[1.0, f64::NAN]),
        Err(GmmSegError::NonFinite { index: 1, .. })
    ));
    assert_eq!(gmmseg::metrics::student_t_975(0), None);
    assert_abs_diff_eq!(
        gmmseg::metrics::student_t_975(30).unwrap(),
        2.0422724563012378
    );
}

/// The `u8` fast path (256×256 tables per 4M-pixel chunk) agrees with the generic path, over
/// several chunks, and reports the exact index of a bad pixel in a later chunk.
#[test]
fn confusion_u8_fast_path_matches_generic_path() {
    let n = 9_000_001usize;
    let gt: Vec<u8> = (0..n)
        .map(|i| {
            if i % 37 == 0 {
                255
            } else {
                (i / 1013 % 7) as u8
            }
        })
        .collect();
    let pred: Vec<u8> = (0..n).map(|i| ((i * 31) % 101 % 7) as u8).collect();
    let (gt64, pred64): (Vec<i64>, Vec<i64>) = gt
        .iter()
        .zip(&pred)
        .map(|(&g, &p)| (g as i64, p as i64))
        .unzip();
    let mut fast = ConfusionMatrix::new(7).unwrap();
    fast.update(&pred, &gt).unwrap();
    let mut generic = ConfusionMatrix::new(7).unwrap();
    generic.update(&pred64, &gt64).unwrap();
    assert_eq!(fast, generic);
    assert_eq!(
        fast.matrix().sum(),
        (0..n).filter(|i| i % 37 != 0).count() as u64
    );

    let mut bad = pred.clone();
    bad[6_000_123] = 9; // an invalid prediction at a valid pixel (6_000_123 % 37 != 0)
    bad[8_000_000] = 9;
    match fast.update(&bad, &gt) {
        Err(GmmSegError::LabelOutOfRange {
            index,
            label,
            what,
            classes,
        }) => {
            assert_eq!(
                (index, label, what.as_str(), classes),
                (6_000_123, 9, "pred", 7)
            )
        }
        other => panic!("expected LabelOutOfRange, got {other:?}"),
    }
    assert_eq!(fast, generic, "a failed update leaves the matrix unchanged");
}
