//! Datasets: one `len`/`get` interface shared by every source (SynthScapes, DigitScenes, the
//! folder format), so that the trainer, the evaluator and the experiments never care where
//! pixels come from.
//!
//! - [`synthscapes`]: procedural street scenes (built in, no files), with anomaly splits.
//! - [`digitscenes`]: canvases of real MNIST digits, Fashion-MNIST items as anomalies.
//! - [`folder`]: the user's own data (images + label PNGs), Cityscapes / ADE20K mappings.
//! - [`toy`]: coloured shapes, a tiny dataset for tests and examples.
//! - [`batch`]: the one pipeline from a dataset to a network's input (sampler, flips,
//!   normalisation, stacking), used by training, evaluation, benchmarks and tests.
//! - [`open_dataset`]: a dataset from a name such as `synthscapes` or `folder:/path`.

use std::path::PathBuf;

use ndarray::{Array2, Array3, Array4};

use crate::error::{GmmSegError, Result};

pub mod batch;
pub mod digitscenes;
pub mod folder;
pub mod idx;
pub mod palette;
pub mod preview;
pub mod stats;
pub mod synthscapes;
pub mod toy;

pub use batch::{make_batch, Sampler, SamplerKind};
pub use synthscapes::{SynthScapes, SynthScapesConfig, SynthSplit};

/// The label value that marks a pixel to be ignored by losses and metrics.
pub const IGNORE_LABEL: u8 = 255;

/// One image with its labels.
///
/// # Shapes
/// - `image`: (3, H, W), RGB in [0, 1] (not normalised; normalisation is [`batch`]'s job).
/// - `label`: (H, W), class ids `0..num_classes`, or [`IGNORE_LABEL`].
/// - `anomaly`: (H, W) on anomaly splits: 1 = anomaly, 0 = in-distribution, 255 = ignore.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// RGB image (3, H, W) in [0, 1].
    pub image: Array3<f32>,
    /// Class ids (H, W), or [`IGNORE_LABEL`].
    pub label: Array2<u8>,
    /// Anomaly mask (H, W) on anomaly splits; `None` elsewhere.
    pub anomaly: Option<Array2<u8>>,
}

impl Sample {
    /// Checks that the image is (3, H, W), the labels and anomaly mask (H, W), labels are
    /// `< num_classes` or 255, and mask values are 0, 1 or 255. `what` names the sample in
    /// errors. Loaders and previews call it so that a malformed custom dataset gives an error
    /// instead of a panic deep inside an index.
    pub fn validate(&self, what: &str, num_classes: usize) -> Result<()> {
        let (c, h, w) = self.image.dim();
        if c != 3 || self.label.dim() != (h, w) {
            return Err(GmmSegError::shape(
                what,
                format!(
                    "image {:?} and labels {:?}; expected (3, H, W) and (H, W)",
                    self.image.dim(),
                    self.label.dim()
                ),
            ));
        }
        if let Some((index, &l)) = self
            .label
            .iter()
            .enumerate()
            .find(|(_, &l)| l != IGNORE_LABEL && l as usize >= num_classes)
        {
            return Err(GmmSegError::LabelOutOfRange {
                what: what.to_string(),
                label: l as i64,
                index,
                classes: num_classes,
            });
        }
        if let Some(a) = &self.anomaly {
            if a.dim() != (h, w) {
                return Err(GmmSegError::shape(
                    what,
                    format!("anomaly mask {:?}, labels ({h}, {w})", a.dim()),
                ));
            }
            if let Some(&v) = a.iter().find(|&&v| v > 1 && v != IGNORE_LABEL) {
                return Err(GmmSegError::input(
                    what,
                    format!("anomaly mask holds {v}; expected 0, 1 or 255"),
                ));
            }
        }
        Ok(())
    }
}

/// A finite, indexable split of a dataset. `get` is deterministic: the same index gives the
/// same sample every time (random flips happen in [`batch`], with their own seed).
pub trait Dataset: Send + Sync {
    /// Number of samples in this split.
    fn len(&self) -> usize;
    /// Whether the split has no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The `index`-th sample. Errors name the file for file-backed datasets.
    fn get(&self, index: usize) -> Result<Sample>;
    /// Number of in-distribution classes C (labels are `0..C` or 255).
    fn num_classes(&self) -> usize;
    /// Human-readable class names, `num_classes()` of them.
    fn class_names(&self) -> Vec<String>;
    /// A short name for tables and file names, e.g. `synthscapes/train`.
    fn name(&self) -> String;
    /// Where sample `index` comes from (its image file for file-backed datasets), for error
    /// messages; `None` for generated data.
    fn source(&self, index: usize) -> Option<String> {
        let _ = index;
        None
    }
}

/// A mini-batch ready for a network: images normalised, all the same size.
///
/// # Shapes
/// - `images`: (B, 3, H, W), normalised with [`batch::MEAN`] and [`batch::STD`].
/// - `labels`: (B, H, W), class ids or [`IGNORE_LABEL`].
/// - `anomaly`: (B, H, W) on anomaly splits (1 anomaly, 0 in-distribution, 255 ignore).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Normalised images (B, 3, H, W).
    pub images: Array4<f32>,
    /// Class ids (B, H, W), or [`IGNORE_LABEL`].
    pub labels: ndarray::Array3<u8>,
    /// Anomaly masks (B, H, W) when every sample has one.
    pub anomaly: Option<ndarray::Array3<u8>>,
}

/// The error every dataset's `get` returns for an index past the end of its split.
pub(crate) fn check_index(index: usize, len: usize, name: impl FnOnce() -> String) -> Result<()> {
    if index < len {
        return Ok(());
    }
    Err(crate::error::GmmSegError::input(
        "index",
        format!("{index} is out of range for {} ({len} samples)", name()),
    ))
}

/// Environment variable that overrides where the shipped data files (`mnist-10k/`,
/// `fashion-3k/`) are looked up.
pub const DATA_DIR_ENV: &str = "GMMSEG_DATA_DIR";

/// The project's data folder: `$GMMSEG_DATA_DIR` if set, else `data/` in the crate's source
/// tree (where the MNIST and Fashion-MNIST subsets ship). Never `../shared`.
pub fn data_dir() -> PathBuf {
    match std::env::var_os(DATA_DIR_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/data")),
    }
}

/// Options of [`open_dataset`]; `Default` gives each dataset's own defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetOptions {
    /// Square image size of generated datasets (SynthScapes, DigitScenes). `None`: 64.
    pub size: Option<usize>,
    /// Seed of generated datasets. Default 0.
    pub seed: u64,
    /// Number of samples: the split's length for generated datasets, the first `len` files
    /// for folders. `None`: the dataset's default (all files for folders).
    pub len: Option<usize>,
    /// Folder holding `mnist-10k/` and `fashion-3k/`. `None`: [`data_dir`].
    pub data_dir: Option<PathBuf>,
}

/// Opens split `split` of the dataset named by `spec`, the one entry point the trainer, the
/// experiments and the command line share.
///
/// `spec` is one of
/// - `synthscapes` — splits `train`, `val`, `anomaly`, `anomaly-context`;
/// - `digitscenes` — splits `train`, `test` (alias `val`), `anomaly`;
/// - `folder:PATH` — the folder format, labels used as they are;
/// - `cityscapes:PATH` — the folder format with Cityscapes labelIds mapped to trainIds;
/// - `ade20k:PATH` — the folder format with ADE20K's zero label reduced (0 → 255, k → k−1).
pub fn open_dataset(spec: &str, split: &str, opts: &DatasetOptions) -> Result<Box<dyn Dataset>> {
    let (kind, path) = match spec.split_once(':') {
        Some((k, p)) => (k, Some(p)),
        None => (spec, None),
    };
    let need_path = || -> Result<PathBuf> {
        match path {
            Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
            _ => Err(GmmSegError::input(
                "dataset",
                format!("`{spec}` needs a folder: write `{kind}:PATH`"),
            )),
        }
    };
    match kind {
        "synthscapes" => {
            let mut cfg = SynthScapesConfig::with_size(opts.size.unwrap_or(64));
            cfg.seed = opts.seed;
            let split = SynthSplit::parse(split)?;
            let mut ds = SynthScapes::new(cfg.check()?, split);
            if let Some(n) = opts.len {
                ds = ds.with_len(n);
            }
            Ok(Box::new(ds))
        }
        "digitscenes" => {
            let mut cfg = digitscenes::DigitScenesConfig::default();
            if let Some(s) = opts.size {
                cfg.size = s;
            }
            cfg.seed = opts.seed;
            cfg.data_dir = opts.data_dir.clone();
            let split = digitscenes::DigitSplit::parse(split)?;
            let mut ds = digitscenes::DigitScenes::open(cfg.check()?, split)?;
            if let Some(n) = opts.len {
                ds = ds.with_len(n);
            }
            Ok(Box::new(ds))
        }
        "folder" | "cityscapes" | "ade20k" => {
            let mapping = match kind {
                "cityscapes" => folder::LabelMapping::Cityscapes,
                "ade20k" => folder::LabelMapping::Ade20k,
                _ => folder::LabelMapping::Identity,
            };
            let ds = folder::FolderDataset::open(need_path()?, split, mapping)?;
            Ok(Box::new(match opts.len {
                Some(n) => ds.truncate(n),
                None => ds,
            }))
        }
        other => Err(GmmSegError::input(
            "dataset",
            format!("unknown dataset `{other}`; expected synthscapes, digitscenes, folder:PATH, cityscapes:PATH or ade20k:PATH"),
        )),
    }
}
