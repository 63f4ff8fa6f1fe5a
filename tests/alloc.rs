//! No allocation inside the time loop: a training step's allocations (forward and backward,
//! full or truncated BPTT) and a probe's do not grow with the sequence length. Counted with a
//! counting global allocator, after a first step has sized the trace.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use runner::real::Dtype;
use runner::rnn::{self, Activation, Batch, Cell, Init, Params, RnnConfig, Trace};
use runner::task::{Task, TaskConfig};

/// The system allocator, counting allocations (this test binary only).
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

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

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations of one training step and one probe on a warmed-up trace, for length `t`.
fn allocations(cell: Cell, t: usize, b: usize, bptt: Option<usize>) -> (usize, usize) {
    let task = Task::new(TaskConfig::Adding {
        seq_len: t,
        eval_size: 1,
    });
    let cfg = RnnConfig {
        input: 2,
        hidden: 24,
        output: 1,
        cell,
        init: Init::Xavier,
        init_io: Init::Xavier,
        std: 0.1,
        scale: 1.0,
        forget_bias: 1.0,
        dtype: Dtype::F32,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let p: Params<f32> = cfg.init(&mut rng).cast();
    let batch: Batch<f32> = task.sample(b, &mut rng).cast();
    let mut g = p.zeros_like();
    let mut tr = Trace::default();
    rnn::train_step(&p, cell, &batch, &mut tr, bptt, &mut g); // sizes the trace
    rnn::probe(&p, cell, &batch, &mut tr, None);
    rnn::train_step(&p, cell, &batch, &mut tr, bptt, &mut g);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    rnn::train_step(&p, cell, &batch, &mut tr, bptt, &mut g);
    let step = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    rnn::probe(&p, cell, &batch, &mut tr, None);
    (step, ALLOCATIONS.load(Ordering::Relaxed) - before)
}

#[test]
fn allocations_do_not_grow_with_the_sequence() {
    for cell in [Cell::Rnn(Activation::Tanh), Cell::Lstm, Cell::Gru] {
        for b in [1, 8] {
            let (step20, probe20) = allocations(cell, 20, b, None);
            let (step400, probe400) = allocations(cell, 400, b, None);
            println!(
                "{cell:?} B={b}: step {step20} allocations at T=20, {step400} at T=400; probe {probe20}, {probe400}"
            );
            assert_eq!(
                step20, step400,
                "{cell:?} B={b}: a training step allocates per time step"
            );
            assert_eq!(probe20, probe400, "{cell:?} B={b}: the probe allocates per time step");
        }
        // Truncated BPTT: the same number of windows (T/k = 4) at two lengths allocates the same.
        let (short, _) = allocations(cell, 40, 4, Some(10));
        let (long, _) = allocations(cell, 400, 4, Some(100));
        assert_eq!(short, long, "{cell:?}: truncated BPTT allocates per time step");
    }
}
