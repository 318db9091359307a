//! `tunebook run --nproc N`: starts N ranks of the same script on this
//! machine, as `torchrun --nproc-per-node N` does, and watches them. When a
//! rank fails, the others are stopped and the first failure decides the
//! exit code, so a crash never leaves the rest waiting.

use std::ffi::OsString;
use std::process::{Child, Command, ExitCode, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A rank's exit code after Ctrl-C (as `tunebook run`'s).
const EXIT_INTERRUPTED: i32 = 130;

/// How long stopped ranks get to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(10);

/// Runs `args` (a `tunebook run` command line without `--nproc`) as ranks
/// 0..nproc. `threads` is each rank's libtorch thread count.
pub fn run(nproc: usize, args: Vec<OsString>, threads: i32) -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot find the tunebook executable to start the ranks: {e}");
            return ExitCode::FAILURE;
        }
    };
    let master_addr = std::env::var("MASTER_ADDR").unwrap_or_else(|_| "127.0.0.1".into());
    // Without MASTER_PORT, the store's socket is opened here on a port the
    // system picks and handed to rank 0 still open, so that nothing else can
    // take the port in between (a store on loopback only).
    let mut store_listener = None;
    let port = match std::env::var("MASTER_PORT").ok().and_then(|p| p.parse::<u16>().ok()) {
        Some(p) => p,
        None => {
            let picked = if tunebook::distributed::is_loopback(&master_addr) {
                std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| Ok((l.local_addr()?.port(), Some(l))))
            } else {
                free_port().map(|p| (p, None))
            };
            match picked {
                Ok((p, listener)) => {
                    store_listener = listener;
                    p
                }
                Err(e) => {
                    eprintln!("error: cannot find a free local port for the rendezvous: {e} (set MASTER_PORT)");
                    return ExitCode::FAILURE;
                }
            }
        }
    };
    // The ranks get Ctrl-C through us, once each: in the terminal's group
    // they would get it twice (and quit at the second).
    let interrupts = Arc::new(AtomicUsize::new(0));
    let counter = interrupts.clone();
    let _ = ctrlc::set_handler(move || {
        counter.fetch_add(1, Ordering::SeqCst);
    });
    let mut ranks: Vec<Child> = Vec::new();
    for rank in 0..nproc {
        let mut cmd = Command::new(&exe);
        cmd.args(&args).arg("--threads").arg(threads.to_string());
        cmd.env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", nproc.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", &master_addr)
            .env("MASTER_PORT", port.to_string());
        if let (0, Some(listener)) = (rank, &store_listener) {
            tunebook::distributed::hand_store_listener(&mut cmd, listener);
        }
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        // SAFETY: prctl is async-signal-safe. A launcher that is killed
        // takes its ranks with it instead of leaving them orphaned.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        match cmd.spawn() {
            Ok(child) => ranks.push(child),
            Err(e) => {
                eprintln!("error: cannot start rank {rank}: {e}");
                stop_all(&mut ranks);
                return ExitCode::FAILURE;
            }
        }
    }
    // Rank 0 holds the store socket now.
    drop(store_listener);
    watch(ranks, &interrupts)
}

/// A port that was free a moment ago (the kernel picks it), for a store
/// that must listen beyond loopback.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Waits for every rank; forwards interrupts; on the first failure stops
/// the rest and returns that failure's code.
fn watch(mut ranks: Vec<Child>, interrupts: &AtomicUsize) -> ExitCode {
    let mut done: Vec<Option<ExitStatus>> = vec![None; ranks.len()];
    let mut forwarded = 0;
    loop {
        let pressed = interrupts.load(Ordering::SeqCst);
        while forwarded < pressed {
            forwarded += 1;
            for (child, status) in ranks.iter().zip(&done) {
                if status.is_none() {
                    signal(child, libc::SIGINT);
                }
            }
        }
        let mut failed: Vec<(usize, ExitStatus)> = Vec::new();
        for (rank, child) in ranks.iter_mut().enumerate() {
            if done[rank].is_some() {
                continue;
            }
            match child.try_wait() {
                Ok(Some(status)) => {
                    done[rank] = Some(status);
                    // After Ctrl-C the ranks stop together, at the same step.
                    let interrupted = forwarded > 0 && status.code() == Some(EXIT_INTERRUPTED);
                    if !status.success() && !interrupted {
                        failed.push((rank, status));
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    eprintln!("error: lost track of rank {rank}: {e}");
                    stop_all(&mut ranks);
                    return ExitCode::FAILURE;
                }
            }
        }
        // The others notice a dead rank only at their next collective, so
        // the first failure seen is the cause; within one poll, a rank killed
        // by a signal is the likelier cause than one that lost it.
        if let Some(&(rank, status)) = failed.iter().find(|(_, s)| std::os::unix::process::ExitStatusExt::signal(s).is_some()).or(failed.first()) {
            let running: Vec<usize> = (0..done.len()).filter(|&r| done[r].is_none()).collect();
            if running.is_empty() {
                eprintln!("error: rank {rank} {}", describe(status));
            } else {
                eprintln!("error: rank {rank} {}; stopping rank{} {}", describe(status), if running.len() > 1 { "s" } else { "" }, join(&running));
                stop_all(&mut ranks);
            }
            return exit_code_of(status);
        }
        if done.iter().all(Option::is_some) {
            let interrupted = done.iter().any(|s| s.is_some_and(|s| s.code() == Some(EXIT_INTERRUPTED)));
            return if interrupted { ExitCode::from(EXIT_INTERRUPTED as u8) } else { ExitCode::SUCCESS };
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// "exited with code 1" or "was killed by signal 9 (SIGKILL)".
fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(sig)) => format!("was killed by signal {sig}{}", match sig {
            libc::SIGKILL => " (SIGKILL; out of memory?)",
            libc::SIGSEGV => " (SIGSEGV)",
            libc::SIGTERM => " (SIGTERM)",
            libc::SIGINT => " (SIGINT)",
            _ => "",
        }),
        _ => "ended".to_string(),
    }
}

/// The rank's own exit code, or 128 + its signal, as a shell reports it.
fn exit_code_of(status: ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().or_else(|| status.signal().map(|s| 128 + s)).unwrap_or(1);
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn join(ranks: &[usize]) -> String {
    ranks.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}

fn signal(child: &Child, sig: libc::c_int) {
    // SAFETY: kill(2) on our own child's pid; a stale pid fails harmlessly.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) };
}

/// SIGTERM to every rank still running, SIGKILL after the grace period.
fn stop_all(ranks: &mut [Child]) {
    for child in ranks.iter_mut() {
        if matches!(child.try_wait(), Ok(None)) {
            signal(child, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + GRACE;
    for child in ranks.iter_mut() {
        while matches!(child.try_wait(), Ok(None)) {
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
