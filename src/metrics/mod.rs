//! Segmentation, anomaly and calibration metrics, computed streaming: every accumulator is
//! fed batch by batch with `update(...)` and summarised with `finish()`, so a whole dataset
//! never has to sit in memory at once. Every metric skips pixels labelled
//! [`IGNORE_LABEL`](crate::data::IGNORE_LABEL) (255).
//!
//! - [`segmentation`]: confusion matrix → per-class IoU, mIoU (MMSegmentation's NaN
//!   semantics), pixel accuracy, mean class accuracy.
//! - [`anomaly`]: AUROC, average precision (scikit-learn's step-wise definition) and FPR at
//!   95% TPR, exact with tied scores; sort-based, O(N log N) or better (radix sort).
//! - [`calibration`]: top-label ECE, MCE, RMSCE, adaptive (equal-mass) ECE, classwise ECE,
//!   smooth ECE ([`smooth_ece`]), NLL, Brier score and its decomposition, reliability bins.
//! - [`components`]: SegmentMeIfYouCan's component-level anomaly metrics (sIoU, PPV, mean
//!   F1) on per-image score maps.
//! - [`bootstrap`]: image-level bootstrap intervals of a metric on one model.
//! - [`temperature`]: temperature scaling, one scalar fitted by minimising the NLL.
//! - [`summary`]: mean, sample standard deviation and Student-t 95% confidence intervals over
//!   seeds, for the ablation tables and charts.
//!
//! Bad input (shape mismatches, labels out of range, NaN, probabilities outside [0, 1] or
//! rows not summing to 1, empty input, a metric undefined for the data) gives a typed
//! [`GmmSegError`](crate::GmmSegError), never a panic or a silent NaN. An `update` that fails
//! leaves its accumulator unchanged.
//!
//! ## References
//! - MMSegmentation, `mmseg/evaluation/metrics/iou_metric.py` (IoU/Acc with NaN classes).
//! - scikit-learn, `sklearn/metrics/_ranking.py` (`roc_auc_score`, `average_precision_score`).
//! - Guo et al., "On Calibration of Modern Neural Networks", ICML 2017 (ECE, MCE, reliability).
//! - Nixon et al., "Measuring Calibration in Deep Learning", CVPRW 2019 (adaptive ECE).

pub mod anomaly;
pub mod bootstrap;
pub mod calibration;
pub mod components;
pub mod segmentation;
pub mod smooth_ece;
pub mod summary;
pub mod temperature;

mod sort;

pub use anomaly::{anomaly_metrics, AnomalyAccumulator, AnomalyCurves, AnomalyMetrics};
pub use bootstrap::{BootstrapConfig, Intervals, ValidBootstrapConfig};
pub use calibration::{
    calibration_metrics, CalibrationAccumulator, CalibrationConfig, CalibrationMetrics,
    ReliabilityBin, ValidCalibrationConfig,
};
pub use segmentation::{segmentation_metrics, ConfusionMatrix, SegmentationMetrics};
pub use summary::{student_t_975, summarize, Summary};

/// An integer label type accepted by the metrics (NumPy files load as `i64`, in-memory label
/// maps are `u8`), so that callers never convert a whole label map just to evaluate it.
pub trait Label: Copy + Send + Sync {
    /// The label as `i64` (255 is the ignore value whatever the type).
    fn to_i64(self) -> i64;

    /// The slice as bytes when the label type is `u8`, so that hot loops can take a
    /// branch-free path (e.g. the confusion matrix's 256×256 histogram).
    fn as_u8_slice(s: &[Self]) -> Option<&[u8]> {
        let _ = s;
        None
    }
}

impl Label for u8 {
    #[inline(always)]
    fn to_i64(self) -> i64 {
        self as i64
    }

    fn as_u8_slice(s: &[Self]) -> Option<&[u8]> {
        Some(s)
    }
}

macro_rules! impl_label {
    ($($t:ty),*) => {$(
        impl Label for $t {
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
        }
    )*};
}
impl_label!(u16, u32, u64, usize, i8, i16, i32, i64);

/// The ignore label as `i64`, for comparisons inside the hot loops.
pub(crate) const IGNORE: i64 = crate::data::IGNORE_LABEL as i64;
