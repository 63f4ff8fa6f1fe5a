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
//! - `copy` (Arjovsky, Shah & Bengio 2016): 10 symbols drawn from 8, T−1 blanks, a delimiter,
//!   then 10 blanks; the target is blanks and then the 10 symbols; cross-entropy at every step.
//!   Memoryless baseline: blanks exactly, then a uniform guess, 10·ln 8 / (T + 20).
//! - `temporal_order` (Hochreiter & Schmidhuber 1997; Pascanu et al. 2013): T distractor
//!   symbols from {c, d, e, f} with two relevant symbols (A or B) at positions drawn from
//!   [T/10, 2T/10] and [5T/10, 6T/10]; the class is the ordered pair (4 classes); cross-entropy
//!   at the last step. Baseline ln 4.
//! - `text`: a character-level language model on a UTF-8 file: windows of T characters,
//!   cross-entropy at every step; trained on the first 90 % of the file, evaluated on windows
//!   of the last 10 %. Baseline: the unigram entropy of the file.

use std::sync::Arc;

use ndarray::{Array2, Array3};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::Float;
use crate::elem;
use crate::rnn::{Batch, Inputs, Targets};

/// A text file read for the `text` task: its characters as vocabulary indices.
#[derive(Clone, Debug, PartialEq)]
pub struct Corpus {
    /// Distinct characters in order of first appearance.
    pub vocab: Vec<char>,
    /// The text as indices into `vocab`.
    pub ids: Vec<usize>,
    /// Characters before this index train; the rest is held out for evaluation.
    pub split: usize,
}

/// Largest vocabulary the `text` task accepts (each character is an input and an output unit).
pub const MAX_VOCAB: usize = 512;

impl Corpus {
    /// Reads and checks a corpus for windows of `seq_len` characters: the file must exist, be
    /// UTF-8, hold at most [`MAX_VOCAB`] distinct characters, and both its training part and its
    /// held-out tail must hold a window plus one character.
    pub fn load(path: &str, seq_len: usize) -> Result<Self, String> {
        if path.is_empty() {
            return Err("the text task needs `task.path`, the UTF-8 file to learn".into());
        }
        let bytes = std::fs::read(path).map_err(|e| format!("cannot read \"{path}\": {e}"))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            format!(
                "\"{path}\" is not UTF-8 (first bad byte at offset {})",
                e.utf8_error().valid_up_to()
            )
        })?;
        if text.is_empty() {
            return Err(format!("\"{path}\" is empty"));
        }
        let mut vocab: Vec<char> = Vec::new();
        let mut ids = Vec::with_capacity(text.len());
        for ch in text.chars() {
            let id = match vocab.iter().position(|v| *v == ch) {
                Some(i) => i,
                None => {
                    vocab.push(ch);
                    if vocab.len() > MAX_VOCAB {
                        return Err(format!(
                            "\"{path}\" has more than {MAX_VOCAB} distinct characters, too many inputs and outputs for the model"
                        ));
                    }
                    vocab.len() - 1
                }
            };
            ids.push(id);
        }
        let split = ids.len() * 9 / 10;
        let tail = ids.len() - split;
        if split < seq_len + 1 || tail < seq_len + 1 {
            return Err(format!(
                "\"{path}\" holds {} characters: with 10 % held out, neither part may be shorter than task.seq_len + 1 = {}; use a shorter task.seq_len (at most {}) or a longer text",
                ids.len(),
                seq_len + 1,
                (tail.min(split)).saturating_sub(1)
            ));
        }
        Ok(Self { vocab, ids, split })
    }
}

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
    /// Recall 10 symbols after a delay.
    Copy {
        /// T, the delay.
        delay: usize,
        /// Sequences in the fixed evaluation set.
        eval_size: usize,
    },
    /// Classify the order of two relevant symbols.
    TemporalOrder {
        /// T (at least 10).
        seq_len: usize,
        /// Sequences in the fixed evaluation set.
        eval_size: usize,
    },
    /// Character language model on a file.
    Text {
        /// The file, as given.
        path: String,
        /// The file's contents.
        corpus: Arc<Corpus>,
        /// Window length T.
        seq_len: usize,
        /// Most held-out windows to evaluate on.
        eval_size: usize,
    },
}

/// A task ready to generate batches.
#[derive(Clone, Debug)]
pub struct Task {
    config: TaskConfig,
    /// Vocabulary of the `hello` and `text` tasks; empty for the others.
    vocab: Vec<char>,
}

/// Stream numbers that keep the evaluation and probe sets apart from training batches.
const EVAL_STREAM: u64 = 0xE7A1;
const PROBE_STREAM: u64 = 0x9B0B;

/// The copy task's alphabet: 0 is the blank, 1 … 8 the symbols, 9 the delimiter.
const COPY_SYMBOLS: usize = 8;
const COPY_LEN: usize = 10;
const COPY_DELIM: usize = 9;

impl Task {
    /// Builds the task (settings already validated).
    pub fn new(config: TaskConfig) -> Self {
        let vocab = match &config {
            TaskConfig::Hello { word } => {
                let mut vocab = Vec::new();
                for c in word.chars() {
                    if !vocab.contains(&c) {
                        vocab.push(c);
                    }
                }
                vocab
            }
            TaskConfig::Text { corpus, .. } => corpus.vocab.clone(),
            _ => Vec::new(),
        };
        Self { config, vocab }
    }

    /// The task's settings.
    pub fn config(&self) -> &TaskConfig {
        &self.config
    }

    /// The sequence length the network sees.
    pub fn seq_len(&self) -> usize {
        match &self.config {
            TaskConfig::Adding { seq_len, .. } | TaskConfig::TemporalOrder { seq_len, .. } => *seq_len,
            TaskConfig::Text { seq_len, .. } => *seq_len,
            TaskConfig::Hello { word } => word.chars().count() - 1,
            TaskConfig::Copy { delay, .. } => delay + 2 * COPY_LEN,
        }
    }

    /// D, the input size (the vocabulary size for one-hot inputs).
    pub fn input_dim(&self) -> usize {
        match self.config {
            TaskConfig::Adding { .. } => 2,
            TaskConfig::Hello { .. } | TaskConfig::Text { .. } => self.vocab.len(),
            TaskConfig::Copy { .. } => COPY_SYMBOLS + 2,
            TaskConfig::TemporalOrder { .. } => 6,
        }
    }

    /// O, the output size.
    pub fn output_dim(&self) -> usize {
        match self.config {
            TaskConfig::Adding { .. } => 1,
            TaskConfig::Hello { .. } | TaskConfig::Text { .. } => self.vocab.len(),
            TaskConfig::Copy { .. } => COPY_SYMBOLS + 2,
            TaskConfig::TemporalOrder { .. } => 4,
        }
    }

    /// The vocabulary of a character task, in index order.
    pub fn vocab(&self) -> &[char] {
        &self.vocab
    }

    /// How the loss is taken, for checkpoints' metadata.
    pub fn loss_name(&self) -> &'static str {
        match self.config {
            TaskConfig::Adding { .. } => "mse_last_step",
            TaskConfig::TemporalOrder { .. } => "cross_entropy_last_step",
            _ => "cross_entropy_every_step",
        }
    }

    /// The loss of the best predictor that has no memory (see the module documentation).
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
                        -elem::ln(a_to_b / from_a)
                    })
                    .sum();
                nll / pairs.len() as Float
            }
            TaskConfig::Copy { delay, .. } => {
                COPY_LEN as Float * elem::ln(COPY_SYMBOLS as Float) / (delay + 2 * COPY_LEN) as Float
            }
            TaskConfig::TemporalOrder { .. } => elem::ln(4.0),
            TaskConfig::Text { corpus, .. } => {
                let mut counts = vec![0usize; corpus.vocab.len()];
                for &i in &corpus.ids {
                    counts[i] += 1;
                }
                let n = corpus.ids.len() as Float;
                counts
                    .iter()
                    .filter(|&&c| c > 0)
                    .map(|&c| -(c as Float / n) * elem::ln(c as Float / n))
                    .sum()
            }
        }
    }

    /// Whether the task reports classification accuracy.
    pub fn has_accuracy(&self) -> bool {
        !matches!(self.config, TaskConfig::Adding { .. })
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
                    accuracy_from: 0,
                }
            }
            TaskConfig::Copy { delay, .. } => copy_batch(*delay, n, rng),
            TaskConfig::TemporalOrder { seq_len, .. } => temporal_order_batch(*seq_len, n, rng),
            TaskConfig::Text { corpus, seq_len, .. } => {
                let starts: Vec<usize> = (0..n).map(|_| rng.random_range(0..corpus.split - seq_len)).collect();
                text_batch(corpus, *seq_len, &starts)
            }
        }
    }

    /// The fixed evaluation set: the same for every seed and every run of this task.
    pub fn eval_set(&self) -> Batch {
        match &self.config {
            TaskConfig::Adding { eval_size, .. }
            | TaskConfig::Copy { eval_size, .. }
            | TaskConfig::TemporalOrder { eval_size, .. } => {
                self.sample(*eval_size, &mut ChaCha8Rng::seed_from_u64(EVAL_STREAM))
            }
            TaskConfig::Hello { .. } => self.sample(1, &mut ChaCha8Rng::seed_from_u64(EVAL_STREAM)),
            TaskConfig::Text {
                corpus,
                seq_len,
                eval_size,
                ..
            } => {
                // Non-overlapping windows of the held-out tail.
                let starts: Vec<usize> = (corpus.split..corpus.ids.len() - seq_len)
                    .step_by(*seq_len)
                    .take(*eval_size)
                    .collect();
                text_batch(corpus, *seq_len, &starts)
            }
        }
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
        accuracy_from: 0,
    }
}

/// `n` copy-task sequences with delay `delay`: inputs and targets (T + 20, B).
fn copy_batch(delay: usize, n: usize, rng: &mut impl Rng) -> Batch {
    let len = delay + 2 * COPY_LEN;
    let mut x = Array2::<usize>::zeros((len, n));
    let mut y = Array2::<usize>::zeros((len, n));
    for b in 0..n {
        for i in 0..COPY_LEN {
            let sym = rng.random_range(1..=COPY_SYMBOLS);
            x[[i, b]] = sym;
            y[[delay + COPY_LEN + i, b]] = sym;
        }
        x[[COPY_LEN + delay - 1, b]] = COPY_DELIM;
    }
    Batch {
        inputs: Inputs::OneHot(x),
        targets: Targets::Classes(y),
        accuracy_from: delay + COPY_LEN,
    }
}

/// `n` temporal-order sequences of length `t` (t ≥ 10): inputs (T, B) over {A, B, c, d, e, f},
/// targets (1, B), class = 2·[first is B] + [second is B].
fn temporal_order_batch(t: usize, n: usize, rng: &mut impl Rng) -> Batch {
    let mut x = Array2::<usize>::zeros((t, n));
    let mut y = Array2::<usize>::zeros((1, n));
    for b in 0..n {
        for step in 0..t {
            x[[step, b]] = rng.random_range(2..6);
        }
        let p1 = rng.random_range(t / 10..=2 * t / 10);
        let p2 = rng.random_range(5 * t / 10..=6 * t / 10);
        let (s1, s2) = (rng.random_range(0..2), rng.random_range(0..2));
        x[[p1, b]] = s1;
        x[[p2, b]] = s2;
        y[[0, b]] = 2 * s1 + s2;
    }
    Batch {
        inputs: Inputs::OneHot(x),
        targets: Targets::Classes(y),
        accuracy_from: 0,
    }
}

/// Windows of `t` characters starting at `starts`: input text[s..s+t], target text[s+1..s+t+1].
fn text_batch(corpus: &Corpus, t: usize, starts: &[usize]) -> Batch {
    let x = Array2::from_shape_fn((t, starts.len()), |(i, b)| corpus.ids[starts[b] + i]);
    let y = Array2::from_shape_fn((t, starts.len()), |(i, b)| corpus.ids[starts[b] + i + 1]);
    Batch {
        inputs: Inputs::OneHot(x),
        targets: Targets::Classes(y),
        accuracy_from: 0,
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // references from the C library, independent of elem
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
    fn copy_targets_are_blanks_then_the_symbols() {
        let task = Task::new(TaskConfig::Copy { delay: 5, eval_size: 2 });
        assert_eq!(task.seq_len(), 25);
        let batch = task.sample(3, &mut ChaCha8Rng::seed_from_u64(1));
        let (Inputs::OneHot(x), Targets::Classes(y)) = (&batch.inputs, &batch.targets) else {
            unreachable!()
        };
        for b in 0..3 {
            let col = |a: &Array2<usize>| a.column(b).to_vec();
            let (x, y) = (col(x), col(y));
            assert!(x[..10].iter().all(|&s| (1..=8).contains(&s)));
            assert_eq!(x[14], 9, "delimiter after T−1 = 4 blanks");
            assert!(x[10..14].iter().chain(&x[15..]).all(|&s| s == 0));
            assert!(y[..15].iter().all(|&s| s == 0));
            assert_eq!(y[15..], x[..10]);
        }
        assert!((task.baseline_loss() - 10.0 * (8.0 as Float).ln() / 25.0).abs() < 1e-15);
    }

    #[test]
    fn temporal_order_class_is_the_ordered_pair() {
        let task = Task::new(TaskConfig::TemporalOrder {
            seq_len: 50,
            eval_size: 2,
        });
        let batch = task.sample(40, &mut ChaCha8Rng::seed_from_u64(2));
        let (Inputs::OneHot(x), Targets::Classes(y)) = (&batch.inputs, &batch.targets) else {
            unreachable!()
        };
        for b in 0..40 {
            let relevant: Vec<(usize, usize)> = (0..50).filter(|&t| x[[t, b]] < 2).map(|t| (t, x[[t, b]])).collect();
            assert_eq!(relevant.len(), 2);
            assert!((5..=10).contains(&relevant[0].0) && (25..=30).contains(&relevant[1].0));
            assert_eq!(y[[0, b]], 2 * relevant[0].1 + relevant[1].1);
        }
    }

    #[test]
    fn text_corpus_checks_and_baseline() {
        let dir = std::env::temp_dir().join(format!("runner-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.txt");
        std::fs::write(&path, "abab".repeat(50)).unwrap();
        let p = path.to_str().unwrap();
        let corpus = Corpus::load(p, 10).unwrap();
        assert_eq!(corpus.vocab, ['a', 'b']);
        let task = Task::new(TaskConfig::Text {
            path: p.into(),
            corpus: Arc::new(corpus),
            seq_len: 10,
            eval_size: 100,
        });
        assert!((task.baseline_loss() - (2.0 as Float).ln()).abs() < 1e-12);
        let eval = task.eval_set();
        assert_eq!(
            eval.inputs.dims(),
            (10, 1),
            "20 held-out characters hold one window of 10 plus its target"
        );
        assert!(Corpus::load(p, 30).unwrap_err().contains("shorter task.seq_len"));
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(Corpus::load(p, 3).unwrap_err().contains("not UTF-8"));
        std::fs::write(&path, "").unwrap();
        assert!(Corpus::load(p, 3).unwrap_err().contains("empty"));
        assert!(
            Corpus::load(dir.join("missing").to_str().unwrap(), 3)
                .unwrap_err()
                .contains("cannot read")
        );
    }

    #[test]
    fn hello_vocabulary_and_baseline() {
        let task = Task::new(TaskConfig::Hello { word: "hello".into() });
        assert_eq!(task.vocab(), ['h', 'e', 'l', 'o']);
        assert_eq!(task.seq_len(), 4);
        assert!((task.baseline_loss() - (2.0 as Float).ln() / 2.0).abs() < 1e-15);
    }
}
