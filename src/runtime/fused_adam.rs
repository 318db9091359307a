//! libtorch's fused Adam and AdamW (`_fused_adam_`, `_fused_adamw_`, CPU
//! and CUDA), reached through the C++ shim (`optim_shim.cpp`): each
//! parameter is read and written once per step, where the same update in
//! element-wise ops makes a pass per op.

use std::ffi::c_void;
use std::os::raw::c_int;

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

extern "C" {
    // Each pointer is tch's tensor handle, a libtorch `at::Tensor*`.
    #[allow(clippy::too_many_arguments)]
    fn tb_fused_adam(
        params: *const *mut c_void,
        grads: *const *mut c_void,
        exp_avgs: *const *mut c_void,
        exp_avg_sqs: *const *mut c_void,
        steps: *const *mut c_void,
        count: c_int,
        lr: f64,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        decoupled: c_int,
    ) -> c_int;
    fn tb_optim_last_error() -> *const std::os::raw::c_char;
}

/// Adam's settings for one fused call.
#[derive(Debug, Clone, Copy)]
pub struct AdamSettings {
    /// The learning rate.
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Weight decay: decoupled (AdamW) or added to the gradient (Adam).
    pub weight_decay: f64,
    /// Added to the denominator.
    pub eps: f64,
    /// AdamW's decoupled weight decay, rather than Adam's L2.
    pub decoupled: bool,
}

/// The tensors of one parameter that a fused step reads and updates.
pub struct AdamTensors<'a> {
    /// The parameter, updated in place.
    pub param: &'a mut Tensor,
    /// Its gradient.
    pub grad: &'a mut Tensor,
    /// First moment, updated in place.
    pub exp_avg: &'a mut Tensor,
    /// Second moment, updated in place.
    pub exp_avg_sq: &'a mut Tensor,
    /// The steps taken, this one included, as an fp32 scalar on the
    /// parameter's device.
    pub step: &'a mut Tensor,
}

/// Whether the fused kernel takes these tensors: contiguous, floating,
/// all of one kind and on one device.
pub fn fusable(param: &Tensor, grad: &Tensor, exp_avg: &Tensor, exp_avg_sq: &Tensor) -> bool {
    let kind = param.kind();
    matches!(kind, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16)
        && [grad, exp_avg, exp_avg_sq].iter().all(|t| t.kind() == kind && t.device() == param.device() && t.is_contiguous())
        && param.is_contiguous()
}

/// One Adam or AdamW step over `tensors` (one device, see [`fusable`]),
/// as `torch.optim.AdamW(fused=True)` takes it.
pub fn fused_adam_step(tensors: &mut [AdamTensors<'_>], settings: AdamSettings) -> Result<()> {
    if tensors.is_empty() {
        return Ok(());
    }
    let mut ptrs: [Vec<*mut c_void>; 5] = Default::default();
    for t in tensors.iter_mut() {
        for (list, tensor) in ptrs.iter_mut().zip([&mut *t.param, &mut *t.grad, &mut *t.exp_avg, &mut *t.exp_avg_sq, &mut *t.step]) {
            list.push(tensor.as_mut_ptr().cast());
        }
    }
    let [params, grads, exp_avgs, exp_avg_sqs, steps] = &ptrs;
    let AdamSettings { lr, beta1, beta2, weight_decay, eps, decoupled } = settings;
    // SAFETY: every pointer is a live tensor borrowed mutably for the call.
    let ok = unsafe {
        tb_fused_adam(params.as_ptr(), grads.as_ptr(), exp_avgs.as_ptr(), exp_avg_sqs.as_ptr(), steps.as_ptr(), tensors.len() as c_int, lr, beta1, beta2, weight_decay, eps, c_int::from(decoupled))
    };
    if ok == 0 {
        // SAFETY: the shim's thread-local message, valid until its next call on this thread.
        let why = unsafe { std::ffi::CStr::from_ptr(tb_optim_last_error()) }.to_string_lossy().into_owned();
        bail!("the fused Adam step failed: {why}");
    }
    Ok(())
}
