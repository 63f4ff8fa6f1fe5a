//! Charts, drawn from the results folder's CSV files and manifest alone (so `runner plot DIR`
//! redraws exactly what the sweep drew). Each chart is first reduced to a `Figure` — panels of
//! aggregated series, reference lines and markers — and then drawn once per backend (PNG and
//! SVG) by one drawing routine.
//!
//! Grouping: runs that differ only in `train.seed` form one line (mean with a min–max band);
//! the `plot.color` key picks a line's colour, every other swept key its dash pattern, and the
//! `plot.panel` key splits panels. Values spanning decades are drawn as log₁₀ on a linear axis
//! labelled in powers of ten, which also shows gradient norms below the smallest double.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::Error;
use crate::output::{self, Manifest, RunsTable};
use crate::record::{CurveRow, DecayRow, RunRow, Status};

/// The font every chart uses, shipped in the repository (DejaVu Sans; licence beside it).
static FONT: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Line colours (the "tab10" palette).
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Dash patterns (dash, gap) in pixels; (0, 0) is solid.
const DASHES: [(u32, u32); 4] = [(0, 0), (10, 6), (3, 4), (16, 4)];

/// One aggregated line: for each x, the mean, min and max over the runs (seeds) of the line.
#[derive(Clone, Debug)]
struct Series {
    color: usize,
    dash: usize,
    /// (x, mean, min, max), x increasing.
    points: Vec<(f64, f64, f64, f64)>,
}

/// A horizontal reference line (baseline, clip threshold).
#[derive(Clone, Debug)]
struct HLine {
    y: f64,
    label: String,
    color: RGBColor,
}

/// One panel of a figure.
#[derive(Clone, Debug, Default)]
struct Panel {
    title: String,
    series: Vec<Series>,
    hlines: Vec<HLine>,
    /// Reference curves (a baseline that depends on x), drawn dashed in black.
    ref_curves: Vec<Vec<(f64, f64)>>,
    /// x positions of diverged runs, drawn as crosses along the top edge, with their line's colour.
    diverged: Vec<(f64, usize)>,
}

/// A legend entry.
#[derive(Clone, Debug)]
struct LegendEntry {
    label: String,
    color: RGBColor,
    dash: usize,
    cross: bool,
}

/// Everything needed to draw one chart.
#[derive(Clone, Debug)]
struct Figure {
    title: String,
    x_label: String,
    y_label: String,
    /// y values are log₁₀ of the quantity; tick labels show powers of ten.
    log_y: bool,
    /// Every panel gets its own axis ranges (else all panels share them).
    own_axes: bool,
    panels: Vec<Panel>,
    legend: Vec<LegendEntry>,
}

/// How runs group into panels and lines.
struct Grouping {
    panel_key: Option<String>,
    /// Values of the panel key, in sweep order (one empty string when there is no panel key).
    panels: Vec<String>,
    /// Lines: (label, colour index, dash index, run ids) in sweep order.
    lines: Vec<Line>,
}

struct Line {
    label: String,
    color: usize,
    dash: usize,
    /// Panel value → runs of this line in that panel.
    runs: BTreeMap<String, Vec<usize>>,
    /// Number of seeds (runs per panel).
    seeds: usize,
}

/// Column index of `key` among the swept columns.
fn col(table: &RunsTable, key: &str) -> Option<usize> {
    table.swept_keys.iter().position(|k| k == key)
}

/// Distinct values of swept column `i`, in order of first appearance (which is sweep order).
fn values_in_order(table: &RunsTable, i: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in &table.rows {
        if !out.contains(&r.swept[i]) {
            out.push(r.swept[i].clone());
        }
    }
    out
}

fn grouping(table: &RunsTable, manifest: &Manifest) -> Grouping {
    let present = |k: &Option<String>| k.clone().filter(|k| col(table, k).is_some());
    let panel_key = present(&manifest.plot.panel);
    let color_key = present(&manifest.plot.color);
    let panels = match panel_key.as_deref().and_then(|k| col(table, k)) {
        Some(i) => values_in_order(table, i),
        None => vec![String::new()],
    };
    let color_values = color_key
        .as_deref()
        .and_then(|k| col(table, k))
        .map(|i| values_in_order(table, i));
    // Every swept key other than the seed and the panel key identifies a line.
    let line_keys: Vec<usize> = (0..table.swept_keys.len())
        .filter(|&i| table.swept_keys[i] != "train.seed" && Some(&table.swept_keys[i]) != panel_key.as_ref())
        .collect();
    let style_keys: Vec<usize> = line_keys
        .iter()
        .copied()
        .filter(|&i| Some(&table.swept_keys[i]) != color_key.as_ref())
        .collect();
    let mut styles: Vec<Vec<String>> = Vec::new();
    let mut lines: Vec<Line> = Vec::new();
    let mut identity: Vec<Vec<String>> = Vec::new();
    for (ri, row) in table.rows.iter().enumerate() {
        let id: Vec<String> = line_keys.iter().map(|&i| row.swept[i].clone()).collect();
        let style: Vec<String> = style_keys.iter().map(|&i| row.swept[i].clone()).collect();
        let dash = match styles.iter().position(|s| *s == style) {
            Some(d) => d,
            None => {
                styles.push(style);
                styles.len() - 1
            }
        };
        let panel = panel_key
            .as_deref()
            .and_then(|k| col(table, k))
            .map(|i| row.swept[i].clone())
            .unwrap_or_default();
        let li = match identity.iter().position(|x| *x == id) {
            Some(li) => li,
            None => {
                let color = match (&color_values, color_key.as_deref().and_then(|k| col(table, k))) {
                    (Some(vals), Some(ci)) => vals.iter().position(|v| *v == row.swept[ci]).unwrap_or(0),
                    _ => lines.len(),
                };
                let label = line_keys
                    .iter()
                    .map(|&i| format!("{}={}", short_key(&table.swept_keys[i]), row.swept[i]))
                    .collect::<Vec<_>>()
                    .join(", ");
                identity.push(id);
                lines.push(Line {
                    label,
                    color,
                    dash,
                    runs: BTreeMap::new(),
                    seeds: 0,
                });
                lines.len() - 1
            }
        };
        lines[li].runs.entry(panel).or_default().push(ri);
    }
    for line in &mut lines {
        line.seeds = line.runs.values().map(Vec::len).max().unwrap_or(0);
    }
    Grouping {
        panel_key,
        panels,
        lines,
    }
}

/// `model.activation` → `activation`: the section adds nothing in a legend.
fn short_key(key: &str) -> &str {
    key.rsplit_once('.').map_or(key, |(_, k)| k)
}

fn legend(g: &Grouping) -> Vec<LegendEntry> {
    g.lines
        .iter()
        .map(|l| LegendEntry {
            label: format!(
                "{} ({} seed{})",
                if l.label.is_empty() { "all runs" } else { &l.label },
                l.seeds,
                if l.seeds == 1 { "" } else { "s" }
            ),
            color: PALETTE[l.color % PALETTE.len()],
            dash: l.dash % DASHES.len(),
            cross: false,
        })
        .collect()
}

fn panel_title(g: &Grouping, value: &str) -> String {
    match &g.panel_key {
        Some(k) => format!("{k} = {value}"),
        None => String::new(),
    }
}

/// Mean, min and max over runs of y at each x, from per-run (x, y) lists.
fn aggregate(per_run: &[Vec<(f64, f64)>]) -> Vec<(f64, f64, f64, f64)> {
    let mut at: BTreeMap<u64, (f64, Vec<f64>)> = BTreeMap::new();
    for run in per_run {
        for &(x, y) in run {
            if y.is_finite() {
                at.entry(x.to_bits()).or_insert_with(|| (x, Vec::new())).1.push(y);
            }
        }
    }
    let mut out: Vec<(f64, f64, f64, f64)> = at
        .into_values()
        .map(|(x, ys)| {
            let mean = ys.iter().sum::<f64>() / ys.len() as f64;
            let lo = ys.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ys.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (x, mean, lo, hi)
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// Trailing moving average of `y` over `window` points.
fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
    let mut sum = 0.0;
    let mut out = Vec::with_capacity(points.len());
    for (i, &(x, y)) in points.iter().enumerate() {
        sum += y;
        if i >= window {
            sum -= points[i - window].1;
        }
        out.push((x, sum / (i + 1).min(window) as f64));
    }
    out
}

/// Everything the charts are drawn from.
struct Data {
    manifest: Manifest,
    table: RunsTable,
    curves: BTreeMap<String, Vec<CurveRow>>,
    decay: BTreeMap<String, Vec<DecayRow>>,
}

impl Data {
    fn load(dir: &Path) -> Result<Self, Error> {
        let manifest = output::read_manifest(dir)?;
        let table = output::read_runs(dir)?;
        // The files must describe the same runs: a chart drawn from mismatched files would be
        // silently wrong.
        let known: std::collections::HashSet<&str> = manifest.runs.iter().map(|r| r.run_id.as_str()).collect();
        if let Some(i) = table.rows.iter().position(|r| !known.contains(r.run_id.as_str())) {
            return Err(Error::Data {
                path: dir.join(output::RUNS_CSV),
                line: Some(i as u64 + 2),
                message: format!(
                    "run {} is not in manifest.json: the files come from different sweeps",
                    table.rows[i].run_id
                ),
            });
        }
        let in_table: std::collections::HashSet<&str> = table.rows.iter().map(|r| r.run_id.as_str()).collect();
        let unknown = |file: &str, i: usize, id: &str| Error::Data {
            path: dir.join(file),
            line: Some(i as u64 + 2),
            message: format!("run {id} is not in runs.csv: the files come from different sweeps"),
        };
        let mut curves: BTreeMap<String, Vec<CurveRow>> = BTreeMap::new();
        for (i, row) in output::read_curves(dir)?.into_iter().enumerate() {
            if !in_table.contains(row.run_id.as_str()) {
                return Err(unknown(output::CURVES_CSV, i, &row.run_id));
            }
            curves.entry(row.run_id.clone()).or_default().push(row);
        }
        let mut decay: BTreeMap<String, Vec<DecayRow>> = BTreeMap::new();
        for (i, row) in output::read_decay(dir)?.into_iter().enumerate() {
            if !in_table.contains(row.run_id.as_str()) {
                return Err(unknown(output::DECAY_CSV, i, &row.run_id));
            }
            decay.entry(row.run_id.clone()).or_default().push(row);
        }
        Ok(Self {
            manifest,
            table,
            curves,
            decay,
        })
    }

    fn row(&self, i: usize) -> &RunRow {
        &self.table.rows[i]
    }

    /// A run's value of `key`: its swept value, or the spec's setting.
    fn value(&self, i: usize, key: &str) -> Option<String> {
        match col(&self.table, key) {
            Some(c) => Some(self.row(i).swept[c].clone()),
            None => self.manifest.settings.get(key).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        }
    }

    /// The distinct baselines of the given runs, as horizontal lines.
    fn baselines(&self, runs: impl Iterator<Item = usize>) -> Vec<HLine> {
        let mut seen: Vec<f64> = Vec::new();
        for r in runs.map(|i| self.row(i)) {
            if !seen.iter().any(|b| (b - r.baseline_loss).abs() < 1e-12) {
                seen.push(r.baseline_loss);
            }
        }
        seen.into_iter()
            .map(|b| HLine {
                y: b.log10(),
                label: format!("task baseline, loss {b:.4}"),
                color: BLACK,
            })
            .collect()
    }
}

/// Draws every chart into `<dir>/charts/` as PNG and SVG; returns the files written.
pub fn draw_all(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let data = Data::load(dir)?;
    if data.table.rows.is_empty() {
        return Err(Error::Data {
            path: dir.join(output::RUNS_CSV),
            line: None,
            message: "no runs to draw".into(),
        });
    }
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).map_err(|_| Error::Plot {
        path: dir.to_path_buf(),
        message: "the bundled font is invalid".into(),
    })?;
    let g = grouping(&data.table, &data.manifest);
    let charts = dir.join("charts");
    output::create_dir(&charts)?;
    let mut written = Vec::new();
    for (name, fig) in [
        ("grad_decay", decay_figure(&data, &g, false)),
        ("grad_decay_init", decay_figure(&data, &g, true)),
        ("loss", loss_figure(&data, &g)),
        ("final_loss", final_loss_figure(&data, &g)),
        ("grad_norm", grad_norm_figure(&data, &g)),
    ] {
        written.extend(save(&fig, &charts, name)?);
    }
    Ok(written)
}

fn decay_figure(data: &Data, g: &Grouping, initial: bool) -> Figure {
    let mut panels = Vec::new();
    for pv in &g.panels {
        let mut panel = Panel {
            title: panel_title(g, pv),
            ..Panel::default()
        };
        for line in &g.lines {
            let Some(runs) = line.runs.get(pv) else { continue };
            let per_run: Vec<Vec<(f64, f64)>> = runs
                .iter()
                .filter_map(|&i| data.decay.get(&data.row(i).run_id))
                .map(|rows| {
                    // The initial probe, or the last one the run reached.
                    let step = if initial {
                        0
                    } else {
                        rows.iter().map(|r| r.probe_step).max().unwrap_or(0)
                    };
                    rows.iter()
                        .filter(|r| r.probe_step == step && r.state == "h")
                        .filter_map(|r| r.log10_grad_norm.map(|y| (r.distance as f64, y)))
                        .collect()
                })
                .collect();
            panel.series.push(Series {
                color: line.color,
                dash: line.dash,
                points: aggregate(&per_run),
            });
        }
        panels.push(panel);
    }
    let when = if initial {
        "at initialisation (step 0)"
    } else {
        "after training (last probe)"
    };
    Figure {
        title: format!(
            "{}: gradient reaching back d steps {when}; geometric mean over probe sequences, band = seed range",
            data.manifest.name
        ),
        x_label: "distance d (steps back from the last step)".into(),
        y_label: "‖∂E_T/∂h_(T−d)‖ (log scale)".into(),
        log_y: true,
        own_axes: true,
        panels,
        legend: legend(g),
    }
}

/// One line of a per-step chart: log₁₀ of a positive `curves.csv` column, smoothed over
/// `window` steps in each run, then aggregated over the runs (seeds).
fn curve_series(
    data: &Data,
    runs: &[usize],
    window: usize,
    field: impl Fn(&CurveRow) -> Option<f64>,
) -> Vec<(f64, f64, f64, f64)> {
    let per_run: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .filter_map(|&i| data.curves.get(&data.row(i).run_id))
        .map(|rows| {
            let pts: Vec<(f64, f64)> = rows
                .iter()
                .filter_map(|r| field(r).filter(|v| *v > 0.0).map(|v| (r.step as f64, v.log10())))
                .collect();
            smooth(&pts, window)
        })
        .collect();
    aggregate(&per_run)
}

/// Moving-average window for training-loss curves.
fn loss_window(steps: u64) -> usize {
    (steps / 50).clamp(1, 50) as usize
}

fn loss_figure(data: &Data, g: &Grouping) -> Figure {
    let steps = data.table.rows.iter().map(|r| r.steps).max().unwrap_or(1);
    let window = loss_window(steps);
    let panels = g
        .panels
        .iter()
        .map(|pv| {
            let in_panel = g.lines.iter().filter_map(|l| l.runs.get(pv)).flatten().copied();
            let mut panel = Panel {
                title: panel_title(g, pv),
                hlines: data.baselines(in_panel),
                ..Panel::default()
            };
            for line in &g.lines {
                let Some(runs) = line.runs.get(pv) else { continue };
                panel.series.push(Series {
                    color: line.color,
                    dash: line.dash,
                    points: curve_series(data, runs, window, |r| r.train_loss),
                });
            }
            panel
        })
        .collect();
    let smoothing = if window > 1 {
        format!(", moving average of log over {window} steps")
    } else {
        String::new()
    };
    let mut legend = legend(g);
    legend.push(LegendEntry {
        label: "task baseline (no memory)".into(),
        color: BLACK,
        dash: 1,
        cross: false,
    });
    Figure {
        title: format!(
            "{}: training loss{smoothing}; line = geometric mean, band = seed range",
            data.manifest.name
        ),
        x_label: "step".into(),
        y_label: "training loss (log scale)".into(),
        log_y: true,
        own_axes: false,
        panels,
        legend,
    }
}

fn final_loss_figure(data: &Data, g: &Grouping) -> Figure {
    const X_KEY: &str = "task.seq_len";
    // Panels by the panel key unless the panel key is the x axis itself.
    let split = g.panel_key.as_deref().is_some_and(|k| k != X_KEY);
    let panel_values: Vec<String> = if split { g.panels.clone() } else { vec![String::new()] };
    let mut panels = Vec::new();
    let mut any_diverged = false;
    for pv in &panel_values {
        let mut panel = Panel {
            title: if split { panel_title(g, pv) } else { String::new() },
            ..Panel::default()
        };
        // The baseline: one line, or a curve when it depends on the sequence length (copy).
        let mut base_at: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for line in &g.lines {
            let runs: Vec<usize> = if split {
                line.runs.get(pv).cloned().unwrap_or_default()
            } else {
                line.runs.values().flatten().copied().collect()
            };
            for i in runs {
                if let Some(x) = data.value(i, X_KEY).and_then(|v| v.parse::<f64>().ok()) {
                    base_at.insert(x.to_bits(), (x, data.row(i).baseline_loss.log10()));
                }
            }
        }
        let mut curve: Vec<(f64, f64)> = base_at.into_values().collect();
        curve.sort_by(|a, b| a.0.total_cmp(&b.0));
        if curve.windows(2).all(|w| (w[0].1 - w[1].1).abs() < 1e-12) {
            let all = g.lines.iter().flat_map(|l| l.runs.values().flatten().copied());
            panel.hlines = data.baselines(all);
        } else {
            panel.ref_curves.push(curve);
        }
        for line in &g.lines {
            let runs: Vec<usize> = if split {
                line.runs.get(pv).cloned().unwrap_or_default()
            } else {
                line.runs.values().flatten().copied().collect()
            };
            let mut per_seed: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
            for i in runs {
                let x = data
                    .value(i, X_KEY)
                    .and_then(|v| v.parse::<f64>().ok())
                    .unwrap_or(f64::NAN);
                let row = data.row(i);
                match (row.status, row.final_loss) {
                    (Status::Ok, Some(l)) => {
                        let seed = data.value(i, "train.seed").unwrap_or_default();
                        per_seed.entry(seed).or_default().push((x, l.log10()));
                    }
                    (Status::Diverged, _) => {
                        panel.diverged.push((x, line.color));
                        any_diverged = true;
                    }
                    _ => {}
                }
            }
            let per_run: Vec<Vec<(f64, f64)>> = per_seed.into_values().collect();
            panel.series.push(Series {
                color: line.color,
                dash: line.dash,
                points: aggregate(&per_run),
            });
        }
        panels.push(panel);
    }
    let mut legend = legend(g);
    legend.push(LegendEntry {
        label: "task baseline (no memory)".into(),
        color: BLACK,
        dash: 1,
        cross: false,
    });
    if any_diverged {
        legend.push(LegendEntry {
            label: "a run that diverged (no final loss)".into(),
            color: BLACK,
            dash: 0,
            cross: true,
        });
    }
    Figure {
        title: format!(
            "{}: evaluation loss after training, by sequence length; line = geometric mean, band = seed range",
            data.manifest.name
        ),
        x_label: "sequence length T".into(),
        y_label: "final evaluation loss (log scale)".into(),
        log_y: true,
        own_axes: false,
        panels,
        legend,
    }
}

fn grad_norm_figure(data: &Data, g: &Grouping) -> Figure {
    let steps = data.table.rows.iter().map(|r| r.steps).max().unwrap_or(1);
    let window = loss_window(steps);
    let mut any_clip = false;
    let panels = g
        .panels
        .iter()
        .map(|pv| {
            let mut panel = Panel {
                title: panel_title(g, pv),
                ..Panel::default()
            };
            for line in &g.lines {
                let Some(runs) = line.runs.get(pv) else { continue };
                panel.series.push(Series {
                    color: line.color,
                    dash: line.dash,
                    points: curve_series(data, runs, window, |r| r.grad_norm),
                });
                for &i in runs {
                    if let Some(theta) = data.value(i, "train.clip").and_then(|v| v.parse::<f64>().ok())
                        && !panel.hlines.iter().any(|h| (h.y - theta.log10()).abs() < 1e-12)
                    {
                        any_clip = true;
                        panel.hlines.push(HLine {
                            y: theta.log10(),
                            label: format!("clip threshold θ = {theta}"),
                            color: RED,
                        });
                    }
                }
            }
            panel
        })
        .collect();
    let mut legend = legend(g);
    if any_clip {
        legend.push(LegendEntry {
            label: "norm-clipping threshold".into(),
            color: RED,
            dash: 1,
            cross: false,
        });
    }
    let smoothing = if window > 1 {
        format!(", moving average of log over {window} steps")
    } else {
        String::new()
    };
    Figure {
        title: format!(
            "{}: gradient norm before clipping{smoothing}; line = geometric mean, band = seed range",
            data.manifest.name
        ),
        x_label: "step".into(),
        y_label: "‖g‖₂ before clipping (log scale)".into(),
        log_y: true,
        own_axes: false,
        panels,
        legend,
    }
}

/// Writes `fig` as `<name>.png` and `<name>.svg` in `dir`, each atomically.
fn save(fig: &Figure, dir: &Path, name: &str) -> Result<Vec<PathBuf>, Error> {
    let cols = fig.panels.len().clamp(1, 3);
    let rows = fig.panels.len().div_ceil(cols).max(1);
    let size = ((360 + 480 * cols as u32).max(1300), 90 + 380 * rows as u32);

    let png = dir.join(format!("{name}.png"));
    let tmp = dir.join(format!(".{name}.tmp.png"));
    let drawn = {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        draw(fig, &root, cols, rows)
            .map_err(|message| Error::Plot {
                path: png.clone(),
                message,
            })
            .and_then(|_| {
                root.present().map_err(|e| Error::Plot {
                    path: png.clone(),
                    message: e.to_string(),
                })
            })
    };
    if let Err(e) = drawn {
        let _ = std::fs::remove_file(&tmp); // never leave a half-written image behind
        return Err(e);
    }
    std::fs::rename(&tmp, &png).map_err(|e| Error::io(&png, e))?;

    let svg = dir.join(format!("{name}.svg"));
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
        draw(fig, &root, cols, rows).map_err(|message| Error::Plot {
            path: svg.clone(),
            message,
        })?;
        root.present().map_err(|e| Error::Plot {
            path: svg.clone(),
            message: e.to_string(),
        })?;
    }
    output::write_atomic(&svg, text.as_bytes())?;
    Ok(vec![png, svg])
}

/// Axis range covering `values` with a small margin; a fixed span around a single value.
fn range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    padded(lo, hi)
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-9 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = (hi - lo) * 0.05;
    (lo - pad, hi + pad)
}

/// A robust y range: from the 2nd percentile of the band's lower edges to the 98th of its
/// upper edges, always including the reference lines. A single exploding run cannot flatten
/// every other line; values outside are drawn at the edge.
fn robust_y(panels: &[Panel]) -> (f64, f64) {
    let mut lows: Vec<f64> = panels
        .iter()
        .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|q| q.2)))
        .filter(|v| v.is_finite())
        .collect();
    let mut highs: Vec<f64> = panels
        .iter()
        .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|q| q.3)))
        .filter(|v| v.is_finite())
        .collect();
    if lows.is_empty() {
        return range(panels.iter().flat_map(|p| p.hlines.iter().map(|h| h.y)));
    }
    lows.sort_by(f64::total_cmp);
    highs.sort_by(f64::total_cmp);
    let q = |v: &[f64], f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    let refs = panels.iter().flat_map(|p| {
        p.hlines
            .iter()
            .map(|h| h.y)
            .chain(p.ref_curves.iter().flatten().map(|q| q.1))
    });
    let lo = refs.clone().fold(q(&lows, 0.02), f64::min);
    let hi = refs.fold(q(&highs, 0.98), f64::max);
    padded(lo, hi)
}

/// Tick label for a log₁₀ value: the power of ten it stands for, at whole powers only.
fn pow10_label(v: f64) -> String {
    let r = v.round();
    if (v - r).abs() > 1e-6 {
        String::new()
    } else if (-3.0..=3.0).contains(&r) {
        format!("{}", 10f64.powi(r as i32))
    } else {
        format!("1e{r}")
    }
}

fn draw<DB: DrawingBackend>(
    fig: &Figure,
    root: &DrawingArea<DB, Shift>,
    cols: usize,
    rows: usize,
) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&fig.title, (FAMILY, 22)).map_err(err)?;
    let (plots, legend_area) = root.split_horizontally(root.dim_in_pixel().0 - 350);

    // Shared axes so panels compare at a glance, unless the figure asks for its own per panel.
    let axes = |panels: &[Panel]| {
        let xs = panels
            .iter()
            .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(|q| q.0)));
        let x = range(xs.chain(panels.iter().flat_map(|p| p.diverged.iter().map(|d| d.0))));
        (x, robust_y(panels))
    };
    let shared = axes(&fig.panels);

    let areas = plots.split_evenly((rows, cols));
    for (panel, area) in fig.panels.iter().zip(&areas) {
        let ((x0, x1), (y0, y1)) = if fig.own_axes {
            axes(std::slice::from_ref(panel))
        } else {
            shared
        };
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FAMILY, 17))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        let log_y = fig.log_y;
        // Over less than two decades whole powers of ten are too few ticks: label every tick.
        let narrow = y1 - y0 < 2.0;
        let y_fmt = move |v: &f64| match (log_y, narrow) {
            (true, false) => pow10_label(*v),
            (true, true) => format!("{:.3}", 10f64.powf(*v))
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_string(),
            _ => format!("{v}"),
        };
        // Enough ticks that whole powers of ten fall on them.
        let y_ticks = if log_y {
            (((y1 - y0) * 2.0).ceil() as usize + 1).clamp(4, 14)
        } else {
            8
        };
        let clamp_y = |y: f64| y.clamp(y0, y1);
        let x_fmt = |v: &f64| {
            if v.fract() == 0.0 {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        };
        chart
            .configure_mesh()
            .x_desc(&fig.x_label)
            .y_desc(if areas.len() == 1 || std::ptr::eq(area, &areas[0]) {
                fig.y_label.as_str()
            } else {
                ""
            })
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 14))
            .y_label_formatter(&y_fmt)
            .y_labels(y_ticks)
            .x_label_formatter(&x_fmt)
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(err)?;

        for s in &panel.series {
            let color = PALETTE[s.color % PALETTE.len()];
            if s.points.iter().any(|p| p.3 > p.2) {
                let band: Vec<(f64, f64)> = s
                    .points
                    .iter()
                    .map(|p| (p.0, clamp_y(p.3)))
                    .chain(s.points.iter().rev().map(|p| (p.0, clamp_y(p.2))))
                    .collect();
                chart
                    .draw_series(std::iter::once(Polygon::new(band, color.mix(0.15).filled())))
                    .map_err(err)?;
            }
            let line: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, clamp_y(p.1))).collect();
            let style = color.stroke_width(2);
            match DASHES[s.dash % DASHES.len()] {
                (0, _) => chart
                    .draw_series(LineSeries::new(line.clone(), style))
                    .map(|_| ())
                    .map_err(err)?,
                (dash, gap) => chart
                    .draw_series(DashedLineSeries::new(line.clone(), dash, gap, style))
                    .map(|_| ())
                    .map_err(err)?,
            }
            if line.len() <= 12 {
                chart
                    .draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(err)?;
            }
        }
        for curve in &panel.ref_curves {
            chart
                .draw_series(DashedLineSeries::new(curve.clone(), 8, 6, BLACK.stroke_width(2)))
                .map_err(err)?;
        }
        for h in &panel.hlines {
            let pts = vec![(x0, h.y), (x1, h.y)];
            chart
                .draw_series(DashedLineSeries::new(pts, 8, 6, h.color.stroke_width(2)))
                .map_err(err)?;
            // Its label, just above the line at the left edge.
            let style = TextStyle::from((FAMILY, 12).into_font()).color(&h.color);
            let at = chart.backend_coord(&(x0, h.y));
            area.draw(&Text::new(
                h.label.clone(),
                (at.0 - area.get_base_pixel().0 + 6, at.1 - area.get_base_pixel().1 - 16),
                style,
            ))
            .map_err(err)?;
        }
        for &(x, c) in &panel.diverged {
            let y = y1 - (y1 - y0) * 0.03;
            chart
                .draw_series(std::iter::once(Cross::new(
                    (x, y),
                    6,
                    PALETTE[c % PALETTE.len()].stroke_width(2),
                )))
                .map_err(err)?;
        }
    }

    // The legend, drawn by hand in its own strip so it never covers data.
    let legend = legend_area.margin(50, 10, 10, 10);
    let style = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
    for (i, e) in fig.legend.iter().enumerate() {
        let y = 10 + 24 * i as i32;
        if e.cross {
            legend
                .draw(&Cross::new((18, y + 7), 6, e.color.stroke_width(2)))
                .map_err(err)?;
        } else {
            let pts = vec![(0, y + 7), (36, y + 7)];
            match DASHES[e.dash % DASHES.len()] {
                (0, _) => legend
                    .draw(&PathElement::new(pts, e.color.stroke_width(3)))
                    .map_err(err)?,
                (dash, gap) => legend
                    .draw(&DashedPathElement::new(pts, dash, gap, e.color.stroke_width(3)))
                    .map_err(err)?,
            }
        }
        legend
            .draw(&Text::new(e.label.clone(), (44, y), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregate_takes_mean_min_max_per_x() {
        let a = vec![(0.0, 1.0), (1.0, 2.0)];
        let b = vec![(0.0, 3.0), (1.0, f64::NAN)];
        assert_eq!(aggregate(&[a, b]), vec![(0.0, 2.0, 1.0, 3.0), (1.0, 2.0, 2.0, 2.0)]);
    }

    #[test]
    fn smoothing_is_a_trailing_mean() {
        let pts = [(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)];
        assert_eq!(smooth(&pts, 2), vec![(0.0, 1.0), (1.0, 2.0), (2.0, 4.0)]);
    }

    #[test]
    fn tick_labels_are_powers_of_ten() {
        assert_eq!(pow10_label(-2.0), "0.01");
        assert_eq!(pow10_label(-40.0), "1e-40");
        assert_eq!(pow10_label(0.5), "");
    }
}
