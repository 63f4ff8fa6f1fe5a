//! The cells built against vanishing gradients since 2015 (IndRNN, expRNN, coRNN,
//! AntisymmetricRNN): backpropagation through time checked against central finite differences
//! in f64, one layer and stacks (plain, residual, with fixed dropout masks, truncated BPTT).
//!
//! The reference is a naive scalar implementation of each cell's equations (docs/models.md),
//! sharing no code with the batched core: its own matrix exponential (a Taylor series of A/2^s
//! to 30 terms, squared back), its own loops. Derivatives are the fourth-order central
//! difference with ε = 1e-4 (ReLU and modReLU: entries whose stencil crosses a kink, where a
//! unit switches on or off, are skipped, at most 5 %). Also: the expRNN's W stays orthogonal
//! over 1,000 updates, and the IndRNN's |u| stays within `recurrent_max`.

// References computed independently of the code under test, with the C library's functions.
#![allow(clippy::disallowed_methods)]
// The reference is written with index loops on purpose: it should read like the equations.
#![allow(clippy::needless_range_loop)]

mod common;

use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runner::rnn::{
    self, Activation, Batch, Cell, CellInit, Coefs, Dropout, Init, Inputs, Params, RnnConfig, Role, Targets, Trace,
};

const T: usize = 12;
const B: usize = 3;
const D: usize = 3;
const H: usize = 4;
const O: usize = 2;

/// The new cells, with coefficients that make every term matter over T steps.
fn cells() -> [Cell; 5] {
    [
        Cell::IndRnn(Activation::Tanh),
        Cell::IndRnn(Activation::Relu),
        Cell::ExpRnn,
        Cell::CoRnn(Coefs {
            dt: 0.3,
            gamma: 1.5,
            epsilon: 0.7,
        }),
        Cell::Antisymmetric(Coefs {
            dt: 0.0,
            gamma: 0.2,
            epsilon: 0.5,
        }),
    ]
}

/// Whether the loss has kinks (ReLU, modReLU) where a unit switches on or off.
fn kinked(cell: Cell) -> bool {
    matches!(cell, Cell::IndRnn(Activation::Relu) | Cell::ExpRnn)
}

/// Dense (n × n) product.
fn mul(a: &[Vec<f64>], b: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = a.len();
    (0..n)
        .map(|i| (0..n).map(|j| (0..n).map(|k| a[i][k] * b[k][j]).sum()).collect())
        .collect()
}

/// exp(A) by scaling and squaring a 30-term Taylor series (independent of the core's Padé).
fn expm_naive(a: &[Vec<f64>]) -> Vec<Vec<f64>> {
    let n = a.len();
    let norm: f64 = a.iter().flatten().map(|x| x.abs()).sum();
    let mut s = 0;
    while norm / f64::from(1 << s) > 0.25 {
        s += 1;
    }
    let x: Vec<Vec<f64>> = a
        .iter()
        .map(|r| r.iter().map(|v| v / f64::from(1 << s)).collect())
        .collect();
    let eye: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| f64::from(u8::from(i == j))).collect())
        .collect();
    let (mut sum, mut term) = (eye.clone(), eye);
    for k in 1..30 {
        term = mul(&term, &x)
            .into_iter()
            .map(|r| r.into_iter().map(|v| v / k as f64).collect())
            .collect();
        for i in 0..n {
            for j in 0..n {
                sum[i][j] += term[i][j];
            }
        }
    }
    for _ in 0..s {
        sum = mul(&sum, &sum);
    }
    sum
}

/// A layer's tensors by name, as plain nested vectors.
struct Naive {
    cell: Cell,
    /// (H, D) U.
    u: Vec<Vec<f64>>,
    /// (H, H) the recurrent matrix the equations use: W, exp(A), W − Wᵀ − γI (empty for the IndRNN).
    m: Vec<Vec<f64>>,
    /// (H, H) the coRNN's Wz.
    wz: Vec<Vec<f64>>,
    /// (H) b (the expRNN's modReLU bias).
    b: Vec<f64>,
    /// (H) the IndRNN's u.
    diag: Vec<f64>,
}

fn naive_layer(layer: &runner::rnn::Layer) -> Naive {
    let cell = layer.cell();
    let h = layer.hidden();
    let mut t = std::collections::HashMap::new();
    for (spec, x) in layer.tensors() {
        t.insert(spec.name, x.to_vec());
    }
    let rows = |x: &Vec<f64>, c: usize| x.chunks(c).map(<[f64]>::to_vec).collect::<Vec<_>>();
    let d = t["U"].len() / h;
    let w = t.get("W").or(t.get("P")).map(|w| rows(w, h));
    let m = match (cell, w) {
        (Cell::ExpRnn, Some(p)) => {
            // A = P − Pᵀ over P's strict upper triangle.
            let a: Vec<Vec<f64>> = (0..h)
                .map(|i| {
                    (0..h)
                        .map(|j| {
                            if i < j {
                                p[i][j]
                            } else if i > j {
                                -p[j][i]
                            } else {
                                0.0
                            }
                        })
                        .collect()
                })
                .collect();
            expm_naive(&a)
        }
        (Cell::Antisymmetric(c), Some(w)) => (0..h)
            .map(|i| {
                (0..h)
                    .map(|j| w[i][j] - w[j][i] - if i == j { c.gamma } else { 0.0 })
                    .collect()
            })
            .collect(),
        (_, Some(w)) => w,
        (_, None) => Vec::new(),
    };
    Naive {
        cell,
        u: rows(&t["U"], d),
        m,
        wz: t.get("Wz").map(|w| rows(w, h)).unwrap_or_default(),
        b: t["b"].clone(),
        diag: t.get("u").cloned().unwrap_or_default(),
    }
}

/// One step of one sequence: (h_{t−1}, z_{t−1}) and the input x_t to (h_t, z_t) (z: the coRNN's
/// second state, empty for the others).
fn naive_step(n: &Naive, x: &[f64], h: &[f64], z: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let hn = h.len();
    let ux = |i: usize| (0..x.len()).map(|k| n.u[i][k] * x[k]).sum::<f64>();
    let mh = |i: usize| (0..hn).map(|k| n.m[i][k] * h[k]).sum::<f64>();
    match n.cell {
        Cell::IndRnn(act) => {
            let out = (0..hn)
                .map(|i| act.forward(ux(i) + n.b[i] + n.diag[i] * h[i]))
                .collect();
            (out, Vec::new())
        }
        Cell::ExpRnn => {
            let out = (0..hn)
                .map(|i| {
                    let pre = ux(i) + mh(i);
                    pre.signum() * (pre.abs() + n.b[i]).max(0.0) * f64::from(u8::from(pre != 0.0))
                })
                .collect();
            (out, Vec::new())
        }
        Cell::CoRnn(c) => {
            let zn: Vec<f64> = (0..hn)
                .map(|i| {
                    let wz = (0..hn).map(|k| n.wz[i][k] * z[k]).sum::<f64>();
                    let a = (ux(i) + mh(i) + wz + n.b[i]).tanh();
                    z[i] + c.dt * (a - c.gamma * h[i] - c.epsilon * z[i])
                })
                .collect();
            let yn = (0..hn).map(|i| h[i] + c.dt * zn[i]).collect();
            (yn, zn)
        }
        Cell::Antisymmetric(c) => {
            let out = (0..hn)
                .map(|i| h[i] + c.epsilon * (mh(i) + ux(i) + n.b[i]).tanh())
                .collect();
            (out, Vec::new())
        }
        _ => unreachable!("the older cells are checked in gradcheck.rs"),
    }
}

/// Every layer's (h, z) of every sequence at one step: [layer][sequence].
type Layers = Vec<Vec<(Vec<f64>, Vec<f64>)>>;

/// The states every layer enters a window with, where truncated BPTT holds them fixed:
/// (step j, the states).
type Frozen = Vec<(usize, Layers)>;

/// The loss of `p` on `batch` by the naive equations, with dropout masks between layers, and
/// every layer's states entering step j replaced by `frozen`'s where given; also every state
/// (for the kink check) and, for building `frozen`, the states entering every step.
fn naive(p: &Params, batch: &Batch, masks: &[Array3<f64>], frozen: &Frozen) -> (f64, Vec<f64>, Vec<Layers>) {
    let (e, trace, all, _) = naive_bumped(p, batch, masks, frozen, None);
    (e, trace, all)
}

/// A state of the first layer moved by δ at step k: (k, sequence, unit, δ, the second state
/// (the coRNN's z, moved before y_k reads it) rather than the first).
type Bump = (usize, usize, usize, f64, bool);

/// [`naive`], with one state moved ([`Bump`]), also returning each sequence's loss at the last
/// loss-carrying step (the probe's E_T).
fn naive_bumped(
    p: &Params,
    batch: &Batch,
    masks: &[Array3<f64>],
    frozen: &Frozen,
    bump: Option<Bump>,
) -> (f64, Vec<f64>, Vec<Layers>, Vec<f64>) {
    let layers: Vec<Naive> = p.layers().iter().map(naive_layer).collect();
    let h = p.hidden();
    let z0 = |n: &Naive| {
        if matches!(n.cell, Cell::CoRnn(_)) {
            vec![0.0; h]
        } else {
            Vec::new()
        }
    };
    let mut states: Layers = layers.iter().map(|n| vec![(vec![0.0; h], z0(n)); B]).collect();
    let mut all = Vec::new(); // [step][layer][seq] the states entering each step
    let mut tops = vec![vec![Vec::new(); B]; T]; // the head's input at each step
    let mut trace = Vec::new();
    for t in 0..T {
        if let Some((_, f)) = frozen.iter().find(|(j, _)| *j == t + 1) {
            states = f.clone();
        }
        all.push(states.clone());
        for s in 0..B {
            let mut x: Vec<f64> = match &batch.inputs {
                Inputs::Dense(x) => (0..D).map(|k| x[[t, s, k]]).collect(),
                Inputs::OneHot(x) => (0..D).map(|k| f64::from(u8::from(x[[t, s]] == k))).collect(),
            };
            for (l, n) in layers.iter().enumerate() {
                let (hp, zp) = &states[l][s];
                let (mut hn, mut zn) = naive_step(n, &x, hp, zp);
                if let Some((k, seq, i, delta, second)) = bump
                    && (k, seq, l) == (t + 1, s, 0)
                {
                    if let (true, Cell::CoRnn(c)) = (second, n.cell) {
                        // z_t moved before y_t = y_{t−1} + Δt·z_t reads it (as the LSTM's c_t
                        // before h_t = o·tanh(c_t)): the probe's ∂E_T/∂z_t.
                        zn[i] += delta;
                        hn[i] += c.dt * delta;
                    } else {
                        hn[i] += delta;
                    }
                }
                trace.extend(hn.iter().copied());
                let mut y = if p.residual() && l > 0 {
                    x.iter().zip(&hn).map(|(a, b)| a + b).collect()
                } else {
                    hn.clone()
                };
                if l + 1 < layers.len() && !masks.is_empty() {
                    y.iter_mut().enumerate().for_each(|(i, v)| *v *= masks[l][[t, s, i]]);
                }
                states[l][s] = (hn, zn);
                x = y;
            }
            tops[t][s] = x;
        }
    }
    let l = batch.targets.steps();
    let (mut total, mut last) = (0.0, vec![0.0; B]);
    for step in 0..l {
        let t = T - l + step;
        for s in 0..B {
            let y = &tops[t][s];
            let net: Vec<f64> = (0..p.v.nrows())
                .map(|k| p.c[k] + (0..h).map(|i| p.v[[k, i]] * y[i]).sum::<f64>())
                .collect();
            let e = match &batch.targets {
                Targets::Values(v) => {
                    (0..net.len()).map(|k| (net[k] - v[[step, s, k]]).powi(2)).sum::<f64>() / net.len() as f64
                }
                Targets::Classes(c) => {
                    let m = net.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                    m + net.iter().map(|v| (v - m).exp()).sum::<f64>().ln() - net[c[[step, s]]]
                }
            };
            total += e;
            last[s] = e;
        }
    }
    (total / (l * B) as f64, trace, all, last)
}

fn config(cell: Cell, layers: usize, residual: bool, o: usize) -> RnnConfig {
    RnnConfig {
        input: D,
        hidden: H,
        output: o,
        cell,
        init: if cell == Cell::ExpRnn {
            Init::Henaff
        } else {
            Init::Normal
        },
        init_io: Init::Normal,
        std: 0.6,
        scale: 1.0,
        forget_bias: 1.0,
        dtype: runner::real::Dtype::F64,
        layers,
        residual,
        dropout: 0.0,
        cell_init: CellInit {
            recurrent_max: 1.2,
            top_range: 1.1,
            input_std: None,
            recurrent_std: None,
        },
    }
}

fn params(cell: Cell, layers: usize, residual: bool, o: usize, seed: u64) -> Params {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = config(cell, layers, residual, o).init(&mut rng);
    // Every entry away from its initial pattern: P's lower triangle and diagonal too (their
    // gradient must be exactly zero), non-zero biases.
    for x in p.slices_mut() {
        x.iter_mut().for_each(|v| *v += rng.random_range(-0.3..0.3));
    }
    p
}

fn batch(dense: bool, classes: bool, every_step: bool, o: usize, seed: u64) -> Batch {
    common::random_batch((T, B, D, o), (dense, classes, every_step), seed)
}

/// Largest entry-wise relative error |a − n| / max(|a|, |n|, 1e-4) (entries below 1e-4 must
/// agree to 1e-10: the loss's rounding over 12ε is about 3e-11) of the analytic gradient
/// `g` against the fourth-order central difference of `loss` over every entry of `p`; entries
/// whose stencil changes which units are on (`trace`'s signs, for kinked cells) are skipped.
fn max_rel_error(p: &Params, g: &Params, kinks: bool, loss: &dyn Fn(&Params) -> (f64, Vec<f64>)) -> (f64, String) {
    let eps = 1e-4;
    let (_, base) = loss(p);
    let signs = |t: &[f64]| t.iter().map(|&v| v > 0.0).collect::<Vec<_>>();
    let names: Vec<&str> = p.names().collect();
    let (mut worst, mut at, mut skipped, mut total) = (0.0f64, String::new(), 0, 0);
    let grads: Vec<Vec<f64>> = g.slices().map(<[f64]>::to_vec).collect();
    for (ti, slice) in p.slices().enumerate() {
        for i in 0..slice.len() {
            total += 1;
            let shifted = |d: f64| {
                let mut q = p.clone();
                q.slices_mut().nth(ti).expect("a tensor")[i] += d;
                loss(&q)
            };
            let f = [shifted(2.0 * eps), shifted(eps), shifted(-eps), shifted(-2.0 * eps)];
            if kinks && f.iter().any(|(_, t)| signs(t) != signs(&base)) {
                skipped += 1;
                continue;
            }
            let num = (-f[0].0 + 8.0 * f[1].0 - 8.0 * f[2].0 + f[3].0) / (12.0 * eps);
            let ana = grads[ti][i];
            let err = (ana - num).abs() / ana.abs().max(num.abs()).max(1e-4);
            if err > worst {
                (worst, at) = (
                    err,
                    format!("{}[{i}] (analytic {ana:e}, difference {num:e})", names[ti]),
                );
            }
        }
    }
    assert!(skipped * 20 <= total, "{skipped} of {total} entries skipped at kinks");
    (worst, at)
}

/// One layer and stacks of each new cell: train_step's loss against the naive one (to 1e-12)
/// and its gradient against finite differences (to 1e-6), full and truncated.
#[test]
fn new_cells_match_finite_differences() {
    let mut worst: f64 = 0.0;
    for (i, cell) in cells().into_iter().enumerate() {
        for (j, (layers, residual, dropout, bptt)) in [
            (1, false, false, None),
            (1, false, false, Some(5)),
            (2, false, false, None),
            (2, true, true, None),
            (2, false, true, Some(4)),
        ]
        .into_iter()
        .enumerate()
        {
            let seed = 7 + 10 * i as u64 + j as u64;
            let (classes, every_step) = (j % 2 == 1, j >= 2);
            let o = if classes { 4 } else { O };
            let p = params(cell, layers, residual, o, seed);
            let batch = batch((i + j) % 2 == 0, classes, every_step, o, seed + 100);
            let masks: Vec<Array3<f64>> = if dropout {
                common::fixed_masks((T, B, H), layers, seed + 200)
            } else {
                Vec::new()
            };
            let drop = dropout.then(|| Dropout::from_masks(masks.clone()));
            let (mut tr, mut g) = (Trace::default(), p.zeros_like());
            let e = rnn::train_step(&p, &batch, &mut tr, bptt, drop.as_ref(), &mut g);
            // Truncation holds every layer's state fixed where a window begins.
            let frozen: Frozen = match bptt {
                None => Vec::new(),
                Some(k) => {
                    let (.., all) = naive(&p, &batch, &masks, &Vec::new());
                    (2..=T)
                        .filter(|j| (T + 1 - j).is_multiple_of(k))
                        .map(|j| (j, all[j - 1].clone()))
                        .collect()
                }
            };
            let (e_ref, ..) = naive(&p, &batch, &masks, &frozen);
            assert!(
                (e - e_ref).abs() <= 1e-12 * e_ref.abs().max(1.0),
                "{cell:?}: loss {e} vs naive {e_ref}"
            );
            let (err, name) = max_rel_error(&p, &g, kinked(cell), &|q| {
                let (e, trace, _) = naive(q, &batch, &masks, &frozen);
                (e, trace)
            });
            println!(
                "{cell:?} layers={layers} residual={residual} dropout={dropout} bptt={bptt:?}: max rel err = {err:.2e} (in {name})"
            );
            assert!(
                err < 1e-6,
                "{cell:?} ×{layers} bptt {bptt:?}: relative error {err:e} in {name}"
            );
            worst = worst.max(err);
        }
    }
    println!("largest relative error over the new cells: {worst:.2e}");
}

/// The expRNN's W = exp(A) stays orthogonal to rounding however far training moves P: 1,000
/// plain SGD updates with a large rate, ‖WᵀW − I‖_max ≤ 1e-10 in f64 after them.
#[test]
fn exprnn_stays_orthogonal_over_a_thousand_updates() {
    let (o, steps) = (O, 1000);
    let mut p = params(Cell::ExpRnn, 1, false, o, 3);
    let mut opt = runner::optim::Optimizer::new(runner::optim::OptimConfig::Sgd {
        momentum: 0.0,
        nesterov: false,
    });
    let (mut tr, mut g) = (Trace::default(), p.zeros_like());
    let mut moved = 0.0;
    for step in 0..steps {
        let b = batch(true, false, false, o, 1000 + step);
        g.fill_zero();
        rnn::train_step(&p, &b, &mut tr, None, None, &mut g);
        let before: f64 = p.layers()[0]
            .get(Role::Recurrent)
            .unwrap()
            .iter()
            .map(|x| x.abs())
            .sum();
        opt.step_split(&mut p, &g, 0.5, Some(2.0));
        let after: f64 = p.layers()[0]
            .get(Role::Recurrent)
            .unwrap()
            .iter()
            .map(|x| x.abs())
            .sum();
        moved += (after - before).abs();
    }
    let w = p.layers()[0].recurrent_matrix();
    let gram = w.t().dot(&w);
    let err = (&gram - &Array2::<f64>::eye(H))
        .iter()
        .fold(0.0f64, |a, &b| a.max(b.abs()));
    println!("after {steps} updates (P moved by Σ|Δ| = {moved:.2}): max |WᵀW − I| = {err:.2e}");
    assert!(moved > 1.0, "P must move for the test to mean anything");
    assert!(err <= 1e-10, "W lost orthogonality: {err:e}");
}

/// The probe, ‖∂E_T/∂h_{T−d}‖ averaged over sequences (and the coRNN's ‖∂E_T/∂z_{T−d}‖), against
/// central differences of each sequence's last-step loss with respect to the naive states.
#[test]
fn probe_matches_finite_differences_for_the_new_cells() {
    for (n, cell) in cells().into_iter().enumerate() {
        let p = params(cell, 1, false, O, 50 + n as u64);
        let batch = batch(true, false, false, O, 60 + n as u64);
        let probed = rnn::probe(&p, &batch, &mut Trace::default(), None);
        assert_eq!(probed.top_c().is_some(), matches!(cell, Cell::CoRnn(_)), "{cell:?}");
        let mut states = vec![(false, probed.top())];
        if let Some(z) = probed.top_c() {
            states.push((true, z));
        }
        let (mut worst, mut checked) = (0.0f64, 0);
        for (second, logs) in states {
            for d in 0..T {
                let k = T - d;
                let mut mean = 0.0;
                for b in 0..B {
                    let sq: f64 = (0..H)
                        .map(|i| {
                            let e = |delta: f64| {
                                naive_bumped(&p, &batch, &[], &Vec::new(), Some((k, b, i, delta, second))).3[b]
                            };
                            let eps = 1e-5;
                            let g = (-e(2.0 * eps) + 8.0 * e(eps) - 8.0 * e(-eps) + e(-2.0 * eps)) / (12.0 * eps);
                            g * g
                        })
                        .sum();
                    mean += sq.sqrt() / B as f64;
                }
                let got = logs[d].exp();
                if mean > 1e-4 {
                    let rel = (got - mean).abs() / mean;
                    assert!(rel < 1e-6, "{cell:?} d={d}: probe {got:e} vs differences {mean:e}");
                    worst = worst.max(rel);
                    checked += 1;
                } else {
                    assert!(
                        (got - mean).abs() < 1e-10,
                        "{cell:?} d={d}: probe {got:e} vs differences {mean:e}"
                    );
                }
            }
        }
        println!("{cell:?}: probe max rel err = {worst:.2e} over {checked} distances");
        assert!(checked >= 3, "{cell:?}: too few distances above the noise floor");
    }
}
