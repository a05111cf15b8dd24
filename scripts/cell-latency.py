#!/usr/bin/env python3
"""Cell latency of the evcxr kernel: how long a researcher waits after editing one cell.

Starts a fresh Rust kernel per configuration (in notebooks/, as JupyterLab does), runs the
configuration's first cell (its `:` settings and the `:dep` line every notebook has: this
is the kernel start, compiled once), then times typical cells in the now warm kernel, each
`--repeat` times, and prints one table: per configuration and cell, the median and the
fastest wall time from sending the cell to the kernel going idle.

Cells timed (what a notebook does between two edits):
  trivial        `let x = 1 + 1;`
  print          `println!("{}", x);`
  settings       the settings cell of every ablation notebook
  cached study   `settings.run(Study::Em)?`: reload a cached study and show its table,
                 figures and claims (the results are committed, so no training)

Usage (from the repository root, after scripts/setup-notebooks.sh):
  .venv/bin/python scripts/cell-latency.py [--repeat 3] [--config NAME=SETTINGS ...]
SETTINGS is the text before the `:dep` line, `;` separating lines, e.g.
  --config "opt2=:opt 2" --config "opt2+mold=:opt 2;:linker mold"
Without --config it measures the notebooks' own first cell (read from
notebooks/01-em-vanilla-vs-sinkhorn.ipynb). `--json FILE` writes the numbers too.
"""
import argparse
import json
import os
import pathlib
import statistics
import sys
import time

from jupyter_client.manager import KernelManager

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEP = ':dep gmmseg = { path = "..", features = ["notebook"] }'

CELLS = [
    ("trivial", "let x = 1 + 1;"),
    ("print", 'println!("{}", x);'),
    (
        "settings",
        "use gmmseg::experiments::{report::NotebookSettings, Study};\n"
        'let settings = NotebookSettings::from_env()?; // GMMSEG_PROFILE, GMMSEG_DATASETS, GMMSEG_RERUN, GMMSEG_TRAIN_STEPS',
    ),
    ("cached study", "settings.run(Study::Em)?"),
]


def notebook_settings():
    nb = json.loads((ROOT / "notebooks/01-em-vanilla-vs-sinkhorn.ipynb").read_text())
    first = "".join(nb["cells"][0]["source"])
    return "\n".join(line for line in first.splitlines() if not line.startswith(":dep"))


VERBOSE = False


def run_cell(kc, code, timeout):
    """Executes `code`, returns (seconds, error text or None); `--verbose` echoes the
    kernel's text output (with `:timing` in the settings, evcxr's phase times)."""
    start = time.monotonic()
    msg_id = kc.execute(code)
    error = None
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            return time.monotonic() - start, f"timed out after {timeout} s"
        try:
            msg = kc.get_iopub_msg(timeout=left)
        except Exception:  # queue.Empty
            continue
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["msg_type"]
        if kind == "error":
            error = f"{msg['content'].get('ename', '')}: {msg['content'].get('evalue', '')}"
        elif kind in ("execute_result", "display_data") and VERBOSE:
            text = msg["content"].get("data", {}).get("text/plain", "")
            print("    | " + text.rstrip().replace("\n", "\n    | ")[:2000], flush=True)
        elif kind == "stream":
            text = msg["content"].get("text", "")
            if VERBOSE:
                print("    | " + text.rstrip().replace("\n", "\n    | "), flush=True)
            if "panicked at" in text:
                error = text.strip().splitlines()[0]
        elif kind == "status" and msg["content"].get("execution_state") == "idle":
            return time.monotonic() - start, error


def measure(name, settings, repeat, timeout):
    env = dict(os.environ)
    env.setdefault("EVCXR_CONFIG_DIR", str(ROOT / "notebooks/.evcxr"))
    km = KernelManager(kernel_name="rust")
    km.start_kernel(cwd=str(ROOT / "notebooks"), env=env)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=120)
    rows = []
    try:
        first = settings.replace(";", "\n") + "\n" + DEP
        t, err = run_cell(kc, first, timeout)
        if err:
            raise SystemExit(f"{name}: the first cell failed: {err}")
        rows.append(("first cell (kernel start, compiles gmmseg)", [t]))
        print(f"  {name}: first cell {t:.1f} s", flush=True)
        for label, code in CELLS:
            times = []
            for _ in range(repeat):
                t, err = run_cell(kc, code, timeout)
                if err:
                    raise SystemExit(f"{name}: cell `{label}` failed: {err}")
                times.append(t)
            rows.append((label, times))
            print(f"  {name}: {label} {statistics.median(times):.2f} s", flush=True)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--config", action="append", default=[], metavar="NAME=SETTINGS")
    ap.add_argument("--json", type=pathlib.Path)
    ap.add_argument("--verbose", action="store_true", help="echo the kernel's text output")
    args = ap.parse_args()
    global VERBOSE
    VERBOSE = args.verbose
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    configs = []
    for c in args.config or [f"notebooks={notebook_settings()}"]:
        name, sep, settings = c.partition("=")
        if not sep or not name:
            ap.error(f"--config wants NAME=SETTINGS, got {c!r}")
        configs.append((name, settings.replace("\n", ";")))
    results = {}
    for name, settings in configs:
        print(f"measuring {name} ({settings or 'evcxr defaults'})", flush=True)
        results[name] = {"settings": settings, "cells": measure(name, settings, args.repeat, args.timeout)}
    print()
    print("| configuration | cell | median s | fastest s | runs |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        for label, times in r["cells"]:
            print(f"| {name} | {label} | {statistics.median(times):.2f} | {min(times):.2f} | {len(times)} |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
