//! The BERT encoder (also RoBERTa's, which differs only in its positions and
//! head), with parameter names that mirror Hugging Face's checkpoints
//! (`embeddings.word_embeddings.weight`,
//! `encoder.layer.3.attention.self.query.weight`, ...).

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use super::config::{Arch, EncoderConfig};
use crate::model::layers::{activate, lookup, BlockRun, Bottleneck, Dense, TokenLayout};

/// Token, position and (except in DistilBERT) segment embeddings, summed and
/// normalized.
#[derive(Debug)]
pub(in crate::model) struct Embeddings {
    word: nn::Embedding,
    position: nn::Embedding,
    token_type: Option<nn::Embedding>,
    norm: nn::LayerNorm,
    dropout: f64,
    /// RoBERTa counts positions from the padding id + 1.
    roberta_padding_id: Option<i64>,
}

impl Embeddings {
    pub(in crate::model) fn new(p: nn::Path, c: &EncoderConfig) -> Self {
        let emb = |name: &str, n| nn::embedding(&p / name, n, c.hidden_size, Default::default());
        Self {
            word: emb("word_embeddings", c.vocab_size),
            position: emb("position_embeddings", c.max_position_embeddings),
            token_type: (c.arch != Arch::DistilBert).then(|| emb("token_type_embeddings", c.type_vocab_size)),
            norm: layer_norm(&p / "LayerNorm", c),
            dropout: c.hidden_dropout_prob,
            roberta_padding_id: (c.arch == Arch::Roberta).then_some(c.pad_token_id),
        }
    }

    pub(in crate::model) fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, train: bool) -> Tensor {
        let positions = match self.roberta_padding_id {
            Some(pad) => super::roberta::position_ids(input_ids, pad),
            None => Tensor::arange(input_ids.size()[1], (Kind::Int64, input_ids.device())).unsqueeze(0),
        };
        let mut sum = lookup(&self.word, input_ids) + lookup(&self.position, &positions);
        if let Some(tt) = &self.token_type {
            sum += lookup(tt, token_type_ids);
        }
        self.norm.forward(&sum).dropout(self.dropout, train)
    }
}

/// One transformer layer: self-attention then feed-forward, each with a
/// residual connection and post-LayerNorm.
#[derive(Debug)]
struct Layer {
    query: Dense,
    key: Dense,
    value: Dense,
    attention_output: Dense,
    attention_norm: nn::LayerNorm,
    intermediate: Dense,
    output: Dense,
    output_norm: nn::LayerNorm,
    /// Houlsby adapters after the attention and the feed-forward outputs.
    adapters: Option<[Bottleneck; 2]>,
    path: String,
    hidden: i64,
    heads: i64,
    activation: String,
    hidden_dropout: f64,
    attention_dropout: f64,
}

impl Layer {
    fn new(p: nn::Path, c: &EncoderConfig) -> Self {
        let h = c.hidden_size;
        let lin = Dense::new;
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
            adapters: None,
            path: p.components().collect::<Vec<_>>().join("."),
            hidden: h,
            heads: c.num_attention_heads,
            activation: c.hidden_act.clone(),
            hidden_dropout: c.hidden_dropout_prob,
            attention_dropout: c.attention_probs_dropout_prob,
        }
    }

    fn denses_mut(&mut self) -> [&mut Dense; 6] {
        [&mut self.query, &mut self.key, &mut self.value, &mut self.attention_output, &mut self.intermediate, &mut self.output]
    }

    /// Adds adapters under `attention.output.adapter` and `output.adapter`.
    fn add_adapters(&mut self, root: &nn::Path, size: i64) {
        let p = crate::model::layers::sub_path(root, &self.path);
        self.adapters = Some([Bottleneck::new(&p / "attention" / "output" / "adapter", self.hidden, size), Bottleneck::new(&p / "output" / "adapter", self.hidden, size)]);
    }
}

/// A LayerNorm over the hidden size, with the config's epsilon.
pub(in crate::model) fn layer_norm(p: nn::Path, c: &EncoderConfig) -> nn::LayerNorm {
    let config = nn::LayerNormConfig { eps: c.layer_norm_eps, ..Default::default() };
    nn::layer_norm(p, vec![c.hidden_size], config)
}

/// A layer of an encoder stack: hidden states in, hidden states out.
pub(in crate::model) trait StackLayer {
    /// The layer's output for `xs`, states in `layout`.
    fn forward(&self, xs: &Tensor, layout: &TokenLayout, train: bool) -> Tensor;
}

impl StackLayer for Layer {
    fn forward(&self, xs: &Tensor, layout: &TokenLayout, train: bool) -> Tensor {
        let dropout = if train { self.attention_dropout } else { 0.0 };
        let context = layout.attend(self.query.forward(xs, train), self.key.forward(xs, train), self.value.forward(xs, train), self.heads, dropout);
        let mut attended = self.attention_output.forward(&context, train).dropout(self.hidden_dropout, train);
        if let Some([a, _]) = &self.adapters {
            attended = a.forward(&attended);
        }
        let xs = self.attention_norm.forward(&(attended + xs));
        let inner = activate(self.intermediate.forward(&xs, train), &self.activation);
        let mut out = self.output.forward(&inner, train).dropout(self.hidden_dropout, train);
        if let Some([_, a]) = &self.adapters {
            out = a.forward(&out);
        }
        self.output_norm.forward(&(out + xs))
    }
}

/// Embeds the tokens and runs them through `layers`, the real tokens
/// packed (`TokenLayout`): the last hidden states `[batch, seq, hidden]`,
/// zero at padding.
pub(in crate::model) fn encode<L: StackLayer>(embeddings: &Embeddings, layers: &[L], input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool, run: BlockRun) -> Tensor {
    let layout = TokenLayout::new(attention_mask);
    let mut xs = layout.pack(&embeddings.forward(input_ids, token_type_ids, train));
    for (i, layer) in layers.iter().enumerate() {
        let layout = layout.share();
        xs = run.apply(i, &xs, move |x| layer.forward(x, &layout, train));
    }
    layout.unpack(&xs)
}

/// The BERT encoder with its pooler (`dense` + tanh on the first token);
/// RoBERTa's has no pooler.
#[derive(Debug)]
pub struct Bert {
    embeddings: Embeddings,
    layers: Vec<Layer>,
    pooler: Option<nn::Linear>,
}

impl Bert {
    /// Creates the encoder's variables under `p` (randomly initialized; the
    /// checkpoint loader overwrites them).
    pub fn new(p: nn::Path, c: &EncoderConfig) -> Self {
        let embeddings = Embeddings::new(&p / "embeddings", c);
        let encoder = &p / "encoder" / "layer";
        let layers = (0..c.num_hidden_layers).map(|i| Layer::new(&encoder / i, c)).collect();
        let pooler = (c.arch == Arch::Bert).then(|| nn::linear(&p / "pooler" / "dense", c.hidden_size, c.hidden_size, Default::default()));
        Self { embeddings, layers, pooler }
    }

    /// Last hidden states `[batch, seq, hidden]`, zero at padding.
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool, run: BlockRun) -> Tensor {
        encode(&self.embeddings, &self.layers, input_ids, token_type_ids, attention_mask, train, run)
    }

    /// Every linear layer of the encoder (not the pooler), in model order.
    pub fn denses_mut(&mut self) -> Vec<&mut Dense> {
        self.layers.iter_mut().flat_map(|l| l.denses_mut()).collect()
    }

    /// Adds a bottleneck adapter after the attention and the feed-forward
    /// output of every layer.
    pub fn add_adapters(&mut self, root: &nn::Path, size: i64) {
        for layer in &mut self.layers {
            layer.add_adapters(root, size);
        }
    }

    /// The pooler output, `tanh(dense(hidden[:, 0]))` as BERT's
    /// next-sentence head was trained; `None` without a pooler (RoBERTa).
    pub fn pool(&self, hidden: &Tensor) -> Option<Tensor> {
        self.pooler.as_ref().map(|p| p.forward(&hidden.select(1, 0)).tanh())
    }
}
