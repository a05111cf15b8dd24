//! The `gmmseg` command-line tool: one file per subcommand group, each a thin layer that
//! parses arguments, calls the library and prints text or `--json`.
//!
//! Errors propagate as [`GmmSegError`](crate::GmmSegError); `main` prints them as one line
//! and exits non-zero.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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

/// The command line, with every option that takes a value accepting negative numbers as
/// values (`--eps -0.5` is then refused for its range, naming the flag, instead of being read
/// as an unknown flag `-0`).
pub fn command() -> clap::Command {
    fn negatives(cmd: clap::Command) -> clap::Command {
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        let mut cmd = cmd.mut_args(|a| {
            if a.get_action().takes_values() {
                a.allow_negative_numbers(true)
            } else {
                a
            }
        });
        for name in names {
            cmd = cmd.mut_subcommand(name, negatives);
        }
        cmd
    }
    negatives(Cli::command())
}

/// Parses the process's arguments with [`command`] (exits with clap's message and code 2 on
/// a parse error, as `Cli::parse` does).
pub fn parse() -> Cli {
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
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
