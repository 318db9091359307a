//! What an interpreter can send to the notebook while a cell runs.

use std::sync::atomic::AtomicBool;
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
    /// The comm message whose handlers run now, if any: their outputs name
    /// it as their parent, as ipykernel's do, not the cell that runs next.
    pub serving: Option<Value>,
}

impl Current {
    /// The parent of an output sent now.
    fn parent(&self) -> Value {
        self.serving.clone().unwrap_or_else(|| self.parent.clone())
    }
}

/// Where an interpreter's outputs and input requests go: straight to the
/// kernel's sockets (the interpreter runs in the kernel's process), or down
/// the pipe from a worker process to its kernel (`remote.rs`).
pub(super) trait Outlet: Send + Sync {
    fn stream(&self, name: &str, text: &str);
    fn display(&self, data: MimeBundle, display_id: Option<&str>);
    fn update_display(&self, data: MimeBundle, display_id: &str);
    fn clear_output(&self, wait: bool);
    fn page(&self, text: &str);
    fn input(&self, prompt: &str, password: bool, stop: &AtomicBool) -> Option<String>;
    fn comm(&self, message: CommFromKernel);
    /// Outputs from now on answer `parent` (a comm message), or again the
    /// current request when `None`.
    fn serving(&self, parent: Option<Value>);
}

/// A comm message from the interpreter to the frontend.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommFromKernel {
    /// Opens a comm to a frontend target (`jupyter.widget`, ...).
    Open {
        /// The new comm's id.
        comm_id: String,
        /// The frontend target.
        target_name: String,
        /// The opening data.
        data: Value,
        /// The message's metadata frame (a widget's `version`).
        metadata: Value,
    },
    /// A message on an open comm.
    Msg {
        /// The comm.
        comm_id: String,
        /// Its data.
        data: Value,
        /// The message's metadata frame (a widget's `version`).
        metadata: Value,
        /// The request it answers, when not the current one (a widget's
        /// `request_state`).
        #[serde(default)]
        parent: Option<Value>,
    },
    /// Closes a comm.
    Close {
        /// The comm.
        comm_id: String,
        /// The closing data.
        data: Value,
    },
}

/// A cheap, cloneable handle for outputs to the frontend (iopub) and input
/// from it (stdin).
#[derive(Clone)]
pub struct Frontend(Arc<dyn Outlet>);

impl Frontend {
    /// Outputs through `outlet`.
    pub(super) fn new(outlet: Arc<dyn Outlet>) -> Self {
        Self(outlet)
    }

    /// Text on the cell's stdout or stderr (`name` is `stdout` or `stderr`).
    pub fn stream(&self, name: &str, text: &str) {
        self.0.stream(name, text);
    }

    /// A rich output; with `display_id`, later `update_display` calls replace it in place.
    pub fn display(&self, data: MimeBundle, display_id: Option<&str>) {
        self.0.display(data, display_id);
    }

    /// Replaces the output shown earlier with `display_id`.
    pub fn update_display(&self, data: MimeBundle, display_id: &str) {
        self.0.update_display(data, display_id);
    }

    /// Clears the cell's output (at the next output, if `wait`).
    pub fn clear_output(&self, wait: bool) {
        self.0.clear_output(wait);
    }

    /// Shows text in the frontend's pager (an execute-reply payload).
    pub fn page(&self, text: &str) {
        self.0.page(text);
    }

    /// Asks the user for a line of text. `None` when the frontend does not
    /// accept input or the request was interrupted (`stop`).
    pub fn input(&self, prompt: &str, password: bool, stop: &AtomicBool) -> Option<String> {
        self.0.input(prompt, password, stop)
    }

    /// Opens, writes to or closes a comm (on iopub, under the current request).
    pub fn comm(&self, message: CommFromKernel) {
        self.0.comm(message);
    }

    /// Runs `f` with its outputs answering `parent` (the comm message whose
    /// handlers `f` runs); a null parent leaves them with the current request.
    pub fn serving<T>(&self, parent: Value, f: impl FnOnce() -> T) -> T {
        /// Puts the current request back even if `f` panics.
        struct Restore<'a>(&'a dyn Outlet);
        impl Drop for Restore<'_> {
            fn drop(&mut self) {
                self.0.serving(None);
            }
        }
        if parent.is_null() {
            return f();
        }
        self.0.serving(Some(parent));
        let _restore = Restore(&*self.0);
        f()
    }

    /// Sets what outputs answer (see [`Frontend::serving`]), for the relay of a worker's outputs.
    pub(super) fn set_serving(&self, parent: Option<Value>) {
        self.0.serving(parent);
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
    /// The open comms.
    pub(super) comms: super::comm::CommRegistry,
}

impl Sockets {
    /// Publishes one iopub message whose parent is the current request.
    pub(super) fn publish(&self, msg_type: &str, content: Value) {
        let parent = locked(&self.current).parent();
        self.publish_with_parent(msg_type, content, &parent);
    }

    pub(super) fn publish_with_parent(&self, msg_type: &str, content: Value, parent: &Value) {
        self.publish_with_metadata(msg_type, content, parent, &json!({}));
    }

    /// Publishes with a message metadata frame (a widget's protocol version).
    pub(super) fn publish_with_metadata(&self, msg_type: &str, content: Value, parent: &Value, metadata: &Value) {
        let header = wire::new_header(msg_type, &self.session);
        let topic = format!("kernel.{}.{msg_type}", self.session).into_bytes();
        let frames = wire::encode(&[topic], &header, parent, metadata, &content, &self.signer);
        // The iopub thread only stops at exit; a failed send then is harmless.
        let _ = self.iopub.send(frames);
    }
}

impl Outlet for Sockets {
    /// A comm message, on iopub; the registry follows what opens and closes.
    fn serving(&self, parent: Option<Value>) {
        locked(&self.current).serving = parent;
    }

    fn comm(&self, message: CommFromKernel) {
        let parent = locked(&self.current).parent();
        match message {
            CommFromKernel::Open { comm_id, target_name, data, metadata } => {
                self.comms.opened(&comm_id, &target_name);
                self.publish_with_metadata("comm_open", json!({ "comm_id": comm_id, "target_name": target_name, "data": data }), &parent, &metadata);
            }
            CommFromKernel::Msg { comm_id, data, metadata, parent: answered } => {
                self.publish_with_metadata("comm_msg", json!({ "comm_id": comm_id, "data": data }), answered.as_ref().unwrap_or(&parent), &metadata)
            }
            CommFromKernel::Close { comm_id, data } => {
                self.comms.closed(&comm_id);
                self.publish("comm_close", json!({ "comm_id": comm_id, "data": data }));
            }
        }
    }

    /// Text on the cell's stdout or stderr (`name` is `stdout` or `stderr`).
    fn stream(&self, name: &str, text: &str) {
        self.publish("stream", json!({ "name": name, "text": text }));
    }

    /// A rich output; with `display_id`, later `update_display` calls replace it in place.
    fn display(&self, data: MimeBundle, display_id: Option<&str>) {
        let mut content = json!({ "data": data, "metadata": {} });
        if let Some(id) = display_id {
            content["transient"] = json!({ "display_id": id });
        }
        self.publish("display_data", content);
    }

    /// Replaces the output shown earlier with `display_id`.
    fn update_display(&self, data: MimeBundle, display_id: &str) {
        self.publish("update_display_data", json!({ "data": data, "metadata": {}, "transient": { "display_id": display_id } }));
    }

    /// Clears the cell's output (at the next output, if `wait`).
    fn clear_output(&self, wait: bool) {
        self.publish("clear_output", json!({ "wait": wait }));
    }

    /// Shows text in the frontend's pager (an execute-reply payload).
    fn page(&self, text: &str) {
        let page = json!({ "source": "page", "data": { "text/plain": text }, "start": 0 });
        locked(&self.current).payload.push(page);
    }

    /// Asks the user for a line of text. `None` when the frontend does not
    /// accept input or the request was interrupted.
    fn input(&self, prompt: &str, password: bool, stop: &AtomicBool) -> Option<String> {
        let (allow, identities, parent) = {
            let c = locked(&self.current);
            (c.allow_stdin, c.stdin_identities.clone(), c.parent())
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
