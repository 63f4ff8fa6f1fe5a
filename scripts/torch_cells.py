#!/usr/bin/env python3
"""PyTorch references of runner's four cells built against vanishing gradients, written from the
papers' equations; autograd does the backward. scripts/check_pytorch.py --gradients builds them in
float64 from a checkpoint's tensors and compares runner's gradients with autograd's;
scripts/bench_reference.py --cell times their training step in float32.

Shapes: T = time, B = batch, D = a layer's input size, H = hidden size.

  indrnn         Li, Li, Cook, Zhu & Gao 2018, "Independently Recurrent Neural Network (IndRNN)":
                 h_t = σ(U x_t + b + u ⊙ h_(t−1))                 σ = relu, tanh, sigmoid or identity
  exprnn         Lezcano-Casado & Martínez-Rubio 2019, "Cheap orthogonal constraints in neural
                 networks": A = triu(P, 1) − triu(P, 1)ᵀ, W = exp(A) (orthogonal),
                 h_t = modReLU(U x_t + W h_(t−1)),  modReLU(z)_i = sign(z_i) relu(|z_i| + b_i)
  cornn          Rusch & Mishra 2021, "Coupled oscillatory recurrent neural network (coRNN)":
                 z_t = z_(t−1) + Δt (tanh(W y_(t−1) + Wz z_(t−1) + U x_t + b) − γ y_(t−1) − ε z_(t−1))
                 y_t = y_(t−1) + Δt z_t                            the layer's output is y
  antisymmetric  Chang, Chen, Haber & Chi 2019, "AntisymmetricRNN: a dynamical system view on
                 recurrent neural networks": h_t = h_(t−1) + ε tanh((W − Wᵀ − γI) h_(t−1) + U x_t + b)

Every state starts at zero (or at forward's `state0`). A layer is an nn.Module whose parameters
carry the checkpoint's names without `rnn.` and `_l{k}` (weight_ih, weight_hh, ...); its forward
maps the inputs x (T, B, D) to its outputs (T, B, H). The input projection U x_t + b of all T
steps is one product, and W, exp(A) or W − Wᵀ − γI is formed once per sequence; only the
recurrence runs in a Python loop over time, as in the papers' code. A `Stack` chains L layers as
runner does: layer k + 1 reads layer k's outputs, plus its inputs from the second layer on when
`residual`.

`--selftest` checks autograd's gradients against central finite differences in float64 on tiny
random networks (H = 4, D = 2, T = 7; 1 and 2 layers, plain and residual) and a closed form per
cell, prints every gap, and exits 1 if one is too large:

    python3 scripts/torch_cells.py --selftest
"""
import argparse
import math
import sys

import torch
from torch import nn

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "identity": lambda z: z}


def uniform_(p, bound):
    """Fills p from U(−bound, bound) in place, as nn.RNN draws its weights with bound 1/√H."""
    with torch.no_grad():
        p.uniform_(-bound, bound)


class IndRNN(nn.Module):
    """h_t = σ(U x_t + b + u ⊙ h_(t−1)): each unit recurs on itself only (Li et al. 2018)."""

    def __init__(self, d, h, activation="relu", recurrent_max=None):
        super().__init__()
        self.weight_ih = nn.Parameter(torch.empty(h, d))  # U (H, D)
        self.weight_hh = nn.Parameter(torch.empty(h))  # u (H): one recurrent weight per unit
        self.bias_ih = nn.Parameter(torch.empty(h))  # b (H)
        self.sigma = ACTIVATIONS[activation]
        self.recurrent_max = recurrent_max  # the clip |u_i| ≤ recurrent_max after each update, or None
        uniform_(self.weight_ih, 1 / math.sqrt(h))
        uniform_(self.bias_ih, 1 / math.sqrt(h))
        with torch.no_grad():
            self.weight_hh.uniform_(0.0, recurrent_max or 1.0)  # the paper's adding problem: u in [0, max]

    def forward(self, x, state0=None):
        """Outputs h_1 … h_T (T, B, H) of inputs x (T, B, D), from h_0 = state0 (B, H) or zero."""
        xp = x @ self.weight_ih.T + self.bias_ih  # U x_t + b for all steps at once: (T, B, H)
        h = x.new_zeros(x.shape[1], self.bias_ih.shape[0]) if state0 is None else state0
        outputs = []
        for xp_t in xp:
            h = self.sigma(xp_t + self.weight_hh * h)  # σ(U x_t + b + u ⊙ h_(t−1)): u acts per unit
            outputs.append(h)
        return torch.stack(outputs)

    def constrain(self):
        """The paper's constraint, after each optimiser update: u_i clipped to ±recurrent_max."""
        if self.recurrent_max is not None:
            with torch.no_grad():
                self.weight_hh.clamp_(-self.recurrent_max, self.recurrent_max)


class ExpRNN(nn.Module):
    """h_t = modReLU(U x_t + W h_(t−1)), W = exp(A) orthogonal, A the skew-symmetric matrix of P's
    strict upper triangle (Lezcano-Casado & Martínez-Rubio 2019). No input bias."""

    def __init__(self, d, h):
        super().__init__()
        self.weight_ih = nn.Parameter(torch.empty(h, d))  # U (H, D)
        self.weight_hh = nn.Parameter(torch.zeros(h, h))  # P (H, H): only its strict upper triangle is read
        self.bias_hh = nn.Parameter(torch.empty(h))  # b (H): modReLU's bias
        uniform_(self.weight_ih, 1 / math.sqrt(h))
        uniform_(self.bias_hh, 0.01)  # the paper's code: U(−0.01, 0.01)
        with torch.no_grad():
            # Henaff et al.'s start, as the paper's: 2×2 rotation blocks of angles in U(−π, π).
            angles = torch.empty(h // 2).uniform_(-math.pi, math.pi)
            self.weight_hh[torch.arange(0, h - 1, 2), torch.arange(1, h, 2)] = angles

    def recurrent(self):
        """W = exp(A) (H, H), A = triu(P, 1) − triu(P, 1)ᵀ; orthogonal since A is skew-symmetric."""
        upper = torch.triu(self.weight_hh, 1)  # P's strict upper triangle: the gradient's lower triangle is 0
        return torch.linalg.matrix_exp(upper - upper.T)  # exp of the skew-symmetric A

    def forward(self, x, state0=None):
        """Outputs h_1 … h_T (T, B, H) of inputs x (T, B, D), from h_0 = state0 (B, H) or zero."""
        w = self.recurrent()  # (H, H), once per sequence
        xp = x @ self.weight_ih.T  # U x_t for all steps at once: (T, B, H)
        h = x.new_zeros(x.shape[1], self.bias_hh.shape[0]) if state0 is None else state0
        outputs = []
        for xp_t in xp:
            z = xp_t + h @ w.T  # z_t = U x_t + W h_(t−1)
            h = torch.sign(z) * torch.relu(z.abs() + self.bias_hh)  # modReLU: z's sign, |z_i| + b_i cut at 0
            outputs.append(h)
        return torch.stack(outputs)


class CoRNN(nn.Module):
    """Two states y, z of a damped, driven oscillator per unit, stepped by the paper's IMEX Euler
    scheme (Rusch & Mishra 2021); the layer's output is y."""

    def __init__(self, d, h, dt, gamma, epsilon):
        super().__init__()
        self.weight_ih = nn.Parameter(torch.empty(h, d))  # U (H, D)
        self.weight_hh = nn.Parameter(torch.empty(h, h))  # W (H, H), acting on y
        self.weight_hz = nn.Parameter(torch.empty(h, h))  # Wz (H, H), acting on z
        self.bias_ih = nn.Parameter(torch.empty(h))  # b (H)
        self.dt, self.gamma, self.epsilon = dt, gamma, epsilon  # Δt, γ, ε
        for p in self.parameters():
            uniform_(p, 1 / math.sqrt(h))  # the paper's code: nn.Linear's defaults

    def forward(self, x, state0=None):
        """Outputs y_1 … y_T (T, B, H) of inputs x (T, B, D), from (y_0, z_0) = state0 or zero."""
        xp = x @ self.weight_ih.T + self.bias_ih  # U x_t + b for all steps at once: (T, B, H)
        zero = x.new_zeros(x.shape[1], self.bias_ih.shape[0])
        y, z = (zero, zero) if state0 is None else state0
        outputs = []
        for xp_t in xp:
            drive = torch.tanh(xp_t + y @ self.weight_hh.T + z @ self.weight_hz.T)  # tanh(W y + Wz z + U x_t + b)
            z = z + self.dt * (drive - self.gamma * y - self.epsilon * z)  # z_t: restoring force γy, damping εz
            y = y + self.dt * z  # y_t = y_(t−1) + Δt z_t, with the new z (implicit in y)
            outputs.append(y)
        return torch.stack(outputs)


class AntisymmetricRNN(nn.Module):
    """h_t = h_(t−1) + ε tanh((W − Wᵀ − γI) h_(t−1) + U x_t + b): a forward-Euler step of an ODE
    whose Jacobian has eigenvalues of real part −γ (Chang et al. 2019)."""

    def __init__(self, d, h, epsilon, gamma):
        super().__init__()
        self.weight_ih = nn.Parameter(torch.empty(h, d))  # U (H, D)
        self.weight_hh = nn.Parameter(torch.empty(h, h))  # W (H, H): only W − Wᵀ is read
        self.bias_ih = nn.Parameter(torch.empty(h))  # b (H)
        self.epsilon, self.gamma = epsilon, gamma  # ε (step), γ (diffusion)
        for p in self.parameters():
            uniform_(p, 1 / math.sqrt(h))

    def recurrent(self):
        """M = W − Wᵀ − γI (H, H)."""
        w = self.weight_hh
        return w - w.T - self.gamma * torch.eye(w.shape[0], dtype=w.dtype)  # antisymmetric part, less γI

    def forward(self, x, state0=None):
        """Outputs h_1 … h_T (T, B, H) of inputs x (T, B, D), from h_0 = state0 (B, H) or zero."""
        m = self.recurrent()  # (H, H), once per sequence
        xp = x @ self.weight_ih.T + self.bias_ih  # U x_t + b for all steps at once: (T, B, H)
        h = x.new_zeros(x.shape[1], self.bias_ih.shape[0]) if state0 is None else state0
        outputs = []
        for xp_t in xp:
            h = h + self.epsilon * torch.tanh(xp_t + h @ m.T)  # h_(t−1) + ε tanh(M h_(t−1) + U x_t + b)
            outputs.append(h)
        return torch.stack(outputs)


# A cell's name in checkpoints and on the command line → its layer.
CELLS = {"indrnn": IndRNN, "exprnn": ExpRNN, "cornn": CoRNN, "antisymmetric": AntisymmetricRNN}
# The checkpoint metadata each cell's equations read (floats written as decimal strings).
METADATA = {"indrnn": (), "exprnn": (), "cornn": ("dt", "gamma", "epsilon"), "antisymmetric": ("epsilon", "gamma")}


def hyper_of(cell, meta):
    """The keyword arguments of `cell`'s layer from a checkpoint's metadata. Raises ValueError on
    a missing or unreadable entry. (exprnn's `lr_recurrent` and indrnn's `recurrent_max` steer
    training only; recurrent_max is kept for `constrain`.)"""
    missing = [k for k in METADATA[cell] if k not in meta]
    if missing:
        raise ValueError(f"the {cell} checkpoint's metadata lacks {', '.join(missing)}")
    hyper = {k: float(meta[k]) for k in METADATA[cell]}
    if cell == "indrnn":
        hyper["activation"] = meta.get("activation", "relu")
        if hyper["activation"] not in ACTIVATIONS:
            raise ValueError(f"indrnn activation {hyper['activation']!r} is none of {', '.join(ACTIVATIONS)}")
        if "recurrent_max" in meta:
            hyper["recurrent_max"] = float(meta["recurrent_max"])
    return hyper


class Stack(nn.Module):
    """L layers of one cell: layer 0 reads x, layer k + 1 reads layer k's outputs y^(k), where
    y^(k) = the layer's outputs, or with `residual` its inputs plus its outputs for k ≥ 1."""

    def __init__(self, cell, d, h, layers=1, residual=False, **hyper):
        super().__init__()
        self.layers = nn.ModuleList(CELLS[cell](d if k == 0 else h, h, **hyper) for k in range(layers))
        self.residual = residual

    def forward(self, x):
        """The top layer's outputs (T, B, H) of inputs x (T, B, D)."""
        for k, layer in enumerate(self.layers):
            out = layer(x)
            x = x + out if self.residual and k >= 1 else out  # GNMT residual from the second layer on
        return x

    def constrain(self):
        """Each layer's constraint after an optimiser update (IndRNN's clip of u; others none)."""
        for layer in self.layers:
            if hasattr(layer, "constrain"):
                layer.constrain()

    def checkpoint_parameters(self):
        """{checkpoint name `rnn.{name}_l{k}`: parameter} of every layer."""
        return {f"rnn.{n}_l{k}": p for k, layer in enumerate(self.layers) for n, p in layer.named_parameters()}

    @classmethod
    def from_checkpoint(cls, cell, meta, tensors, layers, residual):
        """The stack holding a checkpoint's tensors (`rnn.*_l{k}`, names and shapes checked, every
        one read), in their dtype. Raises ValueError where they do not fit the cell."""
        u = tensors["rnn.weight_ih_l0"]
        stack = cls(cell, u.shape[1], u.shape[0], layers, residual, **hyper_of(cell, meta)).to(u.dtype)
        names = stack.checkpoint_parameters()
        unread = sorted(k for k in tensors if k.startswith("rnn.") and k not in names)
        absent = sorted(k for k in names if k not in tensors)
        if unread or absent:
            raise ValueError(f"{cell}: checkpoint tensors not read: {unread}; expected but absent: {absent}")
        with torch.no_grad():
            for name, p in names.items():
                if tensors[name].shape != p.shape:
                    raise ValueError(f"{name}: shape {tuple(tensors[name].shape)}, {cell} needs {tuple(p.shape)}")
                p.copy_(tensors[name])
        return stack


# --- --selftest ----------------------------------------------------------------------------------

# Tiny network of the self-test: hidden, input, steps, batch, outputs, loss-carrying last steps.
H, D, T, B, O, L_LOSS = 4, 2, 7, 3, 2, 2
# Per cell variant of the self-test: (label, cell, hyperparameters).
VARIANTS = [(f"indrnn/{a}", "indrnn", {"activation": a}) for a in ACTIVATIONS] + [
    ("exprnn", "exprnn", {}),
    ("cornn", "cornn", {"dt": 0.3, "gamma": 1.5, "epsilon": 0.7}),
    ("antisymmetric", "antisymmetric", {"epsilon": 0.5, "gamma": 0.1}),
]


def tiny(cell, hyper, layers, residual, seed):
    """A random (stack, head, x, y, loss) in float64; loss() = E, the squared error of the head
    (O outputs) averaged over the last L_LOSS steps, the batch and the outputs."""
    g = torch.Generator().manual_seed(seed)
    stack = Stack(cell, D, H, layers, residual, **hyper)
    head = nn.Linear(H, O)
    with torch.no_grad():
        for p in list(stack.parameters()) + list(head.parameters()):
            p.copy_(torch.randn(p.shape, generator=g) * 0.7)  # larger than the inits: every term counts
    x = torch.randn(T, B, D, generator=g)
    y = torch.randn(L_LOSS, B, O, generator=g)

    def loss():
        return ((head(stack(x)[-L_LOSS:]) - y) ** 2).mean()

    return stack, head, x, y, loss


def finite_difference_gap(cell, hyper, layers, residual, step=1e-6):
    """max over parameter tensors of max |autograd − central difference| / max |autograd|."""
    stack, head, _, _, loss = tiny(cell, hyper, layers, residual, seed=layers + 10 * residual)
    named = stack.checkpoint_parameters() | {"head.weight": head.weight, "head.bias": head.bias}
    grads = torch.autograd.grad(loss(), list(named.values()))
    worst = 0.0
    with torch.no_grad():
        for (name, p), g in zip(named.items(), grads):
            fd = torch.zeros_like(p)
            flat, fd_flat = p.view(-1), fd.view(-1)
            for i in range(flat.numel()):
                v = flat[i].item()
                flat[i] = v + step
                e_plus = loss().item()
                flat[i] = v - step
                e_minus = loss().item()
                flat[i] = v
                fd_flat[i] = (e_plus - e_minus) / (2 * step)  # dE/dθ_i ≈ (E(θ + s) − E(θ − s)) / 2s
            worst = max(worst, (g - fd).abs().max().item() / max(g.abs().max().item(), 1e-300))
    return worst


def indrnn_power_gap():
    """IndRNN, identity σ, U = 0, b = 0: h_t = u^t ⊙ h_0 exactly."""
    stack, _, x, _, _ = tiny("indrnn", {"activation": "identity"}, 1, False, seed=1)
    layer = stack.layers[0]
    with torch.no_grad():
        layer.weight_ih.zero_()
        layer.bias_ih.zero_()
        h0 = torch.randn(B, H)
        hs = layer(x, h0)
        powers = torch.stack([layer.weight_hh ** t * h0 for t in range(1, T + 1)])  # u^t ⊙ h_0
    return ((hs - powers).abs().max() / h0.abs().max()).item()


def exprnn_lower_gradient():
    """exprnn: max |dE/dP| over P's lower triangle and diagonal, which W does not read (should be 0)."""
    stack, _, _, _, loss = tiny("exprnn", {}, 1, False, seed=6)
    (g,) = torch.autograd.grad(loss(), [stack.layers[0].weight_hh])
    return torch.tril(g).abs().max().item()


def exprnn_orthogonality_gap(h=128):
    """exprnn's W = exp(A) for a random P (H = 128): max |WᵀW − I|."""
    layer = ExpRNN(D, h)
    with torch.no_grad():
        layer.weight_hh.copy_(torch.randn(h, h, generator=torch.Generator().manual_seed(3)))
        w = layer.recurrent()
    return (w.T @ w - torch.eye(h)).abs().max().item()


def antisymmetric_gaps(epsilon=1e-8):
    """AntisymmetricRNN: (max |Re λ(M)| − γ over M = W − Wᵀ − γI's eigenvalues; max |∂h_T/∂h_0 − I|
    at ε = 1e-8, and its bound (1 + ε‖M‖₂)^T − 1: the map is the identity up to O(Tε))."""
    stack, _, x, _, _ = tiny("antisymmetric", {"epsilon": epsilon, "gamma": 0.1}, 1, False, seed=2)
    layer = stack.layers[0]
    with torch.no_grad():
        m = layer.recurrent()
        re_gap = (torch.linalg.eigvals(m).real + layer.gamma).abs().max().item()  # Re λ = −γ
    jac = torch.autograd.functional.jacobian(lambda h0: layer(x[:, :1], h0[None])[-1, 0], torch.randn(H))
    bound = (1 + epsilon * torch.linalg.matrix_norm(m, 2).item()) ** T - 1
    return re_gap, (jac - torch.eye(H)).abs().max().item(), bound


def cornn_oscillator_gap():
    """coRNN with W = Wz = U = 0, b = 0 (the tanh term 0): per unit a damped linear oscillator,
    (y_t, z_t) = A^t (y_0, z_0), A = [[1 − Δt²γ, Δt(1 − Δtε)], [−Δtγ, 1 − Δtε]]; max |y_t − that|."""
    hyper = {"dt": 0.3, "gamma": 1.5, "epsilon": 0.7}
    stack, _, x, _, _ = tiny("cornn", hyper, 1, False, seed=4)
    layer = stack.layers[0]
    dt, gamma, eps = hyper["dt"], hyper["gamma"], hyper["epsilon"]
    with torch.no_grad():
        for p in layer.parameters():
            p.zero_()
        y0, z0 = torch.randn(B, H), torch.randn(B, H)
        ys = layer(x, (y0, z0))
        a = torch.tensor([[1 - dt * dt * gamma, dt * (1 - dt * eps)],  # y_t = y + Δt z_t, z_t substituted
                          [-dt * gamma, 1 - dt * eps]])  # z_t = (1 − Δtε) z − Δtγ y
        closed = torch.stack([(torch.linalg.matrix_power(a, t)[0, 0] * y0 + torch.linalg.matrix_power(a, t)[0, 1] * z0)
                              for t in range(1, T + 1)])  # first row of A^t applied to (y_0, z_0)
    return ((ys - closed).abs().max() / y0.abs().max()).item()


def checkpoint_round_trip_gap():
    """Stack.from_checkpoint on each variant's tensors under checkpoint names, metadata floats as
    decimal strings: max |outputs − the original stack's| over the variants (should be 0)."""
    worst = 0.0
    for _, cell, hyper in VARIANTS:
        stack, _, x, _, _ = tiny(cell, hyper, 2, True, seed=5)
        tensors = {k: p.detach().clone() for k, p in stack.checkpoint_parameters().items()}
        meta = {"cell": cell, "layers": 2, "residual": True} | {k: str(v) for k, v in hyper.items()}
        again = Stack.from_checkpoint(cell, meta, tensors, 2, True)
        with torch.no_grad():
            worst = max(worst, (again(x) - stack(x)).abs().max().item())
    return worst


def selftest():
    """Prints every gap; returns True when all are within their limits."""
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)  # the layers' initial draws and the closed forms' start states: same gaps every run
    ok = True

    def report(what, gap, limit):
        nonlocal ok
        ok &= gap <= limit
        print(f"  {what}: {gap:.1e}  ({'ok' if gap <= limit else 'ABOVE'} {limit:.1e})")

    print(f"autograd vs central differences (step 1e-6), float64, H = {H}, D = {D}, T = {T}, B = {B}: "
          "max over tensors of max |difference| / max |gradient|")
    for label, cell, hyper in VARIANTS:
        for layers, residual in ((1, False), (2, False), (2, True)):
            gap = finite_difference_gap(cell, hyper, layers, residual)
            report(f"{label:15} L={layers}{' residual' if residual else '         '}", gap, 1e-6)
    print("closed forms:")
    report("indrnn, identity σ, U = 0, b = 0: h_t = u^t ⊙ h_0, max relative |difference|", indrnn_power_gap(), 1e-14)
    report("exprnn, H = 128, random P: max |WᵀW − I|", exprnn_orthogonality_gap(), 1e-12)
    re_gap, identity_gap, bound = antisymmetric_gaps()
    report("exprnn: max |dE/dP| on P's lower triangle and diagonal", exprnn_lower_gradient(), 0.0)
    report("antisymmetric: max |Re λ(W − Wᵀ − γI) + γ|", re_gap, 1e-12)
    report(f"antisymmetric, ε = 1e-8: max |∂h_T/∂h_0 − I| (bound (1 + ε‖M‖)^T − 1 = {bound:.1e})",
           identity_gap, bound)
    report("cornn, tanh term 0: y_t = [A^t (y_0, z_0)]_y, max relative |difference|", cornn_oscillator_gap(), 1e-13)
    report("checkpoint names and metadata strings: Stack.from_checkpoint's outputs vs the original's",
           checkpoint_round_trip_gap(), 0.0)
    print("self-test " + ("passed" if ok else "FAILED"))
    return ok


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--selftest", action="store_true", help="check the cells' gradients and closed forms")
    if not ap.parse_args().selftest:
        ap.error("nothing to do: the module is imported by check_pytorch.py and bench_reference.py; run --selftest")
    sys.exit(0 if selftest() else 1)
