//! Speed of the calibration metrics with the image bootstrap (issue 20's target): every
//! calibration metric (ECE, MCE, RMSCE, adaptive, classwise and smooth ECE, NLL, Brier and
//! its decomposition, the bins) plus a 1,000-replicate image bootstrap over 50 M pixels in
//! 1,000 images of 19 classes, goal ≤ 10 s on 2 cores.
//!
//! Run: `cargo bench --bench calibration`. The inputs are 50 distinct synthetic images of
//! 50,000 pixels, each fed 20 times under its own image id, built before the clock starts.

use std::time::Instant;

use gmmseg::metrics::{BootstrapConfig, CalibrationAccumulator, CalibrationConfig};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const IMAGES: usize = 1000;
const PIXELS_PER_IMAGE: usize = 50_000;
const DISTINCT_IMAGES: usize = 50;
const CLASSES: usize = 19;

/// One synthetic image: softmax of noisy logits with a class signal whose strength varies
/// by image, labels with 5% ignored.
fn image(seed: u64) -> (Array2<f32>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let skill: f32 = rng.gen_range(1.0..4.0);
    let mut probs = Array2::<f32>::zeros((PIXELS_PER_IMAGE, CLASSES));
    let mut labels = vec![0u8; PIXELS_PER_IMAGE];
    for (i, mut row) in probs.outer_iter_mut().enumerate() {
        let y = (i / 211 + seed as usize) % CLASSES;
        labels[i] = if rng.gen_bool(0.05) { 255 } else { y as u8 };
        let mut s = 0.0;
        for (k, p) in row.iter_mut().enumerate() {
            let z: f32 = rng.gen::<f32>() * 2.0 + if k == y { skill } else { 0.0 };
            *p = z.exp();
            s += *p;
        }
        row.mapv_inplace(|p| p / s);
    }
    (probs, labels)
}

fn main() {
    let pool: Vec<(Array2<f32>, Vec<u8>)> = (0..DISTINCT_IMAGES as u64).map(image).collect();
    let threads = rayon::current_num_threads();
    let start = Instant::now();
    let mut acc = CalibrationAccumulator::new(CalibrationConfig::default().check().unwrap());
    for i in 0..IMAGES {
        let (p, y) = &pool[i % DISTINCT_IMAGES];
        acc.update_grouped(p.view(), y, &vec![i as u32; y.len()])
            .unwrap();
    }
    let updated = start.elapsed().as_secs_f64();
    let cfg = BootstrapConfig {
        samples: 1000,
        seed: 0,
    }
    .check()
    .unwrap();
    let m = acc.finish_with_bootstrap(&cfg).unwrap();
    let total = start.elapsed().as_secs_f64();
    println!(
        "calibration metrics + {}-replicate image bootstrap over {} pixels in {IMAGES} images, \
         {CLASSES} classes, {threads} threads: {total:.2} s (updates {updated:.2} s, finish {:.2} s; \
         goal ≤ 10 s)",
        cfg.get().samples,
        m.pixels,
        total - updated
    );
    println!(
        "  ECE {:.4} [{:.4}, {:.4}], classwise ECE {:.4}, smooth ECE {:.4} (σ {:.4}), NLL {:.4}",
        m.ece,
        m.ci95["ece"][0],
        m.ci95["ece"][1],
        m.classwise_ece,
        m.smooth_ece.unwrap(),
        m.smooth_ece_bandwidth.unwrap(),
        m.nll
    );
}
