//! The tensor vocabulary every op and layer shares: the device, runtime-shaped activation
//! maps, named parameters, and host copies of tensor values.
//!
//! Activations are `Tensor<(usize, usize, usize, usize), f32, Cpu, T>` in NCHW layout
//! ([`Act`]); batch, channel and spatial sizes are runtime values, so widths and depths are
//! ordinary config fields (JSON, command line) rather than const generics. A parameter
//! ([`Param`]) is a flat dfdx tensor plus its logical shape and a name: what optimisers and
//! checkpoints key their state by.

use dfdx::prelude::*;
use rand::Rng;
use rand_distr::{Distribution, Normal};

use crate::error::{GmmSegError, Result};

/// The device every network runs on.
pub type Dev = Cpu;
/// NCHW shape with runtime sizes.
pub type Shape4 = (usize, usize, usize, usize);
/// An activation map (B, C, H, W); `T` is `OwnedTape<f32, Cpu>` when gradients are recorded.
pub type Act<T = NoneTape> = Tensor<Shape4, f32, Cpu, T>;
/// A scalar (a loss).
pub type Scalar<T = NoneTape> = Tensor<(), f32, Cpu, T>;
/// Storage of a parameter: flat, its logical shape lives in [`Param::shape`].
pub type Flat = Tensor<(usize,), f32, Cpu>;
/// The tape of a training forward pass.
pub type Tp = OwnedTape<f32, Cpu>;

/// What a forward pass can be generic over: `OwnedTape` (training, gradients recorded) or
/// `NoneTape` (evaluation). Merging is needed wherever two branches meet (residuals, concat).
pub trait AnyTape: Tape<f32, Cpu> + Merge<Self> + Default {}
impl<T: Tape<f32, Cpu> + Merge<T> + Default> AnyTape for T {}

/// Splits `x` into a tape-carrying continuation and a tape-less twin with the same id, for a
/// second use of the same activation (a skip connection). Ops on `twin.retaped::<T>()` write
/// their gradient to the shared id; dfdx runs backward ops in reverse creation order, so the
/// gradient from both uses is complete before the producer of `x` reads it.
pub fn fork<T: AnyTape>(x: Act<T>) -> (Act<T>, Act) {
    let (x, tape) = x.split_tape();
    let twin = x.clone();
    (x.put_tape(tape), twin)
}

/// How an optimiser treats a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamKind {
    /// A weight matrix or kernel: trained, with weight decay.
    Weight,
    /// A bias or a normalisation scale/shift: trained, no weight decay (mmseg's `norm` rule).
    NoDecay,
    /// A running statistic (batch-norm mean/variance): saved in checkpoints, never trained.
    Buffer,
}

/// One named parameter or buffer.
#[derive(Clone, Debug)]
pub struct Param {
    /// Dotted path, unique in a network, e.g. `backbone.stage1.0.conv1.weight`.
    pub name: String,
    /// Logical shape (the storage is flat).
    pub shape: Vec<usize>,
    /// The values; its dfdx id is what gradients are keyed by.
    pub value: Flat,
    /// Trained with or without decay, or not trained.
    pub kind: ParamKind,
}

impl Param {
    /// A parameter holding `data` with the logical `shape`.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape` (an internal invariant).
    pub fn new(
        dev: &Dev,
        name: impl Into<String>,
        shape: &[usize],
        data: Vec<f32>,
        kind: ParamKind,
    ) -> Self {
        let n: usize = shape.iter().product();
        assert_eq!(n, data.len(), "parameter data does not match its shape");
        Param {
            name: name.into(),
            shape: shape.to_vec(),
            value: dev.tensor_from_vec(data, (n,)),
            kind,
        }
    }

    /// Kaiming-normal (fan-in, ReLU gain) initialisation, the torchvision default for convs.
    pub fn kaiming(
        dev: &Dev,
        name: impl Into<String>,
        shape: &[usize],
        fan_in: usize,
        rng: &mut impl Rng,
    ) -> Self {
        let std = (2.0 / fan_in.max(1) as f32).sqrt();
        let normal = Normal::new(0.0f32, std).expect("finite std");
        let n: usize = shape.iter().product();
        let data = (0..n).map(|_| normal.sample(rng)).collect();
        Self::new(dev, name, shape, data, ParamKind::Weight)
    }

    /// A constant-filled parameter (biases, norm scales, running statistics).
    pub fn constant(
        dev: &Dev,
        name: impl Into<String>,
        shape: &[usize],
        value: f32,
        kind: ParamKind,
    ) -> Self {
        let n: usize = shape.iter().product();
        Self::new(dev, name, shape, vec![value; n], kind)
    }

    /// Number of scalars.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// A copy of the values.
    pub fn to_vec(&self) -> Vec<f32> {
        to_host(&self.value)
    }

    /// Overwrites the values in place (keeps the dfdx id, so gradients still find it).
    ///
    /// # Errors
    /// [`GmmSegError::Shape`] when `data` has the wrong length.
    pub fn set(&mut self, data: &[f32]) -> Result<()> {
        if data.len() != self.numel() {
            return Err(GmmSegError::shape(
                self.name.clone(),
                format!(
                    "expected {} values ({:?}), got {}",
                    self.numel(),
                    self.shape,
                    data.len()
                ),
            ));
        }
        self.value.copy_from(data);
        Ok(())
    }
}

/// A copy of a tensor's values in logical (row-major) order.
///
/// dfdx's `as_vec` walks a strided index iterator element by element, which profiling showed
/// at ~12% of a training step; this makes the tensor contiguous (free when it already is:
/// same buffer, no copy) and copies the buffer in one `memcpy`.
pub fn to_host<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> Vec<f32> {
    match t.retaped::<NoneTape>().try_contiguous() {
        Ok(c) => {
            let mut v = vec![0.0f32; c.shape().num_elements()];
            c.copy_into(&mut v);
            v
        }
        Err(_) => t.as_vec(),
    }
}

/// Builds an activation tensor from an ndarray batch of images.
///
/// # Shapes
/// `images`: (B, C, H, W) → [`Act`] (B, C, H, W).
pub fn act_from_array(dev: &Dev, images: &ndarray::Array4<f32>) -> Act {
    let s = images.shape();
    let shape = (s[0], s[1], s[2], s[3]);
    let data: Vec<f32> = images.iter().copied().collect();
    dev.tensor_from_vec(data, shape)
}

/// Copies an activation tensor into an ndarray.
///
/// # Shapes
/// [`Act`] (B, C, H, W) → (B, C, H, W).
pub fn act_to_array<T>(x: &Act<T>) -> ndarray::Array4<f32> {
    let (b, c, h, w) = *x.shape();
    ndarray::Array4::from_shape_vec((b, c, h, w), to_host(x)).expect("shape matches data")
}
