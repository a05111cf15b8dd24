//! The experiments module end to end on the `tiny` profile (seconds): every study runs, the
//! caches hit and miss as documented (counted by `trained_models`), shards merge, and the
//! tables have the documented columns.

use gmmseg::experiments::{
    ExperimentProfile, ExperimentRunner, Shard, Study, COL_AGREE, COL_CLAIM, COL_CODE, COL_HASH,
    COL_METRIC, COL_MODEL, COL_SEED, COL_VALUE, COL_VARIANT, COL_VERDICT,
};
use gmmseg::GmmSegError;

fn runner(dir: &std::path::Path) -> ExperimentRunner {
    let p = ExperimentProfile::tiny().check().unwrap();
    ExperimentRunner::new(p, "synthscapes")
        .unwrap()
        .with_results_dir(dir)
}

/// Notebook settings of the `tiny` profile (seconds per study).
fn tiny_settings() -> gmmseg::experiments::report::NotebookSettings {
    gmmseg::experiments::report::NotebookSettings {
        profile: "tiny".into(),
        ..Default::default()
    }
}

fn variants(df: &polars::prelude::DataFrame) -> Vec<String> {
    let mut v: Vec<String> = df
        .column(COL_VARIANT)
        .unwrap()
        .str()
        .unwrap()
        .iter()
        .map(|s| s.unwrap().to_string())
        .collect();
    v.sort();
    v.dedup();
    v
}

#[test]
fn every_study_runs_and_shares_models_then_a_rerun_trains_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = runner(dir.path());
    let mut total_runs = 0;
    for s in Study::ALL {
        let out = r.run(s).unwrap();
        assert!(out.runs.height() > 0, "{s}: no rows");
        assert!(out.summary.height() > 0, "{s}: no summary");
        for c in [
            COL_VARIANT,
            COL_METRIC,
            COL_VALUE,
            COL_SEED,
            COL_HASH,
            COL_MODEL,
            COL_CODE,
        ] {
            out.runs.column(c).unwrap();
        }
        out.summary.column(COL_CLAIM).unwrap();
        out.summary.column(COL_VERDICT).unwrap();
        out.summary.column(COL_AGREE).unwrap();
        assert_eq!(out.cached_runs, 0, "{s}");
        total_runs += out.computed_runs;
        assert!(dir.path().join(format!("{s}.csv")).exists());
        assert!(dir.path().join(format!("{s}.configs.json")).exists());
        // the figures of every study draw from its cells
        let figs = gmmseg::experiments::write_figures(s, &out.cells, dir.path()).unwrap();
        assert!(!figs.is_empty(), "{s}: no figure");
        for f in figs {
            assert!(f.with_extension("svg").exists() && f.with_extension("png").exists());
        }
        if s == Study::Anomaly {
            let v = variants(&out.runs);
            for want in ["softmax/msp", "softmax/mahalanobis", "gmmseg/likelihood"] {
                assert!(v.iter().any(|x| x == want), "{v:?}");
            }
        }
        if s == Study::OnlineVsPosthoc {
            assert!(variants(&out.runs).iter().any(|x| x == "post-hoc gmm"));
        }
        if s == Study::Calibration {
            assert!(out.cells.iter().any(|c| c.metric == "bin_accuracy"));
        }
        if s == Study::Runtime {
            // the paired ratio exists for the GMM head only, and decides the claim
            let ratio: Vec<_> = out
                .cells
                .iter()
                .filter(|c| c.metric == "throughput_vs_softmax")
                .collect();
            assert_eq!(ratio.len(), 1, "{ratio:?}");
            assert_eq!(ratio[0].variant, "gmmseg");
            assert!(ratio[0].stats.mean.is_finite() && ratio[0].stats.mean > 0.0);
            assert_eq!(out.claims.len(), 1);
            let c = &out.claims[0];
            // one seed: no interval, so no verdict either way
            assert_eq!(c.verdict, Some(gmmseg::experiments::Verdict::Inconclusive));
            assert!((c.mean_diff.unwrap() - (ratio[0].stats.mean - 0.944)).abs() < 1e-12);
            // the summary's claim row names the threshold, not a second variant
            assert!(
                variants(&out.summary).contains(&"gmmseg vs threshold@0.944".to_string()),
                "{:?}",
                variants(&out.summary)
            );
        }
    }
    assert_eq!(total_runs, 4 + 2 + 2 + 2 + 2 + 2 + 15 + 4 + 2 + 15);
    // Distinct models: main_results 4 (softmax/gmmseg × fcn/deeplab; deeplab ones are the
    // shared defaults), disc-gmm 1, em 3 new (sinkhorn L=1 is the default gmmseg),
    // components 2 (M = 1, 3; the default M = 5 is not in tiny), flavours 14 (τ = 0.999,
    // the six one-knob variants, the warm start, five new steps of the cumulative path —
    // its first step is the feature-norm knob's model —, reference code; "paper" is the
    // default gmmseg), gap 13 (eleven factors over GMMSeg, two over softmax; its `softmax` and
    // `gmmseg` are the shared defaults).
    assert_eq!(r.trained_models(), 37);

    // A new runner on the same folder: every row from the CSV, no model trained.
    let mut again = runner(dir.path());
    for s in Study::ALL {
        let out = again.run(s).unwrap();
        assert_eq!(out.computed_runs, 0, "{s}");
        assert!(out.cached_runs > 0);
    }
    assert_eq!(again.trained_models(), 0);

    // Two seeds: only seed 1's runs are computed (each of its models once).
    let mut two = runner(dir.path()).with_seeds(2).unwrap();
    let out = two.run(Study::MainResults).unwrap();
    assert_eq!((out.cached_runs, out.computed_runs), (4, 4));
    assert_eq!(two.trained_models(), 4);
    let seeds = out.runs.column(COL_SEED).unwrap().u64().unwrap().clone();
    assert_eq!(seeds.iter().flatten().max(), Some(1));

    // force: recomputes, trains each model once in this runner's life
    let mut forced = runner(dir.path()).with_force(true);
    let a = forced.run(Study::Calibration).unwrap();
    let b = forced.run(Study::Runtime).unwrap();
    assert_eq!((a.computed_runs, b.computed_runs), (2, 2));
    assert_eq!(forced.trained_models(), 2);
}

#[test]
fn changed_configuration_misses_and_model_records_are_reused_across_studies() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = runner(dir.path());
    r.run(Study::Calibration).unwrap();
    assert_eq!(r.trained_models(), 2);
    // Runtime uses the same two models: read from models/<key>.json by a fresh runner.
    let mut fresh = runner(dir.path());
    let out = fresh.run(Study::Runtime).unwrap();
    assert_eq!((out.computed_runs, fresh.trained_models()), (2, 0));
    // One more training step changes every run's hash and every model.
    let mut p = ExperimentProfile::tiny();
    p.train.steps += 1;
    let mut changed = ExperimentRunner::new(p.check().unwrap(), "synthscapes")
        .unwrap()
        .with_results_dir(dir.path());
    let out = changed.run(Study::Calibration).unwrap();
    assert_eq!((out.cached_runs, out.computed_runs), (0, 2));
    assert_eq!(changed.trained_models(), 2);
    // the new runs supersede the old ones of the same spec and seed: the file holds the
    // new rows only, one per cell
    let all = gmmseg::experiments::read_rows(&dir.path().join("calibration.csv")).unwrap();
    let mut cells: Vec<_> = all
        .iter()
        .map(|r| {
            (
                &r.variant,
                &r.group,
                r.param.map(f64::to_bits),
                r.seed,
                &r.metric,
            )
        })
        .collect();
    let n = cells.len();
    cells.sort();
    cells.dedup();
    assert_eq!(cells.len(), n, "a cell has two rows");
    assert_eq!(all.len(), out.runs.height());
}

#[test]
fn other_code_retrains_and_cache_only_reports_it_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = runner(dir.path()).with_code_fingerprint("code-a");
    assert_eq!(r.run(Study::Calibration).unwrap().computed_runs, 2);
    assert_eq!(r.trained_models(), 2);
    // the same code: everything cached
    let mut same = runner(dir.path()).with_code_fingerprint("code-a");
    assert_eq!(same.run(Study::Calibration).unwrap().cached_runs, 2);
    assert_eq!(same.trained_models(), 0);
    // another code fingerprint (any edited line of the EM code gives one): cache-only sees
    // nothing it may use, and a normal run retrains both models
    let mut looking = runner(dir.path())
        .with_code_fingerprint("code-b")
        .with_cache_only(true);
    let out = looking.run(Study::Calibration).unwrap();
    assert_eq!((out.cached_runs, out.missing_runs), (0, 2));
    let mut edited = runner(dir.path()).with_code_fingerprint("code-b");
    let out = edited.run(Study::Calibration).unwrap();
    assert_eq!((out.cached_runs, out.computed_runs), (0, 2));
    assert_eq!(edited.trained_models(), 2);
    // and the file now holds the new code's rows only
    let all = gmmseg::experiments::read_rows(&dir.path().join("calibration.csv")).unwrap();
    assert!(all.iter().all(|r| r.code == "code-b"));
    // this build's own fingerprint is the default
    assert_eq!(
        runner(dir.path()).code(),
        gmmseg::experiments::code_fingerprint()
    );
}

#[test]
fn shards_are_disjoint_and_merge_into_one_csv() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = runner(dir.path()).with_shard(Some(Shard::parse("1/2").unwrap()));
    let a = first.run(Study::Em).unwrap();
    let mut second = runner(dir.path()).with_shard(Some(Shard::parse("2/2").unwrap()));
    let b = second.run(Study::Em).unwrap();
    assert_eq!((a.computed_runs, b.computed_runs), (2, 2));
    let mut whole = runner(dir.path());
    let all = whole.run(Study::Em).unwrap();
    assert_eq!((all.cached_runs, all.computed_runs), (4, 0));
    assert_eq!(whole.trained_models(), 0);
    assert_eq!(variants(&all.runs), vec!["sinkhorn", "vanilla"]);
    // the em claims (Sinkhorn vs vanilla at 1 loop, …) are all decided
    assert!(
        all.claims.iter().all(|c| c.verdict.is_some()),
        "{:?}",
        all.claims
    );
    assert!(!dir.path().join("em.csv.lock").exists());
}

#[test]
fn bad_inputs_name_their_argument() {
    assert!(
        matches!(Study::parse("tables"), Err(GmmSegError::InvalidInput { what, .. }) if what == "study")
    );
    assert_eq!(Study::parse("main-results").unwrap(), Study::MainResults);
    for bad in ["0/2", "3/2", "1", "a/b", "1/0"] {
        assert!(
            matches!(Shard::parse(bad), Err(GmmSegError::InvalidInput { what, .. }) if what == "--shard"),
            "{bad}"
        );
    }
    let s = Shard::parse("2/3").unwrap();
    assert_eq!(
        (0..7).filter(|&i| s.contains(i)).collect::<Vec<_>>(),
        vec![1, 4]
    );
    assert!(ExperimentProfile::by_name("medium").is_err());
    type Edit = Box<dyn Fn(&mut ExperimentProfile)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("name", Box::new(|p| p.name = "../x".into())),
        ("image_size", Box::new(|p| p.image_size = 8)),
        ("split_len", Box::new(|p| p.split_len = Some(0))),
        ("seeds", Box::new(|p| p.seeds = 0)),
        ("posthoc_iterations", Box::new(|p| p.posthoc_iterations = 0)),
        ("components", Box::new(|p| p.components = vec![0])),
        ("em_loops", Box::new(|p| p.em_loops = vec![])),
        ("runtime_batches", Box::new(|p| p.runtime_batches = 0)),
        ("steps", Box::new(|p| p.train.steps = 0)),
    ];
    for (field, edit) in edits {
        let mut p = ExperimentProfile::tiny();
        edit(&mut p);
        match p.check() {
            Err(GmmSegError::InvalidConfig { field: got, .. }) => {
                assert!(got.contains(field), "{field} vs {got}")
            }
            other => panic!("{field}: expected InvalidConfig, got {other:?}"),
        }
    }
    for p in [ExperimentProfile::quick(), ExperimentProfile::full()] {
        p.check().unwrap();
    }
    // a dataset without an anomaly split cannot run the anomaly study
    let dir = tempfile::tempdir().unwrap();
    let r = ExperimentRunner::new(
        ExperimentProfile::tiny().check().unwrap(),
        "folder:/nonexistent",
    )
    .unwrap()
    .with_results_dir(dir.path());
    assert!(matches!(
        r.planned_runs(Study::Anomaly),
        Err(GmmSegError::InvalidInput { .. })
    ));
    // a corrupt cache CSV names the file
    std::fs::write(dir.path().join("em.csv"), "study,dataset\nx").unwrap();
    let mut r = runner(dir.path());
    match r.run(Study::Em) {
        Err(GmmSegError::File { path, .. }) => assert!(path.ends_with("em.csv")),
        other => panic!(
            "expected a File error, got {:?}",
            other.map(|o| o.computed_runs)
        ),
    }
}

#[test]
fn dataset_steps_override_only_its_dataset_and_is_validated() {
    let mut p = ExperimentProfile::tiny();
    p.dataset_steps = vec![("digitscenes".into(), 7)];
    let v = p.clone().check().unwrap();
    assert_eq!(v.train_for("digitscenes").steps, 7);
    assert_eq!(v.train_for("synthscapes").steps, p.train.steps);
    assert_eq!(
        ExperimentProfile::full()
            .check()
            .unwrap()
            .train_for("digitscenes")
            .steps,
        3000
    );
    p.dataset_steps = vec![("digitscenes".into(), 0)];
    let e = p.check().unwrap_err();
    assert!(e.to_string().contains("dataset_steps"), "{e}");
}

#[test]
fn cache_only_runners_skip_what_is_not_cached_and_train_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut r = runner(dir.path()).with_cache_only(true);
    let planned = r.planned_runs(Study::Runtime).unwrap().len();
    let out = r.run(Study::Runtime).unwrap();
    assert_eq!(
        (out.cached_runs, out.computed_runs, out.missing_runs),
        (0, 0, planned)
    );
    assert_eq!(out.runs.height(), 0);
    assert_eq!(r.trained_models(), 0);
    let mut filler = runner(dir.path());
    assert_eq!(filler.run(Study::Runtime).unwrap().computed_runs, planned);
    let out = runner(dir.path())
        .with_cache_only(true)
        .run(Study::Runtime)
        .unwrap();
    assert_eq!((out.cached_runs, out.missing_runs), (planned, 0));
    assert!(out.runs.height() > 0);
}

#[test]
fn a_study_result_shows_its_table_figures_and_claims() {
    let dir = tempfile::tempdir().unwrap();
    let settings = tiny_settings();
    let results = settings
        .run_in(Study::Calibration, Some(dir.path()))
        .unwrap();
    assert_eq!(results.len(), 1);
    let html = results.html().unwrap().0;
    assert!(html.contains("<table"), "a table");
    assert!(html.contains("<svg"), "figures");
    assert!(html.contains("temperature-scaled softmax ECE"), "claims");
    assert!(
        html.contains("not run") || html.contains("inconclusive"),
        "verdicts"
    );
    // it still behaves as the per-dataset results
    assert_eq!(results[0].study, Study::Calibration);
    assert_eq!((&results).into_iter().count(), 1);
}

#[test]
fn the_playground_compares_an_idea_with_the_studies_baseline_and_caches_it() {
    let dir = tempfile::tempdir().unwrap();
    let settings = tiny_settings();
    // the baseline is the studies' gmmseg model: a study run first caches it
    let mut r = runner(&dir.path().join("tiny"));
    r.run(Study::MainResults).unwrap();
    let mut idea = settings.idea("M = 2").unwrap();
    idea.config.head.gmm_mut().unwrap().online.gmm.components = 2;
    let changes = idea.changes(&settings).unwrap();
    assert_eq!(
        changes,
        vec![(
            "head.online.gmm.components".to_string(),
            "5".to_string(),
            "2".to_string()
        )]
    );
    let c = settings.try_idea_in(&idea, Some(dir.path())).unwrap();
    let seeds = ExperimentProfile::tiny().seeds;
    assert_eq!(c.records.len(), seeds);
    for (seed, base, mine) in &c.records {
        assert_eq!((base.config.seed, mine.config.seed), (*seed, *seed));
        assert_eq!(mine.config.head.components(), Some(2));
        assert_eq!(base.config.head.components(), Some(5));
    }
    let miou = c
        .metrics
        .iter()
        .find(|m| m.group == "val" && m.metric == "miou")
        .expect("an mIoU row");
    assert_eq!(miou.diffs.len(), seeds);
    let expected: f64 = c
        .records
        .iter()
        .map(|(_, b, i)| i.val.miou - b.val.miou)
        .sum::<f64>()
        / seeds as f64;
    assert!((miou.mean_diff - expected).abs() < 1e-12);
    assert!(!miou.timed_apart);
    let step = c
        .metrics
        .iter()
        .find(|m| m.metric == "step_ms")
        .expect("a step-time row");
    assert!(
        step.timed_apart,
        "timings of models trained apart are not decided"
    );
    assert_eq!(step.verdict_text(), "not decided: timed apart");
    let html = c.html().unwrap().0;
    assert!(
        html.contains("head.online.gmm.components"),
        "the change is shown"
    );
    assert!(html.contains("<svg"), "figures");
    assert!(c.text().contains("idea `M = 2`"));
    assert_eq!(c.frame().unwrap().height(), c.metrics.len());
    // the baseline came from the studies' cache, the idea's models are cached apart
    assert!(dir.path().join("playground/tiny/models").is_dir());
    let again = settings.try_idea_in(&idea, Some(dir.path())).unwrap();
    assert_eq!(
        again.metrics, c.metrics,
        "a rerun reads both sides from the caches"
    );
}

#[test]
fn the_playground_names_a_bad_field_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let settings = tiny_settings();
    let mut idea = settings.idea("no components").unwrap();
    idea.config.head.gmm_mut().unwrap().online.gmm.components = 0;
    let e = settings.try_idea_in(&idea, Some(dir.path())).unwrap_err();
    assert!(e.to_string().contains("head.online.gmm.components"), "{e}");
    assert!(!dir.path().join("playground").exists(), "nothing trained");
    let mut unnamed = settings.idea(" ").unwrap();
    unnamed.config.head.gmm_mut().unwrap().online.gmm.components = 3;
    let e = settings
        .try_idea_in(&unnamed, Some(dir.path()))
        .unwrap_err();
    assert!(e.to_string().contains("idea.name"), "{e}");
}

#[test]
fn notebook_training_steps_come_from_the_environment_knob() {
    use gmmseg::train::config::HeadKind;
    let mut settings = tiny_settings();
    let profile = ExperimentProfile::tiny().check().unwrap();
    let plain = settings
        .train_config("synthscapes", HeadKind::Gmmseg)
        .unwrap();
    assert_eq!(plain.steps, profile.train_for("synthscapes").steps);
    assert_eq!(plain.head.kind(), HeadKind::Gmmseg);
    settings.train_steps = Some(3);
    let short = settings
        .train_config("synthscapes", HeadKind::Softmax)
        .unwrap();
    assert_eq!((short.steps, short.head.kind()), (3, HeadKind::Softmax));
}
