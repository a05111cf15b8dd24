//! The uncertainty of a metric on **one model**: an image-level (cluster) bootstrap.
//!
//! The pixels of one image are strongly correlated, so resampling pixels would give
//! intervals far too narrow. Here whole images (groups) are resampled: each of B replicates
//! draws G images uniformly with replacement from the G seen, the metric is recomputed on
//! the union, and the 95% interval is the 2.5% and 97.5% percentiles of the B values
//! (NumPy's linear interpolation between order statistics; Efron & Tibshirani 1993, ch. 13).
//!
//! Every metric here is a function of per-image *additive* statistics (bin counts and sums,
//! per-class sums, histograms), so a replicate is a weighted sum of per-image statistic
//! vectors with weights = how often each image was drawn: one matrix product
//! W (B × G) · S (G × K) instead of B passes over the pixels. The exceptions say so where
//! they are computed (rank-based metrics use a fine histogram; adaptive ECE has no interval).

use std::collections::BTreeMap;

use ndarray::{s, Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{GmmSegError, Result};

/// Knobs of the image bootstrap. Build one, then [`check`](Self::check) it.
#[derive(Clone, Debug, PartialEq)]
pub struct BootstrapConfig {
    /// Number of replicates B. Default 1000 (enough for stable 2.5% / 97.5% percentiles;
    /// Efron & Tibshirani recommend ≥ 1000 for percentile intervals).
    pub samples: usize,
    /// Seed of the resampling (ChaCha8): the same seed gives the same interval.
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            samples: 1000,
            seed: 0,
        }
    }
}

/// A checked [`BootstrapConfig`].
#[derive(Clone, Debug, PartialEq)]
pub struct ValidBootstrapConfig(BootstrapConfig);

impl ValidBootstrapConfig {
    /// The checked configuration.
    pub fn get(&self) -> &BootstrapConfig {
        &self.0
    }
}

impl BootstrapConfig {
    /// Validates the fields: 1 ≤ samples ≤ 100 000.
    pub fn check(self) -> Result<ValidBootstrapConfig> {
        if self.samples == 0 || self.samples > 100_000 {
            return Err(GmmSegError::config(
                "bootstrap",
                format!(
                    "the number of bootstrap samples must be in 1..=100000, got {}",
                    self.samples
                ),
            ));
        }
        Ok(ValidBootstrapConfig(self))
    }
}

/// 95% intervals by metric name, `[lower, upper]`.
pub type Intervals = BTreeMap<String, [f64; 2]>;

/// How often each of `groups` images is drawn in each replicate: a (B × G) matrix of counts
/// summing to G per row. Errors with fewer than two images (nothing to resample).
pub(crate) fn draw_weights(groups: usize, cfg: &ValidBootstrapConfig) -> Result<Array2<f64>> {
    if groups < 2 {
        return Err(GmmSegError::Undefined {
            what: "image bootstrap".into(),
            reason: format!(
                "{groups} image(s) with valid pixels; resampling images needs at least 2"
            ),
        });
    }
    let c = cfg.get();
    let mut rng = ChaCha8Rng::seed_from_u64(c.seed);
    let mut w = Array2::<f64>::zeros((c.samples, groups));
    for mut row in w.outer_iter_mut() {
        for _ in 0..groups {
            row[rng.gen_range(0..groups)] += 1.0;
        }
    }
    Ok(w)
}

/// The replicate statistics W · S, in parallel over blocks of replicates (each block one
/// matrix product, so the result does not depend on the number of threads).
pub(crate) fn resample(weights: ArrayView2<f64>, stats: ArrayView2<f64>) -> Array2<f64> {
    const BLOCK: usize = 64;
    let (b, _) = weights.dim();
    let k = stats.ncols();
    let blocks: Vec<Array2<f64>> = (0..b.div_ceil(BLOCK))
        .into_par_iter()
        .map(|i| {
            let rows = weights.slice(s![i * BLOCK..((i + 1) * BLOCK).min(b), ..]);
            rows.dot(&stats)
        })
        .collect();
    let mut out = Array2::<f64>::zeros((b, k));
    for (i, blk) in blocks.into_iter().enumerate() {
        out.slice_mut(s![i * BLOCK..i * BLOCK + blk.nrows(), ..])
            .assign(&blk);
    }
    out
}

/// NumPy's `percentile(v, q)` (linear interpolation) of sorted finite values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q / 100.0 * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(sorted.len() - 1);
    let frac = pos - lo as f64;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

/// The 95% percentile interval of replicate values; replicates where the metric is
/// undefined (NaN: e.g. a resample without any anomaly pixel) are left out, and `None` is
/// returned when none is defined.
pub fn percentile_interval(values: &[f64]) -> Option<[f64; 2]> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some([percentile(&v, 2.5), percentile(&v, 97.5)])
}

/// Interval of every metric: `metric(row)` maps one replicate's statistics to named values.
pub(crate) fn intervals(
    replicates: ArrayView2<f64>,
    metric: impl Fn(&[f64]) -> Vec<(&'static str, f64)> + Sync,
) -> Intervals {
    let rows: Vec<Vec<(&'static str, f64)>> = replicates
        .axis_iter(Axis(0))
        .into_par_iter()
        .map(|r| metric(r.as_slice().expect("rows of a standard-layout array")))
        .collect();
    let mut by_name: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    for row in rows {
        for (k, v) in row {
            by_name.entry(k).or_default().push(v);
        }
    }
    by_name
        .into_iter()
        .filter_map(|(k, v)| percentile_interval(&v).map(|ci| (k.to_string(), ci)))
        .collect()
}

/// Maps arbitrary non-negative image ids to dense indices 0.. in order of first appearance,
/// remembering the last id so that runs of one image cost one lookup.
#[derive(Clone, Debug, Default)]
pub(crate) struct GroupIndex {
    ids: std::collections::HashMap<i64, u32>,
    last: Option<(i64, u32)>,
}

impl GroupIndex {
    /// The dense index of `id`, new ones numbered in order of appearance.
    #[inline]
    pub fn index(&mut self, id: i64) -> u32 {
        if let Some((l, i)) = self.last {
            if l == id {
                return i;
            }
        }
        let next = self.ids.len() as u32;
        let i = *self.ids.entry(id).or_insert(next);
        self.last = Some((id, i));
        i
    }

    /// Number of distinct ids seen.
    pub fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Checks a group-id array against the number of pixels it labels: same length, no
/// negative id.
pub(crate) fn check_groups<G: super::Label>(groups: &[G], pixels: usize) -> Result<()> {
    if groups.len() != pixels {
        return Err(GmmSegError::shape(
            "groups",
            format!(
                "{} image ids for {pixels} pixels; give one id per pixel",
                groups.len()
            ),
        ));
    }
    if let Some((i, g)) = groups.iter().enumerate().find(|(_, g)| g.to_i64() < 0) {
        return Err(GmmSegError::input(
            "groups",
            format!(
                "image id {} at pixel {i} is negative; ids must be ≥ 0",
                g.to_i64()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_match_numpy() {
        // np.percentile(np.arange(11.0), [2.5, 97.5]) = [0.25, 9.75]
        let v: Vec<f64> = (0..11).map(|x| x as f64).collect();
        assert_eq!(percentile_interval(&v), Some([0.25, 9.75]));
        assert_eq!(percentile_interval(&[f64::NAN]), None);
        assert_eq!(percentile_interval(&[2.0, f64::NAN]), Some([2.0, 2.0]));
    }

    #[test]
    fn weights_sum_to_the_number_of_images_and_depend_on_the_seed_only() {
        let cfg = BootstrapConfig {
            samples: 50,
            seed: 3,
        }
        .check()
        .unwrap();
        let w = draw_weights(7, &cfg).unwrap();
        assert!(w.rows().into_iter().all(|r| r.sum() == 7.0));
        assert_eq!(w, draw_weights(7, &cfg).unwrap());
        assert!(draw_weights(1, &cfg).is_err());
        let r = resample(w.view(), Array2::<f64>::ones((7, 3)).view());
        assert!(r.iter().all(|&x| x == 7.0));
    }

    #[test]
    fn zero_samples_is_refused() {
        assert!(BootstrapConfig {
            samples: 0,
            seed: 0
        }
        .check()
        .is_err());
    }
}
