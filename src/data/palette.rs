//! Class colours shared by every figure and preview, so that a class has the same colour in a
//! data preview, a segmentation overlay and a notebook.
//!
//! The first 19 colours are Cityscapes' palette (familiar to segmentation researchers); later
//! classes get well-separated colours from a golden-ratio walk around the hue circle.

/// Colour drawn for [`IGNORE_LABEL`](super::IGNORE_LABEL) pixels.
pub const IGNORE_COLOR: [u8; 3] = [0, 0, 0];

/// Colour drawn for anomaly pixels in masks and previews (bright magenta: unlike any class).
pub const ANOMALY_COLOR: [u8; 3] = [255, 0, 255];

const CITYSCAPES: [[u8; 3]; 19] = [
    [128, 64, 128],
    [244, 35, 232],
    [70, 70, 70],
    [102, 102, 156],
    [190, 153, 153],
    [153, 153, 153],
    [250, 170, 30],
    [220, 220, 0],
    [107, 142, 35],
    [152, 251, 152],
    [70, 130, 180],
    [220, 20, 60],
    [255, 0, 0],
    [0, 0, 142],
    [0, 0, 70],
    [0, 60, 100],
    [0, 80, 100],
    [0, 0, 230],
    [119, 11, 32],
];

/// The RGB colour of class `class` (255 gives [`IGNORE_COLOR`]).
pub fn class_color(class: usize) -> [u8; 3] {
    if class == super::IGNORE_LABEL as usize {
        return IGNORE_COLOR;
    }
    if let Some(c) = CITYSCAPES.get(class) {
        return *c;
    }
    let hue = (class as f32 * 0.618_034).fract();
    hsv_to_rgb(hue, 0.65, 0.9)
}

fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [u8; 3] {
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let (p, q, t) = (v * (1.0 - s), v * (1.0 - f * s), v * (1.0 - (1.0 - f) * s));
    let (r, g, b) = match i as i32 % 6 {
        0 => (v, t, p),
        1 => (q, v, p),
        2 => (p, v, t),
        3 => (p, q, v),
        4 => (t, p, v),
        _ => (v, p, q),
    };
    [(r * 255.0) as u8, (g * 255.0) as u8, (b * 255.0) as u8]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_classes_are_distinct_and_ignore_is_black() {
        let colours: Vec<_> = (0..40).map(class_color).collect();
        for i in 0..colours.len() {
            for j in 0..i {
                assert_ne!(colours[i], colours[j], "classes {i} and {j} share a colour");
            }
        }
        assert_eq!(class_color(255), IGNORE_COLOR);
    }
}
