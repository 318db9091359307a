//! Tunebook: a fine-tuning workbench over libtorch.
//!
//! The core (`model`, `data`, `train`) knows nothing of scripts or
//! notebooks; `script` exposes it to Rhai, and the command line renders its
//! training events.

pub mod data;
pub mod model;
pub mod runtime;
pub mod script;
pub mod suggest;
pub mod train;
