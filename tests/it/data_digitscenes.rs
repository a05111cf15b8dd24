//! DigitScenes on the shipped MNIST / Fashion-MNIST subsets, and the IDX reader on corrupt
//! files.

use std::io::Write;

use gmmseg::data::digitscenes::{DigitScenes, DigitScenesConfig, DigitSplit};
use gmmseg::data::idx::read_idx;
use gmmseg::data::{data_dir, Dataset, IGNORE_LABEL};
use gmmseg::GmmSegError;

fn open(split: DigitSplit) -> DigitScenes {
    DigitScenes::open(DigitScenesConfig::default().check().unwrap(), split).unwrap()
}

#[test]
fn data_ships_inside_the_project() {
    let dir = data_dir();
    assert!(
        !dir.to_string_lossy().contains("shared"),
        "{}",
        dir.display()
    );
    assert!(dir.join("mnist-10k/images-idx3-ubyte.gz").is_file());
    let a = read_idx(&dir.join("mnist-10k/images-idx3-ubyte.gz")).unwrap();
    assert_eq!(a.dims, vec![10_000, 28, 28]);
    let f = read_idx(&dir.join("fashion-3k/labels-idx1-ubyte.gz")).unwrap();
    assert_eq!(f.dims, vec![3_000]);
}

#[test]
fn labels_follow_the_ink_and_train_test_digits_are_disjoint() {
    let train = open(DigitSplit::Train);
    let test = open(DigitSplit::Test);
    assert_eq!(train.num_classes(), 11);
    let (p, q) = (train.digit_pool(), test.digit_pool());
    assert!(p.end <= q.start, "{p:?} {q:?}");
    for i in 0..50 {
        assert!(train.digits_on(i).iter().all(|g| p.contains(g)));
        assert!(test.digits_on(i).iter().all(|g| q.contains(g)));
        let s = train.get(i).unwrap();
        let n = train.digits_on(i).len();
        assert!((1..=4).contains(&n));
        let mut digit_px = 0;
        for ((y, x), &l) in s.label.indexed_iter() {
            let ink = s.image[(0, y, x)];
            assert_eq!(s.image[(1, y, x)], ink);
            match l {
                0 => assert!(ink <= 0.1 + 1e-6, "background with ink {ink}"),
                1..=10 => {
                    assert!(ink > 0.5, "digit pixel with ink {ink}");
                    digit_px += 1;
                }
                IGNORE_LABEL => assert!(ink > 0.1 && ink <= 0.5 + 1e-6),
                other => panic!("label {other}"),
            }
        }
        assert!(digit_px > 10, "canvas {i} has {digit_px} digit pixels");
        assert!(s.anomaly.is_none());
    }
    // Deterministic.
    assert_eq!(
        train.get(3).unwrap(),
        open(DigitSplit::Train).get(3).unwrap()
    );
}

#[test]
fn anomaly_split_pastes_fashion_items_onto_test_canvases() {
    let test = open(DigitSplit::Test);
    let anom = open(DigitSplit::Anomaly);
    for i in 0..40 {
        let (t, a) = (test.get(i).unwrap(), anom.get(i).unwrap());
        let mask = a.anomaly.as_ref().unwrap();
        let n1 = mask.iter().filter(|&&m| m == 1).count();
        assert!(n1 > 20, "canvas {i}: {n1} anomaly pixels");
        for ((y, x), &m) in mask.indexed_iter() {
            match m {
                1 => {
                    assert_eq!(a.label[(y, x)], IGNORE_LABEL);
                    assert!(a.image[(0, y, x)] > 0.1);
                }
                0 => {
                    // Untouched: identical to the test canvas.
                    assert_eq!(a.label[(y, x)], t.label[(y, x)]);
                    assert_eq!(a.image[(0, y, x)], t.image[(0, y, x)]);
                }
                IGNORE_LABEL => assert_eq!(a.label[(y, x)], IGNORE_LABEL),
                other => panic!("mask value {other}"),
            }
        }
    }
}

#[test]
fn corrupt_or_missing_idx_files_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("mnist-10k")).unwrap();
    // Truncated gzip of the real file.
    let real = std::fs::read(data_dir().join("mnist-10k/images-idx3-ubyte.gz")).unwrap();
    let img = root.join("mnist-10k/images-idx3-ubyte.gz");
    std::fs::write(&img, &real[..real.len() / 3]).unwrap();
    std::fs::copy(
        data_dir().join("mnist-10k/labels-idx1-ubyte.gz"),
        root.join("mnist-10k/labels-idx1-ubyte.gz"),
    )
    .unwrap();
    let cfg = DigitScenesConfig {
        data_dir: Some(root.to_path_buf()),
        ..Default::default()
    };
    match DigitScenes::open(cfg.clone().check().unwrap(), DigitSplit::Train) {
        Err(e @ GmmSegError::File { .. }) => {
            assert!(e.to_string().contains("images-idx3-ubyte.gz"), "{e}")
        }
        other => panic!("expected a File error, got {other:?}"),
    }
    // A valid gzip stream holding a truncated IDX body.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[0, 0, 8, 3, 0, 0, 0, 5, 0, 0, 0, 28, 0, 0, 0, 28, 1, 2, 3])
        .unwrap();
    std::fs::write(&img, gz.finish().unwrap()).unwrap();
    let err = DigitScenes::open(cfg.clone().check().unwrap(), DigitSplit::Train).unwrap_err();
    assert!(
        matches!(err, GmmSegError::File { .. }) && err.to_string().contains("truncated"),
        "{err}"
    );
    // Label count disagreeing with the image count.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut body = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 28, 0, 0, 0, 28];
    body.extend(vec![0u8; 2 * 28 * 28]);
    gz.write_all(&body).unwrap();
    std::fs::write(&img, gz.finish().unwrap()).unwrap();
    let err = DigitScenes::open(cfg.clone().check().unwrap(), DigitSplit::Train).unwrap_err();
    assert!(err.to_string().contains("labels-idx1-ubyte.gz"), "{err}");
    // Missing files: an I/O error naming the file.
    let empty = tempfile::tempdir().unwrap();
    let cfg = DigitScenesConfig {
        data_dir: Some(empty.path().to_path_buf()),
        ..Default::default()
    };
    let err = DigitScenes::open(cfg.check().unwrap(), DigitSplit::Train).unwrap_err();
    assert!(
        matches!(err, GmmSegError::Io { .. }) && err.to_string().contains("mnist-10k"),
        "{err}"
    );
}

#[test]
fn invalid_config_fields_are_named() {
    let cases: Vec<(DigitScenesConfig, &str)> = vec![
        (
            DigitScenesConfig {
                size: 10,
                ..Default::default()
            },
            "size",
        ),
        (
            DigitScenesConfig {
                min_digits: 5,
                ..Default::default()
            },
            "max_digits",
        ),
        (
            DigitScenesConfig {
                digit_scale: (0.9, 0.2),
                ..Default::default()
            },
            "digit_scale",
        ),
        (
            DigitScenesConfig {
                fashion_scale: (0.0, 0.2),
                ..Default::default()
            },
            "fashion_scale",
        ),
        (
            DigitScenesConfig {
                ink_threshold: 1.5,
                ..Default::default()
            },
            "ink_threshold",
        ),
        (
            DigitScenesConfig {
                edge_low: 0.7,
                ..Default::default()
            },
            "edge_low",
        ),
        (
            DigitScenesConfig {
                test_fraction: 1.0,
                ..Default::default()
            },
            "test_fraction",
        ),
        (
            DigitScenesConfig {
                anomaly_threshold: 0.0,
                ..Default::default()
            },
            "anomaly_threshold",
        ),
    ];
    for (cfg, field) in cases {
        let err = cfg.check().unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
    }
}
