//! # gmmseg
//!
//! GMMSeg (Liang et al., NeurIPS 2022) on a laptop CPU: semantic segmentation with a dense
//! *generative* classifier — class-conditional Gaussian mixtures fitted by (Sinkhorn) EM while
//! the network is trained by cross-entropy on the resulting posterior — and every ablation of
//! the paper, as a library, a command-line tool and evcxr notebooks.
//!
//! The modules read like the pipeline:
//! - [`ops`]: the numerical floor: dfdx tape plumbing, the one GEMM, convolution and the
//!   likelihood ops with their backward passes (below both `gmm` and `nn`).
//! - [`gmm`]: the class-conditional diagonal GMM (likelihood, E-steps, M-step, memory).
//! - [`metrics`]: segmentation, anomaly and calibration metrics (streaming).
//! - [`plot`]: figures on plotters.
//! - [`data`]: SynthScapes, DigitScenes and the folder format for one's own data.
//! - [`nn`]: network pieces on stable dfdx (convolution, backbones, decoders, heads).
//! - [`train`]: the trainer, optimisers and schedule, checkpoints, evaluation.
//! - [`experiments`]: every ablation of the paper as polars DataFrames, cached.
//! - [`io`]: NumPy file input and output.
//! - [`cli`]: the `gmmseg` command-line tool.

pub mod cli;
pub mod data;
pub mod error;
pub mod experiments;
pub mod gmm;
pub mod io;
pub mod metrics;
pub mod nn;
pub mod ops;
pub mod plot;
pub mod train;

pub use error::{GmmSegError, Result};

/// ndarray is part of the public API (features, labels, images): re-exported so that a
/// notebook or downstream crate uses the same version.
pub use ndarray;

#[cfg(feature = "notebook")]
pub use {plotters, polars};
