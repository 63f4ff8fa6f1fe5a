#!/usr/bin/env python3
"""The reference implementations scripts/bench.py times runner against, written for this project:

  torch  — nn.RNN + nn.Linear with autograd, the way a PyTorch user trains on the CPU;
  numpy  — a hand-written BPTT: the input projection of all steps and the parameter gradients
           are single matrix products, only the recurrence runs in a Python time loop.

Both train the workload of runner's examples/step_time: adding problem (D = 2, O = 1), tanh RNN
of hidden size H, T steps, batch B, squared error on the last step, full BPTT, global-norm
clipping at 1.0, plain SGD, one thread. Subcommands print one JSON object per line. `steps torch`
also times stacks (`--layers N`: nn.RNN(num_layers=N), the head on the top layer), the gated
cells (`--cell lstm|gru`: nn.LSTM, nn.GRU) and the cells against vanishing gradients (`--cell
indrnn|exprnn|cornn|antisymmetric`: scripts/torch_cells.py's layers, written from the papers'
equations, a Python loop over time as in the papers' code; the same loop, plus exprnn's P at a
tenth of the learning rate (a second parameter group, as the paper trains it slower) and IndRNN's
clip |u_i| ≤ 2^(1/T) after each update). The NumPy reference is the one-layer tanh RNN only.

    python3 scripts/bench_reference.py steps torch|numpy --dtype f32 --H 32 128 --T 200 --B 1 32
    python3 scripts/bench_reference.py steps torch --layers 2 --cell lstm --H 128 --T 200 --B 32
    python3 scripts/bench_reference.py steps torch --cell cornn --H 128 --T 200 --B 32
    python3 scripts/bench_reference.py sweep        # the 12-run sweep of benches/sweep.toml
"""
import argparse
import json
import os
import statistics
import sys
import time

# One thread for every BLAS NumPy or PyTorch may load; must precede their imports.
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

D, O = 2, 1
# The torch-only cells of scripts/torch_cells.py.
NEW_CELLS = ("indrnn", "exprnn", "cornn", "antisymmetric")


def adding_batch(rng, T, B, dtype):
    """x (T, B, 2): a uniform value and a marker, one marked step in each half; y (B, 1): the sum."""
    x = np.zeros((T, B, D), dtype=dtype)
    x[:, :, 0] = rng.random((T, B))
    half = T // 2
    i1 = rng.integers(0, half, B)
    i2 = rng.integers(half, T, B)
    b = np.arange(B)
    x[i1, b, 1] = 1.0
    x[i2, b, 1] = 1.0
    y = (x[i1, b, 0] + x[i2, b, 0]).reshape(B, 1)
    return x, y


def time_steps(step, seconds):
    """Median and 10th-percentile milliseconds of `step` over at least `seconds` and 5 calls."""
    for i in range(3):
        step(i)
    times, t0, i = [], time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds or len(times) < 5:
        s = time.perf_counter()
        step(i)
        times.append((time.perf_counter() - s) * 1e3)
        i += 1
    times.sort()
    return statistics.median(times), times[len(times) // 10]


def new_cell_hyper(cell, T):
    """The benchmark's hyperparameters of a torch_cells layer (the timing does not depend on them):
    IndRNN relu with |u_i| ≤ 2^(1/T), the IndRNN paper's adding-problem bound; coRNN Δt = 0.06,
    γ = 66, ε = 15, its paper's code's adding-problem defaults; AntisymmetricRNN ε = γ = 0.01."""
    return {"indrnn": {"activation": "relu", "recurrent_max": 2 ** (1 / T)}, "exprnn": {},
            "cornn": {"dt": 0.06, "gamma": 66.0, "epsilon": 15.0},
            "antisymmetric": {"epsilon": 0.01, "gamma": 0.01}}[cell]


def torch_step(H, T, B, dtype, seconds, layers=1, cell="rnn"):
    import torch

    import torch_cells

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tdtype = {"f32": torch.float32, "f64": torch.float64}[dtype]
    if cell == "lstm":
        rnn = torch.nn.LSTM(D, H, num_layers=layers).to(tdtype)
    elif cell == "gru":
        rnn = torch.nn.GRU(D, H, num_layers=layers).to(tdtype)
    elif cell in NEW_CELLS:
        rnn = torch_cells.Stack(cell, D, H, layers, **new_cell_hyper(cell, T)).to(tdtype)
    else:
        rnn = torch.nn.RNN(D, H, num_layers=layers, nonlinearity="tanh").to(tdtype)
    head = torch.nn.Linear(H, O).to(tdtype)
    params = list(rnn.parameters()) + list(head.parameters())
    # exprnn's P (weight_hh) learns at a tenth of the rate (the paper's 1e-4 against 1e-3).
    slow = [p for n, p in rnn.named_parameters() if cell == "exprnn" and n.endswith("weight_hh")]
    fast = [p for p in params if all(p is not q for q in slow)]
    opt = torch.optim.SGD([{"params": fast}] + ([{"params": slow, "lr": 1e-4}] if slow else []), lr=1e-3)
    npdtype = np.float32 if dtype == "f32" else np.float64
    batches = [tuple(map(torch.from_numpy, adding_batch(rng, T, B, npdtype))) for _ in range(8)]

    def step(i):
        x, y = batches[i % len(batches)]
        opt.zero_grad(set_to_none=True)
        out = rnn(x) if cell in NEW_CELLS else rnn(x)[0]  # (T, B, H)
        loss = ((head(out[-1]) - y) ** 2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if cell in NEW_CELLS:
            rnn.constrain()  # IndRNN's |u_i| ≤ recurrent_max after the update; the others have none

    return time_steps(step, seconds)


def numpy_step(H, T, B, dtype, seconds):
    npdtype = np.float32 if dtype == "f32" else np.float64
    rng = np.random.default_rng(0)
    a = np.sqrt(6.0 / (H + D))
    U = (rng.uniform(-a, a, (H, D))).astype(npdtype)
    W = (rng.uniform(-a, a, (H, H)) * np.sqrt((H + D) / (2 * H))).astype(npdtype)
    b = np.zeros(H, npdtype)
    V = (rng.uniform(-a, a, (O, H))).astype(npdtype)
    c = np.zeros(O, npdtype)
    params = [U, W, b, V, c]
    batches = [adding_batch(rng, T, B, npdtype) for _ in range(8)]
    hs = np.zeros((T + 1, B, H), npdtype)  # h_0 … h_T
    dpre = np.zeros((T, B, H), npdtype)

    def step(i):
        x, y = batches[i % len(batches)]
        # Forward: the input projection of every step at once, then the recurrence.
        xp = (x.reshape(T * B, D) @ U.T + b).reshape(T, B, H)
        for t in range(T):
            hs[t + 1] = np.tanh(xp[t] + hs[t] @ W.T)
        net = hs[T] @ V.T + c
        # Backward: dE/dnet of the mean squared error, then back through time.
        dnet = 2.0 * (net - y) / (B * O)
        dV = dnet.T @ hs[T]
        dc = dnet.sum(0)
        dh = dnet @ V
        for t in range(T - 1, -1, -1):
            dpre[t] = dh * (1.0 - hs[t + 1] * hs[t + 1])  # back through tanh
            dh = dpre[t] @ W  # back through W h_{t-1}
        flat = dpre.reshape(T * B, H)
        grads = [flat.T @ x.reshape(T * B, D), flat.T @ hs[:T].reshape(T * B, H), flat.sum(0), dV, dc]
        norm = np.sqrt(sum(float((g * g).sum()) for g in grads))
        k = min(1.0, 1.0 / norm) if norm > 0 else 1.0
        for p, g in zip(params, grads):
            p -= npdtype(1e-3 * k) * g

    return time_steps(step, seconds)


def matmul_gflops(impl, dtype, n=512):
    """Single-thread n×n×n matrix product of this implementation, GFLOP/s (median of 0.5 s)."""
    if impl == "torch":
        import torch

        a = torch.rand(n, n, dtype={"f32": torch.float32, "f64": torch.float64}[dtype])
        b = torch.rand(n, n, dtype=a.dtype)
    else:
        rng = np.random.default_rng(0)
        a = rng.random((n, n)).astype(np.float32 if dtype == "f32" else np.float64)
        b = rng.random((n, n)).astype(a.dtype)
    median, _ = time_steps(lambda i: a @ b, 0.5)
    return 2 * n**3 / (median / 1e3) / 1e9


def sweep(H=64, B=32, steps=300, lr=0.01):
    """The 12 runs of benches/sweep.toml in this one process, one thread, float32."""
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    i = 0
    for T in (50, 100, 200):
        for act in ("tanh", "relu"):
            for clip in (None, 1.0):
                torch.manual_seed(i)
                rng = np.random.default_rng(i)
                rnn = torch.nn.RNN(D, H, nonlinearity=act)
                head = torch.nn.Linear(H, O)
                params = list(rnn.parameters()) + list(head.parameters())
                opt = torch.optim.SGD(params, lr=lr)
                for _ in range(steps):
                    x, y = adding_batch(rng, T, B, np.float32)
                    x, y = torch.from_numpy(x), torch.from_numpy(y)
                    opt.zero_grad(set_to_none=True)
                    out, _ = rnn(x)
                    loss = torch.nn.functional.mse_loss(head(out[-1]), y)
                    loss.backward()
                    if clip is not None:
                        torch.nn.utils.clip_grad_norm_(params, clip)
                    opt.step()
                i += 1
    print(json.dumps({"impl": "torch", "sweep_train_s": time.perf_counter() - t0, "torch": torch.__version__}))


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    st = sub.add_parser("steps")
    st.add_argument("impl", choices=["torch", "numpy"])
    st.add_argument("--dtype", choices=["f32", "f64"], default="f32")
    st.add_argument("--H", type=int, nargs="+", default=[32, 128, 512])
    st.add_argument("--T", type=int, nargs="+", default=[50, 200, 1000])
    st.add_argument("--B", type=int, nargs="+", default=[1, 32])
    st.add_argument("--seconds", type=float, default=0.5)
    st.add_argument("--layers", type=int, default=1, help="stacked layers (torch only)")
    st.add_argument("--cell", choices=["rnn", "lstm", "gru", *NEW_CELLS], default="rnn",
                    help="tanh RNN, LSTM, GRU, or a cell of scripts/torch_cells.py (torch only)")
    sub.add_parser("sweep")
    args = ap.parse_args()
    if args.cmd == "sweep":
        sweep()
        return
    if args.impl == "numpy" and (args.layers != 1 or args.cell != "rnn"):
        ap.error("the NumPy reference is a one-layer tanh RNN: --layers and --cell are for torch")
    if args.impl == "torch":
        import torch

        torch.set_num_threads(1)
        version = torch.__version__
    else:
        version = np.__version__
    print(json.dumps({"impl": args.impl, "dtype": args.dtype, "version": version,
                      "matmul_gflops": matmul_gflops(args.impl, args.dtype)}), flush=True)
    for H in args.H:
        for T in args.T:
            for B in args.B:
                if args.impl == "torch":
                    median, p10 = torch_step(H, T, B, args.dtype, args.seconds, args.layers, args.cell)
                else:
                    median, p10 = numpy_step(H, T, B, args.dtype, args.seconds)
                row = {"impl": args.impl, "H": H, "T": T, "B": B, "median_ms": median, "p10_ms": p10}
                if args.impl == "torch":
                    row.update(cell=args.cell, layers=args.layers)
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
