//! Charts, drawn from the results folder's CSV files and manifest alone (so `runner plot DIR`
//! redraws exactly what the sweep drew, or redraws with other `plot.*` choices).
//!
//! Choosing what to draw is apart from drawing it: [`choose`] turns the swept columns and the
//! `plot.x`, `plot.color` and `plot.panel` settings into a [`Layout`] (the summary charts' x
//! axis, which runs form lines, colours, dash patterns, panels); `steps` (per-step charts) and
//! `summary` (one number per run against `plot.x`) reduce the tables to figures, plain data;
//! `depth` the gradient at every layer of a stack;
//! `heatmap` the final-loss heatmap; `draw` draws a chart once per backend (PNG, SVG, and PDF
//! through `pdf`, a backend of our own).
//!
//! Grouping: runs that differ only in `train.seed` form one line (mean with a min–max band);
//! values spanning decades are drawn as log₁₀ on a linear axis labelled with the quantity,
//! which also shows gradient norms below the smallest double.

// Chart geometry (log axes, tick positions) may use the C library: a chart's pixels are not a
// reported number, and every value drawn comes from the CSV files.
#![allow(clippy::disallowed_methods)]

pub mod choose;
mod depth;
mod draw;
mod figure;
mod heatmap;
mod pdf;
mod spectrum;
mod steps;
mod summary;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use plotters::style::{BLACK, FontStyle};

pub use choose::{AxisKind, Columns, Grouping, Layout, Line, PlotSettings, XAxis, layout};
use draw::Chart;
pub use draw::Format;
use figure::HLine;

use crate::Error;
use crate::output::{self, Manifest, RunsTable};
use crate::record::{CurveRow, DecayRow, RunRow, SpectrumRow};

/// The font every chart uses, shipped in the repository (DejaVu Sans; licence beside it).
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

/// Column index of `key` among the swept columns.
fn col(table: &RunsTable, key: &str) -> Option<usize> {
    table.swept_keys.iter().position(|k| k == key)
}

/// Everything the charts are drawn from.
pub(crate) struct Data {
    /// The manifest.
    pub(crate) manifest: Manifest,
    /// `runs.csv`.
    pub(crate) table: RunsTable,
    /// `curves.csv` rows by run.
    pub(crate) curves: BTreeMap<String, Vec<CurveRow>>,
    /// `grad_decay.csv` rows by run.
    pub(crate) decay: BTreeMap<String, Vec<DecayRow>>,
    /// `spectrum.csv` rows by run (none when no run asked for a spectrum).
    pub(crate) spectrum: BTreeMap<String, Vec<SpectrumRow>>,
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
        let mut spectrum: BTreeMap<String, Vec<SpectrumRow>> = BTreeMap::new();
        for (i, row) in output::read_spectrum(dir)?.into_iter().enumerate() {
            if !in_table.contains(row.run_id.as_str()) {
                return Err(unknown(output::SPECTRUM_CSV, i, &row.run_id));
            }
            spectrum.entry(row.run_id.clone()).or_default().push(row);
        }
        Ok(Self {
            manifest,
            table,
            curves,
            decay,
            spectrum,
        })
    }

    pub(crate) fn row(&self, i: usize) -> &RunRow {
        &self.table.rows[i]
    }

    /// A run's value of `key`: its swept value, or the spec's setting.
    pub(crate) fn value(&self, i: usize, key: &str) -> Option<String> {
        match col(&self.table, key) {
            Some(c) => Some(self.row(i).swept[c].clone()),
            None => self.manifest.settings.get(key).map(|v| match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
        }
    }

    /// The distinct baselines of the given runs, as horizontal lines.
    pub(crate) fn baselines(&self, runs: impl Iterator<Item = usize>) -> Vec<HLine> {
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

/// The chart settings a results folder was made with (from its manifest; `auto` for a
/// setting the manifest predates), then `overrides` (`plot.x=KEY`, …) applied, checked against
/// the swept keys of its `runs.csv`; and the layout they give.
pub fn resolve(manifest: &Manifest, table: &RunsTable, overrides: &[String]) -> Result<Layout, Error> {
    let mut s = PlotSettings::default();
    for key in PlotSettings::KEYS {
        match manifest.settings.get(key) {
            Some(serde_json::Value::String(v)) => *s.get_mut(key).expect("a plot key") = v.clone(),
            Some(serde_json::Value::Array(items)) if key == "plot.heatmap" => {
                s.heatmap = items
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(",")
            }
            _ => (),
        }
    }
    for o in overrides {
        let (key, value) = o.split_once('=').ok_or_else(|| {
            Error::Usage(format!(
                "--set {o}: expected KEY=VALUE, e.g. --set plot.x=train.lr; nothing was redrawn"
            ))
        })?;
        let value = if key.trim() == "plot.heatmap" {
            PlotSettings::heatmap_setting(value)
        } else {
            value.trim().trim_matches('"').to_string()
        };
        match s.get_mut(key.trim()) {
            Some(slot) => *slot = value,
            None => {
                return Err(Error::Usage(format!(
                    "--set {o}: `runner plot` takes only plot.x, plot.color, plot.panel and plot.heatmap (any other key changes results and needs a new run); nothing was redrawn"
                )));
            }
        }
    }
    let columns = Columns::from(table);
    s.check(&columns)
        .map_err(|m| Error::Usage(format!("{m}; nothing was redrawn")))?;
    Ok(layout(&columns, &s))
}

/// The file name of the heatmap chart (without extension).
pub const HEATMAP: &str = "final_loss_heatmap";
/// The file name of the gradient across depth and time at initialisation (stacks only).
pub const DEPTH_INIT: &str = "grad_depth_init";
/// The same after training.
pub const DEPTH: &str = "grad_depth";

fn charts_dir(dir: &Path) -> PathBuf {
    dir.join("charts")
}

/// The formats `output.formats` of a folder's manifest asks for (every one for a manifest
/// that predates the key).
pub fn formats(manifest: &Manifest) -> Vec<Format> {
    match manifest.settings.get("output.formats") {
        Some(serde_json::Value::Array(items)) => Format::ALL
            .into_iter()
            .filter(|f| items.iter().any(|v| v.as_str() == Some(f.ext())))
            .collect(),
        _ => Format::ALL.to_vec(),
    }
}

/// Draws every chart into `<dir>/charts/` in the formats of `output.formats` with the folder's own chart settings
/// and `overrides` (`plot.x=KEY`, `plot.color=KEY`, `plot.panel=KEY`, `plot.heatmap=[KEY, KEY]`);
/// returns the files written. Bad overrides are refused before anything is drawn.
pub fn draw_all(dir: &Path, overrides: &[String]) -> Result<Vec<PathBuf>, Error> {
    let data = Data::load(dir)?;
    if data.table.rows.is_empty() {
        return Err(Error::Data {
            path: dir.join(output::RUNS_CSV),
            line: None,
            message: "no runs to draw".into(),
        });
    }
    let layout = resolve(&data.manifest, &data.table, overrides)?;
    plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).map_err(|_| Error::Plot {
        path: dir.to_path_buf(),
        message: "the bundled font is invalid".into(),
    })?;
    output::create_dir(&charts_dir(dir))?;
    let formats = formats(&data.manifest);
    let g = &layout.steps;
    let mut figures = vec![
        ("grad_decay", steps::decay_figure(&data, g, false)),
        ("grad_decay_init", steps::decay_figure(&data, g, true)),
        ("loss", steps::loss_figure(&data, g)),
        ("grad_norm", steps::grad_norm_figure(&data, g)),
    ];
    for (name, initial) in [(DEPTH_INIT, true), (DEPTH, false)] {
        match depth::figure(&data, g, initial) {
            Some(fig) => figures.push((name, fig)),
            // No stack: nothing to draw, and nothing drawn before stays.
            None => draw::remove(&charts_dir(dir), name)?,
        }
    }
    figures.extend(summary::figures(&data, &layout));
    figures.extend(spectrum::figures(&data, &layout));
    for name in summary::DEPTH_FACTOR {
        if !figures.iter().any(|(n, _)| *n == name) {
            draw::remove(&charts_dir(dir), name)?;
        }
    }
    let mut charts: Vec<(&str, Chart)> = figures.into_iter().map(|(n, f)| (n, Chart::Lines(f))).collect();
    match heatmap::figure(&data, &layout) {
        Some(hm) => charts.push((HEATMAP, Chart::Heat(hm))),
        // No heatmap now: one drawn before with other settings goes.
        None => {
            draw::remove(&charts_dir(dir), HEATMAP)?;
        }
    }
    let mut written = Vec::new();
    for (name, chart) in &charts {
        written.extend(draw::save(chart, &charts_dir(dir), name, &formats)?);
    }
    Ok(written)
}
