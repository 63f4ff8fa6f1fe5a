//! The matrix exponential W = exp(A) and the adjoint of its Fréchet derivative, in f64, for the
//! expRNN cell (Lezcano-Casado & Martínez-Rubio, "Cheap orthogonal constraints in neural
//! networks", ICML 2019): W = exp(A) with A = P − Pᵀ skew-symmetric, so W is orthogonal.
//! Forward computes exp(A) once per parameter update; backward turns G = dE/dW into
//! dE/dA = L(Aᵀ, G), where L(A, E) = d/dτ exp(A + τE) at τ = 0 is the Fréchet derivative, whose
//! adjoint under ⟨X, Y⟩ = Σ X ∘ Y is L(Aᵀ, ·).
//!
//! Algorithm 6.4 of Al-Mohy & Higham, "Computing the Fréchet derivative of the matrix
//! exponential, with an application to condition number estimation", SIAM J. Matrix Anal.
//! Appl. 30(4), 2009: scaling and squaring with the [m/m] Padé approximant r_m = q_m⁻¹ p_m,
//! the derivative carried alongside with the same powers. Shapes: n = H, every matrix (n, n).
//!
//! ```text
//! m = the least of 3, 5, 7, 9 with ‖A‖₁ ≤ ℓ_m;  else m = 13, s = ⌈log₂(‖A‖₁ / ℓ₁₃)⌉ ≥ 0
//! A ← 2⁻ˢ A                 E ← 2⁻ˢ E
//! p_m(A) = V + U            q_m(A) = V − U        U odd in A, V even
//! L_U, L_V                  their derivatives in the direction E (M_2j = L(A, E) of A^2j)
//! R₀ = (V − U)⁻¹ (V + U)                          r_m(A) ≈ exp(A)
//! L₀ = (V − U)⁻¹ (L_U + L_V + (L_U − L_V) R₀)     its derivative
//! for k = 0 … s−1:  L_{k+1} = X_k L_k + L_k X_k,  X_{k+1} = X_k²     (X₀ = R₀)
//! exp(A) = X_s,  L(A, E) = L_s
//! ```
//!
//! The ℓ_m are the paper's Table 6.1: the largest ‖2⁻ˢA‖₁ at which the backward error of both
//! exp and L stays below the unit roundoff 2⁻⁵³ (smaller than Higham's 2005 θ_m for exp alone,
//! ℓ₁₃ = 4.74 against θ₁₃ = 5.37). The bound holds in any subordinate norm, so the (m, s)
//! chosen by ‖A‖₁ also serve Aᵀ (‖Aᵀ‖_∞ = ‖A‖₁).
//!
//! **Reuse.** Transposition commutes with exp, exp(Aᵀ) = exp(A)ᵀ, so L(Aᵀ, G) = L(A, Gᵀ)ᵀ: the
//! adjoint is the forward derivative in the direction Gᵀ, transposed, and needs nothing of Aᵀ.
//! [`Expm::set`] (and [`Expm::new`]) keeps what that derivative reuses: m and s, 2⁻ˢA and its
//! even powers, the Padé pieces W (U = A W) and, for m = 13, W₁ and Z₁, the LU factors of
//! V − U, and every squaring iterate X₀ … X_s. [`Expm::adjoint`] then costs the derivative's
//! own products only: for m = 13, 13 n³ products (M₂, M₄, M₆, L_W, L_V and L_U two each, one by
//! R₀), one solve with the saved factors, and 2 products per squaring; exp(A) itself costs 6
//! products, the factorisation, one solve and 1 product per squaring. Products are nearly all
//! of the time (n = 128: 70 µs each on one core of an Intel Xeon family 6 model 167, set and
//! adjoint together 1.8 ms at s = 0; `examples/expm_time.rs`).
//!
//! Every product goes through [`matmul`] (the same bits on every instruction set and thread
//! count); the LU factorisation with partial pivoting (by panels, the trailing update one
//! product) and its triangular solves (by blocks of rows, each block's update one product) are
//! plain code around such products, in a fixed order, so the result does not depend on the
//! machine either.

use std::ops::Range;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Zip};

use crate::real::{Real, matmul, simd_fn};

/// ℓ_m for m = 3, 5, 7, 9, 13: Al-Mohy & Higham (2009), Table 6.1.
const ELL: [(usize, f64); 5] = [(3, 1.08e-2), (5, 2.00e-1), (7, 7.83e-1), (9, 1.78e0), (13, 4.74e0)];

/// Coefficients b_j (j = 0 … m) of the [m/m] Padé approximant of e^x, p_m(x) = Σ b_j x^j and
/// q_m(x) = p_m(−x), scaled to integers: b_j = (2m − j)! / (j! (m − j)!), every one exact in f64.
const B3: [f64; 4] = [120.0, 60.0, 12.0, 1.0];
/// b_j for m = 5 (see [`B3`]).
const B5: [f64; 6] = [30240.0, 15120.0, 3360.0, 420.0, 30.0, 1.0];
/// b_j for m = 7 (see [`B3`]).
const B7: [f64; 8] = [17297280.0, 8648640.0, 1995840.0, 277200.0, 25200.0, 1512.0, 56.0, 1.0];
/// b_j for m = 9 (see [`B3`]).
const B9: [f64; 10] = [
    17643225600.0,
    8821612800.0,
    2075673600.0,
    302702400.0,
    30270240.0,
    2162160.0,
    110880.0,
    3960.0,
    90.0,
    1.0,
];
/// b_j for m = 13 (see [`B3`]).
const B13: [f64; 14] = [
    64764752532480000.0,
    32382376266240000.0,
    7771770303897600.0,
    1187353796428800.0,
    129060195264000.0,
    10559470521600.0,
    670442572800.0,
    33522128640.0,
    1323241920.0,
    40840800.0,
    960960.0,
    16380.0,
    182.0,
    1.0,
];

/// The even powers A^2j (j = 1, 2, 3, 4) as products of lower powers: A^2j = A^e₁ A^e₂.
const FACTORS: [(usize, usize); 4] = [(1, 1), (2, 2), (4, 2), (4, 4)];

/// b_0 … b_m of degree m.
fn coefficients(m: usize) -> &'static [f64] {
    match m {
        3 => &B3,
        5 => &B5,
        7 => &B7,
        9 => &B9,
        13 => &B13,
        _ => unreachable!("Padé degrees are 3, 5, 7, 9 and 13"),
    }
}

/// exp(A) of a square A, and what the adjoint of its Fréchet derivative reuses (module doc).
///
/// Its buffers are kept from one call to the next ([`Expm::set`] for the next A, the
/// derivatives' work space, their result): a fresh n × n buffer costs its first-touch page faults,
/// a fifth of `new` plus `adjoint` at n = 128 when every matrix was allocated anew.
#[derive(Clone, Debug)]
pub struct Expm {
    /// m, the degree of the Padé approximant: 3, 5, 7, 9 or 13.
    degree: usize,
    /// s, the number of squarings.
    squarings: usize,
    /// 2⁻ˢ, exact.
    scale: f64,
    /// (n, n) 2⁻ˢ A, "A" below.
    a: Array2<f64>,
    /// (n, n) each: A², A⁴, …, A^(m−1) for m ≤ 9; A², A⁴, A⁶ for m = 13.
    pows: Vec<Array2<f64>>,
    /// (n, n) W, the odd part's factor U = A W: Σ_j b_{2j+1} A^2j (m ≤ 9), A⁶ W₁ + W₂ (m = 13).
    w: Array2<f64>,
    /// m = 13 only: (W₁, Z₁), (n, n) each, with W₁ = b₁₃A⁶ + b₁₁A⁴ + b₉A² and
    /// Z₁ = b₁₂A⁶ + b₁₀A⁴ + b₈A².
    w1_z1: Option<(Array2<f64>, Array2<f64>)>,
    /// The LU factors of the denominator q_m(A) = V − U.
    q: Lu,
    /// (n, n) each, s + 1 of them: X₀ = r_m(A), X_{k+1} = X_k²; the last is exp(A).
    x: Vec<Array2<f64>>,
    /// (n, n) the last result of [`Expm::frechet`] or [`Expm::adjoint`].
    out: Array2<f64>,
    /// Buffers not in use, their values stale, for the next call (any size; those not (n, n)
    /// are dropped when met).
    spare: Vec<Array2<f64>>,
}

/// exp of the 0 × 0 matrix, to [`Expm::set`] later.
impl Default for Expm {
    fn default() -> Self {
        Self::new(ArrayView2::from_shape((0, 0), &[]).expect("empty"))
    }
}

impl Expm {
    /// Computes exp(A) of a square A (any layout). An A with a non-finite entry gives
    /// non-finite results, without scaling (no panic).
    pub fn new(a: ArrayView2<'_, f64>) -> Self {
        let mut e = Self {
            degree: 0,
            squarings: 0,
            scale: 1.0,
            a: Array2::zeros((0, 0)),
            pows: Vec::new(),
            w: Array2::zeros((0, 0)),
            w1_z1: None,
            q: Lu::default(),
            x: Vec::new(),
            out: Array2::zeros((0, 0)),
            spare: Vec::new(),
        };
        e.set(a);
        e
    }

    /// Computes exp(A) for a new A, as [`Expm::new`] does, in the buffers of the last one.
    pub fn set(&mut self, a_in: ArrayView2<'_, f64>) {
        let n = a_in.nrows();
        assert_eq!(a_in.ncols(), n, "exp of a square matrix");
        self.recycle();
        let (degree, squarings) = choose(norm1(a_in));
        let mut scale = 1.0;
        for _ in 0..squarings {
            scale *= 0.5; // 2⁻ˢ, exact
        }
        let b = coefficients(degree);
        let spare = &mut self.spare;
        let mut a = buffer(spare, n);
        a.zip_mut_with(&a_in, |a, &x| *a = x * scale); // A ← 2⁻ˢ A, exact

        // A^2j = A^e₁ A^e₂, j = 1 … (m − 1)/2 (up to A⁶ for m = 13).
        let count = if degree == 13 { 3 } else { (degree - 1) / 2 };
        let mut pows = std::mem::take(&mut self.pows);
        for &(e1, e2) in &FACTORS[..count] {
            let mut p = buffer(spare, n);
            mul_into(&mut p, power(&a, &pows, e1), power(&a, &pows, e2));
            pows.push(p);
        }
        let (mut w, mut v) = (buffer(spare, n), buffer(spare, n));
        let w1_z1 = if degree <= 9 {
            // W = Σ_j b_{2j+1} A^2j,  V = Σ_j b_{2j} A^2j   (A⁰ = I)
            let odd: Vec<_> = pows.iter().enumerate().map(|(j, p)| (b[2 * j + 3], p)).collect();
            let even: Vec<_> = pows.iter().enumerate().map(|(j, p)| (b[2 * j + 2], p)).collect();
            combine(&mut w, &odd, b[1]);
            combine(&mut v, &even, b[0]);
            None
        } else {
            let (a2, a4, a6) = (&pows[0], &pows[1], &pows[2]);
            let (mut w1, mut z1) = (buffer(spare, n), buffer(spare, n));
            combine(&mut w1, &[(b[13], a6), (b[11], a4), (b[9], a2)], 0.0); // W₁ = b₁₃A⁶ + b₁₁A⁴ + b₉A²
            combine(&mut w, &[(b[7], a6), (b[5], a4), (b[3], a2)], b[1]); // W₂ = b₇A⁶ + b₅A⁴ + b₃A² + b₁I
            combine(&mut z1, &[(b[12], a6), (b[10], a4), (b[8], a2)], 0.0); // Z₁ = b₁₂A⁶ + b₁₀A⁴ + b₈A²
            combine(&mut v, &[(b[6], a6), (b[4], a4), (b[2], a2)], b[0]); // Z₂ = b₆A⁶ + b₄A⁴ + b₂A² + b₀I
            add_mul(&mut w, a6, &w1); // W = A⁶ W₁ + W₂
            add_mul(&mut v, a6, &z1); // V = A⁶ Z₁ + Z₂
            Some((w1, z1))
        };
        let mut p = buffer(spare, n);
        mul_into(&mut p, &a, &w); // U = A W
        Zip::from(&mut v)
            .and(&mut p)
            .for_each(|v, u| (*v, *u) = (*v - *u, *v + *u)); // q_m(A) = V − U, p_m(A) = V + U
        let q = Lu::new(v);
        q.solve(&mut p); // R₀ = q_m(A)⁻¹ p_m(A)
        let mut x = std::mem::take(&mut self.x);
        x.push(p);
        for k in 0..squarings {
            let mut sq = buffer(spare, n);
            mul_into(&mut sq, &x[k], &x[k]); // X_{k+1} = X_k²
            x.push(sq);
        }
        (self.degree, self.squarings, self.scale) = (degree, squarings, scale);
        (self.a, self.pows, self.w, self.w1_z1, self.q, self.x) = (a, pows, w, w1_z1, q, x);
    }

    /// (n, n) exp(A).
    pub fn exp(&self) -> ArrayView2<'_, f64> {
        self.x[self.squarings].view()
    }

    /// m, the degree of the Padé approximant used: 3, 5, 7, 9 or 13.
    pub fn degree(&self) -> usize {
        self.degree
    }

    /// s, the number of squarings (A was scaled by 2⁻ˢ); 0 unless m = 13.
    pub fn squarings(&self) -> usize {
        self.squarings
    }

    /// (n, n) the Fréchet derivative L(A, E) = d/dτ exp(A + τE) at τ = 0, for a direction E
    /// (n, n, any layout), by the same approximant, powers, factors and squarings as exp(A).
    pub fn frechet(&mut self, e: ArrayView2<'_, f64>) -> ArrayView2<'_, f64> {
        let l = self.derivative(e);
        let last = std::mem::replace(&mut self.out, l);
        self.spare.push(last);
        self.out.view()
    }

    /// (n, n) dE/dA = L(Aᵀ, G) for G = dE/d exp(A), (n, n, any layout): the adjoint of the
    /// Fréchet derivative, computed as L(A, Gᵀ)ᵀ (exp(Aᵀ) = exp(A)ᵀ) from what [`Expm::set`]
    /// kept.
    pub fn adjoint(&mut self, g: ArrayView2<'_, f64>) -> ArrayView2<'_, f64> {
        let l = self.derivative(g.t()); // L(A, Gᵀ)
        let mut out = buffer(&mut self.spare, l.nrows());
        out.assign(&l.t()); // L(Aᵀ, G) = L(A, Gᵀ)ᵀ
        self.spare.push(l);
        let last = std::mem::replace(&mut self.out, out);
        self.spare.push(last);
        self.out.view()
    }

    /// L(A, E) in a buffer taken from the spares, each step's result in a buffer whose matrix
    /// is no longer needed.
    fn derivative(&mut self, dir: ArrayView2<'_, f64>) -> Array2<f64> {
        let n = self.a.nrows();
        assert_eq!(dir.dim(), (n, n), "a direction of A's shape");
        let Self {
            degree,
            squarings,
            scale,
            a,
            pows,
            w,
            w1_z1,
            q,
            x,
            spare,
            ..
        } = self;
        let b = coefficients(*degree);
        let mut e = buffer(spare, n);
        e.zip_mut_with(&dir, |e, &d| *e = d * *scale); // E ← 2⁻ˢ E, exact

        // M_2j = L(A, E) of A^2j = A^e₁ M_e₂ + M_e₁ A^e₂   (M₁ = E)
        let mut ms: Vec<Array2<f64>> = Vec::with_capacity(FACTORS.len());
        for &(e1, e2) in &FACTORS[..pows.len()] {
            let mut m = buffer(spare, n);
            let (a1, a2) = (power(a, pows, e1), power(a, pows, e2));
            d_mul(&mut m, a1, power(&e, &ms, e1), a2, power(&e, &ms, e2));
            ms.push(m);
        }
        let (mut lw, mut lv) = (buffer(spare, n), buffer(spare, n));
        match w1_z1 {
            None => {
                // L_W = Σ_j b_{2j+1} M_2j,  L_V = Σ_j b_{2j} M_2j   (j ≥ 1: L of I is 0)
                let odd: Vec<_> = ms.iter().enumerate().map(|(j, m)| (b[2 * j + 3], m)).collect();
                let even: Vec<_> = ms.iter().enumerate().map(|(j, m)| (b[2 * j + 2], m)).collect();
                combine(&mut lw, &odd, 0.0);
                combine(&mut lv, &even, 0.0);
            }
            Some((w1, z1)) => {
                let (m2, m4, m6, a6) = (&ms[0], &ms[1], &ms[2], &pows[2]);
                let (mut lw1, mut lz1) = (buffer(spare, n), buffer(spare, n));
                combine(&mut lw1, &[(b[13], m6), (b[11], m4), (b[9], m2)], 0.0); // L of W₁
                combine(&mut lw, &[(b[7], m6), (b[5], m4), (b[3], m2)], 0.0); // L of W₂
                combine(&mut lz1, &[(b[12], m6), (b[10], m4), (b[8], m2)], 0.0); // L of Z₁
                combine(&mut lv, &[(b[6], m6), (b[4], m4), (b[2], m2)], 0.0); // L of Z₂
                add_mul(&mut lw, a6, &lw1); // L_W = A⁶ L_W₁ + M₆ W₁ + L_W₂
                add_mul(&mut lw, m6, w1);
                add_mul(&mut lv, a6, &lz1); // L_V = A⁶ L_Z₁ + M₆ Z₁ + L_Z₂
                add_mul(&mut lv, m6, z1);
                spare.extend([lw1, lz1]);
            }
        }
        let mut l = buffer(spare, n);
        d_mul(&mut l, a, &e, w, &lw); // L_U = A L_W + E W
        spare.extend(ms.into_iter().chain([e, lw]));
        Zip::from(&mut l)
            .and(&mut lv)
            .for_each(|u, v| (*u, *v) = (*u + *v, *u - *v)); // L_U + L_V, L_U − L_V
        add_mul(&mut l, &lv, &x[0]); // L_U + L_V + (L_U − L_V) R₀
        q.solve(&mut l); // L₀ = q_m(A)⁻¹ (L_U + L_V + (L_U − L_V) R₀)
        let mut next = lv;
        for xk in &x[..*squarings] {
            d_mul(&mut next, xk, &l, xk, &l); // L_{k+1} = X_k L_k + L_k X_k, back through X_{k+1} = X_k²
            std::mem::swap(&mut l, &mut next);
        }
        spare.push(next);
        l
    }

    /// Moves every buffer of the last A's state to the spares.
    fn recycle(&mut self) {
        let spare = &mut self.spare;
        spare.append(&mut self.pows);
        spare.append(&mut self.x);
        if let Some((w1, z1)) = self.w1_z1.take() {
            spare.extend([w1, z1]);
        }
        let (a, w, lu) = (&mut self.a, &mut self.w, &mut self.q.lu);
        spare.extend([a, w, lu].map(std::mem::take));
    }
}

/// (m, s): the least m of 3, 5, 7, 9 with ‖A‖₁ ≤ ℓ_m, else 13 and the least s ≥ 0 with
/// 2⁻ˢ‖A‖₁ ≤ ℓ₁₃ (halving exactly, so no logarithm and no dependence on the C library). A
/// non-finite norm gives (13, 0).
fn choose(norm: f64) -> (usize, usize) {
    if let Some(&(m, _)) = ELL[..4].iter().find(|&&(_, ell)| norm <= ell) {
        return (m, 0);
    }
    let (mut s, mut x) = (0, norm);
    while norm.is_finite() && x > ELL[4].1 {
        x *= 0.5;
        s += 1;
    }
    (13, s)
}

/// ‖A‖₁, the largest column sum of |a_ij|, each summed down the rows in order (NaN if one is).
fn norm1(a: ArrayView2<'_, f64>) -> f64 {
    let mut sums = vec![0.0; a.ncols()];
    for row in a.rows() {
        sums.iter_mut().zip(row).for_each(|(s, &x)| *s += x.abs());
    }
    sums.into_iter()
        .fold(0.0, |m, s| if s > m || s.is_nan() { s } else { m })
}

/// A^e for e = 1 (`a`) or e even (`pows[e/2 − 1]`); also M_e, the derivatives, given E and them.
fn power<'p>(a: &'p Array2<f64>, pows: &'p [Array2<f64>], e: usize) -> &'p Array2<f64> {
    if e == 1 { a } else { &pows[e / 2 - 1] }
}

/// An (n, n) buffer from the spares (its values stale), or a new one.
fn buffer(spare: &mut Vec<Array2<f64>>, n: usize) -> Array2<f64> {
    while let Some(b) = spare.pop() {
        if b.dim() == (n, n) {
            return b;
        }
    }
    Array2::zeros((n, n))
}

/// c ← x y.
fn mul_into(c: &mut Array2<f64>, x: &Array2<f64>, y: &Array2<f64>) {
    matmul(x.view(), y.view(), c.view_mut(), false);
}

/// c ← c + x y (the product summed apart, then added).
fn add_mul(c: &mut Array2<f64>, x: &Array2<f64>, y: &Array2<f64>) {
    matmul(x.view(), y.view(), c.view_mut(), true);
}

/// c ← x dy + dx y: the derivative of the product x y in the directions dx, dy.
fn d_mul(c: &mut Array2<f64>, x: &Array2<f64>, dx: &Array2<f64>, y: &Array2<f64>, dy: &Array2<f64>) {
    mul_into(c, x, dy);
    add_mul(c, dx, y);
}

/// c ← Σ c_i X_i + c₀ I, summed in the order given (at least one term).
fn combine(sum: &mut Array2<f64>, terms: &[(f64, &Array2<f64>)], identity: f64) {
    let (&(c0, x0), rest) = terms.split_first().expect("a term");
    sum.zip_mut_with(x0, |s, &x| *s = c0 * x);
    for &(c, x) in rest {
        sum.zip_mut_with(x, |s, &x| *s += c * x);
    }
    sum.diag_mut().iter_mut().for_each(|d| *d += identity);
}

/// The LU factorisation with partial pivoting of a square Q: P Q = L U, L unit lower
/// triangular, U upper triangular.
#[derive(Clone, Debug, Default)]
struct Lu {
    /// (n, n): U on and above the diagonal, L's multipliers below it (its unit diagonal implied).
    lu: Array2<f64>,
    /// P as the row swaps the elimination made, in order: at step k, rows k and `swaps[k]`.
    swaps: Vec<usize>,
}

impl Lu {
    /// Factors Q (standard layout) a panel of [`PANEL`] columns at a time (right-looking, as
    /// LAPACK's getrf): in the panel, column by column, the largest |entry| on or below the
    /// diagonal (the first of equals) becomes the pivot, its whole row swapped into place, and
    /// the rows below are eliminated within the panel; then the panel's rows right of it are
    /// solved with its unit lower triangle (U₁₂ = L₁₁⁻¹ A₁₂) and the trailing matrix loses
    /// L₂₁ U₁₂ in one product (eliminated column by column over the whole width, the factors
    /// took 1.6 products' time at n = 128, the trailing matrix streamed through the cache once
    /// per column). A zero pivot (Q singular) leaves infinities and NaNs, no panic.
    fn new(mut q: Array2<f64>) -> Self {
        let n = q.nrows();
        let mut swaps = Vec::with_capacity(n);
        let (mut l21, mut u12, mut a22) = (Vec::new(), Vec::new(), Vec::new());
        let data = q.as_slice_mut().expect("standard layout");
        for k0 in (0..n).step_by(PANEL) {
            let k1 = (k0 + PANEL).min(n);
            for k in k0..k1 {
                let p = (k..n).fold(k, |p, i| {
                    if data[i * n + k].abs() > data[p * n + k].abs() {
                        i
                    } else {
                        p
                    }
                });
                if p != k {
                    let (top, bottom) = data.split_at_mut(p * n);
                    top[k * n..(k + 1) * n].swap_with_slice(&mut bottom[..n]);
                }
                swaps.push(p);
                let (top, rest) = data.split_at_mut((k + 1) * n);
                eliminate(&top[k * n..], rest, k, k + 1..k1, true); // l_ik = a_ik / a_kk, a_ij −= l_ik a_kj
            }
            if k1 == n {
                break;
            }
            for k in k0..k1 {
                let (top, rest) = data.split_at_mut((k + 1) * n);
                eliminate(&top[k * n..], &mut rest[..(k1 - k - 1) * n], k, k1..n, false); // U₁₂ = L₁₁⁻¹ A₁₂
            }
            copy(data, n, (k1..n, k0..k1), -1.0, &mut l21); // −L₂₁
            copy(data, n, (k0..k1, k1..n), 1.0, &mut u12); // U₁₂
            copy(data, n, (k1..n, k1..n), 1.0, &mut a22); // A₂₂
            let (m, w) = (n - k1, k1 - k0);
            matmul(view((m, w), &l21), view((w, m), &u12), view_mut((m, m), &mut a22), true); // A₂₂ −= L₂₁ U₁₂
            for (row, new) in data[k1 * n..].chunks_exact_mut(n).zip(a22.chunks_exact(m)) {
                row[k1..].copy_from_slice(new);
            }
        }
        Self { lu: q, swaps }
    }

    /// B ← Q⁻¹ B for B (n, c): B ← P B, then L Y = B top down, then U X = Y bottom up, in
    /// blocks: the rows already solved are subtracted from a block of [`BLOCK`] rows in one
    /// product, then the block's rows one by one, each one product of its row of the factors by
    /// the block's rows solved before it (row by row, each row one product by all the rows
    /// solved, the solve took 1.6× as long at n = 128).
    fn solve(&self, b: &mut Array2<f64>) {
        let (n, c) = b.dim();
        let lu = self.lu.as_slice().expect("standard layout");
        let ys = b.as_slice_mut().expect("standard layout");
        for (k, &p) in self.swaps.iter().enumerate() {
            if p != k {
                let (top, bottom) = ys.split_at_mut(p * c);
                top[k * c..(k + 1) * c].swap_with_slice(&mut bottom[..c]); // B ← P B
            }
        }
        let mut neg = Vec::with_capacity(BLOCK * n); // −(a piece of the factors)
        let blocks: Vec<(usize, usize)> = (0..n).step_by(BLOCK).map(|i0| (i0, (i0 + BLOCK).min(n))).collect();
        for &(i0, i1) in &blocks {
            let (done, block) = ys.split_at_mut(i0 * c);
            let block = &mut block[..(i1 - i0) * c];
            if i0 > 0 {
                copy(lu, n, (i0..i1, 0..i0), -1.0, &mut neg);
                let (l, y_above) = (view((i1 - i0, i0), &neg), view((i0, c), done));
                matmul(l, y_above, view_mut((i1 - i0, c), block), true); // Y_I −= L[I, :i0] Y[:i0]
            }
            for i in i0 + 1..i1 {
                let (above, row) = block.split_at_mut((i - i0) * c);
                copy(lu, n, (i..i + 1, i0..i), -1.0, &mut neg);
                let (l, y_above) = (view((1, i - i0), &neg), view((i - i0, c), above));
                matmul(l, y_above, view_mut((1, c), &mut row[..c]), true); // y_i −= L[i, i0:i] Y[i0:i]
            }
        }
        for &(i0, i1) in blocks.iter().rev() {
            let (upto, below) = ys.split_at_mut(i1 * c);
            let block = &mut upto[i0 * c..];
            if i1 < n {
                copy(lu, n, (i0..i1, i1..n), -1.0, &mut neg);
                let (u, x_below) = (view((i1 - i0, n - i1), &neg), view((n - i1, c), below));
                matmul(u, x_below, view_mut((i1 - i0, c), block), true); // Y_I −= U[I, i1:] X[i1:]
            }
            for i in (i0..i1).rev() {
                let (row, after) = block[(i - i0) * c..].split_at_mut(c);
                if i + 1 < i1 {
                    copy(lu, n, (i..i + 1, i + 1..i1), -1.0, &mut neg);
                    let (u, x_after) = (view((1, i1 - i - 1), &neg), view((i1 - i - 1, c), after));
                    matmul(u, x_after, view_mut((1, c), row), true); // y_i −= U[i, i+1:i1] X[i+1:i1]
                }
                let d = lu[i * n + i];
                row.iter_mut().for_each(|x| *x /= d); // x_i = y_i / u_ii
            }
        }
    }
}

/// Rows per block of a triangular solve (8, 16 and 32 within 5 % of one another at n = 128).
const BLOCK: usize = 16;

/// Columns per panel of the LU factorisation.
const PANEL: usize = 16;

/// `buf` = sign · m[rows, cols] (sign ±1, exact), row-major, from the (n, n) row-major `m`.
fn copy(m: &[f64], n: usize, (rows, cols): (Range<usize>, Range<usize>), sign: f64, buf: &mut Vec<f64>) {
    buf.clear();
    for r in rows {
        buf.extend(m[r * n + cols.start..r * n + cols.end].iter().map(|&x| sign * x));
    }
}

/// A (rows, cols) row-major view of `s`.
fn view(dim: (usize, usize), s: &[f64]) -> ArrayView2<'_, f64> {
    ArrayView2::from_shape(dim, s).expect("shape")
}

/// A (rows, cols) row-major mutable view of `s`.
fn view_mut(dim: (usize, usize), s: &mut [f64]) -> ArrayViewMut2<'_, f64> {
    ArrayViewMut2::from_shape(dim, s).expect("shape")
}

simd_fn! {
    /// One step of the elimination, for each row r of `rest` (rows below the pivot row p, as
    /// long as it): r_j ← r_j − l p_j (one fused multiply–add) for j in `cols`, with
    /// l = r_k / p_k stored in place of r_k (`divide`), or l = r_k, a multiplier stored before.
    fn eliminate<F: Real>(pivot: &[F], rest: &mut [F], k: usize, cols: Range<usize>, divide: bool) {
        let n = pivot.len();
        for row in rest.chunks_exact_mut(n) {
            if divide {
                row[k] /= pivot[k];
            }
            let l = row[k];
            for (r, &p) in row[cols.clone()].iter_mut().zip(&pivot[cols.clone()]) {
                *r = (-l).mul_add(p, *r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elem;
    use crate::rnn::normal;
    use ndarray::s;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// (n, n) entries N(0, std²).
    fn random(n: usize, std: f64, seed: u64) -> Array2<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Array2::from_shape_simple_fn((n, n), || std * normal(&mut rng))
    }

    /// (n, n) skew-symmetric P − Pᵀ for P with entries N(0, std²/2).
    fn skew(n: usize, std: f64, seed: u64) -> Array2<f64> {
        let p = random(n, std * std::f64::consts::FRAC_1_SQRT_2, seed);
        &p - &p.t() // P − Pᵀ, entries N(0, 2 std²) above the diagonal
    }

    /// `a` rescaled to ‖a‖₁ = `norm`.
    fn with_norm(a: Array2<f64>, norm: f64) -> Array2<f64> {
        let k = norm / norm1(a.view());
        a * k
    }

    fn max_abs(a: &Array2<f64>) -> f64 {
        a.iter().fold(0.0, |m, x| m.max(x.abs()))
    }

    /// max |got − want| / max |want|.
    fn rel_gap(got: &Array2<f64>, want: &Array2<f64>) -> f64 {
        max_abs(&(got - want)) / max_abs(want)
    }

    /// ⟨X, Y⟩ = Σ X ∘ Y.
    fn inner(x: &Array2<f64>, y: &Array2<f64>) -> f64 {
        (x * y).sum()
    }

    /// (2n, 2n) [[A, E], [0, A]], whose exponential is [[e^A, L(A, E)], [0, e^A]].
    fn block(a: &Array2<f64>, e: &Array2<f64>) -> Array2<f64> {
        let n = a.nrows();
        let mut z = Array2::zeros((2 * n, 2 * n));
        z.slice_mut(s![..n, ..n]).assign(a);
        z.slice_mut(s![n.., n..]).assign(a);
        z.slice_mut(s![..n, n..]).assign(e);
        z
    }

    /// Double-double arithmetic (about 106 bits), for references independent of the code under
    /// test: Dekker's and Knuth's error-free sum and product.
    #[derive(Clone, Copy, Debug, Default)]
    struct Dd(f64, f64);

    impl Dd {
        fn two_sum(a: f64, b: f64) -> Dd {
            let s = a + b;
            let bb = s - a;
            Dd(s, (a - (s - bb)) + (b - bb))
        }
        fn quick(hi: f64, lo: f64) -> Dd {
            let s = hi + lo;
            Dd(s, lo - (s - hi))
        }
        fn add(self, y: Dd) -> Dd {
            let Dd(s, e) = Dd::two_sum(self.0, y.0);
            let Dd(t, f) = Dd::two_sum(self.1, y.1);
            let Dd(s, e) = Dd::quick(s, e + t);
            Dd::quick(s, e + f)
        }
        fn mul(self, y: Dd) -> Dd {
            let p = self.0 * y.0;
            let e = self.0.mul_add(y.0, -p);
            Dd::quick(p, e + (self.0 * y.1 + self.1 * y.0))
        }
        /// self / d for a small integer d (exact in f64).
        fn div(self, d: f64) -> Dd {
            let q1 = self.0 / d;
            let r = self.add(Dd(q1, 0.0).mul(Dd(-d, 0.0)));
            Dd::quick(q1, (r.0 + r.1) / d)
        }
    }

    /// x y for row-major n × n double-double matrices.
    fn dd_mul(x: &[Dd], y: &[Dd], n: usize) -> Vec<Dd> {
        let mut c = vec![Dd::default(); n * n];
        for i in 0..n {
            for k in 0..n {
                for j in 0..n {
                    c[i * n + j] = c[i * n + j].add(x[i * n + k].mul(y[k * n + j]));
                }
            }
        }
        c
    }

    /// exp(A) in double-double: the Taylor series of 2⁻ᵏA with ‖2⁻ᵏA‖₁ ≤ 1/16 to 30 terms
    /// (the rest below 10⁻⁵⁰), then k squarings; rounded to f64.
    fn exp_dd(a: &Array2<f64>) -> Array2<f64> {
        let n = a.nrows();
        let (mut k, mut scale) = (0, 1.0);
        while norm1(a.view()) * scale > 1.0 / 16.0 {
            k += 1;
            scale *= 0.5;
        }
        let b: Vec<Dd> = a.iter().map(|&x| Dd(x * scale, 0.0)).collect();
        let eye: Vec<Dd> = (0..n * n)
            .map(|i| Dd(f64::from(u8::from(i % (n + 1) == 0)), 0.0))
            .collect();
        let (mut sum, mut term) = (eye.clone(), eye);
        for j in 1..=30 {
            term = dd_mul(&term, &b, n).into_iter().map(|t| t.div(j as f64)).collect(); // B^j / j!
            sum = sum.iter().zip(&term).map(|(&s, &t)| s.add(t)).collect();
        }
        for _ in 0..k {
            sum = dd_mul(&sum, &sum, n);
        }
        Array2::from_shape_vec((n, n), sum.iter().map(|d| d.0 + d.1).collect()).unwrap()
    }

    /// L(A, E) in double-double, by the block matrix.
    fn frechet_dd(a: &Array2<f64>, e: &Array2<f64>) -> Array2<f64> {
        let n = a.nrows();
        exp_dd(&block(a, e)).slice(s![..n, n..]).to_owned()
    }

    #[test]
    fn coefficients_are_pade() {
        // b_j = (2m − j)! / (j! (m − j)!), in integers.
        let fact = |k: u128| (1..=k).product::<u128>();
        for m in [3u128, 5, 7, 9, 13] {
            for (j, &b) in coefficients(m as usize).iter().enumerate() {
                let j = j as u128;
                let exact = fact(2 * m - j) / (fact(j) * fact(m - j));
                assert_eq!(b as u128, exact, "b_{j} of degree {m}");
            }
        }
    }

    #[test]
    #[allow(clippy::disallowed_methods)] // references from the C library's cos and sin
    fn rotation() {
        // exp([[0, s], [−s, 0]]) = [[cos s, sin s], [−sin s, cos s]].
        for s in [
            -3.1, -2.0, -1.0, -0.3, -1e-3, 1e-8, 0.005, 0.15, 0.7, 1.5, 3.0, 3.1, 10.0, -10.0, 100.0, -100.0,
        ] {
            let a = ndarray::arr2(&[[0.0, s], [-s, 0.0]]);
            let e = Expm::new(a.view());
            let want = ndarray::arr2(&[[s.cos(), s.sin()], [-s.sin(), s.cos()]]);
            let gap = max_abs(&(&e.exp() - &want));
            eprintln!(
                "s = {s:8}: m = {:2}, squarings = {}, maxdiff = {gap:.2e}",
                e.degree(),
                e.squarings()
            );
            // The backward error is relative to ‖A‖ (an angle error of u|s|), hence the factor.
            assert!(gap <= 2e-15 * s.abs().max(1.0), "s = {s}: {gap:.2e}");
        }
    }

    #[test]
    fn diagonal() {
        // exp(diag(d)) = diag(e^d), off the diagonal exactly 0.
        let d = [-10.0, -3.0, -0.5, 0.0, 0.7, 2.0, 6.0];
        let a = Array2::from_diag(&ndarray::arr1(&d));
        let e = Expm::new(a.view());
        assert!(e.squarings() > 0);
        let mut gap: f64 = 0.0;
        for (i, row) in e.exp().rows().into_iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                if i == j {
                    gap = gap.max((x - elem::exp(d[i])).abs() / elem::exp(d[i]));
                } else {
                    assert_eq!(x, 0.0);
                }
            }
        }
        eprintln!("diagonal, s = {}: relative maxdiff = {gap:.2e}", e.squarings());
        assert!(gap <= 1e-14, "{gap:.2e}");
    }

    #[test]
    fn nilpotent() {
        // Strictly upper triangular N: exp(N) = Σ_{k<n} N^k / k!, a finite series (in
        // double-double).
        let n = 6;
        let r = random(n, 3.0, 7);
        let a = Array2::from_shape_fn((n, n), |(i, j)| if i < j { r[[i, j]] } else { 0.0 });
        let e = Expm::new(a.view());
        assert!(e.squarings() > 0);
        let m: Vec<Dd> = a.iter().map(|&x| Dd(x, 0.0)).collect();
        let mut term: Vec<Dd> = (0..n * n)
            .map(|i| Dd(f64::from(u8::from(i % (n + 1) == 0)), 0.0))
            .collect();
        let mut sum = term.clone();
        for k in 1..n {
            term = dd_mul(&term, &m, n).into_iter().map(|t| t.div(k as f64)).collect(); // N^k / k!
            sum = sum.iter().zip(&term).map(|(&s, &t)| s.add(t)).collect();
        }
        let want = Array2::from_shape_vec((n, n), sum.iter().map(|d| d.0 + d.1).collect()).unwrap();
        let gap = rel_gap(&e.exp().to_owned(), &want);
        eprintln!(
            "nilpotent, ‖N‖₁ = {:.1}, s = {}: maxdiff / max = {gap:.2e}",
            norm1(a.view()),
            e.squarings()
        );
        assert!(gap <= 1e-15, "{gap:.2e}");
    }

    #[test]
    fn general_against_double_double() {
        // A random 5 × 5 at several norms against the Taylor series in double-double.
        for norm in [0.5, 3.0, 8.0, 25.0] {
            let a = with_norm(random(5, 1.0, 11), norm);
            let e = Expm::new(a.view());
            let gap = rel_gap(&e.exp().to_owned(), &exp_dd(&a));
            eprintln!(
                "5 × 5, ‖A‖₁ = {norm}: m = {}, s = {}, maxdiff / max = {gap:.2e}",
                e.degree(),
                e.squarings()
            );
            assert!(gap <= 1e-14, "‖A‖₁ = {norm}: {gap:.2e}");
        }
    }

    #[test]
    fn every_branch() {
        // Each degree, and m = 13 with and without squarings: exp(A) and L(Aᵀ, G) against
        // double-double references (L by the block matrix [[Aᵀ, G], [0, Aᵀ]]).
        let g = random(6, 1.0, 5);
        for (norm, m, s) in [
            (0.008, 3, 0),
            (0.15, 5, 0),
            (0.6, 7, 0),
            (1.5, 9, 0),
            (4.0, 13, 0),
            (30.0, 13, 3),
        ] {
            let a = with_norm(random(6, 1.0, 3), norm);
            let mut e = Expm::new(a.view());
            assert_eq!((e.degree(), e.squarings()), (m, s), "‖A‖₁ = {norm}");
            let exp_gap = rel_gap(&e.exp().to_owned(), &exp_dd(&a));
            let adj_gap = rel_gap(&e.adjoint(g.view()).to_owned(), &frechet_dd(&a.t().to_owned(), &g));
            eprintln!("‖A‖₁ = {norm:5}: m = {m:2}, s = {s}: exp maxdiff / max = {exp_gap:.2e}, adjoint {adj_gap:.2e}");
            assert!(exp_gap <= 1e-14 && adj_gap <= 1e-14, "‖A‖₁ = {norm}");
        }
    }

    #[test]
    fn orthogonal_for_skew() {
        // exp of a skew A is orthogonal: ‖exp(A)ᵀ exp(A) − I‖_max ≤ 1e-13.
        let n = 64;
        let a0 = skew(n, 1.0 / (n as f64).sqrt(), 13);
        for a in [a0.clone(), with_norm(a0.clone(), 5.0), with_norm(a0, 20.0)] {
            let e = Expm::new(a.view());
            let w = e.exp().to_owned();
            let mut wtw = Array2::zeros((n, n));
            matmul(w.t().as_standard_layout().view(), w.view(), wtw.view_mut(), false); // WᵀW
            let gap = max_abs(&(wtw - Array2::<f64>::eye(n)));
            eprintln!(
                "skew n = {n}, ‖A‖₁ = {:.1}, s = {}: ‖WᵀW − I‖_max = {gap:.2e}",
                norm1(a.view()),
                e.squarings()
            );
            assert!(gap <= 1e-13, "{gap:.2e}");
        }
    }

    #[test]
    fn adjoint_against_finite_differences() {
        // dE/dA_ij of E(A) = Σ G ∘ exp(A) against (E(A + hE_ij) − E(A − hE_ij)) / 2h, every entry.
        let n = 6;
        let g = random(n, 1.0, 21);
        let h = 1e-5;
        for (name, a) in [("general", random(n, 0.6, 22)), ("skew", skew(n, 0.8, 23))] {
            let mut e = Expm::new(a.view());
            let grad = e.adjoint(g.view()).to_owned();
            let f = |a: &Array2<f64>| inner(&g, &Expm::new(a.view()).exp().to_owned());
            let fd = Array2::from_shape_fn((n, n), |(i, j)| {
                let (mut up, mut down) = (a.clone(), a.clone());
                up[[i, j]] += h;
                down[[i, j]] -= h;
                (f(&up) - f(&down)) / (2.0 * h)
            });
            let gap = rel_gap(&grad, &fd);
            eprintln!(
                "{name}, ‖A‖₁ = {:.2}, m = {}, s = {}: maxdiff / max = {gap:.2e}",
                norm1(a.view()),
                e.degree(),
                e.squarings()
            );
            assert!(gap <= 1e-7, "{name}: {gap:.2e}");
        }
    }

    #[test]
    fn adjoint_identity_against_block() {
        // ⟨L(A, E), G⟩ = ⟨E, L(Aᵀ, G)⟩, L(A, E) from exp([[A, E], [0, A]]) by Expm itself; and
        // `frechet` against the same block.
        let n = 6;
        let (e_dir, g) = (random(n, 1.0, 31), random(n, 1.0, 32));
        for (name, a) in [("general", random(n, 1.0, 33)), ("skew", skew(n, 1.0, 34))] {
            let mut e = Expm::new(a.view());
            let big = Expm::new(block(&a, &e_dir).view());
            let l = big.exp().slice(s![..n, n..]).to_owned();
            let (lhs, rhs) = (inner(&l, &g), inner(&e_dir, &e.adjoint(g.view()).to_owned()));
            let gap = (lhs - rhs).abs() / (&l * &g).mapv(f64::abs).sum();
            let fgap = rel_gap(&e.frechet(e_dir.view()).to_owned(), &l);
            eprintln!("{name}: ⟨L(A,E),G⟩ = {lhs:.6}, relative gap = {gap:.2e}; frechet against block {fgap:.2e}");
            assert!(gap <= 1e-12 && fgap <= 1e-12, "{name}");
        }
    }

    #[test]
    fn same_bits_on_any_pool() {
        // exp(A) and the adjoint on pools of 1, 2 and 3 threads, compared bit for bit (n = 128:
        // large enough that the products are shared out).
        let n = 128;
        let a = with_norm(skew(n, 1.0, 41), 20.0);
        let g = random(n, 1.0, 42);
        let run = |threads| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                let mut e = Expm::new(a.view());
                let bits = |x: ArrayView2<'_, f64>| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                let w = bits(e.exp());
                (w, bits(e.adjoint(g.view())))
            })
        };
        let one = run(1);
        for threads in [2, 3] {
            let other = run(threads);
            let differ = one
                .0
                .iter()
                .zip(&other.0)
                .chain(one.1.iter().zip(&other.1))
                .filter(|(x, y)| x != y)
                .count();
            eprintln!("{threads} threads against 1: {differ} of {} elements differ", 2 * n * n);
            assert_eq!(differ, 0);
        }
    }

    #[test]
    fn smallest_sizes() {
        // 1 × 1: exp(x) = e^x and L(x, g) = e^x g; 0 × 0 (the default) has an empty exp.
        for x in [-3.0, 0.1, 2.0, 40.0] {
            let mut e = Expm::new(ndarray::arr2(&[[x]]).view());
            let (w, want) = (e.exp()[[0, 0]], elem::exp(x));
            let da = e.adjoint(ndarray::arr2(&[[0.5]]).view())[[0, 0]];
            let gaps = ((w - want).abs() / want, (da - 0.5 * want).abs() / want);
            eprintln!(
                "1 × 1, x = {x}: s = {}, relative gaps {:.2e}, {:.2e}",
                e.squarings(),
                gaps.0,
                gaps.1
            );
            let bound = 1e-15 * x.abs().max(1.0); // e^x's relative condition number is |x|
            assert!(gaps.0 <= bound && gaps.1 <= bound, "x = {x}");
        }
        let mut e = Expm::default();
        assert_eq!(e.exp().dim(), (0, 0));
        assert_eq!(e.adjoint(Array2::zeros((0, 0)).view()).dim(), (0, 0));
    }

    #[test]
    fn reused_buffers_give_the_same_bits() {
        // `set` and the derivatives reuse stale buffers (of another degree, squarings, size):
        // the same bits as a fresh Expm.
        let mut e = Expm::new(with_norm(random(8, 1.0, 51), 30.0).view());
        e.adjoint(random(8, 1.0, 52).view());
        for (n, norm) in [(8, 0.15), (8, 4.0), (8, 60.0), (6, 1.5), (9, 20.0)] {
            let (a, g) = (with_norm(random(n, 1.0, 53), norm), random(n, 1.0, 54));
            e.set(a.view());
            let mut fresh = Expm::new(a.view());
            let same = |x: ArrayView2<'_, f64>, y: ArrayView2<'_, f64>| {
                x.iter().zip(y).all(|(x, y)| x.to_bits() == y.to_bits())
            };
            assert!(same(e.exp(), fresh.exp()), "exp, n = {n}, ‖A‖₁ = {norm}");
            let da = e.adjoint(g.view()).to_owned();
            assert!(
                same(da.view(), fresh.adjoint(g.view())),
                "adjoint, n = {n}, ‖A‖₁ = {norm}"
            );
            let l = e.frechet(g.view()).to_owned();
            assert!(
                same(l.view(), fresh.frechet(g.view())),
                "frechet, n = {n}, ‖A‖₁ = {norm}"
            );
            eprintln!(
                "n = {n}, m = {}, s = {}: reused and fresh agree bit for bit",
                e.degree(),
                e.squarings()
            );
        }
    }
}
