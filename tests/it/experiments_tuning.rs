//! The tuning study (`gmmseg ablate tuning`): it never opens a validation or anomaly split,
//! resumes from its files, scores the same with any `--jobs`, and the presets the profiles
//! carry are exactly what its committed `chosen.json` files say.

use std::path::Path;
use std::process::Command;

use gmmseg::experiments::tuning::{run_tuning, TunedPresets, TuningOptions, TUNED_HEADS};
use gmmseg::experiments::{open_split, specs_for, ExperimentProfile, Study};
use gmmseg::train::config::HeadKind;
use image::{GrayImage, Luma, Rgb, RgbImage};

/// A folder dataset with a `train/` split only: no `val/`, no `anomaly/`, no `tune/` (the
/// tune split is then held out of `train/`). Two classes: a red left half, a blue right one.
fn train_only_folder(root: &Path) {
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(root.join("train").join(sub)).unwrap();
    }
    for i in 0..8u32 {
        let split = 8 + 2 * i;
        let img = RgbImage::from_fn(32, 32, |x, _| {
            if x < split {
                Rgb([200, 10 * i as u8, 0])
            } else {
                Rgb([0, 10 * i as u8, 200])
            }
        });
        img.save(root.join("train/images").join(format!("{i}.png")))
            .unwrap();
        GrayImage::from_fn(32, 32, |x, _| Luma([u8::from(x >= split)]))
            .save(root.join("train/labels").join(format!("{i}.png")))
            .unwrap();
    }
    std::fs::write(root.join("classes.txt"), "left\nright\n").unwrap();
}

#[test]
fn tuning_opens_only_train_and_tune_and_resumes_from_its_files() {
    let data = tempfile::tempdir().unwrap();
    train_only_folder(data.path());
    let spec = format!("folder:{}", data.path().display());
    let profile = ExperimentProfile::tiny().check().unwrap();
    // the splits the study must not touch do not exist: opening one fails
    for split in ["val", "anomaly"] {
        assert!(open_split(profile.get(), &spec, split).is_err(), "{split}");
    }
    let out = tempfile::tempdir().unwrap();
    let opts = TuningOptions::new(out.path());
    let mut seen = 0;
    let first = run_tuning(&profile, &spec, &opts, &mut |_, _| seen += 1).unwrap();
    let trials = 2 * profile.get().tuning_trials;
    assert_eq!((first.trained, first.cached, seen), (trials, 0, trials));
    assert_eq!(first.trials.len(), trials);
    let chosen = first.chosen.expect("both heads complete");
    assert_eq!(chosen.heads.len(), TUNED_HEADS.len());
    for f in [
        "search_space.json",
        "trials.csv",
        "chosen.json",
        "chosen.md",
    ] {
        assert!(out.path().join(f).is_file(), "{f}");
    }
    let csv = std::fs::read_to_string(out.path().join("trials.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + trials, "{csv}");
    assert!(csv.starts_with(
        "dataset,head,trial,seed,lr,weight_decay,momentum,var_reg,warm_start,tune_miou"
    ));
    // trial 0 of each head is the untuned default
    for head in TUNED_HEADS {
        let t0 = first
            .trials
            .iter()
            .find(|r| r.head == head && r.trial == 0)
            .unwrap();
        let base = profile.train_for(&spec);
        assert_eq!(
            t0.values,
            gmmseg::experiments::tuning::TrialValues::default_of(head, &base)
        );
    }
    // a second call trains nothing and chooses the same
    let again = run_tuning(&profile, &spec, &opts, &mut |_, _| {}).unwrap();
    assert_eq!((again.trained, again.cached), (0, trials));
    assert_eq!(again.chosen.unwrap().heads, chosen.heads);
    // two jobs score every trial exactly as one job did
    let two = tempfile::tempdir().unwrap();
    let parallel = run_tuning(
        &profile,
        &spec,
        &TuningOptions {
            jobs: 2,
            ..TuningOptions::new(two.path())
        },
        &mut |_, _| {},
    )
    .unwrap();
    let scores = |v: &[gmmseg::experiments::tuning::TrialRecord]| -> Vec<(String, f64, f64)> {
        v.iter()
            .map(|r| (r.key.clone(), r.tune_miou, r.tune_nll))
            .collect()
    };
    assert_eq!(scores(&parallel.trials), scores(&first.trials));
}

#[test]
fn tuned_values_reach_softmax_and_gmmseg_runs_and_a_study_edit_wins() {
    let mut p = ExperimentProfile::tiny();
    let base = p.train.clone();
    let mut tuned = TunedPresets {
        softmax: gmmseg::experiments::tuning::TrialValues::default_of(HeadKind::Softmax, &base),
        gmmseg: gmmseg::experiments::tuning::TrialValues::default_of(HeadKind::Gmmseg, &base),
    };
    tuned.softmax.lr = 1.5e-3;
    tuned.gmmseg.lr = 3e-3;
    tuned.gmmseg.momentum = Some(0.95);
    tuned.gmmseg.var_reg = Some(0.5);
    p.tuned = Some(tuned);
    let profile = p.check().unwrap();
    let run = |study, name: &str| {
        let spec = specs_for(study, &profile, "synthscapes")
            .unwrap()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name}"));
        spec.train_config(&profile, "synthscapes", 0).unwrap()
    };
    let softmax = run(Study::Calibration, "softmax");
    assert_eq!(softmax.optim.lr, 1.5e-3);
    let g = run(Study::Calibration, "gmmseg");
    assert_eq!(g.optim.lr, 3e-3);
    let gmm = &g.head.gmm().unwrap().online.gmm;
    assert_eq!((gmm.mean_momentum, gmm.var_reg), (0.95, 0.5));
    // the flavours study's τ = 0.999 spec edits τ over the tuned value
    let tau = run(Study::Flavours, "paper, tau=0.999");
    assert_eq!(tau.head.gmm().unwrap().online.gmm.mean_momentum, 0.999);
    assert_eq!(tau.head.gmm().unwrap().online.gmm.var_reg, 0.5);
    // heads that were not tuned keep the base optimiser
    let disc = run(Study::GenVsDisc, "disc-gmm");
    assert_eq!(disc.optim.lr, base.optim.lr);
    // a tuned value the head cannot take is refused when the profile is checked
    let mut bad = ExperimentProfile::tiny();
    let mut t = bad.tuned.clone().unwrap_or(TunedPresets {
        softmax: gmmseg::experiments::tuning::TrialValues::default_of(HeadKind::Softmax, &base),
        gmmseg: gmmseg::experiments::tuning::TrialValues::default_of(HeadKind::Gmmseg, &base),
    });
    t.gmmseg.momentum = Some(1.5);
    bad.tuned = Some(t);
    let e = bad.check().unwrap_err().to_string();
    assert!(e.contains("tuned"), "{e}");
}

/// The presets each profile carries are the values of its committed `chosen.json`, and a
/// profile without that file carries none.
#[test]
fn profile_presets_equal_the_committed_choice() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/results");
    for name in ["tiny", "quick", "full"] {
        let p = ExperimentProfile::by_name(name).unwrap();
        let file = root.join(name).join("tuning/chosen.json");
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let c: gmmseg::experiments::tuning::Chosen = serde_json::from_str(&text).unwrap();
                let value =
                    |h: HeadKind| c.heads.iter().find(|x| x.head == h).unwrap().values.clone();
                let tuned = p.tuned.unwrap_or_else(|| panic!("{name} has {file:?}"));
                assert_eq!(tuned.softmax, value(HeadKind::Softmax), "{name}");
                assert_eq!(tuned.gmmseg, value(HeadKind::Gmmseg), "{name}");
            }
            Err(_) => assert!(p.tuned.is_none(), "{name}: presets without {file:?}"),
        }
    }
}

#[test]
fn ablate_tuning_refuses_a_shard_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_gmmseg"))
        .args(["ablate", "tuning", "--profile", "tiny", "--shard", "1/2"])
        .env("GMMSEG_RESULTS_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--shard"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(!dir.path().join("tiny/tuning").exists());
}

/// The notebooks' view of the committed quick search: the choice table, the trial figure
/// with the chosen trials circled, and a sentence (not an error) for a profile never tuned.
#[test]
fn the_tuning_view_shows_the_committed_search_and_names_an_untuned_profile() {
    use gmmseg::experiments::report::tuning_view;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/results/quick/tuning");
    let html = tuning_view(&dir, "quick").unwrap().0;
    assert!(html.contains("Presets of the quick profile"), "{html}");
    assert!(html.contains("<svg"), "no figure");
    assert!(html.contains("chosen"), "no highlight legend");
    let none = tempfile::tempdir().unwrap();
    let html = tuning_view(none.path(), "tiny").unwrap().0;
    assert!(html.contains("has not been tuned"), "{html}");
    // a corrupt choice file is an error naming it
    std::fs::write(none.path().join("chosen.json"), "{").unwrap();
    let e = tuning_view(none.path(), "tiny").unwrap_err().to_string();
    assert!(e.contains("chosen.json"), "{e}");
}
