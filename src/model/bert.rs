//! The BERT encoder, with parameter names that mirror Hugging Face's
//! checkpoints (`embeddings.word_embeddings.weight`,
//! `encoder.layer.3.attention.self.query.weight`, ...).

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::config::BertConfig;

/// Token, position and segment embeddings, summed and normalized.
#[derive(Debug)]
struct Embeddings {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: nn::Embedding,
    norm: nn::LayerNorm,
    dropout: f64,
}

impl Embeddings {
    fn new(p: nn::Path, c: &BertConfig) -> Self {
        let emb = |name: &str, n| nn::embedding(&p / name, n, c.hidden_size, Default::default());
        Self {
            word: emb("word_embeddings", c.vocab_size),
            position: emb("position_embeddings", c.max_position_embeddings),
            token_type: emb("token_type_embeddings", c.type_vocab_size),
            norm: layer_norm(&p / "LayerNorm", c),
            dropout: c.hidden_dropout_prob,
        }
    }

    fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        let seq_len = input_ids.size()[1];
        let positions = Tensor::arange(seq_len, (Kind::Int64, input_ids.device())).unsqueeze(0);
        let sum = self.word.forward(input_ids) + self.position.forward(&positions) + self.token_type.forward(token_type_ids);
        self.norm.forward(&sum).dropout(self.dropout, train)
    }
}

/// One transformer layer: self-attention then feed-forward, each with a
/// residual connection and post-LayerNorm.
#[derive(Debug)]
struct Layer {
    query: nn::Linear,
    key: nn::Linear,
    value: nn::Linear,
    attention_output: nn::Linear,
    attention_norm: nn::LayerNorm,
    intermediate: nn::Linear,
    output: nn::Linear,
    output_norm: nn::LayerNorm,
    heads: i64,
    activation: String,
    hidden_dropout: f64,
    attention_dropout: f64,
}

impl Layer {
    fn new(p: nn::Path, c: &BertConfig) -> Self {
        let h = c.hidden_size;
        let lin = |path: nn::Path, i, o| nn::linear(path, i, o, Default::default());
        let att = &p / "attention";
        Self {
            query: lin(&att / "self" / "query", h, h),
            key: lin(&att / "self" / "key", h, h),
            value: lin(&att / "self" / "value", h, h),
            attention_output: lin(&att / "output" / "dense", h, h),
            attention_norm: layer_norm(&att / "output" / "LayerNorm", c),
            intermediate: lin(&p / "intermediate" / "dense", h, c.intermediate_size),
            output: lin(&p / "output" / "dense", c.intermediate_size, h),
            output_norm: layer_norm(&p / "output" / "LayerNorm", c),
            heads: c.num_attention_heads,
            activation: c.hidden_act.clone(),
            hidden_dropout: c.hidden_dropout_prob,
            attention_dropout: c.attention_probs_dropout_prob,
        }
    }

    /// `mask` is boolean `[batch, 1, 1, seq]`, true where a key may be attended.
    fn forward(&self, xs: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let (b, s, h) = xs.size3().expect("hidden states are [batch, seq, hidden]");
        let head_dim = h / self.heads;
        let split = |t: Tensor| t.view([b, s, self.heads, head_dim]).transpose(1, 2);
        let q = split(self.query.forward(xs));
        let k = split(self.key.forward(xs));
        let v = split(self.value.forward(xs));
        let dropout = if train { self.attention_dropout } else { 0.0 };
        let context = Tensor::scaled_dot_product_attention(&q, &k, &v, Some(mask), dropout, false, None, false);
        let context = context.transpose(1, 2).contiguous().view([b, s, h]);
        let attended = self.attention_output.forward(&context).dropout(self.hidden_dropout, train);
        let xs = self.attention_norm.forward(&(attended + xs));
        let inner = self.intermediate.forward(&xs);
        let inner = match self.activation.as_str() {
            "relu" => inner.relu(),
            "gelu_new" => inner.gelu("tanh"),
            _ => inner.gelu("none"),
        };
        let out = self.output.forward(&inner).dropout(self.hidden_dropout, train);
        self.output_norm.forward(&(out + xs))
    }
}

fn layer_norm(p: nn::Path, c: &BertConfig) -> nn::LayerNorm {
    let config = nn::LayerNormConfig { eps: c.layer_norm_eps, ..Default::default() };
    nn::layer_norm(p, vec![c.hidden_size], config)
}

/// The BERT encoder with its pooler (`dense` + tanh on the first token).
#[derive(Debug)]
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: nn::Linear,
}

impl Bert {
    /// Creates the encoder's variables under `p` (randomly initialized; the
    /// checkpoint loader overwrites them).
    pub fn new(p: nn::Path, c: &BertConfig) -> Self {
        let embeddings = Embeddings::new(&p / "embeddings", c);
        let encoder = &p / "encoder" / "layer";
        let layers = (0..c.num_hidden_layers).map(|i| Layer::new(&encoder / i, c)).collect();
        let pooler = nn::linear(&p / "pooler" / "dense", c.hidden_size, c.hidden_size, Default::default());
        Self { embeddings, layers, pooler }
    }

    /// Last hidden states `[batch, seq, hidden]`.
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let mask = attention_mask.to_kind(Kind::Bool).unsqueeze(1).unsqueeze(1);
        let mut xs = self.embeddings.forward(input_ids, token_type_ids, train);
        for layer in &self.layers {
            xs = layer.forward(&xs, &mask, train);
        }
        xs
    }

    /// The pooler output: `tanh(dense(hidden[:, 0]))`, as BERT's next-sentence head was trained.
    pub fn pool(&self, hidden: &Tensor) -> Tensor {
        self.pooler.forward(&hidden.select(1, 0)).tanh()
    }
}
