//! The crate's single error type.
//!
//! Every variant names the offending file, argument or field, so that the command-line tool
//! can print it as one line and a notebook user knows what to fix. Internal invariants use
//! `assert!` (documented under `# Panics`); anything a user can cause returns one of these.

use std::path::PathBuf;

/// Errors of the gmmseg library and command-line tool.
#[derive(Debug, thiserror::Error)]
pub enum GmmSegError {
    /// A configuration field is out of its valid range.
    #[error("invalid configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The field (or, from the command line, the flag) as the user wrote it.
        field: String,
        /// What is wrong and what is allowed.
        reason: String,
    },

    /// An argument (array, tensor, option) is invalid for a reason not covered below.
    #[error("invalid input `{what}`: {reason}")]
    InvalidInput {
        /// The argument.
        what: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Two inputs disagree in shape, or one input has the wrong number of dimensions.
    #[error("shape mismatch in `{what}`: {detail}")]
    Shape {
        /// The input whose shape is wrong.
        what: String,
        /// The shapes found and expected.
        detail: String,
    },

    /// An input holds NaN or ±inf.
    #[error("`{what}` holds a non-finite value (NaN or inf) at flat index {index}")]
    NonFinite {
        /// The input.
        what: String,
        /// Flat (row-major) index of the first non-finite value.
        index: usize,
    },

    /// A label is neither a valid class id nor the ignore value 255.
    #[error("`{what}` holds label {label} at flat index {index}, but there are {classes} classes: valid labels are 0..={}{}", .classes.saturating_sub(1), if *.label == 255 { " (255 = ignore is not accepted here)" } else { ", or 255 = ignore" })]
    LabelOutOfRange {
        /// The label input.
        what: String,
        /// The offending label.
        label: i64,
        /// Flat index of its first occurrence.
        index: usize,
        /// Number of classes.
        classes: usize,
    },

    /// An input that must not be empty is empty (no pixels, no valid labels, ...).
    #[error("`{what}` is empty: {detail}")]
    Empty {
        /// The empty input.
        what: String,
        /// Why it counts as empty.
        detail: String,
    },

    /// A quantity is mathematically undefined for the given input (e.g. AUROC with one class).
    #[error("{what} is undefined: {reason}")]
    Undefined {
        /// The quantity.
        what: String,
        /// Why it is undefined here.
        reason: String,
    },

    /// Reading or writing a file failed at the operating-system level.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A file exists but its contents are corrupt, truncated or of an unsupported kind.
    #[error("{}: {detail}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong in it.
        detail: String,
    },

    /// A checkpoint or results cache does not belong to the requested configuration.
    #[error("{}: {detail}", path.display())]
    Mismatch {
        /// The checkpoint or cache.
        path: PathBuf,
        /// What differs.
        detail: String,
    },

    /// Drawing a figure failed (backend or font error, or a file that cannot be written).
    #[error("cannot draw figure `{what}`: {detail}")]
    Plot {
        /// The figure.
        what: String,
        /// The backend's error.
        detail: String,
    },

    /// The tensor device failed (out of memory, or an internal size mismatch in dfdx).
    #[error("tensor device error: {detail}")]
    Device {
        /// The device's error.
        detail: String,
    },

    /// Training diverged (NaN or inf loss).
    #[error("training diverged at step {step}: {detail}")]
    Diverged {
        /// The optimiser step at which the loss became non-finite.
        step: usize,
        /// The loss and where it came from.
        detail: String,
    },
}

/// The crate's result type.
pub type Result<T, E = GmmSegError> = std::result::Result<T, E>;

/// A failed dfdx call on the CPU device (allocation, or a size dfdx rejects).
impl From<dfdx::tensor::CpuError> for GmmSegError {
    fn from(e: dfdx::tensor::CpuError) -> Self {
        GmmSegError::Device {
            detail: format!("{e:?}"),
        }
    }
}

impl GmmSegError {
    /// The same error with `section.` put before an [`GmmSegError::InvalidConfig`]'s field,
    /// so that a component's own check names the field by its path in the enclosing
    /// configuration (`mean_momentum` → `head.online.gmm.mean_momentum`). Other errors pass
    /// unchanged.
    pub fn within(self, section: &str) -> Self {
        match self {
            Self::InvalidConfig { field, reason } => Self::InvalidConfig {
                field: format!("{section}.{field}"),
                reason,
            },
            other => other,
        }
    }

    /// Shorthand for [`GmmSegError::InvalidConfig`].
    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`GmmSegError::InvalidInput`].
    pub fn input(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            what: what.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`GmmSegError::Shape`].
    pub fn shape(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Shape {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// Shorthand for [`GmmSegError::Empty`].
    pub fn empty(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::Empty {
            what: what.into(),
            detail: detail.into(),
        }
    }

    /// Shorthand for [`GmmSegError::Io`].
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// Shorthand for [`GmmSegError::File`].
    pub fn file(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        Self::File {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

/// Returns an error naming the first non-finite value of `values`, if any.
pub fn check_finite<'a>(what: &str, values: impl IntoIterator<Item = &'a f32>) -> Result<()> {
    match values.into_iter().position(|v| !v.is_finite()) {
        Some(index) => Err(GmmSegError::NonFinite {
            what: what.to_string(),
            index,
        }),
        None => Ok(()),
    }
}
