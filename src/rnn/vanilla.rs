//! The plain recurrent cell (Elman 1990), its tensors, and its forward and backward step side by
//! side:
//!
//! ```text
//! h_t = σ(U x_t + b + W h_{t−1})        (s_t of the classic derivation)
//! ```
//!
//! The input projection `U x_t + b` arrives precomputed in `h[t]`, which the step completes in
//! place: the pre-activation is not kept (backward needs only h_t), so the forward pass of this
//! cell touches no other (T, B, ·) buffer.

use ndarray::Axis;

use super::bptt::{Part, prev_and_cur};
use super::params::{CellSpec, INPUT_WEIGHTS, Projection, RECURRENT_WEIGHTS, Recurrence, SUMMED_BIAS};
use super::{Activation, Layer};
use crate::real::{Real, matmul_strips_on};

/// The plain cell's table: U (H, D), W (H, H) and b (H), as `torch.nn.RNN` (whose two biases
/// it adds); its one state h.
pub const SPEC: CellSpec = CellSpec {
    name: "rnn",
    gates: 1,
    tensors: &[INPUT_WEIGHTS, RECURRENT_WEIGHTS, SUMMED_BIAS],
    states: &["h"],
    projection: Projection::State,
    aux: false,
    hidden_side: false,
    radius_block: 0,
    recurrence: Recurrence::Matrix,
};

/// Step t (1-based): h_t = σ(h_t + h_{t−1} Wᵀ), h_t holding the input projection on entry. W
/// arrives transposed, in `tr.wt` (W itself in `tr.w`).
pub fn forward_step<F: Real>(_p: &Layer<F>, act: Activation, tr: &mut Part<'_, F>, t: usize) {
    let (prev, mut cur) = prev_and_cur(&mut tr.h, t); // (B, H) each
    matmul_strips_on(prev.view(), tr.wt, cur.view_mut(), true, tr.threads); // pre += h_{t−1} Wᵀ
    act.forward_in_place(cur.as_slice_mut().expect("contiguous"));
}

/// Back through step t. Reads dE/dh_t from `tr.dh`; writes the pre-activation gradient into
/// `gates[t−1]` (σ' is written from h_t) and, when `carry`, dE/dh_{t−1}
/// through the recurrence into `tr.carry_h`.
pub fn backward_step<F: Real>(_p: &Layer<F>, act: Activation, tr: &mut Part<'_, F>, t: usize, carry: bool) {
    let mut dpre = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, H)
    act.backward_slice(
        tr.dh.as_slice().expect("contiguous"),
        tr.h.index_axis(Axis(0), t).to_slice().expect("contiguous"),
        dpre.as_slice_mut().expect("contiguous"),
    ); // back through σ
    if carry {
        matmul_strips_on(dpre.view(), tr.w, tr.carry_h.view_mut(), false, tr.threads); // back through W h_{t−1}
    }
}
