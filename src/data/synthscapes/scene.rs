//! Scene layout of SynthScapes: a one-point-perspective street (sky, building or vegetation
//! blocks along both sides, sidewalks, a road converging to a vanishing point) populated with
//! cars, people, poles with signs and trees, drawn far to near. Anomaly objects (never-seen
//! shapes and appearances) are placed by the anomaly splits.

use rand::Rng;

use super::appearance::{self as ap, value_noise, MODES};
use super::canvas::{Canvas, Ink};
use super::classes::*;

/// Perspective geometry of a street: horizon row, vanishing point, road and sidewalk widths.
pub(crate) struct Street {
    pub h: f32,
    pub w: f32,
    /// Horizon row (pixels).
    pub hz: f32,
    /// Vanishing point column.
    pub vx: f32,
    /// Lateral drift of the road centre at the bottom row (a gentle curve).
    pub curve: f32,
    /// Road half width at the horizon and at the bottom row.
    pub road_h: f32,
    pub road_b: f32,
    /// Sidewalk width at the horizon and at the bottom row.
    pub walk_h: f32,
    pub walk_b: f32,
}

impl Street {
    /// Depth coordinate of row `y`: 0 at the horizon, 1 at the bottom of the image.
    pub fn depth(&self, y: f32) -> f32 {
        ((y - self.hz) / (self.h - self.hz)).clamp(0.0, 1.0)
    }
    pub fn center(&self, y: f32) -> f32 {
        let d = self.depth(y);
        self.vx + self.curve * d * d
    }
    pub fn road_half(&self, y: f32) -> f32 {
        let d = self.depth(y);
        self.road_h + (self.road_b - self.road_h) * d
    }
    pub fn walk(&self, y: f32) -> f32 {
        let d = self.depth(y);
        self.walk_h + (self.walk_b - self.walk_h) * d
    }
    /// Row at depth `d`.
    pub fn row(&self, d: f32) -> f32 {
        self.hz + d * (self.h - self.hz)
    }
}

/// Which kind of street to lay out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Setting {
    /// Buildings (mostly) along both sides: the training distribution.
    Urban,
    /// Countryside: vegetation along both sides, no buildings (an unusual context).
    Rural,
}

/// Lays out the background (sky, side blocks, ground, lane markings) and returns the street.
pub(crate) fn layout(c: &mut Canvas, rng: &mut impl Rng, setting: Setting) -> Street {
    let (h, w) = (c.h as f32, c.w as f32);
    let s = w / 64.0;
    let hz = h * rng.gen_range(0.36..0.50);
    let vx = w * rng.gen_range(0.38..0.62);
    let st = Street {
        h,
        w,
        hz,
        vx,
        curve: w * rng.gen_range(-0.12..0.12),
        road_h: w * 0.02,
        road_b: w * rng.gen_range(0.40..0.60),
        walk_h: w * 0.01,
        walk_b: w * rng.gen_range(0.18..0.30),
    };

    // Sky everywhere first.
    let sky = ap::sky(rng.gen_range(0..MODES[SKY as usize]), 0.0, hz, rng);
    let sky = c.add(sky);
    c.rect(0.0, 0.0, w, h, Ink::Class(SKY), sky);

    // Side blocks: facades whose tops converge towards the vanishing point.
    let gap_l = vx - w * rng.gen_range(0.04..0.12);
    let gap_r = vx + w * rng.gen_range(0.04..0.12);
    for side in [0, 1] {
        let (start, end) = if side == 0 { (0.0, gap_l) } else { (gap_r, w) };
        let mut x = start;
        while x < end {
            let bw = (w * rng.gen_range(0.10..0.28)).min(end - x);
            let building = setting == Setting::Urban && rng.gen_bool(0.8);
            let (class, app) = block(c, rng, building, s);
            let hf = rng.gen_range(0.3..0.95);
            let seed: u32 = rng.gen();
            let (xa, xb) = (x, x + bw);
            let vxf = vx;
            let span = if side == 0 { vx } else { w - vx };
            c.fill_where((xa, 0.0, xb, h), Ink::Class(class), app, |px, py| {
                let dist = ((px - vxf).abs() / span.max(1.0)).max(0.1);
                let mut top = hz - hf * h * 0.95 * dist;
                if !building {
                    top -= h * 0.08 * (value_noise(seed, px / (3.0 * s), 0.0) - 0.5);
                }
                py >= top
            });
            x = xb;
        }
    }
    // The far end of the street: low buildings or a tree line, always down to the ground.
    {
        let mut x = gap_l;
        while x < gap_r {
            let bw = (w * rng.gen_range(0.03..0.08)).min(gap_r - x);
            let building = setting == Setting::Urban && rng.gen_bool(0.6);
            let (class, app) = block(c, rng, building, s);
            let top = hz - h * rng.gen_range(0.02..0.10);
            c.rect(x, top, x + bw, h, Ink::Class(class), app);
            x += bw;
        }
    }

    // Ground: road between the edges, sidewalks beside it.
    let road_mode = rng.gen_range(0..MODES[ROAD as usize]);
    let road = ap::road(road_mode, s, rng);
    let road = c.add(road);
    let walk_mode = rng.gen_range(0..MODES[SIDEWALK as usize]);
    let walk_l = ap::sidewalk(walk_mode, s, rng);
    let walk_l = c.add(walk_l);
    let lane = ap::lane_marking(rng);
    let lane = c.add(lane);
    let dashes = road_mode == 0 && rng.gen_bool(0.8);
    let phase = rng.gen_range(0.0..1.0f32);
    let y0 = hz.ceil() as usize;
    for y in y0.min(c.h)..c.h {
        let cy = y as f32 + 0.5;
        let (ctr, half, walk) = (st.center(cy), st.road_half(cy), st.walk(cy));
        let lane_w = (w * 0.02 * st.depth(cy)).max(0.3);
        let dash = ((h - hz) / (cy - hz + 1.0) * 1.5 + phase).fract() < 0.5;
        for x in 0..c.w {
            let off = (x as f32 + 0.5 - ctr).abs();
            if dashes && dash && off < lane_w {
                c.set(x, y, Ink::Class(ROAD), lane);
            } else if off < half {
                c.set(x, y, Ink::Class(ROAD), road);
            } else if off < half + walk {
                c.set(x, y, Ink::Class(SIDEWALK), walk_l);
            }
        }
    }
    st
}

/// A new side block's class and appearance: a building (random facade) or vegetation.
fn block(c: &mut Canvas, rng: &mut impl Rng, building: bool, s: f32) -> (u8, u16) {
    if building {
        let a = ap::building(rng.gen_range(0..MODES[BUILDING as usize]), s, rng);
        (BUILDING, c.add(a))
    } else {
        let a = ap::vegetation(rng.gen_range(0..MODES[VEGETATION as usize]), s, rng);
        (VEGETATION, c.add(a))
    }
}

/// A foreground object, drawn in order of its ground row `yb` (far first).
enum Thing {
    Car { x: f32, w: f32 },
    Person { x: f32, h: f32 },
    Pole { x: f32, h: f32 },
    Tree { x: f32, h: f32 },
}

/// Places and draws cars, people, poles and trees on the street (far to near).
pub(crate) fn populate(c: &mut Canvas, st: &Street, rng: &mut impl Rng, density: f32) {
    let mut things: Vec<(f32, Thing)> = Vec::new();
    let (h, w) = (st.h, st.w);
    let count = |rng: &mut _, max: u32| -> u32 {
        let mut n = 0;
        for _ in 0..max {
            if Rng::gen_bool(rng, (0.55 * density).clamp(0.0, 1.0) as f64) {
                n += 1;
            }
        }
        n
    };
    for _ in 0..count(rng, 4) {
        let yb = st.row(rng.gen_range(0.12..1.0));
        let half = st.road_half(yb);
        let cw = 2.0 * half * rng.gen_range(0.38..0.55);
        let slack = (half - cw * 0.5).max(0.0);
        let x = st.center(yb) + rng.gen_range(-1.0..1.0) * slack;
        things.push((yb, Thing::Car { x, w: cw }));
    }
    let side_x = |st: &Street, rng: &mut _, yb: f32, frac: f32| -> f32 {
        let left = Rng::gen_bool(rng, 0.5);
        let off = st.road_half(yb) + frac * st.walk(yb);
        if left {
            st.center(yb) - off
        } else {
            st.center(yb) + off
        }
    };
    for _ in 0..count(rng, 4) {
        let yb = st.row(rng.gen_range(0.3..1.0));
        let frac = rng.gen_range(0.2..0.8);
        let x = side_x(st, rng, yb, frac);
        let ph = h * st.depth(yb) * rng.gen_range(0.5..0.62);
        things.push((yb, Thing::Person { x, h: ph }));
    }
    for _ in 0..count(rng, 3) {
        let yb = st.row(rng.gen_range(0.35..1.0));
        let x = side_x(st, rng, yb, 0.15);
        let ph = h * st.depth(yb) * rng.gen_range(0.9..1.2);
        things.push((yb, Thing::Pole { x, h: ph }));
    }
    for _ in 0..count(rng, 2) {
        let yb = st.row(rng.gen_range(0.25..0.9));
        let frac = rng.gen_range(0.5..0.9);
        let x = side_x(st, rng, yb, frac);
        let th = h * st.depth(yb) * rng.gen_range(0.8..1.1);
        things.push((yb, Thing::Tree { x, h: th }));
    }
    things.sort_by(|a, b| a.0.total_cmp(&b.0));
    let s = w / 64.0;
    for (yb, t) in things {
        match t {
            Thing::Car { x, w: cw } => draw_car(c, rng, x, yb, cw),
            Thing::Person { x, h: ph } => draw_person(c, rng, x, yb, ph),
            Thing::Pole { x, h: ph } => draw_pole(c, rng, x, yb, ph, st.depth(yb) * s),
            Thing::Tree { x, h: th } => draw_tree(c, rng, x, yb, th, s),
        }
    }
}

fn draw_car(c: &mut Canvas, rng: &mut impl Rng, x: f32, yb: f32, w: f32) {
    let h = w * rng.gen_range(0.62..0.78);
    let mode = rng.gen_range(0..MODES[CAR as usize]);
    let body = ap::car_body(mode, yb - h, yb, rng);
    let body = c.add(body);
    let glass = ap::car_glass(rng);
    let glass = c.add(glass);
    let tyre = ap::tyre(rng);
    let tyre = c.add(tyre);
    let ink = Ink::Class(CAR);
    // Tyres peek out under the body.
    let tw = w * 0.16;
    c.rect(
        x - w * 0.46,
        yb - h * 0.22,
        x - w * 0.46 + tw,
        yb,
        ink,
        tyre,
    );
    c.rect(
        x + w * 0.46 - tw,
        yb - h * 0.22,
        x + w * 0.46,
        yb,
        ink,
        tyre,
    );
    // Lower body and cabin (a trapezoid), then the rear window inside the cabin.
    c.rect(
        x - w * 0.5,
        yb - h * 0.62,
        x + w * 0.5,
        yb - h * 0.12,
        ink,
        body,
    );
    c.polygon(
        &[
            (x - w * 0.44, yb - h * 0.6),
            (x + w * 0.44, yb - h * 0.6),
            (x + w * 0.32, yb - h),
            (x - w * 0.32, yb - h),
        ],
        ink,
        body,
    );
    c.polygon(
        &[
            (x - w * 0.36, yb - h * 0.64),
            (x + w * 0.36, yb - h * 0.64),
            (x + w * 0.27, yb - h * 0.93),
            (x - w * 0.27, yb - h * 0.93),
        ],
        ink,
        glass,
    );
}

fn draw_person(c: &mut Canvas, rng: &mut impl Rng, x: f32, yb: f32, h: f32) {
    let mode = rng.gen_range(0..MODES[PERSON as usize]);
    let [jacket, trousers, skin] = ap::person(mode, rng);
    let (jacket, trousers, skin) = (c.add(jacket), c.add(trousers), c.add(skin));
    let ink = Ink::Class(PERSON);
    let w = h * 0.3;
    let leg = w * 0.38;
    c.rect(
        x - w * 0.45,
        yb - h * 0.46,
        x - w * 0.45 + leg,
        yb,
        ink,
        trousers,
    );
    c.rect(
        x + w * 0.45 - leg,
        yb - h * 0.46,
        x + w * 0.45,
        yb,
        ink,
        trousers,
    );
    c.rect(
        x - w * 0.5,
        yb - h * 0.82,
        x + w * 0.5,
        yb - h * 0.44,
        ink,
        jacket,
    );
    c.ellipse(x, yb - h * 0.9, w * 0.3, h * 0.1, ink, skin);
}

fn draw_pole(c: &mut Canvas, rng: &mut impl Rng, x: f32, yb: f32, h: f32, s: f32) {
    let mode = rng.gen_range(0..MODES[POLE as usize]);
    let [metal, sign] = ap::pole(mode, rng);
    let (metal, sign) = (c.add(metal), c.add(sign));
    let ink = Ink::Class(POLE);
    let pw = (2.2 * s).max(1.2);
    c.rect(x - pw * 0.5, yb - h, x + pw * 0.5, yb, ink, metal);
    let r = (4.0 * s).max(2.0);
    let cy = yb - h + r;
    if rng.gen_bool(0.5) {
        c.ellipse(x, cy, r, r, ink, sign);
    } else {
        c.rect(x - r, cy - r, x + r, cy + r, ink, sign);
    }
}

fn draw_tree(c: &mut Canvas, rng: &mut impl Rng, x: f32, yb: f32, h: f32, s: f32) {
    let mode = rng.gen_range(0..MODES[VEGETATION as usize]);
    let foliage = ap::vegetation(mode, s, rng);
    let foliage = c.add(foliage);
    let trunk = ap::Appearance {
        tex: ap::Texture::Flat,
        c1: [0.30, 0.22, 0.14],
        c2: [0.0; 3],
        grain: 0.03,
        seed: rng.gen(),
        ox: 0.0,
        oy: 0.0,
    };
    let trunk = c.add(trunk);
    let ink = Ink::Class(VEGETATION);
    let tw = (h * 0.06).max(1.2);
    c.rect(x - tw * 0.5, yb - h * 0.55, x + tw * 0.5, yb, ink, trunk);
    let (rx, ry) = (h * rng.gen_range(0.22..0.32), h * 0.3);
    let seed: u32 = rng.gen();
    let (cx, cy) = (x, yb - h * 0.68);
    c.fill_where(
        (cx - rx, cy - ry, cx + rx, cy + ry),
        ink,
        foliage,
        |px, py| {
            let (dx, dy) = ((px - cx) / rx, (py - cy) / ry);
            let bump = 0.25 * (value_noise(seed, px / (2.0 * s), py / (2.0 * s)) - 0.5);
            dx * dx + dy * dy <= 1.0 + bump
        },
    );
}

/// The outline of an anomaly object, in units of its radius.
fn anomaly_shape(rng: &mut impl Rng) -> Vec<(f32, f32)> {
    match rng.gen_range(0..4) {
        // Irregular blob.
        0 => {
            let n = 10;
            (0..n)
                .map(|i| {
                    let a = i as f32 / n as f32 * std::f32::consts::TAU;
                    let r = rng.gen_range(0.6..1.0);
                    (r * a.cos(), r * a.sin())
                })
                .collect()
        }
        // Star.
        1 => {
            let n = rng.gen_range(4..7);
            let rot = rng.gen_range(0.0..1.0f32);
            (0..2 * n)
                .map(|i| {
                    let a = (i as f32 / (2 * n) as f32 + rot) * std::f32::consts::TAU;
                    let r = if i % 2 == 0 { 1.0 } else { 0.45 };
                    (r * a.cos(), r * a.sin())
                })
                .collect()
        }
        // Triangle.
        2 => vec![(-1.0, 0.9), (1.0, 0.9), (rng.gen_range(-0.6..0.6), -1.0)],
        // Cross / plus sign.
        _ => vec![
            (-0.35, -1.0),
            (0.35, -1.0),
            (0.35, -0.35),
            (1.0, -0.35),
            (1.0, 0.35),
            (0.35, 0.35),
            (0.35, 1.0),
            (-0.35, 1.0),
            (-0.35, 0.35),
            (-1.0, 0.35),
            (-1.0, -0.35),
            (-0.35, -0.35),
        ],
    }
}

/// Draws one anomaly object of radii (rx, ry) centred at (cx, cy).
pub(crate) fn draw_anomaly(c: &mut Canvas, rng: &mut impl Rng, cx: f32, cy: f32, rx: f32, ry: f32) {
    let s = c.w as f32 / 64.0;
    let app = ap::novel(s, cx, cy, rng);
    let app = c.add(app);
    let pts: Vec<(f32, f32)> = anomaly_shape(rng)
        .into_iter()
        .map(|(u, v)| (cx + u * rx, cy + v * ry))
        .collect();
    c.polygon(&pts, Ink::Anomaly, app);
}

/// Lost&Found-like: 1–3 small never-seen objects lying on the road.
pub(crate) fn road_obstacles(c: &mut Canvas, st: &Street, rng: &mut impl Rng) {
    let n = rng.gen_range(1..=3);
    for _ in 0..n {
        let yb = st.row(rng.gen_range(0.35..0.95));
        let half = st.road_half(yb);
        let rx = (half * rng.gen_range(0.15..0.32)).max(1.8);
        let ry = (rx * rng.gen_range(0.55..0.95)).max(1.8);
        let x = st.center(yb) + rng.gen_range(-0.7..0.7) * (half - rx).max(0.0);
        draw_anomaly(c, rng, x, yb - ry, rx, ry);
    }
}

/// Road-Anomaly-like: 1–2 large unusual objects (animal-like figures, boulders, giant
/// shapes) on or beside the road.
pub(crate) fn large_objects(c: &mut Canvas, st: &Street, rng: &mut impl Rng) {
    let n = rng.gen_range(1..=2);
    let s = c.w as f32 / 64.0;
    for _ in 0..n {
        let yb = st.row(rng.gen_range(0.45..1.0));
        let half = st.road_half(yb);
        let x = st.center(yb) + rng.gen_range(-1.0..1.0) * (half + 0.5 * st.walk(yb));
        let size = 2.0 * half * rng.gen_range(0.35..0.6);
        if rng.gen_bool(0.5) {
            // An animal-like figure: body, four legs, neck and head.
            let app = ap::novel(s, x, yb, rng);
            let app = c.add(app);
            let (bw, bh) = (size * 0.5, size * 0.22);
            let by = yb - size * 0.35;
            let ink = Ink::Anomaly;
            let lw = (size * 0.07).max(1.2);
            for k in [-0.8f32, -0.5, 0.5, 0.8] {
                let lx = x + k * bw * 0.8;
                c.rect(lx - lw * 0.5, by, lx + lw * 0.5, yb, ink, app);
            }
            c.ellipse(x, by, bw, bh, ink, app);
            let dir = if rng.gen_bool(0.5) { 1.0 } else { -1.0 };
            let hx = x + dir * bw * 1.05;
            c.rect(hx - lw, by - bh * 1.8, hx + lw, by, ink, app);
            c.ellipse(
                hx + dir * lw,
                by - bh * 1.9,
                size * 0.12,
                size * 0.09,
                ink,
                app,
            );
        } else {
            let r = size * 0.5;
            draw_anomaly(c, rng, x, yb - r * 0.8, r, r * 0.8);
        }
    }
}
