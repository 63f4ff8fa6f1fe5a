#!/usr/bin/env python3
"""Reload runner's checkpoints into PyTorch and reproduce each run's gradient-decay probe.

For every run of a results folder with a final checkpoint, this script
  1. loads the tensors into torch.nn.RNN / nn.LSTM / nn.GRU + nn.Linear with load_state_dict
     (strict: names and shapes must match PyTorch's exactly),
  2. unrolls the same weights with nn.RNNCell / nn.LSTMCell / nn.GRUCell (a hand-written step
     for the sigmoid and identity RNNs, which PyTorch does not offer), checks that it gives the
     same hidden states as the full module, and backpropagates each probe sequence's last-step
     loss E_T with autograd,
  3. compares the mean over probe sequences of ||dE_T/dh_(T-d)|| with runner's grad_decay.csv
     (last probe of the run), and prints the largest relative difference;
  4. where the folder has a Lyapunov spectrum (probe.spectrum > 0), recomputes it from the same
     checkpoint with PyTorch's cells: J_t = torch.autograd.functional.jacobian of one step's
     state map z_(t-1) -> z_t (z = h, or (h, c) for the LSTM) on each probe sequence's
     trajectory, then the adjoint QR iteration Q <- QR(J_t^T Q) from t = T down to 1 with
     torch.linalg.qr, lambda_i = mean over t of ln|R_ii|, mean over sequences; it prints the
     largest absolute difference from spectrum.csv's last probe (exponents runner reports as
     -inf, empty fields, are skipped).

Needs torch, numpy and safetensors (pip install torch numpy safetensors). Not part of CI.

    python3 scripts/check_pytorch.py results/remedies
"""
import csv
import json
import math
import sys
from pathlib import Path

import torch
from safetensors import safe_open

torch.set_default_dtype(torch.float64)


def load(path):
    with safe_open(path, framework="pt") as f:
        meta = json.loads(f.metadata()["runner"])
        # float32 checkpoints (model.dtype = "f32") are widened: the check runs in float64.
        return {k: f.get_tensor(k).to(torch.float64) if f.get_tensor(k).is_floating_point() else f.get_tensor(k)
                for k in f.keys()}, meta


def cell_of(cell, D, H, t):
    """nn.LSTMCell or nn.GRUCell holding a checkpoint's weights; None for the plain cell (its
    step is written by hand, as PyTorch offers no sigmoid or identity RNN)."""
    if cell not in ("lstm", "gru"):
        return None
    step_cell = torch.nn.LSTMCell(D, H) if cell == "lstm" else torch.nn.GRUCell(D, H)
    step_cell.load_state_dict({name: t["rnn." + name + "_l0"] for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
    return step_cell


def check(folder):
    folder = Path(folder)
    decay = {}
    with open(folder / "grad_decay.csv") as f:
        for row in csv.DictReader(f):
            if row["state"] == "h":
                decay.setdefault(row["run_id"], []).append(row)
    worst, worst_module, n, deep = 0.0, 0.0, 0, 0
    for ck in sorted(folder.glob("checkpoints/*/final.safetensors")):
        t, meta = load(ck)
        cell, act = meta["cell"], meta["activation"]
        x, y = t["probe.x"], t["probe.y"]  # (T, B, D); (L, B, O) float or (L, B) int
        T, B, D = x.shape
        H = t["rnn.weight_hh_l0"].shape[1]
        O = t["head.weight"].shape[0]
        rnn_state = {k[4:]: v for k, v in t.items() if k.startswith("rnn.")}
        head = torch.nn.Linear(H, O)
        head.load_state_dict({k[5:]: v for k, v in t.items() if k.startswith("head.")})

        # 1. PyTorch's own layer, strict load.
        if cell == "lstm":
            module = torch.nn.LSTM(D, H)
        elif cell == "gru":
            module = torch.nn.GRU(D, H)
        else:
            module = torch.nn.RNN(D, H, nonlinearity=act if act in ("tanh", "relu") else "tanh")
        module.load_state_dict(rnn_state)

        # 2. Unrolled, with every hidden state kept for autograd.
        W_ih, W_hh, b_ih, b_hh = (rnn_state[k] for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
        step_cell = cell_of(cell, D, H, t)
        sigma = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda z: z}[act]
        h = torch.zeros(B, H, requires_grad=True)
        c = torch.zeros(B, H)
        hs = []
        for s in range(T):
            if cell == "lstm":
                h, c = step_cell(x[s], (h, c))
            elif cell == "gru":
                h = step_cell(x[s], h)
            else:
                h = sigma(x[s] @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
            h.retain_grad()
            hs.append(h)
        if cell != "rnn" or act in ("tanh", "relu"):
            with torch.no_grad():
                full, _ = module(x)
            worst_module = max(worst_module, (full - torch.stack(hs)).abs().max().item())

        # Each sequence's loss at the last step, summed: its gradient is per sequence.
        net = head(hs[-1])
        if y.dtype == torch.int64:
            e_t = torch.nn.functional.cross_entropy(net, y[-1], reduction="sum")
        else:
            e_t = ((net - y[-1]) ** 2).mean(dim=1).sum()
        e_t.backward()
        norms = [hs[T - 1 - d].grad.norm(dim=1).mean().item() for d in range(T)]

        # 3. Against runner's last probe.
        rows = decay[meta["run_id"]]
        last = max(int(r["probe_step"]) for r in rows)
        ours = {int(r["distance"]): float(r["log10_grad_norm"] or "nan") for r in rows if int(r["probe_step"]) == last}
        for d, g in enumerate(norms):
            # Below ~1e-150 the squares inside PyTorch's norm are subnormal (and deeper its
            # gradients themselves) and lose digits; runner's probe renormalises at every step
            # and stays exact there, so compare above it only.
            if g > 1e-150 and math.isfinite(ours[d]):
                err = abs(math.log10(g) - ours[d]) * math.log(10)  # ≈ relative difference
                if err > 1e-6 and "--verbose" in sys.argv:
                    print(meta["run_id"], cell, act, d, g, 10 ** ours[d])
                worst = max(worst, err)
            elif math.isfinite(ours[d]) and ours[d] < -150:
                deep += 1
        n += 1
    spectrum_diff = check_spectrum(folder)
    if spectrum_diff is not None:
        print(f"{folder}: Lyapunov exponents vs runner's spectrum.csv: max |diff| = {spectrum_diff:.1e} "
              f"(natural log per step)")
    print(f"{folder}: {n} runs; hidden states of the unrolled cells vs nn.{'{RNN,LSTM,GRU}'}: max |diff| = {worst_module:.1e}; "
          f"probe norms vs runner's grad_decay.csv: max relative difference = {worst:.1e}"
          f" ({deep} norms below 1e-150 not compared)")


def check_spectrum(folder):
    """Largest |lambda_torch - lambda_runner| over the runs of `folder`, or None without a spectrum."""
    path = folder / "spectrum.csv"
    if not path.exists():
        return None
    ours = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            ours.setdefault(row["run_id"], []).append(row)
    if not ours:
        return None
    worst = 0.0
    for ck in sorted(folder.glob("checkpoints/*/final.safetensors")):
        t, meta = load(ck)
        rows = ours.get(meta["run_id"])
        if not rows:
            continue
        last = max(int(r["probe_step"]) for r in rows)
        theirs = {int(r["index"]): r["exponent"] for r in rows if int(r["probe_step"]) == last}
        k = len(theirs)
        cell, act = meta["cell"], meta["activation"]
        x = t["probe.x"]
        T, B, D = x.shape
        W_ih, W_hh, b_ih, b_hh = (t["rnn." + k_] for k_ in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
        H = W_hh.shape[1]
        sigma = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda z: z}[act]
        step_cell = cell_of(cell, D, H, t)
        n = 2 * H if cell == "lstm" else H

        def step(x_t):
            def f(z):
                if cell == "lstm":
                    h, c = step_cell(x_t[None], (z[None, :H], z[None, H:]))
                    return torch.cat([h[0], c[0]])
                if cell == "gru":
                    return step_cell(x_t[None], z[None])[0]
                return sigma(W_ih @ x_t + b_ih + W_hh @ z + b_hh)
            return f

        total = torch.zeros(k)
        for b in range(B):
            zs = [torch.zeros(n)]
            with torch.no_grad():
                for s_ in range(T):
                    zs.append(step(x[s_, b])(zs[-1]))
            q = torch.eye(n)[:, :k]
            sums = torch.zeros(k)
            for s_ in reversed(range(T)):
                jac = torch.autograd.functional.jacobian(step(x[s_, b]), zs[s_], vectorize=True)
                q, r = torch.linalg.qr(jac.T @ q)
                sums += torch.log(torch.abs(torch.diagonal(r)))
            total += sums / T
        lam = (total / B).tolist()
        for i, l in enumerate(lam, start=1):
            if theirs[i]:
                worst = max(worst, abs(l - float(theirs[i])))
    return worst


if __name__ == "__main__":
    for folder in sys.argv[1:] or ["results/remedies"]:
        check(folder)
