//! The configuration of a decoder language model, read from a Hugging Face
//! `config.json` or from a GGUF file's `<arch>.*` metadata, with each
//! family's defaults and quirks in one table (`Family`).

use anyhow::{bail, Context, Result};
use serde_json::Value as Json;

use crate::model::weights::gguf::GgufFile;

/// A decoder family: the layout of its blocks and the names of its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama (and SmolLM, TinyLlama, ...): RMSNorm, RoPE, grouped KV heads, SwiGLU.
    Llama,
    /// Qwen2: Llama with biases on the query, key and value projections.
    Qwen2,
    /// Mistral: Llama with sliding-window attention.
    Mistral,
    /// Gemma: RMSNorm scaled by `1 + weight`, GeGLU, embeddings scaled by `sqrt(hidden)`.
    Gemma,
    /// GPT-2: LayerNorm, learned positions, fused `c_attn`, `Conv1D` weights.
    Gpt2,
}

/// The `model_type`s this build loads as decoders.
pub const DECODER_MODEL_TYPES: &[&str] = &["llama", "qwen2", "mistral", "gemma", "gpt2"];

impl Family {
    /// From a `model_type`.
    pub fn parse(model_type: &str) -> Option<Self> {
        Some(match model_type {
            "llama" => Self::Llama,
            "qwen2" => Self::Qwen2,
            "mistral" => Self::Mistral,
            "gemma" => Self::Gemma,
            "gpt2" => Self::Gpt2,
            _ => return None,
        })
    }

    /// The `model_type` transformers writes.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Mistral => "mistral",
            Self::Gemma => "gemma",
            Self::Gpt2 => "gpt2",
        }
    }

    /// The transformers class that a saved model loads as.
    pub fn causal_lm_class(self) -> &'static str {
        match self {
            Self::Llama => "LlamaForCausalLM",
            Self::Qwen2 => "Qwen2ForCausalLM",
            Self::Mistral => "MistralForCausalLM",
            Self::Gemma => "GemmaForCausalLM",
            Self::Gpt2 => "GPT2LMHeadModel",
        }
    }
}

/// What the forward pass and generation need of a decoder's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    /// The family.
    pub family: Family,
    /// Vocabulary size (rows of the embedding).
    pub vocab_size: i64,
    /// Width of the residual stream.
    pub hidden_size: i64,
    /// Width of the feed-forward block.
    pub intermediate_size: i64,
    /// Number of decoder layers.
    pub num_layers: i64,
    /// Query heads.
    pub num_heads: i64,
    /// Key/value heads (fewer than query heads under grouped-query attention).
    pub num_kv_heads: i64,
    /// Width of one head.
    pub head_dim: i64,
    /// RoPE's base.
    pub rope_theta: f64,
    /// Epsilon of the norms.
    pub norm_eps: f64,
    /// The longest sequence the model was trained for.
    pub max_positions: i64,
    /// Whether the output projection is the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Biases on the query, key and value projections.
    pub qkv_bias: bool,
    /// Biases on the output projection and the MLP.
    pub out_bias: bool,
    /// Keys further back than this are not attended (Mistral).
    pub sliding_window: Option<i64>,
    /// The MLP's activation (`silu`, `gelu_pytorch_tanh`, `gelu_new`).
    pub activation: String,
    /// Token that starts a sequence.
    pub bos_token_id: Option<i64>,
    /// Tokens that end generation.
    pub eos_token_ids: Vec<i64>,
    /// Token used for padding.
    pub pad_token_id: Option<i64>,
}

fn int(c: &Json, key: &str) -> Result<i64> {
    c.get(key).and_then(Json::as_i64).with_context(|| format!("config.json has no integer '{key}'"))
}

fn ids(v: Option<&Json>) -> Vec<i64> {
    match v {
        Some(Json::Number(n)) => n.as_i64().into_iter().collect(),
        Some(Json::Array(a)) => a.iter().filter_map(Json::as_i64).collect(),
        _ => Vec::new(),
    }
}

/// RoPE's base from `rope_theta` or transformers 5's `rope_parameters`;
/// scaled variants (llama3, yarn, linear) are refused rather than run wrong.
fn rope_theta(c: &Json) -> Result<f64> {
    let params = c.get("rope_parameters").or_else(|| c.get("rope_scaling")).filter(|v| !v.is_null());
    if let Some(p) = params {
        let kind = p.get("rope_type").or_else(|| p.get("type")).and_then(Json::as_str).unwrap_or("default");
        if kind != "default" {
            bail!("config.json asks for '{kind}' RoPE scaling, which this build does not implement (it implements the default RoPE)");
        }
        if let Some(t) = p.get("rope_theta").and_then(Json::as_f64) {
            return Ok(t);
        }
    }
    Ok(c.get("rope_theta").and_then(Json::as_f64).unwrap_or(10_000.0))
}

impl DecoderConfig {
    /// Parses a decoder's `config.json`.
    pub fn from_json(c: &Json) -> Result<Self> {
        let model_type = c.get("model_type").and_then(Json::as_str).unwrap_or("");
        let family = Family::parse(model_type)
            .with_context(|| format!("model_type '{model_type}' is not a decoder this build can run; supported: {}", DECODER_MODEL_TYPES.join(", ")))?;
        let eos_token_ids = ids(c.get("eos_token_id"));
        let bos_token_id = ids(c.get("bos_token_id")).first().copied();
        let pad_token_id = ids(c.get("pad_token_id")).first().copied();
        if family == Family::Gpt2 {
            let hidden = int(c, "n_embd")?;
            let heads = int(c, "n_head")?;
            return Ok(Self {
                family,
                vocab_size: int(c, "vocab_size")?,
                hidden_size: hidden,
                intermediate_size: c.get("n_inner").and_then(Json::as_i64).unwrap_or(4 * hidden),
                num_layers: int(c, "n_layer")?,
                num_heads: heads,
                num_kv_heads: heads,
                head_dim: hidden / heads,
                rope_theta: 0.0,
                norm_eps: c.get("layer_norm_epsilon").and_then(Json::as_f64).unwrap_or(1e-5),
                max_positions: int(c, "n_positions")?,
                tie_word_embeddings: c.get("tie_word_embeddings").and_then(Json::as_bool).unwrap_or(true),
                qkv_bias: true,
                out_bias: true,
                sliding_window: None,
                activation: c.get("activation_function").and_then(Json::as_str).unwrap_or("gelu_new").to_string(),
                bos_token_id,
                eos_token_ids,
                pad_token_id,
            });
        }
        let hidden = int(c, "hidden_size")?;
        let heads = int(c, "num_attention_heads")?;
        let activation = c
            .get("hidden_activation")
            .filter(|v| !v.is_null())
            .or_else(|| c.get("hidden_act"))
            .and_then(Json::as_str)
            .unwrap_or(if family == Family::Gemma { "gelu_pytorch_tanh" } else { "silu" })
            .to_string();
        let sliding_window = match family {
            Family::Mistral => c.get("sliding_window").and_then(Json::as_i64),
            Family::Qwen2 if c.get("use_sliding_window").and_then(Json::as_bool) == Some(true) => {
                bail!("this Qwen2 checkpoint uses sliding-window attention on some layers, which this build does not implement")
            }
            _ => None,
        };
        let config = Self {
            family,
            vocab_size: int(c, "vocab_size")?,
            hidden_size: hidden,
            intermediate_size: int(c, "intermediate_size")?,
            num_layers: int(c, "num_hidden_layers")?,
            num_heads: heads,
            num_kv_heads: c.get("num_key_value_heads").and_then(Json::as_i64).unwrap_or(heads),
            head_dim: c.get("head_dim").and_then(Json::as_i64).unwrap_or(hidden / heads),
            rope_theta: rope_theta(c)?,
            norm_eps: c.get("rms_norm_eps").and_then(Json::as_f64).unwrap_or(1e-6),
            max_positions: c.get("max_position_embeddings").and_then(Json::as_i64).unwrap_or(2048),
            tie_word_embeddings: c.get("tie_word_embeddings").and_then(Json::as_bool).unwrap_or(family == Family::Gemma),
            qkv_bias: family == Family::Qwen2 || c.get("attention_bias").and_then(Json::as_bool).unwrap_or(false),
            out_bias: c.get("mlp_bias").and_then(Json::as_bool).unwrap_or(false),
            sliding_window,
            activation,
            bos_token_id,
            eos_token_ids,
            pad_token_id,
        };
        config.check()?;
        Ok(config)
    }

    /// Reads a Llama-family GGUF's hyperparameters (`llama.*` keys).
    pub fn from_gguf(file: &GgufFile) -> Result<Self> {
        let arch = file.string("general.architecture")?;
        let family = match arch {
            "llama" => Family::Llama,
            "qwen2" => Family::Qwen2,
            other => bail!("GGUF architecture '{other}' is not supported; this build reads llama and qwen2 GGUF files (and Hugging Face folders of {})", DECODER_MODEL_TYPES.join(", ")),
        };
        let key = |k: &str| format!("{arch}.{k}");
        let hidden = file.int(&key("embedding_length"))?;
        let heads = file.int(&key("attention.head_count"))?;
        let vocab_size = match file.get(&key("vocab_size")).and_then(|v| v.as_int()) {
            Some(v) => v,
            None => file.strings("tokenizer.ggml.tokens")?.len() as i64,
        };
        let head_dim = file.get(&key("rope.dimension_count")).and_then(|v| v.as_int()).unwrap_or(hidden / heads);
        let config = Self {
            family,
            vocab_size,
            hidden_size: hidden,
            intermediate_size: file.int(&key("feed_forward_length"))?,
            num_layers: file.int(&key("block_count"))?,
            num_heads: heads,
            num_kv_heads: file.get(&key("attention.head_count_kv")).and_then(|v| v.as_int()).unwrap_or(heads),
            head_dim,
            rope_theta: file.get(&key("rope.freq_base")).and_then(|v| v.as_float()).unwrap_or(10_000.0),
            norm_eps: file.get(&key("attention.layer_norm_rms_epsilon")).and_then(|v| v.as_float()).unwrap_or(1e-5),
            max_positions: file.get(&key("context_length")).and_then(|v| v.as_int()).unwrap_or(2048),
            tie_word_embeddings: !file.tensors.iter().any(|t| t.name == "output.weight"),
            qkv_bias: family == Family::Qwen2,
            out_bias: false,
            sliding_window: None,
            activation: "silu".into(),
            bos_token_id: file.get("tokenizer.ggml.bos_token_id").and_then(|v| v.as_int()),
            eos_token_ids: file.get("tokenizer.ggml.eos_token_id").and_then(|v| v.as_int()).into_iter().collect(),
            pad_token_id: file.get("tokenizer.ggml.padding_token_id").and_then(|v| v.as_int()),
        };
        if file.get(&key("rope.scaling.type")).and_then(|v| v.as_str()).is_some_and(|t| t != "none") {
            bail!("this GGUF uses RoPE scaling, which this build does not implement");
        }
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<()> {
        if self.num_kv_heads == 0 || self.num_heads % self.num_kv_heads != 0 {
            bail!("{} query heads do not split evenly over {} key/value heads", self.num_heads, self.num_kv_heads);
        }
        if self.head_dim % 2 != 0 {
            bail!("head size {} is odd; RoPE needs an even head size", self.head_dim);
        }
        Ok(())
    }

    /// The `config.json` transformers reads back for this configuration.
    pub fn to_json(&self, dtype: &str) -> Json {
        let eos = match self.eos_token_ids.as_slice() {
            [one] => Json::from(*one),
            many => Json::from(many.to_vec()),
        };
        let mut c = if self.family == Family::Gpt2 {
            serde_json::json!({
                "n_embd": self.hidden_size, "n_layer": self.num_layers, "n_head": self.num_heads, "n_positions": self.max_positions,
                "n_inner": self.intermediate_size, "layer_norm_epsilon": self.norm_eps, "activation_function": self.activation,
                "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
            })
        } else {
            serde_json::json!({
                "hidden_size": self.hidden_size, "intermediate_size": self.intermediate_size, "num_hidden_layers": self.num_layers,
                "num_attention_heads": self.num_heads, "num_key_value_heads": self.num_kv_heads, "head_dim": self.head_dim,
                "rope_theta": self.rope_theta, "rms_norm_eps": self.norm_eps, "max_position_embeddings": self.max_positions,
                "hidden_act": self.activation, "attention_bias": self.qkv_bias && self.family != Family::Qwen2, "mlp_bias": self.out_bias,
                "attention_dropout": 0.0,
            })
        };
        let m = c.as_object_mut().expect("an object");
        m.insert("model_type".into(), self.family.model_type().into());
        m.insert("architectures".into(), serde_json::json!([self.family.causal_lm_class()]));
        m.insert("vocab_size".into(), self.vocab_size.into());
        m.insert("tie_word_embeddings".into(), self.tie_word_embeddings.into());
        m.insert("bos_token_id".into(), self.bos_token_id.into());
        m.insert("eos_token_id".into(), eos);
        m.insert("pad_token_id".into(), self.pad_token_id.into());
        m.insert("torch_dtype".into(), dtype.into());
        if self.family == Family::Gemma {
            m.insert("hidden_activation".into(), self.activation.clone().into());
        }
        if self.family == Family::Mistral {
            m.insert("sliding_window".into(), self.sliding_window.into());
        }
        c
    }
}
