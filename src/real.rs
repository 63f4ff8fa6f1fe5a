//! The two element types of the training core (`model.dtype`), and the one product routine the
//! recurrence needs at every step.
//!
//! The core is generic over [`Real`], implemented for `f32` and `f64` only: f64 for fidelity
//! (the default, and always for the gradient checks), f32 for speed. Everything a run reports
//! (losses, norms, the probe's logarithms) is carried out of the core as f64.
//!
//! [`matmul`] is the per-step product `c (m, n) = [c +] a (m, k) · b (k, n)` of the time loop,
//! where m is the batch (often 1) and k, n are H or G·H. A general matrix-multiply routine packs
//! its operands into scratch buffers it allocates on every call, which on these small shapes
//! costs more than the arithmetic (profiled: 31 % of a step in packing at H = 128, B = 1). This
//! one works on the row-major operands as they are: a tile of R rows × NB columns of c is kept in
//! registers while k runs, each element summed in order k = 0, 1, … with fused multiply–adds, so
//! every path ([`Isa`]: AVX-512, AVX2, or the portable one's `mul_add`) gives the same bits
//! whatever the tile shape or vector width.

use ndarray::{ArrayView2, ArrayViewMut2, NdFloat};

/// The element type of a run's arrays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// 32-bit floats: about twice the speed, ~7 significant digits.
    F32,
    /// 64-bit floats (the default).
    F64,
}

impl Dtype {
    /// Parses a spec value (`f32`, `f64`).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "f32" => Some(Self::F32),
            "f64" => Some(Self::F64),
            _ => None,
        }
    }

    /// The spec's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F64 => "f64",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

/// A floating-point element type of the core.
pub trait Real: NdFloat + Default + std::iter::Sum {
    /// Its [`Dtype`].
    const DTYPE: Dtype;

    /// Converts from f64 (rounding to nearest for f32).
    fn of(x: f64) -> Self;

    /// Converts to f64 (exact).
    fn f64(self) -> f64;

    /// `c (m, n) = [c +] a (m, k) · b (k, n)`, all row-major and contiguous.
    fn matmul_slices(a: &[Self], b: &[Self], c: &mut [Self], m: usize, k: usize, n: usize, accumulate: bool);

    /// Taylor coefficients 1/k! of expm1, highest degree first, enough terms for this type's
    /// precision on |r| ≤ ln2/2 (the first omitted term is below half an ulp).
    const EXPM1_TAYLOR: &'static [f64];
    /// ln 2 split so that n·LN2_HI is exact for the n that occur (Cody and Waite).
    const LN2_HI: f64;
    /// ln 2 − LN2_HI.
    const LN2_LO: f64;
    /// 1.5·2^(mantissa bits): adding and subtracting it rounds to the nearest integer.
    const ROUND_MAGIC: f64;
    /// tanh(x) rounds to ±1 beyond this |x|.
    const TANH_LIMIT: f64;
    /// e^y is below the smallest normal number below this y (then taken as 0).
    const EXP_LOW: f64;

    /// 2^n from `t = x + ROUND_MAGIC` whose rounding made n = t − ROUND_MAGIC an integer in
    /// the normal exponent range: n sits in t's low mantissa bits, and moves to the exponent
    /// with integer arithmetic only (no float-to-integer conversion, which would not vectorise).
    fn pow2_of_rounded(t: Self) -> Self;

    /// Σ x² in f64: in order for f64 (so that f64 results stay those of earlier versions), in
    /// eight interleaved partial sums for f32 (so that the loop vectorises).
    fn sum_squares(x: &[Self]) -> f64;

    /// tanh as the core computes it: the C library's in f64, so that f64 results stay those of
    /// every earlier version (a chaotic run can turn a one-ulp difference into a different
    /// final loss); our vectorising [`tanh`] in f32, where speed is the point.
    fn act_tanh(x: Self) -> Self;

    /// σ as the core computes it: 1/(1 + exp(−x)) with the C library's exp in f64, our
    /// vectorising [`sigmoid`] in f32.
    fn act_sigmoid(x: Self) -> Self;
}

impl Real for f32 {
    const DTYPE: Dtype = Dtype::F32;

    fn of(x: f64) -> Self {
        x as f32
    }

    fn f64(self) -> f64 {
        self as f64
    }

    const EXPM1_TAYLOR: &'static [f64] = TAYLOR.split_at(TAYLOR.len() - 8).1;
    const LN2_HI: f64 = 0.693_359_375;
    const LN2_LO: f64 = -2.121_944_4e-4;
    const ROUND_MAGIC: f64 = 12_582_912.0;
    const TANH_LIMIT: f64 = 9.0;
    const EXP_LOW: f64 = -87.0;

    fn pow2_of_rounded(t: Self) -> Self {
        f32::from_bits(
            t.to_bits()
                .wrapping_sub((Self::ROUND_MAGIC as f32).to_bits())
                .wrapping_add(127)
                << 23,
        )
    }

    fn sum_squares(x: &[Self]) -> f64 {
        let mut lanes = [0.0f64; 8];
        let chunks = x.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for (s, &v) in lanes.iter_mut().zip(c) {
                *s += f64::from(v) * f64::from(v);
            }
        }
        lanes.iter().sum::<f64>() + rest.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>()
    }

    #[inline(always)]
    fn act_tanh(x: Self) -> Self {
        tanh(x)
    }

    #[inline(always)]
    fn act_sigmoid(x: Self) -> Self {
        sigmoid(x)
    }

    fn matmul_slices(a: &[Self], b: &[Self], c: &mut [Self], m: usize, k: usize, n: usize, accumulate: bool) {
        // 32 f32 = two 512-bit vectors per row of a tile (16 for a narrow remainder); 256 for a
        // single row (16 sums in flight, and W read in two passes, not four: H = 512, B = 1
        // 6.2 -> 5.0 ms), then 128.
        dispatch::<f32, 32, 16, 256, 128>(a, b, c, (m, k, n), accumulate);
    }
}

impl Real for f64 {
    const DTYPE: Dtype = Dtype::F64;

    fn of(x: f64) -> Self {
        x
    }

    fn f64(self) -> f64 {
        self
    }

    const EXPM1_TAYLOR: &'static [f64] = &TAYLOR;
    const LN2_HI: f64 = 0.693_147_180_369_123_8;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;
    const TANH_LIMIT: f64 = 19.1;
    const EXP_LOW: f64 = -708.0;

    fn pow2_of_rounded(t: Self) -> Self {
        f64::from_bits(t.to_bits().wrapping_sub(Self::ROUND_MAGIC.to_bits()).wrapping_add(1023) << 52)
    }

    fn sum_squares(x: &[Self]) -> f64 {
        x.iter().map(|v| v * v).sum()
    }

    #[inline(always)]
    fn act_tanh(x: Self) -> Self {
        x.tanh()
    }

    #[inline(always)]
    fn act_sigmoid(x: Self) -> Self {
        1.0 / (1.0 + (-x).exp())
    }

    fn matmul_slices(a: &[Self], b: &[Self], c: &mut [Self], m: usize, k: usize, n: usize, accumulate: bool) {
        // 32 f64 = four 512-bit vectors per row: 16 sums in flight over a 4-row tile (two vectors
        // per row left the multiply-add units idle: H = 512, B = 32 ran at 64-72 % of the
        // float64 product); 16 for a narrow remainder, 128 then 64 for a single row.
        dispatch::<f64, 32, 16, 128, 64>(a, b, c, (m, k, n), accumulate);
    }
}

/// 1/k! for k = 14 … 1: expm1's Taylor series, highest degree first. On |r| ≤ ln2/2 the first
/// omitted term is r^15/15! < 1e-19 relative to r (f64 keeps all 14; f32 the last 8, omitting
/// r^9/9! < 2e-9).
const TAYLOR: [f64; 14] = [
    1.0 / 87_178_291_200.0,
    1.0 / 6_227_020_800.0,
    1.0 / 479_001_600.0,
    1.0 / 39_916_800.0,
    1.0 / 3_628_800.0,
    1.0 / 362_880.0,
    1.0 / 40_320.0,
    1.0 / 5_040.0,
    1.0 / 720.0,
    1.0 / 120.0,
    1.0 / 24.0,
    1.0 / 6.0,
    1.0 / 2.0,
    1.0,
];

/// e^y = s·(1 + p) for y ≤ 0 in the normal range, as (s, p) with s = 2^n and p = expm1(r),
/// y = n·ln2 + r: from the pair both e^y = s + s·p and expm1(y) = (s − 1) + s·p are accurate
/// (no cancellation when n = 0). Branch-free, so loops over it vectorise; NaN stays NaN.
#[inline(always)]
fn exp_parts<F: Real>(y: F) -> (F, F) {
    let magic = F::of(F::ROUND_MAGIC);
    let rounded = y * F::of(std::f64::consts::LOG2_E) + magic;
    let n = rounded - magic; // the integer nearest y/ln2
    let r = (y - n * F::of(F::LN2_HI)) - n * F::of(F::LN2_LO);
    let mut p = F::zero();
    for &c in F::EXPM1_TAYLOR {
        p = (p + F::of(c)) * r; // Horner: r·(1 + r·(1/2 + r·(1/6 + …)))
    }
    (F::pow2_of_rounded(rounded), p)
}

/// tanh x = −expm1(−2|x|) / (2 + expm1(−2|x|)), with the sign of x: within a few ulp of the
/// correctly rounded value, ±1 beyond `TANH_LIMIT`, NaN for NaN. Written to vectorise (libm's
/// tanh was 44 % of an f32 training step at H = 128, B = 32). The f32 core's tanh.
#[inline(always)]
pub fn tanh<F: Real>(x: F) -> F {
    let a = x.abs();
    let big = a > F::of(F::TANH_LIMIT);
    let (s, p) = exp_parts(if big { F::zero() } else { -(a + a) });
    let em = (s - F::one()) + s * p; // expm1(−2|x|) ∈ (−1, 0]
    let t = if big { F::one() } else { (em / (F::of(2.0) + em)).abs() };
    if x.is_sign_negative() { -t } else { t }
}

/// σ(x) = 1 / (1 + e^{−x}) for x ≥ 0 and e^x / (1 + e^x) for x < 0, so that only e^{−|x|} ≤ 1
/// is needed and σ keeps its relative accuracy far into the saturated tail (0 once e^{−|x|}
/// leaves the normal range: |x| > 708 in f64, 87 in f32).
#[inline(always)]
pub fn sigmoid<F: Real>(x: F) -> F {
    let y = -x.abs();
    let under = y < F::of(F::EXP_LOW);
    let (s, p) = exp_parts(if under { F::zero() } else { y });
    let z = if under { F::zero() } else { s + s * p }; // e^{−|x|}
    let one = F::one();
    if x >= F::zero() { one / (one + z) } else { z / (one + z) }
}

/// The instruction-set path the kernels run: the widest the processor has, or a narrower one
/// forced with the environment variable `RUNNER_ISA` (`avx512`, `avx2`, `portable`) for testing.
/// Every path sums each product element in the same order with fused multiply–adds (the portable
/// one with `mul_add`, exact on every target), so the time loop's products give the same bits
/// whichever runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Any processor: the baseline target, fused multiply–add by `mul_add`.
    Portable,
    /// x86-64 with AVX2 and FMA.
    Avx2,
    /// x86-64 with AVX-512F (and AVX2, FMA).
    Avx512,
}

impl Isa {
    /// The name `RUNNER_ISA` and `manifest.json` use.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Parses a `RUNNER_ISA` value.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "portable" => Some(Isa::Portable),
            "avx2" => Some(Isa::Avx2),
            "avx512" => Some(Isa::Avx512),
            _ => None,
        }
    }

    /// The widest path this processor can run.
    pub fn native() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let fma = std::arch::is_x86_feature_detected!("fma");
            let avx2 = std::arch::is_x86_feature_detected!("avx2");
            if std::arch::is_x86_feature_detected!("avx512f") && avx2 && fma {
                return Isa::Avx512;
            }
            if avx2 && fma {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// The path `RUNNER_ISA` asks for (`None` when unset or empty), checked against what this
    /// processor can run; the error says what is wrong and how to fix it.
    pub fn from_env() -> Result<Option<Self>, String> {
        let Some(v) = std::env::var_os("RUNNER_ISA").filter(|v| !v.is_empty()) else {
            return Ok(None);
        };
        let v = v.to_string_lossy();
        let isa = Isa::from_name(&v)
            .ok_or_else(|| format!("RUNNER_ISA={v} is not a kernel path; use avx512, avx2 or portable, or unset it"))?;
        let native = Isa::native();
        if isa > native {
            return Err(format!(
                "RUNNER_ISA={v}: this processor runs {} at most; use a narrower path or unset it",
                native.name()
            ));
        }
        Ok(Some(isa))
    }

    /// The path in force: `RUNNER_ISA` if set and valid (it is checked before any work by
    /// the command line), else the native one. Decided once per process, like the processor
    /// itself: the kernels ask at every step.
    pub fn current() -> Self {
        static CHOSEN: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
        *CHOSEN.get_or_init(|| Isa::from_env().ok().flatten().unwrap_or_else(Isa::native))
    }
}

/// Defines `fn name<F: Real>(args)` whose body, an element-wise loop, is compiled twice: for
/// AVX-512, used when the processor has it (16 f32 lanes), and for the baseline target (SSE2,
/// 4 lanes). Both copies are out-of-line functions taking the slices as arguments, which tells
/// the compiler they do not overlap, so the loop vectorises (inlined into its caller, it ran
/// scalar). The arithmetic is the same IEEE operations in either copy: the bits do not depend
/// on which one runs.
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<F: Real>($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name<F: Real>($($arg: $ty),*) {
            #[inline(always)]
            fn body<F: Real>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn wide<F: Real>($($arg: $ty),*) {
                body::<F>($($arg),*)
            }
            #[inline(never)]
            fn narrow<F: Real>($($arg: $ty),*) {
                body::<F>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if $crate::real::Isa::current() == $crate::real::Isa::Avx512 {
                // SAFETY: the path is AVX-512 only where avx512f, avx2 and fma were detected.
                return unsafe { wide::<F>($($arg),*) };
            }
            narrow::<F>($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// `c (m, n) = [c +] a (m, k) · b (k, n)` for standard-layout views (the time loop's product).
pub fn matmul<F: Real>(a: ArrayView2<'_, F>, b: ArrayView2<'_, F>, mut c: ArrayViewMut2<'_, F>, accumulate: bool) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(k == k2 && c.dim() == (m, n), "matmul shapes");
    let a = a.to_slice().expect("a in standard layout");
    let b = b.to_slice().expect("b in standard layout");
    let c = c.as_slice_mut().expect("c in standard layout");
    F::matmul_slices(a, b, c, m, k, n, accumulate);
}

/// Runs the path [`Isa::current`] names (a cached load per call). `NB` is the tile width for several rows (`NB2` for a remainder no wider), `NB1` then
/// `NB1H` for one row (a matrix–vector product
/// needs more independent sums in flight to hide the multiply–add latency).
fn dispatch<F: Real, const NB: usize, const NB2: usize, const NB1: usize, const NB1H: usize>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n, "matmul sizes");
    match Isa::current() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is AVX-512 only where avx512f, avx2 and fma were detected.
        Isa::Avx512 => unsafe { x86::avx512::<F, NB, NB2, NB1, NB1H>(a, b, c, (m, k, n), accumulate) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is AVX2 only where avx2 and fma were detected.
        Isa::Avx2 => unsafe { x86::avx2::<F, NB, NB2, NB1, NB1H>(a, b, c, (m, k, n), accumulate) },
        // Fused by `mul_add` too, so that its bits are those of the paths above.
        _ => tiles::<F, NB, NB2, NB1, NB1H, 2>(a, b, c, (m, k, n), accumulate),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Real, tiles};

    /// The tiles compiled for AVX-512: 4 rows × NB columns in registers.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn avx512<F: Real, const NB: usize, const NB2: usize, const NB1: usize, const NB1H: usize>(
        a: &[F],
        b: &[F],
        c: &mut [F],
        mkn: (usize, usize, usize),
        accumulate: bool,
    ) {
        tiles::<F, NB, NB2, NB1, NB1H, 4>(a, b, c, mkn, accumulate);
    }

    /// The tiles compiled for AVX2: 2 rows × NB columns (half the vector registers' width).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2<F: Real, const NB: usize, const NB2: usize, const NB1: usize, const NB1H: usize>(
        a: &[F],
        b: &[F],
        c: &mut [F],
        mkn: (usize, usize, usize),
        accumulate: bool,
    ) {
        tiles::<F, NB, NB2, NB1, NB1H, 2>(a, b, c, mkn, accumulate);
    }
}

/// Bytes of b one column panel may span: the panel is reread once per row block of a, so it
/// should stay in the (1 MiB) second-level cache.
const PANEL_BYTES: usize = 256 << 10;

/// Covers c with tiles: column panels of b small enough to stay in cache (one panel when b is
/// small); within a panel, R rows of a at a time (then single rows), and NB columns at a time
/// along those rows, reading b's rows front to back. Fewer than R rows (B = 1): NB1-wide tiles.
#[inline(always)]
fn tiles<F: Real, const NB: usize, const NB2: usize, const NB1: usize, const NB1H: usize, const R: usize>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    if m < R {
        for i in 0..m {
            let mut j = 0;
            while j + NB1 <= n {
                tile::<F, NB1, 1>(a, b, c, (i, j, NB1), (k, n), accumulate);
                j += NB1;
            }
            while j + NB1H <= n {
                tile::<F, NB1H, 1>(a, b, c, (i, j, NB1H), (k, n), accumulate);
                j += NB1H;
            }
            while j < n {
                let w = NB.min(n - j);
                tile::<F, NB, 1>(a, b, c, (i, j, w), (k, n), accumulate);
                j += w;
            }
        }
        return;
    }
    let panel = (PANEL_BYTES / (k.max(1) * std::mem::size_of::<F>()) / NB).max(1) * NB;
    let mut j0 = 0;
    while j0 < n {
        let j1 = (j0 + panel).min(n);
        let mut i = 0;
        while i < m {
            let rows = if i + R <= m { R } else { 1 };
            let mut j = j0;
            while j < j1 {
                let w = NB.min(j1 - j);
                match (rows == R, w <= NB2) {
                    (true, false) => tile::<F, NB, R>(a, b, c, (i, j, w), (k, n), accumulate),
                    (true, true) => tile::<F, NB2, R>(a, b, c, (i, j, w), (k, n), accumulate),
                    (false, false) => tile::<F, NB, 1>(a, b, c, (i, j, w), (k, n), accumulate),
                    (false, true) => tile::<F, NB2, 1>(a, b, c, (i, j, w), (k, n), accumulate),
                }
                j += w;
            }
            i += rows;
        }
        j0 = j1;
    }
}

/// One tile: rows i0 … i0+R−1, columns j0 … j0+w−1 of c (w ≤ NB), summed over k in order.
/// A full-width tile (w = NB) is a separate copy whose sums stay in registers: indexing them
/// with a run-time width would put them in memory.
#[inline(always)]
fn tile<F: Real, const NB: usize, const R: usize>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    (i0, j0, w): (usize, usize, usize),
    (k, n): (usize, usize),
    accumulate: bool,
) {
    if w == NB {
        tile_of::<F, NB, R>(a, b, c, (i0, j0, NB), (k, n), accumulate);
    } else {
        tile_of::<F, NB, R>(a, b, c, (i0, j0, w), (k, n), accumulate);
    }
}

#[inline(always)]
fn tile_of<F: Real, const NB: usize, const R: usize>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    (i0, j0, w): (usize, usize, usize),
    (k, n): (usize, usize),
    accumulate: bool,
) {
    let mut acc = [[F::zero(); NB]; R];
    for kk in 0..k {
        let row = &b[kk * n + j0..kk * n + j0 + w];
        for (r, acc) in acc.iter_mut().enumerate() {
            let x = a[(i0 + r) * k + kk];
            for (s, &y) in acc.iter_mut().zip(row) {
                *s = x.mul_add(y, *s); // fused: one rounding, on every path
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let out = &mut c[(i0 + r) * n + j0..(i0 + r) * n + j0 + w];
        for (o, &s) in out.iter_mut().zip(acc) {
            *o = if accumulate { *o + s } else { s };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// Our tanh and σ against libm's (f64) over −40 … 40 and at the edges: relative error at
    /// most 4 ulp in f64 and 4 f32-ulp in f32; exact ±1, 0, NaN where they should be.
    #[test]
    fn tanh_and_sigmoid_match_libm() {
        let (mut worst64, mut worst32): (f64, f64) = (0.0, 0.0);
        for i in -400_000..=400_000 {
            let x = i as f64 * 1e-4 + (i as f64 * 0.618).fract() * 1e-4;
            let refs = [x.tanh(), 1.0 / (1.0 + (-x).exp())];
            let ours64 = [tanh(x), sigmoid(x)];
            let ours32 = [tanh(x as f32) as f64, sigmoid(x as f32) as f64];
            let refs32 = [(x as f32 as f64).tanh(), 1.0 / (1.0 + (-(x as f32 as f64)).exp())];
            for k in 0..2 {
                if refs[k] != 0.0 {
                    worst64 = worst64.max(((ours64[k] - refs[k]) / refs[k]).abs() / f64::EPSILON);
                }
                if refs32[k] != 0.0 {
                    worst32 = worst32.max(((ours32[k] - refs32[k]) / refs32[k]).abs() / f32::EPSILON as f64);
                }
            }
        }
        println!("worst relative error: f64 {worst64:.2} ulp, f32 {worst32:.2} ulp");
        assert!(worst64 <= 4.0 && worst32 <= 4.0, "f64 {worst64} ulp, f32 {worst32} ulp");
        assert_eq!((tanh(1e-300), tanh(-0.0f64).is_sign_negative()), (1e-300, true));
        assert_eq!(
            (tanh(f64::INFINITY), tanh(-30.0f32), tanh(f64::NAN).is_nan()),
            (1.0, -1.0, true)
        );
        assert_eq!(
            (
                sigmoid(f64::INFINITY),
                sigmoid(f64::NEG_INFINITY),
                sigmoid(f32::NAN).is_nan()
            ),
            (1.0, 0.0, true)
        );
        let tail = sigmoid(-700.0f64);
        assert!((tail / (-700.0f64).exp() - 1.0).abs() < 1e-13, "{tail:e}");
    }

    /// The kernel against a plain triple loop in f64, over shapes that exercise every tile kind
    /// (full and partial row blocks, full, single-row-wide and partial column blocks).
    #[test]
    fn matmul_matches_the_definition() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (1, 7, 300),
            (3, 5, 33),
            (4, 16, 16),
            (5, 9, 129),
            (32, 128, 512),
            (6, 3, 2),
        ] {
            let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f64 - 5.0);
            let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j * 2) % 13) as f64 * 0.5 - 3.0);
            let c0 = Array2::from_shape_fn((m, n), |(i, j)| (i + j) as f64);
            let want = &c0 + &a.dot(&b);
            let mut c = c0.clone();
            matmul(a.view(), b.view(), c.view_mut(), true);
            assert_eq!(c, want, "f64 ({m},{k},{n}) accumulate"); // small integers: exact
            matmul(a.view(), b.view(), c.view_mut(), false);
            assert_eq!(c, a.dot(&b), "f64 ({m},{k},{n})");
            let mut c32 = c0.mapv(|x| x as f32);
            matmul(
                a.mapv(|x| x as f32).view(),
                b.mapv(|x| x as f32).view(),
                c32.view_mut(),
                true,
            );
            assert_eq!(c32.mapv(f64::from), want, "f32 ({m},{k},{n})");
        }
    }
}
