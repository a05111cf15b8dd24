//! Train-step and inference wall time of the default network (quick profile: DeepLabV3+-lite,
//! softmax head, AdamW, batch 8, 64×64 toy images), as one JSON line, for peer benchmarks
//! (`scripts/bench/train_vs_pytorch.py` runs it and times the same network in PyTorch).
//!
//! Run: `cargo run --release --example step_timing -- [REPS]` (default 20 timed repetitions
//! of each, after 3 warm-up steps; medians and minima are reported).

use std::time::Instant;

/// The command-line tool's allocator (`src/main.rs`), so that this times what `gmmseg train`
/// and `gmmseg ablate` run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use gmmseg::data::batch::{batch_plan, make_batch};
use gmmseg::data::toy::{ToyShapes, ToySplit};
use gmmseg::data::Dataset;
use gmmseg::train::config::TrainConfig;
use gmmseg::train::trainer::Trainer;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> gmmseg::error::Result<()> {
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20)
        .max(1);
    let train = ToyShapes::new(ToySplit::Train, 512, 64, 0)?;
    let cfg = TrainConfig::quick().check()?;
    let bsz = cfg.get().batch_size;
    let mut trainer = Trainer::new(cfg, train.num_classes())?;
    let batches = (0..reps + 3)
        .map(|s| make_batch(&train, &batch_plan(train.len(), bsz, 0, s, true)))
        .collect::<gmmseg::error::Result<Vec<_>>>()?;
    let mut step_s = Vec::with_capacity(reps);
    for (i, b) in batches.iter().enumerate() {
        let t = Instant::now();
        trainer.train_step(b)?;
        if i >= 3 {
            step_s.push(t.elapsed().as_secs_f64());
        }
    }
    let images = &batches[0].images;
    trainer.model.infer(images)?;
    let mut infer_s = Vec::with_capacity(reps);
    for _ in 0..reps {
        let t = Instant::now();
        trainer.model.infer(images)?;
        infer_s.push(t.elapsed().as_secs_f64());
    }
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    println!(
        "{}",
        serde_json::json!({
            "threads": rayon::current_num_threads(),
            "batch": bsz,
            "image_size": 64,
            "classes": train.num_classes(),
            "parameters": gmmseg::nn::Params::num_trainable(&trainer.model),
            "reps": reps,
            "train_step_median_s": median(step_s.clone()),
            "train_step_min_s": min(&step_s),
            "inference_median_s": median(infer_s.clone()),
            "inference_min_s": min(&infer_s),
        })
    );
    Ok(())
}
