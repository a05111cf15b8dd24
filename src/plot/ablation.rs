//! Ablation charts: a metric against a parameter with 95% confidence-interval error bars
//! (mIoU vs the number of components M, Table 5b) and grouped bars with CIs (EM variants,
//! online vs post-hoc, generative vs discriminative: Tables 3, 4, 5a). The intervals are
//! [`crate::metrics::Summary`] values over seeds. And paired differences A − B per seed
//! ([`paired_differences`]), the evidence behind a verdict.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    bold, draw_legend, font, register_fonts, series_color, swatch_legend, swatch_legend_height,
    tidy, HouseMesh,
};
use crate::error::{GmmSegError, Result};
use crate::metrics::Summary;

/// Title and axis names of a chart.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ChartLabels {
    /// Caption above the chart.
    pub title: String,
    /// Name of the x axis (the parameter, or nothing for categories).
    pub x: String,
    /// Name of the y axis (the metric, with its unit).
    pub y: String,
    /// The metric's natural range, e.g. (0, 1) for mIoU or AUROC: the axis never extends
    /// beyond it (plus room for the value labels), and confidence intervals reaching past it
    /// (two seeds give t = 12.7) are drawn clipped, without a cap at the clipped end.
    /// `None`: the axis follows the data.
    pub y_bounds: Option<(f64, f64)>,
}

/// Clamps an axis range to `bounds`, keeping a little headroom above the upper bound for
/// value labels.
fn clamp_range((lo, hi): (f64, f64), bounds: Option<(f64, f64)>) -> (f64, f64) {
    match bounds {
        Some((b0, b1)) if b1 > b0 => {
            let head = 0.06 * (b1 - b0);
            let lo = lo.max(b0);
            let hi = hi.min(b1 + head);
            if hi > lo {
                (lo, hi)
            } else {
                (b0, b1 + head)
            }
        }
        _ => (lo, hi),
    }
}

/// One line of [`metric_vs_parameter`]: a name and (parameter value, summary over seeds).
#[derive(Clone, Debug, PartialEq)]
pub struct CiSeries {
    /// Legend name.
    pub name: String,
    /// Points, in any order (drawn sorted by x).
    pub points: Vec<(f64, Summary)>,
}

fn y_range(values: impl Iterator<Item = (f64, f64)>) -> Result<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for (a, b) in values {
        lo = lo.min(a);
        hi = hi.max(b);
    }
    if !lo.is_finite() || !hi.is_finite() {
        return Err(GmmSegError::empty("series", "no finite value to draw"));
    }
    let pad = ((hi - lo) * 0.12).max(1e-3 * hi.abs().max(1.0));
    Ok((lo - pad, hi + pad))
}

type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// A vertical error bar from `lo` to `hi` at `x`, with caps `half` pixels wide, clipped to
/// the y range `(ymin, ymax)` (a clipped end gets no cap: the interval goes on).
#[allow(clippy::too_many_arguments)]
fn error_bar<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    x: f64,
    lo: f64,
    hi: f64,
    (ymin, ymax): (f64, f64),
    style: ShapeStyle,
    half: i32,
) -> Result<()> {
    let (a, b) = (lo.max(ymin), hi.min(ymax));
    if a > b {
        return Ok(());
    }
    chart.draw_series(std::iter::once(PathElement::new(
        vec![(x, a), (x, b)],
        style,
    )))?;
    let caps = [(lo, a), (hi, b)]
        .into_iter()
        .filter(|(v, c)| v == c)
        .map(|(_, c)| c);
    chart.draw_series(caps.map(|y| {
        EmptyElement::at((x, y)) + PathElement::new(vec![(-half, 0), (half, 0)], style)
    }))?;
    Ok(())
}

/// A mean as a bar label: `decimals` for fractions, fewer for big numbers.
fn value_label(v: f64, decimals: usize) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.decimals$}")
    }
}

/// Lines with markers and 95% CI error bars, one per series; the legend gives the number of
/// runs behind each point.
pub fn metric_vs_parameter<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[CiSeries],
    labels: &ChartLabels,
) -> Result<()> {
    register_fonts();
    if series.iter().all(|s| s.points.is_empty()) {
        return Err(GmmSegError::empty("series", "no point to draw"));
    }
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let (xmin, xmax) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
        (a.min(x), b.max(x))
    });
    if !xmin.is_finite() || !xmax.is_finite() {
        return Err(GmmSegError::input(
            "series",
            "parameter values must be finite",
        ));
    }
    let xpad = ((xmax - xmin) * 0.06).max(0.5);
    let (ylo, yhi) = clamp_range(
        y_range(
            series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| (p.1.lower(), p.1.upper()))),
        )?,
        labels.y_bounds,
    );
    let mut chart = ChartBuilder::on(area)
        .caption(&labels.title, bold(20))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(64)
        .build_cartesian_2d((xmin - xpad)..(xmax + xpad), ylo..yhi)?;
    chart
        .configure_mesh()
        .x_desc(&labels.x)
        .y_desc(&labels.y)
        .x_label_formatter(&tidy)
        .y_label_formatter(&tidy)
        .house(14, 16)
        .draw()?;
    let max_n = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1.n))
        .max()
        .unwrap_or(1);
    for (i, s) in series.iter().enumerate() {
        let c = series_color(i);
        let mut pts = s.points.clone();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let n_min = pts.iter().map(|p| p.1.n).min().unwrap_or(0);
        let legend = if n_min == max_n {
            format!("{} (n = {n_min})", s.name)
        } else {
            format!("{} (n ≥ {n_min})", s.name)
        };
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1.mean)),
                c.stroke_width(2),
            ))?
            .label(legend)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
        for p in pts.iter().filter(|p| p.1.ci95.is_some()) {
            error_bar(
                &mut chart,
                p.0,
                p.1.lower(),
                p.1.upper(),
                (ylo, yhi),
                c.stroke_width(2),
                6,
            )?;
        }
        chart.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.1.mean), 4, c.filled())),
        )?;
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// The most series whose bars [`grouped_bars`] labels with their means.
pub const MAX_LABELLED_SERIES: usize = 10;

/// Grouped bars: `categories` along x, one bar per series within each group, each with its
/// 95% CI error bar and its mean written above (up to [`MAX_LABELLED_SERIES`] series).
/// `series[k].1[g]` is series k in group g; `None` leaves a gap (a variant not run in that
/// group).
pub fn grouped_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    categories: &[&str],
    series: &[(&str, Vec<Option<Summary>>)],
    labels: &ChartLabels,
) -> Result<()> {
    register_fonts();
    let g = categories.len();
    if g == 0 || series.is_empty() {
        return Err(GmmSegError::empty("categories/series", "nothing to draw"));
    }
    if let Some((name, v)) = series.iter().find(|s| s.1.len() != g) {
        return Err(GmmSegError::shape(
            format!("series {name}"),
            format!("{} values for {g} categories", v.len()),
        ));
    }
    let all = series.iter().flat_map(|s| s.1.iter().flatten());
    let (lo, hi) = y_range(all.map(|s| (s.lower().min(0.0), s.upper())))?;
    let lo = if lo < 0.0
        && series
            .iter()
            .flat_map(|s| s.1.iter().flatten())
            .all(|s| s.lower() >= 0.0)
    {
        0.0
    } else {
        lo
    };
    let (lo, hi) = clamp_range((lo, hi), labels.y_bounds);
    // the legend goes under the chart, in as many columns as fit, so it never hides a bar
    let (aw, ah) = area.dim_in_pixel();
    let columns = ((aw as usize).saturating_sub(20) / 260).max(1);
    let legend_h = swatch_legend_height(series.len(), columns);
    let (area, legend_area) = area.split_vertically(ah.saturating_sub(legend_h));
    let area = &area;
    let mut chart = ChartBuilder::on(area)
        .caption(&labels.title, bold(20))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(64)
        .build_cartesian_2d(-0.5f64..(g as f64 - 0.5), lo..hi)?;
    let names: Vec<String> = categories.iter().map(|s| s.to_string()).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(g)
        .x_label_formatter(&|v| {
            let r = v.round();
            if (v - r).abs() < 1e-6 && r >= 0.0 && (r as usize) < names.len() {
                names[r as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc(&labels.x)
        .y_desc(&labels.y)
        .y_label_formatter(&tidy)
        .house(14, 16)
        .draw()?;
    let k = series.len() as f64;
    let width = 0.8 / k;
    for (si, (name, values)) in series.iter().enumerate() {
        let c = series_color(si);
        let x0 = |gi: usize| gi as f64 - 0.4 + si as f64 * width;
        let bars: Vec<(usize, Summary)> = values
            .iter()
            .enumerate()
            .filter_map(|(gi, v)| v.map(|s| (gi, s)))
            .collect();
        chart
            .draw_series(bars.iter().map(|(gi, s)| {
                Rectangle::new(
                    [
                        (x0(*gi) + 0.06 * width, lo),
                        (x0(*gi) + 0.94 * width, s.mean),
                    ],
                    c.mix(0.85).filled(),
                )
            }))?
            .label(*name);
        for (gi, s) in bars.iter().filter(|(_, s)| s.ci95.is_some()) {
            let xm = x0(*gi) + 0.5 * width;
            error_bar(
                &mut chart,
                xm,
                s.lower(),
                s.upper(),
                (lo, hi),
                BLACK.stroke_width(1),
                5,
            )?;
        }
        // the mean above its interval, or at the top of the axis when the interval is clipped;
        // past ten series the labels would overlap their neighbours', so the table has them
        if series.len() > MAX_LABELLED_SERIES {
            continue;
        }
        let top = hi - 0.005 * (hi - lo);
        chart.draw_series(bars.iter().map(|(gi, s)| {
            Text::new(
                value_label(s.mean, if series.len() > 5 { 2 } else { 3 }),
                (x0(*gi) + 0.5 * width, s.upper().min(top)),
                font(if series.len() > 6 { 10 } else { 12 })
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )
        }))?;
    }
    let entries: Vec<(String, RGBColor)> = series
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.to_string(), series_color(i)))
        .collect();
    swatch_legend(&legend_area, &entries, columns)?;
    Ok(())
}

/// One panel of [`paired_differences`]: a metric's per-seed differences A − B.
#[derive(Clone, Debug, PartialEq)]
pub struct DifferencePanel {
    /// Caption, e.g. `miou (val)`.
    pub name: String,
    /// The per-seed differences A − B.
    pub diffs: Vec<f64>,
    /// Half-width of the Student-t 95% CI of their mean (`None`: one seed).
    pub ci95: Option<f64>,
    /// Whether a lower value of the metric is better (the axis says which side is better).
    pub lower_is_better: bool,
}

/// Small multiples of paired differences, one panel per metric: every seed's difference
/// A − B as a dot, their mean with its 95% CI as a bar, and zero (no difference) as a dashed
/// line, so that a reader sees at once whether the interval clears zero and on which side.
/// Metrics of different units each get their own axis.
pub fn paired_differences<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    panels: &[DifferencePanel],
    columns: usize,
) -> Result<()> {
    register_fonts();
    if panels.is_empty() {
        return Err(GmmSegError::empty("panels", "no metric to draw"));
    }
    if let Some(p) = panels
        .iter()
        .find(|p| p.diffs.is_empty() || p.diffs.iter().any(|d| !d.is_finite()))
    {
        return Err(GmmSegError::input(
            format!("panel {}", p.name),
            "needs at least one finite difference",
        ));
    }
    let columns = columns.clamp(1, panels.len());
    let (_, h) = area.dim_in_pixel();
    let (head, body) = area.split_vertically(36.min(h / 4) as i32);
    head.draw(&Text::new(
        title.to_string(),
        (12, 8),
        bold(20).color(&BLACK),
    ))?;
    let cells = body.split_evenly((panels.len().div_ceil(columns), columns));
    for (cell, p) in cells.iter().zip(panels) {
        let n = p.diffs.len() as f64;
        let mean = p.diffs.iter().sum::<f64>() / n;
        let half = p.ci95.unwrap_or(0.0);
        let lo = p.diffs.iter().copied().fold(mean - half, f64::min).min(0.0);
        let hi = p.diffs.iter().copied().fold(mean + half, f64::max).max(0.0);
        let pad = ((hi - lo) * 0.12).max(1e-9 * hi.abs().max(lo.abs()).max(1.0));
        let better = if p.lower_is_better {
            "← idea better"
        } else {
            "idea better →"
        };
        let mut chart = ChartBuilder::on(cell)
            .caption(&p.name, bold(16))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(10)
            .build_cartesian_2d((lo - pad)..(hi + pad), 0f64..1f64)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_labels(5)
            .x_desc(format!("idea − baseline ({better})"))
            .label_style(font(13))
            .axis_desc_style(font(13))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(225, 225, 225))
            .draw()?;
        chart.draw_series(std::iter::once(DashedPathElement::new(
            vec![(0.0, 0.0), (0.0, 1.0)],
            4,
            3,
            RGBColor(120, 120, 120).stroke_width(1),
        )))?;
        let colour = series_color(0);
        if p.ci95.is_some() {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(mean - half, 0.5), (mean + half, 0.5)],
                colour.stroke_width(3),
            )))?;
        }
        chart.draw_series(std::iter::once(Circle::new(
            (mean, 0.5),
            6,
            colour.filled(),
        )))?;
        // the seeds' dots below the mean, spread vertically so that equal values stay visible
        let step = if p.diffs.len() > 1 {
            0.2 / (p.diffs.len() - 1) as f64
        } else {
            0.0
        };
        chart.draw_series(p.diffs.iter().enumerate().map(|(i, &d)| {
            Circle::new(
                (d, 0.15 + step * i as f64),
                4,
                RGBColor(90, 90, 90).stroke_width(1),
            )
        }))?;
    }
    Ok(())
}

/// One series of a [`scatter_log_x`] chart: a name and its (x, y) points.
#[derive(Clone, Debug, PartialEq)]
pub struct ScatterSeries {
    /// Legend name.
    pub name: String,
    /// Points; x must be > 0 (the axis is logarithmic).
    pub points: Vec<(f64, f64)>,
}

/// Points on a logarithmic x axis, one colour per series, with `highlight` points circled
/// (e.g. the trials a search chose): the tuning study's score against the learning rate.
///
/// # Errors
/// [`GmmSegError::Empty`] without a point; [`GmmSegError::InvalidInput`] for x ≤ 0 or
/// a non-finite value; drawing errors.
pub fn scatter_log_x<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    series: &[ScatterSeries],
    highlight: &[(f64, f64)],
    labels: &ChartLabels,
) -> Result<()> {
    register_fonts();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.clone()).collect();
    if all.is_empty() {
        return Err(GmmSegError::empty("series", "no point to draw"));
    }
    if all
        .iter()
        .chain(highlight)
        .any(|&(x, y)| !(x.is_finite() && x > 0.0 && y.is_finite()))
    {
        return Err(GmmSegError::input(
            "series",
            "points need a finite x > 0 and a finite y",
        ));
    }
    let (xmin, xmax) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (ylo, yhi) = clamp_range(y_range(all.iter().map(|p| (p.1, p.1)))?, labels.y_bounds);
    let mut chart = ChartBuilder::on(area)
        .caption(&labels.title, bold(20))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(64)
        .build_cartesian_2d((xmin / 1.25..xmax * 1.25).log_scale(), ylo..yhi)?;
    chart
        .configure_mesh()
        .x_desc(&labels.x)
        .y_desc(&labels.y)
        .x_labels(6)
        .x_label_formatter(&|v| format!("{v:.0e}"))
        .y_label_formatter(&tidy)
        .house(14, 16)
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let c = series_color(i);
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, c.filled())))?
            .label(&s.name)
            .legend(move |(x, y)| Circle::new((x + 9, y), 4, c.filled()));
    }
    if !highlight.is_empty() {
        chart
            .draw_series(
                highlight
                    .iter()
                    .map(|&p| Circle::new(p, 9, BLACK.stroke_width(2))),
            )?
            .label("chosen")
            .legend(|(x, y)| Circle::new((x + 9, y), 7, BLACK.stroke_width(2)));
    }
    // scores rise with the rate in a search: the upper left is where points are fewest
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    Ok(())
}
