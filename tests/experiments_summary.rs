//! The summary's arithmetic against hand-computed values, and the claim rules.

use gmmseg::experiments::{
    claim_holds, evaluate_claims, summarize_rows, summary_frame, ClaimKind, RunRow, Study,
    COL_CI95, COL_CLAIM_HOLDS, COL_MEAN,
};
use gmmseg::metrics::Summary;

fn row(variant: &str, metric: &str, seed: u64, value: f64) -> RunRow {
    RunRow {
        study: "calibration".into(),
        dataset: "synthscapes".into(),
        variant: variant.into(),
        group: "val".into(),
        param: None,
        seed,
        metric: metric.into(),
        value,
        hash: format!("h{variant}{seed}"),
        model: "m".into(),
    }
}

#[test]
fn mean_std_and_t_interval_of_three_seeds() {
    // [0.5, 0.6, 0.7]: mean 0.6; s = sqrt(((−0.1)² + 0 + 0.1²)/2) = 0.1;
    // t_{0.975, 2} = 4.302652729749462; half-width = 4.302652729749462 · 0.1 / √3 = 0.248413771…
    let rows: Vec<RunRow> = [0.5, 0.6, 0.7]
        .iter()
        .enumerate()
        .map(|(i, &v)| row("softmax", "ece", i as u64, v))
        .collect();
    let s = summarize_rows(&rows).unwrap();
    assert_eq!(s.len(), 1);
    let st = s[0].stats;
    assert_eq!(st.n, 3);
    assert!((st.mean - 0.6).abs() < 1e-12);
    assert!((st.std.unwrap() - 0.1).abs() < 1e-12);
    assert!(
        (st.ci95.unwrap() - 0.248_413_771_339_862_6).abs() < 1e-9,
        "{st:?}"
    );
    assert!((st.lower() - (0.6 - 0.248_413_771_339_862_6)).abs() < 1e-9);
    // one seed: no spread, no interval
    let one = summarize_rows(&rows[..1]).unwrap()[0].stats;
    assert_eq!((one.n, one.std, one.ci95), (1, None, None));
}

#[test]
fn claims_follow_the_documented_rules() {
    let s = |mean: f64, ci: Option<f64>| Summary {
        n: 3,
        mean,
        std: ci.map(|c| c / 2.0),
        ci95: ci,
    };
    // higher is better (mIoU): 0.60 vs 0.62 with CI 0.03 → not better, but not worse
    assert!(
        !claim_holds(
            ClaimKind::Better,
            "miou",
            &s(0.60, Some(0.03)),
            &s(0.62, Some(0.01))
        )
        .0
    );
    let (holds, d, m) = claim_holds(
        ClaimKind::NotWorse,
        "miou",
        &s(0.60, Some(0.03)),
        &s(0.62, Some(0.01)),
    );
    assert!(holds && (d + 0.02).abs() < 1e-12 && (m - 0.03).abs() < 1e-12);
    assert!(
        !claim_holds(
            ClaimKind::NotWorse,
            "miou",
            &s(0.55, Some(0.03)),
            &s(0.62, Some(0.01))
        )
        .0
    );
    // lower is better (ECE, FPR95): 0.05 beats 0.10
    assert!(claim_holds(ClaimKind::Better, "ece", &s(0.05, None), &s(0.10, None)).0);
    assert!(!claim_holds(ClaimKind::Better, "fpr95", &s(0.5, None), &s(0.4, None)).0);
    // within a tolerance
    assert!(
        claim_holds(
            ClaimKind::Within(0.01),
            "miou",
            &s(0.455, None),
            &s(0.46, None)
        )
        .0
    );
    assert!(
        !claim_holds(
            ClaimKind::Within(0.01),
            "miou",
            &s(0.44, None),
            &s(0.46, None)
        )
        .0
    );
    // ratio: 13.37 / 14.16 = 0.944 ≥ 0.9
    assert!(
        claim_holds(
            ClaimKind::RatioAtLeast(0.9),
            "images_per_s",
            &s(13.37, None),
            &s(14.16, None)
        )
        .0
    );
    assert!(
        !claim_holds(
            ClaimKind::RatioAtLeast(0.9),
            "images_per_s",
            &s(12.0, None),
            &s(14.16, None)
        )
        .0
    );
    // threshold on A alone: B is ignored, difference = mean − 0.9, margin = A's CI
    let (holds, d, m) = claim_holds(
        ClaimKind::AtLeast(0.9),
        "throughput_vs_softmax",
        &s(0.944, Some(0.02)),
        &s(100.0, Some(5.0)),
    );
    assert!(holds);
    assert!((d - 0.044).abs() < 1e-12 && (m - 0.02).abs() < 1e-12);
    let (holds, d, _) = claim_holds(
        ClaimKind::AtLeast(0.9),
        "throughput_vs_softmax",
        &s(0.85, None),
        &s(0.0, None),
    );
    assert!(!holds && (d + 0.05).abs() < 1e-12);
}

#[test]
fn calibration_claim_row_in_the_summary_table() {
    let mut rows = Vec::new();
    for (i, (a, b)) in [(0.10, 0.04), (0.12, 0.05), (0.11, 0.06)]
        .iter()
        .enumerate()
    {
        rows.push(row("softmax", "ece", i as u64, *a));
        rows.push(row("gmmseg", "ece", i as u64, *b));
    }
    let cells = summarize_rows(&rows).unwrap();
    let claims = evaluate_claims(Study::Calibration, &cells);
    assert_eq!(claims.len(), 1);
    let c = &claims[0];
    assert_eq!(c.holds, Some(true));
    assert!((c.difference.unwrap() - (0.05 - 0.11)).abs() < 1e-12);
    // margin = max of the two half-widths; both std 0.01 → 4.3027·0.01/√3
    assert!((c.margin.unwrap() - 4.302652729749462 * 0.01 / 3f64.sqrt()).abs() < 1e-9);
    let df = summary_frame(&cells, &claims).unwrap();
    assert_eq!(df.height(), 3);
    let holds: Vec<Option<bool>> = df
        .column(COL_CLAIM_HOLDS)
        .unwrap()
        .bool()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(holds, vec![None, None, Some(true)]);
    let mean = df.column(COL_MEAN).unwrap().f64().unwrap().get(2).unwrap();
    assert!((mean + 0.06).abs() < 1e-12);
    assert!(df.column(COL_CI95).unwrap().f64().unwrap().get(0).is_some());
}

#[test]
fn dataset_slugs_are_file_names() {
    use gmmseg::experiments::dataset_slug;
    assert_eq!(dataset_slug("synthscapes"), "synthscapes");
    assert_eq!(dataset_slug("folder:/data/my set"), "folder_data_my_set");
    let long = format!("folder:/{}", "x".repeat(100));
    let (a, b) = (dataset_slug(&long), dataset_slug(&format!("{long}y")));
    assert!(a.len() <= 64 && a != b, "{a} {b}");
}

#[test]
fn concurrent_merges_into_one_csv_lose_no_rows() {
    // Two "shards" merging rows into the same CSV at the same time, 25 times each: the lock
    // and the re-read before writing keep every row.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("em.csv");
    let handles: Vec<_> = (0..2)
        .map(|shard| {
            let path = path.clone();
            std::thread::spawn(move || {
                for i in 0..25u64 {
                    let mut r = row("vanilla", "miou", i, 0.5);
                    r.hash = format!("shard{shard}-run{i}");
                    gmmseg::experiments::write_rows_merged(&path, &[r], &[]).unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let rows = gmmseg::experiments::read_rows(&path).unwrap();
    assert_eq!(rows.len(), 50);
    assert!(!dir.path().join("em.csv.lock").exists());
    // rewriting a hash replaces its rows instead of appending
    let mut r = row("vanilla", "miou", 0, 0.9);
    r.hash = "shard0-run0".into();
    let after = gmmseg::experiments::write_rows_merged(&path, &[r], &[]).unwrap();
    assert_eq!(after.len(), 50);
    assert!(after
        .iter()
        .any(|r| r.hash == "shard0-run0" && r.value == 0.9));
}
