//! The real binary, end to end, in temporary folders: outputs exist and parse, runs are
//! byte-identical whatever the thread count, bad specs are refused with exit code 2 before
//! anything is written, and existing results are never overwritten by accident.

// References computed independently of the code under test, with the C library's functions.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::path::Path;

use runner::output;
use runner::record::Status;

mod common;
use common::{assert_same_results, assert_same_results_and, run, runs_without_seconds, scratch, stderr};

const SMALL: &str = r#"
name = "small"
[task]
kind = "adding"
eval_size = 16
[model]
hidden = 6
[train]
steps = 40
batch = 4
lr = 0.05
momentum = 0.9
eval_every = 10
[probe]
every = 20
batch = 4
[sweep]
"task.seq_len" = [5, 9]
"model.activation" = ["tanh", "relu"]
"train.clip" = ["none", 1.0]
"train.seed" = [0, 1]
"#;

#[test]
fn end_to_end_every_output_exists_and_parses() {
    let dir = scratch("e2e");
    fs::write(dir.join("small.toml"), SMALL).unwrap();
    let out = run(&dir, &["small.toml", "--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let res = dir.join("results/small");

    let table = output::read_runs(&res).unwrap();
    assert_eq!(
        table.swept_keys,
        ["task.seq_len", "model.activation", "train.clip", "train.seed"]
    );
    assert_eq!(table.rows.len(), 16);
    for row in &table.rows {
        assert_eq!(row.status, Status::Ok, "{row:?}");
        assert_eq!(row.steps, 40);
        assert!(row.final_loss.is_some() && row.w_norm_final.is_some() && row.decay_factor_init.is_some());
        if row.swept[1] == "tanh" {
            // (A ReLU network whose units are all off for the probe batch has an exactly zero
            // gradient beyond d = 0, and so no decay factor.)
            assert!(row.decay_factor.is_some());
        }
        assert!((row.baseline_loss - 1.0 / 6.0).abs() < 1e-15);
        assert!(row.final_accuracy.is_none(), "adding has no accuracy");
    }
    let curves = output::read_curves(&res).unwrap();
    assert_eq!(
        curves.len(),
        16 * 41,
        "40 training rows and one final evaluation row per run"
    );
    let decay = output::read_decay(&res).unwrap();
    // Probes at steps 0, 20, 40 over T distances: 3·(5 + 9) per (activation, clip, seed).
    assert_eq!(decay.len(), 8 * 3 * (5 + 9));
    let manifest = output::read_manifest(&res).unwrap();
    assert_eq!(manifest.runs.len(), 16);
    assert!(manifest.finished.is_some());
    assert_eq!(manifest.plot.panel.as_deref(), Some("task.seq_len"));
    assert_eq!(manifest.plot.color.as_deref(), Some("model.activation"));

    for row in &table.rows {
        for f in ["init.safetensors", "final.safetensors"] {
            let bytes = fs::read(output::checkpoint_dir(&res, &row.run_id).join(f)).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let mut names = st.names();
            names.sort();
            assert_eq!(
                names,
                [
                    "head.bias",
                    "head.weight",
                    "probe.x",
                    "probe.y",
                    "rnn.bias_hh_l0",
                    "rnn.bias_ih_l0",
                    "rnn.weight_hh_l0",
                    "rnn.weight_ih_l0"
                ]
            );
            assert_eq!(st.tensor("rnn.weight_hh_l0").unwrap().shape(), [6, 6]);
            assert_eq!(st.tensor("rnn.weight_ih_l0").unwrap().shape(), [6, 2]);
        }
    }
    // ‖∂h_t/∂h_{t−1}‖ ≤ max|σ'|·‖W‖₂ at every step, so the measured per-step factor (a
    // positively weighted mean of the per-step log ratios) lies at or below the bound.
    for row in &table.rows {
        let (d, b) = (row.decay_factor_init.unwrap(), row.bound_factor_init.unwrap());
        assert!(
            d <= b * (1.0 + 1e-12),
            "run {}: measured {d} above its bound {b}",
            row.run_id
        );
    }
    for chart in [
        "grad_decay",
        "grad_decay_init",
        "loss",
        "grad_norm",
        "final_loss",
        "decay_factor_init",
        "decay_factor",
        "diverged",
        "decay_vs_bound",
    ] {
        let png = fs::read(res.join("charts").join(format!("{chart}.png"))).unwrap();
        assert_eq!(&png[1..4], b"PNG", "{chart}.png is a PNG");
        let svg = fs::read_to_string(res.join("charts").join(format!("{chart}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{chart}.svg is an SVG"
        );
    }

    // A checkpoint reproduces its run: the probe recomputed from `final.safetensors` (parameters
    // and probe batch) gives the norms the run recorded at its last probe.
    let decay_of = |id: &str| -> Vec<f64> {
        decay
            .iter()
            .filter(|r| r.run_id == id && r.probe_step == 40)
            .map(|r| r.grad_norm.unwrap())
            .collect()
    };
    for row in &table.rows {
        let bytes = fs::read(output::checkpoint_dir(&res, &row.run_id).join("final.safetensors")).unwrap();
        let ck = output::read_checkpoint(&bytes).unwrap();
        assert_eq!(ck.meta["activation"], row.swept[1].as_str());
        let cell = runner::rnn::Cell::Rnn(runner::rnn::Activation::from_name(&row.swept[1]).unwrap());
        assert_eq!(ck.params.cell(), cell, "the checkpoint's cell, with its σ");
        let probed = runner::rnn::probe(&ck.params, &ck.probe, &mut runner::rnn::Trace::default(), None);
        let logs = probed.top();
        let recorded = decay_of(&row.run_id);
        assert_eq!(logs.len(), recorded.len());
        for (l, r) in logs.iter().zip(&recorded) {
            assert_eq!(l.exp(), *r, "run {}", row.run_id);
        }
    }

    // `runner plot` redraws the same charts from the CSV files alone.
    let before = fs::read(res.join("charts/loss.png")).unwrap();
    fs::remove_dir_all(res.join("charts")).unwrap();
    let out = run(&dir, &["plot", "results/small"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(fs::read(res.join("charts/loss.png")).unwrap(), before);

    // Redrawn with another x key: the summary charts change, the per-step ones do not.
    let charts = |res: &Path| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(res.join("charts"))
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let by_length = charts(&res);
    let out = run(&dir, &["plot", "results/small", "--set", "plot.x=model.activation"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let by_activation = charts(&res);
    let changed = |name: &str| {
        let pick = |v: &[(String, Vec<u8>)]| v.iter().find(|c| c.0 == name).unwrap().1.clone();
        pick(&by_length) != pick(&by_activation)
    };
    assert!(changed("final_loss.svg") && changed("decay_factor_init.svg"));
    assert!(!changed("loss.svg") && !changed("grad_decay.svg"));
    let svg = fs::read_to_string(res.join("charts/final_loss.svg")).unwrap();
    assert!(svg.contains("activation σ — model.activation"), "x axis names the key");
    assert!(!svg.contains("sequence length T —"), "the x axis is not the length");

    // An unknown, unswept or unplottable key: exit 2, naming it, nothing redrawn.
    let out = run(&dir, &["plot", "results/small", "--set", "plot.panel=model.activation"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let before = charts(&res);
    for (set, named) in [
        ("plot.x=model.hidden", "model.hidden"),
        ("plot.color=train.lrr", "train.lrr"),
        ("train.lr=0.1", "train.lr"),
        ("plot.x", "KEY=VALUE"),
    ] {
        let out = run(&dir, &["plot", "results/small", "--set", set]);
        assert_eq!(out.status.code(), Some(2), "{set}");
        let e = stderr(&out);
        assert!(e.contains(named) && e.contains("nothing was redrawn"), "{set}: {e}");
        assert!(charts(&res) == before, "{set}: the charts were touched");
    }
}

#[test]
fn identical_bytes_whatever_the_thread_count() {
    let dir = scratch("determinism");
    fs::write(dir.join("small.toml"), SMALL).unwrap();
    for jobs in ["1", "2", "3"] {
        let out = run(
            &dir,
            &[
                "small.toml",
                "-q",
                "--jobs",
                jobs,
                "--out",
                &format!("j{jobs}"),
                "--set",
                "probe.spectrum=4",
            ],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let one = dir.join("j1");
    for other in ["j2", "j3"] {
        let files = [
            "spectrum.csv",
            "charts/spectrum.svg",
            "charts/grad_decay.png",
            "charts/loss.svg",
        ];
        assert_same_results_and(&one, &dir.join(other), &files);
    }
}

/// Runs large enough for their work to be shared out among threads (the time loop split into
/// blocks of sequences, 16 + 16 here; products of more than 2^20 multiply–adds split by rows of
/// their result: the LSTM's per-step product, 32 × 128 × 512, and every run's gradient sums)
/// give the same bytes with one job, with two (each run on its own thread while the other
/// trains, then the last one on both) and with three (two threads each, the third taking
/// pieces of either).
#[test]
fn shared_products_keep_the_bytes() {
    let dir = scratch("shared");
    fs::write(
        dir.join("wide.toml"),
        r#"
name = "wide"
[task]
kind = "adding"
seq_len = 20
eval_size = 32
[model]
hidden = 128
dtype = "f32"
[train]
steps = 3
batch = 32
eval_every = 1
[probe]
every = 1
batch = 32
[sweep]
"model.cell" = ["lstm", "rnn"]
"#,
    )
    .unwrap();
    for jobs in ["1", "2", "3"] {
        let out = run(&dir, &["wide.toml", "-q", "--jobs", jobs, "--out", &format!("j{jobs}")]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let one = dir.join("j1");
    for other in ["j2", "j3"] {
        assert_same_results(&one, &dir.join(other));
    }
}

/// The Lyapunov spectrum of an f32 run is computed in f64 from its parameters: at
/// initialisation (weights drawn in f64, rounded to f32) it agrees with the f64 run's to 1e-5,
/// for every cell; a spectrum asked beyond the state dimension is refused up front.
#[test]
fn spectrum_of_f32_runs_agrees_with_f64() {
    let dir = scratch("spectrum-dtype");
    let spec = r#"
name = "sp"
[task]
kind = "adding"
seq_len = 30
eval_size = 8
[model]
hidden = 5
[train]
steps = 3
batch = 4
[probe]
every = 10
batch = 4
spectrum = 5
[[variant]]
label = "rnn"
model.cell = "rnn"
[[variant]]
label = "lstm"
model.cell = "lstm"
[[variant]]
label = "gru"
model.cell = "gru"
[sweep]
"model.dtype" = ["f64", "f32"]
"#;
    fs::write(dir.join("sp.toml"), spec).unwrap();
    let out = run(&dir, &["sp.toml", "-q", "--set", "output.checkpoints=false"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let res = dir.join("results/sp");
    let table = output::read_runs(&res).unwrap();
    let spectrum = output::read_spectrum(&res).unwrap();
    let at_init = |id: &str| -> Vec<f64> {
        spectrum
            .iter()
            .filter(|r| r.run_id == id && r.probe_step == 0)
            .map(|r| r.exponent.unwrap())
            .collect()
    };
    let mut worst: f64 = 0.0;
    for pair in table.rows.chunks(2) {
        let (a, b) = (at_init(&pair[0].run_id), at_init(&pair[1].run_id));
        assert_eq!(a.len(), 5);
        for (x, y) in a.iter().zip(&b) {
            worst = worst.max((x - y).abs());
        }
        assert_eq!(pair[0].lyapunov_max_init, Some(a[0]));
    }
    eprintln!("f32 vs f64 exponents at initialisation: maxdiff = {worst:.1e}");
    assert!(worst < 1e-5, "maxdiff = {worst:e}");

    let out = run(&dir, &["sp.toml", "-q", "--set", "probe.spectrum=6", "--out", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(e.contains("probe.spectrum") && e.contains("up to 5"), "{e}");
    assert!(!dir.join("x").exists());
}

/// Each bad spec: exit code 2, a message naming the line and the key, nothing written.
#[test]
fn bad_specs_are_refused_before_anything_is_written() {
    let dir = scratch("bad");
    let cases: &[(&str, &str, &str)] = &[
        (
            "[model]\nhidden = 8\nactivaton = \"tanh\"\n",
            ":3:1:",
            "did you mean `model.activation`",
        ),
        ("[train]\nsteps = \"many\"\n", ":2:", "`train.steps`"),
        ("[sweep]\n\"model.activation\" = []\n", ":2:", "`model.activation`"),
        ("[task]\nseq_len = 0\n", ":2:", "`task.seq_len`"),
        ("[train]\nlr = -0.1\n", ":2:", "`train.lr`"),
        ("[model]\nactivation = \"tahn\"\n", ":2:", "did you mean \"tanh\""),
        (
            "[sweep]\n\"model.activation\" = [\"tanh\", \"softplus\"]\n",
            ":2:",
            "`model.activation`",
        ),
        ("[train\nsteps = 3\n", ":1:", "TOML syntax error"),
        ("[modle]\nhidden = 3\n", ":2:1:", "did you mean `model.hidden`"),
        ("[task]\nkind = \"hello\"\nseq_len = 7\n", ":3:", "`task.seq_len`"),
        // A spec cannot write outside its results folder.
        (
            "name = \"../escape\"\n",
            ":1:1:",
            "`name`: \"../escape\" is not a valid name",
        ),
        (
            "[output]\ndir = \"/tmp\"\n",
            ":2:1:",
            "`output.dir`: \"/tmp\" is not a valid name",
        ),
        ("[output]\ndir = \"..\"\n", ":2:1:", "`output.dir`"),
        // A refused label is one problem, not also a missing label.
        (
            "[[variant]]\nlabel = \"a b\"\nmodel.cell = \"lstm\"\n",
            ":2:1:",
            "has 1 problem; nothing was run or written:\n  bad13.toml:2:1: `variant.label`: \"a b\" is not a valid label",
        ),
        // Stacks: layers 1 ..= 16, dropout in [0, 1), residual a boolean, in a sweep too.
        ("[model]\nlayers = 0\n", ":2:1:", "`model.layers`: 0 is out of range"),
        ("[model]\nlayers = 17\n", ":2:1:", "`model.layers`: 17 is out of range"),
        (
            "[model]\ndropout = 1.0\n",
            ":2:1:",
            "`model.dropout`: 1.0 is out of range",
        ),
        ("[model]\ndropout = -0.1\n", ":2:1:", "`model.dropout`"),
        (
            "[model]\nresidual = \"yes\"\n",
            ":2:1:",
            "`model.residual`: expected true | false",
        ),
        ("[sweep]\n\"model.layers\" = [2, 32]\n", ":2:", "`model.layers`"),
        (
            "[model]\nhidden = 4\nlayers = 2\n[probe]\nspectrum = 9\n",
            ":5:",
            "8 dimensions (H, in each of 2 layers); use a value up to 8",
        ),
        // The cells since 2015: their own keys only where a run uses them, Δt and
        // recurrent_max positive, henaff and cayley for the expRNN with an even H.
        (
            "[model]\ngamma = 5.0\n[sweep]\n\"model.cell\" = [\"lstm\", \"gru\"]\n",
            ":2:1:",
            "`model.gamma`: applies to the cornn and antisymmetric cells only, and no run of this spec uses them",
        ),
        (
            "[sweep]\n\"train.lr_recurrent\" = [1e-4]\n\"model.cell\" = [\"lstm\"]\n",
            ":2:",
            "`train.lr_recurrent`: applies to the exprnn cell only",
        ),
        (
            "[model]\ncell = \"cornn\"\ndt = 0.0\n",
            ":3:1:",
            "`model.dt`: 0.0 is out of range",
        ),
        ("[model]\ncell = \"cornn\"\ndt = -0.1\n", ":3:1:", "`model.dt`"),
        (
            "[model]\ncell = \"indrnn\"\nrecurrent_max = 0\n",
            ":3:1:",
            "`model.recurrent_max`: 0 is out of range",
        ),
        (
            "[model]\ncell = \"exprnn\"\nhidden = 7\n",
            ":3:1:",
            "`model.hidden`: 7 is odd, but the henaff initialisation builds A from 2×2 blocks",
        ),
        (
            "[model]\ncell = \"gru\"\ninit = \"cayley\"\n",
            ":3:1:",
            "`model.init`: \"cayley\" draws the expRNN's skew-symmetric A",
        ),
        (
            "[model]\ncell = \"cornn\"\nactivation = \"relu\"\n",
            ":3:1:",
            "`model.activation`: applies to the rnn and indrnn cells only",
        ),
    ];
    for (i, (text, place, needle)) in cases.iter().enumerate() {
        let name = format!("bad{i}.toml");
        fs::write(dir.join(&name), text).unwrap();
        let out = run(&dir, &[&name, "-q"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "case {i}: {err}");
        assert!(
            err.contains(&format!("{name}{place}")),
            "case {i} should name {place}: {err}"
        );
        assert!(err.contains(needle), "case {i} should mention {needle}: {err}");
        assert!(!dir.join("results").exists(), "case {i} wrote something");
    }
    // A bad --set names the argument and the key.
    fs::write(dir.join("ok.toml"), "[train]\nsteps = 2\n").unwrap();
    let out = run(&dir, &["ok.toml", "--set", "train.lr=-1"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--set train.lr=-1: `train.lr`"),
        "{}",
        stderr(&out)
    );
    // A missing spec.
    let out = run(&dir, &["missing.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("missing.toml"));
    assert!(!dir.join("results").exists());
}

#[test]
fn existing_results_are_not_overwritten_without_force() {
    let dir = scratch("exists");
    fs::write(
        dir.join("tiny.toml"),
        "[task]\nseq_len = 4\n[train]\nsteps = 3\n[model]\nhidden = 3\n",
    )
    .unwrap();
    assert_eq!(run(&dir, &["tiny.toml", "-q"]).status.code(), Some(0));
    let runs = dir.join("results/tiny/runs.csv");
    let before = fs::read(&runs).unwrap();
    fs::write(dir.join("results/tiny/notes.txt"), "mine").unwrap();
    let out = run(&dir, &["tiny.toml", "-q", "--set", "train.steps=5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(fs::read(&runs).unwrap(), before);
    // --force replaces the tool's own files and keeps the user's.
    let out = run(&dir, &["tiny.toml", "-q", "--force", "--set", "train.steps=5"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(output::read_runs(&dir.join("results/tiny")).unwrap().rows[0].steps, 5);
    assert_eq!(fs::read_to_string(dir.join("results/tiny/notes.txt")).unwrap(), "mine");
}

#[test]
fn exploding_runs_are_recorded_as_diverged_and_set_the_exit_code_only_when_clipped() {
    let dir = scratch("explode");
    let spec = "[task]\nseq_len = 20\n[model]\nhidden = 8\nscale = 3.0\nactivation = \"relu\"\n\
                [train]\nsteps = 200\nlr = 1.0\n[probe]\nevery = 10\n";
    fs::write(dir.join("boom.toml"), spec).unwrap();
    let out = run(&dir, &["boom.toml", "-q"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "divergence without clipping is a result: {}",
        stderr(&out)
    );
    let res = dir.join("results/boom");
    let row = &output::read_runs(&res).unwrap().rows[0];
    assert_eq!(row.status, Status::Diverged);
    let at = row.diverged_step.expect("diverged step recorded");
    assert!(at < 200);
    assert!(row.final_loss.is_none());
    // The curve is kept up to the divergence, with no NaN or inf written anywhere.
    let curves = output::read_curves(&res).unwrap();
    assert_eq!(curves.last().unwrap().step, at);
    for f in ["runs.csv", "curves.csv", "grad_decay.csv"] {
        let text = fs::read_to_string(res.join(f)).unwrap().to_lowercase();
        assert!(
            !text.contains("nan") && !text.contains("inf"),
            "{f} holds a non-finite value"
        );
    }
    assert!(res.join("charts/loss.png").exists());

    // The same explosion with clipping on is unexpected: exit 1.
    let out = run(
        &dir,
        &[
            "boom.toml",
            "-q",
            "--out",
            "clipped",
            "--set",
            "train.clip=1.0",
            "--set",
            "train.lr=1e6",
        ],
    );
    let row = &output::read_runs(&dir.join("clipped")).unwrap().rows[0];
    assert_eq!(row.status, Status::Diverged, "{row:?}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn hello_reaches_full_accuracy() {
    let dir = scratch("hello");
    let spec = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/hello.toml")).unwrap();
    fs::write(dir.join("hello.toml"), spec).unwrap();
    let out = run(&dir, &["hello.toml", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let row = &output::read_runs(&dir.join("results/hello")).unwrap().rows[0];
    assert_eq!(row.final_accuracy, Some(1.0));
    assert!(row.final_loss.unwrap() < row.baseline_loss / 10.0, "{row:?}");
}

#[test]
fn dry_run_lists_runs_and_writes_nothing() {
    let dir = scratch("dry");
    fs::write(dir.join("small.toml"), SMALL).unwrap();
    let out = run(&dir, &["small.toml", "--dry-run", "--set", "sweep.train.seed=[0,1,2]"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("24 runs"), "{text}");
    assert!(!dir.join("results").exists());
}

/// A run that panics is recorded as `failed` with its message; the others complete and the
/// sweep's exit status becomes 1. (No valid spec can make a run panic, so the test breaks one
/// resolved configuration by hand through the library.)
#[test]
fn a_panicking_run_is_recorded_as_failed_and_the_others_complete() {
    let dir = scratch("panic");
    let spec = runner::spec::parse("p.toml", SMALL, "p", &[]).unwrap();
    let mut runs = runner::sweep::expand(&spec).unwrap();
    runs[3].model.input = 7; // U no longer matches the task's 2 inputs: ndarray panics
    let opts = runner::launch::Options {
        jobs: 2,
        out: dir.join("out"),
        force: false,
        quiet: true,
        shard: None,
        stop: None,
        lease: runner::claim::Lease::new(60.0, None).unwrap(),
        wait: true,
    };
    let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
    assert!(!runner::launch::prepare_out(&opts.out, false, &ids, None, &opts.lease).unwrap());
    let outcome = runner::launch::run_sweep(&spec, &runs, &opts, true, true).unwrap();
    assert_eq!((outcome.ok, outcome.failed), (15, 1));
    assert_eq!(outcome.exit_code(), 1);
    let table = output::read_runs(&opts.out).unwrap();
    assert_eq!(table.rows[3].status, Status::Failed);
    assert!(!table.rows[3].error.is_empty());
    assert!(
        table
            .rows
            .iter()
            .enumerate()
            .all(|(i, r)| i == 3 || r.status == Status::Ok)
    );
    assert!(opts.out.join("charts/final_loss.png").exists());
}

/// Variants put dissimilar models side by side; gated cells write PyTorch-shaped checkpoints
/// that reproduce their probe (hidden and cell state) when read back.
#[test]
fn variants_and_gated_cells_end_to_end() {
    let dir = scratch("variants");
    let spec = r#"
[task]
kind = "adding"
seq_len = 8
eval_size = 8
[model]
hidden = 5
[train]
steps = 12
batch = 4
optimizer = "adam"
schedule = "cosine"
warmup = 3
eval_every = 4
[probe]
every = 6
batch = 3
[[variant]]
label = "tanh-rnn"
[[variant]]
label = "irnn"
model.activation = "relu"
model.init = "identity"
[[variant]]
label = "lstm"
model.cell = "lstm"
[[variant]]
label = "gru"
model.cell = "gru"
[[variant]]
label = "smart"
model.init = "sparse"
model.sparsity = 3
model.spectral_radius = 1.2
[sweep]
"train.seed" = [0, 1]
"#;
    fs::write(dir.join("v.toml"), spec).unwrap();
    let out = run(&dir, &["v.toml", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let res = dir.join("results/v");
    let table = output::read_runs(&res).unwrap();
    assert_eq!(table.swept_keys, ["variant", "train.seed"]);
    let labels: Vec<&str> = table.rows.iter().map(|r| r.swept[0].as_str()).collect();
    assert_eq!(
        labels,
        [
            "tanh-rnn", "tanh-rnn", "irnn", "irnn", "lstm", "lstm", "gru", "gru", "smart", "smart"
        ]
    );
    let smart = &table.rows[8];
    assert!((smart.w_radius_init.unwrap() - 1.2).abs() < 1e-6, "{smart:?}");
    assert!(
        (table.rows[2].w_radius_init.unwrap() - 1.0).abs() < 1e-9,
        "identity init has radius 1"
    );
    assert!(table.rows[4].bound_factor.is_none() && table.rows[0].bound_factor.is_some());

    let decay = output::read_decay(&res).unwrap();
    let curves = output::read_curves(&res).unwrap();
    let lr0 = curves[0].lr.unwrap();
    assert!(
        (lr0 - 0.01 / 3.0).abs() < 1e-15,
        "warm-up scales the first step's rate: {lr0}"
    );
    for (row, gates, cell) in [
        (&table.rows[0], 1, runner::rnn::Cell::Rnn(runner::rnn::Activation::Tanh)),
        (&table.rows[4], 4, runner::rnn::Cell::Lstm),
        (&table.rows[6], 3, runner::rnn::Cell::Gru),
    ] {
        let bytes = fs::read(output::checkpoint_dir(&res, &row.run_id).join("final.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        assert_eq!(st.tensor("rnn.weight_hh_l0").unwrap().shape(), [gates * 5, 5]);
        assert_eq!(st.tensor("rnn.weight_ih_l0").unwrap().shape(), [gates * 5, 2]);
        let ck = output::read_checkpoint(&bytes).unwrap();
        assert_eq!(ck.meta["cell"], cell.name());
        assert_eq!(ck.params.cell(), cell);
        let probed = runner::rnn::probe(&ck.params, &ck.probe, &mut runner::rnn::Trace::default(), None);
        for (state, logs) in std::iter::once(("h", probed.top())).chain(probed.top_c().map(|c| ("c", c))) {
            let recorded: Vec<f64> = decay
                .iter()
                .filter(|r| r.run_id == row.run_id && r.probe_step == 12 && r.state == state)
                .map(|r| r.grad_norm.unwrap())
                .collect();
            assert_eq!(recorded.len(), 8, "{state}");
            let again: Vec<f64> = logs.iter().map(|&l| runner::elem::exp(l)).collect();
            assert_eq!(again, recorded, "{} {state}", ck.meta["cell"]);
        }
    }
    assert!(
        decay.iter().any(|r| r.state == "c"),
        "the LSTM probe measures its cell state"
    );
}

#[test]
fn gated_cells_refuse_an_activation_and_text_needs_a_readable_file() {
    let dir = scratch("refuse");
    fs::write(dir.join("a.toml"), "[model]\ncell = \"lstm\"\nactivation = \"relu\"\n").unwrap();
    let out = run(&dir, &["a.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("a.toml:3:1: `model.activation`: applies to the rnn and indrnn cells only"),
        "{}",
        stderr(&out)
    );
    fs::write(dir.join("t.toml"), "[task]\nkind = \"text\"\npath = \"nowhere.txt\"\n").unwrap();
    let out = run(&dir, &["t.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("t.toml:3:1: `task.path`: cannot read \"nowhere.txt\""),
        "{}",
        stderr(&out)
    );
    fs::write(dir.join("short.txt"), "abcabc").unwrap();
    let out = run(
        &dir,
        &["t.toml", "--set", "task.path=short.txt", "--set", "task.seq_len=20"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("shorter task.seq_len"), "{}", stderr(&out));
    fs::write(dir.join("v.toml"), "[[variant]]\nmodel.hidden = 3\n").unwrap();
    let out = run(&dir, &["v.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("needs a `label"), "{}", stderr(&out));
    assert!(!dir.join("results").exists());
}

#[test]
fn sample_spells_hello_from_a_trained_checkpoint() {
    let dir = scratch("sample");
    let spec = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/hello.toml")).unwrap();
    fs::write(dir.join("hello.toml"), spec).unwrap();
    assert_eq!(run(&dir, &["hello.toml", "-q"]).status.code(), Some(0));
    let id = output::read_runs(&dir.join("results/hello")).unwrap().rows[0]
        .run_id
        .clone();
    let args = [
        "sample",
        "results/hello",
        "--run",
        &id[..6],
        "--prime",
        "h",
        "--length",
        "4",
        "--temperature",
        "0.05",
    ];
    let out = run(&dir, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "hello");
    let out = run(&dir, &["sample", "results/hello", "--run", &id, "--prime", "x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("never saw"), "{}", stderr(&out));
}

/// Files read back (`plot`, `merge`, `sample`) are validated: a truncated, malformed or
/// mismatched file gives an error naming the file and its line (or tensor), never a panic and
/// never a silently wrong chart.
#[test]
fn damaged_files_read_back_are_named_with_their_line() {
    let dir = scratch("damaged");
    fs::write(dir.join("small.toml"), SMALL).unwrap();
    assert_eq!(run(&dir, &["small.toml", "-q", "--out", "good"]).status.code(), Some(0));
    let copy = |name: &str| {
        let to = dir.join(name);
        let _ = fs::remove_dir_all(&to);
        fs::create_dir_all(&to).unwrap();
        for f in ["runs.csv", "curves.csv", "grad_decay.csv", "manifest.json"] {
            fs::copy(dir.join("good").join(f), to.join(f)).unwrap();
        }
        to
    };
    let plot_error = |name: &str| {
        let out = run(&dir, &["plot", name]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
        stderr(&out)
    };

    // runs.csv cut in the middle of a row.
    let d = copy("truncated");
    let text = fs::read_to_string(d.join("runs.csv")).unwrap();
    fs::write(d.join("runs.csv"), &text[..text.len() - 40]).unwrap();
    let e = plot_error("truncated");
    assert!(e.contains("truncated/runs.csv:17"), "{e}");

    // A word where curves.csv has a number, and a NaN.
    let d = copy("malformed");
    let text = fs::read_to_string(d.join("curves.csv")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines[5] = lines[5].replacen(",0.", ",zero", 1);
    fs::write(d.join("curves.csv"), lines.join("\n")).unwrap();
    assert!(plot_error("malformed").contains("malformed/curves.csv:6"));
    lines = text.lines().map(String::from).collect();
    let fields: Vec<&str> = lines[7].split(',').collect();
    lines[7] = format!("{},{},NaN,{}", fields[0], fields[1], fields[3..].join(","));
    fs::write(d.join("curves.csv"), lines.join("\n")).unwrap();
    let e = plot_error("malformed");
    assert!(e.contains("malformed/curves.csv:8: a number is not finite"), "{e}");

    // grad_decay.csv from another sweep.
    let d = copy("mismatched");
    let text = fs::read_to_string(d.join("grad_decay.csv")).unwrap();
    let swapped = text.replacen(&text.lines().nth(1).unwrap()[..16], "ffffffffffffffff", 1);
    fs::write(d.join("grad_decay.csv"), swapped).unwrap();
    let e = plot_error("mismatched");
    assert!(
        e.contains("mismatched/grad_decay.csv:2: run ffffffffffffffff is not in runs.csv"),
        "{e}"
    );

    // A manifest cut short.
    let d = copy("manifest");
    let text = fs::read_to_string(d.join("manifest.json")).unwrap();
    fs::write(d.join("manifest.json"), &text[..text.len() / 2]).unwrap();
    assert!(plot_error("manifest").contains("manifest/manifest.json:"));

    // A truncated checkpoint, read back by `sample` (and a checkpoint missing a tensor).
    let table = runner::output::read_runs(&dir.join("good")).unwrap();
    let ck = runner::output::checkpoint_dir(&dir.join("good"), &table.rows[0].run_id).join("final.safetensors");
    let bytes = fs::read(&ck).unwrap();
    fs::write(&ck, &bytes[..bytes.len() / 3]).unwrap();
    let out = run(&dir, &["sample", "good", "--run", &table.rows[0].run_id]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("final.safetensors: not a safetensors file"),
        "{}",
        stderr(&out)
    );
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let kept: Vec<(String, safetensors::tensor::TensorView)> =
        st.tensors().into_iter().filter(|(name, _)| name != "probe.y").collect();
    let without = safetensors::serialize(kept, None).unwrap();
    let err = runner::output::read_checkpoint(&without).err().unwrap();
    assert_eq!(err, "tensor `probe.y` is missing");
}

/// No spec can make the tool try to allocate more than the machine has: the sweep's peak memory
/// is estimated from the spec and a sweep that would not fit is refused before anything starts.
#[test]
fn a_sweep_too_big_for_memory_is_refused_before_it_starts() {
    let dir = scratch("memory");
    let huge = "[task]\nseq_len = 100000\neval_size = 65536\n[model]\nhidden = 4096\ncell = \"lstm\"\n[train]\nbatch = 65536\n";
    fs::write(dir.join("huge.toml"), huge).unwrap();
    let t0 = std::time::Instant::now();
    let out = run(&dir, &["huge.toml", "-q"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("the sweep would need about"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("more than the memory available on this machine"),
        "{}",
        stderr(&out)
    );
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(5),
        "refused without allocating"
    );
    fs::write(dir.join("small.toml"), SMALL).unwrap();
    let out = run(&dir, &["small.toml", "-q", "--max-memory", "4M"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("more than the --max-memory limit (4 MiB)"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("results").exists());
    let out = run(&dir, &["small.toml", "-q", "--max-memory", "1G"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// Every kernel path this processor can run (`RUNNER_ISA` = avx512, avx2, portable) gives the
/// same bytes for a small sweep over every cell, activation and task: each path sums every
/// product element in the same order with fused multiply–adds. `manifest.json` names the path.
#[test]
fn every_kernel_path_gives_the_same_bytes() {
    let dir = scratch("isa");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/experiments/data/gpl-3.0.txt")).unwrap();
    fs::write(dir.join("text.txt"), &text[..4000]).unwrap();
    let tasks = [
        "kind = \"adding\"\nseq_len = 12",
        "kind = \"copy\"\nseq_len = 5",
        "kind = \"temporal_order\"\nseq_len = 12",
        "kind = \"hello\"",
        "kind = \"text\"\npath = \"text.txt\"\nseq_len = 10",
    ];
    let native = runner::isa::Isa::native();
    let paths: Vec<&str> = ["avx512", "avx2", "portable"]
        .into_iter()
        .filter(|p| runner::isa::Isa::from_name(p).unwrap() <= native)
        .collect();
    for (t, task) in tasks.iter().enumerate() {
        let spec = format!(
            r#"
name = "isa{t}"
[task]
{task}
eval_size = 8
[model]
hidden = 7
[train]
steps = 6
batch = 5
lr = 0.05
clip = 1.0
eval_every = 3
[probe]
every = 3
batch = 3
[[variant]]
label = "tanh"
model.activation = "tanh"
[[variant]]
label = "sigmoid"
model.activation = "sigmoid"
[[variant]]
label = "relu"
model.activation = "relu"
[[variant]]
label = "identity"
model.activation = "identity"
[[variant]]
label = "lstm"
model.cell = "lstm"
[[variant]]
label = "gru"
model.cell = "gru"
[sweep]
"model.dtype" = ["f64", "f32"]
"#
        );
        fs::write(dir.join(format!("isa{t}.toml")), spec).unwrap();
        let mut outputs = Vec::new();
        for path in &paths {
            let out = std::process::Command::new(common::BIN)
                .args([&format!("isa{t}.toml"), "-q", "--out", &format!("{path}{t}")])
                .args(["--set", "output.checkpoints=false", "--set", "output.charts=false"])
                .env("RUNNER_ISA", path)
                .current_dir(&dir)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(0), "{path}, task {t}: {}", stderr(&out));
            let res = dir.join(format!("{path}{t}"));
            assert_eq!(output::read_manifest(&res).unwrap().isa.as_deref(), Some(*path));
            outputs.push((
                runs_without_seconds(&res),
                fs::read(res.join("curves.csv")).unwrap(),
                fs::read(res.join("grad_decay.csv")).unwrap(),
            ));
        }
        for (p, o) in paths.iter().zip(&outputs).skip(1) {
            assert!(*o == outputs[0], "task {t}: {p} differs from {}", paths[0]);
        }
    }
    // A path this processor lacks, or a misspelt one, is refused before any work.
    let out = std::process::Command::new(common::BIN)
        .args(["isa0.toml", "-q", "--out", "bad"])
        .env("RUNNER_ISA", "avx1024")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RUNNER_ISA=avx1024"), "{}", stderr(&out));
    assert!(!dir.join("bad").exists());
}

/// Stacks (three layers of every cell, plain and residual, with dropout between layers, and
/// hidden size 64 so that their products and time loops are shared out among threads) give the
/// same bytes with one, two and three jobs and on every kernel path this processor can run.
#[test]
fn stacks_keep_the_bytes_across_jobs_and_kernel_paths() {
    same_bytes_everywhere(
        "stacks",
        r#"
name = "stack"
[task]
kind = "adding"
seq_len = 16
eval_size = 32
[model]
hidden = 64
layers = 3
dropout = 0.2
dtype = "f32"
[train]
steps = 3
batch = 32
eval_every = 1
[probe]
every = 2
batch = 8
spectrum = 3
[output]
charts = false
[sweep]
"model.cell" = ["rnn", "lstm", "gru"]
"model.residual" = [false, true]
"#,
    );
}

/// The cells since 2015, one layer and two (residual, with dropout), at H = 64: the same bytes
/// with one, two and three jobs and on every kernel path (the expRNN's exponential and its
/// derivative included).
#[test]
fn new_cells_keep_the_bytes_across_jobs_and_kernel_paths() {
    same_bytes_everywhere(
        "modern",
        r#"
name = "stack"
[task]
kind = "adding"
seq_len = 16
eval_size = 32
[model]
hidden = 64
dropout = 0.2
residual = true
dtype = "f32"
[train]
steps = 3
batch = 32
eval_every = 1
optimizer = "adam"
[probe]
every = 2
batch = 8
spectrum = 3
[output]
charts = false
[sweep]
"model.cell" = ["indrnn", "exprnn", "cornn", "antisymmetric"]
"model.layers" = [1, 2]
"#,
    );
}

/// Runs `spec` (results folder `stack`, every run with checkpoints) with one, two and three
/// jobs and on every kernel path this processor can run, and compares the tables and the final
/// checkpoints byte for byte.
fn same_bytes_everywhere(scratch_name: &str, spec: &str) {
    let dir = scratch(scratch_name);
    fs::write(dir.join("stack.toml"), spec).unwrap();
    let native = runner::isa::Isa::native();
    let mut outs = Vec::new();
    for jobs in ["1", "2", "3"] {
        let name = format!("j{jobs}");
        let out = run(&dir, &["stack.toml", "-q", "--jobs", jobs, "--out", &name]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        outs.push(name);
    }
    for path in ["avx512", "avx2", "portable"] {
        if runner::isa::Isa::from_name(path).unwrap() > native {
            continue;
        }
        let out = std::process::Command::new(common::BIN)
            .args(["stack.toml", "-q", "--jobs", "2", "--out", path])
            .env("RUNNER_ISA", path)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{path}: {}", stderr(&out));
        outs.push(path.to_string());
    }
    let one = dir.join(&outs[0]);
    for other in &outs[1..] {
        assert_same_results_and(&one, &dir.join(other), &["spectrum.csv"]);
    }
}

/// The IndRNN keeps every |u_i| ≤ `model.recurrent_max` after each update (Li et al. 2018), with
/// a rate large enough that the bound is reached; the checkpoint's metadata holds the bound.
#[test]
fn indrnn_keeps_its_recurrent_weights_within_the_bound() {
    let dir = scratch("indrnn-bound");
    fs::write(
        dir.join("ind.toml"),
        "[task]\nseq_len = 10\n[model]\ncell = \"indrnn\"\nhidden = 8\nlayers = 2\nrecurrent_max = 0.5\n[train]\nsteps = 30\noptimizer = \"sgd\"\nlr = 5.0\n",
    )
    .unwrap();
    let out = run(&dir, &["ind.toml", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = output::read_runs(&dir.join("results/ind")).unwrap();
    let f = format!("results/ind/checkpoints/{}/final.safetensors", table.rows[0].run_id);
    let ck = output::read_checkpoint(&fs::read(dir.join(f)).unwrap()).unwrap();
    assert_eq!(ck.meta["recurrent_max"].as_f64(), Some(0.5));
    let us: Vec<f64> = ck
        .params
        .layers()
        .iter()
        .flat_map(|l| l.get(runner::rnn::Role::Diagonal).unwrap().to_vec())
        .collect();
    let largest = us.iter().fold(0.0f64, |m, u| m.max(u.abs()));
    println!("largest |u| after 30 updates: {largest}");
    assert!(largest <= 0.5, "|u| = {largest} above the bound");
    assert!(
        us.iter().any(|u| u.abs() == 0.5),
        "the bound was reached and held: {us:?}"
    );
}
