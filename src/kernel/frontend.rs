//! What an interpreter can send to the notebook while a cell runs.

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};

use super::wire::{self, Signer};
use super::MimeBundle;

/// Locks `m` even if a panicking handler poisoned it: the state it guards
/// (the current parent, the stdin socket) stays valid across a panic.
pub(super) fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The request being served, so that outputs name it as their parent.
#[derive(Default)]
pub(super) struct Current {
    pub parent: Value,
    pub allow_stdin: bool,
    pub stdin_identities: Vec<Vec<u8>>,
    /// Pager payloads for the execute reply.
    pub payload: Vec<Value>,
}

/// What an interpreter sends to the notebook goes either straight to the
/// sockets (the interpreter runs in the kernel's process) or down a pipe to
/// the kernel process (it runs in a worker process, see [`super::remote`]).
#[derive(Clone)]
enum Route {
    Sockets(Sockets),
    Pipe(Arc<dyn Outlet>),
}

/// A way out of a worker process for a cell's outputs and input requests
/// (the pipe to its kernel, `remote.rs`).
pub(super) trait Outlet: Send + Sync {
    fn stream(&self, name: &str, text: &str);
    fn display(&self, data: MimeBundle, display_id: Option<&str>);
    fn update_display(&self, data: MimeBundle, display_id: &str);
    fn clear_output(&self, wait: bool);
    fn page(&self, text: &str);
    fn input(&self, prompt: &str, password: bool) -> Option<String>;
}

/// A cheap, cloneable handle for outputs to the frontend (iopub) and input
/// from it (stdin).
#[derive(Clone)]
pub struct Frontend(Route);

impl Frontend {
    /// Outputs straight to the kernel's sockets.
    pub(super) fn sockets(sockets: Sockets) -> Self {
        Self(Route::Sockets(sockets))
    }

    /// Outputs down the pipe from a worker to its kernel process.
    pub(super) fn to_kernel(pipe: Arc<dyn Outlet>) -> Self {
        Self(Route::Pipe(pipe))
    }

    /// Text on the cell's stdout or stderr (`name` is `stdout` or `stderr`).
    pub fn stream(&self, name: &str, text: &str) {
        match &self.0 {
            Route::Sockets(s) => s.stream(name, text),
            Route::Pipe(w) => w.stream(name, text),
        }
    }

    /// A rich output; with `display_id`, later `update_display` calls replace it in place.
    pub fn display(&self, data: MimeBundle, display_id: Option<&str>) {
        match &self.0 {
            Route::Sockets(s) => s.display(data, display_id),
            Route::Pipe(w) => w.display(data, display_id),
        }
    }

    /// Replaces the output shown earlier with `display_id`.
    pub fn update_display(&self, data: MimeBundle, display_id: &str) {
        match &self.0 {
            Route::Sockets(s) => s.update_display(data, display_id),
            Route::Pipe(w) => w.update_display(data, display_id),
        }
    }

    /// Clears the cell's output (at the next output, if `wait`).
    pub fn clear_output(&self, wait: bool) {
        match &self.0 {
            Route::Sockets(s) => s.clear_output(wait),
            Route::Pipe(w) => w.clear_output(wait),
        }
    }

    /// Shows text in the frontend's pager (an execute-reply payload).
    pub fn page(&self, text: &str) {
        match &self.0 {
            Route::Sockets(s) => s.page(text),
            Route::Pipe(w) => w.page(text),
        }
    }

    /// Asks the user for a line of text. `None` when the frontend does not
    /// accept input or the request was interrupted (`stop`).
    pub fn input(&self, prompt: &str, password: bool, stop: &std::sync::atomic::AtomicBool) -> Option<String> {
        match &self.0 {
            Route::Sockets(s) => s.input(prompt, password, stop),
            // The kernel process watches the interrupt and answers `None`.
            Route::Pipe(w) => w.input(prompt, password),
        }
    }
}

/// The kernel's own sockets: iopub (through its thread) and stdin.
#[derive(Clone)]
pub(super) struct Sockets {
    pub(super) iopub: Sender<Vec<Vec<u8>>>,
    pub(super) signer: Signer,
    pub(super) session: String,
    pub(super) current: Arc<Mutex<Current>>,
    pub(super) stdin: Arc<Mutex<zmq::Socket>>,
}

impl Sockets {
    /// Publishes one iopub message whose parent is the current request.
    pub(super) fn publish(&self, msg_type: &str, content: Value) {
        let parent = locked(&self.current).parent.clone();
        self.publish_with_parent(msg_type, content, &parent);
    }

    pub(super) fn publish_with_parent(&self, msg_type: &str, content: Value, parent: &Value) {
        let header = wire::new_header(msg_type, &self.session);
        let topic = format!("kernel.{}.{msg_type}", self.session).into_bytes();
        let frames = wire::encode(&[topic], &header, parent, &json!({}), &content, &self.signer);
        // The iopub thread only stops at exit; a failed send then is harmless.
        let _ = self.iopub.send(frames);
    }

    /// Text on the cell's stdout or stderr (`name` is `stdout` or `stderr`).
    pub(super) fn stream(&self, name: &str, text: &str) {
        self.publish("stream", json!({ "name": name, "text": text }));
    }

    /// A rich output; with `display_id`, later `update_display` calls replace it in place.
    pub(super) fn display(&self, data: MimeBundle, display_id: Option<&str>) {
        let mut content = json!({ "data": data, "metadata": {} });
        if let Some(id) = display_id {
            content["transient"] = json!({ "display_id": id });
        }
        self.publish("display_data", content);
    }

    /// Replaces the output shown earlier with `display_id`.
    pub(super) fn update_display(&self, data: MimeBundle, display_id: &str) {
        self.publish("update_display_data", json!({ "data": data, "metadata": {}, "transient": { "display_id": display_id } }));
    }

    /// Clears the cell's output (at the next output, if `wait`).
    pub(super) fn clear_output(&self, wait: bool) {
        self.publish("clear_output", json!({ "wait": wait }));
    }

    /// Shows text in the frontend's pager (an execute-reply payload).
    pub(super) fn page(&self, text: &str) {
        let page = json!({ "source": "page", "data": { "text/plain": text }, "start": 0 });
        locked(&self.current).payload.push(page);
    }

    /// Asks the user for a line of text. `None` when the frontend does not
    /// accept input or the request was interrupted.
    pub(super) fn input(&self, prompt: &str, password: bool, stop: &std::sync::atomic::AtomicBool) -> Option<String> {
        let (allow, identities, parent) = {
            let c = locked(&self.current);
            (c.allow_stdin, c.stdin_identities.clone(), c.parent.clone())
        };
        if !allow {
            return None;
        }
        let socket = locked(&self.stdin);
        let header = wire::new_header("input_request", &self.session);
        let frames = wire::encode(&identities, &header, &parent, &json!({}), &json!({ "prompt": prompt, "password": password }), &self.signer);
        socket.send_multipart(frames, 0).ok()?;
        loop {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                return None;
            }
            let mut items = [socket.as_poll_item(zmq::POLLIN)];
            if zmq::poll(&mut items, Duration::from_millis(100).as_millis() as i64).ok()? == 0 {
                continue;
            }
            let frames = socket.recv_multipart(0).ok()?;
            match wire::decode(frames, &self.signer) {
                Ok(m) if m.msg_type() == "input_reply" => return m.content.get("value").and_then(Value::as_str).map(str::to_string),
                Ok(_) => continue,
                Err(e) => eprintln!("[tunebook kernel] stdin: dropped a message: {e}"),
            }
        }
    }
}
