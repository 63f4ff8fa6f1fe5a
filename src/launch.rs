//! "How to run it": prepares the results folder, trains the runs of a sweep (all of them, or one
//! shard of a cluster array) on a local rayon pool, records each completed run atomically so an
//! interrupted sweep resumes where it stopped, then assembles the tables, summary, report and
//! charts, and says which exit status the sweep deserves. `merge` joins shard folders.
//!
//! Outputs are identical whatever the number of threads, shards or interruptions: each run is a
//! pure function of its configuration, its record is written once it is complete, and the final
//! files are always assembled from the records in sweep order.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::claim::{self, CLAIMS, Claim, Holder, Lease};
use crate::output::{self, Manifest, ManifestRun, PlotChoice, SweepAxis};
use crate::record::{CurveRow, DecayRow, RunRow, SpectrumRow, Status};
use crate::report::{REPORT_MD, SUMMARY_CSV};
use crate::rnn::Cell;
use crate::run::{self, RunConfig, RunResult};
use crate::spec::{Spec, Value};
use crate::sweep::{canonical_json, fnv1a};

/// How to run a sweep.
#[derive(Clone, Debug)]
pub struct Options {
    /// Worker threads (runs in parallel).
    pub jobs: usize,
    /// Results folder.
    pub out: PathBuf,
    /// Rerun every run, discarding results already in `out`.
    pub force: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Run only this part of the sweep.
    pub shard: Option<Shard>,
    /// Set (by a SIGINT handler) to stop: no new run starts and runs in flight are abandoned at
    /// their next step; what is complete is written.
    pub stop: Option<&'static AtomicBool>,
    /// The lease of this process's claims and their heartbeat.
    pub lease: Lease,
    /// When every run left is held by another worker, wait for them (and take over those whose
    /// worker dies) instead of leaving.
    pub wait: bool,
}

/// One of `count` disjoint parts of a sweep: the runs whose position in the sweep is congruent
/// to `index` modulo `count` (interleaved, so each part mixes short and long runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// 0-based part number.
    pub index: usize,
    /// Number of parts.
    pub count: usize,
}

impl Shard {
    /// Parses `i/n` (0 ≤ i < n).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (i, n) = text
            .split_once('/')
            .ok_or_else(|| format!("--shard {text}: expected i/n, e.g. 0/4"))?;
        let index: usize = i
            .trim()
            .parse()
            .map_err(|_| format!("--shard {text}: `{i}` is not a whole number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| format!("--shard {text}: `{n}` is not a whole number"))?;
        if count == 0 || index >= count {
            return Err(format!("--shard {text}: need 0 ≤ i < n"));
        }
        Ok(Self { index, count })
    }

    /// The shard a cluster job array assigns, from `SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN`
    /// of `SLURM_ARRAY_TASK_COUNT`, or Kubernetes' `JOB_COMPLETION_INDEX` of `RUNNER_SHARD_COUNT`.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        let num = |name: &str| -> Result<Option<usize>, String> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse::<usize>()
                        .map_err(|_| format!("{name}={v} is not a whole number"))
                })
                .transpose()
        };
        if let (Some(id), Some(count)) = (num("SLURM_ARRAY_TASK_ID")?, num("SLURM_ARRAY_TASK_COUNT")?) {
            let min = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            return Self::parse(&format!("{}/{count}", id.saturating_sub(min))).map(Some);
        }
        if let (Some(id), Some(count)) = (num("JOB_COMPLETION_INDEX")?, num("RUNNER_SHARD_COUNT")?) {
            return Self::parse(&format!("{id}/{count}")).map(Some);
        }
        Ok(None)
    }

    /// Whether the run at sweep position `index` belongs to this shard.
    pub fn contains(&self, index: usize) -> bool {
        index % self.count == self.index
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// How a sweep went.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Runs that completed.
    pub ok: usize,
    /// Runs that diverged without clipping: the exploding-gradient phenomenon, a result.
    pub diverged_expected: usize,
    /// Runs that diverged although clipping was on.
    pub diverged_unexpected: usize,
    /// Runs that panicked.
    pub failed: usize,
    /// Runs whose completed record was reused instead of training again.
    pub reused: usize,
    /// Runs this process trained and recorded.
    pub trained: usize,
    /// Runs other worker processes recorded while this one ran.
    pub by_others: usize,
    /// Runs other workers were still training when this one left (`--no-wait`).
    pub left_to_others: usize,
    /// Runs this process trained but did not record: another worker had taken them over (this
    /// one was stopped for longer than the lease) or recorded them first.
    pub discarded: usize,
    /// Runs not completed because the sweep was interrupted (0 unless it was).
    pub interrupted: usize,
    /// Wall-clock seconds of the whole sweep.
    pub seconds: f64,
}

impl Outcome {
    /// Exit status: 130 if interrupted, 1 if any run failed or diverged although clipping was
    /// on, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.interrupted > 0 {
            130
        } else if self.failed > 0 || self.diverged_unexpected > 0 {
            1
        } else {
            0
        }
    }
}

/// The results folder for a spec: `--out` if given, else `<output.dir>/<name>`.
pub fn out_dir(spec: &Spec, out: Option<&Path>) -> PathBuf {
    match out {
        Some(p) => p.to_path_buf(),
        None => {
            let base = match &spec.base["output.dir"].value {
                Value::Str(s) => s.clone(),
                other => other.to_string(),
            };
            Path::new(&base).join(&spec.name)
        }
    }
}

/// Folder of the per-run completion records.
pub const RECORDS: &str = "records";

/// Whether a folder entry is a temporary file of ours (`.NAME.….tmp`), half of an atomic write
/// that another process may be making at this moment.
fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Checks the results folder before any work and says whether it holds earlier results (to
/// resume, or a sweep that other workers are draining, to join): an absent or empty folder
/// starts afresh; a folder whose manifest lists exactly these runs (same spec, same shard) is
/// resumed or joined; anything else is refused, unless `force`, which removes the files this
/// tool writes there (and nothing else) and starts afresh, but never while another worker
/// holds a live claim. The folder must be writable.
pub fn prepare_out(
    out: &Path,
    force: bool,
    run_ids: &[String],
    shard: Option<Shard>,
    lease: &Lease,
) -> Result<bool, Error> {
    if out.exists() && !out.is_dir() {
        return Err(Error::Usage(format!(
            "{} exists and is not a folder; choose another with --out",
            out.display()
        )));
    }
    let non_empty = out.exists()
        && std::fs::read_dir(out)
            .map_err(|e| Error::io(out, e))?
            .filter_map(|e| e.ok())
            .any(|e| !is_temporary(&e.file_name().to_string_lossy()));
    let resumes = if non_empty && force {
        let live = live_claims(out, run_ids, lease);
        if let Some((id, holder)) = live.first() {
            return Err(Error::Usage(format!(
                "{} has {} runs in training by other workers (run {id} by {holder}); --force would pull their results from under them. Wait for them (`runner status {}`), stop them, or use --out DIR",
                out.display(),
                live.len(),
                out.display()
            )));
        }
        for f in [
            output::RUNS_CSV,
            output::CURVES_CSV,
            output::DECAY_CSV,
            output::SPECTRUM_CSV,
            output::MANIFEST,
            SUMMARY_CSV,
            REPORT_MD,
        ] {
            let p = out.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        for d in ["checkpoints", "charts", RECORDS, CLAIMS] {
            let p = out.join(d);
            if p.exists() {
                std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        false
    } else if non_empty {
        let same = match output::read_manifest(out) {
            Ok(m) => {
                let ids: Vec<&str> = m.runs.iter().map(|r| r.run_id.as_str()).collect();
                ids == run_ids.iter().map(String::as_str).collect::<Vec<_>>() && m.shard == shard.map(|s| s.to_string())
            }
            Err(_) if !out.join(output::MANIFEST).exists() => {
                return Err(Error::Usage(format!(
                    "{} is not empty and holds no runner results; nothing was changed. Choose another folder with --out, or pass --force",
                    out.display()
                )));
            }
            Err(e) => return Err(Error::Usage(format!("{e}; pass --force to start afresh, or --out DIR"))),
        };
        if !same {
            return Err(Error::Usage(format!(
                "{} holds another spec (or shard); nothing was changed. Use --out DIR to write elsewhere, or --force to replace its results",
                out.display()
            )));
        }
        true
    } else {
        false
    };
    std::fs::create_dir_all(out).map_err(|e| unwritable(out, &e))?;
    // A folder we cannot write in is bad input, found before any run trains.
    let probe = out.join(format!(".write-test.{}.tmp", claim::unique_suffix()));
    std::fs::write(&probe, b"").map_err(|e| unwritable(out, &e))?;
    let _ = std::fs::remove_file(&probe);
    Ok(resumes)
}

/// The error for a results folder that cannot be created or written.
fn unwritable(out: &Path, e: &std::io::Error) -> Error {
    Error::Usage(format!(
        "cannot write in the results folder {}: {e}; choose a writable folder with --out",
        out.display()
    ))
}

/// The runs among `run_ids` that another worker process trains now (a live claim), with its
/// holder.
fn live_claims(out: &Path, run_ids: &[String], lease: &Lease) -> Vec<(String, String)> {
    let me = (claim::hostname(), std::process::id());
    let names = claim::listing(out);
    if names.is_empty() {
        return Vec::new();
    }
    run_ids
        .iter()
        .filter_map(|id| {
            let seen = claim::seen(out, &names, id, lease)?;
            let mine = seen
                .holder
                .as_ref()
                .is_some_and(|h| (h.host.as_str(), h.pid) == (me.0.as_str(), me.1));
            (!seen.stale && !mine).then(|| {
                let holder = seen.holder.map_or_else(|| "?".to_string(), |h| h.to_string());
                (id.clone(), holder)
            })
        })
        .collect()
}

/// The chart grouping the sweep's runs get from `plot.x`, `plot.color` and `plot.panel` (the
/// same choice `runner plot` makes from the finished tables; see docs/outputs.md).
pub fn plot_choice(spec: &Spec, runs: &[RunConfig]) -> PlotChoice {
    let setting = |k: &str| match &spec.base[k].value {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    };
    let settings = crate::plot::PlotSettings {
        x: setting("plot.x"),
        color: setting("plot.color"),
        panel: setting("plot.panel"),
        heatmap: crate::plot::PlotSettings::heatmap_setting(&setting("plot.heatmap")),
    };
    let columns = crate::plot::Columns {
        keys: runs
            .first()
            .map(|r| r.swept.iter().map(|(k, _)| k.to_string()).collect())
            .unwrap_or_default(),
        rows: runs
            .iter()
            .map(|r| r.swept.iter().map(|(_, v)| v.to_string()).collect())
            .collect(),
    };
    let layout = crate::plot::layout(&columns, &settings);
    PlotChoice {
        x: layout.x.key,
        color: layout.steps.color_key,
        panel: layout.steps.panel_keys.first().cloned(),
        panels: layout.steps.panel_keys,
    }
}

fn json_map(m: &BTreeMap<&'static str, Value>) -> BTreeMap<String, serde_json::Value> {
    m.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect()
}

/// The manifest written before any run starts (without an end time).
pub fn manifest(spec: &Spec, runs: &[RunConfig], threads: usize) -> Manifest {
    let settings: BTreeMap<&'static str, Value> = spec.base.iter().map(|(k, l)| (*k, l.value.clone())).collect();
    let sweep: Vec<SweepAxis> = spec
        .sweep
        .iter()
        .map(|(k, v, _)| SweepAxis {
            key: k.to_string(),
            values: v.iter().map(Value::to_json).collect(),
        })
        .collect();
    let variants: Vec<serde_json::Value> = spec
        .variants
        .iter()
        .map(|v| {
            let set: serde_json::Map<String, serde_json::Value> = v
                .settings
                .iter()
                .map(|(k, val)| (k.to_string(), val.to_json()))
                .collect();
            serde_json::json!({ "label": v.label, "settings": set })
        })
        .collect();
    // Keys added after hashes were first recorded count only when set away from their
    // default, so a spec that does not use them keeps the hash it had.
    let hashed: BTreeMap<&'static str, Value> = settings
        .iter()
        .filter(|(k, v)| {
            !matches!(**k, "plot.heatmap" | "output.formats")
                || crate::spec::keydef(k).is_none_or(|d| crate::spec::default_value(d) != **v)
        })
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let hash_input = format!(
        "{}|{}|{}",
        canonical_json(&hashed),
        serde_json::to_string(&sweep.iter().map(|a| (&a.key, &a.values)).collect::<Vec<_>>()).expect("json"),
        serde_json::to_string(&variants).expect("json")
    );
    Manifest {
        name: spec.name.clone(),
        description: spec.description.clone(),
        spec_file: spec.file.clone(),
        spec_hash: format!("{:016x}", fnv1a(hash_input.as_bytes())),
        program_version: env!("CARGO_PKG_VERSION").to_string(),
        git_commit: option_env!("RUNNER_GIT_COMMIT")
            .map(String::from)
            .filter(|s| !s.is_empty()),
        threads,
        isa: Some(crate::isa::Isa::current().name().to_string()),
        processor: output::processor_name(),
        started: output::now_rfc3339(),
        finished: None,
        settings: json_map(&settings),
        variants,
        sweep,
        plot: plot_choice(spec, runs),
        shard: None,
        runs: runs
            .iter()
            .map(|r| ManifestRun {
                run_id: r.id.clone(),
                swept: r.swept.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect(),
                config: json_map(&r.resolved),
            })
            .collect(),
    }
}

/// A failed run's row: the panic message, nothing measured.
fn failed_result(cfg: &RunConfig, message: String, seconds: f64) -> RunResult {
    let task = crate::task::Task::new(cfg.task.clone());
    RunResult {
        row: RunRow {
            run_id: cfg.id.clone(),
            swept: cfg.swept.iter().map(|(_, v)| v.to_string()).collect(),
            status: Status::Failed,
            steps: 0,
            final_loss: None,
            baseline_loss: task.baseline_loss(),
            final_accuracy: None,
            diverged_step: None,
            clipped_steps: 0,
            decay_factor: None,
            decay_factor_init: None,
            depth_factor: None,
            depth_factor_init: None,
            bound_factor: None,
            bound_factor_init: None,
            lyapunov_max_init: None,
            lyapunov_max: None,
            w_norm_init: None,
            w_norm_final: None,
            w_radius_init: None,
            w_radius_final: None,
            seconds,
            error: message,
        },
        curve: Vec::new(),
        decay: Vec::new(),
        spectrum: Vec::new(),
        init: None,
        last: None,
        probe_batch: None,
    }
}

/// A completed run's record: what `records/<id>.json` holds and the final files are built from.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunRecord {
    /// Its `runs.csv` row.
    pub row: RunRow,
    /// Its `curves.csv` rows.
    pub curve: Vec<CurveRow>,
    /// Its `grad_decay.csv` rows.
    pub decay: Vec<DecayRow>,
    /// Its `spectrum.csv` rows (none unless `probe.spectrum` > 0).
    #[serde(default)]
    pub spectrum: Vec<SpectrumRow>,
}

/// The record of a completed (ok or diverged) run.
fn record_path(out: &Path, id: &str) -> PathBuf {
    out.join(RECORDS).join(format!("{id}.json"))
}

/// The record of a failed run: it counts as done for the workers draining the sweep now, and is
/// removed (so the run is tried again) when a sweep starts or resumes with no worker left.
fn failed_path(out: &Path, id: &str) -> PathBuf {
    out.join(RECORDS).join(format!("{id}.failed.json"))
}

/// Reads a run's completion record; `None` if absent or unreadable (the run is then redone).
fn read_record(out: &Path, id: &str) -> Option<RunRecord> {
    read_record_at(&record_path(out, id), id)
}

fn read_record_at(path: &Path, id: &str) -> Option<RunRecord> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str::<RunRecord>(&text)
        .ok()
        .filter(|r| r.row.run_id == id)
}

/// A run's record of either kind, completed or failed.
fn read_any_record(out: &Path, id: &str) -> Option<RunRecord> {
    read_record(out, id).or_else(|| read_record_at(&failed_path(out, id), id))
}

/// Where each run of this process's part of the sweep stands, as this process knows it.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Slot {
    /// Not recorded yet: free, or claimed by another worker.
    Open,
    /// This process trains it now.
    Mine,
    /// Recorded (by anyone), or given up (interrupted).
    Closed,
}

/// What a worker thread gets when it asks for work.
enum Pick<'a> {
    /// A run it now holds the claim of.
    Run(&'a RunConfig, Claim),
    /// Nothing it can claim now: the open runs are all held by live claims.
    Wait,
    /// Every run is closed.
    Done,
}

/// The runs of one sweep that this process may train, longest first, and their slots.
struct Queue<'a> {
    out: &'a Path,
    me: Holder,
    lease: Lease,
    runs: Vec<&'a RunConfig>,
    slots: std::sync::Mutex<Vec<Slot>>,
}

impl<'a> Queue<'a> {
    /// The first open run whose claim this process can take (free, or stale), skipping those
    /// recorded meanwhile. A claim is taken before the record is looked at again, so a run
    /// recorded between the two looks is not trained twice.
    fn pick(&self) -> Result<Pick<'a>, Error> {
        let mut slots = self.slots.lock().expect("no worker panics while holding the queue");
        let mut waiting = false;
        for (i, cfg) in self.runs.iter().enumerate() {
            if slots[i] != Slot::Open {
                continue;
            }
            if read_any_record(self.out, &cfg.id).is_some() {
                slots[i] = Slot::Closed;
                continue;
            }
            let Some(claim) = claim::try_claim(self.out, &cfg.id, &self.me, &self.lease)? else {
                waiting = true;
                continue;
            };
            if read_any_record(self.out, &cfg.id).is_some() {
                claim::clear(self.out, &cfg.id);
                slots[i] = Slot::Closed;
                continue;
            }
            // A record that exists but cannot be read (cut short by a full disk) is the claim
            // holder's to replace.
            let _ = std::fs::remove_file(record_path(self.out, &cfg.id));
            slots[i] = Slot::Mine;
            return Ok(Pick::Run(cfg, claim));
        }
        Ok(if waiting { Pick::Wait } else { Pick::Done })
    }

    /// Puts `cfg`'s run in `slot`.
    fn set(&self, cfg: &RunConfig, slot: Slot) {
        let mut slots = self.slots.lock().expect("no worker panics while holding the queue");
        if let Some(i) = self.runs.iter().position(|r| r.id == cfg.id) {
            slots[i] = slot;
        }
    }
}

/// The claims this process holds, each with the flag its run reads at every step: set when the
/// heartbeat finds that another worker has taken the run over.
type Held = std::sync::Mutex<Vec<(Claim, std::sync::Arc<AtomicBool>)>>;

/// Refreshes every claim in `held` once per heartbeat until `done` is set; a claim found lost
/// raises its run's flag.
fn heartbeat(out: &Path, lease: &Lease, held: &Held, done: &AtomicBool) {
    let tick = Duration::from_millis(50);
    let mut last = Instant::now();
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(tick);
        if last.elapsed() < lease.heartbeat {
            continue;
        }
        last = Instant::now();
        let claims = held.lock().expect("no worker panics while holding the claims").clone();
        for (claim, lost) in claims {
            if !claim.beat(out) {
                lost.store(true, Ordering::Relaxed);
            }
        }
    }
}

/// What one run's training came to, for this process.
enum Trained {
    /// Recorded by this process (ok, diverged or failed), or interrupted (nothing recorded).
    Finished,
    /// Another worker took the run over (this one was stopped longer than the lease) or recorded
    /// it first: the result is discarded.
    Lost,
}

/// Runs a sweep (or this process's shard of it) into `opts.out`, which [`prepare_out`] must have
/// accepted, with any number of other worker processes draining the same folder: each run is
/// claimed before it trains (see [`crate::claim`]), runs already recorded are reused, and runs
/// other workers hold are waited for (unless `opts.wait` is off). Then every output is written
/// from the records (charts too when `charts` is set), once every run is recorded or no other
/// worker is left to do it.
pub fn run_sweep(
    spec: &Spec,
    runs: &[RunConfig],
    opts: &Options,
    checkpoints: bool,
    charts: bool,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    let out = &opts.out;
    let me = Holder::me(&output::now_rfc3339(), &opts.lease);
    let mine: Vec<&RunConfig> = runs
        .iter()
        .filter(|r| opts.shard.is_none_or(|s| s.contains(r.index)))
        .collect();
    let ids: Vec<String> = mine.iter().map(|r| r.id.clone()).collect();

    // The first worker writes the manifest; one that resumes (no other worker left) writes it
    // afresh and tries failed runs again; one that joins live workers keeps both.
    let mut manifest = manifest(spec, runs, opts.jobs);
    manifest.shard = opts.shard.map(|s| s.to_string());
    let json = serde_json::to_vec_pretty(&manifest).expect("manifests serialise");
    let first = claim::create_exclusive(&out.join(output::MANIFEST), &json, true)?;
    output::create_dir(&out.join(RECORDS))?;
    output::create_dir(&out.join(CLAIMS))?;
    if !first && live_claims(out, &ids, &opts.lease).is_empty() {
        output::write_manifest(out, &manifest)?;
        for id in &ids {
            let _ = std::fs::remove_file(failed_path(out, id));
        }
    }

    let recorded_before = |id: &str| read_any_record(out, id).is_some();
    let reused = ids.iter().filter(|id| recorded_before(id)).count();
    let mut todo: Vec<&RunConfig> = mine.iter().copied().filter(|r| !recorded_before(&r.id)).collect();
    // Longest runs first: the workers take the next run as they free up, so a sweep over lengths
    // does not leave one worker with all the long runs.
    todo.sort_by_key(|r| std::cmp::Reverse(run_cost(r)));
    let queue = Queue {
        out,
        me,
        lease: opts.lease,
        slots: std::sync::Mutex::new(vec![Slot::Open; todo.len()]),
        runs: todo,
    };

    let total_steps: u64 = queue.runs.iter().map(|r| r.train.steps).sum();
    let bar = ProgressBar::with_draw_target(
        Some(total_steps),
        if opts.quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:32}] {percent:>3}% steps, {msg} (eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let trained_here = AtomicUsize::new(0);
    let discarded = AtomicUsize::new(0);
    bar.set_message(format!("runs 0/{}", queue.runs.len()));

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {} worker threads: {e}", opts.jobs)))?;
    let stopped = || opts.stop.is_some_and(|s| s.load(Ordering::Relaxed));
    // Runs training now. A run's work is shared among ⌈threads / running⌉ of the pool's threads:
    // its own while every thread has a run, all of them once it trains alone (the sweep's tail).
    // (Split for threads that have runs of their own, a run's pieces all fell to its own thread
    // in smaller calls: the 12-run sweep's runs summed 2.44-2.46 s with two jobs against
    // 2.29-2.38 on one thread each, AMD EPYC family 26 model 2.)
    let running = AtomicUsize::new(0);
    let share = || opts.jobs.div_ceil(running.load(Ordering::Relaxed).max(1));
    let held: Held = std::sync::Mutex::new(Vec::new());
    let work = |cfg: &RunConfig, claim: Claim| -> Result<Trained, Error> {
        let lost = std::sync::Arc::new(AtomicBool::new(false));
        held.lock()
            .expect("no worker panics while holding the claims")
            .push((claim.clone(), lost.clone()));
        let release = || {
            held.lock()
                .expect("no worker panics while holding the claims")
                .retain(|(c, _)| c.run_id != claim.run_id);
        };
        let t0 = Instant::now();
        let on_step = || {
            bar.inc(1);
            !stopped() && !lost.load(Ordering::Relaxed)
        };
        running.fetch_add(1, Ordering::Relaxed);
        let result = catch_unwind(AssertUnwindSafe(|| run::train(cfg, &on_step, &share)));
        running.fetch_sub(1, Ordering::Relaxed);
        release();
        if lost.load(Ordering::Relaxed) || !claim.held(out) {
            return Ok(Trained::Lost);
        }
        let result = match result {
            Ok(Some(result)) => result,
            Ok(None) => {
                // Abandoned mid-run: nothing recorded, and the run is free for another worker.
                claim.release(out);
                return Ok(Trained::Finished);
            }
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic without a message".to_string());
                failed_result(cfg, message, t0.elapsed().as_secs_f64())
            }
        };
        if checkpoints {
            write_checkpoints(out, cfg, &result)?;
        }
        let record = RunRecord {
            row: result.row,
            curve: result.curve,
            decay: result.decay,
            spectrum: result.spectrum,
        };
        let status = record.row.status;
        let json = serde_json::to_vec(&record).expect("records serialise");
        // The record marks the run complete; it is created once, whoever finishes first.
        if status == Status::Failed {
            output::write_atomic(&failed_path(out, &cfg.id), &json)?;
        } else if !claim::create_exclusive(&record_path(out, &cfg.id), &json, true)? {
            return Ok(Trained::Lost);
        }
        claim::clear(out, &cfg.id);
        let n = trained_here.fetch_add(1, Ordering::Relaxed) + 1;
        bar.set_message(format!("runs {n}/{}", queue.runs.len()));
        Ok(Trained::Finished)
    };
    // One worker loop per thread of the pool, each claiming the next run (longest first) as it
    // frees up. No run waits in a queue as a rayon task, so a thread that waits for a share of a
    // product it gave away (`real::gemm`) can only pick up other shares, never start a second
    // run on top of its own; and a thread whose loop has ended (the sweep's tail) takes shares
    // of the products of the runs still going, so the cores stay busy. When nothing is left to
    // claim but other workers' runs, the process polls until they are recorded or their claims
    // go stale (then it takes them over).
    let finished = AtomicBool::new(false);
    let mut errors = Vec::new();
    let mut waiting_on_others = false;
    std::thread::scope(|s| {
        s.spawn(|| heartbeat(out, &opts.lease, &held, &finished));
        loop {
            let results: Vec<Result<Pick<'_>, Error>> = pool
                .broadcast(|_| {
                    loop {
                        if stopped() {
                            return Ok(Pick::Done);
                        }
                        match queue.pick() {
                            Ok(Pick::Run(cfg, claim)) => match work(cfg, claim) {
                                Ok(Trained::Lost) => {
                                    // Another worker has it: wait for its record like any other.
                                    discarded.fetch_add(1, Ordering::Relaxed);
                                    queue.set(cfg, Slot::Open);
                                }
                                Ok(_) => queue.set(cfg, Slot::Closed),
                                Err(e) => {
                                    queue.set(cfg, Slot::Closed);
                                    return Err(e);
                                }
                            },
                            other => return other,
                        }
                    }
                })
                .into_iter()
                .collect();
            let mut wait = false;
            for r in results {
                match r {
                    Ok(Pick::Wait) => wait = true,
                    Ok(_) => {}
                    Err(e) => errors.push(e),
                }
            }
            waiting_on_others = wait;
            if !wait || !opts.wait || stopped() || !errors.is_empty() {
                break;
            }
            // A quarter of a second: the sweep's tail waits at most that long for the last
            // record, and a look costs a listing of claims/ and a lookup per open run.
            let poll = opts.lease.heartbeat.min(Duration::from_millis(250));
            let until = Instant::now() + poll;
            while Instant::now() < until && !stopped() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        finished.store(true, Ordering::Relaxed);
    });
    bar.finish_and_clear();
    if let Some(e) = errors.into_iter().next() {
        return Err(e);
    }

    // The tables come from every record in the folder, whoever trained the run.
    let mut outcome = Outcome {
        reused,
        trained: trained_here.load(Ordering::Relaxed),
        discarded: discarded.load(Ordering::Relaxed),
        ..Outcome::default()
    };
    let mut records = Vec::with_capacity(mine.len());
    for cfg in &mine {
        let Some(record) = read_any_record(out, &cfg.id) else {
            if waiting_on_others && !stopped() {
                outcome.left_to_others += 1;
            } else {
                outcome.interrupted += 1;
            }
            continue;
        };
        match record.row.status {
            Status::Ok => outcome.ok += 1,
            Status::Failed => outcome.failed += 1,
            Status::Diverged if cfg.train.clip.norm.is_none() && cfg.train.clip.value.is_none() => {
                outcome.diverged_expected += 1
            }
            Status::Diverged => outcome.diverged_unexpected += 1,
        }
        records.push(record);
    }
    // (Saturating: records reused at the start could have been removed meanwhile.)
    outcome.by_others = records.len().saturating_sub(outcome.reused + outcome.trained);
    // A worker that leaves runs to others writes no tables: the last one to finish does.
    if outcome.left_to_others == 0 && (outcome.interrupted == 0 || live_claims(out, &ids, &opts.lease).is_empty()) {
        let mut manifest = output::read_manifest(out)?;
        finish(out, &mut manifest, &records, charts)?;
    }
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

/// Writes the final files of a results folder from the records of its runs (in sweep order):
/// the three tables, `summary.csv`, `report.md`, the charts, and the manifest with its end time.
pub fn finish(out: &Path, manifest: &mut Manifest, records: &[RunRecord], charts: bool) -> Result<(), Error> {
    let swept_keys: Vec<String> = manifest
        .runs
        .first()
        .map(|r| swept_order(manifest, r))
        .unwrap_or_default();
    let keys: Vec<&str> = swept_keys.iter().map(String::as_str).collect();
    let rows: Vec<RunRow> = records.iter().map(|r| r.row.clone()).collect();
    output::write_runs(out, &keys, &rows)?;
    output::write_table(
        &out.join(output::CURVES_CSV),
        records.iter().flat_map(|r| r.curve.iter()),
    )?;
    output::write_table(
        &out.join(output::DECAY_CSV),
        records.iter().flat_map(|r| r.decay.iter()),
    )?;
    output::write_spectrum(
        &out.join(output::SPECTRUM_CSV),
        records.iter().flat_map(|r| r.spectrum.iter()),
    )?;
    crate::report::write_summary(out, &manifest.name, &keys, &rows, manifest.has_stacks())?;
    if charts {
        crate::plot::draw_all(out, &[])?;
    }
    manifest.finished = Some(output::now_rfc3339());
    output::write_manifest(out, manifest)?;
    crate::report::write_report(out, manifest, charts)
}

/// The swept keys of a run in column order: `variant` first when present, then the sweep.
fn swept_order(manifest: &Manifest, run: &ManifestRun) -> Vec<String> {
    let mut keys = Vec::new();
    if run.swept.contains_key("variant") {
        keys.push("variant".to_string());
    }
    keys.extend(manifest.sweep.iter().map(|a| a.key.clone()));
    keys
}

/// Joins shard folders into `out`: every shard must come from the same spec; every run must be
/// recorded in one of them (missing runs are named and nothing is written); checkpoints are
/// copied. The result is the folder an unsharded run would have written (but for timing).
pub fn merge(shards: &[PathBuf], out: &Path, force: bool, charts: bool) -> Result<usize, Error> {
    let first = shards
        .first()
        .ok_or_else(|| Error::Usage("merge needs at least one shard folder".into()))?;
    let mut manifest = output::read_manifest(first)?;
    let ids: Vec<String> = manifest.runs.iter().map(|r| r.run_id.clone()).collect();
    let mut records: BTreeMap<String, (RunRecord, PathBuf)> = BTreeMap::new();
    for dir in shards {
        let m = output::read_manifest(dir)?;
        if m.runs.iter().map(|r| &r.run_id).ne(ids.iter()) {
            return Err(Error::Usage(format!(
                "{} holds a different sweep than {}; merge only shards of one spec",
                dir.display(),
                first.display()
            )));
        }
        manifest.threads = manifest.threads.max(m.threads);
        if m.started < manifest.started {
            manifest.started = m.started.clone();
        }
        for id in &ids {
            if !records.contains_key(id)
                && let Some(rec) = read_record(dir, id)
            {
                records.insert(id.clone(), (rec, dir.clone()));
            }
        }
    }
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !records.contains_key(*id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        let list = missing.iter().take(20).copied().collect::<Vec<_>>().join(", ");
        return Err(Error::Usage(format!(
            "{} of {} runs are in none of the shard folders: {list}{}; run the missing shards (or rerun them to finish interrupted runs), then merge again",
            missing.len(),
            ids.len(),
            if missing.len() > 20 { ", …" } else { "" }
        )));
    }
    manifest.shard = None;
    let lease = Lease::new(Lease::DEFAULT_SECONDS, None).expect("the default lease is valid");
    prepare_out(out, force, &ids, None, &lease)?;
    output::write_manifest(out, &manifest)?;
    output::create_dir(&out.join(RECORDS))?;
    let mut ordered = Vec::with_capacity(ids.len());
    for id in &ids {
        let (rec, dir) = records.remove(id).expect("checked above");
        let from = output::checkpoint_dir(dir.as_path(), id);
        if from.is_dir() {
            let to = output::checkpoint_dir(out, id);
            output::create_dir(&to)?;
            for f in ["init.safetensors", "final.safetensors"] {
                if from.join(f).exists() {
                    let bytes = std::fs::read(from.join(f)).map_err(|e| Error::io(&from.join(f), e))?;
                    output::write_atomic(&to.join(f), &bytes)?;
                }
            }
        }
        output::write_atomic(
            &record_path(out, id),
            &serde_json::to_vec(&rec).expect("records serialise"),
        )?;
        ordered.push(rec);
    }
    finish(out, &mut manifest, &ordered, charts)?;
    Ok(ordered.len())
}

/// A run's training work in multiply–adds, for ordering runs longest first:
/// steps · T · B · G·H · (H + D + O).
fn run_cost(cfg: &RunConfig) -> u128 {
    let t = crate::task::Task::new(cfg.task.clone()).seq_len() as u128;
    let (d, h, o) = (
        cfg.model.input as u128,
        cfg.model.hidden as u128,
        cfg.model.output as u128,
    );
    let g = cfg.model.cell.gates() as u128;
    u128::from(cfg.train.steps) * t * cfg.train.batch as u128 * g * h * (h + d + o)
}

fn write_checkpoints(out: &Path, cfg: &RunConfig, result: &RunResult) -> Result<(), Error> {
    let Some(probe) = &result.probe_batch else {
        return Ok(());
    };
    let dir = output::checkpoint_dir(out, &cfg.id);
    output::create_dir(&dir)?;
    let task = crate::task::Task::new(cfg.task.clone());
    let mut meta = serde_json::json!({
        "run_id": cfg.id,
        "cell": cfg.model.cell.name(),
        "activation": cfg.model.cell.activation().map_or("tanh", |a| a.name()),
        "dtype": cfg.model.dtype.name(),
        "loss": task.loss_name(),
        "vocab": task.vocab().iter().collect::<String>(),
        "config": json_map(&cfg.resolved),
    });
    // The fixed coefficients and bounds of the cells built since 2015, which the tensors do not
    // say either.
    match cfg.model.cell {
        Cell::CoRnn(c) => {
            meta["dt"] = c.dt.into();
            meta["gamma"] = c.gamma.into();
            meta["epsilon"] = c.epsilon.into();
        }
        Cell::Antisymmetric(c) => {
            meta["gamma"] = c.gamma.into();
            meta["epsilon"] = c.epsilon.into();
        }
        Cell::IndRnn(_) => meta["recurrent_max"] = cfg.model.cell_init.recurrent_max.into(),
        Cell::ExpRnn => {
            meta["lr_recurrent"] = cfg.train.lr_recurrent.unwrap_or(cfg.train.schedule.lr).into();
        }
        Cell::Rnn(_) | Cell::Lstm | Cell::Gru => {}
    }
    if cfg.model.layers > 1 {
        // A stack's wiring, which its tensors do not say (a one-layer checkpoint stays as it was).
        meta["layers"] = cfg.model.layers.into();
        meta["residual"] = cfg.model.residual.into();
    }
    if let Some(p) = &result.init {
        output::write_checkpoint(&dir.join("init.safetensors"), p, probe, &meta, cfg.model.dtype)?;
    }
    if let Some(p) = &result.last {
        output::write_checkpoint(&dir.join("final.safetensors"), p, probe, &meta, cfg.model.dtype)?;
    }
    Ok(())
}
