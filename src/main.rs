//! The `gmmseg` command-line tool. All logic lives in [`gmmseg::cli`].

fn main() {
    let cli = gmmseg::cli::parse();
    if let Err(e) = gmmseg::cli::run(cli) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
