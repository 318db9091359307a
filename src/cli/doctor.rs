//! `tunebook doctor`: what is installed, what is missing, and the command
//! that fixes each problem.

use std::path::Path;

use tunebook::runtime::{self, CudaStatus};

/// The bootstrap's manifest, compiled in so that the doctor checks exactly
/// what the bootstrap installs.
const MANIFEST: &str = include_str!("../../scripts/manifest.json");

/// Prints the report; returns how many problems were found.
pub fn run() -> usize {
    let mut problems = 0;
    println!("tunebook {}", env!("CARGO_PKG_VERSION"));
    match (runtime::libtorch_lib_dir(), runtime::libtorch_version()) {
        (Some(dir), Some(v)) => println!("libtorch {v} ({})", dir.display()),
        (dir, _) => {
            problems += 1;
            let at = dir.map(|d| d.display().to_string()).unwrap_or_else(|| "an unknown folder".into());
            println!("libtorch: version unknown ({at} has no version.py)\n  fix: scripts/bootstrap --only libtorch");
        }
    }
    match runtime::cuda_status() {
        CudaStatus::Available { devices } => {
            println!("CUDA: available, {devices} device(s)");
            for (i, name) in runtime::cuda_device_names().iter().enumerate() {
                println!("  cuda:{i} {name}");
            }
        }
        CudaStatus::NotInstalled => {
            println!("CUDA: not available (the CPU libtorch is installed)");
            if which_nvidia_smi() {
                problems += 1;
                println!("  this machine has an NVIDIA driver; fix: scripts/bootstrap --cuda && cargo build --release");
            }
        }
        CudaStatus::Unusable(why) => {
            problems += 1;
            println!("CUDA: not usable: {why}\n  fix: check `nvidia-smi`, then scripts/bootstrap --cuda");
        }
    }
    println!("threads: {}", runtime::threads());
    let cache = runtime::cache_dir();
    println!("cache: {}", cache.display());
    let manifest: serde_json::Value = serde_json::from_str(MANIFEST).expect("the manifest compiled in is valid JSON");
    if let Some(artifacts) = manifest["artifacts"].as_object() {
        for (name, art) in artifacts {
            if art["group"] == "libtorch" {
                continue;
            }
            let dest = cache.join(art["dest"].as_str().unwrap_or_default());
            let ok = Path::new(&dest).join(".tunebook-complete").exists();
            let what = art["what"].as_str().unwrap_or_default();
            if ok {
                println!("  {name:16} ok       {what}");
            } else {
                problems += 1;
                println!("  {name:16} MISSING  {what}\n    fix: scripts/bootstrap --only {name}");
            }
        }
    }
    if problems == 0 {
        println!("no problems found");
    } else {
        println!("{problems} problem(s) found");
    }
    problems
}

fn which_nvidia_smi() -> bool {
    std::process::Command::new("nvidia-smi").arg("-L").output().map(|o| o.status.success()).unwrap_or(false)
}
