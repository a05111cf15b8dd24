//! The class-conditional diagonal Gaussian mixture: GMMSeg's generative classifier.
//!
//! For every class c a mixture of M diagonal Gaussians in the feature space R^D,
//!
//! ```text
//! p(x|c) = Σ_m π_cm N(x; μ_cm, diag(σ²_cm))        p(c|x) = p(x|c) / Σ_c' p(x|c')
//! ```
//!
//! with the class score reduced by winner-take-all (`max_m`) or log-sum-exp, the anomaly
//! score `−max_c log p(x|c)`, and the parameters fitted by EM — vanilla or Sinkhorn (an
//! equipartition constraint solved as entropic optimal transport) — with momentum and an
//! external feature memory when used online during training.
//!
//! # Symbols → names
//! | paper | here |
//! |---|---|
//! | C (classes), M (components), D (feature dim), N (pixels) | `num_classes`, `components`, `dim`, rows of a feature matrix |
//! | μ_cm, σ²_cm, π_cm | [`GmmParams::means`], [`GmmParams::variances`], `exp(`[`GmmParams::log_weights`]`)` |
//! | ε (Sinkhorn), τ (momentum) | [`SinkhornConfig::epsilon`], [`GmmConfig::mean_momentum`] / [`GmmConfig::var_momentum`] |
//! | q_n\[m\] (responsibilities) | rows of the E-steps' outputs |
//!
//! # Modules
//! - [`config`]: validated configuration and the paper / reference-code presets.
//! - [`params`]: the fitted state and its `.npz` form.
//! - [`likelihood`]: class scores, posterior, anomaly score, exact own-class likelihood; the
//!   GEMM-form table and its differentiable ops are in [`crate::ops::loglik`].
//! - [`estep`], [`sinkhorn`]: the two E-steps; [`mstep`]: weighted moments and momentum.
//! - [`fit()`]: batch EM (`gmmseg fit-gmm`, post-hoc GMM); [`online`] + [`memory`]: online EM.
//!
//! # References
//! - Liang, Wang, Zhu, Yang. *GMMSeg: Gaussian Mixture based Generative Semantic
//!   Segmentation Models.* NeurIPS 2022.
//! - Cuturi. *Sinkhorn Distances.* NeurIPS 2013 (the entropic OT solver).

pub mod config;
pub mod estep;
pub mod fit;
pub mod labels;
pub mod likelihood;
pub mod memory;
pub mod mstep;
pub mod online;
pub mod params;
mod simd;
pub mod sinkhorn;
pub mod vexp;

pub use config::{
    Assignment, EStep, GmmConfig, MeanEstimator, Reduction, SinkhornConfig, ValidGmmConfig,
    VarFloor, VarianceFloor,
};
pub use estep::EStepStats;
pub use fit::{fit, fit_with_progress, FitOptions, FitReport};
pub use labels::{infer_num_classes, ClassIndex};
pub use likelihood::{
    anomaly_scores, class_scores, posterior, score_features, FeatureScores, LogLikTable,
};
pub use memory::{FeatureMemory, MemoryConfig, MemoryInit, MemoryLayout, Sampling};
pub use online::{
    warmup_momentum, ClassAssignment, EmSource, EmTrace, OnlineBatch, OnlineConfig, OnlineGmm,
    UpdateReport,
};
pub use params::GmmParams;
