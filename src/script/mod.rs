//! The Rhai scripting layer: registers the core's types and functions, and
//! runs scripts with errors that point at `file:line:col`. It holds no ML
//! logic of its own.

mod api;
mod completion;
pub mod notebook;
mod options;
pub mod overrides;
pub mod reference;
pub mod rust_cells;

use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::{Dynamic, Engine, EvalAltResult, Position, Scope};
use tch::Device;

use crate::train::{StopFlag, TrainObserver};
pub use options::script_error;

/// What a script's host (the command line, the notebook kernel) provides.
pub trait Host {
    /// Shows text the script printed (with a trailing newline added by the host).
    fn print(&self, text: &str);
    /// A fresh observer for one training run's events.
    fn train_observer(&self) -> Box<dyn TrainObserver>;
    /// What runs are named after in their log folders: the script's name,
    /// or `notebook`.
    fn run_name(&self) -> String {
        "run".into()
    }
    /// A line of input from the user, or `None` where the host has none.
    fn input(&self, _prompt: &str) -> Option<String> {
        None
    }
    /// Shows diagnostic text (`debug`) on the error stream.
    fn eprint(&self, text: &str) {
        eprintln!("{text}");
    }
    /// Shows a value richly where the host can (HTML in a notebook).
    fn display(&self, plain: &str, _html: Option<&str>) {
        self.print(plain);
    }
    /// Shows a chart: a file on a terminal, an image in a notebook.
    fn show_chart(&self, chart: &crate::plot::Chart);
    /// The script saved the chart it was just shown (`plot(run).save(path)`):
    /// a host that would also write its own copy of it need not.
    fn chart_saved(&self) {}
    /// Clears what the current cell has shown, where the host can.
    fn clear_output(&self) {}
    /// Shows a piece of generated text as it arrives (no newline added):
    /// where a person watches, or on standard output when `to_stdout`.
    /// Hosts without a live view show nothing: the script gets the text.
    fn stream_generated(&self, _text: &str, _to_stdout: bool) {}
    /// Shows help text in a pager where the host has one.
    fn page(&self, text: &str) {
        self.print(text);
    }
    /// The widgets a frontend renders, where the host has one (a notebook);
    /// elsewhere widgets keep their values and show as text.
    fn widget_hub(&self) -> Option<std::sync::Arc<crate::kernel::widgets::WidgetHub>> {
        None
    }
    /// Starts collecting what the script shows (printed text, displays,
    /// charts, training progress) as notebook outputs instead of showing
    /// it, until [`Host::end_capture`]; captures nest. For an Output widget
    /// and `interact`. A host without notebook outputs collects nothing and
    /// shows as usual.
    fn begin_capture(&self) {}
    /// Ends the innermost capture and returns what it collected (nbformat
    /// output dicts, oldest first).
    fn end_capture(&self) -> Vec<serde_json::Value> {
        Vec::new()
    }
    /// Shows a rich output (a widget's view), or its text where the host
    /// shows only text.
    fn display_bundle(&self, bundle: crate::kernel::MimeBundle) {
        if let Some(text) = bundle.get("text/plain").and_then(|v| v.as_str()) {
            self.print(text);
        }
    }
}

/// A host that shows nothing: for benchmarks and fuzzing, where only how a
/// script ends and how long it takes matter.
pub struct QuietHost;

impl Host for QuietHost {
    fn print(&self, _: &str) {}
    fn eprint(&self, _: &str) {}
    fn train_observer(&self) -> Box<dyn TrainObserver> {
        Box::new(crate::train::Silent)
    }
    fn show_chart(&self, _: &crate::plot::Chart) {}
}

/// Settings a session starts with.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    /// Where models are placed unless a script says otherwise.
    pub device: Device,
    /// Seed for torch and for default shuffles and splits.
    pub seed: u64,
    /// The bootstrap's cache of models and datasets.
    pub cache: PathBuf,
    /// Set to stop training (and the script) at the next check.
    pub stop: StopFlag,
    /// Resource limits of scripts.
    pub limits: Limits,
    /// The precision `fit` trains in unless a script says otherwise.
    pub precision: crate::runtime::precision::Precision,
}

/// Resource limits of a session's scripts: generous, but a runaway
/// recursion or an ever-growing string ends in an error, not a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nested function calls.
    pub call_depth: usize,
    /// Nesting of expressions and statements.
    pub expr_depth: usize,
    /// Bytes in one string.
    pub string_size: usize,
    /// Items in one array.
    pub array_size: usize,
    /// Entries in one map.
    pub map_size: usize,
    /// Script operations per evaluation (statements, expressions, loop
    /// turns; an API call is one), 0 for no limit. Off by default, as a
    /// training loop in a script may run for hours; fuzzing and untrusted
    /// code set it.
    pub operations: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { call_depth: 64, expr_depth: 256, string_size: 64 << 20, array_size: 10_000_000, map_size: 1_000_000, operations: 0 }
    }
}

impl Limits {
    /// The names `set` accepts.
    pub const NAMES: &'static [&'static str] = &["call_depth", "expr_depth", "string_size", "array_size", "map_size", "operations"];

    /// Sets one limit by name (`call_depth=128`).
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (name, value) = assignment.split_once('=').ok_or_else(|| format!("--limit takes NAME=N, got '{assignment}'; names: {}", Self::NAMES.join(", ")))?;
        let n: usize = value.trim().parse().map_err(|_| format!("--limit {name}: '{value}' is not a whole number"))?;
        if n == 0 {
            return Err(format!("--limit {name}: must be at least 1"));
        }
        match name.trim() {
            "call_depth" => self.call_depth = n,
            "expr_depth" => self.expr_depth = n,
            "string_size" => self.string_size = n,
            "array_size" => self.array_size = n,
            "map_size" => self.map_size = n,
            "operations" => self.operations = n as u64,
            other => return Err(format!("--limit: no limit named '{other}'; names: {}", Self::NAMES.join(", "))),
        }
        Ok(())
    }
}

/// State shared by every API function of one session.
pub(crate) struct Context {
    host: Rc<dyn Host>,
    device: Cell<Device>,
    seed: Cell<u64>,
    precision: crate::runtime::precision::Precision,
    cache: PathBuf,
    stop: StopFlag,
    /// Counts evaluations (cells), so that a chart knows whether it was
    /// shown by the cell now running.
    evals: Cell<u64>,
    /// The session's widgets.
    widgets: std::sync::Arc<crate::kernel::widgets::WidgetHub>,
    /// What to call when the frontend acts on a widget.
    widget_handlers: RefCell<Vec<api::WidgetHandler>>,
    /// The session's engine (the session owns it), for running widget
    /// handlers at the safe points of a running script.
    engine: RefCell<std::rc::Weak<Engine>>,
    /// Functions the session's scripts defined so far (a notebook defines
    /// a function in one cell and calls it in the next, or in a handler).
    functions: RefCell<rhai::AST>,
    /// Whether widget handlers are running now (they do not nest).
    serving_handlers: Cell<bool>,
    /// Handlers due but put off: a value they captured was in use by the
    /// running script (they run at the next safe point).
    deferred_handlers: RefCell<Vec<api::DueWidgetHandler>>,
    /// Whether a training run is under way (a handler cannot start another).
    training: Cell<bool>,
    /// Whether a script asked the run under way to stop (`stop_training`):
    /// the cell then goes on with the run so far.
    stop_asked: Cell<bool>,
}

/// A script error located in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptError {
    /// The script's file name (or a cell name) where it failed.
    pub source: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// What went wrong, in the user's terms.
    pub message: String,
    /// Whether the script was stopped by an interrupt.
    pub interrupted: bool,
    /// The calls that led there, outermost first and the failing one last
    /// (one frame when the error is at the top level of a script or cell).
    pub frames: Vec<Frame>,
}

/// One call in a [`ScriptError`]'s traceback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The script file or cell (`In [4]`) the code was written in.
    pub source: String,
    /// The script function being run, `None` at the top level.
    pub function: Option<String>,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The text of that line, when the source is known.
    pub text: Option<String>,
}

impl Frame {
    /// `source:line:col`, as far as it is known.
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(l), Some(c)) => format!("{}:{l}:{c}", self.source),
            (Some(l), None) => format!("{}:{l}", self.source),
            _ => self.source.clone(),
        }
    }

    /// "in fn scale", "in a closure" or "at the top level".
    pub fn context(&self) -> String {
        match &self.function {
            Some(f) if f.starts_with("anon$") => "in a closure".into(),
            Some(f) => format!("in fn {f}"),
            None => "at the top level".into(),
        }
    }
}

impl ScriptError {
    fn plain(source: &str, message: String) -> Self {
        ScriptError { source: source.into(), line: None, column: None, message, interrupted: false, frames: Vec::new() }
    }
}

impl std::fmt::Display for ScriptError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.source, self.message)?,
            (Some(l), None) => write!(f, "{}:{l}: {}", self.source, self.message)?,
            _ => write!(f, "{}: {}", self.source, self.message)?,
        }
        if self.frames.len() > 1 {
            write!(f, "\ntraceback, innermost last:")?;
            for frame in &self.frames {
                write!(f, "\n  {} {}", frame.location(), frame.context())?;
                if let Some(text) = &frame.text {
                    write!(f, ": {}", text.trim())?;
                }
            }
        }
        Ok(())
    }
}

impl std::error::Error for ScriptError {}

/// One scripting session: an engine and a scope that persists across
/// `eval` calls (one per notebook, or one per script run).
pub struct Session {
    engine: Rc<Engine>,
    scope: Scope<'static>,
    /// For tracebacks: the source each script function was defined in, and
    /// the text of those sources.
    defined_in: std::collections::HashMap<String, String>,
    sources: std::collections::HashMap<String, Rc<str>>,
    /// The engine's functions with their types, for completion (built on first use).
    functions_index: std::cell::OnceCell<completion::FunctionIndex>,
    ctx: Rc<Context>,
}

impl Session {
    /// A session whose output and training progress go to `host`.
    pub fn new(host: Rc<dyn Host>, settings: SessionSettings) -> Self {
        crate::runtime::seed_everything(settings.seed);
        let widgets = host.widget_hub().unwrap_or_else(|| std::sync::Arc::new(crate::kernel::widgets::WidgetHub::detached()));
        let ctx = Rc::new(Context {
            widgets,
            widget_handlers: Default::default(),
            engine: Default::default(),
            functions: RefCell::new(rhai::AST::empty()),
            serving_handlers: Cell::new(false),
            deferred_handlers: Default::default(),
            training: Cell::new(false),
            stop_asked: Cell::new(false),
            host,
            device: Cell::new(settings.device),
            seed: Cell::new(settings.seed),
            precision: settings.precision,
            cache: settings.cache,
            stop: settings.stop,
            evals: Cell::new(0),
        });
        let mut engine = Engine::new();
        let l = settings.limits;
        engine.set_max_expr_depths(l.expr_depth, l.expr_depth);
        engine.set_max_call_levels(l.call_depth);
        engine.set_max_string_size(l.string_size);
        engine.set_max_array_size(l.array_size);
        engine.set_max_map_size(l.map_size);
        engine.set_max_operations(l.operations);
        let print_ctx = ctx.clone();
        engine.on_print(move |s| print_ctx.host.print(s));
        let debug_ctx = ctx.clone();
        engine.on_debug(move |s, _, _| debug_ctx.host.eprint(s));
        // Called before each statement and expression: the interrupt is
        // checked there, and what the frontend did to widgets is served.
        let progress_ctx = ctx.clone();
        engine.on_progress(move |_| {
            if progress_ctx.stop.load(std::sync::atomic::Ordering::Relaxed) {
                return Some(Dynamic::from("interrupted"));
            }
            serve_widget_events(&progress_ctx);
            None
        });
        api::register(&mut engine, &ctx);
        let engine = Rc::new(engine);
        *ctx.engine.borrow_mut() = Rc::downgrade(&engine);
        Self { engine, scope: Scope::new(), defined_in: Default::default(), sources: Default::default(), functions_index: Default::default(), ctx }
    }

    /// Runs the handlers of what the frontend did to widgets since the last
    /// call (a kernel calls it when idle; a running script serves them
    /// itself, see [`serve_widget_events`]).
    pub fn serve_widget_events(&mut self) {
        // No cell runs: an interrupt left raised by the last one is not for these.
        self.clear_interrupt();
        serve_widget_events(&self.ctx);
    }

    /// Runs a script file.
    pub fn run_file(&mut self, path: &Path) -> Result<Dynamic, ScriptError> {
        self.run_file_with(path, &[])
    }

    /// Runs a script file with `NAME=VALUE` overrides of variables it
    /// declares at its top level (see `overrides`).
    pub fn run_file_with(&mut self, path: &Path, overrides: &[(String, String)]) -> Result<Dynamic, ScriptError> {
        let name = path.display().to_string();
        let fail = |message: String| ScriptError::plain(&name, message);
        let source = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read the script: {e}")))?;
        let source = overrides::apply(&source, overrides).map_err(fail)?;
        self.eval(&source, &name)
    }

    /// Lowers the stop flag, so that an interrupt of an earlier input does
    /// not stop the next (a REPL calls it before each input).
    pub fn clear_interrupt(&self) {
        self.ctx.stop.store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// Evaluates source in the session's scope; `name` labels errors. The
    /// stop flag is the caller's to lower before a cell: an interrupt that
    /// arrives between the request and the start of the cell still counts.
    pub fn eval(&mut self, source: &str, name: &str) -> Result<Dynamic, ScriptError> {
        self.ctx.evals.set(self.ctx.evals.get() + 1);
        let ast = self.engine.compile_with_scope(&self.scope, source).map_err(|e| {
            let (line, column) = (e.1.line(), e.1.position());
            let frame = Frame { source: name.into(), function: None, line, column, text: line.and_then(|l| source.lines().nth(l.checked_sub(1)?)).map(str::to_string) };
            ScriptError { source: name.into(), line, column, message: e.0.to_string(), interrupted: false, frames: vec![frame] }
        })?;
        let text: Rc<str> = source.into();
        let mut defines = false;
        for f in ast.iter_functions() {
            self.defined_in.insert(f.name.to_string(), name.to_string());
            defines = true;
        }
        // Sources stay only while a function defined in them may still fail.
        if defines {
            self.sources.insert(name.to_string(), text.clone());
        }
        // Earlier functions first, so that a new definition replaces an old one.
        let ast = self.ctx.functions.borrow().merge(&ast);
        *self.ctx.functions.borrow_mut() = ast.clone_functions_only();
        let result = self.engine.eval_ast_with_scope::<Dynamic>(&mut self.scope, &ast);
        let value = result.map_err(|e| self.to_script_error(*e, name, &text))?;
        // A long call (training) that saw the interrupt returned normally, and
        // what it returned is bound; the cell still ends as interrupted.
        if self.ctx.stop.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(ScriptError { interrupted: true, ..ScriptError::plain(name, INTERRUPTED.into()) });
        }
        Ok(value)
    }

    /// A runtime error with its traceback: one frame per script-defined
    /// function on the way down, each in the source it was defined in.
    fn to_script_error(&self, err: EvalAltResult, name: &str, text: &Rc<str>) -> ScriptError {
        let interrupted = matches!(err.unwrap_inner(), EvalAltResult::ErrorTerminated(..));
        let mut frames = Vec::new();
        let mut source = name.to_string();
        let mut function: Option<String> = None;
        let mut at = &err;
        let innermost = loop {
            match at {
                EvalAltResult::ErrorInFunctionCall(f, _, inner, pos) => {
                    // Built-in and API functions are not frames (the user's call
                    // to them is); script functions and closures are.
                    if let Some(defined) = self.defined_in.get(f.as_str()) {
                        frames.push(self.frame(&source, function.take(), *pos, name, text));
                        source = defined.clone();
                        function = Some(f.clone());
                    }
                    at = inner;
                }
                other => {
                    frames.push(self.frame(&source, function.clone(), other.position(), name, text));
                    break other;
                }
            }
        };
        let mut message = if interrupted { INTERRUPTED.to_string() } else { message_of(innermost) };
        if let (EvalAltResult::ErrorVariableNotFound(var, _), Some(_)) = (innermost, &function) {
            message.push_str(&format!(
                ". A Rhai function sees only its parameters (and global constants), not the variables of the cell or script: pass {var} in as an argument, or use a closure (|x| ...), which captures the variables around it"
            ));
        }
        // The error is located at the innermost frame whose position is known.
        let at = frames.iter().rev().find(|f| f.line.is_some()).or(frames.last()).cloned().expect("one frame at least");
        ScriptError { source: at.source, line: at.line, column: at.column, message, interrupted, frames }
    }

    fn frame(&self, source: &str, function: Option<String>, pos: Position, current: &str, current_text: &Rc<str>) -> Frame {
        let text = if source == current { Some(current_text) } else { self.sources.get(source) };
        let line_text = pos.line().and_then(|l| text.and_then(|t| t.lines().nth(l.checked_sub(1)?))).map(str::to_string);
        Frame { source: source.to_string(), function, line: pos.line(), column: pos.position(), text: line_text }
    }

    /// Plain text and optional HTML for a value, as a notebook shows it.
    pub fn render(&self, value: &Dynamic) -> Option<(String, Option<String>)> {
        api::render(value)
    }

    /// The script-facing type name of a variable in scope.
    pub fn variable_type(&self, name: &str) -> Option<String> {
        self.scope.get(name).map(|v| self.engine.map_type_name(v.type_name()).to_string())
    }

    /// A copy of the value of a variable in scope.
    pub fn variable(&self, name: &str) -> Option<Dynamic> {
        self.scope.get_value::<Dynamic>(name)
    }

    /// Binds `name` in the scope (replacing it if it exists), as a `let`
    /// in a cell would.
    pub fn set_variable(&mut self, name: &str, value: Dynamic) {
        self.scope.set_or_push(name.to_string(), value);
    }

    /// The names of the variables in scope.
    pub fn variable_names(&self) -> Vec<String> {
        self.scope.iter_raw().map(|(name, _, _)| name.to_string()).collect()
    }

    /// Whether `code` parses, needs more lines, or never will.
    pub fn completeness(&self, code: &str) -> crate::kernel::Completeness {
        use crate::kernel::Completeness;
        use rhai::ParseErrorType as P;
        match self.engine.compile_with_scope(&self.scope, code) {
            Ok(_) => Completeness::Complete,
            Err(e) => {
                let at_end = e.1.line().is_none_or(|l| l >= code.lines().count().max(1));
                match e.0.as_ref() {
                    P::UnexpectedEOF => Completeness::Incomplete("    ".into()),
                    P::MissingToken(..) if at_end && code.trim_end().ends_with(|c: char| "{([,=+-*/".contains(c) || c.is_alphanumeric() || c == '"' || c == ')') => {
                        Completeness::Incomplete("    ".into())
                    }
                    _ => Completeness::Invalid,
                }
            }
        }
    }

    /// Completion candidates at char offset `cursor`: after a `.`, the
    /// methods of the type the expression before it has.
    pub fn complete(&self, code: &str, cursor: usize) -> crate::kernel::Completions {
        let index = self.functions_index.get_or_init(|| completion::FunctionIndex::new(&self.engine));
        completion::complete(index, &self.engine, &self.scope, code, cursor)
    }

    /// Help for the name at `cursor` (a method by its receiver's type), or for
    /// the function whose call the cursor is in.
    pub fn inspect(&self, code: &str, cursor: usize) -> Option<String> {
        let index = self.functions_index.get_or_init(|| completion::FunctionIndex::new(&self.engine));
        completion::inspect(index, &self.engine, &self.scope, code, cursor)
    }

    /// The session's shared stop flag.
    pub fn stop_flag(&self) -> StopFlag {
        self.ctx.stop.clone()
    }
}

pub(crate) fn message_of(err: &EvalAltResult) -> String {
    match err {
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => message_of(inner),
        EvalAltResult::ErrorRuntime(v, _) => v.to_string(),
        EvalAltResult::ErrorTooManyOperations(_) => "the script ran past its operation limit (--limit operations=N raises it)".to_string(),
        other => {
            // Rhai's own messages end with " (line L, position C)"; we print the position ourselves.
            let s = other.to_string();
            match s.rfind(" (line ") {
                Some(i) if s.ends_with(')') => s[..i].to_string(),
                _ => s,
            }
        }
    }
}

const INTERRUPTED: &str = "stopped at your request; every variable keeps its value";

thread_local! {
    static IN_GUARD: Cell<bool> = const { Cell::new(false) };
    /// Whether widget handlers are running between the steps of a training
    /// run (which holds its model borrowed).
    static HANDLERS_IN_TRAINING: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs a panic hook that stays quiet for panics inside API calls (they
/// become script errors) and reports any other panic as usual.
pub fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if IN_GUARD.with(Cell::get) {
            let msg = crate::panic::panic_text(info.payload());
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(msg));
        } else {
            default(info);
        }
    }));
}

/// What a panic says, without libtorch's C++ backtrace: tch's unwraps print
/// `...: Torch("what happened\nException raised from ...")` on one line.
fn first_line_of_panic(msg: &str) -> &str {
    if let Some(i) = msg.find("Torch(\"") {
        let rest = &msg[i + 7..];
        let end = rest.find("\\n").or_else(|| rest.find('"')).unwrap_or(rest.len());
        return rest[..end].trim();
    }
    msg.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim()
}

/// Runs `f`, turning a panic into what it means for the script.
fn contain<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let was = IN_GUARD.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(was));
    result.map_err(|_| {
        let msg = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_else(|| "unknown internal error".into());
        // A script runs on one thread, so a model borrowed twice while
        // handlers run between training steps is the model that is training.
        let twice = msg.contains("already mutably borrowed") || msg.contains("already borrowed");
        if twice && HANDLERS_IN_TRAINING.with(Cell::get) {
            return MODEL_IN_TRAINING.to_string();
        }
        format!("internal error: {} ({})", first_line_of_panic(&msg), crate::panic::BUG_REPORT_HINT)
    })
}

const MODEL_IN_TRAINING: &str =
    "this model is training in the running cell; a widget handler can use it when the run ends (a handler may call stop_training() to end the run at its next batch)";

/// Runs one API call, turning its error or panic into a script error.
pub(crate) fn guard<T>(f: impl FnOnce() -> anyhow::Result<T>) -> Result<T, Box<EvalAltResult>> {
    match contain(f) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(script_error(format!("{e:#}"))),
        Err(message) => Err(script_error(message)),
    }
}

/// Runs the handlers of what the frontend did to widgets since the last
/// call (a slider moved, a button pressed), in order: when the kernel is
/// idle, and at the safe points of a running script (before each of its
/// statements and expressions, and between training steps, where a press
/// is served without waiting for the cell to end). Handlers do not nest.
/// A handler that fails says so on the error stream; the others still run.
pub(crate) fn serve_widget_events(ctx: &Context) {
    if ctx.serving_handlers.get() || (!ctx.widgets.has_events() && ctx.deferred_handlers.borrow().is_empty()) {
        return;
    }
    let _serving = HandlersHeld::hold(ctx);
    let engine = ctx.engine.borrow().upgrade();
    if let Some(engine) = engine {
        let functions = ctx.functions.borrow().clone();
        let mut due = ctx.deferred_handlers.take();
        due.extend(api::due_widget_handlers(ctx));
        let mut due = due.into_iter();
        while let Some(due_now) = due.next() {
            // The running script holds a value this handler captured (inside a
            // method call on it): running it now would fail, so it waits.
            if api::handler_is_blocked(&due_now) {
                *ctx.deferred_handlers.borrow_mut() = std::iter::once(due_now).chain(due).collect();
                break;
            }
            let (function, arg) = match due_now {
                api::DueWidgetHandler::Call(function, arg) => (function, arg),
                api::DueWidgetHandler::Interact(i) => {
                    let ran = contain(|| api::run_interaction(ctx, &i, |f, values| f.call::<Dynamic>(&engine, &functions, (values,))));
                    if let Err(message) = ran {
                        ctx.host.eprint(&format!("interact: {message}"));
                    }
                    continue;
                }
            };
            let failure = match contain(|| function.call::<Dynamic>(&engine, &functions, (arg,))) {
                Ok(Ok(_)) => continue,
                // Interrupted: the cell (if one runs) stops too, and says so.
                Ok(Err(e)) if matches!(e.unwrap_inner(), EvalAltResult::ErrorTerminated(..)) => {
                    ctx.host.eprint("widget handlers interrupted; the frontend's remaining events were dropped");
                    break;
                }
                Ok(Err(e)) => message_of(e.unwrap_inner()),
                Err(message) => message,
            };
            // A closure's name is generated (anon$...): only a named function is worth showing.
            let name = Some(function.fn_name()).filter(|n| !n.starts_with("anon$")).map(|n| format!(" ({n})")).unwrap_or_default();
            ctx.host.eprint(&format!("a widget handler{name} failed: {failure}"));
        }
    }
}

/// Runs the widget handlers due between two steps of a training run: they
/// may stop it (`stop_training`), which takes effect once they are done.
pub(crate) fn serve_widget_events_in_training(ctx: &Context) {
    let was = HANDLERS_IN_TRAINING.with(|h| h.replace(true));
    serve_widget_events(ctx);
    HANDLERS_IN_TRAINING.with(|h| h.set(was));
    if ctx.stop_asked.get() {
        ctx.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Holds widget handlers off while it lives: they do not nest, and none
/// runs while an output capture is open (its prints would land in the
/// capture). Restores the previous state however the holder ends.
pub(crate) struct HandlersHeld<'a> {
    ctx: &'a Context,
    was: bool,
}

impl<'a> HandlersHeld<'a> {
    /// Holds handlers off until the value is dropped.
    pub(crate) fn hold(ctx: &'a Context) -> Self {
        Self { ctx, was: ctx.serving_handlers.replace(true) }
    }
}

impl Drop for HandlersHeld<'_> {
    fn drop(&mut self) {
        self.ctx.serving_handlers.set(self.was);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_libtorch_panic_is_cut_to_what_happened() {
        let msg = r#"called `Result::unwrap()` on an `Err` value: Torch("from is out of bounds for float\nException raised from operator() at x.h:296\nframe #0: ...")"#;
        assert_eq!(super::first_line_of_panic(msg), "from is out of bounds for float");
        assert_eq!(super::first_line_of_panic("\n  index out of bounds\nmore"), "index out of bounds");
    }
}
