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
    /// Serve the Jupyter kernel (Jupyter starts this), or install its spec.
    Kernel {
        #[command(subcommand)]
        action: Option<KernelAction>,
        /// The connection file Jupyter writes.
        #[arg(long, short = 'f')]
        connection_file: Option<PathBuf>,
        /// Where models go: auto, cpu or cuda.
        #[arg(long, default_value = "auto")]
        device: DeviceRequest,
        /// Seed for weight initialization, dropout, shuffles and splits.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum KernelAction {
    /// Install the kernel spec so that Jupyter lists "Tunebook (Rhai)".
    Install {
        /// For this user (the default).
        #[arg(long, conflicts_with_all = ["sys_prefix", "prefix"])]
        user: bool,
        /// Into the active Python environment (`python3`'s sys.prefix).
        #[arg(long, conflicts_with = "prefix")]
        sys_prefix: bool,
        /// Into PREFIX/share/jupyter.
        #[arg(long)]
        prefix: Option<PathBuf>,
    },
}

/// The terminal as a script host: prints to stdout, progress bars on
/// stderr, charts as PNG files under `out/plots/`.
struct TerminalHost {
    script_stem: String,
    charts: std::cell::Cell<usize>,
}

impl Host for TerminalHost {
    fn print(&self, text: &str) {
        println!("{text}");
    }
    fn train_observer(&self) -> Box<dyn TrainObserver> {
        Box::new(cli::progress::TerminalProgress::new())
    }
    fn show_chart(&self, chart: &tunebook::plot::Chart) {
        let n = self.charts.get() + 1;
        self.charts.set(n);
        let path = PathBuf::from("out/plots").join(format!("{}-{n}.png", self.script_stem));
        let written = std::fs::create_dir_all("out/plots").and_then(|_| std::fs::write(&path, &chart.png));
        match written {
            Ok(()) => println!("chart saved to {}", path.display()),
            Err(e) => eprintln!("warning: could not write the chart {}: {e}", path.display()),
        }
    }
    fn input(&self, prompt: &str) -> Option<String> {
        use std::io::Write;
        print!("{prompt}");
        std::io::stdout().flush().ok()?;
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_string()),
        }
    }
}

/// The device asked for, or exit code 2 with the reason.
fn device_or_usage_error(request: DeviceRequest) -> Result<tch::Device, ExitCode> {
    runtime::resolve_device(request).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })
}

/// Exit code 0, or 1 with the error printed.
fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn kernel(action: Option<KernelAction>, connection_file: Option<PathBuf>, device: DeviceRequest, seed: u64) -> ExitCode {
    use tunebook::kernel::spec::{self, InstallTarget};
    match action {
        Some(KernelAction::Install { user: _, sys_prefix, prefix }) => {
            let target = match (sys_prefix, prefix) {
                (true, _) => InstallTarget::SysPrefix,
                (_, Some(p)) => InstallTarget::Prefix(p),
                _ => InstallTarget::User,
            };
            let exe = std::env::current_exe().and_then(std::fs::canonicalize);
            report(exe.map_err(anyhow::Error::from).and_then(|exe| spec::install(&target, &exe)).map(|dir| {
                println!("installed the {} kernel spec in {}", spec::KERNEL_NAME, dir.display());
            }))
        }
        None => {
            let Some(file) = connection_file else {
                eprintln!("error: give --connection-file FILE (Jupyter does this), or use `tunebook kernel install`");
                return ExitCode::from(2);
            };
            let device = match device_or_usage_error(device) {
                Ok(d) => d,
                Err(code) => return code,
            };
            report(tunebook::kernel::serve(&file, |frontend, interrupt| {
                let settings = SessionSettings { device, seed, cache: runtime::cache_dir(), stop: interrupt };
                Box::new(tunebook::script::notebook::NotebookInterpreter::new(frontend, settings))
            }))
        }
    }
}

fn run_script(file: PathBuf, device: DeviceRequest, seed: u64, threads: Option<i32>) -> ExitCode {
    if !file.is_file() {
        eprintln!("error: no script at {} (give the path of a .rhai file)", file.display());
        return ExitCode::from(2);
    }
    let device = match device_or_usage_error(device) {
        Ok(d) => d,
        Err(code) => return code,
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
    let script_stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "script".into());
    let host = TerminalHost { script_stem, charts: std::cell::Cell::new(0) };
    let mut session = Session::new(Rc::new(host), settings);
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
        Command::Kernel { action, connection_file, device, seed } => kernel(action, connection_file, device, seed),
        Command::Doctor => {
            if cli::doctor::run() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
