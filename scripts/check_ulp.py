#!/usr/bin/env python3
"""Measures runner's elementary functions (src/elem.rs) against mpmath at 200 bits, in ulps.

    python3 scripts/check_ulp.py [--samples N] [--seed S]

Builds `cargo build --release --example ulp`, feeds it inputs as bit patterns, and compares
every output with the exactly computed value: error = |ours - exact| / ulp(exact), the ulp
being the spacing of the floating-point numbers at the exact value (the subnormal spacing below
the smallest normal). Inputs, per function and type: random bit patterns over the whole range
(both signs, subnormals included), uniform draws over the range where the function is not
constant, log-uniform magnitudes from 1e-30 to 1e3, points around every threshold the code has
(overflow, underflow into subnormals, where tanh and sigma round to 1, tiny arguments), and the
special values (+-0, +-inf, NaN, the extreme finite numbers). A special result must match
exactly (NaN for NaN, +-inf, signed zeros).

Prints one line per function and type with the largest error and where it occurs; exits 1 if any
f64 error exceeds 1 ulp or any f32 error 2 ulp. Needs `pip install mpmath`.
"""

import argparse
import math
import random
import struct
import subprocess
import sys
from pathlib import Path

import mpmath
from mpmath import mp, mpf

mp.prec = 200
ROOT = Path(__file__).resolve().parent.parent
BINARY = ROOT / "target" / "release" / "examples" / "ulp"

# (mantissa bits, smallest exponent of a normal number, largest finite)
FORMATS = {
    "f64": (53, -1022, sys.float_info.max),
    "f32": (24, -126, struct.unpack("<f", struct.pack("<I", 0x7F7FFFFF))[0]),
}
LIMITS = {"f64": 1.0, "f32": 2.0}


def to_bits(x, ty):
    if ty == "f64":
        return struct.unpack("<Q", struct.pack("<d", x))[0]
    return struct.unpack("<I", struct.pack("<f", x))[0]


def from_bits(b, ty):
    if ty == "f64":
        return struct.unpack("<d", struct.pack("<Q", b))[0]
    return struct.unpack("<f", struct.pack("<I", b))[0]


def as_type(x, ty):
    """x rounded to the type (f32 through struct, which rounds to nearest)."""
    if ty == "f64":
        return float(x)
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


def exact(func, x):
    """The function at x in 200-bit arithmetic (an mpf), or a float for special cases."""
    if math.isnan(x):
        return math.nan
    if func == "exp":
        if math.isinf(x):
            return math.inf if x > 0 else 0.0
        return mpmath.exp(mpf(x))
    if func == "ln":
        if x < 0:
            return math.nan
        if x == 0:
            return -math.inf
        if math.isinf(x):
            return math.inf
        return mpmath.log(mpf(x))
    if func == "tanh":
        if math.isinf(x):
            return math.copysign(1.0, x)
        if x == 0:
            return x
        return mpmath.tanh(mpf(x))
    if func == "sigmoid":
        if math.isinf(x):
            return 1.0 if x > 0 else 0.0
        return 1 / (1 + mpmath.exp(-mpf(x)))
    raise ValueError(func)


def ulp_error(got, want, ty):
    """Error of `got` in ulps of the exact value `want` (mpf or special float)."""
    bits, emin, fmax = FORMATS[ty]
    if isinstance(want, float) and (math.isnan(want) or math.isinf(want) or want == 0):
        if math.isnan(want):
            return 0.0 if math.isnan(got) else math.inf
        same = got == want and math.copysign(1, got) == math.copysign(1, want)
        return 0.0 if same else math.inf
    if math.isnan(got):
        return math.inf
    a = abs(want)
    if a > fmax:  # beyond the largest finite: rounds to inf unless within half an ulp of max
        e = math.frexp(fmax)[1] - 1
        half = mpf(2) ** (e - bits)
        if a >= fmax + half:
            return 0.0 if got == math.copysign(math.inf, want) else math.inf
    if math.isinf(got):
        return math.inf
    e = int(mpmath.floor(mpmath.log(a, 2))) if a > 0 else emin
    # log2 of an mpf can land a hair below an exact power of two: correct it
    if mpf(2) ** (e + 1) <= a:
        e += 1
    if mpf(2) ** e > a:
        e -= 1
    ulp = mpf(2) ** (max(e, emin) - (bits - 1))
    return float(abs(mpf(got) - want) / ulp)


def inputs(func, ty, n, rng):
    bits, _, fmax = FORMATS[ty]
    width = 64 if ty == "f64" else 32
    xs = []
    # random bit patterns over the whole range (NaNs and infinities excluded here)
    while len(xs) < n // 4:
        x = from_bits(rng.getrandbits(width), ty)
        if math.isfinite(x):
            xs.append(x)
    span = {
        "exp": {"f64": (-746.0, 710.0), "f32": (-104.0, 89.0)},
        "ln": {"f64": (0.0, 4.0), "f32": (0.0, 4.0)},
        "tanh": {"f64": (-20.0, 20.0), "f32": (-10.0, 10.0)},
        "sigmoid": {"f64": (-746.0, 40.0), "f32": (-104.0, 18.0)},
    }[func][ty]
    xs += [as_type(rng.uniform(*span), ty) for _ in range(n // 4)]
    for _ in range(n // 4):
        m = math.exp(rng.uniform(math.log(1e-30), math.log(1e3)))
        xs.append(as_type(m if func == "ln" or rng.random() < 0.5 else -m, ty))
    # thresholds, and 64 neighbours each side of each
    edges = {
        "exp": [709.782712893384, 709.08956571282405, -708.3964185322641, -744.4400719213812,
                -745.1332191019411, 88.72283935546875, -87.33654022216797, -103.27892, -103.972084,
                2.0 ** -28, -(2.0 ** -28), 0.34657359027997264, -0.34657359027997264],
        "ln": [1.0, 0.7071067811865476, 1.4142135623730951, 2.0 ** -1022, 2.0 ** -126, fmax,
               2.0 ** -1074 if ty == "f64" else 2.0 ** -149],
        "tanh": [19.061547465398498, 19.1, 9.010913, 9.5, 2.0 ** -28, 2.0 ** -12, 0.55, 0.625, 0.3466,
                 22.0],
        "sigmoid": [40.0, 37.42994775023705, 17.32868, -708.3964185322641, -745.1332191019411,
                    -87.33654, -103.972084, -104.0, 104.0, 0.0],
    }[func]
    for edge in edges:
        c = to_bits(as_type(edge, ty), ty)
        for d in range(-64, 65):
            for sign in (1, -1):
                x = from_bits(c + d, ty) * sign if c + d > 0 else 0.0
                if math.isfinite(x):
                    xs.append(x)
    while len(xs) < n:
        xs.append(as_type(rng.uniform(-1.0, 1.0) * 2.0 ** rng.randint(-60, 10), ty))
    tiny = 2.0 ** -1074 if ty == "f64" else 2.0 ** -149
    xs += [0.0, -0.0, math.inf, -math.inf, math.nan, tiny, -tiny, fmax, -fmax]
    return xs


def run(func, ty, xs):
    text = "".join(f"{to_bits(x, ty):x}\n" for x in xs)
    out = subprocess.run([str(BINARY), "eval", func, ty], input=text, capture_output=True, text=True, check=True)
    return [from_bits(int(line, 16), ty) for line in out.stdout.split()]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=100_000, help="inputs per function and type")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "ulp"], cwd=ROOT, check=True)
    rng = random.Random(args.seed)
    failed = False
    print(f"{'function':<9} {'type':<4} {'inputs':>8} {'largest error':>14}  at x")
    for func in ("exp", "ln", "tanh", "sigmoid"):
        for ty in ("f64", "f32"):
            xs = inputs(func, ty, args.samples, rng)
            got = run(func, ty, xs)
            worst, at = 0.0, None
            for x, y in zip(xs, got):
                e = ulp_error(y, exact(func, x), ty)
                if e > worst or at is None:
                    worst, at = e, x
            bad = worst > LIMITS[ty]
            failed |= bad
            print(f"{func:<9} {ty:<4} {len(xs):>8} {worst:>10.3f} ulp  {at!r}{'  FAIL' if bad else ''}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
