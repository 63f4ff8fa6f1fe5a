//! The gradient across depth and time, for sweeps with a stack (`model.layers` > 1):
//! ‖∂E_T/∂h⁽ˡ⁾_{T−d}‖ against the distance d, one panel per configuration (a line of the
//! per-step charts), one line per layer l, at initialisation and after training.
//!
//! Lines per layer rather than a layer × distance heatmap: on the log axis a line's slope is the
//! per-step factor in that layer and the gaps between the lines at d = 0 are the per-layer
//! factor down the stack (`depth_factor`), both read off with a ruler, and layers whose
//! gradients cross (an LSTM's bottom layer gaining with d) show as crossing lines; a heatmap of
//! two to eight rows turns both into shades of one colour, and a stack of two is a strip.

use std::collections::BTreeMap;

use super::Data;
use super::choose::Grouping;
use super::figure::{Axis, Figure, LegendEntry, Mark, Panel, Series, Style, aggregate, color};
use super::steps::note;

/// The legend's first line: how seeds are aggregated. No band: up to sixteen layers' seed
/// ranges would cover each other (the top layer's is on `grad_decay`).
const GEOMETRIC: &str = "line = geometric mean over the seeds";

/// A layer's colour in a stack of `layers`: the ordered palette from light (layer 0, the
/// bottom) to dark (the top), whatever the stack's height, so the top is dark in every panel.
fn layer_color(layer: u64, layers: u64) -> plotters::style::RGBColor {
    color(layer as usize, layers as usize, true)
}

/// ‖∂E_T/∂h⁽ˡ⁾_{T−d}‖ against d for every layer l of every stacked configuration, at step 0 or
/// at each run's last probe; `None` when no run is a stack.
pub fn figure(data: &Data, g: &Grouping, initial: bool) -> Option<Figure> {
    if !data.manifest.has_stacks() {
        return None;
    }
    let layers: BTreeMap<&str, u64> = data
        .manifest
        .runs
        .iter()
        .map(|r| (r.run_id.as_str(), r.layers()))
        .collect();
    let layers_of = |i: usize| layers.get(data.row(i).run_id.as_str()).copied().unwrap_or(1);
    let mut panels = Vec::new();
    let mut heights: Vec<u64> = Vec::new();
    let mut per_panel: Vec<usize> = Vec::new(); // stacked configurations in each per-step panel
    for p in 0..g.panels.len() {
        let mut here = 0;
        for (line, runs) in g.lines_in(p) {
            // The runs of one line differ only in the seed, so they share their height.
            let stack = runs.iter().map(|&i| layers_of(i)).max().unwrap_or(1);
            if stack < 2 {
                continue;
            }
            here += 1;
            if !heights.contains(&stack) {
                heights.push(stack);
            }
            // The configuration, and its height unless a swept `model.layers` names it.
            let mut title: Vec<String> = [g.panel_title(p), line.label.clone()]
                .into_iter()
                .filter(|t| !t.is_empty())
                .collect();
            if !g
                .panel_keys
                .iter()
                .chain(&g.dash_keys)
                .chain(&g.color_key)
                .any(|k| k == "model.layers")
            {
                title.push(format!("{stack} layers"));
            }
            let mut panel = Panel {
                title: format!(
                    "{} ({} seed{})",
                    title.join(", "),
                    line.seeds,
                    if line.seeds == 1 { "" } else { "s" }
                ),
                ..Panel::default()
            };
            for layer in 0..stack {
                let per_run: Vec<Vec<(f64, f64)>> = runs
                    .iter()
                    .filter_map(|&i| data.decay.get(&data.row(i).run_id))
                    .map(|rows| {
                        let step = if initial {
                            0
                        } else {
                            rows.iter().map(|r| r.probe_step).max().unwrap_or(0)
                        };
                        rows.iter()
                            .filter(|r| {
                                r.probe_step == step && r.layer == layer && crate::record::is_output_state(&r.state)
                            })
                            .filter_map(|r| r.log10_grad_norm.map(|y| (r.distance as f64, y)))
                            .collect()
                    })
                    .collect();
                let mut points = aggregate(&per_run);
                for p in &mut points {
                    (p.2, p.3) = (p.1, p.1);
                }
                panel.series.push(Series {
                    color: layer_color(layer, stack),
                    dash: 0,
                    style: Style::Line,
                    points,
                });
            }
            panels.push(panel);
        }
        if here > 0 {
            per_panel.push(here);
        }
    }
    // A table of panels, a row per per-step panel, when each holds the same few configurations.
    let columns = match per_panel.first() {
        Some(&n) if n <= 4 && per_panel.iter().all(|&m| m == n) => n,
        _ => panels.len().clamp(1, 3),
    };
    let top = heights.iter().copied().max().unwrap_or(2);
    let mut legend = vec![
        note(GEOMETRIC),
        note("one panel per configuration, one line per layer"),
        LegendEntry {
            label: "layer 0, the bottom (next to the input)".into(),
            color: layer_color(0, top),
            dash: 0,
            mark: Mark::Line,
        },
        LegendEntry {
            label: "layer L − 1, the top (read by the head)".into(),
            color: layer_color(top - 1, top),
            dash: 0,
            mark: Mark::Line,
        },
    ];
    if top > 2 {
        legend.push(note("layers between: lighter = lower"));
    }
    let when = if initial {
        "at initialisation (step 0)"
    } else {
        "after training (last probe)"
    };
    Some(Figure {
        title: format!(
            "{}: gradient at each layer reaching back d steps {when}, mean over probe sequences",
            data.manifest.name
        ),
        x: Axis {
            label: "distance d (steps back from the last step)".into(),
            ..Axis::default()
        },
        y: Axis {
            label: "‖∂E_T/∂h^(l)_(T−d)‖, layer l (log scale)".into(),
            log: true,
            ..Axis::default()
        },
        own_axes: true,
        columns,
        panels,
        legend,
    })
}
