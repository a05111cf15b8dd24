#!/usr/bin/env python3
"""The "before" column of README's table "What the trustworthy-ablation fixes changed":
the quick-profile rows committed at a revision from before the code fingerprint (default
8bc1a87), re-decided by today's paired rule (mean of the per-seed differences A − B and the
half-width of its Student-t 95% interval).

Those CSVs kept the rows of superseded models beside the current ones; as in
scripts/legacy_full_rows.py, each (spec, dataset, seed) keeps the run trained with the
profile's steps (150) and the highest model and rows version.

Usage: python3 scripts/paired_before.py [REV]   (from the repository root)
"""
import csv
import io
import json
import subprocess
import sys

T975 = {1: 12.706204736174694, 2: 4.302652729749462, 3: 3.1824463052837078}
REV = sys.argv[1] if len(sys.argv) > 1 else "8bc1a87"


def show(path):
    return subprocess.run(["git", "show", f"{REV}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def rows_of(study):
    rows = list(csv.DictReader(io.StringIO(show(f"data/results/quick/{study}.csv"))))
    ids = json.loads(show(f"data/results/quick/{study}.configs.json"))
    best = {}
    for h in {r["hash"] for r in rows}:
        i = ids.get(h)
        if not i or i["train"]["steps"] != 150:
            continue
        run = (i["spec"], i["dataset"], i["seed"])
        rank = (i.get("model_version", 2), i.get("rows_version", 0))
        if run not in best or rank > best[run][0]:
            best[run] = (rank, h)
    keep = {h for _, h in best.values()}
    return [r for r in rows if r["hash"] in keep]


def paired(study, metric, group, a, ap, b, bp, dataset="synthscapes"):
    rows = [r for r in rows_of(study)
            if r["dataset"] == dataset and r["metric"] == metric and r["group"] == group]
    va = {r["seed"]: float(r["value"]) for r in rows if r["variant"] == a and r["param"] == ap}
    vb = {r["seed"]: float(r["value"]) for r in rows if r["variant"] == b and r["param"] == bp}
    d = [va[s] - vb[s] for s in va if s in vb]
    n = len(d)
    m = sum(d) / n
    sd = (sum((x - m) ** 2 for x in d) / (n - 1)) ** 0.5
    mean = lambda v: sum(v.values()) / len(v)  # noqa: E731
    return (f"{m:+.3f} ± {T975[n - 1] * sd / n ** 0.5:.3f} (n = {n}; "
            f"means {mean(va):.3f} vs {mean(vb):.3f})")


CLAIMS = [
    ("Table 1, DeepLabV3+-lite: GMMSeg − softmax mIoU", ("main_results", "miou", "deeplab", "gmmseg", "", "softmax", "")),
    ("Table 1, FCN", ("main_results", "miou", "fcn", "gmmseg", "", "softmax", "")),
    ("Table 5a: Sinkhorn − vanilla EM, 1 loop", ("em", "miou", "val", "sinkhorn", "1.0", "vanilla", "1.0")),
    ("Table 5a: Sinkhorn 10 loops − 1 loop", ("em", "miou", "val", "sinkhorn", "10.0", "sinkhorn", "1.0")),
    ("Table 5b: M = 5 − M = 1", ("components", "miou", "val", "gmmseg", "5.0", "gmmseg", "1.0")),
    ("Fig. 5: ECE GMMSeg − softmax", ("calibration", "ece", "val", "gmmseg", "", "softmax", "")),
    ("Table 2: likelihood − MSP AUROC, anomaly", ("anomaly", "auroc", "anomaly", "gmmseg/likelihood", "", "softmax/msp", "")),
    ("Table 2: likelihood − MSP AUROC, anomaly-context", ("anomaly", "auroc", "anomaly-context", "gmmseg/likelihood", "", "softmax/msp", "")),
    ("Table 3: online − post-hoc GMM mIoU", ("online_vs_posthoc", "miou", "val", "online gmmseg", "", "post-hoc gmm", "")),
]

for name, args in CLAIMS:
    print(f"{name}: {paired(*args)}")
