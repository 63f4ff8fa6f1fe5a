//! Command line: parses arguments, calls the library, maps errors to exit codes
//! (0 success, 1 a run failed or diverged despite clipping, a regression check failed or a file
//! could not be written, 2 bad input found before any work started).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, Parser, Subcommand};

use runner::{Error, launch, spec, sweep};

/// Experiments on vanishing and exploding gradients in recurrent networks.
///
/// `runner SPEC.toml` expands the spec's sweep, trains every run in parallel and writes CSV
/// tables, checkpoints and charts to results/<name>/.
#[derive(Parser, Debug)]
#[command(version, args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Redraw every chart of a results folder from its CSV files and manifest alone, and rewrite
    /// summary.tex and report.md from them.
    Plot {
        /// The results folder, e.g. results/vanishing.
        dir: PathBuf,
        /// Redraw with another chart choice: plot.x, plot.color or plot.panel = a swept key,
        /// "auto" or "none" (repeatable), e.g. --set plot.x=train.lr.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
    },
    /// Join shard folders (from `--shard` runs) into one results folder.
    Merge {
        /// The shard folders.
        #[arg(required = true)]
        shards: Vec<PathBuf>,
        /// The merged results folder.
        #[arg(long)]
        out: PathBuf,
        /// Replace results already in --out.
        #[arg(long)]
        force: bool,
    },
    /// Run a spec (or reuse its completed results) and compare each run's final loss with a
    /// baseline file; exit 1 on any regression or missing run.
    Check {
        #[command(flatten)]
        run: RunArgs,
        /// The baseline file (CSV: config, final_loss).
        #[arg(long, value_name = "FILE")]
        baseline: PathBuf,
        /// Relative tolerance: a run regresses when now > baseline + atol + rtol·|baseline|.
        #[arg(long, default_value_t = runner::check::RTOL)]
        rtol: f64,
        /// Absolute tolerance.
        #[arg(long, default_value_t = runner::check::ATOL)]
        atol: f64,
        /// Write (or replace) the baseline file from the results instead of comparing.
        #[arg(long)]
        bless: bool,
        /// Compare each run with the same run (`run`), or each configuration's mean over its
        /// seeds with the baseline's, allowing for the seeds' spread (`config`).
        #[arg(long = "by", value_enum, default_value = "run")]
        by: runner::check::Mode,
        /// Also write the comparison as JUnit XML to FILE (one testcase per line).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
    },
    /// Where a sweep stands while workers drain it: runs done, running (worker, heartbeat),
    /// stale, pending and failed, the mean run time and an estimate of the time left.
    Status {
        /// The results folder, e.g. results/remedies.
        dir: PathBuf,
        /// Print the report as JSON, for scripts.
        #[arg(long)]
        json: bool,
        /// The lease by which to judge claims whose worker recorded none (seconds).
        #[arg(long, value_name = "SECONDS", default_value_t = runner::claim::Lease::DEFAULT_SECONDS)]
        lease: f64,
    },
    /// Print the reference of every spec key (type, default, range, meaning), or of the keys
    /// that start with PREFIX, e.g. `runner keys model.`; every key listed can be set with
    /// `--set KEY=VALUE` and, unless marked, swept.
    Keys {
        /// Only the keys whose dotted names start with this, e.g. `model.` or `train.lr`.
        #[arg(default_value = "")]
        prefix: String,
        /// Print each key's full meaning, not only its first sentence.
        #[arg(long, short = 'l')]
        long: bool,
        /// Print the reference as the Markdown table of docs/spec.md.
        #[arg(long, conflicts_with = "long")]
        markdown: bool,
    },
    /// Generate text from a trained character model (a `text` or `hello` run).
    Sample {
        /// The results folder, e.g. results/charlm.
        dir: PathBuf,
        /// The run's id (from runs.csv), or a unique prefix of it.
        #[arg(long)]
        run: String,
        /// Characters to generate.
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
        length: u32,
        /// Softmax temperature: below 1 sharper, above 1 more random.
        #[arg(long, default_value_t = 1.0)]
        temperature: f64,
        /// Text to continue.
        #[arg(long, default_value = "")]
        prime: String,
        /// Seed of the sampling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

#[derive(Args, Debug)]
struct RunArgs {
    /// The experiment spec (TOML).
    #[arg(required = true)]
    spec: Option<PathBuf>,
    /// Override a key: `--set train.steps=200`, `--set model.activation=relu`,
    /// `--set sweep.train.seed=[0,1]`. The value is read as TOML, a bare word as a string.
    /// Setting a swept key pins it to that one value. Repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Runs trained in parallel (default: all cores).
    #[arg(long, short = 'j', value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
    jobs: Option<u16>,
    /// Results folder (default: <output.dir>/<name>, i.e. results/<name>).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Rerun every run, replacing results already in the results folder (by default a rerun
    /// into the same folder resumes: completed runs are kept, the others are run).
    #[arg(long)]
    force: bool,
    /// Run only part i of n of the sweep (0 ≤ i < n), e.g. 0/4. Without it, a Slurm job array
    /// (SLURM_ARRAY_TASK_ID, SLURM_ARRAY_TASK_COUNT) or a Kubernetes indexed job
    /// (JOB_COMPLETION_INDEX with RUNNER_SHARD_COUNT) chooses the part.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// Refuse the sweep if its estimated peak memory exceeds this (e.g. 512M, 8G; default: the
    /// memory available on this machine).
    #[arg(long, value_name = "SIZE")]
    max_memory: Option<String>,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Validate the spec and list the runs it expands to; run and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Seconds a run's claim lives without a heartbeat; a worker silent for longer is taken for
    /// dead and its run is trained by another (see docs/cluster.md).
    #[arg(long, value_name = "SECONDS", default_value_t = runner::claim::Lease::DEFAULT_SECONDS)]
    lease: f64,
    /// Seconds between two heartbeats of this worker's claims (default: a fifth of the lease;
    /// at most half of it).
    #[arg(long, value_name = "SECONDS")]
    heartbeat: Option<f64>,
    /// When every run left is being trained by other workers, leave instead of waiting for them.
    #[arg(long)]
    no_wait: bool,
    /// Drain the sweep as a queue with every other worker on the same folder, ignoring the
    /// static shard a Slurm array or Kubernetes indexed job would assign.
    #[arg(long, conflicts_with = "shard")]
    queue: bool,
}

/// Set by SIGINT or SIGTERM: stop starting runs, abandon those in flight, write what is complete.
/// A process-wide flag is the one piece of global state here: a signal handler can reach
/// nothing else.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
    // A second Ctrl-C gets the default action: it kills the process at once.
    // SAFETY: signal() is async-signal-safe, and SIG_DFL is a valid disposition.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

fn install_signal_handlers() {
    // SAFETY: on_signal only stores to an atomic and calls signal(), both async-signal-safe.
    // SIGPIPE gets its default action back so that `runner ... | head` ends quietly.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    install_signal_handlers();
    let cli = Cli::parse();
    // A kernel path forced for testing must exist on this processor: checked before any work.
    if let Err(message) = runner::isa::Isa::from_env() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Some(Command::Plot { dir, set }) => runner::report::redraw(&dir, &set).map(|charts| {
            println!("drew {} charts in {}", charts.len(), dir.join("charts").display());
            0
        }),
        Some(Command::Keys { prefix, long, markdown }) => keys(&prefix, long, markdown),
        Some(Command::Status { dir, json, lease }) => status(&dir, json, lease),
        Some(Command::Sample {
            dir,
            run,
            length,
            temperature,
            prime,
            seed,
        }) => {
            let opts = runner::sample::SampleOptions {
                run,
                length: length as usize,
                temperature,
                prime,
                seed,
            };
            runner::sample::sample(&dir, &opts).map(|text| {
                println!("{text}");
                0
            })
        }
        Some(Command::Merge { shards, out, force }) => runner::launch::merge(&shards, &out, force, true).map(|n| {
            println!(
                "merged {n} runs from {} shard folders into {}",
                shards.len(),
                out.display()
            );
            0
        }),
        Some(Command::Check {
            run: args,
            baseline,
            rtol,
            atol,
            bless,
            by,
            junit,
        }) => check(
            args,
            &baseline,
            CheckOptions {
                rtol,
                atol,
                bless,
                by,
                junit,
                // GitHub Actions names the file its job summary is read from.
                summary: std::env::var_os("GITHUB_STEP_SUMMARY")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from),
            },
        ),
        None => run(cli.run),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

/// `runner status`: the state of a sweep's folder, as text or JSON.
fn status(dir: &std::path::Path, json: bool, lease: f64) -> Result<i32, Error> {
    let lease = runner::claim::Lease::new(lease, None).map_err(Error::Usage)?;
    if !dir.join(runner::output::MANIFEST).exists() {
        return Err(Error::Usage(format!(
            "{} holds no sweep (no manifest.json); give the results folder of a sweep",
            dir.display()
        )));
    }
    let report = runner::status::read(dir, &lease)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report).expect("reports serialise"));
    } else {
        print!("{}", runner::status::text(dir, &report));
    }
    Ok(0)
}

/// `runner keys`: the key reference, whole or for a prefix; an unknown prefix is bad input.
fn keys(prefix: &str, long: bool, markdown: bool) -> Result<i32, Error> {
    let defs = spec::keys::select(prefix).map_err(Error::Usage)?;
    if markdown {
        print!("{}", spec::keys::markdown_table(&defs));
    } else {
        print!("{}", spec::keys::terminal_text(&defs, long));
    }
    Ok(0)
}

/// What a sweep needs before it can run: its runs, folder and options, all validated.
struct Prepared {
    spec: spec::Spec,
    runs: Vec<runner::run::RunConfig>,
    opts: launch::Options,
    resuming: bool,
}

/// Parses and validates everything, then checks the results folder; `None` for a dry run.
fn prepare(args: RunArgs) -> Result<Option<Prepared>, Error> {
    let path = args.spec.expect("clap requires the spec");
    let spec = spec::load(&path, &args.sets)?;
    let runs = sweep::expand(&spec)?;
    let lease = runner::claim::Lease::new(args.lease, args.heartbeat).map_err(Error::Usage)?;
    let shard = match &args.shard {
        Some(text) => Some(launch::Shard::parse(text).map_err(Error::Usage)?),
        None if args.queue => None,
        None => launch::Shard::from_env(|k| std::env::var(k).ok()).map_err(Error::Usage)?,
    };
    let out = match (&args.out, shard) {
        (Some(out), _) => out.clone(),
        (None, Some(s)) => launch::out_dir(&spec, None).join(format!("shard-{}-of-{}", s.index, s.count)),
        (None, None) => launch::out_dir(&spec, None),
    };
    let jobs = args
        .jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mine: Vec<&runner::run::RunConfig> = runs
        .iter()
        .filter(|r| shard.is_none_or(|s| s.contains(r.index)))
        .collect();
    if args.dry_run {
        println!(
            "{} runs, results would go to {}, estimated peak memory {} with {jobs} jobs",
            mine.len(),
            out.display(),
            runner::budget::human(runner::budget::sweep_bytes(&mine, jobs))
        );
        for r in &mine {
            println!("{}  {}", r.id, r.label());
        }
        return Ok(None);
    }
    // Resource guard, before anything is written or allocated.
    let limit = args
        .max_memory
        .as_deref()
        .map(runner::budget::parse_size)
        .transpose()
        .map_err(Error::Usage)?;
    runner::budget::check(&mine, jobs, limit).map_err(Error::Usage)?;
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    let resuming = launch::prepare_out(&out, args.force, &ids, shard, &lease)?;
    let opts = launch::Options {
        jobs,
        out,
        force: args.force,
        quiet: args.quiet,
        shard,
        stop: Some(&STOP),
        lease,
        wait: !args.no_wait,
    };
    Ok(Some(Prepared {
        spec,
        runs,
        opts,
        resuming,
    }))
}

fn execute(p: &Prepared) -> Result<launch::Outcome, Error> {
    let flag = |k: &str| p.spec.base[k].value == spec::Value::Bool(true);
    let outcome = launch::run_sweep(
        &p.spec,
        &p.runs,
        &p.opts,
        flag("output.checkpoints"),
        flag("output.charts"),
    )?;
    let jobs = p.opts.jobs;
    println!(
        "{} runs in {:.1} s with {jobs} thread{}{}: {} ok, {} diverged without clipping, {} diverged with clipping, {} failed{}{} -> {}",
        outcome.ok + outcome.diverged_expected + outcome.diverged_unexpected + outcome.failed,
        outcome.seconds,
        if jobs == 1 { "" } else { "s" },
        p.opts.shard.map(|s| format!(" (shard {s})")).unwrap_or_default(),
        outcome.ok,
        outcome.diverged_expected,
        outcome.diverged_unexpected,
        outcome.failed,
        if p.resuming && outcome.reused > 0 {
            format!(", {} reused from an earlier run", outcome.reused)
        } else {
            String::new()
        },
        if outcome.by_others + outcome.left_to_others + outcome.discarded > 0 {
            format!(
                "; {} trained by this worker, {} by others{}{}",
                outcome.trained,
                outcome.by_others,
                if outcome.discarded > 0 {
                    format!(
                        ", {} discarded (another worker took the run over while this one was stopped)",
                        outcome.discarded
                    )
                } else {
                    String::new()
                },
                if outcome.left_to_others > 0 {
                    format!(
                        ", {} left to the workers training them (--no-wait)",
                        outcome.left_to_others
                    )
                } else {
                    String::new()
                }
            )
        } else {
            String::new()
        },
        p.opts.out.display()
    );
    Ok(outcome)
}

fn run(args: RunArgs) -> Result<i32, Error> {
    let Some(p) = prepare(args)? else { return Ok(0) };
    let outcome = execute(&p)?;
    if outcome.interrupted > 0 {
        eprintln!(
            "interrupted: {} runs not complete; the completed ones are recorded in {}. Run the same command again to resume.",
            outcome.interrupted,
            p.opts.out.display()
        );
    }
    Ok(outcome.exit_code())
}

/// How `runner check` compares and reports.
struct CheckOptions {
    rtol: f64,
    atol: f64,
    bless: bool,
    by: runner::check::Mode,
    junit: Option<PathBuf>,
    /// A Markdown file the table is appended to (`$GITHUB_STEP_SUMMARY`).
    summary: Option<PathBuf>,
}

fn check(args: RunArgs, baseline: &std::path::Path, o: CheckOptions) -> Result<i32, Error> {
    let CheckOptions { rtol, atol, bless, .. } = o;
    if !(rtol >= 0.0 && atol >= 0.0) {
        return Err(Error::Usage("--rtol and --atol must be non-negative".into()));
    }
    if !bless && !baseline.exists() {
        return Err(Error::Usage(format!(
            "baseline {} does not exist; create it with --bless",
            baseline.display()
        )));
    }
    let spec_file = args.spec.clone();
    let Some(p) = prepare(args)? else { return Ok(0) };
    let outcome = execute(&p)?;
    if outcome.interrupted > 0 {
        eprintln!(
            "interrupted before every run completed; nothing was compared. Run the same command again to resume."
        );
        return Ok(outcome.exit_code());
    }
    if bless {
        let n = runner::check::bless(&p.opts.out, baseline)?;
        println!("wrote {n} final losses to {}", baseline.display());
        return Ok(0);
    }
    let base = runner::check::read_baseline(baseline)?;
    let now = runner::check::final_losses(&p.opts.out)?;
    let (lines, mode) = match o.by {
        runner::check::Mode::Run => (runner::check::compare(&now, &base, rtol, atol), "by run"),
        runner::check::Mode::Config => (
            runner::check::compare_by_config(&now, &base, rtol, atol),
            "by configuration, seeds pooled",
        ),
    };
    print!("{}", runner::check::table(&lines));
    let failed = lines.iter().filter(|l| l.verdict.fails()).count();
    let improved = lines
        .iter()
        .filter(|l| l.verdict == runner::check::Verdict::Improved)
        .count();
    let footer = format!(
        "{} configurations: {failed} failing, {improved} improved (rtol {rtol}, atol {atol}, {mode}; baseline {})",
        lines.len(),
        baseline.display()
    );
    println!("{footer}");
    let spec_name = spec_file
        .as_deref()
        .map_or_else(|| "runner check".to_string(), |f| f.display().to_string());
    if let Some(path) = &o.junit {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            runner::output::create_dir(parent)?;
        }
        runner::output::write_atomic(path, runner::check::junit(&lines, &spec_name).as_bytes())?;
    }
    if let Some(path) = &o.summary {
        use std::io::Write;
        let title = format!("runner check: {spec_name} against {}", baseline.display());
        let text = runner::check::markdown(&lines, &title, &footer);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| Error::io(path, e))?;
    }
    Ok(if failed > 0 { 1 } else { 0 })
}
