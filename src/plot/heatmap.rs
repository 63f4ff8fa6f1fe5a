//! The `final_loss_heatmap`: two swept keys (`plot.heatmap`) as the x and y axes, one cell per
//! pair of values holding the geometric mean over seeds of the final loss on a log colour
//! scale, cells with diverged seeds marked, the other swept keys (but the seed) as panels. Like
//! the other families this only reduces the tables to plain data; `draw` draws it.

use super::Data;
use super::choose::{Columns, Layout, axis_values, short_key};
use super::summary::meaning;
use crate::record::Status;

/// One cell: the runs (seeds) of one pair of values in one panel.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cell {
    /// log₁₀ of the geometric mean of the final loss over the runs that completed with a
    /// positive loss; `None` when none did.
    pub log_mean: Option<f64>,
    /// Runs in the cell.
    pub runs: usize,
    /// Runs that completed (`ok`).
    pub ok: usize,
    /// Runs that diverged.
    pub diverged: usize,
}

/// One panel: a grid of cells for one combination of the other swept keys.
#[derive(Clone, Debug, PartialEq)]
pub struct HeatPanel {
    /// `key = value, …` of the panel keys (empty with none).
    pub title: String,
    /// Cells row by row, `cells[y][x]`, y = 0 at the bottom.
    pub cells: Vec<Vec<Cell>>,
}

/// Everything needed to draw the heatmap.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    /// The title across the top.
    pub title: String,
    /// The x axis' label (meaning and key).
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// The x key's values, left to right (numbers ascending, `none` last).
    pub x_values: Vec<String>,
    /// The y key's values, bottom to top.
    pub y_values: Vec<String>,
    /// Panels per row.
    pub columns: usize,
    /// The panels, in sweep order.
    pub panels: Vec<HeatPanel>,
    /// The colour scale, log₁₀ of the loss: the lowest cell or baseline to the highest cell,
    /// the top capped at ten times the largest baseline (cells above take the top colour).
    pub range: (f64, f64),
    /// Whether some cell lies above the cap.
    pub capped: bool,
    /// The tasks' baselines, log₁₀, marked on the colour bar.
    pub baselines: Vec<f64>,
}

/// A label for an axis: "learning rate — train.lr".
fn axis_label(key: &str) -> String {
    let m = meaning(key);
    if m == key { m } else { format!("{m} — {key}") }
}

/// The heatmap of `layout.heatmap`'s keys, or `None` when no pair is chosen.
pub(crate) fn figure(data: &Data, layout: &Layout) -> Option<Heatmap> {
    let (kx, ky) = layout.heatmap.as_ref()?;
    let columns = Columns::from(&data.table);
    let (x_values, y_values) = (axis_values(&columns, kx), axis_values(&columns, ky));
    let keys = &data.table.swept_keys;
    let (cx, cy) = (keys.iter().position(|k| k == kx)?, keys.iter().position(|k| k == ky)?);
    let panel_cols: Vec<usize> = (0..keys.len())
        .filter(|&i| i != cx && i != cy && keys[i] != "train.seed")
        .collect();
    let mut panel_values: Vec<Vec<String>> = Vec::new();
    let mut sums: Vec<Vec<Vec<(Cell, f64, usize)>>> = Vec::new(); // (cell, Σ log₁₀ loss, n)
    for row in &data.table.rows {
        let pv: Vec<String> = panel_cols.iter().map(|&i| row.swept[i].clone()).collect();
        let p = match panel_values.iter().position(|v| *v == pv) {
            Some(p) => p,
            None => {
                panel_values.push(pv);
                sums.push(vec![vec![(Cell::default(), 0.0, 0); x_values.len()]; y_values.len()]);
                sums.len() - 1
            }
        };
        let xi = x_values.iter().position(|v| *v == row.swept[cx])?;
        let yi = y_values.iter().position(|v| *v == row.swept[cy])?;
        let (cell, sum, n) = &mut sums[p][yi][xi];
        cell.runs += 1;
        match row.status {
            Status::Ok => {
                cell.ok += 1;
                if let Some(l) = row.final_loss.filter(|l| *l > 0.0 && l.is_finite()) {
                    *sum += l.log10();
                    *n += 1;
                }
            }
            Status::Diverged => cell.diverged += 1,
            Status::Failed => (),
        }
    }
    let panels: Vec<HeatPanel> = panel_values
        .iter()
        .zip(sums)
        .map(|(pv, grid)| HeatPanel {
            title: panel_cols
                .iter()
                .zip(pv)
                .map(|(&i, v)| format!("{} = {v}", short_key(&keys[i])))
                .collect::<Vec<_>>()
                .join(", "),
            cells: grid
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|(mut c, sum, n)| {
                            c.log_mean = (n > 0).then(|| sum / n as f64);
                            c
                        })
                        .collect()
                })
                .collect(),
        })
        .collect();
    let mut baselines: Vec<f64> = Vec::new();
    for r in &data.table.rows {
        let b = r.baseline_loss.log10();
        if b.is_finite() && !baselines.iter().any(|x| (x - b).abs() < 1e-12) {
            baselines.push(b);
        }
    }
    let values: Vec<f64> = panels
        .iter()
        .flat_map(|p| p.cells.iter().flatten().filter_map(|c| c.log_mean))
        .collect();
    // The baselines are on the scale: a cell's colour then says how far below them it lies.
    let lo = values.iter().chain(&baselines).copied().fold(f64::INFINITY, f64::min);
    let mut hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let cap = baselines.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 1.0;
    let capped = cap.is_finite() && hi > cap && lo < cap;
    if capped {
        hi = cap;
    }
    let range = if !lo.is_finite() {
        (-1.0, 0.0)
    } else if hi - lo < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let n = panels.len().max(1);
    Some(Heatmap {
        title: format!(
            "{}: final evaluation loss by {} and {}",
            data.manifest.name,
            meaning(kx),
            meaning(ky)
        ),
        x_label: axis_label(kx),
        y_label: axis_label(ky),
        x_values,
        y_values,
        columns: n.min(3),
        panels,
        range,
        capped,
        baselines,
    })
}

/// The "viridis" colour map (dark purple, blue, green, yellow), anchors at even steps: ordered
/// in lightness, legible to the colour-blind and in grey.
const VIRIDIS: [(f64, f64, f64); 9] = [
    (68.0, 1.0, 84.0),
    (71.0, 44.0, 122.0),
    (59.0, 81.0, 139.0),
    (44.0, 113.0, 142.0),
    (33.0, 144.0, 141.0),
    (39.0, 173.0, 129.0),
    (92.0, 200.0, 99.0),
    (170.0, 220.0, 50.0),
    (253.0, 231.0, 37.0),
];

/// The colour of `t` in 0..=1 (clamped) on the viridis map, low values dark.
pub fn viridis(t: f64) -> (u8, u8, u8) {
    let t = if t.is_finite() { t.clamp(0.0, 1.0) } else { 0.0 };
    let s = t * (VIRIDIS.len() - 1) as f64;
    let i = (s.floor() as usize).min(VIRIDIS.len() - 2);
    let f = s - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let mix = |p: f64, q: f64| (p + (q - p) * f).round() as u8;
    (mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A loss in a cell: three significant digits, powers of ten beyond 10⁴ and below 10⁻³.
pub fn cell_label(log10: f64) -> String {
    let v = 10f64.powf(log10);
    if (1e-3..1e4).contains(&v) {
        let digits = (2 - v.log10().floor() as i32).clamp(0, 5) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.1e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viridis_runs_dark_to_light() {
        assert_eq!(viridis(0.0), (68, 1, 84));
        assert_eq!(viridis(1.0), (253, 231, 37));
        assert_eq!(viridis(2.0), viridis(1.0));
        let l = |c: (u8, u8, u8)| 0.3 * c.0 as f64 + 0.59 * c.1 as f64 + 0.11 * c.2 as f64;
        let ls: Vec<f64> = (0..=10).map(|i| l(viridis(i as f64 / 10.0))).collect();
        assert!(ls.windows(2).all(|w| w[1] > w[0]), "{ls:?}");
    }

    #[test]
    fn cell_labels_keep_three_digits() {
        assert_eq!(cell_label(0.2036f64.log10()), "0.204");
        assert_eq!(cell_label(12.34f64.log10()), "12.3");
        assert_eq!(cell_label(92.3), "2.0e92");
        assert_eq!(cell_label(-5.0), "1.0e-5");
    }
}
