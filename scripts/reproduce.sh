#!/usr/bin/env bash
# Retrains a whole profile after a code change, one command at a time, with a wall-time log:
#   1. per dataset, the tuning study (`gmmseg ablate tuning`); then, with the default results
#      folder, it stops when the choice differs from the presets in `src/experiments/tuned.rs`
#      (the test that compares them; update them and rebuild, then rerun with SKIP_TUNING=1);
#   2. per dataset, every study on its own, in the order of `ablate all` (a study's time is
#      then that of the models it was the first to need);
#   3. per dataset, `--cache-only` to assemble the tables, figures and claims (whose file names
#      the command that makes the rows, `gmmseg ablate all …`);
#   4. `gmmseg ablate prune`: the model records and trials of other code go (every record of
#      this code stays, so every row just written keeps its model);
#   5. with the default results folder, `gmmseg claims --update README.md`.
# Every step is cached: rerunning the script resumes where it stopped.
#
# Usage: scripts/reproduce.sh PROFILE [DATASET ...]   (default datasets: synthscapes digitscenes)
# Environment:
#   GMMSEG             the binary (default: target/release/gmmseg; build it first)
#   GMMSEG_RESULTS_DIR results root, as for gmmseg itself (default: data/results)
#   STUDIES            studies to run (default: all ten)
#   SKIP_TUNING=1      skip step 1 (folder datasets are never tuned)
#   RUNTIME_FORCE=1    retime the runtime study (`--force`) instead of reading its cache
#   NICE               niceness of the training commands (default 5)
# The log (one line per command: what, exit status, seconds) is <results>/<profile>/reproduce.log.
set -euo pipefail

profile=${1:?usage: scripts/reproduce.sh PROFILE [DATASET ...]}
shift
datasets=("$@")
[ ${#datasets[@]} -gt 0 ] || datasets=(synthscapes digitscenes)
bin=${GMMSEG:-target/release/gmmseg}
results=${GMMSEG_RESULTS_DIR:-data/results}
studies=${STUDIES:-main_results anomaly online_vs_posthoc gen_vs_disc calibration runtime flavours em components gap}
nice_level=${NICE:-5}
[ -x "$bin" ] || { echo "reproduce.sh: no gmmseg binary at $bin (cargo build --release, or set GMMSEG)" >&2; exit 2; }
mkdir -p "$results/$profile"
log="$results/$profile/reproduce.log"

# runs one gmmseg command, appending "what rc seconds" to the log; stops the script on failure
step() {
  local what=$1
  shift
  local start rc
  start=$(date +%s)
  set +e
  nice -n "$nice_level" "$bin" "$@"
  rc=$?
  set -e
  echo "$(date -u +%FT%TZ) $what rc=$rc $(($(date +%s) - start)) s" >>"$log"
  if [ $rc -ne 0 ]; then
    echo "reproduce.sh: '$what' failed (exit $rc); see $log" >&2
    exit $rc
  fi
}

# whether the presets this build carries (src/experiments/tuned.rs) are the committed choice:
# the test that checks exactly that; for another results folder there is nothing committed
presets_match() {
  if [ "$results" != data/results ]; then
    echo "reproduce.sh: results outside data/results: compare its tuning/chosen.json with src/experiments/tuned.rs yourself"
    return 0
  fi
  cargo test --quiet --test it -- --exact experiments_tuning::profile_presets_equal_the_committed_choice
}

tuned=0
for dataset in "${datasets[@]}"; do
  if [ -z "${SKIP_TUNING:-}" ] && [[ $dataset != folder:* ]]; then
    step "$profile tuning $dataset" ablate tuning --profile "$profile" --dataset "$dataset"
    tuned=1
  fi
done
# after every dataset: the choice averages over all the datasets tuned, as the presets do
if [ $tuned = 1 ] && ! presets_match; then
  echo "reproduce.sh: update src/experiments/tuned.rs, rebuild, then rerun with SKIP_TUNING=1" >&2
  exit 3
fi

for dataset in "${datasets[@]}"; do
  for study in $studies; do
    extra=()
    if [ "$study" = runtime ] && [ -n "${RUNTIME_FORCE:-}" ]; then
      extra=(--force)
    fi
    step "$profile $dataset $study" ablate "$study" --profile "$profile" --dataset "$dataset" "${extra[@]}"
  done
  step "$profile $dataset cache-only" ablate all --profile "$profile" --dataset "$dataset" --cache-only
done
step "$profile prune" ablate prune --profile "$profile"

if [ "$results" = data/results ] && [ -f README.md ]; then
  step "claims --update README.md" claims --update README.md
fi
echo "reproduce.sh: done; wall times in $log"
