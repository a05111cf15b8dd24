#!/usr/bin/env bash
# The test command (README's second command; `.ci/run` calls it).
# 1. Every unit, integration and doc test, and each benchmark once in test mode (so that
#    benchmark code cannot rot); among them, README's claims tables against the committed
#    claims.csv files. The API docs build without a warning (broken links, ambiguous paths).
# 2. The notebooks' code cells as the examples they are cut from (examples/nb_*.rs), each
#    run on the tiny profile into a scratch results folder, and every committed notebook in
#    sync with its examples (scripts/make_notebooks.py --check).
# 3. Every notebook, executed headless through the real evcxr kernel (set up if missing),
#    failing on any error output, panic or an executed notebook over 1.5 MB. The ablation
#    notebooks read the committed quick-profile results; the trainings a notebook runs
#    itself (quickstart, heat maps, your data, playground) take GMMSEG_TRAIN_STEPS steps
#    through the same code, so that they last seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets
cargo test --locked --doc
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
python3 scripts/make_notebooks.py --check
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for example in examples/nb_*.rs; do
  name="$(basename "$example" .rs)"
  if ! GMMSEG_PROFILE=tiny GMMSEG_TRAIN_STEPS=2 GMMSEG_RESULTS_DIR="$scratch" \
      cargo run --locked -q --example "$name" > "$scratch/$name.log" 2>&1; then
    tail -n 40 "$scratch/$name.log"
    echo "error: example $name (the cells of its notebook) failed on the tiny profile" >&2
    exit 1
  fi
  echo "example $name: ok (tiny profile)"
done
bash scripts/setup-notebooks.sh
GMMSEG_TRAIN_STEPS="${GMMSEG_TRAIN_STEPS:-20}" bash scripts/run-notebooks.sh --profile quick
