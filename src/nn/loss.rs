//! Pixel-wise cross-entropy with an ignore label, as a fused custom op.
//!
//! `L = −(1/|V|) Σ_{p∈V} log softmax(z_p)[y_p]` over the valid pixels V (label ≠ 255).
//! Gradient: `∂L/∂z_p = (softmax(z_p) − onehot(y_p)) / |V|`.
//!
//! Reduction: mean over *valid* pixels (mmseg ≥ 0.24 `avg_non_ignore=True`, PyTorch's
//! `ignore_index` semantics). mmseg 0.22.1, which the reference code pins, divides by all
//! pixels instead; that only rescales the loss by the valid fraction of each batch, which an
//! adaptive optimiser mostly absorbs, and it makes the loss scale depend on how much of the
//! image is ignored, so we do not copy it. With no valid pixel the loss is 0 with zero gradient.

use dfdx::prelude::*;
use ndarray::Array3;

use super::{to_host, Act, Scalar};
use crate::data::IGNORE_LABEL;
use crate::error::{GmmSegError, Result};
use crate::ops::tape::unary_op;

/// Cross-entropy of per-pixel class scores against labels, ignoring label 255.
///
/// # Shapes
/// `logits` (B, C, H, W), `labels` (B, H, W) → scalar.
///
/// # Errors
/// [`GmmSegError::Shape`] if the sizes differ; [`GmmSegError::LabelOutOfRange`] for a label
/// that is neither `< C` nor 255.
pub fn cross_entropy<T: Tape<f32, Cpu>>(logits: Act<T>, labels: &Array3<u8>) -> Result<Scalar<T>> {
    let (b, c, h, w) = *logits.shape();
    if labels.dim() != (b, h, w) {
        return Err(GmmSegError::shape(
            "cross_entropy",
            format!("logits {:?} vs labels {:?}", logits.shape(), labels.dim()),
        ));
    }
    let hw = h * w;
    let lab: Vec<u8> = labels.iter().copied().collect();
    if let Some((index, &l)) = lab
        .iter()
        .enumerate()
        .find(|(_, &l)| l != IGNORE_LABEL && l as usize >= c)
    {
        return Err(GmmSegError::LabelOutOfRange {
            what: "labels".into(),
            label: l as i64,
            index,
            classes: c,
        });
    }
    let z = to_host(&logits);
    let valid = lab.iter().filter(|&&l| l != IGNORE_LABEL).count();
    let mut total = 0.0f64;
    // softmax probabilities, kept for the backward pass
    let mut prob = vec![0.0f32; z.len()];
    for n in 0..b {
        for p in 0..hw {
            let l = lab[n * hw + p];
            let at = |k: usize| (n * c + k) * hw + p;
            let m = (0..c).map(|k| z[at(k)]).fold(f32::NEG_INFINITY, f32::max);
            let s: f32 = (0..c).map(|k| (z[at(k)] - m).exp()).sum();
            for k in 0..c {
                prob[at(k)] = (z[at(k)] - m).exp() / s;
            }
            if l != IGNORE_LABEL {
                total += (s.ln() + m - z[at(l as usize)]) as f64;
            }
        }
    }
    let loss = if valid == 0 {
        0.0
    } else {
        (total / valid as f64) as f32
    };
    unary_op(logits, (), vec![loss], move || {
        Box::new(move |gy, gx| {
            if valid == 0 {
                return;
            }
            let g = gy[0] / valid as f32;
            for n in 0..b {
                for p in 0..hw {
                    let l = lab[n * hw + p];
                    if l == IGNORE_LABEL {
                        continue;
                    }
                    for k in 0..c {
                        let i = (n * c + k) * hw + p;
                        let onehot = if k == l as usize { 1.0 } else { 0.0 };
                        gx[i] += g * (prob[i] - onehot);
                    }
                }
            }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::Dev;
    use rand::{Rng, SeedableRng};

    #[test]
    fn value_and_gradient_match_definition() {
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(4);
        let (b, c, h, w) = (2, 3, 2, 2);
        let zv: Vec<f32> = (0..b * c * h * w)
            .map(|_| rng.gen_range(-2.0..2.0))
            .collect();
        let labels = Array3::from_shape_vec((b, h, w), vec![0, 1, 2, 255, 1, 1, 255, 0]).unwrap();
        let f = |zv: &[f32]| -> f64 {
            let mut t = 0.0f64;
            for n in 0..b {
                for p in 0..h * w {
                    let l = labels.as_slice().unwrap()[n * h * w + p];
                    if l == 255 {
                        continue;
                    }
                    let zs: Vec<f64> = (0..c).map(|k| zv[(n * c + k) * h * w + p] as f64).collect();
                    let lse = zs.iter().map(|v| v.exp()).sum::<f64>().ln();
                    t += lse - zs[l as usize];
                }
            }
            t / 6.0
        };
        let z: Act = dev.tensor_from_vec(zv.clone(), (b, c, h, w));
        let z_in = z.clone();
        let loss = cross_entropy(z.leaky_trace(), &labels).unwrap();
        assert!((loss.array() as f64 - f(&zv)).abs() < 1e-5);
        let g = loss.backward().get(&z_in).as_vec();
        for i in 0..zv.len() {
            let (mut p, mut m) = (zv.clone(), zv.clone());
            p[i] += 1e-2;
            m[i] -= 1e-2;
            let num = (f(&p) - f(&m)) / 2e-2;
            assert!((num - g[i] as f64).abs() < 1e-3, "{i}: {num} vs {}", g[i]);
        }
    }

    #[test]
    fn all_ignored_gives_zero_and_bad_labels_are_errors() {
        let dev = Dev::default();
        let z: Act = dev.zeros_like(&(1, 2, 1, 2));
        let l = Array3::from_elem((1, 1, 2), 255u8);
        assert_eq!(cross_entropy(z.clone(), &l).unwrap().array(), 0.0);
        let l = Array3::from_elem((1, 1, 2), 2u8);
        assert!(matches!(
            cross_entropy(z.clone(), &l),
            Err(GmmSegError::LabelOutOfRange { .. })
        ));
        let l = Array3::from_elem((1, 2, 2), 0u8);
        assert!(matches!(
            cross_entropy(z, &l),
            Err(GmmSegError::Shape { .. })
        ));
    }
}
