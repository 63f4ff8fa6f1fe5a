#!/usr/bin/env python3
"""Workers sharing one results folder against one process with as many threads: the wall time
of a sweep trained by one `runner SPEC -j N` process, and by N `runner SPEC -j 1` processes
started together on the same folder, in alternating rounds (which goes first alternates), so
that both sides of the ratio see the same machine state.

    cargo build --release
    python3 scripts/bench_workers.py experiments/remedies.toml [--workers 2] [--rounds 2]

Prints each round's two wall times (seconds, whole processes, charts included) and the median
ratio workers / one process, with the processor. Checks that both folders hold the same tables
(but `seconds`). A benchmark, not a test.
"""
import argparse
import csv
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench import processor  # scripts/bench.py, beside this file

RUNNER = Path(__file__).resolve().parent.parent / "target" / "release" / "runner"


def one_process(spec, out, n):
    t0 = time.perf_counter()
    subprocess.run([RUNNER, spec, "--out", out, "-q", "-j", str(n)], check=True, capture_output=True)
    return time.perf_counter() - t0


def workers(spec, out, n):
    t0 = time.perf_counter()
    procs = [subprocess.Popen([RUNNER, spec, "--out", out, "-q", "-j", "1"], stdout=subprocess.PIPE)
             for _ in range(n)]
    lines = [p.communicate()[0].decode().strip() for p in procs]
    elapsed = time.perf_counter() - t0
    if any(p.returncode != 0 for p in procs):
        raise SystemExit(f"a worker failed: {lines}")
    return elapsed, lines


def tables(d):
    out = {}
    for f in ["runs.csv", "curves.csv", "grad_decay.csv", "summary.csv"]:
        rows = list(csv.reader(open(Path(d) / f)))
        if f == "runs.csv":
            i = rows[0].index("seconds")
            for r in rows:
                r[i] = ""
        out[f] = rows
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("spec")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    print(f"{a.spec}: {a.workers} workers of -j 1 against one process of -j {a.workers}; {processor()}")
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            single, shared = f"{tmp}/single{r}", f"{tmp}/shared{r}"
            if r % 2 == 0:
                t1 = one_process(a.spec, single, a.workers)
                tw, lines = workers(a.spec, shared, a.workers)
            else:
                tw, lines = workers(a.spec, shared, a.workers)
                t1 = one_process(a.spec, single, a.workers)
            if tables(single) != tables(shared):
                raise SystemExit("the workers' tables differ from the single process's")
            ratios.append(tw / t1)
            print(f"round {r + 1}: one process {t1:.1f} s, {a.workers} workers {tw:.1f} s, ratio {tw / t1:.3f}")
            for line in lines:
                print(f"  {line}")
    print(f"median ratio workers / one process: {statistics.median(ratios):.3f} "
          f"(rounds {min(ratios):.3f} … {max(ratios):.3f}); tables identical")


if __name__ == "__main__":
    main()
