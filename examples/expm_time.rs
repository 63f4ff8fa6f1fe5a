//! Time the expRNN cell's matrix exponential ([`Expm::set`], as a training loop calls it once per
//! update, in the buffers of the last one; [`Expm::new`], fresh) and the adjoint of its Fréchet
//! derivative ([`Expm::adjoint`]) on skew-symmetric matrices, with an n³ product of the core's
//! own kernel for scale. A benchmark, not a test.
//!
//!     cargo run --release --example expm_time [-- --n 64,128,256] [--threads 1,2] [--seconds 1]
//!
//! Per n, thread count and norm: the Padé degree m and squarings s chosen, then the median and
//! 10th-percentile wall-clock microseconds of `set`, of `adjoint`, of their sum, of `new` and of
//! one n³ product, over at least `--seconds` of calls each (after 3 warm-up calls), and on one
//! thread also the median CPU microseconds of the calling thread (on a shared machine, the time
//! it actually ran). Two norms: A = P − Pᵀ with entries of P N(0, 1/2n), so that A's are
//! N(0, 1/n) (‖A‖₁ ≈ 0.8 √n), and the same A scaled to ‖A‖₁ = 3 (m = 13 without squaring, the
//! cheapest full degree).

use std::time::{Duration, Instant};

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use runner::real::matmul;
use runner::rnn::{Expm, normal};

/// The calling thread's CPU time in seconds (not advancing while the thread waits for a core:
/// the machine may be shared).
fn thread_cpu() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// Median and 10th-percentile wall-clock microseconds of `f`, and the median of the calling
/// thread's CPU microseconds, over at least `budget` and 5 calls after 3 warm-up calls.
fn time(mut f: impl FnMut(), budget: Duration) -> (f64, f64, f64) {
    for _ in 0..3 {
        f();
    }
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    let t0 = Instant::now();
    while t0.elapsed() < budget || wall.len() < 5 {
        let (s, c) = (Instant::now(), thread_cpu());
        f();
        cpu.push((thread_cpu() - c) * 1e6);
        wall.push(s.elapsed().as_secs_f64() * 1e6);
    }
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    (wall[wall.len() / 2], wall[wall.len() / 10], cpu[cpu.len() / 2])
}

/// The comma-separated list after `--name`, else `default`.
fn list<T: std::str::FromStr + Clone>(name: &str, default: &[T]) -> Vec<T> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args[i + 1]
            .split(',')
            .map(|s| s.parse().unwrap_or_else(|_| panic!("{name}: {s}")))
            .collect(),
        None => default.to_vec(),
    }
}

/// ‖A‖₁, the largest column sum of |a_ij|.
fn norm1(a: &Array2<f64>) -> f64 {
    a.columns()
        .into_iter()
        .map(|c| c.iter().map(|x| x.abs()).sum::<f64>())
        .fold(0.0, f64::max)
}

fn main() {
    let sizes = list("--n", &[64usize, 128, 256]);
    let threads = list("--threads", &[1usize, 2]);
    let budget = Duration::from_secs_f64(list("--seconds", &[1.0f64])[0]);
    println!(
        "    n  threads   ‖A‖₁   m  s   set µs (p10) [cpu]    adjoint µs (p10) [cpu]    sum µs   new µs   n³ product µs [cpu]"
    );
    for &n in &sizes {
        let mut rng = ChaCha8Rng::seed_from_u64(n as u64);
        let std = (0.5 / n as f64).sqrt();
        let p = Array2::from_shape_simple_fn((n, n), || std * normal(&mut rng));
        let a = &p - &p.t(); // (n, n) skew, entries N(0, 1/n)
        let g = Array2::from_shape_simple_fn((n, n), || normal(&mut rng)); // (n, n) dE/dW
        for a in [a.clone(), &a * (3.0 / norm1(&a))] {
            for &t in &threads {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build().expect("a pool");
                pool.install(|| {
                    let mut e = Expm::new(a.view());
                    let (set, set10, set_cpu) = time(|| e.set(std::hint::black_box(a.view())), budget);
                    let (adj, adj10, adj_cpu) = time(|| _ = std::hint::black_box(e.adjoint(g.view())), budget);
                    let (new, _, _) = time(|| drop(std::hint::black_box(Expm::new(a.view()))), budget);
                    let mut c = Array2::zeros((n, n));
                    let (prod, _, prod_cpu) = time(|| matmul(a.view(), g.view(), c.view_mut(), false), budget);
                    let cpu = |x: f64| if t == 1 { format!("[{x:5.0}]") } else { "[  -  ]".into() };
                    let norm = norm1(&a);
                    println!(
                        "{n:5}  {t:7}  {norm:5.2}  {:2}  {}  {set:6.0} ({set10:5.0}) {}  {adj:6.0} ({adj10:5.0}) {}  {:6.0}  {new:6.0}   {prod:6.1} {}",
                        e.degree(),
                        e.squarings(),
                        cpu(set_cpu),
                        cpu(adj_cpu),
                        set + adj,
                        cpu(prod_cpu),
                    );
                });
            }
        }
    }
}
