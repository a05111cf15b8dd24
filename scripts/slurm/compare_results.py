#!/usr/bin/env python3
"""Compares two results folders of `gmmseg ablate` row by row: every study CSV must hold the
same (study, dataset, variant, group, param, seed, metric, value) rows, and every
claims.csv the same verdicts, except the wall-clock metrics (they measure the machine, not
the model). Exits 1 and prints the first differences otherwise.

    scripts/slurm/compare_results.py A/tiny B/tiny
"""
import csv
import pathlib
import sys

WALL_CLOCK = {"train_s", "step_ms", "images_per_s", "throughput_vs_softmax"}
KEY = ["study", "dataset", "variant", "group", "param", "seed", "metric"]


def rows(path):
    with open(path) as f:
        return {tuple(r[k] for k in KEY): r["value"] for r in csv.DictReader(f)
                if r["metric"] not in WALL_CLOCK}


def claims(path):
    with open(path) as f:
        return {(r["study"], r["claim"]): (r["n"], r["mean_diff"], r["verdict"]) for r in csv.DictReader(f)
                if r["metric"] not in WALL_CLOCK}


def main(a, b):
    a, b = pathlib.Path(a), pathlib.Path(b)
    problems = []
    studies = sorted(p.name for p in a.glob("*.csv"))
    if not studies or studies != sorted(p.name for p in b.glob("*.csv")):
        problems.append(f"study CSVs differ: {studies} vs {sorted(p.name for p in b.glob('*.csv'))}")
    for name in studies:
        ra, rb = rows(a / name), rows(b / name)
        if ra != rb:
            diff = sorted(set(ra.items()) ^ set(rb.items()))[:5]
            problems.append(f"{name}: {len(ra)} vs {len(rb)} rows; first differences {diff}")
    for ca in sorted(a.glob("*/claims.csv")):
        cb = b / ca.parent.name / "claims.csv"
        if not cb.exists() or claims(ca) != claims(cb):
            problems.append(f"{ca.parent.name}/claims.csv differs")
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"{len(studies)} study CSVs and their claims agree (wall-clock metrics aside)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
