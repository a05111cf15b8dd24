//! The softmax baseline head.

use rand::Rng;

use super::{Head, HeadOutput};
use crate::error::{GmmSegError, Result};
use crate::nn::conv2d::{Conv2d, ConvSpec};
use crate::nn::{Act, Dev, Param, Params, Tp};

/// The softmax baseline: a linear 1×1 convolution D → C with bias (mmseg's `conv_seg`).
#[derive(Clone, Debug)]
pub struct SoftmaxHead {
    /// The classifier.
    pub classifier: Conv2d,
}

impl SoftmaxHead {
    /// A head for `classes` classes on `dim`-dimensional features, parameters `name.classifier.*`.
    ///
    /// # Errors
    /// [`GmmSegError::InvalidConfig`] for zero classes or dimensions.
    pub fn new(
        dev: &Dev,
        name: &str,
        dim: usize,
        classes: usize,
        rng: &mut impl Rng,
    ) -> Result<Self> {
        if classes == 0 || dim == 0 {
            return Err(GmmSegError::config(
                "head",
                format!("needs ≥ 1 class and feature dim, got C={classes}, D={dim}"),
            ));
        }
        let spec = ConvSpec::pointwise(dim, classes);
        let mut classifier = Conv2d::new(dev, &format!("{name}.classifier"), spec, true, rng);
        // mmseg initialises conv_seg with N(0, 0.01): start from near-uniform posteriors.
        let w: Vec<f32> = classifier
            .weight
            .to_vec()
            .iter()
            .map(|v| v * 0.01 / (2.0 / dim as f32).sqrt())
            .collect();
        classifier.weight.set(&w)?;
        Ok(SoftmaxHead { classifier })
    }
}

impl Params for SoftmaxHead {
    fn visit(&self, f: &mut dyn FnMut(&Param)) {
        self.classifier.visit(f)
    }
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param)) {
        self.classifier.visit_mut(f)
    }
}

impl Head for SoftmaxHead {
    fn kind(&self) -> &'static str {
        "softmax"
    }
    fn num_classes(&self) -> usize {
        self.classifier.spec.cout
    }
    fn feature_dim(&self) -> usize {
        self.classifier.spec.cin
    }
    fn logits_train(&mut self, feats: Act<Tp>) -> Result<Act<Tp>> {
        self.classifier.forward(feats)
    }
    fn infer(&self, feats: Act) -> Result<HeadOutput> {
        Ok(HeadOutput {
            logits: self.classifier.forward(feats)?,
            anomaly: Vec::new(),
        })
    }
}
