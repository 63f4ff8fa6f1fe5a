//! The experiment spec: every key the tool understands (its type, default, allowed range and
//! documentation), parsing a TOML file plus `--set` overrides into a flat map of dotted keys,
//! and validating every value once, up front, with errors that name file, line, column and key.
//!
//! A spec is kept flat on purpose: `[model] activation = "tanh"`, `--set model.activation=tanh`
//! and `[sweep] "model.activation" = [...]` all speak of the same dotted key, so one table of
//! [`KeyDef`]s serves the file, the command line, the sweep and the README's reference.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A scalar or list value from a spec, already converted to its key's canonical type once
/// validated (an integer given for a float key becomes a float, so `lr = 1` and `lr = 1.0` are
/// the same run).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A TOML string.
    Str(String),
    /// A TOML integer.
    Int(i64),
    /// A TOML float.
    Float(f64),
    /// A TOML boolean.
    Bool(bool),
    /// A TOML array (only meaningful in `[sweep]`).
    List(Vec<Value>),
}

impl fmt::Display for Value {
    /// The form used in CSV columns and run labels: strings bare, numbers in Rust's shortest
    /// round-trip form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

impl Value {
    /// The value as JSON, for the manifest and for hashing a resolved configuration.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Str(s) => serde_json::Value::from(s.as_str()),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(x) => serde_json::Value::from(*x),
            Value::Bool(b) => serde_json::Value::from(*b),
            Value::List(items) => items.iter().map(Value::to_json).collect(),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::List(_) => "a list",
        }
    }
}

/// What values a key accepts.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// An integer in `min..=max`.
    Int { min: i64, max: i64 },
    /// A finite number in `[min, max]`, or `(min, max]` when `open_min`.
    Float { min: f64, max: f64, open_min: bool },
    /// One of the listed strings.
    Choice(&'static [&'static str]),
    /// The string `off`, or a finite number in `(0, max]`.
    OffOrPositive { off: &'static str, max: f64 },
    /// The string `off`, or an integer in `1..=max`.
    OffOrCount { off: &'static str, max: i64 },
    /// `true` or `false`.
    Bool,
    /// A string of 1 to `max_len` characters from `[A-Za-z0-9_.-]`, not starting with a dot.
    Name { max_len: usize },
    /// Any string of at most `max_len` characters.
    Text { max_len: usize },
    /// `"auto"`, `"none"` or one of the sweepable dotted keys.
    KeyRef,
}

impl Kind {
    /// The allowed range, as written in error messages and the README.
    pub fn describe(&self) -> String {
        match *self {
            Kind::Int { min, max } => format!("integer {min} ..= {max}"),
            Kind::Float { min, max, open_min } => {
                let lo = if open_min { "(" } else { "[" };
                format!("number in {lo}{min}, {max}]")
            }
            Kind::Choice(options) => options
                .iter()
                .map(|o| format!("\"{o}\""))
                .collect::<Vec<_>>()
                .join(" | "),
            Kind::OffOrPositive { off, max } => format!("\"{off}\" or a number in (0, {max}]"),
            Kind::OffOrCount { off, max } => format!("\"{off}\" or an integer 1 ..= {max}"),
            Kind::Bool => "true | false".to_string(),
            Kind::Name { max_len } => {
                format!("1 to {max_len} characters from A-Z a-z 0-9 _ . - (no leading dot)")
            }
            Kind::Text { max_len } => format!("any text up to {max_len} characters"),
            Kind::KeyRef => "\"auto\", \"none\" or a swept dotted key".to_string(),
        }
    }

    /// Checks `value` and returns it in canonical form, or says what is wrong.
    fn check(&self, value: &Value) -> Result<Value, String> {
        let expected = || format!("expected {}, got {}", self.describe(), value.type_name());
        match (*self, value) {
            (Kind::Int { min, max }, Value::Int(i)) => {
                if (min..=max).contains(i) {
                    Ok(value.clone())
                } else {
                    Err(format!("{i} is out of range: expected {}", self.describe()))
                }
            }
            (Kind::Float { min, max, open_min }, Value::Int(_) | Value::Float(_)) => {
                let x = match value {
                    Value::Int(i) => *i as f64,
                    Value::Float(x) => *x,
                    _ => unreachable!(),
                };
                let low_ok = if open_min { x > min } else { x >= min };
                if x.is_finite() && low_ok && x <= max {
                    Ok(Value::Float(x))
                } else {
                    Err(format!("{value} is out of range: expected {}", self.describe()))
                }
            }
            (Kind::Choice(options), Value::Str(s)) => {
                if options.contains(&s.as_str()) {
                    Ok(value.clone())
                } else {
                    let hint = suggest(s, options.iter().copied())
                        .map(|k| format!(" (did you mean \"{k}\"?)"))
                        .unwrap_or_default();
                    Err(format!("unknown value \"{s}\"{hint}: expected {}", self.describe()))
                }
            }
            (Kind::OffOrPositive { off, .. } | Kind::OffOrCount { off, .. }, Value::Str(s)) => {
                if s == off {
                    Ok(value.clone())
                } else {
                    Err(format!("\"{s}\" is not allowed: expected {}", self.describe()))
                }
            }
            (Kind::OffOrPositive { max, .. }, Value::Int(_) | Value::Float(_)) => {
                let x = match value {
                    Value::Int(i) => *i as f64,
                    Value::Float(x) => *x,
                    _ => unreachable!(),
                };
                if x.is_finite() && x > 0.0 && x <= max {
                    Ok(Value::Float(x))
                } else {
                    Err(format!("{value} is out of range: expected {}", self.describe()))
                }
            }
            (Kind::OffOrCount { max, .. }, Value::Int(i)) => {
                if (1..=max).contains(i) {
                    Ok(value.clone())
                } else {
                    Err(format!("{i} is out of range: expected {}", self.describe()))
                }
            }
            (Kind::Bool, Value::Bool(_)) => Ok(value.clone()),
            (Kind::Name { max_len }, Value::Str(s)) => {
                let ok_chars = s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
                if !s.is_empty() && s.chars().count() <= max_len && ok_chars && !s.starts_with('.') {
                    Ok(value.clone())
                } else {
                    Err(format!("\"{s}\" is not a valid name: expected {}", self.describe()))
                }
            }
            (Kind::Text { max_len }, Value::Str(s)) => {
                if s.chars().count() <= max_len {
                    Ok(value.clone())
                } else {
                    Err(format!("text is longer than {max_len} characters"))
                }
            }
            (Kind::KeyRef, Value::Str(s)) => {
                if s == "auto" || s == "none" || s == "variant" || sweepable(s) {
                    Ok(value.clone())
                } else {
                    let hint = suggest(s, KEYS.iter().filter(|k| sweepable(k.key)).map(|k| k.key))
                        .map(|k| format!(" (did you mean \"{k}\"?)"))
                        .unwrap_or_default();
                    Err(format!("\"{s}\" is not a sweepable key{hint}"))
                }
            }
            _ => Err(expected()),
        }
    }
}

/// One key of the spec: its dotted name, what it accepts, its default (as TOML text) and what
/// it does. This table is the single source of truth for parsing, validation and the README.
#[derive(Debug)]
pub struct KeyDef {
    /// Dotted name, e.g. `model.activation`.
    pub key: &'static str,
    /// Accepted values.
    pub kind: Kind,
    /// Default as TOML text, e.g. `"tanh"` or `0.1`.
    pub default: &'static str,
    /// One-line description for the README.
    pub doc: &'static str,
}

const fn key(key: &'static str, kind: Kind, default: &'static str, doc: &'static str) -> KeyDef {
    KeyDef {
        key,
        kind,
        default,
        doc,
    }
}

/// Largest sequence length, hidden size, batch and step count a spec may ask for. They keep a
/// typo (an extra zero or three) from asking for more memory or time than any machine has.
pub const MAX_SEQ_LEN: i64 = 100_000;
/// Largest hidden size.
pub const MAX_HIDDEN: i64 = 4096;
/// Largest batch.
pub const MAX_BATCH: i64 = 65_536;
/// Largest number of training steps.
pub const MAX_STEPS: i64 = 100_000_000;
/// Largest number of runs one sweep may expand to.
pub const MAX_RUNS: usize = 20_000;

/// Every key the spec understands, in README order.
#[rustfmt::skip]
pub const KEYS: &[KeyDef] = &[
    key("name", Kind::Name { max_len: 100 }, "\"<file stem>\"",
        "Name of the experiment; results go to `<output.dir>/<name>/`."),
    key("description", Kind::Text { max_len: 10_000 }, "\"\"",
        "Free text, copied into `manifest.json` and the charts' source."),
    key("task.kind", Kind::Choice(&["adding", "hello", "copy", "temporal_order", "text"]), "\"adding\"",
        "The task; see the Tasks section for each one's inputs, loss and baseline."),
    key("task.seq_len", Kind::Int { min: 2, max: MAX_SEQ_LEN }, "50",
        "T. `adding`, `temporal_order`: the sequence length. `copy`: the delay (T−1 blanks and a delimiter between the 10 symbols and their recall; sequences are T+20 long). `text`: the window length. Not used by `hello`, whose length is that of its word minus one."),
    key("task.word", Kind::Text { max_len: 1000 }, "\"hello\"",
        "The word the `hello` task learns to spell: input its characters but the last, target its characters but the first. At least 2 characters."),
    key("task.path", Kind::Text { max_len: 4096 }, "\"\"",
        "The UTF-8 text file of the `text` task, relative to the working directory."),
    key("task.eval_size", Kind::Int { min: 1, max: MAX_BATCH }, "256",
        "Sequences in the fixed evaluation set (the same for every seed). `text`: at most this many windows of the held-out tail."),
    key("model.cell", Kind::Choice(&["rnn", "lstm", "gru"]), "\"rnn\"",
        "Recurrent cell. `rnn`: h_t = σ(U x_t + W h_{t−1} + b); `lstm`, `gru`: PyTorch's `nn.LSTM` and `nn.GRU` equations and gate order."),
    key("model.dtype", Kind::Choice(&["f64", "f32"]), "\"f64\"",
        "Element type of the training core. `f64`: the fidelity default; `f32`: faster (measured ratios under Performance), about 7 significant digits. The probe keeps its range in both (it rescales every step); checkpoints are written in this type."),
    key("model.hidden", Kind::Int { min: 1, max: MAX_HIDDEN }, "32",
        "Hidden size H."),
    key("model.activation", Kind::Choice(&["tanh", "sigmoid", "relu", "identity"]), "\"tanh\"",
        "σ, the hidden activation of the `rnn` cell (the gated cells have their own and refuse any other value)."),
    key("model.init", Kind::Choice(&["xavier", "normal", "orthogonal", "identity", "sparse"]), "\"xavier\"",
        "Initialisation of W, each H×H gate block separately. `xavier`: Glorot uniform; `normal`: N(0, model.std²); `orthogonal`: a random orthogonal matrix; `identity`: W = I (IRNN); `sparse`: Pascanu et al. 2013, `model.sparsity` N(0,1) inputs per unit rescaled to spectral radius `model.spectral_radius`. Then W is multiplied by `model.scale`."),
    key("model.init_io", Kind::Choice(&["xavier", "normal", "orthogonal"]), "\"xavier\"",
        "Initialisation of U (input→hidden, per gate block) and V (hidden→output)."),
    key("model.std", Kind::Float { min: 0.0, max: 1e3, open_min: true }, "0.1",
        "Standard deviation of the `normal` initialisation."),
    key("model.scale", Kind::Float { min: 0.0, max: 1e3, open_min: false }, "1.0",
        "Multiplier applied to W after initialisation (>1 pushes towards explosion, <1 towards vanishing)."),
    key("model.sparsity", Kind::Int { min: 1, max: MAX_HIDDEN }, "15",
        "`sparse` initialisation: non-zero incoming weights per unit (capped at H)."),
    key("model.spectral_radius", Kind::Float { min: 0.0, max: 1e3, open_min: true }, "1.1",
        "`sparse` initialisation: spectral radius of each W block before `model.scale`."),
    key("model.forget_bias", Kind::Float { min: -1e3, max: 1e3, open_min: false }, "1.0",
        "Initial bias of the LSTM forget gate (other biases start at 0)."),
    key("train.steps", Kind::Int { min: 1, max: MAX_STEPS }, "1000",
        "Training steps (parameter updates), one fresh batch each."),
    key("train.batch", Kind::Int { min: 1, max: MAX_BATCH }, "32",
        "Sequences per training batch B."),
    key("train.optimizer", Kind::Choice(&["sgd", "adam", "rmsprop", "adagrad"]), "\"sgd\"",
        "The optimiser, with PyTorch's update rules (see Optimisers)."),
    key("train.lr", Kind::Float { min: 0.0, max: 1e6, open_min: true }, "0.01",
        "Learning rate (the peak rate when a schedule or warm-up applies)."),
    key("train.momentum", Kind::Float { min: 0.0, max: 0.999_999, open_min: false }, "0.0",
        "SGD momentum μ (v ← μ·v + g; θ ← θ − lr·v)."),
    key("train.nesterov", Kind::Bool, "false",
        "SGD with Nesterov momentum (θ ← θ − lr·(g + μ·v)); needs `train.momentum` > 0."),
    key("train.beta1", Kind::Float { min: 0.0, max: 0.999_999, open_min: false }, "0.9",
        "Adam: decay of the first-moment estimate."),
    key("train.beta2", Kind::Float { min: 0.0, max: 0.999_999_999, open_min: false }, "0.999",
        "Adam: decay of the second-moment estimate."),
    key("train.alpha", Kind::Float { min: 0.0, max: 0.999_999_999, open_min: false }, "0.99",
        "RMSprop: decay of the squared-gradient average."),
    key("train.eps", Kind::Float { min: 0.0, max: 1.0, open_min: true }, "1e-8",
        "Adam, RMSprop, Adagrad: the ε added to the denominator."),
    key("train.schedule", Kind::Choice(&["constant", "step", "cosine"]), "\"constant\"",
        "Learning-rate schedule over the steps: `constant`; `step`: multiply by `train.gamma` every `train.step_size` steps; `cosine`: from `train.lr` down to `train.lr_min` along a half cosine."),
    key("train.step_size", Kind::Int { min: 1, max: MAX_STEPS }, "1000",
        "`step` schedule: steps between decays."),
    key("train.gamma", Kind::Float { min: 0.0, max: 1.0, open_min: true }, "0.1",
        "`step` schedule: the decay factor."),
    key("train.lr_min", Kind::Float { min: 0.0, max: 1e6, open_min: false }, "0.0",
        "`cosine` schedule: the final learning rate."),
    key("train.warmup", Kind::Int { min: 0, max: MAX_STEPS }, "0",
        "Linear warm-up: the rate is multiplied by (step+1)/warmup during the first `warmup` steps."),
    key("train.clip", Kind::OffOrPositive { off: "none", max: 1e12 }, "\"none\"",
        "Global L2-norm clipping threshold θ: if ‖g‖ > θ then g ← θ·g/‖g‖."),
    key("train.clip_value", Kind::OffOrPositive { off: "none", max: 1e12 }, "\"none\"",
        "Element-wise clipping of every gradient entry to [−v, v], applied after norm clipping."),
    key("train.seed", Kind::Int { min: 0, max: i64::MAX }, "0",
        "Seed of the run's initial weights and training batches. Runs with the same seed see the same batches."),
    key("train.bptt", Kind::OffOrCount { off: "full", max: MAX_SEQ_LEN }, "\"full\"",
        "Backpropagation through time: `full`, or truncated to windows of k steps counted back from the last step (the backward recurrence is cut every k steps; memory then follows k, not T)."),
    key("train.eval_every", Kind::Int { min: 1, max: MAX_STEPS }, "50",
        "Evaluate on the evaluation set at step 0, every this many steps, and at the end."),
    key("probe.every", Kind::Int { min: 1, max: MAX_STEPS }, "100",
        "Run the gradient-decay probe at step 0, every this many steps, and at the end."),
    key("probe.batch", Kind::Int { min: 1, max: 4096 }, "32",
        "Sequences in the fixed probe batch (the same for every seed)."),
    key("probe.spectrum", Kind::Int { min: 0, max: 8192 }, "0",
        "Finite-time Lyapunov exponents λ_1 … λ_k of the probe batch's trajectory computed at every probe, k = this value (0: off); at most the state dimension (H, 2H for the LSTM). Written to `spectrum.csv`; λ_1 also to `runs.csv`."),
    key("output.dir", Kind::Name { max_len: 200 }, "\"results\"",
        "Folder (relative to the working directory) that receives `<name>/`. `--out DIR` replaces `<output.dir>/<name>`."),
    key("output.checkpoints", Kind::Bool, "true",
        "Write `checkpoints/<run_id>/{init,final}.safetensors`."),
    key("output.charts", Kind::Bool, "true",
        "Draw the charts at the end of the sweep."),
    key("plot.x", Kind::KeyRef, "\"auto\"",
        "Swept key on the x axis of every summary chart (final loss, accuracy, decay factor, divergence). `auto`: `task.seq_len` if swept, else the first swept numeric key other than `train.seed`, else the first swept key (as categories); `none`: one category per configuration. Numbers are drawn on a log axis when positive and spanning a decade or more, else a linear one; words as categories; a `none` among numbers (`train.clip`) sits past the largest."),
    key("plot.color", Kind::KeyRef, "\"auto\"",
        "Swept key (or `variant`) whose values colour the lines; a numeric key gets an ordered palette (light = small) and a legend in value order. `auto`: `variant` if the spec has variants, else `model.activation` if it tells lines apart, else the first such key; `none`: one colour."),
    key("plot.panel", Kind::KeyRef, "\"auto\"",
        "Swept key with one panel per value. `auto`: `task.seq_len` if swept (not on charts whose x axis it is). With `auto` or a key, a panel that would hold more than 8 lines is split further by the line key with the fewest values; `none`: a single panel, however many lines."),
];

/// Whether `key` may appear in `[sweep]` (everything but the experiment's name, description,
/// output folder and chart settings).
pub fn sweepable(key: &str) -> bool {
    KEYS.iter().any(|k| k.key == key)
        && !matches!(key, "name" | "description" | "output.dir")
        && !key.starts_with("plot.")
}

fn keydef(key: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.key == key)
}

/// Where a value came from, for error messages.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    /// Line and column (1-based) in the spec file.
    File { line: usize, col: usize },
    /// A `--set` argument, verbatim.
    Set(String),
    /// The key's default.
    Default,
}

/// A value with its origin.
#[derive(Clone, Debug)]
pub struct Located {
    /// The value.
    pub value: Value,
    /// Where it came from.
    pub origin: Origin,
}

/// One problem found in a spec.
#[derive(Debug, Clone)]
pub struct Problem {
    /// The dotted key concerned, when there is one.
    pub key: Option<String>,
    /// Where it is.
    pub origin: Origin,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Every problem found in a spec, printed one per line as `file:line:col: key: message`.
#[derive(Debug, Clone)]
pub struct SpecErrors {
    /// The spec file.
    pub file: String,
    /// The problems, in file order.
    pub problems: Vec<Problem>,
}

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        writeln!(
            f,
            "{} has {n} problem{}; nothing was run or written:",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            match &p.origin {
                Origin::File { line, col } => write!(f, "  {}:{line}:{col}: ", self.file)?,
                Origin::Set(arg) => write!(f, "  --set {arg}: ")?,
                Origin::Default => write!(f, "  {}: ", self.file)?,
            }
            if let Some(k) = &p.key {
                write!(f, "`{k}`: ")?;
            }
            writeln!(f, "{}", p.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// A parsed and validated spec: fixed settings plus the swept keys in file order.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The spec file as given.
    pub file: String,
    /// Experiment name.
    pub name: String,
    /// Free-text description.
    pub description: String,
    /// Value of every key (defaults filled in), canonical. Swept keys hold their default here
    /// and are replaced per run.
    pub base: BTreeMap<&'static str, Located>,
    /// Swept keys and their values, in the order the file lists them (first varies slowest).
    pub sweep: Vec<(&'static str, Vec<Value>, Origin)>,
    /// Named variants (`[[variant]]` tables), an axis of the product slower than every swept key.
    pub variants: Vec<Variant>,
}

/// One `[[variant]]` table: a label and the keys it sets.
#[derive(Clone, Debug)]
pub struct Variant {
    /// Its label (the `variant` column of `runs.csv`).
    pub label: String,
    /// Keys it sets, validated, in file order.
    pub settings: Vec<(&'static str, Value)>,
    /// Where the table starts.
    pub origin: Origin,
}

impl Spec {
    /// Whether `key` is explicitly set (in the file or by `--set`), not defaulted.
    pub fn is_set(&self, key: &str) -> bool {
        self.base.get(key).is_some_and(|l| l.origin != Origin::Default)
            || self.sweep.iter().any(|(k, _, _)| *k == key)
            || self.variants.iter().any(|v| v.settings.iter().any(|(k, _)| *k == key))
    }

    /// Number of runs the spec expands to.
    pub fn run_count(&self) -> usize {
        self.variants.len().max(1) * self.sweep.iter().map(|(_, v, _)| v.len()).product::<usize>()
    }
}

/// Line and column (1-based, column in characters) of byte offset `at` in `text`.
fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Deepest nesting of tables and arrays a spec may use; the real ones need 3.
const MAX_DEPTH: usize = 8;

fn convert(v: &Spanned<DeValue<'_>>, depth: usize) -> Result<Value, (std::ops::Range<usize>, String)> {
    let err = |m: &str| Err((v.span(), m.to_string()));
    match v.get_ref() {
        DeValue::String(s) => Ok(Value::Str(s.to_string())),
        DeValue::Integer(i) => {
            let digits: String = i.as_str().chars().filter(|c| *c != '_').collect();
            match i64::from_str_radix(&digits, i.radix()) {
                Ok(n) => Ok(Value::Int(n)),
                Err(_) => err("integer does not fit in 64 bits"),
            }
        }
        DeValue::Float(x) => {
            let digits: String = x.as_str().chars().filter(|c| *c != '_').collect();
            match digits.parse::<f64>() {
                Ok(f) => Ok(Value::Float(f)),
                Err(_) => err("malformed float"),
            }
        }
        DeValue::Boolean(b) => Ok(Value::Bool(*b)),
        DeValue::Datetime(_) => err("dates are not accepted by any key"),
        DeValue::Array(items) => {
            if depth >= MAX_DEPTH {
                return err("nested too deeply");
            }
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                out.push(convert(item, depth + 1)?);
            }
            Ok(Value::List(out))
        }
        DeValue::Table(_) => err("a table is not accepted here"),
    }
}

/// A dotted key, the byte span of its key in the file, and its converted value (or where and
/// why conversion failed).
type Flat = (
    String,
    std::ops::Range<usize>,
    Result<Value, (std::ops::Range<usize>, String)>,
);

/// Flattens a TOML table into dotted keys, keeping each value's byte span.
fn flatten(prefix: &str, table: &DeTable<'_>, depth: usize, out: &mut Vec<Flat>) {
    for (k, v) in table.iter() {
        let name = if prefix.is_empty() {
            k.get_ref().to_string()
        } else {
            format!("{prefix}.{}", k.get_ref())
        };
        match v.get_ref() {
            DeValue::Table(t) if depth < MAX_DEPTH => flatten(&name, t, depth + 1, out),
            _ => out.push((name, k.span(), convert(v, depth))),
        }
    }
}

/// Closest candidate to `word` by edit distance, if close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diag = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1).min(row[j] + 1).min(diag + usize::from(ca != *cb));
            diag = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// Parses a `--set key=value` argument. The value is read as a TOML value; if that fails it is
/// taken as a bare string, so `--set model.activation=relu` works without quotes.
pub fn parse_set(arg: &str) -> Result<(String, Value), String> {
    let (k, v) = arg
        .split_once('=')
        .ok_or_else(|| format!("`{arg}` is not of the form key=value"))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(format!("`{arg}` has an empty key"));
    }
    let v = v.trim();
    let value = match DeValue::parse(v) {
        Ok(parsed) => match convert(&parsed, 0) {
            Ok(value) => value,
            Err((_, m)) => return Err(format!("value `{v}`: {m}")),
        },
        Err(_) => Value::Str(v.to_string()),
    };
    Ok((k.to_string(), value))
}

/// Reads, parses and validates a spec file with `--set` overrides applied.
///
/// Every problem is collected (not just the first), so a user fixes them in one go.
pub fn load(path: &Path, sets: &[String]) -> Result<Spec, SpecErrors> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| SpecErrors {
        file: file.clone(),
        problems: vec![Problem {
            key: None,
            origin: Origin::Default,
            message: format!("cannot read the spec: {e}"),
        }],
    })?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "experiment".to_string());
    parse_bytes(&file, &bytes, &stem, sets)
}

/// Parses and validates the raw bytes of a spec file (see [`load`]): refuses invalid UTF-8, then
/// [`parse`]s. The fuzz target enters here.
pub fn parse_bytes(file: &str, bytes: &[u8], stem: &str, sets: &[String]) -> Result<Spec, SpecErrors> {
    let text = std::str::from_utf8(bytes).map_err(|e| SpecErrors {
        file: file.to_string(),
        problems: vec![Problem {
            key: None,
            origin: Origin::Default,
            message: format!(
                "the spec is not valid UTF-8 (first bad byte at offset {})",
                e.valid_up_to()
            ),
        }],
    })?;
    parse(file, text, stem, sets)
}

/// Parses and validates spec text (see [`load`]); `stem` is the default experiment name.
pub fn parse(file: &str, text: &str, stem: &str, sets: &[String]) -> Result<Spec, SpecErrors> {
    let mut problems = Vec::new();
    let at = |span: std::ops::Range<usize>| {
        let (line, col) = line_col(text, span.start);
        Origin::File { line, col }
    };
    let doc = match DeTable::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let origin = e.span().map_or(Origin::Default, at);
            return Err(SpecErrors {
                file: file.to_string(),
                problems: vec![Problem {
                    key: None,
                    origin,
                    message: format!("TOML syntax error: {}", e.message().trim()),
                }],
            });
        }
    };

    // Split the document into plain settings, the [sweep] section and the [[variant]] tables.
    let mut settings = Vec::new();
    let mut sweep_raw = Vec::new();
    let mut variants_raw = Vec::new();
    for (k, v) in doc.get_ref().iter() {
        match (k.get_ref().as_ref(), v.get_ref()) {
            ("variant", DeValue::Array(items)) if items.iter().all(|i| i.get_ref().is_table()) => {
                for item in items.iter() {
                    let mut flat = Vec::new();
                    if let DeValue::Table(t) = item.get_ref() {
                        flatten("", t, 1, &mut flat);
                    }
                    variants_raw.push((item.span(), flat));
                }
            }
            ("variant", _) => problems.push(Problem {
                key: Some("variant".into()),
                origin: at(k.span()),
                message:
                    "must be an array of tables: write `[[variant]]` followed by `label = \"...\"` and the keys it sets"
                        .into(),
            }),
            ("sweep", DeValue::Table(t)) => flatten("", t, 1, &mut sweep_raw),
            ("sweep", _) => problems.push(Problem {
                key: Some("sweep".into()),
                origin: at(k.span()),
                message: "must be a table: write `[sweep]` followed by `\"key\" = [values]` lines".into(),
            }),
            (_, DeValue::Table(t)) => flatten(k.get_ref(), t, 1, &mut settings),
            (name, _) => settings.push((name.to_string(), k.span(), convert(v, 0))),
        }
    }

    let unknown = |key: &str, origin: Origin, in_sweep: bool| {
        let candidates = KEYS.iter().map(|k| k.key);
        let hint = suggest(key, candidates)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        let place = if in_sweep { " in [sweep]" } else { "" };
        Problem {
            key: Some(key.to_string()),
            origin,
            message: format!("unknown key{place}{hint}; the README lists every key"),
        }
    };

    let mut given: BTreeMap<&'static str, Located> = BTreeMap::new();
    for (name, span, value) in settings {
        let origin = at(span);
        let Some(def) = keydef(&name) else {
            problems.push(unknown(&name, origin, false));
            continue;
        };
        match value
            .map_err(|(s, m)| (at(s), m))
            .and_then(|v| def.kind.check(&v).map_err(|m| (origin.clone(), m)))
        {
            Ok(value) => {
                given.insert(def.key, Located { value, origin });
            }
            Err((origin, message)) => problems.push(Problem {
                key: Some(name),
                origin,
                message,
            }),
        }
    }

    // Sweep entries in the order they appear in the file.
    sweep_raw.sort_by_key(|(_, span, _)| span.start);
    let mut sweep: Vec<(&'static str, Vec<Value>, Origin)> = Vec::new();
    for (name, span, value) in sweep_raw {
        let origin = at(span);
        let def = match keydef(&name) {
            Some(def) if sweepable(def.key) => def,
            Some(def) => {
                problems.push(Problem {
                    key: Some(def.key.into()),
                    origin,
                    message: "cannot be swept; set it outside [sweep]".into(),
                });
                continue;
            }
            None => {
                problems.push(unknown(&name, origin, true));
                continue;
            }
        };
        match value {
            Err((s, m)) => problems.push(Problem {
                key: Some(name),
                origin: at(s),
                message: m,
            }),
            Ok(Value::List(items)) if items.is_empty() => problems.push(Problem {
                key: Some(name),
                origin,
                message: "the sweep list is empty; give at least one value or remove the line".into(),
            }),
            Ok(Value::List(items)) => match check_list(def, &items) {
                Ok(items) => {
                    if given.contains_key(def.key) {
                        problems.push(Problem {
                            key: Some(name),
                            origin: origin.clone(),
                            message: "is both set and swept; remove one of the two".into(),
                        });
                    }
                    sweep.push((def.key, items, origin));
                }
                Err(m) => problems.push(Problem {
                    key: Some(name),
                    origin,
                    message: m,
                }),
            },
            Ok(other) => problems.push(Problem {
                key: Some(name),
                origin,
                message: format!(
                    "a sweep entry must be a list of values, got {}; write [{other}]",
                    other.type_name()
                ),
            }),
        }
    }

    // Variants: a label and validated sweepable keys; a key may not be both swept and varied.
    let mut variants: Vec<Variant> = Vec::new();
    for (span, flat) in variants_raw {
        let origin = at(span);
        let mut label = None;
        let mut set = Vec::new();
        for (name, kspan, value) in flat {
            let korigin = at(kspan);
            let value = match value {
                Ok(v) => v,
                Err((s, m)) => {
                    problems.push(Problem {
                        key: Some(name),
                        origin: at(s),
                        message: m,
                    });
                    continue;
                }
            };
            if name == "label" {
                match keydef("name").expect("name key").kind.check(&value) {
                    Ok(Value::Str(l)) => label = Some(l),
                    _ => problems.push(Problem {
                        key: Some("variant.label".into()),
                        origin: korigin,
                        message: format!(
                            "{value} is not a valid label: use 1 to 100 characters from A-Z a-z 0-9 _ . -"
                        ),
                    }),
                }
                continue;
            }
            let def = match keydef(&name) {
                Some(def) if sweepable(def.key) => def,
                Some(def) => {
                    problems.push(Problem {
                        key: Some(def.key.into()),
                        origin: korigin,
                        message: "cannot be set by a variant".into(),
                    });
                    continue;
                }
                None => {
                    problems.push(unknown(&name, korigin, false));
                    continue;
                }
            };
            if sweep.iter().any(|(k, _, _)| *k == def.key) {
                problems.push(Problem {
                    key: Some(name),
                    origin: korigin,
                    message: "is both swept and set by a variant; remove one of the two".into(),
                });
                continue;
            }
            match def.kind.check(&value) {
                Ok(v) => set.push((def.key, v)),
                Err(message) => problems.push(Problem {
                    key: Some(name),
                    origin: korigin,
                    message,
                }),
            }
        }
        match label {
            Some(label) if variants.iter().any(|v| v.label == label) => problems.push(Problem {
                key: Some("variant.label".into()),
                origin,
                message: format!("label \"{label}\" is used twice; labels must differ"),
            }),
            Some(label) => variants.push(Variant {
                label,
                settings: set,
                origin,
            }),
            None => problems.push(Problem {
                key: Some("variant.label".into()),
                origin,
                message: "a [[variant]] needs a `label = \"...\"`".into(),
            }),
        }
    }

    // Command-line overrides: `--set key=v` pins a key (and removes it from the sweep);
    // `--set sweep.key=[...]` sweeps it.
    for arg in sets {
        let origin = Origin::Set(arg.clone());
        let (name, value) = match parse_set(arg) {
            Ok(kv) => kv,
            Err(message) => {
                // Name the key whenever the argument has one.
                let key = arg
                    .split_once('=')
                    .map(|(k, _)| k.trim().to_string())
                    .filter(|k| !k.is_empty());
                problems.push(Problem { key, origin, message });
                continue;
            }
        };
        if let Some(swept) = name.strip_prefix("sweep.") {
            let def = match keydef(swept) {
                Some(def) if sweepable(def.key) => def,
                _ => {
                    problems.push(unknown(swept, origin, true));
                    continue;
                }
            };
            let items = match value {
                Value::List(items) if !items.is_empty() => items,
                _ => {
                    problems.push(Problem {
                        key: Some(name),
                        origin,
                        message: "a sweep override needs a non-empty list, e.g. sweep.train.seed=[0,1,2]".into(),
                    });
                    continue;
                }
            };
            match check_list(def, &items) {
                Ok(items) => {
                    given.remove(def.key);
                    match sweep.iter_mut().find(|(k, _, _)| *k == def.key) {
                        Some(entry) => *entry = (def.key, items, origin),
                        None => sweep.push((def.key, items, origin)),
                    }
                }
                Err(message) => problems.push(Problem {
                    key: Some(name),
                    origin,
                    message,
                }),
            }
            continue;
        }
        let Some(def) = keydef(&name) else {
            problems.push(unknown(&name, origin, false));
            continue;
        };
        match def.kind.check(&value) {
            Ok(value) => {
                sweep.retain(|(k, _, _)| *k != def.key);
                given.insert(def.key, Located { value, origin });
            }
            Err(message) => problems.push(Problem {
                key: Some(name),
                origin,
                message,
            }),
        }
    }

    // Fill in defaults.
    let mut base = BTreeMap::new();
    for def in KEYS {
        let located = match given.remove(def.key) {
            Some(l) => l,
            None => {
                let value = if def.key == "name" {
                    Value::Str(stem.to_string())
                } else {
                    default_value(def)
                };
                Located {
                    value,
                    origin: Origin::Default,
                }
            }
        };
        base.insert(def.key, located);
    }
    if let Err(message) = keydef("name").expect("name key").kind.check(&base["name"].value) {
        problems.push(Problem {
            key: Some("name".into()),
            origin: base["name"].origin.clone(),
            message: format!("{message}; set `name = \"...\"` in the spec"),
        });
    }

    let runs: usize = std::iter::once(variants.len().max(1))
        .chain(sweep.iter().map(|(_, v, _)| v.len()))
        .try_fold(1usize, |acc, n| acc.checked_mul(n))
        .unwrap_or(usize::MAX);
    if runs > MAX_RUNS {
        problems.push(Problem {
            key: Some("sweep".into()),
            origin: sweep.first().map_or(Origin::Default, |s| s.2.clone()),
            message: format!(
                "the sweep expands to {runs} runs, more than the limit of {MAX_RUNS}; split it into several specs"
            ),
        });
    }

    let text_of = |k: &str| match &base[k].value {
        Value::Str(s) => s.clone(),
        other => other.to_string(),
    };
    let spec = Spec {
        file: file.to_string(),
        name: text_of("name"),
        description: text_of("description"),
        base,
        sweep,
        variants,
    };
    problems.extend(check_plot_keys(&spec));
    if problems.is_empty() {
        Ok(spec)
    } else {
        Err(SpecErrors {
            file: file.to_string(),
            problems,
        })
    }
}

/// The default of a key as a [`Value`].
pub fn default_value(def: &KeyDef) -> Value {
    let parsed = DeValue::parse(def.default).expect("defaults are valid TOML");
    let value = convert(&parsed, 0).expect("defaults convert");
    def.kind.check(&value).expect("defaults are in range")
}

fn check_list(def: &KeyDef, items: &[Value]) -> Result<Vec<Value>, String> {
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let v = def
            .kind
            .check(item)
            .map_err(|m| format!("sweep value #{} ({item}): {m}", i + 1))?;
        if out.contains(&v) {
            return Err(format!("sweep value {item} is listed twice"));
        }
        out.push(v);
    }
    Ok(out)
}

fn check_plot_keys(spec: &Spec) -> Vec<Problem> {
    let mut problems = Vec::new();
    for key in ["plot.x", "plot.color", "plot.panel"] {
        let located = &spec.base[key];
        if let Value::Str(s) = &located.value
            && s != "auto"
            && s != "none"
            && !spec.sweep.iter().any(|(k, _, _)| k == s)
            && (s != "variant" || spec.variants.is_empty())
        {
            problems.push(Problem {
                key: Some(key.into()),
                origin: located.origin.clone(),
                message: format!("\"{s}\" is not swept by this spec; use \"auto\" or one of the keys in [sweep]"),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_default_is_valid() {
        for def in KEYS {
            if def.key != "name" {
                default_value(def);
            }
        }
    }

    #[test]
    fn set_parses_toml_then_bare_words() {
        assert_eq!(
            parse_set("train.steps=200").unwrap(),
            ("train.steps".into(), Value::Int(200))
        );
        assert_eq!(parse_set("train.lr=0.5").unwrap().1, Value::Float(0.5));
        assert_eq!(parse_set("model.activation=relu").unwrap().1, Value::Str("relu".into()));
        assert_eq!(
            parse_set("model.activation=\"relu\"").unwrap().1,
            Value::Str("relu".into())
        );
        assert_eq!(parse_set("output.checkpoints=false").unwrap().1, Value::Bool(false));
        assert_eq!(
            parse_set("sweep.train.seed=[0, 1]").unwrap().1,
            Value::List(vec![Value::Int(0), Value::Int(1)])
        );
        assert!(parse_set("train.steps").is_err());
        assert!(parse_set("=3").is_err());
    }

    #[test]
    fn errors_name_line_column_and_key_with_suggestion() {
        let text = "[model]\nhidden = 8\nactivaton = \"tanh\"\n";
        let err = parse("x.toml", text, "x", &[]).unwrap_err();
        let p = &err.problems[0];
        assert_eq!(p.origin, Origin::File { line: 3, col: 1 });
        assert_eq!(p.key.as_deref(), Some("model.activaton"));
        assert!(p.message.contains("did you mean `model.activation`"), "{}", p.message);
    }

    #[test]
    fn a_set_whose_value_cannot_convert_names_its_key() {
        // Found by the fuzzer: a date given to --set was refused without naming the key.
        let err = parse("x.toml", "", "x", &["description=1979-05-27".into()]).unwrap_err();
        assert_eq!(err.problems[0].key.as_deref(), Some("description"));
        assert!(err.problems[0].message.contains("dates are not accepted"));
    }

    #[test]
    fn integers_are_accepted_for_floats_and_canonicalised() {
        let a = parse("x.toml", "[train]\nlr = 1\n", "x", &[]).unwrap();
        let b = parse("x.toml", "[train]\nlr = 1.0\n", "x", &[]).unwrap();
        assert_eq!(a.base["train.lr"].value, b.base["train.lr"].value);
    }

    #[test]
    fn sweep_keeps_file_order_and_set_pins_a_swept_key() {
        let text = "[sweep]\n\"train.seed\" = [0, 1]\n\"model.activation\" = [\"tanh\", \"relu\"]\n";
        let spec = parse("x.toml", text, "x", &[]).unwrap();
        let keys: Vec<_> = spec.sweep.iter().map(|s| s.0).collect();
        assert_eq!(keys, ["train.seed", "model.activation"]);
        let pinned = parse("x.toml", text, "x", &["train.seed=5".into()]).unwrap();
        assert_eq!(pinned.sweep.len(), 1);
        assert_eq!(pinned.base["train.seed"].value, Value::Int(5));
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\nçd = 1", 5), (2, 2));
    }
}
