//! Mixed precision: libtorch's autocast, per device type, reached through
//! the C++ shim (`autocast_shim.cpp`). Inside an `Autocast`, matrix
//! products and convolutions run in the lower precision while the weights
//! stay fp32; the caller casts what the loss reads back to fp32 (CPU
//! autocast does not, as CUDA's does, keep losses and softmax in fp32).

use std::os::raw::c_int;

use anyhow::{bail, Result};
use tch::{Device, Kind};

extern "C" {
    fn tb_autocast_is_enabled(cuda: c_int) -> c_int;
    fn tb_autocast_set_enabled(cuda: c_int, enabled: c_int);
    fn tb_autocast_get_dtype(cuda: c_int) -> c_int;
    fn tb_autocast_set_dtype(cuda: c_int, dtype: c_int);
    fn tb_autocast_increment_nesting() -> c_int;
    fn tb_autocast_decrement_nesting() -> c_int;
    fn tb_autocast_clear_cache();
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
}

impl Precision {
    /// The names `precision:` and `--precision` take.
    pub const NAMES: &'static [&'static str] = &["fp32", "bf16"];

    /// The precision named `name`; fp16 is refused with why.
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "fp32" | "float32" => Ok(Self::Fp32),
            "bf16" | "bfloat16" => Ok(Self::Bf16),
            "fp16" | "float16" => bail!("precision \"fp16\" needs dynamic loss scaling, which is not built yet; use \"bf16\" (the same memory and speed on recent hardware, and no scaling needed)"),
            other => bail!("unknown precision '{other}'; valid: {}", Self::NAMES.join(", ")),
        }
    }

    /// Its name, as `parse` reads it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp32 => "fp32",
            Self::Bf16 => "bf16",
        }
    }

    /// Runs `f` with autocast on for `device` in this precision (plain for fp32).
    pub fn run<T>(self, device: Device, f: impl FnOnce() -> T) -> T {
        match self {
            Self::Fp32 => f(),
            Self::Bf16 => {
                let _on = Autocast::enter(device, Kind::BFloat16);
                f()
            }
        }
    }
}

/// Why bf16 on this machine's CPU would be slow, if it would: without
/// bf16 instructions (AVX-512 BF16, AMX) libtorch converts and computes in
/// fp32 anyway (measured 2.7x slower than fp32 on such a Xeon). `None`
/// where the processor has them, or where its flags cannot be read.
pub fn cpu_bf16_note() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let flags = info.lines().find(|l| l.starts_with("flags"))?;
    let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
    (!has("avx512_bf16") && !has("amx_bf16")).then(|| "this processor has no bf16 instructions (AVX-512 BF16 or AMX), so bf16 autocast on it is slower than fp32 (2.7x measured on such a Xeon); it only pays on a GPU or a processor that has them".to_string())
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
    use tch::Tensor;

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
    fn names_parse_and_fp16_says_what_is_missing() {
        assert_eq!(Precision::parse("bf16").unwrap(), Precision::Bf16);
        assert_eq!(Precision::parse("fp32").unwrap(), Precision::Fp32);
        assert!(Precision::parse("fp16").unwrap_err().to_string().contains("loss scaling"));
        assert!(Precision::parse("fp8").unwrap_err().to_string().contains("valid: fp32, bf16"));
    }
}
