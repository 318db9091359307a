//! Loading `libtorch_cuda.so` at start-up when it is installed.
//!
//! The linker drops libtorch_cuda from the binary (`--as-needed`), and forcing
//! it in would break CPU-only installs, so we dlopen it instead: one binary
//! serves both installs.

use std::ffi::{c_char, c_int, CStr};

use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};

/// What happened when we looked for CUDA.
#[derive(Debug, Clone)]
pub enum CudaStatus {
    /// libtorch_cuda loaded and libtorch sees devices.
    Available {
        /// How many devices libtorch sees.
        devices: i64,
    },
    /// libtorch_cuda is not installed (the CPU flavour of libtorch).
    NotInstalled,
    /// libtorch_cuda is installed but could not be loaded, or sees no device.
    Unusable(String),
}

impl CudaStatus {
    /// Whether CUDA tensors can be created.
    pub fn available(&self) -> bool {
        matches!(self, CudaStatus::Available { .. })
    }

    /// Why CUDA is unavailable, in words (empty when it is available).
    pub fn reason(&self) -> String {
        match self {
            CudaStatus::Available { .. } => String::new(),
            CudaStatus::NotInstalled => "the installed libtorch is the CPU flavour".into(),
            CudaStatus::Unusable(why) => why.clone(),
        }
    }
}

pub(super) fn load() -> CudaStatus {
    let Some(dir) = super::libtorch_lib_dir() else {
        return CudaStatus::NotInstalled;
    };
    let path = dir.join("libtorch_cuda.so");
    if !path.exists() {
        return CudaStatus::NotInstalled;
    }
    // SAFETY: loading libtorch's own CUDA library runs its static
    // registration code, which is what makes CUDA visible to libtorch.
    match unsafe { Library::open(Some(&path), RTLD_NOW | RTLD_GLOBAL) } {
        Ok(lib) => {
            // Kept loaded for the life of the process.
            std::mem::forget(lib);
            if tch::Cuda::is_available() {
                CudaStatus::Available { devices: tch::Cuda::device_count() }
            } else {
                CudaStatus::Unusable("libtorch_cuda loaded but no CUDA device or driver was found".into())
            }
        }
        Err(e) => CudaStatus::Unusable(format!("{} could not be loaded: {e}", path.display())),
    }
}

/// The status of CUDA, loading it first if needed.
pub fn cuda_status() -> &'static CudaStatus {
    super::init_cuda()
}

/// The names of the visible CUDA devices, asked of the CUDA runtime that
/// libtorch loaded. Empty when CUDA is unavailable.
pub fn cuda_device_names() -> Vec<String> {
    let CudaStatus::Available { devices } = cuda_status() else {
        return Vec::new();
    };
    // libcudart is already loaded by libtorch_cuda; this only finds it.
    let Ok(cudart) = (unsafe { Library::open(Some("libcudart.so.13"), RTLD_NOW) }) else {
        return vec!["(unknown device)".into(); *devices as usize];
    };
    type GetProps = unsafe extern "C" fn(*mut u8, c_int) -> c_int;
    let Ok(get_props) = (unsafe { cudart.get::<GetProps>(b"cudaGetDeviceProperties_v2\0") }) else {
        return vec!["(unknown device)".into(); *devices as usize];
    };
    (0..*devices as c_int)
        .map(|i| {
            // cudaDeviceProp starts with `char name[256]`; the rest of the
            // struct is far smaller than this buffer.
            let mut buf = vec![0u8; 16 * 1024];
            if unsafe { get_props(buf.as_mut_ptr(), i) } != 0 {
                return "(unknown device)".into();
            }
            unsafe { CStr::from_ptr(buf.as_ptr() as *const c_char) }.to_string_lossy().into_owned()
        })
        .collect()
}
