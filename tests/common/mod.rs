//! Helpers shared by the integration tests.

#![allow(dead_code)]

use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tunebook::script::{Host, Session, SessionSettings};
use tunebook::train::{TrainEvent, TrainObserver};

/// Everything a script printed and every training event, for assertions.
#[derive(Default)]
pub struct Recorded {
    pub printed: Vec<String>,
    pub events: Vec<TrainEvent>,
    pub charts: Vec<tunebook::plot::Chart>,
    pub errors: Vec<String>,
}

/// A host that records instead of printing.
pub struct RecordingHost(pub Rc<RefCell<Recorded>>);

struct RecordingObserver(Rc<RefCell<Recorded>>);

impl TrainObserver for RecordingObserver {
    fn on_event(&mut self, event: &TrainEvent) {
        self.0.borrow_mut().events.push(event.clone());
    }
}

impl Host for RecordingHost {
    fn input(&self, prompt: &str) -> Option<String> {
        self.0.borrow_mut().printed.push(prompt.to_string());
        Some("3".into())
    }
    fn print(&self, text: &str) {
        self.0.borrow_mut().printed.push(text.to_string());
    }
    fn eprint(&self, text: &str) {
        self.0.borrow_mut().errors.push(text.to_string());
    }
    fn train_observer(&self) -> Box<dyn TrainObserver> {
        Box::new(RecordingObserver(self.0.clone()))
    }
    fn show_chart(&self, chart: &tunebook::plot::Chart) {
        self.0.borrow_mut().charts.push(chart.clone());
    }
}

/// A CPU session over the bootstrap's cache, and what it records.
pub fn session() -> (Session, Rc<RefCell<Recorded>>) {
    let recorded = Rc::new(RefCell::new(Recorded::default()));
    let settings = SessionSettings {
        device: tch::Device::Cpu,
        seed: 42,
        cache: tunebook::runtime::cache_dir(),
        stop: Arc::new(AtomicBool::new(false)),
        limits: Default::default(),
        precision: Default::default(),
    };
    (Session::new(Rc::new(RecordingHost(recorded.clone())), settings), recorded)
}

/// Copies the tiny BERT fixture (config, vocabulary, safetensors weights)
/// into a new folder `to`, as a model folder a script can load.
pub fn copy_tiny_bert(to: &std::path::Path) {
    let fixture = repo().join("tests/fixtures/tiny-bert");
    std::fs::create_dir_all(to).unwrap();
    for (from, name) in [("config.json", "config.json"), ("vocab.txt", "vocab.txt"), ("safetensors/model.safetensors", "model.safetensors")] {
        std::fs::copy(fixture.join(from), to.join(name)).unwrap();
    }
}

/// The `tunebook` binary built for these tests.
pub fn tunebook_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tunebook"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Holds a lock for the rest of a test: tests that seed libtorch's one
/// global generator and train run one at a time within their binary.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The folder of the bootstrap's MiniLM.
pub fn minilm_dir() -> PathBuf {
    tunebook::model::resolve_path("minilm", &tunebook::runtime::cache_dir()).unwrap()
}

/// MiniLM on the CPU with a new classification head for `labels`.
pub fn load_minilm(labels: &[&str], pooling: tunebook::model::Pooling) -> tunebook::model::TextModel {
    let labels = Some(labels.iter().map(|l| l.to_string()).collect());
    let opts = tunebook::model::LoadOptions { labels, pooling, task: None, device: tch::Device::Cpu, dropout: None };
    tunebook::model::TextModel::load("minilm", &minilm_dir(), &opts).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A finished command's exit code (-1 for a signal), stdout and stderr.
pub fn outcome(out: std::process::Output) -> (i32, String, String) {
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// Waits for `child` to exit, at most `limit`; kills it and fails if it
/// has not (a hang). Returns its status and how long it took.
pub fn exits_within(child: &mut std::process::Child, limit: std::time::Duration, what: &str) -> (std::process::ExitStatus, std::time::Duration) {
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, started.elapsed());
        }
        if started.elapsed() > limit {
            child.kill().ok();
            panic!("{what} still ran {limit:?} later: a hang");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
