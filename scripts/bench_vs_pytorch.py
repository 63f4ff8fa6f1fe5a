#!/usr/bin/env python3
"""Side-by-side timing of one training step: runner's core against a PyTorch reference of the
same workload, measured one after the other, alternating, several times, in one invocation.

Workload (both): adding problem (D = 2, O = 1), tanh RNN of hidden size H over T steps, batch B,
MSE on the last step, full BPTT, global-norm clipping at 1.0, plain SGD; float64 in both (runner
has no float32 path yet). Each round times runner (examples/step_time, one thread) and then
PyTorch (nn.RNN + nn.Linear, torch.set_num_threads(1)) on every configuration; the reported
figure is the median over rounds of each side's median step time, and the ratio is PyTorch's
time over runner's. GFLOP/s use 6·B·T·(H² + H·D + H·O) and are set against a 512³ float64 matrix
multiply measured in the same run by each side.

Needs torch (pip install torch numpy; about 3 GB). A benchmark, not a test.

    cargo build --release --example step_time
    python3 scripts/bench_vs_pytorch.py --H 32 128 512 --T 50 200 --B 1 32 --rounds 3
"""
import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parent.parent
D, O = 2, 1


def adding_batch(gen, T, B):
    x = torch.zeros(T, B, D, dtype=torch.float64)
    x[:, :, 0] = torch.rand(T, B, generator=gen, dtype=torch.float64)
    half = T // 2
    i1 = torch.randint(0, half, (B,), generator=gen)
    i2 = torch.randint(half, T, (B,), generator=gen)
    b = torch.arange(B)
    x[i1, b, 1] = 1.0
    x[i2, b, 1] = 1.0
    y = (x[i1, b, 0] + x[i2, b, 0]).reshape(B, 1)
    return x, y


def torch_step_ms(H, T, B, seconds):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    rnn = nn.RNN(D, H, nonlinearity="tanh").double()
    head = nn.Linear(H, O).double()
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.SGD(params, lr=1e-3)
    batches = [adding_batch(gen, T, B) for _ in range(8)]

    def step(i):
        x, y = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        out, _ = rnn(x)
        loss = ((head(out[-1]) - y) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    for i in range(3):
        step(i)
    times, t0, i = [], time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds or len(times) < 5:
        s = time.perf_counter()
        step(i)
        times.append((time.perf_counter() - s) * 1e3)
        i += 1
    return statistics.median(times)


def torch_matmul_gflops(n=512):
    a = torch.rand(n, n, dtype=torch.float64)
    b = torch.rand(n, n, dtype=torch.float64)
    for _ in range(3):
        a @ b
    times = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 0.5:
        s = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - s)
    return 2 * n**3 / statistics.median(times) / 1e9


def runner_step_ms(H, T, B, seconds):
    exe = ROOT / "target" / "release" / "examples" / "step_time"
    cmd = [str(exe), "--H", ",".join(map(str, H)), "--T", ",".join(map(str, T)), "--B", ",".join(map(str, B)),
           "--seconds", str(seconds), "--json"]
    lines = [json.loads(l) for l in subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()]
    matmul = lines[0]["matmul_gflops"]
    return matmul, {(r["H"], r["T"], r["B"]): r["median_ms"] for r in lines[1:]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--H", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--T", type=int, nargs="+", default=[50, 200])
    ap.add_argument("--B", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=0.5, help="timed seconds per configuration and side")
    args = ap.parse_args()
    torch.set_num_threads(1)
    configs = [(h, t, b) for h in args.H for t in args.T for b in args.B]
    ours = {c: [] for c in configs}
    theirs = {c: [] for c in configs}
    mm_ours, mm_theirs = [], []
    for r in range(args.rounds):
        matmul, times = runner_step_ms(args.H, args.T, args.B, args.seconds)
        mm_ours.append(matmul)
        for c in configs:
            ours[c].append(times[c])
        mm_theirs.append(torch_matmul_gflops())
        for c in configs:
            theirs[c].append(torch_step_ms(*c, args.seconds))
        print(f"round {r + 1}/{args.rounds} done", flush=True)
    mo, mt = statistics.median(mm_ours), statistics.median(mm_theirs)
    print(f"\nfloat64, one thread, {args.rounds} alternating rounds; 512³ matmul: runner (ndarray) {mo:.1f} GFLOP/s, "
          f"PyTorch {mt:.1f} GFLOP/s; torch {torch.__version__}\n")
    print("| H | T | B | runner ms/step | PyTorch ms/step | PyTorch ÷ runner | runner GFLOP/s (% of matmul) | PyTorch GFLOP/s |")
    print("|---|---|---|---|---|---|---|---|")
    for (h, t, b) in configs:
        a, p = statistics.median(ours[(h, t, b)]), statistics.median(theirs[(h, t, b)])
        flops = 6 * b * t * (h * h + h * D + h * O)
        ga, gp = flops / (a / 1e3) / 1e9, flops / (p / 1e3) / 1e9
        print(f"| {h} | {t} | {b} | {a:.3f} | {p:.3f} | {p / a:.2f} | {ga:.1f} ({100 * ga / mo:.0f} %) | {gp:.1f} |")


if __name__ == "__main__":
    main()
