//! Summaries over repeated runs (seeds): mean, sample standard deviation and a Student-t 95%
//! confidence interval for the mean, as the ablation tables and error bars report them.
//!
//! CI = mean ± t_{0.975, n−1} · s / √n, with s the sample standard deviation (ddof = 1).
//! The t quantiles for 1..=30 degrees of freedom are tabulated (from `scipy.stats.t.ppf`);
//! beyond 30 the normal quantile 1.959964 is used (the t quantile at df = 31 is 2.0395, so
//! the interval is then at most 4% too narrow).

use ndarray::ArrayView1;
use serde::Serialize;

use crate::error::{GmmSegError, Result};

/// t_{0.975, df} for df = 1..=30 (`scipy.stats.t.ppf(0.975, df)`).
const T975: [f64; 30] = [
    12.706204736174694,
    4.302652729749462,
    3.1824463052837078,
    2.7764451051977934,
    2.5705818356363146,
    2.4469118511449786,
    2.364624251592784,
    2.306004135204166,
    2.262157162798205,
    2.228138851986274,
    2.200985160091639,
    2.1788128296672284,
    2.1603686564627913,
    2.144786687917804,
    2.131449545559776,
    2.1199052992212546,
    2.1098155778333156,
    2.1009220402410382,
    2.0930240544083087,
    2.085963447265864,
    2.0796138447276795,
    2.0738730679040254,
    2.0686576104190486,
    2.0638985616280245,
    2.0595385527532972,
    2.0555294386428735,
    2.0518305164802846,
    2.0484071417952454,
    2.045229642132703,
    2.0422724563012378,
];

/// The standard normal 0.975 quantile, used for df > 30.
const Z975: f64 = 1.959963984540054;

/// The two-sided 95% Student-t quantile t_{0.975, df}; `None` for df = 0.
pub fn student_t_975(df: usize) -> Option<f64> {
    match df {
        0 => None,
        1..=30 => Some(T975[df - 1]),
        _ => Some(Z975),
    }
}

/// Mean, spread and 95% CI of a set of runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Number of runs.
    pub n: usize,
    /// Sample mean.
    pub mean: f64,
    /// Sample standard deviation (ddof = 1); `None` for a single run.
    pub std: Option<f64>,
    /// Half-width of the 95% CI of the mean; `None` for a single run.
    pub ci95: Option<f64>,
}

impl Summary {
    /// Lower end of the 95% CI (the mean itself for a single run).
    pub fn lower(&self) -> f64 {
        self.mean - self.ci95.unwrap_or(0.0)
    }

    /// Upper end of the 95% CI (the mean itself for a single run).
    pub fn upper(&self) -> f64 {
        self.mean + self.ci95.unwrap_or(0.0)
    }
}

/// Summarises the values of several runs. Errors on an empty slice or a non-finite value.
pub fn summarize(values: &[f64]) -> Result<Summary> {
    if values.is_empty() {
        return Err(GmmSegError::empty(
            "values",
            "a summary needs at least one run",
        ));
    }
    if let Some(index) = values.iter().position(|v| !v.is_finite()) {
        return Err(GmmSegError::NonFinite {
            what: "values".into(),
            index,
        });
    }
    let a = ArrayView1::from(values);
    let n = values.len();
    let mean = a.mean().expect("non-empty");
    if n == 1 {
        return Ok(Summary {
            n,
            mean,
            std: None,
            ci95: None,
        });
    }
    let std = a.std(1.0);
    let t = student_t_975(n - 1).expect("n ≥ 2");
    Ok(Summary {
        n,
        mean,
        std: Some(std),
        ci95: Some(t * std / (n as f64).sqrt()),
    })
}
