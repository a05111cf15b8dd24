//! Which images go into each training batch.
//!
//! - [`ShuffleSampler`]: epochs of seeded permutations (every image once per epoch).
//! - [`ClassBalancedSampler`]: draw a class uniformly, then an image containing it uniformly
//!   — how the reference code approximates GMMSeg's uniform class prior, so rare classes
//!   (poles, people) get their mixture components fitted too.
//!
//! Both are pure functions of (seed, step), so training can resume at any step and two runs
//! with the same seed see the same images.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{Dataset, IGNORE_LABEL};
use crate::error::{GmmSegError, Result};

fn rng_for(seed: u64, a: u64, b: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(
        seed ^ a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_mul(0xc2b2_ae3d_27d4_eb4f),
    )
}

/// Seeded epoch permutations.
#[derive(Clone, Debug)]
pub struct ShuffleSampler {
    len: usize,
    seed: u64,
}

impl ShuffleSampler {
    /// A sampler over `len` images (`len` ≥ 1).
    pub fn new(len: usize, seed: u64) -> Result<Self> {
        if len == 0 {
            return Err(GmmSegError::empty(
                "dataset",
                "cannot sample from an empty split",
            ));
        }
        Ok(Self { len, seed })
    }

    /// The image indices of batch `step` (batch size `b`).
    pub fn indices(&self, step: u64, b: usize) -> Vec<usize> {
        let mut out = Vec::with_capacity(b);
        let mut cached: Option<(u64, Vec<usize>)> = None;
        for k in 0..b as u64 {
            let g = step * b as u64 + k;
            let (epoch, pos) = (g / self.len as u64, (g % self.len as u64) as usize);
            if cached.as_ref().map(|c| c.0) != Some(epoch) {
                let mut perm: Vec<usize> = (0..self.len).collect();
                perm.shuffle(&mut rng_for(self.seed, 0x5eed, epoch));
                cached = Some((epoch, perm));
            }
            out.push(cached.as_ref().expect("just set").1[pos]);
        }
        out
    }
}

/// Class-uniform image sampling.
#[derive(Clone, Debug)]
pub struct ClassBalancedSampler {
    /// For each class present in the split, the images containing it.
    per_class: Vec<Vec<usize>>,
    seed: u64,
}

impl ClassBalancedSampler {
    /// Scans every label map of `ds` once (in parallel) to index which classes each image
    /// contains.
    pub fn build(ds: &dyn Dataset, seed: u64) -> Result<Self> {
        let c = ds.num_classes();
        let present: Vec<Vec<bool>> = (0..ds.len())
            .into_par_iter()
            .map(|i| {
                let s = ds.get(i)?;
                let mut p = vec![false; c];
                for &l in s.label.iter() {
                    if l != IGNORE_LABEL && (l as usize) < c {
                        p[l as usize] = true;
                    }
                }
                Ok(p)
            })
            .collect::<Result<_>>()?;
        let mut per_class = vec![Vec::new(); c];
        for (i, p) in present.iter().enumerate() {
            for (k, &has) in p.iter().enumerate() {
                if has {
                    per_class[k].push(i);
                }
            }
        }
        Self::from_presence(per_class, seed)
    }

    /// From precomputed lists (class → images containing it); empty classes are skipped.
    pub fn from_presence(per_class: Vec<Vec<usize>>, seed: u64) -> Result<Self> {
        let per_class: Vec<Vec<usize>> = per_class.into_iter().filter(|v| !v.is_empty()).collect();
        if per_class.is_empty() {
            return Err(GmmSegError::empty(
                "dataset",
                "no image holds a labelled pixel",
            ));
        }
        Ok(Self { per_class, seed })
    }

    /// The image indices of batch `step`.
    pub fn indices(&self, step: u64, b: usize) -> Vec<usize> {
        let mut rng = rng_for(self.seed, 0xba1a, step);
        (0..b)
            .map(|_| {
                let imgs = &self.per_class[rng.gen_range(0..self.per_class.len())];
                imgs[rng.gen_range(0..imgs.len())]
            })
            .collect()
    }
}

/// Either sampler.
#[derive(Clone, Debug)]
pub enum Sampler {
    /// Epoch permutations.
    Shuffle(ShuffleSampler),
    /// Class-uniform.
    ClassBalanced(ClassBalancedSampler),
}

impl Sampler {
    /// The image indices of batch `step`.
    pub fn indices(&self, step: u64, b: usize) -> Vec<usize> {
        match self {
            Sampler::Shuffle(s) => s.indices(step, b),
            Sampler::ClassBalanced(s) => s.indices(step, b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_visits_every_image_once_per_epoch() {
        let s = ShuffleSampler::new(10, 3).unwrap();
        let mut seen: Vec<usize> = (0..5).flat_map(|step| s.indices(step, 2)).collect();
        seen.sort();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_ne!(s.indices(0, 10), s.indices(1, 10));
    }

    #[test]
    fn balanced_sampler_draws_rare_classes_often() {
        // Class 1 appears only in image 9 of 10.
        let per_class = vec![(0..10).collect(), vec![9]];
        let s = ClassBalancedSampler::from_presence(per_class, 0).unwrap();
        let draws = s.indices(0, 2000);
        let rare = draws.iter().filter(|&&i| i == 9).count() as f64 / 2000.0;
        assert!((rare - 0.55).abs() < 0.05, "{rare}");
    }
}
