//! Time one training step of the core (forward, full BPTT, global-norm clipping, SGD) on the
//! adding problem, over a grid of hidden sizes, lengths and batches, with same-run
//! matrix-multiply measurements for reference. A benchmark, not a test.
//!
//!     cargo run --release --example step_time [-- --cell rnn|relu|lstm|gru|indrnn|exprnn|cornn|antisymmetric] [--dtype f32|f64]
//!         [--H 32,128] [--T 200] [--B 1,32] [--layers 1,2] [--input D] [--seconds 1]
//!         [--threads 1] [--json] [--products]
//!
//! Prints the kernel path (`RUNNER_ISA` forces a narrower one), the 512³ product of the core's
//! own kernel (`real::gemm`, on the same threads as the steps) and of ndarray's (one thread),
//! then per configuration the median and 10th-percentile milliseconds per step over at least
//! `--seconds` of steps, GFLOP/s by the model FLOP count 6·B·T·G·(H² + H·D + H·O) (forward 2×,
//! backward 4×; G gates), and the allocations a step makes (counted by a counting allocator:
//! the same at every T means none inside the time loop). The steps run in a rayon pool of
//! `--threads` threads (default 1), among which the core shares its large products out.
//! scripts/bench.py runs it.

use std::time::{Duration, Instant};

use ndarray::Array2;
use ndarray::linalg::general_mat_mul;
use runner::isa::Isa;
use runner::real::{Dtype, Real, Scratch, Strips, gemm, matmul_strips};
use runner::rnn::{Activation, Cell};

#[path = "../benches/workload/mod.rs"]
mod workload;

use workload::{arg, sizes};

#[global_allocator]
static GLOBAL: workload::Counting = workload::Counting;

/// Median and 10th-percentile milliseconds of `step` over at least `budget` and 5 calls after 3
/// warm-up calls, and the allocations one call makes (mean over the timed calls).
fn time_steps(mut step: impl FnMut(), budget: Duration) -> (f64, f64, f64) {
    for _ in 0..3 {
        step();
    }
    let (mut times, mut allocations) = (Vec::new(), 0);
    let t0 = Instant::now();
    while t0.elapsed() < budget || times.len() < 5 {
        let before = workload::allocations();
        let s = Instant::now();
        step();
        let elapsed = s.elapsed();
        allocations += workload::allocations() - before;
        times.push(elapsed.as_secs_f64() * 1e3);
    }
    let per_step = allocations as f64 / times.len() as f64;
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times[times.len() / 10], per_step)
}

/// GFLOP/s of an n³ product: the core's own (`real::gemm`, as its gradient sums call it) and
/// ndarray's general product.
fn matmul_gflops<F: Real>(n: usize) -> (f64, f64) {
    let a = Array2::<F>::from_shape_fn((n, n), |(i, j)| F::of(((i * 7 + j * 3) % 11) as f64 * 0.1));
    let b = a.t().to_owned();
    let mut c = Array2::<F>::zeros((n, n));
    let mut scratch = Scratch::default();
    let rate = |ms: f64| 2.0 * (n * n * n) as f64 / (ms / 1e3) / 1e9;
    let (ours, ..) = time_steps(
        || gemm(a.view(), b.view(), c.view_mut(), false, &mut scratch),
        Duration::from_millis(500),
    );
    let (theirs, ..) = time_steps(
        || general_mat_mul(F::one(), &a, &b, F::zero(), &mut c),
        Duration::from_millis(500),
    );
    (rate(ours), rate(theirs))
}

/// GFLOP/s of the time loop's product at (B, H)·(H, G·H), b in strips as a step stores it.
fn recurrence_gflops<F: Real>(cell: Cell, h: usize, b: usize) -> f64 {
    let gh = cell.gates() * h;
    let a = Array2::<F>::from_shape_fn((b, h), |(i, j)| F::of(((i * 5 + j * 3) % 13) as f64 * 0.01));
    let w = Array2::<F>::from_shape_fn((gh, h), |(i, j)| F::of(((i * 7 + j) % 11) as f64 * 0.01));
    let mut wt = Strips::default();
    wt.pack(w.t(), b >= 4);
    let mut c = Array2::<F>::zeros((b, gh));
    // Enough calls per timing that the clock's resolution does not matter.
    let calls = (1 << 22) / (b * h * gh).max(1) + 1;
    let (ms, ..) = time_steps(
        || {
            for _ in 0..calls {
                matmul_strips(a.view(), &wt, c.view_mut(), true);
            }
        },
        Duration::from_millis(300),
    );
    2.0 * (b * h * gh * calls) as f64 / (ms / 1e3) / 1e9
}

/// Median and 10th-percentile milliseconds of one training step of a stack of `layers` layers
/// in element type F: on the adding problem, or with `input = Some(D)` on random dense inputs of
/// size D.
fn step_ms<F: Real>(
    cell: Cell,
    (h, t, b, layers): (usize, usize, usize, usize),
    input: Option<usize>,
    seconds: f64,
) -> (f64, f64, f64) {
    let (p, batches) = match input {
        Some(d) => workload::dense_stack::<F>(cell, (d, h, t, b), 8, layers),
        None => workload::adding_stack::<F>(cell, h, t, b, 8, layers),
    };
    let mut trainer = workload::Trainer::new(p);
    let mut i = 0;
    time_steps(
        || {
            trainer.step(&batches[i % batches.len()]);
            i += 1;
        },
        Duration::from_secs_f64(seconds),
    )
}

fn main() {
    let threads: usize = arg("--threads").map(|s| s.parse().expect("threads")).unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a thread pool");
    pool.install(|| measure(threads));
}

fn measure(threads: usize) {
    let cell = match arg("--cell").as_deref() {
        Some("lstm") => Cell::Lstm,
        Some("gru") => Cell::Gru,
        Some("relu") => Cell::Rnn(Activation::Relu),
        Some("rnn") | None => Cell::Rnn(Activation::Tanh),
        Some(name) => Cell::from_name(name, Activation::Relu)
            .expect("a cell: rnn, relu, lstm, gru, indrnn, exprnn, cornn or antisymmetric"),
    };
    let dtype = arg("--dtype")
        .map(|d| Dtype::from_name(&d).expect("f32 or f64"))
        .unwrap_or(Dtype::F64);
    let seconds: f64 = arg("--seconds").map(|s| s.parse().expect("seconds")).unwrap_or(1.0);
    let json = std::env::args().any(|a| a == "--json");
    let (ours, ndarray) = match dtype {
        Dtype::F32 => matmul_gflops::<f32>(512),
        Dtype::F64 => matmul_gflops::<f64>(512),
    };
    let (name, isa) = (dtype.name(), Isa::current().name());
    if json {
        println!(
            "{{\"impl\": \"runner\", \"dtype\": \"{name}\", \"isa\": \"{isa}\", \"threads\": {threads}, \"matmul_gflops\": {ours:.3}, \"ndarray_matmul_gflops\": {ndarray:.3}}}"
        );
    } else {
        println!(
            "cell {}, {name}, {threads} thread{}, kernel path {isa}; 512×512×512 product: {ours:.1} GFLOP/s (ndarray's, one thread: {ndarray:.1})",
            cell.name(),
            if threads == 1 { "" } else { "s" },
        );
    }
    let products = std::env::args().any(|a| a == "--products");
    let input: Option<usize> = arg("--input").map(|s| s.parse().expect("an input size"));
    if !json && !products {
        println!(
            "| layers | H | T | B | median ms/step | p10 ms | GFLOP/s | allocations/step |\n|---|---|---|---|---|---|---|---|"
        );
    }
    if products {
        if !json {
            println!("| H | B | recurrence product GFLOP/s | % of the 512³ product |\n|---|---|---|---|");
        }
        for h in sizes("--H", &[32, 128, 512]) {
            for b in sizes("--B", &[1, 32]) {
                let rate = match dtype {
                    Dtype::F32 => recurrence_gflops::<f32>(cell, h, b),
                    Dtype::F64 => recurrence_gflops::<f64>(cell, h, b),
                };
                let share = 100.0 * rate / ours;
                if json {
                    println!(
                        "{{\"impl\": \"runner\", \"H\": {h}, \"B\": {b}, \"recurrence_gflops\": {rate:.3}, \"percent_of_product\": {share:.1}}}"
                    );
                } else {
                    println!("| {h} | {b} | {rate:.1} | {share:.0} % |");
                }
            }
        }
        return;
    }
    for layers in sizes("--layers", &[1]) {
        for h in sizes("--H", &[32, 128, 512]) {
            for t in sizes("--T", &[50, 200, 1000]) {
                for b in sizes("--B", &[1, 32]) {
                    let shape = (h, t, b, layers);
                    let (median, p10, allocs) = match dtype {
                        Dtype::F32 => step_ms::<f32>(cell, shape, input, seconds),
                        Dtype::F64 => step_ms::<f64>(cell, shape, input, seconds),
                    };
                    let d = input.unwrap_or(workload::D);
                    let gflops = workload::input_flops(cell, (d, h, t, b), layers) / (median / 1e3) / 1e9;
                    if json {
                        println!(
                            "{{\"impl\": \"runner\", \"layers\": {layers}, \"H\": {h}, \"T\": {t}, \"B\": {b}, \"median_ms\": {median:.4}, \"p10_ms\": {p10:.4}, \"gflops\": {gflops:.3}, \"allocs_per_step\": {allocs:.1}}}"
                        );
                    } else {
                        println!("| {layers} | {h} | {t} | {b} | {median:.3} | {p10:.3} | {gflops:.2} | {allocs:.1} |");
                    }
                }
            }
        }
    }
}
