//! The notebook side of the script layer: an [`Interpreter`] for the Jupyter
//! kernel, and a live display of training runs.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::render::LiveTraining;
use crate::train::TrainObserver;
use super::{Host, Session, SessionSettings};
use crate::kernel::widgets::WidgetHub;
use crate::kernel::{CommSink, Completeness, Completions, ExecuteOutcome, Frontend, Interpreter, LanguageInfo, MimeBundle};

/// What a capture collects, innermost last (see [`Host::begin_capture`]).
type Captures = Rc<RefCell<Vec<Vec<Value>>>>;

/// Adds an output to the innermost capture; false when none is on.
fn capture(captures: &Captures, output: Value) -> bool {
    let mut captures = captures.borrow_mut();
    let Some(outputs) = captures.last_mut() else { return false };
    // Consecutive text on one stream is one output, as Jupyter keeps it.
    if let Some(last) = outputs.last_mut() {
        if output["output_type"] == "stream" && last["output_type"] == "stream" && last["name"] == output["name"] {
            let text = format!("{}{}", last["text"].as_str().unwrap_or_default(), output["text"].as_str().unwrap_or_default());
            last["text"] = json!(text);
            return true;
        }
    }
    outputs.push(output);
    true
}

fn stream_output(name: &str, text: &str) -> Value {
    json!({ "output_type": "stream", "name": name, "text": text })
}

fn display_output(bundle: MimeBundle) -> Value {
    json!({ "output_type": "display_data", "data": bundle, "metadata": {} })
}

/// A training run's record lines, into the capture that was on when it
/// started: a live display cannot live inside an Output widget.
struct CapturedTraining {
    captures: Captures,
    epochs: usize,
}

impl TrainObserver for CapturedTraining {
    fn on_event(&mut self, event: &crate::train::TrainEvent) {
        if let crate::train::TrainEvent::Start { epochs, .. } = event {
            self.epochs = *epochs;
        }
        for line in event.record_lines(self.epochs) {
            capture(&self.captures, stream_output("stdout", &format!("{line}\n")));
        }
    }
}

/// Script output goes to the notebook, or into a capture while one is on.
struct NotebookHost {
    frontend: Frontend,
    stop: Arc<AtomicBool>,
    widgets: Arc<WidgetHub>,
    captures: Captures,
}

impl NotebookHost {
    fn stream(&self, name: &str, text: &str) {
        if !capture(&self.captures, stream_output(name, text)) {
            self.frontend.stream(name, text);
        }
    }

    fn show(&self, bundle: MimeBundle) {
        if self.captures.borrow().is_empty() {
            self.frontend.display(bundle, None);
        } else {
            capture(&self.captures, display_output(bundle));
        }
    }
}

impl Host for NotebookHost {
    fn run_name(&self) -> String {
        "notebook".into()
    }
    fn print(&self, text: &str) {
        self.stream("stdout", &format!("{text}\n"));
    }
    fn train_observer(&self) -> Box<dyn TrainObserver> {
        if self.captures.borrow().is_empty() {
            Box::new(LiveTraining::new(self.frontend.clone()))
        } else {
            Box::new(CapturedTraining { captures: self.captures.clone(), epochs: 0 })
        }
    }
    fn input(&self, prompt: &str) -> Option<String> {
        self.frontend.input(prompt, false, &self.stop)
    }
    fn eprint(&self, text: &str) {
        self.stream("stderr", &format!("{text}\n"));
    }
    fn stream_generated(&self, text: &str, _to_stdout: bool) {
        self.stream("stdout", text);
    }
    fn display(&self, plain: &str, html: Option<&str>) {
        let mut bundle = MimeBundle::new();
        bundle.insert("text/plain".into(), json!(plain));
        if let Some(h) = html {
            bundle.insert("text/html".into(), json!(h));
        }
        self.show(bundle);
    }
    fn clear_output(&self) {
        match self.captures.borrow_mut().last_mut() {
            Some(outputs) => outputs.clear(),
            None => self.frontend.clear_output(false),
        }
    }
    fn show_chart(&self, chart: &crate::plot::Chart) {
        match chart_bundle(chart) {
            Ok(bundle) => self.show(bundle),
            Err(e) => self.eprint(&format!("the chart could not be drawn: {e:#}")),
        }
    }
    fn page(&self, text: &str) {
        self.frontend.page(text);
    }
    fn widget_hub(&self) -> Option<Arc<WidgetHub>> {
        Some(self.widgets.clone())
    }
    fn begin_capture(&self) {
        self.captures.borrow_mut().push(Vec::new());
    }
    fn end_capture(&self) -> Vec<Value> {
        self.captures.borrow_mut().pop().unwrap_or_default()
    }
    fn display_bundle(&self, bundle: MimeBundle) {
        self.show(bundle);
    }
}

/// The worker side of Tunebook's kernel (`tunebook kernel-worker`, started by
/// [`crate::kernel_program::serve_tunebook`]): a session on `device` whose
/// cells come from the kernel process over stdin.
pub fn serve_worker(device: crate::runtime::DeviceRequest, seed: u64) -> anyhow::Result<()> {
    crate::kernel::serve_worker(|frontend, stop| {
        let device = crate::runtime::resolve_device(device).map_err(|e| format!("{e:#}"))?;
        let settings = SessionSettings { device, seed, cache: crate::runtime::cache_dir(), stop, limits: super::Limits::default(), precision: Default::default() };
        Ok(Box::new(NotebookInterpreter::new(frontend, settings)) as Box<dyn Interpreter>)
    })
}

/// A Tunebook session served as a Jupyter kernel.
pub struct NotebookInterpreter {
    session: Session,
    /// The frontend's widget messages arrive here (on the comm thread).
    widgets: Arc<WidgetHub>,
    #[cfg(feature = "rust-cells")]
    rust: Option<super::rust_cells::RustCells>,
    #[cfg(feature = "rust-cells")]
    frontend: Frontend,
    #[cfg(feature = "rust-cells")]
    stop: Arc<AtomicBool>,
}

impl NotebookInterpreter {
    /// A session for the kernel; `settings.stop` must be the kernel's interrupt flag.
    pub fn new(frontend: Frontend, settings: SessionSettings) -> Self {
        #[cfg(feature = "rust-cells")]
        let (rust_frontend, stop) = (frontend.clone(), settings.stop.clone());
        let widgets = Arc::new(WidgetHub::new(frontend.clone()));
        let host = Rc::new(NotebookHost { frontend, stop: settings.stop.clone(), widgets: widgets.clone(), captures: Captures::default() });
        Self {
            session: Session::new(host, settings),
            widgets,
            #[cfg(feature = "rust-cells")]
            rust: None,
            #[cfg(feature = "rust-cells")]
            frontend: rust_frontend,
            #[cfg(feature = "rust-cells")]
            stop,
        }
    }

    /// Runs a `%%rust` cell through evcxr (started on first use).
    #[cfg(feature = "rust-cells")]
    fn execute_rust(&mut self, body: &str) -> ExecuteOutcome {
        use super::rust_cells::{CellResult, RustCells};
        if self.rust.is_none() {
            let frontend = self.frontend.clone();
            let sink: super::rust_cells::Sink = Arc::new(move |name, text| frontend.stream(name, text));
            let runtime = match std::env::current_exe() {
                Ok(exe) => exe,
                Err(e) => return ExecuteOutcome::Error { ename: "RustError".into(), evalue: format!("cannot find the tunebook binary for evcxr: {e}"), traceback: vec![] },
            };
            match RustCells::new(runtime, sink, self.stop.clone()) {
                Ok(r) => self.rust = Some(r),
                Err(e) => return ExecuteOutcome::Error { ename: "RustError".into(), evalue: format!("{e:#}"), traceback: vec![format!("RustError: {e:#}")] },
            }
        }
        let rust = self.rust.as_mut().expect("set above");
        match rust.run(body, &mut self.session) {
            CellResult::Ok(displays) => {
                for (media, content) in displays {
                    let mut bundle = MimeBundle::new();
                    bundle.insert(media, json!(content));
                    self.frontend.display(bundle, None);
                }
                ExecuteOutcome::Ok(None)
            }
            CellResult::Error { ename, evalue, traceback } => ExecuteOutcome::Error { ename, evalue, traceback },
        }
    }

    /// Completion inside a Rust cell, from evcxr (rust-analyzer).
    #[cfg(feature = "rust-cells")]
    fn complete_rust(&mut self, code: &str, body: &str, cursor: usize) -> Completions {
        let offset = code.chars().count() - body.chars().count();
        let found = self.rust.as_mut().and_then(|r| r.complete(body, cursor.saturating_sub(offset)));
        match found {
            Some((matches, start, end)) => Completions { matches, cursor_start: start + offset, cursor_end: end + offset, details: Vec::new() },
            None => Completions { matches: Vec::new(), cursor_start: cursor, cursor_end: cursor, details: Vec::new() },
        }
    }

    #[cfg(not(feature = "rust-cells"))]
    fn complete_rust(&mut self, _code: &str, _body: &str, cursor: usize) -> Completions {
        Completions { matches: Vec::new(), cursor_start: cursor, cursor_end: cursor, details: Vec::new() }
    }

    #[cfg(not(feature = "rust-cells"))]
    fn execute_rust(&mut self, _body: &str) -> ExecuteOutcome {
        let msg = "%%rust cells need a tunebook built with the rust-cells feature: cargo build --release --features rust-cells (then reinstall the kernel)";
        ExecuteOutcome::Error { ename: "RustCellsNotBuilt".into(), evalue: msg.into(), traceback: vec![format!("RustCellsNotBuilt: {msg}")] }
    }
}

impl Interpreter for NotebookInterpreter {
    fn language_info(&self) -> LanguageInfo {
        crate::kernel_program::language_info()
    }

    fn execute(&mut self, code: &str, execution_count: u64, _frontend: &Frontend) -> ExecuteOutcome {
        if let Some(body) = super::rust_cells::rust_cell_body(code) {
            return self.execute_rust(body);
        }
        match self.session.eval(code, &format!("In [{execution_count}]")) {
            Ok(value) if value.is::<super::api::WidgetHandle>() => ExecuteOutcome::Ok(Some(value.cast::<super::api::WidgetHandle>().view())),
            Ok(value) if value.is::<super::api::ChartHandle>() => {
                let chart = value.cast::<super::api::ChartHandle>();
                // A plot function in this cell showed it already; a chart in a variable shows now.
                if chart.shown_by_this_cell(&self.session.ctx) {
                    return ExecuteOutcome::Ok(None);
                }
                match chart_bundle(&chart.chart) {
                    Ok(bundle) => ExecuteOutcome::Ok(Some(bundle)),
                    Err(e) => ExecuteOutcome::Error { ename: "ChartError".into(), evalue: format!("{e:#}"), traceback: vec![format!("ChartError: {e:#}")] },
                }
            }
            Ok(value) => ExecuteOutcome::Ok(self.session.render(&value).map(|(plain, html)| {
                let mut bundle = MimeBundle::new();
                bundle.insert("text/plain".into(), json!(plain));
                if let Some(html) = html {
                    bundle.insert("text/html".into(), json!(html));
                }
                bundle
            })),
            Err(e) => {
                let ename = if e.interrupted { "Interrupted" } else { "ScriptError" };
                ExecuteOutcome::Error { ename: ename.into(), traceback: traceback(ename, &e), evalue: e.message }
            }
        }
    }

    fn complete(&mut self, code: &str, cursor: usize) -> Completions {
        if let Some(body) = super::rust_cells::rust_cell_body(code) {
            return self.complete_rust(code, body, cursor);
        }
        self.session.complete(code, cursor)
    }

    fn inspect(&mut self, code: &str, cursor: usize) -> Option<String> {
        self.session.inspect(code, cursor)
    }

    fn comm_sink(&self) -> Option<Arc<dyn CommSink>> {
        Some(self.widgets.clone())
    }

    fn serve_comms(&mut self, _frontend: &Frontend) {
        self.session.serve_widget_events();
    }

    fn is_complete(&mut self, code: &str) -> Completeness {
        // Rust cells are checked by the compiler when they run.
        if super::rust_cells::rust_cell_body(code).is_some() {
            return Completeness::Complete;
        }
        self.session.completeness(code)
    }
}

/// The error as Python shows one: each frame's cell, line and column, its
/// line of code with a caret under the column, the failing call last.
fn traceback(ename: &str, e: &super::ScriptError) -> Vec<String> {
    const RED: &str = "\x1b[0;31m";
    const GREEN: &str = "\x1b[0;32m";
    const RESET: &str = "\x1b[0m";
    let mut lines = Vec::new();
    if e.frames.len() > 1 {
        lines.push(format!("{RED}Traceback{RESET} (innermost last):"));
    }
    for frame in &e.frames {
        let place = match (frame.line, frame.column) {
            (Some(l), Some(c)) => format!("{}, line {l}, column {c}", frame.source),
            (Some(l), None) => format!("{}, line {l}", frame.source),
            _ => frame.source.clone(),
        };
        let mut text = format!("{GREEN}{place}{RESET}, {}", frame.context());
        if let Some(src) = &frame.text {
            text.push_str(&format!("\n    {src}"));
            if let Some(c) = frame.column {
                text.push_str(&format!("\n    {}{RED}^{RESET}", " ".repeat(c.saturating_sub(1))));
            }
        }
        lines.push(text);
    }
    lines.push(format!("{RED}{ename}{RESET}: {}", e.message));
    lines
}

/// A chart as SVG and PNG, with a text fallback.
fn chart_bundle(chart: &crate::plot::Chart) -> anyhow::Result<MimeBundle> {
    use base64::Engine as _;
    let mut b = MimeBundle::new();
    b.insert("text/plain".into(), json!(chart.to_string()));
    b.insert("image/svg+xml".into(), json!(chart.svg()?));
    b.insert("image/png".into(), json!(base64::engine::general_purpose::STANDARD.encode(chart.png()?)));
    Ok(b)
}
