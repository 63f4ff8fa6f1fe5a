//! Accuracy of runner's elementary functions, in ulps.
//!
//! `cargo run --release --example ulp -- eval FUNC TYPE` reads one input per line (the bit
//! pattern in hex) and writes the output's bit pattern: `scripts/check_ulp.py` feeds it and
//! compares with mpmath at 200 bits. FUNC is exp, ln, tanh or sigmoid; TYPE is f64 or f32.
//!
//! `cargo run --release --example ulp -- f32 [FUNC ...]` checks the f32 functions on every one of the 2³²
//! f32 inputs against the f64 functions (themselves within about half an f64 ulp, so the
//! f32 error is known to ±2⁻²⁹ ulp) and prints the largest error and where it occurs. For tanh
//! and σ, which the f32 core evaluates its own way, this is an independent check; f32 e^x and
//! ln x are the f64 functions rounded, so for them it measures that last rounding only.

use rayon::prelude::*;
use runner::elem;
use std::io::{BufRead, Write};

/// f32 ulp error of `got` against the (more precise) `want`, the ulp taken at `want` rounded to
/// f32; 0 when both are the same special value.
fn ulps32(got: f32, want: f64) -> f64 {
    if got.is_nan() || want.is_nan() {
        return if got.is_nan() && want.is_nan() {
            0.0
        } else {
            f64::INFINITY
        };
    }
    if f64::from(got) == want || (got.is_infinite() && got == want as f32) {
        return 0.0; // exact, or ±∞ where the exact value rounds to it beyond f32's range
    }
    let w = (want as f32).abs();
    if w.is_infinite() {
        return f64::INFINITY;
    }
    let ulp = f64::from(f32::from_bits(w.to_bits() + 1)) - f64::from(w); // the gap above |want|
    (f64::from(got) - want).abs() / ulp
}

fn eval(func: &str, ty: &str) -> Result<(), String> {
    type F64 = fn(f64) -> f64;
    type F32 = fn(f32) -> f32;
    let f64s: [(&str, F64); 4] = [
        ("exp", elem::exp),
        ("ln", elem::ln),
        ("tanh", elem::tanh),
        ("sigmoid", elem::sigmoid),
    ];
    let f32s: [(&str, F32); 4] = [
        ("exp", elem::exp_f32),
        ("ln", elem::ln_f32),
        ("tanh", elem::tanh_f32),
        ("sigmoid", elem::sigmoid_f32),
    ];
    let stdin = std::io::stdin().lock();
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let unknown = || format!("no function {func} for {ty}");
    for line in stdin.lines() {
        let line = line.map_err(|e| e.to_string())?;
        let bits = u64::from_str_radix(line.trim(), 16).map_err(|e| format!("{line}: {e}"))?;
        let y = match ty {
            "f64" => {
                let f = f64s.iter().find(|(n, _)| *n == func).ok_or_else(unknown)?.1;
                f(f64::from_bits(bits)).to_bits()
            }
            "f32" => {
                let f = f32s.iter().find(|(n, _)| *n == func).ok_or_else(unknown)?.1;
                u64::from(f(f32::from_bits(bits as u32)).to_bits())
            }
            _ => return Err(format!("no type {ty}: use f64 or f32")),
        };
        writeln!(out, "{y:x}").map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The largest error of `f` over every f32 input, and the input where it occurs.
fn exhaustive(f: fn(f32) -> f32, reference: fn(f64) -> f64) -> (f64, f32) {
    (0..=u32::MAX >> 16)
        .into_par_iter()
        .map(|hi| {
            let mut worst = (0.0f64, 0.0f32);
            for lo in 0..=0xFFFFu32 {
                let x = f32::from_bits(hi << 16 | lo);
                let e = ulps32(f(x), reference(f64::from(x)));
                if e > worst.0 || (e.is_nan() && !worst.0.is_nan()) {
                    worst = (e, x);
                }
            }
            worst
        })
        .reduce(|| (0.0, 0.0), |a, b| if b.0 > a.0 { b } else { a })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["eval", func, ty] => {
            if let Err(e) = eval(func, ty) {
                eprintln!("ulp: {e}");
                std::process::exit(2);
            }
        }
        ["f32", ref names @ ..] => {
            for (name, f, reference) in [
                ("tanh", elem::tanh_f32 as fn(f32) -> f32, elem::tanh as fn(f64) -> f64),
                ("sigmoid", elem::sigmoid_f32, elem::sigmoid),
                ("exp", elem::exp_f32, elem::exp),
                ("ln", elem::ln_f32, elem::ln),
            ] {
                if !names.is_empty() && !names.contains(&name) {
                    continue;
                }
                let start = std::time::Instant::now();
                let (worst, at) = exhaustive(f, reference);
                println!(
                    "f32 {name}: largest error {worst:.3} ulp at x = {at:e} (all 2^32 inputs, {:.0} s)",
                    start.elapsed().as_secs_f64()
                );
            }
        }
        _ => {
            eprintln!("usage: ulp eval FUNC f64|f32  (hex bit patterns on stdin)\n       ulp f32 [FUNC ...]");
            std::process::exit(2);
        }
    }
}
