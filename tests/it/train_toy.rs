//! The softmax baseline learns the toy set, and training is deterministic for a seed.

use gmmseg::data::toy::{ToyShapes, ToySplit};
use gmmseg::nn::decoder::DecoderKind;
use gmmseg::nn::Params;
use gmmseg::train::config::TrainConfig;
use gmmseg::train::trainer::Trainer;

fn run(decoder: DecoderKind, steps: usize) -> (f64, f32, Vec<f32>) {
    let train = ToyShapes::new(ToySplit::Train, 64, 64, 3).unwrap();
    let val = ToyShapes::new(ToySplit::Val, 16, 64, 3).unwrap();
    let mut cfg = TrainConfig::quick().with_decoder(decoder);
    cfg.steps = steps;
    cfg.eval_every = 0;
    cfg.optim.warmup_steps = 5;
    let mut t = Trainer::new(cfg.check().unwrap(), 4).unwrap();
    let mut losses = Vec::new();
    let rep = t
        .fit(&train, Some(&val), &mut |p| losses.push(p.loss))
        .unwrap()
        .unwrap();
    let first: f32 = losses[..5].iter().sum::<f32>() / 5.0;
    let last: f32 = losses[losses.len() - 5..].iter().sum::<f32>() / 5.0;
    let mut params = Vec::new();
    t.model.visit(&mut |p| params.extend(p.to_vec()));
    (rep.miou, last / first, params)
}

#[test]
fn both_decoders_learn_and_runs_repeat_exactly() {
    for decoder in [DecoderKind::Fcn, DecoderKind::Deeplab] {
        let (miou, ratio, p1) = run(decoder, 60);
        eprintln!("{decoder:?}: mIoU {miou:.3}, loss ratio {ratio:.3}");
        assert!(
            ratio < 0.6,
            "{decoder:?}: loss fell only to {ratio} of its start"
        );
        // all-background prediction scores about 0.17 here
        assert!(miou > 0.3, "{decoder:?}: mIoU {miou}");
        if decoder == DecoderKind::Deeplab {
            let (_, _, p2) = run(decoder, 60);
            assert!(p1 == p2, "same seed, different weights");
        }
    }
}
