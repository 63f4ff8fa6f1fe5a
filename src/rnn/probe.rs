//! The gradient-decay probe: ‖∂E_T/∂h_{T−d}‖ for every distance d by exact backpropagation
//! (renormalised every step, so norms far below the smallest float are measured), the decay
//! factor fitted to it, and the spectral norm and radius of W.

use ndarray::{Array2, Axis, Zip, s};

use super::bptt::{Entry, begin, carry_state, forward_window, step_back_stack, window_losses, windows};
use super::{Batch, Params, Targets, Trace, forward};
use crate::Float;
use crate::elem;
use crate::real::{Real, Scratch, dot, gemm, simd_fn};

/// What the probe measured, per layer (bottom first): for d = 0 … T−1, the natural log of the
/// mean over the batch's sequences of ‖∂E_T/∂h^(l)_{T−d}‖₂ (and, for a cell with a second
/// state, the LSTM's c, of ‖∂E_T/∂c^(l)_{T−d}‖₂).
#[derive(Clone, Debug, PartialEq)]
pub struct Probe {
    /// ln mean ‖∂E_T/∂h_{T−d}‖ by layer, then distance d.
    pub h: Vec<Vec<f64>>,
    /// ln mean ‖∂E_T/∂c_{T−d}‖ by layer, then distance d, c being the cell's second state (the
    /// LSTM's).
    pub c: Option<Vec<Vec<f64>>>,
}

impl Probe {
    /// The top layer's h norms (the layer the head reads).
    pub fn top(&self) -> &[f64] {
        self.h.last().expect("at least one layer")
    }

    /// The top layer's second-state norms, if the cell has a second state.
    pub fn top_c(&self) -> Option<&[f64]> {
        self.c.as_ref().map(|c| &c.last().expect("at least one layer")[..])
    }
}

/// The gradient-decay probe. E_T is one sequence's loss at the last step (not divided by the
/// batch size). Always exact full backpropagation, whatever `train.bptt` is, and without
/// dropout; with `window = Some(k)` shorter than the sequence it runs through a trace of k
/// steps, keeping only the state entering each window and recomputing that window's forward
/// pass on the way back. In a stack it goes back step by step through all layers, top to
/// bottom at each step (`step_back_stack`).
///
/// Each sequence's gradient (all layers' states together) is renormalised at every step and its
/// scale kept as a logarithm, so norms far below the smallest float are still measured; a
/// gradient that becomes exactly zero (dead ReLU units) gives −∞.
pub fn probe<F: Real>(p: &Params<F>, batch: &Batch<F>, tr: &mut Trace<F>, window: Option<usize>) -> Probe {
    let (t_len, b, cell) = (batch.dims().0, batch.dims().1, p.cell());
    let (o, l, depth) = (p.v.nrows(), batch.targets.steps(), p.layers().len());
    let k = window.unwrap_or(t_len).min(t_len);
    let wins = windows(t_len, k);
    let second = cell.spec().states.len() > 1; // a second state (the LSTM's c) beside h

    // Forward, keeping the state entering each window (every layer's h, and c for the LSTM).
    let mut entries: Vec<Entry<F>> = Vec::with_capacity(wins.len());
    if k == t_len {
        forward(p, batch, tr);
    } else {
        begin(p, batch, tr, k);
        let mut last_len = 0;
        for &(start, end) in &wins {
            carry_state(tr, last_len);
            entries.push(tr.entry());
            forward_window(p, batch, tr, (start, end), None);
            last_len = end + 1 - start;
        }
    }
    tr.ensure_backward(cell);

    // dE_T/dnet_T per sequence, (B, O), from the last step's rows of the outputs.
    let (_, lw_last, _) = window_losses(batch, *wins.last().expect("T ≥ 1"));
    let mut dnet = tr.out.slice(s![(lw_last - 1) * b..lw_last * b, ..]).to_owned();
    match &batch.targets {
        Targets::Values(y) => {
            let y = y.index_axis(Axis(0), l - 1);
            Zip::from(&mut dnet)
                .and(&y)
                .for_each(|d, &y| *d = F::of(2.0) * (*d - y) / F::of(o as f64));
        }
        Targets::Classes(y) => {
            for (mut row, &k) in dnet.rows_mut().into_iter().zip(y.row(l - 1).iter()) {
                row[k] -= F::one();
            }
        }
    }
    let mut head = Array2::zeros((b, p.hidden()));
    gemm(dnet.view(), p.v.view(), head.view_mut(), false, &mut tr.scratch); // dE_T/dy_T
    for stage in &mut tr.layers {
        stage.dh.fill(F::zero());
        stage.carry_c.fill(F::zero());
    }
    let mut log_scale = vec![0.0; b]; // ln of each sequence's accumulated rescaling
    let mut logs = vec![0.0; b]; // ln‖·‖ per sequence at the distance being measured
    // Each with room for every distance (`vec![v; n]` would clone away the capacity).
    let mut out_h: Vec<Vec<f64>> = (0..depth).map(|_| Vec::with_capacity(t_len)).collect();
    let mut out_c: Vec<Vec<f64>> = (0..depth).map(|_| Vec::with_capacity(t_len)).collect();
    let (mut sq, mut sq_all) = (vec![F::zero(); b], vec![F::zero(); b]); // ‖row‖² per sequence
    // Appends to `out` ln of the mean over sequences of ‖m's row‖ times its sequence's scale.
    fn row_logs<F: Real>(m: &Array2<F>, scale: &[f64], (logs, sq): (&mut [f64], &mut [F]), out: &mut Vec<f64>) {
        row_squares(m.as_slice().expect("contiguous"), m.ncols(), sq);
        for ((&q, s), out) in sq.iter().zip(scale).zip(logs.iter_mut()) {
            *out = s + elem::ln(q.f64().sqrt());
        }
        out.push(log_mean_exp(logs));
    }
    for (wi, &(start, end)) in wins.iter().enumerate().rev() {
        if wi + 1 < wins.len() {
            // Recompute this window's forward pass from the state that entered it.
            tr.enter(&entries[wi]);
            forward_window(p, batch, tr, (start, end), None);
        }
        for t in (1..=end + 1 - start).rev() {
            let step = start - 1 + t; // trace index t is this step of the sequence
            let at_end = step == t_len;
            let (scale, buffers) = (&log_scale, (&mut logs[..], &mut sq[..]));
            step_back_stack(
                p,
                tr,
                t,
                step > 1,
                at_end.then(|| head.view()),
                |l, stage, after| match (after, second) {
                    (false, _) => row_logs(&stage.dh, scale, (&mut *buffers.0, &mut *buffers.1), &mut out_h[l]),
                    (true, true) => row_logs(&stage.dc, scale, (&mut *buffers.0, &mut *buffers.1), &mut out_c[l]),
                    (true, false) => {}
                },
            );
            if step > 1 {
                // Carry to step t−1 and renormalise each sequence's (h, c) gradient, all
                // layers jointly.
                sq_all.fill(F::zero());
                for stage in &mut tr.layers {
                    std::mem::swap(&mut stage.dh, &mut stage.carry_h);
                    for m in [&stage.dh, &stage.carry_c].into_iter().take(1 + usize::from(second)) {
                        row_squares(m.as_slice().expect("contiguous"), m.ncols(), &mut sq);
                        sq_all.iter_mut().zip(&sq).for_each(|(a, &q)| *a += q);
                    }
                }
                for (i, scale) in log_scale.iter_mut().enumerate() {
                    let norm = sq_all[i].sqrt();
                    if norm > F::zero() && norm.is_finite() {
                        *scale += elem::ln(norm.f64());
                        for stage in &mut tr.layers {
                            stage.dh.row_mut(i).mapv_inplace(|x| x / norm);
                            if second {
                                stage.carry_c.row_mut(i).mapv_inplace(|x| x / norm);
                            }
                        }
                    } else if !norm.is_finite() {
                        *scale = f64::NAN;
                    }
                }
            }
        }
    }
    Probe {
        h: out_h,
        c: second.then_some(out_c),
    }
}

simd_fn! {
    /// out[i] = Σ_j x[i, j]² for a row-major x with n columns, each an ordered fused sum from
    /// +0: `dot(row, row)` bit for bit, eight rows side by side. (Each row's sum is a chain of
    /// dependent multiply–adds; one row at a time through the product kernel, the probe's norms
    /// were 2 % of the samples of a lone H = 256, B = 32 run on two threads, all on one of them.)
    fn row_squares<F: Real>(x: &[F], n: usize, out: &mut [F]) {
        assert_eq!(x.len(), n * out.len(), "row_squares sizes");
        let done = out.len() / 8 * 8;
        let mut blocks = out.chunks_exact_mut(8);
        for (i, out) in (&mut blocks).enumerate() {
            let rows: [&[F]; 8] = std::array::from_fn(|q| &x[(8 * i + q) * n..(8 * i + q + 1) * n]);
            let mut s = [F::zero(); 8];
            for j in 0..n {
                for (s, row) in s.iter_mut().zip(&rows) {
                    *s = row[j].mul_add(row[j], *s);
                }
            }
            out.copy_from_slice(&s);
        }
        for (i, out) in blocks.into_remainder().iter_mut().enumerate() {
            let row = &x[(done + i) * n..(done + i + 1) * n];
            *out = row.iter().fold(F::zero(), |s, &v| v.mul_add(v, s));
        }
    }
}

/// Joins the probes of consecutive parts of one probe batch (part i holding `sizes[i]`
/// sequences) into the probe of the whole: at each distance, ln of the size-weighted mean of the
/// parts' means. One part is returned as it is.
pub fn join_probes(parts: &[Probe], sizes: &[usize]) -> Probe {
    if parts.len() == 1 {
        return parts[0].clone();
    }
    let total: usize = sizes.iter().sum();
    let join_one = |pick: &dyn Fn(&Probe) -> &[f64]| -> Vec<f64> {
        (0..pick(&parts[0]).len())
            .map(|d| {
                // ln Σ (n_i/N)·e^{x_i} = log_mean_exp over the parts with ln(n_i·P/N) added.
                let x: Vec<f64> = parts
                    .iter()
                    .zip(sizes)
                    .map(|(p, &n)| pick(p)[d] + elem::ln(n as f64 * parts.len() as f64 / total as f64))
                    .collect();
                log_mean_exp(&x)
            })
            .collect()
    };
    let join = |pick: &dyn Fn(&Probe) -> &[Vec<f64>]| -> Vec<Vec<f64>> {
        (0..pick(&parts[0]).len())
            .map(|layer| join_one(&|p: &Probe| &pick(p)[layer][..]))
            .collect()
    };
    Probe {
        h: join(&|p| &p.h),
        c: parts[0]
            .c
            .is_some()
            .then(|| join(&|p| p.c.as_deref().expect("every part is an LSTM's"))),
    }
}

/// ln(mean(exp(x))) computed without overflow or underflow; −∞ if every x is −∞, NaN if any is.
fn log_mean_exp(x: &[Float]) -> Float {
    if x.iter().any(|v| v.is_nan()) {
        return Float::NAN;
    }
    let max = x.iter().copied().fold(Float::NEG_INFINITY, Float::max);
    if max == Float::NEG_INFINITY {
        return max;
    }
    let sum: Float = x.iter().map(|v| elem::exp(v - max)).sum();
    max + elem::ln(sum / x.len() as Float)
}

/// The measured per-step decay factor: exp of the least-squares slope of ln‖∂E_T/∂s_{T−d}‖
/// against d, over the distances whose norm is finite and above 1e-300. `None` with fewer than
/// two such distances.
pub fn decay_factor(log_norms: &[Float]) -> Option<Float> {
    let floor = elem::ln(1e-300);
    let pts: Vec<(Float, Float)> = log_norms
        .iter()
        .enumerate()
        .filter(|(_, y)| y.is_finite() && **y > floor)
        .map(|(d, &y)| (d as Float, y))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let n = pts.len() as Float;
    let mx = pts.iter().map(|p| p.0).sum::<Float>() / n;
    let my = pts.iter().map(|p| p.1).sum::<Float>() / n;
    let sxy: Float = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: Float = pts.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    Some(elem::exp(sxy / sxx))
}

/// A stack's per-layer factor of the gradient at the last step, from the probe's ln norms by
/// layer (bottom first) and distance: (‖∂E_T/∂h⁽⁰⁾_T‖ / ‖∂E_T/∂h⁽ᴸ⁻¹⁾_T‖)^(1/(L−1)), below 1
/// where the gradient shrinks on its way down. `None` for one layer or where either norm is not
/// finite and positive.
pub fn depth_factor(log_norms: &[Vec<Float>]) -> Option<Float> {
    let (bottom, top) = (log_norms.first()?.first()?, log_norms.last()?.first()?);
    let steps = log_norms.len().checked_sub(1).filter(|&n| n > 0)? as Float;
    (bottom.is_finite() && top.is_finite()).then(|| elem::exp((bottom - top) / steps))
}

/// ‖W‖₂, the largest singular value, by power iteration on WᵀW from a fixed start vector.
pub fn spectral_norm(w: &Array2<Float>) -> Float {
    let n = w.ncols();
    if n == 0 {
        return 0.0;
    }
    // A fixed, non-symmetric start so it is not orthogonal to the top singular vector of
    // structured matrices (identity, permutations).
    let mut x = Array2::from_shape_fn((n, 1), |(i, _)| 1.0 + (i as Float * 0.618_033_988_75).fract());
    let (mut wx, mut scratch) = (Array2::zeros((w.nrows(), 1)), Scratch::default());
    // W x is computed as (xᵀ Wᵀ)ᵀ, which reads Wᵀ row-major: stored once here, not copied at
    // every iteration (the same sums; H = 256: 14.4 ms a call, of which the copies were most).
    let wt = w.t().as_standard_layout().into_owned();
    let mut sigma = 0.0;
    for _ in 0..500 {
        let norm = dot(x.column(0), x.column(0)).sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return if norm == 0.0 { 0.0 } else { Float::NAN };
        }
        x /= norm;
        gemm(wt.t(), x.view(), wx.view_mut(), false, &mut scratch);
        let next_sigma = dot(wx.column(0), wx.column(0)).sqrt();
        gemm(w.t(), wx.view(), x.view_mut(), false, &mut scratch);
        if (next_sigma - sigma).abs() <= 1e-12 * next_sigma {
            return next_sigma;
        }
        sigma = next_sigma;
    }
    sigma
}

/// ρ(W), the spectral radius (largest |eigenvalue|) of a square matrix, by Gelfand's formula
/// ρ = lim ‖W^k‖^{1/k} with k = 2^30 reached by 30 renormalised squarings. Unlike power
/// iteration it needs no real, unique dominant eigenvalue (random matrices have complex pairs).
pub fn spectral_radius(w: &Array2<Float>) -> Float {
    let mut m = w.as_standard_layout().into_owned();
    let (mut square, mut scratch) = (m.clone(), Scratch::default());
    let frobenius = |m: &Array2<Float>| Float::sum_squares(m.as_slice().expect("standard layout")).sqrt();
    let mut log_rho = 0.0; // ln ρ accumulated as Σ ln(s_i) / 2^i
    let mut weight = 1.0;
    for _ in 0..30 {
        let s = frobenius(&m);
        if !(s > 0.0 && s.is_finite()) {
            return if s == 0.0 { 0.0 } else { Float::NAN };
        }
        m /= s;
        log_rho += weight * elem::ln(s);
        weight /= 2.0;
        gemm(m.view(), m.view(), square.view_mut(), false, &mut scratch);
        std::mem::swap(&mut m, &mut square);
    }
    let s = frobenius(&m);
    if s == 0.0 {
        return 0.0;
    }
    elem::exp(log_rho + weight * elem::ln(s))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // references from the C library, independent of elem
mod tests {
    use super::*;

    #[test]
    fn row_squares_are_dots_bit_for_bit() {
        fn check<F: Real>() {
            for m in [0, 1, 7, 8, 9, 17, 33] {
                for n in [0, 1, 5, 64, 257] {
                    let x = Array2::from_shape_fn((m, n), |(i, j)| {
                        let k = (i * 37 + j * 11) % 29;
                        F::of((k as f64 - 14.0) * elem::powi(3.0, (k % 9) as i64 - 4) / 7.0)
                    });
                    let mut got = vec![F::of(f64::NAN); m];
                    row_squares(x.as_slice().expect("contiguous"), n, &mut got);
                    for (i, g) in got.iter().enumerate() {
                        let want = dot(x.row(i), x.row(i));
                        assert_eq!(
                            g.f64().to_bits(),
                            want.f64().to_bits(),
                            "{:?} row {i} of ({m}, {n})",
                            F::DTYPE
                        );
                    }
                }
            }
        }
        check::<f32>();
        check::<f64>();
    }

    #[test]
    fn spectral_norm_of_known_matrices() {
        let w = Array2::from_shape_vec((2, 2), vec![3.0, 0.0, 0.0, -5.0]).unwrap();
        assert!((spectral_norm(&w) - 5.0).abs() < 1e-9);
        let eye = Array2::<Float>::eye(7) * 0.5;
        assert!((spectral_norm(&eye) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn spectral_radius_of_known_matrices() {
        // A rotation by 60° scaled by 0.9 has eigenvalues 0.9·e^{±iπ/3}: a complex pair, which
        // plain power iteration cannot resolve; its 2-norm is also 0.9.
        let (c, s) = ((std::f64::consts::PI / 3.0).cos(), (std::f64::consts::PI / 3.0).sin());
        let rot = Array2::from_shape_vec((2, 2), vec![0.9 * c, -0.9 * s, 0.9 * s, 0.9 * c]).unwrap();
        assert!((spectral_radius(&rot) - 0.9).abs() < 1e-9, "{}", spectral_radius(&rot));
        // A non-normal matrix: ‖W‖₂ ≈ 10 but both eigenvalues are 0.5.
        let shear = Array2::from_shape_vec((2, 2), vec![0.5, 10.0, 0.0, 0.5]).unwrap();
        assert!(
            (spectral_radius(&shear) - 0.5).abs() < 1e-6,
            "{}",
            spectral_radius(&shear)
        );
        assert!(spectral_norm(&shear) > 9.9);
        let nilpotent = Array2::from_shape_vec((2, 2), vec![0.0, 1.0, 0.0, 0.0]).unwrap();
        assert_eq!(spectral_radius(&nilpotent), 0.0);
    }

    #[test]
    fn decay_factor_recovers_a_geometric_series() {
        let logs: Vec<Float> = (0..50).map(|d| 3.0 + d as Float * elem::ln(0.7)).collect();
        assert!((decay_factor(&logs).unwrap() - 0.7).abs() < 1e-12);
        let with_gaps = [0.0, Float::NEG_INFINITY, -2.0, -800.0];
        assert!((decay_factor(&with_gaps).unwrap() - elem::exp(-1.0)).abs() < 1e-12);
    }
}
