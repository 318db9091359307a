//! libtorch start-up: where libtorch and the cache live, loading CUDA when it
//! is installed, device choice, thread count and seeds.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::{bail, Result};
use tch::Device;

mod cuda;
pub mod checkpoint;
pub mod memory;
pub mod fused_adam;
pub mod precision;

pub use cuda::{cuda_device_names, cuda_status, CudaStatus};

/// The folder holding libtorch's shared libraries, as linked at build time.
/// `TUNEBOOK_LIBTORCH_LIB` at run time overrides it.
pub fn libtorch_lib_dir() -> Option<PathBuf> {
    std::env::var_os("TUNEBOOK_LIBTORCH_LIB")
        .map(PathBuf::from)
        .or_else(|| {
            let built = env!("TUNEBOOK_LIBTORCH_LIB");
            (!built.is_empty()).then(|| PathBuf::from(built))
        })
}

/// The libtorch version, read from the `torch/version.py` that the bootstrap
/// installs beside the libraries (e.g. `2.11.0+cu130`).
pub fn libtorch_version() -> Option<String> {
    let text = std::fs::read_to_string(libtorch_lib_dir()?.parent()?.join("version.py")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches(|c| c == '\'' || c == '"').to_string())
}

/// The cache of models and datasets that `scripts/bootstrap` fills:
/// `TUNEBOOK_CACHE` if set, else `.cache` in the source tree.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("TUNEBOOK_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("TUNEBOOK_DEFAULT_CACHE")))
}

/// The device a user asked for on the command line or in a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    /// CUDA when available, else CPU.
    Auto,
    /// Always the CPU.
    Cpu,
    /// CUDA device 0; an error when CUDA is not available.
    Cuda,
}

impl std::str::FromStr for DeviceRequest {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(Self::Auto),
            "cpu" => Ok(Self::Cpu),
            "cuda" | "gpu" => Ok(Self::Cuda),
            other => bail!("unknown device '{other}'; valid devices: auto, cpu, cuda"),
        }
    }
}

impl std::fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Cpu => "cpu",
            Self::Cuda => "cuda",
        })
    }
}

/// Loads CUDA (once) and turns a request into a concrete device.
pub fn resolve_device(request: DeviceRequest) -> Result<Device> {
    let status = init_cuda();
    match request {
        DeviceRequest::Cpu => Ok(Device::Cpu),
        DeviceRequest::Auto => Ok(if status.available() { Device::Cuda(0) } else { Device::Cpu }),
        DeviceRequest::Cuda if status.available() => Ok(Device::Cuda(0)),
        DeviceRequest::Cuda => bail!(
            "CUDA was asked for but is not available: {}. Use --device cpu, or install the CUDA \
             libtorch with `scripts/bootstrap --cuda` on a machine with an NVIDIA driver",
            status.reason()
        ),
    }
}

/// A device as PyTorch writes it: `cpu`, `cuda:0`, `mps`.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// Loads libtorch's CUDA library once, if installed; later calls return the
/// first answer.
pub fn init_cuda() -> &'static CudaStatus {
    static STATUS: OnceLock<CudaStatus> = OnceLock::new();
    STATUS.get_or_init(cuda::load)
}

/// Seeds libtorch (CPU and CUDA) so that weight init and dropout repeat.
pub fn seed_everything(seed: u64) {
    tch::manual_seed(seed as i64);
    if init_cuda().available() {
        tch::Cuda::manual_seed_all(seed);
    }
}

/// The number of threads libtorch uses for intra-op parallelism.
pub fn threads() -> i32 {
    tch::get_num_threads()
}

/// Sets libtorch's intra-op thread count (`TUNEBOOK_THREADS` is read by the CLI).
pub fn set_threads(n: i32) {
    tch::set_num_threads(n.max(1));
}
