//! The table of keys: every key a spec understands, with its type, default, allowed range and
//! meaning. Parsing and validation ([`super::parse`]), `--set`, the sweep, `runner keys` and the
//! key reference in `docs/spec.md` all read this one table, so none of them can drift from the
//! others (`tests/readme.rs` holds the docs to [`markdown_table`]).

use toml::de::DeValue;

use super::{Value, suggest};

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
    /// `"auto"`, `"none"` or a list of two different sweepable dotted keys.
    KeyPair,
    /// A non-empty list of distinct strings, each one of the listed options.
    Subset(&'static [&'static str]),
}

/// `options` in double quotes, joined by `sep`.
fn quoted(options: &[&str], sep: &str) -> String {
    options.iter().map(|o| format!("\"{o}\"")).collect::<Vec<_>>().join(sep)
}

impl Kind {
    /// The type and allowed range in one phrase, as error messages say it ("expected integer
    /// 1 ..= 4096").
    pub fn describe(&self) -> String {
        match *self {
            Kind::Int { .. } => format!("integer {}", self.range()),
            Kind::Float { .. } => format!("number in {}", self.range()),
            Kind::Choice(options) => quoted(options, " | "),
            Kind::OffOrPositive { off, .. } => format!("\"{off}\" or a number in {}", self.range()),
            Kind::OffOrCount { off, .. } => format!("\"{off}\" or an integer {}", self.range()),
            Kind::Bool => "true | false".to_string(),
            Kind::Name { max_len } => {
                format!("1 to {max_len} characters from A-Z a-z 0-9 _ . - (no leading dot)")
            }
            Kind::Text { .. } => format!("any text {}", self.range()),
            Kind::KeyRef => "\"auto\", \"none\" or a swept dotted key".to_string(),
            Kind::KeyPair => "\"auto\", \"none\" or a list of two swept dotted keys".to_string(),
            Kind::Subset(options) => format!("a non-empty list of distinct values from {}", quoted(options, ", ")),
        }
    }

    /// The type of value the key takes, for the reference's `type` column.
    pub fn type_name(&self) -> String {
        match *self {
            Kind::Int { .. } => "integer".into(),
            Kind::Float { .. } => "number".into(),
            Kind::Choice(_) | Kind::Text { .. } => "string".into(),
            Kind::OffOrPositive { off, .. } => format!("number or \"{off}\""),
            Kind::OffOrCount { off, .. } => format!("integer or \"{off}\""),
            Kind::Bool => "boolean".into(),
            Kind::Name { .. } => "name".into(),
            Kind::KeyRef => "key".into(),
            Kind::KeyPair => "key pair".into(),
            Kind::Subset(_) => "list of strings".into(),
        }
    }

    /// The values the key accepts, without its type, for the reference's `range` column.
    pub fn range(&self) -> String {
        match *self {
            Kind::Int { min, max } => format!("{min} ..= {max}"),
            Kind::Float { min, max, open_min } => {
                format!("{}{min}, {max}]", if open_min { "(" } else { "[" })
            }
            Kind::Choice(_) | Kind::Bool => self.describe(),
            Kind::OffOrPositive { max, .. } => format!("(0, {max}]"),
            Kind::OffOrCount { max, .. } => format!("1 ..= {max}"),
            Kind::Name { max_len } => format!("1 to {max_len} of A-Z a-z 0-9 _ . - (no leading dot)"),
            Kind::Text { max_len } => format!("up to {max_len} characters"),
            Kind::KeyRef => "\"auto\", \"none\" or a swept key".into(),
            Kind::KeyPair => "\"auto\", \"none\" or [KEY, KEY], two swept keys".into(),
            Kind::Subset(options) => format!("non-empty subset of {}", quoted(options, ", ")),
        }
    }

    /// Checks `value` and returns it in canonical form, or says what is wrong.
    pub fn check(&self, value: &Value) -> Result<Value, String> {
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
            (Kind::KeyPair, Value::Str(s)) if s == "auto" || s == "none" => Ok(value.clone()),
            (Kind::KeyPair, Value::List(items)) => {
                let keys: Vec<&str> = items
                    .iter()
                    .filter_map(|v| match v {
                        Value::Str(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect();
                if keys.len() != 2 || items.len() != 2 || keys[0] == keys[1] {
                    return Err(format!("expected {}, got {value}", self.describe()));
                }
                for k in &keys {
                    Kind::KeyRef.check(&Value::Str(k.to_string()))?;
                }
                Ok(value.clone())
            }
            (Kind::Subset(options), Value::List(items)) => {
                let mut seen: Vec<&str> = Vec::new();
                for item in items {
                    match item {
                        Value::Str(s) if options.contains(&s.as_str()) && !seen.contains(&s.as_str()) => seen.push(s),
                        _ => return Err(format!("{item} in {value}: expected {}", self.describe())),
                    }
                }
                if seen.is_empty() {
                    return Err(format!("the list is empty: expected {}", self.describe()));
                }
                Ok(value.clone())
            }
            _ => Err(expected()),
        }
    }
}

/// One key of the spec: its dotted name, what it accepts, its default (as TOML text) and what
/// it does. This table is the single source of truth for parsing, validation and the reference.
#[derive(Debug)]
pub struct KeyDef {
    /// Dotted name, e.g. `model.activation`.
    pub key: &'static str,
    /// Accepted values.
    pub kind: Kind,
    /// Default as TOML text, e.g. `"tanh"` or `0.1`.
    pub default: &'static str,
    /// What the key does. Its first sentence is the one-line meaning `runner keys` prints.
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

/// Every key the spec understands, in reference order (section by section).
#[rustfmt::skip]
pub const KEYS: &[KeyDef] = &[
    key("name", Kind::Name { max_len: 100 }, "\"<file stem>\"",
        "Name of the experiment; results go to `<output.dir>/<name>/`."),
    key("description", Kind::Text { max_len: 10_000 }, "\"\"",
        "Free text, copied into `manifest.json` and the charts' source."),
    key("task.kind", Kind::Choice(&["adding", "hello", "copy", "temporal_order", "text"]), "\"adding\"",
        "The task; docs/experiments.md (Tasks) gives each one's inputs, loss and baseline."),
    key("task.seq_len", Kind::Int { min: 2, max: MAX_SEQ_LEN }, "50",
        "The length T of the task's sequences. `adding`, `temporal_order`: the sequence length. `copy`: the delay (T−1 blanks and a delimiter between the 10 symbols and their recall; sequences are T+20 long). `text`: the window length. Not used by `hello`, whose length is that of its word minus one."),
    key("task.word", Kind::Text { max_len: 1000 }, "\"hello\"",
        "The word the `hello` task learns to spell: input its characters but the last, target its characters but the first. At least 2 characters."),
    key("task.path", Kind::Text { max_len: 4096 }, "\"\"",
        "The UTF-8 text file of the `text` task, relative to the working directory."),
    key("task.eval_size", Kind::Int { min: 1, max: MAX_BATCH }, "256",
        "Sequences in the fixed evaluation set (the same for every seed). `text`: at most this many windows of the held-out tail."),
    key("model.cell", Kind::Choice(&crate::rnn::Cell::NAMES), "\"rnn\"",
        "The recurrent cell. `rnn`: h_t = σ(U x_t + W h_{t−1} + b); `lstm`, `gru`: PyTorch's `nn.LSTM` and `nn.GRU` equations and gate order; `indrnn`: h_t = σ(U x_t + u ⊙ h_{t−1} + b), |u_i| ≤ `model.recurrent_max`; `exprnn`: h_t = modrelu(U x_t + exp(A) h_{t−1}), A skew-symmetric; `cornn`: coupled oscillators, state (y, z); `antisymmetric`: h_t = h_{t−1} + ε·tanh((W − Wᵀ − γI) h_{t−1} + U x_t + b). Equations and papers in docs/models.md."),
    key("model.dtype", Kind::Choice(&["f64", "f32"]), "\"f64\"",
        "Element type of the training core. `f64`: the fidelity default; `f32`: faster (ratios in docs/performance.md), about 7 significant digits. The probe keeps its range in both (it rescales every step); checkpoints are written in this type."),
    key("model.hidden", Kind::Int { min: 1, max: MAX_HIDDEN }, "32",
        "Hidden size H."),
    key("model.activation", Kind::Choice(&["tanh", "sigmoid", "relu", "identity"]), "\"tanh\"",
        "σ, the hidden activation of the `rnn` and `indrnn` cells (`indrnn`: `relu` unless set). The other cells have their own and refuse any other value."),
    key("model.init", Kind::Choice(&["xavier", "normal", "orthogonal", "identity", "sparse", "henaff", "cayley"]), "\"xavier\"",
        "Initialisation of W, each H×H gate block separately (the `exprnn`'s P, the `cornn`'s W and Wz). `xavier`: Glorot uniform; `normal`: N(0, model.std²); `orthogonal`: a random orthogonal matrix; `identity`: W = I (IRNN); `sparse`: Pascanu et al. 2013, `model.sparsity` N(0,1) inputs per unit rescaled to spectral radius `model.spectral_radius`; `henaff`, `cayley` (`exprnn` only, even H): A of 2×2 rotation blocks, as the expRNN's code. Then W is multiplied by `model.scale`. Unless set: `exprnn` `henaff`, `antisymmetric` N(0, 1/H). Not used by `indrnn`, whose u is drawn as its paper's code (docs/models.md)."),
    key("model.init_io", Kind::Choice(&["xavier", "normal", "orthogonal"]), "\"xavier\"",
        "Initialisation of U (input→hidden, per gate block) and V (hidden→output). `indrnn`: U ~ N(0, 0.001²) unless set, as its paper's code."),
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
    key("model.recurrent_max", Kind::OffOrPositive { off: "auto", max: 1e3 }, "\"auto\"",
        "`indrnn`: the bound on every |u_i|, applied after each update (Li et al. 2018). `auto`: 2^(1/T), T = `task.seq_len` (the sequence's steps for `hello` and `copy`)."),
    key("model.dt", Kind::OffOrPositive { off: "auto", max: 1e3 }, "\"auto\"",
        "`cornn`: the time step Δt. `auto`: 0.06, the paper's adding-problem script."),
    key("model.gamma", Kind::OffOrPositive { off: "auto", max: 1e6 }, "\"auto\"",
        "`cornn`: γ, the restoring force on y (`auto`: 66, the paper's adding-problem script); `antisymmetric`: γ, the diffusion in W − Wᵀ − γI (`auto`: 0.01)."),
    key("model.epsilon", Kind::OffOrPositive { off: "auto", max: 1e6 }, "\"auto\"",
        "`cornn`: ε, the damping of z (`auto`: 15, the paper's adding-problem script); `antisymmetric`: ε, the Euler step (`auto`: 0.01)."),
    key("model.layers", Kind::Int { min: 1, max: 16 }, "1",
        "L, the recurrent layers stacked (PyTorch's `num_layers`): layer l+1 reads layer l's output, the head reads the top layer. Each layer has its own U, W, b, drawn as one layer's, bottom to top."),
    key("model.residual", Kind::Bool, "false",
        "From the second layer on, a layer passes up its input plus its cell's state, y = x + h, while its recurrence runs on h alone (GNMT's residual stacks): the remedy for depth. No effect when `model.layers` = 1."),
    key("model.dropout", Kind::Float { min: 0.0, max: 0.999_999, open_min: false }, "0.0",
        "p of inverted dropout between layers during training (not after the top layer), as PyTorch's `dropout`; masks from the run's own seeded stream. Evaluation, the probe and the spectrum run without it. No effect when `model.layers` = 1."),
    key("train.steps", Kind::Int { min: 1, max: MAX_STEPS }, "1000",
        "Training steps (parameter updates), one fresh batch each."),
    key("train.batch", Kind::Int { min: 1, max: MAX_BATCH }, "32",
        "Sequences per training batch B."),
    key("train.optimizer", Kind::Choice(&["sgd", "adam", "rmsprop", "adagrad"]), "\"sgd\"",
        "The optimiser, with PyTorch's update rules (docs/models.md)."),
    key("train.lr", Kind::Float { min: 0.0, max: 1e6, open_min: true }, "0.01",
        "Learning rate (the peak rate when a schedule or warm-up applies)."),
    key("train.lr_recurrent", Kind::OffOrPositive { off: "auto", max: 1e6 }, "\"auto\"",
        "`exprnn`: the learning rate of P, the skew-symmetric parameter of its orthogonal W (the paper trains it apart, e.g. 1e-4 against 1e-3). Follows the schedule as `train.lr` does. `auto`: `train.lr`."),
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
        "Write each run's initial and final weights to `checkpoints/<run_id>/{init,final}.safetensors`."),
    key("output.charts", Kind::Bool, "true",
        "Draw the charts at the end of the sweep."),
    key("output.formats", Kind::Subset(&["png", "svg", "pdf"]), "[\"png\", \"svg\", \"pdf\"]",
        "The files each chart is written as: PNG (a bitmap for screens), SVG (vector, inlined in `report.html`) and PDF (vector with its font embedded, for LaTeX's `\\includegraphics`). `report.md` embeds the PNG, `report.html` the SVG; a format left out is not written (and the page or report falls back to what is there)."),
    key("plot.x", Kind::KeyRef, "\"auto\"",
        "Swept key on the x axis of every summary chart (final loss, accuracy, decay factor, divergence). `auto`: `task.seq_len` if swept, else the first swept numeric key other than `train.seed`, else the first swept key (as categories); `none`: one category per configuration. Numbers are drawn on a log axis when positive and spanning a decade or more, else a linear one; words as categories; a `none` among numbers (`train.clip`) sits past the largest."),
    key("plot.color", Kind::KeyRef, "\"auto\"",
        "Swept key (or `variant`) whose values colour the lines; a numeric key gets an ordered palette (light = small) and a legend in value order. `auto`: `variant` if the spec has variants, else `model.activation` if it tells lines apart, else the first such key; `none`: one colour."),
    key("plot.panel", Kind::KeyRef, "\"auto\"",
        "Swept key with one panel per value. `auto`: `task.seq_len` if swept (not on charts whose x axis it is). With `auto` or a key, a panel that would hold more than 8 lines is split further by the line key with the fewest values; `none`: a single panel, however many lines."),
    key("plot.heatmap", Kind::KeyPair, "\"auto\"",
        "The two swept keys of the `final_loss_heatmap` chart, x first: `[\"train.lr\", \"train.clip\"]`. One cell per pair of values holds the geometric mean over seeds of the final loss on a log colour scale; the other swept keys (but the seed) make panels. `auto`: the first two swept numeric keys other than `train.seed` with two or more values each (no heatmap when there are fewer); `none`: no heatmap."),
];

/// Whether `key` may appear in `[sweep]` (everything but the experiment's name, description,
/// output folder and chart settings).
pub fn sweepable(key: &str) -> bool {
    KEYS.iter().any(|k| k.key == key)
        && !matches!(key, "name" | "description" | "output.dir" | "output.formats")
        && !key.starts_with("plot.")
}

/// The definition of `key`, if it is one.
pub fn keydef(key: &str) -> Option<&'static KeyDef> {
    KEYS.iter().find(|k| k.key == key)
}

/// The default of a key as a [`Value`].
pub fn default_value(def: &KeyDef) -> Value {
    let parsed = DeValue::parse(def.default).expect("defaults are valid TOML");
    let value = super::convert(&parsed, 0).expect("defaults convert");
    def.kind.check(&value).expect("defaults are in range")
}

/// Checks every value of a sweep list (each in range, none twice) and returns them canonical.
pub(super) fn check_list(def: &KeyDef, items: &[Value]) -> Result<Vec<Value>, String> {
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

impl KeyDef {
    /// The one-line meaning: the doc's first sentence (up to the first full stop followed by a
    /// space), as `runner keys` prints it.
    pub fn summary(&self) -> &'static str {
        match self.doc.find(". ") {
            Some(end) => &self.doc[..=end],
            None => self.doc,
        }
    }
}

/// The sections of the spec, in reference order, each with the dot that starts its keys.
fn sections() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for def in KEYS {
        if let Some(dot) = def.key.find('.') {
            let section = &def.key[..=dot];
            if !out.contains(&section) {
                out.push(section);
            }
        }
    }
    out
}

/// The keys whose names start with `prefix`, in reference order (every key for an empty
/// prefix). A prefix no key starts with is refused with the nearest known section or key:
/// "no key starts with `modle.` (did you mean `model.`?)".
pub fn select(prefix: &str) -> Result<Vec<&'static KeyDef>, String> {
    let found: Vec<&'static KeyDef> = KEYS.iter().filter(|k| k.key.starts_with(prefix)).collect();
    if !found.is_empty() {
        return Ok(found);
    }
    // Nearest: the section or key whose first characters are closest to what was typed; a
    // section wins a tie with its keys.
    let typed = prefix.chars().count();
    let head = |c: &str| c.chars().take(typed).collect::<String>();
    let nearest = sections()
        .into_iter()
        .chain(KEYS.iter().map(|k| k.key))
        .min_by_key(|c| super::edit_distance(prefix, &head(c)))
        .expect("the table has keys");
    Err(format!(
        "no key starts with `{prefix}` (did you mean `{nearest}`?); the sections are {} and the keys `name` and `description`",
        sections()
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

/// The key reference as a Markdown table (key, type, default, range, sweepable, meaning): the
/// table in `docs/spec.md`, printed by `runner keys --markdown`.
pub fn markdown_table(defs: &[&KeyDef]) -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut t = String::from("| key | type | default | range | sweep | meaning |\n|---|---|---|---|---|---|\n");
    for k in defs {
        t.push_str(&format!(
            "| `{}` | {} | `{}` | {} | {} | {} |\n",
            k.key,
            cell(&k.kind.type_name()),
            k.default,
            cell(&k.kind.range()),
            if sweepable(k.key) { "yes" } else { "no" },
            cell(k.doc)
        ));
    }
    t
}

/// The key reference for a terminal: per key one line of key, type, default and range, and
/// under it the meaning, indented: its first sentence, or all of it wrapped to 90 columns when
/// `long`. Non-sweepable keys say so.
pub fn terminal_text(defs: &[&KeyDef], long: bool) -> String {
    let width = defs.iter().map(|k| k.key.chars().count()).max().unwrap_or(0);
    let mut out = String::new();
    for k in defs {
        let sweep = if sweepable(k.key) { "" } else { "  (not sweepable)" };
        out.push_str(&format!(
            "{:<width$}  {}, default {}, range {}{sweep}\n",
            k.key,
            k.kind.type_name(),
            k.default,
            k.kind.range()
        ));
        let meaning = if long { k.doc } else { k.summary() };
        for line in wrap(meaning, 86) {
            out.push_str("    ");
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

/// Splits `text` into lines of at most `width` characters at spaces (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_selects_its_section_only() {
        let model = select("model.").unwrap();
        assert!(model.len() > 5);
        assert!(model.iter().all(|k| k.key.starts_with("model.")));
        assert_eq!(select("").unwrap().len(), KEYS.len());
        assert_eq!(
            select("train.lr").unwrap().iter().map(|k| k.key).collect::<Vec<_>>(),
            ["train.lr", "train.lr_recurrent", "train.lr_min"]
        );
    }

    #[test]
    fn an_unknown_prefix_names_the_nearest_section_or_key() {
        let e = select("modle.").unwrap_err();
        assert!(e.contains("did you mean `model.`"), "{e}");
        let e = select("model.activaton").unwrap_err();
        assert!(e.contains("did you mean `model.activation`"), "{e}");
        let e = select("trian").unwrap_err();
        assert!(e.contains("did you mean `train.`"), "{e}");
    }

    #[test]
    fn every_key_has_a_one_line_meaning_of_several_words() {
        for k in KEYS {
            let s = k.summary();
            assert!(s.split_whitespace().count() >= 3 && s.len() <= 300, "{}: {s:?}", k.key);
        }
    }

    #[test]
    fn wrapping_keeps_every_word_and_the_width() {
        let text = "one two three four five six seven eight nine ten eleven twelve";
        let lines = wrap(text, 14);
        assert!(lines.iter().all(|l| l.chars().count() <= 14), "{lines:?}");
        assert_eq!(lines.join(" "), text);
    }
}
