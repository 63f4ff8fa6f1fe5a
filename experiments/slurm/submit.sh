#!/bin/bash
# Submits a runner sweep to Slurm as one job array of N shards, plus a merge job that starts
# when every shard has succeeded (--dependency=afterok). Prints both job ids.
#
#   experiments/slurm/submit.sh SPEC N [OUT]
#
# Shards go to OUT-shards/<i>/, the merged results to OUT (default results/<spec name>).
# Set RUNNER to the runner binary if it is not on PATH (e.g. RUNNER=$PWD/target/release/runner),
# and pass extra sbatch options (partition, time, account) in SBATCH_ARGS.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 SPEC N [OUT]" >&2
  exit 2
fi
spec=$1
n=$2
out=${3:-results/$(basename "$spec" .toml)}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck disable=SC2086
array=$(sbatch --parsable ${SBATCH_ARGS:-} --array=0-$((n - 1)) "$here/sweep.sbatch" "$spec" "$out-shards")
array=${array%%;*}
# shellcheck disable=SC2086
merge=$(sbatch --parsable ${SBATCH_ARGS:-} --dependency=afterok:"$array" "$here/merge.sbatch" "$out-shards" "$out")
merge=${merge%%;*}
echo "array job $array ($n shards) -> $out-shards/, merge job $merge -> $out"
