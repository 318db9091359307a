//! Optimizers written on tensors, so that their state is ours to save
//! (tch's optimizer wrapper cannot save it): AdamW, Adam and SGD.

use tch::{Kind, Tensor};

use crate::runtime::fused_adam::{fusable, fused_adam_step, AdamSettings, AdamTensors};

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
    /// `steps` as the fused kernel reads it: an fp32 scalar on the device.
    step_tensor: Option<Tensor>,
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
        let all = grads.len() == self.params.len();
        let mut grads = grads.into_iter();
        // (parameter index, gradient) of each parameter this step updates.
        let mut updates = Vec::new();
        for (i, p) in self.params.iter().enumerate() {
            if !p.spec.tensor.requires_grad() {
                if all {
                    grads.next();
                }
                continue;
            }
            let Some(grad) = grads.next() else { break };
            if grad.defined() {
                updates.push((i, grad));
            }
        }
        tch::no_grad(|| match self.method {
            Method::AdamW | Method::Adam => self.adam_step(lr, updates),
            Method::Sgd { momentum, nesterov } => {
                for (i, grad) in updates {
                    sgd_update(&mut self.params[i], grad, lr, momentum, nesterov);
                }
            }
        });
    }

    /// Adam or AdamW over `updates`: libtorch's fused kernel, one call per
    /// group of learning rate and weight decay (transformers' Trainer uses
    /// the same kernel), or element-wise ops for a tensor it does not take.
    fn adam_step(&mut self, lr: f64, updates: Vec<(usize, Tensor)>) {
        let settings = |lr: f64, weight_decay: f64| AdamSettings { lr, beta1: self.beta1, beta2: self.beta2, weight_decay, eps: self.eps, decoupled: self.method == Method::AdamW };
        // Keyed by the bits of (rate, decay): one fused call per key.
        let mut groups: Vec<((u64, u64), Vec<(usize, Tensor)>)> = Vec::new();
        let mut unfused = Vec::new();
        for (i, grad) in updates {
            let p = &mut self.params[i];
            // A convolution's gradient comes back in its input's layout
            // (channels-last for the image backbones); one copy into the
            // parameter's layout keeps it on the fused kernel.
            let grad = if !grad.is_contiguous() && p.spec.tensor.is_contiguous() { grad.contiguous() } else { grad };
            let state = p.state.get_or_insert_with(|| Moments { exp_avg: p.spec.tensor.zeros_like(), exp_avg_sq: Some(p.spec.tensor.zeros_like()), steps: 0, step_tensor: None });
            state.steps += 1;
            let exp_avg_sq = state.exp_avg_sq.as_ref().expect("Adam keeps a second moment");
            if !fusable(&p.spec.tensor, &grad, &state.exp_avg, exp_avg_sq) {
                unfused.push((i, grad));
                continue;
            }
            let key = ((lr * p.spec.lr_scale).to_bits(), p.spec.weight_decay.to_bits());
            match groups.iter_mut().find(|(k, _)| *k == key) {
                Some((_, members)) => members.push((i, grad)),
                None => groups.push((key, vec![(i, grad)])),
            }
        }
        for ((rate, decay), members) in groups {
            let (rate, decay) = (f64::from_bits(rate), f64::from_bits(decay));
            let mut grads: Vec<Tensor> = members.iter().map(|(_, g)| g.shallow_clone()).collect();
            let fused = {
                let mut wanted = members.iter().map(|(i, _)| *i).peekable();
                let mut tensors = Vec::with_capacity(members.len());
                // The members' indices ascend, as the parameters do.
                for ((_, p), grad) in self.params.iter_mut().enumerate().filter(|(i, _)| wanted.next_if_eq(i).is_some()).zip(grads.iter_mut()) {
                    let state = p.state.as_mut().expect("made above");
                    let steps = f64::from(state.steps);
                    let step = state.step_tensor.get_or_insert_with(|| Tensor::zeros([], (Kind::Float, p.spec.tensor.device())));
                    let _ = step.fill_(steps);
                    let exp_avg_sq = state.exp_avg_sq.as_mut().expect("Adam keeps a second moment");
                    tensors.push(AdamTensors { param: &mut p.spec.tensor, grad, exp_avg: &mut state.exp_avg, exp_avg_sq, step });
                }
                fused_adam_step(&mut tensors, settings(rate, decay))
            };
            if let Err(e) = fused {
                // The kernel checks its inputs before it writes; the
                // element-wise ops then do the same step.
                eprintln!("{e:#}; this step uses element-wise ops instead");
                unfused.extend(members);
            }
        }
        for (i, grad) in unfused {
            let p = &mut self.params[i];
            let s = settings(lr * p.spec.lr_scale, p.spec.weight_decay);
            adam_update(p, grad, s);
        }
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
                p.state = Some(Moments { exp_avg: a.to_device(device), exp_avg_sq, steps: n.int64_value(&[]) as i32, step_tensor: None });
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

/// One parameter's Adam or AdamW update in element-wise ops, its step
/// already counted in its state.
fn adam_update(p: &mut Param, mut grad: Tensor, s: AdamSettings) {
    if s.weight_decay != 0.0 && !s.decoupled {
        // L2: the decay joins the gradient.
        grad = &grad + &p.spec.tensor * s.weight_decay;
    }
    let state = p.state.as_mut().expect("created by adam_step");
    let bias1 = 1.0 - s.beta1.powi(state.steps);
    let bias2 = 1.0 - s.beta2.powi(state.steps);
    let exp_avg_sq = state.exp_avg_sq.as_mut().expect("Adam keeps a second moment");
    // In place where libtorch allows: two temporaries per tensor.
    let _ = state.exp_avg.lerp_(&grad, 1.0 - s.beta1);
    let _ = exp_avg_sq.lerp_(&grad.square(), 1.0 - s.beta2);
    if s.lr == 0.0 {
        // The first warmup step moves the moments but not the weights.
        return;
    }
    if s.weight_decay != 0.0 && s.decoupled {
        let _ = p.spec.tensor.g_mul_scalar_(1.0 - s.lr * s.weight_decay);
    }
    // param -= lr/bias1 * m / (sqrt(v)/sqrt(bias2) + eps), folded into one addcdiv.
    let mut denom = exp_avg_sq.sqrt();
    let _ = denom.g_div_scalar_(bias2.sqrt());
    let _ = denom.g_add_scalar_(s.eps);
    let _ = denom.g_mul_scalar_(-bias1 / s.lr);
    let _ = p.spec.tensor.addcdiv_(&state.exp_avg, &denom);
}

/// One parameter's SGD update (L2 decay, optional momentum and Nesterov).
fn sgd_update(p: &mut Param, mut grad: Tensor, lr: f64, momentum: f64, nesterov: bool) {
    let lr = lr * p.spec.lr_scale;
    let wd = p.spec.weight_decay;
    if wd != 0.0 {
        // L2: the decay joins the gradient.
        grad = &grad + &p.spec.tensor * wd;
    }
    if momentum == 0.0 {
        // In place, as torch's add_(grad, alpha=-lr): no temporary for the large embeddings.
        let _ = grad.g_mul_scalar_(-lr);
        let _ = p.spec.tensor.g_add_(&grad);
        return;
    }
    let state = match &mut p.state {
        Some(s) => {
            let _ = s.exp_avg.g_mul_scalar_(momentum);
            let _ = s.exp_avg.g_add_(&grad);
            s
        }
        None => p.state.insert(Moments { exp_avg: grad.copy(), exp_avg_sq: None, steps: 0, step_tensor: None }),
    };
    state.steps += 1;
    let direction = if nesterov { &grad + &state.exp_avg * momentum } else { state.exp_avg.shallow_clone() };
    let _ = p.spec.tensor.g_add_(&(direction * -lr));
}
