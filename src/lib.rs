//! `runner`: experiments on vanishing and exploding gradients in recurrent networks.
//!
//! The data flow, one module per arrow:
//! spec.toml → [`spec`] (parse, validate) → [`sweep`] (resolved run configs, stable ids) →
//! [`launch`] (a worker loop per thread) → [`run`] (one training run) → [`rnn`] (forward, BPTT,
//! probe; its element type and products in [`real`], its elementary functions in [`elem`], both
//! on the instruction set [`isa`] chooses once),
//! [`task`] (data) and [`optim`] (clipping, SGD) → [`record`] (rows) → [`output`] (CSV,
//! manifest, checkpoints) → [`plot`] (charts drawn from the CSV files alone).

pub mod budget;
pub mod check;
pub mod claim;
pub mod elem;
pub mod isa;
pub mod launch;
pub mod optim;
pub mod output;
pub mod plot;
pub mod real;
pub mod record;
pub mod report;
pub mod rnn;
pub mod run;
pub mod sample;
pub mod spec;
pub mod status;
pub mod sweep;
pub mod task;

use std::path::{Path, PathBuf};

/// The type of every reported number and hyper-parameter (losses, norms, learning rates, the
/// probe's logarithms), whatever element type the training core runs in ([`real::Real`]).
pub type Float = f64;

/// Everything that can go wrong, with the exit code each maps to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec or a `--set` is invalid; nothing was run or written (exit 2).
    #[error("{0}")]
    Spec(#[from] spec::SpecErrors),
    /// The command line asks for something that cannot be done as given, found before any
    /// work started (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a file failed (exit 1).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file the tool reads back is malformed (exit 1).
    #[error("{}{}: {message}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Data {
        /// The file.
        path: PathBuf,
        /// The 1-based line, when known.
        line: Option<u64>,
        /// What is wrong.
        message: String,
    },
    /// Drawing a chart failed (exit 1).
    #[error("chart {}: {message}", path.display())]
    Plot {
        /// The chart file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// The process exit code for this error: 2 for bad input found before any work, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spec(_) | Error::Usage(_) => 2,
            _ => 1,
        }
    }
}
