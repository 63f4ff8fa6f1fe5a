//! The GRU cell (Cho et al. 2014), PyTorch's equations and gate order (r, z, n) with `b_hn`
//! inside the reset product: its tensors, and its forward and backward step side by side:
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

use ndarray::{ArrayView1, Axis};

use super::Layer;
use super::bptt::{Part, prev_and_cur};
use super::params::{
    CellSpec, Dim, INPUT_BIAS, INPUT_WEIGHTS, Projection, RECURRENT_WEIGHTS, Recurrence, Role, Start, TensorSpec,
};
use crate::real::{Real, matmul_strips_on, simd_fn};

/// The GRU's table: U (3H, D), W (3H, H), the input-side bias b (3H) and the hidden-side bias
/// bh (3H), as `torch.nn.GRU`; its one state h.
pub const SPEC: CellSpec = CellSpec {
    name: "gru",
    gates: 3,
    tensors: &[
        INPUT_WEIGHTS,
        RECURRENT_WEIGHTS,
        INPUT_BIAS,
        TensorSpec {
            name: "bh",
            role: Role::HiddenBias,
            shape: &[Dim::Gates],
            start: Start::Zero,
            torch: "bias_hh",
            torch_zero: None,
        },
    ],
    states: &["h"],
    projection: Projection::Gates,
    aux: true,
    hidden_side: true,
    radius_block: 2,
    recurrence: Recurrence::Matrix,
};

/// Step t (1-based).
pub fn forward_step<F: Real>(p: &Layer<F>, tr: &mut Part<'_, F>, t: usize) {
    let h = p.hidden();
    // Hidden side of all three gates: hp = h_{t−1} Wᵀ + bh, (B, 3H).
    let bh = p.get(Role::HiddenBias).expect("the GRU declares bh");
    tr.hp.assign(&ArrayView1::from(bh));
    matmul_strips_on(
        tr.h.index_axis(Axis(0), t - 1),
        tr.wt,
        tr.hp.view_mut(),
        true,
        tr.threads,
    );
    let mut gates = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, 3H), holds U x_t + b
    let mut hn = tr.aux.index_axis_mut(Axis(0), t - 1);
    let (h_prev, mut h_cur) = prev_and_cur(&mut tr.h, t);
    for b in 0..gates.nrows() {
        let g = gates.row_mut(b).into_slice().expect("contiguous");
        let (gr, g) = g.split_at_mut(h);
        let (gz, gn) = g.split_at_mut(h);
        let hp = tr.hp.row(b).to_slice().expect("contiguous");
        let (hr, hp) = hp.split_at(h);
        let (hz, hpn) = hp.split_at(h);
        forward_row(
            [gr, gz, gn],
            [hr, hz, hpn, h_prev.row(b).to_slice().expect("contiguous")],
            hn.row_mut(b).into_slice().expect("contiguous"),
            h_cur.row_mut(b).into_slice().expect("contiguous"),
        );
    }
}

simd_fn! {
/// The element-wise part of step t for one sequence, (H) each: activates r, z, n in place from
/// the input-side pre-activations and the hidden side hp = [hr hz hn], keeps hn, forms h_t.
/// (Out of line, see `simd_fn`, so that the loop vectorises.)
fn forward_row<F: Real>(gates: [&mut [F]; 3], hidden: [&[F]; 4], hn: &mut [F], h_cur: &mut [F]) {
    let ([gr, gz, gn], [hr, hz, hpn, h_prev]) = (gates, hidden);
    let (h, one) = (gr.len(), F::one());
    let (gz, gn, hr, hz, hpn, h_prev) = (&mut gz[..h], &mut gn[..h], &hr[..h], &hz[..h], &hpn[..h], &h_prev[..h]);
    let (hn, h_cur) = (&mut hn[..h], &mut h_cur[..h]);
    // Each gate's pre-activation, then its activation over the whole gate in place (the f64
    // functions run several vectors side by side over a slice, see `elem::tanh_in_place`: the
    // same bits).
    for j in 0..h {
        gr[j] += hr[j];
        gz[j] += hz[j];
    }
    F::act_sigmoid_in_place::<FUSED>(gr);
    F::act_sigmoid_in_place::<FUSED>(gz);
    for j in 0..h {
        gn[j] += gr[j] * hpn[j];
    }
    F::act_tanh_in_place::<FUSED>(gn);
    hn.copy_from_slice(hpn);
    for j in 0..h {
        h_cur[j] = (one - gz[j]) * gn[j] + gz[j] * h_prev[j];
    }
}
}

/// Back through step t. Reads dE/dh_t from `tr.dh`; overwrites r, z, n in `gates[t−1]` with
/// the input-side pre-activation gradients, writes the hidden-side ones into `dgh[t−1]` and
/// dE/dh_{t−1} (through z and, when `carry`, through W) into `tr.carry_h`.
pub fn backward_step<F: Real>(p: &Layer<F>, tr: &mut Part<'_, F>, t: usize, carry: bool) {
    let h = p.hidden();
    let mut gates = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, 3H): gates in, gradients out
    let hn = tr.aux.index_axis(Axis(0), t - 1);
    let h_prev = tr.h.index_axis(Axis(0), t - 1);
    let mut dgh = tr.dgh.index_axis_mut(Axis(0), t - 1);
    for b in 0..gates.nrows() {
        let g = gates.row_mut(b).into_slice().expect("contiguous");
        let (gr, g) = g.split_at_mut(h);
        let (gz, gn) = g.split_at_mut(h);
        let dhid = dgh.row_mut(b).into_slice().expect("contiguous");
        let (dhr, dhid) = dhid.split_at_mut(h);
        let (dhz, dhn) = dhid.split_at_mut(h);
        backward_row(
            [gr, gz, gn],
            [
                hn.row(b).to_slice().expect("contiguous"),
                h_prev.row(b).to_slice().expect("contiguous"),
                tr.dh.row(b).to_slice().expect("contiguous"),
            ],
            [dhr, dhz, dhn],
            tr.carry_h.row_mut(b).into_slice().expect("contiguous"),
        );
    }
    if carry {
        matmul_strips_on(dgh.view(), tr.w, tr.carry_h.view_mut(), true, tr.threads); // + back through W h_{t−1}
    }
}

simd_fn! {
/// The element-wise part of backward step t for one sequence, (H) each: from the saved r, z, n
/// (overwritten, once read, by the input-side pre-activation gradients), hn, h_{t−1} and
/// dE/dh_t, the hidden-side gradients and the direct path dE/dh_{t−1} = dh ⊙ z. Never inlined,
/// as [`forward_row`].
fn backward_row<F: Real>(gates: [&mut [F]; 3], saved: [&[F]; 3], dgh: [&mut [F]; 3], carry_h: &mut [F]) {
    let ([gr, gz, gn], [hn, h_prev, dh], [dhr, dhz, dhn]) = (gates, saved, dgh);
    let (h, one) = (gr.len(), F::one());
    let (gz, gn, hn, h_prev, dh) = (&mut gz[..h], &mut gn[..h], &hn[..h], &h_prev[..h], &dh[..h]);
    let (dhr, dhz, dhn, carry_h) = (&mut dhr[..h], &mut dhz[..h], &mut dhn[..h], &mut carry_h[..h]);
    for j in 0..h {
        let (r, z, n) = (gr[j], gz[j], gn[j]);
        let dn = dh[j] * (one - z) * (one - n * n); // back through (1 − z)·n and tanh
        let dz = dh[j] * (h_prev[j] - n) * z * (one - z); // back through z and σ
        let dr = dn * hn[j] * r * (one - r); // back through r ⊙ hn and σ
        (gr[j], gz[j], gn[j]) = (dr, dz, dn);
        (dhr[j], dhz[j], dhn[j]) = (dr, dz, dn * r); // hn enters through r ⊙ hn
        carry_h[j] = dh[j] * z; // back through z ⊙ h_{t−1}
    }
}
}
