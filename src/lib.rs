//! Tunebook: a fine-tuning workbench over libtorch.
//!
//! The core (`model`, `data`, `train`) knows nothing of scripts or
//! notebooks; `kernel` serves the Jupyter protocol and knows nothing of Rhai
//! or ML; `script` exposes the core to Rhai and implements the kernel's
//! `Interpreter`.

pub mod data;
pub mod distributed;
pub mod kernel;
pub mod model;
pub mod panic;
pub mod plot;
pub mod runtime;
pub mod script;
pub mod suggest;
pub mod task;
pub mod train;
