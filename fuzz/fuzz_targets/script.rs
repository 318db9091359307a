//! Rhai source through a session with the whole API registered: only values
//! and script errors, never a panic, and no loop past the operation limit.
//! A panic that an API function caught shows as "internal error": that is a
//! bug too, so it aborts the run. Seed it with tests/corpus/scripts:
//! `cargo +nightly fuzz run script -s none fuzz/corpus/script ../tests/corpus/scripts`.
#![no_main]

use std::rc::Rc;

use libfuzzer_sys::fuzz_target;
use tunebook::script::{Limits, QuietHost, Session, SessionSettings};

fuzz_target!(|data: &[u8]| {
    let Ok(source) = std::str::from_utf8(data) else { return };
    let limits = Limits { operations: 100_000, string_size: 1 << 20, array_size: 100_000, map_size: 10_000, ..Limits::default() };
    let settings = SessionSettings {
        device: tch::Device::Cpu,
        seed: 1,
        cache: tunebook::runtime::cache_dir(),
        stop: Default::default(),
        limits,
    };
    let mut session = Session::new(Rc::new(QuietHost), settings);
    // The seeds (tests/corpus/scripts) load the tiny fixture model as TINY.
    let tiny = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/tiny-bert");
    let _ = session.eval(&format!("const TINY = {tiny:?};"), "setup").expect("the setup cell runs");
    if let Err(e) = session.eval(source, "fuzz") {
        assert!(!e.message.contains("internal error"), "{e}");
    }
});
