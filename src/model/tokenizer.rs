//! The model's own tokenizer (`tokenizer.json`), without the fixed padding
//! and truncation that checkpoints often carry: batches are padded by the
//! loader to their longest row instead.

use std::path::Path;

use anyhow::{anyhow, Result};
use tokenizers::{Tokenizer, TruncationParams};

/// One text's token ids and token-type ids.
pub type EncodedText = (Vec<u32>, Vec<u32>);

/// A Hugging Face tokenizer with per-call truncation.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// Id of the padding token.
    pub pad_id: u32,
}

impl TextTokenizer {
    /// Loads `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path).map_err(|e| anyhow!("cannot load tokenizer {}: {e}", path.display()))?;
        let pad_id = inner
            .get_padding()
            .map(|p| p.pad_id)
            .or_else(|| inner.token_to_id("[PAD]"))
            .unwrap_or(0);
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| anyhow!("{e}"))?;
        Ok(Self { inner, pad_id })
    }

    /// Encodes texts with special tokens, truncated to `max_len` tokens.
    pub fn encode_batch(&self, texts: &[String], max_len: usize) -> Result<Vec<EncodedText>> {
        let mut tok = self.inner.clone();
        tok.with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| anyhow!("cannot truncate to {max_len} tokens: {e}"))?;
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = tok.encode_batch(inputs, true).map_err(|e| anyhow!("tokenization failed: {e}"))?;
        Ok(encodings.into_iter().map(|e| (e.get_ids().to_vec(), e.get_type_ids().to_vec())).collect())
    }

    /// The underlying tokenizer, for saving.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}
