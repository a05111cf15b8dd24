//! The factor-by-factor cell of `notebooks/10-segmentation-gap` (the study's own cells come
//! from `nb_study.rs`): the `gap` study's paired differences, one table per dataset.
//! `scripts/make_notebooks.py` copies the region between `// cell: NAME` and `// end cell`;
//! a cell written `show(EXPR);` becomes `EXPR`, the final expression evcxr displays.
//!
//! Run: `GMMSEG_PROFILE=tiny cargo run --example nb_gap`.

type CellResult = Result<(), Box<dyn std::error::Error>>;

/// What evcxr does with a cell's final expression (here: nothing).
fn show<T>(_value: T) {}

fn main() -> CellResult {
    use gmmseg::experiments::{report::NotebookSettings, Study};
    let settings = NotebookSettings::from_env()?;
    // cell: factors
    let results = settings.run(Study::Gap)?;
    show(gmmseg::experiments::report::gap_tables(&results)?);
    // end cell
    Ok(())
}
