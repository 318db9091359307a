//! `load_model`, freezing, `summary`, `save`.

use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::args::selector_list;
use super::handles::{ImageModelHandle, ModelHandle};
use crate::model::{LoadOptions, Pooling, Task, TextModel};
use crate::runtime::{resolve_device, DeviceRequest};
use crate::script::options::{script_error, Options};
use crate::script::{guard, Context};

type R<T> = Result<T, Box<EvalAltResult>>;

/// The `task` option; `None` when absent.
fn task_option(o: &Options) -> R<Option<Task>> {
    match o.get("task") {
        None => Ok(None),
        Some(_) => Task::parse(&o.choice("task", "classify", Task::NAMES)?).map(Some).map_err(|e| script_error(e.to_string())),
    }
}

/// The `labels` option: a count (`LABEL_0`, ...) or an array of names.
fn labels_option(func: &str, o: &Options, task: Task) -> R<Option<Vec<String>>> {
    Ok(match o.get("labels") {
        None => None,
        Some(v) if v.is_int() => {
            let n = v.as_int().unwrap();
            let least = task.min_outputs() as i64;
            if !(least..=100_000).contains(&n) {
                let hint = if task == Task::Classify { "; for one number per row use task: \"regression\"" } else { "" };
                return Err(script_error(format!("{func}: option 'labels' must be at least {least}, got {n}{hint}")));
            }
            Some((0..n).map(|i| format!("LABEL_{i}")).collect())
        }
        Some(v) if v.is::<super::handles::ImageDatasetHandle>() => Some(v.clone().cast::<super::handles::ImageDatasetHandle>().0.label_names.clone()),
        Some(v) if v.is_array() => Some(
            v.clone()
                .into_array()
                .unwrap()
                .into_iter()
                .map(|x| x.into_string().map_err(|t| script_error(format!("{func}: 'labels' must hold strings, found a {t}"))))
                .collect::<R<Vec<String>>>()?,
        ),
        Some(v) => return Err(script_error(format!("{func}: option 'labels' must be a count, an array of names or an image dataset (its classes), got {}", v.type_name()))),
    })
}

fn load(ctx: &Context, name: &str, opts: Map) -> R<Dynamic> {
    let o = Options::new("load_model", opts)?;
    let task = task_option(&o)?;
    let labels = labels_option("load_model", &o, task.unwrap_or_default())?;
    let pooling = Pooling::parse(&o.choice("pooling", "pooler", Pooling::NAMES)?).map_err(|e| script_error(e.to_string()))?;
    let device = match o.get("device") {
        None => ctx.device.get(),
        Some(_) => {
            let req: DeviceRequest = o.choice("device", "auto", &["auto", "cpu", "cuda"])?.parse().map_err(|e: anyhow::Error| script_error(e.to_string()))?;
            guard(|| resolve_device(req))?
        }
    };
    let dropout = o.get("dropout").map(|_| o.float("dropout", 0.1, 0.0, 0.9)).transpose()?;
    let size = o.get("size").map(|_| o.int("size", 224, 32, 1024)).transpose()?;
    let bf16_weights = o.choice("weights", "fp32", &["fp32", "bf16"])? == "bf16";
    guard(|| {
        let dir = crate::model::resolve_path(name, &ctx.cache)?;
        if crate::model::CausalModel::is_decoder(&dir) {
            if labels.is_some() || task.is_some() || o.get("pooling").is_some() || dropout.is_some() {
                anyhow::bail!("{name} is a language model: load_model takes only `device` and `weights` for it (labels, task, pooling and dropout are for encoders)");
            }
            let model = crate::model::CausalModel::load(name, &dir, device)?;
            if bf16_weights {
                crate::model::store_weights_in_bf16(&model)?;
            }
            return Ok(Dynamic::from(super::language::LanguageModelHandle::new(model)));
        }
        let is_image = crate::model::ImageModel::is_saved_image_model(&dir) || (dir.is_file() && dir.extension().is_some_and(|e| e == "pth" || e == "pt"));
        if bf16_weights && is_image {
            anyhow::bail!("weights: \"bf16\" is for text encoders and language models; {name} is an image network, which keeps fp32 weights (train it with precision: \"bf16\" instead)");
        }
        if crate::model::ImageModel::is_saved_image_model(&dir) {
            if size.is_some() || labels.is_some() || task.is_some() {
                anyhow::bail!("{name} is a saved image model, which keeps its input size, labels and task; load it as it is (new_head gives it other labels)");
            }
            let model = crate::model::ImageModel::load(name, &dir, device)?;
            return Ok(Dynamic::from(ImageModelHandle::new(model)));
        }
        if dir.is_file() && dir.extension().is_some_and(|e| e == "pth" || e == "pt") {
            if o.get("pooling").is_some() {
                anyhow::bail!("{name} is an image backbone: it takes labels, task, size, dropout and device (pooling is for text encoders)");
            }
            let arch = crate::model::ImageArch::of_state_dict(&dir)?;
            let mut model = crate::model::ImageModel::pretrained(name, arch, &dir, size.unwrap_or(224), device)?;
            if let Some(p) = dropout {
                model.spec.dropout = p;
            }
            if labels.is_some() || task.is_some() {
                let task = task.unwrap_or_default();
                let labels = labels.ok_or_else(|| anyhow::anyhow!("give the labels of the new head (a count or names) with task: \"{}\"", task.name()))?;
                model.adapt_head(labels, task)?;
            }
            return Ok(Dynamic::from(ImageModelHandle::new(model)));
        }
        if size.is_some() {
            anyhow::bail!("size is for image backbones (mobilenet_v2, efficientnet_lite0); {name} reads text");
        }
        let model = TextModel::load(name, &dir, &LoadOptions { labels, pooling, task, device, dropout })?;
        if bf16_weights {
            crate::model::store_weights_in_bf16(&model)?;
        }
        Ok(Dynamic::from(ModelHandle::new(model)))
    })
}

pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
    engine.register_type_with_name::<ModelHandle>("Model");
    let c = ctx.clone();
    engine.register_fn("load_model", move |name: &str| load(&c, name, Map::new()));
    let c = ctx.clone();
    engine.register_fn("load_model", move |name: &str, opts: Map| load(&c, name, opts));
    engine.register_fn("add_lora", |m: &mut ModelHandle| -> R<String> { add_lora(m, Map::new()) });
    engine.register_fn("add_lora", |m: &mut ModelHandle, opts: Map| -> R<String> { add_lora(m, opts) });
    engine.register_fn("merge_lora", |m: &mut ModelHandle| -> R<i64> { guard(|| Ok(m.0.borrow_mut().merge_lora()? as i64)) });
    engine.register_fn("add_adapters", |m: &mut ModelHandle| -> R<String> { add_adapters(m, Map::new()) });
    engine.register_fn("add_adapters", |m: &mut ModelHandle, opts: Map| -> R<String> { add_adapters(m, opts) });
    engine.register_fn("add_head", |m: &mut ModelHandle, name: &str, opts: Map| -> R<()> {
        let o = Options::new("add_head", opts)?;
        let task = task_option(&o)?.unwrap_or_default();
        let labels = match labels_option("add_head", &o, task)? {
            Some(l) => l,
            None if task == Task::Regression => vec!["LABEL_0".to_string()],
            None => return Err(script_error("add_head: give the head's labels (a count or a list of names)")),
        };
        let pooling = Pooling::parse(&o.choice("pooling", "mean", Pooling::NAMES)?).map_err(|e| script_error(e.to_string()))?;
        guard(|| m.0.borrow_mut().add_head(name, labels, pooling, task))
    });
    engine.register_fn("use_head", |m: &mut ModelHandle, name: &str| -> R<()> { guard(|| m.0.borrow_mut().use_head(name)) });
    engine.register_get("head", |m: &mut ModelHandle| m.0.borrow().head_name().to_string());
    engine.register_get("heads", |m: &mut ModelHandle| -> Array { m.0.borrow().head_names().into_iter().map(Dynamic::from).collect() });
    let c = ctx.clone();
    engine.register_fn("save_adapter", move |m: &mut ModelHandle, path: &str| -> R<String> {
        let model = m.0.borrow();
        if model.exports_mean_pooled() {
            c.host.eprint("note: PEFT loads an adapter onto transformers' own classifier, which reads the first token; this head is mean-pooled, so in transformers the adapter would not predict as here. Tunebook's load_adapter reads it as trained; for transformers save the merged model with model.save(path) (it loads with trust_remote_code=True).");
        }
        guard(|| model.save_adapter(std::path::Path::new(path)).map(|p| p.display().to_string()))
    });
    engine.register_fn("load_adapter", |m: &mut ModelHandle, path: &str| -> R<()> { guard(|| m.0.borrow_mut().load_adapter(std::path::Path::new(path))) });
    engine.register_get("name", |m: &mut ModelHandle| m.0.borrow().name.clone());
    engine.register_get("device", |m: &mut ModelHandle| crate::runtime::device_name(m.0.borrow().device()));
    engine.register_get("config", |m: &mut ModelHandle| -> Dynamic {
        rhai::serde::to_dynamic(m.0.borrow().raw_config()).unwrap_or(Dynamic::UNIT)
    });
    engine.register_fn("to_string", |m: &mut ModelHandle| describe(&m.0.borrow()));
    engine.register_fn("to_debug", |m: &mut ModelHandle| describe(&m.0.borrow()));
}

/// `model.add_lora(#{ r, alpha, dropout, targets })`; returns the summary line.
fn add_lora(m: &ModelHandle, opts: Map) -> R<String> {
    let o = Options::new("add_lora", opts)?;
    let r = o.int("r", 8, 1, 4096)?;
    let defaults = m.0.borrow().default_lora_targets();
    let targets = match o.get("targets") {
        None => defaults,
        Some(v) if v.is_string() => vec![v.clone().into_string().unwrap()],
        Some(v) if v.is_array() => selector_list("add_lora", v.clone().into_array().unwrap())?,
        Some(v) => return Err(script_error(format!("add_lora: option 'targets' must be a name or an array of names, got {}", v.type_name()))),
    };
    let config = crate::model::LoraConfig { r, alpha: o.float("alpha", 2.0 * r as f64, 1e-9, 1e9)?, dropout: o.float("dropout", 0.1, 0.0, 0.99)?, targets, rslora: o.bool("rslora", false)?, dora: o.bool("dora", false)? };
    guard(|| {
        let mut model = m.0.borrow_mut();
        let layers = model.add_lora(&config)?;
        let s = model.summary();
        Ok(format!(
            "LoRA r={} alpha={} on {} layers ({}); trainable {} of {} parameters ({})",
            config.r,
            config.alpha,
            layers.len(),
            config.targets.join(", "),
            crate::numbers::group_digits(s.trainable()),
            crate::numbers::group_digits(s.total()),
            crate::numbers::percent(s.trainable(), s.total())
        ))
    })
}

/// `model.add_adapters(#{ size })`; returns the summary line.
fn add_adapters(m: &ModelHandle, opts: Map) -> R<String> {
    let o = Options::new("add_adapters", opts)?;
    let size = o.int("size", 64, 1, 1 << 20)?;
    guard(|| {
        let mut model = m.0.borrow_mut();
        model.add_adapters(size)?;
        let s = model.summary();
        Ok(format!(
            "bottleneck adapters of size {size} in {} layers; trainable {} of {} parameters ({})",
            model.config.num_hidden_layers,
            crate::numbers::group_digits(s.trainable()),
            crate::numbers::group_digits(s.total()),
            crate::numbers::percent(s.trainable(), s.total())
        ))
    })
}

fn describe(m: &TextModel) -> String {
    let s = m.summary();
    format!(
        "Model {} ({} layers, hidden {}; {}{}; trainable {} of {} parameters; {:?})",
        m.name,
        m.config.num_hidden_layers,
        m.config.hidden_size,
        match m.task {
            Task::Classify => "labels ",
            Task::MultiLabel => "multi-label ",
            Task::Regression => "regression on ",
            Task::Tokens => "token labels ",
            Task::NextToken => "next-token outputs ",
        },
        m.labels.join("/"),
        crate::numbers::group_digits(s.trainable()),
        crate::numbers::group_digits(s.total()),
        m.device()
    )
}
