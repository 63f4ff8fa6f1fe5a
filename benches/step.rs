//! `cargo bench`: one training step of the core (forward, full BPTT, global-norm clipping at
//! 1.0, SGD; tanh RNN on the adding problem) over the grid H ∈ {32, 128, 512} ×
//! T ∈ {50, 200, 1000} × B ∈ {1, 32}, in f32 and f64, one thread, measured by criterion.
//! `cargo bench -- f32/128` picks a subset. scripts/bench.py puts the same steps side by side
//! with PyTorch and NumPy.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use runner::real::Real;
use runner::rnn::{Activation, Cell};

mod workload;

fn grid<F: Real>(c: &mut Criterion) {
    let cell = Cell::Rnn(Activation::Tanh);
    let mut group = c.benchmark_group(F::DTYPE.name());
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for h in [32, 128, 512] {
        for t in [50, 200, 1000] {
            for b in [1, 32] {
                let (p, batches) = workload::adding::<F>(cell, h, t, b, 1);
                let mut trainer = workload::Trainer::new(p);
                // Model FLOPs of a step: 6·B·T·(H² + H·D + H·O); criterion reports them per second.
                group.throughput(Throughput::Elements(workload::step_flops(cell, h, t, b) as u64));
                group.bench_function(BenchmarkId::from_parameter(format!("H{h}/T{t}/B{b}")), |bench| {
                    bench.iter(|| black_box(trainer.step(&batches[0])))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, grid::<f32>, grid::<f64>);
criterion_main!(benches);
