//! `gmmseg claims`: the Markdown claims tables of committed results, so that a README or a
//! results page shows the verdicts of `claims.csv` without anyone typing them.
//!
//! `gmmseg claims FILE.csv …` prints one table per file; `gmmseg claims --update README.md`
//! rewrites every block between `<!-- claims: PATH -->` and `<!-- /claims -->` from the
//! `claims.csv` at PATH (relative to the Markdown file's folder), through a temporary file
//! and a rename; `--check` instead fails if the file is not up to date (what the tests run).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use crate::error::{GmmSegError, Result};
use crate::experiments::report::{claims_markdown_from_csv, update_claims_blocks};
use crate::io::atomic::write_atomically;

/// Arguments of `gmmseg claims`.
#[derive(Debug, Args)]
pub struct ClaimsArgs {
    /// `claims.csv` files (written by `gmmseg ablate`) to print as Markdown tables.
    pub csv: Vec<PathBuf>,
    /// A Markdown file whose claims blocks are regenerated in place.
    #[arg(long, conflicts_with = "csv")]
    pub update: Option<PathBuf>,
    /// With `--update`: change nothing, exit non-zero if any block is out of date.
    #[arg(long, requires = "update")]
    pub check: bool,
}

/// Runs `gmmseg claims`.
///
/// # Errors
/// Unreadable or malformed files (named); with `--check`, an out-of-date file.
pub fn run(args: ClaimsArgs) -> Result<()> {
    if let Some(md) = &args.update {
        let text = std::fs::read_to_string(md).map_err(|e| GmmSegError::io(md, e))?;
        let base = md
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let (new, blocks) = update_claims_blocks(&text, base)?;
        if blocks == 0 {
            return Err(GmmSegError::file(
                md,
                "holds no `<!-- claims: PATH -->` … `<!-- /claims -->` block",
            ));
        }
        if args.check {
            if new != text {
                return Err(GmmSegError::file(
                    md,
                    "its claims tables differ from the committed claims.csv files: run `gmmseg claims --update` on it",
                ));
            }
            println!("{}: {blocks} claims blocks up to date", md.display());
            return Ok(());
        }
        if new != text {
            write_atomically(md, |w| {
                w.write_all(new.as_bytes())
                    .map_err(|e| GmmSegError::io(md, e))
            })?;
        }
        println!(
            "{}: {blocks} claims blocks {}",
            md.display(),
            if new != text {
                "rewritten"
            } else {
                "already up to date"
            }
        );
        return Ok(());
    }
    if args.csv.is_empty() {
        return Err(GmmSegError::input(
            "claims",
            "name claims.csv files or --update FILE.md",
        ));
    }
    for (i, path) in args.csv.iter().enumerate() {
        if i > 0 {
            println!();
        }
        print!("{}", claims_markdown_from_csv(path)?);
    }
    Ok(())
}
