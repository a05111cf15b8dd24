//! The one data pipeline from a [`Dataset`] to a network's input: which images make up
//! the batch of step t ([`Sampler`]), and how they are loaded, flipped, normalised and
//! stacked ([`make_batch`]). Training, evaluation, the post-hoc fits, the benchmarks and the
//! tests all batch through here, so they see one normalisation and one anomaly-mask rule.
//!
//! Determinism: the plan of step t is a pure function of (seed, t), so a resumed run sees
//! exactly the batches an uninterrupted run would have seen.
//!
//! Sampling ([`SamplerKind`]): epoch-wise shuffling without replacement (a fresh permutation
//! per epoch, seeded by (seed, epoch)), or the reference code's class-balanced draw.
//! Normalisation: per channel `(x − 0.5)/0.25` ([`MEAN`], [`STD`]): fixed rather than
//! dataset statistics, so that a model means the same thing on every dataset and split.
//! No other augmentation than horizontal flips: none of these studies used the scale
//! jitter, crops or colour jitter of mmsegmentation's pipeline.

use ndarray::{s, Array3, Array4};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Batch, Dataset};
use crate::error::{GmmSegError, Result};

/// Per-channel mean subtracted from images (in [0, 1]).
pub const MEAN: [f32; 3] = [0.5, 0.5, 0.5];
/// Per-channel standard deviation images are divided by.
pub const STD: [f32; 3] = [0.25, 0.25, 0.25];

/// How training images are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SamplerKind {
    /// Epoch-wise shuffling (mmseg's non-distributed default).
    Shuffle,
    /// Class-balanced image sampling (the reference code's `sampler_mode='gmmseg'`).
    ClassBalanced,
}

/// The training batches of one run: `plan(step)` names the images (and flips) of step t.
#[derive(Clone, Debug)]
pub struct Sampler {
    len: usize,
    batch: usize,
    seed: u64,
    flip: bool,
    /// Per class, the images containing it ([`class_index`]); `None` when shuffling.
    index: Option<Vec<Vec<usize>>>,
}

impl Sampler {
    /// A sampler over `ds` (the class-balanced kind reads every label once, here).
    ///
    /// # Errors
    /// Errors of [`Dataset::get`] while indexing classes.
    pub fn new(
        ds: &dyn Dataset,
        kind: SamplerKind,
        batch: usize,
        seed: u64,
        flip: bool,
    ) -> Result<Self> {
        let index = match kind {
            SamplerKind::Shuffle => None,
            SamplerKind::ClassBalanced => Some(class_index(ds)?),
        };
        Ok(Sampler {
            len: ds.len(),
            batch,
            seed,
            flip,
            index,
        })
    }

    /// Dataset indices and horizontal flips of the batch at `step`.
    ///
    /// # Errors
    /// [`GmmSegError::Empty`] when class-balanced and no class occurs in any image.
    pub fn plan(&self, step: usize) -> Result<Vec<(usize, bool)>> {
        match &self.index {
            None => Ok(batch_plan(self.len, self.batch, self.seed, step, self.flip)),
            Some(index) => balanced_plan(index, self.batch, self.seed, step, self.flip),
        }
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
}

/// The displayable value (in [0, 1]) of a normalised value of channel `ch`.
pub fn denormalise(value: f32, ch: usize) -> f32 {
    (value * STD[ch] + MEAN[ch]).clamp(0.0, 1.0)
}

/// Dataset indices and horizontal flips of the batch at `step` (empty for an empty dataset).
pub fn batch_plan(
    len: usize,
    batch: usize,
    seed: u64,
    step: usize,
    flip: bool,
) -> Vec<(usize, bool)> {
    if len == 0 {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(batch);
    let mut cached: Option<(usize, Vec<usize>)> = None;
    let mut frng =
        ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(step as u64) ^ 0xF11F);
    for i in 0..batch {
        let k = step * batch + i;
        let epoch = k / len;
        if cached.as_ref().map(|c| c.0) != Some(epoch) {
            let mut perm: Vec<usize> = (0..len).collect();
            perm.shuffle(&mut ChaCha8Rng::seed_from_u64(
                seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            ));
            cached = Some((epoch, perm));
        }
        let idx = cached.as_ref().expect("set above").1[k % len];
        out.push((idx, flip && frng.gen_bool(0.5)));
    }
    out
}

/// For each class, the images whose labels contain it (the reference code's `lbl2idx`).
///
/// # Errors
/// Errors of [`Dataset::get`].
pub fn class_index(ds: &dyn Dataset) -> Result<Vec<Vec<usize>>> {
    let c = ds.num_classes();
    let mut idx = vec![Vec::new(); c];
    for i in 0..ds.len() {
        let s = ds.get(i)?;
        let mut present = vec![false; c];
        for &l in s.label.iter() {
            if (l as usize) < c {
                present[l as usize] = true;
            }
        }
        for (k, p) in present.iter().enumerate() {
            if *p {
                idx[k].push(i);
            }
        }
    }
    Ok(idx)
}

/// Class-balanced plan (the reference code's `gmmseg` sampler): each image of the batch at
/// `step` is drawn by picking a class uniformly among those present in some image, then an
/// image uniformly among those containing it. A pure function of (seed, step).
///
/// # Errors
/// [`GmmSegError::Empty`] when no class occurs in any image.
pub fn balanced_plan(
    index: &[Vec<usize>],
    batch: usize,
    seed: u64,
    step: usize,
    flip: bool,
) -> Result<Vec<(usize, bool)>> {
    let classes: Vec<&Vec<usize>> = index.iter().filter(|v| !v.is_empty()).collect();
    if classes.is_empty() {
        return Err(GmmSegError::empty(
            "class index",
            "no labelled class in the training set",
        ));
    }
    let mut rng = ChaCha8Rng::seed_from_u64(
        seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (step as u64).wrapping_add(0xBA1A),
    );
    Ok((0..batch)
        .map(|_| {
            let imgs = classes[rng.gen_range(0..classes.len())];
            (
                imgs[rng.gen_range(0..imgs.len())],
                flip && rng.gen_bool(0.5),
            )
        })
        .collect())
}

/// Loads, optionally flips, normalises and stacks the given samples. The batch keeps
/// anomaly masks only when every sample has one (an anomaly split).
///
/// # Errors
/// Errors of [`Dataset::get`]; [`GmmSegError::Shape`] when images differ in size, are not
/// 3-channel, or a label or anomaly mask differs from its image in size.
pub fn make_batch(ds: &dyn Dataset, plan: &[(usize, bool)]) -> Result<Batch> {
    if plan.is_empty() {
        return Err(GmmSegError::empty("batch", "no samples requested"));
    }
    let mut samples = Vec::with_capacity(plan.len());
    for &(i, f) in plan {
        let mut s = ds.get(i)?;
        if f {
            s.image.invert_axis(ndarray::Axis(2));
            s.label.invert_axis(ndarray::Axis(1));
            if let Some(a) = s.anomaly.as_mut() {
                a.invert_axis(ndarray::Axis(1));
            }
        }
        samples.push(s);
    }
    let (c, h, w) = samples[0].image.dim();
    if c != 3 {
        return Err(GmmSegError::shape(
            "image",
            format!("expected 3 channels, got {c}"),
        ));
    }
    let b = samples.len();
    let mut images = Array4::<f32>::zeros((b, 3, h, w));
    let mut labels = Array3::<u8>::zeros((b, h, w));
    let with_anomaly = samples.iter().all(|s| s.anomaly.is_some());
    let mut anomaly = with_anomaly.then(|| Array3::<u8>::zeros((b, h, w)));
    for (n, s) in samples.iter().enumerate() {
        if s.image.dim() != (3, h, w) || s.label.dim() != (h, w) {
            let name = |i: usize| ds.source(i).unwrap_or_else(|| format!("image {i}"));
            let (_, sh, sw) = s.image.dim();
            return Err(GmmSegError::shape(
                ds.name(),
                format!(
                    "{} is {sw}×{sh} but {} in the same batch is {w}×{h}; a training batch stacks \
                     images of one size: resize or crop the images to one size",
                    name(plan[n].0),
                    name(plan[0].0),
                ),
            ));
        }
        for ch in 0..3 {
            let src = s.image.slice(s![ch, .., ..]);
            images
                .slice_mut(s![n, ch, .., ..])
                .assign(&src.mapv(|v| (v - MEAN[ch]) / STD[ch]));
        }
        labels.slice_mut(s![n, .., ..]).assign(&s.label);
        if let (Some(a), Some(src)) = (anomaly.as_mut(), s.anomaly.as_ref()) {
            if src.dim() != (h, w) {
                let name = ds
                    .source(plan[n].0)
                    .unwrap_or_else(|| format!("image {}", plan[n].0));
                return Err(GmmSegError::shape(
                    ds.name(),
                    format!(
                        "{name}: anomaly mask is {}×{} but the image is {w}×{h}",
                        src.dim().1,
                        src.dim().0
                    ),
                ));
            }
            a.slice_mut(s![n, .., ..]).assign(src);
        }
    }
    Ok(Batch {
        images,
        labels,
        anomaly,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_a_function_of_step_and_covers_each_epoch() {
        assert_eq!(batch_plan(10, 4, 3, 5, true), batch_plan(10, 4, 3, 5, true));
        let mut seen: Vec<usize> = (0..5)
            .flat_map(|t| batch_plan(10, 2, 3, t, false))
            .map(|p| p.0)
            .collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_ne!(
            batch_plan(10, 4, 3, 5, false),
            batch_plan(10, 4, 4, 5, false)
        );
    }

    #[test]
    fn sampler_follows_its_kind() {
        let ds =
            crate::data::toy::ToyShapes::new(crate::data::toy::ToySplit::Train, 12, 16, 0).unwrap();
        let shuffle = Sampler::new(&ds, SamplerKind::Shuffle, 4, 3, true).unwrap();
        assert_eq!(shuffle.plan(5).unwrap(), batch_plan(12, 4, 3, 5, true));
        let balanced = Sampler::new(&ds, SamplerKind::ClassBalanced, 4, 3, true).unwrap();
        let index = class_index(&ds).unwrap();
        assert_eq!(
            balanced.plan(5).unwrap(),
            balanced_plan(&index, 4, 3, 5, true).unwrap()
        );
    }

    #[test]
    fn denormalise_inverts_the_normalisation() {
        for v in [0.0f32, 0.3, 1.0] {
            assert!((denormalise((v - MEAN[1]) / STD[1], 1) - v).abs() < 1e-6);
        }
    }

    #[test]
    fn balanced_plan_draws_rare_classes_as_often_as_common_ones() {
        // class 0 in all 100 images, class 1 only in image 7
        let index = vec![(0..100).collect::<Vec<_>>(), vec![7]];
        let hits = (0..200)
            .flat_map(|t| balanced_plan(&index, 4, 1, t, false).unwrap())
            .filter(|p| p.0 == 7)
            .count();
        // P(image 7) = ½ + ½·1/100 ≈ 0.505 of 800 draws
        assert!((340..470).contains(&hits), "{hits}");
        assert_eq!(
            balanced_plan(&index, 4, 1, 3, true).unwrap(),
            balanced_plan(&index, 4, 1, 3, true).unwrap()
        );
        assert!(balanced_plan(&[vec![]], 4, 1, 0, false).is_err());
    }
}
