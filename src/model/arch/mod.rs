//! The architectures, one file per family, with parameter names that
//! mirror the Hugging Face checkpoints, and the `config.json` they read.
//!
//! A new encoder family touches: a file here (its modules, named as in its
//! checkpoint, built from `model::layers`), a variant of `Arch` in
//! `config.rs` (its `model_type`, name prefix and transformers classes), an
//! arm of `Backbone` in `model/text.rs`, and `adapt/heads.rs` only when its
//! classification head differs from BERT's. Its parity test goes into
//! `tests/model_family.rs`, with a tiny checkpoint that transformers saved.
//!
//! Decoders: `decoder.rs` holds the Llama-shaped blocks that Llama, Qwen2,
//! Mistral and Gemma share, `decoder_config.rs` their configuration and
//! quirks (`Family`), and `gpt2.rs` GPT-2. A new Llama-like family is a
//! variant of `Family` and its config keys; its parity test goes into
//! `tests/decoder_family.rs`.

pub mod bert;
pub mod config;
pub mod conv;
pub mod decoder;
pub mod decoder_config;
pub mod distilbert;
pub mod efficientnet_lite;
pub mod gpt2;
pub mod mobilenet_v2;
pub mod roberta;

pub use config::{Arch, EncoderConfig, MEAN_POOLED_TYPE_PREFIX};

/// The encoder, by architecture (RoBERTa's is BERT's).
pub enum Backbone {
    /// BERT, and RoBERTa (BERT with other positions and head).
    Bert(bert::Bert),
    /// DistilBERT.
    DistilBert(distilbert::DistilBert),
}

/// A decoder language model's network, by family.
pub enum DecoderNet {
    /// Llama, Qwen2, Mistral and Gemma.
    Llama(decoder::Decoder),
    /// GPT-2.
    Gpt2(gpt2::Gpt2),
}

impl DecoderNet {
    /// Logits `[batch, seq, vocab]`; see `decoder::Decoder::forward`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(&self, ids: &tch::Tensor, positions: &tch::Tensor, mask: &decoder::AttnMask, cache: Option<&mut Vec<decoder::LayerCache>>, train: bool, last_only: bool) -> tch::Tensor {
        match self {
            Self::Llama(d) => d.forward(ids, positions, mask, cache, train, last_only),
            Self::Gpt2(g) => g.forward(ids, positions, mask, cache, train, last_only),
        }
    }

    /// The final normed hidden states; see `decoder::Decoder::hidden`.
    pub fn hidden(&self, ids: &tch::Tensor, positions: &tch::Tensor, mask: &decoder::AttnMask, train: bool, run: crate::model::layers::BlockRun) -> tch::Tensor {
        match self {
            Self::Llama(d) => d.hidden(ids, positions, mask, None, train, false, run),
            Self::Gpt2(g) => g.hidden(ids, positions, mask, None, train, false, run),
        }
    }

    /// The head's weight `[vocab, hidden]`.
    pub fn head_weight(&self) -> &tch::Tensor {
        match self {
            Self::Llama(d) => d.head_weight(),
            Self::Gpt2(g) => g.head_weight(),
        }
    }

    /// Every linear layer, for LoRA.
    pub fn denses_mut(&mut self) -> Vec<&mut crate::model::layers::Dense> {
        match self {
            Self::Llama(d) => d.denses_mut(),
            Self::Gpt2(g) => g.denses_mut(),
        }
    }
}
