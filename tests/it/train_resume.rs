//! Checkpoints: exact resume, refusal of another config, divergence keeps the last good one.

use std::sync::atomic::{AtomicUsize, Ordering};

use gmmseg::data::batch::{batch_plan, make_batch};
use gmmseg::data::toy::{ToyShapes, ToySplit};
use gmmseg::data::{Dataset, Sample};
use gmmseg::nn::Params;
use gmmseg::train::checkpoint;
use gmmseg::train::config::{OptimizerKind, TrainConfig};
use gmmseg::train::trainer::Trainer;
use gmmseg::{GmmSegError, Result};

/// A small network for fast trainings (shared with `gap_factors`).
pub(crate) fn small_config(steps: usize) -> TrainConfig {
    let mut c = TrainConfig::quick();
    c.steps = steps;
    c.batch_size = 4;
    c.optim.warmup_steps = 2;
    c.eval_every = 0;
    c.checkpoint_every = 0;
    c.net.backbone.widths = vec![8, 16, 16];
    c.net.decoder.channels = 16;
    c.net.decoder.aspp_channels = 8;
    c.net.feature_dim = 16;
    c
}

/// Every parameter by name, in visit order.
pub(crate) fn params_of(t: &Trainer) -> Vec<(String, Vec<f32>)> {
    let mut v = Vec::new();
    t.model.visit(&mut |p| v.push((p.name.clone(), p.to_vec())));
    v
}

#[test]
fn resumed_run_is_bitwise_identical_to_uninterrupted_run() {
    for kind in [OptimizerKind::Adamw, OptimizerKind::Sgd] {
        let train = ToyShapes::new(ToySplit::Train, 10, 32, 1).unwrap();
        let mut cfg = small_config(6);
        cfg.optim.kind = kind;
        let dir_a = tempfile::tempdir().unwrap();
        let mut a = Trainer::new(cfg.clone().check().unwrap(), 4)
            .unwrap()
            .with_out_dir(dir_a.path())
            .unwrap();
        a.fit(&train, None, &mut |_| {}).unwrap();

        // interrupted run: 3 steps by hand, checkpoint, then a fresh process-like resume
        let dir_b = tempfile::tempdir().unwrap();
        let mut b = Trainer::new(cfg.clone().check().unwrap(), 4)
            .unwrap()
            .with_out_dir(dir_b.path())
            .unwrap();
        for step in 0..3 {
            let batch = make_batch(
                &train,
                &batch_plan(train.len(), 4, cfg.seed, step, cfg.flip),
            )
            .unwrap();
            b.train_step(&batch).unwrap();
        }
        b.save().unwrap();
        drop(b);
        let mut c = Trainer::new(cfg.clone().check().unwrap(), 4)
            .unwrap()
            .with_out_dir(dir_b.path())
            .unwrap();
        assert_eq!(c.step, 3);
        c.fit(&train, None, &mut |_| {}).unwrap();
        assert_eq!(c.step, 6);
        let (pa, pc) = (params_of(&a), params_of(&c));
        assert_eq!(pa.len(), pc.len());
        for ((na, va), (nc, vc)) in pa.iter().zip(&pc) {
            assert_eq!(na, nc);
            assert!(va == vc, "{kind:?}: parameter {na} differs after resume");
        }
        assert_eq!(a.optimizer, c.optimizer);
    }
}

#[test]
fn checkpoint_of_another_config_is_refused() {
    let train = ToyShapes::new(ToySplit::Train, 4, 32, 1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = small_config(1);
    let mut a = Trainer::new(cfg.clone().check().unwrap(), 4)
        .unwrap()
        .with_out_dir(dir.path())
        .unwrap();
    a.fit(&train, None, &mut |_| {}).unwrap();
    let mut other = cfg.clone();
    other.seed = 9;
    match Trainer::new(other.check().unwrap(), 4)
        .unwrap()
        .with_out_dir(dir.path())
    {
        Err(GmmSegError::Mismatch { detail, .. }) => {
            assert!(detail.contains("seed: 0 → 9"), "{detail}")
        }
        Err(e) => panic!("expected Mismatch, got {e}"),
        Ok(_) => panic!("expected Mismatch, got a trainer"),
    }
    // a longer run of the same config is refused (the schedule differs) ...
    let mut longer = cfg.clone();
    longer.steps = 2;
    match Trainer::new(longer.clone().check().unwrap(), 4)
        .unwrap()
        .with_out_dir(dir.path())
    {
        Err(GmmSegError::Mismatch { detail, .. }) => {
            assert!(detail.contains("steps: 1 → 2"), "{detail}")
        }
        Err(e) => panic!("expected Mismatch, got {e}"),
        Ok(_) => panic!("a longer --steps silently extended the run"),
    }
    // ... unless it is an explicit extension of the finished run
    longer.extended_from = vec![cfg.steps];
    assert_eq!(
        Trainer::new(longer.check().unwrap(), 4)
            .unwrap()
            .with_out_dir(dir.path())
            .unwrap()
            .step,
        1
    );
}

/// Serves NaN images once `good` samples have been read.
struct Poisoned {
    inner: ToyShapes,
    good: usize,
    served: AtomicUsize,
}

impl Dataset for Poisoned {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn get(&self, index: usize) -> Result<Sample> {
        let mut s = self.inner.get(index)?;
        if self.served.fetch_add(1, Ordering::SeqCst) >= self.good {
            s.image.fill(f32::NAN);
        }
        Ok(s)
    }
    fn num_classes(&self) -> usize {
        4
    }
    fn class_names(&self) -> Vec<String> {
        self.inner.class_names()
    }
    fn name(&self) -> String {
        "poisoned".into()
    }
}

#[test]
fn nan_loss_stops_with_diverged_and_keeps_last_good_checkpoint() {
    let train = Poisoned {
        inner: ToyShapes::new(ToySplit::Train, 8, 32, 1).unwrap(),
        good: 4 * 5,
        served: AtomicUsize::new(0),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config(10);
    cfg.checkpoint_every = 2;
    let mut t = Trainer::new(cfg.clone().check().unwrap(), 4)
        .unwrap()
        .with_out_dir(dir.path())
        .unwrap();
    match t.fit(&train, None, &mut |_| {}) {
        Err(GmmSegError::Diverged { step, detail }) => {
            assert_eq!(step, 5, "{detail}");
            // ReLU maps NaN to 0, so the poison may surface in a gradient rather than the loss
            assert!(
                detail.contains("NaN") || detail.contains("not finite"),
                "{detail}"
            );
        }
        other => panic!("expected Diverged, got {other:?}"),
    }
    let loaded = checkpoint::read(dir.path()).unwrap();
    assert_eq!(loaded.step, 4);
    let mut r = Trainer::new(cfg.check().unwrap(), 4)
        .unwrap()
        .with_out_dir(dir.path())
        .unwrap();
    assert_eq!(r.step, 4);
    let clean = ToyShapes::new(ToySplit::Val, 4, 32, 1).unwrap();
    let rep = r.evaluate(&clean, 0).unwrap();
    assert!(rep.nll.is_finite());
}

/// Rewrites the checkpoint in `dir` as the code before the configuration tree wrote it: the
/// same tensors, its config with `"head"` a name and the GMM settings under `"gmm"`, and that
/// config's own hash (any string: the old hash cannot be recomputed from the new code).
fn rewrite_as_pre_tree(dir: &std::path::Path, cfg: &TrainConfig, gmm: serde_json::Value) {
    use safetensors::SafeTensors;
    let path = dir.join(checkpoint::TENSORS_FILE);
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut md = header.metadata().clone().unwrap();
    let mut config = serde_json::to_value(cfg).unwrap();
    let kind = config["head"]["kind"].clone();
    config["head"] = kind;
    config["gmm"] = gmm;
    md.insert("config".into(), config.to_string());
    md.insert("config_hash".into(), "0".repeat(64));
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    std::fs::write(&path, safetensors::serialize(views, &Some(md)).unwrap()).unwrap();
    let meta = dir.join(checkpoint::META_FILE);
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    m["config"] = config;
    std::fs::write(&meta, m.to_string()).unwrap();
}

#[test]
fn a_checkpoint_from_before_the_configuration_tree_resumes_as_the_same_run() {
    use gmmseg::train::config::{HeadConfig, HeadEdits, HeadKind};
    let train = ToyShapes::new(ToySplit::Train, 10, 32, 1).unwrap();
    let mut cfg = small_config(4);
    cfg.head = HeadConfig::preset(HeadKind::Gmmseg);
    cfg.head
        .edit(&HeadEdits {
            components: Some(2),
            em_loops: Some(2),
            ..Default::default()
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Trainer::new(cfg.clone().check().unwrap(), 4)
        .unwrap()
        .with_out_dir(dir.path())
        .unwrap();
    for step in 0..2 {
        let batch = make_batch(
            &train,
            &batch_plan(train.len(), 4, cfg.seed, step, cfg.flip),
        )
        .unwrap();
        a.train_step(&batch).unwrap();
    }
    a.save().unwrap();
    drop(a);
    rewrite_as_pre_tree(
        dir.path(),
        &cfg,
        serde_json::json!({"components": 2, "em": "sinkhorn", "em_loops": 2,
                           "momentum": null, "var_reg": null}),
    );
    let loaded = checkpoint::read(dir.path()).unwrap();
    assert_eq!(loaded.config, cfg);
    let meta = checkpoint::read_meta(dir.path()).unwrap();
    assert_eq!(meta.config, cfg);
    // the same command resumes it, at its step
    let b = Trainer::new(cfg.clone().check().unwrap(), 4)
        .unwrap()
        .with_out_dir(dir.path())
        .unwrap();
    assert_eq!(b.step, 2);
    // a pre-tree config of another head is another run
    rewrite_as_pre_tree(
        dir.path(),
        &cfg,
        serde_json::json!({"components": 3, "em": "sinkhorn", "em_loops": 2,
                           "momentum": null, "var_reg": null}),
    );
    let refused = Trainer::new(cfg.clone().check().unwrap(), 4)
        .unwrap()
        .with_out_dir(dir.path());
    assert!(
        matches!(&refused, Err(GmmSegError::Mismatch { detail, .. }) if detail.contains("head.online.gmm.components: 3 → 2")),
        "{:?}",
        refused.err()
    );
}
