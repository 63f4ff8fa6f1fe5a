#!/usr/bin/env bash
# The same bytes on aarch64 as on x86-64: cross-compiles runner for aarch64-unknown-linux-gnu,
# runs it under qemu-user emulation (slow; for correctness, not speed) on a small spec covering
# every cell (the cells since 2015 too), both element types and the adding, copy and temporal-order tasks, and on
# experiments/ci.toml, and compares the tables byte for byte with the native build's
# (runs.csv without its `seconds` column), and a wider LSTM whose gradient sums take the packed
# product path. Installs Debian's gcc-aarch64-linux-gnu and
# qemu-user and the Rust target when missing (needs root for apt-get). About 7 minutes on
# 2 cores, most of it the cross build. Exit 0 when every table is identical.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v qemu-aarch64 >/dev/null || ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu qemu-user >/dev/null
fi
rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
cargo build --release --quiet --bin runner
cargo build --release --quiet --bin runner --target aarch64-unknown-linux-gnu
native=target/release/runner
arm=(qemu-aarch64 -L /usr/aarch64-linux-gnu target/aarch64-unknown-linux-gnu/release/runner)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
without_seconds() { # runs.csv without the seconds column
  awk -F, 'NR==1{for(i=1;i<=NF;i++) if($i=="seconds") c=i} {$c=""; print}' OFS=, "$1"
}
status=0
opts=(-q --set output.checkpoints=false --set output.charts=false)
# Runs spec NAME natively and under emulation and compares the listed tables byte for byte,
# and runs.csv without its seconds column.
compare() {
  local name=$1; shift
  "$native" "$work/$name.toml" "${opts[@]}" --out "$work/x86-$name"
  "${arm[@]}" "$work/$name.toml" "${opts[@]}" --out "$work/arm-$name"
  for f in "$@"; do
    if cmp -s "$work/x86-$name/$f" "$work/arm-$name/$f"; then echo "$name: $f identical"; else echo "$name: $f DIFFERS"; status=1; fi
  done
  if [ "$(without_seconds "$work/x86-$name/runs.csv")" = "$(without_seconds "$work/arm-$name/runs.csv")" ]; then
    echo "$name: runs.csv identical (without seconds)"
  else
    echo "$name: runs.csv DIFFERS"; status=1
  fi
}
for task in 'kind = "adding"
seq_len = 12' 'kind = "copy"
seq_len = 5' 'kind = "temporal_order"
seq_len = 12'; do
  name=$(echo "$task" | head -1 | cut -d'"' -f2)
  cat > "$work/$name.toml" <<SPEC
name = "$name"
[task]
$task
eval_size = 8
[model]
hidden = 7
[train]
steps = 6
batch = 5
lr = 0.05
clip = 1.0
eval_every = 3
[probe]
every = 3
batch = 3
spectrum = 3
[[variant]]
label = "tanh"
model.activation = "tanh"
[[variant]]
label = "sigmoid"
model.activation = "sigmoid"
[[variant]]
label = "relu"
model.activation = "relu"
[[variant]]
label = "identity"
model.activation = "identity"
[[variant]]
label = "lstm"
model.cell = "lstm"
[[variant]]
label = "gru"
model.cell = "gru"
[[variant]]
label = "indrnn"
model.cell = "indrnn"
model.layers = 2
[[variant]]
label = "exprnn"
model.cell = "exprnn"
model.init = "orthogonal"
train.lr_recurrent = 0.01
[[variant]]
label = "cornn"
model.cell = "cornn"
[[variant]]
label = "antisymmetric"
model.cell = "antisymmetric"
model.epsilon = 0.5
[sweep]
"model.dtype" = ["f64", "f32"]
SPEC
  compare "$name" curves.csv grad_decay.csv spectrum.csv
done
# A wider network, so that the gradient sums take the packed product path (m = G·H >= 8 rows,
# n = H >= 64 columns), in both element types.
cat > "$work/wide.toml" <<SPEC
name = "wide"
[task]
kind = "adding"
seq_len = 12
eval_size = 4
[model]
hidden = 70
cell = "lstm"
[train]
steps = 3
batch = 5
eval_every = 3
[probe]
every = 3
batch = 2
[sweep]
"model.dtype" = ["f64", "f32"]
SPEC
compare wide curves.csv grad_decay.csv
echo "experiments/ci.toml on aarch64 against tests/baselines/ci.csv, --rtol 0 --atol 0:"
"${arm[@]}" check experiments/ci.toml --baseline tests/baselines/ci.csv --out "$work/ci" --quiet --rtol 0 --atol 0 | tail -n 1 || status=1
exit $status
