//! Regression checks on final loss: each run of a results folder against a baseline file,
//! matched by the run's configuration (its swept values), not by its position.
//!
//! The baseline is a CSV with two columns, `config` (e.g. `task.seq_len=10; train.seed=0`) and
//! `final_loss` (empty for a run that diverged). By run, a run passes when its final loss is
//! within `atol + rtol·|baseline|` of the baseline, or lower (an improvement, reported). By
//! configuration, the seeds of a configuration are pooled: its mean now against its mean in the
//! baseline, failing only beyond both the tolerance and twice the standard error of the
//! difference of the two means, so that a chaotic run's seed-to-seed spread is not a failure.
//!
//! The comparison is also written for CI systems: JUnit XML (one testcase per line) and a
//! Markdown table (GitHub's step summary).

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
    /// Baseline final loss (outer `None`: not in the baseline; inner: diverged); by
    /// configuration, the mean over the seeds that did not diverge.
    pub baseline: Option<Option<f64>>,
    /// Current final loss, same convention.
    pub now: Option<Option<f64>>,
    /// By configuration: the seeds (runs) on each side, (baseline, now), and how many diverged.
    pub seeds: Option<SeedCounts>,
    /// The difference allowed beyond which the line fails or improves: the tolerance, or by
    /// configuration the larger of the tolerance and twice the standard error of the
    /// difference of the means.
    pub allowed: f64,
    /// The verdict.
    pub verdict: Verdict,
}

/// Seeds behind a by-configuration line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedCounts {
    /// Runs in the baseline.
    pub baseline: usize,
    /// Runs now.
    pub now: usize,
    /// Of those, diverged in the baseline.
    pub diverged_baseline: usize,
    /// Diverged now.
    pub diverged_now: usize,
}

/// How runs are matched with the baseline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Each run (configuration and seed) against the same run in the baseline.
    Run,
    /// Each configuration's mean over its seeds against the baseline's, allowing for the seeds'
    /// spread.
    Config,
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

/// The keys of both maps, sorted, each once.
fn union<'a, V>(a: &'a BTreeMap<String, V>, b: &'a BTreeMap<String, V>) -> Vec<&'a String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Compares every configuration of the results with the baseline.
pub fn compare(
    now: &BTreeMap<String, Option<f64>>,
    base: &BTreeMap<String, Option<f64>>,
    rtol: f64,
    atol: f64,
) -> Vec<Line> {
    union(base, now)
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
                seeds: None,
                allowed: atol + rtol * b.flatten().map_or(0.0, f64::abs),
                verdict,
            }
        })
        .collect()
}

/// The configuration of a run's label: the label without its `train.seed=…` part.
pub fn config_of(label: &str) -> String {
    let parts: Vec<&str> = label.split("; ").filter(|p| !p.starts_with("train.seed=")).collect();
    if parts.is_empty() {
        "(all runs)".to_string()
    } else {
        parts.join("; ")
    }
}

/// Per-run final losses pooled by configuration, seeds in label order.
fn pool(losses: &BTreeMap<String, Option<f64>>) -> BTreeMap<String, Vec<Option<f64>>> {
    let mut out: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for (label, loss) in losses {
        out.entry(config_of(label)).or_default().push(*loss);
    }
    out
}

/// Mean and sample variance of the finite values (variance 0 with fewer than two).
fn mean_var(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 {
        values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var)
}

/// Compares each configuration's seeds with the baseline's. A configuration regresses when
/// more of its seeds diverge now than in the baseline, or when the mean final loss of the seeds
/// that did not diverge rose by more than both `atol + rtol·|baseline mean|` and
/// 2·√(s_b²/n_b + s_n²/n_n), twice the standard error of the difference of two means (s the
/// seeds' sample standard deviations, n their counts; 0 for a single seed). It improves by the
/// mirror rule; otherwise it is the same.
pub fn compare_by_config(
    now: &BTreeMap<String, Option<f64>>,
    base: &BTreeMap<String, Option<f64>>,
    rtol: f64,
    atol: f64,
) -> Vec<Line> {
    let (now, base) = (pool(now), pool(base));
    union(&base, &now)
        .into_iter()
        .map(|c| {
            let (b, n) = (base.get(c), now.get(c));
            let finite = |v: &Vec<Option<f64>>| -> Vec<f64> { v.iter().flatten().copied().collect() };
            let seeds = b.zip(n).map(|(b, n)| SeedCounts {
                baseline: b.len(),
                now: n.len(),
                diverged_baseline: b.len() - finite(b).len(),
                diverged_now: n.len() - finite(n).len(),
            });
            let summary = |v: Option<&Vec<Option<f64>>>| {
                v.map(|v| {
                    let f = finite(v);
                    (!f.is_empty()).then(|| mean_var(&f).0)
                })
            };
            let (mut verdict, mut allowed) = (Verdict::Same, 0.0);
            match (b, n, seeds) {
                (None, _, _) => verdict = Verdict::MissingBaseline,
                (_, None, _) => verdict = Verdict::MissingNow,
                (Some(bv), Some(nv), Some(s)) => {
                    let (fb, fnow) = (finite(bv), finite(nv));
                    if s.diverged_now > s.diverged_baseline {
                        verdict = Verdict::Regressed;
                    } else if fb.is_empty() && !fnow.is_empty() {
                        verdict = Verdict::Improved;
                    } else if !fb.is_empty() && !fnow.is_empty() {
                        let ((mb, vb), (mn, vn)) = (mean_var(&fb), mean_var(&fnow));
                        let se = (vb / fb.len() as f64 + vn / fnow.len() as f64).sqrt();
                        allowed = (atol + rtol * mb.abs()).max(2.0 * se);
                        verdict = if mn - mb > allowed {
                            Verdict::Regressed
                        } else if mb - mn > allowed || s.diverged_now < s.diverged_baseline {
                            Verdict::Improved
                        } else {
                            Verdict::Same
                        };
                    }
                }
                _ => unreachable!("seeds exist when both sides do"),
            }
            Line {
                config: c.clone(),
                baseline: summary(b),
                now: summary(n),
                seeds,
                allowed,
                verdict,
            }
        })
        .collect()
}

/// Relative difference of a line, `(now − baseline)/|baseline|`, when both are numbers.
fn rel_diff(l: &Line) -> Option<f64> {
    match (l.baseline, l.now) {
        (Some(Some(b)), Some(Some(n))) if b != 0.0 => Some((n - b) / b.abs()),
        _ => None,
    }
}

fn show(x: Option<Option<f64>>) -> String {
    match x {
        None => "–".to_string(),
        Some(None) => "diverged".to_string(),
        Some(Some(v)) => format!("{v:.6e}"),
    }
}

/// `2 of 3 seeds diverged`-style note of a by-configuration line.
fn seeds_note(l: &Line) -> String {
    match l.seeds {
        Some(s) => format!(
            "seeds {}/{} (diverged {}/{}), allowed ±{:.2e}",
            s.baseline, s.now, s.diverged_baseline, s.diverged_now, l.allowed
        ),
        None => String::new(),
    }
}

/// The comparison as JUnit XML: one testsuite, one testcase per line, a `<failure>` giving the
/// baseline, the value now and the relative difference for each failing line (GitLab, Jenkins
/// and GitHub's test reporters read it).
pub fn junit(lines: &[Line], suite: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;")
    };
    let failures = lines.iter().filter(|l| l.verdict.fails()).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str(&format!(
        "<testsuites name=\"runner check\" tests=\"{}\" failures=\"{failures}\">\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">\n",
        lines.len(),
        esc(suite),
        lines.len()
    ));
    for l in lines {
        x.push_str(&format!(
            "    <testcase classname=\"{}\" name=\"{}\"",
            esc(suite),
            esc(&l.config)
        ));
        if l.verdict.fails() {
            let diff = rel_diff(l).map_or("–".to_string(), |d| format!("{d:+.3e}"));
            let message = format!(
                "{}: baseline {}, now {}, relative difference {diff}",
                l.verdict.word(),
                show(l.baseline),
                show(l.now)
            );
            x.push_str(&format!(
                ">\n      <failure message=\"{}\" type=\"{}\">{}{}</failure>\n    </testcase>\n",
                esc(&message),
                esc(l.verdict.word()),
                esc(&message),
                esc(&if l.seeds.is_some() {
                    format!("; {}", seeds_note(l))
                } else {
                    String::new()
                })
            ));
        } else {
            x.push_str(" />\n");
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

/// The comparison as a Markdown table with a heading and a one-line verdict, for GitHub's job
/// summary (`$GITHUB_STEP_SUMMARY`) or any Markdown report.
pub fn markdown(lines: &[Line], title: &str, footer: &str) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut m = format!(
        "### {}\n\n| config | baseline | now | rel. diff | verdict |\n|---|---|---|---|---|\n",
        cell(title)
    );
    for l in lines {
        let diff = rel_diff(l).map_or("–".to_string(), |d| format!("{d:+.2e}"));
        let word = if l.verdict.fails() {
            format!("**{}**", l.verdict.word())
        } else {
            l.verdict.word().to_string()
        };
        m.push_str(&format!(
            "| {} | {} | {} | {diff} | {word} |\n",
            cell(&l.config),
            show(l.baseline),
            show(l.now)
        ));
    }
    m.push_str(&format!("\n{}\n\n", cell(footer)));
    m
}

/// The comparison as a plain-text table, one line per configuration.
pub fn table(lines: &[Line]) -> String {
    let width = lines.iter().map(|l| l.config.chars().count()).max().unwrap_or(6).max(6);
    let mut t = format!(
        "{:<width$}  {:>13}  {:>13}  {:>11}  verdict\n",
        "config", "baseline", "now", "rel. diff"
    );
    for l in lines {
        let diff = rel_diff(l).map_or("–".to_string(), |d| format!("{d:+.2e}"));
        let note = if l.seeds.is_some() {
            format!("  ({})", seeds_note(l))
        } else {
            String::new()
        };
        t.push_str(&format!(
            "{:<width$}  {:>13}  {:>13}  {:>11}  {}{note}\n",
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

    fn losses(items: &[(&str, Option<f64>)]) -> BTreeMap<String, Option<f64>> {
        items.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn by_config_allows_for_the_seeds_spread() {
        let s = |c: &str, seed: u32| format!("{c}; train.seed={seed}");
        let mk = |c: &str, vals: &[Option<f64>]| -> Vec<(String, Option<f64>)> {
            vals.iter().enumerate().map(|(i, v)| (s(c, i as u32), *v)).collect()
        };
        let mut base = Vec::new();
        let mut now = Vec::new();
        // a: chaotic seeds, mean up 10 % but well within twice the standard error: same.
        base.extend(mk("x=a", &[Some(0.10), Some(0.30), Some(0.20)]));
        now.extend(mk("x=a", &[Some(0.33), Some(0.11), Some(0.22)]));
        // b: tight seeds, mean up 10 %: regressed (as by run).
        base.extend(mk("x=b", &[Some(1.00), Some(1.01), Some(0.99)]));
        now.extend(mk("x=b", &[Some(1.10), Some(1.11), Some(1.09)]));
        // c: a seed diverges now that did not: regressed whatever the means.
        base.extend(mk("x=c", &[Some(0.5), Some(0.5)]));
        now.extend(mk("x=c", &[Some(0.4), None]));
        // d: down beyond the spread: improved.
        base.extend(mk("x=d", &[Some(2.0), Some(2.1)]));
        now.extend(mk("x=d", &[Some(1.0), Some(1.1)]));
        let as_map = |v: Vec<(String, Option<f64>)>| v.into_iter().collect::<BTreeMap<_, _>>();
        let lines = compare_by_config(&as_map(now.clone()), &as_map(base.clone()), 1e-3, 1e-6);
        let v: Vec<(&str, Verdict)> = lines.iter().map(|l| (l.config.as_str(), l.verdict)).collect();
        use Verdict::*;
        assert_eq!(
            v,
            [("x=a", Same), ("x=b", Regressed), ("x=c", Regressed), ("x=d", Improved)]
        );
        assert_eq!(lines[0].seeds.unwrap().now, 3);
        assert!((lines[0].baseline.unwrap().unwrap() - 0.2).abs() < 1e-15);
        // By run, the chaotic configuration a fails (its seed 0 rose from 0.10 to 0.33).
        let by_run = compare(&as_map(now), &as_map(base), 1e-3, 1e-6);
        assert!(
            by_run
                .iter()
                .any(|l| l.config == "x=a; train.seed=0" && l.verdict == Regressed)
        );
        assert_eq!(
            config_of("variant=GRU; task.seq_len=10; train.seed=1"),
            "variant=GRU; task.seq_len=10"
        );
        assert_eq!(config_of("train.seed=1"), "(all runs)");
    }

    #[test]
    fn junit_and_markdown_name_every_configuration_and_each_failure() {
        let base = losses(&[("a<1>", Some(1.0)), ("b", Some(1.0))]);
        let now = losses(&[("a<1>", Some(1.0)), ("b", Some(2.0))]);
        let lines = compare(&now, &base, 1e-3, 0.0);
        let x = junit(&lines, "ci & co");
        assert!(x.starts_with("<?xml"));
        assert!(x.contains("tests=\"2\" failures=\"1\""), "{x}");
        assert!(x.contains("name=\"a&lt;1&gt;\" />"), "{x}");
        assert!(
            x.contains("REGRESSED: baseline 1.000000e0, now 2.000000e0, relative difference +1.000e0"),
            "{x}"
        );
        assert!(x.contains("classname=\"ci &amp; co\""));
        assert_eq!(x.matches("<testcase").count(), 2);
        assert_eq!(x.matches("<failure").count(), 1);
        let m = markdown(&lines, "check", "2 configurations: 1 failing");
        assert!(
            m.contains("| b | 1.000000e0 | 2.000000e0 | +1.00e0 | **REGRESSED** |"),
            "{m}"
        );
    }
}
