//! The GMM's validated configuration, with presets for the paper and the reference code.
//!
//! [`GmmConfig`] is a plain struct whose fields are public and documented with their default
//! and its source; [`GmmConfig::check`] validates every field once and returns a
//! [`ValidGmmConfig`], the only type the algorithms accept (after linfa's `GmmParams` /
//! `GmmValidParams` split), so no hot loop re-validates.

use serde::{Deserialize, Serialize};

use crate::error::{GmmSegError, Result};

pub use crate::ops::loglik::Reduction;

/// Options of the Sinkhorn E-step (entropic optimal transport with equipartition).
///
/// The default is the paper's Sinkhorn EM — every component receives N_c/M of its class's
/// mass — made to reach that constraint: costs rescaled so that ε = 0.05 has the meaning
/// the authors gave it, and iterations until the component masses are within 0.1% of
/// N_c/M. ([`SinkhornConfig::reference_code`] keeps the authors' fixed 3 iterations.)
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SinkhornConfig {
    /// Entropic regularisation ε. Default 0.05 (paper and code).
    pub epsilon: f32,
    /// Most Sinkhorn–Knopp iterations (the solve stops earlier at `tolerance`). Default
    /// 1,000: on network-like features (D = 64, ε = 0.05, rescaled costs) the tolerance is
    /// met within a few dozen; the cap only bounds pathological inputs.
    pub iterations: usize,
    /// Divide each class's cost matrix by its largest absolute value before Sinkhorn, as the
    /// reference code does. Default `true`. Why: the plan is unchanged by adding a constant
    /// to a pixel's row of costs, so only the costs' *scale* against ε matters, and raw
    /// costs `−log π_m N(x; μ_m, σ_m)` at D = 64 differ between components by tens to
    /// thousands of nats — with ε = 0.05 that is a hard arg-max which the marginal
    /// constraint cannot move in a few iterations (measured: component masses between 0 and
    /// 3 × N_c/M after 3 iterations, mean max responsibility 0.99). The authors' ε = 0.05
    /// was chosen for costs divided by their max |·|, which makes it independent of D and of
    /// the feature scale; we keep their scale rather than invent another.
    pub rescale_cost: bool,
    /// Stop once every component's mass is within this relative error of N_c/M. Default
    /// `Some(1e-3)`; `None` runs exactly `iterations` iterations, as the reference code does.
    pub tolerance: Option<f64>,
}

impl Default for SinkhornConfig {
    fn default() -> Self {
        Self {
            epsilon: 0.05,
            iterations: 1_000,
            rescale_cost: true,
            tolerance: Some(1e-3),
        }
    }
}

impl SinkhornConfig {
    /// The reference code's Sinkhorn: costs divided by their max |·|, ε = 0.05, exactly 3
    /// iterations (`mmseg/utils/GMMSeg.py`), whatever marginal error remains.
    pub fn reference_code() -> Self {
        Self {
            iterations: 3,
            tolerance: None,
            ..Self::default()
        }
    }
}

/// Which E-step assigns pixels to the components of their own class.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum EStep {
    /// Vanilla EM: responsibilities `∝ π_m N(x; μ_m, σ_m)`; mixture weights are re-estimated.
    Vanilla,
    /// Sinkhorn EM: the same, under the equipartition constraint; weights stay at 1/M.
    Sinkhorn(SinkhornConfig),
}

/// Whether responsibilities stay soft or are replaced by a one-hot argmax.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Assignment {
    /// Soft responsibilities (the paper).
    Soft,
    /// One-hot argmax of the responsibilities (the reference code's Sinkhorn).
    Hard,
}

/// How the M-step estimates a component's mean from its weighted features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeanEstimator {
    /// The weighted Euclidean mean (the paper).
    Euclidean,
    /// The normalised weighted sum, a mean *direction* on the unit sphere (the reference
    /// code, whose features are L2-normalised); means are re-normalised after each blend.
    Direction,
}

/// How the M-step's variance floor `var_reg` is added to every estimated variance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VarFloor {
    /// `σ̂² + var_reg` (scikit-learn's `reg_covar`; both flavours).
    #[default]
    Absolute,
    /// `σ̂² + var_reg · v_d`, where `v_d` is channel d's variance over all the class's
    /// weighted features in the update (every component pooled). Why: the floor then has
    /// the same meaning whatever the feature scale — the quick profile's tuned absolute
    /// floor makes up 86% of every variance of the trained head (`em_floor_share_mean` of
    /// the `gap` study, `data/results/quick/synthscapes/gap_summary.csv`), which turns the
    /// mixture into a nearest-mean classifier. `v_d` is bounded below by 1e-3 of its mean over channels
    /// and the floor by [`MIN_RELATIVE_FLOOR`], so a dead channel (all zeros) cannot make a
    /// variance vanish.
    Relative,
}

/// The least floor a [`VarFloor::Relative`] floor gives (a class with one pixel has no
/// variance to be relative to).
pub const MIN_RELATIVE_FLOOR: f64 = 1e-6;

/// The variance floor as the M-step applies it: `var_reg` and how it is added.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VarianceFloor {
    /// The floor (absolute) or its multiple of the channel variance (relative).
    pub reg: f32,
    /// How `reg` is added.
    pub kind: VarFloor,
}

impl From<f32> for VarianceFloor {
    /// An absolute floor.
    fn from(reg: f32) -> Self {
        VarianceFloor {
            reg,
            kind: VarFloor::Absolute,
        }
    }
}

fn is_absolute(f: &VarFloor) -> bool {
    *f == VarFloor::Absolute
}

/// Configuration of a class-conditional diagonal GMM and of its EM updates.
///
/// Symbols: C = `num_classes`, M = `components`, D = `dim`, ε = `e_step`'s epsilon,
/// τ = `mean_momentum` / `var_momentum`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GmmConfig {
    /// Number of classes C. No default: it comes from the dataset. 0 means *unbound*: a
    /// training configuration's head leaves C and D to the dataset and the network
    /// (`GmmHeadConfig::bind`), and an unbound value is left out of the JSON; `check`
    /// refuses it.
    #[serde(default, skip_serializing_if = "is_unbound")]
    pub num_classes: usize,
    /// Components per class M. Default 5 (paper; ablated over 1..15). M = 1 is Gaussian
    /// discriminant analysis, estimated in closed form.
    pub components: usize,
    /// Feature dimension D. Default 64 (the paper's projection width). 0 means unbound, as
    /// for `num_classes`.
    #[serde(default, skip_serializing_if = "is_unbound")]
    pub dim: usize,
    /// Class-score reduction over components. Default [`Reduction::Max`] (paper and code).
    pub reduction: Reduction,
    /// E-step kind. Default Sinkhorn with ε = 0.05 on rescaled costs, to a 1e-3 marginal
    /// tolerance ([`SinkhornConfig::default`]).
    pub e_step: EStep,
    /// Soft or hard responsibilities. Default soft (paper); the reference code uses hard.
    pub assignment: Assignment,
    /// Momentum τ of the means: `μ ← τ μ + (1 − τ) μ̂`. Default 0.999 (paper and code).
    /// Batch EM (`fit-gmm`) uses 0.
    pub mean_momentum: f32,
    /// Momentum τ of the variances. Default 0.999 (paper); the reference code uses 0
    /// (plain replacement).
    pub var_momentum: f32,
    /// Added to every estimated variance, like scikit-learn's `reg_covar`; keeps variances of
    /// collapsed components away from zero. Default 0.01 (the reference code's value).
    pub var_reg: f32,
    /// How `var_reg` is added: absolute (default, both flavours) or relative to each
    /// channel's variance in the class (a factor of the `gap` study). Left out of the JSON
    /// when absolute.
    #[serde(default, skip_serializing_if = "is_absolute")]
    pub var_floor: VarFloor,
    /// EM loops per update (E-step + M-step). Default 1 (paper; ablated over 1, 5, 10).
    pub em_loops: usize,
    /// How the M-step estimates means. Default Euclidean (paper).
    pub mean_estimator: MeanEstimator,
}

/// A shape field left for the trainer to bind ([`GmmConfig::num_classes`]).
fn is_unbound(n: &usize) -> bool {
    *n == 0
}

impl Default for GmmConfig {
    fn default() -> Self {
        Self::paper(19)
    }
}

impl GmmConfig {
    /// The paper's published values: soft Sinkhorn EM reaching equipartition, momentum
    /// 0.999 on means and variances, Euclidean means, M = 5, D = 64 — the starting point of
    /// the batch and post-hoc fitters. The *trained* heads' flavours (the paper's at CPU
    /// scale, τ = 0.99, and the reference code's) are written out once each, in
    /// `nn::head::GmmHeadConfig::paper` and `::reference_code`.
    pub fn paper(num_classes: usize) -> Self {
        Self {
            num_classes,
            components: 5,
            dim: 64,
            reduction: Reduction::Max,
            e_step: EStep::Sinkhorn(SinkhornConfig::default()),
            assignment: Assignment::Soft,
            mean_momentum: 0.999,
            var_momentum: 0.999,
            var_reg: 0.01,
            var_floor: VarFloor::Absolute,
            em_loops: 1,
            mean_estimator: MeanEstimator::Euclidean,
        }
    }

    /// The variance floor the M-step applies.
    pub fn variance_floor(&self) -> VarianceFloor {
        VarianceFloor {
            reg: self.var_reg,
            kind: self.var_floor,
        }
    }

    /// Plain batch EM as `gmmseg fit-gmm` runs it: vanilla E-step, soft, no momentum.
    pub fn batch_vanilla(num_classes: usize, components: usize, dim: usize) -> Self {
        Self {
            components,
            dim,
            e_step: EStep::Vanilla,
            mean_momentum: 0.0,
            var_momentum: 0.0,
            ..Self::paper(num_classes)
        }
    }

    /// Validates every field once.
    pub fn check(self) -> Result<ValidGmmConfig> {
        let bad = |field: &str, reason: String| Err(GmmSegError::config(field, reason));
        if self.num_classes == 0 || self.num_classes > 255 {
            return bad(
                "num_classes",
                format!(
                    "must be in 1..=255 (255 is the ignore label), got {}",
                    self.num_classes
                ),
            );
        }
        if self.components == 0 {
            return bad("components", "must be ≥ 1, got 0".into());
        }
        if self.dim == 0 {
            return bad("dim", "must be ≥ 1, got 0".into());
        }
        for (field, tau) in [
            ("mean_momentum", self.mean_momentum),
            ("var_momentum", self.var_momentum),
        ] {
            if !(0.0..1.0).contains(&tau) {
                return bad(field, format!("must be in [0, 1), got {tau}"));
            }
        }
        if !(self.var_reg.is_finite() && self.var_reg > 0.0) {
            return bad(
                "var_reg",
                format!(
                    "must be finite and > 0 (it keeps variances away from zero), got {}",
                    self.var_reg
                ),
            );
        }
        if self.em_loops == 0 {
            return bad("em_loops", "must be ≥ 1, got 0".into());
        }
        if let EStep::Sinkhorn(s) = &self.e_step {
            if !(s.epsilon.is_finite() && s.epsilon > 0.0) {
                return bad(
                    "e_step.epsilon",
                    format!("must be finite and > 0, got {}", s.epsilon),
                );
            }
            if s.iterations == 0 {
                return bad("e_step.iterations", "must be ≥ 1, got 0".into());
            }
            if let Some(t) = s.tolerance {
                if !(t.is_finite() && t > 0.0) {
                    return bad(
                        "e_step.tolerance",
                        format!("must be finite and > 0, got {t}"),
                    );
                }
            }
        }
        Ok(ValidGmmConfig(self))
    }
}

/// A [`GmmConfig`] whose fields have been validated by [`GmmConfig::check`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ValidGmmConfig(GmmConfig);

impl std::ops::Deref for ValidGmmConfig {
    type Target = GmmConfig;
    fn deref(&self) -> &GmmConfig {
        &self.0
    }
}

impl ValidGmmConfig {
    /// The validated configuration, for serialisation or modification (re-check afterwards).
    pub fn into_inner(self) -> GmmConfig {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expect_field(cfg: GmmConfig, field: &str) {
        match cfg.check() {
            Err(GmmSegError::InvalidConfig { field: f, .. }) => assert_eq!(f, field),
            other => panic!("expected an error on `{field}`, got {other:?}"),
        }
    }

    #[test]
    fn presets_are_valid() {
        GmmConfig::paper(19).check().unwrap();
        GmmConfig::batch_vanilla(3, 1, 2).check().unwrap();
    }

    #[test]
    fn test_invalid_num_classes() {
        expect_field(
            GmmConfig {
                num_classes: 0,
                ..GmmConfig::paper(1)
            },
            "num_classes",
        );
        expect_field(GmmConfig::paper(256), "num_classes");
    }

    #[test]
    fn test_invalid_components() {
        expect_field(
            GmmConfig {
                components: 0,
                ..GmmConfig::paper(2)
            },
            "components",
        );
    }

    #[test]
    fn test_invalid_dim() {
        expect_field(
            GmmConfig {
                dim: 0,
                ..GmmConfig::paper(2)
            },
            "dim",
        );
    }

    #[test]
    fn test_invalid_momentum() {
        expect_field(
            GmmConfig {
                mean_momentum: 1.0,
                ..GmmConfig::paper(2)
            },
            "mean_momentum",
        );
        expect_field(
            GmmConfig {
                var_momentum: -0.1,
                ..GmmConfig::paper(2)
            },
            "var_momentum",
        );
    }

    #[test]
    fn test_invalid_var_reg() {
        expect_field(
            GmmConfig {
                var_reg: 0.0,
                ..GmmConfig::paper(2)
            },
            "var_reg",
        );
        expect_field(
            GmmConfig {
                var_reg: f32::NAN,
                ..GmmConfig::paper(2)
            },
            "var_reg",
        );
    }

    #[test]
    fn test_invalid_em_loops() {
        expect_field(
            GmmConfig {
                em_loops: 0,
                ..GmmConfig::paper(2)
            },
            "em_loops",
        );
    }

    #[test]
    fn test_invalid_sinkhorn() {
        let with = |s: SinkhornConfig| GmmConfig {
            e_step: EStep::Sinkhorn(s),
            ..GmmConfig::paper(2)
        };
        expect_field(
            with(SinkhornConfig {
                epsilon: 0.0,
                ..Default::default()
            }),
            "e_step.epsilon",
        );
        expect_field(
            with(SinkhornConfig {
                iterations: 0,
                ..Default::default()
            }),
            "e_step.iterations",
        );
        expect_field(
            with(SinkhornConfig {
                tolerance: Some(-1.0),
                ..Default::default()
            }),
            "e_step.tolerance",
        );
    }
}
