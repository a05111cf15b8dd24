//! Convolution throughput against the fastest f32 GEMM this crate can call (issue 18, item 2:
//! forward + backward ≥ 0.7× of it), and against a dfdx matmul of the same FLOPs.
//!
//! Headline case: forward + backward of a 3×3, 64→64 convolution on 32×32 maps, batch 8.
//! The floor is its three products (forward `W·col`, weight gradient `gy·colᵀ`, input
//! gradient `Wᵀ·gy`) as plain GEMMs of the `gemm` crate over the whole batch at once
//! ((Cout × K)·(K × B·P) and its two transposes; K = Cin·k², P = Ho·Wo), with every thread,
//! operands already laid out, no im2col, and each product in the fastest of the eight row- /
//! column-major storage orders of its three matrices (found first, then timed as a whole,
//! interleaved with the convolution). `floor time / conv time` is the ratio the goal is about.
//! The same is printed for every convolution of the default network (quick profile, 64×64
//! input, batch 8) and for the network summed.
//!
//! Run: `cargo bench --bench conv` (under `cargo test --all-targets` it runs each criterion
//! function once and skips the summary).

// `criterion_group!` defines an undocumented `pub fn`; the crate-wide `missing_docs` is
// for the library.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use dfdx::prelude::*;
use gmmseg::nn::conv2d::{Conv2d, ConvSpec};
use gmmseg::nn::{Act, Dev};
use gmmseg::ops::gemm::{matmul, MatMut, MatRef, Order, Parallelism};
use rand::SeedableRng;
use std::time::Instant;

#[path = "common/network.rs"]
mod network;

const B: usize = 8;
const C: usize = 64;
const HW: usize = 32;

fn conv_step(conv: &Conv2d, x: &Act) {
    let y = conv.forward(x.clone().leaky_trace()).expect("conv");
    let g = y.sum().backward();
    std::hint::black_box(g);
}

fn matmul_step(a: &Tensor<(usize, Const<576>), f32, Cpu>, w: &Tensor<Rank2<576, 64>, f32, Cpu>) {
    let y = a.clone().leaky_trace().matmul(w.clone());
    let g = y.sum().backward();
    std::hint::black_box(g);
}

/// One product `dst (m×n) = a (m×k) · b (k×n)` through the crate's GEMM entry with every
/// thread, each of the three matrices stored row- or column-major as `layout` says (bit 0:
/// dst, bit 1: a, bit 2: b; set = column-major).
fn gemm_layout(m: usize, n: usize, k: usize, layout: u8, dst: &mut [f32], a: &[f32], b: &[f32]) {
    let order = |bit: u8| {
        if layout & bit != 0 {
            Order::ColMajor
        } else {
            Order::RowMajor
        }
    };
    matmul(
        MatMut::new(dst, m, n, order(1)),
        false,
        MatRef::new(a, m, k, order(2)),
        MatRef::new(b, k, n, order(4)),
        Parallelism::Rayon(rayon::current_num_threads()),
    );
}

/// The floor for a convolution's forward + backward: its three products over the whole batch
/// (N = B·P pixels) — forward y (Co×N) = W (Co×K)·col (K×N), weight gradient
/// dW (Co×K) = gy (Co×N)·colᵀ (N×K), input gradient dcol (K×N) = Wᵀ (K×Co)·gy (Co×N) — each
/// timed in all eight storage orders of its three matrices, keeping the fastest: the best the
/// `gemm` crate does on these shapes, with operands already laid out and no im2col.
struct GemmFloor {
    products: [(usize, usize, usize); 3],
    bufs: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)>,
    best: [[f64; 8]; 3],
}

impl GemmFloor {
    fn new(co: usize, k: usize, n: usize) -> Self {
        let fill = |len: usize, s: f32| -> Vec<f32> {
            (0..len).map(|i| ((i % 97) as f32 - 48.0) * s).collect()
        };
        let products = [(co, n, k), (co, k, n), (k, n, co)];
        let bufs = products
            .iter()
            .map(|&(m, n, k)| (vec![0.0; m * n], fill(m * k, 1e-2), fill(k * n, 1e-2)))
            .collect();
        GemmFloor {
            products,
            bufs,
            best: [[f64::INFINITY; 8]; 3],
        }
    }

    /// Times every product in every layout once, keeping per-layout minima.
    fn run(&mut self) {
        for (i, &(m, n, k)) in self.products.iter().enumerate() {
            let (dst, a, b) = &mut self.bufs[i];
            for layout in 0..8u8 {
                let t = Instant::now();
                gemm_layout(m, n, k, layout, dst, a, b);
                std::hint::black_box(&dst);
                let e = t.elapsed().as_secs_f64();
                let best = &mut self.best[i][layout as usize];
                *best = best.min(e);
            }
        }
    }

    /// For each product: (its name, the fastest layout as "dst/a/b" in r(ow)/c(olumn)-major,
    /// its time, the slowest layout's time).
    fn describe(&self) -> Vec<(String, String, f64, f64)> {
        let names = ["y = W·col", "dW = gy·colᵀ", "dcol = Wᵀ·gy"];
        let rc = |bit: bool| if bit { 'c' } else { 'r' };
        self.best
            .iter()
            .zip(names)
            .map(|(t, name)| {
                let (l, best) = t
                    .iter()
                    .copied()
                    .enumerate()
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .expect("eight layouts");
                let worst = t.iter().copied().fold(0.0, f64::max);
                let layout = format!("{}/{}/{}", rc(l & 1 != 0), rc(l & 2 != 0), rc(l & 4 != 0));
                (name.to_string(), layout, best, worst)
            })
            .collect()
    }

    /// Runs the three products once each, each in its fastest layout found by [`Self::run`]:
    /// the same work as a convolution's forward + backward, timed the same way (as a whole).
    fn run_best(&mut self) {
        for (i, &(m, n, k)) in self.products.iter().enumerate() {
            let layout = (0..8u8)
                .min_by(|&a, &b| self.best[i][a as usize].total_cmp(&self.best[i][b as usize]))
                .expect("eight layouts");
            let (dst, a, b) = &mut self.bufs[i];
            gemm_layout(m, n, k, layout, dst, a, b);
            std::hint::black_box(&dst);
        }
    }
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

/// Conv fwd+bwd time, GEMM-floor time and GFLOP/s of both for one layer shape.
fn versus_floor(
    dev: &Dev,
    spec: ConvSpec,
    b: usize,
    hw: usize,
    reps: usize,
) -> (f64, f64, f64, GemmFloor) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let conv = Conv2d::new(dev, "c", spec, false, &mut rng);
    let x: Act = dev.sample_normal_like(&(b, spec.cin, hw, hw));
    let ho = spec.out_len(hw).expect("fits");
    let (k, n) = (spec.cin * spec.kernel * spec.kernel, b * ho * ho);
    let mut floor = GemmFloor::new(spec.cout, k, n);
    for _ in 0..3 {
        floor.run(); // find each product's fastest layout
    }
    let (tc, tg) = min_times(|| conv_step(&conv, &x), || floor.run_best(), reps);
    let gflop = 3.0 * 2.0 * (spec.cout * k * n) as f64 / 1e9;
    (tc, tg, gflop, floor)
}

fn bench(c: &mut Criterion) {
    let dev = Dev::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let conv = Conv2d::new(&dev, "c", ConvSpec::same(C, C, 3, 1, 1), true, &mut rng);
    let x: Act = dev.sample_normal_like(&(B, C, HW, HW));
    let a: Tensor<(usize, Const<576>), f32, Cpu> = dev.sample_normal_like(&(B * HW * HW, Const));
    let w: Tensor<Rank2<576, 64>, f32, Cpu> = dev.sample_normal();
    let mut floor = GemmFloor::new(C, C * 9, B * HW * HW);

    let mut g = c.benchmark_group("conv3x3_64_32x32_b8");
    g.sample_size(10);
    g.bench_function("conv2d_fwd_bwd", |bch| bch.iter(|| conv_step(&conv, &x)));
    g.bench_function("gemm_crate_three_products_same_flops_all_layouts", |bch| {
        bch.iter(|| floor.run())
    });
    g.bench_function("dfdx_matmul_fwd_bwd_same_flops", |bch| {
        bch.iter(|| matmul_step(&a, &w))
    });
    g.finish();
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --all-targets`: criterion ran each function once; skip the summary
    }

    let threads = rayon::current_num_threads();
    // each ratio pairs a reference with the conv timed beside it (interleaved)
    let (tc_m, tm) = min_times(|| conv_step(&conv, &x), || matmul_step(&a, &w), 20);
    let (tc, tg, gflop, headline) = versus_floor(&dev, ConvSpec::same(C, C, 3, 1, 1), B, HW, 20);
    println!("threads = {threads}; best of 20 interleaved runs each");
    println!(
        "3x3 64->64, 32x32, batch {B}: conv fwd+bwd {:.2} ms ({:.1} GFLOP/s); gemm-crate floor (fastest layouts) {:.2} ms ({:.1} GFLOP/s); dfdx matmul fwd+bwd {:.2} ms ({:.1} GFLOP/s; conv beside it {:.2} ms)",
        tc * 1e3,
        gflop / tc,
        tg * 1e3,
        gflop / tg,
        tm * 1e3,
        gflop / tm,
        tc_m * 1e3,
    );
    for (name, layout, best, worst) in headline.describe() {
        println!(
            "  {name:<14} fastest layout (dst/a/b) {layout}: {:.2} ms (slowest layout {:.2} ms)",
            best * 1e3,
            worst * 1e3
        );
    }
    println!("per layer shape of the default network (quick profile, 64x64 input, batch {B}):");
    let (mut sum_c, mut sum_g) = (0.0, 0.0);
    for (name, spec, hw) in network::default_network_convs() {
        let (tc, tg, _, _) = versus_floor(&dev, spec, B, hw, 30);
        sum_c += tc;
        sum_g += tg;
        println!(
            "  {name:<24} @{hw:>2}: conv {:>7.3} ms, gemm floor {:>7.3} ms, ratio {:.2}",
            tc * 1e3,
            tg * 1e3,
            tg / tc
        );
    }
    println!(
        "summary: conv fwd+bwd vs gemm-crate floor, 3x3 64->64 32x32: {:.2}x; whole network (19 convolutions summed): {:.2}x (goal >= 0.7x); vs dfdx matmul: {:.2}x",
        tg / tc,
        sum_g / sum_c,
        tm / tc_m
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
