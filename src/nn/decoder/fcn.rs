//! FCN decoder: two 3×3 conv-BN-ReLU on the last backbone stage (Long et al. 2015, as in
//! mmseg's `FCNHead` with `num_convs = 2, concat_input = False`).

use rand::Rng;

use super::DecoderConfig;
use crate::error::Result;
use crate::nn::backbone::ConvBn;
use crate::nn::conv2d::ConvSpec;
use crate::nn::{Act, AnyTape, Ctx, Dev, Param, Params};

/// The FCN decoder.
#[derive(Clone, Debug)]
pub struct Fcn {
    /// First conv (backbone channels → `channels`).
    pub conv1: ConvBn,
    /// Second conv (`channels` → `channels`).
    pub conv2: ConvBn,
}

impl Fcn {
    /// Builds it for a backbone with `cin` output channels.
    pub fn new(dev: &Dev, name: &str, cfg: &DecoderConfig, cin: usize, rng: &mut impl Rng) -> Self {
        Fcn {
            conv1: ConvBn::new(
                dev,
                &format!("{name}.conv1"),
                ConvSpec::same(cin, cfg.channels, 3, 1, 1),
                true,
                rng,
            ),
            conv2: ConvBn::new(
                dev,
                &format!("{name}.conv2"),
                ConvSpec::same(cfg.channels, cfg.channels, 3, 1, 1),
                true,
                rng,
            ),
        }
    }

    /// # Shapes
    /// (B, Cin, h, w) → (B, channels, h, w).
    pub fn forward<T: AnyTape>(&mut self, x: Act<T>, ctx: &Ctx) -> Result<Act<T>> {
        let y = self.conv1.forward(x, ctx)?;
        self.conv2.forward(y, ctx)
    }
}

impl Params for Fcn {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        self.conv1.visit(f);
        self.conv2.visit(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.conv1.visit_mut(f);
        self.conv2.visit_mut(f);
    }
}
