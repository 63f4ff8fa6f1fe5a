//! The rows of the three CSV tables. Each field's doc is the column's meaning; the column
//! reference in docs/outputs.md repeats them. A missing value (not applicable, or not a finite number) is
//! an empty field: no `NaN` or `inf` is ever written where a number is expected.

use serde::{Deserialize, Serialize};

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// All steps completed with finite losses and gradients.
    Ok,
    /// A non-finite loss or gradient appeared; the run stopped at `diverged_step`.
    Diverged,
    /// The run panicked (a bug in the tool); `error` holds the message.
    Failed,
}

impl Status {
    /// The word written in `runs.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        }
    }

    /// Parses the word written in `runs.csv`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ok" => Status::Ok,
            "diverged" => Status::Diverged,
            "failed" => Status::Failed,
            _ => return None,
        })
    }
}

/// One row of `runs.csv`: one run's summary. Between `run_id` and `status` the file has one
/// column per swept key, named by its dotted key, holding this run's value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRow {
    /// Stable identifier: a hash of the run's resolved configuration (16 hex digits).
    pub run_id: String,
    /// This run's value of each swept key, in sweep order.
    pub swept: Vec<String>,
    /// `ok`, `diverged` or `failed`.
    pub status: Status,
    /// Parameter updates completed.
    pub steps: u64,
    /// Evaluation loss after the last update (empty if the run did not finish).
    pub final_loss: Option<f64>,
    /// The task's memoryless baseline loss (adding: 1/6).
    pub baseline_loss: f64,
    /// Evaluation accuracy after the last update, for classification tasks.
    pub final_accuracy: Option<f64>,
    /// Step at which a non-finite loss or gradient first appeared.
    pub diverged_step: Option<u64>,
    /// Steps at which clipping changed the gradient.
    pub clipped_steps: u64,
    /// Measured per-step decay factor of ‖∂E_T/∂h_{T−d}‖ at the last probe.
    pub decay_factor: Option<f64>,
    /// The same at step 0, before any training.
    pub decay_factor_init: Option<f64>,
    /// A stack's per-layer factor of the gradient at the last step, at the last probe:
    /// (‖∂E_T/∂h⁽⁰⁾_T‖ / ‖∂E_T/∂h⁽ᴸ⁻¹⁾_T‖)^(1/(L−1)) over its L layers; empty for one layer.
    #[serde(default)]
    pub depth_factor: Option<f64>,
    /// The same at step 0, before any training.
    #[serde(default)]
    pub depth_factor_init: Option<f64>,
    /// ‖W‖₂·max|σ'| at the end, plain cell only: an upper bound on the per-step factor.
    pub bound_factor: Option<f64>,
    /// The same bound at initialisation, the one `decay_factor_init` must lie below.
    #[serde(default)]
    pub bound_factor_init: Option<f64>,
    /// ‖W‖₂ at initialisation.
    pub w_norm_init: Option<f64>,
    /// ‖W‖₂ at the end.
    pub w_norm_final: Option<f64>,
    /// Spectral radius ρ(W) at initialisation (gated cells: of the candidate block, W_g or W_n).
    pub w_radius_init: Option<f64>,
    /// Spectral radius at the end.
    pub w_radius_final: Option<f64>,
    /// λ₁, the largest finite-time Lyapunov exponent of the probe batch's trajectory at step 0
    /// (`probe.spectrum` > 0), natural log per step; empty when off or −∞.
    #[serde(default)]
    pub lyapunov_max_init: Option<f64>,
    /// λ₁ at the last probe.
    #[serde(default)]
    pub lyapunov_max: Option<f64>,
    /// Wall-clock seconds the run took (the only column that differs between identical runs).
    pub seconds: f64,
    /// Panic message of a failed run.
    pub error: String,
}

/// Column names of `runs.csv` after `run_id` and the swept keys.
pub const RUN_COLUMNS: [&str; 21] = [
    "status",
    "steps",
    "final_loss",
    "baseline_loss",
    "final_accuracy",
    "diverged_step",
    "clipped_steps",
    "decay_factor",
    "decay_factor_init",
    "depth_factor",
    "depth_factor_init",
    "bound_factor",
    "bound_factor_init",
    "w_norm_init",
    "w_norm_final",
    "w_radius_init",
    "w_radius_final",
    "lyapunov_max_init",
    "lyapunov_max",
    "seconds",
    "error",
];

/// Columns of `RUN_COLUMNS` added after the first release: a `runs.csv` written before them
/// lacks them and reads back with these fields empty.
pub const ADDED_RUN_COLUMNS: [&str; 5] = [
    "depth_factor",
    "depth_factor_init",
    "bound_factor_init",
    "lyapunov_max_init",
    "lyapunov_max",
];

/// A float as written in the CSV files: shortest round-trip form, empty when missing or not
/// finite.
pub fn fmt_num(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v:?}"),
        _ => String::new(),
    }
}

/// `Some(x)` if `x` is finite.
pub fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl RunRow {
    /// The header of `runs.csv` for the given swept keys.
    pub fn header(swept_keys: &[&str]) -> Vec<String> {
        let mut h = vec!["run_id".to_string()];
        h.extend(swept_keys.iter().map(|k| k.to_string()));
        h.extend(RUN_COLUMNS.iter().map(|c| c.to_string()));
        h
    }

    /// The row's fields in header order.
    pub fn fields(&self) -> Vec<String> {
        let mut f = vec![self.run_id.clone()];
        f.extend(self.swept.iter().cloned());
        f.extend([
            self.status.as_str().to_string(),
            self.steps.to_string(),
            fmt_num(self.final_loss),
            fmt_num(Some(self.baseline_loss)),
            fmt_num(self.final_accuracy),
            self.diverged_step.map(|s| s.to_string()).unwrap_or_default(),
            self.clipped_steps.to_string(),
            fmt_num(self.decay_factor),
            fmt_num(self.decay_factor_init),
            fmt_num(self.depth_factor),
            fmt_num(self.depth_factor_init),
            fmt_num(self.bound_factor),
            fmt_num(self.bound_factor_init),
            fmt_num(self.w_norm_init),
            fmt_num(self.w_norm_final),
            fmt_num(self.w_radius_init),
            fmt_num(self.w_radius_final),
            fmt_num(self.lyapunov_max_init),
            fmt_num(self.lyapunov_max),
            format!("{:.3}", self.seconds),
            self.error.clone(),
        ]);
        f
    }

    /// Reads a row back given how many swept columns the file has; the error says which
    /// column is malformed.
    pub fn from_fields(fields: &[&str], n_swept: usize) -> Result<Self, String> {
        let fixed = RUN_COLUMNS.len();
        if fields.len() != 1 + n_swept + fixed {
            return Err(format!(
                "expected {} fields, found {}",
                1 + n_swept + fixed,
                fields.len()
            ));
        }
        let rest = &fields[1 + n_swept..];
        let opt = |i: usize| -> Result<Option<f64>, String> {
            let s = rest[i];
            if s.is_empty() {
                return Ok(None);
            }
            s.parse::<f64>()
                .ok()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| format!("column `{}`: `{s}` is not a finite number", RUN_COLUMNS[i]))
        };
        let int = |i: usize| -> Result<Option<u64>, String> {
            let s = rest[i];
            if s.is_empty() {
                return Ok(None);
            }
            s.parse::<u64>()
                .map(Some)
                .map_err(|_| format!("column `{}`: `{s}` is not a whole number", RUN_COLUMNS[i]))
        };
        let required = |x: Option<u64>, i: usize| x.ok_or_else(|| format!("column `{}` is empty", RUN_COLUMNS[i]));
        Ok(Self {
            run_id: fields[0].to_string(),
            swept: fields[1..1 + n_swept].iter().map(|s| s.to_string()).collect(),
            status: Status::parse(rest[0]).ok_or_else(|| format!("column `status`: unknown status `{}`", rest[0]))?,
            steps: required(int(1)?, 1)?,
            final_loss: opt(2)?,
            baseline_loss: opt(3)?.ok_or("column `baseline_loss` is empty")?,
            final_accuracy: opt(4)?,
            diverged_step: int(5)?,
            clipped_steps: required(int(6)?, 6)?,
            decay_factor: opt(7)?,
            decay_factor_init: opt(8)?,
            depth_factor: opt(9)?,
            depth_factor_init: opt(10)?,
            bound_factor: opt(11)?,
            bound_factor_init: opt(12)?,
            w_norm_init: opt(13)?,
            w_norm_final: opt(14)?,
            w_radius_init: opt(15)?,
            w_radius_final: opt(16)?,
            lyapunov_max_init: opt(17)?,
            lyapunov_max: opt(18)?,
            seconds: opt(19)?.unwrap_or(0.0),
            error: rest[20].to_string(),
        })
    }
}

/// One row of `curves.csv`: one training step of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CurveRow {
    /// The run.
    pub run_id: String,
    /// Parameter updates done before this row's measurements (0 = initial parameters). The last
    /// row of a completed run has step = `train.steps` and only evaluation columns.
    pub step: u64,
    /// Loss on this step's training batch.
    pub train_loss: Option<f64>,
    /// ‖g‖₂ of this step's gradient, before clipping.
    pub grad_norm: Option<f64>,
    /// Whether clipping changed this step's gradient (empty on the final evaluation row).
    pub clipped: Option<bool>,
    /// Learning rate used for this step's update.
    pub lr: Option<f64>,
    /// Loss on the evaluation set, at evaluation steps only.
    pub eval_loss: Option<f64>,
    /// Accuracy on the evaluation set, at evaluation steps of classification tasks.
    pub eval_accuracy: Option<f64>,
}

/// One row of `grad_decay.csv`: one distance of one probe of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecayRow {
    /// The run.
    pub run_id: String,
    /// Parameter updates done before the probe.
    pub probe_step: u64,
    /// The layer whose state the gradient is taken with respect to: 0 = the bottom layer (next
    /// to the input), L − 1 = the top (the one the head reads).
    #[serde(default)]
    pub layer: u64,
    /// `h` for ‖∂E_T/∂h_{T−d}‖ (the hidden state, s of the classic derivation), `c` for the
    /// LSTM's cell state.
    pub state: String,
    /// d: the gradient is taken with respect to the state at step T−d.
    pub distance: u64,
    /// Mean over the probe sequences of ‖∂E_T/∂h_{T−d}‖₂ (or of c); 0 when below the smallest positive
    /// double, empty when not finite.
    pub grad_norm: Option<f64>,
    /// log₁₀ of `grad_norm`, computed without underflow (so it is exact even where
    /// `grad_norm` is 0); empty when the gradient is exactly zero.
    pub log10_grad_norm: Option<f64>,
}

/// The top layer of one run's `grad_decay.csv` rows, the one the head reads (0 for a one-layer
/// run): the layer every chart and summary of "the" gradient-decay profile shows.
pub fn top_layer(rows: &[DecayRow]) -> u64 {
    rows.iter().map(|r| r.layer).max().unwrap_or(0)
}

/// The states `grad_decay.csv` names, each cell's first then second (docs/outputs.md): the
/// hidden state h and the LSTM's cell state c, the coRNN's y and z.
pub const STATES: [&str; 4] = ["h", "c", "y", "z"];

/// Whether `state` is a cell's first state, the one the head and the layer above read (h, or
/// the coRNN's y): the state every chart and summary of "the" gradient-decay profile shows.
pub fn is_output_state(state: &str) -> bool {
    state == "h" || state == "y"
}

/// One row of `spectrum.csv`: one finite-time Lyapunov exponent of one probe of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpectrumRow {
    /// The run.
    pub run_id: String,
    /// Parameter updates done before the probe.
    pub probe_step: u64,
    /// i, 1 … k, largest first: each probe sequence's exponents are sorted, decreasing with −∞
    /// last, and row i holds the mean of their i-th largest.
    pub index: u64,
    /// λ_i, natural log per step, the mean over the probe sequences of each one's i-th largest;
    /// empty when −∞ (some sequence has fewer than i finite exponents: a step was exactly
    /// singular in some of its directions) or not finite. The empty ones come last.
    pub exponent: Option<f64>,
}
