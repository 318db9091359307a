//! Text generation with a causal language model: a KV cache, greedy
//! decoding or sampling (temperature, top-k, top-p, repetition penalty, as
//! transformers' logits processors apply them), stop on EOS or stop
//! strings, batches with left padding, text streamed as it is decoded.

use anyhow::{bail, Result};
use rand::{Rng, SeedableRng};
use tch::{Device, Kind, Tensor};

use crate::model::CausalModel;
use crate::runtime::precision::Precision;

/// How `generate` decodes.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Tokens to generate at most, per prompt.
    pub max_new_tokens: usize,
    /// 0 decodes greedily; above 0 samples from `softmax(logits / t)`.
    pub temperature: f64,
    /// Sample among the `k` likeliest tokens only (0: all).
    pub top_k: usize,
    /// Sample among the likeliest tokens whose probabilities sum to `p` (1: all).
    pub top_p: f64,
    /// Divides the scores of tokens already present (1: none), as in CTRL.
    pub repetition_penalty: f64,
    /// Seed of the sampler (generation does not touch torch's generator).
    pub seed: u64,
    /// Texts that end generation; the text returned stops before them.
    pub stop: Vec<String>,
    /// Reuse keys and values of earlier positions (off only for checks).
    pub use_cache: bool,
    /// The forward passes' autocast (the scores are read in fp32).
    pub precision: Precision,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self { max_new_tokens: 64, temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0, stop: Vec::new(), use_cache: true, precision: Precision::Fp32 }
    }
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// The model produced an end-of-sequence token.
    Eos,
    /// A stop string appeared.
    Stop,
    /// `max_new_tokens`, or the model's context, was reached.
    Length,
    /// An interrupt stopped generation.
    Interrupted,
}

impl Finish {
    /// The name scripts see.
    pub fn name(self) -> &'static str {
        match self {
            Self::Eos => "eos",
            Self::Stop => "stop",
            Self::Length => "length",
            Self::Interrupted => "interrupted",
        }
    }
}

/// One prompt's continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The new tokens (without the EOS token, up to a stop string's token).
    pub ids: Vec<i64>,
    /// Their text, special tokens left out, cut before a stop string.
    pub text: String,
    /// Why it ended.
    pub finish: Finish,
}

/// Per-sequence decoding state: what it has produced and what of its text
/// has been streamed.
struct Sequence {
    prompt: Vec<i64>,
    ids: Vec<i64>,
    shown: usize,
    finish: Option<Finish>,
    text: String,
}

/// Applies transformers' repetition penalty to `scores` for every token in `seen`.
fn penalize(scores: &mut [f32], seen: &[i64], penalty: f64) {
    let mut done = std::collections::HashSet::new();
    for &t in seen {
        if done.insert(t) {
            if let Some(s) = scores.get_mut(t as usize) {
                *s = if *s < 0.0 { *s * penalty as f32 } else { *s / penalty as f32 };
            }
        }
    }
}

/// Samples a token from `scores` after temperature, top-k and top-p.
fn sample(scores: &mut [f32], opts: &GenerateOptions, rng: &mut impl Rng) -> i64 {
    for s in scores.iter_mut() {
        *s /= opts.temperature as f32;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut keep = order.len();
    if opts.top_k > 0 && opts.top_k < keep {
        // Ties with the k-th score stay, as transformers keeps them.
        let kth = scores[order[opts.top_k - 1]];
        keep = order.iter().take_while(|&&i| scores[i] >= kth).count();
    }
    let max = scores[order[0]];
    let weights: Vec<f64> = order[..keep].iter().map(|&i| ((scores[i] - max) as f64).exp()).collect();
    let total: f64 = weights.iter().sum();
    if opts.top_p < 1.0 {
        let mut mass = 0.0;
        let mut n = 0;
        for w in &weights {
            mass += w / total;
            n += 1;
            if mass >= opts.top_p {
                break;
            }
        }
        keep = n.max(1);
    }
    let total: f64 = weights[..keep].iter().sum();
    let mut r = rng.random::<f64>() * total;
    for (i, w) in weights[..keep].iter().enumerate() {
        r -= w;
        if r <= 0.0 {
            return order[i] as i64;
        }
    }
    order[keep - 1] as i64
}

/// The text to show now of `text`, holding back what could still become a
/// stop string or is a partial character.
fn showable(text: &str, stops: &[String]) -> usize {
    let mut end = text.len();
    if text.ends_with('\u{FFFD}') {
        end -= '\u{FFFD}'.len_utf8();
    }
    for stop in stops {
        for k in (1..stop.len()).rev() {
            if stop.is_char_boundary(k) && text[..end].ends_with(&stop[..k]) {
                end = end.min(text.len() - k);
                break;
            }
        }
    }
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    end
}

/// Continues each prompt (token ids). `on_text(i, delta)` receives each
/// sequence's text as it grows; `stopped()` is polled before every token,
/// and generation ends with what it has when it says so.
pub fn generate(model: &CausalModel, prompts: &[Vec<i64>], opts: &GenerateOptions, on_text: &mut dyn FnMut(usize, &str), stopped: &dyn Fn() -> bool) -> Result<Vec<Generated>> {
    if prompts.is_empty() {
        return Ok(Vec::new());
    }
    let context = model.config.max_positions as usize;
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            bail!("prompt {} is empty; give the model at least one token", i + 1);
        }
        if p.len() >= context {
            bail!("prompt {} has {} tokens; the model's context is {context} tokens: shorten it to at most {}", i + 1, p.len(), context - 1);
        }
    }
    let device = model.device();
    let pad = model.config.pad_token_id.or(model.config.eos_token_ids.first().copied()).unwrap_or(0);
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let max_new = opts.max_new_tokens.min(context - longest);
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let mut seqs: Vec<Sequence> = prompts.iter().map(|p| Sequence { prompt: p.clone(), ids: Vec::new(), shown: 0, finish: None, text: String::new() }).collect();

    // Left padding: every prompt ends at the same column.
    let rows: Vec<Vec<i64>> = prompts.iter().map(|p| std::iter::repeat(pad).take(longest - p.len()).chain(p.iter().copied()).collect()).collect();
    let masks: Vec<Vec<i64>> = prompts.iter().map(|p| std::iter::repeat(0).take(longest - p.len()).chain(std::iter::repeat(1).take(p.len())).collect()).collect();
    let b = prompts.len() as i64;
    let mut all_ids = Tensor::from_slice(&rows.concat()).view([b, longest as i64]).to_device(device);
    let mut mask = Tensor::from_slice(&masks.concat()).view([b, longest as i64]).to_device(device);
    let mut cache = opts.use_cache.then(|| model.new_cache());
    let mut step_ids = all_ids.shallow_clone();
    let _no_grad = tch::no_grad_guard();
    // One guard for the whole loop, so that weights are cast once, not per token.
    let _autocast = opts.precision.enter(device);

    for _ in 0..max_new {
        if stopped() {
            for s in seqs.iter_mut().filter(|s| s.finish.is_none()) {
                s.finish = Some(Finish::Interrupted);
            }
            break;
        }
        // Positions count real tokens, so left padding does not shift them.
        let positions = (mask.cumsum(1, Kind::Int64) - 1).clamp_min(0);
        let (ids_in, pos_in) = match &cache {
            Some(c) if c[0].k.is_some() => (step_ids.shallow_clone(), positions.narrow(1, positions.size()[1] - 1, 1)),
            _ => (all_ids.shallow_clone(), positions),
        };
        let logits = model.forward_step(&ids_in, &pos_in, &mask, cache.as_mut(), false, true);
        let last = logits.select(1, -1).to_kind(Kind::Float).to_device(Device::Cpu);
        let mut next = Vec::with_capacity(seqs.len());
        for (i, s) in seqs.iter_mut().enumerate() {
            if s.finish.is_some() {
                next.push(pad);
                continue;
            }
            let row = last.get(i as i64);
            let token = if opts.temperature <= 0.0 && opts.repetition_penalty == 1.0 {
                row.argmax(-1, false).int64_value(&[])
            } else {
                let mut scores = Vec::<f32>::try_from(&row)?;
                if opts.repetition_penalty != 1.0 {
                    let seen: Vec<i64> = s.prompt.iter().chain(&s.ids).copied().collect();
                    penalize(&mut scores, &seen, opts.repetition_penalty);
                }
                if opts.temperature <= 0.0 {
                    Tensor::from_slice(&scores).argmax(-1, false).int64_value(&[])
                } else {
                    sample(&mut scores, opts, &mut rng)
                }
            };
            next.push(token);
            if model.config.eos_token_ids.contains(&token) {
                s.finish = Some(Finish::Eos);
            } else {
                s.ids.push(token);
                s.text = model.decode(&s.ids, true)?;
                if let Some(at) = opts.stop.iter().filter_map(|stop| s.text.find(stop.as_str())).min() {
                    s.text.truncate(at);
                    s.finish = Some(Finish::Stop);
                }
            }
            let end = if s.finish.is_some() { s.text.len() } else { showable(&s.text, &opts.stop) };
            if end > s.shown {
                on_text(i, &s.text[s.shown..end]);
                s.shown = end;
            }
        }
        if seqs.iter().all(|s| s.finish.is_some()) {
            break;
        }
        step_ids = Tensor::from_slice(&next).view([b, 1]).to_device(device);
        all_ids = Tensor::cat(&[&all_ids, &step_ids], 1);
        mask = Tensor::cat(&[&mask, &Tensor::ones([b, 1], (Kind::Int64, device))], 1);
    }
    Ok(seqs
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            if s.shown < s.text.len() {
                on_text(i, &s.text[s.shown..]);
            }
            s.shown = s.text.len();
            Generated { ids: s.ids, text: s.text, finish: s.finish.unwrap_or(Finish::Length) }
        })
        .collect())
}

/// The mean loss (nats per token) and perplexity of a causal language
/// model on each text, and over all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct TextLoss {
    /// Tokens scored (each text's tokens after its first).
    pub tokens: usize,
    /// Mean next-token cross-entropy over those tokens.
    pub loss: f64,
    /// `exp(loss)`.
    pub perplexity: f64,
}

/// Scores plain texts: the next-token loss over every position, as
/// transformers' `labels=input_ids` computes it, texts longer than the
/// context cut to it; the forward passes under `precision`'s autocast, the
/// loss in fp32.
pub fn text_loss(model: &CausalModel, texts: &[String], precision: Precision) -> Result<TextLoss> {
    let (mut total, mut count) = (0.0f64, 0usize);
    let context = model.config.max_positions as usize;
    let _no_grad = tch::no_grad_guard();
    for text in texts {
        let mut ids = model.encode(text)?;
        ids.truncate(context);
        if ids.len() < 2 {
            continue;
        }
        let n = ids.len() as i64;
        let input = Tensor::from_slice(&ids).view([1, n]);
        let logits = precision.run(model.device(), || model.logits(&input, &Tensor::ones([1, n], (Kind::Int64, Device::Cpu)))).to_kind(Kind::Float).to_device(Device::Cpu);
        let predicted = logits.narrow(1, 0, n - 1).view([n - 1, -1]);
        let targets = input.narrow(1, 1, n - 1).view([n - 1]);
        let loss = predicted.cross_entropy_loss::<Tensor>(&targets, None, tch::Reduction::Sum, -100, 0.0).double_value(&[]);
        total += loss;
        count += (n - 1) as usize;
    }
    if count == 0 {
        bail!("no text has two tokens or more; give evaluate texts to score");
    }
    let loss = total / count as f64;
    Ok(TextLoss { tokens: count, loss, perplexity: loss.exp() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showable_holds_back_a_possible_stop_string() {
        let stops = vec!["\nUser:".to_string()];
        assert_eq!(showable("Hello\nUs", &stops), 5);
        assert_eq!(showable("Hello", &stops), 5);
    }

    #[test]
    fn top_k_one_is_greedy_and_penalty_divides_positive_scores() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let opts = GenerateOptions { temperature: 1.0, top_k: 1, ..Default::default() };
        for _ in 0..20 {
            assert_eq!(sample(&mut [0.1, 2.0, 1.9], &opts, &mut rng), 1);
        }
        let mut s = [2.0, -2.0, 1.0];
        penalize(&mut s, &[0, 1, 1], 2.0);
        assert_eq!(s, [1.0, -4.0, 1.0]);
    }

    #[test]
    fn top_p_keeps_the_smallest_set_reaching_p() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Probabilities about 0.67, 0.24, 0.09: p = 0.6 keeps only the first.
        let opts = GenerateOptions { temperature: 1.0, top_p: 0.6, ..Default::default() };
        for _ in 0..20 {
            assert_eq!(sample(&mut [2.0, 1.0, 0.0], &opts, &mut rng), 0);
        }
    }
}
