//! What RoBERTa changes in BERT: positions counted from the padding id + 1
//! over real tokens only, and a two-layer classification head on `<s>`
//! (`classifier.dense`, `classifier.out_proj`). Its encoder is `bert::Bert`.

use tch::nn::{self, Module};
use tch::Tensor;

use super::config::EncoderConfig;

/// Position ids as Hugging Face's `create_position_ids_from_input_ids`:
/// `padding_id + 1, padding_id + 2, ...` for real tokens, `padding_id` for padding.
pub fn position_ids(input_ids: &Tensor, padding_id: i64) -> Tensor {
    let real = input_ids.ne(padding_id).to_kind(tch::Kind::Int64);
    real.cumsum(1, tch::Kind::Int64) * &real + padding_id
}

/// `RobertaClassificationHead`: dropout, dense, tanh, dropout, out_proj.
#[derive(Debug)]
pub struct ClassificationHead {
    dense: nn::Linear,
    out_proj: nn::Linear,
    dropout: f64,
}

impl ClassificationHead {
    /// The head's variables under `p` (`classifier`).
    pub fn new(p: nn::Path, c: &EncoderConfig, labels: i64, init: nn::LinearConfig) -> Self {
        Self {
            dense: nn::linear(&p / "dense", c.hidden_size, c.hidden_size, init),
            out_proj: nn::linear(&p / "out_proj", c.hidden_size, labels, init),
            dropout: c.classifier_dropout.unwrap_or(c.hidden_dropout_prob),
        }
    }

    /// Logits from the last hidden states (the first token's).
    pub fn forward(&self, hidden: &Tensor, train: bool) -> Tensor {
        let x = hidden.select(1, 0).dropout(self.dropout, train);
        let x = self.dense.forward(&x).tanh().dropout(self.dropout, train);
        self.out_proj.forward(&x)
    }
}
