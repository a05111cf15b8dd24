//! A label canvas: painting shapes writes a class id, an appearance index and an anomaly flag
//! per pixel; rendering turns the appearance indices into colours afterwards. Shapes are
//! tested at pixel centres, so everything is resolution independent.

use super::appearance::Appearance;
use crate::data::IGNORE_LABEL;

/// Per-pixel class, appearance and anomaly flag of one scene under construction.
pub(crate) struct Canvas {
    pub h: usize,
    pub w: usize,
    pub label: Vec<u8>,
    pub app: Vec<u16>,
    pub anomaly: Vec<u8>,
    pub apps: Vec<Appearance>,
}

/// What a painted pixel becomes: an in-distribution class or an anomaly.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ink {
    Class(u8),
    Anomaly,
}

impl Canvas {
    pub fn new(h: usize, w: usize) -> Self {
        Self {
            h,
            w,
            label: vec![0; h * w],
            app: vec![0; h * w],
            anomaly: vec![0; h * w],
            apps: Vec::with_capacity(64),
        }
    }

    /// Registers an appearance and returns its index for painting.
    pub fn add(&mut self, a: Appearance) -> u16 {
        self.apps.push(a);
        (self.apps.len() - 1) as u16
    }

    #[inline]
    pub fn set(&mut self, x: usize, y: usize, ink: Ink, app: u16) {
        let i = y * self.w + x;
        match ink {
            Ink::Class(c) => {
                self.label[i] = c;
                self.anomaly[i] = 0;
            }
            Ink::Anomaly => {
                self.label[i] = IGNORE_LABEL;
                self.anomaly[i] = 1;
            }
        }
        self.app[i] = app;
    }

    /// Paints every pixel whose centre lies in the box [x0, x1)×[y0, y1) and satisfies
    /// `inside(x, y)` (pixel-centre coordinates).
    pub fn fill_where(
        &mut self,
        (x0, y0, x1, y1): (f32, f32, f32, f32),
        ink: Ink,
        app: u16,
        inside: impl Fn(f32, f32) -> bool,
    ) {
        let xa = (x0 - 0.5).floor().max(0.0) as usize;
        let ya = (y0 - 0.5).floor().max(0.0) as usize;
        let xb = ((x1 + 0.5).ceil().max(0.0) as usize).min(self.w);
        let yb = ((y1 + 0.5).ceil().max(0.0) as usize).min(self.h);
        for y in ya..yb {
            let cy = y as f32 + 0.5;
            for x in xa..xb {
                let cx = x as f32 + 0.5;
                if cx >= x0 && cx < x1 && cy >= y0 && cy < y1 && inside(cx, cy) {
                    self.set(x, y, ink, app);
                }
            }
        }
    }

    /// Axis-aligned rectangle.
    pub fn rect(&mut self, x0: f32, y0: f32, x1: f32, y1: f32, ink: Ink, app: u16) {
        self.fill_where((x0, y0, x1, y1), ink, app, |_, _| true);
    }

    /// Ellipse centred at (cx, cy) with radii (rx, ry).
    pub fn ellipse(&mut self, cx: f32, cy: f32, rx: f32, ry: f32, ink: Ink, app: u16) {
        let (rx, ry) = (rx.max(0.5), ry.max(0.5));
        self.fill_where((cx - rx, cy - ry, cx + rx, cy + ry), ink, app, |x, y| {
            let (dx, dy) = ((x - cx) / rx, (y - cy) / ry);
            dx * dx + dy * dy <= 1.0
        });
    }

    /// Simple polygon (even-odd rule).
    pub fn polygon(&mut self, pts: &[(f32, f32)], ink: Ink, app: u16) {
        if pts.len() < 3 {
            return;
        }
        let bbox = pts.iter().fold(
            (f32::MAX, f32::MAX, f32::MIN, f32::MIN),
            |(a, b, c, d), &(x, y)| (a.min(x), b.min(y), c.max(x), d.max(y)),
        );
        self.fill_where(bbox, ink, app, |x, y| point_in_polygon(pts, x, y));
    }
}

/// Even-odd point-in-polygon test.
pub(crate) fn point_in_polygon(pts: &[(f32, f32)], x: f32, y: f32) -> bool {
    let mut inside = false;
    let mut j = pts.len() - 1;
    for i in 0..pts.len() {
        let (xi, yi) = pts[i];
        let (xj, yj) = pts[j];
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}
