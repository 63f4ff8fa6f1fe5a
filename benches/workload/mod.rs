//! What `benches/step.rs`, `examples/step_time.rs`, `examples/gradient_sums.rs` and
//! `tests/alloc.rs` share (each includes this file with `#[path]`): the adding-problem workload
//! of the speed comparison, a counting allocator, and the examples' command-line sizes.

#![allow(dead_code)] // each includer uses part of it

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use runner::optim::{Clip, OptimConfig, Optimizer, global_norm};
use runner::real::Real;
use runner::rnn::{self, Batch, Cell, CellInit, Init, Params, RnnConfig, Role, Trace};
use runner::task::{Task, TaskConfig};

/// Input size of the adding problem.
pub const D: usize = 2;
/// Output size of the adding problem.
pub const O: usize = 1;

/// Xavier-initialised parameters (seed 0) of `cell` with hidden size `h`, and `batches`
/// adding-problem batches of `b` sequences of length `t`, in element type F.
pub fn adding<F: Real>(cell: Cell, h: usize, t: usize, b: usize, batches: usize) -> (Params<F>, Vec<Batch<F>>) {
    adding_stack(cell, h, t, b, batches, 1)
}

/// [`adding`] for a stack of `layers` layers (the same draws for one layer).
pub fn adding_stack<F: Real>(
    cell: Cell,
    h: usize,
    t: usize,
    b: usize,
    batches: usize,
    layers: usize,
) -> (Params<F>, Vec<Batch<F>>) {
    let task = Task::new(TaskConfig::Adding {
        seq_len: t,
        eval_size: 1,
    });
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let p = xavier::<F>(cell, (D, h), layers, own_init(cell, t), &mut rng);
    (p, (0..batches).map(|_| task.sample(b, &mut rng).cast()).collect())
}

/// A Xavier-initialised stack of `layers` layers of `cell` with `d` inputs and hidden size `h`,
/// drawn from `rng`, in element type F.
fn xavier<F: Real>(
    cell: Cell,
    (d, h): (usize, usize),
    layers: usize,
    cell_init: CellInit,
    rng: &mut ChaCha8Rng,
) -> Params<F> {
    let cfg = RnnConfig {
        input: d,
        hidden: h,
        output: O,
        cell,
        // The expRNN's own initialisation (the default for it), whose ‖A‖ ≤ π keeps its
        // exponential at Padé degree 13 without squaring.
        init: if cell == Cell::ExpRnn {
            Init::Henaff
        } else {
            Init::Xavier
        },
        init_io: Init::Xavier,
        std: 0.1,
        scale: 1.0,
        forget_bias: 1.0,
        dtype: F::DTYPE,
        layers,
        residual: false,
        dropout: 0.0,
        cell_init,
    };
    cfg.init(rng).cast()
}

/// The IndRNN's own initialisation for sequences of `t` steps (|u| ≤ 2^(1/T), U ~ N(0, 0.001²),
/// as its paper's code and `model_of`); nothing for the other cells.
fn own_init(cell: Cell, t: usize) -> CellInit {
    let top = runner::elem::exp(runner::elem::ln(2.0) / t as f64); // 2^(1/T)
    match cell {
        Cell::IndRnn(_) => CellInit {
            recurrent_max: top,
            top_range: top,
            input_std: Some(0.001),
            recurrent_std: None,
        },
        _ => CellInit::default(),
    }
}

/// The training step of the comparison, with its state: forward, full BPTT, global-norm
/// clipping at 1.0, plain SGD with learning rate 10⁻³ (the expRNN's P at 10⁻⁴, the IndRNN's u
/// clipped to |u| ≤ `recurrent_max` after each update, as the PyTorch reference does).
pub struct Trainer<F: Real> {
    p: Params<F>,
    g: Params<F>,
    tr: Trace<F>,
    opt: Optimizer<F>,
    /// The IndRNN's bound on |u|: the largest |u| drawn (within 2^(1/T) of `own_init`).
    recurrent_max: Option<f64>,
}

impl<F: Real> Trainer<F> {
    /// A trainer starting from `p`.
    pub fn new(p: Params<F>) -> Self {
        let g = p.zeros_like();
        let recurrent_max = matches!(p.cell(), Cell::IndRnn(_)).then(|| {
            let us = p.layers().iter().filter_map(|l| l.get(Role::Diagonal));
            us.flatten().fold(0.0, |m: f64, u| m.max(u.f64().abs()))
        });
        let opt = Optimizer::new(OptimConfig::Sgd {
            momentum: 0.0,
            nesterov: false,
        });
        Self {
            p,
            g,
            tr: Trace::default(),
            opt,
            recurrent_max,
        }
    }

    /// One training step on `batch`; returns its loss.
    pub fn step(&mut self, batch: &Batch<F>) -> f64 {
        self.g.fill_zero();
        let loss = rnn::train_step(&self.p, batch, &mut self.tr, None, None, &mut self.g);
        let clip = Clip {
            norm: Some(1.0),
            value: None,
        };
        let n = global_norm(&self.g);
        clip.apply(&mut self.g, n);
        let recurrent = (self.p.cell() == Cell::ExpRnn).then_some(1e-4);
        self.opt.step_split(&mut self.p, &self.g, 1e-3, recurrent);
        if let Some(max) = self.recurrent_max {
            self.p.clamp_role(Role::Diagonal, F::of(max));
        }
        loss
    }
}

/// [`adding_stack`]'s network with `d` inputs instead of the adding problem's two, and batches
/// of uniform random inputs in [−1, 1) with one random target each at the last step: the same
/// work per layer above the first as in the first when d = H (the stack benchmark's other
/// reading).
pub fn dense_stack<F: Real>(
    cell: Cell,
    (d, h, t, b): (usize, usize, usize, usize),
    batches: usize,
    layers: usize,
) -> (Params<F>, Vec<Batch<F>>) {
    use rand::Rng;
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let p = xavier::<F>(cell, (d, h), layers, own_init(cell, t), &mut rng);
    let batch = |rng: &mut ChaCha8Rng| Batch {
        inputs: rnn::Inputs::Dense(ndarray::Array3::from_shape_simple_fn((t, b, d), || {
            F::of(rng.random_range(-1.0..1.0))
        })),
        targets: rnn::Targets::Values(ndarray::Array3::from_shape_simple_fn((1, b, O), || {
            F::of(rng.random_range(-1.0..1.0))
        })),
        accuracy_from: 0,
    };
    (p, (0..batches).map(|_| batch(&mut rng)).collect())
}

/// The model FLOPs of one training step: 6·B·T·G·(H² + H·D + H·O).
pub fn step_flops(cell: Cell, h: usize, t: usize, b: usize) -> f64 {
    stack_flops(cell, h, t, b, 1)
}

/// The model FLOPs of one training step of a stack: 6·B·T·(G·(H² + H·D) + (L − 1)·G·2H² + H·O)
/// (the layers above the first read H inputs). For one layer, [`step_flops`]' count.
pub fn stack_flops(cell: Cell, h: usize, t: usize, b: usize, layers: usize) -> f64 {
    input_flops(cell, (D, h, t, b), layers)
}

/// [`stack_flops`] with `d` inputs.
pub fn input_flops(cell: Cell, (d, h, t, b): (usize, usize, usize, usize), layers: usize) -> f64 {
    let g = cell.gates();
    6.0 * (b * t * (g * (h * h + h * d) + (layers - 1) * g * 2 * h * h + g * h * O)) as f64
}

/// The system allocator, counting allocations (install with `#[global_allocator]`).
pub struct Counting;

/// Allocations (and reallocations) made so far through [`Counting`].
pub static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

/// Allocations made so far.
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::Relaxed)
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// `--name value` from the command line.
pub fn arg(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

/// Comma-separated sizes from `--name`, or the default grid.
pub fn sizes(name: &str, default: &[usize]) -> Vec<usize> {
    arg(name)
        .map(|v| v.split(',').map(|x| x.trim().parse().expect("a size")).collect())
        .unwrap_or(default.to_vec())
}
