//! Widgets as script values: sliders, dropdowns, checkboxes, text boxes,
//! buttons, progress bars, HTML, output areas and boxes. In a notebook each
//! is a Jupyter widget the frontend renders (the kernel's `WidgetHub`);
//! elsewhere it keeps its value and shows as text. Reading `w.value` gives
//! what the frontend shows now; setting it updates the frontend; handlers
//! (`on_change`, `on_click`, `on_submit`) run when the frontend acts: at
//! once when no cell runs, else at the running cell's next safe point
//! (before its next statement or expression, between training steps).

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};
use serde_json::{json, Value};

use crate::kernel::widgets::{WidgetEvent, WidgetHub, WidgetKind};
use crate::script::options::{script_error, Options};
use crate::script::Context;
use crate::train::{TrainEvent, TrainObserver};

type R<T> = Result<T, Box<EvalAltResult>>;

/// A widget in a script variable.
#[derive(Clone)]
pub(crate) struct WidgetHandle {
    pub(crate) id: String,
    hub: Arc<WidgetHub>,
    /// A dropdown's option values, in the order of their labels.
    options: Rc<Vec<Dynamic>>,
}

impl std::fmt::Display for WidgetHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hub.describe(&self.id))
    }
}

impl WidgetHandle {
    /// What shows it in a notebook output (its view and a text fallback).
    pub(crate) fn view(&self) -> crate::kernel::MimeBundle {
        self.hub.view(&self.id)
    }
}

/// What a handler is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Trigger {
    Change,
    Click,
    Submit,
}

/// What to do when the frontend acts on a widget.
#[derive(Clone)]
pub(crate) enum Action {
    /// Call a script function.
    Call(FnPtr),
    /// Re-run an `interact`.
    Interact(Rc<Interaction>),
}

/// A handler of what the frontend does to a widget.
#[derive(Clone)]
pub(crate) struct Handler {
    pub(crate) widget: WidgetHandle,
    pub(crate) trigger: Trigger,
    pub(crate) action: Action,
}

/// An `interact`: a function re-run with its controls' values, whose
/// outputs replace those of its Output widget.
pub(crate) struct Interaction {
    function: FnPtr,
    /// The controls by name, as the function's map argument names them.
    controls: Vec<(String, WidgetHandle)>,
    output: WidgetHandle,
}

/// A handler that is due.
pub(crate) enum Due {
    /// Call the function with the argument.
    Call(FnPtr, Dynamic),
    /// Re-run the `interact` (once however many of its controls changed).
    Interact(Rc<Interaction>),
}

/// A JSON value from the frontend as a script value.
fn to_dynamic(v: &Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from(*b),
        Value::Number(n) => n.as_i64().map(Dynamic::from).unwrap_or_else(|| Dynamic::from(n.as_f64().unwrap_or(f64::NAN))),
        Value::String(s) => Dynamic::from(s.clone()),
        Value::Array(items) => Dynamic::from(items.iter().map(to_dynamic).collect::<Array>()),
        Value::Object(m) => Dynamic::from(m.iter().map(|(k, v)| (k.as_str().into(), to_dynamic(v))).collect::<Map>()),
    }
}

/// A widget's value as the script sees it: a dropdown's chosen option (not
/// its index), a slider's number, a box's text.
fn value_of(w: &WidgetHandle) -> Dynamic {
    match w.hub.kind(&w.id) {
        Some(WidgetKind::Dropdown) => w.hub.get(&w.id, "index").and_then(|i| i.as_u64()).and_then(|i| w.options.get(i as usize).cloned()).unwrap_or(Dynamic::UNIT),
        _ => w.hub.get(&w.id, "value").map(|v| to_dynamic(&v)).unwrap_or(Dynamic::UNIT),
    }
}

/// Sets a widget's value from the script, checked against its kind.
fn set_value(w: &mut WidgetHandle, value: Dynamic) -> R<()> {
    let kind = w.hub.kind(&w.id).ok_or_else(|| script_error("this widget was closed"))?;
    let number = |v: &Dynamic| v.as_float().ok().or_else(|| v.as_int().ok().map(|i| i as f64));
    let (key, json) = match kind {
        WidgetKind::IntSlider | WidgetKind::IntProgress => ("value", json!(value.as_int().map_err(|_| script_error(format!("{} takes an integer, got {}", kind.with_article(), value.type_name())))?)),
        WidgetKind::FloatSlider | WidgetKind::FloatProgress => ("value", json!(number(&value).ok_or_else(|| script_error(format!("{} takes a number, got {}", kind.with_article(), value.type_name())))?)),
        WidgetKind::Checkbox => ("value", json!(value.as_bool().map_err(|_| script_error(format!("a Checkbox takes true or false, got {}", value.type_name())))?)),
        WidgetKind::Text | WidgetKind::Html => ("value", json!(value.to_string())),
        WidgetKind::Dropdown => {
            let at = w.options.iter().position(|o| o.to_string() == value.to_string());
            let labels: Vec<String> = w.options.iter().map(|o| o.to_string()).collect();
            ("index", json!(at.ok_or_else(|| script_error(format!("'{value}' is not one of this dropdown's options: {}", labels.join(", "))))?))
        }
        WidgetKind::Button | WidgetKind::Output | WidgetKind::HBox | WidgetKind::VBox => return Err(script_error(format!("{} has no value", kind.with_article()))),
    };
    let mut changes = serde_json::Map::new();
    changes.insert(key.into(), json);
    w.hub.set(&w.id, changes).map_err(script_error)
}

/// The settings of `o` that are given, as state keys.
fn given(o: &Options, keys: &[(&str, &str)]) -> R<serde_json::Map<String, Value>> {
    let mut state = serde_json::Map::new();
    for (option, key) in keys {
        if let Some(v) = o.get(option) {
            let value = match v {
                v if v.is_string() => json!(v.to_string()),
                v if v.is_bool() => json!(v.as_bool().unwrap_or_default()),
                v if v.is_int() => json!(v.as_int().unwrap_or_default()),
                v if v.is_float() => json!(v.as_float().unwrap_or_default()),
                other => return Err(script_error(format!("{option} must be a number, a string or true/false, got {}", other.type_name()))),
            };
            state.insert((*key).into(), value);
        }
    }
    Ok(state)
}

fn make(ctx: &Context, kind: WidgetKind, state: serde_json::Map<String, Value>, options: Vec<Dynamic>) -> R<WidgetHandle> {
    let hub = ctx.widgets.clone();
    let id = hub.create(kind, state).map_err(script_error)?;
    Ok(WidgetHandle { id, hub, options: Rc::new(options) })
}

/// A slider: over integers when min, max, step and value are all
/// integers, else over decimals.
fn slider(ctx: &Context, opts: Map) -> R<WidgetHandle> {
    let o = Options::new("slider", opts)?;
    let is_int = ["min", "max", "step", "value"].iter().all(|k| o.get(k).is_none_or(|v| v.is_int()));
    let kind = if is_int { WidgetKind::IntSlider } else { WidgetKind::FloatSlider };
    let (min, max) = (o.float("min", 0.0, f64::MIN, f64::MAX)?, o.float("max", 100.0, f64::MIN, f64::MAX)?);
    if min > max {
        return Err(script_error(format!("slider: min ({min}) is above max ({max})")));
    }
    let value = o.float("value", min, f64::MIN, f64::MAX)?;
    if !(min..=max).contains(&value) {
        return Err(script_error(format!("slider: value {value} is outside min..max ({min}..{max})")));
    }
    let mut state = given(&o, &[("min", "min"), ("max", "max"), ("step", "step"), ("description", "description"), ("continuous_update", "continuous_update")])?;
    state.insert("value".into(), if is_int { json!(value as i64) } else { json!(value) });
    if !is_int {
        for key in ["min", "max", "step"] {
            if let Some(v) = state.get(key).and_then(Value::as_f64) {
                state.insert(key.into(), json!(v));
            }
        }
    }
    make(ctx, kind, state, Vec::new())
}

fn dropdown(ctx: &Context, choices: Array, opts: Map) -> R<WidgetHandle> {
    let o = Options::new("dropdown", opts)?;
    if choices.is_empty() {
        return Err(script_error("dropdown: give at least one option"));
    }
    let labels: Vec<String> = choices.iter().map(|c| c.to_string()).collect();
    let index = match o.get("value") {
        Some(v) => labels.iter().position(|l| *l == v.to_string()).ok_or_else(|| script_error(format!("dropdown: value '{v}' is not one of the options: {}", labels.join(", "))))?,
        None => 0,
    };
    let mut state = given(&o, &[("description", "description")])?;
    state.insert("_options_labels".into(), json!(labels));
    state.insert("index".into(), json!(index));
    make(ctx, WidgetKind::Dropdown, state, choices)
}

fn boxed(ctx: &Context, kind: WidgetKind, children: Array) -> R<WidgetHandle> {
    let mut ids = Vec::new();
    for (i, child) in children.into_iter().enumerate() {
        let w = child.try_cast::<WidgetHandle>().ok_or_else(|| script_error(format!("{}: item {} is not a widget", kind.class().to_lowercase(), i + 1)))?;
        ids.push(json!(format!("IPY_MODEL_{}", w.id)));
    }
    let mut state = serde_json::Map::new();
    state.insert("children".into(), json!(ids));
    make(ctx, kind, state, Vec::new())
}

fn add_handler(ctx: &Context, w: &WidgetHandle, trigger: Trigger, function: FnPtr) -> R<()> {
    let kind = w.hub.kind(&w.id).ok_or_else(|| script_error("this widget was closed"))?;
    let fits = match trigger {
        Trigger::Click => kind == WidgetKind::Button,
        Trigger::Submit => kind == WidgetKind::Text,
        Trigger::Change => !matches!(kind, WidgetKind::Button | WidgetKind::Output | WidgetKind::HBox | WidgetKind::VBox | WidgetKind::Html),
    };
    if !fits {
        let what = match trigger {
            Trigger::Click => "on_click is for buttons",
            Trigger::Submit => "on_submit is for text boxes",
            Trigger::Change => "on_change is for widgets with a value the user changes (sliders, dropdowns, checkboxes, text)",
        };
        return Err(script_error(format!("{what}; this is {}", kind.with_article())));
    }
    ctx.widget_handlers.borrow_mut().push(Handler { widget: w.clone(), trigger, action: Action::Call(function) });
    Ok(())
}

/// The handlers due for the frontend's events since the last call, each
/// call with the argument it gets (the new value, or the widget).
pub(crate) fn due(ctx: &Context) -> Vec<Due> {
    let events = ctx.widgets.take_events();
    let handlers = ctx.widget_handlers.borrow();
    let mut calls: Vec<Due> = Vec::new();
    for event in events {
        let (id, trigger) = match &event {
            WidgetEvent::Changed { id, key, .. } if key == "value" || key == "index" => (id, Trigger::Change),
            WidgetEvent::Changed { .. } => continue,
            WidgetEvent::Clicked { id } => (id, Trigger::Click),
            WidgetEvent::Submitted { id } => (id, Trigger::Submit),
        };
        for h in handlers.iter().filter(|h| h.widget.id == *id && h.trigger == trigger) {
            match &h.action {
                Action::Call(function) => {
                    let arg = if trigger == Trigger::Change { value_of(&h.widget) } else { Dynamic::from(h.widget.clone()) };
                    calls.push(Due::Call(function.clone(), arg));
                }
                // A dragged slider sends many values: the run reads them all at once.
                Action::Interact(i) if calls.iter().any(|c| matches!(c, Due::Interact(j) if Rc::ptr_eq(i, j))) => {}
                Action::Interact(i) => calls.push(Due::Interact(i.clone())),
            }
        }
    }
    calls
}

/// Whether a value the handler captured is in use by the running script
/// (locked for a method call on it), so that running it now would fail.
pub(crate) fn is_blocked(due: &Due) -> bool {
    let function = match due {
        Due::Call(function, _) => function,
        Due::Interact(i) => &i.function,
    };
    function.curry().iter().any(Dynamic::is_locked)
}

/// Runs `f` with what it shows collected, where a frontend shows widgets;
/// elsewhere it shows as usual and `None` comes back. No widget handler
/// runs inside (what it printed would land in this capture).
fn captured(ctx: &Context, f: impl FnOnce()) -> Option<Vec<Value>> {
    let _held = crate::script::HandlersHeld::hold(ctx);
    if !ctx.widgets.is_attached() {
        f();
        return None;
    }
    /// Ends the capture however `f` ends (a panic caught further up must
    /// not leave every later output captured).
    struct Capture<'a> {
        ctx: &'a Context,
        ended: bool,
    }
    impl Drop for Capture<'_> {
        fn drop(&mut self) {
            if !self.ended {
                self.ctx.host.end_capture();
            }
        }
    }
    ctx.host.begin_capture();
    let mut capture = Capture { ctx, ended: false };
    f();
    capture.ended = true;
    Some(ctx.host.end_capture())
}

fn set_outputs(w: &WidgetHandle, outputs: Vec<Value>) -> R<()> {
    let mut changes = serde_json::Map::new();
    changes.insert("outputs".into(), Value::Array(outputs));
    w.hub.set(&w.id, changes).map_err(script_error)
}

/// Runs an `interact`'s function with its controls' values (one map) and
/// puts what it printed, showed and returned in its Output widget, in
/// place of the last run's. An error shows there too, as in ipywidgets.
pub(crate) fn run_interaction(ctx: &Context, i: &Interaction, call: impl FnOnce(&FnPtr, Dynamic) -> R<Dynamic>) {
    let values: Map = i.controls.iter().map(|(name, w)| (name.as_str().into(), value_of(w))).collect();
    // Each run counts as an evaluation, so that a chart it plots shows once.
    ctx.evals.set(ctx.evals.get() + 1);
    let outputs = captured(ctx, || match call(&i.function, Dynamic::from(values)) {
        Ok(v) if v.clone().try_cast::<super::ChartHandle>().is_some_and(|c| c.shown_by_this_cell(ctx)) => {}
        Ok(v) => super::show(ctx, &v),
        Err(e) => ctx.host.eprint(&format!("interact: {}", crate::script::message_of(e.unwrap_inner()))),
    });
    if let Some(outputs) = outputs {
        if let Err(e) = set_outputs(&i.output, outputs) {
            ctx.host.eprint(&format!("interact: {e}"));
        }
    }
}

fn interact(nctx: &NativeCallContext, ctx: &Context, function: FnPtr, controls: Map) -> R<()> {
    if controls.is_empty() {
        return Err(script_error("interact: give its controls in a map, like interact(f, #{ layers: slider(#{ min: 1, max: 6 }) })"));
    }
    let mut named = Vec::new();
    for (name, control) in controls {
        let w = control.try_cast::<WidgetHandle>().ok_or_else(|| script_error(format!("interact: '{name}' is not a widget; give a slider, dropdown, checkbox or text")))?;
        match w.hub.kind(&w.id) {
            Some(WidgetKind::IntSlider | WidgetKind::FloatSlider | WidgetKind::Dropdown | WidgetKind::Checkbox | WidgetKind::Text) => {}
            Some(kind) => return Err(script_error(format!("interact: '{name}' is {}, which has no value to pass; give a slider, dropdown, checkbox or text", kind.with_article()))),
            None => return Err(script_error(format!("interact: '{name}' was closed"))),
        }
        named.push((name.to_string(), w));
    }
    let output = make(ctx, WidgetKind::Output, serde_json::Map::new(), Vec::new())?;
    if ctx.widgets.is_attached() {
        let mut children: Array = named.iter().map(|(_, w)| Dynamic::from(w.clone())).collect();
        children.push(Dynamic::from(output.clone()));
        let panel = boxed(ctx, WidgetKind::VBox, children)?;
        ctx.host.display_bundle(panel.view());
    }
    let interaction = Rc::new(Interaction { function, controls: named, output });
    for (_, w) in &interaction.controls {
        ctx.widget_handlers.borrow_mut().push(Handler { widget: w.clone(), trigger: Trigger::Change, action: Action::Interact(interaction.clone()) });
    }
    run_interaction(ctx, &interaction, |f, values| f.call_within_context(nctx, (values,)));
    Ok(())
}

fn output_widget(w: &WidgetHandle) -> R<()> {
    match w.hub.kind(&w.id) {
        Some(WidgetKind::Output) => Ok(()),
        Some(kind) => Err(script_error(format!("show, write, clear and capture are for output areas (output()); this is {}", kind.with_article()))),
        None => Err(script_error("this widget was closed")),
    }
}

/// Adds what `f` shows to an Output widget's outputs.
fn append_captured(ctx: &Context, w: &WidgetHandle, f: impl FnOnce()) -> R<()> {
    output_widget(w)?;
    for output in captured(ctx, f).unwrap_or_default() {
        w.hub.append_output(&w.id, output).map_err(script_error)?;
    }
    Ok(())
}

/// `fit(..., #{ controls: true })`: a Stop button and a readout of the
/// step, learning rate and loss, as widgets.
pub(crate) struct FitControls {
    stop_button: WidgetHandle,
    readout: WidgetHandle,
    pressed: Arc<AtomicBool>,
}

impl FitControls {
    /// Shows the controls where a frontend renders widgets (elsewhere the
    /// run's usual display is enough; an interrupt stops it).
    pub(crate) fn show(ctx: &Context) -> R<Option<Self>> {
        if !ctx.widgets.is_attached() {
            return Ok(None);
        }
        let label = |text: &str| [("description".to_string(), json!(text)), ("button_style".to_string(), json!("danger")), ("icon".to_string(), json!("stop")), ("tooltip".to_string(), json!("Stop training at the next batch and keep the weights so far"))];
        let stop_button = make(ctx, WidgetKind::Button, label("Stop").into_iter().collect(), Vec::new())?;
        let readout = make(ctx, WidgetKind::Html, [("value".to_string(), json!("starting"))].into_iter().collect(), Vec::new())?;
        let panel = boxed(ctx, WidgetKind::HBox, vec![Dynamic::from(stop_button.clone()), Dynamic::from(readout.clone())])?;
        ctx.host.display_bundle(panel.view());
        let pressed = Arc::new(AtomicBool::new(false));
        // The press stops the loop at its next batch, as an interrupt does.
        ctx.widgets.raise_on_click(&stop_button.id, pressed.clone());
        ctx.widgets.raise_on_click(&stop_button.id, ctx.stop.clone());
        Ok(Some(Self { stop_button, readout, pressed }))
    }

    /// An observer that keeps the readout current (a few times a second).
    pub(crate) fn readout(&self) -> Readout {
        Readout { readout: self.readout.clone(), epochs: 0, total_steps: 0, shown: None }
    }

    /// After the run: the button is disabled, and a press (not a kernel
    /// interrupt) lets the cell go on with the run so far.
    pub(crate) fn finish(self, ctx: &Context) {
        ctx.widgets.stop_raising(&self.stop_button.id);
        let pressed = self.pressed.load(Ordering::Relaxed);
        if pressed {
            ctx.stop.store(false, Ordering::Relaxed);
        }
        let mut changes = serde_json::Map::new();
        changes.insert("disabled".into(), json!(true));
        changes.insert("description".into(), json!(if pressed { "Stopped" } else { "Done" }));
        changes.insert("button_style".into(), json!(""));
        // The widget may have been closed by a handler; nothing is left to update then.
        let _ = self.stop_button.hub.set(&self.stop_button.id, changes);
    }
}

/// Keeps a `FitControls` readout current.
pub(crate) struct Readout {
    readout: WidgetHandle,
    epochs: usize,
    total_steps: usize,
    shown: Option<Instant>,
}

impl Readout {
    fn show(&mut self, text: String) {
        let mut changes = serde_json::Map::new();
        changes.insert("value".into(), json!(text));
        let _ = self.readout.hub.set(&self.readout.id, changes);
        self.shown = Some(Instant::now());
    }
}

impl TrainObserver for Readout {
    fn on_event(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Start { epochs, total_steps, .. } => {
                (self.epochs, self.total_steps) = (*epochs, *total_steps);
            }
            TrainEvent::Step { epoch, record, .. } => {
                // Every step would flood the frontend with updates.
                if self.shown.is_some_and(|t| t.elapsed() < Duration::from_millis(250)) && record.step < self.total_steps {
                    return;
                }
                let lr = if record.lr == 0.0 { "0".to_string() } else { format!("{:.2e}", record.lr) };
                self.show(format!("step {}/{} · epoch {epoch}/{} · lr {lr} · loss {:.4}", record.step, self.total_steps, self.epochs, record.loss));
            }
            TrainEvent::Interrupted { steps } => self.show(format!("stopped after {steps} of {} steps", self.total_steps)),
            TrainEvent::Done(run) if !run.interrupted => self.show(format!("done: {} steps in {:.0}s", run.steps.len(), run.seconds)),
            _ => {}
        }
    }
}

pub(super) fn register(engine: &mut Engine, ctx: &Rc<Context>) {
    engine.register_type_with_name::<WidgetHandle>("Widget");
    engine.register_fn("to_string", |w: &mut WidgetHandle| w.to_string());
    engine.register_fn("to_debug", |w: &mut WidgetHandle| w.to_string());
    engine.register_get("value", |w: &mut WidgetHandle| value_of(w));
    engine.register_set("value", |w: &mut WidgetHandle, v: Dynamic| set_value(w, v));
    engine.register_get("description", |w: &mut WidgetHandle| w.hub.get(&w.id, "description").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default());
    engine.register_set("description", |w: &mut WidgetHandle, text: &str| -> R<()> {
        let mut changes = serde_json::Map::new();
        changes.insert("description".into(), json!(text));
        w.hub.set(&w.id, changes).map_err(script_error)
    });
    engine.register_fn("close", |w: &mut WidgetHandle| w.hub.close(&w.id));
    let c = ctx.clone();
    engine.register_fn("slider", move |opts: Map| slider(&c, opts));
    let c = ctx.clone();
    engine.register_fn("dropdown", move |choices: Array| dropdown(&c, choices, Map::new()));
    let c = ctx.clone();
    engine.register_fn("dropdown", move |choices: Array, opts: Map| dropdown(&c, choices, opts));
    let c = ctx.clone();
    engine.register_fn("checkbox", move |opts: Map| -> R<WidgetHandle> {
        let o = Options::new("checkbox", opts)?;
        make(&c, WidgetKind::Checkbox, given(&o, &[("value", "value"), ("description", "description")])?, Vec::new())
    });
    let c = ctx.clone();
    engine.register_fn("text", move |opts: Map| -> R<WidgetHandle> {
        let o = Options::new("text", opts)?;
        make(&c, WidgetKind::Text, given(&o, &[("value", "value"), ("description", "description"), ("placeholder", "placeholder")])?, Vec::new())
    });
    let c = ctx.clone();
    engine.register_fn("button", move |label: &str| make(&c, WidgetKind::Button, [("description".to_string(), json!(label))].into_iter().collect(), Vec::new()));
    let c = ctx.clone();
    engine.register_fn("button", move |label: &str, opts: Map| -> R<WidgetHandle> {
        let o = Options::new("button", opts)?;
        let mut state = given(&o, &[("style", "button_style"), ("icon", "icon"), ("tooltip", "tooltip")])?;
        state.insert("description".into(), json!(label));
        make(&c, WidgetKind::Button, state, Vec::new())
    });
    let c = ctx.clone();
    engine.register_fn("progress", move |opts: Map| -> R<WidgetHandle> {
        let o = Options::new("progress", opts)?;
        let is_int = ["min", "max", "value"].iter().all(|k| o.get(k).is_none_or(|v| v.is_int()));
        let kind = if is_int { WidgetKind::IntProgress } else { WidgetKind::FloatProgress };
        let mut state = given(&o, &[("min", "min"), ("max", "max"), ("value", "value"), ("description", "description"), ("style", "bar_style")])?;
        if !is_int {
            for key in ["min", "max", "value"] {
                if let Some(v) = state.get(key).and_then(Value::as_f64) {
                    state.insert(key.into(), json!(v));
                }
            }
        }
        make(&c, kind, state, Vec::new())
    });
    let c = ctx.clone();
    engine.register_fn("html", move |text: &str| make(&c, WidgetKind::Html, [("value".to_string(), json!(text))].into_iter().collect(), Vec::new()));
    let c = ctx.clone();
    engine.register_fn("hbox", move |children: Array| boxed(&c, WidgetKind::HBox, children));
    let c = ctx.clone();
    engine.register_fn("vbox", move |children: Array| boxed(&c, WidgetKind::VBox, children));
    let c = ctx.clone();
    engine.register_fn("output", move || make(&c, WidgetKind::Output, serde_json::Map::new(), Vec::new()));
    let c = ctx.clone();
    engine.register_fn("show", move |w: &mut WidgetHandle, value: Dynamic| append_captured(&c, w, || super::show(&c, &value)));
    let c = ctx.clone();
    engine.register_fn("write", move |w: &mut WidgetHandle, text: &str| append_captured(&c, w, || c.host.print(text)));
    engine.register_fn("clear", |w: &mut WidgetHandle| -> R<()> {
        output_widget(w)?;
        set_outputs(w, Vec::new())
    });
    let c = ctx.clone();
    engine.register_fn("capture", move |nctx: NativeCallContext, w: &mut WidgetHandle, f: FnPtr| -> R<Dynamic> {
        let mut result = Ok(Dynamic::UNIT);
        append_captured(&c, w, || result = f.call_within_context(&nctx, ()))?;
        result
    });
    let c = ctx.clone();
    engine.register_fn("interact", move |nctx: NativeCallContext, f: FnPtr, controls: Map| interact(&nctx, &c, f, controls));
    let c = ctx.clone();
    engine.register_fn("on_change", move |w: &mut WidgetHandle, f: FnPtr| add_handler(&c, w, Trigger::Change, f));
    let c = ctx.clone();
    engine.register_fn("on_click", move |w: &mut WidgetHandle, f: FnPtr| add_handler(&c, w, Trigger::Click, f));
    let c = ctx.clone();
    engine.register_fn("on_submit", move |w: &mut WidgetHandle, f: FnPtr| add_handler(&c, w, Trigger::Submit, f));
}
