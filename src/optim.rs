//! Gradient clipping, the optimisers and the learning-rate schedule.
//!
//! Clipping is applied in a fixed order: first the global L2 norm (if ‖g‖ > θ then
//! g ← θ·g/‖g‖), then the element-wise clip to [−v, v]. The norm a run records is the one
//! measured before either acts.

use crate::Float;
use crate::elem;
use crate::real::Real;
use crate::rnn::{Params, Role};

/// Which clipping rules are active.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Clip {
    /// Global L2-norm threshold θ.
    pub norm: Option<Float>,
    /// Element-wise bound v.
    pub value: Option<Float>,
}

/// ‖g‖₂ over every parameter tensor, summed in a fixed order, in f64 whatever F is.
pub fn global_norm<F: Real>(g: &Params<F>) -> Float {
    g.slices().map(F::sum_squares).sum::<Float>().sqrt()
}

impl Clip {
    /// Clips `g` in place given its norm (measured by the caller before clipping); returns
    /// whether any rule changed it.
    pub fn apply<F: Real>(&self, g: &mut Params<F>, norm: Float) -> bool {
        let mut acted = false;
        if let Some(theta) = self.norm
            && norm > theta
        {
            let k = F::of(theta / norm);
            for t in g.runs_mut() {
                t.iter_mut().for_each(|x| *x *= k);
            }
            acted = true;
        }
        if let Some(v) = self.value {
            let v = F::of(v);
            for t in g.runs_mut() {
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

/// The optimiser and its hyper-parameters (PyTorch's update rules and defaults).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OptimConfig {
    /// v ← μ·v + g (v = g at the first step); θ ← θ − lr·v, or θ ← θ − lr·(g + μ·v) with Nesterov.
    Sgd {
        /// μ.
        momentum: Float,
        /// Nesterov momentum.
        nesterov: bool,
    },
    /// m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; θ ← θ − lr·m̂/(√v̂ + ε) with bias-corrected m̂, v̂.
    Adam {
        /// β₁.
        beta1: Float,
        /// β₂.
        beta2: Float,
        /// ε.
        eps: Float,
    },
    /// s ← αs + (1−α)g²; θ ← θ − lr·g/(√s + ε).
    RmsProp {
        /// α.
        alpha: Float,
        /// ε.
        eps: Float,
    },
    /// s ← s + g²; θ ← θ − lr·g/(√s + ε) (the optimiser of the classic character-RNN script).
    Adagrad {
        /// ε.
        eps: Float,
    },
}

/// The learning rate as a function of the step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: Float,
    /// Shape of the schedule.
    pub kind: ScheduleKind,
    /// Linear warm-up steps (0: none).
    pub warmup: u64,
    /// Total steps (for the cosine schedule).
    pub steps: u64,
}

/// Shape of a learning-rate schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScheduleKind {
    /// lr at every step.
    Constant,
    /// lr·γ^⌊step / size⌋.
    Step {
        /// Steps between decays.
        size: u64,
        /// Decay factor.
        gamma: Float,
    },
    /// lr_min + (lr − lr_min)·(1 + cos(π·step/steps))/2.
    Cosine {
        /// Final rate.
        lr_min: Float,
    },
}

impl Schedule {
    /// The learning rate of step `step` (0-based).
    pub fn lr_at(&self, step: u64) -> Float {
        let base = match self.kind {
            ScheduleKind::Constant => self.lr,
            ScheduleKind::Step { size, gamma } => {
                self.lr * elem::powi(gamma, (step / size).min(i64::MAX as u64) as i64)
            }
            ScheduleKind::Cosine { lr_min } => {
                let progress = step as Float / self.steps.max(1) as Float;
                lr_min + (self.lr - lr_min) * 0.5 * (1.0 + elem::cos_pi(progress))
            }
        };
        if self.warmup > 0 && step < self.warmup {
            base * (step + 1) as Float / self.warmup as Float
        } else {
            base
        }
    }
}

/// An optimiser with its state (moment estimates shaped like the parameters).
#[derive(Clone, Debug)]
pub struct Optimizer<F: Real = f64> {
    config: OptimConfig,
    /// SGD velocity, Adam first moment, RMSprop/Adagrad squared-gradient accumulator.
    first: Option<Params<F>>,
    /// Adam second moment.
    second: Option<Params<F>>,
    /// Updates made so far.
    t: u64,
}

impl<F: Real> Optimizer<F> {
    /// A fresh optimiser.
    pub fn new(config: OptimConfig) -> Self {
        Self {
            config,
            first: None,
            second: None,
            t: 0,
        }
    }

    /// One update of `p` from gradient `g` with learning rate `lr`.
    pub fn step(&mut self, p: &mut Params<F>, g: &Params<F>, lr: Float) {
        self.step_split(p, g, lr, None);
    }

    /// One update of `p` from gradient `g` with learning rate `lr`, but `recurrent` for the
    /// tensors whose role is [`Role::Recurrent`] where given (the expRNN's P,
    /// `train.lr_recurrent`).
    pub fn step_split(&mut self, p: &mut Params<F>, g: &Params<F>, lr: Float, recurrent: Option<Float>) {
        self.t += 1;
        let one = F::one();
        let t = self.t;
        let first = self.first.get_or_insert_with(|| g.zeros_like());
        // Each tensor's rate, in the order of `Params::slices`.
        let rates: Vec<F> = p
            .tensor_roles()
            .map(|role| match (role, recurrent) {
                (Some(Role::Recurrent), Some(r)) => F::of(r),
                _ => F::of(lr),
            })
            .collect();
        let (params, grads) = (p.slices_mut().zip(rates), g.slices());
        match self.config {
            OptimConfig::Sgd { momentum, nesterov } => {
                let momentum = F::of(momentum);
                for (((pt, lr), vt), gt) in params.zip(first.slices_mut()).zip(grads) {
                    for ((p, v), &g) in pt.iter_mut().zip(vt.iter_mut()).zip(gt) {
                        if momentum == F::zero() {
                            *p -= lr * g;
                            continue;
                        }
                        *v = if t == 1 { g } else { momentum * *v + g };
                        *p -= lr * if nesterov { g + momentum * *v } else { *v };
                    }
                }
            }
            OptimConfig::Adam { beta1, beta2, eps } => {
                let second = self.second.get_or_insert_with(|| g.zeros_like());
                let (c1, c2) = (1.0 - elem::powi(beta1, t as i64), 1.0 - elem::powi(beta2, t as i64));
                let (beta1, beta2, eps, c1, c2) = (F::of(beta1), F::of(beta2), F::of(eps), F::of(c1), F::of(c2));
                for ((((pt, lr), mt), vt), gt) in params.zip(first.slices_mut()).zip(second.slices_mut()).zip(grads) {
                    for (((p, m), v), &g) in pt.iter_mut().zip(mt.iter_mut()).zip(vt.iter_mut()).zip(gt) {
                        *m = beta1 * *m + (one - beta1) * g;
                        *v = beta2 * *v + (one - beta2) * g * g;
                        *p -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
                    }
                }
            }
            OptimConfig::RmsProp { alpha, eps } => {
                let (alpha, eps) = (F::of(alpha), F::of(eps));
                for (((pt, lr), st), gt) in params.zip(first.slices_mut()).zip(grads) {
                    for ((p, s), &g) in pt.iter_mut().zip(st.iter_mut()).zip(gt) {
                        *s = alpha * *s + (one - alpha) * g * g;
                        *p -= lr * g / (s.sqrt() + eps);
                    }
                }
            }
            OptimConfig::Adagrad { eps } => {
                let eps = F::of(eps);
                for (((pt, lr), st), gt) in params.zip(first.slices_mut()).zip(grads) {
                    for ((p, s), &g) in pt.iter_mut().zip(st.iter_mut()).zip(gt) {
                        *s += g * g;
                        *p -= lr * g / (s.sqrt() + eps);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rnn::{Activation, Cell};

    fn grads(values: [Float; 3]) -> Params {
        let mut g = Params::zeros(Cell::Rnn(Activation::Tanh), 1, 1, 1);
        let layer = g.layers_mut()[0].roles_mut();
        let (mut u, mut w) = (layer.u, layer.w.expect("a W"));
        u[[0, 0]] = values[0];
        w[[0, 0]] = values[1];
        g.v[[0, 0]] = values[2];
        g
    }

    /// The entries of U and W of a [`grads`]-shaped network.
    fn u_w(g: &Params) -> (Float, Float) {
        let layer = g.layers()[0].roles();
        (layer.u[[0, 0]], layer.w.expect("a W")[[0, 0]])
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
        let (u, w) = u_w(&g);
        assert!((u - 0.6).abs() < 1e-15 && (w - 0.8).abs() < 1e-15);
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

    /// Two steps of an optimiser on the scalar u with gradient 1 each time, from u = 1.
    fn two_steps(config: OptimConfig, lr: Float) -> Float {
        let mut p = grads([1.0, 1.0, 1.0]);
        let g = grads([1.0, 0.0, 0.0]);
        let mut opt = Optimizer::new(config);
        opt.step(&mut p, &g, lr);
        opt.step(&mut p, &g, lr);
        let (u, w) = u_w(&p);
        assert_eq!(w, 1.0, "a zero gradient leaves w alone");
        u
    }

    /// `train.lr_recurrent`: the tensors of role `Recurrent` (the expRNN's P, here a plain
    /// cell's W) move at their own rate, every other tensor at `lr`, with every optimiser.
    #[test]
    fn the_recurrent_tensor_takes_its_own_rate() {
        for config in [
            OptimConfig::Sgd {
                momentum: 0.0,
                nesterov: false,
            },
            OptimConfig::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
        ] {
            let g = grads([1.0, 1.0, 1.0]);
            let mut p = g.zeros_like();
            let mut opt = Optimizer::new(config);
            opt.step_split(&mut p, &g, 1.0, Some(0.125));
            let (u, w) = u_w(&p);
            assert!(
                (u + 1.0).abs() < 1e-6 && (w + 0.125).abs() < 1e-6,
                "{config:?}: U moved {u}, W {w}"
            );
            assert!((p.v[[0, 0]] + 1.0).abs() < 1e-6, "{config:?}: V moved {}", p.v[[0, 0]]);
        }
    }

    #[test]
    fn updates_follow_pytorch_rules() {
        // SGD momentum: v = 1, u = 0.9; v = 1.9, u = 0.71.
        let u = two_steps(
            OptimConfig::Sgd {
                momentum: 0.9,
                nesterov: false,
            },
            0.1,
        );
        assert!((u - 0.71).abs() < 1e-15, "{u}");
        // Nesterov: v = 1, step g + μv = 1.9 → 0.81; v = 1.9, step 1 + 1.71 = 2.71 → 0.539.
        let u = two_steps(
            OptimConfig::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
            0.1,
        );
        assert!((u - 0.539).abs() < 1e-15, "{u}");
        // Adam with a constant gradient: m̂ = v̂ = 1 at every step, so each step moves lr/(1 + ε).
        let u = two_steps(
            OptimConfig::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
            },
            0.1,
        );
        assert!((u - (1.0 - 0.2 / (1.0 + 1e-8))).abs() < 1e-12, "{u}");
        // RMSprop α = 0.99: s = 0.01 → step 0.1/0.1 = 1; s = 0.0199 → step 0.1/√0.0199.
        let u = two_steps(
            OptimConfig::RmsProp {
                alpha: 0.99,
                eps: 1e-300,
            },
            0.1,
        );
        assert!((u - (1.0 - 1.0 - 0.1 / (0.0199 as Float).sqrt())).abs() < 1e-12, "{u}");
        // Adagrad: s = 1 → step 0.1; s = 2 → step 0.1/√2.
        let u = two_steps(OptimConfig::Adagrad { eps: 1e-300 }, 0.1);
        assert!((u - (0.9 - 0.1 / (2.0 as Float).sqrt())).abs() < 1e-12, "{u}");
    }

    #[test]
    fn schedules_and_warmup() {
        let s = |kind, warmup| Schedule {
            lr: 1.0,
            kind,
            warmup,
            steps: 100,
        };
        let step = s(ScheduleKind::Step { size: 10, gamma: 0.5 }, 0);
        assert_eq!((step.lr_at(9), step.lr_at(10), step.lr_at(25)), (1.0, 0.5, 0.25));
        let cos = s(ScheduleKind::Cosine { lr_min: 0.1 }, 0);
        assert!((cos.lr_at(0) - 1.0).abs() < 1e-15 && (cos.lr_at(50) - 0.55).abs() < 1e-12);
        assert!((cos.lr_at(100) - 0.1).abs() < 1e-12);
        let warm = s(ScheduleKind::Constant, 4);
        assert_eq!((warm.lr_at(0), warm.lr_at(3), warm.lr_at(4)), (0.25, 1.0, 1.0));
    }
}
