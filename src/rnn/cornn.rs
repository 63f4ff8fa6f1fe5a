//! The coupled oscillatory RNN, coRNN (Rusch & Mishra, "Coupled Oscillatory Recurrent Neural
//! Network (coRNN): An accurate and (gradient) stable architecture for learning long time
//! dependencies", ICLR 2021): a network of damped, driven oscillators y'' = tanh(W y + Wz y' +
//! U x + b) − γ y − ε y', discretised with the paper's IMEX scheme (z = y'). Its gradients are
//! bounded above and below independently of T (the paper's Propositions 3.1–3.3). Its tensors,
//! and its forward and backward step side by side:
//!
//! ```text
//! a_t = tanh(W y_{t−1} + Wz z_{t−1} + U x_t + b)
//! z_t = z_{t−1} + Δt·(a_t − γ y_{t−1} − ε z_{t−1})
//! y_t = y_{t−1} + Δt·z_t                       the head (and the layer above) read y
//! ```
//!
//! The state is (y, z), kept in the trace's h and c. The projection U x_t + b arrives in
//! `gates[t−1]`, which the step turns into a_t (kept for backward).

use ndarray::Axis;

use super::bptt::{Part, prev_and_cur};
use super::params::{
    CellSpec, Dim, INPUT_BIAS, INPUT_WEIGHTS, Projection, RECURRENT_WEIGHTS, Recurrence, Role, Start, TensorSpec,
};
use super::{Activation, Coefs, Layer};
use crate::real::{Real, matmul_strips_on, simd_fn};

/// The coRNN's table: U (H, D), W (H, H) on y, Wz (H, H) on z and b (H) (`weight_ih`,
/// `weight_hh`, `weight_hz`, `bias_ih`); its states y and z.
pub const SPEC: CellSpec = CellSpec {
    name: "cornn",
    gates: 1,
    tensors: &[
        INPUT_WEIGHTS,
        RECURRENT_WEIGHTS,
        TensorSpec {
            name: "Wz",
            role: Role::SecondRecurrent,
            shape: &[Dim::Hidden, Dim::Hidden],
            start: Start::Recurrent,
            torch: "weight_hz",
            torch_zero: None,
        },
        INPUT_BIAS,
    ],
    states: &["y", "z"],
    projection: Projection::Gates,
    aux: false,
    hidden_side: false,
    radius_block: 0,
    recurrence: Recurrence::Matrix,
};

/// Step t (1-based): a_t from the projection in `gates[t−1]` plus y_{t−1} Wᵀ + z_{t−1} Wzᵀ
/// (transposed in `tr.wt`, `tr.wzt`), then z_t and y_t.
pub fn forward_step<F: Real>(_p: &Layer<F>, c: Coefs, tr: &mut Part<'_, F>, t: usize) {
    let mut a = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, H), holds U x_t + b
    let (y_prev, mut y_cur) = prev_and_cur(&mut tr.h, t); // (B, H) each
    let (z_prev, mut z_cur) = prev_and_cur(&mut tr.c, t);
    matmul_strips_on(y_prev.view(), tr.wt, a.view_mut(), true, tr.threads); // + y_{t−1} Wᵀ
    matmul_strips_on(z_prev.view(), tr.wzt, a.view_mut(), true, tr.threads); // + z_{t−1} Wzᵀ
    Activation::Tanh.forward_in_place(a.as_slice_mut().expect("contiguous"));
    forward_rows(
        [F::of(c.dt), F::of(c.gamma), F::of(c.epsilon)],
        [
            a.as_slice().expect("contiguous"),
            y_prev.as_slice().expect("contiguous"),
            z_prev.as_slice().expect("contiguous"),
        ],
        [
            y_cur.as_slice_mut().expect("contiguous"),
            z_cur.as_slice_mut().expect("contiguous"),
        ],
    );
}

simd_fn! {
/// z_t and y_t over a block of sequences, (B·H) each.
fn forward_rows<F: Real>(coefs: [F; 3], prev: [&[F]; 3], cur: [&mut [F]; 2]) {
    let ([dt, gamma, eps], [a, y_prev, z_prev], [y_cur, z_cur]) = (coefs, prev, cur);
    let n = a.len();
    let (y_prev, z_prev, y_cur, z_cur) = (&y_prev[..n], &z_prev[..n], &mut y_cur[..n], &mut z_cur[..n]);
    for j in 0..n {
        let z = z_prev[j] + dt * (a[j] - gamma * y_prev[j] - eps * z_prev[j]);
        z_cur[j] = z;
        y_cur[j] = y_prev[j] + dt * z;
    }
}
}

/// Back through step t. Reads dE/dy_t from `tr.dh` and dE/dz_t arriving from step t+1 from
/// `tr.carry_c`; writes the full dE/dz_t into `tr.dc`, dpre = dE/dz_t·Δt·(1 − a²) into
/// `gates[t−1]`, dE/dz_{t−1} into `tr.carry_c` and dE/dy_{t−1} into `tr.carry_h` (their
/// products through W and Wz only when `carry`).
pub fn backward_step<F: Real>(_p: &Layer<F>, c: Coefs, tr: &mut Part<'_, F>, t: usize, carry: bool) {
    let mut g = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, H): a_t in, dpre out
    backward_rows(
        [F::of(c.dt), F::of(c.gamma), F::of(c.epsilon)],
        tr.dh.as_slice().expect("contiguous"),
        [
            g.as_slice_mut().expect("contiguous"),
            tr.dc.as_slice_mut().expect("contiguous"),
            tr.carry_h.as_slice_mut().expect("contiguous"),
            tr.carry_c.as_slice_mut().expect("contiguous"),
        ],
    );
    if carry {
        matmul_strips_on(g.view(), tr.w, tr.carry_h.view_mut(), true, tr.threads); // + back through W y_{t−1}
        matmul_strips_on(g.view(), tr.wz, tr.carry_c.view_mut(), true, tr.threads); // + back through Wz z_{t−1}
    }
}

simd_fn! {
/// The element-wise part of backward step t over a block of sequences, (B·H) each: `out` is
/// [a_t in / dpre out, dz_t full, dy_{t−1} direct, dz_t from t+1 in / dz_{t−1} direct out].
fn backward_rows<F: Real>(coefs: [F; 3], dy: &[F], out: [&mut [F]; 4]) {
    let ([dt, gamma, eps], [a, dz_full, dy_prev, dz_carry]) = (coefs, out);
    let (n, one) = (a.len(), F::one());
    let (dy, dz_full, dy_prev, dz_carry) = (&dy[..n], &mut dz_full[..n], &mut dy_prev[..n], &mut dz_carry[..n]);
    for j in 0..n {
        let dz = dz_carry[j] + dt * dy[j]; // back through y_t = y_{t−1} + Δt·z_t
        dz_full[j] = dz;
        let da = dz * dt; // back through z_t = … + Δt·a_t
        a[j] = da * (one - a[j] * a[j]); // back through tanh
        dy_prev[j] = dy[j] - dt * gamma * dz; // back through y_{t−1} and −Δt·γ·y_{t−1}
        dz_carry[j] = dz * (one - dt * eps); // back through z_{t−1} − Δt·ε·z_{t−1}
    }
}
}
