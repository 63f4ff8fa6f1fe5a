//! The finite-time Lyapunov spectrum of the probe batch's trajectory: how the whole product of
//! Jacobians ∏ ∂z_t/∂z_{t−1} stretches and shrinks k directions of the state, not only the one
//! direction the gradient-decay probe follows.
//!
//! Definition (implemented exactly, so that others can check it). The state is z_t = h_t for
//! the plain cell and the GRU, z_t = (h_t, c_t) for the LSTM (dimension n = 2H, h first);
//! J_t = ∂z_t/∂z_{t−1} on the trajectory of a probe sequence (inputs fixed). The adjoint QR
//! iteration, per sequence:
//!
//! ```text
//! Q ← the first k columns of the identity (n × k);   every column live
//! for t = T down to 1:   (Q, R) ← QR(J_tᵀ Q) over the live columns;   S_i += ln |R_ii|
//!                        a live column with R_ii = 0 collapses: S_i = −∞, and it is dropped
//! λ_i = S_i / T           (natural log per step), then sorted: decreasing, −∞ last
//! ```
//!
//! J_tᵀ Q is a vector–Jacobian product on k vectors: each cell's backward step computes it, on
//! a trace holding k copies of the sequence, one per column. The QR is Gram–Schmidt done twice
//! (orthogonal to working precision), each live column against the live columns before it.
//!
//! A collapse: a step that is exactly singular in a direction (a ReLU unit off) can map a
//! column into the span of the columns before it, leaving R_ii = 0 (below n·ε of the column's
//! norm: nothing of it is left to f64 precision). λ_i is then −∞, and column i is dropped: set
//! to zero and left out of every later QR, so no column is held orthogonal to it. The surviving
//! columns go on as the QR iteration of the subspace that survives (a column after i takes the
//! place i left, and can grow into the direction i followed), their exponents not bent by a
//! placeholder direction. Each sequence's exponents are then put in decreasing order, the −∞
//! ones last, so that index i is the i-th largest whatever the columns' order (without a
//! collapse the iteration gives them in that order up to finite-time fluctuations, which the
//! sort also takes out). A run's exponent i is the mean over sequences of each one's i-th
//! largest (`mean_exponents`).

use ndarray::{Array2, Axis, s};

use crate::elem;
use crate::real::dot;

use super::bptt::{Entry, begin, carry_state, forward_window, step_back_stack, windows};
use super::{Batch, Params, Trace};

/// One sequence's exponents λ_1 … λ_k, natural log per step, largest first: the finite ones in
/// decreasing order, then the −∞ ones (collapsed directions), then NaN (a diverged trajectory).
pub type Exponents = Vec<f64>;

/// The first `k` Lyapunov exponents of each sequence of `batch`, in batch order, each
/// sequence's in decreasing order (the module's definition), computed in f64. `rows` bounds the
/// trace: k copies of a sequence go through it in windows of ⌊rows / k⌋ steps (at least one),
/// recomputing each window's forward pass from the state that entered it, so the spectrum needs
/// the memory of a `rows`-row trace whatever T is.
///
/// In a stack the state is every layer's, bottom first, each layer's h then its c (the LSTM's):
/// z = (h⁽⁰⁾, c⁽⁰⁾, h⁽¹⁾, c⁽¹⁾, …), dimension layers × states × H. A step's Jacobian then
/// includes each layer's reading of the new state of the layer below at the same step.
pub fn spectrum(p: &Params<f64>, batch: &Batch<f64>, k: usize, rows: usize) -> Vec<Exponents> {
    let (t_len, b, cell) = (batch.dims().0, batch.dims().1, p.cell());
    let h = p.hidden();
    let second = cell.spec().states.len() > 1; // a second state (the LSTM's c) beside h
    let per_layer = cell.spec().states.len() * h;
    let n = p.layers().len() * per_layer;
    assert!(k >= 1 && k <= n, "1 ≤ k ≤ the state dimension");
    let w = (rows / k).clamp(1, t_len);
    let wins = windows(t_len, w);
    let mut tr = Trace::<f64>::default();
    let mut out = Vec::with_capacity(b);
    // Columns of a layer's h and c within a row of Q.
    let h_of = |l: usize| s![.., l * per_layer..l * per_layer + h];
    let c_of = |l: usize| s![.., l * per_layer + h..(l + 1) * per_layer];
    for i in 0..b {
        let copies = batch.repeat_sequence(i, k);
        // Forward, keeping the state entering each window.
        begin(p, &copies, &mut tr, w);
        let mut entries: Vec<Entry<f64>> = Vec::with_capacity(wins.len());
        let mut last_len = 0;
        for &(start, end) in &wins {
            carry_state(&mut tr, last_len);
            entries.push(tr.entry());
            forward_window(p, &copies, &mut tr, (start, end), None);
            last_len = end + 1 - start;
        }
        tr.ensure_backward(cell);

        // Q = the first k columns of the identity, one column per row of (q_h | q_c | …).
        let mut q = Array2::<f64>::zeros((k, n)); // (k, n)
        for j in 0..k {
            q[[j, j]] = 1.0;
        }
        let (mut sums, mut dead) = (vec![0.0; k], vec![false; k]);
        for (wi, &(start, end)) in wins.iter().enumerate().rev() {
            if wi + 1 < wins.len() {
                tr.enter(&entries[wi]);
                forward_window(p, &copies, &mut tr, (start, end), None);
            }
            for t in (1..=end + 1 - start).rev() {
                // J_tᵀ Q: Q's h parts as dE/dh_t (and its c parts as dE/dc_t) back through
                // step t of every layer.
                for (l, stage) in tr.layers.iter_mut().enumerate() {
                    stage.dh.assign(&q.slice(h_of(l)));
                    if second {
                        stage.carry_c.assign(&q.slice(c_of(l)));
                    }
                }
                step_back_stack(p, &mut tr, t, true, None, |_, _, _| {});
                for (l, stage) in tr.layers.iter().enumerate() {
                    q.slice_mut(h_of(l)).assign(&stage.carry_h);
                    if second {
                        q.slice_mut(c_of(l)).assign(&stage.carry_c);
                    }
                }
                orthonormalise_rows(&mut q, &mut sums, &mut dead);
            }
        }
        out.push(in_decreasing_order(sums.iter().map(|s| s / t_len as f64).collect()));
    }
    out
}

/// QR of the (n × k) matrix whose columns are the live rows of `q` (those not `dead`), in
/// place: they become Q's columns, and ln |R_jj| is added to `log_r[j]`. Gram–Schmidt, each live
/// row orthogonalised twice against the live rows before it; without a dead row, the operations
/// (and bits) of the plain iteration.
///
/// Row j collapses when R_jj is 0 to working precision (below n·ε of the row's norm before
/// orthogonalisation: it lay in the span of the live rows before it, as when a ReLU unit off
/// zeroes its direction). It is marked dead, `log_r[j]` becomes −∞ and the row zero; later calls
/// skip it and no row is orthogonalised against it. A row with no finite norm (the trajectory
/// diverged) is dropped the same way with `log_r[j]` = NaN.
fn orthonormalise_rows(q: &mut Array2<f64>, log_r: &mut [f64], dead: &mut [bool]) {
    let n = q.ncols();
    for j in 0..log_r.len() {
        if dead[j] {
            continue;
        }
        let (done, mut rest) = q.view_mut().split_at(Axis(0), j);
        let mut v = rest.row_mut(0);
        let before = dot(v.view(), v.view()).sqrt();
        for _ in 0..2 {
            for (qi, &gone) in done.rows().into_iter().zip(&dead[..j]) {
                if !gone {
                    let proj = dot(qi, v.view());
                    v.scaled_add(-proj, &qi);
                }
            }
        }
        let r = dot(v.view(), v.view()).sqrt();
        if !(r.is_finite() && before.is_finite()) {
            log_r[j] = f64::NAN;
        } else if r > n as f64 * f64::EPSILON * before {
            log_r[j] += elem::ln(r);
            v.mapv_inplace(|x| x / r);
            continue;
        } else {
            log_r[j] = f64::NEG_INFINITY;
        }
        dead[j] = true;
        v.fill(0.0);
    }
}

/// A sequence's exponents in the order `spectrum.csv` gives them: largest first, the −∞ ones
/// (collapsed directions) after every finite one, NaN (a diverged trajectory) last.
fn in_decreasing_order(mut exponents: Exponents) -> Exponents {
    exponents.sort_by(|a, b| b.partial_cmp(a).unwrap_or_else(|| a.is_nan().cmp(&b.is_nan())));
    exponents
}

/// The mean over sequences of each exponent: for each i, of every sequence's i-th largest (−∞
/// if any sequence's is, NaN if any is NaN). As each sequence's are in decreasing order, so are
/// the means, with −∞ after every finite one.
pub fn mean_exponents(per_sequence: &[Exponents]) -> Exponents {
    let k = per_sequence.first().map_or(0, Vec::len);
    (0..k)
        .map(|i| per_sequence.iter().map(|e| e[i]).sum::<f64>() / per_sequence.len() as f64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::Dtype;
    use crate::rnn::{Activation, Cell, Init, Inputs, RnnConfig, Targets};
    use ndarray::{Array3, Zip};
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn config(cell: Cell, h: usize, init: Init, scale: f64) -> RnnConfig {
        RnnConfig {
            input: 3,
            hidden: h,
            output: 1,
            cell,
            init,
            init_io: Init::Xavier,
            std: 0.1,
            scale,
            forget_bias: 1.0,
            dtype: Dtype::F64,
            layers: 1,
            residual: false,
            dropout: 0.0,
            cell_init: Default::default(),
        }
    }

    /// B random sequences of T steps with 3 inputs and one target at the last step.
    fn batch(t: usize, b: usize, seed: u64) -> Batch<f64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        Batch {
            inputs: Inputs::Dense(Array3::from_shape_simple_fn((t, b, 3), || crate::rnn::normal(&mut rng))),
            targets: Targets::Values(Array3::zeros((1, b, 1))),
            accuracy_from: 0,
        }
    }

    fn params(cfg: &RnnConfig, seed: u64) -> Params<f64> {
        let mut p = cfg.init(&mut ChaCha8Rng::seed_from_u64(seed));
        p.layers_mut()[0].roles_mut().b.expect("a b").fill(0.1); // a bias, so that the trajectory is not symmetric
        p
    }

    /// ln|det A| by Gaussian elimination with partial pivoting.
    fn log_abs_det(mut a: Array2<f64>) -> f64 {
        let n = a.nrows();
        let mut sum = 0.0;
        for c in 0..n {
            let pivot = (c..n)
                .max_by(|&i, &j| a[[i, c]].abs().total_cmp(&a[[j, c]].abs()))
                .unwrap();
            if pivot != c {
                for j in 0..n {
                    a.swap([c, j], [pivot, j]);
                }
            }
            let d = a[[c, c]];
            sum += elem::ln(d.abs());
            for i in c + 1..n {
                let f = a[[i, c]] / d;
                for j in c..n {
                    let x = a[[c, j]];
                    a[[i, j]] -= f * x;
                }
            }
        }
        sum
    }

    /// The full spectrum of the plain cell sums to the mean log-determinant of its Jacobians:
    /// Σ_i λ_i = (1/T) Σ_t ln|det diag(σ′(a_t)) W| = (1/T) Σ_t Σ_j ln σ′(a_tj) + ln|det W|.
    #[test]
    fn full_spectrum_sums_to_the_log_determinant() {
        let (t, b, h) = (40, 3, 6);
        let cfg = config(Cell::Rnn(Activation::Tanh), h, Init::Xavier, 1.3);
        let p = params(&cfg, 3);
        let x = batch(t, b, 4);
        let per_seq = spectrum(&p, &x, h, 1 << 20);
        // The states, from the ordinary forward pass.
        let mut tr = Trace::default();
        super::super::forward(&p, &x, &mut tr);
        let ln_det_w = log_abs_det(p.layers()[0].roles().w.expect("a W").to_owned());
        let mut worst: f64 = 0.0;
        for (i, lambdas) in per_seq.iter().enumerate() {
            let mut s = 0.0;
            for step in 1..=t {
                for j in 0..h {
                    let y: f64 = tr.layers[0].h[[step, i, j]];
                    s += elem::ln(1.0 - y * y); // tanh′ from the output
                }
                s += ln_det_w;
            }
            let want = s / t as f64;
            let got: f64 = lambdas.iter().sum();
            worst = worst.max((got - want).abs());
            // Decreasing, as spectrum.csv gives them.
            assert!(lambdas.windows(2).all(|w| w[0] >= w[1]), "{lambdas:?}");
        }
        eprintln!("Σλ against mean ln|det J|: maxdiff = {worst:.2e}");
        assert!(worst < 1e-10, "maxdiff = {worst:e}");
    }

    /// With σ the identity and W = s·(orthogonal), every Jacobian is W: every λ_i = ln s.
    #[test]
    fn identity_cell_with_scaled_orthogonal_w_has_every_exponent_ln_s() {
        let (t, b, h, s) = (30, 2, 5, 0.8);
        let cfg = config(Cell::Rnn(Activation::Identity), h, Init::Orthogonal, s);
        let p = params(&cfg, 9);
        let per_seq = spectrum(&p, &batch(t, b, 1), h, 1 << 20);
        let worst = per_seq
            .iter()
            .flatten()
            .map(|l| (l - elem::ln(s)).abs())
            .fold(0.0, f64::max);
        eprintln!("λ_i against ln s: maxdiff = {worst:.2e}");
        assert!(worst < 1e-12, "maxdiff = {worst:e}");
    }

    /// The window the trace runs in (a truncated run's probe) changes nothing: each window's
    /// forward pass is recomputed exactly from the state that entered it.
    #[test]
    fn exponents_do_not_depend_on_the_window() {
        for cell in [Cell::Rnn(Activation::Tanh), Cell::Lstm, Cell::Gru] {
            let cfg = config(cell, 4, Init::Xavier, 1.0);
            let p = params(&cfg, 2);
            let x = batch(23, 2, 5);
            let k = 3;
            let whole = spectrum(&p, &x, k, 1 << 20);
            for rows in [k, 4 * k, 7 * k] {
                assert_eq!(spectrum(&p, &x, k, rows), whole, "{cell:?}, window {}", rows / k);
            }
            // And a batch split: each sequence's exponents are its own.
            let parts: Vec<Exponents> = x.split(1).iter().flat_map(|part| spectrum(&p, part, k, 64)).collect();
            assert_eq!(parts, whole, "{cell:?}");
        }
    }

    /// The state map of one step, z_{t−1} ↦ z_t with the input of step t fixed, by running the
    /// network forward on a one-step batch from the given state (every layer's h, then c).
    fn step_map(p: &Params<f64>, x: &Batch<f64>, t: usize, z: &[f64]) -> Vec<f64> {
        let h = p.hidden();
        let one = match &x.inputs {
            Inputs::Dense(a) => Batch {
                inputs: Inputs::Dense(a.slice(s![t - 1..t, 0..1, ..]).to_owned()),
                targets: Targets::Values(Array3::zeros((1, 1, 1))),
                accuracy_from: 0,
            },
            Inputs::OneHot(_) => unreachable!(),
        };
        let mut tr = Trace::default();
        begin(p, &one, &mut tr, 1);
        let mut at = 0;
        for stage in &mut tr.layers {
            for x in [&mut stage.h, &mut stage.c] {
                if !x.is_empty() {
                    x.slice_mut(s![0, 0, ..])
                        .assign(&ndarray::ArrayView1::from(&z[at..at + h]));
                    at += h;
                }
            }
        }
        forward_window(p, &one, &mut tr, (1, 1), None);
        let mut out = Vec::new();
        for stage in &tr.layers {
            for x in [&stage.h, &stage.c] {
                if !x.is_empty() {
                    out.extend(x.slice(s![1, 0, ..]).iter());
                }
            }
        }
        out
    }

    /// Every cell, one layer and stacks (with and without the residual path): the exponents
    /// from the cells' backward steps equal those of the same QR iteration on Jacobians taken by
    /// central differences of the state map, step by step.
    #[test]
    fn spectra_match_finite_differences_of_the_state_map() {
        let stacks = [(1, false), (2, false), (3, true)];
        let cells = [
            Cell::Rnn(Activation::Tanh),
            Cell::Lstm,
            Cell::Gru,
            Cell::IndRnn(Activation::Tanh),
            Cell::ExpRnn,
            Cell::CoRnn(crate::rnn::Coefs::CORNN),
            Cell::Antisymmetric(crate::rnn::Coefs {
                epsilon: 0.5,
                ..crate::rnn::Coefs::ANTISYMMETRIC
            }),
        ];
        for cell in cells {
            for (layers, residual) in stacks {
                let (t, h) = (8, 3);
                let cfg = RnnConfig {
                    layers,
                    residual,
                    ..config(cell, h, Init::Xavier, 1.5)
                };
                let mut p = cfg.init(&mut ChaCha8Rng::seed_from_u64(11));
                for layer in p.layers_mut() {
                    let mut roles = layer.roles_mut();
                    if let Some(b) = roles.b.as_mut() {
                        b.fill(0.1);
                    }
                    if let Some(u) = roles.own.as_mut() {
                        u.fill(0.9); // the IndRNN's u (drawn from the run's T otherwise)
                    }
                }
                let x = batch(t, 1, 6);
                let n = layers * cell.spec().states.len() * h;
                let got = &spectrum(&p, &x, n, 1 << 20)[0];
                // The trajectory z_0 … z_T.
                let mut zs = vec![vec![0.0; n]];
                for step in 1..=t {
                    let next = step_map(&p, &x, step, zs.last().unwrap());
                    zs.push(next);
                }
                let eps = 1e-6;
                let mut q = Array2::<f64>::eye(n); // rows are Q's columns
                let (mut sums, mut dead) = (vec![0.0; n], vec![false; n]);
                for step in (1..=t).rev() {
                    // J (n × n), column m = ∂z_t/∂z_{t−1,m} by central differences.
                    let mut jac = Array2::<f64>::zeros((n, n));
                    for m in 0..n {
                        let (mut up, mut down) = (zs[step - 1].clone(), zs[step - 1].clone());
                        up[m] += eps;
                        down[m] -= eps;
                        let (fu, fd) = (step_map(&p, &x, step, &up), step_map(&p, &x, step, &down));
                        for r in 0..n {
                            jac[[r, m]] = (fu[r] - fd[r]) / (2.0 * eps);
                        }
                    }
                    // Rows of q ← (Jᵀ Q)ᵀ = Qᵀ J: row j is q_jᵀ J.
                    let mut next = Array2::<f64>::zeros((n, n));
                    Zip::from(next.rows_mut())
                        .and(q.rows())
                        .for_each(|mut out, qj| out.assign(&qj.dot(&jac)));
                    q = next;
                    orthonormalise_rows(&mut q, &mut sums, &mut dead);
                }
                let want = in_decreasing_order(sums.iter().map(|s| s / t as f64).collect());
                let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
                eprintln!(
                    "{cell:?}, {layers} layers (residual {residual}): exponents against finite differences: maxdiff = {worst:.2e}"
                );
                assert!(worst < 1e-6, "{cell:?} ×{layers}: {got:?} vs {want:?}");
            }
        }
    }

    /// A ReLU cell with a diagonal W = diag(w) has diagonal Jacobians diag(relu′(a_t)) W, so its
    /// spectrum over the full state (k = H) is known in closed form: on one sequence, ln |w_i|
    /// for every unit on at every step, −∞ for every unit some step switches off; in decreasing
    /// order, the −∞ ones last. (The iteration visits the units in index order; here their
    /// factors are not sorted and some units in the middle switch off, so the order is tested,
    /// and that a collapse leaves the other columns' exponents alone. The columns stay on the
    /// axes here: the next test has a column take over a collapsed one's direction.)
    #[test]
    fn diagonal_relu_spectrum_is_known_in_closed_form() {
        let (t, h) = (30, 8);
        let cfg = config(Cell::Rnn(Activation::Relu), h, Init::Xavier, 1.0);
        let mut p = cfg.init(&mut ChaCha8Rng::seed_from_u64(4));
        let w = [0.9, 1.2, 0.5, 1.05, 0.7, 0.3, 1.1, 0.95];
        {
            let layer = p.layers_mut()[0].roles_mut();
            let mut lw = layer.w.expect("a W");
            lw.fill(0.0);
            for (i, &wi) in w.iter().enumerate() {
                lw[[i, i]] = wi;
            }
            // Units 0, 1, 3 and 6 biased on, the others near zero: some of those switch off.
            for (i, b) in layer.b.expect("a b").iter_mut().enumerate() {
                *b = if [0, 1, 3, 6].contains(&i) { 5.0 } else { 0.0 };
            }
        }
        assert_diagonal_spectrum(&p, &w, t);
    }

    /// The closed form of a one-layer ReLU cell whose Jacobians are diag(relu′(a_t)) ⊙ `factors`
    /// (a diagonal W, or the IndRNN's u): with k = H, on each of two sequences of `t` steps, the
    /// exponents are ln |factor_i| for the units on at every step and −∞ for the others, in
    /// decreasing order (to 1e-12); some units, not all, switch off.
    fn assert_diagonal_spectrum(p: &Params<f64>, factors: &[f64], t: usize) {
        let h = factors.len();
        let x = batch(t, 2, 8);
        let mut tr = Trace::default();
        super::super::forward(p, &x, &mut tr);
        let got = spectrum(p, &x, h, 1 << 20);
        let mut collapsed = 0;
        for (seq, lambdas) in got.iter().enumerate() {
            let want = in_decreasing_order(
                (0..h)
                    .map(|i| {
                        let on = (1..=t).all(|step| tr.layers[0].h[[step, seq, i]] > 0.0);
                        if on {
                            elem::ln(factors[i].abs())
                        } else {
                            f64::NEG_INFINITY
                        }
                    })
                    .collect(),
            );
            collapsed += want.iter().filter(|l| l.is_infinite()).count();
            for (g, w) in lambdas.iter().zip(&want) {
                assert!(
                    (g == w) || (g - w).abs() < 1e-12,
                    "sequence {seq}: {lambdas:?} against {want:?}"
                );
            }
        }
        assert!(collapsed > 0 && collapsed < 2 * h, "some units, not all, switch off");
    }

    /// The IndRNN's Jacobian is diagonal by construction, diag(relu′(a_t) ⊙ u): with k = H, on
    /// one sequence the exponents are ln |u_i| for the units on at every step and −∞ for the
    /// others, in decreasing order with the −∞ ones last (the issue's closed form; u drawn by
    /// the cell's own rule, then some biases set so that some units switch off).
    #[test]
    fn indrnn_spectrum_is_ln_u_of_the_units_always_on() {
        let (t, h) = (30, 8);
        let cfg = RnnConfig {
            cell_init: crate::rnn::CellInit {
                recurrent_max: 1.3,
                top_range: 1.2,
                input_std: None,
                recurrent_std: None,
            },
            ..config(Cell::IndRnn(Activation::Relu), h, Init::Xavier, 1.0)
        };
        let mut p = cfg.init(&mut ChaCha8Rng::seed_from_u64(9));
        {
            let layer = &mut p.layers_mut()[0];
            let mut roles = layer.roles_mut();
            for (i, b) in roles.b.as_mut().expect("a b").iter_mut().enumerate() {
                *b = if i % 3 == 0 { 0.0 } else { 5.0 }; // units 0, 3, 6 near zero: some switch off
            }
        }
        let u: Vec<f64> = p.layers()[0].get(crate::rnn::Role::Diagonal).expect("u").to_vec();
        assert!(
            u.iter().all(|&x| x > 1.0 / 1.2 && x < 1.2),
            "the top layer's u in (2^(−1/T), 2^(1/T)): {u:?}"
        );
        assert_diagonal_spectrum(&p, &u, t);
    }

    /// What follows a collapse, in closed form. A 2-unit ReLU cell with the symmetric
    /// W = a·v₁v₁ᵀ + b·v₂v₂ᵀ (v₁ = (1, 1)/√2, v₂ = (−1, 1)/√2, a > b > 0), every unit on at
    /// every step but unit 0 at the last, which an input pulse switches off. The first step of
    /// the iteration (t = T) zeroes column 0 (J_Tᵀ e₀ = W diag(0, 1) e₀ = 0): λ = −∞. Dropped, it
    /// leaves column 1 free: J_Tᵀ e₁ = W e₁, then W at every earlier step, so its exponent is
    /// (1/T) ln ‖Wᵀ e₁‖ = (1/T) ln √((a^{2T} + b^{2T})/2), near ln a: it grows into the direction
    /// column 0 would have followed, and comes first. (Held orthogonal to a placeholder
    /// column 0, as before the drop, it would have followed v₂ and come out near ln b, after a −∞.)
    #[test]
    fn a_collapsed_column_leaves_its_direction_to_the_next() {
        let (t, a, b) = (30, 1.1_f64, 0.6_f64);
        let cfg = RnnConfig {
            input: 1,
            ..config(Cell::Rnn(Activation::Relu), 2, Init::Xavier, 1.0)
        };
        let mut p = cfg.init(&mut ChaCha8Rng::seed_from_u64(1));
        {
            let mut layer = p.layers_mut()[0].roles_mut();
            let (on, off) = ((a + b) / 2.0, (a - b) / 2.0);
            layer.w.expect("a W").assign(&ndarray::arr2(&[[on, off], [off, on]]));
            layer.b.expect("a b").fill(5.0); // every unit on …
            layer.u.assign(&ndarray::arr2(&[[-1000.0], [0.0]])); // … but unit 0 when x = 1
        }
        let mut x = Array3::<f64>::zeros((t, 1, 1));
        x[[t - 1, 0, 0]] = 1.0; // the pulse at the last step
        let x = Batch {
            inputs: Inputs::Dense(x),
            targets: Targets::Values(Array3::zeros((1, 1, 1))),
            accuracy_from: 0,
        };
        let mut tr = Trace::default();
        super::super::forward(&p, &x, &mut tr);
        let on = |step: usize, i: usize| tr.layers[0].h[[step, 0, i]] > 0.0;
        assert!((1..t).all(|step| on(step, 0) && on(step, 1)) && on(t, 1) && !on(t, 0));
        let got = &spectrum(&p, &x, 2, 1 << 20)[0];
        // (1/T) ln √((a^{2T} + b^{2T})/2) = ln a + ln((1 + (b/a)^{2T})/2) / 2T
        let ratio: f64 = (0..2 * t).map(|_| b / a).product();
        let want = elem::ln(a) + elem::ln((1.0 + ratio) / 2.0) / (2 * t) as f64;
        eprintln!(
            "exponent after a collapse against closed form: {} vs {want}, diff = {:.2e}",
            got[0],
            (got[0] - want).abs()
        );
        assert!((got[0] - want).abs() < 1e-12, "{got:?} against [{want}, −∞]");
        assert_eq!(got[1], f64::NEG_INFINITY, "{got:?}");
    }
}
