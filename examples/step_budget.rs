//! How many optimiser steps a dataset needs at the tuned presets, judged on the `tune` split
//! only: trains the softmax baseline or GMMSeg (the full profile's network and schedule, the
//! quick profile's tuned optimiser and head values) for each step budget — a fresh run per
//! budget, because the poly learning-rate decay depends on the total — and scores it on
//! `tune` (never val or an anomaly split). The full profile's step budget for DigitScenes
//! (`ExperimentProfile::dataset_steps`) was chosen with it.
//!
//! Run (one process per head, so that two cores train two runs at once):
//! `RAYON_NUM_THREADS=1 cargo run --release --example step_budget -- run HEAD DATASET OUT.csv
//! [STEPS,…] [SEEDS,…]`, then `cargo run --release --example step_budget -- choose OUT.csv`.
//! Rule (fixed before any run): the smallest budget whose mean tune mIoU is within 0.02 of
//! the best budget's, for every head.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use gmmseg::experiments::tuning::TUNED_HEADS;
use gmmseg::experiments::{open_split, ExperimentProfile, NOT_WORSE_MARGIN};
use gmmseg::train::config::HeadKind;
use gmmseg::train::trainer::Trainer;
use gmmseg::GmmSegError;

/// Slack of the rule: a budget within this much tune mIoU of the best budget's counts as
/// enough (twice the "not worse" margin of the claims, 0.02).
const SLACK: f64 = 2.0 * NOT_WORSE_MARGIN;

/// Columns of the CSV that `run` appends to and `choose` reads.
const HEADER: &str = "dataset,head,seed,steps,tune_miou,tune_acc,tune_macc,wall_s\n";

fn parse_list<T: std::str::FromStr + Clone>(
    arg: Option<&String>,
    default: &[T],
    flag: &str,
) -> Vec<T> {
    arg.map_or_else(
        || default.to_vec(),
        |s| {
            s.split(',')
                .map(|v| {
                    v.trim().parse().unwrap_or_else(|_| {
                        eprintln!("step_budget: {flag}: `{v}` is not a number");
                        std::process::exit(2)
                    })
                })
                .collect()
        },
    )
}

fn run(args: &[String]) -> gmmseg::Result<()> {
    let [head, dataset, out, rest @ ..] = args else {
        return Err(GmmSegError::input(
            "arguments",
            "run HEAD DATASET OUT.csv [STEPS,…] [SEEDS,…]",
        ));
    };
    // the heads the tuning study tunes, by their command-line names
    let head = <HeadKind as clap::ValueEnum>::from_str(head, false)
        .ok()
        .filter(|h| TUNED_HEADS.contains(h))
        .ok_or_else(|| GmmSegError::input("HEAD", format!("softmax or gmmseg, got `{head}`")))?;
    let budgets: Vec<usize> = parse_list(rest.first(), &[300, 500, 1000, 1500, 3000], "STEPS");
    let seeds: Vec<u64> = parse_list(rest.get(1), &[1000, 1001], "SEEDS");
    // the full profile's network, schedule and evaluation sizes; the quick profile's tuned
    // values (the full profile is tuned after its budget is chosen)
    let mut profile = ExperimentProfile::full();
    profile.tuned = ExperimentProfile::quick().tuned;
    profile.dataset_steps.clear();
    let tune_images = profile.val_images;
    let profile = profile.check()?;
    let p = profile.get();
    let train = open_split(p, dataset, "train")?;
    let tune = open_split(p, dataset, "tune")?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .map_err(|e| GmmSegError::io(out, e))?;
    if file.metadata().map_err(|e| GmmSegError::io(out, e))?.len() == 0 {
        file.write_all(HEADER.as_bytes())
            .map_err(|e| GmmSegError::io(out, e))?;
    }
    for &seed in &seeds {
        for &steps in &budgets {
            let mut c = profile.head_config(dataset, head)?;
            c.steps = steps;
            c.seed = seed;
            let started = Instant::now();
            let mut t = Trainer::new(c.check()?, train.num_classes())?;
            t.fit(train.as_ref(), None, &mut |_| {})?;
            let r = t.evaluate(tune.as_ref(), tune_images)?;
            let line = format!(
                "{dataset},{head},{seed},{steps},{:.6},{:.6},{:.6},{:.1}\n",
                r.miou,
                r.acc,
                r.macc,
                started.elapsed().as_secs_f64()
            );
            print!("{line}");
            file.write_all(line.as_bytes())
                .map_err(|e| GmmSegError::io(out, e))?;
        }
    }
    Ok(())
}

fn choose(args: &[String]) -> gmmseg::Result<()> {
    let [path] = args else {
        return Err(GmmSegError::input("arguments", "choose OUT.csv"));
    };
    let text = std::fs::read_to_string(path).map_err(|e| GmmSegError::io(path, e))?;
    // (head, steps) → tune mIoU of each seed
    let mut by: BTreeMap<(String, usize), Vec<f64>> = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        if i == 0 && line == HEADER.trim_end() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let bad = || GmmSegError::input(path, format!("line {}: `{line}`", i + 1));
        if f.len() != 8 {
            return Err(bad());
        }
        let steps = f[3].parse().map_err(|_| bad())?;
        let miou = f[4].parse().map_err(|_| bad())?;
        by.entry((f[1].to_string(), steps)).or_default().push(miou);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let heads: Vec<String> = by
        .keys()
        .map(|(h, _)| h.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let budgets: Vec<usize> = by
        .keys()
        .map(|(_, s)| *s)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    println!("| steps | {} |", heads.join(" | "));
    println!("|---|{}", "---|".repeat(heads.len()));
    for s in &budgets {
        let cells: Vec<String> = heads
            .iter()
            .map(|h| {
                by.get(&(h.clone(), *s)).map_or("–".into(), |v| {
                    let each: Vec<String> = v.iter().map(|x| format!("{x:.3}")).collect();
                    format!("{:.3} ({})", mean(v), each.join(", "))
                })
            })
            .collect();
        println!("| {s} | {} |", cells.join(" | "));
    }
    // each head's best mean tune mIoU over the budgets
    let best: BTreeMap<&String, f64> = heads
        .iter()
        .map(|h| {
            let b = budgets
                .iter()
                .filter_map(|b| by.get(&(h.clone(), *b)))
                .map(|v| mean(v))
                .fold(f64::NEG_INFINITY, f64::max);
            (h, b)
        })
        .collect();
    let enough = |s: usize| {
        heads.iter().all(|h| {
            by.get(&(h.clone(), s))
                .is_some_and(|v| mean(v) >= best[h] - SLACK)
        })
    };
    match budgets.iter().find(|s| enough(**s)) {
        Some(s) => println!(
            "\nChosen: {s} steps (the smallest budget within {SLACK} tune mIoU of each head's best)"
        ),
        None => println!("\nNo budget has every head's runs"),
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("choose") => choose(&args[1..]),
        _ => Err(GmmSegError::input(
            "arguments",
            "run HEAD DATASET OUT.csv [STEPS,…] [SEEDS,…] | choose OUT.csv",
        )),
    };
    if let Err(e) = result {
        eprintln!("step_budget: {e}");
        std::process::exit(1);
    }
}
