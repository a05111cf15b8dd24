//! Speed and memory of the default network (quick profile, DeepLabV3+-lite, 64×64, batch 8):
//! train-step time, inference time, the share of time spent in convolution, and the peak
//! resident memory (VmHWM) of a whole quick training run on the toy set.
//!
//! Run: `cargo bench --bench train`. Set `GMMSEG_BENCH_STEPS` to shorten the quick run.
//! Under `cargo test --all-targets` (no `--bench` argument) it runs a 2-step smoke version so
//! that the code cannot rot without slowing the test suite down.

use std::time::Instant;

use gmmseg::data::batch::{batch_plan, make_batch};
use gmmseg::data::toy::{ToyShapes, ToySplit};
use gmmseg::data::Dataset;
use gmmseg::ops::conv::profile;
use gmmseg::train::config::TrainConfig;
use gmmseg::train::trainer::Trainer;

fn vm_hwm_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn main() {
    let threads = rayon::current_num_threads();
    let train = ToyShapes::new(ToySplit::Train, 512, 64, 0).expect("toy");
    let val = ToyShapes::new(ToySplit::Val, 64, 64, 0).expect("toy");
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let mut cfg = TrainConfig::quick();
    if !bench_mode {
        cfg.steps = 2;
    }
    if let Some(s) = std::env::var("GMMSEG_BENCH_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.steps = s;
    }
    let cfg = cfg.check().expect("valid");
    let bsz = cfg.get().batch_size;

    // --- train step ---
    let mut t = Trainer::new(cfg.clone(), 4).expect("trainer");
    let batches: Vec<_> = (0..13)
        .map(|s| make_batch(&train, &batch_plan(train.len(), bsz, 0, s, true)).expect("batch"))
        .collect();
    for b in &batches[..3] {
        t.train_step(b).expect("step");
    }
    profile::take();
    let start = Instant::now();
    for b in &batches[3..] {
        t.train_step(b).expect("step");
    }
    let step_s = start.elapsed().as_secs_f64() / 10.0;
    let (cf, cb) = profile::take();
    let conv_share = (cf + cb) / (step_s * 10.0);

    // --- inference ---
    let images = &batches[0].images;
    t.model.infer(images).expect("infer");
    profile::take();
    let start = Instant::now();
    for _ in 0..10 {
        t.model.infer(images).expect("infer");
    }
    let infer_s = start.elapsed().as_secs_f64() / 10.0;
    let (cfi, _) = profile::take();

    println!("threads: {threads}");
    println!("train step (batch {bsz}, 64×64): {:.1} ms; convolution {:.0}% (fwd {:.1} ms, bwd {:.1} ms per step)", step_s * 1e3, conv_share * 100.0, cf * 100.0, cb * 100.0);
    println!(
        "inference (batch {bsz}, 64×64): {:.1} ms ({:.2} ms/image); convolution {:.0}%",
        infer_s * 1e3,
        infer_s * 1e3 / bsz as f64,
        cfi / (infer_s * 10.0) * 100.0
    );
    println!(
        "parameters: {}",
        gmmseg::nn::Params::num_trainable(&t.model)
    );

    // --- a whole quick run (with its periodic evaluation), then peak RSS ---
    drop(t);
    let dir = std::env::temp_dir().join(format!("gmmseg-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut run = Trainer::new(cfg.clone(), 4)
        .expect("trainer")
        .with_out_dir(&dir)
        .expect("out dir");
    let start = Instant::now();
    let rep = run
        .fit(&train, Some(&val), &mut |_| {})
        .expect("fit")
        .expect("evaluated");
    let total = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "quick profile run ({} steps + evaluations): {:.1} s, val mIoU {:.3}; peak RSS (VmHWM) {:.0} MiB (goal ≤ 2048)",
        cfg.get().steps,
        total,
        rep.miou,
        vm_hwm_mib().unwrap_or(f64::NAN)
    );
}
