#!/usr/bin/env python3
"""Writes every notebook, notebooks/00..11, from the specs below.

The ablation notebooks share one shape: a first cell with the evcxr settings and every
`:dep`, a title with the paper's claim, a settings cell, and one cell
`settings.run(Study::X)?` whose value shows the study's table, figures and claims with
verdicts (decided by the library), then the raw rows. The quickstart, your-data and
playground notebooks train through `settings.train_config` (GMMSEG_TRAIN_STEPS shortens
them under the test command). Editing the specs here and rerunning this script keeps the
notebooks consistent; every algorithm lives in the `gmmseg` crate, never in a cell.

Usage: python3 scripts/make_notebooks.py   (from the repository root)
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
NB_DIR = ROOT / "notebooks"

# The evcxr settings of every notebook, chosen by scripts/cell-latency.py (README): opt 2,
# because notebooks train (an unoptimised dfdx is far too slow) and one level for all keeps
# one set of cache entries; a 4 GiB compile cache, so a new kernel reuses the compiled
# dependencies; the system linker (rustc's bundled lld), which measured as fast as or
# faster than mold here — evcxr picks mold on its own wherever mold is installed.
DEPS = ':opt 2\n:cache 4096\n:linker system\n:dep gmmseg = { path = "..", features = ["notebook"] }'

SETTINGS_MD = """## Settings
`GMMSEG_PROFILE` (`quick` by default, or `full`), `GMMSEG_DATASETS` (comma-separated;
SynthScapes by default, plus DigitScenes in the full profile — 150 quick steps do not train
it) and `GMMSEG_RERUN=1` choose what runs; `scripts/run-notebooks.sh --profile full` sets the first. By default the
results are **loaded from the cache** in `data/results/<profile>/` (committed with the
repository, so this takes well under a second); a run that is missing or whose configuration
changed is trained here. Set `settings.rerun = true` below to retrain everything."""

# `?` in this cell matters: evcxr turns `?` on at its first use, and if that first use is
# in a cell's final expression it also gives up on the value's `evcxr_display` and prints
# its Debug text instead (evcxr 0.22, `attempt_to_fix_error`). scripts/check_nb.py fails
# on such a Debug dump.
SETTINGS = """use gmmseg::experiments::{report::NotebookSettings, Study};
let mut settings = NotebookSettings::from_env()?; // GMMSEG_PROFILE, GMMSEG_DATASETS, GMMSEG_RERUN, GMMSEG_TRAIN_STEPS
// settings.rerun = true;                       // retrain every model of the study
// settings.datasets = vec!["synthscapes".into()]; // or folder:/path/to/your/data
println!("profile {}, datasets {:?}, rerun {}", settings.profile, settings.datasets, settings.rerun);"""


def code(src):
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": src}


def md(src):
    return {"cell_type": "markdown", "metadata": {}, "source": src}


def study_cells(study, metrics, table_md, extra_after_figures=()):
    metric_list = ", ".join(f'"{m}"' for m in metrics)
    return [
        md(SETTINGS_MD),
        code(SETTINGS),
        md(
            "## The study\n"
            "One line per trained run (cached runs are reported once), then the result shows "
            "itself: the table of the headline metrics (mean ± 95% CI over seeds), the figures "
            "and the paper's claims with their verdicts. Verdicts are decided by the library on "
            "the paired per-seed differences A − B (both sides trained with the same seeds): "
            "their mean, a Student-t 95% CI and how many seeds agree in sign. `reproduced`: the "
            "CI lies on the claim's side of its margin (0 for \"better\", −0.01 mIoU for \"not "
            "worse\"); `contradicted`: on the other side; `inconclusive`: it straddles — as it "
            "nearly always does with the quick profile's two seeds (t = 12.7); the full profile "
            "runs five."
        ),
        code(f"settings.run(Study::{study})?"),
        md(table_md),
        code(
            f'let results = settings.run(Study::{study})?;\n'
            f'gmmseg::experiments::report::tables(&results, &[{metric_list}])?'
        ),
        md(
            "Every run's raw rows (long format: one row per model, seed and metric) are in "
            "`results[i].runs`, the summary with confidence intervals in `results[i].summary` "
            "(both polars DataFrames); the first rows of the runs:"
        ),
        code('println!("{}", results[0].runs.select(["variant", "group", "param", "seed", "metric", "value"])?.head(Some(8)));'),
        *extra_after_figures,
    ]


NOTEBOOKS = {
    "01-em-vanilla-vs-sinkhorn": [
        md(
            "# 01 — Vanilla EM vs Sinkhorn EM (Table 5a)\n\n"
            "GMMSeg fits each class's mixture by EM on the features of the current batch and a "
            "memory of past ones. The paper's E-step is **Sinkhorn EM**: responsibilities "
            "constrained so that every component receives an equal share of the class's pixels "
            "(an entropic optimal-transport problem), which prevents a component from collapsing "
            "or starving. Table 5a of the paper: Sinkhorn EM beats vanilla EM (46.0 vs 42.7 mIoU "
            "with one EM loop per iteration on ADE20K), and is insensitive to the number of EM "
            "loops, while vanilla EM needs more loops (44.8 at 10).\n\n"
            "This notebook trains GMMSeg with both E-steps at 1, 5 and 10 EM loops per training "
            "iteration and compares mIoU, calibration and the cost of a training step.\n\n"
            "**What a loop is here.** The L loops of one training iteration refine one estimate "
            "from the same batch and memory (loop l's E-step uses loop l − 1's estimate), and "
            "only the result is blended into the mixture, once: φ ← τ φ + (1 − τ) φ̂. Applying "
            "the momentum in every loop would make it τ^L (0.90 at τ = 0.99, L = 10), so that "
            "\"more loops\" would also mean \"a faster-moving mixture\". The Sinkhorn E-step "
            "iterates until every component holds N_c/M of its class within 0.1%; the rows "
            "`em_marginal_error_*` (relative deviation of the component masses, mean and max "
            "over training) and `em_max_resp_*` (mean largest responsibility: 1/M soft … 1 hard) "
            "show what each E-step actually did."
        ),
        *study_cells(
            "Em",
            ["miou", "macc", "ece", "step_ms", "em_marginal_error_max", "em_max_resp_mean"],
            "## Results\n`param` is the number of EM loops per training iteration; `step_ms` the "
            "mean training-step time in milliseconds; `em_marginal_error_max` the worst "
            "component-mass error of any E-step in training (Sinkhorn: ≤ 0.001), "
            "`em_max_resp_mean` the mean largest responsibility.",
        ),
    ],
    "02-components": [
        md(
            "# 02 — Number of components per class M (Table 5b)\n\n"
            "Each class is a mixture of M diagonal Gaussians. The paper (Table 5b) finds that a "
            "few components help over a single Gaussian per class (M = 1: 44.2, M = 5: 46.0 "
            "mIoU on ADE20K) and that more than about five bring nothing more. The `quick` "
            "profile runs the paper's M ∈ {1, 3, 5, 10, 15}; `full` every M from 1 to 15."
        ),
        *study_cells(
            "Components",
            ["miou", "ece", "auroc", "fpr95", "step_ms"],
            "## Results\n`param` is M. Segmentation metrics on the validation split, anomaly "
            "metrics (likelihood score) on the anomaly split.",
        ),
    ],
    "03-online-vs-posthoc": [
        md(
            "# 03 — Online GMMSeg vs a GMM fitted after training (Table 3)\n\n"
            "Could one simply train a softmax network and fit class-conditional GMMs to its "
            "features afterwards? The paper's Table 3 says no: the post-hoc GMM loses accuracy "
            "against the softmax model it was fitted on, while GMMSeg — whose features are "
            "trained *for* the mixture — matches or beats it. Here: the softmax baseline, a GMM "
            "fitted by EM on its frozen penultimate features, and GMMSeg trained end to end."
        ),
        *study_cells(
            "OnlineVsPosthoc",
            ["miou", "acc", "ece", "nll"],
            "## Results\nAll three evaluated on the same validation images.",
        ),
    ],
    "04-generative-vs-discriminative": [
        md(
            "# 04 — Generative vs discriminative GMM head (Table 4)\n\n"
            "Is it the mixture *form* or the *generative* way of fitting it that matters? The "
            "paper trains the same GMM head two ways: its parameters fitted by EM on the class's "
            "own features (generative, GMMSeg), or learned by SGD through the cross-entropy "
            "loss like any other layer (discriminative). Table 4: the generative head is better "
            "in mIoU and far better at anomaly detection, since a discriminatively trained "
            "density need not model where the data are."
        ),
        *study_cells(
            "GenVsDisc",
            ["miou", "ece", "auroc", "ap", "fpr95"],
            "## Results\n`group` `val` holds the segmentation metrics; `anomaly` and "
            "`anomaly-context` the likelihood score's anomaly metrics on the two anomaly splits.",
        ),
    ],
    "05-calibration": [
        md(
            "# 05 — Calibration: softmax vs GMMSeg, and vs temperature scaling (Fig. 5)\n\n"
            "The paper's Fig. 5 shows reliability diagrams in which GMMSeg's confidence tracks "
            "its accuracy more closely than the softmax model's, with a lower expected "
            "calibration error (ECE). The first question a calibration researcher asks of that "
            "claim is whether GMMSeg also beats a **temperature-scaled** softmax: one scalar T, "
            "fitted by minimising the NLL on the `tune` split (never on val), dividing the logits "
            "(Guo et al. 2017). So every model here is evaluated twice on the validation split — "
            "as trained, and with its own T — and the four reliability diagrams below show "
            "softmax, GMMSeg, softmax + temperature and GMMSeg + temperature (15 bins, bins "
            "averaged over seeds; the whiskers are each bin's image-bootstrap 95% interval)."
        ),
        md(
            "## The measures\n"
            "- **ECE** (15 equal-width bins of the top-label confidence), **MCE** (its worst bin) "
            "and **RMSCE** (the same bins, l2 norm);\n"
            "- **classwise ECE** (Kull et al. 2019; netcal's definition): every class's "
            "probability binned against that class's frequency, averaged over classes;\n"
            "- **smooth ECE** (Błasiok & Nakkiran 2024; relplot's definition and automatic "
            "bandwidth): kernel-smoothed instead of binned, so it does not depend on a bin "
            "count;\n"
            "- **NLL**, the **Brier score** and its decomposition by predicted class "
            "(reliability ↓, resolution ↑, uncertainty — a property of the labels);\n"
            "- every metric of every model carries an **image-level bootstrap** 95% interval "
            "(1,000 resamples of whole images, `<metric>_boot_lo` / `_boot_hi` rows): the "
            "uncertainty of one model on this validation set, which the figures set beside the "
            "spread over seeds.\n\n"
            "Each is tested against its reference implementation (relplot, netcal, NumPy, "
            "scipy; `scripts/golden/make_calibration_golden.py`)."
        ),
        *study_cells(
            "Calibration",
            ["acc", "ece", "mce", "rmsce", "classwise_ece", "smooth_ece", "nll", "brier",
             "brier_reliability", "brier_resolution", "temperature"],
            "## Results\nLower is better for every calibration column (accuracy and Brier "
            "resolution: higher). Variants `softmax+ts` and `gmmseg+ts` are the same models "
            "with the temperature fitted on the tune split (column `temperature`).",
        ),
        md(
            "The second and third claims above answer the fair-baseline question with paired "
            "per-seed CIs: does GMMSeg, as trained, beat the temperature-scaled softmax, and "
            "does it still after both are temperature-scaled? Read their verdicts, not the bars: "
            "an image-bootstrap interval describes one model, the claim the spread over seeds."
        ),
    ],
    "06-anomaly-segmentation": [
        md(
            "# 06 — Anomaly segmentation (Table 2)\n\n"
            "A generative classifier knows when no class explains a pixel: GMMSeg's anomaly "
            "score is the negative largest class log-likelihood, −max_c log p(x|c). The paper's "
            "Table 2 finds it far better at segmenting unknown objects than the usual scores of "
            "a softmax model — maximum softmax probability (MSP), entropy, max-logit — and than "
            "a Mahalanobis detector fitted on the softmax model's features. Here both anomaly "
            "splits of each dataset: `anomaly` (unknown objects lying on the road) and "
            "`anomaly-context` (unknown objects in place of known ones)."
        ),
        md(
            "## Component-level metrics (SegmentMeIfYouCan)\n"
            "Pixel metrics reward a detector that finds most anomalous *pixels*; a driver needs "
            "the anomalous *objects*. The SegmentMeIfYouCan benchmark (Chan et al. 2021) "
            "thresholds the score at the best pixel-F1 point, takes 8-connected components of "
            "prediction and ground truth (small ones dropped, sizes scaled to the image area), and "
            "reports **sIoU** (each true object's IoU with the predicted components touching it, "
            "not counting their overlap with other objects), **PPV** (each predicted "
            "component's precision) and the **mean F1** of object detection over sIoU thresholds "
            "0.25–0.75. Every model also carries image-bootstrap 95% intervals of these and of "
            "AUROC (`_boot_lo` / `_boot_hi` rows; figure `anomaly_auroc_uncertainty_*`)."
        ),
        *study_cells(
            "Anomaly",
            ["auroc", "ap", "fpr95", "siou", "ppv", "mean_f1"],
            "## Results\nAUROC, AP, sIoU, PPV and mean F1: higher is better; FPR95 "
            "(false-positive rate at 95% true-positive rate): lower is better.",
            extra_after_figures=(
                md(
                    "## ROC and precision–recall curves, heat maps\n"
                    "The cached table keeps only the numbers, so this part trains one softmax "
                    "and one GMMSeg model on SynthScapes (seed 0, the profile's schedule: about "
                    "a minute in `quick`) and looks at the pixels. The softmax model gets a "
                    "Mahalanobis detector fitted on its training features."
                ),
                code(
                    "use gmmseg::data::{open_dataset, Dataset, DatasetOptions};\n"
                    "use gmmseg::train::config::HeadKind;\n"
                    "use gmmseg::train::posthoc::{prepare_for_eval, PosthocConfig};\n"
                    "use gmmseg::train::trainer::{print_every, Trainer};\n"
                    "let opts = DatasetOptions::default();\n"
                    'let train = open_dataset("synthscapes", "train", &opts).expect("train split");\n'
                    'let anomaly = open_dataset("synthscapes", "anomaly", &opts).expect("anomaly split");\n'
                    "let mut models = Vec::new();\n"
                    "for head in [HeadKind::Softmax, HeadKind::Gmmseg] {\n"
                    '    // the studies\' seed-0 configuration (GMMSEG_TRAIN_STEPS shortens it)\n'
                    '    let cfg = settings.train_config("synthscapes", head).expect("profile");\n'
                    '    println!("training {head} ({} steps)", cfg.steps);\n'
                    '    let mut t = Trainer::new(cfg.check().expect("config"), train.num_classes()).expect("trainer");\n'
                    '    t.fit(train.as_ref(), None, &mut print_every(100)).expect("training");\n'
                    "    if head == HeadKind::Softmax {\n"
                    "        let pc = PosthocConfig::new(train.num_classes(), t.model.head.feature_dim());\n"
                    '        prepare_for_eval(&mut t.model, train.as_ref(), &pc, false, true).expect("Mahalanobis fit");\n'
                    "    }\n"
                    "    models.push((head, t));\n"
                    "};"
                ),
                code(
                    "{\n"
                    "    use gmmseg::plot::curves::{roc_pr_curves, ScoredMethod};\n"
                    "    use gmmseg::train::eval::anomaly_curves;\n"
                    "    let wanted = [(0, \"msp\", \"softmax MSP\"), (0, \"maxlogit\", \"softmax max-logit\"),\n"
                    "                  (0, \"mahalanobis\", \"softmax Mahalanobis\"), (1, \"likelihood\", \"GMMSeg likelihood\")];\n"
                    "    let per_model: Vec<_> = models.iter_mut()\n"
                    '        .map(|(_, t)| anomaly_curves(&mut t.model, anomaly.as_ref(), 64, 400).expect("curves"))\n'
                    "        .collect();\n"
                    "    let methods: Vec<ScoredMethod> = wanted.iter()\n"
                    "        .filter_map(|(m, score, name)| per_model[*m].get(*score)\n"
                    "            .map(|(metrics, curves)| ScoredMethod { name, metrics, curves }))\n"
                    "        .collect();\n"
                    '    gmmseg::plot::inline((1000, 430), |area| roc_pr_curves(area, &methods)).expect("figure").evcxr_display();\n'
                    "}"
                ),
                md(
                    "Three anomaly images: ground truth, prediction and the anomaly score — the "
                    "softmax model's MSP first, then GMMSeg's likelihood."
                ),
                code(
                    "{\n"
                    "    use gmmseg::experiments::report::Html;\n"
                    "    use gmmseg::plot::images::sample_grid;\n"
                    "    use gmmseg::train::eval::predict;\n"
                    "    let names = anomaly.class_names();\n"
                    "    let mut page = Html::default();\n"
                    '    for ((head, t), score) in models.iter_mut().zip(["msp", "likelihood"]) {\n'
                    '        let preds = predict(&mut t.model, anomaly.as_ref(), &[0, 1, 2]).expect("predictions");\n'
                    "        let rows: Vec<_> = preds.iter().map(|p| p.grid_row(score)).collect();\n"
                    '        page.heading(&format!("{head}: anomaly score = {score}"));\n'
                    '        page.push(&gmmseg::plot::inline_png((900, 760), |area| sample_grid(area, &rows, &names)).expect("figure").html());\n'
                    "    }\n"
                    "    page\n"
                    "}"
                ),
            ),
        ),
    ],
    "07-paper-vs-reference-code": [
        md(
            "# 07 — The paper's GMMSeg vs the authors' released code\n\n"
            "The released code differs from the paper in several places: it "
            "LayerNorm-s and L2-normalises the features, LayerNorm-s the class scores, uses hard "
            "Sinkhorn assignments with per-component queues, adds a 0.01-weighted "
            "component-level loss, and runs EM from its queues every 5 iterations with momentum "
            "0.999 on the means (the paper's τ; our paper-flavour preset uses τ = 0.99 on means and "
            "variances, sized for runs of hundreds of iterations — see `GmmHeadConfig::paper`). "
            "This notebook shows the two presets side by side, then compares them trained, in "
            "two views:\n"
            "- **one difference at a time**: the paper flavour, the paper flavour with τ = 0.999, "
            "each of the code's differences switched on alone (`paper + …`), the warm start this "
            "library once used, and the reference-code flavour. Each difference comes with the "
            "companion settings without which it means nothing (`FlavourOverrides` names them): "
            "LayerNorm + L2 features bring the code's variance floor 0.01 (unit vectors in D = 64 "
            "have per-channel variances near 1/D, so the paper preset's floor of 1.0 would "
            "flatten every density), and the code's EM schedule starts its queues with random "
            "unit vectors only on normalised features;\n"
            "- **the cumulative path** (`cumulative k: … + X`): from the paper flavour to the "
            "reference code, one difference added at a time — features, class LayerNorm, "
            "component loss, hard assignments, 3 Sinkhorn iterations, the EM schedule — ending "
            "with τ = 0.999 at the reference-code flavour itself (a test checks that this last "
            "step gives exactly the reference preset)."
        ),
        code(
            "use gmmseg::nn::head::GmmHeadConfig;\n"
            "{\n"
            "    let (classes, m, d) = (8, 5, 32);\n"
            '    println!("paper flavour:\\n{:#?}\\n", GmmHeadConfig::paper(classes, m, d));\n'
            '    println!("reference-code flavour:\\n{:#?}", GmmHeadConfig::reference_code(classes, m, d));\n'
            "}"
        ),
        *study_cells(
            "Flavours",
            ["miou", "ece", "auroc", "fpr95", "em_marginal_error_max", "step_ms"],
            "## Results\n`val`: segmentation and calibration; `anomaly`, `anomaly-context`: the "
            "likelihood score.",
        ),
    ],
    "08-runtime": [
        md(
            "# 08 — Runtime (§4.3)\n\n"
            "The paper reports that GMMSeg adds little cost: inference at 1.059× the softmax "
            "model's time, and EM kept off the gradient path so that training is barely slower. "
            "Here: the mean training-step time and the inference throughput of both models on "
            "this machine (CPU), measured while the ablations trained, and — what the claim is "
            "decided on — GMMSeg's throughput relative to the same network with a softmax head, "
            "timed in alternating back-to-back single-batch rounds. For the training-step ratio and the "
            "EM's share of a step run `cargo bench --bench gmmseg`."
        ),
        *study_cells(
            "Runtime",
            ["throughput_vs_softmax", "step_ms", "images_per_s", "train_s"],
            "## Results\n`throughput_vs_softmax`: GMMSeg inference throughput / softmax, paired "
            "(median of 160 alternating single-batch rounds; the paper's 0.944); `step_ms`: one training step (batch 8) in "
            "milliseconds; `images_per_s`: inference throughput, timed after each training; "
            "`train_s`: the whole training run.",
        ),
    ],
}


def your_data():
    return [
        md(
            "# 09 — Your own data\n\n"
            "Two ways in, through the same API the ablations use:\n\n"
            "1. **Images and label maps** in the folder format (`classes.txt`, "
            "`<split>/images/*.png`, `<split>/labels/*.png`, optional `<split>/anomaly/*.png`; "
            "Cityscapes and ADE20K label conventions are mapped with `cityscapes:PATH` and "
            "`ade20k:PATH`). Any study runs on it with `settings.datasets = "
            'vec!["folder:/path".into()]` or `gmmseg ablate all --dataset folder:/path`.\n'
            "2. **Per-pixel features from another framework** (PyTorch, JAX) saved with "
            "`numpy.save`: fit class-conditional GMMs with Sinkhorn EM and score new pixels — the "
            "same code as `gmmseg fit-gmm` and `gmmseg score`.\n\n"
            "So that it runs anywhere, this notebook first *writes* a small folder dataset and "
            "a NumPy export from the built-in data, then reads them back as a user's would be."
        ),
        code(
            "use gmmseg::data::{open_dataset, Dataset, DatasetOptions};\n"
            "use gmmseg::data::folder::FolderWriter;\n"
            'let root = std::env::temp_dir().join(format!("gmmseg-your-data-{}", std::process::id()));\n'
            "{\n"
            "    let opts = DatasetOptions::default();\n"
            '    for (split, n) in [("train", 240), ("val", 48)] {\n'
            '        let src = open_dataset("synthscapes", split, &opts).expect("built-in data");\n'
            '        let w = FolderWriter::create(root.join(split), &src.class_names(), false).expect("folder");\n'
            "        for i in 0..n {\n"
            '            w.write(&format!("{i:04}"), &src.get(i).expect("sample")).expect("write");\n'
            "        }\n"
            "    }\n"
            '    std::fs::copy(root.join("train/classes.txt"), root.join("classes.txt")).expect("classes.txt");\n'
            '    println!("wrote {}", root.display());\n'
            "}"
        ),
        md("## 1. A folder dataset\nOpened by the spec `folder:PATH`; the first images with their labels."),
        code(
            'let spec = format!("folder:{}", root.display());\n'
            'let train = open_dataset(&spec, "train", &DatasetOptions::default()).expect("folder train");\n'
            'let val = open_dataset(&spec, "val", &DatasetOptions::default()).expect("folder val");\n'
            'println!("{} train / {} val images, classes {:?}", train.len(), val.len(), train.class_names());\n'
            "{\n"
            "    use gmmseg::plot::images::{segmentation_overlay, OverlayOptions};\n"
            "    let names = train.class_names();\n"
            '    let samples: Vec<_> = (0..3).map(|i| train.get(i).expect("sample")).collect();\n'
            "    gmmseg::plot::inline_png((1050, 330), |area| {\n"
            "        for (i, (panel, s)) in area.split_evenly((1, 3)).iter().zip(&samples).enumerate() {\n"
            '            let o = OverlayOptions { title: format!("train image {i}: labels"), ..Default::default() };\n'
            "            segmentation_overlay(panel, &s.image, &s.label, &names, &o)?;\n"
            "        }\n"
            "        Ok(())\n"
            '    }).expect("figure").evcxr_display();\n'
            "}"
        ),
        md(
            "Train GMMSeg on it (the profile's schedule), evaluate, and look at the fitted "
            "components of three classes in the first two principal directions of the features."
        ),
        code(
            "use gmmseg::experiments::report::NotebookSettings;\n"
            "use gmmseg::train::config::HeadKind;\n"
            "use gmmseg::train::trainer::{print_every, Trainer};\n"
            'let settings = NotebookSettings::from_env()?; // GMMSEG_PROFILE, GMMSEG_DATASETS, GMMSEG_RERUN, GMMSEG_TRAIN_STEPS\n'
            '// the profile\'s training recipe, as the studies train (GMMSEG_TRAIN_STEPS shortens it)\n'
            'let cfg = settings.train_config(&spec, HeadKind::Gmmseg).expect("profile");\n'
            'println!("training GMMSeg on {spec} ({} steps)", cfg.steps);\n'
            'let mut gmmseg_model = Trainer::new(cfg.check().expect("config"), train.num_classes()).expect("trainer");\n'
            'gmmseg_model.fit(train.as_ref(), None, &mut print_every(100)).expect("training");\n'
            '{\n    let r = gmmseg_model.evaluate(val.as_ref(), 0).expect("evaluation");\n'
            '    println!("validation mIoU {:.3}, pixel accuracy {:.3}, ECE {:.3}", r.miou, r.acc, r.ece);\n}'
        ),
        code(
            "{\n"
            "    use gmmseg::plot::gmm_view::{gmm_pca_view, GmmViewData, GmmViewOptions};\n"
            "    use gmmseg::train::posthoc::{mixture_sample, PosthocConfig};\n"
            "    let mut pc = PosthocConfig::new(train.num_classes(), gmmseg_model.model.head.feature_dim());\n"
            "    pc.max_images = 32;\n"
            "    pc.max_pixels_per_class = 400;\n"
            '    let s = mixture_sample(&mut gmmseg_model.model, val.as_ref(), &pc).expect("features");\n'
            "    let names = val.class_names();\n"
            "    let data = GmmViewData { features: s.data.features.view(), labels: &s.data.labels,\n"
            "        means: s.params.means.view(), variances: s.params.variances.view(),\n"
            "        classes: &[0, 1, 3], class_names: &names };\n"
            '    gmmseg::plot::inline((760, 600), |a| gmm_pca_view(a, &data, &GmmViewOptions::default())).expect("figure").evcxr_display();\n'
            "}"
        ),
        md(
            "## 2. Features from another framework\n"
            "A PyTorch user would save `features.npy` (N, D) and `labels.npy` (N,) from their "
            "network. Here the features come from the model above, written with the same NumPy "
            "format, then read back, fitted and scored exactly as `gmmseg fit-gmm` / "
            "`gmmseg score` do:\n\n"
            "```\ngmmseg fit-gmm --features features.npy --labels labels.npy --components 5 --em sinkhorn --out gmm.npz\n"
            "gmmseg score --params gmm.npz --features new_features.npy --out scores.npz\n```"
        ),
        code(
            "{\n"
            "    use gmmseg::train::posthoc::{collect_features, PosthocConfig};\n"
            "    use gmmseg::io::npy::write_npy;\n"
            "    let mut pc = PosthocConfig::new(train.num_classes(), gmmseg_model.model.head.feature_dim());\n"
            "    pc.max_images = 64;\n"
            "    pc.max_pixels_per_class = 2000;\n"
            '    for (name, ds) in [("train", train.as_ref()), ("val", val.as_ref())] {\n'
            '        let f = collect_features(&mut gmmseg_model.model, ds, &pc).expect("features");\n'
            '        write_npy(&root.join(format!("{name}_features.npy")), &f.features).expect("npy");\n'
            "        let labels = gmmseg::ndarray::Array1::from(f.labels.iter().map(|&l| l as i64).collect::<Vec<_>>());\n"
            '        write_npy(&root.join(format!("{name}_labels.npy")), &labels).expect("npy");\n'
            '        println!("{name}: {} feature rows of dimension {}", f.labels.len(), f.features.ncols());\n'
            "    }\n"
            "}"
        ),
        code(
            "{\n"
            "    use gmmseg::gmm::{fit, score_features, ClassIndex, FitOptions, GmmConfig, Reduction};\n"
            "    use gmmseg::io::npy::{read_labels, read_matrix};\n"
            '    let x = read_matrix(&root.join("train_features.npy")).expect("features");\n'
            '    let y = read_labels(&root.join("train_labels.npy")).expect("labels");\n'
            "    let classes = train.num_classes();\n"
            '    let index = ClassIndex::new(y.iter().copied(), classes, "train_labels.npy").expect("labels");\n'
            "    let cfg = GmmConfig { dim: x.ncols(), ..GmmConfig::paper(classes) }.check().expect(\"GMM config\");\n"
            "    let opts = FitOptions { iterations: 20, seed: 0, init: None };\n"
            '    let (params, report) = fit(x.view(), &index, &cfg, &opts).expect("EM");\n'
            "    let ll = &report.mean_log_likelihood;\n"
            '    println!("Sinkhorn EM: mean log p(x|y) {:.2} -> {:.2} over {} iterations", ll[0], ll[ll.len() - 1], ll.len());\n'
            '    let xv = read_matrix(&root.join("val_features.npy")).expect("features");\n'
            '    let yv = read_labels(&root.join("val_labels.npy")).expect("labels");\n'
            '    let s = score_features(&params, xv.view(), Reduction::Max, "val_features.npy").expect("scores");\n'
            '    let m = gmmseg::metrics::segmentation::segmentation_metrics(&s.predicted, yv.as_slice().expect("labels"), classes).expect("metrics");\n'
            '    println!("held-out pixels classified by the fitted GMM: {:.3} accuracy, mIoU {:.3} ({} pixels)", m.acc, m.miou, m.pixels);\n'
            "}"
        ),
        md("Clean up the temporary folder."),
        code('std::fs::remove_dir_all(&root).expect("remove temporary folder");'),
    ]


def quickstart():
    """00-quickstart: train both heads once, look at them, then read the claims the library
    decides over the cached seeds (no claim rule is written in a cell)."""
    return [
        md(
            "# 00 — Quickstart: GMMSeg vs softmax on SynthScapes\n\n"
            "GMMSeg (Liang et al., NeurIPS 2022) replaces the softmax classifier of a "
            "segmentation network with class-conditional Gaussian mixtures fitted by Sinkhorn EM, "
            "while the network is trained by cross-entropy on the GMM posterior. The paper claims "
            "equal or better mIoU and much better anomaly detection from the likelihood "
            "−max_c log p(x|c).\n\n"
            "This notebook trains both heads on the built-in SynthScapes street scenes with the "
            "quick profile's recipe (about half a minute each on two cores), evaluates them on "
            "the validation and anomaly splits, looks at predictions and at the fitted mixtures, "
            "and ends with the paper's claims as the library decides them over several seeds."
        ),
        code(
            "use gmmseg::data::{open_dataset, Dataset, DatasetOptions};\n"
            "use gmmseg::experiments::{report::NotebookSettings, Study};\n"
            "use gmmseg::train::config::HeadKind;\n"
            "use gmmseg::train::trainer::{print_every, Trainer};\n"
            'let settings = NotebookSettings::from_env()?; // GMMSEG_PROFILE, GMMSEG_DATASETS, GMMSEG_RERUN, GMMSEG_TRAIN_STEPS\n'
            "let opts = DatasetOptions::default();\n"
            'let train = open_dataset("synthscapes", "train", &opts).expect("SynthScapes train");\n'
            'let val = open_dataset("synthscapes", "val", &opts).expect("SynthScapes val");\n'
            'let anomaly = open_dataset("synthscapes", "anomaly", &opts).expect("SynthScapes anomaly");\n'
            'println!("profile {}: {} train / {} val / {} anomaly images, {} classes", settings.profile, train.len(), val.len(), anomaly.len(), train.num_classes());'
        ),
        md(
            "## Train both heads\n"
            "The configuration is the studies' seed-0 recipe for the profile "
            "(`settings.train_config`), so these are the models behind the first seed of the "
            "tables below. A compact progress line every 100 steps."
        ),
        code(
            "let mut models = Vec::new();\n"
            "for head in [HeadKind::Softmax, HeadKind::Gmmseg] {\n"
            '    let cfg = settings.train_config("synthscapes", head).expect("profile");\n'
            '    println!("training {head} ({} steps)", cfg.steps);\n'
            '    let mut t = Trainer::new(cfg.check().expect("valid config"), train.num_classes()).expect("trainer");\n'
            '    t.fit(train.as_ref(), None, &mut print_every(100)).expect("training");\n'
            "    models.push((head, t));\n"
            "};"
        ),
        md(
            "## Evaluate\n"
            "mIoU and calibration on the validation split; AUROC / FPR95 of the anomaly scores on "
            "the anomaly split (objects never seen in training lying on the road)."
        ),
        code(
            "for (head, t) in models.iter_mut() {\n"
            '    let v = t.evaluate(val.as_ref(), 0).expect("evaluation");\n'
            '    let a = t.evaluate(anomaly.as_ref(), 0).expect("evaluation");\n'
            '    println!("{head:<8} mIoU {:.3}  acc {:.3}  ECE {:.3}  NLL {:.3}", v.miou, v.acc, v.ece, v.nll);\n'
            "    for (score, m) in a.anomaly.clone().unwrap_or_default() {\n"
            '        println!("    {score:<11} AUROC {:.3}  AP {:.3}  FPR95 {:.3}", m.auroc, m.ap, m.fpr95);\n'
            "    }\n"
            "};"
        ),
        md(
            "## Look at the predictions\nThree images of the anomaly split (an unknown object "
            "on the road): ground truth, GMMSeg's prediction, and its anomaly score "
            "−max_c log p(x|c), high where no class's mixture explains the pixel."
        ),
        code(
            "{\n"
            "    use gmmseg::plot::images::sample_grid;\n"
            "    use gmmseg::train::eval::predict;\n"
            "    let names = anomaly.class_names();\n"
            '    let preds = predict(&mut models[1].1.model, anomaly.as_ref(), &[0, 1, 2]).expect("predictions");\n'
            '    let rows: Vec<_> = preds.iter().map(|p| p.grid_row("likelihood")).collect();\n'
            '    gmmseg::plot::inline_png((900, 760), |area| sample_grid(area, &rows, &names)).expect("figure").evcxr_display();\n'
            "}"
        ),
        md(
            "## The fitted mixtures\nValidation features of three classes and GMMSeg's "
            "components (means as crosses, 1σ and 2σ ellipses), projected on the first two "
            "principal directions of the features."
        ),
        code(
            "{\n"
            "    use gmmseg::plot::gmm_view::{gmm_pca_view, GmmViewData, GmmViewOptions};\n"
            "    use gmmseg::train::posthoc::{mixture_sample, PosthocConfig};\n"
            "    let model = &mut models[1].1.model;\n"
            "    let mut pc = PosthocConfig::new(val.num_classes(), model.head.feature_dim());\n"
            "    pc.max_images = 32;\n"
            "    pc.max_pixels_per_class = 400;\n"
            '    let s = mixture_sample(model, val.as_ref(), &pc).expect("features");\n'
            "    let names = val.class_names();\n"
            "    let data = GmmViewData { features: s.data.features.view(), labels: &s.data.labels,\n"
            "        means: s.params.means.view(), variances: s.params.variances.view(),\n"
            "        classes: &[0, 2, 5], class_names: &names };\n"
            '    gmmseg::plot::inline((760, 600), |a| gmm_pca_view(a, &data, &GmmViewOptions::default())).expect("figure").evcxr_display();\n'
            "}"
        ),
        md(
            "## Which claims hold\n"
            "One training run decides nothing. The studies ran the same recipe over several "
            "seeds (cached in `data/results/<profile>/`, so this reads them); the library decides "
            "each claim on the paired per-seed differences GMMSeg − softmax: their mean, a "
            "Student-t 95% CI and a verdict (`reproduced`, `contradicted` or `inconclusive`). "
            "First the segmentation claims (Table 1), then the anomaly claims (Table 2)."
        ),
        code("settings.run(Study::MainResults)?"),
        code("settings.run(Study::Anomaly)?"),
        md(
            "Next: `01`–`08` rerun each ablation of the paper, `09` brings your own data, "
            "`11-playground` tries your own idea against these baselines."
        ),
    ]


def playground():
    """11-playground: the user's own idea against the cached baselines."""
    return [
        md(
            "# 11 — Playground: your idea against the cached baselines\n\n"
            "Every other notebook reruns a study of the paper. This one is for *your* change: "
            "edit one validated configuration — a knob of the mixture, the E-step, the head, "
            "the decoder, the optimiser, the dataset — train it over the profile's seeds, and "
            "compare it with the studies' GMMSeg model of the same seeds by the library's "
            "paired rule.\n\n"
            "- The **baseline** of seed s is exactly the model the studies trained for seed s, "
            "read from `data/results/<profile>/models/`: it costs nothing.\n"
            "- The **idea** is trained once per seed (the quick profile: about half a minute "
            "each) and cached by its full configuration under "
            "`data/results/playground/<profile>/` (not committed), so rerunning a cell, or "
            "coming back to the same idea tomorrow, is instant.\n"
            "- Each metric is decided on the per-seed differences idea − baseline: mean, "
            "Student-t 95% CI and a verdict — `idea better` when the whole interval is on the "
            "better side of zero, `idea worse` on the other side, `inconclusive` when it "
            "straddles zero (with the quick profile's two seeds, t = 12.7: a difference must be "
            "large and steady to be decided; `settings.seeds = Some(5)` trains more)."
        ),
        md(SETTINGS_MD),
        code(SETTINGS),
        md(
            "## Your idea\n"
            "`settings.idea(name)` starts from the studies' GMMSeg configuration; change any "
            "field of `idea.config` (a `TrainConfig`: see its documentation for every field, "
            "its default and where it comes from). The configuration is checked before "
            "anything trains, and an error names the field. The example tries three "
            "components per class instead of five; the commented lines are other ideas."
        ),
        code(
            'let mut idea = settings.idea("M = 3 components per class").expect("an idea");\n'
            "idea.config.gmm.components = 3;\n"
            "// idea.config.gmm.em = gmmseg::train::config::EmKind::Vanilla;      // plain EM E-step\n"
            "// idea.config.gmm.momentum = Some(0.999);                           // the code's momentum\n"
            "// idea.config.optim.lr *= 2.0;                                      // a faster learning rate\n"
            "// idea.config.net.decoder.kind = gmmseg::nn::decoder::DecoderKind::Deeplab;\n"
            "// idea.config.dataset = \"folder:/path/to/your/data\".into();        // your data (baseline trained too)\n"
            "// idea.baseline = gmmseg::train::config::HeadKind::Softmax;         // compare with softmax instead\n"
            'for (field, baseline, mine) in idea.changes(&settings).expect("changes") {\n'
            '    println!("{field}: {baseline} -> {mine}");\n'
            "}"
        ),
        md(
            "## Train and compare\n"
            "One line per seed and side (`cached` or `trained`), then the comparison shows "
            "itself: the changed fields, the paired table, every metric's per-seed differences "
            "(dots) with their mean and 95% CI (bar), and the reliability diagrams of both "
            "sides. The anomaly rows judge each side by its own score (the likelihood for GMM "
            "heads, MSP for softmax). Training-step and inference times are shown but not "
            "decided: the baseline was timed when the studies trained it, on a machine as "
            "loaded as it was then (`08-runtime` times its pairs back to back)."
        ),
        code("settings.try_idea(&idea)?"),
        md(
            "## Going further\n"
            "The comparison is data: `comparison.metrics` holds every paired decision, "
            "`comparison.records` both sides' full model records per seed (every metric, "
            "reliability bins, temperature, EM statistics), `comparison.frame()` a polars "
            "DataFrame. Run again, it reads both sides from the caches.\n\n"
            "**A word on method.** The validation and anomaly splits *report*. If you try "
            "several ideas and keep the best, that choice is tuning on the validation split, "
            "and the winner's numbers here are no longer honest; choose on the `tune` split "
            "(as the project's tuning study does), then report the chosen idea once here."
        ),
        code(
            'let comparison = settings.try_idea(&idea)?;\n'
            'println!("{}", comparison.frame()?);'
        ),
    ]


def write(name, cells):
    cells = [code(DEPS)] + cells
    for c in cells:
        # a block that only prints or displays ends with `;`, or evcxr shows its `()` value
        src = c["source"].rstrip() if c["cell_type"] == "code" else ""
        if src.endswith("\n}") and not src.endswith("    page\n}"):
            c["source"] = src + ";"
    for i, c in enumerate(cells):
        c["id"] = f"cell-{i:02d}"
    nb = {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Rust", "language": "rust", "name": "rust"},
            "language_info": {"name": "rust"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path = NB_DIR / f"{name}.ipynb"
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    print("wrote", path.relative_to(ROOT))


if __name__ == "__main__":
    write("00-quickstart", quickstart())
    for name, cells in NOTEBOOKS.items():
        write(name, cells)
    write("09-your-data", your_data())
    write("11-playground", playground())
