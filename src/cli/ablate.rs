//! `gmmseg ablate`: runs the paper's ablation studies with caching, prints their summaries
//! and claims, and writes CSVs and figures under `data/results/<profile>/`.
//!
//! ```text
//! gmmseg ablate <study>|all|tuning --profile quick|full [--dataset synthscapes|digitscenes|folder:PATH]
//!               [--seeds N] [--jobs N] [--force] [--shard K/N] [--cache-only]
//! gmmseg ablate prune --profile quick|full [--results-dir DIR]
//! ```
//! `prune` removes the model records and tuning trials of other code (`cli::prune`).
//! `--jobs N` trains N models at once, each on `threads / N` threads (default: one per
//! thread, which measured fastest on two cores; the rows are those of `--jobs 1`).
//! Files per study: `<study>.csv` (runs of every dataset, long format, the cache),
//! `<study>.configs.json` (hash → full run identity), `models/<key>.json` (every trained
//! model's config and evaluations), and per dataset `<dataset>/<study>_summary.csv` (mean,
//! std, 95% CI, claim rows) and `<dataset>/<study>*.svg|png` (figures); with `all`, also
//! `<dataset>/claims.md` and `<dataset>/claims.csv` (the paired verdicts). `--shard K/N` computes only the K-th of N disjoint slices of each study's
//! runs (for job arrays) and writes no summary or figure; a later run without `--shard`
//! assembles the cached rows and plots. When a study trains a model whose timings the
//! runtime study reports, a warning on stderr says whether other processes took the CPU
//! meanwhile (`cli::machine_load`). The results folder is `<root>/<profile>/` with
//! `<root>` = `--results-dir`, else `$GMMSEG_RESULTS_DIR`, else `./data/results`.

use std::time::Instant;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::machine_load::{busy_warning, CpuSample};
use crate::error::{GmmSegError, Result};
use crate::experiments::{
    dataset_slug, default_jobs, write_figures, ExperimentProfile, ExperimentRunner, Shard, Study,
    StudyResult,
};

/// The dataset `ablate` runs on when `--dataset` is not given.
pub const DEFAULT_DATASET: &str = "synthscapes";

/// Arguments of `gmmseg ablate`.
#[derive(Debug, Args)]
pub struct AblateArgs {
    /// A study (main_results, anomaly, online_vs_posthoc, gen_vs_disc, em, components,
    /// calibration, flavours, runtime, gap), `all`, or `tuning` (the search on the tune split that
    /// chooses the presets; not part of `all`: `--seeds` is then seeds per trial, default 1),
    /// or `prune` (removes the profile's model records and trials of other code).
    pub study: String,
    /// Profile: quick (5–6 minutes per dataset on 2 cores with the default `--jobs`) or full
    /// (the reproduction, 5 seeds; measured on 2 cores: 56 minutes for SynthScapes, and
    /// DigitScenes, at six times the steps, about four to five hours — `--shard K/N` and
    /// scripts/slurm/ spread it).
    /// `tiny` (seconds, meaningless numbers) exists for tests.
    #[arg(long, default_value = "quick")]
    pub profile: String,
    /// Dataset: synthscapes, digitscenes or folder:PATH.
    #[arg(long, default_value = DEFAULT_DATASET)]
    pub dataset: String,
    /// Number of seeds (0..N); default: the profile's (quick 2, full 5).
    #[arg(long)]
    pub seeds: Option<usize>,
    /// Models trained at once, each on `threads / N` threads; the rows written do not
    /// depend on it. Default: one per thread (`RAYON_NUM_THREADS` or the cores), which
    /// trains the most models per hour on two cores (`cargo bench --bench jobs`). The models
    /// the runtime study times are trained alone whatever N is.
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Recompute every run even if cached.
    #[arg(long)]
    pub force: bool,
    /// Run only the K-th of N disjoint slices of each study's runs, e.g. `--shard 2/4`.
    #[arg(long)]
    pub shard: Option<String>,
    /// Train nothing: summarise, plot and write the claims of the runs already cached
    /// (reporting how many are missing), e.g. while another process is still filling them.
    #[arg(long, conflicts_with_all = ["force", "shard"])]
    pub cache_only: bool,
    /// With `--cache-only`: show the rows of the code with this fingerprint (the `code`
    /// column of the study CSVs, e.g. `legacy-8bc1a87` for the full profile's rows computed
    /// before the fingerprint existed) instead of this build's, matched by cell; the claims
    /// and tables say whose rows they are.
    #[arg(long, requires = "cache_only")]
    pub rows_of_code: Option<String>,
    /// Results root: `<DIR>/<profile>/` holds the caches, tables and figures. Default:
    /// `$GMMSEG_RESULTS_DIR` if set, else `data/results` under the current directory.
    #[arg(long)]
    pub results_dir: Option<std::path::PathBuf>,
}

/// Where `ablate` writes: `--results-dir`, else `$GMMSEG_RESULTS_DIR`, else
/// `./data/results` — under the directory the user is in, never the crate's own folder
/// unless that is where they are.
pub(crate) fn results_root(arg: Option<&std::path::Path>) -> std::path::PathBuf {
    if let Some(d) = arg {
        return d.to_path_buf();
    }
    match std::env::var_os("GMMSEG_RESULTS_DIR") {
        Some(d) if !d.is_empty() => d.into(),
        _ => std::path::PathBuf::from("data").join("results"),
    }
}

fn fmt_stat(mean: f64, ci: Option<f64>, n: usize) -> String {
    match ci {
        Some(c) => format!("{mean:.4} ± {c:.4} (n={n})"),
        None => format!("{mean:.4} (n={n})"),
    }
}

/// Prints the summary cells (reliability bins left out: they are in the CSV) and claims.
fn print_result(r: &StudyResult) {
    println!(
        "\n== {} ({} cached, {} computed runs{})",
        r.study,
        r.cached_runs,
        r.computed_runs,
        if r.missing_runs > 0 {
            format!(", {} not cached and skipped (--cache-only)", r.missing_runs)
        } else {
            String::new()
        }
    );
    println!(
        "{:<34} {:<16} {:>6} {:<14} mean ± 95% CI",
        "variant", "group", "param", "metric"
    );
    for c in r.cells.iter().filter(|c| !c.metric.starts_with("bin_")) {
        let param = c.param.map(|p| format!("{p}")).unwrap_or_default();
        println!(
            "{:<34} {:<16} {:>6} {:<14} {}",
            c.variant,
            c.group,
            param,
            c.metric,
            fmt_stat(c.stats.mean, c.stats.ci95, c.stats.n)
        );
    }
    for c in &r.claims {
        println!("  claim {c}");
    }
}

/// Runs `gmmseg ablate`.
///
/// # Errors
/// Bad arguments name their flag; dataset, training, plotting and I/O errors.
pub fn run(args: AblateArgs) -> Result<()> {
    if args.study == "tuning" {
        return run_tuning(&args);
    }
    if args.study == "prune" {
        return super::prune::run(&args, &results_root(args.results_dir.as_deref()));
    }
    let studies: Vec<Study> = if args.study == "all" {
        Study::ALL.to_vec()
    } else {
        vec![Study::parse(&args.study)?]
    };
    let shard = args.shard.as_deref().map(Shard::parse).transpose()?;
    let profile = ExperimentProfile::by_name(&args.profile)?.check()?;
    // a dataset that does not open (a folder without classes.txt, a missing split) is an
    // error even when nothing is to be trained
    crate::experiments::open_split(profile.get(), &args.dataset, "train")?;
    let root = results_root(args.results_dir.as_deref());
    let mut runner = ExperimentRunner::new(profile.clone(), &args.dataset)?
        .with_results_dir(root.join(&profile.get().name))
        .with_force(args.force)
        .with_shard(shard)
        .with_cache_only(args.cache_only)
        .with_rows_of_code(args.rows_of_code.as_deref())
        .with_jobs(args.jobs.unwrap_or_else(default_jobs))
        .map_err(|_| GmmSegError::input("--jobs", "must be ≥ 1, got 0"))?;
    if let Some(n) = args.seeds {
        runner = runner
            .with_seeds(n)
            .map_err(|_| GmmSegError::input("--seeds", "must be ≥ 1, got 0"))?;
    }
    // Plan: skip the anomaly study on a dataset without an anomaly split when running `all`.
    let mut planned = Vec::new();
    let mut total = 0;
    for s in studies {
        match runner.planned_runs(s) {
            Ok(p) => {
                total += p.len();
                planned.push(s);
            }
            Err(e @ GmmSegError::InvalidInput { .. }) if args.study == "all" => {
                eprintln!("skipping {s}: {e}");
            }
            Err(e) => return Err(e),
        }
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs {elapsed_precise} eta {eta} {msg}")
            .expect("valid template"),
    );
    let b = bar.clone();
    runner = runner.with_progress(move |p| {
        b.inc(1);
        b.set_message(format!(
            "{} {} seed {}{}",
            p.study,
            p.spec,
            p.seed,
            if p.cached { " (cached)" } else { "" }
        ));
    });
    let started = Instant::now();
    let mut results = Vec::new();
    for s in planned {
        // the runtime study's timings are taken when its models train, in whichever study
        // needs them first
        let timed_before = runner.timed_models_trained().unwrap_or(0);
        let before = CpuSample::now();
        let result = runner.run(s)?;
        let timed_now = runner.timed_models_trained().unwrap_or(0) > timed_before;
        if let (true, Some(before), Some(after)) = (timed_now, before, CpuSample::now()) {
            if let Some(warning) = busy_warning(s, before.others_share_until(&after)) {
                bar.suspend(|| eprintln!("{warning}"));
            }
        }
        results.push(result);
    }
    bar.finish_and_clear();
    let dir = runner.results_dir().to_path_buf();
    let out_dir = dir.join(dataset_slug(&args.dataset));
    for r in &results {
        if shard.is_some() {
            println!(
                "{}: shard {}: {} runs computed, {} cached",
                r.study,
                args.shard.as_deref().unwrap_or_default(),
                r.computed_runs,
                r.cached_runs
            );
            continue;
        }
        print_result(r);
        let mut summary = r.summary.clone();
        std::fs::create_dir_all(&out_dir).map_err(|e| GmmSegError::io(&out_dir, e))?;
        crate::experiments::write_csv(
            &out_dir.join(format!("{}_summary.csv", r.study)),
            &mut summary,
        )?;
        for stem in write_figures(r.study, &r.cells, &out_dir)? {
            println!("  figure {}.svg / .png", stem.display());
        }
    }
    if shard.is_none() && args.study == "all" && !results.is_empty() {
        let path = out_dir.join("claims.md");
        let provenance = match &args.rows_of_code {
            Some(code) => format!(
                "\n\n**These rows are of code `{code}`, not of this build (`{}`)**: read with `--cache-only --rows-of-code {code}`; the current code has not reproduced them.",
                crate::experiments::code_fingerprint()
            ),
            None => format!(
                " Rows of code `{}`.",
                crate::experiments::code_fingerprint()
            ),
        };
        // The command named is the one that makes these rows; `--cache-only` only assembles
        // them (its missing runs read "not run" in the table), so it is not part of it.
        let text = format!(
            "# Claims of the paper on `{}` ({} profile)\n\nWritten by `gmmseg ablate all --profile {} --dataset {}{}`.{provenance}\n\nEach claim is decided on the paired per-seed differences A − B: their mean, a Student-t 95% CI, how many seeds agree in sign, and the verdict (reproduced: the CI lies on the claim's side of its margin — 0, or −0.01 mIoU for \"not worse\"; contradicted: on the other side; inconclusive: it straddles). The same numbers are in `claims.csv`.\n\n{}",
            args.dataset,
            args.profile,
            args.profile,
            args.dataset,
            args.seeds.map(|n| format!(" --seeds {n}")).unwrap_or_default(),
            crate::experiments::report::claims_markdown(&results)
        );
        std::fs::write(&path, text).map_err(|e| GmmSegError::io(&path, e))?;
        println!("  claims table {}", path.display());
        let claims: Vec<_> = results.iter().flat_map(|r| r.claims.clone()).collect();
        let csv = out_dir.join("claims.csv");
        crate::experiments::write_csv(&csv, &mut crate::experiments::claims_csv_frame(&claims)?)?;
        println!("  claims table {}", csv.display());
    }
    println!(
        "\n{} models trained, {:.1} s; results in {}",
        runner.trained_models(),
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}

/// `gmmseg ablate tuning`: the search on the tune split (`experiments::tuning`), one dataset
/// per call; `trials.csv`, `chosen.json` and `chosen.md` cover every dataset tuned so far.
fn run_tuning(args: &AblateArgs) -> Result<()> {
    use crate::experiments::tuning::{run_tuning, TuningOptions};
    if args.shard.is_some() {
        return Err(GmmSegError::input(
            "--shard",
            "does not apply to `ablate tuning` (use --jobs; separate calls per dataset may run at once)",
        ));
    }
    if args.rows_of_code.is_some() {
        return Err(GmmSegError::input(
            "--rows-of-code",
            "does not apply to `ablate tuning`",
        ));
    }
    let profile = ExperimentProfile::by_name(&args.profile)?.check()?;
    crate::experiments::open_split(profile.get(), &args.dataset, "train")?;
    let dir = results_root(args.results_dir.as_deref())
        .join(&profile.get().name)
        .join("tuning");
    let opts = TuningOptions {
        jobs: args.jobs.unwrap_or_else(default_jobs),
        force: args.force,
        cache_only: args.cache_only,
        seeds: args.seeds.unwrap_or(1),
        ..TuningOptions::new(&dir)
    };
    if opts.jobs == 0 {
        return Err(GmmSegError::input("--jobs", "must be ≥ 1, got 0"));
    }
    let total =
        crate::experiments::tuning::TUNED_HEADS.len() * profile.get().tuning_trials * opts.seeds;
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} trials {elapsed_precise} eta {eta} {msg}",
        )
        .expect("valid template"),
    );
    let started = Instant::now();
    let result = run_tuning(&profile, &args.dataset, &opts, &mut |r, cached| {
        bar.inc(1);
        bar.set_message(format!(
            "{} trial {} seed {}: tune mIoU {:.4}{}",
            r.head,
            r.trial,
            r.seed,
            r.tune_miou,
            if cached { " (cached)" } else { "" }
        ));
    })?;
    bar.finish_and_clear();
    if result.missing > 0 {
        println!(
            "{} trials of `{}` not cached and skipped (--cache-only)",
            result.missing, args.dataset
        );
    }
    match &result.chosen {
        Some(c) => {
            println!(
                "chosen on the tune split of {} (seeds {:?}):",
                c.datasets.join(", "),
                c.seeds
            );
            for h in &c.heads {
                println!(
                    "  {:<8} trial {:>2}: {}; mean tune mIoU {:.4} (untuned default {:.4}, {} trials compared)",
                    h.head.to_string(),
                    h.trial,
                    h.values,
                    h.tune_miou,
                    h.default_tune_miou,
                    h.trials_compared
                );
            }
        }
        None => println!("no head has a complete trial yet: nothing chosen"),
    }
    println!(
        "\n{} trials trained, {} cached, {:.1} s; results in {}",
        result.trained,
        result.cached,
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(())
}
