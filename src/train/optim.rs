//! Optimizers written on tensors, so that their state is ours to save
//! (tch's optimizer wrapper cannot save it).

use tch::Tensor;

/// A tensor the optimizer may update, with its weight decay and its
/// learning rate as a multiple of the schedule's rate.
#[derive(Debug)]
pub struct ParamSpec {
    /// The parameter.
    pub tensor: Tensor,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Multiplier of the learning rate (layer-wise rates).
    pub lr_scale: f64,
}

impl ParamSpec {
    /// A parameter at the base learning rate.
    pub fn new(tensor: Tensor, weight_decay: f64) -> Self {
        Self { tensor, weight_decay, lr_scale: 1.0 }
    }
}

/// Adam's moments of one parameter, created at its first update.
struct Moments {
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    steps: i32,
}

struct Param {
    spec: ParamSpec,
    state: Option<Moments>,
}

/// AdamW (Loshchilov & Hutter), matching `torch.optim.AdamW`: decoupled
/// weight decay, bias-corrected moments. As in PyTorch, a parameter is
/// updated only when it has a gradient, and its state is created at its
/// first update; a frozen parameter (`requires_grad` false) is never
/// touched, has no state and gets no weight decay, even if it trained
/// earlier in the run (gradual unfreezing changes the set as it goes).
pub struct AdamW {
    params: Vec<Param>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    step: i64,
}

impl AdamW {
    /// An optimizer over `params`.
    pub fn new(params: Vec<ParamSpec>, beta1: f64, beta2: f64, eps: f64) -> Self {
        Self { params: params.into_iter().map(|spec| Param { spec, state: None }).collect(), beta1, beta2, eps, step: 0 }
    }

    /// Updates every trainable parameter that has a gradient, at learning
    /// rate `lr` times its own scale.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        tch::no_grad(|| {
            for p in &mut self.params {
                if !p.spec.tensor.requires_grad() {
                    continue;
                }
                let grad = p.spec.tensor.grad();
                if !grad.defined() {
                    continue;
                }
                let state = p.state.get_or_insert_with(|| Moments { exp_avg: p.spec.tensor.zeros_like(), exp_avg_sq: p.spec.tensor.zeros_like(), steps: 0 });
                state.steps += 1;
                let bias1 = 1.0 - self.beta1.powi(state.steps);
                let bias2 = 1.0 - self.beta2.powi(state.steps);
                // In place where libtorch allows: two temporaries per tensor.
                let _ = state.exp_avg.lerp_(&grad, 1.0 - self.beta1);
                let _ = state.exp_avg_sq.lerp_(&grad.square(), 1.0 - self.beta2);
                let lr = lr * p.spec.lr_scale;
                if lr == 0.0 {
                    // The first warmup step moves the moments but not the weights.
                    continue;
                }
                if p.spec.weight_decay != 0.0 {
                    let _ = p.spec.tensor.g_mul_scalar_(1.0 - lr * p.spec.weight_decay);
                }
                // param -= lr/bias1 * m / (sqrt(v)/sqrt(bias2) + eps), folded into one addcdiv.
                let mut denom = state.exp_avg_sq.sqrt();
                let _ = denom.g_div_scalar_(bias2.sqrt());
                let _ = denom.g_add_scalar_(self.eps);
                let _ = denom.g_mul_scalar_(-bias1 / lr);
                let _ = p.spec.tensor.addcdiv_(&state.exp_avg, &denom);
            }
        });
    }

    /// How many parameters have optimizer state (those that were updated).
    pub fn params_with_state(&self) -> usize {
        self.params.iter().filter(|p| p.state.is_some()).count()
    }

    /// Bytes of optimizer state (Adam's two moments per updated parameter).
    pub fn state_bytes(&self) -> i64 {
        self.params
            .iter()
            .filter_map(|p| p.state.as_ref())
            .map(|m| 2 * (m.exp_avg.numel() * m.exp_avg.kind().elt_size_in_bytes()) as i64)
            .sum()
    }

    /// Clears every gradient.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.spec.tensor.zero_grad();
        }
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm`;
    /// returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self.params.iter().filter(|p| p.spec.tensor.requires_grad()).map(|p| p.spec.tensor.grad()).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return 0.0;
        }
        let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
        let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
        if total > max_norm {
            let scale = max_norm / (total + 1e-6);
            tch::no_grad(|| {
                for mut g in grads {
                    let _ = g.g_mul_scalar_(scale);
                }
            });
        }
        total
    }

    /// Number of optimizer steps taken.
    pub fn steps_taken(&self) -> i64 {
        self.step
    }
}
