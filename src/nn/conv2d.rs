//! The convolution layer: a kernel and an optional bias around [`crate::ops::conv::conv2d`].

use dfdx::prelude::*;
use rand::Rng;

use super::{Act, Dev, Param, ParamKind, Params};
use crate::error::Result;
pub use crate::ops::conv::{conv2d, ConvSpec};

/// A convolution layer: weight (Cout, Cin, k, k), optional bias (Cout).
///
/// Layers followed by batch norm are built without bias (the norm's shift makes it redundant).
#[derive(Clone, Debug)]
pub struct Conv2d {
    /// Geometry.
    pub spec: ConvSpec,
    /// Kernel, Kaiming-normal initialised.
    pub weight: Param,
    /// Optional bias, zero initialised.
    pub bias: Option<Param>,
}

impl Conv2d {
    /// A new layer named `name` (its parameters are `name.weight`, `name.bias`).
    pub fn new(dev: &Dev, name: &str, spec: ConvSpec, bias: bool, rng: &mut impl Rng) -> Self {
        let k = spec.kernel;
        let weight = Param::kaiming(
            dev,
            format!("{name}.weight"),
            &[spec.cout, spec.cin, k, k],
            spec.k_len(),
            rng,
        );
        let bias = bias.then(|| {
            Param::constant(
                dev,
                format!("{name}.bias"),
                &[spec.cout],
                0.0,
                ParamKind::NoDecay,
            )
        });
        Conv2d { spec, weight, bias }
    }

    /// Applies the convolution.
    ///
    /// # Shapes
    /// (B, Cin, H, W) → (B, Cout, Ho, Wo); see [`conv2d`].
    pub fn forward<T: Tape<f32, Cpu>>(&self, x: Act<T>) -> Result<Act<T>> {
        conv2d(x, &self.weight, self.bias.as_ref(), &self.spec)
    }
}

impl Params for Conv2d {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        f(&self.weight);
        if let Some(b) = &self.bias {
            f(b);
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        f(&mut self.weight);
        if let Some(b) = &mut self.bias {
            f(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::GmmSegError;
    use crate::ops::conv::conv2d_direct;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn rand_vec(n: usize, rng: &mut impl Rng) -> Vec<f32> {
        (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
    }

    fn specs() -> Vec<(ConvSpec, (usize, usize, usize, usize))> {
        vec![
            (ConvSpec::same(3, 4, 3, 1, 1), (2, 3, 7, 6)),
            (ConvSpec::same(3, 5, 3, 2, 1), (2, 3, 9, 8)),
            (ConvSpec::same(2, 3, 3, 1, 2), (1, 2, 8, 9)),
            (ConvSpec::pointwise(4, 2), (3, 4, 5, 5)),
            (
                ConvSpec {
                    cin: 2,
                    cout: 3,
                    kernel: 1,
                    stride: 2,
                    padding: 0,
                    dilation: 1,
                },
                (2, 2, 6, 5),
            ),
            (
                ConvSpec {
                    cin: 2,
                    cout: 2,
                    kernel: 3,
                    stride: 2,
                    padding: 0,
                    dilation: 1,
                },
                (2, 2, 7, 8),
            ),
            (
                ConvSpec {
                    cin: 3,
                    cout: 2,
                    kernel: 2,
                    stride: 1,
                    padding: 1,
                    dilation: 3,
                },
                (1, 3, 6, 7),
            ),
        ]
    }

    #[test]
    fn forward_matches_direct_convolution() {
        let dev = Dev::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (spec, shape) in specs() {
            let conv = Conv2d::new(&dev, "c", spec, true, &mut rng);
            let mut conv = conv;
            let bvals = rand_vec(spec.cout, &mut rng);
            conv.bias.as_mut().unwrap().set(&bvals).unwrap();
            let n = shape.0 * shape.1 * shape.2 * shape.3;
            let xv = rand_vec(n, &mut rng);
            let x: Act = dev.tensor_from_vec(xv.clone(), shape);
            let y = conv.forward(x).unwrap().as_vec();
            let to64 = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
            let r = conv2d_direct(
                &to64(&xv),
                shape,
                &to64(&conv.weight.to_vec()),
                Some(&to64(&bvals)),
                &spec,
            );
            assert_eq!(y.len(), r.len(), "{spec:?}");
            for (a, b) in y.iter().zip(&r) {
                assert!((*a as f64 - b).abs() < 1e-4, "{spec:?}: {a} vs {b}");
            }
        }
    }

    /// Gradients of L = Σ y ⊙ R (R random) against central finite differences of the direct
    /// f64 convolution (the analytic dL/dθ is exact in f64, so only the f32 op is tested).
    #[test]
    fn gradients_match_finite_differences() {
        let dev = Dev::default();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        for (spec, shape) in specs() {
            let mut conv = Conv2d::new(&dev, "c", spec, true, &mut rng);
            conv.bias
                .as_mut()
                .unwrap()
                .set(&rand_vec(spec.cout, &mut rng))
                .unwrap();
            let n = shape.0 * shape.1 * shape.2 * shape.3;
            let xv = rand_vec(n, &mut rng);
            let x: Act = dev.tensor_from_vec(xv.clone(), shape);
            let x_in = x.clone();
            let y = conv.forward(x.leaky_trace()).unwrap();
            let (b, c, ho, wo) = *y.shape();
            let rv = rand_vec(b * c * ho * wo, &mut rng);
            let r: Act = dev.tensor_from_vec(rv.clone(), (b, c, ho, wo));
            let loss = (y * r).sum();
            let grads = loss.backward();
            let gx = grads.get(&x_in).as_vec();
            let gw = grads.get(&conv.weight.value).as_vec();
            let gb = grads.get(&conv.bias.as_ref().unwrap().value).as_vec();

            let to64 = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
            let (x64, w64, b64, r64) = (
                to64(&xv),
                to64(&conv.weight.to_vec()),
                to64(&conv.bias.as_ref().unwrap().to_vec()),
                to64(&rv),
            );
            let f = |x: &[f64], w: &[f64], bb: &[f64]| -> f64 {
                conv2d_direct(x, shape, w, Some(bb), &spec)
                    .iter()
                    .zip(&r64)
                    .map(|(a, b)| a * b)
                    .sum()
            };
            let eps = 1e-3;
            let check = |analytic: &[f32], which: usize| {
                let len = analytic.len();
                for i in (0..len).step_by((len / 17).max(1)) {
                    let (mut xp, mut wp, mut bp) = (x64.clone(), w64.clone(), b64.clone());
                    let (mut xm, mut wm, mut bm) = (x64.clone(), w64.clone(), b64.clone());
                    match which {
                        0 => {
                            xp[i] += eps;
                            xm[i] -= eps;
                        }
                        1 => {
                            wp[i] += eps;
                            wm[i] -= eps;
                        }
                        _ => {
                            bp[i] += eps;
                            bm[i] -= eps;
                        }
                    }
                    let num = (f(&xp, &wp, &bp) - f(&xm, &wm, &bm)) / (2.0 * eps);
                    assert!(
                        (num - analytic[i] as f64).abs() < 1e-3 * (1.0 + num.abs()),
                        "{spec:?} grad {which}[{i}]: numeric {num} vs analytic {}",
                        analytic[i]
                    );
                }
            };
            check(&gx, 0);
            check(&gw, 1);
            check(&gb, 2);
        }
    }

    #[test]
    fn rejects_wrong_channels_and_tiny_inputs() {
        let dev = Dev::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let conv = Conv2d::new(
            &dev,
            "c",
            ConvSpec {
                cin: 3,
                cout: 2,
                kernel: 3,
                stride: 1,
                padding: 0,
                dilation: 1,
            },
            false,
            &mut rng,
        );
        let x: Act = dev.zeros_like(&(1, 2, 5, 5));
        assert!(matches!(conv.forward(x), Err(GmmSegError::Shape { .. })));
        let x: Act = dev.zeros_like(&(1, 3, 2, 5));
        assert!(matches!(conv.forward(x), Err(GmmSegError::Shape { .. })));
    }
}
