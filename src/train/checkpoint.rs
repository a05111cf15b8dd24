//! Checkpoints that resume exactly.
//!
//! Layout of a run directory:
//! - `checkpoint.safetensors`: every tensor — `param.<name>` (trainable parameters and
//!   batch-norm running statistics), `optim.<slot>.<name>` (AdamW `m`/`v` or SGD momentum
//!   `b`), `fitted.<name>` (head state fitted outside SGD, e.g. GMM means) — with metadata
//!   `format`, `step`, `optimizer_t`, `config_hash`, `config` (the full JSON) and `checksum`
//!   (SHA-256 of every tensor's name, shape and bytes, in name order), so the file alone is
//!   enough to resume and a flipped bit is caught when it is read. The header's keys are
//!   written in sorted order, so identical runs write identical bytes.
//! - `checkpoint.json`: the same metadata plus the last evaluation, for people and scripts.
//! - `config.json`: the run's configuration (written once, when training starts).
//!
//! Each file is written to `<file>.tmp`, flushed to disk and renamed over the old one, so a
//! crash leaves either the previous or the new checkpoint, never a torn one. The tensor file
//! is renamed first; its metadata is authoritative if the two ever disagree.
//!
//! A checkpoint is refused ([`GmmSegError::Mismatch`]) when its config hash differs from the
//! requested configuration's (the message lists the fields that differ), when its checksum
//! does not match its tensors, or when a parameter is missing or has another shape. An
//! extension (`TrainConfig::extended_from`) resumes the finished run it continues.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};

use super::config::{TrainConfig, ValidTrainConfig};
use super::eval::EvalReport;
use super::optim::Optimizer;
use crate::error::{GmmSegError, Result};
use crate::nn::head::FittedState;
use crate::nn::segnet::SegModel;
use crate::nn::Params;

/// File name of the tensor file.
pub const TENSORS_FILE: &str = "checkpoint.safetensors";
/// File name of the metadata JSON.
pub const META_FILE: &str = "checkpoint.json";
/// File name of the run configuration.
pub const CONFIG_FILE: &str = "config.json";
const FORMAT: &str = "gmmseg-checkpoint-2";
/// The format before checksums (read without verification).
const FORMAT_V1: &str = "gmmseg-checkpoint-1";

/// Checkpoint metadata (`checkpoint.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointMeta {
    /// Format tag.
    pub format: String,
    /// Optimiser steps taken when saved.
    pub step: usize,
    /// Adam bias-correction counter.
    pub optimizer_t: u64,
    /// [`ValidTrainConfig::hash`] of the run.
    pub config_hash: String,
    /// The run's configuration (one written before the configuration tree reads as the
    /// tree: [`TrainConfig::from_json`]).
    #[serde(deserialize_with = "crate::train::config::deserialize_any_format")]
    pub config: TrainConfig,
    /// Last evaluation before saving, if any.
    pub last_eval: Option<EvalReport>,
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    {
        let mut f = std::fs::File::create(&tmp).map_err(|e| GmmSegError::io(&tmp, e))?;
        f.write_all(bytes).map_err(|e| GmmSegError::io(&tmp, e))?;
        f.sync_all().map_err(|e| GmmSegError::io(&tmp, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| GmmSegError::io(path, e))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// SHA-256 over every tensor's name, shape and little-endian f32 bytes, in name order.
fn checksum<'a>(tensors: impl Iterator<Item = (&'a str, &'a [usize], &'a [u8])>) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<_> = tensors.collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (name, shape, bytes) in sorted {
        h.update((name.len() as u64).to_le_bytes());
        h.update(name.as_bytes());
        h.update((shape.len() as u64).to_le_bytes());
        for &d in shape {
            h.update((d as u64).to_le_bytes());
        }
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Rewrites a serialised safetensors file's JSON header with its keys in sorted order (the
/// crate writes its metadata from a `HashMap`, in random order), padded to the same length:
/// the same tensors and metadata then give the same bytes.
fn canonical_header(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value =
        serde_json::from_slice(&bytes[8..8 + n]).expect("safetensors wrote valid JSON");
    // serde_json's map is sorted (no `preserve_order`), recursively
    let mut text = serde_json::to_vec(&header).expect("JSON serialises");
    debug_assert!(text.len() <= n);
    text.resize(n, b' ');
    bytes[8..8 + n].copy_from_slice(&text);
    bytes
}

/// Saves a checkpoint of `model` and `optimizer` at `step` into `dir` (created if needed).
///
/// # Errors
/// I/O errors naming the file.
pub fn save(
    dir: &Path,
    config: &ValidTrainConfig,
    model: &SegModel,
    optimizer: &Optimizer,
    step: usize,
    last_eval: Option<&EvalReport>,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| GmmSegError::io(dir, e))?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    model.visit(&mut |p| {
        tensors.push((
            format!("param.{}", p.name),
            p.shape.clone(),
            f32_bytes(&p.to_vec()),
        ))
    });
    for (k, v) in &optimizer.state {
        tensors.push((format!("optim.{k}"), vec![v.len()], f32_bytes(v)));
    }
    for (k, (shape, v)) in model.head.fitted_state() {
        tensors.push((format!("fitted.{k}"), shape, f32_bytes(&v)));
    }
    let meta = CheckpointMeta {
        format: FORMAT.into(),
        step,
        optimizer_t: optimizer.t,
        config_hash: config.hash(),
        config: config.get().clone(),
        last_eval: last_eval.cloned(),
    };
    let mut md = HashMap::new();
    md.insert("format".to_string(), FORMAT.to_string());
    md.insert("step".to_string(), step.to_string());
    md.insert("optimizer_t".to_string(), optimizer.t.to_string());
    md.insert("config_hash".to_string(), meta.config_hash.clone());
    md.insert("config".to_string(), config.to_json());
    md.insert(
        "checksum".to_string(),
        checksum(
            tensors
                .iter()
                .map(|(n, s, b)| (n.as_str(), s.as_slice(), b.as_slice())),
        ),
    );
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| TensorView::new(Dtype::F32, s.clone(), b).map(|v| (n.clone(), v)))
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| {
            GmmSegError::file(
                dir.join(TENSORS_FILE),
                format!("cannot build tensor view: {e:?}"),
            )
        })?;
    let bytes = safetensors::serialize(views, &Some(md)).map_err(|e| {
        GmmSegError::file(dir.join(TENSORS_FILE), format!("cannot serialise: {e:?}"))
    })?;
    write_atomic(&dir.join(TENSORS_FILE), &canonical_header(bytes))?;
    let json = serde_json::to_string_pretty(&meta).expect("metadata serialises");
    write_atomic(&dir.join(META_FILE), json.as_bytes())
}

/// Reads `dir/checkpoint.json` (the human-readable metadata, including the last evaluation).
///
/// # Errors
/// [`GmmSegError::Io`] when missing; [`GmmSegError::File`] when not valid JSON metadata.
pub fn read_meta(dir: &Path) -> Result<CheckpointMeta> {
    let path = dir.join(META_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| GmmSegError::io(&path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| GmmSegError::file(&path, format!("bad checkpoint metadata: {e}")))
}

/// A checkpoint read from disk.
#[derive(Debug)]
pub struct Loaded {
    /// Path of the tensor file.
    pub path: PathBuf,
    /// Saved step.
    pub step: usize,
    /// Adam counter.
    pub optimizer_t: u64,
    /// Config hash.
    pub config_hash: String,
    /// Configuration.
    pub config: TrainConfig,
    /// All tensors by name: (shape, values).
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

/// Reads `dir/checkpoint.safetensors`.
///
/// # Errors
/// [`GmmSegError::Io`] when missing; [`GmmSegError::File`] when corrupt or of another format.
pub fn read(dir: &Path) -> Result<Loaded> {
    let path = dir.join(TENSORS_FILE);
    let bytes = std::fs::read(&path).map_err(|e| GmmSegError::io(&path, e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| GmmSegError::file(&path, format!("not a safetensors file: {e:?}")))?;
    let md = header.metadata().clone().unwrap_or_default();
    let get = |k: &str| {
        md.get(k).cloned().ok_or_else(|| {
            GmmSegError::file(
                &path,
                format!("metadata lacks `{k}`; not a gmmseg checkpoint"),
            )
        })
    };
    let format = get("format")?;
    if format != FORMAT && format != FORMAT_V1 {
        return Err(GmmSegError::file(
            &path,
            format!("format `{format}`, expected `{FORMAT}`"),
        ));
    }
    let step = get("step")?
        .parse()
        .map_err(|_| GmmSegError::file(&path, "bad `step`"))?;
    let optimizer_t = get("optimizer_t")?
        .parse()
        .map_err(|_| GmmSegError::file(&path, "bad `optimizer_t`"))?;
    let (config, upgraded) = TrainConfig::from_json(&get("config")?)
        .map_err(|e| GmmSegError::file(&path, format!("bad `config`: {e}")))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| GmmSegError::file(&path, format!("corrupt: {e:?}")))?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(GmmSegError::file(
                &path,
                format!("tensor `{name}` is {:?}, expected F32", view.dtype()),
            ));
        }
        let vals: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some(i) = vals.iter().position(|v| !v.is_finite()) {
            return Err(GmmSegError::file(
                &path,
                format!(
                    "tensor `{name}` holds {} at index {i}: the run that wrote it diverged; \
                     resume from an earlier checkpoint or retrain",
                    vals[i]
                ),
            ));
        }
        tensors.insert(name, (view.shape().to_vec(), vals));
    }
    if format == FORMAT {
        let want = get("checksum")?;
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
            .iter()
            .map(|(k, (s, v))| (k.clone(), s.clone(), f32_bytes(v)))
            .collect();
        let got = checksum(
            bytes
                .iter()
                .map(|(n, s, b)| (n.as_str(), s.as_slice(), b.as_slice())),
        );
        if got != want {
            return Err(GmmSegError::Mismatch {
                path: path.clone(),
                detail: format!(
                    "the tensors' checksum is {}… but the file records {}…: the checkpoint is \
                     corrupt (a changed byte); retrain or restore it from a copy",
                    &got[..12],
                    &want[..12.min(want.len())]
                ),
            });
        }
    }
    // a configuration from before the tree names the same run in the tree's terms: its hash
    // is the tree's, so that the same command resumes it
    let config_hash = if upgraded {
        crate::train::config::identity_hash(&config)
    } else {
        get("config_hash")?
    };
    Ok(Loaded {
        path,
        step,
        optimizer_t,
        config_hash,
        config,
        tensors,
    })
}

/// Restores `model` and `optimizer` from `loaded`, refusing a checkpoint of another config.
///
/// # Errors
/// [`GmmSegError::Mismatch`] for another config hash, a missing parameter or a shape
/// difference.
pub fn restore(
    loaded: &Loaded,
    expected: &ValidTrainConfig,
    model: &mut SegModel,
    optimizer: &mut Optimizer,
) -> Result<usize> {
    let extends = expected.extended_base().is_some_and(|base| {
        crate::train::config::identity_hash(&base) == loaded.config_hash
            && loaded.step == base.steps
    });
    if loaded.config_hash != expected.hash() && !extends {
        let diff = crate::train::config::identity_differences(&loaded.config, expected.get());
        let hint = if diff.len() == 1 && diff[0].starts_with("steps:") {
            format!(
                "; to train a finished run further, rerun with --extend-to {} (a schedule of its own), or use another --out directory",
                expected.get().steps
            )
        } else {
            "; use another --out directory or the checkpoint's settings".to_string()
        };
        return Err(GmmSegError::Mismatch {
            path: loaded.path.clone(),
            detail: format!(
                "checkpoint was written by another configuration (checkpoint → this run: {}){hint}",
                if diff.is_empty() {
                    "the configuration hashes differ".to_string()
                } else {
                    diff.join(", ")
                }
            ),
        });
    }
    load_params(loaded, model)?;
    optimizer.t = loaded.optimizer_t;
    optimizer.state = loaded
        .tensors
        .iter()
        .filter_map(|(k, (_, v))| k.strip_prefix("optim.").map(|s| (s.to_string(), v.clone())))
        .collect();
    Ok(loaded.step)
}

/// Loads parameters and fitted head state (not the optimiser), checking names and shapes.
///
/// # Errors
/// [`GmmSegError::Mismatch`] for a missing parameter or a shape difference.
pub fn load_params(loaded: &Loaded, model: &mut SegModel) -> Result<()> {
    let mut err = None;
    model.visit_mut(&mut |p| {
        if err.is_some() {
            return;
        }
        match loaded.tensors.get(&format!("param.{}", p.name)) {
            None => err = Some(format!("parameter `{}` is not in the checkpoint", p.name)),
            Some((shape, _)) if *shape != p.shape => {
                err = Some(format!(
                    "parameter `{}` has shape {:?} in the checkpoint, {:?} in the model",
                    p.name, shape, p.shape
                ))
            }
            Some((_, values)) => {
                if let Err(e) = p.set(values) {
                    err = Some(e.to_string());
                }
            }
        }
    });
    if let Some(detail) = err {
        return Err(GmmSegError::Mismatch {
            path: loaded.path.clone(),
            detail,
        });
    }
    let fitted: FittedState = loaded
        .tensors
        .iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("fitted.")
                .map(|s| (s.to_string(), v.clone()))
        })
        .collect();
    model.head.load_fitted_state(&fitted)
}
