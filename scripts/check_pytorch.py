#!/usr/bin/env python3
"""Reload runner's checkpoints into PyTorch and reproduce each run's gradient-decay probe.

For every run of a results folder with a final checkpoint of a one-layer plain, LSTM or GRU
network (others are skipped, with a line saying so), this script
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
     torch.linalg.qr (Householder, where runner does Gram-Schmidt), lambda_i = mean over t of
     ln|R_ii|, under runner's convention (docs/models.md, "The Lyapunov spectrum"): a column
     whose |R_ii| is at most n*eps times its norm before the QR has collapsed, lambda_i = -inf,
     and is dropped (the QR is redone without it, and it stays out from then on); each
     sequence's exponents are sorted, decreasing with -inf last, and exponent i is the mean
     over sequences of each one's i-th largest. It prints the largest absolute difference from
     spectrum.csv's last probe over the exponents both give as finite, and how many fields
     disagree on being empty (-inf) at all.

With --gradients it checks runner's loss and gradients instead, for every checkpoint
(checkpoints/*/init.safetensors and final.safetensors) of the folders:
  1. builds the network from its equations, in float64: L layers of the checkpoint's cell
     (L = metadata `layers`, 1 when absent; every rnn.*_l{k} tensor read), layer 0 reading x_t,
     layer l+1 reading layer l's output y^(l)_t, the head reading the top layer's; y^(l) = h^(l),
     or with metadata `residual` true (false when absent) y^(l)_t = x^(l)_t + h^(l)_t from the
     second layer on (GNMT residual stacks). Each layer runs nn.LSTMCell / nn.GRUCell /
     nn.RNNCell (tanh, relu) holding its tensors, or the hand-written plain step (sigmoid,
     identity); or, for the cells against vanishing gradients (metadata `cell` indrnn, exprnn,
     cornn or antisymmetric), scripts/torch_cells.py's layers written from the papers' equations,
     holding the checkpoint's tensors (every rnn.*_l{k} read, shapes checked) and reading their
     metadata (indrnn `activation`, relu when absent; cornn `dt`, `gamma`, `epsilon`;
     antisymmetric `epsilon`, `gamma`), coRNN's layer output being its y state;
  2. where PyTorch has the cell (LSTM, GRU, tanh and ReLU RNNs), strict-loads
     torch.nn.RNN/LSTM/GRU(num_layers=L), or for a residual stack L one-layer modules whose
     outputs from the second on are added to their inputs, and compares their outputs and
     gradients with (1)'s;
  3. E = the mean over the L·B loss-carrying (step, sequence) pairs (the last L = probe.y's
     first axis steps) of the cross-entropy, or of the squared error averaged over the O outputs,
     and dE/dθ by autograd;
  4. runs runner's examples/gradients on the same checkpoint (built once with cargo, or --bin)
     and prints per checkpoint, per cell and overall the largest relative difference of the loss
     and of every gradient tensor (|difference| over the tensor's max |entry|). Exits 1 if any
     exceeds 1e-6.

scripts/torch_cells.py --selftest checks those four cells' autograd gradients against finite
differences without runner.

Needs torch, numpy and safetensors (pip install torch numpy safetensors). Not part of CI.

    python3 scripts/check_pytorch.py results/remedies
    python3 scripts/check_pytorch.py --gradients results/ci [--bin target/release/examples/gradients]
"""
import argparse
import csv
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch_cells  # noqa: E402  (scripts/torch_cells.py: indrnn, exprnn, cornn, antisymmetric)

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
        if meta["cell"] in torch_cells.CELLS:
            print(f"{ck}: cell {meta['cell']}: the probe and spectrum checks read the plain, LSTM and GRU "
                  "cells only (--gradients checks it), skipped")
            continue
        if "rnn.weight_hh_l1" in t:
            print(f"{ck}: {layer_count(t, meta)} layers: the probe check reads one-layer networks only, skipped")
            continue
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
    spectrum = check_spectrum(folder)
    if spectrum is not None:
        diff, mismatched = spectrum
        print(f"{folder}: Lyapunov exponents vs runner's spectrum.csv: max |diff| = {diff:.1e} "
              f"(natural log per step); {mismatched} empty (-inf) on one side only")
    print(f"{folder}: {n} runs; hidden states of the unrolled cells vs nn.{'{RNN,LSTM,GRU}'}: max |diff| = {worst_module:.1e}; "
          f"probe norms vs runner's grad_decay.csv: max relative difference = {worst:.1e}"
          f" ({deep} norms below 1e-150 not compared)")


def qr_dropping_collapsed(a, live, sums):
    """One step of the spectrum's QR under runner's collapse convention. `a` (n, len(live)) is
    J_t^T Q over the live columns, `live` their indices into `sums`. A column whose |R_ii| is not
    above n*eps times its norm has collapsed: its sum becomes -inf and it leaves `live`; the QR
    is redone without it (the columns after it change, those before it do not). A non-finite
    column (a diverged trajectory) makes every live sum NaN. Returns Q of the columns left."""
    n, eps = a.shape[0], torch.finfo(a.dtype).eps
    if not torch.isfinite(a).all():
        for j in live:
            sums[j] = math.nan
        return a[:, :0], []
    while live:
        q, r = torch.linalg.qr(a)
        diag = torch.diagonal(r).abs()
        norms = torch.linalg.vector_norm(a, dim=0)
        collapsed = [i for i in range(len(live)) if not diag[i] > n * eps * norms[i]]
        if not collapsed:
            for i, j in enumerate(live):
                sums[j] += math.log(diag[i].item())
            return q, live
        i = collapsed[0]
        sums[live[i]] = -math.inf
        keep = [m for m in range(len(live)) if m != i]
        a, live = a[:, keep], [live[m] for m in keep]
    return a, live


def decreasing(exponents):
    """A sequence's exponents as spectrum.csv orders them: largest first, -inf after every
    finite one, NaN last."""
    return sorted(exponents, key=lambda l: (math.isnan(l), -l if not math.isnan(l) else 0.0))


def check_spectrum(folder):
    """(largest |lambda_torch - lambda_runner| over the exponents both give as finite, the
    number of fields where one is empty and the other not) over the runs of `folder`, or None
    without a spectrum."""
    path = folder / "spectrum.csv"
    if not path.exists():
        return None
    ours = {}
    with open(path) as f:
        for row in csv.DictReader(f):
            ours.setdefault(row["run_id"], []).append(row)
    if not ours:
        return None
    worst, mismatched = 0.0, 0
    for ck in sorted(folder.glob("checkpoints/*/final.safetensors")):
        t, meta = load(ck)
        rows = ours.get(meta["run_id"])
        if not rows or "rnn.weight_hh_l1" in t or meta["cell"] in torch_cells.CELLS:
            continue  # check() says it skipped them
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

        per_sequence = []
        for b in range(B):
            zs = [torch.zeros(n)]
            with torch.no_grad():
                for s_ in range(T):
                    zs.append(step(x[s_, b])(zs[-1]))
            q, live, sums = torch.eye(n)[:, :k], list(range(k)), [0.0] * k
            for s_ in reversed(range(T)):
                if not live:
                    break
                jac = torch.autograd.functional.jacobian(step(x[s_, b]), zs[s_], vectorize=True)
                q, live = qr_dropping_collapsed(jac.T @ q, live, sums)
            per_sequence.append(decreasing([s / T for s in sums]))
        lam = [sum(e[i] for e in per_sequence) / B for i in range(k)]
        for i, l in enumerate(lam, start=1):
            if theirs[i] and math.isfinite(l):
                worst = max(worst, abs(l - float(theirs[i])))
            elif bool(theirs[i]) != math.isfinite(l):
                mismatched += 1
                if "--verbose" in sys.argv:
                    print(meta["run_id"], cell, act, "index", i, "runner", theirs[i] or "empty", "torch", l)
    return worst, mismatched


# --- --gradients: runner's loss and dE/dθ against autograd's -------------------------------------

TOLERANCE = 1e-6
# A layer's tensors in nn.RNN/LSTM/GRU, without the layer's suffix _l{k}.
TORCH_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


class CheckError(Exception):
    """A checkpoint that cannot be compared (the others still are; the exit status says so)."""


def layer_count(t, meta):
    """L: the metadata's `layers` (1 when absent), which must be the number of layers stored."""
    stored = sum(1 for k in t if k.startswith("rnn.weight_hh_l"))
    layers = int(meta.get("layers", 1))
    if stored != layers or any(f"rnn.weight_hh_l{k}" not in t for k in range(layers)):
        raise CheckError(f"the metadata says {layers} layers, the checkpoint holds {stored}")
    return layers


def leaf(x):
    """A float64 tensor autograd differentiates with respect to."""
    return x.detach().clone().requires_grad_(True)


def stacked_steps(cell, act, t, layers):
    """Per layer, its hidden size H and its step, (input (B, D_l), state) -> state; and every
    parameter they read, as autograd leaves under the checkpoint's names. The state is h, or (h, c)
    for the LSTM."""
    leaves, steps = {}, []
    sigma = {"sigmoid": torch.sigmoid, "identity": lambda z: z}
    for k in range(layers):
        names = {n: f"rnn.{n}_l{k}" for n in TORCH_NAMES}
        d, h = t[names["weight_ih"]].shape[1], t[names["weight_hh"]].shape[1]
        if cell == "lstm" or cell == "gru" or act in ("tanh", "relu"):
            # PyTorch's own cell, strict-loaded; its parameters are the leaves.
            if cell == "lstm":
                module = torch.nn.LSTMCell(d, h)
            elif cell == "gru":
                module = torch.nn.GRUCell(d, h)
            else:
                module = torch.nn.RNNCell(d, h, nonlinearity=act)
            module.load_state_dict({n: t[full] for n, full in names.items()})
            for n, full in names.items():
                leaves[full] = getattr(module, n)
            steps.append((h, module))
        else:
            # h_t = σ(x_t W_ihᵀ + b_ih + h_(t−1) W_hhᵀ + b_hh): PyTorch has no sigmoid or identity RNN.
            p = {n: leaf(t[full]) for n, full in names.items()}
            leaves.update({full: p[n] for n, full in names.items()})
            steps.append((h, lambda x, s, p=p, f=sigma[act]: f(x @ p["weight_ih"].T + p["bias_ih"]
                                                            + s @ p["weight_hh"].T + p["bias_hh"])))
    return steps, leaves


def unroll(cell, steps, x, residual):
    """(T, B, H) outputs of the top layer: layer 0 reads x_t, layer l+1 reads layer l's output
    y^(l)_t = h^(l)_t, or x^(l)_t + h^(l)_t for l ≥ 1 of a residual stack."""
    inputs = list(x)
    b = x.shape[1]
    for k, (h, step) in enumerate(steps):
        state = (torch.zeros(b, h), torch.zeros(b, h)) if cell == "lstm" else torch.zeros(b, h)
        outputs = []
        for x_t in inputs:
            state = step(x_t, state)
            h_t = state[0] if cell == "lstm" else state
            outputs.append(x_t + h_t if residual and k >= 1 else h_t)
        inputs = outputs
    return torch.stack(inputs)


def loss_of(top, head_w, head_b, y):
    """E: the mean over the L·B loss-carrying pairs (the last L steps) of the cross-entropy, or of
    the squared error averaged over the O outputs (the identity head)."""
    net = top[top.shape[0] - y.shape[0]:] @ head_w.T + head_b  # (L, B, O)
    if y.dtype == torch.int64:
        return torch.nn.functional.cross_entropy(net.reshape(-1, net.shape[-1]), y.reshape(-1))
    return ((net - y) ** 2).mean()


def relative(ref, other):
    """max |ref − other| over max |ref| (absolute where ref is all zeros). Entries that are the
    same non-finite value in both (an exploded run's infinite loss) agree and count as 0."""
    same = (ref == other) | (torch.isnan(ref) & torch.isnan(other))
    ref, other = torch.where(same, 0.0, ref), torch.where(same, 0.0, other)
    scale = ref.abs().max().item()
    gap = (ref - other).abs().max().item()
    return gap / scale if scale > 0 else gap


def runner_gradients(command, ck, scratch):
    """The tensors runner's examples/gradients writes for checkpoint `ck`."""
    out = Path(scratch) / "gradients.safetensors"
    run = subprocess.run(command + [str(ck), str(out)], capture_output=True, text=True)
    if run.returncode != 0:
        raise CheckError(f"{' '.join(command)} exited with {run.returncode}: {run.stderr.strip()}")
    with safe_open(out, framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def gradient_check(ck, command, scratch, verbose):
    """(cell, label, {what: relative difference}) of one checkpoint, autograd's the reference."""
    t, meta = load(ck)
    cell = meta["cell"]
    act = meta.get("activation", "relu" if cell == "indrnn" else "tanh")
    layers, residual = layer_count(t, meta), bool(meta.get("residual", False))
    dropout = meta.get("config", {}).get("model.dropout", 0) or 0
    if dropout:
        print(f"{ck}: model.dropout = {dropout}; the evaluation loss is taken without dropout")
    x, y = t["probe.x"], t["probe.y"]
    head_w, head_b = leaf(t["head.weight"]), leaf(t["head.bias"])

    if cell in torch_cells.CELLS:
        # The papers' equations (scripts/torch_cells.py); its parameters are the leaves.
        try:
            stack = torch_cells.Stack.from_checkpoint(cell, meta, t, layers, residual)
        except ValueError as e:
            raise CheckError(str(e)) from e
        leaves = stack.checkpoint_parameters()
        top = stack(x)
    else:
        steps, leaves = stacked_steps(cell, act, t, layers)
        top = unroll(cell, steps, x, residual)
    leaves.update({"head.weight": head_w, "head.bias": head_b})
    e = loss_of(top, head_w, head_b, y)
    grads = dict(zip(leaves, torch.autograd.grad(e, list(leaves.values()))))

    ours = runner_gradients(command, ck, scratch)
    diffs = {"loss": relative(e.detach().reshape(1), ours["loss"].reshape(1))}
    missing = set(leaves) ^ {k[5:] for k in ours if k.startswith("grad.")}
    if missing:
        raise CheckError(f"runner's and PyTorch's tensors differ: {sorted(missing)}")
    for name, g in grads.items():
        diffs[name] = relative(g, ours["grad." + name])

    # PyTorch's own layers, where it has the cell: nn.RNN/LSTM/GRU(num_layers=L), or for a
    # residual stack L one-layer modules with each output from the second on added to its input.
    # The same outputs and gradients as the cells' unroll above.
    if cell in ("lstm", "gru") or (cell == "rnn" and act in ("tanh", "relu")):
        h = t["rnn.weight_hh_l0"].shape[1]

        def module_of(d, n):
            if cell == "lstm":
                return torch.nn.LSTM(d, h, num_layers=n)
            if cell == "gru":
                return torch.nn.GRU(d, h, num_layers=n)
            return torch.nn.RNN(d, h, num_layers=n, nonlinearity=act)

        if residual:
            full, named = x, []
            for k in range(layers):
                m = module_of(full.shape[2], 1)
                m.load_state_dict({f"{n}_l0": t[f"rnn.{n}_l{k}"] for n in TORCH_NAMES})
                out = m(full)[0]
                full = out if k == 0 else full + out
                named += [(f"rnn.{n.removesuffix('_l0')}_l{k}", p) for n, p in m.named_parameters()]
        else:
            m = module_of(x.shape[2], layers)
            m.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("rnn.")})  # strict: PyTorch's names and shapes
            full = m(x)[0]
            named = [("rnn." + n, p) for n, p in m.named_parameters()]
        named += [("head.weight", head_w), ("head.bias", head_b)]
        e_full = loss_of(full, head_w, head_b, y)
        g_full = torch.autograd.grad(e_full, [p for _, p in named])
        diffs["nn module: outputs"] = relative(top, full)
        diffs["nn module: gradients"] = max(relative(grads[n], g) for (n, _), g in zip(named, g_full))
    name = f"{cell}/{act}" if cell in ("rnn", "indrnn") else cell
    label = f"{meta['run_id']} {ck.stem:5} {name} {meta.get('dtype', '?')} L={layers}{' residual' if residual else ''}"
    if verbose:
        for what, v in diffs.items():
            print(f"  {label} {what}: {v:.1e}")
    return name, label, diffs


def check_gradients(folders, bin_path, verbose):
    """Runs the gradient check on every checkpoint of `folders`; True when all pass."""
    root = Path(__file__).resolve().parent.parent
    if bin_path:
        command = [str(Path(bin_path).resolve())]
    else:
        # Build the example once and run its binary (cargo says where it is).
        built = subprocess.run(["cargo", "build", "--release", "--example", "gradients", "--message-format=json"],
                               cwd=root, check=True, capture_output=True, text=True).stdout
        command = [json.loads(line)["executable"] for line in built.splitlines()
                   if '"executable"' in line and json.loads(line).get("target", {}).get("name") == "gradients"]
    per_cell, worst, n, failed = {}, 0.0, 0, 0
    with tempfile.TemporaryDirectory() as scratch:
        for folder in folders:
            cks = sorted(Path(folder).glob("checkpoints/*/*.safetensors"))
            cks = [ck for ck in cks if ck.stem in ("init", "final")]
            for ck in cks:
                try:
                    cell, label, diffs = gradient_check(ck, command, scratch, verbose)
                except CheckError as e:
                    print(f"{ck}: FAILED: {e}")
                    failed += 1
                    continue
                top = max(diffs, key=diffs.get)
                grad = max(v for k, v in diffs.items() if k.startswith(("rnn.", "head.")))
                print(f"{label}: loss {diffs['loss']:.1e}, gradients {grad:.1e}"
                      + (f", nn module {diffs['nn module: gradients']:.1e}" if "nn module: gradients" in diffs else "")
                      + f"  (largest: {top})")
                slot = per_cell.setdefault(cell, {"loss": 0.0, "gradients": 0.0, "nn module": None, "n": 0})
                slot["loss"] = max(slot["loss"], diffs["loss"])
                slot["gradients"] = max(slot["gradients"], grad)
                if "nn module: outputs" in diffs:
                    slot["nn module"] = max(slot["nn module"] or 0.0, diffs["nn module: gradients"],
                                            diffs["nn module: outputs"])
                slot["n"] += 1
                worst = max(worst, max(diffs.values()))
                n += 1
    print("\nlargest relative differences per cell (runner vs autograd; nn module vs hand-built stack):")
    for cell, s in sorted(per_cell.items()):
        print(f"  {cell:14} {s['n']:3} checkpoints: loss {s['loss']:.1e}, gradients {s['gradients']:.1e}, "
              + (f"nn module {s['nn module']:.1e}" if s["nn module"] is not None else "no nn module"))
    ok = worst <= TOLERANCE and failed == 0
    print(f"overall: {n} checkpoints, largest relative difference {worst:.1e} "
          f"({'within' if worst <= TOLERANCE else 'ABOVE'} the tolerance {TOLERANCE:.0e})"
          + (f"; {failed} could not be compared" if failed else ""))
    return ok


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folders", nargs="*", default=["results/remedies"], help="results folders")
    ap.add_argument("--gradients", action="store_true", help="check runner's loss and gradients instead of the probe")
    ap.add_argument("--bin", help="runner's built examples/gradients (default: cargo builds it)")
    ap.add_argument("--verbose", action="store_true", help="print every difference")
    args = ap.parse_args()
    if args.gradients:
        sys.exit(0 if check_gradients(args.folders, args.bin, args.verbose) else 1)
    for folder in args.folders:
        check(folder)
