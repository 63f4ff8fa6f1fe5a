#!/usr/bin/env python3
"""runner's speed and memory, measured side by side with PyTorch and NumPy, in one invocation.

What it measures (all on this machine, one thread each unless said otherwise):

1. One training step over the grid H ∈ {32, 128, 512} × T ∈ {50, 200, 1000} × B ∈ {1, 32}, float32:
   runner's core (examples/step_time), PyTorch (nn.RNN + autograd) and a NumPy BPTT loop
   (scripts/bench_reference.py), the three run one after the other, in `--rounds` alternating
   rounds; each figure is the median over rounds of each side's median step time. GFLOP/s use
   6·B·T·(H² + H·D + H·O), D = 2, O = 1, and are set against a 512³ matrix product measured by
   each side in the same round (runner: ndarray's product, the one its core uses outside the
   time loop).
2. The same at H = 512, B = 32 in float64 (runner only), against runner's float64 product.
3. The 12-run sweep of benches/sweep.toml, whole process against whole process: runner with
   --jobs 1 and --jobs 2, PyTorch's process training the same runs on one thread.
4. Peak resident memory of a runner process (getrusage of the child) for T ∈ {200, 2000}, full and
   truncated BPTT, against what BPTT must store: the states h_0 … h_T and one (T, B, H) cache,
   plus the parameters.
5. Allocations per training step at T = 50 and T = 1000 (a counting allocator in step_time).

Then it checks each goal of the speed issue and prints PASS or FAIL with the measured figure.
A benchmark, not a test: nothing here runs in CI.

    python3 -m venv .bench && .bench/bin/pip install torch numpy
    .bench/bin/python scripts/bench.py                  # about 12 minutes
    .bench/bin/python scripts/bench.py --rounds 1 --seconds 0.2 --H 32 128   # a quick look
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STEP_TIME = ROOT / "target" / "release" / "examples" / "step_time"
RUNNER = ROOT / "target" / "release" / "runner"
REFERENCE = ROOT / "scripts" / "bench_reference.py"
D, O = 2, 1


def flops(H, T, B):
    return 6 * B * T * (H * H + H * D + H * O)


def lines(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def runner_steps(dtype, H, T, B, seconds):
    rows = lines([str(STEP_TIME), "--dtype", dtype, "--H", ",".join(map(str, H)), "--T", ",".join(map(str, T)),
                  "--B", ",".join(map(str, B)), "--seconds", str(seconds), "--json"])
    return rows[0]["matmul_gflops"], {(r["H"], r["T"], r["B"]): r for r in rows[1:]}


def reference_steps(impl, dtype, H, T, B, seconds):
    rows = lines([sys.executable, str(REFERENCE), "steps", impl, "--dtype", dtype, "--H", *map(str, H),
                  "--T", *map(str, T), "--B", *map(str, B), "--seconds", str(seconds)])
    return rows[0], {(r["H"], r["T"], r["B"]): r for r in rows[1:]}


def timed_process(cmd):
    """Wall seconds and peak resident MiB of one child process. The peak is the child's own VmHWM
    (/proc/<pid>/status), polled every 2 ms until it exits: getrusage would report at least this
    Python process's size, which a child inherits at fork."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    status = Path(f"/proc/{proc.pid}/status")
    while proc.poll() is None:
        try:
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.002)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed: {proc.stderr.read().decode()}")
    return wall, peak_kb / 1024


def machine(versions):
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "SSE2"
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{model}, {os.cpu_count()} cores ({simd}), Linux {platform.release()}; {rustc}; {versions}"


def med(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--H", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--T", type=int, nargs="+", default=[50, 200, 1000])
    ap.add_argument("--B", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5, help="timed seconds per configuration and side")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already in target/release")
    args = ap.parse_args()
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "runner", "--example", "step_time"],
                       check=True, cwd=ROOT)
    grid = [(h, t, b) for h in args.H for t in args.T for b in args.B]
    big = [(512, t, 32) for t in args.T] if 512 in args.H and 32 in args.B else []

    # 1, 2 and 3, alternating within each round.
    ours, torch_, numpy_ = ({c: [] for c in grid} for _ in range(3))
    ours64 = {c: [] for c in big}
    mm = {"runner f32": [], "runner f64": [], "PyTorch f32": [], "NumPy f32": []}
    allocs = {}
    sweep = {"runner, 1 job": [], "runner, 2 jobs": [], "PyTorch, 1 thread": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            m, rows = runner_steps("f32", args.H, args.T, args.B, args.seconds)
            mm["runner f32"].append(m)
            for c in grid:
                ours[c].append(rows[c]["median_ms"])
                allocs[c] = rows[c]["allocs_per_step"]
            head, rows = reference_steps("torch", "f32", args.H, args.T, args.B, args.seconds)
            mm["PyTorch f32"].append(head["matmul_gflops"])
            versions = f"PyTorch {head['version']}"
            for c in grid:
                torch_[c].append(rows[c]["median_ms"])
            head, rows = reference_steps("numpy", "f32", args.H, args.T, args.B, args.seconds)
            mm["NumPy f32"].append(head["matmul_gflops"])
            versions += f", NumPy {head['version']}"
            for c in grid:
                numpy_[c].append(rows[c]["median_ms"])
            if big:
                m, rows = runner_steps("f64", [512], args.T, [32], args.seconds)
                mm["runner f64"].append(m)
                for c in big:
                    ours64[c].append(rows[c]["median_ms"])
            out = Path(tmp) / "sweep"
            for jobs in (1, 2):
                wall, _ = timed_process([RUNNER, ROOT / "benches" / "sweep.toml", "--jobs", str(jobs), "--out", out,
                                         "--force", "--quiet"])
                sweep[f"runner, {jobs} job{'s' if jobs > 1 else ''}"].append(wall)
            wall, _ = timed_process([sys.executable, REFERENCE, "sweep"])
            sweep["PyTorch, 1 thread"].append(wall)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

        # 4: memory, once per configuration (peak RSS varies little).
        memory = []
        spec = Path(tmp) / "memory.toml"
        spec.write_text('name = "memory"\n[task]\nkind = "adding"\neval_size = 64\n[model]\nhidden = 256\n'
                        '[train]\nsteps = 2\nbatch = 64\neval_every = 1\n[probe]\nevery = 1\nbatch = 64\n'
                        '[output]\ncheckpoints = false\ncharts = false\n')
        H, B = 256, 64
        for T in (200, 2000):
            for dtype, size in (("f64", 8), ("f32", 4)):
                for bptt in ("full", 50):
                    value = '"full"' if bptt == "full" else str(bptt)
                    wall, rss = timed_process([RUNNER, spec, "--set", f"task.seq_len={T}", "--set", f"model.dtype={dtype}",
                                               "--set", f"train.bptt={value}", "--out", Path(tmp) / "mem", "--force",
                                               "--quiet", "--jobs", "1"])
                    params = H * D + H * H + 2 * H + O * H + O
                    store = ((T + 1) * B * H + T * B * H + params) * size / 2**20
                    memory.append((T, dtype, bptt, rss, store))

    # Report.
    print(f"# runner performance, {time.strftime('%Y-%m-%d')}\n\nMachine: {machine(versions)}.\n")
    print(f"## One training step, float32, one thread ({args.rounds} alternating rounds, medians)\n")
    print("Same-run 512³ matrix product: " + ", ".join(f"{k} {med(v):.1f} GFLOP/s" for k, v in mm.items() if v) + ".\n")
    print("| H | T | B | runner ms | PyTorch ms | NumPy ms | PyTorch ÷ runner | NumPy ÷ runner "
          "| runner GFLOP/s (% of its matmul) | PyTorch GFLOP/s | NumPy GFLOP/s | runner allocations/step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    mo = med(mm["runner f32"])
    for c in grid:
        a, p, n = med(ours[c]), med(torch_[c]), med(numpy_[c])
        f = flops(*c) / 1e6
        print(f"| {c[0]} | {c[1]} | {c[2]} | {a:.3f} | {p:.3f} | {n:.3f} | {p / a:.1f} | {n / a:.1f} "
              f"| {f / a:.1f} ({100 * f / a / mo:.0f} %) | {f / p:.1f} | {f / n:.1f} | {allocs[c]:.0f} |")
    if big:
        m64 = med(mm["runner f64"])
        print(f"\n## H = 512, B = 32 in float64 (runner; its float64 matmul {m64:.1f} GFLOP/s)\n")
        print("| T | runner ms | GFLOP/s | % of matmul |\n|---|---|---|---|")
        for c in big:
            a = med(ours64[c])
            print(f"| {c[1]} | {a:.1f} | {flops(*c) / 1e6 / a:.1f} | {100 * flops(*c) / 1e6 / a / m64:.0f} % |")
    print("\n## The 12-run sweep (benches/sweep.toml), whole process, wall seconds\n")
    print("| | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " | median |")
    print("|---|" + "---|" * (args.rounds + 1))
    for k, v in sweep.items():
        print(f"| {k} | " + " | ".join(f"{x:.2f}" for x in v) + f" | {med(v):.2f} |")
    s1, s2, st = med(sweep["runner, 1 job"]), med(sweep["runner, 2 jobs"]), med(sweep["PyTorch, 1 thread"])
    print(f"\nPyTorch ÷ runner (1 job): {st / s1:.1f}; runner 1 job ÷ 2 jobs: {s1 / s2:.2f} "
          f"(per round: {', '.join(f'{a / b:.2f}' for a, b in zip(sweep['runner, 1 job'], sweep['runner, 2 jobs']))}).")
    print("\n## Peak resident memory of a runner process (tanh, H = 256, B = 64, 2 steps, evaluation and probe "
          "sets of 64)\n")
    print("| T | dtype | BPTT | peak RSS MiB | h + cache + parameters MiB | ratio |\n|---|---|---|---|---|---|")
    for T, dtype, bptt, rss, store in memory:
        print(f"| {T} | {dtype} | {bptt} | {rss:.1f} | {store:.1f} | {rss / store:.2f} |")

    # Goals.
    print("\n## Goals\n")
    goals = []

    def goal(text, ok, figure):
        goals.append(ok)
        print(f"- {'PASS' if ok else 'FAIL'}: {text} — {figure}")

    def ratios(pred, ref):
        return [(c, med(ref[c]) / med(ours[c])) for c in grid if pred(*c)]

    for name, pred, need in (("H = 32", lambda h, t, b: h == 32, 5.0),
                             ("B = 1, H ≤ 128", lambda h, t, b: b == 1 and h <= 128, 5.0),
                             ("H = 128, B = 32", lambda h, t, b: h == 128 and b == 32, 2.5)):
        rs = ratios(pred, torch_)
        if rs:
            worst = min(rs, key=lambda x: x[1])
            goal(f"≥ {need}× PyTorch at {name}", worst[1] >= need, f"lowest {worst[1]:.1f}× at H,T,B = {worst[0]}")
    rs = ratios(lambda h, t, b: True, numpy_)
    worst = min(rs, key=lambda x: x[1])
    goal("faster than NumPy everywhere", worst[1] > 1.0, f"lowest {worst[1]:.2f}× at H,T,B = {worst[0]}")
    if big:
        fr32 = [flops(*c) / 1e6 / med(ours[c]) / mo for c in big]
        fr64 = [flops(*c) / 1e6 / med(ours64[c]) / m64 for c in big]
        goal("H = 512, B = 32 at ≥ 70 % of the matmul, f32", min(fr32) >= 0.7, f"lowest {100 * min(fr32):.0f} %")
        goal("H = 512, B = 32 at ≥ 70 % of the matmul, f64", min(fr64) >= 0.7, f"lowest {100 * min(fr64):.0f} %")
    b1 = [flops(*c) / 1e6 / med(ours[c]) for c in grid if c[0] == 128 and c[2] == 1]
    if b1:
        goal("B = 1 at ≥ 25 GFLOP/s at H = 128", min(b1) >= 25, f"lowest {min(b1):.1f} GFLOP/s")
    goal("the 12-run sweep ≥ 5× faster than PyTorch, whole process", st / s1 >= 5, f"{st / s1:.1f}×")
    goal("two jobs ≥ 1.8× faster than one", s1 / s2 >= 1.8, f"{s1 / s2:.2f}× (ratio of the median times)")
    full = [rss / store for T, dtype, bptt, rss, store in memory if bptt == "full"]
    goal("peak memory ≤ 1.5× BPTT storage at T = 200 and 2000", max(full) <= 1.5, f"largest {max(full):.2f}×")
    trunc = {(T, dtype): rss for T, dtype, bptt, rss, store in memory if bptt != "full"}
    grows = max(trunc[(2000, d)] / trunc[(200, d)] for d in ("f32", "f64"))
    goal("truncated BPTT (k = 50) bounds memory: T = 2000 vs 200", grows < 2.0, f"{grows:.2f}× the T = 200 peak")
    steady = {c: allocs[c] for c in grid}
    same = all(steady[(h, t, b)] == steady[(h, args.T[0], b)] for h, t, b in grid)
    goal("no allocation inside the time loop", same,
         f"{min(steady.values()):.0f}–{max(steady.values()):.0f} allocations per step at every T")
    print(f"\n{sum(goals)} of {len(goals)} goals met.")


if __name__ == "__main__":
    main()
