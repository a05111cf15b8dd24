//! A head defined outside the crate plugs into the trainer through the `Head` trait alone:
//! its loss sees features with tape and labels at both resolutions, `after_step` sees the
//! step's detached features, its fitted state goes into checkpoints and comes back on resume,
//! and its anomaly score appears in the evaluation. (A nearest-class-mean head: the shape of
//! a GMM head with M = 1 and unit variances, fitted by a momentum mean instead of EM.)

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use dfdx::prelude::*;
use gmmseg::data::toy::{ToyShapes, ToySplit};
use gmmseg::nn::head::{FittedState, Head, HeadOutput, HeadTarget, StepFeatures};
use gmmseg::nn::{Act, Param, Params, Scalar, Tp};
use gmmseg::ops::layout::{from_pixels, to_pixels};
use gmmseg::train::checkpoint;
use gmmseg::train::config::TrainConfig;
use gmmseg::train::trainer::Trainer;
use gmmseg::Result;

const C: usize = 4;
const D: usize = 16;

struct CentroidHead {
    means: Vec<f32>, // (C, D), fitted without gradient
    calls: Arc<AtomicUsize>,
    dev: Cpu,
}

impl CentroidHead {
    /// logits[n, c] = 2 x_n·μ_c − ‖μ_c‖² (= −‖x − μ_c‖² up to a per-pixel constant).
    fn logits<T: Tape<f32, Cpu>>(&self, feats: Act<T>) -> Result<Act<T>> {
        let (b, _, h, w) = *feats.shape();
        let x = to_pixels(feats)?;
        let n = b * h * w;
        let mut mt = vec![0.0f32; D * C];
        for c in 0..C {
            for d in 0..D {
                mt[d * C + c] = 2.0 * self.means[c * D + d];
            }
        }
        let mt: Tensor<(usize, usize), f32, Cpu> = self.dev.tensor_from_vec(mt, (D, C));
        let norms: Vec<f32> = (0..n)
            .flat_map(|_| {
                (0..C).map(|c| {
                    -self.means[c * D..(c + 1) * D]
                        .iter()
                        .map(|v| v * v)
                        .sum::<f32>()
                })
            })
            .collect();
        let bias: Tensor<(usize, usize), f32, Cpu> = self.dev.tensor_from_vec(norms, (n, C));
        let z = x.matmul(mt) + bias;
        from_pixels(z, b, h, w)
    }
}

impl Params for CentroidHead {
    fn visit(&self, _f: &mut dyn FnMut(&Param)) {}
    fn visit_mut(&mut self, _f: &mut dyn FnMut(&mut Param)) {}
}

impl Head for CentroidHead {
    fn kind(&self) -> &'static str {
        "centroid"
    }
    fn num_classes(&self) -> usize {
        C
    }
    fn feature_dim(&self) -> usize {
        D
    }
    fn logits_train(&mut self, feats: Act<Tp>) -> Result<Act<Tp>> {
        self.logits(feats)
    }
    fn loss(&mut self, feats: Act<Tp>, target: &HeadTarget<'_>) -> Result<Scalar<Tp>> {
        let (b, _, h, w) = *feats.shape();
        assert_eq!(target.labels_feat.dim(), (b, h, w));
        assert_eq!(target.labels.dim().0, b);
        let (_, lh, lw) = target.labels.dim();
        let logits = gmmseg::nn::resample::resize_bilinear(self.logits(feats)?, lh, lw)?;
        gmmseg::nn::loss::cross_entropy(logits, target.labels)
    }
    fn after_step(&mut self, s: &StepFeatures<'_>) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(s.feats.nrows(), s.labels.len());
        assert_eq!(s.feats.ncols(), D);
        for c in 0..C {
            let rows: Vec<usize> = (0..s.labels.len())
                .filter(|&i| s.labels[i] as usize == c)
                .collect();
            if rows.is_empty() {
                continue; // absent classes keep their parameters
            }
            for d in 0..D {
                let m = rows.iter().map(|&i| s.feats[(i, d)]).sum::<f32>() / rows.len() as f32;
                self.means[c * D + d] = 0.9 * self.means[c * D + d] + 0.1 * m;
            }
        }
        Ok(())
    }
    fn infer(&self, feats: Act) -> Result<HeadOutput> {
        let logits = self.logits(feats)?;
        let (b, c, h, w) = *logits.shape();
        let z = logits.as_vec();
        let hw = h * w;
        let score: Vec<f32> = (0..b * hw)
            .map(|i| {
                -(0..c)
                    .map(|k| z[((i / hw) * c + k) * hw + i % hw])
                    .fold(f32::MIN, f32::max)
            })
            .collect();
        Ok(HeadOutput {
            logits,
            anomaly: vec![(
                "centroid".into(),
                self.dev.tensor_from_vec(score, (b, 1, h, w)),
            )],
        })
    }
    fn fitted_state(&self) -> FittedState {
        FittedState::from([("means".to_string(), (vec![C, D], self.means.clone()))])
    }
    fn load_fitted_state(&mut self, state: &FittedState) -> Result<()> {
        self.means = state.get("means").expect("means saved").1.clone();
        Ok(())
    }
}

fn head(calls: &Arc<AtomicUsize>) -> Box<dyn Head> {
    Box::new(CentroidHead {
        means: (0..C * D).map(|i| ((i * 7) % 5) as f32 * 0.1).collect(),
        calls: calls.clone(),
        dev: Cpu::default(),
    })
}

#[test]
fn custom_head_trains_checkpoints_resumes_and_scores_anomalies() {
    let mut cfg = TrainConfig::quick();
    cfg.net.feature_dim = D;
    cfg.steps = 4;
    cfg.batch_size = 2;
    cfg.eval_every = 0;
    cfg.checkpoint_every = 2;
    let cfg = cfg.check().unwrap();
    let train = ToyShapes::new(ToySplit::Train, 8, 32, 0).unwrap();
    let anomaly = ToyShapes::new(ToySplit::Anomaly, 4, 32, 0).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let calls = Arc::new(AtomicUsize::new(0));
    let mut t = Trainer::with_head(cfg.clone(), head(&calls))
        .unwrap()
        .with_out_dir(dir.path())
        .unwrap();
    let before = t.model.head.fitted_state();
    t.fit(&train, None, &mut |_| {}).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 4, "after_step once per step");
    let after = t.model.head.fitted_state();
    assert_ne!(before, after, "EM-like state moved");

    let saved = checkpoint::read(dir.path()).unwrap();
    assert_eq!(saved.tensors["fitted.means"].1, after["means"].1);
    let calls2 = Arc::new(AtomicUsize::new(0));
    let mut r = Trainer::with_head(cfg, head(&calls2))
        .unwrap()
        .with_out_dir(dir.path())
        .unwrap();
    assert_eq!(r.step, 4);
    assert_eq!(
        r.model.head.fitted_state(),
        after,
        "fitted state restored on resume"
    );

    let rep = r.evaluate(&anomaly, 0).unwrap();
    let a = rep.anomaly.unwrap();
    assert!(a.contains_key("centroid") && a.contains_key("msp"));
}
