#!/usr/bin/env python3
"""Two builds of runner's core side by side: the step time of examples/step_time from a build
before a change and one after, over scripts/bench.py's grid, in alternating rounds in one
invocation (so that both see the same machine state), and the ratio after / before.

    git worktree add /tmp/before <commit>
    (cd /tmp/before && cargo build --release --example step_time)
    cargo build --release --example step_time
    python3 scripts/bench_ab.py /tmp/before/target/release/examples/step_time \\
        target/release/examples/step_time [--rounds 3] [--seconds 0.5]

Each figure is the median over rounds of the build's median step time (milliseconds); the grid
is H in {32, 128, 512} x T in {50, 200, 1000} x B in {1, 32} in float32, and H = 512, B = 32,
T in {50, 200} in float64 (tanh RNN, full BPTT, clipping, SGD: bench.py's step). A benchmark, not
a test.
"""
import argparse
import json
import statistics
import subprocess

from bench import processor  # scripts/bench.py, beside this file

GRID = [("f32", [32, 128, 512], [50, 200, 1000], [1, 32]), ("f64", [512], [50, 200], [32])]


def steps(binary, dtype, H, T, B, seconds):
    cmd = [binary, "--dtype", dtype, "--H", ",".join(map(str, H)), "--T", ",".join(map(str, T)),
           "--B", ",".join(map(str, B)), "--seconds", str(seconds), "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return {(dtype, r["H"], r["T"], r["B"]): r["median_ms"] for r in rows[1:]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    print(f"processor: {processor()}")
    times = {"before": {}, "after": {}}
    for r in range(args.rounds):
        order = ("before", "after") if r % 2 == 0 else ("after", "before")
        for side in order:
            binary = getattr(args, side)
            for dtype, H, T, B in GRID:
                for key, ms in steps(binary, dtype, H, T, B, args.seconds).items():
                    times[side].setdefault(key, []).append(ms)
    print(f"{'dtype':<5} {'H':>4} {'T':>5} {'B':>3} {'before ms':>10} {'after ms':>10} {'after/before':>13}")
    ratios = []
    for key in sorted(times["before"], key=lambda k: (k[0] != "f32", k[1], k[2], k[3])):
        b, a = statistics.median(times["before"][key]), statistics.median(times["after"][key])
        ratios.append(a / b)
        print(f"{key[0]:<5} {key[1]:>4} {key[2]:>5} {key[3]:>3} {b:>10.3f} {a:>10.3f} {a / b:>13.3f}")
    geo = statistics.geometric_mean(ratios)
    print(f"geometric mean after/before: {geo:.3f}; largest {max(ratios):.3f}; smallest {min(ratios):.3f}")


if __name__ == "__main__":
    main()
