//! A picture of a fitted class-conditional GMM: the features of a few classes projected on
//! their first two principal components, each mixture component's mean and its 1σ (solid)
//! and 2σ (dashed) ellipses — the projection of N(μ_cm, diag(σ²_cm)) onto the PCA plane.
//!
//! PCA is computed by power iteration with deflation on the D×D covariance of the shown
//! classes' features (D = 64 in the paper: no linear-algebra crate needed).

use ndarray::{Array1, Array2, ArrayView2, ArrayView3, Axis};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::{bold, draw_legend, font, register_fonts, rgb, tidy};
use crate::data::palette::class_color;
use crate::error::{GmmSegError, Result};

/// The data behind [`gmm_pca_view`].
///
/// # Shapes
/// - `features`: (N, D); `labels`: (N,) class ids (others, e.g. 255, are skipped);
/// - `means`, `variances`: (C, M, D), diagonal variances σ² > 0.
#[derive(Clone, Copy, Debug)]
pub struct GmmViewData<'a> {
    /// Pixel features.
    pub features: ArrayView2<'a, f32>,
    /// Class of each feature row.
    pub labels: &'a [u8],
    /// Component means μ_cm.
    pub means: ArrayView3<'a, f32>,
    /// Component variances σ²_cm.
    pub variances: ArrayView3<'a, f32>,
    /// The classes to show (a few: each brings M ellipses).
    pub classes: &'a [usize],
    /// Names of all classes (missing names print as "class c").
    pub class_names: &'a [String],
}

/// Options of [`gmm_pca_view`].
#[derive(Clone, Debug, PartialEq)]
pub struct GmmViewOptions {
    /// Title. Default "GMM components in PCA space".
    pub title: String,
    /// Most feature points drawn (evenly subsampled). Default 1500.
    pub max_points: usize,
}

impl Default for GmmViewOptions {
    fn default() -> Self {
        Self {
            title: "GMM components in PCA space".into(),
            max_points: 1500,
        }
    }
}

/// A 2-D PCA: the centre, the two leading unit directions (rows of `basis`, shape (2, D))
/// and the fraction of variance each explains.
#[derive(Clone, Debug, PartialEq)]
pub struct Pca2 {
    /// Mean of the data, (D,).
    pub center: Array1<f64>,
    /// Principal directions, (2, D), orthonormal rows.
    pub basis: Array2<f64>,
    /// Explained-variance ratio of each direction.
    pub explained: [f64; 2],
}

impl Pca2 {
    /// Projects a point (D,) onto the plane.
    pub fn project(&self, x: &[f64]) -> (f64, f64) {
        let mut out = [0.0; 2];
        for (k, o) in out.iter_mut().enumerate() {
            *o = self
                .basis
                .row(k)
                .iter()
                .zip(x.iter().zip(self.center.iter()))
                .map(|(b, (x, c))| b * (x - c))
                .sum();
        }
        (out[0], out[1])
    }
}

/// Fits a 2-D PCA to the rows of `x` (N ≥ 2, D ≥ 2). Errors when the data has (almost) no
/// variance in two directions.
pub fn pca_2d(x: ArrayView2<f32>) -> Result<Pca2> {
    let (n, d) = x.dim();
    if n < 2 || d < 2 {
        return Err(GmmSegError::shape(
            "features",
            format!("PCA needs at least 2 rows and 2 columns, got ({n}, {d})"),
        ));
    }
    if let Some(i) = x.iter().position(|v| !v.is_finite()) {
        return Err(GmmSegError::NonFinite {
            what: "features".into(),
            index: i,
        });
    }
    let xf = x.mapv(|v| v as f64);
    let center = xf.mean_axis(Axis(0)).expect("n ≥ 2");
    let xc = &xf - &center;
    let mut cov = xc.t().dot(&xc) / (n - 1) as f64;
    let trace: f64 = cov.diag().sum();
    if trace <= 0.0 {
        return Err(GmmSegError::input(
            "features",
            "all rows are identical; no PCA plane",
        ));
    }
    let mut basis = Array2::zeros((2, d));
    let mut explained = [0.0; 2];
    for (k, share) in explained.iter_mut().enumerate() {
        // Deterministic start, not orthogonal to any axis in general.
        let mut v = Array1::from_shape_fn(d, |i| 1.0 + 0.37 * ((i * 7 + k * 3) % 11) as f64);
        v /= v.dot(&v).sqrt();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let w = cov.dot(&v);
            let norm = w.dot(&w).sqrt();
            if norm <= 1e-300 {
                break;
            }
            let next = &w / norm;
            let delta = (&next - &v).mapv(f64::abs).sum();
            v = next;
            lambda = norm;
            if delta < 1e-12 {
                break;
            }
        }
        if lambda <= 1e-12 * trace {
            return Err(GmmSegError::input(
                "features",
                "the data varies along fewer than two directions; no PCA plane",
            ));
        }
        *share = lambda / trace;
        basis.row_mut(k).assign(&v);
        // Deflate.
        let outer = v
            .view()
            .insert_axis(Axis(1))
            .dot(&v.view().insert_axis(Axis(0)));
        cov = cov - outer * lambda;
    }
    Ok(Pca2 {
        center,
        basis,
        explained,
    })
}

/// One drawn component: class, projected mean, 1σ and 2σ outlines.
type Component = (usize, (f64, f64), Vec<(f64, f64)>, Vec<(f64, f64)>);

/// Points of the ellipse {m + k·S^{1/2}u : |u| = 1} for a 2×2 covariance S.
fn ellipse(m: (f64, f64), s: [[f64; 2]; 2], k: f64) -> Vec<(f64, f64)> {
    let (a, b, c) = (s[0][0], s[0][1], s[1][1]);
    let tr = a + c;
    let det = a * c - b * b;
    let disc = (tr * tr / 4.0 - det).max(0.0).sqrt();
    let (l1, l2) = ((tr / 2.0 + disc).max(0.0), (tr / 2.0 - disc).max(0.0));
    let theta = if b.abs() > 1e-300 {
        (l1 - a).atan2(b)
    } else if a >= c {
        0.0
    } else {
        std::f64::consts::FRAC_PI_2
    };
    let (ct, st) = (theta.cos(), theta.sin());
    (0..=72)
        .map(|i| {
            let t = i as f64 / 72.0 * std::f64::consts::TAU;
            let (u, v) = (k * l1.sqrt() * t.cos(), k * l2.sqrt() * t.sin());
            (m.0 + ct * u - st * v, m.1 + st * u + ct * v)
        })
        .collect()
}

/// Draws the PCA view: feature points (faint), component means (crosses), 1σ and 2σ
/// ellipses, in each class's palette colour, with a legend of class names.
pub fn gmm_pca_view<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    data: &GmmViewData,
    options: &GmmViewOptions,
) -> Result<()> {
    register_fonts();
    let (n, d) = data.features.dim();
    let (c, m, dm) = data.means.dim();
    if data.labels.len() != n {
        return Err(GmmSegError::shape(
            "features/labels",
            format!("{n} feature rows but {} labels", data.labels.len()),
        ));
    }
    if dm != d || data.variances.dim() != (c, m, d) {
        return Err(GmmSegError::shape(
            "means/variances",
            format!(
                "means {:?} and variances {:?} must both be (C, M, D = {d})",
                data.means.dim(),
                data.variances.dim()
            ),
        ));
    }
    if data.classes.is_empty() {
        return Err(GmmSegError::empty(
            "classes",
            "choose at least one class to show",
        ));
    }
    if let Some(&bad) = data.classes.iter().find(|&&k| k >= c) {
        return Err(GmmSegError::LabelOutOfRange {
            what: "classes".into(),
            label: bad as i64,
            index: 0,
            classes: c,
        });
    }
    if let Some(i) = data
        .variances
        .iter()
        .position(|v| !(v.is_finite() && *v > 0.0))
    {
        return Err(GmmSegError::input(
            "variances",
            format!("must be finite and > 0; flat index {i} is not"),
        ));
    }
    let rows: Vec<usize> = (0..n)
        .filter(|&i| data.classes.contains(&(data.labels[i] as usize)))
        .collect();
    let sel = data.features.select(Axis(0), &rows);
    let pca = pca_2d(sel.view())?;

    let stride = rows.len().div_ceil(options.max_points.max(1)).max(1);
    let mut points: Vec<(usize, (f64, f64))> = Vec::new();
    for (k, &i) in rows.iter().enumerate().step_by(stride) {
        let x: Vec<f64> = sel.row(k).iter().map(|&v| v as f64).collect();
        points.push((data.labels[i] as usize, pca.project(&x)));
    }
    let mut shapes: Vec<Component> = Vec::new();
    for &cls in data.classes {
        for comp in 0..m {
            let mu: Vec<f64> = data
                .means
                .slice(ndarray::s![cls, comp, ..])
                .iter()
                .map(|&v| v as f64)
                .collect();
            let var = data.variances.slice(ndarray::s![cls, comp, ..]);
            let mut s = [[0.0; 2]; 2];
            for (a, row) in s.iter_mut().enumerate() {
                for (b, cell) in row.iter_mut().enumerate() {
                    *cell = (0..d)
                        .map(|j| pca.basis[[a, j]] * pca.basis[[b, j]] * var[j] as f64)
                        .sum();
                }
            }
            let p = pca.project(&mu);
            shapes.push((cls, p, ellipse(p, s, 1.0), ellipse(p, s, 2.0)));
        }
    }
    let all = points
        .iter()
        .map(|p| p.1)
        .chain(shapes.iter().flat_map(|s| s.3.iter().copied()));
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    let (px, py) = ((x1 - x0).max(1e-9) * 0.05, (y1 - y0).max(1e-9) * 0.05);
    let mut chart = ChartBuilder::on(area)
        .caption(&options.title, bold(20))
        .margin(14)
        .x_label_area_size(46)
        .y_label_area_size(64)
        .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))?;
    chart
        .configure_mesh()
        .x_desc(format!(
            "PC 1 ({:.0}% of variance)",
            100.0 * pca.explained[0]
        ))
        .y_desc(format!(
            "PC 2 ({:.0}% of variance)",
            100.0 * pca.explained[1]
        ))
        .x_label_formatter(&tidy)
        .y_label_formatter(&tidy)
        .label_style(font(14))
        .axis_desc_style(font(16))
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(220, 220, 220))
        .draw()?;
    chart.draw_series(
        points
            .iter()
            .map(|(cls, p)| Circle::new(*p, 2, rgb(class_color(*cls)).mix(0.35).filled())),
    )?;
    for &cls in data.classes {
        let col = rgb(class_color(cls));
        let name = data
            .class_names
            .get(cls)
            .cloned()
            .unwrap_or_else(|| format!("class {cls}"));
        let mine: Vec<_> = shapes.iter().filter(|s| s.0 == cls).collect();
        chart
            .draw_series(
                mine.iter()
                    .map(|s| PathElement::new(s.2.clone(), col.stroke_width(2))),
            )?
            .label(format!("{name} ({m} components)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(3)));
        chart.draw_series(
            mine.iter()
                .map(|s| DashedPathElement::new(s.3.clone(), 5, 4, col.stroke_width(1))),
        )?;
        chart.draw_series(
            mine.iter()
                .map(|s| Cross::new(s.1, 6, BLACK.stroke_width(2))),
        )?;
    }
    chart
        .draw_series(std::iter::once(PathElement::new(vec![], BLACK)))?
        .label("mean ×, 1σ solid, 2σ dashed")
        .legend(|(x, y)| Cross::new((x + 9, y), 5, BLACK.stroke_width(2)));
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight)?;
    Ok(())
}
