//! A mutation fuzzer over the whole spec path (file bytes → TOML → keys and values → `--set`
//! overrides → sweep expansion → memory guard), run as an ordinary test with a time budget:
//! `RUNNER_FUZZ_SECONDS` (default 5; `.ci/run` gives it 60). No input may panic or take more
//! than a second, and every rejection must name a key, or say where the TOML is malformed or
//! why the file cannot be read. A sample of the inputs also goes through the real binary, which
//! must exit with code 2 on each rejection and write nothing.
//!
//! Seeds are the files in `tests/fuzz/corpus/` (the shipped experiments and hostile cases:
//! deep nesting, numbers at and beyond their limits, huge lists, invalid UTF-8, dates, …). An
//! input that ever fails is to be saved there, so that it is replayed by every later run.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runner::spec::{self, KEYS, Origin};

/// Tokens a mutation inserts: syntax fragments, keys, and values at and beyond their limits.
const TOKENS: &[&str] = &[
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    "\"",
    ",",
    ".",
    "\n",
    "#",
    "'",
    "\\",
    "[sweep]",
    "[[variant]]",
    "[model]",
    "[train]",
    "[task]",
    "label = \"v\"",
    "0",
    "-1",
    "1e308",
    "-1e308",
    "1e-320",
    "nan",
    "inf",
    "-inf",
    "9223372036854775807",
    "-9223372036854775808",
    "99999999999999999999",
    "0x7fffffff",
    "0b101",
    "true",
    "false",
    "\"\"",
    "\"none\"",
    "\"full\"",
    "\"lstm\"",
    "\"gru\"",
    "\"text\"",
    "\"copy\"",
    "[]",
    "[1, 2]",
    "[\"tanh\", 3]",
    "1979-05-27",
    "{ a = 1 }",
    "\u{0}",
    "é",
    "\u{202e}",
    "\"variant\"",
];

fn mutate(rng: &mut ChaCha8Rng, base: &[u8]) -> Vec<u8> {
    let mut v = base.to_vec();
    for _ in 0..rng.random_range(1..6) {
        let at = if v.is_empty() { 0 } else { rng.random_range(0..=v.len()) };
        match rng.random_range(0..7) {
            0 if !v.is_empty() => {
                let i = rng.random_range(0..v.len());
                v[i] = rng.random();
            }
            1 if !v.is_empty() => {
                let end = (at + rng.random_range(1..40)).min(v.len());
                v.drain(at.min(end)..end);
            }
            2 => {
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                v.splice(at..at, t.bytes());
            }
            3 => {
                let k = KEYS[rng.random_range(0..KEYS.len())].key;
                let line = format!("\n\"{k}\" = {}\n", TOKENS[rng.random_range(0..TOKENS.len())]);
                v.splice(at..at, line.bytes());
            }
            4 if !v.is_empty() => {
                // Duplicate a slice (repeated keys and sections).
                let start = rng.random_range(0..v.len());
                let end = (start + rng.random_range(1..200)).min(v.len());
                let piece = v[start..end].to_vec();
                v.splice(at..at, piece);
            }
            5 => {
                let k = KEYS[rng.random_range(0..KEYS.len())].key;
                let n = rng.random_range(0..2000);
                let list: Vec<String> = (0..n).map(|i| i.to_string()).collect();
                let line = format!("\n[sweep]\n\"{k}\" = [{}]\n", list.join(", "));
                v.splice(at..at, line.bytes());
            }
            _ => v.insert(at.min(v.len()), rng.random_range(0x80..=0xff)), // invalid UTF-8
        }
    }
    v
}

fn random_set(rng: &mut ChaCha8Rng) -> String {
    let key = if rng.random_bool(0.8) {
        KEYS[rng.random_range(0..KEYS.len())].key.to_string()
    } else {
        format!("sweep.{}", KEYS[rng.random_range(0..KEYS.len())].key)
    };
    let value = TOKENS[rng.random_range(0..TOKENS.len())];
    match rng.random_range(0..10) {
        0 => value.to_string(),
        1 => key,
        _ => format!("{key}={value}"),
    }
}

/// Runs one input through the library path; returns whether it was accepted.
fn exercise(dir: &Path, bytes: &[u8], sets: &[String]) -> bool {
    let path = dir.join("input.toml");
    std::fs::write(&path, bytes).unwrap();
    let t0 = Instant::now();
    let outcome = std::panic::catch_unwind(|| {
        let spec = match spec::load(&path, sets) {
            Ok(spec) => spec,
            Err(e) => return Err(e.problems),
        };
        let runs = match runner::sweep::expand(&spec) {
            Ok(runs) => runs,
            Err(e) => return Err(e.problems),
        };
        let refs: Vec<&runner::run::RunConfig> = runs.iter().collect();
        let _ = runner::budget::check(&refs, 2, Some(1 << 30));
        Ok(())
    });
    let took = t0.elapsed();
    let shown = String::from_utf8_lossy(bytes);
    assert!(took < Duration::from_secs(1), "input took {took:?}: {shown:?} {sets:?}");
    match outcome {
        Err(_) => panic!("panic on input {shown:?} with --set {sets:?}"),
        Ok(Ok(())) => true,
        Ok(Err(problems)) => {
            assert!(!problems.is_empty());
            for p in &problems {
                let explained = p.key.is_some()
                    || p.message.starts_with("TOML syntax error")
                    || p.message.starts_with("the spec is not valid UTF-8")
                    || p.message.contains("is not of the form key=value")
                    || p.message.contains("has an empty key");
                assert!(explained, "rejection without a key: {:?} for {shown:?} {sets:?}", p);
                if let Origin::File { line, col } = p.origin {
                    assert!(line >= 1 && col >= 1);
                }
            }
            false
        }
    }
}

#[test]
fn no_spec_input_panics_hangs_or_is_refused_without_naming_its_key() {
    let budget = Duration::from_secs(
        std::env::var("RUNNER_FUZZ_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let dir = std::env::temp_dir().join(format!("runner-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&corpus_dir)
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    corpus.sort();
    // Every corpus file, as it is (regression tests).
    for seed in &corpus {
        exercise(&dir, seed, &[]);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(
        std::env::var("RUNNER_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    );
    let (mut tried, mut accepted) = (0u64, 0u64);
    let mut for_binary = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < budget {
        let base = &corpus[rng.random_range(0..corpus.len())];
        let input = mutate(&mut rng, base);
        let sets: Vec<String> = (0..rng.random_range(0..3)).map(|_| random_set(&mut rng)).collect();
        let ok = exercise(&dir, &input, &sets);
        tried += 1;
        accepted += u64::from(ok);
        // (An argument cannot carry a NUL byte to a process.)
        if !ok && for_binary.len() < 100 && !sets.iter().any(|s| s.contains('\0')) && rng.random_bool(0.05) {
            for_binary.push((input, sets));
        }
    }
    // A sample of the rejected inputs through the real binary: exit code 2, nothing written.
    for (i, (input, sets)) in for_binary.iter().enumerate() {
        let name = format!("b{i}.toml");
        std::fs::write(dir.join(&name), input).unwrap();
        let mut args = vec![name.clone(), "-q".into()];
        for s in sets {
            args.push("--set".into());
            args.push(s.clone());
        }
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(!dir.join("results").exists(), "a rejected spec wrote results");
    }
    println!(
        "fuzz: {tried} inputs in {:.1} s ({accepted} accepted), {} rejections replayed through the binary, {} corpus files",
        t0.elapsed().as_secs_f64(),
        for_binary.len(),
        corpus.len()
    );
    assert!(tried > 100, "too few inputs tried");
}
