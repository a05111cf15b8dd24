//! Speed of the metrics at dataset scale (issue 2's targets):
//! - AUROC + AP + FPR95 over 50M pixels (goal ≤ 10 s on 2 cores);
//! - the confusion matrix over 100M pixels (reported in GB/s of label bytes read).
//!
//! Run: `cargo bench --bench metrics`. Sample sizes are small (10) so that the whole bench
//! takes about a minute; the inputs are built once, outside the timed code.

// `criterion_group!` defines an undocumented `pub fn`; the crate-wide `missing_docs` is
// for the library.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gmmseg::metrics::{AnomalyAccumulator, ConfusionMatrix};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const ANOMALY_PIXELS: usize = 50_000_000;
const SEG_PIXELS: usize = 100_000_000;
const CLASSES: usize = 19;

fn anomaly_inputs() -> (Vec<f32>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut scores = Vec::with_capacity(ANOMALY_PIXELS);
    let mut labels = Vec::with_capacity(ANOMALY_PIXELS);
    for i in 0..ANOMALY_PIXELS {
        // ~1% anomalies, ~5% ignored, as in Fishyscapes-style validation sets.
        let l = match i % 100 {
            0 => 1u8,
            1..=5 => 255,
            _ => 0,
        };
        let s: f32 = rng.gen::<f32>() + if l == 1 { 0.7 } else { 0.0 };
        scores.push(s);
        labels.push(l);
    }
    (scores, labels)
}

fn seg_inputs() -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let gt: Vec<u8> = (0..SEG_PIXELS)
        .map(|i| {
            if i % 50 == 0 {
                255
            } else {
                (i / 997 % CLASSES) as u8
            }
        })
        .collect();
    let pred: Vec<u8> = gt
        .iter()
        .map(|&g| {
            if g == 255 || rng.gen::<f32>() < 0.1 {
                rng.gen_range(0..CLASSES as u8)
            } else {
                g
            }
        })
        .collect();
    (pred, gt)
}

fn bench_anomaly(c: &mut Criterion) {
    let (scores, labels) = anomaly_inputs();
    // One timed run outside criterion, printed as the headline figure.
    let t = Instant::now();
    let mut acc = AnomalyAccumulator::new();
    for (s, l) in scores.chunks(1 << 22).zip(labels.chunks(1 << 22)) {
        acc.update(s, l).unwrap();
    }
    let m = acc.finish().unwrap();
    println!(
        "anomaly metrics over {ANOMALY_PIXELS} pixels: {:.2} s (AUROC {:.4}, AP {:.4}, FPR95 {:.4}, {} threads)",
        t.elapsed().as_secs_f64(),
        m.auroc,
        m.ap,
        m.fpr95,
        rayon::current_num_threads()
    );
    let mut g = c.benchmark_group("anomaly");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(20))
        .throughput(Throughput::Elements(ANOMALY_PIXELS as u64));
    g.bench_function("auroc_ap_fpr95_50M", |b| {
        b.iter(|| {
            let mut acc = AnomalyAccumulator::new();
            for (s, l) in scores.chunks(1 << 22).zip(labels.chunks(1 << 22)) {
                acc.update(s, l).unwrap();
            }
            black_box(acc.finish().unwrap())
        })
    });
    g.finish();
}

fn bench_confusion(c: &mut Criterion) {
    let (pred, gt) = seg_inputs();
    let t = Instant::now();
    let mut cm = ConfusionMatrix::new(CLASSES).unwrap();
    cm.update(&pred, &gt).unwrap();
    let secs = t.elapsed().as_secs_f64();
    let m = cm.finish().unwrap();
    println!(
        "confusion matrix over {SEG_PIXELS} u8 pixel pairs: {:.3} s = {:.2} GB/s of labels read (mIoU {:.4})",
        secs,
        2.0 * SEG_PIXELS as f64 / secs / 1e9,
        m.miou
    );
    let mut g = c.benchmark_group("segmentation");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Bytes(2 * SEG_PIXELS as u64));
    g.bench_function("confusion_matrix_100M", |b| {
        b.iter(|| {
            let mut cm = ConfusionMatrix::new(CLASSES).unwrap();
            cm.update(black_box(&pred), black_box(&gt)).unwrap();
            black_box(cm)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_anomaly, bench_confusion);
criterion_main!(benches);
