//! Language models in scripts: `generate`, `apply_chat_template`,
//! `evaluate(model, texts)`, the tokenizer's `tokens`, `encode` and
//! `decode`, and saving to a folder or a GGUF file. Freezing, summaries and
//! parameters come from `learner::register`, which `api::register` calls
//! for each kind of model.

use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::handles::Shared;
use crate::inference::{generate, text_loss, GenerateOptions};
use crate::model::causal::Message;
use crate::model::weights::gguf::SaveType;
use crate::model::CausalModel;
use crate::script::options::{script_error, Options};
use crate::script::{guard, Context};

type R<T> = Result<T, Box<EvalAltResult>>;

/// A language model shared between script variables.
pub(crate) type LanguageModelHandle = Shared<CausalModel>;

/// Chat messages from an array of `#{ role, content }` maps.
fn messages(func: &str, items: &Array) -> R<Vec<Message>> {
    items
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let map = m.clone().try_cast::<Map>().ok_or_else(|| script_error(format!("{func}: message {} must be a map like #{{ role: \"user\", content: \"Hi\" }}, got {}", i + 1, m.type_name())))?;
            let field = |key: &str| -> R<String> {
                map.get(key)
                    .and_then(|v| v.clone().into_string().ok())
                    .ok_or_else(|| script_error(format!("{func}: message {} needs a string '{key}' (role is system, user or assistant)", i + 1)))
            };
            Ok(Message { role: field("role")?, content: field("content")? })
        })
        .collect()
}

/// What a prompt argument holds: one prompt or several, each a raw string
/// or a chat.
enum Prompts {
    One(String),
    Many(Vec<String>),
}

/// The prompt texts of `prompt`: a string is used as it is; an array of
/// messages is one chat, rendered with the template and the generation
/// prompt; an array of strings or of chats is a batch.
fn prompt_texts(model: &CausalModel, prompt: &Dynamic) -> R<Prompts> {
    let chat = |items: &Array| -> R<String> { guard(|| Ok(model.apply_chat_template(&messages("generate", items).map_err(|e| anyhow::anyhow!("{e}"))?, true)?)) };
    if let Ok(s) = prompt.clone().into_string() {
        return Ok(Prompts::One(s));
    }
    let Some(items) = prompt.clone().try_cast::<Array>() else {
        return Err(script_error(format!("generate: the prompt must be a string, an array of messages (#{{ role, content }}) or an array of prompts, got {}", prompt.type_name())));
    };
    if items.first().is_some_and(|m| m.is_map()) {
        return Ok(Prompts::One(chat(&items)?));
    }
    let mut texts = Vec::new();
    for item in &items {
        if let Ok(s) = item.clone().into_string() {
            texts.push(s);
        } else if let Some(inner) = item.clone().try_cast::<Array>() {
            texts.push(chat(&inner)?);
        } else {
            return Err(script_error(format!("generate: each prompt of an array must be a string or an array of messages, got {}", item.type_name())));
        }
    }
    Ok(Prompts::Many(texts))
}

fn generate_options(ctx: &Context, model: &CausalModel, o: &Options) -> R<GenerateOptions> {
    let defaults = &model.generation;
    let temperature_default = if defaults.do_sample { defaults.temperature.unwrap_or(1.0) } else { 0.0 };
    let stop = match o.get("stop") {
        None => Vec::new(),
        Some(v) if v.is_string() => vec![v.clone().into_string().unwrap()],
        Some(v) => v
            .clone()
            .try_cast::<Array>()
            .ok_or_else(|| script_error("generate: option 'stop' must be a string or an array of strings"))?
            .into_iter()
            .map(|s| s.into_string().map_err(|t| script_error(format!("generate: 'stop' must hold strings, found a {t}"))))
            .collect::<R<Vec<String>>>()?,
    };
    Ok(GenerateOptions {
        max_new_tokens: o.int("max_new_tokens", 64, 1, 1_000_000)? as usize,
        temperature: o.float("temperature", temperature_default, 0.0, 100.0)?,
        top_k: o.int("top_k", if defaults.do_sample { defaults.top_k.unwrap_or(0) } else { 0 }, 0, 1_000_000)? as usize,
        top_p: o.float("top_p", if defaults.do_sample { defaults.top_p.unwrap_or(1.0) } else { 1.0 }, 0.0, 1.0)?,
        repetition_penalty: o.float("repetition_penalty", defaults.repetition_penalty.unwrap_or(1.0), 0.01, 100.0)?,
        seed: o.int("seed", 0, 0, i64::MAX)? as u64,
        stop,
        use_cache: o.bool("use_cache", true)?,
        precision: o.precision(ctx.precision)?,
    })
}

fn run_generate(ctx: &Context, m: &LanguageModelHandle, prompt: Dynamic, opts: Map) -> R<Dynamic> {
    let o = Options::new("generate", opts)?;
    let model = m.0.borrow();
    let gen = generate_options(ctx, &model, &o)?;
    // `stream`: true (where a person watches), false, or "stdout".
    let (stream, to_stdout) = match o.get("stream") {
        Some(v) if v.is_string() => {
            o.choice("stream", "stdout", &["stdout"])?;
            (true, true)
        }
        _ => (o.bool("stream", true)?, false),
    };
    let prompts = prompt_texts(&model, &prompt)?;
    let texts = match &prompts {
        Prompts::One(t) => vec![t.clone()],
        Prompts::Many(t) => t.clone(),
    };
    let ids = guard(|| texts.iter().map(|t| model.encode(t)).collect::<anyhow::Result<Vec<_>>>())?;
    let single = matches!(prompts, Prompts::One(_));
    // One sequence streams as it grows; a batch would interleave, so it does not.
    let host = ctx.host.clone();
    let mut on_text = |_: usize, delta: &str| {
        if stream && single {
            host.stream_generated(delta, to_stdout);
        }
    };
    let stop = ctx.stop.clone();
    let out = guard(|| generate(&model, &ids, &gen, &mut on_text, &|| stop.load(std::sync::atomic::Ordering::Relaxed)))?;
    if stream && single {
        host.stream_generated("\n", to_stdout);
    }
    Ok(match prompts {
        Prompts::One(_) => Dynamic::from(out[0].text.clone()),
        Prompts::Many(_) => Dynamic::from(out.into_iter().map(|g| Dynamic::from(g.text)).collect::<Array>()),
    })
}

/// A prompt of `fit`'s `samples`: a raw string or a chat.
enum SamplePrompt {
    Raw(String),
    Chat(Vec<Message>),
}

impl SamplePrompt {
    /// What the user reads as the prompt: the string, or the chat's last user message.
    fn label(&self) -> String {
        match self {
            Self::Raw(s) => s.clone(),
            Self::Chat(m) => m.iter().rev().find(|m| m.role == "user").or(m.last()).map(|m| m.content.clone()).unwrap_or_default(),
        }
    }
}

/// `fit`'s `samples` option: an array of prompts (strings or chats of
/// `#{ role, content }`), or `#{ prompts, max_new_tokens }`. The hook
/// answers each greedily with the model being trained, so that runs and
/// their samples repeat.
pub(super) fn sample_hook(ctx: &Context, value: &Dynamic) -> R<crate::train::SampleHook> {
    let bad = || script_error("fit: 'samples' is an array of prompts (strings or chats of #{ role, content }), or #{ prompts: [...], max_new_tokens: 48 }");
    let (items, max_new_tokens) = match value.clone().try_cast::<Map>() {
        Some(map) => {
            let o = Options::new("samples", map)?;
            let prompts = o.get("prompts").and_then(|p| p.clone().try_cast::<Array>()).ok_or_else(bad)?;
            (prompts, o.int("max_new_tokens", 48, 1, 100_000)? as usize)
        }
        None => (value.clone().try_cast::<Array>().ok_or_else(bad)?, 48),
    };
    if items.is_empty() {
        return Err(bad());
    }
    let prompts = items
        .iter()
        .map(|item| {
            if let Ok(s) = item.clone().into_string() {
                Ok(SamplePrompt::Raw(s))
            } else if let Some(chat) = item.clone().try_cast::<Array>() {
                Ok(SamplePrompt::Chat(messages("fit: samples", &chat)?))
            } else {
                Err(bad())
            }
        })
        .collect::<R<Vec<_>>>()?;
    let stop = ctx.stop.clone();
    let hook = move |learner: &dyn crate::model::Learner| -> anyhow::Result<Vec<(String, String)>> {
        let model = learner.as_any().downcast_ref::<CausalModel>().ok_or_else(|| anyhow::anyhow!("fit: samples are a language model's answers to prompts, and this model is not a language model"))?;
        let ids = prompts
            .iter()
            .map(|p| match p {
                SamplePrompt::Raw(s) => model.encode(s),
                SamplePrompt::Chat(m) => model.encode(&model.apply_chat_template(m, true)?),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let opts = GenerateOptions { max_new_tokens, ..Default::default() };
        let out = generate(model, &ids, &opts, &mut |_, _| {}, &|| stop.load(std::sync::atomic::Ordering::Relaxed))?;
        Ok(prompts.iter().zip(out).map(|(p, g)| (p.label(), g.text)).collect())
    };
    Ok(crate::train::SampleHook(std::sync::Arc::new(hook)))
}

fn strings(func: &str, items: Array) -> R<Vec<String>> {
    items.into_iter().map(|v| v.into_string().map_err(|t| script_error(format!("{func}: expected strings, found a {t}")))).collect()
}

/// `evaluate(language_model, texts, #{ precision })`, in the run's precision unless given.
fn evaluate_texts(ctx: &Context, m: &LanguageModelHandle, texts: Vec<String>, opts: Map) -> R<Map> {
    let precision = Options::new("evaluate", opts)?.precision(ctx.precision)?;
    let result = guard(|| text_loss(&m.0.borrow(), &texts, precision))?;
    let mut map = Map::new();
    map.insert("loss".into(), Dynamic::from(result.loss));
    map.insert("perplexity".into(), Dynamic::from(result.perplexity));
    map.insert("tokens".into(), Dynamic::from(result.tokens as i64));
    Ok(map)
}

fn save(m: &LanguageModelHandle, path: &str, opts: Map) -> R<String> {
    let o = Options::new("save (language model)", opts)?;
    if o.get("gguf_type").is_some() {
        let kind = SaveType::parse(&o.choice("gguf_type", "f16", SaveType::NAMES)?).map_err(|e| script_error(e.to_string()))?;
        if !path.to_ascii_lowercase().ends_with(".gguf") {
            return Err(script_error(format!("save: gguf_type is for GGUF files; give a path ending in .gguf, not '{path}'")));
        }
        return guard(|| Ok(m.0.borrow().save_gguf(std::path::Path::new(path), kind)?.display().to_string()));
    }
    guard(|| m.save(path))
}

/// One line describing a language model.
fn describe(m: &CausalModel) -> String {
    let c = &m.config;
    format!(
        "LanguageModel {} ({}, {} layers, hidden {}, {} heads / {} KV heads, vocabulary {}, context {}; {} parameters)",
        m.name,
        c.family.model_type(),
        c.num_layers,
        c.hidden_size,
        c.num_heads,
        c.num_kv_heads,
        c.vocab_size,
        c.max_positions,
        crate::numbers::group_digits(crate::model::causal::parameter_count(m))
    )
}

pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
    engine.register_type_with_name::<LanguageModelHandle>("LanguageModel");
    let c = ctx.clone();
    engine.register_fn("generate", move |m: LanguageModelHandle, prompt: Dynamic| run_generate(&c, &m, prompt, Map::new()));
    let c = ctx.clone();
    engine.register_fn("generate", move |m: LanguageModelHandle, prompt: Dynamic, opts: Map| run_generate(&c, &m, prompt, opts));
    engine.register_fn("apply_chat_template", |m: LanguageModelHandle, chat: Array| -> R<String> {
        let msgs = messages("apply_chat_template", &chat)?;
        guard(|| m.0.borrow().apply_chat_template(&msgs, false))
    });
    engine.register_fn("apply_chat_template", |m: LanguageModelHandle, chat: Array, opts: Map| -> R<String> {
        let o = Options::new("apply_chat_template", opts)?;
        let add = o.bool("add_generation_prompt", false)?;
        let msgs = messages("apply_chat_template", &chat)?;
        guard(|| m.0.borrow().apply_chat_template(&msgs, add))
    });
    let c = ctx.clone();
    engine.register_fn("evaluate", move |m: LanguageModelHandle, texts: Array| -> R<Map> { evaluate_texts(&c, &m, strings("evaluate", texts)?, Map::new()) });
    let c = ctx.clone();
    engine.register_fn("evaluate", move |m: LanguageModelHandle, texts: Array, opts: Map| -> R<Map> { evaluate_texts(&c, &m, strings("evaluate", texts)?, opts) });
    let c = ctx.clone();
    engine.register_fn("evaluate", move |m: LanguageModelHandle, text: &str| -> R<Map> { evaluate_texts(&c, &m, vec![text.to_string()], Map::new()) });
    let c = ctx.clone();
    engine.register_fn("evaluate", move |m: LanguageModelHandle, text: &str, opts: Map| -> R<Map> { evaluate_texts(&c, &m, vec![text.to_string()], opts) });
    engine.register_fn("rouge_l", |predictions: Array, references: Array| -> R<Map> {
        let (p, r) = (strings("rouge_l", predictions)?, strings("rouge_l", references)?);
        if p.len() != r.len() || p.is_empty() {
            return Err(script_error(format!("rouge_l: give as many references as predictions (at least one); got {} predictions and {} references", p.len(), r.len())));
        }
        let scores: Vec<(f64, f64, f64)> = p.iter().zip(&r).map(|(a, b)| crate::inference::overlap::rouge_l(a, b)).collect();
        let mean = |f: fn(&(f64, f64, f64)) -> f64| scores.iter().map(f).sum::<f64>() / scores.len() as f64;
        let mut m = Map::new();
        m.insert("precision".into(), Dynamic::from(mean(|s| s.0)));
        m.insert("recall".into(), Dynamic::from(mean(|s| s.1)));
        m.insert("f1".into(), Dynamic::from(mean(|s| s.2)));
        m.insert("per_row".into(), Dynamic::from(scores.iter().map(|s| Dynamic::from(s.2)).collect::<Array>()));
        Ok(m)
    });
    engine.register_fn("tokens", |m: &mut LanguageModelHandle, text: &str| -> R<Array> { guard(|| Ok(m.0.borrow().token_strings(text)?.into_iter().map(Dynamic::from).collect())) });
    engine.register_fn("encode", |m: &mut LanguageModelHandle, text: &str| -> R<Array> { guard(|| Ok(m.0.borrow().encode(text)?.into_iter().map(Dynamic::from).collect())) });
    engine.register_fn("decode", |m: &mut LanguageModelHandle, ids: Array| -> R<String> {
        let ids: Vec<i64> = ids.into_iter().map(|v| v.as_int().map_err(|t| script_error(format!("decode: token ids are integers, found a {t}")))).collect::<R<_>>()?;
        guard(|| m.0.borrow().decode(&ids, false))
    });
    engine.register_fn("save", |m: &mut LanguageModelHandle, path: &str, opts: Map| save(m, path, opts));
    engine.register_fn("logits", |m: &mut LanguageModelHandle, ids: Array| -> R<super::handles::TensorHandle> {
        // One sequence of ids, or a batch of sequences of one length.
        let rows: Vec<Array> = if ids.first().is_some_and(|r| r.is_array()) { ids.into_iter().map(|r| r.cast::<Array>()).collect() } else { vec![ids] };
        let width = rows.first().map_or(0, Vec::len);
        if width == 0 || rows.iter().any(|r| r.len() != width) {
            return Err(script_error("logits: give token ids, as one array or as arrays of one length (a batch)"));
        }
        let flat: Vec<i64> = rows.iter().flatten().map(|v| v.as_int().map_err(|t| script_error(format!("logits: token ids are integers, found a {t}")))).collect::<R<_>>()?;
        let model = m.0.borrow();
        let vocab = model.config.vocab_size;
        if let Some(bad) = flat.iter().find(|&&i| i < 0 || i >= vocab) {
            return Err(script_error(format!("logits: token id {bad} is outside the vocabulary (0 to {})", vocab - 1)));
        }
        let input = tch::Tensor::from_slice(&flat).view([rows.len() as i64, width as i64]);
        let logits = tch::no_grad(|| model.logits(&input, &input.ones_like()));
        Ok(super::handles::TensorHandle(logits.to_device(tch::Device::Cpu)))
    });
    engine.register_get("chat_template", |m: &mut LanguageModelHandle| -> Dynamic { m.0.borrow().chat_template.clone().map(Dynamic::from).unwrap_or(Dynamic::UNIT) });
    engine.register_get("config", |m: &mut LanguageModelHandle| -> Dynamic {
        let json = m.0.borrow().config.to_json("float32");
        rhai::serde::to_dynamic(json).unwrap_or(Dynamic::UNIT)
    });
    engine.register_fn("to_string", |m: &mut LanguageModelHandle| describe(&m.0.borrow()));
    engine.register_fn("to_debug", |m: &mut LanguageModelHandle| describe(&m.0.borrow()));
}
