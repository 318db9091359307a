//! Tunebook's Jupyter kernel as a program: what it tells frontends (Rhai,
//! its banner) and how it starts the worker that runs its cells
//! (`tunebook kernel-worker`). It uses only the kernel and the shared small
//! pieces, so that `tunebook-kernel` compiles it without libtorch.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::kernel::{LanguageInfo, RemoteInterpreter, WorkerCommand};

/// The `tunebook` subcommand that runs a kernel's cells.
pub const WORKER_SUBCOMMAND: &str = "kernel-worker";

/// What the kernel tells frontends about Tunebook's language.
pub fn language_info() -> LanguageInfo {
    LanguageInfo {
        name: "rhai".into(),
        version: "1.27".into(),
        file_extension: ".rhai".into(),
        mimetype: "text/x-rhai".into(),
        // Rhai has neither; Rust's are the closest.
        codemirror_mode: "rust".into(),
        pygments_lexer: "rust".into(),
        implementation: ("tunebook".into(), env!("CARGO_PKG_VERSION").into()),
        banner: format!("Tunebook {} — fine-tuning in Rhai over libtorch. Try: print(load_model(\"minilm\", #{{ labels: 2 }}))", env!("CARGO_PKG_VERSION")),
    }
}

/// Serves Tunebook's kernel: this process answers the sockets at once, and
/// `tunebook kernel-worker` (the program at `tunebook`) runs the cells on
/// `device` (auto, cpu or cuda), so that loading libtorch does not delay
/// `kernel_info_reply`.
pub fn serve_tunebook(connection_file: &Path, allow_unsigned: bool, tunebook: PathBuf, device: &str, seed: u64) -> Result<()> {
    let args = vec![WORKER_SUBCOMMAND.into(), "--device".into(), device.into(), "--seed".into(), seed.to_string()];
    // No comm target is served yet: a comm the frontend opens is closed again.
    let worker = WorkerCommand { program: tunebook, args, comm_targets: Vec::new() };
    crate::kernel::serve(connection_file, allow_unsigned, |frontend, interrupt| Box::new(RemoteInterpreter::new(worker, language_info(), frontend, interrupt)))
}
