//! What to draw: from the swept columns of `runs.csv` and the `plot.*` settings, the key on
//! the summary charts' x axis and its kind, which runs form a line, which key colours the
//! lines (and whether its palette is ordered), which keys pick dash patterns, and which split
//! the panels. Nothing here draws; every choice is plain data that the tests assert on.

use std::collections::BTreeSet;

use crate::output::RunsTable;

/// Most lines one panel holds before it is split by another swept key: beyond about eight,
/// colours and dash patterns are no longer told apart at a glance.
pub const MAX_LINES: usize = 8;

/// The seed never forms a line: runs that differ only in it are one line with a band.
const SEED: &str = "train.seed";

/// The three chart settings, each `"auto"`, `"none"` or a swept key (`variant` included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlotSettings {
    /// `plot.x`: the key on the x axis of every summary chart.
    pub x: String,
    /// `plot.color`: the key whose values colour the lines.
    pub color: String,
    /// `plot.panel`: the key with one panel per value.
    pub panel: String,
    /// `plot.heatmap`: `auto`, `none`, or the heatmap's two keys joined by a comma (x first).
    pub heatmap: String,
}

impl Default for PlotSettings {
    fn default() -> Self {
        Self {
            x: "auto".into(),
            color: "auto".into(),
            panel: "auto".into(),
            heatmap: "auto".into(),
        }
    }
}

impl PlotSettings {
    /// The names of the settings, as written in a spec and after `--set`.
    pub const KEYS: [&'static str; 4] = ["plot.x", "plot.color", "plot.panel", "plot.heatmap"];

    /// The value of one setting by its dotted name.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut String> {
        match key {
            "plot.x" => Some(&mut self.x),
            "plot.color" => Some(&mut self.color),
            "plot.panel" => Some(&mut self.panel),
            "plot.heatmap" => Some(&mut self.heatmap),
            _ => None,
        }
    }

    /// Checks every setting names `auto`, `none` or a key that `table` sweeps; the error names
    /// the setting, the value and the keys it could be.
    pub fn check(&self, table: &Columns) -> Result<(), String> {
        for (name, value) in [
            ("plot.x", &self.x),
            ("plot.color", &self.color),
            ("plot.panel", &self.panel),
        ] {
            if value != "auto" && value != "none" && !table.keys.iter().any(|k| k == value) {
                let swept = if table.keys.is_empty() {
                    "this sweep has no swept key".to_string()
                } else {
                    format!("swept here: {}", table.keys.join(", "))
                };
                return Err(format!(
                    "`{name}`: \"{value}\" is not a swept key of these results ({swept}); use \"auto\", \"none\" or one of them"
                ));
            }
        }
        if self.heatmap != "auto" && self.heatmap != "none" {
            let keys: Vec<&str> = self.heatmap.split(',').collect();
            let swept = || {
                table
                    .keys
                    .iter()
                    .filter(|k| *k != SEED)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if keys.len() != 2 || keys[0] == keys[1] {
                return Err(format!(
                    "`plot.heatmap`: \"{}\" is not two different keys; write [KEY, KEY] with two of: {}",
                    self.heatmap,
                    swept()
                ));
            }
            for k in keys {
                if k == SEED || !table.keys.iter().any(|s| s == k) {
                    return Err(format!(
                        "`plot.heatmap`: \"{k}\" is not a swept key of these results other than the seed (swept here: {}); use \"auto\", \"none\" or two of them",
                        swept()
                    ));
                }
            }
        }
        Ok(())
    }

    /// `plot.heatmap`'s value in the form [`PlotSettings::heatmap`] keeps: a spec's list
    /// (`["train.lr", "train.clip"]`, also as `--set` writes it, `[train.lr, train.clip]`)
    /// becomes `train.lr,train.clip`; `auto` and `none` stay.
    pub fn heatmap_setting(text: &str) -> String {
        let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
        inner
            .split(',')
            .map(|k| k.trim().trim_matches('"').trim())
            .filter(|k| !k.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// The swept columns of a sweep's runs: what every choice here is made from, read from
/// `runs.csv` or built from the runs before they start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Columns {
    /// Swept keys (`variant` included), in sweep order.
    pub keys: Vec<String>,
    /// Each run's values of those keys, as `runs.csv` writes them, in sweep order.
    pub rows: Vec<Vec<String>>,
}

impl From<&RunsTable> for Columns {
    fn from(t: &RunsTable) -> Self {
        Self {
            keys: t.swept_keys.clone(),
            rows: t.rows.iter().map(|r| r.swept.clone()).collect(),
        }
    }
}

/// How an axis places a key's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxisKind {
    /// Numbers, evenly spaced.
    Linear,
    /// Positive numbers spanning a decade or more, spaced by their logarithm.
    Log,
    /// Words (or configurations), one slot each in a fixed order.
    Categorical,
}

/// The x axis of the summary charts.
#[derive(Clone, Debug, PartialEq)]
pub struct XAxis {
    /// The swept key, or `None` when every configuration is its own category (`plot.x =
    /// "none"`, or nothing but the seed is swept).
    pub key: Option<String>,
    /// How the values are placed.
    pub kind: AxisKind,
    /// The key's values in axis order: numbers ascending with `none` (no threshold, the
    /// infinite end) last; words in sweep order. Empty when `key` is `None`.
    pub values: Vec<String>,
}

impl XAxis {
    /// Position of a value on the axis (before the chart's own scaling): the number, its
    /// log₁₀ on a log axis, the slot index for a category. `none` sits one step past the
    /// largest number, where a threshold that never acts belongs.
    pub fn position(&self, value: &str) -> Option<f64> {
        match self.kind {
            AxisKind::Categorical => self.values.iter().position(|v| v == value).map(|i| i as f64),
            AxisKind::Linear | AxisKind::Log => {
                let place = |v: f64| if self.kind == AxisKind::Log { v.log10() } else { v };
                if value == "none" {
                    let xs: Vec<f64> = self.numbers().into_iter().map(place).collect();
                    let (lo, hi) = (xs.first()?, xs.last()?);
                    let step = if xs.len() > 1 {
                        (hi - lo) / (xs.len() - 1) as f64
                    } else {
                        1.0
                    };
                    Some(hi + step.max(1e-9))
                } else {
                    value.parse::<f64>().ok().map(place)
                }
            }
        }
    }

    /// The numeric values, ascending (empty for a categorical axis).
    pub fn numbers(&self) -> Vec<f64> {
        self.values.iter().filter_map(|v| v.parse::<f64>().ok()).collect()
    }

    /// Whether the values include `none` on a numeric axis.
    pub fn has_none(&self) -> bool {
        self.kind != AxisKind::Categorical && self.values.iter().any(|v| v == "none")
    }
}

/// One line: the runs that share every line key's value (and so differ only in the seed and
/// the panel keys).
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// `key=value` of each line key (short key names), joined by ", "; empty for a single line.
    pub label: String,
    /// Index into the grouping's colour values (0 when nothing colours the lines).
    pub color: usize,
    /// Index of the dash pattern (one per combination of the dash keys' values).
    pub dash: usize,
    /// For each panel (same order as `Grouping::panels`), the rows of `runs.csv` of this line.
    pub runs: Vec<Vec<usize>>,
    /// Runs per panel and x value: the seeds the line averages over.
    pub seeds: usize,
}

/// Which runs form which line in which panel.
#[derive(Clone, Debug, PartialEq)]
pub struct Grouping {
    /// Keys with one panel per combination of values, the first varying slowest.
    pub panel_keys: Vec<String>,
    /// Each panel's values of the panel keys, in sweep order; one empty panel when there
    /// are no panel keys.
    pub panels: Vec<Vec<String>>,
    /// The key whose values colour the lines.
    pub color_key: Option<String>,
    /// The colour key's values in legend order (numbers ascending, `none` last; words in sweep order).
    pub color_values: Vec<String>,
    /// Whether the colour key is numeric, so the palette is ordered (light to dark).
    pub sequential: bool,
    /// Keys whose combinations pick dash patterns.
    pub dash_keys: Vec<String>,
    /// The lines, in legend order (by colour value, then dash).
    pub lines: Vec<Line>,
}

impl Grouping {
    /// `key = value, …` for a panel's title.
    pub fn panel_title(&self, panel: usize) -> String {
        self.panel_keys
            .iter()
            .zip(&self.panels[panel])
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Lines with runs in the given panel.
    pub fn lines_in(&self, panel: usize) -> impl Iterator<Item = (&Line, &[usize])> {
        self.lines
            .iter()
            .map(move |l| (l, l.runs[panel].as_slice()))
            .filter(|(_, r)| !r.is_empty())
    }

    /// Columns of the panel grid: the values of the last panel key when there are two or more
    /// keys and it has at most four (a table of panels), else up to three.
    pub fn columns(&self) -> usize {
        let n = self.panels.len().max(1);
        if self.panel_keys.len() >= 2 {
            let last: BTreeSet<&String> = self.panels.iter().filter_map(|p| p.last()).collect();
            if last.len() <= 4 {
                return last.len().min(n);
            }
        }
        n.min(3)
    }
}

/// Everything chosen for one results folder.
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    /// The summary charts' x axis.
    pub x: XAxis,
    /// Lines and panels of the summary charts (the x key is not a line key there).
    pub summary: Grouping,
    /// Lines and panels of the per-step charts (loss, gradient norm, gradient decay), whose x
    /// axis is the step or the distance, so every swept key but the seed tells lines apart.
    pub steps: Grouping,
    /// The keys of the `final_loss_heatmap` (x, then y), when one is drawn.
    pub heatmap: Option<(String, String)>,
}

/// Chooses the layout; `settings` must have passed [`PlotSettings::check`].
pub fn layout(table: &Columns, settings: &PlotSettings) -> Layout {
    let x = x_axis(table, &settings.x);
    let summary = grouping(table, settings, x.key.as_deref());
    let steps = grouping(table, settings, None);
    let heatmap = heatmap_keys(table, &settings.heatmap);
    Layout {
        x,
        summary,
        steps,
        heatmap,
    }
}

/// The heatmap's keys: the two named, or with `auto` the first two swept numeric keys other
/// than the seed that take two or more values; `none` (or too few such keys): no heatmap.
fn heatmap_keys(table: &Columns, setting: &str) -> Option<(String, String)> {
    let keys: Vec<String> = match setting {
        "none" => return None,
        "auto" => table
            .keys
            .iter()
            .enumerate()
            .filter(|(i, k)| {
                let values = values_in_order(table, *i);
                *k != SEED && values.len() >= 2 && numeric(&values)
            })
            .map(|(_, k)| k.clone())
            .take(2)
            .collect(),
        pair => pair.split(',').map(String::from).collect(),
    };
    match keys.as_slice() {
        [x, y] => Some((x.clone(), y.clone())),
        _ => None,
    }
}

/// The values of swept key `key` in axis order (numbers ascending, `none` last; words in sweep
/// order).
pub fn axis_values(table: &Columns, key: &str) -> Vec<String> {
    column(table, key).map_or_else(Vec::new, |i| axis_order(values_in_order(table, i)))
}

/// Distinct values of column `i` in order of first appearance (sweep order).
fn values_in_order(table: &Columns, i: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in &table.rows {
        if !out.contains(&r[i]) {
            out.push(r[i].clone());
        }
    }
    out
}

fn column(table: &Columns, key: &str) -> Option<usize> {
    table.keys.iter().position(|k| k == key)
}

/// Whether the values are numbers (with `none` allowed beside at least one number).
fn numeric(values: &[String]) -> bool {
    values.iter().any(|v| v.parse::<f64>().is_ok()) && values.iter().all(|v| v == "none" || v.parse::<f64>().is_ok())
}

/// Numbers ascending, `none` last; anything else keeps its order.
fn axis_order(mut values: Vec<String>) -> Vec<String> {
    if numeric(&values) {
        let key = |v: &String| v.parse::<f64>().unwrap_or(f64::INFINITY);
        values.sort_by(|a, b| key(a).total_cmp(&key(b)));
    }
    values
}

/// The x axis: `task.seq_len` when swept, else the first swept numeric key other than the
/// seed, else the first swept key other than the seed (as categories), else the configurations.
fn x_axis(table: &Columns, setting: &str) -> XAxis {
    let candidates: Vec<(usize, &String)> = table.keys.iter().enumerate().filter(|(_, k)| *k != SEED).collect();
    let chosen = match setting {
        "none" => None,
        "auto" => candidates
            .iter()
            .find(|(_, k)| *k == "task.seq_len")
            .or_else(|| candidates.iter().find(|(i, _)| numeric(&values_in_order(table, *i))))
            .or_else(|| candidates.first())
            .map(|(i, _)| *i),
        key => column(table, key),
    };
    let Some(i) = chosen else {
        return XAxis {
            key: None,
            kind: AxisKind::Categorical,
            values: Vec::new(),
        };
    };
    let values = axis_order(values_in_order(table, i));
    let kind = if numeric(&values) {
        let xs: Vec<f64> = values.iter().filter_map(|v| v.parse::<f64>().ok()).collect();
        let (lo, hi) = (xs[0], xs[xs.len() - 1]);
        if lo > 0.0 && hi / lo >= 10.0 * (1.0 - 1e-12) {
            AxisKind::Log
        } else {
            AxisKind::Linear
        }
    } else {
        AxisKind::Categorical
    };
    XAxis {
        key: Some(table.keys[i].clone()),
        kind,
        values,
    }
}

/// `model.activation` → `activation`: the section adds nothing in a legend.
pub fn short_key(key: &str) -> &str {
    key.rsplit_once('.').map_or(key, |(_, k)| k)
}

/// The colour key among the line keys: an explicit one, else `variant`, else
/// `model.activation`, else the first line key.
fn color_key(line_keys: &[String], setting: &str) -> Option<String> {
    let has = |k: &str| line_keys.iter().any(|l| l == k);
    match setting {
        "none" => None,
        k if k != "auto" && has(k) => Some(k.to_string()),
        _ => ["variant", "model.activation"]
            .into_iter()
            .find(|k| has(k))
            .map(String::from)
            .or_else(|| line_keys.first().cloned()),
    }
}

/// Groups the runs into panels and lines, with `exclude` (the x key) not telling lines apart.
fn grouping(table: &Columns, settings: &PlotSettings, exclude: Option<&str>) -> Grouping {
    let free: Vec<String> = table
        .keys
        .iter()
        .filter(|k| *k != SEED && Some(k.as_str()) != exclude)
        .cloned()
        .collect();
    let mut panel_keys: Vec<String> = match settings.panel.as_str() {
        "none" => Vec::new(),
        "auto" => free.iter().filter(|k| *k == "task.seq_len").cloned().collect(),
        k => free.iter().filter(|f| *f == k).cloned().collect(),
    };
    let explicit_color = (settings.color != "auto" && settings.color != "none").then_some(settings.color.as_str());
    loop {
        let line_keys: Vec<String> = free.iter().filter(|k| !panel_keys.contains(k)).cloned().collect();
        // A panel keeps at least one key telling its lines apart: one line per panel says less
        // than a ramp of ordered colours.
        if settings.panel == "none"
            || line_keys.len() <= 1
            || lines_per_panel(table, &panel_keys, &line_keys) <= MAX_LINES
        {
            break;
        }
        // Split by the line key with the fewest values (the fewest extra panels), keeping an
        // explicitly chosen colour key on the lines.
        let next = line_keys
            .iter()
            .filter(|k| Some(k.as_str()) != explicit_color)
            .min_by_key(|k| column(table, k).map_or(0, |i| values_in_order(table, i).len()));
        match next {
            Some(k) => {
                // Keep the panel keys in sweep order, so the first varies slowest.
                let k = k.clone();
                panel_keys.push(k);
                panel_keys.sort_by_key(|k| column(table, k));
            }
            None => break,
        }
    }
    let line_keys: Vec<String> = free.iter().filter(|k| !panel_keys.contains(k)).cloned().collect();
    let color = color_key(&line_keys, &settings.color);
    let dash_keys: Vec<String> = line_keys
        .iter()
        .filter(|k| Some(*k) != color.as_ref())
        .cloned()
        .collect();
    let cols = |keys: &[String]| -> Vec<usize> { keys.iter().filter_map(|k| column(table, k)).collect() };
    let (panel_cols, line_cols, dash_cols) = (cols(&panel_keys), cols(&line_keys), cols(&dash_keys));
    let color_col = color.as_deref().and_then(|k| column(table, k));
    let color_values = color_col.map_or_else(Vec::new, |i| axis_order(values_in_order(table, i)));
    let sequential = !color_values.is_empty() && numeric(&color_values);

    let pick =
        |row: usize, cols: &[usize]| -> Vec<String> { cols.iter().map(|&i| table.rows[row][i].clone()).collect() };
    let mut panels: Vec<Vec<String>> = Vec::new();
    let mut dashes: Vec<Vec<String>> = Vec::new();
    let mut ids: Vec<Vec<String>> = Vec::new();
    let mut lines: Vec<Line> = Vec::new();
    let mut memberships: Vec<(usize, usize, usize)> = Vec::new(); // (line, panel, row)
    for row in 0..table.rows.len() {
        let panel = index_of(&mut panels, pick(row, &panel_cols));
        let dash = index_of(&mut dashes, pick(row, &dash_cols));
        let id = pick(row, &line_cols);
        let line = match ids.iter().position(|x| *x == id) {
            Some(l) => l,
            None => {
                ids.push(id);
                let color = color_col
                    .and_then(|i| color_values.iter().position(|v| *v == table.rows[row][i]))
                    .unwrap_or(0);
                let label = line_cols
                    .iter()
                    .map(|&i| format!("{}={}", short_key(&table.keys[i]), table.rows[row][i]))
                    .collect::<Vec<_>>()
                    .join(", ");
                lines.push(Line {
                    label,
                    color,
                    dash,
                    runs: Vec::new(),
                    seeds: 0,
                });
                lines.len() - 1
            }
        };
        memberships.push((line, panel, row));
    }
    if panels.is_empty() {
        panels.push(Vec::new());
    }
    for line in &mut lines {
        line.runs = vec![Vec::new(); panels.len()];
    }
    for (line, panel, row) in memberships {
        lines[line].runs[panel].push(row);
    }
    // Seeds: runs of a line at one panel and one value of every other key (the x key).
    let seed_col = column(table, SEED);
    for line in &mut lines {
        let seeds: BTreeSet<&str> = line
            .runs
            .iter()
            .flatten()
            .map(|&r| seed_col.map_or("", |i| table.rows[r][i].as_str()))
            .collect();
        line.seeds = seeds.len().max(1);
    }
    // Legend order: by colour value, then dash pattern, else sweep order (a stable sort).
    lines.sort_by_key(|l| (l.color, l.dash));
    Grouping {
        panel_keys,
        panels,
        color_key: color,
        color_values,
        sequential,
        dash_keys,
        lines,
    }
}

fn index_of(list: &mut Vec<Vec<String>>, item: Vec<String>) -> usize {
    match list.iter().position(|x| *x == item) {
        Some(i) => i,
        None => {
            list.push(item);
            list.len() - 1
        }
    }
}

/// The most lines any panel holds when `panel_keys` split the panels and `line_keys` the lines.
fn lines_per_panel(table: &Columns, panel_keys: &[String], line_keys: &[String]) -> usize {
    let cols = |keys: &[String]| -> Vec<usize> { keys.iter().filter_map(|k| column(table, k)).collect() };
    let (pc, lc) = (cols(panel_keys), cols(line_keys));
    let mut per_panel: std::collections::BTreeMap<Vec<&str>, BTreeSet<Vec<&str>>> = Default::default();
    for row in &table.rows {
        let p: Vec<&str> = pc.iter().map(|&i| row[i].as_str()).collect();
        let l: Vec<&str> = lc.iter().map(|&i| row[i].as_str()).collect();
        per_panel.entry(p).or_default().insert(l);
    }
    per_panel.values().map(BTreeSet::len).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The swept columns of the Cartesian product of `axes` (first slowest), as a sweep writes them.
    fn table(axes: &[(&str, &[&str])]) -> Columns {
        let mut rows = vec![Vec::<String>::new()];
        for (_, values) in axes {
            rows = rows
                .into_iter()
                .flat_map(|r| {
                    values.iter().map(move |v| {
                        let mut r = r.clone();
                        r.push(v.to_string());
                        r
                    })
                })
                .collect();
        }
        Columns {
            keys: axes.iter().map(|(k, _)| k.to_string()).collect(),
            rows,
        }
    }

    fn auto(t: &Columns) -> Layout {
        layout(t, &PlotSettings::default())
    }

    fn labels(g: &Grouping) -> Vec<&str> {
        g.lines.iter().map(|l| l.label.as_str()).collect()
    }

    #[test]
    fn seq_len_sweep_keeps_the_vanishing_charts() {
        let t = table(&[
            ("task.seq_len", &["10", "25", "50", "100", "200"]),
            ("model.activation", &["tanh", "sigmoid", "relu"]),
            ("train.clip", &["none", "1.0"]),
            ("train.seed", &["0", "1", "2"]),
        ]);
        let l = auto(&t);
        assert_eq!(l.x.key.as_deref(), Some("task.seq_len"));
        assert_eq!(l.x.kind, AxisKind::Log, "10 to 200 spans more than a decade");
        assert_eq!(l.x.values, ["10", "25", "50", "100", "200"]);
        // Summary: one panel, six lines coloured by activation, dashed by clipping.
        assert_eq!(l.summary.panels.len(), 1);
        assert_eq!(l.summary.color_key.as_deref(), Some("model.activation"));
        assert!(!l.summary.sequential);
        assert_eq!(l.summary.dash_keys, ["train.clip"]);
        assert_eq!(
            labels(&l.summary),
            [
                "activation=tanh, clip=none",
                "activation=tanh, clip=1.0",
                "activation=sigmoid, clip=none",
                "activation=sigmoid, clip=1.0",
                "activation=relu, clip=none",
                "activation=relu, clip=1.0"
            ]
        );
        assert!(
            l.summary
                .lines
                .iter()
                .all(|line| line.seeds == 3 && line.runs[0].len() == 15)
        );
        // Per-step charts: one panel per length, six lines each, as before.
        assert_eq!(l.steps.panel_keys, ["task.seq_len"]);
        assert_eq!(l.steps.panels.len(), 5);
        assert_eq!(l.steps.lines.len(), 6);
        assert!(l.steps.lines.iter().all(|line| line.runs.iter().all(|r| r.len() == 3)));
    }

    #[test]
    fn learning_rate_by_optimiser() {
        let t = table(&[
            ("train.lr", &["0.0001", "0.001", "0.01", "0.1"]),
            ("train.optimizer", &["sgd", "adam"]),
            ("train.seed", &["0", "1"]),
        ]);
        let l = auto(&t);
        assert_eq!(l.x.key.as_deref(), Some("train.lr"));
        assert_eq!(l.x.kind, AxisKind::Log);
        assert_eq!(l.x.values, ["0.0001", "0.001", "0.01", "0.1"]);
        assert_eq!(labels(&l.summary), ["optimizer=sgd", "optimizer=adam"]);
        assert_eq!(l.summary.color_key.as_deref(), Some("train.optimizer"));
        assert_eq!(l.summary.panels.len(), 1);
        // Per step: 8 lines fit one panel, coloured by the learning rate in order.
        assert_eq!(l.steps.panels.len(), 1);
        assert_eq!(l.steps.lines.len(), 8);
        assert_eq!(l.steps.color_key.as_deref(), Some("train.lr"));
        assert!(l.steps.sequential);
        assert_eq!(l.steps.dash_keys, ["train.optimizer"]);
        assert_eq!(l.steps.lines[0].label, "lr=0.0001, optimizer=sgd");
        assert_eq!(l.steps.lines[1].label, "lr=0.0001, optimizer=adam");
    }

    #[test]
    fn w_scale_by_activation_splits_the_per_step_panels() {
        let t = table(&[
            ("model.scale", &["0.5", "0.8", "1.0", "1.2", "1.5", "2.0"]),
            ("model.activation", &["tanh", "relu"]),
        ]);
        let l = auto(&t);
        assert_eq!(l.x.key.as_deref(), Some("model.scale"));
        assert_eq!(l.x.kind, AxisKind::Linear, "0.5 to 2 is less than a decade");
        assert_eq!(labels(&l.summary), ["activation=tanh", "activation=relu"]);
        // 12 lines are too many for one panel: one panel per activation, coloured by scale.
        assert_eq!(l.steps.panel_keys, ["model.activation"]);
        assert_eq!(l.steps.panels, [vec!["tanh".to_string()], vec!["relu".to_string()]]);
        assert_eq!(l.steps.color_key.as_deref(), Some("model.scale"));
        assert!(l.steps.sequential);
        assert_eq!(l.steps.color_values, ["0.5", "0.8", "1.0", "1.2", "1.5", "2.0"]);
        assert!(l.steps.lines.iter().all(|line| line.runs.iter().all(|r| r.len() == 1)));
        let colors: Vec<usize> = l.steps.lines.iter().map(|line| line.color).collect();
        assert_eq!(colors, [0, 1, 2, 3, 4, 5], "legend in value order");
    }

    #[test]
    fn unsorted_numbers_are_ordered_on_the_axis_and_in_the_legend() {
        let t = table(&[
            ("model.scale", &["2.0", "0.5", "1.0"]),
            ("model.activation", &["tanh", "relu"]),
        ]);
        let l = layout(
            &t,
            &PlotSettings {
                x: "model.activation".into(),
                ..PlotSettings::default()
            },
        );
        assert_eq!(l.x.kind, AxisKind::Categorical);
        assert_eq!(l.x.values, ["tanh", "relu"]);
        assert_eq!(l.summary.color_key.as_deref(), Some("model.scale"));
        assert_eq!(labels(&l.summary), ["scale=0.5", "scale=1.0", "scale=2.0"]);
    }

    #[test]
    fn initialisation_by_hidden_size() {
        let t = table(&[
            ("model.init", &["xavier", "orthogonal", "identity"]),
            ("model.hidden", &["16", "64", "256"]),
            ("train.seed", &["0", "1", "2"]),
        ]);
        let l = auto(&t);
        assert_eq!(l.x.key.as_deref(), Some("model.hidden"), "the first numeric key");
        assert_eq!(l.x.kind, AxisKind::Log);
        assert_eq!(labels(&l.summary), ["init=xavier", "init=orthogonal", "init=identity"]);
        // Initialisation on the x axis instead: categories in sweep order.
        let l = layout(
            &t,
            &PlotSettings {
                x: "model.init".into(),
                ..PlotSettings::default()
            },
        );
        assert_eq!(l.x.kind, AxisKind::Categorical);
        assert_eq!(l.x.values, ["xavier", "orthogonal", "identity"]);
        assert_eq!(l.x.position("identity"), Some(2.0));
        assert_eq!(labels(&l.summary), ["hidden=16", "hidden=64", "hidden=256"]);
        assert!(l.summary.sequential);
    }

    #[test]
    fn clip_thresholds_keep_none_as_the_infinite_end() {
        let t = table(&[
            ("train.clip", &["none", "0.01", "0.1", "1", "10", "100"]),
            ("train.seed", &["0", "1", "2"]),
        ]);
        let l = auto(&t);
        assert_eq!(l.x.key.as_deref(), Some("train.clip"));
        assert_eq!(l.x.kind, AxisKind::Log);
        assert_eq!(l.x.values, ["0.01", "0.1", "1", "10", "100", "none"]);
        assert!(l.x.has_none());
        assert_eq!(l.x.position("100"), Some(2.0));
        assert_eq!(l.x.position("none"), Some(3.0), "one decade past the largest threshold");
        assert_eq!(l.summary.lines.len(), 1);
        assert_eq!(l.summary.lines[0].label, "");
        assert_eq!(l.summary.lines[0].seeds, 3);
        // As a line key, clipping is a dash pattern with its values in order.
        let t = table(&[
            ("model.activation", &["tanh", "relu"]),
            ("train.clip", &["none", "1.0"]),
        ]);
        let l = auto(&t);
        assert_eq!(l.x.key.as_deref(), Some("train.clip"));
        assert_eq!(l.x.values, ["1.0", "none"]);
    }

    #[test]
    fn variants_only_are_categories() {
        let t = table(&[("variant", &["tanh-RNN", "LSTM", "GRU"]), ("train.seed", &["0", "1"])]);
        let l = auto(&t);
        assert_eq!(l.x.key.as_deref(), Some("variant"));
        assert_eq!(l.x.kind, AxisKind::Categorical);
        assert_eq!(l.x.values, ["tanh-RNN", "LSTM", "GRU"]);
        assert_eq!(l.summary.lines.len(), 1);
        assert_eq!(l.steps.color_key.as_deref(), Some("variant"));
        assert_eq!(labels(&l.steps), ["variant=tanh-RNN", "variant=LSTM", "variant=GRU"]);
    }

    #[test]
    fn a_spec_without_a_sweep_is_one_category() {
        let t = table(&[]);
        let l = auto(&t);
        assert_eq!(l.x.key, None);
        assert_eq!(l.x.kind, AxisKind::Categorical);
        assert_eq!(l.summary.lines.len(), 1);
        assert_eq!(l.summary.panels, [Vec::<String>::new()]);
        assert_eq!(l.summary.lines[0].runs, [vec![0]]);
        assert_eq!(l.steps.color_key, None);
    }

    #[test]
    fn too_many_lines_split_by_the_key_with_fewest_values() {
        let t = table(&[
            (
                "model.scale",
                &["0.25", "0.35", "0.5", "0.71", "1", "1.41", "2", "2.83", "4"],
            ),
            ("model.activation", &["tanh", "relu"]),
            ("train.clip", &["none", "1.0"]),
            ("train.seed", &["0", "1", "2"]),
        ]);
        let l = auto(&t);
        assert_eq!(l.x.key.as_deref(), Some("model.scale"));
        assert_eq!(l.x.kind, AxisKind::Log);
        assert_eq!(l.summary.lines.len(), 4, "activation × clip fit one panel");
        assert_eq!(l.summary.panels.len(), 1);
        assert_eq!(l.steps.panel_keys, ["model.activation", "train.clip"]);
        assert_eq!(l.steps.panels.len(), 4);
        assert_eq!(l.steps.columns(), 2);
        assert!(
            l.steps
                .panels
                .iter()
                .enumerate()
                .all(|(p, _)| l.steps.lines_in(p).count() == 9)
        );
        assert_eq!(
            l.steps.color_key.as_deref(),
            Some("model.scale"),
            "the last line key stays"
        );
        assert!(l.steps.sequential);
        // An explicit colour key stays on the lines; the split takes other keys.
        let l = layout(
            &t,
            &PlotSettings {
                color: "model.activation".into(),
                ..PlotSettings::default()
            },
        );
        assert_eq!(l.steps.color_key.as_deref(), Some("model.activation"));
        assert!(!l.steps.panel_keys.contains(&"model.activation".to_string()));
        assert_eq!(l.steps.panel_keys, ["model.scale", "train.clip"]);
        assert!(
            l.steps
                .panels
                .iter()
                .enumerate()
                .all(|(p, _)| l.steps.lines_in(p).count() == 2)
        );
        // `none` keeps a single panel, however many lines.
        let l = layout(
            &t,
            &PlotSettings {
                panel: "none".into(),
                ..PlotSettings::default()
            },
        );
        assert_eq!(l.steps.panels.len(), 1);
        assert_eq!(l.steps.lines.len(), 36);
    }

    #[test]
    fn the_heatmap_takes_the_first_two_numeric_keys() {
        let t = table(&[
            ("task.seq_len", &["10", "25", "50"]),
            ("model.activation", &["tanh", "relu"]),
            ("train.clip", &["none", "1.0"]),
            ("train.seed", &["0", "1"]),
        ]);
        let pair = |l: Layout| l.heatmap;
        assert_eq!(pair(auto(&t)), Some(("task.seq_len".into(), "train.clip".into())));
        let s = |h: &str| PlotSettings {
            heatmap: h.into(),
            ..PlotSettings::default()
        };
        assert_eq!(pair(layout(&t, &s("none"))), None);
        assert_eq!(
            pair(layout(&t, &s("model.activation,task.seq_len"))),
            Some(("model.activation".into(), "task.seq_len".into())),
            "any two swept keys when named"
        );
        assert!(s("train.seed,task.seq_len").check(&t).is_err());
        assert!(s("task.seq_len").check(&t).is_err());
        // One numeric key (and one swept with a single value): no heatmap.
        let t = table(&[
            ("model.scale", &["0.5", "1.0"]),
            ("train.lr", &["0.1"]),
            ("model.activation", &["tanh", "relu"]),
        ]);
        assert_eq!(pair(auto(&t)), None);
        assert_eq!(
            PlotSettings::heatmap_setting("[train.lr, \"train.clip\"]"),
            "train.lr,train.clip"
        );
        assert_eq!(PlotSettings::heatmap_setting("auto"), "auto");
    }

    #[test]
    fn settings_must_name_swept_keys() {
        let t = table(&[("train.lr", &["0.1", "1"])]);
        let mut s = PlotSettings::default();
        assert!(s.check(&t).is_ok());
        *s.get_mut("plot.x").unwrap() = "model.hidden".into();
        let e = s.check(&t).unwrap_err();
        assert!(
            e.contains("`plot.x`") && e.contains("model.hidden") && e.contains("train.lr"),
            "{e}"
        );
    }
}
