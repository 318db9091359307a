//! Registration of the script API, one module per area.

mod args;
mod charts;
mod data;
mod display;
mod handles;
mod images;
mod language;
mod sft;
mod streamed;
mod learner;
mod model;
mod tensor;
mod train;
mod widgets;

use std::rc::Rc;

use rhai::Engine;

use super::Context;

pub(crate) use charts::ChartHandle;
pub(crate) use handles::TensorHandle;
pub(crate) use widgets::{due as due_widget_handlers, is_blocked as handler_is_blocked, run_interaction, Due as DueWidgetHandler, Handler as WidgetHandler, WidgetHandle};
pub(crate) use display::render;
use display::TableHandle;

/// Shows a value as `display(value)` does: a chart as an image, a widget
/// as itself, the core's types as tables, anything else as text.
fn show(ctx: &Context, value: &rhai::Dynamic) {
    if charts::display(ctx, value) {
        return;
    }
    if let Some(w) = value.clone().try_cast::<WidgetHandle>() {
        ctx.host.display_bundle(w.view());
        return;
    }
    if let Some((plain, html)) = render(value) {
        ctx.host.display(&plain, html.as_deref());
    }
}

pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
    model::register(engine, ctx);
    language::register(engine, ctx);
    // What every kind of model shares: freezing, summaries, parameters.
    learner::register::<crate::model::TextModel>(engine, ctx);
    learner::register::<crate::model::CausalModel>(engine, ctx);
    learner::register::<crate::model::ImageModel>(engine, ctx);
    sft::register(engine, ctx);
    data::register(engine, ctx);
    streamed::register(engine, ctx);
    images::register(engine, ctx);
    train::register(engine);
    charts::register(engine, ctx);
    tensor::register(engine);
    widgets::register(engine, ctx);
    let c = ctx.clone();
    engine.register_fn("set_seed", move |seed: i64| {
        c.seed.set(seed as u64);
        crate::runtime::seed_everything(seed as u64);
    });
    let c = ctx.clone();
    engine.register_fn("input", move |prompt: &str| -> Result<String, Box<rhai::EvalAltResult>> {
        c.host.input(prompt).ok_or_else(|| super::script_error("input(): no input came: this frontend does not accept input (or the cell was interrupted)"))
    });
    let c = ctx.clone();
    engine.register_fn("display", move |value: rhai::Dynamic| show(&c, &value));
    let c = ctx.clone();
    engine.register_fn("clear_output", move || c.host.clear_output());
    let c = ctx.clone();
    engine.register_fn("stop_training", move || learner::stop_training(&c));
    engine.register_type_with_name::<TableHandle>("Table");
    engine.register_fn("table", |rows: rhai::Array| -> Result<TableHandle, Box<rhai::EvalAltResult>> { TableHandle::from_maps(rows, None).map_err(super::script_error) });
    engine.register_fn("table", |rows: rhai::Array, columns: rhai::Array| -> Result<TableHandle, Box<rhai::EvalAltResult>> {
        let columns = columns.into_iter().map(|c| c.into_string().map_err(|t| super::script_error(format!("table: column names must be strings, found a {t}")))).collect::<Result<Vec<_>, _>>()?;
        TableHandle::from_maps(rows, Some(columns)).map_err(super::script_error)
    });
    engine.register_type_with_name::<display::SummaryHandle>("Summary");
    engine.register_fn("to_string", |t: &mut display::SummaryHandle| t.to_string());
    engine.register_fn("to_debug", |t: &mut display::SummaryHandle| t.to_string());
    engine.register_fn("to_string", |t: &mut TableHandle| t.to_string());
    engine.register_fn("to_debug", |t: &mut TableHandle| t.to_string());
    let c = ctx.clone();
    engine.register_fn("help", move |name: &str| -> Result<(), Box<rhai::EvalAltResult>> {
        match super::reference::help(name) {
            Some(text) => {
                c.host.page(&text);
                Ok(())
            }
            None => {
                let names: Vec<String> = super::reference::API.iter().map(|e| e.name.to_string()).collect();
                let near = crate::suggest::closest(name, &names, 5);
                Err(super::script_error(format!("help: no function named '{name}'; closest: {}", near.join(", "))))
            }
        }
    });
    let c = ctx.clone();
    engine.register_fn("device", move || crate::runtime::device_name(c.device.get()));
}
