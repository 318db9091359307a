//! The architectures, one file per family, with parameter names that
//! mirror the Hugging Face checkpoints, and the `config.json` they read.

pub mod bert;
pub mod config;
pub mod distilbert;
pub mod roberta;

pub use config::{Arch, EncoderConfig};
