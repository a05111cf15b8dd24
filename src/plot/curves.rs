//! ROC and precision-recall curves of several anomaly scores on one chart each, with AUROC /
//! AP (and FPR95) in the legend, as anomaly-segmentation papers report them.

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::{bold, draw_legend, register_fonts, series_color, HouseMesh};
use crate::error::{GmmSegError, Result};
use crate::metrics::{AnomalyCurves, AnomalyMetrics};

/// One anomaly score's results: a name for the legend, its metrics and its curves
/// (from [`AnomalyAccumulator::finish_with_curves`](crate::metrics::AnomalyAccumulator::finish_with_curves)).
#[derive(Clone, Copy, Debug)]
pub struct ScoredMethod<'a> {
    /// Legend name, e.g. "GMMSeg" or "MSP".
    pub name: &'a str,
    /// AUROC, AP and FPR95.
    pub metrics: &'a AnomalyMetrics,
    /// The thinned curves.
    pub curves: &'a AnomalyCurves,
}

fn check(methods: &[ScoredMethod]) -> Result<()> {
    if methods.is_empty() {
        return Err(GmmSegError::empty(
            "methods",
            "a curve chart needs at least one method",
        ));
    }
    for m in methods {
        let n = m.curves.fpr.len();
        if n < 2 || m.curves.tpr.len() != n || m.curves.precision.len() != n {
            return Err(GmmSegError::shape(
                format!("curves of {}", m.name),
                "fpr, tpr and precision must have the same length ≥ 2",
            ));
        }
    }
    Ok(())
}

/// A checked chart over [0, 1] × [0, `y_max`] with its title and axis titles, in the
/// house style: the frame both curve charts share.
fn unit_chart<'a, DB: DrawingBackend>(
    area: &'a DrawingArea<DB, Shift>,
    methods: &[ScoredMethod],
    title: &str,
    y_max: f64,
    (x_desc, y_desc): (&str, &str),
) -> Result<ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>> {
    register_fonts();
    check(methods)?;
    let mut chart = ChartBuilder::on(area)
        .caption(title, bold(20))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..1f64, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .house(14, 16)
        .draw()?;
    Ok(chart)
}

/// ROC curves (TPR vs FPR) with "name (AUROC xx.xx, FPR95 xx.xx)" legends.
pub fn roc_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    methods: &[ScoredMethod],
) -> Result<()> {
    let mut chart = unit_chart(
        area,
        methods,
        "ROC curve",
        1.0,
        ("False-positive rate", "True-positive rate"),
    )?;
    chart.draw_series(std::iter::once(DashedPathElement::new(
        vec![(0.0, 0.0), (1.0, 1.0)],
        5,
        4,
        RGBColor(150, 150, 150).stroke_width(1),
    )))?;
    for (i, m) in methods.iter().enumerate() {
        let c = series_color(i);
        chart
            .draw_series(LineSeries::new(
                m.curves
                    .fpr
                    .iter()
                    .copied()
                    .zip(m.curves.tpr.iter().copied()),
                c.stroke_width(2),
            ))?
            .label(format!(
                "{} (AUROC {:.2}, FPR95 {:.2})",
                m.name,
                100.0 * m.metrics.auroc,
                100.0 * m.metrics.fpr95
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    Ok(())
}

/// Precision-recall curves with "name (AP xx.xx)" legends and the chance level (the anomaly
/// pixel rate) as a dashed line.
pub fn pr_chart<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    methods: &[ScoredMethod],
) -> Result<()> {
    let mut chart = unit_chart(
        area,
        methods,
        "Precision-recall curve",
        1.02,
        ("Recall", "Precision"),
    )?;
    let m0 = methods[0].metrics;
    let rate = m0.positives as f64 / (m0.positives + m0.negatives).max(1) as f64;
    chart
        .draw_series(std::iter::once(DashedPathElement::new(
            vec![(0.0, rate), (1.0, rate)],
            5,
            4,
            RGBColor(150, 150, 150).stroke_width(1),
        )))?
        .label(format!("chance ({:.2})", 100.0 * rate))
        .legend(|(x, y)| {
            PathElement::new(
                vec![(x, y), (x + 18, y)],
                RGBColor(150, 150, 150).stroke_width(1),
            )
        });
    for (i, m) in methods.iter().enumerate() {
        let c = series_color(i);
        // Step-wise, as AP integrates it: precision is held constant until the next recall.
        let mut pts = Vec::with_capacity(2 * m.curves.tpr.len());
        for k in 1..m.curves.tpr.len() {
            pts.push((m.curves.tpr[k - 1], m.curves.precision[k]));
            pts.push((m.curves.tpr[k], m.curves.precision[k]));
        }
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))?
            .label(format!("{} (AP {:.2})", m.name, 100.0 * m.metrics.ap))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(3)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}

/// ROC (left) and precision-recall (right) side by side.
pub fn roc_pr_curves<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    methods: &[ScoredMethod],
) -> Result<()> {
    let panels = area.split_evenly((1, 2));
    roc_chart(&panels[0], methods)?;
    pr_chart(&panels[1], methods)
}
