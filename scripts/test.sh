#!/usr/bin/env bash
# The test command (README's second command; `.ci/run` calls it).
# 1. Every unit, integration and doc test, and each benchmark once in test mode (so that
#    benchmark code cannot rot); among them, README's claims tables against the committed
#    claims.csv files. The API docs build without a warning (broken links, ambiguous paths).
# 2. Every notebook, executed headless through the real evcxr kernel (set up if missing),
#    failing on any error output, panic or an executed notebook over 1.5 MB. The ablation
#    notebooks read the committed quick-profile results; the trainings a notebook runs
#    itself (quickstart, heat maps, your data, playground) take GMMSEG_TRAIN_STEPS steps
#    through the same code, so that they last seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets
cargo test --locked --doc
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
bash scripts/setup-notebooks.sh
GMMSEG_TRAIN_STEPS="${GMMSEG_TRAIN_STEPS:-20}" bash scripts/run-notebooks.sh --profile quick
