//! Figures of the paper and its ablations, drawn with plotters.
//!
//! Every figure function takes a plotters [`DrawingArea`] generic over the backend, so the
//! same call writes a PNG in a test, an SVG from the command line and an inline SVG in an
//! evcxr notebook:
//!
//! ```
//! use gmmseg::metrics::calibration_metrics;
//! use gmmseg::plot::reliability::{reliability_diagram, ReliabilityOptions};
//!
//! let probs = ndarray::array![[0.9f32, 0.1], [0.3, 0.7], [0.6, 0.4]];
//! let m = calibration_metrics(probs.view(), &[0u8, 1, 1], 10)?;
//! let models = [("softmax", &m)];
//! // A notebook cell ending in this expression shows the figure inline (errors are
//! // returned, not panics); with the `notebook` feature `plotters::evcxr::evcxr_figure`
//! // works too.
//! let cell = gmmseg::plot::inline((600, 320), |area| {
//!     reliability_diagram(area, &models, &ReliabilityOptions::default())
//! })?;
//! assert!(cell.0.contains("ECE"));
//! // The same call writes `<stem>.svg` and `<stem>.png`.
//! let stem = std::env::temp_dir().join("gmmseg-doc-reliability");
//! gmmseg::plot::save_svg_and_png(&stem, (600, 320), |area| {
//!     reliability_diagram(area, &models, &ReliabilityOptions::default())
//! })?;
//! # Ok::<(), gmmseg::GmmSegError>(())
//! ```
//!
//! - [`reliability`]: reliability diagrams (Fig. 5), several models side by side.
//! - [`curves`]: ROC and precision-recall curves of several anomaly scores.
//! - [`images`]: anomaly heatmaps (Fig. 4), segmentation overlays (Fig. 3) and
//!   image / label / prediction / anomaly grids.
//! - [`ablation`]: metric vs parameter with 95% CI error bars, grouped bars with CIs.
//! - [`gmm_view`]: 2-D PCA view of a fitted class-conditional GMM with 1σ / 2σ ellipses.
//!
//! Text in bitmaps needs a font; DejaVu Sans ships in `src/plot/fonts/` (Bitstream Vera
//! licence, see `fonts/LICENSE.md`) and is registered once, by [`register_fonts`], before
//! any figure is drawn.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

use crate::error::{GmmSegError, Result};

pub mod ablation;
pub mod curves;
pub mod gmm_view;
pub mod images;
pub mod reliability;

/// The font family every figure uses (registered by [`register_fonts`]).
pub const FONT: &str = "sans-serif";

static REGISTER: Once = Once::new();

/// Registers the bundled DejaVu Sans (regular and bold) as plotters' `sans-serif`, once per
/// process. Every figure function calls it; call it yourself only when drawing text with
/// plotters directly.
pub fn register_fonts() {
    REGISTER.call_once(|| {
        let regular: &'static [u8] = include_bytes!("fonts/DejaVuSans.ttf");
        let bold: &'static [u8] = include_bytes!("fonts/DejaVuSans-Bold.ttf");
        // The bytes are a valid font compiled into the binary; failure is impossible unless
        // the file in the repository is corrupted, which the plot tests would catch.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, regular);
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, bold);
    });
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for GmmSegError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        GmmSegError::Plot {
            what: "drawing area".into(),
            detail: e.to_string(),
        }
    }
}

/// The error of an [`AnyBackend`]: the wrapped backend's error, boxed.
#[derive(Debug)]
pub struct AnyBackendError(Box<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for AnyBackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for AnyBackendError {}

/// A backend that is either SVG or bitmap, so that one closure (not generic itself) can draw
/// the same figure into both files in [`save_svg_and_png`].
pub enum AnyBackend<'a> {
    /// Vector output.
    Svg(SVGBackend<'a>),
    /// Raster output (PNG).
    Bitmap(BitMapBackend<'a>),
}

fn wrap<E: std::error::Error + Send + Sync + 'static>(
    e: DrawingErrorKind<E>,
) -> DrawingErrorKind<AnyBackendError> {
    match e {
        DrawingErrorKind::DrawingError(e) => {
            DrawingErrorKind::DrawingError(AnyBackendError(Box::new(e)))
        }
        DrawingErrorKind::FontError(f) => DrawingErrorKind::FontError(f),
    }
}

macro_rules! delegate {
    ($self:ident, $b:ident => $call:expr) => {
        match $self {
            AnyBackend::Svg($b) => $call.map_err(wrap),
            AnyBackend::Bitmap($b) => $call.map_err(wrap),
        }
    };
}

impl DrawingBackend for AnyBackend<'_> {
    type ErrorType = AnyBackendError;

    fn get_size(&self) -> (u32, u32) {
        match self {
            AnyBackend::Svg(b) => b.get_size(),
            AnyBackend::Bitmap(b) => b.get_size(),
        }
    }
    fn ensure_prepared(&mut self) -> std::result::Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.ensure_prepared())
    }
    fn present(&mut self) -> std::result::Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.present())
    }
    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> std::result::Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_pixel(point, color))
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> std::result::Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_line(from, to, style))
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> std::result::Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_rect(upper_left, bottom_right, style, fill))
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> std::result::Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_path(path, style))
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> std::result::Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_circle(center, radius, style, fill))
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> std::result::Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.fill_polygon(vert, style))
    }
    fn draw_text<T: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &T,
        pos: BackendCoord,
    ) -> std::result::Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.draw_text(text, style, pos))
    }
    fn estimate_text_size<T: BackendTextStyle>(
        &self,
        text: &str,
        style: &T,
    ) -> std::result::Result<(u32, u32), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.estimate_text_size(text, style))
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> std::result::Result<(), DrawingErrorKind<AnyBackendError>> {
        delegate!(self, b => b.blit_bitmap(pos, size, src))
    }
}

fn check_size(size: (u32, u32)) -> Result<()> {
    if size.0 < 50 || size.1 < 50 || size.0 > 10_000 || size.1 > 10_000 {
        return Err(GmmSegError::config(
            "size",
            format!("figure size must be within 50..=10000 pixels per side, got {size:?}"),
        ));
    }
    Ok(())
}

/// Draws one figure twice, into `<stem>.svg` and `<stem>.png` (size in pixels), creating the
/// parent folder. `draw` receives a white-filled drawing area.
pub fn save_svg_and_png<F>(stem: impl AsRef<Path>, size: (u32, u32), draw: F) -> Result<()>
where
    F: Fn(&DrawingArea<AnyBackend<'_>, Shift>) -> Result<()>,
{
    check_size(size)?;
    register_fonts();
    let stem = stem.as_ref();
    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| GmmSegError::io(parent, e))?;
    }
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    {
        let root = AnyBackend::Svg(SVGBackend::new(&svg, size)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present().map_err(|e| GmmSegError::Plot {
            what: svg.display().to_string(),
            detail: e.to_string(),
        })?;
    }
    {
        let root = AnyBackend::Bitmap(BitMapBackend::new(&png, size)).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present().map_err(|e| GmmSegError::Plot {
            what: png.display().to_string(),
            detail: e.to_string(),
        })?;
    }
    Ok(())
}

/// Draws one figure into an SVG string (for notebooks without the `notebook` feature, or for
/// embedding in HTML reports).
pub fn to_svg_string<F>(size: (u32, u32), draw: F) -> Result<String>
where
    F: Fn(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
{
    check_size(size)?;
    register_fonts();
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(buf)
}

/// An SVG figure that an evcxr notebook shows inline (evcxr calls `evcxr_display` on the
/// value of a cell), with or without the crate's `notebook` feature.
#[derive(Clone, Debug, PartialEq)]
pub struct InlineSvg(pub String);

impl InlineSvg {
    /// Prints the figure in evcxr's rich-output protocol.
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n<div>{}</div>\nEVCXR_END_CONTENT",
            self.0
        );
    }

    /// Writes the SVG to a file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        std::fs::write(path, &self.0).map_err(|e| GmmSegError::io(path, e))
    }
}

/// Draws one figure for a notebook cell: `gmmseg::plot::inline((900, 450), |a| ...)?` as the
/// cell's last expression displays it. Unlike `plotters::evcxr::evcxr_figure`, a drawing
/// error comes back as an error instead of a panic.
pub fn inline<F>(size: (u32, u32), draw: F) -> Result<InlineSvg>
where
    F: Fn(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>,
{
    to_svg_string(size, draw).map(InlineSvg)
}

/// A raster figure (PNG) that an evcxr notebook shows inline: images, label maps, heat maps
/// and overlays, which as SVG would be one rectangle per pixel (megabytes per figure).
#[derive(Clone, Debug, PartialEq)]
pub struct InlinePng {
    /// The encoded PNG file.
    pub png: Vec<u8>,
}

impl InlinePng {
    /// The PNG as base64, as evcxr's `image/png` content and data URIs want it.
    pub fn base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(&self.png)
    }

    /// Prints the figure in evcxr's rich-output protocol (`image/png`).
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT image/png\n{}\nEVCXR_END_CONTENT",
            self.base64()
        );
    }

    /// An HTML `<img>` element holding the PNG, for pages that mix text and figures.
    pub fn html(&self) -> String {
        format!(
            "<img src=\"data:image/png;base64,{}\" style=\"max-width:100%\"/>",
            self.base64()
        )
    }

    /// Writes the PNG to a file (atomically).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        use std::io::Write;
        let path = path.as_ref();
        crate::io::atomic::write_atomically(path, |w| {
            w.write_all(&self.png).map_err(|e| GmmSegError::io(path, e))
        })
    }
}

/// Draws one raster figure for a notebook cell (images, heat maps, overlays): like
/// [`inline`], but rendered to a PNG so that a grid of images stays a few hundred kilobytes.
pub fn inline_png<F>(size: (u32, u32), draw: F) -> Result<InlinePng>
where
    F: Fn(&DrawingArea<BitMapBackend<'_>, Shift>) -> Result<()>,
{
    check_size(size)?;
    register_fonts();
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    let img = image::RgbImage::from_raw(size.0, size.1, rgb).ok_or_else(|| GmmSegError::Plot {
        what: "inline PNG".into(),
        detail: "buffer size does not match the figure size".into(),
    })?;
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| GmmSegError::Plot {
            what: "inline PNG".into(),
            detail: e.to_string(),
        })?;
    Ok(InlinePng { png })
}

/// Converts a palette colour to plotters' type.
pub(crate) fn rgb(c: [u8; 3]) -> RGBColor {
    RGBColor(c[0], c[1], c[2])
}

/// Colours for series (curves, bars) of different models: colour-blind-safe (Okabe–Ito).
/// The last eight extend it for the studies with up to sixteen variants (the one-knob
/// flavours study has nine, the `gap` study fourteen).
pub const SERIES_COLORS: [RGBColor; 16] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(120, 120, 120),
    RGBColor(240, 228, 66),
    RGBColor(0, 0, 0),
    RGBColor(140, 30, 30),
    RGBColor(90, 60, 150),
    RGBColor(110, 130, 40),
    RGBColor(0, 80, 80),
    RGBColor(255, 150, 150),
    RGBColor(160, 110, 60),
    RGBColor(170, 200, 255),
];

/// The colour of the `i`-th series (cycling).
pub fn series_color(i: usize) -> RGBColor {
    SERIES_COLORS[i % SERIES_COLORS.len()]
}

/// An axis tick label without noise: "2" not "2.0", "0.25" not "0.250".
pub(crate) fn tidy(v: &f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e9 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Text style of a given size in the figure font.
pub(crate) fn font(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().into()
}

/// Bold text style of a given size in the figure font.
pub(crate) fn bold(size: u32) -> TextStyle<'static> {
    (FONT, size).into_font().style(FontStyle::Bold).into()
}

/// The house look of a chart's mesh — tick labels of `label_px`, axis titles of `axis_px`,
/// light grey major lines and no minor ones — in one place, so that every figure agrees.
pub(crate) trait HouseMesh {
    /// Applies the house look; chains like the mesh's own setters.
    fn house(&mut self, label_px: u32, axis_px: u32) -> &mut Self;
}

impl<X, Y, DB> HouseMesh for plotters::chart::MeshStyle<'_, '_, X, Y, DB>
where
    X: plotters::coord::ranged1d::Ranged,
    Y: plotters::coord::ranged1d::Ranged,
    DB: DrawingBackend,
{
    fn house(&mut self, label_px: u32, axis_px: u32) -> &mut Self {
        self.label_style(font(label_px))
            .axis_desc_style(font(axis_px))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 215, 215))
    }
}

/// A legend of colour swatches and names in `columns` columns, rows 24 px apart: under a
/// chart with many series (so that it never covers the data) and beside label maps.
pub(crate) fn swatch_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor)],
    columns: usize,
) -> Result<()> {
    let (aw, _) = area.dim_in_pixel();
    let columns = columns.max(1);
    let col_w = (aw as usize / columns) as i32;
    for (k, (name, color)) in entries.iter().enumerate() {
        let (col, row) = ((k % columns) as i32, (k / columns) as i32);
        let (x, y) = (8 + col * col_w, 10 + row * 24);
        area.draw(&Rectangle::new([(x, y), (x + 16, y + 16)], color.filled()))?;
        area.draw(&Rectangle::new(
            [(x, y), (x + 16, y + 16)],
            ShapeStyle::from(&BLACK).stroke_width(1),
        ))?;
        area.draw(&Text::new(name.clone(), (x + 22, y + 1), font(14)))?;
    }
    Ok(())
}

/// Height in pixels that [`swatch_legend`] needs for `n` entries in `columns` columns.
pub(crate) fn swatch_legend_height(n: usize, columns: usize) -> u32 {
    16 + 24 * n.div_ceil(columns.max(1)) as u32
}

/// Draws the series legend in the house style (framed, half-transparent white box) at
/// `position`, so that every figure's legend looks the same.
pub(crate) fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font(font(14))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .draw()?;
    Ok(())
}
