//! A minimal deterministic batcher over any [`Dataset`]: which images (and flips) make up the
//! batch of step t is a pure function of (seed, t), so a resumed run sees exactly the batches
//! an uninterrupted run would have seen.
//!
//! Sampling: epoch-wise shuffling without replacement (a fresh permutation per epoch, seeded
//! by (seed, epoch)). Normalisation: per channel `(x − 0.5)/0.25`, a fixed stand-in until the
//! data module's loader (with dataset statistics) replaces it.

use ndarray::{s, Array3, Array4};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::{Batch, Dataset};
use crate::error::{GmmSegError, Result};

/// Per-channel mean subtracted from images.
pub const MEAN: [f32; 3] = [0.5, 0.5, 0.5];
/// Per-channel standard deviation images are divided by.
pub const STD: [f32; 3] = [0.25, 0.25, 0.25];

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

/// Loads, optionally flips, normalises and stacks the given samples.
///
/// # Errors
/// Errors of [`Dataset::get`]; [`GmmSegError::Shape`] when images differ in size or are not
/// 3-channel.
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
