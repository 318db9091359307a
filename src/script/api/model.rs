//! `load_model`, freezing, `summary`, `save`.

use std::cell::RefCell;
use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

use crate::model::{LoadOptions, Model, Pooling};
use crate::runtime::{resolve_device, DeviceRequest};
use crate::script::options::{script_error, Options};
use crate::script::{guard, Context};

/// A model shared between script variables (cloning the handle shares it).
#[derive(Clone)]
pub(crate) struct ModelHandle(pub Rc<RefCell<Model>>);

type R<T> = Result<T, Box<EvalAltResult>>;

fn load(ctx: &Context, name: &str, opts: Map) -> R<ModelHandle> {
    let o = Options::new("load_model", opts)?;
    o.choice("task", "classify", &["classify"])?;
    let labels = match o.get("labels") {
        None => None,
        Some(v) if v.is_int() => {
            let n = v.as_int().unwrap();
            if !(2..=100_000).contains(&n) {
                return Err(script_error(format!("load_model: option 'labels' must be at least 2, got {n}")));
            }
            Some((0..n).map(|i| format!("LABEL_{i}")).collect())
        }
        Some(v) if v.is_array() => Some(
            v.clone()
                .into_array()
                .unwrap()
                .into_iter()
                .map(|x| x.into_string().map_err(|t| script_error(format!("load_model: 'labels' must hold strings, found a {t}"))))
                .collect::<R<Vec<String>>>()?,
        ),
        Some(v) => return Err(script_error(format!("load_model: option 'labels' must be a count or an array of names, got {}", v.type_name()))),
    };
    let pooling = Pooling::parse(&o.choice("pooling", "pooler", Pooling::NAMES)?).map_err(|e| script_error(e.to_string()))?;
    let device = match o.get("device") {
        None => ctx.device.get(),
        Some(_) => {
            let req: DeviceRequest = o.choice("device", "auto", &["auto", "cpu", "cuda"])?.parse().map_err(|e: anyhow::Error| script_error(e.to_string()))?;
            guard(|| resolve_device(req))?
        }
    };
    guard(|| {
        let dir = Model::resolve_path(name, &ctx.cache)?;
        let model = Model::load(name, &dir, &LoadOptions { labels, pooling, device })?;
        Ok(ModelHandle(Rc::new(RefCell::new(model))))
    })
}

pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
    engine.register_type_with_name::<ModelHandle>("Model");
    let c = ctx.clone();
    engine.register_fn("load_model", move |name: &str| load(&c, name, Map::new()));
    let c = ctx.clone();
    engine.register_fn("load_model", move |name: &str, opts: Map| load(&c, name, opts));
    engine.register_fn("summary", |m: &mut ModelHandle| m.0.borrow().summary().to_string());
    engine.register_fn("freeze", |m: &mut ModelHandle, pattern: &str| -> R<()> { guard(|| m.0.borrow_mut().set_trainable(pattern, false).map(drop)) });
    engine.register_fn("unfreeze", |m: &mut ModelHandle, pattern: &str| -> R<()> { guard(|| m.0.borrow_mut().set_trainable(pattern, true).map(drop)) });
    engine.register_fn("save", |m: &mut ModelHandle, path: &str| -> R<String> {
        guard(|| m.0.borrow().save(std::path::Path::new(path)).map(|p| p.display().to_string()))
    });
    engine.register_get("labels", |m: &mut ModelHandle| -> Array { m.0.borrow().labels.iter().map(|l| Dynamic::from(l.clone())).collect() });
    engine.register_get("name", |m: &mut ModelHandle| m.0.borrow().name.clone());
    engine.register_get("device", |m: &mut ModelHandle| format!("{:?}", m.0.borrow().device()).to_lowercase());
    engine.register_get("trainable_params", |m: &mut ModelHandle| m.0.borrow().summary().trainable());
    engine.register_get("total_params", |m: &mut ModelHandle| m.0.borrow().summary().total());
    engine.register_get("config", |m: &mut ModelHandle| -> Dynamic {
        rhai::serde::to_dynamic(m.0.borrow().raw_config()).unwrap_or(Dynamic::UNIT)
    });
    engine.register_fn("parameters", |m: &mut ModelHandle| -> Array {
        m.0.borrow()
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
    });
    engine.register_fn("to_string", |m: &mut ModelHandle| describe(&m.0.borrow()));
    engine.register_fn("to_debug", |m: &mut ModelHandle| describe(&m.0.borrow()));
}

fn describe(m: &Model) -> String {
    let s = m.summary();
    format!(
        "Model {} ({} layers, hidden {}; labels {}; trainable {} of {} parameters; {:?})",
        m.name,
        m.config.num_hidden_layers,
        m.config.hidden_size,
        m.labels.join("/"),
        crate::model::group_digits(s.trainable()),
        crate::model::group_digits(s.total()),
        m.device()
    )
}
