use ndarray::{Array2, linalg::general_mat_mul};
use runner::real::{gemm, Real, Scratch};
use std::time::Instant;
fn bench<F: Real>(m: usize, k: usize, n: usize) {
    let a = Array2::from_shape_fn((k, m), |(i, j)| F::of(((i * 7 + j * 3) % 11) as f64 * 0.01));
    let b = Array2::from_shape_fn((k, n), |(i, j)| F::of(((i * 5 + j * 2) % 13) as f64 * 0.01));
    let mut c = Array2::<F>::zeros((m, n));
    let reps = (1e9 / (2.0 * (m * n * k) as f64)).max(3.0) as usize;
    let t = Instant::now();
    for _ in 0..reps { general_mat_mul(F::one(), &a.t(), &b, F::one(), &mut c); }
    let nd = t.elapsed().as_secs_f64() / reps as f64;
    let mut s = Scratch::default();
    let t = Instant::now();
    for _ in 0..reps { gemm(a.t(), b.view(), c.view_mut(), true, &mut s); }
    let ours = t.elapsed().as_secs_f64() / reps as f64;
    let gf = |s: f64| 2.0 * (m * n * k) as f64 / s / 1e9;
    println!("{:?} m={m} k={k} n={n}: ndarray {:.1} GF/s, ours {:.1} GF/s ({:.2}x slower)", F::DTYPE, gf(nd), gf(ours), ours / nd);
}
fn main() {
    for &(m, k, n) in &[(512, 200, 512), (512, 6400, 512), (128, 6400, 128), (32, 6400, 32), (128, 200, 128), (1, 200, 512), (4, 512, 512)] {
        bench::<f32>(m, k, n);
        bench::<f64>(m, k, n);
    }
}
