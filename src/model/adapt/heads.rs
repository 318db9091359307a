//! Task heads: the classifier above the encoder, and further named heads
//! that share one backbone (multi-task). One head is active at a time;
//! `fit`, `evaluate` and `predict` use it, and the others are parked:
//! frozen, and left out of counts and selectors.
//!
//! The active head's tensors are exported under Hugging Face's names
//! (`classifier.*`); parked heads under `heads.<name>.*`.

use anyhow::{bail, Result};
use tch::nn::{self, Init, Module};
use tch::Tensor;

use crate::model::arch::{distilbert, roberta, Arch, Backbone, EncoderConfig};
use crate::task::Task;

/// The name of a model's first head.
pub const FIRST_HEAD: &str = "main";

/// A sequence-classification head.
pub(in crate::model) enum Head {
    /// BERT's pooler, dropout, `classifier` (as `BertForSequenceClassification`).
    BertPooler { classifier: nn::Linear, dropout: f64 },
    /// RoBERTa's two-layer head on `<s>`.
    Roberta(roberta::ClassificationHead),
    /// DistilBERT's `pre_classifier` head on `[CLS]`.
    DistilBert(distilbert::ClassificationHead),
    /// Mean over real tokens, dropout, `classifier`.
    Mean { classifier: nn::Linear, dropout: f64 },
    /// Dropout and `classifier` on every token (as `...ForTokenClassification`).
    Tokens { classifier: nn::Linear, dropout: f64 },
}

impl Head {
    /// A new head for `labels` classes with its variables under `p` (the
    /// root for the first head), initialized as Hugging Face does: N(0, 0.02)
    /// weights and zero biases.
    pub(in crate::model) fn new(p: &nn::Path, config: &EncoderConfig, pooling: Pooling, labels: i64, task: Task) -> Self {
        let init = nn::LinearConfig { ws_init: Init::Randn { mean: 0.0, stdev: 0.02 }, bs_init: Some(Init::Const(0.0)), bias: true };
        let dropout = config.classifier_dropout.unwrap_or(config.hidden_dropout_prob);
        if task == Task::Tokens {
            return Head::Tokens { classifier: nn::linear(p / "classifier", config.hidden_size, labels, init), dropout };
        }
        match (pooling, config.arch) {
            (Pooling::Mean, _) => Head::Mean { classifier: nn::linear(p / "classifier", config.hidden_size, labels, init), dropout },
            (Pooling::Pooler, Arch::Bert) => Head::BertPooler { classifier: nn::linear(p / "classifier", config.hidden_size, labels, init), dropout },
            (Pooling::Pooler, Arch::Roberta) => Head::Roberta(roberta::ClassificationHead::new(p / "classifier", config, labels, init)),
            (Pooling::Pooler, Arch::DistilBert) => Head::DistilBert(distilbert::ClassificationHead::new(p, config, labels, init)),
        }
    }

    /// Logits from the encoder's last hidden states: `[batch, labels]`, or
    /// `[batch, tokens, labels]` for a token head.
    pub(in crate::model) fn forward(&self, backbone: &Backbone, hidden: &Tensor, attention_mask: &Tensor, train: bool) -> Tensor {
        match (self, backbone) {
            (Head::BertPooler { classifier, dropout }, Backbone::Bert(b)) => {
                let pooled = b.pool(hidden).expect("BERT checkpoints have a pooler");
                classifier.forward(&pooled.dropout(*dropout, train))
            }
            (Head::Mean { classifier, dropout }, _) => classifier.forward(&mean_pool(hidden, attention_mask).dropout(*dropout, train)),
            (Head::Tokens { classifier, dropout }, _) => classifier.forward(&hidden.dropout(*dropout, train)),
            (Head::Roberta(h), _) => h.forward(hidden, train),
            (Head::DistilBert(h), _) => h.forward(hidden, train),
            (Head::BertPooler { .. }, Backbone::DistilBert(_)) => unreachable!("a pooler head is only built for BERT"),
        }
    }
}

/// A head that is not in use, with what it needs to come back.
pub(in crate::model) struct ParkedHead {
    pub(in crate::model) name: String,
    pub(in crate::model) head: Head,
    pub(in crate::model) labels: Vec<String>,
    pub(in crate::model) task: Task,
    pub(in crate::model) pooling: Pooling,
    /// Its parameter names.
    pub(in crate::model) params: Vec<String>,
    /// Whether each of `params` trained when it was parked.
    pub(in crate::model) flags: Vec<bool>,
}

impl ParkedHead {
    /// What `config.json` records of it, so that loading can rebuild it.
    pub(in crate::model) fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "name": self.name, "labels": self.labels, "pooling": self.pooling.name(), "task": self.task.name() })
    }
}

/// How a sequence becomes one vector for the classifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// BERT's pooler on the first token, as Hugging Face's `BertForSequenceClassification`.
    Pooler,
    /// Mean of the last hidden states over real (non-padding) tokens.
    Mean,
}

impl Pooling {
    /// Valid names, for error messages.
    pub const NAMES: &'static [&'static str] = &["pooler", "mean"];

    /// Parses `pooler` or `mean`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pooler" => Ok(Self::Pooler),
            "mean" => Ok(Self::Mean),
            _ => bail!("unknown pooling '{s}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    /// The name `parse` accepts.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pooler => "pooler",
            Self::Mean => "mean",
        }
    }
}

/// The mean of `hidden` over the positions where `attention_mask` is 1.
pub fn mean_pool(hidden: &Tensor, attention_mask: &Tensor) -> Tensor {
    let mask = attention_mask.to_kind(hidden.kind()).unsqueeze(-1);
    let dims = [1i64];
    (hidden * &mask).sum_dim_intlist(dims.as_slice(), false, None) / mask.sum_dim_intlist(dims.as_slice(), false, None).clamp_min(1.0)
}

/// Refuses a head with too few outputs for its task.
pub(in crate::model) fn check_output_count(task: Task, outputs: usize) -> Result<()> {
    if outputs < task.min_outputs() {
        match task {
            Task::Classify => bail!("a classifier needs at least 2 labels, got {outputs}; for one number per row use task: \"regression\""),
            _ => bail!("a {} head needs at least 1 output", task.name()),
        }
    }
    Ok(())
}
