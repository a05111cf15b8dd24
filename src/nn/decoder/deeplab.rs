//! DeepLabV3+-lite (Chen et al. 2018), sized for 64–128 px inputs.
//!
//! ASPP on the last stage: a 1×1 branch, one dilated 3×3 branch per rate, and an
//! image-pooling branch (global average → 1×1 conv-BN-ReLU → broadcast back by bilinear
//! resize), concatenated and fused by a 1×1 conv-BN-ReLU. The result is bilinearly up-sampled
//! to the low-level features' size, concatenated with the low-level features reduced by a
//! 1×1 conv-BN-ReLU, and refined by two 3×3 conv-BN-ReLU.

use rand::Rng;

use super::DecoderConfig;
use crate::error::Result;
use crate::nn::activation::concat_channels;
use crate::nn::backbone::{BackboneOut, ConvBn};
use crate::nn::conv2d::ConvSpec;
use crate::nn::resample::{global_avg_pool, resize_bilinear};
use crate::nn::{fork, Act, AnyTape, Ctx, Dev, Param, Params};
use dfdx::shapes::HasShape;

/// The DeepLabV3+-lite decoder.
#[derive(Clone, Debug)]
pub struct DeepLabLite {
    /// ASPP 1×1 branch.
    pub aspp_1x1: ConvBn,
    /// ASPP dilated 3×3 branches, one per rate.
    pub aspp_dilated: Vec<ConvBn>,
    /// ASPP image-pooling branch (1×1 conv after global pooling).
    pub aspp_pool: ConvBn,
    /// 1×1 fusion of the concatenated ASPP branches.
    pub aspp_fuse: ConvBn,
    /// 1×1 reduction of the low-level skip.
    pub low_reduce: ConvBn,
    /// First 3×3 refinement (ASPP ‖ low → channels).
    pub refine1: ConvBn,
    /// Second 3×3 refinement.
    pub refine2: ConvBn,
}

impl DeepLabLite {
    /// Builds it for a backbone with `low_in` low-level and `high_in` last-stage channels.
    pub fn new(
        dev: &Dev,
        name: &str,
        cfg: &DecoderConfig,
        low_in: usize,
        high_in: usize,
        rng: &mut impl Rng,
    ) -> Self {
        let a = cfg.aspp_channels;
        let pw = ConvSpec::pointwise;
        let branches = 2 + cfg.aspp_rates.len();
        DeepLabLite {
            aspp_1x1: ConvBn::new(dev, &format!("{name}.aspp.b0"), pw(high_in, a), true, rng),
            aspp_dilated: cfg
                .aspp_rates
                .iter()
                .enumerate()
                .map(|(i, &r)| {
                    ConvBn::new(
                        dev,
                        &format!("{name}.aspp.r{}", i + 1),
                        ConvSpec::same(high_in, a, 3, 1, r),
                        true,
                        rng,
                    )
                })
                .collect(),
            aspp_pool: ConvBn::new(dev, &format!("{name}.aspp.pool"), pw(high_in, a), true, rng),
            aspp_fuse: ConvBn::new(
                dev,
                &format!("{name}.aspp.fuse"),
                pw(a * branches, cfg.channels),
                true,
                rng,
            ),
            low_reduce: ConvBn::new(
                dev,
                &format!("{name}.low"),
                pw(low_in, cfg.low_channels),
                true,
                rng,
            ),
            refine1: ConvBn::new(
                dev,
                &format!("{name}.refine1"),
                ConvSpec::same(cfg.channels + cfg.low_channels, cfg.channels, 3, 1, 1),
                true,
                rng,
            ),
            refine2: ConvBn::new(
                dev,
                &format!("{name}.refine2"),
                ConvSpec::same(cfg.channels, cfg.channels, 3, 1, 1),
                true,
                rng,
            ),
        }
    }

    /// # Shapes
    /// low (B, Cl, H/4, W/4), high (B, Ch, H/8, W/8) → (B, channels, H/4, W/4).
    pub fn forward<T: AnyTape>(&mut self, x: BackboneOut<T>, ctx: &Ctx) -> Result<Act<T>> {
        let (_, _, h, w) = *x.high.shape();
        let (high, twin) = fork(x.high);
        let mut cat = self.aspp_1x1.forward(high, ctx)?;
        for branch in self.aspp_dilated.iter_mut() {
            let y = branch.forward(twin.clone().retaped::<T>(), ctx)?;
            cat = concat_channels(cat, y)?;
        }
        let pooled = global_avg_pool(twin.retaped::<T>())?;
        let pooled = resize_bilinear(self.aspp_pool.forward(pooled, ctx)?, h, w)?;
        cat = concat_channels(cat, pooled)?;
        let aspp = self.aspp_fuse.forward(cat, ctx)?;
        let (_, _, lh, lw) = *x.low.shape();
        let up = resize_bilinear(aspp, lh, lw)?;
        let low = self.low_reduce.forward(x.low.retaped::<T>(), ctx)?;
        let y = self.refine1.forward(concat_channels(up, low)?, ctx)?;
        self.refine2.forward(y, ctx)
    }
}

impl Params for DeepLabLite {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        self.aspp_1x1.visit(f);
        self.aspp_dilated.iter().for_each(|b| b.visit(f));
        self.aspp_pool.visit(f);
        self.aspp_fuse.visit(f);
        self.low_reduce.visit(f);
        self.refine1.visit(f);
        self.refine2.visit(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.aspp_1x1.visit_mut(f);
        self.aspp_dilated.iter_mut().for_each(|b| b.visit_mut(f));
        self.aspp_pool.visit_mut(f);
        self.aspp_fuse.visit_mut(f);
        self.low_reduce.visit_mut(f);
        self.refine1.visit_mut(f);
        self.refine2.visit_mut(f);
    }
}
