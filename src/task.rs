//! The tasks: deterministic data from a seeded RNG, the trivial baseline each result is
//! compared with, and the fixed evaluation and probe sets.
//!
//! - `adding` (Hochreiter & Schmidhuber 1997; Le, Jaitly & Hinton 2015): T steps of
//!   (value ~ U(0,1), marker ∈ {0,1}) with exactly two markers, one in each half; the target is
//!   the sum of the two marked values; squared error on the last step (many-to-one). Always
//!   predicting 1, the mean of the target, gives MSE = Var(u₁+u₂) = 2/12 = 1/6.
//! - `hello`: the classic character example. The vocabulary is the word's characters in order
//!   of first appearance; the input is the word but its last character, the target the word
//!   but its first; cross-entropy at every step (many-to-many).

use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Float;
use crate::rnn::{Batch, Inputs, Targets};

/// Which task, with its settings.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskConfig {
    /// The adding problem with sequences of `seq_len` steps.
    Adding {
        /// T.
        seq_len: usize,
        /// Sequences in the fixed evaluation set.
        eval_size: usize,
    },
    /// Next-character prediction on one word.
    Hello {
        /// The word, at least two characters.
        word: String,
    },
}

/// A task ready to generate batches.
#[derive(Clone, Debug)]
pub struct Task {
    config: TaskConfig,
    /// Vocabulary of the `hello` task, in order of first appearance; empty for `adding`.
    vocab: Vec<char>,
}

/// Stream numbers that keep the evaluation and probe sets apart from training batches.
const EVAL_STREAM: u64 = 0xE7A1;
const PROBE_STREAM: u64 = 0x9B0B;

impl Task {
    /// Builds the task. `hello` needs a word of at least two characters (checked by the spec).
    pub fn new(config: TaskConfig) -> Self {
        let mut vocab = Vec::new();
        if let TaskConfig::Hello { word } = &config {
            for c in word.chars() {
                if !vocab.contains(&c) {
                    vocab.push(c);
                }
            }
        }
        Self { config, vocab }
    }

    /// The task's settings.
    pub fn config(&self) -> &TaskConfig {
        &self.config
    }

    /// T, the sequence length.
    pub fn seq_len(&self) -> usize {
        match &self.config {
            TaskConfig::Adding { seq_len, .. } => *seq_len,
            TaskConfig::Hello { word } => word.chars().count() - 1,
        }
    }

    /// D, the input size (the vocabulary size for one-hot inputs).
    pub fn input_dim(&self) -> usize {
        match self.config {
            TaskConfig::Adding { .. } => 2,
            TaskConfig::Hello { .. } => self.vocab.len(),
        }
    }

    /// O, the output size.
    pub fn output_dim(&self) -> usize {
        match self.config {
            TaskConfig::Adding { .. } => 1,
            TaskConfig::Hello { .. } => self.vocab.len(),
        }
    }

    /// The vocabulary of a character task, in index order.
    pub fn vocab(&self) -> &[char] {
        &self.vocab
    }

    /// The loss of the best predictor that has no memory: for `adding`, always predicting 1
    /// (MSE 1/6); for `hello`, predicting the next character from the current one alone
    /// (for "hello": ln 2 / 2, because "l" is followed once by "l" and once by "o").
    pub fn baseline_loss(&self) -> Float {
        match &self.config {
            TaskConfig::Adding { .. } => 1.0 / 6.0,
            TaskConfig::Hello { word } => {
                let chars: Vec<char> = word.chars().collect();
                let pairs: Vec<(char, char)> = chars.windows(2).map(|w| (w[0], w[1])).collect();
                let nll: Float = pairs
                    .iter()
                    .map(|&(a, b)| {
                        let from_a = pairs.iter().filter(|p| p.0 == a).count() as Float;
                        let a_to_b = pairs.iter().filter(|p| **p == (a, b)).count() as Float;
                        -(a_to_b / from_a).ln()
                    })
                    .sum();
                nll / pairs.len() as Float
            }
        }
    }

    /// Whether the task reports classification accuracy.
    pub fn has_accuracy(&self) -> bool {
        matches!(self.config, TaskConfig::Hello { .. })
    }

    /// A batch of `n` sequences drawn from `rng`.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Batch {
        match &self.config {
            TaskConfig::Adding { seq_len, .. } => adding_batch(*seq_len, n, rng),
            TaskConfig::Hello { word } => {
                let idx: Vec<usize> = word
                    .chars()
                    .map(|c| self.vocab.iter().position(|v| *v == c).expect("in vocabulary"))
                    .collect();
                let t = idx.len() - 1;
                let x = Array2::from_shape_fn((t, n), |(i, _)| idx[i]);
                let y = Array2::from_shape_fn((t, n), |(i, _)| idx[i + 1]);
                Batch {
                    inputs: Inputs::OneHot(x),
                    targets: Targets::Classes(y),
                }
            }
        }
    }

    /// The fixed evaluation set: the same for every seed and every run of this task.
    pub fn eval_set(&self) -> Batch {
        let n = match self.config {
            TaskConfig::Adding { eval_size, .. } => eval_size,
            TaskConfig::Hello { .. } => 1,
        };
        self.sample(n, &mut ChaCha8Rng::seed_from_u64(EVAL_STREAM))
    }

    /// The fixed probe batch of `n` sequences: the same for every seed and every run.
    pub fn probe_set(&self, n: usize) -> Batch {
        self.sample(n, &mut ChaCha8Rng::seed_from_u64(PROBE_STREAM))
    }
}

/// `n` adding-problem sequences of length `t` (t ≥ 2): inputs (T, B, 2), targets (1, B, 1).
fn adding_batch(t: usize, n: usize, rng: &mut impl Rng) -> Batch {
    let mut x = Array3::<Float>::zeros((t, n, 2));
    let mut y = Array3::<Float>::zeros((1, n, 1));
    let half = t / 2;
    for b in 0..n {
        for step in 0..t {
            x[[step, b, 0]] = rng.random::<Float>();
        }
        let first = rng.random_range(0..half);
        let second = rng.random_range(half..t);
        x[[first, b, 1]] = 1.0;
        x[[second, b, 1]] = 1.0;
        y[[0, b, 0]] = x[[first, b, 0]] + x[[second, b, 0]];
    }
    Batch {
        inputs: Inputs::Dense(x),
        targets: Targets::Values(y),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adding_has_one_marker_per_half_and_the_right_sum() {
        let task = Task::new(TaskConfig::Adding {
            seq_len: 11,
            eval_size: 4,
        });
        let batch = task.sample(50, &mut ChaCha8Rng::seed_from_u64(3));
        let (Inputs::Dense(x), Targets::Values(y)) = (&batch.inputs, &batch.targets) else {
            panic!("adding is dense regression")
        };
        for b in 0..50 {
            let marks: Vec<usize> = (0..11).filter(|&t| x[[t, b, 1]] == 1.0).collect();
            assert_eq!(marks.len(), 2);
            assert!(marks[0] < 5 && marks[1] >= 5);
            assert_eq!(y[[0, b, 0]], x[[marks[0], b, 0]] + x[[marks[1], b, 0]]);
        }
    }

    #[test]
    fn adding_baseline_matches_its_empirical_value() {
        // Predicting 1 everywhere: the mean squared error over many draws approaches 1/6.
        let task = Task::new(TaskConfig::Adding {
            seq_len: 4,
            eval_size: 1,
        });
        let batch = task.sample(200_000, &mut ChaCha8Rng::seed_from_u64(9));
        let Targets::Values(y) = &batch.targets else {
            unreachable!()
        };
        let mse = y.mapv(|v| (v - 1.0) * (v - 1.0)).mean().unwrap();
        assert!((mse - task.baseline_loss()).abs() < 2e-3, "mse = {mse}");
    }

    #[test]
    fn hello_vocabulary_and_baseline() {
        let task = Task::new(TaskConfig::Hello { word: "hello".into() });
        assert_eq!(task.vocab(), ['h', 'e', 'l', 'o']);
        assert_eq!(task.seq_len(), 4);
        assert!((task.baseline_loss() - (2.0 as Float).ln() / 2.0).abs() < 1e-15);
    }
}
