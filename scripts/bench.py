#!/usr/bin/env python3
"""runner's speed and memory, measured side by side with PyTorch and NumPy, in one invocation.

What it measures (all on this machine, one thread each unless said otherwise):

1. One training step over the grid H ∈ {32, 128, 512} × T ∈ {50, 200, 1000} × B ∈ {1, 32}, float32:
   runner's core (examples/step_time), PyTorch (nn.RNN + autograd) and a NumPy BPTT loop
   (scripts/bench_reference.py), the three run one after the other, in `--rounds` alternating
   rounds; each figure is the median over rounds of each side's median step time. GFLOP/s use
   6·B·T·(H² + H·D + H·O), D = 2, O = 1, and are set against a 512³ matrix product measured by
   each side in the same round (runner: its own kernel, `real::gemm`, the one every product of
   the core goes through; NumPy's OpenBLAS product is printed beside it).
2. The same at H ∈ {128, 512}, B = 32 in float64 (runner only), against runner's float64 product.
3. One run with two threads: the H = 512, B = 32 steps again in a rayon pool of two threads (the
   core splits its time loop into blocks of sequences and shares its large products out).
4. The 12-run sweep of benches/sweep.toml, whole process against whole process: runner with
   --jobs 1 and --jobs 2, PyTorch's process training the same runs on one thread; and the
   three-run sweep of benches/tail.toml with --jobs 1 and 2 (its last run trains alone).
5. Peak resident memory of a runner process (its VmHWM) for T ∈ {200, 2000}, full and truncated
   BPTT, against what BPTT must store: the states h_0 … h_T and one (T, B, H) cache, plus the
   parameters.
6. Allocations per training step at T = 50 and T = 1000 (a counting allocator in step_time).

It records the processor (model, family, instruction sets) and the kernel path the core ran
(`--isa avx2` or `portable` forces a narrower one through RUNNER_ISA, for every runner process,
and restricts NumPy's OpenBLAS and PyTorch to the same instruction sets, as on a machine that has
only those: OPENBLAS_CORETYPE, ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, DNNL_MAX_CPU_ISA),
then checks each goal of the speed issue and prints PASS or FAIL with the measured figure. A
benchmark, not a test: nothing here runs in CI.

    python3 -m venv .bench && .bench/bin/pip install torch numpy
    .bench/bin/python scripts/bench.py                  # about 15 minutes
    .bench/bin/python scripts/bench.py --isa avx2       # the AVX2 path on an AVX-512 machine
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
# What --isa sets for the reference processes, so that all three sides run the instruction sets of
# the processor being emulated (NumPy's OpenBLAS and PyTorch would otherwise use AVX-512 kernels
# against runner's AVX2 ones).
REFERENCE_ISA = {
    "avx2": {"OPENBLAS_CORETYPE": "Haswell", "ATEN_CPU_CAPABILITY": "avx2",
             "MKL_ENABLE_INSTRUCTIONS": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
    "portable": {"OPENBLAS_CORETYPE": "Nehalem", "ATEN_CPU_CAPABILITY": "default",
                 "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "DNNL_MAX_CPU_ISA": "SSE41"},
}


def flops(H, T, B):
    return 6 * B * T * (H * H + H * D + H * O)


def lines(cmd, env=None):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def runner_steps(dtype, H, T, B, seconds, threads=1):
    rows = lines([str(STEP_TIME), "--dtype", dtype, "--H", ",".join(map(str, H)), "--T", ",".join(map(str, T)),
                  "--B", ",".join(map(str, B)), "--seconds", str(seconds), "--threads", str(threads), "--json"])
    return rows[0], {(r["H"], r["T"], r["B"]): r for r in rows[1:]}


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


def processor():
    """Model name, vendor, family, model number and the vector instruction sets of this processor."""
    info, flags = {}, set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = (x.strip() for x in line.partition(":"))
            if key in ("model name", "vendor_id", "cpu family", "model", "CPU implementer", "CPU part") \
                    and key not in info:
                info[key] = value
            if key in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    isa = [f for f in ("avx512f", "avx512vl", "avx2", "fma", "asimd", "sve") if f in flags]
    name = info.get("model name") or platform.processor() or platform.machine()
    family = f"family {info['cpu family']}, model {info['model']}" if "cpu family" in info else \
        f"implementer {info.get('CPU implementer', '?')}, part {info.get('CPU part', '?')}"
    return f"{name} ({info.get('vendor_id', platform.machine())}, {family}; {' '.join(isa) or 'no vector extensions'})"


def machine(versions):
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    return f"{processor()}, {os.cpu_count()} cores, Linux {platform.release()}; {rustc}; {versions}"


def med(xs):
    return statistics.median(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--H", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--T", type=int, nargs="+", default=[50, 200, 1000])
    ap.add_argument("--B", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5, help="timed seconds per configuration and side")
    ap.add_argument("--isa", choices=["avx512", "avx2", "portable"],
                    help="force runner's kernel path (RUNNER_ISA) for every runner process, and restrict "
                         "NumPy and PyTorch to the same instruction sets")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already in target/release")
    args = ap.parse_args()
    if args.isa:
        os.environ["RUNNER_ISA"] = args.isa  # inherited by every runner process below
        os.environ.update(REFERENCE_ISA.get(args.isa, {}))  # and by NumPy's and PyTorch's
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "runner", "--example", "step_time"],
                       check=True, cwd=ROOT)
    grid = [(h, t, b) for h in args.H for t in args.T for b in args.B]
    wide = [h for h in args.H if h >= 128]
    f64grid = [(h, t, 32) for h in wide for t in args.T] if 32 in args.B else []
    lone = [(512, t, 32) for t in args.T if t <= 200] if 512 in args.H and 32 in args.B else []

    # 1 to 4, alternating within each round.
    ours, torch_, numpy_ = ({c: [] for c in grid} for _ in range(3))
    ours64 = {c: [] for c in f64grid}
    two = {c: [] for c in lone}
    mm = {"runner f32": [], "runner f64": [], "NumPy f32": [], "PyTorch f32": [], "ndarray f32": []}
    allocs, path = {}, "?"
    sweep = {"runner, 1 job": [], "runner, 2 jobs": [], "PyTorch, 1 thread": []}
    tail = {"runner, 1 job": [], "runner, 2 jobs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            head, rows = runner_steps("f32", args.H, args.T, args.B, args.seconds)
            mm["runner f32"].append(head["matmul_gflops"])
            mm["ndarray f32"].append(head["ndarray_matmul_gflops"])
            path = head["isa"]
            for c in grid:
                ours[c].append(rows[c]["median_ms"])
                allocs[c] = rows[c]["allocs_per_step"]
            if lone:
                _, rows = runner_steps("f32", [512], [t for _, t, _ in lone], [32], args.seconds, threads=2)
                for c in lone:
                    two[c].append(rows[c]["median_ms"])
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
            if f64grid:
                head, rows = runner_steps("f64", wide, args.T, [32], args.seconds)
                mm["runner f64"].append(head["matmul_gflops"])
                for c in f64grid:
                    ours64[c].append(rows[c]["median_ms"])
            out = Path(tmp) / "sweep"
            for jobs in (1, 2):
                name = f"runner, {jobs} job{'s' if jobs > 1 else ''}"
                wall, _ = timed_process([RUNNER, ROOT / "benches" / "sweep.toml", "--jobs", str(jobs), "--out", out,
                                         "--force", "--quiet"])
                sweep[name].append(wall)
                wall, _ = timed_process([RUNNER, ROOT / "benches" / "tail.toml", "--jobs", str(jobs), "--out", out,
                                         "--force", "--quiet"])
                tail[name].append(wall)
            wall, _ = timed_process([sys.executable, REFERENCE, "sweep"])
            sweep["PyTorch, 1 thread"].append(wall)
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)

        # 5: memory, once per configuration (peak RSS varies little).
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
    forced = f", forced by --isa {args.isa}" if args.isa else ""
    if REFERENCE_ISA.get(args.isa):
        forced += "; NumPy and PyTorch restricted alike (" + ", ".join(
            f"{k}={v}" for k, v in REFERENCE_ISA[args.isa].items()) + ")"
    print(f"# runner performance, {time.strftime('%Y-%m-%d')}\n\nMachine: {machine(versions)}.\n"
          f"Kernel path: **{path}**{forced}.\n")
    print(f"## One training step, float32, one thread ({args.rounds} alternating rounds, medians)\n")
    print("Same-run 512³ matrix product, one thread: "
          + ", ".join(f"{k} {med(v):.1f} GFLOP/s" for k, v in mm.items() if v) + ".\n")
    print("| H | T | B | runner ms | PyTorch ms | NumPy ms | PyTorch ÷ runner | NumPy ÷ runner "
          "| runner GFLOP/s | % of runner's product | % of NumPy's | PyTorch GFLOP/s | NumPy GFLOP/s "
          "| runner allocations/step |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    mo, mn = med(mm["runner f32"]), med(mm["NumPy f32"])
    for c in grid:
        a, p, n = med(ours[c]), med(torch_[c]), med(numpy_[c])
        f = flops(*c) / 1e6
        print(f"| {c[0]} | {c[1]} | {c[2]} | {a:.3f} | {p:.3f} | {n:.3f} | {p / a:.1f} | {n / a:.2f} "
              f"| {f / a:.1f} | {100 * f / a / mo:.0f} % | {100 * f / a / mn:.0f} % | {f / p:.1f} | {f / n:.1f} "
              f"| {allocs[c]:.0f} |")
    if f64grid:
        m64 = med(mm["runner f64"])
        print(f"\n## B = 32 in float64 (runner; its float64 product {m64:.1f} GFLOP/s)\n")
        print("| H | T | runner ms | GFLOP/s | % of its product |\n|---|---|---|---|---|")
        for c in f64grid:
            a = med(ours64[c])
            print(f"| {c[0]} | {c[1]} | {a:.1f} | {flops(*c) / 1e6 / a:.1f} | {100 * flops(*c) / 1e6 / a / m64:.0f} % |")
    if lone:
        print("\n## One run on two threads (float32, H = 512, B = 32)\n")
        print("| T | 1 thread ms | 2 threads ms | speed-up |\n|---|---|---|---|")
        for c in lone:
            print(f"| {c[1]} | {med(ours[c]):.1f} | {med(two[c]):.1f} | {med(ours[c]) / med(two[c]):.2f} |")
    print("\n## Sweeps, whole process, wall seconds\n")
    print("| | " + " | ".join(f"round {i + 1}" for i in range(args.rounds)) + " | median |")
    print("|---|" + "---|" * (args.rounds + 1))
    for label, table in (("12-run sweep", sweep), ("3-run tail", tail)):
        for k, v in table.items():
            print(f"| {label}: {k} | " + " | ".join(f"{x:.2f}" for x in v) + f" | {med(v):.2f} |")
    s1, s2, st = med(sweep["runner, 1 job"]), med(sweep["runner, 2 jobs"]), med(sweep["PyTorch, 1 thread"])
    t1, t2 = med(tail["runner, 1 job"]), med(tail["runner, 2 jobs"])
    print(f"\n12-run sweep: PyTorch ÷ runner (1 job) {st / s1:.1f}; runner 1 job ÷ 2 jobs {s1 / s2:.2f}. "
          f"3-run tail: 1 job ÷ 2 jobs {t1 / t2:.2f} (1.5 if the last run kept one thread).")
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

    def worst(pred, ref, need):
        rs = [(c, med(ref[c]) / med(ours[c])) for c in grid if pred(*c)]
        if rs:
            c, x = min(rs, key=lambda r: r[1])
            return x >= need, f"lowest {x:.2f}× at H,T,B = {c}"
        return None

    for text, pred, need in (("never slower than the NumPy loop", lambda h, t, b: True, 1.0),
                             ("≥ 1.2× the NumPy loop wherever H ≤ 128", lambda h, t, b: h <= 128, 1.2)):
        res = worst(pred, numpy_, need)
        if res:
            goal(text, *res)
    fr32 = [(c, flops(*c) / 1e6 / med(ours[c]) / mo) for c in grid if c[0] >= 128 and c[2] == 32]
    if fr32:
        c, x = min(fr32, key=lambda r: r[1])
        goal("≥ 85 % of the same-run product at H ≥ 128, B = 32, f32", x >= 0.85, f"lowest {100 * x:.0f} % at {c}")
    if f64grid:
        fr64 = [(c, flops(*c) / 1e6 / med(ours64[c]) / m64) for c in f64grid]
        c, x = min(fr64, key=lambda r: r[1])
        goal("≥ 85 % of the same-run product at H ≥ 128, B = 32, f64", x >= 0.85, f"lowest {100 * x:.0f} % at {c}")
    b1 = [(c, flops(*c) / 1e6 / med(ours[c]) / mo) for c in grid if c[0] == 128 and c[2] == 1]
    if b1:
        c, x = min(b1, key=lambda r: r[1])
        goal("B = 1 at H = 128 ≥ 60 % of the product", x >= 0.6, f"lowest {100 * x:.0f} % at {c}")
    goal("the 12-run sweep ≥ 5× faster than PyTorch, whole process", st / s1 >= 5, f"{st / s1:.1f}×")
    if lone:
        sp = [(c, med(ours[c]) / med(two[c])) for c in lone]
        c, x = min(sp, key=lambda r: r[1])
        goal("one H = 512, B = 32 run ≥ 1.7× faster on two threads", x >= 1.7, f"lowest {x:.2f}× at {c}")
    goal("the 12-run sweep ≥ 1.8× faster with two jobs", s1 / s2 >= 1.8, f"{s1 / s2:.2f}× (ratio of the medians)")
    goal("a sweep's tail does not idle: the 3-run sweep ≥ 1.7× faster with two jobs", t1 / t2 >= 1.7,
         f"{t1 / t2:.2f}× (1.5 if its last run kept one thread)")
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
