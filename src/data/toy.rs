//! A small self-contained synthetic dataset for tests, benchmarks and examples: coloured
//! shapes on a textured background.
//!
//! Classes: 0 background, 1 rectangle, 2 disc, 3 bar. Every class has two appearance modes
//! (two base colours), so class densities are bimodal, and pixels carry Gaussian colour noise.
//! The `anomaly` split adds a cross in a colour never used in training, labelled 255 with
//! anomaly mask 1. A sample is a pure function of (seed, split, index).

use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::data::{Dataset, Sample, IGNORE_LABEL};
use crate::error::{GmmSegError, Result};

/// Which split.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToySplit {
    /// Training images.
    Train,
    /// Validation images (different seeds).
    Val,
    /// Validation images with an unseen object (anomaly).
    Anomaly,
}

/// The toy dataset.
#[derive(Clone, Debug)]
pub struct ToyShapes {
    /// Split.
    pub split: ToySplit,
    /// Number of images.
    pub len: usize,
    /// Image side in pixels.
    pub size: usize,
    /// Base seed.
    pub seed: u64,
}

const PALETTE: [[[f32; 3]; 2]; 4] = [
    [[0.55, 0.60, 0.65], [0.35, 0.30, 0.25]], // background: grey / brown
    [[0.85, 0.15, 0.10], [0.95, 0.55, 0.10]], // rectangle: red / orange
    [[0.15, 0.70, 0.20], [0.60, 0.85, 0.20]], // disc: green / lime
    [[0.15, 0.25, 0.85], [0.55, 0.20, 0.75]], // bar: blue / purple
];
const ANOMALY_COLOUR: [f32; 3] = [0.95, 0.95, 0.95];

impl ToyShapes {
    /// A split of `len` images of `size`×`size`.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] for `size < 16`.
    pub fn new(split: ToySplit, len: usize, size: usize, seed: u64) -> Result<Self> {
        if size < 16 {
            return Err(GmmSegError::config(
                "toy.size",
                format!("must be ≥ 16 pixels, got {size}"),
            ));
        }
        Ok(ToyShapes {
            split,
            len,
            size,
            seed,
        })
    }
}

impl Dataset for ToyShapes {
    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, index: usize) -> Result<Sample> {
        crate::data::check_index(index, self.len, || self.name())?;
        let split_id = match self.split {
            ToySplit::Train => 0u64,
            ToySplit::Val => 1,
            ToySplit::Anomaly => 2,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.seed ^ (split_id << 56) ^ (index as u64).wrapping_mul(0x9E37_79B9),
        );
        let s = self.size;
        let mut label = Array2::<u8>::zeros((s, s));
        let mut mode = Array2::<u8>::zeros((s, s));
        let bg_mode = rng.gen_range(0..2u8);
        mode.fill(bg_mode);
        let n_obj = rng.gen_range(2..=4);
        for _ in 0..n_obj {
            let class = rng.gen_range(1..4u8);
            let m = rng.gen_range(0..2u8);
            let (cy, cx) = (rng.gen_range(0..s) as f32, rng.gen_range(0..s) as f32);
            let r = rng.gen_range(s as f32 * 0.1..s as f32 * 0.25);
            let angle_wide = rng.gen_bool(0.5);
            for y in 0..s {
                for x in 0..s {
                    let (dy, dx) = (y as f32 - cy, x as f32 - cx);
                    let inside = match class {
                        1 => dy.abs() < r * 0.8 && dx.abs() < r * 1.2,
                        2 => dy * dy + dx * dx < r * r,
                        _ => {
                            if angle_wide {
                                dy.abs() < r * 0.45 && dx.abs() < r * 2.0
                            } else {
                                dx.abs() < r * 0.45 && dy.abs() < r * 2.0
                            }
                        }
                    };
                    if inside {
                        label[(y, x)] = class;
                        mode[(y, x)] = m;
                    }
                }
            }
        }
        let mut anomaly = None;
        if self.split == ToySplit::Anomaly {
            let mut a = Array2::<u8>::zeros((s, s));
            let (cy, cx) = (
                rng.gen_range(s / 4..3 * s / 4) as f32,
                rng.gen_range(s / 4..3 * s / 4) as f32,
            );
            let r = s as f32 * 0.18;
            for y in 0..s {
                for x in 0..s {
                    let (dy, dx) = ((y as f32 - cy).abs(), (x as f32 - cx).abs());
                    if (dy < r * 0.3 && dx < r) || (dx < r * 0.3 && dy < r) {
                        a[(y, x)] = 1;
                        label[(y, x)] = IGNORE_LABEL;
                    }
                }
            }
            anomaly = Some(a);
        }
        let noise = Normal::new(0.0f32, 0.06).expect("finite");
        let mut image = Array3::<f32>::zeros((3, s, s));
        for y in 0..s {
            for x in 0..s {
                let base = match label[(y, x)] {
                    IGNORE_LABEL => ANOMALY_COLOUR,
                    l => PALETTE[l as usize][mode[(y, x)] as usize],
                };
                // a soft texture on the background so that colour alone is not the whole story
                let tex = if label[(y, x)] == 0 {
                    0.05 * ((x as f32 * 0.4).sin() + (y as f32 * 0.3).cos())
                } else {
                    0.0
                };
                for c in 0..3 {
                    image[(c, y, x)] = (base[c] + tex + noise.sample(&mut rng)).clamp(0.0, 1.0);
                }
            }
        }
        Ok(Sample {
            image,
            label,
            anomaly,
        })
    }

    fn num_classes(&self) -> usize {
        4
    }

    fn class_names(&self) -> Vec<String> {
        ["background", "rectangle", "disc", "bar"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn name(&self) -> String {
        format!(
            "toy/{}",
            match self.split {
                ToySplit::Train => "train",
                ToySplit::Val => "val",
                ToySplit::Anomaly => "anomaly",
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_valid_and_anomalies_only_in_anomaly_split() {
        let ds = ToyShapes::new(ToySplit::Train, 4, 32, 7).unwrap();
        let a = ds.get(2).unwrap();
        assert_eq!(a, ds.get(2).unwrap());
        assert_ne!(a, ds.get(3).unwrap());
        assert!(a.label.iter().all(|&l| l < 4));
        assert!(a.anomaly.is_none());
        assert!(ds.get(4).is_err());
        let an = ToyShapes::new(ToySplit::Anomaly, 2, 32, 7)
            .unwrap()
            .get(0)
            .unwrap();
        let mask = an.anomaly.unwrap();
        assert!(mask.iter().any(|&m| m == 1));
        for (m, l) in mask.iter().zip(an.label.iter()) {
            assert_eq!(*m == 1, *l == IGNORE_LABEL);
        }
        assert!(ToyShapes::new(ToySplit::Val, 1, 8, 0).is_err());
    }
}
