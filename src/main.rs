//! The `gmmseg` command-line tool. All logic lives in [`gmmseg::cli`].

use clap::Parser;

fn main() {
    let cli = gmmseg::cli::Cli::parse();
    if let Err(e) = gmmseg::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
