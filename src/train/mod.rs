//! Training: configuration and profiles ([`config`]), the deterministic batcher ([`batch`]),
//! optimisers with serialisable state ([`optim`]), checkpoints ([`checkpoint`]), evaluation
//! ([`eval`]), the loop itself ([`trainer`]) and a small synthetic dataset ([`toy`]).
//!
//! Typical use (the command line's `gmmseg train` does exactly this):
//! ```no_run
//! use gmmseg::train::{config::TrainConfig, toy::{ToyShapes, ToySplit}, trainer::{Trainer, print_every}};
//! let cfg = TrainConfig::quick().check()?;
//! let train = ToyShapes::new(ToySplit::Train, 512, 64, 0)?;
//! let val = ToyShapes::new(ToySplit::Val, 64, 64, 0)?;
//! let mut t = Trainer::new(cfg, 4)?.with_out_dir(std::path::Path::new("runs/toy"))?;
//! let report = t.fit(&train, Some(&val), &mut print_every(50))?;
//! # Ok::<(), gmmseg::GmmSegError>(())
//! ```

pub mod batch;
pub mod checkpoint;
pub mod config;
pub mod eval;
pub mod optim;
pub mod posthoc;
pub mod toy;
pub mod trainer;
