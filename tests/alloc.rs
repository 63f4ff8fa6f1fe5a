//! No allocation inside the time loop: a training step's allocations (forward and backward,
//! full or truncated BPTT) and a probe's do not grow with the sequence length. Counted with a
//! counting global allocator, after a first step has sized the trace.

#[path = "../benches/workload/mod.rs"]
mod workload;

use runner::rnn::{self, Activation, Cell, Coefs, Trace};
use workload::{Counting, allocations};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations of one training step and one probe on a warmed-up trace, for length `t`, of a
/// stack of `layers` layers.
fn counted(cell: Cell, t: usize, b: usize, bptt: Option<usize>, layers: usize) -> (usize, usize) {
    // The core may share work out on rayon's global pool, whose threads allocate as they start:
    // have them all started first (the counter sees every thread's allocations).
    rayon::broadcast(|_| ());
    let (p, batches) = workload::adding_stack::<f32>(cell, 24, t, b, 1, layers);
    let batch = &batches[0];
    let mut g = p.zeros_like();
    let mut tr = Trace::default();
    rnn::train_step(&p, batch, &mut tr, bptt, None, &mut g); // sizes the trace
    rnn::probe(&p, batch, &mut tr, None);
    rnn::train_step(&p, batch, &mut tr, bptt, None, &mut g);
    let before = allocations();
    rnn::train_step(&p, batch, &mut tr, bptt, None, &mut g);
    let step = allocations() - before;
    let before = allocations();
    rnn::probe(&p, batch, &mut tr, None);
    (step, allocations() - before)
}

#[test]
fn allocations_do_not_grow_with_the_sequence() {
    let cells = [
        Cell::Rnn(Activation::Tanh),
        Cell::Lstm,
        Cell::Gru,
        Cell::IndRnn(Activation::Relu),
        Cell::ExpRnn,
        Cell::CoRnn(Coefs::CORNN),
        Cell::Antisymmetric(Coefs::ANTISYMMETRIC),
    ];
    for cell in cells {
        for layers in [1, 3] {
            for b in [1, 8] {
                let (step20, probe20) = counted(cell, 20, b, None, layers);
                let (step400, probe400) = counted(cell, 400, b, None, layers);
                println!(
                    "{cell:?} ×{layers} B={b}: step {step20} allocations at T=20, {step400} at T=400; probe {probe20}, {probe400}"
                );
                assert_eq!(
                    step20, step400,
                    "{cell:?} ×{layers} B={b}: a training step allocates per time step"
                );
                assert_eq!(
                    probe20, probe400,
                    "{cell:?} ×{layers} B={b}: the probe allocates per time step"
                );
            }
            // Truncated BPTT: the same number of windows (T/k = 4) at two lengths allocates the
            // same.
            let (short, _) = counted(cell, 40, 4, Some(10), layers);
            let (long, _) = counted(cell, 400, 4, Some(100), layers);
            assert_eq!(
                short, long,
                "{cell:?} ×{layers}: truncated BPTT allocates per time step"
            );
        }
    }
}
