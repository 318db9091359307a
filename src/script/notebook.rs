//! The notebook side of the script layer: an [`Interpreter`] for the Jupyter
//! kernel, and a live display of training runs.

use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use super::api::html_escape;
use super::{reference, Host, Session, SessionSettings};
use crate::kernel::{Completeness, Completions, ExecuteOutcome, Frontend, Interpreter, LanguageInfo, MimeBundle};
use crate::train::{EpochRecord, TrainEvent, TrainObserver};

/// Script output goes to the notebook.
struct NotebookHost {
    frontend: Frontend,
    stop: Arc<AtomicBool>,
}

impl Host for NotebookHost {
    fn print(&self, text: &str) {
        self.frontend.stream("stdout", &format!("{text}\n"));
    }
    fn train_observer(&self) -> Box<dyn TrainObserver> {
        Box::new(LiveTraining::new(self.frontend.clone()))
    }
    fn input(&self, prompt: &str) -> Option<String> {
        self.frontend.input(prompt, false, &self.stop)
    }
    fn eprint(&self, text: &str) {
        self.frontend.stream("stderr", &format!("{text}\n"));
    }
    fn display(&self, plain: &str, html: Option<&str>) {
        let mut bundle = MimeBundle::new();
        bundle.insert("text/plain".into(), json!(plain));
        if let Some(h) = html {
            bundle.insert("text/html".into(), json!(h));
        }
        self.frontend.display(bundle, None);
    }
    fn clear_output(&self) {
        self.frontend.clear_output(false);
    }
    fn show_chart(&self, chart: &crate::plot::Chart) {
        match chart_bundle(chart) {
            Ok(bundle) => self.frontend.display(bundle, None),
            Err(e) => self.eprint(&format!("the chart could not be drawn: {e:#}")),
        }
    }
    fn page(&self, text: &str) {
        self.frontend.page(text);
    }
}

/// A Tunebook session served as a Jupyter kernel.
pub struct NotebookInterpreter {
    session: Session,
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
        let host = Rc::new(NotebookHost { frontend, stop: settings.stop.clone() });
        Self {
            session: Session::new(host, settings),
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
            Some((matches, start, end)) => Completions { matches, cursor_start: start + offset, cursor_end: end + offset },
            None => Completions { matches: Vec::new(), cursor_start: cursor, cursor_end: cursor },
        }
    }

    #[cfg(not(feature = "rust-cells"))]
    fn complete_rust(&mut self, _code: &str, _body: &str, cursor: usize) -> Completions {
        Completions { matches: Vec::new(), cursor_start: cursor, cursor_end: cursor }
    }

    #[cfg(not(feature = "rust-cells"))]
    fn execute_rust(&mut self, _body: &str) -> ExecuteOutcome {
        let msg = "%%rust cells need a tunebook built with the rust-cells feature: cargo build --release --features rust-cells (then reinstall the kernel)";
        ExecuteOutcome::Error { ename: "RustCellsNotBuilt".into(), evalue: msg.into(), traceback: vec![format!("RustCellsNotBuilt: {msg}")] }
    }
}

impl Interpreter for NotebookInterpreter {
    fn language_info(&self) -> LanguageInfo {
        LanguageInfo {
            name: "rhai".into(),
            version: "1.27".into(),
            file_extension: ".rhai".into(),
            mimetype: "text/x-rhai".into(),
            codemirror_mode: "rust".into(),
            implementation: ("tunebook".into(), env!("CARGO_PKG_VERSION").into()),
            banner: format!("Tunebook {} — fine-tuning in Rhai over libtorch. Try: print(load_model(\"minilm\", #{{ labels: 2 }}))", env!("CARGO_PKG_VERSION")),
        }
    }

    fn execute(&mut self, code: &str, _frontend: &Frontend) -> ExecuteOutcome {
        if let Some(body) = super::rust_cells::rust_cell_body(code) {
            return self.execute_rust(body);
        }
        match self.session.eval(code, "cell") {
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
                let mut traceback = vec![format!("{}: {}", if e.interrupted { "Interrupted" } else { "ScriptError" }, e.message)];
                if let (Some(line), Some(src)) = (e.line, e.line.and_then(|l| code.lines().nth(l.saturating_sub(1)))) {
                    let col = e.column.unwrap_or(1);
                    traceback.push(format!("  cell line {line}, column {col}:"));
                    traceback.push(format!("    {src}"));
                    traceback.push(format!("    {}^", " ".repeat(col.saturating_sub(1))));
                }
                let ename = if e.interrupted { "Interrupted" } else { "ScriptError" };
                ExecuteOutcome::Error { ename: ename.into(), evalue: e.message, traceback }
            }
        }
    }

    fn complete(&mut self, code: &str, cursor: usize) -> Completions {
        if let Some(body) = super::rust_cells::rust_cell_body(code) {
            return self.complete_rust(code, body, cursor);
        }
        let chars: Vec<char> = code.chars().collect();
        let cursor = cursor.min(chars.len());
        let is_ident = |c: char| c.is_alphanumeric() || c == '_';
        let start = (0..cursor).rev().take_while(|&i| is_ident(chars[i])).last().unwrap_or(cursor);
        let prefix: String = chars[start..cursor].iter().collect();
        let mut matches: Vec<String> = if let Some(function) = option_map_call(&chars[..start]) {
            reference::options_of(&function).iter().map(|k| k.to_string()).collect()
        } else if start > 0 && chars[start - 1] == '.' {
            // A method: of the value's type if the receiver is a known variable.
            let recv_end = start - 1;
            let recv_start = (0..recv_end).rev().take_while(|&i| is_ident(chars[i])).last().unwrap_or(recv_end);
            let receiver: String = chars[recv_start..recv_end].iter().collect();
            let ty = self.session.variable_type(&receiver);
            reference::API
                .iter()
                .filter(|e| e.receiver.is_some() && (ty.is_none() || e.receiver == ty.as_deref()))
                .map(|e| e.name.to_string())
                .collect()
        } else {
            let mut names: Vec<String> = reference::API.iter().filter(|e| e.receiver.is_none()).map(|e| e.name.to_string()).collect();
            names.extend(self.session.variable_names());
            names.extend(declared_names(code));
            names.extend(["let", "const", "fn", "if", "else", "for", "in", "while", "loop", "break", "continue", "return", "true", "false"].map(String::from));
            names
        };
        matches.retain(|m| m.starts_with(&prefix));
        matches.sort();
        matches.dedup();
        Completions { matches, cursor_start: start, cursor_end: cursor }
    }

    fn inspect(&mut self, code: &str, cursor: usize) -> Option<String> {
        let chars: Vec<char> = code.chars().collect();
        let is_ident = |c: char| c.is_alphanumeric() || c == '_';
        let cursor = cursor.min(chars.len());
        let start = (0..cursor).rev().take_while(|&i| is_ident(chars[i])).last().unwrap_or(cursor);
        let end = (cursor..chars.len()).take_while(|&i| is_ident(chars[i])).last().map(|i| i + 1).unwrap_or(cursor);
        let name: String = chars[start..end].iter().collect();
        if let Some(help) = reference::help(&name) {
            return Some(help);
        }
        self.session.variable_type(&name).map(|ty| format!("{name}: {ty}"))
    }

    fn is_complete(&mut self, code: &str) -> Completeness {
        // Rust cells are checked by the compiler when they run.
        if super::rust_cells::rust_cell_body(code).is_some() {
            return Completeness::Complete;
        }
        self.session.completeness(code)
    }
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

/// When the text before the cursor ends inside an option map `#{ ... }`
/// that is an argument of a call, at a key position, the called function.
fn option_map_call(before: &[char]) -> Option<String> {
    // The innermost unclosed `#{`, skipping closed braces and brackets.
    let mut depth = 0i32;
    let mut open = None;
    for i in (0..before.len()).rev() {
        match before[i] {
            '}' | ']' | ')' => depth += 1,
            '{' | '[' | '(' if depth > 0 => depth -= 1,
            '{' if i > 0 && before[i - 1] == '#' => {
                open = Some(i - 1);
                break;
            }
            '{' | '[' | '(' => return None,
            _ => {}
        }
    }
    let open = open?;
    // At a key: only whitespace or a comma since the last separator.
    let inside: String = before[open + 2..].iter().collect();
    let tail = inside.rsplit(',').next().unwrap_or("");
    if tail.contains(':') {
        return None;
    }
    // The call the map belongs to: `name(` with arguments before the map.
    let mut depth = 0i32;
    for i in (0..open).rev() {
        match before[i] {
            ')' | ']' | '}' => depth += 1,
            '[' | '{' if depth > 0 => depth -= 1,
            '(' if depth > 0 => depth -= 1,
            '(' => {
                let end = i;
                let start = (0..end).rev().take_while(|&j| before[j].is_alphanumeric() || before[j] == '_').last()?;
                return Some(before[start..end].iter().collect());
            }
            _ => {}
        }
    }
    None
}

/// Names declared with `let`/`const` in code not yet run.
fn declared_names(code: &str) -> Vec<String> {
    let words: Vec<&str> = code.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()).collect();
    words.windows(2).filter(|w| w[0] == "let" || w[0] == "const").map(|w| w[1].to_string()).collect()
}

/// One live display per training run: a progress line and the epochs so
/// far, updated in place a few times a second.
pub struct LiveTraining {
    frontend: Frontend,
    display_id: String,
    shown: bool,
    last_update: Option<Instant>,
    epochs: usize,
    steps_per_epoch: usize,
    total_steps: usize,
    started: Instant,
    status: String,
    loss: f64,
    lr: f64,
    step: usize,
    history: Vec<EpochRecord>,
    steps: Vec<crate::train::StepRecord>,
    interrupted: bool,
    chart_svg: String,
    last_chart: Option<Instant>,
    /// Lines about the run's set-up: layer rates, unfreezing.
    notes: Vec<String>,
}

const UPDATE_EVERY: Duration = Duration::from_millis(250);
/// The chart is redrawn less often than the progress line (a redraw takes
/// about 1 ms for 10,000 steps: `cargo bench --bench charts`).
const CHART_EVERY: Duration = Duration::from_millis(500);

impl LiveTraining {
    /// A display that appears at the run's first event.
    pub fn new(frontend: Frontend) -> Self {
        Self {
            frontend,
            display_id: uuid::Uuid::new_v4().to_string(),
            shown: false,
            last_update: None,
            epochs: 0,
            steps_per_epoch: 0,
            total_steps: 0,
            started: Instant::now(),
            status: String::new(),
            loss: f64::NAN,
            lr: 0.0,
            step: 0,
            history: Vec::new(),
            steps: Vec::new(),
            interrupted: false,
            chart_svg: String::new(),
            last_chart: None,
            notes: Vec::new(),
        }
    }

    fn redraw_chart(&mut self, force: bool) {
        if self.steps.is_empty() || (!force && self.last_chart.is_some_and(|t| t.elapsed() < CHART_EVERY)) {
            return;
        }
        self.last_chart = Some(Instant::now());
        let run = crate::train::TrainRun { steps: self.steps.clone(), epochs: self.history.clone(), interrupted: self.interrupted, ..Default::default() };
        if let Ok(svg) = crate::plot::training_curves(&run).svg() {
            self.chart_svg = svg;
        }
    }

    fn progress_line(&self) -> String {
        if self.step == 0 {
            return format!("starting: {}", self.status);
        }
        let elapsed = self.started.elapsed().as_secs_f64();
        let rate = self.step as f64 / elapsed.max(1e-9);
        let eta = if self.step > 0 { (self.total_steps.saturating_sub(self.step)) as f64 / rate } else { f64::NAN };
        let done = if self.total_steps > 0 { self.step as f64 / self.total_steps as f64 } else { 0.0 };
        let filled = (done * 24.0).round() as usize;
        format!(
            "[{}{}] step {}/{}  loss {:.4}  lr {:.2e}  {:.2} steps/s  eta {}  {}",
            "#".repeat(filled),
            ".".repeat(24 - filled.min(24)),
            self.step,
            self.total_steps,
            self.loss,
            self.lr,
            rate,
            if eta.is_finite() { format!("{eta:.0}s") } else { "-".into() },
            self.status
        )
    }

    fn bundle(&self) -> MimeBundle {
        let mut plain = self.progress_line();
        for note in &self.notes {
            plain.push_str(&format!("\n{note}"));
        }
        let notes_html: String = self.notes.iter().map(|n| format!("<div><code>{}</code></div>", html_escape(n))).collect();
        let mut rows = String::new();
        let metric = self.history.iter().find_map(|e| e.val).map_or("accuracy", |v| v.task.headline_metric());
        for e in &self.history {
            let (vl, va) = e.val.map(|v| (format!("{:.4}", v.loss), v.metric(metric).map(|m| format!("{m:.4}")).unwrap_or_default())).unwrap_or_default();
            plain.push_str(&format!("\nepoch {}/{}: train_loss {:.4}  val_loss {vl}  val_{metric} {va}  ({:.0}s)", e.epoch, self.epochs, e.train_loss, e.elapsed));
            rows.push_str(&format!("<tr><td>{}</td><td>{:.4}</td><td>{vl}</td><td>{va}</td><td>{:.0}s</td></tr>", e.epoch, e.train_loss, e.elapsed));
        }
        let pct = if self.total_steps > 0 { 100.0 * self.step as f64 / self.total_steps as f64 } else { 0.0 };
        let html = format!(
            "<div><progress value=\"{pct:.1}\" max=\"100\" style=\"width:40%\"></progress> <code>{}</code>{notes_html}\
             <table><thead><tr><th>epoch</th><th>train_loss</th><th>val_loss</th><th>val_{metric}</th><th>time</th></tr></thead><tbody>{rows}</tbody></table>{}</div>",
            html_escape(&self.progress_line()),
            self.chart_svg
        );
        let mut b = MimeBundle::new();
        b.insert("text/plain".into(), json!(plain));
        b.insert("text/html".into(), json!(html));
        b
    }

    fn refresh(&mut self, force: bool) {
        if !force && self.last_update.is_some_and(|t| t.elapsed() < UPDATE_EVERY) {
            return;
        }
        self.last_update = Some(Instant::now());
        self.redraw_chart(force);
        if self.shown {
            self.frontend.update_display(self.bundle(), &self.display_id);
        } else {
            self.frontend.display(self.bundle(), Some(&self.display_id));
            self.shown = true;
        }
    }
}

impl TrainObserver for LiveTraining {
    fn on_event(&mut self, event: &TrainEvent) {
        match event {
            TrainEvent::Start { epochs, steps_per_epoch, total_steps, trainable_params, total_params, device, lr_groups } => {
                self.notes.extend(TrainEvent::lr_groups_summary(lr_groups));
                self.epochs = *epochs;
                self.steps_per_epoch = *steps_per_epoch;
                self.total_steps = *total_steps;
                self.started = Instant::now();
                self.status = format!(
                    "training {} of {} parameters on {device}",
                    crate::model::group_digits(*trainable_params),
                    crate::model::group_digits(*total_params)
                );
                self.refresh(true);
            }
            TrainEvent::Step { epoch, record, .. } => {
                self.steps.push(*record);
                self.step = record.step;
                self.loss = record.loss;
                self.lr = record.lr;
                self.status = format!("epoch {epoch}/{}", self.epochs);
                self.refresh(false);
            }
            TrainEvent::Evaluating { epoch } => {
                self.status = format!("evaluating epoch {epoch}");
                self.refresh(true);
            }
            TrainEvent::Unfrozen { epoch, groups, trainable_params } => {
                self.notes.push(TrainEvent::unfrozen_summary(*epoch, groups, *trainable_params));
                self.refresh(true);
            }
            TrainEvent::Warning(_) | TrainEvent::Checkpoint { .. } | TrainEvent::Resumed { .. } | TrainEvent::Evaluated(_) => {
                self.notes.extend(event.note());
                self.refresh(true);
            }
            TrainEvent::EpochEnd(e) => {
                self.history.push(e.clone());
                self.refresh(true);
            }
            TrainEvent::EarlyStopping { stopped_at, best_epoch, restored } => {
                self.status = TrainEvent::early_stopping_summary(*stopped_at, *best_epoch, *restored);
                self.refresh(true);
            }
            TrainEvent::Interrupted { steps } => {
                self.interrupted = true;
                self.status = format!("interrupted after {steps} steps; the model keeps its weights");
                self.refresh(true);
            }
            TrainEvent::Done(run) => {
                if !run.interrupted {
                    let early = run.best_epoch.map(|b| TrainEvent::early_stopping_summary(run.stopped_early_at, b, run.restored_best) + "; ").unwrap_or_default();
                    self.status = format!("{early}done in {:.0}s", run.seconds);
                }
                self.refresh(true);
            }
        }
    }
}
