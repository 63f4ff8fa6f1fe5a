//! Backpropagation through time checked against central finite differences in f64.
//!
//! The reference is a deliberately naive scalar implementation of the same equations
//! (`h_t = U x_t + W s_{t−1} + b`, `s_t = σ(h_t)`, `net = V s + c`), written with plain loops
//! and sharing no code with the batched core, so a mistake in the core's matrix layout would
//! show up here. Derivatives are the fourth-order central difference
//! (−f(x+2ε) + 8f(x+ε) − 8f(x−ε) + f(x−2ε)) / 12ε with ε = 1e-4 (1e-5 for ReLU): truncation
//! error O(ε⁴) and rounding error O(1e-16/ε) ≈ 1e-12, far below the 1e-6 relative tolerance
//! asked of every entry. The denominator of a relative error is floored at 1e-5, so entries
//! smaller than that (a dead ReLU unit's exact zeros) must agree to 1e-11 in absolute terms.

// The reference is written with index loops on purpose: it should read like the equations.
#![allow(clippy::needless_range_loop)]

use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runner::rnn::{self, Activation, Batch, Init, Inputs, Params, RnnConfig, Targets, Trace};

const ACTIVATIONS: [Activation; 4] = [
    Activation::Tanh,
    Activation::Sigmoid,
    Activation::Relu,
    Activation::Identity,
];
const T: usize = 20;
const B: usize = 3;
const D: usize = 3;
const H: usize = 5;
const O: usize = 2;

/// Naive forward: per-sequence state vectors, returns (E, states) where states[t][b] = s_t.
/// `fixed` feeds the recurrence a given value of s_j (a constant: the state is detached there)
/// at the listed steps, while the output at step j still sees the live s_j;
/// `bump` adds a perturbation to one component of s_k of one sequence.
fn naive(
    p: &Params,
    act: Activation,
    batch: &Batch,
    fixed: &[(usize, Vec<Vec<f64>>)],
    bump: Option<(usize, usize, usize, f64)>,
) -> (f64, Vec<Vec<Vec<f64>>>, Vec<f64>) {
    let (t_len, b_len) = batch.inputs.dims();
    let (h, o) = (p.w.nrows(), p.v.nrows());
    let mut states = vec![vec![vec![0.0; h]; b_len]; t_len + 1];
    for t in 1..=t_len {
        for b in 0..b_len {
            for i in 0..h {
                let mut z = p.b[i];
                match &batch.inputs {
                    Inputs::Dense(x) => (0..x.dim().2).for_each(|d| z += p.u[[i, d]] * x[[t - 1, b, d]]),
                    Inputs::OneHot(x) => z += p.u[[i, x[[t - 1, b]]]],
                }
                // The recurrence reads s_{t−1}, or its frozen value where the state is detached.
                let prev = fixed
                    .iter()
                    .find(|(j, _)| *j == t - 1)
                    .map_or(&states[t - 1][b], |(_, v)| &v[b]);
                for j in 0..h {
                    z += p.w[[i, j]] * prev[j];
                }
                states[t][b][i] = act.forward(z);
            }
        }
        if let Some((k, b, i, eps)) = bump
            && k == t
        {
            states[t][b][i] += eps;
        }
    }
    // Per-sequence loss at each loss-carrying step.
    let l = batch.targets.steps();
    let mut total = 0.0;
    let mut last_per_seq = vec![0.0; b_len];
    for step in 0..l {
        let t = t_len - l + step + 1;
        for b in 0..b_len {
            let net: Vec<f64> = (0..o)
                .map(|k| p.c[k] + (0..h).map(|j| p.v[[k, j]] * states[t][b][j]).sum::<f64>())
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
    (total / (l * b_len) as f64, states, last_per_seq)
}

fn params(act: Activation, d: usize, o: usize, seed: u64) -> Params {
    let cfg = RnnConfig {
        input: d,
        hidden: H,
        output: o,
        activation: act,
        init: Init::Normal,
        init_io: Init::Normal,
        std: 0.35,
        scale: 1.0,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = cfg.init(&mut rng);
    // Non-zero biases so that their gradients are exercised away from the initial point.
    p.b.mapv_inplace(|_| rng.random_range(-0.3..0.3));
    p.c.mapv_inplace(|_| rng.random_range(-0.3..0.3));
    p
}

fn batch(dense: bool, classes: bool, every_step: bool, d: usize, o: usize, seed: u64) -> Batch {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let inputs = if dense {
        Inputs::Dense(Array3::from_shape_simple_fn((T, B, d), || rng.random_range(-1.0..1.0)))
    } else {
        Inputs::OneHot(Array2::from_shape_simple_fn((T, B), || rng.random_range(0..d)))
    };
    let l = if every_step { T } else { 1 };
    let targets = if classes {
        Targets::Classes(Array2::from_shape_simple_fn((l, B), || rng.random_range(0..o)))
    } else {
        Targets::Values(Array3::from_shape_simple_fn((l, B, o), || rng.random_range(-1.0..1.0)))
    };
    Batch { inputs, targets }
}

/// f'(0) by the fourth-order central difference with step `eps`.
fn central_difference(f: &dyn Fn(f64) -> f64, eps: f64) -> f64 {
    (-f(2.0 * eps) + 8.0 * f(eps) - 8.0 * f(-eps) + f(-2.0 * eps)) / (12.0 * eps)
}

/// The difference step: 1e-4, or 1e-5 for ReLU, whose kinks a wider stencil crosses more often.
fn step_for(act: Activation) -> f64 {
    if act == Activation::Relu { 1e-5 } else { 1e-4 }
}

/// states[t][b][i] = s_t of sequence b, unit i.
type States = Vec<Vec<Vec<f64>>>;

/// Which units are active (s > 0) at every step: for ReLU, the region of parameter space
/// inside which the loss is smooth.
type Region = Vec<bool>;

fn region(act: Activation, states: &[Vec<Vec<f64>>]) -> Region {
    if act != Activation::Relu {
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
    act: Activation,
    loss: &dyn Fn(&Params) -> (f64, States),
) -> (f64, &'static str) {
    let names = ["U", "W", "b", "V", "c"];
    let mut worst = (0.0, "");
    let base = region(act, &loss(p).1);
    let (mut skipped, mut total) = (0, 0);
    for (ti, name) in names.iter().enumerate() {
        for i in 0..p.slices()[ti].len() {
            total += 1;
            let crosses_kink = std::cell::Cell::new(false);
            let numeric = central_difference(
                &|eps| {
                    let mut q = p.clone();
                    q.slices_mut()[ti][i] += eps;
                    let (e, states) = loss(&q);
                    if region(act, &states) != base {
                        crosses_kink.set(true);
                    }
                    e
                },
                step_for(act),
            );
            if crosses_kink.get() {
                skipped += 1;
                continue;
            }
            let a = analytic.slices()[ti][i];
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

fn check(act: Activation, dense: bool, classes: bool, every_step: bool, seed: u64) -> f64 {
    let (d, o) = if classes { (D, 4) } else { (D, O) };
    let p = params(act, d, o, seed);
    let batch = batch(dense, classes, every_step, d, o, seed + 100);
    let mut tr = Trace::default();
    let e = rnn::forward(&p, act, &batch, &mut tr);
    let (e_ref, _, _) = naive(&p, act, &batch, &[], None);
    assert!(
        (e - e_ref).abs() <= 1e-12 * e_ref.abs().max(1.0),
        "forward {act:?}: {e} vs naive {e_ref}"
    );
    let mut g = p.zeros_like();
    rnn::backward(&p, act, &batch, &mut tr, None, &mut g);
    let (err, name) = max_rel_error(&p, &g, act, &|q| {
        let (e, states, _) = naive(q, act, &batch, &[], None);
        (e, states)
    });
    println!("{act:?} dense={dense} classes={classes} every_step={every_step}: max rel err = {err:.2e} (in {name})");
    assert!(err < 1e-6, "{act:?}: relative error {err:e} in {name}");
    err
}

#[test]
fn full_bptt_matches_finite_differences_for_every_activation_head_and_loss_placement() {
    let mut worst: f64 = 0.0;
    for (i, act) in ACTIVATIONS.into_iter().enumerate() {
        for classes in [false, true] {
            for every_step in [false, true] {
                // Dense inputs with the MSE head and one-hot with cross-entropy, plus the
                // crossed pairs on alternate seeds so all four input/head pairings are covered.
                let dense = !classes ^ (i % 2 == 1);
                worst = worst.max(check(act, dense, classes, every_step, 7 + i as u64));
            }
        }
    }
    println!("largest relative error over all cases: {worst:.2e}");
}

#[test]
fn backward_adds_into_the_gradient() {
    let act = Activation::Tanh;
    let p = params(act, D, O, 3);
    let batch = batch(true, false, true, D, O, 4);
    let mut tr = Trace::default();
    rnn::forward(&p, act, &batch, &mut tr);
    let mut once = p.zeros_like();
    rnn::backward(&p, act, &batch, &mut tr, None, &mut once);
    let mut twice = once.clone();
    rnn::backward(&p, act, &batch, &mut tr, None, &mut twice);
    for (a, b) in once.slices().iter().zip(twice.slices()) {
        for (x, y) in a.iter().zip(b) {
            assert!((2.0 * x - y).abs() <= 1e-15 * x.abs().max(1e-300));
        }
    }
}

/// Truncated BPTT with window k is, by definition, the exact gradient of the loss in which
/// every state entering a window (s_j with (T − j) divisible by k) is a constant. The reference
/// holds those states fixed at their unperturbed values while differentiating.
#[test]
fn truncated_bptt_matches_its_definition() {
    for act in ACTIVATIONS {
        for (k, every_step) in [(1, true), (4, true), (7, true), (5, false), (19, false)] {
            let p = params(act, D, O, 11);
            let batch = batch(true, false, every_step, D, O, 12);
            let mut tr = Trace::default();
            rnn::forward(&p, act, &batch, &mut tr);
            let mut g = p.zeros_like();
            rnn::backward(&p, act, &batch, &mut tr, Some(k), &mut g);
            let (_, states, _) = naive(&p, act, &batch, &[], None);
            let fixed: Vec<(usize, Vec<Vec<f64>>)> = (1..=T)
                .filter(|j| (T - j).is_multiple_of(k))
                .map(|j| (j, states[j].clone()))
                .collect();
            let (err, name) = max_rel_error(&p, &g, act, &|q| {
                let (e, states, _) = naive(q, act, &batch, &fixed, None);
                (e, states)
            });
            println!("{act:?} bptt={k} every_step={every_step}: max rel err = {err:.2e} (in {name})");
            assert!(err < 1e-6, "{act:?} k={k}: relative error {err:e} in {name}");
            // And it really is a truncation: it differs from the full gradient.
            let mut full = p.zeros_like();
            rnn::backward(&p, act, &batch, &mut tr, None, &mut full);
            assert_ne!(full.u, g.u);
        }
    }
}

/// The probe's ‖∂E_T/∂s_k‖, averaged over sequences, against finite differences of each
/// sequence's last-step loss with respect to its own state s_k.
#[test]
fn probe_matches_finite_differences_of_the_last_step_loss() {
    for act in ACTIVATIONS {
        for (classes, every_step) in [(false, false), (true, true)] {
            let o = if classes { 4 } else { O };
            let p = params(act, D, o, 21);
            let batch = batch(true, classes, every_step, D, o, 22);
            let mut tr = Trace::default();
            let logs = rnn::probe(&p, act, &batch, &mut tr);
            assert_eq!(logs.len(), T);
            let mut worst: f64 = 0.0;
            let mut checked = 0;
            for d in 0..T {
                let k = T - d;
                let mut mean = 0.0;
                for b in 0..B {
                    let mut sq = 0.0;
                    for i in 0..H {
                        let dk = central_difference(
                            &|eps| naive(&p, act, &batch, &[], Some((k, b, i, eps))).2[b],
                            step_for(act),
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
                    assert!(rel < 1e-6, "{act:?} d={d}: probe {probed:e} vs fd {mean:e}");
                } else {
                    assert!(
                        (probed - mean).abs() < 1e-10,
                        "{act:?} d={d}: probe {probed:e} vs fd {mean:e}"
                    );
                }
            }
            println!("{act:?} classes={classes}: probe max rel err = {worst:.2e} over {checked} distances");
            assert!(checked >= 3, "too few distances above the noise floor to test");
        }
    }
}
