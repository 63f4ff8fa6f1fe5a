//! Writing and reading the results folder: the three CSV tables, `manifest.json` and the
//! safetensors checkpoints. Every file is written atomically (a temporary file in the same
//! folder, then a rename), so a reader sees either the previous complete file or the new one.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array3, ArrayD};
use safetensors::{Dtype, tensor::TensorView};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::real;
use crate::record::{CurveRow, DecayRow, RunRow, SpectrumRow};
use crate::rnn::{Activation, Batch, Cell, Coefs, Dim, Inputs, Layer, Params, Targets};

/// File names inside a results folder.
pub const RUNS_CSV: &str = "runs.csv";
/// Loss curves.
pub const CURVES_CSV: &str = "curves.csv";
/// Gradient-decay profiles.
pub const DECAY_CSV: &str = "grad_decay.csv";
/// Finite-time Lyapunov exponents.
pub const SPECTRUM_CSV: &str = "spectrum.csv";
/// The manifest.
pub const MANIFEST: &str = "manifest.json";

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed, then
/// renamed over the target. The temporary file's name is unique to this process and call, so
/// that workers writing the same file at the same moment (the tables, the manifest) never
/// collide: the last rename wins, and a reader sees one whole file or the other.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", crate::claim::unique_suffix()));
    let io = |e| Error::io(path, e);
    let mut f = fs::File::create(&tmp).map_err(io)?;
    f.write_all(bytes).and_then(|_| f.sync_data()).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        io(e)
    })?;
    drop(f);
    fs::rename(&tmp, path).map_err(io)
}

/// Creates a folder and its parents.
pub fn create_dir(path: &Path) -> Result<(), Error> {
    fs::create_dir_all(path).map_err(|e| Error::io(path, e))
}

/// The manifest: what was run, by which program, when and where.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Experiment name.
    pub name: String,
    /// Experiment description.
    pub description: String,
    /// The spec file as given on the command line.
    pub spec_file: String,
    /// FNV-1a hash of the resolved spec (settings and sweep), 16 hex digits.
    pub spec_hash: String,
    /// `runner` version.
    pub program_version: String,
    /// Git commit the program was built from, when known.
    pub git_commit: Option<String>,
    /// Worker threads used.
    pub threads: usize,
    /// The kernel path the runs used (`avx512`, `avx2`, `portable`; see `RUNNER_ISA`).
    #[serde(default)]
    pub isa: Option<String>,
    /// The processor's model name (`model name` of `/proc/cpuinfo`), when the system says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor: Option<String>,
    /// Start time, UTC, RFC 3339.
    pub started: String,
    /// End time, UTC, RFC 3339; absent while the sweep runs.
    pub finished: Option<String>,
    /// Every key's resolved value (swept keys hold their default here).
    pub settings: BTreeMap<String, serde_json::Value>,
    /// The `[[variant]]` tables (label and the keys each sets), the slowest axis.
    #[serde(default)]
    pub variants: Vec<serde_json::Value>,
    /// The swept keys and their values, first varying slowest.
    pub sweep: Vec<SweepAxis>,
    /// Chart grouping chosen for this spec.
    pub plot: PlotChoice,
    /// The part of the sweep this folder holds (`i/n`), absent for a whole sweep.
    #[serde(default)]
    pub shard: Option<String>,
    /// Every run, in sweep order.
    pub runs: Vec<ManifestRun>,
}

/// One swept key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SweepAxis {
    /// Dotted key.
    pub key: String,
    /// Its values in order.
    pub values: Vec<serde_json::Value>,
}

/// Which swept keys the charts were grouped by (resolved from `plot.x`, `plot.color` and
/// `plot.panel` when the sweep started; `runner plot` resolves them again from the settings).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PlotChoice {
    /// Key on the summary charts' x axis (none: the configurations are the categories).
    #[serde(default)]
    pub x: Option<String>,
    /// Key whose values colour the lines of the per-step charts.
    pub color: Option<String>,
    /// Key with one panel per value on the per-step charts (the first, when several split them).
    pub panel: Option<String>,
    /// Every key splitting the per-step charts' panels, the automatic split included.
    #[serde(default)]
    pub panels: Vec<String>,
}

/// One run in the manifest.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ManifestRun {
    /// Stable id.
    pub run_id: String,
    /// Its swept values.
    pub swept: BTreeMap<String, serde_json::Value>,
    /// Its full resolved configuration.
    pub config: BTreeMap<String, serde_json::Value>,
}

impl ManifestRun {
    /// Its `model.layers` (1 when the configuration leaves it at its default, as every
    /// configuration written before stacks existed does).
    pub fn layers(&self) -> u64 {
        self.config
            .get("model.layers")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(1)
    }
}

impl Manifest {
    /// Whether some run is a stack (`model.layers` > 1): what decides whether the depth charts
    /// are drawn and the summaries show the depth factor, so a one-layer sweep's outputs stay
    /// as they were before stacks existed.
    pub fn has_stacks(&self) -> bool {
        self.runs.iter().any(|r| r.layers() > 1)
    }
}

/// The processor's model name as the system reports it (Linux: the first `model name` line of
/// `/proc/cpuinfo`), or `None`.
pub fn processor_name() -> Option<String> {
    let text = fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|v| !v.is_empty())
}

/// Writes the manifest.
pub fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), Error> {
    let mut text = serde_json::to_string_pretty(manifest).expect("manifest serialises");
    text.push('\n');
    write_atomic(&dir.join(MANIFEST), text.as_bytes())
}

/// Reads a manifest back.
pub fn read_manifest(dir: &Path) -> Result<Manifest, Error> {
    let path = dir.join(MANIFEST);
    let text = fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::Data {
        path: path.clone(),
        line: Some(e.line() as u64),
        message: e.to_string(),
    })
}

/// Writes `runs.csv`.
pub fn write_runs(dir: &Path, swept_keys: &[&str], rows: &[RunRow]) -> Result<(), Error> {
    let path = dir.join(RUNS_CSV);
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| Error::Data {
        path: path.clone(),
        line: None,
        message: e.to_string(),
    };
    w.write_record(RunRow::header(swept_keys)).map_err(csv_err)?;
    for row in rows {
        w.write_record(row.fields()).map_err(csv_err)?;
    }
    let bytes = w.into_inner().expect("in-memory writer");
    write_atomic(&path, &bytes)
}

/// Writes a table of serde rows (`curves.csv`, `grad_decay.csv`).
pub fn write_table<'a, R: Serialize + 'a>(path: &Path, rows: impl IntoIterator<Item = &'a R>) -> Result<(), Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for row in rows {
        w.serialize(row).map_err(|e| Error::Data {
            path: path.to_path_buf(),
            line: None,
            message: e.to_string(),
        })?;
    }
    let bytes = w.into_inner().expect("in-memory writer");
    write_atomic(path, &bytes)
}

/// Writes `spectrum.csv`; with no rows (no run asked for a spectrum) the header alone, so that
/// every results folder has the same files.
pub fn write_spectrum<'a>(path: &Path, rows: impl IntoIterator<Item = &'a SpectrumRow>) -> Result<(), Error> {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return write_atomic(path, b"run_id,probe_step,index,exponent\n");
    }
    write_table(path, rows)
}

/// `runs.csv` read back: the swept keys (column names) and the rows.
pub struct RunsTable {
    /// Swept keys, in column order.
    pub swept_keys: Vec<String>,
    /// Rows in file order.
    pub rows: Vec<RunRow>,
}

/// Opens a CSV file this tool reads back and reads its header; errors name the file (and line 1
/// for a malformed header).
pub fn open_csv(path: &Path) -> Result<(csv::Reader<std::fs::File>, Vec<String>), Error> {
    let data_err = |line: Option<u64>, message: String| Error::Data {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut r = csv::Reader::from_path(path).map_err(|e| match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        other => data_err(None, format!("{other:?}")),
    })?;
    let header = r
        .headers()
        .map_err(|e| data_err(Some(1), e.to_string()))?
        .iter()
        .map(String::from)
        .collect();
    Ok((r, header))
}

/// Reads `runs.csv`, naming the line of any malformed row.
pub fn read_runs(dir: &Path) -> Result<RunsTable, Error> {
    let path = dir.join(RUNS_CSV);
    let data_err = |line: Option<u64>, message: String| Error::Data {
        path: path.clone(),
        line,
        message,
    };
    let (mut r, header) = open_csv(&path)?;
    // The columns after the swept ones: today's, or those of a file written before some of the
    // columns in ADDED_RUN_COLUMNS existed (their fields then read back empty).
    let added = &crate::record::ADDED_RUN_COLUMNS;
    let current = &crate::record::RUN_COLUMNS;
    let fixed_at = header.iter().position(|h| h == "status").unwrap_or(0);
    let tail: Vec<&str> = header[fixed_at..].iter().map(String::as_str).collect();
    let present: Vec<&str> = current
        .iter()
        .copied()
        .filter(|c| !added.contains(c) || tail.contains(c))
        .collect();
    if fixed_at == 0 || header[0] != "run_id" || tail != present {
        return Err(data_err(
            Some(1),
            "the header is not that of a runs.csv written by runner".into(),
        ));
    }
    let n_swept = fixed_at - 1;
    let mut rows = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let line = i as u64 + 2;
        let rec = rec.map_err(|e| data_err(Some(line), e.to_string()))?;
        let mut fields: Vec<&str> = rec.iter().collect();
        if present.len() != current.len() && fields.len() == header.len() {
            // An older file: put an empty field where each missing column goes.
            for (at, c) in current.iter().enumerate() {
                if !present.contains(c) {
                    fields.insert(1 + n_swept + at, "");
                }
            }
        }
        rows.push(RunRow::from_fields(&fields, n_swept).map_err(|m| data_err(Some(line), m))?);
    }
    Ok(RunsTable {
        swept_keys: header[1..1 + n_swept].to_vec(),
        rows,
    })
}

/// Reads a table of serde rows, naming the line of any malformed row.
pub fn read_table<R: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<R>, Error> {
    let (mut r, _) = open_csv(path)?;
    let mut rows = Vec::new();
    for (i, rec) in r.deserialize().enumerate() {
        rows.push(rec.map_err(|e: csv::Error| Error::Data {
            path: path.to_path_buf(),
            line: Some(i as u64 + 2),
            message: e.to_string(),
        })?);
    }
    Ok(rows)
}

/// The first row (1-based line number, counting the header) holding a number that is not
/// finite, which no file written by runner does.
fn first_non_finite(values: impl Iterator<Item = Vec<Option<f64>>>) -> Option<u64> {
    values
        .enumerate()
        .find(|(_, v)| v.iter().flatten().any(|x| !x.is_finite()))
        .map(|(i, _)| i as u64 + 2)
}

/// Reads `curves.csv`, refusing non-finite numbers.
pub fn read_curves(dir: &Path) -> Result<Vec<CurveRow>, Error> {
    let path = dir.join(CURVES_CSV);
    let rows: Vec<CurveRow> = read_table(&path)?;
    let nums = rows
        .iter()
        .map(|r| vec![r.train_loss, r.grad_norm, r.lr, r.eval_loss, r.eval_accuracy]);
    match first_non_finite(nums) {
        Some(line) => Err(Error::Data {
            path,
            line: Some(line),
            message: "a number is not finite".into(),
        }),
        None => Ok(rows),
    }
}

/// Reads `grad_decay.csv`, refusing non-finite numbers and unknown states.
pub fn read_decay(dir: &Path) -> Result<Vec<DecayRow>, Error> {
    let path = dir.join(DECAY_CSV);
    let rows: Vec<DecayRow> = read_table(&path)?;
    if let Some(line) = first_non_finite(rows.iter().map(|r| vec![r.grad_norm, r.log10_grad_norm])) {
        return Err(Error::Data {
            path,
            line: Some(line),
            message: "a number is not finite".into(),
        });
    }
    if let Some(i) = rows
        .iter()
        .position(|r| !crate::record::STATES.contains(&r.state.as_str()))
    {
        return Err(Error::Data {
            path,
            line: Some(i as u64 + 2),
            message: format!("unknown state `{}`", rows[i].state),
        });
    }
    Ok(rows)
}

/// Reads `spectrum.csv` (an empty table when the file is absent: a results folder written
/// before the spectrum existed), refusing non-finite numbers.
pub fn read_spectrum(dir: &Path) -> Result<Vec<SpectrumRow>, Error> {
    let path = dir.join(SPECTRUM_CSV);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let rows: Vec<SpectrumRow> = read_table(&path)?;
    if let Some(line) = first_non_finite(rows.iter().map(|r| vec![r.exponent])) {
        return Err(Error::Data {
            path,
            line: Some(line),
            message: "a number is not finite".into(),
        });
    }
    Ok(rows)
}

/// Folder of one run's checkpoints.
pub fn checkpoint_dir(dir: &Path, run_id: &str) -> PathBuf {
    dir.join("checkpoints").join(run_id)
}

/// Little-endian bytes of `values` in `dtype` (rounded to nearest for f32).
fn float_bytes<'a>(values: impl IntoIterator<Item = &'a f64>, dtype: real::Dtype) -> Vec<u8> {
    match dtype {
        real::Dtype::F64 => values.into_iter().flat_map(|x| x.to_le_bytes()).collect(),
        real::Dtype::F32 => values.into_iter().flat_map(|&x| (x as f32).to_le_bytes()).collect(),
    }
}

/// One parameter tensor of a network under PyTorch's name for `nn.RNN`/`nn.LSTM`/`nn.GRU` +
/// `nn.Linear`, as [`torch_tensors`] lists them.
#[derive(Clone, Debug, PartialEq)]
pub struct TorchTensor<'a> {
    /// PyTorch's name: `rnn.weight_ih_l{k}`, `rnn.weight_hh_l{k}`, `rnn.bias_ih_l{k}`,
    /// `rnn.bias_hh_l{k}`, `head.weight`, `head.bias`.
    pub name: String,
    /// Where PyTorch holds two tensors that it adds and runner their sum (the plain and LSTM
    /// cells' one bias, named `bias_hh`), the other one's name (`rnn.bias_ih_l{k}`): a checkpoint
    /// writes it as zeros, and its gradient is this tensor's.
    pub twin: Option<String>,
    /// Its shape, PyTorch's (`head.weight` is (O, H)).
    pub shape: Vec<usize>,
    /// Its entries, row-major.
    pub data: &'a [f64],
}

/// The tensors of `p` under PyTorch's names: each layer k's under the names its cell's table
/// gives them (`rnn.weight_ih_l{k}` = U, `rnn.weight_hh_l{k}` = W; for the plain and LSTM cells
/// `rnn.bias_hh_l{k}` = b with twin `rnn.bias_ih_l{k}`, for the GRU `rnn.bias_ih_l{k}` = b and
/// `rnn.bias_hh_l{k}` = bh), then `head.bias` = c and `head.weight` = V. Checkpoints
/// ([`write_checkpoint`]) and gradients (`examples/gradients.rs`) are named from this one list.
pub fn torch_tensors(p: &Params) -> Vec<TorchTensor<'_>> {
    let mut tensors = Vec::new();
    for (k, layer) in p.layers().iter().enumerate() {
        for (t, x) in layer.tensors() {
            tensors.push(TorchTensor {
                name: format!("rnn.{}_l{k}", t.torch),
                twin: t.torch_zero.map(|zero| format!("rnn.{zero}_l{k}")),
                shape: layer.sizes().shape(t),
                data: x,
            });
        }
    }
    let (h, o) = (p.hidden(), p.v.nrows());
    tensors.push(TorchTensor {
        name: "head.bias".into(),
        twin: None,
        shape: vec![o],
        data: p.c.as_slice().expect("contiguous"),
    });
    tensors.push(TorchTensor {
        name: "head.weight".into(),
        twin: None,
        shape: vec![o, h],
        data: p.v.as_slice().expect("contiguous"),
    });
    tensors
}

/// Writes a checkpoint: the parameters under PyTorch's names ([`torch_tensors`], a summed bias's
/// twin as zeros) and the probe batch (`probe.x` (T, B, D), `probe.y` (L, B, O) or (L, B) int64
/// class indices). Floats are stored in the run's `dtype` (float32 or float64). `meta` is stored
/// as one JSON string under the key `runner` of the header's metadata.
pub fn write_checkpoint(
    path: &Path,
    p: &Params,
    probe: &Batch,
    meta: &serde_json::Value,
    dtype: real::Dtype,
) -> Result<(), Error> {
    let float = match dtype {
        real::Dtype::F64 => Dtype::F64,
        real::Dtype::F32 => Dtype::F32,
    };
    // (name, dtype, shape, bytes) of every tensor; safetensors orders them itself.
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for t in torch_tensors(p) {
        if let Some(twin) = t.twin {
            let zeros = vec![0.0; t.data.len()];
            tensors.push((twin, float, t.shape.clone(), float_bytes(&zeros, dtype)));
        }
        tensors.push((t.name, float, t.shape, float_bytes(t.data, dtype)));
    }
    let (t, bsz) = probe.inputs.dims();
    let d = p.layers()[0].sizes().input;
    let x: ArrayD<f64> = match &probe.inputs {
        Inputs::Dense(x) => x.clone().into_dyn(),
        Inputs::OneHot(idx) => {
            Array3::from_shape_fn((t, bsz, d), |(i, j, k)| f64::from(u8::from(idx[[i, j]] == k))).into_dyn()
        }
    };
    tensors.push(("probe.x".into(), float, vec![t, bsz, d], float_bytes(x.iter(), dtype)));
    tensors.push(match &probe.targets {
        Targets::Values(y) => (
            "probe.y".into(),
            float,
            y.shape().to_vec(),
            float_bytes(y.iter(), dtype),
        ),
        Targets::Classes(y) => (
            "probe.y".into(),
            Dtype::I64,
            y.shape().to_vec(),
            y.iter().flat_map(|&k| (k as i64).to_le_bytes()).collect(),
        ),
    });
    let views = tensors.iter().map(|(name, dtype, shape, data)| {
        let view = TensorView::new(*dtype, shape.clone(), data).expect("shape matches data");
        (name.as_str(), view)
    });
    let info = HashMap::from([("runner".to_string(), meta.to_string())]);
    let bytes = safetensors::serialize(views, Some(info)).map_err(|e| Error::Data {
        path: path.to_path_buf(),
        line: None,
        message: e.to_string(),
    })?;
    write_atomic(path, &bytes)
}

/// Current UTC time as RFC 3339 (seconds precision), without a date crate.
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A checkpoint read back.
#[derive(Clone, Debug)]
pub struct Checkpoint {
    /// The parameters.
    pub params: Params,
    /// The probe batch (one-hot probe inputs come back as dense rows).
    pub probe: Batch,
    /// The run's metadata (`runner` key of the header), `null` if absent.
    pub meta: serde_json::Value,
}

/// Reads a checkpoint written by [`write_checkpoint`] (or a PyTorch state dict under the same
/// names). Errors name the missing or malformed tensor.
pub fn read_checkpoint(bytes: &[u8]) -> Result<Checkpoint, String> {
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| format!("not a safetensors file: {e}"))?;
    let get = |name: &str, rank: usize| -> Result<Tensor, String> {
        let t = st.tensor(name).map_err(|_| format!("tensor `{name}` is missing"))?;
        let data = match t.dtype() {
            _ if t.shape().len() != rank => None,
            Dtype::F64 => Some(
                t.data()
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                    .collect(),
            ),
            Dtype::F32 => Some(
                t.data()
                    .chunks_exact(4)
                    .map(|c| f64::from(f32::from_le_bytes(c.try_into().expect("4 bytes"))))
                    .collect(),
            ),
            _ => None,
        };
        let Some(data) = data else {
            return Err(format!(
                "tensor `{name}` should be float64 or float32 of rank {rank}, found {:?} {:?}",
                t.dtype(),
                t.shape()
            ));
        };
        Ok((t.shape().to_vec(), data))
    };
    let meta = st_meta(bytes);
    // Layers 0, 1, … as long as the file has them (PyTorch's `num_layers`).
    let mut layers = vec![read_layer(&get, &meta, 0)?];
    while st.tensor(&format!("rnn.weight_hh_l{}", layers.len())).is_ok() {
        layers.push(read_layer(&get, &meta, layers.len())?);
    }
    let (v_shape, v) = get("head.weight", 2)?;
    let (_, c) = get("head.bias", 1)?;
    let (h, d, o) = (layers[0].hidden(), layers[0].sizes().input, c.len());
    let stacked = layers[1..]
        .iter()
        .all(|l| l.cell() == layers[0].cell() && l.hidden() == h && l.sizes().input == h);
    if v_shape != [o, h] || !stacked {
        return Err("parameter shapes do not agree with each other".into());
    }
    let v = ndarray::Array2::from_shape_vec((o, h), v).map_err(|e| format!("tensor `head.weight`: {e}"))?;
    let residual = meta["residual"].as_bool().unwrap_or(false);
    let params = Params::new(layers, residual, v, ndarray::Array1::from(c));
    let (xs, xd) = get("probe.x", 3)?;
    if xs[2] != d {
        return Err(format!("tensor `probe.x` has {} inputs, the network {d}", xs[2]));
    }
    let x = Array3::from_shape_vec((xs[0], xs[1], xs[2]), xd).map_err(|e| e.to_string())?;
    let y = st
        .tensor("probe.y")
        .map_err(|_| "tensor `probe.y` is missing".to_string())?;
    let targets = match (y.dtype(), y.shape().len()) {
        (Dtype::F64 | Dtype::F32, 3) => {
            let (ys, yd) = get("probe.y", 3)?;
            Targets::Values(Array3::from_shape_vec((ys[0], ys[1], ys[2]), yd).map_err(|e| e.to_string())?)
        }
        (Dtype::I64, 2) => {
            let raw: Vec<i64> = y
                .data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            if raw.iter().any(|&k| k < 0 || k as usize >= o) {
                return Err("tensor `probe.y` holds a class index outside the output size".into());
            }
            let idx = raw.into_iter().map(|k| k as usize).collect();
            Targets::Classes(
                ndarray::Array2::from_shape_vec((y.shape()[0], y.shape()[1]), idx).map_err(|e| e.to_string())?,
            )
        }
        (dtype, _) => {
            return Err(format!(
                "tensor `probe.y` has unexpected type {dtype:?} {:?}",
                y.shape()
            ));
        }
    };
    Ok(Checkpoint {
        params,
        probe: Batch {
            inputs: Inputs::Dense(x),
            targets,
            accuracy_from: 0,
        },
        meta,
    })
}

/// A tensor read from a checkpoint: its shape and its entries, widened to f64.
type Tensor = (Vec<usize>, Vec<f64>);

/// Layer k of a checkpoint, its tensors read under the names its cell's table gives them
/// (suffix `_l{k}`). The cell is the one `meta` names (`cell`, `activation`); a file without it
/// (a PyTorch state dict) is read as the layer of `nn.RNN` (tanh), `nn.GRU` or `nn.LSTM` whose
/// gates its `rnn.weight_hh_l{k}` has.
fn read_layer(
    get: &dyn Fn(&str, usize) -> Result<Tensor, String>,
    meta: &serde_json::Value,
    k: usize,
) -> Result<Layer, String> {
    let activation = meta["activation"].as_str().and_then(Activation::from_name);
    let named = meta["cell"]
        .as_str()
        .and_then(|name| Cell::from_name(name, activation.unwrap_or(Activation::Tanh)))
        .map(|cell| match cell.coefs() {
            // The coRNN's and the AntisymmetricRNN's coefficients, from the metadata.
            Some(d) => cell.with_coefs(Coefs {
                dt: meta["dt"].as_f64().unwrap_or(d.dt),
                gamma: meta["gamma"].as_f64().unwrap_or(d.gamma),
                epsilon: meta["epsilon"].as_f64().unwrap_or(d.epsilon),
            }),
            None => cell,
        });
    let cell = match named {
        Some(cell) => cell,
        None => {
            let (shape, _) = get(&format!("rnn.weight_hh_l{k}"), 2)?;
            let (gh, h) = (shape[0], shape[1]);
            [Cell::Rnn(Activation::Tanh), Cell::Gru, Cell::Lstm]
                .into_iter()
                .find(|cell| h > 0 && gh == cell.gates() * h)
                .ok_or_else(|| {
                    format!("tensor `rnn.weight_hh_l{k}` has shape ({gh}, {h}): not that of an RNN, GRU or LSTM layer")
                })?
        }
    };
    // Each tensor's entries, and D and H as its shape gives them: every tensor must agree.
    let mut read = Vec::new();
    let (mut input, mut hidden) = (None, None);
    let disagree = || "parameter shapes do not agree with each other".to_string();
    for t in cell.spec().tensors {
        let name = format!("rnn.{}_l{k}", t.torch);
        let (shape, mut data) = get(&name, t.shape.len())?;
        if let Some(zero) = t.torch_zero {
            let (other, summand) = get(&format!("rnn.{zero}_l{k}"), t.shape.len())?;
            if other != shape {
                return Err(disagree());
            }
            data.iter_mut().zip(summand).for_each(|(x, s)| *x += s); // PyTorch adds the two
        }
        for (&dim, &size) in t.shape.iter().zip(&shape) {
            let (slot, size) = match dim {
                Dim::Input => (&mut input, size),
                Dim::Hidden => (&mut hidden, size),
                Dim::Gates if size.is_multiple_of(cell.gates()) => (&mut hidden, size / cell.gates()),
                Dim::Gates => return Err(disagree()),
            };
            if *slot.get_or_insert(size) != size {
                return Err(disagree());
            }
        }
        read.push(data);
    }
    let (Some(input), Some(hidden)) = (input, hidden) else {
        return Err(disagree());
    };
    let mut layer = Layer::zeros(cell, input, hidden);
    for ((_, x), data) in layer.tensors_mut().zip(read) {
        if x.len() != data.len() {
            return Err(disagree());
        }
        x.copy_from_slice(&data);
    }
    Ok(layer)
}

/// The `runner` metadata of a safetensors header, parsed as JSON (`null` if absent).
fn st_meta(bytes: &[u8]) -> serde_json::Value {
    safetensors::SafeTensors::read_metadata(bytes)
        .ok()
        .and_then(|(_, m)| m.metadata().as_ref().and_then(|m| m.get("runner").cloned()))
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_runs_csv_from_before_the_added_columns_reads_back_with_them_empty() {
        let dir = std::env::temp_dir().join(format!("runner-old-runs-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let older: Vec<&str> = crate::record::RUN_COLUMNS
            .iter()
            .copied()
            .filter(|c| !crate::record::ADDED_RUN_COLUMNS.contains(c))
            .collect();
        let text = format!(
            "run_id,train.seed,{}\n00000000000000aa,0,ok,10,0.1,0.16666666666666666,,,0,0.9,0.95,1.5,1.2,1.3,0.9,1.0,0.123,\n",
            older.join(",")
        );
        fs::write(dir.join(RUNS_CSV), text).unwrap();
        let t = read_runs(&dir).unwrap();
        assert_eq!(t.swept_keys, ["train.seed"]);
        let r = &t.rows[0];
        assert_eq!(
            (r.bound_factor, r.bound_factor_init, r.w_norm_init),
            (Some(1.5), None, Some(1.2))
        );
        assert_eq!(r.w_radius_final, Some(1.0));
        assert_eq!((r.lyapunov_max_init, r.lyapunov_max, r.seconds), (None, None, 0.123));
        // Today's header round-trips.
        write_runs(&dir, &["train.seed"], &t.rows).unwrap();
        assert_eq!(read_runs(&dir).unwrap().rows, t.rows);
        fs::remove_dir_all(&dir).unwrap();
    }
}
