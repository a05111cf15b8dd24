#!/usr/bin/env bash
# Submits a study as a Slurm job array of N shards and, depending on it, the assembling step.
#
#   scripts/slurm/submit.sh STUDY PROFILE DATASET N [SEEDS]
#
# e.g. `scripts/slurm/submit.sh components full digitscenes 16 5` trains the 75 DigitScenes
# components models of the full profile on 16 array tasks, then writes its tables once.
# Prints the two job ids. Extra sbatch options: SBATCH_EXTRA="--partition=cpu --time=4:00:00".
set -euo pipefail
study=${1:?usage: submit.sh STUDY PROFILE DATASET N [SEEDS]}
profile=${2:?profile}
dataset=${3:?dataset}
n=${4:?number of array tasks}
seeds=${5:-}
cd "$(dirname "$0")/../.."
# shellcheck disable=SC2086
array=$(sbatch --parsable ${SBATCH_EXTRA:-} --array="1-$n" \
  scripts/slurm/ablate-array.sbatch "$study" "$profile" "$dataset" "$seeds")
# shellcheck disable=SC2086
assemble=$(sbatch --parsable ${SBATCH_EXTRA:-} --dependency="afterok:$array" \
  --job-name=gmmseg-assemble --output="gmmseg-assemble-%j.out" \
  --wrap "bash scripts/slurm/assemble.sh $study $profile $dataset $seeds")
echo "array job $array, assembling job $assemble"
