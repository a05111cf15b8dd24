//! The training and evaluation loaders: shapes, determinism, normalisation, augmentation
//! bounds, class-balanced sampling and the dfdx tensor conversion.

use std::sync::Arc;

use dfdx::prelude::*;
use gmmseg::data::synthscapes::classes;
use gmmseg::data::{
    open_dataset, Dataset, DatasetOptions, EvalLoader, Loader, LoaderConfig, IGNORE_LABEL,
};

fn synth(split: &str, len: usize) -> Arc<dyn Dataset> {
    let opts = DatasetOptions {
        len: Some(len),
        ..Default::default()
    };
    open_dataset("synthscapes", split, &opts).unwrap().into()
}

#[test]
fn batches_have_the_contract_shapes_and_are_deterministic() {
    let ds = synth("train", 64);
    let cfg = LoaderConfig::default().check().unwrap();
    let a = Loader::new(ds.clone(), cfg.clone()).unwrap();
    let b = Loader::new(ds.clone(), cfg).unwrap();
    let (x, y) = (a.batch(5).unwrap(), b.batch(5).unwrap());
    assert_eq!(x, y);
    assert_eq!(x.images.dim(), (8, 3, 64, 64));
    assert_eq!(x.labels.dim(), (8, 64, 64));
    assert!(x.anomaly.is_none());
    assert_ne!(a.batch(5).unwrap(), a.batch(6).unwrap());
    assert!(x
        .labels
        .iter()
        .all(|&l| (l as usize) < 8 || l == IGNORE_LABEL));
    // Parallel and sequential construction agree.
    let seq = LoaderConfig {
        parallel: false,
        ..Default::default()
    };
    let c = Loader::new(ds.clone(), seq.check().unwrap()).unwrap();
    assert_eq!(c.batch(5).unwrap(), x);
    // A different seed gives different batches.
    let other = LoaderConfig {
        seed: 1,
        ..Default::default()
    };
    let d = Loader::new(ds, other.check().unwrap()).unwrap();
    assert_ne!(d.batch(5).unwrap(), x);
}

#[test]
fn without_augmentation_batches_are_the_normalised_samples() {
    let ds = synth("val", 16);
    let cfg = LoaderConfig {
        augment: false,
        batch_size: 4,
        ..Default::default()
    }
    .check()
    .unwrap();
    let l = Loader::new(ds.clone(), cfg.clone()).unwrap();
    let idx = l.batch_indices(2);
    let b = l.batch(2).unwrap();
    for (k, &i) in idx.iter().enumerate() {
        let s = ds.get(i).unwrap();
        assert_eq!(b.labels.index_axis(ndarray::Axis(0), k), s.label);
        for c in 0..3 {
            let got = b.images[(k, c, 10, 20)];
            let want = (s.image[(c, 10, 20)] - cfg.mean[c]) / cfg.std[c];
            assert!((got - want).abs() < 1e-6);
        }
    }
}

#[test]
fn augmentation_keeps_labels_consistent_and_crops_pad_with_ignore() {
    let ds = synth("train", 32);
    let cfg = LoaderConfig {
        crop: Some((48, 80)),
        scale_range: (0.5, 1.0),
        ..Default::default()
    }
    .check()
    .unwrap();
    let l = Loader::new(ds, cfg).unwrap();
    let mut ignored = 0;
    for step in 0..4 {
        let b = l.batch(step).unwrap();
        assert_eq!(b.images.dim(), (8, 3, 48, 80));
        ignored += b.labels.iter().filter(|&&v| v == IGNORE_LABEL).count();
        assert!(b.images.iter().all(|v| v.is_finite()));
        // Sky stays above road in (almost) every column: geometry survives the transform.
        for k in 0..8 {
            let lab = b.labels.index_axis(ndarray::Axis(0), k);
            let (mut ok, mut n) = (0, 0);
            for x in 0..80 {
                let col: Vec<u8> = (0..48).map(|y| lab[(y, x)]).collect();
                let sky = col.iter().position(|&v| v == classes::SKY);
                let road = col.iter().position(|&v| v == classes::ROAD);
                if let (Some(s), Some(r)) = (sky, road) {
                    n += 1;
                    ok += (s < r) as usize;
                }
            }
            assert!(
                ok == n,
                "step {step} item {k}: sky below road in {} columns",
                n - ok
            );
        }
    }
    // The 80-wide crop exceeds every scaled 64-wide image: padding is ignore.
    assert!(ignored > 0);
}

#[test]
fn class_balanced_sampling_favours_images_with_rare_classes() {
    let ds = synth("train", 200);
    let base = Loader::new(ds.clone(), LoaderConfig::default().check().unwrap()).unwrap();
    let bal_cfg = LoaderConfig {
        class_balanced: true,
        ..Default::default()
    };
    let bal = Loader::new(ds.clone(), bal_cfg.check().unwrap()).unwrap();
    // Images containing the rarest class in the split.
    let with_class: Vec<Vec<bool>> = (0..200)
        .map(|i| {
            let s = ds.get(i).unwrap();
            (0..8u8).map(|c| s.label.iter().any(|&l| l == c)).collect()
        })
        .collect();
    let rarest = (0..8)
        .min_by_key(|&c| with_class.iter().filter(|p| p[c]).count())
        .unwrap();
    let share = |l: &Loader| {
        let idx: Vec<usize> = (0..100).flat_map(|s| l.batch_indices(s)).collect();
        idx.iter().filter(|&&i| with_class[i][rarest]).count() as f64 / idx.len() as f64
    };
    let (sb, sl) = (share(&base), share(&bal));
    assert!(
        sl > sb,
        "balanced {sl:.3} vs shuffled {sb:.3} for class {rarest}"
    );
    assert_eq!(bal.batch_indices(3), bal.batch_indices(3));
}

#[test]
fn eval_loader_visits_every_sample_in_order() {
    let ds = synth("anomaly", 11);
    let cfg = LoaderConfig {
        batch_size: 4,
        ..Default::default()
    }
    .check()
    .unwrap();
    let ev = EvalLoader::new(ds.clone(), &cfg);
    assert_eq!(ev.num_batches(), 3);
    let batches: Vec<_> = ev.iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        batches.iter().map(|b| b.len()).collect::<Vec<_>>(),
        vec![4, 4, 3]
    );
    for (j, b) in batches.iter().enumerate() {
        let a = b.anomaly.as_ref().expect("anomaly split");
        for k in 0..b.len() {
            let s = ds.get(4 * j + k).unwrap();
            assert_eq!(b.labels.index_axis(ndarray::Axis(0), k), s.label);
            assert_eq!(a.index_axis(ndarray::Axis(0), k), s.anomaly.unwrap());
        }
    }
    assert!(ev.batch(3).is_err());
}

#[test]
fn images_convert_to_a_dfdx_tensor() {
    let ds = synth("val", 4);
    let cfg = LoaderConfig {
        batch_size: 2,
        ..Default::default()
    }
    .check()
    .unwrap();
    let b = EvalLoader::new(ds, &cfg).batch(0).unwrap();
    let dev: Cpu = Default::default();
    let t = b.images_tensor(&dev);
    assert_eq!(t.shape(), &(2, Const::<3>, 64, 64));
    let v = t.as_vec();
    assert_eq!(v.len(), 2 * 3 * 64 * 64);
    assert_eq!(v[3 * 64 * 64 + 64 + 5], b.images[(1, 0, 1, 5)]);
    assert_eq!(b.labels_usize().len(), 2 * 64 * 64);
}

#[test]
fn invalid_loader_fields_are_named() {
    let cases: Vec<(LoaderConfig, &str)> = vec![
        (
            LoaderConfig {
                batch_size: 0,
                ..Default::default()
            },
            "batch_size",
        ),
        (
            LoaderConfig {
                crop: Some((0, 4)),
                ..Default::default()
            },
            "crop",
        ),
        (
            LoaderConfig {
                scale_range: (2.0, 1.0),
                ..Default::default()
            },
            "scale_range",
        ),
        (
            LoaderConfig {
                jitter: 0.9,
                ..Default::default()
            },
            "jitter",
        ),
        (
            LoaderConfig {
                mean: [f32::NAN, 0.0, 0.0],
                ..Default::default()
            },
            "mean",
        ),
        (
            LoaderConfig {
                std: [1.0, 0.0, 1.0],
                ..Default::default()
            },
            "std",
        ),
    ];
    for (cfg, field) in cases {
        let err = cfg.check().unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
}

#[test]
fn open_dataset_rejects_bad_specs_with_a_hint() {
    let o = DatasetOptions::default();
    for (spec, split, needle) in [
        ("nope", "train", "unknown dataset"),
        ("synthscapes", "bogus", "split"),
        ("folder:", "train", "folder"),
        ("digitscenes", "bogus", "split"),
    ] {
        let err = open_dataset(spec, split, &o)
            .err()
            .expect("must fail")
            .to_string();
        assert!(err.contains(needle), "{spec}/{split}: {err}");
    }
    let d = open_dataset("digitscenes", "test", &o).unwrap();
    assert_eq!(d.name(), "digitscenes/test");
}

/// A user dataset with a broken sample: labels smaller than the image.
struct Broken;

impl Dataset for Broken {
    fn len(&self) -> usize {
        2
    }
    fn get(&self, i: usize) -> gmmseg::Result<gmmseg::data::Sample> {
        let h = if i == 0 { 8 } else { 7 };
        Ok(gmmseg::data::Sample {
            image: ndarray::Array3::zeros((3, 8, 8)),
            label: ndarray::Array2::zeros((h, 8)),
            anomaly: None,
        })
    }
    fn num_classes(&self) -> usize {
        2
    }
    fn class_names(&self) -> Vec<String> {
        vec!["a".into(), "b".into()]
    }
    fn name(&self) -> String {
        "broken".into()
    }
}

#[test]
fn malformed_samples_are_errors_not_panics() {
    let cfg = LoaderConfig {
        batch_size: 2,
        ..Default::default()
    }
    .check()
    .unwrap();
    let l = Loader::new(Arc::new(Broken) as Arc<dyn Dataset>, cfg.clone()).unwrap();
    let err = l.batch(0).unwrap_err().to_string();
    assert!(err.contains("broken sample 1"), "{err}");
    let ev = EvalLoader::new(Arc::new(Broken) as Arc<dyn Dataset>, &cfg);
    assert!(ev.batch(0).is_err());
    let preview = gmmseg::data::preview::preview_grid(&Broken, &Default::default());
    assert!(preview.is_err());
    assert!(gmmseg::data::stats::class_stats(&Broken, None).is_err());
}
