//! Helpers shared by the integration tests: those that drive the real binary, and the random
//! batches of the gradient checks.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_runner");

/// A fresh, empty folder for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("runner-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs the binary in `dir` and waits for it.
pub fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("binary runs")
}

/// What the binary printed on stderr.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Everything the binary printed, stdout then stderr.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// runs.csv with the `seconds` column blanked: the only field that may differ between two
/// sweeps of the same spec.
pub fn runs_without_seconds(dir: &Path) -> String {
    let text = fs::read_to_string(dir.join("runs.csv")).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|h| *h == "seconds").unwrap();
    let mut out = header.join(",");
    for line in lines {
        let mut f: Vec<&str> = line.split(',').collect();
        f[col] = "";
        out.push('\n');
        out.push_str(&f.join(","));
    }
    out
}

/// A file as text, with the `seconds` column of runs.csv blanked (the only field allowed to
/// differ).
pub fn comparable(dir: &Path, file: &str) -> String {
    if file == "runs.csv" {
        return runs_without_seconds(dir);
    }
    fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
}

/// Asserts that two results folders hold the same tables (but for `seconds`) and checkpoints.
pub fn assert_same_results(a: &Path, b: &Path) {
    for f in ["runs.csv", "curves.csv", "grad_decay.csv", "summary.csv"] {
        assert!(
            comparable(a, f) == comparable(b, f),
            "{f} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
    for entry in fs::read_dir(a.join("checkpoints")).unwrap() {
        let id = entry.unwrap().file_name();
        for f in ["init.safetensors", "final.safetensors"] {
            let (x, y) = (
                a.join("checkpoints").join(&id).join(f),
                b.join("checkpoints").join(&id).join(f),
            );
            assert!(
                fs::read(&x).ok() == fs::read(&y).ok(),
                "{} differs (or exists in one folder only)",
                x.display()
            );
        }
    }
}

/// [`assert_same_results`], and the same bytes in each of `files` too (other tables, charts).
pub fn assert_same_results_and(a: &Path, b: &Path, files: &[&str]) {
    assert_same_results(a, b);
    for f in files {
        assert!(
            fs::read(a.join(f)).unwrap() == fs::read(b.join(f)).unwrap(),
            "{f} differs in {}",
            b.display()
        );
    }
}

/// Two numeric keys (learning rate × clipping threshold, `none` among them), a word key for
/// panels and two seeds: 16 runs of a few milliseconds. At lr = 3 without clipping the tanh
/// and ReLU runs explode, so some cells hold diverged runs.
pub const GRID: &str = r#"
name = "grid"
description = "Learning rate against clipping threshold, for the report and browser tests."
[task]
kind = "adding"
seq_len = 8
eval_size = 16
[model]
hidden = 6
[train]
steps = 30
batch = 4
eval_every = 10
[probe]
every = 15
batch = 4
[sweep]
"model.activation" = ["tanh", "relu"]
"train.lr" = [0.01, 3.0]
"train.clip" = ["none", 0.5]
"train.seed" = [0, 1]
"#;

/// A batch of `b` random sequences of `t` steps for the gradient checks: dense inputs uniform in
/// [−1, 1) of size `d`, or one-hot symbols among `d`; targets on the last step or on every step,
/// uniform in [−1, 1) (`o` outputs) or classes among `o`.
pub fn random_batch(
    (t, b, d, o): (usize, usize, usize, usize),
    (dense, classes, every_step): (bool, bool, bool),
    seed: u64,
) -> runner::rnn::Batch {
    use ndarray::{Array2, Array3};
    use rand::{Rng, SeedableRng};
    use runner::rnn::{Inputs, Targets};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let inputs = if dense {
        Inputs::Dense(Array3::from_shape_simple_fn((t, b, d), || rng.random_range(-1.0..1.0)))
    } else {
        Inputs::OneHot(Array2::from_shape_simple_fn((t, b), || rng.random_range(0..d)))
    };
    let l = if every_step { t } else { 1 };
    let targets = if classes {
        Targets::Classes(Array2::from_shape_simple_fn((l, b), || rng.random_range(0..o)))
    } else {
        Targets::Values(Array3::from_shape_simple_fn((l, b, o), || rng.random_range(-1.0..1.0)))
    };
    runner::rnn::Batch {
        inputs,
        targets,
        accuracy_from: 0,
    }
}

/// Fixed dropout masks between the `layers` layers of a stack, (t, b, h) each: 0 with
/// probability 0.3, else 1/0.7 (inverted dropout at p = 0.3), for gradient checks that hold the
/// masks constant.
pub fn fixed_masks((t, b, h): (usize, usize, usize), layers: usize, seed: u64) -> Vec<ndarray::Array3<f64>> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (1..layers)
        .map(|_| {
            ndarray::Array3::from_shape_simple_fn((t, b, h), || if rng.random::<f64>() < 0.3 { 0.0 } else { 1.0 / 0.7 })
        })
        .collect()
}
