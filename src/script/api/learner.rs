//! What every kind of model offers a script, registered once per handle
//! type: freezing, summaries, `fit`, `evaluate`, `lr_find` and
//! `find_batch_size`.

use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use super::args::selector_list;
use super::handles::{LoaderHandle, LrFindHandle, RunHandle, Shared, TensorHandle};
use super::train::{eval_map, fit_options};
use crate::model::Learner;
use crate::script::options::Options;
use crate::script::{guard, Context};
use crate::train::{self, FitOptions};

type R<T> = Result<T, Box<EvalAltResult>>;

/// Sets several selectors all or nothing: each is checked before any changes.
fn each_selector(model: &mut dyn Learner, selectors: &[String], trainable: bool) -> anyhow::Result<i64> {
    for s in selectors {
        model.select(s)?;
    }
    let mut n = 0;
    for s in selectors {
        n += model.set_trainable(s, trainable)?;
    }
    Ok(n as i64)
}

fn run_fit<M: Learner + 'static>(ctx: &Context, m: &Shared<M>, train: &LoaderHandle, val: Option<&LoaderHandle>, opts: Map) -> R<RunHandle> {
    if ctx.training.get() {
        return Err(crate::script::script_error("fit: a run is already training in this cell, and a widget handler cannot start another; start it when that run ends"));
    }
    let with_controls = match opts.get("controls") {
        None => false,
        Some(v) => v.as_bool().map_err(|_| crate::script::script_error(format!("fit: option 'controls' must be true or false, got {}", v.type_name())))?,
    };
    let opts = fit_options(ctx, opts)?;
    let controls = if with_controls { super::widgets::FitControls::show(ctx)? } else { None };
    let mut observer = ctx.host.train_observer();
    let mut readout: Box<dyn train::TrainObserver> = match &controls {
        Some(c) => Box::new(c.readout()),
        None => Box::new(train::Silent),
    };
    let mut shown = train::events::Both(observer.as_mut(), readout.as_mut());
    let mut observers = train::events::Both(&mut shown, &mut HandlersBetweenSteps(ctx));
    ctx.training.set(true);
    let run = guard(|| m.with(|model| train::fit(model, &train.0, val.map(|v| &v.0), &opts, &mut observers, &ctx.stop)));
    ctx.training.set(false);
    if ctx.stop_asked.replace(false) {
        ctx.stop.store(false, std::sync::atomic::Ordering::Relaxed);
    }
    if let Some(c) = controls {
        c.finish(ctx);
    }
    Ok(RunHandle(Rc::new(run?)))
}

/// Serves the frontend's widget events after each training step, so that
/// a handler (a button's) acts while the run goes on.
struct HandlersBetweenSteps<'a>(&'a Context);

impl train::TrainObserver for HandlersBetweenSteps<'_> {
    fn on_event(&mut self, event: &train::TrainEvent) {
        if matches!(event, train::TrainEvent::Step { .. }) {
            crate::script::serve_widget_events_in_training(self.0);
        }
    }
}

/// `stop_training()`: ends the run under way at its next batch, once the
/// handlers now running are done, keeping what it learned, and lets the
/// cell go on (for a widget handler, while the cell trains). Whether a run
/// was under way.
pub(super) fn stop_training(ctx: &Context) -> bool {
    if !ctx.training.get() {
        return false;
    }
    ctx.stop_asked.set(true);
    true
}

/// Registers the shared methods for the handles of model type `M`.
pub(super) fn register<M: Learner + 'static>(engine: &mut Engine, ctx: &Rc<Context>) {
    register_weight::<M>(engine);
    let c = ctx.clone();
    engine.register_fn("plot_freeze", move |m: Shared<M>| -> R<super::ChartHandle> { super::charts::show(&c, "plot_freeze", m.with(|model| crate::plot::freeze_chart(&model.summary())), Map::new()) });
    let c = ctx.clone();
    engine.register_fn("plot_freeze", move |m: Shared<M>, opts: Map| -> R<super::ChartHandle> { super::charts::show(&c, "plot_freeze", m.with(|model| crate::plot::freeze_chart(&model.summary())), opts) });
    engine.register_fn("summary", |m: &mut Shared<M>| super::display::SummaryHandle(std::rc::Rc::new(m.with(|model| model.summary()))));
    for (name, trainable) in [("freeze", false), ("unfreeze", true)] {
        engine.register_fn(name, move |m: &mut Shared<M>, selector: &str| -> R<i64> { guard(|| m.with(|model| Ok(model.set_trainable(selector, trainable)? as i64))) });
        engine.register_fn(name, move |m: &mut Shared<M>, selectors: Array| -> R<i64> {
            let selectors = selector_list(name, selectors)?;
            guard(|| m.with(|model| each_selector(model, &selectors, trainable)))
        });
    }
    engine.register_fn("freeze_all", |m: &mut Shared<M>| m.with(|model| model.set_all_trainable(false)));
    engine.register_fn("unfreeze_all", |m: &mut Shared<M>| m.with(|model| model.set_all_trainable(true)));
    engine.register_fn("train_only", |m: &mut Shared<M>, selector: &str| -> R<i64> { guard(|| m.with(|model| Ok(model.train_only(&[selector.to_string()])? as i64))) });
    engine.register_fn("train_only", |m: &mut Shared<M>, selectors: Array| -> R<i64> {
        let selectors = selector_list("train_only", selectors)?;
        guard(|| m.with(|model| Ok(model.train_only(&selectors)? as i64)))
    });
    engine.register_fn("trainable_layers", |m: &mut Shared<M>, n: i64| -> R<i64> { guard(|| m.with(|model| Ok(model.trainable_layers(n)? as i64))) });
    engine.register_fn("select", |m: &mut Shared<M>, selector: &str| -> R<Array> { guard(|| m.with(|model| Ok(model.select(selector)?.into_iter().map(Dynamic::from).collect()))) });
    engine.register_fn("layer_groups", |m: &mut Shared<M>| -> Array { m.with(|model| model.layer_groups().into_iter().map(|g| Dynamic::from(g.name)).collect()) });
    engine.register_fn("save", |m: &mut Shared<M>, path: &str| -> R<String> { guard(|| m.save(path)) });
    engine.register_get("labels", |m: &mut Shared<M>| -> Array { m.with(|model| model.labels().iter().map(|l| Dynamic::from(l.clone())).collect()) });
    engine.register_get("task", |m: &mut Shared<M>| m.with(|model| model.task().name().to_string()));
    engine.register_get("trainable_params", |m: &mut Shared<M>| m.with(|model| model.summary().trainable()));
    engine.register_get("total_params", |m: &mut Shared<M>| m.with(|model| model.summary().total()));
    engine.register_fn("parameters", |m: &mut Shared<M>| -> Array {
        m.with(|model| {
            model
                .named_parameters()
                .into_iter()
                .map(|(name, t)| {
                    let mut p = Map::new();
                    p.insert("name".into(), name.into());
                    p.insert("shape".into(), Dynamic::from(t.size().into_iter().map(Dynamic::from).collect::<Array>()));
                    p.insert("trainable".into(), t.requires_grad().into());
                    Dynamic::from(p)
                })
                .collect()
        })
    });

    let c = ctx.clone();
    engine.register_fn("fit", move |m: Shared<M>, t: LoaderHandle, v: LoaderHandle, o: Map| run_fit(&c, &m, &t, Some(&v), o));
    let c = ctx.clone();
    engine.register_fn("fit", move |m: Shared<M>, t: LoaderHandle, v: LoaderHandle| run_fit(&c, &m, &t, Some(&v), Map::new()));
    let c = ctx.clone();
    engine.register_fn("fit", move |m: Shared<M>, t: LoaderHandle, o: Map| run_fit(&c, &m, &t, None, o));
    let c = ctx.clone();
    engine.register_fn("evaluate", move |m: Shared<M>, l: LoaderHandle| evaluate_in(&c, &m, &l, Map::new()));
    let c = ctx.clone();
    engine.register_fn("evaluate", move |m: Shared<M>, l: LoaderHandle, opts: Map| evaluate_in(&c, &m, &l, opts));
    let c = ctx.clone();
    engine.register_fn("find_batch_size", move |m: Shared<M>, l: LoaderHandle| batch_size_for(&c, &m, &l, Map::new()));
    let c = ctx.clone();
    engine.register_fn("find_batch_size", move |m: Shared<M>, l: LoaderHandle, opts: Map| batch_size_for(&c, &m, &l, opts));
    let c = ctx.clone();
    engine.register_fn("lr_find", move |m: Shared<M>, t: LoaderHandle, opts: Map| -> R<LrFindHandle> {
        let o = Options::new("lr_find", opts)?;
        let d = train::LrFindOptions::default();
        let find = train::LrFindOptions { start: o.float("start", d.start, 1e-12, 1e3)?, end: o.float("end", d.end, 1e-12, 1e4)?, steps: o.int("steps", d.steps as i64, 10, 100_000)? as usize };
        let fit = FitOptions { weight_decay: o.float("weight_decay", 0.01, 0.0, 1.0)?, ..FitOptions::default() };
        let found = guard(|| m.with(|model| train::lr_find(model, &t.0, &fit, &find, &c.stop)))?;
        Ok(LrFindHandle(Rc::new(found)))
    });
    let c = ctx.clone();
    engine.register_fn("lr_find", move |m: Shared<M>, t: LoaderHandle| -> R<LrFindHandle> {
        let found = guard(|| m.with(|model| train::lr_find(model, &t.0, &FitOptions::default(), &train::LrFindOptions::default(), &c.stop)))?;
        Ok(LrFindHandle(Rc::new(found)))
    });
}

/// `evaluate(model, loader, #{ precision })`, in the run's precision unless given.
fn evaluate_in<M: Learner + 'static>(ctx: &Context, m: &Shared<M>, l: &LoaderHandle, opts: Map) -> R<Map> {
    let precision = Options::new("evaluate", opts)?.precision(ctx.precision)?;
    guard(|| {
        m.with(|model| {
            let (r, detail) = train::evaluate_detailed_in(model, &l.0, precision)?;
            Ok(eval_map(r, &detail, model.labels()))
        })
    })
}

/// `find_batch_size(model, loader, #{ precision })`: the batch that fits,
/// the accumulation that keeps the loader's effective batch, and a loader
/// with that batch.
fn batch_size_for<M: Learner + 'static>(ctx: &Context, m: &Shared<M>, l: &LoaderHandle, opts: Map) -> R<Map> {
    let precision = Options::new("find_batch_size", opts)?.precision(ctx.precision)?;
    let found = guard(|| m.with(|model| train::find_batch_size(model, &l.0, precision)))?;
    let mut loader = l.0.clone();
    loader.options.batch_size = found.batch;
    let mut map = Map::new();
    map.insert("batch".into(), (found.batch as i64).into());
    map.insert("accumulate".into(), (found.accumulate as i64).into());
    map.insert("failed".into(), found.failed.iter().map(|(b, asked)| Dynamic::from(format!("{b} ({asked})"))).collect::<Array>().into());
    map.insert("loader".into(), Dynamic::from(LoaderHandle(loader)));
    Ok(map)
}

/// Registers `model.weight(name)` for the handles of model type `M`: a copy of a
/// parameter, to look at or to check that a frozen one did not change.
fn register_weight<M: Learner + 'static>(engine: &mut Engine) {
    engine.register_fn("weight", |m: &mut Shared<M>, name: &str| -> R<TensorHandle> {
        m.with(|model| {
            let params = model.named_parameters();
            match params.iter().find(|(n, _)| n == name) {
                Some((_, t)) => Ok(TensorHandle(t.detach().copy())),
                None => {
                    let names: Vec<String> = params.into_iter().map(|(n, _)| n).collect();
                    Err(crate::script::options::script_error(format!("weight: the model has no parameter '{name}'; closest: {}", crate::suggest::closest(name, &names, 5).join(", "))))
                }
            }
        })
    });
}
