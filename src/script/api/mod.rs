//! Registration of the script API, one module per area.

mod data;
mod model;
mod train;

use std::rc::Rc;

use rhai::Engine;

use super::Context;

use data::LoaderHandle;
use model::ModelHandle;

/// Names of the API's functions, so that their errors are reported as the
/// user's call failing rather than "in function ...".
const NATIVE_API: &[&str] = &[
    "load_model", "summary", "freeze", "unfreeze", "save", "load_dataset", "clean", "split", "take", "shuffle", "tokenize",
    "loader", "fit", "evaluate", "predict", "set_seed", "labels", "head",
];

pub(super) fn is_native_api(name: &str) -> bool {
    NATIVE_API.contains(&name)
}

pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
    model::register(engine, ctx);
    data::register(engine, ctx);
    train::register(engine, ctx);
    let c = ctx.clone();
    engine.register_fn("set_seed", move |seed: i64| {
        c.seed.set(seed as u64);
        crate::runtime::seed_everything(seed as u64);
    });
    let c = ctx.clone();
    engine.register_fn("device", move || format!("{:?}", c.device.get()).to_lowercase());
}
