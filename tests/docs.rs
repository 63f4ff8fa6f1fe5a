//! The manual: README.md is the front page and docs/ the reference. These tests hold the
//! reference to the code's own tables (every spec key, every CSV column), keep the front page
//! short, and check that every relative link and image in README.md, CHANGELOG.md and docs/
//! resolves (the file exists, and a `#fragment` names one of its headings).
//!
//! `RUNNER_UPDATE_DOCS=1 cargo test --release --test docs` rewrites the generated key table in
//! docs/spec.md instead of failing on it.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use runner::record::RUN_COLUMNS;
use runner::spec::keys::{self, KEYS};

const BEGIN: &str = "<!-- keys:begin";
const END: &str = "<!-- keys:end -->";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// README.md, CHANGELOG.md and every Markdown file under docs/.
fn manual() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md"), root().join("CHANGELOG.md")];
    let mut dirs = vec![root().join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn docs_spec_holds_the_generated_key_reference() {
    let path = root().join("docs/spec.md");
    let text = read(&path);
    let begin = text.find(BEGIN).expect("docs/spec.md has the keys:begin marker");
    let table_start = begin + text[begin..].find('\n').expect("marker line ends") + 1;
    let end = text.find(END).expect("docs/spec.md has the keys:end marker");
    let table = keys::markdown_table(&KEYS.iter().collect::<Vec<_>>());
    if text[table_start..end] == table {
        return;
    }
    if std::env::var_os("RUNNER_UPDATE_DOCS").is_some() {
        fs::write(&path, format!("{}{table}{}", &text[..table_start], &text[end..])).unwrap();
        return;
    }
    panic!(
        "docs/spec.md's key reference differs from src/spec/keys.rs; run\n  RUNNER_UPDATE_DOCS=1 cargo test --release --test docs\nto regenerate it"
    );
}

#[test]
fn docs_explain_every_csv_column() {
    let text = read(&root().join("docs/outputs.md"));
    let columns = RUN_COLUMNS.iter().chain(&[
        "run_id",
        "step",
        "train_loss",
        "grad_norm",
        "clipped",
        "eval_loss",
        "eval_accuracy",
        "probe_step",
        "distance",
        "log10_grad_norm",
        "index",
        "exponent",
    ]);
    for c in columns {
        assert!(
            text.contains(&format!("| `{c}` |")),
            "docs/outputs.md does not explain column `{c}`"
        );
    }
    // summary.csv, with the columns a stack adds: each measure's `_mean` names its four.
    let header = runner::report::summary_csv(&[], &[], true).unwrap();
    let header = String::from_utf8(header).unwrap();
    for c in header.trim().split(',') {
        if ["_std", "_min", "_max"].iter().any(|s| c.ends_with(s)) {
            continue;
        }
        assert!(
            text.contains(&format!("`{c}`")),
            "docs/outputs.md does not explain summary.csv's column `{c}`"
        );
    }
}

#[test]
fn the_readme_is_a_front_page() {
    let lines = read(&root().join("README.md")).lines().count();
    assert!(lines <= 500, "README.md has {lines} lines; the front page keeps to 500");
}

/// GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, spaces to
/// `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks), with GitHub's `-1`, `-2`
/// suffixes for repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let base = slug(line.trim_start_matches('#'));
        let mut name = base.clone();
        let mut n = 0;
        while !out.insert(name.clone()) {
            n += 1;
            name = format!("{base}-{n}");
        }
    }
    out
}

/// The targets of a Markdown file's inline links and images, `[text](target)` and
/// `![alt](target)`, outside code blocks and code spans.
fn link_targets(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Drop code spans, whose brackets are not links.
        let mut plain = String::new();
        for (i, part) in line.split('`').enumerate() {
            if i % 2 == 0 {
                plain.push_str(part);
            }
        }
        let mut rest = plain.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(close) = after.find(')') else { break };
            let target = after[..close].split_whitespace().next().unwrap_or("").to_string();
            out.push((n + 1, target));
            rest = &after[close..];
        }
    }
    out
}

#[test]
fn every_relative_link_and_image_resolves() {
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in manual() {
        let text = read(&file);
        for (line, target) in link_targets(&text) {
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            checked += 1;
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap().join(path)
            };
            let here = format!("{}:{line}: {target}", file.strip_prefix(root()).unwrap().display());
            if !resolved.exists() {
                broken.push(format!("{here}: no such file"));
                continue;
            }
            if let Some(fragment) = fragment
                && resolved.extension().is_some_and(|e| e == "md")
                && !anchors(&read(&resolved)).contains(fragment)
            {
                broken.push(format!("{here}: no heading with this anchor"));
            }
        }
    }
    assert!(checked > 20, "only {checked} links found: is the link parser broken?");
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_check_finds_broken_links() {
    let text = "# Top\n## A b, c\n[ok](#a-b-c) [bad](#nope) `[code](x.md)`\n```\n[fenced](y.md)\n```\n![i](p.png)\n";
    let targets: Vec<String> = link_targets(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(targets, ["#a-b-c", "#nope", "p.png"]);
    let a = anchors(text);
    assert!(a.contains("a-b-c") && a.contains("top") && !a.contains("nope"));
}
