//! Property tests: invariants every correct implementation satisfies, on random inputs.

use gmmseg::metrics::anomaly::anomaly_metrics;
use gmmseg::metrics::calibration::calibration_metrics;
use gmmseg::metrics::{
    AnomalyAccumulator, CalibrationAccumulator, CalibrationConfig, ConfusionMatrix,
};
use ndarray::Array2;
use proptest::prelude::*;

/// Scores on a coarse grid (so that ties are frequent) with 0/1/255 labels containing both
/// classes.
fn scored_labels() -> impl Strategy<Value = (Vec<f32>, Vec<u8>)> {
    (3usize..300).prop_flat_map(|n| {
        (
            prop::collection::vec((0i32..40).prop_map(|v| v as f32 / 8.0 - 2.0), n),
            prop::collection::vec(
                prop_oneof![6 => Just(0u8), 3 => Just(1u8), 1 => Just(255u8)],
                n,
            ),
        )
            .prop_filter("both classes present", |(_, l)| {
                l.contains(&0) && l.contains(&1)
            })
    })
}

/// O(P·N) AUROC by pair counting (ties count 1/2): the Mann-Whitney definition.
fn auroc_pairs(s: &[f32], l: &[u8]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (i, &li) in l.iter().enumerate() {
        if li != 1 {
            continue;
        }
        for (j, &lj) in l.iter().enumerate() {
            if lj != 0 {
                continue;
            }
            den += 1.0;
            num += if s[i] > s[j] {
                1.0
            } else if s[i] == s[j] {
                0.5
            } else {
                0.0
            };
        }
    }
    num / den
}

/// O(T·N) AP and FPR95 straight from the definitions: one ROC/PR point per distinct score,
/// thresholds from high to low, counts recomputed from scratch at each threshold.
fn ap_fpr95_bruteforce(s: &[f32], l: &[u8]) -> (f64, f64) {
    let mut thresholds: Vec<f32> = s
        .iter()
        .zip(l)
        .filter(|(_, &y)| y != 255)
        .map(|(&v, _)| v)
        .collect();
    thresholds.sort_by(|a, b| b.total_cmp(a));
    thresholds.dedup();
    let p = l.iter().filter(|&&y| y == 1).count() as f64;
    let n = l.iter().filter(|&&y| y == 0).count() as f64;
    let (mut ap, mut prev_recall, mut fpr95) = (0.0, 0.0, None);
    for t in thresholds {
        let tp = s.iter().zip(l).filter(|(&v, &y)| y == 1 && v >= t).count() as f64;
        let fp = s.iter().zip(l).filter(|(&v, &y)| y == 0 && v >= t).count() as f64;
        let recall = tp / p;
        ap += (recall - prev_recall) * tp / (tp + fp);
        prev_recall = recall;
        if fpr95.is_none() && recall >= 0.95 {
            fpr95 = Some(fp / n);
        }
    }
    (ap, fpr95.unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn auroc_equals_pair_counting((s, l) in scored_labels()) {
        let m = anomaly_metrics(&s, &l).unwrap();
        prop_assert!((m.auroc - auroc_pairs(&s, &l)).abs() < 1e-12);
    }

    #[test]
    fn ap_and_fpr95_equal_the_definitions((s, l) in scored_labels()) {
        let m = anomaly_metrics(&s, &l).unwrap();
        let (ap, fpr95) = ap_fpr95_bruteforce(&s, &l);
        prop_assert!((m.ap - ap).abs() < 1e-12, "AP {} vs {}", m.ap, ap);
        prop_assert!((m.fpr95 - fpr95).abs() < 1e-12, "FPR95 {} vs {}", m.fpr95, fpr95);
    }

    #[test]
    fn reversed_scores_give_one_minus_auroc((s, l) in scored_labels()) {
        let m = anomaly_metrics(&s, &l).unwrap();
        let neg: Vec<f32> = s.iter().map(|x| -x).collect();
        let r = anomaly_metrics(&neg, &l).unwrap();
        prop_assert!((m.auroc + r.auroc - 1.0).abs() < 1e-12);
    }

    #[test]
    fn anomaly_metrics_are_in_range_and_invariant_to_monotone_maps((s, l) in scored_labels()) {
        let m = anomaly_metrics(&s, &l).unwrap();
        for v in [m.auroc, m.ap, m.fpr95] {
            prop_assert!((0.0..=1.0).contains(&v));
        }
        // A strictly increasing map of the scores changes nothing (only ranks matter).
        let mapped: Vec<f32> = s.iter().map(|x| (x * 3.0 + 1.0).exp()).collect();
        let m2 = anomaly_metrics(&mapped, &l).unwrap();
        // ... but the best-F1 threshold, which maps with the scores
        prop_assert_eq!(m2.best_f1_threshold, (m.best_f1_threshold * 3.0 + 1.0).exp());
        let same_threshold = gmmseg::metrics::AnomalyMetrics {
            best_f1_threshold: m.best_f1_threshold,
            ..m2
        };
        prop_assert_eq!(m, same_threshold);
    }

    #[test]
    fn anomaly_streaming_equals_one_shot((s, l) in scored_labels(), chunk in 1usize..50) {
        let one = anomaly_metrics(&s, &l).unwrap();
        let mut acc = AnomalyAccumulator::new();
        for (sc, lc) in s.chunks(chunk).zip(l.chunks(chunk)) {
            acc.update(sc, lc).unwrap();
        }
        prop_assert_eq!(acc.finish().unwrap(), one);
    }

    #[test]
    fn confusion_streaming_equals_one_shot(
        data in prop::collection::vec((0u8..5, prop_oneof![9 => 0u8..5, 1 => Just(255u8)]), 1..400),
        chunk in 1usize..64,
    ) {
        let (pred, gt): (Vec<u8>, Vec<u8>) = data.into_iter().unzip();
        let mut one = ConfusionMatrix::new(5).unwrap();
        one.update(&pred, &gt).unwrap();
        let mut streamed = ConfusionMatrix::new(5).unwrap();
        for (p, g) in pred.chunks(chunk).zip(gt.chunks(chunk)) {
            streamed.update(p, g).unwrap();
        }
        prop_assert_eq!(&one, &streamed);
        let valid = gt.iter().filter(|&&g| g != 255).count() as u64;
        prop_assert_eq!(one.matrix().sum(), valid);
        if valid > 0 {
            let m = one.finish().unwrap();
            prop_assert!((0.0..=1.0).contains(&m.miou));
            prop_assert!((0.0..=1.0).contains(&m.macc));
            // Perfect prediction gives 1.
            let mut perfect = ConfusionMatrix::new(5).unwrap();
            perfect.update(&gt, &gt).unwrap();
            let p = perfect.finish().unwrap();
            prop_assert_eq!((p.miou, p.acc, p.macc), (1.0, 1.0, 1.0));
        }
    }

    #[test]
    fn calibration_streaming_equals_one_shot(
        rows in prop::collection::vec((prop::collection::vec(1u32..100, 3), 0u8..4), 1..200),
        chunk in 1usize..40,
        bins in 1usize..20,
    ) {
        let n = rows.len();
        let mut probs = Array2::<f32>::zeros((n, 3));
        let mut labels = Vec::new();
        for (i, (raw, y)) in rows.iter().enumerate() {
            let sum: u32 = raw.iter().sum();
            for k in 0..3 {
                probs[[i, k]] = raw[k] as f32 / sum as f32;
            }
            labels.push(if *y == 3 { 255 } else { *y });
        }
        let one = calibration_metrics(probs.view(), &labels, bins);
        let mut acc = CalibrationAccumulator::new(CalibrationConfig::with_bins(bins).check().unwrap());
        for start in (0..n).step_by(chunk) {
            let end = (start + chunk).min(n);
            acc.update(probs.slice(ndarray::s![start..end, ..]), &labels[start..end]).unwrap();
        }
        match (one, acc.finish()) {
            (Ok(a), Ok(b)) => {
                prop_assert!((a.ece - b.ece).abs() < 1e-12);
                prop_assert!((a.nll - b.nll).abs() < 1e-9);
                prop_assert!((a.brier - b.brier).abs() < 1e-9);
                prop_assert_eq!(a.adaptive_ece, b.adaptive_ece);
                prop_assert!(a.mce >= a.ece - 1e-12);
                prop_assert!((0.0..=2.0).contains(&a.brier));
                prop_assert_eq!(a.bins.iter().map(|b| b.count).sum::<u64>(), a.pixels);
            }
            (Err(_), Err(_)) => prop_assert!(labels.iter().all(|&y| y == 255)),
            (a, b) => prop_assert!(false, "one-shot {:?} vs streamed {:?}", a.is_ok(), b.is_ok()),
        }
    }
}
