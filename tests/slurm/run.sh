#!/bin/bash
# Integration test on a real Slurm: installs Debian's slurmctld, slurmd and munge when missing,
# writes a single-node configuration for this machine, starts the daemons, submits a sweep as a
# job array plus a dependent merge job (experiments/slurm/submit.sh), waits, compares the merged
# results with a local unsharded run; then submits it as a job array of workers draining one
# queue (submit.sh --queue), waits, compares again; and stops the daemons it started. Needs root.
#
#   tests/slurm/run.sh            (from the repository root; builds the release binary)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
[ "$(id -u)" -eq 0 ] || { echo "tests/slurm/run.sh needs root (it installs and starts daemons)" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null; then
  echo "== installing slurmctld, slurmd, munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

cargo build --release --quiet
export RUNNER=$root/target/release/runner

work=$(mktemp -d /tmp/runner-slurm.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# munge: a key of our own and a daemon of our own, on a private socket.
mkdir -p "$work/munge"
dd if=/dev/urandom bs=1 count=1024 of="$work/munge/munge.key" status=none
chmod 400 "$work/munge/munge.key"
munged --force --key-file="$work/munge/munge.key" --socket="$work/munge/munge.socket" \
  --pid-file="$work/munge/munged.pid" --log-file="$work/munge/munged.log" --seed-file="$work/munge/seed"
pids+=("$(cat "$work/munge/munged.pid")")

host=$(hostname -s)
mkdir -p "$work/state" "$work/spool"
cat > "$work/slurm.conf" <<CONF
ClusterName=runnerci
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/munge.socket
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
SlurmctldPort=6917
SlurmdPort=6918
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
NodeName=$host CPUs=$(nproc) RealMemory=1000 State=UNKNOWN
PartitionName=main Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$work/slurm.conf

echo "== starting slurmctld and slurmd"
slurmctld -f "$SLURM_CONF"
slurmd -f "$SLURM_CONF"
for _ in $(seq 50); do [ -s "$work/slurmctld.pid" ] && [ -s "$work/slurmd.pid" ] && break; sleep 0.2; done
pids+=("$(cat "$work/slurmd.pid")" "$(cat "$work/slurmctld.pid")")
for _ in $(seq 100); do
  state=$(sinfo -h -N -o %t 2>/dev/null | head -1)
  [ "$state" = "idle" ] && break
  sleep 0.3
done
[ "$state" = "idle" ] || { echo "node did not become idle (state '$state')"; cat "$work/slurmctld.log" "$work/slurmd.log"; exit 1; }

# SPEC and TASKS choose the sweep and the array size (CI: experiments/ci.toml, 3); with
# SPEC=experiments/remedies.toml TASKS=4 the printed times compare static shards with a queue.
spec=${SPEC:-experiments/ci.toml}
tasks=${TASKS:-3}
echo "== local run of $spec"
"$RUNNER" "$spec" --out "$work/local" --quiet

echo "== submitting $spec as a $tasks-shard job array and a merge job"
start=$(date +%s%N)
cd "$work"
ids=$("$root/experiments/slurm/submit.sh" "$root/$spec" "$tasks" "$work/cluster")
echo "$ids"
merge_id=${ids##* merge job }
merge_id=${merge_id%% *}
for _ in $(seq 600); do
  state=$(scontrol show job "$merge_id" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 || true)
  case "$state" in
    COMPLETED) break ;;
    FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) echo "merge job $state"; cat "$work"/slurm-*.out; exit 1 ;;
  esac
  sleep 0.5
done
[ "$state" = "COMPLETED" ] || { echo "merge job did not complete (state '$state')"; cat "$work"/slurm-*.out || true; exit 1; }
end=$(date +%s%N)
cd "$root"
echo "== cluster sweep and merge finished in $(( (end - start) / 1000000 )) ms"

# compare DIR: the tables (seconds aside) and checkpoints of DIR are the local run's.
compare() {
python3 - "$work/local" "$1" <<'PY'
import csv, sys, pathlib
a, b = map(pathlib.Path, sys.argv[1:])
def rows(d, f):
    r = list(csv.reader(open(d / f)))
    if f == "runs.csv":
        i = r[0].index("seconds")
        for row in r:
            row[i] = ""
    return r
for f in ["runs.csv", "curves.csv", "grad_decay.csv", "summary.csv"]:
    if rows(a, f) != rows(b, f):
        sys.exit(f"{f} differs between the local run and {b}")
ckpts = sorted(p.relative_to(a) for p in (a / "checkpoints").rglob("*.safetensors"))
for c in ckpts:
    if (a / c).read_bytes() != (b / c).read_bytes():
        sys.exit(f"{c} differs between the local run and {b}")
n = len(rows(a, "runs.csv")) - 1
print(f"identical: runs.csv ({n} runs, seconds aside), curves.csv, grad_decay.csv, summary.csv, {len(ckpts)} checkpoints")
PY
}
echo "== comparing the merged results with the local run"
compare "$work/cluster"

echo "== submitting $spec as a job array of $tasks workers draining one queue"
start=$(date +%s%N)
cd "$work"
ids=$("$root/experiments/slurm/submit.sh" --queue "$root/$spec" "$tasks" "$work/queue")
echo "$ids"
array_id=${ids#array job }
array_id=${array_id%% *}
for _ in $(seq 600); do
  states=$(scontrol show job "$array_id" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | cut -d= -f2 | sort -u | tr '\n' ' ' || true)
  case "$states" in
    *PENDING*|*RUNNING*|*CONFIGURING*|*COMPLETING*|"") sleep 0.5 ;;
    "COMPLETED ") break ;;
    *) echo "queue workers ended as: $states"; cat "$work"/slurm-runner-drain-*.out; exit 1 ;;
  esac
done
[ "$states" = "COMPLETED " ] || { echo "queue workers did not complete (states '$states')"; cat "$work"/slurm-*.out || true; exit 1; }
end=$(date +%s%N)
cd "$root"
echo "== the queue drained in $(( (end - start) / 1000000 )) ms; each worker's closing line:"
cat "$work"/slurm-runner-drain-*.out
compare "$work/queue"
echo "Slurm test passed"
