//! File input and output shared by the command-line tool and the library: NumPy `.npy` and
//! `.npz` files with dtype conversion, so that features exported from PyTorch or JAX (float32
//! or float64, any integer label dtype) load without a conversion step.

pub mod atomic;
pub mod npy;
