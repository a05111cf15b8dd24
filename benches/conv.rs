//! Convolution throughput against a dfdx matmul of the same FLOPs.
//!
//! Forward + backward of a 3×3, 64→64 convolution on 32×32 maps, batch 8 (issue 3's goal:
//! ≥ 0.5× the throughput of dfdx's matmul), compared with forward + backward of the matmul
//! (B·H·W × Cin·9) · (Cin·9 × Cout), which performs exactly the same multiply-adds.
//! Prints the ratio `matmul time / conv time` (≥ 0.5 meets the goal).

use criterion::{criterion_group, criterion_main, Criterion};
use dfdx::prelude::*;
use gmmseg::nn::conv2d::{Conv2d, ConvSpec};
use gmmseg::nn::{Act, Dev};
use rand::SeedableRng;
use std::time::Instant;

const B: usize = 8;
const C: usize = 64;
const HW: usize = 32;

fn conv_step(dev: &Dev, conv: &Conv2d, x: &Act) {
    let y = conv.forward(x.clone().leaky_trace()).expect("conv");
    let g = y.sum().backward();
    std::hint::black_box(g);
    let _ = dev;
}

fn matmul_step(a: &Tensor<(usize, Const<576>), f32, Cpu>, w: &Tensor<Rank2<576, 64>, f32, Cpu>) {
    let y = a.clone().leaky_trace().matmul(w.clone());
    let g = y.sum().backward();
    std::hint::black_box(g);
}

/// Minimum wall time of one call of each of `a` and `b` over `reps` interleaved rounds: the
/// minimum is what the code costs when nothing else is running (the two cores are shared),
/// and interleaving exposes both to the same background load.
fn min_times(mut a: impl FnMut(), mut b: impl FnMut(), reps: usize) -> (f64, f64) {
    a();
    b();
    let (mut ta, mut tb) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..reps {
        let t = Instant::now();
        a();
        ta = ta.min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        b();
        tb = tb.min(t.elapsed().as_secs_f64());
    }
    (ta, tb)
}

fn bench(c: &mut Criterion) {
    let dev = Dev::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let conv = Conv2d::new(&dev, "c", ConvSpec::same(C, C, 3, 1, 1), true, &mut rng);
    let x: Act = dev.sample_normal_like(&(B, C, HW, HW));
    let a: Tensor<(usize, Const<576>), f32, Cpu> = dev.sample_normal_like(&(B * HW * HW, Const));
    let w: Tensor<Rank2<576, 64>, f32, Cpu> = dev.sample_normal();

    let mut g = c.benchmark_group("conv3x3_64_32x32_b8");
    g.sample_size(10);
    g.bench_function("conv2d_fwd_bwd", |bch| {
        bch.iter(|| conv_step(&dev, &conv, &x))
    });
    g.bench_function("dfdx_matmul_fwd_bwd_same_flops", |bch| {
        bch.iter(|| matmul_step(&a, &w))
    });
    g.finish();
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --all-targets`: criterion ran each function once; skip the summary
    }

    let (tc, tm) = min_times(|| conv_step(&dev, &conv, &x), || matmul_step(&a, &w), 20);
    let gflop = 3.0 * 2.0 * (B * HW * HW * C * C * 9) as f64 / 1e9;
    println!(
        "best of 20 interleaved: conv fwd+bwd {:.2} ms ({:.1} GFLOP/s), dfdx matmul fwd+bwd {:.2} ms ({:.1} GFLOP/s); throughput ratio conv/matmul = {:.2} (goal ≥ 0.5); threads = {}",
        tc * 1e3,
        gflop / tc,
        tm * 1e3,
        gflop / tm,
        tm / tc,
        rayon::current_num_threads()
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
