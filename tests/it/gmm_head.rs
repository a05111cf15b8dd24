//! The GMM heads inside the trainer: hybrid iteration, exact resume of the fitted state, the
//! discriminative head's parameter gradients, and the likelihood anomaly score.

use dfdx::prelude::*;
use gmmseg::data::batch::make_batch;
use gmmseg::data::toy::{ToyShapes, ToySplit};
use gmmseg::nn::head::{DiscGmmHead, GmmHead, GmmHeadConfig, Head, StepFeatures};
use gmmseg::nn::{Dev, Params};
use gmmseg::train::config::{HeadConfig, HeadEdits, HeadKind, TrainConfig};
use gmmseg::train::eval::evaluate;
use gmmseg::train::trainer::Trainer;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rows(seed: u64, n: usize, d: usize) -> (Array2<f32>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<u8> = (0..n)
        .map(|i| if i % 17 == 0 { 255 } else { (i % 3) as u8 })
        .collect();
    let x = Array2::from_shape_fn((n, d), |(i, k)| {
        (labels[i] % 3) as f32 * 2.0 + (k % 2) as f32 + rng.gen_range(-0.5f32..0.5)
    });
    (x, labels)
}

fn step<'a>(x: &'a Array2<f32>, y: &'a [u8], s: usize) -> StepFeatures<'a> {
    StepFeatures {
        step: s,
        feats: x,
        labels: y,
        pixels_per_image: 64,
    }
}

#[test]
fn fitted_state_round_trips_and_resume_is_exact() {
    let dev = Dev::default();
    for cfg in [
        GmmHeadConfig::paper(2).bind(3, 4),
        GmmHeadConfig::reference_code(2).bind(3, 4),
    ] {
        let mut a = GmmHead::new(
            &dev,
            "gmmseg",
            cfg.clone(),
            &mut ChaCha8Rng::seed_from_u64(1),
        )
        .unwrap();
        for s in 0..3 {
            let (x, y) = rows(s, 128, 4);
            a.after_step(&step(&x, &y, s as usize + 1)).unwrap();
        }
        let state = a.fitted_state();
        let mut b = GmmHead::new(
            &dev,
            "gmmseg",
            cfg.clone(),
            &mut ChaCha8Rng::seed_from_u64(1),
        )
        .unwrap();
        b.load_fitted_state(&state).unwrap();
        assert_eq!(b.gmm().params, a.gmm().params);
        assert_eq!(b.gmm().memory, a.gmm().memory);
        assert_eq!(b.gmm().iteration, 3);
        // Continue both: identical (random sampling stream restored too).
        let (x, y) = rows(9, 128, 4);
        a.after_step(&step(&x, &y, 4)).unwrap();
        b.after_step(&step(&x, &y, 4)).unwrap();
        assert_eq!(b.gmm().params, a.gmm().params);
        assert_eq!(b.gmm().memory, a.gmm().memory);
        // A state of the wrong shape is refused.
        let mut wrong = GmmHead::new(
            &dev,
            "gmmseg",
            GmmHeadConfig::paper(2).bind(4, 4),
            &mut ChaCha8Rng::seed_from_u64(1),
        )
        .unwrap();
        assert!(wrong.load_fitted_state(&state).is_err());
    }
}

#[test]
fn after_step_updates_the_gmm_and_unseen_classes_keep_their_start() {
    let dev = Dev::default();
    let mut head = GmmHead::new(
        &dev,
        "gmmseg",
        GmmHeadConfig::paper(2).bind(4, 4),
        &mut ChaCha8Rng::seed_from_u64(2),
    )
    .unwrap();
    let before = head.gmm().params.clone();
    let (x, y) = rows(0, 128, 4);
    head.after_step(&step(&x, &y, 1)).unwrap();
    assert_ne!(head.gmm().params.means, before.means);
    assert_eq!(head.gmm().unseen_classes(), vec![3]);
    assert_eq!(
        head.gmm().params.means.index_axis(ndarray::Axis(0), 3),
        before.means.index_axis(ndarray::Axis(0), 3)
    );
}

#[test]
fn discriminative_head_parameter_gradients_match_finite_differences() {
    let dev = Dev::default();
    let mut head = DiscGmmHead::new(&dev, 2, 2, 3, &mut ChaCha8Rng::seed_from_u64(3)).unwrap();
    let feats: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.tensor_from_vec(
        (0..2 * 3 * 2 * 2)
            .map(|i| ((i * 7) % 11) as f32 * 0.2 - 1.0)
            .collect(),
        (2, 3, 2, 2),
    );
    let coef: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.tensor_from_vec(
        (0..16).map(|i| ((i * 5) % 7) as f32 * 0.3 - 0.9).collect(),
        (2, 2, 2, 2),
    );
    let objective = |h: &mut DiscGmmHead| -> f32 {
        (h.infer(feats.clone()).unwrap().logits * coef.clone())
            .sum::<(), _>()
            .array()
    };
    let grads = {
        let out = head
            .logits_train(feats.clone().traced(Gradients::leaky()))
            .unwrap();
        (out * coef.clone()).sum::<(), _>().backward()
    };
    let mut params = Vec::new();
    head.visit(&mut |p| params.push((p.name.clone(), grads.get(&p.value).as_vec(), p.to_vec())));
    for (name, analytic, values) in params {
        for i in 0..values.len() {
            let h = 1e-2;
            let set = |head: &mut DiscGmmHead, delta: f32| {
                let mut v = values.clone();
                v[i] += delta;
                head.visit_mut(&mut |p| {
                    if p.name == name {
                        p.set(&v).unwrap();
                    }
                });
            };
            set(&mut head, h);
            let plus = objective(&mut head);
            set(&mut head, -h);
            let minus = objective(&mut head);
            set(&mut head, 0.0);
            let fd = (plus - minus) / (2.0 * h);
            assert!(
                (fd - analytic[i]).abs() < 2e-2 * (1.0 + fd.abs()),
                "{name}[{i}]: fd {fd} vs analytic {}",
                analytic[i]
            );
        }
    }
}

#[test]
fn gmm_heads_train_on_toy_data_and_report_the_likelihood_score() {
    for head in [HeadKind::Gmmseg, HeadKind::GmmsegRef, HeadKind::DiscGmm] {
        let mut cfg = TrainConfig::quick();
        cfg.head = HeadConfig::preset(head);
        cfg.head
            .edit(&HeadEdits {
                components: Some(2),
                ..Default::default()
            })
            .unwrap();
        cfg.steps = 6;
        cfg.batch_size = 2;
        cfg.eval_every = 0;
        cfg.checkpoint_every = 0;
        let train = ToyShapes::new(ToySplit::Train, 8, 32, 0).unwrap();
        let anomaly = ToyShapes::new(ToySplit::Anomaly, 4, 32, 1).unwrap();
        let mut t = Trainer::new(cfg.check().unwrap(), 4).unwrap();
        for s in 0..3 {
            let batch = make_batch(&train, &[(2 * s, false), (2 * s + 1, true)]).unwrap();
            let stats = t.train_step(&batch).unwrap();
            assert!(stats.loss.is_finite(), "{head:?}: loss {}", stats.loss);
        }
        let report = evaluate(&mut t.model, &anomaly, 2, 0).unwrap();
        let scores = report.anomaly.expect("anomaly split");
        assert!(
            scores.contains_key("likelihood"),
            "{head:?}: {:?}",
            scores.keys()
        );
        assert!(scores.contains_key("msp"));
    }
}

#[test]
fn component_loss_gradient_reaches_the_features() {
    // The reference flavour's 0.01 × component loss is recorded on a second tape branch;
    // its gradient must reach the features: compare the feature gradient with the loss
    // weight on and off.
    use gmmseg::nn::head::HeadTarget;
    let dev = Dev::default();
    let grad_with = |weight: f32| -> Vec<f32> {
        let mut cfg = GmmHeadConfig::reference_code(2).bind(3, 4);
        cfg.component_loss_weight = weight;
        let mut head =
            GmmHead::new(&dev, "gmmseg-ref", cfg, &mut ChaCha8Rng::seed_from_u64(5)).unwrap();
        let feats: Tensor<(usize, usize, usize, usize), f32, Cpu> = dev.tensor_from_vec(
            (0..2 * 4 * 4 * 4)
                .map(|i| ((i * 13) % 17) as f32 * 0.1 - 0.8)
                .collect(),
            (2, 4, 4, 4),
        );
        let labels = ndarray::Array3::from_shape_fn((2, 4, 4), |(b, y, x)| ((b + y + x) % 3) as u8);
        let loss = head
            .loss(
                feats.clone().traced(Gradients::leaky()),
                &HeadTarget {
                    labels: &labels,
                    labels_feat: &labels,
                },
            )
            .unwrap();
        loss.backward().get(&feats).as_vec()
    };
    let (off, on) = (grad_with(0.0), grad_with(1.0));
    let diff: f32 = off.iter().zip(&on).map(|(a, b)| (a - b).abs()).sum();
    assert!(
        diff > 1e-4,
        "the component loss changed no feature gradient ({diff})"
    );
}

#[test]
fn em_during_the_backward_pass_gives_the_sequential_result_bit_for_bit() {
    // The paper-flavour head declares its update parameter-free, so the trainer runs EM on a
    // second thread during the backward; the reference flavour (trainable LayerNorms) may
    // not. Training with the overlap on and off must give identical weights and GMM state.
    for (kind, config, free) in [
        ("gmmseg", GmmHeadConfig::paper(2).bind(4, 64), true),
        (
            "gmmseg-ref",
            GmmHeadConfig::reference_code(2).bind(4, 64),
            false,
        ),
    ] {
        let head = GmmHead::new(
            &Dev::default(),
            kind,
            config,
            &mut ChaCha8Rng::seed_from_u64(0),
        );
        assert_eq!(head.unwrap().update_is_parameter_free(), free, "{kind}");
    }
    let toy_gmmseg = || {
        let mut cfg = TrainConfig::quick();
        cfg.head = HeadConfig::Gmmseg(GmmHeadConfig::paper(2));
        cfg.steps = 5;
        cfg.batch_size = 2;
        cfg.eval_every = 0;
        cfg.checkpoint_every = 0;
        Trainer::new(cfg.check().unwrap(), 4).unwrap()
    };
    let train = ToyShapes::new(ToySplit::Train, 8, 32, 0).unwrap();
    let run = |overlap: bool| {
        let mut t = toy_gmmseg();
        t.overlap_head_update = overlap;
        let mut losses = Vec::new();
        for s in 0..4 {
            let batch = make_batch(&train, &[(2 * s, false), (2 * s + 1, true)]).unwrap();
            losses.push(t.train_step(&batch).unwrap().loss);
        }
        let mut weights = Vec::new();
        t.model.net.visit(&mut |p| weights.extend(p.to_vec()));
        (losses, weights, t.model.head.fitted_state())
    };
    let (overlapped, sequential) = (run(true), run(false));
    assert_eq!(overlapped.0, sequential.0, "losses");
    assert_eq!(overlapped.1, sequential.1, "network weights");
    assert_eq!(overlapped.2, sequential.2, "GMM state and memory");
    assert_ne!(
        overlapped.2,
        toy_gmmseg().model.head.fitted_state(),
        "EM ran"
    );
}
