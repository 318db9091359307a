//! Supervised fine-tuning in scripts: chat datasets (from JSON Lines or
//! `dataset(rows)`), tokenizing them (or plain texts) for a language model,
//! and LoRA on language models. `fit`, `evaluate` and `loader` are the
//! encoders' own.

use std::path::Path;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::handles::{DatasetHandle, TokensHandle};
use super::language::LanguageModelHandle;
use crate::data::chat::{tokenize_examples, tokenize_texts, ChatDataset, Example, SftOptions, SftReport, TrainOn};
use crate::model::layers::LoraConfig;
use crate::script::options::{script_error, Options};
use crate::script::{guard, Context};

type R<T> = Result<T, Box<EvalAltResult>>;

/// Examples for supervised fine-tuning.
#[derive(Clone)]
pub(crate) struct ChatDatasetHandle(pub Rc<ChatDataset>);

/// A chat dataset when `path` is a JSON Lines file of examples.
pub(super) fn load_if_chat(path: &str) -> R<Option<Dynamic>> {
    let p = Path::new(path);
    if !(path.ends_with(".jsonl") && ChatDataset::is_chat_file(p)) {
        return Ok(None);
    }
    Ok(Some(Dynamic::from(ChatDatasetHandle(Rc::new(guard(|| ChatDataset::from_jsonl(p))?)))))
}

/// A chat dataset when the rows are examples (`messages`, `prompt` and
/// `completion`, or `instruction` and `output`).
pub(super) fn rows_if_chat(rows: &Array) -> R<Option<Dynamic>> {
    let Some(first) = rows.first().and_then(|r| r.clone().try_cast::<Map>()) else { return Ok(None) };
    let first = rhai::serde::from_dynamic::<serde_json::Value>(&Dynamic::from(first)).map_err(|e| script_error(format!("dataset: {e}")))?;
    if !Example::is_example_row(&first) {
        return Ok(None);
    }
    let examples = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let json = rhai::serde::from_dynamic::<serde_json::Value>(r).map_err(|e| script_error(format!("dataset: row {}: {e}", i + 1)))?;
            Example::from_json(&json, &format!("dataset: row {}", i + 1)).map_err(|e| script_error(e.to_string()))
        })
        .collect::<R<Vec<_>>>()?;
    Ok(Some(Dynamic::from(ChatDatasetHandle(Rc::new(ChatDataset { name: "rows".into(), examples })))))
}

fn sft_options(o: &Options, model: &crate::model::CausalModel) -> R<SftOptions> {
    let max_len = o.int("max_len", 512, 2, 1_000_000)? as usize;
    if max_len as i64 > model.config.max_positions {
        return Err(script_error(format!("tokenize: max_len {max_len} is longer than the model's context of {} tokens", model.config.max_positions)));
    }
    let train_on = match o.choice("train_on", "answers", &["answers", "all"])?.as_str() {
        "all" => TrainOn::All,
        _ => TrainOn::Answers,
    };
    let drop_long = o.choice("overflow", "truncate", &["truncate", "drop"])? == "drop";
    Ok(SftOptions { max_len, train_on, drop_long })
}

/// Says what tokenizing cut or dropped, in one line.
fn report(ctx: &Context, rows: usize, r: &SftReport) {
    let mut parts = Vec::new();
    if r.truncated > 0 {
        parts.push(format!("{} cut to max_len", r.truncated));
    }
    if r.dropped > 0 {
        parts.push(format!("{} longer than max_len dropped", r.dropped));
    }
    if r.without_answer > 0 {
        parts.push(format!("{} with no answer token left after cutting (they teach nothing; raise max_len)", r.without_answer));
    }
    if !parts.is_empty() {
        ctx.host.print(&format!("note: of {} rows, {}", rows + r.dropped, parts.join("; ")));
    }
}

fn lora_config(m: &LanguageModelHandle, opts: Map) -> R<LoraConfig> {
    let o = Options::new("add_lora", opts)?;
    let targets = match o.get("targets") {
        None => m.0.borrow().default_lora_targets(),
        Some(v) if v.is_string() => vec![v.clone().into_string().unwrap()],
        Some(v) => v
            .clone()
            .try_cast::<Array>()
            .ok_or_else(|| script_error("add_lora: 'targets' must be a string or an array of strings"))?
            .into_iter()
            .map(|t| t.into_string().map_err(|t| script_error(format!("add_lora: targets are strings, found a {t}"))))
            .collect::<R<_>>()?,
    };
    Ok(LoraConfig { r: o.int("r", 8, 1, 4096)?, alpha: o.float("alpha", 16.0, 1e-6, 1e6)?, dropout: o.float("dropout", 0.05, 0.0, 0.99)?, targets, rslora: o.bool("rslora", false)?, dora: o.bool("dora", false)? })
}

pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
    engine.register_type_with_name::<ChatDatasetHandle>("ChatDataset");
    engine.register_fn("len", |d: &mut ChatDatasetHandle| d.0.len() as i64);
    engine.register_fn("take", |d: &mut ChatDatasetHandle, n: i64| ChatDatasetHandle(Rc::new(d.0.take(n.max(0) as usize))));
    engine.register_fn("split", |d: &mut ChatDatasetHandle, opts: Map| -> R<Map> {
        let o = Options::new("split (chat)", opts)?;
        let n = d.0.len();
        let val = o.float("val", 0.1, 0.0, n as f64)?;
        let val_rows = if val < 1.0 { (val * n as f64).round() as usize } else { val as usize };
        if val_rows == 0 || val_rows >= n {
            return Err(script_error(format!("split: 'val' leaves {val_rows} of {n} examples for validation; give a share such as 0.1 or a count below {n}")));
        }
        let mut order: Vec<usize> = (0..n).collect();
        use rand::seq::SliceRandom;
        order.shuffle(&mut <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(o.int("seed", 0, 0, i64::MAX)? as u64));
        let mut parts = Map::new();
        parts.insert("val".into(), Dynamic::from(ChatDatasetHandle(Rc::new(d.0.subset(&order[..val_rows])))));
        parts.insert("train".into(), Dynamic::from(ChatDatasetHandle(Rc::new(d.0.subset(&order[val_rows..])))));
        Ok(parts)
    });
    engine.register_fn("to_string", |d: &mut ChatDatasetHandle| format!("ChatDataset {} ({} examples)", d.0.name, d.0.len()));
    engine.register_fn("to_debug", |d: &mut ChatDatasetHandle| format!("ChatDataset {} ({} examples)", d.0.name, d.0.len()));

    let c = ctx.clone();
    let tokenize_chat = move |d: &mut ChatDatasetHandle, m: LanguageModelHandle, opts: Map| -> R<TokensHandle> {
        let o = Options::new("tokenize (language model)", opts)?;
        let model = m.0.borrow();
        let sft = sft_options(&o, &model)?;
        let (tokens, r) = guard(|| tokenize_examples(&d.0, &*model, sft))?;
        report(&c, tokens.len(), &r);
        Ok(TokensHandle(std::sync::Arc::new(tokens)))
    };
    let t = tokenize_chat.clone();
    engine.register_fn("tokenize", tokenize_chat);
    engine.register_fn("tokenize", move |d: &mut ChatDatasetHandle, m: LanguageModelHandle| t(d, m, Map::new()));
    let c = ctx.clone();
    let tokenize_plain = move |d: &mut DatasetHandle, m: LanguageModelHandle, opts: Map| -> R<TokensHandle> {
        let o = Options::new("tokenize (language model)", opts)?;
        let model = m.0.borrow();
        let sft = sft_options(&o, &model)?;
        let (tokens, r) = guard(|| tokenize_texts(&d.0.name, &d.0.texts, &*model, sft))?;
        report(&c, tokens.len(), &r);
        Ok(TokensHandle(std::sync::Arc::new(tokens)))
    };
    let t = tokenize_plain.clone();
    engine.register_fn("tokenize", tokenize_plain);
    engine.register_fn("tokenize", move |d: &mut DatasetHandle, m: LanguageModelHandle| t(d, m, Map::new()));

    engine.register_fn("row", |t: &mut TokensHandle, i: i64| -> R<Map> {
        let n = t.0.len();
        let i = usize::try_from(i).ok().filter(|&i| i < n).ok_or_else(|| script_error(format!("row: index {i} is outside 0..{n}")))?;
        let mut m = Map::new();
        m.insert("text".into(), Dynamic::from(t.0.texts.get(i).cloned().unwrap_or_default()));
        m.insert("input_ids".into(), Dynamic::from(t.0.input_ids[i].iter().map(|&x| Dynamic::from(x as i64)).collect::<Array>()));
        if let Some(labels) = &t.0.token_labels {
            m.insert("labels".into(), Dynamic::from(labels[i].iter().map(|&x| Dynamic::from(x)).collect::<Array>()));
        }
        Ok(m)
    });
    engine.register_fn("add_lora", |m: &mut LanguageModelHandle| -> R<String> { add_lora(m, Map::new()) });
    engine.register_fn("add_lora", |m: &mut LanguageModelHandle, opts: Map| -> R<String> { add_lora(m, opts) });
    engine.register_fn("merge_lora", |m: &mut LanguageModelHandle| -> R<i64> { guard(|| Ok(m.0.borrow_mut().merge_lora()? as i64)) });
    engine.register_fn("save_adapter", |m: &mut LanguageModelHandle, path: &str| -> R<String> { guard(|| Ok(m.0.borrow().save_adapter(Path::new(path))?.display().to_string())) });
    engine.register_fn("load_adapter", |m: &mut LanguageModelHandle, path: &str| -> R<()> { guard(|| m.0.borrow_mut().load_adapter(Path::new(path))) });
}

fn add_lora(m: &mut LanguageModelHandle, opts: Map) -> R<String> {
    let config = lora_config(m, opts)?;
    let changed = guard(|| m.0.borrow_mut().add_lora(&config))?;
    let model = m.0.borrow();
    let s = crate::model::Learner::summary(&*model);
    Ok(format!(
        "LoRA r={} alpha={} on {} layers; trainable {} of {} parameters ({})",
        config.r,
        config.alpha,
        changed.len(),
        crate::numbers::group_digits(s.trainable()),
        crate::numbers::group_digits(s.total()),
        crate::numbers::percent(s.trainable(), s.total())
    ))
}
