#!/usr/bin/env python3
"""Train and evaluate `gmmseg train` configurations over several seeds; print one line per
run and a mean per configuration (the README's "First results" table comes from this).

    cargo build --release
    scripts/seed_sweep.py --seeds 0,1,2,3 \
        "softmax=--head softmax" "gmmseg=--head gmmseg" \
        "gmmseg warm start=--head gmmseg --warm-start true"

Each configuration is `NAME=ARGS` (NAME without `=`; ARGS: extra `gmmseg train` arguments). Per run it reports the
validation mIoU and ECE from training, then evaluates on the anomaly split: the model's own
density score (GMM likelihood, or Mahalanobis for the softmax head) and MSP, AUROC and
FPR95 each. Runs already in --out-dir are evaluated again, not retrained.

With --baseline NAME, every other configuration is also compared with NAME seed by seed
(same seed, same data order): the per-seed differences of each column, their mean and the
half-width of its Student-t 95% interval — e.g. `--baseline softmax` for issue 5's "mIoU
within 0.05 of the softmax baseline".
"""
import argparse
import json
import os
import subprocess
import sys

COLUMNS = ["miou", "ece", "score_auroc", "score_fpr95", "msp_auroc", "msp_fpr95"]

# t_{0.975, df} for df = 1..30 (two-sided 95%); beyond 30 the normal 1.96 is within 2%.
T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
        2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
        2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def mean_ci(values):
    """Mean and the half-width of the Student-t 95% interval of the mean (None for n < 2)."""
    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, None
    sd = (sum((v - m) ** 2 for v in values) / (n - 1)) ** 0.5
    t = T975[n - 2] if n - 1 <= len(T975) else 1.96
    return m, t * sd / n ** 0.5


def last_json(text):
    return json.loads(text.strip().splitlines()[-1])


def gmmseg(cmd):
    """Runs the CLI; its one-line error ends the sweep."""
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"seed_sweep: {' '.join(cmd)}: {r.stderr.strip()}")
    return r.stdout


def run_one(binary, dataset, out, args, seed, split):
    if not os.path.exists(os.path.join(out, "checkpoint.json")):
        gmmseg([binary, "train", "--dataset", dataset, "--out", out, "--json", "--seed", str(seed)] + args)
    with open(os.path.join(out, "checkpoint.json")) as f:
        val = json.load(f)["last_eval"]
    ev = last_json(gmmseg([binary, "eval", "--checkpoint", out, "--dataset", dataset, "--split", split, "--json"]))
    a = ev["anomaly"]
    score = a["likelihood"] if "likelihood" in a else a["mahalanobis"]
    return [val["miou"], val["ece"], score["auroc"], score["fpr95"], a["msp"]["auroc"], a["msp"]["fpr95"]]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", default="0,1,2,3")
    p.add_argument("--dataset", default="synthscapes")
    p.add_argument("--split", default="anomaly")
    p.add_argument("--out-dir", default="runs/seed-sweep")
    p.add_argument("--binary", default="target/release/gmmseg")
    p.add_argument("--baseline", help="NAME of the configuration to compare the others with, seed by seed")
    p.add_argument("configs", nargs="+", help="NAME=ARGS")
    o = p.parse_args()
    seeds = [int(s) for s in o.seeds.split(",")]
    names = [spec.split("=", 1)[0] for spec in o.configs]
    if o.baseline is not None and o.baseline not in names:
        sys.exit(f"seed_sweep: --baseline `{o.baseline}` is not one of the configurations {names}")
    print("config".ljust(28), "seed", " ".join(c.rjust(11) for c in COLUMNS))
    results = {}
    for spec in o.configs:
        if "=" not in spec:
            sys.exit(f"seed_sweep: configuration `{spec}` is not NAME=ARGS")
        name, args = spec.split("=", 1)
        rows = []
        results[name] = rows
        for s in seeds:
            out = os.path.join(o.out_dir, name.replace(" ", "_") + f"_s{s}")
            rows.append(run_one(o.binary, o.dataset, out, args.split(), s, o.split))
            print(name.ljust(28), str(s).rjust(4), " ".join(f"{v:11.3f}" for v in rows[-1]), flush=True)
        mean = [sum(r[i] for r in rows) / len(rows) for i in range(len(COLUMNS))]
        print(name.ljust(28), "mean", " ".join(f"{v:11.3f}" for v in mean), flush=True)
    if o.baseline is None:
        return
    base = results[o.baseline]
    for name, rows in results.items():
        if name == o.baseline:
            continue
        print(f"\n{name} − {o.baseline}, per seed:")
        print("seed".ljust(10), " ".join(c.rjust(11) for c in COLUMNS))
        diffs = [[r[i] - b[i] for i in range(len(COLUMNS))] for r, b in zip(rows, base)]
        for s, d in zip(seeds, diffs):
            print(str(s).ljust(10), " ".join(f"{v:+11.4f}" for v in d))
        stats = [mean_ci([d[i] for d in diffs]) for i in range(len(COLUMNS))]
        print("mean".ljust(10), " ".join(f"{m:+11.4f}" for m, _ in stats))
        print("95% CI ±".ljust(10), " ".join("          —" if h is None else f"{h:11.4f}" for _, h in stats), flush=True)


if __name__ == "__main__":
    main()
