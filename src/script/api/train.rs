//! `fit`, `evaluate`, `predict` and the run they return.

use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::handles::{DatasetHandle, LrFindHandle, ModelHandle, RunHandle};
use crate::inference;
use crate::script::options::{script_error, Options};
use crate::script::{guard, Context};
use crate::train::{self, CheckpointOptions, ClassWeights, EarlyStopping, EvalResult, FitOptions, LayerRates, Monitor, Schedule, TrainRun, Unfreezing};

type R<T> = Result<T, Box<EvalAltResult>>;

pub(super) fn fit_options(ctx: &Context, opts: Map) -> R<FitOptions> {
    let o = Options::new("fit", opts)?;
    let d = FitOptions::default();
    let optimizer = train::Method::parse(&o.choice("optimizer", "adamw", train::Method::NAMES)?, o.float("momentum", 0.0, 0.0, 0.999)?, o.bool("nesterov", false)?)
        .map_err(|e| script_error(format!("fit: {e}")))?;
    let schedule = Schedule::parse(&o.choice("schedule", "linear", Schedule::NAMES)?).map_err(|e| script_error(e.to_string()))?;
    Ok(FitOptions {
        optimizer,
        lr: o.float("lr", d.lr, 0.0, 10.0)?,
        weight_decay: o.float("weight_decay", d.weight_decay, 0.0, 1.0)?,
        schedule,
        warmup: o.float("warmup", d.warmup, 0.0, 1.0)?,
        epochs: o.int("epochs", d.epochs as i64, 1, 1_000_000)? as usize,
        max_steps: o.opt_int("max_steps", 1, i64::MAX)?.map(|n| n as usize),
        early_stopping: match o.get("early_stopping") {
            None => None,
            Some(v) => {
                let map = v.clone().try_cast::<Map>().ok_or_else(|| script_error(format!("fit: option 'early_stopping' must be a map like #{{ metric: \"val_loss\", patience: 3 }}, got {}", v.type_name())))?;
                let e = Options::new("early_stopping", map)?;
                Some(EarlyStopping {
                    monitor: Monitor::parse(&e.choice("metric", "val_loss", Monitor::NAMES)?).map_err(|err| script_error(err.to_string()))?,
                    patience: e.int("patience", 3, 1, 1_000_000)? as usize,
                    min_delta: e.float("min_delta", 0.0, 0.0, f64::MAX)?,
                    restore_best: e.bool("restore_best", true)?,
                })
            }
        },
        unfreezing: match (o.opt_int("gradual_unfreezing", 1, 1_000_000)?, o.opt_int("freeze_epochs", 1, 1_000_000)?) {
            (Some(_), Some(_)) => return Err(script_error("fit: give either gradual_unfreezing or freeze_epochs, not both")),
            (Some(every), None) => Some(Unfreezing::Gradual { every: every as usize }),
            (None, Some(n)) => Some(Unfreezing::HeadFirst(n as usize)),
            (None, None) => None,
        },
        layer_rates: LayerRates {
            decay: match o.get("layer_decay") {
                None => None,
                Some(_) => Some(o.float("layer_decay", 1.0, 1e-6, 1.0)?),
            },
            groups: match o.get("lr_groups") {
                None => Vec::new(),
                Some(v) => lr_groups(v)?,
            },
        },
        loss: match o.get("loss") {
            None => None,
            Some(_) => Some(train::Loss::parse(&o.choice("loss", "cross_entropy", train::Loss::NAMES)?).map_err(|e| script_error(e.to_string()))?),
        },
        label_smoothing: o.float("label_smoothing", 0.0, 0.0, 0.99)?,
        precision: o.precision(ctx.precision)?,
        class_weights: match o.get("class_weights") {
            None => None,
            Some(v) if v.is_string() && v.clone().into_string().unwrap() == "balanced" => Some(ClassWeights::Balanced),
            Some(v) if v.is_array() => Some(ClassWeights::Given(
                v.clone()
                    .into_array()
                    .unwrap()
                    .into_iter()
                    .map(|x| x.as_float().or_else(|_| x.as_int().map(|i| i as f64)).map_err(|_| script_error("fit: class_weights must hold numbers, one per class")))
                    .collect::<R<Vec<f64>>>()?,
            )),
            Some(v) => return Err(script_error(format!("fit: option 'class_weights' must be \"balanced\" or an array of numbers (one per class), got {v}"))),
        },
        accumulate: o.int("accumulate", 1, 1, 1_000_000)? as usize,
        eval_every: o.opt_int("eval_every", 1, i64::MAX)?.map(|n| n as usize),
        track_layers: o.bool("track_layers", false)?,
        checkpointing: o.bool("checkpointing", false)?,
        tensorboard: match (o.get("log"), o.get("log_dir")) {
            (None, None) => None,
            (log, dir) => {
                if log.is_some() {
                    o.choice("log", "tensorboard", &["tensorboard"])?;
                }
                Some(match dir {
                    Some(_) => o.string("log_dir", "")?.into(),
                    None => default_log_dir(&ctx.host.run_name()),
                })
            }
        },
        samples: match o.get("samples") {
            None => None,
            Some(v) => Some(super::language::sample_hook(ctx, v)?),
        },
        seed: Some(ctx.seed.get()),
        checkpoint: match o.get("checkpoint") {
            None => None,
            Some(v) => {
                let map = v.clone().try_cast::<Map>().ok_or_else(|| script_error(format!("fit: option 'checkpoint' must be a map like #{{ dir: \"out/ckpt\", keep: 2 }}, got {}", v.type_name())))?;
                let c = Options::new("checkpoint", map)?;
                if c.get("dir").is_none() {
                    return Err(script_error("fit: checkpoint needs 'dir', the folder to write to"));
                }
                Some(CheckpointOptions { dir: c.string("dir", "")?.into(), keep: c.int("keep", 2, 1, 1_000_000)? as usize })
            }
        },
        resume: o.get("resume").map(|_| o.string("resume", "")).transpose()?.map(Into::into),
        max_grad_norm: match o.get("max_grad_norm") {
            Some(v) if v.is_unit() => None,
            _ => Some(o.float("max_grad_norm", 1.0, 0.0, f64::MAX)?),
        },
        ..d
    })
}

/// `out/runs/<script or notebook>-<date>-<time>`, with `-2`, `-3`, ...
/// for runs started in the same second.
fn default_log_dir(name: &str) -> std::path::PathBuf {
    let stem = format!("{name}-{}", chrono::Local::now().format("%Y%m%d-%H%M%S"));
    let base = std::path::Path::new("out/runs");
    std::iter::once(base.join(&stem)).chain((2..).map(|n| base.join(format!("{stem}-{n}")))).find(|p| !p.exists()).expect("a free run folder")
}

/// `lr_groups: [#{ modules: "embeddings", lr: 1e-5 }, ...]`.
fn lr_groups(v: &Dynamic) -> R<Vec<(String, f64)>> {
    let bad = || script_error("fit: option 'lr_groups' must be an array of maps like #{ modules: \"embeddings\", lr: 1e-5 }");
    let items = v.clone().into_array().map_err(|_| bad())?;
    items
        .into_iter()
        .map(|item| {
            let map = item.try_cast::<Map>().ok_or_else(bad)?;
            let g = Options::new("lr_groups", map)?;
            let modules = g.get("modules").ok_or_else(|| script_error("fit: each lr_groups entry needs 'modules' (a selector such as \"embeddings\")"))?;
            let modules = modules.clone().into_string().map_err(|_| bad())?;
            if g.get("lr").is_none() {
                return Err(script_error(format!("fit: the lr_groups entry for '{modules}' needs 'lr'")));
            }
            Ok((modules, g.float("lr", 0.0, 0.0, 10.0)?))
        })
        .collect()
}


/// The metrics of an evaluation under `prefix` (`val_loss`, `val_accuracy`, ...).
fn metrics_into(m: &mut Map, r: &EvalResult, prefix: &str) {
    for (name, value) in r.metrics() {
        m.insert(format!("{prefix}{name}").into(), value.into());
    }
}

fn scores_map(label: &str, s: &train::metrics::ClassScores) -> Dynamic {
    let mut c = Map::new();
    c.insert("label".into(), label.into());
    c.insert("precision".into(), s.precision.into());
    c.insert("recall".into(), s.recall.into());
    c.insert("f1".into(), s.f1.into());
    c.insert("support".into(), s.support.into());
    Dynamic::from(c)
}

pub(super) fn eval_map(r: EvalResult, detail: &train::EvalDetail, labels: &[String]) -> Map {
    let mut m = Map::new();
    metrics_into(&mut m, &r, "");
    m.insert("task".into(), r.task.name().into());
    m.insert("rows".into(), (r.rows as i64).into());
    let (per, (precision, recall, _)) = match detail {
        train::EvalDetail::Classes(c) => {
            let rows: Array = c.counts.iter().map(|r| Dynamic::from(r.iter().map(|&n| Dynamic::from(n)).collect::<Array>())).collect();
            m.insert("confusion".into(), rows.into());
            (c.per_class(), c.macro_scores())
        }
        train::EvalDetail::MultiLabel(c) => (c.per_label(), c.macro_scores()),
        train::EvalDetail::Regression(_) | train::EvalDetail::NextToken => return m,
    };
    m.insert("precision".into(), precision.into());
    m.insert("recall".into(), recall.into());
    let per_class: Array = per.iter().zip(labels).map(|(s, label)| scores_map(label, s)).collect();
    m.insert("per_class".into(), per_class.into());
    m
}

/// How predictions are reported: the top classes to list and the
/// multi-label threshold.
#[derive(Clone, Copy)]
pub(super) struct Reporting {
    /// Classes listed in `top`, best first (0: none).
    pub top_k: usize,
    /// A multi-label prediction names the labels at this probability or more.
    pub threshold: f64,
}

impl Default for Reporting {
    fn default() -> Self {
        Self { top_k: 0, threshold: 0.5 }
    }
}

/// A prediction as a script map; `text` is what it was made from, where
/// there is one.
pub(super) fn prediction_map(p: inference::Prediction, text: Option<&str>, how: Reporting) -> Dynamic {
    let mut m = Map::new();
    if let Some(t) = text {
        m.insert("text".into(), t.into());
    }
    let by_label = |scores: &[(String, f64)]| scores.iter().map(|(l, p)| (l.into(), Dynamic::from(*p))).collect::<Map>();
    match p {
        inference::Prediction::Class { label, score, scores } => {
            m.insert("label".into(), label.into());
            m.insert("score".into(), score.into());
            if how.top_k > 0 {
                let mut ranked = scores.clone();
                // Stable: equal probabilities keep label order.
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
                let top: Array = ranked
                    .into_iter()
                    .take(how.top_k)
                    .map(|(l, p)| {
                        let mut e = Map::new();
                        e.insert("label".into(), l.into());
                        e.insert("score".into(), p.into());
                        Dynamic::from(e)
                    })
                    .collect();
                m.insert("top".into(), top.into());
            }
            m.insert("scores".into(), by_label(&scores).into());
        }
        inference::Prediction::Labels(scores) => {
            let chosen: Array = scores.iter().filter(|(_, p)| *p >= how.threshold).map(|(l, _)| Dynamic::from(l.clone())).collect();
            m.insert("labels".into(), chosen.into());
            m.insert("scores".into(), by_label(&scores).into());
        }
        inference::Prediction::Tags(tags) => {
            let column = |f: &dyn Fn(&(String, String, f64)) -> Dynamic| Dynamic::from(tags.iter().map(f).collect::<Array>());
            m.insert("words".into(), column(&|t| Dynamic::from(t.0.clone())));
            m.insert("tags".into(), column(&|t| Dynamic::from(t.1.clone())));
            m.insert("scores".into(), column(&|t| Dynamic::from(t.2)));
        }
        inference::Prediction::Values(values) => {
            m.insert("value".into(), values.first().map_or(0.0, |v| v.1).into());
            m.insert("values".into(), by_label(&values).into());
        }
    }
    Dynamic::from(m)
}

/// `predict`'s options.
fn predict_options(m: &ModelHandle, opts: Map) -> R<(usize, Option<String>, Reporting, crate::runtime::precision::Precision)> {
    let o = Options::new("predict", opts)?;
    let model = m.0.borrow();
    let max_len = o.int("max_len", 128, 2, model.config.max_position_embeddings)? as usize;
    let head = o.get("head").map(|_| o.string("head", "")).transpose()?;
    let top_k = o.int("top_k", 0, 1, 1 << 20)? as usize;
    if o.get("top_k").is_some() && model.task != crate::task::Task::Classify {
        return Err(script_error(format!("predict: top_k ranks the classes of a classifier; this head is for {}", model.task.name())));
    }
    let threshold = o.float("threshold", 0.5, 0.0, 1.0)?;
    if o.get("threshold").is_some() && model.task != crate::task::Task::MultiLabel {
        return Err(script_error(format!("predict: threshold picks the labels of a multi_label head; this head is for {} (each prediction's scores holds every probability)", model.task.name())));
    }
    let precision = o.precision(crate::runtime::precision::Precision::Fp32)?;
    Ok((max_len, head, Reporting { top_k, threshold }, precision))
}

fn predict(m: &ModelHandle, texts: Vec<String>, pairs: Option<Vec<String>>, opts: Map) -> R<Array> {
    let (max_len, head, how, precision) = predict_options(m, opts)?;
    let device = m.0.borrow().device();
    let preds = guard(|| precision.run(device, || {
        let mut model = m.0.borrow_mut();
        // A head chosen for this call only: the active one comes back after.
        let previous = model.head_name().to_string();
        if let Some(h) = &head {
            model.use_head(h)?;
        }
        let preds = match &pairs {
            Some(pairs) => inference::predict_pairs(&model, &texts, pairs, max_len),
            None => inference::predict(&model, &texts, max_len),
        };
        model.use_head(&previous)?;
        preds
    }))?;
    Ok(preds.into_iter().zip(&texts).map(|(p, t)| prediction_map(p, Some(t), how)).collect())
}

/// `predict(model, dataset)`: a prediction for each row of a text dataset,
/// labelled or not.
fn predict_dataset(m: &ModelHandle, d: &DatasetHandle, opts: Map) -> R<Array> {
    predict(m, d.0.texts.clone(), d.0.pairs.clone(), opts)
}

/// Texts, or sentence pairs given as two-string arrays.
fn texts_or_pairs(items: Array) -> R<(Vec<String>, Option<Vec<String>>)> {
    if items.first().is_some_and(|x| x.is_array()) {
        let mut firsts = Vec::with_capacity(items.len());
        let mut seconds = Vec::with_capacity(items.len());
        for item in items {
            let pair = strings(item.into_array().map_err(|t| script_error(format!("predict: give all texts as pairs [first, second], or none; found a {t}")))?)?;
            let [a, b]: [String; 2] = pair.try_into().map_err(|p: Vec<String>| script_error(format!("predict: a sentence pair is [first, second]; got {} texts", p.len())))?;
            firsts.push(a);
            seconds.push(b);
        }
        Ok((firsts, Some(seconds)))
    } else {
        Ok((strings(items)?, None))
    }
}

fn strings(a: Array) -> R<Vec<String>> {
    a.into_iter().map(|x| x.into_string().map_err(|t| script_error(format!("expected an array of strings, found a {t}")))).collect()
}

pub(super) fn register(engine: &mut Engine) {
    engine.register_type_with_name::<RunHandle>("Run");
    engine.register_fn("predict", |m: ModelHandle, texts: Array| {
        let (texts, pairs) = texts_or_pairs(texts)?;
        predict(&m, texts, pairs, Map::new())
    });
    engine.register_fn("predict", |m: ModelHandle, texts: Array, o: Map| {
        let (texts, pairs) = texts_or_pairs(texts)?;
        predict(&m, texts, pairs, o)
    });
    engine.register_fn("embed", |m: ModelHandle, texts: Array| -> R<Array> {
        let texts = strings(texts)?;
        let emb = guard(|| inference::embed(&m.0.borrow(), &texts, 128))?;
        let rows: Vec<Vec<f64>> = guard(|| Ok(Vec::<Vec<f64>>::try_from(emb.to_kind(tch::Kind::Double))?))?;
        Ok(rows.into_iter().map(|r| Dynamic::from(r.into_iter().map(Dynamic::from).collect::<Array>())).collect())
    });
    engine.register_fn("predict", |m: ModelHandle, text: &str| -> R<Dynamic> {
        Ok(predict(&m, vec![text.to_string()], None, Map::new())?.remove(0))
    });
    engine.register_fn("predict", |m: ModelHandle, text: &str, o: Map| -> R<Dynamic> {
        Ok(predict(&m, vec![text.to_string()], None, o)?.remove(0))
    });
    engine.register_fn("predict", |m: ModelHandle, d: DatasetHandle| predict_dataset(&m, &d, Map::new()));
    engine.register_fn("predict", |m: ModelHandle, d: DatasetHandle, o: Map| predict_dataset(&m, &d, o));


    engine.register_type_with_name::<LrFindHandle>("LrFind");
    engine.register_get("suggestion", |f: &mut LrFindHandle| f.0.suggestion);
    engine.register_get("min_loss_lr", |f: &mut LrFindHandle| f.0.min_loss_lr);
    engine.register_get("lrs", |f: &mut LrFindHandle| -> Array { f.0.lrs.iter().map(|&x| Dynamic::from(x)).collect() });
    engine.register_get("losses", |f: &mut LrFindHandle| -> Array { f.0.losses.iter().map(|&x| Dynamic::from(x)).collect() });
    engine.register_fn("to_string", |f: &mut LrFindHandle| {
        format!("lr_find: {} steps from {:.0e} to {:.0e}; suggested lr {:.1e} (steepest fall), min-loss/10 {:.1e}", f.0.lrs.len(), f.0.lrs.first().copied().unwrap_or(0.0), f.0.lrs.last().copied().unwrap_or(0.0), f.0.suggestion, f.0.min_loss_lr)
    });
    for metric in ["accuracy", "f1", "mse", "mae", "r2"] {
        engine.register_get(format!("val_{metric}"), move |r: &mut RunHandle| -> Dynamic { r.0.final_val().and_then(|v| v.metric(metric)).map(Dynamic::from).unwrap_or(Dynamic::UNIT) });
    }
    engine.register_get("val_loss", |r: &mut RunHandle| -> Dynamic { r.0.final_val().map(|v| v.loss.into()).unwrap_or(Dynamic::UNIT) });
    engine.register_get("best_val_accuracy", |r: &mut RunHandle| -> Dynamic { r.0.best_val_accuracy().map(Dynamic::from).unwrap_or(Dynamic::UNIT) });
    engine.register_get("seconds", |r: &mut RunHandle| r.0.seconds);
    engine.register_get("best_epoch", |r: &mut RunHandle| -> Dynamic { r.0.best_epoch.map(|e| Dynamic::from(e as i64)).unwrap_or(Dynamic::UNIT) });
    engine.register_get("stopped_early_at", |r: &mut RunHandle| -> Dynamic { r.0.stopped_early_at.map(|e| Dynamic::from(e as i64)).unwrap_or(Dynamic::UNIT) });
    engine.register_get("samples_per_sec", |r: &mut RunHandle| r.0.samples_per_sec);
    engine.register_get("train_seconds", |r: &mut RunHandle| r.0.train_seconds);
    engine.register_get("seconds_per_epoch", |r: &mut RunHandle| r.0.train_seconds / r.0.epochs.len().max(1) as f64);
    engine.register_get("trainable_params", |r: &mut RunHandle| r.0.trainable_params);
    engine.register_get("total_params", |r: &mut RunHandle| r.0.total_params);
    engine.register_get("optimizer_state_mb", |r: &mut RunHandle| r.0.optimizer_state_bytes as f64 / 1e6);
    engine.register_get("peak_memory_mb", |r: &mut RunHandle| -> Dynamic { r.0.peak_rss_bytes.map(|b| Dynamic::from(b as f64 / 1e6)).unwrap_or(Dynamic::UNIT) });
    engine.register_get("peak_gpu_memory_mb", |r: &mut RunHandle| -> Dynamic { r.0.peak_device_bytes.map(|b| Dynamic::from(b as f64 / 1e6)).unwrap_or(Dynamic::UNIT) });
    engine.register_get("interrupted", |r: &mut RunHandle| r.0.interrupted);
    engine.register_get("loss_scale", |r: &mut RunHandle| -> Dynamic { r.0.loss_scale.map(Dynamic::from).unwrap_or(Dynamic::UNIT) });
    engine.register_get("skipped_steps", |r: &mut RunHandle| r.0.skipped_steps as i64);
    engine.register_get("steps", |r: &mut RunHandle| r.0.steps.len() as i64);
    engine.register_get("evaluations", |r: &mut RunHandle| -> Array {
        r.0.evaluations
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("step".into(), (e.step as i64).into());
                m.insert("epoch".into(), (e.epoch as i64).into());
                metrics_into(&mut m, &e.result, "val_");
                Dynamic::from(m)
            })
            .collect()
    });
    engine.register_get("samples", |r: &mut RunHandle| -> Array {
        r.0.samples
            .iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("step".into(), (s.step as i64).into());
                m.insert("epoch".into(), (s.epoch as i64).into());
                m.insert("prompt".into(), s.prompt.clone().into());
                m.insert("text".into(), s.text.clone().into());
                Dynamic::from(m)
            })
            .collect()
    });
    engine.register_get("step_history", |r: &mut RunHandle| -> Array {
        r.0.steps
            .iter()
            .map(|s| {
                let mut m = Map::new();
                m.insert("step".into(), (s.step as i64).into());
                m.insert("loss".into(), s.loss.into());
                m.insert("lr".into(), s.lr.into());
                m.insert("grad_norm".into(), s.grad_norm.map_or(Dynamic::UNIT, Dynamic::from));
                Dynamic::from(m)
            })
            .collect()
    });
    engine.register_get("history", |r: &mut RunHandle| -> Array {
        r.0.epochs
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("epoch".into(), (e.epoch as i64).into());
                m.insert("train_loss".into(), e.train_loss.into());
                if let Some(v) = e.val {
                    metrics_into(&mut m, &v, "val_");
                }
                Dynamic::from(m)
            })
            .collect()
    });
    engine.register_fn("save", |r: &mut RunHandle, path: &str| -> R<()> { guard(|| r.0.save(std::path::Path::new(path))) });
    engine.register_fn("load_run", |path: &str| -> R<RunHandle> { guard(|| Ok(RunHandle(Rc::new(TrainRun::load(std::path::Path::new(path))?)))) });
    engine.register_fn("to_string", |r: &mut RunHandle| r.0.to_string());
    engine.register_fn("to_debug", |r: &mut RunHandle| r.0.to_string());
}
