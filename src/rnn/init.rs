//! Initialisation: how W, U and V are drawn (Xavier, normal, orthogonal, identity, Pascanu et
//! al.'s sparse), and the network's configuration that draws them.

use ndarray::Array2;
use rand::Rng;

use super::{Cell, Params, Start, spectral_norm, spectral_radius};
use crate::Float;
use crate::elem;
use crate::real::{Dtype, dot};

/// How a weight matrix is initialised.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// Glorot uniform: U(−a, a) with a = √(6 / (fan_in + fan_out)).
    Xavier,
    /// N(0, std²).
    Normal,
    /// A random (semi-)orthogonal matrix: Gram–Schmidt on a Gaussian matrix.
    Orthogonal,
    /// The identity matrix (square matrices only; the IRNN recipe for W).
    Identity,
    /// The expRNN's A with 2×2 diagonal blocks [[0, s], [−s, 0]], s ~ U(−π, π) (Henaff, Szlam &
    /// LeCun 2016, as the expRNN's code): drawn into P's upper triangle, P[2i, 2i+1] = s_i.
    Henaff,
    /// As `Henaff` with s = −tan(θ/2), θ ~ U(0, π/2) (the expRNN's code's Cayley
    /// initialisation: exp(A)'s blocks are rotations by angles in (−π/2, 0)).
    Cayley,
    /// Pascanu et al. 2013's "smart" initialisation: each row has `nonzero` N(0, 1) entries at
    /// random columns, then the matrix is rescaled to spectral radius `radius`.
    Sparse {
        /// Non-zero inputs per unit.
        nonzero: usize,
        /// Target spectral radius.
        radius: Float,
    },
}

impl Init {
    /// Parses a spec value (`sparse` takes its settings from the caller).
    pub fn from_name(name: &str, nonzero: usize, radius: Float) -> Option<Self> {
        Some(match name {
            "xavier" => Self::Xavier,
            "normal" => Self::Normal,
            "orthogonal" => Self::Orthogonal,
            "identity" => Self::Identity,
            "sparse" => Self::Sparse { nonzero, radius },
            "henaff" => Self::Henaff,
            "cayley" => Self::Cayley,
            _ => return None,
        })
    }

    /// A (rows, cols) matrix drawn from this initialisation.
    pub fn sample(self, rows: usize, cols: usize, std: Float, rng: &mut impl Rng) -> Array2<Float> {
        match self {
            Self::Xavier => {
                let a = (6.0 / (rows + cols) as Float).sqrt();
                Array2::from_shape_simple_fn((rows, cols), || a * (2.0 * rng.random::<Float>() - 1.0))
            }
            Self::Normal => Array2::from_shape_simple_fn((rows, cols), || std * normal(rng)),
            Self::Orthogonal => {
                // Orthonormalise the columns of a tall Gaussian matrix, transpose if wide.
                let (tall, short) = (rows.max(cols), rows.min(cols));
                let mut q = Array2::from_shape_simple_fn((tall, short), || normal(rng));
                for j in 0..short {
                    for i in 0..j {
                        let proj = dot(q.column(i), q.column(j));
                        let qi = q.column(i).to_owned();
                        q.column_mut(j).scaled_add(-proj, &qi);
                    }
                    let norm = dot(q.column(j), q.column(j)).sqrt();
                    q.column_mut(j).mapv_inplace(|x| x / norm);
                }
                if rows >= cols {
                    q
                } else {
                    q.reversed_axes().as_standard_layout().to_owned()
                }
            }
            Self::Identity => Array2::eye(rows),
            Self::Henaff | Self::Cayley => {
                let mut p = Array2::zeros((rows, cols));
                for i in (0..rows.min(cols).saturating_sub(1)).step_by(2) {
                    let u = rng.random::<Float>();
                    p[[i, i + 1]] = if self == Self::Henaff {
                        std::f64::consts::PI * (2.0 * u - 1.0)
                    } else {
                        let cos = elem::cos_pi(u / 2.0); // cos θ, θ = π·u/2 ~ U(0, π/2)
                        -((1.0 - cos) / (1.0 + cos)).sqrt() // −tan(θ/2)
                    };
                }
                p
            }
            Self::Sparse { nonzero, radius } => {
                let mut m = Array2::zeros((rows, cols));
                let k = nonzero.min(cols);
                for mut row in m.rows_mut() {
                    // k distinct columns by a partial Fisher–Yates shuffle.
                    let mut idx: Vec<usize> = (0..cols).collect();
                    for i in 0..k {
                        let j = rng.random_range(i..cols);
                        idx.swap(i, j);
                        row[idx[i]] = normal(rng);
                    }
                }
                let rho = if rows == cols {
                    spectral_radius(&m)
                } else {
                    spectral_norm(&m)
                };
                if rho > 0.0 {
                    m *= radius / rho;
                }
                m
            }
        }
    }
}

/// A standard normal draw (Marsaglia's polar method: a uniform point in the unit disc, scaled),
/// so that results depend neither on a distribution crate's algorithm choices nor on the C
/// library's cosine (only +, ×, ÷, √ and [`elem::ln`]).
pub fn normal(rng: &mut impl Rng) -> Float {
    loop {
        let u: Float = 2.0 * rng.random::<Float>() - 1.0;
        let v: Float = 2.0 * rng.random::<Float>() - 1.0;
        let s = u * u + v * v;
        if s > 0.0 && s < 1.0 {
            return u * (-2.0 * elem::ln(s) / s).sqrt();
        }
    }
}

/// Everything needed to build a network: sizes, cell and initialisation.
#[derive(Clone, Debug, PartialEq)]
pub struct RnnConfig {
    /// D, input size.
    pub input: usize,
    /// H, hidden size.
    pub hidden: usize,
    /// O, output size.
    pub output: usize,
    /// The cell (with σ for the plain one).
    pub cell: Cell,
    /// Initialisation of the recurrent weights (W, each H×H gate block separately).
    pub init: Init,
    /// Initialisation of the input weights and V (U per gate block).
    pub init_io: Init,
    /// Standard deviation for [`Init::Normal`].
    pub std: Float,
    /// Multiplier applied to W after initialisation.
    pub scale: Float,
    /// Initial bias of the LSTM forget gate.
    pub forget_bias: Float,
    /// Element type of training (initialisation is drawn in f64 either way, then rounded).
    pub dtype: Dtype,
    /// L, the recurrent layers stacked (`model.layers`, 1 … 16).
    pub layers: usize,
    /// Whether layers l ≥ 1 pass up their input plus their state (`model.residual`).
    pub residual: bool,
    /// p of the inverted dropout between layers during training (`model.dropout`, 0 ≤ p < 1).
    pub dropout: Float,
    /// What the cells built since 2015 draw their own way.
    pub cell_init: CellInit,
}

/// What the cells built since 2015 draw their own way, resolved per run (the defaults leave
/// every other cell as it was).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub struct CellInit {
    /// The IndRNN's bound on |u_i| (`model.recurrent_max`), kept after every update; 0 for
    /// other cells.
    pub recurrent_max: Float,
    /// 2^(1/T): the IndRNN's top layer draws u ~ U(1/this, this), every other layer U(0,
    /// recurrent_max).
    pub top_range: Float,
    /// Where set, U is drawn N(0, s²) instead of by `model.init_io` (the IndRNN's 0.001, unless
    /// `model.init_io` is set).
    pub input_std: Option<Float>,
    /// Where set, W is drawn N(0, s²) before `model.scale` instead of by `model.init` (the
    /// AntisymmetricRNN's 1/√H, unless `model.init` is set).
    pub recurrent_std: Option<Float>,
}

impl RnnConfig {
    /// Draws initial parameters, each tensor by its cell's rule ([`Start`]): first every tensor
    /// `model.init` draws, then every one `model.init_io` draws (each in its table's order, a
    /// gate block of H rows at a time), then the cell's own vectors ([`CellInit`]), then V; the rest start at zero but the LSTM's forget
    /// gate. For every cell so far that order is W's blocks, U's blocks, V. A stack draws its
    /// layers so, bottom to top, then V: a one-layer network draws what it always drew.
    pub fn init(&self, rng: &mut impl Rng) -> Params {
        let (d, h, o) = (self.input, self.hidden, self.output);
        let own = self.cell_init;
        let top = self.layers - 1;
        let mut p = Params::zeros_stack(self.cell, d, h, o, self.layers, self.residual);
        for (l, layer) in p.layers_mut().iter_mut().enumerate() {
            let sizes = layer.sizes();
            let recurrent = (own.recurrent_std.map_or(self.init, |_| Init::Normal), own.recurrent_std);
            let input = (own.input_std.map_or(self.init_io, |_| Init::Normal), own.input_std);
            for (rule, (init, std), scale) in [
                (Start::Recurrent, recurrent, Some(self.scale)),
                (Start::InputSide, input, None),
            ] {
                for (t, x) in layer.tensors_mut().filter(|(t, _)| t.start == rule) {
                    let (rows, cols) = sizes.rows_cols(t);
                    assert!(rows.is_multiple_of(h), "{} is drawn in blocks of H rows", t.name);
                    for block in x.chunks_exact_mut(h * cols) {
                        let drawn = init.sample(h, cols, std.unwrap_or(self.std), rng);
                        let drawn = match scale {
                            Some(scale) => drawn * scale,
                            None => drawn,
                        };
                        block.iter_mut().zip(&drawn).for_each(|(x, &v)| *x = v);
                    }
                }
            }
            // The cells' own vectors: the IndRNN's u, the expRNN's modReLU bias.
            for (t, x) in layer.tensors_mut() {
                let (lo, hi) = match t.start {
                    Start::Diagonal if l == top => (1.0 / own.top_range, own.top_range),
                    Start::Diagonal => (0.0, own.recurrent_max),
                    Start::Modulus => (-0.01, 0.01),
                    _ => continue,
                };
                for x in x.iter_mut() {
                    let v = lo + (hi - lo) * rng.random::<Float>();
                    *x = if t.start == Start::Diagonal {
                        v.min(own.recurrent_max)
                    } else {
                        v
                    };
                }
            }
        }
        p.v = self.init_io.sample(o, h, self.std, rng);
        for layer in p.layers_mut() {
            for (t, x) in layer.tensors_mut() {
                if let Start::ForgetBias(k) = t.start {
                    x[k * h..(k + 1) * h].fill(self.forget_bias);
                }
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn sparse_init_has_the_asked_radius_and_sparsity() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let w = Init::Sparse {
            nonzero: 4,
            radius: 1.1,
        }
        .sample(30, 30, 1.0, &mut rng);
        for row in w.rows() {
            assert_eq!(row.iter().filter(|x| **x != 0.0).count(), 4);
        }
        assert!((spectral_radius(&w) - 1.1).abs() < 1e-6);
    }

    #[test]
    fn orthogonal_init_is_orthogonal() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (r, c) in [(6, 6), (8, 3), (3, 8)] {
            let q = Init::Orthogonal.sample(r, c, 1.0, &mut rng);
            let gram = if r >= c { q.t().dot(&q) } else { q.dot(&q.t()) };
            let err = (&gram - &Array2::<Float>::eye(r.min(c)))
                .mapv(Float::abs)
                .fold(0.0, |a: Float, &b| a.max(b));
            assert!(err < 1e-12, "({r},{c}) maxdiff = {err:e}");
        }
    }
}
