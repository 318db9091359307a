//! Gradient checkpointing: a block of the model runs without keeping its
//! activations and runs again in the backward pass, trading about a third
//! more compute for the activation memory of every block but one. Reached
//! through the C++ shim (`checkpoint_shim.cpp`), as tch has no custom
//! autograd functions.

use std::ffi::{c_void, CString};
use std::os::raw::{c_char, c_int};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Result};
use tch::Tensor;

type BlockRun = extern "C" fn(state: *mut c_void, input: *const c_void, output: *mut *mut c_void) -> c_int;
type BlockFree = extern "C" fn(state: *mut c_void);

extern "C" {
    // Each tensor pointer is tch's handle, a libtorch `at::Tensor*`.
    fn tb_checkpoint(input: *const c_void, params: *const *const c_void, count: c_int, run: BlockRun, release: BlockFree, state: *mut c_void, output: *mut *mut c_void) -> c_int;
    fn tb_checkpoint_last_error() -> *const c_char;
    fn tb_checkpoint_set_error(message: *const c_char);
    fn tb_grad_enabled() -> c_int;
}

/// Runs of checkpointed blocks (forward passes and recomputations).
static BLOCK_RUNS: AtomicUsize = AtomicUsize::new(0);

/// How many times a checkpointed block has run in this process, its
/// forward passes and its recomputations in backward passes together.
pub fn block_runs() -> usize {
    BLOCK_RUNS.load(Ordering::Relaxed)
}

/// The block as the shim holds it.
type Block = Box<dyn Fn(&Tensor) -> Tensor>;

/// `block(input)`, checkpointed: its activations are freed after the
/// forward pass and made again, with the same dropout masks and autocast,
/// when the backward pass reaches it. `params` are the block's trainable
/// tensors (extra ones get no gradient from it); they are inputs of the
/// checkpoint, so that they get their gradients even when `input` needs
/// none. Without gradients (inference, `no_grad`) the block just runs.
///
/// # Safety
/// The graph of the result must be consumed (or dropped) before what
/// `block` borrows: the backward pass calls `block` again. It is called on
/// the thread running the backward pass, while that call waits for it.
pub unsafe fn checkpoint<'a>(input: &Tensor, params: &[Tensor], block: impl Fn(&Tensor) -> Tensor + 'a) -> Result<Tensor> {
    let needs_grad = tb_grad_enabled() != 0 && (input.requires_grad() || params.iter().any(Tensor::requires_grad));
    if !needs_grad {
        return Ok(block(input));
    }
    let boxed: Box<dyn Fn(&Tensor) -> Tensor + 'a> = Box::new(block);
    // SAFETY: the caller keeps what the block borrows alive for the graph's life.
    let boxed: Block = std::mem::transmute::<Box<dyn Fn(&Tensor) -> Tensor + 'a>, Block>(boxed);
    let state = Box::into_raw(Box::new(boxed)).cast::<c_void>();
    let pointers: Vec<*const c_void> = params.iter().map(|p| p.as_ptr().cast()).collect();
    let mut output: *mut c_void = std::ptr::null_mut();
    // SAFETY: live tensor handles for the call; the shim owns `state` from here and frees it with `free_block`.
    let ok = tb_checkpoint(input.as_ptr().cast(), pointers.as_ptr(), pointers.len() as c_int, run_block, free_block, state, &mut output);
    if ok == 0 || output.is_null() {
        let why = std::ffi::CStr::from_ptr(tb_checkpoint_last_error()).to_string_lossy().into_owned();
        bail!("the checkpointed block failed: {why}");
    }
    // SAFETY: the shim hands over a tensor allocated as tch's own handles are.
    Ok(Tensor::from_ptr(output.cast()))
}

/// Runs the block for the shim; a panic becomes the shim's error text.
extern "C" fn run_block(state: *mut c_void, input: *const c_void, output: *mut *mut c_void) -> c_int {
    // SAFETY: `state` is the Block `checkpoint` boxed, alive until `free_block`.
    let block = unsafe { &*state.cast::<Block>() };
    BLOCK_RUNS.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the shim lends a live tensor; the clone is a new handle this side owns.
    let input = unsafe { Tensor::clone_from_ptr(input.cast_mut().cast()) };
    match catch_unwind(AssertUnwindSafe(|| block(&input))) {
        Ok(result) => {
            // SAFETY: the shim takes the handle over and deletes it.
            unsafe { *output = result.as_ptr().cast_mut().cast() };
            std::mem::forget(result);
            1
        }
        Err(payload) => {
            let text = crate::panic::panic_text(&*payload);
            let text = CString::new(text.replace('\0', " ")).unwrap_or_default();
            // SAFETY: a valid C string, copied by the shim.
            unsafe { tb_checkpoint_set_error(text.as_ptr()) };
            0
        }
    }
}

/// Frees the block once the graph no longer holds it.
extern "C" fn free_block(state: *mut c_void) {
    // SAFETY: `state` came from Box::into_raw in `checkpoint`, freed once.
    drop(unsafe { Box::from_raw(state.cast::<Block>()) });
}
