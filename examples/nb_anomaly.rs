//! The pixel-level cells of `notebooks/06-anomaly-segmentation` (after the study's own
//! cells, which come from `nb_study.rs`): train one softmax and one GMMSeg model, draw the
//! ROC and precision–recall curves of every anomaly score, and the heat maps.
//! `scripts/make_notebooks.py` copies each region between `// cell: NAME` and `// end cell`
//! (`show(EXPR);` becomes `EXPR`, the value evcxr displays).
//!
//! Run: `GMMSEG_PROFILE=tiny GMMSEG_TRAIN_STEPS=2 cargo run --example nb_anomaly`.

type CellResult = Result<(), Box<dyn std::error::Error>>;

/// What evcxr does with a cell's final expression (here: nothing).
fn show<T>(_value: T) {}

fn main() -> CellResult {
    // the notebook's settings cell (nb_study.rs)
    let settings = gmmseg::experiments::report::NotebookSettings::from_env()?;

    // evcxr keeps a `Box<dyn Dataset>` variable from one cell to the next only with `Dataset`
    // in scope; the type annotations keep that import used.
    // cell: train
    use gmmseg::data::{open_dataset, Dataset, DatasetOptions};
    use gmmseg::train::config::HeadKind;
    use gmmseg::train::posthoc::{prepare_for_eval, PosthocConfig};
    use gmmseg::train::trainer::{print_every, Trainer};
    let opts = DatasetOptions::default();
    let train: Box<dyn Dataset> = open_dataset("synthscapes", "train", &opts).expect("train split");
    let anomaly: Box<dyn Dataset> =
        open_dataset("synthscapes", "anomaly", &opts).expect("anomaly split");
    let mut models = Vec::new();
    for head in [HeadKind::Softmax, HeadKind::Gmmseg] {
        // the studies' seed-0 configuration (GMMSEG_TRAIN_STEPS shortens it)
        let cfg = settings.train_config("synthscapes", head).expect("profile");
        println!("training {head} ({} steps)", cfg.steps);
        let mut t =
            Trainer::new(cfg.check().expect("config"), train.num_classes()).expect("trainer");
        t.fit(train.as_ref(), None, &mut print_every(100))
            .expect("training");
        if head == HeadKind::Softmax {
            let pc = PosthocConfig::new(train.num_classes(), t.model.head.feature_dim());
            prepare_for_eval(&mut t.model, train.as_ref(), &pc, false, true)
                .expect("Mahalanobis fit");
        }
        models.push((head, t));
    }
    // end cell

    // cell: curves
    {
        use gmmseg::plot::curves::{roc_pr_curves, ScoredMethod};
        use gmmseg::train::eval::anomaly_curves;
        let wanted = [
            (0, "msp", "softmax MSP"),
            (0, "maxlogit", "softmax max-logit"),
            (0, "mahalanobis", "softmax Mahalanobis"),
            (1, "likelihood", "GMMSeg likelihood"),
        ];
        let per_model: Vec<_> = models
            .iter_mut()
            .map(|(_, t)| anomaly_curves(&mut t.model, anomaly.as_ref(), 64, 400).expect("curves"))
            .collect();
        let methods: Vec<ScoredMethod> = wanted
            .iter()
            .filter_map(|(m, score, name)| {
                per_model[*m]
                    .get(*score)
                    .map(|(metrics, curves)| ScoredMethod {
                        name,
                        metrics,
                        curves,
                    })
            })
            .collect();
        gmmseg::plot::inline((1000, 430), |area| roc_pr_curves(area, &methods))
            .expect("figure")
            .evcxr_display();
    }
    // end cell

    // cell: heat-maps
    show({
        use gmmseg::experiments::report::Html;
        use gmmseg::plot::images::sample_grid;
        use gmmseg::train::eval::predict;
        let names = anomaly.class_names();
        let mut page = Html::default();
        for ((head, t), score) in models.iter_mut().zip(["msp", "likelihood"]) {
            let preds = predict(&mut t.model, anomaly.as_ref(), &[0, 1, 2]).expect("predictions");
            let rows: Vec<_> = preds.iter().map(|p| p.grid_row(score)).collect();
            page.heading(&format!("{head}: anomaly score = {score}"));
            page.push(
                &gmmseg::plot::inline_png((900, 760), |area| sample_grid(area, &rows, &names))
                    .expect("figure")
                    .html(),
            );
        }
        page
    });
    // end cell
    Ok(())
}
