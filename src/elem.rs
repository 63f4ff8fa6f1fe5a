//! Elementary functions of our own: e^x, ln x, tanh x and the logistic function σ(x), so that no
//! number a run reports depends on the C library (glibc, musl and macOS round some inputs
//! differently, and glibc picks its FMA variants when the program loads).
//!
//! Built from +, −, × and ÷ only, each exactly rounded by IEEE 754 and therefore the same on
//! every processor (Rust never contracts `a * b + c` into a fused operation behind our back);
//! the exact products the double-doubles need are Dekker's, or, in the element-wise loops
//! compiled for processors with fused multiply–adds (`tanh_with`, `sigmoid_with`), one FMA each:
//! the same two numbers either way. (Besides those, only exact steps: |x|, sign copies,
//! comparisons, and powers of two written into the exponent bits.) Over a slice
//! ([`tanh_in_place`], [`sigmoid_in_place`]) the functions run on several vectors side by side
//! (see the module `vector`), each lane taking the one-element function's operations.
//! Intermediate values are carried as double-doubles (`Dd`, an unevaluated sum hi + lo of two
//! f64, about 106 bits) so that each f64 result is a value accurate far beyond f64 rounded once:
//! the error stays a little above half an ulp (σ's subnormal results, rounded twice: within
//! 0.75). Measured maximum errors against mpmath at 200 bits, and over every f32 input, are in
//! docs/arithmetic.md and come from `scripts/check_ulp.py` and
//! `cargo run --release --example ulp`.
//!
//! In f32, e^x and ln x are the f64 functions rounded to f32 (≤ 0.5 ulp + 2⁻²⁹); tanh and σ,
//! which the f32 training core applies to every unit at every step, are branch-free versions in
//! f32 arithmetic that vectorise over 16 lanes under AVX-512 (within the 2 ulp the contract
//! allows f32: measured over every f32 input).

mod vector;

use crate::isa::Isa;
use std::f64::consts::LOG2_E;
use vector::F64s;

/// ln 2 to 32 bits (its low 21 mantissa bits are zero), so that n · LN2_HI is exact for
/// |n| < 2²¹ (Cody and Waite's split).
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
/// ln 2 − LN2_HI, rounded.
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
/// 1.5 · 2⁵²: adding and subtracting it rounds a number below 2⁵¹ in magnitude to the nearest
/// integer (ties to even), with + and − only.
const ROUND: f64 = 6_755_399_441_055_744.0;

/// An unevaluated sum hi + lo of two f64 (per lane) with |lo| ≤ ulp(hi)/2 (once normalised):
/// about 106 significant bits.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Dd<V> {
    hi: V,
    lo: V,
}

/// a + b = s + e exactly (Knuth's TwoSum; any magnitudes).
#[inline(always)]
fn two_sum<V: F64s>(a: V, b: V) -> Dd<V> {
    let s = a + b;
    let bb = s - a;
    Dd {
        hi: s,
        lo: (a - (s - bb)) + (b - bb),
    }
}

/// a + b = s + e exactly when |a| ≥ |b| (Dekker's Fast2Sum).
#[inline(always)]
fn fast_two_sum<V: F64s>(a: V, b: V) -> Dd<V> {
    let s = a + b;
    Dd { hi: s, lo: b - (s - a) }
}

/// Veltkamp's split: a = hi + lo with each half on 26 bits, so that products of halves are
/// exact (|a| < 2⁹⁹⁶).
#[inline(always)]
fn split<V: F64s>(a: V) -> (V, V) {
    let c = a * 134_217_729.0; // 2²⁷ + 1
    let hi = c - (c - a);
    (hi, a - hi)
}

/// a · b = p + e exactly, unless the product underflows: with `FUSED`, e = fma(a, b, −p), for
/// code compiled where the processor has a fused multiply–add; without, Dekker's product (no
/// library call on targets without one in hardware). Both give the same two numbers, p rounded
/// and e the exact, representable error, so the choice changes the speed, never the bits (the
/// functions below only pass operands whose products stay normal).
#[inline(always)]
fn two_prod<const FUSED: bool, V: F64s>(a: V, b: V) -> Dd<V> {
    let p = a * b;
    if FUSED {
        return Dd {
            hi: p,
            lo: a.mul_add(b, -p),
        };
    }
    let ((ah, al), (bh, bl)) = (split(a), split(b));
    Dd {
        hi: p,
        lo: ((ah * bh - p) + ah * bl + al * bh) + al * bl,
    }
}

impl<V: F64s> Dd<V> {
    #[inline(always)]
    fn of(x: f64) -> Self {
        Dd {
            hi: V::splat(x),
            lo: V::splat(0.0),
        }
    }

    /// self + o, accurate to about 2⁻¹⁰⁶ relative (both operands' errors kept).
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        let s = two_sum(self.hi, o.hi);
        let t = two_sum(self.lo, o.lo);
        let u = fast_two_sum(s.hi, s.lo + t.hi);
        fast_two_sum(u.hi, u.lo + t.lo)
    }

    /// `self.add(Dd { hi: b, lo: 0 })`, bit for bit, without the work a zero low part makes
    /// useless: the low parts' exact sum is `self.lo + 0.0` (−0 made +0) with error +0, and
    /// what remains of `add` keeps those two numbers.
    #[inline(always)]
    fn add_f64(self, b: V) -> Self {
        let s = two_sum(self.hi, b);
        let u = fast_two_sum(s.hi, s.lo + (self.lo + 0.0));
        fast_two_sum(u.hi, u.lo + 0.0)
    }

    /// self · b.
    #[inline(always)]
    fn mul<const FUSED: bool>(self, b: V) -> Self {
        let p = two_prod::<FUSED, V>(self.hi, b);
        fast_two_sum(p.hi, p.lo + self.lo * b)
    }

    /// self · 2^k for a power of two `p2` = 2^k: exact while both parts stay normal.
    #[inline(always)]
    fn scale(self, p2: V) -> Self {
        Dd {
            hi: self.hi * p2,
            lo: self.lo * p2,
        }
    }

    /// self / d by long division: a quotient digit, the exact remainder, a second digit
    /// (about 2⁻¹⁰⁰ relative: far below the final rounding).
    #[inline(always)]
    fn div<const FUSED: bool>(self, d: Self) -> Self {
        let q1 = self.hi / d.hi;
        let r = self.add(d.mul::<FUSED>(-q1));
        fast_two_sum(q1, r.hi / d.hi)
    }

    /// hi + lo rounded to the nearest f64.
    #[inline(always)]
    fn value(self) -> V {
        self.hi + self.lo
    }

    /// Per lane, `yes` where `m` holds, else `no`.
    #[inline(always)]
    fn select(m: V::Mask, yes: Self, no: Self) -> Self {
        Dd {
            hi: V::select(m, yes.hi, no.hi),
            lo: V::select(m, yes.lo, no.lo),
        }
    }
}

/// 2^n for n in the normal exponent range −1022 … 1023.
#[inline(always)]
fn pow2(n: i32) -> f64 {
    f64::from_bits(((n + 1023) as u64) << 52)
}

/// 1/k! for k = 16 … 3, highest first: e^r − 1 − r − r²/2 = r³ · Σ r^(k−3)/k!. On |r| ≤ ln2/2
/// the first omitted term, r¹⁷/17!, is below 2⁻⁷⁴ relative to e^r.
const EXP_TAYLOR: [f64; 14] = {
    let mut c = [0.0; 14];
    let mut k = 3;
    let mut f = 1.0f64;
    while k <= 16 {
        f *= k as f64; // k!/2, exact in f64 up to 16!/2
        c[16 - k] = 0.5 / f;
        k += 1;
    }
    c
};

/// x = k · ln2 + r with |r| ≤ ln2/2 (plus a hair), returning the integer k (as an f64) and
/// expm1(r) = e^r − 1 as a double-double, so that e^x = 2^k · (1 + m). For finite x with
/// |x| < 2²⁰.
#[inline(always)]
fn reduce<const FUSED: bool, V: F64s>(x: V) -> (V, Dd<V>) {
    let k = (x * LOG2_E + ROUND) - ROUND; // the integer nearest x / ln2
    // x − k·LN2_HI is exact (k·LN2_HI is, and lies within a factor 2 of x: Sterbenz);
    // k·LN2_LO is carried exactly as a product pair.
    let t = x - k * LN2_HI;
    let p = two_prod::<FUSED, V>(k, V::splat(LN2_LO));
    let r = two_sum(t, -p.hi);
    let r = fast_two_sum(r.hi, r.lo - p.lo);
    let (rh, rl) = (r.hi, r.lo);

    // expm1(r) = r + r²/2 + r³/6 + …: the first two terms exactly, the tail to working
    // precision (it is below r²/6 relative to r), and what r's low part adds to each.
    let mut q = V::splat(0.0);
    for c in EXP_TAYLOR {
        q = q * rh + c;
    }
    let sq = two_prod::<FUSED, V>(rh, rh); // r_hi², exact
    let tail = rh * sq.hi * q;
    let low = rl + rl * (rh + sq.hi * 0.5) + tail; // d/dr (r + r²/2) = 1 + r, times r_lo
    let m = fast_two_sum(rh, sq.hi * 0.5);
    (k, fast_two_sum(m.hi, m.lo + (sq.lo * 0.5 + low)))
}

/// (hi + lo) · 2^n rounded once to the nearest f64, hi + lo in (0, 2), including results in the
/// subnormal range (rounded at the subnormal's ulp directly, not twice) and overflow to ∞.
#[inline(always)]
fn ldexp_dd(v: Dd<f64>, n: i32) -> f64 {
    let y = v.value();
    if n > -1022 || (n == -1022 && y >= 1.0) {
        return if n > 1023 { y * 2.0 * pow2(n - 1) } else { y * pow2(n) }; // exact, or ∞
    }
    // Below 2⁻¹⁰²²: scale to w = v · 2^(n+1022) < 1 exactly, add 1 so that the sum's ulp
    // (2⁻⁵²) is the subnormal ulp (2⁻¹⁰⁷⁴) once scaled back, round there, and take 1 away.
    if n < -1022 - 60 {
        return 0.0; // below a quarter of the smallest subnormal
    }
    let w = v.scale(pow2(n + 1022));
    let t = fast_two_sum(1.0, w.hi);
    let y = t.hi + (t.lo + w.lo);
    (y - 1.0) * pow2(-1022)
}

/// e^x: NaN for NaN, +∞ above ln(f64::MAX) (≈ 709.78), 0 below ln of half the smallest
/// subnormal (≈ −745.13), subnormal results rounded once.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.8 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    let (k, m) = reduce::<false, f64>(x);
    ldexp_dd(fast_two_sum(1.0, m.hi).add_f64(m.lo), k as i32)
}

/// Coefficients 2/(2j+1) for j = 12 … 1: ln((1+s)/(1−s)) = 2s + s³ · Σ_j 2/(2j+1) · s^(2j−2).
/// On |s| ≤ 3 − 2√2 (the reduced argument's range) the first omitted term is below 2⁻⁶⁸
/// relative to 2s.
const LN_SERIES: [f64; 12] = {
    let mut c = [0.0; 12];
    let mut j = 1;
    while j <= 12 {
        c[12 - j] = 2.0 / (2 * j + 1) as f64;
        j += 1;
    }
    c
};

/// ln x: NaN for NaN and x < 0, −∞ for ±0, +∞ for +∞; subnormal x exact in its scaling.
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    // x = 2^k · m with m in [√2/2, √2).
    let (mut bits, mut k) = (x.to_bits(), 0i32);
    if bits >> 52 == 0 {
        bits = (x * pow2(54)).to_bits(); // subnormal: scale into the normal range first
        k -= 54;
    }
    k += (bits >> 52) as i32 - 1023;
    let mut m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    if m > std::f64::consts::SQRT_2 {
        m *= 0.5;
        k += 1;
    }
    let f = m - 1.0; // exact (Sterbenz)

    // ln(1+f) = 2 atanh(s), s = f / (2 + f), s as a double-double.
    let d = two_sum(2.0, f);
    let sh = f / d.hi;
    let p = two_prod::<false, f64>(sh, d.hi);
    let sl = (((f - p.hi) - p.lo) - sh * d.lo) / d.hi; // the division's remainder, divided
    let z = sh * sh;
    let mut poly = 0.0;
    for c in LN_SERIES {
        poly = poly * z + c;
    }
    let corr = sh * z * poly + 2.0 * sl * (1.0 + z); // the series' tail, and s_lo · d/ds (2s + 2s³/3)

    // k·ln2 + 2s_hi exactly as a pair (k·LN2_HI is exact), then the small terms, then round.
    let kf = k as f64;
    let a = two_sum(kf * LN2_HI, 2.0 * sh);
    a.hi + (a.lo + (kf * LN2_LO + corr))
}

/// tanh x = expm1(2|x|) / (expm1(2|x|) + 2) with the sign of x, the quotient in double-double:
/// NaN for NaN, ±1 beyond |x| = 19.1 (where it rounds to ±1), x itself below 2⁻²⁸ (where
/// tanh x = x − x³/3 rounds to x), −0 for −0. Branch-free (the special cases are selected at
/// the end), so that the cells' element-wise loops vectorise over it.
#[inline(always)]
pub fn tanh(x: f64) -> f64 {
    tanh_with::<false>(x)
}

/// [`tanh`], its exact products by fused multiply–adds when `FUSED` (for code compiled where the
/// processor has them): the same bits, faster.
#[inline(always)]
pub fn tanh_with<const FUSED: bool>(x: f64) -> f64 {
    tanh_of::<FUSED, f64>(x)
}

/// [`tanh_with`] per lane.
#[inline(always)]
fn tanh_of<const FUSED: bool, V: F64s>(x: V) -> V {
    // 2|x|, clamped to where the quotient is needed (a NaN lane is replaced at the end),
    // = k·ln2 + r.
    let a = x.abs();
    let ac = a.clamp(1.0 / 268_435_456.0, 19.1);
    let (k, m) = reduce::<FUSED, V>(ac + ac);
    let p2 = k.pow2();
    // e^2a − 1 = (2^k − 1) + 2^k · expm1(r); k ≥ 0, so 2^k − 1 is Fast2Sum's case (the same
    // exact pair as TwoSum's).
    let em1 = fast_two_sum(p2, V::splat(-1.0)).add(m.scale(p2));
    let t = em1.div::<FUSED>(em1.add_f64(V::splat(2.0))).value();
    let t = V::select(a.lt(1.0 / 268_435_456.0), a, V::select(a.ge(19.1), V::splat(1.0), t));
    V::select(a.is_nan(), x, t.copysign(x))
}

/// σ(x) = 1 / (1 + e^−x) for x ≥ 0, e^x / (1 + e^x) for x < 0 (only e^−|x| ≤ 1 is formed), the
/// quotient in double-double: NaN for NaN, 0 below x = −746. Subnormal results are the
/// double-double quotient rounded to 53 bits then scaled (two roundings: within 0.75 ulp there).
/// Branch-free, like [`tanh`].
#[inline(always)]
pub fn sigmoid(x: f64) -> f64 {
    sigmoid_with::<false>(x)
}

/// [`sigmoid`], its exact products by fused multiply–adds when `FUSED`: the same bits, faster.
#[inline(always)]
pub fn sigmoid_with<const FUSED: bool>(x: f64) -> f64 {
    sigmoid_of::<FUSED, f64>(x)
}

/// [`sigmoid_with`] per lane.
#[inline(always)]
fn sigmoid_of<const FUSED: bool, V: F64s>(x: V) -> V {
    // −|x| (clamped) = k·ln2 + r, so that e^−|x| = 2^k · v, v = 1 + expm1(r), k ≥ −1077.
    let (k, m) = reduce::<FUSED, V>(-x.abs().min(746.0));
    let v = fast_two_sum(V::splat(1.0), m.hi).add_f64(m.lo);
    // 1 + e^−a: below 2⁻¹⁰²², e^−a is far beyond the double-double's precision next to 1.
    let d = v.scale(k.max(-1022.0).pow2()).add_f64(V::splat(1.0));
    // x ≥ 0: 1 / (1 + e^−a). x < 0: e^−a / (1 + e^−a) = 2^k · (v / d), scaled in two
    // exact-or-once-rounded steps by 2^h and 2^(k−h), h = ⌊k/2⌋ (k/2 − 1/4 is never a tie: it
    // rounds to ⌊k/2⌋ exactly). The numerator is chosen before the one division (each lane runs
    // its own case's operations only).
    let pos = x.ge(0.0);
    let q = Dd::select(pos, Dd::of(1.0), v).div::<FUSED>(d).value();
    let h = ((k * 0.5 - 0.25) + ROUND) - ROUND;
    V::select(x.is_nan(), x, V::select(pos, q, q * h.pow2() * (k - h).pow2()))
}

/// Vectors [`tanh_in_place`] takes side by side under AVX-512 (32 lanes) and AVX2 (16): 4 ran
/// f64 tanh at 2.2 ns per element with AVX-512 (2: 3.4, 8: 2.15) and 4.9 with AVX2 (2: 6.8,
/// 8: 6.3, out of registers), AMD EPYC family 26 model 2.
#[cfg(target_arch = "x86_64")]
const CHAINS: usize = 4;

/// v = tanh(v) element-wise, in place: under AVX-512 and AVX2 four vectors at a time, each
/// operation on all of them before the next (see the module `vector`), then single vectors,
/// then element by element; on the portable path element by element (a loop the compiler
/// vectorises). The same operations on each element as [`tanh_with`]: the same bits.
pub fn tanh_in_place(v: &mut [f64]) {
    in_place(v, Function::Tanh, Isa::current());
}

/// v = σ(v) element-wise, in place, as [`tanh_in_place`]: the same bits as [`sigmoid_with`].
pub fn sigmoid_in_place(v: &mut [f64]) {
    in_place(v, Function::Sigmoid, Isa::current());
}

/// v = e^v element-wise, in place (the softmax's), as [`tanh_in_place`]: the same bits as
/// [`exp`]. Under AVX-512 and AVX2, a block of vectors is computed as vectors where all its
/// lanes lie in −708 … 709, whose results are normal numbers that `exp` forms as y · 2^k without
/// its overflow and subnormal branches; any other block, and the portable path, element by
/// element by `exp`. A character model's softmax (f64, 76 classes): `experiments/charlm.toml`
/// 27.5–28.4 s against 34.2–36.5 element by element (alternating, AMD EPYC family 26 model 2).
pub fn exp_in_place(v: &mut [f64]) {
    in_place(v, Function::Exp, Isa::current());
}

/// Where [`exp_normal`] gives [`exp`]'s bits: k = round(x / ln 2) lies in −1021 … 1023, so that
/// e^x = y · 2^k is a normal number, formed by one exact product.
#[cfg(target_arch = "x86_64")]
const EXP_VECTOR: std::ops::RangeInclusive<f64> = -708.0..=709.0;

/// [`exp`] per lane for lanes in [`EXP_VECTOR`]: its operations without the branches that other
/// inputs need.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn exp_normal<const FUSED: bool, V: F64s>(x: V) -> V {
    let (k, m) = reduce::<FUSED, V>(x);
    fast_two_sum(V::splat(1.0), m.hi).add_f64(m.lo).value() * k.pow2()
}

/// e^x over one block of `V::LANES` values: as vectors where all of them lie in [`EXP_VECTOR`]
/// ([`exp_normal`]), else element by element (a NaN is in no range).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn exp_block<V: F64s>(b: &mut [f64]) {
    if b.iter().all(|x| EXP_VECTOR.contains(x)) {
        exp_normal::<true, V>(V::load(b)).store(b);
    } else {
        b.iter_mut().for_each(|x| *x = exp(*x));
    }
}

/// The functions [`in_place`] applies.
#[derive(Clone, Copy, Debug)]
enum Function {
    Tanh,
    Sigmoid,
    Exp,
}

/// v = f(v) element-wise, in place, on the path `isa` (one this processor runs).
fn in_place(v: &mut [f64], f: Function, isa: Isa) {
    assert!(isa <= Isa::native(), "{} on a processor without it", isa.name());
    #[cfg(target_arch = "x86_64")]
    match isa {
        // SAFETY: AVX-512 runs here (asserted): avx512f, avx2 and fma were detected.
        Isa::Avx512 => return unsafe { wide(v, f) },
        // SAFETY: AVX2 runs here (asserted): avx2 and fma were detected.
        Isa::Avx2 => return unsafe { mid(v, f) },
        Isa::Portable => {}
    }
    // `for` loops (see `Real::act_tanh_in_place`). The exact products by fused multiply–adds
    // where the baseline target has them in hardware (every aarch64 processor; x86-64's baseline
    // has none, and `mul_add` would call the C library's software fma): the same bits.
    const FUSED: bool = cfg!(target_arch = "aarch64");
    match f {
        Function::Tanh => {
            for x in v {
                *x = tanh_with::<FUSED>(*x);
            }
        }
        Function::Sigmoid => {
            for x in v {
                *x = sigmoid_with::<FUSED>(*x);
            }
        }
        Function::Exp => {
            for x in v {
                *x = exp(*x);
            }
        }
    }
}

/// [`in_place`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn wide(v: &mut [f64], f: Function) {
    use vector::x86::Zmm;
    match f {
        Function::Tanh => in_vectors!(v, tanh_of, Zmm<CHAINS>, Zmm<1>),
        Function::Sigmoid => in_vectors!(v, sigmoid_of, Zmm<CHAINS>, Zmm<1>),
        Function::Exp => exp_vectors!(v, Zmm<CHAINS>, Zmm<1>),
    }
}

/// [`in_place`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn mid(v: &mut [f64], f: Function) {
    use vector::x86::Ymm;
    match f {
        Function::Tanh => in_vectors!(v, tanh_of, Ymm<CHAINS>, Ymm<1>),
        Function::Sigmoid => in_vectors!(v, sigmoid_of, Ymm<CHAINS>, Ymm<1>),
        Function::Exp => exp_vectors!(v, Ymm<CHAINS>, Ymm<1>),
    }
}

/// `v[i] = $f(v[i])` in place, by values of `$wide`, then of `$one`, then element by element
/// (fused products). A macro, not a function taking `impl Fn`: a function passed that way is
/// called through a shim compiled without the caller's instruction sets.
#[cfg(target_arch = "x86_64")]
macro_rules! in_vectors {
    ($v:expr, $f:ident, $wide:ty, $one:ty) => {{
        let mut blocks = $v.chunks_exact_mut(<$wide>::LANES);
        for b in &mut blocks {
            $f::<true, $wide>(<$wide>::load(b)).store(b);
        }
        let mut singles = blocks.into_remainder().chunks_exact_mut(<$one>::LANES);
        for b in &mut singles {
            $f::<true, $one>(<$one>::load(b)).store(b);
        }
        for x in singles.into_remainder() {
            *x = $f::<true, f64>(*x);
        }
    }};
}
#[cfg(target_arch = "x86_64")]
use in_vectors;

/// `v[i] = exp(v[i])` in place as [`in_vectors`], each block by [`exp_block`].
#[cfg(target_arch = "x86_64")]
macro_rules! exp_vectors {
    ($v:expr, $wide:ty, $one:ty) => {{
        let mut blocks = $v.chunks_exact_mut(<$wide>::LANES);
        for b in &mut blocks {
            exp_block::<$wide>(b);
        }
        let mut singles = blocks.into_remainder().chunks_exact_mut(<$one>::LANES);
        for b in &mut singles {
            exp_block::<$one>(b);
        }
        for x in singles.into_remainder() {
            *x = exp(*x);
        }
    }};
}
#[cfg(target_arch = "x86_64")]
use exp_vectors;

/// e^x in f32: the f64 value rounded to f32.
pub fn exp_f32(x: f32) -> f32 {
    exp(f64::from(x)) as f32
}

/// ln x in f32: the f64 value rounded to f32.
pub fn ln_f32(x: f32) -> f32 {
    ln(f64::from(x)) as f32
}

/// log2 e, ln 2 split for f32: LN2_HI_F32 has 15 significant bits, so that k · LN2_HI_F32 is
/// exact for |k| < 2⁹; LN2_LO_F32 = ln 2 − LN2_HI_F32, rounded.
const LOG2_E_F32: f32 = std::f32::consts::LOG2_E;
const LN2_HI_F32: f32 = f32::from_bits(0x3F31_7200);
const LN2_LO_F32: f32 = f32::from_bits(0x35BF_BE8E);
/// 1.5 · 2²³: adding and subtracting it rounds an f32 below 2²² in magnitude to an integer.
const ROUND_F32: f32 = 12_582_912.0;

/// 1/k! for k = 7 … 2 in f32: expm1's Taylor series on |r| ≤ ln2/2 (plus a hair), whose first
/// omitted term, r⁸/8!, is below 2⁻²⁷ (a tenth of an f32 ulp).
const EXPM1_F32: [f32; 6] = [1.0 / 5040.0, 1.0 / 720.0, 1.0 / 120.0, 1.0 / 24.0, 1.0 / 6.0, 0.5];

/// e^y = 2^k · (1 + p) for −104 ≤ y ≤ 19, as (k, p), p = expm1(r) for y = k·ln2 + r, in f32
/// arithmetic (k·ln2 subtracted in two exact-or-once-rounded parts, Cody and Waite's). Branch-
/// free, so that loops over it vectorise.
#[inline(always)]
fn exp_parts_f32(y: f32) -> (i32, f32) {
    let rounded = y * LOG2_E_F32 + ROUND_F32;
    let kf = rounded - ROUND_F32; // the integer nearest y / ln2
    let r = (y - kf * LN2_HI_F32) - kf * LN2_LO_F32; // the first subtraction exact (Sterbenz)
    // r + r²·(1/2 + r·(1/6 + …)): the leading term added last, so that the rounding errors of
    // the rest count at r²'s scale.
    let mut q = 0.0f32;
    for c in EXPM1_F32 {
        q = q * r + c;
    }
    let p = r + (r * r) * q;
    // k sits in the low mantissa bits of `rounded`: read it with integer arithmetic (a
    // float-to-integer conversion would not vectorise).
    (rounded.to_bits().wrapping_sub(ROUND_F32.to_bits()) as i32, p)
}

/// 2^k in f32 for k in the normal exponent range −126 … 127.
#[inline(always)]
fn pow2_f32(k: i32) -> f32 {
    f32::from_bits((k.wrapping_add(127) as u32) << 23)
}

/// tanh(a) = a + a·z·P(z), z = a², on |a| < 0.625: P fitted (least squares, weighted by its
/// share of tanh) to (tanh a − a)/a³, within 2⁻²⁷·⁵ relative in tanh; highest degree first.
const TANH_P_F32: [f32; 5] = [
    f32::from_bits(0xBBBA_E8FA),
    f32::from_bits(0x3CA9_10BC),
    f32::from_bits(0xBD5C_1D97),
    f32::from_bits(0x3E08_838C),
    f32::from_bits(0xBEAA_AA99),
];

/// tanh x in f32, the f32 training core's, in f32 arithmetic: below |x| = 0.625 the odd
/// polynomial x + x·z·P(z), above it 1 − 2 / (1 + e^2|x|) with 1 + e^2|x| = (1 + 2^k) + 2^k·p
/// rounded once; the sign of x, ±1 beyond |x| = 9.5, NaN for NaN. Branch-free, so that the
/// element-wise loops vectorise over 16 lanes under AVX-512 (its f64 predecessor ran 8).
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let z = a * a;
    let mut q = 0.0f32;
    for c in TANH_P_F32 {
        q = q * z + c;
    }
    let small = a + a * (z * q);
    let ac = a.min(9.5); // NaN → 9.5, handled below; beyond, tanh rounds to 1
    let (k, p) = exp_parts_f32(ac + ac);
    let s = pow2_f32(k);
    let large = 1.0 - 2.0 / ((1.0 + s) + s * p);
    let t = if a < 0.625 { small } else { large };
    if a.is_nan() { x } else { t.copysign(x) }
}

/// σ(x) in f32, the f32 training core's, in f32 arithmetic. For x ≥ −16: 1 / (1 + e^−x) with
/// e^−x = 2^k · (1 + p), k ≤ 23, and 1 + e^−x = (1 + 2^k) + 2^k·p rounded once (1 + 2^k is
/// exact). Below, e^x < 2⁻²³: σ(x) = e^x · (1 − e^x) to within e^2x relative (below 2⁻⁴⁶), with
/// e^x = 2^k + 2^k·p, scaled in two steps so that a subnormal result is rounded once more at
/// most; 0 below x = −104, NaN for NaN. Branch-free, so that loops over it vectorise.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    let tail = x < -16.0;
    // Clamped, NaN to a number (max and min return the other operand, where clamp would keep
    // the NaN): handled at the end.
    #[allow(clippy::manual_clamp)]
    let y = if tail {
        x.max(-104.0)
    } else {
        (-x).max(-104.0).min(16.0)
    };
    let (k, p) = exp_parts_f32(y); // −150 ≤ k ≤ 24
    // 1 + e^y; below 2⁻⁶⁰, e^y is lost next to 1 whichever.
    let s = pow2_f32(k.max(-60));
    let s_p = s * p; // exact
    let sp = s + s_p; // e^y, rounded once
    // 1 + e^y = a + b, both exact: (1 + 2^k) + 2^k·p for k ≥ −23, else 1 + e^y with e^y's
    // rounding (below 2⁻⁴⁸) dropped; then d = a + b rounded and its error, exactly (Fast2Sum:
    // |a| ≥ |b|).
    let (a, b) = if k >= -23 { (1.0 + s, s_p) } else { (1.0, sp) };
    let d = a + b;
    let d_lo = b - (d - a);
    let q = 1.0 / d;
    let main = q - q * (q * d_lo); // 1 / (d + d_lo) to first order: d's rounding taken back
    let h = k >> 1;
    let sh = pow2_f32(h);
    let sh_p = sh * p; // exact
    // e^y − e^2y as 2^h + (2^h·p − e^2y·2^−(k−h)), rounded last at 2^h's scale, then scaled.
    let small = (sh + (sh_p - (sh + sh_p) * sp)) * pow2_f32(k - h);
    let v = if tail { small } else { main };
    if x.is_nan() { x } else { v }
}

/// cos(πx), for the cosine learning-rate schedule: reduced exactly to π·y with y in [0, 1/4]
/// (cos is even, 2-periodic, cos(π(1−y)) = −cos(πy) and cos(π(1/2−y)) = sin(πy)), then a Taylor
/// series to 2⁻⁶⁰ (within about an ulp).
pub fn cos_pi(x: f64) -> f64 {
    if !x.is_finite() {
        return f64::NAN;
    }
    let mut y = x.abs() % 2.0; // exact
    if y > 1.0 {
        y = 2.0 - y;
    }
    let (sign, y) = if y > 0.5 { (-1.0, 1.0 - y) } else { (1.0, y) }; // both exact
    let (t, even) = if y <= 0.25 {
        (std::f64::consts::PI * y, true)
    } else {
        (std::f64::consts::PI * (0.5 - y), false)
    };
    // cos t = 1 − t²/(1·2) · (1 − t²/(3·4) · (1 − …)), sin t / t = 1 − t²/(2·3) · (1 − …),
    // eleven factors: the first omitted term is below 2⁻⁶⁰ for |t| ≤ π/4.
    let (z, mut sum) = (t * t, 1.0);
    for k in (1..=11).rev() {
        let d = if even {
            (2 * k - 1) * (2 * k)
        } else {
            (2 * k) * (2 * k + 1)
        };
        sum = 1.0 - z * sum / d as f64;
    }
    sign * if even { sum } else { t * sum }
}

/// x^n for an integer n by binary powering (the optimiser's bias corrections and schedules),
/// so that the result does not depend on a runtime library's `powi`.
pub fn powi(x: f64, n: i64) -> f64 {
    let (mut base, mut e, mut acc) = (x, n.unsigned_abs(), 1.0);
    while e > 0 {
        if e & 1 == 1 {
            acc *= base;
        }
        base *= base;
        e >>= 1;
    }
    if n < 0 { 1.0 / acc } else { acc }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in ulps between `got` and `want` (f64), the ulp taken at `want`.
    fn ulps(got: f64, want: f64) -> f64 {
        if got == want {
            return 0.0;
        }
        let w = want.abs();
        let ulp = f64::from_bits(w.to_bits() + 1) - w; // the gap above |want|
        (got - want).abs() / ulp
    }

    /// Special values: NaN, ±∞, ±0, the overflow and underflow edges.
    #[test]
    fn special_values() {
        let nan = f64::NAN;
        for f in [exp, ln, tanh, sigmoid] {
            assert!(f(nan).is_nan());
        }
        assert_eq!(
            (exp(f64::INFINITY), exp(f64::NEG_INFINITY), exp(0.0), exp(-0.0)),
            (f64::INFINITY, 0.0, 1.0, 1.0)
        );
        assert_eq!(
            (exp(709.78), exp(709.79), exp(-745.14)),
            (exp(709.78), f64::INFINITY, 0.0)
        );
        assert!(exp(709.78).is_finite() && exp(-745.13) == f64::from_bits(1));
        assert_eq!(
            (ln(0.0), ln(-0.0), ln(1.0), ln(f64::INFINITY)),
            (f64::NEG_INFINITY, f64::NEG_INFINITY, 0.0, f64::INFINITY)
        );
        assert!(ln(-1.0).is_nan() && ln(f64::NEG_INFINITY).is_nan());
        assert_eq!(
            (tanh(f64::INFINITY), tanh(-30.0), tanh(1e-300), tanh(0.0)),
            (1.0, -1.0, 1e-300, 0.0)
        );
        assert!(tanh(-0.0).is_sign_negative() && tanh(-5e-324) == -5e-324);
        assert_eq!(
            (sigmoid(f64::INFINITY), sigmoid(f64::NEG_INFINITY), sigmoid(0.0)),
            (1.0, 0.0, 0.5)
        );
        assert_eq!(sigmoid(-745.0), exp(-745.0)); // the smallest subnormal: σ(x) = e^x there
        assert_eq!((powi(0.9, 0), powi(2.0, 10), powi(2.0, -2)), (1.0, 1024.0, 0.25));
    }

    /// The fused and the unfused exact products give the same tanh and σ, bit for bit: over
    /// every binade the functions reach (2⁻³⁰ to 2¹⁰, both signs; random mantissas from a fixed
    /// seed), the special values and the edges of their cut-offs. Were one of the products
    /// inexact (an underflow, a bad split), the two would differ in some last bits here.
    #[test]
    fn fused_products_change_no_bit() {
        for &x in &inputs() {
            let (t0, t1) = (tanh_with::<false>(x), tanh_with::<true>(x));
            let (s0, s1) = (sigmoid_with::<false>(x), sigmoid_with::<true>(x));
            assert!(same(t0, t1), "tanh({x:e})");
            assert!(same(s0, s1), "σ({x:e})");
        }
    }

    /// The same bits, or both NaN.
    fn same(a: f64, b: f64) -> bool {
        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
    }

    /// About 330 000 inputs: special values, the thresholds in the code, and random mantissas
    /// at every scale from 2⁻³⁰ to 2¹⁰, both signs.
    fn inputs() -> Vec<f64> {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut inputs = vec![
            0.0,
            -0.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            19.1,
            746.0,
            -746.0,
        ];
        inputs.extend([1.0 / 268_435_456.0, 709.0, -709.0, 5e-324, f64::MAX, f64::MIN_POSITIVE]);
        for e in -30..=10 {
            for _ in 0..4000 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let m = f64::from_bits((state >> 12) | (1023u64 << 52)); // [1, 2)
                let x = m * pow2(e);
                inputs.extend([x, -x]);
            }
        }
        inputs
    }

    /// The in-place slices (tanh, σ, e^x) give each element the bits of the one-element
    /// functions, on every path this processor runs (AVX-512 and AVX2: several vectors side by
    /// side, single vectors, then element by element): over every input at once, over slices of
    /// each length up to three AVX-512 blocks (32 lanes) and a bit (every mix of the three), and
    /// over whole blocks at the ends of e^x's vector range and past them (a wider range fails).
    #[test]
    fn slices_give_the_same_bits_on_every_path() {
        let x = inputs();
        let paths = [Isa::Portable, Isa::Avx2, Isa::Avx512];
        for isa in paths.into_iter().filter(|&isa| isa <= Isa::native()) {
            for f in [Function::Tanh, Function::Sigmoid, Function::Exp] {
                let check = |x: &[f64]| {
                    let mut v = x.to_vec();
                    in_place(&mut v, f, isa);
                    for (&x, &y) in x.iter().zip(&v) {
                        let want = match f {
                            Function::Tanh => tanh(x),
                            Function::Sigmoid => sigmoid(x),
                            Function::Exp => exp(x),
                        };
                        assert!(same(y, want), "{f:?}({x:e}) on {}: {y:e}, not {want:e}", isa.name());
                    }
                };
                check(&x);
                for len in 0..=3 * 32 + 9 {
                    check(&x[1000..1000 + len]);
                }
                // Whole blocks at the ends of exp's vector range, and just past them.
                let ends = [
                    -708.0,
                    709.0,
                    -707.999_999_999,
                    708.999_999_999,
                    -708.000_000_001,
                    709.000_000_001,
                    -740.0,
                    709.7,
                ];
                for end in ends {
                    let block: Vec<f64> = (0..64)
                        .map(|i| if i % 3 == 0 { end } else { (i as f64 - 32.0) * 0.37 })
                        .collect();
                    check(&block);
                }
            }
        }
    }

    /// f32 tanh and σ (f32 arithmetic) within 2 ulp of the f64 functions (themselves within
    /// about half an f64 ulp) over a million f32 inputs spread over every bit pattern, and their
    /// special values exact. (`cargo run --release --example ulp -- f32` checks every input.)
    #[test]
    fn f32_functions_within_two_ulps() {
        fn ulps(got: f32, want: f64) -> f64 {
            if f64::from(got) == want {
                return 0.0;
            }
            let w = (want as f32).abs();
            let ulp = f64::from(f32::from_bits(w.to_bits() + 1)) - f64::from(w);
            (f64::from(got) - want).abs() / ulp
        }
        let mut worst = [(0.0, 0.0f32); 2];
        for i in 0..(u32::MAX / 4099) {
            let x = f32::from_bits(i * 4099);
            if x.is_nan() {
                continue;
            }
            let e = [
                ulps(tanh_f32(x), tanh(x.into())),
                ulps(sigmoid_f32(x), sigmoid(x.into())),
            ];
            for (w, e) in worst.iter_mut().zip(e) {
                if e > w.0 {
                    *w = (e, x);
                }
            }
        }
        assert!(worst[0].0 <= 2.0, "tanh_f32: {} ulp at {:e}", worst[0].0, worst[0].1);
        assert!(worst[1].0 <= 2.0, "sigmoid_f32: {} ulp at {:e}", worst[1].0, worst[1].1);
        for (x, t) in [
            (0.0f32, 0.0f32),
            (-0.0, -0.0),
            (f32::INFINITY, 1.0),
            (f32::NEG_INFINITY, -1.0),
        ] {
            assert_eq!(tanh_f32(x).to_bits(), t.to_bits(), "tanh_f32({x})");
        }
        for (x, v) in [
            (f32::INFINITY, 1.0f32),
            (f32::NEG_INFINITY, 0.0),
            (0.0, 0.5),
            (-104.5, 0.0),
        ] {
            assert_eq!(sigmoid_f32(x).to_bits(), v.to_bits(), "sigmoid_f32({x})");
        }
        assert!(tanh_f32(f32::NAN).is_nan() && sigmoid_f32(f32::NAN).is_nan());
    }

    /// Identities that hold exactly in real arithmetic, checked to within an ulp or two of
    /// their own rounding: e^(ln x) = x, tanh(x) = 2σ(2x) − 1, ln(2^k) = k ln 2, over many
    /// scales. (Absolute accuracy against a 200-bit reference is `scripts/check_ulp.py`'s job.)
    #[test]
    fn identities() {
        let mut worst = [0.0f64; 3];
        let mut x = 1e-300;
        while x < 1e300 {
            for y in [x, x * 1.234_567, x * 1.999] {
                worst[0] = worst[0].max(ulps(exp(ln(y)), y) / (1.0 + ln(y).abs())); // error amplified by |ln y|
            }
            x *= 1.7;
        }
        for i in -4000..4000 {
            let x = i as f64 * 0.0049;
            let t = tanh(x);
            worst[1] = worst[1].max((t - (2.0 * sigmoid(2.0 * x) - 1.0)).abs() / f64::EPSILON);
        }
        for k in -1074..1024 {
            let p = if k >= -1022 {
                pow2(k)
            } else {
                f64::from_bits(1u64 << (k + 1074))
            };
            worst[2] = worst[2].max(ulps(ln(p), k as f64 * std::f64::consts::LN_2));
        }
        println!(
            "exp∘ln {:.2} ulp per unit |ln x|, tanh vs 2σ(2x)−1 {:.2} eps, ln 2^k {:.2} ulp",
            worst[0], worst[1], worst[2]
        );
        assert!(worst[0] < 1.5 && worst[1] < 2.0 && worst[2] <= 1.0, "{worst:?}");
    }

    /// Against the C library's functions (good to about an ulp themselves) on a dense grid:
    /// a gross error anywhere in the ranges shows up here before the precise measurement.
    #[test]
    #[allow(clippy::disallowed_methods)]
    fn close_to_the_c_library() {
        let mut worst = [0.0f64; 4];
        for i in -200_000..200_000 {
            let x = i as f64 * 3.7e-3 + (i as f64 * 0.618).fract() * 1e-3;
            worst[0] = worst[0].max(ulps(exp(x), x.exp()));
            worst[1] = worst[1].max(ulps(tanh(x / 20.0), (x / 20.0).tanh()));
            worst[2] = worst[2].max(ulps(sigmoid(x / 10.0), 1.0 / (1.0 + (-x / 10.0).exp())));
            let y = x.abs() * 1e3 + 1e-9;
            worst[3] = worst[3].max(ulps(ln(y), y.ln()));
        }
        println!(
            "largest distance from libm: exp {:.2}, tanh {:.2}, sigmoid {:.2}, ln {:.2} ulp",
            worst[0], worst[1], worst[2], worst[3]
        );
        assert!(worst.iter().all(|&w| w <= 3.0), "{worst:?}");
    }
}
