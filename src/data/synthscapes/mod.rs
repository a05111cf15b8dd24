//! **SynthScapes**: procedural street scenes, generated on the fly, no files.
//!
//! A deterministic (seeded) generator in the spirit of Cityscapes: a one-point-perspective
//! street with sky, building facades or vegetation along the sides, sidewalks, a road, and
//! cars, people, poles with signs and trees, drawn far to near at any size (default 64×64;
//! 96 and 128 work — texture sizes scale with the width).
//!
//! Every class is drawn from several **appearance modes** (colour and texture families, e.g.
//! asphalt vs cobblestone, concrete vs brick vs glass facades, red/blue/silver/black cars),
//! each jittered per instance, then lit (global brightness, tint, a shadow gradient), noised
//! and sometimes blurred. The per-class pixel density is therefore genuinely multimodal — a
//! single Gaussian per class fits it clearly worse than a mixture (`tests/data_synthscapes.rs`
//! measures it), which is what GMMSeg's M components per class are for.
//!
//! # Classes
//! | id | name | modes |
//! |---|---|---|
//! | 0 | road | asphalt (with lane marks), cobblestone |
//! | 1 | sidewalk | grey tiles, red pavers |
//! | 2 | building | beige concrete, red brick, teal glass (all with windows) |
//! | 3 | vegetation | green, autumn foliage (trees, hedges, tree lines; trunks too) |
//! | 4 | sky | clear blue, overcast, sunset |
//! | 5 | car | red, blue, silver, black body (tyres and glass are car too) |
//! | 6 | person | dark clothes, hi-vis yellow, red coat |
//! | 7 | pole | dark or galvanised pole with a red, blue or yellow sign (signs count as pole) |
//!
//! # Splits
//! - `train`, `val`: urban streets (different seeds).
//! - `anomaly` (a Fishyscapes Lost&Found analogue): urban streets with 1–3 small objects of
//!   never-seen shapes (blobs, stars, triangles, crosses), colours (saturated magenta, cyan,
//!   lime, violet) and textures (checkers, rings, diagonal stripes, spots) lying on the road.
//!   Anomaly mask: 1 on the objects, 0 on road and sidewalk, 255 elsewhere (like Lost&Found,
//!   only the drivable area is evaluated). Labels are 255 on the objects.
//! - `anomaly-context` (a Road Anomaly analogue): unusual objects in unusual scenes — mostly
//!   rural roads with no buildings under a stronger colour cast, with 1–2 large novel objects
//!   (animal-like figures, giant shapes) on or beside the road. Mask: 1 on objects, 0 on every
//!   other pixel.
//!
//! # Class frequencies
//! Measured over 2,000 `train` images at 64×64 (seed 0; `gmmseg data stats --dataset
//! synthscapes --split train`) and checked by the tests with the ranges in
//! [`FREQUENCY_RANGES`]: road 20.7%, sidewalk 7.6%, building 27.1%, vegetation 12.5%, sky
//! 16.8%, car 9.2%, person 3.5%, pole 2.5% — a long tail like Cityscapes', with the rare
//! classes a little less rare so that a small network learns them in minutes. Every class
//! occurs in ≥ 86% of the images.

mod appearance;
mod canvas;
mod scene;

use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use self::appearance::{hash2, mix64};
use self::canvas::Canvas;
use self::scene::Setting;
use crate::data::{check_index, Dataset, Sample, IGNORE_LABEL};
use crate::error::{GmmSegError, Result};

/// Class ids of SynthScapes (see the module docs for what each looks like).
pub mod classes {
    /// Road (asphalt with lane markings, or cobblestone).
    pub const ROAD: u8 = 0;
    /// Sidewalk (grey tiles or red pavers).
    pub const SIDEWALK: u8 = 1;
    /// Building facades with windows.
    pub const BUILDING: u8 = 2;
    /// Trees, hedges, tree lines.
    pub const VEGETATION: u8 = 3;
    /// Sky.
    pub const SKY: u8 = 4;
    /// Cars (body, glass, tyres).
    pub const CAR: u8 = 5;
    /// People.
    pub const PERSON: u8 = 6;
    /// Poles and the signs on them.
    pub const POLE: u8 = 7;
}

/// Class names of SynthScapes, index = class id.
pub const CLASS_NAMES: [&str; 8] = [
    "road",
    "sidewalk",
    "building",
    "vegetation",
    "sky",
    "car",
    "person",
    "pole",
];

/// Documented per-class pixel-frequency ranges (fraction of labelled pixels) of the `train`
/// split at the default configuration, averaged over at least a few hundred images; the
/// tests check them, so a change to the generator that shifts the class balance is noticed.
pub const FREQUENCY_RANGES: [(f64, f64); 8] = [
    (0.15, 0.28),
    (0.05, 0.11),
    (0.20, 0.36),
    (0.08, 0.18),
    (0.12, 0.22),
    (0.06, 0.13),
    (0.02, 0.055),
    (0.015, 0.04),
];

/// A SynthScapes split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SynthSplit {
    /// Training scenes.
    Train,
    /// Validation scenes (same distribution, other seeds).
    Val,
    /// Tuning scenes (same distribution as train and val, seeds of their own): where
    /// hyperparameters are chosen, so that val and the anomaly splits only report.
    Tune,
    /// Lost&Found analogue: small never-seen objects on the road.
    Anomaly,
    /// Road Anomaly analogue: unusual objects in unusual scenes.
    AnomalyContext,
}

impl SynthSplit {
    /// Every split, in a fixed order.
    pub const ALL: [SynthSplit; 5] = [
        SynthSplit::Train,
        SynthSplit::Val,
        SynthSplit::Tune,
        SynthSplit::Anomaly,
        SynthSplit::AnomalyContext,
    ];

    /// The split's name as used on the command line (`train`, `val`, `anomaly`,
    /// `anomaly-context`).
    pub fn name(self) -> &'static str {
        match self {
            SynthSplit::Train => "train",
            SynthSplit::Val => "val",
            SynthSplit::Tune => "tune",
            SynthSplit::Anomaly => "anomaly",
            SynthSplit::AnomalyContext => "anomaly-context",
        }
    }

    /// Parses a split name (`test` is accepted for `val`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "train" => Ok(SynthSplit::Train),
            "val" | "test" => Ok(SynthSplit::Val),
            "tune" => Ok(SynthSplit::Tune),
            "anomaly" => Ok(SynthSplit::Anomaly),
            "anomaly-context" | "anomaly_context" => Ok(SynthSplit::AnomalyContext),
            other => Err(GmmSegError::input(
                "split",
                format!("unknown SynthScapes split `{other}`; expected train, val, tune, anomaly or anomaly-context"),
            )),
        }
    }

    /// Whether samples carry an anomaly mask.
    pub fn has_anomaly(self) -> bool {
        matches!(self, SynthSplit::Anomaly | SynthSplit::AnomalyContext)
    }

    fn tag(self) -> u64 {
        match self {
            SynthSplit::Train => 0x7472_6169_6e00,
            SynthSplit::Val => 0x7661_6c00,
            SynthSplit::Tune => 0x0074_756e_6500,
            SynthSplit::Anomaly => 0x0061_6e6f_6d00,
            SynthSplit::AnomalyContext => 0x6374_7800,
        }
    }
}

/// Configuration of the SynthScapes generator. `Default` gives the documented defaults;
/// [`SynthScapesConfig::check`] validates it once.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SynthScapesConfig {
    /// Image height in pixels. Default 64 (CPU-sized; 96 and 128 work too). Range 32..=1024.
    pub height: usize,
    /// Image width in pixels. Default 64. Range 32..=1024.
    pub width: usize,
    /// Base seed; every split and index derives its own stream from it. Default 0.
    pub seed: u64,
    /// Number of `train` scenes. Default 2,000 (enough for the quick profile's few thousand
    /// steps at batch 8 without seeing a scene often).
    pub train_len: usize,
    /// Number of `val` scenes. Default 500.
    pub val_len: usize,
    /// Number of `tune` scenes. Default 500.
    #[serde(default = "default_tune_len")]
    pub tune_len: usize,
    /// Number of `anomaly` scenes. Default 300.
    pub anomaly_len: usize,
    /// Number of `anomaly-context` scenes. Default 300.
    pub anomaly_context_len: usize,
    /// Largest standard deviation of the additive pixel noise (each image draws its own in
    /// [0, noise]). Default 0.03. Range [0, 0.5].
    pub noise: f32,
    /// Probability that an image is blurred (3×3 binomial kernel). Default 0.5. Range [0, 1].
    pub blur_prob: f32,
    /// Multiplier on the expected number of cars, people, poles and trees. Default 1.
    /// Range [0, 1.8].
    pub density: f32,
}

fn default_tune_len() -> usize {
    500
}

impl Default for SynthScapesConfig {
    fn default() -> Self {
        Self {
            height: 64,
            width: 64,
            seed: 0,
            train_len: 2000,
            val_len: 500,
            tune_len: 500,
            anomaly_len: 300,
            anomaly_context_len: 300,
            noise: 0.03,
            blur_prob: 0.5,
            density: 1.0,
        }
    }
}

/// A checked [`SynthScapesConfig`]: the only kind [`SynthScapes`] accepts.
#[derive(Clone, Debug, PartialEq)]
pub struct ValidSynthScapesConfig(SynthScapesConfig);

impl std::ops::Deref for ValidSynthScapesConfig {
    type Target = SynthScapesConfig;
    fn deref(&self) -> &SynthScapesConfig {
        &self.0
    }
}

impl SynthScapesConfig {
    /// Default configuration at a square image size.
    pub fn with_size(size: usize) -> Self {
        Self {
            height: size,
            width: size,
            ..Self::default()
        }
    }

    /// Validates every field (errors name the field and its bound).
    pub fn check(self) -> Result<ValidSynthScapesConfig> {
        for (field, v) in [("height", self.height), ("width", self.width)] {
            if !(32..=1024).contains(&v) {
                return Err(GmmSegError::config(
                    field,
                    format!("must be in 32..=1024, got {v}"),
                ));
            }
        }
        if !(0.0..=0.5).contains(&self.noise) {
            return Err(GmmSegError::config(
                "noise",
                format!("must be in [0, 0.5], got {}", self.noise),
            ));
        }
        if !(0.0..=1.0).contains(&self.blur_prob) {
            return Err(GmmSegError::config(
                "blur_prob",
                format!("must be in [0, 1], got {}", self.blur_prob),
            ));
        }
        if !(0.0..=1.8).contains(&self.density) {
            return Err(GmmSegError::config(
                "density",
                format!("must be in [0, 1.8], got {}", self.density),
            ));
        }
        Ok(ValidSynthScapesConfig(self))
    }
}

/// One split of SynthScapes: `get(i)` renders scene `i` (a pure function of the config's
/// seed, the split and `i`).
#[derive(Clone, Debug)]
pub struct SynthScapes {
    cfg: ValidSynthScapesConfig,
    split: SynthSplit,
    len: usize,
}

impl SynthScapes {
    /// The split `split` with the configuration's length for it.
    pub fn new(cfg: ValidSynthScapesConfig, split: SynthSplit) -> Self {
        let len = match split {
            SynthSplit::Train => cfg.train_len,
            SynthSplit::Val => cfg.val_len,
            SynthSplit::Tune => cfg.tune_len,
            SynthSplit::Anomaly => cfg.anomaly_len,
            SynthSplit::AnomalyContext => cfg.anomaly_context_len,
        };
        Self { cfg, split, len }
    }

    /// Overrides the number of scenes (any number: scenes are generated on demand).
    pub fn with_len(mut self, len: usize) -> Self {
        self.len = len;
        self
    }

    /// The split.
    pub fn split(&self) -> SynthSplit {
        self.split
    }

    /// The configuration.
    pub fn config(&self) -> &ValidSynthScapesConfig {
        &self.cfg
    }

    /// Renders scene `index` (any index, also beyond `len`). Deterministic.
    pub fn generate(&self, index: usize) -> Sample {
        let seed = mix64(self.cfg.seed ^ mix64(self.split.tag() ^ mix64(index as u64 + 1)));
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (h, w) = (self.cfg.height, self.cfg.width);
        let mut c = Canvas::new(h, w);
        let setting = match self.split {
            SynthSplit::AnomalyContext if rng.gen_bool(0.7) => Setting::Rural,
            _ => Setting::Urban,
        };
        let st = scene::layout(&mut c, &mut rng, setting);
        let density = match self.split {
            SynthSplit::Anomaly => 0.8 * self.cfg.density,
            SynthSplit::AnomalyContext => 0.6 * self.cfg.density,
            _ => self.cfg.density,
        };
        scene::populate(&mut c, &st, &mut rng, density);
        match self.split {
            SynthSplit::Anomaly => scene::road_obstacles(&mut c, &st, &mut rng),
            SynthSplit::AnomalyContext => scene::large_objects(&mut c, &st, &mut rng),
            _ => {}
        }
        let strong_cast = self.split == SynthSplit::AnomalyContext;
        let image = render(&c, &mut rng, &self.cfg, strong_cast);
        let label = Array2::from_shape_vec((h, w), c.label.clone()).expect("canvas size");
        let anomaly = self.split.has_anomaly().then(|| {
            let mask: Vec<u8> = c
                .anomaly
                .iter()
                .zip(&c.label)
                .map(|(&a, &l)| {
                    if a == 1 {
                        1
                    } else if self.split == SynthSplit::Anomaly
                        && l != classes::ROAD
                        && l != classes::SIDEWALK
                    {
                        IGNORE_LABEL
                    } else {
                        0
                    }
                })
                .collect();
            Array2::from_shape_vec((h, w), mask).expect("canvas size")
        });
        Sample {
            image,
            label,
            anomaly,
        }
    }
}

/// Colours the canvas, then lighting (brightness, tint, a horizontal shadow gradient), noise
/// and an optional blur.
fn render(
    c: &Canvas,
    rng: &mut ChaCha8Rng,
    cfg: &SynthScapesConfig,
    strong_cast: bool,
) -> Array3<f32> {
    let (h, w) = (c.h, c.w);
    let bright = rng.gen_range(0.8..1.15f32);
    let cast = if strong_cast { 0.15 } else { 0.04 };
    let tint = [
        1.0 + rng.gen_range(-cast..cast),
        1.0 + rng.gen_range(-cast..cast),
        1.0 + rng.gen_range(-cast..cast),
    ];
    let shadow = rng.gen_range(0.0..0.2f32);
    let shadow_left = rng.gen_bool(0.5);
    let sigma = rng.gen_range(0.0..=cfg.noise);
    let blur = rng.gen_bool(cfg.blur_prob as f64);
    let noise_seed: u32 = rng.gen();
    let mut img = vec![0f32; 3 * h * w];
    let plane = h * w;
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let col = c.apps[c.app[i] as usize].color(x, y);
            let fx = x as f32 / w as f32;
            let g = 1.0 - shadow * if shadow_left { 1.0 - fx } else { fx };
            // Approximately Gaussian noise: sum of three uniforms, unit variance.
            let n = (hash2(noise_seed, x as i32, y as i32)
                + hash2(noise_seed ^ 1, x as i32, y as i32)
                + hash2(noise_seed ^ 2, x as i32, y as i32)
                - 1.5)
                * 2.0
                * sigma;
            for ch in 0..3 {
                img[ch * plane + i] = col[ch] * bright * tint[ch] * g + n;
            }
        }
    }
    if blur {
        blur3(&mut img, h, w);
    }
    for v in &mut img {
        *v = v.clamp(0.0, 1.0);
    }
    Array3::from_shape_vec((3, h, w), img).expect("render size")
}

/// In-place separable 3×3 binomial blur ([1 2 1]/4 each way), edges clamped.
fn blur3(img: &mut [f32], h: usize, w: usize) {
    let mut tmp = vec![0f32; h * w];
    for plane in img.chunks_mut(h * w) {
        for y in 0..h {
            for x in 0..w {
                let l = plane[y * w + x.saturating_sub(1)];
                let r = plane[y * w + (x + 1).min(w - 1)];
                tmp[y * w + x] = 0.25 * l + 0.5 * plane[y * w + x] + 0.25 * r;
            }
        }
        for y in 0..h {
            for x in 0..w {
                let u = tmp[y.saturating_sub(1) * w + x];
                let d = tmp[(y + 1).min(h - 1) * w + x];
                plane[y * w + x] = 0.25 * u + 0.5 * tmp[y * w + x] + 0.25 * d;
            }
        }
    }
}

impl Dataset for SynthScapes {
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
        format!("synthscapes/{}", self.split.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_valid_labels_at_several_sizes() {
        for size in [64, 96, 128] {
            let cfg = SynthScapesConfig::with_size(size).check().unwrap();
            for split in SynthSplit::ALL {
                let ds = SynthScapes::new(cfg.clone(), split);
                let s = ds.get(3).unwrap();
                assert_eq!(s.image.dim(), (3, size, size));
                assert!(s.label.iter().all(|&l| l < 8 || l == IGNORE_LABEL));
                assert_eq!(s.anomaly.is_some(), split.has_anomaly());
            }
        }
    }

    #[test]
    fn invalid_config_fields_are_named() {
        let bad = [
            SynthScapesConfig {
                height: 8,
                ..Default::default()
            },
            SynthScapesConfig {
                width: 5000,
                ..Default::default()
            },
            SynthScapesConfig {
                noise: -1.0,
                ..Default::default()
            },
            SynthScapesConfig {
                blur_prob: 2.0,
                ..Default::default()
            },
            SynthScapesConfig {
                density: 9.0,
                ..Default::default()
            },
        ];
        for (cfg, field) in
            bad.into_iter()
                .zip(["height", "width", "noise", "blur_prob", "density"])
        {
            let err = cfg.check().unwrap_err().to_string();
            assert!(err.contains(field), "{err}");
        }
    }

    #[test]
    fn out_of_range_index_is_an_error() {
        let ds = SynthScapes::new(
            SynthScapesConfig::default().check().unwrap(),
            SynthSplit::Val,
        )
        .with_len(2);
        assert!(ds.get(2).is_err());
    }
}
