//! The values the double-double functions of [`super`] compute on: one f64, or several vectors
//! of f64 taken side by side ([`x86::Zmm`], [`x86::Ymm`]).
//!
//! One element's tanh is a chain of about 150 dependent operations. Written element by element
//! (one vector of lanes per chain), the processor's scheduler fills with the waiting operations
//! of one or two chains and the units idle: f64 tanh took 3.0 ns per element with AVX-512 on an
//! AMD EPYC of family 26 (Zen 5). The x86-64 types here carry K vectors and apply each operation
//! to all K before the next, so that every instruction has K − 1 independent neighbours: 2.2 ns
//! with K = 4, 2.15 with K = 8 (the adders' throughput, not the chains, bounds it then). Each
//! lane still takes the same IEEE operations in the same order: the bits do not depend on the
//! type.

use std::ops::{Add, Div, Mul, Neg, Sub};

/// A value of `LANES` f64, each operation applied lane by lane with IEEE rounding. `min`, `max`
/// and `clamp` are exact for numbers; what they give for a NaN lane is unspecified (the
/// functions replace NaN lanes at the end).
// Without x86-64's vector types, nothing loads or stores several lanes.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) trait F64s:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Add<f64, Output = Self>
    + Sub<f64, Output = Self>
    + Mul<f64, Output = Self>
{
    /// Per lane, a condition.
    type Mask: Copy;
    /// f64 values per value.
    const LANES: usize;
    fn splat(x: f64) -> Self;
    /// The `LANES` values of `v` (of that length).
    fn load(v: &[f64]) -> Self;
    /// Writes the `LANES` values into `v` (of that length).
    fn store(self, v: &mut [f64]);
    /// self · b + c, rounded once.
    fn mul_add(self, b: Self, c: Self) -> Self;
    fn abs(self) -> Self;
    /// |self| with the sign bit of `sign`.
    fn copysign(self, sign: Self) -> Self;
    fn min(self, c: f64) -> Self;
    fn max(self, c: f64) -> Self;
    fn lt(self, c: f64) -> Self::Mask;
    fn ge(self, c: f64) -> Self::Mask;
    fn is_nan(self) -> Self::Mask;
    /// Per lane, `yes` where `m` holds, else `no`.
    fn select(m: Self::Mask, yes: Self, no: Self) -> Self;
    /// 2^self, self an integer in the normal exponent range −1022 … 1023.
    fn pow2(self) -> Self;

    #[inline(always)]
    fn clamp(self, lo: f64, hi: f64) -> Self {
        self.max(lo).min(hi)
    }
}

/// 1.5 · 2⁵² + 1023: the bits of `k + EXP_BIAS` less those of 1.5 · 2⁵² are k + 1023, the
/// biased exponent of 2^k, for an integer k in the normal range.
const EXP_BIAS: f64 = 6_755_399_441_056_767.0;
/// The bits of 1.5 · 2⁵².
const ROUND_BITS: u64 = 0x4338_0000_0000_0000;

/// One value: the one-element functions, and the element-wise loops of the portable path (which
/// the compiler vectorises over elements), compute on plain f64.
impl F64s for f64 {
    type Mask = bool;
    const LANES: usize = 1;

    #[inline(always)]
    fn splat(x: f64) -> Self {
        x
    }

    #[inline(always)]
    fn load(v: &[f64]) -> Self {
        v[0]
    }

    #[inline(always)]
    fn store(self, v: &mut [f64]) {
        v[0] = self;
    }

    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        f64::mul_add(self, b, c)
    }

    #[inline(always)]
    fn abs(self) -> Self {
        f64::abs(self)
    }

    #[inline(always)]
    fn copysign(self, sign: Self) -> Self {
        f64::copysign(self, sign)
    }

    #[inline(always)]
    fn min(self, c: f64) -> Self {
        f64::min(self, c)
    }

    #[inline(always)]
    fn max(self, c: f64) -> Self {
        f64::max(self, c)
    }

    #[inline(always)]
    fn lt(self, c: f64) -> bool {
        self < c
    }

    #[inline(always)]
    fn ge(self, c: f64) -> bool {
        self >= c
    }

    #[inline(always)]
    fn is_nan(self) -> bool {
        f64::is_nan(self)
    }

    #[inline(always)]
    fn select(m: bool, yes: Self, no: Self) -> Self {
        if m { yes } else { no }
    }

    #[inline(always)]
    fn pow2(self) -> Self {
        f64::from_bits(((self + EXP_BIAS).to_bits().wrapping_sub(ROUND_BITS)) << 52)
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    //! K vectors side by side: AVX-512 ([`Zmm`], 8 lanes each) and AVX2 with FMA ([`Ymm`], 4).
    //!
    //! Values of these types are made only inside functions compiled for those instruction sets,
    //! which their callers reach after [`crate::isa::Isa::current`] found them: that is the
    //! SAFETY of every intrinsic below.

    use super::{EXP_BIAS, F64s, ROUND_BITS};
    use std::arch::x86_64::*;
    use std::ops::{Add, Div, Mul, Neg, Sub};

    /// `$ty op $ty` and `$ty op f64` by the intrinsic named, vector by vector, and `map`, each
    /// vector (of type `$v`) through a function.
    macro_rules! vector_ops {
        ($ty:ident, $v:ty, $set1:ident, $($tr:ident $f:ident $intr:ident),*) => {
            impl<const K: usize> $ty<K> {
                #[inline(always)]
                fn map(self, f: impl Fn($v) -> $v) -> Self {
                    let mut out = self;
                    for x in &mut out.0 {
                        *x = f(*x);
                    }
                    out
                }
            }
            $(
                impl<const K: usize> $tr for $ty<K> {
                    type Output = Self;
                    #[inline(always)]
                    fn $f(self, o: Self) -> Self {
                        let mut out = self;
                        for (x, &y) in out.0.iter_mut().zip(&o.0) {
                            // SAFETY: see the module's documentation.
                            *x = unsafe { $intr(*x, y) };
                        }
                        out
                    }
                }
                impl<const K: usize> $tr<f64> for $ty<K> {
                    type Output = Self;
                    #[inline(always)]
                    fn $f(self, o: f64) -> Self {
                        // SAFETY: see the module's documentation.
                        self.$f($ty([unsafe { $set1(o) }; K]))
                    }
                }
            )*
        };
    }

    /// The [`F64s`] methods both types write alike, vector by vector: `splat`, `load`, `store`,
    /// `mul_add` by the intrinsics named, `$lanes` f64 per vector.
    macro_rules! vector_methods {
        ($ty:ident, $lanes:literal, $set1:ident, $loadu:ident, $storeu:ident, $fmadd:ident) => {
            #[inline(always)]
            fn splat(x: f64) -> Self {
                // SAFETY: see the module's documentation.
                $ty([unsafe { $set1(x) }; K])
            }

            #[inline(always)]
            fn load(v: &[f64]) -> Self {
                assert_eq!(v.len(), Self::LANES);
                let mut x = Self::splat(0.0);
                for (i, x) in x.0.iter_mut().enumerate() {
                    // SAFETY: vector i is v[lanes·i ..][..lanes], within v (asserted).
                    *x = unsafe { $loadu(v.as_ptr().add($lanes * i)) };
                }
                x
            }

            #[inline(always)]
            fn store(self, v: &mut [f64]) {
                assert_eq!(v.len(), Self::LANES);
                for (i, &x) in self.0.iter().enumerate() {
                    // SAFETY: vector i goes to v[lanes·i ..][..lanes], within v (asserted).
                    unsafe { $storeu(v.as_mut_ptr().add($lanes * i), x) };
                }
            }

            #[inline(always)]
            fn mul_add(self, b: Self, c: Self) -> Self {
                let mut out = self;
                for ((x, &y), &z) in out.0.iter_mut().zip(&b.0).zip(&c.0) {
                    // SAFETY: see the module's documentation.
                    *x = unsafe { $fmadd(*x, y, z) };
                }
                out
            }
        };
    }

    /// K AVX-512 vectors of 8 f64.
    #[derive(Clone, Copy)]
    pub(crate) struct Zmm<const K: usize>([__m512d; K]);

    vector_ops!(Zmm, __m512d, _mm512_set1_pd, Add add _mm512_add_pd, Sub sub _mm512_sub_pd,
        Mul mul _mm512_mul_pd, Div div _mm512_div_pd);

    impl<const K: usize> Zmm<K> {
        /// Each vector's mask by `f`.
        #[inline(always)]
        fn test(self, f: impl Fn(__m512d) -> __mmask8) -> [__mmask8; K] {
            let mut m = [0; K];
            for (m, &x) in m.iter_mut().zip(&self.0) {
                *m = f(x);
            }
            m
        }

        /// Each vector's bits through `f`.
        #[inline(always)]
        fn map_bits(self, f: impl Fn(__m512i) -> __m512i) -> Self {
            // SAFETY: see the module's documentation.
            self.map(|a| unsafe { _mm512_castsi512_pd(f(_mm512_castpd_si512(a))) })
        }
    }

    impl<const K: usize> Neg for Zmm<K> {
        type Output = Self;
        #[inline(always)]
        fn neg(self) -> Self {
            // SAFETY: see the module's documentation.
            self.map_bits(|a| unsafe { _mm512_xor_si512(a, _mm512_set1_epi64(i64::MIN)) })
        }
    }

    impl<const K: usize> F64s for Zmm<K> {
        type Mask = [__mmask8; K];
        const LANES: usize = 8 * K;

        vector_methods!(
            Zmm,
            8,
            _mm512_set1_pd,
            _mm512_loadu_pd,
            _mm512_storeu_pd,
            _mm512_fmadd_pd
        );

        #[inline(always)]
        fn abs(self) -> Self {
            // SAFETY: see the module's documentation.
            self.map_bits(|a| unsafe { _mm512_and_si512(a, _mm512_set1_epi64(i64::MAX)) })
        }

        #[inline(always)]
        fn copysign(self, sign: Self) -> Self {
            let mut out = self.abs();
            for (x, &s) in out.0.iter_mut().zip(&sign.0) {
                // SAFETY: see the module's documentation.
                *x = unsafe {
                    let s = _mm512_and_si512(_mm512_castpd_si512(s), _mm512_set1_epi64(i64::MIN));
                    _mm512_castsi512_pd(_mm512_or_si512(_mm512_castpd_si512(*x), s))
                };
            }
            out
        }

        #[inline(always)]
        fn min(self, c: f64) -> Self {
            // SAFETY: see the module's documentation.
            self.map(|a| unsafe { _mm512_min_pd(a, _mm512_set1_pd(c)) })
        }

        #[inline(always)]
        fn max(self, c: f64) -> Self {
            // SAFETY: see the module's documentation.
            self.map(|a| unsafe { _mm512_max_pd(a, _mm512_set1_pd(c)) })
        }

        #[inline(always)]
        fn lt(self, c: f64) -> Self::Mask {
            // SAFETY: see the module's documentation.
            self.test(|a| unsafe { _mm512_cmp_pd_mask::<_CMP_LT_OQ>(a, _mm512_set1_pd(c)) })
        }

        #[inline(always)]
        fn ge(self, c: f64) -> Self::Mask {
            // SAFETY: see the module's documentation.
            self.test(|a| unsafe { _mm512_cmp_pd_mask::<_CMP_GE_OQ>(a, _mm512_set1_pd(c)) })
        }

        #[inline(always)]
        fn is_nan(self) -> Self::Mask {
            // SAFETY: see the module's documentation.
            self.test(|a| unsafe { _mm512_cmp_pd_mask::<_CMP_UNORD_Q>(a, a) })
        }

        #[inline(always)]
        fn select(m: Self::Mask, yes: Self, no: Self) -> Self {
            let mut out = no;
            for ((x, &y), &m) in out.0.iter_mut().zip(&yes.0).zip(&m) {
                // SAFETY: see the module's documentation.
                *x = unsafe { _mm512_mask_blend_pd(m, *x, y) };
            }
            out
        }

        #[inline(always)]
        fn pow2(self) -> Self {
            // The bits of k + EXP_BIAS less ROUND_BITS: k + 1023, shifted into the exponent.
            (self + EXP_BIAS).map_bits(|b| unsafe {
                // SAFETY: see the module's documentation.
                _mm512_slli_epi64::<52>(_mm512_sub_epi64(b, _mm512_set1_epi64(ROUND_BITS as i64)))
            })
        }
    }

    /// K AVX2 vectors of 4 f64.
    #[derive(Clone, Copy)]
    pub(crate) struct Ymm<const K: usize>([__m256d; K]);

    vector_ops!(Ymm, __m256d, _mm256_set1_pd, Add add _mm256_add_pd, Sub sub _mm256_sub_pd,
        Mul mul _mm256_mul_pd, Div div _mm256_div_pd);

    impl<const K: usize> Ymm<K> {
        /// Each vector with the constant `c` through `f`.
        #[inline(always)]
        fn with(self, c: f64, f: impl Fn(__m256d, __m256d) -> __m256d) -> Self {
            // SAFETY: see the module's documentation.
            let c = unsafe { _mm256_set1_pd(c) };
            self.map(|a| f(a, c))
        }
    }

    impl<const K: usize> Neg for Ymm<K> {
        type Output = Self;
        #[inline(always)]
        fn neg(self) -> Self {
            // SAFETY: see the module's documentation.
            self.with(-0.0, |a, s| unsafe { _mm256_xor_pd(a, s) })
        }
    }

    impl<const K: usize> F64s for Ymm<K> {
        type Mask = [__m256d; K];
        const LANES: usize = 4 * K;

        vector_methods!(
            Ymm,
            4,
            _mm256_set1_pd,
            _mm256_loadu_pd,
            _mm256_storeu_pd,
            _mm256_fmadd_pd
        );

        #[inline(always)]
        fn abs(self) -> Self {
            // SAFETY: see the module's documentation.
            self.with(-0.0, |a, s| unsafe { _mm256_andnot_pd(s, a) })
        }

        #[inline(always)]
        fn copysign(self, sign: Self) -> Self {
            let mut out = self.abs();
            for (x, &s) in out.0.iter_mut().zip(&sign.0) {
                // SAFETY: see the module's documentation.
                *x = unsafe { _mm256_or_pd(*x, _mm256_and_pd(s, _mm256_set1_pd(-0.0))) };
            }
            out
        }

        #[inline(always)]
        fn min(self, c: f64) -> Self {
            // SAFETY: see the module's documentation.
            self.with(c, |a, c| unsafe { _mm256_min_pd(a, c) })
        }

        #[inline(always)]
        fn max(self, c: f64) -> Self {
            // SAFETY: see the module's documentation.
            self.with(c, |a, c| unsafe { _mm256_max_pd(a, c) })
        }

        #[inline(always)]
        fn lt(self, c: f64) -> Self::Mask {
            // SAFETY: see the module's documentation.
            self.with(c, |a, c| unsafe { _mm256_cmp_pd::<_CMP_LT_OQ>(a, c) }).0
        }

        #[inline(always)]
        fn ge(self, c: f64) -> Self::Mask {
            // SAFETY: see the module's documentation.
            self.with(c, |a, c| unsafe { _mm256_cmp_pd::<_CMP_GE_OQ>(a, c) }).0
        }

        #[inline(always)]
        fn is_nan(self) -> Self::Mask {
            // SAFETY: see the module's documentation.
            self.map(|a| unsafe { _mm256_cmp_pd::<_CMP_UNORD_Q>(a, a) }).0
        }

        #[inline(always)]
        fn select(m: Self::Mask, yes: Self, no: Self) -> Self {
            let mut out = no;
            for ((x, &y), &m) in out.0.iter_mut().zip(&yes.0).zip(&m) {
                // SAFETY: see the module's documentation.
                *x = unsafe { _mm256_blendv_pd(*x, y, m) };
            }
            out
        }

        #[inline(always)]
        fn pow2(self) -> Self {
            // The bits of k + EXP_BIAS less ROUND_BITS: k + 1023, shifted into the exponent.
            (self + EXP_BIAS).map(|a| unsafe {
                // SAFETY: see the module's documentation.
                let b = _mm256_sub_epi64(_mm256_castpd_si256(a), _mm256_set1_epi64x(ROUND_BITS as i64));
                _mm256_castsi256_pd(_mm256_slli_epi64::<52>(b))
            })
        }
    }
}
