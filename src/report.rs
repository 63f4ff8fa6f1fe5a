//! Seeds summarised (`summary.csv`) and the report a user pastes into their own
//! (`report.md`: the manifest's facts, the summary as a Markdown table, every chart).

use std::path::Path;

use crate::Error;
use crate::output::{self, Manifest};
use crate::record::{RunRow, Status, fmt_num};

/// The per-configuration summary table.
pub const SUMMARY_CSV: &str = "summary.csv";
/// The Markdown report.
pub const REPORT_MD: &str = "report.md";

/// n, mean, sample standard deviation, min and max of the present values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Values present.
    pub n: usize,
    /// Mean.
    pub mean: Option<f64>,
    /// Sample standard deviation (n − 1 in the denominator); absent below two values.
    pub std: Option<f64>,
    /// Smallest value.
    pub min: Option<f64>,
    /// Largest value.
    pub max: Option<f64>,
}

impl Stats {
    /// Statistics of the present values, summed in the given order.
    pub fn of(values: impl Iterator<Item = Option<f64>>) -> Self {
        let v: Vec<f64> = values.flatten().collect();
        if v.is_empty() {
            return Self::default();
        }
        let n = v.len();
        let mean = v.iter().sum::<f64>() / n as f64;
        let std = (n > 1).then(|| (v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1) as f64).sqrt());
        let min = v.iter().copied().fold(f64::INFINITY, f64::min);
        let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Self {
            n,
            mean: Some(mean),
            std,
            min: Some(min),
            max: Some(max),
        }
    }
}

/// One configuration (every swept key but the seed) and its runs.
pub struct Group {
    /// The configuration's values of the non-seed swept keys.
    pub config: Vec<String>,
    /// Its runs, in sweep order.
    pub rows: Vec<RunRow>,
}

/// Groups runs by configuration, in order of first appearance.
pub fn groups(keys: &[&str], rows: &[RunRow]) -> (Vec<String>, Vec<Group>) {
    let cols: Vec<usize> = (0..keys.len()).filter(|&i| keys[i] != "train.seed").collect();
    let names = cols.iter().map(|&i| keys[i].to_string()).collect();
    let mut out: Vec<Group> = Vec::new();
    for row in rows {
        let config: Vec<String> = cols.iter().map(|&i| row.swept[i].clone()).collect();
        match out.iter_mut().find(|g| g.config == config) {
            Some(g) => g.rows.push(row.clone()),
            None => out.push(Group {
                config,
                rows: vec![row.clone()],
            }),
        }
    }
    (names, out)
}

/// Whether every seed of a configuration completed below its task's baseline.
fn beats_baseline(g: &Group) -> bool {
    g.rows
        .iter()
        .all(|r| r.status == Status::Ok && r.final_loss.is_some_and(|l| l < r.baseline_loss))
}

/// Writes `summary.csv`: one row per configuration with n, the number of `ok` runs, and n, mean,
/// std, min, max of `final_loss`, `final_accuracy` and `decay_factor`, the baseline, and whether
/// the configuration beats its baseline in every seed.
pub fn write_summary(out: &Path, keys: &[&str], rows: &[RunRow]) -> Result<(), Error> {
    let (names, groups) = groups(keys, rows);
    let mut header = names.clone();
    header.extend(["runs", "runs_ok"].map(String::from));
    for m in ["final_loss", "final_accuracy", "decay_factor"] {
        for s in ["mean", "std", "min", "max"] {
            header.push(format!("{m}_{s}"));
        }
    }
    header.extend(["baseline_loss", "beats_baseline"].map(String::from));
    let path = out.join(SUMMARY_CSV);
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| Error::Data {
        path: path.clone(),
        line: None,
        message: e.to_string(),
    };
    w.write_record(&header).map_err(err)?;
    for g in &groups {
        let mut rec = g.config.clone();
        rec.push(g.rows.len().to_string());
        rec.push(g.rows.iter().filter(|r| r.status == Status::Ok).count().to_string());
        for stats in [
            Stats::of(g.rows.iter().map(|r| r.final_loss)),
            Stats::of(g.rows.iter().map(|r| r.final_accuracy)),
            Stats::of(g.rows.iter().map(|r| r.decay_factor)),
        ] {
            rec.extend([stats.mean, stats.std, stats.min, stats.max].map(fmt_num));
        }
        rec.push(fmt_num(g.rows.first().map(|r| r.baseline_loss)));
        rec.push(beats_baseline(g).to_string());
        w.write_record(&rec).map_err(err)?;
    }
    output::write_atomic(&path, &w.into_inner().expect("in-memory writer"))
}

/// A number in a Markdown cell: 4 significant digits.
fn md(x: Option<f64>) -> String {
    match x {
        Some(v) if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e5) => format!("{v:.3e}"),
        Some(v) => format!("{:.4}", v)
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string(),
        None => "–".into(),
    }
}

/// Writes `report.md` from the manifest and the final tables.
pub fn write_report(out: &Path, manifest: &Manifest, charts: bool) -> Result<(), Error> {
    let table = output::read_runs(out)?;
    let keys: Vec<&str> = table.swept_keys.iter().map(String::as_str).collect();
    let (names, groups) = groups(&keys, &table.rows);
    let count = |s: Status| table.rows.iter().filter(|r| r.status == s).count();
    let mut r = format!("# {}\n\n", manifest.name);
    if !manifest.description.trim().is_empty() {
        r.push_str(manifest.description.trim());
        r.push_str("\n\n");
    }
    r.push_str("| | |\n|---|---|\n");
    r.push_str(&format!(
        "| spec | `{}` (hash `{}`) |\n",
        manifest.spec_file, manifest.spec_hash
    ));
    r.push_str(&format!(
        "| program | runner {}{} |\n",
        manifest.program_version,
        manifest
            .git_commit
            .as_deref()
            .map(|c| format!(", commit `{}`", &c[..c.len().min(12)]))
            .unwrap_or_default()
    ));
    r.push_str(&format!("| threads | {} |\n", manifest.threads));
    r.push_str(&format!(
        "| started, finished (UTC) | {}, {} |\n",
        manifest.started,
        manifest.finished.as_deref().unwrap_or("–")
    ));
    r.push_str(&format!(
        "| runs | {}: {} ok, {} diverged, {} failed |\n",
        table.rows.len(),
        count(Status::Ok),
        count(Status::Diverged),
        count(Status::Failed)
    ));
    r.push_str(&format!(
        "| swept | {} |\n\n",
        if keys.is_empty() {
            "nothing".into()
        } else {
            keys.join(", ")
        }
    ));

    r.push_str("## Summary\n\nOne row per configuration; statistics over its seeds (mean ± sample standard deviation, [min, max]). ");
    r.push_str("*Beats baseline*: every seed completed with a final loss below the task's memoryless baseline.\n\n");
    let mut head: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    head.extend(
        [
            "seeds",
            "final loss",
            "final accuracy",
            "decay factor",
            "baseline",
            "beats baseline",
        ]
        .map(String::from),
    );
    r.push_str(&format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len())));
    for g in &groups {
        let cell = |s: Stats| match s.n {
            0 => "–".to_string(),
            1 => md(s.mean),
            _ => format!("{} ± {} [{}, {}]", md(s.mean), md(s.std), md(s.min), md(s.max)),
        };
        let ok = g.rows.iter().filter(|x| x.status == Status::Ok).count();
        let mut cells = g.config.clone();
        cells.push(if ok == g.rows.len() {
            ok.to_string()
        } else {
            format!("{ok} of {} ok", g.rows.len())
        });
        cells.push(cell(Stats::of(g.rows.iter().map(|x| x.final_loss))));
        cells.push(cell(Stats::of(g.rows.iter().map(|x| x.final_accuracy))));
        cells.push(cell(Stats::of(g.rows.iter().map(|x| x.decay_factor))));
        cells.push(md(g.rows.first().map(|x| x.baseline_loss)));
        cells.push(if beats_baseline(g) { "yes".into() } else { "no".into() });
        r.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    if charts {
        r.push_str("\n## Charts\n\nLines are geometric means over seeds, bands the range from the lowest to the highest seed; runner's docs/outputs.md explains how to read each chart.\n\n");
        for (name, title) in [
            ("grad_decay", "Gradient reaching back d steps, after training"),
            ("grad_decay_init", "Gradient reaching back d steps, at initialisation"),
            ("loss", "Training loss"),
            ("grad_norm", "Gradient norm before clipping"),
            ("final_loss", "Final evaluation loss"),
            ("final_accuracy", "Final evaluation accuracy"),
            ("decay_factor_init", "Per-step factor of the gradient at initialisation"),
            ("decay_factor", "Per-step factor of the gradient after training"),
            ("diverged", "Share of runs that diverged"),
            ("decay_vs_bound", "Measured per-step factor against its bound"),
            ("spectrum_init", "Lyapunov spectrum at initialisation"),
            ("spectrum", "Lyapunov spectrum after training"),
            ("lyapunov_max_init", "Largest Lyapunov exponent at initialisation"),
            ("lyapunov_max", "Largest Lyapunov exponent after training"),
        ] {
            // Charts drawn only for some sweeps (accuracy, the bound) are listed when present.
            if !out.join("charts").join(format!("{name}.png")).exists() {
                continue;
            }
            r.push_str(&format!("### {title}\n\n![{title}](charts/{name}.png)\n\n"));
        }
    }
    output::write_atomic(&out.join(REPORT_MD), r.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_use_the_sample_standard_deviation_and_skip_missing_values() {
        let s = Stats::of([Some(1.0), None, Some(3.0)].into_iter());
        assert_eq!((s.n, s.mean, s.min, s.max), (2, Some(2.0), Some(1.0), Some(3.0)));
        assert!((s.std.unwrap() - 2f64.sqrt()).abs() < 1e-15);
        assert_eq!(Stats::of([Some(5.0)].into_iter()).std, None);
        assert_eq!(Stats::of([None].into_iter()).n, 0);
    }
}
