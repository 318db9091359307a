//! Weight names and layouts between the checkpoint formats and the model:
//! Hugging Face folders (single or sharded safetensors, GPT-2's `Conv1D`
//! weights and prefix-less names) and llama.cpp's GGUF names, whose query
//! and key rows the converter permuted for its RoPE kernel.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::Value as Json;
use tch::Tensor;

use super::CausalModel;
use crate::model::arch::decoder_config::{DecoderConfig, Family};
use crate::model::arch::gpt2::CONV1D_WEIGHTS;
use crate::model::weights::gguf::{GgufFile, Value};
use crate::model::weights::hf;

/// Every tensor of a folder's checkpoint, renamed and laid out as the model
/// holds them.
pub(super) fn read_folder_weights(dir: &Path, config: &DecoderConfig) -> Result<Vec<(String, Tensor)>> {
    let index = dir.join("model.safetensors.index.json");
    let raw = if index.exists() {
        let text = std::fs::read_to_string(&index).with_context(|| format!("cannot read {}", index.display()))?;
        let parsed: Json = serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", index.display()))?;
        let map = parsed.get("weight_map").and_then(Json::as_object).with_context(|| format!("{} has no weight_map", index.display()))?;
        let mut shards: Vec<&str> = map.values().filter_map(Json::as_str).collect();
        shards.sort();
        shards.dedup();
        let mut all = Vec::new();
        for shard in shards {
            let file = dir.join(shard);
            if !file.exists() {
                bail!("{} names the shard {shard}, which is not in the folder", index.display());
            }
            all.extend(hf::read_checkpoint(&file)?);
        }
        all
    } else {
        hf::read_checkpoint(&hf::weights_file(dir)?)?
    };
    Ok(raw.into_iter().filter_map(|(n, t)| from_checkpoint(config, n, t)).collect())
}

/// A checkpoint tensor in the model's name and layout; `None` for buffers.
fn from_checkpoint(config: &DecoderConfig, name: String, t: Tensor) -> Option<(String, Tensor)> {
    if config.family != Family::Gpt2 {
        return Some((name, t));
    }
    // Old GPT-2 checkpoints have no `transformer.` prefix, and keep the
    // causal mask as a buffer.
    let name = if name.starts_with("transformer.") || name.starts_with("lm_head.") { name } else { format!("transformer.{name}") };
    if name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias") {
        return None;
    }
    let t = if CONV1D_WEIGHTS.iter().any(|w| name.ends_with(w)) { t.tr().contiguous() } else { t };
    Some((name, t))
}

/// A model tensor as the Hugging Face checkpoint stores it.
pub(super) fn to_checkpoint(config: &DecoderConfig, name: String, t: Tensor) -> (String, Tensor) {
    let t = t.detach();
    if config.family == Family::Gpt2 && CONV1D_WEIGHTS.iter().any(|w| name.ends_with(w)) {
        return (name, t.tr().contiguous());
    }
    (name, t)
}

/// The model's names of llama.cpp's per-layer tensors.
const LAYER_NAMES: &[(&str, &str)] = &[
    ("attn_norm", "input_layernorm"),
    ("attn_q", "self_attn.q_proj"),
    ("attn_k", "self_attn.k_proj"),
    ("attn_v", "self_attn.v_proj"),
    ("attn_output", "self_attn.o_proj"),
    ("ffn_norm", "post_attention_layernorm"),
    ("ffn_gate", "mlp.gate_proj"),
    ("ffn_up", "mlp.up_proj"),
    ("ffn_down", "mlp.down_proj"),
];

/// The model's name for a GGUF tensor name, if it is one of the model's.
fn hf_name(gguf_name: &str) -> Option<String> {
    match gguf_name {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = gguf_name.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, param) = rest.rsplit_once('.')?;
    let (_, hf) = LAYER_NAMES.iter().find(|(g, _)| *g == module)?;
    Some(format!("model.layers.{layer}.{hf}.{param}"))
}

fn gguf_name(hf_name: &str) -> Option<String> {
    match hf_name {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf_name.strip_prefix("model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (module, param) = rest.rsplit_once('.')?;
    let (g, _) = LAYER_NAMES.iter().find(|(_, h)| *h == module)?;
    Some(format!("blk.{layer}.{g}.{param}"))
}

/// llama.cpp's RoPE layout: within each head, the rows of the two halves
/// interleaved (`convert_hf_to_gguf`'s `permute`).
fn permute(w: &Tensor, heads: i64) -> Tensor {
    let size = w.size();
    let mut shape = vec![heads, 2, size[0] / heads / 2];
    shape.extend_from_slice(&size[1..]);
    w.reshape(shape.as_slice()).transpose(1, 2).reshape(size.as_slice())
}

/// The inverse of `permute`.
fn unpermute(w: &Tensor, heads: i64) -> Tensor {
    let size = w.size();
    let mut shape = vec![heads, size[0] / heads / 2, 2];
    shape.extend_from_slice(&size[1..]);
    w.reshape(shape.as_slice()).transpose(1, 2).reshape(size.as_slice())
}

/// Whether a family's GGUF converter permutes the query and key rows.
fn permutes_qk(family: Family) -> bool {
    matches!(family, Family::Llama | Family::Mistral)
}

/// The GGUF's tensors in the model's names, dequantized, with the query
/// and key rows back in transformers' order.
pub(super) fn from_gguf_names(file: &GgufFile, config: &DecoderConfig) -> Result<Vec<(String, Tensor)>> {
    let mut out = Vec::new();
    for info in &file.tensors {
        let Some(name) = hf_name(&info.name) else {
            if info.name == "rope_freqs.weight" {
                bail!("this GGUF carries rope_freqs (RoPE scaling), which this build does not implement");
            }
            continue;
        };
        let mut t = file.tensor(info);
        if permutes_qk(config.family) {
            if name.ends_with("q_proj.weight") {
                t = unpermute(&t, config.num_heads);
            } else if name.ends_with("k_proj.weight") {
                t = unpermute(&t, config.num_kv_heads);
            }
        }
        out.push((name, t));
    }
    Ok(out)
}

/// The pre-tokenizer's GGUF name for a `tokenizer.json` pre-tokenizer.
fn pre_tokenizer_name(json: &Json) -> &'static str {
    let text = json.to_string();
    if text.contains("\"Digits\"") && text.contains("\"individual_digits\":true") {
        "smollm"
    } else if text.contains(r"\\p{N}{1,3}") {
        "llama-bpe"
    } else if text.contains("\"Split\"") {
        "qwen2"
    } else {
        "gpt2"
    }
}

/// The GGUF metadata and tensors (llama.cpp's names and layout) of a
/// Llama-family model.
pub(super) fn to_gguf(model: &CausalModel) -> Result<(BTreeMap<String, Value>, Vec<(String, Tensor)>)> {
    let c = &model.config;
    let arch = match c.family {
        Family::Llama | Family::Mistral => "llama",
        Family::Qwen2 => "qwen2",
        other => bail!("saving {} as GGUF is not supported; GGUF saving covers Llama, Mistral and Qwen2 (save a folder instead)", other.model_type()),
    };
    if c.sliding_window.is_some() {
        bail!("this model uses sliding-window attention, which a llama GGUF cannot express; save a folder instead");
    }
    let tokenizer_json: Json = serde_json::from_str(&model.tokenizer.to_string(false).map_err(|e| anyhow::anyhow!("{e}"))?)?;
    let bpe = &tokenizer_json["model"];
    if bpe["type"] != "BPE" {
        bail!("GGUF saving needs a byte-level BPE tokenizer; this one is {}", bpe["type"]);
    }
    let vocab = bpe["vocab"].as_object().context("the tokenizer has no vocabulary")?;
    let mut tokens = vec![String::new(); c.vocab_size as usize];
    for (tok, id) in vocab {
        if let Some(slot) = id.as_u64().and_then(|i| tokens.get_mut(i as usize)) {
            *slot = tok.clone();
        }
    }
    let mut types = vec![1i64; tokens.len()];
    for added in tokenizer_json["added_tokens"].as_array().into_iter().flatten() {
        if let (Some(id), Some(content)) = (added["id"].as_u64(), added["content"].as_str()) {
            if let Some(slot) = tokens.get_mut(id as usize) {
                *slot = content.to_string();
                types[id as usize] = if added["special"] == true { 3 } else { 4 };
            }
        }
    }
    let merges: Vec<Value> = bpe["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| match m {
            Json::String(s) => Value::Str(s.clone()),
            Json::Array(pair) => Value::Str(format!("{} {}", pair[0].as_str().unwrap_or(""), pair[1].as_str().unwrap_or(""))),
            _ => Value::Str(String::new()),
        })
        .collect();
    let key = |k: &str| format!("{arch}.{k}");
    let mut m = BTreeMap::new();
    let mut put = |k: String, v: Value| {
        m.insert(k, v);
    };
    put("general.architecture".into(), Value::Str(arch.into()));
    put("general.name".into(), Value::Str(model.name.clone()));
    put(key("block_count"), Value::Int(c.num_layers));
    put(key("context_length"), Value::Int(c.max_positions));
    put(key("embedding_length"), Value::Int(c.hidden_size));
    put(key("feed_forward_length"), Value::Int(c.intermediate_size));
    put(key("attention.head_count"), Value::Int(c.num_heads));
    put(key("attention.head_count_kv"), Value::Int(c.num_kv_heads));
    put(key("rope.freq_base"), Value::Float(c.rope_theta));
    put(key("attention.layer_norm_rms_epsilon"), Value::Float(c.norm_eps));
    put(key("rope.dimension_count"), Value::Int(c.head_dim));
    put(key("vocab_size"), Value::Int(c.vocab_size));
    put("tokenizer.ggml.model".into(), Value::Str("gpt2".into()));
    put("tokenizer.ggml.pre".into(), Value::Str(pre_tokenizer_name(&tokenizer_json["pre_tokenizer"]).into()));
    put("tokenizer.ggml.tokens".into(), Value::Array(tokens.into_iter().map(Value::Str).collect()));
    put("tokenizer.ggml.token_type".into(), Value::Array(types.into_iter().map(Value::Int).collect()));
    put("tokenizer.ggml.merges".into(), Value::Array(merges));
    put("tokenizer.ggml.add_bos_token".into(), Value::Bool(model.add_bos));
    for (k, id) in [("bos_token_id", c.bos_token_id), ("eos_token_id", c.eos_token_ids.first().copied()), ("padding_token_id", c.pad_token_id)] {
        if let Some(id) = id {
            put(format!("tokenizer.ggml.{k}"), Value::Int(id));
        }
    }
    if let Some(t) = &model.chat_template {
        put("tokenizer.chat_template".into(), Value::Str(t.clone()));
    }
    let mut tensors = Vec::new();
    for (name, t) in model.checkpoint_tensors() {
        let g = gguf_name(&name).with_context(|| format!("no GGUF name for {name}"))?;
        let t = t.to_kind(tch::Kind::Float);
        let t = if permutes_qk(c.family) && name.ends_with("q_proj.weight") {
            permute(&t, c.num_heads)
        } else if permutes_qk(c.family) && name.ends_with("k_proj.weight") {
            permute(&t, c.num_kv_heads)
        } else {
            t
        };
        tensors.push((g, t));
    }
    Ok((m, tensors))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permute_and_unpermute_are_inverse_and_names_round_trip() {
        let w = Tensor::arange(8 * 3, (tch::Kind::Float, tch::Device::Cpu)).view([8, 3]);
        let p = permute(&w, 2);
        assert_ne!(p, w);
        assert_eq!(unpermute(&p, 2), w);
        // Head 0's rows [0 1 2 3] interleave their halves: [0 2 1 3].
        assert_eq!(Vec::<f32>::try_from(p.select(1, 0)).unwrap()[..4], [0.0, 6.0, 3.0, 9.0]);
        for n in ["model.layers.3.self_attn.k_proj.weight", "model.layers.0.mlp.down_proj.weight", "lm_head.weight", "model.norm.weight"] {
            assert_eq!(hf_name(&gguf_name(n).unwrap()).as_deref(), Some(n));
        }
    }
}
