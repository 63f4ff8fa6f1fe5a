//! The two element types of the training core (`model.dtype`), and the one product routine
//! every matrix product of the core goes through.
//!
//! The core is generic over [`Real`], implemented for `f32` and `f64` only: f64 for fidelity
//! (the default, and always for the gradient checks), f32 for speed. Everything a run reports
//! (losses, norms, the probe's logarithms) is carried out of the core as f64.
//!
//! **The arithmetic contract.** Every product `c (m, n) = [c +] a (m, k) · b (k, n)` that reaches
//! a result (the time loop's, the input and output projections, the gradient sums) is computed
//! here: each element of c is one running sum, started from zero and continued over
//! k = 0, 1, … in order with fused multiply–adds (then added to c's value when accumulating:
//! c + Σ, one more rounding), whatever the tile shape, vector width, cache blocking, packing or
//! instruction set ([`Isa`]: AVX-512, AVX2, or the portable path's `mul_add`, exact on every
//! target). With the elementary functions of [`crate::elem`], the same spec gives the same bits
//! on every processor.
//!
//! [`matmul`] works on row-major operands as they are (packing them, as a general routine does
//! on every call, costs more than the arithmetic on the time loop's small shapes: 31 % of a step
//! at H = 128, B = 1): a tile of R rows × NB columns of c is kept in registers while k runs.
//! [`gemm`] takes views of any layout: a transposed a (the gradient sums' operand) is read in
//! place, other layouts are copied into reusable [`Scratch`] buffers, and large products are
//! packed into panels there first.

use crate::elem;
use crate::isa::Isa;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, NdFloat};

#[cfg(target_arch = "x86_64")]
mod micro;

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

    /// `c (m, n) = [c +] a (m, k) · b (k, n)`, c row-major and contiguous, b in strips of
    /// `b.1` columns ([`Strips`]; `b.1 = n`: row-major), element (i, kk) of a at
    /// `a[i·astr.0 + kk·astr.1]` (`(k, 1)`: row-major; `(1, m)`: aᵀ stored row-major, the
    /// gradient sums' operand, read in place). `pack`, when given, holds a buffer for packing
    /// the operands of a large product into contiguous panels (the same sums in the same order:
    /// only the memory traffic changes) and may carry a `Side` product. Runs on the calling
    /// thread ([`matmul`] and [`gemm`] share a product out among threads).
    fn matmul_slices(
        a: &[Self],
        b: (&[Self], usize),
        c: &mut [Self],
        mkn: (usize, usize, usize),
        accumulate: bool,
        astr: (usize, usize),
        pack: Option<Pack<'_, Self>>,
    );

    /// Σ x² in f64: in f64 the product kernel's fused running sum (x · x); in f32 eight
    /// interleaved partial sums of exact f64 squares (so that the loop vectorises).
    fn sum_squares(x: &[Self]) -> f64;

    /// tanh as the core computes it: [`elem::tanh`] in f64 (within an ulp), the vectorising
    /// [`elem::tanh_f32`] in f32. `FUSED`: the caller is compiled where the processor has fused
    /// multiply–adds, which f64's exact products then use (the same bits).
    fn act_tanh<const FUSED: bool>(x: Self) -> Self;

    /// σ as the core computes it: [`elem::sigmoid`] in f64, [`elem::sigmoid_f32`] in f32
    /// (`FUSED` as for [`Real::act_tanh`]).
    fn act_sigmoid<const FUSED: bool>(x: Self) -> Self;

    /// e^x (the softmax's): [`elem::exp`], or [`elem::exp_f32`].
    fn exp_of(x: Self) -> Self;

    /// v = [`Real::exp_of`] of v, element-wise, in place: f64 by [`elem::exp_in_place`] (several
    /// vectors side by side where it can: the same bits, faster), f32 through it in blocks.
    fn exp_in_place(v: &mut [Self]);

    /// v = [`Real::act_tanh`] of v, element-wise, in place (f64: [`elem::tanh_in_place`], several
    /// vectors side by side on the path it picks itself: the same bits, faster).
    #[inline(always)]
    fn act_tanh_in_place<const FUSED: bool>(v: &mut [Self]) {
        // `for` loops, not `for_each`: the iterator's fold, grown by the inlined function, was
        // left out of line and so compiled without the vector instructions.
        for x in v {
            *x = Self::act_tanh::<FUSED>(*x);
        }
    }

    /// v = [`Real::act_sigmoid`] of v, element-wise, in place (f64: [`elem::sigmoid_in_place`]).
    #[inline(always)]
    fn act_sigmoid_in_place<const FUSED: bool>(v: &mut [Self]) {
        for x in v {
            *x = Self::act_sigmoid::<FUSED>(*x);
        }
    }
}

impl Real for f32 {
    const DTYPE: Dtype = Dtype::F32;

    fn of(x: f64) -> Self {
        x as f32
    }

    fn f64(self) -> f64 {
        self as f64
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
    fn act_tanh<const FUSED: bool>(x: Self) -> Self {
        elem::tanh_f32(x)
    }

    #[inline(always)]
    fn act_sigmoid<const FUSED: bool>(x: Self) -> Self {
        elem::sigmoid_f32(x)
    }

    fn exp_of(x: Self) -> Self {
        elem::exp_f32(x)
    }

    fn exp_in_place(v: &mut [Self]) {
        // exp_f32 is the f64 e^x rounded to f32: the same, a block at a time.
        let mut wide = [0.0f64; 64];
        for block in v.chunks_mut(wide.len()) {
            let wide = &mut wide[..block.len()];
            wide.iter_mut().zip(block.iter()).for_each(|(w, &x)| *w = f64::from(x));
            elem::exp_in_place(wide);
            block.iter_mut().zip(wide.iter()).for_each(|(x, &w)| *x = w as f32);
        }
    }

    fn matmul_slices(
        a: &[Self],
        b: (&[Self], usize),
        c: &mut [Self],
        (m, k, n): (usize, usize, usize),
        accumulate: bool,
        astr: (usize, usize),
        pack: Option<Pack<'_, Self>>,
    ) {
        // 32 f32 = two 512-bit vectors per row of a tile (16 for a narrow remainder), 8 rows
        // under AVX-512 (16 sums in flight, in the registers `micro` names; the compiler's own
        // 8-row tile kept its sums in memory, 12 rows thrashed the first-level cache on
        // 2 KiB-strided rows): time-loop products 32 × 128 … 2048 1.19–1.44× the 6-row tile's
        // GFLOP/s, interleaved rounds (Intel Xeon family 6 model 106); 256 for a single row
        // (16 sums in flight, and W read in two passes, not four: H = 512, B = 1 6.2 -> 5.0 ms),
        // then 128.
        // Under AVX2: 6 rows × 16 columns (two 256-bit vectors), 12 sums in flight of the 16
        // registers (2 rows × 32 kept 8: 32 × 512 × 512 35 -> 46 GFLOP/s, same processor, AVX2
        // forced).
        dispatch::<f32, 32, 16, 256, 128, 8, 16, 8, 6>(a, b, c, (m, k, n), accumulate, astr, pack);
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

    fn sum_squares(x: &[Self]) -> f64 {
        let x = ArrayView1::from(x);
        dot(x, x)
    }

    #[inline(always)]
    fn act_tanh<const FUSED: bool>(x: Self) -> Self {
        elem::tanh_with::<FUSED>(x)
    }

    #[inline(always)]
    fn act_sigmoid<const FUSED: bool>(x: Self) -> Self {
        elem::sigmoid_with::<FUSED>(x)
    }

    #[inline(always)]
    fn act_tanh_in_place<const FUSED: bool>(v: &mut [Self]) {
        elem::tanh_in_place(v);
    }

    #[inline(always)]
    fn act_sigmoid_in_place<const FUSED: bool>(v: &mut [Self]) {
        elem::sigmoid_in_place(v);
    }

    fn exp_of(x: Self) -> Self {
        elem::exp(x)
    }

    fn exp_in_place(v: &mut [Self]) {
        elem::exp_in_place(v);
    }

    fn matmul_slices(
        a: &[Self],
        b: (&[Self], usize),
        c: &mut [Self],
        (m, k, n): (usize, usize, usize),
        accumulate: bool,
        astr: (usize, usize),
        pack: Option<Pack<'_, Self>>,
    ) {
        // 32 f64 = four 512-bit vectors per row: 16 sums in flight over a 4-row tile (two vectors
        // per row left the multiply-add units idle: H = 512, B = 32 ran at 64-72 % of the
        // float64 product); 4 rows under AVX-512 (6 × 32, 8 × 16 and 8 × 24 measured mixed:
        // 0.84–1.36× by shape); 16 for a narrow remainder, 128 then 64 for a single row.
        // Under AVX2: 6 rows × 8 (two 256-bit vectors, 12 sums in flight, as `micro` names them):
        // 1.13–2.05× the compiler's 2 × 32 on 32 × 128 … 512 time-loop shapes, 1.2–1.6× on the
        // packed ones, one shape (32 × 512 × 2048) 0.95× (Intel Xeon family 6 model 106, AVX2
        // forced, interleaved rounds).
        dispatch::<f64, 32, 16, 128, 64, 4, 8, 8, 6>(a, b, c, (m, k, n), accumulate, astr, pack);
    }
}

/// Defines `fn name<F: Real>(args)` whose body, an element-wise loop, is compiled three times:
/// for AVX-512 (16 f32 lanes), for AVX2 with FMA (8 lanes), each used when [`Isa::current`] names
/// it, and for the baseline target (SSE2 on x86-64, NEON on aarch64). Each copy is an
/// out-of-line function taking the slices as arguments, which tells the compiler they do not
/// overlap, so the loop vectorises (inlined into its caller, it ran scalar). The arithmetic is the
/// same IEEE operations in every copy: the bits do not depend on which one runs. The body sees
/// `FUSED`, true in the two copies compiled with fused multiply–adds (see [`Real::act_tanh`]).
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident<F: Real>($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        $vis fn $name<F: Real>($($arg: $ty),*) {
            #[inline(always)]
            fn body<F: Real, const FUSED: bool>($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx2,fma")]
            unsafe fn wide<F: Real>($($arg: $ty),*) {
                body::<F, true>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn mid<F: Real>($($arg: $ty),*) {
                body::<F, true>($($arg),*)
            }
            #[inline(never)]
            fn narrow<F: Real>($($arg: $ty),*) {
                body::<F, false>($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            match $crate::isa::Isa::current() {
                // SAFETY: the path is AVX-512 only where avx512f, avx2 and fma were detected.
                $crate::isa::Isa::Avx512 => return unsafe { wide::<F>($($arg),*) },
                // SAFETY: the path is AVX2 only where avx2 and fma were detected.
                $crate::isa::Isa::Avx2 => return unsafe { mid::<F>($($arg),*) },
                $crate::isa::Isa::Portable => {}
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
    shared(
        a,
        (k, 1),
        (b, n),
        c,
        (m, k, n),
        accumulate,
        Shares::Threads(rayon::current_num_threads()),
    );
}

/// Columns per strip of a [`Strips`] operand: a multiple of every tile width (32, 16 and 8), so
/// that no tile crosses a strip.
const STRIP: usize = 32;
/// Bytes to which a [`Strips`] operand is aligned: a cache line, and the widest vector.
const ALIGN: usize = 64;

/// A matrix b (k, n) stored for the time loop's products, which read it at every step: strip by
/// strip of 32 columns, each strip's k rows one after another (the last strip n mod 32 wide), so
/// that a tile reads b front to back. Row-major, a tile's rows of b lie n apart: at n = 512 they
/// fall into a few cache sets (f64 1.2–1.9×, f32 1.0–1.2× slower than at n = 528 or 480, Intel
/// Xeon family 6 model 106) and at n = 2048 each row on its own page. A product with fewer than
/// 4 rows of a (B = 1) keeps b row-major (one strip), where its single-row tiles run 256 columns
/// wide.
#[derive(Clone, Debug, Default)]
pub struct Strips<F> {
    /// The k·n elements, strip after strip, from `data[start]`: the first 64-byte boundary of
    /// the buffer, so that no vector load of a strip's row splits a cache line.
    data: Vec<F>,
    start: usize,
    /// (k, n).
    dim: (usize, usize),
    /// Columns per strip: `STRIP`, or n (row-major).
    width: usize,
}

impl<F: Real> Strips<F> {
    /// Stores b (any layout) in strips (`strips`), else row-major; reuses the buffer.
    pub fn pack(&mut self, b: ArrayView2<'_, F>, strips: bool) {
        let (k, n) = b.dim();
        self.dim = (k, n);
        self.width = if strips { STRIP } else { n.max(1) };
        self.data.clear();
        self.data.resize(k * n + ALIGN / std::mem::size_of::<F>(), F::zero());
        self.start = self
            .data
            .as_ptr()
            .align_offset(ALIGN)
            .min(ALIGN / std::mem::size_of::<F>());
        let data = &mut self.data[self.start..self.start + k * n];
        let bt = b.t();
        match (b.to_slice(), bt.to_slice()) {
            // Row-major from row-major or from a transposed view: a copy or a blocked transpose.
            (Some(src), _) if self.width >= n => data.copy_from_slice(src),
            (_, Some(src)) if self.width >= n => transpose_slices(src, data, n, k),
            // Strips from row-major: each strip's rows are pieces of b's rows, copied.
            (Some(src), _) => {
                for (s0, w, strip) in strips_of(data, (k, n), self.width) {
                    for (dst, row) in strip.chunks_exact_mut(w).zip(src.chunks_exact(n)) {
                        dst.copy_from_slice(&row[s0..s0 + w]);
                    }
                }
            }
            // Strips from a transposed view (Wᵀ): strip s is rows s0 … of the stored matrix,
            // transposed, by the blocked transpose (written element by element a strip's row
            // apart, W's and Wᵀ's packing was 4 % of the main thread's time at H = 512, B = 32 on
            // two threads).
            (_, Some(src)) => {
                for (s0, w, strip) in strips_of(data, (k, n), self.width) {
                    transpose_slices(&src[s0 * k..(s0 + w) * k], strip, w, k);
                }
            }
            // Strips from any other layout: each row of b, strip by strip.
            _ => {
                for (kk, row) in b.rows().into_iter().enumerate() {
                    let mut j = 0;
                    while j < n {
                        let ((off, ld), _) = strip_at(j, kk, (k, n), self.width);
                        let dst = &mut data[off..off + ld];
                        dst.iter_mut()
                            .zip(row.slice(ndarray::s![j..j + ld]))
                            .for_each(|(d, &x)| *d = x);
                        j += ld;
                    }
                }
            }
        }
    }

    /// (k, n).
    pub fn dim(&self) -> (usize, usize) {
        self.dim
    }
}

/// The strips of a (k, n) matrix's storage in strips of `width` columns: per strip, its first
/// column, its width and its k rows (one after another).
fn strips_of<F>(
    data: &mut [F],
    (k, n): (usize, usize),
    width: usize,
) -> impl Iterator<Item = (usize, usize, &mut [F])> {
    (0..n)
        .step_by(width)
        .zip(data.chunks_mut((width * k).max(1)))
        .map(move |(s0, strip)| (s0, strip.len() / k.max(1), strip))
}

/// `c (m, n) = [c +] a (m, k) · b (k, n)` for b in [`Strips`] and a, c in standard layout (the
/// time loop's product): the same sums as [`matmul`] of b row-major.
pub fn matmul_strips<F: Real>(a: ArrayView2<'_, F>, b: &Strips<F>, c: ArrayViewMut2<'_, F>, accumulate: bool) {
    matmul_strips_on(a, b, c, accumulate, rayon::current_num_threads());
}

/// [`matmul_strips`] shared out among at most `threads` of the pool's threads: the time loop's
/// products, whose block of sequences may already be one of several running on the pool (a
/// block's product shared again ran as two halves on the same thread, each streaming all of W:
/// AVX2's 6-row tiles took 16 rows as 6 + 2 twice instead of 6 + 6 + 4).
pub fn matmul_strips_on<F: Real>(
    a: ArrayView2<'_, F>,
    b: &Strips<F>,
    mut c: ArrayViewMut2<'_, F>,
    accumulate: bool,
    threads: usize,
) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim);
    assert!(k == k2 && c.dim() == (m, n), "matmul shapes");
    let a = a.to_slice().expect("a in standard layout");
    let c = c.as_slice_mut().expect("c in standard layout");
    let data = &b.data[b.start..b.start + k * n];
    shared(
        a,
        (k, 1),
        (data, b.width),
        c,
        (m, k, n),
        accumulate,
        Shares::Threads(threads),
    );
}

/// a · b, summed in order with fused multiply–adds: by the product kernel (a 1 × k by k × 1
/// product) when both are contiguous, else by `mul_add` element by element (the same bits).
pub fn dot<F: Real>(a: ArrayView1<'_, F>, b: ArrayView1<'_, F>) -> F {
    assert_eq!(a.len(), b.len(), "dot lengths");
    match (a.as_slice(), b.as_slice()) {
        (Some(x), Some(y)) => {
            let mut c = [F::zero()];
            F::matmul_slices(x, (y, 1), &mut c, (1, x.len(), 1), false, (x.len(), 1), None);
            c[0]
        }
        _ => a.iter().zip(b.iter()).fold(F::zero(), |s, (&x, &y)| x.mul_add(y, s)),
    }
}

/// Buffers [`gemm`] copies operands into, kept between calls so that a training step does not
/// allocate once they have grown to its shapes.
#[derive(Clone, Debug, Default)]
pub struct Scratch<F> {
    a: Vec<F>,
    b: Vec<F>,
    /// A tall accumulated product, computed apart (in blocks of k) before it is added to c.
    p: Vec<F>,
    /// Packed panels of a large product's operands, one buffer per share of the product.
    packs: Vec<Vec<F>>,
    /// The pool's threads the products may be shared among ([`Scratch::share`]; `None`: all).
    threads: Option<usize>,
}

impl<F> Scratch<F> {
    /// From now on, shares [`gemm`]'s products among at most `threads` of the pool's threads (at
    /// least one).
    pub fn share(&mut self, threads: usize) {
        self.threads = Some(threads.max(1));
    }

    /// The threads the products may be shared among: the share, within the pool's.
    pub(crate) fn threads(&self) -> usize {
        let pool = rayon::current_num_threads();
        self.threads.map_or(pool, |t| t.min(pool))
    }
}

/// What a product of [`gemm`]'s may use besides its operands: a buffer to pack them into, and a
/// `Side` product to run along.
pub struct Pack<'p, F> {
    buf: &'p mut Vec<F>,
    side: Option<Side<'p, F>>,
}

/// A small second product that reads the same memory as a gradient sum's transposed a:
/// cs (r, m) = sᵀ A, for A (k, m) the storage of a = Aᵀ (`astr` = (1, acs), columns 0 … m of
/// rows acs apart) and s (k, r) row-major. It runs block by block of k right after the main
/// product's block, while that block of A is still in the cache: db and dU of dense inputs ride
/// along with dW (one pass over dgx, not two). Its sums start from +0 and replace cs; each is one
/// running sum over k in order, like every product's, so its bits are those of the same product
/// computed alone.
pub(crate) struct Side<'s, F> {
    /// s (k, r), row-major.
    s: &'s [F],
    /// cs (r, m), row-major.
    c: &'s mut [F],
    r: usize,
}

impl<'s, F> Side<'s, F> {
    /// The side product of s (k, r) row-major into cs (r, m).
    fn new(s: &'s [F], c: &'s mut [F], r: usize) -> Self {
        assert!(
            r > 0 && s.len().is_multiple_of(r) && c.len().is_multiple_of(r),
            "side shapes"
        );
        Self { s, c, r }
    }

    /// Splits cs into its first m1 columns and the rest, each (r, ·) row-major in its own part of
    /// cs; [`Side::join`] puts them back in place.
    fn split(&mut self, m1: usize) -> (Side<'_, F>, Side<'_, F>) {
        let (s, r) = (self.s, self.r);
        let (c1, c2) = self.c.split_at_mut(r * m1);
        (Side { s, c: c1, r }, Side { s, c: c2, r })
    }

    /// cs = [c1 c2] from `split`'s two parts (r, m1) and (r, m2), in place: each row of c2 is
    /// rotated into place behind its row of c1 (r·r·m moves, no buffer).
    fn join(c: &mut [F], r: usize, m1: usize) {
        let m = c.len() / r;
        let m2 = m - m1;
        for q in 0..r {
            // Rows 0 … q−1 are in place; from q·m lie c1's rows q … r−1, then c2's q … r−1.
            let from = q * m + m1;
            let to = q * m + (r - q) * m1 + m2;
            c[from..to].rotate_right(m2);
        }
    }
}

/// `c (m, n) = [c +] a (m, k) · b (k, n)` for views of any layout (c in standard layout), by
/// [`matmul`]'s kernel: an operand not in standard layout is first copied into `scratch`.
pub fn gemm<F: Real>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    c: ArrayViewMut2<'_, F>,
    accumulate: bool,
    scratch: &mut Scratch<F>,
) {
    gemm_and_side(a, b, c, accumulate, scratch, None);
}

/// [`gemm`] of a transposed a (a = Aᵀ, A (k, m) row-major: a gradient sum's dgxᵀ) with a
/// `Side` product over A's memory: cs (r, m) = sᵀ A for s (k, r) in standard layout, its sums
/// from +0 replacing cs, the same bits as `gemm(s.t(), A, cs, false, …)`. False, and nothing
/// done, where a is not such a view or the product would be computed as its transpose.
pub fn gemm_with_side<F: Real>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    c: ArrayViewMut2<'_, F>,
    accumulate: bool,
    scratch: &mut Scratch<F>,
    (s, cs): (ArrayView2<'_, F>, &mut [F]),
) -> bool {
    let ((m, k), n, r) = (a.dim(), b.ncols(), s.ncols());
    let (Some(s), true) = (s.to_slice(), a.t().to_slice().is_some() && a.to_slice().is_none()) else {
        return false;
    };
    if narrow(m, n) || r == 0 || s.len() != k * r || cs.len() != r * m {
        return false;
    }
    gemm_and_side(a, b, c, accumulate, scratch, Some(Side::new(s, cs, r)));
    true
}

/// [`gemm`], with a [`Side`] product where a is read in place.
fn gemm_and_side<F: Real>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    mut c: ArrayViewMut2<'_, F>,
    accumulate: bool,
    scratch: &mut Scratch<F>,
    side: Option<Side<'_, F>>,
) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(k == k2 && c.dim() == (m, n), "gemm shapes");
    let threads = scratch.threads();
    let Scratch {
        a: sa, b: sb, p, packs, ..
    } = scratch;
    packs.resize_with(threads, Vec::new);
    if narrow(m, n) {
        assert!(side.is_none(), "a side product of a transposed product");
        // cᵀ (n, m) = bᵀ aᵀ, so that the tiles' vectors run along m: each element is the same
        // ordered sum (a fused multiply–add does not care which factor comes first). b (k, n)
        // is bᵀ stored transposed, read in place; aᵀ (k, m) in place or copied.
        let at = standard(a.t(), sa);
        let b = standard(b.view(), sb);
        p.clear();
        p.resize(n * m, F::zero());
        shared(b, (1, n), (at, m), p, (n, k, m), false, Shares::Packed(packs, None));
        let c = c.as_slice_mut().expect("c in standard layout");
        for (i, row) in c.chunks_exact_mut(n).enumerate() {
            for (j, c) in row.iter_mut().enumerate() {
                let s = p[j * m + i];
                *c = if accumulate { *c + s } else { s };
            }
        }
        return;
    }
    // aᵀ stored row-major (a transposed view, as in the gradient sums) is read in place.
    let (a, astr) = match a.t().to_slice() {
        Some(s) if a.to_slice().is_none() => (s, (1, m)),
        _ => {
            assert!(side.is_none(), "a side product needs a transposed a read in place");
            (standard(a.view(), sa), (k, 1))
        }
    };
    let b = standard(b.view(), sb);
    let c = c.as_slice_mut().expect("c in standard layout");
    if accumulate && tall(k) {
        // c + Σ with Σ summed from zero, as the unblocked kernel would: Σ apart, then added.
        p.clear();
        p.resize(m * n, F::zero());
        shared(a, astr, (b, n), p, (m, k, n), false, Shares::Packed(packs, side));
        c.iter_mut().zip(p.iter()).for_each(|(c, &s)| *c += s);
    } else {
        shared(a, astr, (b, n), c, (m, k, n), accumulate, Shares::Packed(packs, side));
    }
}

/// Multiply–adds below which a product is not shared out: ~20 µs of one core's work at
/// 50 GFLOP/s, against the few µs of waking another thread.
const SHARE_WORK: usize = 1 << 19;
/// Rows of c a share gets at least (two of the widest tiles' row blocks).
const SHARE_ROWS: usize = 8;

/// The product of [`F::matmul_slices`](Real::matmul_slices) shared out among the threads of the
/// rayon pool it runs in that `shares` gives it, by rows of c: halves go to `rayon::join`, with
/// half the threads each, while a half still has the work and the rows to pay for it and more
/// than one thread.
/// Each element of c is computed by exactly one share, by the same ordered sum as on one thread,
/// so the bits do not depend on the number of threads or on which thread took which share. A
/// half nobody takes is run by the caller's thread after the first: on a busy pool sharing costs
/// a push and a pop.
fn shared<F: Real>(
    a: &[F],
    astr: (usize, usize),
    b: (&[F], usize),
    c: &mut [F],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    shares: Shares<'_, F>,
) {
    let parts = shares.parts();
    // Fewer rows than two shares' worth are split only in gemm's one-off products (not in the
    // time loop's, where a busy pool would run both halves in narrower tiles) and only down to
    // the rows the tiles take one at a time: a narrow product computed as its transpose has as
    // many rows as the inputs (the adding problem's dU: 2 rows, k = T·B), which ran on one
    // thread.
    let few = m < 2 * SHARE_ROWS;
    let packed = matches!(shares, Shares::Packed(..));
    if parts < 2 || m < 2 || (few && (!packed || m >= 4)) || m * k * n < 2 * SHARE_WORK {
        let pack = match shares {
            Shares::Packed(p, side) => Some(Pack {
                buf: p.first_mut().expect("a packing buffer per share"),
                side,
            }),
            Shares::Threads(_) => None,
        };
        F::matmul_slices(a, b, c, (m, k, n), accumulate, astr, pack);
        return;
    }
    // The first half gets its threads' share of the rows, rounded up to a multiple of 4 (of 1
    // for a few rows).
    let first = parts / 2;
    let m1 = if few {
        (m * first / parts).max(1)
    } else {
        (m * first / parts).div_ceil(SHARE_ROWS / 2) * (SHARE_ROWS / 2)
    };
    let (c1, c2) = c.split_at_mut(m1 * n);
    let a2 = &a[m1 * astr.0..];
    let (packs, mut side) = match shares {
        Shares::Packed(p, side) => (Some(p), side),
        Shares::Threads(_) => (None, None),
    };
    let (s1, s2) = match packs {
        Some(p) => {
            let (x, y) = p.split_at_mut(first);
            // A side product's columns are a's rows (its A's columns): split alike.
            let (side1, side2) = match side.as_mut() {
                Some(side) => {
                    let (u, v) = side.split(m1);
                    (Some(u), Some(v))
                }
                None => (None, None),
            };
            (Shares::Packed(x, side1), Shares::Packed(y, side2))
        }
        None => (Shares::Threads(first), Shares::Threads(parts - first)),
    };
    rayon::join(
        || shared(a, astr, b, c1, (m1, k, n), accumulate, s1),
        || shared(a2, astr, b, c2, (m - m1, k, n), accumulate, s2),
    );
    if let Some(side) = side {
        Side::join(side.c, side.r, m1);
    }
}

/// Among how many threads [`shared`] may share a product out: one per packing buffer given
/// (gemm's products, which pack their operands), or a number of threads (the time loop's).
enum Shares<'p, F> {
    /// A buffer per share, and a side product that runs with the product.
    Packed(&'p mut [Vec<F>], Option<Side<'p, F>>),
    Threads(usize),
}

impl<F> Shares<'_, F> {
    fn parts(&self) -> usize {
        match self {
            Shares::Packed(p, _) => p.len(),
            Shares::Threads(t) => *t,
        }
    }
}

/// Whether c (m, n) is too narrow for the tiles' vectors and better computed as its transpose:
/// fewer columns than an AVX2 vector of f32 holds, and several times more rows.
fn narrow(m: usize, n: usize) -> bool {
    n < 8 && m >= 4 * n
}

/// The elements of `v` in row-major order: `v`'s own memory if it is in standard layout, else a
/// copy in `buf` (a transposed view by [`transpose_slices`]: an element-by-element copy was 14 %
/// of a step at H = 512, B = 1).
fn standard<'a, F: Real>(v: ArrayView2<'a, F>, buf: &'a mut Vec<F>) -> &'a [F] {
    if let Some(s) = v.to_slice() {
        return s;
    }
    let (m, n) = v.dim();
    buf.clear();
    buf.resize(m * n, F::zero());
    match v.t().to_slice() {
        Some(src) => transpose_slices(src, buf, n, m),
        None => buf.iter_mut().zip(v.iter()).for_each(|(d, &x)| *d = x),
    }
    buf
}

/// dst (n, m) = srcᵀ for a row-major src (m, n): eight rows of src at a time, read along their
/// length, each column of them written as eight contiguous elements of dst (a 16 × 16 block
/// loop took 0.75 ns per element at 128 × 128 f32, this 0.27, Intel Xeon family 6 model 207;
/// B = 1 transposes W once per pass).
pub fn transpose_slices<F: Copy>(src: &[F], dst: &mut [F], m: usize, n: usize) {
    const ROWS: usize = 8;
    assert!(src.len() == m * n && dst.len() == m * n, "transpose sizes");
    let full = m / ROWS * ROWS;
    for i0 in (0..full).step_by(ROWS) {
        let rows: [&[F]; ROWS] = std::array::from_fn(|r| &src[(i0 + r) * n..(i0 + r + 1) * n]);
        for (j, out) in dst.chunks_exact_mut(m).enumerate() {
            for (o, row) in out[i0..i0 + ROWS].iter_mut().zip(&rows) {
                *o = row[j];
            }
        }
    }
    for i in full..m {
        for (j, &x) in src[i * n..(i + 1) * n].iter().enumerate() {
            dst[j * m + i] = x;
        }
    }
}

/// Runs the path [`Isa::current`] names (a cached load per call). `NB` is the tile width for
/// several rows (`NB2` for a remainder no wider), `R512` the rows of a tile under AVX-512
/// (`NB256`, `NB256H` and `R256` the same under AVX2), `NB1` then `NB1H` for one row (a
/// matrix–vector product needs more independent sums in flight to hide the multiply–add latency).
fn dispatch<
    F: Real,
    const NB: usize,
    const NB2: usize,
    const NB1: usize,
    const NB1H: usize,
    const R512: usize,
    const NB256: usize,
    const NB256H: usize,
    const R256: usize,
>(
    a: &[F],
    (b, bs): (&[F], usize),
    c: &mut [F],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    astr: (usize, usize),
    pack: Option<Pack<'_, F>>,
) {
    let reach = if m * k == 0 {
        0
    } else {
        (m - 1) * astr.0 + (k - 1) * astr.1 + 1
    };
    assert!(a.len() >= reach && b.len() == k * n && c.len() == m * n, "matmul sizes");
    // Packing reads b row-major: only a row-major b (one strip) may be packed. A side product
    // reads a's memory as A (k, m): only a transposed a.
    assert!(
        pack.as_ref()
            .is_none_or(|p| p.side.is_none() || (astr.0 == 1 && bs >= n)),
        "a side product needs a transposed a and a row-major b"
    );
    let pack = pack.filter(|_| bs >= n);
    match Isa::current() {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is AVX-512 only where avx512f, avx2 and fma were detected.
        Isa::Avx512 => unsafe {
            x86::avx512::<F, NB, NB2, NB1, NB1H, R512>(a, (b, bs), c, (m, k, n), accumulate, astr, pack)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the path is AVX2 only where avx2 and fma were detected.
        Isa::Avx2 => unsafe {
            x86::avx2::<F, NB256, NB256H, NB1, NB1H, R256>(a, (b, bs), c, (m, k, n), accumulate, astr, pack)
        },
        // Fused by `mul_add` too, so that its bits are those of the paths above.
        _ => product::<F, NB, NB2, NB1, NB1H, 2, 0>(a, (b, bs), c, (m, k, n), accumulate, astr, pack),
    }
}

/// A product on the path `ISA`: packed where it is large and a buffer is given, else by the
/// tiles reading the operands in place (a side product runs along either way).
#[inline(always)]
fn product<
    F: Real,
    const NB: usize,
    const NB2: usize,
    const NB1: usize,
    const NB1H: usize,
    const R: usize,
    const ISA: u8,
>(
    a: &[F],
    (b, bs): (&[F], usize),
    c: &mut [F],
    mkn: (usize, usize, usize),
    accumulate: bool,
    astr: (usize, usize),
    pack: Option<Pack<'_, F>>,
) {
    match pack {
        Some(p) if large::<NB, R>(mkn) => packed::<F, NB, NB2, R, ISA>(a, b, c, mkn, accumulate, astr, p),
        p => {
            let side = p.and_then(|p| p.side);
            tiles::<F, NB, NB2, NB1, NB1H, R, ISA>(a, (b, bs), c, mkn, accumulate, astr, side)
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Ops, Pack, Real, Sums, product, tile};

    /// One tile compiled on its own for AVX-512 (inside the packed loop nest, the compiler left
    /// the tile's sums in memory: 2 GFLOP/s).
    #[inline(never)]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn tile512<F: Real, const NB: usize, const R: usize>(
        a: &[F],
        b: &[F],
        c: &mut [F],
        ops: Ops,
        w: usize,
        kn: usize,
        sums: Sums,
    ) {
        tile::<F, NB, R, 2>(a, b, c, ops, w, kn, sums);
    }

    /// One tile compiled on its own for AVX2.
    #[inline(never)]
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn tile256<F: Real, const NB: usize, const R: usize>(
        a: &[F],
        b: &[F],
        c: &mut [F],
        ops: Ops,
        w: usize,
        kn: usize,
        sums: Sums,
    ) {
        tile::<F, NB, R, 1>(a, b, c, ops, w, kn, sums);
    }

    /// The tiles compiled for AVX-512: R rows × NB columns in registers.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn avx512<
        F: Real,
        const NB: usize,
        const NB2: usize,
        const NB1: usize,
        const NB1H: usize,
        const R: usize,
    >(
        a: &[F],
        (b, bs): (&[F], usize),
        c: &mut [F],
        mkn: (usize, usize, usize),
        accumulate: bool,
        astr: (usize, usize),
        pack: Option<Pack<'_, F>>,
    ) {
        product::<F, NB, NB2, NB1, NB1H, R, 2>(a, (b, bs), c, mkn, accumulate, astr, pack);
    }

    /// The tiles compiled for AVX2: R rows × NB columns (half the vector registers' width).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2<
        F: Real,
        const NB: usize,
        const NB2: usize,
        const NB1: usize,
        const NB1H: usize,
        const R: usize,
    >(
        a: &[F],
        (b, bs): (&[F], usize),
        c: &mut [F],
        mkn: (usize, usize, usize),
        accumulate: bool,
        astr: (usize, usize),
        pack: Option<Pack<'_, F>>,
    ) {
        product::<F, NB, NB2, NB1, NB1H, R, 1>(a, (b, bs), c, mkn, accumulate, astr, pack);
    }
}

/// Bytes of b one panel may span: each strip of it is read once per group of a's rows and then
/// from the first-level cache, and a wider panel repacks a less often (256 KiB panels packed a
/// twice over at n = 512).
const PANEL_BYTES: usize = 1 << 20;
/// Bytes of one packed strip of b a tall product's k blocks keep within (half the first-level
/// cache of the processors we run on: 32 to 48 KiB).
const STRIP_BYTES: usize = 32 << 10;
/// Bytes of a that [`packed`] packs at a time (read from the second-level cache, one R-row block
/// per tile).
const A_BYTES: usize = 128 << 10;
/// Rows of b per panel when b is tall (the gradient sums, where k = T·B): longer panels would
/// leave the cache; their sums continue from c, so the order over k is unchanged.
const PANEL_ROWS: usize = 256;

/// What a tile does with c: the sums start from zero and replace c (`Fresh`), start from zero
/// and are then added to c (`AddTo`: c + Σ, the accumulating product), or continue the partial
/// sums c holds (`Continue`: a later block of k).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Sums {
    Fresh,
    AddTo,
    Continue,
}

impl Sums {
    fn of(accumulate: bool) -> Self {
        if accumulate { Sums::AddTo } else { Sums::Fresh }
    }

    /// For the block of k starting at k0.
    fn block(k0: usize, accumulate: bool) -> Self {
        if k0 > 0 { Sums::Continue } else { Sums::of(accumulate) }
    }
}

/// Covers c with tiles, b read in place (row-major, or in [`Strips`]): per block of k (the whole
/// of k unless it is tall), one strip of NB columns at a time down all the row blocks of R rows
/// (remainders by 4, 2 and 1). Fewer than min(R, 4) rows (B = 1): single-row tiles NB1 wide,
/// within a strip. Each element of c is one running sum over k = 0, 1, … whatever the blocks: a
/// later block of k continues what the earlier left in c.
#[inline(always)]
fn tiles<
    F: Real,
    const NB: usize,
    const NB2: usize,
    const NB1: usize,
    const NB1H: usize,
    const R: usize,
    const ISA: u8,
>(
    a: &[F],
    (b, bs): (&[F], usize),
    c: &mut [F],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    (ars, acs): (usize, usize),
    mut side: Option<Side<'_, F>>,
) {
    // Element (i, kk) of a is a[i·ars + kk·acs]; b is in strips of bs columns, c row-major.
    let at = |i: usize, k0: usize, j: usize| Ops {
        a: (i * ars + k0 * acs, ars, acs),
        b: strip_at(j, k0, (k, n), bs).0,
        c: (i * n + j, n),
    };
    // The end of the strip column j lies in: no tile crosses it.
    let end = |j: usize| strip_at(j, 0, (k, n), bs).1;
    if m < R.min(4) {
        // One row at a time, as wide as the strip allows.
        let sums = Sums::of(accumulate);
        for i in 0..m {
            let mut j = 0;
            while j < n {
                let e = end(j);
                if j + NB1 <= e {
                    tile::<F, NB1, 1, ISA>(a, b, c, at(i, 0, j), NB1, k, sums);
                    j += NB1;
                } else if j + NB1H <= e {
                    tile::<F, NB1H, 1, ISA>(a, b, c, at(i, 0, j), NB1H, k, sums);
                    j += NB1H;
                } else {
                    let w = NB.min(e - j);
                    tile::<F, NB, 1, ISA>(a, b, c, at(i, 0, j), w, k, sums);
                    j += w;
                }
            }
        }
        if let Some(side) = side.as_mut() {
            side_block::<F, NB, NB2, R, ISA>(side, a, acs, m, (0, k));
        }
        return;
    }
    // One strip of NB columns of b at a time, down all the row blocks: the strip (k × NB) is
    // reread from the first-level cache, not from the second (a panel of several strips per row
    // block was: 41 → 54 GFLOP/s at 32 × 512 × 512, f32, Intel Xeon family 6 model 106).
    // Only a tall k is blocked: the time loop's strips measured no faster in blocks.
    let kc = if tall(k) && !accumulate {
        strip_rows::<F, NB>()
    } else {
        k.max(1)
    };
    let mut k0 = 0;
    while k0 < k.max(1) {
        let k1 = (k0 + kc).min(k);
        let sums = Sums::block(k0, accumulate);
        // A tall b read in place (row-major: the gradient sums computed as their transposes,
        // whose strips each read a part of every row): the next block's rows are fetched
        // between this block's tiles. db and dU of the adding problem as one such product, f32
        // H = 128, B = 32: T = 1000 0.65–0.67 ms against 0.87–1.00 without (AMD EPYC family 26
        // model 2).
        let k2 = (k1 + kc).min(k);
        let mut ahead = (kc < k && bs >= n && k2 > k1).then(|| {
            let tiles = n.div_ceil(NB) * m.div_ceil(R);
            Ahead::new([&b[k1 * n..k2 * n], &[]], tiles)
        });
        let mut j = 0;
        while j < n {
            let w = NB.min(end(j) - j);
            let mut i = 0;
            while i < m {
                let ops = at(i, k0, j);
                // R rows, then the remainder by 4, 2 and 1 (a one-row tile has too few sums in
                // flight to keep the multiply–add units busy). Eight rows left with AVX2's 6-row
                // tiles go as 4 + 4, not 6 + 2, whose 2-row tile (4 sums in flight) waits on
                // its multiply–adds' latency (B = 32: 6 × 5 + 2).
                let rows = if R == 6 && m - i == 8 {
                    4
                } else {
                    [R, 4, 2, 1].into_iter().find(|&r| r <= R && i + r <= m).unwrap_or(1)
                };
                match (rows, w <= NB2) {
                    (r, false) if r == R => tile::<F, NB, R, ISA>(a, b, c, ops, w, k1 - k0, sums),
                    (r, true) if r == R => tile::<F, NB2, R, ISA>(a, b, c, ops, w, k1 - k0, sums),
                    (4, _) => tile::<F, NB, 4, ISA>(a, b, c, ops, w, k1 - k0, sums),
                    (2, _) => tile::<F, NB, 2, ISA>(a, b, c, ops, w, k1 - k0, sums),
                    _ => tile::<F, NB, 1, ISA>(a, b, c, ops, w, k1 - k0, sums),
                }
                if let Some(ahead) = ahead.as_mut() {
                    ahead.step();
                }
                i += rows;
            }
            j += w;
        }
        if let Some(side) = side.as_mut() {
            side_block::<F, NB, NB2, R, ISA>(side, a, acs, m, (k0, k1));
        }
        k0 += kc;
    }
}

/// The sums of a [`Side`] product over the block k0 … k1 of k, right after the main product's:
/// its r rows (R, 4, 2 or 1 at a time) by strips of NB of A's m columns, A (a's memory, rows acs
/// apart) read in place while the block is still in the cache.
#[inline(always)]
fn side_block<F: Real, const NB: usize, const NB2: usize, const R: usize, const ISA: u8>(
    side: &mut Side<'_, F>,
    a: &[F],
    acs: usize,
    m: usize,
    (k0, k1): (usize, usize),
) {
    let (r, sums) = (side.r, Sums::block(k0, false));
    assert_eq!(side.c.len(), r * m, "side product shape");
    let mut j = 0;
    while j < m {
        let w = NB.min(m - j);
        let mut q = 0;
        while q < r {
            let rows = [R, 4, 2, 1].into_iter().find(|&t| t <= R && q + t <= r).unwrap_or(1);
            let ops = Ops {
                a: (k0 * r + q, 1, r),
                b: (k0 * acs + j, acs),
                c: (q * m + j, m),
            };
            run_tile::<F, NB, NB2, R, ISA>(side.s, a, side.c, ops, (rows, w), k1 - k0, sums);
            q += rows;
        }
        j += w;
    }
}

/// One tile of `rows` (R, 4, 2 or 1) by w ≤ NB columns, compiled on its own for the path `ISA`
/// (see `x86::tile512`).
#[inline(always)]
fn run_tile<F: Real, const NB: usize, const NB2: usize, const R: usize, const ISA: u8>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    ops: Ops,
    (rows, w): (usize, usize),
    kn: usize,
    sums: Sums,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: ISA 2 and 1 are passed only from the AVX-512 and AVX2 paths, which run only where
    // those features were detected.
    unsafe {
        match (ISA, rows, w <= NB2) {
            (2, r, false) if r == R => return x86::tile512::<F, NB, R>(a, b, c, ops, w, kn, sums),
            (2, r, true) if r == R => return x86::tile512::<F, NB2, R>(a, b, c, ops, w, kn, sums),
            (2, 4, _) => return x86::tile512::<F, NB, 4>(a, b, c, ops, w, kn, sums),
            (2, 2, _) => return x86::tile512::<F, NB, 2>(a, b, c, ops, w, kn, sums),
            (2, _, _) => return x86::tile512::<F, NB, 1>(a, b, c, ops, w, kn, sums),
            (1, r, false) if r == R => return x86::tile256::<F, NB, R>(a, b, c, ops, w, kn, sums),
            (1, r, true) if r == R => return x86::tile256::<F, NB2, R>(a, b, c, ops, w, kn, sums),
            (1, 4, _) => return x86::tile256::<F, NB, 4>(a, b, c, ops, w, kn, sums),
            (1, 2, _) => return x86::tile256::<F, NB, 2>(a, b, c, ops, w, kn, sums),
            (1, _, _) => return x86::tile256::<F, NB, 1>(a, b, c, ops, w, kn, sums),
            _ => {}
        }
    }
    match (rows, w <= NB2) {
        (r, false) if r == R => tile_apart::<F, NB, R>(a, b, c, ops, w, kn, sums),
        (r, true) if r == R => tile_apart::<F, NB2, R>(a, b, c, ops, w, kn, sums),
        (4, _) => tile_apart::<F, NB, 4>(a, b, c, ops, w, kn, sums),
        (2, _) => tile_apart::<F, NB, 2>(a, b, c, ops, w, kn, sums),
        _ => tile_apart::<F, NB, 1>(a, b, c, ops, w, kn, sums),
    }
}

/// Where b's element (k0, j) lies when b (k, n) is stored in strips of `bs` columns (each strip's
/// rows one after another; see [`Strips`]): its offset and its strip's row length, and the
/// column where its strip ends. A row-major b is one strip (bs ≥ n).
#[inline(always)]
fn strip_at(j: usize, k0: usize, (k, n): (usize, usize), bs: usize) -> ((usize, usize), usize) {
    let s0 = j / bs * bs;
    let end = (s0 + bs).min(n);
    ((s0 * k + k0 * (end - s0) + (j - s0), end - s0), end)
}

/// Rows of b per block of k for a strip of NB columns: within `STRIP_BYTES` and `PANEL_ROWS`
/// (f64's 32 columns: 128 rows; 256 had the tall f64 product at 32 GFLOP/s, Intel Xeon family 6
/// model 106). Products are blocked over k only when c is not accumulated into (`gemm` computes
/// a tall accumulated product apart and adds it), where a later block continues the sums the
/// earlier left in c.
fn strip_rows<F, const NB: usize>() -> usize {
    PANEL_ROWS.min((STRIP_BYTES / (NB * std::mem::size_of::<F>())).max(8))
}

/// Whether a product's k is long enough to be blocked (and, when it accumulates, computed apart
/// by `gemm`).
fn tall(k: usize) -> bool {
    k > 2 * PANEL_ROWS
}

/// Whether a product is large enough for [`packed`] to pay: many row blocks and strips.
fn large<const NB: usize, const R: usize>((m, k, n): (usize, usize, usize)) -> bool {
    m >= 4 * R && n >= 2 * NB && k >= 8
}

/// A large product with its operands packed (GotoBLAS's scheme, in BLIS's loop order): per block
/// of k and panel of columns (up to `PANEL_BYTES`), b's panel is copied into strips of NB columns,
/// each (kc, NB) contiguous; per group of rows (`A_BYTES` of a), a's R-row blocks into (kc, R)
/// blocks; then each strip runs against every block of the group, so the strip stays in the
/// first-level cache while the blocks stream from the second. A transposed a (aᵀ stored
/// row-major, `ars` = 1: the gradient sums' dgᵀ) is not packed: a block's R
/// elements at one step of k already lie side by side, and the tiles read them in place. Each
/// element of c is still one running sum over k in order: only the memory traffic changes.
/// `ISA` picks the tile compiled for AVX-512 (2), AVX2 (1) or the baseline (0).
#[inline(always)]
fn packed<F: Real, const NB: usize, const NB2: usize, const R: usize, const ISA: u8>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
    (ars, acs): (usize, usize),
    pack: Pack<'_, F>,
) {
    let Pack { buf, mut side } = pack;
    // Blocked over k as soon as a strip outgrows the first-level cache (512³ in f64 with k
    // whole: 47–50 GFLOP/s, in blocks of 128: 62–66; f32 125–130 whole, 133–141 in blocks of 256;
    // Intel Xeon family 6 model 207).
    let kc = if accumulate { k } else { k.min(strip_rows::<F, NB>()) }.max(1);
    // Panels of up to PANEL_BYTES, no wider than b; no more of a's rows than it has: the buffer
    // is sized for this product.
    let panel = ((PANEL_BYTES / (kc * std::mem::size_of::<F>()) / NB).max(1) * NB).min(n.div_ceil(NB) * NB);
    // A transposed a is read in place, its copy saved: f32 128 × 32000 × 128 4.65–4.77 ms
    // against 5.15–5.34 packed, 512 × 32000 × 128 (an LSTM's dW) 17.4 against 30.8 (whose
    // packed groups of rows leave out the fetching ahead), f64 128 × 32000 × 128 9.2 against
    // 10.3, AVX2 f32 128 × 32000 × 128 9.5 against 11.4; short ones too (B = 1: 128 × 200 × 128
    // 0.027 ms against 0.030, AVX2 0.053–0.054 against 0.058) (AMD EPYC family 26 model 2, one
    // thread). Not where its steps lie a multiple of 4 KiB apart, where a tile's every step
    // falls into the same first-level cache set (f64 512 × 6400 × 512: 32.8 ms in place, 30.0
    // packed).
    let in_place = ars == 1 && !(acs * std::mem::size_of::<F>()).is_multiple_of(4096);
    // Rows of a packed at a time: R-row blocks filling about A_BYTES (all of them, unpacked,
    // when a is read in place).
    let mc = if in_place {
        m
    } else {
        ((A_BYTES / (kc * std::mem::size_of::<F>()) / R).max(1) * R).min(m.div_ceil(R) * R)
    };
    // Grown when too small, never cleared: every element a tile reads is written below first
    // (zeroing the whole buffer was 15 % of a step at H = 128, T = 50, B = 1).
    let need = kc * (panel + if in_place { 0 } else { mc });
    if buf.len() < need {
        buf.resize(need, F::zero());
    }
    let (pb, pa) = buf.split_at_mut(kc * panel);
    let run = |a: &[F], b: &[F], c: &mut [F], ops: Ops, rows_w: (usize, usize), kn: usize, sums: Sums| {
        run_tile::<F, NB, NB2, R, ISA>(a, b, c, ops, rows_w, kn, sums)
    };
    let mut k0 = 0;
    while k0 < k {
        let (k1, sums) = ((k0 + kc).min(k), Sums::block(k0, accumulate));
        let kn = k1 - k0;
        // A tall product in one panel and one group of rows (the gradient sums, aᵀ stored
        // row-major): the next block's rows of a and b are fetched between this block's tiles.
        let k2 = (k1 + kc).min(k);
        let mut ahead = (ars == 1 && panel >= n && mc >= m && k2 > k1).then(|| {
            let tiles = n.div_ceil(NB) * m.div_ceil(R);
            Ahead::new([&a[k1 * acs..(k2 - 1) * acs + m], &b[k1 * n..k2 * n]], tiles)
        });
        let mut j0 = 0;
        while j0 < n {
            let j1 = (j0 + panel).min(n);
            for (s, jj) in (j0..j1).step_by(NB).enumerate() {
                let w = NB.min(j1 - jj);
                let strip = &mut pb[s * kc * NB..s * kc * NB + kn * NB];
                for (kk, dst) in strip.chunks_exact_mut(NB).enumerate() {
                    let src = &b[(k0 + kk) * n + jj..];
                    // A full row by a fixed-length copy (a call to memmove per row was 14 % of a
                    // tall gradient sum, 128 × 32000 × 128 in f32).
                    if w == NB {
                        copy_block::<F, NB>(dst, src);
                    } else {
                        dst[..w].copy_from_slice(&src[..w]);
                    }
                }
            }
            // Groups of mc rows: their full R-row blocks packed once, then each strip of the
            // panel against every block (the strip stays in the first-level cache while the
            // blocks stream past it), then the group's remainder rows one by one, unpacked.
            let mut i0 = 0;
            while i0 < m {
                let i1 = (i0 + mc).min(m);
                let blocks = (i1 - i0) / R;
                // Block blk's element (r, kk) goes to pa[blk·kc·R + kk·R + r]; a is read along
                // its contiguous axis (a page per row of a transposed a, read across, was
                // a TLB miss per element).
                let at = |blk: usize, r: usize, kk: usize| (i0 + blk * R + r) * ars + (k0 + kk) * acs;
                if in_place {
                    // Nothing to pack.
                } else if ars == 1 {
                    // A transposed a whose steps lie a multiple of 4 KiB apart: each block's R
                    // elements at one kk lie side by side in a (element by element, this
                    // packing took 36 % of 128 × 32000 × 128 in f32).
                    // Eight steps of k per block before the next block: the blocks lie kc·R
                    // elements apart (the same first-level cache set), and one step's R
                    // elements are less than a cache line, which was evicted before the next
                    // step filled the rest of it.
                    for kk0 in (0..kn).step_by(8) {
                        for blk in 0..blocks {
                            for kk in kk0..(kk0 + 8).min(kn) {
                                let from = i0 + blk * R + (k0 + kk) * acs;
                                copy_block::<F, R>(&mut pa[blk * kc * R + kk * R..], &a[from..]);
                            }
                        }
                    }
                } else if acs == 1 {
                    for blk in 0..blocks {
                        for r in 0..R {
                            for kk in 0..kn {
                                pa[blk * kc * R + kk * R + r] = a[at(blk, r, kk)];
                            }
                        }
                    }
                } else {
                    for kk in 0..kn {
                        for blk in 0..blocks {
                            for r in 0..R {
                                pa[blk * kc * R + kk * R + r] = a[at(blk, r, kk)];
                            }
                        }
                    }
                }
                for (s, jj) in (j0..j1).step_by(NB).enumerate() {
                    let w = NB.min(j1 - jj);
                    let b_ops = (s * kc * NB, NB);
                    for blk in 0..blocks {
                        let (a, a_ops) = if in_place {
                            (a, ((i0 + blk * R) * ars + k0 * acs, ars, acs))
                        } else {
                            (&*pa, (blk * kc * R, 1, R))
                        };
                        let ops = Ops {
                            a: a_ops,
                            b: b_ops,
                            c: ((i0 + blk * R) * n + jj, n),
                        };
                        run(a, pb, c, ops, (R, w), kn, sums);
                        if let Some(ahead) = ahead.as_mut() {
                            ahead.step();
                        }
                    }
                    for i in i0 + blocks * R..i1 {
                        let ops = Ops {
                            a: (i * ars + k0 * acs, ars, acs),
                            b: b_ops,
                            c: (i * n + jj, n),
                        };
                        run(a, pb, c, ops, (1, w), kn, sums);
                    }
                }
                i0 = i1;
            }
            j0 = j1;
        }
        if let Some(side) = side.as_mut() {
            side_block::<F, NB, NB2, R, ISA>(side, a, acs, m, (k0, k1));
        }
        k0 = k1;
    }
}

/// The cache lines of a few slices, requested a few at a time with the hint for every level of
/// cache (T0): the next block of k of a tall product, while the tiles of this one run (its
/// packing read them from memory: 42 % of 128 × 32000 × 128 in f32, AMD EPYC family 26 model 2;
/// with the second-level hint, T1, the product took 5.23–5.48 ms from a flushed cache, with T0
/// 4.76–5.00, alternating). A hint only: nothing is read, no result changes; a no-op but on
/// x86-64.
struct Ahead<'s, F> {
    parts: [&'s [F]; 2],
    /// Byte offset of the next line to fetch, over the parts one after the other.
    at: usize,
    /// Lines per step.
    per: usize,
}

impl<'s, F> Ahead<'s, F> {
    const LINE: usize = 64;

    /// All lines of `parts` over `steps` steps.
    fn new(parts: [&'s [F]; 2], steps: usize) -> Self {
        let bytes: usize = parts.iter().map(|p| std::mem::size_of_val(*p)).sum();
        let per = bytes.div_ceil(Self::LINE).div_ceil(steps.max(1));
        Self { parts, at: 0, per }
    }

    /// Out of line: inlined into the tiles' loop it slowed products that fetch nothing (one
    /// step at H = 128, B = 1 by 12 %).
    #[inline(never)]
    fn step(&mut self) {
        for _ in 0..self.per {
            let mut at = self.at;
            for part in self.parts {
                let len = std::mem::size_of_val(part);
                if at < len {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: a prefetch hint does not access memory; the address lies inside
                    // `part` anyway.
                    unsafe {
                        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                        _mm_prefetch::<_MM_HINT_T0>(part.as_ptr().cast::<i8>().add(at));
                    }
                    break;
                }
                at -= len;
            }
            self.at += Self::LINE;
        }
    }
}

/// dst[..N] = src[..N], a copy of a length known at compile time (vector moves, not a call).
#[inline(always)]
fn copy_block<F: Copy, const N: usize>(dst: &mut [F], src: &[F]) {
    let dst: &mut [F; N] = (&mut dst[..N]).try_into().expect("N elements");
    *dst = *<&[F; N]>::try_from(&src[..N]).expect("N elements");
}

/// One tile compiled on its own for the baseline target (see `x86::tile512`).
#[inline(never)]
fn tile_apart<F: Real, const NB: usize, const R: usize>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    ops: Ops,
    w: usize,
    kn: usize,
    sums: Sums,
) {
    tile::<F, NB, R, 0>(a, b, c, ops, w, kn, sums);
}

/// Where a tile's operands start and how they are laid out: element (r, kk) of a is
/// a[a.0 + r·a.1 + kk·a.2], element (kk, j) of b is b[b.0 + kk·b.1 + j], element (r, j) of c is
/// c[c.0 + r·c.1 + j], for the tile's own rows r, columns j and steps kk of its block of k.
#[derive(Clone, Copy)]
pub(crate) struct Ops {
    a: (usize, usize, usize),
    b: (usize, usize),
    c: (usize, usize),
}

/// One tile: R rows × w columns of c (w ≤ NB), its sums over kn steps of k in order, as `sums`
/// says. A full-width tile (w = NB) is a separate copy whose sums stay in registers: indexing
/// them with a run-time width would put them in memory.
#[inline(always)]
fn tile<F: Real, const NB: usize, const R: usize, const ISA: u8>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    ops: Ops,
    w: usize,
    kn: usize,
    sums: Sums,
) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: ISA is 2 or 1 only on the paths that run where those features were detected.
    if w == NB && unsafe { micro::tile::<F, NB, R, ISA>(a, b, c, ops, kn, sums) } {
        return;
    }
    if w == NB {
        tile_of::<F, NB, R>(a, b, c, ops, NB, kn, sums);
    } else {
        tile_of::<F, NB, R>(a, b, c, ops, w, kn, sums);
    }
}

#[inline(always)]
fn tile_of<F: Real, const NB: usize, const R: usize>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    ops: Ops,
    w: usize,
    kn: usize,
    sums: Sums,
) {
    let Ops {
        a: (ao, ars, acs),
        b: (bo, ldb),
        c: (co, ldc),
    } = ops;
    let mut acc = [[F::zero(); NB]; R];
    if sums == Sums::Continue {
        for (r, acc) in acc.iter_mut().enumerate() {
            acc[..w].copy_from_slice(&c[co + r * ldc..co + r * ldc + w]);
        }
    }
    if kn > 0 {
        // Every index below is within these bounds: checked once, not at every k.
        assert!(
            ao + (R - 1) * ars + (kn - 1) * acs < a.len() && bo + (kn - 1) * ldb + w <= b.len(),
            "tile bounds"
        );
    }
    for kk in 0..kn {
        // SAFETY: kk < kn and r < R, within the bounds asserted above.
        let row = unsafe { b.get_unchecked(bo + kk * ldb..bo + kk * ldb + w) };
        let xs: [F; R] = std::array::from_fn(|r| unsafe { *a.get_unchecked(ao + r * ars + kk * acs) });
        for (acc, &x) in acc.iter_mut().zip(&xs) {
            for (s, &y) in acc.iter_mut().zip(row) {
                *s = x.mul_add(y, *s); // fused: one rounding, on every path
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let out = &mut c[co + r * ldc..co + r * ldc + w];
        if sums == Sums::AddTo {
            out.iter_mut().zip(acc).for_each(|(o, &s)| *o += s);
        } else {
            out.copy_from_slice(&acc[..w]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    /// The transpose against its definition, with and without rows left over from the blocks of
    /// eight.
    #[test]
    fn transpose_slices_transposes() {
        for &(m, n) in &[(0, 5), (1, 1), (8, 3), (13, 17), (24, 40)] {
            let src: Vec<u32> = (0..(m * n) as u32).collect();
            let mut dst = vec![u32::MAX; m * n];
            transpose_slices(&src, &mut dst, m, n);
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(dst[j * m + i], src[i * n + j], "({m}, {n}) element ({i}, {j})");
                }
            }
        }
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

    /// The contract itself: every element of the kernel's product, for any shape (tall k takes
    /// the blocked path, large ones the packed path), transposed operands through [`gemm`], and
    /// [`dot`], is bit for bit the
    /// running sum 0, fma(a_i0, b_0j, ·), fma(a_i1, b_1j, ·), … in order (plus c when
    /// accumulating).
    #[test]
    fn every_product_is_the_ordered_fused_sum() {
        // One scratch per element type for all shapes: a packing buffer left by a larger product
        // (never cleared) must not reach a smaller one's sums.
        fn check<F: Real>(m: usize, k: usize, n: usize, scratch: &mut Scratch<F>) {
            let val = |i: usize, j: usize, s: usize| F::of((((i * 31 + j * 17 + s) % 97) as f64 - 48.0) / 7.3);
            let a = Array2::from_shape_fn((m, k), |(i, j)| val(i, j, 1));
            let b = Array2::from_shape_fn((k, n), |(i, j)| val(i, j, 2));
            let c0 = Array2::from_shape_fn((m, n), |(i, j)| val(i, j, 3));
            let sums = Array2::from_shape_fn((m, n), |(i, j)| {
                (0..k).fold(F::zero(), |s, kk| a[(i, kk)].mul_add(b[(kk, j)], s))
            });
            for acc in [false, true] {
                let want = if acc { &c0 + &sums } else { sums.clone() };
                let mut c = c0.clone();
                matmul(a.view(), b.view(), c.view_mut(), acc);
                assert!(c == want, "{:?} ({m},{k},{n}) accumulate {acc}", F::DTYPE);
                let (at, bt) = (
                    a.t().as_standard_layout().into_owned(),
                    b.t().as_standard_layout().into_owned(),
                );
                let mut c = c0.clone();
                gemm(at.t(), bt.t(), c.view_mut(), acc, scratch);
                assert!(c == want, "{:?} ({m},{k},{n}) gemm of transposed views", F::DTYPE);
                let mut c = c0.clone();
                gemm(a.view(), b.view(), c.view_mut(), acc, scratch);
                assert!(c == want, "{:?} ({m},{k},{n}) gemm of standard views", F::DTYPE);
                // b in strips and row-major, packed from b and from its transpose's view.
                for (strips, from) in [(true, b.view()), (false, b.view()), (true, bt.t()), (false, bt.t())] {
                    let mut packed = Strips::default();
                    packed.pack(from, strips);
                    let mut c = c0.clone();
                    matmul_strips(a.view(), &packed, c.view_mut(), acc);
                    assert!(c == want, "{:?} ({m},{k},{n}) b in strips: {strips}", F::DTYPE);
                }
            }
            let d = dot(a.row(0), b.column(0));
            assert!(d == sums[(0, 0)], "{:?} dot of a row and a column", F::DTYPE);
        }
        let (mut s32, mut s64) = (Scratch::default(), Scratch::default());
        // (37, 90, 130), (40, 700, 150) and (48, 300, 100) take gemm's packed path (remainder rows
        // and a partial strip; tall and blocked over k).
        for &(m, k, n) in &[
            (1, 300, 1),
            (1, 37, 300),
            (3, 5, 33),
            (9, 1100, 70),
            (33, 530, 20),
            (4, 2000, 300),
            (37, 90, 130),
            (40, 700, 150),
            // Packed and blocked over k though not tall: a last block of 44 rows.
            (48, 300, 100),
            // Tall, a transposed a read in place (f32: its steps 2 KiB apart) and packed (f64:
            // 4 KiB apart).
            (512, 600, 70),
            // Strips: a tail strip 4 wide and blocked over k (AVX2: 32 rows as 6 × 4 + 4 + 4); 6
            // rows by 4 + 2; one row per strip.
            (32, 600, 100),
            (6, 64, 70),
            (2, 40, 300),
            // Narrow: computed as the transpose (the gradient of U for two inputs; one output).
            (64, 1200, 2),
            (40, 30, 1),
            (130, 600, 7),
        ] {
            check::<f32>(m, k, n, &mut s32);
            check::<f64>(m, k, n, &mut s64);
        }
        // Shared out among 2 and 3 threads (by rows of c: the tall packed gradient sum, the
        // narrow one computed as its transpose, the time loop's product).
        for threads in [2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a pool");
            pool.install(|| {
                for &(m, k, n) in &[(96, 1100, 130), (200, 3000, 2), (64, 512, 512), (37, 90, 130)] {
                    check::<f32>(m, k, n, &mut s32);
                    check::<f64>(m, k, n, &mut s64);
                }
            });
        }
    }
}
