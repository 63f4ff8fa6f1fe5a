//! The parameter gradients of a window of the adding problem, two ways, side by side: dW += dgxᵀ h
//! then [1 | x | 0]ᵀ dgx (db and dU) as a second product, against the second running along the
//! first block by block of T·B rows (`real::gemm_with_side`, what the core does), which reads dgx
//! once instead of twice. The same numbers either way (checked here bit for bit).
//!
//!     cargo run --release --example gradient_sums [-- --dtype f32] [--H 128] [--T 200,1000]
//!
//! H hidden units, B = 32, T steps (dgx and h are (T·B, H)); before each timing the last 64 rows
//! of dgx are read, as the backward loop leaves them. Medians (and tenth percentiles) of 200
//! alternating timings, on the pool's threads (`RAYON_NUM_THREADS=1` for one). A benchmark, not a
//! test.

use ndarray::{Array2, ArrayViewMut2};
use runner::real::{Dtype, Real, Scratch, gemm, gemm_with_side};
use std::time::Instant;

#[path = "../benches/workload/mod.rs"]
mod workload;

use workload::{arg, sizes};

const B: usize = 32;
const REPS: usize = 200;

/// (median, tenth percentile) in milliseconds.
fn summary(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() / 10])
}

fn measure<F: Real>(h: usize, t: usize) {
    let n = t * B;
    let dgx = Array2::from_shape_fn((n, h), |(i, j)| F::of(((i * 7 + j * 3) % 11) as f64 * 0.01 - 0.05));
    let states = Array2::from_shape_fn((n, h), |(i, j)| F::of(((i * 5 + j * 2) % 13) as f64 * 0.01 - 0.06));
    // [1 | x | 0] of the adding problem's two inputs.
    let ones = Array2::from_shape_fn((n, 4), |(i, j)| match j {
        0 => F::one(),
        1 => F::of((i % 97) as f64 / 97.0),
        2 => F::of((i % 3 == 0) as u8 as f64),
        _ => F::zero(),
    });
    let mut scratch = Scratch::default();
    let (mut dw, mut sums) = (Array2::<F>::zeros((h, h)), vec![F::zero(); 4 * h]);
    let (mut dw_along, mut sums_along) = (dw.clone(), sums.clone());
    let (mut apart, mut along) = (Vec::new(), Vec::new());
    for r in 0..REPS {
        for first in [r % 2 == 0, r % 2 == 1] {
            let tail: F = dgx.rows().into_iter().rev().take(64).map(|row| row[0]).sum();
            std::hint::black_box(tail);
            let t0 = Instant::now();
            if first {
                gemm(dgx.t(), states.view(), dw.view_mut(), true, &mut scratch);
                let c = ArrayViewMut2::from_shape((4, h), &mut sums[..]).expect("4 × H");
                gemm(ones.t(), dgx.view(), c, false, &mut scratch);
                apart.push(t0.elapsed().as_secs_f64() * 1e3);
            } else {
                let side = (ones.view(), &mut sums_along[..]);
                let done = gemm_with_side(dgx.t(), states.view(), dw_along.view_mut(), true, &mut scratch, side);
                along.push(t0.elapsed().as_secs_f64() * 1e3);
                assert!(done, "a transposed dgx takes a side product");
            }
        }
    }
    let bits = |v: &[F]| v.iter().map(|x| x.f64().to_bits()).collect::<Vec<_>>();
    assert_eq!(
        bits(dw.as_slice().expect("standard")),
        bits(dw_along.as_slice().expect("standard"))
    );
    assert_eq!(bits(&sums), bits(&sums_along));
    let ((a, a10), (b, b10)) = (summary(apart), summary(along));
    println!("| {h} | {t} | {a:.3} ({a10:.3}) | {b:.3} ({b10:.3}) | {:.3} |", b / a);
}

fn main() {
    let dtype = arg("--dtype").map_or(Dtype::F32, |d| Dtype::from_name(&d).expect("f32 or f64"));
    println!(
        "{}, {} thread(s), kernel path {}: dW, db and dU, ms (tenth percentile)",
        dtype.name(),
        rayon::current_num_threads(),
        runner::isa::Isa::current().name()
    );
    println!("| H | T | two products | db and dU along dW | along ÷ two |\n|---|---|---|---|---|");
    for h in sizes("--H", &[128]) {
        for t in sizes("--T", &[50, 200, 1000]) {
            match dtype {
                Dtype::F32 => measure::<f32>(h, t),
                Dtype::F64 => measure::<f64>(h, t),
            }
        }
    }
}
