//! The summary's arithmetic against hand-computed values, and the claim rules.

use gmmseg::experiments::{
    evaluate_claims, summarize_rows, summary_frame, RunRow, Study, Verdict, COL_CI95, COL_MEAN,
    COL_VERDICT,
};

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
        code: "c0".into(),
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
    let claims = evaluate_claims(Study::Calibration, &cells, &rows);
    // the paper's claim, the temperature-scaled baselines and two other calibration
    // measures; only the first has rows here
    assert_eq!(claims.len(), 5);
    assert_eq!(claims.iter().filter(|c| c.verdict.is_some()).count(), 1);
    let c = &claims[0];
    // paired differences gmmseg − softmax: −0.06, −0.07, −0.05 → mean −0.06, sd 0.01
    assert_eq!(c.verdict, Some(Verdict::Reproduced));
    assert_eq!((c.n, c.agree), (3, 3));
    assert!((c.mean_diff.unwrap() - (-0.06)).abs() < 1e-12);
    assert!((c.ci95.unwrap() - 4.302652729749462 * 0.01 / 3f64.sqrt()).abs() < 1e-9);
    let df = summary_frame(&cells, &claims[..1]).unwrap();
    assert_eq!(df.height(), 3);
    let verdicts: Vec<Option<&str>> = df
        .column(COL_VERDICT)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(verdicts, vec![None, None, Some("reproduced")]);
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
                    let mut r = row(&format!("variant{shard}"), "miou", i, 0.5);
                    r.hash = format!("shard{shard}-run{i}");
                    gmmseg::experiments::write_rows_merged(&path, &[r], &[], "c0").unwrap();
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
    let mut r = row("variant0", "miou", 0, 0.9);
    r.hash = "shard0-run0".into();
    let after = gmmseg::experiments::write_rows_merged(&path, &[r], &[], "c0").unwrap();
    assert_eq!(after.len(), 50);
    assert!(after
        .iter()
        .any(|r| r.hash == "shard0-run0" && r.value == 0.9));
    // a row of another run filling the same cell replaces it: one row per cell
    let mut r = row("variant0", "miou", 1, 0.7);
    r.hash = "another-config".into();
    let after = gmmseg::experiments::write_rows_merged(&path, &[r], &[], "c0").unwrap();
    assert_eq!(after.len(), 50);
    assert!(!after.iter().any(|r| r.hash == "shard0-run1"));
    // rows of other code are dropped at the next write: they are superseded
    let mut r = row("variant9", "miou", 0, 0.1);
    r.code = "c1".into();
    let after = gmmseg::experiments::write_rows_merged(&path, &[r], &[], "c1").unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(gmmseg::experiments::read_rows(&path).unwrap()[0].code, "c1");
    // rows of another dataset stay whatever their code: a profile is retrained one dataset
    // at a time, and the other dataset's claims are made from its rows until its turn
    let mut other = row("variant9", "miou", 0, 0.2);
    other.dataset = "digitscenes".into();
    other.hash = "digitscenes-run".into();
    other.code = "c1".into();
    gmmseg::experiments::write_rows_merged(&path, &[other], &[], "c1").unwrap();
    let mut r = row("variant9", "miou", 0, 0.3);
    r.code = "c2".into();
    r.hash = "c2-run".into();
    let after = gmmseg::experiments::write_rows_merged(&path, &[r], &[], "c2").unwrap();
    assert_eq!(after.len(), 2);
    assert!(after
        .iter()
        .any(|r| r.dataset == "digitscenes" && r.code == "c1" && r.value == 0.2));
    assert!(!after
        .iter()
        .any(|r| r.dataset != "digitscenes" && r.code == "c1"));
}

/// Cached model records are JSON: reading one back must give the exact f64 that was written,
/// or a run assembled from the cache differs in the last bit from the run that trained
/// (found by the Slurm test: 0.10209053949683103 came back as …104 without serde_json's
/// `float_roundtrip`).
#[test]
fn model_record_floats_round_trip_exactly() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut values = vec![0.10209053949683103f64, 0.1 + 0.2, 1.0 / 3.0, 1e-300, 5e-324];
    for _ in 0..100_000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // metrics live in [0, 1]; timings and counts beyond
        values.push((state >> 11) as f64 / (1u64 << 53) as f64);
        values.push(f64::from_bits(state >> 2));
    }
    for x in values.into_iter().filter(|v| v.is_finite()) {
        let back: f64 = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
        assert_eq!(back.to_bits(), x.to_bits(), "{x:e}");
    }
}
