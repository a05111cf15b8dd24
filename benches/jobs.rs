//! Models per hour with `--jobs 2` over `--jobs 1` (issue 18, goal ≥ 1.5× on two cores):
//! the same quick-profile studies trained twice from an empty cache in one run, once one
//! model at a time on every thread, once one model per thread; the rows are checked equal
//! (wall-clock metrics aside) before the ratio is printed.
//!
//! Run: `cargo bench --bench jobs` (about 7 minutes on two cores). Under `cargo test
//! --all-targets` (no `--bench` argument) it runs the `tiny` profile with one seed instead,
//! so that the code and the equality check run without training quick models in a debug
//! build. Options as environment variables: `GMMSEG_BENCH_STUDIES` (comma-separated,
//! default `em,components`), `GMMSEG_BENCH_SEEDS` (default 2; 1 in test mode),
//! `GMMSEG_BENCH_DATASET` (default `synthscapes`).

use std::time::Instant;

use gmmseg::experiments::{default_jobs, ExperimentProfile, ExperimentRunner, RunRow, Study};

const WALL_CLOCK: [&str; 4] = [
    "train_s",
    "step_ms",
    "images_per_s",
    "throughput_vs_softmax",
];

/// Trains `studies` from an empty results folder with `jobs` models at once; returns
/// (models trained, seconds, the rows without wall-clock metrics).
fn train(
    profile: &ExperimentProfile,
    studies: &[Study],
    dataset: &str,
    seeds: usize,
    jobs: usize,
) -> (usize, f64, Vec<RunRow>) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let profile = profile.clone().check().expect("valid profile");
    let mut runner = ExperimentRunner::new(profile, dataset)
        .and_then(|r| r.with_seeds(seeds))
        .and_then(|r| r.with_jobs(jobs))
        .expect("runner")
        .with_results_dir(dir.path());
    let started = Instant::now();
    let mut rows = Vec::new();
    for &study in studies {
        runner.run(study).expect("study runs");
        let csv = dir.path().join(format!("{}.csv", study.name()));
        rows.extend(gmmseg::experiments::read_rows(&csv).expect("rows"));
    }
    let seconds = started.elapsed().as_secs_f64();
    rows.retain(|r| !WALL_CLOCK.contains(&r.metric.as_str()));
    (runner.trained_models(), seconds, rows)
}

fn main() {
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let studies: Vec<Study> = var("GMMSEG_BENCH_STUDIES", "em,components")
        .split(',')
        .map(|s| Study::parse(s.trim()).expect("GMMSEG_BENCH_STUDIES: a study name"))
        .collect();
    let bench_mode = std::env::args().any(|a| a == "--bench");
    let (profile, name, default_seeds) = if bench_mode {
        (ExperimentProfile::quick(), "quick", "2")
    } else {
        (ExperimentProfile::tiny(), "tiny (test mode)", "1")
    };
    let seeds: usize = var("GMMSEG_BENCH_SEEDS", default_seeds)
        .parse()
        .expect("GMMSEG_BENCH_SEEDS");
    let dataset = var("GMMSEG_BENCH_DATASET", "synthscapes");
    let threads = rayon::current_num_threads();
    let jobs = default_jobs().max(2);
    println!("{name} profile, {dataset}, studies {studies:?}, {seeds} seeds, {threads} threads");
    let (n1, s1, rows1) = train(&profile, &studies, &dataset, seeds, 1);
    let per_hour_1 = n1 as f64 / s1 * 3600.0;
    println!("--jobs 1: {n1} models in {s1:.1} s = {per_hour_1:.0} models/h");
    let (nj, sj, rowsj) = train(&profile, &studies, &dataset, seeds, jobs);
    let per_hour_j = nj as f64 / sj * 3600.0;
    println!("--jobs {jobs}: {nj} models in {sj:.1} s = {per_hour_j:.0} models/h");
    let same = rows1.len() == rowsj.len()
        && rows1.iter().zip(&rowsj).all(|(a, b)| {
            (&a.variant, &a.group, a.param, a.seed, &a.metric, &a.model)
                == (&b.variant, &b.group, b.param, b.seed, &b.metric, &b.model)
                && a.value.to_bits() == b.value.to_bits()
        });
    println!("rows of --jobs {jobs} equal those of --jobs 1 (wall-clock metrics aside): {same}");
    println!(
        "summary: --jobs {jobs} vs --jobs 1 models per hour: {:.2}× (goal ≥ 1.5×)",
        per_hour_j / per_hour_1
    );
    assert!(same, "--jobs changed the rows");
}
