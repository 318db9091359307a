//! Script fuzzing, seeded so that a failure reproduces: mutated versions of
//! small real scripts, and random token soups, run through a session with
//! the whole API registered. Every input must end in a value or a script
//! error: never a panic (not even one the API turns into "internal error"),
//! never a hang past the operation limit or the interrupt. The cargo-fuzz
//! target `script` (fuzz/) does the same with libFuzzer's mutations.

mod common;

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tunebook::script::{Limits, Session, SessionSettings};

/// Inputs per run; `TUNEBOOK_FUZZ_INPUTS` asks for more.
const DEFAULT_INPUTS: usize = 4000;
/// The interrupt a user would press, sent by a watchdog.
const WALL_LIMIT: Duration = Duration::from_secs(2);

/// The seed scripts (tests/corpus/scripts): small uses of the tiny fixture
/// model and in-memory data, cheap API calls only, and nothing that writes
/// files (mutations could aim a save anywhere). `TINY` is the fixture's path.
fn seeds() -> Vec<(String, String)> {
    let dir = common::repo().join("tests/corpus/scripts");
    let mut seeds: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read_to_string(e.path()).unwrap()))
        .collect();
    seeds.sort();
    seeds
}

/// Replacement literals and tokens the mutator draws from.
const NUMBERS: &[&str] = &["0", "-1", "1", "2", "0.0", "-0.0", "1e308", "1e-300", "9223372036854775807", "-9223372036854775808", "3.5", "100000", "1e9", "65"];
const STRINGS: &[&str] = &["\"\"", "\"x\"", "\"encoder.layer.99\"", "\"*\"", "\"all\"", "\"名前\"", "\"a\\u0000b\"", "\"head\"", "\"lora\"", "\"sgd\"", "\"cosine\"", "\"mean\""];
const TOKENS: &[&str] = &[
    "(", ")", "{", "}", "[", "]", "#{", ";", ",", ".", "..", "..=", "+", "-", "*", "/", "%", "=", "==", "!", "?", ":", "|x|", "let", "const", "fn",
    "return", "if", "else", "while", "loop", "break", "for", "in", "throw", "try", "catch", "()", "true", "false", "this", "null", "x", "m", "t",
    "fit", "evaluate", "predict", "load_model", "dataset", "tensor", "plot", "plot_freeze", "freeze", "unfreeze", "split", "tokenize", "loader",
    "len", "shape", "labels", "summary", "TINY", "loop {}", "while true { }",
];

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

/// One random change to `src`: a literal swapped, a line dropped, repeated
/// or moved, a span cut, or a token inserted.
fn mutate(src: &str, rng: &mut StdRng) -> String {
    let lines: Vec<&str> = src.lines().collect();
    if lines.is_empty() {
        return pick(rng, TOKENS).to_string();
    }
    match rng.random_range(0..7) {
        0 | 1 => {
            // Swap the n-th number or string literal.
            let numbers = rng.random_bool(0.5);
            let spans: Vec<(usize, usize)> = literal_spans(src, numbers);
            if spans.is_empty() {
                return src.to_string();
            }
            let (a, b) = spans[rng.random_range(0..spans.len())];
            let with = if numbers { pick(rng, NUMBERS) } else { pick(rng, STRINGS) };
            format!("{}{}{}", &src[..a], with, &src[b..])
        }
        2 => {
            let i = rng.random_range(0..lines.len());
            lines.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, l)| *l).collect::<Vec<_>>().join("\n")
        }
        3 => {
            let i = rng.random_range(0..lines.len());
            let mut out = lines.clone();
            out.insert(rng.random_range(0..=lines.len()), lines[i]);
            out.join("\n")
        }
        4 => {
            let cut = char_boundary(src, rng.random_range(0..src.len()));
            let end = char_boundary(src, (cut + rng.random_range(1..40)).min(src.len()));
            format!("{}{}", &src[..cut], &src[end..])
        }
        _ => {
            let at = char_boundary(src, rng.random_range(0..=src.len()));
            format!("{} {} {}", &src[..at], pick(rng, TOKENS), &src[at..])
        }
    }
}

fn char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Byte spans of number literals (`numbers`) or string literals.
fn literal_spans(src: &str, numbers: bool) -> Vec<(usize, usize)> {
    let b = src.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if !numbers && b[i] == b'"' {
            let start = i;
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            spans.push((start, (i + 1).min(b.len())));
        } else if numbers && b[i].is_ascii_digit() && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_' || b[i - 1] == b'.')) {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'.' || b[i] == b'-') && !(b[i] == b'.' && b.get(i + 1) == Some(&b'.')) {
                i += 1;
            }
            spans.push((start, i));
            continue;
        }
        i += 1;
    }
    spans
}

/// A random soup of tokens and literals.
fn soup(rng: &mut StdRng) -> String {
    (0..rng.random_range(1..40))
        .map(|_| match rng.random_range(0..4) {
            0 => pick(rng, NUMBERS),
            1 => pick(rng, STRINGS),
            _ => pick(rng, TOKENS),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[derive(Default, Debug)]
struct Tally {
    inputs: usize,
    values: usize,
    script_errors: usize,
    operation_limit: usize,
    interrupted: usize,
    slowest: Duration,
    last_error: String,
}

#[test]
fn mutated_and_random_scripts_end_in_values_or_script_errors() {
    let inputs: usize = std::env::var("TUNEBOOK_FUZZ_INPUTS").ok().and_then(|v| v.parse().ok()).unwrap_or(DEFAULT_INPUTS);
    let seed: u64 = std::env::var("TUNEBOOK_FUZZ_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(20261129);
    let mut rng = StdRng::seed_from_u64(seed);
    let tiny = serde_json::to_string(&common::repo().join("tests/fixtures/tiny-bert").display().to_string()).unwrap();
    let limits = Limits { operations: 200_000, string_size: 1 << 20, array_size: 100_000, map_size: 10_000, ..Limits::default() };
    let mut tally = Tally::default();
    let mut failures = Vec::new();

    // The seeds themselves must run: a fuzzer over broken seeds tests nothing.
    let run = |source: &str, tally: &mut Tally| -> Result<(), String> {
        let stop = Arc::new(AtomicBool::new(false));
        let settings = SessionSettings { device: tch::Device::Cpu, seed: 1, cache: tunebook::runtime::cache_dir(), stop: stop.clone(), limits, precision: Default::default() };
        let recorded = Rc::new(std::cell::RefCell::new(common::Recorded::default()));
        let mut session = Session::new(Rc::new(common::RecordingHost(recorded)), settings);
        let _ = session.eval(&format!("const TINY = {tiny};"), "setup").expect("the setup cell runs");
        let done = Arc::new(AtomicBool::new(false));
        let watchdog = {
            let (stop, done) = (stop.clone(), done.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                while !done.load(Ordering::SeqCst) {
                    if start.elapsed() > WALL_LIMIT {
                        stop.store(true, Ordering::SeqCst);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        let started = Instant::now();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| session.eval(source, "fuzz")));
        let took = started.elapsed();
        done.store(true, Ordering::SeqCst);
        watchdog.join().unwrap();
        tally.inputs += 1;
        tally.slowest = tally.slowest.max(took);
        // The interrupt must take effect (at the next batch or operation);
        // the bound is generous, against a hang, not a timing.
        if took > WALL_LIMIT + Duration::from_secs(60) {
            return Err(format!("still running {took:?} after the interrupt at {WALL_LIMIT:?}: a hang"));
        }
        match result {
            Err(_) => Err("panicked".into()),
            Ok(Ok(_)) => {
                tally.values += 1;
                Ok(())
            }
            Ok(Err(e)) if e.message.contains("internal error") => Err(format!("a caught panic: {e}")),
            Ok(Err(e)) => {
                tally.last_error = e.to_string();
                if e.interrupted {
                    tally.interrupted += 1;
                } else if e.message.contains("operation limit") {
                    tally.operation_limit += 1;
                } else {
                    tally.script_errors += 1;
                }
                Ok(())
            }
        }
    };
    tunebook::script::install_panic_hook();
    let seeds = seeds();
    assert!(seeds.len() >= 5);
    for (name, seed_script) in &seeds {
        let mut t = Tally::default();
        run(seed_script, &mut t).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        assert_eq!(t.values, 1, "seed {name} must run without error: {}", t.last_error);
    }
    // The two backstops the fuzzer relies on: the operation limit ends an
    // endless loop, and the interrupt ends an endless training run.
    let mut t = Tally::default();
    run("let x = 0; loop { x += 1; }", &mut t).unwrap();
    assert_eq!(t.operation_limit, 1, "{}", t.last_error);
    let training = &seeds.iter().find(|(name, _)| name.contains("training")).expect("a training seed").1;
    run(&training.replace("epochs: 1,", "epochs: 1000000,"), &mut t).unwrap();
    assert_eq!(t.interrupted, 1, "{}", t.last_error);
    for n in 0..inputs {
        let source = if n % 5 == 4 {
            soup(&mut rng)
        } else {
            let mut s = seeds[rng.random_range(0..seeds.len())].1.clone();
            for _ in 0..rng.random_range(1..4) {
                s = mutate(&s, &mut rng);
            }
            s
        };
        if let Err(why) = run(&source, &mut tally) {
            failures.push(format!("input {n} {why}:\n{source}"));
        }
    }
    tally.last_error.clear();
    eprintln!("script fuzzing (seed {seed}): {tally:?}");
    assert!(failures.is_empty(), "{} of {} inputs failed:\n\n{}", failures.len(), inputs, failures.join("\n\n"));
    assert!(tally.values > inputs / 20 && tally.script_errors > inputs / 4, "the mutations should leave some scripts running and break many: {tally:?}");
}
