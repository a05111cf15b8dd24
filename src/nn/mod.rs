//! Network pieces on stable dfdx 0.13: convolution layers, normalisation, resampling, a
//! small ResNet-style backbone, FCN and DeepLabV3+-lite decoders, the 1×1 projection to
//! D = 64 and the classification heads.
//!
//! The ops these are built from — convolution, the likelihood ops, the tape plumbing — live
//! one layer down in [`crate::ops`], which explains why they are hand-written custom ops
//! (dfdx's own need nightly Rust). The tensor vocabulary ([`Act`], [`Param`], [`to_host`], …)
//! is defined there and re-exported here, as the networks speak it.
//!
//! Parameters are [`Param`]s: a flat dfdx tensor plus its logical shape and a name. Modules
//! expose them through [`Params`] (a visitor), which is all the optimisers
//! ([`crate::train::optim`]) and checkpoints need; unlike dfdx's own `Adam`, whose moment
//! buffers are private, our optimiser state is therefore serialisable and resume is exact.
//!
//! Module map: [`conv2d`] (the convolution layer), [`norm`] (batch norm), [`resample`]
//! (bilinear up-sampling, global average pooling), [`activation`] (ReLU, add, concat,
//! dropout), [`rowops`] (per-pixel normalisations and cross-entropy), [`backbone`],
//! [`decoder`], [`head`] (every classification head: softmax, generative and discriminative
//! GMM, post-hoc GMM, Mahalanobis), [`loss`], [`segnet`] (the whole network and its config).

pub mod activation;
pub mod backbone;
pub mod conv2d;
pub mod decoder;
pub mod head;
pub mod loss;
pub mod norm;
pub mod resample;
pub mod rowops;
pub mod segnet;

pub use crate::ops::tensor::{
    act_from_array, act_to_array, fork, to_host, Act, AnyTape, Dev, Flat, Param, ParamKind, Scalar,
    Shape4, Tp,
};

/// Anything that owns parameters: every layer, block and network.
///
/// The visit order is fixed (declaration order); optimiser state and checkpoints rely on names,
/// not order, but a fixed order keeps runs reproducible.
pub trait Params {
    /// Calls `f` on every parameter and buffer.
    fn visit(&self, f: &mut dyn FnMut(&Param));
    /// Calls `f` on every parameter and buffer, mutably.
    fn visit_mut(&mut self, f: &mut dyn FnMut(&mut Param));

    /// Number of trainable scalars.
    fn num_trainable(&self) -> usize {
        let mut n = 0;
        self.visit(&mut |p| {
            if p.kind != ParamKind::Buffer {
                n += p.numel()
            }
        });
        n
    }
}

/// Per-forward switches shared by all layers.
#[derive(Debug)]
pub struct Ctx {
    /// Training mode: batch statistics in batch norm (and running-stat updates), dropout on.
    pub train: bool,
    /// Randomness for dropout; seeded by the trainer per step, so runs are reproducible.
    pub rng: rand_chacha::ChaCha8Rng,
}

impl Ctx {
    /// Evaluation mode (running statistics, no dropout).
    pub fn eval() -> Self {
        use rand::SeedableRng;
        Ctx {
            train: false,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(0),
        }
    }

    /// Training mode with a dropout seed.
    pub fn train(seed: u64) -> Self {
        use rand::SeedableRng;
        Ctx {
            train: true,
            rng: rand_chacha::ChaCha8Rng::seed_from_u64(seed),
        }
    }
}
