//! The whole segmentation network: backbone → decoder → Dropout2d → 1×1 projection to D
//! (conv-BN-ReLU, as in the reference code) → head.
//!
//! [`SegNet`] is the feature extractor f_θ (image → per-pixel D-dim features); the head is
//! kept apart in [`SegModel`] so that every head sees the same features.

use dfdx::shapes::HasShape;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::activation::dropout2d;
use super::backbone::{Backbone, BackboneConfig, ConvBn};
use super::conv2d::ConvSpec;
use super::decoder::{Decoder, DecoderConfig};
use super::head::Head;
use super::{Act, AnyTape, Ctx, Dev, Param, Params};
use crate::error::{GmmSegError, Result};

/// Network hyper-parameters. Validated by [`NetConfig::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Backbone (see [`BackboneConfig`] for defaults).
    pub backbone: BackboneConfig,
    /// Decoder (see [`DecoderConfig`] for defaults).
    pub decoder: DecoderConfig,
    /// Feature dimension D after the projection (default 64, the paper's).
    pub feature_dim: usize,
    /// Dropout2d probability before the projection (default 0.1, the reference code's).
    pub dropout: f32,
    /// ReLU after the projection's batch norm (default `true`: the reference code's
    /// conv-BN-ReLU). Off, the features the head sees are batch-normalised but signed, so
    /// no channel is half zeros — a factor of the `gap` study. Left out of the JSON when on.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub projection_relu: bool,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            backbone: BackboneConfig::default(),
            decoder: DecoderConfig::default(),
            feature_dim: 64,
            dropout: 0.1,
            projection_relu: true,
        }
    }
}

impl NetConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] naming the field.
    pub fn check(&self) -> Result<()> {
        self.backbone.check()?;
        self.decoder.check()?;
        if self.feature_dim == 0 {
            return Err(GmmSegError::config(
                "net.feature_dim",
                "must be ≥ 1 (paper: 64)",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(GmmSegError::config(
                "net.dropout",
                format!("must be in [0, 1), got {}", self.dropout),
            ));
        }
        Ok(())
    }

    /// Stride of the features the head sees.
    pub fn feature_stride(&self) -> usize {
        match self.decoder.kind {
            super::decoder::DecoderKind::Fcn => self.backbone.output_stride(),
            super::decoder::DecoderKind::Deeplab => self.backbone.low_level_stride(),
        }
    }
}

/// The feature extractor f_θ.
#[derive(Clone, Debug)]
pub struct SegNet {
    /// Its configuration.
    pub config: NetConfig,
    /// Backbone.
    pub backbone: Backbone,
    /// Decoder.
    pub decoder: Decoder,
    /// 1×1 projection to D (conv-BN-ReLU).
    pub projection: ConvBn,
}

impl SegNet {
    /// Builds the network with random weights drawn from `rng`.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] from [`NetConfig::check`].
    pub fn new(dev: &Dev, config: &NetConfig, rng: &mut impl Rng) -> Result<Self> {
        config.check()?;
        let backbone = Backbone::new(dev, "backbone", &config.backbone, rng)?;
        let decoder = Decoder::new(
            dev,
            "decoder",
            &config.decoder,
            backbone.low_channels(),
            backbone.out_channels(),
            rng,
        )?;
        let spec = ConvSpec::pointwise(config.decoder.channels, config.feature_dim);
        let projection = ConvBn::new(dev, "projection", spec, config.projection_relu, rng);
        Ok(SegNet {
            config: config.clone(),
            backbone,
            decoder,
            projection,
        })
    }

    /// Projected features.
    ///
    /// # Shapes
    /// (B, 3, H, W) → (B, D, H/s, W/s), s = [`NetConfig::feature_stride`] (rounded up).
    ///
    /// # Errors
    /// [`GmmSegError::Shape`] for an input without 3 channels or too small for the strides.
    pub fn features<T: AnyTape>(&mut self, x: Act<T>, ctx: &mut Ctx) -> Result<Act<T>> {
        if x.shape().1 != 3 {
            return Err(GmmSegError::shape(
                "images",
                format!("expected (B, 3, H, W), got {:?}", x.shape()),
            ));
        }
        let b = self.backbone.forward(x, ctx)?;
        let y = self.decoder.forward(b, ctx)?;
        let y = dropout2d(y, self.config.dropout, ctx.train, &mut ctx.rng)?;
        self.projection.forward(y, ctx)
    }
}

impl Params for SegNet {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        self.backbone.visit(f);
        self.decoder.visit(f);
        self.projection.visit(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.backbone.visit_mut(f);
        self.decoder.visit_mut(f);
        self.projection.visit_mut(f);
    }
}

/// Network plus head: everything a checkpoint holds besides optimiser state.
pub struct SegModel {
    /// Feature extractor.
    pub net: SegNet,
    /// Classifier on the features.
    pub head: Box<dyn Head>,
}

impl SegModel {
    /// Evaluation forward (running batch-norm statistics, no dropout, no tape).
    ///
    /// # Shapes
    /// images (B, 3, H, W), normalised → logits (B, C, h, w) and head anomaly scores
    /// (B, 1, h, w) at feature resolution.
    ///
    /// # Errors
    /// Shape errors from the network.
    pub fn infer(&mut self, images: &ndarray::Array4<f32>) -> Result<super::head::HeadOutput> {
        let dev = self.net.projection.conv.weight.value.device().clone();
        let x = super::act_from_array(&dev, images);
        let feats = self.net.features(x, &mut Ctx::eval())?;
        self.head.infer(feats)
    }
}

impl SegModel {
    /// Evaluation-mode projected features (for post-hoc GMMs, Mahalanobis, feature plots).
    ///
    /// # Shapes
    /// images (B, 3, H, W), normalised → (B, D, h, w).
    ///
    /// # Errors
    /// Shape errors from the network.
    pub fn features_eval(&mut self, images: &ndarray::Array4<f32>) -> Result<Act> {
        let dev = self.net.projection.conv.weight.value.device().clone();
        self.net
            .features(super::act_from_array(&dev, images), &mut Ctx::eval())
    }
}

impl Params for SegModel {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        self.net.visit(f);
        self.head.visit(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.net.visit_mut(f);
        self.head.visit_mut(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::decoder::DecoderKind;
    use crate::nn::head::{HeadTarget, SoftmaxHead};
    use crate::nn::resample::resize_labels_nearest;
    use dfdx::prelude::*;
    use rand::SeedableRng;
    use std::collections::HashSet;

    #[test]
    fn both_decoders_give_features_at_their_stride_and_gradients_reach_every_parameter() {
        let dev = Dev::default();
        for kind in [DecoderKind::Fcn, DecoderKind::Deeplab] {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
            let mut cfg = NetConfig::default();
            cfg.decoder.kind = kind;
            let mut net = SegNet::new(&dev, &cfg, &mut rng).unwrap();
            let mut head = SoftmaxHead::new(&dev, "head", 64, 3, &mut rng).unwrap();
            let x: Act = dev.sample_normal_like(&(2, 3, 32, 32));
            let mut ctx = Ctx::train(1);
            let f = net.features(x.leaky_trace(), &mut ctx).unwrap();
            let s = cfg.feature_stride();
            assert_eq!(*f.shape(), (2, 64, 32 / s, 32 / s), "{kind:?}");
            let labels = ndarray::Array3::from_shape_fn((2, 32, 32), |(_, y, _)| (y / 11) as u8);
            let lf = resize_labels_nearest(&labels, 32 / s, 32 / s);
            let loss = head
                .loss(
                    f,
                    &HeadTarget {
                        labels: &labels,
                        labels_feat: &lf,
                    },
                )
                .unwrap();
            let grads = loss.backward();
            let mut missing = HashSet::new();
            let model = SegModel {
                net,
                head: Box::new(head),
            };
            model.visit(&mut |p| {
                if p.kind != crate::nn::ParamKind::Buffer {
                    let g = grads.get(&p.value).as_vec();
                    if g.iter().all(|v| *v == 0.0) {
                        missing.insert(p.name.clone());
                    }
                }
            });
            assert!(missing.is_empty(), "{kind:?}: no gradient for {missing:?}");
        }
    }

    /// The whole network's gradient (through residuals, the ASPP branches, the low-level skip
    /// and batch norm in training mode) against a central finite difference of the loss along
    /// a random direction of each of a few parameter tensors.
    #[test]
    fn network_gradient_matches_directional_finite_difference() {
        use rand::Rng;
        let dev = Dev::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut cfg = NetConfig {
            dropout: 0.0,
            ..NetConfig::default()
        };
        cfg.backbone.widths = vec![4, 6, 8];
        cfg.backbone.stem = 4;
        cfg.decoder.channels = 8;
        cfg.decoder.aspp_channels = 4;
        cfg.decoder.low_channels = 4;
        cfg.feature_dim = 8;
        let mut net = SegNet::new(&dev, &cfg, &mut rng).unwrap();
        let mut head = SoftmaxHead::new(&dev, "head", 8, 3, &mut rng).unwrap();
        // a non-tiny classifier, so that the network's gradients are far above f32 noise
        let wc: Vec<f32> = (0..24).map(|_| rng.gen_range(-1.0..1.0)).collect();
        head.classifier.weight.set(&wc).unwrap();
        let xv: Vec<f32> = (0..2 * 3 * 32 * 32)
            .map(|_| rng.gen_range(-1.0..1.0))
            .collect();
        let labels = ndarray::Array3::from_shape_fn((2, 16, 16), |(n, y, x)| {
            ((n + y / 6 + x / 7) % 3) as u8
        });
        let lf = resize_labels_nearest(&labels, 8, 8);
        let loss_of = |net: &mut SegNet, head: &mut SoftmaxHead, traced: bool| {
            let x: Act = dev.tensor_from_vec(xv.clone(), (2, 3, 32, 32));
            let f = net.features(x.leaky_trace(), &mut Ctx::train(0)).unwrap();
            let l = head
                .loss(
                    f,
                    &HeadTarget {
                        labels: &labels,
                        labels_feat: &lf,
                    },
                )
                .unwrap();
            if traced {
                (l.array() as f64, Some(l.backward()))
            } else {
                (l.array() as f64, None)
            }
        };
        // (the image-pooling branch is left out: its batch norm over B = 2 values of 1×1 maps
        // outputs ±1 whatever the weights, so its gradient is legitimately ≈ 0)
        let (_, grads) = loss_of(&mut net, &mut head, true);
        let grads = grads.unwrap();
        let names = [
            "backbone.stem.conv.weight",
            "backbone.stage0.0.a.bn.scale",
            "decoder.low.conv.weight",
            "decoder.aspp.fuse.conv.weight",
            "decoder.aspp.r2.conv.weight",
            "projection.conv.weight",
        ];
        for name in names {
            let mut found = None;
            net.visit(&mut |p| {
                if p.name == name {
                    found = Some((p.to_vec(), grads.get(&p.value).as_vec()));
                }
            });
            let (w0, g) = found.unwrap_or_else(|| panic!("no parameter {name}"));
            let d: Vec<f32> = (0..w0.len()).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let analytic: f64 = g
                .iter()
                .zip(&d)
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum();
            // small steps: the loss is piecewise smooth (ReLU kinks), larger ones cross kinks;
            // 1e-4 keeps the f32 noise of the difference below ~3e-4
            let eps = 1e-4f32;
            let set = |net: &mut SegNet, k: f32| {
                let w: Vec<f32> = w0.iter().zip(&d).map(|(w, d)| w + k * d).collect();
                net.visit_mut(&mut |p| {
                    if p.name == name {
                        p.set(&w).unwrap();
                    }
                });
            };
            set(&mut net, eps);
            let lp = loss_of(&mut net, &mut head, false).0;
            set(&mut net, -eps);
            let lm = loss_of(&mut net, &mut head, false).0;
            set(&mut net, 0.0);
            let numeric = (lp - lm) / (2.0 * eps as f64);
            assert!(
                (numeric - analytic).abs() < 0.03 * analytic.abs().max(numeric.abs()) + 5e-4,
                "{name}: numeric {numeric} vs analytic {analytic}"
            );
            assert!(
                analytic.abs() > 1e-3,
                "{name}: gradient {analytic} too small for the check to mean anything"
            );
        }
    }
}
