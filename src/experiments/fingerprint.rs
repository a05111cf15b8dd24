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
//! Besides the sources, the fingerprint covers the locked versions of the dependencies that
//! compute numbers ([`NUMERIC_DEPENDENCIES`], read from `Cargo.lock`): moving `gemm` to a
//! release with other micro-kernels changes the rounding of every product, hence every model,
//! without one character of `src/` changing. Other dependencies (I/O, tables, figures, the
//! command line) are left out, like the presentation code.

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

/// Dependencies whose version can change a trained model or a metric: the tensor library,
/// the matrix products under the convolutions and the likelihood (and their SIMD layer), and
/// the random number generators behind data, initialisation and sampling.
pub const NUMERIC_DEPENDENCIES: [&str; 10] = [
    "dfdx",
    "gemm",
    "gemm-common",
    "gemm-f32",
    "pulp",
    "rand",
    "rand_chacha",
    "rand_core",
    "rand_distr",
    "libm",
];

/// The path under which the locked versions enter the fingerprint, beside the sources.
pub const LOCK_ENTRY: &str = "Cargo.lock";

/// `name version` of every locked package named in [`NUMERIC_DEPENDENCIES`], one per line,
/// sorted (a crate locked at two versions appears twice), from a `Cargo.lock`'s text.
pub fn locked_numeric_versions(lock: &str) -> String {
    let mut found = Vec::new();
    let mut name: Option<&str> = None;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            name = None;
        } else if let Some(v) = line.strip_prefix("name = ") {
            name = Some(v.trim_matches('"'));
        } else if let Some(v) = line.strip_prefix("version = ") {
            if let Some(n) = name.filter(|n| NUMERIC_DEPENDENCIES.contains(n)) {
                found.push(format!("{n} {}", v.trim_matches('"')));
            }
        }
    }
    found.sort();
    found.join("\n")
}

/// Everything the fingerprint covers for the crate at `root`: the covered files under
/// `root/src` and, as [`LOCK_ENTRY`], the locked numeric versions of `root/Cargo.lock`
/// ("unlocked" when there is none, as for a crate built inside another workspace).
///
/// # Errors
/// I/O errors reading the tree or the lock file.
pub fn covered_inputs(root: &Path) -> io::Result<Vec<(String, String)>> {
    let mut files = covered_sources(&root.join("src"))?;
    let lock = match std::fs::read_to_string(root.join(LOCK_ENTRY)) {
        Ok(text) => locked_numeric_versions(&text),
        Err(e) if e.kind() == io::ErrorKind::NotFound => "unlocked".to_string(),
        Err(e) => return Err(e),
    };
    files.push((LOCK_ENTRY.to_string(), lock));
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
