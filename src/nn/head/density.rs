//! What the density heads (generative, discriminative and post-hoc GMM, Mahalanobis) share:
//! channel-major maps ↔ pixel rows, the reduction of component scores to class scores on a
//! tape, and the evaluation output of a density.

use dfdx::prelude::*;
use ndarray::{Array2, Axis};

use super::HeadOutput;
use crate::gmm::Reduction;
use crate::nn::rowops::Rows;
use crate::nn::{Act, Dev};
use crate::ops::layout::{nchw_to_rows, rows_to_nchw};

pub(crate) fn act_to_rows(x: &Act) -> Array2<f32> {
    let (b, d, h, w) = *x.shape();
    let rows = nchw_to_rows(&crate::nn::to_host(x), (b, d, h, w));
    Array2::from_shape_vec((b * h * w, d), rows).expect("shape matches")
}

pub(crate) fn rows_to_act(dev: &Dev, x: &Array2<f32>, b: usize, h: usize, w: usize) -> Act {
    let k = x.ncols();
    debug_assert_eq!(x.nrows(), b * h * w);
    let x = x.as_standard_layout();
    let out = rows_to_nchw(x.as_slice().expect("standard layout"), (b, k, h, w));
    dev.tensor_from_vec(out, (b, k, h, w))
}

/// Reduces (N, C·M) component scores on a tape to (N, C) class scores.
pub(crate) fn reduce_components<T: Tape<f32, Cpu>>(
    ll: Rows<T>,
    c: usize,
    m: usize,
    reduction: Reduction,
) -> Rows<T> {
    let n = ll.shape().0;
    let ll3 = ll.reshape_like(&(n, c, m));
    match reduction {
        Reduction::Max => ll3.max::<(usize, usize), dfdx::shapes::Axis<2>>(),
        Reduction::LogSumExp => ll3.logsumexp::<(usize, usize), dfdx::shapes::Axis<2>>(),
    }
}

/// The evaluation output of a density head from pixel rows: `logits` (N, C) as the class
/// scores and `likelihood` = −max_c log p(x|c) from `class_ll` (N, C) as its anomaly map.
pub(crate) fn density_output(
    dev: &Dev,
    logits: &Array2<f32>,
    class_ll: &Array2<f32>,
    (b, h, w): (usize, usize, usize),
) -> HeadOutput {
    let anomaly = class_ll
        .map_axis(Axis(1), |r| {
            -r.iter().copied().fold(f32::NEG_INFINITY, f32::max)
        })
        .into_shape_with_order((b * h * w, 1))
        .expect("one score per pixel");
    HeadOutput {
        logits: rows_to_act(dev, logits, b, h, w),
        anomaly: vec![("likelihood".into(), rows_to_act(dev, &anomaly, b, h, w))],
    }
}
