//! Jupyter widgets as JupyterLab's widget manager speaks them (protocol
//! 2.1.0; `@jupyter-widgets/controls` 2.0.0 models): each widget is a comm
//! to the `jupyter.widget` target whose state the frontend renders, with
//! its own layout model and, for most kinds, a style model. The state
//! dicts are ipywidgets 8.1's, key for key (docs/widgets-protocol.md, §3),
//! because the frontend's defaults differ from ipywidgets' own.
//!
//! The hub keeps every widget's state. The frontend's changes (a slider
//! moved, a button pressed) update it on the comm thread as they arrive, so
//! that reading a value is always current, and queue an event for the
//! interpreter, which runs its handlers when it can. Without a frontend
//! (a script run in a terminal) widgets keep their state and send nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Map, Value};

use super::comm::{CommEvent, CommSink};
use super::frontend::{locked, CommFromKernel};
use super::{Frontend, MimeBundle};

/// The comm target widgets open.
pub const TARGET: &str = "jupyter.widget";
/// The widget protocol version, sent with every widget's `comm_open`.
pub const PROTOCOL_VERSION: &str = "2.1.0";
/// The MIME type of a widget's view in an output.
pub const VIEW_MIME: &str = "application/vnd.jupyter.widget-view+json";

/// The kinds of widget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WidgetKind {
    /// A slider over integers.
    IntSlider,
    /// A slider over decimals.
    FloatSlider,
    /// A choice among labelled options (`index` is what the frontend sends).
    Dropdown,
    /// A box to tick.
    Checkbox,
    /// A line of text.
    Text,
    /// A button (clicks arrive as events).
    Button,
    /// A progress bar over integers.
    IntProgress,
    /// A progress bar over decimals.
    FloatProgress,
    /// HTML text.
    Html,
    /// An area for outputs (`outputs` is a list of notebook outputs).
    Output,
    /// Widgets side by side.
    HBox,
    /// Widgets stacked.
    VBox,
}

impl WidgetKind {
    /// "a" or "an" and the class name, for messages.
    pub fn with_article(self) -> String {
        let class = self.class();
        // HTML and HBox are read letter by letter: an aitch.
        let article = if class.starts_with(['A', 'E', 'I', 'O', 'U', 'H']) { "an" } else { "a" };
        format!("{article} {class}")
    }

    /// ipywidgets' class name (what the text fallback shows).
    pub fn class(self) -> &'static str {
        match self {
            Self::IntSlider => "IntSlider",
            Self::FloatSlider => "FloatSlider",
            Self::Dropdown => "Dropdown",
            Self::Checkbox => "Checkbox",
            Self::Text => "Text",
            Self::Button => "Button",
            Self::IntProgress => "IntProgress",
            Self::FloatProgress => "FloatProgress",
            Self::Html => "HTML",
            Self::Output => "Output",
            Self::HBox => "HBox",
            Self::VBox => "VBox",
        }
    }

    /// The style model it references, if any.
    fn style_model(self) -> Option<&'static str> {
        match self {
            Self::IntSlider | Self::FloatSlider => Some("SliderStyleModel"),
            Self::Dropdown => Some("DescriptionStyleModel"),
            Self::Checkbox => Some("CheckboxStyleModel"),
            Self::Text => Some("TextStyleModel"),
            Self::Button => Some("ButtonStyleModel"),
            Self::IntProgress | Self::FloatProgress => Some("ProgressStyleModel"),
            Self::Html => Some("HTMLStyleModel"),
            Self::Output | Self::HBox | Self::VBox => None,
        }
    }

    /// Its own keys, with ipywidgets 8.1's defaults.
    fn own_state(self) -> Value {
        let described = json!({ "description": "", "description_allow_html": false });
        let slider = |model: &str, view: &str, max: Value, min: Value, step: Value, value: Value, format: &str| {
            json!({ "_model_name": model, "_view_name": view, "behavior": "drag-tap", "continuous_update": true, "disabled": false,
                    "max": max, "min": min, "orientation": "horizontal", "readout": true, "readout_format": format, "step": step, "value": value })
        };
        let progress = |model: &str, max: Value, min: Value, value: Value| {
            json!({ "_model_name": model, "_view_name": "ProgressView", "bar_style": "", "max": max, "min": min, "orientation": "horizontal", "value": value })
        };
        let mut own = match self {
            Self::IntSlider => slider("IntSliderModel", "IntSliderView", json!(100), json!(0), json!(1), json!(0), "d"),
            Self::FloatSlider => slider("FloatSliderModel", "FloatSliderView", json!(100.0), json!(0.0), json!(0.1), json!(0.0), ".2f"),
            Self::Dropdown => json!({ "_model_name": "DropdownModel", "_view_name": "DropdownView", "_options_labels": [], "disabled": false, "index": null }),
            Self::Checkbox => json!({ "_model_name": "CheckboxModel", "_view_name": "CheckboxView", "disabled": false, "indent": true, "value": false }),
            Self::Text => json!({ "_model_name": "TextModel", "_view_name": "TextView", "continuous_update": true, "disabled": false, "placeholder": "\u{200b}", "value": "" }),
            Self::Button => json!({ "_model_name": "ButtonModel", "_view_name": "ButtonView", "button_style": "", "description": "", "disabled": false, "icon": "" }),
            Self::IntProgress => progress("IntProgressModel", json!(100), json!(0), json!(0)),
            Self::FloatProgress => progress("FloatProgressModel", json!(100.0), json!(0.0), json!(0.0)),
            Self::Html => json!({ "_model_name": "HTMLModel", "_view_name": "HTMLView", "placeholder": "\u{200b}", "value": "" }),
            Self::Output => json!({ "_model_module": "@jupyter-widgets/output", "_model_module_version": "1.0.0", "_model_name": "OutputModel",
                                     "_view_module": "@jupyter-widgets/output", "_view_module_version": "1.0.0", "_view_name": "OutputView", "msg_id": "", "outputs": [] }),
            Self::HBox => json!({ "_model_name": "HBoxModel", "_view_name": "HBoxView", "box_style": "", "children": [] }),
            Self::VBox => json!({ "_model_name": "VBoxModel", "_view_name": "VBoxView", "box_style": "", "children": [] }),
        };
        if !matches!(self, Self::Button | Self::Output | Self::HBox | Self::VBox) {
            merge(&mut own, described);
        }
        own
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        for (k, v) in from {
            into.entry(k).or_insert(v);
        }
    }
}

/// The keys every model has, from `@jupyter-widgets/controls` unless said otherwise.
fn base_state() -> Value {
    json!({ "_dom_classes": [], "_model_module": "@jupyter-widgets/controls", "_model_module_version": "2.0.0", "_view_count": null,
            "_view_module": "@jupyter-widgets/controls", "_view_module_version": "2.0.0", "tabbable": null, "tooltip": null })
}

/// A layout model (all its keys unset).
fn layout_state() -> Value {
    let mut state = json!({ "_model_module": "@jupyter-widgets/base", "_model_module_version": "2.0.0", "_model_name": "LayoutModel", "_view_count": null,
                            "_view_module": "@jupyter-widgets/base", "_view_module_version": "2.0.0", "_view_name": "LayoutView" });
    const UNSET: [&str; 39] = [
        "align_content", "align_items", "align_self", "border_bottom", "border_left", "border_right", "border_top", "bottom", "display", "flex", "flex_flow",
        "grid_area", "grid_auto_columns", "grid_auto_flow", "grid_auto_rows", "grid_column", "grid_gap", "grid_row", "grid_template_areas",
        "grid_template_columns", "grid_template_rows", "height", "justify_content", "justify_items", "left", "margin", "max_height", "max_width",
        "min_height", "min_width", "object_fit", "object_position", "order", "overflow", "padding", "right", "top", "visibility", "width",
    ];
    for key in UNSET {
        state[key] = Value::Null;
    }
    state
}

/// A style model of `model`'s kind.
fn style_state(model: &str) -> Value {
    let mut state = json!({ "_model_module": "@jupyter-widgets/controls", "_model_module_version": "2.0.0", "_model_name": model, "_view_count": null,
                            "_view_module": "@jupyter-widgets/base", "_view_module_version": "2.0.0", "_view_name": "StyleView" });
    let own = match model {
        "SliderStyleModel" => json!({ "description_width": "", "handle_color": null }),
        "CheckboxStyleModel" => json!({ "background": null, "description_width": "" }),
        "TextStyleModel" | "HTMLStyleModel" => json!({ "background": null, "description_width": "", "font_size": null, "text_color": null }),
        "ButtonStyleModel" => json!({ "button_color": null, "font_family": null, "font_size": null, "font_style": null, "font_variant": null, "font_weight": null,
                                      "text_color": null, "text_decoration": null }),
        "ProgressStyleModel" => json!({ "bar_color": null, "description_width": "" }),
        _ => json!({ "description_width": "" }),
    };
    merge(&mut state, own);
    state
}

/// What the frontend did to a widget, for the interpreter's handlers.
#[derive(Debug, Clone, PartialEq)]
pub enum WidgetEvent {
    /// The frontend set `key` (a slider moved, an option chosen).
    Changed {
        /// The widget.
        id: String,
        /// The state key.
        key: String,
        /// Its new value.
        value: Value,
    },
    /// A button was pressed.
    Clicked {
        /// The button.
        id: String,
    },
    /// Enter was pressed in a text box.
    Submitted {
        /// The text box.
        id: String,
    },
}

/// One widget: its kind, its state and its helper models.
#[derive(Debug, Clone)]
struct Widget {
    kind: WidgetKind,
    state: Map<String, Value>,
    /// The layout and style models' ids, closed with it.
    helpers: Vec<String>,
}

/// Every widget of a session, and what the frontend did to them.
pub struct WidgetHub {
    frontend: Option<Frontend>,
    widgets: Mutex<HashMap<String, Widget>>,
    /// Helper models' state (layouts, styles), for `request_state`.
    helpers: Mutex<HashMap<String, Map<String, Value>>>,
    events: Mutex<Vec<WidgetEvent>>,
    /// Whether `events` may hold something: checked between the statements
    /// of a running script, where taking a lock each time would cost.
    pending: AtomicBool,
    /// Flags a button press raises as it arrives, for what must react while
    /// a cell runs (a Stop button during training).
    click_flags: Mutex<HashMap<String, Vec<Arc<AtomicBool>>>>,
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl WidgetHub {
    /// Widgets shown through `frontend`.
    pub fn new(frontend: Frontend) -> Self {
        Self { frontend: Some(frontend), widgets: Mutex::default(), helpers: Mutex::default(), events: Mutex::default(), pending: AtomicBool::new(false), click_flags: Mutex::default() }
    }

    /// Widgets with no frontend: they keep their state and send nothing.
    pub fn detached() -> Self {
        Self { frontend: None, widgets: Mutex::default(), helpers: Mutex::default(), events: Mutex::default(), pending: AtomicBool::new(false), click_flags: Mutex::default() }
    }

    /// Whether a frontend shows them.
    pub fn is_attached(&self) -> bool {
        self.frontend.is_some()
    }

    fn open(&self, id: &str, state: &Map<String, Value>) {
        if let Some(frontend) = &self.frontend {
            frontend.comm(CommFromKernel::Open {
                comm_id: id.into(),
                target_name: TARGET.into(),
                data: json!({ "state": state, "buffer_paths": [] }),
                metadata: json!({ "version": PROTOCOL_VERSION }),
            });
        }
    }

    /// Creates a widget of `kind` with `settings` over its defaults (keys
    /// it does not have are refused, naming the valid ones); its layout and
    /// style models open first, as the frontend resolves references on
    /// arrival. Returns its id.
    pub fn create(&self, kind: WidgetKind, settings: Map<String, Value>) -> Result<String, String> {
        // The kind's own keys win (the Output widget has its own module).
        let mut state = kind.own_state();
        merge(&mut state, base_state());
        let Value::Object(mut state) = state else { unreachable!("the states are objects") };
        for (key, value) in settings {
            // The model's identity and its helpers' references are the hub's.
            if key.starts_with("_model") || key.starts_with("_view") || !state.contains_key(&key) || key == "layout" || key == "style" {
                let mut valid: Vec<&str> = state.keys().map(String::as_str).filter(|k| !k.starts_with('_') && *k != "layout" && *k != "style").collect();
                valid.sort_unstable();
                return Err(format!("{} has no setting '{key}'; valid: {}", kind.with_article(), valid.join(", ")));
            }
            state.insert(key, value);
        }
        let mut helpers = Vec::new();
        let layout = new_id();
        let Value::Object(layout_state) = layout_state() else { unreachable!() };
        self.open(&layout, &layout_state);
        locked(&self.helpers).insert(layout.clone(), layout_state);
        state.insert("layout".into(), json!(format!("IPY_MODEL_{layout}")));
        helpers.push(layout);
        if let Some(model) = kind.style_model() {
            let style = new_id();
            let Value::Object(style_state) = style_state(model) else { unreachable!() };
            self.open(&style, &style_state);
            locked(&self.helpers).insert(style.clone(), style_state);
            state.insert("style".into(), json!(format!("IPY_MODEL_{style}")));
            helpers.push(style);
        }
        let id = new_id();
        self.open(&id, &state);
        locked(&self.widgets).insert(id.clone(), Widget { kind, state, helpers });
        Ok(id)
    }

    /// The value of a widget's state key.
    pub fn get(&self, id: &str, key: &str) -> Option<Value> {
        locked(&self.widgets).get(id).and_then(|w| w.state.get(key).cloned())
    }

    /// The widget's kind.
    pub fn kind(&self, id: &str) -> Option<WidgetKind> {
        locked(&self.widgets).get(id).map(|w| w.kind)
    }

    /// Sets state keys and sends them to the frontend.
    pub fn set(&self, id: &str, changes: Map<String, Value>) -> Result<(), String> {
        {
            let mut widgets = locked(&self.widgets);
            let widget = widgets.get_mut(id).ok_or_else(|| "this widget was closed".to_string())?;
            if let Some(key) = changes.keys().find(|k| !widget.state.contains_key(*k)) {
                return Err(format!("{} has no setting '{key}'", widget.kind.with_article()));
            }
            widget.state.extend(changes.clone());
        }
        if let Some(frontend) = &self.frontend {
            frontend.comm(CommFromKernel::Msg { comm_id: id.into(), data: json!({ "method": "update", "state": changes, "buffer_paths": [] }), metadata: json!({}), parent: None });
        }
        Ok(())
    }

    /// What shows the widget in an output: its view, and a text fallback
    /// for frontends without widgets.
    pub fn view(&self, id: &str) -> MimeBundle {
        let mut bundle = MimeBundle::new();
        bundle.insert("text/plain".into(), json!(self.describe(id)));
        bundle.insert(VIEW_MIME.into(), json!({ "version_major": 2, "version_minor": 0, "model_id": id }));
        bundle
    }

    /// The text fallback, as ipywidgets writes it: `IntSlider(value=3, description='layers')`.
    pub fn describe(&self, id: &str) -> String {
        let widgets = locked(&self.widgets);
        let Some(w) = widgets.get(id) else { return "a closed widget".into() };
        let defaults = {
            let mut d = w.kind.own_state();
            merge(&mut d, base_state());
            d
        };
        let shown = ["value", "description", "min", "max", "step"];
        let mut parts: Vec<String> = Vec::new();
        if w.kind == WidgetKind::Dropdown {
            // As ipywidgets: the options and the chosen one, not the index.
            let labels = w.state.get("_options_labels").cloned().unwrap_or(json!([]));
            let chosen = w.state.get("index").and_then(Value::as_u64).and_then(|i| labels.get(i as usize).cloned()).unwrap_or(Value::Null);
            parts.push(format!("options={}", python_repr(&labels)));
            parts.push(format!("value={}", python_repr(&chosen)));
        }
        parts.extend(shown.iter().filter_map(|k| {
            let v = w.state.get(*k)?;
            (*k == "value" || defaults.get(*k) != Some(v)).then(|| format!("{k}={}", python_repr(v)))
        }));
        format!("{}({})", w.kind.class(), parts.join(", "))
    }

    /// Appends one output (an nbformat output dict) to an Output widget's
    /// `outputs` and sends them.
    pub fn append_output(&self, id: &str, output: Value) -> Result<(), String> {
        let outputs = {
            let widgets = locked(&self.widgets);
            let widget = widgets.get(id).ok_or_else(|| "this widget was closed".to_string())?;
            let mut outputs = widget.state.get("outputs").and_then(Value::as_array).cloned().ok_or_else(|| format!("{} has no outputs", widget.kind.with_article()))?;
            outputs.push(output);
            outputs
        };
        let mut changes = Map::new();
        changes.insert("outputs".into(), Value::Array(outputs));
        self.set(id, changes)
    }

    /// Raises `flag` whenever the button `id` is pressed, on the thread the
    /// press arrives on (while a cell runs, too).
    pub fn raise_on_click(&self, id: &str, flag: Arc<AtomicBool>) {
        locked(&self.click_flags).entry(id.to_string()).or_default().push(flag);
    }

    /// Stops raising the flags of the button `id`.
    pub fn stop_raising(&self, id: &str) {
        locked(&self.click_flags).remove(id);
    }

    /// The events since the last call, oldest first.
    pub fn take_events(&self) -> Vec<WidgetEvent> {
        let mut events = locked(&self.events);
        self.pending.store(false, Ordering::Relaxed);
        std::mem::take(&mut *events)
    }

    /// Whether the frontend did something since the last `take_events`
    /// (cheap: no lock).
    pub fn has_events(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// Closes a widget and its helper models on the frontend.
    pub fn close(&self, id: &str) {
        let Some(widget) = locked(&self.widgets).remove(id) else { return };
        locked(&self.click_flags).remove(id);
        for helper in &widget.helpers {
            locked(&self.helpers).remove(helper);
        }
        if let Some(frontend) = &self.frontend {
            for comm_id in std::iter::once(id).chain(widget.helpers.iter().map(String::as_str)) {
                frontend.comm(CommFromKernel::Close { comm_id: comm_id.into(), data: json!({}) });
            }
        }
    }

    /// A model's whole state (a widget's or a helper's).
    fn full_state(&self, id: &str) -> Option<Map<String, Value>> {
        locked(&self.widgets).get(id).map(|w| w.state.clone()).or_else(|| locked(&self.helpers).get(id).cloned())
    }
}

/// Whether `new` may replace `old` in a widget's state: the same JSON kind
/// (any number for a number), or anything where nothing is set yet.
fn same_kind(old: &Value, new: &Value) -> bool {
    match (old, new) {
        (Value::Null, _) => true,
        (Value::Bool(_), Value::Bool(_)) | (Value::Number(_), Value::Number(_)) | (Value::String(_), Value::String(_)) => true,
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => true,
        _ => false,
    }
}

/// A JSON value as Python's repr shows it (strings in single quotes).
fn python_repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Null => "None".into(),
        Value::Array(items) => format!("({})", items.iter().map(python_repr).collect::<Vec<_>>().join(", ")),
        other => other.to_string(),
    }
}

impl CommSink for WidgetHub {
    /// The frontend opens no widget comms of its own here (JupyterLab's
    /// `jupyter.widget.control` is closed again, and it then asks each
    /// widget for its state instead).
    fn accepts(&self, _target_name: &str) -> bool {
        false
    }

    fn deliver(&self, event: CommEvent) {
        let CommEvent::Msg { comm_id, data, parent, .. } = event else {
            if let CommEvent::Close { comm_id, .. } = event {
                locked(&self.widgets).remove(&comm_id);
                locked(&self.helpers).remove(&comm_id);
            }
            return;
        };
        match data.get("method").and_then(Value::as_str) {
            Some("update") => {
                let Some(Value::Object(changes)) = data.get("state") else { return };
                let mut widgets = locked(&self.widgets);
                let Some(widget) = widgets.get_mut(&comm_id) else { return };
                let mut events = locked(&self.events);
                for (key, value) in changes {
                    // Only keys the model has, with values of their kind: the frontend cannot add state or change its types.
                    if let Some(slot) = widget.state.get_mut(key) {
                        if !same_kind(slot, value) {
                            eprintln!("[tunebook] widget update of '{key}' to {value} ignored: it holds {slot}");
                            continue;
                        }
                        *slot = value.clone();
                        events.push(WidgetEvent::Changed { id: comm_id.clone(), key: key.clone(), value: value.clone() });
                        self.pending.store(true, Ordering::Relaxed);
                    }
                }
            }
            Some("request_state") => {
                if let (Some(state), Some(frontend)) = (self.full_state(&comm_id), &self.frontend) {
                    frontend.comm(CommFromKernel::Msg { comm_id, data: json!({ "method": "update", "state": state, "buffer_paths": [] }), metadata: json!({}), parent: Some(parent) });
                }
            }
            Some("custom") => {
                let event = match data.pointer("/content/event").and_then(Value::as_str) {
                    Some("click") => {
                        for flag in locked(&self.click_flags).get(&comm_id).into_iter().flatten() {
                            flag.store(true, Ordering::Relaxed);
                        }
                        WidgetEvent::Clicked { id: comm_id }
                    }
                    Some("submit") => WidgetEvent::Submitted { id: comm_id },
                    _ => return,
                };
                locked(&self.events).push(event);
                self.pending.store(true, Ordering::Relaxed);
            }
            other => eprintln!("[tunebook] widget message with method {other:?} ignored"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_have_ipywidgets_keys_and_refuse_unknown_settings() {
        let hub = WidgetHub::detached();
        let mut settings = Map::new();
        settings.insert("max".into(), json!(10));
        settings.insert("description".into(), json!("layers"));
        let id = hub.create(WidgetKind::IntSlider, settings).unwrap();
        assert_eq!(hub.get(&id, "max"), Some(json!(10)));
        assert_eq!(hub.get(&id, "readout_format"), Some(json!("d")));
        assert!(hub.get(&id, "style").unwrap().as_str().unwrap().starts_with("IPY_MODEL_"));
        assert_eq!(hub.describe(&id), "IntSlider(value=0, description='layers', max=10)");
        let mut bad = Map::new();
        bad.insert("maximum".into(), json!(3));
        let err = hub.create(WidgetKind::IntSlider, bad).unwrap_err();
        assert!(err.contains("no setting 'maximum'") && err.contains("max, min"), "{err}");
        assert_eq!(layout_state().as_object().unwrap().len(), 46);
    }

    #[test]
    fn frontend_updates_change_known_keys_only_and_queue_events() {
        let hub = WidgetHub::detached();
        let id = hub.create(WidgetKind::Checkbox, Map::new()).unwrap();
        let msg = |data: Value| CommEvent::Msg { comm_id: id.clone(), data, metadata: json!({}), buffers: vec![], parent: json!({}) };
        hub.deliver(msg(json!({ "method": "update", "state": { "value": "yes", "disabled": [1] }, "buffer_paths": [] })));
        assert_eq!(hub.take_events(), vec![], "values of another kind are refused");
        hub.deliver(msg(json!({ "method": "update", "state": { "value": true, "injected": 1 }, "buffer_paths": [] })));
        hub.deliver(msg(json!({ "method": "custom", "content": { "event": "click" } })));
        assert_eq!(hub.get(&id, "value"), Some(json!(true)));
        assert_eq!(hub.get(&id, "injected"), None);
        assert_eq!(hub.take_events(), vec![WidgetEvent::Changed { id: id.clone(), key: "value".into(), value: json!(true) }, WidgetEvent::Clicked { id: id.clone() }]);
        assert!(hub.take_events().is_empty());
    }

    #[test]
    fn a_press_raises_the_buttons_flags_and_outputs_append() {
        let hub = WidgetHub::detached();
        let stop = hub.create(WidgetKind::Button, Map::new()).unwrap();
        let other = hub.create(WidgetKind::Button, Map::new()).unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        hub.raise_on_click(&stop, flag.clone());
        let click = |id: &str| CommEvent::Msg { comm_id: id.into(), data: json!({ "method": "custom", "content": { "event": "click" } }), metadata: json!({}), buffers: vec![], parent: json!({}) };
        hub.deliver(click(&other));
        assert!(!flag.load(Ordering::Relaxed));
        hub.deliver(click(&stop));
        assert!(flag.load(Ordering::Relaxed));
        let out = hub.create(WidgetKind::Output, Map::new()).unwrap();
        hub.append_output(&out, json!({ "output_type": "stream", "name": "stdout", "text": "a\n" })).unwrap();
        hub.append_output(&out, json!({ "output_type": "stream", "name": "stdout", "text": "b\n" })).unwrap();
        assert_eq!(hub.get(&out, "outputs").unwrap().as_array().unwrap().len(), 2);
        assert!(hub.append_output(&stop, json!({})).unwrap_err().contains("a Button has no outputs"));
        assert_eq!(hub.get(&out, "_model_module"), Some(json!("@jupyter-widgets/output")));
        assert_eq!(hub.get(&out, "_view_module_version"), Some(json!("1.0.0")));
    }
}
