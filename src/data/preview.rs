//! Preview grids: images next to their label overlays and anomaly masks, so a dataset can be
//! eyeballed in one PNG (`gmmseg data preview`).

use image::{Rgb, RgbImage};

use super::palette::{class_color, ANOMALY_COLOR, IGNORE_COLOR};
use super::{Dataset, Sample, IGNORE_LABEL};
use crate::error::{GmmSegError, Result};

/// How a preview grid is laid out.
#[derive(Clone, Debug, PartialEq)]
pub struct PreviewConfig {
    /// Number of samples shown (the first `count` of the split). Default 8.
    pub count: usize,
    /// Samples per grid row. Default 4.
    pub columns: usize,
    /// Opacity of the label colours over the image in the overlay panel. Default 0.6.
    pub alpha: f32,
    /// Integer upscaling of every panel (nearest neighbour), so that 64×64 images are
    /// visible. Default 2.
    pub zoom: u32,
}

impl Default for PreviewConfig {
    fn default() -> Self {
        Self {
            count: 8,
            columns: 4,
            alpha: 0.6,
            zoom: 2,
        }
    }
}

fn to_rgb(v: f32) -> u8 {
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}

/// Draws the panels of one sample: image, label overlay and (if present) anomaly mask.
fn panels(s: &Sample, alpha: f32) -> Vec<RgbImage> {
    let (_, h, w) = s.image.dim();
    let img = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let (x, y) = (x as usize, y as usize);
        Rgb([
            to_rgb(s.image[(0, y, x)]),
            to_rgb(s.image[(1, y, x)]),
            to_rgb(s.image[(2, y, x)]),
        ])
    });
    let overlay = RgbImage::from_fn(w as u32, h as u32, |x, y| {
        let p = img.get_pixel(x, y).0;
        let l = s.label[(y as usize, x as usize)];
        let c = if l == IGNORE_LABEL {
            IGNORE_COLOR
        } else {
            class_color(l as usize)
        };
        let mut out = [0u8; 3];
        for k in 0..3 {
            out[k] = (alpha * c[k] as f32 + (1.0 - alpha) * p[k] as f32).round() as u8;
        }
        Rgb(out)
    });
    let mut v = vec![img, overlay];
    if let Some(a) = &s.anomaly {
        v.push(RgbImage::from_fn(w as u32, h as u32, |x, y| {
            match a[(y as usize, x as usize)] {
                1 => Rgb(ANOMALY_COLOR),
                0 => Rgb([40, 40, 40]),
                _ => Rgb([128, 128, 128]),
            }
        }));
    }
    v
}

/// Renders the first `cfg.count` samples of `ds` as a grid. Each cell is a row of panels
/// (image | labels over image | anomaly mask in magenta, ignore in grey), cells separated
/// by a white gap. Samples of different sizes are placed top-left in equal cells.
pub fn preview_grid(ds: &dyn Dataset, cfg: &PreviewConfig) -> Result<RgbImage> {
    if cfg.count == 0 || cfg.columns == 0 || cfg.zoom == 0 {
        return Err(GmmSegError::config(
            "preview",
            "count, columns and zoom must be at least 1",
        ));
    }
    let n = cfg.count.min(ds.len());
    if n == 0 {
        return Err(GmmSegError::empty(ds.name(), "no samples to preview"));
    }
    let mut cells = Vec::with_capacity(n);
    for i in 0..n {
        cells.push(panels(&ds.get(i)?, cfg.alpha));
    }
    let z = cfg.zoom;
    let gap = 4u32;
    let ph = cells
        .iter()
        .flatten()
        .map(|p| p.height())
        .max()
        .unwrap_or(1)
        * z;
    let pw = cells.iter().flatten().map(|p| p.width()).max().unwrap_or(1) * z;
    let npan = cells.iter().map(|c| c.len()).max().unwrap_or(1) as u32;
    let cell_w = npan * (pw + 1) + gap;
    let cell_h = ph + gap;
    let cols = cfg.columns.min(n) as u32;
    let rows = n.div_ceil(cfg.columns) as u32;
    let mut grid = RgbImage::from_pixel(cols * cell_w + gap, rows * cell_h + gap, Rgb([255; 3]));
    for (i, cell) in cells.iter().enumerate() {
        let (cx, cy) = (
            (i as u32 % cols) * cell_w + gap,
            (i as u32 / cols) * cell_h + gap,
        );
        for (k, p) in cell.iter().enumerate() {
            let ox = cx + k as u32 * (pw + 1);
            for y in 0..p.height() * z {
                for x in 0..p.width() * z {
                    grid.put_pixel(ox + x, cy + y, *p.get_pixel(x / z, y / z));
                }
            }
        }
    }
    Ok(grid)
}
