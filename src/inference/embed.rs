//! Sentence embeddings from a text model.

use anyhow::Result;
use tch::{Device, Kind, Tensor};

use super::encode_texts;
use crate::model::TextModel;

/// Sentence embeddings: the mean of the last hidden states over real
/// tokens, L2-normalized (as sentence-transformers computes them for
/// all-MiniLM-L6-v2). `[texts, hidden]` on the CPU.
pub fn embed(model: &TextModel, texts: &[String], max_len: usize) -> Result<Tensor> {
    let data = encode_texts(model, texts, None, max_len)?;
    let _guard = tch::no_grad_guard();
    let rows: Vec<usize> = (0..texts.len()).collect();
    let mut parts = Vec::new();
    for chunk in rows.chunks(64) {
        let batch = data.collate(chunk, model.device());
        let crate::data::Inputs::Text { input_ids, token_type_ids, attention_mask } = &batch.inputs else { unreachable!("texts collate to text inputs") };
        let hidden = model.hidden_states(input_ids, token_type_ids, attention_mask, false);
        let pooled = crate::model::mean_pool(&hidden, attention_mask);
        let norm = pooled.norm_scalaropt_dim(2.0, [-1i64].as_slice(), true).clamp_min(1e-12);
        parts.push((pooled / norm).to_device(Device::Cpu));
    }
    if parts.is_empty() {
        return Ok(Tensor::zeros([0, model.config.hidden_size], (Kind::Float, Device::Cpu)));
    }
    Ok(Tensor::cat(&parts, 0))
}

