//! The GRU cell, PyTorch's equations and gate order (r, z, n) with `b_hn` inside the reset
//! product, forward and backward side by side:
//!
//! ```text
//! [xr xz xn] = U x_t + b                    input side, (B, 3H)
//! [hr hz hn] = W h_{t−1} + bh               hidden side, (B, 3H)
//! r = σ(xr + hr),  z = σ(xz + hz),  n = tanh(xn + r ⊙ hn)
//! h_t = (1 − z) ⊙ n + z ⊙ h_{t−1}
//! ```
//!
//! Forward keeps r, z, n (in `gates`) and hn (in `aux`). Because r multiplies hn, the input-side
//! and hidden-side pre-activation gradients differ in the n block: both are kept (`dgx`, `dgh`).

use ndarray::{Axis, Zip};

use super::{Params, Trace, sigmoid};
use crate::real::{Real, matmul};

/// Step t (1-based).
pub fn forward_step<F: Real>(p: &Params<F>, tr: &mut Trace<F>, t: usize) {
    let (h, one) = (p.w.ncols(), F::one());
    // Hidden side of all three gates: hp = h_{t−1} Wᵀ + bh, (B, 3H).
    tr.hp.assign(&p.bh);
    matmul(tr.h.index_axis(Axis(0), t - 1), tr.wt.view(), tr.hp.view_mut(), true);
    let mut gates = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, 3H), holds U x_t + b
    let mut hn = tr.aux.index_axis_mut(Axis(0), t - 1);
    let (h_prev, mut h_cur) =
        tr.h.multi_slice_mut((ndarray::s![t - 1, .., ..], ndarray::s![t, .., ..]));
    for b in 0..gates.nrows() {
        let g = gates.row_mut(b).into_slice().expect("contiguous");
        let hp = tr.hp.row(b);
        for j in 0..h {
            let r = sigmoid(g[j] + hp[j]);
            let z = sigmoid(g[h + j] + hp[h + j]);
            let n = (g[2 * h + j] + r * hp[2 * h + j]).tanh();
            (g[j], g[h + j], g[2 * h + j]) = (r, z, n);
            hn[[b, j]] = hp[2 * h + j];
            h_cur[[b, j]] = (one - z) * n + z * h_prev[[b, j]];
        }
    }
}

/// Back through step t. Reads dE/dh_t from `tr.dh`; writes the input-side pre-activation
/// gradients into `dgx[t−1]`, the hidden-side ones into `dgh[t−1]` and, when `carry`,
/// dE/dh_{t−1} (through z and through W) into `tr.carry_h`.
pub fn backward_step<F: Real>(p: &Params<F>, tr: &mut Trace<F>, t: usize, carry: bool) {
    let (h, one) = (p.w.ncols(), F::one());
    let gates = tr.gates.index_axis(Axis(0), t - 1);
    let hn = tr.aux.index_axis(Axis(0), t - 1);
    let h_prev = tr.h.index_axis(Axis(0), t - 1);
    let mut dgx = tr.dgx.index_axis_mut(Axis(0), t - 1);
    let mut dgh = tr.dgh.index_axis_mut(Axis(0), t - 1);
    for b in 0..gates.nrows() {
        let g = gates.row(b);
        let dx = dgx.row_mut(b).into_slice().expect("contiguous");
        let dhid = dgh.row_mut(b).into_slice().expect("contiguous");
        for j in 0..h {
            let (r, z, n) = (g[j], g[h + j], g[2 * h + j]);
            let dh = tr.dh[[b, j]];
            let dn = dh * (one - z) * (one - n * n); // back through (1 − z)·n and tanh
            let dz = dh * (h_prev[[b, j]] - n) * z * (one - z); // back through z and σ
            let dr = dn * hn[[b, j]] * r * (one - r); // back through r ⊙ hn and σ
            (dx[j], dx[h + j], dx[2 * h + j]) = (dr, dz, dn);
            (dhid[j], dhid[h + j], dhid[2 * h + j]) = (dr, dz, dn * r); // hn enters through r ⊙ hn
        }
    }
    if carry {
        // dE/dh_{t−1} = dh ⊙ z (the direct path) + dgh W.
        Zip::from(&mut tr.carry_h)
            .and(&tr.dh)
            .and(gates.slice(ndarray::s![.., h..2 * h]))
            .for_each(|c, &dh, &z| *c = dh * z);
        matmul(dgh.view(), p.w.view(), tr.carry_h.view_mut(), true);
    }
}
