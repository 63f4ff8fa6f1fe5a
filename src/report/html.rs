//! `report.html`: one self-contained page per results folder that opens from disk with no
//! network at all. It holds the manifest's facts and the spec, the seed-aggregated summary
//! (with its Markdown, LaTeX and CSV forms to copy), the runs table (sorted, filtered and
//! clicked in the page), a parallel-coordinates view of the swept keys against the final loss,
//! and every chart of the folder inline as SVG with its caption.
//!
//! The page's script and style (`assets/report/report.js`, `report.css`) are written for it and
//! compiled into the binary; the data they read is embedded once as JSON. A content security
//! policy that allows nothing but the page's own inline script and style makes sure nothing is
//! ever fetched. Curves are downsampled to at most [`CURVE_POINTS`] points per run, numbers
//! written with 4 significant digits, so a sweep of a thousand runs stays a few megabytes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde_json::{Value, json};

use crate::Error;
use crate::output::{self, Manifest, RunsTable};
use crate::record::{CurveRow, DecayRow, RunRow, Status, top_layer};

/// The page.
pub const REPORT_HTML: &str = "report.html";

/// Most points of a run's loss curve or gradient-decay profile embedded in the page.
pub const CURVE_POINTS: usize = 60;

static SCRIPT: &str = include_str!("../../assets/report/report.js");
static STYLE: &str = include_str!("../../assets/report/report.css");

/// The charts in the order the page shows them, with a title and what to read in them (the
/// captions of docs/outputs.md, shortened).
pub const CHARTS: [(&str, &str, &str); 19] = [
    (
        "grad_decay_init",
        "Gradient reaching back d steps, at initialisation",
        "‖∂E_T/∂h_{T−d}‖ against the distance d. A straight line on the log axis is exponential decay, its slope ln of the decay factor; steep falls are vanishing gradients, rising lines exploding ones.",
    ),
    (
        "grad_decay",
        "Gradient reaching back d steps, after training",
        "The same probe at the last step of training.",
    ),
    (
        "grad_depth_init",
        "Gradient at each layer reaching back d steps, at initialisation",
        "‖∂E_T/∂h⁽ˡ⁾_{T−d}‖ for every layer l of each stacked configuration, light the bottom layer, dark the top. A line's slope is the per-step factor in that layer; the gaps between the lines at d = 0 are the per-layer factor down the stack.",
    ),
    (
        "grad_depth",
        "Gradient at each layer reaching back d steps, after training",
        "The same at the last probe.",
    ),
    (
        "loss",
        "Training loss",
        "Moving average of the log of the training loss; the task's memoryless baseline dashed. A line that settles on the baseline has learned only the mean.",
    ),
    (
        "grad_norm",
        "Gradient norm before clipping",
        "‖g‖₂ before clipping, the clipping threshold θ dashed in red: points above it are steps where clipping acted.",
    ),
    (
        "final_loss",
        "Final evaluation loss",
        "Against the x key, geometric mean over seeds with their range; the baseline dashed; a cross on the top edge marks a run that diverged.",
    ),
    (
        "final_loss_heatmap",
        "Final loss by two swept keys",
        "One cell per pair of values: the geometric mean over seeds of the final loss on a log colour scale (dark is low), the baseline marked on the colour bar; × marks a cell where some seed diverged, grey one where all did.",
    ),
    (
        "final_accuracy",
        "Final evaluation accuracy",
        "Mean over seeds with their range, for tasks with an accuracy.",
    ),
    (
        "decay_factor_init",
        "Per-step factor of the gradient at initialisation",
        "The measured per-step factor; below the dashed 1 the gradient vanishes, above it explodes. Dotted with hollow dots: its bound ‖W‖₂·max|σ′|.",
    ),
    (
        "decay_factor",
        "Per-step factor of the gradient after training",
        "The same after training.",
    ),
    (
        "depth_factor_init",
        "Per-layer factor of the gradient down the stack at initialisation",
        "(‖∂E_T/∂h⁽⁰⁾_T‖ / ‖∂E_T/∂h⁽ᴸ⁻¹⁾_T‖)^(1/(L−1)) against the x key; below the dashed 1 the gradient shrinks on its way down to the input layer.",
    ),
    (
        "depth_factor",
        "Per-layer factor of the gradient down the stack after training",
        "The same after training.",
    ),
    (
        "diverged",
        "Share of runs that diverged",
        "The share of each configuration's seeds whose loss or gradient became non-finite.",
    ),
    (
        "decay_vs_bound",
        "Measured per-step factor against its bound",
        "Every run's measured factor at initialisation against ‖W‖₂·max|σ′|: every dot lies on or below the diagonal.",
    ),
    (
        "spectrum_init",
        "Lyapunov spectrum at initialisation",
        "The finite-time Lyapunov exponents λ_i against i; where a line crosses 0 is how many directions grow.",
    ),
    (
        "spectrum",
        "Lyapunov spectrum after training",
        "The same at the last probe.",
    ),
    (
        "lyapunov_max_init",
        "Largest Lyapunov exponent at initialisation",
        "λ₁ against the x key; above 0 some direction grows per step.",
    ),
    (
        "lyapunov_max",
        "Largest Lyapunov exponent after training",
        "The same after training.",
    ),
];

/// One number of a run, read from its row.
type Measure = fn(&RunRow) -> Option<f64>;

/// The columns of `runs.csv` the table shows beside the swept keys (not `seconds`, which
/// differs between identical sweeps, nor `error`, shown when a failed run is opened).
const METRICS: [(&str, Measure); 13] = [
    ("final_loss", |r| r.final_loss),
    ("final_accuracy", |r| r.final_accuracy),
    ("decay_factor_init", |r| r.decay_factor_init),
    ("decay_factor", |r| r.decay_factor),
    ("bound_factor_init", |r| r.bound_factor_init),
    ("bound_factor", |r| r.bound_factor),
    ("w_norm_init", |r| r.w_norm_init),
    ("w_norm_final", |r| r.w_norm_final),
    ("w_radius_init", |r| r.w_radius_init),
    ("w_radius_final", |r| r.w_radius_final),
    ("lyapunov_max_init", |r| r.lyapunov_max_init),
    ("lyapunov_max", |r| r.lyapunov_max),
    ("diverged_step", |r| r.diverged_step.map(|s| s as f64)),
];

/// The columns added to [`METRICS`], after `decay_factor`, when some run is a stack (a
/// one-layer sweep's page keeps its bytes).
const DEPTH_METRICS: [(&str, Measure); 2] = [
    ("depth_factor_init", |r| r.depth_factor_init),
    ("depth_factor", |r| r.depth_factor),
];

/// A number with 4 significant digits, as JSON (null when absent or not finite).
fn num(x: Option<f64>) -> Value {
    match x.filter(|v| v.is_finite()) {
        Some(0.0) => json!(0),
        Some(v) => {
            let s = format!("{v:.3e}");
            Value::Number(serde_json::Number::from_f64(s.parse::<f64>().expect("a formatted number")).expect("finite"))
        }
        None => Value::Null,
    }
}

/// At most `n` of `points`, evenly spaced, the first and last kept.
fn thin<T: Clone>(points: &[T], n: usize) -> Vec<T> {
    if points.len() <= n || n < 2 {
        return points.to_vec();
    }
    (0..n)
        .map(|i| points[(i * (points.len() - 1) + (n - 1) / 2) / (n - 1)].clone())
        .collect()
}

/// A run's training loss as (step, log₁₀ loss): the mean of the log over equal slices of the
/// steps (at most [`CURVE_POINTS`]), as the loss chart smooths it.
fn loss_curve(rows: &[CurveRow]) -> Vec<Value> {
    let pts: Vec<(u64, f64)> = rows
        .iter()
        .filter_map(|r| {
            r.train_loss
                .filter(|l| *l > 0.0 && l.is_finite())
                .map(|l| (r.step, l.log10()))
        })
        .collect();
    let slices = pts.len().clamp(1, CURVE_POINTS);
    let mut out = Vec::new();
    for s in 0..slices {
        let (a, b) = (s * pts.len() / slices, (s + 1) * pts.len() / slices);
        if a == b {
            continue;
        }
        let part = &pts[a..b];
        let mean = part.iter().map(|p| p.1).sum::<f64>() / part.len() as f64;
        out.push(json!([part[part.len() - 1].0, num(Some(mean))]));
    }
    out
}

/// A run's gradient-decay profile at one probe, (distance, log₁₀ norm), hidden state of the
/// top layer (the one the head reads) only.
fn decay_profile(rows: &[DecayRow], step: u64) -> Vec<Value> {
    let top = top_layer(rows);
    let pts: Vec<&DecayRow> = rows
        .iter()
        .filter(|r| r.probe_step == step && r.layer == top && crate::record::is_output_state(&r.state))
        .collect();
    thin(&pts, CURVE_POINTS)
        .into_iter()
        .map(|r| json!([r.distance, num(r.log10_grad_norm)]))
        .collect()
}

/// `text` safe inside HTML text and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// JSON safe inside a `<script>` element (no `</script>` can end it early).
fn script_json(v: &Value) -> String {
    v.to_string().replace("</", "<\\/").replace("<!--", "<\\!--")
}

/// A JSON value of the manifest as the spec writes it: strings quoted, numbers bare.
fn toml_value(v: &Value) -> String {
    match v {
        Value::Array(items) => format!("[{}]", items.iter().map(toml_value).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

/// The resolved spec, TOML-like: every setting by section, then the sweep and the variants.
fn spec_text(m: &Manifest) -> String {
    let mut t = String::new();
    let mut section = "";
    for (k, v) in &m.settings {
        let (sec, key) = k.split_once('.').unwrap_or(("", k.as_str()));
        if sec != section {
            let _ = write!(t, "\n[{sec}]\n");
            section = sec;
        }
        let _ = writeln!(t, "{key} = {}", toml_value(v));
    }
    for v in &m.variants {
        let _ = write!(t, "\n[[variant]]\n");
        if let Some(obj) = v.as_object() {
            if let Some(l) = obj.get("label") {
                let _ = writeln!(t, "label = {l}");
            }
            if let Some(Value::Object(set)) = obj.get("settings") {
                for (k, val) in set {
                    let _ = writeln!(t, "{k} = {}", toml_value(val));
                }
            }
        }
    }
    if !m.sweep.is_empty() {
        t.push_str("\n[sweep]\n");
        for a in &m.sweep {
            let _ = writeln!(t, "\"{}\" = {}", a.key, toml_value(&Value::Array(a.values.clone())));
        }
    }
    t.trim_start().to_string()
}

/// Seconds between two RFC 3339 UTC times (`YYYY-MM-DDTHH:MM:SS[.fff]Z`), when both parse.
fn seconds_between(a: &str, b: &str) -> Option<f64> {
    fn parse(s: &str) -> Option<f64> {
        let (date, time) = s.trim_end_matches('Z').split_once('T')?;
        let d: Vec<i64> = date.split('-').map(|x| x.parse().ok()).collect::<Option<_>>()?;
        let t: Vec<f64> = time.split(':').map(|x| x.parse().ok()).collect::<Option<_>>()?;
        let (y, m, day) = (d.first()?, d.get(1)?, d.get(2)?);
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = if *m <= 2 { y - 1 } else { *y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe;
        Some(days as f64 * 86_400.0 + t.first()? * 3600.0 + t.get(1)? * 60.0 + t.get(2).copied().unwrap_or(0.0))
    }
    Some(parse(b)? - parse(a)?)
}

/// Charts larger than this (after [`simplify_points`]) are embedded compressed.
const PACK_ABOVE: usize = 48 * 1024;

/// A chart's SVG for the page: its polylines and polygons without the points that change
/// nothing drawn ([`simplify_points`]); a large one (a loss curve of thousands of steps per
/// line) compressed with zlib and written as base64 in `data-deflate`, which the page's script
/// unpacks with the browser's own `DecompressionStream`, so the file stays small.
fn inline_svg(name: &str, svg: &str) -> String {
    let svg = svg.trim_start_matches(|c| c != '<').trim();
    let svg = simplify_points(svg);
    if svg.len() <= PACK_ABOVE {
        return svg;
    }
    let packed = miniz_oxide::deflate::compress_to_vec_zlib(svg.as_bytes(), 9);
    format!(
        "<div class=\"packed\" data-deflate=\"{}\">This chart is stored compressed and drawn by the page's script; <code>charts/{name}.svg</code> beside this page holds it too.</div>",
        base64(&packed)
    )
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every `points="x,y x,y …"` list (integer pixels, as plotters writes them) without the points
/// that change nothing drawn: a repeat of the point before it, or a point on the straight
/// segment between its neighbours, continuing in the same direction. A list that is not all
/// integer pairs is left as it is.
pub fn simplify_points(svg: &str) -> String {
    let mut out = String::with_capacity(svg.len());
    let mut rest = svg;
    while let Some(at) = rest.find("points=\"") {
        let (before, after) = rest.split_at(at + 8);
        out.push_str(before);
        let end = after.find('"').unwrap_or(after.len());
        let list = &after[..end];
        let parsed: Option<Vec<(i64, i64)>> = list
            .split_whitespace()
            .map(|p| {
                let (x, y) = p.split_once(',')?;
                Some((x.parse().ok()?, y.parse().ok()?))
            })
            .collect();
        match parsed {
            Some(points) => {
                let mut kept: Vec<(i64, i64)> = Vec::with_capacity(points.len());
                for p in points {
                    if kept.last() == Some(&p) {
                        continue;
                    }
                    while let [.., a, b] = kept[..] {
                        let (u, v) = ((b.0 - a.0, b.1 - a.1), (p.0 - b.0, p.1 - b.1));
                        if u.0 * v.1 - u.1 * v.0 == 0 && u.0 * v.0 + u.1 * v.1 > 0 {
                            kept.pop();
                        } else {
                            break;
                        }
                    }
                    kept.push(p);
                }
                let text: Vec<String> = kept.iter().map(|(x, y)| format!("{x},{y}")).collect();
                out.push_str(&text.join(" "));
            }
            None => out.push_str(list),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

/// The facts at the top of the page, as (label, value) rows of HTML.
fn facts(m: &Manifest, table: &RunsTable) -> Vec<(&'static str, String)> {
    let count = |s: Status| table.rows.iter().filter(|r| r.status == s).count();
    let mut rows = vec![
        (
            "spec",
            format!(
                "<code>{}</code> (hash <code>{}</code>)",
                escape(&m.spec_file),
                escape(&m.spec_hash)
            ),
        ),
        (
            "runs",
            format!(
                "{}: <span class=\"ok\">{} ok</span>, <span class=\"diverged\">{} diverged</span>, <span class=\"failed\">{} failed</span>",
                table.rows.len(),
                count(Status::Ok),
                count(Status::Diverged),
                count(Status::Failed)
            ),
        ),
        (
            "program",
            format!(
                "runner {}{}",
                escape(&m.program_version),
                m.git_commit
                    .as_deref()
                    .map(|c| format!(", commit <code>{}</code>", escape(&c[..c.len().min(12)])))
                    .unwrap_or_default()
            ),
        ),
        (
            "processor",
            format!(
                "{}{}",
                m.processor
                    .as_deref()
                    .map(escape)
                    .unwrap_or_else(|| "not recorded".into()),
                m.isa
                    .as_deref()
                    .map(|i| format!(", kernel path <code>{}</code>", escape(i)))
                    .unwrap_or_default()
            ),
        ),
        ("threads", m.threads.to_string()),
        (
            "started, finished (UTC)",
            format!(
                "{}, {}",
                escape(&m.started),
                escape(m.finished.as_deref().unwrap_or("–"))
            ),
        ),
    ];
    if let Some(s) = m.finished.as_deref().and_then(|f| seconds_between(&m.started, f)) {
        rows.push(("wall time", format!("{s:.1} s")));
    }
    if let Some(shard) = &m.shard {
        rows.push(("shard", escape(shard)));
    }
    rows
}

/// The data the page's script reads: swept keys, the constant settings, every run's values
/// and measures, and its downsampled curves.
fn data(dir: &Path, m: &Manifest, table: &RunsTable, copies: [String; 3]) -> Result<Value, Error> {
    let mut curves: BTreeMap<String, Vec<CurveRow>> = BTreeMap::new();
    for row in output::read_curves(dir)? {
        curves.entry(row.run_id.clone()).or_default().push(row);
    }
    let mut decay: BTreeMap<String, Vec<DecayRow>> = BTreeMap::new();
    for row in output::read_decay(dir)? {
        decay.entry(row.run_id.clone()).or_default().push(row);
    }
    let keys = &table.swept_keys;
    let numeric: Vec<bool> = (0..keys.len())
        .map(|i| {
            table.rows.iter().any(|r| r.swept[i].parse::<f64>().is_ok())
                && table
                    .rows
                    .iter()
                    .all(|r| r.swept[i] == "none" || r.swept[i].parse::<f64>().is_ok())
        })
        .collect();
    // Settings the runs share: every resolved key not swept, with the first run's value.
    let constant: Vec<Value> = m
        .runs
        .first()
        .map(|r| {
            r.config
                .iter()
                .filter(|(k, _)| !keys.contains(k))
                .filter(|(k, v)| m.runs.iter().all(|o| o.config.get(*k) == Some(v)))
                .map(|(k, v)| json!([k, v.as_str().map_or_else(|| v.to_string(), String::from)]))
                .collect()
        })
        .unwrap_or_default();
    // A stack's depth factors go beside the decay factors.
    let mut metrics: Vec<(&str, Measure)> = METRICS.to_vec();
    if m.has_stacks() {
        let at = 1 + metrics
            .iter()
            .position(|(n, _)| *n == "decay_factor")
            .expect("a metric");
        metrics.splice(at..at, DEPTH_METRICS);
    }
    let runs: Vec<Value> = table
        .rows
        .iter()
        .map(|r| {
            let metrics: Vec<Value> = metrics.iter().map(|(_, f)| num(f(r))).collect();
            let rows = decay.get(&r.run_id).map(Vec::as_slice).unwrap_or(&[]);
            let last = rows.iter().map(|d| d.probe_step).max().unwrap_or(0);
            json!({
                "id": r.run_id,
                "v": r.swept,
                "s": r.status.as_str(),
                "m": metrics,
                "err": r.error,
                "loss": loss_curve(curves.get(&r.run_id).map(Vec::as_slice).unwrap_or(&[])),
                "d0": decay_profile(rows, 0),
                "d1": if last > 0 { Value::Array(decay_profile(rows, last)) } else { Value::Null },
                "last": last,
            })
        })
        .collect();
    let baseline = table.rows.first().map(|r| r.baseline_loss);
    let [markdown, latex, csv] = copies;
    Ok(json!({
        "name": m.name,
        "keys": keys,
        "numeric": numeric,
        "constant": constant,
        "metrics": metrics.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        "baseline": num(baseline),
        "runs": runs,
        "copy": { "markdown": markdown, "latex": latex, "csv": csv },
    }))
}

/// Writes `report.html` into `dir` from its manifest, tables, summary forms (`summary_md`,
/// `summary_tex`, `summary_csv`) and charts.
pub fn write(dir: &Path, m: &Manifest, summary_html: &str, copies: [String; 3]) -> Result<(), Error> {
    let table = output::read_runs(dir)?;
    let data = data(dir, m, &table, copies)?;
    let mut h = String::with_capacity(1 << 20);
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // Nothing but the page's own inline script and style, and images written into it.
    h.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:\">\n");
    h.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<link rel=\"icon\" href=\"data:,\">\n");
    let _ = writeln!(h, "<title>{} — runner report</title>", escape(&m.name));
    let _ = writeln!(h, "<style>\n{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(h, "<header>\n<h1>{}</h1>", escape(&m.name));
    if !m.description.trim().is_empty() {
        let _ = writeln!(h, "<p class=\"description\">{}</p>", escape(m.description.trim()));
    }
    h.push_str("<table class=\"facts\">\n");
    for (label, value) in facts(m, &table) {
        let _ = writeln!(h, "<tr><th>{label}</th><td>{value}</td></tr>");
    }
    let swept = if table.swept_keys.is_empty() {
        "nothing".to_string()
    } else {
        table
            .swept_keys
            .iter()
            .map(|k| format!("<code>{}</code>", escape(k)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(h, "<tr><th>swept</th><td>{swept}</td></tr>\n</table>");
    let _ = writeln!(
        h,
        "<details id=\"spec\"><summary>The resolved spec</summary>\n<pre>{}</pre>\n</details>",
        escape(&spec_text(m))
    );
    h.push_str("<nav><a href=\"#summary\">Summary</a> · <a href=\"#runs\">Runs</a> · <a href=\"#parallel\">Parallel coordinates</a> · <a href=\"#charts\">Charts</a></nav>\n</header>\n<main>\n");

    h.push_str("<section id=\"summary\">\n<h2>Summary</h2>\n<p>One row per configuration; statistics over its seeds (mean ± sample standard deviation, [min, max]). <em>Beats baseline</em>: every seed completed with a final loss below the task's memoryless baseline.</p>\n");
    h.push_str("<p class=\"copy\">Copy the table as <button type=\"button\" data-copy=\"markdown\">Markdown</button> <button type=\"button\" data-copy=\"latex\">LaTeX (booktabs)</button> <button type=\"button\" data-copy=\"csv\">CSV</button> <span id=\"copied\" role=\"status\"></span></p>\n");
    h.push_str(summary_html);
    h.push_str("</section>\n");

    h.push_str("<section id=\"runs\">\n<h2>Runs</h2>\n<p>Click a column's name to sort by it (again to reverse), tick values to keep only those runs, click a run to see its curves.</p>\n<div id=\"filters\"></div>\n<p id=\"shown\"></p>\n<div class=\"scroll\"><table id=\"runs-table\" class=\"runs\"></table></div>\n<div id=\"detail\" hidden></div>\n</section>\n");
    h.push_str("<section id=\"parallel\">\n<h2>Parallel coordinates</h2>\n<p>Each line is a run (those the filters keep): its value of every swept key, and its final loss on a log axis at the right. Runs that diverged sit in the band above the axis instead of stretching it. Colour: final loss, dark low to yellow high.</p>\n<div id=\"parcoords\"></div>\n</section>\n");

    h.push_str("<section id=\"charts\">\n<h2>Charts</h2>\n<p>Lines are geometric means over seeds (on log axes), bands the range from the lowest to the highest seed; runner's docs/outputs.md explains how to read each chart.</p>\n");
    let charts = dir.join("charts");
    for (name, title, caption) in CHARTS {
        let Ok(svg) = std::fs::read_to_string(charts.join(format!("{name}.svg"))) else {
            continue;
        };
        let _ = writeln!(
            h,
            "<figure id=\"chart-{name}\">\n<h3>{}</h3>\n{}\n<figcaption><code>charts/{name}</code>: {}</figcaption>\n</figure>",
            escape(title),
            inline_svg(name, &svg),
            escape(caption)
        );
    }
    h.push_str("</section>\n</main>\n");
    let _ = writeln!(
        h,
        "<script type=\"application/json\" id=\"data\">{}</script>",
        script_json(&data)
    );
    let _ = writeln!(h, "<script>\n{SCRIPT}</script>\n</body>\n</html>");
    output::write_atomic(&dir.join(REPORT_HTML), h.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_digits_and_curves_thin_evenly() {
        assert_eq!(num(Some(0.123456)).to_string(), "0.1235");
        assert_eq!(num(Some(f64::NAN)), Value::Null);
        let t = thin(&(0..100).collect::<Vec<_>>(), 5);
        assert_eq!(t.first(), Some(&0));
        assert_eq!(t.last(), Some(&99));
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn points_that_draw_nothing_go() {
        let svg = "<polyline points=\"0,0 1,1 1,1 2,2 3,2 3,0 3,5\"/><text>points=\"a\"</text>";
        // (1,1) lies on the way from (0,0) to (2,2); (3,0) turns back, so it stays.
        assert_eq!(
            simplify_points(svg),
            "<polyline points=\"0,0 2,2 3,2 3,0 3,5\"/><text>points=\"a\"</text>"
        );
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }

    #[test]
    fn wall_time_from_rfc3339() {
        let s = seconds_between("2026-12-31T23:59:50Z", "2027-01-01T00:00:02.5Z").unwrap();
        assert!((s - 12.5).abs() < 1e-9, "{s}");
    }

    #[test]
    fn script_data_cannot_end_the_script() {
        assert_eq!(script_json(&json!("</script>")), "\"<\\/script>\"");
    }
}
