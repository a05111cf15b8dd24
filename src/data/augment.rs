//! Training-time augmentation: random scale, crop (padding with ignore when the scaled image
//! is smaller than the crop), horizontal flip and light colour jitter — the mmsegmentation
//! pipeline the paper's models train with, shrunk to small images.
//!
//! Scale, crop and flip are fused into one resampling pass (bilinear for the image, nearest
//! for labels and masks), so augmenting a 64×64 sample costs about one pass over its pixels.

use ndarray::{Array2, Array3};
use rand::Rng;

use super::{Sample, IGNORE_LABEL};
use crate::error::{GmmSegError, Result};

/// The random draws of one augmentation, kept apart from applying them so that a test can
/// apply known parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugmentParams {
    /// Resize factor applied to the source image.
    pub scale: f32,
    /// Top-left of the crop in the scaled image (negative: the crop overhangs and is padded).
    pub crop_y: i64,
    /// See `crop_y`.
    pub crop_x: i64,
    /// Mirror left-right.
    pub flip: bool,
    /// Brightness factor.
    pub brightness: f32,
    /// Contrast factor (around the image's mean grey).
    pub contrast: f32,
    /// Saturation factor (around each pixel's grey).
    pub saturation: f32,
}

impl AugmentParams {
    /// The identity augmentation cropping the top-left `crop` of an unscaled image.
    pub fn identity() -> Self {
        Self {
            scale: 1.0,
            crop_y: 0,
            crop_x: 0,
            flip: false,
            brightness: 1.0,
            contrast: 1.0,
            saturation: 1.0,
        }
    }

    /// Draws parameters for an (h, w) source and an output `crop` of (ch, cw).
    ///
    /// `scale` is drawn log-uniformly in `scale_range`; the crop is placed uniformly over
    /// the scaled image (or, if smaller than the crop, the image uniformly inside it).
    pub fn sample(
        rng: &mut impl Rng,
        (h, w): (usize, usize),
        (ch, cw): (usize, usize),
        scale_range: (f32, f32),
        flip: bool,
        jitter: f32,
    ) -> Self {
        let (lo, hi) = (scale_range.0.ln(), scale_range.1.ln());
        let scale = if hi > lo {
            rng.gen_range(lo..=hi).exp()
        } else {
            scale_range.0
        };
        let sh = (h as f32 * scale).round().max(1.0) as i64;
        let sw = (w as f32 * scale).round().max(1.0) as i64;
        let pick = |rng: &mut dyn rand::RngCore, s: i64, c: i64| -> i64 {
            if s >= c {
                rng.gen_range(0..=s - c)
            } else {
                -rng.gen_range(0..=c - s)
            }
        };
        let crop_y = pick(rng, sh, ch as i64);
        let crop_x = pick(rng, sw, cw as i64);
        let f = |rng: &mut dyn rand::RngCore| {
            if jitter > 0.0 {
                1.0 + rng.gen_range(-jitter..=jitter)
            } else {
                1.0
            }
        };
        Self {
            scale,
            crop_y,
            crop_x,
            flip: flip && rng.gen_bool(0.5),
            brightness: f(rng),
            contrast: f(rng),
            saturation: f(rng),
        }
    }
}

/// Applies `p` to `s`, producing a (ch, cw) sample. Pixels outside the scaled image are
/// padded: image with `pad` (the normalisation mean, so that they normalise to 0), labels
/// and anomaly masks with 255. Errors if the sample's image, labels and mask disagree in
/// size (see [`Sample::validate`]) or are empty.
pub fn apply(
    s: &Sample,
    p: &AugmentParams,
    (ch, cw): (usize, usize),
    pad: [f32; 3],
) -> Result<Sample> {
    let (c, h, w) = s.image.dim();
    let mask_ok = s.anomaly.as_ref().is_none_or(|a| a.dim() == (h, w));
    if c != 3 || h == 0 || w == 0 || s.label.dim() != (h, w) || !mask_ok {
        return Err(GmmSegError::shape(
            "augment",
            format!(
                "image {:?}, labels {:?}: expected (3, H, W) and (H, W) with H, W > 0",
                s.image.dim(),
                s.label.dim()
            ),
        ));
    }
    if !(p.scale.is_finite() && p.scale > 0.0) {
        return Err(GmmSegError::input(
            "augment",
            format!("scale must be finite and > 0, got {}", p.scale),
        ));
    }
    let sh = (h as f32 * p.scale).round().max(1.0) as i64;
    let sw = (w as f32 * p.scale).round().max(1.0) as i64;
    // Exact ratio between source and scaled grids.
    let (ry, rx) = (h as f32 / sh as f32, w as f32 / sw as f32);
    let mut img = vec![0f32; 3 * ch * cw];
    let mut lab = vec![IGNORE_LABEL; ch * cw];
    let mut anom = s.anomaly.as_ref().map(|_| vec![IGNORE_LABEL; ch * cw]);
    let plane = ch * cw;
    let src = s
        .image
        .as_slice()
        .map(|x| x.to_vec())
        .unwrap_or_else(|| s.image.iter().copied().collect());
    for oy in 0..ch {
        let sy = oy as i64 + p.crop_y;
        for ox in 0..cw {
            let o = oy * cw + ox;
            let dx = if p.flip { cw - 1 - ox } else { ox };
            let sx = dx as i64 + p.crop_x;
            if sy < 0 || sy >= sh || sx < 0 || sx >= sw {
                for c in 0..3 {
                    img[c * plane + o] = pad[c];
                }
                continue;
            }
            // Bilinear sample at the source position of the scaled pixel's centre.
            let fy = ((sy as f32 + 0.5) * ry - 0.5).clamp(0.0, (h - 1) as f32);
            let fx = ((sx as f32 + 0.5) * rx - 0.5).clamp(0.0, (w - 1) as f32);
            let (y0, x0) = (fy.floor() as usize, fx.floor() as usize);
            let (y1, x1) = ((y0 + 1).min(h - 1), (x0 + 1).min(w - 1));
            let (ty, tx) = (fy - y0 as f32, fx - x0 as f32);
            for c in 0..3 {
                let b = c * h * w;
                let top = src[b + y0 * w + x0] * (1.0 - tx) + src[b + y0 * w + x1] * tx;
                let bot = src[b + y1 * w + x0] * (1.0 - tx) + src[b + y1 * w + x1] * tx;
                img[c * plane + o] = top * (1.0 - ty) + bot * ty;
            }
            let ny = (((sy as f32 + 0.5) * ry) as usize).min(h - 1);
            let nx = (((sx as f32 + 0.5) * rx) as usize).min(w - 1);
            lab[o] = s.label[(ny, nx)];
            if let (Some(a), Some(src_a)) = (anom.as_mut(), s.anomaly.as_ref()) {
                a[o] = src_a[(ny, nx)];
            }
        }
    }
    color_jitter(&mut img, plane, p);
    Ok(Sample {
        image: Array3::from_shape_vec((3, ch, cw), img).expect("crop size"),
        label: Array2::from_shape_vec((ch, cw), lab).expect("crop size"),
        anomaly: anom.map(|a| Array2::from_shape_vec((ch, cw), a).expect("crop size")),
    })
}

/// Brightness, contrast and saturation, clamped to [0, 1] (identity factors skip the work).
fn color_jitter(img: &mut [f32], plane: usize, p: &AugmentParams) {
    if p.brightness == 1.0 && p.contrast == 1.0 && p.saturation == 1.0 {
        return;
    }
    let mean_grey = img.iter().sum::<f32>() / img.len().max(1) as f32;
    for i in 0..plane {
        let mut rgb = [img[i], img[plane + i], img[2 * plane + i]];
        for v in &mut rgb {
            *v = ((*v * p.brightness - mean_grey) * p.contrast + mean_grey).clamp(0.0, 1.0);
        }
        let g = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2];
        for (c, v) in rgb.iter().enumerate() {
            img[c * plane + i] = (g + (v - g) * p.saturation).clamp(0.0, 1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(h: usize, w: usize) -> Sample {
        Sample {
            image: Array3::from_shape_fn((3, h, w), |(c, y, x)| {
                (c * 100 + y * w + x) as f32 / 1000.0
            }),
            label: Array2::from_shape_fn((h, w), |(y, x)| ((y * w + x) % 7) as u8),
            anomaly: Some(Array2::from_shape_fn((h, w), |(y, _)| (y % 2) as u8)),
        }
    }

    #[test]
    fn identity_reproduces_the_sample() {
        let s = sample(6, 5);
        let out = apply(&s, &AugmentParams::identity(), (6, 5), [0.0; 3]).unwrap();
        assert_eq!(out, s);
    }

    #[test]
    fn flip_mirrors_and_padding_is_ignore() {
        let s = sample(4, 4);
        let mut p = AugmentParams::identity();
        p.flip = true;
        let out = apply(&s, &p, (4, 4), [0.0; 3]).unwrap();
        for y in 0..4 {
            for x in 0..4 {
                assert_eq!(out.label[(y, x)], s.label[(y, 3 - x)]);
            }
        }
        let mut p = AugmentParams::identity();
        p.crop_x = -2;
        let out = apply(&s, &p, (4, 4), [0.5; 3]).unwrap();
        assert_eq!(out.label[(0, 0)], IGNORE_LABEL);
        assert_eq!(out.image[(1, 0, 1)], 0.5);
        assert_eq!(out.label[(1, 2)], s.label[(1, 0)]);
    }

    #[test]
    fn mismatched_sample_is_an_error_not_a_panic() {
        let mut s = sample(4, 4);
        s.label = Array2::zeros((3, 4));
        assert!(apply(&s, &AugmentParams::identity(), (4, 4), [0.0; 3]).is_err());
    }
}
