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
