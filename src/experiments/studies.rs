//! What each study trains ([`specs_for`]) and which numbers it reads from each model's
//! record ([`measure`]).
//!
//! Conventions of the rows: `group` is the decoder in `main_results`, the split in `anomaly`
//! and `gen_vs_disc` (`val` for segmentation metrics), otherwise `val` or `""`; `param` is
//! the EM loops (`em`), M (`components`) or the reliability-bin centre (`calibration`).

use serde::{Deserialize, Serialize};

use super::model::{anomaly_splits, BinRecord, ModelRecord};
use super::ValidProfile;
use crate::error::{GmmSegError, Result};
use crate::nn::decoder::DecoderKind;
use crate::nn::head::GmmHeadConfig;
use crate::train::config::{
    EmKind, FlavourOverrides, GapFactors, HeadEdits, HeadKind, TrainConfig, DEFAULT_COMPONENTS,
};
use crate::train::eval::EvalReport;

/// One ablation study of the paper.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Study {
    /// Table 1: softmax vs GMMSeg mIoU with FCN and DeepLabV3+-lite.
    MainResults,
    /// Table 2: anomaly scores (MSP, entropy, max-logit, Mahalanobis vs GMMSeg likelihood).
    Anomaly,
    /// Table 3: GMMSeg vs a post-hoc GMM on the softmax model's features.
    OnlineVsPosthoc,
    /// Table 4: generative (EM) vs discriminative (SGD) GMM head.
    GenVsDisc,
    /// Table 5a: vanilla vs Sinkhorn EM, 1/5/10 EM loops per iteration.
    Em,
    /// Table 5b: components per class M.
    Components,
    /// Fig. 5: reliability diagrams and ECE.
    Calibration,
    /// Paper flavour vs reference-code flavour (the released code's departures).
    Flavours,
    /// §4.3: train-step time and inference throughput.
    Runtime,
    /// Why the generative head trails softmax: one factor at a time over the tuned GMMSeg
    /// (issue 19, item 2).
    Gap,
}

impl Study {
    /// Every study, in the order `ablate all` runs them (cheapest shared models first).
    pub const ALL: [Study; 10] = [
        Study::MainResults,
        Study::Anomaly,
        Study::OnlineVsPosthoc,
        Study::GenVsDisc,
        Study::Calibration,
        Study::Runtime,
        Study::Flavours,
        Study::Em,
        Study::Components,
        Study::Gap,
    ];

    /// The name used on the command line and for the CSV file.
    pub fn name(&self) -> &'static str {
        match self {
            Study::MainResults => "main_results",
            Study::Anomaly => "anomaly",
            Study::OnlineVsPosthoc => "online_vs_posthoc",
            Study::GenVsDisc => "gen_vs_disc",
            Study::Em => "em",
            Study::Components => "components",
            Study::Calibration => "calibration",
            Study::Flavours => "flavours",
            Study::Runtime => "runtime",
            Study::Gap => "gap",
        }
    }

    /// Parses a study name (`main_results`, … or with dashes).
    ///
    /// # Errors
    /// [`GmmSegError::InvalidInput`] naming `study` and listing the valid names.
    pub fn parse(name: &str) -> Result<Study> {
        let n = name.replace('-', "_");
        Study::ALL
            .into_iter()
            .find(|s| s.name() == n)
            .ok_or_else(|| {
                GmmSegError::input(
                    "study",
                    format!(
                        "unknown study `{name}`; expected all or one of {}",
                        Study::ALL.map(|s| s.name()).join(", ")
                    ),
                )
            })
    }
}

impl std::fmt::Display for Study {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One trained configuration of a study (crossed with seeds by the runner).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// Unique name within the study (e.g. `gmmseg/fcn`, `vanilla/L=5`, `M=3`).
    pub name: String,
    /// Head.
    pub head: HeadKind,
    /// Decoder override (`None`: the profile's).
    pub decoder: Option<DecoderKind>,
    /// Components per class override.
    pub components: Option<usize>,
    /// E-step override.
    pub em: Option<EmKind>,
    /// EM loops override.
    pub em_loops: Option<usize>,
    /// GMM momentum τ override.
    pub momentum: Option<f32>,
    /// Reference-code knobs switched on in the paper flavour (the `flavours` study).
    #[serde(default)]
    pub overrides: FlavourOverrides,
    /// Factors switched on over the tuned preset (the `gap` study).
    #[serde(default, skip_serializing_if = "GapFactors::is_empty")]
    pub factors: GapFactors,
}

impl RunSpec {
    fn new(name: impl Into<String>, head: HeadKind) -> Self {
        RunSpec {
            name: name.into(),
            head,
            decoder: None,
            components: None,
            em: None,
            em_loops: None,
            momentum: None,
            overrides: FlavourOverrides::default(),
            factors: GapFactors::default(),
        }
    }

    /// The full training configuration of this spec: the profile's configuration of its head
    /// on `dataset` ([`ValidProfile::head_config`]: base, preset, tuned values) with the spec's
    /// decoder, `seed` and edits ([`HeadConfig::edit`](crate::train::config::HeadConfig::edit); an edit wins over a tuned value).
    ///
    /// # Errors
    /// [`crate::GmmSegError::InvalidConfig`] naming the spec when it edits a setting its head
    /// does not have.
    pub fn train_config(
        &self,
        profile: &ValidProfile,
        dataset: &str,
        seed: u64,
    ) -> Result<TrainConfig> {
        let mut c = profile.head_config(dataset, self.head)?;
        c.seed = seed;
        if let Some(d) = self.decoder {
            c.net.decoder.kind = d;
        }
        c.head
            .edit(&HeadEdits {
                components: self.components,
                em: self.em,
                em_loops: self.em_loops,
                momentum: self.momentum,
                var_reg: None,
                knobs: self.overrides.clone(),
            })
            .map_err(|e| e.within(&format!("spec `{}`", self.name)))?;
        self.factors
            .apply(&mut c)
            .map_err(|e| e.within(&format!("spec `{}`", self.name)))?;
        Ok(c)
    }
}

/// One number of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Measurement {
    /// Variant compared.
    pub variant: String,
    /// Group within the study.
    pub group: String,
    /// Numeric parameter.
    pub param: Option<f64>,
    /// Metric name.
    pub metric: String,
    /// Value.
    pub value: f64,
}

/// The specs of `study`. The default softmax and GMMSeg specs are the same configurations in
/// every study that uses them (so their models are shared).
///
/// # Errors
/// [`crate::GmmSegError::InvalidInput`] when the anomaly study is asked of a dataset without
/// an anomaly split.
pub fn specs_for(study: Study, profile: &ValidProfile, dataset: &str) -> Result<Vec<RunSpec>> {
    let p = profile.get();
    // the GMMSeg preset's own values need no edit: such specs stay the shared `gmmseg` run
    let preset = GmmHeadConfig::paper(DEFAULT_COMPONENTS).online.gmm;
    let preset_em = EmKind::of(&preset.e_step);
    let softmax = || RunSpec::new("softmax", HeadKind::Softmax);
    let gmmseg = || RunSpec::new("gmmseg", HeadKind::Gmmseg);
    Ok(match study {
        Study::MainResults => {
            let mut v = Vec::new();
            for d in [DecoderKind::Fcn, DecoderKind::Deeplab] {
                for mut s in [softmax(), gmmseg()] {
                    // the profile's decoder is DeepLab: keep its spec identical to the shared one
                    if d != p.train.net.decoder.kind {
                        s.decoder = Some(d);
                    }
                    s.name = format!("{}/{d}", s.name);
                    v.push(s);
                }
            }
            v
        }
        Study::Anomaly => {
            if anomaly_splits(dataset).is_empty() {
                return Err(crate::GmmSegError::input(
                    "dataset",
                    format!("`{dataset}` has no anomaly split; the anomaly study needs one (a folder dataset needs PATH/anomaly/)"),
                ));
            }
            vec![softmax(), gmmseg()]
        }
        Study::OnlineVsPosthoc | Study::Calibration | Study::Runtime => vec![softmax(), gmmseg()],
        Study::GenVsDisc => vec![gmmseg(), RunSpec::new("disc-gmm", HeadKind::DiscGmm)],
        Study::Em => {
            let mut v = Vec::new();
            for em in [EmKind::Vanilla, EmKind::Sinkhorn] {
                for &l in &p.em_loops {
                    let mut s = gmmseg();
                    s.name = format!("{}/L={l}", em_name(em));
                    if em != preset_em {
                        s.em = Some(em);
                    }
                    if l != preset.em_loops {
                        s.em_loops = Some(l);
                    }
                    v.push(s);
                }
            }
            v
        }
        Study::Components => p
            .components
            .iter()
            .map(|&m| {
                let mut s = gmmseg();
                s.name = format!("M={m}");
                if m != preset.components {
                    s.components = Some(m);
                }
                s
            })
            .collect(),
        Study::Flavours => {
            let mut tau = gmmseg();
            tau.name = "paper, tau=0.999".into();
            tau.momentum = Some(0.999);
            let mut paper = gmmseg();
            paper.name = "paper".into();
            // one reference-code difference at a time on top of the paper flavour (each with
            // its companion settings: `FlavourOverrides`)
            let knob = |name: &str, set: fn(&mut FlavourOverrides)| {
                let mut s = gmmseg();
                s.name = format!("paper + {name}");
                set(&mut s.overrides);
                s
            };
            let mut v = vec![paper, tau];
            for (name, set) in FLAVOUR_STEPS {
                v.push(knob(name, set));
            }
            // not a reference-code difference: the warm start this library once used
            v.push(knob("warm start", |o| o.warm_start = Some(true)));
            // the cumulative path: the differences added one after another, in the order of
            // FLAVOUR_STEPS; its first step is the single-knob spec above (same model) and
            // its end, with τ = 0.999, is the reference-code flavour (a test checks it)
            let mut acc = FlavourOverrides::default();
            for (k, (name, set)) in FLAVOUR_STEPS.iter().enumerate().skip(1) {
                if k == 1 {
                    (FLAVOUR_STEPS[0].1)(&mut acc);
                }
                set(&mut acc);
                let mut s = gmmseg();
                s.name = format!("{CUMULATIVE_PREFIX}{k}: … + {name}");
                s.overrides = acc.clone();
                v.push(s);
            }
            v.push(RunSpec::new("reference-code", HeadKind::GmmsegRef));
            v
        }
        Study::Gap => {
            let mut v = vec![softmax(), gmmseg()];
            for (name, set) in GAP_FACTORS {
                let mut s = gmmseg();
                s.name = name.into();
                set(&mut s.factors);
                v.push(s);
            }
            // the network and sampler factors apply to the baseline too: its own rows show
            // whether a factor helps segmentation in general or the generative head only
            for (name, set) in GAP_SHARED_FACTORS {
                let mut s = softmax();
                s.name = format!("{SOFTMAX_PREFIX}{name}");
                set(&mut s.factors);
                v.push(s);
            }
            v
        }
    })
}

/// Switches one `gap` factor on.
pub type SetFactor = fn(&mut GapFactors);

/// The `gap` study's factors over the tuned GMMSeg, one per spec (the last combines the
/// projection without ReLU with a relative floor, as the issue asks them re-measured
/// together). The relative floor is tried at three multiples of the channel variance,
/// a decade apart: nothing on the tune split says which.
pub const GAP_FACTORS: [(&str, SetFactor); 11] = [
    ("relative floor 0.01", |f| f.relative_var_floor = Some(0.01)),
    ("relative floor 0.1", |f| f.relative_var_floor = Some(0.1)),
    ("relative floor 1", |f| f.relative_var_floor = Some(1.0)),
    ("no projection ReLU", |f| f.projection_relu = Some(false)),
    ("no projection ReLU + relative floor 0.1", |f| {
        f.projection_relu = Some(false);
        f.relative_var_floor = Some(0.1);
    }),
    ("learnable temperature", |f| {
        f.learn_temperature = Some(true)
    }),
    ("log prior", |f| f.log_prior = Some(true)),
    ("class-balanced sampler", |f| f.class_balanced = Some(true)),
    ("EM on eval-mode features", |f| {
        f.em_on_eval_features = Some(true)
    }),
    ("momentum warm-up", |f| f.momentum_warmup = Some(true)),
    ("memory pre-filled", |f| {
        f.prefill_batches = Some(GAP_PREFILL_BATCHES)
    }),
];

/// Batches the `gap` study's "memory pre-filled" factor fills the memory with: enough to
/// fill every queue of a class present in every image of the profiles' batches — the paper
/// memory's M · K = 5 · 500 features per class over 8 images · 100 sampled pixels per batch,
/// ⌈2,500 / 800⌉ = 4. Rarer classes stay partly empty, as they would after 4 steps.
pub const GAP_PREFILL_BATCHES: usize = 4;

/// The factors of [`GAP_FACTORS`] that apply to the softmax baseline too.
pub const GAP_SHARED_FACTORS: [(&str, SetFactor); 2] = [
    ("no projection ReLU", |f| f.projection_relu = Some(false)),
    ("class-balanced sampler", |f| f.class_balanced = Some(true)),
];

/// Prefix of the `gap` study's softmax variants with a factor (`softmax + log prior`).
pub const SOFTMAX_PREFIX: &str = "softmax + ";

/// Prefix of the `flavours` study's cumulative-path variants (`cumulative 3: … + hard
/// Sinkhorn`); the figure draws them as a path.
pub const CUMULATIVE_PREFIX: &str = "cumulative ";

/// Switches one flavour knob on.
pub type SetKnob = fn(&mut FlavourOverrides);

/// The reference code's differences from the paper flavour, in the order in which the
/// `flavours` study's cumulative path adds them (features first, the EM schedule last).
pub const FLAVOUR_STEPS: [(&str, SetKnob); 6] = [
    ("feature LN+L2", |o| o.feature_norm = Some(true)),
    ("class LN", |o| o.class_norm = Some(true)),
    ("component loss", |o| o.component_loss_weight = Some(0.01)),
    ("hard Sinkhorn", |o| o.hard_assignment = Some(true)),
    ("3 Sinkhorn iterations", |o| {
        o.fixed_sinkhorn_iterations = Some(true)
    }),
    ("reference EM schedule", |o| o.reference_memory = Some(true)),
];

fn em_name(e: EmKind) -> &'static str {
    match e {
        EmKind::Vanilla => "vanilla",
        EmKind::Sinkhorn => "sinkhorn",
    }
}

fn m(variant: &str, group: &str, param: Option<f64>, metric: &str, value: f64) -> Measurement {
    Measurement {
        variant: variant.into(),
        group: group.into(),
        param,
        metric: metric.into(),
        value,
    }
}

/// Segmentation and calibration metrics of one evaluation.
fn seg_metrics(
    out: &mut Vec<Measurement>,
    variant: &str,
    group: &str,
    param: Option<f64>,
    r: &EvalReport,
) {
    for (k, v) in [
        ("miou", r.miou),
        ("acc", r.acc),
        ("macc", r.macc),
        ("ece", r.ece),
        ("mce", r.mce),
        ("nll", r.nll),
        ("brier", r.brier),
    ] {
        out.push(m(variant, group, param, k, v));
    }
}

/// The E-step statistics of a head fitted by EM, over training (nothing for other heads):
/// `em_marginal_error_mean` / `_max` (relative deviation of the component masses from
/// N_c/M), `em_max_resp_mean` / `_max` (mean max responsibility, 1/M soft … 1 hard) and
/// `em_floor_share_mean` (the variance floor's share of the estimated variances, mean over
/// M-steps: near 1, the mixture is a nearest-mean classifier).
fn em_metrics(
    out: &mut Vec<Measurement>,
    variant: &str,
    group: &str,
    param: Option<f64>,
    r: &ModelRecord,
) {
    if let Some(t) = r.em.as_ref().filter(|t| t.updates > 0) {
        for (k, v) in [
            ("em_marginal_error_mean", t.marginal_error_mean()),
            ("em_marginal_error_max", t.marginal_error_max),
            ("em_max_resp_mean", t.max_responsibility_mean()),
            ("em_max_resp_max", t.max_responsibility_max),
        ] {
            out.push(m(variant, group, param, k, v));
        }
        if let Some(share) = t.floor_share_mean() {
            out.push(m(variant, group, param, "em_floor_share_mean", share));
        }
    }
}

/// AUROC, AP, FPR95 of `score` in `r` (nothing if the score is absent).
fn anomaly_metrics(
    out: &mut Vec<Measurement>,
    variant: &str,
    group: &str,
    r: &EvalReport,
    score: &str,
) {
    if let Some(a) = r.anomaly.as_ref().and_then(|a| a.get(score)) {
        let mut metrics = vec![("auroc", a.auroc), ("ap", a.ap), ("fpr95", a.fpr95)];
        metrics.extend(
            [("siou", a.siou), ("ppv", a.ppv), ("mean_f1", a.mean_f1)]
                .into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v))),
        );
        for (k, v) in metrics {
            out.push(m(variant, group, None, k, v));
            if let Some([lo, hi]) = a.ci95.get(k) {
                out.push(m(variant, group, None, &format!("{k}_boot_lo"), *lo));
                out.push(m(variant, group, None, &format!("{k}_boot_hi"), *hi));
            }
        }
    }
}

/// The calibration study's rows of one evaluation: every calibration metric, its
/// image-bootstrap interval (`<metric>_boot_lo` / `_boot_hi`) and the reliability bins (with
/// the bootstrap band of each bin's accuracy when `bins_ci95` has it).
fn calibration_rows(
    out: &mut Vec<Measurement>,
    variant: &str,
    r: &EvalReport,
    bins: &[BinRecord],
    bins_ci95: &[Option<[f64; 2]>],
) {
    let mut metrics = vec![
        ("ece", r.ece),
        ("mce", r.mce),
        ("rmsce", r.rmsce),
        ("classwise_ece", r.classwise_ece),
        ("nll", r.nll),
        ("brier", r.brier),
        ("brier_reliability", r.brier_reliability),
        ("brier_resolution", r.brier_resolution),
        ("brier_uncertainty", r.brier_uncertainty),
        ("acc", r.acc),
    ];
    if let Some(s) = r.smooth_ece {
        metrics.push(("smooth_ece", s));
    }
    for (k, v) in metrics {
        out.push(m(variant, "val", None, k, v));
        if let Some([lo, hi]) = r.ci95.get(k) {
            out.push(m(variant, "val", None, &format!("{k}_boot_lo"), *lo));
            out.push(m(variant, "val", None, &format!("{k}_boot_hi"), *hi));
        }
    }
    for (i, b) in bins.iter().enumerate() {
        let centre = Some(0.5 * (b.lower + b.upper));
        out.push(m(variant, "val", centre, "bin_count", b.count as f64));
        if let (Some(c), Some(a)) = (b.confidence, b.accuracy) {
            out.push(m(variant, "val", centre, "bin_confidence", c));
            out.push(m(variant, "val", centre, "bin_accuracy", a));
        }
        if let Some(Some([lo, hi])) = bins_ci95.get(i) {
            out.push(m(variant, "val", centre, "bin_accuracy_boot_lo", *lo));
            out.push(m(variant, "val", centre, "bin_accuracy_boot_hi", *hi));
        }
    }
}

/// The rows a study reads from one spec's model record.
pub(crate) fn measure(study: Study, spec: &RunSpec, r: &ModelRecord) -> Vec<Measurement> {
    let mut out = Vec::new();
    let head = spec.head.to_string();
    match study {
        Study::MainResults => {
            let decoder = r.config.net.decoder.kind.to_string();
            seg_metrics(&mut out, &head, &decoder, None, &r.val);
            out.push(m(&head, &decoder, None, "train_s", r.train_s));
            em_metrics(&mut out, &head, &decoder, None, r);
        }
        Study::Anomaly => {
            for (split, rep) in &r.anomaly {
                let scores: &[&str] = if spec.head == HeadKind::Softmax {
                    &["msp", "entropy", "maxlogit", "mahalanobis"]
                } else {
                    &["likelihood", "msp"]
                };
                for s in scores {
                    anomaly_metrics(&mut out, &format!("{head}/{s}"), split, rep, s);
                }
            }
        }
        Study::OnlineVsPosthoc => {
            if spec.head == HeadKind::Softmax {
                seg_metrics(&mut out, "softmax", "val", None, &r.val);
                if let Some(p) = &r.posthoc_val {
                    seg_metrics(&mut out, "post-hoc gmm", "val", None, p);
                }
            } else {
                seg_metrics(&mut out, "online gmmseg", "val", None, &r.val);
            }
        }
        Study::GenVsDisc => {
            let variant = if spec.head == HeadKind::DiscGmm {
                "discriminative"
            } else {
                "generative"
            };
            seg_metrics(&mut out, variant, "val", None, &r.val);
            for (split, rep) in &r.anomaly {
                anomaly_metrics(&mut out, variant, split, rep, "likelihood");
            }
        }
        Study::Em => {
            let Some(g) = r.config.head.gmm() else {
                return out;
            };
            let variant = em_name(EmKind::of(&g.online.gmm.e_step));
            let loops = Some(g.online.gmm.em_loops as f64);
            seg_metrics(&mut out, variant, "val", loops, &r.val);
            out.push(m(variant, "val", loops, "step_ms", r.step_ms));
            em_metrics(&mut out, variant, "val", loops, r);
        }
        Study::Components => {
            let mm = r.config.head.components().map(|m| m as f64);
            seg_metrics(&mut out, "gmmseg", "val", mm, &r.val);
            out.push(m("gmmseg", "val", mm, "step_ms", r.step_ms));
            em_metrics(&mut out, "gmmseg", "val", mm, r);
            if let Some(rep) = r.anomaly.get("anomaly") {
                if let Some(a) = rep.anomaly.as_ref().and_then(|a| a.get("likelihood")) {
                    out.push(m("gmmseg", "anomaly", mm, "auroc", a.auroc));
                    out.push(m("gmmseg", "anomaly", mm, "fpr95", a.fpr95));
                }
            }
        }
        Study::Calibration => {
            calibration_rows(&mut out, &head, &r.val, &r.bins, &r.bins_ci95);
            for (c, bins) in r.classwise_bins.iter().enumerate() {
                let group = format!("val/class/{c}");
                for b in bins {
                    let centre = Some(0.5 * (b.lower + b.upper));
                    out.push(m(&head, &group, centre, "bin_count", b.count as f64));
                    if let (Some(p), Some(f)) = (b.confidence, b.accuracy) {
                        out.push(m(&head, &group, centre, "bin_confidence", p));
                        out.push(m(&head, &group, centre, "bin_accuracy", f));
                    }
                }
            }
            if let (Some(ts), Some(t)) = (&r.val_ts, &r.temperature) {
                let v = format!("{head}+ts");
                calibration_rows(&mut out, &v, ts, &r.bins_ts, &r.bins_ts_ci95);
                out.push(m(&v, "val", None, "temperature", t.t));
            }
        }
        Study::Flavours => {
            let v = spec.name.as_str();
            seg_metrics(&mut out, v, "val", None, &r.val);
            out.push(m(v, "val", None, "step_ms", r.step_ms));
            em_metrics(&mut out, v, "val", None, r);
            for (split, rep) in &r.anomaly {
                anomaly_metrics(&mut out, v, split, rep, "likelihood");
            }
        }
        Study::Gap => {
            // variant = spec name; the anomaly score is the head's own: the likelihood of a
            // GMM head, the softmax model's MSP
            let v = spec.name.as_str();
            seg_metrics(&mut out, v, "val", None, &r.val);
            if let Some(t) = &r.tune {
                out.push(m(v, "tune", None, "miou", t.miou));
            }
            out.push(m(v, "val", None, "step_ms", r.step_ms));
            em_metrics(&mut out, v, "val", None, r);
            let score = if spec.head == HeadKind::Softmax {
                "msp"
            } else {
                "likelihood"
            };
            for (split, rep) in &r.anomaly {
                anomaly_metrics(&mut out, v, split, rep, score);
            }
        }
        Study::Runtime => {
            out.push(m(&head, "", None, "step_ms", r.step_ms));
            out.push(m(&head, "", None, "images_per_s", r.images_per_s));
            out.push(m(&head, "", None, "train_s", r.train_s));
        }
    }
    out
}
