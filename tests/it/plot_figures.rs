//! Renders every figure to SVG and PNG (into a temporary folder; copies of the PNGs go to
//! `$TMPDIR/plots-review/` for a human to look at) and checks that each file is a real,
//! non-blank picture of the requested size. Also checks that bad input is an error.

use std::path::{Path, PathBuf};

use gmmseg::metrics::{
    summarize, AnomalyAccumulator, CalibrationAccumulator, CalibrationConfig, Summary,
};
use gmmseg::plot::ablation::{grouped_bars, metric_vs_parameter, ChartLabels, CiSeries};
use gmmseg::plot::curves::{roc_pr_curves, ScoredMethod};
use gmmseg::plot::gmm_view::{gmm_pca_view, pca_2d, GmmViewData, GmmViewOptions};
use gmmseg::plot::images::{
    anomaly_heatmap, sample_grid, segmentation_overlay, GridRow, HeatmapOptions, OverlayOptions,
};
use gmmseg::plot::reliability::{reliability_diagram, ReliabilityOptions};
use gmmseg::plot::{save_svg_and_png, to_svg_string, AnyBackend};
use gmmseg::{GmmSegError, Result};
use ndarray::{Array2, Array3};
use plotters::coord::Shift;
use plotters::prelude::DrawingArea;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

fn review_dir() -> PathBuf {
    std::env::temp_dir().join("plots-review")
}

/// Draws a figure into `<tmp>/<name>.{svg,png}`, checks both, keeps a PNG copy for review.
fn render<F>(name: &str, size: (u32, u32), draw: F)
where
    F: Fn(&DrawingArea<AnyBackend<'_>, Shift>) -> Result<()>,
{
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join(name);
    save_svg_and_png(&stem, size, draw).unwrap();
    let png = stem.with_extension("png");
    let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("</svg>"),
        "{name}: not an SVG"
    );
    assert!(svg.contains("<text"), "{name}: SVG has no text");
    let img = image::open(&png).unwrap().to_rgb8();
    assert_eq!(img.dimensions(), size, "{name}: PNG size");
    let non_white = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    let total = (size.0 * size.1) as usize;
    assert!(
        non_white > total / 50,
        "{name}: only {non_white} of {total} pixels are drawn"
    );
    let review = review_dir();
    std::fs::create_dir_all(&review).unwrap();
    std::fs::copy(&png, review.join(format!("{name}.png"))).unwrap();
}

fn calibration_model(overconfidence: f64, seed: u64) -> gmmseg::metrics::CalibrationMetrics {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (n, c) = (20_000, 5);
    let mut probs = Array2::<f32>::zeros((n, c));
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        // Mostly confident pixels, as in segmentation.
        let conf: f64 = 1.0 - 0.75 * rng.gen::<f64>().powi(3);
        let p_correct = (conf - overconfidence * (1.0 - conf) * 1.6).clamp(0.0, 1.0);
        let rest = (1.0 - conf) / (c - 1) as f64;
        probs[[i, 0]] = conf as f32;
        for k in 1..c {
            probs[[i, k]] = rest as f32;
        }
        labels.push(if rng.gen::<f64>() < p_correct {
            0u8
        } else {
            1 + (i % 4) as u8
        });
    }
    let mut acc = CalibrationAccumulator::new(CalibrationConfig::default().check().unwrap());
    acc.update(probs.view(), &labels).unwrap();
    acc.finish().unwrap()
}

#[test]
fn reliability_diagram_two_models() {
    let softmax = calibration_model(1.0, 1);
    let gmm = calibration_model(0.1, 2);
    assert!(softmax.ece > gmm.ece);
    let models = [("Softmax", &softmax), ("GMMSeg", &gmm)];
    render("reliability", (1000, 520), |area| {
        reliability_diagram(area, &models, &ReliabilityOptions::default())
    });
    let svg = to_svg_string((900, 450), |area| {
        reliability_diagram(area, &models, &ReliabilityOptions::default())
    })
    .unwrap();
    assert!(svg.contains("ECE"), "ECE in the title");
    let cell = gmmseg::plot::inline((900, 450), |area| {
        reliability_diagram(area, &models, &ReliabilityOptions::default())
    })
    .unwrap();
    assert_eq!(cell.0, svg, "inline figures are the same SVG");
    let none: [(&str, &gmmseg::metrics::CalibrationMetrics); 0] = [];
    let err = to_svg_string((900, 450), |area| {
        reliability_diagram(area, &none, &ReliabilityOptions::default())
    });
    assert!(matches!(err, Err(GmmSegError::Empty { .. })));
}

#[test]
fn roc_and_pr_curves() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let noise = Normal::new(0.0, 1.0).unwrap();
    let n = 30_000;
    let labels: Vec<u8> = (0..n).map(|i| if i % 25 == 0 { 1 } else { 0 }).collect();
    let mut results = Vec::new();
    for (name, sep) in [("GMMSeg", 2.6f32), ("Mahalanobis", 1.6), ("MSP", 0.9)] {
        let scores: Vec<f32> = labels
            .iter()
            .map(|&l| l as f32 * sep + noise.sample(&mut rng) as f32)
            .collect();
        let mut acc = AnomalyAccumulator::new();
        acc.update(&scores, &labels).unwrap();
        let (m, c) = acc.finish_with_curves(400).unwrap();
        results.push((name, m, c));
    }
    assert!(results[0].1.auroc > results[2].1.auroc);
    let methods: Vec<ScoredMethod> = results
        .iter()
        .map(|(name, m, c)| ScoredMethod {
            name,
            metrics: m,
            curves: c,
        })
        .collect();
    render("roc_pr", (1100, 500), |area| roc_pr_curves(area, &methods));
}

/// A small street-like scene: sky, buildings, road, a car, and an "anomaly" box.
fn scene(h: usize, w: usize) -> (Array3<f32>, Array2<u8>, Array2<u8>, Array2<f32>) {
    let mut img = Array3::<f32>::zeros((3, h, w));
    let mut label = Array2::<u8>::zeros((h, w));
    let mut anomaly = Array2::<f32>::zeros((h, w));
    for y in 0..h {
        for x in 0..w {
            let (fy, fx) = (y as f32 / h as f32, x as f32 / w as f32);
            let (cls, rgb) = if fy < 0.3 {
                (10u8, [0.45 + 0.3 * fy, 0.65, 0.95])
            } else if fy < 0.55 && ((fx * 7.0) as usize).is_multiple_of(2) {
                (2, [0.5, 0.45, 0.42])
            } else if fy < 0.55 {
                (8, [0.2, 0.55, 0.2])
            } else {
                (0, [0.35, 0.33, 0.36])
            };
            let in_car = (0.62..0.8).contains(&fy) && (0.15..0.4).contains(&fx);
            let in_obj = (0.65..0.85).contains(&fy) && (0.6..0.75).contains(&fx);
            let (cls, rgb) = if in_car {
                (13, [0.1, 0.1, 0.55])
            } else if in_obj {
                (255, [0.9, 0.7, 0.1])
            } else {
                (cls, rgb)
            };
            for k in 0..3 {
                img[[k, y, x]] = rgb[k] + 0.04 * ((x * 7 + y * 13) % 5) as f32 / 5.0;
            }
            label[[y, x]] = cls;
            let d = ((fy - 0.75).powi(2) + (fx - 0.67).powi(2)).sqrt();
            anomaly[[y, x]] = (-d * d / 0.01).exp() * 5.0 + 0.3 * fx;
        }
    }
    // A prediction with mistakes: the car's bottom is predicted as road, the object as car.
    let mut pred = label.clone();
    for y in 0..h {
        for x in 0..w {
            let (fy, fx) = (y as f32 / h as f32, x as f32 / w as f32);
            if pred[[y, x]] == 255 {
                pred[[y, x]] = 13;
            }
            if (0.74..0.8).contains(&fy) && (0.15..0.4).contains(&fx) {
                pred[[y, x]] = 0;
            }
        }
    }
    (img, label, pred, anomaly)
}

fn cityscapes_names() -> Vec<String> {
    [
        "road",
        "sidewalk",
        "building",
        "wall",
        "fence",
        "pole",
        "traffic light",
        "traffic sign",
        "vegetation",
        "terrain",
        "sky",
        "person",
        "rider",
        "car",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[test]
fn anomaly_heatmap_and_overlay() {
    let (img, label, pred, mut anomaly) = scene(96, 128);
    anomaly[[0, 0]] = f32::NAN; // unscored pixel: drawn as the image
    render("anomaly_heatmap", (640, 440), |area| {
        anomaly_heatmap(area, &img, &anomaly, &HeatmapOptions::default())
    });
    render("segmentation_overlay", (700, 440), |area| {
        segmentation_overlay(
            area,
            &img,
            &pred,
            &cityscapes_names(),
            &OverlayOptions::default(),
        )
    });
    // Shape mismatch and bad options are errors.
    let small = Array2::<u8>::zeros((10, 10));
    let err = to_svg_string((300, 300), |a| {
        segmentation_overlay(a, &img, &small, &[], &OverlayOptions::default())
    });
    assert!(matches!(err, Err(GmmSegError::Shape { .. })));
    let all_nan = Array2::<f32>::from_elem((96, 128), f32::NAN);
    let err = to_svg_string((300, 300), |a| {
        anomaly_heatmap(a, &img, &all_nan, &HeatmapOptions::default())
    });
    assert!(matches!(err, Err(GmmSegError::Empty { .. })));
    let bad = HeatmapOptions {
        alpha: 2.0,
        ..HeatmapOptions::default()
    };
    assert!(to_svg_string((300, 300), |a| anomaly_heatmap(a, &img, &anomaly, &bad)).is_err());
    let _ = label;
}

#[test]
fn image_label_prediction_anomaly_grid() {
    let (img, label, pred, anomaly) = scene(72, 96);
    let (img2, label2, _, anomaly2) = scene(72, 96);
    let pred2 = label2.mapv(|v| {
        if v == 8 {
            9
        } else if v == 255 {
            13
        } else {
            v
        }
    });
    let rows = [
        GridRow {
            image: &img,
            label: &label,
            prediction: &pred,
            anomaly: Some(&anomaly),
        },
        GridRow {
            image: &img2,
            label: &label2,
            prediction: &pred2,
            anomaly: Some(&anomaly2),
        },
    ];
    render("sample_grid", (900, 560), |area| {
        sample_grid(area, &rows, &cityscapes_names())
    });
    assert!(matches!(
        to_svg_string((300, 300), |a| sample_grid(a, &[], &[])),
        Err(GmmSegError::Empty { .. })
    ));
    // as an inline PNG (what notebooks embed for images): a real PNG, far smaller than the
    // SVG with a rectangle per pixel
    let png = gmmseg::plot::inline_png((900, 560), |a| sample_grid(a, &rows, &cityscapes_names()))
        .unwrap();
    assert_eq!(&png.png[..8], b"\x89PNG\r\n\x1a\n");
    let svg = to_svg_string((900, 560), |a| sample_grid(a, &rows, &cityscapes_names())).unwrap();
    assert!(
        png.png.len() * 3 < svg.len(),
        "PNG {} bytes vs SVG {} bytes",
        png.png.len(),
        svg.len()
    );
    assert!(png.html().starts_with("<img src=\"data:image/png;base64,"));
}

fn seeds(values: &[f64]) -> Summary {
    summarize(values).unwrap()
}

#[test]
fn ablation_charts() {
    let ms = [1.0, 3.0, 5.0, 10.0, 15.0];
    let paper = [44.2, 45.3, 46.0, 46.0, 45.7];
    let series = vec![
        CiSeries {
            name: "Sinkhorn EM".into(),
            points: ms
                .iter()
                .zip(paper)
                .map(|(&m, v)| (m, seeds(&[v - 0.4, v + 0.1, v + 0.3])))
                .collect(),
        },
        CiSeries {
            name: "Vanilla EM".into(),
            points: ms
                .iter()
                .zip(paper)
                .map(|(&m, v)| (m, seeds(&[v - 2.1, v - 1.4, v - 1.9])))
                .collect(),
        },
    ];
    let labels = ChartLabels {
        y_bounds: None,
        title: "mIoU vs components per class".into(),
        x: "Components per class M".into(),
        y: "mIoU (%)".into(),
    };
    render("ablation_line", (760, 480), |area| {
        metric_vs_parameter(area, &series, &labels)
    });

    let cats = ["1 loop", "5 loops", "10 loops"];
    let bars = vec![
        (
            "Vanilla EM",
            vec![
                Some(seeds(&[42.5, 42.9, 42.7])),
                Some(seeds(&[43.9, 44.2])),
                Some(seeds(&[44.6, 45.0, 44.8])),
            ],
        ),
        (
            "Sinkhorn EM",
            vec![
                Some(seeds(&[45.8, 46.1, 46.1])),
                Some(seeds(&[46.0, 46.2, 45.8])),
                None,
            ],
        ),
    ];
    let labels = ChartLabels {
        y_bounds: None,
        title: "EM variants".into(),
        x: "EM loops per iteration".into(),
        y: "mIoU (%)".into(),
    };
    render("ablation_bars", (760, 480), |area| {
        grouped_bars(area, &cats, &bars, &labels)
    });
    // two seeds give intervals far past [0, 1]; with bounds the axis stays near [0, 1]
    let wide = vec![
        (
            "a",
            vec![Some(seeds(&[0.2, 0.9])), Some(seeds(&[0.5, 0.55]))],
        ),
        ("b", vec![Some(seeds(&[0.6, 0.7])), None]),
    ];
    let bounded = ChartLabels {
        y_bounds: Some((0.0, 1.0)),
        title: "AUROC".into(),
        x: String::new(),
        y: "AUROC".into(),
    };
    let svg = to_svg_string((600, 400), |a| grouped_bars(a, &cats[..2], &wide, &bounded)).unwrap();
    assert!(
        svg.contains(">\n1\n<") || svg.contains(">1<"),
        "the axis reaches 1"
    );
    for beyond in ["1.5", "2.5", "-1"] {
        assert!(
            !svg.contains(&format!(">\n{beyond}\n<")) && !svg.contains(&format!(">{beyond}<")),
            "axis label {beyond} drawn"
        );
    }
    let unbounded = ChartLabels {
        y_bounds: None,
        ..bounded.clone()
    };
    let svg = to_svg_string((600, 400), |a| {
        grouped_bars(a, &cats[..2], &wide, &unbounded)
    })
    .unwrap();
    assert!(
        svg.contains(">\n5\n<") || svg.contains(">-2\n<") || svg.contains(">\n-2\n<"),
        "without bounds the axis follows the intervals"
    );
    let wrong = vec![("x", vec![Some(seeds(&[1.0]))])];
    assert!(matches!(
        to_svg_string((300, 300), |a| grouped_bars(a, &cats, &wrong, &labels)),
        Err(GmmSegError::Shape { .. })
    ));
}

#[test]
fn gmm_pca_view_with_ellipses() {
    let (c, m, d) = (4, 3, 16);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let unit = Normal::new(0.0, 1.0).unwrap();
    let mut means = ndarray::Array3::<f32>::zeros((c, m, d));
    let mut vars = ndarray::Array3::<f32>::zeros((c, m, d));
    for cls in 0..c {
        for comp in 0..m {
            for j in 0..d {
                means[[cls, comp, j]] =
                    4.0 * unit.sample(&mut rng) as f32 * if j < 4 { 1.0 } else { 0.3 };
                vars[[cls, comp, j]] = 0.2 + rng.gen::<f32>() * 0.8;
            }
        }
    }
    let n = 3000;
    let mut feats = Array2::<f32>::zeros((n, d));
    let mut labels = vec![0u8; n];
    for i in 0..n {
        let (cls, comp) = (i % c, (i / c) % m);
        labels[i] = cls as u8;
        for j in 0..d {
            feats[[i, j]] =
                means[[cls, comp, j]] + vars[[cls, comp, j]].sqrt() * unit.sample(&mut rng) as f32;
        }
    }
    let names: Vec<String> = ["road", "sidewalk", "building", "wall"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let data = GmmViewData {
        features: feats.view(),
        labels: &labels,
        means: means.view(),
        variances: vars.view(),
        classes: &[0, 1, 2],
        class_names: &names,
    };
    render("gmm_pca", (760, 600), |area| {
        gmm_pca_view(area, &data, &GmmViewOptions::default())
    });

    // PCA directions are orthonormal and ordered by explained variance.
    let pca = pca_2d(feats.view()).unwrap();
    let b = &pca.basis;
    assert!((b.row(0).dot(&b.row(0)) - 1.0).abs() < 1e-9);
    assert!(b.row(0).dot(&b.row(1)).abs() < 1e-6);
    assert!(pca.explained[0] >= pca.explained[1] && pca.explained[1] > 0.0);
    // Degenerate data and bad parameters are errors.
    assert!(pca_2d(Array2::<f32>::ones((5, 3)).view()).is_err());
    let bad = GmmViewData {
        classes: &[7],
        ..data
    };
    assert!(matches!(
        to_svg_string((300, 300), |a| gmm_pca_view(
            a,
            &bad,
            &GmmViewOptions::default()
        )),
        Err(GmmSegError::LabelOutOfRange { .. })
    ));
}

#[test]
fn save_rejects_silly_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let r = save_svg_and_png(dir.path().join("x"), (10, 10), |_| Ok(()));
    assert!(matches!(r, Err(GmmSegError::InvalidConfig { .. })));
    let _ = Path::new("unused");
}

#[test]
fn paired_differences_draw_one_panel_per_metric_and_refuse_empty_ones() {
    use gmmseg::plot::ablation::{paired_differences, DifferencePanel};
    let panels = vec![
        DifferencePanel {
            name: "miou (val)".into(),
            diffs: vec![0.012, 0.020, 0.004],
            ci95: Some(0.02),
            lower_is_better: false,
        },
        DifferencePanel {
            name: "ece (val)".into(),
            diffs: vec![-0.01, -0.012],
            ci95: Some(0.013),
            lower_is_better: true,
        },
        DifferencePanel {
            name: "step_ms (train)".into(),
            diffs: vec![3.5],
            ci95: None,
            lower_is_better: true,
        },
    ];
    render("paired_differences", (900, 420), |a| {
        paired_differences(a, "idea − baseline", &panels, 2)
    });
    let svg = to_svg_string((900, 420), |a| paired_differences(a, "t", &panels, 3)).unwrap();
    assert!(svg.contains("idea better →") && svg.contains("← idea better"));
    assert!(to_svg_string((300, 200), |a| paired_differences(a, "t", &[], 1)).is_err());
    let mut bad = panels[0].clone();
    bad.diffs = vec![f64::NAN];
    let e = to_svg_string((300, 200), |a| {
        paired_differences(a, "t", &[bad.clone()], 1)
    })
    .unwrap_err();
    assert!(e.to_string().contains("miou (val)"), "{e}");
}
