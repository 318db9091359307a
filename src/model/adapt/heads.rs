//! Task heads: the classifier above the encoder, and further named heads
//! that share one backbone (multi-task). One head is active at a time;
//! `fit`, `evaluate` and `predict` use it, and the others are parked:
//! frozen, and left out of counts and selectors.
//!
//! The active head's tensors are exported under Hugging Face's names
//! (`classifier.*`); parked heads under `heads.<name>.*`.

use std::collections::HashMap;

use anyhow::{bail, Result};
use tch::nn::{self, Init, Module};
use tch::Tensor;

use crate::model::arch::{distilbert, roberta, Arch, EncoderConfig};
use crate::model::text::Backbone;
use crate::model::{mean_pool, Pooling, Task, TextModel};

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
    head: Head,
    labels: Vec<String>,
    task: Task,
    pooling: Pooling,
    /// Its parameter names.
    pub(in crate::model) params: Vec<String>,
    /// Whether each of `params` trained when it was parked.
    flags: Vec<bool>,
}

impl ParkedHead {
    /// What `config.json` records of it, so that loading can rebuild it.
    pub(in crate::model) fn describe(&self) -> serde_json::Value {
        serde_json::json!({ "name": self.name, "labels": self.labels, "pooling": self.pooling.name(), "task": self.task.name() })
    }
}

impl TextModel {
    /// The active head's name (`main` for the one the model was loaded with).
    pub fn head_name(&self) -> &str {
        &self.head_name
    }

    /// Every head's name, the active one first.
    pub fn head_names(&self) -> Vec<String> {
        std::iter::once(self.head_name.clone()).chain(self.parked.iter().map(|h| h.name.clone())).collect()
    }

    /// Adds a head named `name` for `labels` and `task` on the shared
    /// backbone. It is parked until `use_head(name)`.
    pub fn add_head(&mut self, name: &str, labels: Vec<String>, pooling: Pooling, task: Task) -> Result<()> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            bail!("a head name uses letters, digits, '_' and '-' only; got '{name}'");
        }
        if self.head_names().iter().any(|n| n == name) {
            bail!("the model already has a head named '{name}'; its heads: {}", self.head_names().join(", "));
        }
        crate::model::text::check_output_count(task, labels.len())?;
        if pooling == Pooling::Pooler && self.config.arch == Arch::Bert && !self.vs.variables().keys().any(|n| n.contains("pooler.")) {
            bail!("this model has no pooler; use pooling: \"mean\"");
        }
        let prefix = format!("heads.{name}.");
        let head = Head::new(&(self.vs.root() / "heads" / name), &self.config, pooling, labels.len() as i64, task);
        let mut params: Vec<String> = self.vs.variables().into_keys().filter(|n| n.starts_with(&prefix)).collect();
        params.sort();
        self.set_flags(&params, &vec![false; params.len()]);
        let flags = vec![true; params.len()];
        self.parked.push(ParkedHead { name: name.to_string(), head, labels, task, pooling, params, flags });
        Ok(())
    }

    /// Makes head `name` the active one: `fit`, `evaluate`, `predict` and
    /// `labels` use it from now on. The head it replaces is parked with its
    /// freezing, and gets it back when it returns.
    pub fn use_head(&mut self, name: &str) -> Result<()> {
        if name == self.head_name {
            return Ok(());
        }
        let Some(i) = self.parked.iter().position(|h| h.name == name) else {
            bail!("no head named '{name}'; this model's heads: {}", self.head_names().join(", "));
        };
        let incoming = self.parked.remove(i);
        let outgoing_flags = self.flags(&self.head_params);
        self.set_flags(&self.head_params.clone(), &vec![false; self.head_params.len()]);
        let outgoing = ParkedHead {
            name: std::mem::replace(&mut self.head_name, incoming.name),
            head: std::mem::replace(&mut self.head, incoming.head),
            labels: std::mem::replace(&mut self.labels, incoming.labels),
            task: std::mem::replace(&mut self.task, incoming.task),
            pooling: std::mem::replace(&mut self.pooling, incoming.pooling),
            params: std::mem::replace(&mut self.head_params, incoming.params),
            flags: outgoing_flags,
        };
        self.set_flags(&self.head_params.clone(), &incoming.flags);
        self.parked.insert(i, outgoing);
        Ok(())
    }

    /// Export names of every head's tensors: the active head's under
    /// Hugging Face's names, parked heads' under `heads.<name>.`.
    pub(in crate::model) fn head_export_names(&self) -> HashMap<String, String> {
        let mut names = HashMap::new();
        let active_prefix = format!("heads.{}.", self.head_name);
        for p in &self.head_params {
            names.insert(p.clone(), p.strip_prefix(&active_prefix).unwrap_or(p).to_string());
        }
        for h in &self.parked {
            for p in &h.params {
                let exported = if p.starts_with("heads.") { p.clone() } else { format!("heads.{}.{p}", h.name) };
                names.insert(p.clone(), exported);
            }
        }
        names
    }

    fn flags(&self, names: &[String]) -> Vec<bool> {
        let vars = self.vs.variables();
        names.iter().map(|n| vars.get(n).is_some_and(|t| t.requires_grad())).collect()
    }

    fn set_flags(&self, names: &[String], flags: &[bool]) {
        let vars = self.vs.variables();
        for (n, f) in names.iter().zip(flags) {
            if let Some(t) = vars.get(n) {
                let _ = t.set_requires_grad(*f);
            }
        }
    }
}
