//! Reliability diagrams as in the paper's Fig. 5 (after Guo et al. 2017): per confidence bin,
//! the accuracy as a bar, the gap between accuracy and the bin's mean confidence shaded, the
//! diagonal of perfect calibration, the ECE in the title (with its image-bootstrap interval
//! when known), the image-bootstrap 95% interval of each bin's accuracy as a whisker, and
//! underneath the share of pixels per bin (log scale, since most pixels sit in the top bin).
//! Several models side by side, or in a grid; and a classwise grid
//! ([`classwise_reliability_grid`]) with one small panel per class.

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::{bold, draw_legend, font, register_fonts, HouseMesh};
use crate::error::{GmmSegError, Result};
use crate::metrics::CalibrationMetrics;

/// Options of [`reliability_diagram`].
#[derive(Clone, Debug, PartialEq)]
pub struct ReliabilityOptions {
    /// Draw the per-bin pixel-share panel under each diagram. Default true.
    pub counts: bool,
    /// Fraction of each panel's height given to the count panel. Default 0.28.
    pub counts_height: f64,
    /// Panels per row; `None` puts every model in one row. Default `None`.
    pub columns: Option<usize>,
}

impl Default for ReliabilityOptions {
    fn default() -> Self {
        Self {
            counts: true,
            counts_height: 0.28,
            columns: None,
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
    let cols = options
        .columns
        .unwrap_or(models.len())
        .clamp(1, models.len());
    let panels = area.split_evenly((models.len().div_ceil(cols), cols));
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
    let title = match m.ci95.get("ece") {
        Some([lo, hi]) => format!(
            "{name}: ECE {:.2}% [{:.2}, {:.2}]",
            100.0 * m.ece,
            100.0 * lo,
            100.0 * hi
        ),
        None => format!("{name}: ECE {:.2}%", 100.0 * m.ece),
    };
    let mut chart = ChartBuilder::on(&top)
        .caption(title, bold(20))
        .margin(12)
        .margin_bottom(if bottom.is_some() { 2 } else { 12 })
        .x_label_area_size(if bottom.is_some() { 8 } else { 42 })
        .y_label_area_size(58)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
    let mut mesh = chart.configure_mesh();
    mesh.y_desc("Accuracy")
        .house(14, 16)
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
    let band: Vec<(f64, [f64; 2])> = m
        .bins
        .iter()
        .zip(&m.bin_accuracy_ci95)
        .filter(|(b, _)| b.count > 0)
        .filter_map(|(b, ci)| ci.map(|ci| (0.5 * (b.lower + b.upper), ci)))
        .collect();
    if !band.is_empty() {
        let w = 0.25 / m.bins.len().max(1) as f64;
        chart
            .draw_series(band.iter().map(|&(x, [lo, hi])| {
                PathElement::new(
                    vec![
                        (x - w, lo),
                        (x + w, lo),
                        (x, lo),
                        (x, hi),
                        (x - w, hi),
                        (x + w, hi),
                    ],
                    BLACK.stroke_width(2),
                )
            }))?
            .label("Image-bootstrap 95%")
            .legend(|(x, y)| {
                PathElement::new(vec![(x + 7, y - 6), (x + 7, y + 6)], BLACK.stroke_width(2))
            });
    }
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
            .house(14, 16)
            .y_labels(4)
            .x_labels(6)
            .y_label_formatter(&|v| {
                if *v >= 1.0 {
                    format!("{v:.0}")
                } else {
                    format!("{v}")
                }
            })
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

/// Line colours of the models in the classwise grid.
const MODEL_COLOURS: [RGBColor; 4] = [
    RGBColor(49, 99, 189),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// Classwise reliability as small multiples: one panel per class (titled by `classes`),
/// each with one line per model through its non-empty bins (x: mean p_c in the bin, y: the
/// frequency of class c there) over the diagonal of perfect calibration.
pub fn classwise_reliability_grid<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    classes: &[&str],
    models: &[(&str, &[Vec<crate::metrics::ReliabilityBin>])],
) -> Result<()> {
    register_fonts();
    if classes.is_empty() || models.is_empty() {
        return Err(GmmSegError::empty(
            "classes",
            "a classwise reliability grid needs a class and a model",
        ));
    }
    if let Some((name, _)) = models.iter().find(|(_, b)| b.len() != classes.len()) {
        return Err(GmmSegError::shape(
            "models",
            format!(
                "{name} has bins for another number of classes than {}",
                classes.len()
            ),
        ));
    }
    let (title, body) = area.split_vertically(44);
    title.draw(&Text::new(
        "Classwise reliability: frequency of the class vs its mean probability, per bin",
        (12, 10),
        bold(20),
    ))?;
    let cols = (classes.len() as f64).sqrt().ceil() as usize;
    let panels = body.split_evenly((classes.len().div_ceil(cols), cols));
    for (c, (panel, class)) in panels.iter().zip(classes).enumerate() {
        let mut chart = ChartBuilder::on(panel)
            .caption(*class, bold(16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("mean p_c")
            .y_desc("frequency")
            .house(12, 13)
            .x_labels(3)
            .y_labels(3)
            .draw()?;
        chart.draw_series(std::iter::once(DashedPathElement::new(
            vec![(0.0, 0.0), (1.0, 1.0)],
            5,
            4,
            RGBColor(120, 120, 120).stroke_width(1),
        )))?;
        for (k, (name, bins)) in models.iter().enumerate() {
            let colour = MODEL_COLOURS[k % MODEL_COLOURS.len()];
            let pts: Vec<(f64, f64)> = bins[c]
                .iter()
                .filter(|b| b.count > 0)
                .filter_map(|b| Some((b.confidence?, b.accuracy?)))
                .collect();
            let series = chart.draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))?;
            if c == 0 {
                series.label(*name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], colour.stroke_width(2))
                });
            }
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))?;
        }
        if c == 0 {
            draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
        }
    }
    Ok(())
}
