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
use crate::rnn::{self, Activation, Batch, Exponents, Params, Probe, RnnConfig, Trace};
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
    /// The learning rate of the expRNN's P where it has its own (`train.lr_recurrent`): the
    /// schedule scales it as it scales `train.lr`.
    pub lr_recurrent: Option<Float>,
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
const DROPOUT_STREAM: u64 = 3;

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
/// both precisions start from the same network and see the same sequences. Each step evaluates
/// and probes when due (and always at the last step, which trains no more), then updates the
/// parameters, until the steps are done or the loss or gradient stops being finite.
fn train_as<F: Real>(
    cfg: &RunConfig,
    on_step: &(dyn Fn() -> bool + Sync),
    threads: &(dyn Fn() -> usize + Sync),
) -> Option<RunResult> {
    let started = Instant::now();
    let mut run = Training::<F>::new(cfg);
    let mut record = Record::new(cfg);
    let steps = cfg.train.steps;
    for step in 0..=steps {
        run.traces.share(threads());
        let eval = if step % cfg.train.eval_every == 0 || step == steps {
            run.evaluate()
        } else {
            (None, None)
        };
        if step % cfg.probe.every == 0 || step == steps {
            let (probed, lambdas) = run.probe();
            record.probed(step, &probed, lambdas.as_deref());
        }
        if step == steps {
            record.last(step, eval);
            break;
        }
        let update = run.update(step);
        record.update(step, &update, eval);
        if update.diverged() {
            break;
        }
        if !on_step() {
            return None;
        }
    }
    Some(run.finish(record, started))
}

/// A run while it trains, built from its config: the task and its data stream, the network,
/// its gradient and optimiser, the evaluation and probe sets, and the traces they go through.
struct Training<'c, F: Real> {
    /// The run's configuration.
    cfg: &'c RunConfig,
    /// The task, which draws the training batches.
    task: Task,
    /// The stream the training batches are drawn from.
    data_rng: ChaCha8Rng,
    /// The stream dropout's masks are drawn from (its own, so that the batches do not depend
    /// on `model.dropout`).
    dropout_rng: ChaCha8Rng,
    /// The parameters at initialisation, in f64 (exact for an f32 run: rounded to F, widened).
    init: Params,
    /// The parameters being trained.
    params: Params<F>,
    /// The gradient of the current step, its fields mirroring `params`.
    grads: Params<F>,
    /// The optimiser and its state.
    opt: Optimizer<F>,
    /// The evaluation set, in parts of at most a training batch of sequences.
    eval_parts: Vec<Batch<F>>,
    /// The probe set, drawn in f64, as the checkpoint stores it.
    probe_batch: Batch,
    /// The probe set in F, in parts of at most a training batch of sequences.
    probe_parts: Vec<Batch<F>>,
    /// The sequences in each of `probe_parts`.
    probe_sizes: Vec<usize>,
    /// The spectrum's f64 copy of the probe set (as an f32 run sees it: rounded, then widened).
    probe_f64: Batch,
    /// The traces every pass goes through.
    traces: Traces<F>,
}

/// The traces of a run. The evaluation and probe sets go through the training trace a training
/// batch at a time, so that a run's memory is that of its training batch's BPTT, whatever their
/// sizes.
struct Traces<F: Real> {
    /// B, the training batch's sequences.
    batch: usize,
    /// The trace of B sequences.
    full: Trace<F>,
    /// The trace of a last, smaller part.
    rest: Trace<F>,
}

impl<F: Real> Traces<F> {
    /// Shares both traces' work among at most `threads` of the pool's threads.
    fn share(&mut self, threads: usize) {
        self.full.share(threads);
        self.rest.share(threads);
    }

    /// The trace for a part of `rows` sequences.
    fn of(&mut self, rows: usize) -> &mut Trace<F> {
        if rows == self.batch {
            &mut self.full
        } else {
            &mut self.rest
        }
    }
}

/// What one update measured.
struct Update {
    /// The training batch's loss.
    loss: Float,
    /// The gradient's global norm before clipping.
    norm: Float,
    /// The learning rate of the step.
    lr: Float,
    /// Whether the gradient was clipped; `None` when the loss or the norm is not finite, and
    /// the parameters were left as they were.
    clipped: Option<bool>,
}

impl Update {
    /// The loss or the gradient's norm is not finite: the run stops here.
    fn diverged(&self) -> bool {
        self.clipped.is_none()
    }
}

impl<'c, F: Real> Training<'c, F> {
    /// Draws the initial weights from the run's init stream, seeds its data stream, and draws
    /// the evaluation and probe sets.
    fn new(cfg: &'c RunConfig) -> Self {
        let task = Task::new(cfg.task.clone());
        let mut init_rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.train.seed, INIT_STREAM));
        let data_rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.train.seed, DATA_STREAM));
        let dropout_rng = ChaCha8Rng::seed_from_u64(derive_seed(cfg.train.seed, DROPOUT_STREAM));

        let init = cfg.model.init(&mut init_rng).cast::<F>().cast::<f64>();
        let params: Params<F> = init.cast();
        let b = cfg.train.batch;
        let eval_parts: Vec<Batch<F>> = task.eval_set().cast().split(b);
        let probe_batch = task.probe_set(cfg.probe.batch);
        let probe_parts: Vec<Batch<F>> = probe_batch.cast().split(b);
        let probe_sizes: Vec<usize> = probe_parts.iter().map(|p| p.dims().1).collect();
        let probe_f64: Batch = probe_batch.cast::<F>().cast();
        let traces = Traces {
            batch: b,
            full: Trace::default(),
            rest: Trace::default(),
        };
        let grads = params.zeros_like();
        let opt = Optimizer::<F>::new(cfg.train.optimizer);
        Self {
            cfg,
            task,
            data_rng,
            dropout_rng,
            init,
            params,
            grads,
            opt,
            eval_parts,
            probe_batch,
            probe_parts,
            probe_sizes,
            probe_f64,
            traces,
        }
    }

    /// Loss and accuracy on the evaluation set (means over its sequences), `None` where not
    /// finite or (accuracy) for real-valued targets.
    fn evaluate(&mut self) -> (Option<Float>, Option<Float>) {
        let bptt = self.cfg.train.bptt;
        let (mut loss, mut acc, mut n) = (0.0, None, 0);
        for part in &self.eval_parts {
            let size = part.dims().1;
            let tr = self.traces.of(size);
            let (part_loss, part_acc) = rnn::evaluate(&self.params, part, tr, bptt);
            loss += part_loss * size as Float;
            acc = part_acc.map(|a| acc.unwrap_or(0.0) + a * size as Float);
            n += size;
        }
        (finite(loss / n as Float), acc.map(|a| a / n as Float))
    }

    /// The gradient-decay probe over the probe set, and the mean Lyapunov exponents of its
    /// trajectories when `probe.spectrum` asks for them (in f64 whatever F is).
    fn probe(&mut self) -> (Probe, Option<Exponents>) {
        let bptt = self.cfg.train.bptt;
        let parts: Vec<_> = self
            .probe_parts
            .iter()
            .map(|part| rnn::probe(&self.params, part, self.traces.of(part.dims().1), bptt))
            .collect();
        let probed = rnn::join_probes(&parts, &self.probe_sizes);
        let k = self.cfg.probe.spectrum;
        let lambdas = (k > 0).then(|| {
            // Through a trace of as many rows as the probe's.
            let rows = bptt.unwrap_or(usize::MAX).min(self.probe_f64.dims().0) * self.traces.batch;
            let per_seq = rnn::spectrum(&self.params.cast(), &self.probe_f64, k, rows);
            rnn::mean_exponents(&per_seq)
        });
        (probed, lambdas)
    }

    /// One parameter update at `step` on a fresh training batch: its loss and gradient, then,
    /// if both are finite, clipping and the optimiser's step.
    fn update(&mut self, step: u64) -> Update {
        let train = &self.cfg.train;
        let batch: Batch<F> = self.task.sample(train.batch, &mut self.data_rng).cast();
        self.grads.fill_zero();
        let model = &self.cfg.model;
        let dropout = (model.dropout > 0.0 && model.layers > 1).then(|| {
            let (t, b) = batch.dims();
            let shape = (t, b, model.hidden);
            rnn::Dropout::draw(model.dropout, model.layers, shape, &mut self.dropout_rng)
        });
        let tr = &mut self.traces.full;
        let loss = rnn::train_step(&self.params, &batch, tr, train.bptt, dropout.as_ref(), &mut self.grads);
        let lr = train.schedule.lr_at(step);
        let norm = global_norm(&self.grads);
        if !loss.is_finite() || !norm.is_finite() {
            return Update {
                loss,
                norm,
                lr,
                clipped: None,
            };
        }
        let clipped = train.clip.apply(&mut self.grads, norm);
        let recurrent = train.lr_recurrent.map(|r| r * lr / train.schedule.lr);
        self.opt.step_split(&mut self.params, &self.grads, lr, recurrent);
        if let rnn::Cell::IndRnn(_) = model.cell {
            // The IndRNN keeps every |u_i| ≤ recurrent_max (Li et al. 2018).
            self.params
                .clamp_role(rnn::Role::Diagonal, F::of(model.cell_init.recurrent_max));
        }
        Update {
            loss,
            norm,
            lr,
            clipped: Some(clipped),
        }
    }

    /// The run's result: its `runs.csv` row (W's norms and radii at the start and the end, the
    /// bounds they give, what `record` kept), its other tables' rows, and its checkpoints.
    fn finish(self, record: Record, started: Instant) -> RunResult {
        let (cfg, cell, init) = (self.cfg, self.cfg.model.cell, self.init);
        let params = self.params.cast::<f64>();
        let params_finite = params.slices().all(|t| t.iter().all(|x| x.is_finite()));
        // W of the top layer (the one the head reads, whose gradient the decay factor follows).
        // (For the cells that form their recurrent matrix from their tensors, that matrix:
        // diag(u), W − Wᵀ − γI, exp(A).)
        let w = |p: &Params| p.layers().last().expect("a layer").recurrent_matrix();
        let w_norm_final = params_finite.then(|| rnn::spectral_norm(&w(&params)));
        let radius = |p: &Params| {
            // The block that plays W's role: the whole W, or the candidate block of a gated cell.
            let (h, block) = (p.hidden(), cell.spec().radius_block);
            let w = p.layers().last().expect("a layer").recurrent_matrix();
            rnn::spectral_radius(&w.slice(ndarray::s![block * h..(block + 1) * h, ..]).to_owned())
        };
        let w_norm_init = rnn::spectral_norm(&w(&init));
        // The plain cell's bound ‖W‖₂·max|σ'| on the per-step factor.
        let max_deriv = cell.activation().map(Activation::max_deriv);
        let (status, ok) = (record.status, record.status == Status::Ok);
        let row = RunRow {
            run_id: cfg.id.clone(),
            swept: cfg.swept.iter().map(|(_, v)| v.to_string()).collect(),
            status,
            steps: record.diverged_step.unwrap_or(cfg.train.steps),
            final_loss: if ok { record.final_eval.0 } else { None },
            baseline_loss: self.task.baseline_loss(),
            final_accuracy: if ok { record.final_eval.1 } else { None },
            diverged_step: record.diverged_step,
            clipped_steps: record.clipped_steps,
            decay_factor: record.decay_last,
            decay_factor_init: record.decay_first,
            depth_factor: record.depth.1,
            depth_factor_init: record.depth.0,
            bound_factor: w_norm_final.zip(max_deriv).map(|(n, m)| n * m).and_then(finite),
            bound_factor_init: max_deriv.map(|m| w_norm_init * m).and_then(finite),
            w_norm_init: finite(w_norm_init),
            w_norm_final: w_norm_final.and_then(finite),
            w_radius_init: finite(radius(&init)),
            w_radius_final: params_finite.then(|| radius(&params)).and_then(finite),
            lyapunov_max_init: record.lyapunov.0,
            lyapunov_max: record.lyapunov.1,
            seconds: started.elapsed().as_secs_f64(),
            error: String::new(),
        };
        RunResult {
            row,
            curve: record.curve,
            decay: record.decay,
            spectrum: record.spectrum,
            init: Some(init),
            last: (ok && params_finite).then_some(params),
            probe_batch: Some(self.probe_batch),
        }
    }
}

/// What a run records as it trains: its rows of `curves.csv`, `grad_decay.csv` and
/// `spectrum.csv`, and what its `runs.csv` row takes from the steps and probes.
struct Record {
    /// The run's id, on every row.
    run_id: String,
    /// The cell's states, by their names in `grad_decay.csv` (h, and c for the LSTM).
    states: &'static [&'static str],
    /// `curves.csv` rows, one a step.
    curve: Vec<CurveRow>,
    /// `grad_decay.csv` rows, one a distance of each probe (and state).
    decay: Vec<DecayRow>,
    /// `spectrum.csv` rows, one an exponent of each probe.
    spectrum: Vec<SpectrumRow>,
    /// λ₁ at the first and the last probe.
    lyapunov: (Option<Float>, Option<Float>),
    /// The depth factor at the first and the last probe.
    depth: (Option<Float>, Option<Float>),
    /// The decay factor at the probe of step 0.
    decay_first: Option<Float>,
    /// The decay factor at the last probe.
    decay_last: Option<Float>,
    /// Ok, or diverged at `diverged_step`.
    status: Status,
    /// The step whose loss or gradient (or last evaluation) was not finite.
    diverged_step: Option<u64>,
    /// Updates whose gradient was clipped.
    clipped_steps: u64,
    /// Evaluation loss and accuracy after the last step.
    final_eval: (Option<Float>, Option<Float>),
}

impl Record {
    /// Nothing recorded yet, room for a curve row a step.
    fn new(cfg: &RunConfig) -> Self {
        Self {
            run_id: cfg.id.clone(),
            states: cfg.model.cell.spec().states,
            curve: Vec::with_capacity((cfg.train.steps as usize + 1).min(1 << 20)),
            decay: Vec::new(),
            spectrum: Vec::new(),
            lyapunov: (None, None),
            depth: (None, None),
            decay_first: None,
            decay_last: None,
            status: Status::Ok,
            diverged_step: None,
            clipped_steps: 0,
            final_eval: (None, None),
        }
    }

    /// A probe at `step`: the decay factor fitted to the top layer's gradient norms, a stack's
    /// depth factor, their rows by layer and distance (h, then the LSTM's c), and the
    /// spectrum's rows when it was computed.
    fn probed(&mut self, step: u64, probed: &Probe, lambdas: Option<&[f64]>) {
        let factor = rnn::decay_factor(probed.top());
        let depth = rnn::depth_factor(&probed.h);
        if step == 0 {
            self.decay_first = factor;
            self.depth.0 = depth;
        }
        self.decay_last = factor;
        self.depth.1 = depth;
        if let Some(lambdas) = lambdas {
            let first = lambdas.first().copied().and_then(finite);
            if step == 0 {
                self.lyapunov.0 = first;
            }
            self.lyapunov.1 = first;
            let rows = lambdas.iter().enumerate().map(|(i, &l)| SpectrumRow {
                run_id: self.run_id.clone(),
                probe_step: step,
                index: i as u64 + 1,
                exponent: finite(l),
            });
            self.spectrum.extend(rows);
        }
        for (layer, h) in probed.h.iter().enumerate() {
            let c = probed.c.as_ref().map(|c| &c[layer]);
            for (&state, logs) in self.states.iter().zip(std::iter::once(h).chain(c)) {
                self.decay.extend(logs.iter().enumerate().map(|(d, &ln)| DecayRow {
                    run_id: self.run_id.clone(),
                    probe_step: step,
                    layer: layer as u64,
                    state: state.to_string(),
                    distance: d as u64,
                    grad_norm: if ln.is_nan() { None } else { Some(elem::exp(ln)) },
                    log10_grad_norm: finite(ln / std::f64::consts::LN_10 as Float),
                }));
            }
        }
    }

    /// The last step, which only evaluates: its curve row, and divergence if the evaluation
    /// loss is not finite.
    fn last(&mut self, step: u64, eval: (Option<Float>, Option<Float>)) {
        self.final_eval = eval;
        self.curve.push(CurveRow {
            run_id: self.run_id.clone(),
            step,
            train_loss: None,
            grad_norm: None,
            clipped: None,
            lr: None,
            eval_loss: eval.0,
            eval_accuracy: eval.1,
        });
        if eval.0.is_none() {
            self.status = Status::Diverged;
            self.diverged_step = Some(step);
        }
    }

    /// An update at `step` (with the evaluation before it, if any): its curve row, and either a
    /// clipped step counted or divergence.
    fn update(&mut self, step: u64, update: &Update, (eval_loss, eval_accuracy): (Option<Float>, Option<Float>)) {
        let (train_loss, grad_norm) = match update.clipped {
            Some(clipped) => {
                self.clipped_steps += u64::from(clipped);
                (Some(update.loss), Some(update.norm))
            }
            None => {
                self.status = Status::Diverged;
                self.diverged_step = Some(step);
                (finite(update.loss), finite(update.norm))
            }
        };
        self.curve.push(CurveRow {
            run_id: self.run_id.clone(),
            step,
            train_loss,
            grad_norm,
            clipped: update.clipped,
            lr: Some(update.lr),
            eval_loss,
            eval_accuracy,
        });
    }
}
