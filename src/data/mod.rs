//! Datasets: one `len`/`get` interface shared by every source (SynthScapes, DigitScenes, the
//! folder format), so that the trainer, the evaluator and the experiments never care where
//! pixels come from.

use ndarray::{Array2, Array3, Array4};

use crate::error::Result;

pub mod palette;

/// The label value that marks a pixel to be ignored by losses and metrics.
pub const IGNORE_LABEL: u8 = 255;

/// One image with its labels.
///
/// # Shapes
/// - `image`: (3, H, W), RGB in [0, 1] (not normalised; normalisation is the loader's job).
/// - `label`: (H, W), class ids `0..num_classes`, or [`IGNORE_LABEL`].
/// - `anomaly`: (H, W) on anomaly splits: 1 = anomaly, 0 = in-distribution, 255 = ignore.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub image: Array3<f32>,
    pub label: Array2<u8>,
    pub anomaly: Option<Array2<u8>>,
}

/// A finite, indexable split of a dataset. `get` is deterministic: the same index gives the
/// same sample every time (random augmentation happens in the loader, with its own seed).
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
}

/// A mini-batch ready for a network: images normalised, all the same size.
///
/// # Shapes
/// - `images`: (B, 3, H, W), normalised with the loader's mean and standard deviation.
/// - `labels`: (B, H, W), class ids or [`IGNORE_LABEL`].
/// - `anomaly`: (B, H, W) on anomaly splits (1 anomaly, 0 in-distribution, 255 ignore).
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    pub images: Array4<f32>,
    pub labels: ndarray::Array3<u8>,
    pub anomaly: Option<ndarray::Array3<u8>>,
}
