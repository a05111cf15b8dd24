//! Batches for training ([`Loader`]: sampled, augmented, normalised, deterministic per
//! (seed, step)) and for evaluation ([`EvalLoader`]: every sample once, fixed order, no
//! augmentation), plus the conversion of a [`Batch`] to a dfdx tensor.
//!
//! Samples of a batch are generated and augmented in parallel (rayon); each sample draws its
//! augmentation from its own RNG stream seeded by (seed, step, position), so the result does
//! not depend on thread scheduling.

use std::sync::Arc;

use dfdx::shapes::Const;
use dfdx::tensor::{Tensor, TensorFromVec};
use ndarray::{Array3, Array4};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::augment::{apply, AugmentParams};
use super::sampler::{ClassBalancedSampler, Sampler, ShuffleSampler};
use super::{Batch, Dataset, Sample};
use crate::error::{GmmSegError, Result};

/// ImageNet channel means: what mmsegmentation (and the GMMSeg reference code) normalise
/// with; harmless for networks trained from scratch.
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Configuration of the training and evaluation loaders. `Default` gives the documented
/// defaults; [`LoaderConfig::check`] validates it once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoaderConfig {
    /// Images per batch. Default 8 (the paper's 8 GPUs × 2, halved for a CPU).
    pub batch_size: usize,
    /// Output (height, width) of training crops. `None` (default): the size of the split's
    /// first image, i.e. scale jitter without changing the batch shape.
    pub crop: Option<(usize, usize)>,
    /// Random-resize range (log-uniform). Default (0.75, 1.5) — mmsegmentation uses
    /// (0.5, 2.0) on 512–1024-pixel images; tiny images lose too much below 0.75.
    pub scale_range: (f32, f32),
    /// Random horizontal flips (p = 0.5). Default true.
    pub flip: bool,
    /// Colour-jitter strength: brightness, contrast and saturation factors in
    /// [1 − jitter, 1 + jitter]. Default 0.1 ("light"). Range [0, 0.5].
    pub jitter: f32,
    /// Master switch for augmentation (off: crops of the original images only). Default true.
    pub augment: bool,
    /// Per-channel mean subtracted after augmentation. Default [`IMAGENET_MEAN`].
    pub mean: [f32; 3],
    /// Per-channel standard deviation divided by. Default [`IMAGENET_STD`]. Must be > 0.
    pub std: [f32; 3],
    /// Class-balanced image sampling instead of epoch shuffling. Default false.
    pub class_balanced: bool,
    /// Seed of sampling and augmentation. Default 0.
    pub seed: u64,
    /// Build batches in parallel with rayon. Default true.
    pub parallel: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        Self {
            batch_size: 8,
            crop: None,
            scale_range: (0.75, 1.5),
            flip: true,
            jitter: 0.1,
            augment: true,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            class_balanced: false,
            seed: 0,
            parallel: true,
        }
    }
}

/// A checked [`LoaderConfig`].
#[derive(Clone, Debug, PartialEq)]
pub struct ValidLoaderConfig(LoaderConfig);

impl std::ops::Deref for ValidLoaderConfig {
    type Target = LoaderConfig;
    fn deref(&self) -> &LoaderConfig {
        &self.0
    }
}

impl LoaderConfig {
    /// Validates every field; errors name the field and its bound.
    pub fn check(self) -> Result<ValidLoaderConfig> {
        if self.batch_size == 0 || self.batch_size > 4096 {
            return Err(GmmSegError::config(
                "batch_size",
                format!("must be in 1..=4096, got {}", self.batch_size),
            ));
        }
        if let Some((h, w)) = self.crop {
            if h == 0 || w == 0 || h > 4096 || w > 4096 {
                return Err(GmmSegError::config(
                    "crop",
                    format!("sides must be in 1..=4096, got ({h}, {w})"),
                ));
            }
        }
        let (a, b) = self.scale_range;
        if !(a > 0.05 && a <= b && b <= 8.0) {
            return Err(GmmSegError::config(
                "scale_range",
                format!("must satisfy 0.05 < low <= high <= 8, got ({a}, {b})"),
            ));
        }
        if !(0.0..=0.5).contains(&self.jitter) {
            return Err(GmmSegError::config(
                "jitter",
                format!("must be in [0, 0.5], got {}", self.jitter),
            ));
        }
        if self.mean.iter().any(|m| !m.is_finite()) {
            return Err(GmmSegError::config("mean", "must be finite"));
        }
        if self.std.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(GmmSegError::config(
                "std",
                format!("must be finite and > 0, got {:?}", self.std),
            ));
        }
        Ok(ValidLoaderConfig(self))
    }
}

impl Batch {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.images.dim().0
    }

    /// Whether the batch holds no images.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (height, width) of the batch's images.
    pub fn hw(&self) -> (usize, usize) {
        let (_, _, h, w) = self.images.dim();
        (h, w)
    }

    /// The images as a dfdx tensor on `dev`, ready for a network.
    ///
    /// # Shapes
    /// (B, 3, H, W), the same values as `self.images`.
    pub fn images_tensor<D: TensorFromVec<f32>>(
        &self,
        dev: &D,
    ) -> Tensor<(usize, Const<3>, usize, usize), f32, D> {
        let (b, _, h, w) = self.images.dim();
        let v: Vec<f32> = match self.images.as_slice() {
            Some(s) => s.to_vec(),
            None => self.images.iter().copied().collect(),
        };
        dev.tensor_from_vec(v, (b, Const::<3>, h, w))
    }

    /// Labels flattened row-major as `usize` (B·H·W), the form cross-entropy code indexes by.
    pub fn labels_usize(&self) -> Vec<usize> {
        self.labels.iter().map(|&l| l as usize).collect()
    }

    /// Stacks samples of equal size, normalising images with `mean` and `std`.
    pub fn from_samples(samples: &[Sample], mean: [f32; 3], std: [f32; 3]) -> Result<Batch> {
        let first = samples
            .first()
            .ok_or_else(|| GmmSegError::empty("batch", "no samples to stack"))?;
        let (_, h, w) = first.image.dim();
        let b = samples.len();
        let with_anomaly = samples.iter().any(|s| s.anomaly.is_some());
        let mut images = Vec::with_capacity(b * 3 * h * w);
        let mut labels = Vec::with_capacity(b * h * w);
        let mut anomaly = Vec::with_capacity(if with_anomaly { b * h * w } else { 0 });
        for (i, s) in samples.iter().enumerate() {
            if s.image.dim() != (3, h, w) || s.label.dim() != (h, w) {
                return Err(GmmSegError::shape(
                    "batch",
                    format!(
                        "sample {i} has image {:?} and labels {:?}, but sample 0 is (3, {h}, {w}); use a crop, or batch size 1 for images of different sizes",
                        s.image.dim(),
                        s.label.dim()
                    ),
                ));
            }
            for c in 0..3 {
                let (m, sd) = (mean[c], std[c]);
                images.extend(
                    s.image
                        .index_axis(ndarray::Axis(0), c)
                        .iter()
                        .map(|v| (v - m) / sd),
                );
            }
            labels.extend(s.label.iter().copied());
            if with_anomaly {
                match &s.anomaly {
                    Some(a) if a.dim() == (h, w) => anomaly.extend(a.iter().copied()),
                    Some(a) => {
                        return Err(GmmSegError::shape(
                            "batch",
                            format!(
                                "sample {i} has an anomaly mask {:?}, expected ({h}, {w})",
                                a.dim()
                            ),
                        ))
                    }
                    None => anomaly.extend(std::iter::repeat_n(super::IGNORE_LABEL, h * w)),
                }
            }
        }
        Ok(Batch {
            images: Array4::from_shape_vec((b, 3, h, w), images).expect("stacked size"),
            labels: Array3::from_shape_vec((b, h, w), labels).expect("stacked size"),
            anomaly: with_anomaly
                .then(|| Array3::from_shape_vec((b, h, w), anomaly).expect("stacked size")),
        })
    }
}

/// The training loader: batch `step` is a pure function of (dataset, config, step).
pub struct Loader {
    ds: Arc<dyn Dataset>,
    cfg: ValidLoaderConfig,
    sampler: Sampler,
    crop: (usize, usize),
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loader")
            .field("dataset", &self.ds.name())
            .field("cfg", &self.cfg)
            .field("crop", &self.crop)
            .finish()
    }
}

impl Loader {
    /// A loader over `ds`. With `class_balanced`, scans every label map once first.
    pub fn new(ds: impl Into<Arc<dyn Dataset>>, cfg: ValidLoaderConfig) -> Result<Self> {
        let ds = ds.into();
        if ds.is_empty() {
            return Err(GmmSegError::empty(
                ds.name(),
                "cannot train on an empty split",
            ));
        }
        let crop = match cfg.crop {
            Some(c) => c,
            None => {
                let (_, h, w) = ds.get(0)?.image.dim();
                (h, w)
            }
        };
        let sampler = if cfg.class_balanced {
            Sampler::ClassBalanced(ClassBalancedSampler::build(ds.as_ref(), cfg.seed)?)
        } else {
            Sampler::Shuffle(ShuffleSampler::new(ds.len(), cfg.seed)?)
        };
        Ok(Self {
            ds,
            cfg,
            sampler,
            crop,
        })
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.ds
    }

    /// The configuration.
    pub fn config(&self) -> &ValidLoaderConfig {
        &self.cfg
    }

    /// (height, width) of every batch.
    pub fn crop(&self) -> (usize, usize) {
        self.crop
    }

    /// The dataset indices of batch `step`.
    pub fn batch_indices(&self, step: u64) -> Vec<usize> {
        self.sampler.indices(step, self.cfg.batch_size)
    }

    /// One augmented sample: dataset item `index` at position `k` of batch `step`.
    fn item(&self, step: u64, k: usize, index: usize) -> Result<Sample> {
        let s = self.ds.get(index)?;
        s.validate(
            &format!("{} sample {index}", self.ds.name()),
            self.ds.num_classes(),
        )?;
        let (_, h, w) = s.image.dim();
        let p = if self.cfg.augment {
            let mut rng = ChaCha8Rng::seed_from_u64(
                self.cfg.seed
                    ^ step.wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    ^ (k as u64 + 1).wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
            );
            AugmentParams::sample(
                &mut rng,
                (h, w),
                self.crop,
                self.cfg.scale_range,
                self.cfg.flip,
                self.cfg.jitter,
            )
        } else {
            AugmentParams::identity()
        };
        if !self.cfg.augment && (h, w) == self.crop {
            return Ok(s);
        }
        apply(&s, &p, self.crop, self.cfg.mean)
    }

    /// Batch `step`: sampled, augmented and normalised (deterministic).
    pub fn batch(&self, step: u64) -> Result<Batch> {
        let idx = self.batch_indices(step);
        let samples: Vec<Sample> = if self.cfg.parallel {
            idx.par_iter()
                .enumerate()
                .map(|(k, &i)| self.item(step, k, i))
                .collect::<Result<_>>()?
        } else {
            idx.iter()
                .enumerate()
                .map(|(k, &i)| self.item(step, k, i))
                .collect::<Result<_>>()?
        };
        Batch::from_samples(&samples, self.cfg.mean, self.cfg.std)
    }

    /// Batches 0, 1, 2, … without end (training decides when to stop).
    pub fn iter(&self) -> impl Iterator<Item = Result<Batch>> + '_ {
        (0u64..).map(move |s| self.batch(s))
    }
}

/// The evaluation loader: every sample once, in index order, normalised, not augmented;
/// the last batch may be smaller.
pub struct EvalLoader {
    ds: Arc<dyn Dataset>,
    batch_size: usize,
    mean: [f32; 3],
    std: [f32; 3],
    parallel: bool,
}

impl EvalLoader {
    /// Uses `cfg`'s batch size, normalisation and parallelism (its augmentation is ignored).
    pub fn new(ds: impl Into<Arc<dyn Dataset>>, cfg: &ValidLoaderConfig) -> Self {
        Self {
            ds: ds.into(),
            batch_size: cfg.batch_size,
            mean: cfg.mean,
            std: cfg.std,
            parallel: cfg.parallel,
        }
    }

    /// Number of batches.
    pub fn num_batches(&self) -> usize {
        self.ds.len().div_ceil(self.batch_size)
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.ds
    }

    fn get(&self, j: usize) -> Result<Sample> {
        let s = self.ds.get(j)?;
        s.validate(
            &format!("{} sample {j}", self.ds.name()),
            self.ds.num_classes(),
        )?;
        Ok(s)
    }

    /// Batch `i` (samples `i·B .. min((i+1)·B, len)`).
    pub fn batch(&self, i: usize) -> Result<Batch> {
        let start = i * self.batch_size;
        let end = (start + self.batch_size).min(self.ds.len());
        if start >= end {
            return Err(GmmSegError::input(
                "batch",
                format!("{i} is out of range ({} batches)", self.num_batches()),
            ));
        }
        let samples: Vec<Sample> = if self.parallel {
            (start..end)
                .into_par_iter()
                .map(|j| self.get(j))
                .collect::<Result<_>>()?
        } else {
            (start..end).map(|j| self.get(j)).collect::<Result<_>>()?
        };
        Batch::from_samples(&samples, self.mean, self.std)
    }

    /// All batches in order.
    pub fn iter(&self) -> impl Iterator<Item = Result<Batch>> + '_ {
        (0..self.num_batches()).map(move |i| self.batch(i))
    }
}
