//! `gmmseg fit-gmm` and `gmmseg score` (work in progress in this commit).

use std::path::PathBuf;

use clap::Args;

use crate::error::{GmmSegError, Result};

/// Arguments of `gmmseg fit-gmm`.
#[derive(Debug, Args)]
pub struct FitGmmArgs {
    /// Features, float32 or float64, shape (N, D).
    #[arg(long)]
    pub features: PathBuf,
}

/// Arguments of `gmmseg score`.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Parameters written by `fit-gmm`.
    #[arg(long)]
    pub params: PathBuf,
}

pub fn fit_gmm(_args: FitGmmArgs) -> Result<()> {
    Err(GmmSegError::input("fit-gmm", "not built yet"))
}

pub fn score(_args: ScoreArgs) -> Result<()> {
    Err(GmmSegError::input("score", "not built yet"))
}
