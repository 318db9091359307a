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

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TextTokenizer({} tokens, pad id {})", self.inner.get_vocab_size(true), self.pad_id)
    }
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

    /// Wraps a tokenizer built elsewhere (a language model's), with batches
    /// padded with `pad_id`.
    pub fn from_tokenizer(mut inner: Tokenizer, pad_id: u32) -> Result<Self> {
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| anyhow!("{e}"))?;
        Ok(Self { inner, pad_id })
    }

    /// Loads the model folder's tokenizer: `tokenizer.json`, or else a BERT
    /// WordPiece tokenizer built from `vocab.txt` (lower-casing unless
    /// `tokenizer_config.json` says `do_lower_case: false`).
    pub fn load_from_dir(dir: &Path) -> Result<Self> {
        let json = dir.join("tokenizer.json");
        if json.exists() {
            return Self::load(&json);
        }
        let vocab = dir.join("vocab.txt");
        if !vocab.exists() {
            anyhow::bail!("{} has neither tokenizer.json nor vocab.txt", dir.display());
        }
        let lowercase = std::fs::read_to_string(dir.join("tokenizer_config.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|c| c.get("do_lower_case").and_then(|v| v.as_bool()))
            .unwrap_or(true);
        Self::from_vocab(&vocab, lowercase)
    }

    /// A BERT WordPiece tokenizer from a `vocab.txt`.
    pub fn from_vocab(vocab: &Path, lowercase: bool) -> Result<Self> {
        use tokenizers::models::wordpiece::WordPiece;
        use tokenizers::normalizers::bert::BertNormalizer;
        use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
        use tokenizers::processors::bert::BertProcessing;
        let path = vocab.to_str().ok_or_else(|| anyhow!("{} is not a UTF-8 path", vocab.display()))?;
        let model = WordPiece::from_file(path).unk_token("[UNK]".into()).build().map_err(|e| anyhow!("cannot read {}: {e}", vocab.display()))?;
        let mut inner = Tokenizer::new(model);
        let id = |t: &str| inner.token_to_id(t).ok_or_else(|| anyhow!("{} has no {t} token", vocab.display()));
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        inner.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase))).map_err(|e| anyhow!("{e}"))?;
        inner.with_pre_tokenizer(Some(BertPreTokenizer));
        inner.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
        let pad_id = inner.token_to_id("[PAD]").unwrap_or(0);
        Ok(Self { inner, pad_id })
    }

    /// A copy that truncates to `max_len` tokens, for encoding many
    /// batches at one length without copying the vocabulary each time.
    pub fn truncating(&self, max_len: usize) -> Result<Self> {
        let mut inner = self.inner.clone();
        inner.with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() })).map_err(|e| anyhow!("cannot truncate to {max_len} tokens: {e}"))?;
        Ok(Self { inner, pad_id: self.pad_id })
    }

    /// A copy that does not truncate, to measure texts at their full length.
    pub fn untruncated(&self) -> Result<Self> {
        let mut inner = self.inner.clone();
        inner.with_truncation(None).map_err(|e| anyhow!("{e}"))?;
        Ok(Self { inner, pad_id: self.pad_id })
    }

    /// Encodes texts with special tokens, truncated to `max_len` tokens.
    pub fn encode_batch(&self, texts: &[String], max_len: usize) -> Result<Vec<EncodedText>> {
        self.truncating(max_len)?.encode_batch_as_set(texts, None)
    }

    /// Encodes sentence pairs as `[CLS] a [SEP] b [SEP]` (token types 0,
    /// then 1), truncating the longer of the two first down to `max_len`.
    pub fn encode_pair_batch(&self, texts: &[String], pairs: &[String], max_len: usize) -> Result<Vec<EncodedText>> {
        self.truncating(max_len)?.encode_batch_as_set(texts, Some(pairs))
    }

    /// Encodes texts (or pairs) with this tokenizer's own truncation.
    pub fn encode_batch_as_set(&self, texts: &[String], pairs: Option<&[String]>) -> Result<Vec<EncodedText>> {
        let encodings = match pairs {
            Some(pairs) => self.inner.encode_batch(texts.iter().map(String::as_str).zip(pairs.iter().map(String::as_str)).collect::<Vec<_>>(), true),
            None => self.inner.encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true),
        }
        .map_err(|e| anyhow!("tokenization failed: {e}"))?;
        Ok(encodings.into_iter().map(|e| (e.get_ids().to_vec(), e.get_type_ids().to_vec())).collect())
    }

    /// Encodes texts of space-separated words (token classification) with
    /// special tokens, truncated to `max_len`; also gives each token's word
    /// index (`None` for special tokens).
    pub fn encode_words_batch(&self, texts: &[String], max_len: usize) -> Result<Vec<(EncodedText, Vec<Option<u32>>)>> {
        let mut tok = self.inner.clone();
        tok.with_truncation(Some(TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|e| anyhow!("cannot truncate to {max_len} tokens: {e}"))?;
        let inputs: Vec<Vec<&str>> = texts.iter().map(|t| t.split(' ').collect()).collect();
        let encodings = tok.encode_batch(inputs, true).map_err(|e| anyhow!("tokenization failed: {e}"))?;
        Ok(encodings.into_iter().map(|e| ((e.get_ids().to_vec(), e.get_type_ids().to_vec()), e.get_word_ids().to_vec())).collect())
    }

    /// The underlying tokenizer, for saving.
    pub fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}
