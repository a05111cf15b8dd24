//! Appearance models of SynthScapes: colour pairs blended by a procedural texture, with a
//! per-pixel grain.
//!
//! Every class has several *appearance modes* (colour and texture families, e.g. asphalt vs
//! cobblestone road); a mode is jittered per instance (variation inside the mode). The modes
//! are what makes a class's pixel density multimodal — the reason GMMSeg's per-class
//! mixtures exist — while the anomaly palette holds colours and textures no class ever uses.

use rand::Rng;

/// A cheap, well-mixed 64-bit hash (SplitMix64 finaliser); per-pixel noise uses it instead
/// of a stream RNG so that every pixel's value depends only on (seed, x, y).
#[inline]
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform value in [0, 1) for the lattice point (x, y) under `seed`.
#[inline]
pub(crate) fn hash2(seed: u32, x: i32, y: i32) -> f32 {
    let h = mix64(
        (seed as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (x as u32 as u64).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ (y as u32 as u64).wrapping_mul(0x1656_67b1_9e37_79f9),
    );
    (h >> 40) as f32 / (1u64 << 24) as f32
}

/// Smooth value noise in [0, 1] (bilinear interpolation of lattice hashes, smoothstep
/// weights); `x`, `y` are in lattice units.
#[inline]
pub(crate) fn value_noise(seed: u32, x: f32, y: f32) -> f32 {
    let (xf, yf) = (x.floor(), y.floor());
    let (xi, yi) = (xf as i32, yf as i32);
    let (tx, ty) = (x - xf, y - yf);
    let (sx, sy) = (tx * tx * (3.0 - 2.0 * tx), ty * ty * (3.0 - 2.0 * ty));
    let a = hash2(seed, xi, yi);
    let b = hash2(seed, xi + 1, yi);
    let c = hash2(seed, xi, yi + 1);
    let d = hash2(seed, xi + 1, yi + 1);
    let top = a + (b - a) * sx;
    let bottom = c + (d - c) * sx;
    top + (bottom - top) * sy
}

/// How the two colours of an [`Appearance`] are blended at a pixel. Sizes are in pixels.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Texture {
    /// `c1` only (the grain still varies it).
    Flat,
    /// Value noise of the given cell size blends `c1` into `c2`.
    Noise { cell: f32 },
    /// Two-octave value noise: foliage-like clumps.
    Foliage { cell: f32 },
    /// Bricks of `bw`×`bh` (colour `c1`) in mortar (`c2`), alternate rows offset by half.
    Bricks { bw: f32, bh: f32 },
    /// Square tiles (`c1`) separated by thin lines (`c2`).
    Tiles { size: f32 },
    /// A facade (`c1`, lightly noisy) with a regular grid of windows (`c2`).
    Windows { cw: f32, ch: f32, fx: f32, fy: f32 },
    /// Vertical gradient from `c1` at `y0` to `c2` at `y1` (skies), with faint clouds.
    GradientV { y0: f32, y1: f32 },
    /// Vertical shading from `c1` at `y0` to `c2` at `y1` (car bodies).
    Shade { y0: f32, y1: f32 },
    // Anomaly-only textures below: no class ever uses them.
    /// Checkerboard.
    Checker { size: f32 },
    /// Concentric rings around (cx, cy).
    Rings { cx: f32, cy: f32, period: f32 },
    /// Diagonal stripes.
    Diagonal { period: f32 },
    /// Sharp-edged spots (thresholded noise).
    Spots { cell: f32 },
}

/// One appearance: two colours, a texture that blends them, and a monochrome grain.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Appearance {
    pub tex: Texture,
    pub c1: [f32; 3],
    pub c2: [f32; 3],
    pub grain: f32,
    pub seed: u32,
    pub ox: f32,
    pub oy: f32,
}

impl Appearance {
    fn new(tex: Texture, c1: [f32; 3], c2: [f32; 3], grain: f32, rng: &mut impl Rng) -> Self {
        Self {
            tex,
            c1,
            c2,
            grain,
            seed: rng.gen(),
            ox: rng.gen_range(0.0..64.0),
            oy: rng.gen_range(0.0..64.0),
        }
    }

    /// The colour at pixel (x, y) (integer pixel coordinates of the image).
    #[inline]
    pub fn color(&self, px: usize, py: usize) -> [f32; 3] {
        let (x, y) = (px as f32 + self.ox, py as f32 + self.oy);
        let t = match self.tex {
            Texture::Flat => 0.0,
            Texture::Noise { cell } => value_noise(self.seed, x / cell, y / cell),
            Texture::Foliage { cell } => {
                let a = value_noise(self.seed, x / cell, y / cell);
                let b = value_noise(self.seed ^ 0x55, x * 2.0 / cell, y * 2.0 / cell);
                (0.65 * a + 0.35 * b - 0.15).clamp(0.0, 1.0) * 1.25
            }
            Texture::Bricks { bw, bh } => {
                let row = (y / bh).floor();
                let xs = x + if row as i64 % 2 == 0 { 0.0 } else { bw * 0.5 };
                let (fx, fy) = ((xs / bw).fract(), (y / bh).fract());
                let mortar_x = 1.0 / bw;
                let mortar_y = 1.0 / bh;
                if fx < mortar_x || fy < mortar_y {
                    1.0
                } else {
                    0.0
                }
            }
            Texture::Tiles { size } => {
                let (fx, fy) = ((x / size).fract(), (y / size).fract());
                let line = 1.0 / size;
                if fx < line || fy < line {
                    1.0
                } else {
                    0.0
                }
            }
            Texture::Windows { cw, ch, fx, fy } => {
                let (gx, gy) = ((x / cw).fract(), (y / ch).fract());
                if gx > 1.0 - fx && gy > 1.0 - fy {
                    1.0
                } else {
                    0.12 * value_noise(self.seed, x / 3.0, y / 3.0)
                }
            }
            Texture::GradientV { y0, y1 } => {
                let g = ((py as f32 - y0) / (y1 - y0).max(1.0)).clamp(0.0, 1.0);
                let cloud = value_noise(self.seed, x / 9.0, y / 4.0);
                (g + 0.15 * (cloud - 0.5)).clamp(0.0, 1.0)
            }
            Texture::Shade { y0, y1 } => ((py as f32 - y0) / (y1 - y0).max(1.0)).clamp(0.0, 1.0),
            Texture::Checker { size } => {
                let s = ((x / size).floor() + (y / size).floor()) as i64;
                (s.rem_euclid(2)) as f32
            }
            Texture::Rings { cx, cy, period } => {
                let r = ((px as f32 - cx).powi(2) + (py as f32 - cy).powi(2)).sqrt();
                if (r / period).fract() < 0.5 {
                    0.0
                } else {
                    1.0
                }
            }
            Texture::Diagonal { period } => {
                if ((x + y) / period).fract() < 0.5 {
                    0.0
                } else {
                    1.0
                }
            }
            Texture::Spots { cell } => {
                if value_noise(self.seed, x / cell, y / cell) > 0.55 {
                    1.0
                } else {
                    0.0
                }
            }
        };
        let g = self.grain * (2.0 * hash2(self.seed ^ 0xa5a5, px as i32, py as i32) - 1.0);
        [
            self.c1[0] + (self.c2[0] - self.c1[0]) * t + g,
            self.c1[1] + (self.c2[1] - self.c1[1]) * t + g,
            self.c1[2] + (self.c2[2] - self.c1[2]) * t + g,
        ]
    }
}

/// Jitters a colour inside its mode: a brightness factor and a small per-channel shift.
fn jitter(c: [f32; 3], rng: &mut impl Rng, amount: f32) -> [f32; 3] {
    let b = 1.0 + rng.gen_range(-amount..amount);
    let mut out = [0.0; 3];
    for (o, v) in out.iter_mut().zip(c) {
        *o = (v * b + rng.gen_range(-amount..amount) * 0.5).clamp(0.0, 1.0);
    }
    out
}

/// Scales a texture size with the image (sizes below are tuned for 64 pixels).
fn px(scale: f32, v: f32) -> f32 {
    (v * scale).max(1.5)
}

/// Number of appearance modes of each class, in class order (see `CLASS_NAMES`).
pub(crate) const MODES: [usize; 8] = [2, 2, 3, 2, 3, 4, 3, 2];

/// A road appearance; `mode` in `0..MODES[0]`: 0 asphalt, 1 cobblestone.
pub(crate) fn road(mode: usize, s: f32, rng: &mut impl Rng) -> Appearance {
    match mode {
        0 => Appearance::new(
            Texture::Noise { cell: px(s, 3.0) },
            jitter([0.27, 0.27, 0.29], rng, 0.06),
            jitter([0.36, 0.36, 0.38], rng, 0.06),
            0.03,
            rng,
        ),
        _ => Appearance::new(
            Texture::Bricks {
                bw: px(s, 4.0),
                bh: px(s, 2.5),
            },
            jitter([0.52, 0.40, 0.29], rng, 0.06),
            jitter([0.33, 0.26, 0.20], rng, 0.04),
            0.03,
            rng,
        ),
    }
}

/// White lane markings (part of the road class).
pub(crate) fn lane_marking(rng: &mut impl Rng) -> Appearance {
    Appearance::new(
        Texture::Flat,
        jitter([0.88, 0.88, 0.85], rng, 0.05),
        [0.0; 3],
        0.03,
        rng,
    )
}

/// A sidewalk appearance: 0 grey tiles, 1 red pavers.
pub(crate) fn sidewalk(mode: usize, s: f32, rng: &mut impl Rng) -> Appearance {
    match mode {
        0 => Appearance::new(
            Texture::Tiles { size: px(s, 5.0) },
            jitter([0.66, 0.66, 0.63], rng, 0.05),
            jitter([0.46, 0.46, 0.45], rng, 0.04),
            0.025,
            rng,
        ),
        _ => Appearance::new(
            Texture::Bricks {
                bw: px(s, 3.0),
                bh: px(s, 3.0),
            },
            jitter([0.74, 0.42, 0.40], rng, 0.05),
            jitter([0.55, 0.32, 0.30], rng, 0.04),
            0.025,
            rng,
        ),
    }
}

/// A building facade: 0 beige concrete, 1 red brick, 2 teal glass; all with windows.
pub(crate) fn building(mode: usize, s: f32, rng: &mut impl Rng) -> Appearance {
    let (cw, ch) = (
        px(s, rng.gen_range(4.0..7.0)),
        px(s, rng.gen_range(5.0..8.0)),
    );
    let (fx, fy) = (rng.gen_range(0.45..0.65), rng.gen_range(0.45..0.65));
    let tex = Texture::Windows { cw, ch, fx, fy };
    match mode {
        0 => Appearance::new(
            tex,
            jitter([0.80, 0.72, 0.56], rng, 0.06),
            jitter([0.22, 0.26, 0.36], rng, 0.05),
            0.02,
            rng,
        ),
        1 => Appearance::new(
            tex,
            jitter([0.58, 0.27, 0.19], rng, 0.06),
            jitter([0.14, 0.14, 0.18], rng, 0.04),
            0.03,
            rng,
        ),
        _ => Appearance::new(
            Texture::Windows {
                cw,
                ch,
                fx: 0.85,
                fy: 0.8,
            },
            jitter([0.22, 0.30, 0.33], rng, 0.05),
            jitter([0.40, 0.62, 0.66], rng, 0.05),
            0.02,
            rng,
        ),
    }
}

/// Vegetation: 0 green foliage, 1 autumn foliage.
pub(crate) fn vegetation(mode: usize, s: f32, rng: &mut impl Rng) -> Appearance {
    let tex = Texture::Foliage {
        cell: px(s, rng.gen_range(2.5..4.0)),
    };
    match mode {
        0 => Appearance::new(
            tex,
            jitter([0.10, 0.28, 0.08], rng, 0.08),
            jitter([0.32, 0.56, 0.20], rng, 0.06),
            0.03,
            rng,
        ),
        _ => Appearance::new(
            tex,
            jitter([0.50, 0.25, 0.05], rng, 0.06),
            jitter([0.88, 0.62, 0.16], rng, 0.05),
            0.03,
            rng,
        ),
    }
}

/// Sky from the image top (`y0`) to the horizon (`y1`): 0 clear blue, 1 overcast, 2 sunset.
pub(crate) fn sky(mode: usize, y0: f32, y1: f32, rng: &mut impl Rng) -> Appearance {
    let tex = Texture::GradientV { y0, y1 };
    let (c1, c2) = match mode {
        0 => ([0.30, 0.50, 0.88], [0.68, 0.80, 0.96]),
        1 => ([0.66, 0.68, 0.72], [0.88, 0.88, 0.90]),
        _ => ([0.42, 0.30, 0.58], [0.98, 0.66, 0.40]),
    };
    Appearance::new(tex, jitter(c1, rng, 0.04), jitter(c2, rng, 0.03), 0.01, rng)
}

/// A car body shaded from `y0` to `y1`: 0 red, 1 blue, 2 silver, 3 black.
pub(crate) fn car_body(mode: usize, y0: f32, y1: f32, rng: &mut impl Rng) -> Appearance {
    let c = match mode {
        0 => [0.78, 0.10, 0.10],
        1 => [0.10, 0.20, 0.66],
        2 => [0.82, 0.82, 0.84],
        _ => [0.09, 0.09, 0.11],
    };
    let c = jitter(c, rng, 0.06);
    let dark = [c[0] * 0.7, c[1] * 0.7, c[2] * 0.7];
    Appearance::new(Texture::Shade { y0, y1 }, c, dark, 0.015, rng)
}

/// Car windows (tinted glass) and tyres, shared by every car mode.
pub(crate) fn car_glass(rng: &mut impl Rng) -> Appearance {
    Appearance::new(
        Texture::Flat,
        jitter([0.16, 0.20, 0.27], rng, 0.05),
        [0.0; 3],
        0.02,
        rng,
    )
}

/// Tyres.
pub(crate) fn tyre(rng: &mut impl Rng) -> Appearance {
    Appearance::new(Texture::Flat, [0.04, 0.04, 0.04], [0.0; 3], 0.015, rng)
}

/// A person's (jacket, trousers, skin): 0 dark clothes, 1 hi-vis yellow, 2 red coat.
pub(crate) fn person(mode: usize, rng: &mut impl Rng) -> [Appearance; 3] {
    let (jacket, trousers) = match mode {
        0 => ([0.12, 0.14, 0.26], [0.10, 0.10, 0.12]),
        1 => ([0.96, 0.82, 0.10], [0.20, 0.30, 0.56]),
        _ => ([0.72, 0.14, 0.22], [0.12, 0.11, 0.10]),
    };
    let skin = if rng.gen_bool(0.5) {
        [0.86, 0.66, 0.52]
    } else {
        [0.46, 0.31, 0.21]
    };
    [
        Appearance::new(
            Texture::Flat,
            jitter(jacket, rng, 0.06),
            [0.0; 3],
            0.03,
            rng,
        ),
        Appearance::new(
            Texture::Flat,
            jitter(trousers, rng, 0.05),
            [0.0; 3],
            0.03,
            rng,
        ),
        Appearance::new(Texture::Flat, jitter(skin, rng, 0.05), [0.0; 3], 0.02, rng),
    ]
}

/// A pole and its sign: pole 0 dark metal / 1 galvanised; sign red, blue or yellow.
pub(crate) fn pole(mode: usize, rng: &mut impl Rng) -> [Appearance; 2] {
    let metal = if mode == 0 {
        [0.16, 0.16, 0.17]
    } else {
        [0.58, 0.58, 0.60]
    };
    let sign = match rng.gen_range(0..3) {
        0 => [0.82, 0.10, 0.10],
        1 => [0.10, 0.30, 0.76],
        _ => [0.96, 0.80, 0.10],
    };
    [
        Appearance::new(Texture::Flat, jitter(metal, rng, 0.05), [0.0; 3], 0.02, rng),
        Appearance::new(Texture::Flat, jitter(sign, rng, 0.04), [0.0; 3], 0.02, rng),
    ]
}

/// Colours no class ever uses (saturated magenta, cyan, lime, violet): the anomaly palette.
pub(crate) const NOVEL_COLORS: [[f32; 3]; 4] = [
    [0.95, 0.10, 0.85],
    [0.10, 0.92, 0.92],
    [0.55, 1.00, 0.10],
    [0.55, 0.15, 0.95],
];

/// An appearance never seen in training: two novel colours with an anomaly-only texture.
pub(crate) fn novel(s: f32, cx: f32, cy: f32, rng: &mut impl Rng) -> Appearance {
    let i = rng.gen_range(0..NOVEL_COLORS.len());
    let j = (i + rng.gen_range(1..NOVEL_COLORS.len())) % NOVEL_COLORS.len();
    let tex = match rng.gen_range(0..5) {
        0 => Texture::Checker { size: px(s, 2.0) },
        1 => Texture::Rings {
            cx,
            cy,
            period: px(s, 2.5),
        },
        2 => Texture::Diagonal { period: px(s, 3.0) },
        3 => Texture::Spots { cell: px(s, 2.0) },
        _ => Texture::Flat,
    };
    Appearance::new(
        tex,
        jitter(NOVEL_COLORS[i], rng, 0.04),
        jitter(NOVEL_COLORS[j], rng, 0.04),
        0.02,
        rng,
    )
}
