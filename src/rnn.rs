//! The vanilla recurrent network: parameters and their initialisation, the forward pass, exact
//! backpropagation through time (full or truncated) written beside it, and the gradient-decay
//! probe that measures ‖∂E_T/∂s_{T−d}‖ for every distance d.
//!
//! Notation of the classic derivation:
//!
//! ```text
//! h_t   = U x_t + W s_{t-1} + b        s_0 = 0
//! s_t   = σ(h_t)
//! net_t = V s_t + c                   o_t = net_t (MSE head) or softmax(net_t) (cross-entropy head)
//! ```
//!
//! Shapes: T = time steps, B = batch, D = input size, H = hidden size, O = output size,
//! L = steps that carry a loss (1 for many-to-one tasks, T for many-to-many ones).
//! Matrices use PyTorch's layout (U is (H, D), W is (H, H), V is (O, H)) so that checkpoints
//! load into `torch.nn.RNN` unchanged. Everything is batched: the input projection of all steps,
//! the output projection and the gradients of U, V and W are single matrix products; only the
//! recurrence itself is one (B, H)·(H, H) product per step.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Array3, ArrayView2, Axis, Zip, s};
use rand::Rng;

use crate::Float;

/// The hidden activation σ, with its derivative written from the saved output s = σ(h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// σ(h) = tanh h
    Tanh,
    /// σ(h) = 1 / (1 + e^{−h})
    Sigmoid,
    /// σ(h) = max(0, h)
    Relu,
    /// σ(h) = h
    Identity,
}

impl Activation {
    /// Parses a spec value (`tanh`, `sigmoid`, `relu`, `identity`).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "tanh" => Self::Tanh,
            "sigmoid" => Self::Sigmoid,
            "relu" => Self::Relu,
            "identity" => Self::Identity,
            _ => return None,
        })
    }

    /// s = σ(h).
    #[inline]
    pub fn forward(self, h: Float) -> Float {
        match self {
            Self::Tanh => h.tanh(),
            Self::Sigmoid => 1.0 / (1.0 + (-h).exp()),
            Self::Relu => h.max(0.0),
            Self::Identity => h,
        }
    }

    /// σ'(h), computed from the output s = σ(h) that forward saved.
    #[inline]
    pub fn deriv_from_output(self, s: Float) -> Float {
        match self {
            Self::Tanh => 1.0 - s * s,      // tanh' = 1 − tanh²
            Self::Sigmoid => s * (1.0 - s), // σ' = σ(1 − σ)
            Self::Relu => {
                if s > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Self::Identity => 1.0,
        }
    }

    /// max over h of |σ'(h)|: the factor in the bound ‖∂s_t/∂s_{t−1}‖ ≤ ‖W‖₂·max|σ'|.
    pub fn max_deriv(self) -> Float {
        match self {
            Self::Sigmoid => 0.25,
            Self::Tanh | Self::Relu | Self::Identity => 1.0,
        }
    }
}

/// How a weight matrix is initialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Init {
    /// Glorot uniform: U(−a, a) with a = √(6 / (fan_in + fan_out)).
    Xavier,
    /// N(0, std²).
    Normal,
    /// A random (semi-)orthogonal matrix: Gram–Schmidt on a Gaussian matrix.
    Orthogonal,
    /// The identity matrix (square matrices only; the IRNN recipe for W).
    Identity,
}

impl Init {
    /// Parses a spec value.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "xavier" => Self::Xavier,
            "normal" => Self::Normal,
            "orthogonal" => Self::Orthogonal,
            "identity" => Self::Identity,
            _ => return None,
        })
    }

    /// A (rows, cols) matrix drawn from this initialisation.
    pub fn sample(self, rows: usize, cols: usize, std: Float, rng: &mut impl Rng) -> Array2<Float> {
        match self {
            Self::Xavier => {
                let a = (6.0 / (rows + cols) as Float).sqrt();
                Array2::from_shape_simple_fn((rows, cols), || a * (2.0 * rng.random::<Float>() - 1.0))
            }
            Self::Normal => Array2::from_shape_simple_fn((rows, cols), || std * normal(rng)),
            Self::Orthogonal => {
                // Orthonormalise the columns of a tall Gaussian matrix, transpose if wide.
                let (tall, short) = (rows.max(cols), rows.min(cols));
                let mut q = Array2::from_shape_simple_fn((tall, short), || normal(rng));
                for j in 0..short {
                    for i in 0..j {
                        let proj = q.column(i).dot(&q.column(j));
                        let qi = q.column(i).to_owned();
                        q.column_mut(j).scaled_add(-proj, &qi);
                    }
                    let norm = q.column(j).dot(&q.column(j)).sqrt();
                    q.column_mut(j).mapv_inplace(|x| x / norm);
                }
                if rows >= cols {
                    q
                } else {
                    q.reversed_axes().as_standard_layout().to_owned()
                }
            }
            Self::Identity => Array2::eye(rows),
        }
    }
}

/// A standard normal draw (Box–Muller), so that results do not depend on a distribution
/// crate's algorithm choices.
pub fn normal(rng: &mut impl Rng) -> Float {
    let u1: Float = 1.0 - rng.random::<Float>(); // in (0, 1]
    let u2: Float = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU as Float * u2).cos()
}

/// Everything needed to build a network: sizes, activation and initialisation.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnConfig {
    /// D, input size.
    pub input: usize,
    /// H, hidden size.
    pub hidden: usize,
    /// O, output size.
    pub output: usize,
    /// σ.
    pub activation: Activation,
    /// Initialisation of W.
    pub init: Init,
    /// Initialisation of U and V.
    pub init_io: Init,
    /// Standard deviation for [`Init::Normal`].
    pub std: Float,
    /// Multiplier applied to W after initialisation.
    pub scale: Float,
}

impl RnnConfig {
    /// Draws initial parameters; biases start at zero. Draw order (W, U, V) is fixed.
    pub fn init(&self, rng: &mut impl Rng) -> Params {
        let (d, h, o) = (self.input, self.hidden, self.output);
        let mut w = self.init.sample(h, h, self.std, rng);
        w *= self.scale;
        Params {
            u: self.init_io.sample(h, d, self.std, rng),
            w,
            b: Array1::zeros(h),
            v: self.init_io.sample(o, h, self.std, rng),
            c: Array1::zeros(o),
        }
    }
}

/// The network's parameters (also used for their gradients, whose fields mirror these names).
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// (H, D) input→hidden.
    pub u: Array2<Float>,
    /// (H, H) hidden→hidden.
    pub w: Array2<Float>,
    /// (H) hidden bias.
    pub b: Array1<Float>,
    /// (O, H) hidden→output.
    pub v: Array2<Float>,
    /// (O) output bias.
    pub c: Array1<Float>,
}

impl Params {
    /// All-zero parameters of the given sizes (a gradient accumulator).
    pub fn zeros(d: usize, h: usize, o: usize) -> Self {
        Self {
            u: Array2::zeros((h, d)),
            w: Array2::zeros((h, h)),
            b: Array1::zeros(h),
            v: Array2::zeros((o, h)),
            c: Array1::zeros(o),
        }
    }

    /// Zeros of the same shapes as `self`.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.u.ncols(), self.w.nrows(), self.v.nrows())
    }

    /// The tensors in a fixed order, with the names used in checkpoints' PyTorch mapping.
    pub fn slices(&self) -> [&[Float]; 5] {
        [
            self.u.as_slice().expect("contiguous"),
            self.w.as_slice().expect("contiguous"),
            self.b.as_slice().expect("contiguous"),
            self.v.as_slice().expect("contiguous"),
            self.c.as_slice().expect("contiguous"),
        ]
    }

    /// Mutable access to the tensors, in the order of [`Params::slices`].
    pub fn slices_mut(&mut self) -> [&mut [Float]; 5] {
        let Self { u, w, b, v, c } = self;
        [
            u.as_slice_mut().expect("contiguous"),
            w.as_slice_mut().expect("contiguous"),
            b.as_slice_mut().expect("contiguous"),
            v.as_slice_mut().expect("contiguous"),
            c.as_slice_mut().expect("contiguous"),
        ]
    }

    /// Sets every entry to zero, keeping the allocation.
    pub fn fill_zero(&mut self) {
        for t in self.slices_mut() {
            t.fill(0.0);
        }
    }
}

/// Inputs of a batch.
#[derive(Clone, Debug)]
pub enum Inputs {
    /// (T, B) symbol indices into a vocabulary of size D, fed as one-hot vectors (row gathers,
    /// never multiplied out).
    OneHot(Array2<usize>),
    /// (T, B, D) real-valued inputs.
    Dense(Array3<Float>),
}

impl Inputs {
    /// (T, B).
    pub fn dims(&self) -> (usize, usize) {
        match self {
            Self::OneHot(x) => x.dim(),
            Self::Dense(x) => (x.dim().0, x.dim().1),
        }
    }
}

/// Targets of a batch; their first axis L says where the loss is taken: L = 1 is the last step
/// only (many-to-one), L = T is every step (many-to-many).
#[derive(Clone, Debug)]
pub enum Targets {
    /// (L, B) class indices: softmax output, cross-entropy loss.
    Classes(Array2<usize>),
    /// (L, B, O) real targets: identity output, squared-error loss.
    Values(Array3<Float>),
}

impl Targets {
    /// L, the number of steps carrying a loss.
    pub fn steps(&self) -> usize {
        match self {
            Self::Classes(y) => y.nrows(),
            Self::Values(y) => y.dim().0,
        }
    }
}

/// A batch of sequences.
#[derive(Clone, Debug)]
pub struct Batch {
    /// Inputs, (T, B) or (T, B, D).
    pub inputs: Inputs,
    /// Targets, (L, B) or (L, B, O).
    pub targets: Targets,
}

/// What forward keeps for backward and for the probe, reused across steps so that the time
/// loop never allocates.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// (T+1, B, H) hidden states s_0 … s_T with s_0 = 0; backward reads σ' from s_t and the
    /// weight gradient from s_{t−1}.
    s: Array3<Float>,
    /// (L·B, O) outputs: net for the MSE head, softmax probabilities for cross-entropy.
    out: Array2<Float>,
    /// (L·B, O) dE/dnet, filled by backward.
    dout: Array2<Float>,
    /// (T, B, H) dE/dh_t, filled by backward.
    dh: Array3<Float>,
    /// (B, H) dE/ds_{t−1} carried from step t to step t−1.
    carry: Array2<Float>,
}

impl Trace {
    fn ensure(&mut self, t: usize, b: usize, h: usize, l: usize, o: usize) {
        if self.s.dim() != (t + 1, b, h) {
            self.s = Array3::zeros((t + 1, b, h));
            self.dh = Array3::zeros((t, b, h));
            self.carry = Array2::zeros((b, h));
        }
        if self.out.dim() != (l * b, o) {
            self.out = Array2::zeros((l * b, o));
            self.dout = Array2::zeros((l * b, o));
        }
    }

    /// (L·B, O) outputs of the last forward pass (probabilities for the cross-entropy head).
    pub fn outputs(&self) -> ArrayView2<'_, Float> {
        self.out.view()
    }
}

/// Forward pass over a batch; returns the loss E, averaged over the L·B (step, sequence) pairs
/// that carry a loss. Squared error is also averaged over the O outputs.
pub fn forward(p: &Params, act: Activation, batch: &Batch, tr: &mut Trace) -> Float {
    let (t_len, b) = batch.inputs.dims();
    let (h, o, l) = (p.w.nrows(), p.v.nrows(), batch.targets.steps());
    tr.ensure(t_len, b, h, l, o);

    // Input projection of all steps at once: s[1..] ← X Uᵀ + b, (T·B, H).
    tr.s.index_axis_mut(Axis(0), 0).fill(0.0);
    {
        let pre = tr.s.slice_mut(s![1.., .., ..]);
        let mut pre = pre.into_shape_with_order((t_len * b, h)).expect("contiguous");
        match &batch.inputs {
            Inputs::Dense(x) => {
                let x = x
                    .view()
                    .into_shape_with_order((t_len * b, x.dim().2))
                    .expect("contiguous");
                general_mat_mul(1.0, &x, &p.u.t(), 0.0, &mut pre);
                pre += &p.b;
            }
            Inputs::OneHot(idx) => {
                // One-hot input: h_t = U[:, k] + b, a column gather.
                for (mut row, &k) in pre.rows_mut().into_iter().zip(idx.iter()) {
                    Zip::from(&mut row)
                        .and(p.u.column(k))
                        .and(&p.b)
                        .for_each(|r, &u, &bias| *r = u + bias);
                }
            }
        }
    }

    // The recurrence: h_t = (U x_t + b) + s_{t−1} Wᵀ, then s_t = σ(h_t) in place.
    for t in 1..=t_len {
        let (prev, mut cur) = tr.s.multi_slice_mut((s![t - 1, .., ..], s![t, .., ..]));
        general_mat_mul(1.0, &prev, &p.w.t(), 1.0, &mut cur);
        cur.mapv_inplace(|x| act.forward(x));
    }

    // Output projection of the loss-carrying steps: net = S Vᵀ + c, (L·B, O).
    let states = tr.s.slice(s![t_len + 1 - l.., .., ..]);
    let states = states.into_shape_with_order((l * b, h)).expect("contiguous");
    general_mat_mul(1.0, &states, &p.v.t(), 0.0, &mut tr.out);
    tr.out += &p.c;

    let n = (l * b) as Float;
    match &batch.targets {
        Targets::Values(y) => {
            let y = y.view().into_shape_with_order((l * b, o)).expect("contiguous");
            let sq: Float = Zip::from(&tr.out)
                .and(&y)
                .fold(0.0, |acc, &net, &y| acc + (net - y) * (net - y));
            sq / (n * o as Float)
        }
        Targets::Classes(y) => {
            let mut nll = 0.0;
            for (mut row, &k) in tr.out.rows_mut().into_iter().zip(y.iter()) {
                softmax_in_place(row.as_slice_mut().expect("contiguous"));
                nll -= row[k].ln();
            }
            nll / n
        }
    }
}

/// Numerically stable softmax of one row, in place.
fn softmax_in_place(row: &mut [Float]) {
    let max = row.iter().copied().fold(Float::NEG_INFINITY, Float::max);
    let mut sum = 0.0;
    for x in row.iter_mut() {
        *x = (*x - max).exp();
        sum += *x;
    }
    for x in row.iter_mut() {
        *x /= sum;
    }
}

/// Backward pass through the batch that the last [`forward`] saw; **adds** dE/dθ into `g`.
///
/// `bptt = None` is full backpropagation through time. `Some(k)` truncates it: the backward
/// recurrence is cut every k steps counted back from the last step, so steps T−k+1 … T form
/// one window, T−2k+1 … T−k the next, and so on; a loss at step t reaches back only to the
/// start of its window (for a many-to-one task, exactly k steps). Equivalently, the hidden
/// state entering each window is treated as a constant.
pub fn backward(p: &Params, act: Activation, batch: &Batch, tr: &mut Trace, bptt: Option<usize>, g: &mut Params) {
    let (t_len, b) = batch.inputs.dims();
    let (h, o, l) = (p.w.nrows(), p.v.nrows(), batch.targets.steps());
    let n = (l * b) as Float;

    // dE/dnet, (L·B, O).
    match &batch.targets {
        Targets::Values(y) => {
            let y = y.view().into_shape_with_order((l * b, o)).expect("contiguous");
            let k = 2.0 / (n * o as Float);
            Zip::from(&mut tr.dout)
                .and(&tr.out)
                .and(&y)
                .for_each(|d, &net, &y| *d = k * (net - y)); // back through (net − y)²
        }
        Targets::Classes(y) => {
            tr.dout.assign(&tr.out);
            for (mut row, &k) in tr.dout.rows_mut().into_iter().zip(y.iter()) {
                row[k] -= 1.0; // back through softmax + cross-entropy: p − onehot(y)
            }
            tr.dout /= n;
        }
    }

    // Head: dV += doutᵀ S_L (O, H); dc += Σ dout.
    let states = tr.s.slice(s![t_len + 1 - l.., .., ..]);
    let states = states.into_shape_with_order((l * b, h)).expect("contiguous");
    general_mat_mul(1.0, &tr.dout.t(), &states, 1.0, &mut g.v);
    g.c += &tr.dout.sum_axis(Axis(0));

    // dE/ds_t from the outputs, into dh (T, B, H): dout V at the loss-carrying steps, 0 elsewhere.
    tr.dh.fill(0.0);
    {
        let ds_out = tr.dh.slice_mut(s![t_len - l.., .., ..]);
        let mut ds_out = ds_out.into_shape_with_order((l * b, h)).expect("contiguous");
        general_mat_mul(1.0, &tr.dout, &p.v, 0.0, &mut ds_out);
    }

    // Back through time: dh_t = (ds_t + carry) ⊙ σ'(h_t); carry = dh_t W for step t−1.
    let window = bptt.unwrap_or(t_len);
    tr.carry.fill(0.0);
    for t in (1..=t_len).rev() {
        let mut dh_t = tr.dh.index_axis_mut(Axis(0), t - 1);
        Zip::from(&mut dh_t)
            .and(&tr.carry)
            .and(tr.s.index_axis(Axis(0), t))
            .for_each(|d, &c, &s| *d = (*d + c) * act.deriv_from_output(s)); // back through σ
        if t == 1 || (t_len - t + 1) % window == 0 {
            tr.carry.fill(0.0); // s_0 is a constant, or the window ends here
        } else {
            general_mat_mul(1.0, &dh_t, &p.w, 0.0, &mut tr.carry); // back through W s_{t−1}
        }
    }

    // Parameter gradients over all steps at once.
    let dh_all = tr.dh.view().into_shape_with_order((t_len * b, h)).expect("contiguous");
    let prev = tr.s.slice(s![..t_len, .., ..]);
    let prev = prev.into_shape_with_order((t_len * b, h)).expect("contiguous");
    general_mat_mul(1.0, &dh_all.t(), &prev, 1.0, &mut g.w); // dW += Σ_t dh_tᵀ s_{t−1}
    g.b += &dh_all.sum_axis(Axis(0)); // db += Σ_t dh_t
    match &batch.inputs {
        Inputs::Dense(x) => {
            let x = x
                .view()
                .into_shape_with_order((t_len * b, x.dim().2))
                .expect("contiguous");
            general_mat_mul(1.0, &dh_all.t(), &x, 1.0, &mut g.u); // dU += Σ_t dh_tᵀ x_t
        }
        Inputs::OneHot(idx) => {
            for (row, &k) in dh_all.rows().into_iter().zip(idx.iter()) {
                g.u.column_mut(k).scaled_add(1.0, &row); // one-hot: scatter-add into column k
            }
        }
    }
}

/// Fraction of loss-carrying (step, sequence) pairs whose arg-max output is the target class,
/// from the last forward pass; `None` for real-valued targets.
pub fn accuracy(batch: &Batch, tr: &Trace) -> Option<Float> {
    let Targets::Classes(y) = &batch.targets else {
        return None;
    };
    let correct = tr
        .out
        .rows()
        .into_iter()
        .zip(y.iter())
        .filter(|(row, k)| {
            let best = row.iter().enumerate().fold(
                (0, Float::NEG_INFINITY),
                |best, (i, &x)| if x > best.1 { (i, x) } else { best },
            );
            best.0 == **k
        })
        .count();
    Some(correct as Float / y.len() as Float)
}

/// The gradient-decay probe: for d = 0 … T−1, the natural log of the mean over the batch's
/// sequences of ‖∂E_T/∂s_{T−d}‖₂, where E_T is one sequence's loss at the last step (not
/// divided by the batch size). Always exact full backpropagation, whatever `train.bptt` is.
///
/// Each sequence's gradient is renormalised at every step and its scale kept as a logarithm,
/// so norms far below the smallest float are still measured; a gradient that becomes exactly
/// zero (dead ReLU units) gives −∞.
pub fn probe(p: &Params, act: Activation, batch: &Batch, tr: &mut Trace) -> Vec<Float> {
    forward(p, act, batch, tr);
    let (t_len, b) = batch.inputs.dims();
    let (h, o, l) = (p.w.nrows(), p.v.nrows(), batch.targets.steps());

    // dE_T/dnet_T per sequence, (B, O), from the last step's rows of the outputs.
    let last = tr.out.slice(s![(l - 1) * b.., ..]);
    let mut dnet = last.to_owned();
    match &batch.targets {
        Targets::Values(y) => {
            let y = y.index_axis(Axis(0), l - 1);
            Zip::from(&mut dnet)
                .and(&y)
                .for_each(|d, &y| *d = 2.0 * (*d - y) / o as Float);
        }
        Targets::Classes(y) => {
            for (mut row, &k) in dnet.rows_mut().into_iter().zip(y.row(l - 1).iter()) {
                row[k] -= 1.0;
            }
        }
    }
    let mut grad = dnet.dot(&p.v); // (B, H) dE_T/ds_T
    let mut next = Array2::<Float>::zeros((b, h));
    let mut log_scale = vec![0.0; b];
    let mut out = Vec::with_capacity(t_len);
    for d in 0..t_len {
        let t = t_len - d;
        // Record ln‖g_b‖ and renormalise each row.
        let mut logs = Vec::with_capacity(b);
        for (mut row, scale) in grad.rows_mut().into_iter().zip(log_scale.iter_mut()) {
            let norm = row.dot(&row).sqrt();
            if norm > 0.0 && norm.is_finite() {
                *scale += norm.ln();
                row /= norm;
            } else {
                *scale = if norm == 0.0 { Float::NEG_INFINITY } else { Float::NAN };
                row.fill(0.0);
            }
            logs.push(*scale);
        }
        out.push(log_mean_exp(&logs));
        if t > 1 {
            // ∂E_T/∂s_{t−1} = (∂E_T/∂s_t ⊙ σ'(h_t)) W
            Zip::from(&mut grad)
                .and(tr.s.index_axis(Axis(0), t))
                .for_each(|g, &s| *g *= act.deriv_from_output(s));
            general_mat_mul(1.0, &grad, &p.w, 0.0, &mut next);
            std::mem::swap(&mut grad, &mut next);
        }
    }
    out
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
    let sum: Float = x.iter().map(|v| (v - max).exp()).sum();
    max + (sum / x.len() as Float).ln()
}

/// The measured per-step decay factor: exp of the least-squares slope of ln‖∂E_T/∂s_{T−d}‖
/// against d, over the distances whose norm is finite and above 1e-300. `None` with fewer than
/// two such distances.
pub fn decay_factor(log_norms: &[Float]) -> Option<Float> {
    let floor = (1e-300 as Float).ln();
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
    Some((sxy / sxx).exp())
}

/// ‖W‖₂, the largest singular value, by power iteration on WᵀW from a fixed start vector.
pub fn spectral_norm(w: &Array2<Float>) -> Float {
    let n = w.ncols();
    if n == 0 {
        return 0.0;
    }
    // A fixed, non-symmetric start so it is not orthogonal to the top singular vector of
    // structured matrices (identity, permutations).
    let mut x = Array1::from_shape_fn(n, |i| 1.0 + (i as Float * 0.618_033_988_75).fract());
    let mut sigma = 0.0;
    for _ in 0..500 {
        let norm = x.dot(&x).sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return if norm == 0.0 { 0.0 } else { Float::NAN };
        }
        x /= norm;
        let wx = w.dot(&x);
        let next_sigma = wx.dot(&wx).sqrt();
        x = w.t().dot(&wx);
        if (next_sigma - sigma).abs() <= 1e-12 * next_sigma {
            return next_sigma;
        }
        sigma = next_sigma;
    }
    sigma
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn spectral_norm_of_known_matrices() {
        let w = Array2::from_shape_vec((2, 2), vec![3.0, 0.0, 0.0, -5.0]).unwrap();
        assert!((spectral_norm(&w) - 5.0).abs() < 1e-9);
        let eye = Array2::<Float>::eye(7) * 0.5;
        assert!((spectral_norm(&eye) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn orthogonal_init_is_orthogonal() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (r, c) in [(6, 6), (8, 3), (3, 8)] {
            let q = Init::Orthogonal.sample(r, c, 1.0, &mut rng);
            let gram = if r >= c { q.t().dot(&q) } else { q.dot(&q.t()) };
            let err = (&gram - &Array2::<Float>::eye(r.min(c)))
                .mapv(Float::abs)
                .fold(0.0, |a: Float, &b| a.max(b));
            assert!(err < 1e-12, "({r},{c}) maxdiff = {err:e}");
        }
    }

    #[test]
    fn decay_factor_recovers_a_geometric_series() {
        let logs: Vec<Float> = (0..50).map(|d| 3.0 + d as Float * (0.7 as Float).ln()).collect();
        assert!((decay_factor(&logs).unwrap() - 0.7).abs() < 1e-12);
        let with_gaps = [0.0, Float::NEG_INFINITY, -2.0, -800.0];
        assert!((decay_factor(&with_gaps).unwrap() - (-1.0 as Float).exp()).abs() < 1e-12);
    }
}
