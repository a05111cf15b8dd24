//! GMMSeg vs softmax speed at the default network (quick profile, SynthScapes 64×64, batch 8):
//! train-step time ratio (goal ≤ 1.10), inference time ratio (goal ≤ 1.03; the paper's own
//! figure is 14.16/13.37 = 1.059), and the EM update's share of a GMMSeg step.
//!
//! Run: `cargo bench --bench gmmseg`. Under `cargo test --all-targets` (no `--bench`) it runs
//! one step per head as a smoke test.

use std::time::Instant;

use gmmseg::data::{open_dataset, Dataset, DatasetOptions};
use gmmseg::train::batch::{batch_plan, make_batch};
use gmmseg::train::config::{HeadKind, TrainConfig};
use gmmseg::train::trainer::Trainer;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Timing {
    step: f64,
    update: f64,
    infer: f64,
}

fn measure(head: HeadKind, train: &dyn Dataset, warmup: usize, reps: usize) -> Timing {
    let mut cfg = TrainConfig::quick();
    cfg.head = head;
    cfg.dataset = "synthscapes".into();
    let cfg = cfg.check().expect("valid config");
    let bsz = cfg.get().batch_size;
    let mut t = Trainer::new(cfg, train.num_classes()).expect("trainer");
    let batches: Vec<_> = (0..warmup + reps)
        .map(|s| make_batch(train, &batch_plan(train.len(), bsz, 0, s, true)).expect("batch"))
        .collect();
    let mut steps = Vec::new();
    let mut updates = Vec::new();
    for (i, b) in batches.iter().enumerate() {
        let start = Instant::now();
        let stats = t.train_step(b).expect("step");
        if i >= warmup {
            steps.push(start.elapsed().as_secs_f64());
            updates.push(stats.head_update_s);
        }
    }
    let mut infers = Vec::new();
    for b in batches.iter().take(reps) {
        let start = Instant::now();
        t.model.infer(&b.images).expect("inference");
        infers.push(start.elapsed().as_secs_f64());
    }
    Timing {
        step: median(steps),
        update: median(updates),
        infer: median(infers),
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (warmup, reps) = if bench { (30, 30) } else { (0, 1) };
    let train =
        open_dataset("synthscapes", "train", &DatasetOptions::default()).expect("SynthScapes");
    let base = measure(HeadKind::Softmax, train.as_ref(), warmup, reps);
    println!("threads: {}, SynthScapes 64×64, batch 8, quick network (median of {reps} after {warmup} warm-up steps)", rayon::current_num_threads());
    println!(
        "{:<11} {:>10} {:>10} {:>12} {:>10} {:>12}",
        "head", "step ms", "ratio", "EM ms (share)", "infer ms", "infer ratio"
    );
    println!(
        "{:<11} {:>10.1} {:>10.3} {:>12} {:>10.2} {:>12.3}",
        "softmax",
        base.step * 1e3,
        1.0,
        "-",
        base.infer * 1e3,
        1.0
    );
    for (name, head) in [
        ("gmmseg", HeadKind::Gmmseg),
        ("gmmseg-ref", HeadKind::GmmsegRef),
        ("disc-gmm", HeadKind::DiscGmm),
    ] {
        let t = measure(head, train.as_ref(), warmup, reps);
        println!(
            "{:<11} {:>10.1} {:>10.3} {:>6.1} ({:>3.0}%) {:>10.2} {:>12.3}",
            name,
            t.step * 1e3,
            t.step / base.step,
            t.update * 1e3,
            100.0 * t.update / t.step,
            t.infer * 1e3,
            t.infer / base.infer
        );
    }
}
