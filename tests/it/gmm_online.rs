//! Online EM with memory: order of operations, absent and unseen classes, both flavours.

use gmmseg::gmm::{
    EmSource, GmmParams, MemoryConfig, MemoryInit, MemoryLayout, OnlineBatch, OnlineConfig,
    OnlineGmm, Sampling,
};
use gmmseg::nn::head::GmmHeadConfig;
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Two images of 50 pixels, D = 2: class 0 around (2, 2) and (−2, −2), class 1 around (0, 5).
fn batch(seed: u64) -> (Array2<f32>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut x = Vec::new();
    let mut y = Vec::new();
    for i in 0..100 {
        let (label, centre) = match i % 5 {
            0 | 1 => (0u8, [2.0f32, 2.0]),
            2 | 3 => (0, [-2.0, -2.0]),
            _ => (1, [0.0, 5.0]),
        };
        x.extend(centre.iter().map(|c| c + rng.gen_range(-0.3f32..0.3)));
        y.push(label);
    }
    y[7] = 255;
    (Array2::from_shape_vec((100, 2), x).unwrap(), y)
}

fn config(num_classes: usize) -> OnlineConfig {
    let mut cfg = GmmHeadConfig::paper(2).bind(num_classes, 2).online;
    cfg.gmm.mean_momentum = 0.5;
    cfg.gmm.var_momentum = 0.5;
    cfg.memory.capacity = 64;
    cfg.memory.sampling = Sampling::RandomPerImage { per_image: 10 };
    cfg
}

fn init(num_classes: usize) -> GmmParams {
    let mut p = GmmParams::standard(num_classes, 2, 2);
    p.means[[0, 0, 0]] = 1.0;
    p.means[[0, 1, 0]] = -1.0;
    p
}

#[test]
fn paper_flavour_moves_towards_the_data_and_fills_the_memory() {
    let mut gmm = OnlineGmm::new(config(3), init(3), 0).unwrap();
    let before = gmm.params.clone();
    for step in 0..30 {
        let (x, y) = batch(step);
        let report = gmm
            .update(&OnlineBatch {
                features: x.view(),
                labels: &y,
                pixels_per_image: 50,
                correct: None,
            })
            .unwrap();
        assert_eq!(report.updated_classes, vec![0, 1]);
        assert!(report.enqueued > 0);
    }
    // Class 2 never appears: its parameters are untouched and it is reported unseen.
    assert_eq!(gmm.unseen_classes(), vec![2]);
    assert_eq!(
        gmm.params.means.index_axis(Axis(0), 2),
        before.means.index_axis(Axis(0), 2)
    );
    // Class 0's components found the two modes.
    let m = gmm.params.means.index_axis(Axis(0), 0);
    let mut xs = [m[[0, 0]], m[[1, 0]]];
    xs.sort_by(f32::total_cmp);
    assert!(
        (xs[0] + 2.0).abs() < 0.2 && (xs[1] - 2.0).abs() < 0.2,
        "{m}"
    );
    // Memory: 10 pixels per class per image, 2 images per batch, capped at the capacity.
    assert_eq!(gmm.memory.len(0, 0), 64);
    assert!(gmm.memory.len(2, 0) == 0);
    assert_eq!(gmm.iteration, 30);
}

#[test]
fn same_seed_same_state() {
    let run = || {
        let mut gmm = OnlineGmm::new(config(2), init(2), 9).unwrap();
        for step in 0..5 {
            let (x, y) = batch(step);
            gmm.update(&OnlineBatch {
                features: x.view(),
                labels: &y,
                pixels_per_image: 50,
                correct: None,
            })
            .unwrap();
        }
        (gmm.params, gmm.memory)
    };
    assert_eq!(run(), run());
}

#[test]
fn reference_flavour_updates_from_memory_every_interval() {
    let mut cfg = GmmHeadConfig::reference_code(2).bind(2, 2).online;
    cfg.memory.capacity = 40;
    assert_eq!(cfg.em_source, EmSource::MemoryOnly);
    assert_eq!(cfg.memory.layout, MemoryLayout::PerComponent);
    assert_eq!(cfg.memory.init, MemoryInit::RandomUnit);
    let mut p = GmmParams::random_unit(2, 2, 2, &mut ChaCha8Rng::seed_from_u64(1));
    p.variances.fill(1.0);
    let mut gmm = OnlineGmm::new(cfg, p, 3).unwrap();
    let (x, y) = batch(0);
    // Pixel 0 (class 0) wrongly classified: never enqueued.
    let mut correct = vec![true; 100];
    correct[0] = false;
    let mut updated = Vec::new();
    for _ in 0..6 {
        let r = gmm
            .update(&OnlineBatch {
                features: x.view(),
                labels: &y,
                pixels_per_image: 50,
                correct: Some(&correct),
            })
            .unwrap();
        updated.push(!r.updated_classes.is_empty());
        // ≤ 20 per (class, component) per batch.
        assert!(r.enqueued <= 2 * 2 * 20);
    }
    assert_eq!(
        updated,
        vec![true, false, false, false, false, true],
        "t % 5 == 0"
    );
    // Means stay unit vectors (mean directions).
    for row in gmm.params.means.lanes(Axis(2)) {
        assert!((row.dot(&row) - 1.0).abs() < 1e-5);
    }
    // Variances were replaced outright: var(queue around direction) + 0.01, no momentum.
    assert!(gmm.params.variances.iter().all(|&v| v >= 0.01 && v != 1.0));
    let x0 = x.row(0).to_owned();
    for c in 0..2 {
        for s in 0..2 {
            for row in gmm.memory.queue(c, s).axis_iter(Axis(0)) {
                assert_ne!(row, x0, "a misclassified pixel entered the memory");
            }
        }
    }
}

#[test]
fn bad_batches_are_typed_errors() {
    let mut gmm = OnlineGmm::new(config(2), init(2), 0).unwrap();
    let (x, mut y) = batch(0);
    assert!(gmm
        .update(&OnlineBatch {
            features: x.view(),
            labels: &y[..99],
            pixels_per_image: 50,
            correct: None
        })
        .is_err());
    assert!(gmm
        .update(&OnlineBatch {
            features: x.view(),
            labels: &y,
            pixels_per_image: 30,
            correct: None
        })
        .is_err());
    y[3] = 2;
    let err = gmm
        .update(&OnlineBatch {
            features: x.view(),
            labels: &y,
            pixels_per_image: 50,
            correct: None,
        })
        .unwrap_err();
    assert!(err.to_string().contains("label 2"), "{err}");
    let mut cfg = config(2);
    cfg.update_interval = 0;
    assert!(OnlineGmm::new(cfg, init(2), 0).is_err());
    let mut cfg = config(2);
    cfg.memory = MemoryConfig {
        capacity: 0,
        ..cfg.memory
    };
    assert!(OnlineGmm::new(cfg, init(2), 0).is_err());
}
