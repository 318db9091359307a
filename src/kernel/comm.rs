//! Comms: named two-way channels between the frontend and the kernel's
//! language (Jupyter's `comm_open`, `comm_msg`, `comm_close`), which Jupyter
//! widgets are built on. The kernel keeps the registry of open comms and
//! answers `comm_info_request` from it; what a comm means is the
//! interpreter's business, reached through its [`CommSink`].
//!
//! The frontend's comm messages are handled on the shell socket's own
//! thread as they arrive, also while a cell runs (a button pressed during
//! training), never queued behind the cell.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::frontend::locked;
use super::wire::Message;

/// A comm message from the frontend, for the interpreter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommEvent {
    /// The frontend opened a comm to one of the interpreter's targets.
    Open {
        /// The comm's id (the frontend's choice).
        comm_id: String,
        /// The target it opens.
        target_name: String,
        /// The opening data.
        data: Value,
        /// The message's metadata frame.
        metadata: Value,
    },
    /// A message on an open comm.
    Msg {
        /// The comm.
        comm_id: String,
        /// Its data.
        data: Value,
        /// The message's metadata frame.
        metadata: Value,
        /// Binary buffers sent with it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        buffers: Vec<Vec<u8>>,
        /// The message's header: the parent of what answers it (a
        /// widget's `request_state` is matched by it).
        parent: Value,
    },
    /// The frontend closed a comm.
    Close {
        /// The comm.
        comm_id: String,
        /// The closing data.
        data: Value,
    },
}

/// Where the frontend's comm messages go. Called on the kernel's shell
/// thread, while a cell may be running on another: it must return quickly
/// (queue the event, do not run user code).
pub trait CommSink: Send + Sync {
    /// Whether comms to `target_name` may open.
    fn accepts(&self, target_name: &str) -> bool;
    /// One event, in the order the frontend sent them.
    fn deliver(&self, event: CommEvent);
}

/// The open comms, by id, with their targets.
#[derive(Clone, Default)]
pub struct CommRegistry(Arc<Mutex<BTreeMap<String, String>>>);

impl CommRegistry {
    /// Records an open comm.
    pub fn opened(&self, comm_id: &str, target_name: &str) {
        locked(&self.0).insert(comm_id.to_string(), target_name.to_string());
    }

    /// Forgets a comm; whether it was open.
    pub fn closed(&self, comm_id: &str) -> bool {
        locked(&self.0).remove(comm_id).is_some()
    }

    /// Whether `comm_id` is open.
    pub fn is_open(&self, comm_id: &str) -> bool {
        locked(&self.0).contains_key(comm_id)
    }

    /// `comm_info_reply`'s `comms`: every open comm, or those of one target.
    pub fn info(&self, target_name: Option<&str>) -> Value {
        let comms: serde_json::Map<String, Value> = locked(&self.0)
            .iter()
            .filter(|(_, target)| target_name.is_none_or(|t| t == target.as_str()))
            .map(|(id, target)| (id.clone(), json!({ "target_name": target })))
            .collect();
        Value::Object(comms)
    }
}

/// What the kernel does with a comm message from the frontend.
#[derive(Debug, PartialEq)]
pub enum Handling {
    /// Passed to the interpreter.
    Delivered(CommEvent),
    /// A comm to a target nobody serves: closed again at once (as ipykernel
    /// does), with this log line.
    Refused {
        /// The comm to close.
        comm_id: String,
        /// The log line.
        why: String,
    },
    /// Malformed, or for a comm that is not open: logged and dropped.
    Ignored(String),
}

/// Decides what a `comm_open`, `comm_msg` or `comm_close` from the frontend
/// does, and updates `registry`. `sink` is the interpreter's, if it serves
/// comms; the caller delivers what this returns as `Delivered`.
pub fn handle_from_frontend(msg: &Message, registry: &CommRegistry, sink: Option<&dyn CommSink>) -> Handling {
    let (msg_type, content) = (msg.msg_type(), &msg.content);
    let Some(comm_id) = content.get("comm_id").and_then(Value::as_str).map(str::to_string) else {
        return Handling::Ignored(format!("{msg_type} without a comm_id (a string) ignored"));
    };
    let field = |k: &str| content.get(k).cloned().unwrap_or_else(|| json!({}));
    match msg_type {
        "comm_open" => {
            let Some(target_name) = content.get("target_name").and_then(Value::as_str).map(str::to_string) else {
                return Handling::Ignored(format!("comm_open of {comm_id} without a target_name (a string) ignored"));
            };
            if registry.is_open(&comm_id) {
                return Handling::Ignored(format!("comm_open of {comm_id} ignored: a comm with that id is already open"));
            }
            match sink {
                Some(sink) if sink.accepts(&target_name) => {
                    registry.opened(&comm_id, &target_name);
                    Handling::Delivered(CommEvent::Open { comm_id, target_name, data: field("data"), metadata: msg.metadata.clone() })
                }
                _ => Handling::Refused { why: format!("comm_open of {comm_id} refused: no comm target '{target_name}' in this kernel"), comm_id },
            }
        }
        "comm_msg" if registry.is_open(&comm_id) => Handling::Delivered(CommEvent::Msg { comm_id, data: field("data"), metadata: msg.metadata.clone(), buffers: msg.buffers.clone(), parent: msg.header.clone() }),
        "comm_close" if registry.closed(&comm_id) => Handling::Delivered(CommEvent::Close { comm_id, data: field("data") }),
        other => Handling::Ignored(format!("{other} for comm {comm_id} ignored: no such comm is open")),
    }
}
