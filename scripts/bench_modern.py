#!/usr/bin/env python3
"""The benchmark of the cells built against vanishing gradients since 2015 (IndRNN, expRNN,
coRNN, AntisymmetricRNN): a training step (forward, full BPTT, clipping at 1.0, SGD at 1e-3; the
expRNN's P at 1e-4, the IndRNN's |u| clipped after the update) at H = 128, T = 200, B = 32, f32,
one thread, runner (examples/step_time) against scripts/torch_cells.py's PyTorch layers
(scripts/bench_reference.py, autograd, a Python loop over time as in the papers' code), in
alternating rounds so that a slow phase of the machine hits both. Prints each round's medians,
then per cell the median over rounds of PyTorch / runner. Then the expRNN's matrix exponential
and the adjoint of its derivative (examples/expm_time at n = 128, one thread, ‖A‖₁ = 3: henaff's
A, whose entries are at most π, keeps the degree-13 Padé approximant without squaring) against
the expRNN's whole step, in the same rounds: their share of a step.

    python3 scripts/bench_modern.py [--rounds 3] [--cells indrnn exprnn cornn antisymmetric] [--seconds 2]

Needs release builds of the examples (cargo build --release --example step_time --example
expm_time) and torch.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHAPE = ["--H", "128", "--T", "200", "--B", "32"]
EXAMPLES = Path(os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))) / "release" / "examples"


def runner(cell, seconds):
    """Median ms of runner's step."""
    out = subprocess.run([str(EXAMPLES / "step_time"), "--cell", cell, "--dtype", "f32", *SHAPE,
                          "--seconds", str(seconds), "--threads", "1", "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])["median_ms"]


def torch(cell, seconds):
    """Median ms of the PyTorch reference's step."""
    out = subprocess.run([sys.executable, str(ROOT / "scripts/bench_reference.py"), "steps", "torch",
                          "--dtype", "f32", "--cell", cell, *SHAPE, "--seconds", str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])["median_ms"]


def expm_ms(seconds):
    """Median ms of Expm::set + Expm::adjoint at n = 128, one thread, ‖A‖₁ = 3."""
    out = subprocess.run([str(EXAMPLES / "expm_time"), "--n", "128", "--threads", "1", "--seconds", str(seconds)],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        # n, threads, ‖A‖₁, m, s, set, adjoint, sum, new, product, with the 10th percentiles in
        # (…) and CPU times in […] left out
        f = re.sub(r"\([^)]*\)|\[[^]]*\]", " ", line).split()
        if len(f) >= 8 and f[:3] == ["128", "1", "3.00"]:
            return float(f[7]) / 1e3  # the `sum` column, µs
    raise SystemExit(f"no n = 128, ‖A‖₁ = 3 row in expm_time's output:\n{out}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cells", nargs="+", default=["indrnn", "exprnn", "cornn", "antisymmetric"])
    ap.add_argument("--seconds", type=float, default=2.0)
    args = ap.parse_args()
    ratios = {c: [] for c in args.cells}
    shares = []
    for i in range(args.rounds):
        for cell in args.cells:
            ours, theirs = runner(cell, args.seconds), torch(cell, args.seconds)
            ratios[cell].append(theirs / ours)
            line = f"round {i + 1} {cell}: runner {ours:.2f} ms, torch {theirs:.2f} ms"
            if cell == "exprnn":
                e = expm_ms(args.seconds)
                shares.append(e / ours)
                line += f"; exp(A) + adjoint {e:.2f} ms = {100 * e / ours:.1f} % of runner's step"
            print(line, flush=True)
    for cell, r in ratios.items():
        print(f"{cell}: torch / runner = {statistics.median(r):.2f} (rounds {', '.join(f'{x:.2f}' for x in r)})")
    if shares:
        print(f"exprnn: exp(A) + adjoint = {100 * statistics.median(shares):.1f} % of a step "
              f"(rounds {', '.join(f'{100 * x:.1f}' for x in shares)})")


if __name__ == "__main__":
    main()
