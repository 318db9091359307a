//! A panic inside a kernel handler must not hang or kill the kernel (the
//! failure evcxr's issue #422 describes): the request gets an error reply,
//! and the next one is served as usual.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use tunebook::kernel::wire::{self, Signer};
use tunebook::kernel::{Completeness, Completions, ExecuteOutcome, Frontend, Interpreter, LanguageInfo};

/// Runs cells that say "ok", and panics on "panic" as a buggy interpreter would.
struct Fragile;

impl Interpreter for Fragile {
    fn language_info(&self) -> LanguageInfo {
        LanguageInfo {
            name: "fragile".into(),
            version: "0".into(),
            file_extension: ".txt".into(),
            mimetype: "text/plain".into(),
            codemirror_mode: "text".into(),
            pygments_lexer: "text".into(),
            implementation: ("fragile".into(), "0".into()),
            banner: String::new(),
        }
    }
    fn execute(&mut self, code: &str, _: u64, _: &Frontend) -> ExecuteOutcome {
        if code == "panic" {
            let empty: Vec<u8> = Vec::new();
            let _ = empty[3]; // an index out of bounds, as real bugs are
        }
        ExecuteOutcome::Ok(None)
    }
    fn complete(&mut self, _: &str, _: usize) -> Completions {
        panic!("completion is broken")
    }
    fn inspect(&mut self, _: &str, _: usize) -> Option<String> {
        None
    }
    fn is_complete(&mut self, _: &str) -> Completeness {
        Completeness::Complete
    }
}


fn request(socket: &zmq::Socket, signer: &Signer, msg_type: &str, content: Value) -> Value {
    let header = wire::new_header(msg_type, "test");
    socket.send_multipart(wire::encode(&[], &header, &json!({}), &json!({}), &content, signer), 0).unwrap();
    let mut items = [socket.as_poll_item(zmq::POLLIN)];
    assert_eq!(zmq::poll(&mut items, 20_000).unwrap(), 1, "no reply to {msg_type} within 20 s: the kernel hangs");
    let reply = wire::decode(socket.recv_multipart(0).unwrap(), signer).unwrap();
    assert_eq!(reply.parent_header["msg_id"], header["msg_id"]);
    reply.content
}

#[test]
fn a_panicking_handler_gets_an_error_reply_and_the_kernel_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let key = "a-test-key";
    // Port 0 everywhere: the kernel picks free ports and writes them back
    // into the connection file, so no port is chosen here and raced for.
    let conn = json!({
        "ip": "127.0.0.1", "transport": "tcp", "signature_scheme": "hmac-sha256", "key": key,
        "shell_port": 0, "control_port": 0, "iopub_port": 0, "stdin_port": 0, "hb_port": 0,
    });
    let file = dir.path().join("kernel.json");
    std::fs::write(&file, conn.to_string()).unwrap();
    // Private, as Jupyter writes it: the key must stay so after the rewrite.
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    tunebook::script::install_panic_hook();
    let served = file.clone();
    let server = std::thread::spawn(move || tunebook::kernel::serve(&served, false, |_, _| Box::new(Fragile)));
    let started = std::time::Instant::now();
    let ports = loop {
        let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap_or(Value::Null);
        let ports: Vec<u64> = ["shell", "control", "iopub", "stdin", "hb"].iter().filter_map(|n| written[format!("{n}_port")].as_u64()).collect();
        if ports.len() == 5 && ports.iter().all(|&p| p > 0) {
            break ports;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the kernel wrote no ports into its connection file: {written}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut distinct = ports.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 5, "five different ports: {ports:?}");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions()) & 0o777;
    assert_eq!(mode, 0o600, "the rewritten connection file is readable by others: {mode:o}");
    let shell = ports[0];

    let ctx = zmq::Context::new();
    let socket = ctx.socket(zmq::DEALER).unwrap();
    socket.set_linger(0).unwrap();
    socket.connect(&format!("tcp://127.0.0.1:{shell}")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let signer = Signer::new(key);

    let reply = request(&socket, &signer, "execute_request", json!({ "code": "panic" }));
    assert_eq!(reply["status"], "error");
    assert_eq!(reply["ename"], "InternalError");
    let evalue = reply["evalue"].as_str().unwrap();
    assert!(evalue.contains("index out of bounds") && evalue.contains("please report it"), "{evalue}");

    let reply = request(&socket, &signer, "complete_request", json!({ "code": "x", "cursor_pos": 1 }));
    assert_eq!(reply["ename"], "InternalError");
    assert!(reply["evalue"].as_str().unwrap().contains("completion is broken"));

    // Still serving, with its count intact: the panicking cell counted once.
    let reply = request(&socket, &signer, "execute_request", json!({ "code": "ok" }));
    assert_eq!(reply["status"], "ok");
    assert_eq!(reply["execution_count"], 2);

    let reply = request(&socket, &signer, "shutdown_request", json!({ "restart": false }));
    assert_eq!(reply["status"], "ok");
    server.join().unwrap().unwrap();
}
