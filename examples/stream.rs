//! How fast this processor streams a buffer read again and again through the B = 1 time loop's
//! access pattern: one vector load per fused multiply–add into eight independent sums, as the
//! single-row tile reads W. Buffers that fit the first-level data cache run at the multiply–add
//! units' rate; past it, at the second-level cache's bandwidth, which then bounds a B = 1 step
//! (its two products a step read all of W or Wᵀ: 64 KiB in f32 at H = 128).
//!
//!     cargo run --release --example stream
//!
//! Prints, per buffer size, bytes per nanosecond and the GFLOP/s a matrix–vector product
//! reading its matrix at that rate would reach (2 FLOPs per 4-byte f32). x86-64 with AVX-512 or
//! AVX2 (the widest the processor has); elsewhere it says so and measures nothing. A benchmark,
//! not a test.

use std::time::Instant;

/// Sizes around the first-level data caches we run on (32 to 48 KiB) and past them.
const KIB: [usize; 9] = [16, 24, 32, 40, 48, 64, 96, 128, 256];

fn main() {
    let Some((path, pass)) = path() else {
        println!("no AVX-512 or AVX2 on this processor: nothing measured");
        return;
    };
    println!("path {path}; each size read repeatedly, 64 MiB in all, best of 7");
    println!("| buffer KiB | B/ns | GFLOP/s as an f32 matrix–vector product |\n|---|---|---|");
    for kib in KIB {
        let buf = vec![1.0f32; kib * 1024 / 4]; // (kib·256) f32
        let reps = (64 << 20) / (kib * 1024);
        let mut best = f64::MAX;
        let mut sink = 0.0;
        for _ in 0..7 {
            let t = Instant::now();
            sink += pass(&buf, reps);
            best = best.min(t.elapsed().as_secs_f64());
        }
        let bytes = (kib * 1024 * reps) as f64;
        println!(
            "| {kib} | {:.1} | {:.1} |",
            bytes / best / 1e9,
            bytes / 4.0 * 2.0 / best / 1e9
        );
        std::hint::black_box(sink);
    }
}

/// `reps` passes over a buffer, returning a sum of what was read (so that nothing is skipped).
type Pass = fn(&[f32], usize) -> f32;

/// The widest path this processor runs: its name and its pass.
#[cfg(target_arch = "x86_64")]
fn path() -> Option<(&'static str, Pass)> {
    if is_x86_feature_detected!("avx512f") {
        // SAFETY: AVX-512F was detected.
        Some(("avx512", |b, r| unsafe { x86::pass512(b, r) }))
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        // SAFETY: AVX2 and FMA were detected.
        Some(("avx2", |b, r| unsafe { x86::pass256(b, r) }))
    } else {
        None
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn path() -> Option<(&'static str, Pass)> {
    None
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// `reps` passes over `buf` (a multiple of 128 f32): 8 sums of 16 lanes, one load each.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn pass512(buf: &[f32], reps: usize) -> f32 {
        assert!(buf.len().is_multiple_of(128));
        let mut acc = [_mm512_setzero_ps(); 8];
        let x = _mm512_set1_ps(1.0001);
        for _ in 0..reps {
            for chunk in buf.chunks_exact(128) {
                for (v, a) in acc.iter_mut().enumerate() {
                    // SAFETY: 16 f32 at 16·v within the 128 of `chunk`.
                    let y = unsafe { _mm512_loadu_ps(chunk.as_ptr().add(16 * v)) };
                    *a = _mm512_fmadd_ps(x, y, *a);
                }
            }
        }
        _mm512_reduce_add_ps(acc.iter().fold(_mm512_setzero_ps(), |s, &a| _mm512_add_ps(s, a)))
    }

    /// The same with 8 sums of 8 lanes (AVX2), 64 f32 per round.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn pass256(buf: &[f32], reps: usize) -> f32 {
        assert!(buf.len().is_multiple_of(64));
        let mut acc = [_mm256_setzero_ps(); 8];
        let x = _mm256_set1_ps(1.0001);
        for _ in 0..reps {
            for chunk in buf.chunks_exact(64) {
                for (v, a) in acc.iter_mut().enumerate() {
                    // SAFETY: 8 f32 at 8·v within the 64 of `chunk`.
                    let y = unsafe { _mm256_loadu_ps(chunk.as_ptr().add(8 * v)) };
                    *a = _mm256_fmadd_ps(x, y, *a);
                }
            }
        }
        let mut out = [0.0f32; 8];
        let s = acc.iter().fold(_mm256_setzero_ps(), |s, &a| _mm256_add_ps(s, a));
        // SAFETY: 8 f32 into an array of 8.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
        out.iter().sum()
    }
}
