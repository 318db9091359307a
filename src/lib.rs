//! Tunebook: a fine-tuning workbench over libtorch.
//!
//! The layers point one way. The core, from the bottom up: `data` (datasets,
//! tokenizer, loaders), `model` (architectures, weight formats, adaptation),
//! `train` (the loop and its parts), `inference` (predictions, embeddings)
//! and `plot` (charts). Above it, `render` draws training events on a
//! terminal or in a notebook, and `script` exposes the core to Rhai and
//! implements the kernel's `Interpreter`. `kernel` serves the Jupyter
//! protocol and knows nothing of Rhai or ML; `kernel_program` names what
//! Tunebook's kernel runs, with the kernel alone. Small shared pieces (`files`,
//! `numbers`, `suggest`, `task`, `runtime`, `distributed`) sit below them all.
#![warn(missing_docs)]

pub mod data;
pub mod distributed;
pub mod files;
pub mod inference;
pub mod kernel;
pub mod kernel_program;
pub mod model;
pub mod numbers;
pub mod panic;
pub mod plot;
pub mod render;
pub mod runtime;
pub mod script;
pub mod suggest;
pub mod task;
pub mod train;
