//! The experiment spec: every key the tool understands (its type, default, allowed range and
//! documentation), parsing a TOML file plus `--set` overrides into a flat map of dotted keys,
//! and validating every value once, up front, with errors that name file, line, column and key.
//!
//! A spec is kept flat on purpose: `[model] activation = "tanh"`, `--set model.activation=tanh`
//! and `[sweep] "model.activation" = [...]` all speak of the same dotted key, so one table of
//! [`KeyDef`]s serves the file, the command line, the sweep, `runner keys` and the reference in docs/spec.md.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub mod keys;

use keys::check_list;
pub use keys::{
    KEYS, KeyDef, Kind, MAX_BATCH, MAX_HIDDEN, MAX_RUNS, MAX_SEQ_LEN, MAX_STEPS, default_value, keydef, sweepable,
};

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

/// Levenshtein distance between `a` and `b`, in characters.
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
///
/// The stages, one function each, in the order a reader meets them: the TOML document split
/// into its parts (`Reader::document`); the plain settings of `[task]`, `[model]`, `[train]`,
/// `[probe]`, `[output]` and `[plot]`, each value against its key's range
/// (`Reader::settings`); `[sweep]` (`Reader::sweep`); the `[[variant]]` tables
/// (`Reader::variants`); the `--set` overrides (`Reader::overrides`); defaults
/// (`Reader::defaults`); then the rules on the whole (the run count, the `plot.*` keys).
/// Every stage records its problems and goes on, so that one report lists them all.
pub fn parse(file: &str, text: &str, stem: &str, sets: &[String]) -> Result<Spec, SpecErrors> {
    let mut r = Reader {
        text,
        problems: Vec::new(),
    };
    let doc = DeTable::parse(text).map_err(|e| SpecErrors {
        file: file.to_string(),
        problems: vec![Problem {
            key: None,
            origin: e.span().map_or(Origin::Default, |s| r.at(s)),
            message: format!("TOML syntax error: {}", e.message().trim()),
        }],
    })?;
    let parts = r.document(&doc);
    let mut given = r.settings(parts.settings);
    let mut sweep = r.sweep(parts.sweep, &given);
    let variants = r.variants(parts.variants, &sweep);
    r.overrides(sets, &mut given, &mut sweep);
    let base = r.defaults(given, stem);
    r.run_count(&variants, &sweep);

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
    r.problems.extend(check_plot_keys(&spec));
    if r.problems.is_empty() {
        Ok(spec)
    } else {
        Err(SpecErrors {
            file: file.to_string(),
            problems: r.problems,
        })
    }
}

/// A TOML document split into what each stage reads: the plain settings, the `[sweep]` entries
/// and the `[[variant]]` tables (each with the span where it starts), all flattened to dotted
/// keys.
struct Parts {
    settings: Vec<Flat>,
    sweep: Vec<Flat>,
    variants: Vec<(std::ops::Range<usize>, Vec<Flat>)>,
}

/// The swept keys, their values and where each list was given, in file order.
type Sweep = Vec<(&'static str, Vec<Value>, Origin)>;

/// One spec text being read: the text (for line and column numbers) and the problems found so
/// far, in the order the stages find them.
struct Reader<'t> {
    text: &'t str,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    /// The origin of a byte span of the text.
    fn at(&self, span: std::ops::Range<usize>) -> Origin {
        let (line, col) = line_col(self.text, span.start);
        Origin::File { line, col }
    }

    /// Records a problem with `key` at `origin`.
    fn problem(&mut self, key: impl Into<String>, origin: Origin, message: impl Into<String>) {
        self.problems.push(Problem {
            key: Some(key.into()),
            origin,
            message: message.into(),
        });
    }

    /// Records an unknown key, with the nearest known one when it looks like a typo.
    fn unknown(&mut self, key: &str, origin: Origin, in_sweep: bool) {
        let hint = suggest(key, KEYS.iter().map(|k| k.key))
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default();
        let place = if in_sweep { " in [sweep]" } else { "" };
        self.problem(
            key,
            origin,
            format!("unknown key{place}{hint}; `runner keys` lists every key"),
        );
    }

    /// Splits the document into plain settings, the `[sweep]` section and the `[[variant]]`
    /// tables; a `sweep` or `variant` of the wrong shape is a problem.
    fn document(&mut self, doc: &Spanned<DeTable<'_>>) -> Parts {
        let mut parts = Parts {
            settings: Vec::new(),
            sweep: Vec::new(),
            variants: Vec::new(),
        };
        for (k, v) in doc.get_ref().iter() {
            match (k.get_ref().as_ref(), v.get_ref()) {
                ("variant", DeValue::Array(items)) if items.iter().all(|i| i.get_ref().is_table()) => {
                    for item in items.iter() {
                        let mut flat = Vec::new();
                        if let DeValue::Table(t) = item.get_ref() {
                            flatten("", t, 1, &mut flat);
                        }
                        parts.variants.push((item.span(), flat));
                    }
                }
                ("variant", _) => self.problem(
                    "variant",
                    self.at(k.span()),
                    "must be an array of tables: write `[[variant]]` followed by `label = \"...\"` and the keys it sets",
                ),
                ("sweep", DeValue::Table(t)) => flatten("", t, 1, &mut parts.sweep),
                ("sweep", _) => self.problem(
                    "sweep",
                    self.at(k.span()),
                    "must be a table: write `[sweep]` followed by `\"key\" = [values]` lines",
                ),
                (_, DeValue::Table(t)) => flatten(k.get_ref(), t, 1, &mut parts.settings),
                (name, _) => parts.settings.push((name.to_string(), k.span(), convert(v, 0))),
            }
        }
        parts
    }

    /// The plain settings: each a known key with a value in its range.
    fn settings(&mut self, settings: Vec<Flat>) -> BTreeMap<&'static str, Located> {
        let mut given = BTreeMap::new();
        for (name, span, value) in settings {
            let origin = self.at(span);
            let Some(def) = keydef(&name) else {
                self.unknown(&name, origin, false);
                continue;
            };
            match value
                .map_err(|(s, m)| (self.at(s), m))
                .and_then(|v| def.kind.check(&v).map_err(|m| (origin.clone(), m)))
            {
                Ok(value) => {
                    given.insert(def.key, Located { value, origin });
                }
                Err((origin, message)) => self.problem(name, origin, message),
            }
        }
        given
    }

    /// `[sweep]`: each entry a sweepable key with a non-empty list of distinct values in its
    /// range, not also set as a plain setting; kept in the order the file lists them.
    fn sweep(&mut self, mut entries: Vec<Flat>, given: &BTreeMap<&'static str, Located>) -> Sweep {
        entries.sort_by_key(|(_, span, _)| span.start);
        let mut sweep = Sweep::new();
        for (name, span, value) in entries {
            let origin = self.at(span);
            let def = match keydef(&name) {
                Some(def) if sweepable(def.key) => def,
                Some(def) => {
                    self.problem(def.key, origin, "cannot be swept; set it outside [sweep]");
                    continue;
                }
                None => {
                    self.unknown(&name, origin, true);
                    continue;
                }
            };
            match value {
                Err((s, m)) => self.problem(name, self.at(s), m),
                Ok(Value::List(items)) if items.is_empty() => self.problem(
                    name,
                    origin,
                    "the sweep list is empty; give at least one value or remove the line",
                ),
                Ok(Value::List(items)) => match check_list(def, &items) {
                    Ok(items) => {
                        if given.contains_key(def.key) {
                            self.problem(name, origin.clone(), "is both set and swept; remove one of the two");
                        }
                        sweep.push((def.key, items, origin));
                    }
                    Err(m) => self.problem(name, origin, m),
                },
                Ok(other) => self.problem(
                    name,
                    origin,
                    format!(
                        "a sweep entry must be a list of values, got {}; write [{other}]",
                        other.type_name()
                    ),
                ),
            }
        }
        sweep
    }

    /// The `[[variant]]` tables: each a unique label and sweepable keys in range, none of them
    /// swept.
    fn variants(&mut self, tables: Vec<(std::ops::Range<usize>, Vec<Flat>)>, sweep: &Sweep) -> Vec<Variant> {
        let mut variants: Vec<Variant> = Vec::new();
        for (span, flat) in tables {
            let origin = self.at(span);
            let (mut label, mut bad_label) = (None, false);
            let mut set = Vec::new();
            for (name, kspan, value) in flat {
                let korigin = self.at(kspan);
                let value = match value {
                    Ok(v) => v,
                    Err((s, m)) => {
                        self.problem(name, self.at(s), m);
                        continue;
                    }
                };
                if name == "label" {
                    match keydef("name").expect("name key").kind.check(&value) {
                        Ok(Value::Str(l)) => label = Some(l),
                        _ => {
                            bad_label = true;
                            self.problem(
                                "variant.label",
                                korigin,
                                format!(
                                    "{} is not a valid label: use 1 to 100 characters from A-Z a-z 0-9 _ . -",
                                    match &value {
                                        Value::Str(text) => format!("\"{text}\""),
                                        other => other.to_string(),
                                    }
                                ),
                            )
                        }
                    }
                    continue;
                }
                let def = match keydef(&name) {
                    Some(def) if sweepable(def.key) => def,
                    Some(def) => {
                        self.problem(def.key, korigin, "cannot be set by a variant");
                        continue;
                    }
                    None => {
                        self.unknown(&name, korigin, false);
                        continue;
                    }
                };
                if sweep.iter().any(|(k, _, _)| *k == def.key) {
                    self.problem(
                        name,
                        korigin,
                        "is both swept and set by a variant; remove one of the two",
                    );
                    continue;
                }
                match def.kind.check(&value) {
                    Ok(v) => set.push((def.key, v)),
                    Err(message) => self.problem(name, korigin, message),
                }
            }
            match label {
                Some(label) if variants.iter().any(|v| v.label == label) => self.problem(
                    "variant.label",
                    origin,
                    format!("label \"{label}\" is used twice; labels must differ"),
                ),
                Some(label) => variants.push(Variant {
                    label,
                    settings: set,
                    origin,
                }),
                // A label given but refused above has its message already.
                None if bad_label => {}
                None => self.problem("variant.label", origin, "a [[variant]] needs a `label = \"...\"`"),
            }
        }
        variants
    }

    /// Command-line overrides: `--set key=v` pins a key (and removes it from the sweep);
    /// `--set sweep.key=[...]` sweeps it.
    fn overrides(&mut self, sets: &[String], given: &mut BTreeMap<&'static str, Located>, sweep: &mut Sweep) {
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
                    self.problems.push(Problem { key, origin, message });
                    continue;
                }
            };
            if let Some(swept) = name.strip_prefix("sweep.") {
                let def = match keydef(swept) {
                    Some(def) if sweepable(def.key) => def,
                    _ => {
                        self.unknown(swept, origin, true);
                        continue;
                    }
                };
                let items = match value {
                    Value::List(items) if !items.is_empty() => items,
                    _ => {
                        self.problem(
                            name,
                            origin,
                            "a sweep override needs a non-empty list, e.g. sweep.train.seed=[0,1,2]",
                        );
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
                    Err(message) => self.problem(name, origin, message),
                }
                continue;
            }
            let Some(def) = keydef(&name) else {
                self.unknown(&name, origin, false);
                continue;
            };
            match def.kind.check(&value) {
                Ok(value) => {
                    sweep.retain(|(k, _, _)| *k != def.key);
                    given.insert(def.key, Located { value, origin });
                }
                Err(message) => self.problem(name, origin, message),
            }
        }
    }

    /// Every key's value: the one given, else its default (`name` defaults to the file's stem,
    /// which must then be a valid name).
    fn defaults(&mut self, mut given: BTreeMap<&'static str, Located>, stem: &str) -> BTreeMap<&'static str, Located> {
        let mut base = BTreeMap::new();
        for def in KEYS {
            let located = given.remove(def.key).unwrap_or_else(|| Located {
                value: if def.key == "name" {
                    Value::Str(stem.to_string())
                } else {
                    default_value(def)
                },
                origin: Origin::Default,
            });
            base.insert(def.key, located);
        }
        if let Err(message) = keydef("name").expect("name key").kind.check(&base["name"].value) {
            self.problem(
                "name",
                base["name"].origin.clone(),
                format!("{message}; set `name = \"...\"` in the spec"),
            );
        }
        base
    }

    /// The sweep may expand to at most [`MAX_RUNS`] runs.
    fn run_count(&mut self, variants: &[Variant], sweep: &Sweep) {
        let runs: usize = std::iter::once(variants.len().max(1))
            .chain(sweep.iter().map(|(_, v, _)| v.len()))
            .try_fold(1usize, |acc, n| acc.checked_mul(n))
            .unwrap_or(usize::MAX);
        if runs > MAX_RUNS {
            self.problem(
                "sweep",
                sweep.first().map_or(Origin::Default, |s| s.2.clone()),
                format!(
                    "the sweep expands to {runs} runs, more than the limit of {MAX_RUNS}; split it into several specs"
                ),
            );
        }
    }
}

/// The `plot.*` keys name a swept key (or `variant` when the spec has variants), `auto` or
/// `none`; `plot.heatmap` two of them, the seed excepted.
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
    let located = &spec.base["plot.heatmap"];
    if let Value::List(items) = &located.value {
        for item in items {
            let s = item.to_string();
            let swept = spec.sweep.iter().any(|(k, _, _)| *k == s) || (s == "variant" && !spec.variants.is_empty());
            if !swept || s == "train.seed" {
                problems.push(Problem {
                    key: Some("plot.heatmap".into()),
                    origin: located.origin.clone(),
                    message: if s == "train.seed" {
                        "\"train.seed\" cannot be a heatmap axis: each cell averages over the seeds".into()
                    } else {
                        format!("\"{s}\" is not swept by this spec; name two of the keys in [sweep], or \"auto\"")
                    },
                });
            }
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
