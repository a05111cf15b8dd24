//! The `tune` split, where hyperparameters are chosen: its images are disjoint from every
//! other split's, in all three dataset kinds.

use std::collections::HashSet;
use std::path::Path;

use gmmseg::data::folder::{FolderDataset, LabelMapping};
use gmmseg::data::{open_dataset, Dataset, DatasetOptions};
use image::{GrayImage, Luma, Rgb, RgbImage};
use sha2::{Digest, Sha256};

/// SHA-256 of each image's pixels.
fn image_hashes(ds: &dyn Dataset, n: usize) -> HashSet<Vec<u8>> {
    (0..n.min(ds.len()))
        .map(|i| {
            let s = ds.get(i).unwrap();
            let bytes: Vec<u8> = s.image.iter().flat_map(|v| v.to_le_bytes()).collect();
            Sha256::digest(&bytes).to_vec()
        })
        .collect()
}

fn open(spec: &str, split: &str) -> Box<dyn Dataset> {
    let opts = DatasetOptions {
        size: Some(32),
        ..DatasetOptions::default()
    };
    open_dataset(spec, split, &opts).unwrap()
}

#[test]
fn synthscapes_tune_scenes_are_disjoint_from_every_split() {
    let tune = image_hashes(open("synthscapes", "tune").as_ref(), 200);
    assert_eq!(tune.len(), 200, "tune scenes repeat");
    for split in ["train", "val", "anomaly", "anomaly-context"] {
        let other = image_hashes(open("synthscapes", split).as_ref(), 300);
        assert!(
            tune.is_disjoint(&other),
            "tune shares an image with {split}"
        );
    }
}

#[test]
fn digitscenes_tune_digits_and_canvases_are_disjoint() {
    use gmmseg::data::digitscenes::{DigitScenes, DigitScenesConfig, DigitSplit};
    let cfg = || DigitScenesConfig::default().check().unwrap();
    let pool = |s| DigitScenes::open(cfg(), s).unwrap().digit_pool();
    let (train, tune, test) = (
        pool(DigitSplit::Train),
        pool(DigitSplit::Tune),
        pool(DigitSplit::Test),
    );
    assert!(
        train.end <= tune.start && tune.end <= test.start,
        "{train:?} {tune:?} {test:?}"
    );
    assert_eq!(pool(DigitSplit::Anomaly), test);
    // every digit drawn on a tune canvas comes from the tune pool
    let t = DigitScenes::open(cfg(), DigitSplit::Tune).unwrap();
    for i in 0..100 {
        assert!(t.digits_on(i).iter().all(|g| tune.contains(g)));
    }
    let tune_images = image_hashes(open("digitscenes", "tune").as_ref(), 200);
    for split in ["train", "test", "anomaly"] {
        let other = image_hashes(open("digitscenes", split).as_ref(), 300);
        assert!(
            tune_images.is_disjoint(&other),
            "tune shares an image with {split}"
        );
    }
}

fn write_images(root: &Path, split: &str, n: usize) {
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(root.join(split).join(sub)).unwrap();
    }
    for i in 0..n {
        let img = RgbImage::from_fn(4, 4, |x, y| Rgb([(x * 20) as u8, (y * 20) as u8, i as u8]));
        img.save(
            root.join(split)
                .join("images")
                .join(format!("{split}{i}.png")),
        )
        .unwrap();
        let l = GrayImage::from_fn(4, 4, |x, _| Luma([(x % 2) as u8]));
        l.save(
            root.join(split)
                .join("labels")
                .join(format!("{split}{i}.png")),
        )
        .unwrap();
    }
}

fn stems(ds: &FolderDataset) -> HashSet<String> {
    ds.items().iter().map(|i| i.stem.clone()).collect()
}

#[test]
fn folder_holds_out_a_fixed_tenth_of_train_or_uses_its_own_tune_folder() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("classes.txt"), "a\nb\n").unwrap();
    write_images(root, "train", 25);
    write_images(root, "val", 3);
    let train = FolderDataset::open(root, "train", LabelMapping::Identity).unwrap();
    let tune = FolderDataset::open(root, "tune", LabelMapping::Identity).unwrap();
    // ⌈10% of 25⌉ = 3 held out, and train leaves them out
    assert_eq!((train.len(), tune.len()), (22, 3));
    assert!(stems(&train).is_disjoint(&stems(&tune)));
    assert_eq!(stems(&train).union(&stems(&tune)).count(), 25);
    // the slice is fixed: the same on every open
    let again = FolderDataset::open(root, "tune", LabelMapping::Identity).unwrap();
    assert_eq!(stems(&again), stems(&tune));
    let val = FolderDataset::open(root, "val", LabelMapping::Identity).unwrap();
    assert!(stems(&val).is_disjoint(&stems(&tune)));
    // an own tune/ folder is used as it is, and train keeps all its images
    write_images(root, "tune", 4);
    let tune = FolderDataset::open(root, "tune", LabelMapping::Identity).unwrap();
    let train = FolderDataset::open(root, "train", LabelMapping::Identity).unwrap();
    assert_eq!((train.len(), tune.len()), (25, 4));
    assert!(stems(&tune).iter().all(|s| s.starts_with("tune")));
}

#[test]
fn a_single_training_image_cannot_hold_out_a_tune_split() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("classes.txt"), "a\nb\n").unwrap();
    write_images(dir.path(), "train", 1);
    let err = FolderDataset::open(dir.path(), "tune", LabelMapping::Identity).unwrap_err();
    assert!(err.to_string().contains("tune"), "{err}");
    // train itself still opens with its one image
    let train = FolderDataset::open(dir.path(), "train", LabelMapping::Identity).unwrap();
    assert_eq!(train.len(), 1);
}
