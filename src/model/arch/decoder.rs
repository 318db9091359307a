//! The Llama-shaped decoder that Llama, Qwen2, Mistral and Gemma share,
//! with its blocks: RMSNorm, rotary position embeddings, attention with
//! grouped key/value heads, an optional sliding window and a KV cache, and
//! the gated MLP. Parameter names mirror the checkpoints
//! (`model.layers.0.self_attn.q_proj.weight`); the families' differences
//! come from `DecoderConfig`.

use tch::nn;
use tch::{Kind, Tensor};

use super::decoder_config::{DecoderConfig, Family};
use crate::model::layers::{lookup, weight_for, BlockRun, Dense};

/// One layer's cached keys and values, `[batch, kv_heads, seen, head_dim]`.
#[derive(Debug, Default)]
pub struct LayerCache {
    /// Keys seen so far (after RoPE).
    pub k: Option<Tensor>,
    /// Values seen so far.
    pub v: Option<Tensor>,
}

impl LayerCache {
    /// Appends the new keys and values; returns all of them.
    pub(super) fn extend(&mut self, k: Tensor, v: Tensor) -> (Tensor, Tensor) {
        let k = match self.k.take() {
            Some(old) => Tensor::cat(&[old, k], 2),
            None => k,
        };
        let v = match self.v.take() {
            Some(old) => Tensor::cat(&[old, v], 2),
            None => v,
        };
        self.k = Some(k.shallow_clone());
        self.v = Some(v.shallow_clone());
        (k, v)
    }

    /// Keeps only the batch rows in `rows` (finished sequences dropped).
    pub fn select_rows(&mut self, rows: &Tensor) {
        self.k = self.k.take().map(|t| t.index_select(0, rows));
        self.v = self.v.take().map(|t| t.index_select(0, rows));
    }
}

/// RMSNorm, computed in fp32: Llama's `weight * x / rms(x)`, or Gemma's
/// `(1 + weight) * x / rms(x)`.
#[derive(Debug)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
    plus_one: bool,
}

impl RmsNorm {
    /// A norm over `size` features with its weight under `p`.
    pub fn new(p: nn::Path, size: i64, eps: f64, plus_one: bool) -> Self {
        let init = if plus_one { 0.0 } else { 1.0 };
        Self { weight: p.var("weight", &[size], nn::Init::Const(init)), eps, plus_one }
    }

    /// The normalized `xs`, in its own kind.
    pub fn forward(&self, xs: &Tensor) -> Tensor {
        let kind = xs.kind();
        let x = xs.to_kind(Kind::Float);
        let normed = &x * (x.square().mean_dim(-1, true, Kind::Float) + self.eps).rsqrt();
        if self.plus_one {
            (normed * (self.weight.to_kind(Kind::Float) + 1.0)).to_kind(kind)
        } else {
            &self.weight * normed.to_kind(kind)
        }
    }
}

/// Rotary position embeddings in the half-split layout transformers uses.
#[derive(Debug)]
pub struct Rotary {
    inv_freq: Tensor,
}

impl Rotary {
    /// Frequencies `1 / theta^(2i / dim)` for a head of `dim`.
    pub fn new(dim: i64, theta: f64, device: tch::Device) -> Self {
        let exponents = Tensor::arange_start_step(0, dim, 2, (Kind::Int64, device)).to_kind(Kind::Float) / dim as f64;
        let inv_freq = Tensor::from(theta).to_kind(Kind::Float).to_device(device).pow(&exponents).reciprocal();
        Self { inv_freq }
    }

    /// `cos` and `sin`, `[batch, 1, seq, dim]`, for `[batch, seq]` positions.
    pub fn cos_sin(&self, positions: &Tensor, kind: Kind) -> (Tensor, Tensor) {
        let freqs = positions.to_kind(Kind::Float).unsqueeze(-1) * &self.inv_freq;
        let emb = Tensor::cat(&[&freqs, &freqs], -1).unsqueeze(1);
        (emb.cos().to_kind(kind), emb.sin().to_kind(kind))
    }
}

/// `x * cos + rotate_half(x) * sin`.
fn apply_rotary(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Tensor {
    let half = x.size().last().copied().unwrap_or(0) / 2;
    let (x1, x2) = (x.narrow(-1, 0, half), x.narrow(-1, half, half));
    let rotated = Tensor::cat(&[-x2, x1], -1);
    x * cos + rotated * sin
}

/// Which keys each query attends to.
#[derive(Debug)]
pub enum AttnMask {
    /// Every key (one new token over a cache without padding).
    All,
    /// Keys up to the query's own position (a prompt without padding or cache).
    Causal,
    /// Additive `[batch, 1, queries, keys]`: 0 where allowed, very negative elsewhere.
    Additive(Tensor),
}

impl AttnMask {
    /// The same mask, sharing its tensor.
    pub fn shallow_clone(&self) -> Self {
        match self {
            Self::All => Self::All,
            Self::Causal => Self::Causal,
            Self::Additive(t) => Self::Additive(t.shallow_clone()),
        }
    }
}

/// Scaled-dot-product attention of `[batch, heads, seq, dim]` queries over
/// `[batch, kv_heads, seq, dim]` keys and values shared by groups of query
/// heads (libtorch's SDPA; its causal kernel where the mask allows). Without
/// a mask SDPA shares the key/value heads itself (`enable_gqa`); a mask
/// would send that to the slow math kernel, so the heads are copied then,
/// as transformers does.
pub fn attend(q: &Tensor, k: Tensor, v: Tensor, groups: i64, mask: &AttnMask) -> Tensor {
    let gqa = groups > 1;
    match mask {
        AttnMask::All => Tensor::scaled_dot_product_attention::<Tensor>(q, &k, &v, None, 0.0, false, None, gqa),
        AttnMask::Causal => Tensor::scaled_dot_product_attention::<Tensor>(q, &k, &v, None, 0.0, true, None, gqa),
        AttnMask::Additive(m) => Tensor::scaled_dot_product_attention(q, &repeat_kv(k, groups), &repeat_kv(v, groups), Some(m), 0.0, false, None, false),
    }
}

/// Copies each key/value head for the query heads that share it.
fn repeat_kv(x: Tensor, groups: i64) -> Tensor {
    if groups == 1 {
        x
    } else {
        x.repeat_interleave_self_int(groups, 1, None)
    }
}

/// Self-attention with grouped key/value heads.
#[derive(Debug)]
pub struct Attention {
    q_proj: Dense,
    k_proj: Dense,
    v_proj: Dense,
    o_proj: Dense,
    heads: i64,
    kv_heads: i64,
    head_dim: i64,
}

impl Attention {
    fn new(p: nn::Path, c: &DecoderConfig) -> Self {
        let (h, d) = (c.hidden_size, c.head_dim);
        Self {
            q_proj: Dense::with_bias(&p / "q_proj", h, c.num_heads * d, c.qkv_bias),
            k_proj: Dense::with_bias(&p / "k_proj", h, c.num_kv_heads * d, c.qkv_bias),
            v_proj: Dense::with_bias(&p / "v_proj", h, c.num_kv_heads * d, c.qkv_bias),
            o_proj: Dense::with_bias(&p / "o_proj", c.num_heads * d, h, c.out_bias),
            heads: c.num_heads,
            kv_heads: c.num_kv_heads,
            head_dim: d,
        }
    }

    fn forward(&self, xs: &Tensor, rope: &(Tensor, Tensor), mask: &AttnMask, cache: Option<&mut LayerCache>, train: bool) -> Tensor {
        let (b, s, _) = xs.size3().expect("hidden states are [batch, seq, hidden]");
        let split = |t: Tensor, n: i64| t.view([b, s, n, self.head_dim]).transpose(1, 2);
        let q = apply_rotary(&split(self.q_proj.forward(xs, train), self.heads), &rope.0, &rope.1);
        let k = apply_rotary(&split(self.k_proj.forward(xs, train), self.kv_heads), &rope.0, &rope.1);
        let v = split(self.v_proj.forward(xs, train), self.kv_heads);
        let (k, v) = match cache {
            Some(c) => c.extend(k, v),
            None => (k, v),
        };
        let groups = self.heads / self.kv_heads;
        let context = attend(&q, k, v, groups, mask);
        self.o_proj.forward(&context.transpose(1, 2).reshape([b, s, self.heads * self.head_dim]), train)
    }
}

/// The gated feed-forward block: `down(act(gate(x)) * up(x))`.
#[derive(Debug)]
pub struct GatedMlp {
    gate_proj: Dense,
    up_proj: Dense,
    down_proj: Dense,
    activation: String,
}

impl GatedMlp {
    fn new(p: nn::Path, c: &DecoderConfig) -> Self {
        let (h, f) = (c.hidden_size, c.intermediate_size);
        Self {
            gate_proj: Dense::with_bias(&p / "gate_proj", h, f, c.out_bias),
            up_proj: Dense::with_bias(&p / "up_proj", h, f, c.out_bias),
            down_proj: Dense::with_bias(&p / "down_proj", f, h, c.out_bias),
            activation: c.activation.clone(),
        }
    }

    fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let gate = self.gate_proj.forward(xs, train);
        let gate = match self.activation.as_str() {
            "silu" | "swish" => gate.silu(),
            "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => gate.gelu("tanh"),
            _ => gate.gelu("none"),
        };
        self.down_proj.forward(&(gate * self.up_proj.forward(xs, train)), train)
    }
}

/// One decoder layer: pre-norm attention and pre-norm MLP, each residual.
#[derive(Debug)]
pub struct DecoderLayer {
    input_layernorm: RmsNorm,
    self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    mlp: GatedMlp,
}

impl DecoderLayer {
    fn new(p: nn::Path, c: &DecoderConfig) -> Self {
        let plus_one = c.family == Family::Gemma;
        Self {
            input_layernorm: RmsNorm::new(&p / "input_layernorm", c.hidden_size, c.norm_eps, plus_one),
            self_attn: Attention::new(&p / "self_attn", c),
            post_attention_layernorm: RmsNorm::new(&p / "post_attention_layernorm", c.hidden_size, c.norm_eps, plus_one),
            mlp: GatedMlp::new(&p / "mlp", c),
        }
    }

    fn forward(&self, xs: &Tensor, rope: &(Tensor, Tensor), mask: &AttnMask, cache: Option<&mut LayerCache>, train: bool) -> Tensor {
        let h = xs + self.self_attn.forward(&self.input_layernorm.forward(xs), rope, mask, cache, train);
        &h + self.mlp.forward(&self.post_attention_layernorm.forward(&h), train)
    }

    fn denses_mut(&mut self) -> [&mut Dense; 7] {
        let (a, m) = (&mut self.self_attn, &mut self.mlp);
        [&mut a.q_proj, &mut a.k_proj, &mut a.v_proj, &mut a.o_proj, &mut m.gate_proj, &mut m.up_proj, &mut m.down_proj]
    }
}

/// The Llama-shaped decoder with its language-model head.
#[derive(Debug)]
pub struct Decoder {
    embed_tokens: nn::Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    lm_head: Option<Tensor>,
    rotary: Rotary,
    embed_scale: Option<f64>,
}

impl Decoder {
    /// The decoder's variables under `root` (`model.*`, `lm_head.weight`).
    pub fn new(root: &nn::Path, c: &DecoderConfig) -> Self {
        let p = root / "model";
        let embed_tokens = nn::embedding(&p / "embed_tokens", c.vocab_size, c.hidden_size, Default::default());
        let layers = (0..c.num_layers).map(|i| DecoderLayer::new(&p / "layers" / i, c)).collect();
        let lm_head = (!c.tie_word_embeddings).then(|| (root / "lm_head").var("weight", &[c.vocab_size, c.hidden_size], nn::Init::Randn { mean: 0.0, stdev: 0.02 }));
        Self {
            embed_tokens,
            layers,
            norm: RmsNorm::new(&p / "norm", c.hidden_size, c.norm_eps, c.family == Family::Gemma),
            lm_head,
            rotary: Rotary::new(c.head_dim, c.rope_theta, root.device()),
            embed_scale: (c.family == Family::Gemma).then(|| (c.hidden_size as f64).sqrt()),
        }
    }

    /// Logits `[batch, seq, vocab]` for `[batch, seq]` ids at `positions`
    /// (only the last position's, `[batch, 1, vocab]`, when `last_only`).
    /// With `cache`, the keys and values of earlier calls are attended and
    /// the new ones appended.
    pub fn forward(&self, ids: &Tensor, positions: &Tensor, mask: &AttnMask, cache: Option<&mut Vec<LayerCache>>, train: bool, last_only: bool) -> Tensor {
        let hidden = self.hidden(ids, positions, mask, cache, train, last_only, BlockRun::Plain);
        hidden.matmul(&weight_for(self.head_weight(), &hidden).tr())
    }

    /// The final normed hidden states `[batch, seq, hidden]` that the head
    /// turns into logits; as `forward` otherwise. `run` applies without a
    /// cache (a cache is for generation, which keeps no graph).
    #[allow(clippy::too_many_arguments)]
    pub fn hidden(&self, ids: &Tensor, positions: &Tensor, mask: &AttnMask, mut cache: Option<&mut Vec<LayerCache>>, train: bool, last_only: bool, run: BlockRun) -> Tensor {
        let mut h = lookup(&self.embed_tokens, ids);
        if let Some(scale) = self.embed_scale {
            // Gemma multiplies by sqrt(hidden) rounded to the hidden states' kind.
            h = &h * Tensor::from(scale).to_kind(h.kind()).to_device(h.device());
        }
        let rope = self.rotary.cos_sin(positions, h.kind());
        for (i, layer) in self.layers.iter().enumerate() {
            h = match cache.as_deref_mut() {
                Some(c) => layer.forward(&h, &rope, mask, Some(&mut c[i]), train),
                None => {
                    let (rope, mask) = ((rope.0.shallow_clone(), rope.1.shallow_clone()), mask.shallow_clone());
                    run.apply(i, &h, move |x| layer.forward(x, &rope, &mask, None, train))
                }
            };
        }
        let h = if last_only { h.narrow(1, h.size()[1] - 1, 1) } else { h };
        self.norm.forward(&h)
    }

    /// The head's weight `[vocab, hidden]` (the embedding's, when tied).
    pub fn head_weight(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens.ws)
    }

    /// Every linear layer, for LoRA.
    pub fn denses_mut(&mut self) -> Vec<&mut Dense> {
        self.layers.iter_mut().flat_map(|l| l.denses_mut()).collect()
    }
}

/// The attention mask for `queries` new positions over a `[batch, keys]`
/// mask of 0 for padding and, for real tokens, the number of the example
/// they belong to (1 everywhere but in packed rows): query `i` (at key index
/// `past + i`) may see key `j` when it is causal, of the same example, and
/// within the sliding window. Without padding, packing or a window that
/// bites, SDPA's own causal or unmasked kernels serve; otherwise the mask
/// is additive with the most negative float, as transformers' eager
/// attention does (a fully masked padding row then averages instead of
/// dividing by zero).
pub fn causal_mask(attention_mask: &Tensor, queries: i64, sliding_window: Option<i64>, kind: Kind) -> AttnMask {
    let (_, keys) = attention_mask.size2().expect("the attention mask is [batch, keys]");
    let window_bites = sliding_window.is_some_and(|w| w < keys);
    let all_one = attention_mask.min().int64_value(&[]) == 1 && attention_mask.max().int64_value(&[]) == 1;
    if !window_bites && all_one {
        if queries == 1 {
            return AttnMask::All;
        }
        if queries == keys {
            return AttnMask::Causal;
        }
    }
    let device = attention_mask.device();
    let past = keys - queries;
    let q = Tensor::arange_start(past, keys, (Kind::Int64, device)).unsqueeze(1);
    let k = Tensor::arange(keys, (Kind::Int64, device)).unsqueeze(0);
    let mut allowed = k.le_tensor(&q);
    if let Some(w) = sliding_window {
        allowed = allowed.logical_and(&(&q - &k).lt(w));
    }
    // [batch, queries, keys]: the key is real and of the query's example.
    let key_example = attention_mask.unsqueeze(1);
    let query_example = attention_mask.narrow(1, past, queries).unsqueeze(2);
    let same_example = key_example.eq_tensor(&query_example).logical_and(&key_example.gt(0));
    let allowed = allowed.unsqueeze(0).logical_and(&same_example).unsqueeze(1);
    let min = match kind {
        Kind::Half => f64::from(half::f16::MIN),
        Kind::BFloat16 => f64::from(half::bf16::MIN),
        _ => f32::MIN as f64,
    };
    AttnMask::Additive(Tensor::zeros(allowed.size(), (kind, device)).masked_fill(&allowed.logical_not(), min))
}

/// Each token's position within its example, for a `[batch, seq]` mask as
/// `causal_mask` reads it: counting from each example's first token, so
/// that left padding shifts nothing and packed examples each start at 0.
/// Padding gets the position it would have (never read).
pub fn positions_from_mask(attention_mask: &Tensor) -> Tensor {
    let (b, s) = attention_mask.size2().expect("the attention mask is [batch, seq]");
    let device = attention_mask.device();
    let index = Tensor::arange(s, (Kind::Int64, device)).unsqueeze(0).expand([b, s], true);
    let previous = Tensor::cat(&[Tensor::zeros([b, 1], (Kind::Int64, device)), attention_mask.narrow(1, 0, s - 1)], 1);
    let starts = attention_mask.gt(0).logical_and(&attention_mask.ne_tensor(&previous));
    let start_index = index.where_self(&starts, &index.zeros_like()).cummax(1).0;
    &index - start_index
}
