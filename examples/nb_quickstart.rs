//! The cells of `notebooks/00-quickstart`: train both heads with the studies' recipe,
//! evaluate them, look at predictions and at the fitted mixtures, then read the claims the
//! library decides over the cached seeds. `scripts/make_notebooks.py` copies each region
//! between `// cell: NAME` and `// end cell` into the notebook (`show(EXPR);` becomes `EXPR`,
//! the value evcxr displays).
//!
//! Run: `GMMSEG_PROFILE=tiny GMMSEG_TRAIN_STEPS=2 cargo run --example nb_quickstart`.

type CellResult = Result<(), Box<dyn std::error::Error>>;

/// What evcxr does with a cell's final expression (here: nothing).
fn show<T>(_value: T) {}

fn main() -> CellResult {
    // evcxr keeps a `Box<dyn Dataset>` variable from one cell to the next only with `Dataset`
    // in scope; the type annotations keep that import used.
    // cell: setup
    use gmmseg::data::{open_dataset, Dataset, DatasetOptions};
    use gmmseg::experiments::{report::NotebookSettings, Study};
    use gmmseg::train::config::HeadKind;
    use gmmseg::train::trainer::{print_every, Trainer};
    // from GMMSEG_PROFILE, GMMSEG_DATASETS, GMMSEG_RERUN and GMMSEG_TRAIN_STEPS
    let settings = NotebookSettings::from_env()?;
    let opts = DatasetOptions::default();
    let train: Box<dyn Dataset> =
        open_dataset("synthscapes", "train", &opts).expect("SynthScapes train");
    let val: Box<dyn Dataset> = open_dataset("synthscapes", "val", &opts).expect("SynthScapes val");
    let anomaly: Box<dyn Dataset> =
        open_dataset("synthscapes", "anomaly", &opts).expect("SynthScapes anomaly");
    println!(
        "profile {}: {} train / {} val / {} anomaly images, {} classes",
        settings.profile,
        train.len(),
        val.len(),
        anomaly.len(),
        train.num_classes()
    );
    // end cell

    // cell: tuning
    show(settings.tuning()?);
    // end cell

    // cell: train
    let mut models = Vec::new();
    for head in [HeadKind::Softmax, HeadKind::Gmmseg] {
        let cfg = settings.train_config("synthscapes", head).expect("profile");
        println!("training {head} ({} steps)", cfg.steps);
        let mut t =
            Trainer::new(cfg.check().expect("valid config"), train.num_classes()).expect("trainer");
        t.fit(train.as_ref(), None, &mut print_every(100))
            .expect("training");
        models.push((head, t));
    }
    // end cell

    // cell: evaluate
    for (head, t) in models.iter_mut() {
        let v = t.evaluate(val.as_ref(), 0).expect("evaluation");
        let a = t.evaluate(anomaly.as_ref(), 0).expect("evaluation");
        println!(
            "{head:<8} mIoU {:.3}  acc {:.3}  ECE {:.3}  NLL {:.3}",
            v.miou, v.acc, v.ece, v.nll
        );
        for (score, m) in a.anomaly.clone().unwrap_or_default() {
            println!(
                "    {score:<11} AUROC {:.3}  AP {:.3}  FPR95 {:.3}",
                m.auroc, m.ap, m.fpr95
            );
        }
    }
    // end cell

    // cell: predictions
    {
        use gmmseg::plot::images::sample_grid;
        use gmmseg::train::eval::predict;
        let names = anomaly.class_names();
        let preds =
            predict(&mut models[1].1.model, anomaly.as_ref(), &[0, 1, 2]).expect("predictions");
        let rows: Vec<_> = preds.iter().map(|p| p.grid_row("likelihood")).collect();
        gmmseg::plot::inline_png((900, 760), |area| sample_grid(area, &rows, &names))
            .expect("figure")
            .evcxr_display();
    }
    // end cell

    // cell: mixtures
    gmmseg::experiments::report::mixture_figure(&mut models[1].1.model, val.as_ref(), &[0, 2, 5])
        .expect("figure")
        .evcxr_display();
    // end cell

    // cell: main-results
    show(settings.run(Study::MainResults)?);
    // end cell

    // cell: anomaly
    show(settings.run(Study::Anomaly)?);
    // end cell
    Ok(())
}
