//! The cells of `notebooks/09-your-data`: a folder dataset (written from the built-in data,
//! so that it runs anywhere), a GMMSeg model trained on it, and per-pixel features exported
//! to NumPy, fitted and scored as `gmmseg fit-gmm` / `gmmseg score` do.
//! `scripts/make_notebooks.py` copies each region between `// cell: NAME` and `// end cell`.
//!
//! Run: `GMMSEG_PROFILE=tiny GMMSEG_TRAIN_STEPS=2 cargo run --example nb_your_data`.

type CellResult = Result<(), Box<dyn std::error::Error>>;

fn main() -> CellResult {
    // evcxr keeps a `Box<dyn Dataset>` variable from one cell to the next only with `Dataset`
    // in scope; the type annotations keep that import used.
    // cell: write-folder
    use gmmseg::data::folder::FolderWriter;
    use gmmseg::data::{open_dataset, Dataset, DatasetOptions};
    let root = std::env::temp_dir().join(format!("gmmseg-your-data-{}", std::process::id()));
    {
        let opts = DatasetOptions::default();
        for (split, n) in [("train", 240), ("val", 48)] {
            let src = open_dataset("synthscapes", split, &opts).expect("built-in data");
            let w =
                FolderWriter::create(root.join(split), &src.class_names(), false).expect("folder");
            for i in 0..n {
                w.write(&format!("{i:04}"), &src.get(i).expect("sample"))
                    .expect("write");
            }
        }
        std::fs::copy(root.join("train/classes.txt"), root.join("classes.txt"))
            .expect("classes.txt");
        println!("wrote {}", root.display());
    }
    // end cell

    // cell: open-folder
    let spec = format!("folder:{}", root.display());
    let train: Box<dyn Dataset> =
        open_dataset(&spec, "train", &DatasetOptions::default()).expect("folder train");
    let val: Box<dyn Dataset> =
        open_dataset(&spec, "val", &DatasetOptions::default()).expect("folder val");
    println!(
        "{} train / {} val images, classes {:?}",
        train.len(),
        val.len(),
        train.class_names()
    );
    {
        use gmmseg::plot::images::{segmentation_overlay, OverlayOptions};
        let names = train.class_names();
        let samples: Vec<_> = (0..3).map(|i| train.get(i).expect("sample")).collect();
        gmmseg::plot::inline_png((1050, 330), |area| {
            for (i, (panel, s)) in area.split_evenly((1, 3)).iter().zip(&samples).enumerate() {
                let o = OverlayOptions {
                    title: format!("train image {i}: labels"),
                    ..Default::default()
                };
                segmentation_overlay(panel, &s.image, &s.label, &names, &o)?;
            }
            Ok(())
        })
        .expect("figure")
        .evcxr_display();
    }
    // end cell

    // cell: train
    use gmmseg::experiments::report::NotebookSettings;
    use gmmseg::train::config::HeadKind;
    use gmmseg::train::trainer::{print_every, Trainer};
    // from GMMSEG_PROFILE, GMMSEG_DATASETS, GMMSEG_RERUN and GMMSEG_TRAIN_STEPS
    let settings = NotebookSettings::from_env()?;
    // the profile's training recipe, as the studies train (GMMSEG_TRAIN_STEPS shortens it)
    let cfg = settings
        .train_config(&spec, HeadKind::Gmmseg)
        .expect("profile");
    println!("training GMMSeg on {spec} ({} steps)", cfg.steps);
    let mut gmmseg_model =
        Trainer::new(cfg.check().expect("config"), train.num_classes()).expect("trainer");
    gmmseg_model
        .fit(train.as_ref(), None, &mut print_every(100))
        .expect("training");
    {
        let r = gmmseg_model.evaluate(val.as_ref(), 0).expect("evaluation");
        println!(
            "validation mIoU {:.3}, pixel accuracy {:.3}, ECE {:.3}",
            r.miou, r.acc, r.ece
        );
    }
    // end cell

    // cell: mixtures
    gmmseg::experiments::report::mixture_figure(&mut gmmseg_model.model, val.as_ref(), &[0, 1, 3])
        .expect("figure")
        .evcxr_display();
    // end cell

    // cell: export-features
    {
        use gmmseg::io::npy::write_npy;
        use gmmseg::train::posthoc::{collect_features, PosthocConfig};
        let mut pc = PosthocConfig::new(train.num_classes(), gmmseg_model.model.head.feature_dim());
        pc.max_images = 64;
        pc.max_pixels_per_class = 2000;
        for (name, ds) in [("train", train.as_ref()), ("val", val.as_ref())] {
            let f = collect_features(&mut gmmseg_model.model, ds, &pc).expect("features");
            write_npy(&root.join(format!("{name}_features.npy")), &f.features).expect("npy");
            let labels = gmmseg::ndarray::Array1::from(
                f.labels.iter().map(|&l| l as i64).collect::<Vec<_>>(),
            );
            write_npy(&root.join(format!("{name}_labels.npy")), &labels).expect("npy");
            println!(
                "{name}: {} feature rows of dimension {}",
                f.labels.len(),
                f.features.ncols()
            );
        }
    }
    // end cell

    // cell: fit-and-score
    {
        use gmmseg::gmm::{fit, score_features, ClassIndex, FitOptions, GmmConfig, Reduction};
        use gmmseg::io::npy::{read_labels, read_matrix};
        use gmmseg::metrics::segmentation::segmentation_metrics;
        let x = read_matrix(&root.join("train_features.npy")).expect("features");
        let y = read_labels(&root.join("train_labels.npy")).expect("labels");
        let classes = train.num_classes();
        let index =
            ClassIndex::new(y.iter().copied(), classes, "train_labels.npy").expect("labels");
        let cfg = GmmConfig {
            dim: x.ncols(),
            ..GmmConfig::paper(classes)
        }
        .check()
        .expect("GMM config");
        let opts = FitOptions {
            iterations: 20,
            seed: 0,
            init: None,
        };
        let (params, report) = fit(x.view(), &index, &cfg, &opts).expect("EM");
        let ll = &report.mean_log_likelihood;
        println!(
            "Sinkhorn EM: mean log p(x|y) {:.2} -> {:.2} over {} iterations",
            ll[0],
            ll[ll.len() - 1],
            ll.len()
        );
        let xv = read_matrix(&root.join("val_features.npy")).expect("features");
        let yv = read_labels(&root.join("val_labels.npy")).expect("labels");
        let s =
            score_features(&params, xv.view(), Reduction::Max, "val_features.npy").expect("scores");
        let m = segmentation_metrics(&s.predicted, yv.as_slice().expect("labels"), classes)
            .expect("metrics");
        println!(
            "held-out pixels classified by the fitted GMM: {:.3} accuracy, mIoU {:.3} ({} pixels)",
            m.acc, m.miou, m.pixels
        );
    }
    // end cell

    // cell: clean-up
    std::fs::remove_dir_all(&root).expect("remove temporary folder");
    // end cell
    Ok(())
}
