//! Building blocks shared by the architectures: the linear layer that can
//! carry a LoRA update (`Dense`), Houlsby bottleneck adapters, attention
//! and activations.
//!
//! Names follow PEFT's: a LoRA on `encoder.layer.0.attention.self.query`
//! adds `...query.lora_A.weight` (`[r, in]`) and `...query.lora_B.weight`
//! (`[out, r]`); the layer computes `W x + b + (alpha / r) * B A dropout(x)`.

use tch::nn::{self, Init, Module};
use tch::{Kind, Tensor};

/// Settings of `Model::add_lora`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// Rank of the update.
    pub r: i64,
    /// Scale numerator: the update is multiplied by `alpha / r`.
    pub alpha: f64,
    /// Dropout on the update's input, in training only.
    pub dropout: f64,
    /// Which linear layers get an update: a last name part (`query`), a
    /// module path, or a glob over module paths.
    pub targets: Vec<String>,
}

/// A low-rank update of one linear layer.
#[derive(Debug)]
struct Lora {
    a: Tensor,
    b: Tensor,
    scale: f64,
    dropout: f64,
}

/// A linear layer of the encoder, with an optional LoRA update.
#[derive(Debug)]
pub struct Dense {
    linear: nn::Linear,
    /// The variable-store path (`bert.encoder.layer.0.attention.self.query`).
    path: String,
    lora: Option<Lora>,
}

impl Dense {
    /// A linear layer `in_dim -> out_dim` with its variables under `p`.
    pub fn new(p: nn::Path, in_dim: i64, out_dim: i64) -> Self {
        let path = p.components().collect::<Vec<_>>().join(".");
        Self { linear: nn::linear(p, in_dim, out_dim, Default::default()), path, lora: None }
    }

    /// A linear layer `in_dim -> out_dim`, with a bias or without one
    /// (decoders' projections have none).
    pub fn with_bias(p: nn::Path, in_dim: i64, out_dim: i64, bias: bool) -> Self {
        let path = p.components().collect::<Vec<_>>().join(".");
        Self { linear: nn::linear(p, in_dim, out_dim, nn::LinearConfig { bias, ..Default::default() }), path, lora: None }
    }

    /// `W x + b`, plus the LoRA update when there is one.
    pub fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = self.linear.forward(xs);
        match &self.lora {
            None => out,
            Some(l) => out + xs.dropout(l.dropout, train).matmul(&l.a.tr()).matmul(&l.b.tr()) * l.scale,
        }
    }

    /// The variable-store path of this layer.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether a LoRA update is attached.
    pub fn has_lora(&self) -> bool {
        self.lora.is_some()
    }

    /// Attaches a LoRA update as PEFT initializes it: A uniform in
    /// `±1/sqrt(in)` (kaiming-uniform with a = sqrt(5)), B zero, so that the
    /// layer's output is unchanged until B trains.
    pub fn add_lora(&mut self, root: &nn::Path, config: &LoraConfig) {
        let (out_dim, in_dim) = self.linear.ws.size2().expect("a linear weight is 2-D");
        let p = sub_path(root, &self.path);
        let bound = 1.0 / (in_dim as f64).sqrt();
        let a = (&p / "lora_A").var("weight", &[config.r, in_dim], Init::Uniform { lo: -bound, up: bound });
        let b = (&p / "lora_B").var("weight", &[out_dim, config.r], Init::Const(0.0));
        self.lora = Some(Lora { a, b, scale: config.alpha / config.r as f64, dropout: config.dropout });
    }

    /// `W + (alpha / r) B A`: the weight with the update folded in.
    pub fn merged_weight(&self) -> Tensor {
        match &self.lora {
            None => self.linear.ws.detach().copy(),
            Some(l) => tch::no_grad(|| &self.linear.ws + l.b.matmul(&l.a) * l.scale),
        }
    }

    /// Folds the update into the weight and drops it; returns the paths of
    /// the update's variables, which the caller removes from the store.
    pub fn merge_lora(&mut self) -> Vec<String> {
        if self.lora.is_none() {
            return Vec::new();
        }
        let merged = self.merged_weight();
        tch::no_grad(|| self.linear.ws.copy_(&merged));
        self.lora = None;
        vec![format!("{}.lora_A.weight", self.path), format!("{}.lora_B.weight", self.path)]
    }
}

/// A Houlsby bottleneck adapter: `x + up(act(down(x)))`, with `up` starting
/// at zero so that a new adapter is the identity.
#[derive(Debug)]
pub struct Bottleneck {
    down: nn::Linear,
    up: nn::Linear,
}

impl Bottleneck {
    /// An adapter `hidden -> size -> hidden` with its variables under `p`
    /// (`...adapter.down`, `...adapter.up`).
    pub fn new(p: nn::Path, hidden: i64, size: i64) -> Self {
        let down_init = nn::LinearConfig { ws_init: Init::Randn { mean: 0.0, stdev: 0.02 }, bs_init: Some(Init::Const(0.0)), bias: true };
        let up_init = nn::LinearConfig { ws_init: Init::Const(0.0), bs_init: Some(Init::Const(0.0)), bias: true };
        Self { down: nn::linear(&p / "down", hidden, size, down_init), up: nn::linear(&p / "up", size, hidden, up_init) }
    }

    /// The adapted hidden states.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        xs + self.up.forward(&self.down.forward(xs).gelu("none"))
    }
}

/// The path `root / a / b / ...` for a dotted `a.b...`.
pub fn sub_path<'a>(root: &nn::Path<'a>, dotted: &str) -> nn::Path<'a> {
    let mut parts = dotted.split('.');
    let mut p = root.sub(parts.next().unwrap_or_default());
    for part in parts {
        p = p.sub(part);
    }
    p
}

/// Multi-head scaled-dot-product attention over projected `[batch, seq,
/// hidden]` queries, keys and values (libtorch's SDPA); `mask` is boolean
/// `[batch, 1, 1, seq]`, true where a key may be attended.
pub fn attend(q: Tensor, k: Tensor, v: Tensor, heads: i64, mask: &Tensor, dropout: f64) -> Tensor {
    let (b, s, h) = q.size3().expect("hidden states are [batch, seq, hidden]");
    let split = |t: Tensor| t.view([b, s, heads, h / heads]).transpose(1, 2);
    let context = Tensor::scaled_dot_product_attention(&split(q), &split(k), &split(v), Some(mask), dropout, false, None, false);
    context.transpose(1, 2).contiguous().view([b, s, h])
}

/// The feed-forward activation a config names.
pub fn activate(xs: Tensor, activation: &str) -> Tensor {
    match activation {
        "relu" => xs.relu(),
        "gelu_new" => xs.gelu("tanh"),
        _ => xs.gelu("none"),
    }
}

/// The boolean attention mask `[batch, 1, 1, seq]` from a 0/1 `[batch, seq]` mask.
pub fn key_mask(attention_mask: &Tensor) -> Tensor {
    attention_mask.to_kind(Kind::Bool).unsqueeze(1).unsqueeze(1)
}
