//! Resampling: bilinear interpolation (PyTorch `interpolate(mode="bilinear",
//! align_corners=False)`, up or down, with backward), global average pooling, and
//! nearest-neighbour label down-sampling.
//!
//! Bilinear, per axis: source coordinate `s = (o + ½)·(in/out) − ½`, clamped below at 0;
//! `i₀ = ⌊s⌋`, `i₁ = min(i₀ + 1, in − 1)`, weights `(1 − λ, λ)` with `λ = s − i₀`. The
//! backward pass scatters the output gradient with the same weights.

use dfdx::prelude::*;
use ndarray::Array3;

use super::{to_host, Act};
use crate::error::{GmmSegError, Result};
use crate::ops::tape::unary_op;

/// Interpolation taps along one axis: `(i0, i1, λ)` per output index.
fn taps(inp: usize, out: usize) -> Vec<(usize, usize, f32)> {
    let scale = inp as f64 / out as f64;
    (0..out)
        .map(|o| {
            let s = ((o as f64 + 0.5) * scale - 0.5).max(0.0);
            let i0 = (s.floor() as usize).min(inp - 1);
            let i1 = (i0 + 1).min(inp - 1);
            (i0, i1, (s - i0 as f64) as f32)
        })
        .collect()
}

/// Bilinear resize to (`ho`, `wo`), align_corners = false.
///
/// # Shapes
/// (B, C, H, W) → (B, C, ho, wo).
///
/// # Errors
/// [`GmmSegError::Shape`] for an empty input or output size.
pub fn resize_bilinear<T: Tape<f32, Cpu>>(x: Act<T>, ho: usize, wo: usize) -> Result<Act<T>> {
    let (b, c, h, w) = *x.shape();
    if h == 0 || w == 0 || ho == 0 || wo == 0 {
        return Err(GmmSegError::shape(
            "resize_bilinear",
            format!("{h}×{w} → {ho}×{wo}"),
        ));
    }
    if (h, w) == (ho, wo) {
        return Ok(x);
    }
    let ty = taps(h, ho);
    let tx = taps(w, wo);
    let xv = to_host(&x);
    let (ip, op) = (h * w, ho * wo);
    let mut out = vec![0.0f32; b * c * op];
    for (plane, dst) in xv.chunks(ip).zip(out.chunks_mut(op)) {
        for (oy, &(y0, y1, ly)) in ty.iter().enumerate() {
            let (r0, r1) = (&plane[y0 * w..(y0 + 1) * w], &plane[y1 * w..(y1 + 1) * w]);
            for (ox, &(x0, x1, lx)) in tx.iter().enumerate() {
                let top = r0[x0] * (1.0 - lx) + r0[x1] * lx;
                let bot = r1[x0] * (1.0 - lx) + r1[x1] * lx;
                dst[oy * wo + ox] = top * (1.0 - ly) + bot * ly;
            }
        }
    }
    unary_op(x, (b, c, ho, wo), out, move || {
        Box::new(move |gy, gx| {
            for (g, dst) in gy.chunks(op).zip(gx.chunks_mut(ip)) {
                for (oy, &(y0, y1, ly)) in ty.iter().enumerate() {
                    for (ox, &(x0, x1, lx)) in tx.iter().enumerate() {
                        let v = g[oy * wo + ox];
                        dst[y0 * w + x0] += v * (1.0 - ly) * (1.0 - lx);
                        dst[y0 * w + x1] += v * (1.0 - ly) * lx;
                        dst[y1 * w + x0] += v * ly * (1.0 - lx);
                        dst[y1 * w + x1] += v * ly * lx;
                    }
                }
            }
        })
    })
}

/// Global average pooling (the image-pooling branch of ASPP).
///
/// # Shapes
/// (B, C, H, W) → (B, C, 1, 1).
pub fn global_avg_pool<T: Tape<f32, Cpu>>(x: Act<T>) -> Result<Act<T>> {
    let (b, c, h, w) = *x.shape();
    let hw = h * w;
    if hw == 0 {
        return Err(GmmSegError::shape("global_avg_pool", "empty spatial size"));
    }
    let out: Vec<f32> = to_host(&x)
        .chunks(hw)
        .map(|p| p.iter().sum::<f32>() / hw as f32)
        .collect();
    unary_op(x, (b, c, 1, 1), out, move || {
        Box::new(move |gy, gx| {
            for (g, dst) in gy.iter().zip(gx.chunks_mut(hw)) {
                let v = g / hw as f32;
                dst.iter_mut().for_each(|d| *d += v);
            }
        })
    })
}

/// Nearest-neighbour down-sampling of label maps (PyTorch `mode="nearest"`: source index
/// `⌊o · in/out⌋`), used to give heads labels at feature resolution.
///
/// # Shapes
/// (B, H, W) → (B, ho, wo).
pub fn resize_labels_nearest(labels: &Array3<u8>, ho: usize, wo: usize) -> Array3<u8> {
    let (b, h, w) = labels.dim();
    Array3::from_shape_fn((b, ho, wo), |(n, y, x)| {
        let sy = (y * h / ho.max(1)).min(h.saturating_sub(1));
        let sx = (x * w / wo.max(1)).min(w.saturating_sub(1));
        labels[(n, sy, sx)]
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Dev;
    use rand::{Rng, SeedableRng};

    #[test]
    fn upsampling_matches_pytorch_values() {
        // torch.nn.functional.interpolate(torch.tensor([[[[1.,2.],[3.,4.]]]]), size=(4,4),
        //   mode="bilinear", align_corners=False)[0,0,0] == [1.00, 1.25, 1.75, 2.00]
        //   and row 1 == [1.50, 1.75, 2.25, 2.50]
        let dev = Dev::default();
        let x: Act = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 4.0], (1, 1, 2, 2));
        let y = resize_bilinear(x, 4, 4).unwrap().as_vec();
        let want = [1.0, 1.25, 1.75, 2.0, 1.5, 1.75, 2.25, 2.5];
        for (a, b) in y.iter().zip(&want) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
    }

    #[test]
    fn backward_is_the_adjoint_of_forward() {
        // <R, up(x)> = <up*(R), x> for random x, R: checks the backward scatter exactly.
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        for &(h, w, ho, wo) in &[(3, 5, 7, 4), (8, 8, 3, 3), (1, 1, 4, 6)] {
            let xv: Vec<f32> = (0..2 * h * w).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let rv: Vec<f32> = (0..2 * ho * wo).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let x: Act = dev.tensor_from_vec(xv.clone(), (1, 2, h, w));
            let x_in = x.clone();
            let y = resize_bilinear(x.leaky_trace(), ho, wo).unwrap();
            let yv = y.as_vec();
            let r: Act = dev.tensor_from_vec(rv.clone(), (1, 2, ho, wo));
            let g = (y * r).sum().backward().get(&x_in).as_vec();
            let lhs: f32 = yv.iter().zip(&rv).map(|(a, b)| a * b).sum();
            let rhs: f32 = g.iter().zip(&xv).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
        }
    }

    #[test]
    fn pooling_and_label_resize() {
        let dev = Dev::default();
        let x: Act = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, 6.0], (1, 1, 2, 2));
        assert_eq!(global_avg_pool(x).unwrap().as_vec(), vec![3.0]);
        let l = Array3::from_shape_fn((1, 4, 4), |(_, y, x)| (y * 4 + x) as u8);
        let d = resize_labels_nearest(&l, 2, 2);
        assert_eq!(d.iter().copied().collect::<Vec<_>>(), vec![0, 2, 8, 10]);
    }
}
