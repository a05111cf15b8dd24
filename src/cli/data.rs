//! `gmmseg data export|stats|preview`: look at, count and export any dataset the library
//! can open (`synthscapes`, `digitscenes`, `folder:PATH`, `cityscapes:PATH`, `ade20k:PATH`).

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::data::folder::FolderWriter;
use crate::data::preview::{preview_grid, PreviewConfig};
use crate::data::stats::class_stats;
use crate::data::{open_dataset, DatasetOptions};
use crate::error::{GmmSegError, Result};
use crate::io::atomic::StagedDir;

/// `gmmseg data …` subcommands.
#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write one split in the folder format (DIR/images, DIR/labels, DIR/anomaly on anomaly
    /// splits, DIR/classes.txt).
    Export(ExportArgs),
    /// Print the class frequencies of a split.
    Stats(StatsArgs),
    /// Draw a grid of images with label overlays and anomaly masks into a PNG.
    Preview(PreviewArgs),
}

/// Which dataset and split.
#[derive(Debug, Args)]
pub struct DatasetArgs {
    /// synthscapes, digitscenes, folder:PATH, cityscapes:PATH or ade20k:PATH.
    #[arg(long)]
    pub dataset: String,
    /// Split name (synthscapes: train, val, anomaly, anomaly-context; digitscenes: train,
    /// test, anomaly; folders: a sub-folder name).
    #[arg(long)]
    pub split: String,
}

/// Arguments of `gmmseg data export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Which dataset and split.
    #[command(flatten)]
    pub ds: DatasetArgs,
    /// Number of samples to write (the first N of the split).
    #[arg(long)]
    pub count: usize,
    /// Output folder. It is written under a temporary name and moved into place only when
    /// every sample was written.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace a non-empty output folder (its contents are removed, never merged).
    #[arg(long)]
    pub force: bool,
}

/// Arguments of `gmmseg data stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Which dataset and split.
    #[command(flatten)]
    pub ds: DatasetArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `gmmseg data preview`.
#[derive(Debug, Args)]
pub struct PreviewArgs {
    /// Which dataset and split.
    #[command(flatten)]
    pub ds: DatasetArgs,
    /// Number of samples shown.
    #[arg(long, default_value_t = 8)]
    pub count: usize,
    /// Output PNG.
    #[arg(long)]
    pub out: PathBuf,
}

/// Runs a `gmmseg data` subcommand.
pub fn run(cmd: DataCommand) -> Result<()> {
    match cmd {
        DataCommand::Export(a) => export(a),
        DataCommand::Stats(a) => stats(a),
        DataCommand::Preview(a) => preview(a),
    }
}

fn open(a: &DatasetArgs) -> Result<Box<dyn crate::data::Dataset>> {
    open_dataset(&a.dataset, &a.split, &DatasetOptions::default())
}

fn export(a: ExportArgs) -> Result<()> {
    let ds = open(&a.ds)?;
    let n = a.count.min(ds.len());
    if n == 0 {
        return Err(GmmSegError::input(
            "count",
            "nothing to export (count or split is 0)",
        ));
    }
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| GmmSegError::io(parent, e))?;
    }
    let staged = StagedDir::new(&a.out, a.force, "--force")?;
    let first = ds.get(0)?;
    let writer = FolderWriter::create(staged.path(), &ds.class_names(), first.anomaly.is_some())?;
    let width = n.to_string().len().max(5);
    for i in 0..n {
        writer.write(&format!("{i:0width$}"), &ds.get(i)?)?;
    }
    staged.commit()?;
    println!("wrote {n} samples of {} to {}", ds.name(), a.out.display());
    Ok(())
}

fn stats(a: StatsArgs) -> Result<()> {
    let ds = open(&a.ds)?;
    let st = class_stats(ds.as_ref(), None)?;
    if a.json {
        let mut v = serde_json::to_value(&st)
            .map_err(|e| GmmSegError::input("stats", format!("cannot serialise: {e}")))?;
        v["frequencies"] = serde_json::json!(st.frequencies());
        println!("{v}");
        return Ok(());
    }
    println!("{}: {} images", st.dataset, st.images);
    println!(
        "{:>4}  {:<16} {:>12} {:>9} {:>8}",
        "id", "class", "pixels", "freq", "images"
    );
    for (k, f) in st.frequencies().iter().enumerate() {
        println!(
            "{k:>4}  {:<16} {:>12} {:>8.2}% {:>8}",
            st.class_names[k],
            st.counts[k],
            100.0 * f,
            st.images_with_class[k]
        );
    }
    println!(
        "ignored pixels: {}, anomalous pixels: {}",
        st.ignored, st.anomalous
    );
    Ok(())
}

fn preview(a: PreviewArgs) -> Result<()> {
    let ds = open(&a.ds)?;
    let cfg = PreviewConfig {
        count: a.count,
        ..PreviewConfig::default()
    };
    let grid = preview_grid(ds.as_ref(), &cfg)?;
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| GmmSegError::io(parent, e))?;
    }
    crate::io::atomic::write_atomically(&a.out, |w| {
        grid.write_to(w, image::ImageFormat::Png)
            .map_err(|e| GmmSegError::file(&a.out, format!("cannot write PNG: {e}")))
    })?;
    println!("wrote {}", a.out.display());
    Ok(())
}
