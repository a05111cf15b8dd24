//! Training one model and recording everything any study reads from it, so that a model
//! shared by several studies is trained and evaluated once.
//!
//! Order of evaluation (it matters: the post-hoc heads replace the trained head):
//! 1. validation split with the trained head: segmentation and calibration metrics, plus the
//!    reliability bins (15 equal-width bins) and the timed inference throughput;
//! 2. every anomaly split with the trained head; for the softmax head, with the Mahalanobis
//!    score added (one Gaussian per class, shared covariance, on the training split's
//!    penultimate features);
//! 3. the tune split with the trained head (segmentation metrics a choice may read);
//! 4. temperature scaling: one temperature fitted on the `tune` split's logits (NLL), and the
//!    validation split evaluated again with it (the fair calibration baseline);
//! 5. softmax head only: the post-hoc GMM fitted on the same features replaces the head, and
//!    the validation split is evaluated again (Table 3).
//!
//! Every evaluation carries image-bootstrap 95% intervals of its calibration and anomaly
//! metrics (1,000 replicates, seed 0).

use std::collections::BTreeMap;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{open_split, EvalSettings, ValidProfile};
use crate::data::batch::make_batch;
use crate::data::{Batch, Dataset};
use crate::error::Result;
use crate::metrics::temperature::fit_temperature;
use crate::nn::head::{Mahalanobis, PosthocGmmHead, WithMahalanobis};
use crate::train::config::{HeadKind, TrainConfig};
use crate::train::eval::{collect_logits, evaluate_with, EvalOptions, EvalReport};
use crate::train::posthoc::{collect_features, fit_posthoc_gmm, PosthocConfig};
use crate::train::trainer::Trainer;

/// One bin of the validation reliability diagram (serialisable twin of
/// [`crate::metrics::ReliabilityBin`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BinRecord {
    /// Lower edge of the confidence range.
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
    /// Pixels in the bin.
    pub count: u64,
    /// Mean confidence (`None`: empty bin).
    pub confidence: Option<f64>,
    /// Accuracy (`None`: empty bin).
    pub accuracy: Option<f64>,
}

/// Everything measured on one trained model; stored as
/// `data/results/<profile>/models/<key>.json` with the training configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// [`super::model_key`] of the model.
    pub key: String,
    /// The exact training configuration.
    pub config: TrainConfig,
    /// The evaluation settings.
    pub eval: EvalSettings,
    /// Dataset spec.
    pub dataset: String,
    /// Wall-clock seconds of training (data generation included).
    pub train_s: f64,
    /// Mean milliseconds per training step (`train_s / steps`).
    pub step_ms: f64,
    /// Inference throughput: images per second through the network and head (batches of the
    /// training batch size, after one warm-up batch; no metric computation).
    pub images_per_s: f64,
    /// Validation split, trained head.
    pub val: EvalReport,
    /// Tune split, trained head: what a choice among variants may read (the `gap` study's
    /// "kept on tune" rule); `None` in records made before it was measured.
    #[serde(default)]
    pub tune: Option<EvalReport>,
    /// Validation reliability bins, trained head.
    pub bins: Vec<BinRecord>,
    /// Image-bootstrap 95% interval of each validation bin's accuracy.
    #[serde(default)]
    pub bins_ci95: Vec<Option<[f64; 2]>>,
    /// Per class, the validation reliability bins of p_c against the class frequency.
    #[serde(default)]
    pub classwise_bins: Vec<Vec<BinRecord>>,
    /// The temperature fitted on the tune split (trained head).
    #[serde(default)]
    pub temperature: Option<crate::metrics::temperature::Temperature>,
    /// The validation split with the trained head and that temperature.
    #[serde(default)]
    pub val_ts: Option<EvalReport>,
    /// Validation reliability bins with the temperature.
    #[serde(default)]
    pub bins_ts: Vec<BinRecord>,
    /// Image-bootstrap 95% interval of each of those bins' accuracy.
    #[serde(default)]
    pub bins_ts_ci95: Vec<Option<[f64; 2]>>,
    /// Per anomaly split (`anomaly`, `anomaly-context`): the evaluation with the trained head
    /// (softmax: plus the `mahalanobis` score).
    pub anomaly: BTreeMap<String, EvalReport>,
    /// Softmax head only: the validation split classified by the post-hoc GMM.
    pub posthoc_val: Option<EvalReport>,
    /// GMM heads fitted by EM: the E-step statistics over training (marginal error and mean
    /// max responsibility, means and maxima over updates).
    #[serde(default)]
    pub em: Option<crate::gmm::EmTrace>,
}

/// The dataset splits a runner trains and evaluates on, opened once.
pub(crate) struct Splits {
    train: Box<dyn Dataset>,
    tune: Box<dyn Dataset>,
    val: Box<dyn Dataset>,
    anomaly: Vec<(String, Box<dyn Dataset>)>,
}

/// The anomaly splits of a dataset spec: SynthScapes has two (Lost&Found-like objects on the
/// road, and objects anywhere in context), DigitScenes one, a folder dataset one if it has an
/// `anomaly/` split folder.
pub(crate) fn anomaly_splits(dataset: &str) -> Vec<&'static str> {
    let (kind, path) = match dataset.split_once(':') {
        Some((k, p)) => (k, Some(p)),
        None => (dataset, None),
    };
    match (kind, path) {
        ("synthscapes", _) => vec!["anomaly", "anomaly-context"],
        ("digitscenes", _) => vec!["anomaly"],
        (_, Some(p)) if std::path::Path::new(p).join("anomaly").is_dir() => vec!["anomaly"],
        _ => vec![],
    }
}

impl Splits {
    pub(crate) fn open(profile: &ValidProfile, dataset: &str) -> Result<Splits> {
        let p = profile.get();
        let train = open_split(p, dataset, "train")?;
        let tune = open_split(p, dataset, "tune")?;
        let val = open_split(p, dataset, "val")?;
        let anomaly = anomaly_splits(dataset)
            .into_iter()
            .map(|s| Ok((s.to_string(), open_split(p, dataset, s)?)))
            .collect::<Result<_>>()?;
        Ok(Splits {
            train,
            tune,
            val,
            anomaly,
        })
    }
}

/// `n` timing batches of `batch_size` images cycling over `ds` in order (no augmentation).
fn timing_batches(ds: &dyn Dataset, batch_size: usize, n: usize) -> Result<Vec<Batch>> {
    let b = batch_size.max(1);
    (0..n)
        .map(|k| {
            let plan: Vec<(usize, bool)> =
                (0..b).map(|j| ((k * b + j) % ds.len(), false)).collect();
            make_batch(ds, &plan)
        })
        .collect()
}

/// Inference images/s of the model on `ds`: one warm-up batch, then `timed_batches`
/// batches cycling over the split.
fn throughput(t: &mut Trainer, ds: &dyn Dataset, timed_batches: usize) -> Result<f64> {
    let b = t.config.get().batch_size.max(1);
    let batches = timing_batches(ds, b, timed_batches.max(1))?;
    t.model.infer(&batches[0].images)?; // warm-up: the first batch, untimed
    let started = Instant::now();
    for batch in &batches {
        t.model.infer(&batch.images)?;
    }
    Ok((batches.len() * b) as f64 / started.elapsed().as_secs_f64().max(1e-9))
}

/// Inference throughput on the validation split of the network of `model` relative to
/// `reference`, both built untrained from their configs (the work of a dense network and of
/// the GMM likelihood does not depend on the weights), timed *paired* as the `gmmseg`
/// benchmark does: after `warmup` rounds, each of `rounds` rounds runs one batch (cycling
/// over `timed_batches` batches) through both models back to back, in alternating order,
/// and the round's ratio is reference time / model time. Returns the median over rounds, so
/// that load from other processes, which moves both timings of a round together, largely
/// cancels — unlike two throughputs measured minutes apart, after two different trainings.
pub(crate) fn paired_throughput_ratio(
    model: &TrainConfig,
    reference: &TrainConfig,
    splits: &Splits,
    timed_batches: usize,
    (warmup, rounds): (usize, usize),
) -> Result<f64> {
    let ds = splits.val.as_ref();
    let classes = ds.num_classes();
    let mut a = Trainer::new(model.clone().check()?, classes)?;
    let mut b = Trainer::new(reference.clone().check()?, classes)?;
    let batches = timing_batches(ds, model.batch_size, timed_batches.max(1))?;
    let time = |t: &mut Trainer, r: usize| -> Result<f64> {
        let started = Instant::now();
        t.model.infer(&batches[r % batches.len()].images)?;
        Ok(started.elapsed().as_secs_f64().max(1e-9))
    };
    let rounds = rounds.max(1);
    let mut ratios = Vec::with_capacity(rounds);
    for r in 0..warmup + rounds {
        let (ta, tb) = if r % 2 == 0 {
            let ta = time(&mut a, r)?;
            (ta, time(&mut b, r)?)
        } else {
            let tb = time(&mut b, r)?;
            (time(&mut a, r)?, tb)
        };
        if r >= warmup {
            ratios.push(tb / ta);
        }
    }
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    Ok(if n % 2 == 1 {
        ratios[n / 2]
    } else {
        0.5 * (ratios[n / 2 - 1] + ratios[n / 2])
    })
}

/// Trains the model of `train` on `splits` and evaluates it as the module docs say.
pub(crate) fn train_and_evaluate(
    profile: &ValidProfile,
    splits: &Splits,
    train: &TrainConfig,
    eval: &EvalSettings,
    key: &str,
) -> Result<ModelRecord> {
    let p = profile.get();
    let cfg = train.clone().check()?;
    let classes = splits.train.num_classes();
    let mut t = Trainer::new(cfg, classes)?;
    let started = Instant::now();
    t.fit(splits.train.as_ref(), None, &mut |_| {})?;
    let train_s = started.elapsed().as_secs_f64();
    let em = t.model.head.em_trace();
    let val = t.evaluate(splits.val.as_ref(), p.val_images)?;
    let tune = t.evaluate(splits.tune.as_ref(), p.val_images)?;
    let bins = bin_records(&val.bins);
    let (tune_logits, tune_labels) = collect_logits(
        &mut t.model,
        splits.tune.as_ref(),
        train.batch_size,
        p.val_images,
        TEMPERATURE_PIXELS,
    )?;
    let temperature = fit_temperature(tune_logits.view(), &tune_labels)?;
    let val_ts = evaluate_with(
        &mut t.model,
        splits.val.as_ref(),
        train.batch_size,
        p.val_images,
        &EvalOptions {
            temperature: Some(temperature.t),
            ..EvalOptions::default()
        },
    )?;
    let images_per_s = throughput(&mut t, splits.val.as_ref(), p.runtime_batches)?;
    let mut anomaly = BTreeMap::new();
    let mut posthoc_val = None;
    if train.head.kind() == HeadKind::Softmax {
        let mut pc = PosthocConfig::new(classes, t.model.head.feature_dim());
        pc.max_images = p.posthoc_images;
        pc.max_pixels_per_class = p.posthoc_pixels_per_class;
        pc.iterations = p.posthoc_iterations;
        pc.batch_size = train.batch_size;
        pc.seed = train.seed;
        let data = collect_features(&mut t.model, splits.train.as_ref(), &pc)?;
        let params = fit_posthoc_gmm(&data, &pc)?;
        let scorer = Mahalanobis::fit(&data, classes, pc.covariance_reg)?;
        let inner = std::mem::replace(
            &mut t.model.head,
            Box::new(PosthocGmmHead::new(params.clone(), pc.gmm.reduction)),
        );
        t.model.head = Box::new(WithMahalanobis { inner, scorer });
        for (name, ds) in &splits.anomaly {
            anomaly.insert(name.clone(), t.evaluate(ds.as_ref(), p.anomaly_images)?);
        }
        t.model.head = Box::new(PosthocGmmHead::new(params, pc.gmm.reduction));
        posthoc_val = Some(t.evaluate(splits.val.as_ref(), p.val_images)?);
    } else {
        for (name, ds) in &splits.anomaly {
            anomaly.insert(name.clone(), t.evaluate(ds.as_ref(), p.anomaly_images)?);
        }
    }
    Ok(ModelRecord {
        key: key.to_string(),
        config: train.clone(),
        eval: eval.clone(),
        dataset: train.dataset.clone(),
        train_s,
        step_ms: 1000.0 * train_s / train.steps as f64,
        images_per_s,
        bins_ci95: val.bin_accuracy_ci95.clone(),
        classwise_bins: val.classwise_bins.iter().map(|b| bin_records(b)).collect(),
        val,
        tune: Some(tune),
        bins,
        temperature: Some(temperature),
        bins_ts: bin_records(&val_ts.bins),
        bins_ts_ci95: val_ts.bin_accuracy_ci95.clone(),
        val_ts: Some(val_ts),
        anomaly,
        posthoc_val,
        em,
    })
}

/// Pixels of the tune split a temperature is fitted on (evenly spaced; one scalar needs few).
const TEMPERATURE_PIXELS: usize = 500_000;

fn bin_records(bins: &[crate::metrics::ReliabilityBin]) -> Vec<BinRecord> {
    bins.iter()
        .map(|b| BinRecord {
            lower: b.lower,
            upper: b.upper,
            count: b.count,
            confidence: b.confidence,
            accuracy: b.accuracy,
        })
        .collect()
}
