//! The results caches: the per-study CSV of rows (keyed by the hash of each run's identity)
//! and the per-model JSON records.
//!
//! Concurrent shards: a writer takes `<study>.csv.lock` (created exclusively; waits up to
//! two minutes, and takes over a lock older than ten minutes, left by a killed job), re-reads
//! the CSV, replaces the rows of the hashes it computed, writes a temporary file in the same
//! folder and renames it over the CSV (atomic on POSIX), then releases the lock.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use polars::prelude::*;

use super::model::ModelRecord;
use super::{
    RunIdentity, COL_CODE, COL_DATASET, COL_GROUP, COL_HASH, COL_METRIC, COL_MODEL, COL_PARAM,
    COL_SEED, COL_STUDY, COL_VALUE, COL_VARIANT,
};
use crate::error::{GmmSegError, Result};

/// One row of a study's runs table.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    /// Study name.
    pub study: String,
    /// Dataset spec.
    pub dataset: String,
    /// Variant.
    pub variant: String,
    /// Group.
    pub group: String,
    /// Numeric parameter.
    pub param: Option<f64>,
    /// Seed.
    pub seed: u64,
    /// Metric.
    pub metric: String,
    /// Value.
    pub value: f64,
    /// Run hash.
    pub hash: String,
    /// Model key.
    pub model: String,
    /// [`super::code_fingerprint`] of the code that produced the row (empty in files written
    /// before the fingerprint existed).
    pub code: String,
}

fn polars_err(path: &Path, e: PolarsError) -> GmmSegError {
    GmmSegError::file(path, format!("{e}"))
}

/// The runs table of `rows` (columns [`COL_STUDY`] … [`COL_CODE`], in that order).
///
/// # Errors
/// Only if polars refuses the columns (never for rows built by this module).
pub fn runs_frame(rows: &[RunRow]) -> Result<DataFrame> {
    let s = |f: fn(&RunRow) -> &str| rows.iter().map(f).collect::<Vec<_>>();
    df!(
        COL_STUDY => s(|r| &r.study),
        COL_DATASET => s(|r| &r.dataset),
        COL_VARIANT => s(|r| &r.variant),
        COL_GROUP => s(|r| &r.group),
        COL_PARAM => rows.iter().map(|r| r.param).collect::<Vec<_>>(),
        COL_SEED => rows.iter().map(|r| r.seed).collect::<Vec<_>>(),
        COL_METRIC => s(|r| &r.metric),
        COL_VALUE => rows.iter().map(|r| r.value).collect::<Vec<_>>(),
        COL_HASH => s(|r| &r.hash),
        COL_MODEL => s(|r| &r.model),
        COL_CODE => s(|r| &r.code),
    )
    .map_err(|e| GmmSegError::shape("runs table", e.to_string()))
}

fn schema(with_code: bool) -> Schema {
    let code = with_code.then(|| Field::new(COL_CODE.into(), DataType::String));
    Schema::from_iter(
        [
            Field::new(COL_STUDY.into(), DataType::String),
            Field::new(COL_DATASET.into(), DataType::String),
            Field::new(COL_VARIANT.into(), DataType::String),
            Field::new(COL_GROUP.into(), DataType::String),
            Field::new(COL_PARAM.into(), DataType::Float64),
            Field::new(COL_SEED.into(), DataType::UInt64),
            Field::new(COL_METRIC.into(), DataType::String),
            Field::new(COL_VALUE.into(), DataType::Float64),
            Field::new(COL_HASH.into(), DataType::String),
            Field::new(COL_MODEL.into(), DataType::String),
        ]
        .into_iter()
        .chain(code),
    )
}

/// Reads a study's CSV (no file: no rows).
///
/// # Errors
/// [`GmmSegError::File`] naming the CSV when it cannot be parsed or lacks a column.
pub fn read_rows(path: &Path) -> Result<Vec<RunRow>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    // files written before the code fingerprint existed have no `code` column
    let mut header = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(fs::File::open(path).map_err(|e| GmmSegError::io(path, e))?),
        &mut header,
    )
    .map_err(|e| GmmSegError::io(path, e))?;
    let header = header.trim_end();
    let with_code = header.split(',').any(|c| c == COL_CODE);
    let df = CsvReadOptions::default()
        .with_has_header(true)
        .with_schema(Some(Arc::new(schema(with_code))))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))
        .and_then(|r| r.finish())
        .map_err(|e| polars_err(path, e))?;
    frame_rows(&df).map_err(|e| polars_err(path, e))
}

/// Rows of a runs table (the inverse of [`runs_frame`]).
pub(crate) fn frame_rows(df: &DataFrame) -> PolarsResult<Vec<RunRow>> {
    let s = |name: &str| -> PolarsResult<Vec<String>> {
        Ok(df
            .column(name)?
            .str()?
            .iter()
            .map(|v| v.unwrap_or("").to_string())
            .collect())
    };
    let (study, dataset, variant, group) = (
        s(COL_STUDY)?,
        s(COL_DATASET)?,
        s(COL_VARIANT)?,
        s(COL_GROUP)?,
    );
    let (metric, hash, model) = (s(COL_METRIC)?, s(COL_HASH)?, s(COL_MODEL)?);
    let code = match df.column(COL_CODE) {
        Ok(_) => s(COL_CODE)?,
        Err(_) => vec![String::new(); df.height()],
    };
    let param: Vec<Option<f64>> = df.column(COL_PARAM)?.f64()?.iter().collect();
    let seed: Vec<Option<u64>> = df.column(COL_SEED)?.u64()?.iter().collect();
    let value: Vec<Option<f64>> = df.column(COL_VALUE)?.f64()?.iter().collect();
    let mut out = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let (Some(seed), Some(value)) = (seed[i], value[i]) else {
            return Err(PolarsError::ComputeError(
                format!("row {} has no seed or value", i + 2).into(),
            ));
        };
        out.push(RunRow {
            study: study[i].clone(),
            dataset: dataset[i].clone(),
            variant: variant[i].clone(),
            group: group[i].clone(),
            param: param[i],
            seed,
            metric: metric[i].clone(),
            value,
            hash: hash[i].clone(),
            model: model[i].clone(),
            code: code[i].clone(),
        });
    }
    Ok(out)
}

/// Writes `df` as CSV to `path` through a temporary file and a rename.
///
/// # Errors
/// I/O and CSV errors naming the file.
pub fn write_csv_atomic(path: &Path, df: &mut DataFrame) -> Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = fs::File::create(&tmp).map_err(|e| GmmSegError::io(&tmp, e))?;
        CsvWriter::new(&mut f)
            .include_header(true)
            .finish(df)
            .map_err(|e| polars_err(&tmp, e))?;
    }
    fs::rename(&tmp, path).map_err(|e| GmmSegError::io(path, e))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| GmmSegError::io(parent, e))?;
    }
    let tmp = tmp_path(path);
    fs::write(&tmp, bytes).map_err(|e| GmmSegError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| GmmSegError::io(path, e))
}

/// An exclusive lock file, removed on drop.
struct Lock(PathBuf);

impl Lock {
    fn take(target: &Path) -> Result<Lock> {
        let mut name = target.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let lock = target.with_file_name(name);
        let started = Instant::now();
        loop {
            match OpenOptions::new().write(true).create_new(true).open(&lock) {
                Ok(_) => return Ok(Lock(lock)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let stale = fs::metadata(&lock)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|age| age > Duration::from_secs(600));
                    if stale {
                        let _ = fs::remove_file(&lock);
                        continue;
                    }
                    if started.elapsed() > Duration::from_secs(120) {
                        return Err(GmmSegError::file(
                            &lock,
                            "held by another gmmseg process for over two minutes; remove it if no other run is writing",
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => return Err(GmmSegError::io(&lock, e)),
            }
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Merges `new` into the CSV at `path` under its lock, so that the file holds exactly one
/// row per cell — (dataset, variant, group, param, seed, metric) — and, for the datasets this
/// write touches, only rows of the code `code`: their rows of other code are dropped (they
/// are superseded, and would be retrained), rows of the hashes in `new` and every row of a
/// cell that `new` fills are replaced, every other row is kept. Rows of other datasets are
/// kept whatever their code, so that a profile retrained one dataset at a time keeps the
/// other dataset's rows — and the claims made from them — until that dataset's turn. Also
/// merges `identities` into `<study>.configs.json` (hash → [`RunIdentity`]),
/// which keeps only the hashes left in the CSV. Returns all rows now in the file.
///
/// # Errors
/// I/O and CSV errors naming the file.
pub fn write_rows_merged(
    path: &Path,
    new: &[RunRow],
    identities: &[(String, RunIdentity)],
    code: &str,
) -> Result<Vec<RunRow>> {
    let _lock = Lock::take(path)?;
    let configs = path.with_extension("configs.json");
    let mut map: BTreeMap<String, RunIdentity> = match fs::read_to_string(&configs) {
        // identities of an older format (before the fingerprint) are dropped with their rows
        Ok(s) => serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&s)
            .map_err(|e| GmmSegError::file(&configs, e.to_string()))?
            .into_iter()
            .filter_map(|(h, v)| serde_json::from_value(v).ok().map(|id| (h, id)))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(e) => return Err(GmmSegError::io(&configs, e)),
    };
    // a new run of a (spec, dataset, seed) supersedes every row of its former runs
    let rerun: HashSet<(&str, &str, u64)> = identities
        .iter()
        .map(|(_, id)| (id.spec.as_str(), id.dataset.as_str(), id.seed))
        .collect();
    let superseded = |hash: &str| {
        map.get(hash)
            .is_some_and(|id| rerun.contains(&(id.spec.as_str(), id.dataset.as_str(), id.seed)))
    };
    let replaced: HashSet<&str> = identities
        .iter()
        .map(|(h, _)| h.as_str())
        .chain(new.iter().map(|r| r.hash.as_str()))
        .collect();
    let filled: HashSet<CellKey> = new.iter().map(cell_key).collect();
    let written: HashSet<&str> = identities
        .iter()
        .map(|(_, id)| id.dataset.as_str())
        .chain(new.iter().map(|r| r.dataset.as_str()))
        .collect();
    let mut rows: Vec<RunRow> = read_rows(path)?
        .into_iter()
        .filter(|r| r.code == code || !written.contains(r.dataset.as_str()))
        .filter(|r| !replaced.contains(r.hash.as_str()) && !filled.contains(&cell_key(r)))
        .filter(|r| !superseded(&r.hash))
        .collect();
    rows.extend_from_slice(new);
    let mut df = runs_frame(&rows)?;
    write_csv_atomic(path, &mut df)?;
    for (h, id) in identities {
        map.insert(h.clone(), id.clone());
    }
    let kept: HashSet<&str> = rows.iter().map(|r| r.hash.as_str()).collect();
    map.retain(|h, _| kept.contains(h.as_str()));
    let json = serde_json::to_string_pretty(&map).expect("identities serialise");
    write_atomic(&configs, json.as_bytes())?;
    Ok(rows)
}

/// (dataset, variant, group, param bits, seed, metric): the cell a row fills.
type CellKey = (String, String, String, Option<u64>, u64, String);

fn cell_key(r: &RunRow) -> CellKey {
    (
        r.dataset.clone(),
        r.variant.clone(),
        r.group.clone(),
        r.param.map(f64::to_bits),
        r.seed,
        r.metric.clone(),
    )
}

/// Reads a model record; `None` if absent. A record whose key differs from `key` (a renamed
/// file) or that does not parse (a truncated write, an older format, or a metric that was
/// NaN and serialised as `null`) is treated as absent, so the model is retrained.
///
/// # Errors
/// [`GmmSegError::Io`] when the file exists but cannot be read.
pub(crate) fn read_model(path: &Path, key: &str) -> Result<Option<ModelRecord>> {
    match fs::read_to_string(path) {
        Ok(s) => Ok(serde_json::from_str::<ModelRecord>(&s)
            .ok()
            .filter(|r| r.key == key)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(GmmSegError::io(path, e)),
    }
}

/// Writes a model record (temporary file + rename).
pub(crate) fn write_model(path: &Path, r: &ModelRecord) -> Result<()> {
    let json = serde_json::to_string_pretty(r).expect("record serialises");
    write_atomic(path, json.as_bytes())
}
