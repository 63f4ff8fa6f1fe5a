//! Coverage-guided fuzzing of the whole spec path with libFuzzer (cargo fuzz):
//! bytes → UTF-8 check → TOML → keys and values → `--set` overrides → sweep expansion →
//! memory guard. An input is the spec file's bytes, then, after each NUL byte, one `--set`
//! argument. No input may panic, and every rejection must name its key, or say where the TOML
//! is malformed or why the bytes are not a spec. Hangs are caught by libFuzzer's -timeout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use runner::spec;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|b| *b == 0);
    let spec_bytes = parts.next().unwrap_or_default();
    let sets: Vec<String> = parts.take(4).map(|p| String::from_utf8_lossy(p).into_owned()).collect();
    match spec::parse_bytes("fuzz.toml", spec_bytes, "fuzz", &sets) {
        Ok(parsed) => match runner::sweep::expand(&parsed) {
            Ok(runs) => {
                let refs: Vec<&runner::run::RunConfig> = runs.iter().collect();
                let _ = runner::budget::check(&refs, 2, Some(1 << 30));
            }
            Err(e) => explained(&e.problems),
        },
        Err(e) => explained(&e.problems),
    }
});

fn explained(problems: &[spec::Problem]) {
    assert!(!problems.is_empty());
    for p in problems {
        let ok = p.key.is_some()
            || p.message.starts_with("TOML syntax error")
            || p.message.starts_with("the spec is not valid UTF-8")
            || p.message.contains("is not of the form key=value")
            || p.message.contains("has an empty key");
        assert!(ok, "rejection without a key: {p:?}");
    }
}
