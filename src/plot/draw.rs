//! Drawing a `Figure`: the backends (PNG and SVG, each written atomically), the panel grid,
//! axes and ticks, series, reference lines and the legend strip. It decides nothing about
//! what a chart shows; the same routine draws every figure on both backends.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use super::FAMILY;
use super::figure::{DASHES, Figure, Mark, Panel, Series, Style, linear_ticks, log_ticks};
use crate::Error;
use crate::output;

/// Width of the legend strip on the right, in pixels.
const LEGEND_WIDTH: u32 = 370;

/// Writes `fig` as `<name>.png` and `<name>.svg` in `dir`, each atomically.
pub fn save(fig: &Figure, dir: &Path, name: &str) -> Result<Vec<PathBuf>, Error> {
    let cols = fig.columns.clamp(1, fig.panels.len().max(1));
    let rows = fig.panels.len().div_ceil(cols).max(1);
    let legend_rows = fig.legend.len() as u32;
    let size = (
        (LEGEND_WIDTH + 10 + 480 * cols as u32).max(1300),
        (90 + 380 * rows as u32).max(110 + 24 * legend_rows),
    );

    let png = dir.join(format!("{name}.png"));
    // A name of its own: two workers finishing one sweep together may draw the same chart.
    let tmp = dir.join(format!(".{name}.{}.tmp.png", crate::claim::unique_suffix()));
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
