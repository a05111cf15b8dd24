//! Class-frequency statistics of a split (`gmmseg data stats`, and the class-balanced
//! sampler's per-image class presence).

use rayon::prelude::*;
use serde::Serialize;

use super::{Dataset, IGNORE_LABEL};
use crate::error::{GmmSegError, Result};

/// Pixel counts of one split.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassStats {
    /// Dataset name (`synthscapes/train`, ...).
    pub dataset: String,
    /// Number of images counted.
    pub images: usize,
    /// Class names, index = class id.
    pub class_names: Vec<String>,
    /// Labelled pixels per class.
    pub counts: Vec<u64>,
    /// Pixels labelled 255 (ignore), including anomalies.
    pub ignored: u64,
    /// Pixels marked anomalous (mask = 1) on anomaly splits.
    pub anomalous: u64,
    /// Images in which each class occurs at least once.
    pub images_with_class: Vec<u64>,
}

impl ClassStats {
    /// Fraction of labelled (non-ignored) pixels per class.
    pub fn frequencies(&self) -> Vec<f64> {
        let total: u64 = self.counts.iter().sum();
        self.counts
            .iter()
            .map(|&c| c as f64 / total.max(1) as f64)
            .collect()
    }
}

/// Counts class pixels over the first `limit` samples of `ds` (all if `None`), in parallel.
/// Labels outside `0..num_classes` other than 255 are an error naming the sample.
pub fn class_stats(ds: &dyn Dataset, limit: Option<usize>) -> Result<ClassStats> {
    let n = limit.map_or(ds.len(), |l| l.min(ds.len()));
    let c = ds.num_classes();
    let per: Vec<(Vec<u64>, u64, u64)> = (0..n)
        .into_par_iter()
        .map(|i| {
            let s = ds.get(i)?;
            let mut counts = vec![0u64; c];
            let mut ignored = 0;
            for (k, &l) in s.label.iter().enumerate() {
                if l == IGNORE_LABEL {
                    ignored += 1;
                } else if (l as usize) < c {
                    counts[l as usize] += 1;
                } else {
                    return Err(GmmSegError::LabelOutOfRange {
                        what: format!("{} sample {i}", ds.name()),
                        label: l as i64,
                        index: k,
                        classes: c,
                    });
                }
            }
            let anomalous = s
                .anomaly
                .as_ref()
                .map_or(0, |a| a.iter().filter(|&&v| v == 1).count() as u64);
            Ok((counts, ignored, anomalous))
        })
        .collect::<Result<_>>()?;
    let mut stats = ClassStats {
        dataset: ds.name(),
        images: n,
        class_names: ds.class_names(),
        counts: vec![0; c],
        ignored: 0,
        anomalous: 0,
        images_with_class: vec![0; c],
    };
    for (counts, ign, anom) in per {
        for k in 0..c {
            stats.counts[k] += counts[k];
            stats.images_with_class[k] += (counts[k] > 0) as u64;
        }
        stats.ignored += ign;
        stats.anomalous += anom;
    }
    Ok(stats)
}
