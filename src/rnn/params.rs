//! The parameters: the tensors each cell declares, and the network's layers and output head.
//!
//! A cell's file declares its table, a [`CellSpec`]: its gates, states and buffers, and each of
//! its tensors ([`TensorSpec`]: name, role, shape in the layer's sizes, initialisation, PyTorch
//! name). A [`Layer`] holds the entries of all of them one after another in one flat array, in
//! the table's order, each row-major; the passes read views into it (no copy), and the
//! optimisers, clipping, checkpoints, probe and spectrum walk the table without knowing the
//! cell. [`Params`] is the network: its layers (a stack: layer l + 1 reads layer l's output)
//! and the output head (V, c) apart, which is the same for every cell.
//!
//! Shapes: D = the layer's input size, H = hidden size, G = gate blocks, O = output size.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use super::Cell;
use crate::real::Real;

/// One axis of a tensor's shape, in the sizes of its layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dim {
    /// D, the layer's input size.
    Input,
    /// H, the hidden size.
    Hidden,
    /// G·H, the cell's gate blocks stacked.
    Gates,
}

/// How a tensor starts ([`RnnConfig::init`](super::RnnConfig::init) draws it). The rules that
/// draw take a matrix's rows H at a time (a gate block each), so that every block is drawn as
/// one H-row matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// Zeros.
    Zero,
    /// `model.init`, times `model.scale`: the recurrent weights.
    Recurrent,
    /// `model.init_io`: the input weights.
    InputSide,
    /// Zeros, but for gate block k (entries k·H … (k+1)·H − 1), which starts at
    /// `model.forget_bias`: the LSTM's forget gate.
    ForgetBias(usize),
    /// The IndRNN's recurrent weights u, as the paper's code: U(0, recurrent_max) in every layer
    /// but the top, U(2^(−1/T), 2^(1/T)) in the top one (clipped to recurrent_max).
    Diagonal,
    /// U(−0.01, 0.01), the expRNN's modReLU bias, as the paper's code.
    Modulus,
}

/// What the passes every cell shares (`bptt`: the input projection, the recurrent product and
/// the window-wide gradient sums) do with a tensor. Each cell declares every role at most once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// U (G·H, D): read by the input projection U x_t + b, which the time loop forms a block of
    /// steps at a time; dU = Σ_t dgx_tᵀ x_t.
    Input,
    /// W (G·H, H): stored in strips by every pass for the recurrent product h_{t−1} Wᵀ (and W
    /// going back); dW = Σ_t dgh_tᵀ h_{t−1}.
    Recurrent,
    /// b (G·H): added in the input projection; db = Σ_t dgx_t.
    Bias,
    /// bh (G·H): a hidden-side bias the cell's step adds itself (the GRU's, whose b_hn sits
    /// inside r ⊙ ·); dbh = Σ_t dgh_t.
    HiddenBias,
    /// u (H): the IndRNN's recurrent weights, one per unit (u ⊙ h_{t−1}, no product);
    /// du = Σ_t dgx_t ⊙ h_{t−1}.
    Diagonal,
    /// Wz (H, H): a second recurrent matrix, on the second state (the coRNN's z), stored in
    /// strips beside W; dWz = Σ_t dgx_tᵀ z_{t−1}.
    SecondRecurrent,
    /// b (H): the expRNN's modReLU bias, inside the activation (not added in the projection);
    /// db = Σ_t dgx_t ⊙ sign(h_t).
    Modulus,
}

/// What the recurrent product of the shared passes multiplies by: the map M in h_{t−1} Mᵀ,
/// formed from the cell's tensors once per pass (`bptt::begin`), and how dE/dM goes back to
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recurrence {
    /// M = W itself: dW = dM.
    Matrix,
    /// No product: the cell multiplies by its u (the IndRNN).
    Diagonal,
    /// M = W − Wᵀ − γI (the AntisymmetricRNN): dW = dM − dMᵀ.
    Antisymmetric,
    /// M = exp(A), A = P − Pᵀ over P's strict upper triangle (the expRNN): dA = L_exp(Aᵀ, dM)
    /// through the exact Fréchet derivative, dP_ij = dA_ij − dA_ji for i < j, zero elsewhere.
    Exponential,
}

/// One tensor of a cell, as its file declares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorSpec {
    /// Its name in the equations, the docs and the gradient checks (`W`).
    pub name: &'static str,
    /// What the shared passes do with it.
    pub role: Role,
    /// Its shape, axis by axis: `[Dim::Gates, Dim::Hidden]` is (G·H, H). Rank 1 or 2.
    pub shape: &'static [Dim],
    /// How it starts.
    pub start: Start,
    /// PyTorch's name of it in a layer of `nn.RNN`/`nn.LSTM`/`nn.GRU`, without the layer's
    /// suffix: `weight_hh` is `rnn.weight_hh_l0` in a checkpoint.
    pub torch: &'static str,
    /// Where PyTorch keeps two tensors that it adds and the cell their sum, the other one's
    /// name (`bias_ih` beside the plain and LSTM cells' one bias, written as `bias_hh`): a
    /// checkpoint holds it as zeros, and reading adds it in.
    pub torch_zero: Option<&'static str>,
}

/// U (G·H, D), the input weights: PyTorch's `weight_ih`.
pub const INPUT_WEIGHTS: TensorSpec = TensorSpec {
    name: "U",
    role: Role::Input,
    shape: &[Dim::Gates, Dim::Input],
    start: Start::InputSide,
    torch: "weight_ih",
    torch_zero: None,
};

/// W (G·H, H), the recurrent weights: PyTorch's `weight_hh`.
pub const RECURRENT_WEIGHTS: TensorSpec = TensorSpec {
    name: "W",
    role: Role::Recurrent,
    shape: &[Dim::Gates, Dim::Hidden],
    start: Start::Recurrent,
    torch: "weight_hh",
    torch_zero: None,
};

/// b (G·H), one bias where PyTorch adds two, `bias_ih + bias_hh` (the plain and LSTM cells):
/// written as `bias_hh`, with `bias_ih` zeros.
pub const SUMMED_BIAS: TensorSpec = TensorSpec {
    name: "b",
    role: Role::Bias,
    shape: &[Dim::Gates],
    start: Start::Zero,
    torch: "bias_hh",
    torch_zero: Some("bias_ih"),
};

/// b (G·H), the input-side bias, PyTorch's `bias_ih` (the GRU's, and the one bias of the
/// IndRNN, the coRNN and the AntisymmetricRNN).
pub const INPUT_BIAS: TensorSpec = TensorSpec {
    name: "b",
    role: Role::Bias,
    shape: &[Dim::Gates],
    start: Start::Zero,
    torch: "bias_ih",
    torch_zero: None,
};

/// Which way a cell's input projection U x_t + b goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Projection {
    /// Into h_t itself, which the step completes in place (G = 1: the pre-activation is not
    /// kept).
    State,
    /// Into the (T, B, G·H) gate buffer, which the step overwrites with the activated gates.
    Gates,
}

/// What a cell declares about itself, in its file (`vanilla::SPEC`, `lstm::SPEC`, `gru::SPEC`):
/// its tensors, and what the trace keeps for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CellSpec {
    /// The spec's name (`model.cell`).
    pub name: &'static str,
    /// G, the gate blocks stacked in U, W and b.
    pub gates: usize,
    /// Its tensors, in the order of a layer's array: the order the gradient's norm sums them in,
    /// and the gradient checks visit them.
    pub tensors: &'static [TensorSpec],
    /// The states it carries from step to step, by their names in `grad_decay.csv`: h, then a
    /// second (the LSTM's c), which the trace keeps in its `c`, `dc` and `carry_c`. The probe
    /// measures each; the spectrum's state is all of them, h first.
    pub states: &'static [&'static str],
    /// Where its input projection goes.
    pub projection: Projection,
    /// Whether forward keeps a (T, B, H) buffer beside the gates (`aux`: the LSTM's tanh(c_t),
    /// the GRU's hn).
    pub aux: bool,
    /// Whether the hidden side's pre-activations are formed apart each step (`hp`, (B, G·H)) and
    /// their gradients differ from the input side's (`dgh`, (T, B, G·H)): the GRU's, whose r
    /// multiplies hn. Otherwise dgh is dgx.
    pub hidden_side: bool,
    /// The gate block of W that plays the plain cell's W (the candidate's for a gated cell),
    /// whose spectral radius `runs.csv` reports.
    pub radius_block: usize,
    /// What the recurrent product multiplies by.
    pub recurrence: Recurrence,
}

/// One recurrent layer's parameters (or their gradients, or an optimiser's moments, shaped
/// alike): the tensors its cell declares, one after another in one flat array, in the order of
/// the cell's table, each row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer<F: Real = f64> {
    /// The cell, whose table says what the array holds.
    cell: Cell,
    /// D, the layer's input size.
    input: usize,
    /// H, its hidden size.
    hidden: usize,
    /// Where each of the table's tensors ends in `data`, in the table's order (the running sums
    /// of their sizes: kept, so that a step finds a tensor without working out shapes).
    ends: Vec<usize>,
    /// (N) the entries of the cell's tensors, in the table's order (N, the sum of their sizes).
    data: Vec<F>,
}

/// A layer's tensors that the shared passes read, by role, as views into its array.
#[derive(Clone, Copy, Debug)]
pub struct Roles<'a, F> {
    /// (G·H, D) U.
    pub u: ArrayView2<'a, F>,
    /// (G·H, H) W, where the cell has one (not the IndRNN).
    pub w: Option<ArrayView2<'a, F>>,
    /// (G·H) b, where the cell has one (not the expRNN).
    pub b: Option<ArrayView1<'a, F>>,
    /// (G·H) bh, where the cell has one.
    pub bh: Option<ArrayView1<'a, F>>,
    /// (H, H) Wz, where the cell has one (the coRNN).
    pub wz: Option<ArrayView2<'a, F>>,
}

/// [`Roles`], mutable (a gradient's, which the passes add into).
#[derive(Debug)]
pub struct RolesMut<'a, F> {
    /// (G·H, D) dU.
    pub u: ArrayViewMut2<'a, F>,
    /// (G·H, H) dW, where the cell has one.
    pub w: Option<ArrayViewMut2<'a, F>>,
    /// (G·H) db, where the cell has one.
    pub b: Option<ArrayViewMut1<'a, F>>,
    /// (G·H) dbh, where the cell has one.
    pub bh: Option<ArrayViewMut1<'a, F>>,
    /// (H, H) dWz, where the cell has one.
    pub wz: Option<ArrayViewMut2<'a, F>>,
    /// (H) du of the IndRNN, or db of the expRNN's modReLU: the cell's own vector.
    pub own: Option<ArrayViewMut1<'a, F>>,
}

/// The sizes a layer's shapes are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// D, the layer's input size.
    pub input: usize,
    /// H, the hidden size.
    pub hidden: usize,
    /// G, the cell's gate blocks.
    pub gates: usize,
}

impl Sizes {
    /// The size of one axis.
    #[inline]
    pub fn of(self, dim: Dim) -> usize {
        match dim {
            Dim::Input => self.input,
            Dim::Hidden => self.hidden,
            Dim::Gates => self.gates * self.hidden,
        }
    }

    /// A tensor's shape, axis by axis.
    pub fn shape(self, t: &TensorSpec) -> Vec<usize> {
        t.shape.iter().map(|&d| self.of(d)).collect()
    }

    /// A tensor's shape as (rows, columns); a vector's is (n, 1).
    #[inline]
    pub fn rows_cols(self, t: &TensorSpec) -> (usize, usize) {
        (self.of(t.shape[0]), t.shape[1..].iter().map(|&d| self.of(d)).product())
    }

    /// A tensor's number of entries.
    #[inline]
    pub fn len(self, t: &TensorSpec) -> usize {
        let (rows, cols) = self.rows_cols(t);
        rows * cols
    }
}

impl<F: Real> Layer<F> {
    /// All-zero parameters of `cell` for input size `input` (D) and hidden size `hidden` (H).
    pub fn zeros(cell: Cell, input: usize, hidden: usize) -> Self {
        let sizes = Sizes {
            input,
            hidden,
            gates: cell.gates(),
        };
        let ends: Vec<usize> = cell
            .spec()
            .tensors
            .iter()
            .scan(0, |end, t| {
                *end += sizes.len(t);
                Some(*end)
            })
            .collect();
        let data = vec![F::zero(); ends.last().copied().unwrap_or(0)];
        Self {
            cell,
            input,
            hidden,
            ends,
            data,
        }
    }

    /// Zeros of the same cell and sizes.
    pub fn zeros_like(&self) -> Self {
        Self::zeros(self.cell, self.input, self.hidden)
    }

    /// The same parameters in element type G (exact from f32 to f64, rounded the other way).
    pub fn cast<G: Real>(&self) -> Layer<G> {
        Layer {
            cell: self.cell,
            input: self.input,
            hidden: self.hidden,
            ends: self.ends.clone(),
            data: self.data.iter().map(|x| G::of(x.f64())).collect(),
        }
    }

    /// The cell.
    pub fn cell(&self) -> Cell {
        self.cell
    }

    /// The number of entries of all its tensors.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// The number of entries of a layer of `cell` with input size `input` (D) and hidden size
    /// `hidden` (H), worked out from its table without building one.
    pub fn entries(cell: Cell, input: usize, hidden: usize) -> usize {
        let sizes = Sizes {
            input,
            hidden,
            gates: cell.gates(),
        };
        cell.spec().tensors.iter().map(|t| sizes.len(t)).sum()
    }

    /// Whether it has no entries (never, for a layer of H ≥ 1).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// H, the hidden size.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The sizes its tensors' shapes are written in.
    #[inline]
    pub fn sizes(&self) -> Sizes {
        Sizes {
            input: self.input,
            hidden: self.hidden,
            gates: self.cell.gates(),
        }
    }

    /// The cell's tensors, in its table's order, each with its entries (row-major).
    pub fn tensors(&self) -> impl Iterator<Item = (&'static TensorSpec, &[F])> {
        let mut start = 0;
        self.cell.spec().tensors.iter().zip(&self.ends).map(move |(t, &end)| {
            let x = &self.data[start..end];
            start = end;
            (t, x)
        })
    }

    /// [`Layer::tensors`], mutable.
    pub fn tensors_mut(&mut self) -> impl Iterator<Item = (&'static TensorSpec, &mut [F])> {
        let (mut start, mut rest) = (0, &mut self.data[..]);
        self.cell.spec().tensors.iter().zip(&self.ends).map(move |(t, &end)| {
            let (x, after) = std::mem::take(&mut rest).split_at_mut(end - start);
            (start, rest) = (end, after);
            (t, x)
        })
    }

    /// The entries of the tensor of `role`, if the cell declares one (a scan of its table's
    /// roles: cheap enough for a step to call).
    pub fn get(&self, role: Role) -> Option<&[F]> {
        let i = self.cell.spec().tensors.iter().position(|t| t.role == role)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..self.ends[i]])
    }

    /// The tensors the shared passes read, as views (their shapes are their roles').
    pub fn roles(&self) -> Roles<'_, F> {
        let (mut u, mut w, mut b, mut bh, mut wz) = (None, None, None, None, None);
        for (t, x) in self.tensors() {
            match t.role {
                Role::Input => u = Some(x),
                Role::Recurrent => w = Some(x),
                Role::Bias => b = Some(x),
                Role::HiddenBias => bh = Some(x),
                Role::SecondRecurrent => wz = Some(x),
                Role::Diagonal | Role::Modulus => {}
            }
        }
        let (gh, d, h) = (self.cell.gates() * self.hidden, self.input, self.hidden);
        Roles {
            u: ArrayView2::from_shape((gh, d), u.expect("every cell declares U")).expect("(G·H, D)"),
            w: w.map(|w| ArrayView2::from_shape((gh, h), w).expect("(G·H, H)")),
            b: b.map(ArrayView1::from),
            bh: bh.map(ArrayView1::from),
            wz: wz.map(|w| ArrayView2::from_shape((h, h), w).expect("(H, H)")),
        }
    }

    /// [`Layer::roles`], mutable, with the cell's own vector (u or the modReLU bias).
    pub fn roles_mut(&mut self) -> RolesMut<'_, F> {
        let (gh, d, h) = (self.cell.gates() * self.hidden, self.input, self.hidden);
        let (mut u, mut w, mut b, mut bh, mut wz, mut own) = (None, None, None, None, None, None);
        for (t, x) in self.tensors_mut() {
            match t.role {
                Role::Input => u = Some(x),
                Role::Recurrent => w = Some(x),
                Role::Bias => b = Some(x),
                Role::HiddenBias => bh = Some(x),
                Role::SecondRecurrent => wz = Some(x),
                Role::Diagonal | Role::Modulus => own = Some(x),
            }
        }
        RolesMut {
            u: ArrayViewMut2::from_shape((gh, d), u.expect("every cell declares U")).expect("(G·H, D)"),
            w: w.map(|w| ArrayViewMut2::from_shape((gh, h), w).expect("(G·H, H)")),
            b: b.map(ArrayViewMut1::from),
            bh: bh.map(ArrayViewMut1::from),
            wz: wz.map(|w| ArrayViewMut2::from_shape((h, h), w).expect("(H, H)")),
            own: own.map(ArrayViewMut1::from),
        }
    }

    /// The recurrent matrix the cell's Jacobian is built on, (G·H, H) in f64: W, or the map M
    /// of its [`Recurrence`] (diag(u) for the IndRNN, W − Wᵀ − γI, exp(A)); `runs.csv`'s norms
    /// and radii are this matrix's.
    pub fn recurrent_matrix(&self) -> Array2<f64> {
        let h = self.hidden;
        let roles = self.roles();
        let wide = |w: ArrayView2<'_, F>| w.mapv(|x| x.f64());
        match self.cell.spec().recurrence {
            Recurrence::Matrix => wide(roles.w.expect("a W")),
            Recurrence::Diagonal => {
                let u = self.get(Role::Diagonal).expect("the IndRNN declares u");
                Array2::from_shape_fn((h, h), |(i, j)| if i == j { u[i].f64() } else { 0.0 })
            }
            Recurrence::Antisymmetric => {
                let gamma = self.cell.coefs().map_or(0.0, |c| c.gamma);
                super::antisymmetric::map(wide(roles.w.expect("a W")).view(), gamma)
            }
            Recurrence::Exponential => super::exprnn::exponential(roles.w.expect("a P")).exp().to_owned(),
        }
    }
}

/// The network's parameters (also their gradients and an optimiser's moments, whose tensors
/// mirror these), in element type F (f64 unless `model.dtype = "f32"`): the recurrent layers,
/// and the output head apart.
#[derive(Clone, Debug, PartialEq)]
pub struct Params<F: Real = f64> {
    /// The recurrent layers, the first reading the input, each next one the output of the one
    /// below; the head reads the last (the top).
    layers: Vec<Layer<F>>,
    /// Whether layers l ≥ 1 pass up their input plus their cell's state, y = x + h
    /// (`model.residual`), rather than h: how the tensors are wired, not a tensor.
    residual: bool,
    /// (O, H) V, hidden→output (PyTorch's `head.weight`).
    pub v: Array2<F>,
    /// (O) c, the output bias (`head.bias`).
    pub c: Array1<F>,
}

/// The head's tensors' names, after the layers' in [`Params::names`].
const HEAD: [&str; 2] = ["V", "c"];

impl<F: Real> Params<F> {
    /// The network of `layers` (at least one, all of one cell and hidden size, each reading the
    /// one below: input size H from the second on) under the head (V, c), residual between
    /// layers or not.
    pub fn new(layers: Vec<Layer<F>>, residual: bool, v: Array2<F>, c: Array1<F>) -> Self {
        let first = layers.first().expect("at least one layer");
        let (cell, h) = (first.cell, first.hidden);
        assert!(
            layers[1..]
                .iter()
                .all(|l| l.cell == cell && l.hidden == h && l.input == h),
            "a stack of one cell and hidden size, each layer reading the one below"
        );
        assert!(v.dim() == (c.len(), h), "the head reads the top layer's H");
        Self { layers, residual, v, c }
    }

    /// All-zero parameters of a one-layer network of `cell` with input size `d`, hidden size
    /// `h` and output size `o` (a gradient accumulator).
    pub fn zeros(cell: Cell, d: usize, h: usize, o: usize) -> Self {
        Self::zeros_stack(cell, d, h, o, 1, false)
    }

    /// All-zero parameters of a stack of `layers` layers of `cell` (the first with input size
    /// `d`), hidden size `h`, output size `o`, residual or not.
    pub fn zeros_stack(cell: Cell, d: usize, h: usize, o: usize, layers: usize, residual: bool) -> Self {
        let layers = (0..layers)
            .map(|l| Layer::zeros(cell, if l == 0 { d } else { h }, h))
            .collect();
        Self::new(layers, residual, Array2::zeros((o, h)), Array1::zeros(o))
    }

    /// Zeros of the same shapes as `self`.
    pub fn zeros_like(&self) -> Self {
        Self {
            layers: self.layers.iter().map(Layer::zeros_like).collect(),
            residual: self.residual,
            v: Array2::zeros(self.v.raw_dim()),
            c: Array1::zeros(self.c.raw_dim()),
        }
    }

    /// The same parameters in element type G (exact from f32 to f64, rounded the other way).
    pub fn cast<G: Real>(&self) -> Params<G> {
        let f = |x: &F| G::of(x.f64());
        Params {
            layers: self.layers.iter().map(Layer::cast).collect(),
            residual: self.residual,
            v: self.v.map(f),
            c: self.c.map(f),
        }
    }

    /// The cell (every layer's).
    pub fn cell(&self) -> Cell {
        self.layers[0].cell
    }

    /// H, the hidden size (every layer's).
    pub fn hidden(&self) -> usize {
        self.v.ncols()
    }

    /// D, the network's input size (the first layer's).
    pub fn input(&self) -> usize {
        self.layers[0].input
    }

    /// Whether layers l ≥ 1 pass up x + h (`model.residual`).
    pub fn residual(&self) -> bool {
        self.residual
    }

    /// The recurrent layers, the first reading the input.
    pub fn layers(&self) -> &[Layer<F>] {
        &self.layers
    }

    /// The recurrent layers, mutable (their number and shapes stay).
    pub fn layers_mut(&mut self) -> &mut [Layer<F>] {
        &mut self.layers
    }

    /// Every tensor's entries, in a fixed order: each layer's in its cell's table order, then
    /// V and c.
    pub fn slices(&self) -> impl Iterator<Item = &[F]> {
        self.layers.iter().flat_map(|l| l.tensors().map(|(_, x)| x)).chain([
            self.v.as_slice().expect("contiguous"),
            self.c.as_slice().expect("contiguous"),
        ])
    }

    /// [`Params::slices`], mutable.
    pub fn slices_mut(&mut self) -> impl Iterator<Item = &mut [F]> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.tensors_mut().map(|(_, x)| x))
            .chain([
                self.v.as_slice_mut().expect("contiguous"),
                self.c.as_slice_mut().expect("contiguous"),
            ])
    }

    /// Each tensor's role, in the order of [`Params::slices`] (`None` for the head's).
    pub fn tensor_roles(&self) -> impl Iterator<Item = Option<Role>> + '_ {
        let layers = self.layers.iter().flat_map(|l| l.tensors().map(|(t, _)| Some(t.role)));
        layers.chain([None, None])
    }

    /// |x| ≤ `max` for every entry of the tensors of `role` (the IndRNN's u after each update,
    /// `model.recurrent_max`).
    pub fn clamp_role(&mut self, role: Role, max: F) {
        for layer in &mut self.layers {
            for (t, x) in layer.tensors_mut() {
                if t.role == role {
                    x.iter_mut().for_each(|x| *x = x.max(-max).min(max));
                }
            }
        }
    }

    /// The tensors' names, in the order of [`Params::slices`] (`U`, `W`, `b`, …, `V`, `c`).
    pub fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        let layers = self.layers.iter().flat_map(|l| l.tensors().map(|(t, _)| t.name));
        layers.chain(HEAD)
    }

    /// Every entry, mutable, in a few contiguous runs (each layer's array, then V, then c), in
    /// the order of [`Params::slices`]: for element-wise work (the optimisers, clipping), which
    /// needs no tensor's bounds. Parameters of the same shapes give runs of the same lengths.
    pub fn runs_mut(&mut self) -> impl Iterator<Item = &mut [F]> {
        self.layers.iter_mut().map(|l| &mut l.data[..]).chain([
            self.v.as_slice_mut().expect("contiguous"),
            self.c.as_slice_mut().expect("contiguous"),
        ])
    }

    /// [`Params::runs_mut`], read-only.
    pub fn runs(&self) -> impl Iterator<Item = &[F]> {
        self.layers.iter().map(|l| &l.data[..]).chain([
            self.v.as_slice().expect("contiguous"),
            self.c.as_slice().expect("contiguous"),
        ])
    }

    /// Sets every entry to zero, keeping the allocation.
    pub fn fill_zero(&mut self) {
        for t in self.runs_mut() {
            t.fill(F::zero());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rnn::Activation;

    /// Every cell's table is one the shared passes, the initialisation and the checkpoints can
    /// read: U once, W, b, bh, Wz and the cell's own vector at most once each, W where its
    /// recurrence needs one, ranks 1 and 2, drawn tensors in blocks of H rows, PyTorch names
    /// that do not collide, and a layer's views that cover its array in the table's order, with
    /// the shapes the kernels read.
    #[test]
    fn every_cells_table_is_well_formed() {
        for name in Cell::NAMES {
            let cell = Cell::from_name(name, Activation::Tanh).expect("a cell");
            let spec = cell.spec();
            assert_eq!(spec.name, name);
            let count = |role| spec.tensors.iter().filter(|t| t.role == role).count();
            assert_eq!(count(Role::Input), 1, "{name}");
            for role in [Role::Bias, Role::HiddenBias, Role::SecondRecurrent] {
                assert!(count(role) <= 1, "{name} {role:?}");
            }
            assert!(
                count(Role::Diagonal) + count(Role::Modulus) <= 1,
                "{name}: one own vector"
            );
            let needs_w = spec.recurrence != Recurrence::Diagonal;
            assert_eq!(count(Role::Recurrent), usize::from(needs_w), "{name}");
            assert_eq!(count(Role::Diagonal), usize::from(!needs_w), "{name}");
            let mut torch: Vec<&str> = spec
                .tensors
                .iter()
                .flat_map(|t| [Some(t.torch), t.torch_zero])
                .flatten()
                .collect();
            torch.sort_unstable();
            torch.dedup();
            assert_eq!(
                torch.len(),
                spec.tensors
                    .iter()
                    .map(|t| 1 + usize::from(t.torch_zero.is_some()))
                    .sum::<usize>(),
                "{name}: PyTorch names collide"
            );
            assert!((1..=2).contains(&spec.states.len()), "{name}");
            assert_eq!(
                count(Role::SecondRecurrent) > 0,
                spec.states.len() > 1 && spec.gates == 1,
                "{name}"
            );
            assert!(spec.radius_block < spec.gates, "{name}");
            let (d, h) = (3, 5);
            let mut layer = Layer::<f64>::zeros(cell, d, h);
            assert_eq!(Layer::<f64>::entries(cell, d, h), layer.len(), "{name}");
            let sizes = layer.sizes();
            for (t, x) in layer.tensors() {
                assert!((1..=2).contains(&t.shape.len()), "{name} {}", t.name);
                assert_eq!(x.len(), sizes.len(t));
                match t.start {
                    Start::Recurrent | Start::InputSide => assert_eq!(sizes.rows_cols(t).0 % h, 0),
                    Start::ForgetBias(k) => assert!(k < spec.gates && t.shape == [Dim::Gates]),
                    Start::Diagonal | Start::Modulus => assert_eq!(t.shape, [Dim::Hidden], "{name}"),
                    Start::Zero => {}
                }
            }
            // Number the entries, then find each tensor's numbers through the views.
            layer.data.iter_mut().enumerate().for_each(|(i, x)| *x = i as f64);
            let g = spec.gates;
            let roles = layer.roles();
            assert_eq!(roles.u.dim(), (g * h, d));
            for (t, x) in layer.tensors() {
                let first = match t.role {
                    Role::Input => Some(roles.u[[0, 0]]),
                    Role::Recurrent => roles.w.map(|w| {
                        assert_eq!(w.dim(), (g * h, h));
                        assert_eq!(w[[1, 0]], w[[0, 0]] + h as f64, "row-major");
                        w[[0, 0]]
                    }),
                    Role::Bias => roles.b.map(|b| {
                        assert_eq!(b.dim(), g * h);
                        b[0]
                    }),
                    Role::HiddenBias => roles.bh.map(|b| b[0]),
                    Role::SecondRecurrent => roles.wz.map(|w| {
                        assert_eq!(w.dim(), (h, h));
                        w[[0, 0]]
                    }),
                    Role::Diagonal | Role::Modulus => Some(x[0]),
                };
                assert_eq!(first, Some(x[0]), "{name} {}", t.name);
                assert_eq!(layer.get(t.role), Some(x), "{name} {}", t.name);
            }
        }
    }
}
