//! `gmmseg fit-gmm` and `gmmseg score`: our GMM on features exported from any framework.
//!
//! A PyTorch or JAX user saves per-pixel features (N, D) and labels (N,) with `numpy.save`,
//! fits class-conditional GMMs here, and scores new features — no Rust code needed.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::time::Instant;

use crate::error::{GmmSegError, Result};
use crate::gmm::{
    fit_with_progress, infer_num_classes, score_features, Assignment, ClassIndex, EStep,
    FitOptions, GmmConfig, GmmParams, Reduction, SinkhornConfig,
};
use crate::io::npy::{read_labels, read_matrix, stage_npy};

/// The E-step of `fit-gmm`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EmKind {
    /// Soft responsibilities ∝ π_m N(x; μ_m, σ_m); weights re-estimated.
    Vanilla,
    /// Equipartition-constrained responsibilities (entropic OT); weights fixed at 1/M.
    Sinkhorn,
}

/// Class-score reduction over components.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReductionArg {
    /// max_m (winner-take-all, the paper).
    Max,
    /// log Σ_m (the exact mixture density).
    Logsumexp,
}

impl From<ReductionArg> for Reduction {
    fn from(r: ReductionArg) -> Self {
        match r {
            ReductionArg::Max => Reduction::Max,
            ReductionArg::Logsumexp => Reduction::LogSumExp,
        }
    }
}

/// Arguments of `gmmseg fit-gmm`.
#[derive(Debug, Args)]
pub struct FitGmmArgs {
    /// Features, float32 or float64, shape (N, D).
    #[arg(long)]
    pub features: PathBuf,
    /// Labels, any integer dtype, shape (N,); 255 = ignore (skipped entirely).
    #[arg(long)]
    pub labels: PathBuf,
    /// Components per class M.
    #[arg(long, default_value_t = 5)]
    pub components: usize,
    /// E-step kind.
    #[arg(long, value_enum, default_value_t = EmKind::Sinkhorn)]
    pub em: EmKind,
    /// Full E+M iterations K.
    #[arg(long, default_value_t = 20)]
    pub iters: usize,
    /// Sinkhorn entropic regularisation ε (the paper's and its code's 0.05).
    #[arg(long, value_parser = super::f32_value, default_value_t = SinkhornConfig::default().epsilon)]
    pub eps: f32,
    /// Most Sinkhorn–Knopp iterations per E-step (it stops earlier at --sinkhorn-tol).
    #[arg(long, default_value_t = SinkhornConfig::default().iterations)]
    pub sinkhorn_iters: usize,
    /// Stop Sinkhorn once every component's mass is within this relative error of N_c/M;
    /// 0 runs exactly --sinkhorn-iters iterations (the reference code: 3).
    #[arg(long, default_value_t = SinkhornConfig::default().tolerance.unwrap_or(0.0), allow_negative_numbers = true)]
    pub sinkhorn_tol: f64,
    /// Divide each class's Sinkhorn cost by its max |·| so that ε is scale-free (the
    /// reference code's and the paper flavour's choice); `--rescale-cost false` uses raw
    /// costs.
    #[arg(long, default_value_t = SinkhornConfig::default().rescale_cost, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub rescale_cost: bool,
    /// Use hard (argmax) responsibilities.
    #[arg(long)]
    pub hard: bool,
    /// Variance regularisation added to every variance.
    #[arg(long, value_parser = super::f32_value, default_value_t = 0.01)]
    pub var_reg: f32,
    /// Momentum τ of the updates, φ ← τφ + (1−τ)φ̂ (0 = plain EM).
    #[arg(long, value_parser = super::f32_value, default_value_t = 0.0)]
    pub momentum: f32,
    /// Start exactly from these parameters (.npz with means, variances, log_weights).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Seed of the k-means++ initialisation (ignored with --init).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output parameters (.npz: means (C,M,D), variances (C,M,D), log_weights (C,M)).
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the last E-step's responsibilities (N, M) here (.npy).
    #[arg(long)]
    pub responsibilities: Option<PathBuf>,
    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `gmmseg score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Parameters written by `fit-gmm`.
    #[arg(long)]
    pub params: PathBuf,
    /// Features, float32 or float64, shape (N, D).
    #[arg(long)]
    pub features: PathBuf,
    /// Output .npz: class_loglik (N,C), posterior (N,C), anomaly (N,).
    #[arg(long)]
    pub out: PathBuf,
    /// Class-score reduction over components.
    #[arg(long, value_enum, default_value_t = ReductionArg::Max)]
    pub reduction: ReductionArg,
    /// Print a JSON summary on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Most EM iterations `fit-gmm` accepts (each is a full pass over the data; the output
/// keeps one log-likelihood per iteration).
const MAX_ITERS: usize = 1_000_000;

/// Runs `gmmseg fit-gmm`.
pub fn fit_gmm(args: FitGmmArgs) -> Result<()> {
    // outputs first: nothing is read, fitted or written when they collide
    crate::io::atomic::distinct_outputs(&[
        ("--out", Some(args.out.as_path())),
        ("--responsibilities", args.responsibilities.as_deref()),
    ])?;
    if args.iters == 0 || args.iters > MAX_ITERS {
        return Err(GmmSegError::input(
            "--iters",
            format!("must be in 1..={MAX_ITERS}, got {}", args.iters),
        ));
    }
    let x = read_matrix(&args.features)?;
    if x.ncols() == 0 {
        return Err(GmmSegError::shape(
            args.features.display().to_string(),
            format!(
                "has shape ({}, 0): features need at least one column (N, D ≥ 1)",
                x.nrows()
            ),
        ));
    }
    let labels = read_labels(&args.labels)?;
    let labels = labels.as_slice().expect("owned 1-D array is contiguous");
    if labels.len() != x.nrows() {
        return Err(GmmSegError::shape(
            args.labels.display().to_string(),
            format!(
                "{} labels but {} has {} feature rows",
                labels.len(),
                args.features.display(),
                x.nrows()
            ),
        ));
    }
    let init = args.init.as_deref().map(GmmParams::load_npz).transpose()?;
    let labels_name = args.labels.display().to_string();
    let num_classes = match &init {
        Some(p) => p.num_classes(),
        None => infer_num_classes(labels, &labels_name)?,
    };
    if let Some(p) = &init {
        if p.components() != args.components || p.dim() != x.ncols() {
            return Err(GmmSegError::shape(
                args.init.as_ref().unwrap().display().to_string(),
                format!(
                    "parameters have M = {}, D = {} but --components is {} and the features have D = {}",
                    p.components(),
                    p.dim(),
                    args.components,
                    x.ncols()
                ),
            ));
        }
    }
    let index = ClassIndex::new(labels.iter().copied(), num_classes, &labels_name)?;
    // M components need at least M pixels in every class (checked before anything of size
    // M is allocated); classes of fewer than 2 pixels are refused by the fit itself
    if let Some((c, idx)) = index
        .per_class
        .iter()
        .enumerate()
        .filter(|(_, idx)| idx.len() >= 2)
        .min_by_key(|(_, idx)| idx.len())
        .filter(|(_, idx)| idx.len() < args.components)
    {
        return Err(GmmSegError::input(
            "--components",
            format!(
                "M = {} exceeds the {} pixels of class {c} in {labels_name}, the smallest class; M must be at most that",
                args.components,
                idx.len()
            ),
        ));
    }
    let e_step = match args.em {
        EmKind::Vanilla => EStep::Vanilla,
        EmKind::Sinkhorn => EStep::Sinkhorn(SinkhornConfig {
            epsilon: args.eps,
            iterations: args.sinkhorn_iters,
            rescale_cost: args.rescale_cost,
            tolerance: (args.sinkhorn_tol != 0.0).then_some(args.sinkhorn_tol),
        }),
    };
    let cfg = GmmConfig {
        e_step,
        assignment: if args.hard {
            Assignment::Hard
        } else {
            Assignment::Soft
        },
        var_reg: args.var_reg,
        mean_momentum: args.momentum,
        var_momentum: args.momentum,
        ..GmmConfig::batch_vanilla(num_classes, args.components, x.ncols())
    };
    let cfg = cfg.check().map_err(|e| match e {
        GmmSegError::InvalidConfig { field, reason } => {
            GmmSegError::input(format!("--{}", cli_flag(&field)), reason)
        }
        e => e,
    })?;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(args.iters as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} iterations, {elapsed}")
            .expect("valid template"),
    );
    bar.set_message("EM");
    let opts = FitOptions {
        iterations: args.iters,
        seed: args.seed,
        init,
    };
    // wall time at the end of each iteration, so that benchmarks can time one iteration
    // without the loading and validation around it
    let started = Instant::now();
    let mut ends = Vec::with_capacity(args.iters.min(1 << 16));
    let (params, report) = fit_with_progress(x.view(), &index, &cfg, &opts, &mut |_, _| {
        ends.push(started.elapsed().as_secs_f64());
        bar.inc(1)
    })
    .map_err(|e| name_inputs(e, &args))?;
    let iteration_seconds: Vec<f64> = ends
        .iter()
        .scan(0.0, |last, &t| {
            let d = t - *last;
            *last = t;
            Some(d)
        })
        .collect();
    bar.finish_and_clear();
    // both outputs written in full before either replaces an existing file
    let staged_params = params.stage_npz(&args.out)?;
    let staged_resp = args
        .responsibilities
        .as_deref()
        .map(|path| stage_npy(path, &report.responsibilities))
        .transpose()?;
    staged_params.commit()?;
    if let Some(s) = staged_resp {
        s.commit()?;
    }
    let history = report.mean_log_likelihood.clone();
    let counts: Vec<usize> = index.per_class.iter().map(Vec::len).collect();
    if args.json {
        let summary = json!({
            "classes": num_classes,
            "components": args.components,
            "dim": x.ncols(),
            "pixels": x.nrows(),
            "ignored": x.nrows() - index.num_valid(),
            "class_counts": counts,
            "iterations": args.iters,
            "em": format!("{:?}", args.em).to_lowercase(),
            // the first also holds validation and the per-class gather
            "iteration_seconds": iteration_seconds,
            "mean_log_likelihood": history,
            "final_mean_log_likelihood": history.last(),
            "e_step": {
                "max_marginal_error": report.e_steps.iter().map(|e| e.max_marginal_error).collect::<Vec<_>>(),
                "mean_max_responsibility": report.e_steps.iter().map(|e| e.mean_max_responsibility).collect::<Vec<_>>(),
                "sinkhorn_iterations": report.e_steps.iter().map(|e| e.sinkhorn_iterations).collect::<Vec<_>>(),
            },
            "out": args.out.display().to_string(),
        });
        println!("{summary}");
    } else {
        println!(
            "fitted C = {num_classes} classes × M = {} components in D = {} on {} pixels ({} ignored); mean log p(x|y): {:.4} → {:.4}; wrote {}",
            args.components,
            x.ncols(),
            x.nrows(),
            x.nrows() - index.num_valid(),
            history.first().copied().unwrap_or(f64::NAN),
            history.last().copied().unwrap_or(f64::NAN),
            args.out.display()
        );
    }
    Ok(())
}

/// Maps config field names to the flags that set them.
fn cli_flag(field: &str) -> &str {
    match field {
        "e_step.epsilon" => "eps",
        "e_step.iterations" => "sinkhorn-iters",
        "e_step.tolerance" => "sinkhorn-tol",
        "var_reg" => "var-reg",
        "mean_momentum" | "var_momentum" => "momentum",
        other => other,
    }
}

/// Replaces generic argument names in library errors by the user's file names.
fn name_inputs(e: GmmSegError, args: &FitGmmArgs) -> GmmSegError {
    let rename = |what: String| match what.as_str() {
        "features" => args.features.display().to_string(),
        "labels" => args.labels.display().to_string(),
        "init" => args
            .init
            .as_ref()
            .map_or(what.clone(), |p| p.display().to_string()),
        _ => what,
    };
    match e {
        GmmSegError::NonFinite { what, index } => GmmSegError::NonFinite {
            what: rename(what),
            index,
        },
        GmmSegError::InvalidInput { what, reason } => GmmSegError::InvalidInput {
            what: rename(what),
            reason,
        },
        GmmSegError::Shape { what, detail } => GmmSegError::Shape {
            what: rename(what),
            detail,
        },
        GmmSegError::Empty { what, detail } => GmmSegError::Empty {
            what: rename(what),
            detail,
        },
        GmmSegError::InvalidConfig { field, reason } => {
            GmmSegError::input(format!("--{}", cli_flag(&field)), reason)
        }
        e => e,
    }
}

/// Runs `gmmseg score`.
pub fn score(args: ScoreArgs) -> Result<()> {
    let params = GmmParams::load_npz(&args.params)?;
    let x = read_matrix(&args.features)?;
    let features_name = args.features.display().to_string();
    if x.nrows() == 0 {
        return Err(GmmSegError::empty(
            features_name,
            "has 0 rows: there is nothing to score",
        ));
    }
    if x.ncols() == 0 {
        return Err(GmmSegError::shape(
            features_name,
            format!(
                "has shape ({}, 0): features need at least one column (N, D ≥ 1)",
                x.nrows()
            ),
        ));
    }
    let scores =
        score_features(&params, x.view(), args.reduction.into(), &features_name).map_err(|e| {
            match e {
                GmmSegError::Shape { what, detail } => GmmSegError::Shape {
                    what,
                    detail: format!("{detail} ({})", args.params.display()),
                },
                e => e,
            }
        })?;
    let (class_ll, post, anomaly) = (&scores.class_loglik, &scores.posterior, &scores.anomaly);
    // finite features can still overflow the likelihood (values near 1e31 in float32)
    for (what, bad) in [
        ("class log-likelihoods", class_ll.iter().any(|v| v.is_nan())),
        ("posterior", post.iter().any(|v| !v.is_finite())),
    ] {
        if bad {
            return Err(GmmSegError::input(
                features_name.clone(),
                format!("scoring gave non-finite {what}: the features are too large for these parameters in float32 (rescale them); nothing written"),
            ));
        }
    }
    crate::io::atomic::write_atomically(&args.out, |w| {
        crate::io::atomic::write_npz(w, &args.out, |npz| {
            npz.add_array("class_loglik", class_ll)?;
            npz.add_array("posterior", post)?;
            npz.add_array("anomaly", anomaly)
        })
    })?;
    let mut predicted = vec![0usize; params.num_classes()];
    for &c in &scores.predicted {
        predicted[c] += 1;
    }
    let mean_anomaly = if anomaly.is_empty() {
        f64::NAN
    } else {
        anomaly.iter().map(|&v| v as f64).sum::<f64>() / anomaly.len() as f64
    };
    if args.json {
        println!(
            "{}",
            json!({
                "pixels": x.nrows(),
                "classes": params.num_classes(),
                "predicted_class_counts": predicted,
                "mean_anomaly": mean_anomaly,
                "out": args.out.display().to_string(),
            })
        );
    } else {
        println!(
            "scored {} pixels under C = {} classes; mean anomaly score {:.4}; wrote {}",
            x.nrows(),
            params.num_classes(),
            mean_anomaly,
            args.out.display()
        );
    }
    Ok(())
}
