//! "How to run it": prepares the results folder, trains every run of a sweep on a local rayon
//! pool, writes the tables, manifest, checkpoints and charts, and says which exit status the
//! sweep deserves.
//!
//! Outputs are identical whatever the number of threads: each run is a pure function of its
//! configuration, results are collected in sweep order, and nothing is summed across runs.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rayon::prelude::*;

use crate::Error;
use crate::output::{self, Manifest, ManifestRun, PlotChoice, SweepAxis};
use crate::record::{RunRow, Status};
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
    /// Replace results already in `out`.
    pub force: bool,
    /// No progress bar.
    pub quiet: bool,
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
    /// Wall-clock seconds of the whole sweep.
    pub seconds: f64,
}

impl Outcome {
    /// Exit status: 1 if any run failed or diverged although clipping was on, else 0.
    pub fn exit_code(&self) -> i32 {
        if self.failed > 0 || self.diverged_unexpected > 0 {
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

/// Refuses to write into a folder that already holds something, unless `force`; with `force`,
/// removes only the files this tool writes there.
pub fn prepare_out(out: &Path, force: bool) -> Result<(), Error> {
    if out.exists() {
        if !out.is_dir() {
            return Err(Error::Usage(format!(
                "{} exists and is not a folder; choose another with --out",
                out.display()
            )));
        }
        let non_empty = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?.next().is_some();
        if non_empty && !force {
            return Err(Error::Usage(format!(
                "{} already holds results; nothing was changed. Pass --force to replace them, or --out DIR to write elsewhere",
                out.display()
            )));
        }
        if non_empty {
            for f in [
                output::RUNS_CSV,
                output::CURVES_CSV,
                output::DECAY_CSV,
                output::MANIFEST,
            ] {
                let p = out.join(f);
                if p.exists() {
                    std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
                }
            }
            for d in ["checkpoints", "charts"] {
                let p = out.join(d);
                if p.exists() {
                    std::fs::remove_dir_all(&p).map_err(|e| Error::io(&p, e))?;
                }
            }
        }
    }
    output::create_dir(out)
}

/// Chooses the chart grouping from `plot.color` and `plot.panel` (see the README).
pub fn plot_choice(spec: &Spec) -> PlotChoice {
    let swept: Vec<&str> = spec.sweep.iter().map(|(k, _, _)| *k).collect();
    let setting = |k: &str| match &spec.base[k].value {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    };
    let panel = match setting("plot.panel").as_str() {
        "none" => None,
        "auto" => swept.contains(&"task.seq_len").then(|| "task.seq_len".to_string()),
        k => Some(k.to_string()),
    };
    let color = match setting("plot.color").as_str() {
        "none" => None,
        "auto" => {
            let free = |k: &&&str| **k != "train.seed" && Some(**k) != panel.as_deref();
            if !spec.variants.is_empty() {
                Some("variant".to_string())
            } else if swept.contains(&"model.activation") && panel.as_deref() != Some("model.activation") {
                Some("model.activation".to_string())
            } else {
                swept.iter().find(free).map(|k| k.to_string())
            }
        }
        k => Some(k.to_string()),
    };
    PlotChoice { color, panel }
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
    let hash_input = format!(
        "{}|{}|{}",
        canonical_json(&settings),
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
        started: output::now_rfc3339(),
        finished: None,
        settings: json_map(&settings),
        variants,
        sweep,
        plot: plot_choice(spec),
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
            bound_factor: None,
            w_norm_init: None,
            w_norm_final: None,
            w_radius_init: None,
            w_radius_final: None,
            seconds,
            error: message,
        },
        curve: Vec::new(),
        decay: Vec::new(),
        init: None,
        last: None,
        probe_batch: None,
    }
}

/// Runs a whole sweep into `opts.out` (which [`prepare_out`] must have accepted) and writes
/// every output; charts too when `charts` is set.
pub fn run_sweep(
    spec: &Spec,
    runs: &[RunConfig],
    opts: &Options,
    checkpoints: bool,
    charts: bool,
) -> Result<Outcome, Error> {
    let started = Instant::now();
    let out = &opts.out;
    let mut manifest = manifest(spec, runs, opts.jobs);
    output::write_manifest(out, &manifest)?;

    let total_steps: u64 = runs.iter().map(|r| r.train.steps).sum();
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
    let done = AtomicUsize::new(0);
    bar.set_message(format!("runs 0/{}", runs.len()));

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs)
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {} worker threads: {e}", opts.jobs)))?;
    let results: Vec<Result<RunResult, Error>> = pool.install(|| {
        runs.par_iter()
            .map(|cfg| {
                let t0 = Instant::now();
                let on_step = || bar.inc(1);
                let mut result = catch_unwind(AssertUnwindSafe(|| run::train(cfg, &on_step))).unwrap_or_else(|panic| {
                    let message = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panic without a message".to_string());
                    failed_result(cfg, message, t0.elapsed().as_secs_f64())
                });
                if checkpoints {
                    write_checkpoints(out, cfg, &result)?;
                }
                // Parameters are on disk now; free them.
                result.init = None;
                result.last = None;
                result.probe_batch = None;
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                bar.set_message(format!("runs {n}/{}", runs.len()));
                Ok(result)
            })
            .collect()
    });
    bar.finish_and_clear();
    let results: Vec<RunResult> = results.into_iter().collect::<Result<_, _>>()?;

    let swept_keys: Vec<&str> = runs
        .first()
        .map(|r| r.swept.iter().map(|(k, _)| *k).collect())
        .unwrap_or_default();
    let rows: Vec<RunRow> = results.iter().map(|r| r.row.clone()).collect();
    output::write_runs(out, &swept_keys, &rows)?;
    output::write_table(
        &out.join(output::CURVES_CSV),
        results.iter().flat_map(|r| r.curve.iter()),
    )?;
    output::write_table(
        &out.join(output::DECAY_CSV),
        results.iter().flat_map(|r| r.decay.iter()),
    )?;

    let mut outcome = Outcome::default();
    for (row, cfg) in rows.iter().zip(runs) {
        match row.status {
            Status::Ok => outcome.ok += 1,
            Status::Failed => outcome.failed += 1,
            Status::Diverged if cfg.train.clip.norm.is_none() && cfg.train.clip.value.is_none() => {
                outcome.diverged_expected += 1
            }
            Status::Diverged => outcome.diverged_unexpected += 1,
        }
    }
    if charts {
        crate::plot::draw_all(out)?;
    }
    manifest.finished = Some(output::now_rfc3339());
    output::write_manifest(out, &manifest)?;
    outcome.seconds = started.elapsed().as_secs_f64();
    Ok(outcome)
}

fn write_checkpoints(out: &Path, cfg: &RunConfig, result: &RunResult) -> Result<(), Error> {
    let Some(probe) = &result.probe_batch else {
        return Ok(());
    };
    let dir = output::checkpoint_dir(out, &cfg.id);
    output::create_dir(&dir)?;
    let task = crate::task::Task::new(cfg.task.clone());
    let meta = serde_json::json!({
        "run_id": cfg.id,
        "cell": cfg.model.cell.name(),
        "activation": match cfg.model.cell { crate::rnn::Cell::Rnn(a) => a.name(), _ => "tanh" },
        "loss": task.loss_name(),
        "vocab": task.vocab().iter().collect::<String>(),
        "config": json_map(&cfg.resolved),
    });
    if let Some(p) = &result.init {
        output::write_checkpoint(&dir.join("init.safetensors"), p, probe, &meta)?;
    }
    if let Some(p) = &result.last {
        output::write_checkpoint(&dir.join("final.safetensors"), p, probe, &meta)?;
    }
    Ok(())
}
