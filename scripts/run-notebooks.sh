#!/usr/bin/env bash
# Executes every notebook in notebooks/ headless through the evcxr kernel (one at a time),
# writes the executed copies to target/notebooks/, and fails on any error output or panic
# or an executed notebook over 1.5 MB (scripts/check_nb.py).
# Usage: scripts/run-notebooks.sh [--profile quick|full] [NOTEBOOK.ipynb ...]
# Needs the set-up done by scripts/notebooks.sh (the virtual environment and the kernel).
set -euo pipefail
cd "$(dirname "$0")/.."
profile=quick
notebooks=()
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) notebooks+=("$1"); shift ;;
  esac
done
case "$profile" in quick|full) ;; *) echo "error: --profile must be quick or full, got '$profile'" >&2; exit 2 ;; esac
if [ ${#notebooks[@]} -eq 0 ]; then
  shopt -s nullglob
  notebooks=(notebooks/*.ipynb)
fi
if [ ${#notebooks[@]} -eq 0 ]; then
  echo "error: no notebooks found in notebooks/" >&2
  exit 1
fi
venv=.venv
[ -x "$venv/bin/jupyter" ] || { echo "error: $venv is missing: run scripts/notebooks.sh first" >&2; exit 1; }
export GMMSEG_PROFILE="$profile"
# The full profile's results are committed; showing them must not start hours of training
# for whatever is missing (set GMMSEG_TRAIN_MISSING=1 to train it).
if [ "$profile" = full ]; then
  export GMMSEG_TRAIN_MISSING="${GMMSEG_TRAIN_MISSING:-0}"
fi
# Compiled dependencies are cached between kernel sessions (see notebooks/README).
export EVCXR_CONFIG_DIR="$PWD/notebooks/.evcxr"
out=target/notebooks
mkdir -p "$out"
for nb in "${notebooks[@]}"; do
  name=$(basename "$nb")
  echo "executing $nb (profile $profile)"
  start=$(date +%s)
  "$venv/bin/jupyter" nbconvert --to notebook --execute --ExecutePreprocessor.timeout=3600 \
    --ExecutePreprocessor.kernel_name=rust "$nb" --output-dir "$out" --output "$name" >/dev/null
  "$venv/bin/python" scripts/check_nb.py "$out/$name"
  # The executed copy lives in target/notebooks/: point its `:dep gmmseg = { path = ".." }`
  # at this checkout, so that re-running a cell of the copy in JupyterLab still finds the crate.
  "$venv/bin/python" - "$out/$name" "$PWD" <<'PY'
import json, sys
path, root = sys.argv[1], sys.argv[2]
with open(path, encoding="utf-8") as f:
    nb = json.load(f)
for cell in nb["cells"]:
    if cell["cell_type"] == "code":
        src = cell["source"]
        src = "".join(src) if isinstance(src, list) else src
        cell["source"] = src.replace('path = ".."', json.dumps(root).join(["path = ", ""]))
with open(path, "w", encoding="utf-8") as f:
    json.dump(nb, f, indent=1, ensure_ascii=False)
PY
  echo "  ok in $(( $(date +%s) - start )) s, $(( $(stat -c %s "$out/$name") / 1000 )) kB -> $out/$name"
done
