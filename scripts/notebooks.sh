#!/usr/bin/env bash
# The main job (README's first command): sets up Jupyter and the Rust (evcxr) kernel, then
# executes every notebook headless on the built-in data in the quick profile.
# Idempotent: a second run skips what is already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-notebooks.sh
bash scripts/run-notebooks.sh --profile quick
echo ""
echo "Executed notebooks are in target/notebooks/. To open them in JupyterLab:"
echo "  .venv/bin/jupyter lab target/notebooks"
