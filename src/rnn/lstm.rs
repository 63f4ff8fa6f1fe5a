//! The LSTM cell, PyTorch's equations and gate order (i, f, g, o), forward and backward side by
//! side:
//!
//! ```text
//! [i f g o] = U x_t + b + W h_{t−1}          (B, 4H) pre-activations
//! i, f, o = σ(·),  g = tanh(·)
//! c_t = f ⊙ c_{t−1} + i ⊙ g
//! h_t = o ⊙ tanh(c_t)
//! ```
//!
//! Forward keeps the activated gates (in `gates`), c_t (in `c`) and tanh(c_t) (in `aux`).

use ndarray::{Axis, s};

use super::{Params, Trace, sigmoid};
use crate::real::{Real, matmul};

/// Step t (1-based).
pub fn forward_step<F: Real>(p: &Params<F>, tr: &mut Trace<F>, t: usize) {
    let h = p.w.ncols();
    let mut gates = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, 4H), holds U x_t + b
    matmul(tr.h.index_axis(Axis(0), t - 1), tr.wt.view(), gates.view_mut(), true); // += h_{t−1} Wᵀ
    let (c_prev, mut c_cur) = tr.c.multi_slice_mut((s![t - 1, .., ..], s![t, .., ..]));
    let mut h_cur = tr.h.index_axis_mut(Axis(0), t);
    let mut tanh_c = tr.aux.index_axis_mut(Axis(0), t - 1);
    for b in 0..gates.nrows() {
        let g = gates.row_mut(b).into_slice().expect("contiguous");
        for j in 0..h {
            let i = sigmoid(g[j]);
            let f = sigmoid(g[h + j]);
            let cand = g[2 * h + j].tanh();
            let o = sigmoid(g[3 * h + j]);
            (g[j], g[h + j], g[2 * h + j], g[3 * h + j]) = (i, f, cand, o);
            let c = f * c_prev[[b, j]] + i * cand;
            let tc = c.tanh();
            c_cur[[b, j]] = c;
            tanh_c[[b, j]] = tc;
            h_cur[[b, j]] = o * tc;
        }
    }
}

/// Back through step t. Reads dE/dh_t from `tr.dh` and dE/dc_t arriving from step t+1 from
/// `tr.carry_c`; writes the gate pre-activation gradients into `dgx[t−1]`, the full dE/dc_t into
/// `tr.dc`, dE/dc_{t−1} into `tr.carry_c` and, when `carry`, dE/dh_{t−1} into `tr.carry_h`.
pub fn backward_step<F: Real>(p: &Params<F>, tr: &mut Trace<F>, t: usize, carry: bool) {
    let (h, one) = (p.w.ncols(), F::one());
    let gates = tr.gates.index_axis(Axis(0), t - 1);
    let tanh_c = tr.aux.index_axis(Axis(0), t - 1);
    let c_prev = tr.c.index_axis(Axis(0), t - 1);
    let mut dpre = tr.dgx.index_axis_mut(Axis(0), t - 1);
    for b in 0..gates.nrows() {
        let g = gates.row(b);
        let d = dpre.row_mut(b).into_slice().expect("contiguous");
        for j in 0..h {
            let (i, f, cand, o) = (g[j], g[h + j], g[2 * h + j], g[3 * h + j]);
            let (dh, tc) = (tr.dh[[b, j]], tanh_c[[b, j]]);
            let dc = tr.carry_c[[b, j]] + dh * o * (one - tc * tc); // back through h = o·tanh(c)
            tr.dc[[b, j]] = dc;
            tr.carry_c[[b, j]] = dc * f; // back through c_t = f·c_{t−1} + …
            d[j] = dc * cand * i * (one - i); // di, back through σ
            d[h + j] = dc * c_prev[[b, j]] * f * (one - f); // df, back through σ
            d[2 * h + j] = dc * i * (one - cand * cand); // dg, back through tanh
            d[3 * h + j] = dh * tc * o * (one - o); // do, back through σ
        }
    }
    if carry {
        matmul(dpre.view(), p.w.view(), tr.carry_h.view_mut(), false); // back through W h_{t−1}
    }
}
