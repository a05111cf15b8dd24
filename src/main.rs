//! The `gmmseg` command-line tool. All logic lives in [`gmmseg::cli`].

/// See Cargo.toml: large feature arrays load with far fewer page faults than under glibc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = gmmseg::cli::parse();
    if let Err(e) = gmmseg::cli::run(cli) {
        // one line, whatever a library's message holds (parsers quote the input on several)
        let text = e.to_string();
        let one_line: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        eprintln!("error: {}", one_line.join(" | "));
        std::process::exit(1);
    }
}
