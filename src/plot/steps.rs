//! The per-step figures, whose x axis is a step or a distance, so every swept key but the
//! seed (and the panel keys) tells lines apart: the gradient reaching back d steps at
//! initialisation and after training, the training loss, and the gradient norm before clipping.

use super::Data;
use super::choose::{Grouping, Line, short_key};
use super::figure::{Axis, Figure, HLine, LegendEntry, Mark, Panel, Series, Style, aggregate, line_color, smooth};
use crate::record::{CurveRow, top_layer};
use plotters::style::{BLACK, RED};

/// The legend of a grouping's lines: each line's label and seed count.
pub fn legend(g: &Grouping) -> Vec<LegendEntry> {
    g.lines
        .iter()
        .map(|l| LegendEntry {
            label: line_label(l),
            color: line_color(g, l.color),
            dash: l.dash,
            mark: Mark::Line,
        })
        .collect()
}

/// `activation=tanh, clip=none (3 seeds)`, or `all runs (…)` for the only line.
pub fn line_label(l: &Line) -> String {
    format!(
        "{} ({} seed{})",
        if l.label.is_empty() { "all runs" } else { &l.label },
        l.seeds,
        if l.seeds == 1 { "" } else { "s" }
    )
}

/// A panel per panel value with its title.
fn panel(g: &Grouping, p: usize) -> Panel {
    Panel {
        title: g.panel_title(p),
        ..Panel::default()
    }
}

/// A line of text in the legend.
pub fn note(text: impl Into<String>) -> LegendEntry {
    LegendEntry {
        label: text.into(),
        color: BLACK,
        dash: 0,
        mark: Mark::Text,
    }
}

/// The legend led by how to read it: what a line and its band are, and how an ordered
/// palette reads.
pub fn with_note(g: &Grouping, how: &str, mut legend: Vec<LegendEntry>) -> Vec<LegendEntry> {
    let mut head = vec![note(how)];
    if let (Some(key), true) = (g.color_key.as_deref(), g.sequential) {
        head.push(note(format!("colour: {}, light = small, dark = large", short_key(key))));
    }
    legend.splice(0..0, head);
    legend
}

/// How the per-step charts aggregate seeds.
const GEOMETRIC: &str = "line = geometric mean, band = seed range";

/// ‖∂E_T/∂h_{T−d}‖ against d, at step 0 or at each run's last probe.
pub fn decay_figure(data: &Data, g: &Grouping, initial: bool) -> Figure {
    let mut panels = Vec::new();
    for p in 0..g.panels.len() {
        let mut out = panel(g, p);
        for (line, runs) in g.lines_in(p) {
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
                    // The top layer's state, the one the head reads (the only one of a
                    // one-layer run).
                    let top = top_layer(rows);
                    rows.iter()
                        .filter(|r| r.probe_step == step && r.layer == top && crate::record::is_output_state(&r.state))
                        .filter_map(|r| r.log10_grad_norm.map(|y| (r.distance as f64, y)))
                        .collect()
                })
                .collect();
            out.series.push(Series {
                color: line_color(g, line.color),
                dash: line.dash,
                style: Style::Line,
                points: aggregate(&per_run),
            });
        }
        panels.push(out);
    }
    let when = if initial {
        "at initialisation (step 0)"
    } else {
        "after training (last probe)"
    };
    Figure {
        title: format!(
            "{}: gradient reaching back d steps {when}, mean over probe sequences",
            data.manifest.name
        ),
        x: Axis {
            label: "distance d (steps back from the last step)".into(),
            ..Axis::default()
        },
        y: Axis {
            label: "‖∂E_T/∂h_(T−d)‖ (log scale)".into(),
            log: true,
            ..Axis::default()
        },
        own_axes: true,
        columns: g.columns(),
        panels,
        legend: with_note(g, GEOMETRIC, legend(g)),
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

/// Moving-average window for per-step curves.
fn window(data: &Data) -> usize {
    let steps = data.table.rows.iter().map(|r| r.steps).max().unwrap_or(1);
    (steps / 50).clamp(1, 50) as usize
}

fn smoothing_note(window: usize) -> String {
    if window > 1 {
        format!(", moving average of log over {window} steps")
    } else {
        String::new()
    }
}

/// The training loss against the step, the task baseline dashed.
pub fn loss_figure(data: &Data, g: &Grouping) -> Figure {
    let window = window(data);
    let panels = (0..g.panels.len())
        .map(|p| {
            let in_panel = g.lines_in(p).flat_map(|(_, r)| r.iter().copied());
            let mut out = Panel {
                hlines: data.baselines(in_panel),
                ..panel(g, p)
            };
            for (line, runs) in g.lines_in(p) {
                out.series.push(Series {
                    color: line_color(g, line.color),
                    dash: line.dash,
                    style: Style::Line,
                    points: curve_series(data, runs, window, |r| r.train_loss),
                });
            }
            out
        })
        .collect();
    let mut legend = with_note(g, GEOMETRIC, legend(g));
    legend.push(LegendEntry::dashed("task baseline (no memory)", BLACK));
    against_step(
        format!("{}: training loss{}", data.manifest.name, smoothing_note(window)),
        "training loss (log scale)",
        g,
        panels,
        legend,
    )
}

/// A per-step chart: the step on x, a log y, panels sharing their axes.
fn against_step(title: String, y_label: &str, g: &Grouping, panels: Vec<Panel>, legend: Vec<LegendEntry>) -> Figure {
    Figure {
        title,
        x: Axis {
            label: "step".into(),
            ..Axis::default()
        },
        y: Axis {
            label: y_label.into(),
            log: true,
            ..Axis::default()
        },
        own_axes: false,
        columns: g.columns(),
        panels,
        legend,
    }
}

/// ‖g‖₂ before clipping against the step, each clipping threshold dashed in red.
pub fn grad_norm_figure(data: &Data, g: &Grouping) -> Figure {
    let window = window(data);
    let mut any_clip = false;
    let panels = (0..g.panels.len())
        .map(|p| {
            let mut out = panel(g, p);
            for (line, runs) in g.lines_in(p) {
                out.series.push(Series {
                    color: line_color(g, line.color),
                    dash: line.dash,
                    style: Style::Line,
                    points: curve_series(data, runs, window, |r| r.grad_norm),
                });
                for &i in runs {
                    if let Some(theta) = data.value(i, "train.clip").and_then(|v| v.parse::<f64>().ok())
                        && !out.hlines.iter().any(|h| (h.y - theta.log10()).abs() < 1e-12)
                    {
                        any_clip = true;
                        out.hlines.push(HLine {
                            y: theta.log10(),
                            label: format!("clip threshold θ = {theta}"),
                            color: RED,
                        });
                    }
                }
            }
            out
        })
        .collect();
    let mut legend = with_note(g, GEOMETRIC, legend(g));
    if any_clip {
        legend.push(LegendEntry::dashed("norm-clipping threshold", RED));
    }
    let title = format!(
        "{}: gradient norm before clipping{}",
        data.manifest.name,
        smoothing_note(window)
    );
    against_step(title, "‖g‖₂ before clipping (log scale)", g, panels, legend)
}
