//! Training: configuration and profiles ([`config`]), optimisers with serialisable state
//! ([`optim`]), checkpoints ([`checkpoint`]), evaluation ([`eval`]) and the loop itself
//! ([`trainer`]). Batches come from [`crate::data::batch`].
//!
//! Typical use (the command line's `gmmseg train` does exactly this):
//! ```no_run
//! use gmmseg::data::toy::{ToyShapes, ToySplit};
//! use gmmseg::train::{config::TrainConfig, trainer::{Trainer, print_every}};
//! let cfg = TrainConfig::quick().check()?;
//! let train = ToyShapes::new(ToySplit::Train, 512, 64, 0)?;
//! let val = ToyShapes::new(ToySplit::Val, 64, 64, 0)?;
//! let mut t = Trainer::new(cfg, 4)?.with_out_dir(std::path::Path::new("runs/toy"))?;
//! let report = t.fit(&train, Some(&val), &mut print_every(50))?;
//! # Ok::<(), gmmseg::GmmSegError>(())
//! ```

pub mod checkpoint;
pub mod config;
pub mod eval;
pub mod optim;
pub mod posthoc;
pub mod trainer;
