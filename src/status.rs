//! `runner status DIR`: where a sweep stands while any number of workers drain it: runs done,
//! running (which worker, for how long), stale (their worker is gone; the next worker to look
//! takes them over), pending and failed, the mean run time so far and an estimate of the time
//! left. Read from the folder alone (manifest, records, claims), so it works from any machine
//! that sees the folder.

use std::path::Path;

use serde::Serialize;

use crate::Error;
use crate::claim::{self, Lease};
use crate::launch::RECORDS;
use crate::output;
use crate::record::{RunRow, Status as RunStatus};

/// One run in training.
#[derive(Clone, Debug, Serialize)]
pub struct Running {
    /// The run.
    pub run_id: String,
    /// Its worker, `host:pid` (`?` if its claim could not be read).
    pub worker: String,
    /// Seconds since its last heartbeat.
    pub heartbeat_age_seconds: f64,
    /// The claim's generation: 0, or how many times the run was taken over.
    pub generation: u64,
}

/// Where a sweep stands.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Runs in the sweep (this folder's shard of it).
    pub runs: usize,
    /// Runs recorded as ok or diverged.
    pub done: usize,
    /// Runs recorded as failed.
    pub failed: usize,
    /// Runs in training under a live claim.
    pub running: Vec<Running>,
    /// Runs whose claim is stale: their worker died or stopped.
    pub stale: Vec<Running>,
    /// Runs nobody has claimed yet.
    pub pending: usize,
    /// Distinct live workers.
    pub workers: usize,
    /// Mean wall time of the recorded runs, seconds (`None` before the first).
    pub mean_run_seconds: Option<f64>,
    /// Estimated seconds until every run is recorded: the runs left times the mean run time,
    /// shared among the live workers (at least one).
    pub seconds_left: Option<f64>,
}

/// Reads the state of the sweep in `dir`, judging claims whose holder left no lease by `lease`.
pub fn read(dir: &Path, lease: &Lease) -> Result<Report, Error> {
    let manifest = output::read_manifest(dir)?;
    let names = claim::listing(dir);
    let mut report = Report {
        runs: manifest.runs.len(),
        ..Report::default()
    };
    let mut seconds = Vec::new();
    let mut workers = std::collections::BTreeSet::new();
    for run in &manifest.runs {
        let id = run.run_id.as_str();
        let row = |name: String| -> Option<RunRow> {
            let text = std::fs::read_to_string(dir.join(RECORDS).join(name)).ok()?;
            let value: serde_json::Value = serde_json::from_str(&text).ok()?;
            serde_json::from_value(value.get("row")?.clone()).ok()
        };
        if let Some(r) = row(format!("{id}.json")) {
            report.done += 1;
            if r.status != RunStatus::Failed {
                seconds.push(r.seconds);
            }
            continue;
        }
        if row(format!("{id}.failed.json")).is_some() {
            report.failed += 1;
            continue;
        }
        match claim::seen(dir, &names, id, lease) {
            Some(seen) => {
                let worker = seen.holder.as_ref().map_or_else(|| "?".into(), |h| h.to_string());
                let entry = Running {
                    run_id: id.to_string(),
                    worker: worker.clone(),
                    heartbeat_age_seconds: seen.age.as_secs_f64(),
                    generation: seen.generation,
                };
                if seen.stale {
                    report.stale.push(entry);
                } else {
                    workers.insert(worker);
                    report.running.push(entry);
                }
            }
            None => report.pending += 1,
        }
    }
    report.workers = workers.len();
    if !seconds.is_empty() {
        let mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
        report.mean_run_seconds = Some(mean);
        let left = report.pending + report.running.len() + report.stale.len();
        report.seconds_left = Some(left as f64 * mean / report.workers.max(1) as f64);
    }
    Ok(report)
}

/// The report as text for a terminal.
pub fn text(dir: &Path, r: &Report) -> String {
    let mut s = format!(
        "{}: {} runs: {} done, {} running, {} stale, {} pending, {} failed\n",
        dir.display(),
        r.runs,
        r.done,
        r.running.len(),
        r.stale.len(),
        r.pending,
        r.failed
    );
    for (what, list) in [("running", &r.running), ("stale", &r.stale)] {
        for run in list {
            s.push_str(&format!(
                "  {what} {} on {}, last heartbeat {:.0} s ago{}\n",
                run.run_id,
                run.worker,
                run.heartbeat_age_seconds,
                if run.generation > 0 {
                    format!(
                        ", taken over {} time{}",
                        run.generation,
                        if run.generation == 1 { "" } else { "s" }
                    )
                } else {
                    String::new()
                }
            ));
        }
    }
    match (r.mean_run_seconds, r.seconds_left) {
        (Some(mean), Some(left)) => s.push_str(&format!(
            "mean run time {mean:.1} s; about {} left with {} worker{}\n",
            human_seconds(left),
            r.workers.max(1),
            if r.workers.max(1) == 1 { "" } else { "s" }
        )),
        _ => s.push_str("no run recorded yet: no estimate of the time left\n"),
    }
    s
}

/// `42 s`, `3 min 5 s`, `2 h 10 min`.
fn human_seconds(s: f64) -> String {
    let s = s.round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_person_says_them() {
        assert_eq!(human_seconds(42.4), "42 s");
        assert_eq!(human_seconds(185.0), "3 min 5 s");
        assert_eq!(human_seconds(7800.0), "2 h 10 min");
    }
}
