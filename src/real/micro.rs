//! Hand-written x86-64 micro-kernels (compiled on x86-64 only): one full tile of R rows × V vectors of c, its sums in
//! vector registers named by the code (`acc[r][v]`), not left to the auto-vectoriser (whose
//! larger tiles kept their sums in memory).
//!
//! The arithmetic is exactly the generic tile's ([`super::tile_of`]): each element's sum starts
//! from +0 (or continues c's partial sum), takes one fused multiply–add per step of k in order,
//! and is then stored (or added to c: c + Σ). Only the instructions that carry it change, so the
//! bits are those of every other path.

use super::{Ops, Real, Sums};
use std::any::TypeId;
use std::arch::x86_64::*;

/// Defines one kernel for a vector type: `$lanes` elements of `$t` per vector, compiled for
/// `$feat`. a's element (r, kk) is at `a + r·ars + kk·acs`, b's row kk at `b + kk·ldb`, c's row
/// r at `c + r·ldc`.
macro_rules! kernel {
    ($name:ident, $feat:literal, $t:ty, $lanes:literal,
     $zero:ident, $load:ident, $store:ident, $splat:ident, $fma:ident, $add:ident) => {
        /// # Safety
        /// The processor has the features named; every element the tile reads or writes lies
        /// within the allocations the pointers come from.
        #[inline(never)]
        #[target_feature(enable = $feat)]
        unsafe fn $name<const V: usize, const R: usize>(
            (a, ars, acs): (*const $t, usize, usize),
            (b, ldb): (*const $t, usize),
            (c, ldc): (*mut $t, usize),
            kn: usize,
            sums: Sums,
        ) {
            // SAFETY (whole body): offsets stay within the tile's bounds, as the caller checked.
            unsafe {
                let mut acc = [[$zero(); V]; R];
                if sums == Sums::Continue {
                    for (r, row) in acc.iter_mut().enumerate() {
                        for (v, s) in row.iter_mut().enumerate() {
                            *s = $load(c.add(r * ldc + v * $lanes));
                        }
                    }
                }
                for kk in 0..kn {
                    let (bk, ak) = (b.add(kk * ldb), a.add(kk * acs));
                    let mut bv = [$zero(); V];
                    for (v, y) in bv.iter_mut().enumerate() {
                        *y = $load(bk.add(v * $lanes));
                    }
                    for (r, row) in acc.iter_mut().enumerate() {
                        let x = $splat(*ak.add(r * ars));
                        for (s, &y) in row.iter_mut().zip(&bv) {
                            *s = $fma(x, y, *s); // x·y + s, one rounding
                        }
                    }
                }
                for (r, row) in acc.iter().enumerate() {
                    for (v, &s) in row.iter().enumerate() {
                        let p = c.add(r * ldc + v * $lanes);
                        $store(p, if sums == Sums::AddTo { $add($load(p), s) } else { s });
                    }
                }
            }
        }
    };
}

kernel!(
    f32x16,
    "avx512f",
    f32,
    16,
    _mm512_setzero_ps,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_add_ps
);
kernel!(
    f64x8,
    "avx512f",
    f64,
    8,
    _mm512_setzero_pd,
    _mm512_loadu_pd,
    _mm512_storeu_pd,
    _mm512_set1_pd,
    _mm512_fmadd_pd,
    _mm512_add_pd
);
kernel!(
    f32x8,
    "avx2,fma",
    f32,
    8,
    _mm256_setzero_ps,
    _mm256_loadu_ps,
    _mm256_storeu_ps,
    _mm256_set1_ps,
    _mm256_fmadd_ps,
    _mm256_add_ps
);
kernel!(
    f64x4,
    "avx2,fma",
    f64,
    4,
    _mm256_setzero_pd,
    _mm256_loadu_pd,
    _mm256_storeu_pd,
    _mm256_set1_pd,
    _mm256_fmadd_pd,
    _mm256_add_pd
);

/// Vectors of `lanes` elements in NB columns, for the widths the tiles use.
macro_rules! by_width {
    ($kernel:ident, $lanes:literal, $nb:expr, $r:ident, $args:expr) => {{
        // The tile's operands as F pointers, cast to the kernel's element type (the caller has
        // checked that they are F's).
        let ((a, ars, acs), (b, ldb), (c, ldc), kn, sums) = $args;
        let (a, b, c) = ((a.cast(), ars, acs), (b.cast(), ldb), (c.cast(), ldc));
        match if ($nb as usize).is_multiple_of($lanes) {
            $nb / $lanes
        } else {
            0
        } {
            1 => $kernel::<1, $r>(a, b, c, kn, sums),
            2 => $kernel::<2, $r>(a, b, c, kn, sums),
            3 => $kernel::<3, $r>(a, b, c, kn, sums),
            4 => $kernel::<4, $r>(a, b, c, kn, sums),
            _ => return false,
        }
    }};
}

/// Computes the full tile (R rows × NB columns of c) that `ops` places, with the hand-written
/// kernel for `ISA` (2: AVX-512, 1: AVX2) and F, when there is one for this width; false, having
/// done nothing, otherwise.
///
/// # Safety
/// ISA 2 only where AVX-512F was detected, 1 only where AVX2 and FMA were.
#[inline(always)]
pub(super) unsafe fn tile<F: Real, const NB: usize, const R: usize, const ISA: u8>(
    a: &[F],
    b: &[F],
    c: &mut [F],
    ops: Ops,
    kn: usize,
    sums: Sums,
) -> bool {
    // (An empty k leaves the tile to the generic code: the offsets into a may then lie past it.)
    if ISA == 0 || NB > 64 || kn == 0 {
        return false;
    }
    let Ops {
        a: (ao, ars, acs),
        b: (bo, ldb),
        c: (co, ldc),
    } = ops;
    // The tile's reach in each operand: checked once here, the kernel then reads and writes
    // through raw pointers.
    assert!(
        ao + (R - 1) * ars + (kn - 1) * acs < a.len() && bo + (kn - 1) * ldb + NB <= b.len(),
        "tile bounds"
    );
    assert!(co + (R - 1) * ldc + NB <= c.len(), "tile bounds");
    let id = TypeId::of::<F>();
    // SAFETY: the offsets are within the bounds checked above; the kernels' casts are to F
    // itself (TypeId equal); the features are the caller's promise.
    unsafe {
        let args = (
            (a.as_ptr().add(ao), ars, acs),
            (b.as_ptr().add(bo), ldb),
            (c.as_mut_ptr().add(co), ldc),
            kn,
            sums,
        );
        match (id == TypeId::of::<f32>(), id == TypeId::of::<f64>(), ISA) {
            (true, _, 2) => by_width!(f32x16, 16, NB, R, args),
            (true, _, _) => by_width!(f32x8, 8, NB, R, args),
            (_, true, 2) => by_width!(f64x8, 8, NB, R, args),
            (_, true, _) => by_width!(f64x4, 4, NB, R, args),
            _ => return false,
        }
    }
    true
}
