//! The external feature memory: a ring buffer of past pixel features per (class, slot).
//!
//! The paper keeps a FIFO queue of past pixel features so that one EM update per training
//! iteration sees more than one batch. Both flavours keep one queue per (class, component)
//! (the paper, §3.3: a queue of 32K features for each component of each class; the
//! reference code: the same). The paper does not say which component's queue a pixel joins;
//! here it joins the queue of the component its E-step assigns it to (the arg-max of its
//! responsibilities under the parameters before the update), which is the natural reading
//! and what the reference code does. One queue per class ([`MemoryLayout::PerClass`]) stays
//! available as an option.
//!
//! Memory cost: C · slots · capacity · D · 4 bytes (19 classes × 5 × 32,000 × 64 = 778 MB at
//! the paper's size; our defaults are far smaller).

use ndarray::{ArrayView2, Axis};
use rand::seq::index::sample;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::error::{GmmSegError, Result};

/// One queue per class, or one per (class, component).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryLayout {
    /// One queue per class (an option; EM re-assigns its features to components each time).
    PerClass,
    /// One queue per (class, component) (the paper, §3.3, and the reference code).
    PerComponent,
}

/// Which pixels of a batch enter the memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Sampling {
    /// Up to `per_image` uniformly random pixels of each class present in each image
    /// (the paper: 100).
    RandomPerImage {
        /// Pixels per class per image.
        per_image: usize,
    },
    /// Up to `max_per_slot` correctly classified pixels per (class, component) per batch,
    /// evenly spaced in pixel order (the reference code: 20, deterministic).
    CorrectEvenlySpaced {
        /// Pixels per (class, component) per batch.
        max_per_slot: usize,
    },
}

/// How empty queues start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryInit {
    /// Empty: only real features are ever used.
    Empty,
    /// Full of random unit vectors, as the reference code (they dilute rare classes' estimates
    /// until overwritten; README, "Paper flavour vs reference-code flavour").
    RandomUnit,
}

/// Configuration of the feature memory.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryConfig {
    /// Features per queue K. Paper flavour 500 per (class, component), reference code 2,000
    /// (both 32,000 in the paper and its code). Scaled to the CPU: the quick profile's batch
    /// of 8 images puts up to 800 pixels of a class into its M = 5 queues per iteration, so
    /// 500 per queue hold the last ~3 iterations — the history the former per-class queue
    /// of 2,000 held — and keep each iteration's EM at ≈ C · 2,500 rows.
    pub capacity: usize,
    /// Queue layout. Default per (class, component) (paper and code).
    pub layout: MemoryLayout,
    /// Sampling of batch pixels. Default 100 random pixels per class per image (paper).
    pub sampling: Sampling,
    /// Initial content. Default empty.
    pub init: MemoryInit,
}

impl Default for MemoryConfig {
    fn default() -> Self {
        Self::paper()
    }
}

impl MemoryConfig {
    /// The paper's memory: one queue per (class, component), fed with 100 random pixels per
    /// class per image, each joining its E-step component's queue.
    pub fn paper() -> Self {
        Self {
            capacity: 500,
            layout: MemoryLayout::PerComponent,
            sampling: Sampling::RandomPerImage { per_image: 100 },
            init: MemoryInit::Empty,
        }
    }

    /// The reference code's memory: per-component queues of ≤ 20 correct pixels per batch,
    /// initialised with random unit vectors.
    pub fn reference_code() -> Self {
        Self {
            capacity: 2_000,
            layout: MemoryLayout::PerComponent,
            sampling: Sampling::CorrectEvenlySpaced { max_per_slot: 20 },
            init: MemoryInit::RandomUnit,
        }
    }

    /// Validates the fields.
    pub fn check(&self) -> Result<()> {
        if self.capacity == 0 {
            return Err(GmmSegError::config("memory.capacity", "must be ≥ 1, got 0"));
        }
        match self.sampling {
            Sampling::RandomPerImage { per_image: 0 } => Err(GmmSegError::config(
                "memory.sampling.per_image",
                "must be ≥ 1, got 0",
            )),
            Sampling::CorrectEvenlySpaced { max_per_slot: 0 } => Err(GmmSegError::config(
                "memory.sampling.max_per_slot",
                "must be ≥ 1, got 0",
            )),
            _ => Ok(()),
        }
    }
}

/// Ring buffers of D-dimensional features, one per (class, slot).
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureMemory {
    capacity: usize,
    dim: usize,
    slots: usize,
    /// Per queue: row-major (len ≤ capacity) × D features.
    data: Vec<Vec<f32>>,
    /// Per queue: next write position.
    ptr: Vec<usize>,
}

impl FeatureMemory {
    /// Empty queues for `num_classes` classes with `slots` queues each.
    pub fn new(num_classes: usize, slots: usize, capacity: usize, dim: usize) -> Self {
        Self {
            capacity,
            dim,
            slots,
            data: vec![Vec::new(); num_classes * slots],
            ptr: vec![0; num_classes * slots],
        }
    }

    /// Fills every queue with random unit vectors (the reference code's initialisation).
    pub fn fill_random_unit<R: Rng>(&mut self, rng: &mut R) {
        let d = self.dim;
        for q in &mut self.data {
            q.clear();
            q.reserve(self.capacity * d);
            for _ in 0..self.capacity {
                let v: Vec<f32> = (0..d).map(|_| StandardNormal.sample(rng)).collect();
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                q.extend(v.iter().map(|x| x / norm));
            }
        }
        self.ptr.iter_mut().for_each(|p| *p = 0);
    }

    /// Queues per class (1 or M).
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Capacity K of each queue.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.data.len() / self.slots
    }

    /// Feature dimension D.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of features stored in queue (class, slot).
    pub fn len(&self, class: usize, slot: usize) -> usize {
        self.data[class * self.slots + slot].len() / self.dim
    }

    /// Whether every queue is empty.
    pub fn is_empty(&self) -> bool {
        self.data.iter().all(Vec::is_empty)
    }

    /// The features of queue (class, slot), shape (len, D), in storage (not FIFO) order.
    pub fn queue(&self, class: usize, slot: usize) -> ArrayView2<'_, f32> {
        let q = &self.data[class * self.slots + slot];
        ArrayView2::from_shape((q.len() / self.dim, self.dim), q).expect("whole rows")
    }

    /// Write positions of every queue (for exact checkpoint round-trips).
    pub fn pointers(&self) -> &[usize] {
        &self.ptr
    }

    /// Raw contents of every queue (for checkpoints).
    pub fn raw(&self) -> &[Vec<f32>] {
        &self.data
    }

    /// Rebuilds a memory from [`Self::raw`] and [`Self::pointers`] (checkpoint loading).
    pub fn from_raw(
        slots: usize,
        capacity: usize,
        dim: usize,
        data: Vec<Vec<f32>>,
        ptr: Vec<usize>,
    ) -> Result<Self> {
        if slots == 0 || dim == 0 || !data.len().is_multiple_of(slots) || data.len() != ptr.len() {
            return Err(GmmSegError::input(
                "memory",
                "inconsistent queue count, slots or pointers",
            ));
        }
        for (i, q) in data.iter().enumerate() {
            if q.len() % dim != 0 || q.len() / dim > capacity || ptr[i] >= capacity.max(1) {
                return Err(GmmSegError::input(
                    "memory",
                    format!("queue {i} is inconsistent with capacity {capacity} and D = {dim}"),
                ));
            }
        }
        Ok(Self {
            capacity,
            dim,
            slots,
            data,
            ptr,
        })
    }

    /// Appends the rows of `features` (n, D) to queue (class, slot), overwriting the oldest
    /// entries once the queue is full.
    ///
    /// # Panics
    /// If `features` has not D columns or the queue index is out of range.
    pub fn push(&mut self, class: usize, slot: usize, features: ArrayView2<'_, f32>) {
        assert_eq!(features.ncols(), self.dim);
        let idx = class * self.slots + slot;
        let d = self.dim;
        for row in features.axis_iter(Axis(0)) {
            let q = &mut self.data[idx];
            let p = self.ptr[idx];
            if q.len() < self.capacity * d {
                q.extend(row.iter());
            } else {
                q[p * d..(p + 1) * d]
                    .iter_mut()
                    .zip(row.iter())
                    .for_each(|(a, b)| *a = *b);
            }
            self.ptr[idx] = (p + 1) % self.capacity;
        }
    }
}

/// Indices of up to `k` uniformly random elements of `candidates`, in increasing order.
pub fn sample_random<R: Rng>(candidates: &[usize], k: usize, rng: &mut R) -> Vec<usize> {
    if candidates.len() <= k {
        return candidates.to_vec();
    }
    let mut picked: Vec<usize> = sample(rng, candidates.len(), k)
        .into_iter()
        .map(|i| candidates[i])
        .collect();
    picked.sort_unstable();
    picked
}

/// Up to `k` evenly spaced elements of `candidates`: `floor(i·(n−1)/(k−1))` for i in 0..k,
/// the reference code's deterministic sub-sampling.
pub fn sample_evenly_spaced(candidates: &[usize], k: usize) -> Vec<usize> {
    let n = candidates.len();
    if n <= k {
        return candidates.to_vec();
    }
    if k == 1 {
        return vec![candidates[0]];
    }
    (0..k).map(|i| candidates[i * (n - 1) / (k - 1)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use rand::SeedableRng;

    #[test]
    fn ring_buffer_wraps_around_overwriting_the_oldest() {
        let mut mem = FeatureMemory::new(1, 1, 3, 1);
        mem.push(0, 0, array![[1f32], [2.], [3.], [4.]].view());
        assert_eq!(mem.queue(0, 0), array![[4f32], [2.], [3.]]);
        mem.push(0, 0, array![[5f32]].view());
        assert_eq!(mem.queue(0, 0), array![[4f32], [5.], [3.]]);
        assert_eq!(mem.len(0, 0), 3);
        let back =
            FeatureMemory::from_raw(1, 3, 1, mem.raw().to_vec(), mem.pointers().to_vec()).unwrap();
        assert_eq!(back, mem);
    }

    #[test]
    fn evenly_spaced_matches_the_reference_formula() {
        let c: Vec<usize> = (100..140).collect();
        let s = sample_evenly_spaced(&c, 20);
        assert_eq!(s.len(), 20);
        assert_eq!(s[0], 100);
        assert_eq!(s[19], 139);
        assert_eq!(s[1], 100 + 39 / 19);
        assert_eq!(sample_evenly_spaced(&c[..5], 20), c[..5].to_vec());
    }

    #[test]
    fn random_sampling_is_seeded_and_distinct() {
        let c: Vec<usize> = (0..1000).collect();
        let mut r1 = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let mut r2 = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let a = sample_random(&c, 100, &mut r1);
        assert_eq!(a, sample_random(&c, 100, &mut r2));
        let mut dedup = a.clone();
        dedup.dedup();
        assert_eq!(dedup.len(), 100);
    }

    #[test]
    fn random_unit_init_has_unit_norm() {
        let mut mem = FeatureMemory::new(2, 3, 4, 5);
        mem.fill_random_unit(&mut rand_chacha::ChaCha8Rng::seed_from_u64(0));
        for row in mem.queue(1, 2).axis_iter(Axis(0)) {
            assert!((row.dot(&row) - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn invalid_memory_config() {
        assert!(MemoryConfig {
            capacity: 0,
            ..MemoryConfig::paper()
        }
        .check()
        .is_err());
        assert!(MemoryConfig {
            sampling: Sampling::RandomPerImage { per_image: 0 },
            ..MemoryConfig::paper()
        }
        .check()
        .is_err());
    }
}
