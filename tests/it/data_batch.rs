//! The one data pipeline (`gmmseg::data::batch`): batch shapes, determinism per (seed, step),
//! the normalisation, flips of image and labels together, class-balanced sampling, the
//! anomaly-mask rule and malformed samples as errors.

use std::sync::Arc;

use gmmseg::data::batch::{denormalise, make_batch, MEAN, STD};
use gmmseg::data::{open_dataset, Dataset, DatasetOptions, Sampler, SamplerKind, IGNORE_LABEL};

fn synth(split: &str, len: usize) -> Arc<dyn Dataset> {
    let opts = DatasetOptions {
        len: Some(len),
        ..Default::default()
    };
    open_dataset("synthscapes", split, &opts).unwrap().into()
}

fn batch_at(ds: &dyn Dataset, kind: SamplerKind, seed: u64, step: usize) -> gmmseg::data::Batch {
    let sampler = Sampler::new(ds, kind, 8, seed, true).unwrap();
    make_batch(ds, &sampler.plan(step).unwrap()).unwrap()
}

#[test]
fn batches_have_the_contract_shapes_and_are_deterministic() {
    let ds = synth("train", 64);
    let x = batch_at(&*ds, SamplerKind::Shuffle, 0, 5);
    assert_eq!(x, batch_at(&*ds, SamplerKind::Shuffle, 0, 5));
    assert_eq!(x.images.dim(), (8, 3, 64, 64));
    assert_eq!((x.len(), x.hw()), (8, (64, 64)));
    assert_eq!(x.labels.dim(), (8, 64, 64));
    assert!(x.anomaly.is_none());
    assert!(x.images.iter().all(|v| v.is_finite()));
    assert!(x
        .labels
        .iter()
        .all(|&l| (l as usize) < ds.num_classes() || l == IGNORE_LABEL));
    assert_ne!(x, batch_at(&*ds, SamplerKind::Shuffle, 0, 6));
    assert_ne!(x, batch_at(&*ds, SamplerKind::Shuffle, 1, 5));
}

#[test]
fn batches_are_the_normalised_samples_flipped_with_their_labels() {
    let ds = synth("val", 16);
    let plan = [(3, false), (7, true)];
    let b = make_batch(&*ds, &plan).unwrap();
    let (_, _, h, w) = b.images.dim();
    for (k, &(i, flip)) in plan.iter().enumerate() {
        let s = ds.get(i).unwrap();
        for (y, x) in [(10, 20), (0, 0), (h - 1, 5)] {
            let sx = if flip { w - 1 - x } else { x };
            assert_eq!(b.labels[(k, y, x)], s.label[(y, sx)]);
            for c in 0..3 {
                let want = (s.image[(c, y, sx)] - MEAN[c]) / STD[c];
                assert!((b.images[(k, c, y, x)] - want).abs() < 1e-6);
                assert!(
                    (denormalise(b.images[(k, c, y, x)], c) - s.image[(c, y, sx)]).abs() < 1e-6
                );
            }
        }
    }
}

#[test]
fn class_balanced_sampling_favours_images_with_rare_classes() {
    let ds = synth("train", 200);
    let with_class: Vec<Vec<bool>> = (0..200)
        .map(|i| {
            let s = ds.get(i).unwrap();
            (0..8u8).map(|c| s.label.iter().any(|&l| l == c)).collect()
        })
        .collect();
    let rarest = (0..8)
        .min_by_key(|&c| with_class.iter().filter(|p| p[c]).count())
        .unwrap();
    let share = |kind| {
        let sampler = Sampler::new(&*ds, kind, 8, 0, false).unwrap();
        let idx: Vec<usize> = (0..100)
            .flat_map(|t| sampler.plan(t).unwrap())
            .map(|p| p.0)
            .collect();
        idx.iter().filter(|&&i| with_class[i][rarest]).count() as f64 / idx.len() as f64
    };
    let (shuffled, balanced) = (
        share(SamplerKind::Shuffle),
        share(SamplerKind::ClassBalanced),
    );
    assert!(
        balanced > shuffled,
        "balanced {balanced:.3} vs shuffled {shuffled:.3} for class {rarest}"
    );
}

#[test]
fn anomaly_masks_travel_only_when_every_sample_has_one() {
    let anomaly = synth("anomaly", 6);
    let b = make_batch(&*anomaly, &[(0, false), (4, true)]).unwrap();
    let masks = b.anomaly.as_ref().expect("anomaly split");
    let s = anomaly.get(4).unwrap().anomaly.unwrap();
    let w = s.dim().1;
    assert_eq!(masks[(1, 3, 0)], s[(3, w - 1)]);
    // a batch mixing in-distribution and anomaly images drops the masks
    struct Mixed(Arc<dyn Dataset>, Arc<dyn Dataset>);
    impl Dataset for Mixed {
        fn len(&self) -> usize {
            2
        }
        fn get(&self, i: usize) -> gmmseg::Result<gmmseg::data::Sample> {
            if i == 0 {
                self.0.get(0)
            } else {
                self.1.get(0)
            }
        }
        fn num_classes(&self) -> usize {
            self.0.num_classes()
        }
        fn class_names(&self) -> Vec<String> {
            self.0.class_names()
        }
        fn name(&self) -> String {
            "mixed".into()
        }
    }
    let mixed = Mixed(synth("val", 2), anomaly);
    assert!(make_batch(&mixed, &[(0, false), (1, false)])
        .unwrap()
        .anomaly
        .is_none());
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

/// A user dataset with broken samples: labels (sample 1) or anomaly mask (sample 2) smaller
/// than the image.
struct Broken;

impl Dataset for Broken {
    fn len(&self) -> usize {
        3
    }
    fn get(&self, i: usize) -> gmmseg::Result<gmmseg::data::Sample> {
        let h = if i == 1 { 7 } else { 8 };
        Ok(gmmseg::data::Sample {
            image: ndarray::Array3::zeros((3, 8, 8)),
            label: ndarray::Array2::zeros((h, 8)),
            anomaly: Some(ndarray::Array2::zeros((if i == 2 { 6 } else { 8 }, 8))),
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
    let err = make_batch(&Broken, &[(0, false), (1, false)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("broken"), "{err}");
    let err = make_batch(&Broken, &[(0, false), (2, true)])
        .unwrap_err()
        .to_string();
    assert!(err.contains("anomaly mask"), "{err}");
    assert!(make_batch(&Broken, &[]).is_err());
    let preview = gmmseg::data::preview::preview_grid(&Broken, &Default::default());
    assert!(preview.is_err());
    assert!(gmmseg::data::stats::class_stats(&Broken, None).is_err());
}
