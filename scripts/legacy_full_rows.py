#!/usr/bin/env python3
"""One-time migration of data/results/full/ to the code-keyed cache (issue "Trustworthy
ablations"): the full profile's rows were computed before run keys carried a code
fingerprint, by the code of commit 8bc1a87 and earlier, and each study CSV kept the rows of
superseded models beside the current ones (e.g. 60 cells of components.csv had two mIoU rows), and the rows of a retired spec.

For every (study, spec, dataset, seed) this keeps the rows of one run — the one that code
reported: the identity (`<study>.configs.json`) trained with the profile's steps (500 on
SynthScapes, 3,000 on DigitScenes) with the highest model and rows version — drops the
others, and marks the kept rows `code = legacy-8bc1a87`. The current code never reuses them
(its fingerprint differs); `gmmseg ablate all --profile full --dataset D --seeds 3
--cache-only --rows-of-code legacy-8bc1a87` shows them with today's summaries and paired
claims. Model records that no kept row refers to are removed. Idempotent: a CSV that already has a `code` column is left alone.

Usage: python3 scripts/legacy_full_rows.py   (from the repository root)
"""
import collections
import csv
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent / "data" / "results" / "full"
CODE = "legacy-8bc1a87"
STEPS = {"digitscenes": 3000, "synthscapes": 500}
# a spec that code no longer ran (renamed when the random start became the preset)
RETIRED_SPECS = {"paper + random start"}
STUDIES = ["main_results", "anomaly", "online_vs_posthoc", "gen_vs_disc", "em", "components",
           "calibration", "flavours", "runtime"]


def migrate(study):
    path = ROOT / f"{study}.csv"
    with path.open() as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames
        rows = list(reader)
    if "code" in header:
        print(f"{study}: already migrated")
        return
    ids = json.loads((ROOT / f"{study}.configs.json").read_text())
    best = {}
    for h in {r["hash"] for r in rows}:
        ident = ids.get(h)
        if ident is None or ident["train"]["steps"] != STEPS.get(ident["dataset"]):
            continue
        if ident["spec"] in RETIRED_SPECS:
            continue
        run = (ident["spec"], ident["dataset"], ident["seed"])
        rank = (ident.get("model_version", 2), ident.get("rows_version", 0))
        if run not in best or rank > best[run][0]:
            best[run] = (rank, h)
    keep = {h for _, h in best.values()}
    out = [dict(r, code=CODE) for r in rows if r["hash"] in keep]
    cells = collections.Counter(
        (r["dataset"], r["variant"], r["group"], r["param"], r["seed"], r["metric"]) for r in out)
    assert max(cells.values()) == 1, f"{study}: a cell still has two rows"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header + ["code"], lineterminator="\n")
        w.writeheader()
        w.writerows(out)
    (ROOT / f"{study}.configs.json").write_text(
        json.dumps({h: ids[h] for h in sorted(keep)}, indent=2, ensure_ascii=False) + "\n")
    print(f"{study}: {len(rows)} rows → {len(out)} ({len(keep)} runs)")


for s in STUDIES:
    migrate(s)

# model records no kept row refers to belong to superseded runs
used = {r["model"] for p in ROOT.glob("*.csv") for r in csv.DictReader(p.open())}
stale = [m for m in (ROOT / "models").glob("*.json") if m.stem not in used]
for m in stale:
    m.unlink()
print(f"models: {len(used)} kept, {len(stale)} superseded records removed")
