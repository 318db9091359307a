//! Mixed precision: libtorch's autocast, per device type, reached through
//! the C++ shim (`amp_shim.cpp`). Inside an `Autocast`, matrix
//! products and convolutions run in the lower precision while the weights
//! stay fp32; the caller casts what the loss reads back to fp32 (CPU
//! autocast does not, as CUDA's does, keep losses and softmax in fp32).
//! fp16 also needs its loss scaled (`crate::train::loss_scale`), with the
//! fused unscale the shim exposes here.

use std::ffi::c_void;
use std::os::raw::c_int;

use anyhow::{bail, Result};
use tch::{Device, Kind, Tensor};

extern "C" {
    fn tb_autocast_is_enabled(cuda: c_int) -> c_int;
    fn tb_autocast_set_enabled(cuda: c_int, enabled: c_int);
    fn tb_autocast_get_dtype(cuda: c_int) -> c_int;
    fn tb_autocast_set_dtype(cuda: c_int, dtype: c_int);
    fn tb_autocast_increment_nesting() -> c_int;
    fn tb_autocast_decrement_nesting() -> c_int;
    fn tb_autocast_clear_cache();
    // Each pointer is tch's tensor handle, a libtorch `at::Tensor*`.
    fn tb_amp_unscale(grads: *const *mut c_void, count: c_int, found_inf: *mut c_void, inv_scale: *mut c_void) -> c_int;
    fn tb_amp_last_error() -> *const std::os::raw::c_char;
}

/// libtorch's `_amp_foreach_non_finite_check_and_unscale_` over all of
/// `grads` at once: each defined one is multiplied by `inv_scale` in place,
/// and `found_inf` (one fp32 element) becomes 1 if any held an inf or NaN.
pub fn unscale_in_place(grads: &mut [Tensor], found_inf: &mut Tensor, inv_scale: &mut Tensor) -> Result<()> {
    let defined: Vec<*mut c_void> = grads.iter_mut().filter(|g| g.defined()).map(|g| g.as_mut_ptr().cast()).collect();
    // SAFETY: every pointer is a live tensor borrowed mutably for the call.
    let ok = unsafe { tb_amp_unscale(defined.as_ptr(), defined.len() as c_int, found_inf.as_mut_ptr().cast(), inv_scale.as_mut_ptr().cast()) };
    if ok == 0 {
        // SAFETY: the shim's thread-local message, valid until its next call on this thread.
        let why = unsafe { std::ffi::CStr::from_ptr(tb_amp_last_error()) }.to_string_lossy().into_owned();
        bail!("unscaling the gradients failed: {why}");
    }
    Ok(())
}

/// The precision the forward pass computes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precision {
    /// Everything in fp32.
    #[default]
    Fp32,
    /// Autocast to bfloat16: fp32's range with 8 bits of mantissa, so no
    /// loss scaling is needed.
    Bf16,
    /// Autocast to float16: 10 bits of mantissa but a range that ends at
    /// 65504, so training scales its loss (`crate::train::loss_scale`).
    Fp16,
}

impl Precision {
    /// The names `precision:` and `--precision` take.
    pub const NAMES: &'static [&'static str] = &["fp32", "bf16", "fp16"];

    /// The precision named `name`.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "fp32" | "float32" => Ok(Self::Fp32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "fp16" | "float16" => Ok(Self::Fp16),
            other => bail!("unknown precision '{other}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    /// Its name, as `parse` reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Bf16 => "bf16",
            Self::Fp16 => "fp16",
        }
    }

    /// Whether training in it must scale the loss (fp16's small range).
    pub fn scales_loss(self) -> bool {
        self == Self::Fp16
    }

    /// The kind autocast computes in, `None` for fp32.
    fn autocast_kind(self) -> Option<Kind> {
        match self {
            Self::Fp32 => None,
            Self::Bf16 => Some(Kind::BFloat16),
            Self::Fp16 => Some(Kind::Half),
        }
    }

    /// Autocast on for `device` in this precision until the guard drops
    /// (`None` for fp32). One guard over many passes keeps autocast's cache
    /// of cast weights between them.
    pub fn enter(self, device: Device) -> Option<Autocast> {
        self.autocast_kind().map(|kind| Autocast::enter(device, kind))
    }

    /// Runs `f` with autocast on for `device` in this precision (plain for fp32).
    pub fn run<T>(self, device: Device, f: impl FnOnce() -> T) -> T {
        match self.autocast_kind() {
            None => f(),
            Some(kind) => {
                let _on = Autocast::enter(device, kind);
                f()
            }
        }
    }
}

/// Runs `f` with autocast off for `device`'s type (where it computes
/// gradients by hand, which fp16 would flush to zero before any loss scale
/// reaches them), then puts back what was set.
pub fn without_autocast<T>(device: Device, f: impl FnOnce() -> T) -> T {
    let cuda = c_int::from(device != Device::Cpu);
    // SAFETY: plain calls into libtorch's thread-local autocast state.
    let was = unsafe { tb_autocast_is_enabled(cuda) };
    if was == 0 {
        return f();
    }
    struct Restore(c_int);
    impl Drop for Restore {
        fn drop(&mut self) {
            // SAFETY: as above, on the same thread.
            unsafe { tb_autocast_set_enabled(self.0, 1) };
        }
    }
    // SAFETY: as above.
    unsafe { tb_autocast_set_enabled(cuda, 0) };
    let _restore = Restore(cuda);
    f()
}

/// Why `precision` on this machine's CPU would be slow, if it would:
/// without bf16 or fp16 instructions (AVX-512 BF16/FP16, AMX) libtorch
/// converts and computes in fp32 anyway (bf16 measured 2.7x slower than
/// fp32 on such a Xeon). `None` for fp32, where the processor has them, or
/// where its flags cannot be read.
pub fn cpu_precision_note(precision: Precision) -> Option<String> {
    let wanted: &[&str] = match precision {
        Precision::Fp32 => return None,
        Precision::Bf16 => &["avx512_bf16", "amx_bf16"],
        Precision::Fp16 => &["avx512_fp16", "amx_fp16"],
    };
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags"))?;
    let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
    let name = precision.name();
    (!wanted.iter().any(|f| has(f))).then(|| format!("this processor has no {name} instructions ({}), so {name} autocast on it is slower than fp32 (bf16 measured 2.7x slower on such a Xeon); it only pays on a GPU or a processor that has them", wanted.join(" or ")))
}

/// Autocast on for one device type while it lives; dropping it restores
/// what was set before (so guards nest), and the outermost one empties
/// autocast's cache of cast weights, which would otherwise outlive a step.
#[derive(Debug)]
pub struct Autocast {
    cuda: c_int,
    was_enabled: c_int,
    was_dtype: c_int,
}

impl Autocast {
    /// Turns autocast on for `device`'s type, computing in `kind`.
    pub fn enter(device: Device, kind: Kind) -> Self {
        let cuda = c_int::from(device != Device::Cpu);
        // SAFETY: plain calls into libtorch's thread-local autocast state.
        unsafe {
            let guard = Self { cuda, was_enabled: tb_autocast_is_enabled(cuda), was_dtype: tb_autocast_get_dtype(cuda) };
            tb_autocast_set_enabled(cuda, 1);
            tb_autocast_set_dtype(cuda, scalar_type(kind));
            tb_autocast_increment_nesting();
            guard
        }
    }

    /// Whether autocast is on for `device`'s type on this thread.
    pub fn is_on(device: Device) -> bool {
        // SAFETY: reads libtorch's thread-local autocast state.
        unsafe { tb_autocast_is_enabled(c_int::from(device != Device::Cpu)) != 0 }
    }
}

/// c10's `ScalarType` number of a floating kind autocast computes in (tch
/// keeps its own mapping private).
fn scalar_type(kind: Kind) -> c_int {
    match kind {
        Kind::Half => 5,
        Kind::BFloat16 => 15,
        _ => 6, // Float
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: restores the state `enter` saved, on the same thread.
        unsafe {
            if tb_autocast_decrement_nesting() == 0 {
                tb_autocast_clear_cache();
            }
            tb_autocast_set_enabled(self.cuda, self.was_enabled);
            tb_autocast_set_dtype(self.cuda, self.was_dtype);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn products_run_in_bf16_inside_and_fp32_after_and_guards_nest() {
        let (a, b) = (Tensor::randn([4, 8], (Kind::Float, Device::Cpu)), Tensor::randn([8, 3], (Kind::Float, Device::Cpu)));
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        Precision::Bf16.run(Device::Cpu, || {
            assert!(Autocast::is_on(Device::Cpu));
            assert_eq!(a.matmul(&b).kind(), Kind::BFloat16);
            Precision::Bf16.run(Device::Cpu, || assert_eq!(a.matmul(&b).kind(), Kind::BFloat16));
            // The inner guard's end leaves the outer one on.
            assert!(Autocast::is_on(Device::Cpu));
            assert_eq!(a.matmul(&b).kind(), Kind::BFloat16);
        });
        assert!(!Autocast::is_on(Device::Cpu));
        assert_eq!(a.matmul(&b).kind(), Kind::Float);
        assert_eq!(Precision::Fp32.run(Device::Cpu, || a.matmul(&b).kind()), Kind::Float);
    }

    #[test]
    fn names_parse_and_a_bad_one_lists_the_valid_ones() {
        for p in [Precision::Fp32, Precision::Bf16, Precision::Fp16] {
            assert_eq!(Precision::parse(p.name()).unwrap(), p);
        }
        assert_eq!(Precision::parse("float16").unwrap(), Precision::Fp16);
        assert!(Precision::parse("fp8").unwrap_err().to_string().contains("valid: fp32, bf16, fp16"));
    }

    #[test]
    fn fp16_autocast_computes_products_in_half_except_where_it_is_turned_off() {
        let (a, b) = (Tensor::randn([4, 8], (Kind::Float, Device::Cpu)), Tensor::randn([8, 3], (Kind::Float, Device::Cpu)));
        assert_eq!(Precision::Fp16.run(Device::Cpu, || a.matmul(&b).kind()), Kind::Half);
        Precision::Fp16.run(Device::Cpu, || {
            assert_eq!(without_autocast(Device::Cpu, || a.matmul(&b).kind()), Kind::Float);
            assert_eq!(a.matmul(&b).kind(), Kind::Half, "back on after");
        });
        assert!(Precision::Fp16.scales_loss() && !Precision::Bf16.scales_loss());
    }
}
