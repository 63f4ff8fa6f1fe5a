//! Backpropagation through time checked against central finite differences in f64, for every
//! cell (plain RNN with each activation, LSTM, GRU), both heads and both loss placements.
//!
//! The reference is a deliberately naive scalar implementation of the same equations (PyTorch's
//! for the gated cells), written with plain loops and sharing no code with the batched core, so
//! a mistake in the core's matrix layout or gate order would show up here. Derivatives are the
//! fourth-order central difference (−f(x+2ε) + 8f(x+ε) − 8f(x−ε) + f(x−2ε)) / 12ε with
//! ε = 1e-4 (1e-5 for ReLU): truncation error O(ε⁴) and rounding error O(1e-16/ε) ≈ 1e-12, far
//! below the 1e-6 relative tolerance asked of every entry. The denominator of a relative error
//! is floored at 1e-5, so entries smaller than that (a dead ReLU unit's exact zeros) must agree
//! to 1e-11 in absolute terms.

// References computed independently of the code under test, with the C library's functions.
#![allow(clippy::disallowed_methods)]
// The reference is written with index loops on purpose: it should read like the equations.
#![allow(clippy::needless_range_loop)]

mod common;

use ndarray::Array3;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runner::rnn::{self, Activation, Batch, Cell, Dropout, Init, Inputs, Layer, Params, RnnConfig, Targets, Trace};

const CELLS: [Cell; 6] = [
    Cell::Rnn(Activation::Tanh),
    Cell::Rnn(Activation::Sigmoid),
    Cell::Rnn(Activation::Relu),
    Cell::Rnn(Activation::Identity),
    Cell::Lstm,
    Cell::Gru,
];
const T: usize = 20;
const B: usize = 3;
const D: usize = 3;
const H: usize = 5;
const O: usize = 2;

/// states[t][b][i]: unit i of sequence b at step t (t = 0 is the zero initial state).
type States = Vec<Vec<Vec<f64>>>;
/// One step's states: [b][i].
type Step = Vec<Vec<f64>>;

/// Which state a perturbation or a frozen value concerns.
#[derive(Clone, Copy, PartialEq)]
enum Which {
    H,
    C,
}

fn sig(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// One step of one sequence: (h_{t−1}, c_{t−1}) and the input → (h_t, c_t), PyTorch's equations.
/// `c_bump` perturbs one unit of the LSTM's c_t before h_t = o ⊙ tanh(c_t) reads it.
fn naive_step(
    layer: &Layer,
    cell: Cell,
    x: &dyn Fn(usize) -> f64,
    h_prev: &[f64],
    c_prev: &[f64],
    c_bump: Option<(usize, f64)>,
) -> (Vec<f64>, Vec<f64>) {
    let layer = layer.roles();
    let (u, w, b, bh) = (layer.u, layer.w.expect("a W"), layer.b.expect("a b"), layer.bh);
    let h = w.ncols();
    // Input side U x + b and hidden side W h (+ bh for the GRU), per gate row.
    let xs = |row: usize| b[row] + (0..u.ncols()).map(|d| u[[row, d]] * x(d)).sum::<f64>();
    let hs = |row: usize| (0..h).map(|j| w[[row, j]] * h_prev[j]).sum::<f64>() + bh.map_or(0.0, |bh| bh[row]);
    match cell {
        Cell::Rnn(act) => ((0..h).map(|i| act.forward(xs(i) + hs(i))).collect(), vec![0.0; h]),
        Cell::Lstm => {
            let (mut hn, mut cn) = (vec![0.0; h], vec![0.0; h]);
            for j in 0..h {
                let i = sig(xs(j) + hs(j));
                let f = sig(xs(h + j) + hs(h + j));
                let g = (xs(2 * h + j) + hs(2 * h + j)).tanh();
                let o = sig(xs(3 * h + j) + hs(3 * h + j));
                cn[j] = f * c_prev[j] + i * g;
                if let Some((unit, eps)) = c_bump
                    && unit == j
                {
                    cn[j] += eps;
                }
                hn[j] = o * cn[j].tanh();
            }
            (hn, cn)
        }
        Cell::Gru => {
            let mut hn = vec![0.0; h];
            for j in 0..h {
                let r = sig(xs(j) + hs(j));
                let z = sig(xs(h + j) + hs(h + j));
                let n = (xs(2 * h + j) + r * hs(2 * h + j)).tanh();
                hn[j] = (1.0 - z) * n + z * h_prev[j];
            }
            (hn, vec![0.0; h])
        }
        _ => unreachable!("the cells since 2015 are checked in tests/modern.rs"),
    }
}

/// Naive forward over the batch. Returns (E, h states, c states, each sequence's last-step loss).
/// `fixed` feeds the recurrence frozen (h, c) values at the listed steps (the state is detached
/// there: treated as a constant), while the output at that step still sees the live state;
/// `bump` adds a perturbation to one component of h_k or c_k of one sequence.
fn naive(
    p: &Params,
    cell: Cell,
    batch: &Batch,
    fixed: &[(usize, Step, Step)],
    bump: Option<(usize, usize, usize, f64, Which)>,
) -> (f64, States, States, Vec<f64>) {
    let (t_len, b_len) = batch.inputs.dims();
    let h = p.hidden();
    let mut hs = vec![vec![vec![0.0; h]; b_len]; t_len + 1];
    let mut cs = vec![vec![vec![0.0; h]; b_len]; t_len + 1];
    for t in 1..=t_len {
        for b in 0..b_len {
            let x = |d: usize| match &batch.inputs {
                Inputs::Dense(x) => x[[t - 1, b, d]],
                Inputs::OneHot(x) => f64::from(u8::from(x[[t - 1, b]] == d)),
            };
            let (h_prev, c_prev) = match fixed.iter().find(|(j, _, _)| *j == t - 1) {
                Some((_, fh, fc)) => (fh[b].clone(), fc[b].clone()),
                None => (hs[t - 1][b].clone(), cs[t - 1][b].clone()),
            };
            let c_bump = match bump {
                Some((k, bb, i, eps, Which::C)) if k == t && bb == b => Some((i, eps)),
                _ => None,
            };
            let (hn, cn) = naive_step(&p.layers()[0], cell, &x, &h_prev, &c_prev, c_bump);
            hs[t][b] = hn;
            cs[t][b] = cn;
        }
        if let Some((k, b, i, eps, Which::H)) = bump
            && k == t
        {
            hs[t][b][i] += eps;
        }
    }
    let (e, last_per_seq) = naive_loss(p, batch, &|t, b| &hs[t][b]);
    (e, hs, cs, last_per_seq)
}

/// The head's loss over the loss-carrying steps from the state the head reads, `y(t, b)` at step
/// t (1-based) of sequence b: (E, each sequence's last-step loss).
fn naive_loss<'a>(p: &Params, batch: &Batch, y_of: &dyn Fn(usize, usize) -> &'a [f64]) -> (f64, Vec<f64>) {
    let (t_len, b_len) = batch.inputs.dims();
    let (h, o) = (p.hidden(), p.v.nrows());
    let l = batch.targets.steps();
    let mut total = 0.0;
    let mut last_per_seq = vec![0.0; b_len];
    for step in 0..l {
        let t = t_len - l + step + 1;
        for b in 0..b_len {
            let ys = y_of(t, b);
            let net: Vec<f64> = (0..o)
                .map(|k| p.c[k] + (0..h).map(|j| p.v[[k, j]] * ys[j]).sum::<f64>())
                .collect();
            let loss = match &batch.targets {
                Targets::Values(y) => (0..o).map(|k| (net[k] - y[[step, b, k]]).powi(2)).sum::<f64>() / o as f64,
                Targets::Classes(y) => {
                    let m = net.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    let lse = m + net.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                    lse - net[y[[step, b]]]
                }
            };
            total += loss;
            if step == l - 1 {
                last_per_seq[b] = loss;
            }
        }
    }
    (total / (l * b_len) as f64, last_per_seq)
}

fn params(cell: Cell, d: usize, o: usize, seed: u64) -> Params {
    let cfg = RnnConfig {
        input: d,
        hidden: H,
        output: o,
        cell,
        init: Init::Normal,
        init_io: Init::Normal,
        std: if matches!(cell, Cell::Rnn(_)) { 0.35 } else { 0.6 },
        scale: 1.0,
        forget_bias: 1.0,
        dtype: runner::real::Dtype::F64,
        layers: 1,
        residual: false,
        dropout: 0.0,
        cell_init: Default::default(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = cfg.init(&mut rng);
    // Non-zero biases so that their gradients are exercised away from the initial point.
    let layer = p.layers_mut()[0].roles_mut();
    layer.b.expect("a b").mapv_inplace(|x| x + rng.random_range(-0.3..0.3));
    if let Some(mut bh) = layer.bh {
        bh.mapv_inplace(|_| rng.random_range(-0.3..0.3));
    }
    p.c.mapv_inplace(|_| rng.random_range(-0.3..0.3));
    p
}

fn batch(dense: bool, classes: bool, every_step: bool, d: usize, o: usize, seed: u64) -> Batch {
    common::random_batch((T, B, d, o), (dense, classes, every_step), seed)
}

/// f'(0) by the fourth-order central difference with step `eps`.
fn central_difference(f: &dyn Fn(f64) -> f64, eps: f64) -> f64 {
    (-f(2.0 * eps) + 8.0 * f(eps) - 8.0 * f(-eps) + f(-2.0 * eps)) / (12.0 * eps)
}

/// The difference step: 1e-4, or 1e-5 for ReLU, whose kinks a wider stencil crosses more often.
fn step_for(cell: Cell) -> f64 {
    if cell == Cell::Rnn(Activation::Relu) {
        1e-5
    } else {
        1e-4
    }
}

/// Which units are active (h > 0) at every step: for ReLU, the region of parameter space
/// inside which the loss is smooth.
fn region(cell: Cell, states: &States) -> Vec<bool> {
    if cell != Cell::Rnn(Activation::Relu) {
        return Vec::new();
    }
    states.iter().flatten().flatten().map(|&s| s > 0.0).collect()
}

/// Largest entry-wise relative error |a − n| / max(|a|, |n|, 1e-5) between the analytic
/// gradient and central differences of `loss` over every parameter entry.
///
/// For ReLU the loss has kinks where a pre-activation crosses zero; an entry whose
/// finite-difference stencil crosses one (some unit switches on or off between x − 2ε and
/// x + 2ε) has no meaningful difference quotient and is skipped. At most 5 % may be skipped.
fn max_rel_error(
    p: &Params,
    analytic: &Params,
    cell: Cell,
    loss: &dyn Fn(&Params) -> (f64, States),
) -> (f64, &'static str) {
    max_rel_error_with(p, analytic, cell, loss, step_for(cell))
}

/// [`max_rel_error`] with the difference step `eps`.
fn max_rel_error_with(
    p: &Params,
    analytic: &Params,
    cell: Cell,
    loss: &dyn Fn(&Params) -> (f64, States),
    eps: f64,
) -> (f64, &'static str) {
    let mut worst = (0.0, "");
    let base = region(cell, &loss(p).1);
    let (mut skipped, mut total) = (0, 0);
    for (ti, (name, len)) in p.names().zip(p.slices().map(<[f64]>::len)).enumerate() {
        for i in 0..len {
            total += 1;
            let crosses_kink = std::cell::Cell::new(false);
            let numeric = central_difference(
                &|eps| {
                    let mut q = p.clone();
                    q.slices_mut().nth(ti).expect("a tensor")[i] += eps;
                    let (e, states) = loss(&q);
                    if region(cell, &states) != base {
                        crosses_kink.set(true);
                    }
                    e
                },
                eps,
            );
            if crosses_kink.get() {
                skipped += 1;
                continue;
            }
            let a = analytic.slices().nth(ti).expect("a tensor")[i];
            let rel = (a - numeric).abs() / a.abs().max(numeric.abs()).max(1e-5);
            if rel > worst.0 {
                worst = (rel, name);
            }
        }
    }
    if skipped > 0 {
        println!("  ({skipped} of {total} entries straddle a ReLU kink and were skipped)");
    }
    assert!(
        skipped * 20 <= total,
        "{skipped} of {total} entries straddle a ReLU kink"
    );
    worst
}

fn check(cell: Cell, dense: bool, classes: bool, every_step: bool, seed: u64) -> f64 {
    let o = if classes { 4 } else { O };
    let p = params(cell, D, o, seed);
    let batch = batch(dense, classes, every_step, D, o, seed + 100);
    let mut tr = Trace::default();
    let e = rnn::forward(&p, &batch, &mut tr);
    let (e_ref, ..) = naive(&p, cell, &batch, &[], None);
    assert!(
        (e - e_ref).abs() <= 1e-12 * e_ref.abs().max(1.0),
        "forward {cell:?}: {e} vs naive {e_ref}"
    );
    let mut g = p.zeros_like();
    rnn::backward(&p, &batch, &mut tr, &mut g);
    let (err, name) = max_rel_error(&p, &g, cell, &|q| {
        let (e, hs, ..) = naive(q, cell, &batch, &[], None);
        (e, hs)
    });
    println!("{cell:?} dense={dense} classes={classes} every_step={every_step}: max rel err = {err:.2e} (in {name})");
    assert!(err < 1e-6, "{cell:?}: relative error {err:e} in {name}");
    err
}

#[test]
fn full_bptt_matches_finite_differences_for_every_cell_head_and_loss_placement() {
    let mut worst: f64 = 0.0;
    for (i, cell) in CELLS.into_iter().enumerate() {
        for classes in [false, true] {
            for every_step in [false, true] {
                // Dense inputs with the MSE head and one-hot with cross-entropy, plus the
                // crossed pairs on alternate cells so all four input/head pairings are covered.
                let dense = !classes ^ (i % 2 == 1);
                worst = worst.max(check(cell, dense, classes, every_step, 7 + i as u64));
            }
        }
    }
    println!("largest relative error over all cases: {worst:.2e}");
}

#[test]
fn backward_adds_into_the_gradient() {
    for cell in [Cell::Rnn(Activation::Tanh), Cell::Lstm, Cell::Gru] {
        let p = params(cell, D, O, 3);
        let batch = batch(true, false, true, D, O, 4);
        let mut tr = Trace::default();
        rnn::forward(&p, &batch, &mut tr);
        let mut once = p.zeros_like();
        rnn::backward(&p, &batch, &mut tr, &mut once);
        let mut twice = once.clone();
        rnn::forward(&p, &batch, &mut tr); // backward consumes the trace
        rnn::backward(&p, &batch, &mut tr, &mut twice);
        for (a, b) in once.slices().zip(twice.slices()) {
            for (x, y) in a.iter().zip(b) {
                assert!((2.0 * x - y).abs() <= 1e-15 * x.abs().max(1e-300));
            }
        }
    }
}

/// Truncated BPTT with window k is, by definition, the exact gradient of the loss in which
/// every state entering a window (h_j, and c_j for the LSTM, with (T − j) divisible by k) is a
/// constant. The reference holds those states fixed at their unperturbed values.
#[test]
fn truncated_bptt_matches_its_definition() {
    for cell in CELLS {
        for (k, every_step) in [(1, true), (4, true), (7, true), (5, false), (19, false)] {
            let p = params(cell, D, O, 11);
            let batch = batch(true, false, every_step, D, O, 12);
            let mut tr = Trace::default();
            let mut g = p.zeros_like();
            rnn::train_step(&p, &batch, &mut tr, Some(k), None, &mut g);
            let (_, hs, cs, _) = naive(&p, cell, &batch, &[], None);
            let fixed: Vec<(usize, Step, Step)> = (1..=T)
                .filter(|j| (T - j).is_multiple_of(k))
                .map(|j| (j, hs[j].clone(), cs[j].clone()))
                .collect();
            let (err, name) = max_rel_error(&p, &g, cell, &|q| {
                let (e, hs2, ..) = naive(q, cell, &batch, &fixed, None);
                (e, hs2)
            });
            println!("{cell:?} bptt={k} every_step={every_step}: max rel err = {err:.2e} (in {name})");
            assert!(err < 1e-6, "{cell:?} k={k}: relative error {err:e} in {name}");
            // And it really is a truncation: it differs from the full gradient. (Not checked
            // at k = 19 for σ, where the one step cut off contributes 0.25^19 ≈ 4e-12 of the
            // sum, below f64's resolution of it, nor for ReLU, where every sequence of this
            // batch has a step with all units off between steps 20 and 1 (steps 17, 6 and 12),
            // so the gradient reaching step 1 is exactly zero.)
            let vanishes = matches!(cell, Cell::Rnn(Activation::Sigmoid | Activation::Relu));
            if !(vanishes && k == 19) {
                let mut full = p.zeros_like();
                rnn::forward(&p, &batch, &mut tr);
                rnn::backward(&p, &batch, &mut tr, &mut full);
                let u = |p: &Params| p.layers()[0].roles().u.to_owned();
                assert_ne!(u(&full), u(&g), "{cell:?} k={k}");
            }
        }
    }
}

/// The probe's ‖∂E_T/∂h_k‖ (and ‖∂E_T/∂c_k‖ for the LSTM), averaged over sequences, against
/// finite differences of each sequence's last-step loss with respect to its own state.
#[test]
fn probe_matches_finite_differences_of_the_last_step_loss() {
    for cell in CELLS {
        for (classes, every_step) in [(false, false), (true, true)] {
            let o = if classes { 4 } else { O };
            let p = params(cell, D, o, 21);
            let batch = batch(true, classes, every_step, D, o, 22);
            let mut tr = Trace::default();
            let probed = rnn::probe(&p, &batch, &mut tr, None);
            assert_eq!(probed.top().len(), T);
            assert_eq!(probed.c.is_some(), cell == Cell::Lstm);
            let mut worst: f64 = 0.0;
            let mut checked = 0;
            let mut states = vec![(Which::H, probed.top())];
            if let Some(c) = probed.top_c() {
                states.push((Which::C, c));
            }
            for (which, logs) in states {
                for d in 0..T {
                    let k = T - d;
                    let mut mean = 0.0;
                    for b in 0..B {
                        let mut sq = 0.0;
                        for i in 0..H {
                            let dk = central_difference(
                                &|eps| naive(&p, cell, &batch, &[], Some((k, b, i, eps, which))).3[b],
                                step_for(cell),
                            );
                            sq += dk * dk;
                        }
                        mean += sq.sqrt() / B as f64;
                    }
                    let probed = logs[d].exp();
                    // Relative error is meaningful only while the norm is well above the
                    // finite-difference noise (rounding 1e-16/ε per component, about 1e-12);
                    // below 1e-4 the gap must stay under 1e-10 in absolute terms.
                    if mean > 1e-4 {
                        let rel = (probed - mean).abs() / mean;
                        worst = worst.max(rel);
                        checked += 1;
                        assert!(rel < 1e-6, "{cell:?} d={d}: probe {probed:e} vs fd {mean:e}");
                    } else {
                        assert!(
                            (probed - mean).abs() < 1e-10,
                            "{cell:?} d={d}: probe {probed:e} vs fd {mean:e}"
                        );
                    }
                }
            }
            println!("{cell:?} classes={classes}: probe max rel err = {worst:.2e} over {checked} distances");
            assert!(checked >= 3, "too few distances above the noise floor to test");
        }
    }
}

/// The f32 core computes the same thing as the f64 one: its loss, every gradient entry and the
/// probe's log-norms agree with f64's within f32 rounding (the f64 core is the one checked
/// against finite differences above). Tolerances: loss and gradients relative 1e-4 of the
/// largest gradient entry (f32 has a 6e-8 unit roundoff, accumulated over T = 20 steps and a
/// few dozen terms per product); log-norms 1e-3 absolute (a relative 0.1 % in the norm).
#[test]
fn f32_core_agrees_with_f64() {
    let mut worst: f64 = 0.0;
    for cell in CELLS {
        for (dense, classes, every) in [(true, false, false), (false, true, true)] {
            let o = if classes { 4 } else { O };
            let p64 = params(cell, D, o, 21);
            let b64 = batch(dense, classes, every, D, o, 22);
            let (p32, b32) = (p64.cast::<f32>(), b64.cast::<f32>());
            // Compare against f64 run on the f32-rounded inputs, so only arithmetic differs.
            let (p64, b64) = (p32.cast::<f64>(), b32.cast::<f64>());
            let (mut t64, mut t32) = (Trace::default(), Trace::<f32>::default());
            let (l64, l32) = (rnn::forward(&p64, &b64, &mut t64), rnn::forward(&p32, &b32, &mut t32));
            let (mut g64, mut g32) = (p64.zeros_like(), p32.zeros_like());
            rnn::backward(&p64, &b64, &mut t64, &mut g64);
            rnn::backward(&p32, &b32, &mut t32, &mut g32);
            let g32 = g32.cast::<f64>();
            let scale = g64.slices().flat_map(|t| t.iter()).fold(0.0f64, |a, x| a.max(x.abs()));
            let mut err: f64 = ((l64 - l32) / l64).abs();
            for (a, b) in g64.slices().zip(g32.slices()) {
                for (x, y) in a.iter().zip(b) {
                    err = err.max((x - y).abs() / scale);
                }
            }
            let (q64, q32) = (
                rnn::probe(&p64, &b64, &mut t64, None),
                rnn::probe(&p32, &b32, &mut t32, None),
            );
            let probe_err = q64
                .top()
                .iter()
                .zip(q32.top())
                .filter(|(a, _)| a.is_finite())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            println!("{cell:?} dense={dense}: f32 vs f64 gradient {err:.1e}, probe ln-norm {probe_err:.1e}");
            assert!(err < 1e-4, "{cell:?}: f32 gradient differs by {err:e}");
            assert!(probe_err < 1e-3, "{cell:?}: f32 probe differs by {probe_err:e}");
            worst = worst.max(err);
        }
    }
    println!("largest f32 vs f64 difference: {worst:.1e}");
}

/// The probe keeps its range in f32: over 300 steps of a sigmoid network the gradient norm falls
/// far below f32's smallest positive value (1.4e-45), yet the f32 probe still measures it, and
/// agrees with the f64 probe to 1e-3 in ln-norm at every distance.
#[test]
fn f32_probe_measures_norms_below_the_smallest_f32() {
    use runner::task::{Task, TaskConfig};
    let task = Task::new(TaskConfig::Adding {
        seq_len: 300,
        eval_size: 1,
    });
    let p64 = params(Cell::Rnn(Activation::Sigmoid), 2, 1, 5)
        .cast::<f32>()
        .cast::<f64>();
    let b32 = task.probe_set(4).cast::<f32>();
    let b64 = b32.cast::<f64>();
    let q64 = rnn::probe(&p64, &b64, &mut Trace::default(), None);
    let q32 = rnn::probe(&p64.cast::<f32>(), &b32, &mut Trace::default(), None);
    let deepest = *q32.top().last().unwrap();
    let diff = q64
        .top()
        .iter()
        .zip(q32.top())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    println!(
        "f32 probe at distance 299: 10^{:.1} (f64: 10^{:.1}); largest ln-norm difference {diff:.1e}",
        deepest / std::f64::consts::LN_10,
        q64.top().last().unwrap() / std::f64::consts::LN_10
    );
    assert!(deepest.is_finite() && deepest < (1e-45f64).ln(), "{deepest}");
    assert!(diff < 1e-3, "{diff:e}");
}

/// A set evaluated or probed in parts (as runs do, a training batch at a time) gives what one
/// pass over the whole set gives, to rounding: the size-weighted mean of the parts' losses, and
/// the joined probe.
#[test]
fn evaluating_and_probing_in_parts_equals_one_pass() {
    for cell in [Cell::Rnn(Activation::Tanh), Cell::Lstm, Cell::Gru] {
        let p = params(cell, D, 4, 31);
        let whole = batch(false, true, true, D, 4, 32); // B = 3 sequences, many-to-many
        let mut tr = Trace::default();
        let loss = rnn::forward(&p, &whole, &mut tr);
        let probe = rnn::probe(&p, &whole, &mut tr, None);
        let parts = whole.split(2); // sizes 2 and 1
        let sizes: Vec<usize> = parts.iter().map(|b| b.dims().1).collect();
        assert_eq!(sizes, [2, 1]);
        let joined_loss: f64 = parts
            .iter()
            .map(|b| rnn::forward(&p, b, &mut Trace::default()) * b.dims().1 as f64)
            .sum::<f64>()
            / 3.0;
        let probes: Vec<_> = parts
            .iter()
            .map(|b| rnn::probe(&p, b, &mut Trace::default(), None))
            .collect();
        let joined = rnn::join_probes(&probes, &sizes);
        let gap = probe
            .h
            .iter()
            .flatten()
            .chain(probe.c.iter().flatten().flatten())
            .zip(joined.h.iter().flatten().chain(joined.c.iter().flatten().flatten()))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        println!(
            "{cell:?}: loss gap {:.1e}, probe ln-norm gap {gap:.1e}",
            (loss - joined_loss).abs()
        );
        assert!((loss - joined_loss).abs() <= 1e-14 * loss);
        assert!(gap <= 1e-12, "{gap:e}");
    }
}

/// Runs with truncated BPTT evaluate and probe window by window, through a trace of k steps
/// (the probe recomputing each window's forward pass from the state that entered it): the
/// results are those of one pass over the whole sequence.
#[test]
fn windowed_evaluation_and_probe_equal_one_pass() {
    for cell in CELLS {
        for (classes, every_step) in [(false, false), (true, true)] {
            let o = if classes { 4 } else { O };
            let p = params(cell, D, o, 41);
            let batch = batch(!classes, classes, every_step, D, o, 42);
            let mut tr = Trace::default();
            let loss = rnn::forward(&p, &batch, &mut tr);
            let acc = rnn::accuracy(&batch, &tr);
            let whole = rnn::probe(&p, &batch, &mut tr, None);
            for k in [1, 4, 7, 19] {
                let mut tr = Trace::default();
                let (wl, wacc) = rnn::evaluate(&p, &batch, &mut tr, Some(k));
                let windowed = rnn::probe(&p, &batch, &mut tr, Some(k));
                let gap = whole
                    .h
                    .iter()
                    .flatten()
                    .chain(whole.c.iter().flatten().flatten())
                    .zip(windowed.h.iter().flatten().chain(windowed.c.iter().flatten().flatten()))
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!((wl - loss).abs() <= 1e-14 * loss, "{cell:?} k={k}: loss {wl} vs {loss}");
                assert_eq!(wacc, acc, "{cell:?} k={k}");
                assert!(gap <= 1e-12, "{cell:?} k={k}: probe differs by {gap:e}");
            }
        }
    }
}

/// A stack's states entering one step, per layer: (h, c) per sequence.
type StackStep = Vec<(Step, Step)>;

/// Naive forward over a stack, layer by layer, from the equations of `model.layers`,
/// `model.residual` and `model.dropout`: layer l + 1 reads x⁽ˡ⁺¹⁾_t = m⁽ˡ⁾_t ⊙ y⁽ˡ⁾_t, where
/// y⁽ˡ⁾ = h⁽ˡ⁾, or x⁽ˡ⁾ + h⁽ˡ⁾ in a residual stack from its second layer on, and m the given mask
/// (all ones without dropout); the head reads the top layer's y. `detach` holds every layer's
/// (h, c) fixed at the listed steps (truncated BPTT's windows); `bump` perturbs h_k of layer l,
/// sequence b, unit i. Returns (E, every layer's h states one after another, every layer's c
/// states ([l][t][b]; zeros but for the LSTM), each sequence's last-step loss).
fn naive_stack(
    p: &Params,
    cell: Cell,
    batch: &Batch,
    masks: &[Array3<f64>],
    detach: &[(usize, StackStep)],
    bump: Option<(usize, usize, usize, usize, f64)>,
) -> (f64, States, Vec<States>, Vec<f64>) {
    let (t_len, b_len) = batch.inputs.dims();
    let h = p.hidden();
    // The first layer's input, [t][b][d].
    let d = p.layers()[0].roles().u.ncols();
    let mut xs: States = (0..t_len)
        .map(|t| {
            (0..b_len)
                .map(|b| {
                    (0..d)
                        .map(|k| match &batch.inputs {
                            Inputs::Dense(x) => x[[t, b, k]],
                            Inputs::OneHot(x) => f64::from(u8::from(x[[t, b]] == k)),
                        })
                        .collect()
                })
                .collect()
        })
        .collect();
    let (mut all_h, mut all_c) = (Vec::new(), Vec::new());
    let mut ys = Vec::new();
    for (l, layer) in p.layers().iter().enumerate() {
        let mut hs = vec![vec![vec![0.0; h]; b_len]; t_len + 1];
        let mut cs = vec![vec![vec![0.0; h]; b_len]; t_len + 1];
        for t in 1..=t_len {
            for b in 0..b_len {
                let (h_prev, c_prev) = match detach.iter().find(|(j, _)| *j == t - 1) {
                    Some((_, fixed)) => (fixed[l].0[b].clone(), fixed[l].1[b].clone()),
                    None => (hs[t - 1][b].clone(), cs[t - 1][b].clone()),
                };
                let x = |k: usize| xs[t - 1][b][k];
                let (hn, cn) = naive_step(layer, cell, &x, &h_prev, &c_prev, None);
                hs[t][b] = hn;
                cs[t][b] = cn;
            }
            if let Some((bl, k, b, i, eps)) = bump
                && bl == l
                && k == t
            {
                hs[t][b][i] += eps;
            }
        }
        // This layer's output y_t, and the next layer's input.
        ys = (1..=t_len)
            .map(|t| {
                (0..b_len)
                    .map(|b| {
                        (0..h)
                            .map(|i| {
                                let res = if p.residual() && l > 0 { xs[t - 1][b][i] } else { 0.0 };
                                res + hs[t][b][i]
                            })
                            .collect::<Vec<f64>>()
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>();
        xs = ys
            .iter()
            .enumerate()
            .map(|(t, step)| {
                step.iter()
                    .enumerate()
                    .map(|(b, y)| {
                        y.iter()
                            .enumerate()
                            .map(|(i, &y)| y * masks.get(l).map_or(1.0, |m| m[[t, b, i]]))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        all_h.push(hs);
        all_c.push(cs);
    }
    // The loss of the top layer's y at the loss-carrying steps.
    let (e, last_per_seq) = naive_loss(p, batch, &|t, b| &ys[t - 1][b]);
    (e, all_h.concat(), all_c, last_per_seq)
}

/// The parameters of a stack of `layers` layers of `cell`, with non-zero biases.
fn stack_params(cell: Cell, layers: usize, residual: bool, o: usize, seed: u64) -> Params {
    let cfg = RnnConfig {
        input: D,
        hidden: H,
        output: o,
        cell,
        init: Init::Normal,
        init_io: Init::Normal,
        std: if matches!(cell, Cell::Rnn(_)) { 0.35 } else { 0.6 },
        scale: 1.0,
        forget_bias: 1.0,
        dtype: runner::real::Dtype::F64,
        layers,
        residual,
        dropout: 0.0,
        cell_init: Default::default(),
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = cfg.init(&mut rng);
    for layer in p.layers_mut() {
        let layer = layer.roles_mut();
        let mut b = layer.b.expect("a b");
        b.mapv_inplace(|x| x + rng.random_range(-0.3..0.3));
        if let Some(mut bh) = layer.bh {
            bh.mapv_inplace(|_| rng.random_range(-0.3..0.3));
        }
    }
    p.c.mapv_inplace(|_| rng.random_range(-0.3..0.3));
    p
}

/// Dropout masks with p = 0.3 for a stack (entries 0 or 1/0.7), drawn once and then held fixed.
fn fixed_masks(layers: usize, seed: u64) -> Vec<Array3<f64>> {
    common::fixed_masks((T, B, H), layers, seed)
}

/// Stacks of two and three layers of every cell, plain, residual, and with dropout (its masks
/// held fixed): the loss of one training step equals the naive stack's, and every parameter's
/// gradient (every layer's U, W, b, and the head) equals central differences of it, with full
/// and with truncated BPTT.
#[test]
fn stacked_layers_match_finite_differences() {
    let mut worst: f64 = 0.0;
    for (i, cell) in CELLS.into_iter().enumerate() {
        for (j, (layers, residual, dropout, bptt)) in [
            (2, false, false, None),
            (3, true, false, None),
            (2, true, true, None),
            (3, false, true, Some(6)),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 40 + 10 * i as u64 + j as u64;
            let (classes, every_step) = (j % 2 == 1, j >= 2);
            let o = if classes { 4 } else { O };
            let p = stack_params(cell, layers, residual, o, seed);
            let batch = batch(i % 2 == 0, classes, every_step, D, o, seed + 100);
            let masks = if dropout {
                fixed_masks(layers, seed + 200)
            } else {
                Vec::new()
            };
            let drop = dropout.then(|| Dropout::from_masks(masks.clone()));
            let mut tr = Trace::default();
            let mut g = p.zeros_like();
            let e = rnn::train_step(&p, &batch, &mut tr, bptt, drop.as_ref(), &mut g);
            // Truncation holds every layer's state fixed where a window begins.
            let detach: Vec<(usize, StackStep)> = match bptt {
                None => Vec::new(),
                Some(k) => {
                    let (_, hs, cs, _) = naive_stack(&p, cell, &batch, &masks, &[], None);
                    (1..=T)
                        .filter(|j| (T - j).is_multiple_of(k))
                        .map(|j| {
                            let per_layer = (0..layers)
                                .map(|l| (hs[l * (T + 1) + j].clone(), cs[l][j].clone()))
                                .collect();
                            (j, per_layer)
                        })
                        .collect()
                }
            };
            let (e_ref, ..) = naive_stack(&p, cell, &batch, &masks, &detach, None);
            assert!(
                (e - e_ref).abs() <= 1e-12 * e_ref.abs().max(1.0),
                "{cell:?} ×{layers}: loss {e} vs naive {e_ref}"
            );
            // ε = 1e-4 for every cell: a stack's loss sums more terms, and with ReLU's 1e-5 its
            // rounding noise (one unit in the last place of E over 12ε, 2.2e-11) reached the
            // 1e-11 asked of an exact zero (a dead unit's); entries whose stencil crosses a kink
            // are skipped as before.
            let (err, name) = max_rel_error_with(
                &p,
                &g,
                cell,
                &|q| {
                    let (e, hs, ..) = naive_stack(q, cell, &batch, &masks, &detach, None);
                    (e, hs)
                },
                1e-4,
            );
            println!(
                "{cell:?} layers={layers} residual={residual} dropout={dropout} bptt={bptt:?}: max rel err = {err:.2e} (in {name})"
            );
            assert!(err < 1e-6, "{cell:?} ×{layers}: relative error {err:e} in {name}");
            worst = worst.max(err);
        }
    }
    println!("largest relative error over all stacks: {worst:.2e}");
}

/// A stack's probe: ‖∂E_T/∂h⁽ˡ⁾_{T−d}‖ for every layer, averaged over sequences, against finite
/// differences of each sequence's last-step loss with respect to that layer's state; and the
/// depth factor from it.
#[test]
fn stack_probe_matches_finite_differences() {
    for (cell, residual) in [
        (Cell::Rnn(Activation::Tanh), false),
        (Cell::Lstm, true),
        (Cell::Gru, false),
    ] {
        let layers = 3;
        let p = stack_params(cell, layers, residual, O, 61);
        let batch = batch(true, false, false, D, O, 62);
        let probed = rnn::probe(&p, &batch, &mut Trace::default(), None);
        assert_eq!(probed.h.len(), layers);
        let mut worst: f64 = 0.0;
        for (l, logs) in probed.h.iter().enumerate() {
            assert_eq!(logs.len(), T);
            for d in [0, 1, 5, T - 1] {
                let k = T - d;
                let mut mean = 0.0;
                for b in 0..B {
                    let mut sq = 0.0;
                    for i in 0..H {
                        let dk = central_difference(
                            &|eps| naive_stack(&p, cell, &batch, &[], &[], Some((l, k, b, i, eps))).3[b],
                            1e-4,
                        );
                        sq += dk * dk;
                    }
                    mean += sq.sqrt() / B as f64;
                }
                let probed = logs[d].exp();
                if mean > 1e-4 {
                    let rel = (probed - mean).abs() / mean;
                    worst = worst.max(rel);
                    assert!(rel < 1e-6, "{cell:?} layer {l} d={d}: probe {probed:e} vs fd {mean:e}");
                } else {
                    assert!((probed - mean).abs() < 1e-10, "{cell:?} layer {l} d={d}");
                }
            }
        }
        let depth = rnn::depth_factor(&probed.h).expect("three layers");
        let want = ((probed.h[0][0] - probed.h[2][0]) / 2.0).exp();
        assert!((depth - want).abs() <= 1e-12 * want, "{depth} vs {want}");
        println!("{cell:?} residual={residual}: stack probe max rel err = {worst:.2e}; depth factor {depth:.4}");
    }
}
