//! The files people open, checked the way a person would use them: `summary.tex` compiled by
//! `pdflatex` inside a minimal document, the heatmap drawn for two numeric keys and redrawn by
//! `runner plot --set plot.heatmap=[…]`, every chart as a PDF rendered by `pdftoppm` and compared
//! with its PNG, and `report.html` opened by a headless Chromium with the network cut off.
//!
//! The external tools (pdflatex, pdftoppm, chromium and chromedriver) are Debian packages that
//! `.ci/run` installs; a test whose tool is missing here says so on stderr and passes.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{run, scratch, stderr};

/// Two numeric keys (learning rate × clipping threshold, `none` among them), a word key for
/// panels and two seeds: 16 runs of a few milliseconds. At lr = 3 without clipping the tanh
/// and ReLU runs explode, so some cells hold diverged runs.
const GRID: &str = r#"
name = "grid"
description = "Learning rate against clipping threshold, for the report tests."
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

/// Runs `spec` (named `name`) in a fresh folder and returns its results folder.
fn sweep(test: &str, name: &str, spec: &str, extra: &[&str]) -> PathBuf {
    let dir = scratch(test);
    fs::write(dir.join(format!("{name}.toml")), spec).unwrap();
    let mut args = vec![format!("{name}.toml"), "--quiet".into(), "--out".into(), "res".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&dir, &args);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "exit {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    dir.join("res")
}

/// Whether `tool` runs here; if not, says which test skips and why.
fn have(tool: &str, test: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        eprintln!("SKIPPED {test}: `{tool}` is not installed here (.ci/run installs it)");
    }
    found
}

#[test]
fn summary_tex_compiles_with_pdflatex() {
    let res = sweep("tex", "grid", GRID, &[]);
    let tex = fs::read_to_string(res.join("summary.tex")).unwrap();
    assert!(tex.contains("\\toprule") && tex.contains("\\bottomrule"), "{tex}");
    // 8 configurations (the seeds summarised): 8 rows between \midrule and \bottomrule.
    let body = &tex[tex.find("\\midrule").unwrap()..tex.find("\\bottomrule").unwrap()];
    assert_eq!(body.matches("\\\\").count(), 8, "{tex}");
    assert!(tex.contains("\\texttt{train.lr}") && tex.contains("$\\pm$"), "{tex}");
    if !have("pdflatex", "summary_tex_compiles_with_pdflatex") {
        return;
    }
    let doc = res.join("doc.tex");
    fs::write(
        &doc,
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n\\input{summary.tex}\n\\end{document}\n",
    )
    .unwrap();
    let out = Command::new("pdflatex")
        .args([
            "-interaction=nonstopmode",
            "-halt-on-error",
            "-no-shell-escape",
            "doc.tex",
        ])
        .current_dir(&res)
        .output()
        .unwrap();
    let log = fs::read_to_string(res.join("doc.log")).unwrap_or_default();
    assert!(
        out.status.success() && res.join("doc.pdf").exists(),
        "pdflatex failed:\n{}",
        &log[log.len().saturating_sub(3000)..]
    );
    assert!(!log.contains("Undefined control sequence"), "{log}");
}

/// Reads a folder's file list, sorted, relative to it.
#[allow(dead_code)]
fn files(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}
