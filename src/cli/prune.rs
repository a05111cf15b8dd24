//! `gmmseg ablate prune --profile P [--results-dir D]`: removes from a profile's results
//! folder the model records and tuning trials that the running code can never read back.
//!
//! Every cache key includes the code fingerprint, so after a code change the old code's
//! records stay on disk, unused, and grow the repository with every retraining. A model
//! record belongs to this code when its key is what this code would give its own
//! configuration (`model_key(code, config, eval, dataset)`); a trial, when its `code` field
//! is this build's. The test is per file and needs no study table, so pruning is safe beside
//! a study that is still writing: whatever this code wrote, even a second ago, stays. Files
//! that do not parse are named and left alone (they may be another tool's, or half-copied);
//! temporary files of a write in progress (`*.json.tmp<pid>`) are not `.json` and are never
//! touched.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{GmmSegError, Result};
use crate::experiments::tuning::TrialRecord;
use crate::experiments::{code_fingerprint, model_key, ExperimentProfile, ModelRecord};

use super::ablate::AblateArgs;

/// What one prune removed and kept.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Model records of other code, removed.
    pub models_removed: usize,
    /// Model records of this code, kept.
    pub models_kept: usize,
    /// Tuning trials of other code, removed.
    pub trials_removed: usize,
    /// Tuning trials of this code, kept.
    pub trials_kept: usize,
    /// Files that did not parse, left alone, with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// The `.json` files directly in `dir`, sorted (no folder: none).
fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| GmmSegError::io(dir, e))? {
        let path = entry.map_err(|e| GmmSegError::io(dir, e))?.path();
        if path.extension().is_some_and(|e| e == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Removes `path` when `belongs` says it is another code's; returns whether it was removed.
fn prune_file<T: serde::de::DeserializeOwned>(
    path: &Path,
    belongs: impl Fn(&T) -> bool,
    report: &mut PruneReport,
) -> Result<Option<bool>> {
    let parsed = fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<T>(&text).map_err(|e| e.to_string()));
    match parsed {
        Ok(record) if belongs(&record) => Ok(Some(false)),
        Ok(_) => {
            fs::remove_file(path).map_err(|e| GmmSegError::io(path, e))?;
            Ok(Some(true))
        }
        Err(why) => {
            report.unreadable.push((path.to_path_buf(), why));
            Ok(None)
        }
    }
}

/// Prunes the results folder `dir` (one profile's: `models/`, `tuning/trials/`) for the code
/// with fingerprint `code`.
///
/// # Errors
/// [`GmmSegError::Io`] naming the folder or file that could not be listed or removed.
pub fn prune_results(dir: &Path, code: &str) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    for path in json_files(&dir.join("models"))? {
        let this_code = |r: &ModelRecord| r.key == model_key(code, &r.config, &r.eval, &r.dataset);
        match prune_file(&path, this_code, &mut report)? {
            Some(true) => report.models_removed += 1,
            Some(false) => report.models_kept += 1,
            None => {}
        }
    }
    for path in json_files(&dir.join("tuning").join("trials"))? {
        match prune_file(&path, |t: &TrialRecord| t.code == code, &mut report)? {
            Some(true) => report.trials_removed += 1,
            Some(false) => report.trials_kept += 1,
            None => {}
        }
    }
    Ok(report)
}

/// Runs `gmmseg ablate prune`.
///
/// # Errors
/// A flag that does not apply (named), an unknown profile, a folder that cannot be read.
pub fn run(args: &AblateArgs, root: &Path) -> Result<()> {
    let refused = [
        ("--seeds", args.seeds.is_some()),
        ("--jobs", args.jobs.is_some()),
        ("--force", args.force),
        ("--shard", args.shard.is_some()),
        ("--cache-only", args.cache_only),
        ("--rows-of-code", args.rows_of_code.is_some()),
        ("--dataset", args.dataset != super::ablate::DEFAULT_DATASET),
    ];
    if let Some((flag, _)) = refused.iter().find(|(_, given)| *given) {
        return Err(GmmSegError::input(
            *flag,
            "does not apply to `ablate prune` (it prunes every dataset of --profile; only --results-dir may be given)",
        ));
    }
    let profile = ExperimentProfile::by_name(&args.profile)?;
    let dir = root.join(&profile.name);
    if !dir.is_dir() {
        return Err(GmmSegError::input(
            "--profile",
            format!("no results folder {} to prune", dir.display()),
        ));
    }
    let code = code_fingerprint();
    let report = prune_results(&dir, code)?;
    for (path, why) in &report.unreadable {
        eprintln!("left alone (unreadable): {}: {why}", path.display());
    }
    println!(
        "{}: removed {} model records and {} tuning trials of other code; kept {} and {} of code {code}{}",
        dir.display(),
        report.models_removed,
        report.trials_removed,
        report.models_kept,
        report.trials_kept,
        if report.unreadable.is_empty() {
            String::new()
        } else {
            format!("; {} unreadable files left alone", report.unreadable.len())
        }
    );
    Ok(())
}
