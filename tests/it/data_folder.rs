//! The folder format on fixtures written here: Cityscapes-style and ADE20K-style label
//! files, export round trips, and errors (missing, mismatched, corrupt files) that name the
//! file and never panic.

use std::path::Path;

use gmmseg::data::folder::{FolderDataset, FolderWriter, LabelMapping};
use gmmseg::data::{
    open_dataset, Dataset, DatasetOptions, SynthScapes, SynthScapesConfig, SynthSplit,
};
use gmmseg::GmmSegError;
use image::{GrayImage, Luma, Rgb, RgbImage};

fn write_split(root: &Path, split: &str, labels: &[Vec<u8>], w: u32, h: u32, jpg: bool) {
    for sub in ["images", "labels"] {
        std::fs::create_dir_all(root.join(split).join(sub)).unwrap();
    }
    for (i, lab) in labels.iter().enumerate() {
        let img = RgbImage::from_fn(w, h, |x, y| {
            Rgb([(x * 20) as u8, (y * 20) as u8, i as u8 * 40])
        });
        let ext = if jpg { "jpg" } else { "png" };
        img.save(
            root.join(split)
                .join("images")
                .join(format!("img{i}.{ext}")),
        )
        .unwrap();
        let l = GrayImage::from_fn(w, h, |x, y| Luma([lab[(y * w + x) as usize]]));
        l.save(root.join(split).join("labels").join(format!("img{i}.png")))
            .unwrap();
    }
}

#[test]
fn cityscapes_label_ids_become_train_ids() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let names: Vec<String> = gmmseg::data::folder::CITYSCAPES_CLASSES
        .iter()
        .map(|s| s.to_string())
        .collect();
    std::fs::write(root.join("classes.txt"), names.join("\n") + "\n").unwrap();
    // labelIds: 7 road, 8 sidewalk, 26 car, 0 unlabelled, 33 bicycle, 4 static.
    let ids = [7u8, 8, 26, 0, 33, 4];
    let lab: Vec<u8> = (0..12).map(|i| ids[i % ids.len()]).collect();
    write_split(root, "val", &[lab.clone(), lab], 4, 3, false);
    let ds = open_dataset(
        &format!("cityscapes:{}", root.display()),
        "val",
        &DatasetOptions::default(),
    )
    .unwrap();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds.num_classes(), 19);
    let s = ds.get(0).unwrap();
    assert_eq!(s.image.dim(), (3, 3, 4));
    let got: Vec<u8> = s.label.iter().copied().collect();
    let want = [0u8, 1, 13, 255, 18, 255];
    let want: Vec<u8> = (0..12).map(|i| want[i % 6]).collect();
    assert_eq!(got, want);
    assert!(s.anomaly.is_none());
    // The image is read as RGB in [0, 1].
    assert!((s.image[(0, 0, 1)] - 20.0 / 255.0).abs() < 1e-6);
    // Without the mapping, label 26 is out of range for 19 classes: a typed error.
    let raw = FolderDataset::open(root, "val", LabelMapping::Identity).unwrap();
    assert!(matches!(
        raw.get(0),
        Err(GmmSegError::LabelOutOfRange { label: 26, .. })
    ));
}

#[test]
fn ade20k_zero_label_is_reduced_and_jpg_images_load() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("classes.txt"), "wall\nbuilding\nsky\n").unwrap();
    let lab: Vec<u8> = vec![0, 1, 2, 3, 1, 0];
    write_split(root, "training", &[lab], 3, 2, true);
    let ds = open_dataset(
        &format!("ade20k:{}", root.display()),
        "training",
        &DatasetOptions::default(),
    )
    .unwrap();
    let s = ds.get(0).unwrap();
    assert_eq!(
        s.label.iter().copied().collect::<Vec<_>>(),
        vec![255, 0, 1, 2, 0, 255]
    );
    assert_eq!(ds.class_names(), vec!["wall", "building", "sky"]);
}

#[test]
fn missing_and_mismatched_files_are_named() {
    // (on `val`: `train` of a folder without `tune/` holds a tenth of its images out)
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let lab = vec![0u8; 4];
    // No classes.txt.
    write_split(root, "val", &[lab.clone(), lab.clone()], 2, 2, false);
    let err = FolderDataset::open(root, "val", LabelMapping::Identity).unwrap_err();
    assert!(err.to_string().contains("classes.txt"), "{err}");
    std::fs::write(root.join("classes.txt"), "a\nb\n").unwrap();
    assert_eq!(
        FolderDataset::open(root, "val", LabelMapping::Identity)
            .unwrap()
            .len(),
        2
    );
    // A label without an image.
    std::fs::copy(
        root.join("val/labels/img0.png"),
        root.join("val/labels/stray.png"),
    )
    .unwrap();
    let err = FolderDataset::open(root, "val", LabelMapping::Identity).unwrap_err();
    assert!(err.to_string().contains("stray.png"), "{err}");
    std::fs::remove_file(root.join("val/labels/stray.png")).unwrap();
    // An image without a label.
    std::fs::remove_file(root.join("val/labels/img1.png")).unwrap();
    let err = FolderDataset::open(root, "val", LabelMapping::Identity).unwrap_err();
    assert!(err.to_string().contains("img1.png"), "{err}");
    // A missing split folder.
    let err = FolderDataset::open(root, "nope", LabelMapping::Identity).unwrap_err();
    assert!(err.to_string().contains("images"), "{err}");
    // Label of the wrong size.
    write_split(root, "other", &[lab], 2, 2, false);
    GrayImage::new(3, 2)
        .save(root.join("other/labels/img0.png"))
        .unwrap();
    let ds = FolderDataset::open(root, "other", LabelMapping::Identity).unwrap();
    let err = ds.get(0).unwrap_err();
    assert!(err.to_string().contains("img0.png"), "{err}");
    // An anomaly folder missing a mask.
    std::fs::create_dir_all(root.join("other/anomaly")).unwrap();
    GrayImage::new(2, 2)
        .save(root.join("other/labels/img0.png"))
        .unwrap();
    let err = FolderDataset::open(root, "other", LabelMapping::Identity).unwrap_err();
    assert!(err.to_string().contains("anomaly"), "{err}");
}

#[test]
fn corrupt_png_is_a_typed_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join("classes.txt"), "a\nb\n").unwrap();
    write_split(root, "val", &[vec![0u8; 4], vec![1u8; 4]], 2, 2, false);
    // Truncate one image and garble one label.
    let img = root.join("val/images/img0.png");
    let bytes = std::fs::read(&img).unwrap();
    std::fs::write(&img, &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(root.join("val/labels/img1.png"), b"not a png at all").unwrap();
    let ds = FolderDataset::open(root, "val", LabelMapping::Identity).unwrap();
    match ds.get(0) {
        Err(e @ GmmSegError::File { .. }) => assert!(e.to_string().contains("img0.png"), "{e}"),
        other => panic!("expected a File error, got {other:?}"),
    }
    match ds.get(1) {
        Err(e @ GmmSegError::File { .. }) => assert!(e.to_string().contains("img1.png"), "{e}"),
        other => panic!("expected a File error, got {other:?}"),
    }
    // A colour label is refused with a hint.
    RgbImage::new(2, 2)
        .save(root.join("val/labels/img1.png"))
        .unwrap();
    let err = ds.get(1).unwrap_err().to_string();
    assert!(err.contains("single-channel"), "{err}");
}

#[test]
fn exported_splits_read_back_identically() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("anom");
    let src = SynthScapes::new(
        SynthScapesConfig::default().check().unwrap(),
        SynthSplit::Anomaly,
    )
    .with_len(3);
    let w = FolderWriter::create(&out, &src.class_names(), true).unwrap();
    for i in 0..3 {
        w.write(&format!("{i:05}"), &src.get(i).unwrap()).unwrap();
    }
    // The exported folder is itself a split folder (classes.txt beside images/).
    let back = FolderDataset::open(&out, "anomaly", LabelMapping::Identity).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(back.class_names(), src.class_names());
    for i in 0..3 {
        let (a, b) = (src.get(i).unwrap(), back.get(i).unwrap());
        assert_eq!(a.label, b.label);
        assert_eq!(a.anomaly, b.anomaly);
        let err = a
            .image
            .iter()
            .zip(b.image.iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        assert!(
            err <= 0.5 / 255.0 + 1e-6,
            "8-bit quantisation only, got {err}"
        );
    }
}

/// `scripts/data/fashion-scenes.sh` (README's folder dataset that no preset was tuned on)
/// writes four splits that open as one folder dataset: Fashion-MNIST's ten classes plus
/// background, garments labelled 1..=10, and MNIST digits as the anomalies.
#[test]
fn fashion_scenes_script_writes_a_folder_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("fashion-scenes");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/data/fashion-scenes.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(&root)
        .env("GMMSEG_BIN", env!("CARGO_BIN_EXE_gmmseg"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("fashion-scenes.partial").exists());
    let spec = format!("folder:{}", root.display());
    let opts = DatasetOptions::default();
    for (split, len) in [
        ("train", 2000),
        ("tune", 500),
        ("val", 500),
        ("anomaly", 500),
    ] {
        let ds = open_dataset(&spec, split, &opts).unwrap();
        assert_eq!(ds.len(), len, "{split}");
        let names = ds.class_names();
        assert_eq!(names.len(), 11);
        assert_eq!(
            (names[0].as_str(), names[10].as_str()),
            ("background", "Ankle boot")
        );
        let sample = ds.get(0).unwrap();
        assert!(sample
            .label
            .iter()
            .all(|&l| (l as usize) < names.len() || l == 255));
        assert!(
            sample.label.iter().any(|&l| (1..=10).contains(&l)),
            "{split}: no garment"
        );
        assert_eq!(sample.anomaly.is_some(), split == "anomaly", "{split}");
    }
}
