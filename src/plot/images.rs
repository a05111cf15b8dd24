//! Pictures: anomaly heatmaps over an image (Fig. 4), segmentation overlays with a class
//! palette and legend (Fig. 3), and image / ground truth / prediction / anomaly grids.
//!
//! # Shapes
//! - images: (3, H, W) RGB in [0, 1] (values outside are clamped);
//! - label maps: (H, W) class ids, 255 = ignore (drawn black, as in the data previews);
//! - anomaly scores: (H, W), higher = more anomalous, NaN = not scored (drawn as the image).
//!
//! Images are drawn one rectangle per pixel (so that SVG output stays vector and crisp);
//! images larger than [`MAX_DRAWN_SIDE`] pixels per side are subsampled for display.

use ndarray::{Array2, Array3};
use ndarray_stats::QuantileExt;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{bold, font, register_fonts, rgb, swatch_legend};
use crate::data::palette::class_color;
use crate::data::IGNORE_LABEL;
use crate::error::{GmmSegError, Result};

/// Largest number of pixels per side drawn (bigger images are subsampled, nearest pixel).
pub const MAX_DRAWN_SIDE: usize = 192;

/// The inferno colour map (perceptually uniform, prints well in grey), `t` in [0, 1].
pub fn inferno(t: f64) -> RGBColor {
    const STOPS: [(f64, [f64; 3]); 6] = [
        (0.0, [0.0, 0.0, 4.0]),
        (0.2, [66.0, 10.0, 104.0]),
        (0.4, [147.0, 38.0, 103.0]),
        (0.6, [221.0, 81.0, 58.0]),
        (0.8, [252.0, 165.0, 10.0]),
        (1.0, [252.0, 255.0, 164.0]),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let k = STOPS.iter().position(|s| s.0 >= t).unwrap_or(5).max(1);
    let (t0, c0) = STOPS[k - 1];
    let (t1, c1) = STOPS[k];
    let f = (t - t0) / (t1 - t0);
    let mix = |i: usize| (c0[i] + f * (c1[i] - c0[i])).round() as u8;
    RGBColor(mix(0), mix(1), mix(2))
}

fn check_image(image: &Array3<f32>, hw: (usize, usize), what: &str) -> Result<()> {
    let s = image.shape();
    if s[0] != 3 || s[1] == 0 || s[2] == 0 {
        return Err(GmmSegError::shape(
            "image",
            format!("expected (3, H, W) with H, W > 0, got {s:?}"),
        ));
    }
    if (s[1], s[2]) != hw {
        return Err(GmmSegError::shape(
            format!("image/{what}"),
            format!("image is {}×{} but {what} is {}×{}", s[1], s[2], hw.0, hw.1),
        ));
    }
    Ok(())
}

fn pixel(image: &Array3<f32>, y: usize, x: usize) -> [f64; 3] {
    let c = |k: usize| {
        let v = image[[k, y, x]] as f64;
        if v.is_finite() {
            v.clamp(0.0, 1.0)
        } else {
            0.0
        }
    };
    [c(0), c(1), c(2)]
}

fn blend(base: [f64; 3], over: RGBColor, alpha: f64) -> RGBColor {
    let m = |b: f64, o: u8| ((1.0 - alpha) * b * 255.0 + alpha * o as f64).round() as u8;
    RGBColor(m(base[0], over.0), m(base[1], over.1), m(base[2], over.2))
}

/// Draws an (h, w) picture given per pixel by `color(y, x)`, centred and scaled to fit
/// `area` with its aspect ratio kept, with a thin frame.
fn draw_picture<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (h, w): (usize, usize),
    color: impl Fn(usize, usize) -> RGBColor,
) -> Result<()> {
    let (aw, ah) = area.dim_in_pixel();
    let scale = (aw as f64 / w as f64).min(ah as f64 / h as f64);
    let (ox, oy) = (
        (aw as f64 - scale * w as f64) / 2.0,
        (ah as f64 - scale * h as f64) / 2.0,
    );
    let step = h.max(w).div_ceil(MAX_DRAWN_SIDE).max(1);
    let pos = |i: usize, o: f64| (o + i as f64 * scale).round() as i32;
    for y in (0..h).step_by(step) {
        let (y0, y1) = (pos(y, oy), pos((y + step).min(h), oy));
        for x in (0..w).step_by(step) {
            let (x0, x1) = (pos(x, ox), pos((x + step).min(w), ox));
            // Edges shared with the neighbours: no hairline gaps in either backend.
            area.draw(&Rectangle::new(
                [(x0, y0), (x1.max(x0 + 1), y1.max(y0 + 1))],
                color(y, x).filled(),
            ))?;
        }
    }
    area.draw(&Rectangle::new(
        [(pos(0, ox), pos(0, oy)), (pos(w, ox) - 1, pos(h, oy) - 1)],
        RGBColor(60, 60, 60).stroke_width(1),
    ))?;
    Ok(())
}

/// The finite range of `scores` (ndarray-stats' NaN-skipping min/max); an error when no
/// score is finite.
fn score_range(scores: &Array2<f32>) -> Result<(f64, f64)> {
    let clean = scores.mapv(|v| if v.is_finite() { v } else { f32::NAN });
    let lo = *clean.min_skipnan();
    let hi = *clean.max_skipnan();
    if !lo.is_finite() || !hi.is_finite() {
        return Err(GmmSegError::empty(
            "anomaly scores",
            "no finite score to colour",
        ));
    }
    Ok((lo as f64, hi as f64))
}

/// Options of [`anomaly_heatmap`].
#[derive(Clone, Debug, PartialEq)]
pub struct HeatmapOptions {
    /// Title above the picture. Default "Anomaly score".
    pub title: String,
    /// Opacity of the heat map over the (grey) image, in [0, 1]. Default 0.65.
    pub alpha: f64,
    /// Colour range (low, high); `None` = the scores' finite min and max. Default `None`.
    pub range: Option<(f64, f64)>,
}

impl Default for HeatmapOptions {
    fn default() -> Self {
        Self {
            title: "Anomaly score".into(),
            alpha: 0.65,
            range: None,
        }
    }
}

fn heat_colors<'a>(
    image: &'a Array3<f32>,
    scores: &'a Array2<f32>,
    (lo, hi): (f64, f64),
    alpha: f64,
) -> impl Fn(usize, usize) -> RGBColor + 'a {
    let span = (hi - lo).max(1e-12);
    move |y, x| {
        let p = pixel(image, y, x);
        let g = 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
        let s = scores[[y, x]] as f64;
        if s.is_finite() {
            // Low scores let more of the image through, so the scene stays readable.
            let t = ((s - lo) / span).clamp(0.0, 1.0);
            blend([g, g, g], inferno(t), alpha * (0.35 + 0.65 * t))
        } else {
            let v = (g * 255.0).round() as u8;
            RGBColor(v, v, v)
        }
    }
}

fn colorbar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (lo, hi): (f64, f64),
    label: &str,
) -> Result<()> {
    let hi = if hi > lo { hi } else { lo + 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin_top(20)
        .margin_bottom(20)
        .margin_right(6)
        .y_label_area_size(0)
        .right_y_label_area_size(62)
        .build_cartesian_2d(0f64..1f64, lo..hi)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_y_mesh()
        .disable_x_axis()
        .y_labels(5)
        .y_desc(label)
        .label_style(font(13))
        .axis_desc_style(font(14))
        .draw()?;
    let n = 64;
    chart.draw_series((0..n).map(|i| {
        let (a, b) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
        Rectangle::new(
            [(0.0, lo + a * (hi - lo)), (1.0, lo + b * (hi - lo))],
            inferno((a + b) / 2.0).filled(),
        )
    }))?;
    Ok(())
}

/// An anomaly-score heat map over a grey version of the image, with a colour bar.
pub fn anomaly_heatmap<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    image: &Array3<f32>,
    scores: &Array2<f32>,
    options: &HeatmapOptions,
) -> Result<()> {
    register_fonts();
    check_image(image, scores.dim(), "scores")?;
    if !(0.0..=1.0).contains(&options.alpha) {
        return Err(GmmSegError::config(
            "alpha",
            format!("must be in [0, 1], got {}", options.alpha),
        ));
    }
    let range = match options.range {
        Some((lo, hi)) if lo.is_finite() && hi.is_finite() && hi > lo => (lo, hi),
        Some(r) => {
            return Err(GmmSegError::config(
                "range",
                format!("must be finite with low < high, got {r:?}"),
            ))
        }
        None => score_range(scores)?,
    };
    let inner = area.titled(&options.title, bold(18))?;
    let (aw, _) = inner.dim_in_pixel();
    let (main, bar) = inner.split_horizontally(aw.saturating_sub(100));
    let main = main.margin(6, 6, 10, 6);
    draw_picture(
        &main,
        scores.dim(),
        heat_colors(image, scores, range, options.alpha),
    )?;
    colorbar(&bar, range, "score")
}

/// Options of [`segmentation_overlay`].
#[derive(Clone, Debug, PartialEq)]
pub struct OverlayOptions {
    /// Title above the picture. Default "Segmentation".
    pub title: String,
    /// Opacity of the class colours over the image, in [0, 1]. Default 0.6.
    pub alpha: f64,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        Self {
            title: "Segmentation".into(),
            alpha: 0.6,
        }
    }
}

fn class_name(names: &[String], c: usize) -> String {
    if c == IGNORE_LABEL as usize {
        return "ignore".into();
    }
    names
        .get(c)
        .cloned()
        .unwrap_or_else(|| format!("class {c}"))
}

/// Classes present in the label maps, sorted; 255 (ignore) last, only if `with_ignore`.
fn present(maps: &[&Array2<u8>], with_ignore: bool) -> Vec<usize> {
    let mut seen = [false; 256];
    for m in maps {
        for &v in m.iter() {
            seen[v as usize] = true;
        }
    }
    let top = if with_ignore { 256 } else { 255 };
    (0..top).filter(|&c| seen[c]).collect()
}

/// A vertical or wrapped legend of colour swatches and class names.
fn class_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    classes: &[usize],
    names: &[String],
    columns: usize,
) -> Result<()> {
    let entries: Vec<(String, RGBColor)> = classes
        .iter()
        .map(|&c| (class_name(names, c), rgb(class_color(c))))
        .collect();
    swatch_legend(area, &entries, columns)
}

/// A label map (prediction or ground truth) blended over the image, with a legend of the
/// classes present. `class_names[c]` names class c (missing names print as "class c").
pub fn segmentation_overlay<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    image: &Array3<f32>,
    labels: &Array2<u8>,
    class_names: &[String],
    options: &OverlayOptions,
) -> Result<()> {
    register_fonts();
    check_image(image, labels.dim(), "labels")?;
    if !(0.0..=1.0).contains(&options.alpha) {
        return Err(GmmSegError::config(
            "alpha",
            format!("must be in [0, 1], got {}", options.alpha),
        ));
    }
    let inner = area.titled(&options.title, bold(18))?;
    let (aw, _) = inner.dim_in_pixel();
    let (main, legend) = inner.split_horizontally(aw.saturating_sub(150));
    let main = main.margin(6, 6, 10, 6);
    let alpha = options.alpha;
    draw_picture(&main, labels.dim(), |y, x| {
        let p = pixel(image, y, x);
        let l = labels[[y, x]];
        if l == IGNORE_LABEL {
            blend(p, RGBColor(0, 0, 0), 0.0)
        } else {
            blend(p, rgb(class_color(l as usize)), alpha)
        }
    })?;
    class_legend(&legend, &present(&[labels], false), class_names, 1)
}

/// One row of a [`sample_grid`].
#[derive(Clone, Copy, Debug)]
pub struct GridRow<'a> {
    /// (3, H, W) RGB in [0, 1].
    pub image: &'a Array3<f32>,
    /// (H, W) ground truth, 255 = ignore.
    pub label: &'a Array2<u8>,
    /// (H, W) predicted classes.
    pub prediction: &'a Array2<u8>,
    /// (H, W) anomaly scores, if the model gives them.
    pub anomaly: Option<&'a Array2<f32>>,
}

/// A grid with one row per sample and columns Image | Ground truth | Prediction | Anomaly
/// score (the last only when some row has scores), a shared class legend underneath. Each
/// anomaly map is coloured over its own finite range.
pub fn sample_grid<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    rows: &[GridRow],
    class_names: &[String],
) -> Result<()> {
    register_fonts();
    if rows.is_empty() {
        return Err(GmmSegError::empty(
            "rows",
            "a sample grid needs at least one sample",
        ));
    }
    for r in rows {
        check_image(r.image, r.label.dim(), "label")?;
        check_image(r.image, r.prediction.dim(), "prediction")?;
        if let Some(a) = r.anomaly {
            check_image(r.image, a.dim(), "anomaly")?;
        }
    }
    let with_anomaly = rows.iter().any(|r| r.anomaly.is_some());
    let mut headers = vec!["Image", "Ground truth", "Prediction"];
    if with_anomaly {
        headers.push("Anomaly score");
    }
    let maps: Vec<&Array2<u8>> = rows.iter().flat_map(|r| [r.label, r.prediction]).collect();
    let classes = present(&maps, true);
    let (aw, ah) = area.dim_in_pixel();
    let legend_cols = ((aw as usize) / 150).max(1);
    let legend_h = 16 + 24 * classes.len().div_ceil(legend_cols) as u32;
    let (body, legend) = area.split_vertically(ah.saturating_sub(legend_h));
    let (head, cells) = body.split_vertically(30);
    let cols = headers.len();
    for (h, cell) in headers.iter().zip(head.split_evenly((1, cols))) {
        let (w, _) = cell.dim_in_pixel();
        cell.draw(&Text::new(
            h.to_string(),
            (w as i32 / 2, 8),
            bold(16).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            )),
        ))?;
    }
    let grid = cells.split_evenly((rows.len(), cols));
    for (r, row) in rows.iter().enumerate() {
        let cell = |c: usize| grid[r * cols + c].margin(3, 3, 3, 3);
        draw_picture(&cell(0), row.label.dim(), |y, x| {
            let p = pixel(row.image, y, x);
            blend(p, BLACK, 0.0)
        })?;
        let label_color = |m: &Array2<u8>, y: usize, x: usize| rgb(class_color(m[[y, x]] as usize));
        draw_picture(&cell(1), row.label.dim(), |y, x| {
            label_color(row.label, y, x)
        })?;
        draw_picture(&cell(2), row.label.dim(), |y, x| {
            label_color(row.prediction, y, x)
        })?;
        if let Some(a) = row.anomaly {
            let range = score_range(a)?;
            draw_picture(&cell(3), a.dim(), heat_colors(row.image, a, range, 0.75))?;
        }
    }
    class_legend(&legend, &classes, class_names, legend_cols)
}
