//! The layers of `src/` point one way (see `src/lib.rs`): each module uses
//! only modules below it, and the kernel uses nothing of the ML core or of
//! the scripting layer. Read from the source text, so that a new `use
//! crate::...` that points up fails here with the file and line.

mod common;

use std::path::Path;

/// Each top-level module of the library and its height: a module may use
/// modules of its own height or lower. The shared small pieces are at 0.
const HEIGHTS: &[(&str, u8)] = &[
    ("files", 0),
    ("numbers", 0),
    ("suggest", 0),
    ("task", 0),
    ("panic", 0),
    ("runtime", 0),
    ("distributed", 0),
    ("data", 1),
    ("model", 2),
    ("train", 3),
    ("inference", 4),
    ("plot", 5),
    ("render", 6),
    ("script", 7),
    // Tunebook's kernel as a program: beside the kernel, usable from any layer.
    ("kernel_program", 0),
];

/// The kernel serves the protocol: it may use only the shared pieces.
const KERNEL_MAY_USE: &[&str] = &["files", "panic", "suggest"];
/// `kernel_program` (Tunebook's kernel as a program, compiled without
/// libtorch into `tunebook-kernel`) may use the kernel and what it uses.
const KERNEL_PROGRAM_MAY_USE: &[&str] = &["kernel", "files", "panic", "suggest"];
/// The only modules that may use the kernel (to display, to implement its
/// `Interpreter`, and to name what Tunebook's kernel runs).
const KERNEL_USERS: &[&str] = &["render", "script", "kernel_program"];

fn height(module: &str) -> Option<u8> {
    HEIGHTS.iter().find(|(m, _)| *m == module).map(|(_, h)| *h)
}

/// The top-level modules a line of code names through `crate::`.
fn crate_paths(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `use crate::{a::X, b}`: the first name of each part.
            let inner = group.split('}').next().unwrap_or("");
            found.extend(inner.split(',').filter_map(|p| p.trim().split("::").next()).filter(|n| !n.is_empty()).map(str::to_string));
        } else {
            found.push(rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect());
        }
    }
    found
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every use of another top-level module that breaks the layering, as
/// `file:line: what`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut found = Vec::new();
    for file in files {
        let rel = file.strip_prefix(src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_string();
        if matches!(module.as_str(), "main" | "cli" | "lib") {
            continue; // the binary sits on top and uses the library as `tunebook::`
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("//") {
                continue;
            }
            for used in crate_paths(line) {
                if used == module || used == "self" || used == "super" {
                    continue;
                }
                let why = if module == "kernel_program" {
                    (!KERNEL_PROGRAM_MAY_USE.contains(&used.as_str())).then(|| format!("`kernel_program` uses `{used}`; it may use only {}", KERNEL_PROGRAM_MAY_USE.join(", ")))
                } else if module == "kernel" {
                    (!KERNEL_MAY_USE.contains(&used.as_str())).then(|| format!("the kernel uses `{used}`; it may use only {}", KERNEL_MAY_USE.join(", ")))
                } else if used == "kernel" {
                    (!KERNEL_USERS.contains(&module.as_str())).then(|| format!("`{module}` uses the kernel; only {} may", KERNEL_USERS.join(" and ")))
                } else {
                    match (height(&module), height(&used)) {
                        (Some(h), Some(u)) if u > h => Some(format!("`{module}` (height {h}) uses `{used}` (height {u}), which sits above it")),
                        (None, _) => Some(format!("`{module}` is not in this test's table of layers; add it")),
                        (_, None) => Some(format!("`{used}` is not in this test's table of layers; add it")),
                        _ => None,
                    }
                };
                if let Some(why) = why {
                    found.push(format!("src/{}:{}: {why}", rel.display(), i + 1));
                }
            }
        }
    }
    found
}

#[test]
fn the_layers_point_one_way() {
    let found = violations(&common::repo().join("src"));
    assert!(found.is_empty(), "imports that point up:\n{}", found.join("\n"));
}

#[test]
fn the_check_finds_an_import_that_points_up() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("data")).unwrap();
    std::fs::create_dir_all(src.join("kernel")).unwrap();
    std::fs::write(src.join("data/loader.rs"), "use crate::data::Targets;\nuse crate::{model::TextModel, task::Task};\n// crate::train in a comment is fine\n").unwrap();
    std::fs::write(src.join("kernel/server.rs"), "fn f() { crate::script::run(); crate::panic::panic_text(); }\n").unwrap();
    std::fs::write(src.join("plot.rs"), "use crate::kernel::Frontend;\n").unwrap();
    let found = violations(src);
    assert_eq!(found.len(), 3, "{found:#?}");
    assert!(found[0].starts_with("src/data/loader.rs:2: `data` (height 1) uses `model` (height 2)"), "{}", found[0]);
    assert!(found[1].starts_with("src/kernel/server.rs:1: the kernel uses `script`"), "{}", found[1]);
    assert!(found[2].starts_with("src/plot.rs:1: `plot` uses the kernel"), "{}", found[2]);
}
