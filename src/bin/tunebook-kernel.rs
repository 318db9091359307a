//! `tunebook-kernel`, the program Jupyter starts for a Tunebook notebook.
//!
//! It serves the kernel's sockets and starts `tunebook kernel-worker` from
//! its own folder to run the cells, so that it answers `kernel_info` at once
//! while the worker loads libtorch (a quarter of a second of start-up). It
//! must not link libtorch itself: it compiles the kernel's modules and
//! `kernel_program` (which use nothing of the ML core) from their files instead of linking the
//! `tunebook` library, where one call into a shared object file would pull
//! libtorch in.

#[path = "../files.rs"]
#[allow(dead_code)]
mod files;
#[path = "../kernel/mod.rs"]
#[allow(dead_code, unused_imports)]
mod kernel;
#[path = "../kernel_program.rs"]
mod kernel_program;
#[path = "../panic.rs"]
#[allow(dead_code)]
mod panic;
#[path = "../suggest.rs"]
#[allow(dead_code)]
mod suggest;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(name = "tunebook-kernel", version, about = "The Tunebook Jupyter kernel (Jupyter starts this; `tunebook kernel install` registers it)")]
struct Args {
    /// The connection file Jupyter writes.
    #[arg(long, short = 'f')]
    connection_file: PathBuf,
    /// Where models go: auto, cpu or cuda.
    #[arg(long, default_value = "auto", value_parser = ["auto", "cpu", "cuda", "gpu"])]
    device: String,
    /// Seed for weight initialization, dropout, shuffles and splits.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Serve a connection file with an empty key (unsigned messages:
    /// anyone who can reach the ports can run code). Refused otherwise.
    #[arg(long)]
    allow_unsigned: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let tunebook = match std::env::current_exe() {
        Ok(exe) => exe.with_file_name("tunebook"),
        Err(e) => {
            eprintln!("error: cannot find this program's path, to start tunebook beside it: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !tunebook.is_file() {
        eprintln!("error: tunebook-kernel runs the cells with the tunebook program in its own folder, and there is none at {}; install the two together", tunebook.display());
        return ExitCode::FAILURE;
    }
    match kernel_program::serve_tunebook(&args.connection_file, args.allow_unsigned, tunebook, &args.device, args.seed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
