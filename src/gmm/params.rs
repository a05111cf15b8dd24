//! The fitted state of a class-conditional diagonal GMM: means, variances, mixture weights.
//!
//! # Shapes
//! - `means`: (C, M, D)
//! - `variances`: (C, M, D), diagonal variances σ² (not standard deviations)
//! - `log_weights`: (C, M), log π_cm; each class's weights sum to 1.

use std::path::Path;

use ndarray::{Array2, Array3, ArrayView1, ArrayView2, Axis};
use ndarray_npy::{NpzReader, ReadNpzError};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{GmmSegError, Result};
use crate::ops::loglik::LogLikTable;

/// Parameters φ = {μ, σ², π} of C class-conditional mixtures of M diagonal Gaussians in R^D.
#[derive(Clone, Debug, PartialEq)]
pub struct GmmParams {
    /// Component means μ_cm, shape (C, M, D).
    pub means: Array3<f32>,
    /// Component diagonal variances σ²_cm, shape (C, M, D); all > 0.
    pub variances: Array3<f32>,
    /// Log mixture weights log π_cm, shape (C, M); `logsumexp` over M is 0 for every class.
    pub log_weights: Array2<f32>,
}

impl GmmParams {
    /// The GEMM operands that evaluate every component's log-likelihood at once.
    pub fn loglik_table(&self) -> LogLikTable {
        LogLikTable::new(
            self.means.view(),
            self.variances.view(),
            self.log_weights.view(),
        )
    }

    /// Number of classes C.
    pub fn num_classes(&self) -> usize {
        self.means.shape()[0]
    }

    /// Components per class M.
    pub fn components(&self) -> usize {
        self.means.shape()[1]
    }

    /// Feature dimension D.
    pub fn dim(&self) -> usize {
        self.means.shape()[2]
    }

    /// Means at the origin, unit variances and uniform weights: a neutral starting point.
    pub fn standard(num_classes: usize, components: usize, dim: usize) -> Self {
        Self {
            means: Array3::zeros((num_classes, components, dim)),
            variances: Array3::ones((num_classes, components, dim)),
            log_weights: Array2::from_elem((num_classes, components), -(components as f32).ln()),
        }
    }

    /// Random unit-vector means, unit variances, uniform weights: the reference code's
    /// initialisation for features that live on the unit sphere.
    pub fn random_unit<R: Rng>(
        num_classes: usize,
        components: usize,
        dim: usize,
        rng: &mut R,
    ) -> Self {
        let mut p = Self::standard(num_classes, components, dim);
        for mut row in p.means.lanes_mut(Axis(2)) {
            row.mapv_inplace(|_| StandardNormal.sample(rng));
            let norm = row.dot(&row).sqrt().max(1e-12);
            row.mapv_inplace(|v| v / norm);
        }
        p
    }

    /// Checks shapes, finiteness, positive variances and normalised weights.
    /// `what` names the source (a file or argument) in the error.
    pub fn validate(&self, what: &str) -> Result<()> {
        let (c, m, d) = self.means.dim();
        if c == 0 || m == 0 || d == 0 {
            return Err(GmmSegError::shape(
                what,
                format!("means have an empty shape {:?}", self.means.shape()),
            ));
        }
        if self.variances.dim() != (c, m, d) {
            return Err(GmmSegError::shape(
                what,
                format!(
                    "variances have shape {:?}, means {:?}",
                    self.variances.shape(),
                    self.means.shape()
                ),
            ));
        }
        if self.log_weights.dim() != (c, m) {
            return Err(GmmSegError::shape(
                what,
                format!(
                    "log_weights have shape {:?}, expected ({c}, {m})",
                    self.log_weights.shape()
                ),
            ));
        }
        crate::error::check_finite(&format!("{what}: means"), self.means.iter())?;
        crate::error::check_finite(&format!("{what}: variances"), self.variances.iter())?;
        if let Some(i) = self.variances.iter().position(|&v| v <= 0.0) {
            return Err(GmmSegError::input(
                what,
                format!(
                    "variance at flat index {i} is {} (variances must be > 0)",
                    self.variances.iter().nth(i).unwrap()
                ),
            ));
        }
        for (class, row) in self.log_weights.outer_iter().enumerate() {
            if row.iter().any(|v| v.is_nan() || *v == f32::INFINITY) {
                return Err(GmmSegError::NonFinite {
                    what: format!("{what}: log_weights of class {class}"),
                    index: 0,
                });
            }
            let total = logsumexp(row);
            if (total).abs() > 1e-3 {
                return Err(GmmSegError::input(
                    what,
                    format!(
                        "mixture weights of class {class} sum to {} instead of 1",
                        total.exp()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Writes `means`, `variances` and `log_weights` (float32) to a NumPy `.npz` file.
    pub fn save_npz(&self, path: &Path) -> Result<()> {
        self.stage_npz(path)?.commit()
    }

    /// [`GmmParams::save_npz`] to a temporary file, put in place by
    /// [`Staged::commit`](crate::io::atomic::Staged::commit) (nothing replaces `path` until
    /// then).
    pub fn stage_npz(&self, path: &Path) -> Result<crate::io::atomic::Staged> {
        crate::io::atomic::Staged::write(path, |w| {
            crate::io::atomic::write_npz(w, path, |npz| {
                npz.add_array("means", &self.means)?;
                npz.add_array("variances", &self.variances)?;
                npz.add_array("log_weights", &self.log_weights)
            })
        })
    }

    /// Reads parameters from a `.npz` file with arrays `means` (C,M,D), `variances` (C,M,D)
    /// and `log_weights` (C,M), float32 or float64, and validates them.
    pub fn load_npz(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(|e| GmmSegError::io(path, e))?;
        let mut npz = NpzReader::new(std::io::BufReader::new(file))
            .map_err(|e| GmmSegError::file(path, format!("not a valid .npz archive ({e})")))?;
        let means: Array3<f32> = read_float(&mut npz, path, "means")?;
        let variances: Array3<f32> = read_float(&mut npz, path, "variances")?;
        let log_weights: Array2<f32> = read_float(&mut npz, path, "log_weights")?;
        let p = Self {
            means,
            variances,
            log_weights,
        };
        p.validate(&path.display().to_string())?;
        Ok(p)
    }

    /// Class c's parameters as views: (means (M,D), variances (M,D), log weights (M)).
    pub fn class(
        &self,
        c: usize,
    ) -> (
        ArrayView2<'_, f32>,
        ArrayView2<'_, f32>,
        ArrayView1<'_, f32>,
    ) {
        (
            self.means.index_axis(Axis(0), c),
            self.variances.index_axis(Axis(0), c),
            self.log_weights.index_axis(Axis(0), c),
        )
    }
}

fn read_float<D: ndarray::Dimension, R: std::io::Read + std::io::Seek>(
    npz: &mut NpzReader<R>,
    path: &Path,
    name: &str,
) -> Result<ndarray::Array<f32, D>> {
    let describe = |e: ReadNpzError| match e {
        ReadNpzError::Zip(zip::result::ZipError::FileNotFound) => {
            format!("missing array `{name}` (expected means, variances, log_weights)")
        }
        e => format!("array `{name}`: {e}"),
    };
    match npz.by_name::<ndarray::OwnedRepr<f32>, D>(name) {
        Ok(a) => return Ok(a),
        Err(ReadNpzError::Npy(ndarray_npy::ReadNpyError::WrongDescriptor(_))) => {}
        Err(e) => return Err(GmmSegError::file(path, describe(e))),
    }
    npz.by_name::<ndarray::OwnedRepr<f64>, D>(name)
        .map(|a| a.mapv(|v| v as f32))
        .map_err(|e| GmmSegError::file(path, describe(e)))
}

/// Numerically stable `log Σ exp(v)`; `-inf` for an empty or all `-inf` input.
pub(crate) fn logsumexp(v: ArrayView1<'_, f32>) -> f32 {
    let max = v.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return f32::NEG_INFINITY;
    }
    max + v.iter().map(|x| (x - max).exp()).sum::<f32>().ln()
}
