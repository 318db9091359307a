//! The `tunebook` command: run scripts, check the installation.

mod cli;

use tunebook::runtime::precision::Precision;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use tunebook::runtime::{self, DeviceRequest};
use tunebook::script::{self, Limits, Session, SessionSettings};

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
        /// libtorch threads (default: libtorch's choice, one per core;
        /// with --nproc, the cores shared out between the ranks).
        #[arg(long)]
        threads: Option<i32>,
        /// Data-parallel training on this machine: start N processes that
        /// train together over torch.distributed (Gloo), as
        /// `torchrun --nproc-per-node N` does. The script needs no change.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        nproc: Option<u16>,
        /// Override a variable the script declares at its top level
        /// (`let EPOCHS = 3;`): --set EPOCHS=1. Repeatable.
        #[arg(long = "set", value_name = "NAME=VALUE", value_parser = script::overrides::parse)]
        overrides: Vec<(String, String)>,
        /// Raise or lower a script resource limit: call_depth, expr_depth,
        /// string_size, array_size, map_size, operations (none by default)
        /// (--limit call_depth=128). Repeatable.
        #[arg(long = "limit", value_name = "NAME=N")]
        limits: Vec<String>,
        /// The precision fit trains in unless the script gives one: fp32,
        /// bf16 or fp16 (autocast on the forward passes; weights stay fp32;
        /// fp16 scales its loss).
        #[arg(long, default_value = "fp32", value_parser = parse_precision)]
        precision: Precision,
    },
    /// An interactive prompt with history, multi-line input and one scope
    /// across lines, as a notebook has.
    Repl {
        /// Where models go: auto, cpu or cuda.
        #[arg(long, default_value = "auto")]
        device: DeviceRequest,
        /// Seed for weight initialization, dropout, shuffles and splits.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// The script API: every function with a one-line doc, or one in full.
    Api {
        /// A function or method name, for its full reference and an example.
        name: Option<String>,
        /// Print the whole reference as Markdown (what docs/api.md holds).
        #[arg(long, conflicts_with = "name")]
        markdown: bool,
    },
    /// Check libtorch, CUDA and the cache of models and datasets.
    Doctor,
    /// Runs a kernel's cells for the kernel process that started it (over
    /// stdin and stdout); not for use by hand.
    #[command(name = "kernel-worker", hide = true)]
    KernelWorker {
        /// Where models go: auto, cpu or cuda.
        #[arg(long, default_value = "auto")]
        device: DeviceRequest,
        /// Seed for weight initialization, dropout, shuffles and splits.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
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
        /// Serve a connection file with an empty key (unsigned messages:
        /// anyone who can reach the ports can run code). Refused otherwise.
        #[arg(long)]
        allow_unsigned: bool,
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

fn kernel(action: Option<KernelAction>, connection_file: Option<PathBuf>, device: DeviceRequest, seed: u64, allow_unsigned: bool) -> ExitCode {
    use tunebook::kernel::spec::{self, InstallTarget};
    match action {
        Some(KernelAction::Install { user: _, sys_prefix, prefix }) => {
            let target = match (sys_prefix, prefix) {
                (true, _) => InstallTarget::SysPrefix,
                (_, Some(p)) => InstallTarget::Prefix(p),
                _ => InstallTarget::User,
            };
            let exe = std::env::current_exe().and_then(std::fs::canonicalize).map(|exe| exe.with_file_name(spec::KERNEL_PROGRAM));
            report(exe.map_err(anyhow::Error::from).and_then(|exe| spec::install(&target, &exe)).map(|dir| {
                println!("installed the {} kernel spec in {}", spec::KERNEL_NAME, dir.display());
            }))
        }
        None => {
            let Some(file) = connection_file else {
                eprintln!("error: give --connection-file FILE (Jupyter does this), or use `tunebook kernel install`");
                return ExitCode::from(2);
            };
            // This process serves the sockets; a `tunebook kernel-worker` runs the cells.
            let exe = match std::env::current_exe() {
                Ok(exe) => exe,
                Err(e) => {
                    eprintln!("error: cannot find this program's path to start the kernel's worker: {e}");
                    return ExitCode::FAILURE;
                }
            };
            report(tunebook::kernel_program::serve_tunebook(&file, allow_unsigned, exe, &device.to_string(), seed))
        }
    }
}

/// Exit codes of `tunebook run`.
const EXIT_USAGE: u8 = 2;
const EXIT_INTERRUPTED: u8 = 130;

/// Sets `stop` on Ctrl-C (training stops at the next batch); a second
/// Ctrl-C quits at once when `second_quits`.
fn install_interrupt(stop: &tunebook::train::StopFlag, second_quits: bool) {
    let handler_stop = stop.clone();
    let _ = ctrlc::set_handler(move || {
        if handler_stop.swap(true, Ordering::SeqCst) && second_quits {
            use std::io::Write;
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().flush();
            // _exit, not exit: the main thread may be inside libtorch, whose
            // static destructors must not run under it.
            // SAFETY: _exit ends the process at once; nothing runs after it.
            unsafe { libc::_exit(EXIT_INTERRUPTED.into()) };
        }
        // Every rank of a distributed run gets the Ctrl-C; rank 0 speaks for them.
        if tunebook::distributed::is_main_process() {
            eprintln!("\nstopping at the next batch{}", if second_quits { " (Ctrl-C again to quit now)" } else { "" });
        }
    });
}

/// `--precision`, read as `fit`'s `precision:` is.
fn parse_precision(name: &str) -> Result<Precision, String> {
    Precision::parse(name).map_err(|e| e.to_string())
}

fn run_script(file: PathBuf, device: DeviceRequest, seed: u64, threads: Option<i32>, overrides: Vec<(String, String)>, limit_args: Vec<String>, precision: Precision) -> ExitCode {
    if !file.is_file() {
        eprintln!("error: no script at {} (give the path of a .rhai file)", file.display());
        return ExitCode::from(EXIT_USAGE);
    }
    let mut limits = Limits::default();
    for l in &limit_args {
        if let Err(e) = limits.set(l) {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    let device = match device_or_usage_error(device) {
        Ok(d) => d,
        Err(code) => return code,
    };
    if let Some(n) = threads {
        runtime::set_threads(n);
    }
    // Launched as one rank of several (torchrun, srun, --nproc): join the others.
    let device = match tunebook::distributed::init_from_env() {
        Ok(Some(group)) => match device {
            // One GPU per process on a machine, picked by LOCAL_RANK, as with torchrun.
            tch::Device::Cuda(_) => {
                let gpus = tch::Cuda::device_count().max(0) as usize;
                if group.local_rank() >= gpus {
                    eprintln!("{}error: local rank {} needs GPU {} but this machine has {gpus}; start at most {gpus} processes per machine, or use --device cpu", rank_prefix(), group.local_rank(), group.local_rank());
                    return ExitCode::FAILURE;
                }
                tch::Device::Cuda(group.local_rank())
            }
            d => d,
        },
        Ok(None) => device,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    install_interrupt(&stop, true);
    let settings = SessionSettings { device, seed, cache: runtime::cache_dir(), stop, limits, precision };
    let script_stem = file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "script".into());
    let host = Rc::new(cli::host::TerminalHost::new(&script_stem));
    let mut session = Session::new(host.clone(), settings);
    let outcome = session.run_file_with(&file, &overrides);
    host.write_pending_chart();
    match outcome {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.interrupted || tunebook::distributed::is_main_process() {
                eprintln!("{}error: {e}", rank_prefix());
            }
            // An override the script does not declare is a usage error.
            let usage = e.line.is_none() && e.message.starts_with("--set ");
            ExitCode::from(if e.interrupted { EXIT_INTERRUPTED } else if usage { EXIT_USAGE } else { 1 })
        }
    }
}

/// This command line as each rank runs it: without `--nproc` and
/// `--threads` (the launcher sets the threads per rank).
fn rank_args() -> Vec<std::ffi::OsString> {
    let mut out = Vec::new();
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        let text = a.to_string_lossy();
        if text == "--nproc" || text == "--threads" {
            args.next();
        } else if !(text.starts_with("--nproc=") || text.starts_with("--threads=")) {
            out.push(a);
        }
    }
    out
}

/// "[rank N] " in a distributed run's ranks other than 0, so that a
/// message says which process it came from.
fn rank_prefix() -> String {
    match tunebook::distributed::current() {
        Some(g) if g.rank() > 0 => format!("[rank {}] ", g.rank()),
        _ => String::new(),
    }
}

fn repl(device: DeviceRequest, seed: u64) -> ExitCode {
    let device = match device_or_usage_error(device) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    install_interrupt(&stop, false);
    let settings = SessionSettings { device, seed, cache: runtime::cache_dir(), stop, limits: Limits::default(), precision: Default::default() };
    report(cli::repl::run(Session::new(Rc::new(cli::host::TerminalHost::new("repl")), settings)))
}

fn api(name: Option<String>, markdown: bool) -> ExitCode {
    use tunebook::script::reference;
    match (name, markdown) {
        (_, true) => print!("{}", reference::markdown()),
        (None, false) => print!("{}", reference::listing()),
        (Some(n), false) => match reference::help(&n) {
            Some(text) => println!("{text}"),
            None => {
                let names: Vec<String> = reference::API.iter().map(|e| e.name.to_string()).collect();
                eprintln!("error: no function named '{n}'; closest: {}", tunebook::suggest::closest(&n, &names, 5).join(", "));
                return ExitCode::from(EXIT_USAGE);
            }
        },
    }
    ExitCode::SUCCESS
}

/// Exit code of a command that panicked (as Rust's own).
const EXIT_INTERNAL_ERROR: u8 = 101;

fn main() -> ExitCode {
    // With Rust cells, this binary is also evcxr's runtime process: the hook
    // runs the runtime and never returns when it was started as one.
    #[cfg(feature = "rust-cells")]
    evcxr::runtime_hook();
    script::install_panic_hook();
    let cli = Cli::parse();
    // Panics inside script functions are script errors already; one anywhere
    // else still ends with a message that says what to do, not a bare trace.
    std::panic::catch_unwind(move || dispatch(cli)).unwrap_or_else(|payload| {
        eprintln!("error: internal error: {} ({})", tunebook::panic::panic_text(payload.as_ref()), tunebook::panic::BUG_REPORT_HINT);
        ExitCode::from(EXIT_INTERNAL_ERROR)
    })
}

fn dispatch(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Run { file, nproc: Some(n), threads, .. } if n > 1 => {
            if !file.is_file() {
                eprintln!("error: no script at {} (give the path of a .rhai file)", file.display());
                return ExitCode::from(EXIT_USAGE);
            }
            let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
            let per_rank = threads.unwrap_or_else(|| (cores / usize::from(n)).max(1) as i32);
            cli::launch::run(n.into(), rank_args(), per_rank)
        }
        Command::Run { file, device, seed, threads, overrides, limits, precision, .. } => run_script(file, device, seed, threads, overrides, limits, precision),
        Command::Repl { device, seed } => repl(device, seed),
        Command::Api { name, markdown } => api(name, markdown),
        Command::Kernel { action, connection_file, device, seed, allow_unsigned } => kernel(action, connection_file, device, seed, allow_unsigned),
        Command::KernelWorker { device, seed } => report(script::notebook::serve_worker(device, seed)),
        Command::Doctor => {
            if cli::doctor::run() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
