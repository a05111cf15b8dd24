//! `gmmseg ablate prune --profile P [--results-dir D]`: removes from a profile's results
//! folder the model records and tuning trials that the running code can never read back.
//!
//! Every cache key includes the code fingerprint, so after a code change the old code's
//! records stay on disk, unused, and grow the repository with every retraining. A file is
//! removed only when both hold:
//! - it is another code's: a model record whose key is not what this code gives its own
//!   configuration (`model_key(code, config, eval, dataset)`), a trial whose `code` is not
//!   this build's. So whatever this code wrote stays, even a record a running study wrote a
//!   second ago that no table names yet: pruning is safe beside a running study;
//! - no table of the folder still names it: a study CSV's `model` column, `trials.csv`'s
//!   `key` column. So a profile retrained one dataset at a time keeps the previous code's
//!   records that the other dataset's rows (and its figures) still read.
//!
//! Files that do not parse are named and left alone (they may be another tool's, or
//! half-copied); temporary files of a write in progress (`*.json.tmp<pid>`) are not `.json`
//! and are never touched.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use polars::prelude::{CsvReadOptions, DataType, SerReader};

use crate::error::{GmmSegError, Result};
use crate::experiments::tuning::TrialRecord;
use crate::experiments::{
    code_fingerprint, model_key, read_rows, ExperimentProfile, ModelRecord, Study,
};

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
    /// Records of other code kept because a table of the folder still names them.
    pub referenced_kept: usize,
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

/// The model keys that the study CSVs of `dir` name (`model` column).
fn referenced_models(dir: &Path) -> Result<HashSet<String>> {
    let mut keys = HashSet::new();
    for study in Study::ALL {
        let rows = read_rows(&dir.join(format!("{}.csv", study.name())))?;
        keys.extend(rows.into_iter().map(|r| r.model).filter(|m| !m.is_empty()));
    }
    Ok(keys)
}

/// The trial keys that `tuning/trials.csv` of `dir` names (`key` column; no file: none).
fn referenced_trials(dir: &Path) -> Result<HashSet<String>> {
    let path = dir.join("tuning").join("trials.csv");
    if !path.is_file() {
        return Ok(HashSet::new());
    }
    let bad = |e: polars::prelude::PolarsError| GmmSegError::file(&path, e.to_string());
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.clone()))
        .and_then(|r| r.finish())
        .map_err(bad)?;
    let keys = df
        .column("key")
        .and_then(|c| c.cast(&DataType::String))
        .map_err(bad)?;
    let keys = keys.str().map_err(bad)?;
    Ok(keys.iter().flatten().map(str::to_string).collect())
}

fn model_record_key(r: &ModelRecord) -> &str {
    &r.key
}

fn trial_key(t: &TrialRecord) -> &str {
    &t.key
}

/// What [`prune_file`] did with one file.
enum Fate {
    Removed,
    OfThisCode,
    Referenced,
    Unreadable,
}

/// Removes `path` when `belongs` says it is another code's and `referenced` does not name
/// its key (`key_of`).
fn prune_file<T: serde::de::DeserializeOwned>(
    path: &Path,
    belongs: impl Fn(&T) -> bool,
    key_of: fn(&T) -> &str,
    referenced: &HashSet<String>,
    report: &mut PruneReport,
) -> Result<Fate> {
    let parsed = fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|text| serde_json::from_str::<T>(&text).map_err(|e| e.to_string()));
    match parsed {
        Ok(record) if belongs(&record) => Ok(Fate::OfThisCode),
        Ok(record) if referenced.contains(key_of(&record)) => {
            report.referenced_kept += 1;
            Ok(Fate::Referenced)
        }
        Ok(_) => {
            fs::remove_file(path).map_err(|e| GmmSegError::io(path, e))?;
            Ok(Fate::Removed)
        }
        Err(why) => {
            report.unreadable.push((path.to_path_buf(), why));
            Ok(Fate::Unreadable)
        }
    }
}

/// Prunes the results folder `dir` (one profile's: `models/`, `tuning/trials/`) for the code
/// with fingerprint `code`.
///
/// # Errors
/// [`GmmSegError::Io`] naming the folder or file that could not be listed or removed;
/// [`GmmSegError::File`] naming a study CSV or `trials.csv` that does not parse (nothing is
/// removed then: what the tables still name is unknown).
pub fn prune_results(dir: &Path, code: &str) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let models = referenced_models(dir)?;
    for path in json_files(&dir.join("models"))? {
        let this_code = |r: &ModelRecord| r.key == model_key(code, &r.config, &r.eval, &r.dataset);
        match prune_file(&path, this_code, model_record_key, &models, &mut report)? {
            Fate::Removed => report.models_removed += 1,
            Fate::OfThisCode => report.models_kept += 1,
            Fate::Referenced | Fate::Unreadable => {}
        }
    }
    let trials = referenced_trials(dir)?;
    for path in json_files(&dir.join("tuning").join("trials"))? {
        let this_code = |t: &TrialRecord| t.code == code;
        match prune_file(&path, this_code, trial_key, &trials, &mut report)? {
            Fate::Removed => report.trials_removed += 1,
            Fate::OfThisCode => report.trials_kept += 1,
            Fate::Referenced | Fate::Unreadable => {}
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
        "{}: removed {} model records and {} tuning trials of other code; kept {} and {} of code {code}, {} of other code that a table still names{}",
        dir.display(),
        report.models_removed,
        report.trials_removed,
        report.models_kept,
        report.trials_kept,
        report.referenced_kept,
        if report.unreadable.is_empty() {
            String::new()
        } else {
            format!("; {} unreadable files left alone", report.unreadable.len())
        }
    );
    Ok(())
}
