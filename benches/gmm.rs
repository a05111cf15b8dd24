//! GMM benchmarks (issue 8):
//! (a) log-likelihood of 262,144 pixels under C = 19, M = 5, D = 64, beside a plain dfdx
//!     matmul of the same FLOPs ((N × 2D) · (2D × C·M)), and their throughput ratio;
//! (b) one Sinkhorn-EM iteration (E-step + M-step, all classes) on 1M pixels, in pixels/s,
//!     and how it splits between its three parts (own-class log-likelihood, Sinkhorn,
//!     M-step moments) on one class of 52,632 pixels.
//!
//! Run: `cargo bench --bench gmm`. The summary lines at the end are what README records.

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use dfdx::prelude::*;
use gmmseg::gmm::likelihood::own_class_log_likelihood;
use gmmseg::gmm::mstep::Moments;
use gmmseg::gmm::sinkhorn::sinkhorn;
use gmmseg::gmm::{fit, ClassIndex, EStep, FitOptions, GmmConfig, GmmParams};
use gmmseg::ops::loglik::log_likelihood;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const C: usize = 19;
const M: usize = 5;
const D: usize = 64;

fn params(rng: &mut ChaCha8Rng) -> GmmParams {
    let mut p = GmmParams::random_unit(C, M, D, rng);
    p.variances.mapv_inplace(|_| rng.gen_range(0.05f32..0.5));
    p
}

fn features(n: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_fn((n, D), |_| rng.gen_range(-1.0f32..1.0))
}

/// Median wall time of `f` over `reps` runs (after one warm-up).
fn median(reps: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut t: Vec<Duration> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed()
        })
        .collect();
    t.sort();
    t[reps / 2]
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let n = 262_144;
    let p = params(&mut rng);
    let x = features(n, &mut rng);
    let table = Arc::new(p.loglik_table());
    let dev: Cpu = Default::default();
    let a: Tensor<(usize, usize), f32, Cpu> =
        dev.tensor_from_vec(vec![0.5f32; n * 2 * D], (n, 2 * D));
    let b: Tensor<(usize, usize), f32, Cpu> =
        dev.tensor_from_vec(vec![0.25f32; 2 * D * C * M], (2 * D, C * M));
    let xt: Tensor<(usize, usize), f32, Cpu> =
        dev.tensor_from_vec(x.iter().copied().collect(), (n, D));

    let mut group = c.benchmark_group("loglik_262144px_C19_M5_D64");
    group.bench_function("gmm_loglik_table", |bch| {
        bch.iter(|| black_box(table.compute(x.view())))
    });
    group.bench_function("gmm_loglik_tensor_op", |bch| {
        bch.iter(|| black_box(log_likelihood(xt.clone(), &table).unwrap()))
    });
    group.bench_function("dfdx_matmul_same_flops", |bch| {
        bch.iter(|| black_box(a.clone().matmul(b.clone())))
    });
    group.finish();

    let big = 1_000_000;
    let xb = features(big, &mut rng);
    let labels: Vec<i64> = (0..big).map(|i| (i % C) as i64).collect();
    let index = ClassIndex::new(labels.iter().copied(), C, "labels").unwrap();
    let cfg = GmmConfig {
        dim: D,
        mean_momentum: 0.0,
        var_momentum: 0.0,
        ..GmmConfig::paper(C)
    }
    .check()
    .unwrap();
    let opts = FitOptions {
        iterations: 1,
        seed: 0,
        init: Some(p.clone()),
    };
    let mut group = c.benchmark_group("sinkhorn_em_1M_px_C19_M5_D64");
    group.sample_size(10);
    group.bench_function("one_iteration", |bch| {
        bch.iter(|| black_box(fit(xb.view(), &index, &cfg, &opts).unwrap()))
    });
    group.finish();

    // One-run summary with ratios (what README records); skipped under `cargo test`, which
    // runs each criterion benchmark once without `--bench`.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let t_table = median(7, || {
        black_box(table.compute(x.view()));
    });
    let t_op = median(7, || {
        black_box(log_likelihood(xt.clone(), &table).unwrap());
    });
    let t_mm = median(7, || {
        black_box(a.clone().matmul(b.clone()));
    });
    let t_em = median(3, || {
        black_box(fit(xb.view(), &index, &cfg, &opts).unwrap());
    });
    // The three parts of one EM iteration, on one class's rows (1M / 19).
    let xc = xb.slice(ndarray::s![..big / C, ..]).to_owned();
    let sk = match cfg.e_step {
        EStep::Sinkhorn(s) => s,
        EStep::Vanilla => unreachable!("paper config uses Sinkhorn"),
    };
    let ll = own_class_log_likelihood(xc.view(), &p, 0);
    let resp = sinkhorn(ll.view(), &sk).responsibilities;
    let shift = p.means.index_axis(ndarray::Axis(0), 0).to_owned();
    let t_ll = median(7, || {
        black_box(own_class_log_likelihood(xc.view(), &p, 0));
    });
    let t_sk = median(7, || {
        black_box(sinkhorn(ll.view(), &sk));
    });
    let t_mo = median(7, || {
        black_box(Moments::accumulate(xc.view(), resp.view(), shift.view()));
    });
    let flops = 2.0 * n as f64 * (2 * D) as f64 * (C * M) as f64;
    println!("\nSUMMARY (threads: {})", rayon::current_num_threads());
    println!(
        "loglik 262144 px, C=19 M=5 D=64: table {:.1} ms ({:.1} GFLOP/s), tensor op {:.1} ms, dfdx matmul same FLOPs {:.1} ms ({:.1} GFLOP/s)",
        t_table.as_secs_f64() * 1e3,
        flops / t_table.as_secs_f64() / 1e9,
        t_op.as_secs_f64() * 1e3,
        t_mm.as_secs_f64() * 1e3,
        flops / t_mm.as_secs_f64() / 1e9
    );
    println!(
        "throughput ratio vs dfdx matmul: table {:.2}x, tensor op {:.2}x (goal >= 0.8x)",
        t_mm.as_secs_f64() / t_table.as_secs_f64(),
        t_mm.as_secs_f64() / t_op.as_secs_f64()
    );
    println!(
        "one Sinkhorn-EM iteration on 1M px, C=19 M=5 D=64: {:.0} ms, {:.2} M pixels/s",
        t_em.as_secs_f64() * 1e3,
        big as f64 / t_em.as_secs_f64() / 1e6
    );
    let part = |t: Duration| t.as_secs_f64() * 1e3;
    let total = part(t_ll) + part(t_sk) + part(t_mo);
    println!(
        "  its parts on one class of {} px: own-class log-lik {:.1} ms ({:.0}%), Sinkhorn {:.1} ms ({:.0}%), M-step moments {:.1} ms ({:.0}%)",
        xc.nrows(),
        part(t_ll),
        100.0 * part(t_ll) / total,
        part(t_sk),
        100.0 * part(t_sk) / total,
        part(t_mo),
        100.0 * part(t_mo) / total
    );
}
