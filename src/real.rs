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
//! every machine with FMA gives the same bits whatever the tile shape or vector width.

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
}

impl Real for f32 {
    const DTYPE: Dtype = Dtype::F32;

    fn of(x: f64) -> Self {
        x as f32
    }

    fn f64(self) -> f64 {
        self as f64
    }

    fn matmul_slices(a: &[Self], b: &[Self], c: &mut [Self], m: usize, k: usize, n: usize, accumulate: bool) {
        // 32 f32 = two 512-bit vectors per row of a tile; 128 for a single row.
        dispatch::<f32, 32, 128>(a, b, c, (m, k, n), accumulate);
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

    fn matmul_slices(a: &[Self], b: &[Self], c: &mut [Self], m: usize, k: usize, n: usize, accumulate: bool) {
        dispatch::<f64, 16, 64>(a, b, c, (m, k, n), accumulate);
    }
}

/// `c (m, n) = [c +] a (m, k) · b (k, n)` for standard-layout views (the time loop's product).
pub fn matmul<F: Real>(a: ArrayView2<'_, F>, b: ArrayView2<'_, F>, mut c: ArrayViewMut2<'_, F>, accumulate: bool) {
    let ((m, k), (k2, n)) = (a.dim(), b.dim());
    assert!(k == k2 && c.dim() == (m, n), "matmul shapes");
    let a = a.to_slice().expect("a in standard layout");
    let b = b.to_slice().expect("b in standard layout");
    let c = c.as_slice_mut().expect("c in standard layout");
    F::matmul_slices(a, b, c, m, k, n, accumulate);
}

/// Picks the widest instruction set the processor has, once per call (the check is a cached
/// load). `NB` is the tile width for several rows, `NB1` for one row (a matrix–vector product
/// needs more independent sums in flight to hide the multiply–add latency).
fn dispatch<F: Real, const NB: usize, const NB1: usize>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    assert!(a.len() == m * k && b.len() == k * n && c.len() == m * n, "matmul sizes");
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the features the function is compiled for were detected just above.
            return unsafe { x86::avx512::<F, NB, NB1>(a, b, c, (m, k, n), accumulate) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: as above.
            return unsafe { x86::avx2::<F, NB, NB1>(a, b, c, (m, k, n), accumulate) };
        }
    }
    tiles::<F, NB, NB1, 2, false>(a, b, c, (m, k, n), accumulate);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Real, tiles};

    /// The tiles compiled for AVX-512: 4 rows × NB columns in registers.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub unsafe fn avx512<F: Real, const NB: usize, const NB1: usize>(
        a: &[F],
        b: &[F],
        c: &mut [F],
        mkn: (usize, usize, usize),
        accumulate: bool,
    ) {
        tiles::<F, NB, NB1, 4, true>(a, b, c, mkn, accumulate);
    }

    /// The tiles compiled for AVX2: 2 rows × NB columns (half the vector registers' width).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn avx2<F: Real, const NB: usize, const NB1: usize>(
        a: &[F],
        b: &[F],
        c: &mut [F],
        mkn: (usize, usize, usize),
        accumulate: bool,
    ) {
        tiles::<F, NB, NB1, 2, true>(a, b, c, mkn, accumulate);
    }
}

/// Covers c with tiles: R rows at a time, then single rows; NB (or NB1) columns at a time, then
/// the remaining columns.
#[inline(always)]
fn tiles<F: Real, const NB: usize, const NB1: usize, const R: usize, const FMA: bool>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    (m, k, n): (usize, usize, usize),
    accumulate: bool,
) {
    let mut i = 0;
    while i + R <= m {
        let mut j = 0;
        while j + NB <= n {
            tile::<F, NB, R, FMA>(a, b, c, (i, j, NB), (k, n), accumulate);
            j += NB;
        }
        if j < n {
            tile::<F, NB, R, FMA>(a, b, c, (i, j, n - j), (k, n), accumulate);
        }
        i += R;
    }
    while i < m {
        let mut j = 0;
        while j + NB1 <= n {
            tile::<F, NB1, 1, FMA>(a, b, c, (i, j, NB1), (k, n), accumulate);
            j += NB1;
        }
        while j + NB <= n {
            tile::<F, NB, 1, FMA>(a, b, c, (i, j, NB), (k, n), accumulate);
            j += NB;
        }
        if j < n {
            tile::<F, NB, 1, FMA>(a, b, c, (i, j, n - j), (k, n), accumulate);
        }
        i += 1;
    }
}

/// One tile: rows i0 … i0+R−1, columns j0 … j0+w−1 of c (w ≤ NB), summed over k in order.
#[inline(always)]
fn tile<F: Real, const NB: usize, const R: usize, const FMA: bool>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    (i0, j0, w): (usize, usize, usize),
    (k, n): (usize, usize),
    accumulate: bool,
) {
    let mut acc = [[F::zero(); NB]; R];
    if w == NB {
        for kk in 0..k {
            let row: &[F; NB] = b[kk * n + j0..kk * n + j0 + NB].try_into().expect("NB wide");
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = a[(i0 + r) * k + kk];
                for (s, &y) in acc.iter_mut().zip(row) {
                    *s = if FMA { x.mul_add(y, *s) } else { *s + x * y };
                }
            }
        }
    } else {
        for kk in 0..k {
            let row = &b[kk * n + j0..kk * n + j0 + w];
            for (r, acc) in acc.iter_mut().enumerate() {
                let x = a[(i0 + r) * k + kk];
                for (s, &y) in acc.iter_mut().zip(row) {
                    *s = if FMA { x.mul_add(y, *s) } else { *s + x * y };
                }
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
