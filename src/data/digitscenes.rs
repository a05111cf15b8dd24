//! **DigitScenes**: segmentation canvases made of *real* images — hand-written MNIST digits,
//! with real Fashion-MNIST items pasted in as anomalies.
//!
//! Each canvas (default 64×64, black) holds 1–4 MNIST digits at random scale and position.
//!
//! # Labels
//! | label | meaning |
//! |---|---|
//! | 0 | background |
//! | 1..=10 | digit 0..=9 (label = digit + 1) |
//! | 255 | ignore: faint ink at stroke edges (ink in (`edge_low`, `ink_threshold`]), when `ignore_band` is on; Fashion items on the anomaly split |
//!
//! A pixel takes the class of the digit whose ink there is strongest, if that ink exceeds
//! `ink_threshold`.
//!
//! # Splits
//! - `train`: digits from the first `1 − test_fraction − tune_fraction` of the shipped 10,000
//!   MNIST images;
//! - `tune`: digits from the next `tune_fraction` (10%) only, on canvases of their own: where
//!   hyperparameters are chosen;
//! - `test` (alias `val`): digits from the last `test_fraction` only (disjoint from both);
//! - `anomaly`: the `test` canvases (same index, same digits) with 1–2 Fashion-MNIST items
//!   pasted on top. Anomaly mask: 1 where the item's intensity > `anomaly_threshold`, 255 on
//!   its faint fringe, 0 elsewhere; labels are 255 under the items.
//!
//! # Files
//! `mnist-10k/{images-idx3-ubyte.gz, labels-idx1-ubyte.gz}` and `fashion-3k/…` under
//! [`data_dir`](super::data_dir) (or `DigitScenesConfig::data_dir`); see `data/README.md`
//! for sources and licences.

use std::path::PathBuf;
use std::sync::Arc;

use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::idx::{read_images, read_labels};
use super::{check_index, Dataset, Sample, IGNORE_LABEL};
use crate::error::{GmmSegError, Result};

/// Class names of DigitScenes, index = label.
pub const CLASS_NAMES: [&str; 11] = [
    "background",
    "digit 0",
    "digit 1",
    "digit 2",
    "digit 3",
    "digit 4",
    "digit 5",
    "digit 6",
    "digit 7",
    "digit 8",
    "digit 9",
];

/// A DigitScenes split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DigitSplit {
    /// Canvases of training digits.
    Train,
    /// Canvases of held-out digits.
    Test,
    /// Canvases of digits held out for tuning (disjoint from train and test).
    Tune,
    /// The test canvases with Fashion-MNIST items pasted in.
    Anomaly,
}

impl DigitSplit {
    /// Parses `train`, `test` (or `val`), `anomaly`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "train" => Ok(DigitSplit::Train),
            "test" | "val" => Ok(DigitSplit::Test),
            "tune" => Ok(DigitSplit::Tune),
            "anomaly" => Ok(DigitSplit::Anomaly),
            other => Err(GmmSegError::input(
                "split",
                format!(
                    "unknown DigitScenes split `{other}`; expected train, test (or val), tune or anomaly"
                ),
            )),
        }
    }

    /// The split's name.
    pub fn name(self) -> &'static str {
        match self {
            DigitSplit::Train => "train",
            DigitSplit::Test => "test",
            DigitSplit::Tune => "tune",
            DigitSplit::Anomaly => "anomaly",
        }
    }
}

/// Configuration of DigitScenes; `Default` gives the documented defaults, `check` validates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigitScenesConfig {
    /// Canvas side in pixels. Default 64. Range 28..=1024.
    pub size: usize,
    /// Fewest digits per canvas. Default 1.
    pub min_digits: usize,
    /// Most digits per canvas. Default 4. Range min_digits..=16.
    pub max_digits: usize,
    /// Range of digit side lengths as a fraction of the canvas side (28/64 ≈ 0.44 is the
    /// native MNIST size at 64×64). Default (0.3, 0.5): 19–32 pixels at 64×64.
    pub digit_scale: (f32, f32),
    /// Ink (0..1) above which a pixel gets its digit's class. Default 0.5.
    pub ink_threshold: f32,
    /// Mark faint ink (in (`edge_low`, `ink_threshold`]) as ignore instead of background:
    /// a thin band at stroke edges whose true class is ambiguous. Default true.
    pub ignore_band: bool,
    /// Lower end of the ignore band. Default 0.1.
    pub edge_low: f32,
    /// Fraction of the MNIST images reserved for `test`/`anomaly` (the last ones). Default 0.2.
    pub test_fraction: f32,
    /// Fraction of the MNIST images reserved for `tune` (the ones just before the test
    /// pool). Default 0.1.
    #[serde(default = "default_tune_fraction")]
    pub tune_fraction: f32,
    /// Range of Fashion item side lengths (fraction of the canvas side). Default (0.35, 0.55).
    pub fashion_scale: (f32, f32),
    /// Fashion intensity above which a pixel is anomalous. Default 0.1.
    pub anomaly_threshold: f32,
    /// Number of `train` canvases. Default 2,000.
    pub train_len: usize,
    /// Number of `test` canvases (also the number of `anomaly` canvases). Default 500.
    pub test_len: usize,
    /// Number of `tune` canvases. Default 500.
    #[serde(default = "default_tune_len")]
    pub tune_len: usize,
    /// Base seed. Default 0.
    pub seed: u64,
    /// Folder holding `mnist-10k/` and `fashion-3k/`; `None` = [`super::data_dir`].
    pub data_dir: Option<PathBuf>,
}

fn default_tune_fraction() -> f32 {
    0.1
}

fn default_tune_len() -> usize {
    500
}

impl Default for DigitScenesConfig {
    fn default() -> Self {
        Self {
            size: 64,
            min_digits: 1,
            max_digits: 4,
            digit_scale: (0.3, 0.5),
            ink_threshold: 0.5,
            ignore_band: true,
            edge_low: 0.1,
            test_fraction: 0.2,
            tune_fraction: 0.1,
            fashion_scale: (0.35, 0.55),
            anomaly_threshold: 0.1,
            train_len: 2000,
            test_len: 500,
            tune_len: 500,
            seed: 0,
            data_dir: None,
        }
    }
}

/// A checked [`DigitScenesConfig`].
#[derive(Clone, Debug, PartialEq)]
pub struct ValidDigitScenesConfig(DigitScenesConfig);

impl std::ops::Deref for ValidDigitScenesConfig {
    type Target = DigitScenesConfig;
    fn deref(&self) -> &DigitScenesConfig {
        &self.0
    }
}

impl DigitScenesConfig {
    /// Validates every field; errors name the field and its bound.
    pub fn check(self) -> Result<ValidDigitScenesConfig> {
        let err = |f: &str, r: String| Err(GmmSegError::config(f, r));
        if !(28..=1024).contains(&self.size) {
            return err("size", format!("must be in 28..=1024, got {}", self.size));
        }
        if self.min_digits == 0 || self.min_digits > self.max_digits || self.max_digits > 16 {
            return err(
                "max_digits",
                format!(
                    "need 1 <= min_digits <= max_digits <= 16, got {}..={}",
                    self.min_digits, self.max_digits
                ),
            );
        }
        for (f, (a, b)) in [
            ("digit_scale", self.digit_scale),
            ("fashion_scale", self.fashion_scale),
        ] {
            if !(a > 0.05 && a <= b && b <= 1.0) {
                return err(
                    f,
                    format!("must satisfy 0.05 < low <= high <= 1, got ({a}, {b})"),
                );
            }
        }
        if !(self.ink_threshold > 0.0 && self.ink_threshold < 1.0) {
            return err(
                "ink_threshold",
                format!("must be in (0, 1), got {}", self.ink_threshold),
            );
        }
        if !(self.edge_low >= 0.0 && self.edge_low < self.ink_threshold) {
            return err(
                "edge_low",
                format!("must be in [0, ink_threshold), got {}", self.edge_low),
            );
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return err(
                "test_fraction",
                format!("must be in (0, 1), got {}", self.test_fraction),
            );
        }
        if !(self.tune_fraction > 0.0 && self.test_fraction + self.tune_fraction < 1.0) {
            return err(
                "tune_fraction",
                format!(
                    "must be > 0 with test_fraction + tune_fraction < 1, got {} + {}",
                    self.test_fraction, self.tune_fraction
                ),
            );
        }
        if !(self.anomaly_threshold > 0.0 && self.anomaly_threshold < 1.0) {
            return err(
                "anomaly_threshold",
                format!("must be in (0, 1), got {}", self.anomaly_threshold),
            );
        }
        Ok(ValidDigitScenesConfig(self))
    }
}

/// Grey-scale 28×28 images with their class, as loaded from an IDX pair.
#[derive(Debug)]
struct Glyphs {
    rows: usize,
    cols: usize,
    pixels: Vec<u8>,
    labels: Vec<u8>,
}

impl Glyphs {
    fn load(dir: &std::path::Path) -> Result<Self> {
        let ip = dir.join("images-idx3-ubyte.gz");
        let lp = dir.join("labels-idx1-ubyte.gz");
        let im = read_images(&ip)?;
        let lb = read_labels(&lp)?;
        if im.dims[0] != lb.dims[0] {
            return Err(GmmSegError::file(
                &lp,
                format!(
                    "{} labels for {} images in {}",
                    lb.dims[0],
                    im.dims[0],
                    ip.display()
                ),
            ));
        }
        if im.dims[0] == 0 {
            return Err(GmmSegError::file(&ip, "holds no images"));
        }
        if let Some(&bad) = lb.data.iter().find(|&&l| l > 9) {
            return Err(GmmSegError::file(
                &lp,
                format!("label {bad} is not in 0..=9"),
            ));
        }
        Ok(Self {
            rows: im.dims[1],
            cols: im.dims[2],
            pixels: im.data,
            labels: lb.data,
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    /// Bilinear sample of glyph `i` at continuous coordinates (u, v) in [0, cols)×[0, rows),
    /// 0 outside, in [0, 1].
    fn sample(&self, i: usize, u: f32, v: f32) -> f32 {
        let (x, y) = (u - 0.5, v - 0.5);
        let (x0, y0) = (x.floor(), y.floor());
        let (tx, ty) = (x - x0, y - y0);
        let px = |xx: i64, yy: i64| -> f32 {
            if xx < 0 || yy < 0 || xx >= self.cols as i64 || yy >= self.rows as i64 {
                0.0
            } else {
                self.pixels[i * self.rows * self.cols + yy as usize * self.cols + xx as usize]
                    as f32
                    / 255.0
            }
        };
        let (xi, yi) = (x0 as i64, y0 as i64);
        let top = px(xi, yi) * (1.0 - tx) + px(xi + 1, yi) * tx;
        let bot = px(xi, yi + 1) * (1.0 - tx) + px(xi + 1, yi + 1) * tx;
        top * (1.0 - ty) + bot * ty
    }
}

/// One split of DigitScenes. Cheap to clone (the glyphs are shared).
#[derive(Clone, Debug)]
pub struct DigitScenes {
    cfg: ValidDigitScenesConfig,
    split: DigitSplit,
    len: usize,
    digits: Arc<Glyphs>,
    fashion: Option<Arc<Glyphs>>,
}

impl DigitScenes {
    /// Loads the digit (and, for `anomaly`, Fashion) images and opens `split`.
    pub fn open(cfg: ValidDigitScenesConfig, split: DigitSplit) -> Result<Self> {
        let dir = cfg.data_dir.clone().unwrap_or_else(super::data_dir);
        let digits = Glyphs::load(&dir.join("mnist-10k"))?;
        if digits.len() < 3 {
            return Err(GmmSegError::file(
                dir.join("mnist-10k"),
                "need at least 3 digit images (one each for train, tune and test)",
            ));
        }
        let fashion = match split {
            DigitSplit::Anomaly => Some(Arc::new(Glyphs::load(&dir.join("fashion-3k"))?)),
            _ => None,
        };
        let len = match split {
            DigitSplit::Train => cfg.train_len,
            DigitSplit::Tune => cfg.tune_len,
            _ => cfg.test_len,
        };
        Ok(Self {
            cfg,
            split,
            len,
            digits: Arc::new(digits),
            fashion,
        })
    }

    /// Overrides the number of canvases.
    pub fn with_len(mut self, len: usize) -> Self {
        self.len = len;
        self
    }

    /// The range of MNIST image indices this split draws from (train, tune and test
    /// disjoint; the anomaly split draws from the test pool).
    pub fn digit_pool(&self) -> std::ops::Range<usize> {
        let n = self.digits.len();
        let n_test = ((n as f32 * self.cfg.test_fraction).round() as usize).clamp(1, n - 2);
        let n_tune =
            ((n as f32 * self.cfg.tune_fraction).round() as usize).clamp(1, n - n_test - 1);
        let train_end = n - n_test - n_tune;
        match self.split {
            DigitSplit::Train => 0..train_end,
            DigitSplit::Tune => train_end..n - n_test,
            _ => n - n_test..n,
        }
    }

    /// The MNIST image indices drawn on canvas `index` (for tests of disjointness).
    pub fn digits_on(&self, index: usize) -> Vec<usize> {
        self.layout(index).into_iter().map(|d| d.0).collect()
    }

    fn rng_for(&self, index: usize, salt: u64) -> ChaCha8Rng {
        let tag = match self.split {
            DigitSplit::Train => 0x1111u64,
            DigitSplit::Tune => 0x3333,
            // Test and anomaly share canvases: the anomaly split pastes onto test canvases.
            _ => 0x2222,
        };
        ChaCha8Rng::seed_from_u64(
            self.cfg
                .seed
                .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                .wrapping_add(tag << 32)
                .wrapping_add(index as u64)
                ^ salt,
        )
    }

    /// (glyph index, x0, y0, side) of each digit on canvas `index`.
    fn layout(&self, index: usize) -> Vec<(usize, f32, f32, f32)> {
        let mut rng = self.rng_for(index, 0);
        let pool = self.digit_pool();
        let size = self.cfg.size as f32;
        let k = rng.gen_range(self.cfg.min_digits..=self.cfg.max_digits);
        let mut placed: Vec<(usize, f32, f32, f32)> = Vec::with_capacity(k);
        for _ in 0..k {
            let g = rng.gen_range(pool.clone());
            let side = size * rng.gen_range(self.cfg.digit_scale.0..=self.cfg.digit_scale.1);
            // A few tries; keep the position overlapping the digits already placed least.
            let mut best = (0.0, 0.0, f32::MAX);
            for _ in 0..20 {
                let x0 = rng.gen_range(0.0..=(size - side).max(0.0));
                let y0 = rng.gen_range(0.0..=(size - side).max(0.0));
                let overlap = placed
                    .iter()
                    .map(|&(_, px, py, ps)| {
                        let ox = ((x0 + side).min(px + ps) - x0.max(px)).max(0.0);
                        let oy = ((y0 + side).min(py + ps) - y0.max(py)).max(0.0);
                        ox * oy / (side.min(ps) * side.min(ps))
                    })
                    .fold(0.0f32, f32::max);
                if overlap < best.2 {
                    best = (x0, y0, overlap);
                }
                if overlap < 0.02 {
                    break;
                }
            }
            placed.push((g, best.0, best.1, side));
        }
        placed
    }

    /// Renders canvas `index` (deterministic, any index).
    pub fn generate(&self, index: usize) -> Sample {
        let n = self.cfg.size;
        let mut ink = vec![0f32; n * n];
        let mut label = vec![0u8; n * n];
        for (g, x0, y0, side) in self.layout(index) {
            let cls = self.digits.labels[g] + 1;
            let sc = self.digits.cols as f32 / side;
            let (xa, ya) = (x0.floor().max(0.0) as usize, y0.floor().max(0.0) as usize);
            let (xb, yb) = (
                ((x0 + side).ceil() as usize).min(n),
                ((y0 + side).ceil() as usize).min(n),
            );
            for y in ya..yb {
                for x in xa..xb {
                    let u = (x as f32 + 0.5 - x0) * sc;
                    let v = (y as f32 + 0.5 - y0) * sc;
                    let val = self.digits.sample(g, u, v);
                    let i = y * n + x;
                    if val > ink[i] {
                        ink[i] = val;
                        label[i] = if val > self.cfg.ink_threshold { cls } else { 0 };
                    }
                }
            }
        }
        for (l, &v) in label.iter_mut().zip(&ink) {
            if *l == 0 && self.cfg.ignore_band && v > self.cfg.edge_low {
                *l = IGNORE_LABEL;
            }
        }
        let mut anomaly = None;
        if let (DigitSplit::Anomaly, Some(f)) = (self.split, &self.fashion) {
            let mut mask = vec![0u8; n * n];
            let mut rng = self.rng_for(index, 0xfa5e);
            let size = n as f32;
            for _ in 0..rng.gen_range(1..=2) {
                let g = rng.gen_range(0..f.len());
                let side =
                    size * rng.gen_range(self.cfg.fashion_scale.0..=self.cfg.fashion_scale.1);
                let x0 = rng.gen_range(0.0..=(size - side).max(0.0));
                let y0 = rng.gen_range(0.0..=(size - side).max(0.0));
                let sc = f.cols as f32 / side;
                for y in (y0.floor() as usize)..((y0 + side).ceil() as usize).min(n) {
                    for x in (x0.floor() as usize)..((x0 + side).ceil() as usize).min(n) {
                        let val =
                            f.sample(g, (x as f32 + 0.5 - x0) * sc, (y as f32 + 0.5 - y0) * sc);
                        let i = y * n + x;
                        if val > self.cfg.anomaly_threshold {
                            ink[i] = val;
                            mask[i] = 1;
                            label[i] = IGNORE_LABEL;
                        } else if val > 0.02 && mask[i] != 1 {
                            // Faint fringe of the item: blended, unscored.
                            ink[i] = ink[i].max(val);
                            mask[i] = IGNORE_LABEL;
                            label[i] = IGNORE_LABEL;
                        }
                    }
                }
            }
            anomaly = Some(Array2::from_shape_vec((n, n), mask).expect("canvas size"));
        }
        let mut img = Vec::with_capacity(3 * n * n);
        for _ in 0..3 {
            img.extend_from_slice(&ink);
        }
        Sample {
            image: Array3::from_shape_vec((3, n, n), img).expect("canvas size"),
            label: Array2::from_shape_vec((n, n), label).expect("canvas size"),
            anomaly,
        }
    }
}

impl Dataset for DigitScenes {
    fn len(&self) -> usize {
        self.len
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index(index, self.len, || self.name())?;
        Ok(self.generate(index))
    }

    fn num_classes(&self) -> usize {
        CLASS_NAMES.len()
    }

    fn class_names(&self) -> Vec<String> {
        CLASS_NAMES.iter().map(|s| s.to_string()).collect()
    }

    fn name(&self) -> String {
        format!("digitscenes/{}", self.split.name())
    }
}
