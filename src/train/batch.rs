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

/// Dataset indices and horizontal flips of the batch at `step`.
pub fn batch_plan(len: usize, batch: usize, seed: u64, step: usize, flip: bool) -> Vec<(usize, bool)> {
    let mut out = Vec::with_capacity(batch);
    let mut cached: Option<(usize, Vec<usize>)> = None;
    let mut frng = ChaCha8Rng::seed_from_u64(seed.wrapping_mul(31).wrapping_add(step as u64) ^ 0xF11F);
    for i in 0..batch {
        let k = step * batch + i;
        let epoch = k / len;
        if cached.as_ref().map(|c| c.0) != Some(epoch) {
            let mut perm: Vec<usize> = (0..len).collect();
            perm.shuffle(&mut ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)));
            cached = Some((epoch, perm));
        }
        let idx = cached.as_ref().expect("set above").1[k % len];
        out.push((idx, flip && frng.gen_bool(0.5)));
    }
    out
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
        return Err(GmmSegError::shape("image", format!("expected 3 channels, got {c}")));
    }
    let b = samples.len();
    let mut images = Array4::<f32>::zeros((b, 3, h, w));
    let mut labels = Array3::<u8>::zeros((b, h, w));
    let with_anomaly = samples.iter().all(|s| s.anomaly.is_some());
    let mut anomaly = with_anomaly.then(|| Array3::<u8>::zeros((b, h, w)));
    for (n, s) in samples.iter().enumerate() {
        if s.image.dim() != (3, h, w) || s.label.dim() != (h, w) {
            return Err(GmmSegError::shape(
                "batch",
                format!("sample {n} has image {:?} / label {:?}, the first has (3, {h}, {w})", s.image.dim(), s.label.dim()),
            ));
        }
        for ch in 0..3 {
            let src = s.image.slice(s![ch, .., ..]);
            images.slice_mut(s![n, ch, .., ..]).assign(&src.mapv(|v| (v - MEAN[ch]) / STD[ch]));
        }
        labels.slice_mut(s![n, .., ..]).assign(&s.label);
        if let (Some(a), Some(src)) = (anomaly.as_mut(), s.anomaly.as_ref()) {
            a.slice_mut(s![n, .., ..]).assign(src);
        }
    }
    Ok(Batch { images, labels, anomaly })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_a_function_of_step_and_covers_each_epoch() {
        assert_eq!(batch_plan(10, 4, 3, 5, true), batch_plan(10, 4, 3, 5, true));
        let mut seen: Vec<usize> = (0..5).flat_map(|t| batch_plan(10, 2, 3, t, false)).map(|p| p.0).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_ne!(batch_plan(10, 4, 3, 5, false), batch_plan(10, 4, 4, 5, false));
    }
}
