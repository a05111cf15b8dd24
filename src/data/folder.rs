//! The folder format, for the user's own data (and `gmmseg data export`).
//!
//! ```text
//! ROOT/classes.txt              one class name per line, line i = class i
//! ROOT/<split>/images/*.png|jpg  RGB images
//! ROOT/<split>/labels/*.png      8-bit grey class ids, same stems, 255 = ignore
//! ROOT/<split>/anomaly/*.png     optional: 1 anomaly, 0 in-distribution, 255 ignore
//! ```
//! A split folder may also be opened directly (`ROOT` itself holding `images/`, as
//! `gmmseg data export` writes it), with `classes.txt` beside `images/`.
//!
//! Label files can be mapped on load ([`LabelMapping`]): Cityscapes `*_labelIds.png`
//! (34 ids → 19 train ids, the rest ignore) and ADE20K annotations (reduce zero label:
//! 0 → 255, k → k − 1). Missing or mismatched files are errors naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use image::{DynamicImage, GrayImage, RgbImage};
use ndarray::{Array2, Array3};

use super::{check_index, Dataset, Sample, IGNORE_LABEL};
use crate::error::{GmmSegError, Result};

/// Cityscapes labelId (0..=33) → trainId (0..=18, or 255): the official table of
/// `cityscapesscripts/helpers/labels.py`.
pub const CITYSCAPES_LABEL_TO_TRAIN: [u8; 34] = [
    255, 255, 255, 255, 255, 255, 255, 0, 1, 255, 255, 2, 3, 4, 255, 255, 255, 5, 255, 6, 7, 8, 9,
    10, 11, 12, 13, 14, 15, 255, 255, 16, 17, 18,
];

/// The 19 Cityscapes training classes, index = trainId.
pub const CITYSCAPES_CLASSES: [&str; 19] = [
    "road",
    "sidewalk",
    "building",
    "wall",
    "fence",
    "pole",
    "traffic light",
    "traffic sign",
    "vegetation",
    "terrain",
    "sky",
    "person",
    "rider",
    "car",
    "truck",
    "bus",
    "train",
    "motorcycle",
    "bicycle",
];

/// How stored label values become class ids.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum LabelMapping {
    /// Values are class ids already (255 = ignore).
    #[default]
    Identity,
    /// Cityscapes labelIds → trainIds ([`CITYSCAPES_LABEL_TO_TRAIN`]); ids ≥ 34 → 255.
    Cityscapes,
    /// ADE20K "reduce zero label": 0 (other) → 255, k → k − 1, 255 stays 255.
    Ade20k,
}

impl LabelMapping {
    /// Maps one stored value.
    pub fn map(self, v: u8) -> u8 {
        match self {
            LabelMapping::Identity => v,
            LabelMapping::Cityscapes => CITYSCAPES_LABEL_TO_TRAIN
                .get(v as usize)
                .copied()
                .unwrap_or(IGNORE_LABEL),
            LabelMapping::Ade20k => match v {
                0 | 255 => IGNORE_LABEL,
                k => k - 1,
            },
        }
    }
}

/// Reads `classes.txt`: one non-empty name per line (trailing blank lines ignored).
pub fn read_classes(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| GmmSegError::io(path, e))?;
    let names: Vec<String> = text
        .lines()
        .map(|l| l.trim().to_string())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .skip_while(|l| l.is_empty())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    if names.is_empty() {
        return Err(GmmSegError::file(
            path,
            "lists no classes (one name per line expected)",
        ));
    }
    if let Some(i) = names.iter().position(|n| n.is_empty()) {
        return Err(GmmSegError::file(path, format!("line {} is empty", i + 1)));
    }
    if names.len() > 255 {
        return Err(GmmSegError::file(
            path,
            format!(
                "{} classes; at most 255 fit in 8-bit labels with 255 = ignore",
                names.len()
            ),
        ));
    }
    Ok(names)
}

/// One sample's files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FolderItem {
    /// Common file stem.
    pub stem: String,
    /// The image file.
    pub image: PathBuf,
    /// The label file.
    pub label: PathBuf,
    /// The anomaly mask, when the split has an `anomaly/` folder.
    pub anomaly: Option<PathBuf>,
}

/// A split of a dataset in the folder format.
#[derive(Clone, Debug)]
pub struct FolderDataset {
    dir: PathBuf,
    split: String,
    classes: Vec<String>,
    items: Vec<FolderItem>,
    mapping: LabelMapping,
}

/// Files in `dir` with one of `exts` (lower-cased), keyed by stem. Two files with the same
/// stem are an error naming both.
fn list_stems(dir: &Path, exts: &[&str]) -> Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    let rd = std::fs::read_dir(dir).map_err(|e| GmmSegError::io(dir, e))?;
    for entry in rd {
        let entry = entry.map_err(|e| GmmSegError::io(dir, e))?;
        let path = entry.path();
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        let (Some(ext), Some(stem)) = (ext, path.file_stem().and_then(|s| s.to_str())) else {
            continue;
        };
        if !exts.contains(&ext.as_str()) || !path.is_file() {
            continue;
        }
        if let Some(prev) = out.insert(stem.to_string(), path.clone()) {
            return Err(GmmSegError::file(
                &path,
                format!(
                    "has the same stem as {}; stems must be unique",
                    prev.display()
                ),
            ));
        }
    }
    Ok(out)
}

/// Share of `train/` held out as the `tune` split when a folder has no `tune/`.
pub const TUNE_FRACTION: f64 = 0.1;

/// Seed of the held-out `tune` slice (fixed: the slice is part of the dataset, not of a run).
const TUNE_SEED: u64 = 0x7475_6e65;

/// Which part of `train/` a split keeps when `tune` is held out of it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum HeldOut {
    /// Every image but the tune slice.
    Train,
    /// The tune slice only.
    Tune,
}

/// The stems of the held-out tune slice among `stems`: the ⌈10%⌉ (at least one, and never
/// all) with the smallest seeded hash, so that the slice does not depend on file order and
/// adding images moves few of them.
fn tune_slice(stems: &[&str]) -> std::collections::HashSet<String> {
    if stems.len() < 2 {
        return Default::default();
    }
    let k = ((stems.len() as f64 * TUNE_FRACTION).ceil() as usize).clamp(1, stems.len() - 1);
    let hash = |s: &str| {
        // FNV-1a over the seed and the stem: stable across platforms and versions
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ TUNE_SEED;
        for b in s.bytes() {
            h ^= b as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h
    };
    let mut ranked: Vec<(u64, &str)> = stems.iter().map(|s| (hash(s), *s)).collect();
    ranked.sort();
    ranked
        .into_iter()
        .take(k)
        .map(|(_, s)| s.to_string())
        .collect()
}

impl FolderDataset {
    /// Opens `root/split` (or `root` itself if it holds `images/` and `root/split` does not
    /// exist), checking that every image has a label (and an anomaly mask if `anomaly/`
    /// exists) and vice versa.
    ///
    /// The `tune` split (where hyperparameters are chosen) is `root/tune/` when it exists;
    /// otherwise a fixed, seeded 10% of `train/` ([`TUNE_FRACTION`], at least one image),
    /// which `train` then leaves out, so that the two never share an image.
    pub fn open(root: impl AsRef<Path>, split: &str, mapping: LabelMapping) -> Result<Self> {
        let root = root.as_ref();
        let own_tune = root.join("tune").join("images").is_dir();
        let held_out = match split {
            "tune" if !own_tune => Some(HeldOut::Tune),
            "train" if !own_tune => Some(HeldOut::Train),
            _ => None,
        };
        let Some(keep) = held_out else {
            return Self::open_split(root, split, mapping);
        };
        let mut ds = Self::open_split(root, "train", mapping)?;
        let stems: Vec<&str> = ds.items.iter().map(|i| i.stem.as_str()).collect();
        let slice = tune_slice(&stems);
        if keep == HeldOut::Tune && slice.is_empty() {
            return Err(GmmSegError::empty(
                ds.dir.join("images").display().to_string(),
                "holds one image: a `tune` split needs a `tune/` folder or at least 2 training images to hold one out",
            ));
        }
        ds.items
            .retain(|i| slice.contains(&i.stem) == (keep == HeldOut::Tune));
        ds.split = split.to_string();
        Ok(ds)
    }

    fn open_split(root: &Path, split: &str, mapping: LabelMapping) -> Result<Self> {
        let nested = root.join(split);
        let dir = if nested.join("images").is_dir() || !root.join("images").is_dir() {
            nested
        } else {
            root.to_path_buf()
        };
        let images_dir = dir.join("images");
        if !images_dir.is_dir() {
            return Err(GmmSegError::file(
                &images_dir,
                "missing: a split folder needs images/ and labels/",
            ));
        }
        let classes_path = [root.join("classes.txt"), dir.join("classes.txt")]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| {
                GmmSegError::file(
                    root.join("classes.txt"),
                    "missing: list one class name per line",
                )
            })?;
        let classes = read_classes(&classes_path)?;
        let images = list_stems(&images_dir, &["png", "jpg", "jpeg"])?;
        let labels = list_stems(&dir.join("labels"), &["png"])?;
        let anomaly_dir = dir.join("anomaly");
        let anomalies = if anomaly_dir.is_dir() {
            Some(list_stems(&anomaly_dir, &["png"])?)
        } else {
            None
        };
        for (stem, path) in &labels {
            if !images.contains_key(stem) {
                return Err(GmmSegError::file(
                    path,
                    format!(
                        "has no image `{stem}.png` or `{stem}.jpg` in {}",
                        images_dir.display()
                    ),
                ));
            }
        }
        if let Some(an) = &anomalies {
            for (stem, path) in an {
                if !images.contains_key(stem) {
                    return Err(GmmSegError::file(path, "has no image with the same stem"));
                }
            }
        }
        let mut items = Vec::with_capacity(images.len());
        for (stem, image) in images {
            let label = labels.get(&stem).cloned().ok_or_else(|| {
                GmmSegError::file(
                    dir.join("labels").join(format!("{stem}.png")),
                    format!("missing: the label of {}", image.display()),
                )
            })?;
            let anomaly = match &anomalies {
                Some(an) => Some(an.get(&stem).cloned().ok_or_else(|| {
                    GmmSegError::file(
                        anomaly_dir.join(format!("{stem}.png")),
                        format!("missing: the anomaly mask of {}", image.display()),
                    )
                })?),
                None => None,
            };
            items.push(FolderItem {
                stem,
                image,
                label,
                anomaly,
            });
        }
        if items.is_empty() {
            return Err(GmmSegError::empty(
                images_dir.display().to_string(),
                "holds no images",
            ));
        }
        Ok(Self {
            dir,
            split: split.to_string(),
            classes,
            items,
            mapping,
        })
    }

    /// Keeps the first `n` samples (sorted by stem).
    pub fn truncate(mut self, n: usize) -> Self {
        self.items.truncate(n);
        self
    }

    /// The samples' files, sorted by stem.
    pub fn items(&self) -> &[FolderItem] {
        &self.items
    }

    /// The split folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn decode(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| GmmSegError::io(path, e))?;
    image::load_from_memory(&bytes)
        .map_err(|e| GmmSegError::file(path, format!("cannot decode image: {e}")))
}

fn read_gray(path: &Path, what: &str) -> Result<GrayImage> {
    match decode(path)? {
        DynamicImage::ImageLuma8(g) => Ok(g),
        other => Err(GmmSegError::file(
            path,
            format!(
                "{what} must be a single-channel 8-bit PNG of ids, got {:?}; convert colour or palette labels to ids first",
                other.color()
            ),
        )),
    }
}

impl Dataset for FolderDataset {
    fn len(&self) -> usize {
        self.items.len()
    }

    fn source(&self, index: usize) -> Option<String> {
        self.items.get(index).map(|i| i.image.display().to_string())
    }

    fn get(&self, index: usize) -> Result<Sample> {
        check_index(index, self.items.len(), || self.name())?;
        let item = &self.items[index];
        let rgb = decode(&item.image)?.to_rgb8();
        let (w, h) = rgb.dimensions();
        let (h, w) = (h as usize, w as usize);
        let lab = read_gray(&item.label, "a label file")?;
        if lab.dimensions() != rgb.dimensions() {
            return Err(GmmSegError::file(
                &item.label,
                format!(
                    "is {}×{} but its image is {w}×{h}",
                    lab.width(),
                    lab.height()
                ),
            ));
        }
        let c = self.classes.len();
        let mut label = Vec::with_capacity(h * w);
        for (i, &v) in lab.as_raw().iter().enumerate() {
            let m = self.mapping.map(v);
            if m != IGNORE_LABEL && m as usize >= c {
                return Err(GmmSegError::LabelOutOfRange {
                    what: item.label.display().to_string(),
                    label: m as i64,
                    index: i,
                    classes: c,
                });
            }
            label.push(m);
        }
        let anomaly = match &item.anomaly {
            Some(p) => {
                let a = read_gray(p, "an anomaly mask")?;
                if a.dimensions() != rgb.dimensions() {
                    return Err(GmmSegError::file(
                        p,
                        format!("is {}×{} but its image is {w}×{h}", a.width(), a.height()),
                    ));
                }
                if let Some(&bad) = a.as_raw().iter().find(|&&v| v > 1 && v != IGNORE_LABEL) {
                    return Err(GmmSegError::file(
                        p,
                        format!("holds {bad}; anomaly masks hold 0, 1 or 255"),
                    ));
                }
                Some(Array2::from_shape_vec((h, w), a.into_raw()).expect("mask size"))
            }
            None => None,
        };
        let raw = rgb.as_raw();
        let mut img = vec![0f32; 3 * h * w];
        for i in 0..h * w {
            for ch in 0..3 {
                img[ch * h * w + i] = raw[3 * i + ch] as f32 / 255.0;
            }
        }
        Ok(Sample {
            image: Array3::from_shape_vec((3, h, w), img).expect("image size"),
            label: Array2::from_shape_vec((h, w), label).expect("label size"),
            anomaly,
        })
    }

    fn num_classes(&self) -> usize {
        self.classes.len()
    }

    fn class_names(&self) -> Vec<String> {
        self.classes.clone()
    }

    fn name(&self) -> String {
        format!("folder:{}/{}", self.dir.display(), self.split)
    }
}

/// Converts a sample's image (3, H, W) in [0, 1] to an 8-bit RGB image.
pub fn image_to_rgb8(image: &Array3<f32>) -> RgbImage {
    let (_, h, w) = image.dim();
    RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let (x, y) = (x as usize, y as usize);
        image::Rgb([0, 1, 2].map(|c| (image[(c, y, x)].clamp(0.0, 1.0) * 255.0).round() as u8))
    })
}

fn gray(a: &Array2<u8>) -> GrayImage {
    let (h, w) = a.dim();
    GrayImage::from_fn(w as u32, h as u32, |x, y| {
        image::Luma([a[(y as usize, x as usize)]])
    })
}

/// Writes datasets in the folder format (the layout [`FolderDataset`] reads).
#[derive(Debug)]
pub struct FolderWriter {
    dir: PathBuf,
}

impl FolderWriter {
    /// Creates `dir/images`, `dir/labels` (and `dir/anomaly` when `with_anomaly`) and writes
    /// `dir/classes.txt`.
    pub fn create(
        dir: impl Into<PathBuf>,
        class_names: &[String],
        with_anomaly: bool,
    ) -> Result<Self> {
        let dir = dir.into();
        let mut subs = vec!["images", "labels"];
        if with_anomaly {
            subs.push("anomaly");
        }
        for sub in subs {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| GmmSegError::io(&p, e))?;
        }
        let cp = dir.join("classes.txt");
        let mut text = class_names.join("\n");
        text.push('\n');
        std::fs::write(&cp, text).map_err(|e| GmmSegError::io(&cp, e))?;
        Ok(Self { dir })
    }

    /// Writes one sample as `images/<stem>.png`, `labels/<stem>.png` and, if it has one,
    /// `anomaly/<stem>.png`.
    pub fn write(&self, stem: &str, s: &Sample) -> Result<()> {
        let save = |img: DynamicImage, sub: &str| -> Result<()> {
            let p = self.dir.join(sub).join(format!("{stem}.png"));
            img.save_with_format(&p, image::ImageFormat::Png)
                .map_err(|e| GmmSegError::file(&p, format!("cannot write PNG: {e}")))
        };
        save(DynamicImage::ImageRgb8(image_to_rgb8(&s.image)), "images")?;
        save(DynamicImage::ImageLuma8(gray(&s.label)), "labels")?;
        if let Some(a) = &s.anomaly {
            let p = self.dir.join("anomaly");
            std::fs::create_dir_all(&p).map_err(|e| GmmSegError::io(&p, e))?;
            save(DynamicImage::ImageLuma8(gray(a)), "anomaly")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cityscapes_table_matches_the_official_train_ids() {
        assert_eq!(LabelMapping::Cityscapes.map(7), 0); // road
        assert_eq!(LabelMapping::Cityscapes.map(26), 13); // car
        assert_eq!(LabelMapping::Cityscapes.map(33), 18); // bicycle
        assert_eq!(LabelMapping::Cityscapes.map(0), 255);
        assert_eq!(LabelMapping::Cityscapes.map(34), 255);
        let ids: Vec<u8> = CITYSCAPES_LABEL_TO_TRAIN
            .iter()
            .copied()
            .filter(|&t| t != 255)
            .collect();
        assert_eq!(ids, (0..19).collect::<Vec<u8>>());
    }

    #[test]
    fn ade20k_reduces_the_zero_label() {
        assert_eq!(LabelMapping::Ade20k.map(0), 255);
        assert_eq!(LabelMapping::Ade20k.map(1), 0);
        assert_eq!(LabelMapping::Ade20k.map(150), 149);
        assert_eq!(LabelMapping::Ade20k.map(255), 255);
    }
}
