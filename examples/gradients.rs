//! The evaluation loss of a checkpoint's probe batch and its gradient with respect to every
//! parameter, as runner computes them, written under PyTorch's names for an independent check
//! (`scripts/check_pytorch.py --gradients` compares them with autograd's).
//!
//!     cargo run --release --example gradients -- CHECKPOINT OUT.safetensors
//!
//! Reads CHECKPOINT (`output::read_checkpoint`: the parameters and the probe batch, widened to
//! f64 when the run was f32), runs `rnn::forward` then `rnn::backward` (full BPTT) in f64 and
//! writes OUT, a safetensors file of float64 tensors:
//!
//! - `loss` (1): E, the mean over the L·B loss-carrying (step, sequence) pairs of the
//!   cross-entropy (softmax head) or of the squared error averaged over the O outputs (MSE head),
//!   the loss-carrying steps being the last L of the T (L = `probe.y`'s first axis);
//! - `grad.<name>`: dE/dθ for every parameter tensor θ under its checkpoint name
//!   (`grad.rnn.weight_hh_l0`, …, `grad.head.weight`, `grad.head.bias`), in its shape. Where the
//!   cell keeps one bias that PyTorch holds as two (`bias_ih + bias_hh`, plain and LSTM cells),
//!   its gradient is written under both names: each of PyTorch's two receives it.
//!
//! The names come from `output::torch_tensors`, the list checkpoints are written from. Exits 1
//! with a message on a file it cannot read or write.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use runner::output::{read_checkpoint, torch_tensors, write_atomic};
use runner::rnn::{Trace, backward, forward};
use safetensors::{Dtype, tensor::TensorView};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [checkpoint, out] = &args[..] else {
        eprintln!("usage: gradients CHECKPOINT OUT.safetensors");
        return ExitCode::from(2);
    };
    match run(Path::new(checkpoint), Path::new(out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gradients: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Reads `checkpoint`, writes its loss and gradients to `out`.
fn run(checkpoint: &Path, out: &Path) -> Result<()> {
    let bytes = std::fs::read(checkpoint).with_context(|| format!("reading {}", checkpoint.display()))?;
    let ck = read_checkpoint(&bytes).map_err(|e| anyhow!("{}: {e}", checkpoint.display()))?;
    let (p, probe) = (&ck.params, &ck.probe);

    let mut trace = Trace::default();
    let loss = forward(p, probe, &mut trace);
    let mut g = p.zeros_like(); // backward adds into it
    backward(p, probe, &mut trace, &mut g);

    // (name, shape, f64 entries) of every tensor written; a summed bias's gradient twice.
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = vec![("loss".into(), vec![1], loss.to_le_bytes().to_vec())];
    for t in torch_tensors(&g) {
        let data: Vec<u8> = t.data.iter().flat_map(|x| x.to_le_bytes()).collect();
        if let Some(twin) = t.twin {
            tensors.push((format!("grad.{twin}"), t.shape.clone(), data.clone()));
        }
        tensors.push((format!("grad.{}", t.name), t.shape, data));
    }
    let views = tensors.iter().map(|(name, shape, data)| {
        let view = TensorView::new(Dtype::F64, shape.clone(), data).expect("shape matches data");
        (name.as_str(), view)
    });
    let meta = HashMap::from([("checkpoint".to_string(), checkpoint.display().to_string())]);
    let bytes = safetensors::serialize(views, Some(meta)).context("serialising the gradients")?;
    Ok(write_atomic(out, &bytes)?) // its error names the file
}
