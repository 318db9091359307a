//! The DistilBERT encoder, with Hugging Face's names
//! (`transformer.layer.3.attention.q_lin.weight`, `ffn.lin1`, ...), and its
//! classification head (`pre_classifier`, ReLU, dropout, `classifier`).

use tch::nn::{self, Module};
use tch::Tensor;

use super::bert::{encode, layer_norm, Embeddings, StackLayer};
use crate::model::layers::{activate, sub_path, BlockRun, Bottleneck, Dense, TokenLayout};
use super::config::EncoderConfig;

/// One DistilBERT block: attention and feed-forward, each post-normalized.
#[derive(Debug)]
struct Block {
    q_lin: Dense,
    k_lin: Dense,
    v_lin: Dense,
    out_lin: Dense,
    sa_layer_norm: nn::LayerNorm,
    lin1: Dense,
    lin2: Dense,
    output_layer_norm: nn::LayerNorm,
    /// Houlsby adapters after the attention and the feed-forward outputs.
    adapters: Option<[Bottleneck; 2]>,
    path: String,
    hidden: i64,
    heads: i64,
    activation: String,
    dropout: f64,
    attention_dropout: f64,
}

impl StackLayer for Block {
    fn forward(&self, xs: &Tensor, layout: &TokenLayout, train: bool) -> Tensor {
        let dropout = if train { self.attention_dropout } else { 0.0 };
        let context = layout.attend(self.q_lin.forward(xs, train), self.k_lin.forward(xs, train), self.v_lin.forward(xs, train), self.heads, dropout);
        let mut attended = self.out_lin.forward(&context, train);
        if let Some([a, _]) = &self.adapters {
            attended = a.forward(&attended);
        }
        let sa = self.sa_layer_norm.forward(&(attended + xs));
        let mut ffn = self.lin2.forward(&activate(self.lin1.forward(&sa, train), &self.activation), train).dropout(self.dropout, train);
        if let Some([_, a]) = &self.adapters {
            ffn = a.forward(&ffn);
        }
        self.output_layer_norm.forward(&(ffn + sa))
    }
}

impl Block {
    fn new(p: nn::Path, c: &EncoderConfig) -> Self {
        let h = c.hidden_size;
        let lin = Dense::new;
        let att = &p / "attention";
        Self {
            adapters: None,
            path: p.components().collect::<Vec<_>>().join("."),
            hidden: h,
            q_lin: lin(&att / "q_lin", h, h),
            k_lin: lin(&att / "k_lin", h, h),
            v_lin: lin(&att / "v_lin", h, h),
            out_lin: lin(&att / "out_lin", h, h),
            sa_layer_norm: layer_norm(&p / "sa_layer_norm", c),
            lin1: lin(&p / "ffn" / "lin1", h, c.intermediate_size),
            lin2: lin(&p / "ffn" / "lin2", c.intermediate_size, h),
            output_layer_norm: layer_norm(&p / "output_layer_norm", c),
            heads: c.num_attention_heads,
            activation: c.hidden_act.clone(),
            dropout: c.hidden_dropout_prob,
            attention_dropout: c.attention_probs_dropout_prob,
        }
    }

    fn denses_mut(&mut self) -> [&mut Dense; 6] {
        [&mut self.q_lin, &mut self.k_lin, &mut self.v_lin, &mut self.out_lin, &mut self.lin1, &mut self.lin2]
    }
}

/// The DistilBERT encoder: embeddings without token types, then blocks.
#[derive(Debug)]
pub struct DistilBert {
    embeddings: Embeddings,
    blocks: Vec<Block>,
}

impl DistilBert {
    /// Creates the encoder's variables under `p` (`distilbert`).
    pub fn new(p: nn::Path, c: &EncoderConfig) -> Self {
        let layers = &p / "transformer" / "layer";
        Self { embeddings: Embeddings::new(&p / "embeddings", c), blocks: (0..c.num_hidden_layers).map(|i| Block::new(&layers / i, c)).collect() }
    }

    /// Last hidden states `[batch, seq, hidden]`, zero at padding; token
    /// types are ignored.
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool, run: BlockRun) -> Tensor {
        encode(&self.embeddings, &self.blocks, input_ids, token_type_ids, attention_mask, train, run)
    }

    /// Every linear layer of the encoder, in model order.
    pub fn denses_mut(&mut self) -> Vec<&mut Dense> {
        self.blocks.iter_mut().flat_map(|b| b.denses_mut()).collect()
    }

    /// Adds a bottleneck adapter after the attention (`attention.adapter`)
    /// and the feed-forward (`ffn.adapter`) of every block.
    pub fn add_adapters(&mut self, root: &nn::Path, size: i64) {
        for b in &mut self.blocks {
            let p = sub_path(root, &b.path);
            b.adapters = Some([Bottleneck::new(&p / "attention" / "adapter", b.hidden, size), Bottleneck::new(&p / "ffn" / "adapter", b.hidden, size)]);
        }
    }
}

/// `DistilBertForSequenceClassification`'s head.
#[derive(Debug)]
pub struct ClassificationHead {
    pre_classifier: nn::Linear,
    classifier: nn::Linear,
    dropout: f64,
}

impl ClassificationHead {
    /// The head's variables `pre_classifier` and `classifier` under `root`.
    pub fn new(root: &nn::Path, c: &EncoderConfig, labels: i64, init: nn::LinearConfig) -> Self {
        Self {
            pre_classifier: nn::linear(root / "pre_classifier", c.hidden_size, c.hidden_size, init),
            classifier: nn::linear(root / "classifier", c.hidden_size, labels, init),
            dropout: c.classifier_dropout.unwrap_or(0.2),
        }
    }

    /// Logits from the last hidden states (the first token's).
    pub fn forward(&self, hidden: &Tensor, train: bool) -> Tensor {
        let x = self.pre_classifier.forward(&hidden.select(1, 0)).relu().dropout(self.dropout, train);
        self.classifier.forward(&x)
    }
}
