//! Drawing a chart: the backends (PNG, SVG and PDF, each file written atomically), the panel
//! grid, axes and ticks, series, reference lines and the legend strip of a `Figure`, and the
//! cells and colour bar of a `Heatmap`. It decides nothing about what a chart shows; the same
//! routine draws every chart on every backend.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::FAMILY;
use super::figure::{DASHES, Figure, Mark, Panel, Series, Style, linear_ticks, log_ticks};
use super::heatmap::{Heatmap, cell_label, viridis};
use crate::Error;
use crate::output;

/// Width of the legend strip on the right, in pixels.
const LEGEND_WIDTH: u32 = 370;

/// A chart to draw: series on axes ([`Figure`]) or a grid of coloured cells ([`Heatmap`]).
pub enum Chart {
    /// Lines, dots, bands and reference lines in panels.
    Lines(Figure),
    /// The final-loss heatmap.
    Heat(Heatmap),
}

/// The file formats a chart is written in (`output.formats`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A bitmap, `<name>.png`.
    Png,
    /// Vector, `<name>.svg`.
    Svg,
    /// Vector with the font embedded, `<name>.pdf`.
    Pdf,
}

impl Format {
    /// Every format, in the order files are written.
    pub const ALL: [Format; 3] = [Format::Png, Format::Svg, Format::Pdf];

    /// The file extension, also the name `output.formats` lists.
    pub fn ext(self) -> &'static str {
        match self {
            Format::Png => "png",
            Format::Svg => "svg",
            Format::Pdf => "pdf",
        }
    }
}

/// The size of a chart in pixels.
fn size(chart: &Chart) -> (u32, u32) {
    match chart {
        Chart::Lines(fig) => {
            let cols = fig.columns.clamp(1, fig.panels.len().max(1));
            let rows = fig.panels.len().div_ceil(cols).max(1);
            let legend_rows = fig.legend.len() as u32;
            (
                (LEGEND_WIDTH + 10 + 480 * cols as u32).max(1300),
                (90 + 380 * rows as u32).max(110 + 24 * legend_rows),
            )
        }
        Chart::Heat(hm) => {
            let cols = hm.columns.clamp(1, hm.panels.len().max(1));
            let rows = hm.panels.len().div_ceil(cols).max(1);
            let panel_w = (140 + 78 * hm.x_values.len() as u32).max(430);
            let panel_h = (150 + 46 * hm.y_values.len() as u32).max(360);
            (
                (LEGEND_WIDTH + 10 + panel_w * cols as u32).max(1300),
                (70 + panel_h * rows as u32).max(480),
            )
        }
    }
}

/// Draws `chart` on any backend.
fn render<DB: DrawingBackend>(chart: &Chart, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
    match chart {
        Chart::Lines(fig) => {
            let cols = fig.columns.clamp(1, fig.panels.len().max(1));
            let rows = fig.panels.len().div_ceil(cols).max(1);
            draw(fig, root, cols, rows)
        }
        Chart::Heat(hm) => draw_heat(hm, root),
    }
}

/// Writes `chart` as `<name>.<ext>` in `dir` for each of `formats`, each file atomically, and
/// removes the files of the formats left out (so a folder never holds a stale chart beside a
/// fresh one).
pub fn save(chart: &Chart, dir: &Path, name: &str, formats: &[Format]) -> Result<Vec<PathBuf>, Error> {
    let size = size(chart);
    let mut written = Vec::new();
    for format in Format::ALL {
        let path = dir.join(format!("{name}.{}", format.ext()));
        if !formats.contains(&format) {
            if path.exists() {
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
            continue;
        }
        let plot_err = |message: String| Error::Plot {
            path: path.clone(),
            message,
        };
        match format {
            Format::Png => {
                // A name of its own: two workers finishing one sweep together may draw the same chart.
                let tmp = dir.join(format!(".{name}.{}.tmp.png", crate::claim::unique_suffix()));
                let drawn = {
                    let root = BitMapBackend::new(&tmp, size).into_drawing_area();
                    render(chart, &root)
                        .map_err(plot_err)
                        .and_then(|_| root.present().map_err(|e| plot_err(e.to_string())))
                };
                if let Err(e) = drawn {
                    let _ = std::fs::remove_file(&tmp); // never leave a half-written image behind
                    return Err(e);
                }
                std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            }
            Format::Svg => {
                let mut text = String::new();
                {
                    let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
                    render(chart, &root).map_err(plot_err)?;
                    root.present().map_err(|e| plot_err(e.to_string()))?;
                }
                output::write_atomic(&path, text.as_bytes())?;
            }
            Format::Pdf => {
                let bytes = super::pdf::render(size, |root| render(chart, root)).map_err(plot_err)?;
                output::write_atomic(&path, &bytes)?;
            }
        }
        written.push(path);
    }
    Ok(written)
}

/// Removes every file of chart `name` from `dir` (a chart no longer drawn).
pub fn remove(dir: &Path, name: &str) -> Result<(), Error> {
    for format in Format::ALL {
        let path = dir.join(format!("{name}.{}", format.ext()));
        if path.exists() {
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
    }
    Ok(())
}

/// Draws the heatmap: its panels of cells with the values written in them, and the colour bar
/// with its ticks, the baseline and what the marks mean in the strip on the right.
fn draw_heat<DB: DrawingBackend>(hm: &Heatmap, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(&hm.title, (FAMILY, 22)).map_err(err)?;
    let (plots, bar_area) = root.split_horizontally(root.dim_in_pixel().0 - LEGEND_WIDTH);
    let cols = hm.columns.clamp(1, hm.panels.len().max(1));
    let rows = hm.panels.len().div_ceil(cols).max(1);
    let (nx, ny) = (hm.x_values.len(), hm.y_values.len());
    let (lo, hi) = hm.range;
    let fill = |log: f64| {
        let (r, g, b) = viridis((log - lo) / (hi - lo));
        RGBColor(r, g, b)
    };
    let areas = plots.split_evenly((rows, cols));
    for (pi, (panel, area)) in hm.panels.iter().zip(&areas).enumerate() {
        let xk: Vec<f64> = (0..nx).map(|i| i as f64).collect();
        let yk: Vec<f64> = (0..ny).map(|i| i as f64).collect();
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FAMILY, 17))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(
                Ticked::new(-0.5..nx as f64 - 0.5, xk),
                Ticked::new(-0.5..ny as f64 - 0.5, yk),
            )
            .map_err(err)?;
        let label = |values: &[String], v: f64| {
            let i = v.round();
            if (v - i).abs() < 1e-9 && i >= 0.0 {
                values.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let x_fmt = |v: &f64| label(&hm.x_values, *v);
        let y_fmt = |v: &f64| label(&hm.y_values, *v);
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(&hm.x_label)
            .y_desc(if pi % cols == 0 { hm.y_label.as_str() } else { "" })
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 14))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .draw()
            .map_err(err)?;
        for (yi, row) in panel.cells.iter().enumerate() {
            for (xi, cell) in row.iter().enumerate() {
                let (x, y) = (xi as f64, yi as f64);
                let corners = [(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)];
                let (color, text_color) = match cell.log_mean {
                    Some(v) => {
                        let c = fill(v);
                        let light = 0.3 * c.0 as f64 + 0.59 * c.1 as f64 + 0.11 * c.2 as f64 > 140.0;
                        (c, if light { BLACK } else { WHITE })
                    }
                    None if cell.runs > 0 => (RGBColor(200, 200, 200), BLACK),
                    None => (WHITE, BLACK),
                };
                chart
                    .draw_series(std::iter::once(Rectangle::new(corners, color.filled())))
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Rectangle::new(corners, WHITE.stroke_width(2))))
                    .map_err(err)?;
                let mut lines: Vec<String> = Vec::new();
                match cell.log_mean {
                    Some(v) => lines.push(cell_label(v)),
                    None if cell.runs == 0 => lines.push("no run".into()),
                    None if cell.diverged == cell.runs => lines.push("all diverged".into()),
                    None => lines.push("no loss".into()),
                }
                if cell.diverged > 0 && cell.log_mean.is_some() {
                    lines.push(format!("{} of {} diverged", cell.diverged, cell.runs));
                }
                let centre = chart.backend_coord(&(x, y));
                let base = area.get_base_pixel();
                let n = lines.len() as i32;
                for (i, line) in lines.iter().enumerate() {
                    let size = if i == 0 { 14 } else { 11 };
                    let style = TextStyle::from((FAMILY, size).into_font())
                        .color(&text_color)
                        .pos(Pos::new(HPos::Center, VPos::Center));
                    let dy = (2 * i as i32 - (n - 1)) * 9;
                    area.draw(&Text::new(
                        line.clone(),
                        (centre.0 - base.0, centre.1 - base.1 + dy),
                        style,
                    ))
                    .map_err(err)?;
                }
                if cell.diverged > 0 {
                    // A cross in the cell's top right corner: some seed diverged here.
                    let at = chart.backend_coord(&(x + 0.5, y + 0.5));
                    area.draw(&Cross::new(
                        (at.0 - base.0 - 10, at.1 - base.1 + 10),
                        5,
                        text_color.stroke_width(2),
                    ))
                    .map_err(err)?;
                }
            }
        }
    }

    // The colour bar: the scale from the lowest cell (bottom) to the highest, log ticks, the
    // baseline; under it what the marks mean.
    let bar = bar_area.margin(50, 10, 10, 10);
    let (_, h) = bar.dim_in_pixel();
    let (top, bottom) = (48i32, (h as i32 - 130).max(140));
    let (left, right) = (0i32, 28i32);
    let text = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
    bar.draw(&Text::new(
        "final loss: geometric mean over seeds".to_string(),
        (0, 0),
        text.clone(),
    ))
    .map_err(err)?;
    bar.draw(&Text::new("(log scale)".to_string(), (0, 16), text.clone()))
        .map_err(err)?;
    let y_of = |v: f64| bottom - ((v - lo) / (hi - lo) * (bottom - top) as f64).round() as i32;
    let steps = 96;
    for i in 0..steps {
        let (a, b) = (
            bottom - (bottom - top) * i / steps,
            bottom - (bottom - top) * (i + 1) / steps,
        );
        let v = lo + (hi - lo) * (i as f64 + 0.5) / steps as f64;
        // One pixel of overlap: no seam between steps on vector backends.
        bar.draw(&Rectangle::new(
            [(left, b), (right, (a + 1).min(bottom))],
            fill(v).filled(),
        ))
        .map_err(err)?;
    }
    bar.draw(&Rectangle::new([(left, top), (right, bottom)], BLACK.stroke_width(1)))
        .map_err(err)?;
    let small = TextStyle::from((FAMILY, 13).into_font())
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    for (v, label) in log_ticks(lo, hi) {
        let y = y_of(v);
        bar.draw(&PathElement::new(
            vec![(right, y), (right + 6, y)],
            BLACK.stroke_width(1),
        ))
        .map_err(err)?;
        if hm.capped && y - top < 14 {
            continue; // the cap's own label stands there
        }
        bar.draw(&Text::new(label, (right + 10, y), small.clone()))
            .map_err(err)?;
    }
    if hm.capped {
        bar.draw(&Text::new(
            format!("≥ {}", cell_label(hi)),
            (right + 10, top),
            small.clone(),
        ))
        .map_err(err)?;
    }
    for &b in hm.baselines.iter().filter(|b| (lo..=hi).contains(*b)) {
        let y = y_of(b);
        bar.draw(&PathElement::new(
            vec![(left - 6, y), (right + 6, y)],
            RED.stroke_width(3),
        ))
        .map_err(err)?;
        let style = TextStyle::from((FAMILY, 13).into_font())
            .color(&RED)
            .pos(Pos::new(HPos::Left, VPos::Center));
        bar.draw(&Text::new(
            format!("task baseline {}", cell_label(b)),
            (right + 90, y),
            style,
        ))
        .map_err(err)?;
    }
    let notes = [
        "× in a corner: some seed diverged (its value is",
        "    the mean of the seeds that completed)",
        "grey: every seed diverged or failed",
    ];
    for (i, line) in notes.iter().enumerate() {
        bar.draw(&Text::new(
            line.to_string(),
            (0, bottom + 24 + 20 * i as i32),
            text.clone(),
        ))
        .map_err(err)?;
    }
    if hm.capped {
        bar.draw(&Text::new(
            "≥: losses beyond 10× the baseline share the top colour".to_string(),
            (0, bottom + 24 + 20 * notes.len() as i32),
            text,
        ))
        .map_err(err)?;
    }
    Ok(())
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

/// A robust y range: from the 2nd percentile of the bands' lower edges to the 98th of their
/// upper edges, always including the reference lines. A single exploding run cannot flatten
/// every other line; values outside are drawn at the edge.
fn robust_y(panels: &[Panel]) -> (f64, f64) {
    let edges = |pick: fn(&(f64, f64, f64, f64)) -> f64| -> Vec<f64> {
        let mut v: Vec<f64> = panels
            .iter()
            .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().map(pick)))
            .filter(|v| v.is_finite())
            .collect();
        v.sort_by(f64::total_cmp);
        v
    };
    let (lows, highs) = (edges(|q| q.2), edges(|q| q.3));
    let refs = panels.iter().flat_map(|p| {
        p.hlines
            .iter()
            .map(|h| h.y)
            .chain(p.ref_curves.iter().flatten().map(|q| q.1))
    });
    if lows.is_empty() {
        return range(refs);
    }
    let q = |v: &[f64], f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
    let lo = refs.clone().fold(q(&lows, 0.02), f64::min);
    let hi = refs.fold(q(&highs, 0.98), f64::max);
    padded(lo, hi)
}

/// The x range of panels: their data, crosses and reference curves.
fn x_range(panels: &[Panel]) -> (f64, f64) {
    let xs = panels.iter().flat_map(|p| {
        p.series
            .iter()
            .flat_map(|s| s.points.iter().map(|q| q.0))
            .chain(p.diverged.iter().map(|d| d.0))
            .chain(p.vlines.iter().copied())
    });
    range(xs)
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
    let (plots, legend_area) = root.split_horizontally(root.dim_in_pixel().0 - LEGEND_WIDTH);

    // Shared axes so panels compare at a glance, unless the figure asks for its own per panel.
    let axes = |panels: &[Panel]| {
        let x = match (&fig.x.range, &fig.x.ticks) {
            (Some(r), _) => *r,
            (None, Some(t)) if !t.is_empty() => {
                // Tick positions widen the range, so every labelled value is inside.
                let (lo, hi) = x_range(panels);
                let (tl, th) = (t[0].0, t[t.len() - 1].0);
                let (dl, dh) = (lo.min(tl), hi.max(th));
                let min_pad = if t.len() == 1 { 0.3 } else { 0.0 }; // one tick: room around it
                let pad = ((dh - dl) * 0.05).max(min_pad);
                (dl - pad, dh + pad)
            }
            _ => x_range(panels),
        };
        let y = fig.y.range.unwrap_or_else(|| robust_y(panels));
        (x, y)
    };
    let shared = axes(&fig.panels);

    let areas = plots.split_evenly((rows, cols));
    for (pi, (panel, area)) in fig.panels.iter().zip(&areas).enumerate() {
        let ((x0, x1), (y0, y1)) = if fig.own_axes {
            axes(std::slice::from_ref(panel))
        } else {
            shared
        };
        let x_ticks: Vec<(f64, String)> = match &fig.x.ticks {
            Some(t) => t.clone(),
            None if fig.x.log => log_ticks(x0, x1),
            None => linear_ticks(x0, x1, 8),
        };
        let y_ticks: Vec<(f64, String)> = match &fig.y.ticks {
            Some(t) => t.clone(),
            None if fig.y.log => log_ticks(y0, y1),
            None => linear_ticks(y0, y1, 8),
        };
        let label_of = |ticks: &[(f64, String)], v: f64| {
            ticks
                .iter()
                .find(|t| (t.0 - v).abs() < 1e-9 * (1.0 + v.abs()))
                .map(|t| t.1.clone())
                .unwrap_or_default()
        };
        let xk: Vec<f64> = x_ticks.iter().map(|t| t.0).collect();
        let yk: Vec<f64> = y_ticks.iter().map(|t| t.0).collect();
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FAMILY, 17))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(Ticked::new(x0..x1, xk), Ticked::new(y0..y1, yk))
            .map_err(err)?;
        let x_fmt = |v: &f64| label_of(&x_ticks, *v);
        let y_fmt = |v: &f64| label_of(&y_ticks, *v);
        chart
            .configure_mesh()
            .x_desc(&fig.x.label)
            .y_desc(if pi % cols == 0 { fig.y.label.as_str() } else { "" })
            .label_style((FAMILY, 13))
            .axis_desc_style((FAMILY, 14))
            .x_label_formatter(&x_fmt)
            .y_label_formatter(&y_fmt)
            .bold_line_style(BLACK.mix(0.12))
            .draw()
            .map_err(err)?;
        let clamp_y = |y: f64| y.clamp(y0, y1);

        for &x in &panel.vlines {
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(x, y0), (x, y1)],
                    4,
                    4,
                    BLACK.mix(0.35).stroke_width(1),
                ))
                .map_err(err)?;
        }
        for s in &panel.series {
            let color = s.color;
            let line: Vec<(f64, f64)> = s.points.iter().map(|p| (p.0, clamp_y(p.1))).collect();
            match s.style {
                Style::Line => {
                    if s.points.len() > 1 && s.points.iter().any(|p| p.3 > p.2) {
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
                    let style = color.stroke_width(2);
                    match DASHES[s.dash % DASHES.len()] {
                        (0, _) => chart.draw_series(LineSeries::new(line.clone(), style)).map(|_| ()),
                        (dash, gap) => chart
                            .draw_series(DashedLineSeries::new(line.clone(), dash, gap, style))
                            .map(|_| ()),
                    }
                    .map_err(err)?;
                    if line.len() <= 12 {
                        chart
                            .draw_series(line.iter().map(|&p| Circle::new(p, 3, color.filled())))
                            .map_err(err)?;
                    }
                    if line.len() == 1 {
                        error_bars(&mut chart, s, &clamp_y).map_err(err)?;
                    }
                }
                Style::Points => {
                    error_bars(&mut chart, s, &clamp_y).map_err(err)?;
                    chart
                        .draw_series(line.iter().map(|&p| Circle::new(p, 4, color.filled())))
                        .map_err(err)?;
                }
                Style::Bound => {
                    chart
                        .draw_series(DashedLineSeries::new(line.clone(), 2, 4, color.stroke_width(1)))
                        .map_err(err)?;
                    chart
                        .draw_series(line.iter().map(|&p| Circle::new(p, 4, color.stroke_width(1))))
                        .map_err(err)?;
                }
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
                .draw_series(std::iter::once(Cross::new((x, y), 6, c.stroke_width(2))))
                .map_err(err)?;
        }
    }

    // The legend, drawn by hand in its own strip so it never covers data.
    let legend = legend_area.margin(50, 10, 10, 10);
    let style = TextStyle::from((FAMILY, 14).into_font()).color(&BLACK);
    for (i, e) in fig.legend.iter().enumerate() {
        let y = 10 + 24 * i as i32;
        let pts = vec![(0, y + 7), (36, y + 7)];
        match e.mark {
            Mark::Text => (),
            Mark::Cross => legend
                .draw(&Cross::new((18, y + 7), 6, e.color.stroke_width(2)))
                .map_err(err)?,
            Mark::Dot => legend
                .draw(&Circle::new((18, y + 7), 4, e.color.filled()))
                .map_err(err)?,
            Mark::Bound => {
                legend
                    .draw(&DashedPathElement::new(pts, 2, 4, e.color.stroke_width(1)))
                    .map_err(err)?;
                legend
                    .draw(&Circle::new((18, y + 7), 4, e.color.stroke_width(1)))
                    .map_err(err)?
            }
            Mark::Line => match DASHES[e.dash % DASHES.len()] {
                (0, _) => legend
                    .draw(&PathElement::new(pts, e.color.stroke_width(3)))
                    .map_err(err)?,
                (dash, gap) => legend
                    .draw(&DashedPathElement::new(pts, dash, gap, e.color.stroke_width(3)))
                    .map_err(err)?,
            },
        }
        let x = if e.mark == Mark::Text { 0 } else { 44 };
        legend
            .draw(&Text::new(e.label.clone(), (x, y), style.clone()))
            .map_err(err)?;
    }
    Ok(())
}

/// A linear f64 axis whose ticks (and grid lines) are exactly the given positions.
struct Ticked {
    inner: plotters::coord::types::RangedCoordf64,
    ticks: Vec<f64>,
}

impl Ticked {
    fn new(range: std::ops::Range<f64>, ticks: Vec<f64>) -> Self {
        Self {
            inner: range.into(),
            ticks,
        }
    }
}

impl Ranged for Ticked {
    type FormatOption = plotters::coord::ranged1d::DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }

    fn key_points<H: plotters::coord::ranged1d::KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }

    fn range(&self) -> std::ops::Range<f64> {
        self.inner.range()
    }
}

/// Vertical bars from each point's min to its max, with short caps.
fn error_bars<DB: DrawingBackend, X, Y>(
    chart: &mut ChartContext<DB, Cartesian2d<X, Y>>,
    s: &Series,
    clamp_y: &dyn Fn(f64) -> f64,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let style = s.color.stroke_width(2);
    for p in s.points.iter().filter(|p| p.3 > p.2) {
        let (lo, hi) = (clamp_y(p.2), clamp_y(p.3));
        chart.draw_series(std::iter::once(PathElement::new(vec![(p.0, lo), (p.0, hi)], style)))?;
        for v in [lo, hi] {
            chart.draw_series(std::iter::once(
                EmptyElement::at((p.0, v)) + PathElement::new(vec![(-5, 0), (5, 0)], style),
            ))?;
        }
    }
    Ok(())
}
