#!/usr/bin/env bash
# The test command (README's second command; `.ci/run` calls it).
# 1. Every unit, integration and doc test, and each benchmark once in test mode (so that
#    benchmark code cannot rot).
#    The API docs build without a warning (broken links, ambiguous paths).
# 2. The quickstart notebook and one ablation notebook (01, Table 5a: it reads the committed
#    quick-profile results, so it adds a kernel start and a compile of the cells, not
#    training), executed headless through the real evcxr kernel (set up if missing),
#    failing on any error output or panic.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets
cargo test --locked --doc
RUSTDOCFLAGS="-D warnings" cargo doc --locked --no-deps
bash scripts/setup-notebooks.sh
bash scripts/run-notebooks.sh --profile quick notebooks/00-quickstart.ipynb \
  notebooks/01-em-vanilla-vs-sinkhorn.ipynb
