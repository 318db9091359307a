//! Optimizers written on tensors, so that their state is ours to save
//! (tch's optimizer wrapper cannot save it): AdamW, Adam and SGD.

use tch::Tensor;

/// A tensor the optimizer may update, with its weight decay and its
/// learning rate as a multiple of the schedule's rate.
#[derive(Debug)]
pub struct ParamSpec {
    /// Its name, which keys its state in checkpoints.
    pub name: String,
    /// The parameter.
    pub tensor: Tensor,
    /// Decoupled weight decay.
    pub weight_decay: f64,
    /// Multiplier of the learning rate (layer-wise rates).
    pub lr_scale: f64,
}

impl ParamSpec {
    /// A parameter at the base learning rate.
    pub fn new(name: &str, tensor: Tensor, weight_decay: f64) -> Self {
        Self { name: name.to_string(), tensor, weight_decay, lr_scale: 1.0 }
    }
}

/// The update rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    /// `torch.optim.AdamW`: decoupled weight decay, bias-corrected moments.
    AdamW,
    /// `torch.optim.Adam`: weight decay added to the gradient (L2).
    Adam,
    /// `torch.optim.SGD`: weight decay added to the gradient, optional
    /// momentum (the buffer starts as the first gradient) and Nesterov.
    Sgd {
        /// Momentum factor (0 for plain SGD).
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
    },
}

impl Method {
    /// Valid names for `parse`.
    pub const NAMES: &'static [&'static str] = &["adamw", "adam", "sgd"];

    /// `adamw`, `adam`, or `sgd` with its momentum and Nesterov flag.
    pub fn parse(name: &str, momentum: f64, nesterov: bool) -> anyhow::Result<Self> {
        if name != "sgd" && (momentum != 0.0 || nesterov) {
            anyhow::bail!("momentum and nesterov belong to sgd; {name} has its own (betas)");
        }
        match name {
            "adamw" => Ok(Self::AdamW),
            "adam" => Ok(Self::Adam),
            "sgd" => {
                if nesterov && momentum <= 0.0 {
                    anyhow::bail!("Nesterov momentum needs a momentum above 0");
                }
                Ok(Self::Sgd { momentum, nesterov })
            }
            _ => anyhow::bail!("unknown optimizer '{name}'; valid: {}", Self::NAMES.join(", ")),
        }
    }
}

/// The state of one parameter, created at its first update: Adam's two
/// moments, or SGD's momentum buffer (in `exp_avg`).
struct Moments {
    exp_avg: Tensor,
    exp_avg_sq: Option<Tensor>,
    steps: i32,
}

struct Param {
    spec: ParamSpec,
    state: Option<Moments>,
}

/// The optimizers, written on tensors so that their state is ours to save,
/// matching PyTorch's to 1e-6 (tests/optimizer_parity.rs). As in PyTorch, a
/// parameter is updated only when it has a gradient, and its state is
/// created at its first update; a frozen parameter (`requires_grad` false)
/// is never touched, has no state and gets no weight decay, even if it
/// trained earlier in the run (gradual unfreezing changes the set as it goes).
pub struct Optimizer {
    method: Method,
    params: Vec<Param>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    step: i64,
}

impl Optimizer {
    /// An optimizer over `params`; `beta1`, `beta2` and `eps` are Adam's.
    pub fn new(method: Method, params: Vec<ParamSpec>, beta1: f64, beta2: f64, eps: f64) -> Self {
        Self { method, params: params.into_iter().map(|spec| Param { spec, state: None }).collect(), beta1, beta2, eps, step: 0 }
    }

    /// Updates every trainable parameter that has a gradient, at learning
    /// rate `lr` times its own scale.
    pub fn step(&mut self, lr: f64) {
        let grads = self.params.iter().map(|p| p.spec.tensor.grad()).collect();
        self.step_with(lr, grads);
    }

    /// The names of the tensors that train now, in the order of `trainable()`.
    pub fn trainable_names(&self) -> Vec<String> {
        self.params.iter().filter(|p| p.spec.tensor.requires_grad()).map(|p| p.spec.name.clone()).collect()
    }

    /// The tensors that train now, in the optimizer's order.
    pub fn trainable(&self) -> Vec<Tensor> {
        self.params.iter().filter(|p| p.spec.tensor.requires_grad()).map(|p| p.spec.tensor.shallow_clone()).collect()
    }

    /// Updates with gradients computed elsewhere: one per tensor of
    /// `trainable()`, or one per parameter; an undefined one means none.
    /// The gradients may be changed in place.
    pub fn step_with(&mut self, lr: f64, grads: Vec<Tensor>) {
        self.step += 1;
        let (method, beta1, beta2, eps) = (self.method, self.beta1, self.beta2, self.eps);
        let all = grads.len() == self.params.len();
        let mut grads = grads.into_iter();
        tch::no_grad(|| {
            for p in &mut self.params {
                if !p.spec.tensor.requires_grad() {
                    if all {
                        grads.next();
                    }
                    continue;
                }
                let Some(mut grad) = grads.next() else { break };
                if !grad.defined() {
                    continue;
                }
                let lr = lr * p.spec.lr_scale;
                let wd = p.spec.weight_decay;
                if wd != 0.0 && method != Method::AdamW {
                    // L2: the decay joins the gradient.
                    grad = &grad + &p.spec.tensor * wd;
                }
                match method {
                    Method::AdamW | Method::Adam => {
                        let state = p.state.get_or_insert_with(|| Moments { exp_avg: p.spec.tensor.zeros_like(), exp_avg_sq: Some(p.spec.tensor.zeros_like()), steps: 0 });
                        state.steps += 1;
                        let bias1 = 1.0 - beta1.powi(state.steps);
                        let bias2 = 1.0 - beta2.powi(state.steps);
                        let exp_avg_sq = state.exp_avg_sq.as_mut().expect("Adam keeps a second moment");
                        // In place where libtorch allows: two temporaries per tensor.
                        let _ = state.exp_avg.lerp_(&grad, 1.0 - beta1);
                        let _ = exp_avg_sq.lerp_(&grad.square(), 1.0 - beta2);
                        if lr == 0.0 {
                            // The first warmup step moves the moments but not the weights.
                            continue;
                        }
                        if wd != 0.0 && method == Method::AdamW {
                            let _ = p.spec.tensor.g_mul_scalar_(1.0 - lr * wd);
                        }
                        // param -= lr/bias1 * m / (sqrt(v)/sqrt(bias2) + eps), folded into one addcdiv.
                        let mut denom = exp_avg_sq.sqrt();
                        let _ = denom.g_div_scalar_(bias2.sqrt());
                        let _ = denom.g_add_scalar_(eps);
                        let _ = denom.g_mul_scalar_(-bias1 / lr);
                        let _ = p.spec.tensor.addcdiv_(&state.exp_avg, &denom);
                    }
                    Method::Sgd { momentum, nesterov } => {
                        if momentum == 0.0 {
                            // In place, as torch's add_(grad, alpha=-lr): no temporary for the large embeddings.
                            let _ = grad.g_mul_scalar_(-lr);
                            let _ = p.spec.tensor.g_add_(&grad);
                            continue;
                        }
                        let direction = if momentum != 0.0 {
                            let state = match &mut p.state {
                                Some(s) => {
                                    let _ = s.exp_avg.g_mul_scalar_(momentum);
                                    let _ = s.exp_avg.g_add_(&grad);
                                    s
                                }
                                None => p.state.insert(Moments { exp_avg: grad.copy(), exp_avg_sq: None, steps: 0 }),
                            };
                            state.steps += 1;
                            if nesterov { &grad + &state.exp_avg * momentum } else { state.exp_avg.shallow_clone() }
                        } else {
                            grad
                        };
                        let _ = p.spec.tensor.g_add_(&(direction * -lr));
                    }
                }
            }
        });
    }

    /// How many parameters have optimizer state (those that were updated).
    pub fn params_with_state(&self) -> usize {
        self.params.iter().filter(|p| p.state.is_some()).count()
    }

    /// Bytes of optimizer state (Adam's two moments, or SGD's momentum
    /// buffer, per updated parameter).
    pub fn state_bytes(&self) -> i64 {
        self.params
            .iter()
            .filter_map(|p| p.state.as_ref())
            .map(|m| {
                let one = (m.exp_avg.numel() * m.exp_avg.kind().elt_size_in_bytes()) as i64;
                if m.exp_avg_sq.is_some() { 2 * one } else { one }
            })
            .sum()
    }

    /// The state as named tensors (`NAME.exp_avg`, `NAME.exp_avg_sq`,
    /// `NAME.steps`) for a checkpoint, with the optimizer's step count.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![("optimizer.steps".to_string(), Tensor::from(self.step))];
        for p in &self.params {
            if let Some(m) = &p.state {
                out.push((format!("{}.exp_avg", p.spec.name), m.exp_avg.detach().to_device(tch::Device::Cpu)));
                if let Some(sq) = &m.exp_avg_sq {
                    out.push((format!("{}.exp_avg_sq", p.spec.name), sq.detach().to_device(tch::Device::Cpu)));
                }
                out.push((format!("{}.steps", p.spec.name), Tensor::from(m.steps as i64)));
            }
        }
        out
    }

    /// Puts back what `state_tensors` wrote.
    pub fn load_state(&mut self, saved: &std::collections::HashMap<String, Tensor>) {
        if let Some(s) = saved.get("optimizer.steps") {
            self.step = s.int64_value(&[]);
        }
        for p in &mut self.params {
            let key = |k: &str| format!("{}.{k}", p.spec.name);
            if let (Some(a), Some(n)) = (saved.get(&key("exp_avg")), saved.get(&key("steps"))) {
                let device = p.spec.tensor.device();
                let exp_avg_sq = saved.get(&key("exp_avg_sq")).map(|b| b.to_device(device));
                p.state = Some(Moments { exp_avg: a.to_device(device), exp_avg_sq, steps: n.int64_value(&[]) as i32 });
            }
        }
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
        let grads: Vec<Tensor> = self.params.iter().filter(|p| p.spec.tensor.requires_grad()).map(|p| p.spec.tensor.grad()).collect();
        clip_norm(&grads, max_norm)
    }

    /// Number of optimizer steps taken.
    pub fn steps_taken(&self) -> i64 {
        self.step
    }
}

/// Scales `grads` in place so that their global L2 norm is at most
/// `max_norm` (as `torch.nn.utils.clip_grad_norm_`); returns the norm
/// before clipping. Undefined gradients are skipped.
pub fn clip_norm(grads: &[Tensor], max_norm: f64) -> f64 {
    let grads: Vec<&Tensor> = grads.iter().filter(|g| g.defined()).collect();
    if grads.is_empty() {
        return 0.0;
    }
    let norms: Vec<Tensor> = grads.iter().map(|g| g.norm()).collect();
    let total = Tensor::stack(&norms, 0).norm().double_value(&[]);
    if total > max_norm {
        let scale = max_norm / (total + 1e-6);
        tch::no_grad(|| {
            for g in grads {
                let _ = g.shallow_clone().g_mul_scalar_(scale);
            }
        });
    }
    total
}
