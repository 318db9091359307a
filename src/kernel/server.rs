//! Sockets, threads and request dispatch.
//!
//! Shell and stdin are served on the calling thread (the interpreter need
//! not be `Send`); heartbeat and control have threads of their own so that
//! they answer while a cell runs; iopub is owned by one thread fed through a
//! channel, since ZeroMQ sockets must not be shared between threads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How long after a failed cell a request queued behind it may take to
/// arrive (on a loaded machine), to be aborted.
const ABORT_WINDOW: Duration = Duration::from_millis(100);

use anyhow::{bail, Context as _, Result};
use jupyter_protocol::{ConnectionInfo, Transport};
use serde_json::{json, Value};

use super::comm::{self, CommRegistry, CommSink, Handling};
use super::frontend::{locked, Current, Frontend, Sockets};
use crate::panic::{panic_text, BUG_REPORT_HINT};
use crate::suggest::glob_match;
use super::wire::{self, Message, Signer};
use super::{Completeness, ExecuteOutcome, Interpreter, Interrupt};

const POLL: Duration = Duration::from_millis(100);

/// The largest message a client may send; ZeroMQ drops the connection of a
/// peer that sends more, before the kernel has to hold it in memory.
const MAX_MESSAGE_BYTES: i64 = 256 << 20;

fn endpoint(conn: &ConnectionInfo, port: u16) -> String {
    match conn.transport {
        Transport::TCP => format!("tcp://{}:{port}", conn.ip),
        Transport::IPC => format!("ipc://{}-{port}", conn.ip),
    }
}

fn log(msg: &str) {
    eprintln!("[tunebook kernel] {msg}");
}

/// Serves the kernel described by `connection_file` until a shutdown
/// request. `make` builds the interpreter, given the frontend handle and the
/// interrupt that control's `interrupt_request` and SIGINT raise. A connection file
/// with an empty key (no signatures: anyone who can reach the ports can run
/// code) is refused unless `allow_unsigned`.
pub fn serve(connection_file: &Path, allow_unsigned: bool, make: impl FnOnce(Frontend, Interrupt) -> Box<dyn Interpreter>) -> Result<()> {
    let text = std::fs::read_to_string(connection_file).with_context(|| format!("cannot read the connection file {}", connection_file.display()))?;
    let conn: ConnectionInfo = serde_json::from_str(&text).with_context(|| format!("{} is not a Jupyter connection file", connection_file.display()))?;
    if conn.key.is_empty() && !allow_unsigned {
        bail!(
            "{} has an empty key, so messages would not be signed and anyone who can reach its ports could run code; \
             give the kernel a key (Jupyter does by default) or pass --allow-unsigned to accept this",
            connection_file.display()
        );
    }
    if !conn.key.is_empty() && conn.signature_scheme != "hmac-sha256" {
        bail!("signature scheme '{}' is not supported; use hmac-sha256", conn.signature_scheme);
    }
    let signer = Signer::new(&conn.key);
    let session = uuid::Uuid::new_v4().to_string();
    let ctx = zmq::Context::new();
    // Port 0 (over TCP) lets the system pick a free port, as in ipykernel;
    // the ports picked are written back into the connection file.
    let mut picked: Vec<(&str, u16)> = Vec::new();
    let mut bind = |kind, port: u16, name: &'static str| -> Result<zmq::Socket> {
        let s = ctx.socket(kind)?;
        s.set_linger(1000)?;
        s.set_maxmsgsize(MAX_MESSAGE_BYTES)?;
        let pick = port == 0 && matches!(conn.transport, Transport::TCP);
        let ep = if pick { format!("tcp://{}:*", conn.ip) } else { endpoint(&conn, port) };
        s.bind(&ep).with_context(|| format!("cannot bind the {name} socket to {ep}"))?;
        if pick {
            let bound = s.get_last_endpoint()?.map_err(|_| anyhow::anyhow!("the {name} socket's endpoint is not text"))?;
            let port = bound.rsplit(':').next().and_then(|p| p.parse().ok()).with_context(|| format!("cannot read the port of {bound}"))?;
            picked.push((name, port));
        }
        Ok(s)
    };
    let shell = bind(zmq::ROUTER, conn.shell_port, "shell")?;
    let control = bind(zmq::ROUTER, conn.control_port, "control")?;
    let stdin = bind(zmq::ROUTER, conn.stdin_port, "stdin")?;
    let iopub = bind(zmq::PUB, conn.iopub_port, "iopub")?;
    let heartbeat = bind(zmq::REP, conn.hb_port, "hb")?;
    if !picked.is_empty() {
        let mut info: Value = serde_json::from_str(&text)?;
        for (name, port) in &picked {
            info[format!("{name}_port")] = (*port).into();
        }
        crate::files::write_file(connection_file, serde_json::to_string_pretty(&info)?.as_bytes())
            .with_context(|| format!("cannot write the ports picked into {}", connection_file.display()))?;
        log(&format!("picked free ports {picked:?}; written into {}", connection_file.display()));
    }

    let (iopub_tx, iopub_rx) = mpsc::channel::<Vec<Vec<u8>>>();
    let iopub_thread = thread::spawn(move || {
        for frames in iopub_rx {
            if frames.is_empty() {
                break;
            }
            if let Err(e) = iopub.send_multipart(frames, 0) {
                log(&format!("iopub send failed: {e}"));
            }
        }
    });
    thread::spawn(move || loop {
        match heartbeat.recv_bytes(0) {
            Ok(ping) => {
                let _ = heartbeat.send(ping, 0);
            }
            Err(_) => return,
        }
    });

    let comms = CommRegistry::default();
    let frontend = Sockets {
        iopub: iopub_tx.clone(),
        signer: signer.clone(),
        session,
        current: Arc::new(Mutex::new(Current::default())),
        stdin: Arc::new(Mutex::new(stdin)),
        comms: comms.clone(),
    };
    let interrupt = Interrupt::default();
    let shutdown = Arc::new(AtomicBool::new(false));
    {
        let interrupt = interrupt.clone();
        // Frontends with interrupt_mode "signal" (and a terminal's Ctrl-C) send SIGINT.
        let _ = ctrlc::set_handler(move || interrupt.raise());
    }
    let mut interpreter = make(Frontend::new(Arc::new(frontend.clone())), interrupt.clone());
    let info = kernel_info(interpreter.as_ref());
    {
        let (frontend, interrupt, shutdown, info) = (frontend.clone(), interrupt.clone(), shutdown.clone(), info.clone());
        thread::spawn(move || serve_control(control, frontend, interrupt, shutdown, info));
    }
    frontend.publish_with_parent("status", json!({ "execution_state": "starting" }), &json!({}));

    // The shell socket has a thread of its own, so that comm messages are
    // served while a cell runs; the requests the interpreter answers come
    // here in order, and their replies go back through an inproc pipe.
    let pipe = format!("inproc://shell-replies-{}", uuid::Uuid::new_v4());
    let replies_in = ctx.socket(zmq::PULL)?;
    replies_in.bind(&pipe)?;
    let replies = ctx.socket(zmq::PUSH)?;
    replies.connect(&pipe)?;
    let (requests_tx, requests) = mpsc::channel::<Message>();
    let shell_thread = {
        let shell = ShellThread { shell, replies: replies_in, frontend: frontend.clone(), comms, sink: interpreter.comm_sink(), requests: requests_tx };
        thread::spawn(move || shell.serve())
    };

    let mut kernel = Kernel { frontend: frontend.clone(), shell: replies, requests, info, execution_count: 0, history: Vec::new(), interrupt, shutdown: shutdown.clone() };
    while !shutdown.load(Ordering::SeqCst) {
        let msg = match kernel.requests.recv_timeout(POLL) {
            Ok(msg) => msg,
            Err(mpsc::RecvTimeoutError::Timeout) => continue,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        // A panic must not take the session down: the request gets an
        // error reply and the kernel goes on with the same state.
        let handled = catch_unwind(AssertUnwindSafe(|| kernel.dispatch(interpreter.as_mut(), &msg)));
        if let Err(payload) = handled {
            kernel.internal_error(&msg, &panic_text(payload.as_ref()));
        }
    }
    // Everything pushed before this empty message reaches the client first.
    let _ = kernel.shell.send(Vec::<u8>::new(), 0);
    let _ = shell_thread.join();
    drop(interpreter);
    let _ = iopub_tx.send(Vec::new());
    let _ = iopub_thread.join();
    Ok(())
}

/// The shell socket's thread: replies out, requests in, comm messages
/// served on the spot.
struct ShellThread {
    shell: zmq::Socket,
    /// Reply frames from the request thread; an empty message ends the thread.
    replies: zmq::Socket,
    frontend: Sockets,
    comms: CommRegistry,
    sink: Option<Arc<dyn CommSink>>,
    requests: mpsc::Sender<Message>,
}

impl ShellThread {
    fn serve(self) {
        loop {
            let mut items = [self.shell.as_poll_item(zmq::POLLIN), self.replies.as_poll_item(zmq::POLLIN)];
            if zmq::poll(&mut items, -1).is_err() {
                return;
            }
            let (request, reply) = (items[0].is_readable(), items[1].is_readable());
            if reply {
                let Ok(frames) = self.replies.recv_multipart(0) else { return };
                if frames.len() == 1 && frames[0].is_empty() {
                    return;
                }
                if let Err(e) = self.shell.send_multipart(frames, 0) {
                    log(&format!("shell: cannot send a reply: {e}"));
                }
            }
            if request {
                let Ok(frames) = self.shell.recv_multipart(0) else { return };
                match wire::decode(frames, &self.frontend.signer) {
                    Ok(msg) => match msg.msg_type() {
                        "comm_open" | "comm_msg" | "comm_close" => self.comm(msg),
                        "comm_info_request" => self.comm_info(&msg),
                        _ => {
                            // Fails only once the request thread has stopped.
                            let _ = self.requests.send(msg);
                        }
                    },
                    Err(e) => log(&format!("shell: dropped a message: {e}")),
                }
            }
        }
    }

    /// A comm message from the frontend, between `busy` and `idle` as every
    /// shell message is.
    fn comm(&self, msg: Message) {
        self.frontend.publish_with_parent("status", json!({ "execution_state": "busy" }), &msg.header);
        let handled = catch_unwind(AssertUnwindSafe(|| {
            match comm::handle_from_frontend(&msg, &self.comms, self.sink.as_deref()) {
                Handling::Delivered(event) => {
                    if let Some(sink) = &self.sink {
                        sink.deliver(event);
                    }
                }
                Handling::Refused { comm_id, why } => {
                    log(&why);
                    self.frontend.publish_with_parent("comm_close", json!({ "comm_id": comm_id, "data": {} }), &msg.header);
                }
                Handling::Ignored(why) => log(&why),
            }
        }));
        if let Err(payload) = handled {
            log(&format!("internal error while handling {}: {}", msg.msg_type(), panic_text(payload.as_ref())));
        }
        self.frontend.publish_with_parent("status", json!({ "execution_state": "idle" }), &msg.header);
    }

    /// The open comms, answered at once, also while a cell runs.
    fn comm_info(&self, msg: &Message) {
        self.frontend.publish_with_parent("status", json!({ "execution_state": "busy" }), &msg.header);
        let target = msg.content.get("target_name").and_then(Value::as_str);
        reply(&self.shell, &self.frontend, msg, "comm_info_reply", json!({ "status": "ok", "comms": self.comms.info(target) }));
        self.frontend.publish_with_parent("status", json!({ "execution_state": "idle" }), &msg.header);
    }
}

fn kernel_info(interp: &dyn Interpreter) -> Value {
    let l = interp.language_info();
    json!({
        "status": "ok",
        "protocol_version": "5.3",
        "implementation": l.implementation.0,
        "implementation_version": l.implementation.1,
        "language_info": {
            "name": l.name,
            "version": l.version,
            "mimetype": l.mimetype,
            "file_extension": l.file_extension,
            "pygments_lexer": l.pygments_lexer,
            "codemirror_mode": l.codemirror_mode,
        },
        "banner": l.banner,
        "help_links": [],
        "debugger": false,
    })
}

fn reply(socket: &zmq::Socket, frontend: &Sockets, request: &Message, msg_type: &str, content: Value) {
    let header = wire::new_header(msg_type, &frontend.session);
    let frames = wire::encode(&request.identities, &header, &request.header, &json!({}), &content, &frontend.signer);
    if let Err(e) = socket.send_multipart(frames, 0) {
        log(&format!("cannot send {msg_type}: {e}"));
    }
}

fn reply_type(request: &Message) -> String {
    match request.msg_type().strip_suffix("_request") {
        Some(stem) => format!("{stem}_reply"),
        None => format!("{}_reply", request.msg_type()),
    }
}

fn serve_control(socket: zmq::Socket, frontend: Sockets, interrupt: Interrupt, shutdown: Arc<AtomicBool>, info: Value) {
    while !shutdown.load(Ordering::SeqCst) {
        let mut items = [socket.as_poll_item(zmq::POLLIN)];
        match zmq::poll(&mut items, POLL.as_millis() as i64) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(_) => return,
        }
        let Ok(frames) = socket.recv_multipart(0) else { return };
        let msg = match wire::decode(frames, &frontend.signer) {
            Ok(m) => m,
            Err(e) => {
                log(&format!("control: dropped a message: {e}"));
                continue;
            }
        };
        let msg = &msg;
        frontend.publish_with_parent("status", json!({ "execution_state": "busy" }), &msg.header);
        let handled = catch_unwind(AssertUnwindSafe(|| match msg.msg_type() {
            "kernel_info_request" => reply(&socket, &frontend, msg, "kernel_info_reply", info.clone()),
            "interrupt_request" => {
                interrupt.raise();
                reply(&socket, &frontend, msg, "interrupt_reply", json!({ "status": "ok" }));
            }
            "shutdown_request" => {
                let restart = msg.content.get("restart").and_then(Value::as_bool).unwrap_or(false);
                interrupt.raise();
                reply(&socket, &frontend, msg, "shutdown_reply", json!({ "status": "ok", "restart": restart }));
                shutdown.store(true, Ordering::SeqCst);
            }
            other => reply(&socket, &frontend, msg, &reply_type(msg), unsupported(other)),
        }));
        if let Err(payload) = handled {
            reply(&socket, &frontend, msg, &reply_type(msg), internal_error_content(msg, &panic_text(payload.as_ref())));
        }
        frontend.publish_with_parent("status", json!({ "execution_state": "idle" }), &msg.header);
    }
}

/// An error reply's content for a request whose handler panicked.
fn internal_error_content(request: &Message, panic: &str) -> Value {
    let evalue = format!("the kernel failed while handling {}: {panic}; the session and its variables are kept; {BUG_REPORT_HINT}", request.msg_type());
    json!({ "status": "error", "ename": "InternalError", "evalue": evalue, "traceback": [format!("InternalError: {evalue}")] })
}

/// An error reply for a request the kernel understood but cannot serve.
fn bad_request(why: String) -> Value {
    json!({ "status": "error", "ename": "BadRequest", "evalue": why, "traceback": [format!("BadRequest: {why}")] })
}

fn unsupported(msg_type: &str) -> Value {
    json!({ "status": "error", "ename": "UnsupportedRequest", "evalue": format!("this kernel does not handle {msg_type}"), "traceback": [] })
}

/// The shell side's state.
struct Kernel {
    frontend: Sockets,
    /// Replies, to the shell thread, which sends them.
    shell: zmq::Socket,
    /// Requests, from the shell thread.
    requests: mpsc::Receiver<Message>,
    info: Value,
    execution_count: u64,
    /// (execution count, code, text/plain of the result) per stored cell.
    history: Vec<(u64, String, Value)>,
    interrupt: Interrupt,
    shutdown: Arc<AtomicBool>,
}

impl Kernel {
    /// After a handler panicked: an error reply (and an `error` output for a
    /// cell), then `idle`, so that the frontend does not wait forever.
    fn internal_error(&mut self, msg: &Message, panic: &str) {
        log(&format!("internal error while handling {}: {panic}", msg.msg_type()));
        let mut content = internal_error_content(msg, panic);
        if msg.msg_type() == "execute_request" {
            self.frontend.publish_with_parent("error", json!({ "ename": content["ename"], "evalue": content["evalue"], "traceback": content["traceback"] }), &msg.header);
            content["execution_count"] = json!(self.execution_count);
            content["user_expressions"] = json!({});
            content["payload"] = json!([]);
        }
        if msg.msg_type().ends_with("_request") {
            reply(&self.shell, &self.frontend, msg, &reply_type(msg), content);
        }
        self.frontend.publish_with_parent("status", json!({ "execution_state": "idle" }), &msg.header);
    }

    fn dispatch(&mut self, interp: &mut dyn Interpreter, msg: &Message) {
        self.frontend.publish_with_parent("status", json!({ "execution_state": "busy" }), &msg.header);
        let content = &msg.content;
        let str_of = |k: &str| content.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let cursor = content.get("cursor_pos").and_then(Value::as_u64).unwrap_or(0) as usize;
        match msg.msg_type() {
            "kernel_info_request" => reply(&self.shell, &self.frontend, msg, "kernel_info_reply", self.info.clone()),
            "execute_request" => match content.get("code") {
                Some(Value::String(_)) => self.execute(interp, msg),
                other => {
                    let got = other.map(|v| format!("{v:.40}")).unwrap_or_else(|| "nothing".into());
                    reply(&self.shell, &self.frontend, msg, "execute_reply", {
                        let mut c = bad_request(format!("execute_request needs content.code as a string, got {got}"));
                        c["execution_count"] = json!(self.execution_count);
                        c
                    });
                }
            },
            "complete_request" => {
                let c = interp.complete(&str_of("code"), cursor);
                // As ipykernel: each match's type and signature, for JupyterLab.
                let types: Vec<Value> = c
                    .matches
                    .iter()
                    .zip(&c.details)
                    .map(|(m, d)| json!({ "start": c.cursor_start, "end": c.cursor_end, "text": m, "type": d.kind, "signature": d.signature }))
                    .collect();
                let metadata = if types.is_empty() { json!({}) } else { json!({ "_jupyter_types_experimental": types }) };
                reply(&self.shell, &self.frontend, msg, "complete_reply", json!({
                    "status": "ok", "matches": c.matches, "cursor_start": c.cursor_start, "cursor_end": c.cursor_end, "metadata": metadata,
                }));
            }
            "inspect_request" => {
                let found = interp.inspect(&str_of("code"), cursor);
                let data = found.as_ref().map(|t| json!({ "text/plain": t })).unwrap_or(json!({}));
                reply(&self.shell, &self.frontend, msg, "inspect_reply", json!({ "status": "ok", "found": found.is_some(), "data": data, "metadata": {} }));
            }
            "is_complete_request" => {
                let content = match interp.is_complete(&str_of("code")) {
                    Completeness::Complete => json!({ "status": "complete" }),
                    Completeness::Incomplete(indent) => json!({ "status": "incomplete", "indent": indent }),
                    Completeness::Invalid => json!({ "status": "invalid" }),
                };
                reply(&self.shell, &self.frontend, msg, "is_complete_reply", content);
            }
            "history_request" => {
                let history = self.history_for(content);
                reply(&self.shell, &self.frontend, msg, "history_reply", json!({ "status": "ok", "history": history }));
            }
            "shutdown_request" => {
                let restart = content.get("restart").and_then(Value::as_bool).unwrap_or(false);
                reply(&self.shell, &self.frontend, msg, "shutdown_reply", json!({ "status": "ok", "restart": restart }));
                self.shutdown.store(true, Ordering::SeqCst);
            }
            other if other.ends_with("_request") => reply(&self.shell, &self.frontend, msg, &reply_type(msg), unsupported(other)),
            other => log(&format!("shell: ignored a {other} message")),
        }
        self.frontend.publish_with_parent("status", json!({ "execution_state": "idle" }), &msg.header);
    }

    fn execute(&mut self, interp: &mut dyn Interpreter, msg: &Message) {
        let c = &msg.content;
        let code = c.get("code").and_then(Value::as_str).unwrap_or("").to_string();
        let silent = c.get("silent").and_then(Value::as_bool).unwrap_or(false);
        let store_history = !silent && c.get("store_history").and_then(Value::as_bool).unwrap_or(true);
        let stop_on_error = c.get("stop_on_error").and_then(Value::as_bool).unwrap_or(true);
        if store_history {
            self.execution_count += 1;
            self.history.push((self.execution_count, code.clone(), Value::Null));
        }
        let count = self.execution_count;
        {
            let mut cur = locked(&self.frontend.current);
            cur.parent = msg.header.clone();
            cur.allow_stdin = c.get("allow_stdin").and_then(Value::as_bool).unwrap_or(false);
            cur.stdin_identities = msg.identities.clone();
            cur.payload.clear();
        }
        if !silent {
            self.frontend.publish_with_parent("execute_input", json!({ "code": code, "execution_count": count }), &msg.header);
        }
        self.interrupt.lower();
        let outcome = interp.execute(&code, count, &Frontend::new(Arc::new(self.frontend.clone())));
        let payload = std::mem::take(&mut locked(&self.frontend.current).payload);
        match outcome {
            ExecuteOutcome::Ok(result) => {
                let output = result.as_ref().and_then(|d| d.get("text/plain")).cloned().unwrap_or(Value::Null);
                if store_history {
                    if let Some(last) = self.history.last_mut() {
                        last.2 = output;
                    }
                }
                if let (Some(data), false) = (result, silent) {
                    self.frontend.publish_with_parent("execute_result", json!({ "execution_count": count, "data": data, "metadata": {} }), &msg.header);
                }
                reply(&self.shell, &self.frontend, msg, "execute_reply", json!({ "status": "ok", "execution_count": count, "user_expressions": {}, "payload": payload }));
            }
            ExecuteOutcome::Error { ename, evalue, traceback } => {
                self.frontend.publish_with_parent("error", json!({ "ename": ename, "evalue": evalue, "traceback": traceback }), &msg.header);
                reply(&self.shell, &self.frontend, msg, "execute_reply", json!({
                    "status": "error", "execution_count": count, "ename": ename, "evalue": evalue, "traceback": traceback, "user_expressions": {}, "payload": [],
                }));
                if stop_on_error {
                    self.abort_queued();
                }
            }
        }
    }

    /// After a failed cell, answers the execute requests already queued with
    /// `aborted`, as ipykernel does, so that later cells don't run on a broken state.
    fn abort_queued(&mut self) {
        // The first request queued behind the failed one may still be on its
        // way (a frontend running all cells sends them back to back); the rest
        // of such a batch arrives with it. The whole batch is read before any
        // of it is answered, so that a request sent after the client saw
        // those answers comes later and runs.
        let mut batch: Vec<Message> = self.requests.recv_timeout(ABORT_WINDOW).into_iter().collect();
        batch.extend(self.requests.try_iter());
        for msg in &batch {
            self.frontend.publish_with_parent("status", json!({ "execution_state": "busy" }), &msg.header);
            if msg.msg_type() == "execute_request" {
                reply(&self.shell, &self.frontend, msg, "execute_reply", json!({ "status": "aborted", "execution_count": self.execution_count, "user_expressions": {}, "payload": [] }));
            } else {
                reply(&self.shell, &self.frontend, msg, &reply_type(msg), json!({ "status": "aborted" }));
            }
            self.frontend.publish_with_parent("status", json!({ "execution_state": "idle" }), &msg.header);
        }
    }

    /// `history_request`: tail, range and search over this session's cells.
    fn history_for(&self, content: &Value) -> Vec<Value> {
        let with_output = content.get("output").and_then(Value::as_bool).unwrap_or(false);
        let entry = |(n, code, out): &(u64, String, Value)| if with_output { json!([0, n, [code, out]]) } else { json!([0, n, code]) };
        let int = |k: &str| content.get(k).and_then(Value::as_i64);
        match content.get("hist_access_type").and_then(Value::as_str).unwrap_or("tail") {
            "range" => {
                let start = int("start").unwrap_or(1).max(1) as u64;
                let stop = int("stop").map(|s| s as u64).unwrap_or(u64::MAX);
                self.history.iter().filter(|(n, _, _)| *n >= start && *n < stop).map(entry).collect()
            }
            "search" => {
                let pattern = content.get("pattern").and_then(Value::as_str).unwrap_or("*");
                let n = int("n").unwrap_or(i64::MAX).max(0) as usize;
                let unique = content.get("unique").and_then(Value::as_bool).unwrap_or(false);
                let mut seen = std::collections::HashSet::new();
                let mut hits: Vec<Value> = Vec::new();
                // Newest first when de-duplicating, as IPython keeps the latest of each.
                for h in self.history.iter().rev().filter(|(_, code, _)| glob_match(pattern, code)) {
                    if !unique || seen.insert(h.1.clone()) {
                        hits.push(entry(h));
                    }
                }
                hits.reverse();
                hits[hits.len().saturating_sub(n)..].to_vec()
            }
            _ => {
                let n = int("n").unwrap_or(10).max(0) as usize;
                self.history[self.history.len().saturating_sub(n)..].iter().map(entry).collect()
            }
        }
    }
}
