//! Runtime choice of the widest vector unit for the EM kernels.
//!
//! The crate is built for baseline x86-64 (SSE2), so that one binary runs anywhere; the hot
//! loops of the E- and M-steps are written plainly and compiled twice more, with AVX2 and
//! with AVX-512, and [`simd_dispatch`] picks the widest copy the processor has. The copies
//! run the same IEEE operations in the same order (no fused multiply-add: Rust never
//! contracts a multiply and an add into one, whatever the target features, and the
//! reductions keep their own lanes), so their results agree bit for bit.

/// Whether the processor runs the AVX-512 copies: foundation and the doubleword/quadword
/// extension (its 256-bit inserts and broadcasts), present together on every AVX-512 CPU
/// since Skylake-SP.
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
}

/// Defines `fn $name(args) -> ret` that calls `$generic(args)` compiled with AVX-512 or
/// AVX2 when the processor supports it, and as built otherwise. `$generic` should be
/// `#[inline(always)]` so that its body is compiled into each copy.
macro_rules! simd_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $generic:ident) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512dq")]
                unsafe fn with_avx512($($arg: $ty),*) $(-> $ret)? {
                    $generic($($arg),*)
                }
                #[target_feature(enable = "avx2")]
                unsafe fn with_avx2($($arg: $ty),*) $(-> $ret)? {
                    $generic($($arg),*)
                }
                if $crate::gmm::simd::has_avx512() {
                    // SAFETY: the processor supports AVX-512 F and DQ, checked just above.
                    return unsafe { with_avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the processor supports AVX2, checked just above.
                    return unsafe { with_avx2($($arg),*) };
                }
            }
            $generic($($arg),*)
        }
    };
}

pub(crate) use simd_dispatch;
