//! The summary figures: one number per run from `runs.csv` (final loss, final accuracy, the
//! measured decay factor at initialisation and after training, a stack's depth factor,
//! divergence) against the `plot.x` key, one line per configuration of the other swept keys,
//! seeds aggregated; and `decay_vs_bound`, every run's measured decay factor against its bound.

use plotters::style::{BLACK, RGBColor};

use super::Data;
use super::choose::{AxisKind, Grouping, Layout, short_key};
use super::figure::{Axis, Figure, HLine, LegendEntry, Mark, Panel, Point, Series, Style, aggregate, line_color};
use super::steps::{legend, line_label, note, with_note};
use crate::record::{RunRow, Status};

/// What a key means, for axis labels and titles.
pub fn meaning(key: &str) -> String {
    let m = match key {
        "task.seq_len" => "sequence length T",
        "task.eval_size" => "evaluation set size",
        "model.cell" => "recurrent cell",
        "model.dtype" => "element type",
        "model.hidden" => "hidden size H",
        "model.layers" => "number of layers L",
        "model.residual" => "residual connections between layers",
        "model.dropout" => "dropout between layers",
        "model.activation" => "activation σ",
        "model.init" => "initialisation of W",
        "model.init_io" => "initialisation of U and V",
        "model.std" => "std of the normal initialisation",
        "model.scale" => "W scale",
        "model.sparsity" => "non-zero weights per unit",
        "model.spectral_radius" => "spectral radius of sparse W",
        "model.forget_bias" => "LSTM forget-gate bias",
        "train.steps" => "training steps",
        "train.batch" => "batch size B",
        "train.optimizer" => "optimiser",
        "train.lr" => "learning rate",
        "train.momentum" => "momentum μ",
        "train.clip" => "gradient-norm clipping threshold θ",
        "train.clip_value" => "element-wise clipping value",
        "train.bptt" => "BPTT window",
        "train.seed" => "seed",
        "variant" => "variant",
        other => return other.to_string(),
    };
    m.to_string()
}

/// The x axis of a summary figure, with a tick at every swept value.
fn x_axis(layout: &Layout) -> Axis {
    let x = &layout.x;
    let Some(key) = &x.key else {
        let ticks = layout
            .summary
            .lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                (
                    i as f64,
                    if l.label.is_empty() {
                        "all runs".to_string()
                    } else {
                        l.label.clone()
                    },
                )
            })
            .collect::<Vec<_>>();
        let n = ticks.len() as f64;
        return Axis {
            label: "configuration".into(),
            ticks: Some(ticks),
            range: Some((-0.5, n - 0.5)),
            ..Axis::default()
        };
    };
    let ticks: Vec<(f64, String)> = x
        .values
        .iter()
        .filter_map(|v| {
            let label = if v == "none" { "none".to_string() } else { v.clone() };
            x.position(v).map(|p| (p, label))
        })
        .collect();
    let scale = match x.kind {
        AxisKind::Log => ", log scale",
        AxisKind::Linear => "",
        AxisKind::Categorical => "",
    };
    let none = if x.has_none() { "; none = no clipping" } else { "" };
    let meaning = meaning(key);
    let named = if meaning == *key {
        key.clone()
    } else {
        format!("{meaning} — {key}")
    };
    Axis {
        label: format!("{named}{scale}{none}"),
        range: (x.kind == AxisKind::Categorical).then(|| (-0.5, ticks.len() as f64 - 0.5)),
        ticks: Some(ticks),
        ..Axis::default()
    }
}

/// "against the learning rate", for titles.
fn against(layout: &Layout) -> String {
    match &layout.x.key {
        Some(k) => format!("against the {}", meaning(k)),
        None => "per configuration".into(),
    }
}

/// Where run `row` of line `line` (the `slot`-th of `n` lines in its panel) sits on the x axis:
/// its x value's position, spread a little sideways on a categorical axis so that error bars
/// do not hide each other; with no x key, its line's own category.
fn x_of(data: &Data, layout: &Layout, line: usize, slot: usize, n: usize, row: usize) -> Option<f64> {
    let Some(key) = &layout.x.key else {
        return Some(line as f64);
    };
    let base = layout.x.position(&data.value(row, key)?)?;
    if layout.x.kind == AxisKind::Categorical && n > 1 {
        let width = (0.6 / n as f64).min(0.15);
        Some(base + (slot as f64 - (n - 1) as f64 / 2.0) * width)
    } else {
        Some(base)
    }
}

/// One measured number per run, drawn against the x key.
pub(crate) struct Metric {
    /// The chart's file name.
    pub name: &'static str,
    /// What is measured, for the title.
    pub what: &'static str,
    /// The y axis label.
    pub y_label: &'static str,
    /// The number, or `None` (not measured, or the run did not finish).
    pub value: fn(&RunRow) -> Option<f64>,
    /// y is logarithmic (values are positive and span decades).
    pub log: bool,
    /// A fixed y range (fractions).
    pub range: Option<(f64, f64)>,
    /// Lines show the mean only, not the seed range.
    pub no_band: bool,
}

/// The series of one line in one panel: the metric aggregated over seeds at each x; points
/// at `none` (and every point on a categorical axis) drawn apart, not joined.
fn metric_series(
    data: &Data,
    layout: &Layout,
    (li, slot, n): (usize, usize, usize),
    runs: &[usize],
    value: &dyn Fn(&RunRow) -> Option<f64>,
    log: bool,
    no_band: bool,
) -> (Vec<Point>, Vec<Point>) {
    let per_run: Vec<Vec<(f64, f64)>> = runs
        .iter()
        .filter_map(|&i| {
            let x = x_of(data, layout, li, slot, n, i)?;
            let v = value(data.row(i))?;
            let y = if log {
                if v > 0.0 { v.log10() } else { return None }
            } else {
                v
            };
            Some(vec![(x, y)])
        })
        .collect();
    let mut points = aggregate(&per_run);
    if no_band {
        for p in &mut points {
            (p.2, p.3) = (p.1, p.1);
        }
    }
    let none_x = layout.x.has_none().then(|| layout.x.position("none")).flatten();
    let (apart, joined): (Vec<_>, Vec<_>) = points
        .into_iter()
        .partition(|p| layout.x.kind == AxisKind::Categorical || layout.x.key.is_none() || Some(p.0) == none_x);
    (joined, apart)
}

/// Pushes a line's series (joined and apart) into a panel.
fn push(panel: &mut Panel, color: RGBColor, dash: usize, style: Style, (joined, apart): (Vec<Point>, Vec<Point>)) {
    if !joined.is_empty() {
        panel.series.push(Series {
            color,
            dash,
            style,
            points: joined,
        });
    }
    if !apart.is_empty() {
        panel.series.push(Series {
            color,
            dash,
            style: if style == Style::Bound {
                Style::Bound
            } else {
                Style::Points
            },
            points: apart,
        });
    }
}

/// The slot of each line among the lines of panel `p`.
fn slots(g: &Grouping, p: usize) -> Vec<(usize, usize, usize, &[usize])> {
    let present: Vec<usize> = (0..g.lines.len()).filter(|&l| !g.lines[l].runs[p].is_empty()).collect();
    let n = present.len();
    present
        .iter()
        .enumerate()
        .map(|(slot, &l)| (l, slot, n, g.lines[l].runs[p].as_slice()))
        .collect()
}

/// A light separator before the `none` slot.
fn none_separator(layout: &Layout) -> Vec<f64> {
    // Values are in axis order, `none` last: the separator sits between it and the value before.
    let last = layout.x.values.iter().rev().find(|v| *v != "none");
    match (
        layout.x.has_none(),
        last.and_then(|v| layout.x.position(v)),
        layout.x.position("none"),
    ) {
        (true, Some(last), Some(none)) => vec![(last + none) / 2.0],
        _ => Vec::new(),
    }
}

pub(crate) fn metric_figure(data: &Data, layout: &Layout, m: &Metric) -> Figure {
    let g = &layout.summary;
    let mut panels = Vec::new();
    for p in 0..g.panels.len() {
        let mut panel = Panel {
            title: g.panel_title(p),
            vlines: none_separator(layout),
            ..Panel::default()
        };
        for (li, slot, n, runs) in slots(g, p) {
            let line = &g.lines[li];
            let s = metric_series(data, layout, (li, slot, n), runs, &m.value, m.log, m.no_band);
            push(&mut panel, line_color(g, line.color), line.dash, Style::Line, s);
        }
        panels.push(panel);
    }
    let how = if m.no_band {
        "dot = share of the seeds"
    } else if m.log {
        "dot = geometric mean, band or bar = seed range"
    } else {
        "dot = mean, band or bar = seed range"
    };
    Figure {
        title: format!("{}: {} {}", data.manifest.name, m.what, against(layout)),
        x: x_axis(layout),
        y: Axis {
            label: m.y_label.into(),
            log: m.log,
            range: m.range,
            ..Axis::default()
        },
        own_axes: false,
        columns: g.columns(),
        panels,
        legend: with_note(g, how, legend(g)),
    }
}

/// Final evaluation loss against the x key, the task baseline dashed, diverged runs crossed.
fn final_loss(data: &Data, layout: &Layout) -> Figure {
    let g = &layout.summary;
    let mut fig = metric_figure(
        data,
        layout,
        &Metric {
            name: "final_loss",
            what: "evaluation loss after training",
            y_label: "final evaluation loss (log scale)",
            value: |r| r.final_loss.filter(|_| r.status == Status::Ok),
            log: true,
            range: None,
            no_band: false,
        },
    );
    let mut any_diverged = false;
    for (p, panel) in fig.panels.iter_mut().enumerate() {
        // The baseline: one line, or a curve (segments on categories) when it depends on x.
        let mut at: Vec<(f64, f64)> = Vec::new();
        for (li, slot, n, runs) in slots(g, p) {
            for &i in runs {
                if let Some(x) = x_of(data, layout, li, slot, n, i) {
                    let b = data.row(i).baseline_loss.log10();
                    let centre = if layout.x.kind == AxisKind::Categorical {
                        x.round()
                    } else {
                        x
                    };
                    if !at.iter().any(|q| q.0 == centre) {
                        at.push((centre, b));
                    }
                }
                if data.row(i).status == Status::Diverged {
                    any_diverged = true;
                    if let Some(x) = x_of(data, layout, li, slot, n, i) {
                        panel.diverged.push((x, line_color(g, g.lines[li].color)));
                    }
                }
            }
        }
        at.sort_by(|a, b| a.0.total_cmp(&b.0));
        if at.windows(2).all(|w| (w[0].1 - w[1].1).abs() < 1e-12) {
            let runs = slots(g, p).into_iter().flat_map(|s| s.3.iter().copied());
            panel.hlines = data.baselines(runs);
        } else if layout.x.kind == AxisKind::Categorical {
            panel.ref_curves = at.iter().map(|&(x, b)| vec![(x - 0.4, b), (x + 0.4, b)]).collect();
        } else {
            panel.ref_curves.push(at);
        }
    }
    fig.legend.push(LegendEntry::dashed("task baseline (no memory)", BLACK));
    if any_diverged {
        fig.legend.push(LegendEntry {
            label: "a run that diverged (no final loss)".into(),
            color: BLACK,
            dash: 0,
            mark: Mark::Cross,
        });
    }
    fig
}

/// The measured per-step decay factor against the x key, the factor 1 dashed and each
/// configuration's bound ‖W‖₂·max|σ'| dotted beside it.
fn decay_factor(data: &Data, layout: &Layout, initial: bool) -> (&'static str, Figure) {
    let g = &layout.summary;
    let m = Metric {
        name: if initial { "decay_factor_init" } else { "decay_factor" },
        what: if initial {
            "gradient's per-step factor at initialisation"
        } else {
            "gradient's per-step factor after training"
        },
        y_label: "per-step factor (log scale)",
        value: if initial {
            |r| r.decay_factor_init
        } else {
            |r| r.decay_factor
        },
        log: true,
        range: None,
        no_band: false,
    };
    let bound: fn(&RunRow) -> Option<f64> = if initial {
        |r| r.bound_factor_init
    } else {
        |r| r.bound_factor
    };
    let mut fig = metric_figure(data, layout, &m);
    let mut any_bound = false;
    for (p, panel) in fig.panels.iter_mut().enumerate() {
        for (li, slot, n, runs) in slots(g, p) {
            let line = &g.lines[li];
            let s = metric_series(data, layout, (li, slot, n), runs, &bound, true, false);
            any_bound |= !s.0.is_empty() || !s.1.is_empty();
            push(panel, line_color(g, line.color), line.dash, Style::Bound, s);
        }
        panel.hlines.push(HLine {
            y: 0.0,
            label: "1: exploding above, vanishing below".into(),
            color: BLACK,
        });
    }
    if any_bound {
        fig.legend.push(LegendEntry {
            label: "bound ‖W‖₂·max|σ′| (dotted, hollow)".into(),
            color: BLACK,
            dash: 0,
            mark: Mark::Bound,
        });
    }
    fig.legend.push(LegendEntry::dashed("factor 1 per step", BLACK));
    (m.name, fig)
}

/// The file names of the depth-factor charts, drawn only for a sweep with a stack.
pub const DEPTH_FACTOR: [&str; 2] = ["depth_factor_init", "depth_factor"];

/// A stack's per-layer factor of the gradient on its way down (`depth_factor_init`,
/// `depth_factor`) against the x key, the factor 1 dashed. One-layer runs have none and draw no
/// point.
fn depth_factor(data: &Data, layout: &Layout, initial: bool) -> (&'static str, Figure) {
    let m = Metric {
        name: DEPTH_FACTOR[usize::from(!initial)],
        what: if initial {
            "gradient's per-layer factor down the stack at initialisation"
        } else {
            "gradient's per-layer factor down the stack after training"
        },
        y_label: "per-layer factor (log scale)",
        value: if initial {
            |r| r.depth_factor_init
        } else {
            |r| r.depth_factor
        },
        log: true,
        range: None,
        no_band: false,
    };
    let mut fig = metric_figure(data, layout, &m);
    for panel in &mut fig.panels {
        panel.hlines.push(HLine {
            y: 0.0,
            label: "1: shrinking on its way down below, growing above".into(),
            color: BLACK,
        });
    }
    fig.legend.push(LegendEntry::dashed("factor 1 per layer", BLACK));
    (m.name, fig)
}

/// The figures over `plot.x`, with their file names; final accuracy only where the task has one.
pub fn figures(data: &Data, layout: &Layout) -> Vec<(&'static str, Figure)> {
    let mut out = vec![("final_loss", final_loss(data, layout))];
    if data.table.rows.iter().any(|r| r.final_accuracy.is_some()) {
        let m = Metric {
            name: "final_accuracy",
            what: "evaluation accuracy after training",
            y_label: "final evaluation accuracy",
            value: |r| r.final_accuracy.filter(|_| r.status == Status::Ok),
            log: false,
            range: Some((-0.02, 1.02)),
            no_band: false,
        };
        out.push((m.name, metric_figure(data, layout, &m)));
    }
    out.extend([true, false].map(|initial| decay_factor(data, layout, initial)));
    if data.manifest.has_stacks() {
        out.extend([true, false].map(|initial| depth_factor(data, layout, initial)));
    }
    let m = Metric {
        name: "diverged",
        what: "share of runs that diverged (non-finite loss or gradient)",
        y_label: "fraction of runs diverged",
        value: |r| match r.status {
            Status::Diverged => Some(1.0),
            Status::Ok => Some(0.0),
            Status::Failed => None,
        },
        log: false,
        range: Some((-0.03, 1.03)),
        no_band: true,
    };
    out.push((m.name, metric_figure(data, layout, &m)));
    if let Some(fig) = decay_vs_bound(data, layout) {
        out.push(("decay_vs_bound", fig));
    }
    out
}

/// Every run's measured decay factor at initialisation against its bound ‖W‖₂·max|σ'|, log–log,
/// with the diagonal: the bound says every point lies on or below it. `None` when no run has a
/// bound (the gated cells have none).
fn decay_vs_bound(data: &Data, layout: &Layout) -> Option<Figure> {
    let g = &layout.summary;
    let mut panel = Panel::default();
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut colours_used: Vec<usize> = Vec::new();
    for line in &g.lines {
        let pts: Vec<(f64, f64, f64, f64)> = line
            .runs
            .iter()
            .flatten()
            .filter_map(|&i| {
                let r = data.row(i);
                let (b, d) = (r.bound_factor_init?, r.decay_factor_init?);
                (b > 0.0 && d > 0.0).then(|| (b.log10(), d.log10(), d.log10(), d.log10()))
            })
            .collect();
        for p in &pts {
            lo = lo.min(p.0.min(p.1));
            hi = hi.max(p.0.max(p.1));
        }
        if !pts.is_empty() {
            if !colours_used.contains(&line.color) {
                colours_used.push(line.color);
            }
            panel.series.push(Series {
                color: line_color(g, line.color),
                dash: 0,
                style: Style::Points,
                points: pts,
            });
        }
    }
    if panel.series.is_empty() {
        return None;
    }
    let pad = ((hi - lo) * 0.05).max(0.02);
    let (lo, hi) = (lo - pad, hi + pad);
    panel.ref_curves.push(vec![(lo, lo), (hi, hi)]);
    let legend: Vec<LegendEntry> = if g.color_key.is_some() {
        colours_used.sort_unstable();
        colours_used
            .iter()
            .map(|&c| LegendEntry {
                label: format!(
                    "{}={}",
                    short_key(g.color_key.as_deref().unwrap_or("")),
                    g.color_values[c]
                ),
                color: line_color(g, c),
                dash: 0,
                mark: Mark::Dot,
            })
            .collect()
    } else {
        vec![LegendEntry {
            label: g.lines.first().map(line_label).unwrap_or_default(),
            color: line_color(g, 0),
            dash: 0,
            mark: Mark::Dot,
        }]
    };
    let mut legend = legend;
    legend.insert(0, note("one dot per run; the bound puts every"));
    legend.insert(1, note("dot on or below the diagonal"));
    legend.push(LegendEntry::dashed("measured = bound (diagonal)", BLACK));
    Some(Figure {
        title: format!(
            "{}: measured per-step factor at initialisation against its bound ‖W‖₂·max|σ′|",
            data.manifest.name
        ),
        x: Axis {
            label: "bound ‖W‖₂·max|σ′| at initialisation (log scale)".into(),
            log: true,
            range: Some((lo, hi)),
            ..Axis::default()
        },
        y: Axis {
            label: "measured decay factor at initialisation (log scale)".into(),
            log: true,
            range: Some((lo, hi)),
            ..Axis::default()
        },
        own_axes: false,
        columns: 1,
        panels: vec![panel],
        legend,
    })
}
