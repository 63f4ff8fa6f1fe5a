//! The chart data model: a `Figure` is panels of aggregated series, reference lines and
//! markers, with its axes' scales and ticks decided; drawing it (`draw`) decides nothing. Also
//! the small numerical helpers every family of figures shares (aggregation over seeds,
//! smoothing, palettes, ticks).

use std::collections::BTreeMap;

use plotters::style::RGBColor;

use super::choose::Grouping;

/// Categorical line colours (the "tab10" palette).
const TAB10: [RGBColor; 10] = [
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

/// Anchors of the ordered palette for numeric colour keys, from light yellow-green through
/// teal and blue to dark purple (lightness falls monotonically, so the order reads in grey too).
const RAMP: [(f64, f64, f64); 5] = [
    (180.0, 210.0, 60.0),
    (60.0, 175.0, 110.0),
    (30.0, 130.0, 140.0),
    (50.0, 80.0, 150.0),
    (70.0, 20.0, 90.0),
];

/// The colour of value `index` of `n`: categorical, or an even walk along the ordered ramp.
pub fn color(index: usize, n: usize, sequential: bool) -> RGBColor {
    if !sequential || n <= 1 {
        return TAB10[index % TAB10.len()];
    }
    let t = index.min(n - 1) as f64 / (n - 1) as f64 * (RAMP.len() - 1) as f64;
    let i = (t.floor() as usize).min(RAMP.len() - 2);
    let f = t - i as f64;
    let mix = |a: f64, b: f64| (a + (b - a) * f).round() as u8;
    let (a, b) = (RAMP[i], RAMP[i + 1]);
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// A line's colour in its grouping.
pub fn line_color(g: &Grouping, color_index: usize) -> RGBColor {
    color(color_index, g.color_values.len(), g.sequential)
}

/// Dash patterns (dash, gap) in pixels; (0, 0) is solid.
pub const DASHES: [(u32, u32); 4] = [(0, 0), (10, 6), (3, 4), (16, 4)];

/// How a series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// A line through the means with the seed range shaded, dots when there are few points.
    Line,
    /// Dots with the seed range as an error bar, not joined (categories, `none`, scatter).
    Points,
    /// A thin dotted line with hollow dots: an upper bound drawn beside the measured line.
    Bound,
}

/// (x, mean, min, max) of one x of a series.
pub type Point = (f64, f64, f64, f64);

/// One aggregated series: for each x, the mean and the range over the runs (seeds).
#[derive(Clone, Debug)]
pub struct Series {
    /// Its colour.
    pub color: RGBColor,
    /// Index into `DASHES`.
    pub dash: usize,
    /// How it is drawn.
    pub style: Style,
    /// (x, mean, min, max), x increasing; in axis coordinates (log₁₀ on log axes).
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// A horizontal reference line (baseline, clip threshold, a factor of 1).
#[derive(Clone, Debug)]
pub struct HLine {
    /// Height, in axis coordinates.
    pub y: f64,
    /// Text written just above its left end.
    pub label: String,
    /// Its colour.
    pub color: RGBColor,
}

/// One panel of a figure.
#[derive(Clone, Debug, Default)]
pub struct Panel {
    /// Caption above the panel.
    pub title: String,
    /// The data.
    pub series: Vec<Series>,
    /// Horizontal reference lines.
    pub hlines: Vec<HLine>,
    /// Reference curves (a baseline that depends on x, the diagonal), drawn dashed in black.
    pub ref_curves: Vec<Vec<(f64, f64)>>,
    /// Light vertical separators (before the `none` slot of a numeric axis).
    pub vlines: Vec<f64>,
    /// x positions of diverged runs, drawn as crosses along the top edge in their line's colour.
    pub diverged: Vec<(f64, RGBColor)>,
}

/// What a legend entry shows beside its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    /// A short line in the entry's dash pattern.
    Line,
    /// A cross (a diverged run).
    Cross,
    /// A dotted line with a hollow dot (a bound).
    Bound,
    /// A filled dot (a run of a scatter chart).
    Dot,
    /// Nothing: a line of explanation.
    Text,
}

/// A legend entry.
#[derive(Clone, Debug)]
pub struct LegendEntry {
    /// Its text.
    pub label: String,
    /// Its colour.
    pub color: RGBColor,
    /// Index into `DASHES`.
    pub dash: usize,
    /// Its mark.
    pub mark: Mark,
}

impl LegendEntry {
    /// A dashed reference line's entry (a baseline, a threshold, a factor of 1).
    pub fn dashed(label: &str, color: RGBColor) -> Self {
        Self {
            label: label.into(),
            color,
            dash: 1,
            mark: Mark::Line,
        }
    }
}

/// How an axis is scaled and labelled.
#[derive(Clone, Debug, Default)]
pub struct Axis {
    /// The label under (or beside) the axis.
    pub label: String,
    /// Values are log₁₀ of the quantity; ticks are labelled with the quantity.
    pub log: bool,
    /// Tick positions and their labels; `None` lets the drawing choose ticks.
    pub ticks: Option<Vec<(f64, String)>>,
    /// A fixed range; `None` fits the data (y: robustly, see `draw`).
    pub range: Option<(f64, f64)>,
}

/// Everything needed to draw one chart.
#[derive(Clone, Debug)]
pub struct Figure {
    /// The title across the top.
    pub title: String,
    /// The x axis.
    pub x: Axis,
    /// The y axis.
    pub y: Axis,
    /// Every panel gets its own axis ranges (else all panels share them).
    pub own_axes: bool,
    /// Panels per row.
    pub columns: usize,
    /// The panels, row by row.
    pub panels: Vec<Panel>,
    /// The legend, in order.
    pub legend: Vec<LegendEntry>,
}

/// Mean, min and max over runs of y at each x, from per-run (x, y) lists; non-finite y are
/// skipped.
pub fn aggregate(per_run: &[Vec<(f64, f64)>]) -> Vec<(f64, f64, f64, f64)> {
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
pub fn smooth(points: &[(f64, f64)], window: usize) -> Vec<(f64, f64)> {
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

/// Label of a tick on a log axis: the quantity 10^v, in plain notation between 0.001 and
/// 1000, else as a power of ten.
pub fn pow10_label(v: f64) -> String {
    let q = 10f64.powf(v);
    if (1e-3..1e4).contains(&q) {
        let s = format!("{q:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else if (v - v.round()).abs() < 1e-9 {
        format!("1e{}", v.round())
    } else {
        format!("{q:.1e}")
    }
}

/// Ticks for a log axis spanning log₁₀ values `lo..hi`: whole powers of ten over two decades
/// or more (every other one past twelve), else 1–2–5 steps, else every digit.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let mut ticks = Vec::new();
    let (a, b) = (lo.floor() as i32, hi.ceil() as i32);
    let span = hi - lo;
    let mantissas: &[f64] = if span >= 2.0 {
        &[1.0]
    } else if span >= 0.7 {
        &[1.0, 2.0, 3.0, 5.0]
    } else {
        &[1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    };
    // Past twelve decades, every 2nd, 3rd, 5th, 10th… power: round exponents stay labelled.
    let stride = [1, 2, 3, 5, 10, 20, 25, 50, 100]
        .into_iter()
        .find(|s| (b - a) / s <= 12)
        .unwrap_or(((b - a) / 12).max(1));
    for e in a..=b {
        if span >= 2.0 && e.rem_euclid(stride) != 0 {
            continue;
        }
        for &m in mantissas {
            let v = m.log10() + e as f64;
            if v >= lo - 1e-9 && v <= hi + 1e-9 {
                ticks.push((v, pow10_label(v)));
            }
        }
    }
    if ticks.len() < 3 {
        // Less than a factor of two: round values, evenly spaced in the quantity itself.
        ticks = linear_ticks(10f64.powf(lo), 10f64.powf(hi), 6)
            .into_iter()
            .filter(|(q, _)| *q > 0.0)
            .map(|(q, label)| (q.log10(), label))
            .collect();
    }
    ticks
}

/// About `n` evenly spaced ticks at round numbers (1, 2 or 5 times a power of ten) over `lo..hi`.
pub fn linear_ticks(lo: f64, hi: f64, n: usize) -> Vec<(f64, String)> {
    if hi.partial_cmp(&lo) != Some(std::cmp::Ordering::Greater) {
        return vec![(lo, format_number(lo))];
    }
    let raw = (hi - lo) / n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .map(|i| {
            let v = i as f64 * step;
            (v, format_number(v))
        })
        .collect()
}

/// A number as a tick label: no trailing zeros, no `-0`.
pub fn format_number(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    if v.abs() >= 1e5 || v.abs() < 1e-3 {
        return format!("{v:e}");
    }
    let s = format!("{v:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
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
        assert_eq!(pow10_label(2f64.log10()), "2");
        let t: Vec<String> = log_ticks(-3.2, 1.1).into_iter().map(|t| t.1).collect();
        assert_eq!(t, ["0.001", "0.01", "0.1", "1", "10"]);
        let t: Vec<String> = log_ticks(-0.6, 0.5).into_iter().map(|t| t.1).collect();
        assert_eq!(t, ["0.3", "0.5", "1", "2", "3"]);
        let t: Vec<String> = log_ticks(-118.0, 1.0).into_iter().map(|t| t.1).collect();
        assert_eq!(t[0], "1e-110");
        assert_eq!(t[t.len() - 1], "1");
        assert_eq!(t.len(), 12);
        let t: Vec<String> = log_ticks(2.1f64.log10(), 3.2f64.log10())
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(t, ["2.2", "2.4", "2.6", "2.8", "3", "3.2"]);
        let t: Vec<String> = linear_ticks(0.0, 2500.0, 6).into_iter().map(|t| t.1).collect();
        assert_eq!(t, ["0", "500", "1000", "1500", "2000", "2500"]);
    }

    #[test]
    fn ordered_palette_darkens_with_the_value() {
        let lightness = |c: RGBColor| 0.3 * c.0 as f64 + 0.59 * c.1 as f64 + 0.11 * c.2 as f64;
        let l: Vec<f64> = (0..7).map(|i| lightness(color(i, 7, true))).collect();
        assert!(l.windows(2).all(|w| w[1] < w[0]), "{l:?}");
        assert_eq!(color(3, 7, false), TAB10[3]);
    }
}
