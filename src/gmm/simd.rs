//! Runtime choice of the widest vector unit for the EM kernels.
//!
//! The crate is built for baseline x86-64 (SSE2), so that one binary runs anywhere; the hot
//! loops of the E- and M-steps are written plainly and compiled a second time with AVX2
//! enabled, and [`avx2_dispatch`] picks that copy when the processor has it. The two copies
//! run the same IEEE operations in the same order (no fused multiply-add is enabled), so
//! their results agree bit for bit.

/// Defines `fn $name(args) -> ret` that calls `$generic(args)` compiled with AVX2 when the
/// processor supports it, and as built otherwise. `$generic` should be `#[inline(always)]` so
/// that its body is compiled into the AVX2 copy.
macro_rules! avx2_dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $generic:ident) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn with_avx2($($arg: $ty),*) $(-> $ret)? {
                    $generic($($arg),*)
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

pub(crate) use avx2_dispatch;
