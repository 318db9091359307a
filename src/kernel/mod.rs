//! A Jupyter kernel over ZeroMQ. It knows nothing of Rhai or of machine
//! learning: it serves the messaging protocol and drives an [`Interpreter`].

pub mod comm;
mod frontend;
pub mod remote;
mod server;
pub mod spec;
pub mod widgets;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use comm::{CommEvent, CommSink};
pub use frontend::{CommFromKernel, Frontend};
pub use remote::{serve_worker, RemoteInterpreter, WorkerCommand};
pub use server::serve;

/// Outputs keyed by MIME type (`text/plain`, `image/svg+xml`, ...).
pub type MimeBundle = Map<String, Value>;

/// How a cell ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ExecuteOutcome {
    /// It ran; the value of its last expression, if any, to show.
    Ok(Option<MimeBundle>),
    /// It failed.
    Error {
        /// The error's kind, e.g. `ScriptError`.
        ename: String,
        /// The message.
        evalue: String,
        /// Lines to show, the failing source line among them.
        traceback: Vec<String>,
    },
}

/// Whether some code is ready to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Completeness {
    /// It parses.
    Complete,
    /// More input is needed; indent the next line with this.
    Incomplete(String),
    /// It can never parse.
    Invalid,
}

/// Completion candidates replacing `code[start..end]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Completions {
    /// Candidates.
    pub matches: Vec<String>,
    /// Start of the replaced text (a char offset).
    pub cursor_start: usize,
    /// End of the replaced text (a char offset).
    pub cursor_end: usize,
    /// What each match is, in the order of `matches` (may be empty).
    pub details: Vec<CompletionDetail>,
}

/// What a completion match is, for frontends that show it (JupyterLab's
/// `_jupyter_types_experimental`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionDetail {
    /// "function", "method", "property", "instance", "keyword" or "param".
    pub kind: String,
    /// Its signature and a one-line description, or its type.
    pub signature: String,
}

/// What the kernel tells frontends about the language.
#[derive(Debug, Clone)]
pub struct LanguageInfo {
    /// Language name, e.g. `rhai`.
    pub name: String,
    /// Language version.
    pub version: String,
    /// File extension with its dot.
    pub file_extension: String,
    /// MIME type of source files.
    pub mimetype: String,
    /// Syntax highlighting mode for the notebook editor.
    pub codemirror_mode: String,
    /// The Pygments lexer that highlights the language (nbconvert, GitHub).
    pub pygments_lexer: String,
    /// Implementation name and version.
    pub implementation: (String, String),
    /// Shown by consoles at start.
    pub banner: String,
}

/// The kernel's interrupt: a flag that control's `interrupt_request`, a
/// shutdown and SIGINT raise and the start of each cell lowers, with
/// listeners told at once (to pass it on without polling).
#[derive(Clone, Default)]
pub struct Interrupt {
    flag: Arc<AtomicBool>,
    listeners: Arc<Mutex<Vec<Box<dyn Fn() + Send>>>>,
}

impl Interrupt {
    /// The flag itself, for code that looks at it between steps (raising
    /// it through this handle tells no listener).
    pub fn flag(&self) -> Arc<AtomicBool> {
        self.flag.clone()
    }

    /// Whether it is raised.
    pub fn is_raised(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Calls `listener` on the raising thread each time the interrupt is
    /// raised. It runs under the listeners' lock: it must not raise the
    /// interrupt or add a listener.
    pub fn on_raise(&self, listener: impl Fn() + Send + 'static) {
        frontend::locked(&self.listeners).push(Box::new(listener));
    }

    /// Raises the flag and tells the listeners.
    fn raise(&self) {
        self.flag.store(true, Ordering::SeqCst);
        for listener in frontend::locked(&self.listeners).iter() {
            listener();
        }
    }

    /// Lowers the flag (a new cell starts).
    fn lower(&self) {
        self.flag.store(false, Ordering::SeqCst);
    }
}

/// A language behind the kernel. The kernel calls it from one thread only,
/// so it need not be `Send`; interrupts arrive through the [`Interrupt`] given
/// to the factory passed to [`serve`].
pub trait Interpreter {
    /// Language details for `kernel_info_reply`.
    fn language_info(&self) -> LanguageInfo;
    /// Runs a cell (numbered `execution_count`, as its `In [n]` prompt
    /// shows); outputs go through `frontend` as they happen.
    fn execute(&mut self, code: &str, execution_count: u64, frontend: &Frontend) -> ExecuteOutcome;
    /// Completion candidates at char offset `cursor`.
    fn complete(&mut self, code: &str, cursor: usize) -> Completions;
    /// Help for the name at `cursor`, as plain text.
    fn inspect(&mut self, code: &str, cursor: usize) -> Option<String>;
    /// Whether `code` is ready to run.
    fn is_complete(&mut self, code: &str) -> Completeness;
    /// Where the frontend's comm messages go; `None` (the default) serves
    /// no comm target, and every comm the frontend opens is closed again.
    fn comm_sink(&self) -> Option<Arc<dyn CommSink>> {
        None
    }
    /// Acts on the comm messages its sink queued (runs a widget's
    /// handlers), on the interpreter's thread, between requests; outputs go
    /// through `frontend`.
    fn serve_comms(&mut self, _frontend: &Frontend) {}
}
