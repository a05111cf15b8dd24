//! The fingerprint of the code that can change a trained model or its evaluation: part of
//! every cache key, so that a cached run of other code is retrained, never silently reused.
//!
//! Computed at build time (`build.rs` includes this file) over every `.rs` file under
//! `src/` except those that only present results — the command line (`src/cli/`), the
//! figures (`src/plot/`, `experiments/figures.rs`), tables and claims
//! (`experiments/{report,summary}.rs`, decided afresh from the rows at every read), the
//! notebooks' playground (`experiments/report/`: it compares records, and the models it
//! trains are keyed by their full configuration like any other), the cache
//! files themselves (`experiments/cache.rs`), the scheduler that trains several models at
//! once (`experiments/jobs.rs`: where and when a model trains, not what it computes — a test
//! compares a `--jobs 2` run's rows with a one-job run's), the tuned presets
//! (`experiments/tuned.rs`: values that enter every configuration they touch, hence every
//! model key; leaving them out keeps the tuning trials that chose them valid), `main.rs` and
//! this file. Each file is
//! normalised first, so that a change that cannot alter a number does not retrain anything:
//! whole-line comments (`//`, `//!`, `///`) are dropped, the rest is read as words one space
//! apart (so re-indenting or re-wrapping a statement changes nothing),
//! and a trailing `#[cfg(test)] mod tests` block (unit tests) is cut off. Any other edit —
//! one character of the EM code — changes the fingerprint.
//!
//! Not covered: the versions of dependencies (dfdx is pinned to 0.13.0 in `Cargo.toml`;
//! `Cargo.lock` pins the rest).

use std::io;
use std::path::{Path, PathBuf};

/// Paths under `src/` (with `/` separators) that the fingerprint leaves out.
pub const EXCLUDED: [&str; 12] = [
    "cli/",
    "plot/",
    "main.rs",
    "experiments/figures.rs",
    "experiments/report.rs",
    "experiments/report/",
    "experiments/summary.rs",
    "experiments/cache.rs",
    "experiments/fingerprint.rs",
    "experiments/jobs.rs",
    "experiments/tuned.rs",
    "bin/",
];

/// Whether `relative` (a path under `src/`, `/`-separated) takes part in the fingerprint.
pub fn is_covered(relative: &str) -> bool {
    relative.ends_with(".rs")
        && !EXCLUDED
            .iter()
            .any(|e| relative == *e || (e.ends_with('/') && relative.starts_with(e)))
}

/// A source file with formatting, comments and its unit-test module removed.
pub fn normalise(source: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let mut end = lines.len();
    for (i, l) in lines.iter().enumerate() {
        if *l == "#[cfg(test)]" {
            let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
            if next.is_some_and(|n| n.starts_with("mod tests")) {
                end = i;
                break;
            }
        }
    }
    // the code's words, one space apart: re-wrapping or re-indenting a statement (what
    // rustfmt does) leaves them unchanged
    let mut out = String::new();
    for l in &lines[..end] {
        let t = l.trim();
        if t.starts_with("//") {
            continue;
        }
        for word in t.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

/// The covered files under `src_dir`, sorted, as (relative path, normalised text).
///
/// # Errors
/// I/O errors reading the tree.
pub fn covered_sources(src_dir: &Path) -> io::Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    let mut stack: Vec<PathBuf> = vec![src_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let relative = path
                .strip_prefix(src_dir)
                .map_err(|e| io::Error::other(e.to_string()))?
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            if is_covered(&relative) {
                let text = std::fs::read_to_string(&path)?;
                files.push((relative, normalise(&text)));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// The fingerprint of the covered files: the first 16 hex digits of the SHA-256 of each
/// file's path, a NUL, its normalised text and a NUL, in path order.
pub fn fingerprint(files: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for (path, text) in files {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update(text.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}
