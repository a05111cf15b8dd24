#!/usr/bin/env python3
"""Fail (exit 1) if an executed notebook holds an error output or a Rust panic, or is
larger than the notebooks' size budget (1.5 MB: JupyterLab renders it quickly and git
diffs it reasonably).

nbconvert exits 0 when a cell panics (evcxr reports the panic as stderr text), so every
executed notebook is inspected here: any output of type "error", or any stream text that
contains "panicked at", fails the run.
"""
import json
import os
import sys

MAX_BYTES = 1_500_000
# Values that show themselves as HTML; their Debug text in an output means evcxr fell back
# from `evcxr_display` (it does when a cell's final expression is the kernel's first `?`).
SELF_DISPLAYING = ("StudyResults(", "IdeaComparison {", "Html(", "InlineSvg(", "InlinePng {")


def problems(path):
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        yield f"{path}: {size / 1e6:.2f} MB, over the {MAX_BYTES / 1e6:.1f} MB budget"
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    for i, cell in enumerate(nb.get("cells", [])):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                yield f"{path}: cell {i}: error output: {out.get('ename', '')}: {out.get('evalue', '')}"
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            plain = out.get("data", {}).get("text/plain", "")
            plain = "".join(plain) if isinstance(plain, list) else plain
            if plain.startswith(SELF_DISPLAYING):
                yield f"{path}: cell {i}: a self-displaying value printed as Debug text ({plain[:40]}…)"
            if "panicked at" in text:
                yield f"{path}: cell {i}: a Rust panic: {text.strip().splitlines()[0]}"


def main(paths):
    found = [p for path in paths for p in problems(path)]
    for p in found:
        print(p, file=sys.stderr)
    if not paths:
        print("check_nb.py: no notebooks given", file=sys.stderr)
        return 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
