//! `%%rust` notebook cells: Rust evaluated by evcxr in a process of its
//! own, with a bridge to the Rhai scope. Values cross by value: numbers,
//! bools, strings, arrays of them, and tensors (as safetensors files).
//!
//! In a Rust cell, `tunebook::set("name", &value)` binds `name` in the Rhai
//! scope when the cell ends, and `tunebook::get_f64("name")` (and
//! `get_i64`, `get_bool`, `get_string`, `get_vec_f64`, `get_tensor`) reads
//! a Rhai variable that the cell names in quotes.
//!
//! The bridge's formats are here whatever the build; evaluating Rust needs
//! the `rust-cells` feature.

use std::path::Path;

use anyhow::{bail, Context as _, Result};
use rhai::{Array, Dynamic};

use super::api::TensorHandle;

/// The first line of a Rust cell.
pub const MAGIC: &str = "%%rust";

/// The media type prefix of a value a Rust cell hands to Rhai; the
/// variable's name follows (evcxr keeps one output per media type, so one
/// type per name keeps every value and the last one of each name).
pub const SET_MEDIA_PREFIX: &str = "application/vnd.tunebook.set.";

/// The media type of a panic's message (evcxr catches panics and reports
/// the cell as run; the bridge's panic hook says it failed).
pub const PANIC_MEDIA: &str = "application/vnd.tunebook.panic";

/// The body of a `%%rust` cell (after its first line), or `None` for a
/// Rhai cell.
pub fn rust_cell_body(code: &str) -> Option<&str> {
    let trimmed = code.trim_start_matches(['\n', '\r', ' ', '\t']);
    let first = trimmed.lines().next()?;
    if first.trim_end() != MAGIC {
        return None;
    }
    Some(trimmed[first.len()..].trim_start_matches(['\r', '\n']))
}

/// The names a Rust cell passes in quotes: the Rhai variables it may read.
pub fn quoted_names(body: &str) -> Vec<String> {
    let mut names: Vec<String> = body
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_') && !s.starts_with(|c: char| c.is_ascii_digit()))
        .map(str::to_string)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Writes a Rhai value where the Rust cell's getters read it
/// (`dir/NAME.value`, and `dir/NAME.safetensors` for a tensor). A value
/// that cannot cross is written as `unsupported` with its type, so that the
/// getter can say so.
pub fn export_value(dir: &Path, name: &str, value: &Dynamic, type_name: &str) -> Result<()> {
    let number = |v: &Dynamic| v.as_int().map(|i| i as f64).or_else(|_| v.as_float()).ok();
    let text = if let Ok(i) = value.as_int() {
        format!("i64\n{i}")
    } else if let Ok(f) = value.as_float() {
        format!("f64\n{f:?}")
    } else if let Ok(b) = value.as_bool() {
        format!("bool\n{b}")
    } else if value.is_string() {
        format!("string\n{}", value.clone().into_string().unwrap_or_default())
    } else if let Some(items) = value.read_lock::<Array>() {
        match items.iter().map(number).collect::<Option<Vec<f64>>>() {
            Some(xs) => std::iter::once("f64s".to_string()).chain(xs.iter().map(|x| format!("{x:?}"))).collect::<Vec<_>>().join("\n"),
            None => format!("unsupported\nan array of other things than numbers ({type_name})"),
        }
    } else if let Some(t) = value.read_lock::<TensorHandle>() {
        let path = dir.join(format!("{name}.safetensors"));
        let flat = t.0.to_kind(tch::Kind::Float).to_device(tch::Device::Cpu).contiguous();
        tch::Tensor::write_safetensors(&[("t", &flat)], &path).map_err(|e| anyhow::anyhow!("cannot hand over the tensor {name}: {e}"))?;
        format!("tensor\n{}", path.display())
    } else {
        format!("unsupported\n{type_name}")
    };
    std::fs::write(dir.join(format!("{name}.value")), text).with_context(|| format!("cannot hand {name} to the Rust cell"))
}

/// A value a Rust cell set (its JSON), as a Rhai value.
pub fn import_value(json: &str) -> Result<Dynamic> {
    let value: serde_json::Value = serde_json::from_str(json.trim()).context("a Rust cell handed over a value that is not JSON")?;
    from_json(&value)
}

fn from_json(value: &serde_json::Value) -> Result<Dynamic> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => Dynamic::UNIT,
        J::Bool(b) => (*b).into(),
        J::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or(f64::NAN).into(),
        },
        J::String(s) => s.clone().into(),
        J::Array(items) => Dynamic::from_array(items.iter().map(from_json).collect::<Result<Vec<_>>>()?),
        J::Object(map) => match map.get("tensor").and_then(J::as_str) {
            Some(path) => {
                let tensors = tch::Tensor::read_safetensors(path).map_err(|e| anyhow::anyhow!("cannot read the tensor a Rust cell handed over ({path}): {e}"))?;
                let Some((_, t)) = tensors.into_iter().next() else { bail!("the tensor file {path} is empty") };
                Dynamic::from(TensorHandle(t))
            }
            None => bail!("a Rust cell handed over an object; only numbers, bools, strings, arrays and tunebook::Tensor cross to Rhai"),
        },
    })
}

/// Rust evaluated in every new context before the first cell: the
/// `tunebook` module of the bridge. `{BRIDGE}` is replaced by the folder.
pub const PRELUDE: &str = r##"
#[allow(dead_code)]
pub mod tunebook {
    //! The bridge to Tunebook's Rhai scope.
    pub const BRIDGE: &str = "{BRIDGE}";

    /// A tensor of f32 values in row-major order.
    #[derive(Debug, Clone, PartialEq)]
    pub struct Tensor { pub shape: Vec<i64>, pub data: Vec<f32> }

    /// Values that can go to Rhai, as JSON.
    pub trait ToRhai { fn to_rhai(&self) -> String; }
    macro_rules! int_to_rhai { ($($t:ty),*) => { $(impl ToRhai for $t { fn to_rhai(&self) -> String { (*self as i64).to_string() } })* } }
    int_to_rhai!(i8, i16, i32, i64, u8, u16, u32, usize, isize);
    impl ToRhai for f64 { fn to_rhai(&self) -> String { if self.is_finite() { format!("{:?}", self) } else { "null".into() } } }
    impl ToRhai for f32 { fn to_rhai(&self) -> String { (*self as f64).to_rhai() } }
    impl ToRhai for bool { fn to_rhai(&self) -> String { self.to_string() } }
    impl ToRhai for str {
        fn to_rhai(&self) -> String {
            let mut out = String::from("\"");
            for c in self.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str("\\\\"),
                    c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                    c => out.push(c),
                }
            }
            out.push('"');
            out
        }
    }
    impl ToRhai for String { fn to_rhai(&self) -> String { self.as_str().to_rhai() } }
    impl<T: ToRhai> ToRhai for [T] { fn to_rhai(&self) -> String { format!("[{}]", self.iter().map(|x| x.to_rhai()).collect::<Vec<_>>().join(",")) } }
    impl<T: ToRhai> ToRhai for Vec<T> { fn to_rhai(&self) -> String { self.as_slice().to_rhai() } }
    impl<T: ToRhai + ?Sized> ToRhai for &T { fn to_rhai(&self) -> String { (**self).to_rhai() } }
    impl ToRhai for Tensor {
        fn to_rhai(&self) -> String {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = format!("{}/from-rust-{}-{}.safetensors", BRIDGE, std::process::id(), n);
            let mut header = format!("{{\"t\":{{\"dtype\":\"F32\",\"shape\":{:?},\"data_offsets\":[0,{}]}}}}", self.shape, self.data.len() * 4);
            while header.len() % 8 != 0 { header.push(' '); }
            let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
            bytes.extend_from_slice(header.as_bytes());
            for x in &self.data { bytes.extend_from_slice(&x.to_le_bytes()); }
            std::fs::write(&path, bytes).expect("tunebook: cannot write the tensor for Rhai");
            format!("{{\"tensor\":{}}}", path.as_str().to_rhai())
        }
    }

    /// Reports a panic to Tunebook, which fails the cell with its message.
    pub fn report_panics() {
        std::panic::set_hook(Box::new(|info| {
            let message = info.payload().downcast_ref::<&str>().map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            println!("EVCXR_BEGIN_CONTENT application/vnd.tunebook.panic");
            println!("{}", message);
            println!("EVCXR_END_CONTENT");
        }));
    }

    /// Binds `name` in the Rhai scope to `value` when the cell ends.
    pub fn set<T: ToRhai + ?Sized>(name: &str, value: &T) {
        assert!(!name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_'), "tunebook::set: {:?} is not a variable name", name);
        println!("EVCXR_BEGIN_CONTENT application/vnd.tunebook.set.{}", name);
        println!("{}", value.to_rhai());
        println!("EVCXR_END_CONTENT");
    }

    fn read(name: &str, want: &str) -> String {
        let path = format!("{}/{}.value", BRIDGE, name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("tunebook: there is no Rhai variable {:?} (a cell reads the variables it names in quotes, as get_f64(\"x\"))", name));
        let (kind, payload) = text.split_once('\n').unwrap_or((text.as_str(), ""));
        if kind == "unsupported" {
            panic!("tunebook: {} is a {}; only numbers, bools, strings, arrays of numbers and tensors cross to Rust", name, payload);
        }
        let ok = kind == want || (want == "f64" && kind == "i64") || (want == "f64s" && kind == "f64s");
        assert!(ok, "tunebook: {} is a {} in Rhai, not a {}", name, kind, want);
        payload.to_string()
    }

    pub fn get_i64(name: &str) -> i64 { read(name, "i64").trim().parse().unwrap() }
    pub fn get_f64(name: &str) -> f64 { read(name, "f64").trim().parse().unwrap() }
    pub fn get_bool(name: &str) -> bool { read(name, "bool").trim() == "true" }
    pub fn get_string(name: &str) -> String { read(name, "string") }
    pub fn get_vec_f64(name: &str) -> Vec<f64> { read(name, "f64s").lines().map(|l| l.trim().parse().unwrap()).collect() }
    pub fn get_tensor(name: &str) -> Tensor {
        let path = read(name, "tensor");
        let bytes = std::fs::read(path.trim()).expect("tunebook: the tensor file is gone");
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
        let list = |key: &str| -> Vec<i64> {
            let start = header.find(key).unwrap() + key.len();
            let rest = &header[start..];
            let body = &rest[rest.find('[').unwrap() + 1..rest.find(']').unwrap()];
            body.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect()
        };
        assert!(header.contains("\"F32\""), "tunebook: the tensor is not f32");
        let (shape, offsets) = (list("\"shape\""), list("\"data_offsets\""));
        let data = bytes[8 + n + offsets[0] as usize..8 + n + offsets[1] as usize].chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
        Tensor { shape, data }
    }
}
"##;

#[cfg(feature = "rust-cells")]
pub use imp::{CellResult, RustCells, Sink};

#[cfg(feature = "rust-cells")]
mod imp {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::script::Session;

    /// Where a Rust cell's text output goes: `(stream name, text)`.
    pub type Sink = Arc<dyn Fn(&str, &str) + Send + Sync>;

    /// What a Rust cell ended with.
    pub enum CellResult {
        /// It ran; its displays by media type (evcxr's `EVCXR_BEGIN_CONTENT`).
        Ok(Vec<(String, String)>),
        /// It did not compile, panicked, or was interrupted.
        Error {
            /// `RustCompileError`, `RustError` or `Interrupted`.
            ename: String,
            /// One line.
            evalue: String,
            /// The compiler's messages, with cell lines.
            traceback: Vec<String>,
        },
    }

    /// A persistent evcxr context, started on the first Rust cell.
    pub struct RustCells {
        runtime: PathBuf,
        context: Option<evcxr::CommandContext>,
        bridge: tempfile::TempDir,
        sink: Sink,
        stop: Arc<AtomicBool>,
    }

    impl RustCells {
        /// Rust cells whose evcxr runtime is `runtime` (a binary that calls
        /// `evcxr::runtime_hook()` first: the tunebook binary), whose output
        /// goes to `sink`, and which `stop` interrupts.
        pub fn new(runtime: PathBuf, sink: Sink, stop: Arc<AtomicBool>) -> Result<Self> {
            let bridge = tempfile::Builder::new().prefix("tunebook-rust-cells-").tempdir()?;
            Ok(Self { runtime, context: None, bridge, sink, stop })
        }

        /// Starts evcxr and compiles the bridge: the slow first use.
        fn start(&mut self) -> Result<&mut evcxr::CommandContext> {
            if self.context.is_none() {
                (self.sink)("stderr", "Starting Rust cells (evcxr): the first cell compiles the Rust runtime and the bridge, which takes tens of seconds; later cells take a second or two.\n");
                let started = Instant::now();
                let (eval_context, outputs) = evcxr::EvalContext::with_subprocess_command(std::process::Command::new(&self.runtime)).map_err(|e| anyhow::anyhow!("cannot start evcxr: {e}"))?;
                // evcxr's command layer: `:dep`, `:vars` and completion, as in evcxr_jupyter.
                let mut context = evcxr::CommandContext::with_eval_context(eval_context);
                for (name, channel) in [("stdout", outputs.stdout), ("stderr", outputs.stderr)] {
                    let sink = self.sink.clone();
                    std::thread::spawn(move || {
                        for line in channel.iter() {
                            sink(name, &format!("{line}\n"));
                        }
                    });
                }
                let prelude = PRELUDE.replace("{BRIDGE}", &self.bridge.path().display().to_string());
                context.execute(&prelude).map_err(|e| anyhow::anyhow!("the Rust bridge did not compile: {e}"))?;
                context.execute("tunebook::report_panics();").map_err(|e| anyhow::anyhow!("the Rust bridge did not start: {e}"))?;
                (self.sink)("stderr", &format!("Rust cells ready ({:.1} s).\n", started.elapsed().as_secs_f64()));
                self.context = Some(context);
            }
            Ok(self.context.as_mut().expect("started above"))
        }

        /// Completions at char offset `cursor` of a Rust cell's `body`, as
        /// (candidates, start, end) in chars; none before the first Rust
        /// cell has started evcxr (that takes seconds, too long to wait for).
        pub fn complete(&mut self, body: &str, cursor: usize) -> Option<(Vec<String>, usize, usize)> {
            let context = self.context.as_mut()?;
            let byte = |chars: usize| body.char_indices().nth(chars).map_or(body.len(), |(b, _)| b);
            let chars = |bytes: usize| body[..bytes.min(body.len())].chars().count();
            let found = context.completions(body, byte(cursor)).ok()?;
            let mut matches: Vec<String> = found.completions.into_iter().map(|c| c.code).collect();
            matches.dedup();
            Some((matches, chars(found.start_offset), chars(found.end_offset)))
        }

        /// Runs a Rust cell's `body` (without its `%%rust` line), handing
        /// the Rhai variables it names in quotes over first, and binding in
        /// `session` the values it sets.
        pub fn run(&mut self, body: &str, session: &mut Session) -> CellResult {
            for name in quoted_names(body) {
                if let (Some(value), Some(ty)) = (session.variable(&name), session.variable_type(&name)) {
                    if let Err(e) = export_value(self.bridge.path(), &name, &value, &ty) {
                        return CellResult::Error { ename: "RustError".into(), evalue: format!("{e:#}"), traceback: vec![format!("RustError: {e:#}")] };
                    }
                }
            }
            let stop = self.stop.clone();
            let context = match self.start() {
                Ok(c) => c,
                Err(e) => return CellResult::Error { ename: "RustError".into(), evalue: format!("{e:#}"), traceback: vec![format!("RustError: {e:#}")] },
            };
            // An interrupt ends the evcxr process (there is no other way to
            // stop running native code); its variables go with it.
            let child = context.process_handle();
            let done = Arc::new(AtomicBool::new(false));
            let watcher = {
                let done = done.clone();
                std::thread::spawn(move || {
                    while !done.load(Ordering::Relaxed) {
                        if stop.load(Ordering::Relaxed) {
                            if let Ok(mut c) = child.lock() {
                                let _ = c.kill();
                            }
                            return true;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    false
                })
            };
            let result = context.execute(body);
            done.store(true, Ordering::Relaxed);
            let interrupted = watcher.join().unwrap_or(false);
            match result {
                Ok(outputs) => {
                    let mut displays = Vec::new();
                    let mut bad = Vec::new();
                    for (media, content) in outputs.content_by_mime_type {
                        match media.strip_prefix(SET_MEDIA_PREFIX) {
                            Some(name) => match import_value(&content) {
                                Ok(v) => session.set_variable(name, v),
                                Err(e) => bad.push(format!("{name}: {e:#}")),
                            },
                            None => displays.push((media, content)),
                        }
                    }
                    if let Some(i) = displays.iter().position(|(media, _)| media == PANIC_MEDIA) {
                        let message = displays.remove(i).1;
                        let evalue = format!("the Rust cell panicked: {}", message.trim());
                        return CellResult::Error { ename: "RustPanic".into(), evalue: evalue.clone(), traceback: vec![format!("RustPanic: {}", message.trim()), "  (variables the cell defined are dropped; earlier ones are kept)".into()] };
                    }
                    if !bad.is_empty() {
                        return CellResult::Error { ename: "RustError".into(), evalue: bad.join("; "), traceback: bad };
                    }
                    CellResult::Ok(displays)
                }
                Err(e) => {
                    if matches!(e, evcxr::Error::SubprocessTerminated(_)) {
                        self.context = None;
                    }
                    if interrupted {
                        let msg = "interrupted: the Rust process was stopped and its variables are gone; the next %%rust cell starts a new one".to_string();
                        return CellResult::Error { ename: "Interrupted".into(), evalue: msg.clone(), traceback: vec![format!("Interrupted: {msg}")] };
                    }
                    error_result(e, body)
                }
            }
        }
    }

    /// evcxr's error as a Jupyter error: compiler messages point at cell
    /// lines (the `%%rust` line is line 1).
    fn error_result(e: evcxr::Error, body: &str) -> CellResult {
        match e {
            evcxr::Error::CompilationErrors(errors) => {
                let mut traceback = Vec::new();
                let mut first = String::new();
                for err in errors.iter().filter(|e| e.is_from_user_code()) {
                    let code = err.code().map(|c| format!("[{c}]")).unwrap_or_default();
                    let head = format!("{}{code}: {}", err.level(), err.message());
                    if first.is_empty() {
                        first = head.clone();
                    }
                    traceback.push(head);
                    if let Some(span) = err.primary_spanned_message().and_then(|m| m.span.as_ref().map(|s| (s.clone(), m.label.clone()))) {
                        let (span, label) = span;
                        let line = span.start_line + 1;
                        traceback.push(format!("  cell line {line}, column {}:", span.start_column));
                        if let Some(src) = body.lines().nth(span.start_line.saturating_sub(1)) {
                            traceback.push(format!("    {src}"));
                            traceback.push(format!("    {}^ {label}", " ".repeat(span.start_column.saturating_sub(1))));
                        }
                    }
                    for help in err.help() {
                        traceback.push(format!("  help: {help}"));
                    }
                }
                if first.is_empty() {
                    first = errors.first().map(|e| e.message()).unwrap_or_else(|| "the cell did not compile".into());
                    traceback.push(first.clone());
                }
                CellResult::Error { ename: "RustCompileError".into(), evalue: first, traceback }
            }
            other => {
                let text = other.to_string();
                CellResult::Error { ename: "RustError".into(), evalue: text.lines().next().unwrap_or("").to_string(), traceback: text.lines().map(str::to_string).collect() }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rust_cell_is_recognised_by_its_first_line() {
        assert_eq!(rust_cell_body("%%rust\nlet x = 1;\n"), Some("let x = 1;\n"));
        assert_eq!(rust_cell_body("\n  %%rust  \nfn f() {}"), Some("fn f() {}"));
        assert_eq!(rust_cell_body("let x = \"%%rust\";"), None);
        assert_eq!(rust_cell_body("%%rusty\n1"), None);
    }

    #[test]
    fn names_in_quotes_are_the_variables_handed_over() {
        assert_eq!(quoted_names(r#"let a = tunebook::get_f64("lr") * tunebook::get_f64("scale"); println!("{}", "not a name!");"#), vec!["lr", "scale"]);
    }

    #[test]
    fn values_cross_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        export_value(dir.path(), "x", &Dynamic::from(3_i64), "i64").unwrap();
        export_value(dir.path(), "xs", &Dynamic::from_array(vec![1_i64.into(), 2.5_f64.into()]), "array").unwrap();
        export_value(dir.path(), "m", &Dynamic::from(rhai::Map::new()), "map").unwrap();
        let read = |n: &str| std::fs::read_to_string(dir.path().join(format!("{n}.value"))).unwrap();
        assert_eq!(read("x"), "i64\n3");
        assert_eq!(read("xs"), "f64s\n1.0\n2.5");
        assert_eq!(read("m"), "unsupported\nmap");
        let v = import_value(r#"[1, 2.5, "a", true, null]"#).unwrap();
        let items = v.cast::<Array>();
        assert_eq!(items[0].as_int().unwrap(), 1);
        assert_eq!(items[1].as_float().unwrap(), 2.5);
        assert_eq!(items[2].clone().into_string().unwrap(), "a");
        assert!(import_value(r#"{"a": 1}"#).unwrap_err().to_string().contains("only numbers"));
    }
}
