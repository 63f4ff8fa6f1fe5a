//! Gradient clipping and the optimiser.
//!
//! Clipping is applied in a fixed order: first the global L2 norm (if ‖g‖ > θ then
//! g ← θ·g/‖g‖), then the element-wise clip to [−v, v]. The norm a run records is the one
//! measured before either acts.

use crate::Float;
use crate::rnn::Params;

/// Which clipping rules are active.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clip {
    /// Global L2-norm threshold θ.
    pub norm: Option<Float>,
    /// Element-wise bound v.
    pub value: Option<Float>,
}

/// ‖g‖₂ over every parameter tensor, summed in a fixed order.
pub fn global_norm(g: &Params) -> Float {
    g.slices()
        .iter()
        .map(|t| t.iter().map(|x| x * x).sum::<Float>())
        .sum::<Float>()
        .sqrt()
}

impl Clip {
    /// Clips `g` in place given its norm (measured by the caller before clipping); returns
    /// whether any rule changed it.
    pub fn apply(&self, g: &mut Params, norm: Float) -> bool {
        let mut acted = false;
        if let Some(theta) = self.norm
            && norm > theta
        {
            let k = theta / norm;
            for t in g.slices_mut() {
                t.iter_mut().for_each(|x| *x *= k);
            }
            acted = true;
        }
        if let Some(v) = self.value {
            for t in g.slices_mut() {
                for x in t.iter_mut() {
                    if x.abs() > v {
                        *x = x.clamp(-v, v);
                        acted = true;
                    }
                }
            }
        }
        acted
    }
}

/// Stochastic gradient descent with optional momentum, PyTorch's convention:
/// v ← μ·v + g, θ ← θ − lr·v (plain SGD when μ = 0).
#[derive(Clone, Debug)]
pub struct Sgd {
    lr: Float,
    momentum: Float,
    /// Velocity, same shapes as the parameters; `None` until the first step or when μ = 0.
    velocity: Option<Params>,
}

impl Sgd {
    /// A new optimiser.
    pub fn new(lr: Float, momentum: Float) -> Self {
        Self {
            lr,
            momentum,
            velocity: None,
        }
    }

    /// One update of `p` from gradient `g`.
    pub fn step(&mut self, p: &mut Params, g: &Params) {
        let lr = self.lr;
        if self.momentum == 0.0 {
            for (pt, gt) in p.slices_mut().into_iter().zip(g.slices()) {
                pt.iter_mut().zip(gt).for_each(|(p, g)| *p -= lr * g);
            }
            return;
        }
        let mu = self.momentum;
        let first = self.velocity.is_none();
        let vel = self.velocity.get_or_insert_with(|| g.zeros_like());
        for ((pt, vt), gt) in p.slices_mut().into_iter().zip(vel.slices_mut()).zip(g.slices()) {
            for ((p, v), g) in pt.iter_mut().zip(vt.iter_mut()).zip(gt) {
                *v = if first { *g } else { mu * *v + g };
                *p -= lr * *v;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grads(values: [Float; 3]) -> Params {
        let mut g = Params::zeros(1, 1, 1);
        g.u[[0, 0]] = values[0];
        g.w[[0, 0]] = values[1];
        g.v[[0, 0]] = values[2];
        g
    }

    #[test]
    fn norm_clip_rescales_only_above_threshold() {
        let mut g = grads([3.0, 4.0, 0.0]); // ‖g‖ = 5
        let clip = Clip {
            norm: Some(1.0),
            value: None,
        };
        let norm = global_norm(&g);
        assert!(clip.apply(&mut g, norm));
        assert!((global_norm(&g) - 1.0).abs() < 1e-15);
        assert!((g.u[[0, 0]] - 0.6).abs() < 1e-15 && (g.w[[0, 0]] - 0.8).abs() < 1e-15);
        let mut small = grads([0.3, 0.4, 0.0]);
        let norm = global_norm(&small);
        assert!(!clip.apply(&mut small, norm));
        assert_eq!(small, grads([0.3, 0.4, 0.0]));
    }

    #[test]
    fn value_clip_bounds_each_entry_after_norm_clip() {
        let mut g = grads([3.0, -4.0, 0.0]);
        g.c[0] = 0.0;
        let clip = Clip {
            norm: Some(2.5),
            value: Some(1.0),
        };
        let norm = global_norm(&g);
        assert!(clip.apply(&mut g, norm));
        // norm clip: (1.5, −2.0, 0), then value clip: (1.0, −1.0, 0)
        assert_eq!(g, grads([1.0, -1.0, 0.0]));
        let mut small = grads([0.5, -0.2, 0.0]);
        let clip = Clip {
            norm: None,
            value: Some(0.3),
        };
        let norm = global_norm(&small);
        assert!(clip.apply(&mut small, norm));
        assert_eq!(small, grads([0.3, -0.2, 0.0]));
    }

    #[test]
    fn momentum_follows_pytorch_convention() {
        let mut p = grads([1.0, 1.0, 1.0]);
        let g = grads([1.0, 0.0, 0.0]);
        let mut opt = Sgd::new(0.1, 0.9);
        opt.step(&mut p, &g); // v = 1, p = 0.9
        opt.step(&mut p, &g); // v = 1.9, p = 0.71
        assert!((p.u[[0, 0]] - 0.71).abs() < 1e-15);
        assert_eq!(p.w[[0, 0]], 1.0);
    }
}
