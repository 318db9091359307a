//! The architectures, one file per family, with parameter names that
//! mirror the Hugging Face checkpoints, and the `config.json` they read.
//!
//! A new encoder family touches: a file here (its modules, named as in its
//! checkpoint, built from `model::layers`), a variant of `Arch` in
//! `config.rs` (its `model_type`, name prefix and transformers classes), an
//! arm of `Backbone` in `model/text.rs`, and `adapt/heads.rs` only when its
//! classification head differs from BERT's. Its parity test goes into
//! `tests/model_family.rs`, with a tiny checkpoint that transformers saved.

pub mod bert;
pub mod config;
pub mod distilbert;
pub mod roberta;

pub use config::{Arch, EncoderConfig, MEAN_POOLED_TYPE_PREFIX};

/// The encoder, by architecture (RoBERTa's is BERT's).
pub enum Backbone {
    /// BERT, and RoBERTa (BERT with other positions and head).
    Bert(bert::Bert),
    /// DistilBERT.
    DistilBert(distilbert::DistilBert),
}
