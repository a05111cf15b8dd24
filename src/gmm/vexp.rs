//! A vectorisable `e^x` for the non-positive arguments of log-sum-exp passes.
//!
//! The Sinkhorn E-step spends most of its time in exponentials of `x − max ≤ 0`; libm's `exp`
//! is a scalar call (about 7 ns here, more on its underflow path). This one is branch-free
//! arithmetic the compiler turns into AVX2 or AVX-512 code over a slice: `e^x = 2^k · e^r` with
//! `k = round(x / ln 2)`, `|r| ≤ ln 2 / 2`, `e^r` by its degree-12 Taylor polynomial (relative
//! error below 1e-15 on that interval), and `2^k` built in the exponent bits.

/// Arguments below this give 0: `e^−700 ≈ 1e-304`, negligible beside the `e^0 = 1` term
/// every log-sum-exp pass contains, and beyond it `2^k` would leave the normal range.
pub const FLUSH_BELOW: f64 = -700.0;

use super::simd::simd_dispatch;

const LOG2_E: f64 = std::f64::consts::LOG2_E;
/// ln 2 split in a part exact in few bits and a remainder (Cody–Waite), so `x − k·ln 2` is
/// exact for the |k| ≤ 1010 used here.
const LN2_HI: f64 = f64::from_bits(0x3fe6_2e42_fee0_0000);
const LN2_LO: f64 = f64::from_bits(0x3dea_39ef_3579_3c76);
/// 1.5·2^52: adding it rounds to the nearest integer and leaves that integer in the low bits.
const ROUNDER: f64 = 6_755_399_441_055_744.0;

/// `e^x` for `x ≤ 0` (0 below [`FLUSH_BELOW`], and for −∞; NaN stays NaN). Positive arguments up to 700 are
/// also exact to 1e-15, but callers pass `x − max`.
#[inline(always)]
pub fn exp_nonpositive(x: f64) -> f64 {
    let xc = x.clamp(FLUSH_BELOW, -FLUSH_BELOW);
    let t = xc * LOG2_E + ROUNDER;
    let k = t - ROUNDER;
    let r = (xc - k * LN2_HI) - k * LN2_LO;
    // Horner form of Σ_{i ≤ 12} r^i / i!.
    let mut p = 1.0 / 479_001_600.0;
    p = p * r + 1.0 / 39_916_800.0;
    p = p * r + 1.0 / 3_628_800.0;
    p = p * r + 1.0 / 362_880.0;
    p = p * r + 1.0 / 40_320.0;
    p = p * r + 1.0 / 5_040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    // The integer k sits in t's low mantissa bits; move k + 1023 into the exponent field.
    let k_bits = t.to_bits().wrapping_sub(ROUNDER.to_bits());
    let scale = f64::from_bits(k_bits.wrapping_add(1023) << 52);
    if x < FLUSH_BELOW {
        0.0
    } else {
        p * scale
    }
}

simd_dispatch! {
    /// Replaces every `x ≤ 0` in `values` by `e^x` (see [`exp_nonpositive`]), on the widest
    /// vector unit the processor has.
    pub fn exp_nonpositive_in_place(values: &mut [f64]) => exp_in_place_generic
}

#[inline(always)]
fn exp_in_place_generic(values: &mut [f64]) {
    for v in values {
        *v = exp_nonpositive(*v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_libm_across_the_range() {
        let mut worst = 0f64;
        let mut x = FLUSH_BELOW;
        while x <= 0.0 {
            let (got, want) = (exp_nonpositive(x), x.exp());
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 2e-15, "worst relative error {worst:e}");
        for x in [
            0.0,
            -1e-300,
            -0.5 * std::f64::consts::LN_2,
            1.0,
            300.0,
            700.0,
        ] {
            let (got, want) = (exp_nonpositive(x), x.exp());
            assert!(((got - want) / want).abs() < 2e-15, "{x}: {got} vs {want}");
        }
    }

    #[test]
    fn flushes_far_and_infinite_arguments() {
        assert_eq!(exp_nonpositive(-700.5), 0.0);
        assert_eq!(exp_nonpositive(f64::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpositive(-1e300), 0.0);
        assert!(exp_nonpositive(FLUSH_BELOW) > 0.0);
    }

    proptest! {
        #[test]
        fn slice_path_equals_scalar_path(xs in proptest::collection::vec(-800.0f64..0.0, 0..100)) {
            let mut v = xs.clone();
            exp_nonpositive_in_place(&mut v);
            for (a, x) in v.iter().zip(&xs) {
                prop_assert_eq!(a.to_bits(), exp_nonpositive(*x).to_bits());
            }
        }
    }
}
