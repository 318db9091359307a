//! The interpreter in a worker process, so that the kernel answers at once.
//!
//! The kernel process serves the sockets and starts a worker (a program the
//! caller names) whose interpreter runs the cells. A worker that loads large
//! libraries takes a while to start; the kernel's `kernel_info_reply` does not
//! wait for it, only the first request the worker must answer does. A worker
//! that dies (a crash, or the system killing it for memory) ends the cell with
//! an error that says so, and a fresh one serves the next cell.
//!
//! They talk over the worker's stdin and stdout, one JSON object per line:
//! requests down, outputs and replies up. The worker moves its stdout to its
//! stderr first, so that nothing a library prints can corrupt the stream.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde::{Deserialize, Serialize};

use super::frontend::locked;
use super::{Completeness, Completions, ExecuteOutcome, Frontend, Interpreter, Interrupt, LanguageInfo, MimeBundle};

/// How long a worker whose kernel went away may take to finish its cell.
const ORPHAN_GRACE: Duration = Duration::from_secs(5);
/// How long the kernel waits for a worker to exit at shutdown before killing it.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// A request from the kernel to its worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum ToWorker {
    Execute { id: u64, code: String, execution_count: u64 },
    Complete { id: u64, code: String, cursor: usize },
    Inspect { id: u64, code: String, cursor: usize },
    IsComplete { id: u64, code: String },
    /// Stop the running cell at its next safe point.
    Interrupt,
    /// The answer to the worker's last `Input`.
    InputReply { value: Option<String> },
}

/// A request's answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Execute(ExecuteOutcome),
    Complete(Completions),
    Inspect(Option<String>),
    IsComplete(Completeness),
    /// The handler panicked with this message; the worker goes on.
    Panicked(String),
}

/// What the worker sends up.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum FromWorker {
    Stream { name: String, text: String },
    Display { data: MimeBundle, display_id: Option<String> },
    UpdateDisplay { data: MimeBundle, display_id: String },
    ClearOutput { wait: bool },
    Page { text: String },
    Input { prompt: String, password: bool },
    Answer { id: u64, answer: Answer },
    /// The interpreter could not be made; the worker exits after this.
    Failed { message: String },
}

/// The worker's end of the pipe, behind its [`Frontend`].
#[derive(Clone)]
pub(super) struct Link {
    events: Arc<Mutex<std::fs::File>>,
    input_replies: Arc<Mutex<Receiver<Option<String>>>>,
}

impl Link {
    fn send(&self, event: &FromWorker) {
        let mut line = serde_json::to_vec(event).expect("worker events serialize");
        line.push(b'\n');
        // A failed write means the kernel is gone; the request reader sees
        // that too and ends the worker.
        let _ = locked(&self.events).write_all(&line);
    }

    pub(super) fn stream(&self, name: &str, text: &str) {
        self.send(&FromWorker::Stream { name: name.into(), text: text.into() });
    }

    pub(super) fn display(&self, data: MimeBundle, display_id: Option<&str>) {
        self.send(&FromWorker::Display { data, display_id: display_id.map(str::to_string) });
    }

    pub(super) fn update_display(&self, data: MimeBundle, display_id: &str) {
        self.send(&FromWorker::UpdateDisplay { data, display_id: display_id.into() });
    }

    pub(super) fn clear_output(&self, wait: bool) {
        self.send(&FromWorker::ClearOutput { wait });
    }

    pub(super) fn page(&self, text: &str) {
        self.send(&FromWorker::Page { text: text.into() });
    }

    /// The kernel answers every `Input` exactly once (with `None` on an
    /// interrupt), so no stale answer is left for the next call.
    pub(super) fn input(&self, prompt: &str, password: bool) -> Option<String> {
        let replies = locked(&self.input_replies);
        self.send(&FromWorker::Input { prompt: prompt.into(), password });
        replies.recv().ok().flatten()
    }
}

/// Serves requests from the kernel process on stdin, answering on stdout,
/// until stdin closes. Call it first thing in the worker's `main`. `make`
/// gets the frontend and the interrupt flag, which the kernel's interrupts
/// and SIGINT set; an `Err` is shown to the user on each request.
pub fn serve_worker(make: impl FnOnce(Frontend, Arc<AtomicBool>) -> Result<Box<dyn Interpreter>, String>) -> Result<()> {
    // SAFETY: plain descriptor calls on this process's own 0, 1 and 2; the
    // duplicates are owned by the Files made from them.
    let (requests, events) = unsafe {
        let requests = libc::dup(0);
        let events = libc::dup(1);
        if requests < 0 || events < 0 {
            anyhow::bail!("cannot duplicate the worker's stdin and stdout: {}", std::io::Error::last_os_error());
        }
        libc::dup2(2, 1);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
        (std::fs::File::from(OwnedFd::from_raw_fd(requests)), std::fs::File::from(OwnedFd::from_raw_fd(events)))
    };
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let (input_tx, input_rx) = mpsc::channel();
    let link = Link { events: Arc::new(Mutex::new(events)), input_replies: Arc::new(Mutex::new(input_rx)) };
    let (work_tx, work_rx) = mpsc::channel::<ToWorker>();
    {
        let stop = stop.clone();
        thread::spawn(move || read_requests(requests, stop, work_tx, input_tx));
    }
    let mut interpreter = match make(Frontend::worker(link.clone()), stop.clone()) {
        Ok(i) => i,
        Err(message) => {
            link.send(&FromWorker::Failed { message });
            return Ok(());
        }
    };
    let frontend = Frontend::worker(link.clone());
    for request in work_rx {
        let (id, answer) = {
            let interp = interpreter.as_mut();
            let run = |f: &mut dyn FnMut() -> Answer| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| Answer::Panicked(crate::panic::panic_text(p.as_ref())));
            match request {
                ToWorker::Execute { id, code, execution_count } => (id, run(&mut || Answer::Execute(interp.execute(&code, execution_count, &frontend)))),
                ToWorker::Complete { id, code, cursor } => (id, run(&mut || Answer::Complete(interp.complete(&code, cursor)))),
                ToWorker::Inspect { id, code, cursor } => (id, run(&mut || Answer::Inspect(interp.inspect(&code, cursor)))),
                ToWorker::IsComplete { id, code } => (id, run(&mut || Answer::IsComplete(interp.is_complete(&code)))),
                ToWorker::Interrupt | ToWorker::InputReply { .. } => continue,
            }
        };
        link.send(&FromWorker::Answer { id, answer });
    }
    Ok(())
}

/// Writes one request line.
fn send(stdin: &mut ChildStdin, message: &ToWorker) -> bool {
    let mut line = serde_json::to_vec(message).expect("worker requests serialize");
    line.push(b'\n');
    stdin.write_all(&line).and_then(|_| stdin.flush()).is_ok()
}

/// The worker's request reader: interrupts and input replies act at once,
/// the rest queue for the interpreter's thread. When the kernel goes away
/// the running cell is stopped, and the process ends if it does not stop.
fn read_requests(requests: std::fs::File, stop: Arc<AtomicBool>, work: Sender<ToWorker>, input: Sender<Option<String>>) {
    for line in BufReader::new(requests).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<ToWorker>(&line) {
            Ok(ToWorker::Interrupt) => stop.store(true, Ordering::SeqCst),
            Ok(ToWorker::InputReply { value }) => {
                let _ = input.send(value);
            }
            Ok(request) => {
                // Cleared here, in order with the interrupts that follow it.
                if matches!(request, ToWorker::Execute { .. }) {
                    stop.store(false, Ordering::SeqCst);
                }
                if work.send(request).is_err() {
                    return;
                }
            }
            Err(e) => eprintln!("[tunebook worker] dropped a request: {e}"),
        }
    }
    stop.store(true, Ordering::SeqCst);
    drop((work, input));
    thread::sleep(ORPHAN_GRACE);
    // SAFETY: ends the process at once; the kernel that needed it is gone.
    unsafe { libc::_exit(0) };
}

/// How to start a worker: a program and its arguments.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

/// The running worker's stdin, shared with the interrupt's listener.
type Requests = Arc<Mutex<Option<ChildStdin>>>;

/// A running worker.
struct Worker {
    child: Child,
    events: BufReader<ChildStdout>,
}

impl Worker {
    /// The next message; `None` once the worker is gone.
    fn next(&mut self) -> Option<FromWorker> {
        let mut line = String::new();
        loop {
            line.clear();
            match self.events.read_line(&mut line) {
                Ok(0) | Err(_) => return None,
                Ok(_) => match serde_json::from_str(&line) {
                    Ok(event) => return Some(event),
                    Err(e) => eprintln!("[tunebook kernel] dropped a worker message: {e}"),
                },
            }
        }
    }
}

/// An [`Interpreter`] whose cells run in a worker process.
pub struct RemoteInterpreter {
    command: WorkerCommand,
    info: LanguageInfo,
    frontend: Frontend,
    interrupt: Interrupt,
    requests: Requests,
    worker: Option<Worker>,
    /// Why the last worker could not start, as it said.
    failed: Option<String>,
    next_id: u64,
}

/// How a worker ended, for the user.
fn describe_exit(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(s) => match (s.code(), s.signal()) {
            (_, Some(9)) => "was killed (signal 9, SIGKILL: the system kills the largest process when it runs out of memory)".into(),
            (_, Some(sig)) => format!("was ended by signal {sig}"),
            (Some(code), _) => format!("exited with status {code}"),
            _ => "ended".into(),
        },
        None => "stopped answering".into(),
    }
}

impl RemoteInterpreter {
    /// Starts a worker with `command`; `info` is what `kernel_info` says
    /// (the worker is not asked); `interrupt` is the kernel's interrupt
    /// flag. A worker that cannot be started is tried again at each request,
    /// which gets an error that says why.
    pub fn new(command: WorkerCommand, info: LanguageInfo, frontend: Frontend, interrupt: Interrupt) -> Self {
        let requests: Requests = Arc::default();
        {
            // Passed on as it happens; the worker ignores it between cells.
            let requests = requests.clone();
            interrupt.on_raise(move || {
                if let Some(stdin) = locked(&requests).as_mut() {
                    let _ = send(stdin, &ToWorker::Interrupt);
                }
            });
        }
        let mut me = Self { command, info, frontend, interrupt, requests, worker: None, failed: None, next_id: 0 };
        match me.spawn() {
            Ok(w) => me.worker = Some(w),
            Err(e) => eprintln!("[tunebook kernel] {e:#}"),
        }
        me
    }

    fn spawn(&self) -> Result<Worker> {
        // A worker's replacement never gets requests meant for the old one.
        *locked(&self.requests) = None;
        let mut cmd = Command::new(&self.command.program);
        cmd.args(&self.command.args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        #[cfg(target_os = "linux")]
        {
            use std::os::unix::process::CommandExt;
            let parent = std::process::id() as libc::pid_t;
            // SAFETY: prctl and getppid are async-signal-safe. The worker dies
            // with the kernel even when the kernel is killed outright.
            unsafe {
                cmd.pre_exec(move || {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != parent {
                        libc::_exit(1);
                    }
                    Ok(())
                });
            }
        }
        let mut child = cmd.spawn().with_context(|| format!("cannot start the worker {}", self.command.program.display()))?;
        let stdin = child.stdin.take().context("the worker has no stdin")?;
        let events = BufReader::new(child.stdout.take().context("the worker has no stdout")?);
        *locked(&self.requests) = Some(stdin);
        Ok(Worker { child, events })
    }

    /// Sends to the running worker; false when it is gone.
    fn send(&self, message: &ToWorker) -> bool {
        locked(&self.requests).as_mut().is_some_and(|stdin| send(stdin, message))
    }

    /// Sends a request and relays the worker's outputs until its answer.
    /// `Err` says, for the user, why there is no worker.
    fn ask(&mut self, make: impl FnOnce(u64) -> ToWorker, interruptible: bool) -> Result<Answer, String> {
        if self.worker.is_none() {
            self.worker = Some(self.spawn().map_err(|e| format!("the kernel could not start the process that runs the cells: {e:#}"))?);
        }
        self.next_id += 1;
        let id = self.next_id;
        let mut sent = self.send(&make(id));
        // An interrupt raised before the request went out was sent ahead of
        // it, and the worker lowered it on reading the request.
        if interruptible && self.interrupt.is_raised() {
            sent = sent && self.send(&ToWorker::Interrupt);
        }
        while sent {
            let event = self.worker.as_mut().expect("started above").next();
            match event {
                Some(FromWorker::Answer { id: answered, answer }) if answered == id => return Ok(answer),
                Some(FromWorker::Answer { .. }) => {}
                Some(FromWorker::Stream { name, text }) => self.frontend.stream(&name, &text),
                Some(FromWorker::Display { data, display_id }) => self.frontend.display(data, display_id.as_deref()),
                Some(FromWorker::UpdateDisplay { data, display_id }) => self.frontend.update_display(data, &display_id),
                Some(FromWorker::ClearOutput { wait }) => self.frontend.clear_output(wait),
                Some(FromWorker::Page { text }) => self.frontend.page(&text),
                Some(FromWorker::Input { prompt, password }) => {
                    let value = self.frontend.input(&prompt, password, &self.interrupt.flag());
                    sent = self.send(&ToWorker::InputReply { value });
                }
                Some(FromWorker::Failed { message }) => self.failed = Some(message),
                None => break,
            }
        }
        let how = self.bury();
        Err(self.died(&how))
    }

    /// Reaps the dead worker; says how it ended.
    fn bury(&mut self) -> String {
        *locked(&self.requests) = None;
        let Some(mut worker) = self.worker.take() else { return "is not running".into() };
        let deadline = Instant::now() + EXIT_GRACE;
        let status = loop {
            match worker.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = worker.child.kill();
                    break worker.child.wait().ok();
                }
            }
        };
        describe_exit(status)
    }

    /// The error a request gets when the worker is gone.
    fn died(&self, how: &str) -> String {
        match &self.failed {
            Some(message) => format!("the kernel could not start its interpreter: {message}"),
            None => format!(
                "the process that runs this notebook's code {how}. A new one runs the next cell, without the variables, models and data of \
                 earlier cells: run those cells again"
            ),
        }
    }
}

impl Drop for RemoteInterpreter {
    fn drop(&mut self) {
        // A closed stdin tells the worker to finish.
        *locked(&self.requests) = None;
        let Some(Worker { mut child, events }) = self.worker.take() else { return };
        drop(events);
        let deadline = Instant::now() + EXIT_GRACE;
        while Instant::now() < deadline {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A handler that panicked in the worker panics here too, so that the
/// kernel's own handling (an error reply, the session kept) applies.
fn resume_panic(message: String) -> ! {
    std::panic::resume_unwind(Box::new(message))
}

impl Interpreter for RemoteInterpreter {
    fn language_info(&self) -> LanguageInfo {
        self.info.clone()
    }

    fn execute(&mut self, code: &str, execution_count: u64, _frontend: &Frontend) -> ExecuteOutcome {
        match self.ask(|id| ToWorker::Execute { id, code: code.into(), execution_count }, true) {
            Ok(Answer::Execute(outcome)) => outcome,
            Ok(Answer::Panicked(message)) => resume_panic(message),
            Ok(other) => resume_panic(format!("the worker answered an execute request with {other:?}")),
            Err(evalue) => {
                // Started now, so that the next cell does not wait for it.
                if self.failed.is_none() {
                    self.worker = self.spawn().ok();
                }
                ExecuteOutcome::Error { ename: "KernelWorkerDied".into(), traceback: vec![format!("KernelWorkerDied: {evalue}")], evalue }
            }
        }
    }

    fn complete(&mut self, code: &str, cursor: usize) -> Completions {
        match self.ask(|id| ToWorker::Complete { id, code: code.into(), cursor }, false) {
            Ok(Answer::Complete(c)) => c,
            Ok(Answer::Panicked(message)) => resume_panic(message),
            _ => Completions { cursor_start: cursor, cursor_end: cursor, ..Default::default() },
        }
    }

    fn inspect(&mut self, code: &str, cursor: usize) -> Option<String> {
        match self.ask(|id| ToWorker::Inspect { id, code: code.into(), cursor }, false) {
            Ok(Answer::Inspect(found)) => found,
            Ok(Answer::Panicked(message)) => resume_panic(message),
            _ => None,
        }
    }

    fn is_complete(&mut self, code: &str) -> Completeness {
        match self.ask(|id| ToWorker::IsComplete { id, code: code.into() }, false) {
            Ok(Answer::IsComplete(c)) => c,
            Ok(Answer::Panicked(message)) => resume_panic(message),
            // Said complete, so that a console sends the cell and shows why it failed.
            _ => Completeness::Complete,
        }
    }
}
