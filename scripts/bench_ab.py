#!/usr/bin/env python3
"""Two builds of runner's core side by side: the step time of examples/step_time from a build
before a change and one after, over scripts/bench.py's grid, point by point in one invocation:
in every round each grid point is timed by both builds one right after the other (which goes
first alternates), so that the two sides of a ratio see the same machine state, not states a
whole grid apart.

    git worktree add /tmp/before <commit>
    (cd /tmp/before && cargo build --release --example step_time)
    cargo build --release --example step_time
    python3 scripts/bench_ab.py /tmp/before/target/release/examples/step_time \\
        target/release/examples/step_time [--rounds 3] [--seconds 0.5]

Per point: each build's median step time over rounds (milliseconds; a round's figure is the
median of its steps), their ratio after / before, and the lowest and highest of the rounds' own
paired ratios (after / before within one round): where that range is wider than the difference
being judged, the machine moved too much for the comparison to decide it. The grid is H in
{32, 128, 512} x T in {50, 200, 1000} x B in {1, 32} in float32, and H = 512, B = 32,
T in {50, 200} in float64 (tanh RNN, full BPTT, clipping, SGD: bench.py's step). Each timing is
its own process (about a second of it the same-run matrix products step_time measures first).
A benchmark, not a test.
"""
import argparse
import json
import statistics
import subprocess

from bench import processor  # scripts/bench.py, beside this file

GRID = [("f32", [32, 128, 512], [50, 200, 1000], [1, 32]), ("f64", [512], [50, 200], [32])]


def steps(binary, dtype, H, T, B, seconds):
    cmd = [binary, "--dtype", dtype, "--H", str(H), "--T", str(T), "--B", str(B),
           "--seconds", str(seconds), "--json"]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return rows[1]["median_ms"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    print(f"processor: {processor()}")
    points = [(dtype, H, T, B) for dtype, Hs, Ts, Bs in GRID for H in Hs for T in Ts for B in Bs]
    times = {p: {"before": [], "after": []} for p in points}
    for r in range(args.rounds):
        for i, point in enumerate(points):
            order = ("before", "after") if (r + i) % 2 == 0 else ("after", "before")
            for side in order:
                times[point][side].append(steps(getattr(args, side), *point, args.seconds))
    print(f"{'dtype':<5} {'H':>4} {'T':>5} {'B':>3} {'before ms':>10} {'after ms':>10} "
          f"{'after/before':>13} {'rounds low-high':>16}")
    ratios = []
    for point in points:
        b, a = (statistics.median(times[point][side]) for side in ("before", "after"))
        paired = [x / y for x, y in zip(times[point]["after"], times[point]["before"])]
        ratios.append(a / b)
        dtype, H, T, B = point
        print(f"{dtype:<5} {H:>4} {T:>5} {B:>3} {b:>10.3f} {a:>10.3f} {a / b:>13.3f} "
              f"{min(paired):>10.3f}-{max(paired):.3f}")
    geo = statistics.geometric_mean(ratios)
    print(f"geometric mean after/before: {geo:.3f}; largest {max(ratios):.3f}; smallest {min(ratios):.3f}")


if __name__ == "__main__":
    main()
