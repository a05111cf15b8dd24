//! The `gmmseg` command-line tool: one file per subcommand group, each a thin layer that
//! parses arguments, calls the library and prints text or `--json`.
//!
//! Errors propagate as [`GmmSegError`](crate::GmmSegError); `main` prints them as one line
//! and exits non-zero.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::error::Result;

pub mod ablate;
pub mod claims;
pub mod data;
pub mod gmm;
pub mod machine_load;
pub mod metrics;
pub mod prune;
pub mod train;

/// gmmseg: generative semantic segmentation (GMMSeg) on a CPU.
#[derive(Debug, Parser)]
#[command(name = "gmmseg", version, about, long_about = None)]
pub struct Cli {
    /// The subcommand.
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
    /// Claims tables from committed results: print a `claims.csv` as Markdown, or
    /// regenerate the claims blocks of a Markdown file (`--update README.md`).
    Claims(claims::ClaimsArgs),
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
    let matches = command().try_get_matches().unwrap_or_else(|e| exit_with(e));
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| exit_with(e))
}

/// Help and version print as clap does; a usage error prints its first line only (the
/// `error: …` line naming the flag and the value), exit code 2.
fn exit_with(e: clap::Error) -> ! {
    use clap::error::ErrorKind::*;
    match e.kind() {
        DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
        _ => {
            let text = e.render().to_string();
            let line = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("error: bad arguments");
            eprintln!("{line}");
            std::process::exit(2)
        }
    }
}

/// Parses a float32 flag value, refusing values that float32 cannot hold instead of
/// rounding them to 0 or infinity (`--eps 1e-300` would otherwise read as 0).
pub fn f32_value(s: &str) -> std::result::Result<f32, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_nan() {
        return Err(format!("`{s}` is not a number"));
    }
    if v.is_finite() && v.abs() > f32::MAX as f64 {
        return Err(format!("{s} overflows float32 (largest {:e})", f32::MAX));
    }
    if v != 0.0 && v.abs() < f32::MIN_POSITIVE as f64 {
        return Err(format!(
            "{s} underflows float32 (smallest positive normal {:e})",
            f32::MIN_POSITIVE
        ));
    }
    Ok(v as f32)
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
        Command::Claims(args) => claims::run(args),
    }
}
