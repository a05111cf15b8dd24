//! Layout changes between the network's channel-major maps and the pixel rows a GMM reads,
//! on host buffers and as differentiable ops.

use dfdx::prelude::*;

use super::tape::unary_op;
use super::tensor::{to_host, Act};
use crate::error::{GmmSegError, Result};

/// (B, D, H, W) channel-major values → (B·H·W, D) pixel rows, row index `(b·H + y)·W + x`.
/// Loops run image by channel by pixel, so there is no division per element.
pub fn nchw_to_rows(values: &[f32], (b, d, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
    let hw = h * w;
    assert_eq!(values.len(), b * d * hw, "buffer is not (B, D, H, W)");
    let mut out = vec![0.0f32; b * hw * d];
    for n in 0..b {
        let rows = &mut out[n * hw * d..(n + 1) * hw * d];
        for c in 0..d {
            let src = &values[(n * d + c) * hw..(n * d + c + 1) * hw];
            for (row, v) in rows.chunks_exact_mut(d.max(1)).zip(src) {
                row[c] = *v;
            }
        }
    }
    out
}

/// Inverse of [`nchw_to_rows`]: (B·H·W, D) pixel rows → (B, D, H, W) channel-major values.
pub fn rows_to_nchw(rows: &[f32], (b, d, h, w): (usize, usize, usize, usize)) -> Vec<f32> {
    let hw = h * w;
    assert_eq!(rows.len(), b * d * hw, "buffer is not (B·H·W, D)");
    let mut out = vec![0.0f32; b * d * hw];
    for n in 0..b {
        let src = &rows[n * hw * d..(n + 1) * hw * d];
        for c in 0..d {
            let dst = &mut out[(n * d + c) * hw..(n * d + c + 1) * hw];
            for (v, row) in dst.iter_mut().zip(src.chunks_exact(d.max(1))) {
                *v = row[c];
            }
        }
    }
    out
}

/// Flattens a feature map into one row per pixel, the layout GMM heads want.
///
/// # Shapes
/// (B, D, H, W) → (B·H·W, D), row index `(b·H + y)·W + x`.
pub fn to_pixels<T: Tape<f32, Cpu>>(x: Act<T>) -> Result<Tensor<(usize, usize), f32, Cpu, T>> {
    let (b, d, h, w) = *x.shape();
    let hw = h * w;
    let out = nchw_to_rows(&to_host(&x), (b, d, h, w));
    unary_op(x, (b * hw, d), out, move || {
        Box::new(move |gy, gx| {
            for n in 0..b {
                for c in 0..d {
                    let dst = &mut gx[(n * d + c) * hw..(n * d + c + 1) * hw];
                    for (p, v) in dst.iter_mut().enumerate() {
                        *v += gy[(n * hw + p) * d + c];
                    }
                }
            }
        })
    })
}

/// Inverse of [`to_pixels`].
///
/// # Shapes
/// (B·H·W, D) → (B, D, H, W).
///
/// # Errors
/// [`GmmSegError::Shape`] when the row count is not B·H·W.
pub fn from_pixels<T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize), f32, Cpu, T>,
    b: usize,
    h: usize,
    w: usize,
) -> Result<Act<T>> {
    let (n, d) = *x.shape();
    if n != b * h * w {
        return Err(GmmSegError::shape(
            "from_pixels",
            format!("{n} rows, expected {b}·{h}·{w}"),
        ));
    }
    let hw = h * w;
    let out = rows_to_nchw(&to_host(&x), (b, d, h, w));
    unary_op(x, (b, d, h, w), out, move || {
        Box::new(move |gy, gx| {
            for i in 0..b {
                for c in 0..d {
                    for p in 0..hw {
                        gx[(i * hw + p) * d + c] += gy[(i * d + c) * hw + p];
                    }
                }
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_rows_by_hand_and_back() {
        // (B, D, H, W) = (2, 2, 1, 2): image 0 channels [1 2] [3 4], image 1 [5 6] [7 8].
        let nchw = [1., 2., 3., 4., 5., 6., 7., 8.];
        let rows = nchw_to_rows(&nchw, (2, 2, 1, 2));
        assert_eq!(rows, vec![1., 3., 2., 4., 5., 7., 6., 8.]);
        assert_eq!(rows_to_nchw(&rows, (2, 2, 1, 2)), nchw.to_vec());
    }
}
