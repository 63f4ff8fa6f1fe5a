//! Regression checks on final loss: each run of a results folder against a baseline file,
//! matched by the run's configuration (its swept values), not by its position.
//!
//! The baseline is a CSV with two columns, `config` (e.g. `task.seq_len=10; train.seed=0`) and
//! `final_loss` (empty for a run that diverged). A run passes when its final loss is within
//! `atol + rtol·|baseline|` of the baseline, or lower (an improvement, reported).

use std::collections::BTreeMap;
use std::path::Path;

use crate::Error;
use crate::output;
use crate::record::fmt_num;

/// Default relative tolerance.
pub const RTOL: f64 = 1e-3;
/// Default absolute tolerance.
pub const ATOL: f64 = 1e-6;

/// What a comparison found for one configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within tolerance.
    Same,
    /// Lower than the baseline beyond tolerance (passes).
    Improved,
    /// Higher than the baseline beyond tolerance, or no final loss where the baseline had one.
    Regressed,
    /// In the baseline, not in the results.
    MissingNow,
    /// In the results, not in the baseline.
    MissingBaseline,
}

impl Verdict {
    /// Whether this verdict fails the check.
    pub fn fails(self) -> bool {
        matches!(
            self,
            Verdict::Regressed | Verdict::MissingNow | Verdict::MissingBaseline
        )
    }

    fn word(self) -> &'static str {
        match self {
            Verdict::Same => "ok",
            Verdict::Improved => "improved",
            Verdict::Regressed => "REGRESSED",
            Verdict::MissingNow => "MISSING (not run now)",
            Verdict::MissingBaseline => "MISSING (not in baseline)",
        }
    }
}

/// One line of the comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    /// The configuration.
    pub config: String,
    /// Baseline final loss (outer `None`: not in the baseline; inner: diverged).
    pub baseline: Option<Option<f64>>,
    /// Current final loss, same convention.
    pub now: Option<Option<f64>>,
    /// The verdict.
    pub verdict: Verdict,
}

/// The configuration label of each run of a results folder, with its final loss.
pub fn final_losses(dir: &Path) -> Result<BTreeMap<String, Option<f64>>, Error> {
    let table = output::read_runs(dir)?;
    Ok(table
        .rows
        .iter()
        .map(|row| {
            let label = if table.swept_keys.is_empty() {
                "(single run)".to_string()
            } else {
                table
                    .swept_keys
                    .iter()
                    .zip(&row.swept)
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            (label, row.final_loss)
        })
        .collect())
}

/// Reads a baseline file, naming the line of any malformed row.
pub fn read_baseline(path: &Path) -> Result<BTreeMap<String, Option<f64>>, Error> {
    let data = |line: Option<u64>, message: String| Error::Data {
        path: path.to_path_buf(),
        line,
        message,
    };
    let (mut r, header) = output::open_csv(path)?;
    if header != ["config", "final_loss"] {
        return Err(data(Some(1), "expected the header `config,final_loss`".into()));
    }
    let mut out = BTreeMap::new();
    for (i, rec) in r.records().enumerate() {
        let line = i as u64 + 2;
        let rec = rec.map_err(|e| data(Some(line), e.to_string()))?;
        let loss = match &rec[1] {
            "" => None,
            s => Some(
                s.parse::<f64>()
                    .ok()
                    .filter(|x| x.is_finite())
                    .ok_or_else(|| data(Some(line), format!("final_loss `{s}` is not a finite number")))?,
            ),
        };
        if out.insert(rec[0].to_string(), loss).is_some() {
            return Err(data(Some(line), format!("configuration `{}` is listed twice", &rec[0])));
        }
    }
    Ok(out)
}

/// Writes (or replaces) a baseline file from a results folder.
pub fn bless(dir: &Path, baseline: &Path) -> Result<usize, Error> {
    let losses = final_losses(dir)?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| Error::Data {
        path: baseline.to_path_buf(),
        line: None,
        message: e.to_string(),
    };
    w.write_record(["config", "final_loss"]).map_err(err)?;
    for (config, loss) in &losses {
        w.write_record([config.as_str(), &fmt_num(*loss)]).map_err(err)?;
    }
    if let Some(parent) = baseline.parent().filter(|p| !p.as_os_str().is_empty()) {
        output::create_dir(parent)?;
    }
    output::write_atomic(baseline, &w.into_inner().expect("in-memory writer"))?;
    Ok(losses.len())
}

/// Compares every configuration of the results with the baseline.
pub fn compare(
    now: &BTreeMap<String, Option<f64>>,
    base: &BTreeMap<String, Option<f64>>,
    rtol: f64,
    atol: f64,
) -> Vec<Line> {
    let mut configs: Vec<&String> = base.keys().chain(now.keys()).collect();
    configs.sort();
    configs.dedup();
    configs
        .into_iter()
        .map(|c| {
            let (b, n) = (base.get(c).copied(), now.get(c).copied());
            let verdict = match (b, n) {
                (None, _) => Verdict::MissingBaseline,
                (_, None) => Verdict::MissingNow,
                (Some(None), Some(None)) => Verdict::Same,
                (Some(Some(_)), Some(None)) => Verdict::Regressed,
                (Some(None), Some(Some(_))) => Verdict::Improved,
                (Some(Some(b)), Some(Some(n))) => {
                    if (n - b).abs() <= atol + rtol * b.abs() {
                        Verdict::Same
                    } else if n < b {
                        Verdict::Improved
                    } else {
                        Verdict::Regressed
                    }
                }
            };
            Line {
                config: c.clone(),
                baseline: b,
                now: n,
                verdict,
            }
        })
        .collect()
}

/// The comparison as a plain-text table, one line per configuration.
pub fn table(lines: &[Line]) -> String {
    let show = |x: Option<Option<f64>>| match x {
        None => "–".to_string(),
        Some(None) => "diverged".to_string(),
        Some(Some(v)) => format!("{v:.6e}"),
    };
    let width = lines.iter().map(|l| l.config.chars().count()).max().unwrap_or(6).max(6);
    let mut t = format!(
        "{:<width$}  {:>13}  {:>13}  {:>11}  verdict\n",
        "config", "baseline", "now", "rel. diff"
    );
    for l in lines {
        let diff = match (l.baseline, l.now) {
            (Some(Some(b)), Some(Some(n))) if b != 0.0 => format!("{:+.2e}", (n - b) / b.abs()),
            _ => "–".into(),
        };
        t.push_str(&format!(
            "{:<width$}  {:>13}  {:>13}  {:>11}  {}\n",
            l.config,
            show(l.baseline),
            show(l.now),
            diff,
            l.verdict.word()
        ));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_tolerance_and_direction() {
        let base: BTreeMap<String, Option<f64>> = [
            ("a", Some(1.0)),
            ("b", Some(1.0)),
            ("c", Some(1.0)),
            ("d", None),
            ("e", Some(1.0)),
            ("g", Some(0.5)),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into();
        let now: BTreeMap<String, Option<f64>> = [
            ("a", Some(1.0005)),
            ("b", Some(0.9)),
            ("c", Some(1.1)),
            ("d", None),
            ("e", None),
            ("f", Some(1.0)),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into();
        let v: Vec<Verdict> = compare(&now, &base, 1e-3, 0.0).iter().map(|l| l.verdict).collect();
        use Verdict::*;
        assert_eq!(
            v,
            [Same, Improved, Regressed, Same, Regressed, MissingBaseline, MissingNow]
        );
    }
}
