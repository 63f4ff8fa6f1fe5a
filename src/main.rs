//! Command line: parses arguments, calls the library, maps errors to exit codes
//! (0 success, 1 a run failed or diverged despite clipping or a file could not be written,
//! 2 bad input found before any work started).

use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Redraw every chart of a results folder from its CSV files and manifest alone.
    Plot {
        /// The results folder, e.g. results/vanishing.
        dir: PathBuf,
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
    /// Replace results already in the results folder.
    #[arg(long)]
    force: bool,
    /// No progress bar.
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Validate the spec and list the runs it expands to; run and write nothing.
    #[arg(long)]
    dry_run: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Plot { dir }) => runner::plot::draw_all(&dir).map(|charts| {
            println!("drew {} charts in {}", charts.len(), dir.join("charts").display());
            0
        }),
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

fn run(args: RunArgs) -> Result<i32, Error> {
    let path = args.spec.expect("clap requires the spec");
    let spec = spec::load(&path, &args.sets)?;
    let runs = sweep::expand(&spec)?;
    let out = launch::out_dir(&spec, args.out.as_deref());
    if args.dry_run {
        println!("{} runs, results would go to {}", runs.len(), out.display());
        for r in &runs {
            println!("{}  {}", r.id, r.label());
        }
        return Ok(0);
    }
    launch::prepare_out(&out, args.force)?;
    let jobs = args
        .jobs
        .map(usize::from)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let flag = |k: &str| spec.base[k].value == spec::Value::Bool(true);
    let opts = launch::Options {
        jobs,
        out: out.clone(),
        force: args.force,
        quiet: args.quiet,
    };
    let outcome = launch::run_sweep(&spec, &runs, &opts, flag("output.checkpoints"), flag("output.charts"))?;
    println!(
        "{} runs in {:.1} s with {jobs} thread{}: {} ok, {} diverged without clipping, {} diverged with clipping, {} failed -> {}",
        runs.len(),
        outcome.seconds,
        if jobs == 1 { "" } else { "s" },
        outcome.ok,
        outcome.diverged_expected,
        outcome.diverged_unexpected,
        outcome.failed,
        out.display()
    );
    Ok(outcome.exit_code())
}
