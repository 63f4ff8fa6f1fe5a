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

#[test]
fn heatmap_is_drawn_for_two_numeric_keys_and_redrawn_with_another_pair() {
    let res = sweep("heatmap", "grid", GRID, &[]);
    let svg = |res: &Path| fs::read_to_string(res.join("charts/final_loss_heatmap.svg")).unwrap();
    assert!(res.join("charts/final_loss_heatmap.png").exists());
    let first = svg(&res);
    // auto: the first two numeric keys, learning rate across, clipping up; activation as panels.
    assert!(
        first.contains("by learning rate and gradient-norm clipping threshold θ"),
        "{}",
        &first[..first.len().min(2000)]
    );
    assert!(first.contains("activation = tanh") && first.contains("activation = relu"));
    assert!(first.contains("1 of 2 diverged"), "the diverged ReLU cell is marked");
    let report = fs::read_to_string(res.join("report.md")).unwrap();
    assert!(report.contains("charts/final_loss_heatmap.png"), "{report}");

    let plot = |args: &[&str]| {
        let mut all = vec!["plot", "res"];
        all.extend(args);
        run(res.parent().unwrap(), &all)
    };
    let out = plot(&["--set", "plot.heatmap=[train.clip, train.lr]"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(svg(&res).contains("by gradient-norm clipping threshold θ and learning rate"));
    // The seed is averaged in each cell; an unswept key is not there: refused, nothing redrawn.
    for bad in [
        "plot.heatmap=[train.seed, train.lr]",
        "plot.heatmap=[model.hidden, train.lr]",
    ] {
        let out = plot(&["--set", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("plot.heatmap"), "{}", stderr(&out));
    }
    assert!(svg(&res).contains("by gradient-norm clipping threshold θ and learning rate"));
    let out = plot(&["--set", "plot.heatmap=none"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!res.join("charts/final_loss_heatmap.svg").exists());
    assert!(!fs::read_to_string(res.join("report.md")).unwrap().contains("heatmap"));
}

#[test]
fn a_spec_naming_unswept_heatmap_keys_is_refused_before_any_run() {
    let dir = scratch("heatmap-spec");
    for (bad, says) in [
        ("[plot]\nheatmap = [\"model.hidden\", \"train.lr\"]\n", "not swept"),
        ("[plot]\nheatmap = [\"train.lr\"]\n", "two"),
        (
            "[plot]\nheatmap = [\"train.seed\", \"train.lr\"]\n",
            "averages over the seeds",
        ),
        ("[output]\nformats = [\"png\", \"gif\"]\n", "gif"),
    ] {
        fs::write(
            dir.join("bad.toml"),
            format!("{bad}{}", &GRID[GRID.find("[task]").unwrap()..]),
        )
        .unwrap();
        let out = run(&dir, &["bad.toml", "--quiet", "--out", "res"]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{bad}: {}", stderr(&out));
        assert!(!dir.join("res").exists());
    }
}
