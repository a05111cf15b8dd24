//! The cells every ablation notebook (`notebooks/01`–`08`) shares, as a program that
//! compiles, is linted and runs: `scripts/make_notebooks.py` copies each region between
//! `// cell: NAME` and `// end cell` into the notebooks, with this study (`MainResults`)
//! and metric list replaced by each notebook's own. A cell written `show(EXPR);` becomes
//! `EXPR`, the final expression evcxr displays.
//!
//! Run: `GMMSEG_PROFILE=tiny cargo run --example nb_study` (trains the tiny study into
//! `GMMSEG_RESULTS_DIR`, or reads the cache).

// The settings cell binds `let mut settings` so that a notebook user can uncomment
// `settings.rerun = true`.
#![allow(unused_mut)]

type CellResult = Result<(), Box<dyn std::error::Error>>;

/// What evcxr does with a cell's final expression (here: nothing).
fn show<T>(_value: T) {}

fn main() -> CellResult {
    // `?` in this cell matters: evcxr turns `?` on at its first use, and if that first use is
    // in a cell's final expression it also gives up on the value's `evcxr_display` and prints
    // its Debug text instead (evcxr 0.22, `attempt_to_fix_error`); scripts/check_nb.py fails
    // on such a Debug dump. So the first `?` of a notebook is this cell's `from_env()?`.
    // cell: settings
    use gmmseg::experiments::{report::NotebookSettings, Study};
    // from GMMSEG_PROFILE, GMMSEG_DATASETS, GMMSEG_RERUN and GMMSEG_TRAIN_STEPS
    let mut settings = NotebookSettings::from_env()?;
    // settings.rerun = true; // retrain every model of the study
    // settings.datasets = vec!["synthscapes".into()]; // or folder:/path/to/your/data
    println!(
        "profile {}, datasets {:?}, rerun {}",
        settings.profile, settings.datasets, settings.rerun
    );
    // end cell

    // cell: study
    show(settings.run(Study::MainResults)?);
    // end cell

    // cell: tables
    let results = settings.run(Study::MainResults)?;
    show(gmmseg::experiments::report::tables(&results, &["miou"])?);
    // end cell

    // cell: rows
    println!(
        "{}",
        results[0]
            .runs
            .select(["variant", "group", "param", "seed", "metric", "value"])?
            .head(Some(8))
    );
    // end cell
    Ok(())
}
