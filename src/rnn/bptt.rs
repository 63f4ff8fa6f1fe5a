//! Exact backpropagation through time, the same for every cell and any number of stacked
//! layers: the [`Trace`] a forward pass keeps for backward and for the probe (a `Stage` per
//! layer, and `Part`, the time loop's view of one layer for one block of sequences), the
//! windows of truncated BPTT, [`Dropout`] between layers, and the passes built on them:
//! [`forward`], [`backward`], [`train_step`], [`evaluate`] and [`accuracy`]. A cell's own step,
//! forward and backward side by side, lives in its file beside this one and is reached through
//! `forward_step` and `backward_step` here.
//!
//! A stack runs layer by layer over the whole window, as cuDNN does: forward, layer l + 1's
//! input projection is one product over all the window's steps of layer l's output; backward,
//! from the top, a layer's output gradient dE/dy for all steps is one product of the layer
//! above's input-side gradients with its input weights. The probe and the spectrum go back
//! step by step through all layers instead (`step_back_stack`), which keeps every layer's
//! gradient at one step on one scale.
//!
//! Shapes as in [`crate::rnn`]: T = time steps, B = batch, D = input size, H = hidden size,
//! O = output size, G = gates, L = loss-carrying steps (the layers are counted in words).

use ndarray::{
    Array2, Array3, ArrayView2, ArrayView3, ArrayViewMut, ArrayViewMut1, ArrayViewMut2, ArrayViewMut3, Axis, Zip, s,
};

use super::{
    Batch, Cell, Expm, Inputs, Layer, Params, Projection, Recurrence, Roles, RolesMut, Targets, antisymmetric, cornn,
    exprnn, gru, indrnn, lstm, vanilla,
};
use crate::elem;
use crate::real::{Real, Scratch, Strips, gemm, gemm_with_side, matmul};

/// What forward keeps for backward and for the probe, reused across steps so that the time
/// loop never allocates: a `Stage` per layer, and what the head and the passes between layers
/// share. It covers the whole sequence (T below), or one window of truncated BPTT (T = k;
/// index 0 of each layer's state then holds the state entering the window), and a pass over
/// fewer steps or loss rows than it was sized for uses a prefix of each buffer.
#[derive(Clone, Debug)]
pub struct Trace<F: Real = f64> {
    /// The layers' buffers, bottom first.
    pub(super) layers: Vec<Stage<F>>,
    /// (L·B, O) outputs: net for the MSE head, softmax probabilities for cross-entropy.
    pub(super) out: Array2<F>,
    /// (L·B, O) dE/dnet, filled by backward.
    dout: Array2<F>,
    /// (L·B, H) a residual stack's head input, x + h of the top layer at the loss-carrying
    /// steps; empty otherwise (the head then reads the top layer's h).
    head_in: Array2<F>,
    /// (T, B, H) a stack's dE/dy of the layer backward is going through (y its output: what
    /// the layer above, or the head, read), then of the one below it (`dy_below`, the two
    /// trading places); empty for one layer.
    dy: Array3<F>,
    /// (T, B, H) see `dy`.
    dy_below: Array3<F>,
    /// (B, H) the probe's and spectrum's dE/dy of one step, per layer going down (`ext`, then
    /// `ext_below`, trading places).
    ext: Array2<F>,
    /// (B, H) see `ext`.
    ext_below: Array2<F>,
    /// Transposed operands of the window-wide products (Uᵀ, Vᵀ, doutᵀ, dghᵀ, dgxᵀ).
    pub(super) scratch: Scratch<F>,
    /// (G·H) the bias gradients' sums over a window's rows, before they are added (with dense
    /// inputs, (G·H, 4): those and dU's, see `add_row_sums_and_products`).
    sums: Vec<F>,
    /// (Lw·B, 4) a window's dense inputs after a column of ones, for `add_row_sums_and_products`.
    ones: Vec<F>,
}

/// One layer's part of a [`Trace`].
#[derive(Clone, Debug)]
pub(super) struct Stage<F: Real = f64> {
    /// (H, G·H) Wᵀ, stored by every forward pass ([`begin`]) in the strips the forward
    /// recurrence's product reads front to back.
    wt: Strips<F>,
    /// (G·H, H) W, stored with Wᵀ, for the backward recurrence's product.
    w: Strips<F>,
    /// (H, H) Wzᵀ of a cell with a second recurrent matrix (the coRNN's), as `wt`.
    wzt: Strips<F>,
    /// (H, H) Wz, as `w`.
    wz: Strips<F>,
    /// (G·H, H) the map M the product multiplies by where the cell forms it from its tensors
    /// (W − Wᵀ − γI, exp(A)); empty otherwise (M is W).
    m: Array2<F>,
    /// (G·H, H) dE/dM summed over the windows of one backward pass, where M is formed; taken
    /// back to the cell's tensors once the pass is done ([`finish_backward`]).
    dm: Array2<F>,
    /// The expRNN's exp(A) with what its derivative reuses, from the last [`begin`].
    expm: Option<Expm>,
    /// (D, G·H) Uᵀ in standard layout, stored by every forward pass over dense inputs, for the
    /// input projection the time loop does a block of steps at a time.
    ut: Array2<F>,
    /// (T, B, H) the layer's input x_t for a layer above the first: the output of the layer
    /// below (its h, or its x + h in a residual stack), times the dropout mask in training;
    /// empty for the first layer, which reads the batch.
    x: Array3<F>,
    /// (T+1, B, H) hidden states h_0 … h_T with h_0 = 0.
    pub(super) h: Array3<F>,
    /// (T+1, B, H) LSTM cell states c_0 … c_T with c_0 = 0; empty for other cells.
    pub(super) c: Array3<F>,
    /// (T, B, G·H) LSTM and GRU: input projections U x_t + b, overwritten by forward with the
    /// activated gates (LSTM i, f, g, o; GRU r, z, n). Every cell: backward writes
    /// dE/d(input-side pre-activations) here, step by step (once a step's gates have been
    /// read): BPTT stores no second (T, B, G·H) tensor. (The plain cell's forward pass projects
    /// into `h` and does not touch it.)
    pub(super) gates: Array3<F>,
    /// (T, B, H) LSTM: tanh(c_t); GRU: hn = W_hn h_{t−1} + b_hn; empty for the plain cell.
    aux: Array3<F>,
    /// (B, G·H) GRU: hidden-side projection of the current step.
    hp: Array2<F>,
    /// (T, B, G·H) GRU: dE/d(hidden-side pre-activations), which differ from the input side's
    /// in the n block; empty for other cells.
    dgh: Array3<F>,
    /// (B, H) dE/dh_t of the step being processed (from above plus what step t+1 carried back).
    pub(super) dh: Array2<F>,
    /// (B, H) LSTM: the full dE/dc_t of the step being processed.
    pub(super) dc: Array2<F>,
    /// (B, H) dE/dh_{t−1} carried from step t to step t−1.
    pub(super) carry_h: Array2<F>,
    /// (B, H) LSTM: dE/dc_{t−1} carried from step t to step t−1.
    pub(super) carry_c: Array2<F>,
}

/// The state of every layer at one step (h, and c or an empty array), bottom first: what
/// enters a window, kept to recompute it.
pub(super) type Entry<F> = Vec<(Array2<F>, Array2<F>)>;

/// Inverted dropout between the layers of a stack, for one training step (`model.dropout`, as
/// PyTorch's `nn.RNN(dropout = p)`): for each boundary l → l + 1 (one fewer than the layers,
/// none after the top layer) a (T, B, H) mask of 0 (dropped) or 1 / (1 − p) (kept), by which layer l + 1's
/// input x^(l+1)_t = mask ⊙ y^(l)_t is multiplied in the forward pass and its gradient on the
/// way back. Evaluation, the probe and the spectrum run without it.
#[derive(Clone, Debug, PartialEq)]
pub struct Dropout<F: Real = f64> {
    /// (T, B, H) per boundary, bottom first.
    masks: Vec<Array3<F>>,
}

impl<F: Real> Dropout<F> {
    /// Masks for a stack of `layers` layers of hidden size `h` over a batch of `b` sequences of
    /// `t` steps, each entry kept with probability 1 − p (one uniform draw from `rng` per entry,
    /// boundary by boundary, in (step, sequence, unit) order).
    pub fn draw(p: f64, layers: usize, (t, b, h): (usize, usize, usize), rng: &mut impl rand::Rng) -> Self {
        let keep = F::of(1.0 / (1.0 - p));
        let masks = (1..layers)
            .map(|_| Array3::from_shape_simple_fn((t, b, h), || if rng.random::<f64>() < p { F::zero() } else { keep }))
            .collect();
        Self { masks }
    }

    /// Given masks, (T, B, H) per boundary (for tests that hold a mask fixed).
    pub fn from_masks(masks: Vec<Array3<F>>) -> Self {
        Self { masks }
    }

    /// Steps start ..= end (1-based) of the mask between layer l − 1 and layer l (l ≥ 1).
    fn window(&self, l: usize, (start, end): (usize, usize)) -> ArrayView3<'_, F> {
        self.masks[l - 1].slice(s![start - 1..end, .., ..])
    }
}

/// A (T, B, ·) buffer of zeros whose memory Linux is asked to back with 2 MiB pages
/// (`madvise(MADV_HUGEPAGE)`: transparent huge pages, which most distributions give only where
/// asked). The time loop reads and writes its own rows of every such buffer at each step, so a
/// long sequence walks through tens of MiB of them: with 4 KiB pages, a step of f32 H = 128,
/// T = 1000, B = 32 took 2.7 % longer (ratios 0.950–0.991 over eight alternating pairs, AMD
/// EPYC family 26 model 2). Memory not yet backed (a fresh allocation of zeros) gets the large
/// pages when first written. Elsewhere, and on other systems, a plain `Array3::zeros`.
fn zeros_in_huge_pages<F: Real>(shape: (usize, usize, usize)) -> Array3<F> {
    let mut a = Array3::zeros(shape);
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let bytes = a.as_slice_mut().expect("standard layout");
        let (start, len) = (bytes.as_mut_ptr() as usize, std::mem::size_of_val(bytes));
        // Only the 2 MiB pages lying wholly inside the buffer are advised: no other memory.
        let (from, to) = (start.next_multiple_of(HUGE), (start + len) / HUGE * HUGE);
        if to > from {
            // SAFETY: the range lies inside `a`'s own allocation, and the advice changes how
            // its pages are backed, never their contents.
            unsafe {
                libc::madvise(from as *mut libc::c_void, to - from, libc::MADV_HUGEPAGE);
            }
        }
    }
    a
}

impl<F: Real> Default for Trace<F> {
    fn default() -> Self {
        let (e2, e3) = (Array2::zeros((0, 0)), Array3::zeros((0, 0, 0)));
        Self {
            layers: Vec::new(),
            out: e2.clone(),
            dout: e2.clone(),
            head_in: e2.clone(),
            dy: e3.clone(),
            dy_below: e3,
            ext: e2.clone(),
            ext_below: e2,
            scratch: Scratch::default(),
            sums: Vec::new(),
            ones: Vec::new(),
        }
    }
}

impl<F: Real> Default for Stage<F> {
    fn default() -> Self {
        let (e2, e3) = (Array2::zeros((0, 0)), Array3::zeros((0, 0, 0)));
        Self {
            wt: Strips::default(),
            w: Strips::default(),
            wzt: Strips::default(),
            wz: Strips::default(),
            m: e2.clone(),
            dm: e2.clone(),
            expm: None,
            ut: e2.clone(),
            x: e3.clone(),
            h: e3.clone(),
            c: e3.clone(),
            gates: e3.clone(),
            aux: e3.clone(),
            hp: e2.clone(),
            dgh: e3,
            dh: e2.clone(),
            dc: e2.clone(),
            carry_h: e2.clone(),
            carry_c: e2,
        }
    }
}

impl<F: Real> Stage<F> {
    /// Sizes the forward buffers of a layer of `cell` (the first of its stack or not) for T = t
    /// steps of b sequences of hidden size h.
    fn ensure(&mut self, cell: Cell, first: bool, t: usize, b: usize, h: usize) {
        let spec = cell.spec();
        let g = spec.gates;
        if self.h.dim() != (t + 1, b, h) || self.gates.dim() != (t, b, g * h) || self.x.is_empty() != first {
            let sized = |on: bool, shape: (usize, usize, usize)| {
                if on {
                    zeros_in_huge_pages(shape)
                } else {
                    Array3::zeros((0, 0, 0))
                }
            };
            self.x = sized(!first, (t, b, h));
            self.h = zeros_in_huge_pages((t + 1, b, h));
            self.c = sized(spec.states.len() > 1, (t + 1, b, h));
            self.gates = zeros_in_huge_pages((t, b, g * h));
            self.aux = sized(spec.aux, (t, b, h));
            self.hp = Array2::zeros(if spec.hidden_side { (b, g * h) } else { (0, 0) });
            // Backward's buffers are sized on first use: an evaluation-only trace never needs them.
            self.dgh = Array3::zeros((0, 0, 0));
            self.dh = Array2::zeros((b, h));
            self.dc = Array2::zeros((b, h));
            self.carry_h = Array2::zeros((b, h));
            self.carry_c = Array2::zeros((b, h));
        }
    }

    /// The time loop's view of all this layer's sequences, `dout` and `dy` being the trace's.
    fn part<'a>(&'a mut self, dout: ArrayView2<'a, F>, dy: ArrayView3<'a, F>, threads: usize) -> Part<'a, F> {
        Part {
            wt: &self.wt,
            w: &self.w,
            wzt: &self.wzt,
            wz: &self.wz,
            ut: self.ut.view(),
            x: self.x.view(),
            h: self.h.view_mut(),
            c: self.c.view_mut(),
            gates: self.gates.view_mut(),
            aux: self.aux.view_mut(),
            dgh: self.dgh.view_mut(),
            hp: self.hp.view_mut(),
            dh: self.dh.view_mut(),
            dc: self.dc.view_mut(),
            carry_h: self.carry_h.view_mut(),
            carry_c: self.carry_c.view_mut(),
            dout,
            dy,
            row0: 0,
            threads,
        }
    }
}

impl<F: Real> Trace<F> {
    /// From now on, shares this trace's work among at most `threads` of the pool's threads (at
    /// least one): a run training beside others takes its share of the pool, not all of it
    /// (splitting work that no idle thread will take costs the calls and the narrower pieces:
    /// a 12-run sweep's runs summed 4 % more seconds on two threads that way). The bits do not
    /// depend on it.
    pub fn share(&mut self, threads: usize) {
        self.scratch.share(threads);
    }

    /// The threads this trace's work may be shared among: its share (kept by its scratch, whose
    /// products use it too), within the pool's.
    fn threads(&self) -> usize {
        self.scratch.threads()
    }

    /// Sizes the buffers of a forward pass of `p` over T = t steps of b sequences with l
    /// loss-carrying steps.
    fn ensure<G: Real>(&mut self, p: &Params<G>, t: usize, b: usize, l: usize) {
        let (cell, h, o) = (p.cell(), p.hidden(), p.v.nrows());
        self.layers.resize_with(p.layers().len(), Stage::default);
        for (i, stage) in self.layers.iter_mut().enumerate() {
            stage.ensure(cell, i == 0, t, b, h);
        }
        if self.out.dim() != (l * b, o) {
            self.out = Array2::zeros((l * b, o));
            self.dout = Array2::zeros((l * b, o));
        }
        let head_in = if p.residual() && p.layers().len() > 1 {
            (l * b, h)
        } else {
            (0, 0)
        };
        if self.head_in.dim() != head_in {
            self.head_in = Array2::zeros(head_in);
        }
    }

    /// Sizes the buffers only backward (and the probe) use, for the shapes of the last forward.
    pub(super) fn ensure_backward(&mut self, cell: Cell) {
        for stage in &mut self.layers {
            let shape = stage.gates.dim();
            if cell.spec().hidden_side && stage.dgh.dim() != shape {
                stage.dgh = zeros_in_huge_pages(shape);
            }
        }
        let shape = self.layers[0].h.dim();
        let (t, b, h) = (shape.0 - 1, shape.1, shape.2);
        let stack = if self.layers.len() > 1 { (t, b, h) } else { (0, 0, 0) };
        if self.dy.dim() != stack {
            self.dy = zeros_in_huge_pages(stack);
            self.dy_below = zeros_in_huge_pages(stack);
        }
        if self.ext.dim() != (b, h) {
            self.ext = Array2::zeros((b, h));
            self.ext_below = Array2::zeros((b, h));
        }
    }

    /// (L·B, O) outputs of the last forward pass (probabilities for the cross-entropy head).
    pub fn outputs(&self) -> ArrayView2<'_, F> {
        self.out.view()
    }

    /// The time loop's view of all of layer l's sequences.
    pub(crate) fn part(&mut self, l: usize) -> Part<'_, F> {
        let threads = self.threads();
        self.layers[l].part(self.dout.view(), self.dy.view(), threads)
    }

    /// The state entering the trace (index 0) of every layer.
    pub(super) fn entry(&self) -> Entry<F> {
        let at0 = |x: &Array3<F>| {
            if x.is_empty() {
                Array2::zeros((0, 0))
            } else {
                x.index_axis(Axis(0), 0).to_owned()
            }
        };
        self.layers.iter().map(|s| (at0(&s.h), at0(&s.c))).collect()
    }

    /// Sets the state entering the trace to `entry` (as [`Trace::entry`] gave it).
    pub(super) fn enter(&mut self, entry: &Entry<F>) {
        for (stage, (h, c)) in self.layers.iter_mut().zip(entry) {
            stage.h.index_axis_mut(Axis(0), 0).assign(h);
            if !c.is_empty() {
                stage.c.index_axis_mut(Axis(0), 0).assign(c);
            }
        }
    }
}

/// The time loop's view of one layer's [`Stage`]: its per-step buffers for a block of the
/// batch's sequences (all of them, or the rows a [`Part::split_at`] gave it). The recurrence of
/// one sequence never reads another's rows, so blocks of sequences can run their time loops on
/// different threads ([`in_parts`]) and every number comes out as on one thread.
pub(crate) struct Part<'a, F: Real> {
    /// (H, G·H) Wᵀ in strips, shared.
    pub(super) wt: &'a Strips<F>,
    /// (G·H, H) W in strips, shared.
    pub(super) w: &'a Strips<F>,
    /// (H, H) Wzᵀ in strips (the coRNN's), shared.
    pub(super) wzt: &'a Strips<F>,
    /// (H, H) Wz in strips, shared.
    pub(super) wz: &'a Strips<F>,
    /// (D, G·H) Uᵀ (dense inputs), shared.
    ut: ArrayView2<'a, F>,
    // This block's b sequences of the stage's buffers of the same names (b = B for the whole
    // batch; an unused buffer stays empty):
    /// (T, b, H) the layer's input, above the first layer.
    x: ArrayView3<'a, F>,
    /// (T+1, b, H) hidden states.
    pub(super) h: ArrayViewMut3<'a, F>,
    /// (T+1, b, H) LSTM cell states.
    pub(super) c: ArrayViewMut3<'a, F>,
    /// (T, b, G·H) pre-activations or gates, then their gradients.
    pub(super) gates: ArrayViewMut3<'a, F>,
    /// (T, b, H) LSTM tanh(c_t), GRU hn.
    pub(super) aux: ArrayViewMut3<'a, F>,
    /// (T, b, G·H) GRU hidden-side gradients.
    pub(super) dgh: ArrayViewMut3<'a, F>,
    /// (b, G·H) GRU hidden-side projection.
    pub(super) hp: ArrayViewMut2<'a, F>,
    /// (b, H) dE/dh_t.
    pub(super) dh: ArrayViewMut2<'a, F>,
    /// (b, H) LSTM dE/dc_t.
    pub(super) dc: ArrayViewMut2<'a, F>,
    /// (b, H) dE/dh_{t−1} carried back.
    pub(super) carry_h: ArrayViewMut2<'a, F>,
    /// (b, H) LSTM dE/dc_{t−1} carried back.
    pub(super) carry_c: ArrayViewMut2<'a, F>,
    /// (L·B, O) dE/dnet of every sequence (read by backward at loss-carrying steps), shared.
    dout: ArrayView2<'a, F>,
    /// (T, b, H) a stack's dE/dy of this layer (its output's gradient from above).
    dy: ArrayView3<'a, F>,
    /// The batch row of this block's first sequence.
    row0: usize,
    /// The pool's threads this block's products may be shared among: the trace's for the whole
    /// batch, one for a block [`in_parts`] runs beside others.
    pub(super) threads: usize,
}

impl<'a, F: Real> Part<'a, F> {
    /// The input projection U x_t + b of this block's sequences at trace steps t0 ..= t1 of a
    /// window whose first step is `start` of `batch`: into h_t itself for the plain cell (the
    /// step completes it in place), into the gates for the others. The first layer reads the
    /// batch's inputs, a layer above it its `x`. Each element is the same ordered sum over the
    /// inputs, then plus the bias, however the steps and sequences are grouped: one product for
    /// the steps at once when this block holds the whole batch (its rows are then contiguous),
    /// one per step otherwise.
    fn project(&mut self, p: &Roles<'_, F>, cell: Cell, batch: &Batch<F>, start: usize, (t0, t1): (usize, usize)) {
        let (rows, row0) = (self.rows(), self.row0);
        let mut to = match cell.spec().projection {
            Projection::State => self.h.slice_mut(s![t0..=t1, .., ..]),
            Projection::Gates => self.gates.slice_mut(s![t0 - 1..t1, .., ..]),
        }; // (steps, b, G·H)
        let (first, len) = (start + t0 - 2, t1 + 1 - t0); // batch index of trace step t0; steps
        let dense = match &batch.inputs {
            _ if !self.x.is_empty() => Some(self.x.slice(s![t0 - 1..t1, .., ..])),
            Inputs::Dense(x) => Some(x.slice(s![first..first + len, row0..row0 + rows, ..])),
            Inputs::OneHot(_) => None,
        }; // (steps, b, D)
        match (dense, &batch.inputs) {
            (Some(x), _) => {
                let (ut, bias) = (self.ut, p.b.map(|b| b.to_slice().expect("contiguous")));
                let product = |x: ArrayView2<'_, F>, mut to: ArrayViewMut2<'_, F>| {
                    matmul(x, ut, to.view_mut(), false);
                    if let Some(bias) = bias {
                        add_to_rows(to.as_slice_mut().expect("contiguous"), bias);
                    }
                };
                if rows == batch.dims().1 {
                    let (d, g) = (x.dim().2, to.dim().2);
                    let x = x.into_shape_with_order((len * rows, d)).expect("contiguous");
                    product(x, to.into_shape_with_order((len * rows, g)).expect("contiguous"));
                } else {
                    for (x, to) in x.outer_iter().zip(to.outer_iter_mut()) {
                        product(x, to);
                    }
                }
            }
            (None, Inputs::OneHot(idx)) => {
                // One-hot input: U x_t = U[:, k], a column gather.
                let idx = idx.slice(s![first..first + len, row0..row0 + rows]);
                for (mut row, &k) in to.rows_mut().into_iter().zip(idx.iter()) {
                    match &p.b {
                        Some(b) => Zip::from(&mut row)
                            .and(p.u.column(k))
                            .and(b)
                            .for_each(|r, &u, &bias| *r = u + bias),
                        None => row.assign(&p.u.column(k)),
                    }
                }
            }
            (None, Inputs::Dense(_)) => unreachable!("dense inputs are projected above"),
        }
    }

    /// Sequences in this block.
    fn rows(&self) -> usize {
        self.dh.nrows()
    }

    /// The block's first `r` sequences and the rest (a buffer the cell does not use is empty
    /// and stays so on both sides).
    fn split_at(self, r: usize) -> (Self, Self) {
        /// Splits along the sequence axis (1 of the (T, B, ·) buffers, 0 of the (B, ·) ones).
        fn split<F, D: ndarray::Dimension>(
            x: ArrayViewMut<'_, F, D>,
            axis: usize,
            r: usize,
        ) -> [ArrayViewMut<'_, F, D>; 2] {
            let r = if x.is_empty() { 0 } else { r };
            let (a, b) = x.split_at(Axis(axis), r);
            [a, b]
        }
        /// [`split`] of a read-only (T, B, ·) buffer.
        fn split_view<F>(x: ArrayView3<'_, F>, r: usize) -> [ArrayView3<'_, F>; 2] {
            let r = if x.is_empty() { 0 } else { r };
            let (a, b) = x.split_at(Axis(1), r);
            [a, b]
        }
        let [[h1, h2], [c1, c2], [g1, g2], [a1, a2], [d1, d2]] =
            [self.h, self.c, self.gates, self.aux, self.dgh].map(|x| split(x, 1, r));
        let [[p1, p2], [dh1, dh2], [dc1, dc2], [ch1, ch2], [cc1, cc2]] =
            [self.hp, self.dh, self.dc, self.carry_h, self.carry_c].map(|x| split(x, 0, r));
        let [[x1, x2], [y1, y2]] = [self.x, self.dy].map(|x| split_view(x, r));
        let first = Part {
            wt: self.wt,
            w: self.w,
            wzt: self.wzt,
            wz: self.wz,
            ut: self.ut,
            x: x1,
            h: h1,
            c: c1,
            gates: g1,
            aux: a1,
            dgh: d1,
            hp: p1,
            dh: dh1,
            dc: dc1,
            carry_h: ch1,
            carry_c: cc1,
            dout: self.dout,
            dy: y1,
            row0: self.row0,
            threads: self.threads,
        };
        let rest = Part {
            wt: self.wt,
            w: self.w,
            wzt: self.wzt,
            wz: self.wz,
            ut: self.ut,
            x: x2,
            h: h2,
            c: c2,
            gates: g2,
            aux: a2,
            dgh: d2,
            hp: p2,
            dh: dh2,
            dc: dc2,
            carry_h: ch2,
            carry_c: cc2,
            dout: self.dout,
            dy: y2,
            row0: self.row0 + r,
            threads: self.threads,
        };
        (first, rest)
    }
}

/// Steps t − 1 (to read) and t (to write) of a (T+1, b, ·) buffer, as two (b, ·) views: a split
/// along the steps and one index on each side. (`multi_slice_mut` with two `s![…]` does the same
/// but slices all three axes and checks the two for overlap: 12 % of a step at H = 32, B = 1.)
pub(crate) fn prev_and_cur<'s, F>(
    x: &'s mut ArrayViewMut3<'_, F>,
    t: usize,
) -> (ArrayViewMut2<'s, F>, ArrayViewMut2<'s, F>) {
    let (before, from) = x.view_mut().split_at(Axis(0), t);
    (before.index_axis_move(Axis(0), t - 1), from.index_axis_move(Axis(0), 0))
}

/// Multiply–adds of one time step's recurrent product a block of sequences needs at least
/// before the time loop is split (at H = 64, 16 sequences): below it, a second thread's share
/// would not pay for the calls it adds.
const PART_WORK: usize = 1 << 16;

/// Runs `f` (a time loop) over the sequences of `part`, split into blocks of consecutive
/// sequences shared among the part's threads of the rayon pool (`rayon::join`; one block per
/// thread at most, each of at least 4 sequences and [`PART_WORK`] multiply–adds per step, where
/// `per_row` is one sequence's). Each sequence's numbers are computed exactly as on one thread.
fn in_parts<F: Real>(part: Part<'_, F>, per_row: usize, f: &(impl Fn(&mut Part<'_, F>) + Sync)) {
    let threads = part.threads;
    split_parts(part, threads, per_row, f);
}

/// [`in_parts`] over `threads` threads: half of them take the first `threads / 2` shares of the
/// rows, the other half the rest, recursively.
fn split_parts<F: Real>(mut part: Part<'_, F>, threads: usize, per_row: usize, f: &(impl Fn(&mut Part<'_, F>) + Sync)) {
    let rows = part.rows();
    let first = threads / 2;
    let r = rows * first / threads.max(1);
    if threads < 2 || r < 4 || rows - r < 4 || r * per_row < PART_WORK {
        part.threads = threads; // its products get this block's threads only
        f(&mut part);
        return;
    }
    let (x, y) = part.split_at(r);
    rayon::join(
        || split_parts(x, first, per_row, f),
        || split_parts(y, threads - first, per_row, f),
    );
}

/// Step t of `cell`, forward: its file's `forward_step`.
fn forward_step<F: Real>(p: &Layer<F>, cell: Cell, tr: &mut Part<'_, F>, t: usize) {
    match cell {
        Cell::Rnn(act) => vanilla::forward_step(p, act, tr, t),
        Cell::Lstm => lstm::forward_step(p, tr, t),
        Cell::Gru => gru::forward_step(p, tr, t),
        Cell::IndRnn(act) => indrnn::forward_step(p, act, tr, t),
        Cell::ExpRnn => exprnn::forward_step(p, tr, t),
        Cell::CoRnn(c) => cornn::forward_step(p, c, tr, t),
        Cell::Antisymmetric(c) => antisymmetric::forward_step(p, c.epsilon, tr, t),
    }
}

/// Step t of `cell`, backward: its file's `backward_step`.
pub(super) fn backward_step<F: Real>(p: &Layer<F>, cell: Cell, tr: &mut Part<'_, F>, t: usize, carry: bool) {
    match cell {
        Cell::Rnn(act) => vanilla::backward_step(p, act, tr, t, carry),
        Cell::Lstm => lstm::backward_step(p, tr, t, carry),
        Cell::Gru => gru::backward_step(p, tr, t, carry),
        Cell::IndRnn(act) => indrnn::backward_step(p, act, tr, t, carry),
        Cell::ExpRnn => exprnn::backward_step(p, tr, t, carry),
        Cell::CoRnn(c) => cornn::backward_step(p, c, tr, t, carry),
        Cell::Antisymmetric(c) => antisymmetric::backward_step(p, c.epsilon, tr, t, carry),
    }
}

/// Back through step t of every layer, top to bottom, on the whole batch (the probe's and the
/// spectrum's order, which keeps all layers at one step together): each layer's `dh` (and
/// `carry_c`) holds on entry what reaches its state at step t from step t + 1 (or from outside,
/// the spectrum's directions); `head` is dE/dy_t of the top layer from the head, if any. Each
/// layer's dh gets what reaches it from above at step t, dE/dy^(l)_t (from the layer above:
/// back through its input weights, times nothing: no dropout here, plus, in a residual stack,
/// what reached that layer's y); then `look(l, stage, false)` sees the layer's full dE/dh_t,
/// the cell's step goes back (dc, carry_h, carry_c filled, carry_h only when `carry`), and
/// `look(l, stage, true)` sees the result.
pub(super) fn step_back_stack<F: Real>(
    p: &Params<F>,
    tr: &mut Trace<F>,
    t: usize,
    carry: bool,
    head: Option<ArrayView2<'_, F>>,
    mut look: impl FnMut(usize, &Stage<F>, bool),
) {
    let (cell, top) = (p.cell(), p.layers().len() - 1);
    let stack = top > 0;
    if stack {
        match head {
            Some(e) => tr.ext.assign(&e),
            None => tr.ext.fill(F::zero()),
        }
    }
    for (l, layer) in p.layers().iter().enumerate().rev() {
        if stack {
            let stage = &mut tr.layers[l];
            stage.dh += &tr.ext; // dE/dh_t += dE/dy_t (y = h, or x + h)
        } else if let Some(e) = head {
            tr.layers[l].dh += &e;
        }
        look(l, &tr.layers[l], false);
        backward_step(layer, cell, &mut tr.part(l), t, carry);
        look(l, &tr.layers[l], true);
        if l > 0 {
            // dE/dy^(l−1)_t = dE/dx^(l)_t = dgx_t U (+ dE/dy^(l)_t through the residual path).
            let dgx = tr.layers[l].gates.index_axis(Axis(0), t - 1); // (B, G·H)
            matmul(dgx, layer.roles().u, tr.ext_below.view_mut(), false);
            if p.residual() {
                tr.ext_below += &tr.ext;
            }
            std::mem::swap(&mut tr.ext, &mut tr.ext_below);
        }
    }
}

/// Forward pass over a batch; returns the loss E, averaged over the L·B (step, sequence) pairs
/// that carry a loss. Squared error is also averaged over the O outputs.
pub fn forward<F: Real>(p: &Params<F>, batch: &Batch<F>, tr: &mut Trace<F>) -> f64 {
    let t_len = batch.dims().0;
    begin(p, batch, tr, t_len);
    forward_window(p, batch, tr, (1, t_len), None) / loss_count(batch)
}

/// Backward pass through the batch that the last [`forward`] saw, full backpropagation through
/// time; **adds** dE/dθ into `g`. It consumes the trace (the gate buffer is reused for the
/// gradients): run [`forward`] again before another backward.
pub fn backward<F: Real>(p: &Params<F>, batch: &Batch<F>, tr: &mut Trace<F>, g: &mut Params<F>) {
    let t_len = batch.dims().0;
    backward_window(p, batch, tr, (1, t_len), None, g);
    finish_backward(p, tr, g);
}

/// One training step's forward and backward passes: returns the loss E (as [`forward`], but
/// with `dropout`'s masks between layers where given) and **adds** dE/dθ into `g`.
///
/// `bptt = None` is full backpropagation through time. `Some(k)` truncates it: the backward
/// recurrence is cut every k steps counted back from the last step, so steps T−k+1 … T form
/// one window, T−2k+1 … T−k the next, and so on; a loss at step t reaches back only to the
/// start of its window (for a many-to-one task, exactly k steps). Equivalently, the state
/// entering each window (every layer's h, and c for the LSTM) is treated as a constant. The
/// windows are run one after the other, forward then backward, through a trace of k steps:
/// memory is bounded by the window, not the sequence.
pub fn train_step<F: Real>(
    p: &Params<F>,
    batch: &Batch<F>,
    tr: &mut Trace<F>,
    bptt: Option<usize>,
    dropout: Option<&Dropout<F>>,
    g: &mut Params<F>,
) -> f64 {
    let t_len = batch.dims().0;
    let k = bptt.unwrap_or(t_len).min(t_len);
    let l = batch.targets.steps();
    begin(p, batch, tr, k);
    let mut sum = 0.0;
    let mut last_len = 0;
    for (start, end) in windows(t_len, k) {
        carry_state(tr, last_len); // the state entering this window, left by the last one
        sum += forward_window(p, batch, tr, (start, end), dropout);
        if end > t_len - l {
            backward_window(p, batch, tr, (start, end), dropout, g); // the window carries a loss
        }
        last_len = end + 1 - start;
    }
    finish_backward(p, tr, g);
    sum / loss_count(batch)
}

/// The windows (start, end) of truncated BPTT with window k, 1-based and in time order: the
/// last ends at step T, each starts k − 1 steps before its end, the first at step 1.
pub(super) fn windows(t_len: usize, k: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = (0..t_len.div_ceil(k))
        .map(|i| {
            let end = t_len - i * k;
            (end.saturating_sub(k) + 1, end)
        })
        .collect();
    out.reverse();
    out
}

/// The number the summed loss is divided by: L·B pairs, times O for squared error.
fn loss_count<F: Real>(batch: &Batch<F>) -> f64 {
    let n = (batch.targets.steps() * batch.dims().1) as f64;
    match &batch.targets {
        Targets::Values(y) => n * y.dim().2 as f64,
        Targets::Classes(_) => n,
    }
}

/// Elements of W from which its two packings ([`begin`]) run on two threads when the pool has
/// them (H = 256 for the plain cell): a copy of 64 Ki elements takes tens of µs, a join a few.
const PACK_WORK: usize = 1 << 16;

/// Readies the trace for a pass over `batch` in windows of k steps (k = T: one window): sizes
/// it, stores every layer's Wᵀ and W in strips (row-major for fewer than 4 sequences, whose
/// one-row tiles run wider than a strip) and sets the entry state h_0 = 0 (and c_0 = 0).
pub(super) fn begin<F: Real>(p: &Params<F>, batch: &Batch<F>, tr: &mut Trace<F>, k: usize) {
    let b = batch.dims().1;
    let l = batch.targets.steps();
    tr.ensure(p, k, b, l.min(k));
    let two = tr.threads() > 1;
    for (stage, layer) in tr.layers.iter_mut().zip(p.layers()) {
        let roles = layer.roles();
        // M, the matrix the recurrent product multiplies by: W, or formed from the tensors.
        match layer.cell().spec().recurrence {
            Recurrence::Matrix | Recurrence::Diagonal => {}
            Recurrence::Antisymmetric => {
                let gamma = layer.cell().coefs().map_or(0.0, |c| c.gamma);
                stage.m = antisymmetric::map(roles.w.expect("a W"), gamma);
            }
            Recurrence::Exponential => {
                exprnn::set_exponential(&mut stage.expm, roles.w.expect("a P"));
                stage.m = stage.expm.as_ref().expect("just set").exp().mapv(F::of);
            }
        }
        let derived = matches!(
            layer.cell().spec().recurrence,
            Recurrence::Antisymmetric | Recurrence::Exponential
        );
        if derived {
            if stage.dm.dim() != stage.m.dim() {
                stage.dm = Array2::zeros(stage.m.dim());
            }
            stage.dm.fill(F::zero());
        }
        let map = if derived { Some(stage.m.view()) } else { roles.w };
        for (m, wt, w) in [
            (map, &mut stage.wt, &mut stage.w),
            (roles.wz, &mut stage.wzt, &mut stage.wz),
        ] {
            let Some(m) = m else { continue };
            if m.len() >= PACK_WORK && two {
                rayon::join(|| wt.pack(m.t(), b >= 4), || w.pack(m, b >= 4));
            } else {
                wt.pack(m.t(), b >= 4);
                w.pack(m, b >= 4);
            }
        }
        stage.h.index_axis_mut(Axis(0), 0).fill(F::zero());
        if !stage.c.is_empty() {
            stage.c.index_axis_mut(Axis(0), 0).fill(F::zero());
        }
    }
}

/// After the windows of a backward pass: dE/dM, summed over them where the cell forms M from
/// its tensors, goes back to those tensors (dW = dM − dMᵀ; dP through the exponential's
/// Fréchet derivative), once per pass.
fn finish_backward<F: Real>(p: &Params<F>, tr: &mut Trace<F>, g: &mut Params<F>) {
    for ((stage, layer), grad) in tr.layers.iter_mut().zip(p.layers()).zip(g.layers_mut()) {
        let dw = grad.roles_mut().w;
        match (layer.cell().spec().recurrence, dw) {
            (Recurrence::Antisymmetric, Some(dw)) => antisymmetric::add_map_gradient(dw, stage.dm.view()),
            (Recurrence::Exponential, Some(dp)) => {
                let expm = stage.expm.as_mut().expect("begin formed exp(A)");
                exprnn::add_exponential_gradient(dp, expm, stage.dm.view());
            }
            _ => {}
        }
    }
}

/// Moves the state after the last window (its `len` steps) to the trace's entry, in every
/// layer; nothing for the first window (len = 0), whose entry is the zero state.
pub(super) fn carry_state<F: Real>(tr: &mut Trace<F>, len: usize) {
    if len > 0 {
        for stage in &mut tr.layers {
            let (mut first, last) = stage.h.multi_slice_mut((s![0, .., ..], s![len, .., ..]));
            first.assign(&last);
            if !stage.c.is_empty() {
                let (mut first, last) = stage.c.multi_slice_mut((s![0, .., ..], s![len, .., ..]));
                first.assign(&last);
            }
        }
    }
}

/// The loss-carrying steps of window (start, end), as (first step, count, targets row of the
/// first step); count 0 if none. Loss steps are T−L+1 … T, targets row i being step T−L+1+i.
pub(super) fn window_losses<F: Real>(batch: &Batch<F>, (start, end): (usize, usize)) -> (usize, usize, usize) {
    let first_loss = batch.dims().0 + 1 - batch.targets.steps();
    let first = start.max(first_loss);
    (first, (end + 1).saturating_sub(first), first - first_loss)
}

/// Bytes of input projections the time loop forms at a time, right before the steps that read
/// them (a quarter of the smallest second-level cache we run on, 1 MiB). Projecting the whole
/// window before the time loop made a step at f32 H = 128, T = 1000, B = 32 4 % slower (its
/// 16 MiB of projections had left the cache by the time the steps read them); projecting block
/// by block outside the threads' time loops cost a join per block: 6–8 % with two threads at
/// H = 512, B = 32 (AMD EPYC family 26 model 2).
const PROJECT_BYTES: usize = 256 << 10;

/// Forward over steps start ..= end of `batch` from the state the trace holds at its index 0
/// (trace index i is step start − 1 + i), layer by layer, each over the whole window; fills
/// the outputs of the window's loss-carrying steps and returns their loss summed (not
/// averaged) over (step, sequence) pairs and outputs. With `dropout`, each layer above the
/// first reads the one below times its mask.
pub(super) fn forward_window<F: Real>(
    p: &Params<F>,
    batch: &Batch<F>,
    tr: &mut Trace<F>,
    (start, end): (usize, usize),
    dropout: Option<&Dropout<F>>,
) -> f64 {
    let b = batch.dims().1;
    let (o, top, h) = (p.v.nrows(), p.layers().len() - 1, p.hidden());
    let len = end + 1 - start;
    for (l, layer) in p.layers().iter().enumerate() {
        if l > 0 {
            layer_input(p, tr, l, len, dropout.map(|d| d.window(l, (start, end))));
        }
        forward_layer(layer, l, batch, tr, (start, len));
    }

    // Output projection of the loss-carrying steps: net = Y Vᵀ + c, (Lw·B, O), Y the top
    // layer's output (its h, or x + h in a residual stack).
    let (_, lw, target_rows) = window_losses(batch, (start, end));
    if lw == 0 {
        return 0.0;
    }
    let rows = lw * b;
    let last = &tr.layers[top];
    let hs = last.h.slice(s![len + 1 - lw..len + 1, .., ..]);
    let hs = hs.into_shape_with_order((rows, h)).expect("contiguous");
    let states = if tr.head_in.is_empty() {
        hs
    } else {
        let xs = last.x.slice(s![len - lw..len, .., ..]);
        let xs = xs.into_shape_with_order((rows, h)).expect("contiguous");
        let mut y = tr.head_in.slice_mut(s![..rows, ..]);
        Zip::from(&mut y).and(&xs).and(&hs).for_each(|y, &x, &h| *y = x + h);
        tr.head_in.slice(s![..rows, ..])
    };
    let mut out = tr.out.slice_mut(s![..rows, ..]);
    gemm(states, p.v.t(), out.view_mut(), false, &mut tr.scratch);
    out += &p.c;

    // The loss is summed in f64 whatever F is: it is reported, not differentiated.
    match &batch.targets {
        Targets::Values(y) => {
            let y = y.slice(s![target_rows..target_rows + lw, .., ..]);
            let y = y.into_shape_with_order((rows, o)).expect("contiguous");
            Zip::from(&out).and(&y).fold(0.0, |acc, &net, &y| {
                let e = (net - y).f64();
                acc + e * e
            })
        }
        Targets::Classes(y) => {
            let y = y.slice(s![target_rows..target_rows + lw, ..]);
            let mut nll = 0.0;
            for (mut row, &k) in out.rows_mut().into_iter().zip(y.iter()) {
                let net = row[k];
                let (max, sum) = softmax_in_place(row.as_slice_mut().expect("contiguous"));
                nll -= if row[k] > F::zero() {
                    elem::ln(row[k].f64())
                } else {
                    // p_k underflowed (a logit more than ~745 below the largest: an exploding
                    // network): −ln p_k from the logits, finite, as PyTorch's cross-entropy.
                    (net - max).f64() - elem::ln(sum.f64())
                };
            }
            nll
        }
    }
}

/// Layer l's input over the window's `len` steps (l ≥ 1), into its `x`: the output of layer
/// l − 1, y = h (or x + h in a residual stack, from its second layer on), times the dropout
/// mask where one is given.
fn layer_input<F: Real>(p: &Params<F>, tr: &mut Trace<F>, l: usize, len: usize, mask: Option<ArrayView3<'_, F>>) {
    let (below, above) = tr.layers.split_at_mut(l);
    let (below, x) = (&below[l - 1], &mut above[0].x);
    let mut x = x.slice_mut(s![..len, .., ..]); // (len, B, H)
    let h = below.h.slice(s![1..=len, .., ..]);
    let residual = p.residual() && l > 1;
    match (residual, mask) {
        (false, None) => x.assign(&h),
        (false, Some(m)) => Zip::from(&mut x).and(&h).and(&m).for_each(|x, &h, &m| *x = h * m),
        (true, None) => {
            let xb = below.x.slice(s![..len, .., ..]);
            Zip::from(&mut x).and(&xb).and(&h).for_each(|x, &xb, &h| *x = xb + h);
        }
        (true, Some(m)) => {
            let xb = below.x.slice(s![..len, .., ..]);
            Zip::from(&mut x)
                .and(&xb)
                .and(&h)
                .and(&m)
                .for_each(|x, &xb, &h, &m| *x = (xb + h) * m);
        }
    }
}

/// Forward through layer l over the window of `len` steps that starts at step `start` of
/// `batch`, from the state its trace holds at index 0: the recurrence one step at a time,
/// reading Wᵀ (which [`begin`] stored) row by row; blocks of sequences on the pool's threads,
/// each projecting its inputs a block of steps (`PROJECT_BYTES`) at a time, right before those
/// steps, while they are still in the cache.
fn forward_layer<F: Real>(
    layer: &Layer<F>,
    l: usize,
    batch: &Batch<F>,
    tr: &mut Trace<F>,
    (start, len): (usize, usize),
) {
    let cell = layer.cell();
    let roles = layer.roles();
    let (h, gh) = (layer.hidden(), cell.gates() * layer.hidden());
    let stage = &mut tr.layers[l];
    if l > 0 || matches!(batch.inputs, Inputs::Dense(_)) {
        if stage.ut.dim() != (roles.u.ncols(), gh) {
            stage.ut = Array2::zeros((roles.u.ncols(), gh));
        }
        stage.ut.assign(&roles.u.t());
    }
    in_parts(tr.part(l), h * gh, &|part| {
        let per_step = part.rows() * gh * std::mem::size_of::<F>();
        let block = (PROJECT_BYTES / per_step.max(1)).clamp(1, len);
        for t0 in (1..=len).step_by(block) {
            let t1 = (t0 + block - 1).min(len);
            part.project(&roles, cell, batch, start, (t0, t1));
            for t in t0..=t1 {
                forward_step(layer, cell, part, t);
            }
        }
    });
}

/// Numerically stable softmax of one row, in place; returns the row's largest entry and the sum
/// of e^(x − max) it divided by.
fn softmax_in_place<F: Real>(row: &mut [F]) -> (F, F) {
    let max = row.iter().copied().fold(F::neg_infinity(), F::max);
    row.iter_mut().for_each(|x| *x -= max);
    // e^(x − max) over the row at once (vectors side by side in f64: a character model's
    // softmax took 17 % of its samples element by element), then summed in order.
    F::exp_in_place(row);
    let sum = row.iter().fold(F::zero(), |s, &x| s + x);
    for x in row.iter_mut() {
        *x /= sum;
    }
    (max, sum)
}

/// Backward through window (start, end), whose forward pass the trace holds; the state entering
/// the window is a constant (for the whole sequence, h_0 = 0 is). **Adds** the window's
/// contribution to dE/dθ into `g`, E being the whole batch's loss (averaged over all its L·B
/// pairs). Layer by layer from the top, each over the whole window: a layer's output gradient
/// dE/dy (from the head, or from the layer above through its input weights and mask) arrives
/// for all steps at once.
fn backward_window<F: Real>(
    p: &Params<F>,
    batch: &Batch<F>,
    tr: &mut Trace<F>,
    (start, end): (usize, usize),
    dropout: Option<&Dropout<F>>,
    g: &mut Params<F>,
) {
    let b = batch.dims().1;
    let cell = p.cell();
    let (h, o, l) = (p.hidden(), p.v.nrows(), batch.targets.steps());
    let top = p.layers().len() - 1;
    let n = F::of((l * b) as f64);
    let len = end + 1 - start;
    let (first, lw, target_rows) = window_losses(batch, (start, end));
    let rows = lw * b;
    tr.ensure_backward(cell);

    // dE/dnet of the window's loss-carrying steps, (Lw·B, O).
    let out = tr.out.slice(s![..rows, ..]);
    let mut dout = tr.dout.slice_mut(s![..rows, ..]);
    match &batch.targets {
        Targets::Values(y) => {
            let y = y.slice(s![target_rows..target_rows + lw, .., ..]);
            let y = y.into_shape_with_order((rows, o)).expect("contiguous");
            let k = F::of(2.0) / (n * F::of(o as f64));
            Zip::from(&mut dout)
                .and(&out)
                .and(&y)
                .for_each(|d, &net, &y| *d = k * (net - y)); // back through (net − y)²
        }
        Targets::Classes(y) => {
            let y = y.slice(s![target_rows..target_rows + lw, ..]);
            dout.assign(&out);
            for (mut row, &k) in dout.rows_mut().into_iter().zip(y.iter()) {
                row[k] -= F::one(); // back through softmax + cross-entropy: p − onehot(y)
            }
            dout.mapv_inplace(|x| x / n);
        }
    }

    // Head: dV += doutᵀ Y_L (O, H); dc += Σ dout.
    let states = if tr.head_in.is_empty() {
        let hs = tr.layers[top].h.slice(s![len + 1 - lw..len + 1, .., ..]);
        hs.into_shape_with_order((rows, h)).expect("contiguous")
    } else {
        tr.head_in.slice(s![..rows, ..])
    };
    gemm(dout.t(), states, g.v.view_mut(), true, &mut tr.scratch);
    g.c += &dout.sum_axis(Axis(0));

    let first_local = first + 1 - start; // trace index of the first loss-carrying step
    if top == 0 {
        backward_layer(p, 0, batch, tr, (start, len), Reach::Head(first_local, lw), g);
        return;
    }
    // A stack: dE/dy of the top layer, (len, B, H), zero but at the loss-carrying steps.
    tr.dy.slice_mut(s![..first_local - 1, .., ..]).fill(F::zero());
    let dy = tr.dy.slice_mut(s![first_local - 1..len, .., ..]);
    let dy = dy.into_shape_with_order((rows, h)).expect("contiguous");
    gemm(tr.dout.slice(s![..rows, ..]), p.v.view(), dy, false, &mut tr.scratch);
    for (l, layer) in p.layers().iter().enumerate().rev() {
        let from = if l == top { first_local } else { 1 };
        backward_layer(p, l, batch, tr, (start, len), Reach::Above(from), g);
        if l == 0 {
            break;
        }
        // dE/dy^(l−1) = mask ⊙ dE/dx^(l), dE/dx^(l) = dgx U (+ dE/dy^(l) in a residual layer).
        let gh = cell.gates() * h;
        let dgx = tr.layers[l].gates.slice(s![..len, .., ..]);
        let dgx = dgx.into_shape_with_order((len * b, gh)).expect("contiguous");
        let below = tr.dy_below.slice_mut(s![..len, .., ..]);
        let below = below.into_shape_with_order((len * b, h)).expect("contiguous");
        gemm(dgx, layer.roles().u, below, false, &mut tr.scratch);
        let mut below = tr.dy_below.slice_mut(s![..len, .., ..]);
        let dy = tr.dy.slice(s![..len, .., ..]);
        match (p.residual(), dropout.map(|d| d.window(l, (start, end)))) {
            (false, None) => {}
            (false, Some(m)) => below.zip_mut_with(&m, |d, &m| *d *= m),
            (true, None) => below += &dy,
            (true, Some(m)) => Zip::from(&mut below)
                .and(&dy)
                .and(&m)
                .for_each(|d, &y, &m| *d = (*d + y) * m),
        }
        std::mem::swap(&mut tr.dy, &mut tr.dy_below);
    }
}

/// Where a layer's output gradient comes from on the way back.
#[derive(Clone, Copy, Debug)]
enum Reach {
    /// From the head directly (one layer): dE/dh_t = dout_t V at the loss-carrying steps, from
    /// trace index `.0` on, `.1` of them.
    Head(usize, usize),
    /// From the trace's `dy` (a stack), non-zero from trace index `.0` on.
    Above(usize),
}

/// Back through layer l over the window of `len` steps starting at step `start`: the time loop
/// (dE/dh_t = what reaches the layer's output at t, as `reach` says, + what step t + 1 carried
/// back), then its parameter gradients over the window's steps at once.
fn backward_layer<F: Real>(
    p: &Params<F>,
    l: usize,
    batch: &Batch<F>,
    tr: &mut Trace<F>,
    (start, len): (usize, usize),
    reach: Reach,
    g: &mut Params<F>,
) {
    let b = batch.dims().1;
    let layer = &p.layers()[l];
    let cell = layer.cell();
    let h = layer.hidden();
    let gh = cell.gates() * h;

    // Back through time: trace index t is step start − 1 + t.
    let stage = &mut tr.layers[l];
    stage.carry_h.fill(F::zero());
    stage.carry_c.fill(F::zero());
    in_parts(tr.part(l), h * gh, &|part| {
        let rows = part.rows();
        for t in (1..=len).rev() {
            match reach {
                // dE/dh_t = from the output at t (dout_t V, at a loss-carrying step) + from
                // step t+1.
                Reach::Head(first_local, lw) if lw > 0 && t >= first_local => {
                    let r0 = (t - first_local) * b + part.row0;
                    matmul(
                        part.dout.slice(s![r0..r0 + rows, ..]),
                        p.v.view(),
                        part.dh.view_mut(),
                        false,
                    );
                    Zip::from(&mut part.dh).and(&part.carry_h).for_each(|d, &c| *d += c);
                }
                // dE/dh_t = from the layer above (or the head) at t + from step t+1.
                Reach::Above(from) if t >= from => {
                    let dy = part.dy.index_axis(Axis(0), t - 1);
                    Zip::from(&mut part.dh)
                        .and(&dy)
                        .and(&part.carry_h)
                        .for_each(|d, &y, &c| *d = y + c);
                }
                // dE/dh_t is what step t+1 carried back: the two buffers trade places (each
                // step overwrites the carry before it is read), no copy.
                _ => std::mem::swap(&mut part.dh, &mut part.carry_h),
            }
            backward_step(layer, cell, part, t, t > 1); // the window's entering state is a constant
        }
    });

    // Parameter gradients over the window's steps at once (the gates buffer now holds dgx).
    let Stage {
        gates,
        dgh,
        h: states,
        c: seconds,
        x: below,
        dm,
        ..
    } = &mut tr.layers[l];
    let dgx = gates.slice(s![..len, .., ..]);
    let dgx = dgx.into_shape_with_order((len * b, gh)).expect("contiguous");
    let spec = cell.spec();
    let hidden_side = spec.hidden_side;
    let dgh = if hidden_side {
        let dgh = dgh.slice(s![..len, .., ..]);
        dgh.into_shape_with_order((len * b, gh)).expect("contiguous")
    } else {
        dgx.view()
    };
    let prev = states.slice(s![..len, .., ..]);
    let prev = prev.into_shape_with_order((len * b, h)).expect("contiguous");
    // The layer's dense inputs over the window, (len·B, D): the batch's, or the layer below's
    // output; `None` for one-hot inputs.
    let dense = match &batch.inputs {
        _ if l > 0 => {
            let x = below.slice(s![..len, .., ..]);
            Some(x.into_shape_with_order((len * b, h)).expect("contiguous"))
        }
        Inputs::Dense(x) => {
            let x = x.slice(s![start - 1..start - 1 + len, .., ..]);
            Some(x.into_shape_with_order((len * b, x.dim().2)).expect("contiguous"))
        }
        Inputs::OneHot(_) => None,
    };
    let RolesMut {
        u: mut du,
        w: dw,
        b: db,
        bh: dbh,
        wz: dwz,
        own,
    } = g.layers_mut()[l].roles_mut();
    // dM += Σ_t dgh_tᵀ h_{t−1}, M being W, or the map formed from the cell's tensors (its
    // gradient summed apart, see `finish_backward`); the IndRNN has no M but its u.
    let mut dm = match spec.recurrence {
        Recurrence::Matrix => dw,
        Recurrence::Diagonal => None,
        Recurrence::Antisymmetric | Recurrence::Exponential => Some(dm.view_mut()),
    };
    match (spec.recurrence, own) {
        (Recurrence::Diagonal, Some(mut du)) => indrnn::add_diagonal_gradient(
            du.as_slice_mut().expect("contiguous"),
            dgx.as_slice().expect("contiguous"),
            prev.as_slice().expect("contiguous"),
        ), // du += Σ_t dgx_t ⊙ h_{t−1}
        (Recurrence::Exponential, Some(mut db)) => {
            let now = states.slice(s![1..=len, .., ..]);
            exprnn::add_modulus_gradient(
                db.as_slice_mut().expect("contiguous"),
                dgx.as_slice().expect("contiguous"),
                now.as_slice().expect("contiguous"),
            ); // modReLU's db += Σ_t dgx_t ⊙ sign(h_t)
        }
        _ => {}
    }
    if let Some(dwz) = dwz {
        let zs = seconds.slice(s![..len, .., ..]);
        let zs = zs.into_shape_with_order((len * b, h)).expect("contiguous");
        gemm(dgx.t(), zs, dwz, true, &mut tr.scratch); // dWz += Σ_t dgx_tᵀ z_{t−1}
    }
    // dM here, or below with db and dU along where dgh is dgx and the inputs are dense.
    let dw_along = !hidden_side && dense.is_some() && dm.is_some() && db.is_some();
    if !dw_along && let Some(dm) = dm.as_mut() {
        gemm(dgh.t(), prev, dm.view_mut(), true, &mut tr.scratch);
    }
    if let Some(dbh) = dbh {
        add_row_sum(dbh, dgh, &mut tr.sums); // dbh += Σ_t dgh_t
    }
    // db += Σ_t dgx_t and dU += Σ_t dgx_tᵀ x_t (with a few dense inputs, as one product, which
    // runs along dM's where dgh is dgx).
    match (dense, &batch.inputs, db) {
        (Some(x), _, Some(mut db)) => {
            if !add_row_sums_and_products(
                db.view_mut(),
                du.view_mut(),
                dgx,
                x,
                dw_along.then(|| (prev, dm.as_mut().expect("along dM").view_mut())),
                (&mut tr.ones, &mut tr.sums),
                &mut tr.scratch,
            ) {
                add_row_sum(db.view_mut(), dgx, &mut tr.sums);
                gemm(dgx.t(), x, du.view_mut(), true, &mut tr.scratch); // dU += Σ_t dgx_tᵀ x_t
            }
        }
        (Some(x), _, None) => gemm(dgx.t(), x, du.view_mut(), true, &mut tr.scratch), // dU += Σ_t dgx_tᵀ x_t
        (None, Inputs::OneHot(idx), db) => {
            let idx = idx.slice(s![start - 1..start - 1 + len, ..]);
            if let Some(db) = db {
                add_row_sum(db, dgx, &mut tr.sums);
            }
            for (row, &k) in dgx.rows().into_iter().zip(idx.iter()) {
                du.column_mut(k).scaled_add(F::one(), &row); // one-hot: scatter-add into column k
            }
        }
        (None, Inputs::Dense(_), _) => unreachable!("dense inputs are read above"),
    }
}

/// Every row of a row-major x (n, m) += v (m): `x += &v` broadcast, row by row (ndarray's
/// broadcast add was 8 % of a small run's time, with its sums below). Each element is one
/// rounded addition either way: the same bits.
fn add_to_rows<F: Real>(x: &mut [F], v: &[F]) {
    for row in x.chunks_exact_mut(v.len()) {
        row.iter_mut().zip(v).for_each(|(r, &b)| *r += b);
    }
}

/// acc += Σ_i x[i, ·] for x (n, m) in standard layout, the sum formed apart in `sums` from +0,
/// row after row, then added: the operations of `acc += &x.sum_axis(Axis(0))` (ndarray sums a
/// row-major array over its rows that way, one row at a time), so the same bits, without an
/// ndarray operation per row. A single column (ndarray sums it in another order) is left to
/// ndarray. On one thread: each column's sum runs over all rows in order, so only the columns
/// could be shared out, and halves of them (half of every row each) measured slower than one
/// thread reading whole rows (3200 × 256 f32: 80-95 µs against 61 µs, AMD EPYC family 26
/// model 2).
fn add_row_sum<F: Real>(mut acc: ArrayViewMut1<'_, F>, x: ArrayView2<'_, F>, sums: &mut Vec<F>) {
    let (Some(rows), true) = (x.as_slice(), x.ncols() > 1) else {
        acc += &x.sum_axis(Axis(0));
        return;
    };
    let m = x.ncols();
    sums.clear();
    sums.resize(m, F::zero());
    for row in rows.chunks_exact(m) {
        sums.iter_mut().zip(row).for_each(|(s, &r)| *s += r);
    }
    acc.iter_mut().zip(sums.iter()).for_each(|(a, &s)| *a += s);
}

/// Columns of [`add_row_sums_and_products`]'s inputs: a column of ones and up to three inputs,
/// a product whose four rows (as its transpose) the tiles of every path take in one pass.
const WITH_ONES: usize = 4;

/// db += Σ_i x[i, ·] and du += Σ_i x[i, ·]ᵀ inputs[i, ·] for x (n, m) (a window's dgx, n = T·B)
/// and up to three dense inputs (n, d), as one product, [1 | inputs | 0]ᵀ x: one pass over x
/// where `add_row_sum` and `gemm` made two or three (16 MiB each at f32 H = 128, T = 1000,
/// B = 32). With `dw` = (h, dW), also dW += xᵀ h, the product then running along dW's block by
/// block of n (a [`Side`](crate::real::Side) product), so that x is read once for the three
/// gradients. The same bits: a fused multiply–add by 1 is the rounded sum, so the product's
/// first row is `add_row_sum`'s sums (from +0, row after row), and the others `gemm`'s (one
/// fused multiply–add per row, in order, from +0, whichever factor comes first), each then
/// added: c + Σ. False where those would take another order (a single column) or the inputs
/// are more: then only dW is done, and db and dU are left to the caller. `ones` holds
/// [1 | inputs | 0] (n, 4), `sums` the product (4, m). f32 H = 128, B = 32, one thread (AMD EPYC
/// family 26 model 2): alone, T = 1000 0.65–0.67 ms against 0.84–0.93 for the separate passes;
/// along dW, dW + db + dU at T = 1000 5.71 ms against 6.47 for dW then this product alone
/// (f64 10.67 against 11.71, AVX2 f32 9.79 against 10.53), at T = 200 1.02 against 1.06 (medians
/// of 200 alternations, dgx last touched by the backward loop).
fn add_row_sums_and_products<F: Real>(
    mut db: ArrayViewMut1<'_, F>,
    mut du: ArrayViewMut2<'_, F>,
    x: ArrayView2<'_, F>,
    inputs: ArrayView2<'_, F>,
    dw: Option<(ArrayView2<'_, F>, ArrayViewMut2<'_, F>)>,
    (ones, sums): (&mut Vec<F>, &mut Vec<F>),
    scratch: &mut Scratch<F>,
) -> bool {
    let ((n, m), d) = (x.dim(), inputs.ncols());
    if m < 2 || d >= WITH_ONES {
        if let Some((h, dw)) = dw {
            gemm(x.t(), h, dw, true, scratch);
        }
        return false;
    }
    assert!(du.dim() == (m, d) && db.len() == m && inputs.nrows() == n, "shapes");
    ones.clear();
    ones.resize(n * WITH_ONES, F::zero());
    for (row, input) in ones.chunks_exact_mut(WITH_ONES).zip(inputs.rows()) {
        row[0] = F::one();
        row[1..=d].iter_mut().zip(input).for_each(|(r, &v)| *r = v);
    }
    sums.clear();
    sums.resize(WITH_ONES * m, F::zero());
    let with_ones = ArrayView2::from_shape((n, WITH_ONES), &ones[..]).expect("n × 4");
    let along = match dw {
        Some((h, mut dw)) => {
            let along = gemm_with_side(x.t(), h, dw.view_mut(), true, scratch, (with_ones, &mut sums[..]));
            if !along {
                gemm(x.t(), h, dw, true, scratch);
            }
            along
        }
        None => false,
    };
    if !along {
        let c = ArrayViewMut2::from_shape((WITH_ONES, m), &mut sums[..]).expect("4 × m");
        gemm(with_ones.t(), x, c, false, scratch);
    }
    db.iter_mut().zip(&sums[..m]).for_each(|(a, &s)| *a += s);
    for (j, mut column) in du.columns_mut().into_iter().enumerate() {
        let row = &sums[(1 + j) * m..(2 + j) * m];
        column.iter_mut().zip(row).for_each(|(a, &s)| *a += s);
    }
    true
}

/// Fraction of counted (step, sequence) pairs whose arg-max output is the target class, from
/// the last [`forward`] pass; `None` for real-valued targets.
pub fn accuracy<F: Real>(batch: &Batch<F>, tr: &Trace<F>) -> Option<f64> {
    let Targets::Classes(y) = &batch.targets else {
        return None;
    };
    let skip = batch.accuracy_from * y.ncols();
    Some(count_correct(tr.out.view(), y.view(), skip) as f64 / (y.len() - skip) as f64)
}

/// How many rows of `out` have their arg-max at the class of the matching entry of `y` (read in
/// row-major order), the first `skip` pairs not counted.
fn count_correct<F: Real>(out: ArrayView2<'_, F>, y: ndarray::ArrayView2<'_, usize>, skip: usize) -> usize {
    out.rows()
        .into_iter()
        .zip(y.iter())
        .skip(skip)
        .filter(|(row, k)| {
            let best = row.iter().enumerate().fold(
                (0, F::neg_infinity()),
                |best, (i, &x)| if x > best.1 { (i, x) } else { best },
            );
            best.0 == **k
        })
        .count()
}

/// Loss (as [`forward`]) and accuracy (as [`accuracy`]) of a batch. With `window = Some(k)`
/// shorter than the sequence the forward pass runs k steps at a time through a trace of k steps
/// (the state carried from window to window), so evaluating needs no more memory than training
/// with truncated BPTT.
pub fn evaluate<F: Real>(
    p: &Params<F>,
    batch: &Batch<F>,
    tr: &mut Trace<F>,
    window: Option<usize>,
) -> (f64, Option<f64>) {
    let (t_len, b) = batch.dims();
    let k = window.unwrap_or(t_len).min(t_len);
    if k == t_len {
        let loss = forward(p, batch, tr);
        return (loss, accuracy(batch, tr));
    }
    begin(p, batch, tr, k);
    let (mut sum, mut correct, mut last_len) = (0.0, 0, 0);
    for (start, end) in windows(t_len, k) {
        carry_state(tr, last_len);
        sum += forward_window(p, batch, tr, (start, end), None);
        if let Targets::Classes(y) = &batch.targets {
            let (_, lw, row) = window_losses(batch, (start, end));
            let y = y.slice(s![row..row + lw, ..]);
            let skip = batch.accuracy_from.saturating_sub(row) * b;
            correct += count_correct(tr.out.slice(s![..lw * b, ..]), y, skip);
        }
        last_len = end + 1 - start;
    }
    let acc = match &batch.targets {
        Targets::Classes(y) => Some(correct as f64 / (y.len() - batch.accuracy_from * b) as f64),
        Targets::Values(_) => None,
    };
    (sum / loss_count(batch), acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array1;

    /// The loops that replaced ndarray's `sum_axis` and broadcast `+=` give ndarray's bits:
    /// values of mixed signs and magnitudes (sums that round), negative zeros, one row, no row,
    /// one column.
    #[test]
    fn row_sums_and_bias_adds_are_ndarrays_bit_for_bit() {
        fn check<F: Real>() {
            let val = |i: usize, j: usize| {
                let k = (i * 31 + j * 17) % 23;
                if k == 0 {
                    F::of(-0.0)
                } else {
                    F::of((k as f64 - 11.0) * elem::powi(10.0, (k % 7) as i64 - 3) / 3.0)
                }
            };
            // The bias adds of the last three are shared out on the pools of two and three
            // threads below (halves of rows, uneven ones included).
            let shapes = [
                (0, 5),
                (1, 5),
                (7, 1),
                (37, 16),
                (200, 3),
                (64, 33),
                (1500, 100),
                (4001, 67),
                (513, 300),
            ];
            for (n, m) in shapes {
                let x = Array2::from_shape_fn((n, m), |(i, j)| val(i, j));
                let acc0 = Array1::from_shape_fn(m, |j| val(j + 3, 5));
                let mut want = acc0.clone();
                want += &x.sum_axis(Axis(0));
                let (mut got, mut sums) = (acc0.clone(), Vec::new());
                add_row_sum(got.view_mut(), x.view(), &mut sums);
                let bits = |a: &Array1<F>| a.iter().map(|v| v.f64().to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{:?} row sums of ({n}, {m})", F::DTYPE);

                // db and dU as one product (dgxᵀ [1 | inputs | 0]) against the separate passes.
                let bits2 = |a: &Array2<F>| a.iter().map(|v| v.f64().to_bits()).collect::<Vec<_>>();
                for d in 1..WITH_ONES {
                    let inputs = Array2::from_shape_fn((n, d), |(i, j)| val(i + 7, j + 2));
                    let du0 = Array2::from_shape_fn((m, d), |(i, j)| val(i + 1, j + 9));
                    let (mut db_want, mut du_want) = (acc0.clone(), du0.clone());
                    add_row_sum(db_want.view_mut(), x.view(), &mut sums);
                    gemm(x.t(), inputs.view(), du_want.view_mut(), true, &mut Scratch::default());
                    // Alone, then along dW += xᵀ h (h of a few widths: partial strips, a packed
                    // product, blocks of a tall n, shares split and joined on 2 and 3 threads).
                    for hc in [None, Some(5), Some(70), Some(129)] {
                        let h = hc.map(|c| Array2::from_shape_fn((n, c), |(i, j)| val(i + 2 * j, j + 1)));
                        let dw0 = hc.map(|c| Array2::from_shape_fn((m, c), |(i, j)| val(i + 4, j + 3)));
                        let mut dw_want = dw0.clone();
                        if let (Some(h), Some(dw)) = (&h, &mut dw_want) {
                            gemm(x.t(), h.view(), dw.view_mut(), true, &mut Scratch::default());
                        }
                        let (mut db, mut du, mut ones) = (acc0.clone(), du0.clone(), Vec::new());
                        let mut dw = dw0.clone();
                        let one = add_row_sums_and_products(
                            db.view_mut(),
                            du.view_mut(),
                            x.view(),
                            inputs.view(),
                            h.as_ref().zip(dw.as_mut()).map(|(h, dw)| (h.view(), dw.view_mut())),
                            (&mut ones, &mut sums),
                            &mut Scratch::default(),
                        );
                        let what = format!("{:?} ({n}, {m}), d = {d}, h {hc:?}", F::DTYPE);
                        assert_eq!(one, m > 1, "one product for {what}");
                        if one {
                            assert_eq!(bits(&db), bits(&db_want), "db of {what}");
                            assert_eq!(bits2(&du), bits2(&du_want), "dU of {what}");
                        }
                        if let (Some(dw), Some(want)) = (&dw, &dw_want) {
                            assert_eq!(bits2(dw), bits2(want), "dW of {what}");
                        }
                    }
                }

                let mut want = x.clone();
                want += &acc0;
                let mut got = x.clone();
                add_to_rows(
                    got.as_slice_mut().expect("standard"),
                    acc0.as_slice().expect("standard"),
                );
                assert_eq!(bits2(&got), bits2(&want), "{:?} bias added to ({n}, {m})", F::DTYPE);
            }
        }
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a pool");
            pool.install(|| {
                check::<f32>();
                check::<f64>();
            });
        }
    }
}
