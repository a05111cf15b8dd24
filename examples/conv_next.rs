//! Prototype of the next convolution algorithm (issue "Speed and scale", item 2), measured
//! beside today's before it replaces the inside of `gmmseg::ops::conv::conv2d`.
//!
//! Why a prototype outside `src/`: every byte under `src/` is part of the code fingerprint that
//! keys the experiment cache, so changing the kernel means retraining every committed model.
//! It waits until the full profile's rerun at the current code is committed, and then lands
//! together with the rerun it forces; until then this example keeps the algorithm, its checks
//! and its measurements.
//!
//! Today (`ops::conv`): per image, im2col to a (Cin·k², Ho·Wo) matrix, then one GEMM per image
//! and per product, the batch spread over threads. Profiling one-thread training steps of the
//! default network (`examples/step_timing.rs` under perf, 7 December) puts 30% of a step in
//! the GEMM micro-kernel, 9% in packing (the weights are packed again for every image), 9% in
//! im2col, 4% in col2im and 10–12% in zeroing fresh buffers (most of them overwritten next).
//! Most of the network's maps are 8×8 or 16×16, so a per-image product has 64–256 columns
//! and the fixed costs of a GEMM call dominate the small layers.
//!
//! Measured here first, and dropped: **chunked batch GEMMs** (several images' columns in one
//! (Cin·k², g·Ho·Wo) matrix, one product per chunk, the weights packed once per chunk). The
//! `gemm` crate's time grows linearly in the number of columns from 64 up (`conv_next layouts
//! 64 576 256` vs `… 512`: 0.173 vs 0.356 ms), so batching gains nothing per product, and the
//! gathers and scatters it needs made the network's convolutions 3% slower in total.
//!
//! What pays (this example's `next`, two changes to today's algorithm):
//! 1. **The weight gradient's storage order.** Per image, `dW_b = gy_b · col_bᵀ` is a product
//!    whose operands are both contiguous along its inner dimension (the pixels); with a
//!    row-major destination the `gemm` crate runs it at 0.28 ms (64×576, 256 pixels, one
//!    thread), with a column-major one at 0.176 ms, the speed of the two other products. The
//!    per-image parts are summed transposed, in image order, and transposed once.
//! 2. **No zeroing of buffers that are overwritten next**: the unrolled columns (k² × the input)
//!    and the per-image gradients live across calls.
//!
//! Measured on 7 December (AMD EPYC Zen 5, release, best of 15 interleaved runs, on slices, so
//! without dfdx's tape): the default network's 19 convolutions, forward + backward, 1.13×
//! faster with one thread (26.4 → 23.4 ms; the training runs of `ablate --jobs 2` use one),
//! 1.14× with two (14.6 → 12.8 ms); against the whole-batch floor 0.61 → 0.69× (one thread),
//! 0.65 → 0.74× (two); the headline 3×3 64→64 layer at 32×32 1.58× faster (0.50 → 0.79× of the
//! floor, one thread). One and two threads give the same bits. Change 1 alone, tried inside
//! `ops::conv` and reverted (it changes the fingerprint): the one-thread training step of
//! `examples/step_timing.rs` (60 steps, three alternating runs) went from a median of
//! 49.0–54.9 ms to 44.6–45.8 ms.
//!
//! Run: `cargo run --release --example conv_next -- [REPS]` (prints, per layer of the default
//! network: the largest difference to today's algorithm and to an f64 direct convolution,
//! whether one thread and the pool agree bit for bit, and the times of today's algorithm, the
//! next one and the three whole-batch GEMMs of the same FLOPs in their fastest storage orders,
//! best of REPS interleaved runs, default 30); `… -- layouts CO K PIXELS` times each product
//! in all eight storage orders.

use gmmseg::ops::conv::{conv2d_direct, ConvSpec};
use gmmseg::ops::gemm::{matmul, MatMut, MatRef, Parallelism};
use rayon::prelude::*;
use std::time::Instant;

#[path = "../benches/common/network.rs"]
mod network;

/// The command line's allocator (`src/main.rs`), as in a training run.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A batch convolution's shapes.
#[derive(Clone, Copy, Debug)]
struct Geom {
    b: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    s: ConvSpec,
}

impl Geom {
    fn new(s: ConvSpec, b: usize, hw: usize) -> Self {
        let ho = s.out_len(hw).expect("kernel fits");
        Geom {
            b,
            h: hw,
            w: hw,
            ho,
            wo: ho,
            s,
        }
    }
    fn kl(&self) -> usize {
        self.s.k_len()
    }
    fn p(&self) -> usize {
        self.ho * self.wo
    }
    fn img(&self) -> usize {
        self.s.cin * self.h * self.w
    }
}

/// Unrolls one image into rows of `col` that are `stride` apart, starting at column `off`:
/// row r = (ci, ky, kx) gets the image's receptive-field values for every output pixel.
fn im2col_into(x: &[f32], g: &Geom, col: &mut [f32], stride: usize, off: usize) {
    let s = &g.s;
    let (k, p, wo) = (s.kernel, g.p(), g.wo);
    for ci in 0..s.cin {
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..k {
            for kx in 0..k {
                let r = (ci * k + ky) * k + kx;
                let dst = &mut col[r * stride + off..r * stride + off + p];
                let dy = (ky * s.dilation) as isize - s.padding as isize;
                let dx = (kx * s.dilation) as isize - s.padding as isize;
                for oy in 0..g.ho {
                    let iy = (oy * s.stride) as isize + dy;
                    let drow = &mut dst[oy * wo..(oy + 1) * wo];
                    if iy < 0 || iy >= g.h as isize {
                        drow.fill(0.0);
                        continue;
                    }
                    let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    if s.stride == 1 {
                        // contiguous run: the valid ox are those with 0 ≤ ox + dx < w
                        let lo = (-dx).clamp(0, wo as isize) as usize;
                        let hi = (g.w as isize - dx).clamp(0, wo as isize) as usize;
                        drow[..lo].fill(0.0);
                        if hi > lo {
                            let a = (lo as isize + dx) as usize;
                            drow[lo..hi].copy_from_slice(&src[a..a + (hi - lo)]);
                        }
                        drow[hi.max(lo)..].fill(0.0);
                        continue;
                    }
                    for (ox, v) in drow.iter_mut().enumerate() {
                        let ix = (ox * s.stride) as isize + dx;
                        *v = if ix < 0 || ix >= g.w as isize {
                            0.0
                        } else {
                            src[ix as usize]
                        };
                    }
                }
            }
        }
    }
}

/// Adjoint of [`im2col_into`]: adds the rows of `col` back into one image's gradient.
fn col2im_from(col: &[f32], g: &Geom, stride: usize, off: usize, gx: &mut [f32]) {
    let s = &g.s;
    let (k, p, wo) = (s.kernel, g.p(), g.wo);
    for ci in 0..s.cin {
        let plane = &mut gx[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..k {
            for kx in 0..k {
                let r = (ci * k + ky) * k + kx;
                let src = &col[r * stride + off..r * stride + off + p];
                let dy = (ky * s.dilation) as isize - s.padding as isize;
                let dx = (kx * s.dilation) as isize - s.padding as isize;
                for oy in 0..g.ho {
                    let iy = (oy * s.stride) as isize + dy;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let dst = &mut plane[iy as usize * g.w..(iy as usize + 1) * g.w];
                    let srow = &src[oy * wo..(oy + 1) * wo];
                    if s.stride == 1 {
                        let lo = (-dx).clamp(0, wo as isize) as usize;
                        let hi = (g.w as isize - dx).clamp(0, wo as isize) as usize;
                        if hi > lo {
                            let a = (lo as isize + dx) as usize;
                            for (d, v) in dst[a..a + (hi - lo)].iter_mut().zip(&srow[lo..hi]) {
                                *d += v;
                            }
                        }
                        continue;
                    }
                    for (ox, v) in srow.iter().enumerate() {
                        let ix = (ox * s.stride) as isize + dx;
                        if ix >= 0 && ix < g.w as isize {
                            dst[ix as usize] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Outputs of one forward + backward pass.
struct Pass {
    y: Vec<f32>,
    gx: Vec<f32>,
    gw: Vec<f32>,
}

/// Today's algorithm on plain slices: one image per task, one GEMM per image and product
/// (pointwise layers unroll too, a copy that `ops::conv` skips).
fn per_image(g: &Geom, x: &[f32], w: &[f32], gy: &[f32]) -> Pass {
    let (co, kl, p, img) = (g.s.cout, g.kl(), g.p(), g.img());
    let mut cols = vec![0.0f32; g.b * kl * p];
    let mut y = vec![0.0f32; g.b * co * p];
    y.par_chunks_mut(co * p)
        .zip(cols.par_chunks_mut(kl * p))
        .enumerate()
        .for_each(|(n, (yb, col))| {
            im2col_into(&x[n * img..(n + 1) * img], g, col, p, 0);
            matmul(
                MatMut::row_major(yb, co, p),
                false,
                MatRef::row_major(w, co, kl),
                MatRef::row_major(col, kl, p),
                Parallelism::None,
            );
        });
    let mut gx = vec![0.0f32; g.b * img];
    let mut parts = vec![0.0f32; g.b * co * kl];
    gx.par_chunks_mut(img)
        .zip(parts.par_chunks_mut(co * kl))
        .enumerate()
        .for_each_init(
            || vec![0.0f32; kl * p],
            |dcol, (n, (gxb, gwb))| {
                let gyb = &gy[n * co * p..(n + 1) * co * p];
                let col = &cols[n * kl * p..(n + 1) * kl * p];
                matmul(
                    MatMut::row_major(gwb, co, kl),
                    false,
                    MatRef::row_major(gyb, co, p),
                    MatRef::transposed(col, p, kl),
                    Parallelism::None,
                );
                matmul(
                    MatMut::row_major(dcol, kl, p),
                    false,
                    MatRef::transposed(w, kl, co),
                    MatRef::row_major(gyb, co, p),
                    Parallelism::None,
                );
                col2im_from(dcol, g, p, 0, gxb);
            },
        );
    let mut gw = vec![0.0f32; co * kl];
    for part in parts.chunks(co * kl) {
        gw.iter_mut().zip(part).for_each(|(d, v)| *d += v);
    }
    Pass { y, gx, gw }
}

/// Buffers that live across calls, as a pool inside `ops::conv` would keep them: every one
/// is overwritten before it is read (im2col writes every element; a GEMM with
/// `accumulate = false` never reads its destination), so stale values are harmless and
/// nothing is zeroed per call.
#[derive(Default)]
struct Scratch {
    cols: Vec<f32>,
    dcols: Vec<Vec<f32>>,
    parts: Vec<f32>,
}

fn reuse(buf: &mut Vec<f32>, len: usize) {
    if buf.len() != len {
        buf.resize(len, 0.0);
    }
}

/// Next: today's per-image algorithm with (1) the per-image weight gradient computed into a
/// column-major (transposed) destination, the storage order in which the `gemm` crate runs
/// this product fastest (`conv_next layouts`: 0.16–0.18 ms against 0.28 ms for 64×576×256,
/// one thread), and (2) the unrolled columns, their gradients and the per-image weight
/// gradients in reused buffers.
fn next(g: &Geom, x: &[f32], w: &[f32], gy: &[f32], sc: &mut Scratch) -> Pass {
    let (co, kl, p, img) = (g.s.cout, g.kl(), g.p(), g.img());
    reuse(&mut sc.cols, g.b * kl * p);
    let mut y = vec![0.0f32; g.b * co * p];
    y.par_chunks_mut(co * p)
        .zip(sc.cols.par_chunks_mut(kl * p))
        .enumerate()
        .for_each(|(n, (yb, col))| {
            im2col_into(&x[n * img..(n + 1) * img], g, col, p, 0);
            matmul(
                MatMut::row_major(yb, co, p),
                false,
                MatRef::row_major(w, co, kl),
                MatRef::row_major(col, kl, p),
                Parallelism::None,
            );
        });
    let mut gx = vec![0.0f32; g.b * img];
    reuse(&mut sc.parts, g.b * co * kl);
    if sc.dcols.len() != g.b {
        sc.dcols.resize_with(g.b, Vec::new);
    }
    let cols = &sc.cols;
    gx.par_chunks_mut(img)
        .zip(sc.parts.par_chunks_mut(co * kl))
        .zip(sc.dcols.par_iter_mut())
        .enumerate()
        .for_each(|(n, ((gxb, gwb), dcol))| {
            reuse(dcol, kl * p);
            let gyb = &gy[n * co * p..(n + 1) * co * p];
            let col = &cols[n * kl * p..(n + 1) * kl * p];
            // dW_b stored transposed: (Cout × K) column-major
            matmul(
                MatMut::new(gwb, co, kl, gmmseg::ops::gemm::Order::ColMajor),
                false,
                MatRef::row_major(gyb, co, p),
                MatRef::transposed(col, p, kl),
                Parallelism::None,
            );
            matmul(
                MatMut::row_major(dcol, kl, p),
                false,
                MatRef::transposed(w, kl, co),
                MatRef::row_major(gyb, co, p),
                Parallelism::None,
            );
            col2im_from(dcol, g, p, 0, gxb);
        });
    // sum the transposed parts in image order, then transpose once
    let mut gwt = vec![0.0f32; co * kl];
    for part in sc.parts.chunks(co * kl) {
        gwt.iter_mut().zip(part).for_each(|(d, v)| *d += v);
    }
    let mut gw = vec![0.0f32; co * kl];
    for o in 0..co {
        for r in 0..kl {
            gw[o * kl + r] = gwt[r * co + o];
        }
    }
    Pass { y, gx, gw }
}

/// The three whole-batch products of the same FLOPs, operands laid out, no unrolling.
fn floor(g: &Geom, bufs: &mut (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>)) {
    let (co, kl, n) = (g.s.cout, g.kl(), g.b * g.p());
    let threads = Parallelism::Rayon(rayon::current_num_threads());
    let (w, col, yb, dcol) = bufs;
    use gmmseg::ops::gemm::Order::{ColMajor as C, RowMajor as R};
    // the orders `conv_next layouts` finds fastest for each: c/c/r, c/c/r, r/c/r
    matmul(
        MatMut::new(yb, co, n, C),
        false,
        MatRef::new(w, co, kl, C),
        MatRef::new(col, kl, n, R),
        threads,
    );
    matmul(
        MatMut::new(w, co, kl, C),
        false,
        MatRef::new(yb, co, n, C),
        MatRef::new(col, n, kl, R),
        threads,
    );
    matmul(
        MatMut::new(dcol, kl, n, R),
        false,
        MatRef::new(w, kl, co, C),
        MatRef::new(yb, co, n, R),
        threads,
    );
}

fn max_rel_diff(a: &[f32], b: &[f32]) -> f64 {
    let scale = a.iter().map(|v| v.abs() as f64).fold(1e-12, f64::max);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() as f64)
        .fold(0.0, f64::max)
        / scale
}

fn bits_equal(a: &Pass, b: &Pass) -> bool {
    let eq = |u: &[f32], v: &[f32]| u.iter().zip(v).all(|(x, y)| x.to_bits() == y.to_bits());
    eq(&a.y, &b.y) && eq(&a.gx, &b.gx) && eq(&a.gw, &b.gw)
}

fn fill(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| (((i as u32).wrapping_mul(2_654_435_761) ^ seed) % 1999) as f32 / 999.5 - 1.0)
        .collect()
}

fn best_of(reps: usize, mut runs: Vec<&mut dyn FnMut()>) -> Vec<f64> {
    let mut best = vec![f64::MAX; runs.len()];
    for _ in 0..reps {
        for (t, run) in best.iter_mut().zip(runs.iter_mut()) {
            let start = Instant::now();
            run();
            *t = t.min(start.elapsed().as_secs_f64());
        }
    }
    best
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("layouts") {
        let num = |i: usize| args[i].parse::<usize>().expect("CO K N");
        layouts(num(2), num(3), num(4), 20);
        return;
    }
    let reps: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(30);
    // the benchmark's headline case, then the default network's convolutions
    let mut layers = vec![("headline 3x3 64->64", ConvSpec::same(64, 64, 3, 1, 1), 32)];
    layers.extend(network::default_network_convs());
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    println!(
        "threads = {}; best of {reps} interleaved runs",
        rayon::current_num_threads()
    );
    let (mut sum_today, mut sum_next, mut sum_floor) = (0.0, 0.0, 0.0);
    for (i, (name, spec, hw)) in layers.iter().enumerate() {
        let g = Geom::new(*spec, 8, *hw);
        let x = fill(g.b * g.img(), 1);
        let w = fill(spec.cout * g.kl(), 2);
        let gy = fill(g.b * spec.cout * g.p(), 3);
        // correctness: forward against the f64 reference, everything against today's
        let today = per_image(&g, &x, &w, &gy);
        let mut sc = Scratch::default();
        let next_pass = next(&g, &x, &w, &gy, &mut sc);
        let x64: Vec<f64> = x.iter().map(|&v| v as f64).collect();
        let w64: Vec<f64> = w.iter().map(|&v| v as f64).collect();
        let reference = conv2d_direct(&x64, (g.b, spec.cin, g.h, g.w), &w64, None, spec);
        let reference: Vec<f32> = reference.iter().map(|&v| v as f32).collect();
        let diff = max_rel_diff(&reference, &next_pass.y)
            .max(max_rel_diff(&today.gx, &next_pass.gx))
            .max(max_rel_diff(&today.gw, &next_pass.gw));
        assert!(diff < 1e-4, "{name}: next differs from today's by {diff:e}");
        let single = one.install(|| next(&g, &x, &w, &gy, &mut Scratch::default()));
        let same_bits = bits_equal(&next_pass, &single);
        // timing
        let mut bufs = (
            w.clone(),
            fill(g.kl() * g.b * g.p(), 4),
            vec![0.0f32; spec.cout * g.b * g.p()],
            vec![0.0f32; g.kl() * g.b * g.p()],
        );
        let times = best_of(
            reps,
            vec![
                &mut || {
                    std::hint::black_box(per_image(&g, &x, &w, &gy));
                },
                &mut || {
                    std::hint::black_box(next(&g, &x, &w, &gy, &mut sc));
                },
                &mut || floor(&g, &mut bufs),
            ],
        );
        if i > 0 {
            sum_today += times[0];
            sum_next += times[1];
            sum_floor += times[2];
        }
        println!(
            "  {name:<24} @{hw:>2}: today {:>7.3} ms, next {:>7.3} ms ({:.2}x faster), floor {:>7.3} ms; vs floor today {:.2} next {:.2}; max rel diff {diff:.1e}; 1 vs {} threads bit-identical: {same_bits}",
            times[0] * 1e3,
            times[1] * 1e3,
            times[0] / times[1],
            times[2] * 1e3,
            times[2] / times[0],
            times[2] / times[1],
            rayon::current_num_threads(),
        );
    }
    println!(
        "network (19 convolutions summed): today {:.2} ms, next {:.2} ms ({:.2}x faster); vs the whole-batch floor: today {:.2}x, next {:.2}x",
        sum_today * 1e3,
        sum_next * 1e3,
        sum_today / sum_next,
        sum_floor / sum_today,
        sum_floor / sum_next
    );
}

/// `conv_next layouts CO K N`: the time of each of the three products in all eight storage
/// orders (dst/a/b, r = row-major, c = column-major), one thread.
#[allow(dead_code)]
fn layouts(co: usize, k: usize, n: usize, reps: usize) {
    use gmmseg::ops::gemm::Order;
    let ord = |l: u8, bit: u8| {
        if l & bit != 0 {
            Order::ColMajor
        } else {
            Order::RowMajor
        }
    };
    let name = |o: Order| if o == Order::ColMajor { 'c' } else { 'r' };
    let a_y = fill(co * k, 1);
    let b_y = fill(k * n, 2);
    let a_w = fill(co * n, 3);
    let b_w = fill(n * k, 4);
    let mut d1 = vec![0.0f32; co * n];
    let mut d2 = vec![0.0f32; co * k];
    let mut d3 = vec![0.0f32; k * n];
    // (name, m, n, k) per product: y = W·col, dW = gy·colᵀ, dcol = Wᵀ·gy
    let prods: [(&str, usize, usize, usize); 3] = [
        ("y=W.col", co, n, k),
        ("dW=gy.colT", co, k, n),
        ("dcol=WT.gy", k, n, co),
    ];
    for (pi, (pname, m, nn, kk)) in prods.iter().enumerate() {
        let mut line = format!("{pname:<11} m={m} n={nn} k={kk}:");
        for l in 0..8u8 {
            let (dst, a, b): (&mut [f32], &[f32], &[f32]) = match pi {
                0 => (&mut d1, &a_y, &b_y),
                1 => (&mut d2, &a_w, &b_w),
                _ => (&mut d3, &a_y, &a_w),
            };
            let (od, oa, ob) = (ord(l, 1), ord(l, 2), ord(l, 4));
            let mut best = f64::MAX;
            for _ in 0..reps {
                let t = Instant::now();
                matmul(
                    MatMut::new(dst, *m, *nn, od),
                    false,
                    MatRef::new(a, *m, *kk, oa),
                    MatRef::new(b, *kk, *nn, ob),
                    Parallelism::None,
                );
                best = best.min(t.elapsed().as_secs_f64());
            }
            line += &format!(" {}{}{} {:.3}", name(od), name(oa), name(ob), best * 1e3);
        }
        println!("{line}");
    }
}
