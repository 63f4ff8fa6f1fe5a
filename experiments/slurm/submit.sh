#!/bin/bash
# Submits a runner sweep to Slurm as one job array of N tasks, in one of two ways:
#
#   experiments/slurm/submit.sh SPEC N [OUT]           static shards, then a merge job
#   experiments/slurm/submit.sh --queue SPEC N [OUT]   N workers draining one queue
#
# Static shards: task i trains the runs i, i+N, i+2N, … into OUT-shards/<i>/, and a merge job
# that starts when every shard has succeeded (--dependency=afterok) joins them into OUT.
# Queue: every task works on OUT itself and claims the next run nobody holds, so a task that
# drew short runs takes more of them; no merge is needed. Prints the job ids.
# OUT defaults to results/<spec name>.
# Set RUNNER to the runner binary if it is not on PATH (e.g. RUNNER=$PWD/target/release/runner),
# and pass extra sbatch options (partition, time, account) in SBATCH_ARGS.
set -euo pipefail
queue=false
if [ "${1:-}" = "--queue" ]; then
  queue=true
  shift
fi
if [ $# -lt 2 ]; then
  echo "usage: $0 [--queue] SPEC N [OUT]" >&2
  exit 2
fi
spec=$1
n=$2
out=${3:-results/$(basename "$spec" .toml)}
here=$(cd "$(dirname "$0")" && pwd)
if $queue; then
  # shellcheck disable=SC2086
  array=$(sbatch --parsable ${SBATCH_ARGS:-} --array=0-$((n - 1)) "$here/drain.sbatch" "$spec" "$out")
  array=${array%%;*}
  echo "array job $array ($n workers draining one queue) -> $out"
  exit 0
fi
# shellcheck disable=SC2086
array=$(sbatch --parsable ${SBATCH_ARGS:-} --array=0-$((n - 1)) "$here/sweep.sbatch" "$spec" "$out-shards")
array=${array%%;*}
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${SBATCH_ARGS:-} --dependency=afterok:"$array" "$here/merge.sbatch" "$out-shards" "$out")
merge=${merge%%;*}
echo "array job $array ($n shards) -> $out-shards/, merge job $merge -> $out"
