//! One training run: its resolved configuration, and the loop that trains it, evaluates it,
//! probes its gradient decay and records every step. A run is a pure function of its
//! configuration: its random streams are seeded from `train.seed` alone, never from its position
//! in the sweep or the thread that runs it.

use std::collections::BTreeMap;
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::Float;
use crate::elem;
use crate::optim::{Clip, OptimConfig, Optimizer, Schedule, global_norm};
use crate::real::{Dtype, Real};
use crate::record::{CurveRow, DecayRow, RunRow, SpectrumRow, Status, finite};
use crate::rnn::{self, Batch, Cell, Params, RnnConfig, Trace};
use crate::spec::Value;
use crate::task::{Task, TaskConfig};

/// Training settings of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainConfig {
    /// Parameter updates.
    pub steps: u64,
    /// Sequences per batch.
    pub batch: usize,
    /// The optimiser.
    pub optimizer: OptimConfig,
    /// The learning-rate schedule.
    pub schedule: Schedule,
    /// Clipping rules.
    pub clip: Clip,
    /// Seed of the initial weights and the training batches.
    pub seed: u64,
    /// Truncated BPTT window, `None` for full BPTT.
    pub bptt: Option<usize>,
    /// Evaluation period in steps.
    pub eval_every: u64,
}

/// Probe settings of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeConfig {
    /// Probe period in steps.
    pub every: u64,
    /// Sequences in the probe batch.
    pub batch: usize,
    /// Lyapunov exponents computed at every probe (0: none).
    pub spectrum: usize,
}

/// Everything one run needs, resolved from the spec and its sweep.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Position in the sweep (0-based), for ordering output only.
    pub index: usize,
    /// Stable identifier: hash of `resolved`.
    pub id: String,
    /// This run's value of each swept key, in sweep order.
    pub swept: Vec<(&'static str, Value)>,
    /// Every key that affects the result, with this run's value.
    pub resolved: BTreeMap<&'static str, Value>,
    /// The task.
    pub task: TaskConfig,
    /// The network.
    pub model: RnnConfig,
    /// Training.
    pub train: TrainConfig,
    /// The gradient-decay probe.
    pub probe: ProbeConfig,
}

impl RunConfig {
    /// "key=value, key=value" of the swept keys, for progress messages and chart legends.
    pub fn label(&self) -> String {
        self.swept
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct RunResult {
    /// Its `runs.csv` row.
    pub row: RunRow,
    /// Its `curves.csv` rows.
    pub curve: Vec<CurveRow>,
    /// Its `grad_decay.csv` rows.
    pub decay: Vec<DecayRow>,
    /// Its `spectrum.csv` rows.
    pub spectrum: Vec<SpectrumRow>,
    /// Parameters at initialisation (in f64; exact for an f32 run).
    pub init: Option<Params>,
    /// Parameters at the end (absent unless the run completed with finite parameters).
    pub last: Option<Params>,
    /// The probe batch, saved beside the parameters so another framework can reproduce the
    /// probe (drawn in f64; an f32 run saw it rounded, as its checkpoint stores it).
    pub probe_batch: Option<Batch>,
}

/// Stream numbers: independent random streams derived from one seed.
const INIT_STREAM: u64 = 1;
const DATA_STREAM: u64 = 2;

/// A seed for stream `stream` of run seed `seed` (SplitMix64 finaliser over both).
pub fn derive_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Trains one run to completion or divergence. `on_step` is called after every update (for
/// progress display) and says whether to go on: `false` abandons the run, which returns `None`
/// (an interrupted sweep). `threads`, asked before every step, is how many of the rayon pool's
/// threads the run may share its work among (a sweep gives a run training beside others its
/// share of the pool, and a run left alone all of it); the results do not depend on it.
pub fn train(
    cfg: &RunConfig,
    on_step: &(dyn Fn() -> bool + Sync),
    threads: &(dyn Fn() -> usize + Sync),
) -> Option<RunResult> {
    match cfg.model.dtype {
        Dtype::F64 => train_as::<f64>(cfg, on_step, threads),
        Dtype::F32 => train_as::<f32>(cfg, on_step, threads),
    }
}

/// [`train`] in element type F. Data and initial weights are drawn in f64 and rounded to F, so
/// both precisions start from the same network and see the same sequences.
fn train_as<F: Real>(
    cfg: &RunConfig,
    on_step: &(dyn Fn() -> bool + Sync),
    threads: &(dyn Fn() -> usize + Sync),
) -> Option<RunResult> {
    let started = Instant::now();
    let task = Task::new(cfg.task.clone());
    let cell = cfg.model.cell;
    let mut init_rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.train.seed, INIT_STREAM));
    let mut data_rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.train.seed, DATA_STREAM));

    let init = cfg.model.init(&mut init_rng).cast::<F>().cast::<f64>();
    let mut params: Params<F> = init.cast();
    // The evaluation and probe sets go through the training trace a training batch at a time,
    // so that a run's memory is that of its training batch's BPTT, whatever their sizes.
    let b = cfg.train.batch;
    let eval_parts: Vec<Batch<F>> = task.eval_set().cast().split(b);
    let probe_batch = task.probe_set(cfg.probe.batch);
    let probe_parts: Vec<Batch<F>> = probe_batch.cast().split(b);
    let probe_sizes: Vec<usize> = probe_parts.iter().map(|p| p.dims().1).collect();
    // The spectrum's f64 copy of the probe set (as an f32 run sees it: rounded, then widened).
    let probe_f64: Batch = probe_batch.cast::<F>().cast();
    // The trace of B sequences, and one for a last, smaller part.
    let (mut tr_train, mut tr_rest) = (Trace::default(), Trace::default());
    let mut grads = params.zeros_like();
    let mut opt = Optimizer::<F>::new(cfg.train.optimizer);

    let mut curve = Vec::with_capacity((cfg.train.steps as usize + 1).min(1 << 20));
    let mut decay = Vec::new();
    let mut spectrum = Vec::new();
    let mut lyapunov = (None, None); // λ₁ at the first and the last probe
    let mut decay_first = None;
    let mut decay_last = None;
    let mut status = Status::Ok;
    let mut diverged_step = None;
    let mut clipped_steps = 0;
    let mut final_eval = (None, None);
    let steps = cfg.train.steps;

    for step in 0..=steps {
        let share = threads();
        tr_train.share(share);
        tr_rest.share(share);
        let (eval_loss, eval_accuracy) = if step % cfg.train.eval_every == 0 || step == steps {
            let (mut loss, mut acc, mut n) = (0.0, None, 0);
            for part in &eval_parts {
                let size = part.dims().1;
                let tr = if size == b { &mut tr_train } else { &mut tr_rest };
                let (part_loss, part_acc) = rnn::evaluate(&params, cell, part, tr, cfg.train.bptt);
                loss += part_loss * size as Float;
                acc = part_acc.map(|a| acc.unwrap_or(0.0) + a * size as Float);
                n += size;
            }
            (finite(loss / n as Float), acc.map(|a| a / n as Float))
        } else {
            (None, None)
        };
        if step % cfg.probe.every == 0 || step == steps {
            let parts: Vec<_> = probe_parts
                .iter()
                .map(|part| {
                    let tr = if part.dims().1 == b {
                        &mut tr_train
                    } else {
                        &mut tr_rest
                    };
                    rnn::probe(&params, cell, part, tr, cfg.train.bptt)
                })
                .collect();
            let probed = rnn::join_probes(&parts, &probe_sizes);
            let factor = rnn::decay_factor(&probed.h);
            if step == 0 {
                decay_first = factor;
            }
            decay_last = factor;
            if cfg.probe.spectrum > 0 {
                // In f64 whatever F is, through a trace of as many rows as the probe's.
                let rows = cfg.train.bptt.unwrap_or(usize::MAX).min(probe_f64.dims().0) * b;
                let per_seq = rnn::spectrum(&params.cast(), cell, &probe_f64, cfg.probe.spectrum, rows);
                let lambdas = rnn::mean_exponents(&per_seq);
                let first = lambdas.first().copied().and_then(finite);
                if step == 0 {
                    lyapunov.0 = first;
                }
                lyapunov.1 = first;
                spectrum.extend(lambdas.iter().enumerate().map(|(i, &l)| SpectrumRow {
                    run_id: cfg.id.clone(),
                    probe_step: step,
                    index: i as u64 + 1,
                    exponent: finite(l),
                }));
            }
            for (state, logs) in std::iter::once(("h", &probed.h)).chain(probed.c.as_ref().map(|c| ("c", c))) {
                decay.extend(logs.iter().enumerate().map(|(d, &ln)| DecayRow {
                    run_id: cfg.id.clone(),
                    probe_step: step,
                    state: state.to_string(),
                    distance: d as u64,
                    grad_norm: if ln.is_nan() { None } else { Some(elem::exp(ln)) },
                    log10_grad_norm: finite(ln / std::f64::consts::LN_10 as Float),
                }));
            }
        }
        if step == steps {
            final_eval = (eval_loss, eval_accuracy);
            curve.push(CurveRow {
                run_id: cfg.id.clone(),
                step,
                train_loss: None,
                grad_norm: None,
                clipped: None,
                lr: None,
                eval_loss,
                eval_accuracy,
            });
            if eval_loss.is_none() {
                status = Status::Diverged;
                diverged_step = Some(step);
            }
            break;
        }

        let batch: Batch<F> = task.sample(cfg.train.batch, &mut data_rng).cast();
        grads.fill_zero();
        let loss = rnn::train_step(&params, cell, &batch, &mut tr_train, cfg.train.bptt, &mut grads);
        let lr = cfg.train.schedule.lr_at(step);
        let norm = global_norm(&grads);
        if !loss.is_finite() || !norm.is_finite() {
            status = Status::Diverged;
            diverged_step = Some(step);
            curve.push(CurveRow {
                run_id: cfg.id.clone(),
                step,
                train_loss: finite(loss),
                grad_norm: finite(norm),
                clipped: None,
                lr: Some(lr),
                eval_loss,
                eval_accuracy,
            });
            break;
        }
        let clipped = cfg.train.clip.apply(&mut grads, norm);
        clipped_steps += u64::from(clipped);
        opt.step(&mut params, &grads, lr);
        curve.push(CurveRow {
            run_id: cfg.id.clone(),
            step,
            train_loss: Some(loss),
            grad_norm: Some(norm),
            clipped: Some(clipped),
            lr: Some(lr),
            eval_loss,
            eval_accuracy,
        });
        if !on_step() {
            return None;
        }
    }

    let params = params.cast::<f64>();
    let params_finite = params.slices().iter().all(|t| t.iter().all(|x| x.is_finite()));
    let w_norm_final = params_finite.then(|| rnn::spectral_norm(&params.w));
    let radius = |p: &Params| {
        // The block that plays W's role: the whole W, or the candidate block of a gated cell.
        let h = p.hidden();
        let block = match cell {
            Cell::Rnn(_) => 0,
            Cell::Lstm => 2,
            Cell::Gru => 2,
        };
        rnn::spectral_radius(&p.w.slice(ndarray::s![block * h..(block + 1) * h, ..]).to_owned())
    };
    let w_norm_init = rnn::spectral_norm(&init.w);
    let max_deriv = match cell {
        Cell::Rnn(act) => Some(act.max_deriv()),
        _ => None,
    };
    let row = RunRow {
        run_id: cfg.id.clone(),
        swept: cfg.swept.iter().map(|(_, v)| v.to_string()).collect(),
        status,
        steps: diverged_step.unwrap_or(steps),
        final_loss: if status == Status::Ok { final_eval.0 } else { None },
        baseline_loss: task.baseline_loss(),
        final_accuracy: if status == Status::Ok { final_eval.1 } else { None },
        diverged_step,
        clipped_steps,
        decay_factor: decay_last,
        decay_factor_init: decay_first,
        bound_factor: w_norm_final.zip(max_deriv).map(|(n, m)| n * m).and_then(finite),
        bound_factor_init: max_deriv.map(|m| w_norm_init * m).and_then(finite),
        w_norm_init: finite(w_norm_init),
        w_norm_final: w_norm_final.and_then(finite),
        w_radius_init: finite(radius(&init)),
        w_radius_final: params_finite.then(|| radius(&params)).and_then(finite),
        lyapunov_max_init: lyapunov.0,
        lyapunov_max: lyapunov.1,
        seconds: started.elapsed().as_secs_f64(),
        error: String::new(),
    };
    Some(RunResult {
        row,
        curve,
        decay,
        spectrum,
        init: Some(init),
        last: (status == Status::Ok && params_finite).then_some(params),
        probe_batch: Some(probe_batch),
    })
}
