//! "What to run": expands a validated spec into the list of resolved run configurations, in a
//! stable order (the Cartesian product of the `[sweep]` lists, first key varying slowest, values
//! in the order written), each with a stable id hashed from its resolved configuration.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::elem;
use crate::optim::{Clip, OptimConfig, Schedule, ScheduleKind};
use crate::real::Dtype;
use crate::rnn::{Activation, Cell, CellInit, Coefs, Init, RnnConfig};
use crate::run::{ProbeConfig, RunConfig, TrainConfig};
use crate::spec::{Origin, Problem, Spec, SpecErrors, Value, Variant};
use crate::task::{Corpus, Task, TaskConfig};

/// Keys that do not change a run's result and so are left out of its identity.
fn affects_result(key: &str) -> bool {
    !matches!(
        key,
        "name" | "description" | "output.dir" | "output.checkpoints" | "output.charts" | "output.formats"
    ) && !key.starts_with("plot.")
}

/// FNV-1a, 64 bits: a tiny, fixed hash whose value never changes between versions or
/// platforms, used for run ids and the spec hash.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Canonical JSON of a settings map (keys sorted, numbers in shortest round-trip form).
pub fn canonical_json(settings: &BTreeMap<&'static str, Value>) -> String {
    let map: serde_json::Map<String, serde_json::Value> =
        settings.iter().map(|(k, v)| (k.to_string(), v.to_json())).collect();
    serde_json::Value::Object(map).to_string()
}

/// Expands the sweep. Cross-key rules (those that involve more than one key) are checked here,
/// for every run, before anything runs. Variants are the slowest axis; a `--set` beats a
/// variant, which beats the spec's sections.
pub fn expand(spec: &Spec) -> Result<Vec<RunConfig>, SpecErrors> {
    let mut runs = Vec::new();
    let mut problems: Vec<Problem> = Vec::new();
    let mut corpora = Corpora::new();
    let variants: Vec<Option<&Variant>> = if spec.variants.is_empty() {
        vec![None]
    } else {
        spec.variants.iter().map(Some).collect()
    };
    let per_variant: usize = spec.sweep.iter().map(|(_, v, _)| v.len()).product();
    for index in 0..variants.len() * per_variant {
        let variant = variants[index / per_variant];
        // Mixed-radix decomposition of the index: the last key varies fastest.
        let mut rest = index % per_variant;
        let mut picks = vec![0; spec.sweep.len()];
        for (i, (_, values, _)) in spec.sweep.iter().enumerate().rev() {
            picks[i] = rest % values.len();
            rest /= values.len();
        }
        let mut settings: BTreeMap<&'static str, Value> =
            spec.base.iter().map(|(k, l)| (*k, l.value.clone())).collect();
        let mut swept = Vec::with_capacity(spec.sweep.len() + 1);
        if let Some(v) = variant {
            for (key, value) in &v.settings {
                if !matches!(spec.base[key].origin, Origin::Set(_)) {
                    settings.insert(key, value.clone());
                }
            }
            swept.push(("variant", Value::Str(v.label.clone())));
        }
        for ((key, values, _), &pick) in spec.sweep.iter().zip(&picks) {
            settings.insert(key, values[pick].clone());
            swept.push((*key, values[pick].clone()));
        }
        match resolve(spec, variant, index, swept, settings, &mut corpora) {
            Ok(run) => runs.push(run),
            Err(p) => {
                if !problems.iter().any(|q| q.message == p.message && q.key == p.key) {
                    problems.push(p);
                }
            }
        }
    }
    if problems.is_empty() {
        problems = unused_cell_keys(spec, &runs);
    }
    if problems.is_empty() {
        Ok(runs)
    } else {
        Err(SpecErrors {
            file: spec.file.clone(),
            problems,
        })
    }
}

/// One run's flat settings while they are turned into typed configurations: the values, and
/// where each came from (for a problem's file, line and column).
struct Settings<'s> {
    spec: &'s Spec,
    variant: Option<&'s Variant>,
    values: BTreeMap<&'static str, Value>,
}

impl Settings<'_> {
    /// Where `key`'s value came from: its sweep list, else the variant that sets it, else the
    /// spec's sections, `--set` or its default.
    fn origin(&self, key: &str) -> Origin {
        if let Some((_, _, o)) = self.spec.sweep.iter().find(|(k, _, _)| *k == key) {
            return o.clone();
        }
        match self.variant {
            Some(v) if v.settings.iter().any(|(k, _)| *k == key) => v.origin.clone(),
            _ => self.spec.base[key].origin.clone(),
        }
    }

    /// A problem with `key`, located where its value came from.
    fn problem(&self, key: &str, message: String) -> Problem {
        Problem {
            key: Some(key.to_string()),
            origin: self.origin(key),
            message,
        }
    }

    fn text(&self, k: &str) -> String {
        match &self.values[k] {
            Value::Str(s) => s.clone(),
            other => other.to_string(),
        }
    }

    fn int(&self, k: &str) -> i64 {
        match self.values[k] {
            Value::Int(i) => i,
            _ => unreachable!("{k} validated as an integer"),
        }
    }

    fn float(&self, k: &str) -> f64 {
        match self.values[k] {
            Value::Float(x) => x,
            _ => unreachable!("{k} validated as a float"),
        }
    }

    /// A number, or `None` for its "off" word (`"none"`, `"full"`).
    fn off_or_float(&self, k: &str) -> Option<f64> {
        match self.values[k] {
            Value::Float(x) => Some(x),
            _ => None,
        }
    }

    fn flag(&self, k: &str) -> bool {
        self.values[k] == Value::Bool(true)
    }
}

/// Builds one run's typed configuration from its flat settings, section by section, each
/// checking the rules that involve more than one key; the first broken rule is the problem.
fn resolve(
    spec: &Spec,
    variant: Option<&Variant>,
    index: usize,
    swept: Vec<(&'static str, Value)>,
    settings: BTreeMap<&'static str, Value>,
    corpora: &mut Corpora,
) -> Result<RunConfig, Problem> {
    let s = Settings {
        spec,
        variant,
        values: settings,
    };
    let task = task_of(&s, corpora)?;
    let shape = Task::new(task.clone());
    let mut s = s;
    cell_defaults(&mut s);
    let model = model_of(&s, &shape)?;
    let train = train_of(&s, shape.seq_len())?;
    let probe = probe_of(&s, &model)?;
    let (id, resolved) = identity(s.values, variant);
    Ok(RunConfig {
        index,
        id,
        swept,
        resolved,
        task,
        model,
        train,
        probe,
    })
}

/// Text corpora already read, by path and window length, so that a sweep reads each once.
type Corpora = HashMap<(String, usize), Result<Arc<Corpus>, String>>;

/// `[task]`: the task and its data. `temporal_order` needs T ≥ 10; `hello` takes its length
/// from its word (at least 2 characters) and refuses `task.seq_len`; `text` reads its corpus.
fn task_of(s: &Settings<'_>, corpora: &mut Corpora) -> Result<TaskConfig, Problem> {
    let seq_len = s.int("task.seq_len") as usize;
    let eval_size = s.int("task.eval_size") as usize;
    Ok(match s.text("task.kind").as_str() {
        "adding" => TaskConfig::Adding { seq_len, eval_size },
        "copy" => TaskConfig::Copy {
            delay: seq_len,
            eval_size,
        },
        "temporal_order" => {
            if seq_len < 10 {
                return Err(s.problem(
                    "task.seq_len",
                    format!(
                        "{seq_len} is too short for temporal_order, whose relevant symbols sit at T/10 … 2T/10 and 5T/10 … 6T/10; use 10 or more"
                    ),
                ));
            }
            TaskConfig::TemporalOrder { seq_len, eval_size }
        }
        "text" => {
            let path = s.text("task.path");
            let corpus = corpora
                .entry((path.clone(), seq_len))
                .or_insert_with(|| Corpus::load(&path, seq_len).map(Arc::new))
                .clone()
                .map_err(|m| s.problem("task.path", m))?;
            TaskConfig::Text {
                path,
                corpus,
                seq_len,
                eval_size,
            }
        }
        _ => {
            if s.spec.is_set("task.seq_len") {
                return Err(s.problem(
                    "task.seq_len",
                    "does not apply to the hello task, whose length comes from `task.word`; remove it".into(),
                ));
            }
            let word = s.text("task.word");
            if word.chars().count() < 2 {
                return Err(s.problem(
                    "task.word",
                    format!("\"{word}\" is too short: the hello task needs at least 2 characters"),
                ));
            }
            TaskConfig::Hello { word }
        }
    })
}

/// Keys that belong to some cells only, with those cells: set in a spec where no run uses one
/// of them, they are refused (they would change nothing).
const CELL_KEYS: [(&str, &[&str]); 5] = [
    ("model.recurrent_max", &["indrnn"]),
    ("model.dt", &["cornn"]),
    ("model.gamma", &["cornn", "antisymmetric"]),
    ("model.epsilon", &["cornn", "antisymmetric"]),
    ("train.lr_recurrent", &["exprnn"]),
];

/// The cells' own defaults where the spec leaves a key unset, written into the run's settings
/// so that its resolved configuration says what ran: the IndRNN's σ is ReLU, the expRNN's
/// initialisation `henaff`.
fn cell_defaults(s: &mut Settings<'_>) {
    let cell = s.text("model.cell");
    let mut default = |key: &'static str, cells: &str, value: &str| {
        if cell == cells && !s.spec.is_set(key) {
            s.values.insert(key, Value::Str(value.into()));
        }
    };
    default("model.activation", "indrnn", "relu");
    default("model.init", "exprnn", "henaff");
}

/// The cell keys ([`CELL_KEYS`]) the spec sets although none of its runs uses a cell they
/// belong to.
fn unused_cell_keys(spec: &Spec, runs: &[RunConfig]) -> Vec<Problem> {
    CELL_KEYS
        .iter()
        .filter(|(key, cells)| spec.is_set(key) && !runs.iter().any(|r| cells.contains(&r.model.cell.name())))
        .map(|(key, cells)| {
            let origin = match spec.sweep.iter().find(|(k, _, _)| k == key) {
                Some((_, _, o)) => o.clone(),
                None if spec.base[key].origin != Origin::Default => spec.base[key].origin.clone(),
                None => spec
                    .variants
                    .iter()
                    .find(|v| v.settings.iter().any(|(k, _)| k == key))
                    .map_or(Origin::Default, |v| v.origin.clone()),
            };
            Problem {
                key: Some(key.to_string()),
                origin,
                message: format!(
                    "applies to the {} cell{} only, and no run of this spec uses {}; remove it or set model.cell",
                    cells.join(" and "),
                    if cells.len() > 1 { "s" } else { "" },
                    if cells.len() > 1 { "them" } else { "it" },
                ),
            }
        })
        .collect()
}

/// `[model]`: the cell, its sizes (input and output from the task) and initialisation;
/// `model.activation` applies to the plain cell and the IndRNN only.
fn model_of(s: &Settings<'_>, shape: &Task) -> Result<RnnConfig, Problem> {
    let activation = Activation::from_name(&s.text("model.activation")).expect("validated");
    let cell = Cell::from_name(&s.text("model.cell"), activation).expect("validated");
    if cell.activation().is_none() && activation != Activation::Tanh {
        return Err(s.problem(
            "model.activation",
            format!(
                "applies to the rnn and indrnn cells only; the {} cell has its own nonlinearities, so remove it or use model.cell = \"rnn\"",
                cell.name()
            ),
        ));
    }
    let init_name = s.text("model.init");
    let hidden = s.int("model.hidden") as usize;
    if matches!(init_name.as_str(), "henaff" | "cayley") {
        if cell != Cell::ExpRnn {
            return Err(s.problem(
                "model.init",
                format!(
                    "\"{init_name}\" draws the expRNN's skew-symmetric A and applies to model.cell = \"exprnn\" only; the {} cell takes xavier, normal, orthogonal, identity or sparse",
                    cell.name()
                ),
            ));
        }
        if hidden % 2 == 1 {
            return Err(s.problem(
                "model.hidden",
                format!(
                    "{hidden} is odd, but the {init_name} initialisation builds A from 2×2 blocks; use an even hidden size (e.g. {})",
                    hidden + 1
                ),
            ));
        }
    }
    let init = Init::from_name(
        &init_name,
        s.int("model.sparsity") as usize,
        s.float("model.spectral_radius"),
    )
    .expect("validated");
    let auto = |k: &str, default: f64| s.off_or_float(k).unwrap_or(default);
    let cell = match cell.coefs() {
        Some(d) => cell.with_coefs(Coefs {
            dt: if matches!(cell, Cell::CoRnn(_)) {
                auto("model.dt", d.dt)
            } else {
                d.dt
            },
            gamma: auto("model.gamma", d.gamma),
            epsilon: auto("model.epsilon", d.epsilon),
        }),
        None => cell,
    };
    let t = shape.seq_len() as f64;
    let top_range = elem::exp(elem::ln(2.0) / t); // 2^(1/T)
    let cell_init = match cell {
        Cell::IndRnn(_) => CellInit {
            recurrent_max: auto("model.recurrent_max", top_range),
            top_range,
            input_std: (!s.spec.is_set("model.init_io")).then_some(0.001),
            recurrent_std: None,
        },
        Cell::Antisymmetric(_) => CellInit {
            recurrent_std: (!s.spec.is_set("model.init")).then(|| 1.0 / (hidden as f64).sqrt()),
            ..CellInit::default()
        },
        _ => CellInit::default(),
    };
    Ok(RnnConfig {
        input: shape.input_dim(),
        hidden: s.int("model.hidden") as usize,
        output: shape.output_dim(),
        cell,
        init,
        init_io: Init::from_name(&s.text("model.init_io"), 0, 0.0).expect("validated"),
        std: s.float("model.std"),
        scale: s.float("model.scale"),
        forget_bias: s.float("model.forget_bias"),
        dtype: Dtype::from_name(&s.text("model.dtype")).expect("validated"),
        layers: s.int("model.layers") as usize,
        residual: s.flag("model.residual"),
        dropout: s.float("model.dropout"),
        cell_init,
    })
}

/// `[train]`: optimiser, schedule, clipping and BPTT window; the window may not be longer than
/// the sequence (`seq_len` steps), and Nesterov needs SGD with momentum.
fn train_of(s: &Settings<'_>, seq_len: usize) -> Result<TrainConfig, Problem> {
    let bptt = match s.values["train.bptt"] {
        Value::Int(k) => Some(k as usize),
        _ => None,
    };
    if let Some(k) = bptt
        && k > seq_len
    {
        return Err(s.problem(
            "train.bptt",
            format!(
                "window {k} is longer than the sequence ({seq_len} steps); use \"full\" or a value up to {seq_len}"
            ),
        ));
    }
    let optimizer = match s.text("train.optimizer").as_str() {
        "adam" => OptimConfig::Adam {
            beta1: s.float("train.beta1"),
            beta2: s.float("train.beta2"),
            eps: s.float("train.eps"),
        },
        "rmsprop" => OptimConfig::RmsProp {
            alpha: s.float("train.alpha"),
            eps: s.float("train.eps"),
        },
        "adagrad" => OptimConfig::Adagrad {
            eps: s.float("train.eps"),
        },
        _ => OptimConfig::Sgd {
            momentum: s.float("train.momentum"),
            nesterov: s.flag("train.nesterov"),
        },
    };
    if s.flag("train.nesterov") && !matches!(optimizer, OptimConfig::Sgd { momentum, .. } if momentum > 0.0) {
        return Err(s.problem(
            "train.nesterov",
            "needs train.optimizer = \"sgd\" and train.momentum > 0".into(),
        ));
    }
    let steps = s.int("train.steps") as u64;
    let schedule = Schedule {
        lr: s.float("train.lr"),
        kind: match s.text("train.schedule").as_str() {
            "step" => ScheduleKind::Step {
                size: s.int("train.step_size") as u64,
                gamma: s.float("train.gamma"),
            },
            "cosine" => ScheduleKind::Cosine {
                lr_min: s.float("train.lr_min"),
            },
            _ => ScheduleKind::Constant,
        },
        warmup: s.int("train.warmup") as u64,
        steps,
    };
    Ok(TrainConfig {
        steps,
        batch: s.int("train.batch") as usize,
        optimizer,
        schedule,
        clip: Clip {
            norm: s.off_or_float("train.clip"),
            value: s.off_or_float("train.clip_value"),
        },
        seed: s.int("train.seed") as u64,
        bptt,
        eval_every: s.int("train.eval_every") as u64,
        lr_recurrent: s.off_or_float("train.lr_recurrent"),
    })
}

/// `[probe]`: the gradient-decay probe and the spectrum, which has at most as many exponents as
/// the network's state has dimensions (H per layer, or 2H for the LSTM's h and c).
fn probe_of(s: &Settings<'_>, model: &RnnConfig) -> Result<ProbeConfig, Problem> {
    let spectrum = s.int("probe.spectrum") as usize;
    let (cell, layers) = (model.cell, model.layers);
    let states = cell.spec().states.len();
    let state_dim = layers * states * model.hidden;
    if spectrum > state_dim {
        return Err(s.problem(
            "probe.spectrum",
            format!(
                "{spectrum} exponents asked for, but the {} cell's state has {state_dim} dimensions (H{}{}); use a value up to {state_dim}",
                cell.name(),
                if states > 1 { ", and as many for c" } else { "" },
                if layers > 1 { format!(", in each of {layers} layers") } else { String::new() },
            ),
        ));
    }
    Ok(ProbeConfig {
        every: s.int("probe.every") as u64,
        batch: s.int("probe.batch") as usize,
        spectrum,
    })
}

/// A run's identity: its resolved settings (every key that affects the result, and the
/// variant's label) and their hash, the run id.
fn identity(
    mut settings: BTreeMap<&'static str, Value>,
    variant: Option<&Variant>,
) -> (String, BTreeMap<&'static str, Value>) {
    if let Some(v) = variant {
        settings.insert("variant", Value::Str(v.label.clone()));
    }
    // A key added after the first release, at the value that leaves a run as it was (a
    // spectrum left off, one layer), adds nothing to the run: such runs keep the ids they had
    // before the key existed, so their results folders still resume.
    let neutral = |k: &str, v: &Value| match k {
        "probe.spectrum" => *v == Value::Int(0),
        "model.layers" => *v == Value::Int(1),
        "model.residual" => *v == Value::Bool(false),
        "model.dropout" => *v == Value::Float(0.0),
        "model.recurrent_max" | "model.dt" | "model.gamma" | "model.epsilon" | "train.lr_recurrent" => {
            *v == Value::Str("auto".into())
        }
        _ => false,
    };
    let resolved: BTreeMap<&'static str, Value> = settings
        .into_iter()
        .filter(|(k, v)| affects_result(k) && !neutral(k, v))
        .collect();
    let id = format!("{:016x}", fnv1a(canonical_json(&resolved).as_bytes()));
    (id, resolved)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse;

    #[test]
    fn cartesian_product_first_key_slowest() {
        let text = "[sweep]\n\"task.seq_len\" = [10, 20]\n\"model.activation\" = [\"tanh\", \"relu\", \"sigmoid\"]\n";
        let spec = parse("x.toml", text, "x", &[]).unwrap();
        let runs = expand(&spec).unwrap();
        let labels: Vec<String> = runs.iter().map(|r| r.label()).collect();
        assert_eq!(
            labels,
            [
                "task.seq_len=10, model.activation=tanh",
                "task.seq_len=10, model.activation=relu",
                "task.seq_len=10, model.activation=sigmoid",
                "task.seq_len=20, model.activation=tanh",
                "task.seq_len=20, model.activation=relu",
                "task.seq_len=20, model.activation=sigmoid",
            ]
        );
        let mut ids: Vec<&str> = runs.iter().map(|r| r.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 6, "ids are distinct");
    }

    #[test]
    fn run_id_depends_on_result_keys_only() {
        let a = expand(&parse("a.toml", "name = \"a\"\n[train]\nlr = 1\n", "a", &[]).unwrap()).unwrap();
        let b = expand(
            &parse(
                "b.toml",
                "name = \"b\"\n[train]\nlr = 1.0\n[plot]\ncolor = \"none\"\n",
                "b",
                &[],
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(a[0].id, b[0].id);
        let c = expand(&parse("c.toml", "[train]\nlr = 0.5\n", "c", &[]).unwrap()).unwrap();
        assert_ne!(a[0].id, c[0].id);
    }

    #[test]
    fn cross_key_rules_are_checked_before_running() {
        let err = expand(&parse("x.toml", "[task]\nkind = \"hello\"\nseq_len = 9\n", "x", &[]).unwrap()).unwrap_err();
        assert_eq!(err.problems[0].key.as_deref(), Some("task.seq_len"));
        let err =
            expand(&parse("x.toml", "[task]\nseq_len = 10\n[train]\nbptt = 20\n", "x", &[]).unwrap()).unwrap_err();
        assert_eq!(err.problems[0].key.as_deref(), Some("train.bptt"));
    }
}
