#!/usr/bin/env python3
"""Writes every notebook, notebooks/00..11, from the specs below.

The ablation notebooks share one shape: a first cell with the evcxr settings and every
`:dep`, a title with the paper's claim, a settings cell, and one cell
`settings.run(Study::X)?` whose value shows the study's table, figures and claims with
verdicts (decided by the library), then the raw rows. The quickstart, your-data and
playground notebooks train through `settings.train_config` (GMMSEG_TRAIN_STEPS shortens
them under the test command). Editing the specs here and rerunning this script keeps the
notebooks consistent; every algorithm lives in the `gmmseg` crate, never in a cell. The code
cells are regions of the examples `examples/nb_*.rs` (see `cell`), so they are compiled,
formatted and linted with the crate, and the test command runs each example.

Usage: python3 scripts/make_notebooks.py [--check]   (from the repository root)
"""
import json
import sys
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


def code(src):
    return {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": src}


def md(src):
    return {"cell_type": "markdown", "metadata": {}, "source": src}


EXAMPLES = ROOT / "examples"


def cell(example, name, subs=()):
    """The code cell `name` of `examples/<example>.rs`: the lines between `// cell: <name>`
    and `// end cell`, dedented, with each (old, new) of `subs` replaced. Every cell is thus
    compiled, formatted and linted as part of an example (`cargo build --examples`, the test
    command runs each one on the tiny profile). A cell written `show(EXPR);` becomes `EXPR`:
    the final expression, which evcxr displays."""
    lines = (EXAMPLES / f"{example}.rs").read_text().split("\n")
    start = [i for i, l in enumerate(lines) if l.strip() == f"// cell: {name}"]
    if len(start) != 1:
        raise SystemExit(f"examples/{example}.rs: expected one `// cell: {name}`, found {len(start)}")
    end = next(i for i in range(start[0] + 1, len(lines)) if lines[i].strip() == "// end cell")
    body = lines[start[0] + 1:end]
    indent = min(len(l) - len(l.lstrip()) for l in body if l.strip())
    src = "\n".join(l[indent:] for l in body).strip("\n")
    # `show(EXPR);` as the cell's last statement: EXPR is what the cell displays
    head, sep, tail = src.rpartition("\nshow(")
    if src.startswith("show("):
        head, sep, tail = "", "show(", src[len("show("):]
    if sep:
        if not tail.endswith(");"):
            raise SystemExit(f"examples/{example}.rs, cell {name}: `show(` must close with `);`")
        expr = tail[: -len(");")]
        src = (head + "\n" if head else "") + expr
    for old, new in subs:
        if old not in src:
            raise SystemExit(f"examples/{example}.rs, cell {name}: no `{old}` to replace")
        src = src.replace(old, new)
    return code(src)


def study_cells(study, metrics, table_md, extra_after_figures=()):
    metric_list = ", ".join(f'"{m}"' for m in metrics)
    return [
        md(SETTINGS_MD),
        cell("nb_study", "settings"),
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
        cell("nb_study", "study", [("Study::MainResults", f"Study::{study}")]),
        md(table_md),
        cell("nb_study", "tables", [("Study::MainResults", f"Study::{study}"), ('&["miou"]', f"&[{metric_list}]")]),
        md(
            "Every run's raw rows (long format: one row per model, seed and metric) are in "
            "`results[i].runs`, the summary with confidence intervals in `results[i].summary` "
            "(both polars DataFrames); the first rows of the runs:"
        ),
        cell("nb_study", "rows"),
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
                cell("nb_anomaly", "train"),
                cell("nb_anomaly", "curves"),
                md(
                    "Three anomaly images: ground truth, prediction and the anomaly score — the "
                    "softmax model's MSP first, then GMMSeg's likelihood."
                ),
                cell("nb_anomaly", "heat-maps"),
            ),
        ),
    ],
    "10-segmentation-gap": [
        md(
            "# 10 — Why the generative head trails softmax, one factor at a time\n\n"
            "The paper's first claim (Table 1) is that GMMSeg segments at least as well as "
            "softmax. Here, with both heads tuned on the `tune` split with the same budget "
            "(`gmmseg ablate tuning`, notebook 00), it does not reliably. This study takes the "
            "tuned GMMSeg and changes **one factor at a time**, each a validated setting of the "
            "library:\n"
            "- **the variance floor relative to the features' own variance** "
            "(`GmmConfig::var_floor`). The tuned floor is absolute; the study records, for every "
            "GMM run, how much of each estimated variance is floor (`em_floor_share_mean`: 1 "
            "means every variance is floor and the mixture is a nearest-mean classifier), and "
            "tries floors of 0.01, 0.1 and 1 × each channel's variance in the class;\n"
            "- **the projection without its ReLU** (`NetConfig::projection_relu`), alone and with "
            "a relative floor;\n"
            "- **a learnable temperature** on the class log-likelihoods "
            "(`GmmHeadConfig::learn_temperature`);\n"
            "- **the class prior**: a log prior counted over training "
            "(`GmmHeadConfig::log_prior`), and a class-balanced image sampler;\n"
            "- **EM on evaluation-mode features** (`GmmHeadConfig::em_on_eval_features`): "
            "what inference sees, instead of the training forward's dropout and batch "
            "statistics;\n"
            "- **a bias-corrected momentum warm-up** τ_t = min(τ, (1 + t)/(10 + t)) "
            "(`OnlineConfig::momentum_warmup`);\n"
            "- **the memory pre-filled** before the first EM update "
            "(`OnlineConfig::prefill_batches`): the schedule's first 4 batches, seen by the "
            "initial network in evaluation mode, fill the queues, so the first update does "
            "not fit one batch alone (the authors' code has an unused runner for this).\n\n"
            "The projection and sampler factors apply to the softmax baseline too "
            "(`softmax + …` rows), so that a factor that helps segmentation in general is not "
            "mistaken for one that closes the gap. A factor is **kept** only if it raises the "
            "mean tune mIoU; val and the anomaly splits report. Beside every mIoU difference "
            "stand the likelihood's anomaly AUROC and the ECE, both against the softmax "
            "baseline, so that a gain bought with the density's quality shows."
        ),
        *study_cells(
            "Gap",
            ["miou", "ece", "auroc", "em_floor_share_mean"],
            "## Results\n`tune`: the split a factor is kept on; `val`: segmentation, "
            "calibration and the floor's share of the variances; `anomaly`, `anomaly-context`: "
            "the likelihood score of GMM variants, MSP of softmax variants.",
            extra_after_figures=(
                md(
                    "## Factor by factor\nThe paired differences behind the claims above, one "
                    "row per variant: mean ± 95% Student-t CI over seeds (A − B on the same "
                    "seeds). *Share of the gap closed*: a factor's mean val-mIoU gain over the "
                    "tuned GMMSeg divided by softmax's mean val-mIoU lead over it — 100% brings "
                    "GMMSeg level with softmax, a negative share widens the gap; its "
                    "uncertainty is that of the two differences beside it."
                ),
                cell("nb_gap", "factors"),
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
            "0.999 on the means (the paper's τ; our untuned paper-flavour preset uses τ = 0.99 on "
            "means and variances, sized for runs of hundreds of iterations — see "
            "`GmmHeadConfig::paper` — and the quick profile's runs take the τ = 0.9903, "
            "variance floor, start and optimiser that `gmmseg ablate tuning` chose on the `tune` "
            "split, `data/results/quick/tuning/chosen.md`). "
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
        cell("nb_flavours", "presets"),
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
        cell("nb_your_data", "write-folder"),
        md("## 1. A folder dataset\nOpened by the spec `folder:PATH`; the first images with their labels."),
        cell("nb_your_data", "open-folder"),
        md(
            "Train GMMSeg on it (the profile's schedule), evaluate, and look at the fitted "
            "components of three classes in the first two principal directions of the features."
        ),
        cell("nb_your_data", "train"),
        cell("nb_your_data", "mixtures"),
        md(
            "## 2. Features from another framework\n"
            "A PyTorch user would save `features.npy` (N, D) and `labels.npy` (N,) from their "
            "network. Here the features come from the model above, written with the same NumPy "
            "format, then read back, fitted and scored exactly as `gmmseg fit-gmm` / "
            "`gmmseg score` do:\n\n"
            "```\ngmmseg fit-gmm --features features.npy --labels labels.npy --components 5 --em sinkhorn --out gmm.npz\n"
            "gmmseg score --params gmm.npz --features new_features.npy --out scores.npz\n```"
        ),
        cell("nb_your_data", "export-features"),
        cell("nb_your_data", "fit-and-score"),
        md("Clean up the temporary folder."),
        cell("nb_your_data", "clean-up"),
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
        cell("nb_quickstart", "setup"),
        md(
            "## How the recipe was chosen\n"
            "Each head's learning rate and weight decay — and GMMSeg's τ, variance floor and "
            "start — were chosen by `gmmseg ablate tuning` with the **same number of trials** "
            "for both heads, every trial trained on `train` and scored on the `tune` split only "
            "(never on the validation or anomaly splits these notebooks report). The table is "
            "the choice beside each head's untuned default; the figure every trial, the chosen "
            "ones circled. The choice maximises tune mIoU alone — read the anomaly results below "
            "with that in mind."
        ),
        cell("nb_quickstart", "tuning"),
        md(
            "## Train both heads\n"
            "The configuration is the studies' seed-0 recipe for the profile "
            "(`settings.train_config`), so these are the models behind the first seed of the "
            "tables below. A compact progress line every 100 steps."
        ),
        cell("nb_quickstart", "train"),
        md(
            "## Evaluate\n"
            "mIoU and calibration on the validation split; AUROC / FPR95 of the anomaly scores on "
            "the anomaly split (objects never seen in training lying on the road)."
        ),
        cell("nb_quickstart", "evaluate"),
        md(
            "## Look at the predictions\nThree images of the anomaly split (an unknown object "
            "on the road): ground truth, GMMSeg's prediction, and its anomaly score "
            "−max_c log p(x|c), high where no class's mixture explains the pixel."
        ),
        cell("nb_quickstart", "predictions"),
        md(
            "## The fitted mixtures\nValidation features of three classes and GMMSeg's "
            "components (means as crosses, 1σ and 2σ ellipses), projected on the first two "
            "principal directions of the features."
        ),
        cell("nb_quickstart", "mixtures"),
        md(
            "## Which claims hold\n"
            "One training run decides nothing. The studies ran the same recipe over several "
            "seeds (cached in `data/results/<profile>/`, so this reads them); the library decides "
            "each claim on the paired per-seed differences GMMSeg − softmax: their mean, a "
            "Student-t 95% CI and a verdict (`reproduced`, `contradicted` or `inconclusive`). "
            "First the segmentation claims (Table 1), then the anomaly claims (Table 2)."
        ),
        cell("nb_quickstart", "main-results"),
        cell("nb_quickstart", "anomaly"),
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
        cell("nb_study", "settings"),
        md(
            "## Your idea\n"
            "`settings.idea(name)` starts from the studies' GMMSeg configuration; change any "
            "field of `idea.config` (a `TrainConfig`: see its documentation for every field, "
            "its default and where it comes from; the head's whole configuration, every value "
            "of the mixture, is `idea.config.head`, edited through `gmm_mut()`). The "
            "configuration is checked before "
            "anything trains, and an error names the field. The example tries three "
            "components per class instead of five; the commented lines are other ideas."
        ),
        cell("nb_playground", "idea"),
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
        cell("nb_playground", "try"),
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
        cell("nb_playground", "frame"),
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
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    if CHECK:
        if not path.exists() or path.read_text() != text:
            STALE.append(str(path.relative_to(ROOT)))
        return
    path.write_text(text)
    print("wrote", path.relative_to(ROOT))


# `--check`: write nothing, fail if a committed notebook differs from what its specs and
# examples give (the test command runs this, so an edited example cannot leave its notebook
# behind).
CHECK = "--check" in sys.argv[1:]
STALE = []

if __name__ == "__main__":
    write("00-quickstart", quickstart())
    for name, cells in NOTEBOOKS.items():
        write(name, cells)
    write("09-your-data", your_data())
    write("11-playground", playground())
    if STALE:
        sys.exit("out of date (rerun python3 scripts/make_notebooks.py): " + ", ".join(STALE))
