//! The recurrent core. This file holds what every cell shares: the hidden activation, the
//! choice of cell and a batch's inputs and targets. Beside it, one file each: the three cells
//! (`vanilla`, `lstm`, `gru`), each declaring its tensors ([`CellSpec`]) and keeping its
//! forward and backward step side by side; the parameters (`params`: a layer's tensors as its
//! cell declares them, [`Layer`], and the network, [`Params`]; drawn in `init`); exact
//! backpropagation through time, full or truncated (`bptt`: the trace, the windows,
//! [`forward`], [`backward`], [`train_step`], [`evaluate`], [`accuracy`], re-exported here);
//! the gradient-decay probe (`probe`) and the Lyapunov spectrum (`spectrum`).
//!
//! Notation of the classic derivation, for the plain cell:
//!
//! ```text
//! h_t   = U x_t + W s_{t-1} + b        s_0 = 0
//! s_t   = σ(h_t)
//! net_t = V s_t + c                   o_t = net_t (MSE head) or softmax(net_t) (cross-entropy head)
//! ```
//!
//! (In the code the hidden state is `h`, as in PyTorch.) Shapes: T = time steps, B = batch,
//! D = input size, H = hidden size, O = output size, G = gates (1 plain, 4 LSTM, 3 GRU),
//! L = steps that carry a loss (1 for many-to-one tasks, T for many-to-many ones). Matrices use
//! PyTorch's layout (U is (G·H, D), W is (G·H, H), V is (O, H)) so that checkpoints load into
//! `torch.nn.RNN`/`LSTM`/`GRU`. Everything is batched: the input projection of all steps, the
//! output projection and the gradients of U, V and W are single matrix products; only the
//! recurrence itself is one (B, H)·(H, G·H) product per step (`real::matmul_strips`), followed
//! by one fused element-wise pass. Truncated BPTT, evaluation and the probe can run a window of
//! k steps at a time ([`train_step`], [`evaluate`], [`probe`]), so memory follows k, not T.

mod antisymmetric;
mod bptt;
mod cornn;
mod expm;
mod exprnn;
mod gru;
mod indrnn;
mod init;
mod lstm;
mod params;
mod probe;
mod spectrum;
mod vanilla;

pub use bptt::{Dropout, Trace, accuracy, backward, evaluate, forward, train_step};
pub use expm::Expm;
pub use init::{CellInit, Init, RnnConfig, normal};
pub use params::{
    CellSpec, Dim, Layer, Params, Projection, Recurrence, Role, Roles, RolesMut, Sizes, Start, TensorSpec,
};
pub use probe::{Probe, decay_factor, depth_factor, join_probes, probe, spectral_norm, spectral_radius};
pub use spectrum::{Exponents, mean_exponents, spectrum};

use ndarray::{Array2, Array3, Axis, s};

use crate::Float;
use crate::real::{Real, simd_fn};

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

    /// The spec's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tanh => "tanh",
            Self::Sigmoid => "sigmoid",
            Self::Relu => "relu",
            Self::Identity => "identity",
        }
    }

    /// s = σ(h).
    #[inline]
    pub fn forward<F: Real>(self, h: F) -> F {
        match self {
            Self::Tanh => F::act_tanh::<false>(h),
            Self::Sigmoid => sigmoid(h),
            Self::Relu => h.max(F::zero()),
            Self::Identity => h,
        }
    }

    /// σ'(h), computed from the output s = σ(h) that forward saved.
    #[inline]
    pub fn deriv_from_output<F: Real>(self, s: F) -> F {
        let one = F::one();
        match self {
            Self::Tanh => one - s * s,      // tanh' = 1 − tanh²
            Self::Sigmoid => s * (one - s), // σ' = σ(1 − σ)
            Self::Relu => {
                if s > F::zero() {
                    one
                } else {
                    F::zero()
                }
            }
            Self::Identity => one,
        }
    }

    /// x ← σ(x), element-wise, one loop per activation so that it vectorises.
    pub fn forward_in_place<F: Real>(self, x: &mut [F]) {
        activate(self, x);
    }

    /// dpre = ds ⊙ σ'(h) with σ' written from the saved output s, element-wise.
    pub fn backward_slice<F: Real>(self, ds: &[F], s: &[F], dpre: &mut [F]) {
        deactivate(self, ds, s, dpre);
    }

    /// max over h of |σ'(h)|: the factor in the bound ‖∂s_t/∂s_{t−1}‖ ≤ ‖W‖₂·max|σ'|.
    pub fn max_deriv(self) -> Float {
        match self {
            Self::Sigmoid => 0.25,
            Self::Tanh | Self::Relu | Self::Identity => 1.0,
        }
    }
}

simd_fn! {
    /// x ← σ(x), element-wise.
    fn activate<F: Real>(act: Activation, x: &mut [F]) {
        match act {
            Activation::Tanh => F::act_tanh_in_place::<FUSED>(x),
            Activation::Sigmoid => F::act_sigmoid_in_place::<FUSED>(x),
            Activation::Relu => x.iter_mut().for_each(|s| *s = s.max(F::zero())),
            Activation::Identity => {}
        }
    }
}

simd_fn! {
    /// dpre = ds ⊙ σ'(h), σ' written from the saved output s.
    fn deactivate<F: Real>(act: Activation, ds: &[F], s: &[F], dpre: &mut [F]) {
        assert!(ds.len() == s.len() && s.len() == dpre.len());
        let one = F::one();
        let each = dpre.iter_mut().zip(ds.iter().zip(s));
        match act {
            Activation::Tanh => each.for_each(|(d, (&g, &s))| *d = g * (one - s * s)), // back through tanh
            Activation::Sigmoid => each.for_each(|(d, (&g, &s))| *d = g * s * (one - s)), // back through σ
            Activation::Relu => each.for_each(|(d, (&g, &s))| *d = if s > F::zero() { g } else { F::zero() }),
            Activation::Identity => dpre.copy_from_slice(ds),
        }
    }
}

/// The recurrent cell. Each is one file beside this one (its table of tensors, [`CellSpec`], and
/// its forward and backward step), listed here and in the two step dispatches of `bptt`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cell {
    /// h_t = σ(U x_t + W h_{t−1} + b).
    Rnn(Activation),
    /// Long short-term memory (gates i, f, g, o).
    Lstm,
    /// Gated recurrent unit (gates r, z, n).
    Gru,
    /// Independently recurrent (Li et al. 2018): h_t = σ(U x_t + u ⊙ h_{t−1} + b).
    IndRnn(Activation),
    /// Orthogonal (Lezcano-Casado & Martínez-Rubio 2019): h_t = modrelu(U x_t + exp(A) h_{t−1}).
    ExpRnn,
    /// Coupled oscillators (Rusch & Mishra 2021), state (y, z).
    CoRnn(Coefs),
    /// Antisymmetric (Chang et al. 2019): h_t = h_{t−1} + ε·tanh((W − Wᵀ − γI) h_{t−1} + U x_t + b).
    Antisymmetric(Coefs),
}

/// The fixed coefficients of the coRNN (Δt, γ, ε) and of the AntisymmetricRNN (ε, its step;
/// γ, its diffusion; `dt` unused): hyperparameters, not trained. Compared by their bits.
#[derive(Clone, Copy, Debug)]
pub struct Coefs {
    /// Δt, the coRNN's time step (`model.dt`).
    pub dt: Float,
    /// γ (`model.gamma`): the coRNN's restoring force on y, the AntisymmetricRNN's diffusion.
    pub gamma: Float,
    /// ε (`model.epsilon`): the coRNN's damping of z, the AntisymmetricRNN's step.
    pub epsilon: Float,
}

impl PartialEq for Coefs {
    fn eq(&self, o: &Self) -> bool {
        [self.dt, self.gamma, self.epsilon].map(Float::to_bits) == [o.dt, o.gamma, o.epsilon].map(Float::to_bits)
    }
}

impl Eq for Coefs {}

impl Coefs {
    /// The coRNN's defaults: the paper's adding-problem script (Rusch & Mishra 2021,
    /// `adding/adding_task.py`: dt = 0.06, γ = 66, ε = 15).
    pub const CORNN: Coefs = Coefs {
        dt: 0.06,
        gamma: 66.0,
        epsilon: 15.0,
    };
    /// The AntisymmetricRNN's defaults, ε = 0.01 and γ = 0.01 (Chang et al. 2019's settings for
    /// pixel-by-pixel MNIST; the paper ships no adding-problem code).
    pub const ANTISYMMETRIC: Coefs = Coefs {
        dt: 0.0,
        gamma: 0.01,
        epsilon: 0.01,
    };
}

impl Cell {
    /// The spec's names of the cells (`model.cell`).
    pub const NAMES: [&str; 7] = ["rnn", "lstm", "gru", "indrnn", "exprnn", "cornn", "antisymmetric"];

    /// The cell of a spec's name, σ applying to the plain cell and the IndRNN, the coRNN and the
    /// AntisymmetricRNN taking their default coefficients ([`Cell::with_coefs`] sets others);
    /// `None` for an unknown name.
    pub fn from_name(name: &str, activation: Activation) -> Option<Self> {
        Some(match name {
            "rnn" => Cell::Rnn(activation),
            "lstm" => Cell::Lstm,
            "gru" => Cell::Gru,
            "indrnn" => Cell::IndRnn(activation),
            "exprnn" => Cell::ExpRnn,
            "cornn" => Cell::CoRnn(Coefs::CORNN),
            "antisymmetric" => Cell::Antisymmetric(Coefs::ANTISYMMETRIC),
            _ => return None,
        })
    }

    /// The same cell with coefficients `c` (the coRNN and the AntisymmetricRNN; others unchanged).
    pub fn with_coefs(self, c: Coefs) -> Self {
        match self {
            Cell::CoRnn(_) => Cell::CoRnn(c),
            Cell::Antisymmetric(_) => Cell::Antisymmetric(c),
            other => other,
        }
    }

    /// The coefficients of the coRNN or the AntisymmetricRNN.
    pub fn coefs(self) -> Option<Coefs> {
        match self {
            Cell::CoRnn(c) | Cell::Antisymmetric(c) => Some(c),
            _ => None,
        }
    }

    /// What the cell declares: its tensors, gates, states and the buffers it needs.
    pub fn spec(self) -> &'static CellSpec {
        match self {
            Cell::Rnn(_) => &vanilla::SPEC,
            Cell::Lstm => &lstm::SPEC,
            Cell::Gru => &gru::SPEC,
            Cell::IndRnn(_) => &indrnn::SPEC,
            Cell::ExpRnn => &exprnn::SPEC,
            Cell::CoRnn(_) => &cornn::SPEC,
            Cell::Antisymmetric(_) => &antisymmetric::SPEC,
        }
    }

    /// G, the number of gate blocks stacked in U and W.
    pub fn gates(self) -> usize {
        self.spec().gates
    }

    /// The spec's name of the cell.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// σ of the plain cell and of the IndRNN; `None` for a cell with its own activations.
    pub fn activation(self) -> Option<Activation> {
        match self {
            Cell::Rnn(act) | Cell::IndRnn(act) => Some(act),
            _ => None,
        }
    }
}

/// σ(x) = 1 / (1 + e^{−x}).
#[inline]
pub fn sigmoid<F: Real>(x: F) -> F {
    F::act_sigmoid::<false>(x)
}

/// Inputs of a batch.
#[derive(Clone, Debug)]
pub enum Inputs<F: Real = f64> {
    /// (T, B) symbol indices into a vocabulary of size D, fed as one-hot vectors (row gathers,
    /// never multiplied out).
    OneHot(Array2<usize>),
    /// (T, B, D) real-valued inputs.
    Dense(Array3<F>),
}

impl<F: Real> Inputs<F> {
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
pub enum Targets<F: Real = f64> {
    /// (L, B) class indices: softmax output, cross-entropy loss.
    Classes(Array2<usize>),
    /// (L, B, O) real targets: identity output, squared-error loss.
    Values(Array3<F>),
}

impl<F: Real> Targets<F> {
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
pub struct Batch<F: Real = f64> {
    /// Inputs, (T, B) or (T, B, D).
    pub inputs: Inputs<F>,
    /// Targets, (L, B) or (L, B, O).
    pub targets: Targets<F>,
    /// Accuracy counts the loss-carrying steps from this one on (0: all; the copy task counts
    /// only its recall steps).
    pub accuracy_from: usize,
}

impl<F: Real> Batch<F> {
    /// (T, B).
    pub fn dims(&self) -> (usize, usize) {
        self.inputs.dims()
    }

    /// The same batch in element type G (tasks draw their data in f64, so runs in either
    /// precision see the same sequences; widening f32 back to f64 is exact).
    pub fn cast<G: Real>(&self) -> Batch<G> {
        let f = |x: &F| G::of(x.f64());
        Batch {
            inputs: match &self.inputs {
                Inputs::OneHot(x) => Inputs::OneHot(x.clone()),
                Inputs::Dense(x) => Inputs::Dense(x.map(f)),
            },
            targets: match &self.targets {
                Targets::Classes(y) => Targets::Classes(y.clone()),
                Targets::Values(y) => Targets::Values(y.map(f)),
            },
            accuracy_from: self.accuracy_from,
        }
    }

    /// A batch of `k` copies of sequence `i` (the spectrum's k directions ride on them).
    pub fn repeat_sequence(&self, i: usize, k: usize) -> Batch<F> {
        // The sequence axis is axis 1 of every tensor; the copies in standard layout.
        fn repeat<A: Clone, D: ndarray::RemoveAxis>(
            x: &ndarray::Array<A, D>,
            i: usize,
            k: usize,
        ) -> ndarray::Array<A, D> {
            x.select(Axis(1), &vec![i; k]).as_standard_layout().into_owned()
        }
        Batch {
            inputs: match &self.inputs {
                Inputs::OneHot(x) => Inputs::OneHot(repeat(x, i, k)),
                Inputs::Dense(x) => Inputs::Dense(repeat(x, i, k)),
            },
            targets: match &self.targets {
                Targets::Classes(y) => Targets::Classes(repeat(y, i, k)),
                Targets::Values(y) => Targets::Values(repeat(y, i, k)),
            },
            accuracy_from: self.accuracy_from,
        }
    }

    /// The batch cut into consecutive batches of at most `n` sequences (n ≥ 1), so that a large
    /// set can go through a trace sized for `n`.
    pub fn split(&self, n: usize) -> Vec<Batch<F>> {
        let b = self.dims().1;
        (0..b)
            .step_by(n.max(1))
            .map(|start| {
                let r = start..(start + n).min(b);
                Batch {
                    inputs: match &self.inputs {
                        Inputs::OneHot(x) => Inputs::OneHot(x.slice(s![.., r.clone()]).to_owned()),
                        Inputs::Dense(x) => Inputs::Dense(x.slice(s![.., r.clone(), ..]).to_owned()),
                    },
                    targets: match &self.targets {
                        Targets::Classes(y) => Targets::Classes(y.slice(s![.., r]).to_owned()),
                        Targets::Values(y) => Targets::Values(y.slice(s![.., r, ..]).to_owned()),
                    },
                    accuracy_from: self.accuracy_from,
                }
            })
            .collect()
    }
}
