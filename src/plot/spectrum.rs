//! The Lyapunov-spectrum figures, drawn when some run asked for `probe.spectrum`: the
//! exponents λ_i against their index i at initialisation and after training (one line per
//! configuration, as the per-step charts), and λ₁ against `plot.x` among the summary charts.

use plotters::style::BLACK;

use super::Data;
use super::choose::{Grouping, Layout};
use super::figure::{Axis, Figure, HLine, Panel, Series, Style, aggregate, line_color};
use super::steps::{legend, note, with_note};
use super::summary::{Metric, metric_figure};

/// The figures, with their file names; none when no run has a spectrum.
pub fn figures(data: &Data, layout: &Layout) -> Vec<(&'static str, Figure)> {
    if data.spectrum.values().all(Vec::is_empty) {
        return Vec::new();
    }
    let mut out = vec![
        ("spectrum_init", spectrum_figure(data, &layout.steps, true)),
        ("spectrum", spectrum_figure(data, &layout.steps, false)),
    ];
    for initial in [true, false] {
        let m = Metric {
            name: if initial { "lyapunov_max_init" } else { "lyapunov_max" },
            what: if initial {
                "largest Lyapunov exponent λ₁ at initialisation"
            } else {
                "largest Lyapunov exponent λ₁ after training"
            },
            y_label: "λ₁ (natural log per step)",
            value: if initial {
                |r| r.lyapunov_max_init
            } else {
                |r| r.lyapunov_max
            },
            log: false,
            range: None,
            no_band: false,
        };
        let mut fig = metric_figure(data, layout, &m);
        for panel in &mut fig.panels {
            panel.hlines.push(zero_line());
        }
        out.push((m.name, fig));
    }
    out
}

fn zero_line() -> HLine {
    HLine {
        y: 0.0,
        label: "0: growing above, shrinking below".into(),
        color: BLACK,
    }
}

/// λ_i against i at step 0 or at each run's last probe; the seeds' mean with their range.
fn spectrum_figure(data: &Data, g: &Grouping, initial: bool) -> Figure {
    let mut panels = Vec::new();
    let mut any_missing = false;
    for p in 0..g.panels.len() {
        let mut panel = Panel {
            title: g.panel_title(p),
            hlines: vec![zero_line()],
            ..Panel::default()
        };
        for (line, runs) in g.lines_in(p) {
            let per_run: Vec<Vec<(f64, f64)>> = runs
                .iter()
                .filter_map(|&i| data.spectrum.get(&data.row(i).run_id))
                .map(|rows| {
                    let step = if initial {
                        0
                    } else {
                        rows.iter().map(|r| r.probe_step).max().unwrap_or(0)
                    };
                    rows.iter()
                        .filter(|r| r.probe_step == step)
                        .map(|r| (r.index as f64, r.exponent.unwrap_or(f64::NAN)))
                        .collect()
                })
                .collect();
            any_missing |= per_run.iter().flatten().any(|p| p.1.is_nan());
            panel.series.push(Series {
                color: line_color(g, line.color),
                dash: line.dash,
                style: Style::Line,
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
    let mut legend = with_note(g, "line = mean over seeds, band = seed range", legend(g));
    if any_missing {
        legend.push(note("λ = −∞ (a singular step) is not drawn"));
    }
    Figure {
        title: format!(
            "{}: finite-time Lyapunov spectrum {when}, mean over probe sequences",
            data.manifest.name
        ),
        x: Axis {
            label: "index i (largest exponent first)".into(),
            ..Axis::default()
        },
        y: Axis {
            label: "λ_i (natural log per step)".into(),
            ..Axis::default()
        },
        own_axes: false,
        columns: g.columns(),
        panels,
        legend,
    }
}
