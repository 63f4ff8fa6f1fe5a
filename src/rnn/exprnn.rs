//! The orthogonal RNN expRNN (Lezcano-Casado & Martínez-Rubio, "Cheap Orthogonal Constraints in
//! Neural Networks: A Simple Parametrization of the Orthogonal and Unitary Group", ICML 2019):
//! the recurrent matrix is the exponential of a skew-symmetric matrix, so it is orthogonal by
//! construction and ‖∂h_t/∂h_{t−1}‖ ≤ 1 with equality where modReLU passes its input. Its
//! tensors, and its forward and backward step side by side:
//!
//! ```text
//! A = P − Pᵀ over P's strict upper triangle, W = exp(A)     once per pass
//! z_t = U x_t + W h_{t−1}                                   no input bias
//! h_t = modrelu(z_t) = sign(z_t) ⊙ relu(|z_t| + b)
//! ```
//!
//! The projection arrives in `h[t]`, which the step completes in place. modReLU's derivative is
//! written from its output: ∂h/∂z = 1 where h ≠ 0 (else 0), ∂h/∂b = sign(h). dE/dW goes back to
//! P through the exact adjoint of the exponential's Fréchet derivative ([`Expm::adjoint`]).

use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};

use super::bptt::{Part, prev_and_cur};
use super::params::{CellSpec, Dim, INPUT_WEIGHTS, Projection, Recurrence, Role, Start, TensorSpec};
use super::{Expm, Layer};
use crate::real::{Real, matmul_strips_on, simd_fn};

/// The expRNN's table: U (H, D), P (H, H) (only its strict upper triangle is used) and the
/// modReLU bias b (H) (`weight_ih`, `weight_hh`, `bias_hh`); its one state h.
pub const SPEC: CellSpec = CellSpec {
    name: "exprnn",
    gates: 1,
    tensors: &[
        INPUT_WEIGHTS,
        TensorSpec {
            name: "P",
            role: Role::Recurrent,
            shape: &[Dim::Hidden, Dim::Hidden],
            start: Start::Recurrent,
            torch: "weight_hh",
            torch_zero: None,
        },
        TensorSpec {
            name: "b",
            role: Role::Modulus,
            shape: &[Dim::Hidden],
            start: Start::Modulus,
            torch: "bias_hh",
            torch_zero: None,
        },
    ],
    states: &["h"],
    projection: Projection::State,
    aux: false,
    hidden_side: false,
    radius_block: 0,
    recurrence: Recurrence::Exponential,
};

/// (H, H) A = P − Pᵀ from P's strict upper triangle, in f64 whatever P's element type.
pub fn skew<F: Real>(p: ArrayView2<'_, F>) -> Array2<f64> {
    Array2::from_shape_fn(p.dim(), |(i, j)| match i.cmp(&j) {
        std::cmp::Ordering::Less => p[[i, j]].f64(),
        std::cmp::Ordering::Greater => -p[[j, i]].f64(),
        std::cmp::Ordering::Equal => 0.0,
    })
}

/// exp(A) for P, with what the derivative's adjoint reuses.
pub fn exponential<F: Real>(p: ArrayView2<'_, F>) -> Expm {
    Expm::new(skew(p).view())
}

/// `expm` set to exp(A) for P, reusing its buffers where it holds some.
pub fn set_exponential<F: Real>(expm: &mut Option<Expm>, p: ArrayView2<'_, F>) {
    let a = skew(p);
    match expm {
        Some(e) => e.set(a.view()),
        None => *expm = Some(Expm::new(a.view())),
    }
}

/// dP += the gradient of dM = dE/dW back through W = exp(A), A = P − Pᵀ: dA = L_exp(Aᵀ, dM),
/// then dP_ij = dA_ij − dA_ji for i < j; P's diagonal and lower triangle get nothing.
pub fn add_exponential_gradient<F: Real>(mut dp: ArrayViewMut2<'_, F>, expm: &mut Expm, dm: ArrayView2<'_, F>) {
    let da = expm.adjoint(dm.mapv(|x| x.f64()).view());
    for ((i, j), d) in dp.indexed_iter_mut() {
        if i < j {
            *d += F::of(da[[i, j]] - da[[j, i]]);
        }
    }
}

/// Step t (1-based): h_t = modrelu(h_t + h_{t−1} Wᵀ), h_t holding U x_t on entry, Wᵀ in
/// `tr.wt`.
pub fn forward_step<F: Real>(p: &Layer<F>, tr: &mut Part<'_, F>, t: usize) {
    let b = p.get(Role::Modulus).expect("the expRNN declares b");
    let (prev, mut cur) = prev_and_cur(&mut tr.h, t); // (B, H) each
    matmul_strips_on(prev.view(), tr.wt, cur.view_mut(), true, tr.threads); // z += h_{t−1} Wᵀ
    for row in cur.outer_iter_mut() {
        modrelu(b, row.into_slice().expect("contiguous"));
    }
}

simd_fn! {
/// z ← sign(z) ⊙ relu(|z| + b) for one sequence, (H) each.
fn modrelu<F: Real>(b: &[F], z: &mut [F]) {
    let h = b.len();
    let z = &mut z[..h];
    let zero = F::zero();
    for j in 0..h {
        let m = (z[j].abs() + b[j]).max(zero);
        // sign(z)·m with sign(0) = 0, as two selects (which vectorise)
        let (pos, neg) = (if z[j] > zero { m } else { zero }, if z[j] < zero { m } else { zero });
        z[j] = pos - neg;
    }
}
}

/// Back through step t. Reads dE/dh_t from `tr.dh`; writes dz = dh where h_t ≠ 0 (else 0) into
/// `gates[t−1]` and, when `carry`, dE/dh_{t−1} = dz W into `tr.carry_h`.
pub fn backward_step<F: Real>(_p: &Layer<F>, tr: &mut Part<'_, F>, t: usize, carry: bool) {
    let mut dz = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, H)
    passed(
        tr.dh.as_slice().expect("contiguous"),
        tr.h.index_axis(Axis(0), t).to_slice().expect("contiguous"),
        dz.as_slice_mut().expect("contiguous"),
    ); // back through modReLU
    if carry {
        matmul_strips_on(dz.view(), tr.w, tr.carry_h.view_mut(), false, tr.threads); // back through W h_{t−1}
    }
}

simd_fn! {
/// dz = dh where modReLU passed its input (h ≠ 0), else 0, over a block of sequences.
fn passed<F: Real>(dh: &[F], h: &[F], dz: &mut [F]) {
    let n = dz.len();
    let (dh, h) = (&dh[..n], &h[..n]);
    for j in 0..n {
        dz[j] = if h[j] != F::zero() { dh[j] } else { F::zero() };
    }
}
}

/// db += Σ over the window's (step, sequence) rows of dz ⊙ sign(h_t): `dz` and `h` are (n, H).
pub fn add_modulus_gradient<F: Real>(db: &mut [F], dz: &[F], h: &[F]) {
    let (n, zero) = (db.len(), F::zero());
    for (d, y) in dz.chunks_exact(n).zip(h.chunks_exact(n)) {
        for ((db, &d), &y) in db.iter_mut().zip(d).zip(y) {
            // + d where h > 0, − d where h < 0, nothing where h = 0 (then d = 0 too)
            *db += if y > zero { d } else { zero } - if y < zero { d } else { zero };
        }
    }
}
