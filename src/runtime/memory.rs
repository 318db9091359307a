//! Memory: the peak of this process and of the CUDA device, for run
//! reports and benchmarks, and allocation failures caught where a step can
//! be retried or explained (CUDA's cache is emptied after one).

use std::os::raw::{c_char, c_int, c_longlong};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use tch::Device;

extern "C" {
    fn tb_cuda_empty_cache() -> c_int;
    fn tb_cuda_peak_allocated(index: c_int) -> c_longlong;
    fn tb_cuda_reset_peak(index: c_int);
    fn tb_memory_last_error() -> *const c_char;
    fn tb_pin_memory(tensor: *const std::ffi::c_void, pinned: *mut *mut std::ffi::c_void) -> c_int;
}

/// `tensor` copied into page-locked host memory, from which copies to a
/// CUDA device can run without blocking (needs a CUDA libtorch).
pub fn pinned(tensor: &tch::Tensor) -> anyhow::Result<tch::Tensor> {
    let mut out: *mut std::ffi::c_void = std::ptr::null_mut();
    // SAFETY: a live tensor handle; on success the shim hands over a new one.
    if unsafe { tb_pin_memory(tensor.as_ptr().cast(), &mut out) } == 0 || out.is_null() {
        anyhow::bail!("cannot pin the batch in page-locked memory: {}", shim_error());
    }
    // SAFETY: allocated as tch's own handles are, owned from here.
    Ok(unsafe { tch::Tensor::from_ptr(out.cast()) })
}

/// An allocation libtorch could not make (CPU or CUDA), with what it said.
#[derive(Debug, Clone)]
pub struct OutOfMemory {
    /// libtorch's message, without its C++ context.
    pub message: String,
}

impl OutOfMemory {
    /// The failure libtorch reported as `message`, once CUDA's cache has
    /// been emptied (what went wrong emptying it is added to the message).
    fn after_releasing_cache(message: String) -> Self {
        match release_cached_device_memory() {
            Ok(()) => Self { message },
            Err(why) => Self { message: format!("{message} (emptying CUDA's memory cache afterwards failed too: {why})") },
        }
    }

    /// How much the failed allocation asked for, as libtorch said it
    /// (`you tried to allocate N bytes` on CPU, `Tried to allocate 2.00 GiB`
    /// on CUDA), e.g. `0.40 GB`.
    pub fn requested(&self) -> Option<String> {
        let lower = self.message.to_lowercase();
        let at = lower.find("tried to allocate ")? + "tried to allocate ".len();
        let rest = &self.message[at..];
        let number: String = rest.chars().take_while(|c| c.is_ascii_digit() || *c == '.').collect();
        let unit = rest[number.len()..].trim_start().split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("");
        match unit {
            "bytes" => number.parse::<f64>().ok().map(|b| format!("{:.2} GB", b / 1e9)),
            "" => None,
            _ => Some(format!("{number} {unit}")),
        }
    }
}

/// Whether libtorch's error text says an allocation failed.
pub fn is_out_of_memory(text: &str) -> bool {
    ["can't allocate memory", "not enough memory", "CUDA out of memory", "OutOfMemoryError", "out of memory"].iter().any(|p| text.contains(p))
}

/// libtorch's message without the C++ frames and enforce prefix.
fn trimmed(text: &str) -> String {
    let text = text.find("Torch(\"").map_or(text, |i| &text[i + 7..]);
    let first = text.split("\\n").next().unwrap_or(text).lines().next().unwrap_or(text);
    let first = first.find("] ").filter(|_| first.starts_with("[enforce")).map_or(first, |i| &first[i + 2..]);
    let first = first.strip_prefix("err == 0. ").unwrap_or(first);
    first.trim_end_matches('"').trim().to_string()
}

/// Runs `f`. An allocation failure inside it, whether libtorch's error came
/// back as an `Err` or as a panic (tch unwraps in its operators), is
/// returned as `Err(OutOfMemory)`; the tensors `f` made are freed by then.
/// Other errors come back as they were, and other panics keep unwinding.
pub fn catch_out_of_memory<T>(f: impl FnOnce() -> anyhow::Result<T>) -> Result<anyhow::Result<T>, OutOfMemory> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Err(e)) if is_out_of_memory(&format!("{e:#}")) => Err(OutOfMemory::after_releasing_cache(trimmed(&format!("{e:#}")))),
        Ok(result) => Ok(result),
        Err(payload) => {
            let text = crate::panic::panic_text(&*payload);
            if is_out_of_memory(&text) {
                Err(OutOfMemory::after_releasing_cache(trimmed(&text)))
            } else {
                resume_unwind(payload)
            }
        }
    }
}

/// Hands the blocks CUDA's caching allocator keeps unused back to the
/// driver (`torch.cuda.empty_cache()`), so that after an allocation failure
/// the next try, and other processes, can have them. Nothing without CUDA.
/// An error carries what libtorch said.
pub fn release_cached_device_memory() -> Result<(), String> {
    if !tch::Cuda::is_available() {
        return Ok(());
    }
    // SAFETY: the shim takes no arguments and catches libtorch's exceptions.
    if unsafe { tb_cuda_empty_cache() } < 0 {
        return Err(shim_error());
    }
    Ok(())
}

/// The peak of memory allocated on `device` since `reset_device_peak`
/// (`torch.cuda.max_memory_allocated`), or `None` for the CPU.
pub fn device_peak_bytes(device: Device) -> Option<u64> {
    let Device::Cuda(index) = device else { return None };
    // SAFETY: plain integers; the shim catches libtorch's exceptions.
    let peak = unsafe { tb_cuda_peak_allocated(index as c_int) };
    u64::try_from(peak).ok()
}

/// Starts `device_peak_bytes` afresh (nothing for the CPU).
pub fn reset_device_peak(device: Device) {
    if let Device::Cuda(index) = device {
        // SAFETY: a plain integer; the shim catches libtorch's exceptions.
        unsafe { tb_cuda_reset_peak(index as c_int) };
    }
}

/// What libtorch said when the shim's last call on this thread failed.
fn shim_error() -> String {
    // SAFETY: the shim's thread-local message, valid until its next call on this thread.
    unsafe { std::ffi::CStr::from_ptr(tb_memory_last_error()) }.to_string_lossy().into_owned()
}

/// Resets the peak resident set size, so that the next `peak_rss_bytes`
/// covers only what follows (Linux; elsewhere a no-op).
pub fn reset_peak_rss() {
    // Writing 5 to clear_refs resets VmHWM (Linux 4.0 and later).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak resident set size since start or the last reset (Linux's
/// VmHWM), or `None` where it cannot be read.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_allocation_failure_is_caught_and_described_and_other_panics_go_on() {
        let cpu = r#"called `Result::unwrap()` on an `Err` value: Torch("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: you tried to allocate 402653184 bytes. Error code 12 (Cannot allocate memory)\nException raised from ...")"#;
        let oom = catch_out_of_memory::<()>(|| panic!("{cpu}")).unwrap_err();
        assert_eq!(oom.message, "DefaultCPUAllocator: can't allocate memory: you tried to allocate 402653184 bytes. Error code 12 (Cannot allocate memory)");
        assert_eq!(oom.requested().as_deref(), Some("0.40 GB"));
        let cuda = OutOfMemory { message: "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.10 GiB".into() };
        assert_eq!(cuda.requested().as_deref(), Some("2.00 GiB"));
        let err = catch_out_of_memory::<()>(|| anyhow::bail!("CUDA out of memory. Tried to allocate 20.00 MiB")).unwrap_err();
        assert_eq!(err.requested().as_deref(), Some("20.00 MiB"));
        assert_eq!(catch_out_of_memory::<()>(|| anyhow::bail!("shape mismatch")).unwrap().unwrap_err().to_string(), "shape mismatch");
        let other = std::panic::catch_unwind(|| catch_out_of_memory::<()>(|| panic!("index out of range")));
        assert!(other.is_err(), "a panic that is not an allocation failure keeps unwinding");
    }

    #[test]
    fn a_real_failed_allocation_comes_back_as_out_of_memory() {
        // More bytes than any machine has: libtorch refuses at once, touching nothing.
        let oom = catch_out_of_memory(|| Ok(tch::Tensor::zeros([1 << 50], (tch::Kind::Float, tch::Device::Cpu)))).unwrap_err();
        assert!(oom.requested().is_some_and(|r| r.ends_with("GB")), "{oom:?}");
    }
    #[test]
    fn peak_rss_is_readable_and_grows_with_an_allocation() {
        super::reset_peak_rss();
        let before = super::peak_rss_bytes().expect("Linux has VmHWM");
        // Other tests of this binary allocate and free at the same time (a
        // few MiB seen): a large block and a 32 MiB margin keep that out.
        let block = vec![1u8; 256 << 20];
        std::hint::black_box(&block);
        let after = super::peak_rss_bytes().unwrap();
        assert!(after >= before + (224 << 20), "peak {before} -> {after} after touching 256 MiB");
    }
}
