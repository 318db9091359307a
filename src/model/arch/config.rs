//! `config.json` of a Hugging Face BERT-family checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The model types this build can load.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["bert", "roberta", "distilbert"];

/// The `model_type` prefix of a mean-pooled classifier saved with its own
/// modeling file (`tunebook_mean_pooled_bert`): transformers has no class
/// for that head, and an unknown type makes it ask for `trust_remote_code`
/// instead of running its own, untrained head.
pub const MEAN_POOLED_TYPE_PREFIX: &str = "tunebook_mean_pooled_";

/// A BERT-family architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Arch {
    /// BERT and its distillations with the same layout (MiniLM).
    #[default]
    Bert,
    /// RoBERTa: positions offset past the padding id, a two-layer head on `<s>`.
    Roberta,
    /// DistilBERT: its own layer names, no token types, a pre-classifier.
    DistilBert,
}

impl Arch {
    /// The prefix of the backbone's names in task checkpoints (`bert`, `roberta`, `distilbert`).
    pub fn prefix(self) -> &'static str {
        match self {
            Arch::Bert => "bert",
            Arch::Roberta => "roberta",
            Arch::DistilBert => "distilbert",
        }
    }

    /// The Hugging Face class that a saved token classifier loads as.
    pub fn token_classifier_class(self) -> &'static str {
        match self {
            Arch::Bert => "BertForTokenClassification",
            Arch::Roberta => "RobertaForTokenClassification",
            Arch::DistilBert => "DistilBertForTokenClassification",
        }
    }

    /// The Hugging Face class that a saved classifier loads as.
    pub fn classifier_class(self) -> &'static str {
        match self {
            Arch::Bert => "BertForSequenceClassification",
            Arch::Roberta => "RobertaForSequenceClassification",
            Arch::DistilBert => "DistilBertForSequenceClassification",
        }
    }

    /// The class name stem of the mean-pooled export (`Bert`, `Roberta`, `DistilBert`).
    fn class_stem(self) -> &'static str {
        match self {
            Arch::Bert => "Bert",
            Arch::Roberta => "Roberta",
            Arch::DistilBert => "DistilBert",
        }
    }

    /// The `model_type` of a mean-pooled classifier's export.
    pub fn mean_pooled_model_type(self) -> String {
        format!("{MEAN_POOLED_TYPE_PREFIX}{}", self.prefix())
    }

    /// The configuration and model classes of a mean-pooled classifier's
    /// export, as `modeling_tunebook.py` names them.
    pub fn mean_pooled_classes(self) -> (String, String) {
        let stem = self.class_stem();
        (format!("TunebookMeanPooled{stem}Config"), format!("TunebookMeanPooled{stem}ForSequenceClassification"))
    }
}

/// The fields of a BERT-family `config.json` that the forward pass needs.
/// DistilBERT's own names (`dim`, `n_layers`, ...) are read as aliases.
#[derive(Debug, Clone, Deserialize)]
pub struct EncoderConfig {
    /// Architecture family, e.g. `bert`.
    pub model_type: String,
    /// The architecture `model_type` names.
    #[serde(skip)]
    pub arch: Arch,
    /// Number of rows in the word-embedding table.
    pub vocab_size: i64,
    /// Width of every hidden state.
    #[serde(alias = "dim")]
    pub hidden_size: i64,
    /// Number of transformer layers.
    #[serde(alias = "n_layers")]
    pub num_hidden_layers: i64,
    /// Attention heads per layer.
    #[serde(alias = "n_heads")]
    pub num_attention_heads: i64,
    /// Width of the feed-forward block.
    #[serde(alias = "hidden_dim")]
    pub intermediate_size: i64,
    /// Activation of the feed-forward block.
    #[serde(default = "default_act", alias = "activation")]
    pub hidden_act: String,
    /// Dropout on hidden states.
    #[serde(default = "default_dropout", alias = "dropout")]
    pub hidden_dropout_prob: f64,
    /// Dropout on attention probabilities.
    #[serde(default = "default_dropout", alias = "attention_dropout")]
    pub attention_probs_dropout_prob: f64,
    /// Dropout before the classifier; `hidden_dropout_prob` when absent.
    #[serde(default, alias = "seq_classif_dropout")]
    pub classifier_dropout: Option<f64>,
    /// Length of the position-embedding table.
    pub max_position_embeddings: i64,
    /// Number of token types (segments).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: i64,
    /// LayerNorm epsilon.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Id of the padding token.
    #[serde(default)]
    pub pad_token_id: i64,
    /// DistilBERT's fixed sinusoidal positions (not supported).
    #[serde(default)]
    pub sinusoidal_pos_embds: bool,
    /// Class names of a fine-tuned head, by id.
    #[serde(default)]
    pub id2label: Option<BTreeMap<String, String>>,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_dropout() -> f64 {
    0.1
}
fn default_type_vocab() -> i64 {
    2
}
fn default_eps() -> f64 {
    1e-12
}

impl EncoderConfig {
    /// Reads and checks `config.json`; returns the typed config and the raw
    /// JSON (kept so that saving writes back every field we do not use).
    pub fn load(path: &Path) -> Result<(Self, serde_json::Value)> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        let raw: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))?;
        let saved_type = raw.get("model_type").and_then(|v| v.as_str()).unwrap_or("");
        let model_type = saved_type.strip_prefix(MEAN_POOLED_TYPE_PREFIX).unwrap_or(saved_type);
        if !SUPPORTED_MODEL_TYPES.contains(&model_type) {
            bail!(
                "{}: model_type '{model_type}' is not supported; supported model types: {}",
                path.display(),
                SUPPORTED_MODEL_TYPES.join(", ")
            );
        }
        let mut config: EncoderConfig = serde_json::from_value(raw.clone())
            .with_context(|| format!("{}: missing or malformed field", path.display()))?;
        config.model_type = model_type.to_string();
        config.arch = match model_type {
            "roberta" => Arch::Roberta,
            "distilbert" => Arch::DistilBert,
            _ => Arch::Bert,
        };
        if config.sinusoidal_pos_embds {
            bail!("{}: sinusoidal_pos_embds is not supported; only learned position embeddings are", path.display());
        }
        if config.hidden_size % config.num_attention_heads != 0 {
            bail!(
                "{}: hidden_size {} is not divisible by num_attention_heads {}",
                path.display(),
                config.hidden_size,
                config.num_attention_heads
            );
        }
        if !matches!(config.hidden_act.as_str(), "gelu" | "gelu_new" | "relu") {
            bail!("{}: hidden_act '{}' is not supported; supported: gelu, gelu_new, relu", path.display(), config.hidden_act);
        }
        Ok((config, raw))
    }

    /// Class names stored by an earlier fine-tune, in id order.
    pub fn label_names(&self) -> Option<Vec<String>> {
        let map = self.id2label.as_ref()?;
        let mut pairs: Vec<(i64, String)> =
            map.iter().filter_map(|(k, v)| Some((k.parse().ok()?, v.clone()))).collect();
        pairs.sort();
        Some(pairs.into_iter().map(|(_, v)| v).collect())
    }
}
