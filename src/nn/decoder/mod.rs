//! Decoders: from backbone features to a dense feature map that the projection and head read.
//!
//! - [`fcn::Fcn`]: two 3×3 conv-BN-ReLU on the last stage (mmseg's `FCNHead`, without the
//!   input concatenation), output at the backbone's output stride.
//! - [`deeplab::DeepLabLite`]: DeepLabV3+ with a small ASPP (1×1, dilated 3×3 branches and
//!   image pooling) and a low-level skip from the first stage, output at the low-level stride.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::backbone::BackboneOut;
use super::{Act, AnyTape, Ctx, Dev, Param, Params};
use crate::error::{GmmSegError, Result};

pub mod deeplab;
pub mod fcn;

/// Which decoder to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DecoderKind {
    /// FCN: convs on the last stage only.
    Fcn,
    /// DeepLabV3+-lite: ASPP + low-level skip.
    Deeplab,
}

impl std::fmt::Display for DecoderKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DecoderKind::Fcn => "fcn",
            DecoderKind::Deeplab => "deeplab",
        })
    }
}

/// Decoder hyper-parameters. Validated by [`DecoderConfig::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecoderConfig {
    /// FCN or DeepLabV3+-lite (default DeepLab, the paper's main architecture).
    pub kind: DecoderKind,
    /// Output channels of the decoder (default 64).
    pub channels: usize,
    /// Channels of each ASPP branch (DeepLab only; default 32).
    pub aspp_channels: usize,
    /// Dilations of the ASPP 3×3 branches (default [2, 4], sized for 8×8–16×16 maps; the
    /// paper's [12, 24, 36] assume 64×64+ maps at stride 8).
    pub aspp_rates: Vec<usize>,
    /// Channels the low-level skip is reduced to (DeepLab only; default 16, mmseg uses 48).
    pub low_channels: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        DecoderConfig {
            kind: DecoderKind::Deeplab,
            channels: 64,
            aspp_channels: 32,
            aspp_rates: vec![2, 4],
            low_channels: 16,
        }
    }
}

impl DecoderConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] naming the field.
    pub fn check(&self) -> Result<()> {
        if self.channels == 0 {
            return Err(GmmSegError::config("decoder.channels", "must be ≥ 1"));
        }
        if self.kind == DecoderKind::Deeplab {
            if self.aspp_channels == 0 {
                return Err(GmmSegError::config("decoder.aspp_channels", "must be ≥ 1"));
            }
            if self.low_channels == 0 {
                return Err(GmmSegError::config("decoder.low_channels", "must be ≥ 1"));
            }
            if self.aspp_rates.contains(&0) {
                return Err(GmmSegError::config(
                    "decoder.aspp_rates",
                    "dilations must be ≥ 1",
                ));
            }
        }
        Ok(())
    }
}

/// One of the decoders.
#[derive(Clone, Debug)]
pub enum Decoder {
    /// See [`fcn::Fcn`].
    Fcn(Box<fcn::Fcn>),
    /// See [`deeplab::DeepLabLite`].
    Deeplab(Box<deeplab::DeepLabLite>),
}

impl Decoder {
    /// Builds the decoder for a backbone with `low_in` / `high_in` channels.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] from [`DecoderConfig::check`].
    pub fn new(
        dev: &Dev,
        name: &str,
        cfg: &DecoderConfig,
        low_in: usize,
        high_in: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        cfg.check()?;
        Ok(match cfg.kind {
            DecoderKind::Fcn => Decoder::Fcn(Box::new(fcn::Fcn::new(dev, name, cfg, high_in, rng))),
            DecoderKind::Deeplab => Decoder::Deeplab(Box::new(deeplab::DeepLabLite::new(
                dev, name, cfg, low_in, high_in, rng,
            ))),
        })
    }

    /// # Shapes
    /// backbone outputs → (B, channels, h, w) with h, w those of `high` (FCN) or `low`
    /// (DeepLab).
    pub fn forward<T: AnyTape>(&mut self, x: BackboneOut<T>, ctx: &Ctx) -> Result<Act<T>> {
        match self {
            Decoder::Fcn(d) => d.forward(x.high, ctx),
            Decoder::Deeplab(d) => d.forward(x, ctx),
        }
    }
}

impl Params for Decoder {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        match self {
            Decoder::Fcn(d) => d.visit(f),
            Decoder::Deeplab(d) => d.visit(f),
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        match self {
            Decoder::Fcn(d) => d.visit_mut(f),
            Decoder::Deeplab(d) => d.visit_mut(f),
        }
    }
}
