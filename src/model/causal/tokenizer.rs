//! The tokenizer of a decoder: a Hugging Face `tokenizer.json`, or one
//! built from a GGUF file's `tokenizer.ggml.*` metadata with the
//! `tokenizers` crate (byte-level BPE, the pre-tokenizer `tokenizer.ggml.pre`
//! names, the control tokens as special tokens).

use anyhow::{anyhow, bail, Context, Result};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::model::weights::gguf::{GgufFile, Value};

/// The `tokenizer.ggml.pre` names this build can rebuild.
pub const SUPPORTED_PRE_TOKENIZERS: &[&str] = &["smollm", "gpt2", "default", "llama-bpe", "qwen2"];

/// Llama 3's split (numbers in groups of up to three).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split (numbers one digit at a time).
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's token types: 3 is a control token, 4 user-defined.
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;

fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper> {
    let split = |pattern: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(SplitPattern::Regex(pattern.into()), SplitDelimiterBehavior::Isolated, false).map_err(|e| anyhow!("{e}"))?;
        Ok(Sequence::new(vec![split.into(), ByteLevel::new(false, false, false).into()]).into())
    };
    Ok(match pre {
        "smollm" => Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()]).into(),
        "gpt2" | "default" => ByteLevel::new(false, true, true).into(),
        "llama-bpe" | "llama3" => split(LLAMA3_SPLIT)?,
        "qwen2" => split(QWEN2_SPLIT)?,
        other => bail!("the GGUF's pre-tokenizer '{other}' is not supported; supported: {}", SUPPORTED_PRE_TOKENIZERS.join(", ")),
    })
}

/// Builds the tokenizer a GGUF file describes.
pub fn from_gguf(file: &GgufFile) -> Result<Tokenizer> {
    let model = file.string("tokenizer.ggml.model")?;
    if model != "gpt2" {
        bail!("the GGUF's tokenizer is '{model}'; this build reads byte-level BPE tokenizers ('gpt2', as SmolLM, Llama 3 and Qwen2 use), not SentencePiece ('llama'): load the model's Hugging Face folder instead");
    }
    let tokens = file.strings("tokenizer.ggml.tokens")?;
    let merges: Vec<(String, String)> = file
        .strings("tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).with_context(|| format!("merge '{m}' is not two tokens")))
        .collect::<Result<_>>()?;
    let vocab: tokenizers::models::bpe::Vocab = tokens.iter().enumerate().map(|(i, t)| (t.to_string(), i as u32)).collect();
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| anyhow!("the GGUF's BPE vocabulary: {e}"))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let pre = file.get("tokenizer.ggml.pre").and_then(Value::as_str).unwrap_or("default");
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer(pre)?));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let types: Vec<i64> = match file.get("tokenizer.ggml.token_type") {
        Some(Value::Array(a)) => a.iter().map(|v| v.as_int().unwrap_or(1)).collect(),
        _ => Vec::new(),
    };
    let special: Vec<AddedToken> = types.iter().zip(&tokens).filter(|(t, _)| **t == CONTROL).map(|(_, tok)| AddedToken::from(tok.to_string(), true)).collect();
    let user: Vec<AddedToken> = types.iter().zip(&tokens).filter(|(t, _)| **t == USER_DEFINED).map(|(_, tok)| AddedToken::from(tok.to_string(), false)).collect();
    tokenizer.add_special_tokens(special).map_err(|e| anyhow!("{e}"))?;
    tokenizer.add_tokens(user).map_err(|e| anyhow!("{e}"))?;
    Ok(tokenizer)
}
