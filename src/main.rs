//! The `tunebook` command: run scripts, check the installation.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tunebook::runtime::{self, DeviceRequest};
use tunebook::script::{self, Host, Session, SessionSettings};
use tunebook::train::TrainObserver;

#[derive(Parser)]
#[command(name = "tunebook", version, about = "A fine-tuning workbench: Rhai scripts over libtorch")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a Rhai script.
    Run {
        /// The script to run.
        file: PathBuf,
        /// Where models go: auto (CUDA when available), cpu or cuda.
        #[arg(long, default_value = "auto")]
        device: DeviceRequest,
        /// Seed for weight initialization, dropout, shuffles and splits.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// libtorch threads (default: libtorch's choice, one per core).
        #[arg(long)]
        threads: Option<i32>,
    },
    /// Check libtorch, CUDA and the cache of models and datasets.
    Doctor,
}

/// The terminal as a script host: prints to stdout, progress bars on stderr.
struct TerminalHost;

impl Host for TerminalHost {
    fn print(&self, text: &str) {
        println!("{text}");
    }
    fn train_observer(&self) -> Box<dyn TrainObserver> {
        Box::new(cli::progress::TerminalProgress::new())
    }
}

fn run_script(file: PathBuf, device: DeviceRequest, seed: u64, threads: Option<i32>) -> ExitCode {
    if !file.is_file() {
        eprintln!("error: no script at {} (give the path of a .rhai file)", file.display());
        return ExitCode::from(2);
    }
    let device = match runtime::resolve_device(device) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(n) = threads {
        runtime::set_threads(n);
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handler_stop = stop.clone();
    // First Ctrl-C: stop training at the next batch; second: quit at once.
    let _ = ctrlc::set_handler(move || {
        if handler_stop.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping at the next batch (Ctrl-C again to quit now)");
    });
    let settings = SessionSettings { device, seed, cache: runtime::cache_dir(), stop };
    let mut session = Session::new(Rc::new(TerminalHost), settings);
    match session.run_file(&file) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if e.interrupted { 130 } else { 1 })
        }
    }
}

fn main() -> ExitCode {
    script::install_panic_hook();
    let cli = Cli::parse();
    match cli.command {
        Command::Run { file, device, seed, threads } => run_script(file, device, seed, threads),
        Command::Doctor => {
            if cli::doctor::run() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
