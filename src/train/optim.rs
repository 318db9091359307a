//! Optimizers written on tensors, so that their state is ours to save
//! (tch's optimizer wrapper cannot save it).

use tch::Tensor;

/// One trainable tensor with its weight decay.
struct Param {
    tensor: Tensor,
    weight_decay: f64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// AdamW (Loshchilov & Hutter), matching `torch.optim.AdamW`: decoupled
/// weight decay, bias-corrected moments.
pub struct AdamW {
    params: Vec<Param>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    step: i64,
}

impl AdamW {
    /// `params` pairs each tensor with its weight decay (0 for biases and
    /// LayerNorm weights, by the usual convention).
    pub fn new(params: Vec<(Tensor, f64)>, beta1: f64, beta2: f64, eps: f64) -> Self {
        let params = params
            .into_iter()
            .map(|(tensor, weight_decay)| Param { exp_avg: tensor.zeros_like(), exp_avg_sq: tensor.zeros_like(), tensor, weight_decay })
            .collect();
        Self { params, beta1, beta2, eps, step: 0 }
    }

    /// Updates every parameter that has a gradient, at learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let bias1 = 1.0 - self.beta1.powi(self.step as i32);
        let bias2 = 1.0 - self.beta2.powi(self.step as i32);
        tch::no_grad(|| {
            for p in &mut self.params {
                let grad = p.tensor.grad();
                if !grad.defined() {
                    continue;
                }
                // In place where libtorch allows: two temporaries per tensor.
                let _ = p.exp_avg.lerp_(&grad, 1.0 - self.beta1);
                let _ = p.exp_avg_sq.lerp_(&grad.square(), 1.0 - self.beta2);
                if lr == 0.0 {
                    // The first warmup step moves the moments but not the weights.
                    continue;
                }
                if p.weight_decay != 0.0 {
                    let _ = p.tensor.g_mul_scalar_(1.0 - lr * p.weight_decay);
                }
                // param -= lr/bias1 * m / (sqrt(v)/sqrt(bias2) + eps), folded into one addcdiv.
                let mut denom = p.exp_avg_sq.sqrt();
                let _ = denom.g_div_scalar_(bias2.sqrt());
                let _ = denom.g_add_scalar_(self.eps);
                let _ = denom.g_mul_scalar_(-bias1 / lr);
                let _ = p.tensor.addcdiv_(&p.exp_avg, &denom);
            }
        });
    }

    /// Clears every gradient.
    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.tensor.zero_grad();
        }
    }

    /// Scales gradients so that their global L2 norm is at most `max_norm`;
    /// returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> f64 {
        let grads: Vec<Tensor> = self.params.iter().map(|p| p.tensor.grad()).filter(Tensor::defined).collect();
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
