//! The DistilBERT encoder, with Hugging Face's names
//! (`transformer.layer.3.attention.q_lin.weight`, `ffn.lin1`, ...), and its
//! classification head (`pre_classifier`, ReLU, dropout, `classifier`).

use tch::nn::{self, Module};
use tch::Tensor;

use super::bert::{activate, attend, key_mask, layer_norm, Embeddings};
use super::config::EncoderConfig;

/// One DistilBERT block: attention and feed-forward, each post-normalized.
#[derive(Debug)]
struct Block {
    q_lin: nn::Linear,
    k_lin: nn::Linear,
    v_lin: nn::Linear,
    out_lin: nn::Linear,
    sa_layer_norm: nn::LayerNorm,
    lin1: nn::Linear,
    lin2: nn::Linear,
    output_layer_norm: nn::LayerNorm,
    heads: i64,
    activation: String,
    dropout: f64,
    attention_dropout: f64,
}

impl Block {
    fn new(p: nn::Path, c: &EncoderConfig) -> Self {
        let h = c.hidden_size;
        let lin = |path: nn::Path, i, o| nn::linear(path, i, o, Default::default());
        let att = &p / "attention";
        Self {
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

    fn forward(&self, xs: &Tensor, mask: &Tensor, train: bool) -> Tensor {
        let dropout = if train { self.attention_dropout } else { 0.0 };
        let context = attend(self.q_lin.forward(xs), self.k_lin.forward(xs), self.v_lin.forward(xs), self.heads, mask, dropout);
        let sa = self.sa_layer_norm.forward(&(self.out_lin.forward(&context) + xs));
        let ffn = self.lin2.forward(&activate(self.lin1.forward(&sa), &self.activation)).dropout(self.dropout, train);
        self.output_layer_norm.forward(&(ffn + sa))
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

    /// Last hidden states `[batch, seq, hidden]`; token types are ignored.
    pub fn forward(&self, input_ids: &Tensor, token_type_ids: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        let mask = key_mask(attention_mask);
        let mut xs = self.embeddings.forward(input_ids, token_type_ids, train);
        for block in &self.blocks {
            xs = block.forward(&xs, &mask, train);
        }
        xs
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
