//! The LSTM cell (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000),
//! PyTorch's equations and gate order (i, f, g, o): its tensors, and its forward and backward
//! step side by side:
//!
//! ```text
//! [i f g o] = U x_t + b + W h_{t−1}          (B, 4H) pre-activations
//! i, f, o = σ(·),  g = tanh(·)
//! c_t = f ⊙ c_{t−1} + i ⊙ g
//! h_t = o ⊙ tanh(c_t)
//! ```
//!
//! Forward keeps the activated gates (in `gates`), c_t (in `c`) and tanh(c_t) (in `aux`).

use ndarray::Axis;

use super::Layer;
use super::bptt::{Part, prev_and_cur};
use super::params::{
    CellSpec, INPUT_WEIGHTS, Projection, RECURRENT_WEIGHTS, Recurrence, SUMMED_BIAS, Start, TensorSpec,
};
use crate::real::{Real, matmul_strips_on, simd_fn};

/// The LSTM's table: U (4H, D), W (4H, H) and b (4H), as `torch.nn.LSTM` (whose two biases it
/// adds), the forget gate's block of b starting at `model.forget_bias`; its states h and c.
pub const SPEC: CellSpec = CellSpec {
    name: "lstm",
    gates: 4,
    tensors: &[
        INPUT_WEIGHTS,
        RECURRENT_WEIGHTS,
        TensorSpec {
            start: Start::ForgetBias(1),
            ..SUMMED_BIAS
        },
    ],
    states: &["h", "c"],
    projection: Projection::Gates,
    aux: true,
    hidden_side: false,
    radius_block: 2,
    recurrence: Recurrence::Matrix,
};

/// Step t (1-based).
pub fn forward_step<F: Real>(_p: &Layer<F>, tr: &mut Part<'_, F>, t: usize) {
    let mut gates = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, 4H), holds U x_t + b
    matmul_strips_on(
        tr.h.index_axis(Axis(0), t - 1),
        tr.wt,
        gates.view_mut(),
        true,
        tr.threads,
    ); // += h_{t−1} Wᵀ
    let (c_prev, mut c_cur) = prev_and_cur(&mut tr.c, t);
    let mut h_cur = tr.h.index_axis_mut(Axis(0), t);
    let mut tanh_c = tr.aux.index_axis_mut(Axis(0), t - 1);
    for b in 0..gates.nrows() {
        forward_row(
            gates.row_mut(b).into_slice().expect("contiguous"),
            c_prev.row(b).to_slice().expect("contiguous"),
            c_cur.row_mut(b).into_slice().expect("contiguous"),
            tanh_c.row_mut(b).into_slice().expect("contiguous"),
            h_cur.row_mut(b).into_slice().expect("contiguous"),
        );
    }
}

simd_fn! {
/// The element-wise part of step t for one sequence, (H) each: activates the gates (4H: i, f,
/// g, o) in place and forms c_t, tanh(c_t) and h_t. (Out of line, see `simd_fn`, so that the
/// compiler knows the slices do not overlap and vectorises the loop: 2× faster at H = 128,
/// B = 32.) Each activation runs over a whole slice: the f64 functions take several vectors
/// side by side there (`elem::tanh_in_place`; element by element in one loop, f64 H = 128,
/// B = 32, T = 200 took 51.6 ms a step, AMD EPYC family 26 model 2): the same bits.
fn forward_row<F: Real>(gates: &mut [F], c_prev: &[F], c_cur: &mut [F], tanh_c: &mut [F], h_cur: &mut [F]) {
    let h = c_prev.len();
    F::act_sigmoid_in_place::<FUSED>(&mut gates[..2 * h]); // i, f
    F::act_tanh_in_place::<FUSED>(&mut gates[2 * h..3 * h]); // g, the candidate
    F::act_sigmoid_in_place::<FUSED>(&mut gates[3 * h..4 * h]); // o
    let (gi, g) = gates.split_at(h);
    let (gf, g) = g.split_at(h);
    let (gg, go) = g.split_at(h);
    let (c_cur, tanh_c, h_cur) = (&mut c_cur[..h], &mut tanh_c[..h], &mut h_cur[..h]);
    for j in 0..h {
        let c = gf[j] * c_prev[j] + gi[j] * gg[j];
        c_cur[j] = c;
        tanh_c[j] = c;
    }
    F::act_tanh_in_place::<FUSED>(tanh_c);
    for j in 0..h {
        h_cur[j] = go[j] * tanh_c[j];
    }
}
}

/// Back through step t. Reads dE/dh_t from `tr.dh` and dE/dc_t arriving from step t+1 from
/// `tr.carry_c`; overwrites the gates in `gates[t−1]` with their pre-activation gradients,
/// writes the full dE/dc_t into
/// `tr.dc`, dE/dc_{t−1} into `tr.carry_c` and, when `carry`, dE/dh_{t−1} into `tr.carry_h`.
pub fn backward_step<F: Real>(p: &Layer<F>, tr: &mut Part<'_, F>, t: usize, carry: bool) {
    let h = p.hidden();
    let mut gates = tr.gates.index_axis_mut(Axis(0), t - 1); // (B, 4H): gates in, gradients out
    let tanh_c = tr.aux.index_axis(Axis(0), t - 1);
    let c_prev = tr.c.index_axis(Axis(0), t - 1);
    for b in 0..gates.nrows() {
        let g = gates.row_mut(b).into_slice().expect("contiguous");
        let (gi, g) = g.split_at_mut(h);
        let (gf, g) = g.split_at_mut(h);
        let (gg, go) = g.split_at_mut(h);
        backward_row(
            [gi, gf, gg, go],
            [
                tanh_c.row(b).to_slice().expect("contiguous"),
                c_prev.row(b).to_slice().expect("contiguous"),
                tr.dh.row(b).to_slice().expect("contiguous"),
            ],
            tr.dc.row_mut(b).into_slice().expect("contiguous"),
            tr.carry_c.row_mut(b).into_slice().expect("contiguous"),
        );
    }
    if carry {
        matmul_strips_on(gates.view(), tr.w, tr.carry_h.view_mut(), false, tr.threads); // back through W h_{t−1}
    }
}

simd_fn! {
/// The element-wise part of backward step t for one sequence, (H) each: from the saved gates
/// (overwritten, once read, by their pre-activation gradients), tanh(c_t), c_{t−1} and dE/dh_t,
/// the full dE/dc_t and dE/dc_{t−1} (replacing the dE/dc_t that step t+1 left in `carry_c`).
/// Out of line, as [`forward_row`].
fn backward_row<F: Real>(gates: [&mut [F]; 4], saved: [&[F]; 3], dc_full: &mut [F], carry_c: &mut [F]) {
    let ([gi, gf, gg, go], [tanh_c, c_prev, dh]) = (gates, saved);
    let (h, one) = (gi.len(), F::one());
    let (gf, gg, go) = (&mut gf[..h], &mut gg[..h], &mut go[..h]);
    let (tanh_c, c_prev, dh) = (&tanh_c[..h], &c_prev[..h], &dh[..h]);
    let (dc_full, carry_c) = (&mut dc_full[..h], &mut carry_c[..h]);
    for j in 0..h {
        let (i, f, cand, o) = (gi[j], gf[j], gg[j], go[j]);
        let tc = tanh_c[j];
        let dc = carry_c[j] + dh[j] * o * (one - tc * tc); // back through h = o·tanh(c)
        dc_full[j] = dc;
        carry_c[j] = dc * f; // back through c_t = f·c_{t−1} + …
        gi[j] = dc * cand * i * (one - i); // di, back through σ
        gf[j] = dc * c_prev[j] * f * (one - f); // df, back through σ
        gg[j] = dc * i * (one - cand * cand); // dg, back through tanh
        go[j] = dh[j] * tc * o * (one - o); // do, back through σ
    }
}
}
