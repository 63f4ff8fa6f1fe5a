//! Resource guards: the memory a run needs, estimated from its configuration before anything
//! is allocated, so that no spec can make the tool try to allocate more than the machine has.
//!
//! A run holds, at its peak, one trace of a training batch (the evaluation and probe sets pass
//! through it a training batch at a time; a smaller last part has a trace of its own), the
//! data of the training, evaluation and probe batches (drawn in
//! f64, then converted to the run's element type), its parameters five times over (parameters,
//! gradients, two optimiser moments in the run's type, the initial copy in f64), a stack's
//! dropout masks, and the rows it records. The rows of every run stay in memory until the sweep's files are
//! written, so they count for the whole sweep; the rest counts once per run in flight.

use crate::run::RunConfig;
use crate::task::{Task, TaskConfig};

/// Bytes of an f64, in which data and the initial parameters are drawn.
const F64: u64 = 8;
/// Bytes of one recorded row (curves or decay): the row itself with its strings (about 160),
/// plus its share of the final CSV text and of the copy the charts read back, which coexist
/// while the sweep's files are written.
const ROW: u64 = 400;
/// What the program needs before any run: code, font, allocator, threads' stacks.
pub const BASE: u64 = 8 << 20;

/// Bytes of one trace for `b` sequences in elements of `e` bytes (`backward`: with the buffers
/// backward and the probe use): every layer's, and what the head and the layers share.
fn trace_bytes(cfg: &RunConfig, t: u64, b: u64, l: u64, backward: bool, e: u64) -> u64 {
    let (d, h, o) = (cfg.model.input as u64, cfg.model.hidden as u64, cfg.model.output as u64);
    let layers = cfg.model.layers as u64;
    let spec = cfg.model.cell.spec();
    let g = spec.gates as u64;
    let second = spec.states.len() as u64 - 1; // a second state (the LSTM's c)
    let (aux, hidden_side) = (u64::from(spec.aux), u64::from(spec.hidden_side));
    // One layer's: the same in every layer, but Uᵀ's width and the input buffer of those above
    // the first.
    let layer = 2 * g * h * h // wt, w
        + (t + 1) * b * h // h
        + second * (t + 1) * b * h // c
        + t * b * g * h // gates
        + aux * t * b * h // aux
        + hidden_side * b * g * h // hp
        + 4 * b * h // dh, dc, carry_h, carry_c
        + if backward { hidden_side * t * b * g * h } else { 0 }; // dgh
    let inputs = d * g * h + (layers - 1) * (h * g * h + t * b * h); // ut; x above the first
    let stack = u64::from(layers > 1);
    let shared = 2 * l * b * o // out, dout
        + stack * u64::from(cfg.model.residual) * l * b * h // head_in
        + if backward { stack * 2 * t * b * h + 2 * b * h } else { 0 }; // dy, dy_below; ext, ext_below
    (layers * layer + inputs + shared) * e
}

/// Bytes of a batch of `b` sequences: inputs and targets.
fn batch_bytes(cfg: &RunConfig, t: u64, b: u64, l: u64) -> u64 {
    let (d, o) = (cfg.model.input as u64, cfg.model.output as u64);
    let e = cfg.model.dtype.size() as u64;
    match cfg.task {
        TaskConfig::Adding { .. } => (t * b * d + l * b * o) * (F64 + e),
        _ => t * b * 8 + l * b * 8,
    }
}

/// Peak bytes one run needs while it trains, recorded rows excluded.
pub fn run_bytes(cfg: &RunConfig) -> u64 {
    let task = Task::new(cfg.task.clone());
    let t = task.seq_len() as u64;
    let l = match cfg.task {
        TaskConfig::Adding { .. } | TaskConfig::TemporalOrder { .. } => 1,
        _ => t,
    };
    let (b, e, p) = (
        cfg.train.batch as u64,
        match &cfg.task {
            TaskConfig::Adding { eval_size, .. }
            | TaskConfig::Copy { eval_size, .. }
            | TaskConfig::TemporalOrder { eval_size, .. }
            | TaskConfig::Text { eval_size, .. } => *eval_size as u64,
            TaskConfig::Hello { .. } => 1,
        },
        cfg.probe.batch as u64,
    );
    let (d, h, o) = (cfg.model.input as u64, cfg.model.hidden as u64, cfg.model.output as u64);
    let layers = cfg.model.layers as u64;
    let size = cfg.model.dtype.size() as u64;
    // Every layer's tensors as its cell declares them (the first reading D inputs, those above
    // it H), V and c.
    let cell = cfg.model.cell;
    let entries_of = |input: u64| crate::rnn::Layer::<f32>::entries(cell, input as usize, h as usize) as u64;
    let tensors = entries_of(d) + (layers - 1) * entries_of(h) + o * h + o;
    let params = tensors * (4 * size + F64);
    // A stack's dropout masks, drawn for each training batch: (T, B, H) per boundary.
    let masks = if cfg.model.dropout > 0.0 {
        (layers - 1) * t * b * h * size
    } else {
        0
    };
    let rest = |n: u64| if n < b { n } else { n % b }; // the last part's sequences (0: none)
    // Truncated BPTT runs (and evaluates and probes) a window of k steps at a time; the probe
    // also keeps the (B, H) state entering each window.
    let (tw, lw) = match cfg.train.bptt {
        Some(k) if (k as u64) < t => (k as u64, l.min(k as u64)),
        _ => (t, l),
    };
    let states = layers * cfg.model.cell.spec().states.len() as u64; // (B, H) blocks of state
    let entries = if tw < t {
        t.div_ceil(tw) * b.max(p) * h * states * size
    } else {
        0
    };
    // The spectrum (probe.spectrum = k): an f64 trace of k copies of one probe sequence in
    // windows of ⌊tw·B / k⌋ steps, the states entering them, Q, and the f64 probe set.
    let k = cfg.probe.spectrum as u64;
    let spectrum = if let Some(ws) = (tw * b).checked_div(k) {
        let ws = ws.clamp(1, t);
        trace_bytes(cfg, ws, k, l.min(ws), true, F64)
            + t.div_ceil(ws) * k * h * states * F64
            + k * h * states * F64
            + batch_bytes(cfg, t, k, l)
            + batch_bytes(cfg, t, p, l)
    } else {
        0
    };
    trace_bytes(cfg, tw, b, lw, true, size)
        + trace_bytes(cfg, tw, rest(e).max(rest(p)), lw, true, size)
        + spectrum
        + entries
        + batch_bytes(cfg, t, b, l)
        + batch_bytes(cfg, t, e, l)
        + batch_bytes(cfg, t, p, l)
        + params
        + masks
}

/// Bytes of the rows a run records (kept until the sweep's files are written).
pub fn record_bytes(cfg: &RunConfig) -> u64 {
    let steps = cfg.train.steps;
    let probes = steps / cfg.probe.every + 2;
    let states = cfg.model.layers as u64 * cfg.model.cell.spec().states.len() as u64;
    let t = Task::new(cfg.task.clone()).seq_len() as u64;
    (steps + 1) * ROW + probes * (states * t + cfg.probe.spectrum as u64) * ROW
}

/// Peak bytes of a sweep run with `jobs` threads: the `jobs` largest runs at once, the rows of
/// every run, and the program itself.
pub fn sweep_bytes(runs: &[&RunConfig], jobs: usize) -> u64 {
    let mut each: Vec<u64> = runs.iter().map(|r| run_bytes(r)).collect();
    each.sort_unstable_by(|a, b| b.cmp(a));
    let in_flight: u64 = each.iter().take(jobs.max(1)).fold(0u64, |a, &b| a.saturating_add(b));
    let rows: u64 = runs
        .iter()
        .map(|r| record_bytes(r))
        .fold(0u64, |a, b| a.saturating_add(b));
    BASE.saturating_add(in_flight).saturating_add(rows)
}

/// The memory the kernel says is available (`MemAvailable` in /proc/meminfo), if known.
pub fn available_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Parses a size such as `512M`, `8G`, `1.5G` or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (num, unit) = match t.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&t[..i], t[i..].to_ascii_uppercase()),
        None => (t, String::new()),
    };
    let factor: f64 = match unit.trim_end_matches(['B', 'I']) {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        "T" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("--max-memory {text}: unknown unit `{unit}`; use K, M, G or T")),
    };
    let x: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("--max-memory {text}: `{num}` is not a number"))?;
    if !(x.is_finite() && x > 0.0) {
        return Err(format!("--max-memory {text}: must be positive"));
    }
    Ok((x * factor) as u64)
}

/// A size in human units (MiB/GiB).
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    const MIB: f64 = 1024.0 * 1024.0;
    const GIB: f64 = 1024.0 * MIB;
    if b >= 1024.0 * 1024.0 * GIB {
        format!("{:.2e} bytes", b)
    } else if b >= GIB {
        format!("{:.1} GiB", b / GIB)
    } else {
        format!("{:.0} MiB", (b / MIB).ceil())
    }
}

/// Refuses a sweep whose estimated peak exceeds `limit` (or the available memory when no limit
/// is given), naming the largest run and how to fit.
pub fn check(runs: &[&RunConfig], jobs: usize, limit: Option<u64>) -> Result<u64, String> {
    let need = sweep_bytes(runs, jobs);
    let (cap, what) = match limit {
        Some(l) => (l, "the --max-memory limit".to_string()),
        None => match available_memory() {
            Some(a) => (a, "the memory available on this machine".to_string()),
            None => return Ok(need),
        },
    };
    if need > cap {
        let biggest = runs.iter().max_by_key(|r| run_bytes(r)).expect("a sweep has runs");
        return Err(format!(
            "the sweep would need about {} with {jobs} run{} at once, more than {what} ({}); its largest run ({}) alone needs {}. \
             Use fewer --jobs, a smaller batch, evaluation set, hidden size or sequence length, or raise --max-memory",
            human(need),
            if jobs == 1 { "" } else { "s" },
            human(cap),
            if biggest.label().is_empty() {
                biggest.id.clone()
            } else {
                biggest.label()
            },
            human(run_bytes(biggest))
        ));
    }
    Ok(need)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12Q").is_err() && parse_size("-1G").is_err() && parse_size("G").is_err());
    }
}
