//! The independently recurrent cell, IndRNN (Li, Li, Cook, Zhu & Gao, "Independently Recurrent
//! Neural Network (IndRNN): Building A Longer and Deeper RNN", CVPR 2018): each unit recurs on
//! itself alone, so the Jacobian ∂h_t/∂h_{t−1} = diag(σ'(·) ⊙ u) is diagonal and its product
//! over k steps is Π σ'·u_i per unit, which |u_i| ≤ `model.recurrent_max` bounds. Its tensors,
//! and its forward and backward step side by side:
//!
//! ```text
//! h_t = σ(U x_t + b + u ⊙ h_{t−1})        u ∈ ℝᴴ, σ = model.activation (relu by default)
//! ```
//!
//! As the plain cell, the input projection arrives in `h[t]`, which the step completes in place:
//! there is no recurrent product, only the element-wise u ⊙ h_{t−1}.

use ndarray::Axis;

use super::bptt::{Part, prev_and_cur};
use super::params::{CellSpec, Dim, INPUT_BIAS, INPUT_WEIGHTS, Projection, Recurrence, Role, Start, TensorSpec};
use super::{Activation, Layer};
use crate::real::{Real, simd_fn};

/// The IndRNN's table: U (H, D), u (H) and b (H), under the names of PyTorch IndRNN
/// implementations (`weight_ih`, `weight_hh`, `bias_ih`); its one state h.
pub const SPEC: CellSpec = CellSpec {
    name: "indrnn",
    gates: 1,
    tensors: &[
        INPUT_WEIGHTS,
        TensorSpec {
            name: "u",
            role: Role::Diagonal,
            shape: &[Dim::Hidden],
            start: Start::Diagonal,
            torch: "weight_hh",
            torch_zero: None,
        },
        INPUT_BIAS,
    ],
    states: &["h"],
    projection: Projection::State,
    aux: false,
    hidden_side: false,
    radius_block: 0,
    recurrence: Recurrence::Diagonal,
};

/// Step t (1-based): h_t = σ(h_t + u ⊙ h_{t−1}), h_t holding the input projection on entry.
pub fn forward_step<F: Real>(p: &Layer<F>, act: Activation, tr: &mut Part<'_, F>, t: usize) {
    let u = p.get(Role::Diagonal).expect("the IndRNN declares u");
    let (prev, mut cur) = prev_and_cur(&mut tr.h, t); // (B, H) each
    for (cur, prev) in cur.outer_iter_mut().zip(prev.outer_iter()) {
        recur(
            u,
            prev.to_slice().expect("contiguous"),
            cur.into_slice().expect("contiguous"),
        );
    }
    act.forward_in_place(cur.as_slice_mut().expect("contiguous"));
}

simd_fn! {
/// pre += u ⊙ h_{t−1} for one sequence, (H) each.
fn recur<F: Real>(u: &[F], prev: &[F], pre: &mut [F]) {
    let h = u.len();
    let (prev, pre) = (&prev[..h], &mut pre[..h]);
    for j in 0..h {
        pre[j] += u[j] * prev[j];
    }
}
}

/// Back through step t. Reads dE/dh_t from `tr.dh`; writes the pre-activation gradient into
/// `gates[t−1]` (σ' written from h_t) and, when `carry`, dE/dh_{t−1} = dpre ⊙ u into
/// `tr.carry_h`.
pub fn backward_step<F: Real>(p: &Layer<F>, act: Activation, tr: &mut Part<'_, F>, t: usize, carry: bool) {
    let mut dpre = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, H)
    act.backward_slice(
        tr.dh.as_slice().expect("contiguous"),
        tr.h.index_axis(Axis(0), t).to_slice().expect("contiguous"),
        dpre.as_slice_mut().expect("contiguous"),
    ); // back through σ
    if carry {
        let u = p.get(Role::Diagonal).expect("the IndRNN declares u");
        for (carry, dpre) in tr.carry_h.outer_iter_mut().zip(dpre.outer_iter()) {
            times(
                u,
                dpre.to_slice().expect("contiguous"),
                carry.into_slice().expect("contiguous"),
            ); // back through u ⊙ h_{t−1}
        }
    }
}

simd_fn! {
/// out = u ⊙ x for one sequence, (H) each.
fn times<F: Real>(u: &[F], x: &[F], out: &mut [F]) {
    let h = u.len();
    let (x, out) = (&x[..h], &mut out[..h]);
    for j in 0..h {
        out[j] = u[j] * x[j];
    }
}
}

/// du += Σ over the window's (step, sequence) rows of dpre ⊙ h_{t−1}: `dpre` and `prev` are
/// (n, H), row i of `prev` the state the step of row i of `dpre` read.
pub fn add_diagonal_gradient<F: Real>(du: &mut [F], dpre: &[F], prev: &[F]) {
    let h = du.len();
    for (d, p) in dpre.chunks_exact(h).zip(prev.chunks_exact(h)) {
        du.iter_mut()
            .zip(d.iter().zip(p))
            .for_each(|(du, (&d, &p))| *du += d * p);
    }
}
