//! `gmmseg ablate` on the tiny profile: the summary is printed, CSVs and figures written, a
//! rerun trains nothing, and bad flags are named.

use std::process::Command;

fn ablate(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gmmseg"))
        .arg("ablate")
        .args(args)
        .env("GMMSEG_RESULTS_DIR", dir)
        .output()
        .unwrap()
}

#[test]
fn ablate_writes_tables_and_figures_and_reuses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let out = ablate(dir.path(), &["components", "--profile", "tiny"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("== components (0 cached, 2 computed runs)"),
        "{stdout}"
    );
    assert!(stdout.contains("2 models trained"), "{stdout}");
    let res = dir.path().join("tiny");
    for f in [
        "components.csv",
        "components.configs.json",
        "synthscapes/components_summary.csv",
        "synthscapes/components_miou.svg",
        "synthscapes/components_miou.png",
    ] {
        assert!(res.join(f).exists(), "{f}");
    }
    let again = ablate(dir.path(), &["components", "--profile", "tiny"]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("(2 cached, 0 computed runs)") && stdout.contains("0 models trained"),
        "{stdout}"
    );
    // two seeds requested, one cached: --cache-only trains nothing and says what is missing
    let cached = ablate(
        dir.path(),
        &[
            "components",
            "--profile",
            "tiny",
            "--seeds",
            "2",
            "--cache-only",
        ],
    );
    let stdout = String::from_utf8_lossy(&cached.stdout);
    assert!(
        cached.status.success()
            && stdout.contains("(2 cached, 0 computed runs, 2 not cached and skipped")
            && stdout.contains("0 models trained"),
        "{stdout}"
    );
    let shard = ablate(
        dir.path(),
        &[
            "components",
            "--profile",
            "tiny",
            "--seeds",
            "2",
            "--shard",
            "2/2",
            "--force",
        ],
    );
    let stdout = String::from_utf8_lossy(&shard.stdout);
    assert!(
        shard.status.success() && stdout.contains("shard 2/2: 2 runs computed"),
        "{stdout}"
    );
}

#[test]
fn bad_flags_are_named() {
    let dir = tempfile::tempdir().unwrap();
    for (args, want) in [
        (vec!["tables", "--profile", "tiny"], "study"),
        (vec!["em", "--profile", "medium"], "--profile"),
        (vec!["em", "--profile", "tiny", "--shard", "3/2"], "--shard"),
        (vec!["em", "--profile", "tiny", "--seeds", "0"], "--seeds"),
        (vec!["em", "--profile", "tiny", "--jobs", "0"], "--jobs"),
        (
            vec!["em", "--profile", "tiny", "--dataset", "imagenet"],
            "dataset",
        ),
    ] {
        let out = ablate(dir.path(), &args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// Concurrent writers: four shard processes of the same studies write one results folder at
/// the same time (as a job array does); nothing is lost or corrupted — the assembling
/// `--cache-only` run finds every run, and each CSV holds exactly the runs of a sequential
/// run, one row per cell.
#[test]
fn parallel_shard_processes_lose_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let shards: Vec<_> = (1..=4)
        .map(|k| {
            Command::new(env!("CARGO_BIN_EXE_gmmseg"))
                .args([
                    "ablate",
                    "em",
                    "--profile",
                    "tiny",
                    "--shard",
                    &format!("{k}/4"),
                ])
                .env("GMMSEG_RESULTS_DIR", dir.path())
                .env("RAYON_NUM_THREADS", "1")
                .spawn()
                .unwrap()
        })
        .collect();
    for mut s in shards {
        assert!(s.wait().unwrap().success());
    }
    let out = ablate(dir.path(), &["em", "--profile", "tiny", "--cache-only"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("== em (4 cached, 0 computed runs)"),
        "{stdout}"
    );
    let rows = gmmseg::experiments::read_rows(&dir.path().join("tiny/em.csv")).unwrap();
    let runs: std::collections::HashSet<&str> = rows.iter().map(|r| r.hash.as_str()).collect();
    assert_eq!(runs.len(), 4);
    let mut cells: Vec<_> = rows
        .iter()
        .map(|r| (&r.variant, r.param.map(f64::to_bits), r.seed, &r.metric))
        .collect();
    let n = cells.len();
    cells.sort();
    cells.dedup();
    assert_eq!(cells.len(), n);
    assert!(!dir.path().join("tiny/em.csv.lock").exists());
}

/// `--jobs 2` (two one-thread models at a time) writes the rows of `--jobs 1` (one model on
/// both threads): the same runs in the same order with bit-identical values, except the
/// wall-clock metrics, which no two runs share.
#[test]
fn two_jobs_write_the_rows_of_one_job() {
    let timing = [
        "train_s",
        "step_ms",
        "images_per_s",
        "throughput_vs_softmax",
    ];
    let run = |jobs: &str| {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_gmmseg"))
            .args(["ablate", "em", "--profile", "tiny", "--seeds", "2"])
            .args(["--jobs", jobs])
            .env("GMMSEG_RESULTS_DIR", dir.path())
            .env("RAYON_NUM_THREADS", "2")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("8 models trained"),
            "--jobs {jobs}: {stdout}"
        );
        let rows = gmmseg::experiments::read_rows(&dir.path().join("tiny/em.csv")).unwrap();
        rows.into_iter()
            .filter(|r| !timing.contains(&r.metric.as_str()))
            .map(|r| {
                let value = r.value.to_bits();
                (
                    r.variant,
                    r.group,
                    r.param.map(f64::to_bits),
                    r.seed,
                    r.metric,
                    r.hash,
                    r.model,
                    value,
                )
            })
            .collect::<Vec<_>>()
    };
    let one = run("1");
    let two = run("2");
    assert!(one.len() > 8, "{} rows", one.len());
    assert_eq!(one, two);
}

/// `scripts/reproduce.sh` (retrain a profile study by study after a code change) runs each
/// study, assembles the claims with `--cache-only` while naming the command that made the
/// rows, logs every command's wall time, and stops with the failing command's status.
#[test]
fn reproduce_script_runs_study_by_study_and_stops_on_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let run = |studies: &str| {
        Command::new("bash")
            .arg(format!("{root}/scripts/reproduce.sh"))
            .args(["tiny", "synthscapes"])
            .current_dir(root)
            .env("GMMSEG", env!("CARGO_BIN_EXE_gmmseg"))
            .env("GMMSEG_RESULTS_DIR", dir.path())
            .env("STUDIES", studies)
            .env("SKIP_TUNING", "1")
            .output()
            .unwrap()
    };
    let out = run("main_results calibration");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(dir.path().join("tiny/reproduce.log")).unwrap();
    for what in [
        "tiny synthscapes main_results rc=0",
        "tiny synthscapes calibration rc=0",
        "tiny synthscapes cache-only rc=0",
        "tiny prune rc=0",
    ] {
        assert!(log.contains(what), "{what} missing from {log}");
    }
    let claims = std::fs::read_to_string(dir.path().join("tiny/synthscapes/claims.md")).unwrap();
    assert!(
        claims.contains("`gmmseg ablate all --profile tiny --dataset synthscapes`. Rows of code"),
        "{claims}"
    );
    let out = run("main_results nosuch gap");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'tiny synthscapes nosuch' failed"));
    let log = std::fs::read_to_string(dir.path().join("tiny/reproduce.log")).unwrap();
    assert!(!log.contains("synthscapes gap"), "{log}");
}

/// The `.json` files of a folder, sorted.
fn json_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// A copy of the JSON record at `from`, with `field` set to `value`, written to `to`.
fn edited_copy(from: &std::path::Path, field: &str, value: &str, to: &std::path::Path) {
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(from).unwrap()).unwrap();
    record[field] = serde_json::Value::String(value.into());
    std::fs::write(to, serde_json::to_string(&record).unwrap()).unwrap();
}

#[test]
fn prune_removes_other_codes_records_only() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["components", "--profile", "tiny"][..],
        &["tuning", "--profile", "tiny"][..],
    ] {
        let out = ablate(dir.path(), args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let res = dir.path().join("tiny");
    let models = json_files(&res.join("models"));
    let trials = json_files(&res.join("tuning/trials"));
    assert!(!models.is_empty() && !trials.is_empty());
    // another code's model (its key is not what this code gives its configuration), another
    // code's trial, a file that does not parse, a write in progress
    let old_model = res.join("models/00000000deadbeef.json");
    edited_copy(&models[0], "key", "00000000deadbeef", &old_model);
    let old_trial = res.join("tuning/trials/0000000000000old.json");
    edited_copy(&trials[0], "code", "0123456789abcdef", &old_trial);
    edited_copy(&old_trial, "key", "0000000000000old", &old_trial);
    let broken = res.join("models/broken.json");
    std::fs::write(&broken, "{\"key\": ").unwrap();
    let partial = res.join("models/abc.json.tmp42");
    std::fs::write(&partial, "{").unwrap();
    // another code's model that a study table still names stays
    let named = res.join("models/00000000deadbee2.json");
    edited_copy(&models[0], "key", "00000000deadbee2", &named);
    let csv = res.join("components.csv");
    let stem = models[0].file_stem().unwrap().to_string_lossy().to_string();
    let table = std::fs::read_to_string(&csv).unwrap();
    assert!(table.contains(&stem));
    std::fs::write(&csv, table.replacen(&stem, "00000000deadbee2", 1)).unwrap();

    let out = ablate(dir.path(), &["prune", "--profile", "tiny"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains(&format!(
            "removed 1 model records and 1 tuning trials of other code; kept {} and {} of code {}, 1 of other code that a table still names",
            models.len(),
            trials.len(),
            gmmseg::experiments::code_fingerprint()
        )) && stdout.contains("1 unreadable files left alone"),
        "{stdout}"
    );
    assert!(stderr.contains("broken.json"), "{stderr}");
    assert!(!old_model.exists() && !old_trial.exists());
    assert!(broken.exists() && partial.exists() && named.exists());
    assert!(models.iter().chain(&trials).all(|p| p.exists()));
    // what this code wrote is still served from the cache
    let again = ablate(dir.path(), &["components", "--profile", "tiny"]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 models trained"));

    for (args, named) in [
        (&["prune", "--profile", "tiny", "--jobs", "2"][..], "--jobs"),
        (
            &["prune", "--profile", "tiny", "--dataset", "digitscenes"][..],
            "--dataset",
        ),
        (&["prune", "--profile", "quick"][..], "--profile"),
        (&["prune", "--profile", "nosuch"][..], "nosuch"),
    ] {
        let out = ablate(dir.path(), args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains(named),
            "{args:?}: {stderr}"
        );
    }
}

/// The runtime study's rows are wall-clock timings taken when its models train: with a busy
/// loop on every core beside it, `ablate runtime` says that other processes took the CPU
/// (and still writes its rows), and so does `main_results`, which trains the same models
/// first in a fresh folder; a study that trains none of them says nothing.
#[cfg(target_os = "linux")]
#[test]
fn runtime_study_warns_when_other_processes_take_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut busy: Vec<_> = (0..cores)
        .map(|_| {
            Command::new("sh")
                .args(["-c", "while :; do :; done"])
                .spawn()
                .expect("sh runs")
        })
        .collect();
    let timed = ablate(dir.path(), &["runtime", "--profile", "tiny"]);
    let untimed = ablate(dir.path(), &["components", "--profile", "tiny"]);
    let other = tempfile::tempdir().unwrap();
    let shared = ablate(other.path(), &["main_results", "--profile", "tiny"]);
    for child in &mut busy {
        child.kill().ok();
        child.wait().ok();
    }
    let stderr = String::from_utf8_lossy(&timed.stderr);
    assert!(timed.status.success(), "{stderr}");
    assert!(
        stderr.contains("other processes used") && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(dir.path().join("tiny/runtime.csv").exists());
    let stderr = String::from_utf8_lossy(&shared.stderr);
    assert!(
        shared.status.success() && stderr.contains("while main_results trained"),
        "{stderr}"
    );
    let stderr = String::from_utf8_lossy(&untimed.stderr);
    assert!(
        untimed.status.success() && !stderr.contains("other processes used"),
        "{stderr}"
    );
}
