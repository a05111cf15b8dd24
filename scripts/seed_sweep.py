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
"""
import argparse
import json
import os
import subprocess
import sys

COLUMNS = ["miou", "ece", "score_auroc", "score_fpr95", "msp_auroc", "msp_fpr95"]


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
    p.add_argument("configs", nargs="+", help="NAME=ARGS")
    o = p.parse_args()
    seeds = [int(s) for s in o.seeds.split(",")]
    print("config".ljust(28), "seed", " ".join(c.rjust(11) for c in COLUMNS))
    for spec in o.configs:
        if "=" not in spec:
            sys.exit(f"seed_sweep: configuration `{spec}` is not NAME=ARGS")
        name, args = spec.split("=", 1)
        rows = []
        for s in seeds:
            out = os.path.join(o.out_dir, name.replace(" ", "_") + f"_s{s}")
            rows.append(run_one(o.binary, o.dataset, out, args.split(), s, o.split))
            print(name.ljust(28), str(s).rjust(4), " ".join(f"{v:11.3f}" for v in rows[-1]), flush=True)
        mean = [sum(r[i] for r in rows) / len(rows) for i in range(len(COLUMNS))]
        print(name.ljust(28), "mean", " ".join(f"{v:11.3f}" for v in mean), flush=True)


if __name__ == "__main__":
    main()
