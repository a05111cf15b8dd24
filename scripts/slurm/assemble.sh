#!/usr/bin/env bash
# After the array of scripts/slurm/ablate-array.sbatch: summaries, figures and claims of the
# cached rows, training nothing (`--cache-only`); exits non-zero if any run is missing.
#
#   scripts/slurm/assemble.sh STUDY|all PROFILE DATASET [SEEDS]
set -euo pipefail
study=${1:?usage: assemble.sh STUDY|all PROFILE DATASET [SEEDS]}
profile=${2:?profile}
dataset=${3:?dataset}
seeds=${4:-}
cd "${SLURM_SUBMIT_DIR:-$(dirname "$0")/../..}"
bin=${GMMSEG_BIN:-target/release/gmmseg}
args=(ablate "$study" --profile "$profile" --dataset "$dataset" --cache-only)
if [ -n "$seeds" ]; then args+=(--seeds "$seeds"); fi
out=$("$bin" "${args[@]}")
echo "$out"
if grep -q "not cached and skipped" <<<"$out"; then
  echo "assemble.sh: some runs are missing from the cache (see above)" >&2
  exit 1
fi
