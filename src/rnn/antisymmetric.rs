//! The AntisymmetricRNN (Chang, Chen, Haber & Chi, "AntisymmetricRNN: A Dynamical System View
//! on Recurrent Neural Networks", ICLR 2019): the forward Euler discretisation of the ODE
//! h' = tanh(M h + U x + b) with M = W − Wᵀ − γI. An antisymmetric W − Wᵀ has purely imaginary
//! eigenvalues, so the continuous system neither explodes nor vanishes; the diffusion γ > 0
//! makes the Euler step stable. Its tensors, and its forward and backward step side by side:
//!
//! ```text
//! a_t = tanh(M h_{t−1} + U x_t + b)       M = W − Wᵀ − γI, formed once per pass
//! h_t = h_{t−1} + ε·a_t
//! ```
//!
//! The projection U x_t + b arrives in `gates[t−1]`, which the step turns into a_t (kept for
//! backward). Backward writes dE/d(pre-activation) there; dE/dM goes back to W as dM − dMᵀ.

use ndarray::{Array2, ArrayView2, Axis};

use super::bptt::{Part, prev_and_cur};
use super::params::{CellSpec, INPUT_BIAS, INPUT_WEIGHTS, Projection, RECURRENT_WEIGHTS, Recurrence};
use super::{Activation, Layer};
use crate::real::{Real, matmul_strips_on, simd_fn};

/// The AntisymmetricRNN's table: U (H, D), W (H, H) and b (H) (`weight_ih`, `weight_hh`,
/// `bias_ih`); its one state h.
pub const SPEC: CellSpec = CellSpec {
    name: "antisymmetric",
    gates: 1,
    tensors: &[INPUT_WEIGHTS, RECURRENT_WEIGHTS, INPUT_BIAS],
    states: &["h"],
    projection: Projection::Gates,
    aux: false,
    hidden_side: false,
    radius_block: 0,
    recurrence: Recurrence::Antisymmetric,
};

/// (H, H) M = W − Wᵀ − γI.
pub fn map<F: Real>(w: ArrayView2<'_, F>, gamma: f64) -> Array2<F> {
    let gamma = F::of(gamma);
    Array2::from_shape_fn(w.dim(), |(i, j)| {
        let m = w[[i, j]] - w[[j, i]];
        if i == j { m - gamma } else { m }
    })
}

/// dW += dM − dMᵀ, back through M = W − Wᵀ − γI.
pub fn add_map_gradient<F: Real>(mut dw: ndarray::ArrayViewMut2<'_, F>, dm: ArrayView2<'_, F>) {
    for ((i, j), d) in dw.indexed_iter_mut() {
        *d += dm[[i, j]] - dm[[j, i]];
    }
}

/// Step t (1-based): a_t = tanh(gates[t−1] + h_{t−1} Mᵀ), h_t = h_{t−1} + ε·a_t, M arriving
/// transposed in `tr.wt`.
pub fn forward_step<F: Real>(_p: &Layer<F>, epsilon: f64, tr: &mut Part<'_, F>, t: usize) {
    let mut a = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, H), holds U x_t + b
    let (prev, mut cur) = prev_and_cur(&mut tr.h, t); // (B, H) each
    matmul_strips_on(prev.view(), tr.wt, a.view_mut(), true, tr.threads); // pre += h_{t−1} Mᵀ
    Activation::Tanh.forward_in_place(a.as_slice_mut().expect("contiguous"));
    step_rows(
        F::of(epsilon),
        a.as_slice().expect("contiguous"),
        prev.as_slice().expect("contiguous"),
        cur.as_slice_mut().expect("contiguous"),
    );
}

simd_fn! {
/// h_t = h_{t−1} + ε·a_t over a block of sequences, (B·H) each.
fn step_rows<F: Real>(eps: F, a: &[F], prev: &[F], cur: &mut [F]) {
    let n = a.len();
    let (prev, cur) = (&prev[..n], &mut cur[..n]);
    for j in 0..n {
        cur[j] = prev[j] + eps * a[j];
    }
}
}

/// Back through step t. Reads dE/dh_t from `tr.dh`; writes dpre = ε·dh ⊙ (1 − a²) into
/// `gates[t−1]` and, when `carry`, dE/dh_{t−1} = dh + dpre M into `tr.carry_h`.
pub fn backward_step<F: Real>(_p: &Layer<F>, epsilon: f64, tr: &mut Part<'_, F>, t: usize, carry: bool) {
    let mut g = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, H): a_t in, dpre out
    back_rows(
        F::of(epsilon),
        tr.dh.as_slice().expect("contiguous"),
        g.as_slice_mut().expect("contiguous"),
    );
    if carry {
        tr.carry_h.assign(&tr.dh); // back through h_{t−1} + …
        matmul_strips_on(g.view(), tr.w, tr.carry_h.view_mut(), true, tr.threads); // + back through M h_{t−1}
    }
}

simd_fn! {
/// dpre = ε·dh ⊙ (1 − a²), over a block of sequences, a overwritten.
fn back_rows<F: Real>(eps: F, dh: &[F], a: &mut [F]) {
    let (n, one) = (a.len(), F::one());
    let dh = &dh[..n];
    for j in 0..n {
        a[j] = eps * dh[j] * (one - a[j] * a[j]); // back through ε·tanh
    }
}
}
