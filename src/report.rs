//! Seeds summarised (`summary.csv`, and the same table for LaTeX papers in `summary.tex`), the
//! report a user pastes into their own (`report.md`: the manifest's facts, the summary as a
//! Markdown table, every chart) and the page they open to explore the sweep (`report.html`,
//! in [`html`]).

use std::path::Path;

pub mod html;

use crate::Error;
use crate::output::{self, Manifest};
use crate::record::{RunRow, Status, fmt_num};

/// The per-configuration summary table.
pub const SUMMARY_CSV: &str = "summary.csv";
/// The per-configuration summary as a booktabs LaTeX table.
pub const SUMMARY_TEX: &str = "summary.tex";
/// The Markdown report.
pub const REPORT_MD: &str = "report.md";

/// n, mean, sample standard deviation, min and max of the present values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Values present.
    pub n: usize,
    /// Mean.
    pub mean: Option<f64>,
    /// Sample standard deviation (n − 1 in the denominator); absent below two values.
    pub std: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
}

impl Stats {
    /// Statistics of the present values, summed in the given order.
    pub fn of(values: impl Iterator<Item = Option<f64>>) -> Self {
        let v: Vec<f64> = values.flatten().collect();
        if v.is_empty() {
            return Self::default();
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64).sqrt());
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Self {
            n,
            mean: Some(mean),
            std,
            min: Some(min),
            max: Some(max),
        }
    }
}

/// One configuration (every swept key but the seed) and its runs.
pub struct Group {
    /// The configuration's values of the non-seed swept keys.
    pub config: Vec<String>,
    /// Its runs, in sweep order.
    pub rows: Vec<RunRow>,
}

/// Groups runs by configuration, in order of first appearance.
pub fn groups(keys: &[&str], rows: &[RunRow]) -> (Vec<String>, Vec<Group>) {
    let cols: Vec<usize> = (0..keys.len()).filter(|&i| keys[i] != "train.seed").collect();
    let names = cols.iter().map(|&i| keys[i].to_string()).collect();
    let mut out: Vec<Group> = Vec::new();
    for row in rows {
        let config: Vec<String> = cols.iter().map(|&i| row.swept[i].clone()).collect();
        match out.iter_mut().find(|g| g.config == config) {
            Some(g) => g.rows.push(row.clone()),
            None => out.push(Group {
                config,
                rows: vec![row.clone()],
            }),
        }
    }
    (names, out)
}

/// Whether every seed of a configuration completed below its task's baseline.
fn beats_baseline(g: &Group) -> bool {
    g.rows
        .iter()
        .all(|r| r.status == Status::Ok && r.final_loss.is_some_and(|l| l < r.baseline_loss))
}

/// One measure of a run, read from its row.
type Measure = fn(&RunRow) -> Option<f64>;

/// The measures `summary.csv` summarises over seeds: `depth_factor` only when `stacked` (the
/// sweep has a run of more than one layer), so a one-layer sweep's table keeps its columns.
fn summarised(stacked: bool) -> Vec<(&'static str, Measure)> {
    let mut m: Vec<(&'static str, Measure)> = vec![
        ("final_loss", |r| r.final_loss),
        ("final_accuracy", |r| r.final_accuracy),
        ("decay_factor", |r| r.decay_factor),
    ];
    if stacked {
        m.push(("depth_factor", |r| r.depth_factor));
    }
    m
}

/// `summary.csv` as bytes: one row per configuration with n, the number of `ok` runs, and
/// mean, std, min, max of `final_loss`, `final_accuracy`, `decay_factor` and, when `stacked`
/// (some run has more than one layer; [`Manifest::has_stacks`]), `depth_factor`, the baseline,
/// and whether the configuration beats its baseline in every seed.
pub fn summary_csv(keys: &[&str], rows: &[RunRow], stacked: bool) -> Result<Vec<u8>, csv::Error> {
    let (names, groups) = groups(keys, rows);
    let measures = summarised(stacked);
    let mut header = names.clone();
    header.extend(["runs", "runs_ok"].map(String::from));
    for (m, _) in &measures {
        for s in ["mean", "std", "min", "max"] {
            header.push(format!("{m}_{s}"));
        }
    }
    header.extend(["baseline_loss", "beats_baseline"].map(String::from));
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    for g in &groups {
        let mut rec = g.config.clone();
        rec.push(g.rows.len().to_string());
        rec.push(g.rows.iter().filter(|r| r.status == Status::Ok).count().to_string());
        for (_, value) in &measures {
            let stats = Stats::of(g.rows.iter().map(value));
            rec.extend([stats.mean, stats.std, stats.min, stats.max].map(fmt_num));
        }
        rec.push(fmt_num(g.rows.first().map(|r| r.baseline_loss)));
        rec.push(beats_baseline(g).to_string());
        w.write_record(&rec)?;
    }
    Ok(w.into_inner().expect("in-memory writer"))
}

/// Writes `summary.csv` ([`summary_csv`]) and beside it `summary.tex` ([`summary_tex`]), the
/// same configurations for a LaTeX paper; `stacked`: some run has more than one layer.
pub fn write_summary(out: &Path, name: &str, keys: &[&str], rows: &[RunRow], stacked: bool) -> Result<(), Error> {
    let path = out.join(SUMMARY_CSV);
    let bytes = summary_csv(keys, rows, stacked).map_err(|e| Error::Data {
        path: path.clone(),
        line: None,
        message: e.to_string(),
    })?;
    output::write_atomic(&path, &bytes)?;
    output::write_atomic(
        &out.join(SUMMARY_TEX),
        summary_tex(name, keys, rows, stacked).as_bytes(),
    )
}

/// `text` with LaTeX's special characters escaped, for a table cell or caption.
fn tex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\textbackslash{}"),
            '{' | '}' | '$' | '&' | '#' | '_' | '%' => {
                out.push('\\');
                out.push(c);
            }
            '^' => out.push_str("\\textasciicircum{}"),
            '~' => out.push_str("\\textasciitilde{}"),
            '<' => out.push_str("\\textless{}"),
            '>' => out.push_str("\\textgreater{}"),
            _ => out.push(c),
        }
    }
    out
}

/// A number for LaTeX's math mode, 4 significant digits as in `report.md`: `0.1234`,
/// `1.234\times10^{-5}`.
fn tex_num(x: f64) -> String {
    let m = md(Some(x));
    match m.split_once('e') {
        Some((mant, exp)) => {
            let exp = exp.trim_start_matches('+');
            let exp = exp.strip_prefix('-').map_or_else(
                || exp.trim_start_matches('0').to_string(),
                |e| format!("-{}", e.trim_start_matches('0')),
            );
            format!("{mant}\\times10^{{{exp}}}")
        }
        None => m,
    }
}

/// A statistics cell: `$mean \pm std$` over two or more values, the value alone for one, `--`
/// for none.
fn tex_stats(s: &Stats) -> String {
    match (s.mean, s.std) {
        (Some(m), Some(d)) => format!("${} \\pm {}$", tex_num(m), tex_num(d)),
        (Some(m), None) => format!("${}$", tex_num(m)),
        _ => "--".into(),
    }
}

/// The summary as a booktabs LaTeX `table` (caption and label included) that compiles as is in
/// a document loading `booktabs`: one row per configuration, mean ± sample standard deviation
/// over its seeds of the final loss, final accuracy (when the task has one) and the measured
/// decay factor after training (and, when `stacked`, the depth factor after training), the
/// baseline and whether every seed beat it. Swept numbers are right-aligned, words left-aligned.
pub fn summary_tex(name: &str, keys: &[&str], rows: &[RunRow], stacked: bool) -> String {
    let (names, groups) = groups(keys, rows);
    let accuracy = rows.iter().any(|r| r.final_accuracy.is_some());
    let numeric: Vec<bool> = (0..names.len())
        .map(|i| {
            groups
                .iter()
                .all(|g| g.config[i] == "none" || g.config[i].parse::<f64>().is_ok())
        })
        .collect();
    let mut spec: String = numeric.iter().map(|&n| if n { 'r' } else { 'l' }).collect();
    spec.push_str(if accuracy { "rccc" } else { "rcc" });
    if stacked {
        spec.push('c');
    }
    spec.push_str("rl");
    let mut head: Vec<String> = names.iter().map(|n| format!("\\texttt{{{}}}", tex_escape(n))).collect();
    head.push("seeds".into());
    head.push("final loss".into());
    if accuracy {
        head.push("final accuracy".into());
    }
    head.push("decay factor".into());
    if stacked {
        head.push("depth factor".into());
    }
    head.extend(["baseline", "beats baseline"].map(String::from));
    let label: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' })
        .collect();
    let mut t = String::new();
    t.push_str("% Written by runner from the runs of summary.csv: one row per configuration, its seeds\n");
    t.push_str("% summarised. Needs \\usepackage{booktabs}; \\input{summary.tex} where the table goes.\n");
    t.push_str("\\begin{table}[htbp]\n\\centering\n\\small\n");
    t.push_str(&format!(
        "\\caption{{{}: final evaluation loss{}, and the measured per-step factor of the gradient after training{}, mean $\\pm$ sample standard deviation over the seeds of each configuration. \\emph{{Beats baseline}}: every seed completed below the task's memoryless baseline.}}\n",
        tex_escape(name),
        if accuracy { ", final accuracy" } else { "" },
        if stacked {
            " (in a stack, of the top layer) and its per-layer factor down the stack"
        } else {
            ""
        }
    ));
    t.push_str(&format!("\\label{{tab:{label}-summary}}\n"));
    t.push_str(&format!("\\begin{{tabular}}{{{spec}}}\n\\toprule\n"));
    t.push_str(&format!("{} \\\\\n\\midrule\n", head.join(" & ")));
    for g in &groups {
        let ok = g.rows.iter().filter(|x| x.status == Status::Ok).count();
        let mut cells: Vec<String> = g.config.iter().map(|v| tex_escape(v)).collect();
        cells.push(if ok == g.rows.len() {
            ok.to_string()
        } else {
            format!("{ok} of {} ok", g.rows.len())
        });
        cells.push(tex_stats(&Stats::of(g.rows.iter().map(|x| x.final_loss))));
        if accuracy {
            cells.push(tex_stats(&Stats::of(g.rows.iter().map(|x| x.final_accuracy))));
        }
        cells.push(tex_stats(&Stats::of(g.rows.iter().map(|x| x.decay_factor))));
        if stacked {
            cells.push(tex_stats(&Stats::of(g.rows.iter().map(|x| x.depth_factor))));
        }
        cells.push(
            g.rows
                .first()
                .map_or("--".into(), |x| format!("${}$", tex_num(x.baseline_loss))),
        );
        cells.push(if beats_baseline(g) { "yes".into() } else { "no".into() });
        t.push_str(&format!("{} \\\\\n", cells.join(" & ")));
    }
    t.push_str("\\bottomrule\n\\end{tabular}\n\\end{table}\n");
    t
}

/// `runner plot DIR`: redraws every chart of a results folder (with `overrides`, as
/// [`crate::plot::draw_all`]), then rewrites `summary.tex`, `report.md` and `report.html` from its files, so a
/// folder written before a file existed gains it. Returns the charts written.
pub fn redraw(dir: &Path, overrides: &[String]) -> Result<Vec<std::path::PathBuf>, Error> {
    let charts = crate::plot::draw_all(dir, overrides)?;
    let manifest = output::read_manifest(dir)?;
    let table = output::read_runs(dir)?;
    let keys: Vec<&str> = table.swept_keys.iter().map(String::as_str).collect();
    output::write_atomic(
        &dir.join(SUMMARY_TEX),
        summary_tex(&manifest.name, &keys, &table.rows, manifest.has_stacks()).as_bytes(),
    )?;
    write_report(dir, &manifest, true)?;
    Ok(charts)
}

/// A number in a Markdown cell: 4 significant digits.
fn md(x: Option<f64>) -> String {
    match x {
        Some(v) if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) => format!("{v:.3e}"),
        Some(v) => format!("{:.4}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string(),
        None => "–".into(),
    }
}

/// Writes `report.md` from the manifest and the final tables, and beside it `report.html`
/// ([`html::write`]).
pub fn write_report(out: &Path, manifest: &Manifest, charts: bool) -> Result<(), Error> {
    let table = output::read_runs(out)?;
    let keys: Vec<&str> = table.swept_keys.iter().map(String::as_str).collect();
    let (names, groups) = groups(&keys, &table.rows);
    let stacked = manifest.has_stacks();
    let count = |s: Status| table.rows.iter().filter(|r| r.status == s).count();
    let mut r = format!("# {}\n\n", manifest.name);
    if !manifest.description.trim().is_empty() {
        r.push_str(manifest.description.trim());
        r.push_str("\n\n");
    }
    r.push_str("| | |\n|---|---|\n");
    r.push_str(&format!(
        "| spec | `{}` (hash `{}`) |\n",
        manifest.spec_file, manifest.spec_hash
    ));
    r.push_str(&format!(
        "| program | runner {}{} |\n",
        manifest.program_version,
        manifest
            .git_commit
            .as_deref()
            .map(|c| format!(", commit `{}`", &c[..c.len().min(12)]))
            .unwrap_or_default()
    ));
    r.push_str(&format!("| threads | {} |\n", manifest.threads));
    r.push_str(&format!(
        "| started, finished (UTC) | {}, {} |\n",
        manifest.started,
        manifest.finished.as_deref().unwrap_or("–")
    ));
    r.push_str(&format!(
        "| runs | {}: {} ok, {} diverged, {} failed |\n",
        table.rows.len(),
        count(Status::Ok),
        count(Status::Diverged),
        count(Status::Failed)
    ));
    r.push_str(&format!(
        "| swept | {} |\n\n",
        if keys.is_empty() {
            "nothing".into()
        } else {
            keys.join(", ")
        }
    ));

    r.push_str("## Summary\n\nOne row per configuration; statistics over its seeds (mean ± sample standard deviation, [min, max]). ");
    r.push_str("*Beats baseline*: every seed completed with a final loss below the task's memoryless baseline.\n\n");
    let (head, cells) = summary_cells(&names, &groups, stacked);
    let md_head: Vec<String> = head
        .iter()
        .enumerate()
        .map(|(i, h)| if i < names.len() { format!("`{h}`") } else { h.clone() })
        .collect();
    let mut md_table = format!("| {} |\n|{}\n", md_head.join(" | "), "---|".repeat(md_head.len()));
    let mut html_table = String::from("<div class=\"scroll\"><table class=\"summary\">\n<thead><tr>");
    for (i, h) in head.iter().enumerate() {
        let h = html::escape(h);
        html_table.push_str(&if i < names.len() {
            format!("<th><code>{h}</code></th>")
        } else {
            format!("<th>{h}</th>")
        });
    }
    html_table.push_str("</tr></thead>\n<tbody>\n");
    for row in &cells {
        md_table.push_str(&format!("| {} |\n", row.join(" | ")));
        html_table.push_str("<tr>");
        for c in row {
            html_table.push_str(&format!("<td>{}</td>", html::escape(c)));
        }
        html_table.push_str("</tr>\n");
    }
    html_table.push_str("</tbody></table></div>\n");
    r.push_str(&md_table);
    if charts {
        r.push_str("\n## Charts\n\nLines are geometric means over seeds, bands the range from the lowest to the highest seed; runner's docs/outputs.md explains how to read each chart.\n\n");
        for (name, title) in [
            ("grad_decay", "Gradient reaching back d steps, after training"),
            ("grad_decay_init", "Gradient reaching back d steps, at initialisation"),
            (
                "grad_depth",
                "Gradient at each layer reaching back d steps, after training",
            ),
            (
                "grad_depth_init",
                "Gradient at each layer reaching back d steps, at initialisation",
            ),
            ("loss", "Training loss"),
            ("grad_norm", "Gradient norm before clipping"),
            ("final_loss", "Final evaluation loss"),
            ("final_accuracy", "Final evaluation accuracy"),
            ("decay_factor_init", "Per-step factor of the gradient at initialisation"),
            ("decay_factor", "Per-step factor of the gradient after training"),
            (
                "depth_factor_init",
                "Per-layer factor of the gradient down the stack at initialisation",
            ),
            (
                "depth_factor",
                "Per-layer factor of the gradient down the stack after training",
            ),
            ("diverged", "Share of runs that diverged"),
            ("decay_vs_bound", "Measured per-step factor against its bound"),
            ("spectrum_init", "Lyapunov spectrum at initialisation"),
            ("spectrum", "Lyapunov spectrum after training"),
            ("lyapunov_max_init", "Largest Lyapunov exponent at initialisation"),
            ("lyapunov_max", "Largest Lyapunov exponent after training"),
            ("final_loss_heatmap", "Final loss by two swept keys"),
        ] {
            // Charts drawn only for some sweeps (accuracy, the bound) are listed when present,
            // as PNG, or as SVG when `output.formats` leaves PNG out.
            let Some(ext) = ["png", "svg"]
                .into_iter()
                .find(|e| out.join("charts").join(format!("{name}.{e}")).exists())
            else {
                continue;
            };
            r.push_str(&format!("### {title}\n\n![{title}](charts/{name}.{ext})\n\n"));
        }
    }
    output::write_atomic(&out.join(REPORT_MD), r.as_bytes())?;
    let csv = summary_csv(&keys, &table.rows, stacked).map_err(|e| Error::Data {
        path: out.join(SUMMARY_CSV),
        line: None,
        message: e.to_string(),
    })?;
    let copies = [
        md_table,
        summary_tex(&manifest.name, &keys, &table.rows, stacked),
        String::from_utf8_lossy(&csv).into_owned(),
    ];
    html::write(out, manifest, &html_table, copies)
}

/// The summary's header and cells as `report.md` and `report.html` show them: the
/// configuration, the seeds, mean ± std [min, max] of the final loss, final accuracy, decay
/// factor and, when `stacked`, depth factor, the baseline and whether every seed beat it.
fn summary_cells(names: &[String], groups: &[Group], stacked: bool) -> (Vec<String>, Vec<Vec<String>>) {
    let mut head: Vec<String> = names.to_vec();
    head.extend(["seeds", "final loss", "final accuracy", "decay factor"].map(String::from));
    if stacked {
        head.push("depth factor".into());
    }
    head.extend(["baseline", "beats baseline"].map(String::from));
    let rows = groups
        .iter()
        .map(|g| {
            let cell = |s: Stats| match s.n {
                0 => "–".to_string(),
                1 => md(s.mean),
                _ => format!("{} ± {} [{}, {}]", md(s.mean), md(s.std), md(s.min), md(s.max)),
            };
            let ok = g.rows.iter().filter(|x| x.status == Status::Ok).count();
            let mut cells = g.config.clone();
            cells.push(if ok == g.rows.len() {
                ok.to_string()
            } else {
                format!("{ok} of {} ok", g.rows.len())
            });
            cells.push(cell(Stats::of(g.rows.iter().map(|x| x.final_loss))));
            cells.push(cell(Stats::of(g.rows.iter().map(|x| x.final_accuracy))));
            cells.push(cell(Stats::of(g.rows.iter().map(|x| x.decay_factor))));
            if stacked {
                cells.push(cell(Stats::of(g.rows.iter().map(|x| x.depth_factor))));
            }
            cells.push(md(g.rows.first().map(|x| x.baseline_loss)));
            cells.push(if beats_baseline(g) { "yes".into() } else { "no".into() });
            cells
        })
        .collect();
    (head, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_use_the_sample_standard_deviation_and_skip_missing_values() {
        let s = Stats::of([Some(1.0), None, Some(3.0)].into_iter());
        assert_eq!((s.n, s.mean, s.min, s.max), (2, Some(2.0), Some(1.0), Some(3.0)));
        assert!((s.std.unwrap() - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(Stats::of([Some(5.0)].into_iter()).std, None);
        assert_eq!(Stats::of([None].into_iter()).n, 0);
    }
}
