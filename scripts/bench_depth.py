#!/usr/bin/env python3
"""The stacked-layer benchmark: a training step (forward, full BPTT, clipping, SGD) of 1 and 2
layers at H = 128, T = 200, B = 32, f32, one thread, runner (examples/step_time) against
PyTorch's nn.RNN/LSTM/GRU(num_layers=N) (scripts/bench_reference.py), measured in alternating
rounds so that a slow phase of the machine hits both. Prints each round's medians, then per cell
the median over rounds of: runner 2 layers / runner 1 layer, and PyTorch 2 layers / runner 2
layers. Both on the adding problem (D = 2 inputs, so the second layer, reading H = 128, has
three times the first's multiply-adds); with `--input D` also runner's ratio on random inputs
of size D (D = 128: every layer reads H-wide inputs), and without torch with `--no-torch`.

    python3 scripts/bench_depth.py [--rounds 3] [--cells rnn lstm gru] [--seconds 2] [--input 128] [--no-torch]

Needs a release build of the example (cargo build --release --example step_time) and torch.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPE = ["--H", "128", "--T", "200", "--B", "32"]


def runner(cell, seconds, inputs=None):
    """{layers: median ms} of runner's step for 1 and 2 layers (on `inputs`-wide random inputs)."""
    exe = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")) + "/release/examples/step_time"
    extra = ["--input", str(inputs)] if inputs else []
    out = subprocess.run([exe, "--cell", cell, "--dtype", "f32", "--layers", "1,2", *SHAPE, *extra,
                          "--seconds", str(seconds), "--threads", "1", "--json"],
                         capture_output=True, text=True, check=True).stdout
    rows = [json.loads(line) for line in out.splitlines()][1:]
    return {r["layers"]: r["median_ms"] for r in rows}


def torch(cell, layers, seconds):
    """Median ms of PyTorch's step."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts/bench_reference.py"), "steps", "torch",
                          "--dtype", "f32", "--layers", str(layers), "--cell", cell, *SHAPE,
                          "--seconds", str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])["median_ms"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--input", type=int, default=None)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args()
    rounds = lambda xs: ", ".join(f"{x:.2f}" for x in xs)
    for cell in args.cells:
        depth, speedup, wide = [], [], []
        for i in range(args.rounds):
            ours = runner(cell, args.seconds)
            depth.append(ours[2] / ours[1])
            line = f"{cell} round {i + 1}: runner 1 layer {ours[1]:.2f} ms, 2 layers {ours[2]:.2f} ms"
            if args.input:
                w = runner(cell, args.seconds, args.input)
                wide.append(w[2] / w[1])
                line += f"; with {args.input} inputs {w[1]:.2f} ms, {w[2]:.2f} ms"
            if not args.no_torch:
                theirs = {n: torch(cell, n, args.seconds) for n in (1, 2)}
                speedup.append(theirs[2] / ours[2])
                line += f"; torch 1 layer {theirs[1]:.2f} ms, 2 layers {theirs[2]:.2f} ms"
            print(line, flush=True)
        summary = f"{cell}: runner 2 layers / 1 layer = {statistics.median(depth):.2f} (rounds {rounds(depth)})"
        if wide:
            summary += f"; with {args.input} inputs {statistics.median(wide):.2f} (rounds {rounds(wide)})"
        if speedup:
            summary += f"; torch 2 layers / runner 2 layers = {statistics.median(speedup):.2f} (rounds {rounds(speedup)})"
        print(summary, flush=True)


if __name__ == "__main__":
    main()
