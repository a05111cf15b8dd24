//! The numerical floor under [`crate::gmm`] and [`crate::nn`]: the dfdx tape plumbing of
//! custom ops, host copies and layout changes, the crate's one GEMM entry, the convolution op
//! and both log-likelihood ops, each with its backward pass.
//!
//! # Why this layer
//! dfdx 0.13's convolution and pooling need the `nightly` feature, which does not build on
//! stable Rust, so every spatial op and both likelihood ops are custom ops written against
//! dfdx's public tape API (`split_tape`, `try_tensor_from_vec`, `Tape::add_backward_op`,
//! `Gradients::{try_alloc_for, get, get_or_alloc_mut}`, `put_tape`) on `Cpu`, with the
//! numerical work done on host slices. Keeping them here lets the GMM (which owns its state
//! in ndarray) and the networks share them with no arrow between the two: `gmm` and `nn`
//! both depend on `ops`, `ops` on neither.
//!
//! A CUDA device would plug in at this level: each op's forward/backward body works on host
//! slices today; a `Cuda` impl would replace those bodies with cuBLAS GEMMs and kernels,
//! keeping the same tape plumbing.
//!
//! # Modules
//! - [`tensor`]: the device, activation and parameter types, host copies.
//! - [`tape`]: wrapping a host-computed output as an op with a backward closure.
//! - [`layout`]: channel-major maps ↔ pixel rows.
//! - [`gemm`]: the bounds-checked GEMM (the crate's only `unsafe gemm` call).
//! - [`conv`]: 2-d convolution (im2col + GEMM) and its f64 reference.
//! - [`loglik`]: the GMM log-likelihood table in GEMM form and its differentiable ops.

pub mod conv;
pub mod gemm;
pub mod layout;
pub mod loglik;
pub mod tape;
pub mod tensor;
