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
//! requests down, outputs and answers up. The worker moves its stdout to its
//! stderr first, so that nothing a library prints can corrupt the stream.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use serde_json::Value;
use serde::{Deserialize, Serialize};

use super::comm::{CommEvent, CommSink};
use super::frontend::{locked, CommFromKernel, Outlet};
use super::{Completeness, Completions, ExecuteOutcome, Frontend, Interpreter, Interrupt, LanguageInfo, MimeBundle};

/// How long a worker whose kernel went away may take to finish its cell.
const ORPHAN_GRACE: Duration = Duration::from_secs(5);
/// How long the kernel waits for a worker to exit before killing it.
const EXIT_GRACE: Duration = Duration::from_secs(3);

/// A request from the kernel to its worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum ToWorker {
    /// Run a cell.
    Execute { id: u64, code: String, execution_count: u64 },
    /// Completion candidates at a char offset.
    Complete { id: u64, code: String, cursor: usize },
    /// Help for the name at a char offset.
    Inspect { id: u64, code: String, cursor: usize },
    /// Whether code is ready to run.
    IsComplete { id: u64, code: String },
    /// Stop the running cell at its next safe point (ignored between cells).
    Interrupt,
    /// The answer to the worker's last `Input`.
    InputReply { value: Option<String> },
    /// A comm message from the frontend, passed on as it arrives; the
    /// worker acknowledges `seq` once its sink has taken it.
    Comm { event: CommEvent, seq: u64 },
    /// Inside the worker: let the interpreter act on the comm messages that
    /// arrived (queued behind a running cell, so it acts after it), its
    /// outputs answering `parent` (the comm message's header; null for none).
    ServeComms { parent: Value },
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

/// What the worker sends up: the [`Frontend`] calls of a running request,
/// then its answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum FromWorker {
    Stream { name: String, text: String },
    Display { data: MimeBundle, display_id: Option<String> },
    UpdateDisplay { data: MimeBundle, display_id: String },
    ClearOutput { wait: bool },
    Page { text: String },
    /// Ask the user for a line; the kernel answers with one `InputReply`.
    Input { prompt: String, password: bool },
    /// A comm message to the frontend.
    Comm { message: CommFromKernel },
    /// The comm messages up to `seq` were taken (what they caused was sent before this).
    CommDone { seq: u64 },
    /// The outputs that follow answer `parent` (a comm message), or again
    /// the current request when `None`.
    Serving { parent: Option<Value> },
    Answer { id: u64, answer: Answer },
    /// The interpreter could not be made; the worker exits after this.
    Failed { message: String },
}

/// The worker's pipe to the kernel, behind its [`Frontend`].
struct KernelPipe {
    events: Mutex<std::fs::File>,
    input_replies: Mutex<Receiver<Option<String>>>,
}

impl KernelPipe {
    fn send(&self, event: &FromWorker) {
        let mut line = serde_json::to_vec(event).expect("worker events serialize");
        line.push(b'\n');
        // A failed write means the kernel is gone; the request reader sees
        // that too and ends the worker.
        let _ = locked(&self.events).write_all(&line);
    }
}

impl Outlet for KernelPipe {
    /// Text on the cell's stdout or stderr.
    fn stream(&self, name: &str, text: &str) {
        self.send(&FromWorker::Stream { name: name.into(), text: text.into() });
    }

    /// A rich output, replaceable through `display_id`.
    fn display(&self, data: MimeBundle, display_id: Option<&str>) {
        self.send(&FromWorker::Display { data, display_id: display_id.map(str::to_string) });
    }

    /// Replaces the output shown with `display_id`.
    fn update_display(&self, data: MimeBundle, display_id: &str) {
        self.send(&FromWorker::UpdateDisplay { data, display_id: display_id.into() });
    }

    /// Clears the cell's output.
    fn clear_output(&self, wait: bool) {
        self.send(&FromWorker::ClearOutput { wait });
    }

    /// Text for the frontend's pager.
    fn page(&self, text: &str) {
        self.send(&FromWorker::Page { text: text.into() });
    }

    /// A line from the user. The kernel watches the interrupt (`stop` is
    /// not read here) and answers every `Input` exactly once, with `None` on
    /// an interrupt, so no stale answer is left for the next call.
    fn input(&self, prompt: &str, password: bool, _stop: &AtomicBool) -> Option<String> {
        let replies = locked(&self.input_replies);
        self.send(&FromWorker::Input { prompt: prompt.into(), password });
        replies.recv().ok().flatten()
    }

    /// A comm message, sent up as it is.
    fn comm(&self, message: CommFromKernel) {
        self.send(&FromWorker::Comm { message });
    }

    /// In order with the outputs, so the kernel names the right parent.
    fn serving(&self, parent: Option<Value>) {
        self.send(&FromWorker::Serving { parent });
    }
}

/// Where the worker's reader thread puts comm events: the interpreter's
/// sink once it is made, and until then a queue.
#[derive(Default)]
struct CommRoute {
    sink: Option<Arc<dyn CommSink>>,
    waiting: Vec<CommEvent>,
}

impl CommRoute {
    fn deliver(route: &Mutex<CommRoute>, event: CommEvent) {
        let mut route = locked(route);
        match route.sink.clone() {
            Some(sink) => {
                drop(route);
                sink.deliver(event);
            }
            None => route.waiting.push(event),
        }
    }

    /// Sets the sink and hands it what waited.
    fn open(route: &Mutex<CommRoute>, sink: Option<Arc<dyn CommSink>>) {
        let waiting = {
            let mut route = locked(route);
            route.sink = sink.clone();
            std::mem::take(&mut route.waiting)
        };
        match sink {
            Some(sink) => waiting.into_iter().for_each(|e| sink.deliver(e)),
            None if !waiting.is_empty() => eprintln!("[tunebook worker] {} comm messages dropped: the interpreter serves no comms", waiting.len()),
            None => {}
        }
    }
}

/// Serves requests from the kernel process on stdin, answering on stdout,
/// until stdin closes. Call it first thing in the worker's `main`. `make`
/// gets the frontend and the stop flag, which the kernel's interrupts and
/// SIGINT raise and each cell's request lowers (the interpreter must not
/// lower it itself: an interrupt sent behind a request would be lost); an
/// `Err` (or a panic) is shown to the user on each cell.
pub fn serve_worker(make: impl FnOnce(Frontend, Arc<AtomicBool>) -> Result<Box<dyn Interpreter>, String>) -> Result<()> {
    // Close-on-exec copies, so that processes the interpreter starts do not
    // hold the pipes open after the worker dies.
    let requests = std::io::stdin().as_fd().try_clone_to_owned().context("cannot take over the worker's stdin")?;
    let events = std::io::stdout().as_fd().try_clone_to_owned().context("cannot take over the worker's stdout")?;
    // SAFETY: plain descriptor calls on this process's own 0, 1 and 2.
    unsafe {
        libc::dup2(2, 1);
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY);
        if null >= 0 {
            libc::dup2(null, 0);
            libc::close(null);
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst));
    }
    let (input_tx, input_rx) = mpsc::channel();
    let pipe = Arc::new(KernelPipe { events: Mutex::new(std::fs::File::from(events)), input_replies: Mutex::new(input_rx) });
    let (work_tx, work_rx) = mpsc::channel::<ToWorker>();
    let comms = Arc::new(Mutex::new(CommRoute::default()));
    {
        let (stop, comms, pipe) = (stop.clone(), comms.clone(), pipe.clone());
        thread::spawn(move || read_requests(requests, stop, work_tx, input_tx, comms, pipe));
    }
    let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| make(Frontend::new(pipe.clone()), stop.clone())));
    let mut interpreter = match made {
        Ok(Ok(i)) => i,
        Ok(Err(message)) => {
            pipe.send(&FromWorker::Failed { message });
            return Ok(());
        }
        Err(panic) => {
            pipe.send(&FromWorker::Failed { message: format!("it failed while starting: {}", crate::panic::panic_text(panic.as_ref())) });
            return Ok(());
        }
    };
    CommRoute::open(&comms, interpreter.comm_sink());
    let frontend = Frontend::new(pipe.clone());
    for request in work_rx {
        let interp = interpreter.as_mut();
        let run = |f: &mut dyn FnMut() -> Answer| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|p| Answer::Panicked(crate::panic::panic_text(p.as_ref())));
        let (id, answer) = match request {
            ToWorker::Execute { id, code, execution_count } => (id, run(&mut || Answer::Execute(interp.execute(&code, execution_count, &frontend)))),
            ToWorker::Complete { id, code, cursor } => (id, run(&mut || Answer::Complete(interp.complete(&code, cursor)))),
            ToWorker::Inspect { id, code, cursor } => (id, run(&mut || Answer::Inspect(interp.inspect(&code, cursor)))),
            ToWorker::IsComplete { id, code } => (id, run(&mut || Answer::IsComplete(interp.is_complete(&code)))),
            ToWorker::ServeComms { parent } => {
                if let Err(p) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| frontend.serving(parent, || interp.serve_comms(&frontend)))) {
                    eprintln!("[tunebook worker] a comm handler failed: {}", crate::panic::panic_text(p.as_ref()));
                }
                continue;
            }
            ToWorker::Interrupt | ToWorker::InputReply { .. } | ToWorker::Comm { .. } => continue,
        };
        pipe.send(&FromWorker::Answer { id, answer });
    }
    Ok(())
}

/// The worker's request reader: interrupts, input replies and comm
/// messages act at once, the rest queue for the interpreter's thread. When the kernel goes away
/// the running cell is stopped, and the process ends if it does not stop.
fn read_requests(requests: OwnedFd, stop: Arc<AtomicBool>, work: Sender<ToWorker>, input: Sender<Option<String>>, comms: Arc<Mutex<CommRoute>>, pipe: Arc<KernelPipe>) {
    for line in BufReader::new(std::fs::File::from(requests)).lines() {
        let Ok(line) = line else { break };
        match serde_json::from_str::<ToWorker>(&line) {
            Ok(ToWorker::Interrupt) => stop.store(true, Ordering::SeqCst),
            Ok(ToWorker::Comm { event, seq }) => {
                let parent = match &event {
                    CommEvent::Msg { parent, .. } => parent.clone(),
                    _ => Value::Null,
                };
                CommRoute::deliver(&comms, event);
                pipe.send(&FromWorker::CommDone { seq });
                if work.send(ToWorker::ServeComms { parent }).is_err() {
                    return;
                }
            }
            Ok(ToWorker::InputReply { value }) => {
                let _ = input.send(value);
            }
            Ok(request) => {
                // Lowered here, in order with the interrupts that follow it.
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

/// Writes one request line.
fn send(stdin: &mut ChildStdin, message: &ToWorker) -> bool {
    let mut line = serde_json::to_vec(message).expect("worker requests serialize");
    line.push(b'\n');
    stdin.write_all(&line).and_then(|_| stdin.flush()).is_ok()
}

/// How to start a worker: a program and its arguments.
#[derive(Debug, Clone)]
pub struct WorkerCommand {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// The comm targets its interpreter serves (the kernel answers a
    /// `comm_open` without asking the worker, which may be busy).
    pub comm_targets: Vec<String>,
}

/// The frontend's comm messages, down the worker's stdin as they arrive.
struct RemoteComms {
    stdin: WorkerStdin,
    targets: Vec<String>,
    /// The last sequence number sent, and the last the worker acknowledged.
    sent: Mutex<u64>,
    acked: (Mutex<u64>, std::sync::Condvar),
}

/// How long the kernel waits for a worker to take a comm message. It takes
/// it on its reader thread, also while a cell runs: only a worker that is
/// gone or stuck makes this wait run out.
const COMM_ACK_WAIT: Duration = Duration::from_secs(5);

impl RemoteComms {
    /// The worker took the comm messages up to `seq`.
    fn acknowledged(&self, seq: u64) {
        let mut acked = locked(&self.acked.0);
        *acked = (*acked).max(seq);
        self.acked.1.notify_all();
    }
}

impl CommSink for RemoteComms {
    fn accepts(&self, target_name: &str) -> bool {
        self.targets.iter().any(|t| t == target_name)
    }

    /// Passes the event down and waits until the worker has taken it, so
    /// that what it sends back (a widget's state) reaches the frontend
    /// before the kernel's `idle` for the message, as JupyterLab expects.
    fn deliver(&self, event: CommEvent) {
        let seq = {
            let mut sent = locked(&self.sent);
            let mut stdin = locked(&self.stdin);
            // A worker that is gone has lost its comms with its variables.
            let Some(stdin) = stdin.as_mut() else { return };
            *sent += 1;
            if !send(stdin, &ToWorker::Comm { event, seq: *sent }) {
                return;
            }
            *sent
        };
        let deadline = Instant::now() + COMM_ACK_WAIT;
        let mut acked = locked(&self.acked.0);
        while *acked < seq {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprintln!("[tunebook kernel] the worker did not take comm message {seq} within {COMM_ACK_WAIT:?}");
                return;
            }
            acked = self.acked.1.wait_timeout(acked, left).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

/// The running worker's stdin, shared with the interrupt's listener.
type WorkerStdin = Arc<Mutex<Option<ChildStdin>>>;

/// A running worker.
struct Worker {
    child: Child,
    /// Its answers and its end, from the relay thread (`relay`).
    events: Receiver<Read>,
    /// Whether it has answered a request (it started, then).
    answered: bool,
}

/// What reading the worker's next message found.
enum Read {
    Message(FromWorker),
    /// A line that is not one of the protocol's: the worker is of another build.
    Garbled(String),
    /// End of its stdout: it is gone.
    Gone,
}

impl Worker {
    fn read(&mut self) -> Read {
        self.events.recv().unwrap_or(Read::Gone)
    }
}

/// Reads the worker's stdout as it comes, also between requests (a comm
/// handler's outputs): outputs, input requests and comm messages go to the
/// frontend from here, in the order the worker sent them; answers, and the
/// worker's end, go to the request being served.
fn relay(events: ChildStdout, frontend: Frontend, stdin: WorkerStdin, comms: Arc<RemoteComms>, stop: Arc<AtomicBool>, to_request: Sender<Read>) {
    let mut events = BufReader::new(events);
    loop {
        let mut line = String::new();
        let read = match events.read_line(&mut line) {
            Ok(0) | Err(_) => Read::Gone,
            Ok(_) => match serde_json::from_str(&line) {
                Ok(message) => Read::Message(message),
                Err(e) => Read::Garbled(format!("{e}: {:.200}", line.trim_end())),
            },
        };
        match read {
            Read::Message(FromWorker::Stream { name, text }) => frontend.stream(&name, &text),
            Read::Message(FromWorker::Display { data, display_id }) => frontend.display(data, display_id.as_deref()),
            Read::Message(FromWorker::UpdateDisplay { data, display_id }) => frontend.update_display(data, &display_id),
            Read::Message(FromWorker::ClearOutput { wait }) => frontend.clear_output(wait),
            Read::Message(FromWorker::Page { text }) => frontend.page(&text),
            Read::Message(FromWorker::Comm { message }) => frontend.comm(message),
            Read::Message(FromWorker::CommDone { seq }) => comms.acknowledged(seq),
            Read::Message(FromWorker::Serving { parent }) => frontend.set_serving(parent),
            Read::Message(FromWorker::Input { prompt, password }) => {
                let value = frontend.input(&prompt, password, &stop);
                if let Some(stdin) = locked(&stdin).as_mut() {
                    send(stdin, &ToWorker::InputReply { value });
                }
            }
            end @ (Read::Garbled(_) | Read::Gone) => {
                let _ = to_request.send(end);
                return;
            }
            answer => {
                if to_request.send(answer).is_err() {
                    return;
                }
            }
        }
    }
}

/// An [`Interpreter`] whose cells run in a worker process.
pub struct RemoteInterpreter {
    command: WorkerCommand,
    /// The frontend's comm messages go down to the worker through this.
    comms: Arc<RemoteComms>,
    info: LanguageInfo,
    frontend: Frontend,
    interrupt: Interrupt,
    stdin: WorkerStdin,
    worker: Option<Worker>,
    /// Why workers cannot start; cleared when one answers.
    cannot_start: Option<String>,
    /// How a worker that died outside a cell ended, for the next cell.
    lost: Option<String>,
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
    /// (the worker is not asked); `interrupt` is the kernel's. A worker
    /// that cannot start is tried again at each cell, which gets an error
    /// that says why.
    pub fn new(command: WorkerCommand, info: LanguageInfo, frontend: Frontend, interrupt: Interrupt) -> Self {
        let stdin: WorkerStdin = Arc::default();
        let comms = Arc::new(RemoteComms { stdin: stdin.clone(), targets: command.comm_targets.clone(), sent: Mutex::new(0), acked: Default::default() });
        {
            // Passed on as it happens; the worker ignores it between cells.
            let stdin = stdin.clone();
            interrupt.on_raise(move || {
                if let Some(stdin) = locked(&stdin).as_mut() {
                    let _ = send(stdin, &ToWorker::Interrupt);
                }
            });
        }
        let mut me = Self { command, comms, info, frontend, interrupt, stdin, worker: None, cannot_start: None, lost: None, next_id: 0 };
        me.start_worker();
        me
    }

    /// Starts a worker; on failure `cannot_start` says why (and a worker
    /// that starts but cannot make its interpreter says so when asked).
    fn start_worker(&mut self) {
        match self.spawn() {
            Ok(worker) => {
                self.worker = Some(worker);
                self.cannot_start = None;
            }
            Err(e) => self.cannot_start = Some(format!("{e:#}")),
        }
    }

    fn spawn(&self) -> Result<Worker> {
        let mut cmd = Command::new(&self.command.program);
        cmd.args(&self.command.args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        {
            use std::os::unix::process::CommandExt;
            // Its own process group: a Ctrl-C meant for the kernel's group
            // reaches the worker only as the kernel passes it on, and never
            // kills it while it starts, before its handler is set.
            cmd.process_group(0);
            #[cfg(target_os = "linux")]
            {
                let parent = std::process::id() as libc::pid_t;
                // SAFETY: prctl and getppid are async-signal-safe. The worker
                // dies with the kernel even when the kernel is killed
                // outright. PDEATHSIG follows the spawning thread, the
                // kernel's main thread, which lives as long as the kernel.
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
        }
        let mut child = cmd.spawn().with_context(|| format!("cannot start {}", self.command.program.display()))?;
        let stdin = child.stdin.take().context("the worker has no stdin")?;
        let stdout = child.stdout.take().context("the worker has no stdout")?;
        *locked(&self.stdin) = Some(stdin);
        let (to_request, events) = mpsc::channel();
        let (frontend, stdin, comms, stop) = (self.frontend.clone(), self.stdin.clone(), self.comms.clone(), self.interrupt.flag());
        thread::spawn(move || relay(stdout, frontend, stdin, comms, stop, to_request));
        Ok(Worker { child, events, answered: false })
    }

    /// Sends to the running worker; false when it is gone.
    fn send(&self, message: &ToWorker) -> bool {
        locked(&self.stdin).as_mut().is_some_and(|stdin| send(stdin, message))
    }

    /// Sends a request and relays the worker's outputs until its answer.
    /// `Err` says, for the user, why there is no answer.
    fn request(&mut self, make: impl FnOnce(u64) -> ToWorker) -> Result<Answer, String> {
        if self.worker.is_none() {
            self.start_worker();
        }
        if self.worker.is_none() {
            return Err(self.cannot_start_message());
        }
        self.next_id += 1;
        let id = self.next_id;
        let execute = {
            let request = make(id);
            let execute = matches!(request, ToWorker::Execute { .. });
            if self.send(&request) {
                // An interrupt raised before the request went out was sent
                // ahead of it, and the worker lowered it on reading the request.
                if execute && self.interrupt.is_raised() {
                    self.send(&ToWorker::Interrupt);
                }
            }
            execute
        };
        // A worker that is gone has left its last words in the pipe: read
        // them all (a failed send only means it is gone).
        let mut garbled = None;
        loop {
            let worker = self.worker.as_mut().expect("started above");
            match worker.read() {
                Read::Message(FromWorker::Answer { id: answered, answer }) if answered == id => {
                    worker.answered = true;
                    self.cannot_start = None;
                    return Ok(answer);
                }
                Read::Message(FromWorker::Failed { message }) => self.cannot_start = Some(message),
                // An answer to an earlier request; the relay keeps the rest.
                Read::Message(_) => {}
                Read::Garbled(line) => {
                    garbled = Some(line);
                    break;
                }
                Read::Gone => break,
            }
        }
        let answered = self.worker.as_ref().is_some_and(|w| w.answered);
        let how = self.reap_worker();
        if let Some(line) = garbled {
            self.cannot_start = Some(format!(
                "its worker ({}) sent a line the kernel cannot read ({line}); the kernel program and the worker must come from the same build",
                self.command.program.display()
            ));
        } else if !answered && self.cannot_start.is_none() {
            // It ended before it ever answered, and did not say why.
            self.cannot_start = Some(format!(
                "its worker ({} {}) {how} before it answered; its error is in the kernel's log (the terminal or Jupyter's log). The kernel \
                 program and the worker must come from the same build",
                self.command.program.display(),
                self.command.args.first().map_or("", String::as_str)
            ));
        }
        if self.cannot_start.is_some() {
            return Err(self.cannot_start_message());
        }
        if !execute {
            self.lost = Some(format!(
                "the process that ran this notebook's code {how} between cells; this cell runs in a new one, without the variables of \
                 earlier cells: run those cells again"
            ));
        }
        Err(format!(
            "the process that runs this notebook's code {how}. A new one runs the next cell, without the variables of earlier cells: run \
             those cells again"
        ))
    }

    /// Reaps the worker; says how it ended.
    fn reap_worker(&mut self) -> String {
        *locked(&self.stdin) = None;
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

    /// A request made while typing (completion, inspection): `None` when
    /// there is no answer. It never starts a worker that could not start,
    /// which would load the interpreter at each keystroke only to fail again.
    fn help<T>(&mut self, make: impl FnOnce(u64) -> ToWorker, pick: impl FnOnce(Answer) -> Option<T>) -> Option<T> {
        if self.cannot_start.is_some() {
            return None;
        }
        match self.request(make) {
            Ok(Answer::Panicked(message)) => resume_panic(message),
            Ok(answer) => pick(answer),
            Err(_) => None,
        }
    }

    fn cannot_start_message(&self) -> String {
        format!("the kernel could not start the interpreter that runs the cells: {}", self.cannot_start.as_deref().unwrap_or("no reason given"))
    }
}

impl Drop for RemoteInterpreter {
    fn drop(&mut self) {
        // A closed stdin tells the worker to finish.
        *locked(&self.stdin) = None;
        let Some(Worker { mut child, events, .. }) = self.worker.take() else { return };
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

    fn comm_sink(&self) -> Option<Arc<dyn CommSink>> {
        Some(self.comms.clone())
    }

    fn execute(&mut self, code: &str, execution_count: u64, _frontend: &Frontend) -> ExecuteOutcome {
        if let Some(lost) = self.lost.take() {
            self.frontend.stream("stderr", &format!("{lost}\n"));
        }
        let died = |evalue: String| ExecuteOutcome::Error { ename: "KernelWorkerDied".into(), traceback: vec![format!("KernelWorkerDied: {evalue}")], evalue };
        match self.request(|id| ToWorker::Execute { id, code: code.into(), execution_count }) {
            Ok(Answer::Execute(outcome)) => outcome,
            Ok(Answer::Panicked(message)) => resume_panic(message),
            Ok(other) => resume_panic(format!("the worker answered a cell with {other:?}")),
            Err(evalue) => {
                // Started now, so that the next cell does not wait for it;
                // one that cannot start is tried again by the next cell.
                if self.cannot_start.is_none() {
                    self.start_worker();
                }
                died(evalue)
            }
        }
    }

    fn complete(&mut self, code: &str, cursor: usize) -> Completions {
        let found = self.help(|id| ToWorker::Complete { id, code: code.into(), cursor }, |a| if let Answer::Complete(c) = a { Some(c) } else { None });
        found.unwrap_or(Completions { cursor_start: cursor, cursor_end: cursor, ..Default::default() })
    }

    fn inspect(&mut self, code: &str, cursor: usize) -> Option<String> {
        self.help(|id| ToWorker::Inspect { id, code: code.into(), cursor }, |a| if let Answer::Inspect(found) = a { found } else { None })
    }

    fn is_complete(&mut self, code: &str) -> Completeness {
        // Said complete otherwise, so that a console sends the cell and shows why it failed.
        let found = self.help(|id| ToWorker::IsComplete { id, code: code.into() }, |a| if let Answer::IsComplete(c) = a { Some(c) } else { None });
        found.unwrap_or(Completeness::Complete)
    }
}
