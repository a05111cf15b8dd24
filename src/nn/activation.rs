//! Ops on activation maps that the networks are built from: ReLU, residual sums, channel
//! concatenation and channel dropout.

use dfdx::prelude::*;
use rand::Rng;

use crate::error::{GmmSegError, Result};
use crate::ops::tape::{grad_of, unary_op};
use crate::ops::tensor::{to_host, Act};

/// Element-wise ReLU (dfdx's own, it is shape-generic).
///
/// # Shapes
/// (B, C, H, W) → (B, C, H, W).
pub fn relu<T: Tape<f32, Cpu>>(x: Act<T>) -> Act<T> {
    x.relu()
}

/// Element-wise sum of two maps of the same shape (residual connections).
///
/// # Shapes
/// (B, C, H, W) + (B, C, H, W) → (B, C, H, W).
///
/// # Errors
/// [`GmmSegError::Shape`] when the shapes differ.
pub fn add<T: Tape<f32, Cpu> + Merge<T>>(a: Act<T>, b: Act<T>) -> Result<Act<T>> {
    if a.shape() != b.shape() {
        return Err(GmmSegError::shape(
            "add",
            format!("{:?} vs {:?}", a.shape(), b.shape()),
        ));
    }
    Ok(a.try_add(b)?)
}

/// Concatenates maps along channels.
///
/// # Shapes
/// (B, C1, H, W) ‖ (B, C2, H, W) → (B, C1 + C2, H, W).
///
/// # Errors
/// [`GmmSegError::Shape`] when batch or spatial sizes differ.
pub fn concat_channels<T: Tape<f32, Cpu> + Merge<T>>(a: Act<T>, b: Act<T>) -> Result<Act<T>> {
    let (ba, ca, ha, wa) = *a.shape();
    let (bb, cb, hb, wb) = *b.shape();
    if (ba, ha, wa) != (bb, hb, wb) {
        return Err(GmmSegError::shape(
            "concat_channels",
            format!("{:?} vs {:?}", a.shape(), b.shape()),
        ));
    }
    let (a, ta) = a.split_tape();
    let (b, tb) = b.split_tape();
    let mut tape = ta.merge(tb);
    let av = to_host(&a);
    let bv = to_host(&b);
    let hw = ha * wa;
    let c = ca + cb;
    let mut out = vec![0.0f32; ba * c * hw];
    for n in 0..ba {
        out[n * c * hw..n * c * hw + ca * hw].copy_from_slice(&av[n * ca * hw..(n + 1) * ca * hw]);
        out[n * c * hw + ca * hw..(n + 1) * c * hw]
            .copy_from_slice(&bv[n * cb * hw..(n + 1) * cb * hw]);
    }
    let y = a.device().try_tensor_from_vec(out, (ba, c, ha, wa))?;
    if T::OWNS_TAPE {
        let y_id = y.clone();
        tape.add_backward_op(move |grads| {
            let gy = grad_of(grads, &y_id)?;
            {
                let ga = grads.get_or_alloc_mut(&a)?;
                for n in 0..ba {
                    for (d, s) in ga[n * ca * hw..(n + 1) * ca * hw]
                        .iter_mut()
                        .zip(&gy[n * c * hw..n * c * hw + ca * hw])
                    {
                        *d += s;
                    }
                }
            }
            let gb = grads.get_or_alloc_mut(&b)?;
            for n in 0..ba {
                for (d, s) in gb[n * cb * hw..(n + 1) * cb * hw]
                    .iter_mut()
                    .zip(&gy[n * c * hw + ca * hw..(n + 1) * c * hw])
                {
                    *d += s;
                }
            }
            Ok(())
        });
    }
    Ok(y.put_tape(tape))
}

/// Channel dropout (PyTorch `Dropout2d`, the reference code's choice before the projection):
/// in training each (image, channel) map is zeroed with probability `p` and the survivors are
/// scaled by 1/(1−p); in evaluation it is the identity. Uses `rng` so runs are reproducible.
///
/// # Shapes
/// (B, C, H, W) → (B, C, H, W).
pub fn dropout2d<T: Tape<f32, Cpu>>(
    x: Act<T>,
    p: f32,
    train: bool,
    rng: &mut impl Rng,
) -> Result<Act<T>> {
    if !train || p <= 0.0 {
        return Ok(x);
    }
    let (b, c, h, w) = *x.shape();
    let hw = h * w;
    let keep = 1.0 / (1.0 - p);
    let mask: Vec<f32> = (0..b * c)
        .map(|_| if rng.gen::<f32>() < p { 0.0 } else { keep })
        .collect();
    let xv = to_host(&x);
    let mut out = xv;
    for (i, m) in mask.iter().enumerate() {
        out[i * hw..(i + 1) * hw].iter_mut().for_each(|v| *v *= m);
    }
    unary_op(x, (b, c, h, w), out, move || {
        Box::new(move |gy, gx| {
            for (i, m) in mask.iter().enumerate() {
                for (d, s) in gx[i * hw..(i + 1) * hw]
                    .iter_mut()
                    .zip(&gy[i * hw..(i + 1) * hw])
                {
                    *d += s * m;
                }
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::layout::{from_pixels, to_pixels};
    use crate::ops::tensor::Dev;
    use rand::SeedableRng;

    #[test]
    fn dropout2d_drops_whole_channels_scales_survivors_and_is_identity_in_eval() {
        let dev = Dev::default();
        let x: Act = dev.ones_like(&(2, 8, 3, 3));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let x_in = x.clone();
        let y = dropout2d(x.leaky_trace(), 0.5, true, &mut rng).unwrap();
        let yv = y.as_vec();
        let mut dropped = 0;
        for ch in yv.chunks(9) {
            assert!(ch.iter().all(|&v| v == ch[0]) && (ch[0] == 0.0 || ch[0] == 2.0));
            dropped += (ch[0] == 0.0) as usize;
        }
        assert!(dropped > 0 && dropped < 16);
        let g = y.sum().backward().get(&x_in).as_vec();
        assert_eq!(g, yv, "gradient of Σ y is the mask");
        let e = dropout2d(x_in.clone(), 0.5, false, &mut rng).unwrap();
        assert_eq!(e.as_vec(), x_in.as_vec());
    }

    #[test]
    fn concat_and_pixel_layouts_round_trip_with_gradients() {
        let dev = Dev::default();
        let a: Act = dev.tensor_from_vec((0..12).map(|v| v as f32).collect(), (2, 1, 2, 3));
        let b: Act = dev.tensor_from_vec((0..24).map(|v| 100.0 + v as f32).collect(), (2, 2, 2, 3));
        let (a_in, b_in) = (a.clone(), b.clone());
        let c = concat_channels(a.leaky_trace(), b.leaky_trace()).unwrap();
        assert_eq!(*c.shape(), (2, 3, 2, 3));
        let cv = c.as_vec();
        assert_eq!(&cv[..6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(cv[6], 100.0);
        assert_eq!(cv[18], 6.0);
        let p = to_pixels(c).unwrap();
        assert_eq!(*p.shape(), (12, 3));
        let pv = p.as_vec();
        assert_eq!(&pv[..3], &[0.0, 100.0, 106.0]);
        let back = from_pixels(p, 2, 2, 3).unwrap();
        assert_eq!(back.as_vec(), cv);
        let w: Act = dev.tensor_from_vec((0..36).map(|v| v as f32).collect(), (2, 3, 2, 3));
        let grads = (back * w).sum().backward();
        let ga = grads.get(&a_in).as_vec();
        let gb = grads.get(&b_in).as_vec();
        assert_eq!(&ga[..6], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(&ga[6..], &[18.0, 19.0, 20.0, 21.0, 22.0, 23.0]);
        assert_eq!(gb[0], 6.0);
        assert!(concat_channels(a_in, dev.zeros_like(&(2, 1, 2, 2))).is_err());
    }
}
