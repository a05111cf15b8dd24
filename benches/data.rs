//! Data-pipeline speed: generating 2,000 SynthScapes 64×64 scenes (goal ≤ 5 s on 2 cores)
//! and building one training batch of 8 through the training pipeline
//! (`gmmseg::data::batch`: sample, generate, flip, normalise, stack), to compare with a
//! training step.
//!
//! `cargo bench --bench data`
//!
//! Figures: `data/results/benchmarks/data.txt` (2-core development machine, release
//! profile). The batch figures of earlier versions were of a loader with scale jitter and
//! colour augmentation that training never used; it was removed.

// `criterion_group!` defines an undocumented `pub fn`; the crate-wide `missing_docs` is
// for the library.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use gmmseg::data::{
    make_batch, Dataset, Sampler, SamplerKind, SynthScapes, SynthScapesConfig, SynthSplit,
};
use rayon::prelude::*;

fn generate_2000(c: &mut Criterion) {
    let ds = SynthScapes::new(
        SynthScapesConfig::default().check().unwrap(),
        SynthSplit::Train,
    );
    c.bench_function("synthscapes: generate 2000 images 64x64 (rayon)", |b| {
        b.iter(|| {
            let n: usize = (0..2000)
                .into_par_iter()
                .map(|i| ds.generate(i).label.len())
                .sum();
            assert_eq!(n, 2000 * 64 * 64);
        })
    });
    c.bench_function("synthscapes: generate 1 image 64x64", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            ds.generate(i)
        })
    });
}

fn batch_of_8(c: &mut Criterion) {
    let synth: Arc<dyn Dataset> = Arc::new(SynthScapes::new(
        SynthScapesConfig::default().check().unwrap(),
        SynthSplit::Train,
    ));
    let digits: Arc<dyn Dataset> = gmmseg::data::open_dataset(
        "digitscenes",
        "train",
        &gmmseg::data::DatasetOptions::default(),
    )
    .unwrap()
    .into();
    for (name, ds) in [("synthscapes", synth), ("digitscenes", digits)] {
        let sampler = Sampler::new(&*ds, SamplerKind::Shuffle, 8, 0, true).unwrap();
        let mut step = 0;
        c.bench_function(
            &format!("batch: {name} batch of 8, generate + flip + normalise"),
            |b| {
                b.iter(|| {
                    step += 1;
                    make_batch(&*ds, &sampler.plan(step).unwrap()).unwrap()
                })
            },
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = generate_2000, batch_of_8
}
criterion_main!(benches);
