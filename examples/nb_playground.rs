//! The cells of `notebooks/11-playground`: one edited configuration (the "idea") trained
//! over the profile's seeds and compared, by the paired rule, with the studies' cached
//! GMMSeg models. The settings cell comes from `nb_study.rs`. `scripts/make_notebooks.py`
//! copies each region between `// cell: NAME` and `// end cell` (`show(EXPR);` becomes
//! `EXPR`, the value evcxr displays).
//!
//! Run: `GMMSEG_PROFILE=tiny GMMSEG_TRAIN_STEPS=2 cargo run --example nb_playground`.

type CellResult = Result<(), Box<dyn std::error::Error>>;

/// What evcxr does with a cell's final expression (here: nothing).
fn show<T>(_value: T) {}

fn main() -> CellResult {
    // the notebook's settings cell (nb_study.rs)
    let settings = gmmseg::experiments::report::NotebookSettings::from_env()?;

    // cell: idea
    let mut idea = settings
        .idea("M = 3 components per class")
        .expect("an idea");
    // the head's whole configuration is in the tree: every value of the mixture
    if let Some(gmm) = idea.config.head.gmm_mut() {
        gmm.online.gmm.components = 3;
        // gmm.online.gmm.e_step = gmmseg::gmm::EStep::Vanilla; // plain EM E-step
        // gmm.set_momentum(0.999); // the code's momentum
        // gmm.online.gmm.var_reg = 0.5; // a lower variance floor
    }
    // idea.config.optim.lr *= 2.0; // a faster learning rate
    // idea.config.net.decoder.kind = gmmseg::nn::decoder::DecoderKind::Deeplab;
    // idea.config.dataset = "folder:/path/to/your/data".into(); // your data (baseline trained too)
    // idea.baseline = gmmseg::train::config::HeadKind::Softmax; // compare with softmax instead
    for (field, baseline, mine) in idea.changes(&settings).expect("changes") {
        println!("{field}: {baseline} -> {mine}");
    }
    // end cell

    // cell: try
    show(settings.try_idea(&idea)?);
    // end cell

    // cell: frame
    let comparison = settings.try_idea(&idea)?;
    println!("{}", comparison.frame()?);
    // end cell
    Ok(())
}
