//! `runner keys`: the terminal's key reference lists exactly the keys `--set` accepts, marks
//! exactly those `[sweep]` refuses, selects by prefix, and refuses an unknown prefix (exit 2)
//! with the nearest known one.

mod common;

use common::{BIN, text};
use runner::spec::{self, KEYS};
use std::process::Command;

fn keys(args: &[&str]) -> std::process::Output {
    Command::new(BIN).arg("keys").args(args).output().expect("binary runs")
}

/// The (key, sweepable) pairs a `runner keys` listing names: each entry's first line starts at
/// column 0 with the key; its meaning is indented below it.
fn listed(out: &std::process::Output) -> Vec<(String, bool)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(' ') && !l.is_empty())
        .map(|l| {
            let key = l.split_whitespace().next().unwrap().to_string();
            (key, !l.ends_with("(not sweepable)"))
        })
        .collect()
}

/// A value `--set` accepts for `key`: its default (the name's default is the file's stem).
fn valid_value(key: &str) -> String {
    let def = KEYS.iter().find(|k| k.key == key).unwrap();
    if key == "name" {
        "x".into()
    } else {
        def.default.to_string()
    }
}

fn set(args: &[String]) -> Result<spec::Spec, spec::SpecErrors> {
    spec::parse("x.toml", "", "x", args)
}

#[test]
fn runner_keys_lists_exactly_what_set_accepts() {
    let out = keys(&[]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = listed(&out);
    assert_eq!(listed.len(), KEYS.len(), "{}", text(&out));
    for (key, sweepable) in &listed {
        let value = valid_value(key);
        set(&[format!("{key}={value}")]).unwrap_or_else(|e| panic!("--set {key}={value} refused: {e}"));
        let swept = set(&[format!("sweep.{key}=[{value}]")]);
        assert_eq!(swept.is_ok(), *sweepable, "--set sweep.{key}: {swept:?}");
        // A name one letter off is not a key, and --set says so.
        let e = set(&[format!("{key}x={value}")]).unwrap_err();
        assert!(e.to_string().contains("unknown key"), "{e}");
    }
    // And no key outside the listing is accepted: every KEYS entry is listed.
    let names: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
    for def in KEYS {
        assert!(
            names.contains(&def.key),
            "`{}` is accepted by --set but not listed",
            def.key
        );
    }
}

#[test]
fn a_prefix_lists_its_keys_only() {
    let out = keys(&["model."]);
    assert!(out.status.success(), "{}", text(&out));
    let listed = listed(&out);
    let expected: Vec<&str> = KEYS.iter().map(|k| k.key).filter(|k| k.starts_with("model.")).collect();
    assert_eq!(listed.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), expected);
    // --long prints the whole meaning, which for model.init names every initialisation.
    let long = keys(&["--long", "model.init"]);
    let short = keys(&["model.init"]);
    assert!(text(&long).contains("Pascanu") && !text(&short).contains("Pascanu"));
    // --markdown is the docs' table for the same keys.
    let md = keys(&["--markdown", "probe."]);
    assert!(String::from_utf8_lossy(&md.stdout).starts_with("| key | type | default | range | sweep | meaning |"));
}

#[test]
fn an_unknown_prefix_exits_2_with_the_nearest_known_one() {
    let out = keys(&["modle."]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("did you mean `model.`"), "{}", text(&out));
    assert!(out.stdout.is_empty());
    let out = keys(&["train.cilp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("did you mean `train.clip`"), "{}", text(&out));
}
