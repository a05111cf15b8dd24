//! The default network's convolutions (quick profile: 64×64 input, batch 8), in forward
//! order, shared by `benches/conv.rs` and `examples/conv_next.rs` so that both time the
//! same layers.

use gmmseg::ops::conv::ConvSpec;

/// Every convolution of the default network: (name, geometry, input side in pixels).
pub fn default_network_convs() -> [(&'static str, ConvSpec, usize); 19] {
    let pw = |cin, cout, stride| ConvSpec {
        stride,
        ..ConvSpec::pointwise(cin, cout)
    };
    [
        ("stem 3x3 s2 3->16", ConvSpec::same(3, 16, 3, 2, 1), 64),
        (
            "stage0.a 3x3 s2 16->16",
            ConvSpec::same(16, 16, 3, 2, 1),
            32,
        ),
        ("stage0.b 3x3 16->16", ConvSpec::same(16, 16, 3, 1, 1), 16),
        ("stage0.shortcut 1x1 s2", pw(16, 16, 2), 32),
        (
            "stage1.a 3x3 s2 16->32",
            ConvSpec::same(16, 32, 3, 2, 1),
            16,
        ),
        ("stage1.b 3x3 32->32", ConvSpec::same(32, 32, 3, 1, 1), 8),
        ("stage1.shortcut 1x1 s2", pw(16, 32, 2), 16),
        ("stage2.a 3x3 d2 32->64", ConvSpec::same(32, 64, 3, 1, 2), 8),
        ("stage2.b 3x3 d2 64->64", ConvSpec::same(64, 64, 3, 1, 2), 8),
        ("stage2.shortcut 1x1", pw(32, 64, 1), 8),
        ("aspp.b0 1x1 64->32", pw(64, 32, 1), 8),
        ("aspp.r1 3x3 d2 64->32", ConvSpec::same(64, 32, 3, 1, 2), 8),
        ("aspp.r2 3x3 d4 64->32", ConvSpec::same(64, 32, 3, 1, 4), 8),
        ("aspp.pool 1x1 64->32", pw(64, 32, 1), 1),
        ("aspp.fuse 1x1 128->64", pw(128, 64, 1), 8),
        ("low 1x1 16->16", pw(16, 16, 1), 16),
        ("refine1 3x3 80->64", ConvSpec::same(80, 64, 3, 1, 1), 16),
        ("refine2 3x3 64->64", ConvSpec::same(64, 64, 3, 1, 1), 16),
        ("projection 1x1 64->64", pw(64, 64, 1), 16),
    ]
}
