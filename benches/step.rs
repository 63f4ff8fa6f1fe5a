//! `cargo bench`: one training step of the core (forward, full BPTT, global-norm clipping at
//! 1.0, SGD; tanh RNN on the adding problem) over the grid H ∈ {32, 128, 512} ×
//! T ∈ {50, 200, 1000} × B ∈ {1, 32}, in f32 and f64, one thread, measured by criterion.
//! `cargo bench -- f32/128` picks a subset. scripts/bench.py puts the same steps side by side
//! with PyTorch and NumPy.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use runner::optim::{Clip, OptimConfig, Optimizer, global_norm};
use runner::real::Real;
use runner::rnn::{self, Activation, Batch, Cell, Init, Params, RnnConfig, Trace};
use runner::task::{Task, TaskConfig};

const D: usize = 2;
const O: usize = 1;

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
                let task = Task::new(TaskConfig::Adding {
                    seq_len: t,
                    eval_size: 1,
                });
                let cfg = RnnConfig {
                    input: D,
                    hidden: h,
                    output: O,
                    cell,
                    init: Init::Xavier,
                    init_io: Init::Xavier,
                    std: 0.1,
                    scale: 1.0,
                    forget_bias: 1.0,
                    dtype: F::DTYPE,
                };
                let mut rng = ChaCha8Rng::seed_from_u64(0);
                let mut p: Params<F> = cfg.init(&mut rng).cast();
                let batch: Batch<F> = task.sample(b, &mut rng).cast();
                let (mut g, mut tr) = (p.zeros_like(), Trace::default());
                let mut opt = Optimizer::new(OptimConfig::Sgd {
                    momentum: 0.0,
                    nesterov: false,
                });
                let clip = Clip {
                    norm: Some(1.0),
                    value: None,
                };
                // Model FLOPs of a step: 6·B·T·(H² + H·D + H·O); criterion reports them per second.
                group.throughput(Throughput::Elements((6 * b * t * (h * h + h * D + h * O)) as u64));
                group.bench_function(BenchmarkId::from_parameter(format!("H{h}/T{t}/B{b}")), |bench| {
                    bench.iter(|| {
                        g.fill_zero();
                        let loss = rnn::train_step(&p, cell, &batch, &mut tr, None, &mut g);
                        let n = global_norm(&g);
                        clip.apply(&mut g, n);
                        opt.step(&mut p, &g, 1e-3);
                        black_box(loss)
                    })
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, grid::<f32>, grid::<f64>);
criterion_main!(benches);
