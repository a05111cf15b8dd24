//! Reliability diagrams as in the paper's Fig. 5 (after Guo et al. 2017): per confidence bin,
//! the accuracy as a bar, the gap between accuracy and the bin's mean confidence shaded, the
//! diagonal of perfect calibration, the ECE in the title, and underneath the share of pixels
//! per bin (log scale, since most pixels sit in the top bin). Several models side by side.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::{bold, draw_legend, font, register_fonts};
use crate::error::{GmmSegError, Result};
use crate::metrics::CalibrationMetrics;

/// Options of [`reliability_diagram`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReliabilityOptions {
    /// Draw the per-bin pixel-share panel under each diagram. Default true.
    pub counts: bool,
    /// Fraction of each panel's height given to the count panel. Default 0.28.
    pub counts_height: f64,
}

impl Default for ReliabilityOptions {
    fn default() -> Self {
        Self {
            counts: true,
            counts_height: 0.28,
        }
    }
}

const BAR: RGBColor = RGBColor(49, 99, 189);
const GAP: RGBColor = RGBColor(214, 39, 40);

/// Draws one reliability diagram per `(name, metrics)` pair, side by side.
pub fn reliability_diagram<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    models: &[(&str, &CalibrationMetrics)],
    options: &ReliabilityOptions,
) -> Result<()> {
    register_fonts();
    if models.is_empty() {
        return Err(GmmSegError::empty(
            "models",
            "a reliability diagram needs a model",
        ));
    }
    if !(0.05..=0.6).contains(&options.counts_height) {
        return Err(GmmSegError::config(
            "counts_height",
            format!("must be in [0.05, 0.6], got {}", options.counts_height),
        ));
    }
    let panels = area.split_evenly((1, models.len()));
    for (panel, (name, m)) in panels.iter().zip(models) {
        draw_panel(panel, name, m, options)?;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    name: &str,
    m: &CalibrationMetrics,
    options: &ReliabilityOptions,
) -> Result<()> {
    let (_, h) = area.dim_in_pixel();
    let (top, bottom) = if options.counts {
        let split = (h as f64 * (1.0 - options.counts_height)) as i32;
        let (t, b) = area.split_vertically(split);
        (t, Some(b))
    } else {
        (area.clone(), None)
    };
    let title = format!("{name}: ECE {:.2}%", 100.0 * m.ece);
    let mut chart = ChartBuilder::on(&top)
        .caption(title, bold(20))
        .margin(12)
        .margin_bottom(if bottom.is_some() { 2 } else { 12 })
        .x_label_area_size(if bottom.is_some() { 8 } else { 42 })
        .y_label_area_size(58)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
    let mut mesh = chart.configure_mesh();
    mesh.y_desc("Accuracy")
        .label_style(font(14))
        .axis_desc_style(font(16))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(215, 215, 215))
        .y_labels(6)
        .x_labels(6);
    if bottom.is_some() {
        mesh.x_label_formatter(&|_| String::new());
    } else {
        mesh.x_desc("Confidence");
    }
    mesh.draw()?;

    let filled: Vec<_> = m.bins.iter().filter(|b| b.count > 0).collect();
    chart
        .draw_series(filled.iter().map(|b| {
            let acc = b.accuracy.unwrap_or(0.0);
            Rectangle::new([(b.lower, 0.0), (b.upper, acc)], BAR.mix(0.85).filled())
        }))?
        .label("Accuracy")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], BAR.mix(0.85).filled()));
    chart.draw_series(filled.iter().map(|b| {
        Rectangle::new(
            [(b.lower, 0.0), (b.upper, b.accuracy.unwrap_or(0.0))],
            BLACK.stroke_width(1),
        )
    }))?;
    chart
        .draw_series(filled.iter().map(|b| {
            let (acc, conf) = (b.accuracy.unwrap_or(0.0), b.confidence.unwrap_or(0.0));
            Rectangle::new([(b.lower, acc), (b.upper, conf)], GAP.mix(0.35).filled())
        }))?
        .label("Gap to confidence")
        .legend(|(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], GAP.mix(0.35).filled()));
    chart.draw_series(filled.iter().map(|b| {
        let (acc, conf) = (b.accuracy.unwrap_or(0.0), b.confidence.unwrap_or(0.0));
        Rectangle::new([(b.lower, acc), (b.upper, conf)], GAP.stroke_width(1))
    }))?;
    chart
        .draw_series(std::iter::once(DashedPathElement::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            6,
            4,
            RGBColor(90, 90, 90).stroke_width(2),
        )))?
        .label("Perfect calibration")
        .legend(|(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 14, y)],
                RGBColor(90, 90, 90).stroke_width(2),
            )
        });
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;

    if let Some(bottom) = bottom {
        let total = m.pixels.max(1) as f64;
        let min_share = m
            .bins
            .iter()
            .filter(|b| b.count > 0)
            .map(|b| 100.0 * b.count as f64 / total)
            .fold(100.0f64, f64::min);
        let lo = 10f64.powf((min_share.log10() - 0.3).floor()).min(1.0);
        let mut counts = ChartBuilder::on(&bottom)
            .margin(12)
            .margin_top(4)
            .x_label_area_size(42)
            .y_label_area_size(58)
            .build_cartesian_2d(0f64..1f64, (lo..100f64).log_scale())?;
        counts
            .configure_mesh()
            .x_desc("Confidence")
            .y_desc("% pixels")
            .label_style(font(14))
            .axis_desc_style(font(16))
            .y_labels(4)
            .x_labels(6)
            .y_label_formatter(&|v| {
                if *v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v}")
                }
            })
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        counts.draw_series(m.bins.iter().filter(|b| b.count > 0).map(|b| {
            Rectangle::new(
                [(b.lower, lo), (b.upper, 100.0 * b.count as f64 / total)],
                RGBColor(120, 120, 120).filled(),
            )
        }))?;
        let n_text = format!("N = {}", m.pixels);
        counts.draw_series(std::iter::once(Text::new(
            n_text,
            (0.03, lo * (100.0 / lo).powf(0.8)),
            font(14),
        )))?;
    }
    Ok(())
}
