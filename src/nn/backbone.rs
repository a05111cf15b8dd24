//! A small ResNet-style backbone for 64–128 px inputs.
//!
//! Stem: 3×3 conv, stride 2 → BN → ReLU. Then stages of basic residual blocks (two 3×3
//! conv-BN pairs, identity or 1×1-conv-BN shortcut, ReLU after the sum), each stage with its
//! own width, block count, stride (of its first block) and dilation. Later stages use
//! dilation instead of stride, as DeepLab does, to keep the output stride at 8.
//!
//! Defaults (about 0.2 M parameters; output stride 8, low-level features at stride 4):
//! stem 16, widths [16, 32, 64], blocks [1, 1, 1], strides [2, 2, 1], dilations [1, 1, 2].

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::activation::{add, relu};
use super::conv2d::{Conv2d, ConvSpec};
use super::norm::BatchNorm2d;
use super::{fork, Act, AnyTape, Ctx, Dev, Param, Params};
use crate::error::{GmmSegError, Result};

/// Backbone hyper-parameters. Validated by [`BackboneConfig::check`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BackboneConfig {
    /// Stem output channels (default 16).
    pub stem: usize,
    /// Channels of each stage (default [16, 32, 64]).
    pub widths: Vec<usize>,
    /// Residual blocks per stage (default [1, 1, 1]).
    pub blocks: Vec<usize>,
    /// Stride of each stage's first block (default [2, 2, 1]).
    pub strides: Vec<usize>,
    /// Dilation of each stage's 3×3 convs (default [1, 1, 2]).
    pub dilations: Vec<usize>,
}

impl Default for BackboneConfig {
    fn default() -> Self {
        BackboneConfig {
            stem: 16,
            widths: vec![16, 32, 64],
            blocks: vec![1, 1, 1],
            strides: vec![2, 2, 1],
            dilations: vec![1, 1, 2],
        }
    }
}

impl BackboneConfig {
    /// Checks every field.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] naming the field.
    pub fn check(&self) -> Result<()> {
        let n = self.widths.len();
        if n == 0 {
            return Err(GmmSegError::config(
                "backbone.widths",
                "must list at least one stage",
            ));
        }
        for (name, v) in [
            ("blocks", &self.blocks),
            ("strides", &self.strides),
            ("dilations", &self.dilations),
        ] {
            if v.len() != n {
                return Err(GmmSegError::config(
                    format!("backbone.{name}"),
                    format!(
                        "must have one entry per stage ({n}, like `widths`), got {}",
                        v.len()
                    ),
                ));
            }
        }
        if self.stem == 0 || self.widths.contains(&0) {
            return Err(GmmSegError::config(
                "backbone.widths",
                "channel counts must be ≥ 1",
            ));
        }
        if self.blocks.contains(&0) || self.strides.contains(&0) || self.dilations.contains(&0) {
            return Err(GmmSegError::config(
                "backbone.blocks/strides/dilations",
                "entries must be ≥ 1",
            ));
        }
        Ok(())
    }

    /// Total down-sampling factor of the last stage.
    pub fn output_stride(&self) -> usize {
        2 * self.strides.iter().product::<usize>()
    }

    /// Down-sampling factor of the first stage (the low-level skip of DeepLabV3+).
    pub fn low_level_stride(&self) -> usize {
        2 * self.strides[0]
    }
}

/// Conv (no bias) → BN → optional ReLU.
#[derive(Clone, Debug)]
pub struct ConvBn {
    /// The convolution.
    pub conv: Conv2d,
    /// Its batch norm.
    pub bn: BatchNorm2d,
    /// Apply ReLU at the end.
    pub relu: bool,
}

impl ConvBn {
    /// A conv-BN(-ReLU) unit named `name` (`name.conv`, `name.bn`).
    pub fn new(dev: &Dev, name: &str, spec: ConvSpec, relu: bool, rng: &mut impl Rng) -> Self {
        ConvBn {
            conv: Conv2d::new(dev, &format!("{name}.conv"), spec, false, rng),
            bn: BatchNorm2d::new(dev, &format!("{name}.bn"), spec.cout),
            relu,
        }
    }

    /// # Shapes
    /// (B, Cin, H, W) → (B, Cout, Ho, Wo).
    pub fn forward<T: AnyTape>(&mut self, x: Act<T>, ctx: &Ctx) -> Result<Act<T>> {
        let y = self.bn.forward(self.conv.forward(x)?, ctx)?;
        Ok(if self.relu { relu(y) } else { y })
    }
}

impl Params for ConvBn {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        self.conv.visit(f);
        self.bn.visit(f);
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.conv.visit_mut(f);
        self.bn.visit_mut(f);
    }
}

/// A basic residual block (ResNet-18/34 style).
#[derive(Clone, Debug)]
pub struct BasicBlock {
    /// First 3×3 conv-BN-ReLU (carries the stride).
    pub a: ConvBn,
    /// Second 3×3 conv-BN.
    pub b: ConvBn,
    /// 1×1 conv-BN shortcut when the shape changes.
    pub shortcut: Option<ConvBn>,
}

impl BasicBlock {
    fn new(
        dev: &Dev,
        name: &str,
        cin: usize,
        cout: usize,
        stride: usize,
        dil: usize,
        rng: &mut impl Rng,
    ) -> Self {
        let shortcut = (cin != cout || stride != 1).then(|| {
            let spec = ConvSpec {
                stride,
                ..ConvSpec::pointwise(cin, cout)
            };
            ConvBn::new(dev, &format!("{name}.shortcut"), spec, false, rng)
        });
        BasicBlock {
            a: ConvBn::new(
                dev,
                &format!("{name}.a"),
                ConvSpec::same(cin, cout, 3, stride, dil),
                true,
                rng,
            ),
            b: ConvBn::new(
                dev,
                &format!("{name}.b"),
                ConvSpec::same(cout, cout, 3, 1, dil),
                false,
                rng,
            ),
            shortcut,
        }
    }

    fn forward<T: AnyTape>(&mut self, x: Act<T>, ctx: &Ctx) -> Result<Act<T>> {
        let (x, twin) = fork(x);
        let y = self.b.forward(self.a.forward(x, ctx)?, ctx)?;
        let s = match &mut self.shortcut {
            Some(sc) => sc.forward(twin.retaped::<T>(), ctx)?,
            None => twin.retaped::<T>(),
        };
        Ok(relu(add(y, s)?))
    }
}

impl Params for BasicBlock {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        self.a.visit(f);
        self.b.visit(f);
        if let Some(s) = &self.shortcut {
            s.visit(f);
        }
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.a.visit_mut(f);
        self.b.visit_mut(f);
        if let Some(s) = &mut self.shortcut {
            s.visit_mut(f);
        }
    }
}

/// The backbone's outputs.
pub struct BackboneOut<T> {
    /// First-stage features (stride [`BackboneConfig::low_level_stride`]), tape-less twin: use
    /// `low.retaped::<T>()` for the skip connection so gradients reach the backbone.
    pub low: Act,
    /// Last-stage features (stride [`BackboneConfig::output_stride`]), carrying the tape.
    pub high: Act<T>,
}

/// The ResNet-style backbone.
#[derive(Clone, Debug)]
pub struct Backbone {
    /// Its configuration.
    pub config: BackboneConfig,
    /// Stem conv-BN-ReLU (3 → stem, stride 2).
    pub stem: ConvBn,
    /// Stages of residual blocks.
    pub stages: Vec<Vec<BasicBlock>>,
}

impl Backbone {
    /// Builds a backbone with random (Kaiming) weights.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] from [`BackboneConfig::check`].
    pub fn new(dev: &Dev, name: &str, config: &BackboneConfig, rng: &mut impl Rng) -> Result<Self> {
        config.check()?;
        let stem = ConvBn::new(
            dev,
            &format!("{name}.stem"),
            ConvSpec::same(3, config.stem, 3, 2, 1),
            true,
            rng,
        );
        let mut cin = config.stem;
        let mut stages = Vec::new();
        for (s, &cout) in config.widths.iter().enumerate() {
            let mut blocks = Vec::new();
            for i in 0..config.blocks[s] {
                let stride = if i == 0 { config.strides[s] } else { 1 };
                blocks.push(BasicBlock::new(
                    dev,
                    &format!("{name}.stage{s}.{i}"),
                    cin,
                    cout,
                    stride,
                    config.dilations[s],
                    rng,
                ));
                cin = cout;
            }
            stages.push(blocks);
        }
        Ok(Backbone {
            config: config.clone(),
            stem,
            stages,
        })
    }

    /// Channels of the low-level (first-stage) output.
    pub fn low_channels(&self) -> usize {
        self.config.widths[0]
    }

    /// Channels of the last stage.
    pub fn out_channels(&self) -> usize {
        *self.config.widths.last().expect("checked non-empty")
    }

    /// # Shapes
    /// (B, 3, H, W) → low (B, widths\[0\], H/ls, W/ls), high (B, widths\[last\], H/os, W/os) (sizes
    /// rounded up).
    pub fn forward<T: AnyTape>(&mut self, x: Act<T>, ctx: &Ctx) -> Result<BackboneOut<T>> {
        let mut x = self.stem.forward(x, ctx)?;
        let mut low = None;
        for (s, stage) in self.stages.iter_mut().enumerate() {
            for block in stage.iter_mut() {
                x = block.forward(x, ctx)?;
            }
            if s == 0 {
                let (cont, twin) = fork(x);
                x = cont;
                low = Some(twin);
            }
        }
        Ok(BackboneOut {
            low: low.expect("at least one stage"),
            high: x,
        })
    }
}

impl Params for Backbone {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        self.stem.visit(f);
        self.stages.iter().flatten().for_each(|b| b.visit(f));
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.stem.visit_mut(f);
        self.stages
            .iter_mut()
            .flatten()
            .for_each(|b| b.visit_mut(f));
    }
}
