//! The `gap` study's factors (issue 19, item 2): each reaches the configuration it names and
//! nothing else, a mixture factor is refused for the softmax head, a GMMSeg head with every
//! factor on trains and resumes to the same bits, EM on evaluation-mode features changes the
//! mixture and not the step's gradients, and the factor tables read the study's claims.

use gmmseg::data::batch::{batch_plan, make_batch, SamplerKind};
use gmmseg::data::toy::{ToyShapes, ToySplit};
use gmmseg::data::Dataset;
use gmmseg::experiments::report::gap_tables;
use gmmseg::experiments::{
    specs_for, ExperimentProfile, ExperimentRunner, Study, GAP_FACTORS, GAP_PREFILL_BATCHES,
    GAP_SHARED_FACTORS, SOFTMAX_PREFIX,
};
use gmmseg::gmm::VarFloor;
use gmmseg::train::config::{GapFactors, HeadConfig, HeadKind, TrainConfig};
use gmmseg::train::trainer::Trainer;
use gmmseg::GmmSegError;

use crate::train_resume::{params_of, small_config};

fn quick() -> gmmseg::experiments::ValidProfile {
    ExperimentProfile::quick().check().unwrap()
}

/// Each factor spec's configuration is the tuned GMMSeg's with exactly its factor's fields
/// changed; the softmax factor specs are the baseline's with the network or sampler field.
#[test]
fn every_gap_factor_reaches_the_configuration_it_names_and_nothing_else() {
    let p = quick();
    let specs = specs_for(Study::Gap, &p, "synthscapes").unwrap();
    let config = |name: &str| -> TrainConfig {
        let s = specs.iter().find(|s| s.name == name).unwrap();
        s.train_config(&p, "synthscapes", 0).unwrap()
    };
    let base = config("gmmseg");
    let softmax = config("softmax");
    assert_eq!(
        specs.len(),
        2 + GAP_FACTORS.len() + GAP_SHARED_FACTORS.len()
    );
    let edit = |f: &dyn Fn(&mut TrainConfig)| {
        let mut c = base.clone();
        f(&mut c);
        c
    };
    fn gmm(c: &mut TrainConfig) -> &mut gmmseg::nn::head::GmmHeadConfig {
        c.head.gmm_mut().unwrap()
    }
    let relative = |r: f32| {
        move |c: &mut TrainConfig| {
            gmm(c).online.gmm.var_floor = VarFloor::Relative;
            gmm(c).online.gmm.var_reg = r;
        }
    };
    assert_eq!(config("relative floor 0.01"), edit(&relative(0.01)));
    assert_eq!(config("relative floor 0.1"), edit(&relative(0.1)));
    assert_eq!(config("relative floor 1"), edit(&relative(1.0)));
    assert_eq!(
        config("no projection ReLU"),
        edit(&|c| c.net.projection_relu = false)
    );
    assert_eq!(
        config("no projection ReLU + relative floor 0.1"),
        edit(&|c| {
            c.net.projection_relu = false;
            relative(0.1)(c);
        })
    );
    assert_eq!(
        config("learnable temperature"),
        edit(&|c| gmm(c).learn_temperature = true)
    );
    assert_eq!(config("log prior"), edit(&|c| gmm(c).log_prior = true));
    assert_eq!(
        config("class-balanced sampler"),
        edit(&|c| c.sampler = SamplerKind::ClassBalanced)
    );
    assert_eq!(
        config("EM on eval-mode features"),
        edit(&|c| gmm(c).em_on_eval_features = true)
    );
    assert_eq!(
        config("momentum warm-up"),
        edit(&|c| gmm(c).online.momentum_warmup = true)
    );
    assert_eq!(
        config("memory pre-filled"),
        edit(&|c| gmm(c).online.prefill_batches = GAP_PREFILL_BATCHES)
    );
    let mut s = softmax.clone();
    s.net.projection_relu = false;
    assert_eq!(config(&format!("{SOFTMAX_PREFIX}no projection ReLU")), s);
    let mut s = softmax.clone();
    s.sampler = SamplerKind::ClassBalanced;
    assert_eq!(
        config(&format!("{SOFTMAX_PREFIX}class-balanced sampler")),
        s
    );
    // the base is the tuned preset, untouched by the factors
    assert!(base.net.projection_relu && base.sampler == SamplerKind::Shuffle);
    let g = base.head.gmm().unwrap();
    assert_eq!(g.online.gmm.var_floor, VarFloor::Absolute);
    assert!(!g.learn_temperature && !g.log_prior && !g.em_on_eval_features);
    assert!(!g.online.momentum_warmup && g.online.prefill_batches == 0);
}

#[test]
fn a_mixture_factor_is_refused_for_the_softmax_head_by_name() {
    let mut c = TrainConfig::quick();
    c.head = HeadConfig::preset(HeadKind::Softmax);
    for (factors, name) in [
        (
            GapFactors {
                log_prior: Some(true),
                ..Default::default()
            },
            "log_prior",
        ),
        (
            GapFactors {
                relative_var_floor: Some(0.1),
                ..Default::default()
            },
            "relative_var_floor",
        ),
    ] {
        match factors.apply(&mut c.clone()) {
            Err(GmmSegError::InvalidConfig { field, .. }) => assert_eq!(field, name),
            other => panic!("expected InvalidConfig for {name}, got {other:?}"),
        }
    }
    // the network and sampler factors apply to softmax
    GapFactors {
        projection_relu: Some(false),
        class_balanced: Some(true),
        ..Default::default()
    }
    .apply(&mut c)
    .unwrap();
    assert!(!c.net.projection_relu);
}

fn small_gmm_config(steps: usize, factors: &GapFactors) -> TrainConfig {
    let mut c = small_config(steps);
    c.head = HeadConfig::preset(HeadKind::Gmmseg);
    factors.apply(&mut c).unwrap();
    c
}

fn every_factor() -> GapFactors {
    GapFactors {
        relative_var_floor: Some(0.1),
        learn_temperature: Some(true),
        log_prior: Some(true),
        em_on_eval_features: Some(true),
        momentum_warmup: Some(true),
        prefill_batches: Some(2),
        projection_relu: Some(false),
        class_balanced: Some(true),
    }
}

#[test]
fn a_gmm_head_with_every_factor_trains_and_resumes_to_the_same_bits() {
    let train = ToyShapes::new(ToySplit::Train, 10, 32, 1).unwrap();
    let mut cfg = small_gmm_config(6, &every_factor());
    cfg.checkpoint_every = 3;
    let dir_a = tempfile::tempdir().unwrap();
    let mut a = Trainer::new(cfg.clone().check().unwrap(), 4)
        .unwrap()
        .with_out_dir(dir_a.path())
        .unwrap();
    a.fit(&train, None, &mut |_| {}).unwrap();

    // the same run, interrupted after its step-3 checkpoint (the pre-fill happened before
    // step 0 and is in the checkpoint's memory), then resumed in a new trainer
    let dir_b = tempfile::tempdir().unwrap();
    let mut b = Trainer::new(cfg.clone().check().unwrap(), 4)
        .unwrap()
        .with_out_dir(dir_b.path())
        .unwrap();
    let interrupted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.fit(&train, None, &mut |p| {
            if p.step == 3 {
                panic!("simulated interruption after step 3");
            }
        })
    }));
    assert!(interrupted.is_err());
    drop(b);
    let mut c = Trainer::new(cfg.clone().check().unwrap(), 4)
        .unwrap()
        .with_out_dir(dir_b.path())
        .unwrap();
    assert_eq!(c.step, 3);
    c.fit(&train, None, &mut |_| {}).unwrap();
    let (pa, pc) = (params_of(&a), params_of(&c));
    assert_eq!(pa, pc, "parameters differ after resume");
    assert_eq!(a.model.head.fitted_state(), c.model.head.fitted_state());
    // the temperature was trained, the prior counted
    let t = pa
        .iter()
        .find(|(n, _)| n == "head.log_temperature")
        .expect("a learnable temperature");
    assert_ne!(t.1, vec![0.0], "the temperature never moved");
    let state = a.model.head.fitted_state();
    let (_, counts) = state.get("prior.class_pixels").expect("prior counts saved");
    assert!(counts.iter().sum::<f32>() > 0.0);
    let trace = a.model.head.em_trace().unwrap();
    let share = trace.floor_share_mean().unwrap();
    assert!(share > 0.0 && share < 1.0, "{share}");
}

/// One step: the gradients (hence the network) cannot depend on which features EM reads,
/// but the fitted mixture does.
#[test]
fn em_on_eval_features_changes_the_mixture_not_the_step() {
    let train = ToyShapes::new(ToySplit::Train, 8, 32, 1).unwrap();
    let run = |eval: bool| {
        let f = GapFactors {
            em_on_eval_features: Some(eval),
            ..Default::default()
        };
        let cfg = small_gmm_config(1, &f);
        let mut t = Trainer::new(cfg.clone().check().unwrap(), 4).unwrap();
        let batch = make_batch(&train, &batch_plan(train.len(), 4, cfg.seed, 0, cfg.flip)).unwrap();
        t.train_step(&batch).unwrap();
        let means = t.model.head.mixture().unwrap().means.clone();
        (params_of(&t), means)
    };
    let (p_train, m_train) = run(false);
    let (p_eval, m_eval) = run(true);
    assert_eq!(p_train, p_eval);
    assert_ne!(m_train, m_eval);
}

/// The pre-fill fits nothing: the first step's loss reads the same initial mixture with or
/// without it, so the network after one step is the same bit for bit, while the mixture's
/// first update saw the pre-filled memory and differs.
#[test]
fn prefill_fills_the_memory_and_fits_nothing() {
    let train = ToyShapes::new(ToySplit::Train, 8, 32, 1).unwrap();
    let run = |prefill: usize| {
        let f = GapFactors {
            prefill_batches: Some(prefill),
            ..Default::default()
        };
        let cfg = small_gmm_config(1, &f);
        let mut t = Trainer::new(cfg.check().unwrap(), 4).unwrap();
        t.fit(&train, None, &mut |_| {}).unwrap();
        let state = t.model.head.fitted_state();
        let (_, lens) = state.get("gmm.memory_len").unwrap().clone();
        let means = t.model.head.mixture().unwrap().means.clone();
        (params_of(&t), means, lens.iter().sum::<f32>())
    };
    let (p_plain, m_plain, len_plain) = run(0);
    let (p_filled, m_filled, len_filled) = run(2);
    assert_eq!(p_plain, p_filled, "the pre-fill changed the network");
    assert_ne!(
        m_plain, m_filled,
        "the first update did not see the pre-filled memory"
    );
    assert!(
        len_filled > len_plain && len_plain > 0.0,
        "{len_filled} vs {len_plain}"
    );
}

#[test]
fn gap_tables_read_every_factor_from_the_claims() {
    let dir = tempfile::tempdir().unwrap();
    let p = ExperimentProfile::tiny().check().unwrap();
    let mut r = ExperimentRunner::new(p, "synthscapes")
        .unwrap()
        .with_results_dir(dir.path());
    let out = r.run(Study::Gap).unwrap();
    let html = gap_tables(std::slice::from_ref(&out)).unwrap().0;
    for (name, _) in GAP_FACTORS {
        assert!(html.contains(name), "{name} missing");
    }
    assert!(html.contains("kept on tune"));
    assert!(html.contains("softmax + class-balanced sampler"));
    // every GMM variant's rows carry the tune mIoU and the floor share
    let rows = &out.runs;
    let metric = rows.column("metric").unwrap().str().unwrap();
    let group = rows.column("group").unwrap().str().unwrap();
    assert!(metric
        .iter()
        .zip(group.iter())
        .any(|(m, g)| m == Some("miou") && g == Some("tune")));
    assert!(metric.iter().any(|m| m == Some("em_floor_share_mean")));
    // another study's results are refused
    let main = r.run(Study::MainResults).unwrap();
    assert!(gap_tables(std::slice::from_ref(&main)).is_err());
}
