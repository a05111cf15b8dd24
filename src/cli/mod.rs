//! The `gmmseg` command-line tool: one file per subcommand group, each a thin layer that
//! parses arguments, calls the library and prints text or `--json`.
//!
//! Errors propagate as [`GmmSegError`](crate::GmmSegError); `main` prints them as one line
//! and exits non-zero.

use clap::{Parser, Subcommand};

use crate::error::Result;

pub mod ablate;
pub mod data;
pub mod gmm;
pub mod metrics;
pub mod train;

/// gmmseg: generative semantic segmentation (GMMSeg) on a CPU.
#[derive(Debug, Parser)]
#[command(name = "gmmseg", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fit a class-conditional GMM to features exported as NumPy arrays.
    FitGmm(gmm::FitGmmArgs),
    /// Score features under a fitted GMM: class log-likelihoods, posterior, anomaly score.
    Score(gmm::ScoreArgs),
    /// Evaluate saved predictions: segmentation, anomaly and calibration metrics.
    #[command(subcommand)]
    Metrics(metrics::MetricsCommand),
    /// Datasets: export to the folder format, class statistics, preview grids.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Train a segmentation network: softmax baseline or a GMM head.
    Train(train::TrainArgs),
    /// Evaluate a trained checkpoint: segmentation, calibration and anomaly metrics.
    Eval(train::EvalArgs),
    /// Run the paper's ablation studies (cached), print summaries and claims, write CSVs and
    /// figures under `data/results/<profile>/`.
    Ablate(ablate::AblateArgs),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::FitGmm(args) => gmm::fit_gmm(args),
        Command::Score(args) => gmm::score(args),
        Command::Metrics(cmd) => metrics::run(cmd),
        Command::Data(cmd) => data::run(cmd),
        Command::Train(args) => train::train(args),
        Command::Eval(args) => train::eval(args),
        Command::Ablate(args) => ablate::run(args),
    }
}
